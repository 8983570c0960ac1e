/* Control codes through RDF_IOCTL_VENDOR (what IFDHControl asks): the PC/SC v2
 * part 10 features (feature list, PIN properties, TLV properties, PIN
 * verification and modification on the keypad), Escape behind the
 * administrator's permission, and the mechanical functions.
 *
 * Against the virtual reader (rig.h), whose keypad "types" the profile's PIN
 * and whose applet checks it, so that a verification is seen on the card; and
 * against the scripted fake (fake_transport.h) where the exact bytes of the
 * Secure, Escape and Mechanical messages, or answers the virtual reader never
 * gives (PIN timeout, cancel), matter. The application's structures and the
 * control codes are pcsc-lite's (reader.h), not the driver's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wintypes.h>
#include <reader.h>

#include "ccid/ccid_reader.h"
#include "fake_transport.h"
#include "rig.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Windows' value of CM_IOCTL_GET_FEATURE_REQUEST: CTL_CODE(0x31, 3400, 0, 0). */
#define WINDOWS_GET_FEATURE_REQUEST 0x313520u
/* libccid's IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE */
#define VENDOR_IFD_EXCHANGE SCARD_CTL_CODE(1)
/* The driver's mechanical codes: SCARD_CTL_CODE(3500 + bFunction) */
#define MECH_ACCEPT SCARD_CTL_CODE(3501)
#define MECH_EJECT SCARD_CTL_CODE(3502)
#define MECH_CAPTURE SCARD_CTL_CODE(3503)
#define MECH_LOCK SCARD_CTL_CODE(3504)
#define MECH_UNLOCK SCARD_CTL_CODE(3505)

#define MSG_SECURE 0x69
#define MSG_ESCAPE 0x6B
#define MSG_MECHANICAL 0x71

/* ---- a spy on the in-process transport: which messages went out --------- */

static struct {
	const struct ccid_transport_ops *real;
	size_t sent[256];
} spy;
static struct ccid_transport_ops spy_ops;

static tp_status spy_send(struct ccid_transport *tp, const uint8_t *buf, size_t len, unsigned timeout_ms)
{
	if (len > 0)
		spy.sent[buf[0]]++;
	return spy.real->send(tp, buf, len, timeout_ms);
}

static void put_spy(struct ccid_transport *tp)
{
	memset(&spy, 0, sizeof(spy));
	spy.real = tp->ops;
	spy_ops = *spy.real;
	spy_ops.send = spy_send;
	tp->ops = &spy_ops;
}

static struct rig *open_spied(const char *const kv[][2], size_t n_kv)
{
	return rig_open_wrapped(kv, n_kv, 0, put_spy);
}

/* ---- control codes --------------------------------------------------------- */

static smc_status control(struct rig *r, uint32_t code, const uint8_t *in, size_t in_len, size_t out_cap)
{
	return smc_device_control(r->ext, SMC_REQ_VENDOR_IOCTL, code, in, in_len, r->reply, out_cap,
				  &r->reply_len);
}

/* The control code the feature list gives for tag, 0 when not listed; the
 * list must be well formed (6-byte PCSC_TLV_STRUCTUREs, each tag once). */
static uint32_t feature_code(struct rig *r, uint8_t tag)
{
	uint32_t code = 0;
	int seen = 0;

	assert_int_equal(control(r, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, sizeof(r->reply)), SMC_OK);
	assert_int_equal(r->reply_len % sizeof(PCSC_TLV_STRUCTURE), 0);
	for (size_t i = 0; i < r->reply_len; i += sizeof(PCSC_TLV_STRUCTURE)) {
		const uint8_t *p = r->reply + i;

		assert_int_equal(p[1], 4);
		if (p[0] != tag)
			continue;
		assert_int_equal(seen++, 0);
		code = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
	}
	return code;
}

/* The tags of the feature list, in order. */
static size_t feature_tags(struct rig *r, uint32_t request, uint8_t *tags)
{
	size_t n = 0;

	assert_int_equal(control(r, request, NULL, 0, sizeof(r->reply)), SMC_OK);
	for (size_t i = 0; i + 6 <= r->reply_len; i += 6) {
		uint32_t code = (uint32_t)r->reply[i + 2] << 24 | (uint32_t)r->reply[i + 3] << 16 |
				(uint32_t)r->reply[i + 4] << 8 | r->reply[i + 5];

		/* reader.h's convention: each feature at CM_IOCTL_GET_FEATURE_REQUEST + tag */
		assert_int_equal(code, CM_IOCTL_GET_FEATURE_REQUEST + r->reply[i]);
		tags[n++] = r->reply[i];
	}
	return n;
}

/* ---- the applet's PIN (sim/README.md, "The test applet") ---------------------- */

static void card_verify_status(struct rig *r, uint16_t sw)
{
	rig_apdu(r, (const uint8_t *)"\x00\x20\x00\x80", 4, 0, sw);
}

static void card_verify_pin(struct rig *r, const char *pin, uint16_t sw)
{
	uint8_t apdu[13] = { 0x00, 0x20, 0x00, 0x80, 0x08 };

	memset(apdu + 5, 0xFF, 8);
	memcpy(apdu + 5, pin, strlen(pin));
	rig_apdu(r, apdu, sizeof(apdu), 0, sw);
}

/* ---- the application's structures (reader.h) ---------------------------------- */

/* VERIFY with an 8-byte ASCII PIN block, left justified, padded with FF. */
static const uint8_t verify_apdu[] = { 0x00, 0x20, 0x00, 0x80, 0x08, 0xFF, 0xFF, 0xFF,
				       0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
/* CHANGE REFERENCE DATA: the current PIN's block, then the new one's. */
static const uint8_t modify_apdu[] = { 0x00, 0x24, 0x00, 0x80, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				       0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };

struct pin_buf {
	union {
		PIN_VERIFY_STRUCTURE v;
		PIN_MODIFY_STRUCTURE m;
		uint8_t bytes[600];
	} u;
	size_t len;
};

static void make_verify(struct pin_buf *b, const uint8_t *apdu, size_t apdu_len)
{
	PIN_VERIFY_STRUCTURE *v = &b->u.v;

	memset(b, 0, sizeof(*b));
	v->bTimerOut = 30;
	v->bTimerOut2 = 0;
	v->bmFormatString = 0x82;          /* units bytes, position 0, left, ASCII */
	v->bmPINBlockString = 0x08;        /* no length field, 8-byte block */
	v->bmPINLengthFormat = 0x00;
	v->wPINMaxExtraDigit = 0x0408;     /* 4 to 8 digits */
	v->bEntryValidationCondition = 0x02;
	v->bNumberMessage = 0x01;
	v->wLangId = 0x0409;
	v->bMsgIndex = 0x00;
	v->ulDataLength = (uint32_t)apdu_len;
	memcpy(b->u.bytes + sizeof(*v), apdu, apdu_len);
	b->len = sizeof(*v) + apdu_len;
}

static void make_modify(struct pin_buf *b, uint8_t n_messages)
{
	PIN_MODIFY_STRUCTURE *m = &b->u.m;

	memset(b, 0, sizeof(*b));
	m->bTimerOut = 30;
	m->bmFormatString = 0x82;
	m->bmPINBlockString = 0x08;
	m->bInsertionOffsetOld = 0;
	m->bInsertionOffsetNew = 8;
	m->wPINMaxExtraDigit = 0x0408;
	m->bConfirmPIN = 0x03;             /* confirm the new PIN, enter the current one */
	m->bEntryValidationCondition = 0x02;
	m->bNumberMessage = n_messages;
	m->wLangId = 0x0409;
	m->bMsgIndex1 = 0x00;
	m->bMsgIndex2 = 0x01;
	m->bMsgIndex3 = 0x02;
	m->ulDataLength = sizeof(modify_apdu);
	memcpy(b->u.bytes + sizeof(*m), modify_apdu, sizeof(modify_apdu));
	b->len = sizeof(*m) + sizeof(modify_apdu);
}

static const char *const pinpad_kv[][2] = { { "pin-support", "verify,modify" }, { "lcd", "2x16" } };

/* A pinpad reader with the card powered, T=1, the applet selected. */
static struct rig *pinpad_ready(const char *const kv[][2], size_t n_kv)
{
	struct rig *r = open_spied(kv, n_kv);

	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T1);
	rig_select(r);
	return r;
}

