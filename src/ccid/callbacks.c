/* The RDF callbacks of a CCID slot, as smclib calls them (one slot at a time):
 * RDF_CARD_POWER, RDF_SET_PROTOCOL, RDF_TRANSMIT, RDF_CARD_TRACKING.
 * Each reads its arguments from ext->io, talks to the reader through ccid_xfer,
 * and leaves the card state and capabilities in the extension. */
#include "ccid_reader.h"
#include "smc_log.h"

static const struct ccid_descriptor *desc_of(struct smc_ext *ext)
{
	return &ccid_slot_of(ext)->reader->desc;
}

/* A new card state; the card capabilities go with a card that left or was
 * reset. A card that leaves is counted for smclib's tracking, which reports
 * a card in again after that as a new one (smclib.h, struct smc_track). */
static void set_state(struct smc_ext *ext, enum smc_card_state next)
{
	enum smc_card_state prev = ext->reader_caps.current_state;

	if (prev == next)
		return;
	log_info("slot %u: card %s -> %s", ccid_slot_of(ext)->index, smc_state_str(prev),
		 smc_state_str(next));
	if (next <= SMC_STATE_PRESENT)
		smc_card_caps_clear(&ext->card_caps);
	if (next == SMC_STATE_ABSENT && prev > SMC_STATE_ABSENT)
		ext->track.removals++;
	ext->reader_caps.current_state = next;
}

/* The card in the slot is not the one we knew (or lost its power without us,
 * which ends its session all the same): unpowered, capabilities gone, and
 * counted as a removal so that the next presence report shows the change. */
static void new_card(struct smc_ext *ext, const char *why)
{
	log_info("slot %u: %s: taken as a new card", ccid_slot_of(ext)->index, why);
	ext->track.removals++;
	if (ext->reader_caps.current_state > SMC_STATE_PRESENT)
		set_state(ext, SMC_STATE_PRESENT);
}

void ccid_track_icc(struct smc_ext *ext, enum ccid_icc_status icc)
{
	enum smc_card_state cur = ext->reader_caps.current_state;

	switch (icc) {
	case CCID_ICC_ABSENT:
		set_state(ext, SMC_STATE_ABSENT);
		break;
	case CCID_ICC_INACTIVE:
		/* a powered card is no longer: it was swapped (or reset by the
		 * reader): without an interrupt pipe the only sign of a swap */
		if (cur >= SMC_STATE_POWERED)
			new_card(ext, "the card we powered is inactive");
		else if (cur <= SMC_STATE_ABSENT)
			set_state(ext, SMC_STATE_PRESENT);
		break;
	case CCID_ICC_ACTIVE:
		/* active without our power up (automatic activation): still needs one */
		if (cur <= SMC_STATE_ABSENT)
			set_state(ext, SMC_STATE_PRESENT);
		break;
	}
}

/* ---- RDF_CARD_POWER ------------------------------------------------------ */

static smc_status icc_power_off(struct smc_ext *ext)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	struct ccid_answer a;
	struct ccid_cmd cmd;
	smc_status st;

	ccid_cmd_icc_power_off(&cmd, s->index);
	st = ccid_xfer_transact(&s->reader->xfer, &cmd, CCID_CMD_TIMEOUT_MS, NULL, 0, &a);
	if (st != SMC_OK)
		return st;
	if (a.icc == CCID_ICC_ABSENT) {
		set_state(ext, SMC_STATE_ABSENT);
		return SMC_ERR_NO_MEDIA;
	}
	if (a.cmd == CCID_CMD_FAILED)
		return ccid_answer_failure(&a, "IccPowerOff");
	set_state(ext, SMC_STATE_PRESENT);
	return SMC_OK;
}

/* One IccPowerOn; the ATR lands in card_caps.atr. SMC_ERR_POWER when the card
 * gave no usable ATR at this voltage (worth another voltage). */
