/* The CCID message codec: every builder against the bytes CCID 1.1 chapter 6
 * prescribes, encode/decode round trips, and every malformed answer rejected. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ccid/ccid_msg.h"

static size_t encode(const struct ccid_cmd *c, uint8_t seq, uint8_t *out, size_t cap)
{
	struct ccid_cmd copy = *c;

	copy.hdr.bSeq = seq;
	return ccid_encode(&copy, out, cap);
}

static void power_on_encodes_bpowerselect(void **state)
{
	static const uint8_t want[] = { 0x62, 0, 0, 0, 0, 0x01, 0x07, 0x02, 0, 0 };
	struct ccid_cmd c;
	uint8_t out[16];

	(void)state;
	ccid_cmd_icc_power_on(&c, 1, CCID_POWER_3V);
	assert_int_equal(encode(&c, 7, out, sizeof(out)), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void xfr_block_encodes_bwi_level_and_data_little_endian(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xA4, 0x04, 0x00 };
	static const uint8_t want[] = { 0x6F, 4, 0, 0, 0, 0x00, 0x2A, 0x05, 0x10, 0x02,
					0x00, 0xA4, 0x04, 0x00 };
	struct ccid_cmd c;
	uint8_t out[32];

	(void)state;
	ccid_cmd_xfr_block(&c, 0, 5, 0x0210, apdu, sizeof(apdu));
	assert_int_equal(encode(&c, 42, out, sizeof(out)), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void xfr_block_round_trips_through_decode_header(void **state)
{
	uint8_t data[300], out[400];
	struct ccid_header h;
	struct ccid_cmd c;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	ccid_cmd_xfr_block(&c, 3, 0, CCID_CHAIN_CONTINUE, data, sizeof(data));
	len = encode(&c, 200, out, sizeof(out));
	assert_int_equal(len, 310);
	assert_int_equal(ccid_decode_header(out, len, &h), CCID_DECODE_OK);
	assert_int_equal(h.bMessageType, CCID_PC_TO_RDR_XFR_BLOCK);
	assert_int_equal(h.dwLength, 300);
	assert_int_equal(h.bSlot, 3);
	assert_int_equal(h.bSeq, 200);
	assert_int_equal(h.abSpecific[1] | h.abSpecific[2] << 8, CCID_CHAIN_CONTINUE);
	assert_memory_equal(out + 10, data, sizeof(data));
}

/* Each builder yields its message type and nothing but its specific bytes. */
static void every_builder_yields_its_type_and_expected_answer(void **state)
{
	uint8_t b5[CCID_PARAMS_T0_LEN], b7[CCID_PARAMS_T1_LEN], b8[CCID_DATA_RATE_LEN];
	struct ccid_params_t0 p0 = { 0x11, 0, 0, 10, 0 };
	struct ccid_params_t1 p1 = { 0x11, 0x10, 0, 0x4D, 0, 32, 0 };
	static const uint8_t esc[] = { 1, 2, 3 };
	struct {
		struct ccid_cmd c;
		uint8_t type, answer, spec0;
	} t[16];
	uint8_t out[64];
	struct ccid_header h;
	size_t n = 0, len;

	(void)state;
#define EXPECT(ty, ans, sp) (t[n].type = (ty), t[n].answer = (ans), t[n].spec0 = (sp), n++)
	ccid_cmd_icc_power_on(&t[n].c, 0, CCID_POWER_AUTO);
	EXPECT(0x62, 0x80, 0);
	ccid_cmd_icc_power_off(&t[n].c, 0);
	EXPECT(0x63, 0x81, 0);
	ccid_cmd_get_slot_status(&t[n].c, 0);
	EXPECT(0x65, 0x81, 0);
	ccid_cmd_xfr_block(&t[n].c, 0, 0, 0, NULL, 0);
	EXPECT(0x6F, 0x80, 0);
	ccid_cmd_get_parameters(&t[n].c, 0);
	EXPECT(0x6C, 0x82, 0);
	ccid_cmd_reset_parameters(&t[n].c, 0);
	EXPECT(0x6D, 0x82, 0);
	ccid_cmd_set_parameters_t0(&t[n].c, 0, &p0, b5);
	EXPECT(0x61, 0x82, 0);
	ccid_cmd_set_parameters_t1(&t[n].c, 0, &p1, b7);
	EXPECT(0x61, 0x82, 1);
	ccid_cmd_escape(&t[n].c, 0, esc, sizeof(esc));
	EXPECT(0x6B, 0x83, 0);
	ccid_cmd_icc_clock(&t[n].c, 0, CCID_CLOCK_STOP);
	EXPECT(0x6E, 0x81, 1);
	ccid_cmd_t0_apdu(&t[n].c, 0, 3, 0xC0, 0xC2);
	EXPECT(0x6A, 0x81, 3);
	ccid_cmd_secure(&t[n].c, 0, 0, 0, esc, sizeof(esc));
	EXPECT(0x69, 0x80, 0);
	ccid_cmd_mechanical(&t[n].c, 0, CCID_MECH_EJECT);
	EXPECT(0x71, 0x81, 2);
	ccid_cmd_abort(&t[n].c, 0);
	EXPECT(0x72, 0x81, 0);
	ccid_cmd_set_data_rate_and_clock(&t[n].c, 0, 4000, 9600, b8);
	EXPECT(0x73, 0x84, 0);
#undef EXPECT
	for (size_t i = 0; i < n; i++) {
		len = encode(&t[i].c, (uint8_t)i, out, sizeof(out));
		assert_int_equal(len, 10 + t[i].c.hdr.dwLength);
		assert_int_equal(ccid_decode_header(out, len, &h), CCID_DECODE_OK);
		assert_int_equal(h.bMessageType, t[i].type);
		assert_int_equal(h.bSeq, i);
		assert_int_equal(h.abSpecific[0], t[i].spec0);
		assert_int_equal(ccid_answer_type_for(h.bMessageType), t[i].answer);
	}
	assert_int_equal(ccid_answer_type_for(0x80), 0);
}