static smc_status pin_control(struct rig *r, uint8_t feature, const struct pin_buf *b, size_t out_cap)
{
	uint32_t code = feature_code(r, feature);

	assert_int_not_equal(code, 0);
	return control(r, code, b->u.bytes, b->len, out_cap);
}

static void assert_sw(const struct rig *r, uint16_t sw)
{
	assert_int_equal(r->reply_len, 2);
	assert_int_equal(r->reply[0] << 8 | r->reply[1], sw);
}

/* ---- the feature list ------------------------------------------------------ */

static void part10_features_of_a_reader_without_pinpad(void **state)
{
	struct rig *r = open_spied(NULL, 0);
	uint8_t tags[8];

	(void)state;
	assert_int_equal(feature_tags(r, CM_IOCTL_GET_FEATURE_REQUEST, tags), 1);
	assert_int_equal(tags[0], FEATURE_GET_TLV_PROPERTIES);
	assert_int_equal(feature_code(r, FEATURE_VERIFY_PIN_DIRECT), 0);
	assert_int_equal(feature_code(r, FEATURE_CCID_ESC_COMMAND), 0);
	/* asked anyway: refused without a word to the reader */
	assert_int_equal(control(r, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_VERIFY_PIN_DIRECT, NULL, 0, 64),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(control(r, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_IFD_PIN_PROPERTIES, NULL, 0, 64),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(spy.sent[MSG_SECURE], 0);
	rig_close(r);
}

static void part10_features_of_a_pinpad_reader(void **state)
{
	static const uint8_t both[] = { FEATURE_VERIFY_PIN_DIRECT, FEATURE_MODIFY_PIN_DIRECT,
					FEATURE_IFD_PIN_PROPERTIES, FEATURE_GET_TLV_PROPERTIES };
	static const char *const verify_only[][2] = { { "pin-support", "verify" } };
	uint8_t tags[8];
	struct rig *r = open_spied(pinpad_kv, N(pinpad_kv));

	(void)state;
	assert_int_equal(feature_tags(r, CM_IOCTL_GET_FEATURE_REQUEST, tags), N(both));
	assert_memory_equal(tags, both, N(both));
	rig_close(r);

	r = open_spied(verify_only, 1);
	assert_int_equal(feature_tags(r, CM_IOCTL_GET_FEATURE_REQUEST, tags), 3);
	assert_int_equal(tags[0], FEATURE_VERIFY_PIN_DIRECT);
	assert_int_equal(tags[1], FEATURE_IFD_PIN_PROPERTIES);
	assert_int_equal(tags[2], FEATURE_GET_TLV_PROPERTIES);
	rig_close(r);
}

static void part10_windows_value_of_get_feature_request(void **state)
{
	uint8_t pcsc[64], tags[8];
	size_t n;
	struct rig *r = open_spied(pinpad_kv, N(pinpad_kv));

	(void)state;
	assert_int_equal(feature_tags(r, CM_IOCTL_GET_FEATURE_REQUEST, tags), 4);
	n = r->reply_len;
	memcpy(pcsc, r->reply, n);
	assert_int_equal(feature_tags(r, WINDOWS_GET_FEATURE_REQUEST, tags), 4);
	assert_int_equal(r->reply_len, n);
	assert_memory_equal(r->reply, pcsc, n);
	rig_close(r);
}

static void part10_unknown_control_code_is_not_supported(void **state)
{
	struct rig *r = open_spied(pinpad_kv, N(pinpad_kv));

	(void)state;
	assert_int_equal(control(r, SCARD_CTL_CODE(3399), NULL, 0, 64), SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(control(r, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_ABORT, NULL, 0, 64),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(r->reply_len, 0);
	rig_close(r);
}

/* ---- too small buffers: the size needed, nothing written -------------------- */

static void assert_too_small(struct rig *r, uint32_t code, size_t need)
{
	memset(r->reply, 0xEE, sizeof(r->reply));
	assert_int_equal(control(r, code, NULL, 0, need - 1), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(r->reply_len, need);
	for (size_t i = 0; i < need; i++)
		assert_int_equal(r->reply[i], 0xEE);
	assert_int_equal(control(r, code, NULL, 0, need), SMC_OK);
	assert_int_equal(r->reply_len, need);
}

static void part10_too_small_buffers_are_refused_with_the_size_needed(void **state)
{
	struct rig *r = open_spied(pinpad_kv, N(pinpad_kv));
	uint32_t tlv = feature_code(r, FEATURE_GET_TLV_PROPERTIES);
	size_t tlv_len;

	(void)state;
	assert_too_small(r, CM_IOCTL_GET_FEATURE_REQUEST, 24);
	assert_too_small(r, WINDOWS_GET_FEATURE_REQUEST, 24);
	assert_too_small(r, feature_code(r, FEATURE_IFD_PIN_PROPERTIES), sizeof(PIN_PROPERTIES_STRUCTURE));
	assert_int_equal(control(r, tlv, NULL, 0, sizeof(r->reply)), SMC_OK);
	tlv_len = r->reply_len;
	assert_too_small(r, tlv, tlv_len);
	/* no buffer at all */
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_VENDOR_IOCTL, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0,
					    NULL, 0, &r->reply_len),
			 SMC_ERR_BUFFER_TOO_SMALL);
	rig_close(r);
}

/* ---- PIN properties and TLV properties ---------------------------------------- */

static void part10_pin_properties(void **state)
{
	struct rig *r = open_spied(pinpad_kv, N(pinpad_kv));
	PIN_PROPERTIES_STRUCTURE p;

	(void)state;
	assert_int_equal(control(r, feature_code(r, FEATURE_IFD_PIN_PROPERTIES), NULL, 0, sizeof(r->reply)),
			 SMC_OK);
	assert_int_equal(r->reply_len, sizeof(p));
	memcpy(&p, r->reply, sizeof(p));
	assert_int_equal(p.wLcdLayout, 0x0210); /* 2 lines of 16 characters */
	assert_int_equal(p.bEntryValidationCondition, 0x07);
	assert_int_equal(p.bTimeOut2, 0);
	rig_close(r);
}

/* One property of a FEATURE_GET_TLV_PROPERTIES answer, little-endian as
 * pcsc-lite's PCSCv2Part10_find_TLV_property_by_tag_from_buffer reads it;
 * -1 when absent. Every tag appears once and every length fits the buffer. */
static long tlv_value(const uint8_t *buf, size_t len, uint8_t tag)
{
	long value = -1;

	for (size_t i = 0; i < len;) {
		assert_true(i + 2 <= len);
		assert_true(i + 2 + buf[i + 1] <= len);
		if (buf[i] == tag) {
			assert_int_equal(value, -1);
			value = 0;
			for (unsigned k = buf[i + 1]; k > 0; k--)
				value = value << 8 | buf[i + 2 + k - 1];
		}
		i += 2u + buf[i + 1];
	}
	return value;
}

static void part10_tlv_properties_of_a_pinpad_reader(void **state)
{
	static const char *const kv[][2] = { { "pin-support", "verify,modify" }, { "lcd", "4x20" },
					     { "vid", "08E6" }, { "pid", "3478" } };
	struct rig *r = open_spied(kv, N(kv));
	const uint8_t *p = r->reply;

	(void)state;
	assert_int_equal(control(r, feature_code(r, FEATURE_GET_TLV_PROPERTIES), NULL, 0, sizeof(r->reply)),
			 SMC_OK);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_wLcdLayout), 0x0414);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_bEntryValidationCondition), 7);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_bTimeOut2), 0);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_wLcdMaxCharacters), 20);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_wLcdMaxLines), 4);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_bMinPINSize), 4);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_bMaxPINSize), 12);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_sFirmwareID), -1);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_bPPDUSupport), 0);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_dwMaxAPDUDataSize), 0);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_wIdVendor), 0x08E6);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_wIdProduct), 0x3478);
	/* the lengths pcsc-lite's parser takes as integers */
	for (size_t i = 0; i < r->reply_len; i += 2u + p[i + 1])
		assert_true(p[i + 1] == 1 || p[i + 1] == 2 || p[i + 1] == 4);
	rig_close(r);
}

