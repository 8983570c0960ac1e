/* Speed, protocol and voltage class for readers that leave them to the host.
 *
 * At open: the reader's clock and data rate lists (CCID 1.1 5.3.2 and 5.3.3,
 * GET_CLOCK_FREQUENCIES and GET_DATA_RATES). At SET_PROTOCOL, below APDU level
 * and when the reader does no PPS itself (dwFeatures 0x40, 0x80): PPS (ISO/IEC
 * 7816-3:2006 section 9) to the protocol asked for and the fastest Fi/Di that
 * the card and the reader share, sent as XfrBlock; then the reader's rate
 * (PC_to_RDR_SetDataRateAndClockFrequency, 6.1.14) unless it follows by itself
 * (dwFeatures 0x10 and 0x20). A card that refuses is reset and runs at Fd/Dd.
 * At power up: the class indicator of the ATR (8.3) against the voltage used. */
#include <string.h>

#include "ccid_reader.h"
#include "smc_log.h"

/* 5.3: class requests to the interface, device to host */
#define REQTYPE_CLASS_IN_IFACE 0xA1u
#define REQ_GET_CLOCK_FREQUENCIES 0x02u
#define REQ_GET_DATA_RATES 0x03u
#define LIST_ENTRY_LEN 4u

#define FIDI_DEFAULT 0x11u
#define PPS_HEAD_LEN 2u     /* PPSS PPS0: what says how long the rest is */
#define PPS0_OPTIONAL 0x70u /* PPS0 bits 5-7: PPS1, PPS2, PPS3 present */
/* PPS attempts per SET_PROTOCOL: the speed chosen, then Fd/Dd if the protocol
 * still needs PPS. Each refusal costs a card reset. */
#define PPS_MAX_ATTEMPTS 2

static struct ccid_reader *reader_of(struct smc_ext *ext)
{
	return ccid_slot_of(ext)->reader;
}

static unsigned slot_no(struct smc_ext *ext)
{
	return ccid_slot_of(ext)->index;
}

static unsigned t_of(uint32_t proto)
{
	return proto == SMC_PROTOCOL_T1 ? 1u : 0u;
}

/* ---- the lists, at open --------------------------------------------------- */

static uint32_t get_le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Keep the entries of a list answer that make sense: whole DWORDs, not 0, not
 * above the descriptor's maximum (when it states one). Returns how many. */
static unsigned keep_entries(const uint8_t *raw, size_t got, const char *what, uint32_t max,
			     uint32_t out[CCID_SPEED_LIST_MAX])
{
	unsigned n = 0;

	if (got % LIST_ENTRY_LEN)
		log_info("%s: %zu bytes is no whole number of DWORDs; the last %zu ignored", what, got,
			 got % LIST_ENTRY_LEN);
	for (size_t i = 0; i + LIST_ENTRY_LEN <= got; i += LIST_ENTRY_LEN) {
		uint32_t v = get_le32(raw + i);

		if (v == 0 || (max != 0 && v > max)) {
			log_info("%s: entry %zu (%u) is 0 or above the descriptor's maximum %u: ignored",
				 what, i / LIST_ENTRY_LEN, v, max);
			continue;
		}
		out[n++] = v;
	}
	return n;
}

static unsigned read_list(struct ccid_reader *r, uint8_t request, const char *what, unsigned announced,
			  uint32_t max, uint32_t out[CCID_SPEED_LIST_MAX])
{
	uint8_t raw[CCID_SPEED_LIST_MAX * LIST_ENTRY_LEN];
	uint16_t want;
	size_t got = 0;
	tp_status ts;
	unsigned n;

	if (announced == 0)
		return 0;
	if (announced > CCID_SPEED_LIST_MAX)
		announced = CCID_SPEED_LIST_MAX;
	want = (uint16_t)(announced * LIST_ENTRY_LEN);
	ts = r->tp->ops->control(r->tp, REQTYPE_CLASS_IN_IFACE, request, 0, raw, want, &got,
				 CCID_CMD_TIMEOUT_MS);
	if (ts != TP_OK) {
		/* many readers stall these requests: the descriptor says enough */
		log_info("%s: %s; using the descriptor's default and maximum", what, tp_status_str(ts));
		return 0;
	}
	if (got > want) {
		log_critical("%s: transport reports %zu bytes for a %u-byte request; ignored", what, got,
			     want);
		return 0;
	}
	if (got < want)
		log_info("%s: %zu bytes, %u values were announced", what, got, announced);
	n = keep_entries(raw, got, what, max, out);
	log_info("%s: %u values kept", what, n);
	return n;
}

