/* The PC_to_RDR messages other than XfrBlock (CCID 1.1 section 6.1), each
 * answered with its RDR_to_PC message (6.2). The header was checked in
 * vreader.c: c->s is a real slot and dwLength matches. */
#include <string.h>

#include "vr_internal.h"
#include "vr_log.h"

#define POWER_AUTO 0
#define CLOCK_RESTART 0
#define CLOCK_STOP 1
#define FEAT_CLOCK_STOP 0x100u
#define FEAT_NAD 0x200u
#define FEAT_AUTO_IFSD 0x400u
#define FEAT_AUTO_PPS 0xC0u   /* 0x40 proprietary negotiation, 0x80 PPS from the active parameters */
#define FIDI_DEFAULT 0x11
#define T0_PARAMS_LEN 5
#define T1_PARAMS_LEN 7

/* ---- parameters (6.1.7, Tables 6.1-4 and 6.1-5) -------------------------------- */

static size_t params_len(uint8_t protocol)
{
	return protocol == 1 ? T1_PARAMS_LEN : T0_PARAMS_LEN;
}

/* A reader with automatic IFSD exchange (dwFeatures 0x400) tells a T=1 card
 * its IFSD itself, so the card's blocks may be as long as dwMaxIFSD. */
void vr_auto_ifsd(struct vr_slot *s, const struct vr_profile *p)
{
	if (s->protocol == 1 && (p->auto_features & FEAT_AUTO_IFSD))
		s->card.t1.ifsd = (uint8_t)(p->max_ifsd < 254 ? p->max_ifsd : 254);
}

/* After reset: the card's ATR values; Fi/Di from TA1 if the reader negotiates
 * PPS itself, the defaults otherwise. */
void vr_default_params(struct vr_slot *s, const struct vr_profile *p, uint8_t protocol)
{
	const struct vr_card_profile *c = &s->card.cfg;
	uint8_t *b = s->params;

	memset(b, 0, sizeof(s->params));
	s->protocol = protocol;
	vr_auto_ifsd(s, p);
	b[0] = (p->auto_features & FEAT_AUTO_PPS) && c->ta1 >= 0 ? (uint8_t)c->ta1 : FIDI_DEFAULT;
	b[2] = c->tc1 >= 0 ? (uint8_t)c->tc1 : 0;
	if (protocol == 0) {
		b[1] = c->inverse ? 0x02 : 0x00;
		b[3] = c->wi >= 0 ? (uint8_t)c->wi : 10;
	} else {
		b[1] = (uint8_t)(0x10 | (c->crc ? 0x01 : 0) | (c->inverse ? 0x02 : 0));
		b[3] = (uint8_t)(c->bwi << 4 | c->cwi);
		b[5] = c->ifsc;
	}
}

static void answer_params(struct vreader *vr, const struct vr_cmd *c)
{
	vr_answer(vr, c, CMD_OK, 0, c->s->protocol, c->s->params, params_len(c->s->protocol));
}

/* The offset (from the start of the message) of the first bad field, 0 if all
 * are good. */
static uint8_t check_params(const struct vreader *vr, uint8_t protocol, const uint8_t *d)
{
	static const uint8_t fi_ok[16] = { 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0 };
	static const uint8_t di_ok[16] = { 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0 };

	if (!fi_ok[d[0] >> 4] || !di_ok[d[0] & 0x0F])
		return 10; /* bmFindexDindex */
	if (protocol == 0) {
		if ((d[1] & ~0x02) != 0)
			return 11; /* bmTCCKST0: only bit 1 (convention) */
		if (d[3] == 0)
			return 13; /* bWaitingIntegerT0: WI 0 is RFU */
	} else {
		if ((d[1] & 0xFC) != 0x10)
			return 11; /* bmTCCKST1: 0x10, 0x11, 0x12, 0x13 */
		if ((d[3] >> 4) > 9)
			return 13; /* bmWaitingIntegersT1: BWI 0..9 */
	}
	if (d[4] > 3)
		return 14; /* bClockStop */
	if (protocol == 1 && (d[5] == 0 || d[5] == 0xFF))
		return 15; /* bIFSC 1..254 */
	if (protocol == 1 && d[6] != 0 && !(vr->p.auto_features & FEAT_NAD))
		return 16; /* bNadValue */
	return 0;
}

