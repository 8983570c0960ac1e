/* Speed choice and the PPS exchange (ISO/IEC 7816-3:2006 7.1, 8.3, 9): the Fi/Di
 * chosen for a card's TA1, a clock and a reader's data rates; the PPS request
 * bytes; the card's answers accepted, refused and malformed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "smclib.h"

/* The virtual reader's defaults (sim/profile.c): 4 MHz, 10752 to 412903 bps. */
#define VR_CLK 4000u
#define VR_RATE 10752u
#define VR_MAX_RATE 412903u

static struct smc_card_caps caps_with_ta1(uint8_t ta1)
{
	struct smc_card_caps c;

	smc_card_caps_clear(&c);
	c.ta1 = ta1;
	return c;
}

static uint8_t choose(uint8_t ta1, uint32_t clk, const uint32_t *rates, size_t n, uint32_t min,
		      uint32_t max, uint32_t *rate)
{
	struct smc_card_caps c = caps_with_ta1(ta1);
	uint8_t fidi = 0;

	assert_int_equal(smc_choose_speed(&c, clk, rates, n, min, max, &fidi, rate), SMC_OK);
	return fidi;
}

/* The virtual reader's clock with a list of n rates (the range then does not
 * count: 0, 0), or without one its range: TA1 ta1 must give Fi/Di fidi, which
 * the reader runs at rate bps. */
static void want_speed(uint8_t ta1, const uint32_t *rates, size_t n, uint8_t fidi, uint32_t rate)
{
	uint32_t got = 0;

	assert_int_equal(choose(ta1, VR_CLK, rates, n, n ? 0 : VR_RATE, n ? 0 : VR_MAX_RATE, &got), fidi);
	assert_int_equal(got, rate);
}

/* ---- smc_choose_speed ---------------------------------------------------- */

static void speed_takes_ta1_within_virtual_reader_range(void **state)
{
	(void)state;
	/* Fi 512, Di 32 at 4 MHz: 250000 bps */
	want_speed(0x96, NULL, 0, 0x96, 250000);
	/* Fi 372, Di 4: 43010 bps */
	want_speed(0x13, NULL, 0, 0x13, 43010);
}

static void speed_default_without_ta1(void **state)
{
	struct smc_card_caps c;
	uint32_t rate = 0;
	uint8_t fidi = 0;

	(void)state;
	smc_card_caps_clear(&c); /* no TA1: 0x11 */
	assert_int_equal(smc_choose_speed(&c, VR_CLK, NULL, 0, VR_RATE, VR_MAX_RATE, &fidi, &rate), SMC_OK);
	assert_int_equal(fidi, 0x11);
	assert_int_equal(rate, 10752);
}

static void speed_steps_down_di_to_a_listed_rate(void **state)
{
	/* no 250000 (Di 32) nor 200000 (Di 20), but 125000 (Di 16) */
	static const uint32_t rates[] = { 9600, 10752, 21505, 43010, 62500, 125000 };

	(void)state;
	want_speed(0x96, rates, 6, 0x95, 125000);
}

static void speed_di_64_taken_when_listed_else_next_smaller(void **state)
{
	static const uint32_t with_500k[] = { 10752, 250000, 500000 };
	static const uint32_t without[] = { 10752, 250000 };

	(void)state;
	/* Fi 512, Di 64 at 4 MHz: 500000 bps */
	want_speed(0x97, with_500k, 3, 0x97, 500000);
	want_speed(0x97, without, 2, 0x96, 250000);
	/* without a list: 500000 is above 412903, Di 32 fits */
	want_speed(0x97, NULL, 0, 0x96, 250000);
	/* Fi 372, Di 64: 688172 too fast, Di 32: 344086 fits */
	want_speed(0x17, NULL, 0, 0x16, 344086);
}

