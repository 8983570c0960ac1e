/* The Answer To Reset: ISO/IEC 7816-3:2006 section 8 (structure) and the
 * parameters it carries (sections 7.1, 8.3, 10.2, 11.4). smc_atr_parse() is pure;
 * smc_update_card_capabilities() applies the result to an extension. */
#include <stdio.h>
#include <string.h>

#include "smc_log.h"
#include "smclib_internal.h"

#define TS_DIRECT 0x3B
#define TS_INVERSE 0x3F
#define TS_INVERSE_READ_DIRECT 0x03 /* 0x3F seen through the direct convention */

#define T_GLOBAL 15 /* 8.2.3: T=15 qualifies global interface bytes */

/* Table 7 of ISO 7816-3: Fi and fmax (kHz) by the high nibble of TA1, 0 = RFU.
 * The only copy: pps.c reads them through smc_fi_of() and friends. */
static const uint16_t fi_table[16] = {
	372, 372, 558, 744, 1116, 1488, 1860, 0, 0, 512, 768, 1024, 1536, 2048, 0, 0,
};
static const uint16_t fmax_khz_table[16] = {
	4000, 5000, 6000, 8000, 12000, 16000, 20000, 0, 0, 5000, 7500, 10000, 15000, 20000, 0, 0,
};
/* Table 8: Di by the low nibble of TA1, 0 = RFU. */
static const uint8_t di_table[16] = {
	0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0,
};

unsigned smc_fi_of(uint8_t fidi)
{
	return fi_table[fidi >> 4];
}

unsigned smc_fmax_khz_of(uint8_t fidi)
{
	return fmax_khz_table[fidi >> 4];
}

unsigned smc_di_of(uint8_t fidi)
{
	return di_table[fidi & 0x0F];
}

bool smc_fidi_valid(uint8_t fidi)
{
	return smc_fi_of(fidi) != 0 && smc_di_of(fidi) != 0;
}

static uint32_t protocol_mask(unsigned t)
{
	if (t == 0)
		return SMC_PROTOCOL_T0;
	if (t == 1)
		return SMC_PROTOCOL_T1;
	return 0;
}

/* The T announced by the TD that precedes group g (0-based), or -1 for group 0. */
static int group_protocol(const struct smc_card_caps *caps, unsigned g)
{
	if (g == 0)
		return -1;
	return caps->group[g - 1].td & 0x0F;
}

static smc_status atr_need(size_t pos, size_t len, const char *what)
{
	if (pos < len)
		return SMC_OK;
	log_critical("ATR ends after %zu bytes, but %s is announced", len, what);
	return SMC_ERR_BAD_ATR;
}

/* 8.2.2 and 8.2.3: T0 then groups of TAi TBi TCi TDi; Y (high nibble of T0 or TDi)
 * says which of the next group are present. Leaves *pos on the first historical byte. */
static smc_status atr_read_groups(const uint8_t *atr, size_t len, size_t *pos,
				  struct smc_card_caps *caps)
{
	static const char *const names[4] = { "TA", "TB", "TC", "TD" };
	uint8_t y = atr[1] >> 4;
	size_t p = 2;

	caps->n_groups = 0;
	for (;;) {
		struct smc_atr_group *grp;
		uint8_t *bytes[4];

		if (caps->n_groups == SMC_ATR_GROUPS) {
			log_critical("ATR announces more than %d groups of interface bytes",
				     SMC_ATR_GROUPS);
			return SMC_ERR_BAD_ATR;
		}
		grp = &caps->group[caps->n_groups++];
		bytes[0] = &grp->ta;
		bytes[1] = &grp->tb;
		bytes[2] = &grp->tc;
		bytes[3] = &grp->td;
		for (unsigned b = 0; b < 4; b++) {
			char what[16];

			if (!(y & (1u << b)))
				continue;
			snprintf(what, sizeof(what), "%s%u", names[b], caps->n_groups);
			if (atr_need(p, len, what) != SMC_OK)
				return SMC_ERR_BAD_ATR;
			*bytes[b] = atr[p++];
			grp->present |= (uint8_t)(1u << b);
		}
		if (!(grp->present & SMC_TD))
			break;
		y = grp->td >> 4;
	}
	*pos = p;
	return SMC_OK;
}

