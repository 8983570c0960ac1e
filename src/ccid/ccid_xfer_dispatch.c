/* Overlapping transactions of the slots of one reader (CCID 1.1 5.1 and 6.2.6:
 * a reader whose bMaxCCIDBusySlots is above 1 takes a command for another slot
 * while one is running, and each answer carries its command's bSlot and bSeq).
 *
 * Every command in flight has a waiter on x->waiters, on its caller's stack.
 * Bulk IN has one reader at a time (leader/follower): a waiter that finds the
 * role free reads one message, then, under disp_lock, hands it to the waiter
 * whose bSlot and bSeq it carries (that waiter's mailbox is its caller's ans
 * and out, filled here), moves that waiter's deadline for a time extension, or
 * drops it as stale; then it gives the role back and wakes everyone. The others
 * sleep on disp_cond, each until its own deadline, so a follower times out on
 * time however long the leader reads. No transfer is made with disp_lock held;
 * bulk OUT (and tx) is under send_lock, for one message at a time. */
#include <errno.h>
#include <time.h>

#include "ccid_xfer_priv.h"
#include "smc_log.h"

struct ccid_xfer_waiter {
	struct ccid_xfer_waiter *next;
	uint8_t slot, seq;
	uint8_t cmd_type;        /* of the command; PC_to_RDR_Abort once aborting */
	bool aborting;           /* timed out: only the Abort's SlotStatus is wanted */
	bool done;               /* the mailbox holds the outcome */
	smc_status status;       /* the outcome, once done */
	enum smc_log_level dump; /* level of this command's hex dumps */
	unsigned timeout_ms;     /* what a time extension multiplies */
	uint64_t deadline, hard; /* on the xfer clock */
	unsigned dropped;        /* stale answers this waiter read as leader */
	uint8_t *out;
	size_t out_cap;
	struct ccid_answer *ans;
};

/* ---- the list of commands in flight (under disp_lock) ------------------ */

static struct ccid_xfer_waiter *find_waiter(struct ccid_xfer *x, uint8_t slot, int any_seq,
					    uint8_t seq)
{
	for (struct ccid_xfer_waiter *w = x->waiters; w != NULL; w = w->next)
		if (w->slot == slot && (any_seq || w->seq == seq))
			return w;
	return NULL;
}

static void enlist(struct ccid_xfer *x, struct ccid_xfer_waiter *w)
{
	w->next = x->waiters;
	x->waiters = w;
	x->n_busy++;
}

/* The slot is free again: a command waiting for it (or for any slot) may go. */
static void delist(struct ccid_xfer *x, struct ccid_xfer_waiter *w)
{
	for (struct ccid_xfer_waiter **p = &x->waiters; *p != NULL; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			x->n_busy--;
			break;
		}
	}
	pthread_cond_broadcast(&x->disp_cond);
}

/* Under disp_lock: sleep until woken or until deadline (xfer clock). 1 when
 * the wait ran out. The deadline is turned into time left on the monotonic
 * clock at each call, so it also holds with the tests' virtual clock. */
static int sleep_until(struct ccid_xfer *x, uint64_t deadline)
{
	uint64_t now = ccid_xfer_now_ms(x);
	uint64_t left;
	struct timespec ts;

	if (now >= deadline)
		return 1;
	left = deadline - now;
	smc_deadline_after(&ts, left);
	return pthread_cond_timedwait(&x->disp_cond, &x->disp_lock, &ts) == ETIMEDOUT;
}

/* ---- routing one message (under disp_lock) --------------------------------- */

static void deliver(struct ccid_xfer_waiter *w, smc_status st)
{
	w->status = st;
	w->done = true;
}

/* A message nobody waits for: dropped, as today's single waiter drops the
 * answers of earlier commands; the leader gives up after too many in a row. */
static void drop_stale(struct ccid_xfer_waiter *leader, const struct ccid_answer *a, int malformed)
{
	log_info("dropped %s for slot %u bSeq %u: no command waits for it (stale answer%s)",
		 ccid_msg_type_str(a->hdr.bMessageType), a->hdr.bSlot, a->hdr.bSeq,
		 malformed ? ", malformed" : "");
	if (++leader->dropped > CCID_XFER_MAX_STALE) {
		log_critical("%u answers to other commands in a row while reading for slot %u: giving up",
			     leader->dropped, leader->slot);
		deliver(leader, SMC_ERR_COMM);
	}
}

/* 6.1.13: the aborted command may still answer; only a SlotStatus with its
 * bSlot and bSeq answers PC_to_RDR_Abort. */
static void route_to_aborting(struct ccid_xfer_waiter *leader, struct ccid_xfer_waiter *w,
			      const struct ccid_answer *a, int decoded)
{
	if (decoded && a->hdr.bMessageType == CCID_RDR_TO_PC_SLOT_STATUS) {
		log_info("abort of slot %u bSeq %u answered", w->slot, w->seq);
		deliver(w, SMC_OK);
		return;
	}
	log_comm("dropped %s of slot %u while waiting for the abort's SlotStatus",
		 ccid_msg_type_str(a->hdr.bMessageType), w->slot);
	if (++leader->dropped > CCID_XFER_MAX_STALE)
		deliver(leader, SMC_ERR_COMM);
}

