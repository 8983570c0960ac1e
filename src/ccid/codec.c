/* CCID bulk messages to and from bytes (USB CCID 1.1, chapter 6).
 * Builders fill a struct ccid_cmd; ccid_encode() writes it; ccid_decode_answer()
 * validates an RDR_to_PC message field by field. No I/O and no state here. */
#include <string.h>

#include "ccid_msg.h"

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The common part of every builder: type, slot, data; specific bytes zero (RFU). */
static void cmd_init(struct ccid_cmd *c, uint8_t type, uint8_t slot, const uint8_t *data,
		     size_t len)
{
	memset(c, 0, sizeof(*c));
	c->hdr.bMessageType = type;
	c->hdr.bSlot = slot;
	c->hdr.dwLength = (uint32_t)len;
	c->data = len ? data : NULL;
}

/* 6.1.1: bPowerSelect in byte 7 */
void ccid_cmd_icc_power_on(struct ccid_cmd *c, uint8_t slot, enum ccid_power_select sel)
{
	cmd_init(c, CCID_PC_TO_RDR_ICC_POWER_ON, slot, NULL, 0);
	c->hdr.abSpecific[0] = (uint8_t)sel;
}

/* 6.1.2 */
void ccid_cmd_icc_power_off(struct ccid_cmd *c, uint8_t slot)
{
	cmd_init(c, CCID_PC_TO_RDR_ICC_POWER_OFF, slot, NULL, 0);
}

/* 6.1.3 */
void ccid_cmd_get_slot_status(struct ccid_cmd *c, uint8_t slot)
{
	cmd_init(c, CCID_PC_TO_RDR_GET_SLOT_STATUS, slot, NULL, 0);
}

/* 6.1.4: bBWI in byte 7, wLevelParameter in bytes 8-9 */
void ccid_cmd_xfr_block(struct ccid_cmd *c, uint8_t slot, uint8_t bwi, uint16_t level,
			const uint8_t *data, size_t len)
{
	cmd_init(c, CCID_PC_TO_RDR_XFR_BLOCK, slot, data, len);
	c->hdr.abSpecific[0] = bwi;
	c->hdr.abSpecific[1] = (uint8_t)level;
	c->hdr.abSpecific[2] = (uint8_t)(level >> 8);
}

/* 6.1.5 */
void ccid_cmd_get_parameters(struct ccid_cmd *c, uint8_t slot)
{
	cmd_init(c, CCID_PC_TO_RDR_GET_PARAMETERS, slot, NULL, 0);
}

/* 6.1.6 */
void ccid_cmd_reset_parameters(struct ccid_cmd *c, uint8_t slot)
{
	cmd_init(c, CCID_PC_TO_RDR_RESET_PARAMETERS, slot, NULL, 0);
}

/* 6.1.7: bProtocolNum in byte 7, then Table 6.1-5 */
void ccid_cmd_set_parameters_t0(struct ccid_cmd *c, uint8_t slot, const struct ccid_params_t0 *p,
				uint8_t block[CCID_PARAMS_T0_LEN])
{
	block[0] = p->bmFindexDindex;
	block[1] = p->bmTCCKST0;
	block[2] = p->bGuardTimeT0;
	block[3] = p->bWaitingIntegerT0;
	block[4] = p->bClockStop;
	cmd_init(c, CCID_PC_TO_RDR_SET_PARAMETERS, slot, block, CCID_PARAMS_T0_LEN);
	c->hdr.abSpecific[0] = 0;
}

/* 6.1.7: bProtocolNum 1, then Table 6.1-6 */
void ccid_cmd_set_parameters_t1(struct ccid_cmd *c, uint8_t slot, const struct ccid_params_t1 *p,
				uint8_t block[CCID_PARAMS_T1_LEN])
{
	block[0] = p->bmFindexDindex;
	block[1] = p->bmTCCKST1;
	block[2] = p->bGuardTimeT1;
	block[3] = p->bmWaitingIntegersT1;
	block[4] = p->bClockStop;
	block[5] = p->bIFSC;
	block[6] = p->bNadValue;
	cmd_init(c, CCID_PC_TO_RDR_SET_PARAMETERS, slot, block, CCID_PARAMS_T1_LEN);
	c->hdr.abSpecific[0] = 1;
}

/* 6.1.8 */
void ccid_cmd_escape(struct ccid_cmd *c, uint8_t slot, const uint8_t *data, size_t len)
{
	cmd_init(c, CCID_PC_TO_RDR_ESCAPE, slot, data, len);
}

/* 6.1.9: bClockCommand in byte 7 */
void ccid_cmd_icc_clock(struct ccid_cmd *c, uint8_t slot, enum ccid_clock_cmd cmd)
{
	cmd_init(c, CCID_PC_TO_RDR_ICC_CLOCK, slot, NULL, 0);
	c->hdr.abSpecific[0] = (uint8_t)cmd;
}

