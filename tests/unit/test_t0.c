/* T=0 TPDU mapping: ISO/IEC 7816-4 APDU cases to ISO/IEC 7816-3 section 10 TPDUs,
 * and the checks on the TPDU answer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "smclib.h"

#define BIG 300

static uint8_t tpdu[BIG];
static size_t tpdu_len;

static smc_status map(const uint8_t *apdu, size_t len)
{
	memset(tpdu, 0xEE, sizeof(tpdu));
	tpdu_len = 12345;
	return smc_t0_request(apdu, len, tpdu, sizeof(tpdu), &tpdu_len);
}

/* An APDU of header 00 D6 00 00, then body bytes, data bytes 0, 1, 2, ... */
static size_t build(uint8_t *apdu, const uint8_t *body, size_t body_len, size_t n_data,
		    const uint8_t *tail, size_t tail_len)
{
	size_t n = 0;

	apdu[n++] = 0x00;
	apdu[n++] = 0xD6;
	apdu[n++] = 0x00;
	apdu[n++] = 0x00;
	if (body_len)
		memcpy(apdu + n, body, body_len);
	n += body_len;
	for (size_t i = 0; i < n_data; i++)
		apdu[n++] = (uint8_t)i;
	if (tail_len)
		memcpy(apdu + n, tail, tail_len);
	return n + tail_len;
}

static void t0_case1_gets_p3_zero(void **state)
{
	const uint8_t apdu[] = { 0x00, 0x70, 0x80, 0x01 };
	const uint8_t want[] = { 0x00, 0x70, 0x80, 0x01, 0x00 };

	(void)state;
	assert_int_equal(map(apdu, sizeof(apdu)), SMC_OK);
	assert_int_equal(tpdu_len, sizeof(want));
	assert_memory_equal(tpdu, want, sizeof(want));
}

static void t0_case2_short_is_sent_as_is(void **state)
{
	const uint8_t le10[] = { 0x00, 0xB0, 0x00, 0x00, 0x10 };
	const uint8_t le256[] = { 0x00, 0xC0, 0x00, 0x00, 0x00 };

	(void)state;
	assert_int_equal(map(le10, sizeof(le10)), SMC_OK);
	assert_int_equal(tpdu_len, 5);
	assert_memory_equal(tpdu, le10, 5);
	assert_int_equal(map(le256, sizeof(le256)), SMC_OK);
	assert_int_equal(tpdu_len, 5);
	assert_memory_equal(tpdu, le256, 5);
}

static void t0_case3_short_is_sent_as_is_up_to_lc_255(void **state)
{
	uint8_t apdu[BIG];
	uint8_t lc;
	size_t len;

	(void)state;
	lc = 1;
	len = build(apdu, &lc, 1, 1, NULL, 0);
	assert_int_equal(map(apdu, len), SMC_OK);
	assert_int_equal(tpdu_len, 6);
	assert_memory_equal(tpdu, apdu, 6);

	lc = 255;
	len = build(apdu, &lc, 1, 255, NULL, 0);
	assert_int_equal(len, 260);
	assert_int_equal(map(apdu, len), SMC_OK);
	assert_int_equal(tpdu_len, 260);
	assert_memory_equal(tpdu, apdu, 260);
}

static void t0_case4_short_drops_le(void **state)
{
	uint8_t apdu[BIG];
	uint8_t lc = 2, le = 0x00;
	size_t len;

	(void)state;
	len = build(apdu, &lc, 1, 2, &le, 1);
	assert_int_equal(map(apdu, len), SMC_OK);
	assert_int_equal(tpdu_len, 7);
	assert_memory_equal(tpdu, apdu, 7);
	assert_int_equal(tpdu[4], 2);

	lc = 255;
	le = 0x10;
	len = build(apdu, &lc, 1, 255, &le, 1);
	assert_int_equal(len, 261);
	assert_int_equal(map(apdu, len), SMC_OK);
	assert_int_equal(tpdu_len, 260);
	assert_memory_equal(tpdu, apdu, 260);
}

static void t0_case2_extended_fits_when_le_at_most_256(void **state)
{
	const uint8_t le256[] = { 0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x00 };
	const uint8_t le255[] = { 0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0xFF };
	const uint8_t le1[] = { 0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x01 };

	(void)state;
	assert_int_equal(map(le256, sizeof(le256)), SMC_OK);
	assert_int_equal(tpdu_len, 5);
	assert_memory_equal(tpdu, le256, 4);
	assert_int_equal(tpdu[4], 0x00);
	assert_int_equal(map(le255, sizeof(le255)), SMC_OK);
	assert_int_equal(tpdu_len, 5);
	assert_int_equal(tpdu[4], 0xFF);
	assert_int_equal(map(le1, sizeof(le1)), SMC_OK);
	assert_int_equal(tpdu[4], 0x01);
}

