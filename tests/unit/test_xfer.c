/* One command, one answer, whatever the device does: ccid_xfer against the
 * scripted fake device, on the fake's virtual clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ccid/ccid_xfer.h"
#include "fake_transport.h"
#include "log_capture.h"

#define TIMEOUT_MS 3000u

struct fixture {
	struct fake_dev *d;
	struct ccid_xfer x;
	uint8_t out[70000];
	struct ccid_answer a;
};

static int setup_len(void **state, uint32_t max_msg)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->d = fake_new(NULL, 0);
	assert_int_equal(ccid_xfer_init(&f->x, fake_transport(f->d), max_msg), SMC_OK);
	f->x.clock = fake_clock_ms;
	f->x.clock_ctx = f->d;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_len(state, 65554);
}

static int setup_small(void **state)
{
	return setup_len(state, 271);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ccid_xfer_destroy(&f->x);
	fake_free(f->d);
	free(f);
	return 0;
}

static smc_status slot_status(struct fixture *f, uint8_t slot)
{
	struct ccid_cmd c;

	ccid_cmd_get_slot_status(&c, slot);
	return ccid_xfer_transact(&f->x, &c, TIMEOUT_MS, f->out, sizeof(f->out), &f->a);
}

static smc_status xfr(struct fixture *f, const uint8_t *apdu, size_t len, size_t out_cap)
{
	struct ccid_cmd c;

	ccid_cmd_xfr_block(&c, 0, 0, 0, apdu, len);
	return ccid_xfer_transact(&f->x, &c, TIMEOUT_MS, f->out, out_cap, &f->a);
}

static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x00 };

static void answer_with_data(struct fake_dev *d, size_t len, size_t chunk)
{
	static uint8_t data[65536];
	struct fake_frame fr = { .type = 0x80, .data = data, .len = len };

	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7);
	fake_rx_frame(d, &fr, chunk, 0);
}

static void check_data(const uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (out[i] != (uint8_t)(i * 7))
			fail_msg("byte %zu is %02X", i, out[i]);
}

/* ---- the plain case ------------------------------------------------------- */

static void answer_carries_the_commands_bseq_and_bseq_increments(void **state)
{
	struct fixture *f = *state;
	const uint8_t *m;
	size_t len;

	fake_rx_answer(f->d, 0x81, 0x01, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
	assert_int_equal(f->a.icc, CCID_ICC_INACTIVE);
	fake_rx_answer(f->d, 0x81, 0x00, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
	assert_int_equal(fake_sent_count(f->d), 2);
	m = fake_sent(f->d, 0, &len);
	assert_int_equal(len, 10);
	assert_int_equal(m[0], 0x65);
	assert_int_equal(m[6], 0);
	m = fake_sent(f->d, 1, &len);
	assert_int_equal(m[6], 1);
	assert_int_equal(f->a.hdr.bSeq, 1);
	assert_int_equal(fake_receive_calls(f->d), 2);
}

/* pcscd polls presence every few hundred ms: those dumps must not drown the
 * APDUs at the communication level. */
static void presence_polls_are_dumped_at_the_periodic_level(void **state)
{
	struct fixture *f = *state;
	unsigned comm = log_capture_dumps(SMC_LOG_COMM);
	unsigned periodic = log_capture_dumps(SMC_LOG_PERIODIC);

	smc_log_mask |= SMC_LOG_COMM | SMC_LOG_PERIODIC;
	fake_rx_answer(f->d, 0x81, 0x00, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
	assert_int_equal(log_capture_dumps(SMC_LOG_COMM), comm);
	assert_int_equal(log_capture_dumps(SMC_LOG_PERIODIC), periodic + 2);
	answer_with_data(f->d, 4, 0);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_OK);
	assert_int_equal(log_capture_dumps(SMC_LOG_COMM), comm + 2);
	assert_int_equal(log_capture_dumps(SMC_LOG_PERIODIC), periodic + 2);
}

static void zero_length_reads_are_skipped(void **state)
{
	struct fixture *f = *state;

	fake_rx_zlp(f->d);
	fake_rx_zlp(f->d);
	answer_with_data(f->d, 64 - 10, 0);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_OK);
	assert_int_equal(f->a.hdr.dwLength, 54);
	check_data(f->out, 54);
	assert_int_equal(fake_receive_calls(f->d), 3);
}

/* A bulk IN stall before the answer (the transport clears the halt): the
 * answer that follows is still the command's; endless stalls end boundedly. */
static void stall_before_the_answer_is_read_past(void **state)
{
	struct fixture *f = *state;

	fake_rx_status(f->d, TP_STALL);
	answer_with_data(f->d, 20, 0);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_OK);
	assert_int_equal(f->a.hdr.dwLength, 20);
	check_data(f->out, 20);
	for (unsigned i = 0; i < 100; i++)
		fake_rx_status(f->d, TP_STALL);
	assert_int_equal(slot_status(f, 0), SMC_ERR_TIMEOUT);
	assert_true(fake_rx_pending(f->d) > 0);
}

