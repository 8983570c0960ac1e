/* PC_to_RDR_XfrBlock (CCID 1.1 6.1.4) at each exchange level, answered with
 * RDR_to_PC_DataBlock (6.2.1):
 *   TPDU level, T=0: the TPDU goes to the card, which answers as a T=0 card;
 *   TPDU level, T=1: one block to the card, its block back (vcard_t1.c);
 *   short APDU level: one whole short APDU in, the whole response out;
 *   extended APDU level: command and response chaining by wLevelParameter and
 *   bChainParameter, parts no bigger than dwMaxCCIDMessageLength allows.
 *   character level: bytes on the I/O line each way (vcard_char.c).
 * A card that takes time (80 38 00 xx) first causes xx DataBlocks with
 * bmCommandStatus 2 (time extension, bError 1 = one more waiting time): they
 * are queued before the answer; a front end may pace them. */
#include <string.h>

#include "vr_internal.h"
#include "vr_log.h"

/* wLevelParameter / bChainParameter (6.1.4, 6.2.1) */
#define CHAIN_WHOLE 0x0000
#define CHAIN_BEGIN 0x0001
#define CHAIN_END 0x0002
#define CHAIN_MORE 0x0003
#define CHAIN_NEXT 0x0010
#define TIME_EXTENSION_MULTIPLIER 1

static void time_extensions(struct vreader *vr, const struct vr_cmd *c, unsigned units)
{
	if (units > 255)
		units = 255;
	units += vr_fault_storm(vr);
	for (unsigned i = 0; i < units; i++)
		vr_answer(vr, c, CMD_TIME_EXTENSION, TIME_EXTENSION_MULTIPLIER, 0, NULL, 0);
}

static void data_block(struct vreader *vr, const struct vr_cmd *c, uint8_t chain, const uint8_t *data,
		       size_t len)
{
	vr_answer(vr, c, CMD_OK, 0, chain, data, len);
}

static size_t max_part(const struct vreader *vr)
{
	return vr->p.max_message - CCID_HEADER;
}

/* An APDU in the extended form: a 0 where the short Lc or Le would be, with
 * more bytes after it (ISO 7816-4 5.1). */
static bool is_extended(const uint8_t *apdu, size_t len)
{
	return len >= 7 && apdu[4] == 0;
}

/* ---- TPDU level ---------------------------------------------------------------- */

/* PPS (ISO 7816-3 section 9): PPSS FF, PPS0 (bits 4-6: PPS1-3 present, low
 * nibble: the protocol), PPS1-3, PCK (XOR of all bytes is 0). The card agrees
 * by echoing the request; it takes the protocols it offers and the Fi/Di of
 * its TA1 or the default one. A request it does not take gets no answer. */
static bool pps_acceptable(const struct vr_slot *s, const uint8_t *d, size_t len, uint8_t *fidi)
{
	size_t want = 3;
	uint8_t x = 0;

	if (len < 3)
		return false;
	for (unsigned bit = 0x10; bit <= 0x40; bit <<= 1)
		want += (d[1] & bit) != 0;
	if (len != want)
		return false;
	for (size_t i = 0; i < len; i++)
		x ^= d[i];
	if (x != 0)
		return false;
	if ((d[1] & 0x0F) > 1 || !((d[1] & 0x0F) == 0 ? s->card.cfg.t0 : s->card.cfg.t1))
		return false;
	*fidi = 0x11;
	if (d[1] & 0x10) {
		*fidi = d[2];
		if (d[2] != 0x11 && (s->card.cfg.ta1 < 0 || d[2] != (uint8_t)s->card.cfg.ta1))
			return false;
	}
	return true;
}

/* A PPS request right after the ATR: true if the card took it (the slot then
 * runs the protocol and Fi/Di asked). */
static bool pps_apply(struct vreader *vr, const struct vr_cmd *c)
{
	struct vr_slot *s = c->s;
	uint8_t fidi;

	s->pps_allowed = false;
	if (!pps_acceptable(s, c->data, c->len, &fidi)) {
		vr_err("slot %u: PPS request of %zu bytes (PPS0 0x%02X) refused: the card stays mute",
		       c->slot, c->len, c->len > 1 ? c->data[1] : 0);
		return false;
	}
	vr_default_params(s, &vr->p, c->data[1] & 0x0F);
	s->params[0] = fidi;
	vr_info("slot %u: PPS to T=%u, Fi/Di 0x%02X", c->slot, c->data[1] & 0x0F, fidi);
	return true;
}

static void pps(struct vreader *vr, const struct vr_cmd *c)
{
	if (pps_apply(vr, c))
		data_block(vr, c, 0, c->data, c->len);
	else
		vr_fail(vr, c, ERR_ICC_MUTE, "no PPS response");
}

