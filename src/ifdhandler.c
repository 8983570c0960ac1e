/* The pcsc-lite boundary: every IFDHandler v3 entry point.
 *
 * Each call finds the reader slot behind its Lun, becomes one smclib request
 * (smc_device_control) and maps the smclib status back to an IFD_* code.
 * Nothing CCID-specific happens here: ccid_reader_open() builds the slots.
 * pcscd's event threads (the polling and stop functions) are in ifd_events.c. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ifdhandler.h>
#include <reader.h>

#include "ccid.h"
#include "config.h"
#include "ifd_internal.h"
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

RESPONSECODE ifd_code(smc_status st)
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

/* The slot behind a Lun, or NULL with *rc saying why, with no transfer:
 * - a reader that vanished under a transfer answers IFD_NO_SUCH_DEVICE, which
 *   tells pcscd (it signals its hotplug thread, then sleeps a second);
 * - once pcscd has said the reader is removed (TAG_IFD_DEVICE_REMOVED), there
 *   is nothing left to tell it, and that second would only delay the removal
 *   (its event thread powers the card down on its way out and would sleep in
 *   the presence check): IFD_COMMUNICATION_ERROR. */
struct smc_ext *ifd_slot_of(DWORD Lun, RESPONSECODE *rc)
{
	struct lun_entry *e = lun_lookup((uint32_t)Lun);

	if (e == NULL) {
		log_critical("Lun 0x%lX is not open", (unsigned long)Lun);
		*rc = IFD_COMMUNICATION_ERROR;
		return NULL;
	}
	if (atomic_load(&e->removed)) {
		*rc = IFD_COMMUNICATION_ERROR;
		return NULL;
	}
	if (ccid_reader_is_gone(e->reader)) {
		*rc = IFD_NO_SUCH_DEVICE;
		return NULL;
	}
	return ccid_reader_slot(e->reader, LUN_SLOT(Lun));
}

smc_status ifd_request(struct smc_ext *ext, enum smc_request req, uint32_t minor, const uint8_t *in,
		       size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
	size_t ignored;

	return smc_device_control(ext, req, minor, in, in_len, out, out_cap, out_len ? out_len : &ignored);
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
	ext = ifd_slot_of(Lun, &rc);
	if (ext != NULL)
		ifd_request(ext, SMC_REQ_POWER, SMC_POWER_DOWN, NULL, 0, NULL, 0, NULL);
	reader = ifd_events_release_lun(Lun);
	if (reader != NULL)
		ifd_events_close_reader(Lun, reader);
	return IFD_SUCCESS;
}

/* ---- capabilities ------------------------------------------------------ */

RESPONSECODE ifd_put_byte(PDWORD Length, PUCHAR Value, uint8_t v)
{
	if (*Length < 1) {
		log_info("no room for a 1-byte capability (buffer of %lu)", (unsigned long)*Length);
		return IFD_ERROR_INSUFFICIENT_BUFFER;
	}
	*Value = v;
	*Length = 1;
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
		return ifd_put_byte(Length, Value, SIMULTANEOUS_READERS);
	case TAG_IFD_THREAD_SAFE:
		return ifd_put_byte(Length, Value, 1); /* readers are independent */
	case TAG_IFD_SLOT_THREAD_SAFE:
		/* the slots may be called at once if the reader lets them be busy at
		 * once (bMaxCCIDBusySlots); otherwise they take turns */
		return ifd_put_byte(Length, Value, e != NULL && ccid_reader_slot_count(e->reader) > 1 &&
						       ccid_reader_busy_slots(e->reader) > 1);
	case TAG_IFD_SLOTS_NUMBER:
		if (e == NULL) {
			log_critical("Lun 0x%lX is not open", (unsigned long)Lun);
			return IFD_COMMUNICATION_ERROR;
		}
		return ifd_put_byte(Length, Value, (uint8_t)ccid_reader_slot_count(e->reader));
	case TAG_IFD_ATR:
		Tag = SCARD_ATTR_ATR_STRING;
		break;
	case TAG_IFD_POLLING_THREAD_WITH_TIMEOUT:
	case TAG_IFD_STOP_POLLING_THREAD:
	case TAG_IFD_POLLING_THREAD_KILLABLE:
		return ifd_event_capability(Lun, Tag, Length, Value);
	case TAG_IFD_DEVICE_REMOVED:
		/* pcscd asks before it sets the tag, and sets it only on 1 (its
		 * RFRemoveReader): 1 says IFDHSetCapabilities takes it. */
		return ifd_put_byte(Length, Value, 1);
	default:
		break;
	}

	ext = ifd_slot_of(Lun, &rc);
	if (ext == NULL)
		return rc;
	st = ifd_request(ext, SMC_REQ_GET_ATTRIBUTE, (uint32_t)Tag, NULL, 0, Value, *Length, &len);
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
	(void)Length;
	(void)Value;
	if (Tag == TAG_IFD_DEVICE_REMOVED) {
		/* pcscd saw the device go: every call fails from now on (see
		 * ifd_slot_of) without waiting for transfers to a device that is
		 * not there. */
		ifd_events_reader_removed(Lun);
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
	ext = ifd_slot_of(Lun, &rc);
	if (ext == NULL)
		return rc;
	if ((Protocol & ~(DWORD)(SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1)) != 0 || Protocol == 0) {
		log_critical("Lun 0x%lX: protocol 0x%lX not supported", (unsigned long)Lun, (unsigned long)Protocol);
		return IFD_PROTOCOL_NOT_SUPPORTED;
	}
	st = ifd_request(ext, SMC_REQ_SET_PROTOCOL, (uint32_t)Protocol, NULL, 0, NULL, 0, NULL);
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
	ext = ifd_slot_of(Lun, &rc);
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
	st = ifd_request(ext, SMC_REQ_POWER, how, NULL, 0, how == SMC_POWER_DOWN ? NULL : Atr,
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
	ext = ifd_slot_of(Lun, &rc);
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
	st = ifd_request(ext, SMC_REQ_TRANSMIT, protocol, TxBuffer, TxLength, RxBuffer, *RxLength, &len);
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
	ext = ifd_slot_of(Lun, &rc);
	if (ext == NULL)
		return rc;
	st = ifd_request(ext, SMC_REQ_VENDOR_IOCTL, (uint32_t)dwControlCode, TxBuffer, TxBuffer ? TxLength : 0,
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

	ext = ifd_slot_of(Lun, &rc);
	if (ext == NULL)
		return rc;
	/* a report: pcscd sees a card swapped between two calls go, then come */
	st = ifd_request(ext, SMC_REQ_IS_PRESENT, SMC_PRESENCE_REPORT, NULL, 0, NULL, 0, NULL);
	if (st == SMC_OK)
		return IFD_ICC_PRESENT;
	if (st == SMC_ERR_NO_MEDIA)
		return IFD_ICC_NOT_PRESENT;
	return ifd_code(st);
}
