/* The card's side of T=1 (ISO/IEC 7816-3:2006 section 11): one block in, one
 * block out, for a reader at TPDU level and for the character line
 * (vcard_char.c). The rules cited are those of 11.6.2.3 and 11.6.3.2, as the
 * scenarios of annex A play them:
 *  - I-blocks from the host, chained or not (rule 5: an R-block acknowledges
 *    each part), at most IFSC bytes each;
 *  - the response in I-blocks of at most IFSD bytes, chained when longer;
 *  - R-blocks from the host: N(R) equal to the N(S) of the card's last
 *    I-block asks for it again (rule 7.1, even if S-blocks went since); a
 *    different N(R) acknowledges it (rules 2.2 and 5), so a chained response
 *    goes on; otherwise the card repeats its own R-block (rule 7.2) or says
 *    with R(N(R)) which I-block it waits for;
 *  - S-block requests from the host: RESYNCH, IFS and ABORT;
 *  - S-block requests from the card: IFS (card-ifs-request) before its first
 *    I-block, WTX when the applet takes time (80 38 00 xx: multiplier xx);
 *  - NAD (11.3.2.1): the card expects card-nad and answers with the two
 *    addresses swapped.
 * An invalid block (malformed, bad EDC, another NAD, RFU bits in its PCB, a
 * protocol error) gets an R-block with error 1 (EDC) or 2 (other), rule 7.1;
 * the first block after the ATR, if invalid, gets R(0) with NAD 0 (rule 7.5). */
#include <string.h>

#include "vcard.h"
#include "vr_log.h"

#define PCB_I_NS 0x40      /* I-block: 0 N(S) M 00000 */
#define PCB_I_MORE 0x20
#define PCB_I_RFU 0x1F
#define PCB_R 0x80         /* R-block: 1 0 0 N(R) 0 0 e e */
#define PCB_R_NR 0x10
#define PCB_R_RFU 0x2C
#define PCB_S 0xC0         /* S-block: 1 1 R ttttt */
#define PCB_TYPE 0xC0
#define S_RESPONSE 0x20
#define S_TYPE 0x1F
#define S_RESYNCH 0x00
#define S_IFS 0x01
#define S_ABORT 0x02
#define S_WTX 0x03
#define R_OK 0
#define R_EDC 1
#define R_OTHER 2
#define R_ERROR_MASK 0x03
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
	uint8_t tmp[VCARD_T1_BLOCK_MAX];

	memcpy(tmp, blk, n);
	put_edc(c, tmp, n);
	return memcmp(tmp + n, blk + n, edc_len(c)) == 0;
}

void vcard_t1_spoil_edc(uint8_t *block, size_t len)
{
	if (len > 0)
		block[len - 1] ^= 0xFF;
}

/* Back to the values after the ATR (11.4.2, and RESYNCH: "reset of the
 * protocol parameters to their initial values"): the card then asks for its
 * IFSC again before its next I-block. */
static void restart(struct vcard *c)
{
	struct vcard_t1 *t = &c->t1;

	t->ns = 0;
	t->nr = 0;
	t->ifsd = IFS_DEFAULT;
	t->ifsc = c->cfg.ifsc;
	t->cmd_len = 0;
	t->rsp_len = t->rsp_off = 0;
	t->sending = false;
	t->wtx = 0;
	t->s_wait = 0;
	t->ifs_asked = false;
	t->answered = false;
	t->last_len = 0;
	t->last_i_len = 0;
	t->host_i_len = 0;
}

void vcard_t1_reset(struct vcard *c)
{
	restart(c);
	c->t1.synced = false;
}

/* ---- what the card sends -------------------------------------------------------- */

/* The NAD of the card's blocks: the host's with SAD and DAD swapped
 * (11.3.2.1); 0 before any valid block came (rule 7.5). */
static uint8_t card_nad(const struct vcard *c)
{
	uint8_t nad = c->t1.synced ? c->cfg.nad : 0;

	return (uint8_t)((nad & 0x07) << 4 | (nad >> 4 & 0x07));
}

