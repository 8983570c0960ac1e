/* The CCID reader driver through smclib: ccid_reader_open on a fake device that
 * answers like a reader with a card, then power, protocol, transmit and presence
 * requests through smc_device_control, as ifdhandler.c makes them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ccid/ccid_reader.h"
#include "fake_transport.h"
#include "smc_log.h"

/* ---- descriptors and ATRs ------------------------------------------------ */

#define qemu_desc fake_qemu_descriptor

/* TPDU, T=0 and T=1, no automatic voltage or parameters */
#define FEAT_TPDU_MANUAL 0x00010030u
/* short APDU, automatic parameters */
#define FEAT_SHORT_AUTO 0x000204BAu
/* short APDU, parameters set by the host */
#define FEAT_SHORT_MANUAL 0x00020030u
/* extended APDU, automatic parameters */
#define FEAT_EXTENDED 0x000400FEu

static const uint8_t cac_atr[] = { 0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74,
				   0x65, 0x20, 0x63, 0x64, 0x31, 0x34, 0x34 };
/* T=1 only: TA1 96, TC1 02 (N = 2), TA3 FE (IFSC 254), TB3 45 (BWI 4, CWI 5) */
static const uint8_t t1_atr[] = { 0x3B, 0xD0, 0x96, 0x02, 0x81, 0x31, 0xFE, 0x45, 0x4F };
/* specific mode (TA2 = 00: T=0, parameters explicit), TA1 absent */
static const uint8_t specific_t0_atr[] = { 0x3B, 0x80, 0x10, 0x00 };

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void make_desc(uint8_t *d, uint32_t features, uint32_t protocols, uint32_t max_msg)
{
	memcpy(d, qemu_desc, sizeof(qemu_desc));
	put_le32(d + 6, protocols);
	put_le32(d + 40, features);
	put_le32(d + 44, max_msg);
}

/* ---- the device: a reader with a card ---------------------------------- */

#define BIG 70000

struct device {
	uint8_t icc;                 /* bmICCStatus the reader reports */
	uint8_t atr[40];
	size_t atr_len;
	unsigned mute_power_ons;     /* IccPowerOn answered "mute" this many times */
	int params_fail;             /* SetParameters answered "failed" */
	uint8_t *resp;               /* the card's answer to the next command */
	size_t resp_len, resp_off;
	size_t part;                 /* answer parts of at most this (0: whole) */
	uint8_t *cmd;                /* the command as reassembled */
	size_t cmd_len;
	uint16_t levels[1024];       /* wLevelParameter of each XfrBlock */
	size_t n_levels;
	uint8_t power_select[8];
	size_t n_power;
};

static void answer(struct fake_dev *d, uint8_t type, uint8_t status, uint8_t error,
		   uint8_t specific, const uint8_t *data, size_t len)
{
	fake_rx_answer(d, type, status, error, specific, data, len);
}

static void send_response_part(struct fake_dev *fd, struct device *dev)
{
	size_t left = dev->resp_len - dev->resp_off, n = left;
	uint8_t chain = 0x00;

	if (dev->part != 0 && (left > dev->part || dev->resp_off > 0)) {
		n = left > dev->part ? dev->part : left;
		chain = dev->resp_off == 0 ? 0x01 : (n == left ? 0x02 : 0x03);
	}
	answer(fd, 0x80, dev->icc, 0, chain, dev->resp + dev->resp_off, n);
	dev->resp_off += n;
}

static void on_xfr_block(struct fake_dev *fd, struct device *dev, const uint8_t *msg, size_t len)
{
	uint16_t level = (uint16_t)(msg[8] | msg[9] << 8);
	const uint8_t *data = msg + 10;
	size_t n = len - 10;

	if (dev->n_levels < 1024)
		dev->levels[dev->n_levels++] = level;
	if (level == 0x00 || level == 0x01)
		dev->cmd_len = 0;
	if (level == 0x10) {
		send_response_part(fd, dev);
		return;
	}
	assert_true(dev->cmd_len + n <= BIG);
	memcpy(dev->cmd + dev->cmd_len, data, n);
	dev->cmd_len += n;
	if (level == 0x01 || level == 0x03) {
		answer(fd, 0x80, dev->icc, 0, 0x10, NULL, 0);
		return;
	}
	dev->resp_off = 0;
	send_response_part(fd, dev);
}

static void device(struct fake_dev *fd, const uint8_t *msg, size_t len, void *ctx)
{
	struct device *dev = ctx;

	assert_true(len >= 10);
	switch (msg[0]) {
	case 0x62:
		dev->power_select[dev->n_power++ % 8] = msg[7];
		if (dev->icc == 2) {
			answer(fd, 0x80, 0x42, 0xFE, 0, NULL, 0);
		} else if (dev->mute_power_ons > 0) {
			dev->mute_power_ons--;
			answer(fd, 0x80, 0x41, 0xFE, 0, NULL, 0);
		} else {
			dev->icc = 0;
			answer(fd, 0x80, 0x00, 0, 0, dev->atr, dev->atr_len);
		}
		break;
	case 0x63:
		if (dev->icc != 2)
			dev->icc = 1;
		answer(fd, 0x81, dev->icc, 0, 0, NULL, 0);
		break;
	case 0x65:
	case 0x72:
		answer(fd, 0x81, dev->icc, 0, 0, NULL, 0);
		break;
	case 0x61:
		if (dev->params_fail)
			answer(fd, 0x82, 0x40 | dev->icc, 10, msg[7], NULL, 0);
		else
			answer(fd, 0x82, dev->icc, 0, msg[7], msg + 10, len - 10);
		break;
	case 0x6F:
		on_xfr_block(fd, dev, msg, len);
		break;
	default:
		answer(fd, 0x81, 0x40 | dev->icc, 0, 0, NULL, 0);
		break;
	}
}

struct fixture {
	struct fake_dev *fd;
	struct device dev;
	struct ccid_reader *reader;
	struct smc_ext *ext;
	uint8_t reply[65548];
	size_t reply_len;
};