static void speed_tries_di_12_and_20_of_the_table(void **state)
{
	static const uint32_t rates[] = { 10752, 129032, 215053 };

	(void)state;
	/* Fi 372 at 4 MHz: Di 20 is 215053, Di 12 is 129032 */
	assert_int_equal(choose(0x19, VR_CLK, rates, 3, 0, 0, NULL), 0x19);
	assert_int_equal(choose(0x18, VR_CLK, rates, 3, 0, 0, NULL), 0x18);
	/* Di 32 allowed but unlisted: 20 (215053) comes before 16 */
	assert_int_equal(choose(0x16, VR_CLK, rates, 3, 0, 0, NULL), 0x19);
}

static void speed_list_match_tolerates_rounding_only(void **state)
{
	static const uint32_t rounded_up[] = { 10753, 43011 };
	static const uint32_t too_far[] = { 10752, 43500 };

	(void)state;
	/* 43010.75 bps listed as 43011 */
	want_speed(0x13, rounded_up, 2, 0x13, 43011);
	/* 43500 is 1.1% away: Di 2 (21505) is not listed either */
	want_speed(0x13, too_far, 2, 0x11, 10752);
}

static void speed_respects_range_without_list(void **state)
{
	(void)state;
	/* 43010 is above a maximum of 43000: Di 2 (21505) */
	assert_int_equal(choose(0x13, VR_CLK, NULL, 0, VR_RATE, 43000, NULL), 0x12);
	/* nothing above the minimum */
	assert_int_equal(choose(0x13, VR_CLK, NULL, 0, 50000, 412903, NULL), 0x11);
	/* a reader that states no maximum gets no PPS for speed */
	assert_int_equal(choose(0x13, VR_CLK, NULL, 0, 0, 0, NULL), 0x11);
}

static void speed_default_when_clock_exceeds_fmax(void **state)
{
	(void)state;
	/* Fi code 9 (512) has fmax 5 MHz */
	assert_int_equal(choose(0x96, 6000, NULL, 0, 0, 1000000, NULL), 0x11);
	assert_int_equal(choose(0x96, 5000, NULL, 0, 0, 1000000, NULL), 0x96);
	/* Fi code 1 (372) has 5 MHz, code 3 (744) 8 MHz */
	assert_int_equal(choose(0x13, 6000, NULL, 0, 0, 1000000, NULL), 0x11);
	assert_int_equal(choose(0x34, 6000, NULL, 0, 0, 1000000, NULL), 0x34);
	/* no clock known */
	assert_int_equal(choose(0x96, 0, NULL, 0, 0, 1000000, NULL), 0x11);
}

static void speed_never_slower_than_default(void **state)
{
	(void)state;
	/* Fi 512, Di 1 is 7812 bps, slower than Fd/Dd */
	assert_int_equal(choose(0x91, VR_CLK, NULL, 0, 0, 1000000, NULL), 0x11);
	/* Fi 512, Di 2 is 15625 bps, faster */
	assert_int_equal(choose(0x92, VR_CLK, NULL, 0, 0, 1000000, NULL), 0x92);
	/* Fi 2048, Di 4: 7812 bps; no Di of the table below 4 is faster */
	assert_int_equal(choose(0xD3, VR_CLK, NULL, 0, 0, 1000000, NULL), 0x11);
}

static void speed_refuses_missing_arguments(void **state)
{
	struct smc_card_caps c = caps_with_ta1(0x96);
	uint8_t fidi;

	(void)state;
	assert_int_equal(smc_choose_speed(NULL, VR_CLK, NULL, 0, 0, 0, &fidi, NULL), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_choose_speed(&c, VR_CLK, NULL, 0, 0, 0, NULL, NULL), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_choose_speed(&c, VR_CLK, NULL, 3, 0, 0, &fidi, NULL), SMC_ERR_INVALID_PARAM);
}

/* ---- smc_pps_build ------------------------------------------------------- */

/* The request for protocol at Fi/Di fidi must be these len bytes. */
static void want_request(uint32_t protocol, uint8_t fidi, const char *bytes, size_t len)
{
	uint8_t out[SMC_PPS_REQUEST_MAX];
	size_t got = 0;

	assert_int_equal(smc_pps_build(protocol, fidi, out, &got), SMC_OK);
	assert_int_equal(got, len);
	assert_memory_equal(out, bytes, len);
}

