/* T=1 block framing: ISO/IEC 7816-3:2006 section 11.3 (block structure) and
 * 11.4.4 (EDC). Building is trusted (our own blocks); parsing is not: every
 * field of a card's block is checked before the engine sees it. */
#include <stdio.h>
#include <string.h>

#include "smc_log.h"
#include "t1_block.h"

#define OFF_NAD 0
#define OFF_PCB 1
#define OFF_LEN 2
#define OFF_INF SMC_T1_PROLOGUE_LEN

#define CRC_INIT 0xFFFFu
#define CRC_POLY_REFLECTED 0x8408u

uint8_t smc_t1_lrc(const uint8_t *buf, size_t len)
{
	uint8_t x = 0;

	for (size_t i = 0; i < len; i++)
		x ^= buf[i];
	return x;
}

uint16_t smc_t1_crc(const uint8_t *buf, size_t len)
{
	uint16_t crc = CRC_INIT;

	for (size_t i = 0; i < len; i++) {
		crc ^= buf[i];
		for (int bit = 0; bit < 8; bit++) {
			if (crc & 1u)
				crc = (uint16_t)((crc >> 1) ^ CRC_POLY_REFLECTED);
			else
				crc = (uint16_t)(crc >> 1);
		}
	}
	return crc;
}

size_t smc_t1_edc_len(bool crc)
{
	return crc ? 2 : 1;
}

/* The EDC of buf[0..n) into edc[0..edc_len). */
static void edc_compute(const uint8_t *buf, size_t n, bool crc, uint8_t edc[2])
{
	if (crc) {
		uint16_t v = smc_t1_crc(buf, n);

		edc[0] = (uint8_t)(v >> 8);
		edc[1] = (uint8_t)(v & 0xFF);
	} else {
		edc[0] = smc_t1_lrc(buf, n);
		edc[1] = 0;
	}
}

uint8_t smc_t1_pcb_i(uint8_t ns, bool more)
{
	return (uint8_t)((ns ? T1_PCB_I_NS : 0) | (more ? T1_PCB_I_MORE : 0));
}

uint8_t smc_t1_pcb_r(uint8_t nr, enum t1_r_error error)
{
	return (uint8_t)(T1_PCB_R | (nr ? T1_PCB_R_NR : 0) | ((unsigned)error & 0x03));
}

uint8_t smc_t1_pcb_s(enum t1_s_type type, bool response)
{
	return (uint8_t)(T1_PCB_S | (response ? T1_PCB_S_RESPONSE : 0) | ((unsigned)type & 0x0F));
}

size_t smc_t1_block_build(uint8_t *out, uint8_t nad, uint8_t pcb, const uint8_t *inf, size_t len,
			  bool crc)
{
	uint8_t edc[2];
	size_t n;

	if (len > SMC_T1_INF_MAX) /* callers never ask for it; keep the buffer safe */
		len = SMC_T1_INF_MAX;
	out[OFF_NAD] = nad;
	out[OFF_PCB] = pcb;
	out[OFF_LEN] = (uint8_t)len;
	if (len)
		memcpy(out + OFF_INF, inf, len);
	n = OFF_INF + len;
	edc_compute(out, n, crc, edc);
	memcpy(out + n, edc, smc_t1_edc_len(crc));
	return n + smc_t1_edc_len(crc);
}

/* The fields the PCB encodes, without judging them. */
static void decode_pcb(uint8_t pcb, struct t1_block *b)
{
	b->pcb = pcb;
	if ((pcb & 0x80) == 0) {
		b->kind = T1_I;
		b->seq = (pcb & T1_PCB_I_NS) ? 1 : 0;
		b->more = (pcb & T1_PCB_I_MORE) != 0;
	} else if ((pcb & T1_PCB_S) == T1_PCB_R) {
		b->kind = T1_R;
		b->seq = (pcb & T1_PCB_R_NR) ? 1 : 0;
		b->error = (enum t1_r_error)(pcb & 0x03);
	} else {
		b->kind = T1_S;
		b->response = (pcb & T1_PCB_S_RESPONSE) != 0;
		b->s_type = (enum t1_s_type)(pcb & 0x0F);
	}
}

/* 11.3.2.2: the bits that must be 0 in each kind of PCB, and the codes that
 * are defined. Also the INF each kind carries (11.3.2.3, Table 17). */
static enum t1_r_error check_pcb(const struct t1_block *b)
{
	switch (b->kind) {
	case T1_I:
		if (b->pcb & 0x1F) {
			log_info("T=1 <- I-block PCB 0x%02X has reserved bits set", b->pcb);
			return T1_R_OTHER;
		}
		return T1_R_OK;
	case T1_R:
		if ((b->pcb & 0x2C) || (b->pcb & 0x03) == 0x03) {
			log_info("T=1 <- R-block PCB 0x%02X is undefined", b->pcb);
			return T1_R_OTHER;
		}
		if (b->len != 0) {
			log_info("T=1 <- R-block with LEN %zu, must be 0", b->len);
			return T1_R_OTHER;
		}
		return T1_R_OK;
	case T1_S:
		break;
	}
	if ((b->pcb & 0x10) || b->s_type > T1_S_WTX) {
		log_info("T=1 <- S-block PCB 0x%02X is undefined", b->pcb);
		return T1_R_OTHER;
	}
	return T1_R_OK;
}

