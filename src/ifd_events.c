/* pcscd's event threads, the card-event half of the pcsc-lite boundary:
 * the polling and stop functions handed out through IFDHGetCapabilities
 * (TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, TAG_IFD_STOP_POLLING_THREAD), and
 * what IFDHCloseChannel and TAG_IFD_DEVICE_REMOVED do to the waits. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ifdhandler.h>

#include "ccid.h"
#include "ifd_internal.h"
#include "lun_table.h"
#include "smc_log.h"

/* pcscd calls the polling function (TAG_IFD_POLLING_THREAD_WITH_TIMEOUT) from
 * one event thread per slot, without its own lock, and the stop function from
 * another thread. A poll in smclib's wait holds its reader: IFDHCloseChannel
 * takes the reader out of the table, ends the waits, and frees the reader
 * only once every holder has left. events_lock orders a poll's entry against
 * that removal, so a poll either finds the reader and holds it, or finds
 * nothing. A poll on a reader that is gone holds nothing: it sleeps on
 * events_cond until a stop or a close of its Lun is recorded here. */
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t events_cond; /* on CLOCK_MONOTONIC: see events_init */
static pthread_once_t events_once = PTHREAD_ONCE_INIT;

/* lun_table.h keeps a bit per slot: no open Lun has a higher slot. */
#define EVENT_SLOTS 32u

/* What the polls of one reader index (Lun >> 16) need, kept apart from the
 * reader so that it outlives it. */
struct poll_record {
	unsigned holds;                 /* polls in smclib's wait, holding the reader */
	uint32_t stops;                 /* bit per slot: a stop no poll has taken yet */
	unsigned closes[EVENT_SLOTS];   /* per slot: IFDHCloseChannel calls so far */
};
static struct poll_record *records; /* by reader index; grows, never shrinks */
static size_t records_len;

typedef RESPONSECODE (*poll_fn)(DWORD Lun, int timeout);
typedef RESPONSECODE (*stop_fn)(DWORD Lun);

/* A timed wait that a change of the wall clock neither ends early nor
 * stretches. */
static void events_init(void)
{
	int err = smc_cond_init_monotonic(&events_cond);

	if (err != 0)
		log_critical("cannot set up the card event poll condition: %s", strerror(err));
}

static void events_enter(void)
{
	pthread_once(&events_once, events_init);
	pthread_mutex_lock(&events_lock);
}

/* Under events_lock: the record of reader index r, grown to it if needed.
 * NULL if it cannot grow. The pointer is good until events_lock is left. */
static struct poll_record *record_of(uint32_t r)
{
	size_t len = records_len ? records_len : 4;
	struct poll_record *grown;

	if (r < records_len)
		return &records[r];
	while (len <= r)
		len *= 2;
	grown = realloc(records, len * sizeof(*records));
	if (grown == NULL)
		return NULL;
	memset(grown + records_len, 0, (len - records_len) * sizeof(*records));
	records = grown;
	records_len = len;
	return &records[r];
}

/* Under events_lock: the record of an existing reader index, or NULL. */
static struct poll_record *record_if_any(uint32_t r)
{
	return r < records_len ? &records[r] : NULL;
}

static bool entry_gone(const struct lun_entry *e)
{
	return atomic_load(&e->removed) || ccid_reader_is_gone(e->reader);
}

/* Under events_lock: a stop recorded for Lun's slot, taken (it ends one poll). */
static bool take_stop(DWORD Lun)
{
	struct poll_record *rec = record_if_any(LUN_READER(Lun));
	uint32_t bit = 1u << LUN_SLOT(Lun);

	if (rec == NULL || !(rec->stops & bit))
		return false;
	rec->stops &= ~bit;
	return true;
}

/* Under events_lock: Lun was closed since the poll read closes. */
static bool closed_since(DWORD Lun, unsigned closes)
{
	struct poll_record *rec = record_if_any(LUN_READER(Lun));

	return rec != NULL && rec->closes[LUN_SLOT(Lun)] != closes;
}

/* Under events_lock: the poll of a reader that is gone (unplugged, or pcscd
 * said so). It holds nothing, so IFDHCloseChannel never waits for it, and
 * returns IFD_SUCCESS when the stop function is called for Lun (or was, since
 * the last poll took a stop) or Lun is closed; IFD_NO_SUCH_DEVICE at the
 * deadline. Only a stop, a close or the deadline wake it: no spinning. */
