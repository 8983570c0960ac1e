/* The whole stack below the pcsc-lite boundary against a hostile device.
 *
 * A deterministic randomized robustness test: ccid_reader_open on the scripted
 * fake device, then thousands of smc_device_control requests (power, protocol,
 * transmit with random APDUs and reply buffers, presence, attributes) while the
 * device answers with random corruptions of what a correct reader would say:
 * wrong bSeq or bSlot, foreign message types, dwLength larger or smaller than
 * the data, truncated and split frames, zero-length reads, random status bytes,
 * storms of time extensions, timeouts, stalls, oversized ATRs, random bytes, and
 * now and then an unplug. After each storm the device behaves again and a clean
 * exchange must work (the driver resynchronises), unless the device is gone:
 * then the request that lost it returns NO_DEVICE, and every later one says so
 * without touching the device.
 * Random class descriptors (0..80 bytes) must be accepted or refused, never crash.
 *
 * The PRNG is a fixed-seed xorshift64*; the seed is printed and can be set with
 * HOSTILE_SEED (HOSTILE_REQUESTS sets the number of requests, HOSTILE_LOG=1
 * shows the driver's log). Time is the fake's virtual clock, so timeouts cost
 * nothing. The driver logs at every level during the storm (formatting is part of
 * what is tested), into /dev/null unless HOSTILE_LOG is set. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ccid/ccid_reader.h"
#include "fake_transport.h"
#include "smc_log.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define HAVE_SANITIZER_CALLBACK 1
#else
#define HAVE_SANITIZER_CALLBACK 0
#endif

#define DEFAULT_SEED 0x5EED0F5CA8D2C3B1ull
#define DEFAULT_REQUESTS 50000u
#define DESCRIPTOR_ROUNDS 3000u

/* A request may cost a few transactions (power up tries three voltages, an
 * extended APDU many parts); each is bounded by the hard bound, the abort and
 * the flushing reads. Generous, but finite: a hang shows up as a failure. */
#define VIRTUAL_MS_PER_SEND 100000u
/* Transport calls within one request before it counts as a livelock. */
#define OPS_PER_REQUEST_LIMIT 2000000u

/* ---- the PRNG -------------------------------------------------------------- */

static uint64_t seed, rng;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1Dull;
}

static uint32_t below(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}

static uint32_t between(uint32_t lo, uint32_t hi)
{
	return lo + below(hi - lo + 1);
}

static int chance(unsigned percent)
{
	return below(100) < percent;
}

static void random_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long x;

	if (v == NULL || *v == '\0')
		return dflt;
	x = strtoull(v, &end, 0);
	return *end == '\0' ? (uint64_t)x : dflt;
}

/* ---- where we are, for failure reports ---------------------------------------- */

static struct {
	const char *phase;
	unsigned episode, request;
	const char *what;
} where = { "start", 0, 0, "" };

static FILE *real_stderr, *quiet;

static void loud(void)
{
	if (real_stderr != NULL)
		stderr = real_stderr;
}

static void hush(void)
{
	if (quiet != NULL)
		stderr = quiet;
}

static void print_where(void)
{
	fprintf(real_stderr ? real_stderr : stderr,
		"hostile_device: seed 0x%016" PRIX64 " (HOSTILE_SEED to replay), %s, episode %u, request %u: %s\n",
		seed, where.phase, where.episode, where.request, where.what);
}

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			loud();                                             \
			print_where();                                      \
			fprintf(stderr, "  check failed: %s\n  ", #cond);   \
			fprintf(stderr, __VA_ARGS__);                       \
			fputc('\n', stderr);                                \
			fail_msg("hostile device check failed: %s", #cond); \
		}                                                           \
	} while (0)

/* ---- the hostile transport: the fake, plus failures it injects itself --------- */

struct hostile {
	struct ccid_transport tp;        /* what the driver gets */
	struct ccid_transport *inner;    /* the fake device */
	struct fake_dev *fd;
	const struct ccid_reader *reader;
	int storm;                       /* inject send/control failures */
	tp_status next_send;             /* armed failure of a coming send */
	int send_armed;                  /* that send: 1 the next, 2 the one after... */
	int unplugged;                   /* every operation answers TP_NO_DEVICE */
	int closed;
	size_t ops;                      /* transport calls in this request */
	size_t ops_after_gone;           /* calls made although the driver knew it was gone */
};

static struct hostile *host(struct ccid_transport *tp)
{
	return (struct hostile *)tp->priv;
}

static tp_status count_op(struct hostile *h)
{
	h->ops++;
	CHECK(h->ops < OPS_PER_REQUEST_LIMIT, "%zu transport calls in one request: livelock", h->ops);
	if (h->reader != NULL && ccid_reader_is_gone(h->reader))
		h->ops_after_gone++;
	return h->unplugged ? TP_NO_DEVICE : TP_OK;
}

static tp_status h_send(struct ccid_transport *tp, const uint8_t *buf, size_t len, unsigned timeout_ms)
{
	struct hostile *h = host(tp);
	tp_status st = count_op(h);

	if (st != TP_OK)
		return st;
	if (h->send_armed && --h->send_armed == 0) {
		if (h->next_send == TP_NO_DEVICE)
			h->unplugged = 1;
		return h->next_send; /* the device never saw it */
	}
	return h->inner->ops->send(h->inner, buf, len, timeout_ms);
}

static tp_status h_receive(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
			   unsigned timeout_ms)
{
	struct hostile *h = host(tp);
	tp_status st = count_op(h);

	*got = 0;
	if (st != TP_OK)
		return st;
	st = h->inner->ops->receive(h->inner, buf, cap, got, timeout_ms);
	CHECK(*got <= cap, "fake delivered %zu bytes into %zu", *got, cap);
	if (st == TP_NO_DEVICE)
		h->unplugged = 1;
	return st;
}

static tp_status h_wait_interrupt(struct ccid_transport *tp, uint8_t *buf, size_t cap, size_t *got,
				  unsigned timeout_ms)
{
	struct hostile *h = host(tp);
	tp_status st = count_op(h);

	*got = 0;
	if (st != TP_OK)
		return st;
	return h->inner->ops->wait_interrupt(h->inner, buf, cap, got, timeout_ms);
}

static tp_status h_control(struct ccid_transport *tp, uint8_t request_type, uint8_t request, uint16_t value,
			   uint8_t *data, uint16_t len, size_t *got, unsigned timeout_ms)
{
	static const tp_status failures[] = { TP_STALL, TP_TIMEOUT, TP_IO_ERROR };
	struct hostile *h = host(tp);
	tp_status st = count_op(h);

	if (got != NULL)
		*got = 0;
	if (st != TP_OK)
		return st;
	st = h->inner->ops->control(h->inner, request_type, request, value, data, len, got, timeout_ms);
	if (h->storm && below(300) == 0) {
		h->unplugged = 1; /* unplugged just as the driver aborts */
		return TP_NO_DEVICE;
	}
	if (h->storm && chance(30))
		st = failures[below(3)];
	return st;
}

