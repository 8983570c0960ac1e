/* RDF_TRANSMIT at each exchange level (CCID 1.1, 3.2 and 6.1.4): how an APDU in
 * ext->io.request becomes XfrBlock messages and how the answer reaches io.reply.
 *   TPDU:          smclib turns the APDU into a T=0 TPDU; the reader runs the
 *                  procedure bytes; the answer is data + SW1 SW2.
 *   short APDU:    the APDU as is, in one message.
 *   extended APDU: the APDU in as many messages as dwMaxCCIDMessageLength needs
 *                  (wLevelParameter), the answer likewise (bChainParameter).
 * A short APDU costs one bulk OUT and one bulk IN; the answer is copied once,
 * from the receive buffer into io.reply. */
#include "ccid_reader.h"
#include "smc_log.h"

unsigned ccid_card_wait_timeout_ms(uint64_t card_wait_ms)
{
	uint64_t wait = card_wait_ms + CCID_XFR_MARGIN_MS;

	if (wait < CCID_XFR_MIN_TIMEOUT_MS)
		return CCID_XFR_MIN_TIMEOUT_MS;
	if (wait > CCID_XFR_MAX_TIMEOUT_MS)
		return CCID_XFR_MAX_TIMEOUT_MS;
	return (unsigned)wait;
}

unsigned ccid_xfr_timeout_ms(const struct smc_ext *ext)
{
	const struct smc_card_caps *c = &ext->card_caps;

	return ccid_card_wait_timeout_ms(c->selected_protocol == SMC_PROTOCOL_T1 ? c->t1.bwt_ms
										 : c->t0.wt_ms);
}

/* Largest abData of one message. */
static size_t max_data(const struct smc_ext *ext)
{
	return ccid_slot_of((struct smc_ext *)ext)->reader->desc.max_msg_len - CCID_HEADER_LEN;
}

uint64_t ccid_apdu_time_left(struct smc_ext *ext)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	uint64_t now;

	if (s->apdu_deadline == 0)
		return UINT64_MAX;
	now = ccid_xfer_now_ms(&s->reader->xfer);
	return now >= s->apdu_deadline ? 0 : s->apdu_deadline - now;
}

smc_status ccid_xfr_block(struct smc_ext *ext, uint8_t bwi, uint16_t level, const uint8_t *data,
			  size_t len, unsigned timeout_ms, uint8_t *out, size_t out_cap,
			  struct ccid_answer *a)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	uint64_t left = ccid_apdu_time_left(ext);
	struct ccid_cmd cmd;
	smc_status st;

	if (left == 0) {
		log_critical("slot %u: the APDU has used its %u ms: given up", s->index,
			     CCID_APDU_BUDGET_MS);
		return SMC_ERR_TIMEOUT;
	}
	if (timeout_ms > left)
		timeout_ms = (unsigned)left;
	ccid_cmd_xfr_block(&cmd, s->index, bwi, level, data, len);
	st = ccid_xfer_transact_until(&s->reader->xfer, &cmd, timeout_ms, s->apdu_deadline, out,
				      out_cap, a);
	if (st != SMC_OK || a->cmd != CCID_CMD_FAILED)
		return st;
	st = ccid_answer_failure(a, "XfrBlock");
	if (a->icc == CCID_ICC_ABSENT)
		ccid_track_icc(ext, CCID_ICC_ABSENT);
	return st;
}

/* An XfrBlock of the APDU levels and T=0 TPDU: no BWI, the card's waiting time. */
static smc_status xfr(struct smc_ext *ext, uint16_t level, const uint8_t *data, size_t len,
		      uint8_t *out, size_t out_cap, struct ccid_answer *a)
{
	return ccid_xfr_block(ext, 0, level, data, len, ccid_xfr_timeout_ms(ext), out, out_cap, a);
}

static smc_status check_fits(const struct smc_ext *ext, size_t len, const char *what)
{
	if (len <= max_data(ext))
		return SMC_OK;
	log_critical("%s of %zu bytes does not fit the reader's messages (%zu data bytes at most): not supported",
		     what, len, max_data(ext));
	return SMC_ERR_NOT_SUPPORTED;
}

/* A response APDU ends with SW1 SW2. */
static smc_status check_sw(size_t len)
{
	if (len >= 2)
		return SMC_OK;
	log_critical("response of %zu bytes lacks SW1 SW2", len);
	return SMC_ERR_COMM;
}

/* ---- TPDU level (T=0) ----------------------------------------------------- */

smc_status ccid_exchange_tpdu(struct smc_ext *ext)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	struct smc_io *io = &ext->io;
	struct ccid_answer a;
	size_t tpdu_len;
	smc_status st;

	st = smc_t0_request(io->request, io->request_len, s->tpdu, sizeof(s->tpdu), &tpdu_len);
	if (st != SMC_OK)
		return st;
	st = check_fits(ext, tpdu_len, "TPDU");
	if (st != SMC_OK)
		return st;
	st = xfr(ext, 0, s->tpdu, tpdu_len, io->reply, io->reply_cap, &a);
	if (st != SMC_OK)
		return st;
	st = smc_t0_reply(io->request, io->request_len, io->reply, a.hdr.dwLength);
	if (st != SMC_OK)
		return st;
	io->reply_len = a.hdr.dwLength;
	return SMC_OK;
}

/* ---- short APDU level ----------------------------------------------------- */

/* ISO 7816-4 5.1: after the 4-byte header, a 0 byte followed by more bytes
 * starts an extended length field. */
static int is_extended_apdu(const uint8_t *apdu, size_t len)
{
	return len > CCID_SHORT_APDU_MAX || (len > 5 && apdu[4] == 0);
}