static RESPONSECODE wait_while_gone(DWORD Lun, unsigned closes, const struct timespec *deadline)
{
	int err = 0;

	for (;;) {
		if (closed_since(Lun, closes)) {
			log_info("Lun 0x%lX: reader gone, channel closed: card event wait ends", (unsigned long)Lun);
			return IFD_SUCCESS;
		}
		if (take_stop(Lun)) {
			log_info("Lun 0x%lX: reader gone, stop function called: card event wait ends",
				 (unsigned long)Lun);
			return IFD_SUCCESS;
		}
		if (err == ETIMEDOUT) {
			log_info("Lun 0x%lX: reader gone, no stop within the timeout", (unsigned long)Lun);
			return IFD_NO_SUCH_DEVICE;
		}
		err = pthread_cond_timedwait(&events_cond, &events_lock, deadline);
		if (err != 0 && err != ETIMEDOUT) {
			log_critical("Lun 0x%lX: waiting for the stop function failed: %s", (unsigned long)Lun,
				     strerror(err));
			return IFD_NO_SUCH_DEVICE;
		}
	}
}

/* Under events_lock: how a poll that was in smclib's wait ends. */
static RESPONSECODE after_wait(DWORD Lun, unsigned closes, smc_status st, const struct timespec *deadline)
{
	struct lun_entry *e;

	if (closed_since(Lun, closes))
		return IFD_SUCCESS; /* IFDHCloseChannel's cancel, like a stop */
	if (st == SMC_ERR_CANCELLED && take_stop(Lun))
		return IFD_SUCCESS;
	e = lun_lookup((uint32_t)Lun);
	if (e == NULL)
		return IFD_SUCCESS;
	if (st == SMC_ERR_NO_DEVICE || entry_gone(e)) {
		log_info("Lun 0x%lX: reader gone during the card event wait: waiting for the stop function",
			 (unsigned long)Lun);
		return wait_while_gone(Lun, closes, deadline);
	}
	if (st == SMC_OK || st == SMC_ERR_TIMEOUT || st == SMC_ERR_CANCELLED)
		return IFD_SUCCESS;
	log_info("Lun 0x%lX: card event wait: %s", (unsigned long)Lun, smc_status_str(st));
	return ifd_code(st);
}

/* Under events_lock: every slot's wait of the reader ends now (it returns and
 * its caller looks at the reader again: a poll then finds it gone). */
static void cancel_waits(struct ccid_reader *reader)
{
	for (unsigned i = 0; i < ccid_reader_slot_count(reader); i++)
		ifd_request(ccid_reader_slot(reader, i), SMC_REQ_CANCEL_WAIT, 0, NULL, 0, NULL, 0, NULL);
}

/* The polling function: returns IFD_SUCCESS when the slot's card may have
 * changed (pcscd then calls IFDHICCPresence), after timeout ms, or when the
 * stop function is called or the channel closed. pcscd sleeps 400 ms
 * (PCSCLITE_STATUS_POLL_RATE) after any other return, and only then looks
 * whether it was told to die, so a poll that ends because of the stop must
 * return IFD_SUCCESS, or every reader removal costs those 400 ms.
 * While the last IFDHICCPresence failed (the reader is there but does not
 * answer GetSlotStatus): IFD_COMMUNICATION_ERROR at once, so that pcscd
 * pauses before it asks again instead of going round at full speed.
 * Once the reader is gone (a transfer or the interrupt pipe said so, or
 * pcscd set TAG_IFD_DEVICE_REMOVED): no return at once, which would cost the
 * 400 ms pause, while pcscd learns of the removal from udev and calls the stop
 * function within a few hundred ms anyway. The poll waits, holding nothing,
 * until that stop or the close of the channel (IFD_SUCCESS: pcscd's thread
 * then dies at once) or its timeout (IFD_NO_SUCH_DEVICE; IFDHICCPresence
 * fails too, see ifd_slot_of, and pcscd removes the reader). */