static void h_cancel(struct ccid_transport *tp)
{
	struct hostile *h = host(tp);

	h->inner->ops->cancel(h->inner);
}

static void h_close(struct ccid_transport *tp)
{
	struct hostile *h = host(tp);

	h->closed++;
	h->inner->ops->close(h->inner);
}

static const struct ccid_transport_ops hostile_ops = {
	.send = h_send,
	.receive = h_receive,
	.wait_interrupt = h_wait_interrupt,
	.control = h_control,
	.cancel = h_cancel,
	.close = h_close,
};

/* ---- cards ------------------------------------------------------------------------ */

/* QEMU's CAC card: T=0 */
static const uint8_t cac_atr[] = { 0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74,
				   0x65, 0x20, 0x63, 0x64, 0x31, 0x34, 0x34 };
/* T=1 only, IFSC 254 */
static const uint8_t t1_atr[] = { 0x3B, 0xD0, 0x96, 0x02, 0x81, 0x31, 0xFE, 0x45, 0x4F };
/* T=0 and T=1 offered (TD1 T=0, TD2 T=1), TCK */
static const uint8_t dual_atr[] = { 0x3B, 0x80, 0x80, 0x01, 0x01 };
/* specific mode T=0 (TA2 = 00) */
static const uint8_t specific_t0_atr[] = { 0x3B, 0x80, 0x10, 0x00 };

struct card {
	const uint8_t *atr;
	size_t atr_len;
	uint32_t protocols;
};

static const struct card cards[] = {
	{ cac_atr, sizeof(cac_atr), SMC_PROTOCOL_T0 },
	{ dual_atr, sizeof(dual_atr), SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1 },
	{ specific_t0_atr, sizeof(specific_t0_atr), SMC_PROTOCOL_T0 },
	{ t1_atr, sizeof(t1_atr), SMC_PROTOCOL_T1 },
};

/* ---- the model reader: what a correct device would answer --------------------------- */

#define BIG 70000u
#define MAX_SLOTS 16u

struct answer {
	uint8_t type, status, error, specific, seq, slot;
	const uint8_t *data;
	size_t len;
};

struct stats {
	unsigned long requests, episodes, answers, corrupted, unplugs, gone_episodes;
	unsigned long calm_cleared, calm_uncleared, calm_retries_max;
	unsigned long by_status[SMC_ERR_NO_MEMORY + 1];
	unsigned long needed_len_reported;  /* BUFFER_TOO_SMALL with reply_len > reply_cap */
	unsigned long lost_reader;          /* requests during which the reader went */
	unsigned long descriptors, descriptors_accepted;
	uint64_t max_virtual_ms;
	size_t max_ops;
};

static struct stats stats;

struct model {
	struct fake_dev *fd;
	enum ccid_level level;
	size_t max_data;                 /* abData of one message */
	unsigned n_slots;
	uint8_t icc[MAX_SLOTS];          /* bmICCStatus per slot */
	const struct card *card;
	unsigned corrupt_pct;            /* chance that an answer is corrupted */
	uint64_t delays_ms;              /* delivery delays queued so far */
	int endless_chain;               /* extended level: every next part "continues" */
	/* extended APDU level: the command being reassembled, the response being sent */
	uint8_t *cmd;
	size_t cmd_len;
	uint8_t *resp;
	size_t resp_len, resp_off;
};

/* ---- corrupting an answer ------------------------------------------------------ */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Header and data as raw bytes (dwLength as given). */
static uint8_t *raw_frame(const struct answer *a, uint32_t dw, size_t extra, size_t *len)
{
	uint8_t *b = malloc(CCID_HEADER_LEN + a->len + extra);

	assert_non_null(b);
	b[0] = a->type;
	put_le32(b + 1, dw);
	b[5] = a->slot;
	b[6] = a->seq;
	b[7] = a->status;
	b[8] = a->error;
	b[9] = a->specific;
	if (a->len)
		memcpy(b + CCID_HEADER_LEN, a->data, a->len);
	random_bytes(b + CCID_HEADER_LEN + a->len, extra);
	*len = CCID_HEADER_LEN + a->len + extra;
	return b;
}

/* Bytes as transfers of at most chunk bytes (0: one transfer). */
static void rx_split(struct fake_dev *fd, const uint8_t *b, size_t len, size_t chunk)
{
	if (chunk == 0 || len == 0) {
		fake_rx_bytes(fd, b, len);
		return;
	}
	for (size_t off = 0; off < len; off += chunk)
		fake_rx_bytes(fd, b + off, len - off < chunk ? len - off : chunk);
}

static void queue_clean(struct model *m, const struct answer *a, size_t chunk, unsigned delay_ms)
{
	struct fake_frame f = {
		.type = a->type, .status = a->status, .error = a->error, .specific = a->specific,
		.data = a->data, .len = a->len,
		.seq_fixed = 1, .seq = a->seq, .slot_fixed = 1, .slot = a->slot,
	};

	m->delays_ms += delay_ms;
	fake_rx_frame(m->fd, &f, chunk, delay_ms);
}

static void queue_garbage(struct model *m)
{
	uint8_t junk[600];
	size_t n = below(sizeof(junk) + 1);

	random_bytes(junk, n);
	if (n >= 1 && chance(50))
		junk[0] = (uint8_t)(0x80 + below(5)); /* looks like an answer */
	fake_rx_bytes(m->fd, junk, n);
}

/* What may come before the answer. */
static void queue_prelude(struct model *m, const struct answer *a)
{
	struct answer x = *a;
	unsigned n;

	switch (below(8)) {
	case 0: /* zero-length reads; more than the driver tolerates now and then */
		for (n = between(1, 40); n > 0; n--)
			fake_rx_zlp(m->fd);
		break;
	case 1: /* reads that time out */
		for (n = between(1, 3); n > 0; n--)
			fake_rx_status(m->fd, TP_TIMEOUT);
		break;
	case 2: /* stalls and I/O errors */
		fake_rx_status(m->fd, chance(50) ? TP_STALL : TP_IO_ERROR);
		break;
	case 3: /* stale answers, sometimes more than the driver drops */
		for (n = between(1, 20); n > 0; n--) {
			x.seq = (uint8_t)(a->seq - between(1, 255));
			queue_clean(m, &x, 0, 0);
		}
		break;
	case 4: /* answers for another slot */
		for (n = between(1, 4); n > 0; n--) {
			x.slot = (uint8_t)(a->slot + between(1, 255));
			queue_clean(m, &x, 0, 0);
		}
		break;
	case 5: /* a storm of time extensions, some of them slow */
		x.type = a->type;
		x.status = (uint8_t)(0x80 | (a->status & 3));
		x.len = 0;
		for (n = between(1, 60); n > 0; n--) {
			x.error = (uint8_t)rnd();
			queue_clean(m, &x, 0, chance(20) ? below(20000) : 0);
		}
		break;
	case 6: /* random bytes */
		for (n = between(1, 3); n > 0; n--)
			queue_garbage(m);
		break;
	default: /* a well-formed answer of another type with our bSeq */
		x.type = (uint8_t)(0x80 + below(5));
		queue_clean(m, &x, 0, 0);
		break;
	}
}

