/* The dispatcher's state rules (design.md, "dispatcher") and the attributes it
 * answers itself, shown against a fake reader driver that records its calls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include <wintypes.h>
#include <reader.h>

#include "smclib.h"

#define T0 SMC_PROTOCOL_T0
#define T1 SMC_PROTOCOL_T1

/* Published ATRs (pcsc-tools' smartcard_list.txt). */
static const uint8_t atr_esteid[] = { /* EstEID 3.0: T=0 and T=1, first T=0 */
	0x3B, 0xFE, 0x18, 0x00, 0x00, 0x80, 0x31, 0xFE, 0x45, 0x45, 0x73, 0x74,
	0x45, 0x49, 0x44, 0x20, 0x76, 0x65, 0x72, 0x20, 0x31, 0x2E, 0x30, 0xA8,
};
static const uint8_t atr_yubikey[] = { /* YubiKey 4: T=1 only */
	0x3B, 0xF8, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x59, 0x75, 0x62,
	0x69, 0x6B, 0x65, 0x79, 0x34, 0xD4,
};
static const uint8_t atr_iclass[] = { /* HID iClass SE: TA2, specific mode T=1 */
	0x3B, 0x90, 0x96, 0x91, 0x81, 0xB1, 0xFE, 0x55, 0x1F, 0xC7, 0xD4,
};
/* Constructed: TD1 T=1 then TD2 T=0, TCK. Offers both, first T=1. */
static const uint8_t atr_t1_then_t0[] = { 0x3B, 0x80, 0x81, 0x00, 0x01 };
/* Malformed: TCK wrong (EstEID with its last byte changed). */
static const uint8_t atr_bad_tck[] = {
	0x3B, 0xFE, 0x18, 0x00, 0x00, 0x80, 0x31, 0xFE, 0x45, 0x45, 0x73, 0x74,
	0x45, 0x49, 0x44, 0x20, 0x76, 0x65, 0x72, 0x20, 0x31, 0x2E, 0x30, 0xA9,
};

/* ---- the fake reader driver ------------------------------------------ */

struct fake {
	bool card_in;                 /* what tracking reports */
	const uint8_t *atr;           /* what power up reads */
	size_t atr_len;
	smc_status power_st, set_protocol_st, atr_parse_st;
	unsigned calls[RDF_COUNT];
	uint32_t minor[RDF_COUNT];    /* io.minor at the last call */
	uint32_t ioctl_code;
	bool lock_held[RDF_COUNT];    /* the slot lock was held during the call */
	bool caps_clear_at_power;     /* card_caps were cleared before power */
};

static struct fake fake;
static struct smc_ext ext;

static void record(struct smc_ext *e, enum smc_rdf fn)
{
	int err = pthread_mutex_trylock(&e->lock);

	if (err == 0)
		pthread_mutex_unlock(&e->lock);
	fake.lock_held[fn] = err == EBUSY;
	fake.calls[fn]++;
	fake.minor[fn] = e->io.minor;
}

static smc_status fake_tracking(struct smc_ext *e)
{
	record(e, RDF_CARD_TRACKING);
	if (!fake.card_in)
		e->reader_caps.current_state = SMC_STATE_ABSENT;
	else if (e->reader_caps.current_state <= SMC_STATE_ABSENT)
		e->reader_caps.current_state = SMC_STATE_PRESENT;
	return SMC_OK;
}

/* As a reader driver does: store the ATR, then let smclib understand it. */
static smc_status fake_power(struct smc_ext *e)
{
	record(e, RDF_CARD_POWER);
	fake.caps_clear_at_power = e->card_caps.atr_len == 0 && e->card_caps.selected_protocol == 0 &&
				   e->card_caps.protocols == 0;
	if (fake.power_st != SMC_OK || e->io.minor == SMC_POWER_DOWN)
		return fake.power_st;
	memcpy(e->card_caps.atr, fake.atr, fake.atr_len);
	e->card_caps.atr_len = fake.atr_len;
	e->reader_caps.current_state = SMC_STATE_POWERED;
	(void)smc_update_card_capabilities(e); /* a bad ATR leaves the card POWERED */
	return SMC_OK;
}

static smc_status fake_set_protocol(struct smc_ext *e)
{
	record(e, RDF_SET_PROTOCOL);
	return fake.set_protocol_st;
}

