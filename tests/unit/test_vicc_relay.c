/* The relay card (card-relay=vicc:HOST:PORT, sim/vicc_relay.c, sim/vcard_relay.c):
 * a fake vicc in a thread, on a loopback socket, speaks vicc's protocol (2-byte
 * big-endian length, then a control code or an APDU). Checked: the ATR comes
 * from vicc at power-on, APDUs go through at APDU levels (with the driver from
 * src/ in front, over the in-process transport) and at TPDU level (T=0 TPDUs
 * and T=1 blocks reach vicc as whole APDUs), malformed answers give an error
 * status, and a vicc that leaves or stays silent makes the card mute. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ccid.h"
#include "inproc.h"
#include "smclib.h"
#include "vcard.h"
#include "vicc_relay.h"
#include "vreader.h"

/* ---- the fake vicc ------------------------------------------------------------- */

/* A T=1-only ATR: TD1 T=1, TD2 T=1 with TA3 (IFSC 254) and TB3, 8 historical
 * bytes, TCK (filled in by atr_t1()). */
static uint8_t t1_atr[] = { 0x3B, 0x88, 0x81, 0x31, 0xFE, 0x45, 'f', 'a', 'k', 'e', 'v', 'i', 'c', 'c', 0x00 };
/* A T=0-only ATR with nothing but TS and T0. */
static const uint8_t t0_atr[] = { 0x3B, 0x00 };

struct fake_vicc {
	uint16_t port;
	const uint8_t *atr;
	size_t atr_len;
	int atr_announce;        /* >0: announce this ATR length instead (malformed) */
	int fd;
	pthread_t thread;
	pthread_mutex_t lock;
	uint8_t ctrl[64];        /* control codes received, in order */
	size_t n_ctrl;
	uint8_t last[70000];     /* the last APDU received */
	size_t last_len;
	unsigned apdus;
};

static const uint8_t *atr_t1(void)
{
	uint8_t x = 0;

	for (size_t i = 1; i + 1 < sizeof(t1_atr); i++)
		x ^= t1_atr[i];
	t1_atr[sizeof(t1_atr) - 1] = x;
	return t1_atr;
}

static int read_all(int fd, uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, b, n);

		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void write_all(int fd, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

		if (r <= 0)
			return;
		b += r;
		n -= (size_t)r;
	}
}

static void send_msg(int fd, const uint8_t *b, size_t n, size_t announce)
{
	uint8_t h[2] = { (uint8_t)(announce >> 8), (uint8_t)announce };

	write_all(fd, h, 2);
	write_all(fd, b, n);
}

/* What the fake card answers, by INS (the misbehaviours are on demand):
 *   CA: P2 bytes 00, 01 ... then 90 00;  E0: a 0-byte answer;  E1: a 1-byte
 *   answer;  E2: announces 100 bytes, sends 10 and leaves;  E3: leaves without
 *   an answer;  E4: never answers;  others: the APDU echoed, then 90 00.
 * Returns false when the fake leaves. */
static bool answer_apdu(struct fake_vicc *f, const uint8_t *a, size_t n)
{
	static uint8_t rsp[70000];
	size_t len = 0;

	switch (a[1]) {
	case 0xCA:
		for (len = 0; len < a[3]; len++)
			rsp[len] = (uint8_t)len;
		break;
	case 0xE0:
		send_msg(f->fd, rsp, 0, 0);
		return true;
	case 0xE1:
		send_msg(f->fd, (const uint8_t *)"\x90", 1, 1);
		return true;
	case 0xE2:
		send_msg(f->fd, rsp, 10, 100);
		return false;
	case 0xE3:
		return false;
	case 0xE4: {
		uint8_t b;

		(void)read_all(f->fd, &b, 1); /* until the relay hangs up */
		return false;
	}
	default:
		memcpy(rsp, a, n);
		len = n;
		break;
	}
	rsp[len++] = 0x90;
	rsp[len++] = 0x00;
	send_msg(f->fd, rsp, len, len);
	return true;
}

