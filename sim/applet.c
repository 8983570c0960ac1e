/* The built-in test applet: the command set of issue 3 item 4(a), the APDU
 * parser the card uses in front of it, and a PIN object. Status words are those
 * of ISO 7816-4 section 5.6. */
#include <string.h>

#include "applet.h"
#include "vr_log.h"

#define SW_OK 0x9000
#define SW_WRONG_LENGTH 0x6700
#define SW_BLOCKED 0x6983
#define SW_CONDITIONS 0x6985
#define SW_WRONG_DATA 0x6A80
#define SW_NOT_FOUND 0x6A82
#define SW_WRONG_P1P2 0x6A86
#define SW_REF_NOT_FOUND 0x6A88
#define SW_WRONG_LE 0x6C00
#define SW_INS_UNKNOWN 0x6D00
#define SW_CLA_UNKNOWN 0x6E00
#define SW_TRIES 0x63C0

#define CLA_ISO 0x00
#define CLA_PROPRIETARY 0x80
#define PIN_REFERENCE 0x80     /* P2 of VERIFY / CHANGE REFERENCE DATA */
#define PIN_PAD 0xFF

static const uint8_t test_aid[] = { 0xA0, 0x00, 0x00, 0x00, 0x18, 0xFF };

/* ---- ISO 7816-4 5.1: the four cases, short and extended ------------------- */

static int parse_extended(const uint8_t *b, size_t len, struct apdu *c)
{
	size_t lc;

	c->extended = true;
	if (len == 7) { /* case 2E: 00 Le1 Le2, 0000 means 65536 */
		c->has_le = true;
		c->ne = (size_t)b[5] << 8 | b[6];
		if (c->ne == 0)
			c->ne = 65536;
		return 0;
	}
	lc = (size_t)b[5] << 8 | b[6];
	if (lc == 0 || len < 7 + lc)
		return -1;
	c->data = b + 7;
	c->nc = lc;
	if (len == 7 + lc)
		return 0; /* case 3E */
	if (len != 9 + lc)
		return -1;
	c->has_le = true; /* case 4E */
	c->ne = (size_t)b[7 + lc] << 8 | b[8 + lc];
	if (c->ne == 0)
		c->ne = 65536;
	return 0;
}

int apdu_parse(const uint8_t *b, size_t len, struct apdu *c)
{
	memset(c, 0, sizeof(*c));
	if (len < 4)
		return -1;
	c->cla = b[0];
	c->ins = b[1];
	c->p1 = b[2];
	c->p2 = b[3];
	if (len == 4)
		return 0; /* case 1 */
	if (len == 5) { /* case 2S: Le 00 means 256 */
		c->has_le = true;
		c->ne = b[4] ? b[4] : 256;
		return 0;
	}
	if (b[4] == 0)
		return len >= 7 ? parse_extended(b, len, c) : -1;
	c->nc = b[4];
	c->data = b + 5;
	if (len == 5 + c->nc)
		return 0; /* case 3S */
	if (len != 6 + c->nc)
		return -1;
	c->has_le = true; /* case 4S */
	c->ne = b[5 + c->nc] ? b[5 + c->nc] : 256;
	return 0;
}

/* ---- the applet ------------------------------------------------------------ */

void applet_init(struct applet *a, const char *pin)
{
	memset(a, 0, sizeof(*a));
	strncpy(a->pin, pin, APPLET_PIN_BLOCK);
	a->tries_left = APPLET_PIN_TRIES;
}

void applet_reset(struct applet *a)
{
	a->verified = false;
}

static void fill_counting(uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)i;
}

/* P1P2 as a length of 1 to 256 (80 34, 80 36); 0 if out of range. */
static size_t p1p2_length(const struct apdu *c)
{
	size_t n = (size_t)c->p1 << 8 | c->p2;

	return n >= 1 && n <= 256 ? n : 0;
}

static void cmd_select(const struct apdu *c, struct applet_reply *r)
{
	if (c->p1 != 0x04) {
		r->sw = SW_WRONG_P1P2;
		return;
	}
	if (c->nc != sizeof(test_aid) || memcmp(c->data, test_aid, sizeof(test_aid)) != 0) {
		r->sw = SW_NOT_FOUND;
		return;
	}
	r->sw = SW_OK;
}