smc_status ccid_exchange_short_apdu(struct smc_ext *ext)
{
	struct smc_io *io = &ext->io;
	struct ccid_answer a;
	smc_status st;

	if (is_extended_apdu(io->request, io->request_len)) {
		log_critical("extended APDU (%zu bytes) sent to a short APDU level reader: not supported",
			     io->request_len);
		return SMC_ERR_NOT_SUPPORTED;
	}
	st = check_fits(ext, io->request_len, "APDU");
	if (st != SMC_OK)
		return st;
	st = xfr(ext, 0, io->request, io->request_len, io->reply, io->reply_cap, &a);
	if (st != SMC_OK)
		return st;
	st = check_sw(a.hdr.dwLength);
	if (st != SMC_OK)
		return st;
	io->reply_len = a.hdr.dwLength;
	return SMC_OK;
}

/* ---- extended APDU level -------------------------------------------------- */

/* 6.1.4: the command APDU in parts of at most max_data() bytes, wLevelParameter
 * 0x01 (begins), 0x03 (continues), 0x02 (ends); the reader acknowledges each
 * part but the last with an empty DataBlock, bChainParameter 0x10. The answer to
 * the last (or only) part is the first part of the response, in io.reply. */
static smc_status send_command_apdu(struct smc_ext *ext, struct ccid_answer *a)
{
	struct smc_io *io = &ext->io;
	const uint8_t *p = io->request;
	size_t left = io->request_len, chunk = max_data(ext);
	uint16_t level = CCID_CHAIN_BEGIN;
	smc_status st;

	if (left <= chunk)
		return xfr(ext, CCID_CHAIN_WHOLE, p, left, io->reply, io->reply_cap, a);
	while (left > chunk) {
		st = xfr(ext, level, p, chunk, NULL, 0, a);
		if (st == SMC_ERR_BUFFER_TOO_SMALL || (st == SMC_OK && a->bSpecific != CCID_CHAIN_NEXT)) {
			log_critical("reader answered a command part with %u bytes, bChainParameter 0x%02X (0x10 expected)",
				     a->hdr.dwLength, a->bSpecific);
			return SMC_ERR_COMM;
		}
		if (st != SMC_OK)
			return st;
		p += chunk;
		left -= chunk;
		level = CCID_CHAIN_CONTINUE;
	}
	return xfr(ext, CCID_CHAIN_END, p, left, io->reply, io->reply_cap, a);
}

/* 6.2.1 bChainParameter: a response begins with 0x00 (whole) or 0x01, goes on
 * with 0x03 and ends with 0x02. */
static smc_status check_chain(const struct ccid_answer *a, int first)
{
	uint8_t chain = a->bSpecific;
	int ok = first ? (chain == CCID_CHAIN_WHOLE || chain == CCID_CHAIN_BEGIN)
		       : (chain == CCID_CHAIN_CONTINUE || chain == CCID_CHAIN_END);

	if (!ok) {
		log_critical("response part with bChainParameter 0x%02X where %s was expected", chain,
			     first ? "0x00 or 0x01" : "0x03 or 0x02");
		return SMC_ERR_COMM;
	}
	if ((chain == CCID_CHAIN_BEGIN || chain == CCID_CHAIN_CONTINUE) && a->hdr.dwLength == 0) {
		log_critical("empty response part announces more parts");
		return SMC_ERR_COMM;
	}
	return SMC_OK;
}

/* Collect the response parts after the first (already in io.reply, status st):
 * each next part is asked for with an empty XfrBlock, wLevelParameter 0x10. When
 * the response outgrows io.reply, the remaining parts are still read (and
 * dropped) so that the reader ends the chain in step. */
static smc_status receive_response(struct smc_ext *ext, smc_status st, struct ccid_answer *a)
{
	struct smc_io *io = &ext->io;
	size_t total = 0;
	int first = 1, fits = 1;

	for (;;) {
		if (st == SMC_ERR_BUFFER_TOO_SMALL)
			fits = 0;
		else if (st != SMC_OK)
			return st;
		st = check_chain(a, first);
		if (st != SMC_OK)
			return st;
		total += a->hdr.dwLength;
		if (total > CCID_EXTENDED_RESPONSE_MAX) {
			log_critical("response exceeds %u bytes: the reader is confused",
				     CCID_EXTENDED_RESPONSE_MAX);
			return SMC_ERR_COMM;
		}
		if (a->bSpecific == CCID_CHAIN_WHOLE || a->bSpecific == CCID_CHAIN_END)
			break;
		first = 0;
		st = xfr(ext, CCID_CHAIN_NEXT, NULL, 0, fits ? io->reply + total : NULL,
			 fits ? io->reply_cap - total : 0, a);
	}
	if (!fits) {
		log_critical("response of %zu bytes does not fit the %zu-byte buffer", total,
			     io->reply_cap);
		return SMC_ERR_BUFFER_TOO_SMALL;
	}
	st = check_sw(total);
	if (st == SMC_OK)
		io->reply_len = total;
	return st;
}

smc_status ccid_exchange_extended_apdu(struct smc_ext *ext)
{
	struct ccid_answer a;
	smc_status st;

	if (ext->io.request_len > CCID_EXTENDED_APDU_MAX) {
		log_critical("APDU of %zu bytes is longer than an extended APDU (%u)",
			     ext->io.request_len, CCID_EXTENDED_APDU_MAX);
		return SMC_ERR_INVALID_PARAM;
	}
	st = send_command_apdu(ext, &a);
	if (st != SMC_OK && st != SMC_ERR_BUFFER_TOO_SMALL)
		return st;
	return receive_response(ext, st, &a);
}