static void pps_request_bytes_for_t0_and_t1(void **state)
{
	(void)state;
	want_request(SMC_PROTOCOL_T0, 0x96, "\xFF\x10\x96\x79", 4);
	want_request(SMC_PROTOCOL_T1, 0x95, "\xFF\x11\x95\x7B", 4);
	/* the default speed: PPS1 left out */
	want_request(SMC_PROTOCOL_T1, 0x11, "\xFF\x01\xFE", 3);
	want_request(SMC_PROTOCOL_T0, 0x11, "\xFF\x00\xFF", 3);
}

static void pps_request_refuses_bad_protocol_or_code(void **state)
{
	uint8_t out[SMC_PPS_REQUEST_MAX];
	size_t len = 99;

	(void)state;
	assert_int_equal(smc_pps_build(SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1, 0x11, out, &len),
			 SMC_ERR_INVALID_PARAM);
	assert_int_equal(len, 0);
	assert_int_equal(smc_pps_build(0, 0x11, out, &len), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_pps_build(SMC_PROTOCOL_T0, 0x71, out, &len), SMC_ERR_INVALID_PARAM); /* Fi RFU */
	assert_int_equal(smc_pps_build(SMC_PROTOCOL_T0, 0x10, out, &len), SMC_ERR_INVALID_PARAM); /* Di RFU */
	assert_int_equal(smc_pps_build(SMC_PROTOCOL_T0, 0x1A, out, &len), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_pps_build(SMC_PROTOCOL_T0, 0x11, NULL, &len), SMC_ERR_INVALID_PARAM);
}

/* ---- smc_pps_check ------------------------------------------------------- */

static const uint8_t req_t0_96[] = { 0xFF, 0x10, 0x96, 0x79 };

static smc_status check(const uint8_t *resp, size_t len, uint8_t *agreed)
{
	*agreed = 0xAA;
	return smc_pps_check(req_t0_96, sizeof(req_t0_96), resp, len, agreed);
}

static void pps_echo_is_accepted(void **state)
{
	static const uint8_t req_t1_default[] = { 0xFF, 0x01, 0xFE };
	uint8_t agreed;

	(void)state;
	assert_int_equal(check(req_t0_96, 4, &agreed), SMC_OK);
	assert_int_equal(agreed, 0x96);
	assert_int_equal(smc_pps_check(req_t1_default, 3, req_t1_default, 3, &agreed), SMC_OK);
	assert_int_equal(agreed, 0x11);
}

static void pps_response_without_pps1_keeps_default_speed(void **state)
{
	static const uint8_t resp[] = { 0xFF, 0x00, 0xFF };
	uint8_t agreed;

	(void)state;
	assert_int_equal(check(resp, 3, &agreed), SMC_OK);
	assert_int_equal(agreed, 0x11);
}

static void pps_other_protocol_or_speed_is_refusal(void **state)
{
	static const uint8_t other_t[] = { 0xFF, 0x11, 0x96, 0x78 };
	static const uint8_t other_fidi[] = { 0xFF, 0x10, 0x95, 0x7A };
	static const uint8_t pps2_added[] = { 0xFF, 0x30, 0x96, 0x00, 0x59 };
	static const uint8_t rfu_bit[] = { 0xFF, 0x90, 0x96, 0xF9 };
	uint8_t agreed;

	(void)state;
	assert_int_equal(check(other_t, 4, &agreed), SMC_ERR_PROTOCOL);
	assert_int_equal(check(other_fidi, 4, &agreed), SMC_ERR_PROTOCOL);
	assert_int_equal(check(pps2_added, 5, &agreed), SMC_ERR_PROTOCOL);
	assert_int_equal(check(rfu_bit, 4, &agreed), SMC_ERR_PROTOCOL);
	assert_int_equal(agreed, 0xAA); /* untouched on refusal */
}

