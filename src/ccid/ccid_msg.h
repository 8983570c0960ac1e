/* The CCID bulk message format (USB CCID 1.1, chapter 6), written once.
 *
 * Commands (PC_to_RDR, 6.1) are built as a struct ccid_cmd by one function per
 * message, then serialised by ccid_encode(); the bSeq is stamped by ccid_xfer.c.
 * Answers (RDR_to_PC, 6.2) are checked by ccid_decode_answer() into a validated
 * struct ccid_answer before anything acts on them. All multi-byte fields on the
 * wire are little-endian. */
#ifndef CCID_MSG_H
#define CCID_MSG_H

#include <stddef.h>
#include <stdint.h>

#define CCID_HEADER_LEN 10u

/* 6.1: bulk OUT message types */
enum ccid_pc_to_rdr {
	CCID_PC_TO_RDR_SET_PARAMETERS = 0x61,  /* 6.1.7 */
	CCID_PC_TO_RDR_ICC_POWER_ON = 0x62,    /* 6.1.1 */
	CCID_PC_TO_RDR_ICC_POWER_OFF = 0x63,   /* 6.1.2 */
	CCID_PC_TO_RDR_GET_SLOT_STATUS = 0x65, /* 6.1.3 */
	CCID_PC_TO_RDR_SECURE = 0x69,          /* 6.1.11 */
	CCID_PC_TO_RDR_T0_APDU = 0x6A,         /* 6.1.10 */
	CCID_PC_TO_RDR_ESCAPE = 0x6B,          /* 6.1.8 */
	CCID_PC_TO_RDR_GET_PARAMETERS = 0x6C,  /* 6.1.5 */
	CCID_PC_TO_RDR_RESET_PARAMETERS = 0x6D,/* 6.1.6 */
	CCID_PC_TO_RDR_ICC_CLOCK = 0x6E,       /* 6.1.9 */
	CCID_PC_TO_RDR_XFR_BLOCK = 0x6F,       /* 6.1.4 */
	CCID_PC_TO_RDR_MECHANICAL = 0x71,      /* 6.1.12 */
	CCID_PC_TO_RDR_ABORT = 0x72,           /* 6.1.13 */
	CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK = 0x73, /* 6.1.14 */
};

/* 6.2: bulk IN message types */
enum ccid_rdr_to_pc {
	CCID_RDR_TO_PC_DATA_BLOCK = 0x80,      /* 6.2.1 */
	CCID_RDR_TO_PC_SLOT_STATUS = 0x81,     /* 6.2.2 */
	CCID_RDR_TO_PC_PARAMETERS = 0x82,      /* 6.2.3 */
	CCID_RDR_TO_PC_ESCAPE = 0x83,          /* 6.2.4 */
	CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK = 0x84, /* 6.2.5 */
};

/* 6.3: interrupt IN message types */
enum ccid_interrupt_msg {
	CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE = 0x50, /* 6.3.1 */
	CCID_RDR_TO_PC_HARDWARE_ERROR = 0x51,     /* 6.3.2 */
};

/* 6.1.1 bPowerSelect */
enum ccid_power_select {
	CCID_POWER_AUTO = 0,
	CCID_POWER_5V = 1,
	CCID_POWER_3V = 2,
	CCID_POWER_1V8 = 3,
};

/* 6.1.12 bFunction */
enum ccid_mechanical_fn {
	CCID_MECH_ACCEPT = 1,
	CCID_MECH_EJECT = 2,
	CCID_MECH_CAPTURE = 3,
	CCID_MECH_LOCK = 4,
	CCID_MECH_UNLOCK = 5,
};

/* 6.1.9 bClockCommand */
enum ccid_clock_cmd {
	CCID_CLOCK_RESTART = 0,
	CCID_CLOCK_STOP = 1,
};

/* 6.1.4 wLevelParameter (extended APDU level) and 6.2.1 bChainParameter */
enum ccid_chain {
	CCID_CHAIN_WHOLE = 0x00,     /* begins and ends in this message */
	CCID_CHAIN_BEGIN = 0x01,     /* begins, continues in the next */
	CCID_CHAIN_END = 0x02,       /* ends in this message */
	CCID_CHAIN_CONTINUE = 0x03,  /* continues, more follows */
	CCID_CHAIN_NEXT = 0x10,      /* empty: asks for (or expects) the next part */
};

