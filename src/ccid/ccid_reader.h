/* Private to src/ccid: one open CCID reader, and what its files share.
 *
 * reader.c     opens and closes a reader, fills the smclib extensions
 * callbacks.c  the RDF callbacks (power, set protocol, transmit, tracking)
 * exchange.c   the exchange-level strategies behind RDF_TRANSMIT
 * params.c     SetParameters built from the card's capabilities
 * speed.c      clock/rate lists, PPS and the reader's rate, voltage class
 * ccid_xfer.c  one command and its answer on the bulk pipe
 * events.c     the interrupt pipe: card events for all slots, card tracking
 * ioctl.c      control codes (IFDHControl); features.c, pinpad.c, escape.c and
 *              mechanical.c behind it (ioctl.h) */
#ifndef CCID_READER_H
#define CCID_READER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "ccid.h"
#include "ccid_xfer.h"
#include "descriptor.h"

/* Default waits for commands that do not involve the card's waiting time. */
#define CCID_CMD_TIMEOUT_MS 3000u
/* IccPowerOn: activation, ATR, and a reader that tries voltages itself. */
#define CCID_POWER_ON_TIMEOUT_MS 5000u
/* One APDU in all, however many messages it takes (T=1 blocks and their
 * recovery, extended APDU parts, character-level steps): a card or reader
 * that keeps an exchange going cannot hold pcscd longer than this. */
#define CCID_APDU_BUDGET_MS 90000u
/* XfrBlock: the card's waiting time plus this margin, within the bounds below.
 * The reader times the card itself and says "mute" after the waiting time; our
 * wait only catches a reader that does not answer at all, so it is generous
 * (a busy reader or a loaded virtual machine must not look dead). */
#define CCID_XFR_MARGIN_MS 2000u
#define CCID_XFR_MIN_TIMEOUT_MS 5000u
#define CCID_XFR_MAX_TIMEOUT_MS CCID_XFER_HARD_BOUND_MS

/* bNumClockSupported and bNumDataRatesSupported are single bytes. */
#define CCID_SPEED_LIST_MAX 255u

/* A TPDU built from a short APDU: 5-byte header and up to 256 bytes. */
#define CCID_TPDU_MAX (5u + 256u)
/* Largest APDUs (SCARD_ATTR_MAXINPUT): short 4+1+255+1, extended 4+3+65535+2. */
#define CCID_SHORT_APDU_MAX 261u
#define CCID_EXTENDED_APDU_MAX 65544u
/* Largest response APDU: 65536 data bytes and SW1 SW2. */
#define CCID_EXTENDED_RESPONSE_MAX 65538u

/* What the interrupt pipe said about one slot (events.c), under the
 * reader's events.lock. */
struct ccid_slot_events {
	bool pending;                  /* an event no refresh has taken yet */
	bool removed;                  /* among them a card left: removed, or swapped
					* (a change with a card still present) */
	bool known;                    /* present below comes from a message */
	bool present;                  /* bmSlotICCState bit 0 of the last message */
};

/* The driver's private data of one slot (ext->reader_ext). */
struct ccid_slot {
	struct ccid_reader *reader;
	uint8_t index;                 /* bSlot */
	uint8_t tpdu[CCID_TPDU_MAX];   /* scratch: the TPDU of the APDU in flight */
	uint8_t t1_rx[SMC_T1_BLOCK_MAX]; /* scratch: the card's T=1 block */
	uint64_t apdu_deadline;        /* ms (xfer clock) the APDU in flight must end by; 0: none */
	struct ccid_slot_events ev;    /* under reader->events.lock */
};

/* The interrupt pipe of a reader (CCID 1.1 6.3). One thread reads it for
 * all slots, started by the first tracking request and joined at close. */
struct ccid_events {
	bool ready;                    /* lock and cond set up */
	pthread_mutex_t lock;
	pthread_cond_t cond;           /* the thread's pauses after errors */
	pthread_t thread;
	bool started;                  /* thread created, not yet joined */
	bool stopping;                 /* close asked the thread to end */
	bool failed;                   /* the pipe kept failing: no events, pcscd polls */
	atomic_bool gone;              /* the pipe said the device is gone */
};

struct ccid_reader {
	struct ccid_transport *tp;     /* owned */
	struct ccid_descriptor desc;
	struct ccid_xfer xfer;         /* the bulk pipe, shared by the slots */
	unsigned n_slots;
	struct smc_ext *slots;         /* n_slots extensions */
	struct ccid_slot *slot_priv;   /* n_slots private parts */
	/* GET_CLOCK_FREQUENCIES (kHz) and GET_DATA_RATES (bps); empty when the
	 * reader has no lists or stalls the requests (speed.c) */
	uint32_t clocks[CCID_SPEED_LIST_MAX], rates[CCID_SPEED_LIST_MAX];
	unsigned n_clocks, n_rates;
	struct ccid_events events;
	atomic_uint options;           /* CCID_OPTION_* (ccid.h), set by the boundary */
};

