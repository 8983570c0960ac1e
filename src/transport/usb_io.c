/* The libusb transport's operations: bulk, control and interrupt transfers on
 * a device that usb.c opened.
 *
 * Each transport owns its libusb_context, so readers never share event
 * handling state and closing one cannot disturb another. The synchronous
 * libusb calls (bulk, control) and the asynchronous interrupt transfer all run
 * on that context; libusb arbitrates between threads that handle its events.
 *
 * Threads: send, receive and control are called by one thread at a time (the
 * callbacks of a slot never run concurrently); wait_interrupt by one polling
 * thread; cancel from any thread, at any time; close once nothing else runs. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "smc_log.h"
#include "usb_priv.h"

/* libusb times the interrupt transfer out itself; this is extra time given to
 * that before we cancel it ourselves, and then how long a cancelled transfer
 * may take to come back. Both only matter if libusb or the kernel misbehave. */
#define INTR_GUARD_MS 1000
#define DRAIN_MS 1000

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

const struct ccid_transport_ops usb_ops = {
	.send = usb_send,
	.receive = usb_receive,
	.wait_interrupt = usb_wait_interrupt,
	.control = usb_control,
	.cancel = usb_cancel,
	.close = usb_close,
};
