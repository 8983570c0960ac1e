/* The virtual CCID reader (sim/) on its own, message by message, and the
 * in-process transport in front of it (with the driver behind it for the
 * faults of the USB pipe). The driver against the reader: test_driver.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ccid.h"
#include "inproc.h"
#include "rig.h"
#include "smc_log.h"
#include "vcard.h"
#include "vreader.h"

/* ---- direct access: one message in, its answers out ------------------------- */

#define BUF 70000

static uint8_t ans[BUF];

static void msg(struct vreader *vr, uint8_t type, uint8_t slot, uint8_t seq, uint8_t b7, uint8_t b8,
		uint8_t b9, const uint8_t *data, size_t len)
{
	static uint8_t m[BUF];

	m[0] = type;
	m[1] = (uint8_t)len;
	m[2] = (uint8_t)(len >> 8);
	m[3] = (uint8_t)(len >> 16);
	m[4] = (uint8_t)(len >> 24);
	m[5] = slot;
	m[6] = seq;
	m[7] = b7;
	m[8] = b8;
	m[9] = b9;
	if (len)
		memcpy(m + 10, data, len);
	vr_bulk_out(vr, m, 10 + len);
}

/* The next answer: its length, with the header checked against what is asked. */
static size_t expect(struct vreader *vr, uint8_t type, uint8_t slot, uint8_t seq, uint8_t status,
		     uint8_t error)
{
	size_t n = vr_bulk_in(vr, ans, sizeof(ans));

	assert_true(n >= 10);
	assert_int_equal(ans[0], type);
	assert_int_equal(ans[5], slot);
	assert_int_equal(ans[6], seq);
	assert_int_equal(ans[7], status);
	assert_int_equal(ans[8], error);
	assert_int_equal((size_t)ans[1] | (size_t)ans[2] << 8 | (size_t)ans[3] << 16, n - 10);
	return n - 10;
}

static struct vreader *new_reader(const char *level)
{
	struct vr_profile p;
	const char *why;
	struct vreader *vr;

	vr_profile_defaults(&p);
	if (level)
		assert_int_equal(vr_profile_set(&p, "level", level, &why), 0);
	vr = vr_new(&p);
	assert_non_null(vr);
	return vr;
}

static void power_up(struct vreader *vr)
{
	msg(vr, 0x62, 0, 1, 0, 0, 0, NULL, 0);
	expect(vr, 0x80, 0, 1, 0x00, 0);
}

/* ---- profile and descriptor ----------------------------------------------------- */

static uint32_t le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void descriptor_of_default_profile_field_by_field(void **state)
{
	struct vr_profile p;
	uint8_t d[VR_CLASS_DESC_LEN];

	(void)state;
	vr_profile_defaults(&p);
	vr_class_descriptor(&p, d);
	assert_int_equal(d[0], 54);                 /* bLength */
	assert_int_equal(d[1], 0x21);               /* bDescriptorType */
	assert_int_equal(d[2] | d[3] << 8, 0x0110); /* bcdCCID */
	assert_int_equal(d[4], 0);                  /* bMaxSlotIndex */
	assert_int_equal(d[5], 0x07);               /* bVoltageSupport */
	assert_int_equal(le32(d + 6), 3);           /* dwProtocols */
	assert_int_equal(le32(d + 10), 4000);       /* dwDefaultClock */
	assert_int_equal(le32(d + 14), 12000);      /* dwMaximumClock */
	assert_int_equal(d[18], 0);                 /* bNumClockSupported */
	assert_int_equal(le32(d + 19), 10752);      /* dwDataRate */
	assert_int_equal(le32(d + 23), 412903);     /* dwMaxDataRate */
	assert_int_equal(d[27], 0);                 /* bNumDataRatesSupported */
	assert_int_equal(le32(d + 28), 254);        /* dwMaxIFSD */
	assert_int_equal(le32(d + 32), 0);          /* dwSynchProtocols */
	assert_int_equal(le32(d + 36), 0);          /* dwMechanical */
	assert_int_equal(le32(d + 40), 0x000204BA); /* dwFeatures: auto bits + short APDU */
	assert_int_equal(le32(d + 44), 271);        /* dwMaxCCIDMessageLength */
	assert_int_equal(d[48], 0xFF);              /* bClassGetResponse */
	assert_int_equal(d[49], 0xFF);              /* bClassEnvelope */
	assert_int_equal(d[50] | d[51] << 8, 0);    /* wLcdLayout */
	assert_int_equal(d[52], 0);                 /* bPINSupport */
	assert_int_equal(d[53], 1);                 /* bMaxCCIDBusySlots */
}

static void descriptor_follows_profile_settings(void **state)
{
	static const char *const kv[][2] = {
		{ "level", "extended" }, { "slots", "3" }, { "busy-slots", "2" },
		{ "features", "100002" }, { "lcd", "2x16" }, { "pin-support", "verify,modify" },
		{ "mechanical", "eject,lock" }, { "clocks", "4000,8000" }, { "rates", "10752" },
		{ "voltages", "3,1.8" }, { "protocols", "t1" }, { "max-message", "65554" },
	};
	struct vr_profile p;
	uint8_t d[VR_CLASS_DESC_LEN];
	const char *why;

	(void)state;
	vr_profile_defaults(&p);
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		assert_int_equal(vr_profile_set(&p, kv[i][0], kv[i][1], &why), 0);
	assert_int_equal(vr_profile_check(&p, &why), 0);
	vr_class_descriptor(&p, d);
	assert_int_equal(d[4], 2);
	assert_int_equal(d[5], 0x06);
	assert_int_equal(le32(d + 6), 2);
	assert_int_equal(d[18], 2);
	assert_int_equal(d[27], 1);
	assert_int_equal(le32(d + 36), 0x0A);
	assert_int_equal(le32(d + 40), 0x00140002);
	assert_int_equal(le32(d + 44), 65554);
	assert_int_equal(d[50] | d[51] << 8, 0x0210);
	assert_int_equal(d[52], 3);
	assert_int_equal(d[53], 2);
}

static void profile_refuses_bad_values_with_a_reason(void **state)
{
	static const char *const bad[][2] = {
		{ "level", "apdu" }, { "slots", "5" }, { "slots", "0" }, { "features", "20000" },
		{ "max-message", "100" }, { "voltages", "12" }, { "protocols", "t2" },
		{ "lcd", "2y16" }, { "vid", "12345" }, { "interrupt", "maybe" }, { "speed", "super" },
		{ "card-ta1", "78" }, { "card-pin", "12a4" }, { "card-historical", "123" },
		{ "nosuchkey", "1" }, { "clocks", "1,2,x" }, { "card-wi", "0" },
	};
	struct vr_profile p;
	const char *why;

	(void)state;
	vr_profile_defaults(&p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(vr_profile_set(&p, bad[i][0], bad[i][1], &why), -1);
		assert_non_null(why);
	}
	assert_int_equal(vr_profile_set(&p, "slots", "2", &why), 0);
	assert_int_equal(vr_profile_set(&p, "busy-slots", "3", &why), 0);
	assert_int_equal(vr_profile_check(&p, &why), -1);
	assert_null(vr_new(&p));
}

/* ---- the card's ATR -------------------------------------------------------------- */

static const uint8_t default_atr[] = { 0x3B, 0x97, 0x96, 0x80, 0x31, 0xFE, 0x45, 'v', 'i', 'r',
				       't', 'u', 'a', 'l', 0x6A };

static void default_card_atr_offers_t0_and_t1_with_tck(void **state)
{
	struct vreader *vr = new_reader(NULL);
	uint8_t tck = 0;
	size_t n;

	(void)state;
	for (size_t i = 1; i < sizeof(default_atr) - 1; i++)
		tck ^= default_atr[i];
	assert_int_equal(tck, default_atr[sizeof(default_atr) - 1]);
	msg(vr, 0x62, 0, 7, 0, 0, 0, NULL, 0);
	n = expect(vr, 0x80, 0, 7, 0x00, 0);
	assert_int_equal(n, sizeof(default_atr));
	assert_memory_equal(ans + 10, default_atr, n);
	vr_free(vr);
}

static void t0_only_card_atr_has_tc2_and_no_tck(void **state)
{
	static const uint8_t want[] = { 0x3F, 0xD0, 0x11, 0x05, 0x50, 0x10, 0x20 };
	struct vr_profile p;
	const char *why;
	struct vreader *vr;
	size_t n;

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(vr_profile_set(&p, "card-protocols", "t0", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-ta1", "11", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-tc1", "5", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-wi", "32", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-ta2", "10", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-convention", "inverse", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-historical", "none", &why), 0);
	vr = vr_new(&p);
	assert_non_null(vr);
	msg(vr, 0x62, 0, 1, 0, 0, 0, NULL, 0);
	n = expect(vr, 0x80, 0, 1, 0x00, 0);
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(ans + 10, want, n);
	vr_free(vr);
}

/* card-class: TD announcing T=15 after the protocols, then TA with the class
 * indicator (ISO 7816-3 8.3); TCK follows even for a T=0 card (8.2.5). */
