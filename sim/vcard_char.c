/* The card at character level: a stream of bytes each way, as on the I/O line
 * (ISO 7816-3 sections 10.3 and 11). The reader feeds what the host sent and
 * takes as many bytes as the host asked for.
 *
 * T=0: after a 5-byte header the card sends its procedure byte: for a command
 * that brings data (by its INS, as a real card knows its commands) the INS
 * (ACK, "send all the data"), then after the P3 data bytes its SW1 SW2; for
 * the others the INS followed by the response data and SW1 SW2, or SW1 SW2
 * alone (61xx, 6Cxx, errors). A card that takes time sends NULL bytes (60)
 * first. T=1: whole blocks, gathered byte by byte, answered by vcard_t1.c;
 * the reader's T=1 faults (a bad EDC, a lost block) strike here as on the
 * line. */
#include <string.h>

#include "vcard.h"
#include "vr_log.h"

#define PROC_NULL 0x60

/* INS of the test applet's commands that carry data from the host. */
static bool ins_brings_data(uint8_t ins)
{
	switch (ins) {
	case 0xA4: /* SELECT */
	case 0x20: /* VERIFY */
	case 0x24: /* CHANGE REFERENCE DATA */
	case 0x32:
	case 0x36:
	case 0x12:
		return true;
	default:
		return false;
	}
}

void vcard_char_reset(struct vcard *c)
{
	c->ch.in_len = 0;
	c->ch.out_len = 0;
	c->ch.want = 0;
}

static void emit(struct vcard *c, const uint8_t *b, size_t len)
{
	if (len > sizeof(c->ch.out) - c->ch.out_len) {
		vr_err("card (character level): %zu bytes unread by the host, %zu more dropped",
		       c->ch.out_len, len);
		return;
	}
	memcpy(c->ch.out + c->ch.out_len, b, len);
	c->ch.out_len += len;
}

static void emit_nulls(struct vcard *c, unsigned n)
{
	static const uint8_t null = PROC_NULL;

	for (unsigned i = 0; i < n && i < 255; i++)
		emit(c, &null, 1);
}

static void drop_input(struct vcard *c, size_t n)
{
	memmove(c->ch.in, c->ch.in + n, c->ch.in_len - n);
	c->ch.in_len -= n;
}

/* The TPDU is whole: run it and send what the card answers. */
static void t0_run(struct vcard *c, size_t len, bool acked, uint8_t *scratch)
{
	uint8_t ins = c->ch.in[1];
	unsigned delay;
	size_t n = vcard_t0_tpdu(c, c->ch.in, len, scratch, VCARD_RESPONSE_MAX, &delay);

	drop_input(c, len);
	emit_nulls(c, delay);
	if (n > 2 && !acked)
		emit(c, &ins, 1); /* ACK: the data follows */
	emit(c, scratch, n);
}

static void t0_feed(struct vcard *c, uint8_t *scratch)
{
	for (;;) {
		uint8_t p3;

		if (c->ch.in_len < 5)
			return;
		p3 = c->ch.in[4];
		if (ins_brings_data(c->ch.in[1]) && p3 > 0) {
			if (c->ch.want == 0) { /* header just complete: ask for the data */
				c->ch.want = p3;
				emit(c, &c->ch.in[1], 1);
			}
			if (c->ch.in_len < 5u + p3)
				return;
			c->ch.want = 0;
			t0_run(c, 5u + p3, true, scratch);
		} else {
			t0_run(c, 5, false, scratch);
		}
	}
}

/* T=1 is half duplex (11.1): once the host sends a block it no longer reads
 * what the card sent before, so bytes left unread then are dropped. A block
 * lost on the line (fault t1-lost) leaves nothing at all: the host's read
 * times out (mute). */
static void t1_answer(struct vcard *c, uint8_t *blk, size_t n, const struct vcard_t1_faults *faults)
{
	enum vcard_t1_fate fate = faults ? faults->fate(faults->ctx) : VCARD_T1_DELIVERED;

	if (c->ch.out_len > 0) {
		vr_err("card (character level): %zu bytes the host did not read before its block, dropped",
		       c->ch.out_len);
		c->ch.out_len = 0;
	}
	if (fate == VCARD_T1_LOST) {
		vr_info("card (character level): fault: the card's T=1 block of %zu bytes is lost", n);
		return;
	}
	if (fate == VCARD_T1_BAD_EDC) {
		vr_info("card (character level): fault: the card's T=1 block goes out with a bad EDC");
		vcard_t1_spoil_edc(blk, n);
	}
	emit(c, blk, n);
}

static void t1_feed(struct vcard *c, uint8_t *scratch, const struct vcard_t1_faults *faults)
{
	size_t edc = c->cfg.crc ? 2 : 1;

	while (c->ch.in_len >= 3 && c->ch.in_len >= 3u + c->ch.in[2] + edc) {
		size_t len = 3u + c->ch.in[2] + edc;
		size_t n = vcard_t1_block(c, c->ch.in, len, scratch);

		drop_input(c, len);
		t1_answer(c, scratch, n, faults);
	}
}

void vcard_char_in(struct vcard *c, uint8_t protocol, const uint8_t *b, size_t len,
		   uint8_t *scratch, const struct vcard_t1_faults *faults)
{
	while (len > 0) {
		size_t room = sizeof(c->ch.in) - c->ch.in_len, n = len < room ? len : room;

		if (n == 0) {
			vr_err("card (character level): %zu bytes it cannot take, line reset", len);
			c->ch.in_len = 0;
			c->ch.want = 0;
			return;
		}
		memcpy(c->ch.in + c->ch.in_len, b, n);
		c->ch.in_len += n;
		b += n;
		len -= n;
		if (protocol == 1)
			t1_feed(c, scratch, faults);
		else
			t0_feed(c, scratch);
	}
}

void vcard_char_emit(struct vcard *c, const uint8_t *b, size_t len)
{
	emit(c, b, len);
}

size_t vcard_char_out(struct vcard *c, uint8_t *buf, size_t want)
{
	if (want > c->ch.out_len)
		return 0;
	memcpy(buf, c->ch.out, want);
	memmove(c->ch.out, c->ch.out + want, c->ch.out_len - want);
	c->ch.out_len -= want;
	return want;
}

size_t vcard_char_waiting(const struct vcard *c)
{
	return c->ch.out_len;
}