/* The answer itself, damaged in one way. */
static void queue_damaged(struct model *m, struct answer a)
{
	uint8_t big[400];
	uint8_t *raw;
	size_t len, cut;

	switch (below(14)) {
	case 0:
		a.seq = (uint8_t)(a.seq + between(1, 255));
		break;
	case 1:
		a.slot = (uint8_t)(a.slot + between(1, 255));
		break;
	case 2:
		a.type = chance(50) ? (uint8_t)rnd() : (uint8_t)(0x80 + below(5));
		break;
	case 3:
		a.status = (uint8_t)rnd();
		break;
	case 4:
		a.error = (uint8_t)rnd();
		a.status = (uint8_t)(a.status | (chance(50) ? 0x40 : 0));
		break;
	case 5:
		a.specific = (uint8_t)rnd();
		break;
	case 6: /* dwLength larger than the data: the rest never comes */
		raw = raw_frame(&a, (uint32_t)(a.len + between(1, chance(50) ? 100 : 200000)), 0, &len);
		rx_split(m->fd, raw, len, chance(50) ? between(1, 64) : 0);
		free(raw);
		return;
	case 7: /* dwLength smaller than the data, or extra bytes after the message */
		raw = raw_frame(&a, a.len ? below((uint32_t)a.len) : 0, chance(50) ? between(1, 100) : 0, &len);
		fake_rx_bytes(m->fd, raw, len);
		free(raw);
		return;
	case 8: /* truncated */
		raw = raw_frame(&a, (uint32_t)a.len, 0, &len);
		cut = below((uint32_t)len);
		rx_split(m->fd, raw, cut, chance(50) ? between(1, 16) : 0);
		free(raw);
		return;
	case 9: /* split in random pieces, late */
		queue_clean(m, &a, between(1, 70), chance(30) ? below(90000) : 0);
		return;
	case 10: /* random data of a random length (oversized ATRs included) */
		a.len = chance(70) ? between(0, sizeof(big)) : between(0, 40);
		random_bytes(big, a.len);
		if (a.len > 0 && chance(50))
			big[0] = 0x3B;
		a.data = big;
		break;
	case 11: /* never comes */
		return;
	case 12: /* comes twice */
		queue_clean(m, &a, 0, 0);
		break;
	default: /* a huge announced length with data that does follow, sometimes */
		raw = raw_frame(&a, (uint32_t)rnd(), between(0, 600), &len);
		rx_split(m->fd, raw, len, chance(50) ? 512 : 0);
		free(raw);
		return;
	}
	queue_clean(m, &a, 0, 0);
}

static void emit(struct model *m, const struct answer *a)
{
	stats.answers++;
	if (!chance(m->corrupt_pct)) {
		queue_clean(m, a, 0, 0);
		return;
	}
	stats.corrupted++;
	if (below(400) == 0) {
		/* unplugged: this read, and everything after it */
		stats.unplugs++;
		fake_rx_status(m->fd, TP_NO_DEVICE);
		return;
	}
	if (chance(40))
		queue_prelude(m, a);
	if (chance(70))
		queue_damaged(m, *a);
	else
		queue_clean(m, a, 0, 0);
	if (chance(10))
		queue_garbage(m);
}

/* ---- the card behind the reader ------------------------------------------------- */

/* Le of a well-formed APDU (7816-4 5.1), 0 when none or malformed. */
static size_t apdu_le(const uint8_t *a, size_t len)
{
	size_t lc;

	if (len == 5)
		return a[4] ? a[4] : 256;
	if (len < 5)
		return 0;
	if (a[4] != 0) {
		lc = a[4];
		if (len == 6 + lc)
			return a[len - 1] ? a[len - 1] : 256;
		return 0;
	}
	if (len == 7)
		return (size_t)(a[5] << 8 | a[6]) ? (size_t)(a[5] << 8 | a[6]) : 65536;
	lc = (size_t)(a[5] << 8 | a[6]);
	if (len == 9 + lc && lc > 0)
		return (size_t)(a[len - 2] << 8 | a[len - 1]) ? (size_t)(a[len - 2] << 8 | a[len - 1]) : 65536;
	return 0;
}

/* The card's answer to a command: at TPDU level a 5-byte TPDU gets P3 bytes, a
 * longer one none; at APDU level Le bytes (at most 1024). Then 90 00. */
static size_t card_reply(enum ccid_level level, const uint8_t *cmd, size_t len, uint8_t *out)
{
	size_t n = 0;

	if (level == CCID_LEVEL_TPDU)
		n = len == 5 ? cmd[4] : 0;
	else
		n = apdu_le(cmd, len);
	if (n > 1024)
		n = 1024;
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)((len > 1 ? cmd[1] : 0) + i * 7);
	out[n] = 0x90;
	out[n + 1] = 0x00;
	return n + 2;
}

static void answer_to(struct answer *a, const uint8_t *msg, uint8_t type, uint8_t status, uint8_t error,
		      uint8_t specific, const uint8_t *data, size_t len)
{
	*a = (struct answer){ type, status, error, specific, msg[6], msg[5], data, len };
}

static void send_response_part(struct model *m, const uint8_t *msg, uint8_t icc)
{
	size_t left = m->resp_len - m->resp_off, n = left;
	uint8_t chain = CCID_CHAIN_WHOLE;
	struct answer a;

	if (left > m->max_data || m->resp_off > 0) {
		n = left > m->max_data ? m->max_data : left;
		chain = m->resp_off == 0 ? CCID_CHAIN_BEGIN : (n == left ? CCID_CHAIN_END : CCID_CHAIN_CONTINUE);
	}
	answer_to(&a, msg, 0x80, icc, 0, chain, m->resp + m->resp_off, n);
	m->resp_off += n;
	emit(m, &a);
}

