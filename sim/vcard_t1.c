/* The card's side of T=1 (ISO 7816-3 section 11), for a reader at TPDU level:
 * one block in, one block out. I-blocks with chaining both ways, R-blocks
 * (acknowledgement, retransmission of the last block on error), S-blocks
 * RESYNCH, IFS and ABORT from the host, and WTX asked by the card when the
 * applet takes time (80 38 00 xx: WTX multiplier xx). */
#include <string.h>

#include "vcard.h"
#include "vr_log.h"

#define PCB_I_NS 0x40      /* I-block: N(S) */
#define PCB_I_MORE 0x20    /* I-block: M, more data follows */
#define PCB_R 0x80         /* R-block: 10xN00ee */
#define PCB_R_NR 0x10
#define PCB_S 0xC0         /* S-block: 11R0tttt */
#define S_RESPONSE 0x20
#define S_RESYNCH 0x00
#define S_IFS 0x01
#define S_ABORT 0x02
#define S_WTX 0x03
#define R_OK 0
#define R_EDC 1
#define R_OTHER 2
#define IFS_DEFAULT 32
#define LEN_MAX 254

static size_t edc_len(const struct vcard *c)
{
	return c->cfg.crc ? 2 : 1;
}

/* CRC of ISO/IEC 13239 as T=1 uses it: polynomial x^16 + x^12 + x^5 + 1 taken
 * bit-reversed (0x8408), initial value FFFF, sent high byte first. */
uint16_t vcard_t1_crc(const uint8_t *buf, size_t len)
{
	uint16_t v = 0xFFFF;

	for (size_t i = 0; i < len; i++) {
		v ^= buf[i];
		for (int b = 0; b < 8; b++)
			v = (v & 1) ? (uint16_t)((v >> 1) ^ 0x8408) : (uint16_t)(v >> 1);
	}
	return v;
}

static void put_edc(const struct vcard *c, uint8_t *blk, size_t n)
{
	if (c->cfg.crc) {
		uint16_t crc = vcard_t1_crc(blk, n);

		blk[n] = (uint8_t)(crc >> 8);
		blk[n + 1] = (uint8_t)crc;
	} else {
		uint8_t x = 0;

		for (size_t i = 0; i < n; i++)
			x ^= blk[i];
		blk[n] = x;
	}
}

static bool edc_ok(const struct vcard *c, const uint8_t *blk, size_t n)
{
	uint8_t want[2];
	uint8_t tmp[VCARD_T1_BLOCK_MAX];

	memcpy(tmp, blk, n);
	put_edc(c, tmp, n);
	want[0] = tmp[n];
	want[1] = c->cfg.crc ? tmp[n + 1] : 0;
	return blk[n] == want[0] && (!c->cfg.crc || blk[n + 1] == want[1]);
}

void vcard_t1_reset(struct vcard *c)
{
	struct vcard_t1 *t = &c->t1;

	t->ns = 0;
	t->nr = 0;
	t->ifsd = IFS_DEFAULT;
	t->cmd_len = 0;
	t->rsp_len = t->rsp_off = 0;
	t->sending = false;
	t->wtx_pending = false;
	t->last_len = 0;
}

/* Build a block (NAD 0) and remember it for retransmission. */
static size_t send_block(struct vcard *c, uint8_t pcb, const uint8_t *inf, size_t len, uint8_t *out)
{
	out[0] = 0;
	out[1] = pcb;
	out[2] = (uint8_t)len;
	if (len)
		memcpy(out + 3, inf, len);
	put_edc(c, out, 3 + len);
	c->t1.last_len = 3 + len + edc_len(c);
	memcpy(c->t1.last, out, c->t1.last_len);
	return c->t1.last_len;
}

static size_t r_block(struct vcard *c, uint8_t error, uint8_t *out)
{
	return send_block(c, (uint8_t)(PCB_R | (c->t1.nr ? PCB_R_NR : 0) | error), NULL, 0, out);
}

/* The next part of the response, in an I-block of at most IFSD bytes. */
static size_t next_i_block(struct vcard *c, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	size_t left = t->rsp_len - t->rsp_off, n = left < t->ifsd ? left : t->ifsd;
	uint8_t pcb = (uint8_t)((t->ns ? PCB_I_NS : 0) | (left > n ? PCB_I_MORE : 0));
	size_t len = send_block(c, pcb, t->rsp + t->rsp_off, n, out);

	t->rsp_off += n;
	t->ns ^= 1;
	t->sending = t->rsp_off < t->rsp_len;
	return len;
}

