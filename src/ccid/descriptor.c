/* Parsing and checking the CCID class descriptor (USB CCID 1.1, 5.1). */
#include <string.h>

#include "descriptor.h"
#include "smc_log.h"

/* bMaxSlotIndex: slots are numbered 0..15 at most here (NotifySlotChange and
 * every implementation we know stop far below); more than 4 has never been seen
 * working in practice, so it is logged. */
#define CCID_MAX_SLOT_INDEX 15u
#define CCID_USUAL_SLOTS 4u

/* The largest short APDU (4 + 1 + 255 + 1) plus the message header. */
#define CCID_SHORT_APDU_MSG (10u + 261u)

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Table 5.1-1 offsets */
static void read_fields(const uint8_t *r, struct ccid_descriptor *d)
{
	d->bLength = r[0];
	d->bDescriptorType = r[1];
	d->bcdCCID = le16(r + 2);
	d->bMaxSlotIndex = r[4];
	d->bVoltageSupport = r[5];
	d->dwProtocols = le32(r + 6);
	d->dwDefaultClock = le32(r + 10);
	d->dwMaximumClock = le32(r + 14);
	d->bNumClockSupported = r[18];
	d->dwDataRate = le32(r + 19);
	d->dwMaxDataRate = le32(r + 23);
	d->bNumDataRatesSupported = r[27];
	d->dwMaxIFSD = le32(r + 28);
	d->dwSynchProtocols = le32(r + 32);
	d->dwMechanical = le32(r + 36);
	d->dwFeatures = le32(r + 40);
	d->dwMaxCCIDMessageLength = le32(r + 44);
	d->bClassGetResponse = r[48];
	d->bClassEnvelope = r[49];
	d->wLcdLayout = le16(r + 50);
	d->bPINSupport = r[52];
	d->bMaxCCIDBusySlots = r[53];
}

static smc_status check_header(const uint8_t *raw, size_t len)
{
	if (raw == NULL || len == 0) {
		log_critical("no CCID class descriptor: not a CCID reader");
		return SMC_ERR_COMM;
	}
	if (len < CCID_DESC_LEN) {
		log_critical("CCID class descriptor truncated: %zu bytes, %u expected", len,
			     CCID_DESC_LEN);
		return SMC_ERR_COMM;
	}
	if (raw[0] != CCID_DESC_LEN) {
		log_critical("CCID class descriptor bLength is %u, %u expected", raw[0],
			     CCID_DESC_LEN);
		return SMC_ERR_COMM;
	}
	/* Readers with a vendor-specific interface class (0xFF) carry the same
	 * descriptor type; the transport already accepted such interfaces. */
	if (raw[1] != CCID_DESC_TYPE) {
		log_critical("CCID class descriptor bDescriptorType is 0x%02X, 0x%02X expected",
			     raw[1], CCID_DESC_TYPE);
		return SMC_ERR_COMM;
	}
	return SMC_OK;
}

static smc_status derive_level(struct ccid_descriptor *d)
{
	switch (d->dwFeatures & CCID_FEAT_LEVEL_MASK) {
	case 0:
		d->level = CCID_LEVEL_CHARACTER;
		return SMC_OK;
	case CCID_FEAT_LEVEL_TPDU:
		d->level = CCID_LEVEL_TPDU;
		return SMC_OK;
	case CCID_FEAT_LEVEL_SHORT_APDU:
		d->level = CCID_LEVEL_SHORT_APDU;
		return SMC_OK;
	case CCID_FEAT_LEVEL_EXT_APDU:
		d->level = CCID_LEVEL_EXTENDED_APDU;
		return SMC_OK;
	}
	log_critical("dwFeatures 0x%08X announces several exchange levels at once (bits 16-18: 0x%X)",
		     d->dwFeatures, (d->dwFeatures & CCID_FEAT_LEVEL_MASK) >> 16);
	return SMC_ERR_COMM;
}

static smc_status check_slots(struct ccid_descriptor *d)
{
	if (d->bMaxSlotIndex > CCID_MAX_SLOT_INDEX) {
		log_critical("bMaxSlotIndex %u is out of range (0..%u)", d->bMaxSlotIndex,
			     CCID_MAX_SLOT_INDEX);
		return SMC_ERR_COMM;
	}
	d->n_slots = d->bMaxSlotIndex + 1u;
	if (d->n_slots > CCID_USUAL_SLOTS)
		log_info("reader announces %u slots; more than %u is untested in practice",
			 d->n_slots, CCID_USUAL_SLOTS);
	return SMC_OK;
}

static smc_status check_message_length(struct ccid_descriptor *d)
{
	uint32_t len = d->dwMaxCCIDMessageLength;

	if (len < CCID_MSG_LEN_MIN) {
		log_critical("dwMaxCCIDMessageLength %u is too small (at least %u needed)", len,
			     CCID_MSG_LEN_MIN);
		return SMC_ERR_COMM;
	}
	if (len > CCID_MSG_LEN_MAX) {
		log_info("dwMaxCCIDMessageLength %u is absurdly large; using %u", len,
			 CCID_MSG_LEN_MAX);
		len = CCID_MSG_LEN_MAX;
	}
	if (d->level != CCID_LEVEL_EXTENDED_APDU && len < CCID_SHORT_APDU_MSG)
		log_info("dwMaxCCIDMessageLength %u: commands longer than %u bytes will be refused",
			 len, len - 10u);
	d->max_msg_len = len;
	return SMC_OK;
}

