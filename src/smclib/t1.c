/* The T=1 block engine: ISO/IEC 7816-3:2006 section 11.6 from the interface
 * device's side, request/reply style as Windows smclib's SmartcardT1Request and
 * SmartcardT1Reply. smc_t1_request() builds the block to send; smc_t1_reply()
 * takes the card's answer and decides the next block (or ends the exchange).
 *
 * Bounds, so that no card can keep an exchange going for ever:
 * - 11.6.3.2: at most T1_RETRIES_MAX R-blocks or retransmissions since the last
 *   progress, then S(RESYNCH request); an S(... request) of ours goes at most
 *   T1_S_TRIES_MAX times;
 * - at most T1_STALLS_MAX card S(WTX/IFS request)s since the last progress;
 * - at most T1_BLOCKS_IN_MAX card I-blocks in one response.
 * Progress is an I-block of the request acknowledged or an I-block of the
 * response taken, so an exchange has at most request_len + T1_BLOCKS_IN_MAX of
 * them.
 *
 * Staying in step across exchanges: an exchange that ends in error may leave
 * the card with other N(S)/N(R) than ours (it took our I-block, its answer was
 * lost). Our next I-block would then carry the N(S) it does not expect; its
 * R-block, our R-block, and a 7816-3 card repeats its LAST I-block: the old
 * response, which would pass for the new APDU's. So such an ending sets
 * t1.resynch_pending and the next APDU starts with S(RESYNCH request)
 * (11.6.3.2); a card that never answers it needs a reset (t1.needs_reset). */
#include <string.h>

#include "smc_log.h"
#include "smclib_internal.h"
#include "t1_block.h"

#define T1_APDU_MAX 65544u     /* extended case 4: 4 + 3 + 65535 + 2 (7816-4 5.1) */
#define T1_RESPONSE_MAX 65538u /* 65536 data bytes + SW1 SW2 */
#define T1_RETRIES_MAX 3u
#define T1_S_TRIES_MAX 3u
#define T1_STALLS_MAX 255u
#define T1_BLOCKS_IN_MAX (T1_RESPONSE_MAX + 8u)

#define WORDS_MAX 48

/* What the engine waits for. */
enum t1_phase {
	PH_IDLE = 0,    /* no exchange: smc_t1_request() starts one */
	PH_PRE_RESYNCH, /* our S(RESYNCH request) before the APDU (resynch_pending) */
	PH_IFS,         /* our S(IFS request) (IFSD) before the APDU */
	PH_SEND,        /* our I-block in flight, not acknowledged yet */
	PH_RECV,        /* the request is through; the card's chain comes in */
	PH_RESYNCH,     /* our S(RESYNCH request) after recovery failed */
	PH_ABORT,       /* our S(ABORT request), ending the card's chain */
	PH_ABORTED,     /* the card aborted; our S(ABORT response) is the last block */
};

/* What smc_t1_request() builds. */
enum t1_next {
	NEXT_I = 0, /* the I-block at t1.sent (a retransmission when not acknowledged) */
	NEXT_R,     /* R(nr) with t1.r_error */
	NEXT_S,     /* t1.s_pcb with t1.s_value when it carries one */
};

/* ---- helpers ---------------------------------------------------------------- */

/* IFSC from the ATR (11.4.2), 32 if card_caps holds no valid one. */
static uint8_t card_ifsc(const struct smc_ext *ext)
{
	uint8_t ifsc = ext->card_caps.t1.ifsc;

	if (ifsc == 0 || ifsc == T1_LEN_INVALID) {
		log_info("card IFSC %u is invalid; using %u", ifsc, T1_IFS_DEFAULT);
		return T1_IFS_DEFAULT;
	}
	return ifsc;
}

/* IFSD before any S(IFS) of ours: 32 (11.4.2) when we negotiate it; when the
 * reader negotiates it, the reader's maximum (or 254 if it states none). */
