/* The T=1 block engine (ISO/IEC 7816-3:2006 section 11) against a scripted
 * card: each test knows exactly which block the engine must send next and
 * feeds the card's answer. The card's blocks are framed here with this file's
 * own LRC and CRC, written from the standard apart from t1_block.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "smc_log.h"
#include "smclib.h"
#include "smclib/t1_block.h"

/* PCBs, 11.3.2.2 */
#define I(ns, m) ((uint8_t)(((ns) ? 0x40 : 0) | ((m) ? 0x20 : 0)))
#define R(nr, e) ((uint8_t)(0x80 | ((nr) ? 0x10 : 0) | (e)))
#define S_REQ(t) ((uint8_t)(0xC0 | (t)))
#define S_RSP(t) ((uint8_t)(0xE0 | (t)))
#define RESYNCH 0
#define IFS 1
#define ABORT 2
#define WTX 3

#define APDU_MAX 65544
#define REPLY_MAX 70000
#define CANARY 0xA5

static struct smc_ext ext;
static bool crc_mode;
static uint8_t apdu[APDU_MAX + 16];
static uint8_t reply[REPLY_MAX + 64];

/* ---- the test's own framing -------------------------------------------- */

static uint16_t crc16(const uint8_t *p, size_t n)
{
	/* x^16 + x^12 + x^5 + 1 processed LSB first, register FFFF, no final XOR */
	uint16_t r = 0xFFFF;

	while (n--) {
		r ^= *p++;
		for (int k = 0; k < 8; k++)
			r = (r & 1) ? (uint16_t)((r >> 1) ^ 0x8408) : (uint16_t)(r >> 1);
	}
	return r;
}

static size_t frame(uint8_t *out, uint8_t nad, uint8_t pcb, const uint8_t *inf, size_t len)
{
	size_t n = 3 + len;

	out[0] = nad;
	out[1] = pcb;
	out[2] = (uint8_t)len;
	if (len)
		memcpy(out + 3, inf, len);
	if (crc_mode) {
		uint16_t c = crc16(out, n);

		out[n++] = (uint8_t)(c >> 8);
		out[n++] = (uint8_t)c;
	} else {
		uint8_t x = 0;

		for (size_t i = 0; i < n; i++)
			x ^= out[i];
		out[n++] = x;
	}
	return n;
}

/* ---- the scripted card -------------------------------------------------- */

/* A fresh slot: EDC and IFSC as an ATR would say, the reader's IFSD 32. */
static void slot(bool crc, uint8_t ifsc, uint8_t ifsd_to_negotiate)
{
	smc_ext_destroy(&ext);
	assert_int_equal(smc_ext_init(&ext), SMC_OK);
	crc_mode = crc;
	ext.card_caps.t1.crc = crc;
	ext.card_caps.t1.ifsc = ifsc;
	ext.reader_caps.max_ifsd = 32;
	smc_t1_init(&ext, ifsd_to_negotiate);
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(smc_ext_init(&ext), SMC_OK);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	smc_ext_destroy(&ext);
	return 0;
}

/* An APDU of len bytes with a pattern (the engine carries it without parsing it). */
static void make_apdu(size_t len)
{
	for (size_t i = 0; i < len; i++)
		apdu[i] = (uint8_t)(i * 7 + 3);
}

/* Start an exchange: the engine's first block must be ready. */
static void begin(size_t apdu_len, size_t reply_cap)
{
	memset(reply, CANARY, sizeof(reply));
	ext.io.request = apdu;
	ext.io.request_len = apdu_len;
	ext.io.reply = reply;
	ext.io.reply_cap = reply_cap;
	ext.io.reply_len = 12345;
	assert_int_equal(smc_t1_request(&ext), SMC_OK);
}

/* A new APDU must be refused at once (the card needs a reset): nothing built. */
static void refused(size_t apdu_len)
{
	ext.io.request = apdu;
	ext.io.request_len = apdu_len;
	ext.io.reply = reply;
	ext.io.reply_cap = 258;
	ext.t1.block_len = 0;
	assert_int_equal(smc_t1_request(&ext), SMC_ERR_COMM);
	assert_int_equal(ext.t1.block_len, 0);
	assert_int_equal(smc_t1_reply(&ext, SMC_OK, NULL, 0), SMC_ERR_INVALID_STATE);
}

/* The same with an APDU of apdu_len bytes of make_apdu's pattern. */
static void start(size_t apdu_len, size_t reply_cap)
{
	make_apdu(apdu_len);
	begin(apdu_len, reply_cap);
}

/* The engine's block must be exactly NAD 0, pcb, inf, EDC. */
static void want(uint8_t pcb, const uint8_t *inf, size_t len)
{
	uint8_t b[SMC_T1_BLOCK_MAX];
	size_t n = frame(b, 0, pcb, inf, len);

	assert_int_equal(ext.t1.block_len, n);
	assert_memory_equal(ext.t1.block, b, n);
}

static void want_s(uint8_t pcb, uint8_t value)
{
	want(pcb, &value, 1);
}

static void want_i_part(uint8_t pcb, size_t off, size_t len)
{
	want(pcb, apdu + off, len);
}

static smc_status card_nad(uint8_t nad, uint8_t pcb, const uint8_t *inf, size_t len)
{
	uint8_t b[300];
	size_t n = frame(b, nad, pcb, inf, len);

	return smc_t1_reply(&ext, SMC_OK, b, n);
}

static smc_status card(uint8_t pcb, const uint8_t *inf, size_t len)
{
	return card_nad(0, pcb, inf, len);
}

static smc_status card_s(uint8_t pcb, uint8_t value)
{
	return card(pcb, &value, 1);
}

static smc_status card_raw(const uint8_t *b, size_t n)
{
	return smc_t1_reply(&ext, SMC_OK, b, n);
}

static smc_status mute(void)
{
	return smc_t1_reply(&ext, SMC_ERR_TIMEOUT, NULL, 0);
}

/* The engine has another block: build it. */
static void more(smc_status st)
{
	assert_int_equal(st, SMC_MORE_PROCESSING);
	assert_int_equal(smc_t1_request(&ext), SMC_OK);
}

static const uint8_t sw_ok[] = { 0x90, 0x00 };

/* The card's last block, I(ns) with 90 00, must end the exchange. */
static void card_ends_ok(uint8_t ns)
{
	assert_int_equal(card(I(ns, 0), sw_ok, 2), SMC_OK);
}

/* One short exchange that must succeed: our I(ns) with the APDU, card's I(nr) 90 00. */
static void exchange_ok(uint8_t ns, uint8_t nr)
{
	start(5, 258);
	want_i_part(I(ns, 0), 0, 5);
	card_ends_ok(nr);
	assert_int_equal(ext.io.reply_len, 2);
	assert_memory_equal(reply, sw_ok, 2);
}

/* ---- EDC ---------------------------------------------------------------- */

static void t1_crc_has_the_iso13239_check_value_without_final_xor(void **state)
{
	const uint8_t check[] = "123456789";
	const uint8_t select[] = { 0x00, 0x00, 0x04, 0x00, 0xA4, 0x04, 0x00 };

	(void)state;
	/* CRC-16/X-25 has check value 906E with its final XOR FFFF; without it, 6F91 */
	assert_int_equal(smc_t1_crc(check, 9), 0x6F91);
	assert_int_equal(crc16(check, 9), 0x6F91);
	assert_int_equal(smc_t1_crc(select, sizeof(select)), 0x5549);
	assert_int_equal(smc_t1_lrc(select, sizeof(select)), 0xA4);
	assert_int_equal(smc_t1_lrc(NULL, 0), 0);
}

/* ---- single blocks, exact bytes ----------------------------------------- */