static void on_xfr_block(struct model *m, const uint8_t *msg, size_t len, uint8_t icc)
{
	uint16_t level = (uint16_t)(msg[8] | msg[9] << 8);
	const uint8_t *data = msg + CCID_HEADER_LEN;
	size_t n = len - CCID_HEADER_LEN;
	struct answer a;

	if (m->level != CCID_LEVEL_EXTENDED_APDU || level == CCID_CHAIN_WHOLE) {
		m->resp_len = card_reply(m->level, data, n, m->resp);
		m->resp_off = 0;
		if (m->level != CCID_LEVEL_EXTENDED_APDU) {
			answer_to(&a, msg, 0x80, icc, 0, 0, m->resp, m->resp_len);
			emit(m, &a);
			return;
		}
		send_response_part(m, msg, icc);
		return;
	}
	if (level == CCID_CHAIN_NEXT) {
		if (m->endless_chain && m->corrupt_pct > 0) {
			/* a confused reader: the response never ends */
			size_t part = m->max_data < 4096 ? m->max_data : 4096;

			answer_to(&a, msg, 0x80, icc, 0, CCID_CHAIN_CONTINUE, m->resp, part);
			emit(m, &a);
			return;
		}
		if (m->resp_off >= m->resp_len) {
			answer_to(&a, msg, 0x80, 0x40 | icc, 0x08, 0, NULL, 0); /* nothing to give */
			emit(m, &a);
			return;
		}
		send_response_part(m, msg, icc);
		return;
	}
	if (level == CCID_CHAIN_BEGIN)
		m->cmd_len = 0;
	if (m->cmd_len + n > BIG)
		m->cmd_len = 0;
	memcpy(m->cmd + m->cmd_len, data, n);
	m->cmd_len += n;
	if (level == CCID_CHAIN_END) {
		m->resp_len = card_reply(m->level, m->cmd, m->cmd_len, m->resp);
		m->resp_off = 0;
		send_response_part(m, msg, icc);
		return;
	}
	answer_to(&a, msg, 0x80, icc, 0, CCID_CHAIN_NEXT, NULL, 0);
	emit(m, &a);
}

/* The responder: a correct reader, whose answers emit() may damage. */
static void model_device(struct fake_dev *fd, const uint8_t *msg, size_t len, void *ctx)
{
	struct model *m = ctx;
	uint8_t *icc;
	struct answer a;

	(void)fd;
	CHECK(len >= CCID_HEADER_LEN, "driver sent a %zu-byte message", len);
	CHECK(msg[5] < m->n_slots, "driver sent bSlot %u to a %u-slot reader", msg[5], m->n_slots);
	icc = &m->icc[msg[5]];
	switch (msg[0]) {
	case 0x62: /* IccPowerOn */
		if (*icc == 2) {
			answer_to(&a, msg, 0x80, 0x42, 0xFE, 0, NULL, 0);
		} else {
			*icc = 0;
			answer_to(&a, msg, 0x80, 0x00, 0, 0, m->card->atr, m->card->atr_len);
		}
		break;
	case 0x63: /* IccPowerOff */
		if (*icc != 2)
			*icc = 1;
		answer_to(&a, msg, 0x81, *icc, 0, 0, NULL, 0);
		break;
	case 0x65: /* GetSlotStatus */
	case 0x72: /* Abort */
		answer_to(&a, msg, 0x81, *icc, 0, 0, NULL, 0);
		break;
	case 0x61: /* SetParameters: echo */
		answer_to(&a, msg, 0x82, *icc, 0, msg[7], msg + CCID_HEADER_LEN, len - CCID_HEADER_LEN);
		break;
	case 0x6F:
		on_xfr_block(m, msg, len, *icc);
		return;
	default:
		answer_to(&a, msg, 0x81, 0x40 | *icc, 0, 0, NULL, 0);
		break;
	}
	emit(m, &a);
}

/* ---- an episode: one reader, one storm, one calm check -------------------------- */

struct episode {
	struct fake_dev *fd;
	struct hostile h;
	struct model m;
	struct ccid_reader *reader;
	uint32_t calm_protocol;
};

static void hostile_wrap(struct hostile *h, struct fake_dev *fd)
{
	memset(h, 0, sizeof(*h));
	h->fd = fd;
	h->inner = fake_transport(fd);
	h->tp.ops = &hostile_ops;
	h->tp.info = h->inner->info;
	h->tp.priv = h;
}

/* A valid descriptor the storm can run on. */
static void make_descriptor(uint8_t *d, const struct card **card)
{
	static const uint32_t msg_lens[] = { 20, 64, 74, 210, 271, 300, 1034, 65554 };
	uint32_t level, features, max_msg, protocols;

	memcpy(d, fake_qemu_descriptor, sizeof(fake_qemu_descriptor));
	switch (below(3)) {
	case 0:
		level = CCID_FEAT_LEVEL_TPDU;
		*card = &cards[below(3)]; /* T=1 runs at APDU level only */
		protocols = chance(70) ? SMC_PROTOCOL_T0 : SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1;
		break;
	case 1:
		level = CCID_FEAT_LEVEL_SHORT_APDU;
		*card = &cards[below(4)];
		protocols = SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1;
		break;
	default:
		level = CCID_FEAT_LEVEL_EXT_APDU;
		*card = &cards[below(4)];
		protocols = SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1;
		break;
	}
	features = level | (chance(50) ? CCID_FEAT_AUTO_VOLTAGE : 0) |
		   (chance(50) ? CCID_FEAT_AUTO_PARAMS_ATR : 0) | (chance(30) ? 0x30u : 0);
	max_msg = chance(80) ? msg_lens[below(8)] : between(20, 70000);
	d[4] = (uint8_t)(chance(70) ? 0 : below(4)); /* bMaxSlotIndex */
	d[5] = (uint8_t)below(8);                       /* bVoltageSupport */
	put_le32(d + 6, protocols);
	put_le32(d + 40, features);
	put_le32(d + 44, max_msg);
}

static void model_init(struct model *m, struct fake_dev *fd, const struct ccid_reader *r,
		       const struct card *card)
{
	memset(m, 0, sizeof(*m));
	m->fd = fd;
	m->level = r->desc.level;
	m->max_data = r->desc.max_msg_len - CCID_HEADER_LEN;
	m->n_slots = r->n_slots;
	m->card = card;
	memset(m->icc, 1, sizeof(m->icc));
	m->cmd = malloc(BIG);
	m->resp = malloc(BIG);
	assert_non_null(m->cmd);
	assert_non_null(m->resp);
}

static void model_free(struct model *m)
{
	free(m->cmd);
	free(m->resp);
}