static smc_status icc_power_on(struct smc_ext *ext, enum ccid_power_select sel)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	struct smc_card_caps *caps = &ext->card_caps;
	struct ccid_answer a;
	struct ccid_cmd cmd;
	smc_status st;

	ccid_cmd_icc_power_on(&cmd, s->index, sel);
	st = ccid_xfer_transact(&s->reader->xfer, &cmd, CCID_POWER_ON_TIMEOUT_MS, caps->atr,
				sizeof(caps->atr), &a);
	if (st == SMC_ERR_BUFFER_TOO_SMALL) {
		log_critical("slot %u: ATR of %u bytes is longer than %d", s->index, a.hdr.dwLength,
			     SMC_ATR_MAX);
		return SMC_ERR_COMM;
	}
	if (st != SMC_OK)
		return st;
	if (a.cmd == CCID_CMD_FAILED) {
		ccid_answer_failure(&a, "IccPowerOn");
		if (a.icc == CCID_ICC_ABSENT) {
			set_state(ext, SMC_STATE_ABSENT);
			return SMC_ERR_NO_MEDIA;
		}
		set_state(ext, SMC_STATE_PRESENT); /* whatever ran before is gone */
		return SMC_ERR_POWER;
	}
	if (a.hdr.dwLength == 0) {
		log_critical("slot %u: IccPowerOn succeeded with an empty ATR", s->index);
		return SMC_ERR_COMM;
	}
	caps->atr_len = a.hdr.dwLength;
	return SMC_OK;
}

/* ISO 7816-3 8.3: an ATR whose class indicator excludes the voltage the card
 * answered at: deactivate, activate at the card's class; back to the first
 * voltage if that brings no ATR. */
static smc_status power_for_class(struct smc_ext *ext, enum ccid_power_select used)
{
	enum ccid_power_select sel = ccid_voltage_for_atr(ext, used);
	smc_status st;

	if (sel == used)
		return SMC_OK;
	st = icc_power_off(ext);
	if (st == SMC_OK)
		st = icc_power_on(ext, sel);
	if (st != SMC_ERR_POWER)
		return st;
	log_info("slot %u: no ATR at the card's class; powering again as before", ccid_slot_of(ext)->index);
	st = icc_power_off(ext);
	return st != SMC_OK ? st : icc_power_on(ext, used);
}

/* 6.1.1 bPowerSelect: automatic when the reader can choose (dwFeatures 0x8),
 * else 5 V, then 3 V, then 1.8 V among those bVoltageSupport lists, each after
 * the previous one gave no ATR. */
static smc_status power_on_any_voltage(struct smc_ext *ext)
{
	const struct ccid_voltage_class *cls = ccid_voltage_classes;
	const struct ccid_descriptor *d = desc_of(ext);
	smc_status st = SMC_ERR_POWER;
	int tried = 0;

	if (d->dwFeatures & CCID_FEAT_AUTO_VOLTAGE)
		return icc_power_on(ext, CCID_POWER_AUTO);
	for (size_t i = 0; i < CCID_N_VOLTAGE_CLASSES; i++) {
		if (!(d->bVoltageSupport & cls[i].bit))
			continue;
		if (tried++) {
			log_info("slot %u: no ATR; deactivating and trying %s", ccid_slot_of(ext)->index,
				 cls[i].volts);
			st = icc_power_off(ext);
			if (st != SMC_OK)
				return st;
		}
		st = icc_power_on(ext, cls[i].sel);
		if (st == SMC_OK)
			return power_for_class(ext, cls[i].sel);
		if (st != SMC_ERR_POWER)
			return st;
	}
	if (!tried)
		return icc_power_on(ext, CCID_POWER_AUTO);
	return st;
}

/* In specific mode (TA2) the card runs its protocol from the ATR on: set the
 * reader up for it now, as there will be no SET_PROTOCOL callback. */
static smc_status configure_specific_mode(struct smc_ext *ext)
{
	const struct smc_card_caps *caps = &ext->card_caps;
	uint32_t proto = caps->specific_protocol;

	if (proto != SMC_PROTOCOL_T0 && proto != SMC_PROTOCOL_T1) {
		log_info("slot %u: specific mode with protocol 0x%X, which this driver does not run",
			 ccid_slot_of(ext)->index, proto);
		return SMC_OK;
	}
	return ccid_start_protocol(ext, proto);
}