static struct fixture *open_with(const uint8_t *desc, const uint8_t *atr, size_t atr_len)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dev.resp = calloc(1, BIG);
	f->dev.cmd = calloc(1, BIG);
	assert_non_null(f->dev.resp);
	assert_non_null(f->dev.cmd);
	f->dev.icc = 1;
	memcpy(f->dev.atr, atr, atr_len);
	f->dev.atr_len = atr_len;
	f->fd = fake_new(desc, 54);
	fake_set_responder(f->fd, device, &f->dev);
	assert_int_equal(ccid_reader_open(fake_transport(f->fd), &f->reader), SMC_OK);
	f->ext = ccid_reader_slot(f->reader, 0);
	assert_non_null(f->ext);
	return f;
}

static void close_fixture(struct fixture *f)
{
	ccid_reader_close(f->reader);
	assert_true(fake_closed(f->fd));
	fake_free(f->fd);
	free(f->dev.resp);
	free(f->dev.cmd);
	free(f);
}

static smc_status power(struct fixture *f, enum smc_power how)
{
	return smc_device_control(f->ext, SMC_REQ_POWER, how, NULL, 0, f->reply, sizeof(f->reply),
				  &f->reply_len);
}

static smc_status set_protocol(struct fixture *f, uint32_t mask)
{
	return smc_device_control(f->ext, SMC_REQ_SET_PROTOCOL, mask, NULL, 0, f->reply,
				  sizeof(f->reply), &f->reply_len);
}

static smc_status transmit(struct fixture *f, const uint8_t *apdu, size_t len, size_t cap)
{
	return smc_device_control(f->ext, SMC_REQ_TRANSMIT, f->ext->card_caps.selected_protocol,
				  apdu, len, f->reply, cap, &f->reply_len);
}

static smc_status is_present(struct fixture *f)
{
	return smc_device_control(f->ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, NULL);
}

static void card_answers(struct fixture *f, const uint8_t *resp, size_t len)
{
	if (len)
		memcpy(f->dev.resp, resp, len);
	f->dev.resp_len = len;
}

static struct fixture *ready(const uint8_t *desc, const uint8_t *atr, size_t atr_len,
			     uint32_t proto);

/* ---- opening --------------------------------------------------------------- */

static void open_with_qemu_descriptor_fills_the_extension(void **state)
{
	struct fixture *f = open_with(qemu_desc, cac_atr, sizeof(cac_atr));
	struct smc_ext *ext = f->ext;

	(void)state;
	assert_int_equal(ccid_reader_slot_count(f->reader), 1);
	assert_null(ccid_reader_slot(f->reader, 1));
	assert_string_equal(ext->vendor_attr.vendor_name, "QEMU");
	assert_string_equal(ext->vendor_attr.ifd_type, "QEMU USB CCID");
	assert_string_equal(ext->vendor_attr.serial_no, "1");
	assert_int_equal(ext->vendor_attr.ifd_version, 0x01000000);
	assert_int_equal(ext->reader_caps.protocols, SMC_PROTOCOL_T0);
	assert_int_equal(ext->reader_caps.reader_type, 0x4);
	assert_int_equal(ext->reader_caps.channel, 0x00200102);
	assert_int_equal(ext->reader_caps.clk_default_khz, 4000);
	assert_int_equal(ext->reader_caps.clk_max_khz, 65536);
	assert_int_equal(ext->reader_caps.rate_default, 9600);
	assert_int_equal(ext->reader_caps.rate_max, 115200);
	assert_int_equal(ext->reader_caps.max_ifsd, 254);
	assert_int_equal(ext->reader_caps.max_input, 261);
	assert_non_null(ext->reader_fn[RDF_CARD_POWER]);
	assert_non_null(ext->reader_fn[RDF_TRANSMIT]);
	assert_non_null(ext->reader_fn[RDF_SET_PROTOCOL]);
	assert_non_null(ext->reader_fn[RDF_CARD_TRACKING]);
	assert_ptr_equal(ccid_slot_of(ext)->reader, f->reader);
	assert_int_equal(ccid_slot_of(ext)->index, 0);
	assert_false(ccid_reader_is_gone(f->reader));
	assert_int_equal(fake_sent_count(f->fd), 0);
	close_fixture(f);
}

static void open_refuses(const uint8_t *desc, size_t len, smc_status want)
{
	struct fake_dev *fd = fake_new(desc, len);
	struct ccid_reader *r = (struct ccid_reader *)1;

	assert_int_equal(ccid_reader_open(fake_transport(fd), &r), want);
	assert_null(r);
	assert_true(fake_closed(fd));
	fake_free(fd);
}

static void open_refuses_malformed_readers(void **state)
{
	uint8_t d[54];

	(void)state;
	make_desc(d, 0x000104FE, 0, 65554); /* no T=0, no T=1 */
	open_refuses(d, 54, SMC_ERR_NOT_SUPPORTED);
	open_refuses(qemu_desc, 40, SMC_ERR_COMM);
	open_refuses(NULL, 0, SMC_ERR_COMM);
	make_desc(d, 0x000104FE, 1, 10);
	open_refuses(d, 54, SMC_ERR_COMM);
}

static void extended_reader_announces_extended_max_input(void **state)
{
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_EXTENDED, 3, 65554);
	d[4] = 2; /* three slots */
	f = open_with(d, cac_atr, sizeof(cac_atr));
	assert_int_equal(ccid_reader_slot_count(f->reader), 3);
	assert_int_equal(f->ext->reader_caps.max_input, 65544);
	assert_int_equal(ccid_slot_of(ccid_reader_slot(f->reader, 2))->index, 2);
	close_fixture(f);
}

/* Below APDU level, T=1 blocks chain any length: extended APDUs pass; a
 * T=0-only TPDU reader (QEMU's) stays at short APDUs. */
