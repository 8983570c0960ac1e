/* The built-in test applet (issue 3, item 4a): what the virtual card answers.
 * The command set and the PIN formats are documented in sim/README.md.
 *
 * The applet sees whole command APDUs (ISO 7816-4 section 5.1), parsed; the
 * transmission protocol around it (T=0 procedure bytes, 61xx/6Cxx) is the
 * card's job (vcard.c). */
#ifndef SIM_APPLET_H
#define SIM_APPLET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APPLET_PIN_TRIES 3
#define APPLET_PIN_BLOCK 8     /* PIN block: ASCII digits padded with 0xFF */
#define APPLET_MAX_DATA 65536u /* largest response data */

/* A command APDU, ISO 7816-4 5.1: Nc data bytes, Ne expected (0 when no Le). */
struct apdu {
	uint8_t cla, ins, p1, p2;
	const uint8_t *data;
	size_t nc;
	size_t ne;             /* 1..65536 when has_le */
	bool has_le;
	bool extended;         /* Lc/Le fields in the extended form */
};

/* 0 ok, -1 malformed (length fields that do not match the bytes). */
int apdu_parse(const uint8_t *buf, size_t len, struct apdu *out);

struct applet {
	char pin[APPLET_PIN_BLOCK + 1];
	unsigned tries_left;
	bool verified;           /* until the next reset */
};

/* What one command produced: data (in the caller's buffer), the status word,
 * and how long the card thinks (time units; 80 38 00 xx takes xx). */
struct applet_reply {
	size_t len;
	uint16_t sw;
	unsigned delay;
};

void applet_init(struct applet *a, const char *pin);
/* Card reset: the PIN is no longer verified (its try counter stays). */
void applet_reset(struct applet *a);
/* Run one command; data goes to out (cap must be APPLET_MAX_DATA). */
void applet_process(struct applet *a, const struct apdu *c, uint8_t *out, size_t cap,
		    struct applet_reply *r);

#endif
