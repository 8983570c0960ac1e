/* The virtual CCID reader: the device side of USB CCID 1.1, with a virtual card
 * in each slot.
 *
 * It is pure logic with no I/O (except a card relayed to vicc, sim/vicc_relay.h,
 * which vr_bulk_out waits for, bounded): a front end feeds it what the host sent (bulk
 * OUT messages, class requests on ep0) and takes what the device sends back
 * (bulk IN answers, interrupt IN notifications). Two front ends exist:
 *   - sim/ffs.c: a FunctionFS gadget on dummy_hcd, seen by the kernel as a real
 *     USB device (the program smartcrd-vreader);
 *   - sim/inproc.c: behind the driver's ccid_transport vtable, in-process, for
 *     unit tests.
 *
 * Written from the CCID and ISO 7816 specifications on its own: it shares no
 * code with src/ (no codec, no ATR parser, no T=1 engine), so that one
 * misunderstanding cannot hide on both sides. libccid arbitrates. */
#ifndef SIM_VREADER_H
#define SIM_VREADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VR_MAX_SLOTS 4
#define VR_MAX_LIST 16
#define VR_NAME_MAX 64
#define VR_CLASS_DESC_LEN 54

enum vr_level {
	VR_LEVEL_CHARACTER = 0,
	VR_LEVEL_TPDU = 1,
	VR_LEVEL_SHORT_APDU = 2,
	VR_LEVEL_EXTENDED_APDU = 3,
};

/* The virtual card put in every slot (keys card-*, sim/README.md). Added by the
 * core's author: a front end configures cards through vr_profile_set too. */
#define VR_HIST_MAX 15
#define VR_PIN_MAX 8
struct vr_card_profile {
	bool present;             /* a card is in each slot at start */
	bool t0, t1;              /* protocols the ATR offers */
	int ta1;                  /* TA1 (Fi/Di), -1: absent */
	int tc1;                  /* TC1 (extra guard time N), -1: absent */
	int wi;                   /* TC2 (T=0 WI), -1: absent (WI 10) */
	int ta2;                  /* TA2 (specific mode), -1: absent */
	uint8_t ifsc, bwi, cwi;   /* T=1: TA3, TB3 */
	bool crc;                 /* T=1: TC3 bit 0 */
	bool inverse;             /* TS 3F */
	uint8_t hist[VR_HIST_MAX];
	unsigned hist_len;
	char pin[VR_PIN_MAX + 1]; /* the applet's PIN, ASCII digits */
	uint8_t voltages;         /* classes the card answers at: 1 5 V, 2 3 V, 4 1.8 V */
	bool voltages_set;        /* card-voltages was given (checked against card-class) */
	/* card-class: the class indicator in the first TA for T=15 (ISO 7816-3
	 * 8.3), bits 0x01 A (5 V), 0x02 B (3 V), 0x04 C (1.8 V); 0: no T=15 group.
	 * When set, the card answers at these classes only. */
	uint8_t class_ind;
	/* T=1 (ISO 7816-3 11): card-ifs-request, the IFSC the card asks for with
	 * its own S(IFS request) before its first I-block (0: none); card-nad,
	 * the NAD the card expects from the host (SAD b3-b1 the host, DAD b7-b5
	 * the card; 0: no addressing). */
	uint8_t ifs_request;
	uint8_t nad;
	/* card-relay=vicc:HOST:PORT (issue 3, item 4b): the card is a vicc card
	 * reached through sim/vicc_relay.c, slot n listening on relay_port + n;
	 * relay_port 0: the built-in applet. */
	char relay_host[16];      /* IPv4 address, dotted */
	uint16_t relay_port;
};

/* What the reader says of itself (descriptors) and how it behaves. */
struct vr_profile {
	uint16_t vendor_id, product_id, bcd_device;
	char manufacturer[VR_NAME_MAX], product[VR_NAME_MAX], serial[VR_NAME_MAX];
	enum vr_level level;
	uint32_t auto_features;   /* dwFeatures bits 0x2..0x400 and 0x100000 */
	unsigned slots;           /* 1..VR_MAX_SLOTS (bMaxSlotIndex + 1) */
	uint8_t max_busy_slots;   /* bMaxCCIDBusySlots */
	uint32_t max_message;     /* dwMaxCCIDMessageLength */
	uint32_t max_ifsd;        /* dwMaxIFSD */
	uint8_t voltages;         /* bVoltageSupport */
	uint32_t protocols;       /* dwProtocols: bit 0 T=0, bit 1 T=1 */
	uint32_t default_clock, max_clock;         /* kHz */
	uint32_t clocks[VR_MAX_LIST];              /* GET_CLOCK_FREQUENCIES */
	unsigned n_clocks;
	uint32_t default_rate, max_rate;           /* bps */
	uint32_t rates[VR_MAX_LIST];               /* GET_DATA_RATES */
	unsigned n_rates;
	uint8_t pin_support;      /* bPINSupport */
	uint16_t lcd_layout;      /* wLcdLayout */
	uint32_t mechanical;      /* dwMechanical */
	bool has_interrupt;       /* an interrupt IN endpoint */
	bool high_speed;          /* 512-byte bulk packets instead of 64 */
	struct vr_card_profile card;
	/* What the virtual keypad "types" for PC_to_RDR_Secure (added by the
	 * core's author): the PIN, and the new PIN of a modification. */
	char keypad_pin[VR_PIN_MAX + 1], keypad_new_pin[VR_PIN_MAX + 1];
};

