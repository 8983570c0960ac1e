/* The pcsc-lite boundary: every IFDHandler v3 entry point.
 *
 * Each call finds the reader slot behind its Lun, becomes one smclib request
 * (smc_device_control) and maps the smclib status back to an IFD_* code.
 * Nothing CCID-specific happens here: ccid_reader_open() builds the slots. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <ifdhandler.h>
#include <reader.h>

#include "ccid.h"
#include "config.h"
#include "lun_table.h"
#include "smc_log.h"

#define IFD_EXPORT __attribute__((visibility("default")))

/* pcscd's view of IFDHGetCapabilities(TAG_IFD_SIMULTANEOUS_ACCESS): how many
 * readers this driver serves at once. The table has no limit; one byte does. */
#define SIMULTANEOUS_READERS 255

/* ---- set-up, once per process ------------------------------------------ */

static pthread_once_t config_once = PTHREAD_ONCE_INIT;
static struct smartcrd_config config;

static void load_config(void)
{
	char plist[4096];
	const char *path = config_own_plist_path(plist, sizeof(plist)) == 0 ? plist : NULL;

	config_load(&config, path, getenv("SMARTCRD_LOG_LEVEL"));
	smc_log_mask = config.log_mask;
	log_info("smartcrd " PACKAGE_VERSION ", log mask 0x%X, driver options 0x%X", config.log_mask,
		 config.driver_options);
}

/* ---- smclib status → IFD_* --------------------------------------------- */

static RESPONSECODE ifd_code(smc_status st)
{
	switch (st) {
	case SMC_OK:
		return IFD_SUCCESS;
	case SMC_ERR_NOT_SUPPORTED:
		return IFD_NOT_SUPPORTED;
	case SMC_ERR_NO_MEDIA:
		return IFD_ICC_NOT_PRESENT;
	case SMC_ERR_PROTOCOL:
		return IFD_PROTOCOL_NOT_SUPPORTED;
	case SMC_ERR_TIMEOUT:
		return IFD_RESPONSE_TIMEOUT;
	case SMC_ERR_NO_DEVICE:
		return IFD_NO_SUCH_DEVICE;
	case SMC_ERR_BUFFER_TOO_SMALL:
		return IFD_ERROR_INSUFFICIENT_BUFFER;
	case SMC_ERR_POWER:
		return IFD_ERROR_POWER_ACTION;
	default:
		return IFD_COMMUNICATION_ERROR;
	}
}

/* The slot behind a Lun, or NULL with *rc saying why. A reader that pcscd
 * declared removed, or that vanished under a transfer, answers NO_SUCH_DEVICE. */
static struct smc_ext *slot_of(DWORD Lun, RESPONSECODE *rc)
{
	struct lun_entry *e = lun_lookup((uint32_t)Lun);

	if (e == NULL) {
		log_critical("Lun 0x%lX is not open", (unsigned long)Lun);
		*rc = IFD_COMMUNICATION_ERROR;
		return NULL;
	}
	if (atomic_load(&e->removed) || ccid_reader_is_gone(e->reader)) {
		*rc = IFD_NO_SUCH_DEVICE;
		return NULL;
	}
	return ccid_reader_slot(e->reader, LUN_SLOT(Lun));
}

static smc_status request(struct smc_ext *ext, enum smc_request req, uint32_t minor, const uint8_t *in,
			  size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
	size_t ignored;

	return smc_device_control(ext, req, minor, in, in_len, out, out_cap, out_len ? out_len : &ignored);
}

/* ---- card events: pcscd's event threads ---------------------------------- */

/* pcscd calls the polling function (TAG_IFD_POLLING_THREAD_WITH_TIMEOUT) from
 * one event thread per slot, without its own lock, and the stop function from
 * another thread. A poll inside the driver holds its reader: IFDHCloseChannel
 * takes the reader out of the table, ends the waits, and frees the reader
 * only once every holder has left. events_lock orders a poll's entry against
 * that removal, so a poll either finds the reader and holds it, or finds
 * nothing. */
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t events_cond = PTHREAD_COND_INITIALIZER;
static unsigned *holds; /* polls inside the driver, by reader index (Lun >> 16) */
static size_t holds_len;