/* 6.1.10: bmChanges, bClassGetResponse, bClassEnvelope */
void ccid_cmd_t0_apdu(struct ccid_cmd *c, uint8_t slot, uint8_t bm_changes,
		      uint8_t class_get_response, uint8_t class_envelope)
{
	cmd_init(c, CCID_PC_TO_RDR_T0_APDU, slot, NULL, 0);
	c->hdr.abSpecific[0] = bm_changes;
	c->hdr.abSpecific[1] = class_get_response;
	c->hdr.abSpecific[2] = class_envelope;
}

/* 6.1.11: bBWI, wLevelParameter, then bPINOperation and its structure */
void ccid_cmd_secure(struct ccid_cmd *c, uint8_t slot, uint8_t bwi, uint16_t level,
		     const uint8_t *data, size_t len)
{
	cmd_init(c, CCID_PC_TO_RDR_SECURE, slot, data, len);
	c->hdr.abSpecific[0] = bwi;
	c->hdr.abSpecific[1] = (uint8_t)level;
	c->hdr.abSpecific[2] = (uint8_t)(level >> 8);
}

/* 6.1.12: bFunction in byte 7 */
void ccid_cmd_mechanical(struct ccid_cmd *c, uint8_t slot, enum ccid_mechanical_fn fn)
{
	cmd_init(c, CCID_PC_TO_RDR_MECHANICAL, slot, NULL, 0);
	c->hdr.abSpecific[0] = (uint8_t)fn;
}

/* 6.1.13: carries the bSeq of the command being aborted (set by ccid_xfer). */
void ccid_cmd_abort(struct ccid_cmd *c, uint8_t slot)
{
	cmd_init(c, CCID_PC_TO_RDR_ABORT, slot, NULL, 0);
}

/* 6.1.14: dwClockFrequency (kHz) then dwDataRate (bps) */
void ccid_cmd_set_data_rate_and_clock(struct ccid_cmd *c, uint8_t slot, uint32_t clock_khz,
				      uint32_t rate_bps, uint8_t block[CCID_DATA_RATE_LEN])
{
	put_le32(block, clock_khz);
	put_le32(block + 4, rate_bps);
	cmd_init(c, CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK, slot, block, CCID_DATA_RATE_LEN);
}

size_t ccid_encode(const struct ccid_cmd *c, uint8_t *out, size_t cap)
{
	size_t total = CCID_HEADER_LEN + (size_t)c->hdr.dwLength;

	if (total > cap || (c->hdr.dwLength > 0 && c->data == NULL))
		return 0;
	out[0] = c->hdr.bMessageType;
	put_le32(out + 1, c->hdr.dwLength);
	out[5] = c->hdr.bSlot;
	out[6] = c->hdr.bSeq;
	memcpy(out + 7, c->hdr.abSpecific, 3);
	if (c->hdr.dwLength > 0)
		memcpy(out + CCID_HEADER_LEN, c->data, c->hdr.dwLength);
	return total;
}

/* ---- answers ----------------------------------------------------------- */

int ccid_is_answer_type(uint8_t type)
{
	return type >= CCID_RDR_TO_PC_DATA_BLOCK && type <= CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK;
}

static int is_command_type(uint8_t type)
{
	return ccid_answer_type_for(type) != 0;
}

/* 6.1 Table 6.1-1: which RDR_to_PC message answers each command. */
uint8_t ccid_answer_type_for(uint8_t pc_to_rdr)
{
	switch (pc_to_rdr) {
	case CCID_PC_TO_RDR_ICC_POWER_ON:
	case CCID_PC_TO_RDR_XFR_BLOCK:
	case CCID_PC_TO_RDR_SECURE:
		return CCID_RDR_TO_PC_DATA_BLOCK;
	case CCID_PC_TO_RDR_ICC_POWER_OFF:
	case CCID_PC_TO_RDR_GET_SLOT_STATUS:
	case CCID_PC_TO_RDR_ICC_CLOCK:
	case CCID_PC_TO_RDR_T0_APDU:
	case CCID_PC_TO_RDR_MECHANICAL:
	case CCID_PC_TO_RDR_ABORT:
		return CCID_RDR_TO_PC_SLOT_STATUS;
	case CCID_PC_TO_RDR_GET_PARAMETERS:
	case CCID_PC_TO_RDR_RESET_PARAMETERS:
	case CCID_PC_TO_RDR_SET_PARAMETERS:
		return CCID_RDR_TO_PC_PARAMETERS;
	case CCID_PC_TO_RDR_ESCAPE:
		return CCID_RDR_TO_PC_ESCAPE;
	case CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK:
		return CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK;
	}
	return 0;
}