static inline struct ccid_slot *ccid_slot_of(struct smc_ext *ext)
{
	return (struct ccid_slot *)ext->reader_ext;
}

/* callbacks.c */
smc_status ccid_card_power(struct smc_ext *ext);
/* Deactivate and activate again (a warm reset over CCID): ATR and card_caps anew. */
smc_status ccid_card_reset(struct smc_ext *ext);
/* An exchange broke off where the card may still be sending or waiting for
 * bytes: anything more would be taken out of step (an old answer for a new
 * command). The card is powered off and the slot left PRESENT, so that every
 * APDU fails until the application resets the card. what: for the log. */
void ccid_card_out_of_step(struct smc_ext *ext, const char *what);
smc_status ccid_set_protocol(struct smc_ext *ext);
smc_status ccid_transmit(struct smc_ext *ext);
/* The reader set up for protocol (SetParameters, and the T=1 engine below APDU
 * level), at SET_PROTOCOL or when a card in specific mode was powered up. */
smc_status ccid_start_protocol(struct smc_ext *ext, uint32_t proto);
/* RDF_CARD_TRACKING: REFRESH (one GetSlotStatus), PRESENT and ABSENT (arm
 * tracking through events.c). */
smc_status ccid_card_tracking(struct smc_ext *ext);
/* The slot's card state after an answer's bmICCStatus (logged when it changes). */
void ccid_track_icc(struct smc_ext *ext, enum ccid_icc_status icc);

/* ioctl.c: RDF_IOCTL_VENDOR, the one entry for every control code (IFDHControl):
 * PC/SC part 10 features, Escape, mechanical functions (ioctl.h lists them). */
smc_status ccid_ioctl_vendor(struct smc_ext *ext);
/* mechanical.c: RDF_CARD_EJECT (Mechanical eject) and RDF_READER_SWALLOW
 * (Mechanical accept: the card drawn in, state SWALLOWED), for readers whose
 * dwMechanical has the mechanism; SMC_ERR_NOT_SUPPORTED otherwise. */
smc_status ccid_card_eject(struct smc_ext *ext);
smc_status ccid_reader_swallow(struct smc_ext *ext);

/* exchange.c: ext->io.request to ext->io.reply at each exchange level. */
smc_status ccid_exchange_tpdu(struct smc_ext *ext);
smc_status ccid_exchange_short_apdu(struct smc_ext *ext);
smc_status ccid_exchange_extended_apdu(struct smc_ext *ext);
/* The XfrBlock timeout for a card waiting time: plus the margin, within the
 * bounds above. */
unsigned ccid_card_wait_timeout_ms(uint64_t card_wait_ms);
/* The XfrBlock timeout from the card's waiting time (WT for T=0, BWT for T=1). */
unsigned ccid_xfr_timeout_ms(const struct smc_ext *ext);
/* What is left of the APDU's budget, in ms: 0 when spent, UINT64_MAX outside
 * an APDU (no budget). */
uint64_t ccid_apdu_time_left(struct smc_ext *ext);
/* One XfrBlock (bBWI, wLevelParameter, abData) and its DataBlock, whose data
 * lands in out (as ccid_xfer_transact). A failed command status becomes an
 * error here, with a log line (and an absent card a state change); *a stays
 * filled so that the caller can read bError (e.g. ICC mute). */
smc_status ccid_xfr_block(struct smc_ext *ext, uint8_t bwi, uint16_t level, const uint8_t *data,
			  size_t len, unsigned timeout_ms, uint8_t *out, size_t out_cap,
			  struct ccid_answer *a);

/* exchange_t1.c: the APDU in io.request over T=1 (TPDU or character level),
 * driving smclib's T=1 engine block by block. */
smc_status ccid_exchange_t1(struct smc_ext *ext);
/* One T=1 block to the card and the card's block back into rx (EDC included).
 * The status is what smc_t1_reply() takes as rx_status: SMC_OK with a block,
 * SMC_ERR_TIMEOUT when the card was mute, SMC_ERR_COMM for a parity or framing
 * error; other errors (reader gone, card removed) end the exchange.
 * wtx multiplies the block waiting time for this block. */
smc_status ccid_t1_block_tpdu(struct smc_ext *ext, const uint8_t *tx, size_t tx_len, uint8_t wtx,
			      uint8_t *rx, size_t rx_cap, size_t *rx_len);
