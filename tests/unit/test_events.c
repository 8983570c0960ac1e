/* Card events: the interrupt pipe of the in-process virtual reader, read by
 * the driver's event thread, seen through smclib's tracking requests (the
 * rig) and through pcscd's polling and stop functions (ifdhandler.c, with
 * usb_transport_open defined below to hand out in-process readers).
 *
 * Waits are real (threads and condition variables), so the tests measure
 * time: an event must end a wait well within 100 ms, a stop at once, a
 * timeout no sooner than asked. The measured latencies are printed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ifdhandler.h>
#include <reader.h>

#include "ccid/ccid_reader.h"
#include "rig.h"
#include "time_util.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#else
#define HAVE_LSAN 0
#endif

/* An event must end a wait within this (issue 5: pcscd sees it within 100 ms). */
#define EVENT_BOUND_US 100000u
/* How long a test lets a thread reach its wait before acting. */
#define SETTLE_MS 40u
/* Waits that must not end by themselves during a test. */
#define LONG_WAIT_MS 20000u

/* The worst latency seen, for the summary line. */
static uint64_t worst_us;

static void note_latency(const char *what, uint64_t us)
{
	print_message("%s: %llu us\n", what, (unsigned long long)us);
	if (us > worst_us)
		worst_us = us;
	assert_true(us < EVENT_BOUND_US);
}

/* ---- smclib requests ------------------------------------------------------- */

/* IS_PRESENT as pcscd's IFDHICCPresence asks it: a report. */
static smc_status is_present(struct smc_ext *ext)
{
	return smc_device_control(ext, SMC_REQ_IS_PRESENT, SMC_PRESENCE_REPORT, NULL, 0, NULL, 0, NULL);
}

static smc_status look(struct smc_ext *ext)
{
	return smc_device_control(ext, SMC_REQ_IS_PRESENT, SMC_PRESENCE_LOOK, NULL, 0, NULL, 0, NULL);
}

static smc_status wait_change(struct smc_ext *ext, uint32_t timeout_ms)
{
	return smc_device_control(ext, SMC_REQ_WAIT_CHANGE, timeout_ms, NULL, 0, NULL, 0, NULL);
}

static smc_status cancel_wait(struct smc_ext *ext)
{
	return smc_device_control(ext, SMC_REQ_CANCEL_WAIT, 0, NULL, 0, NULL, 0, NULL);
}

/* A thread in SMC_REQ_WAIT_CHANGE. */
struct waiter {
	struct smc_ext *ext;
	uint32_t timeout_ms;
	pthread_t thread;
	atomic_bool done;
	smc_status st;
	uint64_t end_us;
};

static void *waiter_run(void *arg)
{
	struct waiter *w = arg;

	w->st = wait_change(w->ext, w->timeout_ms);
	w->end_us = now_us();
	atomic_store(&w->done, true);
	return NULL;
}

/* Start a waiter and give it time to reach its wait; it must still be there. */
static void waiter_start(struct waiter *w, struct smc_ext *ext, uint32_t timeout_ms)
{
	memset(w, 0, sizeof(*w));
	w->ext = ext;
	w->timeout_ms = timeout_ms;
	atomic_init(&w->done, false);
	assert_int_equal(pthread_create(&w->thread, NULL, waiter_run, w), 0);
	sleep_ms(SETTLE_MS);
	assert_false(atomic_load(&w->done));
}

static smc_status waiter_join(struct waiter *w)
{
	assert_int_equal(pthread_join(w->thread, NULL), 0);
	return w->st;
}

/* The first look at a slot, as pcscd takes it: IS_PRESENT, then a wait that
 * starts the event thread. A reader with cards in sends one NotifySlotChange
 * when it starts (CCID 1.1 6.3.1): that first message ends the first wait
 * (the caller looks again and finds nothing new), so it is taken here. */
static void first_look(struct smc_ext *ext, bool card_in)
{
	assert_int_equal(is_present(ext), card_in ? SMC_OK : SMC_ERR_NO_MEDIA);
	if (card_in) {
		assert_int_equal(wait_change(ext, 2000), SMC_OK);
		assert_int_equal(is_present(ext), SMC_OK);
	} else {
		assert_int_equal(wait_change(ext, 1), SMC_ERR_TIMEOUT);
	}
}

/* The same for the two slots of a reader with both cards in: both look
 * first, then each wait ends on the slot's part of the first message. */
static void first_look_two(struct smc_ext *ext0, struct smc_ext *ext1)
{
	assert_int_equal(is_present(ext0), SMC_OK);
	assert_int_equal(is_present(ext1), SMC_OK);
	assert_int_equal(wait_change(ext0, 2000), SMC_OK);
	assert_int_equal(wait_change(ext1, 2000), SMC_OK);
	assert_int_equal(is_present(ext0), SMC_OK);
	assert_int_equal(is_present(ext1), SMC_OK);
}

static enum smc_card_state state_of(const struct smc_ext *ext)
{
	return ext->reader_caps.current_state;
}

static const char *const no_card_kv[][2] = { { "card", "no" } };

/* ---- a wait ends on an event ------------------------------------------------ */

static void insertion_ends_the_wait_within_100_ms(void **state)
{
	struct rig *r = rig_open(no_card_kv, 1, 0);
	struct waiter w;
	uint64_t t0;

	(void)state;
	assert_true(r->ext->reader_caps.card_events);
	first_look(r->ext, false);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	t0 = now_us();
	inproc_insert_card(r->tp, 0);
	assert_int_equal(waiter_join(&w), SMC_OK);
	note_latency("insertion to the end of the wait", w.end_us - t0);
	assert_int_equal(is_present(r->ext), SMC_OK);
	rig_power(r);
	rig_close(r);
}

static void removal_ends_the_wait_within_100_ms(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	struct waiter w;
	uint64_t t0;

	(void)state;
	first_look(r->ext, true);
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T1);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	t0 = now_us();
	inproc_remove_card(r->tp, 0);
	assert_int_equal(waiter_join(&w), SMC_OK);
	note_latency("removal to the end of the wait", w.end_us - t0);
	assert_int_equal(is_present(r->ext), SMC_ERR_NO_MEDIA);
	assert_int_equal(state_of(r->ext), SMC_STATE_ABSENT);
	assert_int_equal(r->ext->card_caps.atr_len, 0);
	rig_close(r);
}

/* Events of one slot, however many, end one wait; the refresh takes them, and
 * the next wait waits for the next event. */
static void events_are_taken_by_the_next_look_not_seen_twice(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	struct waiter w;

	(void)state;
	first_look(r->ext, true);
	inproc_remove_card(r->tp, 0);
	inproc_insert_card(r->tp, 0);
	inproc_remove_card(r->tp, 0);
	assert_int_equal(wait_change(r->ext, LONG_WAIT_MS), SMC_OK);
	sleep_ms(SETTLE_MS); /* the thread has read all three messages */
	assert_int_equal(is_present(r->ext), SMC_ERR_NO_MEDIA);
	assert_int_equal(wait_change(r->ext, 30), SMC_ERR_TIMEOUT);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	inproc_insert_card(r->tp, 0);
	assert_int_equal(waiter_join(&w), SMC_OK);
	assert_int_equal(is_present(r->ext), SMC_OK);
	rig_close(r);
}

/* ---- timeout, cancel ----------------------------------------------------------- */

static void wait_without_event_times_out_no_sooner_than_asked(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	uint64_t t0, took;

	(void)state;
	first_look(r->ext, true);
	t0 = now_us();
	assert_int_equal(wait_change(r->ext, 60), SMC_ERR_TIMEOUT);
	took = now_us() - t0;
	assert_true(took >= 60000u);
	assert_true(took < 60000u + EVENT_BOUND_US);
	/* a timeout of 0 only looks */
	t0 = now_us();
	assert_int_equal(wait_change(r->ext, 0), SMC_ERR_TIMEOUT);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	rig_close(r);
}