typedef RESPONSECODE (*poll_fn)(DWORD Lun, int timeout);
typedef RESPONSECODE (*stop_fn)(DWORD Lun);

/* Under events_lock: a counter for reader index r. -1 if it cannot grow. */
static int holds_room(uint32_t r)
{
	size_t len = holds_len ? holds_len : 4;
	unsigned *grown;

	if (r < holds_len)
		return 0;
	while (len <= r)
		len *= 2;
	grown = realloc(holds, len * sizeof(*holds));
	if (grown == NULL)
		return -1;
	memset(grown + holds_len, 0, (len - holds_len) * sizeof(*holds));
	holds = grown;
	holds_len = len;
	return 0;
}

static struct smc_ext *hold_slot(DWORD Lun, RESPONSECODE *rc)
{
	struct smc_ext *ext;

	pthread_mutex_lock(&events_lock);
	ext = slot_of(Lun, rc);
	if (ext != NULL && holds_room(LUN_READER(Lun)) != 0) {
		log_critical("Lun 0x%lX: out of memory to wait for card events", (unsigned long)Lun);
		*rc = IFD_COMMUNICATION_ERROR;
		ext = NULL;
	}
	if (ext != NULL)
		holds[LUN_READER(Lun)]++;
	pthread_mutex_unlock(&events_lock);
	return ext;
}

/* The hold ends. True if the reader went away meanwhile (pcscd said it was
 * removed, a transfer found it gone, or the channel was closed). */
static bool release_slot(DWORD Lun)
{
	struct lun_entry *e;
	bool gone;

	pthread_mutex_lock(&events_lock);
	e = lun_lookup((uint32_t)Lun);
	gone = e == NULL || atomic_load(&e->removed) || ccid_reader_is_gone(e->reader);
	holds[LUN_READER(Lun)]--;
	pthread_cond_broadcast(&events_cond);
	pthread_mutex_unlock(&events_lock);
	return gone;
}

/* Under events_lock: every slot's wait of the reader ends now (it returns and
 * its caller looks at the reader again). */
static void cancel_waits(struct ccid_reader *reader)
{
	for (unsigned i = 0; i < ccid_reader_slot_count(reader); i++)
		request(ccid_reader_slot(reader, i), SMC_REQ_CANCEL_WAIT, 0, NULL, 0, NULL, 0, NULL);
}

/* The polling function: returns when the slot's card may have changed (pcscd
 * then calls IFDHICCPresence), after timeout ms, or when the stop function is
 * called, all with IFD_SUCCESS (pcscd pauses 400 ms after anything else).
 * While the last IFDHICCPresence failed (the reader does not answer
 * GetSlotStatus): IFD_COMMUNICATION_ERROR at once, so that pcscd pauses
 * before it asks again instead of going round at full speed.
 * Once the reader is gone: IFD_NO_SUCH_DEVICE, at once, every time; pcscd
 * then finds the same in IFDHICCPresence and removes the reader. */
static RESPONSECODE card_event_poll(DWORD Lun, int timeout)
{
	struct smc_ext *ext;
	RESPONSECODE rc;
	smc_status st;

	ext = hold_slot(Lun, &rc);
	if (ext == NULL)
		return rc;
	st = request(ext, SMC_REQ_WAIT_CHANGE, timeout > 0 ? (uint32_t)timeout : 0, NULL, 0, NULL, 0, NULL);
	if (release_slot(Lun) || st == SMC_ERR_NO_DEVICE)
		return IFD_NO_SUCH_DEVICE;
	if (st == SMC_OK || st == SMC_ERR_TIMEOUT || st == SMC_ERR_CANCELLED)
		return IFD_SUCCESS;
	log_info("Lun 0x%lX: card event wait: %s", (unsigned long)Lun, smc_status_str(st));
	return ifd_code(st);
}