static void tpdu_reader_with_t1_announces_extended_max_input(void **state)
{
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL, 3, 271);
	f = open_with(d, cac_atr, sizeof(cac_atr));
	assert_int_equal(f->ext->reader_caps.max_input, 65544);
	close_fixture(f);
	make_desc(d, FEAT_TPDU_MANUAL, 1, 271);
	f = open_with(d, cac_atr, sizeof(cac_atr));
	assert_int_equal(f->ext->reader_caps.max_input, 261);
	close_fixture(f);
}

/* ---- power ------------------------------------------------------------------ */

static void power_up_returns_the_cac_atr(void **state)
{
	struct fixture *f = open_with(qemu_desc, cac_atr, sizeof(cac_atr));
	const uint8_t *m;

	(void)state;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(f->reply_len, sizeof(cac_atr));
	assert_memory_equal(f->reply, cac_atr, sizeof(cac_atr));
	assert_int_equal(f->ext->card_caps.atr_len, sizeof(cac_atr));
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_NEGOTIABLE);
	assert_int_equal(f->ext->card_caps.protocols, SMC_PROTOCOL_T0);
	/* automatic voltage (dwFeatures 0x8): bPowerSelect 0, a single IccPowerOn */
	assert_int_equal(fake_sent_count_type(f->fd, 0x62), 1);
	m = fake_sent_last_type(f->fd, 0x62, NULL);
	assert_int_equal(m[7], 0);
	close_fixture(f);
}

static void power_up_tries_5v_then_3v_then_1v8(void **state)
{
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL, 3, 65554);
	f = open_with(d, cac_atr, sizeof(cac_atr));
	f->dev.mute_power_ons = 2;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(f->dev.n_power, 3);
	assert_int_equal(f->dev.power_select[0], 1);
	assert_int_equal(f->dev.power_select[1], 2);
	assert_int_equal(f->dev.power_select[2], 3);
	assert_int_equal(fake_sent_count_type(f->fd, 0x63), 2); /* deactivated in between */
	assert_memory_equal(f->reply, cac_atr, sizeof(cac_atr));
	close_fixture(f);
}

static void power_up_skips_voltages_the_reader_lacks(void **state)
{
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL, 3, 65554);
	d[5] = 0x06; /* 3 V and 1.8 V */
	f = open_with(d, cac_atr, sizeof(cac_atr));
	f->dev.mute_power_ons = 1;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(f->dev.n_power, 2);
	assert_int_equal(f->dev.power_select[0], 2);
	assert_int_equal(f->dev.power_select[1], 3);
	close_fixture(f);
}

static void power_up_of_a_mute_card_is_power_error(void **state)
{
	struct fixture *f = ready(qemu_desc, cac_atr, sizeof(cac_atr), SMC_PROTOCOL_T0);

	(void)state;
	f->dev.mute_power_ons = 10;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_ERR_POWER);
	assert_int_equal(f->ext->card_caps.atr_len, 0);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_PRESENT);
	close_fixture(f);
}

/* QEMU's reader picks the voltage itself: a reset that meets a mute card is
 * tried once more (power off, power on) before it fails; a card that stays
 * mute costs two attempts, no more. */
static void reset_of_a_mute_card_is_tried_once_more(void **state)
{
	struct fixture *f = ready(qemu_desc, cac_atr, sizeof(cac_atr), SMC_PROTOCOL_T0);
	size_t before = f->dev.n_power;

	(void)state;
	f->dev.mute_power_ons = 1;
	assert_int_equal(power(f, SMC_POWER_WARM), SMC_OK);
	assert_int_equal(f->dev.n_power - before, 2);
	assert_memory_equal(f->reply, cac_atr, sizeof(cac_atr));
	f->dev.mute_power_ons = 10;
	before = f->dev.n_power;
	assert_int_equal(power(f, SMC_POWER_WARM), SMC_ERR_POWER);
	assert_int_equal(f->dev.n_power - before, 2);
	close_fixture(f);
}

static void power_up_with_card_removed_is_no_media(void **state)
{
	struct fixture *f = open_with(qemu_desc, cac_atr, sizeof(cac_atr));

	(void)state;
	assert_int_equal(is_present(f), SMC_OK);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_PRESENT);
	f->dev.icc = 2; /* pulled out since the last look */
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_ERR_NO_MEDIA);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_ABSENT);
	close_fixture(f);
}

static void power_up_rejects_empty_and_oversized_atr(void **state)
{
	struct fixture *f = open_with(qemu_desc, cac_atr, 0);

	(void)state;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_ERR_COMM);
	memset(f->dev.atr, 0x3B, 34);
	f->dev.atr_len = 34;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_ERR_COMM);
	assert_true(f->ext->card_caps.atr_len == 0);
	f->dev.atr_len = 33; /* 33 is allowed by length (smclib judges the content) */
	memcpy(f->dev.atr, cac_atr, sizeof(cac_atr));
	f->dev.atr_len = sizeof(cac_atr);
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	close_fixture(f);
}

static void warm_reset_powers_off_then_on(void **state)
{
	struct fixture *f = open_with(qemu_desc, cac_atr, sizeof(cac_atr));

	(void)state;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T0), SMC_OK);
	assert_int_equal(power(f, SMC_POWER_WARM), SMC_OK);
	assert_int_equal(fake_sent_count_type(f->fd, 0x63), 1);
	assert_int_equal(fake_sent_count_type(f->fd, 0x62), 2);
	assert_int_equal(f->reply_len, sizeof(cac_atr));
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_NEGOTIABLE);
	assert_int_equal(f->ext->card_caps.selected_protocol, 0);
	close_fixture(f);
}

static void power_down_leaves_card_present(void **state)
{
	struct fixture *f = open_with(qemu_desc, cac_atr, sizeof(cac_atr));

	(void)state;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(power(f, SMC_POWER_DOWN), SMC_OK);
	assert_int_equal(fake_sent_count_type(f->fd, 0x63), 1);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_PRESENT);
	assert_int_equal(f->ext->card_caps.atr_len, 0);
	close_fixture(f);
}

/* ---- protocol ----------------------------------------------------------------- */

