/* Card events: the reader's interrupt pipe (CCID 1.1 6.3), read by one thread
 * for all the slots of the reader.
 *
 * pcscd runs one event thread per slot, but a reader has one interrupt IN
 * endpoint and the transport one wait on it at a time. So the pipe has a
 * single reader, this file's thread, started by the first tracking request
 * (RDF_CARD_TRACKING PRESENT or ABSENT) and joined when the reader closes.
 * It splits each RDR_to_PC_NotifySlotChange into the slots' two bits, keeps
 * per slot what no refresh has taken yet (ccid_slot_events), and completes
 * that slot's tracking wait in smclib. A refresh (GetSlotStatus) takes the
 * slot's events under the same lock, so an event is either taken by one
 * refresh or still pending for the next: none is lost, none seen twice.
 *
 * A card removed and another inserted between two looks shows as a removal
 * message then an insertion message, or, when the reader merged them, as a
 * change with the card still present (bit 1 set, bit 0 set). Both mark the
 * slot "removed": the refresh then takes the card in the slot for a new one. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "ccid_reader.h"
#include "smc_log.h"

/* 6.3.1 bmSlotICCState: two bits per slot, four slots a byte, slot 0 in the
 * low bits of the first byte after bMessageType. */
#define ICC_PRESENT_BIT 0x1u
#define ICC_CHANGED_BIT 0x2u
/* 6.3.2: bMessageType, bSlot, bSeq, bHardwareErrorCode */
#define HARDWARE_ERROR_LEN 4u
#define HW_ERROR_OVERCURRENT 0x01u

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

smc_status ccid_events_init(struct ccid_reader *r)
{
	struct ccid_events *ev = &r->events;
	int err;

	atomic_init(&ev->gone, false);
	err = pthread_mutex_init(&ev->lock, NULL);
	if (err != 0) {
		log_critical("cannot set up the card event lock: %s", strerror(err));
		return SMC_ERR_NO_MEMORY;
	}
	err = smc_cond_init_monotonic(&ev->cond);
	if (err != 0) {
		pthread_mutex_destroy(&ev->lock);
		log_critical("cannot set up the card event condition: %s", strerror(err));
		return SMC_ERR_NO_MEMORY;
	}
	ev->ready = true;
	return SMC_OK;
}

bool ccid_events_gone(const struct ccid_reader *r)
{
	return atomic_load(&r->events.gone);
}

/* ---- messages (6.3) ------------------------------------------------------- */

/* 1 + ceil(slots / 4) bytes */
static size_t notify_len(unsigned n_slots)
{
	return 1u + (n_slots + 3u) / 4u;
}

/* Under events.lock: one slot's two bits of a NotifySlotChange. The first
 * message about a slot tells which cards are in (readers send one when
 * configured, 6.3.1): a card found there then is no swap.
 *
 * Why not a swap: many readers set the "changed" bit of every occupied slot
 * in that first message, so taking it for a swap would report each card
 * present at start-up absent once for nothing. The price is a window: the
 * thread starts with the first tracking request, after pcscd's first looks,
 * and the reader's first message may describe changes made before it. A card
 * swapped between our first GetSlotStatus and that message (or a swap the
 * reader merged into it) is not marked removed here. When the first message
 * carries "changed" the slot is still marked pending, so the next refresh
 * looks: a card we had powered is then found inactive and taken for a new
 * one (ccid_track_icc). Missed are only a swap of a card not yet powered
 * (nothing of it to lose) and a swap on a reader that activates cards by
 * itself (found active, like the old one). */
static void slot_bits(struct ccid_reader *r, unsigned i, unsigned bits)
{
	struct ccid_slot_events *se = &r->slot_priv[i].ev;
	bool present = (bits & ICC_PRESENT_BIT) != 0, changed = (bits & ICC_CHANGED_BIT) != 0;
	bool was_known = se->known, was_present = se->present;
	bool left;

	se->known = true;
	se->present = present;
	/* a flip of bit 0 without bit 1 is a change all the same */
	if (!changed && (!was_known || present == was_present))
		return;
	left = !present || (was_known && was_present);
	se->removed |= left;
	se->pending = true;
	log_info("slot %u: card %s%s (interrupt)", i,
		 !was_known && present ? "in" : present ? "inserted" : "removed",
		 present && left ? " again: changed while present, taken as a new card" : "");
	smc_complete_card_tracking(&r->slots[i], SMC_OK);
}

