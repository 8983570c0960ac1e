/* The card when a slot relays to vicc (card-relay=vicc:HOST:PORT): vicc's ATR
 * becomes the card's at power-on, and the whole command APDUs the card gets
 * go to vicc. The relay sits at the APDU boundary of the card, under the T=0
 * TPDU handling (vcard.c), the T=1 blocks (vcard_t1.c) and the character line
 * (vcard_char.c), so every exchange level reaches vicc the same way.
 *
 * The I/O is in vicc_relay.c; this file is what the card makes of it. */
#include <string.h>

#include "vcard.h"
#include "vicc_relay.h"
#include "vr_log.h"

#define SW_NO_DIAGNOSIS 0x6F00 /* ISO 7816-4 5.6: no precise diagnosis */
#define IFSC_DEFAULT 32        /* ISO 7816-3 11.4.2 */
#define BWI_DEFAULT 4
#define CWI_DEFAULT 13
#define BWI_MAX 9              /* ISO 7816-3 11.4.3: 10 to 15 are RFU */

int vcard_relay_open(struct vcard *c, unsigned slot)
{
	if (c->cfg.relay_port == 0)
		return 0;
	c->relay = vicc_relay_new(c->cfg.relay_host, (uint16_t)(c->cfg.relay_port + slot));
	return c->relay != NULL ? 0 : -1;
}

bool vcard_take_mute(struct vcard *c)
{
	bool mute = c->mute;

	c->mute = false;
	return mute;
}

/* ---- what the reader needs from vicc's ATR (ISO 7816-3 8.2) ------------------------- */

struct atr_scan {
	const uint8_t *b;
	size_t len, at;
};

/* The next byte, -1 past the end. */
static int next(struct atr_scan *s)
{
	return s->at < s->len ? s->b[s->at++] : -1;
}

/* Group g's interface bytes (TAg TBg TCg, present by the y nibble) of
 * protocol t (0 for group 1, else the T of TD(g-1)). */
static int interface_group(struct vr_card_profile *p, struct atr_scan *s, unsigned g, unsigned y,
			   uint8_t t, bool *t1_group_seen)
{
	int ta = -1, tb = -1, tc = -1;
	bool t1_group = g >= 3 && t == 1 && !*t1_group_seen;

	if ((y & 1) && (ta = next(s)) < 0)
		return -1;
	if ((y & 2) && (tb = next(s)) < 0)
		return -1;
	if ((y & 4) && (tc = next(s)) < 0)
		return -1;
	if (g == 1) {
		p->ta1 = ta;
		p->tc1 = tc;
	} else if (g == 2) {
		p->ta2 = ta;
		if (t == 0) /* TC2 is specific to T=0 (10.2) */
			p->wi = tc;
	} else if (t1_group) {
		/* The first TAi/TBi/TCi after T=1 (i > 2): IFSC, BWI/CWI, EDC (11.4) */
		*t1_group_seen = true;
		if (ta >= 1 && ta <= 254)
			p->ifsc = (uint8_t)ta;
		else if (ta >= 0)
			vr_err("vicc ATR: IFSC %d is reserved, the card uses %u", ta, IFSC_DEFAULT);
		if (tb >= 0) {
			p->bwi = (uint8_t)(tb >> 4) > BWI_MAX ? BWI_MAX : (uint8_t)(tb >> 4);
			p->cwi = (uint8_t)(tb & 0x0F);
		}
		p->crc = tc >= 0 && (tc & 1);
	}
	return 0;
}

