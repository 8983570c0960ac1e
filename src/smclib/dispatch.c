/* The dispatcher: one request of the pcsc-lite boundary at a time per slot.
 * It checks the card state (design.md, "dispatcher"), answers attributes itself,
 * and calls the reader driver through ext->reader_fn[RDF_*] for the rest, with
 * everything the callback needs in ext->io. The slot lock is held throughout, so
 * the callbacks of one slot never run concurrently. */
#include <string.h>

#include "smc_log.h"
#include "smclib_internal.h"

#define KNOWN_PROTOCOLS (SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1)

static const char *rdf_name(enum smc_rdf fn)
{
	switch (fn) {
	case RDF_CARD_POWER:
		return "RDF_CARD_POWER";
	case RDF_TRANSMIT:
		return "RDF_TRANSMIT";
	case RDF_CARD_EJECT:
		return "RDF_CARD_EJECT";
	case RDF_READER_SWALLOW:
		return "RDF_READER_SWALLOW";
	case RDF_CARD_TRACKING:
		return "RDF_CARD_TRACKING";
	case RDF_SET_PROTOCOL:
		return "RDF_SET_PROTOCOL";
	case RDF_IOCTL_VENDOR:
		return "RDF_IOCTL_VENDOR";
	case RDF_ATR_PARSE:
		return "RDF_ATR_PARSE";
	case RDF_COUNT:
		break;
	}
	return "RDF_?";
}

static enum smc_card_state card_state(const struct smc_ext *ext)
{
	return ext->reader_caps.current_state;
}

static bool rdf_mandatory(enum smc_rdf fn)
{
	return fn == RDF_CARD_POWER || fn == RDF_TRANSMIT || fn == RDF_SET_PROTOCOL ||
	       fn == RDF_CARD_TRACKING;
}

/* A callback the request needs; NULL (mandatory or optional) means not supported.
 * A missing mandatory one is a driver bug, so it is logged as critical. */
static bool have_rdf(const struct smc_ext *ext, enum smc_rdf fn)
{
	if (ext->reader_fn[fn] != NULL)
		return true;
	if (rdf_mandatory(fn))
		log_critical("the reader driver lacks the mandatory %s callback: request not supported",
			     rdf_name(fn));
	else
		log_info("the reader driver has no %s callback: request not supported", rdf_name(fn));
	return false;
}

static smc_status call_rdf(struct smc_ext *ext, enum smc_rdf fn)
{
	smc_status st = ext->reader_fn[fn](ext);

	if (st != SMC_OK)
		log_info("%s (minor 0x%X) failed: %s", rdf_name(fn), ext->io.minor,
			 smc_status_str(st));
	return st;
}

/* Ask the driver for the card state now (io.minor = SMC_TRACK_REFRESH). How
 * it ended is kept for WAIT_CHANGE (arm_tracking). */
static smc_status refresh_state(struct smc_ext *ext)
{
	uint32_t minor = ext->io.minor;
	smc_status st;

	if (!have_rdf(ext, RDF_CARD_TRACKING))
		return SMC_ERR_NOT_SUPPORTED;
	ext->io.minor = SMC_TRACK_REFRESH;
	st = call_rdf(ext, RDF_CARD_TRACKING);
	ext->io.minor = minor;
	ext->track.last_look = st;
	return st;
}

/* After power up the driver has stored the ATR in card_caps; hand a copy back. */
static smc_status power_up_reply(struct smc_ext *ext)
{
	struct smc_card_caps *caps = &ext->card_caps;

	if (caps->atr_len == 0 || caps->atr_len > SMC_ATR_MAX) {
		log_critical("power up reported success but the ATR length is %zu", caps->atr_len);
		return SMC_ERR_POWER;
	}
	if (card_state(ext) < SMC_STATE_POWERED) {
		log_info("card has an ATR but state is %s; now POWERED", smc_state_str(card_state(ext)));
		ext->reader_caps.current_state = SMC_STATE_POWERED;
	}
	if (ext->io.reply == NULL)
		return SMC_OK;
	ext->io.reply_len = caps->atr_len;
	if (caps->atr_len > ext->io.reply_cap) {
		log_critical("ATR of %zu bytes does not fit the reply buffer of %zu",
			     caps->atr_len, ext->io.reply_cap);
		return SMC_ERR_BUFFER_TOO_SMALL;
	}
	memcpy(ext->io.reply, caps->atr, caps->atr_len);
	return SMC_OK;
}