static uint8_t base_ifsd(const struct smc_ext *ext)
{
	uint32_t max = ext->reader_caps.max_ifsd;

	if (ext->t1.ifsd_want > 0)
		return T1_IFS_DEFAULT;
	if (max == 0 || max > SMC_T1_INF_MAX)
		return SMC_T1_INF_MAX;
	return (uint8_t)max;
}

/* The card's NAD answers ours with source and destination swapped (11.3.2.1). */
static uint8_t card_nad(uint8_t nad)
{
	return (uint8_t)(((nad & 0x07) << 4) | ((nad >> 4) & 0x07));
}

static void set_s(struct smc_t1_state *t, enum t1_s_type type, bool response, uint8_t value)
{
	t->next = NEXT_S;
	t->s_pcb = smc_t1_pcb_s(type, response);
	t->s_value = value;
}

static void set_r(struct smc_t1_state *t, enum t1_r_error error)
{
	t->next = NEXT_R;
	t->r_error = (uint8_t)error;
}

/* A step forward: the recovery and stall counts start again. */
static void progress(struct smc_t1_state *t)
{
	t->retries = 0;
	t->stalls = 0;
}

/* The exchange is over: the next smc_t1_request() starts a new one. ns, nr,
 * IFSC, IFSD, a queued S(IFS) and the resynch_pending/needs_reset flags stay. */
static void exchange_end(struct smc_t1_state *t)
{
	t->phase = PH_IDLE;
	t->next = NEXT_I;
	t->sent = t->sending = 0;
	t->more = false;
	t->received = 0;
	t->blocks_in = 0;
	t->retries = t->s_tries = t->stalls = 0;
	t->steps = 0;
	t->pending_error = SMC_OK;
	t->fail = SMC_OK;
	t->overflow = false;
	t->nad_logged = false;
	t->wtx = 1;
}

/* The exchange ends with st, the two sides in step: N(S) and N(R) are the
 * ones the card holds too. */
static smc_status end_with(struct smc_t1_state *t, smc_status st)
{
	exchange_end(t);
	return st;
}

/* The exchange ends with st while the card may hold other N(S)/N(R) than ours:
 * the next APDU starts with S(RESYNCH request). */
static smc_status end_out_of_step(struct smc_t1_state *t, smc_status st)
{
	if (!t->resynch_pending)
		log_info("T=1: the card may be out of step after %lu blocks; "
			 "the next APDU starts with S(RESYNCH request)", t->steps);
	t->resynch_pending = true;
	return end_with(t, st);
}

/* RESYNCH failed 3 times: 11.6.3.2 leaves only a deactivation of the card.
 * Until the driver's reset and smc_t1_init(), no APDU goes. */
static smc_status end_needs_reset(struct smc_t1_state *t, smc_status st)
{
	t->resynch_pending = true;
	t->needs_reset = true;
	return end_with(t, st);
}

static const char *phase_str(int phase)
{
	switch ((enum t1_phase)phase) {
	case PH_IDLE:
		return "idle";
	case PH_PRE_RESYNCH:
		return "S(RESYNCH request) before the APDU";
	case PH_IFS:
		return "S(IFS request)";
	case PH_SEND:
		return "sending the APDU";
	case PH_RECV:
		return "receiving the response";
	case PH_RESYNCH:
		return "S(RESYNCH request)";
	case PH_ABORT:
		return "S(ABORT request)";
	case PH_ABORTED:
		return "S(ABORT response)";
	}
	return "unknown";
}

/* ---- init and request ------------------------------------------------------- */