static void cancel_ends_the_wait_and_the_next_one_waits_again(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	struct waiter w;
	uint64_t t0;

	(void)state;
	first_look(r->ext, true);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	t0 = now_us();
	assert_int_equal(cancel_wait(r->ext), SMC_OK);
	assert_int_equal(waiter_join(&w), SMC_ERR_CANCELLED);
	note_latency("cancel to the end of the wait", w.end_us - t0);
	/* restartable: the cancel was taken, the next wait waits */
	assert_int_equal(wait_change(r->ext, 30), SMC_ERR_TIMEOUT);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	inproc_remove_card(r->tp, 0);
	assert_int_equal(waiter_join(&w), SMC_OK);
	rig_close(r);
}

/* pcscd may call its stop function while its thread is not in the polling
 * function yet: the next wait ends at once, the one after waits. */
static void cancel_before_the_wait_is_not_lost(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	uint64_t t0;

	(void)state;
	first_look(r->ext, true);
	assert_int_equal(cancel_wait(r->ext), SMC_OK);
	t0 = now_us();
	assert_int_equal(wait_change(r->ext, LONG_WAIT_MS), SMC_ERR_CANCELLED);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	assert_int_equal(wait_change(r->ext, 30), SMC_ERR_TIMEOUT);
	rig_close(r);
}

/* The wait holds no slot lock: APDUs go on while it waits. */
static void apdus_run_while_a_wait_is_pending(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	struct waiter w;

	(void)state;
	first_look(r->ext, true);
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T1);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	rig_select(r);
	rig_send_counting_all(r);
	assert_false(atomic_load(&w.done));
	cancel_wait(r->ext);
	assert_int_equal(waiter_join(&w), SMC_ERR_CANCELLED);
	rig_close(r);
}

/* ---- swaps ------------------------------------------------------------------------ */

/* Removed and inserted between two looks: the first look after reports the
 * card absent once (the old card went), the wait that follows ends at once,
 * and the next look reports the new card, unpowered. */
static void quick_swap_between_two_looks_is_a_new_card(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	struct waiter w;

	(void)state;
	first_look(r->ext, true);
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T1);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	inproc_remove_card(r->tp, 0);
	inproc_insert_card(r->tp, 0);
	assert_int_equal(waiter_join(&w), SMC_OK);
	assert_int_equal(is_present(r->ext), SMC_ERR_NO_MEDIA);
	assert_int_equal(state_of(r->ext), SMC_STATE_PRESENT);
	assert_int_equal(r->ext->card_caps.atr_len, 0);
	assert_int_equal(r->ext->card_caps.selected_protocol, 0);
	assert_int_equal(wait_change(r->ext, LONG_WAIT_MS), SMC_OK);
	sleep_ms(SETTLE_MS); /* the insertion message, if not read yet */
	assert_int_equal(is_present(r->ext), SMC_OK);
	/* nothing more to report: the next wait waits */
	assert_int_equal(wait_change(r->ext, 30), SMC_ERR_TIMEOUT);
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T0);
	rig_select(r);
	rig_close(r);
}

static const uint8_t notify_present[] = { 0x50, 0x01 };      /* slot 0: present */
static const uint8_t notify_changed[] = { 0x50, 0x03 };      /* slot 0: present, changed */

/* A reader that merges the removal and the insertion into one message: the
 * "changed" bit with "present" still set. The thread is not running here:
 * the messages go straight to the dispatcher. */
static void change_with_card_still_present_is_a_new_card(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);

	(void)state;
	assert_int_equal(is_present(r->ext), SMC_OK);
	rig_power(r);
	ccid_events_message(r->reader, notify_present, sizeof(notify_present));
	assert_false(ccid_slot_of(r->ext)->ev.pending); /* nothing changed */
	ccid_events_message(r->reader, notify_changed, sizeof(notify_changed));
	assert_true(ccid_slot_of(r->ext)->ev.pending);
	assert_int_equal(is_present(r->ext), SMC_ERR_NO_MEDIA);
	assert_int_equal(state_of(r->ext), SMC_STATE_PRESENT);
	assert_int_equal(r->ext->card_caps.atr_len, 0);
	assert_int_equal(is_present(r->ext), SMC_OK);
	assert_int_equal(is_present(r->ext), SMC_OK);
	rig_close(r);
}

/* A look (not a report) just says a card is in, and leaves the report of
 * the swap to the next report. */
static void look_after_a_swap_says_a_card_is_in(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);

	(void)state;
	assert_int_equal(is_present(r->ext), SMC_OK);
	ccid_events_message(r->reader, notify_present, sizeof(notify_present));
	ccid_events_message(r->reader, notify_changed, sizeof(notify_changed));
	assert_int_equal(look(r->ext), SMC_OK);
	assert_int_equal(look(r->ext), SMC_OK);
	assert_int_equal(is_present(r->ext), SMC_ERR_NO_MEDIA);
	assert_int_equal(is_present(r->ext), SMC_OK);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_IS_PRESENT, 2, NULL, 0, NULL, 0, NULL),
			 SMC_ERR_INVALID_PARAM);
	rig_close(r);
}

/* The first message about a slot tells which cards are in (the reader sends
 * it when it starts): no swap, however its "changed" bit reads. */
static void first_message_with_card_present_is_no_swap(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);

	(void)state;
	assert_int_equal(is_present(r->ext), SMC_OK);
	ccid_events_message(r->reader, notify_changed, sizeof(notify_changed));
	assert_int_equal(is_present(r->ext), SMC_OK);
	rig_close(r);
}

/* Without an interrupt endpoint the only sign of a swap is a card that we
 * powered and that is found inactive: the same report, absent once. */
static void swap_without_interrupt_endpoint_seen_by_polling(void **state)
{
	static const char *const kv[][2] = { { "interrupt", "no" } };
	struct rig *r = rig_open(kv, 1, 0);

	(void)state;
	assert_false(r->ext->reader_caps.card_events);
	assert_int_equal(is_present(r->ext), SMC_OK);
	assert_int_equal(wait_change(r->ext, 10), SMC_ERR_NOT_SUPPORTED);
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T1);
	assert_int_equal(is_present(r->ext), SMC_OK);
	inproc_remove_card(r->tp, 0);
	inproc_insert_card(r->tp, 0);
	assert_int_equal(is_present(r->ext), SMC_ERR_NO_MEDIA);
	assert_int_equal(state_of(r->ext), SMC_STATE_PRESENT);
	assert_int_equal(is_present(r->ext), SMC_OK);
	assert_int_equal(is_present(r->ext), SMC_OK);
	rig_close(r);
}

/* ---- malformed messages ------------------------------------------------------------- */