static smc_status fake_transmit(struct smc_ext *e)
{
	record(e, RDF_TRANSMIT);
	e->io.reply[0] = 0x90;
	e->io.reply[1] = 0x00;
	e->io.reply_len = 2;
	return SMC_OK;
}

/* The driver's own understanding of an ATR smclib rejects: it offers T=1. */
static smc_status fake_atr_parse(struct smc_ext *e)
{
	record(e, RDF_ATR_PARSE);
	if (fake.atr_parse_st == SMC_OK) {
		e->card_caps.protocols = T1;
		e->card_caps.first_protocol = T1;
	}
	return fake.atr_parse_st;
}

static smc_status fake_eject(struct smc_ext *e)
{
	record(e, RDF_CARD_EJECT);
	return SMC_OK;
}

static smc_status fake_vendor(struct smc_ext *e)
{
	record(e, RDF_IOCTL_VENDOR);
	fake.ioctl_code = e->io.ioctl_code;
	return SMC_OK;
}

static int setup(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	fake.card_in = true;
	fake.atr = atr_esteid;
	fake.atr_len = sizeof(atr_esteid);
	if (smc_ext_init(&ext) != SMC_OK)
		return -1;
	ext.reader_fn[RDF_CARD_TRACKING] = fake_tracking;
	ext.reader_fn[RDF_CARD_POWER] = fake_power;
	ext.reader_fn[RDF_SET_PROTOCOL] = fake_set_protocol;
	ext.reader_fn[RDF_TRANSMIT] = fake_transmit;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	smc_ext_destroy(&ext);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static smc_status power(uint32_t how)
{
	uint8_t atr[SMC_ATR_MAX];
	size_t n;

	return smc_device_control(&ext, SMC_REQ_POWER, how, NULL, 0, atr, sizeof(atr), &n);
}

static smc_status set_protocol(uint32_t mask)
{
	size_t n;

	return smc_device_control(&ext, SMC_REQ_SET_PROTOCOL, mask, NULL, 0, NULL, 0, &n);
}

static smc_status transmit(uint32_t protocol, size_t apdu_len, size_t *reply_len)
{
	static const uint8_t apdu[] = { 0x00, 0xA4, 0x04, 0x00, 0x00 };
	uint8_t reply[258];

	return smc_device_control(&ext, SMC_REQ_TRANSMIT, protocol, apdu, apdu_len, reply,
				  sizeof(reply), reply_len);
}

static smc_status attribute(uint32_t tag, uint8_t *buf, size_t cap, size_t *len)
{
	return smc_device_control(&ext, SMC_REQ_GET_ATTRIBUTE, tag, NULL, 0, buf, cap, len);
}

static void power_up_card(const uint8_t *atr, size_t len)
{
	fake.atr = atr;
	fake.atr_len = len;
	assert_int_equal(power(SMC_POWER_COLD), SMC_OK);
}

/* ---- POWER ---------------------------------------------------------------- */

static void power_on_absent_card_is_no_media(void **state)
{
	(void)state;
	fake.card_in = false;
	assert_int_equal(power(SMC_POWER_COLD), SMC_ERR_NO_MEDIA);
	assert_int_equal(fake.calls[RDF_CARD_TRACKING], 1);
	assert_int_equal(fake.calls[RDF_CARD_POWER], 0);
}

static void power_from_unknown_state_asks_tracking_first(void **state)
{
	(void)state;
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_UNKNOWN);
	assert_int_equal(power(SMC_POWER_COLD), SMC_OK);
	assert_int_equal(fake.calls[RDF_CARD_TRACKING], 1);
	assert_int_equal(fake.minor[RDF_CARD_TRACKING], SMC_TRACK_REFRESH);
	/* Known state: no more tracking. */
	assert_int_equal(power(SMC_POWER_WARM), SMC_OK);
	assert_int_equal(fake.calls[RDF_CARD_TRACKING], 1);
	assert_int_equal(fake.minor[RDF_CARD_POWER], SMC_POWER_WARM);
}

static void power_up_returns_the_atr_and_card_is_negotiable(void **state)
{
	uint8_t atr[SMC_ATR_MAX];
	size_t n = 0;

	(void)state;
	assert_int_equal(smc_device_control(&ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, atr,
					    sizeof(atr), &n),
			 SMC_OK);
	assert_int_equal(n, sizeof(atr_esteid));
	assert_memory_equal(atr, atr_esteid, n);
	assert_int_equal(fake.minor[RDF_CARD_POWER], SMC_POWER_COLD);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_NEGOTIABLE);
	assert_int_equal(ext.card_caps.protocols, T0 | T1);
}

