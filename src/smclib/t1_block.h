/* T=1 block framing, ISO/IEC 7816-3:2006 section 11.3: build I-, R- and
 * S-blocks with their EDC, and parse a received block into a validated struct.
 * The engine (t1.c) acts on the struct only. */
#ifndef SMC_T1_BLOCK_H
#define SMC_T1_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smclib.h"

/* 11.3.2.2, the PCB. I-block 0 N(S) M 00000; R-block 1 0 0 N(R) 0 0 e e;
 * S-block 1 1 R 0 t t t t (R: response). */
#define T1_PCB_I_NS 0x40
#define T1_PCB_I_MORE 0x20
#define T1_PCB_R 0x80
#define T1_PCB_R_NR 0x10
#define T1_PCB_S 0xC0
#define T1_PCB_S_RESPONSE 0x20

#define T1_LEN_INVALID 0xFF /* 11.3.2.3: LEN = FF is reserved */
#define T1_IFS_DEFAULT 32   /* 11.4.2: IFSC and IFSD before any S(IFS) */

enum t1_kind { T1_I, T1_R, T1_S };

/* R-block error bits ee (11.3.2.2). */
enum t1_r_error {
	T1_R_OK = 0,
	T1_R_EDC = 1,   /* EDC and/or parity error */
	T1_R_OTHER = 2, /* other errors */
};

/* S-block types tttt (11.3.2.2, Table 17). */
enum t1_s_type {
	T1_S_RESYNCH = 0,
	T1_S_IFS = 1,
	T1_S_ABORT = 2,
	T1_S_WTX = 3,
};

/* A received block that passed every check of smc_t1_block_parse(). */
struct t1_block {
	uint8_t nad;
	uint8_t pcb;
	enum t1_kind kind;
	uint8_t seq;           /* I: N(S); R: N(R) (0 or 1) */
	bool more;             /* I: M bit */
	enum t1_r_error error; /* R: ee */
	enum t1_s_type s_type; /* S: tttt */
	bool response;         /* S: R bit */
	uint8_t value;         /* S(IFS): the IFS, S(WTX): the multiplier */
	const uint8_t *inf;    /* into the buffer that was parsed */
	size_t len;            /* LEN */
};

/* EDC of 11.4.4: LRC is the XOR of all bytes; CRC is ISO/IEC 13239's
 * x^16 + x^12 + x^5 + 1 taken bit-reversed (0x8408), initial value FFFF,
 * no final XOR, sent high byte first. */
uint8_t smc_t1_lrc(const uint8_t *buf, size_t len);
uint16_t smc_t1_crc(const uint8_t *buf, size_t len);
size_t smc_t1_edc_len(bool crc);

uint8_t smc_t1_pcb_i(uint8_t ns, bool more);
uint8_t smc_t1_pcb_r(uint8_t nr, enum t1_r_error error);
uint8_t smc_t1_pcb_s(enum t1_s_type type, bool response);

/* NAD PCB LEN INF EDC into out (SMC_T1_BLOCK_MAX bytes); len <= SMC_T1_INF_MAX.
 * Returns the block's length. */
size_t smc_t1_block_build(uint8_t *out, uint8_t nad, uint8_t pcb, const uint8_t *inf, size_t len,
			  bool crc);

/* Check a received block (EDC included) and decode it into *out. Returns
 * T1_R_OK, or the R-block error code that answers it (T1_R_EDC for a wrong
 * EDC, T1_R_OTHER for a wrong length or an undefined PCB or S-block), after a
 * log line saying what was wrong. ifsd: the largest INF accepted. */
enum t1_r_error smc_t1_block_parse(const uint8_t *buf, size_t n, bool crc, uint8_t ifsd,
				   struct t1_block *out);

/* The block in words for logs: "I(0,M) 254 bytes", "R(1) error EDC",
 * "S(WTX request) 5". */
void smc_t1_block_str(const struct t1_block *b, char *out, size_t cap);
/* The same for a block built by this side (assumed well formed). */
void smc_t1_block_str_raw(const uint8_t *buf, size_t n, char *out, size_t cap);

#endif