static RESPONSECODE card_event_poll(DWORD Lun, int timeout)
{
	struct timespec deadline;
	struct poll_record *rec;
	struct lun_entry *e;
	struct smc_ext *ext;
	RESPONSECODE rc;
	unsigned closes;
	smc_status st;

	smc_deadline_after(&deadline, timeout > 0 ? (uint64_t)timeout : 0);
	events_enter();
	e = lun_lookup((uint32_t)Lun);
	if (e == NULL) {
		pthread_mutex_unlock(&events_lock);
		log_critical("Lun 0x%lX is not open: no card events to wait for", (unsigned long)Lun);
		return IFD_COMMUNICATION_ERROR;
	}
	rec = record_of(LUN_READER(Lun));
	if (rec == NULL) {
		pthread_mutex_unlock(&events_lock);
		log_critical("Lun 0x%lX: out of memory to wait for card events", (unsigned long)Lun);
		return IFD_COMMUNICATION_ERROR;
	}
	closes = rec->closes[LUN_SLOT(Lun)];
	if (entry_gone(e)) {
		log_info("Lun 0x%lX: reader gone: waiting for the stop function", (unsigned long)Lun);
		rc = wait_while_gone(Lun, closes, &deadline);
		pthread_mutex_unlock(&events_lock);
		return rc;
	}
	ext = ccid_reader_slot(e->reader, LUN_SLOT(Lun));
	if (ext == NULL) { /* lun_lookup checked the slot: should not happen */
		pthread_mutex_unlock(&events_lock);
		log_critical("Lun 0x%lX: the reader has no such slot", (unsigned long)Lun);
		return IFD_COMMUNICATION_ERROR;
	}
	rec->holds++;
	pthread_mutex_unlock(&events_lock);

	st = ifd_request(ext, SMC_REQ_WAIT_CHANGE, timeout > 0 ? (uint32_t)timeout : 0, NULL, 0, NULL, 0, NULL);

	events_enter();
	records[LUN_READER(Lun)].holds--;
	pthread_cond_broadcast(&events_cond); /* close_reader may wait for this */
	rc = after_wait(Lun, closes, st, &deadline);
	pthread_mutex_unlock(&events_lock);
	return rc;
}

/* Under events_lock: the smclib wait of Lun's slot ends (or its next one
 * returns at once). Returns the slot's entry, NULL when Lun is not open. */
static struct lun_entry *cancel_wait_locked(DWORD Lun)
{
	struct lun_entry *e = lun_lookup((uint32_t)Lun);
	struct smc_ext *ext = e != NULL ? ccid_reader_slot(e->reader, LUN_SLOT(Lun)) : NULL;

	if (ext != NULL)
		ifd_request(ext, SMC_REQ_CANCEL_WAIT, 0, NULL, 0, NULL, 0, NULL);
	return ext != NULL ? e : NULL;
}

/* The stop function: the slot's poll returns IFD_SUCCESS at once, or, if it
 * is not waiting yet, its next call does; later calls wait again. pcscd's
 * EHDestroyEventHandler calls it after telling the thread to die, and joins
 * the thread, which looks at that only when the poll returns. The stop is
 * recorded here as well as in smclib, because a poll on a gone reader waits
 * here, not in smclib. */
static RESPONSECODE card_event_stop(DWORD Lun)
{
	struct poll_record *rec = NULL;
	struct lun_entry *e;

	events_enter();
	e = cancel_wait_locked(Lun);
	if (e != NULL)
		rec = record_of(LUN_READER(Lun));
	if (rec != NULL) {
		rec->stops |= 1u << LUN_SLOT(Lun);
		pthread_cond_broadcast(&events_cond);
	}
	pthread_mutex_unlock(&events_lock);
	if (e != NULL && rec == NULL)
		log_critical("Lun 0x%lX: out of memory to record the stop: only a live reader's wait ends",
			     (unsigned long)Lun);
	log_info("Lun 0x%lX: %s", (unsigned long)Lun,
		 e != NULL ? "card event wait stopped" : "not open: nothing to stop");
	return IFD_SUCCESS;
}

/* IFDHCloseChannel's part: Lun's slot leaves the table and its wait ends
 * (IFD_SUCCESS, like a stop, whether the poll holds the reader or waits on a
 * gone one); a stop nobody took is dropped, so that it cannot end the first
 * poll of a channel opened later under the same Lun. Returns the reader when
 * it was its last slot. */
