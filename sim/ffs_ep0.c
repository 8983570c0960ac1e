/* ep0 of the FunctionFS function: the events the kernel reports (BIND, ENABLE,
 * DISABLE, SETUP...) and the class requests of CCID 1.1 section 5.3, answered
 * by the reader or stalled. Documentation/usb/functionfs.rst. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>

#include "ffs.h"

#define CTRL_DATA_MAX 4096

/* Stalls the request: I/O in the direction opposite to the data stage
 * (functionfs.rst). */
static void ep0_stall(struct ffs *f, bool dir_in)
{
	ssize_t n = dir_in ? read(f->ep0, NULL, 0) : write(f->ep0, NULL, 0);

	if (n >= 0 || errno != EL2HLT)
		ffs_log("ep0: stalling returned %zd (%s)", n, n < 0 ? strerror(errno) : "no stall");
}

/* A class request to the interface goes to the reader (CCID 1.1 section 5.3);
 * anything else is stalled. */
static void ep0_setup(struct ffs *f, const struct usb_ctrlrequest *rq)
{
	static uint8_t data[CTRL_DATA_MAX];
	uint16_t value = le16toh(rq->wValue), length = le16toh(rq->wLength);
	bool dir_in = (rq->bRequestType & USB_DIR_IN) != 0;
	uint16_t cap = length < sizeof(data) ? length : sizeof(data);
	ssize_t n;
	int r;

	pthread_mutex_lock(&f->lock);
	f->n_setup++;
	pthread_mutex_unlock(&f->lock);
	if ((rq->bRequestType & USB_TYPE_MASK) != USB_TYPE_CLASS ||
	    (rq->bRequestType & USB_RECIP_MASK) != USB_RECIP_INTERFACE) {
		ffs_log("ep0: stalling request type %02X request %02X (not a class request to the "
			"interface)", rq->bRequestType, rq->bRequest);
		ep0_stall(f, dir_in);
		return;
	}
	/* CCID 1.1 section 5.3 defines no OUT request with a data stage (ABORT has
	 * none): stall one before its data is taken, which would complete it. */
	if (!dir_in && length > 0) {
		ffs_log("ep0: OUT request %02X with %u data bytes: no such CCID request, stalled",
			rq->bRequest, length);
		ep0_stall(f, dir_in);
		return;
	}
	pthread_mutex_lock(&f->lock);
	r = vr_control(f->vr, rq->bRequestType, rq->bRequest, value, data, cap);
	pthread_cond_broadcast(&f->wake);
	pthread_mutex_unlock(&f->lock);
	if (f->verbose)
		ffs_log("ep0: request %02X %02X value %04X length %u -> %d", rq->bRequestType,
			rq->bRequest, value, length, r);
	if (r < 0 || (dir_in && r > cap)) {
		if (r > cap)
			ffs_log("ep0: the reader answered %d bytes to a %u-byte request: stalled", r,
				cap);
		ep0_stall(f, dir_in);
		return;
	}
	/* IN: the data stage (a short one ends with a ZLP, done by FunctionFS).
	 * OUT (no data): a zero-length read acknowledges it. */
	if (dir_in)
		n = write(f->ep0, data, (size_t)r);
	else
		n = read(f->ep0, NULL, 0);
	if (n < 0 && !ffs_quiet_error(errno))
		ffs_log("ep0: completing request %02X: %s", rq->bRequest, strerror(errno));
}

static void ep0_event(struct ffs *f, const struct usb_functionfs_event *ev)
{
	switch (ev->type) {
	case FUNCTIONFS_BIND:
	case FUNCTIONFS_UNBIND:
	case FUNCTIONFS_SUSPEND:
	case FUNCTIONFS_RESUME:
		if (f->verbose)
			ffs_log("ep0: event %u", ev->type);
		break;
	case FUNCTIONFS_ENABLE:
		pthread_mutex_lock(&f->lock);
		/* A reader the host configures again starts afresh, like real
		 * hardware after a power cycle: no stale answers. An ENABLE while
		 * enabled means the DISABLE went missing (seen when the UDC is
		 * unbound during a transfer): the same. */
		if (f->reset_on_enable || f->enabled)
			ffs_reset_reader(f);
		f->reset_on_enable = false;
		f->enabled = true;
		pthread_cond_broadcast(&f->wake);
		pthread_mutex_unlock(&f->lock);
		ffs_log("host enabled the reader");
		break;
	case FUNCTIONFS_DISABLE:
		pthread_mutex_lock(&f->lock);
		f->enabled = false;
		f->reset_on_enable = true;
		pthread_mutex_unlock(&f->lock);
		ffs_log("host disabled the reader");
		break;
	case FUNCTIONFS_SETUP:
		ep0_setup(f, &ev->u.setup);
		break;
	default:
		ffs_log("ep0: unknown event type %u ignored", ev->type);
	}
}

void *ffs_ep0_thread(void *arg)
{
	struct ffs *f = arg;
	struct usb_functionfs_event ev[4];
	ssize_t n;
	size_t i;

	while (!ffs_stopping(f)) {
		n = read(f->ep0, ev, sizeof(ev));
		if (n < 0) {
			if (!ffs_quiet_error(errno))
				ffs_log("ep0: read: %s", strerror(errno));
			if (errno != EINTR && !ffs_stopping(f))
				usleep(10000);
			continue;
		}
		if (n % sizeof(ev[0]) != 0)
			ffs_log("ep0: %zd bytes of events, not a multiple of %zu", n, sizeof(ev[0]));
		for (i = 0; i < (size_t)n / sizeof(ev[0]); i++)
			ep0_event(f, &ev[i]);
	}
	return NULL;
}