static void notify_slot_change(struct ccid_reader *r, const uint8_t *msg, size_t len)
{
	size_t need = notify_len(r->n_slots);

	if (len < need) {
		log_critical("RDR_to_PC_NotifySlotChange of %zu byte(s): %u slot(s) need %zu; ignored", len,
			     r->n_slots, need);
		return;
	}
	if (len > need)
		log_info("RDR_to_PC_NotifySlotChange of %zu bytes, %zu expected: the rest is ignored", len,
			 need);
	log_periodic("RDR_to_PC_NotifySlotChange, slots 0-3: 0x%02X", msg[1]);
	pthread_mutex_lock(&r->events.lock);
	for (unsigned i = 0; i < r->n_slots; i++)
		slot_bits(r, i, (msg[1u + i / 4u] >> (2u * (i % 4u))) & 0x3u);
	pthread_mutex_unlock(&r->events.lock);
}

/* 6.3.2: the reader may have deactivated the card (overcurrent). The slot is
 * looked at again (a card found unpowered after we powered it is taken for
 * a new one by the refresh). */
static void hardware_error(struct ccid_reader *r, const uint8_t *msg, size_t len)
{
	unsigned slot;

	if (len != HARDWARE_ERROR_LEN) {
		log_critical("RDR_to_PC_HardwareError of %zu byte(s), %u expected: ignored", len,
			     HARDWARE_ERROR_LEN);
		return;
	}
	slot = msg[1];
	if (slot >= r->n_slots) {
		log_critical("RDR_to_PC_HardwareError for slot %u: the reader has %u; ignored", slot,
			     r->n_slots);
		return;
	}
	log_critical("slot %u: the reader reports hardware error 0x%02X%s (bSeq %u)", slot, msg[3],
		     msg[3] == HW_ERROR_OVERCURRENT ? " (overcurrent)" : "", msg[2]);
	pthread_mutex_lock(&r->events.lock);
	r->slot_priv[slot].ev.pending = true;
	smc_complete_card_tracking(&r->slots[slot], SMC_OK);
	pthread_mutex_unlock(&r->events.lock);
}

void ccid_events_message(struct ccid_reader *r, const uint8_t *msg, size_t len)
{
	if (len == 0)
		return; /* a zero-length packet carries nothing */
	switch (msg[0]) {
	case CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE:
		notify_slot_change(r, msg, len);
		return;
	case CCID_RDR_TO_PC_HARDWARE_ERROR:
		hardware_error(r, msg, len);
		return;
	}
	log_critical("interrupt message of type 0x%02X (%zu byte(s)) is none of CCID 6.3: ignored", msg[0],
		     len);
}

/* ---- the thread ------------------------------------------------------------ */

static bool stop_requested(struct ccid_events *ev)
{
	bool stop;

	pthread_mutex_lock(&ev->lock);
	stop = ev->stopping;
	pthread_mutex_unlock(&ev->lock);
	return stop;
}

