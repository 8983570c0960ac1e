/* Card tracking: the wait of SMC_REQ_WAIT_CHANGE and its cancel, smclib's
 * side of RDF_CARD_TRACKING (Windows: IOCTL_SMARTCARD_IS_PRESENT / IS_ABSENT
 * pended by the driver, finished with SmartcardCompleteCardTracking).
 *
 * A wait has two steps. Under the slot lock, smc_tracking_arm() (dispatch.c)
 * answers at once when the extension already shows the change, fails at once
 * while the last look at the slot failed (so that a caller that looks after
 * each change pauses instead of spinning), or asks the driver to arm
 * tracking; the driver completes it at once when it holds an event nobody
 * has looked at. Then, without the slot lock, the caller sleeps
 * here until the driver calls smc_complete_card_tracking(), the time runs
 * out, SMC_REQ_CANCEL_WAIT comes, or the extension is closed. Transmits and
 * the other requests of the slot go on meanwhile.
 *
 * One lock and one condition variable serve every slot of every reader: card
 * events come at the pace of hands, so waking all waiters costs nothing, and
 * nothing has to be set up or torn down per extension (smc_ext_init zeroes
 * ext->track, which is the idle state). Lock order: the slot lock, then the
 * driver's locks, then this one; nothing is called with this one held. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "smc_log.h"
#include "smclib_internal.h"

static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t track_cond;
static pthread_once_t track_once = PTHREAD_ONCE_INIT;

/* The condition variable runs on the monotonic clock, so that a change of
 * the wall clock neither ends a wait early nor stretches it. */
static void track_init(void)
{
	int err = smc_cond_init_monotonic(&track_cond);

	if (err != 0)
		log_critical("cannot set up the card event condition: %s", strerror(err));
}

static void track_enter(void)
{
	pthread_once(&track_once, track_init);
	pthread_mutex_lock(&track_lock);
}

int smc_cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int err = pthread_condattr_init(&attr);

	if (err != 0)
		return err;
	err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (err == 0)
		err = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return err;
}

void smc_deadline_after(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000u);
	ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Under track_lock: how the wait ends now, or SMC_MORE_PROCESSING if it goes
 * on. A cancel goes first and is taken, so that the next wait is a fresh one. */
static smc_status wait_outcome(struct smc_track *t, uint32_t snapshot)
{
	if (t->closed)
		return SMC_ERR_NO_DEVICE;
	if (t->cancel_pending) {
		t->cancel_pending = false;
		return SMC_ERR_CANCELLED;
	}
	if (t->completions != snapshot)
		return t->result;
	return SMC_MORE_PROCESSING;
}

/* Under track_lock: sleep until the outcome is known or the deadline passes. */
static smc_status sleep_for_outcome(struct smc_track *t, uint32_t snapshot, uint32_t timeout_ms)
{
	struct timespec deadline;
	smc_status st;
	int err = 0;

	smc_deadline_after(&deadline, timeout_ms);
	for (;;) {
		st = wait_outcome(t, snapshot);
		if (st != SMC_MORE_PROCESSING)
			return st;
		if (err == ETIMEDOUT)
			return SMC_ERR_TIMEOUT;
		err = pthread_cond_timedwait(&track_cond, &track_lock, &deadline);
		if (err != 0 && err != ETIMEDOUT) {
			log_critical("waiting for a card event failed: %s", strerror(err));
			return SMC_ERR_COMM;
		}
	}
}

/* Under track_lock: the wait is over for this thread. */
static void leave(struct smc_track *t)
{
	t->waiters--;
	pthread_cond_broadcast(&track_cond); /* smc_tracking_close waits for this */
}

smc_status smc_tracking_wait(struct smc_ext *ext, uint32_t timeout_ms)
{
	struct smc_track *t = &ext->track;
	uint32_t snapshot;
	bool holds = false;
	smc_status st;

	track_enter();
	st = wait_outcome(t, t->completions);
	if (st != SMC_MORE_PROCESSING) {
		pthread_mutex_unlock(&track_lock);
		log_info("card event wait: %s before it began", smc_status_str(st));
		return st;
	}
	snapshot = t->completions;
	t->waiters++;
	pthread_mutex_unlock(&track_lock);

	/* Any completion from here on, the arm's own included, ends the wait. */
	st = smc_tracking_arm(ext, &holds);

	pthread_mutex_lock(&track_lock);
	if (st == SMC_OK && !holds)
		st = sleep_for_outcome(t, snapshot, timeout_ms);
	leave(t);
	pthread_mutex_unlock(&track_lock);
	log_periodic("card event wait (%u ms): %s", timeout_ms, holds ? "change already there" :
		     smc_status_str(st));
	return st;
}

smc_status smc_tracking_cancel(struct smc_ext *ext)
{
	track_enter();
	ext->track.cancel_pending = true;
	pthread_cond_broadcast(&track_cond);
	pthread_mutex_unlock(&track_lock);
	log_info("card event wait cancelled");
	return SMC_OK;
}

void smc_complete_card_tracking(struct smc_ext *ext, smc_status status)
{
	if (ext == NULL)
		return;
	track_enter();
	ext->track.completions++;
	ext->track.result = status;
	pthread_cond_broadcast(&track_cond);
	pthread_mutex_unlock(&track_lock);
}

void smc_tracking_close(struct smc_ext *ext)
{
	if (ext == NULL)
		return;
	track_enter();
	ext->track.closed = true;
	pthread_cond_broadcast(&track_cond);
	while (ext->track.waiters > 0)
		pthread_cond_wait(&track_cond, &track_lock);
	pthread_mutex_unlock(&track_lock);
}