/* The stop function: the slot's polling function returns at once, or, if it
 * is not waiting yet, its next call does. Later calls wait again. */
/* Under events_lock: the wait of Lun's slot ends (or its next one returns at
 * once). Returns the slot, NULL when Lun is not open. */
static struct smc_ext *cancel_wait_locked(DWORD Lun)
{
	struct lun_entry *e = lun_lookup((uint32_t)Lun);
	struct smc_ext *ext = e != NULL ? ccid_reader_slot(e->reader, LUN_SLOT(Lun)) : NULL;

	if (ext != NULL)
		request(ext, SMC_REQ_CANCEL_WAIT, 0, NULL, 0, NULL, 0, NULL);
	return ext;
}

static RESPONSECODE card_event_stop(DWORD Lun)
{
	struct smc_ext *ext;

	pthread_mutex_lock(&events_lock);
	ext = cancel_wait_locked(Lun);
	pthread_mutex_unlock(&events_lock);
	log_info("Lun 0x%lX: %s", (unsigned long)Lun,
		 ext ? "card event wait stopped" : "not open: nothing to stop");
	return IFD_SUCCESS;
}

/* IFDHCloseChannel's part: Lun's slot leaves the table (and its wait ends);
 * returns the reader when it was its last slot. */
static struct ccid_reader *release_lun(DWORD Lun)
{
	struct ccid_reader *reader;

	pthread_mutex_lock(&events_lock);
	cancel_wait_locked(Lun);
	reader = lun_release((uint32_t)Lun);
	pthread_mutex_unlock(&events_lock);
	return reader;
}

/* A reader no longer in the table: its waits end for good, the polls still
 * inside the driver leave, then it is closed (which joins its event thread). */
static void close_reader(DWORD Lun, struct ccid_reader *reader)
{
	for (unsigned i = 0; i < ccid_reader_slot_count(reader); i++)
		smc_tracking_close(ccid_reader_slot(reader, i));
	pthread_mutex_lock(&events_lock);
	while (LUN_READER(Lun) < holds_len && holds[LUN_READER(Lun)] > 0)
		pthread_cond_wait(&events_cond, &events_lock);
	pthread_mutex_unlock(&events_lock);
	ccid_reader_close(reader);
}

/* ---- channels ----------------------------------------------------------- */

/* What the administrator allows this reader: ifdDriverOptions, plus Escape
 * when smartcrdEscapeReaders lists it. info is what the device itself said
 * (the transport checked its VID/PID against pcscd's name). */
static unsigned reader_options(const struct tp_info *info)
{
	const struct config_reader_id *e;

	if (config.driver_options & CCID_OPTION_ESCAPE_ALLOWED) {
		log_info("%04X:%04X: Escape allowed: ifdDriverOptions 0x01", info->vendor_id, info->product_id);
		return config.driver_options;
	}
	e = config_escape_allowed_for(&config, info->vendor_id, info->product_id, info->serial);
	if (e == NULL)
		return config.driver_options;
	log_info("%04X:%04X serial \"%s\": Escape allowed: listed in smartcrdEscapeReaders as %04X:%04X%s%s",
		 info->vendor_id, info->product_id, info->serial, e->vendor_id, e->product_id,
		 e->serial[0] ? ":" : "", e->serial);
	return config.driver_options | CCID_OPTION_ESCAPE_ALLOWED;
}