struct ccid_reader *ifd_events_release_lun(DWORD Lun)
{
	struct poll_record *rec;
	struct ccid_reader *reader;

	events_enter();
	cancel_wait_locked(Lun);
	rec = record_if_any(LUN_READER(Lun));
	if (rec != NULL && LUN_SLOT(Lun) < EVENT_SLOTS) {
		rec->closes[LUN_SLOT(Lun)]++;
		rec->stops &= ~(1u << LUN_SLOT(Lun));
		pthread_cond_broadcast(&events_cond);
	}
	reader = lun_release((uint32_t)Lun);
	pthread_mutex_unlock(&events_lock);
	return reader;
}

/* A reader no longer in the table: its waits end for good, the polls still
 * in smclib's wait leave, then it is closed (which joins its event thread).
 * Polls waiting on a gone reader hold nothing and are not waited for. */
void ifd_events_close_reader(DWORD Lun, struct ccid_reader *reader)
{
	struct poll_record *rec;

	for (unsigned i = 0; i < ccid_reader_slot_count(reader); i++)
		smc_tracking_close(ccid_reader_slot(reader, i));
	events_enter();
	while ((rec = record_if_any(LUN_READER(Lun))) != NULL && rec->holds > 0)
		pthread_cond_wait(&events_cond, &events_lock);
	pthread_mutex_unlock(&events_lock);
	ccid_reader_close(reader);
}

/* TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, TAG_IFD_STOP_POLLING_THREAD and
 * TAG_IFD_POLLING_THREAD_KILLABLE, for readers whose interrupt endpoint
 * reports card events. Without one, IFD_ERROR_TAG: pcscd then calls
 * IFDHICCPresence every 400 ms, which costs one GetSlotStatus.
 *
 * The functions are handed out for a reader that is gone or that pcscd said
 * was removed, too (the polling function then waits for the stop function,
 * see card_event_poll), while a refusal here would leave pcscd polling the
 * presence of a reader it is about to remove. Asking sends nothing. */
RESPONSECODE ifd_event_capability(DWORD Lun, DWORD Tag, PDWORD Length, PUCHAR Value)
{
	poll_fn poll = card_event_poll;
	stop_fn stop = card_event_stop;
	struct lun_entry *e = lun_lookup((uint32_t)Lun);
	struct smc_ext *ext;

	ext = e != NULL ? ccid_reader_slot(e->reader, LUN_SLOT(Lun)) : NULL;
	if (ext == NULL) {
		log_critical("Lun 0x%lX is not open: no polling function (tag 0x%lX)", (unsigned long)Lun,
			     (unsigned long)Tag);
		return IFD_COMMUNICATION_ERROR;
	}
	if (!ext->reader_caps.card_events) {
		log_info("Lun 0x%lX: no interrupt endpoint: no polling function (tag 0x%lX), presence is polled",
			 (unsigned long)Lun, (unsigned long)Tag);
		return IFD_ERROR_TAG;
	}
	if (Tag == TAG_IFD_POLLING_THREAD_KILLABLE)
		return ifd_put_byte(Length, Value, 0); /* stop it with the stop function */
	if (*Length < sizeof(poll) || *Length < sizeof(stop)) {
		log_info("no room for a function pointer (buffer of %lu)", (unsigned long)*Length);
		return IFD_ERROR_INSUFFICIENT_BUFFER;
	}
	if (Tag == TAG_IFD_POLLING_THREAD_WITH_TIMEOUT) {
		memcpy(Value, &poll, sizeof(poll));
		*Length = sizeof(poll);
	} else {
		memcpy(Value, &stop, sizeof(stop));
		*Length = sizeof(stop);
	}
	return IFD_SUCCESS;
}

void ifd_events_reader_removed(DWORD Lun)
{
	struct lun_entry *e;

	events_enter();
	e = lun_lookup((uint32_t)Lun);
	if (e != NULL) {
		atomic_store(&e->removed, true);
		cancel_waits(e->reader); /* polls then wait for the stop function */
	}
	pthread_mutex_unlock(&events_lock);
}