void smc_t1_init(struct smc_ext *ext, uint8_t ifsd)
{
	struct smc_t1_state *t;

	if (ext == NULL) {
		log_critical("no extension given");
		return;
	}
	t = &ext->t1;
	memset(t, 0, sizeof(*t));
	if (ifsd == T1_LEN_INVALID) {
		log_info("IFSD 255 is invalid; asking for %u", SMC_T1_INF_MAX);
		ifsd = SMC_T1_INF_MAX;
	}
	t->ifsd_want = ifsd;
	t->ifsd_pending = ifsd > 0;
	t->ifsc = card_ifsc(ext);
	t->ifsd = base_ifsd(ext);
	t->crc = ext->card_caps.t1.crc;
	t->nad = 0;
	t->running = true;
	exchange_end(t);
	log_info("T=1: IFSC %u, IFSD %u%s, EDC %s", t->ifsc, t->ifsd,
		 t->ifsd_pending ? " (S(IFS request) queued)" : "", t->crc ? "CRC" : "LRC");
}

/* The APDU's first block: S(IFS request) if one is queued, else its first
 * I-block (11.6.2, rule 1). */
static void apdu_begin(struct smc_t1_state *t)
{
	progress(t);
	if (t->ifsd_pending && t->ifsd_want > 0) {
		t->phase = PH_IFS;
		t->s_tries = 1;
		set_s(t, T1_S_IFS, false, t->ifsd_want);
		return;
	}
	t->ifsd_pending = false;
	t->phase = PH_SEND;
	t->s_tries = 0;
	t->next = NEXT_I;
}

/* A new exchange: S(RESYNCH request) first when the last one left the two
 * sides possibly out of step, else the APDU's first block. */
static smc_status exchange_start(struct smc_ext *ext)
{
	struct smc_t1_state *t = &ext->t1;
	const struct smc_io *io = &ext->io;

	if (io->request == NULL || io->request_len == 0 || io->request_len > T1_APDU_MAX) {
		log_critical("T=1: APDU of %zu bytes (%s); 1..%u bytes are possible",
			     io->request ? io->request_len : 0, io->request ? "given" : "none",
			     T1_APDU_MAX);
		return SMC_ERR_INVALID_PARAM;
	}
	if (io->reply == NULL) {
		log_critical("T=1: no reply buffer for the response");
		return SMC_ERR_INVALID_PARAM;
	}
	if (t->ifsc == 0 || t->ifsc == T1_LEN_INVALID)
		t->ifsc = card_ifsc(ext);
	if (t->ifsd == 0 || t->ifsd == T1_LEN_INVALID)
		t->ifsd = base_ifsd(ext);
	t->ns &= 1;
	t->nr &= 1;
	exchange_end(t);
	ext->io.reply_len = 0;
	if (t->resynch_pending) {
		log_info("T=1: the last exchange may have left the card out of step; "
			 "S(RESYNCH request) before the APDU");
		t->phase = PH_PRE_RESYNCH;
		t->s_tries = 1;
		set_s(t, T1_S_RESYNCH, false, 0);
		return SMC_OK;
	}
	apdu_begin(t);
	return SMC_OK;
}

/* The I-block carrying the request from t1.sent on, at most IFSC bytes, M set
 * when more follows (11.6.2.2 chaining). A retransmission is built again the
 * same way, so that it follows a new IFSC (11.4.2). */
static void build_i(struct smc_ext *ext)
{
	struct smc_t1_state *t = &ext->t1;
	size_t rest = ext->io.request_len - t->sent;
	size_t n = rest < t->ifsc ? rest : t->ifsc;

	t->sending = n;
	t->more = rest > n;
	t->block_len = smc_t1_block_build(t->block, t->nad, smc_t1_pcb_i(t->ns, t->more),
					  ext->io.request + t->sent, n, t->crc);
}

static void build_next(struct smc_ext *ext)
{
	struct smc_t1_state *t = &ext->t1;
	bool has_value;

	t->wtx = 1;
	switch ((enum t1_next)t->next) {
	case NEXT_I:
		build_i(ext);
		return;
	case NEXT_R:
		t->block_len = smc_t1_block_build(t->block, t->nad,
						  smc_t1_pcb_r(t->nr, (enum t1_r_error)t->r_error),
						  NULL, 0, t->crc);
		return;
	case NEXT_S:
		break;
	}
	has_value = (t->s_pcb & 0x0F) == T1_S_IFS || (t->s_pcb & 0x0F) == T1_S_WTX;
	t->block_len = smc_t1_block_build(t->block, t->nad, t->s_pcb, &t->s_value,
					  has_value ? 1 : 0, t->crc);
	/* 11.6.2.3: the time extension holds for the block after S(WTX response) */
	if (t->s_pcb == smc_t1_pcb_s(T1_S_WTX, true))
		t->wtx = t->s_value;
}

