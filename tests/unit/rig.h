/* A test rig: the driver (ccid_reader_open + smc_device_control) in front of
 * the virtual reader of sim/ through the in-process transport. Each helper
 * checks what it did with cmocka assertions, so a test reads as a script. */
#ifndef TEST_RIG_H
#define TEST_RIG_H

#include <stddef.h>
#include <stdint.h>

#include "ccid.h"
#include "inproc.h"
#include "smclib.h"
#include "vreader.h"

#define RIG_BUF 70000

struct rig {
	struct ccid_transport *tp;
	struct vreader *vr;
	struct ccid_reader *reader;
	struct smc_ext *ext;         /* slot 0 unless a test points it elsewhere */
	uint8_t reply[RIG_BUF];
	size_t reply_len;
	uint8_t apdu[RIG_BUF];
};

/* A reader with the default profile changed by kv (n_kv key=value pairs of
 * sim/README.md); split: one USB packet per receive(). */
struct rig *rig_open(const char *const kv[][2], size_t n_kv, int split);
/* The same, calling wrap(tp) on the in-process transport before the driver
 * opens it: a test puts a spy in front of the transport there (tp->ops). */
struct rig *rig_open_wrapped(const char *const kv[][2], size_t n_kv, int split,
			     void (*wrap)(struct ccid_transport *tp));
void rig_close(struct rig *r);

/* Cold power up; the ATR must be the one of the card's profile. */
void rig_power(struct rig *r);
void rig_protocol(struct rig *r, uint32_t proto);
/* Send an APDU; the answer must carry data_len bytes and end with sw. */
void rig_apdu(struct rig *r, const uint8_t *apdu, size_t len, size_t data_len, uint16_t sw);
/* The same, returning the status instead of asserting success. */
smc_status rig_transmit(struct rig *r, const uint8_t *apdu, size_t len);

/* The test applet (sim/README.md): SELECT; 80 34 for every length 1..256 and
 * 80 32 for every Lc 1..255, data checked byte by byte; 80 36 with data in for
 * every length 1..256, answered 61 xx, then GET RESPONSE 80 C0 00 00 xx (over
 * T=0 the driver leaves 61 xx to the application); 80 00 04 V (n bytes of
 * value v back); 80 12 01 80 (n bytes in, extended Lc). */
void rig_select(struct rig *r);
void rig_send_counting_all(struct rig *r);
void rig_check_data_all(struct rig *r);
void rig_get_response_all(struct rig *r);
void rig_fill(struct rig *r, uint8_t v, size_t n);
void rig_accept(struct rig *r, size_t n);

#endif