static void endless_zero_length_reads_end_as_no_answer(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < 100; i++)
		fake_rx_zlp(f->d);
	assert_int_equal(slot_status(f, 0), SMC_ERR_TIMEOUT);
	/* gave up after a bounded number, without waiting for the device to stop */
	assert_true(fake_rx_pending(f->d) > 0);
	assert_int_equal(fake_clock_ms(f->d), 0);
}

static void answer_split_across_reads_is_reassembled(void **state)
{
	struct fixture *f = *state;

	answer_with_data(f->d, 300, 64);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_OK);
	assert_int_equal(f->a.hdr.dwLength, 300);
	check_data(f->out, 300);
	assert_int_equal(fake_receive_calls(f->d), 5);
}

static void header_split_across_reads_is_reassembled(void **state)
{
	struct fixture *f = *state;

	answer_with_data(f->d, 20, 3);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_OK);
	assert_int_equal(f->a.hdr.dwLength, 20);
	check_data(f->out, 20);
	assert_int_equal(fake_receive_calls(f->d), 10);
}

static void trailing_bytes_after_an_answer_are_ignored(void **state)
{
	struct fixture *f = *state;
	uint8_t raw[15] = { 0x81, 0, 0, 0, 0, 0, 0, 0x00, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF, 0x00 };

	fake_rx_bytes(f->d, raw, sizeof(raw));
	assert_int_equal(slot_status(f, 0), SMC_OK);
	assert_int_equal(f->a.hdr.dwLength, 0);
}

/* ---- answers of other commands -------------------------------------------- */

static void stale_bseq_is_dropped(void **state)
{
	struct fixture *f = *state;
	static const uint8_t old[] = { 0x6A, 0x82 };
	struct fake_frame stale = { .type = 0x80, .data = old, .len = 2, .seq_delta = -1 };

	fake_rx_frame(f->d, &stale, 0, 0);
	answer_with_data(f->d, 4, 0);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_OK);
	assert_int_equal(f->a.hdr.dwLength, 4);
	check_data(f->out, 4);
}

/* A stale answer is dropped whatever it holds, even an RFU bmICCStatus: it says
 * nothing about the command that waits. */
static void malformed_stale_answer_is_dropped(void **state)
{
	struct fixture *f = *state;
	struct fake_frame stale = { .type = 0x81, .status = 0x03, .seq_delta = -1 };

	fake_rx_frame(f->d, &stale, 0, 0);
	fake_rx_answer(f->d, 0x81, 0x00, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
	assert_int_equal(fake_rx_pending(f->d), 0);
}

static void split_stale_answer_is_dropped_whole(void **state)
{
	struct fixture *f = *state;
	static uint8_t old[200];
	struct fake_frame stale = { .type = 0x80, .data = old, .len = sizeof(old), .seq_delta = 5 };

	memset(old, 0x80, sizeof(old)); /* looks like headers if misread */
	fake_rx_frame(f->d, &stale, 64, 0);
	answer_with_data(f->d, 4, 0);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_OK);
	check_data(f->out, 4);
}