smc_status smc_t1_request(struct smc_ext *ext)
{
	struct smc_t1_state *t;
	char words[WORDS_MAX];
	smc_status st;

	if (ext == NULL) {
		log_critical("no extension given");
		return SMC_ERR_INVALID_PARAM;
	}
	t = &ext->t1;
	if (t->needs_reset) {
		log_critical("T=1: the card did not answer S(RESYNCH request) 3 times; "
			     "it needs a reset (and smc_t1_init) before an APDU");
		return SMC_ERR_COMM;
	}
	if (t->phase == PH_IDLE) {
		st = exchange_start(ext);
		if (st != SMC_OK)
			return st;
	}
	build_next(ext);
	if (SMC_LOG_ENABLED(SMC_LOG_COMM)) {
		smc_t1_block_str_raw(t->block, t->block_len, words, sizeof(words));
		log_comm("T=1 -> %s", words);
	}
	return SMC_OK;
}

/* ---- recovery (11.6.3) ------------------------------------------------------ */

/* 11.6.3.2: S(RESYNCH request) when recovery failed; whatever comes of it,
 * the APDU fails (with SMC_ERR_TIMEOUT if the card was mute). Answered, the
 * two sides are in step again; unanswered 3 times, the card needs a reset. */
static smc_status start_resynch(struct smc_ext *ext, const char *why)
{
	struct smc_t1_state *t = &ext->t1;

	log_critical("T=1: %s (last failure: %s); sending S(RESYNCH request)", why,
		     smc_status_str(t->fail));
	t->pending_error = t->fail == SMC_ERR_TIMEOUT ? SMC_ERR_TIMEOUT : SMC_ERR_COMM;
	t->phase = PH_RESYNCH;
	t->s_tries = 1;
	set_s(t, T1_S_RESYNCH, false, 0);
	return SMC_MORE_PROCESSING;
}

/* End the card's chain with S(ABORT request) (11.6.2.3, chain abortion); the
 * exchange then ends with st. */
static smc_status start_abort(struct smc_ext *ext, smc_status st)
{
	struct smc_t1_state *t = &ext->t1;

	t->pending_error = st;
	t->phase = PH_ABORT;
	t->s_tries = 1;
	set_s(t, T1_S_ABORT, false, 0);
	return SMC_MORE_PROCESSING;
}

/* The APDU's first I-block, after the IFSD negotiation. */
static smc_status start_apdu(struct smc_t1_state *t)
{
	t->ifsd_pending = false;
	t->phase = PH_SEND;
	t->next = NEXT_I;
	t->s_tries = 0;
	progress(t);
	return SMC_MORE_PROCESSING;
}

/* Our S(... request) got no valid answer (11.6.3.2, rule 7.3): send it again,
 * up to T1_S_TRIES_MAX times in all. */