/* The whole command APDU is in: run it; a card that needs time asks WTX first. */
static size_t run_command(struct vcard *c, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	unsigned delay;
	uint8_t wtx;

	t->rsp_len = vcard_apdu(c, t->cmd, t->cmd_len, t->rsp, VCARD_RESPONSE_MAX, &delay);
	t->rsp_off = 0;
	t->cmd_len = 0;
	if (delay > 0) {
		wtx = (uint8_t)(delay > 255 ? 255 : delay);
		t->wtx_pending = true;
		return send_block(c, PCB_S | S_WTX, &wtx, 1, out);
	}
	return next_i_block(c, out);
}

static size_t i_block(struct vcard *c, uint8_t pcb, const uint8_t *inf, size_t len, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	uint8_t ns = (pcb & PCB_I_NS) ? 1 : 0;

	if (ns != t->nr) {
		vr_err("card T=1: I-block N(S) %u, expected %u", ns, t->nr);
		return r_block(c, R_OTHER, out);
	}
	if (len > c->cfg.ifsc || len > VCARD_APDU_MAX - t->cmd_len) {
		vr_err("card T=1: I-block of %zu bytes (IFSC %u, %zu already chained)", len, c->cfg.ifsc,
		       t->cmd_len);
		return r_block(c, R_OTHER, out);
	}
	t->sending = false; /* a new command ends whatever response was under way */
	t->nr ^= 1;
	memcpy(t->cmd + t->cmd_len, inf, len);
	t->cmd_len += len;
	if (pcb & PCB_I_MORE)
		return r_block(c, R_OK, out);
	return run_command(c, out);
}

static size_t r_block_in(struct vcard *c, uint8_t pcb, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	uint8_t nr = (pcb & PCB_R_NR) ? 1 : 0;

	/* an acknowledgement of our last I-block: the next part */
	if (t->sending && nr == t->ns && (pcb & 0x03) == R_OK)
		return next_i_block(c, out);
	if (t->last_len > 0) { /* otherwise: send the last block again (rule 7.1) */
		memcpy(out, t->last, t->last_len);
		return t->last_len;
	}
	return r_block(c, R_OTHER, out);
}

static size_t s_block(struct vcard *c, uint8_t pcb, const uint8_t *inf, size_t len, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	uint8_t type = pcb & 0x1F;

	if (pcb & S_RESPONSE) {
		if (type == S_WTX && t->wtx_pending && len == 1) {
			t->wtx_pending = false;
			return next_i_block(c, out);
		}
		vr_err("card T=1: unexpected S-block response PCB 0x%02X", pcb);
		return r_block(c, R_OTHER, out);
	}
	switch (type) {
	case S_RESYNCH:
		if (len != 0)
			break;
		vcard_t1_reset(c);
		return send_block(c, PCB_S | S_RESPONSE | S_RESYNCH, NULL, 0, out);
	case S_IFS:
		if (len != 1 || inf[0] == 0 || inf[0] == 0xFF)
			break;
		t->ifsd = inf[0];
		return send_block(c, PCB_S | S_RESPONSE | S_IFS, inf, 1, out);
	case S_ABORT:
		if (len != 0)
			break;
		t->cmd_len = 0;
		t->sending = false;
		return send_block(c, PCB_S | S_RESPONSE | S_ABORT, NULL, 0, out);
	default:
		break;
	}
	vr_err("card T=1: S-block request PCB 0x%02X with %zu INF bytes refused", pcb, len);
	return r_block(c, R_OTHER, out);
}

size_t vcard_t1_block(struct vcard *c, const uint8_t *b, size_t len, uint8_t *out)
{
	size_t inf_len;

	if (len < 3 + edc_len(c) || len > VCARD_T1_BLOCK_MAX || b[2] > LEN_MAX ||
	    len != 3u + b[2] + edc_len(c)) {
		vr_err("card T=1: malformed block of %zu bytes", len);
		return r_block(c, R_OTHER, out);
	}
	inf_len = b[2];
	if (!edc_ok(c, b, 3 + inf_len)) {
		vr_err("card T=1: bad EDC");
		return r_block(c, R_EDC, out);
	}
	if (!(b[1] & 0x80))
		return i_block(c, b[1], b + 3, inf_len, out);
	if ((b[1] & 0xC0) == PCB_R)
		return r_block_in(c, b[1], out);
	return s_block(c, b[1], b + 3, inf_len, out);
}
