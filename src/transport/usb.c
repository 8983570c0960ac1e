/* struct ccid_transport over libusb-1.0: the only file that talks to USB.
 *
 * Each transport owns its libusb_context, so readers never share event
 * handling state and closing one cannot disturb another. The synchronous
 * libusb calls (bulk, control) and the asynchronous interrupt transfer all run
 * on that context; libusb arbitrates between threads that handle its events.
 *
 * Threads: send, receive and control are called by one thread at a time (the
 * callbacks of a slot never run concurrently); wait_interrupt by one polling
 * thread; cancel from any thread, at any time; close once nothing else runs.
 *
 * Nothing about endpoint numbers is assumed: they come from the descriptors
 * (dummy_hcd and gadget stacks renumber them). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <libusb.h>

#include "ccid_transport.h"
#include "smc_log.h"

#define USB_CLASS_CCID 0x0B   /* CCID 1.1 section 4.2: bInterfaceClass */
#define USB_CLASS_VENDOR 0xFF /* pre-standard readers with a CCID descriptor */
#define CCID_DESC_TYPE 0x21   /* CCID 1.1 section 5.1: bDescriptorType */

/* USB 2.0 section 9.6.6: up to 1024 bytes, times 3 for high-bandwidth endpoints. */
#define INTR_BUF_MAX 3072
/* libusb times the interrupt transfer out itself; this is extra time given to
 * that before we cancel it ourselves, and then how long a cancelled transfer
 * may take to come back. Both only matter if libusb or the kernel misbehave. */
#define INTR_GUARD_MS 1000
#define DRAIN_MS 1000

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

/* ---- small helpers -------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* libusb reads a timeout of 0 as "wait forever"; ours means "do not wait",
 * which the nearest bounded libusb value expresses as 1 ms. */
static unsigned lu_timeout(unsigned ms)
{
	return ms == 0 ? 1 : ms;
}

static unsigned ms_left(uint64_t deadline)
{
	uint64_t now = now_ms();

	if (now >= deadline)
		return 0;
	return deadline - now > UINT_MAX ? UINT_MAX : (unsigned)(deadline - now);
}

/* Errors that every operation maps the same way. Timeouts and stalls are
 * handled (and logged) by the callers, which know whether they are normal. */
static tp_status map_error(const struct usb_priv *p, int r, const char *what)
{
	switch (r) {
	case LIBUSB_ERROR_TIMEOUT:
		log_comm("%s on %s: timeout", what, p->where);
		return TP_TIMEOUT;
	case LIBUSB_ERROR_PIPE:
		log_info("%s on %s: stalled", what, p->where);
		return TP_STALL;
	case LIBUSB_ERROR_NO_DEVICE:
		log_info("%s on %s: device is gone", what, p->where);
		return TP_NO_DEVICE;
	case LIBUSB_ERROR_NO_MEM:
		log_critical("%s on %s: out of memory", what, p->where);
		return TP_NO_MEMORY;
	default:
		log_critical("%s on %s failed: %s (%d)", what, p->where, libusb_strerror(r), r);
		return TP_IO_ERROR;
	}
}

/* After a stall on a bulk or interrupt endpoint the host must clear the halt
 * (USB 2.0 section 9.4.5) or the pipe stays stalled for good. */
static void clear_halt(const struct usb_priv *p, uint8_t ep, const char *what)
{
	int r = libusb_clear_halt(p->handle, ep);

	if (r < 0)
		log_critical("%s endpoint 0x%02X of %s stalled and clearing the halt failed: %s", what,
			     ep, p->where, libusb_strerror(r));
	else
		log_info("%s endpoint 0x%02X of %s stalled; halt cleared", what, ep, p->where);
}

/* ---- bulk ----------------------------------------------------------------- */