static void *fake_main(void *arg)
{
	struct fake_vicc *f = arg;
	static uint8_t buf[70000];
	uint8_t h[2];

	for (;;) {
		size_t n;

		if (read_all(f->fd, h, 2) != 0)
			break;
		n = (size_t)h[0] << 8 | h[1];
		if (read_all(f->fd, buf, n) != 0)
			break;
		pthread_mutex_lock(&f->lock);
		if (n == 1 && f->n_ctrl < sizeof(f->ctrl))
			f->ctrl[f->n_ctrl++] = buf[0];
		if (n > 1) {
			memcpy(f->last, buf, n);
			f->last_len = n;
			f->apdus++;
		}
		pthread_mutex_unlock(&f->lock);
		if (n == 1 && buf[0] == VICC_GET_ATR) {
			uint8_t big[40] = { 0x3B };

			if (f->atr_announce > 0)
				send_msg(f->fd, big, (size_t)f->atr_announce, (size_t)f->atr_announce);
			else
				send_msg(f->fd, f->atr, f->atr_len, f->atr_len);
		} else if (n > 1 && !answer_apdu(f, buf, n)) {
			break;
		}
	}
	close(f->fd);
	return NULL;
}

/* A free loopback port (bound and released: the relay binds it next). */
static uint16_t free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* vicc connects to the reader, as Debian's vicc does by default. */
static void fake_start(struct fake_vicc *f)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(f->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	pthread_mutex_init(&f->lock, NULL);
	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(f->fd >= 0);
	assert_int_equal(connect(f->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* After the reader is freed (its end closed), the fake sees EOF and ends. */
static void fake_join(struct fake_vicc *f)
{
	pthread_join(f->thread, NULL);
	pthread_mutex_destroy(&f->lock);
}

static struct fake_vicc *fake_new(const uint8_t *atr, size_t atr_len)
{
	struct fake_vicc *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->port = free_port();
	f->atr = atr;
	f->atr_len = atr_len;
	return f;
}

static void relay_setting(const struct fake_vicc *f, char out[64])
{
	snprintf(out, 64, "vicc:127.0.0.1:%u", f->port);
}

/* ---- the reader on its own: one message in, its answer out ----------------------- */

#define BUF 70000
static uint8_t ans[BUF];

static void msg(struct vreader *vr, uint8_t type, uint8_t seq, uint8_t b7, const uint8_t *data, size_t len)
{
	static uint8_t m[BUF];

	memset(m, 0, 10);
	m[0] = type;
	m[1] = (uint8_t)len;
	m[2] = (uint8_t)(len >> 8);
	m[6] = seq;
	m[7] = b7;
	if (len)
		memcpy(m + 10, data, len);
	vr_bulk_out(vr, m, 10 + len);
}

/* The next answer's data length; its status and error checked. */
static size_t expect(struct vreader *vr, uint8_t type, uint8_t seq, uint8_t status, uint8_t error)
{
	size_t n = vr_bulk_in(vr, ans, sizeof(ans));

	assert_true(n >= 10);
	assert_int_equal(ans[0], type);
	assert_int_equal(ans[6], seq);
	assert_int_equal(ans[7], status);
	assert_int_equal(ans[8], error);
	return n - 10;
}

static struct vreader *relay_reader(const struct fake_vicc *f, const char *level)
{
	struct vr_profile p;
	const char *why;
	char relay[64];
	struct vreader *vr;

	vr_profile_defaults(&p);
	relay_setting(f, relay);
	assert_int_equal(vr_profile_set(&p, "card-relay", relay, &why), 0);
	assert_int_equal(vr_profile_set(&p, "level", level, &why), 0);
	vr = vr_new(&p);
	assert_non_null(vr);
	while (vr_interrupt_in(vr, ans, sizeof(ans)) > 0) /* NotifySlotChange at start */
		;
	return vr;
}

static void profile_takes_card_relay_and_refuses_bad_forms(void **state)
{
	static const char *const bad[] = { "vicc", "vicc:127.0.0.1", "vicc:localhost:35963",
					   "vicc:127.0.0.1:0", "vicc:127.0.0.1:65536", "vpcd:127.0.0.1:1",
					   "vicc::35963", "vicc:127.0.0.1:35963x" };
	struct vr_profile p;
	const char *why;

	(void)state;
	vr_profile_defaults(&p);
	assert_int_equal(p.card.relay_port, 0);
	assert_int_equal(vr_profile_set(&p, "card-relay", "vicc:127.0.0.1:35963", &why), 0);
	assert_string_equal(p.card.relay_host, "127.0.0.1");
	assert_int_equal(p.card.relay_port, 35963);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(vr_profile_set(&p, "card-relay", bad[i], &why), -1);
		assert_non_null(why);
	}
	assert_int_equal(p.card.relay_port, 35963); /* unchanged by refusals */
	assert_int_equal(vr_profile_set(&p, "card-relay", "none", &why), 0);
	assert_int_equal(p.card.relay_port, 0);
	/* slot n listens on PORT + n: the last one must still be a port */
	assert_int_equal(vr_profile_set(&p, "card-relay", "vicc:127.0.0.1:65535", &why), 0);
	assert_int_equal(vr_profile_set(&p, "slots", "2", &why), 0);
	assert_int_equal(vr_profile_check(&p, &why), -1);
}

static void reader_refuses_a_relay_port_already_taken(void **state)
{
	struct fake_vicc *f = fake_new(t0_atr, sizeof(t0_atr));
	struct vreader *vr = relay_reader(f, "short");
	struct vr_profile p = *vr_profile(vr);

	(void)state;
	assert_null(vr_new(&p));
	vr_free(vr);
	free(f);
}

static void power_on_answers_viccs_atr_after_power_up(void **state)
{
	struct fake_vicc *f = fake_new(atr_t1(), sizeof(t1_atr));
	struct vreader *vr = relay_reader(f, "short");
	size_t n;

	(void)state;
	fake_start(f);
	msg(vr, 0x62, 1, 0, NULL, 0);
	n = expect(vr, 0x80, 1, 0x00, 0);
	assert_int_equal(n, sizeof(t1_atr));
	assert_memory_equal(ans + 10, t1_atr, n);
	/* the reader's parameters follow vicc's ATR: T=1, IFSC FE, BWI/CWI 45 */
	msg(vr, 0x6C, 2, 0, NULL, 0);
	n = expect(vr, 0x82, 2, 0x00, 0);
	assert_int_equal(ans[9], 1);
	assert_int_equal(n, 7);
	assert_int_equal(ans[13], 0x45);
	assert_int_equal(ans[15], 0xFE);
	msg(vr, 0x63, 3, 0, NULL, 0);
	expect(vr, 0x81, 3, 0x01, 0);
	vr_free(vr);
	fake_join(f);
	assert_int_equal(f->n_ctrl, 3);
	assert_memory_equal(f->ctrl, "\x01\x04\x00", 3); /* power on, ATR, power off */
	free(f);
}

static void power_on_without_vicc_is_mute(void **state)
{
	struct fake_vicc *f = fake_new(t0_atr, sizeof(t0_atr));
	struct vreader *vr = relay_reader(f, "short");

	(void)state;
	msg(vr, 0x62, 1, 0, NULL, 0); /* waits VICC_ACCEPT_MS for a vicc that never comes */
	expect(vr, 0x80, 1, 0x41, 0xFE);
	msg(vr, 0x6F, 2, 0, (const uint8_t *)"\x00\xA4\x00\x00\x00", 5);
	expect(vr, 0x80, 2, 0x41, 0xFE);
	vr_free(vr);
	free(f);
}

static void malformed_atr_lengths_leave_the_card_mute(void **state)
{
	static const int lengths[] = { 1, 0, 34 };

	(void)state;
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		struct fake_vicc *f = fake_new(t0_atr, sizeof(t0_atr));
		struct vreader *vr = relay_reader(f, "short");

		f->atr_announce = lengths[i] ? lengths[i] : 0;
		if (lengths[i] == 0) {
			/* an ATR whose T0 announces more bytes than come */
			static const uint8_t cut[] = { 0x3B, 0x85, 0x01 };

			f->atr = cut;
			f->atr_len = sizeof(cut);
		}
		fake_start(f);
		msg(vr, 0x62, 1, 0, NULL, 0);
		expect(vr, 0x80, 1, 0x41, 0xFE);
		vr_free(vr);
		fake_join(f);
		free(f);
	}
}

/* TPDU level, T=0: the card's T=0 side turns TPDUs into APDUs for vicc. */
static void tpdu_t0_reaches_vicc_as_apdus(void **state)
{
	struct fake_vicc *f = fake_new(t0_atr, sizeof(t0_atr));
	struct vreader *vr = relay_reader(f, "tpdu");
	static const uint8_t in[] = { 0x80, 0xDA, 0x00, 0x00, 0x03, 0x01, 0x02, 0x03 };
	size_t n;

	(void)state;
	fake_start(f);
	msg(vr, 0x62, 1, 0, NULL, 0);
	n = expect(vr, 0x80, 1, 0x00, 0);
	assert_int_equal(n, 2);
	/* case 2: P3 = Le, vicc answers exactly that many */
	msg(vr, 0x6F, 2, 0, (const uint8_t *)"\x80\xCA\x00\x04\x04", 5);
	n = expect(vr, 0x80, 2, 0x00, 0);
	assert_int_equal(n, 6);
	assert_memory_equal(ans + 10, "\x00\x01\x02\x03\x90\x00", 6);
	assert_int_equal(f->last_len, 5);
	assert_memory_equal(f->last, "\x80\xCA\x00\x04\x04", 5);
	/* case 3 (vicc answers data): 61 xx, then GET RESPONSE */
	msg(vr, 0x6F, 3, 0, in, sizeof(in));
	n = expect(vr, 0x80, 3, 0x00, 0);
	assert_memory_equal(ans + 10, "\x61\x08", 2);
	assert_int_equal(f->last_len, sizeof(in));
	assert_memory_equal(f->last, in, sizeof(in));
	msg(vr, 0x6F, 4, 0, (const uint8_t *)"\x00\xC0\x00\x00\x08", 5);
	n = expect(vr, 0x80, 4, 0x00, 0);
	assert_int_equal(n, 10);
	assert_memory_equal(ans + 10, in, 8);
	assert_int_equal(f->apdus, 2); /* GET RESPONSE was the card's own */
	vr_free(vr);
	fake_join(f);
	free(f);
}

static uint8_t lrc(const uint8_t *b, size_t n)
{
	uint8_t x = 0;

	for (size_t i = 0; i < n; i++)
		x ^= b[i];
	return x;
}

/* TPDU level, T=1: vcard_t1.c gathers the APDU from I-blocks and hands it to
 * vicc; the answer comes back in an I-block. Removing the card powers vicc off. */
static void tpdu_t1_blocks_carry_viccs_apdus(void **state)
{
	struct fake_vicc *f = fake_new(atr_t1(), sizeof(t1_atr));
	struct vreader *vr = relay_reader(f, "tpdu");
	uint8_t blk[16] = { 0x00, 0x00, 0x05, 0x00, 0xA4, 0x00, 0x00, 0x00 };
	size_t n;

	(void)state;
	fake_start(f);
	msg(vr, 0x62, 1, 0, NULL, 0);
	expect(vr, 0x80, 1, 0x00, 0);
	blk[8] = lrc(blk, 8);
	msg(vr, 0x6F, 2, 0, blk, 9);
	n = expect(vr, 0x80, 2, 0x00, 0);
	/* I(0) with the echo and 90 00: NAD PCB LEN INF LRC */
	assert_int_equal(n, 3 + 7 + 1);
	assert_memory_equal(ans + 10, "\x00\x00\x07\x00\xA4\x00\x00\x00\x90\x00", 10);
	assert_int_equal(ans[20], lrc(ans + 10, 10));
	assert_int_equal(f->last_len, 5);
	/* the card taken out while powered: vicc hears a power off */
	vr_remove_card(vr, 0);
	vr_free(vr);
	fake_join(f);
	assert_int_equal(f->n_ctrl, 3);
	assert_memory_equal(f->ctrl, "\x01\x04\x00", 3);
	free(f);
}

/* Malformed answers: 6F 00 for that command; the link is closed, so the card
 * is mute after it. */
static void malformed_apdu_answers_give_6f00_then_mute(void **state)
{
	static const uint8_t ins[] = { 0xE0, 0xE1 };

	(void)state;
	for (size_t i = 0; i < sizeof(ins); i++) {
		struct fake_vicc *f = fake_new(t0_atr, sizeof(t0_atr));
		struct vreader *vr = relay_reader(f, "short");
		uint8_t cmd[5] = { 0x00, ins[i], 0x00, 0x00, 0x00 };
		size_t n;

		fake_start(f);
		msg(vr, 0x62, 1, 0, NULL, 0);
		expect(vr, 0x80, 1, 0x00, 0);
		msg(vr, 0x6F, 2, 0, cmd, 5);
		n = expect(vr, 0x80, 2, 0x00, 0);
		assert_int_equal(n, 2);
		assert_memory_equal(ans + 10, "\x6F\x00", 2);
		msg(vr, 0x6F, 3, 0, (const uint8_t *)"\x00\xA4\x00\x00\x00", 5);
		expect(vr, 0x80, 3, 0x41, 0xFE);
		vr_free(vr);
		fake_join(f);
		free(f);
	}
}

/* vicc leaves (mid-answer, or before it), or stays silent past
 * VICC_ANSWER_MS: the card is mute, and stays so until vicc comes back. */
static void vicc_gone_or_silent_makes_the_card_mute(void **state)
{
	static const uint8_t ins[] = { 0xE2, 0xE3, 0xE4 };

	(void)state;
	for (size_t i = 0; i < sizeof(ins); i++) {
		struct fake_vicc *f = fake_new(t0_atr, sizeof(t0_atr));
		struct vreader *vr = relay_reader(f, "short");
		uint8_t cmd[5] = { 0x00, ins[i], 0x00, 0x00, 0x00 };

		fake_start(f);
		msg(vr, 0x62, 1, 0, NULL, 0);
		expect(vr, 0x80, 1, 0x00, 0);
		msg(vr, 0x6F, 2, 0, cmd, 5);
		expect(vr, 0x80, 2, 0x41, 0xFE);
		msg(vr, 0x6F, 3, 0, (const uint8_t *)"\x00\xA4\x00\x00\x00", 5);
		expect(vr, 0x80, 3, 0x41, 0xFE);
		fake_join(f); /* the fake has left (for E4: the relay hung up on it) */
		vr_free(vr);
		free(f);
	}
}

/* ---- the driver in front: ccid_reader_open + smc_device_control over inproc ---------- */

struct rig {
	struct ccid_transport *tp;
	struct vreader *vr;
	struct ccid_reader *reader;
	struct smc_ext *ext;
	uint8_t reply[70000];
	size_t reply_len;
	uint8_t apdu[70000];
};

static struct rig *rig_open(const struct fake_vicc *f, const char *level)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct vr_profile p;
	const char *why;
	char relay[64];

	assert_non_null(r);
	vr_profile_defaults(&p);
	relay_setting(f, relay);
	assert_int_equal(vr_profile_set(&p, "card-relay", relay, &why), 0);
	assert_int_equal(vr_profile_set(&p, "level", level, &why), 0);
	if (strcmp(level, "extended") == 0)
		assert_int_equal(vr_profile_set(&p, "max-message", "1034", &why), 0);
	assert_int_equal(inproc_transport_open(&p, &r->tp, &r->vr), TP_OK);
	assert_int_equal(ccid_reader_open(r->tp, &r->reader), SMC_OK);
	r->ext = ccid_reader_slot(r->reader, 0);
	assert_non_null(r->ext);
	return r;
}

