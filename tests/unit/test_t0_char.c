/* T=0 at character level: the procedure-byte engine of smclib (ISO/IEC 7816-3:2006
 * 10.3.3) run against transcripts of what a card sends on the I/O line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smclib.h"

#define REPLY_MAX 300
#define GUARD 0xEE

/* One step of a transcript: what the host must send, what the card answers
 * (exactly the bytes the host must ask for). Hex strings, spaces ignored. */
struct step {
	const char *host;
	const char *card;
};

static struct smc_t0_char x;
static uint8_t reply[REPLY_MAX];

static size_t hex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	unsigned v;

	while (*s) {
		if (*s == ' ') {
			s++;
			continue;
		}
		assert_true(sscanf(s, "%2x", &v) == 1);
		assert_true(n < cap);
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

/* Run one step: the host's bytes and read length must match, then the card's
 * bytes are fed; returns feed()'s status. */
static smc_status step(const struct step *s)
{
	uint8_t want[REPLY_MAX], card[REPLY_MAX];
	size_t want_len = hex(s->host, want, sizeof(want));
	size_t card_len = hex(s->card, card, sizeof(card));
	const uint8_t *send;
	size_t send_len, read_len;

	assert_int_equal(smc_t0_char_next(&x, &send, &send_len, &read_len), SMC_OK);
	assert_int_equal(send_len, want_len);
	if (want_len)
		assert_memory_equal(send, want, want_len);
	assert_int_equal(read_len, card_len);
	return smc_t0_char_feed(&x, card, card_len);
}

/* Start an exchange for the APDU (hex) with a reply buffer of cap bytes, run the
 * transcript; every step but the last must ask for more. Returns the last status. */
static smc_status run(const char *apdu_hex, size_t cap, const struct step *steps, size_t n)
{
	uint8_t apdu[REPLY_MAX];
	size_t apdu_len = hex(apdu_hex, apdu, sizeof(apdu));
	smc_status st = SMC_OK;

	memset(reply, GUARD, sizeof(reply));
	assert_int_equal(smc_t0_char_start(&x, apdu, apdu_len, reply, cap), SMC_OK);
	for (size_t i = 0; i < n; i++) {
		st = step(&steps[i]);
		if (i + 1 < n)
			assert_int_equal(st, SMC_MORE_PROCESSING);
	}
	return st;
}

static void expect_reply(const char *want_hex)
{
	uint8_t want[REPLY_MAX];
	size_t n = hex(want_hex, want, sizeof(want));

	assert_int_equal(x.reply_len, n);
	assert_memory_equal(reply, want, n);
}

/* After the end, the engine takes no further step. */
static void expect_over(void)
{
	const uint8_t *send;
	size_t send_len, read_len;
	uint8_t b = 0x90;

	assert_int_equal(smc_t0_char_next(&x, &send, &send_len, &read_len), SMC_ERR_INVALID_STATE);
	assert_int_equal(smc_t0_char_feed(&x, &b, 1), SMC_ERR_INVALID_STATE);
}

#define RUN(apdu, cap, ...)                                                          \
	({                                                                          \
		static const struct step s_[] = { __VA_ARGS__ };                    \
		run(apdu, cap, s_, sizeof(s_) / sizeof(s_[0]));                     \
	})

static void t0c_case1_status_right_after_header(void **state)
{
	(void)state;
	assert_int_equal(RUN("00 70 80 01", REPLY_MAX, { "00 70 80 01 00", "90" }, { "", "00" }),
			 SMC_OK);
	expect_reply("90 00");
	expect_over();
}

static void t0c_case1_ack_moves_nothing(void **state)
{
	(void)state;
	/* case 1 has P3 = 00 but no data either way: an ACK moves nothing */
	assert_int_equal(RUN("00 70 80 01", REPLY_MAX, { "00 70 80 01 00", "70" }, { "", "90" },
			     { "", "00" }),
			 SMC_OK);
	expect_reply("90 00");
}

static void t0c_case2_ack_then_all_data(void **state)
{
	(void)state;
	assert_int_equal(RUN("80 34 00 05 05", REPLY_MAX, { "80 34 00 05 05", "34" },
			     { "", "00 01 02 03 04 90" }, { "", "00" }),
			 SMC_OK);
	expect_reply("00 01 02 03 04 90 00");
	expect_over();
}

static void t0c_case2_byte_by_byte_with_complemented_ins(void **state)
{
	(void)state;
	/* ~34 = CB: one byte each, then an ACK for the rest */
	assert_int_equal(RUN("80 34 00 04 04", REPLY_MAX, { "80 34 00 04 04", "CB" }, { "", "00 CB" },
			     { "", "01 34" }, { "", "02 03 90" }, { "", "00" }),
			 SMC_OK);
	expect_reply("00 01 02 03 90 00");
}

static void t0c_case2_status_after_part_of_the_data(void **state)
{
	(void)state;
	assert_int_equal(RUN("00 B0 00 00 08", REPLY_MAX, { "00 B0 00 00 08", "4F" }, { "", "11 62" },
			     { "", "82" }),
			 SMC_OK);
	expect_reply("11 62 82");
}

static void t0c_case3_ack_then_all_data(void **state)
{
	(void)state;
	assert_int_equal(RUN("80 32 00 00 03 00 01 02", REPLY_MAX, { "80 32 00 00 03", "32" },
			     { "00 01 02", "90" }, { "", "00" }),
			 SMC_OK);
	expect_reply("90 00");
	expect_over();
}

static void t0c_case3_byte_by_byte_with_complemented_ins(void **state)
{
	(void)state;
	assert_int_equal(RUN("80 32 00 00 03 00 01 02", REPLY_MAX, { "80 32 00 00 03", "CD" },
			     { "00", "CD" }, { "01", "CD" }, { "02", "90" }, { "", "00" }),
			 SMC_OK);
	expect_reply("90 00");
}

static void t0c_case3_one_byte_then_ack_for_the_rest(void **state)
{
	(void)state;
	assert_int_equal(RUN("80 32 00 00 03 00 01 02", REPLY_MAX, { "80 32 00 00 03", "CD" },
			     { "00", "32" }, { "01 02", "90" }, { "", "00" }),
			 SMC_OK);
	expect_reply("90 00");
}

static void t0c_case4_ack_then_61xx(void **state)
{
	(void)state;
	/* case 4 goes as a case 3 TPDU; the data waits for GET RESPONSE */
	assert_int_equal(RUN("80 36 01 00 01 55 00", REPLY_MAX, { "80 36 01 00 01", "36" },
			     { "55", "61" }, { "", "00" }),
			 SMC_OK);
	expect_reply("61 00");
}

static void t0c_null_bytes_are_waited_through(void **state)
{
	(void)state;
	assert_int_equal(RUN("80 34 00 02 02", REPLY_MAX, { "80 34 00 02 02", "60" }, { "", "60" },
			     { "", "34" }, { "", "00 01 60" }, { "", "60" }, { "", "90" },
			     { "", "00" }),
			 SMC_OK);
	expect_reply("00 01 90 00");
}

static void t0c_6cxx_ends_the_exchange(void **state)
{
	(void)state;
	assert_int_equal(RUN("80 34 00 10 05", REPLY_MAX, { "80 34 00 10 05", "6C" }, { "", "10" }),
			 SMC_OK);
	expect_reply("6C 10");
	expect_over();
}

static void t0c_error_status_right_after_header_sends_no_data(void **state)
{
	(void)state;
	/* the data never goes: the step after the header reads SW2 and sends nothing */
	assert_int_equal(RUN("00 A4 04 00 02 3F 00", REPLY_MAX, { "00 A4 04 00 02", "6A" },
			     { "", "82" }),
			 SMC_OK);
	expect_reply("6A 82");
	expect_over();
}

static void t0c_malformed_procedure_byte_is_a_comm_error(void **state)
{
	static const char *const bad[] = { "12", "00", "FF", "A4", "5B", "C1" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct step s[] = { { "80 34 00 05 05", bad[i] } };

		assert_int_equal(run("80 34 00 05 05", REPLY_MAX, s, 1), SMC_ERR_COMM);
		expect_over();
	}
}

static void t0c_malformed_procedure_byte_after_data_is_a_comm_error(void **state)
{
	(void)state;
	assert_int_equal(RUN("80 32 00 00 02 00 01", REPLY_MAX, { "80 32 00 00 02", "32" },
			     { "00 01", "33" }),
			 SMC_ERR_COMM);
	expect_over();
}

static void t0c_too_many_null_bytes_give_up(void **state)
{
	static const struct step header = { "00 70 00 00 00", "60" }, null = { "", "60" };
	uint8_t apdu[] = { 0x00, 0x70, 0x00, 0x00 };

	(void)state;
	assert_int_equal(smc_t0_char_start(&x, apdu, sizeof(apdu), reply, sizeof(reply)), SMC_OK);
	assert_int_equal(step(&header), SMC_MORE_PROCESSING);
	for (unsigned i = 1; i < SMC_T0_CHAR_MAX_IDLE; i++)
		assert_int_equal(step(&null), SMC_MORE_PROCESSING);
	assert_int_equal(step(&null), SMC_ERR_COMM);
	expect_over();
}

static void t0c_endless_acks_without_data_give_up(void **state)
{
	static const struct step ack = { "", "32" };
	unsigned i;
	smc_status st = SMC_MORE_PROCESSING;

	(void)state;
	/* all data sent, then ACK after ACK: each moves nothing, like a NULL */
	assert_int_equal(RUN("80 32 00 00 01 07", REPLY_MAX, { "80 32 00 00 01", "32" }, { "07", "32" }),
			 SMC_MORE_PROCESSING);
	for (i = 0; i <= SMC_T0_CHAR_MAX_IDLE && st == SMC_MORE_PROCESSING; i++)
		st = step(&ack);
	assert_int_equal(st, SMC_ERR_COMM);
	assert_int_equal(i, SMC_T0_CHAR_MAX_IDLE);
}

static void t0c_complemented_ins_beyond_p3_is_a_comm_error(void **state)
{
	(void)state;
	/* outgoing: P3 = 1 byte received, then the card asks to send one more */
	assert_int_equal(RUN("80 34 00 01 01", REPLY_MAX, { "80 34 00 01 01", "CB" }, { "", "00 CB" }),
			 SMC_ERR_COMM);
	/* incoming: both data bytes sent, then the card asks for a third */
	assert_int_equal(RUN("80 32 00 00 02 00 01", REPLY_MAX, { "80 32 00 00 02", "32" },
			     { "00 01", "CD" }),
			 SMC_ERR_COMM);
	expect_over();
}

static void t0c_short_read_is_a_comm_error(void **state)
{
	uint8_t apdu[] = { 0x80, 0x34, 0x00, 0x05, 0x05 };
	uint8_t got[] = { 0x34, 0x00 };

	(void)state;
	assert_int_equal(smc_t0_char_start(&x, apdu, sizeof(apdu), reply, sizeof(reply)), SMC_OK);
	assert_int_equal(smc_t0_char_feed(&x, got, 2), SMC_ERR_COMM);
	expect_over();
}

static void t0c_reply_buffer_too_small_runs_to_the_end(void **state)
{
	(void)state;
	/* 5 data bytes and SW1 SW2 need 7; the exchange still runs to SW2 */
	assert_int_equal(RUN("80 34 00 05 05", 6, { "80 34 00 05 05", "34" },
			     { "", "00 01 02 03 04 90" }, { "", "00" }),
			 SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(x.reply_len, 7);
	assert_int_equal(reply[6], GUARD);
	expect_over();
	/* the status alone does not fit a 1-byte buffer either */
	assert_int_equal(RUN("80 30 00 00", 1, { "80 30 00 00 00", "90" }, { "", "00" }),
			 SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(x.reply_len, 2);
	assert_int_equal(reply[1], GUARD);
}

static void t0c_p3_00_outgoing_reads_256_bytes(void **state)
{
	uint8_t apdu[] = { 0x00, 0xC0, 0x00, 0x00, 0x00 };
	uint8_t got[257];
	const uint8_t *send;
	size_t send_len, read_len;

	(void)state;
	assert_int_equal(smc_t0_char_start(&x, apdu, sizeof(apdu), reply, sizeof(reply)), SMC_OK);
	assert_int_equal(smc_t0_char_next(&x, &send, &send_len, &read_len), SMC_OK);
	assert_int_equal(send_len, 5);
	assert_int_equal(read_len, 1);
	got[0] = 0xC0;
	assert_int_equal(smc_t0_char_feed(&x, got, 1), SMC_MORE_PROCESSING);
	assert_int_equal(smc_t0_char_next(&x, &send, &send_len, &read_len), SMC_OK);
	assert_int_equal(send_len, 0);
	assert_int_equal(read_len, 257);
	for (unsigned i = 0; i < 256; i++)
		got[i] = (uint8_t)i;
	got[256] = 0x90;
	assert_int_equal(smc_t0_char_feed(&x, got, 257), SMC_MORE_PROCESSING);
	got[0] = 0x00;
	assert_int_equal(smc_t0_char_next(&x, &send, &send_len, &read_len), SMC_OK);
	assert_int_equal(read_len, 1);
	assert_int_equal(smc_t0_char_feed(&x, got, 1), SMC_OK);
	assert_int_equal(x.reply_len, 258);
	for (unsigned i = 0; i < 256; i++)
		assert_int_equal(reply[i], (uint8_t)i);
	assert_int_equal(reply[256], 0x90);
	assert_int_equal(reply[257], 0x00);
}

static void t0c_start_refuses_a_malformed_apdu(void **state)
{
	uint8_t apdu[] = { 0x00, 0xA4, 0x04, 0x00, 0x05, 0x01 };

	(void)state;
	assert_int_equal(smc_t0_char_start(&x, apdu, sizeof(apdu), reply, sizeof(reply)),
			 SMC_ERR_INVALID_PARAM);
	expect_over();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t0c_case1_status_right_after_header),
		cmocka_unit_test(t0c_case1_ack_moves_nothing),
		cmocka_unit_test(t0c_case2_ack_then_all_data),
		cmocka_unit_test(t0c_case2_byte_by_byte_with_complemented_ins),
		cmocka_unit_test(t0c_case2_status_after_part_of_the_data),
		cmocka_unit_test(t0c_case3_ack_then_all_data),
		cmocka_unit_test(t0c_case3_byte_by_byte_with_complemented_ins),
		cmocka_unit_test(t0c_case3_one_byte_then_ack_for_the_rest),
		cmocka_unit_test(t0c_case4_ack_then_61xx),
		cmocka_unit_test(t0c_null_bytes_are_waited_through),
		cmocka_unit_test(t0c_6cxx_ends_the_exchange),
		cmocka_unit_test(t0c_error_status_right_after_header_sends_no_data),
		cmocka_unit_test(t0c_malformed_procedure_byte_is_a_comm_error),
		cmocka_unit_test(t0c_malformed_procedure_byte_after_data_is_a_comm_error),
		cmocka_unit_test(t0c_too_many_null_bytes_give_up),
		cmocka_unit_test(t0c_endless_acks_without_data_give_up),
		cmocka_unit_test(t0c_complemented_ins_beyond_p3_is_a_comm_error),
		cmocka_unit_test(t0c_short_read_is_a_comm_error),
		cmocka_unit_test(t0c_reply_buffer_too_small_runs_to_the_end),
		cmocka_unit_test(t0c_p3_00_outgoing_reads_256_bytes),
		cmocka_unit_test(t0c_start_refuses_a_malformed_apdu),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
