/* RDF_TRANSMIT at character level (CCID 1.1, 3.2.1 and 6.1.4): the reader only
 * moves bytes. An XfrBlock's abData goes out on the card's I/O line as is, and
 * its wLevelParameter says how many bytes the reader reads back from the card
 * (0: none). The host runs the protocol: smclib's T=0 procedure-byte engine
 * (ISO/IEC 7816-3:2006 10.3.3) step by step, and T=1 blocks (section 11) read
 * in two steps, the prologue and then the LEN + EDC bytes it announces. */
#include "ccid_reader.h"
#include "smc_log.h"

/* The most one T=0 step reads: 256 data bytes and a procedure byte. */
#define CHAR_T0_READ_MAX 257u

/* One message of a step: send len bytes (maybe none), read exactly want bytes
 * (maybe none) into in. A reader that brings back another count is out of
 * step with the card: SMC_ERR_COMM. Otherwise ccid_xfr_block's status (a mute
 * card: SMC_ERR_TIMEOUT; a parity error: SMC_ERR_COMM). */
static smc_status char_message(struct smc_ext *ext, uint8_t bwi, unsigned timeout_ms,
			       const uint8_t *data, size_t len, uint8_t *in, size_t want)
{
	struct ccid_answer a;
	smc_status st;

	st = ccid_xfr_block(ext, bwi, (uint16_t)want, data, len, timeout_ms, in, want, &a);
	if (st == SMC_ERR_BUFFER_TOO_SMALL || (st == SMC_OK && a.hdr.dwLength != want)) {
		log_critical("slot %u: character level: %u bytes came back where %zu were asked for",
			     ccid_slot_of(ext)->index, a.hdr.dwLength, want);
		return SMC_ERR_COMM;
	}
	return st;
}

/* One character-level step: send len bytes, then read want bytes. The bytes
 * are a stream on the I/O line, so a step too long for the reader's messages
 * (dwMaxCCIDMessageLength) goes in several: the sending ones read nothing but
 * the last, and the reading goes on with empty messages. */
static smc_status char_xfr(struct smc_ext *ext, uint8_t bwi, unsigned timeout_ms, const uint8_t *data,
			   size_t len, uint8_t *in, size_t want)
{
	size_t chunk = ccid_slot_of(ext)->reader->desc.max_msg_len - CCID_HEADER_LEN;
	size_t n = want < chunk ? want : chunk, got;
	smc_status st;

	for (; len > chunk; data += chunk, len -= chunk) {
		st = char_message(ext, bwi, timeout_ms, data, chunk, NULL, 0);
		if (st != SMC_OK)
			return st;
	}
	st = char_message(ext, bwi, timeout_ms, data, len, in, n);
	for (got = n; st == SMC_OK && got < want; got += n) {
		n = want - got < chunk ? want - got : chunk;
		st = char_message(ext, bwi, timeout_ms, NULL, 0, in + got, n);
	}
	return st;
}

/* ---- T=0 ------------------------------------------------------------------ */

/* The engine's steps, each one XfrBlock (more for a small dwMaxCCIDMessageLength),
 * until SW2 or an error. */
static smc_status run_t0_steps(struct smc_ext *ext, struct smc_t0_char *x)
{
	uint8_t in[CHAR_T0_READ_MAX];
	const uint8_t *send;
	size_t send_len, read_len;
	smc_status st;

	for (;;) {
		st = smc_t0_char_next(x, &send, &send_len, &read_len);
		if (st != SMC_OK)
			return st;
		if (read_len > sizeof(in)) {
			log_critical("T=0 character level: step reads %zu bytes, more than %u", read_len,
				     CHAR_T0_READ_MAX);
			return SMC_ERR_COMM;
		}
		st = char_xfr(ext, 0, ccid_xfr_timeout_ms(ext), send, send_len, in, read_len);
		if (st != SMC_OK)
			return st;
		st = smc_t0_char_feed(x, in, read_len);
		if (st != SMC_MORE_PROCESSING)
			return st;
	}
}

smc_status ccid_exchange_char_t0(struct smc_ext *ext)
{
	struct smc_io *io = &ext->io;
	struct smc_t0_char x;
	smc_status st;

	st = smc_t0_char_start(&x, io->request, io->request_len, io->reply, io->reply_cap);
	if (st != SMC_OK)
		return st;
	st = run_t0_steps(ext, &x);
	if (st == SMC_ERR_BUFFER_TOO_SMALL)
		io->reply_len = x.reply_len; /* the size that was needed (the card ran to SW2) */
	else if (st != SMC_OK && st != SMC_ERR_NO_DEVICE && st != SMC_ERR_NO_MEDIA)
		ccid_card_out_of_step(ext, "T=0 at character level broke off");
	if (st != SMC_OK)
		return st;
	st = smc_t0_reply(io->request, io->request_len, io->reply, x.reply_len);
	if (st != SMC_OK)
		return st;
	io->reply_len = x.reply_len;
	return SMC_OK;
}

/* ---- T=1 ------------------------------------------------------------------ */

smc_status ccid_t1_block_char(struct smc_ext *ext, const uint8_t *tx, size_t tx_len, uint8_t wtx,
			      uint8_t *rx, size_t rx_cap, size_t *rx_len)
{
	/* 6.1.4 bBWI: the reader extends its block waiting time by this factor */
	uint8_t bwi = wtx > 1 ? wtx : 0;
	unsigned timeout_ms = ccid_t1_block_timeout_ms(ext, wtx);
	size_t rest;
	smc_status st;

	*rx_len = 0;
	if (rx_cap < SMC_T1_PROLOGUE_LEN) {
		log_critical("T=1 character level: a %zu-byte buffer cannot hold a block", rx_cap);
		return SMC_ERR_INVALID_PARAM;
	}
	/* the block out, and the card's prologue NAD PCB LEN back */
	st = char_xfr(ext, bwi, timeout_ms, tx, tx_len, rx, SMC_T1_PROLOGUE_LEN);
	if (st != SMC_OK)
		return st;
	rest = smc_t1_rest_len(ext, rx);
	if (rest == 0) {
		log_critical("T=1 character level: malformed prologue %02X %02X %02X", rx[0], rx[1],
			     rx[2]);
		return SMC_ERR_COMM;
	}
	if (rest > rx_cap - SMC_T1_PROLOGUE_LEN) {
		log_critical("T=1 character level: block of %zu bytes does not fit %zu",
			     SMC_T1_PROLOGUE_LEN + rest, rx_cap);
		return SMC_ERR_COMM;
	}
	/* then the INF and EDC bytes the prologue announced */
	st = char_xfr(ext, bwi, timeout_ms, NULL, 0, rx + SMC_T1_PROLOGUE_LEN, rest);
	if (st != SMC_OK)
		return st;
	*rx_len = SMC_T1_PROLOGUE_LEN + rest;
	return SMC_OK;
}