static smc_status do_power(struct smc_ext *ext)
{
	uint32_t power = ext->io.minor;
	smc_status st;

	if (power > SMC_POWER_WARM) {
		log_critical("power request %u is none of down/cold/warm", power);
		return SMC_ERR_INVALID_PARAM;
	}
	if (!have_rdf(ext, RDF_CARD_POWER))
		return SMC_ERR_NOT_SUPPORTED;
	if (card_state(ext) == SMC_STATE_UNKNOWN) {
		st = refresh_state(ext);
		if (st != SMC_OK)
			return st;
	}
	if (card_state(ext) <= SMC_STATE_ABSENT) {
		log_info("power %u refused: card state %s", power, smc_state_str(card_state(ext)));
		return SMC_ERR_NO_MEDIA;
	}
	smc_card_caps_clear(&ext->card_caps);
	ext->t1.running = false; /* a new ATR, a new T=1 start if any */
	ext->io.minor = power;
	st = call_rdf(ext, RDF_CARD_POWER);
	if (st != SMC_OK) {
		/* The capabilities are gone: whatever the card was (SPECIFIC, say),
		 * it is at best present and unpowered now, never "specific" with no
		 * ATR behind it. The driver may already have said ABSENT. */
		if (card_state(ext) > SMC_STATE_PRESENT)
			ext->reader_caps.current_state = SMC_STATE_PRESENT;
		return st;
	}
	if (power == SMC_POWER_DOWN) {
		ext->reader_caps.current_state = SMC_STATE_PRESENT;
		return SMC_OK;
	}
	return power_up_reply(ext);
}

/* The ATR is not understood yet (state POWERED): parse it, or let the driver. */
static smc_status understand_atr(struct smc_ext *ext)
{
	smc_status st = smc_update_card_capabilities(ext);

	if (st == SMC_OK)
		return SMC_OK;
	if (ext->reader_fn[RDF_ATR_PARSE] == NULL) {
		log_critical("ATR not understood and the driver has no RDF_ATR_PARSE");
		return SMC_ERR_BAD_ATR;
	}
	log_info("ATR not understood by smclib; asking the reader driver");
	st = call_rdf(ext, RDF_ATR_PARSE);
	if (st != SMC_OK) {
		log_critical("RDF_ATR_PARSE could not understand the ATR either");
		return SMC_ERR_BAD_ATR;
	}
	if (card_state(ext) < SMC_STATE_NEGOTIABLE)
		ext->reader_caps.current_state = SMC_STATE_NEGOTIABLE;
	return SMC_OK;
}

/* The protocols the request may get: the card's offer (only the specific one in
 * specific mode), narrowed to the reader's when the reader said. */
static uint32_t allowed_protocols(const struct smc_ext *ext)
{
	const struct smc_card_caps *caps = &ext->card_caps;
	uint32_t allowed = caps->specific_mode ? caps->specific_protocol : caps->protocols;

	if (ext->reader_caps.protocols != 0)
		allowed &= ext->reader_caps.protocols;
	return allowed;
}

static uint32_t choose_protocol(const struct smc_card_caps *caps, uint32_t want)
{
	if (want == KNOWN_PROTOCOLS)
		return (caps->first_protocol & want) ? caps->first_protocol : SMC_PROTOCOL_T0;
	return want;
}

static smc_status check_set_protocol_state(const struct smc_ext *ext, uint32_t mask)
{
	enum smc_card_state state = card_state(ext);

	if (state == SMC_STATE_ABSENT) {
		log_info("set protocol %s refused: no card", smc_protocol_str(mask));
		return SMC_ERR_NO_MEDIA;
	}
	if (state < SMC_STATE_POWERED) {
		log_info("set protocol %s refused: card state %s, not powered",
			 smc_protocol_str(mask), smc_state_str(state));
		return SMC_ERR_INVALID_STATE;
	}
	return SMC_OK;
}

static smc_status do_set_protocol(struct smc_ext *ext)
{
	struct smc_card_caps *caps = &ext->card_caps;
	uint32_t mask = ext->io.minor, want, chosen;
	smc_status st;

	if (!have_rdf(ext, RDF_SET_PROTOCOL))
		return SMC_ERR_NOT_SUPPORTED;
	st = check_set_protocol_state(ext, mask);
	if (st != SMC_OK)
		return st;
	if (card_state(ext) == SMC_STATE_SPECIFIC) {
		if (caps->selected_protocol & mask)
			return SMC_OK;
		log_info("set protocol 0x%X (%s) refused: card already specific with %s; reset to change",
			 mask, smc_protocol_str(mask & KNOWN_PROTOCOLS),
			 smc_protocol_str(caps->selected_protocol));
		return SMC_ERR_PROTOCOL;
	}
	if (card_state(ext) == SMC_STATE_POWERED) {
		st = understand_atr(ext);
		if (st != SMC_OK)
			return st;
	}
	want = mask & allowed_protocols(ext);
	if (want == 0) {
		log_info("set protocol 0x%X refused: card offers %s%s, reader supports %s",
			 mask, smc_protocol_str(caps->protocols),
			 caps->specific_mode ? " (specific mode)" : "",
			 ext->reader_caps.protocols ? smc_protocol_str(ext->reader_caps.protocols)
						    : "any");
		return SMC_ERR_PROTOCOL;
	}
	chosen = choose_protocol(caps, want);
	ext->io.minor = chosen;
	st = call_rdf(ext, RDF_SET_PROTOCOL);
	if (st != SMC_OK)
		return st;
	caps->selected_protocol = chosen;
	ext->reader_caps.current_state = SMC_STATE_SPECIFIC;
	log_info("protocol %s selected", smc_protocol_str(chosen));
	return SMC_OK;
}

