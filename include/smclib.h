/* smclib: the reader-independent smart card library.
 *
 * The counterpart of Windows' smclib. One struct smc_ext exists per reader slot.
 * The pcsc-lite boundary (ifdhandler.c) turns each IFDH call into a request for
 * smc_device_control(); the dispatcher checks the card state, answers attributes
 * itself, and calls the reader driver through ext->reader_fn[RDF_*] for the rest.
 * Everything a callback needs (the request, the reply buffer, the minor code) is
 * in ext->io, as in SMARTCARD_EXTENSION.
 *
 * Numbers (card states, RDF indices, SCARD_ATTR_* tags) are the Windows ones;
 * ifdhandler.c translates states and protocols to pcsc-lite's at the boundary. */
#ifndef SMCLIB_H
#define SMCLIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- status ---------------------------------------------------------- */

enum smc_status {
	SMC_OK = 0,
	SMC_ERR_NOT_SUPPORTED,    /* request or callback not available */
	SMC_ERR_INVALID_PARAM,    /* malformed request from the application */
	SMC_ERR_NO_MEDIA,         /* no card in the slot */
	SMC_ERR_INVALID_STATE,    /* card state does not allow the request */
	SMC_ERR_PROTOCOL,         /* protocol not offered / not selected */
	SMC_ERR_BAD_ATR,          /* ATR malformed or TCK wrong */
	SMC_ERR_COMM,             /* device answered something malformed or an error */
	SMC_ERR_TIMEOUT,          /* no answer within the bound */
	SMC_ERR_NO_DEVICE,        /* the reader is gone */
	SMC_ERR_BUFFER_TOO_SMALL, /* reply does not fit the caller's buffer */
	SMC_ERR_POWER,            /* card did not answer to reset */
	SMC_ERR_CANCELLED,
	SMC_ERR_NO_MEMORY,
	SMC_MORE_PROCESSING,      /* not an error: a protocol engine has more to send */
};
typedef enum smc_status smc_status;

const char *smc_status_str(smc_status st);

/* ---- Windows numbers ------------------------------------------------- */

enum smc_card_state {
	SMC_STATE_UNKNOWN = 0,
	SMC_STATE_ABSENT = 1,
	SMC_STATE_PRESENT = 2,
	SMC_STATE_SWALLOWED = 3,
	SMC_STATE_POWERED = 4,
	SMC_STATE_NEGOTIABLE = 5,
	SMC_STATE_SPECIFIC = 6,
};

enum smc_rdf {
	RDF_CARD_POWER = 0,
	RDF_TRANSMIT = 1,
	RDF_CARD_EJECT = 2,
	RDF_READER_SWALLOW = 3,
	RDF_CARD_TRACKING = 4,
	RDF_SET_PROTOCOL = 5,
	RDF_IOCTL_VENDOR = 8,
	RDF_ATR_PARSE = 9,
	RDF_COUNT = 16,
};

/* Protocol masks (same bits in Windows and pcsc-lite for T=0 and T=1). */
#define SMC_PROTOCOL_T0 0x0001u
#define SMC_PROTOCOL_T1 0x0002u

/* io.minor for RDF_CARD_POWER */
enum smc_power {
	SMC_POWER_DOWN = 0,
	SMC_POWER_COLD = 1,
	SMC_POWER_WARM = 2,
};

/* io.minor for RDF_CARD_TRACKING.
 * REFRESH: look at the slot now and set ext->reader_caps.current_state.
 * PRESENT / ABSENT (Windows' IS_PRESENT / IS_ABSENT tracking): arm tracking
 * for SMC_REQ_WAIT_CHANGE and return at once: the driver calls
 * smc_complete_card_tracking() at the slot's next card event, or right away
 * if it holds one that no REFRESH has taken yet. SMC_ERR_NOT_SUPPORTED when
 * the reader cannot signal events (no interrupt endpoint). */
enum smc_tracking {
	SMC_TRACK_REFRESH = 0,
	SMC_TRACK_PRESENT = 1,   /* the caller waits for a card */
	SMC_TRACK_ABSENT = 2,    /* the caller waits for its card to go (removed or swapped) */
};