enum ccid_decode_result ccid_decode_header(const uint8_t *buf, size_t len, struct ccid_header *h)
{
	if (buf == NULL || len < CCID_HEADER_LEN)
		return CCID_DECODE_SHORT;
	if (!ccid_is_answer_type(buf[0]) && !is_command_type(buf[0]))
		return CCID_DECODE_UNKNOWN_TYPE;
	h->bMessageType = buf[0];
	h->dwLength = get_le32(buf + 1);
	h->bSlot = buf[5];
	h->bSeq = buf[6];
	memcpy(h->abSpecific, buf + 7, 3);
	return CCID_DECODE_OK;
}

/* The dwLength each answer type allows (6.2.2 to 6.2.5). Parameters may also come
 * with dwLength 0: a failed SetParameters, and QEMU's reader, which always says 0. */
static int answer_length_ok(const struct ccid_answer *a)
{
	uint32_t len = a->hdr.dwLength;

	switch (a->hdr.bMessageType) {
	case CCID_RDR_TO_PC_SLOT_STATUS:
		return len == 0;
	case CCID_RDR_TO_PC_PARAMETERS:
		if (len == 0)
			return 1;
		if (a->bSpecific == 0)
			return len == CCID_PARAMS_T0_LEN;
		if (a->bSpecific == 1)
			return len == CCID_PARAMS_T1_LEN;
		return 1; /* synchronous protocols: opaque structure */
	case CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK:
		return len == 0 || len == CCID_DATA_RATE_LEN;
	default:
		return 1;
	}
}

enum ccid_decode_result ccid_decode_answer(const uint8_t *buf, size_t len, struct ccid_answer *out)
{
	enum ccid_decode_result r;
	uint8_t icc, cmd;

	memset(out, 0, sizeof(*out));
	r = ccid_decode_header(buf, len, &out->hdr);
	if (r != CCID_DECODE_OK)
		return r;
	if (!ccid_is_answer_type(out->hdr.bMessageType))
		return CCID_DECODE_UNKNOWN_TYPE;
	if (out->hdr.dwLength > len - CCID_HEADER_LEN)
		return CCID_DECODE_TRUNCATED;
	out->bStatus = buf[7];
	out->bError = buf[8];
	out->bSpecific = buf[9];
	/* 6.2.6: bits 2-5 of bStatus are RFU; tolerated, as readers differ. */
	icc = out->bStatus & 0x03;
	cmd = (uint8_t)(out->bStatus >> 6);
	if (icc > CCID_ICC_ABSENT)
		return CCID_DECODE_BAD_ICC_STATUS;
	if (cmd > CCID_CMD_TIME_EXTENSION)
		return CCID_DECODE_BAD_CMD_STATUS;
	out->icc = (enum ccid_icc_status)icc;
	out->cmd = (enum ccid_cmd_status)cmd;
	if (!answer_length_ok(out))
		return CCID_DECODE_BAD_LENGTH;
	out->data = buf + CCID_HEADER_LEN;
	return CCID_DECODE_OK;
}

int ccid_decode_params_t0(const uint8_t *data, size_t len, struct ccid_params_t0 *p)
{
	if (data == NULL || len != CCID_PARAMS_T0_LEN)
		return -1;
	p->bmFindexDindex = data[0];
	p->bmTCCKST0 = data[1];
	p->bGuardTimeT0 = data[2];
	p->bWaitingIntegerT0 = data[3];
	p->bClockStop = data[4];
	return 0;
}

int ccid_decode_params_t1(const uint8_t *data, size_t len, struct ccid_params_t1 *p)
{
	if (data == NULL || len != CCID_PARAMS_T1_LEN)
		return -1;
	p->bmFindexDindex = data[0];
	p->bmTCCKST1 = data[1];
	p->bGuardTimeT1 = data[2];
	p->bmWaitingIntegersT1 = data[3];
	p->bClockStop = data[4];
	p->bIFSC = data[5];
	p->bNadValue = data[6];
	return 0;
}

/* ---- words for logs ------------------------------------------------------ */

