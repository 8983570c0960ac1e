/* RDF_TRANSMIT with T=1 below APDU level (CCID 1.1, 3.2.1 and 6.1.4): smclib's
 * engine makes every block, chaining and recovery included; this file only
 * carries each block to the card and the card's block back, in one XfrBlock at
 * TPDU level or in the character-level steps of exchange_char.c. */
#include "ccid_reader.h"
#include "smc_log.h"

/* The wait for the card's block: BWT times the WTX the card asked for (ISO
 * 7816-3 11.4.3), plus the margin, within the XfrBlock bounds. */
unsigned ccid_t1_block_timeout_ms(const struct smc_ext *ext, uint8_t wtx)
{
	return ccid_card_wait_timeout_ms((uint64_t)ext->card_caps.t1.bwt_ms * (wtx > 1 ? wtx : 1));
}

smc_status ccid_t1_rx_status(smc_status st, const struct ccid_answer *a, size_t *rx_len)
{
	switch (st) {
	case SMC_OK:
		*rx_len = a->hdr.dwLength;
		return SMC_OK;
	case SMC_ERR_BUFFER_TOO_SMALL:
		/* the pipe is in step (the answer was read away); for the engine it
		 * is an invalid block, which it asks for again */
		log_critical("T=1 block of %u bytes is longer than a block can be (%d)",
			     a->hdr.dwLength, SMC_T1_BLOCK_MAX);
		return SMC_ERR_COMM;
	default:
		/* TIMEOUT (mute card) and COMM (parity) go to the engine; NO_MEDIA,
		 * NO_DEVICE and the rest end the exchange there */
		return st;
	}
}

smc_status ccid_t1_block_tpdu(struct smc_ext *ext, const uint8_t *tx, size_t tx_len, uint8_t wtx,
			      uint8_t *rx, size_t rx_cap, size_t *rx_len)
{
	struct ccid_answer a;
	smc_status st;

	*rx_len = 0;
	/* 6.1.4 bBWI: the reader extends its block waiting time by this factor */
	st = ccid_xfr_block(ext, wtx > 1 ? wtx : 0, 0, tx, tx_len, ccid_t1_block_timeout_ms(ext, wtx),
			    rx, rx_cap, &a);
	return ccid_t1_rx_status(st, &a, rx_len);
}

/* After the exchange: a card that did not answer S(RESYNCH) (7816-3
 * 11.6.3.2) is out of step for good until it is reset. */
static smc_status exchange_end(struct smc_ext *ext, smc_status st)
{
	if (ext->t1.needs_reset)
		ccid_card_out_of_step(ext, "T=1: the card did not answer S(RESYNCH request)");
	return st;
}

smc_status ccid_exchange_t1(struct smc_ext *ext)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	int character = s->reader->desc.level == CCID_LEVEL_CHARACTER;
	smc_status st = smc_t1_request(ext);

	while (st == SMC_OK) {
		const struct smc_t1_state *t1 = &ext->t1;
		size_t rx_len = 0;
		smc_status rx;

		/* time up: ccid_xfr_block would send nothing, the block never goes out */
		if (ccid_apdu_time_left(ext) == 0) {
			/* the next APDU starts with S(RESYNCH): where this one stopped
			 * is unknown to the card */
			log_critical("slot %u: the APDU has used its %u ms: T=1 exchange given up",
				     s->index, CCID_APDU_BUDGET_MS);
			smc_t1_abandon(ext);
			return SMC_ERR_TIMEOUT;
		}
		if (character)
			rx = ccid_t1_block_char(ext, t1->block, t1->block_len, t1->wtx, s->t1_rx,
						sizeof(s->t1_rx), &rx_len);
		else
			rx = ccid_t1_block_tpdu(ext, t1->block, t1->block_len, t1->wtx, s->t1_rx,
						sizeof(s->t1_rx), &rx_len);
		st = smc_t1_reply(ext, rx, s->t1_rx, rx_len);
		if (st != SMC_MORE_PROCESSING)
			break;
		st = smc_t1_request(ext);
	}
	return exchange_end(ext, st);
}