static void set_parameters(struct vreader *vr, const struct vr_cmd *c)
{
	uint8_t protocol = c->b7, bad;

	if (protocol > 1 || !(vr->p.protocols & (1u << protocol))) {
		vr_fail(vr, c, ERR_BAD_BYTE7, "bProtocolNum not supported by the reader");
		return;
	}
	if (c->s->present && !(protocol == 0 ? c->s->card.cfg.t0 : c->s->card.cfg.t1)) {
		vr_fail(vr, c, ERR_BAD_BYTE7, "the card does not offer this protocol");
		return;
	}
	if (c->len != params_len(protocol)) {
		vr_fail(vr, c, ERR_BAD_LENGTH, "parameter block of the wrong size for the protocol");
		return;
	}
	bad = check_params(vr, protocol, c->data);
	if (bad) {
		vr_fail(vr, c, bad, "bad parameter field");
		return;
	}
	memset(c->s->params, 0, sizeof(c->s->params));
	memcpy(c->s->params, c->data, c->len);
	c->s->protocol = protocol;
	vr_auto_ifsd(c->s, &vr->p);
	vr_info("slot %u: T=%u parameters set, Fi/Di 0x%02X", c->slot, protocol, c->data[0]);
	answer_params(vr, c);
}

/* ---- power (6.1.1, 6.1.2) ------------------------------------------------------------ */

/* bPowerSelect to a voltage class bit (1 5 V, 2 3 V, 4 1.8 V). */
static uint8_t class_bit(uint8_t power_select)
{
	return (uint8_t)(1u << (power_select - 1));
}

/* bPowerSelect 0: try the reader's voltages from the lowest (ISO 7816-3 6.2.4). */
static uint8_t pick_voltage(const struct vreader *vr, const struct vr_slot *s, uint8_t power_select)
{
	if (power_select != POWER_AUTO) {
		uint8_t bit = class_bit(power_select);

		return vcard_takes_voltage(&s->card, bit) ? bit : 0;
	}
	for (int bit = 4; bit >= 1; bit >>= 1) {
		if ((vr->p.voltages & bit) && vcard_takes_voltage(&s->card, (uint8_t)bit))
			return (uint8_t)bit;
	}
	return 0;
}

static void power_on(struct vreader *vr, const struct vr_cmd *c)
{
	struct vr_slot *s = c->s;

	if (c->b7 > 3 || (c->b7 != POWER_AUTO && !(vr->p.voltages & class_bit(c->b7)))) {
		vr_fail(vr, c, ERR_BAD_BYTE7, "bPowerSelect names a voltage the reader lacks");
		return;
	}
	if (!s->present) {
		vr_fail(vr, c, ERR_ICC_MUTE, "no card");
		return;
	}
	if (pick_voltage(vr, s, c->b7) == 0) {
		s->powered = false;
		vr_fail(vr, c, ERR_ICC_MUTE, "the card does not answer at this voltage");
		return;
	}
	vcard_reset(&s->card);
	if (vcard_power_on(&s->card) != 0) {
		/* a relayed card whose vicc is not there (vcard_relay.c) */
		s->powered = false;
		vr_fail(vr, c, ERR_ICC_MUTE, "the card gave no ATR");
		return;
	}
	s->powered = true;
	s->pps_allowed = true;
	s->clock_stopped = false;
	vr_slot_clear_chains(s);
	vr_default_params(s, &vr->p, vcard_default_protocol(&s->card));
	vr_info("slot %u: card powered, ATR of %zu bytes", c->slot, s->card.atr_len);
	vr_answer(vr, c, CMD_OK, 0, 0, s->card.atr, s->card.atr_len);
}

static uint8_t clock_status(const struct vr_slot *s)
{
	return s->clock_stopped ? 1 : 0; /* 1: stopped in state L */
}

