/* The link to vicc (Debian's vsmartcard-vpicc), a third-party ISO 7816-4 card
 * emulator, so that its card can sit in a slot of the virtual reader in place
 * of the built-in applet (profile key card-relay, sim/README.md).
 *
 * vicc's protocol (the one vpcd speaks): TCP, each message a 2-byte big-endian
 * length then its payload. A 1-byte payload is a control code: 0 power off,
 * 1 power on, 2 reset (none answered), 4 get ATR (answered with the ATR). Any
 * longer payload is a command APDU, answered with a response APDU.
 *
 * By default vicc connects to the reader side (vpcd listens on port 35963), so
 * the relay listens on HOST:PORT and accepts vicc's connection.
 *
 * This is the one place of the reader core that does I/O. It is used
 * synchronously from vr_bulk_out: a command that reaches vicc blocks the reader
 * until vicc answers, at most VICC_ANSWER_MS (and VICC_ACCEPT_MS for a power-on
 * while vicc has not connected yet). A link that times out or carries a
 * malformed message is closed, since its byte stream can no longer be trusted:
 * the card is mute until vicc connects again and the host powers it up. */
#ifndef SIM_VICC_RELAY_H
#define SIM_VICC_RELAY_H

#include <stddef.h>
#include <stdint.h>

#define VICC_ACCEPT_MS 3000 /* power-on: how long to wait for vicc to connect */
#define VICC_ANSWER_MS 3000 /* how long vicc may take to answer a command */
#define VICC_MSG_MAX 65535u /* the largest payload a 2-byte length can announce */
#define VICC_RSP_MAX 65538u /* the largest response APDU: 65536 data bytes + SW1 SW2 */

enum vicc_ctrl {
	VICC_POWER_OFF = 0,
	VICC_POWER_ON = 1,
	VICC_RESET = 2,
	VICC_GET_ATR = 4,
};

enum vicc_status {
	VICC_OK = 0,
	VICC_GONE = -1, /* no vicc connected, it left, or it did not answer in time */
	VICC_BAD = -2,  /* vicc sent a malformed message (the link is closed) */
};

struct vicc_relay;

/* Listen on host (an IPv4 address) and port. NULL, with a log line, if the
 * address is bad or the port cannot be bound. */
struct vicc_relay *vicc_relay_new(const char *host, uint16_t port);
void vicc_relay_free(struct vicc_relay *r);
/* Send a control code without an answer (power off, on, reset). Power on and
 * reset wait up to VICC_ACCEPT_MS for vicc to connect; power off only uses a
 * link that exists (no vicc: nothing to power off, VICC_OK). */
enum vicc_status vicc_relay_control(struct vicc_relay *r, enum vicc_ctrl code);
/* The card's ATR (2 to cap bytes) in atr, its length in *len. */
enum vicc_status vicc_relay_atr(struct vicc_relay *r, uint8_t *atr, size_t cap, size_t *len);
/* One command APDU (1 to VICC_MSG_MAX bytes), the response APDU (2 to
 * VICC_RSP_MAX bytes, at most cap) in rsp, its length in *rsp_len. */
enum vicc_status vicc_relay_apdu(struct vicc_relay *r, const uint8_t *apdu, size_t len, uint8_t *rsp,
				 size_t cap, size_t *rsp_len);

#endif