static void card_class_adds_a_t15_class_indicator_and_tck_to_the_atr(void **state)
{
	static const uint8_t t0_t1_bc[] = { 0x3B, 0x97, 0x96, 0x80, 0xB1, 0xFE, 0x45, 0x1F, 0x06,
					    'v', 'i', 'r', 't', 'u', 'a', 'l', 0xF3 };
	static const uint8_t t0_a[] = { 0x3B, 0x80, 0x80, 0x1F, 0x01, 0x1E };
	struct vr_profile p;
	const char *why;
	struct vreader *vr;
	size_t n;

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(vr_profile_set(&p, "card-class", "c,b", &why), 0);
	vr = vr_new(&p);
	assert_non_null(vr);
	msg(vr, 0x62, 0, 1, 1, 0, 0, NULL, 0);               /* 5 V: not class A */
	expect(vr, 0x80, 0, 1, 0x41, 0xFE);
	msg(vr, 0x62, 0, 2, 2, 0, 0, NULL, 0);               /* 3 V: class B */
	n = expect(vr, 0x80, 0, 2, 0x00, 0);
	assert_int_equal(n, sizeof(t0_t1_bc));
	assert_memory_equal(ans + 10, t0_t1_bc, n);
	vr_free(vr);

	vr_profile_defaults(&p);
	assert_int_equal(vr_profile_set(&p, "card-protocols", "t0", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-ta1", "none", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-historical", "none", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-class", "a", &why), 0);
	vr = vr_new(&p);
	assert_non_null(vr);
	msg(vr, 0x62, 0, 1, 0, 0, 0, NULL, 0);               /* automatic: 1.8 V, 3 V, then 5 V */
	n = expect(vr, 0x80, 0, 1, 0x00, 0);
	assert_int_equal(n, sizeof(t0_a));
	assert_memory_equal(ans + 10, t0_a, n);
	vr_free(vr);
}

static void profile_refuses_card_class_and_t1_keys_that_disagree(void **state)
{
	static const char *const bad[][2] = {
		{ "card-class", "d" }, { "card-class", "a,5" }, { "card-nad", "88" }, { "card-nad", "FF" },
		{ "card-nad", "123" }, { "card-ifs-request", "0" }, { "card-ifs-request", "255" },
	};
	struct vr_profile p;
	const char *why;

	(void)state;
	vr_profile_defaults(&p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(vr_profile_set(&p, bad[i][0], bad[i][1], &why), -1);
		assert_non_null(why);
	}
	assert_int_equal(vr_profile_set(&p, "card-class", "a,b", &why), 0);
	assert_int_equal(vr_profile_check(&p, &why), 0);      /* card-voltages not given */
	assert_int_equal(vr_profile_set(&p, "card-voltages", "3,5", &why), 0);
	assert_int_equal(vr_profile_check(&p, &why), 0);      /* the same classes */
	assert_int_equal(vr_profile_set(&p, "card-voltages", "5", &why), 0);
	why = NULL;
	assert_int_equal(vr_profile_check(&p, &why), -1);
	assert_non_null(why);
	assert_null(vr_new(&p));

	vr_profile_defaults(&p);
	assert_int_equal(vr_profile_set(&p, "card-protocols", "t0", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-nad", "12", &why), 0);
	assert_int_equal(vr_profile_check(&p, &why), -1);
	assert_int_equal(vr_profile_set(&p, "card-nad", "00", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-ifs-request", "32", &why), 0);
	assert_int_equal(vr_profile_check(&p, &why), -1);
	assert_int_equal(vr_profile_set(&p, "card-ifs-request", "none", &why), 0);
	assert_int_equal(vr_profile_check(&p, &why), 0);
}

/* ---- headers and message types ---------------------------------------------------- */

static void unknown_message_answers_command_not_supported(void **state)
{
	struct vreader *vr = new_reader(NULL);

	(void)state;
	msg(vr, 0x99, 0, 4, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 4, 0x41, 0x00);
	vr_free(vr);
}

static void bad_slot_answers_error_5(void **state)
{
	struct vreader *vr = new_reader(NULL);

	(void)state;
	msg(vr, 0x65, 1, 9, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 1, 9, 0x42, 5);
	vr_free(vr);
}

static void dwlength_mismatch_answers_error_1(void **state)
{
	struct vreader *vr = new_reader(NULL);
	uint8_t m[12] = { 0x6F, 5, 0, 0, 0, 0, 3, 0, 0, 0, 0x00, 0xA4 };

	(void)state;
	vr_bulk_out(vr, m, sizeof(m));
	expect(vr, 0x80, 0, 3, 0x41, 1);
	vr_free(vr);
}

static void every_message_gets_its_answer_type(void **state)
{
	static const uint8_t pairs[][2] = {
		{ 0x62, 0x80 }, { 0x65, 0x81 }, { 0x6C, 0x82 }, { 0x6D, 0x82 }, { 0x6B, 0x83 },
		{ 0x6E, 0x81 }, { 0x6A, 0x81 }, { 0x69, 0x80 }, { 0x71, 0x81 }, { 0x72, 0x81 },
		{ 0x73, 0x84 }, { 0x6F, 0x80 }, { 0x61, 0x82 }, { 0x63, 0x81 },
	};
	struct vreader *vr = new_reader(NULL);

	(void)state;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		msg(vr, pairs[i][0], 0, (uint8_t)i, 0, 0, 0, NULL, 0);
		assert_true(vr_bulk_in(vr, ans, sizeof(ans)) >= 10);
		assert_int_equal(ans[0], pairs[i][1]);
		assert_int_equal(ans[6], i);
	}
	vr_free(vr);
}

static void icc_status_tracks_power_and_removal(void **state)
{
	struct vreader *vr = new_reader(NULL);

	(void)state;
	msg(vr, 0x65, 0, 1, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 1, 0x01, 0);      /* present, inactive */
	power_up(vr);
	msg(vr, 0x65, 0, 2, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 2, 0x00, 0);      /* present, active */
	vr_remove_card(vr, 0);
	msg(vr, 0x65, 0, 3, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 3, 0x02, 0);      /* absent */
	msg(vr, 0x62, 0, 4, 0, 0, 0, NULL, 0);
	expect(vr, 0x80, 0, 4, 0x42, 0xFE);   /* no card: ICC mute */
	vr_insert_card(vr, 0);
	msg(vr, 0x6F, 0, 5, 0, 0, 0, (const uint8_t *)"\x80\x30\x00\x00", 4);
	expect(vr, 0x80, 0, 5, 0x41, 0xFE);   /* inactive card: mute */
	vr_free(vr);
}

static void power_on_at_a_voltage_the_card_refuses_is_mute(void **state)
{
	struct vr_profile p;
	const char *why;
	struct vreader *vr;

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(vr_profile_set(&p, "card-voltages", "5", &why), 0);
	vr = vr_new(&p);
	msg(vr, 0x62, 0, 1, 3, 0, 0, NULL, 0); /* 1.8 V */
	expect(vr, 0x80, 0, 1, 0x41, 0xFE);
	msg(vr, 0x62, 0, 2, 4, 0, 0, NULL, 0); /* no such bPowerSelect */
	expect(vr, 0x80, 0, 2, 0x41, 7);
	msg(vr, 0x62, 0, 3, 0, 0, 0, NULL, 0); /* automatic: finds 5 V */
	expect(vr, 0x80, 0, 3, 0x00, 0);
	vr_free(vr);
}

static void set_parameters_checks_each_field(void **state)
{
	static const uint8_t good_t1[7] = { 0x96, 0x10, 0x00, 0x45, 0x00, 0xFE, 0x00 };
	uint8_t bad[7];
	struct vreader *vr = new_reader(NULL);
	size_t n;

	(void)state;
	power_up(vr);
	msg(vr, 0x61, 0, 2, 1, 0, 0, good_t1, 7);
	n = expect(vr, 0x82, 0, 2, 0x00, 0);
	assert_int_equal(n, 7);
	assert_int_equal(ans[9], 1);
	assert_memory_equal(ans + 10, good_t1, 7);
	memcpy(bad, good_t1, 7);
	bad[0] = 0x70; /* Fi RFU */
	msg(vr, 0x61, 0, 3, 1, 0, 0, bad, 7);
	expect(vr, 0x82, 0, 3, 0x40, 10);
	memcpy(bad, good_t1, 7);
	bad[5] = 0xFF; /* IFSC */
	msg(vr, 0x61, 0, 4, 1, 0, 0, bad, 7);
	expect(vr, 0x82, 0, 4, 0x40, 15);
	msg(vr, 0x61, 0, 5, 2, 0, 0, good_t1, 7); /* bProtocolNum */
	expect(vr, 0x82, 0, 5, 0x40, 7);
	msg(vr, 0x61, 0, 6, 0, 0, 0, good_t1, 7); /* T=0 takes 5 bytes */
	expect(vr, 0x82, 0, 6, 0x40, 1);
	msg(vr, 0x6C, 0, 7, 0, 0, 0, NULL, 0);    /* still the good T=1 ones */
	n = expect(vr, 0x82, 0, 7, 0x00, 0);
	assert_memory_equal(ans + 10, good_t1, n);
	msg(vr, 0x6D, 0, 8, 0, 0, 0, NULL, 0);    /* reset: T=0 defaults, TA1 (auto PPS) */
	n = expect(vr, 0x82, 0, 8, 0x00, 0);
	assert_int_equal(n, 5);
	assert_int_equal(ans[9], 0);
	assert_int_equal(ans[10], 0x96);
	assert_int_equal(ans[13], 10);
	vr_free(vr);
}

static void escape_echoes_and_rate_clock_picks_supported_values(void **state)
{
	static const uint8_t e[] = { 1, 2, 3 };
	static const uint8_t rc[8] = { 0x40, 0x1F, 0, 0, 0x00, 0x2A, 0, 0 }; /* 8000 kHz, 10752 bps */
	struct vr_profile p;
	const char *why;
	struct vreader *vr;
	size_t n;

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(vr_profile_set(&p, "clocks", "4000,6000", &why), 0);
	vr = vr_new(&p);
	msg(vr, 0x6B, 0, 1, 0, 0, 0, e, 3);
	n = expect(vr, 0x83, 0, 1, 0x01, 0);
	assert_int_equal(n, 3);
	assert_memory_equal(ans + 10, e, 3);
	msg(vr, 0x73, 0, 2, 0, 0, 0, rc, 8);
	n = expect(vr, 0x84, 0, 2, 0x01, 0);
	assert_int_equal(n, 8);
	assert_int_equal(le32(ans + 10), 6000);
	assert_int_equal(le32(ans + 14), 10752);
	msg(vr, 0x73, 0, 3, 0, 0, 0, rc, 4);
	expect(vr, 0x84, 0, 3, 0x41, 1);
	vr_free(vr);
}

static void slot_busy_while_an_answer_waits(void **state)
{
	struct vreader *vr = new_reader(NULL);

	(void)state;
	msg(vr, 0x65, 0, 1, 0, 0, 0, NULL, 0);
	msg(vr, 0x65, 0, 2, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 1, 0x01, 0);
	expect(vr, 0x81, 0, 2, 0x41, 0xE0);
	vr_free(vr);
}

/* ---- class requests and interrupt messages ------------------------------------------ */

static void class_requests_abort_and_lists(void **state)
{
	struct vr_profile p;
	const char *why;
	struct vreader *vr;
	uint8_t d[64];

	(void)state;
	vr_profile_defaults(&p);
	vr = vr_new(&p);
	assert_int_equal(vr_control(vr, 0xA1, 0x02, 0, d, sizeof(d)), -1); /* empty list: stall */
	assert_int_equal(vr_control(vr, 0xA1, 0x03, 0, d, sizeof(d)), -1);
	assert_int_equal(vr_control(vr, 0x21, 0x01, 0x0500, NULL, 0), 0);  /* ABORT slot 0 seq 5 */
	assert_int_equal(vr_control(vr, 0x21, 0x01, 0x0501, NULL, 0), -1); /* no slot 1 */
	assert_int_equal(vr_control(vr, 0x21, 0x09, 0, NULL, 0), -1);
	msg(vr, 0x72, 0, 5, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 5, 0x01, 0);
	vr_free(vr);

	assert_int_equal(vr_profile_set(&p, "clocks", "4000,8000", &why), 0);
	assert_int_equal(vr_profile_set(&p, "rates", "10752,21505,43010", &why), 0);
	vr = vr_new(&p);
	assert_int_equal(vr_control(vr, 0xA1, 0x02, 0, d, sizeof(d)), 8);
	assert_int_equal(le32(d), 4000);
	assert_int_equal(le32(d + 4), 8000);
	assert_int_equal(vr_control(vr, 0xA1, 0x03, 0, d, sizeof(d)), 12);
	assert_int_equal(le32(d + 8), 43010);
	assert_int_equal(vr_control(vr, 0xA1, 0x03, 0, d, 4), 4);
	vr_free(vr);
}

static void notify_slot_change_at_start_and_on_events(void **state)
{
	struct vr_profile p;
	const char *why;
	struct vreader *vr;
	uint8_t m[8];

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(vr_profile_set(&p, "slots", "2", &why), 0);
	vr = vr_new(&p);
	assert_int_equal(vr_interrupt_in(vr, m, sizeof(m)), 2);
	assert_int_equal(m[0], 0x50);
	assert_int_equal(m[1], 0x0F);          /* both present, both changed */
	assert_int_equal(vr_interrupt_in(vr, m, sizeof(m)), 0);
	vr_remove_card(vr, 1);
	assert_int_equal(vr_interrupt_in(vr, m, sizeof(m)), 2);
	assert_int_equal(m[1], 0x09);          /* slot 0 present; slot 1 absent, changed */
	assert_false(vr_card_present(vr, 1));
	vr_insert_card(vr, 1);
	assert_int_equal(vr_interrupt_in(vr, m, sizeof(m)), 2);
	assert_int_equal(m[1], 0x0D);
	msg(vr, 0x65, 1, 0x33, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 1, 0x33, 0x01, 0);
	vr_hardware_error(vr, 1, 1);
	assert_int_equal(vr_interrupt_in(vr, m, sizeof(m)), 4);
	assert_memory_equal(m, "\x51\x01\x33\x01", 4);
	vr_free(vr);
}

/* ---- XfrBlock, directly -------------------------------------------------------------- */

static void tpdu_t0_case4_answers_61xx_then_get_response(void **state)
{
	static const uint8_t cmd[] = { 0x80, 0x36, 0x00, 0x20, 0x01, 0xAA };
	static const uint8_t get[] = { 0x80, 0xC0, 0x00, 0x00, 0x20 };
	static const uint8_t get_short[] = { 0x80, 0xC0, 0x00, 0x00, 0x30 };
	struct vreader *vr = new_reader("tpdu");
	size_t n;

	(void)state;
	power_up(vr);
	msg(vr, 0x6F, 0, 2, 0, 0, 0, cmd, sizeof(cmd));
	n = expect(vr, 0x80, 0, 2, 0x00, 0);
	assert_int_equal(n, 2);
	assert_memory_equal(ans + 10, "\x61\x20", 2);
	msg(vr, 0x6F, 0, 3, 0, 0, 0, get_short, sizeof(get_short)); /* too long: 6C 20 */
	n = expect(vr, 0x80, 0, 3, 0x00, 0);
	assert_memory_equal(ans + 10, "\x6C\x20", 2);
	msg(vr, 0x6F, 0, 4, 0, 0, 0, get, sizeof(get));
	n = expect(vr, 0x80, 0, 4, 0x00, 0);
	assert_int_equal(n, 0x22);
	for (size_t i = 0; i < 0x20; i++)
		assert_int_equal(ans[10 + i], i);
	assert_memory_equal(ans + 10 + 0x20, "\x90\x00", 2);
	vr_free(vr);
}

static void time_taking_command_sends_time_extensions_first(void **state)
{
	static const uint8_t cmd[] = { 0x80, 0x38, 0x00, 0x03 };
	struct vreader *vr = new_reader(NULL);
	size_t n;

	(void)state;
	power_up(vr);
	msg(vr, 0x6F, 0, 2, 0, 0, 0, cmd, sizeof(cmd));
	for (int i = 0; i < 3; i++)
		assert_int_equal(expect(vr, 0x80, 0, 2, 0x80, 1), 0);
	n = expect(vr, 0x80, 0, 2, 0x00, 0);
	assert_int_equal(n, 2);
	assert_memory_equal(ans + 10, "\x90\x00", 2);
	vr_free(vr);
}

static void extended_level_chains_both_ways(void **state)
{
	static uint8_t apdu[7 + 600];
	static const uint8_t fill[] = { 0x80, 0x00, 0x04, 0x5A, 0x00, 0x02, 0x00 }; /* 512 bytes */
	struct vreader *vr = new_reader("extended");
	size_t n, total = 0;

	(void)state;
	power_up(vr);
	/* 80 12 01 80 00 02 58 + 600 bytes in three parts */
	memcpy(apdu, "\x80\x12\x01\x80\x00\x02\x58", 7);
	msg(vr, 0x6F, 0, 2, 0, 0x01, 0x00, apdu, 261);
	expect(vr, 0x80, 0, 2, 0x00, 0);
	assert_int_equal(ans[9], 0x10);
	msg(vr, 0x6F, 0, 3, 0, 0x03, 0x00, apdu + 261, 261);
	expect(vr, 0x80, 0, 3, 0x00, 0);
	assert_int_equal(ans[9], 0x10);
	msg(vr, 0x6F, 0, 4, 0, 0x02, 0x00, apdu + 522, sizeof(apdu) - 522);
	n = expect(vr, 0x80, 0, 4, 0x00, 0);
	assert_int_equal(ans[9], 0x00);
	assert_memory_equal(ans + 10, "\x90\x00", n);
	/* 512 + 2 bytes back in parts of at most 261 */
	msg(vr, 0x6F, 0, 5, 0, 0, 0, fill, sizeof(fill));
	n = expect(vr, 0x80, 0, 5, 0x00, 0);
	assert_int_equal(ans[9], 0x01);
	assert_int_equal(n, 261);
	total += n;
	msg(vr, 0x6F, 0, 6, 0, 0x10, 0x00, NULL, 0);
	n = expect(vr, 0x80, 0, 6, 0x00, 0);
	assert_int_equal(ans[9], 0x02);
	total += n;
	assert_int_equal(total, 514);
	assert_memory_equal(ans + 10 + n - 2, "\x90\x00", 2);
	msg(vr, 0x6F, 0, 7, 0, 0x10, 0x00, NULL, 0); /* nothing left */
	expect(vr, 0x80, 0, 7, 0x40, 8);
	vr_free(vr);
}

static void short_level_refuses_extended_apdu(void **state)
{
	static const uint8_t cmd[] = { 0x80, 0x00, 0x04, 0x01, 0x00, 0x01, 0x00 };
	struct vreader *vr = new_reader(NULL);

	(void)state;
	power_up(vr);
	msg(vr, 0x6F, 0, 2, 0, 0, 0, cmd, sizeof(cmd));
	expect(vr, 0x80, 0, 2, 0x40, 10);
	vr_free(vr);
}

static void applet_answers_pin_and_errors(void **state)
{
	static const uint8_t verify_bad[] = { 0x00, 0x20, 0x00, 0x80, 0x08, '9', '9', '9', '9',
					      0xFF, 0xFF, 0xFF, 0xFF };
	static const uint8_t verify_ok[] = { 0x00, 0x20, 0x00, 0x80, 0x08, '1', '2', '3', '4',
					     0xFF, 0xFF, 0xFF, 0xFF };
	static const uint8_t change[] = { 0x00, 0x24, 0x00, 0x80, 0x10, '1', '2', '3', '4', 0xFF, 0xFF,
					  0xFF, 0xFF, '5', '6', '7', '8', '9', 0xFF, 0xFF, 0xFF };
	static const struct {
		const uint8_t *apdu;
		size_t len;
		uint16_t sw;
	} cases[] = {
		{ verify_bad, sizeof(verify_bad), 0x63C2 },
		{ verify_ok, sizeof(verify_ok), 0x9000 },
		{ change, sizeof(change), 0x9000 },
		{ verify_ok, sizeof(verify_ok), 0x63C2 },
		{ (const uint8_t *)"\x80\x99\x00\x00", 4, 0x6D00 },
		{ (const uint8_t *)"\x90\x30\x00\x00", 4, 0x6E00 },
		{ (const uint8_t *)"\x80\x32\x00\x00\x03\x00\x01\x03", 8, 0x6A80 },
		{ (const uint8_t *)"\x00\xA4\x04\x00\x06\xA0\x00\x00\x00\x18\xFF", 11, 0x9000 },
		{ (const uint8_t *)"\x00\xA4\x04\x00\x06\xA0\x00\x00\x00\x18\xFE", 11, 0x6A82 },
		{ (const uint8_t *)"\x80\x34\x00\x10\x08", 5, 0x6C10 },
	};
	struct vreader *vr = new_reader(NULL);
	size_t n;

	(void)state;
	power_up(vr);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msg(vr, 0x6F, 0, (uint8_t)i, 0, 0, 0, cases[i].apdu, cases[i].len);
		n = expect(vr, 0x80, 0, (uint8_t)i, 0x00, 0);
		assert_int_equal(n, 2);
		assert_int_equal(ans[10] << 8 | ans[11], cases[i].sw);
	}
	vr_free(vr);
}

/* GET RESPONSE is an interindustry command (ISO 7816-4: CLA 0X): with nothing
 * waiting, 00 C0 answers 69 85; 80 C0 is a proprietary INS the applet does
 * not know, 6D 00. (Over T=0 with data waiting, any CLA works: vcard.c.) */
static void get_response_with_nothing_waiting_is_69_85_in_the_iso_class_only(void **state)
{
	struct vreader *vr = new_reader(NULL);
	size_t n;

	(void)state;
	power_up(vr);
	msg(vr, 0x6F, 0, 2, 0, 0, 0, (const uint8_t *)"\x00\xC0\x00\x00\x10", 5);
	n = expect(vr, 0x80, 0, 2, 0x00, 0);
	assert_memory_equal(ans + 10, "\x69\x85", n);
	msg(vr, 0x6F, 0, 3, 0, 0, 0, (const uint8_t *)"\x80\xC0\x00\x00\x10", 5);
	n = expect(vr, 0x80, 0, 3, 0x00, 0);
	assert_memory_equal(ans + 10, "\x6D\x00", n);
	vr_free(vr);
	vr = new_reader("tpdu");
	power_up(vr);
	msg(vr, 0x6F, 0, 2, 0, 0, 0, (const uint8_t *)"\x00\xC0\x00\x00\x10", 5);
	n = expect(vr, 0x80, 0, 2, 0x00, 0);
	assert_memory_equal(ans + 10, "\x69\x85", n);
	vr_free(vr);
}

static void tpdu_pps_is_echoed_when_the_card_takes_it(void **state)
{
	static const uint8_t pps_t0[] = { 0xFF, 0x10, 0x96, 0x79 };
	static const uint8_t pps_t1[] = { 0xFF, 0x11, 0x96, 0x78 };
	static const uint8_t pps_bad_pck[] = { 0xFF, 0x11, 0x96, 0x77 };
	static const uint8_t pps_bad_fidi[] = { 0xFF, 0x10, 0x97, 0x78 };
	struct vreader *vr = new_reader("tpdu");
	size_t n;

	(void)state;
	power_up(vr);
	msg(vr, 0x6F, 0, 2, 0, 0, 0, pps_t1, sizeof(pps_t1));
	n = expect(vr, 0x80, 0, 2, 0x00, 0);
	assert_int_equal(n, sizeof(pps_t1));
	assert_memory_equal(ans + 10, pps_t1, n);
	msg(vr, 0x6C, 0, 3, 0, 0, 0, NULL, 0);
	n = expect(vr, 0x82, 0, 3, 0x00, 0);
	assert_int_equal(n, 7);
	assert_int_equal(ans[9], 1);
	assert_int_equal(ans[10], 0x96);
	/* only right after the ATR: the slot now runs T=1 and takes it for a
	 * malformed block (R-block, N(R) 0, "other error") */
	msg(vr, 0x6F, 0, 4, 0, 0, 0, pps_t0, sizeof(pps_t0));
	n = expect(vr, 0x80, 0, 4, 0x00, 0);
	assert_int_equal(n, 4);
	assert_memory_equal(ans + 10, "\x00\x82\x00\x82", 4);
	power_up(vr);
	msg(vr, 0x6F, 0, 5, 0, 0, 0, pps_bad_pck, sizeof(pps_bad_pck));
	expect(vr, 0x80, 0, 5, 0x40, 0xFE);
	power_up(vr);
	msg(vr, 0x6F, 0, 6, 0, 0, 0, pps_bad_fidi, sizeof(pps_bad_fidi));
	expect(vr, 0x80, 0, 6, 0x40, 0xFE);
	power_up(vr);
	msg(vr, 0x6F, 0, 7, 0, 0, 0, pps_t0, sizeof(pps_t0));
	n = expect(vr, 0x80, 0, 7, 0x00, 0);
	assert_memory_equal(ans + 10, pps_t0, n);
	msg(vr, 0x6F, 0, 8, 0, 0, 0, pps_t0, sizeof(pps_t0));
	n = expect(vr, 0x80, 0, 8, 0x00, 0);
	assert_memory_equal(ans + 10, "\x67\x00", n); /* a 4-byte TPDU is malformed */
	vr_free(vr);
}

/* ---- T=1 at TPDU level: the card's side of the block protocol ------------------ */

static int t1_crc;
/* The NAD of the host's blocks, and the one the card's blocks must carry. */
static uint8_t t1_nad, t1_card_nad;

/* One T=1 block (NAD t1_nad) with its EDC into b; returns its length. */
static size_t t1_frame(uint8_t *b, uint8_t pcb, const uint8_t *inf, size_t len)
{
	size_t n = 3 + len;

	b[0] = t1_nad;
	b[1] = pcb;
	b[2] = (uint8_t)len;
	if (len)
		memcpy(b + 3, inf, len);
	if (t1_crc) {
		uint16_t crc = vcard_t1_crc(b, n);

		b[n++] = (uint8_t)(crc >> 8);
		b[n++] = (uint8_t)crc;
	} else {
		uint8_t x = 0;

		for (size_t i = 0; i < n; i++)
			x ^= b[i];
		b[n++] = x;
	}
	return n;
}

/* Send one block in an XfrBlock; the card's block is at ans + 10. */
static size_t t1_send(struct vreader *vr, uint8_t seq, uint8_t pcb, const uint8_t *inf, size_t len)
{
	uint8_t b[3 + 254 + 2];
	size_t n = t1_frame(b, pcb, inf, len);

	msg(vr, 0x6F, 0, seq, 0, 0, 0, b, n);
	return expect(vr, 0x80, 0, seq, 0x00, 0);
}

/* The card's block must have this PCB and INF (and NAD t1_card_nad). */
static void t1_expect(size_t n, uint8_t pcb, const uint8_t *inf, size_t len)
{
	assert_int_equal(n, 3 + len + (t1_crc ? 2 : 1));
	assert_int_equal(ans[10], t1_card_nad);
	assert_int_equal(ans[11], pcb);
	assert_int_equal(ans[12], len);
	if (len)
		assert_memory_equal(ans + 13, inf, len);
}

/* A TPDU reader whose card runs T=1 (after a PPS), with one more profile
 * setting when key is not NULL. */
static struct vreader *t1_reader_with(const char *edc, const char *features, const char *key,
				      const char *value)
{
	static const uint8_t pps_t1[] = { 0xFF, 0x11, 0x96, 0x78 };
	struct vr_profile p;
	const char *why;
	struct vreader *vr;

	vr_profile_defaults(&p);
	assert_int_equal(vr_profile_set(&p, "level", "tpdu", &why), 0);
	assert_int_equal(vr_profile_set(&p, "card-edc", edc, &why), 0);
	assert_int_equal(vr_profile_set(&p, "features", features, &why), 0);
	if (key)
		assert_int_equal(vr_profile_set(&p, key, value, &why), 0);
	vr = vr_new(&p);
	assert_non_null(vr);
	t1_crc = edc[0] == 'c';
	t1_nad = 0;
	t1_card_nad = 0;
	power_up(vr);
	msg(vr, 0x6F, 0, 2, 0, 0, 0, pps_t1, sizeof(pps_t1));
	expect(vr, 0x80, 0, 2, 0x00, 0);
	return vr;
}

static struct vreader *t1_reader(const char *edc, const char *features)
{
	return t1_reader_with(edc, features, NULL, NULL);
}

static void t1_crc_is_the_iso_13239_one(void **state)
{
	(void)state;
	/* CRC-16 with polynomial 1021 reflected, initial FFFF, no final XOR: the
	 * catalogued check value of "123456789" is 6F91 */
	assert_int_equal(vcard_t1_crc((const uint8_t *)"123456789", 9), 0x6F91);
}

static void t1_card_chains_responses_by_ifsd(void **state)
{
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x06, 0xA0, 0x00, 0x00, 0x00, 0x18, 0xFF };
	static const uint8_t get256[] = { 0x80, 0x34, 0x01, 0x00, 0x00 };
	struct vreader *vr = t1_reader("lrc", "3A");
	uint8_t got[300];
	size_t total = 0, n;
	uint8_t seq = 3, card_ns = 0;

	(void)state;
	n = t1_send(vr, seq++, 0x00, select, sizeof(select));
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	card_ns = 1;
	n = t1_send(vr, seq++, 0x40, get256, sizeof(get256));
	for (;;) {
		assert_int_equal(ans[11] & 0xBF, (ans[11] & 0x20) ? 0x20 : 0x00);
		assert_int_equal((ans[11] >> 6) & 1, card_ns);
		assert_true(ans[12] <= 32); /* IFSD is 32 until the host says otherwise */
		memcpy(got + total, ans + 13, ans[12]);
		total += ans[12];
		card_ns ^= 1;
		if (!(ans[11] & 0x20))
			break;
		n = t1_send(vr, seq++, (uint8_t)(0x80 | (card_ns ? 0x10 : 0)), NULL, 0);
	}
	(void)n;
	assert_int_equal(total, 258);
	for (size_t i = 0; i < 256; i++)
		assert_int_equal(got[i], (uint8_t)i);
	assert_memory_equal(got + 256, "\x90\x00", 2);
	/* IFS request: 254 from now on, so the same answer comes in two blocks */
	n = t1_send(vr, seq++, 0xC1, (const uint8_t *)"\xFE", 1);
	t1_expect(n, 0xE1, (const uint8_t *)"\xFE", 1);
	n = t1_send(vr, seq++, 0x00, get256, sizeof(get256));
	assert_int_equal(ans[11], (uint8_t)((card_ns ? 0x40 : 0) | 0x20));
	assert_int_equal(ans[12], 254);
	vr_free(vr);
}

/* dwFeatures 0x400: the reader gave the card its IFSD (dwMaxIFSD 254) itself. */
static void t1_reader_with_auto_ifsd_lets_the_card_send_long_blocks(void **state)
{
	static const uint8_t get256[] = { 0x80, 0x34, 0x01, 0x00, 0x00 };
	struct vreader *vr = t1_reader("lrc", "4BA");
	size_t n;

	(void)state;
	n = t1_send(vr, 3, 0x00, get256, sizeof(get256));
	assert_int_equal(n, 3 + 254 + 1);
	assert_int_equal(ans[11], 0x20);
	n = t1_send(vr, 4, 0x90, NULL, 0);
	t1_expect(n, 0x40, (const uint8_t[]){ 0xFE, 0xFF, 0x90, 0x00 }, 4);
	vr_free(vr);
}

static void t1_card_takes_chained_commands_and_asks_wtx(void **state)
{
	static const uint8_t wtx_cmd[] = { 0x80, 0x38, 0x00, 0x05 };
	struct vreader *vr = t1_reader("crc", "3A");
	uint8_t apdu[5 + 255];
	size_t n;

	(void)state;
	memcpy(apdu, "\x80\x32\x00\x00\xFF", 5);
	for (int i = 0; i < 255; i++)
		apdu[5 + i] = (uint8_t)i;
	n = t1_send(vr, 3, 0x20, apdu, 254); /* I(0, more) */
	t1_expect(n, 0x90, NULL, 0);        /* R(N(R) 1) */
	n = t1_send(vr, 4, 0x40, apdu + 254, sizeof(apdu) - 254);
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	n = t1_send(vr, 5, 0x00, wtx_cmd, sizeof(wtx_cmd));
	t1_expect(n, 0xC3, (const uint8_t *)"\x05", 1); /* S(WTX request, 5) */
	n = t1_send(vr, 6, 0xE3, (const uint8_t *)"\x05", 1);
	t1_expect(n, 0x40, (const uint8_t *)"\x90\x00", 2);
	vr_free(vr);
}

static void t1_card_recovers_with_r_blocks_and_resynch(void **state)
{
	static const uint8_t bad_edc[] = { 0x00, 0x00, 0x04, 0x80, 0x30, 0x00, 0x00, 0x00 };
	static const uint8_t cmd[] = { 0x80, 0x30, 0x00, 0x00 };
	struct vreader *vr = t1_reader("lrc", "3A");
	size_t n;

	(void)state;
	msg(vr, 0x6F, 0, 3, 0, 0, 0, bad_edc, sizeof(bad_edc));
	n = expect(vr, 0x80, 0, 3, 0x00, 0);
	t1_expect(n, 0x81, NULL, 0);          /* R(N(R) 0, EDC error) */
	n = t1_send(vr, 4, 0x00, cmd, sizeof(cmd));
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	n = t1_send(vr, 5, 0x82, NULL, 0);    /* the host lost it: same block again */
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	n = t1_send(vr, 6, 0x00, cmd, sizeof(cmd)); /* N(S) 0 again: out of sequence */
	t1_expect(n, 0x92, NULL, 0);
	n = t1_send(vr, 7, 0xC0, NULL, 0);    /* RESYNCH */
	t1_expect(n, 0xE0, NULL, 0);
	n = t1_send(vr, 8, 0x00, cmd, sizeof(cmd));
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	n = t1_send(vr, 9, 0xC2, NULL, 0);    /* ABORT */
	t1_expect(n, 0xE2, NULL, 0);
	n = t1_send(vr, 10, 0x80, NULL, 0);   /* nothing from before ABORT is sent again */
	t1_expect(n, 0x92, NULL, 0);
	vr_free(vr);
}

/* ---- T=1: R-blocks and repeated I-blocks (ISO 7816-3 11.6.2.3, annex A) ---------- */

static const uint8_t t1_noop[] = { 0x80, 0x30, 0x00, 0x00 };

/* Rule 7.1: R(N(R)) naming the card's last I-block gets that I-block again,
 * even when S-blocks went between. */
static void t1_r_block_naming_the_last_i_block_gets_it_again_after_s_blocks(void **state)
{
	struct vreader *vr = t1_reader("lrc", "3A");
	size_t n;

	(void)state;
	n = t1_send(vr, 3, 0x00, t1_noop, sizeof(t1_noop));
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	n = t1_send(vr, 4, 0xC1, (const uint8_t *)"\x40", 1);  /* S(IFS request, 64) */
	t1_expect(n, 0xE1, (const uint8_t *)"\x40", 1);
	n = t1_send(vr, 5, 0x81, NULL, 0);                    /* R(0), EDC error: I(0) again */
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	n = t1_send(vr, 6, 0x80, NULL, 0);                    /* and again, without error bits */
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	vr_free(vr);
}

/* Rules 2.2 and 5: during the card's chain, an R-block whose N(R) is not the
 * N(S) of the card's last I-block acknowledges it whatever its error bits. */
static void t1_r_block_acknowledges_a_chained_part_whatever_its_error_bits(void **state)
{
	static const uint8_t get64[] = { 0x80, 0x34, 0x00, 0x40, 0x40 };
	struct vreader *vr = t1_reader("lrc", "3A"); /* IFSD 32: 66 bytes in three parts */
	size_t n;

	(void)state;
	n = t1_send(vr, 3, 0x00, get64, sizeof(get64));
	assert_int_equal(ans[11], 0x20);                      /* I(0, more) */
	assert_int_equal(ans[13], 0x00);
	n = t1_send(vr, 4, 0x92, NULL, 0);                    /* R(1), "other error" */
	assert_int_equal(ans[11], 0x60);                      /* I(1, more): the second part */
	assert_int_equal(ans[13], 32);
	n = t1_send(vr, 5, 0x90, NULL, 0);                    /* R(1) names I(1): again */
	assert_int_equal(ans[11], 0x60);
	assert_int_equal(ans[13], 32);
	n = t1_send(vr, 6, 0x81, NULL, 0);                    /* R(0), EDC error: acknowledges I(1) */
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);        /* I(0): the last part */
	vr_free(vr);
}

/* An R-block asking for an I-block the card never sent (the host's I-block
 * never arrived): the card answers R(N(R)) with the N(S) it waits for. */
static void t1_r_block_for_an_unsent_i_block_gets_the_cards_n_r(void **state)
{
	struct vreader *vr = t1_reader("lrc", "3A");
	size_t n;

	(void)state;
	n = t1_send(vr, 3, 0x80, NULL, 0);                    /* before any I-block */
	t1_expect(n, 0x82, NULL, 0);                          /* R(0), other error */
	n = t1_send(vr, 4, 0x00, t1_noop, sizeof(t1_noop));
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	n = t1_send(vr, 5, 0x90, NULL, 0);                    /* asks for I(1): never sent */
	t1_expect(n, 0x92, NULL, 0);                          /* "send your I(1)" */
	n = t1_send(vr, 6, 0x40, t1_noop, sizeof(t1_noop));
	t1_expect(n, 0x40, (const uint8_t *)"\x90\x00", 2);
	vr_free(vr);
}

/* Rule 7.2: the card's chaining acknowledgement lost, the host's R-block
 * gets the same R-block again; the chain then goes on. */
static void t1_r_block_gets_a_lost_chaining_acknowledgement_again(void **state)
{
	static const uint8_t part1[] = { 0x80, 0x32, 0x00, 0x00, 0x04, 0x00 };
	static const uint8_t part2[] = { 0x01, 0x02, 0x03 };
	struct vreader *vr = t1_reader("lrc", "3A");
	size_t n;

	(void)state;
	n = t1_send(vr, 3, 0x20, part1, sizeof(part1));      /* I(0, more) */
	t1_expect(n, 0x90, NULL, 0);                          /* R(1) */
	n = t1_send(vr, 4, 0x80, NULL, 0);                    /* R(0): "where is I(0)?" */
	t1_expect(n, 0x90, NULL, 0);                          /* the same R(1) */
	n = t1_send(vr, 5, 0x40, part2, sizeof(part2));
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);   /* 00 01 02 03 checked: 90 00 */
	vr_free(vr);
}

/* A host that lost the card's answer and sends its I-block again gets the
 * answer again, and the command does not run twice (a wrong PIN counts once);
 * an I-block out of sequence otherwise is a protocol error: R(N(R)), error 2. */
static void t1_repeated_i_block_gets_the_same_answer_without_running_twice(void **state)
{
	static const uint8_t wrong_pin[] = { 0x00, 0x20, 0x00, 0x80, 0x04, '9', '9', '9', '9' };
	static const uint8_t pin_status[] = { 0x00, 0x20, 0x00, 0x80 };
	struct vreader *vr = t1_reader("crc", "3A");
	size_t n;

	(void)state;
	n = t1_send(vr, 3, 0x00, wrong_pin, sizeof(wrong_pin));
	t1_expect(n, 0x00, (const uint8_t *)"\x63\xC2", 2);
	n = t1_send(vr, 4, 0x00, wrong_pin, sizeof(wrong_pin)); /* the same I(0) again */
	t1_expect(n, 0x00, (const uint8_t *)"\x63\xC2", 2);
	n = t1_send(vr, 5, 0x00, pin_status, sizeof(pin_status)); /* I(0), another command */
	t1_expect(n, 0x92, NULL, 0);
	n = t1_send(vr, 6, 0x40, pin_status, sizeof(pin_status));
	t1_expect(n, 0x40, (const uint8_t *)"\x63\xC2", 2);   /* two tries left: counted once */
	vr_free(vr);
}

/* ---- T=1: the card's own S(IFS request), NAD ------------------------------------- */

static void t1_card_asks_its_ifsc_before_its_first_i_block(void **state)
{
	struct vreader *vr = t1_reader_with("lrc", "3A", "card-ifs-request", "16");
	uint8_t apdu[5 + 13];
	size_t n;

	(void)state;
	memcpy(apdu, "\x80\x32\x00\x00\x0C", 5);             /* 17 bytes, 12 of data */
	for (int i = 0; i < 13; i++)
		apdu[5 + i] = (uint8_t)i;
	n = t1_send(vr, 3, 0x00, apdu, 17);                   /* IFSC 254 for now: taken */
	t1_expect(n, 0xC1, (const uint8_t *)"\x10", 1);      /* S(IFS request, 16) */
	n = t1_send(vr, 4, 0xE1, (const uint8_t *)"\x10", 1);
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	n = t1_send(vr, 5, 0x40, apdu, 17);                   /* longer than IFSC 16 */
	t1_expect(n, 0x92, NULL, 0);
	apdu[4] = 0x0B;
	n = t1_send(vr, 6, 0x40, apdu, 16);                   /* 16: taken, no request again */
	t1_expect(n, 0x40, (const uint8_t *)"\x90\x00", 2);
	n = t1_send(vr, 7, 0xC0, NULL, 0);                    /* RESYNCH: initial values back */
	t1_expect(n, 0xE0, NULL, 0);
	apdu[4] = 0x0C;
	n = t1_send(vr, 8, 0x00, apdu, 17);
	t1_expect(n, 0xC1, (const uint8_t *)"\x10", 1);      /* so the card asks again */
	vr_free(vr);
}

/* A wrong S(IFS response) is invalid (R-block, error 2); the next block that
 * is not the right response gets the S(IFS request) again (rule 7.3). */
static void t1_card_asks_its_ifsc_again_after_a_wrong_response(void **state)
{
	struct vreader *vr = t1_reader_with("crc", "3A", "card-ifs-request", "200");
	size_t n;

	(void)state;
	n = t1_send(vr, 3, 0x00, t1_noop, sizeof(t1_noop));
	t1_expect(n, 0xC1, (const uint8_t *)"\xC8", 1);
	n = t1_send(vr, 4, 0xE1, (const uint8_t *)"\x20", 1);  /* IFS 32, not 200 */
	t1_expect(n, 0x92, NULL, 0);
	n = t1_send(vr, 5, 0x92, NULL, 0);                     /* an R-block: not the response */
	t1_expect(n, 0xC1, (const uint8_t *)"\xC8", 1);
	n = t1_send(vr, 6, 0x40, t1_noop, sizeof(t1_noop));    /* an I-block: the same */
	t1_expect(n, 0xC1, (const uint8_t *)"\xC8", 1);
	n = t1_send(vr, 7, 0xE1, (const uint8_t *)"\xC8", 1);
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	vr_free(vr);
}

/* card-nad=12: the host is SAD 2, the card DAD 1; the card answers with the
 * addresses swapped (21). A block with another NAD is invalid: R-block,
 * error 2, with NAD 0 when it is the first block after the ATR (rule 7.5). */
static void t1_card_answers_its_nad_swapped_and_refuses_other_nads(void **state)
{
	struct vreader *vr = t1_reader_with("lrc", "3A", "card-nad", "12");
	size_t n;

	(void)state;
	n = t1_send(vr, 3, 0x00, t1_noop, sizeof(t1_noop));   /* NAD 00 */
	t1_expect(n, 0x82, NULL, 0);                          /* NAD 00 as well */
	t1_nad = 0x12;
	t1_card_nad = 0x21;
	n = t1_send(vr, 4, 0x00, t1_noop, sizeof(t1_noop));
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	t1_nad = 0x13;                                        /* another card's address */
	n = t1_send(vr, 5, 0x40, t1_noop, sizeof(t1_noop));
	t1_expect(n, 0x92, NULL, 0);
	t1_nad = 0x12;
	n = t1_send(vr, 6, 0x40, t1_noop, sizeof(t1_noop));
	t1_expect(n, 0x40, (const uint8_t *)"\x90\x00", 2);
	vr_free(vr);
}

/* ---- character level: the host drives the I/O line byte by byte ------------------- */

/* abData out, want bytes back (wLevelParameter); the answer's length. */
static size_t char_x(struct vreader *vr, uint8_t seq, const uint8_t *data, size_t len, uint16_t want,
		     uint8_t status, uint8_t error)
{
	msg(vr, 0x6F, 0, seq, 0, (uint8_t)want, (uint8_t)(want >> 8), data, len);
	return expect(vr, 0x80, 0, seq, status, error);
}

/* A host doing T=0 by procedure bytes (ISO 7816-3 10.3.3), as libccid does at
 * character level: header, then INS / NULL / SW1 decide what comes next.
 * The response (data and SW1 SW2) goes to out; returns its length. */
static size_t char_t0_transmit(struct vreader *vr, uint8_t *seq, const uint8_t *apdu, size_t len,
			       uint8_t *out)
{
	uint8_t hdr[5] = { apdu[0], apdu[1], apdu[2], apdu[3], len > 4 ? apdu[4] : 0 };
	int is_rcv = len <= 5;
	size_t exp = is_rcv ? (size_t)(hdr[4] ? hdr[4] : 256) + 2 : 2;

	char_x(vr, (*seq)++, hdr, 5, 1, 0x00, 0);
	for (;;) {
		uint8_t b = ans[10];

		if (b == 0x60) {
			char_x(vr, (*seq)++, NULL, 0, 1, 0x00, 0);
			continue;
		}
		if (b == hdr[1] && is_rcv) {
			size_t n = char_x(vr, (*seq)++, NULL, 0, (uint16_t)exp, 0x00, 0);

			memcpy(out, ans + 10, n);
			return n;
		}
		if (b == hdr[1]) {
			char_x(vr, (*seq)++, apdu + 5, len - 5, 1, 0x00, 0);
			continue;
		}
		assert_true((b & 0xF0) == 0x60 || (b & 0xF0) == 0x90);
		out[0] = b;
		char_x(vr, (*seq)++, NULL, 0, 1, 0x00, 0);
		out[1] = ans[10];
		return 2;
	}
}

static void character_level_t0_runs_the_applet_by_procedure_bytes(void **state)
{
	static const uint8_t pps_t0[] = { 0xFF, 0x10, 0x96, 0x79 };
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x06, 0xA0, 0x00, 0x00, 0x00, 0x18, 0xFF };
	struct vreader *vr = new_reader("character");
	uint8_t out[300], apdu[5 + 255];
	uint8_t seq = 2;
	size_t n;

	(void)state;
	power_up(vr);
	n = char_x(vr, seq++, pps_t0, sizeof(pps_t0), 4, 0x00, 0);
	assert_memory_equal(ans + 10, pps_t0, n);
	n = char_t0_transmit(vr, &seq, select, sizeof(select), out);
	assert_memory_equal(out, "\x90\x00", n);
	for (unsigned len = 1; len <= 256; len++) {
		uint8_t cmd[5] = { 0x80, 0x34, (uint8_t)(len >> 8), (uint8_t)len, (uint8_t)len };

		n = char_t0_transmit(vr, &seq, cmd, 5, out);
		assert_int_equal(n, len + 2);
		for (unsigned i = 0; i < len; i++)
			assert_int_equal(out[i], (uint8_t)i);
		assert_memory_equal(out + len, "\x90\x00", 2);
	}
	for (unsigned len = 1; len <= 255; len++) {
		memcpy(apdu, "\x80\x32\x00\x00", 4);
		apdu[4] = (uint8_t)len;
		for (unsigned i = 0; i < len; i++)
			apdu[5 + i] = (uint8_t)i;
		n = char_t0_transmit(vr, &seq, apdu, 5 + len, out);
		assert_memory_equal(out, "\x90\x00", n);
	}
	/* 6C: a wrong Le gets SW1 SW2 at once */
	n = char_t0_transmit(vr, &seq, (const uint8_t *)"\x80\x34\x00\x10\x08", 5, out);
	assert_memory_equal(out, "\x6C\x10", n);
	/* 61xx then GET RESPONSE */
	n = char_t0_transmit(vr, &seq, (const uint8_t *)"\x80\x36\x00\x20\x01\xAA", 6, out);
	assert_memory_equal(out, "\x61\x20", n);
	n = char_t0_transmit(vr, &seq, (const uint8_t *)"\x80\xC0\x00\x00\x20", 5, out);
	assert_int_equal(n, 0x22);
	assert_int_equal(out[0x1F], 0x1F);
	/* time: NULL procedure bytes first */
	char_x(vr, seq++, (const uint8_t *)"\x80\x38\x00\x02\x00", 5, 3, 0x00, 0);
	assert_memory_equal(ans + 10, "\x60\x60\x90", 3);
	char_x(vr, seq++, NULL, 0, 1, 0x00, 0);
	assert_int_equal(ans[10], 0x00);
	/* more bytes asked than the card sends: mute */
	char_x(vr, seq++, NULL, 0, 1, 0x40, 0xFE);
	vr_free(vr);
}

