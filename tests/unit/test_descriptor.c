/* The CCID class descriptor: QEMU's, a short and an extended APDU reader, and
 * every malformed variant refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ccid/descriptor.h"
#include "fake_transport.h"

#define qemu_desc fake_qemu_descriptor

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void with_features(uint8_t *d, uint32_t features)
{
	memcpy(d, qemu_desc, sizeof(qemu_desc));
	put_le32(d + 40, features);
}

static void qemu_descriptor_is_one_slot_t0_tpdu(void **state)
{
	struct ccid_descriptor d;

	(void)state;
	assert_int_equal(ccid_descriptor_parse(qemu_desc, sizeof(qemu_desc), &d), SMC_OK);
	assert_int_equal(d.bcdCCID, 0x0110);
	assert_int_equal(d.n_slots, 1);
	assert_int_equal(d.bVoltageSupport, 0x07);
	assert_int_equal(d.dwProtocols, SMC_PROTOCOL_T0);
	assert_int_equal(d.dwDefaultClock, 4000);
	assert_int_equal(d.dwMaximumClock, 65536);
	assert_int_equal(d.dwDataRate, 9600);
	assert_int_equal(d.dwMaxDataRate, 115200);
	assert_int_equal(d.dwMaxIFSD, 254);
	assert_int_equal(d.dwFeatures, 0x000104FE);
	assert_int_equal(d.level, CCID_LEVEL_TPDU);
	assert_int_equal(d.dwMaxCCIDMessageLength, 65554);
	assert_int_equal(d.max_msg_len, 65554);
	assert_int_equal(d.bClassGetResponse, 0xFF);
	assert_int_equal(d.wLcdLayout, 0);
	assert_int_equal(d.bPINSupport, 1);
	assert_int_equal(d.bMaxCCIDBusySlots, 1);
	assert_true(ccid_descriptor_auto_params(&d));
	ccid_descriptor_log(&d);
}

static void short_apdu_reader_level(void **state)
{
	struct ccid_descriptor d;
	uint8_t raw[54];

	(void)state;
	with_features(raw, 0x000200BA);
	raw[4] = 1; /* two slots */
	put_le32(raw + 6, 3);
	put_le32(raw + 44, 271);
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_OK);
	assert_int_equal(d.level, CCID_LEVEL_SHORT_APDU);
	assert_int_equal(d.n_slots, 2);
	assert_int_equal(d.dwProtocols, 3);
	assert_int_equal(d.max_msg_len, 271);
	assert_false(ccid_descriptor_auto_params(&d)); /* 0x02, 0x80: SetParameters still */
}

static void extended_apdu_reader_level(void **state)
{
	struct ccid_descriptor d;
	uint8_t raw[54];

	(void)state;
	with_features(raw, 0x00040840);
	put_le32(raw + 44, 65544 + 10);
	raw[52] = 3;
	raw[50] = 16; /* 2 lines of 16 characters */
	raw[51] = 2;
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_OK);
	assert_int_equal(d.level, CCID_LEVEL_EXTENDED_APDU);
	assert_int_equal(d.max_msg_len, 65554);
	assert_int_equal(d.wLcdLayout, 0x0210);
	assert_int_equal(d.bPINSupport, 3);
	assert_true(ccid_descriptor_auto_params(&d)); /* 0x40: negotiates itself */
	ccid_descriptor_log(&d);
}

static void character_level_and_manual_parameters(void **state)
{
	struct ccid_descriptor d;
	uint8_t raw[54];

	(void)state;
	with_features(raw, 0x00000000);
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_OK);
	assert_int_equal(d.level, CCID_LEVEL_CHARACTER);
	assert_false(ccid_descriptor_auto_params(&d));
	with_features(raw, 0x00010038); /* auto voltage, clock, baud: still manual parameters */
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_OK);
	assert_false(ccid_descriptor_auto_params(&d));
	with_features(raw, 0x00010082); /* PPS from the parameters it is given */
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_OK);
	assert_false(ccid_descriptor_auto_params(&d));
	with_features(raw, 0x00010040); /* proprietary negotiation: does it all */
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_OK);
	assert_true(ccid_descriptor_auto_params(&d));
}

static void rejects_bad_length_type_and_truncation(void **state)
{
	struct ccid_descriptor d;
	uint8_t raw[54];

	(void)state;
	memcpy(raw, qemu_desc, sizeof(raw));
	raw[0] = 0x35;
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_ERR_COMM);
	memcpy(raw, qemu_desc, sizeof(raw));
	raw[1] = 0x24;
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_ERR_COMM);
	assert_int_equal(ccid_descriptor_parse(qemu_desc, 53, &d), SMC_ERR_COMM);
	assert_int_equal(ccid_descriptor_parse(qemu_desc, 0, &d), SMC_ERR_COMM);
	assert_int_equal(ccid_descriptor_parse(NULL, 54, &d), SMC_ERR_COMM);
}

static void rejects_several_exchange_levels(void **state)
{
	struct ccid_descriptor d;
	uint8_t raw[54];

	(void)state;
	with_features(raw, 0x000304FE);
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_ERR_COMM);
	with_features(raw, 0x000504FE);
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_ERR_COMM);
}

static void slot_index_bounds(void **state)
{
	struct ccid_descriptor d;
	uint8_t raw[54];

	(void)state;
	memcpy(raw, qemu_desc, sizeof(raw));
	raw[4] = 15;
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_OK);
	assert_int_equal(d.n_slots, 16);
	raw[4] = 16;
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_ERR_COMM);
	raw[4] = 0xFF;
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_ERR_COMM);
}

static void message_length_rejected_when_tiny_and_clamped_when_absurd(void **state)
{
	struct ccid_descriptor d;
	uint8_t raw[54];

	(void)state;
	memcpy(raw, qemu_desc, sizeof(raw));
	put_le32(raw + 44, 19);
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_ERR_COMM);
	put_le32(raw + 44, 0);
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_ERR_COMM);
	put_le32(raw + 44, 20);
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_OK);
	assert_int_equal(d.max_msg_len, 20);
	put_le32(raw + 44, 0xFFFFFFFF);
	assert_int_equal(ccid_descriptor_parse(raw, sizeof(raw), &d), SMC_OK);
	assert_int_equal(d.dwMaxCCIDMessageLength, 0xFFFFFFFF);
	assert_int_equal(d.max_msg_len, CCID_MSG_LEN_MAX);
	assert_int_equal(CCID_MSG_LEN_MAX, 65556);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(qemu_descriptor_is_one_slot_t0_tpdu),
		cmocka_unit_test(short_apdu_reader_level),
		cmocka_unit_test(extended_apdu_reader_level),
		cmocka_unit_test(character_level_and_manual_parameters),
		cmocka_unit_test(rejects_bad_length_type_and_truncation),
		cmocka_unit_test(rejects_several_exchange_levels),
		cmocka_unit_test(slot_index_bounds),
		cmocka_unit_test(message_length_rejected_when_tiny_and_clamped_when_absurd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
