/* The scripted fake device of fake_transport.h. Everything is in memory and
 * single-threaded; a script that runs dry behaves as a mute device (reads time
 * out). Allocation failures abort the test run: this is test support. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_transport.h"

/* QEMU 7.2's usb-ccid class descriptor, as lsusb shows it in the test bed. */
const uint8_t fake_qemu_descriptor[54] = {
	0x36, 0x21, 0x10, 0x01, 0x00, 0x07, 0x01, 0x00, 0x00, 0x00, /* bMaxSlotIndex 0, 5/3/1.8 V, T=0 */
	0xA0, 0x0F, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,       /* 4000 kHz, max 65536, 0 clocks */
	0x80, 0x25, 0x00, 0x00, 0x00, 0xC2, 0x01, 0x00, 0x00,       /* 9600 bps, max 115200, 0 rates */
	0xFE, 0x00, 0x00, 0x00,                                     /* dwMaxIFSD 254 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             /* synch, mechanical */
	0xFE, 0x04, 0x01, 0x00,                                     /* dwFeatures 0x000104FE */
	0x12, 0x00, 0x01, 0x00,                                     /* dwMaxCCIDMessageLength 65554 */
	0xFF, 0xFF, 0x00, 0x00, 0x01, 0x01,
};

#define HDR 10u

enum ev_kind { EV_DATA, EV_ZLP, EV_STATUS };

struct rx_event {
	enum ev_kind kind;
	size_t frame;        /* EV_DATA: index into frames */
	size_t off, len;     /* EV_DATA: the bytes of this transfer */
	int patch;           /* EV_DATA: fill bSlot/bSeq at delivery (first chunk) */
	struct fake_frame f; /* what to patch with */
	unsigned delay_ms;   /* time before delivery, counted from the read start */
	tp_status st;        /* EV_STATUS */
};

struct blob {
	uint8_t *buf;
	size_t len;
};

struct fake_dev {
	struct ccid_transport tp;
	int closed;
	uint64_t clock;

	struct blob *frames;
	size_t n_frames;
	struct rx_event *rx;
	size_t rx_head, rx_tail, rx_cap;

	struct blob *sent;
	size_t n_sent;
	tp_status *send_results;
	size_t send_head, send_tail;

	tp_status control_st;
	struct fake_ctrl *ctrl;
	size_t n_ctrl;

	struct blob *ints;
	size_t int_head, int_tail;
	int cancelled;

	fake_responder_fn responder;
	void *responder_ctx;
	size_t receive_calls;
};

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL) {
		fprintf(stderr, "fake_transport: out of memory\n");
		abort();
	}
	return q;
}

static struct blob blob_copy(const uint8_t *buf, size_t len)
{
	struct blob b = { xrealloc(NULL, len), len };

	if (len)
		memcpy(b.buf, buf, len);
	return b;
}

static struct fake_dev *dev_of(struct ccid_transport *tp)
{
	return (struct fake_dev *)tp->priv;
}

/* ---- bulk IN ---------------------------------------------------------- */

static void push_event(struct fake_dev *d, const struct rx_event *ev)
{
	if (d->rx_tail == d->rx_cap) {
		d->rx_cap = d->rx_cap ? d->rx_cap * 2 : 16;
		d->rx = xrealloc(d->rx, d->rx_cap * sizeof(*d->rx));
	}
	d->rx[d->rx_tail++] = *ev;
}