static void set_protocol_t0_with_auto_params_sends_no_set_parameters(void **state)
{
	struct fixture *f = open_with(qemu_desc, cac_atr, sizeof(cac_atr));

	(void)state;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1), SMC_OK);
	assert_int_equal(fake_sent_count_type(f->fd, 0x61), 0);
	assert_int_equal(f->ext->card_caps.selected_protocol, SMC_PROTOCOL_T0);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_SPECIFIC);
	close_fixture(f);
}

static void set_protocol_t0_sends_t0_parameters(void **state)
{
	static const uint8_t block[] = { 0x11, 0x00, 0x00, 0x0A, 0x00 };
	uint8_t d[54];
	struct fixture *f;
	const uint8_t *m;
	size_t len;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL, 3, 65554);
	f = open_with(d, cac_atr, sizeof(cac_atr));
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T0), SMC_OK);
	m = fake_sent_last_type(f->fd, 0x61, &len);
	assert_non_null(m);
	assert_int_equal(len, 15);
	assert_int_equal(m[7], 0); /* bProtocolNum */
	assert_memory_equal(m + 10, block, sizeof(block));
	close_fixture(f);
}

static void set_protocol_t1_sends_t1_parameters_at_apdu_level(void **state)
{
	static const uint8_t block[] = { 0x11, 0x10, 0x02, 0x45, 0x00, 0xFE, 0x00 };
	uint8_t d[54];
	struct fixture *f;
	const uint8_t *m;
	size_t len;

	(void)state;
	make_desc(d, FEAT_SHORT_MANUAL, 3, 65554);
	f = open_with(d, t1_atr, sizeof(t1_atr));
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T1), SMC_OK);
	m = fake_sent_last_type(f->fd, 0x61, &len);
	assert_non_null(m);
	assert_int_equal(len, 17);
	assert_int_equal(m[7], 1);
	assert_memory_equal(m + 10, block, sizeof(block));
	assert_int_equal(f->ext->card_caps.selected_protocol, SMC_PROTOCOL_T1);
	close_fixture(f);
}

/* A TPDU reader that makes the PPS itself from the parameters (0x80): T=1 gets
 * SetParameters with the fastest Fi/Di the reader's rates allow (TA1 0x96 is
 * 250 kbps at 4 MHz, above 115200: Di 12, 93750 bps), and the T=1 engine
 * starts with an S(IFS request) for dwMaxIFSD queued. */
static void set_protocol_t1_at_tpdu_level_sets_speed_and_starts_t1(void **state)
{
	uint8_t d[54];
	struct fixture *f;
	const uint8_t *m;
	size_t len;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL | 0x80, 3, 65554);
	f = open_with(d, t1_atr, sizeof(t1_atr));
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T1), SMC_OK);
	m = fake_sent_last_type(f->fd, 0x61, &len);
	assert_non_null(m);
	assert_int_equal(len, 17);
	assert_int_equal(m[7], 1);
	assert_int_equal(m[10], 0x98);
	assert_int_equal(f->ext->card_caps.di, 12);
	assert_true(f->ext->t1.ifsd_pending);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_SPECIFIC);
	close_fixture(f);
}

/* A hostile T=1 card at TPDU level: every block it gets is answered, 2 s
 * later, by S(WTX request, 255). Each answer is in time and the engine takes
 * up to 255 of them per block, so only the APDU's time budget ends it: an
 * error after at most the budget and one more answer, never hours. */
static void wtx_storm(struct fake_dev *fd, const uint8_t *msg, size_t len, void *ctx)
{
	static const uint8_t wtx[] = { 0x00, 0xC3, 0x01, 0xFF, 0x00 ^ 0xC3 ^ 0x01 ^ 0xFF };
	struct fake_frame fr = { .type = 0x80, .data = wtx, .len = sizeof(wtx) };

	if (len >= 10 && msg[0] == 0x6F)
		fake_rx_frame(fd, &fr, 0, 2000);
	else
		device(fd, msg, len, ctx);
}

static void t1_wtx_storm_ends_within_the_apdu_budget(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x10 };
	uint8_t d[54];
	struct fixture *f;
	uint64_t start, took;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL | 0x40, 3, 65554);
	f = open_with(d, t1_atr, sizeof(t1_atr));
	f->reader->xfer.clock = fake_clock_ms;
	f->reader->xfer.clock_ctx = f->fd;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T1), SMC_OK);
	fake_set_responder(f->fd, wtx_storm, &f->dev);
	start = fake_clock_ms(f->fd);
	assert_int_not_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_OK);
	took = fake_clock_ms(f->fd) - start;
	assert_true(took >= CCID_APDU_BUDGET_MS);
	assert_true(took <= CCID_APDU_BUDGET_MS + 2000);
	/* the WTX multiplier went to the reader as bBWI */
	assert_int_equal(fake_sent_last_type(f->fd, 0x6F, NULL)[7], 0xFF);
	/* given up, not lost: the next APDU starts with S(RESYNCH request) */
	assert_true(f->ext->t1.resynch_pending);
	assert_false(f->ext->t1.needs_reset);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_SPECIFIC);
	close_fixture(f);
}

/* A T=1 card that went mute for good: R-blocks, then S(RESYNCH request)
 * three times, all unanswered (the reader says "mute" at once). The card
 * is then powered off and the slot left PRESENT: no later APDU can meet an
 * answer the card still owes; a reset brings it back. */
static void mute_for_good(struct fake_dev *fd, const uint8_t *msg, size_t len, void *ctx)
{
	if (len >= 10 && msg[0] == 0x6F)
		fake_rx_answer(fd, 0x80, 0x40, 0xFE, 0, NULL, 0);
	else
		device(fd, msg, len, ctx);
}