static void character_level_t1_takes_blocks_byte_by_byte(void **state)
{
	static const uint8_t pps_t1[] = { 0xFF, 0x11, 0x96, 0x78 };
	static const uint8_t block[] = { 0x00, 0x00, 0x04, 0x80, 0x30, 0x00, 0x00, 0xB4 };
	struct vreader *vr = new_reader("character");
	size_t n;

	(void)state;
	power_up(vr);
	char_x(vr, 2, pps_t1, sizeof(pps_t1), 4, 0x00, 0);
	/* the block in two pieces; the answer read as prologue, then the rest */
	char_x(vr, 3, block, 3, 0, 0x00, 0);
	n = char_x(vr, 4, block + 3, sizeof(block) - 3, 3, 0x00, 0);
	assert_memory_equal(ans + 10, "\x00\x00\x02", n);
	n = char_x(vr, 5, NULL, 0, 3, 0x00, 0);
	assert_memory_equal(ans + 10, "\x90\x00\x92", n);
	vr_free(vr);
}

/* t1-bad-edc and t1-lost at character level: the block comes with its last
 * EDC byte flipped, or not at all (the read fails, ICC mute, and nothing is
 * left on the line); the card keeps the good block for the host's R-block. */
static void character_level_t1_faults_spoil_or_lose_the_cards_block(void **state)
{
	static const uint8_t pps_t1[] = { 0xFF, 0x11, 0x96, 0x78 };
	static const uint8_t good[] = { 0x00, 0x40, 0x02, 0x90, 0x00, 0xD2 };
	struct vreader *vr = new_reader("character");
	const char *why;
	uint8_t b[16];
	size_t n;

	(void)state;
	t1_crc = 0;
	t1_nad = 0;
	power_up(vr);
	char_x(vr, 2, pps_t1, sizeof(pps_t1), 4, 0x00, 0);
	assert_int_equal(vr_set_fault(vr, "t1-bad-edc", 1, &why), 0);
	n = t1_frame(b, 0x00, t1_noop, sizeof(t1_noop));
	char_x(vr, 3, b, n, 6, 0x00, 0);
	assert_memory_equal(ans + 10, "\x00\x00\x02\x90\x00", 5);
	assert_int_equal(ans[15], 0x92 ^ 0xFF);
	n = t1_frame(b, 0x81, NULL, 0);                       /* R(0), EDC error */
	char_x(vr, 4, b, n, 6, 0x00, 0);
	assert_memory_equal(ans + 10, "\x00\x00\x02\x90\x00\x92", 6);
	assert_int_equal(vr_set_fault(vr, "t1-lost", 1, &why), 0);
	n = t1_frame(b, 0x40, t1_noop, sizeof(t1_noop));
	char_x(vr, 5, b, n, 3, 0x40, 0xFE);                   /* silence */
	char_x(vr, 6, NULL, 0, 1, 0x40, 0xFE);                /* and nothing stray */
	n = t1_frame(b, 0x90, NULL, 0);                       /* R(1): I(1) again */
	n = char_x(vr, 7, b, n, 6, 0x00, 0);
	assert_memory_equal(ans + 10, good, n);
	char_x(vr, 8, NULL, 0, 1, 0x40, 0xFE);
	/* half duplex: what the host left unread when it sent its next block
	 * is gone, so the next read starts with the new block */
	n = t1_frame(b, 0x00, t1_noop, sizeof(t1_noop));
	n = char_x(vr, 9, b, n, 3, 0x00, 0);
	assert_memory_equal(ans + 10, "\x00\x00\x02", n);
	n = t1_frame(b, 0x80, NULL, 0);                       /* R(0): I(0) again */
	n = char_x(vr, 10, b, n, 6, 0x00, 0);
	assert_memory_equal(ans + 10, "\x00\x00\x02\x90\x00\x92", n);
	vr_free(vr);
}

