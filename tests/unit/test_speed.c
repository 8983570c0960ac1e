/* Speed and protocol selection by the driver (src/ccid/speed.c) in front of the
 * virtual reader: the rate lists read at open (and a reader that stalls them),
 * PPS sent and accepted at TPDU and character level, PPS refused (the card stays
 * mute) followed by a reset and the default speed, no PPS when the reader or the
 * card does not want one; and the voltage class chosen from a class indicator.
 *
 * A spy sits between the driver and the in-process transport: it records the
 * bulk OUT messages (PPS requests, SetDataRateAndClockFrequency, IccPowerOn),
 * can make the list class requests stall or answer short, spoil PPS requests,
 * and give the card an ATR with a class indicator. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ccid/ccid_reader.h"
#include "rig.h"

#define MSG_POWER_ON 0x62
#define MSG_XFR_BLOCK 0x6F
#define MSG_SET_RATE 0x73
#define REQ_GET_DATA_RATES 0x03

/* ---- the spy --------------------------------------------------------------- */

struct spy {
	const struct ccid_transport_ops *real;
	unsigned power_ons;
	unsigned n_pps;
	uint8_t pps[4][8];           /* the PPS requests seen (abData of XfrBlock FF ..) */
	size_t pps_len[4];
	unsigned n_set_rate;
	uint32_t set_clock, set_rate; /* of the last SetDataRateAndClockFrequency */
	int stall_rates;             /* GET_DATA_RATES answers TP_STALL */
	size_t rates_cut;            /* GET_DATA_RATES answers at most this many bytes (0: all) */
	int zero_second_rate;        /* GET_DATA_RATES' second entry reads 0 */
	unsigned spoil_pps;          /* the next PPS requests reach the card with a bad PCK */
	uint8_t last_type;           /* of the last bulk OUT message */
	uint8_t power_select[8];     /* bPowerSelect of each IccPowerOn */
	const uint8_t *atr;          /* replaces the ATR of every IccPowerOn answer */
	size_t atr_len;
};

static struct spy spy;
static struct ccid_transport_ops spy_ops;

static uint32_t le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static tp_status spy_send(struct ccid_transport *tp, const uint8_t *buf, size_t len, unsigned timeout_ms)
{
	uint32_t dlen = len >= 10 ? le32(buf + 1) : 0;
	const uint8_t *data = buf + 10;

	if (len >= 10)
		spy.last_type = buf[0];
	if (len >= 10 && buf[0] == MSG_POWER_ON && spy.power_ons < 8)
		spy.power_select[spy.power_ons++] = buf[7];
	if (len >= 10 && buf[0] == MSG_SET_RATE && dlen == 8) {
		spy.n_set_rate++;
		spy.set_clock = le32(data);
		spy.set_rate = le32(data + 4);
	}
	if (len >= 10 && buf[0] == MSG_XFR_BLOCK && dlen >= 3 && dlen <= 6 && data[0] == 0xFF &&
	    spy.n_pps < 4 && len == 10 + dlen) {
		uint8_t spoilt[16];

		memcpy(spy.pps[spy.n_pps], data, dlen);
		spy.pps_len[spy.n_pps++] = dlen;
		if (spy.spoil_pps > 0) {
			spy.spoil_pps--;
			memcpy(spoilt, buf, len);
			spoilt[len - 1] ^= 0x01;
			return spy.real->send(tp, spoilt, len, timeout_ms);
		}
	}
	return spy.real->send(tp, buf, len, timeout_ms);
}

/* A whole DataBlock answering IccPowerOn gets spy.atr as its data. */
static tp_status spy_receive(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
			     unsigned timeout_ms)
{
	tp_status st = spy.real->receive(tp, buf, cap, got, timeout_ms);

	if (st != TP_OK || spy.atr == NULL || spy.last_type != MSG_POWER_ON || *got < 10 ||
	    buf[0] != 0x80 || *got != 10 + le32(buf + 1) || le32(buf + 1) == 0 ||
	    10 + spy.atr_len > cap)
		return st;
	buf[1] = (uint8_t)spy.atr_len;
	buf[2] = buf[3] = buf[4] = 0;
	memcpy(buf + 10, spy.atr, spy.atr_len);
	*got = 10 + spy.atr_len;
	return st;
}