static void malformed_interrupt_messages_are_ignored(void **state)
{
	static const char *const kv[][2] = { { "slots", "2" } };
	static const struct {
		uint8_t bytes[8];
		size_t len;
	} bad[] = {
		{ { 0x50 }, 1 },                     /* NotifySlotChange without its bitmap */
		{ { 0x51, 0x00, 0x00 }, 3 },         /* HardwareError too short */
		{ { 0x51, 0x00, 0x00, 0x01, 0x00 }, 5 }, /* and too long */
		{ { 0x51, 0x02, 0x00, 0x01 }, 4 },   /* for a slot the reader lacks */
		{ { 0x51, 0xFF, 0x00, 0x01 }, 4 },
		{ { 0x52, 0x0F }, 2 },               /* no such interrupt message */
		{ { 0x81, 0x00, 0x00, 0x00 }, 4 },   /* a bulk message type */
		{ { 0x00 }, 0 },                     /* zero-length packet */
	};
	struct rig *r = rig_open(kv, 1, 0);
	struct smc_ext *ext1 = ccid_reader_slot(r->reader, 1);
	static const uint8_t hw_error[] = { 0x51, 0x01, 0x07, 0x01 };

	(void)state;
	assert_int_equal(is_present(r->ext), SMC_OK);
	assert_int_equal(is_present(ext1), SMC_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ccid_events_message(r->reader, bad[i].bytes, bad[i].len);
		assert_false(ccid_slot_of(r->ext)->ev.pending);
		assert_false(ccid_slot_of(ext1)->ev.pending);
	}
	/* a well-formed HardwareError for slot 1: slot 1 looks again, nothing else */
	ccid_events_message(r->reader, hw_error, sizeof(hw_error));
	assert_false(ccid_slot_of(r->ext)->ev.pending);
	assert_true(ccid_slot_of(ext1)->ev.pending);
	assert_false(ccid_slot_of(ext1)->ev.removed);
	assert_int_equal(is_present(ext1), SMC_OK);
	assert_false(ccid_slot_of(ext1)->ev.pending);
	assert_int_equal(is_present(r->ext), SMC_OK);
	rig_close(r);
}

static void hardware_error_ends_the_wait(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	struct waiter w;

	(void)state;
	first_look(r->ext, true);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	inproc_hardware_error(r->tp, 0);
	assert_int_equal(waiter_join(&w), SMC_OK);
	assert_int_equal(is_present(r->ext), SMC_OK);
	rig_close(r);
}

/* ---- two slots -------------------------------------------------------------------- */

static void two_slots_get_their_own_events(void **state)
{
	static const char *const kv[][2] = { { "slots", "2" }, { "busy-slots", "2" } };
	struct rig *r = rig_open(kv, 2, 0);
	struct smc_ext *ext0 = r->ext, *ext1 = ccid_reader_slot(r->reader, 1);
	struct waiter w0, w1;
	uint64_t t0;

	(void)state;
	first_look_two(ext0, ext1);
	waiter_start(&w0, ext0, LONG_WAIT_MS);
	waiter_start(&w1, ext1, LONG_WAIT_MS);
	t0 = now_us();
	inproc_remove_card(r->tp, 1);
	assert_int_equal(waiter_join(&w1), SMC_OK);
	note_latency("slot 1 removal to the end of slot 1's wait", w1.end_us - t0);
	sleep_ms(SETTLE_MS);
	assert_false(atomic_load(&w0.done)); /* slot 0 saw nothing */
	assert_int_equal(is_present(ext1), SMC_ERR_NO_MEDIA);
	/* an event of slot 1 while nobody waits on it is kept for its next wait */
	inproc_insert_card(r->tp, 1);
	sleep_ms(SETTLE_MS);
	assert_false(atomic_load(&w0.done));
	assert_int_equal(wait_change(ext1, LONG_WAIT_MS), SMC_OK);
	assert_int_equal(is_present(ext1), SMC_OK);
	t0 = now_us();
	inproc_remove_card(r->tp, 0);
	assert_int_equal(waiter_join(&w0), SMC_OK);
	note_latency("slot 0 removal to the end of slot 0's wait", w0.end_us - t0);
	assert_int_equal(is_present(ext0), SMC_ERR_NO_MEDIA);
	assert_int_equal(wait_change(ext1, 30), SMC_ERR_TIMEOUT);
	rig_close(r);
}

/* ---- the reader goes away ----------------------------------------------------------- */

static void unplug_ends_the_wait_with_no_device(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	struct waiter w;
	uint64_t t0;

	(void)state;
	first_look(r->ext, true);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	t0 = now_us();
	inproc_unplug(r->tp);
	assert_int_equal(waiter_join(&w), SMC_ERR_NO_DEVICE);
	note_latency("unplug to the end of the wait", w.end_us - t0);
	assert_true(ccid_reader_is_gone(r->reader));
	/* every later wait ends at once */
	t0 = now_us();
	assert_int_equal(wait_change(r->ext, LONG_WAIT_MS), SMC_ERR_NO_DEVICE);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	rig_close(r);
}

/* A transport whose interrupt wait does not wait (it times out at once, as a
 * broken one might): the thread does not spin; after a bounded number of
 * tries, with pauses, card events are given up for the reader, waits fail at
 * once (pcscd then polls the presence), and presence still works. */
static struct ccid_transport_ops spy_ops;
static atomic_uint spy_waits;

static tp_status wait_times_out_at_once(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
					unsigned timeout_ms)
{
	(void)tp;
	(void)buf;
	(void)cap;
	(void)timeout_ms;
	*got = 0;
	atomic_fetch_add(&spy_waits, 1);
	return TP_TIMEOUT;
}

static void wrap_broken_interrupt(struct ccid_transport *tp)
{
	spy_ops = *tp->ops;
	spy_ops.wait_interrupt = wait_times_out_at_once;
	tp->ops = &spy_ops;
}

static void broken_interrupt_pipe_is_given_up_after_bounded_tries(void **state)
{
	struct rig *r = rig_open_wrapped(NULL, 0, 0, wrap_broken_interrupt);
	uint64_t t0;

	(void)state;
	atomic_store(&spy_waits, 0);
	assert_int_equal(is_present(r->ext), SMC_OK);
	t0 = now_us();
	assert_int_equal(wait_change(r->ext, LONG_WAIT_MS), SMC_ERR_COMM);
	print_message("events given up after %u tries, %llu ms\n", atomic_load(&spy_waits),
		      (unsigned long long)(now_us() - t0) / 1000u);
	assert_int_equal(atomic_load(&spy_waits), CCID_EVENT_MAX_FAILURES);
	assert_true(now_us() - t0 < 8000000u);
	t0 = now_us();
	assert_int_equal(wait_change(r->ext, LONG_WAIT_MS), SMC_ERR_COMM);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	assert_int_equal(atomic_load(&spy_waits), CCID_EVENT_MAX_FAILURES);
	inproc_remove_card(r->tp, 0);
	assert_int_equal(is_present(r->ext), SMC_ERR_NO_MEDIA);
	rig_close(r);
}

/* ---- a reader that does not answer GetSlotStatus ------------------------------------------ */

/* pcscd's event thread calls IFDHICCPresence, then the polling function, and
 * pauses 400 ms only when the polling function fails. A wait that ends at
 * once while the look before it failed sends it round at full speed. The spy
 * fails GetSlotStatus at the bulk OUT while status_fails > 0 (STATUS_FAIL_ALL:
 * every one), as a reader that fails fast would. */
#define STATUS_FAIL_ALL 0xFFFFFFFFu
/* the pause of the loops below after a failed wait (pcscd's is 400 ms) */
#define PAUSE_MS 50u
#define LOOP_MS 300u
/* what that pause allows in LOOP_MS, with room for slow sanitizer runs */
#define MAX_ROUNDS (LOOP_MS / PAUSE_MS + 4u)

static struct ccid_transport_ops status_spy_ops;
static tp_status (*status_real_send)(struct ccid_transport *, const uint8_t *, size_t, unsigned);
static atomic_uint status_fails;
static atomic_uint status_sends;

static tp_status send_failing_status(struct ccid_transport *tp, const uint8_t *buf, size_t len,
				     unsigned timeout_ms)
{
	unsigned left;

	if (len > 0 && buf[0] == CCID_PC_TO_RDR_GET_SLOT_STATUS) {
		atomic_fetch_add(&status_sends, 1);
		left = atomic_load(&status_fails);
		if (left > 0) {
			if (left != STATUS_FAIL_ALL)
				atomic_store(&status_fails, left - 1);
			return TP_IO_ERROR;
		}
	}
	return status_real_send(tp, buf, len, timeout_ms);
}

