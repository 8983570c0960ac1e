/* The virtual reader: life cycle, the bulk IN and interrupt IN queues, header
 * checks of PC_to_RDR messages (CCID 1.1 6.1) and dispatch. The messages
 * themselves are in vreader_msgs.c, vreader_xfr.c and vreader_secure.c; card
 * events, interrupt messages and class requests in vreader_events.c. Everything is synchronous: a command's answers are queued
 * before vr_bulk_out returns, in order. */
#include <stdlib.h>
#include <string.h>

#include "vr_internal.h"
#include "vr_log.h"

/* ---- queues ---------------------------------------------------------------- */

void vr_queue_push(struct vr_queue *q, uint8_t slot, const uint8_t *a, size_t alen,
		       const uint8_t *b, size_t blen)
{
	struct vr_msg *m;

	if (q->count >= VR_QUEUE_MAX) {
		vr_err("%zu messages queued and unread: message 0x%02X dropped", q->count, a[0]);
		return;
	}
	m = malloc(sizeof(*m) + alen + blen);
	if (m == NULL) {
		vr_err("out of memory: message 0x%02X of %zu bytes dropped", a[0], alen + blen);
		return;
	}
	m->next = NULL;
	m->slot = slot;
	m->len = alen + blen;
	memcpy(m->data, a, alen);
	if (blen)
		memcpy(m->data + alen, b, blen);
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->count++;
}

static struct vr_msg *queue_pop(struct vr_queue *q)
{
	struct vr_msg *m = q->head;

	if (m == NULL)
		return NULL;
	q->head = m->next;
	if (q->head == NULL)
		q->tail = NULL;
	q->count--;
	return m;
}

static void queue_clear(struct vr_queue *q)
{
	struct vr_msg *m;

	while ((m = queue_pop(q)) != NULL)
		free(m);
}

/* ---- answers (6.2) ---------------------------------------------------------- */

uint8_t vr_icc_status(const struct vr_slot *s)
{
	if (s == NULL || !s->present)
		return ICC_ABSENT;
	return s->powered ? ICC_ACTIVE : ICC_INACTIVE;
}

/* The RDR_to_PC type answering each PC_to_RDR type; unknown ones get a
 * SlotStatus saying "command not supported" (6.2.6). */
static uint8_t answer_type(uint8_t cmd)
{
	switch (cmd) {
	case PC_ICC_POWER_ON:
	case PC_XFR_BLOCK:
	case PC_SECURE:
		return RDR_DATA_BLOCK;
	case PC_GET_PARAMETERS:
	case PC_RESET_PARAMETERS:
	case PC_SET_PARAMETERS:
		return RDR_PARAMETERS;
	case PC_ESCAPE:
		return RDR_ESCAPE;
	case PC_SET_RATE_CLOCK:
		return RDR_RATE_CLOCK;
	default:
		return RDR_SLOT_STATUS;
	}
}

void vr_answer(struct vreader *vr, const struct vr_cmd *c, uint8_t cmd_status, uint8_t error,
	       uint8_t specific, const uint8_t *data, size_t len)
{
	uint8_t h[CCID_HEADER];
	size_t hlen;

	h[0] = answer_type(c->type);
	h[1] = (uint8_t)len;
	h[2] = (uint8_t)(len >> 8);
	h[3] = (uint8_t)(len >> 16);
	h[4] = (uint8_t)(len >> 24);
	h[5] = c->slot;
	h[6] = c->seq;
	h[7] = (uint8_t)(vr_icc_status(c->s) | cmd_status << 6);
	h[8] = error;
	h[9] = specific;
	hlen = vr_fault_answer(vr, h, &len);
	if (c->s)
		c->s->unread++;
	vr_comm("bulk IN header", h, hlen);
	vr_queue_push(&vr->bulk, c->s ? c->slot : 0xFF, h, hlen, data, len);
}

/* The message-specific byte of a failed answer: bClockStatus for SlotStatus,
 * bProtocolNum for Parameters, 0 otherwise. */
static uint8_t failed_specific(const struct vr_cmd *c)
{
	uint8_t t = answer_type(c->type);

	if (t == RDR_PARAMETERS && c->s)
		return c->s->protocol;
	if (t == RDR_SLOT_STATUS && c->s)
		return c->s->clock_stopped ? 1 : 0;
	return 0;
}

void vr_fail(struct vreader *vr, const struct vr_cmd *c, uint8_t error, const char *why)
{
	vr_err("message 0x%02X slot %u seq %u failed with bError 0x%02X: %s", c->type, c->slot, c->seq,
	       error, why);
	vr_answer(vr, c, CMD_FAILED, error, failed_specific(c), NULL, 0);
}

/* ---- life cycle ------------------------------------------------------------------ */

static int slot_init(struct vr_slot *s, const struct vr_profile *p, unsigned index)
{
	memset(s, 0, sizeof(*s));
	if (vcard_init(&s->card, &p->card) != 0 || vcard_relay_open(&s->card, index) != 0)
		return -1;
	s->cmd = malloc(VR_APDU_MAX);
	s->rsp = malloc(VCARD_RESPONSE_MAX);
	if (s->cmd == NULL || s->rsp == NULL) {
		vr_err("out of memory for the slot buffers");
		return -1;
	}
	s->present = p->card.present;
	s->clock = p->default_clock;
	s->rate = p->default_rate;
	s->class_get_response = 0xFF;
	s->class_envelope = 0xFF;
	vr_default_params(s, p, vcard_default_protocol(&s->card));
	return 0;
}

