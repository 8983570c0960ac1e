/* Speed and protocol selection: ISO/IEC 7816-3:2006 sections 7.1 (etu = Fi /
 * (Di * f)), 8.3 (TA1: Fi, Di, fmax) and 9 (PPS). smc_choose_speed() picks the
 * Fi/Di to propose, smc_pps_build() and smc_pps_check() are the two ends of the
 * exchange, smc_card_caps_set_fidi() puts the agreed Fi/Di into the timing.
 * All pure: the reader driver moves the bytes. */
#include <string.h>

#include "smc_log.h"
#include "smclib_internal.h"

#define PPSS 0xFFu
#define PPS0_PPS1 0x10u   /* PPS0 bit 5: PPS1 present */
#define PPS0_PPS2 0x20u   /* bit 6: PPS2 present */
#define PPS0_PPS3 0x40u   /* bit 7: PPS3 present */
#define PPS0_RFU 0x80u    /* bit 8: reserved */
#define PPS0_T 0x0Fu      /* bits 1-4: the protocol */
#define PPS_MIN 3u        /* PPSS PPS0 PCK */
#define FIDI_DEFAULT 0x11u
#define FD 372u

/* Fi, fmax and Di (Tables 7 and 8 of ISO 7816-3) come from atr.c through
 * smc_fi_of(), smc_fmax_khz_of() and smc_di_of(). */
/* Di codes by decreasing Di: 64, 32, 20, 16, 12, 8, 4, 2, 1. */
static const uint8_t di_codes_desc[] = { 7, 6, 9, 5, 8, 4, 3, 2, 1 };

/* A reader's advertised rate matches a computed one within 1%: readers round
 * (10752.7 bps is listed as 10752 or 10753), but neighbouring entries of real
 * lists are 3% or more apart. */
#define RATE_TOLERANCE_PCT 1u

/* 7.1: one etu is Fi / (Di * f), so the data rate is f * Di / Fi bits per second. */
static uint32_t rate_of(uint32_t fi, uint32_t di, uint32_t clk_khz)
{
	return (uint32_t)((uint64_t)clk_khz * 1000u * di / fi);
}

static bool close_enough(uint32_t listed, uint32_t rate)
{
	uint64_t diff = listed > rate ? listed - rate : rate - listed;

	return diff * 100u <= (uint64_t)rate * RATE_TOLERANCE_PCT;
}

/* The reader's value for rate: the nearest listed entry within the tolerance,
 * or, without a list, rate itself when it lies in [min_rate, max_rate]. 0 if
 * the reader cannot run it. */
static uint32_t reader_rate(uint32_t rate, const uint32_t *rates, size_t n_rates, uint32_t min_rate,
			    uint32_t max_rate)
{
	uint32_t best = 0;

	if (n_rates == 0)
		return rate >= min_rate && rate <= max_rate ? rate : 0;
	for (size_t i = 0; i < n_rates; i++) {
		uint32_t d_new = rates[i] > rate ? rates[i] - rate : rate - rates[i];
		uint32_t d_best = best > rate ? best - rate : rate - best;

		if (close_enough(rates[i], rate) && (best == 0 || d_new < d_best))
			best = rates[i];
	}
	return best;
}

smc_status smc_choose_speed(const struct smc_card_caps *caps, uint32_t clk_khz, const uint32_t *rates,
			    size_t n_rates, uint32_t min_rate, uint32_t max_rate, uint8_t *fidi,
			    uint32_t *rate)
{
	unsigned f_code, fi, di_max;

	if (caps == NULL || fidi == NULL || (n_rates > 0 && rates == NULL)) {
		log_critical("no card capabilities, rate list or place for the result");
		return SMC_ERR_INVALID_PARAM;
	}
	*fidi = FIDI_DEFAULT;
	if (rate != NULL)
		*rate = clk_khz ? rate_of(FD, 1, clk_khz) : 0;
	if (clk_khz == 0 || !smc_fidi_valid(caps->ta1))
		return SMC_OK;
	f_code = caps->ta1 >> 4;
	fi = smc_fi_of(caps->ta1);
	di_max = smc_di_of(caps->ta1);
	/* 8.3: the clock must stay within the fmax that goes with Fi */
	if (clk_khz > smc_fmax_khz_of(caps->ta1))
		return SMC_OK;
	/* 9.2: PPS1 may propose any F from Fd to Fi and D from Dd to Di; keep Fi
	 * (fmax was checked for it) and step down through the Di of Table 8. */
	for (size_t i = 0; i < sizeof(di_codes_desc); i++) {
		uint8_t d_code = di_codes_desc[i];
		unsigned di = smc_di_of(d_code);
		uint32_t supported;

		if (di > di_max)
			continue;
		if (fi >= FD * di)
			break; /* no faster than Fd/Dd, nor is any smaller Di */
		supported = reader_rate(rate_of(fi, di, clk_khz), rates, n_rates, min_rate, max_rate);
		if (supported != 0) {
			*fidi = (uint8_t)(f_code << 4 | d_code);
			if (rate != NULL)
				*rate = supported;
			return SMC_OK;
		}
	}
	return SMC_OK;
}

/* ---- the PPS exchange (section 9) ---------------------------------------- */

static size_t pps_len_for(uint8_t pps0)
{
	return PPS_MIN + ((pps0 & PPS0_PPS1) != 0) + ((pps0 & PPS0_PPS2) != 0) +
	       ((pps0 & PPS0_PPS3) != 0);
}

