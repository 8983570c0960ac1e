/* What the reader offers, as PC/SC v2 part 10 describes it: the feature list
 * (CM_IOCTL_GET_FEATURE_REQUEST), the PIN properties (FEATURE_IFD_PIN_PROPERTIES)
 * and the TLV properties (FEATURE_GET_TLV_PROPERTIES). Everything comes from
 * the class descriptor, the device descriptor and the administrator's options;
 * nothing is sent to the reader. */
#include <string.h>

#include "ioctl.h"
#include "smc_log.h"

/* PC/SC v2 part 10 2.6.14: FEATURE_GET_TLV_PROPERTIES tags */
enum tlv_property {
	PROP_wLcdLayout = 1,
	PROP_bEntryValidationCondition = 2,
	PROP_bTimeOut2 = 3,
	PROP_wLcdMaxCharacters = 4,
	PROP_wLcdMaxLines = 5,
	PROP_bMinPINSize = 6,
	PROP_bMaxPINSize = 7,
	PROP_bPPDUSupport = 9,
	PROP_dwMaxAPDUDataSize = 10,
	PROP_wIdVendor = 11,
	PROP_wIdProduct = 12,
};

/* The CCID class descriptor says nothing of the PIN lengths a keypad takes;
 * until the quirks table knows a reader's own, these are ISO 9564-1's PIN
 * lengths (4 to 12 digits). */
#define PIN_MIN_DIGITS 4u
#define PIN_MAX_DIGITS 12u

/* bTimeOut2 (time after the first key) has no CCID counterpart: 0, as the
 * reader only knows bTimeOut. */
#define PIN_TIMEOUT2 0u


/* dwMaxAPDUDataSize: 0 means short APDUs only (part 10), else the largest Lc/Le. */
#define MAX_EXTENDED_DATA 65536u

/* A feature list entry and a TLV property: at most every one of them once. */
#define FEATURE_ENTRY_LEN 6u
#define FEATURES_MAX 5u
#define PROPERTIES_MAX_LEN 64u

static const struct ccid_descriptor *desc_of(struct smc_ext *ext)
{
	return &ccid_slot_of(ext)->reader->desc;
}

static bool has_pinpad(const struct ccid_descriptor *d)
{
	return (d->bPINSupport & (CCID_PIN_SUPPORT_VERIFY | CCID_PIN_SUPPORT_MODIFY)) != 0;
}

/* ---- CM_IOCTL_GET_FEATURE_REQUEST ------------------------------------------ */

/* PCSC_TLV_STRUCTURE: tag, length 4, the control code big-endian. */
static size_t put_feature(uint8_t *p, uint8_t tag)
{
	uint32_t code = CCID_IOCTL_FEATURE(tag);

	p[0] = tag;
	p[1] = 4;
	p[2] = (uint8_t)(code >> 24);
	p[3] = (uint8_t)(code >> 16);
	p[4] = (uint8_t)(code >> 8);
	p[5] = (uint8_t)code;
	return FEATURE_ENTRY_LEN;
}

smc_status ccid_feature_list(struct smc_ext *ext)
{
	const struct ccid_descriptor *d = desc_of(ext);
	uint8_t out[FEATURE_ENTRY_LEN * FEATURES_MAX];
	size_t n = 0;

	if (d->bPINSupport & CCID_PIN_SUPPORT_VERIFY)
		n += put_feature(out + n, PART10_FEATURE_VERIFY_PIN_DIRECT);
	if (d->bPINSupport & CCID_PIN_SUPPORT_MODIFY)
		n += put_feature(out + n, PART10_FEATURE_MODIFY_PIN_DIRECT);
	if (has_pinpad(d))
		n += put_feature(out + n, PART10_FEATURE_IFD_PIN_PROPERTIES);
	n += put_feature(out + n, PART10_FEATURE_GET_TLV_PROPERTIES);
	if (ccid_escape_allowed(ccid_slot_of(ext)->reader))
		n += put_feature(out + n, PART10_FEATURE_CCID_ESC_COMMAND);
	log_info("slot %u: %zu features (bPINSupport 0x%02X, Escape %s)", ccid_slot_of(ext)->index,
		 n / FEATURE_ENTRY_LEN, d->bPINSupport,
		 ccid_escape_allowed(ccid_slot_of(ext)->reader) ? "allowed" : "not allowed");
	return ccid_ioctl_reply(ext, out, n);
}