static void t1_card_mute_for_good_is_powered_off(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x10 };
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL | 0x40 | 0x400, 3, 65554);
	f = open_with(d, t1_atr, sizeof(t1_atr));
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T1), SMC_OK);
	fake_set_responder(f->fd, mute_for_good, &f->dev);
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_TIMEOUT);
	assert_int_equal(fake_sent_count_type(f->fd, 0x6F), 7); /* I, 3 R, 3 RESYNCH */
	assert_int_equal(fake_sent_count_type(f->fd, 0x63), 1);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_PRESENT);
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_INVALID_STATE);
	fake_set_responder(f->fd, device, &f->dev);
	assert_int_equal(power(f, SMC_POWER_WARM), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T1), SMC_OK);
	assert_false(f->ext->t1.needs_reset);
	close_fixture(f);
}

/* An extended APDU reader that answers each part after a time extension
 * (x255) and 59 s: every part is in time for its own wait, but time
 * extensions cannot carry the APDU past its budget (plus the abort). */
static void time_extensions(struct fake_dev *fd, const uint8_t *msg, size_t len, void *ctx)
{
	static uint8_t part[102] = { [100] = 0x90, [101] = 0x00 };
	struct fake_frame te = { .type = 0x80, .status = 0x80, .error = 255 };
	struct fake_frame fr = { .type = 0x80, .data = part, .len = sizeof(part) };

	if (len < 10 || msg[0] != 0x6F) {
		device(fd, msg, len, ctx);
		return;
	}
	fr.specific = (msg[8] | msg[9] << 8) == 0x10 ? 0x03 : 0x01; /* never the last part */
	fake_rx_frame(fd, &te, 0, 1000);
	fake_rx_frame(fd, &fr, 0, 59000);
}

static void time_extensions_end_within_the_apdu_budget(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x00 };
	uint8_t d[54];
	struct fixture *f;
	uint64_t start, took;

	(void)state;
	make_desc(d, FEAT_EXTENDED, 3, 65554);
	f = open_with(d, cac_atr, sizeof(cac_atr));
	f->reader->xfer.clock = fake_clock_ms;
	f->reader->xfer.clock_ctx = f->fd;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T0), SMC_OK);
	fake_set_responder(f->fd, time_extensions, &f->dev);
	start = fake_clock_ms(f->fd);
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_TIMEOUT);
	took = fake_clock_ms(f->fd) - start;
	assert_true(took >= CCID_APDU_BUDGET_MS);
	assert_true(took <= CCID_APDU_BUDGET_MS + CCID_XFER_ABORT_ANSWER_MS);
	close_fixture(f);
}

/* A reader that never answers a PPS request (a stuck reader; a mute card
 * would be reported at once). The PPS wait is the initial waiting time at
 * Fd (9600 etu), not the card's later WT (TC2 = 255: 31 s at Fi 512): the
 * refusal costs seconds, then the card is reset and runs at Fd/Dd. */
static void mute_on_pps(struct fake_dev *fd, const uint8_t *msg, size_t len, void *ctx)
{
	if (len > 10 && msg[0] == 0x6F && msg[10] == 0xFF)
		return;
	device(fd, msg, len, ctx);
}

static void unanswered_pps_costs_the_initial_waiting_time(void **state)
{
	static const uint8_t slow_t0_atr[] = { 0x3B, 0x90, 0x96, 0x40, 0xFF };
	uint8_t d[54];
	struct fixture *f;
	uint64_t start, took;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL, 1, 65554);
	f = open_with(d, slow_t0_atr, sizeof(slow_t0_atr));
	f->reader->xfer.clock = fake_clock_ms;
	f->reader->xfer.clock_ctx = f->fd;
	fake_set_responder(f->fd, mute_on_pps, &f->dev);
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	start = fake_clock_ms(f->fd);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T0), SMC_OK);
	took = fake_clock_ms(f->fd) - start;
	assert_true(took >= CCID_XFR_MIN_TIMEOUT_MS);
	assert_true(took <= CCID_XFR_MIN_TIMEOUT_MS + 2 * CCID_XFER_ABORT_ANSWER_MS);
	assert_int_equal(f->ext->card_caps.fi, 372);
	assert_int_equal(f->ext->card_caps.di, 1);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_SPECIFIC);
	close_fixture(f);
}

static void set_parameters_refused_by_reader_is_comm_error(void **state)
{
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL, 3, 65554);
	f = open_with(d, cac_atr, sizeof(cac_atr));
	f->dev.params_fail = 1;
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T0), SMC_ERR_COMM);
	assert_int_equal(fake_sent_count_type(f->fd, 0x61), 1);
	assert_true(f->ext->reader_caps.current_state != SMC_STATE_SPECIFIC);
	close_fixture(f);
}

static void specific_mode_card_is_configured_at_power_up(void **state)
{
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_TPDU_MANUAL, 3, 65554);
	f = open_with(d, specific_t0_atr, sizeof(specific_t0_atr));
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_SPECIFIC);
	assert_int_equal(fake_sent_count_type(f->fd, 0x61), 1);
	assert_int_equal(set_protocol(f, SMC_PROTOCOL_T0), SMC_OK);
	assert_int_equal(fake_sent_count_type(f->fd, 0x61), 1);
	close_fixture(f);
}

/* ---- transmit ---------------------------------------------------------------- */

static struct fixture *ready(const uint8_t *desc, const uint8_t *atr, size_t atr_len,
			     uint32_t proto)
{
	struct fixture *f = open_with(desc, atr, atr_len);

	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(set_protocol(f, proto), SMC_OK);
	return f;
}

static void transmit_tpdu_maps_case_4_and_returns_data_and_sw(void **state)
{
	/* SELECT the CAC applet: case 4 (Lc 7, Le 00) */
	static const uint8_t apdu[] = { 0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00,
					0x00, 0x00, 0x79, 0x01, 0x00, 0x00 };
	static const uint8_t resp[] = { 0x6F, 0x02, 0x84, 0x00, 0x90, 0x00 };
	struct fixture *f = ready(qemu_desc, cac_atr, sizeof(cac_atr), SMC_PROTOCOL_T0);
	const uint8_t *m;
	size_t len;

	(void)state;
	card_answers(f, resp, sizeof(resp));
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_OK);
	assert_int_equal(f->reply_len, sizeof(resp));
	assert_memory_equal(f->reply, resp, sizeof(resp));
	/* the TPDU is the case 3 form: header, P3 = Lc, data, no Le */
	m = fake_sent_last_type(f->fd, 0x6F, &len);
	assert_int_equal(len, 10 + 12);
	assert_memory_equal(m + 10, apdu, 12);
	assert_int_equal(m[8] | m[9] << 8, 0);
	close_fixture(f);
}