static void wrap_failing_status(struct ccid_transport *tp)
{
	atomic_store(&status_fails, 0);
	atomic_store(&status_sends, 0);
	status_spy_ops = *tp->ops;
	status_real_send = status_spy_ops.send;
	status_spy_ops.send = send_failing_status;
	tp->ops = &status_spy_ops;
}

/* pcscd's loop at smclib level for LOOP_MS: a presence report, then a wait
 * with pcscd's timeout (10 minutes), and a pause when the wait fails. Every
 * wait must fail, and at once. Returns the rounds. */
static unsigned pcscd_loop_while_status_fails(struct smc_ext *ext)
{
	uint64_t end = now_us() + LOOP_MS * 1000u, t0;
	unsigned rounds = 0;

	while (now_us() < end && rounds <= MAX_ROUNDS) {
		assert_int_equal(is_present(ext), SMC_ERR_COMM);
		t0 = now_us();
		assert_int_equal(wait_change(ext, 600000), SMC_ERR_COMM);
		assert_true(now_us() - t0 < EVENT_BOUND_US);
		rounds++;
		sleep_ms(PAUSE_MS);
	}
	print_message("rounds of pcscd's loop in %u ms: %u, GetSlotStatus sent %u\n", LOOP_MS, rounds,
		      atomic_load(&status_sends));
	assert_true(rounds <= MAX_ROUNDS);
	return rounds;
}

/* The very first look fails: the state stays UNKNOWN, which must not pass
 * for "a card may be in" (the wait used to end at once, for ever). Once
 * GetSlotStatus works again, so do the looks and the waits. */
static void wait_fails_at_once_while_the_first_look_fails(void **state)
{
	struct rig *r = rig_open_wrapped(NULL, 0, 0, wrap_failing_status);

	(void)state;
	atomic_store(&status_fails, STATUS_FAIL_ALL);
	pcscd_loop_while_status_fails(r->ext);
	assert_int_equal(state_of(r->ext), SMC_STATE_UNKNOWN);
	atomic_store(&status_fails, 0);
	first_look(r->ext, true);
	assert_int_equal(wait_change(r->ext, 30), SMC_ERR_TIMEOUT);
	rig_close(r);
}

/* The interrupt pipe reports a removal, and the looks that should take it
 * fail: the removal is kept for the look that works, and meanwhile every
 * wait fails at once (it used to end at once with success, for ever). */
static void wait_fails_at_once_while_the_look_after_a_removal_fails(void **state)
{
	struct rig *r = rig_open_wrapped(NULL, 0, 0, wrap_failing_status);
	struct waiter w;

	(void)state;
	first_look(r->ext, true);
	rig_power(r);
	atomic_store(&status_fails, STATUS_FAIL_ALL);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	inproc_remove_card(r->tp, 0);
	assert_int_equal(waiter_join(&w), SMC_OK);
	pcscd_loop_while_status_fails(r->ext);
	atomic_store(&status_fails, 0);
	assert_int_equal(is_present(r->ext), SMC_ERR_NO_MEDIA);
	assert_int_equal(state_of(r->ext), SMC_STATE_ABSENT);
	assert_int_equal(wait_change(r->ext, 30), SMC_ERR_TIMEOUT); /* taken once */
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	inproc_insert_card(r->tp, 0);
	assert_int_equal(waiter_join(&w), SMC_OK);
	assert_int_equal(is_present(r->ext), SMC_OK);
	rig_close(r);
}

/* An insertion, or a HardwareError, taken by a look that then failed stays
 * the slot's for the next look (it used to be dropped: only a removal was
 * given back). The wait in between fails at once, so pcscd pauses and looks
 * again, rather than sleeping its whole timeout with a card in the slot. */
static void event_taken_by_a_failed_look_is_kept_for_the_next(void **state)
{
	static const uint8_t hw_error[] = { 0x51, 0x00, 0x09, 0x01 };
	struct rig *r = rig_open_wrapped(no_card_kv, 1, 0, wrap_failing_status);
	struct ccid_slot *slot = ccid_slot_of(r->ext);
	uint64_t t0;

	(void)state;
	first_look(r->ext, false);
	inproc_insert_card(r->tp, 0);
	assert_int_equal(wait_change(r->ext, LONG_WAIT_MS), SMC_OK);
	atomic_store(&status_fails, 1);
	assert_int_equal(is_present(r->ext), SMC_ERR_COMM);
	assert_true(slot->ev.pending); /* the insertion, for the next look */
	t0 = now_us();
	assert_int_equal(wait_change(r->ext, LONG_WAIT_MS), SMC_ERR_COMM);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	assert_int_equal(is_present(r->ext), SMC_OK);
	assert_false(slot->ev.pending);
	assert_int_equal(wait_change(r->ext, 30), SMC_ERR_TIMEOUT);

	/* a HardwareError: no card left, but the slot must be looked at */
	ccid_events_message(r->reader, hw_error, sizeof(hw_error));
	assert_true(slot->ev.pending);
	atomic_store(&status_fails, 1);
	assert_int_equal(is_present(r->ext), SMC_ERR_COMM);
	assert_true(slot->ev.pending);
	assert_false(slot->ev.removed);
	assert_int_equal(wait_change(r->ext, LONG_WAIT_MS), SMC_ERR_COMM);
	assert_int_equal(is_present(r->ext), SMC_OK);
	assert_false(slot->ev.pending);
	assert_int_equal(wait_change(r->ext, 30), SMC_ERR_TIMEOUT);
	rig_close(r);
}

/* ccid_reader_close with a thread in its wait: the wait ends, close returns,
 * the event thread is joined (ASan's leak check at exit sees no thread). */
static void close_while_waiting_ends_the_wait(void **state)
{
	struct rig *r = rig_open(NULL, 0, 0);
	struct waiter w;
	uint64_t t0;

	(void)state;
	first_look(r->ext, true);
	waiter_start(&w, r->ext, LONG_WAIT_MS);
	t0 = now_us();
	rig_close(r);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	assert_int_equal(waiter_join(&w), SMC_ERR_NO_DEVICE);
}

/* ---- through pcscd's boundary ------------------------------------------------------------ */

typedef RESPONSECODE (*poll_fn)(DWORD Lun, int timeout);
typedef RESPONSECODE (*stop_fn)(DWORD Lun);

/* usb_transport_open, as this program provides it: the next reader opened
 * gets these profile settings. */
static const char *const (*next_kv)[2];
static size_t next_n_kv;
/* and this spy in front of its transport, if set (taken by the open) */
static void (*next_wrap)(struct ccid_transport *tp);
static struct ccid_transport *last_tp;

tp_status usb_transport_open(const char *device_name, struct ccid_transport **out)
{
	struct vr_profile p;
	const char *why;
	tp_status st;

	(void)device_name;
	vr_profile_defaults(&p);
	for (size_t i = 0; i < next_n_kv; i++) {
		if (vr_profile_set(&p, next_kv[i][0], next_kv[i][1], &why) != 0)
			fail_msg("profile %s=%s refused: %s", next_kv[i][0], next_kv[i][1], why);
	}
	st = inproc_transport_open(&p, out, NULL);
	if (st == TP_OK && next_wrap != NULL)
		next_wrap(*out);
	next_wrap = NULL;
	last_tp = *out;
	return st;
}

#define NAME "usb:1209/5ccd:libusb-1.0:1:2:0"

static struct ccid_transport *open_lun(DWORD lun, const char *const kv[][2], size_t n_kv)
{
	char name[] = NAME;

	next_kv = kv;
	next_n_kv = n_kv;
	last_tp = NULL;
	assert_int_equal(IFDHCreateChannelByName(lun, name), IFD_SUCCESS);
	assert_non_null(last_tp);
	return last_tp;
}