/* Open a reader on the hostile transport; the clock becomes the fake's. */
static smc_status episode_open(struct episode *e, const uint8_t *desc, size_t desc_len,
			       const struct card *card)
{
	smc_status st;

	memset(e, 0, sizeof(*e));
	e->fd = fake_new(desc, desc_len);
	hostile_wrap(&e->h, e->fd);
	st = ccid_reader_open(&e->h.tp, &e->reader);
	CHECK(e->h.closed == (st == SMC_OK ? 0 : 1), "open returned %s, transport closed %d times",
	      smc_status_str(st), e->h.closed);
	if (st != SMC_OK) {
		CHECK(e->reader == NULL, "refused open left a reader");
		CHECK(fake_sent_count(e->fd) == 0, "refused open sent %zu messages", fake_sent_count(e->fd));
		return st;
	}
	e->reader->xfer.clock = fake_clock_ms;
	e->reader->xfer.clock_ctx = e->fd;
	e->h.reader = e->reader;
	model_init(&e->m, e->fd, e->reader, card);
	fake_set_responder(e->fd, model_device, &e->m);
	return SMC_OK;
}

static void episode_close(struct episode *e)
{
	if (e->reader != NULL) {
		ccid_reader_close(e->reader);
		CHECK(e->h.closed == 1, "close closed the transport %d times", e->h.closed);
		CHECK(fake_closed(e->fd), "fake not closed");
		model_free(&e->m);
	}
	fake_free(e->fd);
	e->reader = NULL;
	e->fd = NULL;
}

/* ---- requests ------------------------------------------------------------------ */

enum kind { K_POWER, K_SET_PROTOCOL, K_TRANSMIT, K_PRESENT, K_ATTRIBUTE, K_OTHER, K_BAD_SLOT };

struct req {
	enum kind kind;
	enum smc_request type;
	unsigned slot;
	uint32_t minor;
	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_cap;
	size_t out_len;
	smc_status st;
};

static const uint32_t attr_tags[] = {
	0x00010100, 0x00010101, 0x00010102, 0x00010103, 0x00020110, 0x00030120, 0x00030121,
	0x00030122, 0x00030123, 0x00030124, 0x00030125, 0x00080201, 0x00080203, 0x00080204,
	0x00080205, 0x00080206, 0x00080207, 0x00080208, 0x00080209, 0x0008020A, 0x00090300,
	0x00090301, 0x00090303, 0x7FFFA007, 0x12345678,
};

/* A random APDU: well-formed short or extended ones, or any bytes. */
static size_t random_apdu(uint8_t *a)
{
	size_t lc, le, len;

	a[0] = (uint8_t)(chance(80) ? 0x00 : rnd());
	a[1] = (uint8_t)rnd();
	a[2] = (uint8_t)rnd();
	a[3] = (uint8_t)rnd();
	switch (below(7)) {
	case 0:
		return 4;
	case 1: /* case 2 short */
		a[4] = (uint8_t)rnd();
		return 5;
	case 2: /* case 3 or 4 short */
		lc = between(1, 255);
		a[4] = (uint8_t)lc;
		random_bytes(a + 5, lc);
		if (chance(50))
			return 5 + lc;
		a[5 + lc] = (uint8_t)rnd();
		return 6 + lc;
	case 3: /* case 2 extended */
		a[4] = 0;
		le = below(0x10000);
		a[5] = (uint8_t)(le >> 8);
		a[6] = (uint8_t)le;
		return 7;
	case 4: /* case 3 or 4 extended, up to 300 bytes */
		lc = between(1, 291);
		a[4] = 0;
		a[5] = (uint8_t)(lc >> 8);
		a[6] = (uint8_t)lc;
		random_bytes(a + 7, lc);
		if (chance(50))
			return 7 + lc;
		a[7 + lc] = (uint8_t)rnd();
		a[8 + lc] = (uint8_t)rnd();
		return 9 + lc;
	default: /* anything, 0..300 bytes */
		len = below(301);
		random_bytes(a, len);
		return len;
	}
}

static size_t random_cap(void)
{
	static const size_t caps[] = { 0, 1, 2, 3, 17, 33, 258, 65548 };

	return chance(50) ? caps[below(8)] : below(301);
}

static void make_request(struct episode *e, struct req *r)
{
	uint8_t apdu[310];
	unsigned k = below(100);
	struct smc_ext *ext;

	memset(r, 0, sizeof(*r));
	r->slot = below(e->m.n_slots);
	r->out_cap = random_cap();
	ext = ccid_reader_slot(e->reader, r->slot);
	/* mostly as pcscd would: power a card that is not, select a protocol */
	if (ext->reader_caps.current_state < SMC_STATE_POWERED && chance(40))
		k = 50;
	else if (ext->reader_caps.current_state < SMC_STATE_SPECIFIC && chance(40))
		k = 70;
	if (k < 45) {
		r->kind = K_TRANSMIT;
		r->type = SMC_REQ_TRANSMIT;
		r->in_len = random_apdu(apdu);
		r->minor = chance(90) ? ext->card_caps.selected_protocol : below(4);
	} else if (k < 65) {
		r->kind = K_POWER;
		r->type = SMC_REQ_POWER;
		r->minor = chance(95) ? (chance(70) ? SMC_POWER_COLD : below(3)) : below(8);
		r->out_cap = chance(70) ? SMC_ATR_MAX : random_cap();
	} else if (k < 75) {
		r->kind = K_SET_PROTOCOL;
		r->type = SMC_REQ_SET_PROTOCOL;
		r->minor = chance(50) ? e->calm_protocol : chance(80) ? between(1, 3) : (uint32_t)rnd();
	} else if (k < 90) {
		r->kind = K_PRESENT;
		r->type = SMC_REQ_IS_PRESENT;
	} else if (k < 96) {
		r->kind = K_ATTRIBUTE;
		r->type = SMC_REQ_GET_ATTRIBUTE;
		r->minor = attr_tags[below(sizeof(attr_tags) / sizeof(attr_tags[0]))];
	} else if (k < 99) {
		static const enum smc_request others[] = { SMC_REQ_EJECT, SMC_REQ_SWALLOW, SMC_REQ_VENDOR_IOCTL,
							   (enum smc_request)77 };

		r->kind = K_OTHER;
		r->type = others[below(4)];
		r->minor = (uint32_t)rnd();
		r->in_len = below(20);
		random_bytes(apdu, r->in_len);
	} else {
		r->kind = K_BAD_SLOT;
		r->type = SMC_REQ_IS_PRESENT;
		r->slot = e->m.n_slots + below(3);
	}
	/* exact-size heap buffers: ASan sees any access past them */
	if (r->in_len > 0 || chance(50)) {
		r->in = malloc(r->in_len ? r->in_len : 1);
		assert_non_null(r->in);
		memcpy(r->in, apdu, r->in_len);
	}
	if (!chance(5)) {
		r->out = malloc(r->out_cap ? r->out_cap : 1);
		assert_non_null(r->out);
	}
}

