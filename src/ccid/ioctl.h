/* Control codes (IFDHControl → SMC_REQ_VENDOR_IOCTL → RDF_IOCTL_VENDOR) and the
 * files that answer them. Private to src/ccid.
 *
 * The numbers applications see:
 *   SCARD_CTL_CODE(c) is 0x42000000 + c in pcsc-lite's form (reader.h).
 *   CM_IOCTL_GET_FEATURE_REQUEST is SCARD_CTL_CODE(3400); Windows' form of the
 *   same request, CTL_CODE(FILE_DEVICE_SMARTCARD 0x31, 3400, METHOD_BUFFERED,
 *   FILE_ANY_ACCESS) = 0x313520, is taken too (applications behind RDP send it).
 *   Each PC/SC v2 part 10 feature F the reader offers is reached through
 *   SCARD_CTL_CODE(3400 + F), the code the feature list announces.
 *   IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE, SCARD_CTL_CODE(1), sends Escape as
 *   libccid's does (same permission as FEATURE_CCID_ESC_COMMAND).
 *   Mechanical functions (CCID 1.1 6.1.12): SCARD_CTL_CODE(3500 + bFunction),
 *   i.e. 3501 accept (swallow), 3502 eject, 3503 capture, 3504 lock,
 *   3505 unlock; no input, no output.
 *
 * Byte orders (PC/SC v2 part 10, pcsc-lite's reader.h): the feature list
 * carries each control code big-endian; TLV property values are little-endian;
 * PIN_VERIFY_STRUCTURE, PIN_MODIFY_STRUCTURE and PIN_PROPERTIES_STRUCTURE are
 * packed C structures, so their multi-byte fields are in the host's order. */
#ifndef CCID_IOCTL_H
#define CCID_IOCTL_H

#include "ccid_reader.h"

#define CCID_SCARD_CTL_CODE(c) (0x42000000u + (uint32_t)(c))
#define CCID_IOCTL_GET_FEATURE_REQUEST CCID_SCARD_CTL_CODE(3400)
#define CCID_IOCTL_GET_FEATURE_REQUEST_WINDOWS 0x313520u
#define CCID_IOCTL_FEATURE(f) CCID_SCARD_CTL_CODE(3400 + (f))
#define CCID_IOCTL_VENDOR_IFD_EXCHANGE CCID_SCARD_CTL_CODE(1)
#define CCID_IOCTL_MECHANICAL_BASE 3500u
#define CCID_IOCTL_MECHANICAL(fn) CCID_SCARD_CTL_CODE(CCID_IOCTL_MECHANICAL_BASE + (fn))

/* PC/SC v2 part 10 feature tags (those this driver offers) */
#define PART10_FEATURE_VERIFY_PIN_DIRECT 0x06u
#define PART10_FEATURE_MODIFY_PIN_DIRECT 0x07u
#define PART10_FEATURE_IFD_PIN_PROPERTIES 0x0Au
#define PART10_FEATURE_GET_TLV_PROPERTIES 0x12u
#define PART10_FEATURE_CCID_ESC_COMMAND 0x13u

/* CCID 1.1 Table 5.1-1 bPINSupport */
#define CCID_PIN_SUPPORT_VERIFY 0x01u
#define CCID_PIN_SUPPORT_MODIFY 0x02u

/* bEntryValidationCondition (CCID 6.1.11.4): 1 maximum size reached,
 * 2 validation key pressed, 4 timeout; all three are what a CCID reader is
 * asked for, so all three are announced. */
#define PART10_ENTRY_VALIDATION_ALL 0x07u

/* ioctl.c: the answer of a control code into io.reply: copied when it fits,
 * else SMC_ERR_BUFFER_TOO_SMALL with io.reply_len the size needed (nothing
 * written). */
smc_status ccid_ioctl_reply(struct smc_ext *ext, const uint8_t *data, size_t len);
/* ioctl.c: a command whose answer's data goes straight into io.reply, as
 * ccid_xfer_transact; io.reply_len is the data's length on success and the
 * size needed on SMC_ERR_BUFFER_TOO_SMALL (nothing written then). */
smc_status ccid_ioctl_transact(struct smc_ext *ext, const struct ccid_cmd *cmd, unsigned timeout_ms,
				struct ccid_answer *a);
/* ioctl.c: applications may send Escape to this reader (CCID_OPTION_ESCAPE_ALLOWED). */
bool ccid_escape_allowed(const struct ccid_reader *r);

/* features.c: CM_IOCTL_GET_FEATURE_REQUEST, FEATURE_IFD_PIN_PROPERTIES,
 * FEATURE_GET_TLV_PROPERTIES. */
smc_status ccid_feature_list(struct smc_ext *ext);
smc_status ccid_pin_properties(struct smc_ext *ext);
smc_status ccid_tlv_properties(struct smc_ext *ext);

/* pinpad.c: FEATURE_VERIFY_PIN_DIRECT and FEATURE_MODIFY_PIN_DIRECT: io.request
 * is the PC/SC PIN_VERIFY_STRUCTURE / PIN_MODIFY_STRUCTURE, io.reply gets the
 * card's response APDU (or 64 00 / 64 01 when the entry timed out / was
 * cancelled, PC/SC part 10 2.5). */
smc_status ccid_pin_verify(struct smc_ext *ext);
smc_status ccid_pin_modify(struct smc_ext *ext);

/* escape.c: io.request as PC_to_RDR_Escape, the RDR_to_PC_Escape data into
 * io.reply; refused unless ccid_escape_allowed(). */
smc_status ccid_escape(struct smc_ext *ext);

/* mechanical.c: PC_to_RDR_Mechanical with bFunction fn, when dwMechanical
 * has the mechanism; the card state follows the answer's bmICCStatus. */
smc_status ccid_mechanical(struct smc_ext *ext, enum ccid_mechanical_fn fn);

#endif
