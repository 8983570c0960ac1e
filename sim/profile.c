/* The reader's profile: defaults, "key=value" settings with strict checks, and
 * the CCID class descriptor built from it (CCID 1.1 section 5.1, Table 5.1-1).
 * The keys are documented in sim/README.md. */
#include <stdlib.h>
#include <string.h>

#include "profile_priv.h"
#include "vr_log.h"

/* dwFeatures (CCID 1.1 Table 5.1-1): the automatic bits a profile may set, and
 * the exchange level bits derived from vr_profile.level. */
#define FEAT_AUTO_MASK 0x001007FEu
#define FEAT_LEVEL_TPDU 0x00010000u
#define FEAT_LEVEL_SHORT 0x00020000u
#define FEAT_LEVEL_EXTENDED 0x00040000u

/* Smallest message a reader must take: a short APDU (4 + 1 + 255 + 1) and its
 * header; largest: an extended APDU (4 + 3 + 65535 + 2) and its header. */
#define MIN_MESSAGE 271u
#define MAX_MESSAGE 65554u

void vr_profile_defaults(struct vr_profile *p)
{
	static const uint8_t hist[] = { 'v', 'i', 'r', 't', 'u', 'a', 'l' };

	memset(p, 0, sizeof(*p));
	p->vendor_id = 0x1209;
	p->product_id = 0x5CCD;
	p->bcd_device = 0x0100;
	strcpy(p->manufacturer, "smartcrd");
	strcpy(p->product, "Virtual CCID Reader");
	strcpy(p->serial, "0001");
	p->level = VR_LEVEL_SHORT_APDU;
	/* automatic parameters, voltage, clock, baud rate, PPS, IFSD */
	p->auto_features = 0x000004BAu;
	p->slots = 1;
	p->max_busy_slots = 1;
	p->max_message = MIN_MESSAGE;
	p->max_ifsd = 254;
	p->voltages = 0x07;
	p->protocols = 0x3;
	p->default_clock = 4000;
	p->max_clock = 12000;
	p->default_rate = 10752;  /* 4 MHz / 372 */
	p->max_rate = 412903;     /* 12 MHz * 32 / 930 rounded: a fast card */
	p->has_interrupt = true;
	p->high_speed = false;
	strcpy(p->keypad_pin, "1234");
	strcpy(p->keypad_new_pin, "5678");

	p->card.present = true;
	p->card.t0 = true;
	p->card.t1 = true;
	p->card.ta1 = 0x96;
	p->card.tc1 = -1;
	p->card.wi = -1;
	p->card.ta2 = -1;
	p->card.ifsc = 254;
	p->card.bwi = 4;
	p->card.cwi = 5;
	p->card.crc = false;
	p->card.inverse = false;
	memcpy(p->card.hist, hist, sizeof(hist));
	p->card.hist_len = sizeof(hist);
	strcpy(p->card.pin, "1234");
	p->card.voltages = 0x07;
	p->card.voltages_set = false;
	p->card.class_ind = 0;        /* no T=15 group */
	p->card.ifs_request = 0;      /* the card does not ask for its IFSC */
	p->card.nad = 0;              /* no addressing */
}

/* ---- the reader's keys ----------------------------------------------------- */

static int set_level(struct vr_profile *p, const char *v, const char **why)
{
	static const char *const names[] = { "character", "tpdu", "short", "extended" };

	for (unsigned i = 0; i < 4; i++) {
		if (strcmp(v, names[i]) == 0) {
			p->level = (enum vr_level)i;
			return 0;
		}
	}
	*why = "level is character, tpdu, short or extended";
	return -1;
}

static int set_pin_support(struct vr_profile *p, const char *v, const char **why)
{
	static const char *const words[] = { "verify", "modify", NULL };
	static const uint32_t bits[] = { 0x1, 0x2 };
	uint32_t b;

	if (vrp_parse_bits(v, words, bits, &b, why) != 0)
		return -1;
	p->pin_support = (uint8_t)b;
	return 0;
}

static int set_mechanical(struct vr_profile *p, const char *v, const char **why)
{
	static const char *const words[] = { "accept", "eject", "capture", "lock", NULL };
	static const uint32_t bits[] = { 0x1, 0x2, 0x4, 0x8 };

	return vrp_parse_bits(v, words, bits, &p->mechanical, why);
}

/* "none" or LINESxCHARS, e.g. 2x16 (wLcdLayout = lines << 8 | characters). */
static int set_lcd(struct vr_profile *p, const char *v, const char **why)
{
	unsigned long lines;
	uint32_t chars;
	char *end;

	if (strcmp(v, "none") == 0) {
		p->lcd_layout = 0;
		return 0;
	}
	lines = strtoul(v, &end, 10);
	if (end == v || *end != 'x' || lines < 1 || lines > 255) {
		*why = "lcd is none or LINESxCHARACTERS, e.g. 2x16";
		return -1;
	}
	if (vrp_parse_u32(end + 1, 10, 1, 255, &chars, why) != 0)
		return -1;
	p->lcd_layout = (uint16_t)(lines << 8 | chars);
	return 0;
}

