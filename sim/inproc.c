/* The in-process front end: struct ccid_transport over the virtual reader.
 * See inproc.h for how the USB pipe is modelled. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inproc.h"
#include "vr_log.h"

#define PACKET_FULL_SPEED 64u
#define PACKET_HIGH_SPEED 512u
/* The largest message: header and an extended APDU. */
#define MSG_MAX (10u + 65544u + 16u)
#define INT_MAX_LEN 64u

struct inproc {
	struct ccid_transport tp;
	struct vreader *vr;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int split;
	int gone;
	int cancel_pending;
	size_t packet;
	uint8_t *msg;            /* the bulk IN message being delivered */
	size_t msg_len, msg_off;
	int zlp_pending;
	/* Front-end faults (vr_front_fault) for the message being delivered,
	 * taken when it leaves the reader, carried out before its first byte. */
	int stall_before, zlp_before;
};

static struct inproc *ip_of(struct ccid_transport *tp)
{
	return (struct inproc *)tp->priv;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static tp_status ip_send(struct ccid_transport *tp, const uint8_t *buf, size_t len, unsigned timeout_ms)
{
	struct inproc *ip = ip_of(tp);
	tp_status st = TP_OK;

	(void)timeout_ms;
	pthread_mutex_lock(&ip->lock);
	if (ip->gone)
		st = TP_NO_DEVICE;
	else
		vr_bulk_out(ip->vr, buf, len);
	pthread_cond_broadcast(&ip->cond);
	pthread_mutex_unlock(&ip->lock);
	return st;
}

/* Under the lock: a message to deliver, waiting until the deadline if none.
 * The faults "stall" and "zlp" it takes are carried out before its first
 * byte. */
static tp_status next_message(struct inproc *ip, unsigned timeout_ms)
{
	struct timespec ts;

	deadline_in(&ts, timeout_ms);
	for (;;) {
		if (ip->gone)
			return TP_NO_DEVICE;
		ip->msg_len = vr_bulk_in(ip->vr, ip->msg, MSG_MAX);
		ip->msg_off = 0;
		if (ip->msg_len > 0) {
			ip->stall_before = vr_front_fault(ip->vr, VR_FAULT_STALL);
			ip->zlp_before = vr_front_fault(ip->vr, VR_FAULT_ZLP);
			return TP_OK;
		}
		if (pthread_cond_timedwait(&ip->cond, &ip->lock, &ts) == ETIMEDOUT)
			return TP_TIMEOUT;
	}
}

/* Under the lock, before a message's first byte: fault "stall" fails this
 * receive with TP_STALL, as a halted bulk IN endpoint does; the halt counts as
 * cleared at once, as the libusb transport clears it before it returns
 * TP_STALL (USB 2.0 9.4.5), so the message comes with the next receive. Fault
 * "zlp" makes this receive a zero-length transfer. Returns 1 when one of them
 * took this receive. */
static int front_fault(struct inproc *ip, tp_status *st)
{
	if (ip->stall_before) {
		ip->stall_before = 0;
		vr_info("in-process bulk IN: stalled before a %zu-byte message (fault stall)",
			ip->msg_len);
		*st = TP_STALL;
		return 1;
	}
	if (ip->zlp_before) {
		ip->zlp_before = 0;
		vr_info("in-process bulk IN: zero-length packet before a %zu-byte message (fault zlp)",
			ip->msg_len);
		return 1;
	}
	return 0;
}

/* One transfer: the rest of the message up to cap (or one packet when
 * splitting); a ZLP after a message that ended on a packet boundary with the
 * transfer full, since the device then has to end the transfer with one. */
static tp_status ip_receive(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
			    unsigned timeout_ms)
{
	struct inproc *ip = ip_of(tp);
	tp_status st = TP_OK;
	size_t n;

	*got = 0;
	pthread_mutex_lock(&ip->lock);
	if (ip->zlp_pending && !ip->gone) {
		ip->zlp_pending = 0;
		goto out;
	}
	if (ip->msg_off >= ip->msg_len) {
		st = next_message(ip, timeout_ms);
		if (st != TP_OK)
			goto out;
	}
	if (ip->msg_off == 0 && front_fault(ip, &st))
		goto out;
	n = ip->msg_len - ip->msg_off;
	if (n > cap)
		n = cap;
	if (ip->split && n > ip->packet)
		n = ip->packet;
	memcpy(buf, ip->msg + ip->msg_off, n);
	ip->msg_off += n;
	*got = n;
	if (ip->msg_off == ip->msg_len && ip->msg_len % ip->packet == 0 && (ip->split || n == cap))
		ip->zlp_pending = 1;
out:
	pthread_mutex_unlock(&ip->lock);
	return st;
}

static tp_status ip_wait_interrupt(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
				   unsigned timeout_ms)
{
	struct inproc *ip = ip_of(tp);
	struct timespec ts;
	tp_status st = TP_OK;

	*got = 0;
	deadline_in(&ts, timeout_ms);
	pthread_mutex_lock(&ip->lock);
	for (;;) {
		if (ip->cancel_pending) {
			ip->cancel_pending = 0;
			st = TP_CANCELLED;
			break;
		}
		if (ip->gone) {
			st = TP_NO_DEVICE;
			break;
		}
		*got = vr_interrupt_in(ip->vr, buf, cap);
		if (*got > 0)
			break;
		if (pthread_cond_timedwait(&ip->cond, &ip->lock, &ts) == ETIMEDOUT) {
			st = TP_TIMEOUT;
			break;
		}
	}
	pthread_mutex_unlock(&ip->lock);
	return st;
}

static tp_status ip_control(struct ccid_transport *tp, uint8_t request_type, uint8_t request,
			    uint16_t value, uint8_t *data, uint16_t len, size_t *got, unsigned timeout_ms)
{
	struct inproc *ip = ip_of(tp);
	tp_status st = TP_OK;
	int r;

	(void)timeout_ms;
	*got = 0;
	pthread_mutex_lock(&ip->lock);
	if (ip->gone) {
		st = TP_NO_DEVICE;
	} else {
		r = vr_control(ip->vr, request_type, request, value, data, len);
		if (r < 0)
			st = TP_STALL;
		else
			*got = (size_t)r;
	}
	pthread_mutex_unlock(&ip->lock);
	return st;
}

static void ip_cancel(struct ccid_transport *tp)
{
	struct inproc *ip = ip_of(tp);

	pthread_mutex_lock(&ip->lock);
	ip->cancel_pending = 1;
	pthread_cond_broadcast(&ip->cond);
	pthread_mutex_unlock(&ip->lock);
}

static void ip_close(struct ccid_transport *tp)
{
	struct inproc *ip = ip_of(tp);

	vr_free(ip->vr);
	free(ip->msg);
	pthread_cond_destroy(&ip->cond);
	pthread_mutex_destroy(&ip->lock);
	free(ip);
}

static const struct ccid_transport_ops inproc_ops = {
	.send = ip_send,
	.receive = ip_receive,
	.wait_interrupt = ip_wait_interrupt,
	.control = ip_control,
	.cancel = ip_cancel,
	.close = ip_close,
};

static void copy_string(char dst[TP_STRING_MAX], const char *src)
{
	strncpy(dst, src, TP_STRING_MAX - 1);
	dst[TP_STRING_MAX - 1] = '\0';
}

static void fill_info(struct tp_info *info, const struct vr_profile *p)
{
	memset(info, 0, sizeof(*info));
	info->vendor_id = p->vendor_id;
	info->product_id = p->product_id;
	info->bcd_device = p->bcd_device;
	info->bus = 1;
	info->address = 2;
	info->interface_number = 0;
	info->bulk_in_packet = (uint16_t)(p->high_speed ? PACKET_HIGH_SPEED : PACKET_FULL_SPEED);
	info->has_interrupt = p->has_interrupt;
	vr_class_descriptor(p, info->class_desc);
	info->class_desc_len = TP_CLASS_DESC_LEN;
	copy_string(info->manufacturer, p->manufacturer);
	copy_string(info->product, p->product);
	copy_string(info->serial, p->serial);
}

tp_status inproc_transport_open(const struct vr_profile *p, struct ccid_transport **out,
				struct vreader **vr_out)
{
	struct inproc *ip = calloc(1, sizeof(*ip));

