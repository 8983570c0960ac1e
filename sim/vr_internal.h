/* Private to the virtual reader core: the reader's state and what its files
 * share.
 *
 * vreader.c       life cycle, the queues, header checks and dispatch
 * vreader_events.c  card events, interrupt messages, class requests
 * vreader_msgs.c  the PC_to_RDR messages other than XfrBlock (CCID 1.1 6.1)
 * vreader_xfr.c   XfrBlock at each exchange level, time extension, PPS
 * vreader_secure.c  Secure: PIN verification and modification
 * vreader_faults.c  faults on demand
 * vcard.c         the card; applet.c the test applet */
#ifndef SIM_VR_INTERNAL_H
#define SIM_VR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcard.h"
#include "vreader.h"

/* CCID 1.1 6.1 and 6.2: message types */
enum {
	PC_ICC_POWER_ON = 0x62,
	PC_ICC_POWER_OFF = 0x63,
	PC_GET_SLOT_STATUS = 0x65,
	PC_XFR_BLOCK = 0x6F,
	PC_GET_PARAMETERS = 0x6C,
	PC_RESET_PARAMETERS = 0x6D,
	PC_SET_PARAMETERS = 0x61,
	PC_ESCAPE = 0x6B,
	PC_ICC_CLOCK = 0x6E,
	PC_T0_APDU = 0x6A,
	PC_SECURE = 0x69,
	PC_MECHANICAL = 0x71,
	PC_ABORT = 0x72,
	PC_SET_RATE_CLOCK = 0x73,
	RDR_DATA_BLOCK = 0x80,
	RDR_SLOT_STATUS = 0x81,
	RDR_PARAMETERS = 0x82,
	RDR_ESCAPE = 0x83,
	RDR_RATE_CLOCK = 0x84,
	RDR_NOTIFY_SLOT_CHANGE = 0x50,
	RDR_HARDWARE_ERROR = 0x51,
};

/* CCID 1.1 6.2.6: bStatus and bError */
#define ICC_ACTIVE 0u
#define ICC_INACTIVE 1u
#define ICC_ABSENT 2u
#define CMD_OK 0u
#define CMD_FAILED 1u
#define CMD_TIME_EXTENSION 2u

#define ERR_CMD_NOT_SUPPORTED 0x00
#define ERR_BAD_LENGTH 1      /* offset of dwLength */
#define ERR_BAD_SLOT 5        /* offset of bSlot */
#define ERR_BAD_BYTE7 7       /* first message-specific byte */
#define ERR_BAD_LEVEL 8       /* wLevelParameter */
#define ERR_BAD_DATA 10       /* abData */
#define ERR_ICC_MUTE 0xFE
#define ERR_PROTOCOL_NOT_SUPPORTED 0xF6
#define ERR_SLOT_BUSY 0xE0

#define CCID_HEADER 10u
/* Extended APDU: 4 + 3 + 65535 + 2 bytes */
#define VR_APDU_MAX 65544u
/* Answers queued and not yet read, beyond which new ones are dropped. */
#define VR_QUEUE_MAX 1024u

struct vr_msg {
	struct vr_msg *next;
	uint8_t slot;        /* index for busy accounting, 0xFF for none */
	size_t len;
	uint8_t data[];
};

struct vr_queue {
	struct vr_msg *head, *tail;
	size_t count;
};

struct vr_slot {
	struct vcard card;
	bool present, powered, clock_stopped, locked;
	uint8_t protocol;             /* 0 T=0, 1 T=1 */
	bool pps_allowed;             /* nothing exchanged since the ATR (ISO 7816-3 9.1) */
	uint8_t params[7];            /* abProtocolDataStructure (6.1.7) */
	uint32_t clock, rate;         /* SetDataRateAndClockFrequency */
	uint8_t last_seq;
	unsigned unread;              /* answers queued for this slot, not read */
	bool abort_requested;         /* ABORT class request seen (5.3.1) */
	uint8_t abort_seq;
	uint8_t t0apdu_changes, class_get_response, class_envelope;
	/* extended APDU level chaining (6.1.4, 6.2.1) */
	uint8_t *cmd;                 /* VR_APDU_MAX */
	size_t cmd_len;
	bool cmd_open;
	uint8_t *rsp;                 /* VCARD_RESPONSE_MAX */
	size_t rsp_len, rsp_off;
	bool rsp_open;
};

struct vreader {
	struct vr_profile p;
	struct vr_slot slot[VR_MAX_SLOTS];
	struct vr_queue bulk, intr;
	unsigned faults[VR_FAULT_COUNT];  /* uses left of each fault */
};

/* One PC_to_RDR message, header parsed (6.1). */
struct vr_cmd {
	uint8_t type;
	uint32_t length;     /* dwLength */
	uint8_t slot, seq;
	uint8_t b7, b8, b9;  /* message-specific bytes */
	const uint8_t *data;
	size_t len;
	struct vr_slot *s;   /* NULL for a bad bSlot */
};

/* vreader.c */
void vr_queue_push(struct vr_queue *q, uint8_t slot, const uint8_t *a, size_t alen, const uint8_t *b,
		   size_t blen);
uint8_t vr_icc_status(const struct vr_slot *s);
/* Queue an answer to c of the type its command calls for. */
void vr_answer(struct vreader *vr, const struct vr_cmd *c, uint8_t cmd_status, uint8_t error,
	       uint8_t specific, const uint8_t *data, size_t len);
/* A failed answer (bmCommandStatus 1) with bError; logs why. */
void vr_fail(struct vreader *vr, const struct vr_cmd *c, uint8_t error, const char *why);
void vr_notify_slot_change(struct vreader *vr, unsigned changed_mask);
void vr_slot_clear_chains(struct vr_slot *s);

/* vreader_msgs.c */
void vr_auto_ifsd(struct vr_slot *s, const struct vr_profile *p);
void vr_default_params(struct vr_slot *s, const struct vr_profile *p, uint8_t protocol);
void vr_handle(struct vreader *vr, const struct vr_cmd *c);

/* vreader_xfr.c */
void vr_xfr_block(struct vreader *vr, const struct vr_cmd *c);

/* vreader_faults.c: true (and one use taken) if fault f is on. */
bool vr_fault_take(struct vreader *vr, enum vr_fault f);
/* Header faults on an answer: the header length to send; may cut *len. */
size_t vr_fault_answer(struct vreader *vr, uint8_t h[CCID_HEADER], size_t *len);
/* Extra time extensions before an XfrBlock answer ("time-storm"). */
unsigned vr_fault_storm(struct vreader *vr);

/* vreader_secure.c */
void vr_secure(struct vreader *vr, const struct vr_cmd *c);

#endif