static void part10_tlv_properties_of_a_plain_extended_reader(void **state)
{
	static const char *const kv[][2] = { { "level", "extended" }, { "max-message", "1034" } };
	struct rig *r = open_spied(kv, N(kv));
	const uint8_t *p = r->reply;

	(void)state;
	assert_int_equal(control(r, feature_code(r, FEATURE_GET_TLV_PROPERTIES), NULL, 0, sizeof(r->reply)),
			 SMC_OK);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_wLcdLayout), 0);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_wLcdMaxLines), -1);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_bMinPINSize), -1);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_bEntryValidationCondition), -1);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_dwMaxAPDUDataSize), 65536);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_wIdVendor), 0x1209);
	assert_int_equal(tlv_value(p, r->reply_len, PCSCv2_PART10_PROPERTY_wIdProduct), 0x5CCD);
	rig_close(r);
}

/* ---- PIN verification and modification on the keypad ---------------------------- */

static void part10_verify_pin_on_the_keypad_is_seen_by_the_card(void **state)
{
	struct rig *r = pinpad_ready(pinpad_kv, N(pinpad_kv));
	struct pin_buf b;

	(void)state;
	card_verify_status(r, 0x63C3); /* not verified yet, 3 tries */
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	assert_int_equal(pin_control(r, FEATURE_VERIFY_PIN_DIRECT, &b, sizeof(r->reply)), SMC_OK);
	assert_sw(r, 0x9000);
	assert_int_equal(spy.sent[MSG_SECURE], 1);
	card_verify_status(r, 0x9000);
	rig_close(r);
}

static void part10_wrong_pin_on_the_keypad_gives_63cx(void **state)
{
	static const char *const kv[][2] = { { "pin-support", "verify" }, { "keypad-pin", "9999" } };
	struct rig *r = pinpad_ready(kv, N(kv));
	struct pin_buf b;

	(void)state;
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	assert_int_equal(pin_control(r, FEATURE_VERIFY_PIN_DIRECT, &b, sizeof(r->reply)), SMC_OK);
	assert_sw(r, 0x63C2);
	assert_int_equal(pin_control(r, FEATURE_VERIFY_PIN_DIRECT, &b, sizeof(r->reply)), SMC_OK);
	assert_sw(r, 0x63C1);
	card_verify_status(r, 0x63C1);
	card_verify_pin(r, "1234", 0x9000); /* the right PIN still works, tries back to 3 */
	card_verify_status(r, 0x9000);
	rig_close(r);
}

static void part10_modify_pin_on_the_keypad_changes_the_card_pin(void **state)
{
	struct rig *r = pinpad_ready(pinpad_kv, N(pinpad_kv));
	struct pin_buf b;

	(void)state;
	make_modify(&b, 3);
	assert_int_equal(pin_control(r, FEATURE_MODIFY_PIN_DIRECT, &b, sizeof(r->reply)), SMC_OK);
	assert_sw(r, 0x9000);
	card_verify_pin(r, "1234", 0x63C2);
	card_verify_pin(r, "5678", 0x9000);
	rig_close(r);
}

/* The modification structure carries bMsgIndex2 and bMsgIndex3 only for a
 * second and third message: the reader finds abPINApdu where the driver put it
 * for every bNumberMessage. */
static void part10_modify_pin_with_each_number_of_messages(void **state)
{
	static const char *const kv[][2] = { { "pin-support", "modify" }, { "keypad-new-pin", "1234" } };
	static const uint8_t counts[] = { 0, 1, 2, 3, 0xFF };
	struct rig *r = pinpad_ready(kv, N(kv));
	struct pin_buf b;

	(void)state;
	for (size_t i = 0; i < N(counts); i++) {
		make_modify(&b, counts[i]);
		assert_int_equal(pin_control(r, FEATURE_MODIFY_PIN_DIRECT, &b, sizeof(r->reply)), SMC_OK);
		assert_sw(r, 0x9000);
	}
	assert_int_equal(spy.sent[MSG_SECURE], N(counts));
	card_verify_pin(r, "1234", 0x9000);
	rig_close(r);
}