/* ---- faults on demand ---------------------------------------------------------------- */

static void faults_spoil_the_next_answers_then_stop(void **state)
{
	static const uint8_t cmd[] = { 0x80, 0x30, 0x00, 0x00 };
	struct vreader *vr = new_reader(NULL);
	const char *why;
	size_t n;

	(void)state;
	power_up(vr);
	assert_int_equal(vr_set_fault(vr, "no-such-fault", 1, &why), -1);
	assert_non_null(why);
	assert_int_equal(vr_set_fault(vr, "wrong-seq", 1, &why), 0);
	msg(vr, 0x65, 0, 2, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 3, 0x00, 0);            /* bSeq + 1 */
	msg(vr, 0x65, 0, 3, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 3, 0x00, 0);            /* used up */
	assert_int_equal(vr_set_fault(vr, "wrong-slot", 1, &why), 0);
	msg(vr, 0x65, 0, 4, 0, 0, 0, NULL, 0);
	n = vr_bulk_in(vr, ans, sizeof(ans));
	assert_int_equal(n, 10);
	assert_int_equal(ans[5], 1);
	assert_int_equal(vr_set_fault(vr, "truncate", 1, &why), 0);
	msg(vr, 0x6F, 0, 5, 0, 0, 0, cmd, sizeof(cmd));
	n = vr_bulk_in(vr, ans, sizeof(ans));
	assert_int_equal(n, 11);                    /* dwLength 2, one byte sent */
	assert_int_equal(ans[1], 2);
	assert_int_equal(vr_set_fault(vr, "long-length", 1, &why), 0);
	msg(vr, 0x6F, 0, 6, 0, 0, 0, cmd, sizeof(cmd));
	n = vr_bulk_in(vr, ans, sizeof(ans));
	assert_int_equal(n, 12);
	assert_int_equal(ans[1], 18);
	assert_int_equal(vr_set_fault(vr, "mute", 1, &why), 0);
	msg(vr, 0x65, 0, 7, 0, 0, 0, NULL, 0);
	assert_int_equal(vr_bulk_in(vr, ans, sizeof(ans)), 0);
	assert_int_equal(vr_set_fault(vr, "time-storm", 1, &why), 0);
	msg(vr, 0x6F, 0, 8, 0, 0, 0, cmd, sizeof(cmd));
	for (int i = 0; i < 50; i++)
		expect(vr, 0x80, 0, 8, 0x80, 1);
	n = expect(vr, 0x80, 0, 8, 0x00, 0);
	assert_memory_equal(ans + 10, "\x90\x00", n);
	vr_free(vr);
}

