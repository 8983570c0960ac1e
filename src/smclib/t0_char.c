/* T=0 at character level: the procedure bytes of ISO/IEC 7816-3:2006 10.3.3,
 * run by the host for a reader that only moves bytes on the I/O line.
 *
 * After the 5-byte header the card answers a procedure byte:
 *   60         NULL: wait, another procedure byte follows;
 *   INS        ACK: all remaining data bytes go (incoming) or come (outgoing),
 *              then another procedure byte;
 *   INS ^ FF   one data byte goes or comes, then another procedure byte;
 *   6X (not 60), 9X   SW1: SW2 follows and the TPDU is over.
 * The direction follows from the APDU case (7816-3 12.2): cases 3 and 4 send
 * P3 data bytes; case 2 receives up to P3 bytes (00 = 256); case 1 neither.
 * Each step reads the data it expects and the byte after it in one go, so an
 * ACK costs one exchange with the reader. */
#include <string.h>

#include "smc_log.h"
#include "smclib_internal.h"

#define T0_HEADER_LEN 5
#define PROC_NULL 0x60

enum t0c_phase {
	T0C_HEADER,   /* the header goes next, then a procedure byte */
	T0C_PROC,     /* the step ends with a procedure byte */
	T0C_SW2,      /* the step reads SW2 */
	T0C_OVER,     /* done or failed: start again */
};

smc_status smc_t0_char_start(struct smc_t0_char *x, const uint8_t *apdu, size_t apdu_len,
			     uint8_t *reply, size_t reply_cap)
{
	smc_status st;

	memset(x, 0, sizeof(*x));
	x->phase = T0C_OVER;
	st = smc_t0_request(apdu, apdu_len, x->tpdu, sizeof(x->tpdu), &x->tpdu_len);
	if (st != SMC_OK)
		return st;
	x->reply = reply;
	x->reply_cap = reply ? reply_cap : 0;
	/* only a header-only TPDU of case 2 brings data back (case 1 is a 4-byte APDU) */
	if (x->tpdu_len == T0_HEADER_LEN && apdu_len > 4)
		x->left = x->tpdu[4] ? x->tpdu[4] : 256u;
	x->send_len = T0_HEADER_LEN;
	x->sent = T0_HEADER_LEN;
	x->phase = T0C_HEADER;
	log_comm("T=0 character level: header %02X %02X %02X %02X %02X, %zu bytes to send, up to %zu to receive",
		 x->tpdu[0], x->tpdu[1], x->tpdu[2], x->tpdu[3], x->tpdu[4],
		 x->tpdu_len - T0_HEADER_LEN, x->left);
	return SMC_OK;
}

smc_status smc_t0_char_next(struct smc_t0_char *x, const uint8_t **send, size_t *send_len,
			    size_t *read_len)
{
	if (x->phase == T0C_OVER) {
		log_critical("T=0 character level: no exchange in progress");
		return SMC_ERR_INVALID_STATE;
	}
	*send = x->send_len ? x->tpdu + x->send_off : NULL;
	*send_len = x->send_len;
	*read_len = x->data_len + 1;
	return SMC_OK;
}

/* The next step sends n tpdu bytes from x->sent and reads data bytes, then one
 * byte of kind phase. */
static void plan(struct smc_t0_char *x, size_t n, size_t data, enum t0c_phase phase)
{
	x->send_off = x->sent;
	x->send_len = n;
	x->sent += n;
	x->data_len = data;
	x->left -= data;
	x->phase = phase;
}

static smc_status fail(struct smc_t0_char *x)
{
	x->phase = T0C_OVER;
	return SMC_ERR_COMM;
}

/* A procedure byte that moves nothing (NULL, or an ACK with nothing left):
 * the card may take its time, but not forever. */
