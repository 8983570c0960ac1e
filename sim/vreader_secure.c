/* PC_to_RDR_Secure (CCID 1.1 6.1.11): PIN verification and modification with
 * a virtual keypad that "types" the profile's keypad PINs. The reader formats
 * the PIN into abPINApdu as the structure says, then sends the APDU to the card
 * and answers RDR_to_PC_DataBlock with the card's response.
 *
 * Offsets below are from the start of the message (bError names the bad
 * field by its offset, 6.2.6). The PIN modification structure has one to three
 * bMsgIndex bytes: bMsgIndex2 when bNumberMessage is not 0, bMsgIndex3 when it
 * is 3 or more (FF) -- libccid builds it so. */
#include <string.h>

#include "vr_internal.h"
#include "vr_log.h"

#define OP_VERIFY 0
#define OP_MODIFY 1

#define OFF_OPERATION 10
#define OFF_FORMAT 12        /* bmFormatString */
#define OFF_BLOCK 13         /* bmPINBlockString */
#define OFF_LENGTH_FORMAT 14 /* bmPINLengthFormat */
#define OFF_V_EXTRA 15       /* verify: wPINMaxExtraDigit */
#define OFF_V_APDU 25        /* verify: abPINApdu */
#define OFF_M_OLD 15         /* modify: bInsertionOffsetOld */
#define OFF_M_NEW 16         /* modify: bInsertionOffsetNew */
#define OFF_M_EXTRA 17       /* modify: wPINMaxExtraDigit */
#define OFF_M_CONFIRM 19     /* modify: bConfirmPIN */
#define OFF_M_NUMBER 21      /* modify: bNumberMessage */
#define OFF_M_INDEX1 24      /* modify: bMsgIndex1 */
#define TEO_PROLOGUE 3
#define APDU_HEADER 5u
#define CONFIRM_CURRENT 0x02 /* bConfirmPIN bit 1: the current PIN is typed too */

enum pin_format { FMT_BINARY = 0, FMT_BCD = 1, FMT_ASCII = 2 };

/* How a PIN goes into the APDU's data field (PC/SC part 10 / CCID 6.1.11.4). */
struct pin_layout {
	bool bytes;             /* bmFormatString bit 7: positions in bytes, else bits */
	unsigned pos;           /* bits 6-3: PIN position in the block */
	bool right;             /* bit 2: right justified */
	enum pin_format format; /* bits 1-0 */
	unsigned length_bits;   /* bmPINBlockString bits 7-4: PIN length field size */
	unsigned block;         /* bits 3-0: PIN block size in bytes */
	bool length_bytes;      /* bmPINLengthFormat bit 4 */
	unsigned length_pos;    /* bits 3-0 */
	unsigned min, max;      /* wPINMaxExtraDigit: XXYY */
};

/* Write value in nbits bits at bit offset pos (bit 0 = most significant bit of
 * byte 0), within len bytes; false if it does not fit. */
static bool put_bits(uint8_t *buf, size_t len, size_t pos, unsigned nbits, unsigned value)
{
	if (pos + nbits > len * 8)
		return false;
	for (unsigned i = 0; i < nbits; i++) {
		size_t bit = pos + i;
		uint8_t mask = (uint8_t)(0x80u >> (bit % 8));

		if (value & (1u << (nbits - 1 - i)))
			buf[bit / 8] |= mask;
		else
			buf[bit / 8] &= (uint8_t)~mask;
	}
	return true;
}