static smc_status rig_transmit(struct rig *r, const uint8_t *apdu, size_t len)
{
	return smc_device_control(r->ext, SMC_REQ_TRANSMIT, r->ext->card_caps.selected_protocol, apdu,
				  len, r->reply, sizeof(r->reply), &r->reply_len);
}

static void rig_power_t1(struct rig *r)
{
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, r->reply,
					    sizeof(r->reply), &r->reply_len),
			 SMC_OK);
	assert_int_equal(r->ext->card_caps.atr_len, sizeof(t1_atr));
	assert_memory_equal(r->ext->card_caps.atr, t1_atr, sizeof(t1_atr));
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_SET_PROTOCOL, 2, NULL, 0, r->reply,
					    sizeof(r->reply), &r->reply_len),
			 SMC_OK);
	assert_int_equal(r->ext->card_caps.selected_protocol, 2);
}

static void driver_runs_apdus_through_the_relay_at_short_level(void **state)
{
	struct fake_vicc *f = fake_new(atr_t1(), sizeof(t1_atr));
	struct rig *r = rig_open(f, "short");

	(void)state;
	fake_start(f);
	rig_power_t1(r);
	/* SELECT MF: echoed by the fake, then 90 00 */
	assert_int_equal(rig_transmit(r, (const uint8_t *)"\x00\xA4\x00\x00\x00", 5), SMC_OK);
	assert_int_equal(r->reply_len, 7);
	assert_memory_equal(r->reply, "\x00\xA4\x00\x00\x00\x90\x00", 7);
	assert_memory_equal(f->last, "\x00\xA4\x00\x00\x00", 5);
	/* 256 bytes back */
	assert_int_equal(rig_transmit(r, (const uint8_t *)"\x00\xCA\x00\xFF\x00", 5), SMC_OK);
	assert_int_equal(r->reply_len, 255 + 2);
	for (unsigned i = 0; i < 255; i++)
		assert_int_equal(r->reply[i], (uint8_t)i);
	/* a malformed answer: the application sees 6F 00; then the card is mute */
	assert_int_equal(rig_transmit(r, (const uint8_t *)"\x00\xE1\x00\x00\x00", 5), SMC_OK);
	assert_int_equal(r->reply_len, 2);
	assert_memory_equal(r->reply, "\x6F\x00", 2);
	assert_int_not_equal(rig_transmit(r, (const uint8_t *)"\x00\xA4\x00\x00\x00", 5), SMC_OK);
	ccid_reader_close(r->reader);
	fake_join(f);
	free(r);
	free(f);
}