/* minor of SMC_REQ_IS_PRESENT. A REPORT is what a caller that tracks cards
 * by comparing presence (pcscd) is told: a card that left since the last
 * report while a card is in now (swapped, or pulled and put back) is
 * reported absent once, then present; SMC_REQ_WAIT_CHANGE waits for a change
 * from the last report. A LOOK just says whether a card is in. */
enum smc_presence {
	SMC_PRESENCE_LOOK = 0,
	SMC_PRESENCE_REPORT = 1,
};

/* The card state's name, for logs ("ABSENT", "SPECIFIC" ...). */
const char *smc_state_str(enum smc_card_state state);

/* ---- the extension --------------------------------------------------- */

#define SMC_ATR_MAX 33
#define SMC_HIST_MAX 15
#define SMC_ATR_GROUPS 16
#define SMC_NAME_MAX 64

struct smc_vendor_attr {
	char vendor_name[SMC_NAME_MAX];
	char ifd_type[SMC_NAME_MAX];
	uint32_t ifd_version;  /* 0xMMmmbbbb, from bcdDevice */
	char serial_no[SMC_NAME_MAX];
	uint32_t unit_no;
};

/* One group of interface bytes: TAi, TBi, TCi, TDi (i counted from 1). */
struct smc_atr_group {
	uint8_t ta, tb, tc, td;
	uint8_t present; /* SMC_TA | SMC_TB | SMC_TC | SMC_TD */
};
#define SMC_TA 0x1
#define SMC_TB 0x2
#define SMC_TC 0x4
#define SMC_TD 0x8

struct smc_card_caps {
	uint8_t atr[SMC_ATR_MAX];
	size_t atr_len;
	uint8_t hist[SMC_HIST_MAX];
	size_t hist_len;
	bool inverse;                /* TS was 0x3F */
	struct smc_atr_group group[SMC_ATR_GROUPS];
	unsigned n_groups;
	bool tck_present;
	uint8_t ta1;                 /* Fi/Di code, 0x11 when absent */
	uint32_t fi, di;             /* from TA1 (defaults 372 and 1) */
	uint32_t fmax_khz;           /* from TA1 */
	uint8_t n;                   /* extra guard time from TC1 (255: minimum) */
	uint32_t protocols;          /* offered: SMC_PROTOCOL_* mask */
	uint32_t first_protocol;     /* protocol of TD1 (or T=0) */
	bool specific_mode;          /* TA2 present */
	bool specific_implicit;      /* TA2 bit 5: parameters implicit */
	uint32_t specific_protocol;  /* SMC_PROTOCOL_* from TA2 */
	uint8_t class_indicator;     /* TA of the first T=15 group, 0 if absent */
	uint32_t selected_protocol;  /* SMC_PROTOCOL_*, 0 before SET_PROTOCOL */
	struct {
		uint8_t wi;          /* TC2, default 10 */
		uint32_t wt_ms;      /* work waiting time at the current clock */
	} t0;
	struct {
		uint8_t ifsc;        /* default 32 */
		uint8_t ifsd;
		uint8_t cwi, bwi;    /* defaults 13 and 4 */
		bool crc;            /* EDC: CRC when TC of first T=1 group has bit 0 */
		uint32_t cwt_ms, bwt_ms;
	} t1;
	struct {
		uint8_t fl, dl;      /* the Fi/Di code negotiated (TA1 nibbles) */
		bool done;
	} pts;
};

struct smc_reader_caps {
	uint32_t protocols;          /* SMC_PROTOCOL_* mask the reader supports */
	uint32_t reader_type;        /* SCARD_READER_TYPE_USB */
	uint32_t mechanical;         /* CCID dwMechanical */
	enum smc_card_state current_state;
	uint32_t channel;            /* SCARD_ATTR_CHANNEL_ID: 0x0020 << 16 | bus << 8 | addr */
	uint32_t clk_default_khz, clk_max_khz;
	uint32_t rate_default, rate_max;
	uint32_t max_ifsd;
	uint32_t max_input;          /* SCARD_ATTR_MAXINPUT: largest APDU accepted */
	bool card_events;            /* the reader signals insertions and removals itself
				      * (CCID interrupt endpoint): SMC_REQ_WAIT_CHANGE works */
};

