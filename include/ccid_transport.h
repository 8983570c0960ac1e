/* The only way from the CCID reader driver down to a device.
 *
 * A small vtable at raw USB level (bulk OUT, bulk IN, interrupt IN, control),
 * knowing nothing of CCID messages: framing, bSeq matching and reassembly live in
 * src/ccid/ccid_xfer.c. src/transport/usb.c implements it with libusb-1.0; the
 * tests implement it with an in-process virtual reader or a scripted fake. */
#ifndef CCID_TRANSPORT_H
#define CCID_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

enum tp_status {
	TP_OK = 0,
	TP_TIMEOUT,
	TP_NO_DEVICE,   /* unplugged */
	TP_STALL,       /* endpoint or control request stalled */
	TP_CANCELLED,
	TP_IO_ERROR,
	TP_NO_MEMORY,
	TP_INVALID,     /* bad device name, not a CCID interface */
};
typedef enum tp_status tp_status;

const char *tp_status_str(tp_status st);

#define TP_CLASS_DESC_LEN 54
#define TP_STRING_MAX 128

/* What the transport found when it opened the device. */
struct tp_info {
	uint16_t vendor_id, product_id, bcd_device;
	uint8_t bus, address, interface_number;
	uint16_t bulk_in_packet;       /* wMaxPacketSize of bulk IN */
	int has_interrupt;             /* an interrupt IN endpoint exists */
	uint8_t class_desc[TP_CLASS_DESC_LEN]; /* the CCID class descriptor, as read */
	size_t class_desc_len;         /* bytes actually present (may be < 54: reject) */
	char manufacturer[TP_STRING_MAX];
	char product[TP_STRING_MAX];
	char serial[TP_STRING_MAX];
};

struct ccid_transport;

struct ccid_transport_ops {
	/* Write one whole message to bulk OUT. */
	tp_status (*send)(struct ccid_transport *tp, const uint8_t *buf, size_t len, unsigned timeout_ms);
	/* One bulk IN transfer into buf (cap bytes); *got may be 0 (zero-length
	 * packet) or any size up to cap: reassembly is the caller's job. */
	tp_status (*receive)(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
			     unsigned timeout_ms);
	/* Wait for one interrupt IN message; cancellable with cancel(). */
	tp_status (*wait_interrupt)(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
				    unsigned timeout_ms);
	/* Class request to the interface (wIndex is filled in by the transport).
	 * For IN requests, data receives up to len bytes and *got says how many. */
	tp_status (*control)(struct ccid_transport *tp, uint8_t request_type, uint8_t request,
			     uint16_t value, uint8_t *data, uint16_t len, size_t *got, unsigned timeout_ms);
	/* Make a pending wait_interrupt return TP_CANCELLED. A cancel that comes
	 * while no wait runs is remembered: the next wait returns TP_CANCELLED at
	 * once, so a stop that races the start of a wait is never lost. */
	void (*cancel)(struct ccid_transport *tp);
	/* Release everything; tp is invalid afterwards. */
	void (*close)(struct ccid_transport *tp);
};

struct ccid_transport {
	const struct ccid_transport_ops *ops;
	struct tp_info info;
	void *priv;
};

/* libusb transport, opened by pcscd's device name (both forms). TP_INVALID for
 * a malformed name or an interface that is not a CCID one. */
tp_status usb_transport_open(const char *device_name, struct ccid_transport **out);

/* pcscd's device names:
 *   usb:VVVV/PPPP:libudev:IFACE:/dev/bus/usb/BBB/DDD
 *   usb:VVVV/PPPP:libusb-1.0:BUS:ADDR:IFACE
 * A bare "usb:VVVV/PPPP" (reader.conf) leaves bus/address/interface unset (-1). */
struct usb_devname {
	uint16_t vendor_id, product_id;
	int bus, address, interface_number;
};
int usb_devname_parse(const char *name, struct usb_devname *out); /* 0 ok, -1 malformed */

#endif