/* Build a block and remember it as the card's last one. */
static size_t send_block(struct vcard *c, uint8_t pcb, const uint8_t *inf, size_t len, uint8_t *out)
{
	out[0] = card_nad(c);
	out[1] = pcb;
	out[2] = (uint8_t)len;
	if (len)
		memcpy(out + 3, inf, len);
	put_edc(c, out, 3 + len);
	c->t1.last_len = 3 + len + edc_len(c);
	memcpy(c->t1.last, out, c->t1.last_len);
	return c->t1.last_len;
}

/* A block the card sent before, sent again unchanged. */
static size_t resend(struct vcard *c, const uint8_t *blk, size_t len, uint8_t *out)
{
	memcpy(out, blk, len);
	if (blk != c->t1.last) {
		memcpy(c->t1.last, blk, len);
		c->t1.last_len = len;
	}
	return len;
}

static size_t r_block(struct vcard *c, uint8_t error, uint8_t *out)
{
	return send_block(c, (uint8_t)(PCB_R | (c->t1.nr ? PCB_R_NR : 0) | error), NULL, 0, out);
}

static size_t s_request(struct vcard *c, uint8_t type, uint8_t value, uint8_t *out)
{
	c->t1.s_wait = (uint8_t)(PCB_S | type);
	c->t1.s_value = value;
	return send_block(c, c->t1.s_wait, &value, 1, out);
}

/* The next part of the response, in an I-block of at most IFSD bytes. */
static size_t next_i_block(struct vcard *c, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	size_t left = t->rsp_len - t->rsp_off, n = left < t->ifsd ? left : t->ifsd;
	uint8_t pcb = (uint8_t)((t->ns ? PCB_I_NS : 0) | (left > n ? PCB_I_MORE : 0));
	size_t len = send_block(c, pcb, t->rsp + t->rsp_off, n, out);

	memcpy(t->last_i, out, len);
	t->last_i_len = len;
	t->rsp_off += n;
	t->ns ^= 1;
	t->sending = t->rsp_off < t->rsp_len;
	return len;
}

/* The command has run: first the card's own S(IFS request) if it still has
 * to ask (card-ifs-request), then S(WTX request) if it took time, then the
 * response. Each S(request) waits for its S(response) before the next step. */
static size_t respond(struct vcard *c, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;

	if (c->cfg.ifs_request != 0 && !t->ifs_asked)
		return s_request(c, S_IFS, c->cfg.ifs_request, out);
	if (t->wtx != 0)
		return s_request(c, S_WTX, t->wtx, out);
	return next_i_block(c, out);
}

static size_t run_command(struct vcard *c, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	unsigned delay;

	t->rsp_len = vcard_apdu(c, t->cmd, t->cmd_len, t->rsp, VCARD_RESPONSE_MAX, &delay);
	t->rsp_off = 0;
	t->cmd_len = 0;
	t->wtx = (uint8_t)(delay > 255 ? 255 : delay);
	return respond(c, out);
}

/* ---- what the host sent ----------------------------------------------------------- */

/* Is the block valid (11.6.3.2 a-c)? R_OK, or the error an R-block reports. */
static uint8_t check_block(const struct vcard *c, const uint8_t *b, size_t len)
{
	uint8_t pcb;

	if (len < 3 + edc_len(c) || len > VCARD_T1_BLOCK_MAX || b[2] > LEN_MAX ||
	    len != 3u + b[2] + edc_len(c)) {
		vr_err("card T=1: malformed block of %zu bytes (LEN %u)", len, len >= 3 ? b[2] : 0);
		return R_OTHER;
	}
	if (!edc_ok(c, b, 3u + b[2])) {
		vr_err("card T=1: bad EDC");
		return R_EDC;
	}
	/* 11.3.2.1: the card holds one logical connection, the NAD of its
	 * profile; a block for any other pair of addresses is invalid. */
	if (b[0] != c->cfg.nad) {
		vr_err("card T=1: block with NAD 0x%02X, the card expects 0x%02X", b[0], c->cfg.nad);
		return R_OTHER;
	}
	pcb = b[1];
	if (((pcb & 0x80) == 0 && (pcb & PCB_I_RFU) != 0) ||
	    ((pcb & PCB_TYPE) == PCB_R &&
	     ((pcb & PCB_R_RFU) != 0 || (pcb & R_ERROR_MASK) == 3 || b[2] != 0))) {
		vr_err("card T=1: invalid PCB 0x%02X (LEN %u)", pcb, b[2]);
		return R_OTHER;
	}
	return R_OK;
}

