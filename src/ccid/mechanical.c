/* PC_to_RDR_Mechanical (CCID 1.1 6.1.12) for readers with a motorised or
 * locking slot: RDF_CARD_EJECT, RDF_READER_SWALLOW, and the vendor control
 * codes of ioctl.h.
 *
 * Swallow is Windows' word (IOCTL_SMARTCARD_SWALLOW): the reader draws the card
 * in and holds it in position, SCARD_SWALLOWED; CCID calls that "accept"
 * (bFunction 1). CCID's "capture" (3) keeps the card for good (a cash machine
 * retaining it), so it is reached only through its own control code. */
#include "ioctl.h"
#include "smc_log.h"

/* CCID 1.1 Table 5.1-1 dwMechanical */
#define MECHANISM_ACCEPT 0x01u
#define MECHANISM_EJECT 0x02u
#define MECHANISM_CAPTURE 0x04u
#define MECHANISM_LOCK 0x08u

/* Motors are slow; a card being drawn in may also wait for the user. */
#define CCID_MECHANICAL_TIMEOUT_MS 10000u

struct mechanical_fn {
	enum ccid_mechanical_fn fn;
	uint32_t mechanism;   /* the dwMechanical bit it needs */
	const char *name;
};

static const struct mechanical_fn functions[] = {
	{ CCID_MECH_ACCEPT, MECHANISM_ACCEPT, "accept" },
	{ CCID_MECH_EJECT, MECHANISM_EJECT, "eject" },
	{ CCID_MECH_CAPTURE, MECHANISM_CAPTURE, "capture" },
	{ CCID_MECH_LOCK, MECHANISM_LOCK, "lock" },
	{ CCID_MECH_UNLOCK, MECHANISM_LOCK, "unlock" },
};

static const struct mechanical_fn *find_fn(enum ccid_mechanical_fn fn)
{
	for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
		if (functions[i].fn == fn)
			return &functions[i];
	}
	return NULL;
}

smc_status ccid_mechanical(struct smc_ext *ext, enum ccid_mechanical_fn fn)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	const struct mechanical_fn *m = find_fn(fn);
	uint32_t have = s->reader->desc.dwMechanical;
	struct ccid_answer a;
	struct ccid_cmd cmd;
	smc_status st;

	if (m == NULL) {
		log_critical("slot %u: bFunction %d is no mechanical function", s->index, (int)fn);
		return SMC_ERR_INVALID_PARAM;
	}
	if (!(have & m->mechanism)) {
		log_info("slot %u: %s refused: the reader declares no such mechanism (dwMechanical 0x%08X)",
			 s->index, m->name, have);
		return SMC_ERR_NOT_SUPPORTED;
	}
	ccid_cmd_mechanical(&cmd, s->index, fn);
	st = ccid_xfer_transact(&s->reader->xfer, &cmd, CCID_MECHANICAL_TIMEOUT_MS, NULL, 0, &a);
	if (st != SMC_OK)
		return st;
	ccid_track_icc(ext, a.icc);
	if (a.cmd == CCID_CMD_FAILED)
		return ccid_answer_failure(&a, "Mechanical");
	log_info("slot %u: card %s done; ICC %s", s->index, m->name, ccid_icc_status_str(a.icc));
	return SMC_OK;
}

smc_status ccid_card_eject(struct smc_ext *ext)
{
	return ccid_mechanical(ext, CCID_MECH_EJECT);
}

smc_status ccid_reader_swallow(struct smc_ext *ext)
{
	unsigned slot = ccid_slot_of(ext)->index;
	smc_status st = ccid_mechanical(ext, CCID_MECH_ACCEPT);

	if (st != SMC_OK)
		return st;
	switch (ext->reader_caps.current_state) {
	case SMC_STATE_UNKNOWN:
	case SMC_STATE_ABSENT:
		log_info("slot %u: accept done, but no card is in the reader", slot);
		return SMC_ERR_NO_MEDIA;
	case SMC_STATE_PRESENT:
		log_info("slot %u: card %s -> %s", slot, smc_state_str(SMC_STATE_PRESENT),
			 smc_state_str(SMC_STATE_SWALLOWED));
		ext->reader_caps.current_state = SMC_STATE_SWALLOWED;
		return SMC_OK;
	default:
		return SMC_OK; /* already swallowed, or powered: in position either way */
	}
}
