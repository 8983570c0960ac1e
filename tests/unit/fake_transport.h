/* A scripted fake device behind struct ccid_transport, for unit tests.
 *
 * The test queues what the device does on bulk IN (whole answers, answers in
 * chunks, zero-length reads, stale or foreign answers, malformed headers,
 * timeouts, an unplug) and how it treats control requests and sends, then
 * inspects what the driver sent. Answers built with struct fake_frame take the
 * bSlot and bSeq of the last command sent at the moment they are delivered, so a
 * test need not predict sequence numbers; a responder callback lets a test act as
 * a device that answers each command as it arrives.
 *
 * Time is virtual: the fake keeps a clock (fake_clock_ms, usable as the
 * ccid_xfer clock) that advances by the whole timeout of each read that times
 * out and by the scripted delay of each answer, so timeouts are tested at once. */
#ifndef FAKE_TRANSPORT_H
#define FAKE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ccid_transport.h"

struct fake_dev;

/* QEMU 7.2's usb-ccid class descriptor: 1 slot, T=0, TPDU level with automatic
 * parameters (dwFeatures 0x000104FE), dwMaxCCIDMessageLength 65554. */
extern const uint8_t fake_qemu_descriptor[54];

/* A device with this class descriptor (QEMU's strings, bus 1 address 2). */
struct fake_dev *fake_new(const uint8_t *class_desc, size_t class_desc_len);
/* The transport to give to the driver. Its close() only marks the device
 * closed; the test frees the device with fake_free(). */
struct ccid_transport *fake_transport(struct fake_dev *d);
void fake_free(struct fake_dev *d);
int fake_closed(const struct fake_dev *d);

/* ---- virtual time ------------------------------------------------------ */
uint64_t fake_clock_ms(void *dev);

/* ---- bulk IN script ------------------------------------------------------ */

/* An RDR_to_PC message. Zero-initialised fields mean: bSlot and bSeq of the
 * last command sent (plus seq_delta), dwLength = len. */
struct fake_frame {
	uint8_t type;
	uint8_t status;          /* bStatus */
	uint8_t error;           /* bError */
	uint8_t specific;        /* bChainParameter / bClockStatus / bProtocolNum */
	const uint8_t *data;
	size_t len;
	int seq_delta;           /* e.g. -1: the answer of the previous command */
	int seq_fixed;           /* use seq as is */
	uint8_t seq;
	int slot_fixed;          /* use slot as is */
	uint8_t slot;
	int dw_fixed;            /* announce dw_length instead of len */
	uint32_t dw_length;
};

/* Queue a frame, in transfers of chunk bytes (0: one transfer), the first
 * delivered delay_ms after the read for it starts. */
void fake_rx_frame(struct fake_dev *d, const struct fake_frame *f, size_t chunk, unsigned delay_ms);
/* The common case: a whole answer to the last command. */
void fake_rx_answer(struct fake_dev *d, uint8_t type, uint8_t status, uint8_t error,
		    uint8_t specific, const uint8_t *data, size_t len);
/* Raw bytes as one transfer, exactly as given. */
void fake_rx_bytes(struct fake_dev *d, const uint8_t *buf, size_t len);
void fake_rx_zlp(struct fake_dev *d);
/* A read that ends with st (TP_TIMEOUT consumes the read's whole timeout). */
void fake_rx_status(struct fake_dev *d, tp_status st);
/* Events not yet read by the driver. */
size_t fake_rx_pending(const struct fake_dev *d);
void fake_rx_clear(struct fake_dev *d);

/* ---- bulk OUT, control, interrupt ------------------------------------- */

/* The next send returns st (queued, one per send); TP_OK afterwards. */
void fake_send_result(struct fake_dev *d, tp_status st);
/* Every control request returns st from now on (default TP_OK). */
void fake_control_result(struct fake_dev *d, tp_status st);
/* Queue one interrupt IN message. */
void fake_int_bytes(struct fake_dev *d, const uint8_t *buf, size_t len);

/* Called after each successful send, with the message; may queue answers. */
typedef void (*fake_responder_fn)(struct fake_dev *d, const uint8_t *msg, size_t len, void *ctx);
void fake_set_responder(struct fake_dev *d, fake_responder_fn fn, void *ctx);

/* ---- inspection --------------------------------------------------------- */

size_t fake_sent_count(const struct fake_dev *d);
/* Message i (0 = first) as sent, NULL past the end. */
const uint8_t *fake_sent(const struct fake_dev *d, size_t i, size_t *len);
const uint8_t *fake_sent_last(const struct fake_dev *d, size_t *len);
/* How many messages of this bMessageType were sent. */
size_t fake_sent_count_type(const struct fake_dev *d, uint8_t type);
/* The last message of this type, NULL if none. */
const uint8_t *fake_sent_last_type(const struct fake_dev *d, uint8_t type, size_t *len);

struct fake_ctrl {
	uint8_t request_type, request;
	uint16_t value;
	uint16_t len;
};
size_t fake_control_count(const struct fake_dev *d);
struct fake_ctrl fake_control_req(const struct fake_dev *d, size_t i);

/* Number of receive() calls so far. */
size_t fake_receive_calls(const struct fake_dev *d);

#endif