static void front_end_faults_are_counted_but_left_to_the_front_ends(void **state)
{
	struct vreader *vr = new_reader(NULL);
	const char *why;

	(void)state;
	power_up(vr);
	assert_int_equal(vr_set_fault(vr, "zlp", 2, &why), 0);
	assert_int_equal(vr_set_fault(vr, "stall", 1, &why), 0);
	assert_int_equal(vr_set_fault(vr, "wrong-seq", 1, &why), 0);
	/* the core's answers are untouched by zlp and stall */
	msg(vr, 0x65, 0, 2, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 3, 0x00, 0);            /* wrong-seq did strike */
	assert_false(vr_front_fault(vr, VR_FAULT_WRONG_SEQ));   /* not a front-end fault */
	assert_true(vr_front_fault(vr, VR_FAULT_STALL));
	assert_false(vr_front_fault(vr, VR_FAULT_STALL));
	assert_true(vr_front_fault(vr, VR_FAULT_ZLP));
	assert_true(vr_front_fault(vr, VR_FAULT_ZLP));
	assert_false(vr_front_fault(vr, VR_FAULT_ZLP));
	/* "fault off" turns every fault off, the core's and the front ends' */
	assert_int_equal(vr_set_fault(vr, "stall", 5, &why), 0);
	assert_int_equal(vr_set_fault(vr, "wrong-slot", 5, &why), 0);
	vr_faults_off(vr);
	assert_false(vr_front_fault(vr, VR_FAULT_STALL));
	msg(vr, 0x65, 0, 3, 0, 0, 0, NULL, 0);
	expect(vr, 0x81, 0, 3, 0x00, 0);
	vr_free(vr);
}