static smc_status s_request_failed(struct smc_ext *ext)
{
	struct smc_t1_state *t = &ext->t1;

	if (t->s_tries < T1_S_TRIES_MAX) {
		t->s_tries++;
		t->next = NEXT_S;
		return SMC_MORE_PROCESSING;
	}
	switch ((enum t1_phase)t->phase) {
	case PH_IFS:
		log_info("T=1: no valid S(IFS response) to IFSD %u after %u tries; IFSD stays %u",
			 t->ifsd_want, t->s_tries, t->ifsd);
		return start_apdu(t);
	case PH_PRE_RESYNCH:
		log_critical("T=1: no valid S(RESYNCH response) before the APDU after %u tries "
			     "(last failure: %s); the APDU fails, the card needs a reset",
			     t->s_tries, smc_status_str(t->fail));
		return end_needs_reset(t, SMC_ERR_COMM);
	case PH_RESYNCH:
		log_critical("T=1: no valid S(RESYNCH response) after %u tries (last failure: %s); "
			     "the card needs a reset", t->s_tries, smc_status_str(t->fail));
		return end_needs_reset(t, t->fail == SMC_ERR_TIMEOUT ? SMC_ERR_TIMEOUT : SMC_ERR_COMM);
	case PH_ABORT:
		/* the card may still be in its chain or have dropped it */
		log_critical("T=1: no S(ABORT response) after %u tries; ending with %s", t->s_tries,
			     smc_status_str(t->pending_error));
		if (t->pending_error == SMC_ERR_BUFFER_TOO_SMALL)
			ext->io.reply_len = t->received;
		return end_out_of_step(t, t->pending_error);
	default:
		break;
	}
	log_critical("T=1: S-request retry in phase %d, which sends none", t->phase);
	return end_out_of_step(t, SMC_ERR_COMM);
}

/* No valid block came (why: SMC_ERR_TIMEOUT for a mute card, SMC_ERR_COMM for
 * anything else); error is what an R-block says about it. 11.6.3.2: rule 7.1
 * (after an I-block) and 7.2 (after an R-block) send R(N(R) = expected), rule
 * 7.3 resends an S(... request), or sends an R-block after an S(... response). */
static smc_status recover(struct smc_ext *ext, enum t1_r_error error, smc_status why)
{
	struct smc_t1_state *t = &ext->t1;

	t->fail = why;
	switch ((enum t1_phase)t->phase) {
	case PH_PRE_RESYNCH:
	case PH_IFS:
	case PH_RESYNCH:
	case PH_ABORT:
		return s_request_failed(ext);
	default:
		break;
	}
	if (t->retries >= T1_RETRIES_MAX)
		return start_resynch(ext, "no valid block after 3 R-blocks or retransmissions");
	t->retries++;
	/* rule 7.2 resends our R-block as it was: a card may read the error
	 * bits of a changed one as a refusal of its I-block */
	if (t->next != NEXT_R)
		set_r(t, error);
	return SMC_MORE_PROCESSING;
}

static smc_status unexpected(struct smc_ext *ext, const struct t1_block *b, const char *why)
{
	char words[WORDS_MAX];

	smc_t1_block_str(b, words, sizeof(words));
	log_info("T=1 <- %s: %s", words, why);
	return recover(ext, T1_R_OTHER, SMC_ERR_COMM);
}

/* ---- the card's blocks ------------------------------------------------------ */

/* The INF of the card's I-block into io.reply while it fits. */
static void store_inf(struct smc_ext *ext, const struct t1_block *b)
{
	struct smc_t1_state *t = &ext->t1;

	if (!t->overflow && b->len > ext->io.reply_cap - t->received) {
		t->overflow = true;
		log_critical("T=1: the response outgrows the reply buffer of %zu bytes (%zu + %zu)",
			     ext->io.reply_cap, t->received, b->len);
	}
	if (!t->overflow && b->len > 0)
		memcpy(ext->io.reply + t->received, b->inf, b->len);
	t->received += b->len;
}

/* The card's chain ended (its last I-block taken): the two sides are in step,
 * whatever the response is worth. */
static smc_status finish(struct smc_ext *ext)
{
	struct smc_t1_state *t = &ext->t1;

	if (t->overflow) {
		log_critical("T=1: response of %zu bytes does not fit the reply buffer of %zu bytes",
			     t->received, ext->io.reply_cap);
		ext->io.reply_len = t->received;
		return end_with(t, SMC_ERR_BUFFER_TOO_SMALL);
	}
	if (t->received < 2) {
		log_critical("T=1: response of %zu bytes lacks SW1 SW2", t->received);
		return end_with(t, SMC_ERR_COMM);
	}
	ext->io.reply_len = t->received;
	return end_with(t, SMC_OK);
}