static void part10_verify_pin_over_t0_at_tpdu_level(void **state)
{
	static const char *const kv[][2] = { { "pin-support", "verify" }, { "level", "tpdu" } };
	struct rig *r = open_spied(kv, N(kv));
	struct pin_buf b;

	(void)state;
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T0);
	rig_select(r);
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	assert_int_equal(pin_control(r, FEATURE_VERIFY_PIN_DIRECT, &b, sizeof(r->reply)), SMC_OK);
	assert_sw(r, 0x9000);
	card_verify_status(r, 0x9000);
	rig_close(r);
}

/* At TPDU level over T=1 the reader would need the T=1 block numbering; the
 * driver says no rather than lose step with the card. */
static void part10_verify_pin_refused_over_t1_at_tpdu_level(void **state)
{
	static const char *const kv[][2] = { { "pin-support", "verify" }, { "level", "tpdu" } };
	struct rig *r = open_spied(kv, N(kv));
	struct pin_buf b;

	(void)state;
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T1);
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	assert_int_equal(pin_control(r, FEATURE_VERIFY_PIN_DIRECT, &b, sizeof(r->reply)),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(spy.sent[MSG_SECURE], 0);
	rig_select(r); /* T=1 still in step */
	rig_close(r);
}

static void part10_verify_pin_needs_a_connected_card(void **state)
{
	struct rig *r = open_spied(pinpad_kv, N(pinpad_kv));
	struct pin_buf b;

	(void)state;
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	rig_power(r);
	assert_int_equal(pin_control(r, FEATURE_VERIFY_PIN_DIRECT, &b, sizeof(r->reply)),
			 SMC_ERR_INVALID_STATE);
	inproc_remove_card(r->tp, 0);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, NULL),
			 SMC_ERR_NO_MEDIA);
	assert_int_equal(pin_control(r, FEATURE_VERIFY_PIN_DIRECT, &b, sizeof(r->reply)), SMC_ERR_NO_MEDIA);
	assert_int_equal(spy.sent[MSG_SECURE], 0);
	rig_close(r);
}