static tp_status usb_send(struct ccid_transport *tp, const uint8_t *buf, size_t len,
			  unsigned timeout_ms)
{
	struct usb_priv *p = tp->priv;
	uint64_t deadline = now_ms() + timeout_ms;
	size_t sent = 0;

	if ((buf == NULL && len > 0) || len > INT_MAX) {
		log_critical("bulk OUT on %s: bad buffer (%p, %zu bytes)", p->where,
			     (const void *)buf, len);
		return TP_INVALID;
	}
	for (;;) {
		int done = 0;
		/* libusb does not write to an OUT buffer; its prototype is not const. */
		int r = libusb_bulk_transfer(p->handle, p->ep_bulk_out, (unsigned char *)buf + sent,
					     (int)(len - sent), &done, lu_timeout(ms_left(deadline)));

		if (done < 0 || (size_t)done > len - sent) {
			log_critical("bulk OUT on %s: libusb reports %d bytes sent of %zu", p->where,
				     done, len - sent);
			return TP_IO_ERROR;
		}
		sent += (size_t)done;
		if (r == 0 && sent == len)
			return TP_OK;
		if (r == LIBUSB_ERROR_PIPE) {
			clear_halt(p, p->ep_bulk_out, "bulk OUT");
			return TP_STALL;
		}
		if (r != 0 && r != LIBUSB_ERROR_TIMEOUT)
			return map_error(p, r, "bulk OUT");
		if (r == LIBUSB_ERROR_TIMEOUT) {
			log_critical("bulk OUT on %s: timeout after %zu of %zu bytes (%u ms)", p->where,
				     sent, len, timeout_ms);
			return TP_TIMEOUT;
		}
		/* A short write without an error: go on while it makes progress (at
		 * most len rounds, each bounded), even past the deadline, so that a
		 * message is never cut for want of a millisecond. */
		if (done == 0) {
			log_critical("bulk OUT on %s: no progress after %zu of %zu bytes", p->where,
				     sent, len);
			return TP_IO_ERROR;
		}
		log_comm("bulk OUT on %s: partial write, %zu of %zu bytes so far", p->where, sent,
			 len);
	}
}

static tp_status usb_receive(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
			     unsigned timeout_ms)
{
	struct usb_priv *p = tp->priv;
	int want = cap > INT_MAX ? INT_MAX : (int)cap;
	int done = 0, r;

	if (got == NULL || (buf == NULL && cap > 0)) {
		log_critical("bulk IN on %s: bad buffer (%p, %zu bytes, got %p)", p->where,
			     (void *)buf, cap, (void *)got);
		return TP_INVALID;
	}
	*got = 0;
	r = libusb_bulk_transfer(p->handle, p->ep_bulk_in, buf, want, &done,
				 lu_timeout(timeout_ms));
	if (done < 0 || done > want) {
		log_critical("bulk IN on %s: libusb reports %d bytes for a %d-byte buffer", p->where,
			     done, want);
		return TP_IO_ERROR;
	}
	/* Data that arrived just before the timeout is data: hand it over. */
	if (r == 0 || (r == LIBUSB_ERROR_TIMEOUT && done > 0)) {
		*got = (size_t)done; /* dumped by the CCID layer, as whole messages */
		return TP_OK;
	}
	if (r == LIBUSB_ERROR_PIPE) {
		clear_halt(p, p->ep_bulk_in, "bulk IN");
		return TP_STALL;
	}
	if (r == LIBUSB_ERROR_OVERFLOW) {
		log_critical("bulk IN on %s: the device sent more than the %d bytes asked for",
			     p->where, want);
		return TP_IO_ERROR;
	}
	return map_error(p, r, "bulk IN");
}

/* ---- control -------------------------------------------------------------- */

static tp_status usb_control(struct ccid_transport *tp, uint8_t request_type, uint8_t request,
			     uint16_t value, uint8_t *data, uint16_t len, size_t *got,
			     unsigned timeout_ms)
{
	struct usb_priv *p = tp->priv;
	int in = (request_type & LIBUSB_ENDPOINT_DIR_MASK) == LIBUSB_ENDPOINT_IN;
	int r;

	if (got != NULL)
		*got = 0;
	if ((data == NULL && len > 0) || (in && got == NULL)) {
		log_critical("control 0x%02X/0x%02X on %s: bad buffer (%p, %u bytes, got %p)",
			     request_type, request, p->where, (void *)data, len, (void *)got);
		return TP_INVALID;
	}
	log_comm("control bmRequestType 0x%02X bRequest 0x%02X wValue 0x%04X wIndex %u wLength %u",
		 request_type, request, value, p->iface, len);
	if (!in)
		log_hex("control OUT", data, len);
	r = libusb_control_transfer(p->handle, request_type, request, value, p->iface, data, len,
				    lu_timeout(timeout_ms));
	if (r >= 0) {
		if (r > len) {
			log_critical("control 0x%02X on %s: libusb reports %d bytes of %u", request,
				     p->where, r, len);
			return TP_IO_ERROR;
		}
		if (got != NULL)
			*got = (size_t)r;
		if (in)
			log_hex("control IN", data, (size_t)r);
		return TP_OK;
	}
	/* A stall on endpoint 0 ends with the next SETUP (USB 2.0 section 8.5.3.4):
	 * no halt to clear. Many readers stall class requests they lack. */
	if (r == LIBUSB_ERROR_PIPE) {
		log_info("control request 0x%02X/0x%02X on %s stalled (not supported by the reader?)",
			 request_type, request, p->where);
		return TP_STALL;
	}
	return map_error(p, r, "control request");
}