static size_t add_frame(struct fake_dev *d, struct blob b)
{
	d->frames = xrealloc(d->frames, (d->n_frames + 1) * sizeof(*d->frames));
	d->frames[d->n_frames] = b;
	return d->n_frames++;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void fake_rx_frame(struct fake_dev *d, const struct fake_frame *f, size_t chunk, unsigned delay_ms)
{
	struct blob b = { xrealloc(NULL, HDR + f->len), HDR + f->len };
	struct rx_event ev = { .kind = EV_DATA, .patch = 1, .f = *f, .delay_ms = delay_ms };

	b.buf[0] = f->type;
	put_le32(b.buf + 1, f->dw_fixed ? f->dw_length : (uint32_t)f->len);
	b.buf[5] = f->slot;
	b.buf[6] = f->seq;
	b.buf[7] = f->status;
	b.buf[8] = f->error;
	b.buf[9] = f->specific;
	if (f->len)
		memcpy(b.buf + HDR, f->data, f->len);
	ev.frame = add_frame(d, b);
	if (chunk == 0)
		chunk = b.len;
	for (size_t off = 0; off < b.len; off += chunk) {
		ev.off = off;
		ev.len = b.len - off < chunk ? b.len - off : chunk;
		push_event(d, &ev);
		ev.patch = 0;
		ev.delay_ms = 0;
	}
}

void fake_rx_answer(struct fake_dev *d, uint8_t type, uint8_t status, uint8_t error,
		    uint8_t specific, const uint8_t *data, size_t len)
{
	struct fake_frame f = {
		.type = type, .status = status, .error = error, .specific = specific,
		.data = data, .len = len,
	};

	fake_rx_frame(d, &f, 0, 0);
}

void fake_rx_bytes(struct fake_dev *d, const uint8_t *buf, size_t len)
{
	struct rx_event ev = { .kind = EV_DATA, .len = len };

	ev.frame = add_frame(d, blob_copy(buf, len));
	push_event(d, &ev);
}

void fake_rx_zlp(struct fake_dev *d)
{
	struct rx_event ev = { .kind = EV_ZLP };

	push_event(d, &ev);
}

void fake_rx_status(struct fake_dev *d, tp_status st)
{
	struct rx_event ev = { .kind = EV_STATUS, .st = st };

	push_event(d, &ev);
}

size_t fake_rx_pending(const struct fake_dev *d)
{
	return d->rx_tail - d->rx_head;
}

void fake_rx_clear(struct fake_dev *d)
{
	d->rx_head = d->rx_tail = 0;
}

/* The last command's bSlot and bSeq go into a frame as it is delivered. */
static void patch_frame(struct fake_dev *d, const struct rx_event *ev)
{
	uint8_t *buf = d->frames[ev->frame].buf;
	const uint8_t *last = d->n_sent ? d->sent[d->n_sent - 1].buf : NULL;
	size_t last_len = d->n_sent ? d->sent[d->n_sent - 1].len : 0;

	if (!ev->f.slot_fixed && last_len >= HDR)
		buf[5] = last[5];
	if (!ev->f.seq_fixed && last_len >= HDR)
		buf[6] = (uint8_t)(last[6] + ev->f.seq_delta);
}

static tp_status deliver(struct fake_dev *d, struct rx_event *ev, uint8_t *buf, size_t cap,
			 size_t *got)
{
	switch (ev->kind) {
	case EV_ZLP:
		return TP_OK;
	case EV_STATUS:
		return ev->st;
	case EV_DATA:
		if (ev->len > cap)
			return TP_IO_ERROR; /* libusb: LIBUSB_ERROR_OVERFLOW */
		if (ev->patch)
			patch_frame(d, ev);
		memcpy(buf, d->frames[ev->frame].buf + ev->off, ev->len);
		*got = ev->len;
		return TP_OK;
	}
	return TP_IO_ERROR;
}

static tp_status fake_receive(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
			      unsigned timeout_ms)
{
	struct fake_dev *d = dev_of(tp);
	struct rx_event *ev;

	*got = 0;
	d->receive_calls++;
	if (d->rx_head == d->rx_tail) {
		d->clock += timeout_ms;
		return TP_TIMEOUT;
	}
	ev = &d->rx[d->rx_head];
	if (ev->kind == EV_STATUS && ev->st == TP_TIMEOUT) {
		d->rx_head++;
		d->clock += timeout_ms;
		return TP_TIMEOUT;
	}
	if (ev->delay_ms > timeout_ms) {
		ev->delay_ms -= timeout_ms;
		d->clock += timeout_ms;
		return TP_TIMEOUT;
	}
	d->clock += ev->delay_ms;
	d->rx_head++;
	return deliver(d, ev, buf, cap, got);
}

/* ---- bulk OUT ------------------------------------------------------------ */

void fake_send_result(struct fake_dev *d, tp_status st)
{
	d->send_results = xrealloc(d->send_results, (d->send_tail + 1) * sizeof(*d->send_results));
	d->send_results[d->send_tail++] = st;
}

static tp_status fake_send(struct ccid_transport *tp, const uint8_t *buf, size_t len,
			   unsigned timeout_ms)
{
	struct fake_dev *d = dev_of(tp);
	tp_status st = TP_OK;

	if (d->send_head < d->send_tail)
		st = d->send_results[d->send_head++];
	if (st == TP_TIMEOUT)
		d->clock += timeout_ms;
	d->sent = xrealloc(d->sent, (d->n_sent + 1) * sizeof(*d->sent));
	d->sent[d->n_sent++] = blob_copy(buf, len);
	if (st == TP_OK && d->responder != NULL)
		d->responder(d, buf, len, d->responder_ctx);
	return st;
}

/* ---- control, interrupt ---------------------------------------------------- */

void fake_control_result(struct fake_dev *d, tp_status st)
{
	d->control_st = st;
}

static tp_status fake_control(struct ccid_transport *tp, uint8_t request_type, uint8_t request,
			      uint16_t value, uint8_t *data, uint16_t len, size_t *got,
			      unsigned timeout_ms)
{
	struct fake_dev *d = dev_of(tp);

	(void)data;
	(void)timeout_ms;
	if (got != NULL)
		*got = 0;
	d->ctrl = xrealloc(d->ctrl, (d->n_ctrl + 1) * sizeof(*d->ctrl));
	d->ctrl[d->n_ctrl++] = (struct fake_ctrl){ request_type, request, value, len };
	return d->control_st;
}

void fake_int_bytes(struct fake_dev *d, const uint8_t *buf, size_t len)
{
	d->ints = xrealloc(d->ints, (d->int_tail + 1) * sizeof(*d->ints));
	d->ints[d->int_tail++] = blob_copy(buf, len);
}

static tp_status fake_wait_interrupt(struct ccid_transport *tp, uint8_t *buf, size_t cap,
				     size_t *got, unsigned timeout_ms)
{
	struct fake_dev *d = dev_of(tp);
	struct blob *b;

	*got = 0;
	if (d->cancelled) {
		d->cancelled = 0;
		return TP_CANCELLED;
	}
	if (d->int_head == d->int_tail) {
		d->clock += timeout_ms;
		return TP_TIMEOUT;
	}
	b = &d->ints[d->int_head++];
	if (b->len > cap)
		return TP_IO_ERROR;
	memcpy(buf, b->buf, b->len);
	*got = b->len;
	return TP_OK;
}

static void fake_cancel(struct ccid_transport *tp)
{
	dev_of(tp)->cancelled = 1;
}

static void fake_close(struct ccid_transport *tp)
{
	dev_of(tp)->closed = 1;
}

static const struct ccid_transport_ops fake_ops = {
	.send = fake_send,
	.receive = fake_receive,
	.wait_interrupt = fake_wait_interrupt,
	.control = fake_control,
	.cancel = fake_cancel,
	.close = fake_close,
};

/* ---- life ------------------------------------------------------------------ */

struct fake_dev *fake_new(const uint8_t *class_desc, size_t class_desc_len)
{
	struct fake_dev *d = xrealloc(NULL, sizeof(*d));
	struct tp_info *info = &d->tp.info;

	memset(d, 0, sizeof(*d));
	d->tp.ops = &fake_ops;
	d->tp.priv = d;
	d->control_st = TP_OK;
	info->vendor_id = 0x08E6;
	info->product_id = 0x4433;
	info->bcd_device = 0x0100;
	info->bus = 1;
	info->address = 2;
	info->bulk_in_packet = 64;
	info->has_interrupt = 1;
	if (class_desc_len > sizeof(info->class_desc))
		class_desc_len = sizeof(info->class_desc);
	if (class_desc != NULL)
		memcpy(info->class_desc, class_desc, class_desc_len);
	info->class_desc_len = class_desc ? class_desc_len : 0;
	snprintf(info->manufacturer, sizeof(info->manufacturer), "QEMU");
	snprintf(info->product, sizeof(info->product), "QEMU USB CCID");
	snprintf(info->serial, sizeof(info->serial), "1");
	return d;
}

struct ccid_transport *fake_transport(struct fake_dev *d)
{
	return &d->tp;
}

int fake_closed(const struct fake_dev *d)
{
	return d->closed;
}

static void free_blobs(struct blob *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(b[i].buf);
	free(b);
}

void fake_free(struct fake_dev *d)
{
	if (d == NULL)
		return;
	free_blobs(d->frames, d->n_frames);
	free_blobs(d->sent, d->n_sent);
	free_blobs(d->ints, d->int_tail);
	free(d->rx);
	free(d->send_results);
	free(d->ctrl);
	free(d);
}

uint64_t fake_clock_ms(void *dev)
{
	return ((struct fake_dev *)dev)->clock;
}

void fake_set_responder(struct fake_dev *d, fake_responder_fn fn, void *ctx)
{
	d->responder = fn;
	d->responder_ctx = ctx;
}

/* ---- inspection ------------------------------------------------------------ */

size_t fake_sent_count(const struct fake_dev *d)
{
	return d->n_sent;
}

const uint8_t *fake_sent(const struct fake_dev *d, size_t i, size_t *len)
{
	if (i >= d->n_sent)
		return NULL;
	if (len != NULL)
		*len = d->sent[i].len;
	return d->sent[i].buf;
}

const uint8_t *fake_sent_last(const struct fake_dev *d, size_t *len)
{
	return d->n_sent ? fake_sent(d, d->n_sent - 1, len) : NULL;
}

size_t fake_sent_count_type(const struct fake_dev *d, uint8_t type)
{
	size_t n = 0;

	for (size_t i = 0; i < d->n_sent; i++)
		if (d->sent[i].len > 0 && d->sent[i].buf[0] == type)
			n++;
	return n;
}

const uint8_t *fake_sent_last_type(const struct fake_dev *d, uint8_t type, size_t *len)
{
	for (size_t i = d->n_sent; i-- > 0;)
		if (d->sent[i].len > 0 && d->sent[i].buf[0] == type)
			return fake_sent(d, i, len);
	return NULL;
}

size_t fake_control_count(const struct fake_dev *d)
{
	return d->n_ctrl;
}

struct fake_ctrl fake_control_req(const struct fake_dev *d, size_t i)
{
	struct fake_ctrl none = { 0, 0, 0, 0 };

	return i < d->n_ctrl ? d->ctrl[i] : none;
}

size_t fake_receive_calls(const struct fake_dev *d)
{
	return d->receive_calls;
}