/* The wait for the card's answer to a T=1 block, wtx the multiplier asked for. */
unsigned ccid_t1_block_timeout_ms(const struct smc_ext *ext, uint8_t wtx);
/* The rx_status for smc_t1_reply() from ccid_xfr_block's status; *rx_len the
 * block's length on success. */
smc_status ccid_t1_rx_status(smc_status st, const struct ccid_answer *a, size_t *rx_len);
/* exchange_char.c: the same at character level (prologue, then the rest). */
smc_status ccid_t1_block_char(struct smc_ext *ext, const uint8_t *tx, size_t tx_len, uint8_t wtx,
			      uint8_t *rx, size_t rx_cap, size_t *rx_len);
/* exchange_char.c: an APDU over T=0 at character level (procedure bytes). */
smc_status ccid_exchange_char_t0(struct smc_ext *ext);

/* events.c: card events from the interrupt pipe (CCID 1.1 6.3). */
/* How long the thread's one interrupt read lasts (close cancels it sooner). */
#define CCID_EVENT_WAIT_MS 5000u
/* Failed reads in a row (each followed by a growing pause, up to
 * CCID_EVENT_PAUSE_MAX_MS) before events are given up for this reader. */
#define CCID_EVENT_MAX_FAILURES 8u
#define CCID_EVENT_PAUSE_MS 50u
#define CCID_EVENT_PAUSE_MAX_MS 1000u
/* The largest interrupt message taken: NotifySlotChange for 16 slots is 5
 * bytes, HardwareError 4; an interrupt packet is at most 64 at full speed. */
#define CCID_EVENT_MSG_MAX 64u
/* At open, before anything can fail (close relies on it). */
smc_status ccid_events_init(struct ccid_reader *r);
/* At close: tracking waits end, the thread is stopped and joined. */
void ccid_events_shutdown(struct ccid_reader *r);
/* RDF_CARD_TRACKING PRESENT / ABSENT: start the thread if needed; complete
 * at once if the slot has an event no refresh has taken. */
smc_status ccid_events_arm(struct smc_ext *ext);
/* A refresh takes the slot's events: true if a card left since the last
 * one (removed, or swapped). */
bool ccid_events_take(struct smc_ext *ext);
/* A refresh that failed gives back what it took, for the next one. */
void ccid_events_give_back(struct smc_ext *ext, bool removed);
/* One interrupt IN message, as the thread got it: checked (malformed ones
 * are logged and ignored), then dispatched to the slots. */
void ccid_events_message(struct ccid_reader *r, const uint8_t *msg, size_t len);
/* The interrupt pipe said the device is gone. */
bool ccid_events_gone(const struct ccid_reader *r);

/* params.c: configure the reader for protocol (SMC_PROTOCOL_T0 or _T1) from
 * ext->card_caps, unless the reader does it itself. */
smc_status ccid_set_parameters(struct smc_ext *ext, uint32_t protocol);

/* speed.c: at open, the clock and rate lists (a stall leaves them empty) and
 * the slots' reader_caps completed from them. */
void ccid_speed_open(struct ccid_reader *r);
/* speed.c: before SetParameters, below APDU level when the reader does no PPS
 * (dwFeatures 0x40, 0x80) and the card is negotiable: PPS to proto and the
 * fastest Fi/Di both sides run (card_caps.pts, timing, the reader's rate).
 * A refusal resets the card (ccid_card_reset) and leaves Fd/Dd; SMC_ERR_PROTOCOL
 * if proto then is not the card's first protocol. */
smc_status ccid_negotiate_speed(struct smc_ext *ext, uint32_t proto);
/* speed.c: the classes of ISO 7816-3 8.3, highest voltage first (A 5 V, B 3 V,
 * C 1.8 V): the bit they share in the class indicator and bVoltageSupport, the
 * bPowerSelect (CCID 6.1.1), and names for logs. */
struct ccid_voltage_class {
	uint8_t bit;
	enum ccid_power_select sel;
	const char *volts; /* "5 V" */
	const char *name;  /* "A (5 V)" */
};
#define CCID_N_VOLTAGE_CLASSES 3u
extern const struct ccid_voltage_class ccid_voltage_classes[CCID_N_VOLTAGE_CLASSES];
/* speed.c: the bPowerSelect for the card's class indicator (ATR, 7816-3 8.3):
 * used if it is one of the card's classes (or there is no indicator), else the
 * highest voltage the card and bVoltageSupport share, else used. Pure. */
enum ccid_power_select ccid_class_voltage(uint8_t class_indicator, uint8_t voltage_support,
					  enum ccid_power_select used);
/* The same for the ATR in ext->card_caps (the reader's bVoltageSupport), with a
 * log line when the card should be powered again at another voltage. */
enum ccid_power_select ccid_voltage_for_atr(struct smc_ext *ext, enum ccid_power_select used);

#endif