static void slot_free(struct vr_slot *s)
{
	vcard_free(&s->card);
	free(s->cmd);
	free(s->rsp);
	s->cmd = s->rsp = NULL;
}

struct vreader *vr_new(const struct vr_profile *p)
{
	struct vreader *vr;
	const char *why;
	unsigned present = 0;

	if (vr_profile_check(p, &why) != 0)
		return NULL;
	vr = calloc(1, sizeof(*vr));
	if (vr == NULL) {
		vr_err("out of memory for the reader");
		return NULL;
	}
	vr->p = *p;
	for (unsigned i = 0; i < p->slots; i++) {
		if (slot_init(&vr->slot[i], p, i) != 0) {
			vr_free(vr);
			return NULL;
		}
		if (vr->slot[i].present)
			present |= 1u << i;
	}
	/* At start the host learns of the cards already in (6.3.1). */
	if (present)
		vr_notify_slot_change(vr, present);
	vr_info("reader %04X:%04X, %u slot(s), level %d", p->vendor_id, p->product_id, p->slots,
		(int)p->level);
	return vr;
}

void vr_free(struct vreader *vr)
{
	if (vr == NULL)
		return;
	for (unsigned i = 0; i < VR_MAX_SLOTS; i++)
		slot_free(&vr->slot[i]);
	queue_clear(&vr->bulk);
	queue_clear(&vr->intr);
	free(vr);
}

const struct vr_profile *vr_profile(const struct vreader *vr)
{
	return &vr->p;
}

/* ---- chains ------------------------------------------------------------------ */

void vr_slot_clear_chains(struct vr_slot *s)
{
	s->cmd_open = false;
	s->cmd_len = 0;
	s->rsp_open = false;
	s->rsp_len = s->rsp_off = 0;
}

/* ---- bulk OUT: header checks, then dispatch (6.1, 6.2.6) --------------------------- */

static uint32_t le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static bool known_type(uint8_t t)
{
	switch (t) {
	case PC_ICC_POWER_ON: case PC_ICC_POWER_OFF: case PC_GET_SLOT_STATUS:
	case PC_XFR_BLOCK: case PC_GET_PARAMETERS: case PC_RESET_PARAMETERS:
	case PC_SET_PARAMETERS: case PC_ESCAPE: case PC_ICC_CLOCK: case PC_T0_APDU:
	case PC_SECURE: case PC_MECHANICAL: case PC_ABORT: case PC_SET_RATE_CLOCK:
		return true;
	default:
		return false;
	}
}

/* A slot is busy while an answer of its last command waits to be read; at
 * most bMaxCCIDBusySlots slots may be busy at once (5.1, 6.2.6). */
static bool slot_busy(const struct vreader *vr, const struct vr_cmd *c)
{
	unsigned busy = 0;

	if (c->type == PC_ABORT)
		return false;
	if (c->s->unread > 0)
		return true;
	for (unsigned i = 0; i < vr->p.slots; i++)
		busy += vr->slot[i].unread > 0;
	return busy >= vr->p.max_busy_slots;
}

void vr_bulk_out(struct vreader *vr, const uint8_t *msg, size_t len)
{
	struct vr_cmd c;

	vr_comm("bulk OUT", msg, len);
	if (vr_fault_take(vr, VR_FAULT_MUTE))
		return;
	if (len < CCID_HEADER) {
		vr_err("bulk OUT message of %zu bytes, shorter than a header: dropped", len);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.type = msg[0];
	c.length = le32(msg + 1);
	c.slot = msg[5];
	c.seq = msg[6];
	c.b7 = msg[7];
	c.b8 = msg[8];
	c.b9 = msg[9];
	c.data = msg + CCID_HEADER;
	c.len = len - CCID_HEADER;
	c.s = c.slot < vr->p.slots ? &vr->slot[c.slot] : NULL;
	if (c.s)
		c.s->last_seq = c.seq;
	if (!known_type(c.type))
		vr_fail(vr, &c, ERR_CMD_NOT_SUPPORTED, "unknown message type");
	else if (c.s == NULL)
		vr_fail(vr, &c, ERR_BAD_SLOT, "no such slot");
	else if (c.length != c.len)
		vr_fail(vr, &c, ERR_BAD_LENGTH, "dwLength does not match the bytes received");
	else if (len > vr->p.max_message)
		vr_fail(vr, &c, ERR_BAD_LENGTH, "message longer than dwMaxCCIDMessageLength");
	else if (slot_busy(vr, &c))
		vr_fail(vr, &c, ERR_SLOT_BUSY, "slot busy: an answer waits to be read");
	else
		vr_handle(vr, &c);
}

size_t vr_bulk_in(struct vreader *vr, uint8_t *buf, size_t cap)
{
	struct vr_msg *m = queue_pop(&vr->bulk);
	size_t n;

	if (m == NULL)
		return 0;
	n = m->len < cap ? m->len : cap;
	if (n < m->len)
		vr_err("bulk IN message of %zu bytes cut to the %zu-byte buffer", m->len, cap);
	memcpy(buf, m->data, n);
	if (m->slot < vr->p.slots && vr->slot[m->slot].unread > 0)
		vr->slot[m->slot].unread--;
	vr_comm("bulk IN", buf, n);
	free(m);
	return n;
}

size_t vr_interrupt_in(struct vreader *vr, uint8_t *buf, size_t cap)
{
	struct vr_msg *m = queue_pop(&vr->intr);
	size_t n;

	if (m == NULL)
		return 0;
	n = m->len < cap ? m->len : cap;
	memcpy(buf, m->data, n);
	free(m);
	return n;
}
