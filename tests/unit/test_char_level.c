/* The driver against the virtual reader at CCID character level: the host runs
 * T=0 procedure bytes (ISO/IEC 7816-3:2006 10.3.3) and reads T=1 blocks in two
 * steps (section 11), each step one XfrBlock whose wLevelParameter is the count
 * of bytes to read back. The test applet runs with data checked byte by byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ccid/ccid_reader.h"
#include "fake_transport.h"
#include "rig.h"

static const char *const t0_kv[][2] = { { "level", "character" }, { "card-protocols", "t0" } };
static const char *const t1_kv[][2] = { { "level", "character" }, { "card-protocols", "t1" } };

static void t0_applet(struct rig *r)
{
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T0);
	rig_select(r);
	rig_send_counting_all(r);
	rig_check_data_all(r);
	rig_get_response_all(r);
	/* a command that takes time: NULL procedure bytes before SW1 SW2 */
	rig_apdu(r, (const uint8_t *)"\x80\x38\x00\x05", 4, 0, 0x9000);
	rig_apdu(r, (const uint8_t *)"\x80\x30\x00\x00", 4, 0, 0x9000);
}

/* Whole USB transfers, then one 64-byte packet per read. */
static void char_level_t0_runs_the_applet(void **state)
{
	(void)state;
	for (int split = 0; split <= 1; split++) {
		struct rig *r = rig_open(t0_kv, 2, split);

		t0_applet(r);
		rig_close(r);
	}
}

static void char_level_t0_status_words_end_the_exchange(void **state)
{
	static const uint8_t wrong_aid[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };
	struct rig *r = rig_open(t0_kv, 2, 0);

	(void)state;
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T0);
	/* Le shorter than the data: 6C xx at once, no data */
	rig_apdu(r, (const uint8_t *)"\x80\x34\x00\x10\x08", 5, 0, 0x6C10);
	/* an error status after the data */
	rig_apdu(r, wrong_aid, sizeof(wrong_aid), 0, 0x6A82);
	/* unknown INS and CLA: status right after the header */
	rig_apdu(r, (const uint8_t *)"\x80\x7E\x00\x00\x04", 5, 0, 0x6D00);
	rig_apdu(r, (const uint8_t *)"\x10\x34\x00\x04\x04", 5, 0, 0x6E00);
	/* nothing waiting for GET RESPONSE (the applet answers 69 85 to CLA 00 only) */
	rig_apdu(r, (const uint8_t *)"\x00\xC0\x00\x00\x04", 5, 0, 0x6985);
	/* and the card is still in step */
	rig_send_counting_all(r);
	rig_close(r);
}

static void char_level_t0_small_reply_buffer_keeps_the_card_in_step(void **state)
{
	static const uint8_t cmd[] = { 0x80, 0x34, 0x00, 0x20, 0x20 };
	struct rig *r = rig_open(t0_kv, 2, 0);
	size_t len = 0;

	(void)state;
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T0);
	memset(r->reply, 0xEE, 64);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_TRANSMIT, SMC_PROTOCOL_T0, cmd, sizeof(cmd),
					    r->reply, 16, &len),
			 SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(len, 0x22);
	assert_int_equal(r->reply[16], 0xEE);
	/* the whole answer was read from the card: the next command is in step */
	rig_apdu(r, cmd, sizeof(cmd), 0x20, 0x9000);
	rig_close(r);
}

static void char_level_t0_refuses_an_extended_apdu(void **state)
{
	struct rig *r = rig_open(t0_kv, 2, 0);

	(void)state;
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T0);
	assert_int_equal(rig_transmit(r, (const uint8_t *)"\x80\x00\x04\x11\x00\x10\x00", 7),
			 SMC_ERR_NOT_SUPPORTED);
	rig_send_counting_all(r);
	rig_close(r);
}

static void t1_applet(struct rig *r, int extended)
{
	static const size_t sizes[] = { 1, 253, 254, 255, 256, 257, 508, 509, 1024, 4096, 65535 };

	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T1);
	rig_select(r);
	rig_send_counting_all(r);
	rig_check_data_all(r);
	/* with T=1 the card answers 80 36 with its data at once */
	for (unsigned n = 1; n <= 256; n++) {
		uint8_t cmd[6] = { 0x80, 0x36, (uint8_t)(n >> 8), (uint8_t)n, 0x01, 0x00 };

		rig_apdu(r, cmd, 6, n, 0x9000);
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(r->reply[i], (uint8_t)i);
	}
	/* a command that takes time: the card asks S(WTX) */
	rig_apdu(r, (const uint8_t *)"\x80\x38\x00\x05", 4, 0, 0x9000);
	if (!extended)
		return;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		rig_fill(r, (uint8_t)(0xA0 + i), sizes[i]);
		rig_accept(r, sizes[i]);
	}
}