static void t1_case1_apdu_is_one_i_block_with_lrc(void **state)
{
	const uint8_t sent[] = { 0x00, 0x00, 0x04, 0x00, 0xA4, 0x04, 0x00, 0xA4 };
	const uint8_t answer[] = { 0x00, 0x00, 0x02, 0x90, 0x00, 0x92 };

	(void)state;
	slot(false, 32, 0);
	memcpy(apdu, sent + 3, 4);
	begin(4, 258);
	assert_int_equal(ext.t1.block_len, sizeof(sent));
	assert_memory_equal(ext.t1.block, sent, sizeof(sent));
	assert_int_equal(ext.t1.wtx, 1);
	assert_int_equal(card_raw(answer, sizeof(answer)), SMC_OK);
	assert_int_equal(ext.io.reply_len, 2);
	assert_memory_equal(reply, sw_ok, 2);
	assert_int_equal(reply[2], CANARY);
	assert_int_equal(ext.t1.ns, 1);
	assert_int_equal(ext.t1.nr, 1);
}

static void t1_case2_apdu_with_crc_and_data_back(void **state)
{
	const uint8_t sent[] = { 0x00, 0x00, 0x05, 0x00, 0xB0, 0x00, 0x00, 0x10, 0x19, 0x16 };
	uint8_t data[18];

	(void)state;
	slot(true, 32, 0);
	memcpy(apdu, sent + 3, 5);
	begin(5, 258);
	assert_int_equal(ext.t1.block_len, sizeof(sent));
	assert_memory_equal(ext.t1.block, sent, sizeof(sent));
	for (size_t i = 0; i < 16; i++)
		data[i] = (uint8_t)(0xF0 - i);
	data[16] = 0x90;
	data[17] = 0x00;
	assert_int_equal(card(I(0, 0), data, sizeof(data)), SMC_OK);
	assert_int_equal(ext.io.reply_len, sizeof(data));
	assert_memory_equal(reply, data, sizeof(data));
}

static void t1_case3_and_case4_toggle_sequence_numbers(void **state)
{
	const uint8_t case3[] = { 0x00, 0xD6, 0x00, 0x00, 0x03, 0x01, 0x02, 0x03 };
	const uint8_t case4[] = { 0x00, 0x88, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x00 };
	const uint8_t card1[] = { 0x00, 0x40, 0x02, 0x90, 0x00, 0xD2 }; /* I(1) 90 00, LRC */
	const uint8_t resp4[] = { 0x11, 0x22, 0x90, 0x00 };

	(void)state;
	slot(false, 32, 0);
	/* after one APDU each side expects N(S) = 1 */
	exchange_ok(0, 0);
	memcpy(apdu, case3, sizeof(case3));
	begin(sizeof(case3), 258);
	want(I(1, 0), case3, sizeof(case3));
	assert_int_equal(card_raw(card1, sizeof(card1)), SMC_OK);
	assert_int_equal(ext.io.reply_len, 2);

	memcpy(apdu, case4, sizeof(case4));
	begin(sizeof(case4), 258);
	want(I(0, 0), case4, sizeof(case4));
	assert_int_equal(card(I(0, 0), resp4, sizeof(resp4)), SMC_OK);
	assert_int_equal(ext.io.reply_len, sizeof(resp4));
	assert_memory_equal(reply, resp4, sizeof(resp4));
}

static void t1_case4_with_crc_exact_bytes(void **state)
{
	const uint8_t case4[] = { 0x00, 0x88, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x00 };
	uint8_t sent[3 + sizeof(case4) + 2] = { 0x00, 0x00, sizeof(case4) };
	uint16_t c;

	(void)state;
	slot(true, 32, 0);
	memcpy(sent + 3, case4, sizeof(case4));
	c = crc16(sent, 3 + sizeof(case4));
	sent[sizeof(sent) - 2] = (uint8_t)(c >> 8);
	sent[sizeof(sent) - 1] = (uint8_t)c;
	memcpy(apdu, case4, sizeof(case4));
	begin(sizeof(case4), 258);
	assert_int_equal(ext.t1.block_len, sizeof(sent));
	assert_memory_equal(ext.t1.block, sent, sizeof(sent));
	card_ends_ok(0);
}

/* ---- chaining ----------------------------------------------------------- */

static void t1_command_chaining_with_ifsc_32(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(100, 258);
	want_i_part(I(0, 1), 0, 32);
	more(card(R(1, 0), NULL, 0));
	want_i_part(I(1, 1), 32, 32);
	more(card(R(0, 0), NULL, 0));
	want_i_part(I(0, 1), 64, 32);
	more(card(R(1, 0), NULL, 0));
	want_i_part(I(1, 0), 96, 4);
	card_ends_ok(0);
	assert_int_equal(ext.t1.ns, 0);
	assert_int_equal(ext.t1.nr, 1);
}

static void t1_extended_apdu_of_65544_bytes_chains_with_ifsc_254(void **state)
{
	unsigned saved = smc_log_mask;
	size_t off = 0;
	uint8_t ns = 0;
	unsigned blocks = 0;

	(void)state;
	smc_log_mask = SMC_LOG_CRITICAL;
	slot(true, 254, 0);
	start(APDU_MAX, 258);
	while (APDU_MAX - off > 254) {
		want_i_part(I(ns, 1), off, 254);
		off += 254;
		ns ^= 1;
		blocks++;
		more(card(R(ns, 0), NULL, 0));
	}
	want_i_part(I(ns, 0), off, APDU_MAX - off);
	assert_int_equal(APDU_MAX - off, 12);
	assert_int_equal(blocks + 1, 259);
	card_ends_ok(0);
	assert_int_equal(ext.io.reply_len, 2);
	smc_log_mask = saved;
}

static void t1_response_chaining_is_collected(void **state)
{
	uint8_t part[32];
	uint8_t last[12];

	(void)state;
	slot(false, 32, 0);
	for (size_t i = 0; i < sizeof(part); i++)
		part[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(last); i++)
		last[i] = (uint8_t)(0x80 + i);
	last[10] = 0x90;
	last[11] = 0x00;
	start(5, 300);
	want_i_part(I(0, 0), 0, 5);
	more(card(I(0, 1), part, 32));
	want(R(1, 0), NULL, 0);
	more(card(I(1, 1), part, 32));
	want(R(0, 0), NULL, 0);
	assert_int_equal(card(I(0, 0), last, sizeof(last)), SMC_OK);
	assert_int_equal(ext.io.reply_len, 76);
	assert_memory_equal(reply, part, 32);
	assert_memory_equal(reply + 32, part, 32);
	assert_memory_equal(reply + 64, last, sizeof(last));
	assert_int_equal(ext.t1.nr, 1);
	assert_int_equal(ext.t1.ns, 1);
}

static void t1_card_ifs_request_mid_chain_changes_ifsc(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(100, 258);
	want_i_part(I(0, 1), 0, 32);
	more(card_s(S_REQ(IFS), 64));
	want_s(S_RSP(IFS), 64);
	assert_int_equal(ext.t1.ifsc, 64);
	more(card(R(1, 0), NULL, 0));
	want_i_part(I(1, 1), 32, 64);
	more(card(R(0, 0), NULL, 0));
	want_i_part(I(0, 0), 96, 4);
	card_ends_ok(0);
}

/* ---- IFSD negotiation --------------------------------------------------- */