/* A buffer that cannot take SW1 SW2 is refused before the user types anything. */
static void part10_verify_pin_refuses_a_buffer_without_room_for_sw(void **state)
{
	struct rig *r = pinpad_ready(pinpad_kv, N(pinpad_kv));
	struct pin_buf b;

	(void)state;
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	assert_int_equal(pin_control(r, FEATURE_VERIFY_PIN_DIRECT, &b, 1), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(r->reply_len, 2);
	assert_int_equal(spy.sent[MSG_SECURE], 0);
	card_verify_status(r, 0x63C3);
	rig_close(r);
}

/* The largest APDU the reader's message holds (dwMaxCCIDMessageLength 271:
 * 10 + 15 + 246) goes out; the card judges it. */
static void part10_verify_pin_apdu_filling_the_reader_message_goes_out(void **state)
{
	uint8_t apdu[5 + 241] = { 0x00, 0x20, 0x00, 0x80, 241 };
	struct rig *r = pinpad_ready(pinpad_kv, N(pinpad_kv));
	struct pin_buf b;

	(void)state;
	memset(apdu + 5, 0xFF, sizeof(apdu) - 5);
	make_verify(&b, apdu, sizeof(apdu));
	assert_int_equal(pin_control(r, FEATURE_VERIFY_PIN_DIRECT, &b, sizeof(r->reply)), SMC_OK);
	assert_int_equal(r->reply_len, 2);
	assert_int_equal(spy.sent[MSG_SECURE], 1);
	rig_close(r);
}

/* ---- malformed structures: one field each, refused before the reader sees them ---- */

struct malformed {
	const char *name;
	int modify;
	void (*spoil)(struct pin_buf *b);
};

static void shorter_than_an_apdu(struct pin_buf *b)
{
	make_verify(b, verify_apdu, 3);
}

static void data_length_one_more(struct pin_buf *b)
{
	b->u.v.ulDataLength++;
}

static void data_length_one_less(struct pin_buf *b)
{
	b->u.v.ulDataLength--;
}

static void data_length_huge(struct pin_buf *b)
{
	b->u.v.ulDataLength = 0xFFFFFFF0u;
}

static void format_rfu(struct pin_buf *b)
{
	b->u.v.bmFormatString = 0x83;
}

static void length_format_rfu_bit(struct pin_buf *b)
{
	b->u.v.bmPINLengthFormat = 0x20;
}

static void min_above_max(struct pin_buf *b)
{
	b->u.v.wPINMaxExtraDigit = 0x0804;
}

static void max_zero(struct pin_buf *b)
{
	b->u.v.wPINMaxExtraDigit = 0x0000;
}

static void validation_zero(struct pin_buf *b)
{
	b->u.v.bEntryValidationCondition = 0x00;
}

static void validation_rfu(struct pin_buf *b)
{
	b->u.v.bEntryValidationCondition = 0x0A;
}

static void verify_two_messages(struct pin_buf *b)
{
	b->u.v.bNumberMessage = 2;
}

static void apdu_extended_form(struct pin_buf *b)
{
	static const uint8_t ext[] = { 0x00, 0x20, 0x00, 0x80, 0x00, 0x00, 0x08, 0xFF, 0xFF,
				       0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };

	make_verify(b, ext, sizeof(ext));
}

static void apdu_lc_beyond_data(struct pin_buf *b)
{
	b->u.bytes[sizeof(PIN_VERIFY_STRUCTURE) + 4] = 0x09;
}

static void apdu_longer_than_short(struct pin_buf *b)
{
	uint8_t apdu[262] = { 0x00, 0x20, 0x00, 0x80, 0xFF };

	memset(apdu + 5, 0xFF, sizeof(apdu) - 5);
	make_verify(b, apdu, sizeof(apdu));
}

/* The default profile's dwMaxCCIDMessageLength is 271: 10 header bytes and
 * 15 of the CCID structure leave 246 for the APDU. */
static void apdu_longer_than_the_reader_message(struct pin_buf *b)
{
	uint8_t apdu[5 + 242] = { 0x00, 0x20, 0x00, 0x80, 242 };

	memset(apdu + 5, 0xFF, sizeof(apdu) - 5);
	make_verify(b, apdu, sizeof(apdu));
}

static void block_past_data(struct pin_buf *b)
{
	b->u.v.bmPINBlockString = 0x09;
}

static void position_past_data(struct pin_buf *b)
{
	b->u.v.bmFormatString = 0x82 | 1 << 3; /* the 8-byte block at byte 1 of 8 */
}

static void length_field_past_data(struct pin_buf *b)
{
	b->u.v.bmPINBlockString = 0x47;   /* 4-bit length, 7-byte block */
	b->u.v.bmFormatString = 0x8A;     /* PIN at byte 1 */
	b->u.v.bmPINLengthFormat = 0x18;  /* length field at byte 8 of 8 */
}

static void block_without_data_field(struct pin_buf *b)
{
	make_verify(b, verify_apdu, 4);
}

static void modify_shorter_than_an_apdu(struct pin_buf *b)
{
	b->u.m.ulDataLength = 3;
	b->len = sizeof(PIN_MODIFY_STRUCTURE) + 3;
}

static void modify_four_messages(struct pin_buf *b)
{
	b->u.m.bNumberMessage = 4;
}

static void modify_new_offset_past_data(struct pin_buf *b)
{
	b->u.m.bInsertionOffsetNew = 16;
}

static void modify_old_offset_past_data(struct pin_buf *b)
{
	b->u.m.bInsertionOffsetOld = 16;
}

static void modify_new_block_past_data(struct pin_buf *b)
{
	b->u.m.bInsertionOffsetNew = 9;
}

static void modify_data_length_one_more(struct pin_buf *b)
{
	b->u.m.ulDataLength++;
}

static const struct malformed malformed[] = {
	{ "pin_verify_refuses_a_structure_shorter_than_19_bytes_and_an_apdu", 0, shorter_than_an_apdu },
	{ "pin_verify_refuses_ulDataLength_above_the_bytes_given", 0, data_length_one_more },
	{ "pin_verify_refuses_ulDataLength_below_the_bytes_given", 0, data_length_one_less },
	{ "pin_verify_refuses_a_huge_ulDataLength", 0, data_length_huge },
	{ "pin_verify_refuses_bmFormatString_format_3", 0, format_rfu },
	{ "pin_verify_refuses_bmPINLengthFormat_rfu_bits", 0, length_format_rfu_bit },
	{ "pin_verify_refuses_wPINMaxExtraDigit_min_above_max", 0, min_above_max },
	{ "pin_verify_refuses_wPINMaxExtraDigit_max_0", 0, max_zero },
	{ "pin_verify_refuses_bEntryValidationCondition_0", 0, validation_zero },
	{ "pin_verify_refuses_bEntryValidationCondition_rfu_bit", 0, validation_rfu },
	{ "pin_verify_refuses_bNumberMessage_2", 0, verify_two_messages },
	{ "pin_verify_refuses_an_extended_apdu", 0, apdu_extended_form },
	{ "pin_verify_refuses_an_apdu_whose_lc_disagrees", 0, apdu_lc_beyond_data },
	{ "pin_verify_refuses_an_apdu_longer_than_short", 0, apdu_longer_than_short },
	{ "pin_verify_refuses_an_apdu_the_reader_message_cannot_hold", 0, apdu_longer_than_the_reader_message },
	{ "pin_verify_refuses_a_pin_block_past_the_data", 0, block_past_data },
	{ "pin_verify_refuses_a_pin_position_past_the_data", 0, position_past_data },
	{ "pin_verify_refuses_a_length_field_past_the_data", 0, length_field_past_data },
	{ "pin_verify_refuses_a_pin_block_without_data_field", 0, block_without_data_field },
	{ "pin_modify_refuses_a_structure_shorter_than_24_bytes_and_an_apdu", 1, modify_shorter_than_an_apdu },
	{ "pin_modify_refuses_ulDataLength_above_the_bytes_given", 1, modify_data_length_one_more },
	{ "pin_modify_refuses_bNumberMessage_4", 1, modify_four_messages },
	{ "pin_modify_refuses_bInsertionOffsetNew_past_the_data", 1, modify_new_offset_past_data },
	{ "pin_modify_refuses_bInsertionOffsetOld_past_the_data", 1, modify_old_offset_past_data },
	{ "pin_modify_refuses_a_new_pin_block_past_the_data", 1, modify_new_block_past_data },
};

/* One malformed structure (the test's state): INVALID_PARAM, no Secure sent,
 * the card's tries untouched; the same structure unspoilt then works. */
static void pin_structure_refused(void **state)
{
	const struct malformed *m = *state;
	struct rig *r = pinpad_ready(pinpad_kv, N(pinpad_kv));
	uint8_t feature = m->modify ? FEATURE_MODIFY_PIN_DIRECT : FEATURE_VERIFY_PIN_DIRECT;
	struct pin_buf b;

	if (m->modify)
		make_modify(&b, 3);
	else
		make_verify(&b, verify_apdu, sizeof(verify_apdu));
	m->spoil(&b);
	assert_int_equal(pin_control(r, feature, &b, sizeof(r->reply)), SMC_ERR_INVALID_PARAM);
	assert_int_equal(r->reply_len, 0);
	assert_int_equal(spy.sent[MSG_SECURE], 0);
	card_verify_status(r, 0x63C3);
	if (m->modify)
		make_modify(&b, 3);
	else
		make_verify(&b, verify_apdu, sizeof(verify_apdu));
	assert_int_equal(pin_control(r, feature, &b, sizeof(r->reply)), SMC_OK);
	assert_sw(r, 0x9000);
	rig_close(r);
}

/* ---- Escape, only when the administrator allows it ------------------------------- */

static void part10_escape_refused_without_the_option(void **state)
{
	static const uint8_t cmd[] = { 0x01, 0x02, 0x03 };
	struct rig *r = open_spied(NULL, 0);

	(void)state;
	assert_int_equal(feature_code(r, FEATURE_CCID_ESC_COMMAND), 0);
	assert_int_equal(control(r, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_CCID_ESC_COMMAND, cmd, sizeof(cmd),
				 64),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(control(r, VENDOR_IFD_EXCHANGE, cmd, sizeof(cmd), 64), SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(r->reply_len, 0);
	assert_int_equal(spy.sent[MSG_ESCAPE], 0);
	/* another option bit does not allow it either */
	ccid_reader_set_options(r->reader, 0x30);
	assert_int_equal(control(r, VENDOR_IFD_EXCHANGE, cmd, sizeof(cmd), 64), SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(spy.sent[MSG_ESCAPE], 0);
	rig_close(r);
}

static void part10_escape_allowed_with_the_option(void **state)
{
	static const uint8_t cmd[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A };
	struct rig *r = open_spied(NULL, 0);
	uint32_t code;

	(void)state;
	ccid_reader_set_options(r->reader, CCID_OPTION_ESCAPE_ALLOWED);
	code = feature_code(r, FEATURE_CCID_ESC_COMMAND);
	assert_int_equal(code, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_CCID_ESC_COMMAND);
	/* the virtual reader echoes Escape data */
	assert_int_equal(control(r, code, cmd, sizeof(cmd), sizeof(r->reply)), SMC_OK);
	assert_int_equal(r->reply_len, sizeof(cmd));
	assert_memory_equal(r->reply, cmd, sizeof(cmd));
	assert_int_equal(control(r, VENDOR_IFD_EXCHANGE, cmd, 3, sizeof(r->reply)), SMC_OK);
	assert_int_equal(r->reply_len, 3);
	/* an answer longer than the buffer: the size needed, and the pipe still in step */
	memset(r->reply, 0xEE, sizeof(r->reply));
	assert_int_equal(control(r, code, cmd, sizeof(cmd), 4), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(r->reply_len, sizeof(cmd));
	assert_int_equal(r->reply[0], 0xEE);
	assert_int_equal(control(r, code, cmd, 2, sizeof(r->reply)), SMC_OK);
	assert_memory_equal(r->reply, cmd, 2);
	assert_int_equal(spy.sent[MSG_ESCAPE], 4);
	/* PPDUs are the firmware's: not announced even when Escape is allowed */
	assert_int_equal(control(r, feature_code(r, FEATURE_GET_TLV_PROPERTIES), NULL, 0, sizeof(r->reply)),
			 SMC_OK);
	assert_int_equal(tlv_value(r->reply, r->reply_len, PCSCv2_PART10_PROPERTY_bPPDUSupport), 0);
	rig_close(r);
}

/* ---- mechanical functions ------------------------------------------------------ */

static smc_status presence(struct rig *r)
{
	return smc_device_control(r->ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, NULL);
}

static uint8_t icc_presence(struct rig *r)
{
	uint8_t v = 0xEE;
	size_t len = 0;

	assert_int_equal(smc_device_control(r->ext, SMC_REQ_GET_ATTRIBUTE, SCARD_ATTR_ICC_PRESENCE, NULL, 0, &v,
					    1, &len),
			 SMC_OK);
	assert_int_equal(len, 1);
	return v;
}

static void part10_eject_and_swallow_through_mechanical(void **state)
{
	static const char *const kv[][2] = { { "mechanical", "accept,eject" } };
	struct rig *r = open_spied(kv, N(kv));

	(void)state;
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T1);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_EJECT, 0, NULL, 0, NULL, 0, NULL), SMC_OK);
	assert_int_equal(r->ext->reader_caps.current_state, SMC_STATE_ABSENT);
	assert_int_equal(presence(r), SMC_ERR_NO_MEDIA);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_SWALLOW, 0, NULL, 0, NULL, 0, NULL), SMC_OK);
	assert_int_equal(r->ext->reader_caps.current_state, SMC_STATE_SWALLOWED);
	assert_int_equal(icc_presence(r), 2); /* SCARD_ATTR_ICC_PRESENCE: swallowed */
	assert_int_equal(presence(r), SMC_OK);
	assert_int_equal(r->ext->reader_caps.current_state, SMC_STATE_SWALLOWED);
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T1);
	rig_select(r);
	assert_int_equal(spy.sent[MSG_MECHANICAL], 2);
	rig_close(r);
}