/* The request of the moment and its reply buffer. */
struct smc_io {
	const uint8_t *request;
	size_t request_len;
	uint8_t *reply;
	size_t reply_cap;
	size_t reply_len;            /* set by whoever fills reply */
	uint32_t minor;              /* enum smc_power, protocol mask, enum smc_tracking */
	uint32_t ioctl_code;         /* RDF_IOCTL_VENDOR: the control code */
};

/* ---- T=1 (ISO/IEC 7816-3:2006 section 11) ---------------------------- */

/* A block: NAD PCB LEN, up to 254 information bytes, LRC (1) or CRC (2). */
#define SMC_T1_PROLOGUE_LEN 3
#define SMC_T1_INF_MAX 254
#define SMC_T1_BLOCK_MAX (SMC_T1_PROLOGUE_LEN + SMC_T1_INF_MAX + 2)

/* The T=1 engine's state for one slot. smc_t1_init() sets it up after T=1 is
 * selected; the fields below "exchange" belong to the engine alone. */
struct smc_t1_state {
	uint8_t ifsc;                /* largest INF the card accepts */
	uint8_t ifsd;                /* largest INF the reader accepts */
	uint8_t ns;                  /* N(S) of our next I-block */
	uint8_t nr;                  /* N(S) expected in the card's next I-block */
	uint8_t nad;                 /* NAD of our blocks (SAD/DAD), 0 normally */
	bool crc;                    /* EDC is CRC (else LRC) */
	bool ifsd_pending;           /* an S(IFS request) goes first */
	bool running;                /* set up by smc_t1_init() for the card now powered:
				      * ifsc/ifsd above are the ones in force */
	bool resynch_pending;        /* the last exchange ended in error with the two sides
				      * possibly out of step (the card may have taken our
				      * I-block, its answer lost): the next APDU starts
				      * with S(RESYNCH request) */
	bool needs_reset;            /* S(RESYNCH request) failed 3 times: only a reset of
				      * the card brings it back (11.6.3.2) */
	/* the block to send now, built by smc_t1_request() */
	uint8_t block[SMC_T1_BLOCK_MAX];
	size_t block_len;
	uint8_t wtx;                 /* BWT multiplier for the answer to this block, 1 normally */
	/* exchange (engine-private) */
	int phase;                   /* what the engine waits for (enum t1_phase in t1.c) */
	int next;                    /* what smc_t1_request() builds (enum t1_next in t1.c) */
	size_t sent, sending;        /* request bytes acknowledged / in the I-block in flight */
	bool more;                   /* the I-block in flight has M = 1 */
	size_t received;             /* response bytes the card sent (stored while they fit) */
	size_t blocks_in;            /* card I-blocks taken in this exchange */
	uint8_t r_error;             /* error bits of the R-block to send */
	uint8_t s_pcb, s_value;      /* the S-block to send, its INF byte (IFS, WTX) */
	uint8_t ifsd_want;           /* IFSD smc_t1_init() was asked to negotiate, 0 if none */
	unsigned retries;            /* R-blocks/retransmissions since the last progress */
	unsigned s_tries;            /* sends of the S(... request) in flight */
	unsigned stalls;             /* card S(WTX/IFS request)s since the last progress */
	unsigned long steps;         /* card answers in this exchange */
	smc_status pending_error;    /* what the exchange ends with after a RESYNCH/ABORT */
	smc_status fail;             /* the last failure: SMC_ERR_TIMEOUT (mute) or _COMM */
	bool overflow;               /* the response outgrew io.reply */
	bool nad_logged;             /* a foreign NAD was logged in this exchange */
};