static void t1_ifsd_is_negotiated_before_the_first_apdu(void **state)
{
	const uint8_t ifs_req[] = { 0x00, 0xC1, 0x01, 0xFE, 0x3E };
	uint8_t big[254];

	(void)state;
	slot(false, 32, 254);
	assert_true(ext.t1.ifsd_pending);
	assert_int_equal(ext.t1.ifsd, 32);
	start(5, 600);
	assert_int_equal(ext.t1.block_len, sizeof(ifs_req));
	assert_memory_equal(ext.t1.block, ifs_req, sizeof(ifs_req));
	more(card_s(S_RSP(IFS), 254));
	assert_int_equal(ext.t1.ifsd, 254);
	assert_false(ext.t1.ifsd_pending);
	want_i_part(I(0, 0), 0, 5);
	memset(big, 0x5A, sizeof(big));
	more(card(I(0, 1), big, sizeof(big)));
	want(R(1, 0), NULL, 0);
	card_ends_ok(1);
	assert_int_equal(ext.io.reply_len, 256);
	/* only once */
	exchange_ok(1, 0);
}

static void t1_ifsd_given_up_after_card_mute_three_times(void **state)
{
	uint8_t big[33];

	(void)state;
	slot(true, 32, 254);
	start(5, 258);
	want_s(S_REQ(IFS), 254);
	more(mute());
	want_s(S_REQ(IFS), 254);
	more(mute());
	want_s(S_REQ(IFS), 254);
	more(mute());
	want_i_part(I(0, 0), 0, 5);
	assert_false(ext.t1.ifsd_pending);
	assert_int_equal(ext.t1.ifsd, 32);
	/* IFSD is still 32: a 33-byte block is refused */
	memset(big, 0, sizeof(big));
	more(card(I(0, 0), big, sizeof(big)));
	want(R(0, 2), NULL, 0);
	card_ends_ok(0);
}

static void t1_ifs_response_must_echo_our_ifsd(void **state)
{
	(void)state;
	slot(false, 32, 200);
	start(5, 258);
	want_s(S_REQ(IFS), 200);
	more(card_s(S_RSP(IFS), 100));
	want_s(S_REQ(IFS), 200);
	more(card(R(0, 0), NULL, 0));
	want_s(S_REQ(IFS), 200);
	more(card_s(S_RSP(IFS), 200));
	assert_int_equal(ext.t1.ifsd, 200);
	want_i_part(I(0, 0), 0, 5);
	card_ends_ok(0);
}

/* ---- WTX ---------------------------------------------------------------- */

static void t1_wtx_multiplier_holds_for_the_next_block_only(void **state)
{
	uint8_t part[10];

	(void)state;
	slot(false, 32, 0);
	memset(part, 0x33, sizeof(part));
	start(5, 258);
	want_i_part(I(0, 0), 0, 5);
	assert_int_equal(ext.t1.wtx, 1);
	more(card_s(S_REQ(WTX), 5));
	want_s(S_RSP(WTX), 5);
	assert_int_equal(ext.t1.wtx, 5);
	more(card_s(S_REQ(WTX), 2));
	want_s(S_RSP(WTX), 2);
	assert_int_equal(ext.t1.wtx, 2);
	more(card(I(0, 1), part, sizeof(part)));
	want(R(1, 0), NULL, 0);
	assert_int_equal(ext.t1.wtx, 1);
	card_ends_ok(1);
	assert_int_equal(ext.io.reply_len, 12);
	exchange_ok(1, 0);
	assert_int_equal(ext.t1.wtx, 1);
}

static void t1_wtx_with_multiplier_zero_is_an_invalid_block(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(5, 258);
	more(card_s(S_REQ(WTX), 0));
	want(R(0, 2), NULL, 0);
	assert_int_equal(ext.t1.wtx, 1);
	card_ends_ok(0);
}

/* ---- error recovery ----------------------------------------------------- */

static void t1_resends_block_after_bad_edc(void **state)
{
	uint8_t b[16];
	size_t n;

	(void)state;
	slot(false, 32, 0);
	start(5, 258);
	n = frame(b, 0, I(0, 0), sw_ok, 2);
	b[n - 1] ^= 0x01;
	more(card_raw(b, n));
	want(R(0, 1), NULL, 0);
	card_ends_ok(0);

	/* the same with CRC, a flipped bit in the INF */
	slot(true, 32, 0);
	begin(5, 258);
	n = frame(b, 0, I(0, 0), sw_ok, 2);
	b[3] ^= 0x80;
	more(card_raw(b, n));
	want(R(0, 1), NULL, 0);
	/* a parity error reported by the reader is an EDC/parity error too */
	more(smc_t1_reply(&ext, SMC_ERR_COMM, NULL, 0));
	want(R(0, 1), NULL, 0);
	card_ends_ok(0);
}

static void t1_mute_card_gets_an_r_block(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(5, 258);
	more(mute());
	want(R(0, 2), NULL, 0);
	card_ends_ok(0);
}

static void t1_lost_r_block_ack_is_asked_for_again(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(40, 258);
	want_i_part(I(0, 1), 0, 32);
	more(mute());
	want(R(0, 2), NULL, 0);
	/* the card sends its acknowledgement again */
	more(card(R(1, 0), NULL, 0));
	want_i_part(I(1, 0), 32, 8);
	card_ends_ok(0);
}

static void t1_card_r_block_asking_for_our_i_block_gets_it_again(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(40, 258);
	want_i_part(I(0, 1), 0, 32);
	more(card(R(0, 1), NULL, 0));
	want_i_part(I(0, 1), 0, 32);
	more(card(R(1, 0), NULL, 0));
	want_i_part(I(1, 0), 32, 8);
	more(card(R(1, 2), NULL, 0));
	want_i_part(I(1, 0), 32, 8);
	card_ends_ok(0);
}

static void t1_lost_card_i_block_is_asked_for_again(void **state)
{
	uint8_t part[8];

	(void)state;
	slot(false, 32, 0);
	memset(part, 0x44, sizeof(part));
	start(5, 258);
	more(card(I(0, 1), part, sizeof(part)));
	want(R(1, 0), NULL, 0);
	/* rule 7.2: our R-block goes again as it was */
	more(mute());
	want(R(1, 0), NULL, 0);
	/* the card did not get our R-block: it asks with its own R-block */
	more(card(R(1, 1), NULL, 0));
	want(R(1, 0), NULL, 0);
	/* an I-block with the old N(S) is refused */
	more(card(I(0, 1), part, sizeof(part)));
	want(R(1, 0), NULL, 0);
	card_ends_ok(1);
	assert_int_equal(ext.io.reply_len, 10);
	assert_memory_equal(reply, part, 8);
	assert_memory_equal(reply + 8, sw_ok, 2);
}

static void t1_four_failures_resynch_and_next_apdu_starts_at_zero(void **state)
{
	(void)state;
	slot(false, 32, 0);
	exchange_ok(0, 0);
	start(5, 258);
	want_i_part(I(1, 0), 0, 5);
	for (int k = 0; k < 3; k++) {
		more(mute());
		want(R(1, 2), NULL, 0);
	}
	more(mute());
	want(S_REQ(RESYNCH), NULL, 0);
	assert_int_equal(ext.t1.block_len, 4);
	assert_int_equal(ext.t1.block[3], 0xC0);
	assert_int_equal(card(S_RSP(RESYNCH), NULL, 0), SMC_ERR_TIMEOUT);
	assert_int_equal(ext.t1.ns, 0);
	assert_int_equal(ext.t1.nr, 0);
	exchange_ok(0, 0);
}