static int set_speed(struct vr_profile *p, const char *v, const char **why)
{
	if (strcmp(v, "full") == 0 || strcmp(v, "high") == 0) {
		p->high_speed = v[0] == 'h';
		return 0;
	}
	*why = "speed is full or high";
	return -1;
}

static int set_u16_hex(uint16_t *out, const char *v, const char **why)
{
	uint32_t n;

	if (vrp_parse_u32(v, 16, 0, 0xFFFF, &n, why) != 0)
		return -1;
	*out = (uint16_t)n;
	return 0;
}

static int set_reader_key(struct vr_profile *p, const char *k, const char *v, const char **why)
{
	uint32_t n;

	if (strcmp(k, "vid") == 0)
		return set_u16_hex(&p->vendor_id, v, why);
	if (strcmp(k, "pid") == 0)
		return set_u16_hex(&p->product_id, v, why);
	if (strcmp(k, "bcd") == 0)
		return set_u16_hex(&p->bcd_device, v, why);
	if (strcmp(k, "manufacturer") == 0)
		return vrp_parse_string(v, p->manufacturer, why);
	if (strcmp(k, "product") == 0)
		return vrp_parse_string(v, p->product, why);
	if (strcmp(k, "serial") == 0)
		return vrp_parse_string(v, p->serial, why);
	if (strcmp(k, "level") == 0)
		return set_level(p, v, why);
	if (strcmp(k, "features") == 0) {
		if (vrp_parse_u32(v, 16, 0, 0xFFFFFFFFul, &n, why) != 0)
			return -1;
		if (n & ~FEAT_AUTO_MASK) {
			*why = "features takes only the automatic bits 0x2..0x400 and 0x100000 (the level is set by level=)";
			return -1;
		}
		p->auto_features = n;
		return 0;
	}
	if (strcmp(k, "slots") == 0) {
		if (vrp_parse_u32(v, 10, 1, VR_MAX_SLOTS, &n, why) != 0)
			return -1;
		p->slots = n;
		return 0;
	}
	if (strcmp(k, "busy-slots") == 0)
		return vrp_set_u8(&p->max_busy_slots, v, 1, VR_MAX_SLOTS, why);
	if (strcmp(k, "max-message") == 0)
		return vrp_parse_u32(v, 10, MIN_MESSAGE, MAX_MESSAGE, &p->max_message, why);
	if (strcmp(k, "max-ifsd") == 0)
		return vrp_parse_u32(v, 10, 1, 254, &p->max_ifsd, why);
	if (strcmp(k, "voltages") == 0)
		return vrp_set_voltages(&p->voltages, v, why);
	if (strcmp(k, "protocols") == 0)
		return vrp_set_protocols(&p->protocols, v, why);
	return 1; /* not a key of this group */
}

static int set_timing_key(struct vr_profile *p, const char *k, const char *v, const char **why)
{
	if (strcmp(k, "clock") == 0)
		return vrp_parse_u32(v, 10, 1, 0xFFFFFFFFul, &p->default_clock, why);
	if (strcmp(k, "max-clock") == 0)
		return vrp_parse_u32(v, 10, 1, 0xFFFFFFFFul, &p->max_clock, why);
	if (strcmp(k, "clocks") == 0)
		return vrp_parse_num_list(v, p->clocks, &p->n_clocks, why);
	if (strcmp(k, "rate") == 0)
		return vrp_parse_u32(v, 10, 1, 0xFFFFFFFFul, &p->default_rate, why);
	if (strcmp(k, "max-rate") == 0)
		return vrp_parse_u32(v, 10, 1, 0xFFFFFFFFul, &p->max_rate, why);
	if (strcmp(k, "rates") == 0)
		return vrp_parse_num_list(v, p->rates, &p->n_rates, why);
	if (strcmp(k, "pin-support") == 0)
		return set_pin_support(p, v, why);
	if (strcmp(k, "lcd") == 0)
		return set_lcd(p, v, why);
	if (strcmp(k, "mechanical") == 0)
		return set_mechanical(p, v, why);
	if (strcmp(k, "interrupt") == 0)
		return vrp_parse_bool(v, &p->has_interrupt, why);
	if (strcmp(k, "speed") == 0)
		return set_speed(p, v, why);
	if (strcmp(k, "keypad-pin") == 0)
		return vrp_parse_pin(p->keypad_pin, v, why);
	if (strcmp(k, "keypad-new-pin") == 0)
		return vrp_parse_pin(p->keypad_new_pin, v, why);
	return 1;
}

int vr_profile_set(struct vr_profile *p, const char *key, const char *value, const char **why)
{
	int r;

	*why = NULL;
	if (key == NULL || value == NULL) {
		*why = "missing key or value";
		return -1;
	}
	r = set_reader_key(p, key, value, why);
	if (r == 1)
		r = set_timing_key(p, key, value, why);
	if (r == 1)
		r = vrp_set_card_key(&p->card, key, value, why);
	if (r == 1) {
		*why = "unknown key";
		r = -1;
	}
	if (r != 0)
		vr_err("profile: %s=%s refused: %s", key, value, *why);
	return r;
}

/* ---- checks across fields -------------------------------------------------- */

