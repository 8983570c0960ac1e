/* One command, one answer, on the bulk pipe of a CCID reader (CCID 1.1, 5.2 and
 * 6). Framing lives here and nowhere else: the transport moves raw transfers, the
 * callbacks see only validated answers. Overlapping transactions of several
 * slots are dispatched in ccid_xfer_dispatch.c on top of the pieces here. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ccid_xfer_priv.h"
#include "smc_log.h"

/* 5.3.1: class request ABORT */
#define CCID_REQTYPE_CLASS_OUT_IFACE 0x21u
#define CCID_REQ_ABORT 0x01u

static uint64_t monotonic_ms(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_ms(struct ccid_xfer *x)
{
	return x->clock(x->clock_ctx);
}

uint64_t ccid_xfer_now_ms(struct ccid_xfer *x)
{
	return now_ms(x);
}

/* A transfer timeout for the time left: never 0, which libusb reads as "forever". */
static unsigned read_timeout(uint64_t left_ms)
{
	if (left_ms == 0)
		return 1;
	return left_ms > UINT_MAX ? UINT_MAX : (unsigned)left_ms;
}

static size_t round_up(size_t n, size_t unit)
{
	return (n + unit - 1) / unit * unit;
}

/* The dispatch condition variable waits on the monotonic clock, so that a
 * change of the wall clock cannot stretch or cut a command's deadline. */
static int init_sync(struct ccid_xfer *x)
{
	if (smc_cond_init_monotonic(&x->disp_cond) != 0)
		return -1;
	if (pthread_mutex_init(&x->lock, NULL) != 0)
		goto no_lock;
	if (pthread_mutex_init(&x->disp_lock, NULL) != 0)
		goto no_disp;
	if (pthread_mutex_init(&x->send_lock, NULL) != 0)
		goto no_send;
	return 0;
no_send:
	pthread_mutex_destroy(&x->disp_lock);
no_disp:
	pthread_mutex_destroy(&x->lock);
no_lock:
	pthread_cond_destroy(&x->disp_cond);
	return -1;
}

smc_status ccid_xfer_init(struct ccid_xfer *x, struct ccid_transport *tp, uint32_t max_msg_len)
{
	size_t rx_cap = round_up(max_msg_len > CCID_XFER_MIN_BUF ? max_msg_len : CCID_XFER_MIN_BUF,
				 CCID_XFER_BUF_ROUND);

	memset(x, 0, sizeof(*x));
	if (tp == NULL || max_msg_len < CCID_HEADER_LEN) {
		log_critical("no transport, or a message length of %u", max_msg_len);
		return SMC_ERR_INVALID_PARAM;
	}
	x->tp = tp;
	x->max_msg = max_msg_len;
	x->clock = monotonic_ms;
	atomic_init(&x->gone, 0);
	x->tx = malloc(max_msg_len);
	x->rx = malloc(rx_cap);
	if (x->tx == NULL || x->rx == NULL) {
		log_critical("out of memory for the %u + %zu byte message buffers", max_msg_len, rx_cap);
		free(x->tx);
		free(x->rx);
		x->tx = x->rx = NULL;
		return SMC_ERR_NO_MEMORY;
	}
	if (init_sync(x) != 0) {
		log_critical("cannot set up the bulk pipe's locks");
		free(x->tx);
		free(x->rx);
		x->tx = x->rx = NULL;
		return SMC_ERR_NO_MEMORY;
	}
	x->rx_cap = rx_cap;
	return SMC_OK;
}

void ccid_xfer_set_busy_slots(struct ccid_xfer *x, unsigned n)
{
	x->busy_max = n;
	if (n > 1)
		log_info("up to %u slots may have a command in flight at once", n);
}

unsigned ccid_xfer_busy_slots(const struct ccid_xfer *x)
{
	return x->busy_max > 1 ? x->busy_max : 1;
}

void ccid_xfer_destroy(struct ccid_xfer *x)
{
	if (x == NULL || x->rx == NULL)
		return;
	pthread_mutex_destroy(&x->lock);
	pthread_mutex_destroy(&x->send_lock);
	pthread_mutex_destroy(&x->disp_lock);
	pthread_cond_destroy(&x->disp_cond);
	free(x->tx);
	free(x->rx);
	x->tx = x->rx = NULL;
}

int ccid_xfer_is_gone(const struct ccid_xfer *x)
{
	return atomic_load(&x->gone);
}

/* Never called with disp_lock held (no transfer is made under it): the waiters
 * of the other slots hear it at once, not at their deadlines. */
static void mark_gone(struct ccid_xfer *x, const char *what)
{
	if (atomic_exchange(&x->gone, 1) != 0)
		return;
	log_critical("reader is gone (%s answered: no device)", what);
	pthread_mutex_lock(&x->disp_lock);
	pthread_cond_broadcast(&x->disp_cond);
	pthread_mutex_unlock(&x->disp_lock);
}

/* A transport status other than TP_OK, as the smc_status of this layer. */
static smc_status transport_error(struct ccid_xfer *x, tp_status st, const char *what)
{
	switch (st) {
	case TP_NO_DEVICE:
		mark_gone(x, what);
		return SMC_ERR_NO_DEVICE;
	case TP_TIMEOUT:
		return SMC_ERR_TIMEOUT;
	case TP_CANCELLED:
		log_info("%s cancelled", what);
		return SMC_ERR_CANCELLED;
	default:
		log_critical("%s failed: %s", what, tp_status_str(st));
		return SMC_ERR_COMM;
	}
}

/* Read away what is left of a message that cannot be used (or, with remaining
 * SIZE_MAX, whatever the reader still has queued), so that the next command
 * starts on a message boundary. Bounded in reads and in time per read. */
static void discard(struct ccid_xfer *x, size_t remaining)
{
	for (unsigned i = 0; i < CCID_XFER_DRAIN_MAX_READS && remaining > 0; i++) {
		size_t got = 0;
		tp_status st = x->tp->ops->receive(x->tp, x->rx, x->rx_cap, &got,
						   CCID_XFER_DRAIN_READ_MS);

		if (st == TP_NO_DEVICE)
			mark_gone(x, "bulk IN");
		if (st != TP_OK)
			return;
		log_comm("discarded %zu bytes", got);
		remaining = got > remaining ? 0 : remaining - got;
	}
}

/* Once the header is in: the total size of the message, or an error when the
 * header is not a bulk answer or announces more than the buffer holds. */
static smc_status frame_total(struct ccid_xfer *x, size_t have, size_t *total)
{
	struct ccid_header h;

	if (ccid_decode_header(x->rx, have, &h) != CCID_DECODE_OK ||
	    !ccid_is_answer_type(h.bMessageType)) {
		log_critical("bulk IN message type 0x%02X is no RDR_to_PC answer; flushing",
			     x->rx[0]);
		log_hex("unexpected bulk IN", x->rx, have);
		discard(x, SIZE_MAX);
		return SMC_ERR_COMM;
	}
	if (h.dwLength > x->rx_cap - CCID_HEADER_LEN) {
		log_critical("%s announces dwLength %u, more than the %zu-byte buffer; draining it",
			     ccid_msg_type_str(h.bMessageType), h.dwLength,
			     x->rx_cap - CCID_HEADER_LEN);
		log_hex("oversized header", x->rx, CCID_HEADER_LEN);
		discard(x, CCID_HEADER_LEN + (size_t)h.dwLength - have);
		return SMC_ERR_COMM;
	}
	*total = CCID_HEADER_LEN + (size_t)h.dwLength;
	return SMC_OK;
}

/* One bulk IN transfer into the buffer after the have bytes already there. */
static smc_status read_chunk(struct ccid_xfer *x, size_t have, uint64_t deadline, size_t *got)
{
	uint64_t now = now_ms(x);
	tp_status st;

	*got = 0;
	if (now >= deadline)
		return SMC_ERR_TIMEOUT;
	st = x->tp->ops->receive(x->tp, x->rx + have, x->rx_cap - have, got,
				 read_timeout(deadline - now));
	if (st == TP_STALL && have == 0) {
		/* A halted bulk IN between messages: the transport has cleared the
		 * halt, and the answer may follow; read on like after a zero-length
		 * read (and as boundedly). */
		log_info("bulk IN stalled before an answer (halt cleared); reading on");
		return SMC_OK;
	}
	if (st != TP_OK) {
		smc_status err = transport_error(x, st, "bulk IN");

		/* An I/O error or a stall can leave the rest of a message in the
		 * reader; read it away now, or the next command would take it for the
		 * start of its answer and fail too. */
		if (err == SMC_ERR_COMM)
			discard(x, SIZE_MAX);
		return err;
	}
	if (*got > x->rx_cap - have) {
		log_critical("transport reports %zu bytes read into %zu", *got, x->rx_cap - have);
		return SMC_ERR_COMM;
	}
	return SMC_OK;
}

/* One whole message into x->rx, reassembled from as many transfers as it takes;
 * zero-length transfers (QEMU sends one after an answer that fills whole
 * packets) are skipped. */
smc_status ccid_xfer_read_frame(struct ccid_xfer *x, uint64_t deadline, size_t *frame_len,
				enum smc_log_level dump)
{
	size_t have = 0, total = 0, got;
	unsigned empty = 0;
	smc_status st;

	for (;;) {
		st = read_chunk(x, have, deadline, &got);
		if (st != SMC_OK)
			return st;
		if (got == 0) {
			log_comm("zero-length read (or cleared stall) skipped");
			if (++empty > CCID_XFER_MAX_EMPTY_READS) {
				log_critical("%u zero-length reads in a row: treating as no answer", empty);
				return SMC_ERR_TIMEOUT;
			}
			continue;
		}
		have += got;
		if (have < CCID_HEADER_LEN)
			continue;
		if (total == 0) {
			st = frame_total(x, have, &total);
			if (st != SMC_OK)
				return st;
		}
		if (have < total) {
			log_comm("%zu of %zu bytes so far, reading on", have, total);
			continue;
		}
		log_hex_at(dump, ccid_msg_type_str(x->rx[0]), x->rx, total);
		if (have > total)
			log_info("%zu bytes after the %zu-byte %s ignored", have - total, total,
				 ccid_msg_type_str(x->rx[0]));
		*frame_len = total;
		return SMC_OK;
	}
}

static int answers_sent(const struct ccid_answer *a, const struct ccid_header *sent)
{
	return a->hdr.bSeq == sent->bSeq && a->hdr.bSlot == sent->bSlot;
}

/* 6.2.6: bmCommandStatus 2 asks for more time; bError multiplies the wait
 * (0 is taken as 1). The new deadline never passes the hard bound. */
uint64_t ccid_xfer_extend(struct ccid_xfer *x, unsigned timeout_ms, uint8_t multiplier,
			  uint64_t hard)
{
	uint64_t wait = (uint64_t)timeout_ms * (multiplier ? multiplier : 1u);
	uint64_t now = now_ms(x);
	uint64_t deadline = now + wait < hard ? now + wait : hard;

	log_comm("time extension x%u: waiting up to %llu ms more", multiplier,
		 (unsigned long long)(deadline - now));
	return deadline;
}

void ccid_xfer_bounds(struct ccid_xfer *x, unsigned timeout_ms, uint64_t until,
		      uint64_t *deadline, uint64_t *hard)
{
	uint64_t start = now_ms(x);

	*hard = start + (timeout_ms > CCID_XFER_HARD_BOUND_MS ? timeout_ms : CCID_XFER_HARD_BOUND_MS);
	/* the caller's own bound (an APDU's budget) holds against time extensions too */
	if (until != 0 && until < *hard)
		*hard = until;
	*deadline = start + timeout_ms;
	if (*deadline > *hard)
		*deadline = *hard;
}

/* Read until the answer to sent arrives: stale answers are dropped, a time
 * extension moves the deadline (never past the hard bound). */
static smc_status await_answer(struct ccid_xfer *x, const struct ccid_header *sent,
			       unsigned timeout_ms, uint64_t until, struct ccid_answer *a)
{
	uint64_t deadline, hard;
	unsigned dropped = 0;
	enum ccid_decode_result r;
	size_t len;
	smc_status st;

	ccid_xfer_bounds(x, timeout_ms, until, &deadline, &hard);
	for (;;) {
		st = ccid_xfer_read_frame(x, deadline, &len, x->dump_level);
		if (st != SMC_OK)
			return st;
		/* read_frame checked the header, so a->hdr is filled even when the
		 * rest of the message is malformed: a stale one is dropped like any
		 * other stale answer, whatever its content. */
		r = ccid_decode_answer(x->rx, len, a);
		if (r != CCID_DECODE_OK && answers_sent(a, sent)) {
			log_critical("malformed answer to %s: %s", ccid_msg_type_str(sent->bMessageType),
				     ccid_decode_result_str(r));
			return SMC_ERR_COMM;
		}
		if (!answers_sent(a, sent)) {
			log_info("dropped %s for slot %u bSeq %u while waiting for slot %u bSeq %u (stale answer%s)",
				 ccid_msg_type_str(a->hdr.bMessageType), a->hdr.bSlot, a->hdr.bSeq,
				 sent->bSlot, sent->bSeq, r != CCID_DECODE_OK ? ", malformed" : "");
			if (++dropped > CCID_XFER_MAX_STALE) {
				log_critical("%u answers to other commands in a row: giving up", dropped);
				return SMC_ERR_COMM;
			}
			continue;
		}
		if (a->cmd != CCID_CMD_TIME_EXTENSION)
			return SMC_OK;
		deadline = ccid_xfer_extend(x, timeout_ms, a->bError, hard);
	}
}

/* 5.3.1: the ABORT class request, wValue bSeq << 8 | bSlot. Many readers stall
 * it (QEMU does): that is tolerated. Returns 0 when the device is gone. */
int ccid_xfer_abort_request(struct ccid_xfer *x, uint8_t slot, uint8_t seq)
{
	size_t got = 0;
	tp_status st = x->tp->ops->control(x->tp, CCID_REQTYPE_CLASS_OUT_IFACE, CCID_REQ_ABORT,
					   (uint16_t)(seq << 8 | slot), NULL, 0, &got,
					   CCID_XFER_ABORT_CTRL_TIMEOUT_MS);

	if (st == TP_NO_DEVICE) {
		mark_gone(x, "ABORT class request");
		return 0;
	}
	if (st != TP_OK)
		log_info("ABORT class request: %s (tolerated; some readers stall it)",
			 tp_status_str(st));
	return 1;
}

/* Read briefly for the SlotStatus that answers PC_to_RDR_Abort; whatever else
 * comes first (the late answer of the aborted command) is dropped. */
static void await_abort_status(struct ccid_xfer *x, const struct ccid_header *sent)
{
	uint64_t deadline = now_ms(x) + CCID_XFER_ABORT_ANSWER_MS;
	struct ccid_answer a;
	size_t len;

	for (unsigned i = 0; i <= CCID_XFER_MAX_STALE; i++) {
		if (ccid_xfer_read_frame(x, deadline, &len, x->dump_level) != SMC_OK)
			break;
		if (ccid_decode_answer(x->rx, len, &a) == CCID_DECODE_OK && answers_sent(&a, sent) &&
		    a.hdr.bMessageType == CCID_RDR_TO_PC_SLOT_STATUS) {
			log_info("abort of slot %u bSeq %u answered", sent->bSlot, sent->bSeq);
			return;
		}
		log_comm("dropped an answer while waiting for the abort's SlotStatus");
	}
	log_info("no SlotStatus for PC_to_RDR_Abort (slot %u bSeq %u)", sent->bSlot, sent->bSeq);
}

/* 6.1.13: PC_to_RDR_Abort carries the bSlot and bSeq of the aborted command. */
smc_status ccid_xfer_send_abort(struct ccid_xfer *x, uint8_t slot, uint8_t seq)
{
	struct ccid_cmd abort_cmd;
	size_t len;
	tp_status st;

	ccid_cmd_abort(&abort_cmd, slot);
	abort_cmd.hdr.bSeq = seq;
	len = ccid_encode(&abort_cmd, x->tx, x->max_msg);
	log_hex(ccid_msg_type_str(CCID_PC_TO_RDR_ABORT), x->tx, len);
	st = x->tp->ops->send(x->tp, x->tx, len, CCID_XFER_SEND_TIMEOUT_MS);
	if (st != TP_OK)
		return transport_error(x, st, "bulk OUT (PC_to_RDR_Abort)");
	return SMC_OK;
}

/* After a timeout (5.3.1, 6.1.13): the ABORT class request, then
 * PC_to_RDR_Abort with the same bSlot and bSeq, so that whatever the reader does
 * next is in step with us. */
static void abort_command(struct ccid_xfer *x, uint8_t slot, uint8_t seq)
{
	struct ccid_header sent = { .bMessageType = CCID_PC_TO_RDR_ABORT, .bSlot = slot, .bSeq = seq };

	log_info("aborting slot %u bSeq %u", slot, seq);
	if (!ccid_xfer_abort_request(x, slot, seq))
		return;
	if (ccid_xfer_send_abort(x, slot, seq) != SMC_OK)
		return;
	await_abort_status(x, &sent);
}

/* 6.1 Table 6.1-1 gives the answer type. QEMU's reader answers the commands it
 * does not implement (Escape, Secure, SetDataRateAndClockFrequency) with a
 * SlotStatus: take that as "not supported" rather than as a broken reader. */
static smc_status check_answer_type(uint8_t cmd_type, const struct ccid_answer *a)
{
	uint8_t want = ccid_answer_type_for(cmd_type);

	if (a->hdr.bMessageType == want)
		return SMC_OK;
	if (a->hdr.bMessageType == CCID_RDR_TO_PC_SLOT_STATUS &&
	    (cmd_type == CCID_PC_TO_RDR_ESCAPE || cmd_type == CCID_PC_TO_RDR_SECURE ||
	     cmd_type == CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK)) {
		log_info("reader answered %s with a SlotStatus (bStatus 0x%02X, bError 0x%02X: %s): not supported",
			 ccid_msg_type_str(cmd_type), a->bStatus, a->bError, ccid_error_str(a->bError));
		return SMC_ERR_NOT_SUPPORTED;
	}
	log_critical("%s answered with %s instead of %s", ccid_msg_type_str(cmd_type),
		     ccid_msg_type_str(a->hdr.bMessageType), ccid_msg_type_str(want));
	return SMC_ERR_COMM;
}

static smc_status copy_out(struct ccid_answer *a, uint8_t *out, size_t out_cap)
{
	if (a->hdr.dwLength > out_cap) {
		log_critical("%s carries %u bytes, the buffer holds %zu",
			     ccid_msg_type_str(a->hdr.bMessageType), a->hdr.dwLength, out_cap);
		a->data = NULL;
		return SMC_ERR_BUFFER_TOO_SMALL;
	}
	if (a->hdr.dwLength > 0)
		memcpy(out, a->data, a->hdr.dwLength);
	a->data = out;
	return SMC_OK;
}

smc_status ccid_xfer_finish(uint8_t cmd_type, struct ccid_answer *a, uint8_t *out,
			    size_t out_cap)
{
	smc_status st = check_answer_type(cmd_type, a);

	if (st != SMC_OK)
		return st;
	return copy_out(a, out, out_cap);
}

int ccid_xfer_fits(const struct ccid_xfer *x, const struct ccid_cmd *cmd)
{
	if (cmd->hdr.dwLength <= x->max_msg - CCID_HEADER_LEN)
		return 1;
	log_critical("%s with %u data bytes exceeds dwMaxCCIDMessageLength %u",
		     ccid_msg_type_str(cmd->hdr.bMessageType), cmd->hdr.dwLength, x->max_msg);
	return 0;
}

smc_status ccid_xfer_send_cmd(struct ccid_xfer *x, const struct ccid_cmd *cmd,
			      enum smc_log_level dump)
{
	size_t len = ccid_encode(cmd, x->tx, x->max_msg);
	tp_status st;

	if (len == 0) {
		log_critical("%s could not be encoded", ccid_msg_type_str(cmd->hdr.bMessageType));
		return SMC_ERR_INVALID_PARAM;
	}
	log_hex_at(dump, ccid_msg_type_str(cmd->hdr.bMessageType), x->tx, len);
	st = x->tp->ops->send(x->tp, x->tx, len, CCID_XFER_SEND_TIMEOUT_MS);
	if (st == TP_OK)
		return SMC_OK;
	return transport_error(x, st, "bulk OUT");
}

/* pcscd asks for the card's presence every few hundred milliseconds: those
 * exchanges belong to the periodic log level, not among the APDUs. */
enum smc_log_level ccid_xfer_dump_level(uint8_t cmd_type)
{
	return cmd_type == CCID_PC_TO_RDR_GET_SLOT_STATUS ? SMC_LOG_PERIODIC : SMC_LOG_COMM;
}

static smc_status transact_locked(struct ccid_xfer *x, const struct ccid_cmd *cmd_in,
				  unsigned timeout_ms, uint64_t until, uint8_t *out, size_t out_cap,
				  struct ccid_answer *ans)
{
	struct ccid_cmd cmd = *cmd_in;
	smc_status st;

	if (ccid_xfer_is_gone(x)) {
		log_comm("%s not sent: the reader is gone", ccid_msg_type_str(cmd.hdr.bMessageType));
		return SMC_ERR_NO_DEVICE;
	}
	if (!ccid_xfer_fits(x, &cmd))
		return SMC_ERR_INVALID_PARAM;
	cmd.hdr.bSeq = x->seq++;
	x->dump_level = ccid_xfer_dump_level(cmd.hdr.bMessageType);
	st = ccid_xfer_send_cmd(x, &cmd, x->dump_level);
	if (st == SMC_OK)
		st = await_answer(x, &cmd.hdr, timeout_ms, until, ans);
	if (st == SMC_ERR_TIMEOUT) {
		log_critical("no answer to %s (slot %u bSeq %u) within %u ms",
			     ccid_msg_type_str(cmd.hdr.bMessageType), cmd.hdr.bSlot, cmd.hdr.bSeq,
			     timeout_ms);
		abort_command(x, cmd.hdr.bSlot, cmd.hdr.bSeq);
		return ccid_xfer_is_gone(x) ? SMC_ERR_NO_DEVICE : SMC_ERR_TIMEOUT;
	}
	/* The device may have vanished while a bad message was flushed: that is
	 * what the caller must hear (pcscd then stops), not a communication error. */
	if (st != SMC_OK)
		return ccid_xfer_is_gone(x) ? SMC_ERR_NO_DEVICE : st;
	return ccid_xfer_finish(cmd.hdr.bMessageType, ans, out, out_cap);
}

smc_status ccid_xfer_transact(struct ccid_xfer *x, const struct ccid_cmd *cmd, unsigned timeout_ms,
			      uint8_t *out, size_t out_cap, struct ccid_answer *ans)
{
	return ccid_xfer_transact_until(x, cmd, timeout_ms, 0, out, out_cap, ans);
}

smc_status ccid_xfer_transact_until(struct ccid_xfer *x, const struct ccid_cmd *cmd,
				    unsigned timeout_ms, uint64_t until_ms, uint8_t *out,
				    size_t out_cap, struct ccid_answer *ans)
{
	smc_status st;
	int err;

	memset(ans, 0, sizeof(*ans));
	if (out == NULL)
		out_cap = 0;
	if (x->busy_max > 1)
		return ccid_xfer_transact_concurrent(x, cmd, timeout_ms, until_ms, out, out_cap, ans);
	err = pthread_mutex_lock(&x->lock);
	if (err != 0) {
		log_critical("cannot take the bulk pipe lock: %s", strerror(err));
		return SMC_ERR_COMM;
	}
	st = transact_locked(x, cmd, timeout_ms, until_ms, out, out_cap, ans);
	pthread_mutex_unlock(&x->lock);
	return st;
}

smc_status ccid_answer_failure(const struct ccid_answer *a, const char *what)
{
	log_info("%s failed: bStatus 0x%02X (ICC %s), bError 0x%02X (%s%s)", what, a->bStatus,
		 ccid_icc_status_str(a->icc), a->bError, ccid_error_str(a->bError),
		 a->bError >= 0x01 && a->bError <= 0x7F ? ", offset in the command" : "");
	if (a->icc == CCID_ICC_ABSENT)
		return SMC_ERR_NO_MEDIA;
	switch (a->bError) {
	case CCID_ERR_CMD_NOT_SUPPORTED:
		return SMC_ERR_NOT_SUPPORTED;
	case CCID_ERR_ICC_MUTE:
	case CCID_ERR_PIN_TIMEOUT:
		return SMC_ERR_TIMEOUT;
	case CCID_ERR_PIN_CANCELLED:
		return SMC_ERR_CANCELLED;
	default:
		return SMC_ERR_COMM;
	}
}