/* The message in x->rx (len bytes), read by leader: to its owner's mailbox. */
static void route(struct ccid_xfer *x, struct ccid_xfer_waiter *leader, size_t len)
{
	struct ccid_answer a;
	/* ccid_xfer_read_frame checked the header, so a.hdr is filled even when
	 * the rest is malformed: enough to find the owner. */
	enum ccid_decode_result r = ccid_decode_answer(x->rx, len, &a);
	struct ccid_xfer_waiter *w = find_waiter(x, a.hdr.bSlot, 0, a.hdr.bSeq);

	log_hex_at(w != NULL ? w->dump : SMC_LOG_COMM, ccid_msg_type_str(x->rx[0]), x->rx, len);
	if (w == NULL) {
		drop_stale(leader, &a, r != CCID_DECODE_OK);
		return;
	}
	if (w->aborting) {
		route_to_aborting(leader, w, &a, r == CCID_DECODE_OK);
		return;
	}
	if (r != CCID_DECODE_OK) {
		log_critical("malformed answer to %s (slot %u bSeq %u): %s",
			     ccid_msg_type_str(w->cmd_type), w->slot, w->seq, ccid_decode_result_str(r));
		deliver(w, SMC_ERR_COMM);
		return;
	}
	if (a.cmd == CCID_CMD_TIME_EXTENSION) {
		/* only the owner's own answers extend its wait */
		w->deadline = ccid_xfer_extend(x, w->timeout_ms, a.bError, w->hard);
		return;
	}
	if (w != leader)
		log_comm("answer for slot %u bSeq %u handed over (read for slot %u)", w->slot,
			 w->seq, leader->slot);
	*w->ans = a;
	/* the owner sleeps until done is set under this lock: its out is ours */
	deliver(w, ccid_xfer_finish(w->cmd_type, w->ans, w->out, w->out_cap));
}

/* Under disp_lock, the role free: read one message for whoever it is, with the
 * lock released during the transfer. SMC_OK when a message was routed. */
static smc_status lead(struct ccid_xfer *x, struct ccid_xfer_waiter *w)
{
	uint64_t deadline = w->deadline;
	size_t len = 0;
	smc_status st;

	x->reading = true;
	pthread_mutex_unlock(&x->disp_lock);
	st = ccid_xfer_read_frame(x, deadline, &len, 0);
	pthread_mutex_lock(&x->disp_lock);
	if (st == SMC_OK)
		route(x, w, len);
	x->reading = false;
	/* the role is free (another waiter takes it), and a mailbox or a
	 * deadline may have changed */
	pthread_cond_broadcast(&x->disp_cond);
	return st;
}

/* Under disp_lock: until w is done, lead or sleep. SMC_ERR_TIMEOUT when w's
 * deadline passes; a read error of w's own read is w's outcome. */
static smc_status await(struct ccid_xfer *x, struct ccid_xfer_waiter *w)
{
	for (;;) {
		if (w->done)
			return w->status;
		if (ccid_xfer_is_gone(x))
			return SMC_ERR_NO_DEVICE;
		if (ccid_xfer_now_ms(x) >= w->deadline)
			return SMC_ERR_TIMEOUT;
		if (!x->reading) {
			smc_status st = lead(x, w);

			if (st != SMC_OK && !w->done)
				return st;
			continue;
		}
		uint64_t deadline = w->deadline;

		/* a time extension moves the deadline: wait on for the new one */
		if (sleep_until(x, deadline) && !w->done && w->deadline == deadline &&
		    !ccid_xfer_is_gone(x))
			return SMC_ERR_TIMEOUT;
	}
}

/* ---- one transaction ------------------------------------------------------- */

static int admissible(struct ccid_xfer *x, uint8_t slot)
{
	return find_waiter(x, slot, 1, 0) == NULL && x->n_busy < x->busy_max;
}

/* Under disp_lock: one command per slot, at most busy_max slots in flight
 * (5.1: more would be refused with "slot busy"). The wait for that is bounded
 * by the command's own timeout; then w is in flight with the next bSeq. */
static smc_status admit(struct ccid_xfer *x, struct ccid_xfer_waiter *w, uint64_t until)
{
	uint64_t limit = ccid_xfer_now_ms(x) + w->timeout_ms;
	int ran_out = 0;

	if (until != 0 && until < limit)
		limit = until;
	while (!admissible(x, w->slot)) {
		if (ccid_xfer_is_gone(x))
			return SMC_ERR_NO_DEVICE;
		if (ran_out) {
			log_critical("%s for slot %u not sent: %s for %u ms",
				     ccid_msg_type_str(w->cmd_type), w->slot,
				     find_waiter(x, w->slot, 1, 0) ? "the slot stayed busy"
								   : "every busy slot stayed busy",
				     w->timeout_ms);
			return SMC_ERR_TIMEOUT;
		}
		ran_out = sleep_until(x, limit);
	}
	w->seq = x->seq++;
	enlist(x, w);
	return SMC_OK;
}