static void char_level_t1_runs_the_applet(void **state)
{
	(void)state;
	for (int split = 0; split <= 1; split++) {
		struct rig *r = rig_open(t1_kv, 2, split);

		t1_applet(r, 1);
		rig_close(r);
	}
}

/* CRC instead of LRC (2 EDC bytes after the prologue), small blocks both ways. */
static void char_level_t1_with_crc_and_small_blocks(void **state)
{
	static const char *const kv[][2] = { { "level", "character" }, { "card-protocols", "t1" },
					     { "card-edc", "crc" }, { "card-ifsc", "16" },
					     { "max-ifsd", "20" }, { "features", "0BA" } };
	struct rig *r = rig_open(kv, 6, 0);

	(void)state;
	t1_applet(r, 0);
	rig_fill(r, 0x5A, 3000);
	rig_accept(r, 3000);
	rig_close(r);
}

/* ---- one step at a time, against a scripted reader ------------------------ */

#define MSG_XFR_BLOCK 0x6F
#define MSG_DATA_BLOCK 0x80
#define FAILED_ACTIVE 0x40 /* bmCommandStatus failed, ICC present and active */

struct scripted {
	struct fake_dev *fd;
	struct ccid_reader *reader;
	struct smc_ext *ext;
	uint8_t rx[SMC_T1_BLOCK_MAX];  /* the card's T=1 block */
	size_t rx_len;
	uint8_t reply[32];             /* io.reply of T=0 exchanges */
};

/* QEMU's descriptor turned into a character-level reader with T=0 and T=1,
 * messages of at most max_msg bytes; the card's T=1 EDC is CRC or LRC. */
static int scripted_open(void **state, bool crc, uint32_t max_msg)
{
	struct scripted *s = calloc(1, sizeof(*s));
	uint8_t d[54];

	assert_non_null(s);
	memcpy(d, fake_qemu_descriptor, sizeof(d));
	d[6] = 0x03;                            /* dwProtocols T=0 | T=1 */
	d[40] = 0xFE, d[41] = 0x04, d[42] = 0x00, d[43] = 0x00; /* dwFeatures: level bits 0 */
	for (int i = 0; i < 4; i++)
		d[44 + i] = (uint8_t)(max_msg >> (8 * i)); /* dwMaxCCIDMessageLength */
	s->fd = fake_new(d, sizeof(d));
	assert_int_equal(ccid_reader_open(fake_transport(s->fd), &s->reader), SMC_OK);
	s->ext = ccid_reader_slot(s->reader, 0);
	assert_non_null(s->ext);
	s->ext->card_caps.t1.bwt_ms = 1000;
	s->ext->card_caps.t0.wt_ms = 1000;
	s->ext->t1.crc = crc;
	s->ext->io.reply = s->reply;
	s->ext->io.reply_cap = sizeof(s->reply);
	s->rx_len = 99;
	*state = s;
	return 0;
}

static int open_lrc(void **state)
{
	return scripted_open(state, false, 271);
}

static int open_crc(void **state)
{
	return scripted_open(state, true, 271);
}

/* Messages of 20 bytes: 10 data bytes each. */
static int open_small_messages(void **state)
{
	return scripted_open(state, false, 20);
}

static int scripted_close(void **state)
{
	struct scripted *s = *state;

	ccid_reader_close(s->reader);
	fake_free(s->fd);
	free(s);
	return 0;
}

/* XfrBlock number i as sent: bBWI, wLevelParameter, abData. */
static void expect_xfr(struct scripted *s, size_t i, uint8_t bwi, uint16_t level, const char *data,
		       size_t len)
{
	size_t n;
	const uint8_t *m = fake_sent(s->fd, i, &n);

	assert_non_null(m);
	assert_int_equal(m[0], MSG_XFR_BLOCK);
	assert_int_equal(n, 10 + len);
	assert_int_equal(m[1] | m[2] << 8, len);
	assert_int_equal(m[7], bwi);
	assert_int_equal(m[8] | m[9] << 8, level);
	if (len)
		assert_memory_equal(m + 10, data, len);
}

static void card_sends(struct scripted *s, const char *data, size_t len)
{
	fake_rx_answer(s->fd, MSG_DATA_BLOCK, 0x00, 0, 0, (const uint8_t *)data, len);
}