/* 6.2.6 bStatus bits 0-1: bmICCStatus */
enum ccid_icc_status {
	CCID_ICC_ACTIVE = 0,    /* present and active */
	CCID_ICC_INACTIVE = 1,  /* present and inactive */
	CCID_ICC_ABSENT = 2,    /* no ICC present */
};

/* 6.2.6 bStatus bits 6-7: bmCommandStatus */
enum ccid_cmd_status {
	CCID_CMD_PROCESSED = 0,
	CCID_CMD_FAILED = 1,
	CCID_CMD_TIME_EXTENSION = 2, /* bError is the multiplier of the waiting time */
};

/* 6.2.6 Table 6.2-2: bError when the command failed */
enum ccid_error {
	CCID_ERR_CMD_ABORTED = 0xFF,
	CCID_ERR_ICC_MUTE = 0xFE,
	CCID_ERR_XFR_PARITY = 0xFD,
	CCID_ERR_XFR_OVERRUN = 0xFC,
	CCID_ERR_HW_ERROR = 0xFB,
	CCID_ERR_BAD_ATR_TS = 0xF8,
	CCID_ERR_BAD_ATR_TCK = 0xF7,
	CCID_ERR_PROTOCOL_NOT_SUPPORTED = 0xF6,
	CCID_ERR_CLASS_NOT_SUPPORTED = 0xF5,
	CCID_ERR_PROCEDURE_BYTE_CONFLICT = 0xF4,
	CCID_ERR_DEACTIVATED_PROTOCOL = 0xF3,
	CCID_ERR_BUSY_AUTO_SEQUENCE = 0xF2,
	CCID_ERR_PIN_TIMEOUT = 0xF0,
	CCID_ERR_PIN_CANCELLED = 0xEF,
	CCID_ERR_CMD_SLOT_BUSY = 0xE0,
	CCID_ERR_CMD_NOT_SUPPORTED = 0x00,
	/* 0x01..0x7F: index of the offending field of the command */
};

/* 6.1 / 6.2: the 10 bytes every bulk message starts with. */
struct ccid_header {
	uint8_t bMessageType;
	uint32_t dwLength;       /* bytes of abData after the header */
	uint8_t bSlot;
	uint8_t bSeq;
	uint8_t abSpecific[3];   /* bytes 7..9, named per message (see the builders) */
};

/* A command ready to be serialised: header plus abData (not owned). */
struct ccid_cmd {
	struct ccid_header hdr;  /* hdr.bSeq is set by ccid_xfer when sending */
	const uint8_t *data;     /* hdr.dwLength bytes */
};

/* 6.1.7 Table 6.1-5: abProtocolDataStructure for T=0 (5 bytes). */
struct ccid_params_t0 {
	uint8_t bmFindexDindex;
	uint8_t bmTCCKST0;       /* bit 1: inverse convention */
	uint8_t bGuardTimeT0;
	uint8_t bWaitingIntegerT0;
	uint8_t bClockStop;
};
#define CCID_PARAMS_T0_LEN 5u

/* 6.1.7 Table 6.1-6: abProtocolDataStructure for T=1 (7 bytes). */
struct ccid_params_t1 {
	uint8_t bmFindexDindex;
	uint8_t bmTCCKST1;       /* 0x10 | bit 0 CRC | bit 1 inverse */
	uint8_t bGuardTimeT1;
	uint8_t bmWaitingIntegersT1; /* BWI << 4 | CWI */
	uint8_t bClockStop;
	uint8_t bIFSC;
	uint8_t bNadValue;
};
#define CCID_PARAMS_T1_LEN 7u
#define CCID_PARAMS_MAX_LEN CCID_PARAMS_T1_LEN
#define CCID_DATA_RATE_LEN 8u

/* A bulk IN message, validated by ccid_decode_answer(). */
struct ccid_answer {
	struct ccid_header hdr;
	uint8_t bStatus;
	uint8_t bError;
	/* bChainParameter (DataBlock), bClockStatus (SlotStatus), bProtocolNum
	 * (Parameters), RFU otherwise */
	uint8_t bSpecific;
	enum ccid_icc_status icc;
	enum ccid_cmd_status cmd;
	const uint8_t *data;     /* hdr.dwLength bytes (NULL when not kept) */
};

/* ---- commands (6.1): one builder per message ------------------------- */