static void t1_faults_spoil_the_cards_blocks(void **state)
{
	static const uint8_t cmd[] = { 0x80, 0x30, 0x00, 0x00 };
	struct vreader *vr = t1_reader("lrc", "3A");
	const char *why;
	size_t n;

	(void)state;
	assert_int_equal(vr_set_fault(vr, "t1-bad-edc", 1, &why), 0);
	n = t1_send(vr, 3, 0x00, cmd, sizeof(cmd));
	assert_int_equal(n, 6);
	assert_int_not_equal(ans[15], 0x00 ^ 0x00 ^ 0x02 ^ 0x90 ^ 0x00);
	n = t1_send(vr, 4, 0x81, NULL, 0);          /* R-block, EDC error: sent again, good */
	t1_expect(n, 0x00, (const uint8_t *)"\x90\x00", 2);
	assert_int_equal(vr_set_fault(vr, "t1-lost", 1, &why), 0);
	msg(vr, 0x6F, 0, 5, 0, 0, 0, (const uint8_t *)"\x00\x40\x04\x80\x30\x00\x00\xF4", 8);
	expect(vr, 0x80, 0, 5, 0x40, 0xFE);
	n = t1_send(vr, 6, 0x92, NULL, 0);          /* the host asks for I-block N(S) 1 */
	t1_expect(n, 0x40, (const uint8_t *)"\x90\x00", 2);
	vr_free(vr);
}