IFD_EXPORT RESPONSECODE IFDHCreateChannelByName(DWORD Lun, LPSTR DeviceName)
{
	struct ccid_transport *tp;
	struct ccid_reader *reader;
	struct tp_info info;
	tp_status tst;
	smc_status st;

	pthread_once(&config_once, load_config);
	log_info("Lun 0x%lX, device %s", (unsigned long)Lun, DeviceName ? DeviceName : "(none)");
	if (DeviceName == NULL) {
		log_critical("Lun 0x%lX: no device name", (unsigned long)Lun);
		return IFD_COMMUNICATION_ERROR;
	}

	/* pcscd opens each slot of a multi-slot reader under the same Lun >> 16. */
	if (LUN_SLOT(Lun) != 0) {
		if (lun_attach_slot((uint32_t)Lun) != NULL)
			return IFD_SUCCESS;
		log_critical("Lun 0x%lX: no open reader has this slot", (unsigned long)Lun);
		return IFD_COMMUNICATION_ERROR;
	}

	tst = usb_transport_open(DeviceName, &tp);
	if (tst == TP_INVALID)
		return IFD_NO_SUCH_DEVICE; /* not a CCID interface: normal for composite devices */
	if (tst != TP_OK) {
		log_critical("cannot open %s: %s", DeviceName, tp_status_str(tst));
		return tst == TP_NO_DEVICE ? IFD_NO_SUCH_DEVICE : IFD_COMMUNICATION_ERROR;
	}
	info = tp->info; /* the reader owns tp from here on */
	st = ccid_reader_open(tp, &reader);
	if (st != SMC_OK) {
		log_critical("%s is not usable: %s", DeviceName, smc_status_str(st));
		return st == SMC_ERR_NO_DEVICE ? IFD_NO_SUCH_DEVICE : IFD_COMMUNICATION_ERROR;
	}
	/* Info.plist ifdDriverOptions and smartcrdEscapeReaders: e.g. whether
	 * Escape may reach the reader */
	ccid_reader_set_options(reader, reader_options(&info));
	if (lun_store((uint32_t)Lun, reader) != 0) {
		ccid_reader_close(reader);
		return IFD_COMMUNICATION_ERROR;
	}
	return IFD_SUCCESS;
}

/* The channel form is for serial readers; this driver serves USB readers,
 * which pcscd always opens by name. */
IFD_EXPORT RESPONSECODE IFDHCreateChannel(DWORD Lun, DWORD Channel)
{
	pthread_once(&config_once, load_config);
	log_critical("Lun 0x%lX: channel 0x%lX: only USB readers opened by device name are supported",
		     (unsigned long)Lun, (unsigned long)Channel);
	return IFD_NOT_SUPPORTED;
}

IFD_EXPORT RESPONSECODE IFDHCloseChannel(DWORD Lun)
{
	struct ccid_reader *reader;
	struct smc_ext *ext;
	RESPONSECODE rc;

	log_info("Lun 0x%lX", (unsigned long)Lun);
	/* Leave the card unpowered, as an application would find it after a replug. */
	ext = slot_of(Lun, &rc);
	if (ext != NULL)
		request(ext, SMC_REQ_POWER, SMC_POWER_DOWN, NULL, 0, NULL, 0, NULL);
	reader = release_lun(Lun);
	if (reader != NULL)
		close_reader(Lun, reader);
	return IFD_SUCCESS;
}

/* ---- capabilities ------------------------------------------------------ */

static RESPONSECODE put_byte(PDWORD Length, PUCHAR Value, uint8_t v)
{
	if (*Length < 1) {
		log_info("no room for a 1-byte capability (buffer of %lu)", (unsigned long)*Length);
		return IFD_ERROR_INSUFFICIENT_BUFFER;
	}
	*Value = v;
	*Length = 1;
	return IFD_SUCCESS;
}

/* TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, TAG_IFD_STOP_POLLING_THREAD and
 * TAG_IFD_POLLING_THREAD_KILLABLE, for readers whose interrupt endpoint
 * reports card events. Without one, IFD_ERROR_TAG: pcscd then calls
 * IFDHICCPresence every 400 ms, which costs one GetSlotStatus.
 *
 * The functions are handed out for a reader that is gone or that pcscd said
 * was removed, too: they then return at once (the polling function with
 * IFD_NO_SUCH_DEVICE), while a refusal here would leave pcscd polling the
 * presence of a reader it is about to remove. Asking sends nothing. */