static tp_status spy_control(struct ccid_transport *tp, uint8_t request_type, uint8_t request,
			     uint16_t value, uint8_t *data, uint16_t len, size_t *got, unsigned timeout_ms)
{
	tp_status st;

	if (request == REQ_GET_DATA_RATES && spy.stall_rates) {
		*got = 0;
		return TP_STALL;
	}
	st = spy.real->control(tp, request_type, request, value, data, len, got, timeout_ms);
	if (st == TP_OK && request == REQ_GET_DATA_RATES) {
		if (spy.zero_second_rate && *got >= 8)
			memset(data + 4, 0, 4);
		if (spy.rates_cut && *got > spy.rates_cut)
			*got = spy.rates_cut;
	}
	return st;
}

/* The spy in front of the in-process transport (rig_open_wrapped). */
static void put_spy(struct ccid_transport *tp)
{
	spy.real = tp->ops;
	spy_ops = *spy.real;
	spy_ops.send = spy_send;
	spy_ops.control = spy_control;
	spy_ops.receive = spy_receive;
	tp->ops = &spy_ops;
}

/* rig_open with the spy in front of the transport; knobs are set before. */
static struct rig *open_spied(const char *const kv[][2], size_t n_kv)
{
	return rig_open_wrapped(kv, n_kv, 0, put_spy);
}

static int reset_spy(void **state)
{
	(void)state;
	memset(&spy, 0, sizeof(spy));
	return 0;
}

static void assert_pps(unsigned i, const char *bytes, size_t len)
{
	assert_true(i < spy.n_pps);
	assert_int_equal(spy.pps_len[i], len);
	assert_memory_equal(spy.pps[i], bytes, len);
}

/* The PPS requests seen were exactly this one. */
static void assert_only_pps(const char *bytes, size_t len)
{
	assert_int_equal(spy.n_pps, 1);
	assert_pps(0, bytes, len);
}

/* open_spied, then the card powered up and proto selected. */
static struct rig *open_with_protocol(const char *const kv[][2], size_t n_kv, uint32_t proto)
{
	struct rig *r = open_spied(kv, n_kv);

	rig_power(r);
	rig_protocol(r, proto);
	return r;
}

/* The card works at the speed chosen: the applet runs. Then the reader goes. */
static void run_applet_and_close(struct rig *r)
{
	rig_select(r);
	rig_send_counting_all(r);
	rig_check_data_all(r);
	rig_close(r);
}

/* The lists as the profile states them: 250000 bps is Fi 512, Di 32 at 4 MHz. */
#define RATES_WITH_250K "9600,10752,21505,43010,62500,125000,250000"
#define RATES_UP_TO_125K "9600,10752,21505,43010,62500,125000"

/* ---- PPS accepted ------------------------------------------------------------ */

static void speed_pps_accepted_at_tpdu_level_then_apdus_work(void **state)
{
	static const char *const kv[][2] = {
		{ "level", "tpdu" }, { "features", "3A" }, { "rates", RATES_WITH_250K }, { "clocks", "4000" },
	};
	struct rig *r = open_spied(kv, 4);
	struct ccid_reader *reader = r->reader;

	(void)state;
	assert_int_equal(reader->n_rates, 7);
	assert_int_equal(reader->rates[6], 250000);
	assert_int_equal(reader->n_clocks, 1);
	assert_int_equal(reader->clocks[0], 4000);
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T0);
	/* T=0 is the card's first protocol, but TA1 96 is faster than 11 */
	assert_only_pps("\xFF\x10\x96\x79", 4);
	assert_true(r->ext->card_caps.pts.done);
	assert_int_equal(r->ext->card_caps.pts.fl, 9);
	assert_int_equal(r->ext->card_caps.pts.dl, 6);
	assert_int_equal(r->ext->card_caps.fi, 512);
	assert_int_equal(r->ext->card_caps.di, 32);
	/* features 10 and 20: the reader follows the rate itself */
	assert_int_equal(spy.n_set_rate, 0);
	run_applet_and_close(r);
}