static void transmit_tpdu_reply_too_small_is_buffer_too_small(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x10 };
	uint8_t resp[18];
	struct fixture *f = ready(qemu_desc, cac_atr, sizeof(cac_atr), SMC_PROTOCOL_T0);

	(void)state;
	memset(resp, 0x55, sizeof(resp));
	resp[16] = 0x90;
	resp[17] = 0x00;
	card_answers(f, resp, sizeof(resp));
	assert_int_equal(transmit(f, apdu, sizeof(apdu), 17), SMC_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(transmit(f, apdu, sizeof(apdu), 18), SMC_OK);
	assert_int_equal(f->reply_len, 18);
	close_fixture(f);
}

static void transmit_tpdu_empty_answer_is_comm_error(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x10 };
	struct fixture *f = ready(qemu_desc, cac_atr, sizeof(cac_atr), SMC_PROTOCOL_T0);

	(void)state;
	card_answers(f, NULL, 0); /* QEMU's answer when no card is active */
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_COMM);
	close_fixture(f);
}

static void transmit_short_apdu_sends_apdu_as_is(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00, 0x00 };
	static const uint8_t resp[] = { 0x01, 0x02, 0x03, 0x90, 0x00 };
	uint8_t d[54];
	struct fixture *f;
	const uint8_t *m;
	size_t len, reads, sends;

	(void)state;
	make_desc(d, FEAT_SHORT_AUTO, 3, 271);
	f = ready(d, t1_atr, sizeof(t1_atr), SMC_PROTOCOL_T1);
	card_answers(f, resp, sizeof(resp));
	reads = fake_receive_calls(f->fd);
	sends = fake_sent_count(f->fd);
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_OK);
	/* a short APDU costs one bulk OUT and one bulk IN */
	assert_int_equal(fake_receive_calls(f->fd) - reads, 1);
	assert_int_equal(fake_sent_count(f->fd) - sends, 1);
	assert_int_equal(f->reply_len, sizeof(resp));
	assert_memory_equal(f->reply, resp, sizeof(resp));
	m = fake_sent_last_type(f->fd, 0x6F, &len);
	assert_int_equal(len, 10 + sizeof(apdu));
	assert_memory_equal(m + 10, apdu, sizeof(apdu));
	close_fixture(f);
}

static void transmit_short_apdu_refuses_extended_apdu(void **state)
{
	static const uint8_t ext_apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x00 };
	static uint8_t long_apdu[300];
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_SHORT_AUTO, 3, 65554);
	f = ready(d, t1_atr, sizeof(t1_atr), SMC_PROTOCOL_T1);
	assert_int_equal(transmit(f, ext_apdu, sizeof(ext_apdu), sizeof(f->reply)),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(transmit(f, long_apdu, sizeof(long_apdu), sizeof(f->reply)),
			 SMC_ERR_NOT_SUPPORTED);
	assert_int_equal(fake_sent_count_type(f->fd, 0x6F), 0);
	close_fixture(f);
}

static void extended_apdu_command_split_over_small_messages(void **state)
{
	static const uint16_t want_levels[] = { 0x01, 0x03, 0x03, 0x03, 0x02 };
	static const uint8_t sw[] = { 0x90, 0x00 };
	uint8_t apdu[1000], d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_EXTENDED, 3, 10 + 200);
	f = ready(d, t1_atr, sizeof(t1_atr), SMC_PROTOCOL_T1);
	/* UPDATE BINARY, case 3E: 7-byte header, Lc 993 */
	apdu[0] = 0x00, apdu[1] = 0xD6, apdu[2] = 0, apdu[3] = 0;
	apdu[4] = 0, apdu[5] = 0x03, apdu[6] = 0xE1;
	for (size_t i = 7; i < sizeof(apdu); i++)
		apdu[i] = (uint8_t)(i * 13);
	card_answers(f, sw, sizeof(sw));
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_OK);
	assert_int_equal(f->reply_len, 2);
	assert_memory_equal(f->reply, sw, 2);
	assert_int_equal(f->dev.cmd_len, sizeof(apdu));
	assert_memory_equal(f->dev.cmd, apdu, sizeof(apdu));
	assert_int_equal(f->dev.n_levels, 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(f->dev.levels[i], want_levels[i]);
	close_fixture(f);
}

static void extended_apdu_answer_of_65535_bytes_in_parts(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x00, 0xFF, 0xFF };
	uint8_t d[54];
	struct fixture *f;
	unsigned saved = smc_log_mask;
	size_t total = 65535 + 2;

	(void)state;
	make_desc(d, FEAT_EXTENDED, 3, 10 + 200);
	f = ready(d, t1_atr, sizeof(t1_atr), SMC_PROTOCOL_T1);
	for (size_t i = 0; i < 65535; i++)
		f->dev.resp[i] = (uint8_t)(i ^ (i >> 8));
	f->dev.resp[65535] = 0x90;
	f->dev.resp[65536] = 0x00;
	f->dev.resp_len = total;
	f->dev.part = 200;
	smc_log_mask &= ~(unsigned)SMC_LOG_COMM; /* 330 parts of hex dumps */
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_OK);
	smc_log_mask = saved;
	assert_int_equal(f->reply_len, total);
	assert_memory_equal(f->reply, f->dev.resp, total);
	assert_int_equal(f->dev.levels[0], 0x00);
	assert_int_equal(f->dev.levels[1], 0x10);
	assert_int_equal(fake_sent_count_type(f->fd, 0x6F), (total + 199) / 200);
	close_fixture(f);
}

