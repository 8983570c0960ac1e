/* Card events, the interrupt IN messages they cause (CCID 1.1 6.3), and the
 * class requests on ep0 (5.3). */
#include "vr_internal.h"
#include "vr_log.h"

/* CCID 1.1 5.3: class requests */
#define REQTYPE_CLASS_OUT 0x21
#define REQTYPE_CLASS_IN 0xA1
#define REQ_ABORT 0x01
#define REQ_GET_CLOCK_FREQUENCIES 0x02
#define REQ_GET_DATA_RATES 0x03

/* ---- interrupt IN (6.3) ------------------------------------------------------- */

void vr_notify_slot_change(struct vreader *vr, unsigned changed_mask)
{
	uint8_t m[1 + (VR_MAX_SLOTS + 3) / 4] = { RDR_NOTIFY_SLOT_CHANGE };
	size_t len = 1 + (vr->p.slots + 3) / 4;

	if (!vr->p.has_interrupt)
		return;
	for (unsigned i = 0; i < vr->p.slots; i++) {
		unsigned bits = (vr->slot[i].present ? 1u : 0u) | ((changed_mask >> i) & 1u) << 1;

		m[1 + i / 4] |= (uint8_t)(bits << (2 * (i % 4)));
	}
	vr_comm("interrupt IN", m, len);
	vr_queue_push(&vr->intr, 0xFF, m, len, NULL, 0);
}

void vr_hardware_error(struct vreader *vr, unsigned slot, uint8_t code)
{
	uint8_t m[4];

	if (slot >= vr->p.slots) {
		vr_err("HardwareError for slot %u: the reader has %u", slot, vr->p.slots);
		return;
	}
	if (!vr->p.has_interrupt) {
		vr_err("HardwareError for slot %u: no interrupt endpoint in this profile", slot);
		return;
	}
	m[0] = RDR_HARDWARE_ERROR;
	m[1] = (uint8_t)slot;
	m[2] = vr->slot[slot].last_seq;
	m[3] = code;
	vr_queue_push(&vr->intr, 0xFF, m, sizeof(m), NULL, 0);
}

/* ---- cards ----------------------------------------------------------------------- */

void vr_insert_card(struct vreader *vr, unsigned slot)
{
	struct vr_slot *s;

	if (slot >= vr->p.slots) {
		vr_err("insert: no slot %u (the reader has %u)", slot, vr->p.slots);
		return;
	}
	s = &vr->slot[slot];
	if (s->present)
		return;
	s->present = true;
	s->powered = false;
	vcard_reset(&s->card);
	vr_info("slot %u: card inserted", slot);
	vr_notify_slot_change(vr, 1u << slot);
}

void vr_remove_card(struct vreader *vr, unsigned slot)
{
	struct vr_slot *s;

	if (slot >= vr->p.slots) {
		vr_err("remove: no slot %u (the reader has %u)", slot, vr->p.slots);
		return;
	}
	s = &vr->slot[slot];
	if (!s->present)
		return;
	if (s->powered)
		vcard_power_off(&s->card); /* a relayed card: vicc hears it too */
	s->present = false;
	s->powered = false;
	s->clock_stopped = false;
	vr_slot_clear_chains(s);
	vr_info("slot %u: card removed", slot);
	vr_notify_slot_change(vr, 1u << slot);
}

bool vr_card_present(const struct vreader *vr, unsigned slot)
{
	return slot < vr->p.slots && vr->slot[slot].present;
}

/* ---- class requests (5.3) --------------------------------------------------------- */

static int list_request(const uint32_t *items, unsigned n, uint8_t *data, uint16_t len, const char *what)
{
	size_t bytes = 4u * n, out = bytes < len ? bytes : len;

	if (n == 0) {
		vr_info("%s: no list in the profile: stall", what);
		return -1;
	}
	for (size_t i = 0; i < out; i++)
		data[i] = (uint8_t)(items[i / 4] >> (8 * (i % 4)));
	return (int)out;
}

int vr_control(struct vreader *vr, uint8_t request_type, uint8_t request, uint16_t value,
	       uint8_t *data, uint16_t len)
{
	if (request_type == REQTYPE_CLASS_OUT && request == REQ_ABORT) {
		unsigned slot = value & 0xFF;

		if (slot >= vr->p.slots) {
			vr_err("ABORT for slot %u: the reader has %u: stall", slot, vr->p.slots);
			return -1;
		}
		vr->slot[slot].abort_requested = true;
		vr->slot[slot].abort_seq = (uint8_t)(value >> 8);
		vr_info("ABORT class request, slot %u seq %u", slot, value >> 8);
		return 0;
	}
	if (request_type == REQTYPE_CLASS_IN && request == REQ_GET_CLOCK_FREQUENCIES)
		return list_request(vr->p.clocks, vr->p.n_clocks, data, len, "GET_CLOCK_FREQUENCIES");
	if (request_type == REQTYPE_CLASS_IN && request == REQ_GET_DATA_RATES)
		return list_request(vr->p.rates, vr->p.n_rates, data, len, "GET_DATA_RATES");
	vr_err("unknown class request bmRequestType 0x%02X bRequest 0x%02X: stall", request_type, request);
	return -1;
}
