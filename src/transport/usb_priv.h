/* What the two halves of the libusb transport share: usb.c finds and opens the
 * device, usb_io.c moves the bytes. Private to src/transport/. */
#ifndef USB_PRIV_H
#define USB_PRIV_H

#include <pthread.h>
#include <stdint.h>

#include <libusb.h>

#include "ccid_transport.h"

/* USB 2.0 section 9.6.6: up to 1024 bytes, times 3 for high-bandwidth endpoints. */
#define INTR_BUF_MAX 3072

struct usb_priv {
	libusb_context *ctx;
	libusb_device_handle *handle;
	uint8_t iface;
	uint8_t ep_bulk_in, ep_bulk_out, ep_intr_in;
	uint16_t intr_packet; /* bytes asked for per interrupt transfer */
	char where[64];       /* "08e6:3437 bus 1 address 2 interface 0", for logs */

	/* Interrupt IN: one transfer, allocated at open, submitted per wait.
	 * The buffer is ours, not the caller's, so that a transfer that outlives
	 * a wait (it never should) cannot write into freed caller memory. */
	struct libusb_transfer *intr;
	uint8_t intr_buf[INTR_BUF_MAX];
	int intr_completed; /* set by the callback; libusb's "completed" flag */

	pthread_mutex_t lock; /* guards the three below */
	int intr_in_flight;   /* submitted; completion not yet collected */
	int waiting;          /* a wait_interrupt is running */
	int cancel_pending;   /* cancel() was called; the next/current wait ends */
};

/* The transport's operations (usb_io.c), installed by usb_transport_open. */
extern const struct ccid_transport_ops usb_ops;

#endif