static void part10_mechanical_control_codes(void **state)
{
	static const char *const kv[][2] = { { "mechanical", "accept,eject,capture,lock" } };
	struct rig *r = open_spied(kv, N(kv));

	(void)state;
	assert_int_equal(control(r, MECH_LOCK, NULL, 0, 0), SMC_OK);
	assert_int_equal(control(r, MECH_UNLOCK, NULL, 0, 0), SMC_OK);
	assert_int_equal(control(r, MECH_EJECT, NULL, 0, 0), SMC_OK);
	assert_int_equal(presence(r), SMC_ERR_NO_MEDIA);
	assert_int_equal(control(r, MECH_ACCEPT, NULL, 0, 0), SMC_OK);
	assert_int_equal(r->ext->reader_caps.current_state, SMC_STATE_SWALLOWED);
	assert_int_equal(control(r, MECH_CAPTURE, NULL, 0, 0), SMC_OK);
	assert_int_equal(r->ext->reader_caps.current_state, SMC_STATE_ABSENT);
	assert_int_equal(spy.sent[MSG_MECHANICAL], 5);
	/* these codes take no input */
	assert_int_equal(control(r, MECH_LOCK, (const uint8_t *)"x", 1, 0), SMC_ERR_INVALID_PARAM);
	assert_int_equal(spy.sent[MSG_MECHANICAL], 5);
	rig_close(r);
}

static void part10_mechanical_refused_without_the_mechanism(void **state)
{
	static const char *const eject_only[][2] = { { "mechanical", "eject" } };
	struct rig *r = open_spied(NULL, 0);

	(void)state;
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_EJECT, 0, NULL, 0, NULL, 0, NULL),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_SWALLOW, 0, NULL, 0, NULL, 0, NULL),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(control(r, MECH_EJECT, NULL, 0, 0), SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(spy.sent[MSG_MECHANICAL], 0);
	rig_close(r);

	r = open_spied(eject_only, 1);
	assert_int_equal(control(r, MECH_LOCK, NULL, 0, 0), SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(control(r, MECH_CAPTURE, NULL, 0, 0), SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_SWALLOW, 0, NULL, 0, NULL, 0, NULL),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(spy.sent[MSG_MECHANICAL], 0);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_EJECT, 0, NULL, 0, NULL, 0, NULL), SMC_OK);
	assert_int_equal(spy.sent[MSG_MECHANICAL], 1);
	rig_close(r);
}

/* ---- the exact bytes, against the scripted fake --------------------------------- */

/* QEMU's descriptor (TPDU, T=0, automatic parameters) with a PIN pad, an
 * eject mechanism and a 2x16 display. */
static void pinpad_descriptor(uint8_t d[54], uint8_t pin_support)
{
	memcpy(d, fake_qemu_descriptor, 54);
	d[36] = 0x02;        /* dwMechanical: eject */
	d[50] = 0x10;        /* wLcdLayout: 16 characters */
	d[51] = 0x02;        /*             2 lines */
	d[52] = pin_support; /* bPINSupport */
}

/* What the fake reader answers to the next Secure. */
static struct {
	uint8_t status, error;
	const uint8_t *data;
	size_t len;
	unsigned delay_ms;           /* the user's typing time */
} secure_answer;

static const uint8_t t0_atr[] = { 0x3B, 0x00 };

static void fake_reader(struct fake_dev *d, const uint8_t *msg, size_t len, void *ctx)
{
	(void)ctx;
	(void)len;
	switch (msg[0]) {
	case 0x62:
		fake_rx_answer(d, 0x80, 0x00, 0, 0, t0_atr, sizeof(t0_atr));
		break;
	case 0x61:
		fake_rx_answer(d, 0x82, 0x00, 0, msg[7], msg + 10, len - 10);
		break;
	case MSG_SECURE: {
		struct fake_frame fr = { .type = 0x80, .status = secure_answer.status,
					 .error = secure_answer.error, .data = secure_answer.data,
					 .len = secure_answer.len };

		fake_rx_frame(d, &fr, 0, secure_answer.delay_ms);
		break;
	}
	case MSG_ESCAPE:
		fake_rx_answer(d, 0x83, 0x00, 0, 0, msg + 10, len - 10);
		break;
	default:
		fake_rx_answer(d, 0x81, 0x00, 0, 0, NULL, 0);
		break;
	}
}