static smc_status power_up(struct smc_ext *ext)
{
	smc_status st;

	smc_card_caps_clear(&ext->card_caps);
	st = power_on_any_voltage(ext);
	if (st != SMC_OK)
		return st;
	log_hex("ATR", ext->card_caps.atr, ext->card_caps.atr_len);
	ext->reader_caps.current_state = SMC_STATE_POWERED;
	st = smc_update_card_capabilities(ext);
	if (st != SMC_OK) {
		/* smclib retries when the protocol is set; the ATR itself is kept */
		log_info("slot %u: ATR not understood yet (%s)", ccid_slot_of(ext)->index,
			 smc_status_str(st));
		return SMC_OK;
	}
	if (ext->card_caps.specific_mode)
		return configure_specific_mode(ext);
	return SMC_OK;
}

/* CCID has no warm reset: IccPowerOn only activates (6.1.1). A reset is
 * therefore a deactivation followed by a cold activation. */
smc_status ccid_card_reset(struct smc_ext *ext)
{
	smc_status st = icc_power_off(ext);

	if (st != SMC_OK)
		return st;
	return power_up(ext);
}

/* A card that gives no usable ATR after a reset gets one more, longer
 * deactivation and activation before the reset is reported as failed (ISO
 * 7816-3 6.2.3: a card that did not answer a warm reset is deactivated and
 * activated again). */
static smc_status reset_with_retry(struct smc_ext *ext)
{
	smc_status st = ccid_card_reset(ext);

	if (st != SMC_ERR_POWER && st != SMC_ERR_COMM)
		return st;
	log_info("slot %u: no usable ATR after the reset (%s); deactivating and trying once more",
		 ccid_slot_of(ext)->index, smc_status_str(st));
	return ccid_card_reset(ext);
}

smc_status ccid_card_power(struct smc_ext *ext)
{
	switch (ext->io.minor) {
	case SMC_POWER_DOWN:
		return icc_power_off(ext);
	case SMC_POWER_COLD:
		return power_up(ext);
	case SMC_POWER_WARM:
		return reset_with_retry(ext);
	}
	log_critical("power request %u is none of down/cold/warm", ext->io.minor);
	return SMC_ERR_INVALID_PARAM;
}

void ccid_card_out_of_step(struct smc_ext *ext, const char *what)
{
	unsigned slot = ccid_slot_of(ext)->index;

	log_critical("slot %u: %s: the card and the driver no longer agree where the exchange is; "
		     "the card is powered off and must be reset (reconnect with a reset)", slot, what);
	if (icc_power_off(ext) != SMC_OK)
		log_info("slot %u: the power off failed too", slot);
	if (ext->reader_caps.current_state > SMC_STATE_PRESENT)
		set_state(ext, SMC_STATE_PRESENT);
}

/* ---- RDF_SET_PROTOCOL ---------------------------------------------------- */

/* The IFSD to ask the card for with S(IFS request) (ISO 7816-3 11.4.2), or 0
 * when the reader does it itself (dwFeatures 0x400) or states no dwMaxIFSD. */
static uint8_t ifsd_to_negotiate(const struct ccid_descriptor *d)
{
	if (d->dwFeatures & CCID_FEAT_AUTO_IFSD)
		return 0;
	if (d->dwMaxIFSD == 0)
		return 0;
	return d->dwMaxIFSD > SMC_T1_INF_MAX ? SMC_T1_INF_MAX : (uint8_t)d->dwMaxIFSD;
}

smc_status ccid_start_protocol(struct smc_ext *ext, uint32_t proto)
{
	const struct ccid_descriptor *d = desc_of(ext);
	smc_status st = ccid_negotiate_speed(ext, proto);

	if (st != SMC_OK)
		return st;
	st = ccid_set_parameters(ext, proto);
	if (st != SMC_OK && ext->card_caps.pts.done && st != SMC_ERR_NO_MEDIA &&
	    st != SMC_ERR_NO_DEVICE) {
		/* the card may run the negotiated speed while the reader does not:
		 * only a reset brings both back to Fd/Dd */
		log_info("slot %u: parameters refused after PPS: resetting the card",
			 ccid_slot_of(ext)->index);
		if (ccid_card_reset(ext) != SMC_OK)
			log_info("slot %u: the reset failed too", ccid_slot_of(ext)->index);
	}
	if (st != SMC_OK)
		return st;
	/* below APDU level the host runs T=1 blocks: smclib's engine starts afresh */
	if (proto == SMC_PROTOCOL_T1 &&
	    (d->level == CCID_LEVEL_TPDU || d->level == CCID_LEVEL_CHARACTER))
		smc_t1_init(ext, ifsd_to_negotiate(d));
	return SMC_OK;
}