/* Card tracking (SMC_REQ_IS_PRESENT, SMC_REQ_WAIT_CHANGE). Zero after smc_ext_init. */
struct smc_track {
	/* Cards the reader driver saw leave the slot (a removal, a card found
	 * unpowered after we powered it, a swap the reader reported). Written
	 * by the driver's callbacks, under ext->lock. */
	uint32_t removals;
	/* smclib, under ext->lock: the last IS_PRESENT report, and removals then.
	 * A card present again with removals moved on is reported absent once. */
	bool reported_present;
	uint32_t reported_removals;
	/* smclib, under ext->lock: how the last look at the slot (the driver's
	 * SMC_TRACK_REFRESH) ended, SMC_OK if it worked. While it failed, the
	 * state says nothing about the card and the driver's events may not have
	 * been taken: WAIT_CHANGE fails at once (SMC_ERR_COMM, or
	 * SMC_ERR_NO_DEVICE when the look found the reader gone) instead of
	 * reporting a change that a look cannot confirm, so that a caller which
	 * looks again after each change does not loop at full speed; it pauses
	 * and looks again. */
	smc_status last_look;
	/* smclib's tracking lock (one for all extensions, src/smclib/tracking.c) */
	uint32_t completions;        /* smc_complete_card_tracking() calls */
	smc_status result;           /* the status of the last one */
	unsigned waiters;            /* threads in SMC_REQ_WAIT_CHANGE */
	bool cancel_pending;         /* SMC_REQ_CANCEL_WAIT not yet taken by a wait */
	bool closed;                 /* smc_tracking_close(): no more waits */
};

struct smc_ext;
typedef smc_status (*smc_rdf_fn)(struct smc_ext *ext);

struct smc_ext {
	struct smc_vendor_attr vendor_attr;
	smc_rdf_fn reader_fn[RDF_COUNT];
	struct smc_card_caps card_caps;
	struct smc_reader_caps reader_caps;
	struct smc_io io;
	struct smc_t1_state t1;
	void *reader_ext;            /* the reader driver's private data */
	pthread_mutex_t lock;        /* serialises the callbacks of this slot */
	struct smc_track track;
};

/* ---- requests --------------------------------------------------------- */

enum smc_request {
	SMC_REQ_POWER,           /* io.minor = enum smc_power; ATR stays in card_caps */
	SMC_REQ_SET_PROTOCOL,    /* io.minor = protocol mask wanted; selected one in card_caps */
	SMC_REQ_TRANSMIT,        /* io.request = APDU, io.reply = answer buffer */
	SMC_REQ_IS_PRESENT,      /* SMC_OK if a card is in, SMC_ERR_NO_MEDIA if not;
				  * io.minor = enum smc_presence */
	SMC_REQ_GET_ATTRIBUTE,   /* io.minor = SCARD_ATTR_* tag, value into io.reply */
	SMC_REQ_EJECT,
	SMC_REQ_SWALLOW,
	SMC_REQ_VENDOR_IOCTL,    /* io.ioctl_code, io.request, io.reply */
	/* minor = timeout in ms. Returns SMC_OK once the slot may differ from
	 * the last IS_PRESENT report (a card in after "absent"; the card gone
	 * or swapped after "present"), at once if it already does;
	 * SMC_ERR_TIMEOUT, SMC_ERR_CANCELLED (CANCEL_WAIT), SMC_ERR_NO_DEVICE,
	 * SMC_ERR_NOT_SUPPORTED (no card events: poll IS_PRESENT instead),
	 * SMC_ERR_COMM at once while the last look at the slot failed (pause,
	 * then IS_PRESENT again; struct smc_track, last_look). The slot lock is
	 * held only to arm the driver, never while waiting. */
	SMC_REQ_WAIT_CHANGE,
	/* The slot's WAIT_CHANGE returns SMC_ERR_CANCELLED now; with none
	 * running, the next one does (a stop racing a wait is never lost).
	 * Takes no slot lock. */
	SMC_REQ_CANCEL_WAIT,
};