static void speed_pps_sets_reader_rate_without_auto_baud(void **state)
{
	static const char *const kv[][2] = { { "level", "tpdu" }, { "features", "0" } };
	struct rig *r = open_with_protocol(kv, 2, SMC_PROTOCOL_T0);

	(void)state;
	assert_only_pps("\xFF\x10\x96\x79", 4);
	/* no list: 250000 lies within dwDataRate .. dwMaxDataRate (10752 .. 412903) */
	assert_int_equal(spy.n_set_rate, 1);
	assert_int_equal(spy.set_clock, 4000);
	assert_int_equal(spy.set_rate, 250000);
	run_applet_and_close(r);
}

static void speed_pps_to_t1_at_tpdu_level(void **state)
{
	static const char *const kv[][2] = { { "level", "tpdu" }, { "features", "0" } };
	struct rig *r = open_spied(kv, 2);

	(void)state;
	rig_power(r);
	assert_int_equal(r->ext->card_caps.first_protocol, SMC_PROTOCOL_T0);
	rig_protocol(r, SMC_PROTOCOL_T1);
	assert_only_pps("\xFF\x11\x96\x78", 4);
	run_applet_and_close(r);
}

static void speed_pps_for_protocol_alone_when_no_faster_rate(void **state)
{
	/* the reader runs nothing above Fd/Dd: PPS only to leave T=0 for T=1 */
	static const char *const kv[][2] = {
		{ "level", "tpdu" }, { "features", "3A" }, { "rates", "10752" },
	};
	struct rig *r = open_with_protocol(kv, 3, SMC_PROTOCOL_T1);

	(void)state;
	assert_only_pps("\xFF\x01\xFE", 3);
	assert_true(r->ext->card_caps.pts.done);
	assert_int_equal(r->ext->card_caps.fi, 372);
	run_applet_and_close(r);
}

static void speed_pps_at_character_level(void **state)
{
	static const char *const kv[][2] = { { "level", "character" }, { "features", "0" } };

	(void)state;
	for (uint32_t proto = SMC_PROTOCOL_T0; proto <= SMC_PROTOCOL_T1; proto++) {
		struct rig *r;

		reset_spy(NULL);
		r = open_with_protocol(kv, 2, proto);
		assert_only_pps(proto == SMC_PROTOCOL_T0 ? "\xFF\x10\x96\x79" : "\xFF\x11\x96\x78", 4);
		assert_true(r->ext->card_caps.pts.done);
		run_applet_and_close(r);
	}
}

/* ---- PPS refused --------------------------------------------------------------- */

static void speed_refused_pps_resets_card_and_runs_default(void **state)
{
	/* 250000 unlisted: the driver proposes Di 16 (125000), which the virtual
	 * card does not take (only its TA1 or 11): it stays mute */
	static const char *const kv[][2] = {
		{ "level", "tpdu" }, { "features", "0" }, { "rates", RATES_UP_TO_125K },
	};
	struct rig *r = open_spied(kv, 3);

	(void)state;
	rig_power(r);
	assert_int_equal(spy.power_ons, 1);
	rig_protocol(r, SMC_PROTOCOL_T0);
	assert_only_pps("\xFF\x10\x95\x7A", 4);
	assert_int_equal(spy.power_ons, 2); /* the reset */
	assert_false(r->ext->card_caps.pts.done);
	assert_int_equal(r->ext->card_caps.fi, 372);
	assert_int_equal(r->ext->card_caps.di, 1);
	assert_int_equal(spy.n_set_rate, 0);
	run_applet_and_close(r);
}

