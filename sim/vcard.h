/* One virtual card: its ATR (built from the card profile, ISO 7816-3 section 8)
 * and its side of the transmission: whole APDUs (what a reader at APDU level
 * delivers after doing T=0/T=1 itself) or T=0 TPDUs (a reader at TPDU level).
 * The commands go to the test applet. */
#ifndef SIM_VCARD_H
#define SIM_VCARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "applet.h"
#include "vreader.h"

#define VCARD_ATR_MAX 33
/* Largest answer: 65536 data bytes and SW1 SW2. */
#define VCARD_RESPONSE_MAX (APPLET_MAX_DATA + 2u)

/* Largest T=1 block: prologue, 254 INF bytes, CRC. */
#define VCARD_T1_BLOCK_MAX (3u + 254u + 2u)
/* Largest command APDU the card takes: 4 + 3 + 65535 + 2. */
#define VCARD_APDU_MAX 65544u

/* The card's side of T=1 (ISO/IEC 7816-3:2006 section 11, vcard_t1.c). */
struct vcard_t1 {
	uint8_t ns;                    /* N(S) of the card's next I-block */
	uint8_t nr;                    /* N(S) expected in the host's next I-block */
	uint8_t ifsd;                  /* largest INF the card may send (host's IFSD) */
	uint8_t ifsc;                  /* largest INF the card takes: TA3, or its S(IFS request) */
	uint8_t *cmd;                  /* command APDU being received (chaining) */
	size_t cmd_len;
	uint8_t *rsp;                  /* response APDU being sent */
	size_t rsp_len, rsp_off;
	bool sending;                  /* a chained response is under way (last I-block had M) */
	uint8_t wtx;                   /* WTX multiplier to ask before the response, 0: none */
	uint8_t s_wait;                /* PCB of the card's S(request) awaiting its response, 0: none */
	uint8_t s_value;               /* ... and its INF byte */
	bool ifs_asked;                /* card-ifs-request answered since the ATR or RESYNCH */
	bool synced;                   /* a valid block came since the ATR (rule 7.5) */
	bool answered;                 /* the card's last block answered host_i */
	uint8_t last[VCARD_T1_BLOCK_MAX]; /* the last block sent (rules 7.2, 7.3) */
	size_t last_len;
	uint8_t last_i[VCARD_T1_BLOCK_MAX]; /* the last I-block sent (rule 7.1: asked again by N(R)) */
	size_t last_i_len;
	uint8_t host_i[2 + 254];       /* PCB, LEN, INF of the host's last accepted I-block */
	size_t host_i_len;
};

/* The card's I/O line at character level (vcard_char.c). */
struct vcard_char {
	uint8_t in[264];               /* host bytes not yet used: a header and data, or a block */
	size_t in_len;
	size_t want;                   /* T=0: data bytes asked for by the ACK sent */
	uint8_t out[1024];             /* card bytes not yet read by the host */
	size_t out_len;
};

struct vcard {
	struct vr_card_profile cfg;
	struct vcard_t1 t1;
	struct vcard_char ch;
	uint8_t atr[VCARD_ATR_MAX];
	size_t atr_len;
	struct applet applet;
	/* T=0: response data waiting for GET RESPONSE (ISO 7816-3 10.3.3) */
	uint8_t *pending;
	size_t pending_len, pending_off;
	uint16_t pending_sw;
	/* card-relay: vicc answers in place of the applet (vcard_relay.c); NULL
	 * for the built-in applet. mute: vicc did not answer the last command. */
	struct vicc_relay *relay;
	bool mute;
};

struct vicc_relay;

/* The ATR for a card profile (TCK added when anything other than T=0 is
 * indicated: T=1, or T=15 for the class indicator). Returns its length, 0 if
 * the profile cannot make one. */
size_t vcard_build_atr(const struct vr_card_profile *cfg, uint8_t out[VCARD_ATR_MAX]);

int vcard_init(struct vcard *c, const struct vr_card_profile *cfg); /* 0, -1 no memory */
void vcard_free(struct vcard *c);
/* Does the card answer at this voltage class (1 5 V, 2 3 V, 4 1.8 V)? Its
 * class indicator (card-class) when it has one, card-voltages otherwise. */