/* PIN verification structure (CCID 6.1.11.4): ASCII, bytes, position 0, left,
 * no length field, 8-byte block, 4 to 8 digits, APDU 00 20 00 80 08 FF..FF. */
static const uint8_t secure_verify[] = {
	0x00, 0x00, 0x82, 0x08, 0x00, 0x08, 0x04, 0x02, 0x01, 0x09, 0x04, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x20, 0x00, 0x80, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
};
/* PIN modification (6.1.11.7): old at 0, new at 8, confirmation, three messages. */
static const uint8_t secure_modify[] = {
	0x01, 0x00, 0x82, 0x08, 0x00, 0x00, 0x08, 0x08, 0x04, 0x03, 0x02, 0x03, 0x09, 0x04,
	0x00, 0x01, 0x02, 0x00, 0x00, 0x00,
	0x00, 0x24, 0x00, 0x80, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
};

static struct vreader *pinpad_reader(const char *keypad_pin)
{
	struct vr_profile p;
	const char *why;
	struct vreader *vr;

	vr_profile_defaults(&p);
	assert_int_equal(vr_profile_set(&p, "pin-support", "verify,modify", &why), 0);
	assert_int_equal(vr_profile_set(&p, "keypad-pin", keypad_pin, &why), 0);
	vr = vr_new(&p);
	assert_non_null(vr);
	power_up(vr);
	return vr;
}

static void secure_types_the_keypad_pin_into_the_apdu(void **state)
{
	static const uint8_t verify_new[] = { 0x00, 0x20, 0x00, 0x80, 0x04, '5', '6', '7', '8' };
	struct vreader *vr = pinpad_reader("1234");
	uint8_t bad_op[sizeof(secure_verify)];
	size_t n;

	(void)state;
	msg(vr, 0x69, 0, 2, 0, 0, 0, secure_verify, sizeof(secure_verify));
	n = expect(vr, 0x80, 0, 2, 0x00, 0);
	assert_memory_equal(ans + 10, "\x90\x00", n);
	msg(vr, 0x69, 0, 3, 0, 0, 0, secure_modify, sizeof(secure_modify));
	n = expect(vr, 0x80, 0, 3, 0x00, 0);
	assert_memory_equal(ans + 10, "\x90\x00", n);
	msg(vr, 0x6F, 0, 4, 0, 0, 0, verify_new, sizeof(verify_new));
	n = expect(vr, 0x80, 0, 4, 0x00, 0);
	assert_memory_equal(ans + 10, "\x90\x00", n);
	memcpy(bad_op, secure_verify, sizeof(bad_op));
	bad_op[0] = 0x04; /* cancel: not supported */
	msg(vr, 0x69, 0, 5, 0, 0, 0, bad_op, sizeof(bad_op));
	expect(vr, 0x80, 0, 5, 0x40, 10);
	memcpy(bad_op, secure_verify, sizeof(bad_op));
	bad_op[3] = 0x02; /* a 2-byte block cannot hold 4 digits */
	msg(vr, 0x69, 0, 6, 0, 0, 0, bad_op, sizeof(bad_op));
	expect(vr, 0x80, 0, 6, 0x40, 13);
	vr_free(vr);

	vr = pinpad_reader("9999");
	msg(vr, 0x69, 0, 2, 0, 0, 0, secure_verify, sizeof(secure_verify));
	n = expect(vr, 0x80, 0, 2, 0x00, 0);
	assert_memory_equal(ans + 10, "\x63\xC2", n);
	vr_free(vr);

	vr = new_reader(NULL); /* no pinpad */
	power_up(vr);
	msg(vr, 0x69, 0, 2, 0, 0, 0, secure_verify, sizeof(secure_verify));
	expect(vr, 0x80, 0, 2, 0x40, 0x00);
	vr_free(vr);
}

/* ---- the in-process transport on its own ------------------------------------------ */

static void inproc_models_packets_and_zero_length_packets(void **state)
{
	static const uint8_t power_on[10] = { 0x62, 0, 0, 0, 0, 0, 1, 0, 0, 0 };
	/* 80 34 00 34 34: 52 bytes + SW + header = 64, one full packet */
	static const uint8_t xfr[15] = { 0x6F, 5, 0, 0, 0, 0, 2, 0, 0, 0, 0x80, 0x34, 0x00, 0x34, 0x34 };
	struct ccid_transport *tp;
	struct vr_profile p;
	uint8_t buf[512];
	size_t got;

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(inproc_transport_open(&p, &tp, NULL), TP_OK);
	assert_int_equal(tp->info.bulk_in_packet, 64);
	assert_int_equal(tp->info.class_desc_len, 54);
	assert_int_equal(tp->ops->send(tp, power_on, sizeof(power_on), 100), TP_OK);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 10 + sizeof(default_atr));
	/* a whole transfer with room to spare: the ZLP ends it, nothing follows */
	assert_int_equal(tp->ops->send(tp, xfr, sizeof(xfr), 100), TP_OK);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 64);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 10), TP_TIMEOUT);
	/* one packet per receive: 64 bytes, then a zero-length packet */
	inproc_set_packet_split(tp, 1);
	assert_int_equal(tp->ops->send(tp, xfr, sizeof(xfr), 100), TP_OK);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 64);
	assert_int_equal(buf[0], 0x80);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 0);
	/* a transfer exactly as large as the message: the ZLP comes on its own */
	inproc_set_packet_split(tp, 0);
	assert_int_equal(tp->ops->send(tp, xfr, sizeof(xfr), 100), TP_OK);
	assert_int_equal(tp->ops->receive(tp, buf, 64, &got, 100), TP_OK);
	assert_int_equal(got, 64);
	assert_int_equal(tp->ops->receive(tp, buf, 64, &got, 100), TP_OK);
	assert_int_equal(got, 0);
	tp->ops->close(tp);
}