static poll_fn get_poll(DWORD lun)
{
	poll_fn f = NULL;
	DWORD len = sizeof(f);

	assert_int_equal(IFDHGetCapabilities(lun, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, (PUCHAR)&f),
			 IFD_SUCCESS);
	assert_int_equal(len, sizeof(f));
	assert_non_null(f);
	return f;
}

static stop_fn get_stop(DWORD lun)
{
	stop_fn f = NULL;
	DWORD len = sizeof(f);

	assert_int_equal(IFDHGetCapabilities(lun, TAG_IFD_STOP_POLLING_THREAD, &len, (PUCHAR)&f), IFD_SUCCESS);
	assert_int_equal(len, sizeof(f));
	assert_non_null(f);
	return f;
}

/* pcscd's event thread for one slot (EHStatusHandlerThread): presence, power
 * up on insertion, the polling function, and out when asked to stop. It
 * records each presence change it sees, with the time. */
#define MAX_SEEN 16
struct pcscd_slot {
	DWORD lun;
	poll_fn poll;
	pthread_t thread;
	atomic_bool exit;            /* pcscd's hLockId = 0xFFFF */
	pthread_mutex_t lock;
	int seen[MAX_SEEN];          /* 1 present, 0 absent, -1 error */
	uint64_t seen_us[MAX_SEEN];
	size_t n_seen;
	unsigned polls;
	RESPONSECODE last_poll;
};

static int presence(DWORD lun)
{
	RESPONSECODE rc = IFDHICCPresence(lun);

	return rc == IFD_ICC_PRESENT ? 1 : rc == IFD_ICC_NOT_PRESENT ? 0 : -1;
}

static void *pcscd_run(void *arg)
{
	struct pcscd_slot *p = arg;
	int current = 2;

	for (;;) {
		int now = presence(p->lun);
		RESPONSECODE rc;

		if (now != current) {
			uint8_t atr[MAX_ATR_SIZE];
			DWORD atr_len = sizeof(atr);

			pthread_mutex_lock(&p->lock);
			if (p->n_seen < MAX_SEEN) {
				p->seen[p->n_seen] = now;
				p->seen_us[p->n_seen] = now_us();
				p->n_seen++;
			}
			pthread_mutex_unlock(&p->lock);
			if (now == 1)
				IFDHPowerICC(p->lun, IFD_POWER_UP, atr, &atr_len);
			current = now;
		}
		rc = p->poll(p->lun, 600000); /* PCSCLITE_STATUS_EVENT_TIMEOUT */
		pthread_mutex_lock(&p->lock);
		p->polls++;
		p->last_poll = rc;
		pthread_mutex_unlock(&p->lock);
		if (rc != IFD_SUCCESS)
			sleep_ms(10); /* pcscd: 400 ms */
		if (atomic_load(&p->exit))
			return NULL;
	}
}

static void pcscd_start(struct pcscd_slot *p, DWORD lun)
{
	memset(p, 0, sizeof(*p));
	p->lun = lun;
	p->poll = get_poll(lun);
	atomic_init(&p->exit, false);
	pthread_mutex_init(&p->lock, NULL);
	assert_int_equal(pthread_create(&p->thread, NULL, pcscd_run, p), 0);
}