/* The card's protocol values from an ATR: 0, -1 if it does not parse. */
static int atr_params(const uint8_t *atr, size_t len, struct vr_card_profile *p)
{
	struct atr_scan s = { atr, len, 1 };
	bool t1_group_seen = false, any_td = false, tck = false;
	int t0 = next(&s), td;
	unsigned y, g = 1;
	uint8_t t = 0;

	if (atr[0] != 0x3B && atr[0] != 0x3F) {
		vr_err("vicc ATR: TS 0x%02X is neither 3B nor 3F", atr[0]);
		return -1;
	}
	p->inverse = atr[0] == 0x3F;
	p->t0 = p->t1 = false;
	p->ta1 = p->tc1 = p->wi = p->ta2 = -1;
	p->ifsc = IFSC_DEFAULT;
	p->bwi = BWI_DEFAULT;
	p->cwi = CWI_DEFAULT;
	p->crc = false;
	for (y = (unsigned)t0 >> 4;; g++) {
		if (interface_group(p, &s, g, y, t, &t1_group_seen) != 0)
			goto short_atr;
		if (!(y & 8))
			break;
		if ((td = next(&s)) < 0)
			goto short_atr;
		any_td = true;
		t = (uint8_t)(td & 0x0F);
		p->t0 |= t == 0;
		p->t1 |= t == 1;
		tck |= t != 0; /* 8.2.5 */
		y = (unsigned)td >> 4;
	}
	if (!any_td)
		p->t0 = true; /* no TD1: T=0 only (8.2.3) */
	if (s.at + (t0 & 0x0F) + (tck ? 1u : 0u) > len)
		goto short_atr;
	if (s.at + (t0 & 0x0F) + (tck ? 1u : 0u) < len)
		vr_err("vicc ATR: %zu bytes beyond its end, passed on as they are",
		       len - (s.at + (t0 & 0x0F) + (tck ? 1u : 0u)));
	if (!p->t0 && !p->t1) {
		vr_err("vicc ATR offers neither T=0 nor T=1: the reader cannot talk to the card");
		return -1;
	}
	return 0;
short_atr:
	vr_err("vicc ATR of %zu bytes is shorter than its T0/TDi bytes announce", len);
	return -1;
}

/* ---- power and commands ----------------------------------------------------------- */

int vcard_power_on(struct vcard *c)
{
	struct vr_card_profile cfg = c->cfg;
	uint8_t atr[VCARD_ATR_MAX];
	size_t n = 0;

	c->mute = false;
	if (c->relay == NULL)
		return 0;
	if (vicc_relay_control(c->relay, VICC_POWER_ON) != VICC_OK ||
	    vicc_relay_atr(c->relay, atr, sizeof(atr), &n) != VICC_OK) {
		vr_err("card: vicc gave no ATR, the card is mute");
		return -1;
	}
	if (atr_params(atr, n, &cfg) != 0) {
		vr_err("card: vicc's ATR of %zu bytes is unusable, the card is mute", n);
		return -1;
	}
	c->cfg = cfg;
	memcpy(c->atr, atr, n);
	c->atr_len = n;
	vcard_t1_reset(c);
	vr_info("card: vicc's ATR of %zu bytes, T=0 %s, T=1 %s", n, cfg.t0 ? "yes" : "no",
		cfg.t1 ? "yes" : "no");
	return 0;
}

void vcard_power_off(struct vcard *c)
{
	if (c->relay != NULL && vicc_relay_control(c->relay, VICC_POWER_OFF) != VICC_OK)
		vr_err("card: power off not delivered to vicc");
}

void vcard_relay_apdu(struct vcard *c, const uint8_t *apdu, size_t len, uint8_t *out, size_t cap,
		      struct applet_reply *r)
{
	enum vicc_status st;
	size_t n = 0;

	r->len = 0;
	r->delay = 0;
	r->sw = SW_NO_DIAGNOSIS;
	st = vicc_relay_apdu(c->relay, apdu, len, out, cap, &n);
	if (st == VICC_GONE) {
		vr_err("card: vicc did not answer a command APDU of %zu bytes, the card is mute", len);
		c->mute = true;
		return;
	}
	if (st != VICC_OK) {
		vr_err("card: no usable answer from vicc to a command APDU of %zu bytes: 6F 00", len);
		return;
	}
	/* vicc_relay_apdu checked 2 <= n <= cap */
	r->len = n - 2;
	r->sw = (uint16_t)(out[n - 2] << 8 | out[n - 1]);
}