/* 80 32 00 00 Lc 00 01 02 ...: every byte must be its index (mod 256). */
static void cmd_check_data(const struct apdu *c, struct applet_reply *r)
{
	if (c->nc == 0) {
		r->sw = SW_WRONG_LENGTH;
		return;
	}
	for (size_t i = 0; i < c->nc; i++) {
		if (c->data[i] != (uint8_t)i) {
			vr_err("applet 80 32: byte %zu is 0x%02X, expected 0x%02X", i, c->data[i], (uint8_t)i);
			r->sw = SW_WRONG_DATA;
			return;
		}
	}
	r->sw = SW_OK;
}

/* 80 34 P1 P2 Le: P1P2 bytes 00 01 ...; an Le too short answers 6C with the
 * right length (ISO 7816-4 5.6: "wrong Le field, SW2 = exact length"). */
static void cmd_send_counting(const struct apdu *c, uint8_t *out, struct applet_reply *r)
{
	size_t n = p1p2_length(c);

	if (n == 0) {
		r->sw = SW_WRONG_P1P2;
		return;
	}
	if (!c->has_le) {
		r->sw = SW_WRONG_LENGTH;
		return;
	}
	if (c->ne < n) {
		r->sw = (uint16_t)(SW_WRONG_LE | (n & 0xFF));
		return;
	}
	fill_counting(out, n);
	r->len = n;
	r->sw = SW_OK;
}

/* 80 36 P1 P2 Lc data: a case 3 command that still produces P1P2 bytes, so
 * that over T=0 the card must answer 61xx and wait for GET RESPONSE. */
static void cmd_data_in_out(const struct apdu *c, uint8_t *out, struct applet_reply *r)
{
	size_t n = p1p2_length(c);

	if (n == 0) {
		r->sw = SW_WRONG_P1P2;
		return;
	}
	if (c->nc == 0) {
		r->sw = SW_WRONG_LENGTH;
		return;
	}
	fill_counting(out, n);
	r->len = n;
	r->sw = SW_OK;
}

/* 80 00 04 V + Le: Ne bytes of value V (extended Le up to 65536). */
static void cmd_fill(const struct apdu *c, uint8_t *out, size_t cap, struct applet_reply *r)
{
	if (c->p1 != 0x04) {
		r->sw = SW_WRONG_P1P2;
		return;
	}
	if (!c->has_le || c->ne > cap) {
		r->sw = SW_WRONG_LENGTH;
		return;
	}
	memset(out, c->p2, c->ne);
	r->len = c->ne;
	r->sw = SW_OK;
}

/* 80 12 01 80 + Lc data: takes any amount of data. */
static void cmd_accept(const struct apdu *c, struct applet_reply *r)
{
	if (c->p1 != 0x01 || c->p2 != 0x80) {
		r->sw = SW_WRONG_P1P2;
		return;
	}
	r->sw = c->nc > 0 ? SW_OK : SW_WRONG_LENGTH;
}

static void proprietary(const struct apdu *c, uint8_t *out, size_t cap, struct applet_reply *r)
{
	switch (c->ins) {
	case 0x30:
		r->sw = c->nc == 0 ? SW_OK : SW_WRONG_LENGTH;
		break;
	case 0x32:
		cmd_check_data(c, r);
		break;
	case 0x34:
		cmd_send_counting(c, out, r);
		break;
	case 0x36:
		cmd_data_in_out(c, out, r);
		break;
	case 0x38:
		r->delay = c->p2;
		r->sw = SW_OK;
		break;
	case 0x00:
		cmd_fill(c, out, cap, r);
		break;
	case 0x12:
		cmd_accept(c, r);
		break;
	default:
		r->sw = SW_INS_UNKNOWN;
		break;
	}
}

/* ---- the PIN object (ISO 7816-4 11.5.6 and 11.5.7) -------------------------- */

/* A PIN block: 1 to 8 ASCII digits, then 0xFF up to the end (any length up
 * to 8). 0 and the digits in out if well formed. */