static void set_parameters_round_trip_t0_and_t1(void **state)
{
	struct ccid_params_t0 p0 = { 0x96, 0x02, 0x05, 0x0A, 0x00 }, q0;
	struct ccid_params_t1 p1 = { 0x13, 0x13, 0xFF, 0x4D, 0x00, 0xFE, 0x00 }, q1;
	uint8_t b5[CCID_PARAMS_T0_LEN], b7[CCID_PARAMS_T1_LEN], out[32];
	struct ccid_cmd c;

	(void)state;
	ccid_cmd_set_parameters_t0(&c, 0, &p0, b5);
	assert_int_equal(encode(&c, 0, out, sizeof(out)), 15);
	assert_int_equal(out[7], 0);
	assert_int_equal(ccid_decode_params_t0(out + 10, 5, &q0), 0);
	assert_memory_equal(&p0, &q0, sizeof(p0));
	ccid_cmd_set_parameters_t1(&c, 0, &p1, b7);
	assert_int_equal(encode(&c, 0, out, sizeof(out)), 17);
	assert_int_equal(out[7], 1);
	assert_int_equal(ccid_decode_params_t1(out + 10, 7, &q1), 0);
	assert_memory_equal(&p1, &q1, sizeof(p1));
	assert_int_equal(ccid_decode_params_t1(out + 10, 5, &q1), -1);
	assert_int_equal(ccid_decode_params_t0(out + 10, 7, &q0), -1);
}

static void set_data_rate_encodes_clock_then_rate(void **state)
{
	static const uint8_t want[] = { 0xA0, 0x0F, 0, 0, 0x80, 0x25, 0, 0 };
	uint8_t block[CCID_DATA_RATE_LEN], out[32];
	struct ccid_cmd c;

	(void)state;
	ccid_cmd_set_data_rate_and_clock(&c, 0, 4000, 9600, block);
	assert_int_equal(encode(&c, 0, out, sizeof(out)), 18);
	assert_int_equal(out[0], 0x73);
	assert_memory_equal(out + 10, want, sizeof(want));
}