/* A pause after a failed read, cut short by close. */
static void pause_ms(struct ccid_events *ev, unsigned ms)
{
	struct timespec ts;

	smc_deadline_after(&ts, ms);
	pthread_mutex_lock(&ev->lock);
	while (!ev->stopping && pthread_cond_timedwait(&ev->cond, &ev->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&ev->lock);
}

static void end_all_waits(struct ccid_reader *r, smc_status status)
{
	for (unsigned i = 0; i < r->n_slots; i++)
		smc_complete_card_tracking(&r->slots[i], status);
}

static void pipe_gone(struct ccid_reader *r)
{
	atomic_store(&r->events.gone, true);
	log_info("the interrupt pipe says the reader is gone");
	end_all_waits(r, SMC_ERR_NO_DEVICE);
}

/* The pipe kept failing: no more events from this reader. Tracking requests
 * fail from now on, and pcscd, whose polling function then fails, looks at
 * the presence itself every 400 ms. */
static void pipe_failed(struct ccid_reader *r, tp_status st, unsigned failures)
{
	pthread_mutex_lock(&r->events.lock);
	r->events.failed = true;
	pthread_mutex_unlock(&r->events.lock);
	log_critical("the interrupt pipe failed %u times in a row (last: %s): card events given up for "
		     "this reader, presence is polled instead", failures, tp_status_str(st));
	end_all_waits(r, SMC_ERR_COMM);
}

/* The pause after the n-th failed read in a row: doubling, within a bound. */
static unsigned pause_after(unsigned n)
{
	unsigned ms = CCID_EVENT_PAUSE_MS;

	while (--n > 0 && ms < CCID_EVENT_PAUSE_MAX_MS)
		ms *= 2u;
	return ms < CCID_EVENT_PAUSE_MAX_MS ? ms : CCID_EVENT_PAUSE_MAX_MS;
}

/* One read of the pipe. False when the thread must end. A timeout that comes
 * far too early counts as a failure, so that a transport that does not wait
 * cannot make this loop spin. */
static bool read_once(struct ccid_reader *r, unsigned *failures)
{
	struct ccid_transport *tp = r->tp;
	uint8_t buf[CCID_EVENT_MSG_MAX];
	uint64_t start = mono_ms();
	size_t got = 0;
	tp_status st = tp->ops->wait_interrupt(tp, buf, sizeof(buf), &got, CCID_EVENT_WAIT_MS);

	switch (st) {
	case TP_OK:
		*failures = 0;
		if (got > sizeof(buf))
			log_critical("the transport reports a %zu-byte interrupt message in a %zu-byte buffer: "
				     "ignored", got, sizeof(buf));
		else
			ccid_events_message(r, buf, got);
		return true;
	case TP_CANCELLED:
		return true; /* close, or a cancel left over: the loop looks */
	case TP_NO_DEVICE:
		pipe_gone(r);
		return false;
	case TP_TIMEOUT:
		if (mono_ms() - start >= CCID_EVENT_WAIT_MS / 2u) {
			*failures = 0;
			return true;
		}
		break;
	default:
		break;
	}
	if (++*failures >= CCID_EVENT_MAX_FAILURES) {
		pipe_failed(r, st, *failures);
		return false;
	}
	log_info("interrupt read: %s%s (%u in a row); trying again", tp_status_str(st),
		 st == TP_TIMEOUT ? " long before its time" : "", *failures);
	pause_ms(&r->events, pause_after(*failures));
	return true;
}

static void *event_thread(void *arg)
{
	struct ccid_reader *r = arg;
	unsigned failures = 0;

	log_info("card event thread started for %u slot(s)", r->n_slots);
	while (!stop_requested(&r->events) && read_once(r, &failures))
		;
	log_info("card event thread ends");
	return NULL;
}

/* Under events.lock. */
static smc_status start_thread(struct ccid_reader *r)
{
	struct ccid_events *ev = &r->events;
	int err;

	if (ev->started)
		return SMC_OK;
	err = pthread_create(&ev->thread, NULL, event_thread, r);
	if (err != 0) {
		log_critical("cannot start the card event thread: %s", strerror(err));
		return SMC_ERR_NO_MEMORY;
	}
	ev->started = true;
	return SMC_OK;
}

/* ---- tracking --------------------------------------------------------------- */

smc_status ccid_events_arm(struct smc_ext *ext)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	struct ccid_reader *r = s->reader;
	struct ccid_events *ev = &r->events;
	smc_status st;

	if (!r->tp->info.has_interrupt) {
		log_info("slot %u: the reader has no interrupt endpoint: no card events (poll the presence)",
			 s->index);
		return SMC_ERR_NOT_SUPPORTED;
	}
	if (ccid_reader_is_gone(r))
		return SMC_ERR_NO_DEVICE;
	pthread_mutex_lock(&ev->lock);
	if (ev->stopping)
		st = SMC_ERR_NO_DEVICE;
	else if (ev->failed)
		st = SMC_ERR_COMM;
	else
		st = start_thread(r);
	if (st == SMC_OK && s->ev.pending)
		smc_complete_card_tracking(ext, SMC_OK);
	pthread_mutex_unlock(&ev->lock);
	if (st == SMC_ERR_COMM)
		log_periodic("slot %u: card events were given up for this reader", s->index);
	return st;
}

bool ccid_events_take(struct smc_ext *ext)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	struct ccid_events *ev = &s->reader->events;
	bool removed;

	pthread_mutex_lock(&ev->lock);
	removed = s->ev.removed;
	s->ev.removed = false;
	s->ev.pending = false;
	pthread_mutex_unlock(&ev->lock);
	return removed;
}

/* The refresh failed: whatever it took is the next one's. The slot is marked
 * pending whether or not an event was taken: an insertion or a HardwareError
 * carries no "removed", and dropping it would leave a card in the slot with
 * nothing to end the next wait. A pending mark with no event behind it costs
 * one look at most, and cannot make the caller spin: while the last look
 * failed, smclib refuses the wait before it reaches ccid_events_arm (struct
 * smc_track, last_look), and the next look that works takes the mark. A
 * removal the thread recorded meanwhile stays recorded. */
void ccid_events_give_back(struct smc_ext *ext, bool removed)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	struct ccid_events *ev = &s->reader->events;

	pthread_mutex_lock(&ev->lock);
	if (removed)
		s->ev.removed = true;
	s->ev.pending = true;
	pthread_mutex_unlock(&ev->lock);
}

void ccid_events_shutdown(struct ccid_reader *r)
{
	struct ccid_events *ev = &r->events;
	bool started;

	if (!ev->ready)
		return;
	/* no tracking wait may outlive the extensions */
	for (unsigned i = 0; i < r->n_slots; i++)
		smc_tracking_close(&r->slots[i]);
	pthread_mutex_lock(&ev->lock);
	ev->stopping = true;
	started = ev->started;
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
	if (started) {
		/* remembered if the thread is not in its wait yet (ccid_transport.h) */
		r->tp->ops->cancel(r->tp);
		pthread_join(ev->thread, NULL);
		ev->started = false;
	}
	pthread_cond_destroy(&ev->cond);
	pthread_mutex_destroy(&ev->lock);
	ev->ready = false;
}