static smc_status do_transmit(struct smc_ext *ext)
{
	const struct smc_io *io = &ext->io;
	enum smc_card_state state = card_state(ext);
	smc_status st;

	if (!have_rdf(ext, RDF_TRANSMIT))
		return SMC_ERR_NOT_SUPPORTED;
	if (state == SMC_STATE_ABSENT) {
		log_info("transmit refused: no card");
		return SMC_ERR_NO_MEDIA;
	}
	if (state != SMC_STATE_SPECIFIC) {
		log_info("transmit refused: card state %s, no protocol selected", smc_state_str(state));
		return SMC_ERR_INVALID_STATE;
	}
	if (io->minor != ext->card_caps.selected_protocol) {
		log_info("transmit with protocol 0x%X refused: %s is selected", io->minor,
			 smc_protocol_str(ext->card_caps.selected_protocol));
		return SMC_ERR_PROTOCOL;
	}
	if (io->request == NULL || io->request_len < 4 || io->reply == NULL) {
		log_critical("transmit refused: APDU of %zu bytes (at least 4 needed)%s",
			     io->request ? io->request_len : 0,
			     io->reply ? "" : ", no reply buffer");
		return SMC_ERR_INVALID_PARAM;
	}
	st = call_rdf(ext, RDF_TRANSMIT);
	if (st == SMC_OK && io->reply_len > io->reply_cap) {
		log_critical("RDF_TRANSMIT reports %zu reply bytes in a buffer of %zu",
			     io->reply_len, io->reply_cap);
		return SMC_ERR_COMM;
	}
	return st;
}

/* Tracking: answer at once, from a fresh look at the slot. In a REPORT, a
 * card that left since the last report while a card is in now (swapped
 * between two looks, or pulled and put back) is reported absent once: a
 * caller that compares presence, as pcscd does, must see the old card go, or
 * it would go on with the old ATR and the applications would never learn of
 * the new card. The next report gives the new card (and WAIT_CHANGE returns
 * at once for it). */
static smc_status do_is_present(struct smc_ext *ext)
{
	struct smc_track *t = &ext->track;
	uint32_t how = ext->io.minor;
	smc_status st;
	bool present;

	if (how != SMC_PRESENCE_LOOK && how != SMC_PRESENCE_REPORT) {
		log_critical("presence request %u is neither a look nor a report", how);
		return SMC_ERR_INVALID_PARAM;
	}
	st = refresh_state(ext);
	if (st != SMC_OK)
		return st;
	present = card_state(ext) > SMC_STATE_ABSENT;
	if (how == SMC_PRESENCE_LOOK) {
		if (!present)
			log_periodic("no card: state %s", smc_state_str(card_state(ext)));
		return present ? SMC_OK : SMC_ERR_NO_MEDIA;
	}
	if (present && t->reported_present && t->removals != t->reported_removals) {
		log_info("a card left the slot and a card is in now (%u removal(s) since the last look): "
			 "reported absent once, then present as a new card",
			 (unsigned)(t->removals - t->reported_removals));
		present = false;
	}
	t->reported_present = present;
	t->reported_removals = t->removals;
	if (present)
		return SMC_OK;
	log_periodic("no card: state %s", smc_state_str(card_state(ext)));
	return SMC_ERR_NO_MEDIA;
}

/* Tracking for WAIT_CHANGE, under the slot lock: what the caller waits for
 * follows from the last report. After "absent" it waits for a card: that
 * holds when the state shows one (the new card of a swap) or is unknown (no
 * look yet). After "present" it waits for its card to go: that holds when
 * the state is ABSENT or the driver has counted a removal since. Otherwise
 * the driver arms tracking with the matching minor (Windows' IS_PRESENT /
 * IS_ABSENT).
 *
 * While the last look failed, none of that is known, and the driver may
 * still hold the event that look gave back: a wait ending at once would send
 * the caller (pcscd: presence, then the polling function, again and again)
 * round at full speed for as long as the reader fails. So the wait fails
 * instead, and the caller pauses before it looks again. */