static void power_up_atr_too_big_for_reply(void **state)
{
	uint8_t atr[SMC_ATR_MAX];
	size_t n = 0;

	(void)state;
	memset(atr, 0xEE, sizeof(atr));
	assert_int_equal(smc_device_control(&ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, atr,
					    sizeof(atr_esteid) - 1, &n),
			 SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(n, sizeof(atr_esteid));
	assert_int_equal(atr[0], 0xEE);
	/* Without a reply buffer the ATR simply stays in card_caps. */
	assert_int_equal(smc_device_control(&ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, NULL, 0, &n),
			 SMC_OK);
	assert_int_equal(n, 0);
	assert_int_equal(ext.card_caps.atr_len, sizeof(atr_esteid));
}

static void power_clears_card_caps_before_the_callback(void **state)
{
	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(ext.card_caps.selected_protocol, T1);
	assert_int_equal(power(SMC_POWER_WARM), SMC_OK);
	assert_true(fake.caps_clear_at_power);
	assert_int_equal(ext.card_caps.selected_protocol, 0);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_NEGOTIABLE);
}

static void power_down_leaves_card_present(void **state)
{
	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(power(SMC_POWER_DOWN), SMC_OK);
	assert_int_equal(fake.minor[RDF_CARD_POWER], SMC_POWER_DOWN);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_PRESENT);
	assert_int_equal(ext.card_caps.atr_len, 0);
}

static void power_failure_is_passed_up(void **state)
{
	(void)state;
	fake.power_st = SMC_ERR_POWER;
	assert_int_equal(power(SMC_POWER_COLD), SMC_ERR_POWER);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_PRESENT);
}

static void failed_reset_of_specific_card_leaves_it_present(void **state)
{
	size_t n;

	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(set_protocol(SMC_PROTOCOL_T0), SMC_OK);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_SPECIFIC);
	fake.power_st = SMC_ERR_TIMEOUT;
	assert_int_equal(power(SMC_POWER_WARM), SMC_ERR_TIMEOUT);
	/* No ATR behind it any more: not SPECIFIC, and transmit is refused as such. */
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_PRESENT);
	assert_int_equal(transmit(SMC_PROTOCOL_T0, 5, &n), SMC_ERR_INVALID_STATE);
}

static void power_rejects_unknown_minor(void **state)
{
	(void)state;
	assert_int_equal(power(7), SMC_ERR_INVALID_PARAM);
	assert_int_equal(fake.calls[RDF_CARD_POWER], 0);
}

static void power_without_callback_is_not_supported(void **state)
{
	(void)state;
	ext.reader_fn[RDF_CARD_POWER] = NULL;
	assert_int_equal(power(SMC_POWER_COLD), SMC_ERR_NOT_SUPPORTED);
}

/* ---- SET_PROTOCOL --------------------------------------------------------- */

static void set_protocol_on_absent_card_is_no_media(void **state)
{
	(void)state;
	ext.reader_caps.current_state = SMC_STATE_ABSENT;
	assert_int_equal(set_protocol(T0), SMC_ERR_NO_MEDIA);
	assert_int_equal(fake.calls[RDF_SET_PROTOCOL], 0);
}

static void set_protocol_before_power_is_invalid_state(void **state)
{
	(void)state;
	ext.reader_caps.current_state = SMC_STATE_PRESENT;
	assert_int_equal(set_protocol(T0), SMC_ERR_INVALID_STATE);
	ext.reader_caps.current_state = SMC_STATE_UNKNOWN;
	assert_int_equal(set_protocol(T0), SMC_ERR_INVALID_STATE);
	assert_int_equal(fake.calls[RDF_SET_PROTOCOL], 0);
}

static void set_protocol_selects_requested_offered_protocol(void **state)
{
	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(fake.calls[RDF_SET_PROTOCOL], 1);
	assert_int_equal(fake.minor[RDF_SET_PROTOCOL], T1);
	assert_int_equal(ext.card_caps.selected_protocol, T1);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_SPECIFIC);
}