/* S(IFS) carries one byte 01..FE, S(WTX) one byte not 00, the others none. */
static enum t1_r_error check_s_inf(struct t1_block *b)
{
	size_t want = (b->s_type == T1_S_IFS || b->s_type == T1_S_WTX) ? 1 : 0;

	if (b->len != want) {
		log_info("T=1 <- S-block PCB 0x%02X with LEN %zu, must be %zu", b->pcb, b->len, want);
		return T1_R_OTHER;
	}
	if (want == 0)
		return T1_R_OK;
	b->value = b->inf[0];
	if (b->s_type == T1_S_IFS && (b->value == 0 || b->value == T1_LEN_INVALID)) {
		log_info("T=1 <- S(IFS) with IFS 0x%02X, must be 01..FE", b->value);
		return T1_R_OTHER;
	}
	if (b->s_type == T1_S_WTX && b->value == 0) {
		log_info("T=1 <- S(WTX) with multiplier 0");
		return T1_R_OTHER;
	}
	return T1_R_OK;
}

/* 11.3.2.3 and 11.4.4: the length the prologue announces, then the EDC. */
static enum t1_r_error check_frame(const uint8_t *buf, size_t n, bool crc, uint8_t ifsd)
{
	size_t edc_len = smc_t1_edc_len(crc);
	uint8_t len, edc[2];

	if (buf == NULL || n < SMC_T1_PROLOGUE_LEN + edc_len) {
		log_info("T=1 <- block of %zu bytes is shorter than prologue and EDC (%zu)",
			 buf ? n : 0, SMC_T1_PROLOGUE_LEN + edc_len);
		return T1_R_OTHER;
	}
	len = buf[OFF_LEN];
	if (len == T1_LEN_INVALID) {
		log_info("T=1 <- block with LEN 0xFF (reserved)");
		return T1_R_OTHER;
	}
	if (n != SMC_T1_PROLOGUE_LEN + len + edc_len) {
		log_info("T=1 <- block of %zu bytes but LEN %u announces %zu", n, len,
			 SMC_T1_PROLOGUE_LEN + len + edc_len);
		return T1_R_OTHER;
	}
	edc_compute(buf, SMC_T1_PROLOGUE_LEN + len, crc, edc);
	if (memcmp(edc, buf + SMC_T1_PROLOGUE_LEN + len, edc_len) != 0) {
		if (crc)
			log_info("T=1 <- block with bad CRC %02X%02X, computed %02X%02X",
				 buf[n - 2], buf[n - 1], edc[0], edc[1]);
		else
			log_info("T=1 <- block with bad LRC %02X, computed %02X", buf[n - 1], edc[0]);
		return T1_R_EDC;
	}
	if (len > ifsd) {
		log_info("T=1 <- block with LEN %u, more than IFSD %u", len, ifsd);
		return T1_R_OTHER;
	}
	return T1_R_OK;
}

enum t1_r_error smc_t1_block_parse(const uint8_t *buf, size_t n, bool crc, uint8_t ifsd,
				   struct t1_block *out)
{
	enum t1_r_error e;

	memset(out, 0, sizeof(*out));
	e = check_frame(buf, n, crc, ifsd);
	if (e != T1_R_OK)
		return e;
	out->nad = buf[OFF_NAD];
	out->len = buf[OFF_LEN];
	out->inf = buf + OFF_INF;
	decode_pcb(buf[OFF_PCB], out);
	e = check_pcb(out);
	if (e != T1_R_OK || out->kind != T1_S)
		return e;
	return check_s_inf(out);
}

static const char *s_type_str(enum t1_s_type t)
{
	switch (t) {
	case T1_S_RESYNCH:
		return "RESYNCH";
	case T1_S_IFS:
		return "IFS";
	case T1_S_ABORT:
		return "ABORT";
	case T1_S_WTX:
		return "WTX";
	}
	return "undefined";
}

static const char *r_error_str(enum t1_r_error e)
{
	switch (e) {
	case T1_R_OK:
		return "";
	case T1_R_EDC:
		return " error EDC";
	case T1_R_OTHER:
		return " error other";
	}
	return " error undefined";
}

void smc_t1_block_str(const struct t1_block *b, char *out, size_t cap)
{
	switch (b->kind) {
	case T1_I:
		snprintf(out, cap, "I(%u%s) %zu bytes", b->seq, b->more ? ",M" : "", b->len);
		return;
	case T1_R:
		snprintf(out, cap, "R(%u)%s", b->seq, r_error_str(b->error));
		return;
	case T1_S:
		break;
	}
	if (b->len == 1)
		snprintf(out, cap, "S(%s %s) %u", s_type_str(b->s_type),
			 b->response ? "response" : "request", b->value);
	else
		snprintf(out, cap, "S(%s %s)", s_type_str(b->s_type),
			 b->response ? "response" : "request");
}

void smc_t1_block_str_raw(const uint8_t *buf, size_t n, char *out, size_t cap)
{
	struct t1_block b;

	memset(&b, 0, sizeof(b));
	if (n < SMC_T1_PROLOGUE_LEN) {
		snprintf(out, cap, "(%zu bytes, no prologue)", n);
		return;
	}
	decode_pcb(buf[OFF_PCB], &b);
	b.len = buf[OFF_LEN];
	if (b.kind == T1_S && b.len == 1 && n > OFF_INF)
		b.value = buf[OFF_INF];
	smc_t1_block_str(&b, out, cap);
}