const char *ccid_msg_type_str(uint8_t type)
{
	switch (type) {
	case CCID_PC_TO_RDR_SET_PARAMETERS: return "PC_to_RDR_SetParameters";
	case CCID_PC_TO_RDR_ICC_POWER_ON: return "PC_to_RDR_IccPowerOn";
	case CCID_PC_TO_RDR_ICC_POWER_OFF: return "PC_to_RDR_IccPowerOff";
	case CCID_PC_TO_RDR_GET_SLOT_STATUS: return "PC_to_RDR_GetSlotStatus";
	case CCID_PC_TO_RDR_SECURE: return "PC_to_RDR_Secure";
	case CCID_PC_TO_RDR_T0_APDU: return "PC_to_RDR_T0APDU";
	case CCID_PC_TO_RDR_ESCAPE: return "PC_to_RDR_Escape";
	case CCID_PC_TO_RDR_GET_PARAMETERS: return "PC_to_RDR_GetParameters";
	case CCID_PC_TO_RDR_RESET_PARAMETERS: return "PC_to_RDR_ResetParameters";
	case CCID_PC_TO_RDR_ICC_CLOCK: return "PC_to_RDR_IccClock";
	case CCID_PC_TO_RDR_XFR_BLOCK: return "PC_to_RDR_XfrBlock";
	case CCID_PC_TO_RDR_MECHANICAL: return "PC_to_RDR_Mechanical";
	case CCID_PC_TO_RDR_ABORT: return "PC_to_RDR_Abort";
	case CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK: return "PC_to_RDR_SetDataRateAndClockFrequency";
	case CCID_RDR_TO_PC_DATA_BLOCK: return "RDR_to_PC_DataBlock";
	case CCID_RDR_TO_PC_SLOT_STATUS: return "RDR_to_PC_SlotStatus";
	case CCID_RDR_TO_PC_PARAMETERS: return "RDR_to_PC_Parameters";
	case CCID_RDR_TO_PC_ESCAPE: return "RDR_to_PC_Escape";
	case CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK: return "RDR_to_PC_DataRateAndClockFrequency";
	case CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE: return "RDR_to_PC_NotifySlotChange";
	case CCID_RDR_TO_PC_HARDWARE_ERROR: return "RDR_to_PC_HardwareError";
	}
	return "unknown message type";
}

/* 6.2.6 Table 6.2-2 */
const char *ccid_error_str(uint8_t bError)
{
	switch (bError) {
	case CCID_ERR_CMD_ABORTED: return "command aborted";
	case CCID_ERR_ICC_MUTE: return "ICC mute (no answer from the card)";
	case CCID_ERR_XFR_PARITY: return "parity error";
	case CCID_ERR_XFR_OVERRUN: return "buffer overrun";
	case CCID_ERR_HW_ERROR: return "hardware error";
	case CCID_ERR_BAD_ATR_TS: return "bad ATR TS";
	case CCID_ERR_BAD_ATR_TCK: return "bad ATR TCK";
	case CCID_ERR_PROTOCOL_NOT_SUPPORTED: return "ICC protocol not supported";
	case CCID_ERR_CLASS_NOT_SUPPORTED: return "ICC class not supported";
	case CCID_ERR_PROCEDURE_BYTE_CONFLICT: return "procedure byte conflict";
	case CCID_ERR_DEACTIVATED_PROTOCOL: return "deactivated protocol";
	case CCID_ERR_BUSY_AUTO_SEQUENCE: return "busy with automatic sequence";
	case CCID_ERR_PIN_TIMEOUT: return "PIN entry timeout";
	case CCID_ERR_PIN_CANCELLED: return "PIN entry cancelled";
	case CCID_ERR_CMD_SLOT_BUSY: return "slot busy";
	case CCID_ERR_CMD_NOT_SUPPORTED: return "command not supported";
	}
	if (bError >= 0x01 && bError <= 0x7F)
		return "bad value in the command field at this offset";
	return "RFU error code";
}

const char *ccid_icc_status_str(enum ccid_icc_status s)
{
	switch (s) {
	case CCID_ICC_ACTIVE: return "present and active";
	case CCID_ICC_INACTIVE: return "present and inactive";
	case CCID_ICC_ABSENT: return "absent";
	}
	return "RFU";
}

const char *ccid_cmd_status_str(enum ccid_cmd_status s)
{
	switch (s) {
	case CCID_CMD_PROCESSED: return "processed";
	case CCID_CMD_FAILED: return "failed";
	case CCID_CMD_TIME_EXTENSION: return "time extension requested";
	}
	return "RFU";
}

const char *ccid_decode_result_str(enum ccid_decode_result r)
{
	switch (r) {
	case CCID_DECODE_OK: return "ok";
	case CCID_DECODE_SHORT: return "shorter than the 10-byte header";
	case CCID_DECODE_UNKNOWN_TYPE: return "unknown message type";
	case CCID_DECODE_TRUNCATED: return "dwLength larger than the bytes received";
	case CCID_DECODE_BAD_ICC_STATUS: return "bmICCStatus is RFU (3)";
	case CCID_DECODE_BAD_CMD_STATUS: return "bmCommandStatus is RFU (3)";
	case CCID_DECODE_BAD_LENGTH: return "dwLength impossible for this message type";
	}
	return "?";
}