/* 8.2.5: TCK is absent when only T=0 is indicated, present in every other case. */
static bool atr_tck_required(const struct smc_card_caps *caps)
{
	for (unsigned g = 0; g < caps->n_groups; g++)
		if ((caps->group[g].present & SMC_TD) && (caps->group[g].td & 0x0F) != 0)
			return true;
	return false;
}

/* 8.2.4 and 8.2.5: K historical bytes, then TCK when required; nothing after. */
static smc_status atr_read_tail(const uint8_t *atr, size_t len, size_t pos,
				struct smc_card_caps *caps)
{
	size_t k = atr[1] & 0x0F;
	bool need_tck = atr_tck_required(caps);
	uint8_t x = 0;

	if (pos + k > len) {
		log_critical("ATR of %zu bytes is too short for its %zu historical bytes at offset %zu",
			     len, k, pos);
		return SMC_ERR_BAD_ATR;
	}
	memcpy(caps->hist, atr + pos, k);
	caps->hist_len = k;
	pos += k;

	if (!need_tck) {
		/* T=0 only: ISO 7816-3 wants no TCK, but many cards send one byte
		 * there anyway (pcsc-tools' list has dozens); it is harmless. */
		if (pos + 1 == len) {
			log_info("T=0-only ATR ends with an extra byte 0x%02X (an unneeded TCK); ignored",
				 atr[pos]);
			return SMC_OK;
		}
		if (pos != len) {
			log_critical("ATR has %zu bytes after its historical bytes, none expected (T=0 only: no TCK)",
				     len - pos);
			return SMC_ERR_BAD_ATR;
		}
		return SMC_OK;
	}
	if (pos == len) {
		/* Seen on real cards: accept, as other readers' drivers do. */
		log_info("ATR announces a protocol other than T=0 but has no TCK; accepted");
		return SMC_OK;
	}
	if (pos + 1 != len) {
		log_critical("ATR has %zu bytes after its historical bytes, expected only TCK",
			     len - pos);
		return SMC_ERR_BAD_ATR;
	}
	for (size_t i = 1; i < len; i++)
		x ^= atr[i];
	if (x != 0) {
		log_critical("ATR TCK 0x%02X is wrong: XOR of T0..TCK is 0x%02X, not 0",
			     atr[len - 1], x);
		return SMC_ERR_BAD_ATR;
	}
	caps->tck_present = true;
	return SMC_OK;
}

/* 8.3: TA1 gives Fi, fmax and Di. RFU codes leave the defaults (Fd, Dd). */
static void atr_derive_ta1(struct smc_card_caps *caps)
{
	uint8_t ta1;
	unsigned f, d;

	if (!(caps->group[0].present & SMC_TA))
		return;
	ta1 = caps->group[0].ta;
	f = ta1 >> 4;
	d = ta1 & 0x0F;
	if (!smc_fidi_valid(ta1)) {
		log_info("TA1 0x%02X has an RFU Fi (%u) or Di (%u) code; using Fd=372, Dd=1",
			 ta1, f, d);
		return;
	}
	caps->ta1 = ta1;
	caps->fi = smc_fi_of(ta1);
	caps->di = smc_di_of(ta1);
	caps->fmax_khz = smc_fmax_khz_of(ta1);
}

/* 8.2.3: the protocols offered are the T of every TDi; no TD1 means T=0 only.
 * TD1 gives the first offered protocol, TA2 the specific mode (8.3). */
static void atr_derive_protocols(struct smc_card_caps *caps)
{
	const struct smc_atr_group *g1 = &caps->group[0];

	if (!(g1->present & SMC_TD)) {
		caps->protocols = SMC_PROTOCOL_T0;
		caps->first_protocol = SMC_PROTOCOL_T0;
	} else {
		caps->first_protocol = protocol_mask(g1->td & 0x0F);
		if ((g1->td & 0x0F) == T_GLOBAL)
			log_info("TD1 announces T=15, which ISO 7816-3 does not allow there");
		for (unsigned g = 0; g < caps->n_groups; g++)
			if (caps->group[g].present & SMC_TD)
				caps->protocols |= protocol_mask(caps->group[g].td & 0x0F);
	}
	if (caps->protocols == 0)
		log_info("ATR offers neither T=0 nor T=1");

	if (caps->n_groups > 1 && (caps->group[1].present & SMC_TA)) {
		uint8_t ta2 = caps->group[1].ta;

		caps->specific_mode = true;
		caps->specific_implicit = (ta2 & 0x10) != 0;
		caps->specific_protocol = protocol_mask(ta2 & 0x0F);
		if (caps->specific_protocol == 0)
			log_info("TA2 0x%02X: specific mode with T=%u, which is not supported",
				 ta2, ta2 & 0x0F);
	}
}