/* A card I-block with the expected N(S): take it, then acknowledge it with
 * R(N(R)) while the card chains (11.6.2.2), or end the exchange. */
static smc_status take_i(struct smc_ext *ext, const struct t1_block *b)
{
	struct smc_t1_state *t = &ext->t1;

	t->nr ^= 1;
	t->blocks_in++;
	progress(t);
	store_inf(ext, b);
	if (!b->more)
		return finish(ext);
	if (t->overflow)
		return start_abort(ext, SMC_ERR_BUFFER_TOO_SMALL);
	if (t->blocks_in >= T1_BLOCKS_IN_MAX) {
		log_critical("T=1: the card chained %zu I-blocks (%zu bytes); aborting its chain",
			     t->blocks_in, t->received);
		return start_abort(ext, SMC_ERR_COMM);
	}
	set_r(t, T1_R_OK);
	return SMC_MORE_PROCESSING;
}

static smc_status on_i(struct smc_ext *ext, const struct t1_block *b)
{
	struct smc_t1_state *t = &ext->t1;

	if (t->phase == PH_SEND && t->more)
		return unexpected(ext, b, "our chained I-block needs an R-block");
	if (b->seq != t->nr) {
		log_info("T=1 <- I-block N(S) %u, expected %u", b->seq, t->nr);
		return recover(ext, T1_R_OTHER, SMC_ERR_COMM);
	}
	if (t->phase == PH_SEND) {
		/* 11.6.2.1: the card's I-block acknowledges our last one */
		t->sent += t->sending;
		t->ns ^= 1;
		t->phase = PH_RECV;
	}
	return take_i(ext, b);
}

static smc_status on_r(struct smc_ext *ext, const struct t1_block *b)
{
	struct smc_t1_state *t = &ext->t1;

	if (t->phase == PH_RECV) {
		/* rule 7.2: the card did not get our R-block; send it again */
		log_info("T=1 <- R(%u) while receiving the card's chain; sending R(%u) again", b->seq,
			 t->nr);
		return recover(ext, T1_R_OTHER, SMC_ERR_COMM);
	}
	if (b->seq == t->ns) {
		/* rules 7.1/7.2 seen from the card: it asks for our I-block again */
		log_info("T=1 <- R(%u): the card asks for I(%u) again", b->seq, t->ns);
		t->fail = SMC_ERR_COMM;
		if (t->retries >= T1_RETRIES_MAX)
			return start_resynch(ext, "the card asked for our I-block a fourth time");
		t->retries++;
		t->next = NEXT_I;
		return SMC_MORE_PROCESSING;
	}
	if (!t->more)
		return unexpected(ext, b, "acknowledges an I-block that had no M bit");
	/* 11.6.2.2: R(N(R) = our next N(S)) acknowledges a chained I-block */
	t->sent += t->sending;
	t->ns ^= 1;
	progress(t);
	t->next = NEXT_I;
	return SMC_MORE_PROCESSING;
}

static smc_status on_s(struct smc_ext *ext, const struct t1_block *b)
{
	struct smc_t1_state *t = &ext->t1;

	if (b->response)
		return unexpected(ext, b, "no request of ours is pending");
	if (b->s_type == T1_S_RESYNCH)
		return unexpected(ext, b, "only the interface device may resynchronise");
	if (b->s_type == T1_S_ABORT) {
		log_critical("T=1: card aborted the chain (S(ABORT request)); the APDU fails");
		t->phase = PH_ABORTED;
		set_s(t, T1_S_ABORT, true, 0);
		return SMC_MORE_PROCESSING;
	}
	if (++t->stalls > T1_STALLS_MAX) {
		log_critical("T=1: the card sent %u S(WTX/IFS request)s without progress", t->stalls - 1);
		t->fail = b->s_type == T1_S_WTX ? SMC_ERR_TIMEOUT : SMC_ERR_COMM;
		return start_resynch(ext, "endless S(WTX/IFS request)s");
	}
	if (b->s_type == T1_S_IFS) {
		/* 11.4.2: the card announces a new IFSC */
		log_info("T=1: card sets IFSC to %u (was %u)", b->value, t->ifsc);
		t->ifsc = b->value;
	}
	set_s(t, b->s_type, true, b->value); /* rules 3 and 4 */
	return SMC_MORE_PROCESSING;
}

