/* The virtual card: ATR from the profile, APDUs to the applet, and the card's
 * side of T=0 at TPDU level (ISO 7816-3 section 10). */
#include <stdlib.h>
#include <string.h>

#include "vcard.h"
#include "vicc_relay.h"
#include "vr_log.h"

#define TS_DIRECT 0x3B
#define TS_INVERSE 0x3F
#define Y_TA 0x10
#define Y_TB 0x20
#define Y_TC 0x40
#define Y_TD 0x80

#define INS_GET_RESPONSE 0xC0
#define SW1_MORE 0x61      /* 61 xx: xx bytes waiting for GET RESPONSE */
#define SW1_WRONG_LE 0x6C  /* 6C xx: resend with P3 = xx */
#define SW_WRONG_LENGTH 0x6700
#define SW_CONDITIONS 0x6985

/* ---- ATR (ISO 7816-3 8.2) ---------------------------------------------------- */

/* Appends one interface group: Y nibble at *td (the T0 or TDi byte already
 * written), then the present bytes. */
struct atr_writer {
	uint8_t *b;
	size_t n;
};

static void put(struct atr_writer *w, uint8_t v)
{
	w->b[w->n++] = v;
}

/* The T=1 group (11.4): TD announcing T=1, then TA IFSC, TB BWI/CWI, TC EDC. */
static void t1_group(struct atr_writer *w, const struct vr_card_profile *c)
{
	put(w, 0x01 | Y_TA | Y_TB | (c->crc ? Y_TC : 0));
	put(w, c->ifsc);
	put(w, (uint8_t)(c->bwi << 4 | c->cwi));
	if (c->crc)
		put(w, 0x01);
}

size_t vcard_build_atr(const struct vr_card_profile *c, uint8_t out[VCARD_ATR_MAX])
{
	struct atr_writer w = { out, 0 };
	bool tc2 = c->t0 && c->wi >= 0;
	bool need_td1 = c->t1 || c->ta2 >= 0 || tc2 || c->class_ind != 0;
	size_t y_at;

	if ((!c->t0 && !c->t1) || c->hist_len > VR_HIST_MAX)
		return 0;
	put(&w, c->inverse ? TS_INVERSE : TS_DIRECT);
	/* T0: Y1 and K */
	y_at = w.n;
	put(&w, (uint8_t)c->hist_len);
	if (c->ta1 >= 0) {
		out[y_at] |= Y_TA;
		put(&w, (uint8_t)c->ta1);
	}
	if (c->tc1 >= 0) {
		out[y_at] |= Y_TC;
		put(&w, (uint8_t)c->tc1);
	}
	if (need_td1) {
		out[y_at] |= Y_TD;
		y_at = w.n;
		/* TD1: the first protocol offered */
		put(&w, c->t0 ? 0x00 : 0x01);
		if (c->ta2 >= 0) {
			out[y_at] |= Y_TA;
			put(&w, (uint8_t)c->ta2);
		}
		if (tc2) { /* TC2 is specific to T=0 (10.2) */
			out[y_at] |= Y_TC;
			put(&w, (uint8_t)c->wi);
		}
		if (c->t1) {
			/* TD2 = T=1: the next group holds the T=1 bytes (11.4) */
			out[y_at] |= Y_TD;
			y_at = w.n;
			t1_group(&w, c);
		}
		if (c->class_ind != 0) {
			/* 8.3: a TD announcing T=15 (global bytes, after the
			 * protocols), then its first TA: clock stop indicator X
			 * (b8-b7, 00: not supported) and class indicator Y
			 * (b6-b1: b1 A 5 V, b2 B 3 V, b3 C 1.8 V) */
			out[y_at] |= Y_TD;
			put(&w, 0x0F | Y_TA);
			put(&w, c->class_ind);
		}
	}
	memcpy(out + w.n, c->hist, c->hist_len);
	w.n += c->hist_len;
	if (c->t1 || c->class_ind != 0) {
		/* TCK: present unless only T=0 is indicated (8.2.5); T=15 counts */
		uint8_t x = 0;

		for (size_t i = 1; i < w.n; i++)
			x ^= out[i];
		put(&w, x);
	}
	return w.n;
}

/* ---- life of the card ------------------------------------------------------- */