static uint32_t list_min(const uint32_t *v, unsigned n)
{
	uint32_t m = v[0];

	for (unsigned i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static uint32_t list_max(const uint32_t *v, unsigned n)
{
	uint32_t m = v[0];

	for (unsigned i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

/* The descriptor's values, completed from the lists where it states none. */
static void fill_speed_caps(const struct ccid_reader *r, struct smc_reader_caps *rc)
{
	if (r->n_clocks > 0) {
		if (rc->clk_default_khz == 0)
			rc->clk_default_khz = list_min(r->clocks, r->n_clocks);
		if (rc->clk_max_khz == 0)
			rc->clk_max_khz = list_max(r->clocks, r->n_clocks);
	}
	if (r->n_rates > 0) {
		if (rc->rate_default == 0)
			rc->rate_default = list_min(r->rates, r->n_rates);
		if (rc->rate_max == 0)
			rc->rate_max = list_max(r->rates, r->n_rates);
	}
}

void ccid_speed_open(struct ccid_reader *r)
{
	const struct ccid_descriptor *d = &r->desc;

	r->n_clocks = read_list(r, REQ_GET_CLOCK_FREQUENCIES, "GET_CLOCK_FREQUENCIES",
				d->bNumClockSupported, d->dwMaximumClock, r->clocks);
	r->n_rates = read_list(r, REQ_GET_DATA_RATES, "GET_DATA_RATES", d->bNumDataRatesSupported,
			       d->dwMaxDataRate, r->rates);
	for (unsigned i = 0; i < r->n_slots; i++)
		fill_speed_caps(r, &r->slots[i].reader_caps);
}

/* ---- PPS, at SET_PROTOCOL ------------------------------------------------- */

/* The host negotiates: below APDU level, when the reader does not (0x40
 * proprietary negotiation, 0x80 PPS from the active parameters), and for a
 * card in negotiable mode (TA2 absent, 7816-3 6.3.1). */
static bool host_negotiates(struct smc_ext *ext)
{
	const struct ccid_descriptor *d = &reader_of(ext)->desc;

	if (d->level != CCID_LEVEL_TPDU && d->level != CCID_LEVEL_CHARACTER)
		return false;
	if (d->dwFeatures & (CCID_FEAT_AUTO_PARAM_NEG | CCID_FEAT_AUTO_PPS))
		return false;
	return !ext->card_caps.specific_mode;
}

/* 9.1 and 10.2: the card answers a PPS request within the initial waiting
 * time, 9600 etu at Fd/Dd (WI 10), whatever TC2 says for later. */
static unsigned pps_timeout_ms(const struct smc_ext *ext)
{
	uint64_t clk = ext->reader_caps.clk_default_khz ? ext->reader_caps.clk_default_khz : 4000;

	return ccid_card_wait_timeout_ms((9600ull * 372 + clk - 1) / clk);
}

static smc_status pps_xfr(struct smc_ext *ext, uint16_t level, const uint8_t *tx, size_t tx_len,
			  uint8_t *rx, size_t rx_cap, size_t *rx_len)
{
	struct ccid_answer a;
	smc_status st;

	st = ccid_xfr_block(ext, 0, level, tx, tx_len, pps_timeout_ms(ext), rx, rx_cap, &a);
	if (st == SMC_ERR_BUFFER_TOO_SMALL) {
		log_critical("slot %u: PPS answer of %u bytes, at most %zu expected", slot_no(ext),
			     a.hdr.dwLength, rx_cap);
		return SMC_ERR_COMM;
	}
	if (st != SMC_OK)
		return st;
	*rx_len = a.hdr.dwLength;
	return SMC_OK;
}

/* Character level (6.1.4: wLevelParameter = bytes to read back): PPSS and
 * PPS0 first, then the optional bytes PPS0 announces and PCK. */
static smc_status pps_char(struct smc_ext *ext, const uint8_t *req, size_t req_len, uint8_t *resp,
			   size_t *resp_len)
{
	size_t got = 0, rest = 1;
	smc_status st;

	st = pps_xfr(ext, PPS_HEAD_LEN, req, req_len, resp, PPS_HEAD_LEN, &got);
	if (st != SMC_OK)
		return st;
	if (got != PPS_HEAD_LEN || resp[0] != 0xFF) {
		*resp_len = got; /* not a PPS answer: smc_pps_check says why */
		return SMC_OK;
	}
	for (unsigned bit = 0x10; bit & PPS0_OPTIONAL; bit <<= 1)
		rest += (resp[1] & bit) != 0;
	st = pps_xfr(ext, (uint16_t)rest, NULL, 0, resp + PPS_HEAD_LEN, SMC_PPS_MAX - PPS_HEAD_LEN, &got);
	if (st != SMC_OK)
		return st;
	*resp_len = PPS_HEAD_LEN + got;
	return SMC_OK;
}

/* One PPS request and the card's answer; *agreed the Fi/Di it accepted. */
static smc_status pps_exchange(struct smc_ext *ext, uint32_t proto, uint8_t fidi, uint8_t *agreed)
{
	uint8_t req[SMC_PPS_REQUEST_MAX], resp[SMC_PPS_MAX];
	size_t req_len, resp_len = 0;
	smc_status st;

	st = smc_pps_build(proto, fidi, req, &req_len);
	if (st != SMC_OK)
		return st;
	log_info("slot %u: PPS to T=%u, Fi/Di 0x%02X", slot_no(ext), t_of(proto), fidi);
	log_hex("PPS request", req, req_len);
	if (reader_of(ext)->desc.level == CCID_LEVEL_CHARACTER)
		st = pps_char(ext, req, req_len, resp, &resp_len);
	else
		st = pps_xfr(ext, 0, req, req_len, resp, sizeof(resp), &resp_len);
	if (st != SMC_OK)
		return st;
	return smc_pps_check(req, req_len, resp, resp_len, agreed);
}

/* 6.1.14: the reader's clock and rate follow the card's new speed, unless it
 * does so itself (0x10 automatic clock and 0x20 automatic baud rate). A reader
 * without the command (a SlotStatus, bError 0) keeps going on SetParameters'
 * Fi/Di alone. */
static smc_status set_rate_and_clock(struct smc_ext *ext, uint32_t clk_khz, uint32_t rate)
{
	const uint32_t auto_both = CCID_FEAT_AUTO_CLOCK | CCID_FEAT_AUTO_BAUD;
	struct ccid_reader *r = reader_of(ext);
	uint8_t block[CCID_DATA_RATE_LEN], answer[CCID_DATA_RATE_LEN];
	struct ccid_answer a;
	struct ccid_cmd cmd;
	smc_status st;

	if ((r->desc.dwFeatures & auto_both) == auto_both)
		return SMC_OK;
	ccid_cmd_set_data_rate_and_clock(&cmd, slot_no(ext), clk_khz, rate, block);
	st = ccid_xfer_transact(&r->xfer, &cmd, CCID_CMD_TIMEOUT_MS, answer, sizeof(answer), &a);
	if (st == SMC_ERR_NOT_SUPPORTED) {
		log_info("slot %u: reader has no SetDataRateAndClockFrequency; going on", slot_no(ext));
		return SMC_OK;
	}
	if (st == SMC_ERR_BUFFER_TOO_SMALL) {
		/* the answer was read away whole: only its report is lost */
		log_info("slot %u: DataRateAndClockFrequency of %u bytes, 8 expected; going on",
			 slot_no(ext), a.hdr.dwLength);
		return SMC_OK;
	}
	if (st != SMC_OK)
		return st;
	if (a.cmd == CCID_CMD_FAILED) {
		st = ccid_answer_failure(&a, "SetDataRateAndClockFrequency");
		if (st == SMC_ERR_NO_MEDIA)
			return st;
		log_info("slot %u: reader refused %u kHz, %u bps; going on", slot_no(ext), clk_khz, rate);
		return SMC_OK;
	}
	if (a.hdr.dwLength == CCID_DATA_RATE_LEN)
		log_info("slot %u: reader runs %u kHz, %u bps (asked %u kHz, %u bps)", slot_no(ext),
			 get_le32(answer), get_le32(answer + 4), clk_khz, rate);
	return SMC_OK;
}

/* The speed the card runs at from now: what params.c (current_fidi) and the
 * timeouts use. */
static smc_status set_pts(struct smc_ext *ext, uint8_t fidi)
{
	struct smc_card_caps *caps = &ext->card_caps;

	caps->pts.fl = fidi >> 4;
	caps->pts.dl = fidi & 0x0F;
	caps->pts.done = true;
	return smc_card_caps_set_fidi(caps, fidi, ext->reader_caps.clk_default_khz);
}

/* The card took PPS: its speed, and the reader's rate to match. */
static smc_status apply_speed(struct smc_ext *ext, uint8_t agreed, uint32_t rate)
{
	struct smc_card_caps *caps = &ext->card_caps;
	uint32_t clk = ext->reader_caps.clk_default_khz;

	set_pts(ext, agreed);
	log_info("slot %u: card runs Fi/Di 0x%02X (Fi %u, Di %u) after PPS", slot_no(ext), agreed,
		 caps->fi, caps->di);
	/* smc_pps_check: PPS1 was echoed (what we asked) or left out (Fd/Dd) */
	if (agreed == FIDI_DEFAULT)
		return SMC_OK; /* the reader runs Fd/Dd already */
	return set_rate_and_clock(ext, clk, rate);
}

/* The reader or the card is gone: nothing more to try. */
static bool fatal(smc_status st)
{
	return st == SMC_ERR_NO_MEDIA || st == SMC_ERR_NO_DEVICE;
}

/* After a refused PPS the card waits for a reset (9.1): deactivate and
 * activate again, as RDF_CARD_POWER does. */
static smc_status reset_after_refusal(struct smc_ext *ext, uint32_t proto, uint8_t fidi, smc_status why)
{
	smc_status st;

	log_info("slot %u: PPS to T=%u, Fi/Di 0x%02X failed (%s): resetting the card", slot_no(ext),
		 t_of(proto), fidi, smc_status_str(why));
	st = ccid_card_reset(ext);
	if (st != SMC_OK)
		return st;
	if (ext->card_caps.specific_mode || ext->card_caps.atr_len == 0 ||
	    ext->reader_caps.current_state != SMC_STATE_NEGOTIABLE) {
		log_critical("slot %u: after the reset the card is not negotiable (state %s)", slot_no(ext),
			     smc_state_str(ext->reader_caps.current_state));
		return SMC_ERR_PROTOCOL;
	}
	return SMC_OK;
}

/* No PPS, or none that worked: the card runs its first protocol at Fd/Dd. */
static smc_status stay_default(struct smc_ext *ext)
{
	return smc_card_caps_set_fidi(&ext->card_caps, FIDI_DEFAULT, ext->reader_caps.clk_default_khz);
}

/* dwFeatures 0x80 without 0x40: the reader makes the PPS itself, to the Fi/Di
 * of the parameters it is given (CCID 1.1, 5.1), so SetParameters carries the
 * speed wanted. */
static bool reader_pps_from_params(struct smc_ext *ext)
{
	uint32_t f = reader_of(ext)->desc.dwFeatures;

	return (f & CCID_FEAT_AUTO_PPS) && !(f & CCID_FEAT_AUTO_PARAM_NEG) &&
	       !ext->card_caps.specific_mode;
}

static smc_status choose(struct smc_ext *ext, uint8_t *fidi, uint32_t *rate)
{
	struct ccid_reader *r = reader_of(ext);
	const struct smc_reader_caps *rc = &ext->reader_caps;

	return smc_choose_speed(&ext->card_caps, rc->clk_default_khz, r->rates, r->n_rates,
				rc->rate_default, rc->rate_max, fidi, rate);
}

smc_status ccid_negotiate_speed(struct smc_ext *ext, uint32_t proto)
{
	uint32_t rate = 0;
	uint8_t fidi, agreed = FIDI_DEFAULT;
	smc_status st;

	if (reader_pps_from_params(ext)) {
		st = choose(ext, &fidi, &rate);
		if (st != SMC_OK || fidi == FIDI_DEFAULT)
			return st == SMC_OK ? stay_default(ext) : st;
		/* only the parameters: SetParameters (next) makes the reader run
		 * the PPS and change its rate, so no SetDataRate here */
		log_info("slot %u: the reader makes the PPS: parameters with Fi/Di 0x%02X", slot_no(ext),
			 fidi);
		return set_pts(ext, fidi);
	}
	if (!host_negotiates(ext))
		return SMC_OK;
	st = choose(ext, &fidi, &rate);
	if (st != SMC_OK)
		return st;
	if (proto == ext->card_caps.first_protocol && fidi == FIDI_DEFAULT) {
		log_info("slot %u: T=%u is the card's first protocol and nothing beats Fi/Di 0x11: no PPS",
			 slot_no(ext), t_of(proto));
		return stay_default(ext);
	}
	for (int attempt = 0; attempt < PPS_MAX_ATTEMPTS; attempt++) {
		st = pps_exchange(ext, proto, fidi, &agreed);
		if (st == SMC_OK)
			return apply_speed(ext, agreed, rate);
		if (fatal(st))
			return st;
		st = reset_after_refusal(ext, proto, fidi, st);
		if (st != SMC_OK)
			return st;
		if (proto == ext->card_caps.first_protocol)
			return stay_default(ext);
		if (fidi == FIDI_DEFAULT)
			break;
		fidi = FIDI_DEFAULT; /* the protocol alone, at Fd/Dd */
	}
	log_critical("slot %u: the card refused PPS to T=%u; without PPS it runs only T=%u, its first protocol",
		     slot_no(ext), t_of(proto), t_of(ext->card_caps.first_protocol));
	return SMC_ERR_PROTOCOL;
}

/* ---- voltage class, at power up ------------------------------------------- */

/* Class A 5 V, B 3 V, C 1.8 V: the same bits in the class indicator (7816-3
 * 8.3, bits 1-3) and in bVoltageSupport; bPowerSelect 1, 2, 3. Also the order
 * in which callbacks.c tries voltages at power up. */
const struct ccid_voltage_class ccid_voltage_classes[CCID_N_VOLTAGE_CLASSES] = {
	{ CCID_VOLTAGE_5V, CCID_POWER_5V, "5 V", "A (5 V)" },
	{ CCID_VOLTAGE_3V, CCID_POWER_3V, "3 V", "B (3 V)" },
	{ CCID_VOLTAGE_1V8, CCID_POWER_1V8, "1.8 V", "C (1.8 V)" },
};
#define ALL_CLASSES (CCID_VOLTAGE_5V | CCID_VOLTAGE_3V | CCID_VOLTAGE_1V8)

enum ccid_power_select ccid_class_voltage(uint8_t class_indicator, uint8_t voltage_support,
					  enum ccid_power_select used)
{
	const struct ccid_voltage_class *c = ccid_voltage_classes;

	for (size_t i = 0; i < CCID_N_VOLTAGE_CLASSES; i++)
		if (c[i].sel == used && (class_indicator & c[i].bit))
			return used;
	if ((class_indicator & ALL_CLASSES) == 0)
		return used; /* no class indicator (or only RFU bits): nothing to go by */
	for (size_t i = 0; i < CCID_N_VOLTAGE_CLASSES; i++)
		if ((class_indicator & c[i].bit) && (voltage_support & c[i].bit))
			return c[i].sel;
	return used;
}

static const char *class_name(enum ccid_power_select sel)
{
	const struct ccid_voltage_class *c = ccid_voltage_classes;

	for (size_t i = 0; i < CCID_N_VOLTAGE_CLASSES; i++)
		if (c[i].sel == sel)
			return c[i].name;
	return "automatic";
}

enum ccid_power_select ccid_voltage_for_atr(struct smc_ext *ext, enum ccid_power_select used)
{
	const struct ccid_descriptor *d = &reader_of(ext)->desc;
	struct smc_card_caps parsed;
	enum ccid_power_select sel;
	uint8_t ci;

	if (used < CCID_POWER_5V || used > CCID_POWER_1V8)
		return used;
	/* a bad ATR is reported when the capabilities are read; here it only
	 * means there is no class indicator to go by */
	if (smc_atr_parse(ext->card_caps.atr, ext->card_caps.atr_len, &parsed) != SMC_OK)
		return used;
	ci = parsed.class_indicator;
	if ((ci & ccid_voltage_classes[used - 1].bit) || (ci & ALL_CLASSES) == 0)
		return used;
	sel = ccid_class_voltage(ci, d->bVoltageSupport, used);
	if (sel != used)
		log_info("slot %u: class indicator 0x%02X excludes class %s: powering again at class %s",
			 slot_no(ext), ci, class_name(used), class_name(sel));
	else
		log_info("slot %u: class indicator 0x%02X excludes class %s, but the reader (bVoltageSupport 0x%02X) has no class of the card: kept",
			 slot_no(ext), ci, class_name(used), d->bVoltageSupport);
	return sel;
}