/* ---- interrupt IN --------------------------------------------------------- */

static void LIBUSB_CALL intr_callback(struct libusb_transfer *t)
{
	struct usb_priv *p = t->user_data;

	/* Only this flag: the callback may run in whichever thread handles the
	 * context's events, and takes no lock of ours, so no lock order arises. */
	__atomic_store_n(&p->intr_completed, 1, __ATOMIC_RELEASE);
}

/* Handle the context's events until the interrupt transfer has come back or
 * the deadline passes. 1 when it came back. */
static int intr_wait_completion(struct usb_priv *p, uint64_t deadline)
{
	int reported = 0;

	while (!__atomic_load_n(&p->intr_completed, __ATOMIC_ACQUIRE)) {
		unsigned left = ms_left(deadline);
		struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
		int r;

		if (left == 0)
			return 0;
		r = libusb_handle_events_timeout_completed(p->ctx, &tv, &p->intr_completed);
		if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED) {
			if (!reported)
				log_critical("handling USB events for %s failed: %s", p->where,
					     libusb_strerror(r));
			reported = 1;
			/* do not spin on a persistent error; the deadline still ends it */
			nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
		}
	}
	return 1;
}

static int intr_cancel_and_drain(struct usb_priv *p)
{
	int r = libusb_cancel_transfer(p->intr);

	if (r < 0 && r != LIBUSB_ERROR_NOT_FOUND)
		log_info("cancelling the interrupt transfer of %s: %s", p->where, libusb_strerror(r));
	return intr_wait_completion(p, now_ms() + DRAIN_MS);
}

/* Turn a transfer that came back (not cancelled by cancel()) into a status. */
static tp_status intr_result(struct usb_priv *p, uint8_t *buf, size_t cap, size_t *got)
{
	const struct libusb_transfer *t = p->intr;
	int n = t->actual_length;

	switch (t->status) {
	case LIBUSB_TRANSFER_COMPLETED:
		break;
	case LIBUSB_TRANSFER_TIMED_OUT:
	case LIBUSB_TRANSFER_CANCELLED: /* by us, at the guard deadline */
		if (n > 0)
			break; /* a message arrived as time ran out: keep it */
		log_periodic("no interrupt message from %s", p->where);
		return TP_TIMEOUT;
	case LIBUSB_TRANSFER_STALL:
		clear_halt(p, p->ep_intr_in, "interrupt IN");
		return TP_STALL;
	case LIBUSB_TRANSFER_NO_DEVICE:
		log_info("interrupt IN on %s: device is gone", p->where);
		return TP_NO_DEVICE;
	case LIBUSB_TRANSFER_OVERFLOW:
		log_critical("interrupt IN on %s: the device sent more than %u bytes", p->where,
			     p->intr_packet);
		return TP_IO_ERROR;
	case LIBUSB_TRANSFER_ERROR:
	default:
		log_critical("interrupt IN on %s failed (transfer status %d)", p->where,
			     (int)t->status);
		return TP_IO_ERROR;
	}
	if (n < 0 || n > p->intr_packet) {
		log_critical("interrupt IN on %s: libusb reports %d bytes of %u", p->where, n,
			     p->intr_packet);
		return TP_IO_ERROR;
	}
	if ((size_t)n > cap) {
		log_critical("interrupt IN on %s: %d-byte message does not fit the %zu-byte buffer",
			     p->where, n, cap);
		return TP_IO_ERROR;
	}
	if (n > 0)
		memcpy(buf, p->intr_buf, (size_t)n);
	*got = (size_t)n;
	log_hex("interrupt IN", buf, (size_t)n);
	return TP_OK;
}

/* An earlier wait gave up on a transfer that did not come back even after a
 * cancel. Try once more to collect it before submitting it again. */