static RESPONSECODE event_capability(DWORD Lun, DWORD Tag, PDWORD Length, PUCHAR Value)
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
		return put_byte(Length, Value, 0); /* stop it with the stop function */
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

IFD_EXPORT RESPONSECODE IFDHGetCapabilities(DWORD Lun, DWORD Tag, PDWORD Length, PUCHAR Value)
{
	struct lun_entry *e;
	struct smc_ext *ext;
	RESPONSECODE rc;
	size_t len = 0;
	smc_status st;

	if (Length == NULL || (Value == NULL && *Length != 0)) {
		log_critical("Lun 0x%lX: tag 0x%lX asked with no %s", (unsigned long)Lun,
			     (unsigned long)Tag, Length == NULL ? "length" : "buffer");
		return IFD_COMMUNICATION_ERROR;
	}
	e = lun_lookup((uint32_t)Lun);

	switch (Tag) {
	case TAG_IFD_SIMULTANEOUS_ACCESS:
		return put_byte(Length, Value, SIMULTANEOUS_READERS);
	case TAG_IFD_THREAD_SAFE:
		return put_byte(Length, Value, 1); /* readers are independent */
	case TAG_IFD_SLOT_THREAD_SAFE:
		/* the slots may be called at once if the reader lets them be busy at
		 * once (bMaxCCIDBusySlots); otherwise they take turns */
		return put_byte(Length, Value, e != NULL && ccid_reader_slot_count(e->reader) > 1 &&
						       ccid_reader_busy_slots(e->reader) > 1);
	case TAG_IFD_SLOTS_NUMBER:
		if (e == NULL) {
			log_critical("Lun 0x%lX is not open", (unsigned long)Lun);
			return IFD_COMMUNICATION_ERROR;
		}
		return put_byte(Length, Value, (uint8_t)ccid_reader_slot_count(e->reader));
	case TAG_IFD_ATR:
		Tag = SCARD_ATTR_ATR_STRING;
		break;
	case TAG_IFD_POLLING_THREAD_WITH_TIMEOUT:
	case TAG_IFD_STOP_POLLING_THREAD:
	case TAG_IFD_POLLING_THREAD_KILLABLE:
		return event_capability(Lun, Tag, Length, Value);
	case TAG_IFD_DEVICE_REMOVED:
		/* pcscd asks before it sets the tag, and sets it only on 1 (its
		 * RFRemoveReader): 1 says IFDHSetCapabilities takes it. */
		return put_byte(Length, Value, 1);
	default:
		break;
	}

	ext = slot_of(Lun, &rc);
	if (ext == NULL)
		return rc;
	st = request(ext, SMC_REQ_GET_ATTRIBUTE, (uint32_t)Tag, NULL, 0, Value, *Length, &len);
	if (st == SMC_ERR_NOT_SUPPORTED) {
		log_info("Lun 0x%lX: tag 0x%lX unknown", (unsigned long)Lun, (unsigned long)Tag);
		return IFD_ERROR_TAG;
	}
	if (st == SMC_ERR_INVALID_STATE) { /* e.g. the ATR of an unpowered card */
		*Length = 0;
		return IFD_SUCCESS;
	}
	if (st != SMC_OK)
		return ifd_code(st);
	*Length = (DWORD)len;
	return IFD_SUCCESS;
}