static void extended_apdu_chained_both_ways(void **state)
{
	uint8_t apdu[1000], d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_EXTENDED, 3, 10 + 64);
	f = ready(d, t1_atr, sizeof(t1_atr), SMC_PROTOCOL_T1);
	memset(apdu, 0xA5, sizeof(apdu));
	apdu[4] = 0, apdu[5] = 0x03, apdu[6] = 0xDF; /* case 4E: Lc 991, Le 0000 */
	apdu[998] = 0, apdu[999] = 0;
	for (size_t i = 0; i < 500; i++)
		f->dev.resp[i] = (uint8_t)i;
	f->dev.resp[500] = 0x90;
	f->dev.resp[501] = 0x00;
	f->dev.resp_len = 502;
	f->dev.part = 64;
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_OK);
	assert_int_equal(f->reply_len, 502);
	assert_memory_equal(f->reply, f->dev.resp, 502);
	assert_memory_equal(f->dev.cmd, apdu, sizeof(apdu));
	/* 16 command parts (15 x 64 + 40), then 7 requests for the next part */
	assert_int_equal(f->dev.n_levels, 16 + 7);
	assert_int_equal(f->dev.levels[15], 0x02);
	assert_int_equal(f->dev.levels[16], 0x10);
	close_fixture(f);
}

static void extended_apdu_answer_too_big_keeps_reader_in_step(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x00, 0x03, 0xE8 };
	static const uint8_t sw[] = { 0x90, 0x00 };
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_EXTENDED, 3, 10 + 200);
	f = ready(d, t1_atr, sizeof(t1_atr), SMC_PROTOCOL_T1);
	memset(f->dev.resp, 0x11, 1000);
	f->dev.resp[1000] = 0x90;
	f->dev.resp[1001] = 0x00;
	f->dev.resp_len = 1002;
	f->dev.part = 200;
	assert_int_equal(transmit(f, apdu, sizeof(apdu), 500), SMC_ERR_BUFFER_TOO_SMALL);
	/* every part was fetched, so the reader finished its chain */
	assert_int_equal(f->dev.resp_off, 1002);
	assert_int_equal(fake_rx_pending(f->fd), 0);
	card_answers(f, sw, sizeof(sw));
	f->dev.part = 0;
	assert_int_equal(transmit(f, apdu, sizeof(apdu), 500), SMC_OK);
	assert_int_equal(f->reply_len, 2);
	close_fixture(f);
}

static void extended_response_part_out_of_order_is_comm_error(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x00 };
	static const uint8_t bad[] = { 0x01, 0x02 };
	uint8_t d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_EXTENDED, 3, 65554);
	f = ready(d, t1_atr, sizeof(t1_atr), SMC_PROTOCOL_T1);
	fake_set_responder(f->fd, NULL, NULL);
	fake_rx_answer(f->fd, 0x80, 0x00, 0, 0x03, bad, 2); /* "continues" first */
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_COMM);
	fake_rx_answer(f->fd, 0x80, 0x00, 0, 0x01, NULL, 0); /* empty, "more follows" */
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_COMM);
	close_fixture(f);
}

static void extended_command_part_answered_with_a_response_is_comm_error(void **state)
{
	static const uint8_t sw[] = { 0x90, 0x00 };
	uint8_t apdu[300], d[54];
	struct fixture *f;

	(void)state;
	make_desc(d, FEAT_EXTENDED, 3, 10 + 200);
	f = ready(d, t1_atr, sizeof(t1_atr), SMC_PROTOCOL_T1);
	memset(apdu, 0, sizeof(apdu));
	apdu[5] = 0x01, apdu[6] = 0x25; /* case 3E, Lc 293 */
	fake_set_responder(f->fd, NULL, NULL);
	fake_rx_answer(f->fd, 0x80, 0x00, 0, 0x00, sw, 2); /* a whole response, not 0x10 */
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_COMM);
	assert_int_equal(fake_sent_count_type(f->fd, 0x6F), 1);
	fake_rx_answer(f->fd, 0x80, 0x00, 0, 0x10, sw, 2); /* 0x10 but with data */
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_COMM);
	assert_int_equal(fake_sent_count_type(f->fd, 0x6F), 2);
	close_fixture(f);
}

/* ---- presence --------------------------------------------------------------- */

static void presence_follows_absent_and_present(void **state)
{
	struct fixture *f = open_with(qemu_desc, cac_atr, sizeof(cac_atr));

	(void)state;
	f->dev.icc = 2;
	assert_int_equal(is_present(f), SMC_ERR_NO_MEDIA);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_ABSENT);
	f->dev.icc = 1;
	assert_int_equal(is_present(f), SMC_OK);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_PRESENT);
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_OK);
	assert_int_equal(is_present(f), SMC_OK); /* active: stays powered */
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_NEGOTIABLE);
	f->dev.icc = 2;
	assert_int_equal(is_present(f), SMC_ERR_NO_MEDIA);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_ABSENT);
	assert_int_equal(f->ext->card_caps.atr_len, 0);
	assert_int_equal(fake_sent_count_type(f->fd, 0x65), 4);
	close_fixture(f);
}

static void card_reset_behind_our_back_goes_back_to_present(void **state)
{
	struct fixture *f = ready(qemu_desc, cac_atr, sizeof(cac_atr), SMC_PROTOCOL_T0);

	(void)state;
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_SPECIFIC);
	f->dev.icc = 1; /* swapped: present but not active */
	assert_int_equal(is_present(f), SMC_OK);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_PRESENT);
	assert_int_equal(f->ext->card_caps.atr_len, 0);
	assert_int_equal(f->ext->card_caps.selected_protocol, 0);
	close_fixture(f);
}