static void wrong_bslot_is_dropped(void **state)
{
	struct fixture *f = *state;
	struct fake_frame other = { .type = 0x81, .status = 0x02, .slot_fixed = 1, .slot = 1 };

	fake_rx_frame(f->d, &other, 0, 0);
	fake_rx_answer(f->d, 0x81, 0x01, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
	assert_int_equal(f->a.hdr.bSlot, 0);
	assert_int_equal(f->a.icc, CCID_ICC_INACTIVE);
}

static void endless_stale_answers_give_up(void **state)
{
	struct fixture *f = *state;
	struct fake_frame stale = { .type = 0x81, .seq_delta = -1 };

	for (unsigned i = 0; i < 40; i++)
		fake_rx_frame(f->d, &stale, 0, 0);
	assert_int_equal(slot_status(f, 0), SMC_ERR_COMM);
	assert_int_equal(fake_rx_pending(f->d), 40 - (CCID_XFER_MAX_STALE + 1));
}

/* ---- malformed answers ----------------------------------------------------- */

static void dwlength_beyond_received_keeps_reading_then_times_out(void **state)
{
	struct fixture *f = *state;
	static const uint8_t some[10] = { 0x90, 0x00 };
	struct fake_frame trunc = { .type = 0x80, .data = some, .len = 10, .dw_fixed = 1,
				    .dw_length = 100 };
	const uint8_t *m;

	fake_rx_frame(f->d, &trunc, 0, 0);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_ERR_TIMEOUT);
	/* it waited for the rest within the timeout, then aborted */
	assert_true(fake_clock_ms(f->d) >= TIMEOUT_MS);
	assert_true(fake_clock_ms(f->d) <= TIMEOUT_MS + CCID_XFER_ABORT_ANSWER_MS);
	m = fake_sent_last(f->d, NULL);
	assert_int_equal(m[0], 0x72);
	assert_false(ccid_xfer_is_gone(&f->x));
}

static void dwlength_beyond_buffer_is_comm_error_and_next_command_in_step(void **state)
{
	struct fixture *f = *state;
	static uint8_t body[4096];
	struct fake_frame huge = { .type = 0x80, .data = body, .len = 4096, .dw_fixed = 1,
				   .dw_length = 70000 - 10 };

	/* header and data announced: 70000 bytes, sent in full */
	fake_rx_frame(f->d, &huge, 0, 0);
	for (size_t sent = 4096 + 10; sent < 70000; sent += 4096)
		fake_rx_bytes(f->d, body, 70000 - sent < 4096 ? 70000 - sent : 4096);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_ERR_COMM);
	assert_int_equal(fake_rx_pending(f->d), 0);
	fake_rx_answer(f->d, 0x81, 0x00, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
	assert_int_equal(f->a.hdr.bSeq, 1);
}

static void absurd_dwlength_is_comm_error_without_hanging(void **state)
{
	struct fixture *f = *state;
	struct fake_frame huge = { .type = 0x80, .dw_fixed = 1, .dw_length = 0xFFFFFFF0u };

	fake_rx_frame(f->d, &huge, 0, 0);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_ERR_COMM);
	/* drained until the device had nothing more: one short read */
	assert_true(fake_clock_ms(f->d) <= CCID_XFER_DRAIN_READ_MS);
}

static void unknown_message_type_is_comm_error(void **state)
{
	struct fixture *f = *state;
	static const uint8_t notify[10] = { 0x50, 0x03 };

	fake_rx_bytes(f->d, notify, sizeof(notify));
	assert_int_equal(slot_status(f, 0), SMC_ERR_COMM);
	fake_rx_answer(f->d, 0x81, 0x00, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
}

static void rfu_status_is_comm_error(void **state)
{
	struct fixture *f = *state;

	fake_rx_answer(f->d, 0x81, 0x03, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_ERR_COMM);
	fake_rx_answer(f->d, 0x81, 0xC0, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_ERR_COMM);
}

static void answer_of_the_wrong_type_is_comm_error(void **state)
{
	struct fixture *f = *state;

	fake_rx_answer(f->d, 0x81, 0x40, 0, 0, NULL, 0);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_ERR_COMM);
}