static void speed_refused_pps_to_t1_retries_at_default_speed(void **state)
{
	static const char *const kv[][2] = {
		{ "level", "tpdu" }, { "features", "0" }, { "rates", RATES_UP_TO_125K },
	};
	struct rig *r = open_with_protocol(kv, 3, SMC_PROTOCOL_T1);

	(void)state;
	assert_int_equal(spy.n_pps, 2);
	assert_pps(0, "\xFF\x11\x95\x7B", 4);
	assert_pps(1, "\xFF\x01\xFE", 3);
	assert_int_equal(spy.power_ons, 2);
	assert_true(r->ext->card_caps.pts.done);
	assert_int_equal(r->ext->card_caps.pts.fl, 1);
	assert_int_equal(r->ext->card_caps.pts.dl, 1);
	run_applet_and_close(r);
}

static void speed_protocol_refused_twice_fails_then_first_protocol_works(void **state)
{
	/* the spy spoils both PPS requests to T=1 (bad PCK): the card stays mute */
	static const char *const kv[][2] = { { "level", "tpdu" }, { "features", "0" } };
	struct rig *r;
	size_t len;

	(void)state;
	spy.spoil_pps = 2;
	r = open_spied(kv, 2);
	rig_power(r);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_SET_PROTOCOL, SMC_PROTOCOL_T1, NULL, 0,
					    r->reply, sizeof(r->reply), &len),
			 SMC_ERR_PROTOCOL);
	assert_int_equal(spy.n_pps, 2);
	assert_pps(0, "\xFF\x11\x96\x78", 4);
	assert_pps(1, "\xFF\x01\xFE", 3);
	assert_int_equal(spy.power_ons, 3); /* power up and two resets */
	assert_int_equal(r->ext->reader_caps.current_state, SMC_STATE_NEGOTIABLE);
	/* the card's first protocol still works, at its TA1 speed */
	rig_protocol(r, SMC_PROTOCOL_T0);
	assert_int_equal(spy.n_pps, 3);
	assert_pps(2, "\xFF\x10\x96\x79", 4);
	run_applet_and_close(r);
}

/* ---- no PPS ------------------------------------------------------------------ */

static void speed_no_pps_when_reader_negotiates(void **state)
{
	/* the default features 4BA have 80: automatic PPS by the reader */
	static const char *const kv[][2] = { { "level", "tpdu" } };
	struct rig *r = open_with_protocol(kv, 1, SMC_PROTOCOL_T0);

	(void)state;
	assert_int_equal(spy.n_pps, 0);
	run_applet_and_close(r);
}

static void speed_no_pps_at_apdu_level(void **state)
{
	static const char *const kv[][2] = { { "level", "short" }, { "features", "0" } };
	struct rig *r = open_with_protocol(kv, 2, SMC_PROTOCOL_T1);

	(void)state;
	assert_int_equal(spy.n_pps, 0);
	rig_close(r);
}

static void speed_no_pps_when_nothing_to_gain(void **state)
{
	/* no TA1 and the first protocol */
	static const char *const kv[][2] = {
		{ "level", "tpdu" }, { "features", "0" }, { "card-ta1", "none" },
	};
	struct rig *r = open_with_protocol(kv, 3, SMC_PROTOCOL_T0);

	(void)state;
	assert_int_equal(spy.n_pps, 0);
	assert_int_equal(spy.n_set_rate, 0);
	run_applet_and_close(r);
}

static void speed_no_pps_in_specific_mode(void **state)
{
	/* TA2 10: specific mode, T=0, implicit parameters */
	static const char *const kv[][2] = {
		{ "level", "tpdu" }, { "features", "0" }, { "card-ta2", "10" },
	};
	struct rig *r = open_spied(kv, 3);

	(void)state;
	rig_power(r);
	assert_true(r->ext->card_caps.specific_mode);
	rig_protocol(r, SMC_PROTOCOL_T0);
	assert_int_equal(spy.n_pps, 0);
	run_applet_and_close(r);
}

/* ---- the lists ---------------------------------------------------------------- */

static void speed_data_rates_stall_falls_back_to_descriptor(void **state)
{
	static const char *const kv[][2] = {
		{ "level", "tpdu" }, { "features", "0" }, { "rates", RATES_UP_TO_125K },
	};
	struct rig *r;

	(void)state;
	spy.stall_rates = 1;
	r = open_spied(kv, 3);
	assert_int_equal(r->reader->n_rates, 0);
	assert_int_equal(r->ext->reader_caps.rate_default, 10752);
	assert_int_equal(r->ext->reader_caps.rate_max, 412903);
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T0);
	/* no list: TA1's 250000 lies within the descriptor's range */
	assert_only_pps("\xFF\x10\x96\x79", 4);
	run_applet_and_close(r);
}