static void set_protocol_both_asked_takes_the_cards_first(void **state)
{
	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(set_protocol(T0 | T1), SMC_OK);
	assert_int_equal(fake.minor[RDF_SET_PROTOCOL], T0);

	assert_int_equal(power(SMC_POWER_DOWN), SMC_OK);
	power_up_card(atr_t1_then_t0, sizeof(atr_t1_then_t0));
	assert_int_equal(set_protocol(T0 | T1), SMC_OK);
	assert_int_equal(fake.minor[RDF_SET_PROTOCOL], T1);
	assert_int_equal(ext.card_caps.selected_protocol, T1);
}

static void set_protocol_refuses_protocol_the_card_does_not_offer(void **state)
{
	(void)state;
	power_up_card(atr_yubikey, sizeof(atr_yubikey));
	assert_int_equal(set_protocol(T0), SMC_ERR_PROTOCOL);
	assert_int_equal(fake.calls[RDF_SET_PROTOCOL], 0);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_NEGOTIABLE);
}

static void set_protocol_keeps_to_the_readers_protocols(void **state)
{
	(void)state;
	ext.reader_caps.protocols = T0;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(set_protocol(T1), SMC_ERR_PROTOCOL);
	assert_int_equal(set_protocol(T0 | T1), SMC_OK);
	assert_int_equal(fake.minor[RDF_SET_PROTOCOL], T0);
}

static void set_protocol_when_already_specific_skips_the_callback(void **state)
{
	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(fake.calls[RDF_SET_PROTOCOL], 1);
	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(set_protocol(T0 | T1), SMC_OK);
	assert_int_equal(fake.calls[RDF_SET_PROTOCOL], 1);
	/* Another protocol needs a reset first. */
	assert_int_equal(set_protocol(T0), SMC_ERR_PROTOCOL);
	assert_int_equal(fake.calls[RDF_SET_PROTOCOL], 1);
}

static void set_protocol_specific_mode_card_allows_only_its_protocol(void **state)
{
	(void)state;
	power_up_card(atr_iclass, sizeof(atr_iclass));
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_SPECIFIC);
	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(set_protocol(T0), SMC_ERR_PROTOCOL);
	assert_int_equal(fake.calls[RDF_SET_PROTOCOL], 0);
}

static void set_protocol_parses_atr_when_only_powered(void **state)
{
	(void)state;
	/* A driver that stored the ATR without calling smc_update_card_capabilities. */
	ext.reader_caps.current_state = SMC_STATE_POWERED;
	memcpy(ext.card_caps.atr, atr_yubikey, sizeof(atr_yubikey));
	ext.card_caps.atr_len = sizeof(atr_yubikey);
	assert_int_equal(set_protocol(T0 | T1), SMC_OK);
	assert_int_equal(fake.minor[RDF_SET_PROTOCOL], T1);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_SPECIFIC);
}

static void set_protocol_falls_back_to_rdf_atr_parse(void **state)
{
	(void)state;
	ext.reader_fn[RDF_ATR_PARSE] = fake_atr_parse;
	power_up_card(atr_bad_tck, sizeof(atr_bad_tck));
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_POWERED);
	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(fake.calls[RDF_ATR_PARSE], 1);
	assert_true(fake.lock_held[RDF_ATR_PARSE]);
	assert_int_equal(fake.minor[RDF_SET_PROTOCOL], T1);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_SPECIFIC);
}

static void set_protocol_bad_atr_without_or_with_failing_fallback(void **state)
{
	(void)state;
	power_up_card(atr_bad_tck, sizeof(atr_bad_tck));
	assert_int_equal(set_protocol(T1), SMC_ERR_BAD_ATR);
	ext.reader_fn[RDF_ATR_PARSE] = fake_atr_parse;
	fake.atr_parse_st = SMC_ERR_NOT_SUPPORTED;
	assert_int_equal(set_protocol(T1), SMC_ERR_BAD_ATR);
	assert_int_equal(fake.calls[RDF_ATR_PARSE], 1);
	assert_int_equal(fake.calls[RDF_SET_PROTOCOL], 0);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_POWERED);
}

static void set_protocol_callback_failure_selects_nothing(void **state)
{
	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	fake.set_protocol_st = SMC_ERR_COMM;
	assert_int_equal(set_protocol(T1), SMC_ERR_COMM);
	assert_int_equal(ext.card_caps.selected_protocol, 0);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_NEGOTIABLE);
}