/* ---- FEATURE_IFD_PIN_PROPERTIES ------------------------------------------- */

/* PIN_PROPERTIES_STRUCTURE (reader.h): wLcdLayout in the host's order,
 * bEntryValidationCondition, bTimeOut2. */
smc_status ccid_pin_properties(struct smc_ext *ext)
{
	const struct ccid_descriptor *d = desc_of(ext);
	uint8_t out[4];
	uint16_t layout = d->wLcdLayout;

	if (!has_pinpad(d)) {
		log_info("slot %u: FEATURE_IFD_PIN_PROPERTIES: the reader has no PIN pad (bPINSupport 0x%02X)",
			 ccid_slot_of(ext)->index, d->bPINSupport);
		return SMC_ERR_NOT_SUPPORTED;
	}
	memcpy(out, &layout, sizeof(layout));
	out[2] = PART10_ENTRY_VALIDATION_ALL;
	out[3] = PIN_TIMEOUT2;
	return ccid_ioctl_reply(ext, out, sizeof(out));
}

/* ---- FEATURE_GET_TLV_PROPERTIES ------------------------------------------- */

/* One property: tag, length, value little-endian. */
static size_t put_property(uint8_t *p, enum tlv_property tag, uint32_t value, uint8_t len)
{
	p[0] = (uint8_t)tag;
	p[1] = len;
	for (uint8_t i = 0; i < len; i++)
		p[2 + i] = (uint8_t)(value >> (8 * i));
	return 2u + len;
}

smc_status ccid_tlv_properties(struct smc_ext *ext)
{
	const struct ccid_reader *r = ccid_slot_of(ext)->reader;
	const struct ccid_descriptor *d = &r->desc;
	bool extended = ext->reader_caps.max_input > CCID_SHORT_APDU_MAX;
	uint8_t out[PROPERTIES_MAX_LEN];
	size_t n = 0;

	n += put_property(out + n, PROP_wLcdLayout, d->wLcdLayout, 2);
	if (has_pinpad(d)) {
		n += put_property(out + n, PROP_bEntryValidationCondition, PART10_ENTRY_VALIDATION_ALL, 1);
		n += put_property(out + n, PROP_bTimeOut2, PIN_TIMEOUT2, 1);
	}
	if (d->wLcdLayout != 0) {
		/* wLcdLayout: lines << 8 | characters (CCID Table 5.1-1) */
		n += put_property(out + n, PROP_wLcdMaxCharacters, d->wLcdLayout & 0xFFu, 2);
		n += put_property(out + n, PROP_wLcdMaxLines, d->wLcdLayout >> 8, 2);
	}
	if (has_pinpad(d)) {
		n += put_property(out + n, PROP_bMinPINSize, PIN_MIN_DIGITS, 1);
		n += put_property(out + n, PROP_bMaxPINSize, PIN_MAX_DIGITS, 1);
	}
	/* sFirmwareID: CCID has no standard way to ask for it; left out. */
	/* PPDU (FF C2 01 ... over Escape) is the reader firmware's feature: none
	 * known here, so none announced, whatever the Escape option says */
	n += put_property(out + n, PROP_bPPDUSupport, 0, 1);
	n += put_property(out + n, PROP_dwMaxAPDUDataSize, extended ? MAX_EXTENDED_DATA : 0, 4);
	n += put_property(out + n, PROP_wIdVendor, r->tp->info.vendor_id, 2);
	n += put_property(out + n, PROP_wIdProduct, r->tp->info.product_id, 2);
	return ccid_ioctl_reply(ext, out, n);
}
