/* SetParameters (CCID 1.1, 6.1.7) from the card's capabilities, so that the
 * reader talks to the card with the timing and coding its ATR asked for. */
#include "ccid_reader.h"
#include "smc_log.h"

#define FIDI_DEFAULT 0x11u   /* Fd = 372, Dd = 1 (ISO 7816-3, 8.3) */
#define TCCKS_INVERSE 0x02u  /* bmTCCKST0/1 bit 1: inverse convention */
#define TCCKST1_BASE 0x10u   /* bmTCCKST1 bits 4-7 are 0001 */
#define TCCKST1_CRC 0x01u    /* bmTCCKST1 bit 0: CRC */

/* The Fi/Di the card runs at now: what PPS agreed on; in specific mode with
 * explicit parameters (TA2 bit 5 clear, ISO 7816-3 6.3.1) the ones of TA1;
 * otherwise the defaults, since no PPS has been negotiated. */
static uint8_t current_fidi(const struct smc_card_caps *c)
{
	if (c->pts.done)
		return (uint8_t)((c->pts.fl & 0x0F) << 4 | (c->pts.dl & 0x0F));
	if (c->specific_mode && !c->specific_implicit)
		return c->ta1;
	return FIDI_DEFAULT;
}

static void build_t0(const struct smc_card_caps *c, struct ccid_params_t0 *p)
{
	p->bmFindexDindex = current_fidi(c);
	p->bmTCCKST0 = c->inverse ? TCCKS_INVERSE : 0;
	p->bGuardTimeT0 = c->n;
	p->bWaitingIntegerT0 = c->t0.wi;
	p->bClockStop = 0;
}

static void build_t1(const struct smc_card_caps *c, struct ccid_params_t1 *p)
{
	p->bmFindexDindex = current_fidi(c);
	p->bmTCCKST1 = TCCKST1_BASE | (c->t1.crc ? TCCKST1_CRC : 0) | (c->inverse ? TCCKS_INVERSE : 0);
	p->bGuardTimeT1 = c->n;
	p->bmWaitingIntegersT1 = (uint8_t)((c->t1.bwi & 0x0F) << 4 | (c->t1.cwi & 0x0F));
	p->bClockStop = 0;
	p->bIFSC = c->t1.ifsc;
	p->bNadValue = 0;
}

smc_status ccid_set_parameters(struct smc_ext *ext, uint32_t protocol)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	const struct ccid_descriptor *d = &s->reader->desc;
	uint8_t block[CCID_PARAMS_MAX_LEN], answer[CCID_PARAMS_MAX_LEN];
	struct ccid_params_t0 p0;
	struct ccid_params_t1 p1;
	struct ccid_answer a;
	struct ccid_cmd cmd;
	smc_status st;

	if (ccid_descriptor_auto_params(d)) {
		log_info("slot %u: reader sets the protocol parameters itself (dwFeatures 0x%08X): no SetParameters",
			 s->index, d->dwFeatures);
		return SMC_OK;
	}
	if (protocol == SMC_PROTOCOL_T1) {
		build_t1(&ext->card_caps, &p1);
		ccid_cmd_set_parameters_t1(&cmd, s->index, &p1, block);
	} else {
		build_t0(&ext->card_caps, &p0);
		ccid_cmd_set_parameters_t0(&cmd, s->index, &p0, block);
	}
	st = ccid_xfer_transact(&s->reader->xfer, &cmd, CCID_CMD_TIMEOUT_MS, answer, sizeof(answer), &a);
	if (st == SMC_ERR_BUFFER_TOO_SMALL)
		return SMC_ERR_COMM;
	if (st != SMC_OK)
		return st;
	if (a.cmd == CCID_CMD_FAILED) {
		st = ccid_answer_failure(&a, "SetParameters");
		log_critical("slot %u: reader refused the %s parameters", s->index,
			     protocol == SMC_PROTOCOL_T1 ? "T=1" : "T=0");
		return st == SMC_ERR_NO_MEDIA ? st : SMC_ERR_COMM;
	}
	log_info("slot %u: %s parameters set (Fi/Di 0x%02X)", s->index,
		 protocol == SMC_PROTOCOL_T1 ? "T=1" : "T=0", block[0]);
	return SMC_OK;
}