/* Set up an extension: zeroes it, initialises the lock, state UNKNOWN. */
smc_status smc_ext_init(struct smc_ext *ext);
void smc_ext_destroy(struct smc_ext *ext);

/* The dispatcher. Takes ext->lock around the callbacks. The caller fills ext->io
 * through the arguments below; the reply length comes back in *reply_len. On
 * SMC_ERR_BUFFER_TOO_SMALL, *reply_len is the size that was needed (nothing was
 * written past reply_cap), so a caller can ask again with a larger buffer. */
smc_status smc_device_control(struct smc_ext *ext, enum smc_request req, uint32_t minor,
			      const uint8_t *request, size_t request_len,
			      uint8_t *reply, size_t reply_cap, size_t *reply_len);

/* ---- helpers for reader drivers ------------------------------------- */

/* Parse ext->card_caps.atr[0..atr_len) into card_caps, set the state to
 * NEGOTIABLE (or SPECIFIC in specific mode). SMC_ERR_BAD_ATR if malformed. */
smc_status smc_update_card_capabilities(struct smc_ext *ext);

/* Parse an ATR into caps without touching any state (pure; used by the above). */
smc_status smc_atr_parse(const uint8_t *atr, size_t atr_len, struct smc_card_caps *caps);

/* Card tracking, for reader drivers: the slot's card changed (SMC_OK), or the
 * reader is gone (SMC_ERR_NO_DEVICE) or cannot report events any more
 * (SMC_ERR_COMM): a SMC_REQ_WAIT_CHANGE in progress returns with status.
 * Any thread, no lock needed (ext->lock may be held). */
void smc_complete_card_tracking(struct smc_ext *ext, smc_status status);
/* Before smc_ext_destroy while other threads may still call in: every
 * WAIT_CHANGE returns SMC_ERR_NO_DEVICE, now and later; returns once no
 * thread waits any more. Idempotent. */
void smc_tracking_close(struct smc_ext *ext);

/* Clear card capabilities (on power down, removal, before power up). */
void smc_card_caps_clear(struct smc_card_caps *caps);

/* T=0 at TPDU level: APDU (cases 1, 2, 3, 4 short; extended ones that fit a short
 * TPDU) to a TPDU. No automatic GET RESPONSE: the card's 61xx goes back to the
 * application as is. */
smc_status smc_t0_request(const uint8_t *apdu, size_t apdu_len, uint8_t *tpdu, size_t tpdu_cap,
			  size_t *tpdu_len);
/* Check a T=0 TPDU answer (data + SW1 SW2) for the APDU that was sent. */
smc_status smc_t0_reply(const uint8_t *apdu, size_t apdu_len, const uint8_t *reply, size_t reply_len);

/* T=0 at character level (ISO/IEC 7816-3:2006 10.3.3): for readers that only
 * move bytes on the I/O line, the host runs the procedure bytes. The engine
 * builds the TPDU with smc_t0_request() and says, step by step, which bytes go
 * to the card and how many to read back (data, then one procedure byte or SW2):
 *
 *     st = smc_t0_char_start(&x, apdu, apdu_len, reply, reply_cap);
 *     while (st == SMC_OK) {
 *         smc_t0_char_next(&x, &send, &send_len, &read_len);
 *         got = send the bytes, read read_len bytes back;
 *         st = smc_t0_char_feed(&x, got, got_len);
 *         if (st == SMC_MORE_PROCESSING) st = SMC_OK; else break;
 *     }
 *
 * feed() returns SMC_OK when reply holds the data and SW1 SW2 (x.reply_len
 * bytes), SMC_MORE_PROCESSING for another step, SMC_ERR_BUFFER_TOO_SMALL when
 * the answer outgrew reply_cap (the exchange was still run to its end, so the
 * card is in step; x.reply_len is the size needed), SMC_ERR_COMM for a
 * malformed procedure byte, data beyond P3, or more than
 * SMC_T0_CHAR_MAX_IDLE procedure bytes that moved no data (NULLs). As at TPDU
 * level there is no automatic GET RESPONSE: 61xx and 6Cxx end the exchange. */