static smc_status idle_step(struct smc_t0_char *x, uint8_t pb)
{
	if (++x->idle > SMC_T0_CHAR_MAX_IDLE) {
		log_critical("T=0 character level: %u procedure bytes without data or status (last %02X), giving up",
			     x->idle, pb);
		return fail(x);
	}
	plan(x, 0, 0, T0C_PROC);
	return SMC_MORE_PROCESSING;
}

/* ACK (INS): all remaining data bytes, one way or the other. */
static smc_status ack_all(struct smc_t0_char *x, uint8_t pb)
{
	size_t out = x->tpdu_len - x->sent;

	if (out == 0 && x->left == 0)
		return idle_step(x, pb);
	plan(x, out, x->left, T0C_PROC);
	return SMC_MORE_PROCESSING;
}

/* INS ^ FF: one data byte, one way or the other. */
static smc_status ack_one(struct smc_t0_char *x, uint8_t pb)
{
	if (x->sent < x->tpdu_len) {
		plan(x, 1, 0, T0C_PROC);
		return SMC_MORE_PROCESSING;
	}
	if (x->left > 0) {
		plan(x, 0, 1, T0C_PROC);
		return SMC_MORE_PROCESSING;
	}
	log_critical("T=0 character level: procedure byte %02X asks for one more byte, but all %zu data bytes %s",
		     pb, x->tpdu_len > T0_HEADER_LEN ? x->tpdu_len - T0_HEADER_LEN : x->data_got,
		     x->tpdu_len > T0_HEADER_LEN ? "were sent" : "were received");
	return fail(x);
}

static smc_status procedure_byte(struct smc_t0_char *x, uint8_t pb)
{
	uint8_t ins = x->tpdu[1], one = (uint8_t)(ins ^ 0xFFu);

	if (pb == PROC_NULL)
		return idle_step(x, pb);
	if ((pb & 0xF0) == 0x60 || (pb & 0xF0) == 0x90) {
		x->sw1 = pb;
		plan(x, 0, 0, T0C_SW2);
		return SMC_MORE_PROCESSING;
	}
	if (pb == ins)
		return ack_all(x, pb);
	if (pb == one)
		return ack_one(x, pb);
	log_critical("T=0 character level: procedure byte %02X is none of 60, %02X (INS), %02X (~INS), 6X, 9X",
		     pb, ins, one);
	return fail(x);
}

/* Response data goes to reply as far as it fits; the rest is counted only. */
static void keep_data(struct smc_t0_char *x, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++, x->data_got++) {
		if (x->data_got < x->reply_cap)
			x->reply[x->data_got] = b[i];
	}
}

static smc_status finish(struct smc_t0_char *x, uint8_t sw2)
{
	x->phase = T0C_OVER;
	x->reply_len = x->data_got + 2;
	if (x->reply_len > x->reply_cap) {
		log_critical("T=0 character level: answer of %zu bytes (status %02X %02X) does not fit the %zu-byte buffer",
			     x->reply_len, x->sw1, sw2, x->reply_cap);
		return SMC_ERR_BUFFER_TOO_SMALL;
	}
	x->reply[x->data_got] = x->sw1;
	x->reply[x->data_got + 1] = sw2;
	log_comm("T=0 character level: %zu data bytes, status %02X %02X", x->data_got, x->sw1, sw2);
	return SMC_OK;
}

smc_status smc_t0_char_feed(struct smc_t0_char *x, const uint8_t *got, size_t got_len)
{
	size_t want = x->data_len + 1;

	if (x->phase == T0C_OVER) {
		log_critical("T=0 character level: %zu bytes fed with no exchange in progress", got_len);
		return SMC_ERR_INVALID_STATE;
	}
	if (got == NULL || got_len != want) {
		log_critical("T=0 character level: %zu bytes came back where %zu were asked for",
			     got ? got_len : 0, want);
		return fail(x);
	}
	keep_data(x, got, x->data_len);
	if (x->phase == T0C_SW2)
		return finish(x, got[x->data_len]);
	return procedure_byte(x, got[x->data_len]);
}