int vcard_init(struct vcard *c, const struct vr_card_profile *cfg)
{
	memset(c, 0, sizeof(*c));
	c->cfg = *cfg;
	c->atr_len = vcard_build_atr(cfg, c->atr);
	if (c->atr_len == 0) {
		vr_err("card profile cannot make an ATR (no protocol?)");
		return -1;
	}
	c->pending = malloc(APPLET_MAX_DATA);
	c->t1.cmd = malloc(VCARD_APDU_MAX);
	c->t1.rsp = malloc(VCARD_RESPONSE_MAX);
	if (c->pending == NULL || c->t1.cmd == NULL || c->t1.rsp == NULL) {
		vr_err("out of memory for the card's response buffer");
		return -1;
	}
	applet_init(&c->applet, cfg->pin);
	vcard_t1_reset(c);
	return 0;
}

void vcard_free(struct vcard *c)
{
	free(c->pending);
	free(c->t1.cmd);
	free(c->t1.rsp);
	c->pending = c->t1.cmd = c->t1.rsp = NULL;
	vicc_relay_free(c->relay);
	c->relay = NULL;
}

bool vcard_takes_voltage(const struct vcard *c, uint8_t class_bit)
{
	/* a card's class indicator says where it works (ISO 7816-3 6.2.4, 8.3) */
	uint8_t classes = c->cfg.class_ind != 0 ? c->cfg.class_ind : c->cfg.voltages;

	return (classes & class_bit) != 0;
}

static void drop_pending(struct vcard *c)
{
	c->pending_len = 0;
	c->pending_off = 0;
}

void vcard_reset(struct vcard *c)
{
	drop_pending(c);
	applet_reset(&c->applet);
	vcard_t1_reset(c);
	vcard_char_reset(c);
}

uint8_t vcard_default_protocol(const struct vcard *c)
{
	if (c->cfg.ta2 >= 0 && (c->cfg.ta2 & 0x0F) <= 1)
		return (uint8_t)(c->cfg.ta2 & 0x0F);
	return c->cfg.t0 ? 0 : 1;
}

static size_t put_sw(uint8_t *out, size_t at, uint16_t sw)
{
	out[at] = (uint8_t)(sw >> 8);
	out[at + 1] = (uint8_t)sw;
	return at + 2;
}

/* ---- who answers: the applet or vicc -------------------------------------------- */

/* A parsed short command back to bytes (ISO 7816-4 5.1), for vicc. */
static size_t encode_short(const struct apdu *cmd, uint8_t out[5 + 255 + 1])
{
	size_t n = 4;

	out[0] = cmd->cla;
	out[1] = cmd->ins;
	out[2] = cmd->p1;
	out[3] = cmd->p2;
	if (cmd->nc > 0) {
		out[n++] = (uint8_t)cmd->nc;
		memcpy(out + n, cmd->data, cmd->nc);
		n += cmd->nc;
	}
	if (cmd->has_le)
		out[n++] = (uint8_t)(cmd->ne >= 256 ? 0 : cmd->ne);
	return n;
}

/* One command, data into out (APPLET_MAX_DATA), status and delay into r. The
 * T=0 paths only make short commands (P3 is one byte). */
static void process(struct vcard *c, const struct apdu *cmd, uint8_t *out, struct applet_reply *r)
{
	uint8_t raw[5 + 255 + 1];

	if (c->relay == NULL) {
		applet_process(&c->applet, cmd, out, APPLET_MAX_DATA, r);
		return;
	}
	vcard_relay_apdu(c, raw, encode_short(cmd, raw), out, VCARD_RESPONSE_MAX, r);
}

/* ---- APDU level ---------------------------------------------------------------- */

size_t vcard_apdu(struct vcard *c, const uint8_t *apdu, size_t len, uint8_t *out, size_t cap,
		  unsigned *delay)
{
	struct applet_reply r;
	struct apdu cmd;

	*delay = 0;
	if (cap < VCARD_RESPONSE_MAX)
		return 0;
	drop_pending(c);
	if (c->relay != NULL) {
		/* vicc judges the command itself: the relay passes it unchanged */
		vcard_relay_apdu(c, apdu, len, out, cap, &r);
		return put_sw(out, r.len, r.sw);
	}
	if (apdu_parse(apdu, len, &cmd) != 0) {
		vr_err("card: malformed APDU of %zu bytes (length fields do not match)", len);
		return put_sw(out, 0, SW_WRONG_LENGTH);
	}
	applet_process(&c->applet, &cmd, out, APPLET_MAX_DATA, &r);
	*delay = r.delay;
	return put_sw(out, r.len, r.sw);
}