static uint8_t parse_layout(const uint8_t *m, unsigned off_extra, struct pin_layout *l)
{
	l->bytes = (m[OFF_FORMAT] & 0x80) != 0;
	l->pos = (m[OFF_FORMAT] >> 3) & 0x0F;
	l->right = (m[OFF_FORMAT] & 0x04) != 0;
	l->format = (enum pin_format)(m[OFF_FORMAT] & 0x03);
	l->length_bits = m[OFF_BLOCK] >> 4;
	l->block = m[OFF_BLOCK] & 0x0F;
	l->length_bytes = (m[OFF_LENGTH_FORMAT] & 0x10) != 0;
	l->length_pos = m[OFF_LENGTH_FORMAT] & 0x0F;
	l->max = m[off_extra];
	l->min = m[off_extra + 1];
	if (l->format > FMT_ASCII)
		return OFF_FORMAT;
	if (m[OFF_LENGTH_FORMAT] & 0xE0)
		return OFF_LENGTH_FORMAT;
	if (l->min > l->max || l->max == 0)
		return (uint8_t)off_extra;
	return 0;
}

/* Put one PIN into the data field at byte offset base; 0 or the offset of the
 * field that makes it impossible. */
static uint8_t insert_pin(uint8_t *data, size_t len, size_t base, const struct pin_layout *l,
			  const char *pin, unsigned off_extra)
{
	unsigned n = (unsigned)strlen(pin), digit_bits = l->format == FMT_BCD ? 4 : 8;
	size_t unit = l->bytes ? 8 : 1, start = base * 8 + l->pos * unit;
	size_t block_bits = l->block ? l->block * 8u : n * digit_bits;

	if (n < l->min || n > l->max)
		return (uint8_t)off_extra;
	if (n * digit_bits > block_bits || start + block_bits > len * 8)
		return OFF_BLOCK;
	if (l->right)
		start += block_bits - n * digit_bits;
	for (unsigned i = 0; i < n; i++) {
		unsigned d = (unsigned)(pin[i] - '0');

		if (l->format == FMT_ASCII)
			d += '0';
		put_bits(data, len, start + i * digit_bits, digit_bits, d);
	}
	if (l->length_bits &&
	    !put_bits(data, len, base * 8 + l->length_pos * (l->length_bytes ? 8u : 1u), l->length_bits, n))
		return OFF_LENGTH_FORMAT;
	return 0;
}

/* abPINApdu must be a short APDU whose data field holds the PIN blocks. */
static bool apdu_ok(const uint8_t *apdu, size_t len)
{
	return len >= APDU_HEADER && apdu[4] != 0 && (len == APDU_HEADER + apdu[4] ||
						       len == APDU_HEADER + apdu[4] + 1u);
}

static void send_to_card(struct vreader *vr, const struct vr_cmd *c, const uint8_t *apdu, size_t len)
{
	struct vr_slot *s = c->s;
	unsigned delay;
	size_t n;

	if (vr->p.level >= VR_LEVEL_SHORT_APDU)
		n = vcard_apdu(&s->card, apdu, len, s->rsp, VCARD_RESPONSE_MAX, &delay);
	else if (vr->p.level == VR_LEVEL_TPDU && s->protocol == 0)
		n = vcard_t0_tpdu(&s->card, apdu, len, s->rsp, VCARD_RESPONSE_MAX, &delay);
	else {
		vr_fail(vr, c, ERR_PROTOCOL_NOT_SUPPORTED, "Secure at this level and protocol is not implemented");
		return;
	}
	if (vcard_take_mute(&s->card)) {
		s->powered = false;
		vr_fail(vr, c, ERR_ICC_MUTE, "the card did not answer (vicc gone)");
		return;
	}
	vr_answer(vr, c, CMD_OK, 0, 0, s->rsp, n);
}