static void answer_larger_than_caller_buffer_is_reported_and_consumed(void **state)
{
	struct fixture *f = *state;

	answer_with_data(f->d, 300, 64);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), 299), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(f->a.hdr.dwLength, 300);
	assert_null(f->a.data);
	assert_int_equal(fake_rx_pending(f->d), 0);
	fake_rx_answer(f->d, 0x81, 0x00, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
}

static void command_longer_than_the_reader_takes_is_not_sent(void **state)
{
	struct fixture *f = *state;
	static uint8_t big[262];

	assert_int_equal(xfr(f, big, sizeof(big), sizeof(f->out)), SMC_ERR_INVALID_PARAM);
	assert_int_equal(fake_sent_count(f->d), 0);
	fake_rx_answer(f->d, 0x80, 0x00, 0, 0, NULL, 0);
	assert_int_equal(xfr(f, big, 261, sizeof(f->out)), SMC_OK);
	assert_int_equal(fake_sent(f->d, 0, NULL)[6], 0); /* the refused one used no bSeq */
}

/* ---- time ------------------------------------------------------------------- */

static void time_extension_then_answer(void **state)
{
	struct fixture *f = *state;
	struct fake_frame wtx = { .type = 0x80, .status = 0x80, .error = 2 };
	struct fake_frame late = { .type = 0x80, .data = apdu, .len = 2 };

	fake_rx_frame(f->d, &wtx, 0, 1000);
	/* arrives 5 s after the extension: beyond the 3 s timeout, within 2 x 3 s */
	fake_rx_frame(f->d, &late, 0, 5000);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_OK);
	assert_int_equal(f->a.hdr.dwLength, 2);
	assert_int_equal(fake_sent_count_type(f->d, 0x72), 0);
}

static void late_answer_without_time_extension_times_out(void **state)
{
	struct fixture *f = *state;
	struct fake_frame late = { .type = 0x80, .data = apdu, .len = 2 };

	fake_rx_frame(f->d, &late, 0, 5000);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_ERR_TIMEOUT);
}

static void time_extensions_are_bounded(void **state)
{
	struct fixture *f = *state;
	struct fake_frame wtx = { .type = 0x80, .status = 0x80, .error = 1 };

	for (unsigned i = 0; i < 100; i++)
		fake_rx_frame(f->d, &wtx, 0, 2000);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_ERR_TIMEOUT);
	assert_true(fake_clock_ms(f->d) <= CCID_XFER_HARD_BOUND_MS + CCID_XFER_ABORT_ANSWER_MS);
	assert_true(fake_rx_pending(f->d) > 0);
}

static void caller_timeout_longer_than_the_bound_is_honoured(void **state)
{
	struct fixture *f = *state;
	struct fake_frame late = { .type = 0x81 };
	struct ccid_cmd c;

	fake_rx_frame(f->d, &late, 0, 90000);
	ccid_cmd_get_slot_status(&c, 0);
	assert_int_equal(ccid_xfer_transact(&f->x, &c, 100000, NULL, 0, &f->a), SMC_OK);
}

/* The device answers PC_to_RDR_Abort with a SlotStatus of the same bSeq. */
static void answer_abort(struct fake_dev *d, const uint8_t *msg, size_t len, void *ctx)
{
	int *late_answer = ctx;

	if (len < 10 || msg[0] != 0x72)
		return;
	if (*late_answer) {
		static const uint8_t sw[] = { 0x90, 0x00 };

		fake_rx_answer(d, 0x80, 0x00, 0, 0, sw, 2); /* the aborted command's answer */
	}
	fake_rx_answer(d, 0x81, 0x40, 0xFF, 0, NULL, 0);
}