static void set_protocol_without_callback_is_not_supported(void **state)
{
	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	ext.reader_fn[RDF_SET_PROTOCOL] = NULL;
	assert_int_equal(set_protocol(T1), SMC_ERR_NOT_SUPPORTED);
}

/* ---- TRANSMIT ------------------------------------------------------------- */

static void transmit_refused_unless_specific(void **state)
{
	size_t n = 99;

	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(transmit(T0, 5, &n), SMC_ERR_INVALID_STATE);
	assert_int_equal(n, 0);
	ext.reader_caps.current_state = SMC_STATE_PRESENT;
	assert_int_equal(transmit(T0, 5, &n), SMC_ERR_INVALID_STATE);
	assert_int_equal(fake.calls[RDF_TRANSMIT], 0);
}

static void transmit_to_absent_card_is_no_media(void **state)
{
	size_t n;

	(void)state;
	ext.reader_caps.current_state = SMC_STATE_ABSENT;
	assert_int_equal(transmit(T0, 5, &n), SMC_ERR_NO_MEDIA);
	assert_int_equal(fake.calls[RDF_TRANSMIT], 0);
}

static void transmit_with_other_protocol_is_refused(void **state)
{
	size_t n;

	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(transmit(T0, 5, &n), SMC_ERR_PROTOCOL);
	assert_int_equal(transmit(T0 | T1, 5, &n), SMC_ERR_PROTOCOL);
	assert_int_equal(fake.calls[RDF_TRANSMIT], 0);
}

static void transmit_rejects_short_apdu(void **state)
{
	size_t n;

	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(transmit(T1, 3, &n), SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_device_control(&ext, SMC_REQ_TRANSMIT, T1, NULL, 5, NULL, 0, &n),
			 SMC_ERR_INVALID_PARAM);
	assert_int_equal(fake.calls[RDF_TRANSMIT], 0);
}

static void transmit_in_specific_state_reaches_the_driver(void **state)
{
	size_t n = 0;

	(void)state;
	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(transmit(T1, 5, &n), SMC_OK);
	assert_int_equal(n, 2);
	assert_int_equal(fake.calls[RDF_TRANSMIT], 1);
	assert_true(fake.lock_held[RDF_TRANSMIT]);
}

static void transmit_without_callback_is_not_supported(void **state)
{
	size_t n;

	(void)state;
	ext.reader_fn[RDF_TRANSMIT] = NULL;
	assert_int_equal(transmit(T1, 5, &n), SMC_ERR_NOT_SUPPORTED);
}

/* ---- IS_PRESENT, optional requests ---------------------------------------- */

static void is_present_refreshes_and_answers_at_once(void **state)
{
	size_t n;

	(void)state;
	assert_int_equal(smc_device_control(&ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, &n), SMC_OK);
	assert_int_equal(fake.calls[RDF_CARD_TRACKING], 1);
	assert_true(fake.lock_held[RDF_CARD_TRACKING]);
	fake.card_in = false;
	assert_int_equal(smc_device_control(&ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, &n),
			 SMC_ERR_NO_MEDIA);
	assert_int_equal(fake.calls[RDF_CARD_TRACKING], 2);
	ext.reader_fn[RDF_CARD_TRACKING] = NULL;
	assert_int_equal(smc_device_control(&ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, &n),
			 SMC_ERR_NOT_SUPPORTED);
}