struct fake_rig {
	struct fake_dev *fd;
	struct ccid_reader *reader;
	struct smc_ext *ext;
	uint8_t reply[300];
	size_t reply_len;
};

static void fake_open(struct fake_rig *f, uint8_t pin_support)
{
	uint8_t d[54];

	pinpad_descriptor(d, pin_support);
	memset(f, 0, sizeof(*f));
	f->fd = fake_new(d, sizeof(d));
	fake_set_responder(f->fd, fake_reader, NULL);
	assert_int_equal(ccid_reader_open(fake_transport(f->fd), &f->reader), SMC_OK);
	f->ext = ccid_reader_slot(f->reader, 0);
	assert_int_equal(smc_device_control(f->ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, f->reply,
					    sizeof(f->reply), &f->reply_len),
			 SMC_OK);
	assert_int_equal(smc_device_control(f->ext, SMC_REQ_SET_PROTOCOL, SMC_PROTOCOL_T0, NULL, 0, NULL, 0,
					    NULL),
			 SMC_OK);
	secure_answer.status = 0;
	secure_answer.error = 0;
	secure_answer.data = (const uint8_t *)"\x90\x00";
	secure_answer.len = 2;
	secure_answer.delay_ms = 0;
	f->reader->xfer.clock = fake_clock_ms;
	f->reader->xfer.clock_ctx = f->fd;
}

static void fake_close(struct fake_rig *f)
{
	ccid_reader_close(f->reader);
	fake_free(f->fd);
}

static smc_status fake_control(struct fake_rig *f, uint32_t code, const uint8_t *in, size_t in_len,
			       size_t out_cap)
{
	return smc_device_control(f->ext, SMC_REQ_VENDOR_IOCTL, code, in, in_len, f->reply, out_cap,
				  &f->reply_len);
}

static const uint8_t *last_sent(struct fake_rig *f, uint8_t type, size_t *len)
{
	const uint8_t *m = fake_sent_last_type(f->fd, type, len);

	assert_non_null(m);
	return m;
}

/* CCID 1.1 6.1.11: bPINOperation 0, then the PIN verification structure in
 * CCID's order; wPINMaxExtraDigit and wLangId little-endian; no bTimerOut2,
 * no ulDataLength. */
static void part10_verify_secure_message_bytes(void **state)
{
	struct fake_rig f;
	struct pin_buf b;
	const uint8_t *m;
	size_t len;
	uint8_t want[15] = { 0x00, 30, 0x82, 0x08, 0x00, 0x08, 0x04, 0x02, 0x01, 0x09, 0x04, 0x00, 0, 0, 0 };

	(void)state;
	fake_open(&f, 0x03);
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	b.u.v.bTimerOut2 = 0x55; /* has no place in CCID */
	assert_int_equal(fake_control(&f, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_VERIFY_PIN_DIRECT, b.u.bytes,
				      b.len, sizeof(f.reply)),
			 SMC_OK);
	assert_int_equal(f.reply_len, 2);
	m = last_sent(&f, MSG_SECURE, &len);
	assert_int_equal(len, 10 + sizeof(want) + sizeof(verify_apdu));
	assert_int_equal(m[1] | m[2] << 8 | m[3] << 16 | (uint32_t)m[4] << 24, sizeof(want) + sizeof(verify_apdu));
	assert_int_equal(m[7], 0); /* bBWI */
	assert_int_equal(m[8] | m[9] << 8, 0); /* wLevelParameter */
	assert_memory_equal(m + 10, want, sizeof(want));
	assert_memory_equal(m + 10 + sizeof(want), verify_apdu, sizeof(verify_apdu));
	fake_close(&f);
}

/* 6.1.11.7: bPINOperation 1; bMsgIndex2 with a second message, bMsgIndex3 with a third. */
static void part10_modify_secure_message_bytes(void **state)
{
	static const struct {
		uint8_t n_messages;
		size_t header;
	} cases[] = { { 0, 18 }, { 1, 19 }, { 2, 19 }, { 3, 20 }, { 0xFF, 20 } };
	struct fake_rig f;
	struct pin_buf b;

	(void)state;
	fake_open(&f, 0x02);
	for (size_t i = 0; i < N(cases); i++) {
		uint8_t want[20] = { 0x01, 30, 0x82, 0x08, 0x00, 0x00, 0x08, 0x08, 0x04, 0x03, 0x02,
				     cases[i].n_messages, 0x09, 0x04, 0x00 };
		const uint8_t *m;
		size_t len, n = 15;

		if (cases[i].n_messages != 0)
			want[n++] = 0x01;
		if (cases[i].n_messages >= 3)
			want[n++] = 0x02;
		want[n++] = 0;
		want[n++] = 0;
		want[n++] = 0;
		assert_int_equal(n, cases[i].header);
		make_modify(&b, cases[i].n_messages);
		assert_int_equal(fake_control(&f, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_MODIFY_PIN_DIRECT,
					      b.u.bytes, b.len, sizeof(f.reply)),
				 SMC_OK);
		m = last_sent(&f, MSG_SECURE, &len);
		assert_int_equal(len, 10 + n + sizeof(modify_apdu));
		assert_memory_equal(m + 10, want, n);
		assert_memory_equal(m + 10 + n, modify_apdu, sizeof(modify_apdu));
	}
	fake_close(&f);
}

/* PC/SC part 10 2.5: the keypad's timeout and cancel become SW 64 00 / 64 01. */
static void part10_pin_timeout_and_cancel_become_sw_6400_6401(void **state)
{
	struct fake_rig f;
	struct pin_buf b;

	(void)state;
	fake_open(&f, 0x01);
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	secure_answer.status = 0x40;
	secure_answer.error = 0xF0;
	secure_answer.len = 0;
	assert_int_equal(fake_control(&f, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_VERIFY_PIN_DIRECT, b.u.bytes,
				      b.len, 2),
			 SMC_OK);
	assert_int_equal(f.reply_len, 2);
	assert_int_equal(f.reply[0] << 8 | f.reply[1], 0x6400);
	secure_answer.error = 0xEF;
	assert_int_equal(fake_control(&f, CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_VERIFY_PIN_DIRECT, b.u.bytes,
				      b.len, 2),
			 SMC_OK);
	assert_int_equal(f.reply[0] << 8 | f.reply[1], 0x6401);
	fake_close(&f);
}

/* bTimerOut 0 leaves the time to the reader, which may give the user well
 * over a minute: the driver still waits (85 s here), and gives up only well
 * after any reader would have (a reader that never answers). */