/* ---- T=0 at TPDU level (ISO 7816-3 10.3) ------------------------------------- */

/* What 61 xx says: up to 256 bytes wait (00 meaning 256). */
static uint16_t sw_more(size_t waiting)
{
	return (uint16_t)(SW1_MORE << 8 | (waiting >= 256 ? 0 : waiting));
}

static size_t get_response(struct vcard *c, uint8_t p3, uint8_t *out)
{
	size_t avail = c->pending_len - c->pending_off;
	size_t want = p3 ? p3 : 256;

	if (avail == 0)
		return put_sw(out, 0, SW_CONDITIONS);
	if (want > avail) {
		/* 6C xx: "wrong length, the right one is xx"; the data keeps waiting */
		return put_sw(out, 0, (uint16_t)(SW1_WRONG_LE << 8 | (avail >= 256 ? 0 : avail)));
	}
	memcpy(out, c->pending + c->pending_off, want);
	c->pending_off += want;
	avail -= want;
	if (avail > 0)
		return put_sw(out, want, sw_more(avail));
	drop_pending(c);
	return put_sw(out, want, c->pending_sw);
}

/* Keep the applet's data for GET RESPONSE and say how much waits. */
static size_t hold(struct vcard *c, const uint8_t *data, size_t len, uint16_t sw, uint8_t *out)
{
	memmove(c->pending, data, len);
	c->pending_len = len;
	c->pending_off = 0;
	c->pending_sw = sw;
	return put_sw(out, 0, sw_more(len));
}

/* Header only: case 1 or 2, P3 = Le (00 = 256). The card answers exactly P3
 * bytes, or 6C with the length it has. */
static size_t outgoing(struct vcard *c, struct apdu *cmd, uint8_t p3, uint8_t *out, unsigned *delay)
{
	struct applet_reply r;
	size_t ne = p3 ? p3 : 256;

	cmd->has_le = true;
	cmd->ne = ne;
	process(c, cmd, out, &r);
	*delay = r.delay;
	if (r.len == 0 || r.len == ne)
		return put_sw(out, r.len, r.sw);
	if (r.len > 256)
		return hold(c, out, r.len, r.sw, out);
	return put_sw(out, 0, (uint16_t)(SW1_WRONG_LE << 8 | (r.len & 0xFF)));
}

/* Header and P3 data bytes: case 3 (or 4, whose answer waits behind 61 xx). */
static size_t incoming(struct vcard *c, struct apdu *cmd, uint8_t *out, unsigned *delay)
{
	struct applet_reply r;

	process(c, cmd, out, &r);
	*delay = r.delay;
	if (r.len == 0)
		return put_sw(out, 0, r.sw);
	return hold(c, out, r.len, r.sw, out);
}

size_t vcard_t0_tpdu(struct vcard *c, const uint8_t *t, size_t len, uint8_t *out, size_t cap,
		     unsigned *delay)
{
	struct apdu cmd;

	*delay = 0;
	if (cap < VCARD_RESPONSE_MAX)
		return 0;
	if (len < 5 || (len > 5 && (t[4] == 0 || len != 5u + t[4]))) {
		vr_err("card T=0: malformed TPDU of %zu bytes (P3 %u)", len, len >= 5 ? t[4] : 0);
		drop_pending(c);
		return put_sw(out, 0, SW_WRONG_LENGTH);
	}
	if (len == 5 && t[1] == INS_GET_RESPONSE && c->pending_len > c->pending_off)
		return get_response(c, t[4], out);
	drop_pending(c);
	memset(&cmd, 0, sizeof(cmd));
	cmd.cla = t[0];
	cmd.ins = t[1];
	cmd.p1 = t[2];
	cmd.p2 = t[3];
	if (len == 5)
		return outgoing(c, &cmd, t[4], out, delay);
	cmd.data = t + 5;
	cmd.nc = t[4];
	return incoming(c, &cmd, out, delay);
}