/* 8.3 (TC1: N) and 10.2 (TC2: WI, 0 is reserved). */
static void atr_derive_t0(struct smc_card_caps *caps)
{
	if (caps->group[0].present & SMC_TC)
		caps->n = caps->group[0].tc;
	if (caps->n_groups > 1 && (caps->group[1].present & SMC_TC)) {
		if (caps->group[1].tc == 0)
			log_info("TC2 = 0 is invalid; using WI = %u", caps->t0.wi);
		else
			caps->t0.wi = caps->group[1].tc;
	}
}

/* 11.4: the first TA, TB, TC for T=1 (groups i > 2 after a TD(i-1) with T=1) give
 * IFSC, BWI/CWI and the EDC. 8.3: the first TA for T=15 is the class indicator. */
static void atr_derive_specific(struct smc_card_caps *caps)
{
	bool have_ta = false, have_tb = false, have_tc = false, have_class = false;

	for (unsigned g = 2; g < caps->n_groups; g++) {
		const struct smc_atr_group *grp = &caps->group[g];
		int t = group_protocol(caps, g);

		if (t == 1 && (grp->present & SMC_TA) && !have_ta) {
			have_ta = true;
			if (grp->ta == 0x00 || grp->ta == 0xFF)
				log_info("IFSC 0x%02X is invalid; using %u", grp->ta, caps->t1.ifsc);
			else
				caps->t1.ifsc = grp->ta;
		}
		if (t == 1 && (grp->present & SMC_TB) && !have_tb) {
			have_tb = true;
			caps->t1.bwi = grp->tb >> 4;
			caps->t1.cwi = grp->tb & 0x0F;
			if (caps->t1.bwi > 9)
				log_info("BWI %u is reserved for future use (ISO 7816-3 11.4.3)",
					 caps->t1.bwi);
		}
		if (t == 1 && (grp->present & SMC_TC) && !have_tc) {
			have_tc = true;
			caps->t1.crc = (grp->tc & 0x01) != 0;
		}
		if (t == T_GLOBAL && (grp->present & SMC_TA) && !have_class) {
			have_class = true;
			caps->class_indicator = grp->ta & 0x3F;
		}
	}
}

static uint32_t div_round_up(uint64_t num, uint64_t den)
{
	uint64_t q = (num + den - 1) / den;

	return q > UINT32_MAX ? UINT32_MAX : (uint32_t)q;
}

/* 10.2: WT = WI * 960 * Fi / f.  11.4.3: BWT = 11 etu + 2^BWI * 960 * Fd / f,
 * CWT = (11 + 2^CWI) etu, with etu = Fi / (Di * f) (7.1). With f in kHz the
 * quotients are in ms; rounded up so a timeout is never shorter than the card's. */
void smc_card_caps_timing(struct smc_card_caps *caps, uint32_t clk_khz)
{
	uint64_t f = clk_khz ? clk_khz : SMC_DEFAULT_CLK_KHZ;
	uint64_t fi = caps->fi ? caps->fi : 372, di = caps->di ? caps->di : 1;

	caps->t0.wt_ms = div_round_up(960ull * caps->t0.wi * fi, f);
	caps->t1.bwt_ms = div_round_up(11ull * fi + (1ull << (caps->t1.bwi & 0x0F)) * 960ull * 372ull * di,
				       di * f);
	caps->t1.cwt_ms = div_round_up((11ull + (1ull << (caps->t1.cwi & 0x0F))) * fi, di * f);
}