IFD_EXPORT RESPONSECODE IFDHSetCapabilities(DWORD Lun, DWORD Tag, DWORD Length, PUCHAR Value)
{
	struct lun_entry *e;

	(void)Length;
	(void)Value;
	if (Tag == TAG_IFD_DEVICE_REMOVED) {
		/* pcscd saw the device go: answer NO_SUCH_DEVICE from now on and do not
		 * wait for transfers to a device that is not there. */
		pthread_mutex_lock(&events_lock);
		e = lun_lookup((uint32_t)Lun);
		if (e != NULL) {
			atomic_store(&e->removed, true);
			cancel_waits(e->reader); /* polls return IFD_NO_SUCH_DEVICE */
		}
		pthread_mutex_unlock(&events_lock);
		log_info("Lun 0x%lX: reader removed", (unsigned long)Lun);
		return IFD_SUCCESS;
	}
	log_info("Lun 0x%lX: tag 0x%lX cannot be set", (unsigned long)Lun, (unsigned long)Tag);
	return IFD_ERROR_TAG;
}

/* ---- the card ----------------------------------------------------------- */

IFD_EXPORT RESPONSECODE IFDHSetProtocolParameters(DWORD Lun, DWORD Protocol, UCHAR Flags, UCHAR PTS1,
						  UCHAR PTS2, UCHAR PTS3)
{
	struct smc_ext *ext;
	RESPONSECODE rc;
	smc_status st;

	/* pcscd passes no PTS bytes: PPS is derived from the ATR below us. */
	(void)Flags;
	(void)PTS1;
	(void)PTS2;
	(void)PTS3;
	ext = slot_of(Lun, &rc);
	if (ext == NULL)
		return rc;
	if ((Protocol & ~(DWORD)(SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1)) != 0 || Protocol == 0) {
		log_critical("Lun 0x%lX: protocol 0x%lX not supported", (unsigned long)Lun, (unsigned long)Protocol);
		return IFD_PROTOCOL_NOT_SUPPORTED;
	}
	st = request(ext, SMC_REQ_SET_PROTOCOL, (uint32_t)Protocol, NULL, 0, NULL, 0, NULL);
	if (st == SMC_ERR_BAD_ATR || st == SMC_ERR_COMM)
		return IFD_ERROR_PTS_FAILURE;
	return ifd_code(st);
}

IFD_EXPORT RESPONSECODE IFDHPowerICC(DWORD Lun, DWORD Action, PUCHAR Atr, PDWORD AtrLength)
{
	struct smc_ext *ext;
	RESPONSECODE rc;
	enum smc_power how;
	size_t len = 0;
	smc_status st;

	if (AtrLength == NULL) {
		log_critical("Lun 0x%lX: power action %lu without AtrLength", (unsigned long)Lun,
			     (unsigned long)Action);
		return IFD_COMMUNICATION_ERROR;
	}
	ext = slot_of(Lun, &rc);
	if (ext == NULL) {
		*AtrLength = 0;
		return rc;
	}
	switch (Action) {
	case IFD_POWER_UP:
		how = SMC_POWER_COLD;
		break;
	case IFD_RESET:
		how = SMC_POWER_WARM;
		break;
	case IFD_POWER_DOWN:
		how = SMC_POWER_DOWN;
		break;
	default:
		log_critical("Lun 0x%lX: power action %lu unknown", (unsigned long)Lun, (unsigned long)Action);
		*AtrLength = 0;
		return IFD_NOT_SUPPORTED;
	}
	st = request(ext, SMC_REQ_POWER, how, NULL, 0, how == SMC_POWER_DOWN ? NULL : Atr,
		     how == SMC_POWER_DOWN || Atr == NULL ? 0 : *AtrLength, &len);
	*AtrLength = st == SMC_OK ? (DWORD)len : 0;
	/* A card that does not come up (mute, absent, refused voltage) is a failed
	 * power action for pcscd, which then reports the card as unresponsive. */
	if (st != SMC_OK && st != SMC_ERR_NO_DEVICE && st != SMC_ERR_BUFFER_TOO_SMALL && how != SMC_POWER_DOWN)
		return IFD_ERROR_POWER_ACTION;
	return ifd_code(st);
}