static void t1_resynch_after_bad_blocks_fails_with_comm_and_requeues_ifs(void **state)
{
	const uint8_t junk[] = { 0x00, 0x00, 0x05, 0x01 };

	(void)state;
	slot(true, 48, 254);
	start(5, 258);
	more(card_s(S_RSP(IFS), 254));
	more(card_s(S_REQ(IFS), 100));
	assert_int_equal(ext.t1.ifsc, 100);
	for (int k = 0; k < 3; k++) {
		more(card_raw(junk, sizeof(junk)));
		want(R(0, 2), NULL, 0);
	}
	more(card_raw(junk, sizeof(junk)));
	want(S_REQ(RESYNCH), NULL, 0);
	more(mute());
	want(S_REQ(RESYNCH), NULL, 0);
	assert_int_equal(card(S_RSP(RESYNCH), NULL, 0), SMC_ERR_COMM);
	assert_int_equal(ext.t1.ifsc, 48);
	assert_int_equal(ext.t1.ifsd, 32);
	assert_true(ext.t1.ifsd_pending);
	begin(5, 258);
	want_s(S_REQ(IFS), 254);
}

static void t1_card_asking_four_times_for_our_block_resynchs(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(5, 258);
	for (int k = 0; k < 3; k++) {
		more(card(R(0, 1), NULL, 0));
		want_i_part(I(0, 0), 0, 5);
	}
	more(card(R(0, 1), NULL, 0));
	want(S_REQ(RESYNCH), NULL, 0);
	assert_int_equal(card(S_RSP(RESYNCH), NULL, 0), SMC_ERR_COMM);
}

static void t1_resynch_failing_three_times_returns_the_error(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(5, 258);
	for (int k = 0; k < 3; k++)
		more(mute());
	more(mute());
	want(S_REQ(RESYNCH), NULL, 0);
	more(mute());
	want(S_REQ(RESYNCH), NULL, 0);
	more(card(R(0, 0), NULL, 0));
	want(S_REQ(RESYNCH), NULL, 0);
	assert_int_equal(mute(), SMC_ERR_TIMEOUT);
	/* 11.6.3.2: only a reset brings the card back; no APDU goes before it */
	assert_true(ext.t1.needs_reset);
	assert_true(ext.t1.resynch_pending);
	assert_int_equal(smc_t1_reply(&ext, SMC_OK, NULL, 0), SMC_ERR_INVALID_STATE);
	refused(5);
	refused(5);
	/* the driver resets the card and starts T=1 again */
	smc_t1_init(&ext, 0);
	assert_false(ext.t1.needs_reset);
	assert_false(ext.t1.resynch_pending);
	begin(5, 258);
	want_i_part(I(0, 0), 0, 5);
}

/* ---- abort and overflow ------------------------------------------------- */

static void t1_card_abort_ends_the_exchange(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(100, 258);
	want_i_part(I(0, 1), 0, 32);
	more(card(S_REQ(ABORT), NULL, 0));
	want(S_RSP(ABORT), NULL, 0);
	assert_int_equal(card(R(0, 0), NULL, 0), SMC_ERR_COMM);
	/* whether the card took our I(0,M) is unknown: the next APDU resynchs first */
	assert_true(ext.t1.resynch_pending);
	start(5, 258);
	want(S_REQ(RESYNCH), NULL, 0);
	more(card(S_RSP(RESYNCH), NULL, 0));
	want_i_part(I(0, 0), 0, 5);
	card_ends_ok(0);
	assert_false(ext.t1.resynch_pending);
}

