/* The slots of one reader used at once (CCID 1.1 5.1, bMaxCCIDBusySlots).
 *
 * ccid_xfer against a scripted device made for threads (below): the test
 * decides which answer comes when, so answers arrive out of order, time
 * extensions and stale answers come between them, one slot times out while
 * the other succeeds, the device goes away under two waiters. Then many
 * threads on both slots, against an auto-answering device that returns the
 * answers in random order and counts the commands in flight, and the whole
 * driver against the virtual reader with two busy slots. Waits are real;
 * timeouts are short. Assertions run in the main thread only (cmocka). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ifdhandler.h>
#include <reader.h>

#include "ccid/ccid_xfer.h"
#include "rig.h"
#include "time_util.h"

/* ---- a scripted device for threads ------------------------------------------ */

#define SDEV_QUEUE 64
#define SDEV_FRAME 300
#define SDEV_LOG 64
#define SDEV_SLOTS 2

struct sframe {
	uint8_t b[SDEV_FRAME];
	size_t len;
};

struct sdev {
	struct ccid_transport tp;
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* a frame queued, a message sent, unplugged */
	struct sframe q[SDEV_QUEUE];  /* bulk IN */
	size_t qn;
	bool gone;
	bool auto_answer;             /* answer each command as it is sent */
	bool shuffle;                 /* bulk IN returns a random queued answer */
	unsigned seed;
	uint8_t log[SDEV_LOG][3];     /* bMessageType, bSlot, bSeq of the first sends */
	size_t n_sent;
	size_t n_abort;               /* PC_to_RDR_Abort messages */
	size_t n_ctrl;
	uint16_t ctrl_value;          /* of the last control request */
	/* auto mode: commands whose answer the driver has not read yet */
	unsigned inflight[SDEV_SLOTS], inflight_all;
	unsigned max_inflight_all, max_inflight_slot;
	unsigned bad;                 /* malformed sends or queue overflows */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timespec abs_in(unsigned ms)
{
	struct timespec ts;

	smc_deadline_after(&ts, ms);
	return ts;
}

/* Under lock. */
static void queue_frame(struct sdev *d, uint8_t type, uint8_t slot, uint8_t seq, uint8_t status,
			uint8_t error, const uint8_t *data, size_t len)
{
	struct sframe *f;

	if (d->qn == SDEV_QUEUE || len > SDEV_FRAME - 10) {
		d->bad++;
		return;
	}
	f = &d->q[d->qn++];
	f->b[0] = type;
	f->b[1] = (uint8_t)len;
	f->b[2] = (uint8_t)(len >> 8);
	f->b[3] = f->b[4] = 0;
	f->b[5] = slot;
	f->b[6] = seq;
	f->b[7] = status;
	f->b[8] = error;
	f->b[9] = 0;
	if (len > 0)
		memcpy(f->b + 10, data, len);
	f->len = 10 + len;
	pthread_cond_broadcast(&d->cond);
}

static void account_send(struct sdev *d, uint8_t slot)
{
	if (slot >= SDEV_SLOTS) {
		d->bad++;
		return;
	}
	d->inflight[slot]++;
	d->inflight_all++;
	if (d->inflight[slot] > d->max_inflight_slot)
		d->max_inflight_slot = d->inflight[slot];
	if (d->inflight_all > d->max_inflight_all)
		d->max_inflight_all = d->inflight_all;
}

static void auto_answer(struct sdev *d, const uint8_t *m, size_t len)
{
	if (m[0] == 0x72) { /* PC_to_RDR_Abort: its SlotStatus */
		queue_frame(d, 0x81, m[5], m[6], 0, 0, NULL, 0);
		return;
	}
	account_send(d, m[5]);
	if (m[0] == 0x6F) /* XfrBlock: the data back in a DataBlock */
		queue_frame(d, 0x80, m[5], m[6], 0, 0, m + 10, len - 10);
	else
		queue_frame(d, 0x81, m[5], m[6], 0, 0, NULL, 0);
}

static tp_status sdev_send(struct ccid_transport *tp, const uint8_t *buf, size_t len,
			   unsigned timeout_ms)
{
	struct sdev *d = tp->priv;
	tp_status st = TP_OK;

	(void)timeout_ms;
	pthread_mutex_lock(&d->lock);
	if (d->gone) {
		st = TP_NO_DEVICE;
	} else if (len < 10) {
		d->bad++;
	} else {
		if (d->n_sent < SDEV_LOG)
			memcpy(d->log[d->n_sent], (uint8_t[3]){ buf[0], buf[5], buf[6] }, 3);
		d->n_sent++;
		d->n_abort += buf[0] == 0x72;
		if (d->auto_answer)
			auto_answer(d, buf, len);
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	return st;
}

static tp_status sdev_receive(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
			      unsigned timeout_ms)
{
	struct sdev *d = tp->priv;
	struct timespec until = abs_in(timeout_ms);
	tp_status st = TP_OK;
	size_t i = 0;

	*got = 0;
	pthread_mutex_lock(&d->lock);
	/* auto mode: now and then, with one command in flight, give another
	 * thread a moment to send its own, so that the slots overlap even on a
	 * loaded machine where one thread could run many transactions alone */
	if (d->auto_answer && d->inflight_all == 1 && d->n_sent % 4 == 0) {
		struct timespec linger = abs_in(1);

		pthread_cond_timedwait(&d->cond, &d->lock, &linger);
	}
	while (d->qn == 0 && !d->gone)
		if (pthread_cond_timedwait(&d->cond, &d->lock, &until) == ETIMEDOUT)
			break;
	if (d->gone) {
		st = TP_NO_DEVICE;
	} else if (d->qn == 0) {
		st = TP_TIMEOUT;
	} else {
		if (d->shuffle)
			i = (size_t)rand_r(&d->seed) % d->qn;
		*got = d->q[i].len < cap ? d->q[i].len : cap;
		memcpy(buf, d->q[i].b, *got);
		/* auto mode: each answer ends its command (no time extensions) */
		if (d->auto_answer && d->q[i].b[5] < SDEV_SLOTS && d->inflight[d->q[i].b[5]] > 0) {
			d->inflight[d->q[i].b[5]]--;
			d->inflight_all--;
		}
		memmove(&d->q[i], &d->q[i + 1], (d->qn - i - 1) * sizeof(d->q[0]));
		d->qn--;
	}
	pthread_mutex_unlock(&d->lock);
	return st;
}

static tp_status sdev_wait_interrupt(struct ccid_transport *tp, uint8_t *buf, size_t cap,
				     size_t *got, unsigned timeout_ms)
{
	(void)tp;
	(void)buf;
	(void)cap;
	(void)timeout_ms;
	*got = 0;
	return TP_CANCELLED; /* ccid_xfer never waits on the interrupt pipe */
}

static tp_status sdev_control(struct ccid_transport *tp, uint8_t request_type, uint8_t request,
			      uint16_t value, uint8_t *data, uint16_t len, size_t *got,
			      unsigned timeout_ms)
{
	struct sdev *d = tp->priv;
	tp_status st = TP_OK;

	(void)request_type;
	(void)request;
	(void)data;
	(void)len;
	(void)timeout_ms;
	*got = 0;
	pthread_mutex_lock(&d->lock);
	if (d->gone) {
		st = TP_NO_DEVICE;
	} else {
		d->n_ctrl++;
		d->ctrl_value = value;
	}
	pthread_mutex_unlock(&d->lock);
	return st;
}

static void sdev_cancel(struct ccid_transport *tp)
{
	(void)tp;
}

static void sdev_close(struct ccid_transport *tp)
{
	(void)tp;
}

static const struct ccid_transport_ops sdev_ops = {
	.send = sdev_send,
	.receive = sdev_receive,
	.wait_interrupt = sdev_wait_interrupt,
	.control = sdev_control,
	.cancel = sdev_cancel,
	.close = sdev_close,
};

/* Wait until the driver has sent n messages; the log entry of message n-1. */
static const uint8_t *sdev_wait_sent(struct sdev *d, size_t n)
{
	struct timespec until = abs_in(3000);
	size_t have;

	assert_in_range(n, 1, SDEV_LOG);
	pthread_mutex_lock(&d->lock);
	while (d->n_sent < n)
		if (pthread_cond_timedwait(&d->cond, &d->lock, &until) == ETIMEDOUT)
			break;
	have = d->n_sent;
	pthread_mutex_unlock(&d->lock);
	if (have < n)
		fail_msg("the driver sent %zu messages, expected %zu", have, n);
	return d->log[n - 1]; /* written once, before n_sent moved past it */
}

static void sdev_push(struct sdev *d, uint8_t type, uint8_t slot, uint8_t seq, uint8_t status,
		      uint8_t error, const char *data)
{
	pthread_mutex_lock(&d->lock);
	queue_frame(d, type, slot, seq, status, error, (const uint8_t *)data,
		    data ? strlen(data) : 0);
	pthread_mutex_unlock(&d->lock);
}

static void sdev_unplug(struct sdev *d)
{
	pthread_mutex_lock(&d->lock);
	d->gone = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static size_t sdev_sent(struct sdev *d)
{
	size_t n;

	pthread_mutex_lock(&d->lock);
	n = d->n_sent;
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* ---- fixture: a pipe with two busy slots over the scripted device -------- */

struct fixture {
	struct sdev d;
	struct ccid_xfer x;
};

static int setup_busy(void **state, unsigned busy)
{
	struct fixture *f = calloc(1, sizeof(*f));
	pthread_condattr_t ca;

	assert_non_null(f);
	pthread_mutex_init(&f->d.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->d.cond, &ca);
	pthread_condattr_destroy(&ca);
	f->d.tp.ops = &sdev_ops;
	f->d.tp.priv = &f->d;
	f->d.seed = 12345;
	assert_int_equal(ccid_xfer_init(&f->x, &f->d.tp, 271), SMC_OK);
	ccid_xfer_set_busy_slots(&f->x, busy);
	*state = f;
	return 0;
}

static int setup_two(void **state)
{
	return setup_busy(state, 2);
}

static int setup_one(void **state)
{
	return setup_busy(state, 1);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ccid_xfer_destroy(&f->x);
	pthread_cond_destroy(&f->d.cond);
	pthread_mutex_destroy(&f->d.lock);
	free(f);
	return 0;
}

/* ---- one transaction in a thread ---------------------------------------- */

struct call {
	struct ccid_xfer *x;
	uint8_t slot;
	unsigned timeout_ms;
	char data[16];
	pthread_t thread;
	smc_status st;
	struct ccid_answer a;
	uint8_t out[64];
	uint64_t ms;              /* how long the call took */
	atomic_bool finished;
};

static void *call_thread(void *arg)
{
	struct call *c = arg;
	struct ccid_cmd cmd;
	uint64_t t0 = mono_ms();

	ccid_cmd_xfr_block(&cmd, c->slot, 0, 0, (const uint8_t *)c->data, strlen(c->data));
	c->st = ccid_xfer_transact(c->x, &cmd, c->timeout_ms, c->out, sizeof(c->out), &c->a);
	c->ms = mono_ms() - t0;
	atomic_store(&c->finished, true);
	return NULL;
}

static void start(struct call *c, struct ccid_xfer *x, uint8_t slot, unsigned timeout_ms,
		  const char *data)
{
	c->x = x;
	c->slot = slot;
	c->timeout_ms = timeout_ms;
	snprintf(c->data, sizeof(c->data), "%s", data);
	atomic_init(&c->finished, false);
	assert_int_equal(pthread_create(&c->thread, NULL, call_thread, c), 0);
}

static void join(struct call *c)
{
	pthread_join(c->thread, NULL);
}

/* The call ended with SMC_OK and data back as answer. */
static void assert_answer(const struct call *c, const char *answer)
{
	size_t n = strlen(answer);

	assert_int_equal(c->st, SMC_OK);
	assert_int_equal(c->a.hdr.bSlot, c->slot);
	assert_int_equal(c->a.hdr.dwLength, n);
	assert_memory_equal(c->out, answer, n);
}

/* ---- scripted: answers in any order ------------------------------------------ */

static void answers_out_of_order_reach_their_owners(void **state)
{
	struct fixture *f = *state;
	struct call c0, c1;
	const uint8_t *m0, *m1;

	start(&c0, &f->x, 0, 2000, "zero");
	m0 = sdev_wait_sent(&f->d, 1);
	start(&c1, &f->x, 1, 2000, "one");
	m1 = sdev_wait_sent(&f->d, 2);
	assert_int_equal(m0[1], 0);
	assert_int_equal(m1[1], 1);
	assert_int_not_equal(m0[2], m1[2]); /* bSeq unique per command */
	/* slot 1's answer first: whoever reads it hands it to slot 1's caller */
	sdev_push(&f->d, 0x80, 1, m1[2], 0, 0, "ANSWER-1");
	join(&c1);
	assert_answer(&c1, "ANSWER-1");
	assert_false(atomic_load(&c0.finished));
	sdev_push(&f->d, 0x80, 0, m0[2], 0, 0, "ANSWER-0");
	join(&c0);
	assert_answer(&c0, "ANSWER-0");
	assert_int_equal(f->d.n_ctrl, 0);
}

static void both_answers_queued_in_reverse_order(void **state)
{
	struct fixture *f = *state;
	struct call c0, c1;
	const uint8_t *m0, *m1;

	start(&c0, &f->x, 0, 2000, "a");
	m0 = sdev_wait_sent(&f->d, 1);
	start(&c1, &f->x, 1, 2000, "b");
	m1 = sdev_wait_sent(&f->d, 2);
	sdev_push(&f->d, 0x80, 1, m1[2], 0, 0, "for-1");
	sdev_push(&f->d, 0x80, 0, m0[2], 0, 0, "for-0");
	join(&c0);
	join(&c1);
	assert_answer(&c0, "for-0");
	assert_answer(&c1, "for-1");
}

/* 6.2.6: a time extension moves slot 0's deadline only; slot 1 completes
 * meanwhile, and slot 0's answer after its first deadline is still taken. */
static void time_extension_for_slot_0_while_slot_1_completes(void **state)
{
	struct fixture *f = *state;
	struct call c0, c1;
	const uint8_t *m0, *m1;

	start(&c0, &f->x, 0, 300, "x");
	m0 = sdev_wait_sent(&f->d, 1);
	start(&c1, &f->x, 1, 300, "y");
	m1 = sdev_wait_sent(&f->d, 2);
	sdev_push(&f->d, 0x80, 0, m0[2], 0x80, 4, NULL); /* more time: 4 x 300 ms */
	sdev_push(&f->d, 0x80, 1, m1[2], 0, 0, "done-1");
	join(&c1);
	assert_answer(&c1, "done-1");
	sleep_ms(500); /* past slot 0's first deadline */
	assert_false(atomic_load(&c0.finished));
	sdev_push(&f->d, 0x80, 0, m0[2], 0, 0, "late-0");
	join(&c0);
	assert_answer(&c0, "late-0");
	assert_true(c0.ms >= 500);
	assert_int_equal(f->d.n_ctrl, 0); /* nothing aborted */
	assert_int_equal(f->d.n_abort, 0);
}

/* A time extension for slot 1 must not lengthen slot 0's wait. */
static void time_extension_of_another_slot_does_not_extend(void **state)
{
	struct fixture *f = *state;
	struct call c0, c1;
	const uint8_t *m0, *m1;

	start(&c0, &f->x, 0, 200, "x");
	m0 = sdev_wait_sent(&f->d, 1);
	start(&c1, &f->x, 1, 3000, "y");
	m1 = sdev_wait_sent(&f->d, 2);
	for (int i = 0; i < 3; i++) {
		sdev_push(&f->d, 0x80, 1, m1[2], 0x80, 10, NULL);
		sleep_ms(100);
	}
	join(&c0);
	assert_int_equal(c0.st, SMC_ERR_TIMEOUT);
	assert_true(c0.ms < 200 + 1000 + 500);
	assert_int_equal(f->d.ctrl_value, (uint16_t)(m0[2] << 8 | 0));
	sdev_push(&f->d, 0x80, 1, m1[2], 0, 0, "ok-1");
	join(&c1);
	assert_answer(&c1, "ok-1");
}

static void stale_answers_are_dropped_while_two_slots_wait(void **state)
{
	struct fixture *f = *state;
	struct call c0, c1;
	const uint8_t *m0, *m1;

	start(&c0, &f->x, 0, 2000, "s0");
	m0 = sdev_wait_sent(&f->d, 1);
	start(&c1, &f->x, 1, 2000, "s1");
	m1 = sdev_wait_sent(&f->d, 2);
	/* an old bSeq on slot 0, an unknown slot, a bSeq nobody sent on slot 1 */
	sdev_push(&f->d, 0x80, 0, (uint8_t)(m0[2] - 7), 0, 0, "old");
	sdev_push(&f->d, 0x81, 5, m0[2], 0, 0, NULL);
	sdev_push(&f->d, 0x80, 1, (uint8_t)(m1[2] + 40), 0, 0, "alien");
	sdev_push(&f->d, 0x80, 0, m0[2], 0, 0, "real-0");
	sdev_push(&f->d, 0x80, 1, m1[2], 0, 0, "real-1");
	join(&c0);
	join(&c1);
	assert_answer(&c0, "real-0");
	assert_answer(&c1, "real-1");
	pthread_mutex_lock(&f->d.lock);
	assert_int_equal(f->d.qn, 0);
	pthread_mutex_unlock(&f->d.lock);
}

/* Slot 1 reads (its call began first, with a long timeout); slot 0 times out
 * on its own deadline meanwhile, aborts its command (5.3.1, 6.1.13) and only
 * its own; slot 1's answer, read during slot 0's abort, still reaches it. */
static void timeout_aborts_slot_0_while_slot_1_succeeds(void **state)
{
	struct fixture *f = *state;
	struct call c0, c1;
	const uint8_t *m0, *m1, *ab;
	uint64_t t0;

	start(&c1, &f->x, 1, 3000, "long");
	m1 = sdev_wait_sent(&f->d, 1);
	sleep_ms(20); /* slot 1 is reading now */
	t0 = mono_ms();
	start(&c0, &f->x, 0, 200, "short");
	m0 = sdev_wait_sent(&f->d, 2);
	ab = sdev_wait_sent(&f->d, 3);
	/* the follower timed out on its own deadline, long before the leader's */
	assert_true(mono_ms() - t0 < 1000);
	assert_int_equal(ab[0], 0x72);
	assert_int_equal(ab[1], 0);
	assert_int_equal(ab[2], m0[2]);
	assert_int_equal(f->d.n_ctrl, 1);
	assert_int_equal(f->d.ctrl_value, (uint16_t)(m0[2] << 8 | 0));
	/* the aborted command's late answer, slot 1's answer, then the abort's */
	sdev_push(&f->d, 0x80, 0, m0[2], 0, 0, "too-late");
	sdev_push(&f->d, 0x80, 1, m1[2], 0, 0, "long-ok");
	sdev_push(&f->d, 0x81, 0, m0[2], 0, 0, NULL);
	join(&c0);
	join(&c1);
	assert_int_equal(c0.st, SMC_ERR_TIMEOUT);
	assert_answer(&c1, "long-ok");
	assert_true(c0.ms < 2000);
	pthread_mutex_lock(&f->d.lock);
	assert_int_equal(f->d.qn, 0);
	pthread_mutex_unlock(&f->d.lock);
}

static void unplug_wakes_every_waiter(void **state)
{
	struct fixture *f = *state;
	struct call c0, c1;
	struct ccid_cmd cmd;
	struct ccid_answer a;

	start(&c0, &f->x, 0, 5000, "p");
	sdev_wait_sent(&f->d, 1);
	start(&c1, &f->x, 1, 5000, "q");
	sdev_wait_sent(&f->d, 2);
	sleep_ms(30);
	sdev_unplug(&f->d);
	join(&c0);
	join(&c1);
	assert_int_equal(c0.st, SMC_ERR_NO_DEVICE);
	assert_int_equal(c1.st, SMC_ERR_NO_DEVICE);
	assert_true(c0.ms < 1000);
	assert_true(c1.ms < 1000);
	assert_true(ccid_xfer_is_gone(&f->x));
	ccid_cmd_get_slot_status(&cmd, 1);
	assert_int_equal(ccid_xfer_transact(&f->x, &cmd, 100, NULL, 0, &a), SMC_ERR_NO_DEVICE);
}

/* One command per slot: a second call on a busy slot waits for the first. */
static void same_slot_commands_take_turns(void **state)
{
	struct fixture *f = *state;
	struct call c0, c0b;
	const uint8_t *m0, *m0b;

	start(&c0, &f->x, 0, 2000, "first");
	m0 = sdev_wait_sent(&f->d, 1);
	start(&c0b, &f->x, 0, 2000, "second");
	sleep_ms(100);
	assert_int_equal(sdev_sent(&f->d), 1);
	sdev_push(&f->d, 0x80, 0, m0[2], 0, 0, "r1");
	m0b = sdev_wait_sent(&f->d, 2);
	assert_int_equal(m0b[1], 0);
	assert_int_not_equal(m0b[2], m0[2]);
	sdev_push(&f->d, 0x80, 0, m0b[2], 0, 0, "r2");
	join(&c0);
	join(&c0b);
	assert_answer(&c0, "r1");
	assert_answer(&c0b, "r2");
}

/* A slot that stays busy bounds the wait of the next command to its timeout:
 * SMC_ERR_TIMEOUT without anything sent. */
static void wait_for_a_busy_slot_is_bounded(void **state)
{
	struct fixture *f = *state;
	struct call c0, c0b;
	const uint8_t *m0;

	start(&c0, &f->x, 0, 3000, "hold");
	m0 = sdev_wait_sent(&f->d, 1);
	start(&c0b, &f->x, 0, 150, "queued");
	join(&c0b);
	assert_int_equal(c0b.st, SMC_ERR_TIMEOUT);
	assert_true(c0b.ms < 1000);
	assert_int_equal(sdev_sent(&f->d), 1);
	sdev_push(&f->d, 0x80, 0, m0[2], 0, 0, "held");
	join(&c0);
	assert_answer(&c0, "held");
}

/* ---- many threads against an auto-answering device --------------------- */

struct worker {
	struct ccid_xfer *x;
	unsigned id, rounds;
	pthread_t thread;
	unsigned errors, wrong;
	smc_status first_error;
};

static void *worker_thread(void *arg)
{
	struct worker *w = arg;

	for (unsigned i = 0; i < w->rounds; i++) {
		for (uint8_t slot = 0; slot < 2; slot++) {
			uint8_t data[4] = { (uint8_t)w->id, slot, (uint8_t)i, (uint8_t)(i >> 8) };
			uint8_t out[16];
			struct ccid_answer a;
			struct ccid_cmd cmd;
			smc_status st;

			ccid_cmd_xfr_block(&cmd, slot, 0, 0, data, sizeof(data));
			st = ccid_xfer_transact(w->x, &cmd, 5000, out, sizeof(out), &a);
			if (st != SMC_OK) {
				if (w->errors++ == 0)
					w->first_error = st;
			} else if (a.hdr.bSlot != slot || a.hdr.dwLength != 4 ||
				   memcmp(out, data, 4) != 0) {
				w->wrong++;
			}
		}
	}
	return NULL;
}

static void run_workers(struct fixture *f, unsigned n, unsigned rounds)
{
	struct worker w[8];
	unsigned saved = smc_log_mask;

	smc_log_mask = SMC_LOG_CRITICAL; /* thousands of exchanges: errors only */
	f->d.auto_answer = true;
	f->d.shuffle = true;
	for (unsigned i = 0; i < n; i++) {
		w[i] = (struct worker){ .x = &f->x, .id = i, .rounds = rounds };
		assert_int_equal(pthread_create(&w[i].thread, NULL, worker_thread, &w[i]), 0);
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(w[i].thread, NULL);
	smc_log_mask = saved;
	for (unsigned i = 0; i < n; i++) {
		if (w[i].errors || w[i].wrong)
			fail_msg("thread %u: %u errors (first %s), %u wrong answers", i, w[i].errors,
				 smc_status_str(w[i].first_error), w[i].wrong);
	}
	assert_int_equal(f->d.n_sent, (size_t)n * rounds * 2);
	assert_int_equal(f->d.bad, 0);
	assert_int_equal(f->d.n_ctrl, 0);
}

static void four_threads_two_slots_500_each_without_error(void **state)
{
	struct fixture *f = *state;

	run_workers(f, 4, 500);
	assert_true(f->d.max_inflight_slot <= 1); /* never two commands on one slot */
	assert_int_equal(f->d.max_inflight_all, 2); /* the slots did overlap */
}

static void one_busy_slot_never_has_two_commands_in_flight(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(ccid_xfer_busy_slots(&f->x), 1);
	run_workers(f, 4, 100);
	assert_int_equal(f->d.max_inflight_all, 1);
}

/* ---- the whole driver against the virtual reader with two busy slots ---- */

static const char *const two_busy_kv[][2] = { { "slots", "2" }, { "busy-slots", "2" } };
static const char *const one_busy_kv[][2] = { { "slots", "2" }, { "busy-slots", "1" } };

struct apdu_worker {
	struct smc_ext *ext;
	unsigned id, rounds;
	pthread_t thread;
	unsigned errors, wrong;
	smc_status first_error;
};

/* 80 00 04 V Le: the applet answers Le bytes of value V (sim/README.md). */
static void *apdu_thread(void *arg)
{
	struct apdu_worker *w = arg;
	uint8_t reply[300];

	for (unsigned i = 0; i < w->rounds; i++) {
		uint8_t v = (uint8_t)(w->id * 16 + i);
		uint8_t n = (uint8_t)(1 + (i + w->id) % 64);
		uint8_t apdu[5] = { 0x80, 0x00, 0x04, v, n };
		size_t len = 0;
		smc_status st = smc_device_control(w->ext, SMC_REQ_TRANSMIT,
						   w->ext->card_caps.selected_protocol, apdu,
						   sizeof(apdu), reply, sizeof(reply), &len);
		bool ok = len == (size_t)n + 2 && reply[n] == 0x90 && reply[n + 1] == 0x00;

		for (unsigned k = 0; ok && k < n; k++)
			ok = reply[k] == v;
		if (st != SMC_OK) {
			if (w->errors++ == 0)
				w->first_error = st;
		} else if (!ok) {
			w->wrong++;
		}
	}
	return NULL;
}

/* A spy in front of the in-process transport: commands in flight as the
 * virtual reader sees them (sent, answer not yet read). */
static struct {
	pthread_mutex_t lock;
	const struct ccid_transport_ops *real;
	struct ccid_transport_ops ops;
	unsigned inflight[SDEV_SLOTS], all, max_all, max_slot, sent;
} spy = { .lock = PTHREAD_MUTEX_INITIALIZER };

static tp_status spy_send(struct ccid_transport *tp, const uint8_t *buf, size_t len,
			  unsigned timeout_ms)
{
	tp_status st = spy.real->send(tp, buf, len, timeout_ms);

	pthread_mutex_lock(&spy.lock);
	if (st == TP_OK && len >= 10 && buf[5] < SDEV_SLOTS && buf[0] != 0x72) {
		spy.sent++;
		spy.all++;
		if (++spy.inflight[buf[5]] > spy.max_slot)
			spy.max_slot = spy.inflight[buf[5]];
		if (spy.all > spy.max_all)
			spy.max_all = spy.all;
	}
	pthread_mutex_unlock(&spy.lock);
	return st;
}

static tp_status spy_receive(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
			     unsigned timeout_ms)
{
	tp_status st;
	bool linger;

	/* now and then, with one command in flight, a moment for another
	 * thread to send (the slots overlap even on a loaded machine) */
	pthread_mutex_lock(&spy.lock);
	linger = spy.all == 1 && spy.sent % 4 == 0;
	pthread_mutex_unlock(&spy.lock);
	if (linger)
		sleep_ms(1);
	st = spy.real->receive(tp, buf, cap, got, timeout_ms);

	/* without packet splitting a receive returns a whole answer; a time
	 * extension (bmCommandStatus 2) does not end its command */
	pthread_mutex_lock(&spy.lock);
	if (st == TP_OK && *got >= 10 && buf[5] < SDEV_SLOTS && (buf[7] >> 6) != 2 &&
	    spy.inflight[buf[5]] > 0) {
		spy.inflight[buf[5]]--;
		spy.all--;
	}
	pthread_mutex_unlock(&spy.lock);
	return st;
}

static void spy_wrap(struct ccid_transport *tp)
{
	spy.real = tp->ops;
	spy.ops = *tp->ops;
	spy.ops.send = spy_send;
	spy.ops.receive = spy_receive;
	tp->ops = &spy.ops;
}

static void driver_runs_apdus_on_two_slots_at_once(void **state)
{
	struct rig *r = rig_open_wrapped(two_busy_kv, 2, 0, spy_wrap);
	struct apdu_worker w[4];
	unsigned saved = smc_log_mask;

	(void)state;
	assert_int_equal(ccid_reader_slot_count(r->reader), 2);
	assert_int_equal(ccid_reader_busy_slots(r->reader), 2);
	for (unsigned s = 0; s < 2; s++) {
		r->ext = ccid_reader_slot(r->reader, s);
		rig_power(r);
		rig_protocol(r, s == 0 ? 1 : 2); /* T=0 on one slot, T=1 on the other */
		rig_select(r);
	}
	smc_log_mask = SMC_LOG_CRITICAL;
	for (unsigned i = 0; i < 4; i++) {
		w[i] = (struct apdu_worker){ .ext = ccid_reader_slot(r->reader, i % 2), .id = i,
					     .rounds = 500 };
		assert_int_equal(pthread_create(&w[i].thread, NULL, apdu_thread, &w[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(w[i].thread, NULL);
	smc_log_mask = saved;
	for (unsigned i = 0; i < 4; i++) {
		if (w[i].errors || w[i].wrong)
			fail_msg("thread %u (slot %u): %u errors (first %s), %u wrong answers", i,
				 i % 2, w[i].errors, smc_status_str(w[i].first_error), w[i].wrong);
	}
	assert_true(spy.sent >= 2000);
	assert_int_equal(spy.max_slot, 1); /* one command per slot */
	assert_int_equal(spy.max_all, 2);  /* and the two slots did overlap */
	rig_close(r);
}

static void reader_with_one_busy_slot_takes_turns(void **state)
{
	struct rig *r = rig_open(one_busy_kv, 2, 0);

	(void)state;
	assert_int_equal(ccid_reader_busy_slots(r->reader), 1);
	rig_close(r);
}

/* ---- the pcsc-lite boundary: TAG_IFD_SLOT_THREAD_SAFE ------------------------ */

static const char *const (*next_kv)[2];
static size_t next_n_kv;

/* usb_transport_open, as this program provides it: an in-process virtual
 * reader with next_kv's settings. */
tp_status usb_transport_open(const char *device_name, struct ccid_transport **out)
{
	struct vr_profile p;
	const char *why;

	(void)device_name;
	vr_profile_defaults(&p);
	for (size_t i = 0; i < next_n_kv; i++) {
		if (vr_profile_set(&p, next_kv[i][0], next_kv[i][1], &why) != 0)
			fail_msg("profile %s=%s refused: %s", next_kv[i][0], next_kv[i][1], why);
	}
	return inproc_transport_open(&p, out, NULL);
}

static int slot_thread_safe(const char *const kv[][2], size_t n_kv)
{
	char name[] = "usb:1209/5ccd:libusb-1.0:1:2:0";
	const DWORD lun = 0x30000;
	UCHAR v = 0xEE;
	DWORD len = 1;

	next_kv = kv;
	next_n_kv = n_kv;
	assert_int_equal(IFDHCreateChannelByName(lun, name), IFD_SUCCESS);
	assert_int_equal(IFDHGetCapabilities(lun, TAG_IFD_SLOT_THREAD_SAFE, &len, &v), IFD_SUCCESS);
	assert_int_equal(len, 1);
	assert_int_equal(IFDHCloseChannel(lun), IFD_SUCCESS);
	return v;
}

static void slot_thread_safe_follows_busy_slots(void **state)
{
	static const char *const single_kv[][2] = { { "slots", "1" } };
	UCHAR v = 0xEE;
	DWORD len = 1;

	(void)state;
	assert_int_equal(slot_thread_safe(two_busy_kv, 2), 1);
	assert_int_equal(slot_thread_safe(one_busy_kv, 2), 0);
	assert_int_equal(slot_thread_safe(single_kv, 1), 0);
	/* a Lun that is not open: the slots take turns */
	assert_int_equal(IFDHGetCapabilities(0x70000, TAG_IFD_SLOT_THREAD_SAFE, &len, &v),
			 IFD_SUCCESS);
	assert_int_equal(v, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(answers_out_of_order_reach_their_owners, setup_two, teardown),
		cmocka_unit_test_setup_teardown(both_answers_queued_in_reverse_order, setup_two, teardown),
		cmocka_unit_test_setup_teardown(time_extension_for_slot_0_while_slot_1_completes, setup_two, teardown),
		cmocka_unit_test_setup_teardown(time_extension_of_another_slot_does_not_extend, setup_two, teardown),
		cmocka_unit_test_setup_teardown(stale_answers_are_dropped_while_two_slots_wait, setup_two, teardown),
		cmocka_unit_test_setup_teardown(timeout_aborts_slot_0_while_slot_1_succeeds, setup_two, teardown),
		cmocka_unit_test_setup_teardown(unplug_wakes_every_waiter, setup_two, teardown),
		cmocka_unit_test_setup_teardown(same_slot_commands_take_turns, setup_two, teardown),
		cmocka_unit_test_setup_teardown(wait_for_a_busy_slot_is_bounded, setup_two, teardown),
		cmocka_unit_test_setup_teardown(four_threads_two_slots_500_each_without_error, setup_two, teardown),
		cmocka_unit_test_setup_teardown(one_busy_slot_never_has_two_commands_in_flight, setup_one, teardown),
		cmocka_unit_test(driver_runs_apdus_on_two_slots_at_once),
		cmocka_unit_test(reader_with_one_busy_slot_takes_turns),
		cmocka_unit_test(slot_thread_safe_follows_busy_slots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