static smc_status on_ifs(struct smc_ext *ext, const struct t1_block *b)
{
	struct smc_t1_state *t = &ext->t1;

	if (b->kind != T1_S || b->s_type != T1_S_IFS || !b->response)
		return unexpected(ext, b, "expected S(IFS response)");
	if (b->value != t->ifsd_want) {
		log_info("T=1 <- S(IFS response) %u does not match our S(IFS request) %u", b->value,
			 t->ifsd_want);
		return recover(ext, T1_R_OTHER, SMC_ERR_COMM);
	}
	t->ifsd = b->value;
	log_info("T=1: IFSD %u accepted by the card", t->ifsd);
	return start_apdu(t);
}

/* S(RESYNCH response) came: the two sides are in step again, the recovery
 * RESYNCH ends the APDU with its error, the one before an APDU lets it go on. */
static smc_status on_resynch(struct smc_ext *ext, const struct t1_block *b)
{
	struct smc_t1_state *t = &ext->t1;
	smc_status st = t->pending_error;

	if (b->kind != T1_S || b->s_type != T1_S_RESYNCH || !b->response)
		return unexpected(ext, b, "expected S(RESYNCH response)");
	/* 11.6.3.2: after RESYNCH, the protocol starts again with its defaults */
	t->ns = 0;
	t->nr = 0;
	t->ifsc = card_ifsc(ext);
	t->ifsd = base_ifsd(ext);
	t->ifsd_pending = t->ifsd_want > 0;
	t->resynch_pending = false;
	if (t->phase == PH_PRE_RESYNCH) {
		log_info("T=1: resynchronised before the APDU (IFSC %u, IFSD %u%s)", t->ifsc, t->ifsd,
			 t->ifsd_pending ? ", S(IFS request) queued again" : "");
		apdu_begin(t);
		return SMC_MORE_PROCESSING;
	}
	log_critical("T=1: resynchronised (IFSC %u, IFSD %u); the APDU fails: %s", t->ifsc, t->ifsd,
		     smc_status_str(st));
	return end_with(t, st);
}

static smc_status on_abort(struct smc_ext *ext, const struct t1_block *b)
{
	struct smc_t1_state *t = &ext->t1;
	smc_status st = t->pending_error;

	if (b->kind != T1_S || b->s_type != T1_S_ABORT || !b->response)
		return unexpected(ext, b, "expected S(ABORT response)");
	log_critical("T=1: card's chain aborted after %zu bytes; the APDU fails: %s", t->received,
		     smc_status_str(st));
	if (st == SMC_ERR_BUFFER_TOO_SMALL)
		ext->io.reply_len = t->received;
	/* In step: the card's I-blocks we took each turned N(R) on both sides,
	 * the card's first one had acknowledged our last I-block (N(S)), and the
	 * S-block pair that ended the chain touches neither (11.6.2.3). */
	return end_with(t, st);
}

static void check_nad(struct smc_t1_state *t, const struct t1_block *b)
{
	uint8_t want = card_nad(t->nad);

	if (b->nad == want || t->nad_logged)
		return;
	t->nad_logged = true;
	log_info("T=1 <- NAD 0x%02X, expected 0x%02X; accepted (many cards ignore NAD)", b->nad,
		 want);
}

