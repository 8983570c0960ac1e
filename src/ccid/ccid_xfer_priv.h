/* Shared by ccid_xfer.c (framing, serial transactions) and ccid_xfer_dispatch.c
 * (overlapping transactions of several slots); nothing else includes it. */
#ifndef CCID_XFER_PRIV_H
#define CCID_XFER_PRIV_H

#include "ccid_xfer.h"

/* One whole message into x->rx (the caller holds the reading role), dumped at
 * level dump (0: not dumped, the caller dumps it once it knows whose it is). */
smc_status ccid_xfer_read_frame(struct ccid_xfer *x, uint64_t deadline, size_t *frame_len,
				enum smc_log_level dump);
/* Encode cmd into x->tx and write it to bulk OUT (the caller owns tx). */
smc_status ccid_xfer_send_cmd(struct ccid_xfer *x, const struct ccid_cmd *cmd,
			      enum smc_log_level dump);
/* 5.3.1 the ABORT class request; 0 when the device is gone. */
int ccid_xfer_abort_request(struct ccid_xfer *x, uint8_t slot, uint8_t seq);
/* 6.1.13 PC_to_RDR_Abort with this bSlot and bSeq (the caller owns tx). */
smc_status ccid_xfer_send_abort(struct ccid_xfer *x, uint8_t slot, uint8_t seq);
/* The command fits dwMaxCCIDMessageLength (logs when it does not). */
int ccid_xfer_fits(const struct ccid_xfer *x, const struct ccid_cmd *cmd);
/* The first deadline and the hard bound of a command sent now. */
void ccid_xfer_bounds(struct ccid_xfer *x, unsigned timeout_ms, uint64_t until,
		      uint64_t *deadline, uint64_t *hard);
/* 6.2.6 time extension: the new deadline, never past hard. */
uint64_t ccid_xfer_extend(struct ccid_xfer *x, unsigned timeout_ms, uint8_t multiplier,
			  uint64_t hard);
/* The answer is of the type cmd_type expects; its data copied to out. */
smc_status ccid_xfer_finish(uint8_t cmd_type, struct ccid_answer *a, uint8_t *out,
			    size_t out_cap);
/* Hex dumps of presence polls belong to the periodic level. */
enum smc_log_level ccid_xfer_dump_level(uint8_t cmd_type);

/* ccid_xfer_dispatch.c: a transaction when busy_max > 1. */
smc_status ccid_xfer_transact_concurrent(struct ccid_xfer *x, const struct ccid_cmd *cmd,
					 unsigned timeout_ms, uint64_t until, uint8_t *out,
					 size_t out_cap, struct ccid_answer *ans);

#endif