static void transmit_to_a_removed_card_is_no_media(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x10 };
	struct fixture *f = ready(qemu_desc, cac_atr, sizeof(cac_atr), SMC_PROTOCOL_T0);

	(void)state;
	fake_set_responder(f->fd, NULL, NULL);
	fake_rx_answer(f->fd, 0x80, 0x42, 0xFE, 0, NULL, 0);
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_NO_MEDIA);
	assert_int_equal(f->ext->reader_caps.current_state, SMC_STATE_ABSENT);
	close_fixture(f);
}

/* ---- the reader goes away ---------------------------------------------------- */

static void unplugged_reader_answers_no_device(void **state)
{
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x10 };
	struct fixture *f = ready(qemu_desc, cac_atr, sizeof(cac_atr), SMC_PROTOCOL_T0);
	size_t sent;

	(void)state;
	fake_send_result(f->fd, TP_NO_DEVICE);
	assert_int_equal(transmit(f, apdu, sizeof(apdu), sizeof(f->reply)), SMC_ERR_NO_DEVICE);
	assert_true(ccid_reader_is_gone(f->reader));
	sent = fake_sent_count(f->fd);
	assert_int_equal(is_present(f), SMC_ERR_NO_DEVICE);
	assert_int_equal(power(f, SMC_POWER_COLD), SMC_ERR_NO_DEVICE);
	assert_int_equal(fake_sent_count(f->fd), sent);
	close_fixture(f);
}

static void xfr_timeout_follows_card_waiting_time(void **state)
{
	struct fixture *f = open_with(qemu_desc, cac_atr, sizeof(cac_atr));

	(void)state;
	f->ext->card_caps.selected_protocol = SMC_PROTOCOL_T0;
	f->ext->card_caps.t0.wt_ms = 500;
	assert_int_equal(ccid_xfr_timeout_ms(f->ext), CCID_XFR_MIN_TIMEOUT_MS);
	f->ext->card_caps.t0.wt_ms = 10000;
	assert_int_equal(ccid_xfr_timeout_ms(f->ext), 10000 + CCID_XFR_MARGIN_MS);
	f->ext->card_caps.t0.wt_ms = 4000000;
	assert_int_equal(ccid_xfr_timeout_ms(f->ext), CCID_XFR_MAX_TIMEOUT_MS);
	f->ext->card_caps.selected_protocol = SMC_PROTOCOL_T1;
	f->ext->card_caps.t1.bwt_ms = 5000;
	assert_int_equal(ccid_xfr_timeout_ms(f->ext), 5000 + CCID_XFR_MARGIN_MS);
	/* a T=1 block after S(WTX request, m): m times BWT, for that block */
	assert_int_equal(ccid_t1_block_timeout_ms(f->ext, 1), 5000 + CCID_XFR_MARGIN_MS);
	assert_int_equal(ccid_t1_block_timeout_ms(f->ext, 3), 15000 + CCID_XFR_MARGIN_MS);
	assert_int_equal(ccid_t1_block_timeout_ms(f->ext, 255), CCID_XFR_MAX_TIMEOUT_MS);
	close_fixture(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(open_with_qemu_descriptor_fills_the_extension),
		cmocka_unit_test(open_refuses_malformed_readers),
		cmocka_unit_test(extended_reader_announces_extended_max_input),
		cmocka_unit_test(tpdu_reader_with_t1_announces_extended_max_input),
		cmocka_unit_test(power_up_returns_the_cac_atr),
		cmocka_unit_test(power_up_tries_5v_then_3v_then_1v8),
		cmocka_unit_test(power_up_skips_voltages_the_reader_lacks),
		cmocka_unit_test(power_up_of_a_mute_card_is_power_error),
		cmocka_unit_test(reset_of_a_mute_card_is_tried_once_more),
		cmocka_unit_test(power_up_with_card_removed_is_no_media),
		cmocka_unit_test(power_up_rejects_empty_and_oversized_atr),
		cmocka_unit_test(warm_reset_powers_off_then_on),
		cmocka_unit_test(power_down_leaves_card_present),
		cmocka_unit_test(set_protocol_t0_with_auto_params_sends_no_set_parameters),
		cmocka_unit_test(set_protocol_t0_sends_t0_parameters),
		cmocka_unit_test(set_protocol_t1_sends_t1_parameters_at_apdu_level),
		cmocka_unit_test(set_protocol_t1_at_tpdu_level_sets_speed_and_starts_t1),
		cmocka_unit_test(t1_wtx_storm_ends_within_the_apdu_budget),
		cmocka_unit_test(t1_card_mute_for_good_is_powered_off),
		cmocka_unit_test(time_extensions_end_within_the_apdu_budget),
		cmocka_unit_test(unanswered_pps_costs_the_initial_waiting_time),
		cmocka_unit_test(set_parameters_refused_by_reader_is_comm_error),
		cmocka_unit_test(specific_mode_card_is_configured_at_power_up),
		cmocka_unit_test(transmit_tpdu_maps_case_4_and_returns_data_and_sw),
		cmocka_unit_test(transmit_tpdu_reply_too_small_is_buffer_too_small),
		cmocka_unit_test(transmit_tpdu_empty_answer_is_comm_error),
		cmocka_unit_test(transmit_short_apdu_sends_apdu_as_is),
		cmocka_unit_test(transmit_short_apdu_refuses_extended_apdu),
		cmocka_unit_test(extended_apdu_command_split_over_small_messages),
		cmocka_unit_test(extended_apdu_answer_of_65535_bytes_in_parts),
		cmocka_unit_test(extended_apdu_chained_both_ways),
		cmocka_unit_test(extended_apdu_answer_too_big_keeps_reader_in_step),
		cmocka_unit_test(extended_response_part_out_of_order_is_comm_error),
		cmocka_unit_test(extended_command_part_answered_with_a_response_is_comm_error),
		cmocka_unit_test(presence_follows_absent_and_present),
		cmocka_unit_test(card_reset_behind_our_back_goes_back_to_present),
		cmocka_unit_test(transmit_to_a_removed_card_is_no_media),
		cmocka_unit_test(unplugged_reader_answers_no_device),
		cmocka_unit_test(xfr_timeout_follows_card_waiting_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