static void encode_refuses_a_buffer_too_small(void **state)
{
	uint8_t data[20] = { 0 }, out[29];
	struct ccid_cmd c;

	(void)state;
	ccid_cmd_xfr_block(&c, 0, 0, 0, data, sizeof(data));
	assert_int_equal(ccid_encode(&c, out, sizeof(out)), 0);
	assert_int_equal(ccid_encode(&c, out, 9), 0);
	ccid_cmd_get_slot_status(&c, 0);
	assert_int_equal(ccid_encode(&c, out, 9), 0);
	assert_int_equal(ccid_encode(&c, out, 10), 10);
}

/* ---- answers ---------------------------------------------------------- */

static void decode_data_block_fields(void **state)
{
	static const uint8_t msg[] = { 0x80, 3, 0, 0, 0, 1, 9, 0x00, 0x00, 0x01, 0xAA, 0x90, 0x00 };
	struct ccid_answer a;

	(void)state;
	assert_int_equal(ccid_decode_answer(msg, sizeof(msg), &a), CCID_DECODE_OK);
	assert_int_equal(a.hdr.bMessageType, CCID_RDR_TO_PC_DATA_BLOCK);
	assert_int_equal(a.hdr.dwLength, 3);
	assert_int_equal(a.hdr.bSlot, 1);
	assert_int_equal(a.hdr.bSeq, 9);
	assert_int_equal(a.icc, CCID_ICC_ACTIVE);
	assert_int_equal(a.cmd, CCID_CMD_PROCESSED);
	assert_int_equal(a.bSpecific, CCID_CHAIN_BEGIN);
	assert_ptr_equal(a.data, msg + 10);
}