static void speed_short_and_odd_list_answers_keep_whole_good_entries(void **state)
{
	static const char *const kv[][2] = {
		{ "level", "tpdu" }, { "features", "0" }, { "rates", "10752,21505,250000" },
	};
	struct rig *r;

	(void)state;
	spy.rates_cut = 10; /* two whole entries and half of the third */
	spy.zero_second_rate = 1;
	r = open_spied(kv, 3);
	assert_int_equal(r->reader->n_rates, 1);
	assert_int_equal(r->reader->rates[0], 10752);
	rig_power(r);
	rig_protocol(r, SMC_PROTOCOL_T0);
	/* only 10752 left: nothing faster than Fd/Dd, T=0 first: no PPS */
	assert_int_equal(spy.n_pps, 0);
	rig_close(r);
}

static void speed_list_sizes_are_bounded_by_the_descriptor(void **state)
{
	static const char *const kv[][2] = { { "level", "tpdu" } };
	struct rig *r = open_spied(kv, 1);

	(void)state;
	/* bNumClockSupported and bNumDataRatesSupported 0: nothing asked */
	assert_int_equal(r->reader->n_rates, 0);
	assert_int_equal(r->reader->n_clocks, 0);
	assert_int_equal(r->ext->reader_caps.clk_default_khz, 4000);
	assert_int_equal(r->ext->reader_caps.clk_max_khz, 12000);
	rig_close(r);
}

/* ---- voltage class ----------------------------------------------------------- */

/* TS, T0 (TD1), TD1 (TD2, T=0), TD2 (TA3, T=15), TA3 class indicator B and C
 * (0x06), TCK: the virtual card's profile has no key for a class indicator, so
 * the spy puts this ATR into the reader's answers. */
static const uint8_t atr_class_bc[] = { 0x3B, 0x80, 0x80, 0x1F, 0x06, 0x19 };

/* open_spied with that ATR in the reader's answers, then a cold power up that
 * must succeed (not rig_power: the ATR is not the profile's). */
static struct rig *open_class_bc(const char *const kv[][2], size_t n_kv)
{
	struct rig *r;

	spy.atr = atr_class_bc;
	spy.atr_len = sizeof(atr_class_bc);
	r = open_spied(kv, n_kv);
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, r->reply,
					    sizeof(r->reply), &r->reply_len),
			 SMC_OK);
	return r;
}

static void class_indicator_moves_card_from_5v_to_3v(void **state)
{
	static const char *const kv[][2] = { { "level", "tpdu" }, { "features", "0" } };
	struct rig *r = open_class_bc(kv, 2);

	(void)state;
	assert_int_equal(r->ext->card_caps.class_indicator, 0x06);
	/* 5 V first (the ATR came), then 3 V for class B */
	assert_int_equal(spy.power_ons, 2);
	assert_int_equal(spy.power_select[0], CCID_POWER_5V);
	assert_int_equal(spy.power_select[1], CCID_POWER_3V);
	/* the card is usable: no TA1, T=0 first, so no PPS */
	rig_protocol(r, SMC_PROTOCOL_T0);
	assert_int_equal(spy.n_pps, 0);
	run_applet_and_close(r);
}

static void class_indicator_without_shared_voltage_keeps_card(void **state)
{
	static const char *const kv[][2] = { { "level", "tpdu" }, { "features", "0" }, { "voltages", "5" } };
	struct rig *r = open_class_bc(kv, 3);

	(void)state;
	assert_int_equal(spy.power_ons, 1);
	assert_int_equal(spy.power_select[0], CCID_POWER_5V);
	rig_close(r);
}