/* Defaults: VID/PID 1209:5CCD, short APDU level, one slot, T=0 and T=1,
 * automatic parameters/clock/baud/voltage/PPS/IFSD (dwFeatures 0x4BA),
 * dwMaxCCIDMessageLength 271, interrupt endpoint, full speed; a T=0/T=1 card
 * with ATR 3B 97 96 80 31 FE 45 "virtual" 6A in each slot (sim/README.md). */
void vr_profile_defaults(struct vr_profile *p);
/* One setting "key=value" (the same words as the command line options and the
 * profile file, documented in sim/README.md). 0 ok, -1 with *why set. */
int vr_profile_set(struct vr_profile *p, const char *key, const char *value, const char **why);
/* Checks between fields (e.g. busy-slots <= slots, clocks <= max-clock), once all
 * settings are in. 0 ok, -1 with *why set. vr_new refuses a profile that fails. */
int vr_profile_check(const struct vr_profile *p, const char **why);
/* The 54-byte CCID class descriptor (CCID 1.1 section 5.1) for the profile. */
void vr_class_descriptor(const struct vr_profile *p, uint8_t out[VR_CLASS_DESC_LEN]);

struct vreader;

/* NULL (with a log line) if the profile fails vr_profile_check or memory runs out. */
struct vreader *vr_new(const struct vr_profile *p);
void vr_free(struct vreader *vr);
const struct vr_profile *vr_profile(const struct vreader *vr);

/* The host sent one whole bulk OUT message (a front end reassembles USB
 * packets into messages by dwLength first). The answers it causes are queued. */
void vr_bulk_out(struct vreader *vr, const uint8_t *msg, size_t len);
/* The next queued bulk IN message: its length, 0 if none (copied into buf,
 * cut to cap). */
size_t vr_bulk_in(struct vreader *vr, uint8_t *buf, size_t cap);
/* A class request on ep0 (CCID 1.1 section 5.3). Returns the number of bytes
 * put in data for IN requests, 0 for OUT ones, -1 to stall. */
int vr_control(struct vreader *vr, uint8_t request_type, uint8_t request, uint16_t value,
	       uint8_t *data, uint16_t len);
/* The next queued interrupt IN message (NotifySlotChange, HardwareError). */
size_t vr_interrupt_in(struct vreader *vr, uint8_t *buf, size_t cap);

/* Card in or out of a slot (queues a NotifySlotChange). */
void vr_insert_card(struct vreader *vr, unsigned slot);
void vr_remove_card(struct vreader *vr, unsigned slot);
/* Queue a RDR_to_PC_HardwareError (code 1: overcurrent) for a slot. Added by the
 * core's author for the fault switches of the control channel. */
void vr_hardware_error(struct vreader *vr, unsigned slot, uint8_t code);
/* Faults on demand (sim/README.md), each for its next `count` uses (0 turns it
 * off): "wrong-seq", "wrong-slot", "truncate", "long-length" (on the next bulk
 * IN answers), "mute" (the next commands get no answer), "time-storm" (50
 * more time extensions before the next XfrBlock answers), "t1-bad-edc",
 * "t1-lost" (the card's next T=1 blocks); and two the front ends carry out
 * (vr_front_fault): "zlp" (a zero-length packet before each of the next bulk
 * IN messages), "stall" (bulk IN halted before each of the next bulk IN
 * messages, which go out once the host clears the halt). 0, or -1 with *why
 * for an unknown name. Added by the core's author for the control channel. */
enum vr_fault {
	VR_FAULT_WRONG_SEQ,
	VR_FAULT_WRONG_SLOT,
	VR_FAULT_TRUNCATE,
	VR_FAULT_LONG_LENGTH,
	VR_FAULT_MUTE,
	VR_FAULT_TIME_STORM,
	VR_FAULT_T1_BAD_EDC,
	VR_FAULT_T1_LOST,
	VR_FAULT_ZLP,
	VR_FAULT_STALL,
	VR_FAULT_COUNT
};
int vr_set_fault(struct vreader *vr, const char *name, unsigned count, const char **why);
/* Every fault off ("fault off" of the control socket). */
void vr_faults_off(struct vreader *vr);
/* For a front end about to send a bulk IN message it took from vr_bulk_in:
 * true (and one use taken) when fault f, VR_FAULT_ZLP or VR_FAULT_STALL, is on
 * for it. The core cannot do these itself: they live on the USB pipe, below
 * the messages. false for any other fault. */
bool vr_front_fault(struct vreader *vr, enum vr_fault f);
/* Is a card in the slot (false for a bad slot). */
bool vr_card_present(const struct vreader *vr, unsigned slot);

#endif