static size_t pcscd_seen(struct pcscd_slot *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->n_seen;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Wait (2 s at most) until the thread has seen n presence changes. */
static void pcscd_until_seen(struct pcscd_slot *p, size_t n)
{
	for (unsigned i = 0; i < 2000 && pcscd_seen(p) < n; i++)
		sleep_ms(1);
	assert_int_equal(pcscd_seen(p), n);
}

/* pcscd's EHDestroyEventHandler: hLockId, the stop function, join. */
static uint64_t pcscd_stop(struct pcscd_slot *p)
{
	uint64_t t0 = now_us();

	atomic_store(&p->exit, true);
	assert_int_equal(get_stop(p->lun)(p->lun), IFD_SUCCESS);
	assert_int_equal(pthread_join(p->thread, NULL), 0);
	pthread_mutex_destroy(&p->lock);
	return now_us() - t0;
}

static void pcscd_sees_insertion_and_removal_within_100_ms(void **state)
{
	struct ccid_transport *tp = open_lun(0, no_card_kv, 1);
	struct pcscd_slot p;
	uint64_t t0;

	(void)state;
	pcscd_start(&p, 0);
	pcscd_until_seen(&p, 1);
	assert_int_equal(p.seen[0], 0);
	sleep_ms(SETTLE_MS);
	t0 = now_us();
	inproc_insert_card(tp, 0);
	pcscd_until_seen(&p, 2);
	assert_int_equal(p.seen[1], 1);
	note_latency("pcscd: insertion seen by IFDHICCPresence after the polling function", p.seen_us[1] - t0);
	sleep_ms(SETTLE_MS);
	t0 = now_us();
	inproc_remove_card(tp, 0);
	pcscd_until_seen(&p, 3);
	assert_int_equal(p.seen[2], 0);
	note_latency("pcscd: removal seen", p.seen_us[2] - t0);
	note_latency("pcscd: stop function and join", pcscd_stop(&p));
	assert_int_equal(IFDHCloseChannel(0), IFD_SUCCESS);
}

static void pcscd_sees_a_quick_swap_as_removal_then_insertion(void **state)
{
	struct ccid_transport *tp = open_lun(0x10000, NULL, 0);
	struct pcscd_slot p;
	uint64_t t0;

	(void)state;
	pcscd_start(&p, 0x10000);
	pcscd_until_seen(&p, 1);
	assert_int_equal(p.seen[0], 1);
	sleep_ms(SETTLE_MS);
	t0 = now_us();
	inproc_remove_card(tp, 0);
	inproc_insert_card(tp, 0);
	pcscd_until_seen(&p, 3);
	assert_int_equal(p.seen[1], 0);
	assert_int_equal(p.seen[2], 1);
	note_latency("pcscd: swap seen as removal and insertion", p.seen_us[2] - t0);
	sleep_ms(SETTLE_MS);
	assert_int_equal(pcscd_seen(&p), 3); /* and nothing more */
	pcscd_stop(&p);
	assert_int_equal(IFDHCloseChannel(0x10000), IFD_SUCCESS);
}

/* One call of the polling function on its own thread. */
struct poller {
	DWORD lun;
	int timeout;
	poll_fn poll;
	pthread_t thread;
	atomic_bool done;
	RESPONSECODE rc;
	uint64_t end_us;
};

static void *poller_run(void *arg)
{
	struct poller *p = arg;

	p->rc = p->poll(p->lun, p->timeout);
	p->end_us = now_us();
	atomic_store(&p->done, true);
	return NULL;
}

static void poller_start(struct poller *p, DWORD lun, int timeout)
{
	memset(p, 0, sizeof(*p));
	p->lun = lun;
	p->timeout = timeout;
	p->poll = get_poll(lun);
	atomic_init(&p->done, false);
	assert_int_equal(pthread_create(&p->thread, NULL, poller_run, p), 0);
	sleep_ms(SETTLE_MS);
	assert_false(atomic_load(&p->done));
}

static RESPONSECODE poller_join(struct poller *p)
{
	assert_int_equal(pthread_join(p->thread, NULL), 0);
	return p->rc;
}

/* pcscd's first look and first poll (ended at once by the reader's first
 * message), for the n slots from lun on. */
static void ifd_first_look(DWORD lun, unsigned n)
{
	uint64_t t0 = now_us();

	for (unsigned i = 0; i < n; i++)
		assert_int_equal(IFDHICCPresence(lun + i), IFD_ICC_PRESENT);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(get_poll(lun + i)(lun + i, 2000), IFD_SUCCESS);
	assert_true(now_us() - t0 < 1000000u);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(IFDHICCPresence(lun + i), IFD_ICC_PRESENT);
}

static void stop_function_ends_the_poll_and_polling_works_after(void **state)
{
	struct poller p;
	uint64_t t0;

	(void)state;
	open_lun(0x20000, NULL, 0);
	ifd_first_look(0x20000, 1);
	poller_start(&p, 0x20000, (int)LONG_WAIT_MS);
	t0 = now_us();
	assert_int_equal(get_stop(0x20000)(0x20000), IFD_SUCCESS);
	assert_int_equal(poller_join(&p), IFD_SUCCESS);
	note_latency("stop function to the end of the poll", p.end_us - t0);
	/* restartable: the next call waits its timeout */
	t0 = now_us();
	assert_int_equal(get_poll(0x20000)(0x20000, 50), IFD_SUCCESS);
	assert_true(now_us() - t0 >= 50000u);
	/* a stop before the call: that call returns at once, the next one waits */
	assert_int_equal(get_stop(0x20000)(0x20000), IFD_SUCCESS);
	t0 = now_us();
	assert_int_equal(get_poll(0x20000)(0x20000, (int)LONG_WAIT_MS), IFD_SUCCESS);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	t0 = now_us();
	assert_int_equal(get_poll(0x20000)(0x20000, 50), IFD_SUCCESS);
	assert_true(now_us() - t0 >= 50000u);
	assert_int_equal(IFDHCloseChannel(0x20000), IFD_SUCCESS);
}

/* ---- a reader that is gone: the poll waits for the stop function ------------------- */

/* pcscd sleeps 400 ms after a poll that does not return IFD_SUCCESS and only
 * then looks whether it was told to die. So once the reader is gone the poll
 * waits, holding nothing, until pcscd (told by udev) calls the stop function,
 * and then returns IFD_SUCCESS: pcscd's thread dies at once. */

/* The reader at lun, first looked at, then unplugged and seen gone. */
static struct ccid_transport *open_then_unplug(DWORD lun)
{
	struct ccid_transport *tp = open_lun(lun, NULL, 0);

	ifd_first_look(lun, 1);
	inproc_unplug(tp);
	assert_int_equal(IFDHICCPresence(lun), IFD_NO_SUCH_DEVICE);
	return tp;
}

/* The unplug ends smclib's wait (the driver's part is quick), but the poll
 * goes on waiting; pcscd's presence look says the reader is gone meanwhile;
 * the stop ends the poll at once with IFD_SUCCESS. */
static void unplug_while_a_poll_waits_keeps_it_waiting_until_the_stop(void **state)
{
	struct ccid_transport *tp = open_lun(0x30000, NULL, 0);
	poll_fn poll = get_poll(0x30000); /* pcscd asks once, when the reader comes */
	struct poller p;
	uint64_t t0;

	(void)state;
	ifd_first_look(0x30000, 1);
	poller_start(&p, 0x30000, (int)LONG_WAIT_MS);
	inproc_unplug(tp);
	sleep_ms(100);
	assert_false(atomic_load(&p.done));
	assert_int_equal(IFDHICCPresence(0x30000), IFD_NO_SUCH_DEVICE);
	t0 = now_us();
	assert_int_equal(get_stop(0x30000)(0x30000), IFD_SUCCESS);
	assert_int_equal(poller_join(&p), IFD_SUCCESS);
	note_latency("unplugged reader: stop function to the end of the poll", p.end_us - t0);
	/* the stop was taken: the next poll waits again, here until its timeout */
	t0 = now_us();
	assert_int_equal(poll(0x30000, 50), IFD_NO_SUCH_DEVICE);
	assert_true(now_us() - t0 >= 50000u);
	assert_int_equal(IFDHCloseChannel(0x30000), IFD_SUCCESS);
}

/* The first poll that finds the reader gone waits too, and does not return
 * before the stop: stopped 100 ms after it began, it ends after >= 90 ms. */
static void poll_on_a_gone_reader_blocks_until_the_stop_and_succeeds(void **state)
{
	struct poller p;
	uint64_t t0, t_stop;

	(void)state;
	open_then_unplug(0xA0000);
	t0 = now_us();
	poller_start(&p, 0xA0000, (int)LONG_WAIT_MS);
	sleep_ms(100 - SETTLE_MS);
	assert_false(atomic_load(&p.done));
	t_stop = now_us();
	assert_int_equal(get_stop(0xA0000)(0xA0000), IFD_SUCCESS);
	assert_int_equal(poller_join(&p), IFD_SUCCESS);
	assert_true(p.end_us - t0 >= 90000u);
	assert_true(p.end_us >= t_stop);
	note_latency("gone reader: stop function to the end of the poll", p.end_us - t_stop);
	assert_int_equal(IFDHCloseChannel(0xA0000), IFD_SUCCESS);
}

/* Nobody stops it: the poll ends at its timeout, no sooner, with
 * IFD_NO_SUCH_DEVICE; a timeout of 0 only looks. */
static void poll_on_a_gone_reader_times_out_with_no_such_device(void **state)
{
	uint64_t t0, took;

	(void)state;
	open_then_unplug(0xB0000);
	t0 = now_us();
	assert_int_equal(get_poll(0xB0000)(0xB0000, 80), IFD_NO_SUCH_DEVICE);
	took = now_us() - t0;
	assert_true(took >= 80000u);
	assert_true(took < 80000u + EVENT_BOUND_US);
	t0 = now_us();
	assert_int_equal(get_poll(0xB0000)(0xB0000, 0), IFD_NO_SUCH_DEVICE);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	assert_int_equal(IFDHCloseChannel(0xB0000), IFD_SUCCESS);
}

/* pcscd may call the stop function between two polls: the next poll on the
 * gone reader returns IFD_SUCCESS at once, the one after waits again. */
static void stop_before_the_poll_ends_the_next_poll_on_a_gone_reader_at_once(void **state)
{
	uint64_t t0;

	(void)state;
	open_then_unplug(0xC0000);
	assert_int_equal(get_stop(0xC0000)(0xC0000), IFD_SUCCESS);
	t0 = now_us();
	assert_int_equal(get_poll(0xC0000)(0xC0000, (int)LONG_WAIT_MS), IFD_SUCCESS);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	t0 = now_us();
	assert_int_equal(get_poll(0xC0000)(0xC0000, 50), IFD_NO_SUCH_DEVICE);
	assert_true(now_us() - t0 >= 50000u);
	/* a stop nobody took does not outlive the channel: the first poll of
	 * the reader opened next under the same Lun waits */
	assert_int_equal(get_stop(0xC0000)(0xC0000), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(0xC0000), IFD_SUCCESS);
	open_then_unplug(0xC0000);
	t0 = now_us();
	assert_int_equal(get_poll(0xC0000)(0xC0000, 50), IFD_NO_SUCH_DEVICE);
	assert_true(now_us() - t0 >= 50000u);
	assert_int_equal(IFDHCloseChannel(0xC0000), IFD_SUCCESS);
}

/* IFDHCloseChannel while polls wait on a gone two-slot reader: closing slot 1
 * ends slot 1's poll only (IFD_SUCCESS); closing slot 0 ends the other; close
 * never waits for them, nothing leaks. */
static void close_channel_ends_polls_waiting_on_a_gone_reader(void **state)
{
	static const char *const kv[][2] = { { "slots", "2" } };
	struct ccid_transport *tp;
	struct poller p0, p1;
	uint64_t t0;

	(void)state;
	tp = open_lun(0xD0000, kv, 1);
	assert_int_equal(IFDHCreateChannelByName(0xD0001, (char[]){ NAME }), IFD_SUCCESS);
	ifd_first_look(0xD0000, 2);
	inproc_unplug(tp);
	assert_int_equal(IFDHICCPresence(0xD0000), IFD_NO_SUCH_DEVICE);
	poller_start(&p0, 0xD0000, (int)LONG_WAIT_MS);
	poller_start(&p1, 0xD0001, (int)LONG_WAIT_MS);
	t0 = now_us();
	assert_int_equal(IFDHCloseChannel(0xD0001), IFD_SUCCESS);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	assert_int_equal(poller_join(&p1), IFD_SUCCESS);
	note_latency("gone reader: IFDHCloseChannel to the end of the poll", p1.end_us - t0);
	sleep_ms(SETTLE_MS);
	assert_false(atomic_load(&p0.done));
	t0 = now_us();
	assert_int_equal(IFDHCloseChannel(0xD0000), IFD_SUCCESS);
	note_latency("gone reader: IFDHCloseChannel of the last slot with a poll waiting", now_us() - t0);
	assert_int_equal(poller_join(&p0), IFD_SUCCESS);
	assert_int_equal(IFDHICCPresence(0xD0000), IFD_COMMUNICATION_ERROR);
#if HAVE_LSAN
	assert_int_equal(__lsan_do_recoverable_leak_check(), 0);
#endif
}

/* pcscd's event thread at an unplug: its poll neither returns nor fails
 * while the reader is gone, and EHDestroyEventHandler (stop function, join)
 * ends the thread at once, with no failed poll (no 400 ms pause). */
static void pcscd_event_thread_dies_at_once_after_an_unplug(void **state)
{
	struct ccid_transport *tp = open_lun(0xE0000, NULL, 0);
	struct pcscd_slot p;
	unsigned polls;

	(void)state;
	pcscd_start(&p, 0xE0000);
	pcscd_until_seen(&p, 1);
	assert_int_equal(p.seen[0], 1);
	sleep_ms(SETTLE_MS);
	pthread_mutex_lock(&p.lock);
	polls = p.polls;
	pthread_mutex_unlock(&p.lock);
	inproc_unplug(tp);
	sleep_ms(100); /* udev would tell pcscd within about this */
	pthread_mutex_lock(&p.lock);
	assert_int_equal(p.polls, polls);
	pthread_mutex_unlock(&p.lock);
	note_latency("pcscd: unplugged reader, stop function and join", pcscd_stop(&p));
	/* the thread is joined: its record is read without its lock */
	assert_int_equal(p.polls, polls + 1);
	assert_int_equal(p.last_poll, IFD_SUCCESS);
	assert_int_equal(p.n_seen, 1);
	assert_int_equal(IFDHCloseChannel(0xE0000), IFD_SUCCESS);
}

/* pcscd's RFRemoveReader when the device went: it asks for
 * TAG_IFD_DEVICE_REMOVED and sets it only if the answer is IFD_SUCCESS with
 * the value 1; then EHDestroyEventHandler calls the stop function. The poll
 * waiting meanwhile goes on until that stop (IFD_SUCCESS), and the polling
 * and stop functions are still handed out: a stop before the next poll ends
 * it at once, without a stop it waits for its timeout. */
static void device_removed_tag_keeps_the_poll_until_the_stop(void **state)
{
	struct poller p;
	UCHAR value[1] = { 0 };
	DWORD len = sizeof(value);
	uint64_t t0;

	(void)state;
	open_lun(0x40000, NULL, 0);
	ifd_first_look(0x40000, 1);
	poller_start(&p, 0x40000, (int)LONG_WAIT_MS);
	assert_int_equal(IFDHGetCapabilities(0x40000, TAG_IFD_DEVICE_REMOVED, &len, value), IFD_SUCCESS);
	assert_int_equal(len, 1);
	assert_int_equal(value[0], 1);
	assert_int_equal(IFDHSetCapabilities(0x40000, TAG_IFD_DEVICE_REMOVED, len, value), IFD_SUCCESS);
	sleep_ms(SETTLE_MS);
	assert_false(atomic_load(&p.done));
	t0 = now_us();
	assert_int_equal(get_stop(0x40000)(0x40000), IFD_SUCCESS);
	assert_int_equal(poller_join(&p), IFD_SUCCESS);
	note_latency("TAG_IFD_DEVICE_REMOVED set, stop function to the end of the poll", p.end_us - t0);
	assert_int_equal(get_stop(0x40000)(0x40000), IFD_SUCCESS);
	t0 = now_us();
	assert_int_equal(get_poll(0x40000)(0x40000, (int)LONG_WAIT_MS), IFD_SUCCESS);
	assert_true(now_us() - t0 < EVENT_BOUND_US);
	t0 = now_us();
	assert_int_equal(get_poll(0x40000)(0x40000, 30), IFD_NO_SUCH_DEVICE);
	assert_true(now_us() - t0 >= 30000u);
	/* pcscd said it is removed: nothing to tell it (no NO_SUCH_DEVICE) */
	assert_int_equal(IFDHICCPresence(0x40000), IFD_COMMUNICATION_ERROR);
	assert_int_equal(IFDHCloseChannel(0x40000), IFD_SUCCESS);
}

/* pcscd's event thread in front of a reader whose GetSlotStatus fails: the
 * polling function fails at once after each failed IFDHICCPresence, so the
 * thread pauses (here 10 ms) instead of going round at full speed; once the
 * reader answers again, pcscd sees the card. */
static void polling_function_fails_while_presence_fails(void **state)
{
	struct pcscd_slot p;
	unsigned polls;

	(void)state;
	next_wrap = wrap_failing_status;
	open_lun(0x90000, NULL, 0);
	atomic_store(&status_fails, STATUS_FAIL_ALL);
	assert_int_equal(IFDHICCPresence(0x90000), IFD_COMMUNICATION_ERROR);
	assert_int_equal(get_poll(0x90000)(0x90000, (int)LONG_WAIT_MS), IFD_COMMUNICATION_ERROR);
	pcscd_start(&p, 0x90000);
	sleep_ms(LOOP_MS);
	pthread_mutex_lock(&p.lock);
	polls = p.polls;
	assert_int_equal(p.last_poll, IFD_COMMUNICATION_ERROR);
	pthread_mutex_unlock(&p.lock);
	print_message("pcscd: polling function calls in %u ms while GetSlotStatus fails: %u\n", LOOP_MS,
		      polls);
	assert_true(polls <= LOOP_MS / 10u + 4u);
	assert_int_equal(pcscd_seen(&p), 1);
	assert_int_equal(p.seen[0], -1);
	atomic_store(&status_fails, 0);
	pcscd_until_seen(&p, 2);
	assert_int_equal(p.seen[1], 1);
	pcscd_stop(&p);
	assert_int_equal(IFDHCloseChannel(0x90000), IFD_SUCCESS);
}

/* IFDHCloseChannel while a thread is in the polling function and nobody
 * called the stop function: the poll ends (IFD_SUCCESS, as after a stop),
 * close returns, the reader and its event thread are gone, nothing leaks. */
static void close_channel_while_a_poll_waits_frees_everything(void **state)
{
	static const char *const kv[][2] = { { "slots", "2" } };
	struct poller p0, p1;
	uint64_t t0;

	(void)state;
	open_lun(0x50000, kv, 1);
	assert_int_equal(IFDHCreateChannelByName(0x50001, (char[]){ NAME }), IFD_SUCCESS);
	ifd_first_look(0x50000, 2);
	poller_start(&p0, 0x50000, (int)LONG_WAIT_MS);
	poller_start(&p1, 0x50001, (int)LONG_WAIT_MS);
	/* slot 1 closes: its poll ends, slot 0's goes on */
	assert_int_equal(IFDHCloseChannel(0x50001), IFD_SUCCESS);
	assert_int_equal(poller_join(&p1), IFD_SUCCESS); /* like a stop: pcscd's thread dies at once */
	sleep_ms(SETTLE_MS);
	assert_false(atomic_load(&p0.done));
	/* the last slot closes with its poll still waiting */
	t0 = now_us();
	assert_int_equal(IFDHCloseChannel(0x50000), IFD_SUCCESS);
	note_latency("IFDHCloseChannel with a poll waiting", now_us() - t0);
	assert_int_equal(poller_join(&p0), IFD_SUCCESS);
	assert_int_equal(IFDHICCPresence(0x50000), IFD_COMMUNICATION_ERROR);
	if (!HAVE_LSAN) {
		print_message("not built with AddressSanitizer: leak check skipped\n");
		return;
	}
#if HAVE_LSAN
	assert_int_equal(__lsan_do_recoverable_leak_check(), 0);
#endif
}

static void two_slot_reader_each_lun_gets_its_own_events(void **state)
{
	static const char *const kv[][2] = { { "slots", "2" }, { "busy-slots", "2" } };
	struct ccid_transport *tp = open_lun(0x60000, kv, 2);
	struct pcscd_slot p0, p1;
	uint64_t t0;

	(void)state;
	assert_int_equal(IFDHCreateChannelByName(0x60001, (char[]){ NAME }), IFD_SUCCESS);
	pcscd_start(&p0, 0x60000);
	pcscd_start(&p1, 0x60001);
	pcscd_until_seen(&p0, 1);
	pcscd_until_seen(&p1, 1);
	sleep_ms(SETTLE_MS);
	t0 = now_us();
	inproc_remove_card(tp, 1);
	pcscd_until_seen(&p1, 2);
	note_latency("pcscd, slot 1: removal seen", p1.seen_us[1] - t0);
	assert_int_equal(p1.seen[1], 0);
	inproc_remove_card(tp, 0);
	inproc_insert_card(tp, 1);
	pcscd_until_seen(&p0, 2);
	pcscd_until_seen(&p1, 3);
	assert_int_equal(p0.seen[1], 0);
	assert_int_equal(p1.seen[2], 1);
	sleep_ms(SETTLE_MS);
	assert_int_equal(pcscd_seen(&p0), 2);
	assert_int_equal(pcscd_seen(&p1), 3);
	pcscd_stop(&p1);
	pcscd_stop(&p0);
	assert_int_equal(IFDHCloseChannel(0x60001), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(0x60000), IFD_SUCCESS);
}

static void no_polling_function_without_interrupt_endpoint(void **state)
{
	static const char *const kv[][2] = { { "interrupt", "no" } };
	uint8_t buf[16];
	DWORD len;

	(void)state;
	open_lun(0x70000, kv, 1);
	len = sizeof(buf);
	assert_int_equal(IFDHGetCapabilities(0x70000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, buf),
			 IFD_ERROR_TAG);
	len = sizeof(buf);
	assert_int_equal(IFDHGetCapabilities(0x70000, TAG_IFD_STOP_POLLING_THREAD, &len, buf), IFD_ERROR_TAG);
	len = sizeof(buf);
	assert_int_equal(IFDHGetCapabilities(0x70000, TAG_IFD_POLLING_THREAD_KILLABLE, &len, buf),
			 IFD_ERROR_TAG);
	assert_int_equal(IFDHICCPresence(0x70000), IFD_ICC_PRESENT);
	assert_int_equal(IFDHCloseChannel(0x70000), IFD_SUCCESS);
}

static void polling_capabilities_with_interrupt_endpoint(void **state)
{
	uint8_t buf[16];
	DWORD len;

	(void)state;
	open_lun(0x80000, NULL, 0);
	get_poll(0x80000);
	get_stop(0x80000);
	len = sizeof(buf);
	assert_int_equal(IFDHGetCapabilities(0x80000, TAG_IFD_POLLING_THREAD_KILLABLE, &len, buf), IFD_SUCCESS);
	assert_int_equal(len, 1);
	assert_int_equal(buf[0], 0); /* not killable: the stop function it is */
	memset(buf, 0xA5, sizeof(buf));
	len = sizeof(void *) - 1;
	assert_int_equal(IFDHGetCapabilities(0x80000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, buf),
			 IFD_ERROR_INSUFFICIENT_BUFFER);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xA5);
	assert_int_equal(IFDHCloseChannel(0x80000), IFD_SUCCESS);
}