static const uint8_t get_slot_status[10] = { 0x65, 0, 0, 0, 0, 0, 7, 0, 0, 0 };

static void inproc_zlp_fault_sends_a_zero_length_packet_before_the_answer(void **state)
{
	/* 80 34 00 34 34: a 64-byte answer, one full packet */
	static const uint8_t xfr[15] = { 0x6F, 5, 0, 0, 0, 0, 8, 0, 0, 0, 0x80, 0x34, 0x00, 0x34, 0x34 };
	static const uint8_t power_on[10] = { 0x62, 0, 0, 0, 0, 0, 1, 0, 0, 0 };
	struct ccid_transport *tp;
	struct vr_profile p;
	const char *why;
	uint8_t buf[512];
	size_t got;

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(inproc_transport_open(&p, &tp, NULL), TP_OK);
	assert_int_equal(inproc_set_fault(tp, "no-such-fault", 1, &why), -1);
	assert_int_equal(inproc_set_fault(tp, "zlp", 2, &why), 0);
	assert_int_equal(tp->ops->send(tp, get_slot_status, sizeof(get_slot_status), 100), TP_OK);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 0);                   /* the ZLP */
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 10);                  /* then the answer, whole */
	assert_int_equal(buf[0], 0x81);
	assert_int_equal(buf[6], 7);
	/* the second use, with packets: ZLP, the packet, the ZLP ending it */
	inproc_set_packet_split(tp, 1);
	assert_int_equal(tp->ops->send(tp, power_on, sizeof(power_on), 100), TP_OK);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 0);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 10 + sizeof(default_atr));
	assert_int_equal(tp->ops->send(tp, xfr, sizeof(xfr), 100), TP_OK);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 64);                  /* used up: no ZLP first */
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 0);                   /* the one a full packet needs */
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 10), TP_TIMEOUT);
	tp->ops->close(tp);
}

static void inproc_stall_fault_fails_one_receive_then_the_answer_comes(void **state)
{
	struct ccid_transport *tp;
	struct vr_profile p;
	const char *why;
	uint8_t buf[64];
	size_t got;

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(inproc_transport_open(&p, &tp, NULL), TP_OK);
	/* nothing queued: the stall waits for an answer to strike */
	assert_int_equal(inproc_set_fault(tp, "stall", 1, &why), 0);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 10), TP_TIMEOUT);
	assert_int_equal(tp->ops->send(tp, get_slot_status, sizeof(get_slot_status), 100), TP_OK);
	got = 99;
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_STALL);
	assert_int_equal(got, 0);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 10);
	assert_int_equal(buf[0], 0x81);
	assert_int_equal(buf[6], 7);
	/* used up */
	assert_int_equal(tp->ops->send(tp, get_slot_status, sizeof(get_slot_status), 100), TP_OK);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 10);
	/* both on one answer: the stall, then the ZLP, then the answer */
	assert_int_equal(inproc_set_fault(tp, "stall", 1, &why), 0);
	assert_int_equal(inproc_set_fault(tp, "zlp", 1, &why), 0);
	assert_int_equal(tp->ops->send(tp, get_slot_status, sizeof(get_slot_status), 100), TP_OK);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_STALL);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 0);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 10);
	tp->ops->close(tp);
}

/* The driver in front of the faults of the pipe: a ZLP before an answer is
 * skipped, a stalled answer fails its command (or is recovered), and either
 * way the next commands work; a HardwareError on the interrupt pipe leaves
 * them working too. */
static void driver_gets_back_in_step_after_zlp_stall_and_hardware_error(void **state)
{
	static const uint8_t get16[] = { 0x80, 0x34, 0x00, 0x10, 0x10 };
	static const uint8_t counting16[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	const char *why;
	smc_status st;

	(void)state;
	for (int split = 0; split <= 1; split++) {
		struct rig *r = rig_open(NULL, 0, split);

		rig_power(r);
		rig_protocol(r, 2);
		rig_select(r);
		assert_int_equal(inproc_set_fault(r->tp, "zlp", 1, &why), 0);
		rig_apdu(r, get16, sizeof(get16), 16, 0x9000);
		assert_memory_equal(r->reply, counting16, 16);
		assert_int_equal(inproc_set_fault(r->tp, "stall", 1, &why), 0);
		st = rig_transmit(r, get16, sizeof(get16));
		if (st == SMC_OK) {
			assert_int_equal(r->reply_len, 18);
			assert_memory_equal(r->reply, counting16, 16);
		}
		for (int i = 0; i < 3; i++)
			rig_apdu(r, get16, sizeof(get16), 16, 0x9000);
		inproc_hardware_error(r->tp, 0);
		for (int i = 0; i < 3; i++)
			rig_apdu(r, get16, sizeof(get16), 16, 0x9000);
		assert_memory_equal(r->reply, counting16, 16);
		rig_close(r);
	}
}

static void inproc_interrupt_wait_cancel_and_unplug(void **state)
{
	struct ccid_transport *tp;
	struct vr_profile p;
	uint8_t buf[8], data[8];
	size_t got;

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(inproc_transport_open(&p, &tp, NULL), TP_OK);
	assert_int_equal(tp->ops->wait_interrupt(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_int_equal(got, 2);
	assert_memory_equal(buf, "\x50\x03", 2);
	assert_int_equal(tp->ops->wait_interrupt(tp, buf, sizeof(buf), &got, 20), TP_TIMEOUT);
	tp->ops->cancel(tp); /* remembered until the next wait */
	assert_int_equal(tp->ops->wait_interrupt(tp, buf, sizeof(buf), &got, 1000), TP_CANCELLED);
	inproc_remove_card(tp, 0);
	assert_int_equal(tp->ops->wait_interrupt(tp, buf, sizeof(buf), &got, 100), TP_OK);
	assert_memory_equal(buf, "\x50\x02", 2);
	assert_int_equal(tp->ops->control(tp, 0xA1, 0x02, 0, data, sizeof(data), &got, 100), TP_STALL);
	inproc_unplug(tp);
	assert_int_equal(tp->ops->wait_interrupt(tp, buf, sizeof(buf), &got, 100), TP_NO_DEVICE);
	assert_int_equal(tp->ops->send(tp, buf, 10, 100), TP_NO_DEVICE);
	assert_int_equal(tp->ops->receive(tp, buf, sizeof(buf), &got, 100), TP_NO_DEVICE);
	tp->ops->close(tp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(descriptor_of_default_profile_field_by_field),
		cmocka_unit_test(descriptor_follows_profile_settings),
		cmocka_unit_test(profile_refuses_bad_values_with_a_reason),
		cmocka_unit_test(default_card_atr_offers_t0_and_t1_with_tck),
		cmocka_unit_test(t0_only_card_atr_has_tc2_and_no_tck),
		cmocka_unit_test(unknown_message_answers_command_not_supported),
		cmocka_unit_test(bad_slot_answers_error_5),
		cmocka_unit_test(dwlength_mismatch_answers_error_1),
		cmocka_unit_test(every_message_gets_its_answer_type),
		cmocka_unit_test(icc_status_tracks_power_and_removal),
		cmocka_unit_test(power_on_at_a_voltage_the_card_refuses_is_mute),
		cmocka_unit_test(set_parameters_checks_each_field),
		cmocka_unit_test(escape_echoes_and_rate_clock_picks_supported_values),
		cmocka_unit_test(slot_busy_while_an_answer_waits),
		cmocka_unit_test(class_requests_abort_and_lists),
		cmocka_unit_test(notify_slot_change_at_start_and_on_events),
		cmocka_unit_test(tpdu_t0_case4_answers_61xx_then_get_response),
		cmocka_unit_test(time_taking_command_sends_time_extensions_first),
		cmocka_unit_test(extended_level_chains_both_ways),
		cmocka_unit_test(short_level_refuses_extended_apdu),
		cmocka_unit_test(applet_answers_pin_and_errors),
		cmocka_unit_test(tpdu_pps_is_echoed_when_the_card_takes_it),
		cmocka_unit_test(secure_types_the_keypad_pin_into_the_apdu),
		cmocka_unit_test(t1_crc_is_the_iso_13239_one),
		cmocka_unit_test(t1_card_chains_responses_by_ifsd),
		cmocka_unit_test(t1_reader_with_auto_ifsd_lets_the_card_send_long_blocks),
		cmocka_unit_test(t1_card_takes_chained_commands_and_asks_wtx),
		cmocka_unit_test(t1_card_recovers_with_r_blocks_and_resynch),
		cmocka_unit_test(character_level_t0_runs_the_applet_by_procedure_bytes),
		cmocka_unit_test(character_level_t1_takes_blocks_byte_by_byte),
		cmocka_unit_test(faults_spoil_the_next_answers_then_stop),
		cmocka_unit_test(t1_faults_spoil_the_cards_blocks),
		cmocka_unit_test(t1_r_block_naming_the_last_i_block_gets_it_again_after_s_blocks),
		cmocka_unit_test(t1_r_block_acknowledges_a_chained_part_whatever_its_error_bits),
		cmocka_unit_test(t1_r_block_for_an_unsent_i_block_gets_the_cards_n_r),
		cmocka_unit_test(t1_r_block_gets_a_lost_chaining_acknowledgement_again),
		cmocka_unit_test(t1_repeated_i_block_gets_the_same_answer_without_running_twice),
		cmocka_unit_test(t1_card_asks_its_ifsc_before_its_first_i_block),
		cmocka_unit_test(t1_card_asks_its_ifsc_again_after_a_wrong_response),
		cmocka_unit_test(t1_card_answers_its_nad_swapped_and_refuses_other_nads),
		cmocka_unit_test(character_level_t1_faults_spoil_or_lose_the_cards_block),
		cmocka_unit_test(card_class_adds_a_t15_class_indicator_and_tck_to_the_atr),
		cmocka_unit_test(profile_refuses_card_class_and_t1_keys_that_disagree),
		cmocka_unit_test(get_response_with_nothing_waiting_is_69_85_in_the_iso_class_only),
		cmocka_unit_test(inproc_models_packets_and_zero_length_packets),
		cmocka_unit_test(inproc_interrupt_wait_cancel_and_unplug),
		cmocka_unit_test(front_end_faults_are_counted_but_left_to_the_front_ends),
		cmocka_unit_test(inproc_zlp_fault_sends_a_zero_length_packet_before_the_answer),
		cmocka_unit_test(inproc_stall_fault_fails_one_receive_then_the_answer_comes),
		cmocka_unit_test(driver_gets_back_in_step_after_zlp_stall_and_hardware_error),
	};

	smc_log_mask = SMC_LOG_CRITICAL;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