IFD_EXPORT RESPONSECODE IFDHTransmitToICC(DWORD Lun, SCARD_IO_HEADER SendPci, PUCHAR TxBuffer, DWORD TxLength,
					  PUCHAR RxBuffer, PDWORD RxLength, PSCARD_IO_HEADER RecvPci)
{
	struct smc_ext *ext;
	RESPONSECODE rc;
	uint32_t protocol;
	size_t len = 0;
	smc_status st;

	if (RxLength == NULL) {
		log_critical("Lun 0x%lX: transmit without RxLength", (unsigned long)Lun);
		return IFD_COMMUNICATION_ERROR;
	}
	ext = slot_of(Lun, &rc);
	if (ext == NULL) {
		*RxLength = 0;
		return rc;
	}
	/* SCARD_IO_HEADER carries the protocol number (0 or 1), not a mask. */
	switch (SendPci.Protocol) {
	case 0:
		protocol = SMC_PROTOCOL_T0;
		break;
	case 1:
		protocol = SMC_PROTOCOL_T1;
		break;
	default:
		log_critical("Lun 0x%lX: protocol T=%lu not supported", (unsigned long)Lun,
			     (unsigned long)SendPci.Protocol);
		*RxLength = 0;
		return IFD_PROTOCOL_NOT_SUPPORTED;
	}
	if (TxBuffer == NULL || RxBuffer == NULL) {
		log_critical("Lun 0x%lX: transmit without %s buffer", (unsigned long)Lun,
			     TxBuffer == NULL ? "a command" : "an answer");
		*RxLength = 0;
		return IFD_COMMUNICATION_ERROR;
	}
	st = request(ext, SMC_REQ_TRANSMIT, protocol, TxBuffer, TxLength, RxBuffer, *RxLength, &len);
	*RxLength = st == SMC_OK ? (DWORD)len : 0;
	if (RecvPci != NULL)
		RecvPci->Protocol = SendPci.Protocol;
	return ifd_code(st);
}

IFD_EXPORT RESPONSECODE IFDHControl(DWORD Lun, DWORD dwControlCode, PUCHAR TxBuffer, DWORD TxLength,
				    PUCHAR RxBuffer, DWORD RxLength, LPDWORD pdwBytesReturned)
{
	struct smc_ext *ext;
	RESPONSECODE rc;
	size_t len = 0;
	smc_status st;

	if (pdwBytesReturned != NULL)
		*pdwBytesReturned = 0;
	ext = slot_of(Lun, &rc);
	if (ext == NULL)
		return rc;
	st = request(ext, SMC_REQ_VENDOR_IOCTL, (uint32_t)dwControlCode, TxBuffer, TxBuffer ? TxLength : 0,
		     RxBuffer, RxBuffer ? RxLength : 0, &len);
	if (st == SMC_ERR_NOT_SUPPORTED) {
		log_info("Lun 0x%lX: control code 0x%lX not supported", (unsigned long)Lun,
			 (unsigned long)dwControlCode);
		return IFD_ERROR_NOT_SUPPORTED;
	}
	if (st == SMC_OK && pdwBytesReturned != NULL)
		*pdwBytesReturned = (DWORD)len;
	return ifd_code(st);
}

IFD_EXPORT RESPONSECODE IFDHICCPresence(DWORD Lun)
{
	struct smc_ext *ext;
	RESPONSECODE rc;
	smc_status st;

	ext = slot_of(Lun, &rc);
	if (ext == NULL)
		return rc;
	/* a report: pcscd sees a card swapped between two calls go, then come */
	st = request(ext, SMC_REQ_IS_PRESENT, SMC_PRESENCE_REPORT, NULL, 0, NULL, 0, NULL);
	if (st == SMC_OK)
		return IFD_ICC_PRESENT;
	if (st == SMC_ERR_NO_MEDIA)
		return IFD_ICC_NOT_PRESENT;
	return ifd_code(st);
}