static void card_fails(struct scripted *s, uint8_t error)
{
	fake_rx_answer(s->fd, MSG_DATA_BLOCK, FAILED_ACTIVE, error, 0, NULL, 0);
}

#define I_BLOCK "\x00\x00\x02\x80\x30\xB2"

/* ccid_t1_block_char with the I-block 80 30 out, the card's block into s->rx. */
static smc_status block(struct scripted *s, uint8_t wtx)
{
	return ccid_t1_block_char(s->ext, (const uint8_t *)I_BLOCK, 6, wtx, s->rx, sizeof(s->rx),
				  &s->rx_len);
}

/* An APDU through ccid_exchange_char_t0, the answer into s->reply. */
static smc_status t0_apdu(struct scripted *s, const uint8_t *apdu, size_t len)
{
	s->ext->io.request = apdu;
	s->ext->io.request_len = len;
	s->ext->io.reply_len = 0;
	return ccid_exchange_char_t0(s->ext);
}

static void t1_block_char_reads_the_prologue_then_len_and_edc(void **state)
{
	struct scripted *s = *state;

	card_sends(s, "\x00\x00\x02", 3);
	card_sends(s, "\x90\x00\x92", 3);
	assert_int_equal(block(s, 1), SMC_OK);
	assert_int_equal(s->rx_len, 6);
	assert_memory_equal(s->rx, "\x00\x00\x02\x90\x00\x92", 6);
	assert_int_equal(fake_sent_count_type(s->fd, MSG_XFR_BLOCK), 2);
	expect_xfr(s, 0, 0, 3, I_BLOCK, 6);
	expect_xfr(s, 1, 0, 3, NULL, 0);
}

static void t1_block_char_with_crc_reads_two_edc_bytes(void **state)
{
	struct scripted *s = *state;

	card_sends(s, "\x00\x00\x02", 3);
	card_sends(s, "\x90\x00\x12\x34", 4);
	assert_int_equal(block(s, 0), SMC_OK);
	assert_int_equal(s->rx_len, 7);
	expect_xfr(s, 1, 0, 4, NULL, 0);
}

static void t1_block_char_passes_wtx_as_bbwi(void **state)
{
	struct scripted *s = *state;

	card_sends(s, "\x00\xE3\x01", 3);
	card_sends(s, "\x05\xE7", 2);
	assert_int_equal(block(s, 5), SMC_OK);
	assert_int_equal(s->rx_len, 5);
	expect_xfr(s, 0, 5, 3, I_BLOCK, 6);
	expect_xfr(s, 1, 5, 2, NULL, 0);
}

static void t1_block_char_mute_card_is_a_timeout(void **state)
{
	struct scripted *s = *state;

	/* mute before the prologue */
	card_fails(s, 0xFE);
	assert_int_equal(block(s, 1), SMC_ERR_TIMEOUT);
	assert_int_equal(s->rx_len, 0);
	/* mute after it: the rest never came */
	card_sends(s, "\x00\x00\x02", 3);
	card_fails(s, 0xFE);
	s->rx_len = 99;
	assert_int_equal(block(s, 1), SMC_ERR_TIMEOUT);
	assert_int_equal(s->rx_len, 0);
}

static void t1_block_char_parity_error_is_a_comm_error(void **state)
{
	struct scripted *s = *state;

	card_fails(s, 0xFD);
	assert_int_equal(block(s, 1), SMC_ERR_COMM);
	assert_int_equal(s->rx_len, 0);
}

static void t1_block_char_malformed_prologue_or_count_is_a_comm_error(void **state)
{
	struct scripted *s = *state;

	/* LEN FF is reserved: the rest is not asked for */
	card_sends(s, "\x00\x00\xFF", 3);
	assert_int_equal(block(s, 1), SMC_ERR_COMM);
	assert_int_equal(fake_sent_count_type(s->fd, MSG_XFR_BLOCK), 1);
	/* a reader that brings back fewer or more bytes than asked */
	card_sends(s, "\x00\x00", 2);
	assert_int_equal(block(s, 1), SMC_ERR_COMM);
	card_sends(s, "\x00\x00\x02\x90", 4);
	assert_int_equal(block(s, 1), SMC_ERR_COMM);
	card_sends(s, "\x00\x00\x02", 3);
	card_sends(s, "\x90\x00", 2);
	assert_int_equal(block(s, 1), SMC_ERR_COMM);
	assert_int_equal(s->rx_len, 0);
}