#define SMC_T0_CHAR_MAX_IDLE 100000u
#define SMC_T0_TPDU_MAX (5u + 255u)

struct smc_t0_char {
	uint8_t tpdu[SMC_T0_TPDU_MAX];  /* CLA INS P1 P2 P3 and the command data */
	size_t tpdu_len;
	size_t sent;                    /* tpdu bytes gone to the card */
	size_t left;                    /* response data bytes the card may still send */
	uint8_t *reply;
	size_t reply_cap;
	size_t reply_len;               /* data + SW1 SW2 once done (or the size needed) */
	/* engine-private */
	int phase;
	size_t send_off, send_len;      /* the bytes of tpdu the next step sends */
	size_t data_len;                /* response data bytes before the step's last byte */
	size_t data_got;                /* response data bytes read so far */
	uint8_t sw1;
	unsigned idle;                  /* procedure bytes that moved no data */
};

/* Start an exchange for the APDU; SMC_OK or the error of smc_t0_request(). */
smc_status smc_t0_char_start(struct smc_t0_char *x, const uint8_t *apdu, size_t apdu_len,
			     uint8_t *reply, size_t reply_cap);
/* The next step: send_len bytes at *send (maybe 0), then read_len bytes (>= 1,
 * at most 257). SMC_ERR_INVALID_STATE when the exchange is over. */
smc_status smc_t0_char_next(struct smc_t0_char *x, const uint8_t **send, size_t *send_len,
			    size_t *read_len);
/* The bytes the card sent in answer to the step (exactly read_len of them). */
smc_status smc_t0_char_feed(struct smc_t0_char *x, const uint8_t *got, size_t got_len);

/* T=1, request/reply style as in smclib. After SET_PROTOCOL has chosen T=1 the
 * reader driver calls smc_t1_init() once (IFSC and EDC come from card_caps;
 * ifsd > 0 queues an S(IFS request) for that IFSD before the next exchange,
 * 0 when the reader negotiates IFSD itself: the card's blocks may then carry
 * up to reader_caps.max_ifsd bytes, 254 if 0). For each APDU in io.request:
 *
 *     st = smc_t1_request(ext);          // ext->t1.block / block_len to send,
 *     while (st == SMC_OK) {             // ext->t1.wtx the BWT multiplier
 *         rx = send the block, receive the card's block;
 *         st = smc_t1_reply(ext, rx_status, rx, rx_len);
 *         if (st == SMC_MORE_PROCESSING) st = smc_t1_request(ext);
 *         else break;
 *     }
 *
 * smc_t1_reply() takes rx_status SMC_OK with the card's block (EDC included),
 * or the reason no usable block came (SMC_ERR_TIMEOUT: the card was mute;
 * SMC_ERR_COMM: parity or framing error); the engine then asks again with an
 * R-block, retransmits, and RESYNCHs within the bounds of 7816-3 11.6.3.
 * It returns SMC_OK when the response APDU is complete in io.reply
 * (io.reply_len), SMC_MORE_PROCESSING when there is another block to send, or
 * the error that ended the exchange (the engine is then ready for the next
 * APDU). A queued S(IFS request) goes before the first block of the next APDU;
 * if the card never answers it, IFSD stays 32 and the APDU goes on. On
 * SMC_ERR_BUFFER_TOO_SMALL, io.reply_len is the number of response bytes the
 * card sent before its chain ended or was aborted (nothing past reply_cap is
 * written).
 *
 * An exchange that ends in error after a block went out, unless the sequence
 * is known good again (a RESYNCH the card answered, a confirmed S(ABORT) of
 * ours), sets t1.resynch_pending: the next APDU then starts with
 * S(RESYNCH request), so that an old answer the card repeats can never pass
 * for the new APDU's; once the card answers it the APDU goes on. When a
 * RESYNCH fails 3 times the APDU fails (SMC_ERR_COMM before an APDU) and
 * t1.needs_reset is set: smc_t1_request() refuses with SMC_ERR_COMM until the
 * driver has reset the card and called smc_t1_init() again (which clears both
 * flags). A driver that stops an exchange itself (its time budget ran out, so
 * the block built was never sent) calls smc_t1_abandon() instead of
 * smc_t1_reply(): the exchange ends and resynch_pending is set. */