static void part10_pin_entry_with_the_readers_timeout_is_waited_for(void **state)
{
	uint32_t code = CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_VERIFY_PIN_DIRECT;
	struct fake_rig f;
	struct pin_buf b;
	uint64_t start;

	(void)state;
	fake_open(&f, 0x01);
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	b.u.v.bTimerOut = 0;
	secure_answer.delay_ms = 85000;
	assert_int_equal(fake_control(&f, code, b.u.bytes, b.len, 2), SMC_OK);
	assert_int_equal(f.reply[0] << 8 | f.reply[1], 0x9000);
	secure_answer.delay_ms = 1000000;
	start = fake_clock_ms(f.fd);
	assert_int_equal(fake_control(&f, code, b.u.bytes, b.len, 2), SMC_ERR_TIMEOUT);
	assert_true(fake_clock_ms(f.fd) - start < 120000);
	fake_close(&f);
}

static void part10_secure_failures_and_odd_answers(void **state)
{
	static const uint8_t long_answer[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00 };
	uint32_t code = CM_IOCTL_GET_FEATURE_REQUEST + FEATURE_VERIFY_PIN_DIRECT;
	struct fake_rig f;
	struct pin_buf b;

	(void)state;
	fake_open(&f, 0x01);
	make_verify(&b, verify_apdu, sizeof(verify_apdu));
	/* the reader names a field of the structure (bError = its offset) */
	secure_answer.status = 0x40;
	secure_answer.error = 0x0F;
	secure_answer.len = 0;
	assert_int_equal(fake_control(&f, code, b.u.bytes, b.len, sizeof(f.reply)), SMC_ERR_COMM);
	assert_int_equal(f.reply_len, 0);
	/* no SW1 SW2 in the answer */
	secure_answer.status = 0x00;
	secure_answer.error = 0;
	secure_answer.data = (const uint8_t *)"\x90";
	secure_answer.len = 1;
	assert_int_equal(fake_control(&f, code, b.u.bytes, b.len, sizeof(f.reply)), SMC_ERR_COMM);
	/* more than the buffer holds: the size needed */
	secure_answer.data = long_answer;
	secure_answer.len = sizeof(long_answer);
	assert_int_equal(fake_control(&f, code, b.u.bytes, b.len, 4), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(f.reply_len, sizeof(long_answer));
	assert_int_equal(fake_control(&f, code, b.u.bytes, b.len, sizeof(f.reply)), SMC_OK);
	assert_int_equal(f.reply_len, sizeof(long_answer));
	assert_memory_equal(f.reply, long_answer, sizeof(long_answer));
	/* the card is gone */
	secure_answer.status = 0x42;
	secure_answer.error = 0xFE;
	secure_answer.len = 0;
	assert_int_equal(fake_control(&f, code, b.u.bytes, b.len, sizeof(f.reply)), SMC_ERR_NO_MEDIA);
	assert_int_equal(f.ext->reader_caps.current_state, SMC_STATE_ABSENT);
	fake_close(&f);
}

static void part10_escape_and_mechanical_message_bytes(void **state)
{
	static const uint8_t cmd[] = { 0xA5, 0x5A, 0x00, 0xFF };
	struct fake_rig f;
	const uint8_t *m;
	size_t len;

	(void)state;
	fake_open(&f, 0x00);
	ccid_reader_set_options(f.reader, CCID_OPTION_ESCAPE_ALLOWED);
	assert_int_equal(fake_control(&f, VENDOR_IFD_EXCHANGE, cmd, sizeof(cmd), sizeof(f.reply)), SMC_OK);
	m = last_sent(&f, MSG_ESCAPE, &len);
	assert_int_equal(len, 10 + sizeof(cmd));
	assert_int_equal(m[1], sizeof(cmd));
	assert_int_equal(m[5], 0); /* bSlot */
	assert_int_equal(m[7] | m[8] | m[9], 0);
	assert_memory_equal(m + 10, cmd, sizeof(cmd));
	assert_int_equal(smc_device_control(f.ext, SMC_REQ_EJECT, 0, NULL, 0, NULL, 0, NULL), SMC_OK);
	m = last_sent(&f, MSG_MECHANICAL, &len);
	assert_int_equal(len, 10);
	assert_int_equal(m[1] | m[2] | m[3] | m[4], 0);
	assert_int_equal(m[7], 0x02); /* bFunction: eject */
	assert_int_equal(m[8] | m[9], 0);
	fake_close(&f);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(part10_features_of_a_reader_without_pinpad),
		cmocka_unit_test(part10_features_of_a_pinpad_reader),
		cmocka_unit_test(part10_windows_value_of_get_feature_request),
		cmocka_unit_test(part10_unknown_control_code_is_not_supported),
		cmocka_unit_test(part10_too_small_buffers_are_refused_with_the_size_needed),
		cmocka_unit_test(part10_pin_properties),
		cmocka_unit_test(part10_tlv_properties_of_a_pinpad_reader),
		cmocka_unit_test(part10_tlv_properties_of_a_plain_extended_reader),
		cmocka_unit_test(part10_verify_pin_on_the_keypad_is_seen_by_the_card),
		cmocka_unit_test(part10_wrong_pin_on_the_keypad_gives_63cx),
		cmocka_unit_test(part10_modify_pin_on_the_keypad_changes_the_card_pin),
		cmocka_unit_test(part10_modify_pin_with_each_number_of_messages),
		cmocka_unit_test(part10_verify_pin_over_t0_at_tpdu_level),
		cmocka_unit_test(part10_verify_pin_refused_over_t1_at_tpdu_level),
		cmocka_unit_test(part10_verify_pin_needs_a_connected_card),
		cmocka_unit_test(part10_verify_pin_refuses_a_buffer_without_room_for_sw),
		cmocka_unit_test(part10_verify_pin_apdu_filling_the_reader_message_goes_out),
		cmocka_unit_test(part10_escape_refused_without_the_option),
		cmocka_unit_test(part10_escape_allowed_with_the_option),
		cmocka_unit_test(part10_eject_and_swallow_through_mechanical),
		cmocka_unit_test(part10_mechanical_control_codes),
		cmocka_unit_test(part10_mechanical_refused_without_the_mechanism),
		cmocka_unit_test(part10_verify_secure_message_bytes),
		cmocka_unit_test(part10_modify_secure_message_bytes),
		cmocka_unit_test(part10_pin_timeout_and_cancel_become_sw_6400_6401),
		cmocka_unit_test(part10_pin_entry_with_the_readers_timeout_is_waited_for),
		cmocka_unit_test(part10_secure_failures_and_odd_answers),
		cmocka_unit_test(part10_escape_and_mechanical_message_bytes),
	};
	struct CMUnitTest tests[N(fixed) + N(malformed)];

	memcpy(tests, fixed, sizeof(fixed));
	/* one test per malformed field, named after it */
	for (size_t i = 0; i < N(malformed); i++) {
		tests[N(fixed) + i] = (struct CMUnitTest){
			.name = malformed[i].name,
			.test_func = pin_structure_refused,
			.initial_state = (void *)&malformed[i],
		};
	}
	return _cmocka_run_group_tests("test_part10", tests, N(tests), NULL, NULL);
}