static smc_status atr_parse_decoded(const uint8_t *atr, size_t len, struct smc_card_caps *caps)
{
	size_t pos;
	smc_status st;

	st = atr_read_groups(atr, len, &pos, caps);
	if (st != SMC_OK)
		return st;
	st = atr_read_tail(atr, len, pos, caps);
	if (st != SMC_OK)
		return st;
	atr_derive_ta1(caps);
	atr_derive_protocols(caps);
	atr_derive_t0(caps);
	atr_derive_specific(caps);
	smc_card_caps_timing(caps, 0);
	return SMC_OK;
}

smc_status smc_atr_parse(const uint8_t *atr, size_t atr_len, struct smc_card_caps *caps)
{
	uint8_t buf[SMC_ATR_MAX];
	struct smc_card_caps tmp;
	smc_status st;

	if (atr == NULL || caps == NULL) {
		log_critical("no ATR or no capabilities to fill");
		return SMC_ERR_INVALID_PARAM;
	}
	if (atr_len < 2 || atr_len > SMC_ATR_MAX) {
		log_critical("ATR length %zu is outside 2..%d", atr_len, SMC_ATR_MAX);
		return SMC_ERR_BAD_ATR;
	}
	memcpy(buf, atr, atr_len);
	smc_card_caps_clear(&tmp);

	/* 8.1: TS. A reader that sampled an inverse-convention card as direct sees 0x03. */
	if (buf[0] == TS_INVERSE_READ_DIRECT) {
		log_info("TS 0x03: ATR read in the direct convention from an inverse card; decoding");
		smc_invert_data(buf, atr_len);
	}
	if (buf[0] == TS_INVERSE) {
		tmp.inverse = true;
	} else if (buf[0] != TS_DIRECT) {
		log_critical("ATR TS 0x%02X is neither 0x3B nor 0x3F", buf[0]);
		return SMC_ERR_BAD_ATR;
	}
	memcpy(tmp.atr, buf, atr_len);
	tmp.atr_len = atr_len;

	st = atr_parse_decoded(buf, atr_len, &tmp);
	if (st != SMC_OK) {
		log_hex("rejected ATR", atr, atr_len);
		return st;
	}
	*caps = tmp;
	return SMC_OK;
}

smc_status smc_update_card_capabilities(struct smc_ext *ext)
{
	struct smc_card_caps *caps;
	struct smc_card_caps parsed;
	smc_status st;

	if (ext == NULL) {
		log_critical("no extension given");
		return SMC_ERR_INVALID_PARAM;
	}
	caps = &ext->card_caps;
	if (caps->atr_len > SMC_ATR_MAX) {
		log_critical("ATR length %zu exceeds %d", caps->atr_len, SMC_ATR_MAX);
		return SMC_ERR_BAD_ATR;
	}
	st = smc_atr_parse(caps->atr, caps->atr_len, &parsed);
	if (st != SMC_OK)
		return st;

	/* IFSD is the reader's side: keep what the driver set. */
	parsed.t1.ifsd = caps->t1.ifsd ? caps->t1.ifsd : parsed.t1.ifsd;
	smc_card_caps_timing(&parsed, ext->reader_caps.clk_default_khz);
	if (parsed.specific_mode) {
		parsed.selected_protocol = parsed.specific_protocol;
		ext->reader_caps.current_state = SMC_STATE_SPECIFIC;
	} else {
		parsed.selected_protocol = 0;
		ext->reader_caps.current_state = SMC_STATE_NEGOTIABLE;
	}
	*caps = parsed;
	log_info("ATR: Fi=%u Di=%u N=%u protocols %s (first %s)%s%s, state %s",
		 caps->fi, caps->di, caps->n, smc_protocol_str(caps->protocols),
		 smc_protocol_str(caps->first_protocol),
		 caps->specific_mode ? ", specific mode " : "",
		 caps->specific_mode ? smc_protocol_str(caps->specific_protocol) : "",
		 smc_state_str(ext->reader_caps.current_state));
	return SMC_OK;
}

/* 8.1: in the inverse convention the line state is complemented and the bits go
 * most significant first; decoding is the same operation as encoding. */
void smc_invert_data(uint8_t *buf, size_t len)
{
	if (buf == NULL)
		return;
	for (size_t i = 0; i < len; i++) {
		uint8_t b = buf[i], r = 0;

		for (unsigned bit = 0; bit < 8; bit++)
			if (b & (1u << bit))
				r |= (uint8_t)(0x80u >> bit);
		buf[i] = (uint8_t)~r;
	}
}