static void slot_status(struct vreader *vr, const struct vr_cmd *c)
{
	vr_answer(vr, c, CMD_OK, 0, clock_status(c->s), NULL, 0);
}

static void power_off(struct vreader *vr, const struct vr_cmd *c)
{
	if (c->s->powered) {
		vr_info("slot %u: card powered off", c->slot);
		vcard_power_off(&c->s->card);
	}
	c->s->powered = false;
	c->s->clock_stopped = false;
	vcard_reset(&c->s->card);
	vr_slot_clear_chains(c->s);
	slot_status(vr, c);
}

/* ---- clock, T0APDU, mechanical, abort, escape, rate (6.1.8 - 6.1.14) ------------------- */

static void icc_clock(struct vreader *vr, const struct vr_cmd *c)
{
	if (c->b7 != CLOCK_RESTART && c->b7 != CLOCK_STOP) {
		vr_fail(vr, c, ERR_BAD_BYTE7, "bClockCommand is 0 or 1");
		return;
	}
	if (!c->s->powered) {
		vr_fail(vr, c, ERR_ICC_MUTE, "no active card to clock");
		return;
	}
	if (c->b7 == CLOCK_STOP && !(vr->p.auto_features & FEAT_CLOCK_STOP)) {
		vr_fail(vr, c, ERR_BAD_BYTE7, "clock stop not in dwFeatures");
		return;
	}
	c->s->clock_stopped = c->b7 == CLOCK_STOP;
	slot_status(vr, c);
}

static void t0_apdu(struct vreader *vr, const struct vr_cmd *c)
{
	if (vr->p.level < VR_LEVEL_SHORT_APDU) {
		vr_fail(vr, c, ERR_CMD_NOT_SUPPORTED, "T0APDU is for APDU-level readers");
		return;
	}
	if (c->b7 & ~0x03) {
		vr_fail(vr, c, ERR_BAD_BYTE7, "bmChanges has bits other than 0 and 1");
		return;
	}
	c->s->t0apdu_changes = c->b7;
	if (c->b7 & 0x01)
		c->s->class_get_response = c->b8;
	if (c->b7 & 0x02)
		c->s->class_envelope = c->b9;
	slot_status(vr, c);
}

/* bFunction (6.1.12) and the dwMechanical bit it needs. */
static void mechanical(struct vreader *vr, const struct vr_cmd *c)
{
	static const uint8_t need[6] = { 0, 0x1, 0x2, 0x4, 0x8, 0x8 };
	unsigned slot = c->slot;

	if (vr->p.mechanical == 0) {
		vr_fail(vr, c, ERR_CMD_NOT_SUPPORTED, "no mechanical features in this profile");
		return;
	}
	if (c->b7 < 1 || c->b7 > 5 || !(vr->p.mechanical & need[c->b7])) {
		vr_fail(vr, c, ERR_BAD_BYTE7, "bFunction not supported by dwMechanical");
		return;
	}
	if (c->b7 == 1)
		vr_insert_card(vr, slot);
	else if (c->b7 == 2 || c->b7 == 3)
		vr_remove_card(vr, slot);
	else
		c->s->locked = c->b7 == 4;
	slot_status(vr, c);
}

/* 5.3.1: the host sends the ABORT class request, then this message. Nothing
 * runs in the background here, so there is nothing to stop but chains. */
static void abort_msg(struct vreader *vr, const struct vr_cmd *c)
{
	if (!c->s->abort_requested || c->s->abort_seq != c->seq)
		vr_info("slot %u: PC_to_RDR_Abort seq %u without a matching ABORT request", c->slot, c->seq);
	c->s->abort_requested = false;
	vr_slot_clear_chains(c->s);
	slot_status(vr, c);
}

/* A supported value: the one asked if listed (or under the maximum when no
 * list exists), otherwise the largest listed below it, otherwise the smallest. */