void ccid_cmd_icc_power_on(struct ccid_cmd *c, uint8_t slot, enum ccid_power_select sel);
void ccid_cmd_icc_power_off(struct ccid_cmd *c, uint8_t slot);
void ccid_cmd_get_slot_status(struct ccid_cmd *c, uint8_t slot);
/* bBWI extends the block waiting time; wLevelParameter: enum ccid_chain at
 * extended APDU level, expected answer length at character level, else 0. */
void ccid_cmd_xfr_block(struct ccid_cmd *c, uint8_t slot, uint8_t bwi, uint16_t level,
			const uint8_t *data, size_t len);
void ccid_cmd_get_parameters(struct ccid_cmd *c, uint8_t slot);
void ccid_cmd_reset_parameters(struct ccid_cmd *c, uint8_t slot);
/* The protocol data block is written into block, which c->data points to. */
void ccid_cmd_set_parameters_t0(struct ccid_cmd *c, uint8_t slot, const struct ccid_params_t0 *p,
				uint8_t block[CCID_PARAMS_T0_LEN]);
void ccid_cmd_set_parameters_t1(struct ccid_cmd *c, uint8_t slot, const struct ccid_params_t1 *p,
				uint8_t block[CCID_PARAMS_T1_LEN]);
void ccid_cmd_escape(struct ccid_cmd *c, uint8_t slot, const uint8_t *data, size_t len);
void ccid_cmd_icc_clock(struct ccid_cmd *c, uint8_t slot, enum ccid_clock_cmd cmd);
void ccid_cmd_t0_apdu(struct ccid_cmd *c, uint8_t slot, uint8_t bm_changes,
		      uint8_t class_get_response, uint8_t class_envelope);
void ccid_cmd_secure(struct ccid_cmd *c, uint8_t slot, uint8_t bwi, uint16_t level,
		     const uint8_t *data, size_t len);
void ccid_cmd_mechanical(struct ccid_cmd *c, uint8_t slot, enum ccid_mechanical_fn fn);
void ccid_cmd_abort(struct ccid_cmd *c, uint8_t slot);
void ccid_cmd_set_data_rate_and_clock(struct ccid_cmd *c, uint8_t slot, uint32_t clock_khz,
				      uint32_t rate_bps, uint8_t block[CCID_DATA_RATE_LEN]);

/* Serialise c (header and data) into out. Returns the message length, or 0 when
 * it does not fit cap. */
size_t ccid_encode(const struct ccid_cmd *c, uint8_t *out, size_t cap);

/* ---- answers (6.2) ---------------------------------------------------- */

enum ccid_decode_result {
	CCID_DECODE_OK = 0,
	CCID_DECODE_SHORT,          /* fewer than 10 bytes */
	CCID_DECODE_UNKNOWN_TYPE,   /* bMessageType is no RDR_to_PC bulk message */
	CCID_DECODE_TRUNCATED,      /* dwLength exceeds the bytes that arrived */
	CCID_DECODE_BAD_ICC_STATUS, /* bmICCStatus 3 (RFU) */
	CCID_DECODE_BAD_CMD_STATUS, /* bmCommandStatus 3 (RFU) */
	CCID_DECODE_BAD_LENGTH,     /* dwLength impossible for this message type */
};

/* The 10-byte header of any CCID bulk message, either direction; only checks the
 * length and that bMessageType is a known bulk message. */
enum ccid_decode_result ccid_decode_header(const uint8_t *buf, size_t len, struct ccid_header *h);
/* A whole RDR_to_PC message: every field checked; out->data points into buf. */
enum ccid_decode_result ccid_decode_answer(const uint8_t *buf, size_t len, struct ccid_answer *out);

/* Parameters answers (6.2.3) and SetParameters blocks, back into structs. */
int ccid_decode_params_t0(const uint8_t *data, size_t len, struct ccid_params_t0 *p);
int ccid_decode_params_t1(const uint8_t *data, size_t len, struct ccid_params_t1 *p);

/* The answer type a command expects (6.1 Table 6.1-1), 0 for an unknown command. */
uint8_t ccid_answer_type_for(uint8_t pc_to_rdr);
int ccid_is_answer_type(uint8_t type);

/* ---- words for logs --------------------------------------------------- */
const char *ccid_msg_type_str(uint8_t type);
const char *ccid_error_str(uint8_t bError);
const char *ccid_icc_status_str(enum ccid_icc_status s);
const char *ccid_cmd_status_str(enum ccid_cmd_status s);
const char *ccid_decode_result_str(enum ccid_decode_result r);

#endif