static int pin_from_block(const uint8_t *b, size_t len, char out[APPLET_PIN_BLOCK + 1])
{
	size_t n = 0;

	if (len < 1 || len > APPLET_PIN_BLOCK)
		return -1;
	while (n < len && b[n] != PIN_PAD) {
		if (b[n] < '0' || b[n] > '9')
			return -1;
		out[n] = (char)b[n];
		n++;
	}
	for (size_t i = n; i < len; i++) {
		if (b[i] != PIN_PAD)
			return -1;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

/* Compare a presented PIN block; counts down the tries on a mismatch. */
static uint16_t pin_check(struct applet *a, const uint8_t *b, size_t len)
{
	char given[APPLET_PIN_BLOCK + 1];

	if (a->tries_left == 0)
		return SW_BLOCKED;
	if (pin_from_block(b, len, given) != 0)
		return SW_WRONG_DATA;
	if (strcmp(given, a->pin) != 0) {
		a->tries_left--;
		a->verified = false;
		vr_info("applet: wrong PIN, %u tries left", a->tries_left);
		return a->tries_left ? (uint16_t)(SW_TRIES | a->tries_left) : SW_BLOCKED;
	}
	a->tries_left = APPLET_PIN_TRIES;
	return SW_OK;
}

static void cmd_verify(struct applet *a, const struct apdu *c, struct applet_reply *r)
{
	if (c->p1 != 0x00 || c->p2 != PIN_REFERENCE) {
		r->sw = c->p1 != 0x00 ? SW_WRONG_P1P2 : SW_REF_NOT_FOUND;
		return;
	}
	if (c->nc == 0) { /* status query */
		if (a->verified)
			r->sw = SW_OK;
		else
			r->sw = a->tries_left ? (uint16_t)(SW_TRIES | a->tries_left) : SW_BLOCKED;
		return;
	}
	r->sw = pin_check(a, c->data, c->nc);
	a->verified = r->sw == SW_OK;
}

/* Data: old PIN block (8 bytes) then new PIN block (8 bytes). */
static void cmd_change(struct applet *a, const struct apdu *c, struct applet_reply *r)
{
	char fresh[APPLET_PIN_BLOCK + 1];

	if (c->p1 != 0x00 || c->p2 != PIN_REFERENCE) {
		r->sw = c->p1 != 0x00 ? SW_WRONG_P1P2 : SW_REF_NOT_FOUND;
		return;
	}
	if (c->nc != 2 * APPLET_PIN_BLOCK) {
		r->sw = SW_WRONG_LENGTH;
		return;
	}
	if (pin_from_block(c->data + APPLET_PIN_BLOCK, APPLET_PIN_BLOCK, fresh) != 0) {
		r->sw = SW_WRONG_DATA;
		return;
	}
	r->sw = pin_check(a, c->data, APPLET_PIN_BLOCK);
	if (r->sw != SW_OK)
		return;
	memcpy(a->pin, fresh, sizeof(fresh));
	a->verified = true;
	vr_info("applet: PIN changed");
}

static void iso(struct applet *a, const struct apdu *c, struct applet_reply *r)
{
	switch (c->ins) {
	case 0xA4:
		cmd_select(c, r);
		break;
	case 0x20:
		cmd_verify(a, c, r);
		break;
	case 0x24:
		cmd_change(a, c, r);
		break;
	case 0xC0: /* GET RESPONSE with nothing waiting (T=0 handles the rest) */
		r->sw = SW_CONDITIONS;
		break;
	default:
		r->sw = SW_INS_UNKNOWN;
		break;
	}
}

void applet_process(struct applet *a, const struct apdu *c, uint8_t *out, size_t cap,
		    struct applet_reply *r)
{
	memset(r, 0, sizeof(*r));
	if (c->cla == CLA_PROPRIETARY)
		proprietary(c, out, cap, r);
	else if (c->cla == CLA_ISO)
		iso(a, c, r);
	else
		r->sw = SW_CLA_UNKNOWN;
	if (r->sw != SW_OK)
		vr_info("applet: %02X %02X %02X %02X -> %04X", c->cla, c->ins, c->p1, c->p2, r->sw);
}