static void pps_malformed_response_is_comm_error(void **state)
{
	static const uint8_t bad_pck[] = { 0xFF, 0x10, 0x96, 0x78 };
	static const uint8_t bad_ppss[] = { 0xFE, 0x10, 0x96, 0x78 };
	static const uint8_t short2[] = { 0xFF, 0x10 };
	static const uint8_t pps1_missing[] = { 0xFF, 0x10, 0xEF };     /* PPS0 says PPS1 follows */
	static const uint8_t extra[] = { 0xFF, 0x10, 0x96, 0x00, 0x79 }; /* one byte too many */
	static const uint8_t too_long[] = { 0xFF, 0x70, 0x96, 0x00, 0x00, 0x09, 0x00 };
	uint8_t agreed;

	(void)state;
	assert_int_equal(check(bad_pck, 4, &agreed), SMC_ERR_COMM);
	assert_int_equal(check(bad_ppss, 4, &agreed), SMC_ERR_COMM);
	assert_int_equal(check(short2, 2, &agreed), SMC_ERR_COMM);
	assert_int_equal(check(NULL, 0, &agreed), SMC_ERR_COMM);
	assert_int_equal(check(pps1_missing, 3, &agreed), SMC_ERR_COMM);
	assert_int_equal(check(extra, 5, &agreed), SMC_ERR_COMM);
	assert_int_equal(check(too_long, 7, &agreed), SMC_ERR_COMM);
	assert_int_equal(agreed, 0xAA);
}

static void pps_check_refuses_malformed_request(void **state)
{
	static const uint8_t bad_req[] = { 0xFF, 0x10, 0x96, 0x00 };
	uint8_t agreed;

	(void)state;
	assert_int_equal(smc_pps_check(bad_req, 4, req_t0_96, 4, &agreed), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_pps_check(NULL, 0, req_t0_96, 4, &agreed), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_pps_check(req_t0_96, 4, req_t0_96, 4, NULL), SMC_ERR_INVALID_PARAM);
}

/* ---- smc_card_caps_set_fidi ----------------------------------------------- */

static void set_fidi_updates_waiting_times(void **state)
{
	struct smc_card_caps c;

	(void)state;
	smc_card_caps_clear(&c);
	smc_card_caps_set_fidi(&c, 0x11, 4000);
	/* CWT = (11 + 2^13) etu; etu = 372 / 4 MHz: 762.9 ms */
	assert_int_equal(c.t1.cwt_ms, 763);
	assert_int_equal(smc_card_caps_set_fidi(&c, 0x96, 4000), SMC_OK);
	assert_int_equal(c.fi, 512);
	assert_int_equal(c.di, 32);
	/* etu = 512 / 32 / 4 MHz = 4 us: CWT 32.8 ms; WT = 960 * 10 * 512 / 4 MHz = 1228.8 ms */
	assert_int_equal(c.t1.cwt_ms, 33);
	assert_int_equal(c.t0.wt_ms, 1229);
	assert_int_equal(smc_card_caps_set_fidi(&c, 0xF1, 4000), SMC_ERR_INVALID_PARAM);
	assert_int_equal(c.fi, 512);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(speed_takes_ta1_within_virtual_reader_range),
		cmocka_unit_test(speed_default_without_ta1),
		cmocka_unit_test(speed_steps_down_di_to_a_listed_rate),
		cmocka_unit_test(speed_di_64_taken_when_listed_else_next_smaller),
		cmocka_unit_test(speed_tries_di_12_and_20_of_the_table),
		cmocka_unit_test(speed_list_match_tolerates_rounding_only),
		cmocka_unit_test(speed_respects_range_without_list),
		cmocka_unit_test(speed_default_when_clock_exceeds_fmax),
		cmocka_unit_test(speed_never_slower_than_default),
		cmocka_unit_test(speed_refuses_missing_arguments),
		cmocka_unit_test(pps_request_bytes_for_t0_and_t1),
		cmocka_unit_test(pps_request_refuses_bad_protocol_or_code),
		cmocka_unit_test(pps_echo_is_accepted),
		cmocka_unit_test(pps_response_without_pps1_keeps_default_speed),
		cmocka_unit_test(pps_other_protocol_or_speed_is_refusal),
		cmocka_unit_test(pps_malformed_response_is_comm_error),
		cmocka_unit_test(pps_check_refuses_malformed_request),
		cmocka_unit_test(set_fidi_updates_waiting_times),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