static void t0_char_mute_card_ends_the_exchange_with_a_timeout(void **state)
{
	static const uint8_t apdu[] = { 0x80, 0x34, 0x00, 0x04, 0x04 };
	struct scripted *s = *state;

	size_t n;

	s->ext->reader_caps.current_state = SMC_STATE_SPECIFIC;
	card_sends(s, "\x34", 1);
	card_fails(s, 0xFE);
	fake_rx_answer(s->fd, 0x81, 0x01, 0, 0, NULL, 0); /* SlotStatus: inactive */
	assert_int_equal(t0_apdu(s, apdu, sizeof(apdu)), SMC_ERR_TIMEOUT);
	assert_int_equal(s->ext->io.reply_len, 0);
	/* the header, then the request for 4 data bytes and a procedure byte */
	expect_xfr(s, 0, 0, 1, (const char *)apdu, 5);
	expect_xfr(s, 1, 0, 5, NULL, 0);
	/* broken off mid-command: the card is powered off, the next APDU cannot
	 * meet its leftovers; the application must reset it */
	assert_int_equal(fake_sent(s->fd, 2, &n)[0], 0x63);
	assert_int_equal(s->ext->reader_caps.current_state, SMC_STATE_PRESENT);
}

static void char_steps_longer_than_a_message_go_in_parts(void **state)
{
	static const uint8_t put[] = { 0x80, 0x32, 0x00, 0x00, 0x0C, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
	static const uint8_t get[] = { 0x80, 0x34, 0x00, 0x0C, 0x0C };
	static const char counting[] = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0A\x0B\x90\x00";
	struct scripted *s = *state;

	/* incoming: after the ACK, 10 data bytes reading nothing, then 2 and the procedure byte */
	card_sends(s, "\x32", 1);
	card_sends(s, "", 0);
	card_sends(s, "\x90", 1);
	card_sends(s, "\x00", 1);
	assert_int_equal(t0_apdu(s, put, sizeof(put)), SMC_OK);
	assert_int_equal(s->ext->io.reply_len, 2);
	expect_xfr(s, 1, 0, 0, (const char *)put + 5, 10);
	expect_xfr(s, 2, 0, 1, (const char *)put + 15, 2);
	/* outgoing: 12 data bytes and the procedure byte read as 10, then 3 */
	card_sends(s, "\x34", 1);
	card_sends(s, counting, 10);
	card_sends(s, counting + 10, 3);
	card_sends(s, "\x00", 1);
	assert_int_equal(t0_apdu(s, get, sizeof(get)), SMC_OK);
	assert_int_equal(s->ext->io.reply_len, 14);
	assert_memory_equal(s->reply, counting, 14);
	expect_xfr(s, 5, 0, 10, NULL, 0);
	expect_xfr(s, 6, 0, 3, NULL, 0);
	/* T=1: a block of LEN 12 read as the prologue, then 10 and 3 bytes */
	card_sends(s, "\x00\x00\x0C", 3);
	card_sends(s, counting, 10);
	card_sends(s, counting + 10, 3);
	assert_int_equal(block(s, 1), SMC_OK);
	assert_int_equal(s->rx_len, 16);
	assert_memory_equal(s->rx + 3, counting, 13);
	expect_xfr(s, 9, 0, 10, NULL, 0);
	expect_xfr(s, 10, 0, 3, NULL, 0);
}

#define SCRIPTED(test, open) cmocka_unit_test_setup_teardown(test, open, scripted_close)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(char_level_t0_runs_the_applet),
		cmocka_unit_test(char_level_t0_status_words_end_the_exchange),
		cmocka_unit_test(char_level_t0_small_reply_buffer_keeps_the_card_in_step),
		cmocka_unit_test(char_level_t0_refuses_an_extended_apdu),
		cmocka_unit_test(char_level_t1_runs_the_applet),
		cmocka_unit_test(char_level_t1_with_crc_and_small_blocks),
		SCRIPTED(t1_block_char_reads_the_prologue_then_len_and_edc, open_lrc),
		SCRIPTED(t1_block_char_with_crc_reads_two_edc_bytes, open_crc),
		SCRIPTED(t1_block_char_passes_wtx_as_bbwi, open_lrc),
		SCRIPTED(t1_block_char_mute_card_is_a_timeout, open_lrc),
		SCRIPTED(t1_block_char_parity_error_is_a_comm_error, open_lrc),
		SCRIPTED(t1_block_char_malformed_prologue_or_count_is_a_comm_error, open_lrc),
		SCRIPTED(t0_char_mute_card_ends_the_exchange_with_a_timeout, open_lrc),
		SCRIPTED(char_steps_longer_than_a_message_go_in_parts, open_small_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