static void t0_case2_extended_over_256_is_not_supported(void **state)
{
	const uint8_t le257[] = { 0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x01 };
	const uint8_t le65536[] = { 0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00 };

	(void)state;
	assert_int_equal(map(le257, sizeof(le257)), SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(tpdu_len, 0);
	assert_int_equal(map(le65536, sizeof(le65536)), SMC_ERR_NOT_SUPPORTED);
}

static void t0_case3_and_4_extended_become_short_up_to_lc_255(void **state)
{
	uint8_t apdu[BIG];
	const uint8_t ext3[] = { 0x00, 0x00, 0x03 };
	const uint8_t ext255[] = { 0x00, 0x00, 0xFF };
	const uint8_t le[] = { 0x01, 0x00 };
	const uint8_t want3[] = { 0x00, 0xD6, 0x00, 0x00, 0x03, 0x00, 0x01, 0x02 };
	size_t len;

	(void)state;
	len = build(apdu, ext3, 3, 3, NULL, 0);
	assert_int_equal(map(apdu, len), SMC_OK);
	assert_int_equal(tpdu_len, sizeof(want3));
	assert_memory_equal(tpdu, want3, sizeof(want3));

	len = build(apdu, ext3, 3, 3, le, 2);
	assert_int_equal(map(apdu, len), SMC_OK);
	assert_int_equal(tpdu_len, sizeof(want3));
	assert_memory_equal(tpdu, want3, sizeof(want3));

	len = build(apdu, ext255, 3, 255, le, 2);
	assert_int_equal(len, 264);
	assert_int_equal(map(apdu, len), SMC_OK);
	assert_int_equal(tpdu_len, 260);
	assert_int_equal(tpdu[4], 0xFF);
	assert_memory_equal(tpdu + 5, apdu + 7, 255);
}

static void t0_case3_and_4_extended_over_255_are_not_supported(void **state)
{
	uint8_t apdu[BIG];
	const uint8_t ext256[] = { 0x00, 0x01, 0x00 };
	const uint8_t le[] = { 0x00, 0x00 };
	size_t len;

	(void)state;
	len = build(apdu, ext256, 3, 256, NULL, 0);
	assert_int_equal(map(apdu, len), SMC_ERR_NOT_SUPPORTED);
	len = build(apdu, ext256, 3, 256, le, 2);
	assert_int_equal(map(apdu, len), SMC_ERR_NOT_SUPPORTED);
}

static void t0_rejects_malformed_lengths(void **state)
{
	uint8_t apdu[BIG];
	uint8_t lc;
	const uint8_t six_zero[] = { 0x00, 0xB0, 0x00, 0x00, 0x00, 0x01 };
	const uint8_t ext_lc0[] = { 0x00, 0xD6, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01 };
	const uint8_t ext3[] = { 0x00, 0x00, 0x03 };
	size_t len;

	(void)state;
	memset(apdu, 0, sizeof(apdu));
	for (size_t n = 0; n < 4; n++)
		assert_int_equal(map(apdu, n), SMC_ERR_INVALID_PARAM);
	/* 00 after the header, 6 bytes: neither short nor extended. */
	assert_int_equal(map(six_zero, sizeof(six_zero)), SMC_ERR_INVALID_PARAM);
	/* Extended with Lc = 0 and data after it. */
	assert_int_equal(map(ext_lc0, sizeof(ext_lc0)), SMC_ERR_INVALID_PARAM);
	/* Short Lc = 5 with 3, 7 and 8 bytes after it. */
	lc = 5;
	for (size_t n = 3; n <= 8; n++) {
		if (n == 5 || n == 6)
			continue;
		len = build(apdu, &lc, 1, n, NULL, 0);
		assert_int_equal(map(apdu, len), SMC_ERR_INVALID_PARAM);
	}
	/* Extended Lc = 3 with 2, 4 and 6 data bytes (5 would be 3 data + Le). */
	len = build(apdu, ext3, 3, 2, NULL, 0);
	assert_int_equal(map(apdu, len), SMC_ERR_INVALID_PARAM);
	len = build(apdu, ext3, 3, 4, NULL, 0);
	assert_int_equal(map(apdu, len), SMC_ERR_INVALID_PARAM);
	len = build(apdu, ext3, 3, 6, NULL, 0);
	assert_int_equal(map(apdu, len), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_t0_request(NULL, 5, tpdu, sizeof(tpdu), &tpdu_len),
			 SMC_ERR_INVALID_PARAM);
}

static void t0_needs_room_for_the_tpdu(void **state)
{
	const uint8_t case1[] = { 0x00, 0x70, 0x80, 0x01 };
	uint8_t small[6];
	size_t n = 99;

	(void)state;
	memset(small, 0xEE, sizeof(small));
	assert_int_equal(smc_t0_request(case1, sizeof(case1), small, 4, &n), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(small[4], 0xEE);
	assert_int_equal(smc_t0_request(case1, sizeof(case1), small, 5, &n), SMC_OK);
	assert_int_equal(n, 5);
	assert_int_equal(small[5], 0xEE);
	assert_int_equal(smc_t0_request(case1, sizeof(case1), NULL, 0, &n), SMC_ERR_BUFFER_TOO_SMALL);
}

static void t0_reply_accepts_status_words_and_data_up_to_le(void **state)
{
	const uint8_t case1[] = { 0x00, 0x70, 0x80, 0x01 };
	const uint8_t case2_256[] = { 0x00, 0xB0, 0x00, 0x00, 0x00 };
	const uint8_t case2_2[] = { 0x00, 0xB0, 0x00, 0x00, 0x02 };
	uint8_t reply[258];

	(void)state;
	memset(reply, 0x11, sizeof(reply));
	reply[0] = 0x90;
	reply[1] = 0x00;
	assert_int_equal(smc_t0_reply(case1, sizeof(case1), reply, 2), SMC_OK);
	/* 61xx goes back to the application as is: no GET RESPONSE here. */
	reply[0] = 0x61;
	reply[1] = 0x10;
	assert_int_equal(smc_t0_reply(case1, sizeof(case1), reply, 2), SMC_OK);
	reply[256] = 0x90;
	reply[257] = 0x00;
	assert_int_equal(smc_t0_reply(case2_256, sizeof(case2_256), reply, 258), SMC_OK);
	reply[2] = 0x6C;
	reply[3] = 0x02;
	assert_int_equal(smc_t0_reply(case2_2, sizeof(case2_2), reply + 2, 2), SMC_OK);
	reply[2] = 0x90;
	reply[3] = 0x00;
	assert_int_equal(smc_t0_reply(case2_2, sizeof(case2_2), reply, 4), SMC_OK);
}

static void t0_reply_rejects_malformed_answers(void **state)
{
	const uint8_t case1[] = { 0x00, 0x70, 0x80, 0x01 };
	const uint8_t case2_256[] = { 0x00, 0xB0, 0x00, 0x00, 0x00 };
	const uint8_t case2_2[] = { 0x00, 0xB0, 0x00, 0x00, 0x02 };
	uint8_t reply[300];

	(void)state;
	memset(reply, 0x11, sizeof(reply));
	reply[0] = 0x90;
	assert_int_equal(smc_t0_reply(case1, sizeof(case1), reply, 1), SMC_ERR_COMM);
	assert_int_equal(smc_t0_reply(case1, sizeof(case1), reply, 0), SMC_ERR_COMM);
	assert_int_equal(smc_t0_reply(case1, sizeof(case1), NULL, 2), SMC_ERR_COMM);
	/* 257 data bytes: more than T=0 can carry. */
	reply[257] = 0x90;
	reply[258] = 0x00;
	assert_int_equal(smc_t0_reply(case2_256, sizeof(case2_256), reply, 259), SMC_ERR_COMM);
	/* More data than Le, and data for a case 1 command. */
	reply[3] = 0x90;
	reply[4] = 0x00;
	assert_int_equal(smc_t0_reply(case2_2, sizeof(case2_2), reply, 5), SMC_ERR_COMM);
	assert_int_equal(smc_t0_reply(case1, sizeof(case1), reply, 5), SMC_ERR_COMM);
	/* SW1 must be 6X (not 60) or 9X. */
	reply[0] = 0x60;
	reply[1] = 0x00;
	assert_int_equal(smc_t0_reply(case1, sizeof(case1), reply, 2), SMC_ERR_COMM);
	reply[0] = 0x12;
	assert_int_equal(smc_t0_reply(case1, sizeof(case1), reply, 2), SMC_ERR_COMM);
	reply[0] = 0xA0;
	assert_int_equal(smc_t0_reply(case1, sizeof(case1), reply, 2), SMC_ERR_COMM);
	/* The APDU itself must be valid. */
	reply[0] = 0x90;
	assert_int_equal(smc_t0_reply(case1, 3, reply, 2), SMC_ERR_INVALID_PARAM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t0_case1_gets_p3_zero),
		cmocka_unit_test(t0_case2_short_is_sent_as_is),
		cmocka_unit_test(t0_case3_short_is_sent_as_is_up_to_lc_255),
		cmocka_unit_test(t0_case4_short_drops_le),
		cmocka_unit_test(t0_case2_extended_fits_when_le_at_most_256),
		cmocka_unit_test(t0_case2_extended_over_256_is_not_supported),
		cmocka_unit_test(t0_case3_and_4_extended_become_short_up_to_lc_255),
		cmocka_unit_test(t0_case3_and_4_extended_over_255_are_not_supported),
		cmocka_unit_test(t0_rejects_malformed_lengths),
		cmocka_unit_test(t0_needs_room_for_the_tpdu),
		cmocka_unit_test(t0_reply_accepts_status_words_and_data_up_to_le),
		cmocka_unit_test(t0_reply_rejects_malformed_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