static const char *kind_str(enum kind k)
{
	static const char *names[] = { "power", "set protocol", "transmit", "presence", "attribute",
				       "other", "bad slot" };

	return names[k];
}

/* Run one request and check what must hold whatever the device did. */
static void run_request(struct episode *e, struct req *r)
{
	struct smc_ext *ext = ccid_reader_slot(e->reader, r->slot);
	int gone_before = ccid_reader_is_gone(e->reader);
	size_t sends = fake_sent_count(e->fd);
	uint64_t t0 = fake_clock_ms(e->fd), dt;
	char what[160];
	size_t cap;

	snprintf(what, sizeof(what), "%s slot %u minor 0x%X, %zu bytes in, reply cap %zu%s",
		 kind_str(r->kind), r->slot, r->minor, r->in_len, r->out_cap, r->out ? "" : " (NULL)");
	where.what = what;
	e->h.ops = 0;
	r->out_len = (size_t)-1;
	r->st = smc_device_control(ext, r->type, r->minor, r->in, r->in_len, r->out, r->out_cap, &r->out_len);
	where.what = what;
	stats.requests++;

	CHECK((int)r->st >= SMC_OK && (int)r->st <= SMC_ERR_NO_MEMORY, "status %d is no smc_status", (int)r->st);
	stats.by_status[r->st]++;
	CHECK(r->out_len != (size_t)-1, "reply_len not set");
	cap = r->out != NULL ? r->out_cap : 0; /* no buffer holds nothing */
	if (r->st == SMC_ERR_BUFFER_TOO_SMALL && r->out_len > cap)
		stats.needed_len_reported++; /* the size needed, as Windows' smclib reports it */
	else
		CHECK(r->out_len <= cap, "reply_len %zu > reply_cap %zu (status %s)", r->out_len, cap,
		      smc_status_str(r->st));
	if (ext == NULL) {
		CHECK(r->st == SMC_ERR_INVALID_PARAM, "no slot: %s", smc_status_str(r->st));
		return;
	}
	CHECK(ext->reader_caps.current_state <= SMC_STATE_SPECIFIC, "card state %d",
	      (int)ext->reader_caps.current_state);
	CHECK(ext->card_caps.atr_len <= SMC_ATR_MAX, "ATR length %zu", ext->card_caps.atr_len);
	if (r->st == SMC_OK && r->kind == K_POWER && r->minor != SMC_POWER_DOWN && r->out != NULL) {
		CHECK(r->out_len == ext->card_caps.atr_len && r->out_len > 0, "ATR of %zu bytes, caps %zu",
		      r->out_len, ext->card_caps.atr_len);
		CHECK(memcmp(r->out, ext->card_caps.atr, r->out_len) == 0, "ATR differs from card_caps");
		CHECK(ext->reader_caps.current_state >= SMC_STATE_POWERED, "powered card in state %d",
		      (int)ext->reader_caps.current_state);
	}
	if (r->st == SMC_OK && r->kind == K_TRANSMIT) {
		CHECK(r->out_len >= 2, "response of %zu bytes without SW1 SW2", r->out_len);
		CHECK(ext->reader_caps.current_state == SMC_STATE_SPECIFIC, "transmit in state %d",
		      (int)ext->reader_caps.current_state);
	}
	/* bounded: in virtual time, and in transport calls */
	dt = fake_clock_ms(e->fd) - t0;
	CHECK(dt <= (uint64_t)(fake_sent_count(e->fd) - sends + 1) * VIRTUAL_MS_PER_SEND,
	      "request took %" PRIu64 " virtual ms for %zu messages sent", dt, fake_sent_count(e->fd) - sends);
	if (dt > stats.max_virtual_ms)
		stats.max_virtual_ms = dt;
	if (e->h.ops > stats.max_ops)
		stats.max_ops = e->h.ops;
	/* gone: the driver says so and leaves the device alone */
	if (gone_before) {
		CHECK(e->h.ops == 0, "%zu transport calls on a reader known to be gone", e->h.ops);
		if (r->kind == K_PRESENT)
			CHECK(r->st == SMC_ERR_NO_DEVICE, "presence on a gone reader: %s", smc_status_str(r->st));
		if (r->kind == K_POWER || r->kind == K_TRANSMIT)
			CHECK(r->st != SMC_OK, "%s succeeded on a gone reader", kind_str(r->kind));
	} else if (ccid_reader_is_gone(e->reader)) {
		/* the request that lost the reader says so too (pcscd then stops) */
		CHECK(r->st == SMC_ERR_NO_DEVICE, "%s lost the reader but returned %s", kind_str(r->kind),
		      smc_status_str(r->st));
		stats.lost_reader++;
	}
	/* a transfer that answered "no device" always marks the reader gone */
	CHECK(!e->h.unplugged || ccid_reader_is_gone(e->reader), "device unplugged, reader not marked gone (%s)",
	      smc_status_str(r->st));
}

static void free_request(struct req *r)
{
	free(r->in);
	free(r->out);
}

static void random_storm_request(struct episode *e)
{
	struct req r;

	/* the world changes: cards come and go, sends fail */
	if (chance(1))
		e->m.icc[below(e->m.n_slots)] = chance(30) ? 2 : 1;
	if (e->h.storm && !e->h.send_armed && chance(3)) {
		static const tp_status send_failures[] = { TP_TIMEOUT, TP_STALL, TP_IO_ERROR, TP_NO_DEVICE };

		e->h.next_send = send_failures[below(100) == 0 ? 3 : below(3)];
		e->h.send_armed = (int)between(1, 3);
	}
	make_request(e, &r);
	run_request(e, &r);
	free_request(&r);
}

/* ---- the calm after the storm --------------------------------------------------- */

static smc_status calm_step(struct episode *e, struct smc_ext *ext, enum smc_request type, uint32_t minor,
			    const uint8_t *apdu, size_t apdu_len, const uint8_t *want, size_t want_len)
{
	uint8_t reply[1100];
	size_t len = 0;
	smc_status st;

	e->h.ops = 0;
	st = smc_device_control(ext, type, minor, apdu, apdu_len, reply, sizeof(reply), &len);
	if (st != SMC_OK)
		return st;
	if (want != NULL && (len != want_len || memcmp(reply, want, len) != 0))
		return SMC_ERR_COMM; /* a wrong answer counts as a failed step */
	return SMC_OK;
}

/* What pcscd does with a reader: poll, connect, talk, disconnect. Returns the
 * first step that failed (0: none) and its status. */