static void timeout_sends_abort_request_and_abort_message(void **state)
{
	struct fixture *f = *state;
	int late_answer = 1;
	const uint8_t *cmd, *abort_msg;
	struct fake_ctrl ctrl;
	size_t len;

	fake_control_result(f->d, TP_STALL); /* QEMU stalls ABORT */
	fake_set_responder(f->d, answer_abort, &late_answer);
	slot_status(f, 0); /* no answer queued: times out, bSeq 0 */
	fake_rx_clear(f->d);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_ERR_TIMEOUT);
	cmd = fake_sent(f->d, 2, &len);
	assert_int_equal(cmd[0], 0x6F);
	assert_int_equal(fake_control_count(f->d), 2);
	ctrl = fake_control_req(f->d, 1);
	assert_int_equal(ctrl.request_type, 0x21);
	assert_int_equal(ctrl.request, 0x01);
	assert_int_equal(ctrl.value, cmd[6] << 8 | cmd[5]);
	assert_int_equal(ctrl.value, 0x0100);
	abort_msg = fake_sent_last(f->d, &len);
	assert_int_equal(len, 10);
	assert_int_equal(abort_msg[0], 0x72);
	assert_int_equal(abort_msg[5], cmd[5]);
	assert_int_equal(abort_msg[6], cmd[6]);
	/* the late answer and the abort's SlotStatus were read: next one in step */
	assert_int_equal(fake_rx_pending(f->d), 0);
	fake_set_responder(f->d, NULL, NULL);
	fake_rx_answer(f->d, 0x81, 0x00, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
	assert_int_equal(f->a.hdr.bSeq, 2);
}

/* ---- devices that go away or do not understand ----------------------------- */

static void no_device_on_receive_marks_the_reader_gone(void **state)
{
	struct fixture *f = *state;

	fake_rx_status(f->d, TP_NO_DEVICE);
	assert_int_equal(slot_status(f, 0), SMC_ERR_NO_DEVICE);
	assert_true(ccid_xfer_is_gone(&f->x));
	assert_int_equal(slot_status(f, 0), SMC_ERR_NO_DEVICE);
	assert_int_equal(fake_sent_count(f->d), 1);
}

static void no_device_on_send_marks_the_reader_gone(void **state)
{
	struct fixture *f = *state;

	fake_send_result(f->d, TP_NO_DEVICE);
	assert_int_equal(xfr(f, apdu, sizeof(apdu), sizeof(f->out)), SMC_ERR_NO_DEVICE);
	assert_true(ccid_xfer_is_gone(&f->x));
	assert_int_equal(fake_receive_calls(f->d), 0);
}

static void no_device_during_abort_is_no_device(void **state)
{
	struct fixture *f = *state;

	fake_control_result(f->d, TP_NO_DEVICE);
	assert_int_equal(slot_status(f, 0), SMC_ERR_NO_DEVICE);
	assert_true(ccid_xfer_is_gone(&f->x));
}

static void io_error_is_comm_error(void **state)
{
	struct fixture *f = *state;

	fake_rx_status(f->d, TP_IO_ERROR);
	assert_int_equal(slot_status(f, 0), SMC_ERR_COMM);
	assert_false(ccid_xfer_is_gone(&f->x));
}

/* After an I/O error in the middle of an answer the rest of it is still in the
 * reader: it is read away at once, so that the next command gets its own answer
 * instead of taking those bytes for a header. */
static void io_error_mid_answer_is_drained_and_next_command_in_step(void **state)
{
	struct fixture *f = *state;
	static const uint8_t tail[20] = { 0x90, 0x00, 0x12, 0x34 };

	fake_rx_status(f->d, TP_IO_ERROR);
	fake_rx_bytes(f->d, tail, sizeof(tail));
	assert_int_equal(slot_status(f, 0), SMC_ERR_COMM);
	assert_int_equal(fake_rx_pending(f->d), 0);
	fake_rx_answer(f->d, 0x81, 0x00, 0, 0, NULL, 0);
	assert_int_equal(slot_status(f, 0), SMC_OK);
	assert_int_equal(f->a.hdr.bSeq, 1);
}

/* The reader vanishes while a transfer that is no answer is flushed: the call
 * says "no device" (pcscd then stops), not "communication error". */
static void device_gone_while_flushing_garbage_is_no_device(void **state)
{
	struct fixture *f = *state;
	static const uint8_t garbage[10] = { 0x00, 0x05 };

	fake_rx_bytes(f->d, garbage, sizeof(garbage));
	fake_rx_status(f->d, TP_NO_DEVICE);
	assert_int_equal(slot_status(f, 0), SMC_ERR_NO_DEVICE);
	assert_true(ccid_xfer_is_gone(&f->x));
	assert_int_equal(slot_status(f, 0), SMC_ERR_NO_DEVICE);
	assert_int_equal(fake_sent_count(f->d), 1);
}