static void driver_runs_extended_apdus_through_the_relay(void **state)
{
	struct fake_vicc *f = fake_new(atr_t1(), sizeof(t1_atr));
	struct rig *r = rig_open(f, "extended");
	size_t nc = 3000;

	(void)state;
	fake_start(f);
	rig_power_t1(r);
	/* 80 12 01 80 00 Lh Ll data: chained both ways over 1034-byte messages */
	memcpy(r->apdu, "\x80\x12\x01\x80\x00", 5);
	r->apdu[5] = (uint8_t)(nc >> 8);
	r->apdu[6] = (uint8_t)nc;
	for (size_t i = 0; i < nc; i++)
		r->apdu[7 + i] = (uint8_t)(i * 7);
	assert_int_equal(rig_transmit(r, r->apdu, 7 + nc), SMC_OK);
	assert_int_equal(f->last_len, 7 + nc);
	assert_memory_equal(f->last, r->apdu, 7 + nc);
	assert_int_equal(r->reply_len, 7 + nc + 2);
	assert_memory_equal(r->reply, r->apdu, 7 + nc);
	assert_memory_equal(r->reply + 7 + nc, "\x90\x00", 2);
	ccid_reader_close(r->reader);
	fake_join(f);
	free(r);
	free(f);
}

static void driver_sees_a_mute_card_when_vicc_leaves(void **state)
{
	struct fake_vicc *f = fake_new(atr_t1(), sizeof(t1_atr));
	struct rig *r = rig_open(f, "short");

	(void)state;
	fake_start(f);
	rig_power_t1(r);
	assert_int_not_equal(rig_transmit(r, (const uint8_t *)"\x00\xE3\x00\x00\x00", 5), SMC_OK);
	fake_join(f);
	/* no vicc any more: power-up fails after VICC_ACCEPT_MS */
	assert_int_not_equal(smc_device_control(r->ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, r->reply,
						sizeof(r->reply), &r->reply_len),
			     SMC_OK);
	ccid_reader_close(r->reader);
	free(r);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(profile_takes_card_relay_and_refuses_bad_forms),
		cmocka_unit_test(reader_refuses_a_relay_port_already_taken),
		cmocka_unit_test(power_on_answers_viccs_atr_after_power_up),
		cmocka_unit_test(power_on_without_vicc_is_mute),
		cmocka_unit_test(malformed_atr_lengths_leave_the_card_mute),
		cmocka_unit_test(tpdu_t0_reaches_vicc_as_apdus),
		cmocka_unit_test(tpdu_t1_blocks_carry_viccs_apdus),
		cmocka_unit_test(malformed_apdu_answers_give_6f00_then_mute),
		cmocka_unit_test(vicc_gone_or_silent_makes_the_card_mute),
		cmocka_unit_test(driver_runs_apdus_through_the_relay_at_short_level),
		cmocka_unit_test(driver_runs_extended_apdus_through_the_relay),
		cmocka_unit_test(driver_sees_a_mute_card_when_vicc_leaves),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