/* After a timeout (5.3.1, 6.1.13), for w's slot only: the ABORT class request,
 * then PC_to_RDR_Abort with the same bSlot and bSeq, whose SlotStatus is
 * awaited like any answer, so the other slots' answers still reach them.
 * Under disp_lock (released for the transfers); always SMC_ERR_TIMEOUT. */
static smc_status abort_slot(struct ccid_xfer *x, struct ccid_xfer_waiter *w)
{
	smc_status st = SMC_ERR_COMM;
	int alive;

	log_info("aborting slot %u bSeq %u", w->slot, w->seq);
	w->aborting = true;
	w->done = false;
	w->dropped = 0;
	w->cmd_type = CCID_PC_TO_RDR_ABORT;
	w->dump = SMC_LOG_COMM;
	w->deadline = w->hard = ccid_xfer_now_ms(x) + CCID_XFER_ABORT_ANSWER_MS;
	pthread_mutex_unlock(&x->disp_lock);
	alive = ccid_xfer_abort_request(x, w->slot, w->seq);
	if (alive) {
		pthread_mutex_lock(&x->send_lock);
		st = ccid_xfer_send_abort(x, w->slot, w->seq);
		pthread_mutex_unlock(&x->send_lock);
	}
	pthread_mutex_lock(&x->disp_lock);
	if (!alive || st != SMC_OK)
		return SMC_ERR_TIMEOUT;
	/* the answer's wait starts once the Abort is out */
	w->deadline = w->hard = ccid_xfer_now_ms(x) + CCID_XFER_ABORT_ANSWER_MS;
	if (await(x, w) != SMC_OK)
		log_info("no SlotStatus for PC_to_RDR_Abort (slot %u bSeq %u)", w->slot, w->seq);
	return SMC_ERR_TIMEOUT;
}

static smc_status send_locked(struct ccid_xfer *x, const struct ccid_cmd *cmd,
			      enum smc_log_level dump)
{
	smc_status st;

	pthread_mutex_lock(&x->send_lock);
	st = ccid_xfer_send_cmd(x, cmd, dump);
	pthread_mutex_unlock(&x->send_lock);
	return st;
}

smc_status ccid_xfer_transact_concurrent(struct ccid_xfer *x, const struct ccid_cmd *cmd_in,
					 unsigned timeout_ms, uint64_t until, uint8_t *out,
					 size_t out_cap, struct ccid_answer *ans)
{
	struct ccid_cmd cmd = *cmd_in;
	struct ccid_xfer_waiter w = {
		.slot = cmd.hdr.bSlot, .cmd_type = cmd.hdr.bMessageType,
		.dump = ccid_xfer_dump_level(cmd.hdr.bMessageType), .timeout_ms = timeout_ms,
		.out = out, .out_cap = out_cap, .ans = ans,
	};
	smc_status st;

	if (ccid_xfer_is_gone(x)) {
		log_comm("%s not sent: the reader is gone", ccid_msg_type_str(w.cmd_type));
		return SMC_ERR_NO_DEVICE;
	}
	if (!ccid_xfer_fits(x, &cmd))
		return SMC_ERR_INVALID_PARAM;
	pthread_mutex_lock(&x->disp_lock);
	st = admit(x, &w, until);
	if (st != SMC_OK) {
		pthread_mutex_unlock(&x->disp_lock);
		return st;
	}
	/* in flight from here: an answer that comes at once finds w's bounds */
	ccid_xfer_bounds(x, timeout_ms, until, &w.deadline, &w.hard);
	pthread_mutex_unlock(&x->disp_lock);
	cmd.hdr.bSeq = w.seq;
	st = send_locked(x, &cmd, w.dump);
	pthread_mutex_lock(&x->disp_lock);
	if (st == SMC_OK) {
		if (!w.done) /* the wait starts once the command is out, as when serial */
			ccid_xfer_bounds(x, timeout_ms, until, &w.deadline, &w.hard);
		st = await(x, &w);
	}
	if (st == SMC_ERR_TIMEOUT) {
		log_critical("no answer to %s (slot %u bSeq %u) within %u ms",
			     ccid_msg_type_str(cmd.hdr.bMessageType), w.slot, w.seq, timeout_ms);
		st = abort_slot(x, &w);
	}
	delist(x, &w);
	pthread_mutex_unlock(&x->disp_lock);
	/* the device may have vanished meanwhile: that is what the caller must hear */
	if (st != SMC_OK && ccid_xfer_is_gone(x))
		return SMC_ERR_NO_DEVICE;
	return st;
}