static void t1_response_overflow_aborts_the_chain(void **state)
{
	uint8_t part[32];

	(void)state;
	slot(false, 32, 0);
	memset(part, 0x77, sizeof(part));
	start(5, 40);
	more(card(I(0, 1), part, sizeof(part)));
	want(R(1, 0), NULL, 0);
	more(card(I(1, 1), part, sizeof(part)));
	want(S_REQ(ABORT), NULL, 0);
	assert_int_equal(card(S_RSP(ABORT), NULL, 0), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(ext.io.reply_len, 64);
	assert_memory_equal(reply, part, 32);
	for (size_t i = 32; i < sizeof(reply); i++)
		assert_int_equal(reply[i], CANARY);
	/* the sequence numbers go on */
	exchange_ok(1, 0);
}

static void t1_response_overflow_in_last_block_and_abort_failure(void **state)
{
	uint8_t part[20];

	(void)state;
	slot(false, 32, 0);
	memset(part, 0x11, sizeof(part));
	start(5, 10);
	assert_int_equal(card(I(0, 0), part, sizeof(part)), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(ext.io.reply_len, 20);
	assert_int_equal(reply[0], CANARY);

	begin(5, 10);
	more(card(I(1, 1), part, sizeof(part)));
	want(S_REQ(ABORT), NULL, 0);
	more(mute());
	want(S_REQ(ABORT), NULL, 0);
	more(card(I(0, 1), part, sizeof(part)));
	want(S_REQ(ABORT), NULL, 0);
	assert_false(ext.t1.resynch_pending);
	assert_int_equal(mute(), SMC_ERR_BUFFER_TOO_SMALL);
	/* the card never confirmed the abort: it may still be in its chain */
	assert_true(ext.t1.resynch_pending);
	assert_false(ext.t1.needs_reset);
	begin(5, 10);
	want(S_REQ(RESYNCH), NULL, 0);
}

static void t1_response_without_status_words_is_an_error(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(5, 258);
	assert_int_equal(card(I(0, 0), sw_ok, 1), SMC_ERR_COMM);
	begin(5, 258);
	more(card(I(1, 1), NULL, 0));
	assert_int_equal(card(I(0, 0), NULL, 0), SMC_ERR_COMM);
}

/* ---- staying in step across exchanges ------------------------------------ */

/* A card that follows 11.6 from its side (rules 1, 7.1, 7.2 and RESYNCH), for
 * one-block APDUs: its response is the INS of the command, the number of the
 * APDUs it has run, 90 00. It decides its answers by the rules alone, so a
 * stale response shows up as the wrong INS. */
struct model {
	uint8_t exp;                    /* N(S) it expects in our next I-block */
	uint8_t ns;                     /* N(S) of its next I-block */
	uint8_t last[SMC_T1_BLOCK_MAX]; /* its last I-block, sent again on request */
	size_t last_len;
	unsigned executed;              /* APDUs it ran */
	unsigned resynchs;              /* S(RESYNCH request)s it answered */
};
static struct model vc;

static void model_reset(void)
{
	memset(&vc, 0, sizeof(vc));
}

static size_t model_r_block(uint8_t *out)
{
	return frame(out, 0, R(vc.exp, 2), NULL, 0);
}

/* The card's answer to the engine's block of the moment, into out. */
static size_t model_answer(uint8_t *out)
{
	const uint8_t *b = ext.t1.block;
	uint8_t pcb = b[1];

	if ((pcb & 0x80) == 0) {
		uint8_t resp[4];

		assert_int_equal(pcb & 0x20, 0); /* one-block APDUs only */
		if (((pcb & 0x40) ? 1 : 0) != vc.exp)
			return model_r_block(out); /* not the I-block it expects */
		vc.exp ^= 1;
		vc.executed++;
		resp[0] = b[4];
		resp[1] = (uint8_t)vc.executed;
		resp[2] = 0x90;
		resp[3] = 0x00;
		vc.last_len = frame(vc.last, 0, I(vc.ns, 0), resp, sizeof(resp));
		vc.ns ^= 1;
		memcpy(out, vc.last, vc.last_len);
		return vc.last_len;
	}
	if ((pcb & 0xC0) == 0x80) {
		/* R(N(R) = N(S) of its last I-block): send that I-block again */
		if (vc.last_len > 0 && ((pcb & 0x10) ? 1 : 0) == (vc.ns ^ 1)) {
			memcpy(out, vc.last, vc.last_len);
			return vc.last_len;
		}
		return model_r_block(out);
	}
	switch (pcb) {
	case S_REQ(RESYNCH):
		vc.exp = vc.ns = 0;
		vc.last_len = 0;
		vc.resynchs++;
		return frame(out, 0, S_RSP(RESYNCH), NULL, 0);
	case S_REQ(IFS):
		return frame(out, 0, S_RSP(IFS), b + 3, 1);
	case S_REQ(ABORT):
		return frame(out, 0, S_RSP(ABORT), NULL, 0);
	default:
		return model_r_block(out);
	}
}

/* The engine's block reaches the card and the card's answer comes back. */
static smc_status deliver(void)
{
	uint8_t b[SMC_T1_BLOCK_MAX];
	size_t n = model_answer(b);

	return card_raw(b, n);
}

/* The engine's block reaches the card; the card's answer is lost. */
static smc_status answer_lost(void)
{
	uint8_t b[SMC_T1_BLOCK_MAX];

	(void)model_answer(b);
	return mute();
}

static const uint8_t read_binary[] = { 0x00, 0xB0, 0x00, 0x00, 0x02 };
static const uint8_t verify[] = { 0x00, 0x20, 0x00, 0x81, 0x04, '1', '2', '3', '4' };

static void begin_apdu(const uint8_t *a, size_t len)
{
	memcpy(apdu, a, len);
	begin(len, 258);
}

/* The review's case: the card runs READ BINARY, its answer is lost, the
 * driver's time budget ends the exchange before its R-block goes out. Without
 * a RESYNCH the card, expecting I(1), would refuse VERIFY's I(0); our R-block
 * would make it repeat READ BINARY's response, taken for VERIFY's. */
static void t1_next_apdu_after_a_lost_answer_resynchs_and_gets_its_own_response(void **state)
{
	const uint8_t verify_resp[] = { 0x20, 2, 0x90, 0x00 };
	const uint8_t read_resp[] = { 0xB0, 3, 0x90, 0x00 };

	(void)state;
	slot(false, 32, 0);
	model_reset();
	begin_apdu(read_binary, sizeof(read_binary));
	want(I(0, 0), read_binary, sizeof(read_binary));
	more(answer_lost());
	want(R(0, 2), NULL, 0);
	more(answer_lost()); /* the card sends READ BINARY's response again: lost too */
	want(R(0, 2), NULL, 0);
	smc_t1_abandon(&ext); /* budget spent: this R-block never goes */
	assert_int_equal(vc.executed, 1);
	assert_true(ext.t1.resynch_pending);
	assert_false(ext.t1.needs_reset);
	assert_int_equal(smc_t1_reply(&ext, SMC_OK, NULL, 0), SMC_ERR_INVALID_STATE);

	/* VERIFY: RESYNCH first, then VERIFY itself, which the card runs */
	begin_apdu(verify, sizeof(verify));
	want(S_REQ(RESYNCH), NULL, 0);
	more(deliver());
	assert_false(ext.t1.resynch_pending);
	want(I(0, 0), verify, sizeof(verify));
	assert_int_equal(deliver(), SMC_OK);
	assert_int_equal(vc.executed, 2);
	assert_int_equal(vc.resynchs, 1);
	assert_int_equal(ext.io.reply_len, sizeof(verify_resp));
	assert_memory_equal(reply, verify_resp, sizeof(verify_resp));

	/* the sequence goes on from there, without RESYNCH */
	begin_apdu(read_binary, sizeof(read_binary));
	want(I(1, 0), read_binary, sizeof(read_binary));
	assert_int_equal(deliver(), SMC_OK);
	assert_memory_equal(reply, read_resp, sizeof(read_resp));
	assert_int_equal(vc.resynchs, 1);
}

/* The same card, but the driver feeds "mute" for every block after the lost
 * answer (they never reach the card): the recovery RESYNCH fails 3 times, the
 * next APDU is refused until a reset, and after it VERIFY gets its own answer. */
static void t1_recovery_resynch_unanswered_needs_a_reset(void **state)
{
	const uint8_t verify_resp[] = { 0x20, 1, 0x90, 0x00 };

	(void)state;
	slot(false, 32, 0);
	model_reset();
	begin_apdu(read_binary, sizeof(read_binary));
	more(answer_lost());
	for (int k = 0; k < 3; k++) {
		want(R(0, 2), NULL, 0);
		more(mute());
	}
	for (int k = 0; k < 2; k++) {
		want(S_REQ(RESYNCH), NULL, 0);
		more(mute());
	}
	want(S_REQ(RESYNCH), NULL, 0);
	assert_int_equal(mute(), SMC_ERR_TIMEOUT);
	assert_true(ext.t1.needs_reset);
	assert_true(ext.t1.resynch_pending);
	memcpy(apdu, verify, sizeof(verify));
	refused(sizeof(verify));
	assert_int_equal(vc.executed, 1);

	/* the driver resets the card (a fresh card state) and starts T=1 again */
	model_reset();
	smc_t1_init(&ext, 0);
	begin_apdu(verify, sizeof(verify));
	want(I(0, 0), verify, sizeof(verify));
	assert_int_equal(deliver(), SMC_OK);
	assert_memory_equal(reply, verify_resp, sizeof(verify_resp));
}

/* 11.6.3.2 before the APDU: N(S) = N(R) = 0, IFSC from the ATR, IFSD 32 with
 * our S(IFS request) queued again; then the APDU runs. */
static void t1_abandoned_exchange_resynchs_with_defaults_before_the_next_apdu(void **state)
{
	(void)state;
	slot(false, 48, 254);
	start(100, 258);
	want_s(S_REQ(IFS), 254);
	more(card_s(S_RSP(IFS), 254));
	want_i_part(I(0, 1), 0, 48);
	more(card_s(S_REQ(IFS), 100)); /* the card raises IFSC */
	want_s(S_RSP(IFS), 100);
	more(card(R(1, 0), NULL, 0));
	want_i_part(I(1, 0), 48, 52);
	smc_t1_abandon(&ext);
	assert_true(ext.t1.resynch_pending);
	assert_int_equal(smc_t1_reply(&ext, SMC_OK, NULL, 0), SMC_ERR_INVALID_STATE);

	start(5, 258);
	want(S_REQ(RESYNCH), NULL, 0);
	more(card(S_RSP(RESYNCH), NULL, 0));
	assert_int_equal(ext.t1.ns, 0);
	assert_int_equal(ext.t1.nr, 0);
	assert_int_equal(ext.t1.ifsc, 48);
	assert_int_equal(ext.t1.ifsd, 32);
	assert_true(ext.t1.ifsd_pending);
	assert_false(ext.t1.resynch_pending);
	want_s(S_REQ(IFS), 254);
	more(card_s(S_RSP(IFS), 254));
	want_i_part(I(0, 0), 0, 5);
	card_ends_ok(0);
	assert_int_equal(ext.io.reply_len, 2);

	/* with no exchange in progress, abandon changes nothing */
	smc_t1_abandon(&ext);
	smc_t1_abandon(NULL);
	assert_false(ext.t1.resynch_pending);
	exchange_ok(1, 1);
}

/* The RESYNCH before an APDU is sent again after a mute card or an invalid
 * answer (rule 7.3), and the APDU goes on once it is answered. */
static void t1_resynch_before_an_apdu_is_sent_again_after_invalid_answers(void **state)
{
	uint8_t b[16];
	size_t n;

	(void)state;
	slot(true, 32, 0);
	start(5, 258);
	want_i_part(I(0, 0), 0, 5);
	assert_int_equal(smc_t1_reply(&ext, SMC_ERR_CANCELLED, NULL, 0), SMC_ERR_CANCELLED);
	begin(5, 258);
	want(S_REQ(RESYNCH), NULL, 0);
	n = frame(b, 0, S_RSP(RESYNCH), NULL, 0);
	b[n - 1] ^= 0x10; /* bad CRC */
	more(card_raw(b, n));
	want(S_REQ(RESYNCH), NULL, 0);
	more(card_s(S_REQ(WTX), 2));
	want(S_REQ(RESYNCH), NULL, 0);
	more(card(S_RSP(RESYNCH), NULL, 0));
	want_i_part(I(0, 0), 0, 5);
	more(mute()); /* ordinary recovery within the APDU */
	want(R(0, 2), NULL, 0);
	card_ends_ok(0);
	assert_false(ext.t1.resynch_pending);
	assert_false(ext.t1.needs_reset);
}

static void t1_resynch_before_an_apdu_unanswered_fails_and_needs_a_reset(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(5, 258);
	want_i_part(I(0, 0), 0, 5);
	smc_t1_abandon(&ext);
	begin(5, 258);
	for (int k = 0; k < 2; k++) {
		want(S_REQ(RESYNCH), NULL, 0);
		more(mute());
	}
	want(S_REQ(RESYNCH), NULL, 0);
	assert_int_equal(mute(), SMC_ERR_COMM);
	assert_true(ext.t1.needs_reset);
	assert_true(ext.t1.resynch_pending);
	refused(5);
	refused(5);
	/* after the driver's reset */
	smc_t1_init(&ext, 0);
	assert_false(ext.t1.needs_reset);
	assert_false(ext.t1.resynch_pending);
	exchange_ok(0, 0);
}

/* Exchanges that end in step, even in error, send no RESYNCH before the next
 * APDU: recovered errors, a response without SW1 SW2 or too long for the
 * buffer, our S(ABORT) confirmed, a recovery RESYNCH answered, a malformed
 * APDU that never left. */
static void t1_exchanges_that_end_in_step_need_no_resynch(void **state)
{
	uint8_t part[32];

	(void)state;
	memset(part, 0x66, sizeof(part));
	slot(false, 32, 0);
	start(5, 258);
	more(smc_t1_reply(&ext, SMC_ERR_COMM, NULL, 0));
	want(R(0, 1), NULL, 0);
	card_ends_ok(0);
	exchange_ok(1, 1);
	assert_false(ext.t1.resynch_pending);

	start(5, 258);
	assert_int_equal(card(I(0, 0), sw_ok, 1), SMC_ERR_COMM);
	assert_false(ext.t1.resynch_pending);
	start(5, 10);
	want_i_part(I(1, 0), 0, 5);
	assert_int_equal(card(I(1, 0), part, 20), SMC_ERR_BUFFER_TOO_SMALL);
	assert_false(ext.t1.resynch_pending);
	start(5, 40);
	want_i_part(I(0, 0), 0, 5);
	more(card(I(0, 1), part, 32));
	more(card(I(1, 1), part, 32));
	want(S_REQ(ABORT), NULL, 0);
	assert_int_equal(card(S_RSP(ABORT), NULL, 0), SMC_ERR_BUFFER_TOO_SMALL);
	assert_false(ext.t1.resynch_pending);

	ext.io.request_len = 0;
	assert_int_equal(smc_t1_request(&ext), SMC_ERR_INVALID_PARAM);
	assert_false(ext.t1.resynch_pending);

	start(5, 258);
	want_i_part(I(1, 0), 0, 5);
	for (int k = 0; k < 4; k++)
		more(mute());
	want(S_REQ(RESYNCH), NULL, 0);
	assert_int_equal(card(S_RSP(RESYNCH), NULL, 0), SMC_ERR_TIMEOUT);
	assert_false(ext.t1.resynch_pending);
	assert_false(ext.t1.needs_reset);
	exchange_ok(0, 0);
}

/* ---- malformed blocks --------------------------------------------------- */

static void t1_malformed_blocks_get_r_block_other_error(void **state)
{
	uint8_t b[1200];
	size_t n;
	static const uint8_t undefined_pcbs[] = { 0x01, 0x10, 0x1F, 0x83, 0xA0, 0x84, 0x88,
						  0xC4, 0xD0, 0xE5, 0xFF };

	(void)state;
	slot(false, 32, 0);
	make_apdu(5);

	/* LEN says 2, 3 bytes follow */
	begin(5, 258);
	n = frame(b, 0, I(0, 0), sw_ok, 2);
	b[2] = 3;
	b[n - 1] ^= 2 ^ 3;
	more(card_raw(b, n));
	want(R(0, 2), NULL, 0);
	/* LEN FF, followed by 255 bytes and an LRC */
	memset(b, 0, sizeof(b));
	b[2] = 0xFF;
	b[3 + 255] = 0xFF;
	more(card_raw(b, 3 + 255 + 1));
	want(R(0, 2), NULL, 0);
	/* LEN 33 > IFSD 32, EDC right */
	n = frame(b, 0, I(0, 0), b + 600, 33);
	more(card_raw(b, n));
	want(R(0, 2), NULL, 0);
	card_ends_ok(0);

	/* truncated blocks: nothing, 3 bytes, NULL */
	begin(5, 258);
	n = frame(b, 0, I(1, 0), sw_ok, 2);
	more(card_raw(b, 0));
	want(R(1, 2), NULL, 0);
	more(card_raw(b, 3));
	want(R(1, 2), NULL, 0);
	more(smc_t1_reply(&ext, SMC_OK, NULL, 10));
	want(R(1, 2), NULL, 0);
	assert_int_equal(card_raw(b, n), SMC_OK);

	/* huge */
	begin(5, 258);
	memset(b, 0, sizeof(b));
	more(card_raw(b, sizeof(b)));
	want(R(0, 2), NULL, 0);
	card_ends_ok(0);

	/* undefined PCBs and S-blocks with a wrong INF */
	for (size_t k = 0; k < sizeof(undefined_pcbs); k++) {
		begin(5, 258);
		more(card(undefined_pcbs[k], NULL, 0));
		want(R(1, 2), NULL, 0);
		card_ends_ok(1);
		begin(5, 258);
		more(card(I(1, 0), sw_ok, 2)); /* wrong N(S) */
		want(R(0, 2), NULL, 0);
		card_ends_ok(0);
	}
	begin(5, 258);
	more(card_s(S_REQ(IFS), 0));
	want(R(1, 2), NULL, 0);
	more(card_s(S_REQ(IFS), 0xFF));
	want(R(1, 2), NULL, 0);
	more(card(S_REQ(IFS), sw_ok, 2));
	want(R(1, 2), NULL, 0);
	card_ends_ok(1);
	begin(5, 258);
	more(card_s(S_REQ(ABORT), 1));
	want(R(0, 2), NULL, 0);
	more(card(S_REQ(RESYNCH), NULL, 0)); /* only the reader resynchronises */
	want(R(0, 2), NULL, 0);
	more(card(S_RSP(WTX), sw_ok, 1)); /* no WTX request of ours */
	want(R(0, 2), NULL, 0);
	card_ends_ok(0);
}

static void t1_foreign_nad_is_accepted(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(5, 258);
	assert_int_equal(card_nad(0x21, I(0, 0), sw_ok, 2), SMC_OK);
	assert_int_equal(ext.io.reply_len, 2);
}

/* ---- bounds --------------------------------------------------------------- */

static void t1_endless_wtx_is_bounded(void **state)
{
	unsigned saved = smc_log_mask;
	unsigned steps = 0;
	smc_status st;

	(void)state;
	smc_log_mask = SMC_LOG_CRITICAL;
	slot(false, 32, 0);
	start(5, 258);
	for (;;) {
		st = card_s(S_REQ(WTX), 1);
		steps++;
		if (st != SMC_MORE_PROCESSING)
			break;
		assert_int_equal(smc_t1_request(&ext), SMC_OK);
		assert_true(steps < 1000);
	}
	assert_int_equal(st, SMC_ERR_COMM);
	/* 255 answered, the 256th sends RESYNCH, 3 RESYNCH tries */
	assert_int_equal(steps, 256 + 3);
	smc_log_mask = saved;
}

static void t1_endless_response_chaining_is_bounded(void **state)
{
	unsigned saved = smc_log_mask;
	unsigned long steps = 0;
	uint8_t ns = 0;
	uint8_t part[254];
	smc_status st;

	(void)state;
	smc_log_mask = SMC_LOG_CRITICAL;
	slot(false, 32, 0);
	make_apdu(5);
	/* empty I-blocks with M: bounded by the number of blocks */
	begin(5, REPLY_MAX);
	for (;;) {
		st = card(I(ns, 1), NULL, 0);
		ns ^= 1;
		steps++;
		assert_int_equal(st, SMC_MORE_PROCESSING);
		assert_int_equal(smc_t1_request(&ext), SMC_OK);
		if (ext.t1.block[1] != R(ns, 0))
			break;
		assert_true(steps < 70000);
	}
	want(S_REQ(ABORT), NULL, 0);
	assert_int_equal(steps, 65546);
	assert_int_equal(card(S_RSP(ABORT), NULL, 0), SMC_ERR_COMM);

	/* full blocks: bounded by the reply buffer */
	slot(false, 32, 254);
	memset(part, 0x42, sizeof(part));
	begin(5, REPLY_MAX);
	more(card_s(S_RSP(IFS), 254));
	ns = 0;
	steps = 0;
	for (;;) {
		st = card(I(ns, 1), part, sizeof(part));
		ns ^= 1;
		steps++;
		assert_int_equal(st, SMC_MORE_PROCESSING);
		assert_int_equal(smc_t1_request(&ext), SMC_OK);
		if (ext.t1.block[1] != R(ns, 0))
			break;
		assert_true(steps < 1000);
	}
	want(S_REQ(ABORT), NULL, 0);
	assert_int_equal(steps, REPLY_MAX / 254 + 1);
	assert_int_equal(card(S_RSP(ABORT), NULL, 0), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(ext.io.reply_len, steps * 254);
	for (size_t i = REPLY_MAX; i < sizeof(reply); i++)
		assert_int_equal(reply[i], CANARY);
	smc_log_mask = saved;
}

/* ---- the driver's side of the contract ------------------------------------- */

static void t1_reader_errors_end_the_exchange(void **state)
{
	(void)state;
	slot(false, 32, 0);
	start(40, 258);
	more(card(R(1, 0), NULL, 0));
	assert_int_equal(smc_t1_reply(&ext, SMC_ERR_NO_MEDIA, NULL, 0), SMC_ERR_NO_MEDIA);
	/* our I(1,M) may have reached the card: the next APDU resynchs first */
	assert_true(ext.t1.resynch_pending);
	begin(40, 258);
	want(S_REQ(RESYNCH), NULL, 0);
	assert_int_equal(smc_t1_reply(&ext, SMC_ERR_NO_DEVICE, NULL, 0), SMC_ERR_NO_DEVICE);
	assert_int_equal(smc_t1_reply(&ext, SMC_OK, NULL, 0), SMC_ERR_INVALID_STATE);
	assert_true(ext.t1.resynch_pending);
	assert_false(ext.t1.needs_reset);
	begin(40, 258);
	want(S_REQ(RESYNCH), NULL, 0);
	more(card(S_RSP(RESYNCH), NULL, 0));
	want_i_part(I(0, 1), 0, 32);
}

static void t1_reader_negotiated_ifsd_is_the_readers_maximum(void **state)
{
	uint8_t big[SMC_T1_INF_MAX];

	(void)state;
	slot(false, 32, 0);
	ext.reader_caps.max_ifsd = 100;
	smc_t1_init(&ext, 0);
	assert_false(ext.t1.ifsd_pending);
	assert_int_equal(ext.t1.ifsd, 100);
	ext.reader_caps.max_ifsd = 0;
	smc_t1_init(&ext, 0);
	assert_int_equal(ext.t1.ifsd, 254);
	/* no S(IFS request): the APDU goes first, 254-byte blocks are taken */
	memset(big, 0x3C, sizeof(big));
	start(5, 600);
	want_i_part(I(0, 0), 0, 5);
	more(card(I(0, 1), big, sizeof(big)));
	want(R(1, 0), NULL, 0);
	card_ends_ok(1);
	assert_int_equal(ext.io.reply_len, 256);
}

static void t1_invalid_requests_are_refused(void **state)
{
	(void)state;
	slot(false, 32, 0);
	make_apdu(5);
	ext.io.request = apdu;
	ext.io.reply = reply;
	ext.io.reply_cap = 258;
	ext.io.request_len = 0;
	assert_int_equal(smc_t1_request(&ext), SMC_ERR_INVALID_PARAM);
	ext.io.request_len = APDU_MAX + 1;
	assert_int_equal(smc_t1_request(&ext), SMC_ERR_INVALID_PARAM);
	ext.io.request_len = 5;
	ext.io.reply = NULL;
	assert_int_equal(smc_t1_request(&ext), SMC_ERR_INVALID_PARAM);
	ext.io.reply = reply;
	ext.io.request = NULL;
	assert_int_equal(smc_t1_request(&ext), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_t1_request(NULL), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_t1_reply(NULL, SMC_OK, NULL, 0), SMC_ERR_INVALID_PARAM);
	/* nothing was started */
	assert_int_equal(smc_t1_reply(&ext, SMC_OK, NULL, 0), SMC_ERR_INVALID_STATE);
}

static void t1_rest_len_follows_len_and_edc(void **state)
{
	const uint8_t p10[] = { 0x00, 0x00, 0x0A };
	const uint8_t p0[] = { 0x00, 0x80, 0x00 };
	const uint8_t pff[] = { 0x00, 0x00, 0xFF };

	(void)state;
	slot(false, 32, 0);
	assert_int_equal(smc_t1_rest_len(&ext, p10), 11);
	assert_int_equal(smc_t1_rest_len(&ext, p0), 1);
	assert_int_equal(smc_t1_rest_len(&ext, pff), 0);
	slot(true, 32, 0);
	assert_int_equal(smc_t1_rest_len(&ext, p10), 12);
	assert_int_equal(smc_t1_rest_len(&ext, p0), 2);
	assert_int_equal(smc_t1_rest_len(&ext, pff), 0);
	assert_int_equal(smc_t1_rest_len(&ext, NULL), 0);
}

/* ---- random cards ------------------------------------------------------------ */

static uint32_t rng_state = 0x12345678u;

static uint32_t rnd(void)
{
	/* xorshift32 */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static uint32_t below(uint32_t n)
{
	return rnd() % n;
}

/* A block a confused card might send: often a plausible kind, with random
 * sequence bits, lengths, NADs and EDC faults. */
static size_t random_block(uint8_t *b, size_t cap)
{
	uint8_t inf[SMC_T1_INF_MAX];
	uint8_t ours = ext.t1.block[1];
	uint8_t pcb;
	size_t len, n;

	for (size_t i = 0; i < sizeof(inf); i++)
		inf[i] = (uint8_t)rnd();
	switch (below(8)) {
	case 0: /* garbage */
		n = below((uint32_t)cap);
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)rnd();
		return n;
	case 1:
		pcb = (uint8_t)rnd();
		break;
	case 2: /* the response to our block if it was an S-request, echoing its value */
		pcb = (uint8_t)(ours | 0x20);
		if (ext.t1.block[2] == 1)
			inf[0] = ext.t1.block[3];
		break;
	case 3:
		pcb = R(below(2), below(3));
		break;
	case 4:
		pcb = (uint8_t)(0xC0 | below(2) << 5 | below(5));
		break;
	default:
		pcb = I(below(2), below(3) == 0);
		break;
	}
	len = below(4) ? below(12) : below(SMC_T1_INF_MAX + 1);
	if ((pcb & 0xC0) == 0xC0 && below(4))
		len = (pcb & 0x0F) == IFS || (pcb & 0x0F) == WTX ? 1 : 0;
	if ((pcb & 0xC0) == 0x80 && below(2))
		len = 0;
	n = frame(b, below(16) ? 0 : (uint8_t)rnd(), pcb, inf, len);
	if (below(10) == 0)
		b[below((uint32_t)n)] ^= (uint8_t)(1u << below(8));
	return n;
}

static void t1_random_cards_never_hang_or_overrun(void **state)
{
	unsigned saved = smc_log_mask;
	uint8_t b[600];
	unsigned iterations = 0, exchanges = 0, ok = 0, resynchs = 0, resets = 0, abandoned = 0;
	size_t cap, len;
	smc_status st;

	(void)state;
	smc_log_mask = 0;
	while (iterations < 20000) {
		unsigned steps = 0;
		bool pending;

		assert_true(exchanges < 200000);
		if (exchanges % 16 == 0)
			slot(below(2), (uint8_t)(1 + below(254)), below(3) ? 0 : (uint8_t)(1 + below(254)));
		len = 1 + below(600);
		make_apdu(len);
		if (ext.t1.needs_reset) {
			/* refused until the driver's reset */
			refused(len);
			assert_true(ext.t1.resynch_pending);
			smc_t1_init(&ext, ext.t1.ifsd_want);
			resets++;
		}
		cap = below(300);
		memset(reply, CANARY, sizeof(reply));
		ext.io.request = apdu;
		ext.io.request_len = len;
		ext.io.reply = reply;
		ext.io.reply_cap = cap;
		pending = ext.t1.resynch_pending;
		st = smc_t1_request(&ext);
		exchanges++;
		/* S(RESYNCH request) opens an APDU exactly when the last one left the
		 * two sides possibly out of step */
		assert_int_equal(st, SMC_OK);
		assert_int_equal(ext.t1.block[1] == S_REQ(RESYNCH), pending);
		resynchs += pending;
		while (st == SMC_OK) {
			size_t n;
			uint32_t what = below(40);

			assert_true(ext.t1.block_len >= 4 && ext.t1.block_len <= SMC_T1_BLOCK_MAX);
			assert_true(ext.t1.wtx >= 1);
			if (what == 0)
				st = smc_t1_reply(&ext, SMC_ERR_TIMEOUT, NULL, 0);
			else if (what == 1)
				st = smc_t1_reply(&ext, SMC_ERR_COMM, NULL, 0);
			else if (what == 2 && below(20) == 0)
				st = smc_t1_reply(&ext, SMC_ERR_NO_MEDIA, NULL, 0);
			else if (what == 3 && below(20) == 0) {
				smc_t1_abandon(&ext); /* the driver's budget ran out */
				assert_true(ext.t1.resynch_pending);
				abandoned++;
				st = SMC_ERR_TIMEOUT;
			} else {
				n = random_block(b, sizeof(b));
				st = smc_t1_reply(&ext, SMC_OK, b, n);
			}
			iterations++;
			steps++;
			assert_true(steps < 100000);
			if (st == SMC_MORE_PROCESSING)
				st = smc_t1_request(&ext);
			else
				break;
		}
		if (st == SMC_OK) {
			ok++;
			assert_true(ext.io.reply_len >= 2 && ext.io.reply_len <= cap);
			assert_false(ext.t1.resynch_pending);
		}
		if (ext.t1.needs_reset)
			assert_true(ext.t1.resynch_pending);
		for (size_t i = cap; i < cap + 64; i++)
			assert_int_equal(reply[i], CANARY);
		assert_int_equal(smc_t1_reply(&ext, SMC_OK, b, 5), SMC_ERR_INVALID_STATE);
	}
	print_message("random cards: %u blocks, %u exchanges, %u complete, "
		      "%u RESYNCH first, %u resets, %u abandoned\n",
		      iterations, exchanges, ok, resynchs, resets, abandoned);
	assert_true(exchanges > 100);
	assert_true(resynchs > 0 && resets > 0 && abandoned > 0);
	smc_log_mask = saved;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t1_crc_has_the_iso13239_check_value_without_final_xor),
		cmocka_unit_test(t1_case1_apdu_is_one_i_block_with_lrc),
		cmocka_unit_test(t1_case2_apdu_with_crc_and_data_back),
		cmocka_unit_test(t1_case3_and_case4_toggle_sequence_numbers),
		cmocka_unit_test(t1_case4_with_crc_exact_bytes),
		cmocka_unit_test(t1_command_chaining_with_ifsc_32),
		cmocka_unit_test(t1_extended_apdu_of_65544_bytes_chains_with_ifsc_254),
		cmocka_unit_test(t1_response_chaining_is_collected),
		cmocka_unit_test(t1_card_ifs_request_mid_chain_changes_ifsc),
		cmocka_unit_test(t1_ifsd_is_negotiated_before_the_first_apdu),
		cmocka_unit_test(t1_ifsd_given_up_after_card_mute_three_times),
		cmocka_unit_test(t1_ifs_response_must_echo_our_ifsd),
		cmocka_unit_test(t1_wtx_multiplier_holds_for_the_next_block_only),
		cmocka_unit_test(t1_wtx_with_multiplier_zero_is_an_invalid_block),
		cmocka_unit_test(t1_resends_block_after_bad_edc),
		cmocka_unit_test(t1_mute_card_gets_an_r_block),
		cmocka_unit_test(t1_lost_r_block_ack_is_asked_for_again),
		cmocka_unit_test(t1_card_r_block_asking_for_our_i_block_gets_it_again),
		cmocka_unit_test(t1_lost_card_i_block_is_asked_for_again),
		cmocka_unit_test(t1_four_failures_resynch_and_next_apdu_starts_at_zero),
		cmocka_unit_test(t1_resynch_after_bad_blocks_fails_with_comm_and_requeues_ifs),
		cmocka_unit_test(t1_card_asking_four_times_for_our_block_resynchs),
		cmocka_unit_test(t1_resynch_failing_three_times_returns_the_error),
		cmocka_unit_test(t1_card_abort_ends_the_exchange),
		cmocka_unit_test(t1_response_overflow_aborts_the_chain),
		cmocka_unit_test(t1_response_overflow_in_last_block_and_abort_failure),
		cmocka_unit_test(t1_response_without_status_words_is_an_error),
		cmocka_unit_test(t1_next_apdu_after_a_lost_answer_resynchs_and_gets_its_own_response),
		cmocka_unit_test(t1_recovery_resynch_unanswered_needs_a_reset),
		cmocka_unit_test(t1_abandoned_exchange_resynchs_with_defaults_before_the_next_apdu),
		cmocka_unit_test(t1_resynch_before_an_apdu_is_sent_again_after_invalid_answers),
		cmocka_unit_test(t1_resynch_before_an_apdu_unanswered_fails_and_needs_a_reset),
		cmocka_unit_test(t1_exchanges_that_end_in_step_need_no_resynch),
		cmocka_unit_test(t1_malformed_blocks_get_r_block_other_error),
		cmocka_unit_test(t1_foreign_nad_is_accepted),
		cmocka_unit_test(t1_endless_wtx_is_bounded),
		cmocka_unit_test(t1_endless_response_chaining_is_bounded),
		cmocka_unit_test(t1_reader_errors_end_the_exchange),
		cmocka_unit_test(t1_reader_negotiated_ifsd_is_the_readers_maximum),
		cmocka_unit_test(t1_invalid_requests_are_refused),
		cmocka_unit_test(t1_rest_len_follows_len_and_edc),
		cmocka_unit_test(t1_random_cards_never_hang_or_overrun),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