static void verify(struct vreader *vr, const struct vr_cmd *c, const uint8_t *m, size_t mlen)
{
	struct pin_layout l;
	uint8_t apdu[APDU_HEADER + 256], bad;
	size_t alen;

	if (mlen < OFF_V_APDU + APDU_HEADER || !apdu_ok(m + OFF_V_APDU, mlen - OFF_V_APDU)) {
		vr_fail(vr, c, mlen < OFF_V_APDU ? ERR_BAD_LENGTH : OFF_V_APDU, "PIN verification structure");
		return;
	}
	alen = mlen - OFF_V_APDU;
	memcpy(apdu, m + OFF_V_APDU, alen);
	bad = parse_layout(m, OFF_V_EXTRA, &l);
	if (!bad)
		bad = insert_pin(apdu + APDU_HEADER, apdu[4], 0, &l, vr->p.keypad_pin, OFF_V_EXTRA);
	if (bad) {
		vr_fail(vr, c, bad, "PIN verification structure cannot take the PIN");
		return;
	}
	vr_info("slot %u: keypad PIN verification", c->slot);
	send_to_card(vr, c, apdu, alen);
}

static void modify(struct vreader *vr, const struct vr_cmd *c, const uint8_t *m, size_t mlen)
{
	struct pin_layout l;
	uint8_t apdu[APDU_HEADER + 256], bad;
	size_t off_apdu, alen;

	if (mlen <= OFF_M_NUMBER) {
		vr_fail(vr, c, ERR_BAD_LENGTH, "PIN modification structure too short");
		return;
	}
	off_apdu = OFF_M_INDEX1 + 1u + (m[OFF_M_NUMBER] != 0) + (m[OFF_M_NUMBER] >= 3) + TEO_PROLOGUE;
	if (mlen < off_apdu + APDU_HEADER || !apdu_ok(m + off_apdu, mlen - off_apdu)) {
		vr_fail(vr, c, mlen < off_apdu ? ERR_BAD_LENGTH : (uint8_t)off_apdu,
			"PIN modification structure");
		return;
	}
	alen = mlen - off_apdu;
	memcpy(apdu, m + off_apdu, alen);
	bad = parse_layout(m, OFF_M_EXTRA, &l);
	if (!bad && (m[OFF_M_CONFIRM] & CONFIRM_CURRENT))
		bad = insert_pin(apdu + APDU_HEADER, apdu[4], m[OFF_M_OLD], &l, vr->p.keypad_pin, OFF_M_EXTRA);
	if (!bad) {
		bad = insert_pin(apdu + APDU_HEADER, apdu[4], m[OFF_M_NEW], &l, vr->p.keypad_new_pin,
				 OFF_M_EXTRA);
		if (bad == OFF_BLOCK && m[OFF_M_NEW] >= apdu[4])
			bad = OFF_M_NEW;
	}
	if (bad) {
		vr_fail(vr, c, bad, "PIN modification structure cannot take the PINs");
		return;
	}
	vr_info("slot %u: keypad PIN modification", c->slot);
	send_to_card(vr, c, apdu, alen);
}

void vr_secure(struct vreader *vr, const struct vr_cmd *c)
{
	/* the checks below read m[OFF_...], so keep the whole message at hand */
	uint8_t m[CCID_HEADER + 14 + 6 + APDU_HEADER + 256];
	size_t mlen = CCID_HEADER + c->len;

	if (vr->p.pin_support == 0) {
		vr_fail(vr, c, ERR_CMD_NOT_SUPPORTED, "no PIN support in this profile");
		return;
	}
	if (!c->s->present || !c->s->powered) {
		vr_fail(vr, c, ERR_ICC_MUTE, c->s->present ? "card not powered" : "no card");
		return;
	}
	if (c->len < 1 + 14 || mlen > sizeof(m)) {
		vr_fail(vr, c, ERR_BAD_LENGTH, "Secure data of a size no PIN structure has");
		return;
	}
	memset(m, 0, CCID_HEADER);
	memcpy(m + CCID_HEADER, c->data, c->len);
	if (m[OFF_OPERATION] == OP_VERIFY && (vr->p.pin_support & 0x01))
		verify(vr, c, m, mlen);
	else if (m[OFF_OPERATION] == OP_MODIFY && (vr->p.pin_support & 0x02))
		modify(vr, c, m, mlen);
	else
		vr_fail(vr, c, OFF_OPERATION, "bPINOperation not supported");
}
