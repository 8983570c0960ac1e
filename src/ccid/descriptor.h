/* The CCID class descriptor (USB CCID 1.1, 5.1, Table 5.1-1), parsed and checked
 * once when a reader is opened. */
#ifndef CCID_DESCRIPTOR_H
#define CCID_DESCRIPTOR_H

#include <stddef.h>
#include <stdint.h>

#include "smclib.h"

#define CCID_DESC_LEN 54u
#define CCID_DESC_TYPE 0x21u

/* Limits on dwMaxCCIDMessageLength: below the minimum not even a header and a
 * short command fit; above the maximum nothing larger than an extended APDU
 * (65544 bytes) plus the header and a little slack can be meant. */
#define CCID_MSG_LEN_MIN 20u
#define CCID_MSG_LEN_MAX (65546u + 10u)

/* bVoltageSupport */
#define CCID_VOLTAGE_5V 0x01u
#define CCID_VOLTAGE_3V 0x02u
#define CCID_VOLTAGE_1V8 0x04u

/* dwFeatures (Table 5.1-1) */
#define CCID_FEAT_AUTO_PARAMS_ATR 0x00000002u
#define CCID_FEAT_AUTO_ACTIVATION 0x00000004u
#define CCID_FEAT_AUTO_VOLTAGE 0x00000008u
#define CCID_FEAT_AUTO_CLOCK 0x00000010u
#define CCID_FEAT_AUTO_BAUD 0x00000020u
#define CCID_FEAT_AUTO_PARAM_NEG 0x00000040u
#define CCID_FEAT_AUTO_PPS 0x00000080u
#define CCID_FEAT_CLOCK_STOP 0x00000100u
#define CCID_FEAT_NAD 0x00000200u
#define CCID_FEAT_AUTO_IFSD 0x00000400u
#define CCID_FEAT_LEVEL_MASK 0x00070000u
#define CCID_FEAT_LEVEL_TPDU 0x00010000u
#define CCID_FEAT_LEVEL_SHORT_APDU 0x00020000u
#define CCID_FEAT_LEVEL_EXT_APDU 0x00040000u
#define CCID_FEAT_USB_WAKEUP 0x00100000u

/* The exchange level, from dwFeatures bits 16-18. */
enum ccid_level {
	CCID_LEVEL_CHARACTER = 0,
	CCID_LEVEL_TPDU,
	CCID_LEVEL_SHORT_APDU,
	CCID_LEVEL_EXTENDED_APDU,
};

/* Table 5.1-1, field by field, plus what was derived from it. */
struct ccid_descriptor {
	uint8_t bLength;
	uint8_t bDescriptorType;
	uint16_t bcdCCID;
	uint8_t bMaxSlotIndex;
	uint8_t bVoltageSupport;
	uint32_t dwProtocols;
	uint32_t dwDefaultClock;        /* kHz */
	uint32_t dwMaximumClock;        /* kHz */
	uint8_t bNumClockSupported;
	uint32_t dwDataRate;            /* bps */
	uint32_t dwMaxDataRate;         /* bps */
	uint8_t bNumDataRatesSupported;
	uint32_t dwMaxIFSD;
	uint32_t dwSynchProtocols;
	uint32_t dwMechanical;
	uint32_t dwFeatures;
	uint32_t dwMaxCCIDMessageLength; /* as read */
	uint8_t bClassGetResponse;
	uint8_t bClassEnvelope;
	uint16_t wLcdLayout;            /* lines << 8 | characters */
	uint8_t bPINSupport;
	uint8_t bMaxCCIDBusySlots;

	/* derived */
	enum ccid_level level;
	unsigned n_slots;               /* bMaxSlotIndex + 1 */
	uint32_t max_msg_len;           /* dwMaxCCIDMessageLength, clamped to sane bounds */
};

/* Parse len bytes of a class descriptor. SMC_ERR_COMM (with a log line) when the
 * descriptor is missing, truncated or malformed. */
smc_status ccid_descriptor_parse(const uint8_t *raw, size_t len, struct ccid_descriptor *out);

/* The descriptor in words, at info level. */
void ccid_descriptor_log(const struct ccid_descriptor *d);

const char *ccid_level_str(enum ccid_level level);

/* The reader sets the protocol parameters itself (from the ATR, or negotiating):
 * no SetParameters is needed. */
int ccid_descriptor_auto_params(const struct ccid_descriptor *d);

#endif