static void decode_status_bits(void **state)
{
	uint8_t msg[10] = { 0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	struct ccid_answer a;

	(void)state;
	msg[7] = 0x42; /* failed, absent */
	msg[8] = 0xFE;
	assert_int_equal(ccid_decode_answer(msg, 10, &a), CCID_DECODE_OK);
	assert_int_equal(a.icc, CCID_ICC_ABSENT);
	assert_int_equal(a.cmd, CCID_CMD_FAILED);
	assert_int_equal(a.bError, 0xFE);
	msg[7] = 0x81; /* time extension, inactive */
	assert_int_equal(ccid_decode_answer(msg, 10, &a), CCID_DECODE_OK);
	assert_int_equal(a.icc, CCID_ICC_INACTIVE);
	assert_int_equal(a.cmd, CCID_CMD_TIME_EXTENSION);
	msg[7] = 0x3C; /* RFU bits 2-5 set: tolerated */
	assert_int_equal(ccid_decode_answer(msg, 10, &a), CCID_DECODE_OK);
	assert_int_equal(a.icc, CCID_ICC_ACTIVE);
}

static void decode_rejects_every_malformed_header(void **state)
{
	struct ccid_answer a;
	uint8_t m[20];

	(void)state;
#define RESET(type, len) do { memset(m, 0, sizeof(m)); m[0] = (type); m[1] = (len); } while (0)
	RESET(0x80, 0);
	assert_int_equal(ccid_decode_answer(m, 9, &a), CCID_DECODE_SHORT);
	assert_int_equal(ccid_decode_answer(NULL, 10, &a), CCID_DECODE_SHORT);
	RESET(0x85, 0);
	assert_int_equal(ccid_decode_answer(m, 10, &a), CCID_DECODE_UNKNOWN_TYPE);
	RESET(0x6F, 0); /* a command is no answer */
	assert_int_equal(ccid_decode_answer(m, 10, &a), CCID_DECODE_UNKNOWN_TYPE);
	RESET(0x50, 0); /* interrupt messages do not travel on bulk IN */
	assert_int_equal(ccid_decode_answer(m, 10, &a), CCID_DECODE_UNKNOWN_TYPE);
	RESET(0x80, 11);
	assert_int_equal(ccid_decode_answer(m, 20, &a), CCID_DECODE_TRUNCATED);
	RESET(0x80, 0);
	m[4] = 0x80; /* dwLength 0x80000000 */
	assert_int_equal(ccid_decode_answer(m, 20, &a), CCID_DECODE_TRUNCATED);
	RESET(0x81, 0);
	m[7] = 0x03;
	assert_int_equal(ccid_decode_answer(m, 10, &a), CCID_DECODE_BAD_ICC_STATUS);
	RESET(0x81, 0);
	m[7] = 0xC0;
	assert_int_equal(ccid_decode_answer(m, 10, &a), CCID_DECODE_BAD_CMD_STATUS);
	RESET(0x81, 2); /* SlotStatus carries no data */
	assert_int_equal(ccid_decode_answer(m, 12, &a), CCID_DECODE_BAD_LENGTH);
	RESET(0x82, 7); /* T=0 parameters are 5 bytes */
	assert_int_equal(ccid_decode_answer(m, 17, &a), CCID_DECODE_BAD_LENGTH);
	RESET(0x82, 5);
	m[9] = 1; /* T=1 parameters are 7 bytes */
	assert_int_equal(ccid_decode_answer(m, 15, &a), CCID_DECODE_BAD_LENGTH);
	RESET(0x84, 4);
	assert_int_equal(ccid_decode_answer(m, 14, &a), CCID_DECODE_BAD_LENGTH);
#undef RESET
}

static void decode_accepts_lengths_each_type_allows(void **state)
{
	struct ccid_answer a;
	uint8_t m[20] = { 0 };

	(void)state;
	m[0] = 0x82; /* QEMU's Parameters: dwLength 0 */
	assert_int_equal(ccid_decode_answer(m, 10, &a), CCID_DECODE_OK);
	m[1] = 7;
	m[9] = 1;
	assert_int_equal(ccid_decode_answer(m, 17, &a), CCID_DECODE_OK);
	m[0] = 0x84;
	m[1] = 8;
	assert_int_equal(ccid_decode_answer(m, 18, &a), CCID_DECODE_OK);
	m[0] = 0x83;
	m[1] = 10;
	assert_int_equal(ccid_decode_answer(m, 20, &a), CCID_DECODE_OK);
}

static void error_strings_name_each_ccid_error(void **state)
{
	(void)state;
	assert_string_equal(ccid_error_str(0xFF), "command aborted");
	assert_string_equal(ccid_error_str(0xFE), "ICC mute (no answer from the card)");
	assert_string_equal(ccid_error_str(0xF7), "bad ATR TCK");
	assert_string_equal(ccid_error_str(0xE0), "slot busy");
	assert_string_equal(ccid_error_str(0x00), "command not supported");
	assert_string_equal(ccid_error_str(0x05), "bad value in the command field at this offset");
	assert_string_equal(ccid_error_str(0x90), "RFU error code");
	assert_string_equal(ccid_msg_type_str(0x6F), "PC_to_RDR_XfrBlock");
	assert_string_equal(ccid_msg_type_str(0x81), "RDR_to_PC_SlotStatus");
	assert_string_equal(ccid_decode_result_str(CCID_DECODE_TRUNCATED),
			    "dwLength larger than the bytes received");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(power_on_encodes_bpowerselect),
		cmocka_unit_test(xfr_block_encodes_bwi_level_and_data_little_endian),
		cmocka_unit_test(xfr_block_round_trips_through_decode_header),
		cmocka_unit_test(every_builder_yields_its_type_and_expected_answer),
		cmocka_unit_test(set_parameters_round_trip_t0_and_t1),
		cmocka_unit_test(set_data_rate_encodes_clock_then_rate),
		cmocka_unit_test(encode_refuses_a_buffer_too_small),
		cmocka_unit_test(decode_data_block_fields),
		cmocka_unit_test(decode_status_bits),
		cmocka_unit_test(decode_rejects_every_malformed_header),
		cmocka_unit_test(decode_accepts_lengths_each_type_allows),
		cmocka_unit_test(error_strings_name_each_ccid_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