static int summary(void **state)
{
	(void)state;
	print_message("worst event latency measured in-process: %llu us (bound %u us)\n",
		      (unsigned long long)worst_us, EVENT_BOUND_US);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(insertion_ends_the_wait_within_100_ms),
		cmocka_unit_test(removal_ends_the_wait_within_100_ms),
		cmocka_unit_test(events_are_taken_by_the_next_look_not_seen_twice),
		cmocka_unit_test(wait_without_event_times_out_no_sooner_than_asked),
		cmocka_unit_test(cancel_ends_the_wait_and_the_next_one_waits_again),
		cmocka_unit_test(cancel_before_the_wait_is_not_lost),
		cmocka_unit_test(apdus_run_while_a_wait_is_pending),
		cmocka_unit_test(quick_swap_between_two_looks_is_a_new_card),
		cmocka_unit_test(change_with_card_still_present_is_a_new_card),
		cmocka_unit_test(look_after_a_swap_says_a_card_is_in),
		cmocka_unit_test(first_message_with_card_present_is_no_swap),
		cmocka_unit_test(swap_without_interrupt_endpoint_seen_by_polling),
		cmocka_unit_test(malformed_interrupt_messages_are_ignored),
		cmocka_unit_test(hardware_error_ends_the_wait),
		cmocka_unit_test(two_slots_get_their_own_events),
		cmocka_unit_test(unplug_ends_the_wait_with_no_device),
		cmocka_unit_test(close_while_waiting_ends_the_wait),
		cmocka_unit_test(broken_interrupt_pipe_is_given_up_after_bounded_tries),
		cmocka_unit_test(wait_fails_at_once_while_the_first_look_fails),
		cmocka_unit_test(wait_fails_at_once_while_the_look_after_a_removal_fails),
		cmocka_unit_test(event_taken_by_a_failed_look_is_kept_for_the_next),
		cmocka_unit_test(pcscd_sees_insertion_and_removal_within_100_ms),
		cmocka_unit_test(pcscd_sees_a_quick_swap_as_removal_then_insertion),
		cmocka_unit_test(stop_function_ends_the_poll_and_polling_works_after),
		cmocka_unit_test(unplug_while_a_poll_waits_keeps_it_waiting_until_the_stop),
		cmocka_unit_test(poll_on_a_gone_reader_blocks_until_the_stop_and_succeeds),
		cmocka_unit_test(poll_on_a_gone_reader_times_out_with_no_such_device),
		cmocka_unit_test(stop_before_the_poll_ends_the_next_poll_on_a_gone_reader_at_once),
		cmocka_unit_test(close_channel_ends_polls_waiting_on_a_gone_reader),
		cmocka_unit_test(pcscd_event_thread_dies_at_once_after_an_unplug),
		cmocka_unit_test(device_removed_tag_keeps_the_poll_until_the_stop),
		cmocka_unit_test(polling_function_fails_while_presence_fails),
		cmocka_unit_test(close_channel_while_a_poll_waits_frees_everything),
		cmocka_unit_test(two_slot_reader_each_lun_gets_its_own_events),
		cmocka_unit_test(no_polling_function_without_interrupt_endpoint),
		cmocka_unit_test(polling_capabilities_with_interrupt_endpoint),
	};

	return cmocka_run_group_tests(tests, NULL, summary);
}
