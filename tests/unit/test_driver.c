/* The driver from src/ (ccid_reader_open + smc_device_control) in front of the
 * virtual reader through the in-process transport, at short APDU, extended
 * APDU and TPDU levels, running the test applet with data checked byte by byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <wintypes.h>
#include <reader.h>

#include "rig.h"

static void driver_short_apdu_level_t0_and_t1(void **state)
{
	for (int proto = 1; proto <= 2; proto++) {
		struct rig *r = rig_open(NULL, 0, 0);

		(void)state;
		rig_power(r);
		rig_protocol(r, (uint32_t)proto);
		rig_select(r);
		rig_send_counting_all(r);
		rig_check_data_all(r);
		rig_apdu(r, (const uint8_t *)"\x80\x30\x00\x00", 4, 0, 0x9000);
		/* 80 36 at APDU level: the data comes back at once */
		rig_apdu(r, (const uint8_t *)"\x80\x36\x01\x00\x01\x55", 6, 256, 0x9000);
		rig_apdu(r, (const uint8_t *)"\x80\x38\x00\x02", 4, 0, 0x9000);
		rig_close(r);
	}
}

static void driver_short_apdu_level_with_64_byte_packets(void **state)
{
	struct rig *r = rig_open(NULL, 0, 1);

	(void)state;
	rig_power(r);
	rig_protocol(r, 2);
	rig_send_counting_all(r);
	rig_close(r);
}

static const char *const extended_kv[][2] = { { "level", "extended" }, { "max-message", "1034" } };

static void driver_extended_apdu_level(void **state)
{
	static const size_t sizes[] = { 1, 255, 256, 1020, 1021, 1022, 1023, 1024, 1025, 2046,
					2047, 2048, 4096, 65535 };
	struct rig *r = rig_open(extended_kv, 2, 0);

	(void)state;
	rig_power(r);
	rig_protocol(r, 2);
	rig_select(r);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		rig_fill(r, (uint8_t)(0xA0 + i), sizes[i]);
	/* 80 12 01 80 00 Lh Ll + data: commands around one message and 65535 bytes */
	for (size_t n = 1010; n <= 1030; n++)
		rig_accept(r, n);
	rig_accept(r, 2047);
	rig_accept(r, 65535);
	rig_send_counting_all(r);
	rig_close(r);
}

static void driver_extended_apdu_level_with_packets(void **state)
{
	struct rig *r = rig_open(extended_kv, 2, 1);

	(void)state;
	rig_power(r);
	rig_protocol(r, 1);
	rig_fill(r, 0x33, 65535);
	rig_fill(r, 0x34, 1024);
	rig_accept(r, 65535);
	rig_close(r);
}

/* The smallest message size (271): many parts each way. */
static void driver_extended_apdu_level_with_small_messages(void **state)
{
	static const char *const kv[][2] = { { "level", "extended" } };
	struct rig *r = rig_open(kv, 1, 0);

	(void)state;
	rig_power(r);
	rig_protocol(r, 2);
	for (size_t n = 255; n <= 265; n++)
		rig_fill(r, (uint8_t)n, n);
	rig_fill(r, 0x77, 65535);
	rig_accept(r, 65535);
	rig_send_counting_all(r);
	rig_close(r);
}

static const char *const tpdu_kv[][2] = { { "level", "tpdu" } };

static void driver_tpdu_level_t0(void **state)
{
	struct rig *r = rig_open(tpdu_kv, 1, 0);

	(void)state;
	rig_power(r);
	rig_protocol(r, 1);
	rig_select(r);
	rig_send_counting_all(r);
	rig_check_data_all(r);
	/* over T=0 the card answers 61 xx; the driver does not fetch it itself */
	rig_get_response_all(r);
	rig_apdu(r, (const uint8_t *)"\x80\x38\x00\x02", 4, 0, 0x9000);
	rig_close(r);
}

static uint32_t rig_attribute(struct rig *r, uint32_t tag)
{
	uint8_t v[4];
	size_t len;

	assert_int_equal(smc_device_control(r->ext, SMC_REQ_GET_ATTRIBUTE, tag, NULL, 0, v, sizeof(v), &len),
			 SMC_OK);
	assert_int_equal(len, 4);
	return (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
}

/* T=1 at TPDU level with the host doing everything (features 3A: no automatic
 * PPS or IFSD): PPS, S(IFS request), chaining both ways with IFSC 32, WTX,
 * extended lengths; the attributes show the IFSC and IFSD in force. */
static void driver_tpdu_level_t1(void **state)
{
	static const char *const kv[][2] = {
		{ "level", "tpdu" }, { "card-protocols", "t1" }, { "features", "3A" },
		{ "card-ifsc", "32" }, { "card-edc", "crc" },
	};
	struct rig *r = rig_open(kv, sizeof(kv) / sizeof(kv[0]), 0);

	(void)state;
	rig_power(r);
	rig_protocol(r, 2);
	assert_true(r->ext->card_caps.pts.done);
	rig_select(r);
	assert_int_equal(rig_attribute(r, SCARD_ATTR_CURRENT_IFSC), 32);
	assert_int_equal(rig_attribute(r, SCARD_ATTR_CURRENT_IFSD), 254);
	rig_send_counting_all(r);
	rig_check_data_all(r);
	rig_apdu(r, (const uint8_t *)"\x80\x38\x00\x05", 4, 0, 0x9000);
	rig_fill(r, 0x5A, 65535);
	rig_accept(r, 65535);
	rig_fill(r, 0x5B, 300);
	rig_close(r);
}

static void driver_sees_card_removal(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);

	(void)state;
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, NULL), SMC_OK);
	rig_power(r);
	inproc_remove_card(r->tp, 0);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, NULL),
			 SMC_ERR_NO_MEDIA);
	inproc_insert_card(r->tp, 0);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, NULL), SMC_OK);
	rig_close(r);
}

static void driver_two_slots_work_independently(void **state)
{
	static const char *const kv[][2] = { { "slots", "2" }, { "busy-slots", "2" } };
	struct rig *r = rig_open(kv, 2, 0);
	struct smc_ext *ext1;

	(void)state;
	assert_int_equal(ccid_reader_slot_count(r->reader), 2);
	ext1 = ccid_reader_slot(r->reader, 1);
	assert_non_null(ext1);
	rig_power(r);
	rig_protocol(r, 2);
	inproc_remove_card(r->tp, 0);
	assert_int_equal(smc_device_control(ext1, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, NULL), SMC_OK);
	r->ext = ext1;
	rig_power(r);
	rig_protocol(r, 1);
	rig_send_counting_all(r);
	r->ext = ccid_reader_slot(r->reader, 0);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, NULL),
			 SMC_ERR_NO_MEDIA);
	rig_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(driver_short_apdu_level_t0_and_t1),
		cmocka_unit_test(driver_short_apdu_level_with_64_byte_packets),
		cmocka_unit_test(driver_extended_apdu_level),
		cmocka_unit_test(driver_extended_apdu_level_with_packets),
		cmocka_unit_test(driver_extended_apdu_level_with_small_messages),
		cmocka_unit_test(driver_tpdu_level_t0),
		cmocka_unit_test(driver_tpdu_level_t1),
		cmocka_unit_test(driver_sees_card_removal),
		cmocka_unit_test(driver_two_slots_work_independently),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