static void null_optional_callbacks_are_not_supported(void **state)
{
	size_t n;

	(void)state;
	assert_int_equal(smc_device_control(&ext, SMC_REQ_EJECT, 0, NULL, 0, NULL, 0, &n),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(smc_device_control(&ext, SMC_REQ_SWALLOW, 0, NULL, 0, NULL, 0, &n),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(smc_device_control(&ext, SMC_REQ_VENDOR_IOCTL, 0x42000DAC, NULL, 0, NULL, 0, &n),
			 SMC_ERR_NOT_SUPPORTED);
}

static void optional_callbacks_are_called_when_present(void **state)
{
	size_t n;

	(void)state;
	ext.reader_fn[RDF_CARD_EJECT] = fake_eject;
	ext.reader_fn[RDF_IOCTL_VENDOR] = fake_vendor;
	assert_int_equal(smc_device_control(&ext, SMC_REQ_EJECT, 0, NULL, 0, NULL, 0, &n), SMC_OK);
	assert_int_equal(fake.calls[RDF_CARD_EJECT], 1);
	assert_int_equal(smc_device_control(&ext, SMC_REQ_VENDOR_IOCTL, 0x42000DAC, NULL, 0, NULL, 0, &n),
			 SMC_OK);
	assert_int_equal(fake.ioctl_code, 0x42000DAC);
	assert_true(fake.lock_held[RDF_IOCTL_VENDOR]);
}

static void unknown_request_is_invalid(void **state)
{
	size_t n;

	(void)state;
	assert_int_equal(smc_device_control(&ext, (enum smc_request)77, 0, NULL, 0, NULL, 0, &n),
			 SMC_ERR_INVALID_PARAM);
	assert_int_equal(smc_device_control(NULL, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, &n),
			 SMC_ERR_INVALID_PARAM);
}

/* ---- GET_ATTRIBUTE -------------------------------------------------------- */

static void attribute_string_exact_and_short_buffers(void **state)
{
	uint8_t buf[16];
	size_t n = 0;

	(void)state;
	strcpy(ext.vendor_attr.vendor_name, "Gemalto");
	/* 7 characters and the NUL. */
	assert_int_equal(attribute(SCARD_ATTR_VENDOR_NAME, buf, 8, &n), SMC_OK);
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "Gemalto", 8);
	memset(buf, 0xEE, sizeof(buf));
	assert_int_equal(attribute(SCARD_ATTR_VENDOR_NAME, buf, 7, &n), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(n, 8);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xEE);
	/* No buffer: the size needed comes back. */
	assert_int_equal(attribute(SCARD_ATTR_VENDOR_NAME, NULL, 0, &n), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(n, 8);
	/* An empty name is no value. */
	assert_int_equal(attribute(SCARD_ATTR_VENDOR_IFD_SERIAL_NO, buf, sizeof(buf), &n),
			 SMC_ERR_NOT_SUPPORTED);
}

static void attribute_dwords_are_four_bytes(void **state)
{
	uint8_t buf[8];
	uint32_t v;
	size_t n = 0;

	(void)state;
	ext.vendor_attr.ifd_version = 0x01020003;
	ext.reader_caps.clk_default_khz = 4000;
	ext.reader_caps.max_ifsd = 254;
	ext.reader_caps.channel = 0x00200000u | (3 << 8) | 7;
	assert_int_equal(attribute(SCARD_ATTR_VENDOR_IFD_VERSION, buf, 4, &n), SMC_OK);
	assert_int_equal(n, 4);
	memcpy(&v, buf, 4);
	assert_int_equal(v, 0x01020003);
	assert_int_equal(attribute(SCARD_ATTR_DEFAULT_CLK, buf, 3, &n), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(n, 4);
	assert_int_equal(attribute(SCARD_ATTR_DEFAULT_CLK, buf, sizeof(buf), &n), SMC_OK);
	memcpy(&v, buf, 4);
	assert_int_equal(v, 4000);
	assert_int_equal(attribute(SCARD_ATTR_MAX_IFSD, buf, 4, &n), SMC_OK);
	memcpy(&v, buf, 4);
	assert_int_equal(v, 254);
	assert_int_equal(attribute(SCARD_ATTR_CHANNEL_ID, buf, 4, &n), SMC_OK);
	memcpy(&v, buf, 4);
	assert_int_equal(v, 0x00200307);
}

static void attribute_card_values_follow_the_card(void **state)
{
	uint8_t buf[SMC_ATR_MAX];
	uint32_t v;
	size_t n = 0;

	(void)state;
	assert_int_equal(attribute(SCARD_ATTR_ICC_PRESENCE, buf, 1, &n), SMC_OK);
	assert_int_equal(n, 1);
	assert_int_equal(buf[0], 0);
	assert_int_equal(attribute(SCARD_ATTR_ATR_STRING, buf, sizeof(buf), &n), SMC_ERR_INVALID_STATE);

	power_up_card(atr_esteid, sizeof(atr_esteid));
	assert_int_equal(attribute(SCARD_ATTR_ICC_PRESENCE, buf, 1, &n), SMC_OK);
	assert_int_equal(buf[0], 1);
	assert_int_equal(attribute(SCARD_ATTR_ICC_INTERFACE_STATUS, buf, 1, &n), SMC_OK);
	assert_int_equal(buf[0], 1);
	assert_int_equal(attribute(SCARD_ATTR_ATR_STRING, buf, sizeof(buf), &n), SMC_OK);
	assert_int_equal(n, sizeof(atr_esteid));
	assert_memory_equal(buf, atr_esteid, n);
	assert_int_equal(attribute(SCARD_ATTR_ATR_STRING, buf, n - 1, &n), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(attribute(SCARD_ATTR_CURRENT_PROTOCOL_TYPE, buf, 4, &n), SMC_OK);
	memcpy(&v, buf, 4);
	assert_int_equal(v, 0);
	assert_int_equal(attribute(SCARD_ATTR_CURRENT_D, buf, 4, &n), SMC_OK);
	memcpy(&v, buf, 4);
	assert_int_equal(v, 12);
	assert_int_equal(attribute(SCARD_ATTR_CURRENT_IFSC, buf, 4, &n), SMC_OK);
	memcpy(&v, buf, 4);
	assert_int_equal(v, 254);

	assert_int_equal(set_protocol(T1), SMC_OK);
	assert_int_equal(attribute(SCARD_ATTR_CURRENT_PROTOCOL_TYPE, buf, 4, &n), SMC_OK);
	memcpy(&v, buf, 4);
	assert_int_equal(v, T1);

	assert_int_equal(power(SMC_POWER_DOWN), SMC_OK);
	assert_int_equal(attribute(SCARD_ATTR_ICC_INTERFACE_STATUS, buf, 1, &n), SMC_OK);
	assert_int_equal(buf[0], 0);
	ext.reader_caps.current_state = SMC_STATE_SWALLOWED;
	assert_int_equal(attribute(SCARD_ATTR_ICC_PRESENCE, buf, 1, &n), SMC_OK);
	assert_int_equal(buf[0], 2);
}

static void attribute_unknown_tag_is_not_supported(void **state)
{
	uint8_t buf[8];
	size_t n = 5;

	(void)state;
	assert_int_equal(attribute(SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_DEFINED, 0x1234), buf,
				   sizeof(buf), &n),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(n, 0);
	assert_int_equal(fake.calls[RDF_CARD_TRACKING] + fake.calls[RDF_CARD_POWER], 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(power_on_absent_card_is_no_media),
		T(power_from_unknown_state_asks_tracking_first),
		T(power_up_returns_the_atr_and_card_is_negotiable),
		T(power_up_atr_too_big_for_reply),
		T(power_clears_card_caps_before_the_callback),
		T(power_down_leaves_card_present),
		T(power_failure_is_passed_up),
		T(failed_reset_of_specific_card_leaves_it_present),
		T(power_rejects_unknown_minor),
		T(power_without_callback_is_not_supported),
		T(set_protocol_on_absent_card_is_no_media),
		T(set_protocol_before_power_is_invalid_state),
		T(set_protocol_selects_requested_offered_protocol),
		T(set_protocol_both_asked_takes_the_cards_first),
		T(set_protocol_refuses_protocol_the_card_does_not_offer),
		T(set_protocol_keeps_to_the_readers_protocols),
		T(set_protocol_when_already_specific_skips_the_callback),
		T(set_protocol_specific_mode_card_allows_only_its_protocol),
		T(set_protocol_parses_atr_when_only_powered),
		T(set_protocol_falls_back_to_rdf_atr_parse),
		T(set_protocol_bad_atr_without_or_with_failing_fallback),
		T(set_protocol_callback_failure_selects_nothing),
		T(set_protocol_without_callback_is_not_supported),
		T(transmit_refused_unless_specific),
		T(transmit_to_absent_card_is_no_media),
		T(transmit_with_other_protocol_is_refused),
		T(transmit_rejects_short_apdu),
		T(transmit_in_specific_state_reaches_the_driver),
		T(transmit_without_callback_is_not_supported),
		T(is_present_refreshes_and_answers_at_once),
		T(null_optional_callbacks_are_not_supported),
		T(optional_callbacks_are_called_when_present),
		T(unknown_request_is_invalid),
		T(attribute_string_exact_and_short_buffers),
		T(attribute_dwords_are_four_bytes),
		T(attribute_card_values_follow_the_card),
		T(attribute_unknown_tag_is_not_supported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