bool vcard_takes_voltage(const struct vcard *c, uint8_t class_bit);
/* Cold or warm reset: waiting data dropped, PIN state reset. */
void vcard_reset(struct vcard *c);
/* The protocol the card starts in: T=0 unless it offers only T=1, or TA2 names one. */
uint8_t vcard_default_protocol(const struct vcard *c);

/* A whole command APDU; the response APDU (data + SW1 SW2) goes to out (cap at
 * least VCARD_RESPONSE_MAX). *delay: time units the card takes. */
size_t vcard_apdu(struct vcard *c, const uint8_t *apdu, size_t len, uint8_t *out, size_t cap,
		  unsigned *delay);
/* A T=0 TPDU (header + data); the answer a T=0 card gives to it: data and
 * SW1 SW2, with 61xx and 6Cxx as a T=0 card produces them. */
size_t vcard_t0_tpdu(struct vcard *c, const uint8_t *tpdu, size_t len, uint8_t *out, size_t cap,
		     unsigned *delay);

/* vcard_relay.c: the card when card-relay names a vicc (vicc_relay.h).
 * Open the relay (listening on port + slot); 0, -1 with a log line. */
int vcard_relay_open(struct vcard *c, unsigned slot);
/* Power-on: the built-in card is always ready; a relayed card is powered up
 * in vicc and its ATR (with the protocol values the reader needs from it)
 * becomes the card's. 0, or -1 when the card is mute (no vicc, no ATR, an ATR
 * that does not parse). */
int vcard_power_on(struct vcard *c);
void vcard_power_off(struct vcard *c);
/* A command APDU to vicc: the response APDU in out (cap at least
 * VCARD_RESPONSE_MAX), as struct applet_reply. A malformed answer gives
 * 6F 00; no answer also sets c->mute. */
void vcard_relay_apdu(struct vcard *c, const uint8_t *apdu, size_t len, uint8_t *out, size_t cap,
		      struct applet_reply *r);
/* Did the card stay mute since the last call (vicc gone)? Clears the flag. */
bool vcard_take_mute(struct vcard *c);

/* vcard_t1.c: one T=1 block from the host, the block the card sends back
 * (out: at least VCARD_T1_BLOCK_MAX bytes). Time the card needs shows as an
 * S(WTX request) block, as a T=1 card asks for it. */
size_t vcard_t1_block(struct vcard *c, const uint8_t *block, size_t len, uint8_t *out);
/* After the ATR: sequence numbers 0, IFSD 32, IFSC from the ATR, no chains,
 * nothing to retransmit. */
void vcard_t1_reset(struct vcard *c);
uint16_t vcard_t1_crc(const uint8_t *buf, size_t len);
/* Fault t1-bad-edc: spoil a block the card sends (its last EDC byte flipped);
 * the card keeps the good copy for retransmission. */
void vcard_t1_spoil_edc(uint8_t *block, size_t len);

/* What becomes of a T=1 block the card sends: the reader's faults on demand
 * decide (t1-bad-edc, t1-lost; sim/vreader_faults.c). */
enum vcard_t1_fate {
	VCARD_T1_DELIVERED,
	VCARD_T1_BAD_EDC,   /* reaches the host with its last EDC byte flipped */
	VCARD_T1_LOST,      /* never reaches the host: the card looks silent */
};
struct vcard_t1_faults {
	enum vcard_t1_fate (*fate)(void *ctx); /* asked once per block the card sends */
	void *ctx;
};

/* vcard_char.c: bytes from the host on the I/O line (protocol 0 or 1); what
 * the card sends back waits until read. scratch: VCARD_RESPONSE_MAX bytes.
 * faults (NULL: none) decides the fate of each T=1 block the card answers. */
void vcard_char_in(struct vcard *c, uint8_t protocol, const uint8_t *b, size_t len,
		   uint8_t *scratch, const struct vcard_t1_faults *faults);
/* Bytes the card sends of its own accord (a PPS response). */
void vcard_char_emit(struct vcard *c, const uint8_t *b, size_t len);
/* Take exactly want bytes the card sent; 0 (and nothing taken) if fewer wait. */
size_t vcard_char_out(struct vcard *c, uint8_t *buf, size_t want);
size_t vcard_char_waiting(const struct vcard *c);
void vcard_char_reset(struct vcard *c);

#endif