static int check_list(const uint32_t *l, unsigned n, uint32_t max, const char **why, const char *msg)
{
	for (unsigned i = 0; i < n; i++) {
		if (l[i] > max) {
			*why = msg;
			return -1;
		}
	}
	return 0;
}

int vr_profile_check(const struct vr_profile *p, const char **why)
{
	*why = NULL;
	if (p->slots < 1 || p->slots > VR_MAX_SLOTS)
		*why = "slots must be 1 to 4";
	else if (p->max_busy_slots < 1 || p->max_busy_slots > p->slots)
		*why = "busy-slots must be 1 to slots";
	else if (p->level > VR_LEVEL_EXTENDED_APDU)
		*why = "bad level";
	else if (p->auto_features & ~FEAT_AUTO_MASK)
		*why = "features has bits outside the automatic ones";
	else if (p->max_message < MIN_MESSAGE || p->max_message > MAX_MESSAGE)
		*why = "max-message must be 271 to 65554";
	else if (p->protocols == 0 || (p->protocols & ~3u))
		*why = "protocols must be t0, t1 or both";
	else if (p->voltages == 0 || (p->voltages & ~7u))
		*why = "voltages must be a mix of 5, 3, 1.8";
	else if (p->default_clock == 0 || p->default_clock > p->max_clock)
		*why = "clock must be 1 to max-clock";
	else if (p->default_rate == 0 || p->default_rate > p->max_rate)
		*why = "rate must be 1 to max-rate";
	else if (p->n_clocks > VR_MAX_LIST || p->n_rates > VR_MAX_LIST)
		*why = "too many clocks or rates";
	else if (p->max_ifsd < 1 || p->max_ifsd > 254)
		*why = "max-ifsd must be 1 to 254";
	else if (!p->card.t0 && !p->card.t1)
		*why = "the card needs a protocol";
	else if (p->card.hist_len > VR_HIST_MAX)
		*why = "card-historical too long";
	else if (p->card.relay_port != 0 && p->card.relay_port + p->slots - 1u > 65535u)
		*why = "card-relay: the port of the last slot (PORT + slots - 1) exceeds 65535";
	else if (vrp_check_fidi(p->card.ta1, why) == 0 &&
		 check_list(p->clocks, p->n_clocks, p->max_clock, why, "a clock in clocks exceeds max-clock") == 0)
		check_list(p->rates, p->n_rates, p->max_rate, why, "a rate in rates exceeds max-rate");
	if (*why == NULL)
		vrp_check_card(&p->card, why);
	if (*why != NULL) {
		vr_err("profile refused: %s", *why);
		return -1;
	}
	return 0;
}

/* ---- the class descriptor (CCID 1.1 Table 5.1-1) --------------------------- */

static void put_le16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t level_bits(enum vr_level level)
{
	switch (level) {
	case VR_LEVEL_TPDU:
		return FEAT_LEVEL_TPDU;
	case VR_LEVEL_SHORT_APDU:
		return FEAT_LEVEL_SHORT;
	case VR_LEVEL_EXTENDED_APDU:
		return FEAT_LEVEL_EXTENDED;
	case VR_LEVEL_CHARACTER:
	default:
		return 0;
	}
}

void vr_class_descriptor(const struct vr_profile *p, uint8_t out[VR_CLASS_DESC_LEN])
{
	memset(out, 0, VR_CLASS_DESC_LEN);
	out[0] = VR_CLASS_DESC_LEN;                 /* bLength */
	out[1] = 0x21;                              /* bDescriptorType: CCID functional */
	put_le16(out + 2, 0x0110);                  /* bcdCCID 1.10 */
	out[4] = (uint8_t)(p->slots - 1);           /* bMaxSlotIndex */
	out[5] = p->voltages;                       /* bVoltageSupport */
	put_le32(out + 6, p->protocols);            /* dwProtocols */
	put_le32(out + 10, p->default_clock);       /* dwDefaultClock */
	put_le32(out + 14, p->max_clock);           /* dwMaximumClock */
	out[18] = (uint8_t)p->n_clocks;             /* bNumClockSupported */
	put_le32(out + 19, p->default_rate);        /* dwDataRate */
	put_le32(out + 23, p->max_rate);            /* dwMaxDataRate */
	out[27] = (uint8_t)p->n_rates;              /* bNumDataRatesSupported */
	put_le32(out + 28, p->max_ifsd);            /* dwMaxIFSD */
	put_le32(out + 32, 0);                      /* dwSynchProtocols */
	put_le32(out + 36, p->mechanical);          /* dwMechanical */
	put_le32(out + 40, (p->auto_features & FEAT_AUTO_MASK) | level_bits(p->level));
	put_le32(out + 44, p->max_message);         /* dwMaxCCIDMessageLength */
	out[48] = 0xFF;                             /* bClassGetResponse: echo the APDU's */
	out[49] = 0xFF;                             /* bClassEnvelope: echo */
	put_le16(out + 50, p->lcd_layout);          /* wLcdLayout */
	out[52] = p->pin_support;                   /* bPINSupport */
	out[53] = p->max_busy_slots;                /* bMaxCCIDBusySlots */
}