static uint8_t xor_of(const uint8_t *b, size_t len)
{
	uint8_t x = 0;

	for (size_t i = 0; i < len; i++)
		x ^= b[i];
	return x;
}

static int protocol_number(uint32_t protocol)
{
	if (protocol == SMC_PROTOCOL_T0)
		return 0;
	if (protocol == SMC_PROTOCOL_T1)
		return 1;
	return -1;
}

smc_status smc_pps_build(uint32_t protocol, uint8_t fidi, uint8_t out[SMC_PPS_REQUEST_MAX],
			 size_t *len)
{
	int t = protocol_number(protocol);
	size_t n = 0;

	if (out == NULL || len == NULL) {
		log_critical("no place for the PPS request");
		return SMC_ERR_INVALID_PARAM;
	}
	*len = 0;
	if (t < 0 || !smc_fidi_valid(fidi)) {
		log_critical("PPS for protocol 0x%X, Fi/Di 0x%02X: not exactly one of T=0 and T=1, or an RFU code",
			     protocol, fidi);
		return SMC_ERR_INVALID_PARAM;
	}
	out[n++] = PPSS;
	/* PPS1 absent means Fd/Dd (9.2): leave it out when that is what we want */
	out[n++] = (uint8_t)((fidi != FIDI_DEFAULT ? PPS0_PPS1 : 0) | (unsigned)t);
	if (fidi != FIDI_DEFAULT)
		out[n++] = fidi;
	out[n] = xor_of(out, n); /* PCK: the XOR of PPSS to PCK is 0 */
	*len = n + 1;
	return SMC_OK;
}

/* The optional byte PPSk (k = 1, 2, 3) of a well-formed PPS message, or -1. */
static int pps_byte(const uint8_t *m, unsigned k)
{
	size_t pos = 2;

	for (unsigned j = 1; j <= 3; j++) {
		bool present = (m[1] & (PPS0_PPS1 << (j - 1))) != 0;

		if (j == k)
			return present ? m[pos] : -1;
		pos += present;
	}
	return -1;
}

static bool well_formed(const uint8_t *m, size_t len)
{
	return m != NULL && len >= PPS_MIN && len <= SMC_PPS_MAX && m[0] == PPSS &&
	       len == pps_len_for(m[1]) && xor_of(m, len) == 0;
}

/* 9.1: what is wrong with a response that cannot be a PPS message at all. */
static smc_status malformed(const uint8_t *r, size_t len)
{
	if (r == NULL || len < PPS_MIN)
		log_critical("PPS response of %zu bytes is too short (at least %u)", r ? len : 0, PPS_MIN);
	else if (len > SMC_PPS_MAX)
		log_critical("PPS response of %zu bytes is too long (at most %u)", len, SMC_PPS_MAX);
	else if (r[0] != PPSS)
		log_critical("PPS response starts with 0x%02X, not PPSS 0xFF", r[0]);
	else if (len != pps_len_for(r[1]))
		log_critical("PPS response of %zu bytes, but PPS0 0x%02X announces %zu", len, r[1],
			     pps_len_for(r[1]));
	else
		log_critical("PPS response PCK 0x%02X is wrong: the XOR of all bytes is 0x%02X, not 0",
			     r[len - 1], xor_of(r, len));
	return SMC_ERR_COMM;
}

smc_status smc_pps_check(const uint8_t *request, size_t req_len, const uint8_t *response,
			 size_t resp_len, uint8_t *agreed_fidi)
{
	int p1;

	if (agreed_fidi == NULL || !well_formed(request, req_len)) {
		log_critical("PPS check without a well-formed request (%zu bytes) or a place for the result",
			     request ? req_len : 0);
		return SMC_ERR_INVALID_PARAM;
	}
	if (!well_formed(response, resp_len))
		return malformed(response, resp_len);
	log_hex("PPS response", response, resp_len);
	/* 9.3: a successful exchange echoes PPS0 bits 1-4; PPS1 is echoed or absent
	 * (then Fd/Dd); PPS2 and PPS3 likewise; bit 8 is reserved. */
	if ((response[1] & (PPS0_T | PPS0_RFU)) != (request[1] & (PPS0_T | PPS0_RFU))) {
		log_info("card answered PPS0 0x%02X to 0x%02X: protocol not accepted", response[1],
			 request[1]);
		return SMC_ERR_PROTOCOL;
	}
	for (unsigned k = 1; k <= 3; k++) {
		int got = pps_byte(response, k), asked = pps_byte(request, k);

		if (got < 0 || got == asked)
			continue;
		if (asked < 0)
			log_info("card answered PPS%u 0x%02X, which the request did not carry", k,
				 (unsigned)got);
		else
			log_info("card answered PPS%u 0x%02X to 0x%02X: not accepted", k, (unsigned)got,
				 (unsigned)asked);
		return SMC_ERR_PROTOCOL;
	}
	p1 = pps_byte(response, 1);
	*agreed_fidi = p1 < 0 ? FIDI_DEFAULT : (uint8_t)p1;
	return SMC_OK;
}

smc_status smc_card_caps_set_fidi(struct smc_card_caps *caps, uint8_t fidi, uint32_t clk_khz)
{
	if (caps == NULL || !smc_fidi_valid(fidi)) {
		log_critical("cannot set Fi/Di 0x%02X%s", fidi, caps ? " (RFU code)" : " without capabilities");
		return SMC_ERR_INVALID_PARAM;
	}
	caps->fi = smc_fi_of(fidi);
	caps->di = smc_di_of(fidi);
	smc_card_caps_timing(caps, clk_khz);
	return SMC_OK;
}