static smc_status on_block(struct smc_ext *ext, const struct t1_block *b)
{
	switch ((enum t1_phase)ext->t1.phase) {
	case PH_IFS:
		return on_ifs(ext, b);
	case PH_PRE_RESYNCH:
	case PH_RESYNCH:
		return on_resynch(ext, b);
	case PH_ABORT:
		return on_abort(ext, b);
	case PH_SEND:
	case PH_RECV:
		break;
	case PH_IDLE:
	case PH_ABORTED: /* smc_t1_reply() took these before parsing */
		log_critical("T=1: block in phase %d, which takes none", ext->t1.phase);
		return end_out_of_step(&ext->t1, SMC_ERR_COMM);
	}
	switch (b->kind) {
	case T1_I:
		return on_i(ext, b);
	case T1_R:
		return on_r(ext, b);
	case T1_S:
		break;
	}
	return on_s(ext, b);
}

smc_status smc_t1_reply(struct smc_ext *ext, smc_status rx_status, const uint8_t *block,
			size_t block_len)
{
	struct smc_t1_state *t;
	struct t1_block b;
	enum t1_r_error e;
	char words[WORDS_MAX];

	if (ext == NULL) {
		log_critical("no extension given");
		return SMC_ERR_INVALID_PARAM;
	}
	t = &ext->t1;
	if (t->phase == PH_IDLE) {
		log_critical("T=1: a reply but no exchange in progress");
		return SMC_ERR_INVALID_STATE;
	}
	if (rx_status != SMC_OK && rx_status != SMC_ERR_COMM && rx_status != SMC_ERR_TIMEOUT) {
		/* the block may have reached the card */
		log_critical("T=1: exchange ends after %lu blocks (%s): %s", t->steps,
			     phase_str(t->phase), smc_status_str(rx_status));
		return end_out_of_step(t, rx_status == SMC_MORE_PROCESSING ? SMC_ERR_INVALID_PARAM :
									      rx_status);
	}
	t->steps++;
	if (t->phase == PH_ABORTED) {
		/* what the card's abort did to N(S)/N(R) (whether it counted the
		 * I-block in flight) is unknown */
		log_critical("T=1: the APDU fails: card aborted the chain");
		return end_out_of_step(t, SMC_ERR_COMM);
	}
	if (rx_status != SMC_OK) {
		log_info("T=1 <- no block: %s", rx_status == SMC_ERR_TIMEOUT ?
						       "card mute (BWT over)" :
						       "parity or framing error");
		return recover(ext, rx_status == SMC_ERR_TIMEOUT ? T1_R_OTHER : T1_R_EDC, rx_status);
	}
	e = smc_t1_block_parse(block, block_len, t->crc, t->ifsd, &b);
	if (e != T1_R_OK) {
		log_hex("T=1 <- invalid block", block, block ? block_len : 0);
		return recover(ext, e, SMC_ERR_COMM);
	}
	if (SMC_LOG_ENABLED(SMC_LOG_COMM)) {
		smc_t1_block_str(&b, words, sizeof(words));
		log_comm("T=1 <- %s", words);
	}
	check_nad(t, &b);
	return on_block(ext, &b);
}

/* The driver stops the exchange itself (its time budget ran out): the block
 * smc_t1_request() built was never sent, but the ones before may have reached
 * the card and their answers been lost. */
void smc_t1_abandon(struct smc_ext *ext)
{
	struct smc_t1_state *t;

	if (ext == NULL) {
		log_critical("no extension given");
		return;
	}
	t = &ext->t1;
	if (t->phase == PH_IDLE) {
		log_info("T=1: exchange abandoned, but none is in progress");
		return;
	}
	log_critical("T=1: exchange abandoned by the driver after %lu blocks (%s)", t->steps,
		     phase_str(t->phase));
	(void)end_out_of_step(t, SMC_ERR_TIMEOUT);
}

size_t smc_t1_rest_len(const struct smc_ext *ext, const uint8_t prologue[SMC_T1_PROLOGUE_LEN])
{
	if (ext == NULL || prologue == NULL)
		return 0;
	if (prologue[2] == T1_LEN_INVALID) {
		log_info("T=1 <- prologue with LEN 0xFF (reserved)");
		return 0;
	}
	return (size_t)prologue[2] + smc_t1_edc_len(ext->t1.crc);
}