/* ---- T=1 faults on demand (vreader_faults.c) ---------------------------------------- */

/* What becomes of the card's next T=1 block, at TPDU and at character level:
 * "t1-lost" first (a lost block has no EDC to spoil), then "t1-bad-edc". */
static enum vcard_t1_fate t1_fate(void *ctx)
{
	struct vreader *vr = ctx;

	if (vr_fault_take(vr, VR_FAULT_T1_LOST))
		return VCARD_T1_LOST;
	if (vr_fault_take(vr, VR_FAULT_T1_BAD_EDC))
		return VCARD_T1_BAD_EDC;
	return VCARD_T1_DELIVERED;
}

/* ---- character level ------------------------------------------------------------- */

/* A relayed card whose vicc left or stopped answering (vcard_relay.c) is mute:
 * failed, bError FE, what it had half sent on its line is dropped, and the
 * slot is inactive until the host powers the card up again. */
static bool card_mute(struct vreader *vr, const struct vr_cmd *c)
{
	if (!vcard_take_mute(&c->s->card))
		return false;
	vcard_char_reset(&c->s->card);
	vr_slot_clear_chains(c->s);
	c->s->powered = false;
	vr_fail(vr, c, ERR_ICC_MUTE, "the card did not answer (vicc gone)");
	return true;
}

/* abData goes out on the I/O line; wLevelParameter bytes are read back (0:
 * none). Fewer bytes from the card than asked: the reader times out (mute),
 * and the bytes stay for the next read (with T=1, until the host sends its
 * next block). A T=1 block the card sends may be spoiled or lost on the way
 * (t1_fate), as at TPDU level. */
static void xfr_char(struct vreader *vr, const struct vr_cmd *c)
{
	struct vr_slot *s = c->s;
	size_t want = (size_t)(c->b8 | c->b9 << 8), waiting;

	if (want > max_part(vr)) {
		vr_fail(vr, c, ERR_BAD_LEVEL, "more bytes asked than a message can carry");
		return;
	}
	if (c->len > 0 && s->pps_allowed && c->data[0] == 0xFF) {
		if (pps_apply(vr, c))
			vcard_char_emit(&s->card, c->data, c->len);
	} else if (c->len > 0) {
		struct vcard_t1_faults faults = { t1_fate, vr };

		s->pps_allowed = false;
		vcard_char_in(&s->card, s->protocol, c->data, c->len, s->rsp, &faults);
		if (card_mute(vr, c))
			return;
	}
	waiting = vcard_char_waiting(&s->card);
	if (waiting < want) {
		vr_err("slot %u: %zu bytes asked, the card sent %zu", c->slot, want, waiting);
		vr_fail(vr, c, ERR_ICC_MUTE, "the card sent fewer bytes than asked");
		return;
	}
	vcard_char_out(&s->card, s->rsp, want);
	data_block(vr, c, 0, s->rsp, want);
}

static void xfr_tpdu(struct vreader *vr, const struct vr_cmd *c)
{
	struct vr_slot *s = c->s;
	unsigned delay;
	size_t n;

	if (s->pps_allowed && c->len > 0 && c->data[0] == 0xFF) {
		pps(vr, c);
		return;
	}
	s->pps_allowed = false;
	if (s->protocol == 1) {
		/* T=1: the abData is one block; the card's block comes back */
		n = vcard_t1_block(&s->card, c->data, c->len, s->rsp);
		if (card_mute(vr, c))
			return;
		switch (t1_fate(vr)) {
		case VCARD_T1_LOST:
			vr_fail(vr, c, ERR_ICC_MUTE, "fault: the card's T=1 block is lost");
			return;
		case VCARD_T1_BAD_EDC:
			vr_info("slot %u: fault: the card's T=1 block goes out with a bad EDC", c->slot);
			vcard_t1_spoil_edc(s->rsp, n);
			break;
		case VCARD_T1_DELIVERED:
		default:
			break;
		}
		data_block(vr, c, 0, s->rsp, n);
		return;
	}
	n = vcard_t0_tpdu(&s->card, c->data, c->len, s->rsp, VCARD_RESPONSE_MAX, &delay);
	if (card_mute(vr, c))
		return;
	time_extensions(vr, c, delay);
	data_block(vr, c, 0, s->rsp, n);
}

/* ---- short APDU level -------------------------------------------------------- */