smc_status ccid_descriptor_parse(const uint8_t *raw, size_t len, struct ccid_descriptor *out)
{
	struct ccid_descriptor d;
	smc_status st;

	st = check_header(raw, len);
	if (st != SMC_OK)
		return st;
	memset(&d, 0, sizeof(d));
	read_fields(raw, &d);
	st = derive_level(&d);
	if (st == SMC_OK)
		st = check_slots(&d);
	if (st == SMC_OK)
		st = check_message_length(&d);
	if (st != SMC_OK)
		return st;
	if ((d.dwProtocols & (SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1)) == 0)
		log_info("dwProtocols 0x%08X offers neither T=0 nor T=1", d.dwProtocols);
	if ((d.bVoltageSupport & (CCID_VOLTAGE_5V | CCID_VOLTAGE_3V | CCID_VOLTAGE_1V8)) == 0)
		log_info("bVoltageSupport 0x%02X names no voltage; the reader will choose",
			 d.bVoltageSupport);
	*out = d;
	return SMC_OK;
}

const char *ccid_level_str(enum ccid_level level)
{
	switch (level) {
	case CCID_LEVEL_CHARACTER: return "character";
	case CCID_LEVEL_TPDU: return "TPDU";
	case CCID_LEVEL_SHORT_APDU: return "short APDU";
	case CCID_LEVEL_EXTENDED_APDU: return "short and extended APDU";
	}
	return "?";
}

int ccid_descriptor_auto_params(const struct ccid_descriptor *d)
{
	/* 0x02 (parameters from the ATR) and 0x80 (PPS from the active
	 * parameters) still take SetParameters: with 0x80 it is what makes the
	 * reader negotiate, and after a host PPS it is the only way the reader
	 * learns the new Fi/Di. Only proprietary negotiation (0x40) does all. */
	return (d->dwFeatures & CCID_FEAT_AUTO_PARAM_NEG) != 0;
}

static void log_features(uint32_t f)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{ CCID_FEAT_AUTO_PARAMS_ATR, "automatic parameters from ATR" },
		{ CCID_FEAT_AUTO_ACTIVATION, "automatic activation on insertion" },
		{ CCID_FEAT_AUTO_VOLTAGE, "automatic voltage" },
		{ CCID_FEAT_AUTO_CLOCK, "automatic clock" },
		{ CCID_FEAT_AUTO_BAUD, "automatic baud rate" },
		{ CCID_FEAT_AUTO_PARAM_NEG, "automatic parameter negotiation" },
		{ CCID_FEAT_AUTO_PPS, "automatic PPS" },
		{ CCID_FEAT_CLOCK_STOP, "clock stop" },
		{ CCID_FEAT_NAD, "NAD other than 0" },
		{ CCID_FEAT_AUTO_IFSD, "automatic IFSD exchange" },
		{ CCID_FEAT_USB_WAKEUP, "USB wake-up" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (f & names[i].bit)
			log_info("  feature: %s", names[i].name);
}

void ccid_descriptor_log(const struct ccid_descriptor *d)
{
	log_info("CCID class descriptor: bcdCCID %x.%02x, %u slot(s), %s level",
		 d->bcdCCID >> 8, d->bcdCCID & 0xFF, d->n_slots, ccid_level_str(d->level));
	log_info("  voltage:%s%s%s, protocols:%s%s (0x%08X)",
		 d->bVoltageSupport & CCID_VOLTAGE_5V ? " 5V" : "",
		 d->bVoltageSupport & CCID_VOLTAGE_3V ? " 3V" : "",
		 d->bVoltageSupport & CCID_VOLTAGE_1V8 ? " 1.8V" : "",
		 d->dwProtocols & SMC_PROTOCOL_T0 ? " T=0" : "",
		 d->dwProtocols & SMC_PROTOCOL_T1 ? " T=1" : "", d->dwProtocols);
	log_info("  clock %u kHz (max %u, %u listed), data rate %u bps (max %u, %u listed)",
		 d->dwDefaultClock, d->dwMaximumClock, d->bNumClockSupported, d->dwDataRate,
		 d->dwMaxDataRate, d->bNumDataRatesSupported);
	log_info("  dwMaxIFSD %u, dwSynchProtocols 0x%08X, dwMechanical 0x%08X", d->dwMaxIFSD,
		 d->dwSynchProtocols, d->dwMechanical);
	log_info("  dwFeatures 0x%08X", d->dwFeatures);
	log_features(d->dwFeatures);
	log_info("  dwMaxCCIDMessageLength %u (using %u), bClassGetResponse 0x%02X, bClassEnvelope 0x%02X",
		 d->dwMaxCCIDMessageLength, d->max_msg_len, d->bClassGetResponse,
		 d->bClassEnvelope);
	log_info("  LCD %u x %u, PIN support:%s%s%s, bMaxCCIDBusySlots %u", d->wLcdLayout >> 8,
		 d->wLcdLayout & 0xFF, d->bPINSupport & 1 ? " verify" : "",
		 d->bPINSupport & 2 ? " modify" : "", d->bPINSupport & 3 ? "" : " none",
		 d->bMaxCCIDBusySlots);
}