/* The host's I-block with the N(S) the card expects. */
static size_t i_block_new(struct vcard *c, uint8_t pcb, const uint8_t *inf, size_t len,
			  uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;

	if (len > t->ifsc || len > VCARD_APDU_MAX - t->cmd_len) {
		vr_err("card T=1: I-block of %zu bytes (IFSC %u, %zu already chained)", len, t->ifsc,
		       t->cmd_len);
		return r_block(c, R_OTHER, out);
	}
	t->host_i[0] = pcb;
	t->host_i[1] = (uint8_t)len;
	memcpy(t->host_i + 2, inf, len);
	t->host_i_len = 2 + len;
	t->sending = false; /* a new command ends whatever response was under way */
	t->nr ^= 1;
	memcpy(t->cmd + t->cmd_len, inf, len);
	t->cmd_len += len;
	t->answered = true;
	if (pcb & PCB_I_MORE)
		return r_block(c, R_OK, out); /* rule 5: next part, please */
	return run_command(c, out);
}

/* N(S) modulo 2 (11.6.2.1) leaves one other value: the N(S) of the host's
 * last accepted I-block. The same I-block again, right after the card
 * answered it, comes from a host that lost that answer and repeats itself
 * rather than asking with an R-block: the card sends its answer again, so
 * that no command runs twice. Anything else is a protocol error: the block is
 * invalid and R(N(R)) tells the host which I-block the card waits for. */
static size_t i_block(struct vcard *c, const uint8_t *b, bool just_answered, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	uint8_t ns = (b[1] & PCB_I_NS) ? 1 : 0;

	if (ns == t->nr)
		return i_block_new(c, b[1], b + 3, b[2], out);
	if (just_answered && t->host_i_len == 2u + b[2] && memcmp(t->host_i, b + 1, t->host_i_len) == 0) {
		vr_info("card T=1: the host repeated its I-block N(S) %u: answer sent again", ns);
		t->answered = true;
		return resend(c, t->last, t->last_len, out);
	}
	vr_err("card T=1: I-block N(S) %u, expected %u", ns, t->nr);
	return r_block(c, R_OTHER, out);
}

static uint8_t last_i_ns(const struct vcard_t1 *t)
{
	return (t->last_i[1] & PCB_I_NS) ? 1 : 0;
}

static size_t r_block_in(struct vcard *c, uint8_t pcb, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	uint8_t nr = (pcb & PCB_R_NR) ? 1 : 0;

	/* rule 7.1 (host side): N(R) names the card's last I-block: again */
	if (t->last_i_len > 0 && nr == last_i_ns(t))
		return resend(c, t->last_i, t->last_i_len, out);
	/* rules 2.2 and 5: any other N(R) acknowledges it, whatever the error
	 * bits; during a chain that asks for the next part */
	if (t->sending)
		return next_i_block(c, out);
	/* rule 7.2: the card's own R-block (a chaining acknowledgement, or its
	 * answer to an invalid block) was not received: the same again */
	if (t->last_len > 0 && (t->last[1] & PCB_TYPE) == PCB_R)
		return resend(c, t->last, t->last_len, out);
	/* e.g. the host's I-block never arrived and it asks for an I-block
	 * the card has not sent: the card says which I-block it waits for */
	vr_err("card T=1: R-block N(R) %u fits nothing the card sent", nr);
	return r_block(c, R_OTHER, out);
}

