/* One CCID command, one answer: the bulk pipe of one reader, kept in step.
 *
 * ccid_xfer_transact() sends a command with the next bSeq and returns the answer
 * that carries the same bSeq and bSlot, whatever happens on the way: zero-length
 * reads, answers split across reads, stale answers of earlier commands, time
 * extensions, timeouts (followed by ABORT so the next command is in step), an
 * unplugged device.
 *
 * The slots of a reader share one bulk pipe. By default a per-reader mutex
 * serialises whole transactions. A reader that may have several slots busy at
 * once (CCID 1.1 5.1, bMaxCCIDBusySlots) gets, after ccid_xfer_set_busy_slots()
 * with n > 1, overlapping transactions (ccid_xfer_dispatch.c): one command per
 * slot and at most n slots in flight; one waiter at a time reads bulk IN and
 * hands each answer to the waiter whose bSlot and bSeq it carries. */
#ifndef CCID_XFER_H
#define CCID_XFER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ccid_msg.h"
#include "ccid_transport.h"
#include "smc_log.h"
#include "smclib.h"

/* Hard bound on one command, time extensions included: no answer after this long
 * means the reader is stuck. A caller that asks for a longer timeout gets its own. */
#define CCID_XFER_HARD_BOUND_MS 60000u
/* Writing a command to bulk OUT (the reader may be busy for a moment). */
#define CCID_XFER_SEND_TIMEOUT_MS 5000u
/* After a timeout: the ABORT class request, then the wait for the SlotStatus that
 * answers PC_to_RDR_Abort. */
#define CCID_XFER_ABORT_CTRL_TIMEOUT_MS 1000u
#define CCID_XFER_ABORT_ANSWER_MS 1000u
/* Reading away the rest of a message that cannot be used. */
#define CCID_XFER_DRAIN_READ_MS 200u
#define CCID_XFER_DRAIN_MAX_READS 64u
/* Answers of other commands (old bSeq, other slot) dropped before giving up. */
#define CCID_XFER_MAX_STALE 16u
/* Zero-length reads tolerated within one answer. */
#define CCID_XFER_MAX_EMPTY_READS 32u
/* The receive buffer holds at least a short APDU answer with room to spare, and
 * is a whole number of USB packets so that no packet can overflow it. */
#define CCID_XFER_MIN_BUF 512u
#define CCID_XFER_BUF_ROUND 512u

/* Milliseconds on a monotonic clock; the tests substitute a virtual one. */
typedef uint64_t (*ccid_clock_fn)(void *ctx);

struct ccid_xfer_waiter; /* a command in flight (ccid_xfer_dispatch.c) */

struct ccid_xfer {
	struct ccid_transport *tp;    /* not owned */
	pthread_mutex_t lock;         /* serial mode: one transaction at a time */
	uint8_t seq;                  /* bSeq of the next command (under lock, or
				       * disp_lock when concurrent) */
	/* Concurrent mode (busy_max > 1): the dispatch state, under disp_lock. */
	unsigned busy_max;            /* slots that may be busy at once; <= 1: serial */
	pthread_mutex_t disp_lock;
	pthread_cond_t disp_cond;     /* a mailbox filled, bulk IN or a slot freed,
				       * a deadline moved, the reader gone */
	pthread_mutex_t send_lock;    /* one message on bulk OUT at a time (tx) */
	struct ccid_xfer_waiter *waiters; /* the commands in flight */
	unsigned n_busy;              /* how many */
	bool reading;                 /* a waiter reads bulk IN (and owns rx) */
	uint32_t max_msg;             /* dwMaxCCIDMessageLength: largest command */
	uint8_t *tx;                  /* max_msg bytes */
	uint8_t *rx;                  /* rx_cap bytes, allocated once */
	size_t rx_cap;
	atomic_int gone;              /* a transfer answered TP_NO_DEVICE */
	enum smc_log_level dump_level; /* serial mode: of the current command's dumps */
	ccid_clock_fn clock;
	void *clock_ctx;
};

smc_status ccid_xfer_init(struct ccid_xfer *x, struct ccid_transport *tp, uint32_t max_msg_len);
void ccid_xfer_destroy(struct ccid_xfer *x);

/* How many slots may have a command in flight at once: min(bMaxCCIDBusySlots,
 * slot count), set once after init and before the first transaction. 0 or 1
 * keeps whole transactions serialised (every CCID 1.0 reader). */
void ccid_xfer_set_busy_slots(struct ccid_xfer *x, unsigned n);
unsigned ccid_xfer_busy_slots(const struct ccid_xfer *x);

/* Send cmd (its bSeq is assigned here) and wait up to timeout_ms for its answer
 * (time extensions lengthen the wait, within CCID_XFER_HARD_BOUND_MS). On SMC_OK
 * *ans is the validated answer of the expected type and its data was copied to
 * out (ans->data == out); the command status may still say "failed": see
 * ccid_answer_failure(). SMC_ERR_BUFFER_TOO_SMALL: the answer (fully read, so the
 * pipe stays in step) has more data than out_cap; *ans is filled, ans->data NULL.
 * SMC_ERR_NOT_SUPPORTED: the reader answered Escape, Secure or SetDataRate with
 * a SlotStatus (QEMU does), *ans filled. SMC_ERR_TIMEOUT after the abort
 * sequence, SMC_ERR_NO_DEVICE when the reader is gone, SMC_ERR_COMM otherwise.
 * With several busy slots, a command for a slot that has one in flight (or when
 * all busy slots are taken) waits first, at most timeout_ms (and until_ms):
 * SMC_ERR_TIMEOUT, nothing sent, if the slot does not come free by then. */
smc_status ccid_xfer_transact(struct ccid_xfer *x, const struct ccid_cmd *cmd, unsigned timeout_ms,
			      uint8_t *out, size_t out_cap, struct ccid_answer *ans);

/* The same, but never waiting past until_ms on the xfer clock (0: no such
 * bound), time extensions included: for commands that share one budget. */
smc_status ccid_xfer_transact_until(struct ccid_xfer *x, const struct ccid_cmd *cmd,
				    unsigned timeout_ms, uint64_t until_ms, uint8_t *out,
				    size_t out_cap, struct ccid_answer *ans);

int ccid_xfer_is_gone(const struct ccid_xfer *x);
/* Now, in ms, on the pipe's clock (monotonic; virtual in tests). */
uint64_t ccid_xfer_now_ms(struct ccid_xfer *x);

/* The smc_status of an answer whose command status is "failed", with a log line
 * naming what failed: NO_MEDIA for an absent card, NOT_SUPPORTED for bError 0,
 * TIMEOUT for a mute card or PIN timeout, CANCELLED for a cancelled PIN entry,
 * COMM otherwise. */
smc_status ccid_answer_failure(const struct ccid_answer *a, const char *what);

#endif