static void xfr_short(struct vreader *vr, const struct vr_cmd *c)
{
	struct vr_slot *s = c->s;
	unsigned delay;
	size_t n;

	if (is_extended(c->data, c->len)) {
		vr_fail(vr, c, ERR_BAD_DATA, "extended APDU sent to a short APDU reader");
		return;
	}
	n = vcard_apdu(&s->card, c->data, c->len, s->rsp, VCARD_RESPONSE_MAX, &delay);
	if (card_mute(vr, c))
		return;
	if (n > max_part(vr)) {
		vr_fail(vr, c, ERR_BAD_DATA, "response larger than dwMaxCCIDMessageLength allows");
		return;
	}
	time_extensions(vr, c, delay);
	data_block(vr, c, 0, s->rsp, n);
}

/* ---- extended APDU level ---------------------------------------------------- */

/* The next part of a response waiting in s->rsp. */
static void send_response_part(struct vreader *vr, const struct vr_cmd *c, bool first)
{
	struct vr_slot *s = c->s;
	size_t left = s->rsp_len - s->rsp_off, part = max_part(vr);
	uint8_t chain;

	if (left <= part) {
		chain = first ? CHAIN_WHOLE : CHAIN_END;
		part = left;
		s->rsp_open = false;
	} else {
		chain = first ? CHAIN_BEGIN : CHAIN_MORE;
		s->rsp_open = true;
	}
	data_block(vr, c, chain, s->rsp + s->rsp_off, part);
	s->rsp_off += part;
}

static void run_apdu(struct vreader *vr, const struct vr_cmd *c, const uint8_t *apdu, size_t len)
{
	struct vr_slot *s = c->s;
	unsigned delay;

	s->rsp_len = vcard_apdu(&s->card, apdu, len, s->rsp, VCARD_RESPONSE_MAX, &delay);
	s->rsp_off = 0;
	if (card_mute(vr, c))
		return;
	time_extensions(vr, c, delay);
	send_response_part(vr, c, true);
}

static bool append_part(struct vreader *vr, const struct vr_cmd *c)
{
	struct vr_slot *s = c->s;

	if (c->len > VR_APDU_MAX - s->cmd_len) {
		vr_slot_clear_chains(s);
		vr_fail(vr, c, ERR_BAD_DATA, "chained command APDU longer than an extended APDU");
		return false;
	}
	memcpy(s->cmd + s->cmd_len, c->data, c->len);
	s->cmd_len += c->len;
	return true;
}

static void xfr_extended(struct vreader *vr, const struct vr_cmd *c)
{
	struct vr_slot *s = c->s;
	uint16_t level = (uint16_t)(c->b8 | c->b9 << 8);

	if (level == CHAIN_NEXT) {
		if (!s->rsp_open) {
			vr_fail(vr, c, ERR_BAD_LEVEL, "next response part asked, none waits");
			return;
		}
		send_response_part(vr, c, false);
		return;
	}
	if (s->rsp_open) {
		vr_err("slot %u: new command while %zu response bytes wait: dropped", c->slot,
		       s->rsp_len - s->rsp_off);
		s->rsp_open = false;
	}
	switch (level) {
	case CHAIN_WHOLE:
		if (s->cmd_open)
			vr_err("slot %u: whole APDU in the middle of a chain: chain dropped", c->slot);
		s->cmd_open = false;
		run_apdu(vr, c, c->data, c->len);
		return;
	case CHAIN_BEGIN:
		s->cmd_len = 0;
		s->cmd_open = true;
		if (append_part(vr, c))
			data_block(vr, c, CHAIN_NEXT, NULL, 0);
		return;
	case CHAIN_MORE:
	case CHAIN_END:
		if (!s->cmd_open) {
			vr_fail(vr, c, ERR_BAD_LEVEL, "command chain continued but never begun");
			return;
		}
		if (!append_part(vr, c))
			return;
		if (level == CHAIN_MORE) {
			data_block(vr, c, CHAIN_NEXT, NULL, 0);
			return;
		}
		s->cmd_open = false;
		run_apdu(vr, c, s->cmd, s->cmd_len);
		return;
	default:
		vr_slot_clear_chains(s);
		vr_fail(vr, c, ERR_BAD_LEVEL, "unknown wLevelParameter");
		return;
	}
}

void vr_xfr_block(struct vreader *vr, const struct vr_cmd *c)
{
	if (!c->s->present || !c->s->powered) {
		vr_fail(vr, c, ERR_ICC_MUTE, c->s->present ? "card not powered" : "no card");
		return;
	}
	switch (vr->p.level) {
	case VR_LEVEL_TPDU:
		xfr_tpdu(vr, c);
		break;
	case VR_LEVEL_SHORT_APDU:
		xfr_short(vr, c);
		break;
	case VR_LEVEL_EXTENDED_APDU:
		xfr_extended(vr, c);
		break;
	case VR_LEVEL_CHARACTER:
	default:
		xfr_char(vr, c);
		break;
	}
}