	*out = NULL;
	if (ip == NULL)
		return TP_NO_MEMORY;
	ip->msg = malloc(MSG_MAX);
	ip->vr = ip->msg ? vr_new(p) : NULL;
	if (ip->vr == NULL) {
		vr_err("in-process transport: no virtual reader (profile refused or no memory)");
		free(ip->msg);
		free(ip);
		return TP_INVALID;
	}
	pthread_mutex_init(&ip->lock, NULL);
	pthread_cond_init(&ip->cond, NULL);
	ip->packet = p->high_speed ? PACKET_HIGH_SPEED : PACKET_FULL_SPEED;
	ip->tp.ops = &inproc_ops;
	ip->tp.priv = ip;
	fill_info(&ip->tp.info, p);
	*out = &ip->tp;
	if (vr_out)
		*vr_out = ip->vr;
	return TP_OK;
}

void inproc_set_packet_split(struct ccid_transport *tp, int on)
{
	struct inproc *ip = ip_of(tp);

	pthread_mutex_lock(&ip->lock);
	ip->split = on;
	pthread_mutex_unlock(&ip->lock);
}

void inproc_insert_card(struct ccid_transport *tp, unsigned slot)
{
	struct inproc *ip = ip_of(tp);

	pthread_mutex_lock(&ip->lock);
	vr_insert_card(ip->vr, slot);
	pthread_cond_broadcast(&ip->cond);
	pthread_mutex_unlock(&ip->lock);
}

void inproc_remove_card(struct ccid_transport *tp, unsigned slot)
{
	struct inproc *ip = ip_of(tp);

	pthread_mutex_lock(&ip->lock);
	vr_remove_card(ip->vr, slot);
	pthread_cond_broadcast(&ip->cond);
	pthread_mutex_unlock(&ip->lock);
}

int inproc_set_fault(struct ccid_transport *tp, const char *name, unsigned count, const char **why)
{
	struct inproc *ip = ip_of(tp);
	int rc;

	pthread_mutex_lock(&ip->lock);
	rc = vr_set_fault(ip->vr, name, count, why);
	pthread_mutex_unlock(&ip->lock);
	return rc;
}

void inproc_hardware_error(struct ccid_transport *tp, unsigned slot)
{
	struct inproc *ip = ip_of(tp);

	pthread_mutex_lock(&ip->lock);
	vr_hardware_error(ip->vr, slot, 1);
	pthread_cond_broadcast(&ip->cond);
	pthread_mutex_unlock(&ip->lock);
}

void inproc_unplug(struct ccid_transport *tp)
{
	struct inproc *ip = ip_of(tp);

	pthread_mutex_lock(&ip->lock);
	ip->gone = 1;
	pthread_cond_broadcast(&ip->cond);
	pthread_mutex_unlock(&ip->lock);
}