static void slot_status_answering_escape_means_not_supported(void **state)
{
	struct fixture *f = *state;
	static const uint8_t esc[] = { 0x01 };
	struct ccid_cmd c;

	fake_rx_answer(f->d, 0x81, 0x40, 0x00, 0, NULL, 0);
	ccid_cmd_escape(&c, 0, esc, sizeof(esc));
	assert_int_equal(ccid_xfer_transact(&f->x, &c, TIMEOUT_MS, f->out, sizeof(f->out), &f->a),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(f->a.bError, 0);
	fake_rx_answer(f->d, 0x83, 0x00, 0x00, 0, esc, 1);
	assert_int_equal(ccid_xfer_transact(&f->x, &c, TIMEOUT_MS, f->out, sizeof(f->out), &f->a),
			 SMC_OK);
	assert_int_equal(f->out[0], 0x01);
}

static void failed_answers_map_to_statuses(void **state)
{
	struct ccid_answer a = { .cmd = CCID_CMD_FAILED };

	(void)state;
	a.icc = CCID_ICC_ABSENT;
	a.bError = CCID_ERR_ICC_MUTE;
	assert_int_equal(ccid_answer_failure(&a, "test"), SMC_ERR_NO_MEDIA);
	a.icc = CCID_ICC_INACTIVE;
	assert_int_equal(ccid_answer_failure(&a, "test"), SMC_ERR_TIMEOUT);
	a.bError = CCID_ERR_CMD_NOT_SUPPORTED;
	assert_int_equal(ccid_answer_failure(&a, "test"), SMC_ERR_NOT_SUPPORTED);
	a.bError = CCID_ERR_PIN_CANCELLED;
	assert_int_equal(ccid_answer_failure(&a, "test"), SMC_ERR_CANCELLED);
	a.bError = 0x0A;
	assert_int_equal(ccid_answer_failure(&a, "test"), SMC_ERR_COMM);
	a.bError = CCID_ERR_HW_ERROR;
	assert_int_equal(ccid_answer_failure(&a, "test"), SMC_ERR_COMM);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(answer_carries_the_commands_bseq_and_bseq_increments),
		T(presence_polls_are_dumped_at_the_periodic_level),
		T(zero_length_reads_are_skipped),
		T(endless_zero_length_reads_end_as_no_answer),
		T(stall_before_the_answer_is_read_past),
		T(answer_split_across_reads_is_reassembled),
		T(header_split_across_reads_is_reassembled),
		T(trailing_bytes_after_an_answer_are_ignored),
		T(stale_bseq_is_dropped),
		T(malformed_stale_answer_is_dropped),
		T(split_stale_answer_is_dropped_whole),
		T(wrong_bslot_is_dropped),
		T(endless_stale_answers_give_up),
		T(dwlength_beyond_received_keeps_reading_then_times_out),
		T(dwlength_beyond_buffer_is_comm_error_and_next_command_in_step),
		T(absurd_dwlength_is_comm_error_without_hanging),
		T(unknown_message_type_is_comm_error),
		T(rfu_status_is_comm_error),
		T(answer_of_the_wrong_type_is_comm_error),
		T(answer_larger_than_caller_buffer_is_reported_and_consumed),
		cmocka_unit_test_setup_teardown(command_longer_than_the_reader_takes_is_not_sent,
						setup_small, teardown),
		T(time_extension_then_answer),
		T(late_answer_without_time_extension_times_out),
		T(time_extensions_are_bounded),
		T(caller_timeout_longer_than_the_bound_is_honoured),
		T(timeout_sends_abort_request_and_abort_message),
		T(no_device_on_receive_marks_the_reader_gone),
		T(no_device_on_send_marks_the_reader_gone),
		T(no_device_during_abort_is_no_device),
		T(io_error_is_comm_error),
		T(io_error_mid_answer_is_drained_and_next_command_in_step),
		T(device_gone_while_flushing_garbage_is_no_device),
		T(slot_status_answering_escape_means_not_supported),
		cmocka_unit_test(failed_answers_map_to_statuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