static int calm_sequence(struct episode *e, unsigned slot, smc_status *failed)
{
	static const uint8_t read_binary[] = { 0x00, 0xB0, 0x00, 0x00, 0x10 };
	struct smc_ext *ext = ccid_reader_slot(e->reader, slot);
	uint8_t case4[160], want[1100];
	size_t want_len, case4_len;
	smc_status st;

	st = calm_step(e, ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0);
	if (st != SMC_OK)
		return *failed = st, 1;
	st = calm_step(e, ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, e->m.card->atr, e->m.card->atr_len);
	if (st != SMC_OK)
		return *failed = st, 2;
	st = calm_step(e, ext, SMC_REQ_SET_PROTOCOL, e->calm_protocol, NULL, 0, NULL, 0);
	if (st != SMC_OK)
		return *failed = st, 3;
	want_len = card_reply(e->m.level, read_binary, sizeof(read_binary), want);
	st = calm_step(e, ext, SMC_REQ_TRANSMIT, e->calm_protocol, read_binary, sizeof(read_binary), want,
		       want_len);
	if (st != SMC_OK)
		return *failed = st, 4;
	/* a case 4 APDU that takes several messages on readers with small ones */
	case4_len = 6 + 150;
	case4[0] = 0x00, case4[1] = 0xDA, case4[2] = 0x01, case4[3] = 0x02, case4[4] = 150;
	for (size_t i = 0; i < 150; i++)
		case4[5 + i] = (uint8_t)i;
	case4[155] = 0x20;
	if (e->m.level == CCID_LEVEL_EXTENDED_APDU || case4_len <= e->m.max_data) {
		want_len = card_reply(e->m.level, case4, e->m.level == CCID_LEVEL_TPDU ? 155 : case4_len, want);
		st = calm_step(e, ext, SMC_REQ_TRANSMIT, e->calm_protocol, case4, case4_len, want, want_len);
		if (st != SMC_OK)
			return *failed = st, 5;
	}
	st = calm_step(e, ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0);
	if (st != SMC_OK)
		return *failed = st, 6;
	st = calm_step(e, ext, SMC_REQ_POWER, SMC_POWER_DOWN, NULL, 0, NULL, 0);
	if (st != SMC_OK)
		return *failed = st, 7;
	return 0;
}

/* No resynchronising with a device that is not there: it is gone for good. */
static void check_gone(struct episode *e, unsigned slot)
{
	struct smc_ext *ext = ccid_reader_slot(e->reader, slot);
	smc_status st;

	stats.gone_episodes++;
	e->h.ops = 0;
	st = smc_device_control(ext, SMC_REQ_IS_PRESENT, 0, NULL, 0, NULL, 0, NULL);
	CHECK(st == SMC_ERR_NO_DEVICE, "presence after unplug: %s", smc_status_str(st));
	CHECK(ccid_reader_is_gone(e->reader), "unplugged reader not marked gone");
	st = smc_device_control(ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, NULL, 0, NULL);
	CHECK(st != SMC_OK, "power up after unplug succeeded");
	CHECK(e->h.ops <= 1, "%zu transport calls after unplug", e->h.ops);
}

static void calm_check(struct episode *e)
{
	unsigned slot = below(e->m.n_slots), attempts = 0, limit;
	int cleared = chance(50), step;
	smc_status st = SMC_OK;
	size_t pending;

	where.phase = "calm";
	where.what = "clean exchange after the storm";
	e->m.corrupt_pct = 0;
	e->h.storm = 0;
	e->h.send_armed = 0;
	e->m.icc[slot] = e->m.icc[slot] == 2 ? 1 : e->m.icc[slot];
	e->m.cmd_len = e->m.resp_len = e->m.resp_off = 0;
	if (e->h.unplugged || ccid_reader_is_gone(e->reader)) {
		check_gone(e, slot);
		return;
	}
	if (cleared) {
		/* the device dropped whatever it still had queued: in step at once */
		fake_rx_clear(e->fd);
		stats.calm_cleared++;
		step = calm_sequence(e, slot, &st);
		CHECK(step == 0, "clean exchange failed at step %d: %s (level %s, ATR %zu bytes, protocol 0x%X)",
		      step, smc_status_str(st), ccid_level_str(e->m.level), e->m.card->atr_len, e->calm_protocol);
		return;
	}
	/* leftovers of the storm are still queued: the driver must work through
	 * them (stale answers dropped, junk flushed) within a few requests. A
	 * late answer at the head blocks the pipe until it is delivered: each
	 * failed attempt waits at least 3 s for it. */
	pending = fake_rx_pending(e->fd);
	limit = 4 + (unsigned)(pending / 8) + (unsigned)(e->m.delays_ms / 3000);
	stats.calm_uncleared++;
	do {
		step = calm_sequence(e, slot, &st);
		attempts++;
		if (step != 0 && e->h.unplugged) {
			/* an unplug queued during the storm was still ahead */
			check_gone(e, slot);
			return;
		}
	} while (step != 0 && attempts < limit);
	CHECK(step == 0, "no clean exchange after %u attempts (%zu events were pending): step %d, %s", attempts,
	      pending, step, smc_status_str(st));
	if (attempts - 1 > stats.calm_retries_max)
		stats.calm_retries_max = attempts - 1;
}

static uint32_t pick_calm_protocol(const struct episode *e)
{
	uint32_t p = e->m.card->protocols;

	if (e->m.card == &cards[2] || e->m.level == CCID_LEVEL_TPDU)
		return SMC_PROTOCOL_T0;
	if (p == (SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1))
		return chance(50) ? SMC_PROTOCOL_T0 : SMC_PROTOCOL_T1;
	return p;
}

/* Returns the number of requests made: an episode whose reader is gone ends a
 * few requests later. */
static unsigned run_episode(unsigned n_requests)
{
	struct episode e;
	uint8_t desc[54];
	const struct card *card;
	unsigned i, after_gone = 0;

	where.phase = "open";
	where.request = 0;
	make_descriptor(desc, &card);
	CHECK(episode_open(&e, desc, sizeof(desc), card) == SMC_OK, "valid descriptor refused");
	e.calm_protocol = pick_calm_protocol(&e);
	stats.episodes++;
	where.phase = "storm";
	e.m.corrupt_pct = between(5, 60);
	e.m.endless_chain = chance(5);
	e.h.storm = 1;
	for (i = 0; i < n_requests && after_gone < 5; i++) {
		where.request = i;
		random_storm_request(&e);
		after_gone += ccid_reader_is_gone(e.reader) != 0;
	}
	calm_check(&e);
	episode_close(&e);
	return i;
}

/* ---- tests ---------------------------------------------------------------------- */

#if HAVE_SANITIZER_CALLBACK
static void on_sanitizer_death(void)
{
	print_where();
}
#endif