static void class_indicator_ignored_when_reader_picks_voltage(void **state)
{
	static const char *const kv[][2] = { { "level", "tpdu" }, { "features", "8" } };
	struct rig *r = open_class_bc(kv, 2);

	(void)state;
	assert_int_equal(spy.power_ons, 1);
	assert_int_equal(spy.power_select[0], CCID_POWER_AUTO);
	rig_close(r);
}

static void class_voltage_keeps_a_voltage_of_the_card(void **state)
{
	(void)state;
	assert_int_equal(ccid_class_voltage(0x03, 0x07, CCID_POWER_5V), CCID_POWER_5V);
	assert_int_equal(ccid_class_voltage(0x07, 0x07, CCID_POWER_3V), CCID_POWER_3V);
	/* no indicator, or RFU bits only */
	assert_int_equal(ccid_class_voltage(0x00, 0x07, CCID_POWER_5V), CCID_POWER_5V);
	assert_int_equal(ccid_class_voltage(0x30, 0x07, CCID_POWER_5V), CCID_POWER_5V);
}

static void class_voltage_picks_highest_shared_class(void **state)
{
	(void)state;
	/* class B and C card powered at 5 V: 3 V */
	assert_int_equal(ccid_class_voltage(0x06, 0x07, CCID_POWER_5V), CCID_POWER_3V);
	/* class B card: 3 V */
	assert_int_equal(ccid_class_voltage(0x02, 0x07, CCID_POWER_5V), CCID_POWER_3V);
	/* class B and C card, reader without 3 V: 1.8 V */
	assert_int_equal(ccid_class_voltage(0x06, 0x05, CCID_POWER_5V), CCID_POWER_1V8);
	/* class C card powered at 3 V */
	assert_int_equal(ccid_class_voltage(0x04, 0x07, CCID_POWER_3V), CCID_POWER_1V8);
}

static void class_voltage_keeps_card_when_no_class_shared(void **state)
{
	(void)state;
	/* class C card, reader with 5 V and 3 V only */
	assert_int_equal(ccid_class_voltage(0x04, 0x03, CCID_POWER_5V), CCID_POWER_5V);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(speed_pps_accepted_at_tpdu_level_then_apdus_work, reset_spy),
		cmocka_unit_test_setup(speed_pps_sets_reader_rate_without_auto_baud, reset_spy),
		cmocka_unit_test_setup(speed_pps_to_t1_at_tpdu_level, reset_spy),
		cmocka_unit_test_setup(speed_pps_for_protocol_alone_when_no_faster_rate, reset_spy),
		cmocka_unit_test_setup(speed_pps_at_character_level, reset_spy),
		cmocka_unit_test_setup(speed_refused_pps_resets_card_and_runs_default, reset_spy),
		cmocka_unit_test_setup(speed_refused_pps_to_t1_retries_at_default_speed, reset_spy),
		cmocka_unit_test_setup(speed_protocol_refused_twice_fails_then_first_protocol_works, reset_spy),
		cmocka_unit_test_setup(speed_no_pps_when_reader_negotiates, reset_spy),
		cmocka_unit_test_setup(speed_no_pps_at_apdu_level, reset_spy),
		cmocka_unit_test_setup(speed_no_pps_when_nothing_to_gain, reset_spy),
		cmocka_unit_test_setup(speed_no_pps_in_specific_mode, reset_spy),
		cmocka_unit_test_setup(speed_data_rates_stall_falls_back_to_descriptor, reset_spy),
		cmocka_unit_test_setup(speed_short_and_odd_list_answers_keep_whole_good_entries, reset_spy),
		cmocka_unit_test_setup(speed_list_sizes_are_bounded_by_the_descriptor, reset_spy),
		cmocka_unit_test_setup(class_indicator_moves_card_from_5v_to_3v, reset_spy),
		cmocka_unit_test_setup(class_indicator_without_shared_voltage_keeps_card, reset_spy),
		cmocka_unit_test_setup(class_indicator_ignored_when_reader_picks_voltage, reset_spy),
		cmocka_unit_test(class_voltage_keeps_a_voltage_of_the_card),
		cmocka_unit_test(class_voltage_picks_highest_shared_class),
		cmocka_unit_test(class_voltage_keeps_card_when_no_class_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
