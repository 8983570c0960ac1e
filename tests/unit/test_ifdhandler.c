/* The pcsc-lite boundary (src/ifdhandler.c), called exactly as pcscd calls it.
 *
 * This program does not link src/transport/usb.c: it defines usb_transport_open
 * itself, handing ifdhandler.c a scripted fake device (tests/unit/fake_transport)
 * that answers like a reader with a card. Device names go through the real
 * usb_devname_parse, so both of pcscd's name forms are exercised; interface 1 of
 * every fake device plays a non-CCID interface (e.g. the HID part of a composite
 * device), as pcscd calls IFDHCreateChannelByName once per interface.
 *
 * ifdhandler.c keeps a process-wide table of readers: every test closes what it
 * opens, and the leak test checks that IFDHCloseChannel freed everything. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ifdhandler.h>
#include <reader.h>

#include "ccid_transport.h"
#include "fake_transport.h"
#include "smc_log.h"
#include "time_util.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#else
#define HAVE_LSAN 0
#endif

/* ---- descriptors, ATRs, names ---------------------------------------------- */

#define qemu_desc fake_qemu_descriptor
#define DESC_SLOT_INDEX 4
#define DESC_FEATURES 40
/* TPDU level, parameters set by the host (SetParameters goes on the wire). */
#define FEAT_TPDU_MANUAL 0x00010030u

/* QEMU's CAC card: T=0 only, 10 historical bytes, no TCK. */
static const uint8_t cac_atr[] = { 0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74,
				   0x65, 0x20, 0x63, 0x64, 0x31, 0x34, 0x34 };

#define NAME_UDEV "usb:08e6/4433:libudev:0:/dev/bus/usb/001/002"
#define NAME_LIBUSB "usb:08e6/4433:libusb-1.0:1:2:0"
#define NAME_HID_UDEV "usb:08e6/4433:libudev:1:/dev/bus/usb/001/002"
#define NAME_HID_LIBUSB "usb:08e6/4433:libusb-1.0:1:2:1"

/* pcscd's receive buffer: MAX_BUFFER_SIZE_EXTENDED + 2 + ... as winscard.c passes it */
#define PCSCD_RX_LEN 65548u
#define CHANNEL_USB 0x00200000u

/* ---- the fake reader ---------------------------------------------------- */

enum unplug_how {
	UNPLUG_NONE,
	UNPLUG_RX,             /* the answer's read says "no device" */
	UNPLUG_PARTIAL,        /* half an answer, then "no device" */
	UNPLUG_MUTE_ABORT,     /* no answer; the ABORT request finds the device gone */
	UNPLUG_GARBAGE,        /* a transfer that is no answer, then "no device" while flushing */
};

struct reader_dev {
	struct fake_dev *fd;
	uint8_t icc[4];             /* bmICCStatus per slot: 0 active, 1 inactive, 2 absent */
	uint8_t atr[33];
	size_t atr_len;
	uint8_t resp[300];          /* the card's answer to every XfrBlock */
	size_t resp_len;
	uint8_t unplug_on;          /* bMessageType that meets the unplug */
	enum unplug_how unplug;
	int no_interrupt;           /* the device has no interrupt IN endpoint */
};

static void answer(struct reader_dev *dev, uint8_t type, uint8_t status, uint8_t error, uint8_t specific,
		   const uint8_t *data, size_t len)
{
	fake_rx_answer(dev->fd, type, status, error, specific, data, len);
}

/* The reader goes away while working on msg. */
static void unplug_now(struct reader_dev *dev)
{
	static const uint8_t not_an_answer[10] = { 0x00, 0x05 };
	uint8_t half[5];

	switch (dev->unplug) {
	case UNPLUG_NONE:
		break;
	case UNPLUG_RX:
		fake_rx_status(dev->fd, TP_NO_DEVICE);
		break;
	case UNPLUG_PARTIAL:
		half[0] = 0x80;
		half[1] = 0x20;
		half[2] = half[3] = half[4] = 0;
		fake_rx_bytes(dev->fd, half, sizeof(half));
		fake_rx_status(dev->fd, TP_NO_DEVICE);
		break;
	case UNPLUG_MUTE_ABORT:
		fake_control_result(dev->fd, TP_NO_DEVICE);
		break;
	case UNPLUG_GARBAGE:
		fake_rx_bytes(dev->fd, not_an_answer, sizeof(not_an_answer));
		fake_rx_status(dev->fd, TP_NO_DEVICE);
		break;
	}
	dev->unplug_on = 0;
}

/* A reader with a card in each slot, answering each command as it arrives. */
static void device(struct fake_dev *fd, const uint8_t *msg, size_t len, void *ctx)
{
	struct reader_dev *dev = ctx;
	uint8_t *icc;

	(void)fd;
	assert_true(len >= 10);
	icc = &dev->icc[msg[5] & 3];
	if (dev->unplug_on != 0 && msg[0] == dev->unplug_on) {
		unplug_now(dev);
		return;
	}
	switch (msg[0]) {
	case 0x62: /* IccPowerOn */
		if (*icc == 2) {
			answer(dev, 0x80, 0x42, 0xFE, 0, NULL, 0);
		} else {
			*icc = 0;
			answer(dev, 0x80, 0x00, 0, 0, dev->atr, dev->atr_len);
		}
		break;
	case 0x63: /* IccPowerOff */
		if (*icc != 2)
			*icc = 1;
		answer(dev, 0x81, *icc, 0, 0, NULL, 0);
		break;
	case 0x65: /* GetSlotStatus */
	case 0x72: /* Abort */
		answer(dev, 0x81, *icc, 0, 0, NULL, 0);
		break;
	case 0x61: /* SetParameters: echo */
		answer(dev, 0x82, *icc, 0, msg[7], msg + 10, len - 10);
		break;
	case 0x6F: /* XfrBlock */
		answer(dev, 0x80, *icc, 0, 0, dev->resp, dev->resp_len);
		break;
	default:
		answer(dev, 0x81, 0x40 | *icc, 0, 0, NULL, 0);
		break;
	}
}

/* What a test opened, so that a failing test does not leave readers open for
 * the next one (the table is process-wide): the teardown closes and frees it. */
#define MAX_TRACKED 256
static struct reader_dev *live[MAX_TRACKED];
static DWORD opened[MAX_TRACKED];
static size_t n_opened;

static void track_dev(struct reader_dev *dev)
{
	for (size_t i = 0; i < MAX_TRACKED; i++) {
		if (live[i] == NULL) {
			live[i] = dev;
			return;
		}
	}
	fail_msg("more than %d fake readers at once", MAX_TRACKED);
}

static void untrack_dev(struct reader_dev *dev)
{
	for (size_t i = 0; i < MAX_TRACKED; i++)
		if (live[i] == dev)
			live[i] = NULL;
}

static struct reader_dev *new_reader(const uint8_t *desc)
{
	struct reader_dev *dev = calloc(1, sizeof(*dev));
	static const uint8_t resp[] = { 0x90, 0x00 };

	assert_non_null(dev);
	track_dev(dev);
	dev->fd = fake_new(desc ? desc : qemu_desc, 54);
	memset(dev->icc, 1, sizeof(dev->icc));
	memcpy(dev->atr, cac_atr, sizeof(cac_atr));
	dev->atr_len = sizeof(cac_atr);
	memcpy(dev->resp, resp, sizeof(resp));
	dev->resp_len = sizeof(resp);
	fake_set_responder(dev->fd, device, dev);
	return dev;
}

/* After IFDHCloseChannel: the driver must have closed the transport. */
static void free_reader(struct reader_dev *dev)
{
	assert_true(fake_closed(dev->fd));
	untrack_dev(dev);
	fake_free(dev->fd);
	free(dev);
}

static int close_leftovers(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_opened; i++)
		IFDHCloseChannel(opened[i]);
	n_opened = 0;
	for (size_t i = 0; i < MAX_TRACKED; i++) {
		if (live[i] != NULL) {
			fake_free(live[i]->fd);
			free(live[i]);
			live[i] = NULL;
		}
	}
	return 0;
}

/* ---- usb_transport_open, as this program provides it --------------------- */

/* The device the next usb_transport_open of a CCID interface hands out. */
static struct reader_dev *plugged;
static unsigned transport_opens;

tp_status usb_transport_open(const char *device_name, struct ccid_transport **out)
{
	struct usb_devname dn;
	struct ccid_transport *tp;

	*out = NULL;
	transport_opens++;
	if (device_name == NULL || usb_devname_parse(device_name, &dn) != 0)
		return TP_INVALID;
	if (dn.interface_number != 0)
		return TP_INVALID; /* interface 1 of the fake devices is not a CCID one */
	if (plugged == NULL)
		return TP_NO_DEVICE;
	tp = fake_transport(plugged->fd);
	tp->info.vendor_id = dn.vendor_id;
	tp->info.product_id = dn.product_id;
	tp->info.bus = (uint8_t)dn.bus;
	tp->info.address = (uint8_t)dn.address;
	tp->info.interface_number = (uint8_t)dn.interface_number;
	tp->info.has_interrupt = !plugged->no_interrupt;
	plugged = NULL;
	*out = tp;
	return TP_OK;
}