static uint32_t pick_value(uint32_t want, const uint32_t *list, unsigned n, uint32_t max)
{
	uint32_t best = 0, smallest = 0xFFFFFFFFu;

	if (n == 0)
		return want < max ? want : max;
	for (unsigned i = 0; i < n; i++) {
		if (list[i] == want)
			return want;
		if (list[i] < want && list[i] > best)
			best = list[i];
		if (list[i] < smallest)
			smallest = list[i];
	}
	return best ? best : smallest;
}

static void put_le32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void set_rate_clock(struct vreader *vr, const struct vr_cmd *c)
{
	const struct vr_profile *p = &vr->p;
	uint32_t clock, rate;
	uint8_t out[8];

	if (c->len != 8) {
		vr_fail(vr, c, ERR_BAD_LENGTH, "SetDataRateAndClockFrequency carries 8 bytes");
		return;
	}
	clock = (uint32_t)c->data[0] | (uint32_t)c->data[1] << 8 | (uint32_t)c->data[2] << 16 |
		(uint32_t)c->data[3] << 24;
	rate = (uint32_t)c->data[4] | (uint32_t)c->data[5] << 8 | (uint32_t)c->data[6] << 16 |
	       (uint32_t)c->data[7] << 24;
	if (clock == 0) {
		vr_fail(vr, c, ERR_BAD_DATA, "dwClockFrequency 0");
		return;
	}
	if (rate == 0) {
		vr_fail(vr, c, ERR_BAD_DATA + 4, "dwDataRate 0");
		return;
	}
	c->s->clock = pick_value(clock, p->clocks, p->n_clocks, p->max_clock);
	c->s->rate = pick_value(rate, p->rates, p->n_rates, p->max_rate);
	put_le32(out, c->s->clock);
	put_le32(out + 4, c->s->rate);
	vr_answer(vr, c, CMD_OK, 0, 0, out, sizeof(out));
}

/* Escape: echoes what it gets (sim/README.md). */
static void escape(struct vreader *vr, const struct vr_cmd *c)
{
	vr_answer(vr, c, CMD_OK, 0, 0, c->data, c->len);
}

static bool no_data(struct vreader *vr, const struct vr_cmd *c)
{
	if (c->len == 0)
		return true;
	vr_fail(vr, c, ERR_BAD_LENGTH, "this message carries no data");
	return false;
}

void vr_handle(struct vreader *vr, const struct vr_cmd *c)
{
	switch (c->type) {
	case PC_ICC_POWER_ON:
		if (no_data(vr, c))
			power_on(vr, c);
		break;
	case PC_ICC_POWER_OFF:
		if (no_data(vr, c))
			power_off(vr, c);
		break;
	case PC_GET_SLOT_STATUS:
		if (no_data(vr, c))
			slot_status(vr, c);
		break;
	case PC_XFR_BLOCK:
		vr_xfr_block(vr, c);
		break;
	case PC_GET_PARAMETERS:
		if (no_data(vr, c))
			answer_params(vr, c);
		break;
	case PC_RESET_PARAMETERS:
		if (no_data(vr, c)) {
			vr_default_params(c->s, &vr->p, vcard_default_protocol(&c->s->card));
			answer_params(vr, c);
		}
		break;
	case PC_SET_PARAMETERS:
		set_parameters(vr, c);
		break;
	case PC_ESCAPE:
		escape(vr, c);
		break;
	case PC_ICC_CLOCK:
		if (no_data(vr, c))
			icc_clock(vr, c);
		break;
	case PC_T0_APDU:
		if (no_data(vr, c))
			t0_apdu(vr, c);
		break;
	case PC_SECURE:
		vr_secure(vr, c);
		break;
	case PC_MECHANICAL:
		if (no_data(vr, c))
			mechanical(vr, c);
		break;
	case PC_ABORT:
		if (no_data(vr, c))
			abort_msg(vr, c);
		break;
	case PC_SET_RATE_CLOCK:
		set_rate_clock(vr, c);
		break;
	default:
		vr_fail(vr, c, ERR_CMD_NOT_SUPPORTED, "unknown message type");
		break;
	}
}