static size_t resynch(struct vcard *c, uint8_t *out)
{
	restart(c);
	vr_info("card T=1: RESYNCH");
	return send_block(c, PCB_S | S_RESPONSE | S_RESYNCH, NULL, 0, out);
}

/* An S(request) from the host (rules 3, 6.4 and 9). */
static size_t s_request_in(struct vcard *c, uint8_t type, const uint8_t *inf, size_t len,
			   uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;

	switch (type) {
	case S_RESYNCH:
		if (len != 0)
			break;
		return resynch(c, out);
	case S_IFS:
		if (len != 1 || inf[0] == 0 || inf[0] == 0xFF)
			break;
		t->ifsd = inf[0];
		return send_block(c, PCB_S | S_RESPONSE | S_IFS, inf, 1, out);
	case S_ABORT:
		if (len != 0)
			break;
		/* rule 9: the chain is over, none of its parts is sent again */
		t->cmd_len = 0;
		t->sending = false;
		t->last_i_len = 0;
		return send_block(c, PCB_S | S_RESPONSE | S_ABORT, NULL, 0, out);
	default: /* WTX and VPP error are the card's to ask */
		break;
	}
	vr_err("card T=1: S-block request type 0x%02X with %zu INF bytes refused", type, len);
	return r_block(c, R_OTHER, out);
}

/* The card sent an S(request) and waits for its S(response) (rules 3, 4).
 * The right response (same INF) lets the card go on; the response with
 * another INF is invalid (R-block, error 2) and the card still waits; any
 * other valid block gets the S(request) again (rule 7.3). The host's RESYNCH
 * is still honoured: it is the way out when nothing else works (rule 6.4). */
static size_t awaited(struct vcard *c, uint8_t pcb, const uint8_t *inf, size_t len, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;

	if (pcb == (uint8_t)(t->s_wait | S_RESPONSE)) {
		if (len != 1 || inf[0] != t->s_value) {
			vr_err("card T=1: S-block response PCB 0x%02X with %zu bytes (first 0x%02X), "
			       "expected 0x%02X", pcb, len, len ? inf[0] : 0, t->s_value);
			return r_block(c, R_OTHER, out);
		}
		t->s_wait = 0;
		if ((pcb & S_TYPE) == S_IFS) {
			t->ifsc = inf[0];
			t->ifs_asked = true;
			vr_info("card T=1: IFSC %u from now on", t->ifsc);
		} else {
			t->wtx = 0;
		}
		return respond(c, out);
	}
	vr_err("card T=1: PCB 0x%02X while waiting for S-block response 0x%02X: request again", pcb,
	       t->s_wait | S_RESPONSE);
	return send_block(c, t->s_wait, &t->s_value, 1, out);
}

size_t vcard_t1_block(struct vcard *c, const uint8_t *b, size_t len, uint8_t *out)
{
	struct vcard_t1 *t = &c->t1;
	bool just_answered = t->answered;
	uint8_t error = check_block(c, b, len);

	t->answered = false;
	if (error != R_OK)
		return r_block(c, error, out);
	t->synced = true;
	if (b[1] == (PCB_S | S_RESYNCH))
		return s_request_in(c, S_RESYNCH, b + 3, b[2], out);
	if (t->s_wait != 0)
		return awaited(c, b[1], b + 3, b[2], out);
	if (!(b[1] & 0x80))
		return i_block(c, b, just_answered, out);
	if ((b[1] & PCB_TYPE) == PCB_R)
		return r_block_in(c, b[1], out);
	if (b[1] & S_RESPONSE) {
		vr_err("card T=1: S-block response PCB 0x%02X the card did not ask for", b[1]);
		return r_block(c, R_OTHER, out);
	}
	return s_request_in(c, b[1] & S_TYPE, b + 3, b[2], out);
}