/* IFDHCreateChannelByName as pcscd calls it (a writable name), remembering the Lun. */
static RESPONSECODE create(DWORD lun, const char *name)
{
	char buf[128];
	RESPONSECODE rc;

	snprintf(buf, sizeof(buf), "%s", name);
	rc = IFDHCreateChannelByName(lun, buf);
	if (rc == IFD_SUCCESS && n_opened < MAX_TRACKED)
		opened[n_opened++] = lun;
	return rc;
}

static RESPONSECODE open_as(DWORD lun, struct reader_dev *dev, const char *name)
{
	plugged = dev;
	return create(lun, name);
}

static void open_ok(DWORD lun, struct reader_dev *dev, const char *name)
{
	assert_int_equal(open_as(lun, dev, name), IFD_SUCCESS);
	assert_null(plugged);
}

/* ---- pcscd's calls -------------------------------------------------------- */

static RESPONSECODE get_cap(DWORD lun, DWORD tag, uint8_t *buf, DWORD cap, DWORD *len)
{
	*len = cap;
	return IFDHGetCapabilities(lun, tag, len, buf);
}

static uint32_t get_dword(DWORD lun, DWORD tag)
{
	uint8_t buf[8];
	DWORD len;
	uint32_t v;

	assert_int_equal(get_cap(lun, tag, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_equal(len, 4);
	memcpy(&v, buf, 4);
	return v;
}

static uint8_t get_byte(DWORD lun, DWORD tag)
{
	uint8_t buf[8];
	DWORD len;

	assert_int_equal(get_cap(lun, tag, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_equal(len, 1);
	return buf[0];
}

static RESPONSECODE power(DWORD lun, DWORD action, uint8_t *atr, DWORD *atr_len)
{
	*atr_len = MAX_ATR_SIZE;
	return IFDHPowerICC(lun, action, atr, atr_len);
}

static void power_up_ok(DWORD lun, const struct reader_dev *dev)
{
	uint8_t atr[MAX_ATR_SIZE];
	DWORD len;

	assert_int_equal(power(lun, IFD_POWER_UP, atr, &len), IFD_SUCCESS);
	assert_int_equal(len, dev->atr_len);
	assert_memory_equal(atr, dev->atr, dev->atr_len);
}

static RESPONSECODE transmit(DWORD lun, DWORD proto, const uint8_t *apdu, size_t apdu_len, uint8_t *rx,
			     DWORD *rx_len)
{
	SCARD_IO_HEADER send_pci = { proto, 8 };
	SCARD_IO_HEADER recv_pci = { 0xFFFF, 0 };
	uint8_t tx[300];

	memcpy(tx, apdu, apdu_len);
	return IFDHTransmitToICC(lun, send_pci, tx, (DWORD)apdu_len, rx, rx_len, &recv_pci);
}

/* A card ready for APDUs: powered, T=0 selected, as pcscd leaves it after SCardConnect. */
static void connect_t0(DWORD lun, const struct reader_dev *dev)
{
	power_up_ok(lun, dev);
	assert_int_equal(IFDHSetProtocolParameters(lun, SCARD_PROTOCOL_T0, 0, 0, 0, 0), IFD_SUCCESS);
}

static const uint8_t read_binary[] = { 0x00, 0xB0, 0x00, 0x00, 0x10 };

/* READ BINARY of 16 bytes through IFDHTransmitToICC with pcscd's buffer size. */
static void transmit_ok(DWORD lun, struct reader_dev *dev)
{
	uint8_t *rx = malloc(PCSCD_RX_LEN);
	DWORD rx_len = PCSCD_RX_LEN;

	assert_non_null(rx);
	for (size_t i = 0; i < 16; i++)
		dev->resp[i] = (uint8_t)(0xA0 + i);
	dev->resp[16] = 0x90;
	dev->resp[17] = 0x00;
	dev->resp_len = 18;
	assert_int_equal(transmit(lun, 0, read_binary, sizeof(read_binary), rx, &rx_len), IFD_SUCCESS);
	assert_int_equal(rx_len, 18);
	assert_memory_equal(rx, dev->resp, 18);
	free(rx);
}

/* ---- opening ------------------------------------------------------------------ */

static void create_channel_accepts_both_device_name_forms(void **state)
{
	struct reader_dev *a = new_reader(NULL), *b = new_reader(NULL);

	(void)state;
	open_ok(0x00000, a, NAME_UDEV);
	open_ok(0x10000, b, "usb:08e6/4433:libusb-1.0:3:7:0");
	/* the bus and address of each name reached the transport */
	assert_int_equal(get_dword(0x00000, SCARD_ATTR_CHANNEL_ID), CHANNEL_USB | 0x0102);
	assert_int_equal(get_dword(0x10000, SCARD_ATTR_CHANNEL_ID), CHANNEL_USB | 0x0307);
	assert_int_equal(get_byte(0x00000, TAG_IFD_SLOTS_NUMBER), 1);
	assert_int_equal(get_byte(0x10000, TAG_IFD_SLOTS_NUMBER), 1);
	/* opening sends nothing to the reader */
	assert_int_equal(fake_sent_count(a->fd), 0);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(0x10000), IFD_SUCCESS);
	free_reader(a);
	free_reader(b);
}

static void create_channel_on_non_ccid_interface_is_no_such_device(void **state)
{
	struct reader_dev *dev = new_reader(NULL);

	(void)state;
	assert_int_equal(open_as(0x00000, dev, NAME_HID_UDEV), IFD_NO_SUCH_DEVICE);
	assert_int_equal(open_as(0x00000, dev, NAME_HID_LIBUSB), IFD_NO_SUCH_DEVICE);
	assert_int_equal(open_as(0x00000, dev, "usb:zz"), IFD_NO_SUCH_DEVICE);
	assert_int_equal(IFDHCreateChannelByName(0x00000, NULL), IFD_COMMUNICATION_ERROR);
	/* nothing was opened: the Lun is free for the CCID interface */
	assert_int_equal(IFDHICCPresence(0x00000), IFD_COMMUNICATION_ERROR);
	open_ok(0x00000, dev, NAME_LIBUSB);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

static void create_channel_refuses_unusable_descriptor_and_closes_it(void **state)
{
	uint8_t d[54];
	struct reader_dev *dev;

	(void)state;
	memcpy(d, qemu_desc, sizeof(d));
	d[0] = 0x20; /* bLength wrong */
	dev = new_reader(d);
	assert_int_equal(open_as(0x00000, dev, NAME_UDEV), IFD_COMMUNICATION_ERROR);
	free_reader(dev); /* closed by the driver */
	assert_int_equal(IFDHICCPresence(0x00000), IFD_COMMUNICATION_ERROR);
}

static void create_channel_by_channel_number_is_not_supported(void **state)
{
	(void)state;
	assert_int_equal(IFDHCreateChannel(0x00000, 0x3F8), IFD_NOT_SUPPORTED);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_COMMUNICATION_ERROR);
}

static void same_lun_opened_twice_keeps_the_first_reader(void **state)
{
	struct reader_dev *a = new_reader(NULL), *b = new_reader(NULL);

	(void)state;
	open_ok(0x50000, a, NAME_UDEV);
	assert_int_equal(open_as(0x50000, b, NAME_LIBUSB), IFD_COMMUNICATION_ERROR);
	assert_true(fake_closed(b->fd));
	assert_false(fake_closed(a->fd));
	assert_int_equal(IFDHICCPresence(0x50000), IFD_ICC_PRESENT);
	assert_int_equal(fake_sent_count(b->fd), 0);
	assert_int_equal(IFDHCloseChannel(0x50000), IFD_SUCCESS);
	free_reader(a);
	free_reader(b);
}

/* ---- capabilities ------------------------------------------------------------ */

static void capabilities_of_the_driver_and_the_reader(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t buf[80];
	DWORD len;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	assert_int_equal(get_byte(0x00000, TAG_IFD_SLOTS_NUMBER), 1);
	assert_int_equal(get_byte(0x00000, TAG_IFD_THREAD_SAFE), 1);
	/* no limit of 16 readers: at least the 41 of the test below */
	assert_true(get_byte(0x00000, TAG_IFD_SIMULTANEOUS_ACCESS) >= 41);
	/* the slots of one reader share its bulk pipe */
	assert_int_equal(get_byte(0x00000, TAG_IFD_SLOT_THREAD_SAFE), 0);

	assert_int_equal(get_cap(0x00000, SCARD_ATTR_VENDOR_NAME, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "QEMU", 5);
	assert_int_equal(get_cap(0x00000, SCARD_ATTR_VENDOR_IFD_TYPE, buf, sizeof(buf), &len),
			 IFD_SUCCESS);
	assert_int_equal(len, sizeof("QEMU USB CCID"));
	assert_string_equal((char *)buf, "QEMU USB CCID");
	assert_int_equal(get_dword(0x00000, SCARD_ATTR_CHANNEL_ID), CHANNEL_USB | 0x0102);
	/* TPDU level: a short APDU at most, 4 + 1 + 255 + 1 */
	assert_int_equal(get_dword(0x00000, SCARD_ATTR_MAXINPUT), 261);
	/* all of the above is answered without talking to the reader */
	assert_int_equal(fake_sent_count(dev->fd), 0);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

static void capabilities_follow_the_card(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t buf[80];
	DWORD len;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	/* before power up: no ATR (empty, as pcscd expects), interface inactive */
	assert_int_equal(get_cap(0x00000, TAG_IFD_ATR, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_equal(len, 0);
	assert_int_equal(get_dword(0x00000, SCARD_ATTR_CURRENT_PROTOCOL_TYPE), 0);

	dev->icc[0] = 2;
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_NOT_PRESENT);
	assert_int_equal(get_byte(0x00000, SCARD_ATTR_ICC_PRESENCE), 0);
	assert_int_equal(get_byte(0x00000, SCARD_ATTR_ICC_INTERFACE_STATUS), 0);
	dev->icc[0] = 1;
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	assert_int_equal(get_byte(0x00000, SCARD_ATTR_ICC_PRESENCE), 1);
	assert_int_equal(get_byte(0x00000, SCARD_ATTR_ICC_INTERFACE_STATUS), 0);

	connect_t0(0x00000, dev);
	assert_int_equal(get_byte(0x00000, SCARD_ATTR_ICC_INTERFACE_STATUS), 1);
	assert_int_equal(get_dword(0x00000, SCARD_ATTR_CURRENT_PROTOCOL_TYPE), SCARD_PROTOCOL_T0);
	assert_int_equal(get_cap(0x00000, TAG_IFD_ATR, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_equal(len, sizeof(cac_atr));
	assert_memory_equal(buf, cac_atr, sizeof(cac_atr));
	memset(buf, 0, sizeof(buf));
	assert_int_equal(get_cap(0x00000, SCARD_ATTR_ATR_STRING, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_equal(len, sizeof(cac_atr));
	assert_memory_equal(buf, cac_atr, sizeof(cac_atr));

	assert_int_equal(power(0x00000, IFD_POWER_DOWN, buf, &len), IFD_SUCCESS);
	assert_int_equal(get_byte(0x00000, SCARD_ATTR_ICC_INTERFACE_STATUS), 0);
	assert_int_equal(get_cap(0x00000, TAG_IFD_ATR, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_equal(len, 0);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

static void unknown_tag_is_error_tag(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t buf[64];
	DWORD len;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	assert_int_equal(get_cap(0x00000, 0x7A5A1234, buf, sizeof(buf), &len), IFD_ERROR_TAG);
	assert_int_equal(get_cap(0x00000, SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_DEFINED, 0xBEEF), buf,
				 sizeof(buf), &len),
			 IFD_ERROR_TAG);
	assert_int_equal(IFDHSetCapabilities(0x00000, SCARD_ATTR_VENDOR_NAME, 4, buf), IFD_ERROR_TAG);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

/* The value does not fit: INSUFFICIENT_BUFFER, and not one byte written past Length. */
static void small_buffer_check(DWORD lun, DWORD tag, DWORD cap)
{
	uint8_t buf[64];
	DWORD len = cap;

	memset(buf, 0xA5, sizeof(buf));
	assert_int_equal(IFDHGetCapabilities(lun, tag, &len, buf), IFD_ERROR_INSUFFICIENT_BUFFER);
	for (size_t i = cap; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xA5);
}

static void too_small_buffer_is_insufficient_buffer_without_overflow(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t *exact;
	DWORD len;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	power_up_ok(0x00000, dev);
	small_buffer_check(0x00000, SCARD_ATTR_VENDOR_NAME, 3);
	small_buffer_check(0x00000, SCARD_ATTR_VENDOR_NAME, 4); /* the NUL does not fit */
	small_buffer_check(0x00000, SCARD_ATTR_CHANNEL_ID, 3);
	small_buffer_check(0x00000, SCARD_ATTR_MAXINPUT, 0);
	small_buffer_check(0x00000, TAG_IFD_ATR, sizeof(cac_atr) - 1);
	small_buffer_check(0x00000, SCARD_ATTR_ATR_STRING, 1);
	small_buffer_check(0x00000, TAG_IFD_SLOTS_NUMBER, 0);
	small_buffer_check(0x00000, TAG_IFD_THREAD_SAFE, 0);
	small_buffer_check(0x00000, SCARD_ATTR_ICC_PRESENCE, 0);
	/* exactly the size needed: fits (heap buffer, so ASan sees any overflow) */
	exact = malloc(sizeof(cac_atr));
	assert_non_null(exact);
	len = sizeof(cac_atr);
	assert_int_equal(IFDHGetCapabilities(0x00000, TAG_IFD_ATR, &len, exact), IFD_SUCCESS);
	assert_int_equal(len, sizeof(cac_atr));
	assert_memory_equal(exact, cac_atr, sizeof(cac_atr));
	free(exact);
	/* no length at all */
	assert_int_not_equal(IFDHGetCapabilities(0x00000, TAG_IFD_ATR, NULL, NULL), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

/* ---- power ---------------------------------------------------------------------- */

static void power_up_reset_and_down_return_the_atr(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t atr[MAX_ATR_SIZE + 8];
	DWORD len;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	memset(atr, 0xA5, sizeof(atr));
	assert_int_equal(power(0x00000, IFD_POWER_UP, atr, &len), IFD_SUCCESS);
	assert_int_equal(len, sizeof(cac_atr));
	assert_memory_equal(atr, cac_atr, sizeof(cac_atr));
	assert_int_equal(atr[MAX_ATR_SIZE], 0xA5);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x62), 1);

	memset(atr, 0xA5, sizeof(atr));
	assert_int_equal(power(0x00000, IFD_RESET, atr, &len), IFD_SUCCESS);
	assert_int_equal(len, sizeof(cac_atr));
	assert_memory_equal(atr, cac_atr, sizeof(cac_atr));
	/* CCID has no warm reset: IccPowerOff, then IccPowerOn */
	assert_int_equal(fake_sent_count_type(dev->fd, 0x63), 1);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x62), 2);

	assert_int_equal(power(0x00000, IFD_POWER_DOWN, atr, &len), IFD_SUCCESS);
	assert_int_equal(len, 0);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x63), 2);
	assert_int_equal(dev->icc[0], 1);

	/* pcscd powers up again after a power down */
	assert_int_equal(power(0x00000, IFD_POWER_UP, atr, &len), IFD_SUCCESS);
	assert_int_equal(len, sizeof(cac_atr));
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	/* the card is left unpowered */
	assert_int_equal(dev->icc[0], 1);
	free_reader(dev);
}

static void power_up_without_card_fails_and_unknown_action_sends_nothing(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t atr[MAX_ATR_SIZE];
	DWORD len;
	size_t sent;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	dev->icc[0] = 2;
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_NOT_PRESENT);
	assert_int_not_equal(power(0x00000, IFD_POWER_UP, atr, &len), IFD_SUCCESS);
	assert_int_equal(len, 0);
	dev->icc[0] = 1;
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	sent = fake_sent_count(dev->fd);
	assert_int_not_equal(power(0x00000, 503, atr, &len), IFD_SUCCESS);
	assert_int_equal(len, 0);
	assert_int_equal(fake_sent_count(dev->fd), sent);
	assert_int_not_equal(IFDHPowerICC(0x00000, IFD_POWER_UP, atr, NULL), IFD_SUCCESS);
	power_up_ok(0x00000, dev);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

static void power_up_into_small_atr_buffer_does_not_overflow(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t *atr = malloc(10);
	DWORD len = 10;

	(void)state;
	assert_non_null(atr);
	open_ok(0x00000, dev, NAME_UDEV);
	assert_int_equal(IFDHPowerICC(0x00000, IFD_POWER_UP, atr, &len), IFD_ERROR_INSUFFICIENT_BUFFER);
	assert_int_equal(len, 0);
	free(atr);
	power_up_ok(0x00000, dev);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

/* ---- protocol and APDUs ---------------------------------------------------------- */

static void transmit_t0_returns_data_and_status_words(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	const uint8_t *m;
	size_t len;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	connect_t0(0x00000, dev);
	transmit_ok(0x00000, dev);
	/* the TPDU went out as is: case 2, P3 = Le */
	m = fake_sent_last_type(dev->fd, 0x6F, &len);
	assert_non_null(m);
	assert_int_equal(len, 10 + sizeof(read_binary));
	assert_memory_equal(m + 10, read_binary, sizeof(read_binary));
	/* SetProtocolParameters again with the same protocol is harmless */
	assert_int_equal(IFDHSetProtocolParameters(0x00000, SCARD_PROTOCOL_T0, 0, 0, 0, 0), IFD_SUCCESS);
	transmit_ok(0x00000, dev);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

static void transmit_does_not_fetch_61xx_by_itself(void **state)
{
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };
	struct reader_dev *dev = new_reader(NULL);
	uint8_t rx[258];
	DWORD rx_len = sizeof(rx);

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	connect_t0(0x00000, dev);
	dev->resp[0] = 0x61;
	dev->resp[1] = 0x1C;
	dev->resp_len = 2;
	assert_int_equal(transmit(0x00000, 0, select, sizeof(select), rx, &rx_len), IFD_SUCCESS);
	assert_int_equal(rx_len, 2);
	assert_int_equal(rx[0], 0x61);
	assert_int_equal(rx[1], 0x1C);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x6F), 1);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

static void transmit_t1_to_a_t0_card_is_refused(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t rx[64];
	DWORD rx_len = sizeof(rx);

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	power_up_ok(0x00000, dev);
	/* the CAC card offers T=0 only */
	assert_int_equal(IFDHSetProtocolParameters(0x00000, SCARD_PROTOCOL_T1, 0, 0, 0, 0),
			 IFD_PROTOCOL_NOT_SUPPORTED);
	assert_int_equal(IFDHSetProtocolParameters(0x00000, SCARD_PROTOCOL_T0, 0, 0, 0, 0), IFD_SUCCESS);
	assert_int_equal(transmit(0x00000, 1, read_binary, sizeof(read_binary), rx, &rx_len),
			 IFD_PROTOCOL_NOT_SUPPORTED);
	assert_int_equal(rx_len, 0);
	rx_len = sizeof(rx);
	assert_int_not_equal(transmit(0x00000, 2, read_binary, sizeof(read_binary), rx, &rx_len),
			     IFD_SUCCESS);
	assert_int_equal(rx_len, 0);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x6F), 0);
	/* switching protocol needs a reset */
	assert_int_equal(IFDHSetProtocolParameters(0x00000, SCARD_PROTOCOL_T1, 0, 0, 0, 0),
			 IFD_PROTOCOL_NOT_SUPPORTED);
	transmit_ok(0x00000, dev);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

static void transmit_before_protocol_selection_is_refused(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t rx[64];
	DWORD rx_len = sizeof(rx);

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	assert_int_not_equal(transmit(0x00000, 0, read_binary, sizeof(read_binary), rx, &rx_len),
			     IFD_SUCCESS);
	assert_int_equal(rx_len, 0);
	power_up_ok(0x00000, dev);
	rx_len = sizeof(rx);
	assert_int_not_equal(transmit(0x00000, 0, read_binary, sizeof(read_binary), rx, &rx_len),
			     IFD_SUCCESS);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x6F), 0);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

static void transmit_into_too_small_buffer_is_insufficient_buffer(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t *rx = malloc(17);
	DWORD rx_len = 17;

	(void)state;
	assert_non_null(rx);
	open_ok(0x00000, dev, NAME_UDEV);
	connect_t0(0x00000, dev);
	memset(dev->resp, 0x5A, 16);
	dev->resp[16] = 0x90;
	dev->resp[17] = 0x00;
	dev->resp_len = 18;
	/* 16 data bytes and SW1 SW2 into 17 bytes: ASan watches the 18th */
	assert_int_equal(transmit(0x00000, 0, read_binary, sizeof(read_binary), rx, &rx_len),
			 IFD_ERROR_INSUFFICIENT_BUFFER);
	assert_int_equal(rx_len, 0);
	free(rx);
	/* the whole answer was read: the next APDU is in step */
	assert_int_equal(fake_rx_pending(dev->fd), 0);
	transmit_ok(0x00000, dev);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

/* ---- presence ------------------------------------------------------------------- */

static void presence_follows_what_the_reader_reports(void **state)
{
	struct reader_dev *dev = new_reader(NULL);

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	dev->icc[0] = 2;
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_NOT_PRESENT);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_NOT_PRESENT);
	dev->icc[0] = 1;
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	connect_t0(0x00000, dev);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	/* pulled while powered, then a transmit: the card is gone, not the reader */
	dev->icc[0] = 2;
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_NOT_PRESENT);
	assert_int_equal(get_byte(0x00000, SCARD_ATTR_ICC_PRESENCE), 0);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x65), 6);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

/* ---- control codes (IFDHControl, RDF_IOCTL_VENDOR) ------------------------------ */

#define DESC_PIN_SUPPORT 52

static RESPONSECODE control(DWORD lun, DWORD code, const uint8_t *in, DWORD in_len, uint8_t *rx, DWORD rx_len,
			    DWORD *got)
{
	uint8_t tx[64];

	assert_true(in_len <= sizeof(tx));
	if (in_len > 0)
		memcpy(tx, in, in_len);
	*got = 0xBAD;
	return IFDHControl(lun, code, in_len > 0 ? tx : NULL, in_len, rx, rx_len, got);
}

/* pcsc-lite's codes reach the driver; what it does not offer, or what does not
 * fit, gets the IFD code pcscd turns into SCARD_E_UNSUPPORTED_FEATURE or
 * SCARD_E_INSUFFICIENT_BUFFER, with nothing returned. */
static void control_codes_through_ifdhcontrol(void **state)
{
	static const uint8_t tags[] = { FEATURE_VERIFY_PIN_DIRECT, FEATURE_MODIFY_PIN_DIRECT,
					FEATURE_IFD_PIN_PROPERTIES, FEATURE_GET_TLV_PROPERTIES };
	static const uint8_t vendor_id[] = { PCSCv2_PART10_PROPERTY_wIdVendor, 2, 0xE6, 0x08 };
	uint8_t d[54], rx[64], bad_verify[19 + 5] = { 0 };
	struct reader_dev *dev;
	DWORD got;
	size_t i;

	(void)state;
	memcpy(d, qemu_desc, sizeof(d));
	d[DESC_PIN_SUPPORT] = 0x03;
	dev = new_reader(d);
	open_ok(0x00000, dev, NAME_UDEV);
	/* each feature at CM_IOCTL_GET_FEATURE_REQUEST + tag, big-endian */
	assert_int_equal(control(0, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, rx, sizeof(rx), &got), IFD_SUCCESS);
	assert_int_equal(got, 6 * sizeof(tags));
	for (i = 0; i < sizeof(tags); i++) {
		uint32_t code = CM_IOCTL_GET_FEATURE_REQUEST + tags[i];
		const uint8_t want[6] = { tags[i], 4, (uint8_t)(code >> 24), (uint8_t)(code >> 16),
					  (uint8_t)(code >> 8), (uint8_t)code };

		assert_memory_equal(rx + 6 * i, want, 6);
	}
	assert_int_equal(control(0, 0x313520, NULL, 0, rx, sizeof(rx), &got), IFD_SUCCESS);
	assert_int_equal(got, 6 * sizeof(tags));
	/* a buffer one byte short: nothing written, nothing returned */
	memset(rx, 0xA5, sizeof(rx));
	assert_int_equal(control(0, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, rx, 23, &got),
			 IFD_ERROR_INSUFFICIENT_BUFFER);
	assert_int_equal(got, 0);
	for (i = 0; i < sizeof(rx); i++)
		assert_int_equal(rx[i], 0xA5);
	/* the TLV properties carry the device's vendor ID */
	assert_int_equal(control(0, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_GET_TLV_PROPERTIES, NULL, 0, rx,
				 sizeof(rx), &got),
			 IFD_SUCCESS);
	for (i = 0; i + 2 <= got && rx[i] != PCSCv2_PART10_PROPERTY_wIdVendor; i += 2u + rx[i + 1])
		;
	assert_true(i + sizeof(vendor_id) <= got);
	assert_memory_equal(rx + i, vendor_id, sizeof(vendor_id));
	/* a malformed PIN structure (ulDataLength 0, wPINMaxExtraDigit 0): refused */
	assert_int_equal(control(0, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_VERIFY_PIN_DIRECT, bad_verify,
				 sizeof(bad_verify), rx, sizeof(rx), &got),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(got, 0);
	/* not offered: Escape without the administrator's option, eject without
	 * the mechanism, an unknown code */
	assert_int_equal(control(0, SCARD_CTL_CODE(1), (const uint8_t *)"\x01", 1, rx, sizeof(rx), &got),
			 IFD_ERROR_NOT_SUPPORTED);
	assert_int_equal(control(0, SCARD_CTL_CODE(3502), NULL, 0, rx, sizeof(rx), &got),
			 IFD_ERROR_NOT_SUPPORTED);
	assert_int_equal(control(0, SCARD_CTL_CODE(3399), NULL, 0, rx, sizeof(rx), &got),
			 IFD_ERROR_NOT_SUPPORTED);
	assert_int_equal(got, 0);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x69), 0);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x6B), 0);
	assert_int_equal(fake_sent_count_type(dev->fd, 0x71), 0);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

/* Without an interrupt endpoint pcscd polls IFDHICCPresence; each call is one
 * GetSlotStatus. A card pulled and put back between two calls is found
 * inactive after we powered it: reported absent once, then present, so that
 * pcscd sees the old card go and the new one come. */
static void swap_between_two_presence_polls_is_reported_absent_once(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t buf[16];
	DWORD len = sizeof(buf);

	(void)state;
	dev->no_interrupt = 1;
	open_ok(0x00000, dev, NAME_UDEV);
	assert_int_equal(IFDHGetCapabilities(0x00000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, buf),
			 IFD_ERROR_TAG);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	connect_t0(0x00000, dev);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	dev->icc[0] = 1; /* another card, not powered */
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_NOT_PRESENT);
	assert_int_equal(get_cap(0x00000, TAG_IFD_ATR, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_equal(len, 0); /* the old card's ATR is gone */
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	connect_t0(0x00000, dev);
	transmit_ok(0x00000, dev);
	/* one GetSlotStatus per call, nothing else */
	assert_int_equal(fake_sent_count_type(dev->fd, 0x65), 5);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

/* ---- card events: the polling and stop functions ----------------------------------- */

typedef RESPONSECODE (*poll_fn)(DWORD Lun, int timeout);
typedef RESPONSECODE (*stop_fn)(DWORD Lun);

static void polling_function_only_with_an_interrupt_endpoint(void **state)
{
	struct reader_dev *with = new_reader(NULL), *without = new_reader(NULL);
	poll_fn poll = NULL;
	stop_fn stop = NULL;
	uint8_t buf[16];
	DWORD len;

	(void)state;
	without->no_interrupt = 1;
	open_ok(0x00000, with, NAME_UDEV);
	open_ok(0x10000, without, NAME_LIBUSB);
	len = sizeof(poll);
	assert_int_equal(IFDHGetCapabilities(0x00000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, (PUCHAR)&poll),
			 IFD_SUCCESS);
	assert_int_equal(len, sizeof(poll));
	assert_non_null(poll);
	len = sizeof(stop);
	assert_int_equal(IFDHGetCapabilities(0x00000, TAG_IFD_STOP_POLLING_THREAD, &len, (PUCHAR)&stop),
			 IFD_SUCCESS);
	assert_int_equal(len, sizeof(stop));
	assert_non_null(stop);
	assert_int_equal(get_byte(0x00000, TAG_IFD_POLLING_THREAD_KILLABLE), 0);
	len = sizeof(buf);
	assert_int_equal(IFDHGetCapabilities(0x10000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, buf),
			 IFD_ERROR_TAG);
	len = sizeof(buf);
	assert_int_equal(IFDHGetCapabilities(0x10000, TAG_IFD_STOP_POLLING_THREAD, &len, buf), IFD_ERROR_TAG);
	len = sizeof(buf);
	assert_int_equal(IFDHGetCapabilities(0x10000, TAG_IFD_POLLING_THREAD_KILLABLE, &len, buf),
			 IFD_ERROR_TAG);
	/* asking sends nothing */
	assert_int_equal(fake_sent_count(with->fd), 0);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(0x10000), IFD_SUCCESS);
	free_reader(with);
	free_reader(without);
}

/* pcscd's event thread in the polling function. */
struct poll_thread {
	poll_fn poll;
	DWORD lun;
	int timeout;
	pthread_t thread;
	atomic_bool done;
	RESPONSECODE rc;
	uint64_t start_us, end_us;
};

static void *poll_thread_run(void *arg)
{
	struct poll_thread *p = arg;

	p->rc = p->poll(p->lun, p->timeout);
	p->end_us = now_us();
	atomic_store(&p->done, true);
	return NULL;
}

static void poll_thread_start(struct poll_thread *p, poll_fn poll, DWORD lun, int timeout)
{
	memset(p, 0, sizeof(*p));
	p->poll = poll;
	p->lun = lun;
	p->timeout = timeout;
	atomic_init(&p->done, false);
	p->start_us = now_us();
	assert_int_equal(pthread_create(&p->thread, NULL, poll_thread_run, p), 0);
}

static RESPONSECODE poll_thread_join(struct poll_thread *p)
{
	assert_int_equal(pthread_join(p->thread, NULL), 0);
	return p->rc;
}

/* A poll's return within this is "at once". */
#define AT_ONCE_US 100000u

/* Once the reader is gone, or pcscd said so, the polling function waits,
 * without a transfer, for the stop function (IFD_SUCCESS: pcscd's thread
 * then dies at once instead of pausing 400 ms) or its timeout
 * (IFD_NO_SUCH_DEVICE). A stop before the poll ends it at once. On a Lun
 * nobody opened it fails and the stop function does nothing harmful. */
static void polling_function_on_a_gone_reader_waits_for_the_stop(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	struct poll_thread p;
	poll_fn poll = NULL;
	stop_fn stop = NULL;
	size_t sent, reads;
	uint64_t t0;
	DWORD len;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	len = sizeof(poll);
	assert_int_equal(IFDHGetCapabilities(0x00000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, (PUCHAR)&poll),
			 IFD_SUCCESS);
	len = sizeof(stop);
	assert_int_equal(IFDHGetCapabilities(0x00000, TAG_IFD_STOP_POLLING_THREAD, &len, (PUCHAR)&stop),
			 IFD_SUCCESS);
	assert_int_equal(poll(0x70000, 100000), IFD_COMMUNICATION_ERROR);
	assert_int_equal(stop(0x70000), IFD_SUCCESS);
	assert_int_equal(IFDHSetCapabilities(0x00000, TAG_IFD_DEVICE_REMOVED, 0, NULL), IFD_SUCCESS);
	sent = fake_sent_count(dev->fd);
	reads = fake_receive_calls(dev->fd);
	/* nobody stops it: the timeout, no sooner */
	t0 = now_us();
	assert_int_equal(poll(0x00000, 30), IFD_NO_SUCH_DEVICE);
	assert_true(now_us() - t0 >= 30000u);
	/* stopped 100 ms after it began: it ends then, with IFD_SUCCESS */
	poll_thread_start(&p, poll, 0x00000, 100000);
	sleep_ms(100);
	assert_false(atomic_load(&p.done));
	t0 = now_us();
	assert_int_equal(stop(0x00000), IFD_SUCCESS);
	assert_int_equal(poll_thread_join(&p), IFD_SUCCESS);
	assert_true(p.end_us - p.start_us >= 90000u);
	assert_true(p.end_us - t0 < AT_ONCE_US);
	/* a stop between two polls: the next one returns at once */
	assert_int_equal(stop(0x00000), IFD_SUCCESS);
	t0 = now_us();
	assert_int_equal(poll(0x00000, 100000), IFD_SUCCESS);
	assert_true(now_us() - t0 < AT_ONCE_US);
	/* pcscd said it is removed: nothing to tell it (no NO_SUCH_DEVICE) */
	assert_int_equal(IFDHICCPresence(0x00000), IFD_COMMUNICATION_ERROR);
	assert_int_equal(fake_sent_count(dev->fd), sent);
	assert_int_equal(fake_receive_calls(dev->fd), reads);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);

	/* gone because a transfer found it gone */
	dev = new_reader(NULL);
	open_ok(0x00000, dev, NAME_UDEV);
	fake_send_result(dev->fd, TP_NO_DEVICE);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_NO_SUCH_DEVICE);
	t0 = now_us();
	assert_int_equal(poll(0x00000, 30), IFD_NO_SUCH_DEVICE);
	assert_true(now_us() - t0 >= 30000u);
	assert_int_equal(stop(0x00000), IFD_SUCCESS);
	assert_int_equal(poll(0x00000, 100000), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

/* IFDHCloseChannel while a poll waits on a gone reader and nobody called the
 * stop function: close does not wait for the poll (it holds nothing), the
 * poll ends at once with IFD_SUCCESS, nothing leaks. */
static void close_channel_ends_a_poll_waiting_on_a_gone_reader(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	struct poll_thread p;
	poll_fn poll = NULL;
	uint64_t t0;
	DWORD len;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	len = sizeof(poll);
	assert_int_equal(IFDHGetCapabilities(0x00000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, (PUCHAR)&poll),
			 IFD_SUCCESS);
	fake_send_result(dev->fd, TP_NO_DEVICE);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_NO_SUCH_DEVICE);
	poll_thread_start(&p, poll, 0x00000, 100000);
	sleep_ms(40);
	assert_false(atomic_load(&p.done));
	t0 = now_us();
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	assert_true(now_us() - t0 < AT_ONCE_US);
	assert_int_equal(poll_thread_join(&p), IFD_SUCCESS);
	assert_true(p.end_us - t0 < AT_ONCE_US);
	free_reader(dev);
#if HAVE_LSAN
	assert_int_equal(__lsan_do_recoverable_leak_check(), 0);
#endif
}

/* pcscd's RFRemoveReader sets TAG_IFD_DEVICE_REMOVED only after asking for
 * it and getting IFD_SUCCESS with the value 1 (libccid's answer): any other
 * answer and the driver never hears that the device went. After the tag is
 * set, the polling and stop functions are still handed out (pcscd may ask
 * for them on a reader it is removing): the stop ends the poll, which
 * otherwise waits for its timeout; nothing goes to the device. */
static void device_removed_tag_is_asked_then_set_as_pcscd_does(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	poll_fn poll = NULL;
	stop_fn stop = NULL;
	uint8_t value[4];
	size_t sent, reads;
	DWORD len;

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	assert_int_equal(get_cap(0x00000, TAG_IFD_DEVICE_REMOVED, value, 0, &len), IFD_ERROR_INSUFFICIENT_BUFFER);
	memset(value, 0, sizeof(value));
	assert_int_equal(get_cap(0x00000, TAG_IFD_DEVICE_REMOVED, value, 1, &len), IFD_SUCCESS);
	assert_int_equal(len, 1);
	assert_int_equal(value[0], 1);
	sent = fake_sent_count(dev->fd);
	reads = fake_receive_calls(dev->fd);
	assert_int_equal(IFDHSetCapabilities(0x00000, TAG_IFD_DEVICE_REMOVED, len, value), IFD_SUCCESS);
	len = sizeof(poll);
	assert_int_equal(IFDHGetCapabilities(0x00000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, (PUCHAR)&poll),
			 IFD_SUCCESS);
	assert_non_null(poll);
	len = sizeof(stop);
	assert_int_equal(IFDHGetCapabilities(0x00000, TAG_IFD_STOP_POLLING_THREAD, &len, (PUCHAR)&stop),
			 IFD_SUCCESS);
	assert_non_null(stop);
	assert_int_equal(stop(0x00000), IFD_SUCCESS);
	assert_int_equal(poll(0x00000, 100000), IFD_SUCCESS);
	assert_int_equal(poll(0x00000, 10), IFD_NO_SUCH_DEVICE);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_COMMUNICATION_ERROR);
	assert_int_equal(fake_sent_count(dev->fd), sent);
	assert_int_equal(fake_receive_calls(dev->fd), reads);
	/* a Lun nobody opened has no polling function */
	len = sizeof(poll);
	assert_int_equal(IFDHGetCapabilities(0x70000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &len, (PUCHAR)&poll),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(IFDHCloseChannel(0x00000), IFD_SUCCESS);
	free_reader(dev);
}

/* ---- the reader goes away -------------------------------------------------------- */

/* Every call on a reader that is gone: want (NO_SUCH_DEVICE when the driver
 * found it gone, COMMUNICATION_ERROR once pcscd said it was removed), and no
 * transfer at all. */
static void assert_gone_as(DWORD lun, struct reader_dev *dev, RESPONSECODE want)
{
	size_t sent = fake_sent_count(dev->fd), reads = fake_receive_calls(dev->fd);
	size_t ctrls = fake_control_count(dev->fd);
	uint8_t buf[MAX_ATR_SIZE], rx[64];
	DWORD len, rx_len = sizeof(rx);

	assert_int_equal(IFDHICCPresence(lun), want);
	assert_int_equal(IFDHICCPresence(lun), want);
	assert_int_equal(power(lun, IFD_POWER_UP, buf, &len), want);
	assert_int_equal(len, 0);
	assert_int_equal(power(lun, IFD_RESET, buf, &len), want);
	assert_int_equal(power(lun, IFD_POWER_DOWN, buf, &len), want);
	assert_int_equal(IFDHSetProtocolParameters(lun, SCARD_PROTOCOL_T0, 0, 0, 0, 0), want);
	assert_int_equal(transmit(lun, 0, read_binary, sizeof(read_binary), rx, &rx_len), want);
	assert_int_equal(rx_len, 0);
	assert_int_equal(get_cap(lun, TAG_IFD_ATR, buf, sizeof(buf), &len), want);
	assert_int_equal(get_cap(lun, SCARD_ATTR_ICC_PRESENCE, buf, sizeof(buf), &len), want);
	assert_int_equal(IFDHControl(lun, 0x42000D48, NULL, 0, rx, sizeof(rx), &len), want);
	assert_int_equal(fake_sent_count(dev->fd), sent);
	assert_int_equal(fake_receive_calls(dev->fd), reads);
	assert_int_equal(fake_control_count(dev->fd), ctrls);
	/* pcscd closes the channel: no power down is attempted on a gone reader */
	assert_int_equal(IFDHCloseChannel(lun), IFD_SUCCESS);
	assert_int_equal(fake_sent_count(dev->fd), sent);
	free_reader(dev);
}

static void assert_gone(DWORD lun, struct reader_dev *dev)
{
	assert_gone_as(lun, dev, IFD_NO_SUCH_DEVICE);
}

static void unplug_mid_apdu(enum unplug_how how)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t rx[64];
	DWORD rx_len = sizeof(rx);

	open_ok(0x00000, dev, NAME_UDEV);
	connect_t0(0x00000, dev);
	dev->unplug_on = 0x6F;
	dev->unplug = how;
	assert_int_equal(transmit(0x00000, 0, read_binary, sizeof(read_binary), rx, &rx_len), IFD_NO_SUCH_DEVICE);
	assert_int_equal(rx_len, 0);
	assert_gone(0x00000, dev);
}

static void reader_unplugged_mid_apdu_is_no_such_device_from_then_on(void **state)
{
	(void)state;
	unplug_mid_apdu(UNPLUG_RX);
	unplug_mid_apdu(UNPLUG_PARTIAL);
	unplug_mid_apdu(UNPLUG_MUTE_ABORT);
}

/* The reader sends a transfer that is no answer and vanishes while the driver
 * flushes it: the call that saw it go must also say NO_SUCH_DEVICE, as pcscd
 * then stops polling instead of reporting a communication error (it once said
 * IFD_COMMUNICATION_ERROR: found by this test, fixed in 01858d7). */
static void reader_unplugged_while_flushing_garbage_is_no_such_device(void **state)
{
	(void)state;
	unplug_mid_apdu(UNPLUG_GARBAGE);
}

static void reader_unplugged_at_send_is_no_such_device(void **state)
{
	struct reader_dev *dev = new_reader(NULL);
	uint8_t rx[64];
	DWORD rx_len = sizeof(rx);

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	connect_t0(0x00000, dev);
	fake_send_result(dev->fd, TP_NO_DEVICE);
	assert_int_equal(transmit(0x00000, 0, read_binary, sizeof(read_binary), rx, &rx_len), IFD_NO_SUCH_DEVICE);
	assert_gone(0x00000, dev);
}

static void reader_unplugged_during_power_up_presence_or_parameters(void **state)
{
	uint8_t d[54], atr[MAX_ATR_SIZE];
	struct reader_dev *dev;
	DWORD len;
	uint32_t feat = FEAT_TPDU_MANUAL;

	(void)state;
	dev = new_reader(NULL);
	open_ok(0x00000, dev, NAME_UDEV);
	assert_int_equal(IFDHICCPresence(0x00000), IFD_ICC_PRESENT);
	dev->unplug_on = 0x62;
	dev->unplug = UNPLUG_RX;
	assert_int_equal(power(0x00000, IFD_POWER_UP, atr, &len), IFD_NO_SUCH_DEVICE);
	assert_int_equal(len, 0);
	assert_gone(0x00000, dev);

	dev = new_reader(NULL);
	open_ok(0x00000, dev, NAME_UDEV);
	dev->unplug_on = 0x65;
	dev->unplug = UNPLUG_PARTIAL;
	assert_int_equal(IFDHICCPresence(0x00000), IFD_NO_SUCH_DEVICE);
	assert_gone(0x00000, dev);

	/* a reader that needs SetParameters */
	memcpy(d, qemu_desc, sizeof(d));
	memcpy(d + DESC_FEATURES, &feat, 4);
	dev = new_reader(d);
	open_ok(0x00000, dev, NAME_UDEV);
	power_up_ok(0x00000, dev);
	dev->unplug_on = 0x61;
	dev->unplug = UNPLUG_RX;
	assert_int_equal(IFDHSetProtocolParameters(0x00000, SCARD_PROTOCOL_T0, 0, 0, 0, 0), IFD_NO_SUCH_DEVICE);
	assert_gone(0x00000, dev);
}

static void device_removed_tag_stops_all_transfers(void **state)
{
	struct reader_dev *dev = new_reader(NULL);

	(void)state;
	open_ok(0x00000, dev, NAME_UDEV);
	connect_t0(0x00000, dev);
	transmit_ok(0x00000, dev);
	assert_int_equal(IFDHSetCapabilities(0x00000, TAG_IFD_DEVICE_REMOVED, 0, NULL), IFD_SUCCESS);
	assert_false(fake_closed(dev->fd));
	/* pcscd knows: no NO_SUCH_DEVICE, which would make it sleep a second */
	assert_gone_as(0x00000, dev, IFD_COMMUNICATION_ERROR);
}

/* ---- many readers, several slots ------------------------------------------------- */

#define MANY 41 /* reader indexes 0..40: libccid stops at 16 */

static void forty_one_readers_open_at_once_and_stay_independent(void **state)
{
	struct reader_dev *dev[MANY];
	uint8_t atr[MAX_ATR_SIZE];
	char name[80];
	DWORD len;

	(void)state;
	for (unsigned i = 0; i < MANY; i++) {
		dev[i] = new_reader(NULL);
		dev[i]->atr[dev[i]->atr_len - 1] = (uint8_t)i; /* a historical byte tells them apart */
		if (i % 2)
			snprintf(name, sizeof(name), "usb:08e6/4433:libusb-1.0:2:%u:0", i + 2);
		else
			snprintf(name, sizeof(name), "usb:08e6/4433:libudev:0:/dev/bus/usb/002/%03u", i + 2);
		open_ok((DWORD)i << 16, dev[i], name);
	}
	for (unsigned i = 0; i < MANY; i++) {
		DWORD lun = (DWORD)i << 16;

		assert_int_equal(get_dword(lun, SCARD_ATTR_CHANNEL_ID), CHANNEL_USB | 0x0200 | (i + 2));
		connect_t0(lun, dev[i]);
	}
	/* each Lun reaches its own device, whatever happens to the others */
	assert_int_equal(IFDHSetCapabilities(7u << 16, TAG_IFD_DEVICE_REMOVED, 0, NULL), IFD_SUCCESS);
	fake_send_result(dev[23]->fd, TP_NO_DEVICE);
	assert_int_equal(IFDHICCPresence(23u << 16), IFD_NO_SUCH_DEVICE);
	dev[16]->icc[0] = 2;
	for (unsigned i = 0; i < MANY; i++) {
		DWORD lun = (DWORD)i << 16;
		uint8_t buf[MAX_ATR_SIZE];

		if (i == 7 || i == 23) { /* removed by pcscd, found gone by a transfer */
			assert_int_equal(IFDHICCPresence(lun),
					 i == 7 ? IFD_COMMUNICATION_ERROR : IFD_NO_SUCH_DEVICE);
			continue;
		}
		assert_int_equal(IFDHICCPresence(lun), i == 16 ? IFD_ICC_NOT_PRESENT : IFD_ICC_PRESENT);
		if (i == 16)
			continue;
		assert_int_equal(get_cap(lun, TAG_IFD_ATR, buf, sizeof(buf), &len), IFD_SUCCESS);
		assert_int_equal(len, sizeof(cac_atr));
		assert_int_equal(buf[len - 1], i);
		transmit_ok(lun, dev[i]);
	}
	/* close every other reader; the rest keep working */
	for (unsigned i = 0; i < MANY; i += 2) {
		assert_int_equal(IFDHCloseChannel((DWORD)i << 16), IFD_SUCCESS);
		assert_true(fake_closed(dev[i]->fd));
	}
	for (unsigned i = 1; i < MANY; i += 2) {
		DWORD lun = (DWORD)i << 16;

		assert_false(fake_closed(dev[i]->fd));
		if (i == 7 || i == 23)
			continue;
		assert_int_equal(power(lun, IFD_RESET, atr, &len), IFD_SUCCESS);
		assert_int_equal(atr[len - 1], i);
	}
	for (unsigned i = 1; i < MANY; i += 2)
		assert_int_equal(IFDHCloseChannel((DWORD)i << 16), IFD_SUCCESS);
	for (unsigned i = 0; i < MANY; i++)
		free_reader(dev[i]);
}

static void two_slot_reader_slots_open_and_close_independently(void **state)
{
	uint8_t d[54], atr[MAX_ATR_SIZE];
	struct reader_dev *dev;
	const uint8_t *m;
	unsigned opens;
	DWORD len;

	(void)state;
	memcpy(d, qemu_desc, sizeof(d));
	d[DESC_SLOT_INDEX] = 1;
	dev = new_reader(d);
	open_ok(0x30000, dev, NAME_UDEV);
	opens = transport_opens;
	/* pcscd opens slot 1 under the same name: no second transport */
	assert_int_equal(create(0x30001, NAME_UDEV), IFD_SUCCESS);
	assert_int_equal(transport_opens, opens);
	assert_int_not_equal(create(0x30002, NAME_UDEV), IFD_SUCCESS);
	assert_int_equal(get_byte(0x30000, TAG_IFD_SLOTS_NUMBER), 2);
	assert_int_equal(get_byte(0x30001, TAG_IFD_SLOTS_NUMBER), 2);

	dev->icc[1] = 2;
	assert_int_equal(IFDHICCPresence(0x30000), IFD_ICC_PRESENT);
	assert_int_equal(IFDHICCPresence(0x30001), IFD_ICC_NOT_PRESENT);
	dev->icc[1] = 1;
	assert_int_equal(IFDHICCPresence(0x30001), IFD_ICC_PRESENT);
	connect_t0(0x30001, dev);
	m = fake_sent_last_type(dev->fd, 0x62, NULL);
	assert_int_equal(m[5], 1); /* bSlot */
	assert_int_equal(dev->icc[0], 1);
	assert_int_equal(dev->icc[1], 0);
	connect_t0(0x30000, dev);
	assert_int_equal(dev->icc[0], 0);

	assert_int_equal(IFDHCloseChannel(0x30000), IFD_SUCCESS);
	assert_false(fake_closed(dev->fd));
	assert_int_equal(dev->icc[0], 1); /* slot 0 powered down */
	assert_int_equal(dev->icc[1], 0);
	assert_int_equal(IFDHICCPresence(0x30000), IFD_COMMUNICATION_ERROR);
	assert_int_equal(IFDHICCPresence(0x30001), IFD_ICC_PRESENT);
	transmit_ok(0x30001, dev);
	m = fake_sent_last_type(dev->fd, 0x6F, NULL);
	assert_int_equal(m[5], 1);
	assert_int_equal(power(0x30001, IFD_RESET, atr, &len), IFD_SUCCESS);
	assert_int_equal(len, sizeof(cac_atr));

	assert_int_equal(IFDHCloseChannel(0x30001), IFD_SUCCESS);
	assert_true(fake_closed(dev->fd));
	assert_int_equal(IFDHICCPresence(0x30001), IFD_COMMUNICATION_ERROR);
	free_reader(dev);
}

/* ---- readers in parallel threads ------------------------------------------------ */

/* TAG_IFD_THREAD_SAFE says pcscd may call different readers at the same time,
 * and its hotplug thread opens and closes readers meanwhile. Workers talk to
 * their own readers while the main thread opens and closes others far up the
 * table (making it grow); no failure, no sanitizer report. */
#define WORKERS 4
#define WORKER_ROUNDS 200

struct worker {
	DWORD lun;
	struct reader_dev *dev;
	unsigned failures;
	pthread_t thread;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	uint8_t *rx = malloc(PCSCD_RX_LEN), atr[MAX_ATR_SIZE];
	DWORD rx_len, len;

	if (rx == NULL) {
		w->failures++;
		return NULL;
	}
	for (unsigned i = 0; i < WORKER_ROUNDS; i++) {
		rx_len = PCSCD_RX_LEN;
		w->failures += IFDHICCPresence(w->lun) != IFD_ICC_PRESENT;
		w->failures += transmit(w->lun, 0, read_binary, sizeof(read_binary), rx, &rx_len) != IFD_SUCCESS;
		w->failures += rx_len != w->dev->resp_len || memcmp(rx, w->dev->resp, rx_len) != 0;
		len = sizeof(atr);
		w->failures += IFDHGetCapabilities(w->lun, TAG_IFD_ATR, &len, atr) != IFD_SUCCESS;
		w->failures += len != w->dev->atr_len || memcmp(atr, w->dev->atr, len) != 0;
	}
	free(rx);
	return NULL;
}

static void readers_work_in_parallel_while_others_come_and_go(void **state)
{
	struct worker w[WORKERS];
	struct reader_dev *other;

	(void)state;
	for (unsigned i = 0; i < WORKERS; i++) {
		w[i].lun = (DWORD)(100 + i) << 16;
		w[i].dev = new_reader(NULL);
		w[i].dev->atr[w[i].dev->atr_len - 1] = (uint8_t)i;
		w[i].failures = 0;
		open_ok(w[i].lun, w[i].dev, NAME_UDEV);
		connect_t0(w[i].lun, w[i].dev);
		for (size_t k = 0; k < 16; k++)
			w[i].dev->resp[k] = (uint8_t)(i * 16 + k);
		w[i].dev->resp[16] = 0x90;
		w[i].dev->resp[17] = 0x00;
		w[i].dev->resp_len = 18;
	}
	for (unsigned i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_create(&w[i].thread, NULL, worker_run, &w[i]), 0);
	/* the hotplug thread's work: readers at indexes up to 1000 come and go */
	for (unsigned i = 0; i < 60; i++) {
		DWORD lun = (DWORD)(200 + i * 13) << 16;

		other = new_reader(NULL);
		open_ok(lun, other, NAME_LIBUSB);
		assert_int_equal(IFDHICCPresence(lun), IFD_ICC_PRESENT);
		assert_int_equal(IFDHCloseChannel(lun), IFD_SUCCESS);
		free_reader(other);
	}
	for (unsigned i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_join(w[i].thread, NULL), 0);
	for (unsigned i = 0; i < WORKERS; i++) {
		assert_int_equal(w[i].failures, 0);
		assert_int_equal(fake_sent_count_type(w[i].dev->fd, 0x6F), WORKER_ROUNDS);
		assert_int_equal(IFDHCloseChannel(w[i].lun), IFD_SUCCESS);
		free_reader(w[i].dev);
	}
}

/* ---- Luns nobody opened ------------------------------------------------------------- */

static void calls_on_a_lun_never_opened_fail_cleanly(const DWORD lun)
{
	uint8_t buf[MAX_ATR_SIZE + 4], rx[64];
	DWORD len, rx_len = sizeof(rx);

	assert_int_not_equal(IFDHICCPresence(lun), IFD_ICC_PRESENT);
	assert_int_not_equal(IFDHICCPresence(lun), IFD_ICC_NOT_PRESENT);
	assert_int_not_equal(power(lun, IFD_POWER_UP, buf, &len), IFD_SUCCESS);
	assert_int_equal(len, 0);
	assert_int_not_equal(IFDHSetProtocolParameters(lun, SCARD_PROTOCOL_T0, 0, 0, 0, 0), IFD_SUCCESS);
	assert_int_not_equal(transmit(lun, 0, read_binary, sizeof(read_binary), rx, &rx_len), IFD_SUCCESS);
	assert_int_equal(rx_len, 0);
	assert_int_not_equal(get_cap(lun, TAG_IFD_ATR, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_not_equal(get_cap(lun, TAG_IFD_SLOTS_NUMBER, buf, sizeof(buf), &len), IFD_SUCCESS);
	assert_int_not_equal(get_cap(lun, SCARD_ATTR_VENDOR_NAME, buf, sizeof(buf), &len), IFD_SUCCESS);
	len = 1;
	assert_int_not_equal(IFDHControl(lun, 0x42000D48, NULL, 0, rx, sizeof(rx), &len), IFD_SUCCESS);
	assert_int_equal(len, 0);
	/* pcscd may tell a Lun it never opened that it is removed, and close it */
	IFDHSetCapabilities(lun, TAG_IFD_DEVICE_REMOVED, 0, NULL);
	IFDHCloseChannel(lun);
}

static void luns_never_opened_are_errors_not_crashes(void **state)
{
	struct reader_dev *dev = new_reader(NULL);

	(void)state;
	calls_on_a_lun_never_opened_fail_cleanly(0x00000);
	calls_on_a_lun_never_opened_fail_cleanly(0x7F0000);
	calls_on_a_lun_never_opened_fail_cleanly(0xFFFF0000);
	calls_on_a_lun_never_opened_fail_cleanly(0xFFFFFFFF);
	/* an open reader, but a slot it does not have, and a Lun next to it */
	open_ok(0x20000, dev, NAME_UDEV);
	calls_on_a_lun_never_opened_fail_cleanly(0x20001);
	calls_on_a_lun_never_opened_fail_cleanly(0x20005);
	calls_on_a_lun_never_opened_fail_cleanly(0x20021);
	calls_on_a_lun_never_opened_fail_cleanly(0x10000);
	/* none of that touched the open reader */
	assert_int_equal(fake_sent_count(dev->fd), 0);
	assert_int_equal(IFDHICCPresence(0x20000), IFD_ICC_PRESENT);
	assert_int_equal(IFDHCloseChannel(0x20000), IFD_SUCCESS);
	/* closing twice is harmless */
	assert_int_equal(IFDHCloseChannel(0x20000), IFD_SUCCESS);
	calls_on_a_lun_never_opened_fail_cleanly(0x20000);
	free_reader(dev);
}

/* IFDHCloseChannel on Lun 0x20020 (slot 32, never opened) must not touch reader
 * 2: lun_release once took the slot's bit as 1u << (slot & 31), which cleared
 * slot 0's bit and closed the reader under the application using Lun 0x20000
 * (found by this test, fixed in 01858d7). */
static void closing_never_opened_slot_32_leaves_slot_0_open(void **state)
{
	struct reader_dev *dev = new_reader(NULL);

	(void)state;
	open_ok(0x20000, dev, NAME_UDEV);
	assert_int_equal(IFDHCloseChannel(0x20020), IFD_SUCCESS);
	assert_false(fake_closed(dev->fd));
	assert_int_equal(IFDHICCPresence(0x20000), IFD_ICC_PRESENT);
	assert_int_equal(IFDHCloseChannel(0x20000), IFD_SUCCESS);
	free_reader(dev);
}

/* ---- closing frees everything ------------------------------------------------------ */

static void close_channel_frees_everything(void **state)
{
	struct reader_dev *dev[3];
	uint8_t d[54];

	(void)state;
	if (!HAVE_LSAN) {
		print_message("not built with AddressSanitizer: leak check skipped\n");
		skip();
	}
	memcpy(d, qemu_desc, sizeof(d));
	d[DESC_SLOT_INDEX] = 2;
	for (unsigned i = 0; i < 3; i++) {
		dev[i] = new_reader(i == 1 ? d : NULL);
		open_ok((DWORD)(i + 60) << 16, dev[i], NAME_UDEV);
		connect_t0((DWORD)(i + 60) << 16, dev[i]);
		transmit_ok((DWORD)(i + 60) << 16, dev[i]);
	}
	assert_int_equal(create(0x3D0002, NAME_UDEV), IFD_SUCCESS);
	connect_t0(0x3D0002, dev[1]);
	IFDHSetCapabilities(62u << 16, TAG_IFD_DEVICE_REMOVED, 0, NULL);
	assert_int_equal(IFDHCloseChannel(60u << 16), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(61u << 16), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(0x3D0002), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(62u << 16), IFD_SUCCESS);
	for (unsigned i = 0; i < 3; i++)
		free_reader(dev[i]);
#if HAVE_LSAN
	/* 0 when nothing is leaked (also 0 when ASAN_OPTIONS=detect_leaks=0) */
	assert_int_equal(__lsan_do_recoverable_leak_check(), 0);
#endif
}

#define TEST(f) cmocka_unit_test_teardown(f, close_leftovers)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(create_channel_accepts_both_device_name_forms),
		TEST(create_channel_on_non_ccid_interface_is_no_such_device),
		TEST(create_channel_refuses_unusable_descriptor_and_closes_it),
		TEST(create_channel_by_channel_number_is_not_supported),
		TEST(same_lun_opened_twice_keeps_the_first_reader),
		TEST(capabilities_of_the_driver_and_the_reader),
		TEST(capabilities_follow_the_card),
		TEST(unknown_tag_is_error_tag),
		TEST(too_small_buffer_is_insufficient_buffer_without_overflow),
		TEST(power_up_reset_and_down_return_the_atr),
		TEST(power_up_without_card_fails_and_unknown_action_sends_nothing),
		TEST(power_up_into_small_atr_buffer_does_not_overflow),
		TEST(transmit_t0_returns_data_and_status_words),
		TEST(transmit_does_not_fetch_61xx_by_itself),
		TEST(transmit_t1_to_a_t0_card_is_refused),
		TEST(transmit_before_protocol_selection_is_refused),
		TEST(transmit_into_too_small_buffer_is_insufficient_buffer),
		TEST(presence_follows_what_the_reader_reports),
		TEST(swap_between_two_presence_polls_is_reported_absent_once),
		TEST(polling_function_only_with_an_interrupt_endpoint),
		TEST(polling_function_on_a_gone_reader_waits_for_the_stop),
		TEST(close_channel_ends_a_poll_waiting_on_a_gone_reader),
		TEST(device_removed_tag_is_asked_then_set_as_pcscd_does),
		TEST(control_codes_through_ifdhcontrol),
		TEST(reader_unplugged_mid_apdu_is_no_such_device_from_then_on),
		TEST(reader_unplugged_while_flushing_garbage_is_no_such_device),
		TEST(reader_unplugged_at_send_is_no_such_device),
		TEST(reader_unplugged_during_power_up_presence_or_parameters),
		TEST(device_removed_tag_stops_all_transfers),
		TEST(forty_one_readers_open_at_once_and_stay_independent),
		TEST(two_slot_reader_slots_open_and_close_independently),
		TEST(readers_work_in_parallel_while_others_come_and_go),
		TEST(luns_never_opened_are_errors_not_crashes),
		TEST(closing_never_opened_slot_32_leaves_slot_0_open),
		TEST(close_channel_frees_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