void smc_t1_init(struct smc_ext *ext, uint8_t ifsd);
smc_status smc_t1_request(struct smc_ext *ext);
smc_status smc_t1_reply(struct smc_ext *ext, smc_status rx_status, const uint8_t *block,
			size_t block_len);
void smc_t1_abandon(struct smc_ext *ext);
/* Bytes that follow a block's prologue (LEN + EDC), for readers that read a
 * block in two steps (character level); 0 if the prologue is malformed. */
size_t smc_t1_rest_len(const struct smc_ext *ext, const uint8_t prologue[SMC_T1_PROLOGUE_LEN]);

/* Inverse convention: reverse bit order and complement each byte, in place. */
void smc_invert_data(uint8_t *buf, size_t len);

/* ---- speed and PPS (ISO/IEC 7816-3:2006 7.1, 8.3, 9) ------------------ */

/* PPSS PPS0 [PPS1] PCK as we send it; PPSS PPS0 PPS1 PPS2 PPS3 PCK at most. */
#define SMC_PPS_REQUEST_MAX 4
#define SMC_PPS_MAX 6

/* The Fi/Di code (TA1 form) to propose: the card's TA1, or the same Fi with a
 * smaller Di of Table 8, the first (fastest) whose data rate f * Di / Fi at
 * clk_khz the reader runs: within 1% of an entry of rates (n_rates > 0), else
 * within [min_rate, max_rate]. clk_khz above the fmax of Fi, or nothing faster
 * than Fd/Dd that fits: 0x11. *rate (may be NULL) gets the reader's value for
 * the chosen rate (the list entry if any). Pure. */
smc_status smc_choose_speed(const struct smc_card_caps *caps, uint32_t clk_khz, const uint32_t *rates,
			    size_t n_rates, uint32_t min_rate, uint32_t max_rate, uint8_t *fidi,
			    uint32_t *rate);
/* A PPS request for protocol (SMC_PROTOCOL_T0 or _T1) and fidi: PPSS FF,
 * PPS0 (0x10 | T, or T alone for fidi 0x11: PPS1 absent means Fd/Dd), PPS1,
 * PCK. SMC_ERR_INVALID_PARAM for another protocol or an RFU code. */
smc_status smc_pps_build(uint32_t protocol, uint8_t fidi, uint8_t out[SMC_PPS_REQUEST_MAX],
			 size_t *len);
/* The card's answer to request (9.3): SMC_OK when it accepted, *agreed_fidi the
 * Fi/Di to run at (PPS1 echoed, or 0x11 when absent); SMC_ERR_PROTOCOL for a
 * well-formed answer that is no acceptance (other T, other PPS1); SMC_ERR_COMM
 * for a malformed one (too short or long, PPSS not FF, length unlike PPS0, bad PCK). */
smc_status smc_pps_check(const uint8_t *request, size_t req_len, const uint8_t *response,
			 size_t resp_len, uint8_t *agreed_fidi);
/* The card now runs at fidi (after PPS, or back at 0x11): fi and di, and the
 * waiting times (t0.wt_ms, t1.bwt_ms, t1.cwt_ms) at clk_khz (0: 4 MHz). */
smc_status smc_card_caps_set_fidi(struct smc_card_caps *caps, uint8_t fidi, uint32_t clk_khz);

/* The CLOCK_MONOTONIC time ms milliseconds from now, for pthread_cond_timedwait
 * on a condition variable created with that clock (every timed wait in the
 * driver uses one, so a change of the wall clock stretches no wait). */
void smc_deadline_after(struct timespec *ts, uint64_t ms);
/* pthread_cond_init on CLOCK_MONOTONIC, for the deadlines above: 0, or the
 * error number. */
int smc_cond_init_monotonic(pthread_cond_t *cond);

#endif