static smc_status arm_tracking(struct smc_ext *ext, bool *holds)
{
	const struct smc_track *t = &ext->track;
	enum smc_card_state state = card_state(ext);
	uint32_t minor;

	if (t->last_look != SMC_OK) {
		log_info("card event wait refused: the last look at the slot failed (%s); look again "
			 "after a pause", smc_status_str(t->last_look));
		return t->last_look == SMC_ERR_NO_DEVICE ? SMC_ERR_NO_DEVICE : SMC_ERR_COMM;
	}
	if (!t->reported_present) {
		*holds = state > SMC_STATE_ABSENT || state == SMC_STATE_UNKNOWN;
		minor = SMC_TRACK_PRESENT;
	} else {
		*holds = state <= SMC_STATE_ABSENT || t->removals != t->reported_removals;
		minor = SMC_TRACK_ABSENT;
	}
	if (*holds)
		return SMC_OK;
	if (!have_rdf(ext, RDF_CARD_TRACKING))
		return SMC_ERR_NOT_SUPPORTED;
	ext->io = (struct smc_io){ .minor = minor };
	return call_rdf(ext, RDF_CARD_TRACKING);
}

smc_status smc_tracking_arm(struct smc_ext *ext, bool *holds)
{
	smc_status st;
	int err;

	*holds = false;
	err = pthread_mutex_lock(&ext->lock);
	if (err != 0) {
		log_critical("cannot take the slot lock: %s", strerror(err));
		return SMC_ERR_INVALID_STATE;
	}
	st = arm_tracking(ext, holds);
	pthread_mutex_unlock(&ext->lock);
	return st;
}

static smc_status do_optional(struct smc_ext *ext, enum smc_rdf fn)
{
	if (!have_rdf(ext, fn))
		return SMC_ERR_NOT_SUPPORTED;
	return call_rdf(ext, fn);
}

static smc_status do_get_attribute(struct smc_ext *ext)
{
	struct smc_io *io = &ext->io;

	return smc_attribute_get(ext, io->minor, io->reply, io->reply_cap, &io->reply_len);
}

static smc_status dispatch(struct smc_ext *ext, enum smc_request req)
{
	switch (req) {
	case SMC_REQ_POWER:
		return do_power(ext);
	case SMC_REQ_SET_PROTOCOL:
		return do_set_protocol(ext);
	case SMC_REQ_TRANSMIT:
		return do_transmit(ext);
	case SMC_REQ_IS_PRESENT:
		return do_is_present(ext);
	case SMC_REQ_GET_ATTRIBUTE:
		return do_get_attribute(ext);
	case SMC_REQ_EJECT:
		return do_optional(ext, RDF_CARD_EJECT);
	case SMC_REQ_SWALLOW:
		return do_optional(ext, RDF_READER_SWALLOW);
	case SMC_REQ_VENDOR_IOCTL:
		ext->io.ioctl_code = ext->io.minor;
		return do_optional(ext, RDF_IOCTL_VENDOR);
	case SMC_REQ_WAIT_CHANGE:
	case SMC_REQ_CANCEL_WAIT:
		break; /* handed over before the lock: see smc_device_control */
	}
	log_critical("unknown request %d", (int)req);
	return SMC_ERR_INVALID_PARAM;
}

smc_status smc_device_control(struct smc_ext *ext, enum smc_request req, uint32_t minor,
			      const uint8_t *request, size_t request_len,
			      uint8_t *reply, size_t reply_cap, size_t *reply_len)
{
	smc_status st;
	int err;

	if (reply_len != NULL)
		*reply_len = 0;
	if (ext == NULL) {
		log_critical("no extension given");
		return SMC_ERR_INVALID_PARAM;
	}
	/* Card tracking waits without the slot lock, and a cancel must reach a
	 * wait while another request holds the lock (tracking.c). */
	if (req == SMC_REQ_WAIT_CHANGE)
		return smc_tracking_wait(ext, minor);
	if (req == SMC_REQ_CANCEL_WAIT)
		return smc_tracking_cancel(ext);
	err = pthread_mutex_lock(&ext->lock);
	if (err != 0) {
		log_critical("cannot take the slot lock: %s", strerror(err));
		return SMC_ERR_INVALID_STATE;
	}
	ext->io = (struct smc_io){
		.request = request,
		.request_len = request ? request_len : 0,
		.reply = reply,
		.reply_cap = reply ? reply_cap : 0,
		.reply_len = 0,
		.minor = minor,
	};
	st = dispatch(ext, req);
	if (reply_len != NULL)
		*reply_len = ext->io.reply_len;
	pthread_mutex_unlock(&ext->lock);
	return st;
}