static int setup_quiet(void **state)
{
	(void)state;
	seed = env_u64("HOSTILE_SEED", DEFAULT_SEED);
	fprintf(stderr, "hostile_device: seed 0x%016" PRIX64 " (set HOSTILE_SEED to replay)\n", seed);
	real_stderr = stderr;
	if (!env_u64("HOSTILE_LOG", 0))
		quiet = fopen("/dev/null", "w");
	smc_log_mask = SMC_LOG_CRITICAL | SMC_LOG_INFO | SMC_LOG_COMM | SMC_LOG_PERIODIC;
#if HAVE_SANITIZER_CALLBACK
	__sanitizer_set_death_callback(on_sanitizer_death);
#endif
	return 0;
}

static int teardown_quiet(void **state)
{
	(void)state;
	loud();
	if (quiet != NULL)
		fclose(quiet);
	quiet = NULL;
	return 0;
}

static void print_stats(double seconds)
{
	static const char *names[] = { "OK", "NOT_SUPPORTED", "INVALID_PARAM", "NO_MEDIA", "INVALID_STATE",
				       "PROTOCOL", "BAD_ATR", "COMM", "TIMEOUT", "NO_DEVICE",
				       "BUFFER_TOO_SMALL", "POWER", "CANCELLED", "NO_MEMORY" };

	fprintf(stderr, "hostile_device: %lu requests in %lu episodes, %.2f s; %lu of %lu answers corrupted, %lu unplugs\n",
		stats.requests, stats.episodes, seconds, stats.corrupted, stats.answers, stats.unplugs);
	fprintf(stderr, "  calm checks: %lu with the queue cleared, %lu with leftovers (at most %lu retries), %lu on gone readers\n",
		stats.calm_cleared, stats.calm_uncleared, stats.calm_retries_max, stats.gone_episodes);
	fprintf(stderr, "  longest request: %" PRIu64 " virtual ms, %zu transport calls\n", stats.max_virtual_ms,
		stats.max_ops);
	fprintf(stderr, "  BUFFER_TOO_SMALL reporting the size needed: %lu; requests that lost the reader: %lu\n",
		stats.needed_len_reported, stats.lost_reader);
	fprintf(stderr, "  statuses:");
	for (int i = 0; i <= SMC_ERR_NO_MEMORY; i++)
		if (stats.by_status[i])
			fprintf(stderr, " %s %lu", names[i], stats.by_status[i]);
	fputc('\n', stderr);
}

static void storms_never_break_the_stack_and_it_resynchronises(void **state)
{
	uint64_t total = env_u64("HOSTILE_REQUESTS", DEFAULT_REQUESTS);
	struct timespec a, b;
	unsigned left;

	(void)state;
	rng = seed ? seed : 1;
	memset(&stats, 0, sizeof(stats));
	clock_gettime(CLOCK_MONOTONIC, &a);
	hush();
	for (left = (unsigned)total; left > 0;) {
		unsigned n = between(10, 300);

		if (n > left)
			n = left;
		where.episode = (unsigned)stats.episodes;
		left -= run_episode(n);
	}
	loud();
	clock_gettime(CLOCK_MONOTONIC, &b);
	print_stats((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
	assert_int_equal(stats.requests, total);
	assert_true(stats.corrupted > 0);
}

/* A descriptor of 0..80 bytes: random, a mutated valid one, or a valid header
 * with random fields. */
static size_t random_descriptor(uint8_t *d)
{
	size_t len = below(81);
	const struct card *card;
	uint8_t valid[54];

	random_bytes(d, len);
	switch (below(3)) {
	case 0:
		break;
	case 1:
		make_descriptor(valid, &card);
		memcpy(d, valid, len < 54 ? len : 54);
		for (unsigned n = between(1, 4); n > 0 && len > 0; n--)
			d[below((uint32_t)len)] = (uint8_t)rnd();
		break;
	default:
		if (len >= 2) {
			d[0] = 0x36;
			d[1] = 0x21;
		}
		if (len >= 5 && chance(50))
			d[4] = (uint8_t)below(20);
		if (len >= 44 && chance(50))
			d[42] = (uint8_t)below(8);
		break;
	}
	return len;
}

static void random_descriptors_are_accepted_or_refused(void **state)
{
	uint8_t d[80];
	struct ccid_descriptor parsed;
	struct episode e;
	uint8_t *exact;
	size_t len;
	smc_status st;

	(void)state;
	rng = (seed ? seed : 1) ^ 0xD35C419701234567ull;
	hush();
	where.phase = "descriptor";
	for (unsigned i = 0; i < DESCRIPTOR_ROUNDS; i++) {
		where.episode = i;
		where.request = 0;
		where.what = "ccid_descriptor_parse";
		len = random_descriptor(d);
		stats.descriptors++;
		/* the parser on exactly len bytes: ASan sees any read past them */
		exact = malloc(len ? len : 1);
		assert_non_null(exact);
		memcpy(exact, d, len);
		st = ccid_descriptor_parse(len ? exact : NULL, len, &parsed);
		free(exact);
		CHECK(st == SMC_OK || st == SMC_ERR_COMM || st == SMC_ERR_NOT_SUPPORTED,
		      "descriptor parse: %s", smc_status_str(st));
		if (st == SMC_OK) {
			CHECK(parsed.n_slots >= 1 && parsed.n_slots <= 16, "%u slots", parsed.n_slots);
			CHECK(parsed.max_msg_len >= CCID_MSG_LEN_MIN && parsed.max_msg_len <= CCID_MSG_LEN_MAX,
			      "message length %u", parsed.max_msg_len);
		}
		/* a reader with it (the transport passes at most 54 bytes) */
		where.what = "ccid_reader_open";
		st = episode_open(&e, d, len, &cards[below(4)]);
		CHECK(st == SMC_OK || st == SMC_ERR_COMM || st == SMC_ERR_NOT_SUPPORTED, "open: %s",
		      smc_status_str(st));
		if (st == SMC_OK) {
			unsigned n = ccid_reader_slot_count(e.reader);

			stats.descriptors_accepted++;
			CHECK(n >= 1 && n <= 16, "%u slots", n);
			CHECK(ccid_reader_slot(e.reader, n) == NULL, "slot %u past the last", n);
			/* it works, or refuses, but never breaks: a short storm */
			e.m.corrupt_pct = below(30);
			e.h.storm = 1;
			for (unsigned k = 0; k < 12; k++) {
				where.request = k;
				random_storm_request(&e);
			}
		}
		episode_close(&e);
	}
	loud();
	fprintf(stderr, "hostile_device: %lu random descriptors, %lu accepted\n", stats.descriptors,
		stats.descriptors_accepted);
	assert_true(stats.descriptors_accepted > 0);
	assert_true(stats.descriptors_accepted < stats.descriptors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(storms_never_break_the_stack_and_it_resynchronises),
		cmocka_unit_test(random_descriptors_are_accepted_or_refused),
	};

	return cmocka_run_group_tests(tests, setup_quiet, teardown_quiet);
}