smc_status ccid_set_protocol(struct smc_ext *ext)
{
	const struct ccid_descriptor *d = desc_of(ext);
	uint32_t proto = ext->io.minor;
	smc_status st;

	if (proto != SMC_PROTOCOL_T0 && proto != SMC_PROTOCOL_T1) {
		log_critical("set protocol: 0x%X is not exactly one of T=0 and T=1", proto);
		return SMC_ERR_INVALID_PARAM;
	}
	if (!(d->dwProtocols & proto)) {
		log_info("set protocol: reader does not offer T=%u (dwProtocols 0x%08X)",
			 proto == SMC_PROTOCOL_T1, d->dwProtocols);
		return SMC_ERR_PROTOCOL;
	}
	st = ccid_start_protocol(ext, proto);
	if (st != SMC_OK)
		return st;
	ext->card_caps.selected_protocol = proto;
	ext->reader_caps.current_state = SMC_STATE_SPECIFIC;
	return SMC_OK;
}

/* ---- RDF_TRANSMIT -------------------------------------------------------- */

static smc_status transmit_at_level(struct smc_ext *ext)
{
	const struct ccid_descriptor *d = desc_of(ext);

	switch (d->level) {
	case CCID_LEVEL_TPDU:
		if (ext->card_caps.selected_protocol == SMC_PROTOCOL_T1)
			return ccid_exchange_t1(ext);
		return ccid_exchange_tpdu(ext);
	case CCID_LEVEL_SHORT_APDU:
		return ccid_exchange_short_apdu(ext);
	case CCID_LEVEL_EXTENDED_APDU:
		return ccid_exchange_extended_apdu(ext);
	case CCID_LEVEL_CHARACTER:
		if (ext->card_caps.selected_protocol == SMC_PROTOCOL_T1)
			return ccid_exchange_t1(ext);
		return ccid_exchange_char_t0(ext);
	}
	log_critical("transmit: %s level is not supported", ccid_level_str(d->level));
	return SMC_ERR_NOT_SUPPORTED;
}

smc_status ccid_transmit(struct smc_ext *ext)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	smc_status st;

	ext->io.reply_len = 0;
	s->apdu_deadline = ccid_xfer_now_ms(&s->reader->xfer) + CCID_APDU_BUDGET_MS;
	st = transmit_at_level(ext);
	s->apdu_deadline = 0;
	return st;
}

/* ---- RDF_CARD_TRACKING --------------------------------------------------- */

/* One GetSlotStatus, after taking the slot's interrupt events: a card in the
 * slot after the reader reported it gone (or changed) is a new card, even
 * when the reader activated it by itself. */
static smc_status refresh(struct smc_ext *ext)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	bool removed = ccid_events_take(ext);
	struct ccid_answer a;
	struct ccid_cmd cmd;
	smc_status st;

	ccid_cmd_get_slot_status(&cmd, s->index);
	st = ccid_xfer_transact(&s->reader->xfer, &cmd, CCID_CMD_TIMEOUT_MS, NULL, 0, &a);
	if (st != SMC_OK) {
		ccid_events_give_back(ext, removed);
		return st;
	}
	/* bmICCStatus is valid even when the command "failed" (e.g. a mute card) */
	log_periodic("slot %u: ICC %s, command %s (bError 0x%02X)", s->index,
		     ccid_icc_status_str(a.icc), ccid_cmd_status_str(a.cmd), a.bError);
	ccid_track_icc(ext, a.icc);
	if (removed && ext->reader_caps.current_state > SMC_STATE_ABSENT)
		new_card(ext, "the reader reported the card removed or changed since the last look");
	return SMC_OK;
}

smc_status ccid_card_tracking(struct smc_ext *ext)
{
	switch (ext->io.minor) {
	case SMC_TRACK_REFRESH:
		return refresh(ext);
	case SMC_TRACK_PRESENT:
	case SMC_TRACK_ABSENT:
		return ccid_events_arm(ext);
	}
	log_critical("card tracking request %u is none of refresh, present, absent", ext->io.minor);
	return SMC_ERR_NOT_SUPPORTED;
}