static int intr_collect_stale(struct usb_priv *p)
{
	if (!intr_cancel_and_drain(p)) {
		log_critical("interrupt transfer of %s is still pending from an earlier wait",
			     p->where);
		return -1;
	}
	pthread_mutex_lock(&p->lock);
	p->intr_in_flight = 0;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Under p->lock: submit the transfer unless a cancel is already pending. */
static tp_status intr_submit_locked(struct usb_priv *p, unsigned timeout_ms)
{
	int r;

	if (p->cancel_pending) {
		p->cancel_pending = 0;
		log_info("wait for interrupt on %s cancelled before it began", p->where);
		return TP_CANCELLED;
	}
	libusb_fill_interrupt_transfer(p->intr, p->handle, p->ep_intr_in, p->intr_buf,
				       p->intr_packet, intr_callback, p, lu_timeout(timeout_ms));
	__atomic_store_n(&p->intr_completed, 0, __ATOMIC_RELEASE);
	r = libusb_submit_transfer(p->intr);
	if (r == LIBUSB_ERROR_PIPE) {
		clear_halt(p, p->ep_intr_in, "interrupt IN");
		return TP_STALL;
	}
	if (r < 0)
		return map_error(p, r, "interrupt IN submit");
	p->intr_in_flight = 1;
	return TP_OK;
}

static tp_status usb_wait_interrupt(struct ccid_transport *tp, uint8_t *buf, size_t cap,
				    size_t *got, unsigned timeout_ms)
{
	struct usb_priv *p = tp->priv;
	tp_status st;
	int stale, cancelled;

	if (got == NULL || (buf == NULL && cap > 0)) {
		log_critical("interrupt IN on %s: bad buffer (%p, %zu bytes, got %p)", p->where,
			     (void *)buf, cap, (void *)got);
		return TP_INVALID;
	}
	*got = 0;
	if (!tp->info.has_interrupt) {
		log_critical("%s has no interrupt IN endpoint: cannot wait for one", p->where);
		return TP_INVALID;
	}

	pthread_mutex_lock(&p->lock);
	if (p->waiting) {
		pthread_mutex_unlock(&p->lock);
		log_critical("wait_interrupt on %s called while another wait runs", p->where);
		return TP_IO_ERROR;
	}
	p->waiting = 1;
	stale = p->intr_in_flight;
	pthread_mutex_unlock(&p->lock);
	if (stale && intr_collect_stale(p) < 0) {
		st = TP_IO_ERROR;
	} else {
		pthread_mutex_lock(&p->lock);
		st = intr_submit_locked(p, timeout_ms);
		pthread_mutex_unlock(&p->lock);
	}
	if (st != TP_OK) {
		pthread_mutex_lock(&p->lock);
		p->waiting = 0;
		pthread_mutex_unlock(&p->lock);
		return st;
	}

	/* libusb times the transfer out after timeout_ms; the guard is for the
	 * case where that never happens. */
	if (!intr_wait_completion(p, now_ms() + timeout_ms + INTR_GUARD_MS) &&
	    !intr_cancel_and_drain(p)) {
		pthread_mutex_lock(&p->lock);
		p->waiting = 0; /* intr_in_flight stays set: collected next time */
		pthread_mutex_unlock(&p->lock);
		log_critical("interrupt transfer of %s did not come back, even after a cancel",
			     p->where);
		return TP_IO_ERROR;
	}

	pthread_mutex_lock(&p->lock);
	p->intr_in_flight = 0;
	p->waiting = 0;
	cancelled = p->cancel_pending;
	p->cancel_pending = 0;
	pthread_mutex_unlock(&p->lock);
	if (cancelled) {
		log_info("wait for interrupt on %s cancelled", p->where);
		return TP_CANCELLED;
	}
	return intr_result(p, buf, cap, got);
}

/* Ends the current wait_interrupt with TP_CANCELLED; with no wait running,
 * the next one returns TP_CANCELLED at once (so a cancel that races with the
 * start of a wait is never lost: pcscd's stop-polling call relies on it). */
static void usb_cancel(struct ccid_transport *tp)
{
	struct usb_priv *p = tp->priv;

	pthread_mutex_lock(&p->lock);
	p->cancel_pending = 1;
	if (p->waiting && p->intr_in_flight) {
		/* The waiter's libusb_handle_events call wakes when the kernel hands
		 * the cancelled transfer back. */
		int r = libusb_cancel_transfer(p->intr);

		if (r < 0 && r != LIBUSB_ERROR_NOT_FOUND)
			log_info("cancelling the interrupt transfer of %s: %s", p->where,
				 libusb_strerror(r));
	}
	pthread_mutex_unlock(&p->lock);
}

/* ---- close ---------------------------------------------------------------- */

static void usb_close(struct ccid_transport *tp)
{
	struct usb_priv *p;
	int in_flight, r;

	if (tp == NULL)
		return;
	p = tp->priv;
	pthread_mutex_lock(&p->lock);
	in_flight = p->intr_in_flight;
	pthread_mutex_unlock(&p->lock);
	if (in_flight && !intr_cancel_and_drain(p)) {
		/* Freeing a transfer libusb still holds would be worse than this leak;
		 * libusb_close below takes it off the device. */
		log_critical("interrupt transfer of %s still pending at close; not freeing it",
			     p->where);
		p->intr = NULL;
	}
	r = libusb_release_interface(p->handle, p->iface);
	if (r < 0 && r != LIBUSB_ERROR_NO_DEVICE)
		log_info("releasing %s: %s", p->where, libusb_strerror(r));
	libusb_close(p->handle);
	libusb_free_transfer(p->intr);
	libusb_exit(p->ctx);
	log_info("closed %s", p->where);
	pthread_mutex_destroy(&p->lock);
	free(p);
	free(tp);
}

static const struct ccid_transport_ops usb_ops = {
	.send = usb_send,
	.receive = usb_receive,
	.wait_interrupt = usb_wait_interrupt,
	.control = usb_control,
	.cancel = usb_cancel,
	.close = usb_close,
};

/* ---- open: descriptors ---------------------------------------------------- */

/* Walk a run of descriptors (each bLength, bDescriptorType, ...) for the CCID
 * class descriptor. A truncated one is returned with the bytes that exist; the
 * CCID layer refuses it if it is short. */
static int find_class_desc(const unsigned char *extra, int extra_len, const uint8_t **desc,
			   size_t *desc_len)
{
	size_t off = 0, len = extra_len > 0 ? (size_t)extra_len : 0;

	if (extra == NULL)
		return 0;
	while (len - off >= 2) {
		uint8_t b_length = extra[off];

		if (b_length < 2)
			return 0; /* malformed: cannot step over it */
		if (extra[off + 1] == CCID_DESC_TYPE) {
			*desc = extra + off;
			*desc_len = b_length < len - off ? b_length : len - off;
			return 1;
		}
		if (b_length >= len - off)
			return 0;
		off += b_length;
	}
	return 0;
}

/* The class descriptor follows the interface descriptor; some readers put it
 * after their last endpoint descriptor instead (libusb then files it as that
 * endpoint's extra bytes). */
static int class_desc_of(const struct libusb_interface_descriptor *alt, const uint8_t **desc,
			 size_t *desc_len)
{
	const struct libusb_endpoint_descriptor *last;

	if (find_class_desc(alt->extra, alt->extra_length, desc, desc_len))
		return 1;
	if (alt->bNumEndpoints == 0 || alt->endpoint == NULL)
		return 0;
	last = &alt->endpoint[alt->bNumEndpoints - 1];
	if (!find_class_desc(last->extra, last->extra_length, desc, desc_len))
		return 0;
	log_info("interface %u: CCID descriptor found after the last endpoint (reader quirk)",
		 alt->bInterfaceNumber);
	return 1;
}

enum iface_kind { IFACE_OTHER, IFACE_CCID, IFACE_CCID_NO_DESC };

static enum iface_kind classify(const struct libusb_interface_descriptor *alt,
				const uint8_t **desc, size_t *desc_len)
{
	int found = class_desc_of(alt, desc, desc_len);

	if (alt->bInterfaceClass == USB_CLASS_CCID)
		return found ? IFACE_CCID : IFACE_CCID_NO_DESC;
	/* Vendor class: only with a complete 54-byte CCID descriptor. */
	if (alt->bInterfaceClass == USB_CLASS_VENDOR && found && *desc_len == TP_CLASS_DESC_LEN &&
	    (*desc)[0] == TP_CLASS_DESC_LEN)
		return IFACE_CCID;
	return IFACE_OTHER;
}

/* The numbered interface (wanted >= 0) if it is a CCID one, else the first
 * CCID interface. Alternate setting 0 is the one in use after claiming. */
static tp_status pick_interface(const struct libusb_config_descriptor *cfg, int wanted,
				const char *dev, const struct libusb_interface_descriptor **out,
				const uint8_t **desc, size_t *desc_len)
{
	for (int i = 0; i < cfg->bNumInterfaces; i++) {
		const struct libusb_interface *itf = &cfg->interface[i];
		const struct libusb_interface_descriptor *alt;
		enum iface_kind kind;

		if (itf->num_altsetting < 1 || itf->altsetting == NULL)
			continue;
		alt = &itf->altsetting[0];
		if (wanted >= 0 && alt->bInterfaceNumber != wanted)
			continue;
		kind = classify(alt, desc, desc_len);
		if (kind == IFACE_CCID) {
			*out = alt;
			return TP_OK;
		}
		if (kind == IFACE_CCID_NO_DESC)
			log_critical("%s interface %u: CCID class but no CCID class descriptor", dev,
				     alt->bInterfaceNumber);
		else if (wanted >= 0)
			/* pcscd tries every interface of a composite device: normal */
			log_info("%s interface %u is not a CCID interface (class 0x%02X)", dev,
				 alt->bInterfaceNumber, alt->bInterfaceClass);
		if (wanted >= 0)
			return TP_INVALID;
	}
	if (wanted >= 0)
		log_critical("%s has no interface %d", dev, wanted);
	else
		log_critical("%s has no CCID interface", dev);
	return TP_INVALID;
}

/* wMaxPacketSize: bits 10..0 size, bits 12..11 extra transactions per
 * microframe for high-bandwidth periodic endpoints (USB 2.0 section 9.6.6). */
static unsigned packet_bytes(uint16_t w, int periodic)
{
	unsigned size = w & 0x7FF;

	return periodic ? size * (1 + ((w >> 11) & 3)) : size;
}

static tp_status pick_endpoints(struct usb_priv *p, const struct libusb_interface_descriptor *alt,
				const char *dev, struct tp_info *info)
{
	int bulk_in = 0, bulk_out = 0, intr_in = 0;

	for (int i = 0; i < alt->bNumEndpoints && alt->endpoint != NULL; i++) {
		const struct libusb_endpoint_descriptor *ep = &alt->endpoint[i];
		int type = ep->bmAttributes & LIBUSB_TRANSFER_TYPE_MASK;
		int in = (ep->bEndpointAddress & LIBUSB_ENDPOINT_DIR_MASK) == LIBUSB_ENDPOINT_IN;

		if (type == LIBUSB_TRANSFER_TYPE_BULK && in && !bulk_in) {
			bulk_in = 1;
			p->ep_bulk_in = ep->bEndpointAddress;
			info->bulk_in_packet = (uint16_t)packet_bytes(ep->wMaxPacketSize, 0);
		} else if (type == LIBUSB_TRANSFER_TYPE_BULK && !in && !bulk_out) {
			bulk_out = 1;
			p->ep_bulk_out = ep->bEndpointAddress;
		} else if (type == LIBUSB_TRANSFER_TYPE_INTERRUPT && in && !intr_in) {
			unsigned n = packet_bytes(ep->wMaxPacketSize, 1);

			if (n == 0 || n > INTR_BUF_MAX) {
				log_critical("%s: interrupt IN endpoint 0x%02X with wMaxPacketSize 0x%04X: not used",
					     dev, ep->bEndpointAddress, ep->wMaxPacketSize);
				continue;
			}
			intr_in = 1;
			p->ep_intr_in = ep->bEndpointAddress;
			/* One packet per transfer: CCID interrupt messages fit in one
			 * (NotifySlotChange is 1 + slots/4 bytes), and a transfer that
			 * asked for more would wait past a message of exactly one packet. */
			p->intr_packet = (uint16_t)n;
		}
	}
	if (!bulk_in || !bulk_out) {
		log_critical("%s interface %u lacks a bulk %s endpoint", dev, alt->bInterfaceNumber,
			     bulk_in ? "OUT" : "IN");
		return TP_INVALID;
	}
	if (info->bulk_in_packet == 0) {
		log_critical("%s: bulk IN endpoint 0x%02X has wMaxPacketSize 0", dev, p->ep_bulk_in);
		return TP_INVALID;
	}
	info->has_interrupt = intr_in;
	return TP_OK;
}

/* Interface, class descriptor and endpoints from the active configuration. */
static tp_status read_descriptors(struct usb_priv *p, libusb_device *dev, int wanted,
				  const char *name, struct tp_info *info)
{
	struct libusb_config_descriptor *cfg = NULL;
	const struct libusb_interface_descriptor *alt = NULL;
	const uint8_t *desc = NULL;
	size_t desc_len = 0;
	tp_status st;
	int r = libusb_get_active_config_descriptor(dev, &cfg);

	if (r < 0) {
		log_critical("%s: cannot read the configuration descriptor: %s", name,
			     libusb_strerror(r));
		return r == LIBUSB_ERROR_NO_DEVICE ? TP_NO_DEVICE : TP_IO_ERROR;
	}
	st = pick_interface(cfg, wanted, name, &alt, &desc, &desc_len);
	if (st == TP_OK)
		st = pick_endpoints(p, alt, name, info);
	if (st == TP_OK) {
		p->iface = alt->bInterfaceNumber;
		info->interface_number = alt->bInterfaceNumber;
		info->class_desc_len = desc_len < TP_CLASS_DESC_LEN ? desc_len : TP_CLASS_DESC_LEN;
		memcpy(info->class_desc, desc, info->class_desc_len);
		if (desc_len != TP_CLASS_DESC_LEN)
			log_info("%s: CCID descriptor has %zu bytes, not %d", name, desc_len,
				 TP_CLASS_DESC_LEN);
	}
	libusb_free_config_descriptor(cfg);
	return st;
}

/* A string descriptor as printable ASCII, empty if absent or unreadable. */
static void read_string(libusb_device_handle *h, uint8_t index, char *out, const char *what,
			const char *name)
{
	int r;

	out[0] = '\0';
	if (index == 0)
		return;
	r = libusb_get_string_descriptor_ascii(h, index, (unsigned char *)out, TP_STRING_MAX);
	if (r < 0) {
		log_info("%s: cannot read the %s string: %s", name, what, libusb_strerror(r));
		out[0] = '\0';
		return;
	}
	if (r >= TP_STRING_MAX)
		r = TP_STRING_MAX - 1;
	out[r] = '\0';
	/* libusb turns non-ASCII into '?'; do the same for control characters,
	 * which would otherwise land in logs and reader names. */
	for (int i = 0; i < r; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7F)
			out[i] = '?';
}

/* ---- open: the device ----------------------------------------------------- */

static tp_status open_and_claim(struct usb_priv *p, libusb_device *dev, const char *name)
{
	int r = libusb_open(dev, &p->handle);

	if (r == LIBUSB_ERROR_ACCESS) {
		log_critical("%s: permission denied opening the device (udev rules?)", name);
		return TP_IO_ERROR;
	}
	if (r < 0) {
		log_critical("%s: cannot open the device: %s", name, libusb_strerror(r));
		return r == LIBUSB_ERROR_NO_DEVICE ? TP_NO_DEVICE : TP_IO_ERROR;
	}
	r = libusb_claim_interface(p->handle, p->iface);
	if (r == 0)
		return TP_OK;
	if (r == LIBUSB_ERROR_BUSY)
		log_critical("%s: interface %u is busy: claimed by another program or a kernel driver",
			     name, p->iface);
	else
		log_critical("%s: cannot claim interface %u: %s", name, p->iface,
			     libusb_strerror(r));
	libusb_close(p->handle);
	p->handle = NULL;
	return r == LIBUSB_ERROR_NO_DEVICE ? TP_NO_DEVICE : TP_IO_ERROR;
}

static tp_status open_candidate(struct usb_priv *p, libusb_device *dev,
				const struct libusb_device_descriptor *dd, int wanted_iface,
				struct tp_info *info)
{
	char name[48];
	tp_status st;

	snprintf(name, sizeof(name), "%04x:%04x at bus %u address %u", dd->idVendor,
		 dd->idProduct, libusb_get_bus_number(dev), libusb_get_device_address(dev));
	memset(info, 0, sizeof(*info));
	st = read_descriptors(p, dev, wanted_iface, name, info);
	if (st == TP_OK)
		st = open_and_claim(p, dev, name);
	if (st != TP_OK)
		return st;
	info->vendor_id = dd->idVendor;
	info->product_id = dd->idProduct;
	info->bcd_device = dd->bcdDevice;
	info->bus = libusb_get_bus_number(dev);
	info->address = libusb_get_device_address(dev);
	read_string(p->handle, dd->iManufacturer, info->manufacturer, "manufacturer", name);
	read_string(p->handle, dd->iProduct, info->product, "product", name);
	read_string(p->handle, dd->iSerialNumber, info->serial, "serial number", name);
	snprintf(p->where, sizeof(p->where), "%04x:%04x bus %u address %u interface %u",
		 info->vendor_id, info->product_id, info->bus, info->address, p->iface);
	return TP_OK;
}

/* By bus and address when the name gives them (then VID/PID must match),
 * else the first device with the VID/PID that opens. */
static tp_status find_and_open(struct usb_priv *p, const struct usb_devname *n,
			       struct tp_info *info)
{
	libusb_device **list;
	ssize_t count = libusb_get_device_list(p->ctx, &list);
	tp_status st = TP_NO_DEVICE;
	int seen = 0;

	if (count < 0) {
		log_critical("cannot list USB devices: %s", libusb_strerror((int)count));
		return TP_IO_ERROR;
	}
	for (ssize_t i = 0; i < count; i++) {
		libusb_device *dev = list[i];
		struct libusb_device_descriptor dd;

		if (n->bus >= 0 && (libusb_get_bus_number(dev) != n->bus ||
				    libusb_get_device_address(dev) != n->address))
			continue;
		if (libusb_get_device_descriptor(dev, &dd) < 0)
			continue;
		if (dd.idVendor != n->vendor_id || dd.idProduct != n->product_id) {
			if (n->bus < 0)
				continue;
			log_critical("device at bus %d address %d is %04x:%04x, not %04x:%04x",
				     n->bus, n->address, dd.idVendor, dd.idProduct, n->vendor_id,
				     n->product_id);
			seen = 1;
			break;
		}
		seen = 1;
		st = open_candidate(p, dev, &dd, n->interface_number, info);
		if (st == TP_OK || n->bus >= 0)
			break;
	}
	if (!seen) {
		if (n->bus >= 0)
			log_critical("no USB device %04x:%04x at bus %d address %d", n->vendor_id,
				     n->product_id, n->bus, n->address);
		else
			log_critical("no USB device %04x:%04x", n->vendor_id, n->product_id);
	}
	libusb_free_device_list(list, 1);
	return st;
}

static void log_found(const struct ccid_transport *tp, const struct usb_priv *p)
{
	const struct tp_info *i = &tp->info;

	log_info("found %s \"%s\" \"%s\" serial \"%s\" bcdDevice %04x", p->where, i->manufacturer,
		 i->product, i->serial, i->bcd_device);
	if (i->has_interrupt)
		log_info("%s: bulk IN 0x%02X (%u bytes), bulk OUT 0x%02X, interrupt IN 0x%02X (%u bytes)",
			 p->where, p->ep_bulk_in, i->bulk_in_packet, p->ep_bulk_out, p->ep_intr_in,
			 p->intr_packet);
	else
		log_info("%s: bulk IN 0x%02X (%u bytes), bulk OUT 0x%02X, no interrupt IN", p->where,
			 p->ep_bulk_in, i->bulk_in_packet, p->ep_bulk_out);
	log_hex("CCID class descriptor", i->class_desc, i->class_desc_len);
}

tp_status usb_transport_open(const char *device_name, struct ccid_transport **out)
{
	struct usb_devname n;
	struct ccid_transport *tp;
	struct usb_priv *p;
	tp_status st;
	int r;

	if (out == NULL) {
		log_critical("no place for the transport");
		return TP_INVALID;
	}
	*out = NULL;
	if (usb_devname_parse(device_name, &n) < 0)
		return TP_INVALID; /* the parser said what was wrong */

	tp = calloc(1, sizeof(*tp));
	p = calloc(1, sizeof(*p));
	if (tp == NULL || p == NULL) {
		log_critical("out of memory opening %s", device_name);
		st = TP_NO_MEMORY;
		goto fail_alloc;
	}
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		log_critical("cannot create a mutex for %s", device_name);
		st = TP_NO_MEMORY;
		goto fail_alloc;
	}
	p->intr = libusb_alloc_transfer(0);
	if (p->intr == NULL) {
		log_critical("out of memory opening %s", device_name);
		st = TP_NO_MEMORY;
		goto fail_mutex;
	}
	r = libusb_init(&p->ctx);
	if (r < 0) {
		log_critical("libusb_init failed: %s", libusb_strerror(r));
		st = r == LIBUSB_ERROR_NO_MEM ? TP_NO_MEMORY : TP_IO_ERROR;
		goto fail_transfer;
	}
	st = find_and_open(p, &n, &tp->info);
	if (st != TP_OK)
		goto fail_ctx;

	tp->ops = &usb_ops;
	tp->priv = p;
	log_found(tp, p);
	*out = tp;
	return TP_OK;

fail_ctx:
	libusb_exit(p->ctx);
fail_transfer:
	libusb_free_transfer(p->intr);
fail_mutex:
	pthread_mutex_destroy(&p->lock);
fail_alloc:
	free(p);
	free(tp);
	return st;
}
