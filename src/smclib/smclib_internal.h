/* Internal to smclib: helpers shared between its files, not part of the contract. */
#ifndef SMCLIB_INTERNAL_H
#define SMCLIB_INTERNAL_H

#include "smclib.h"

/* Clock assumed when the reader did not say (ISO 7816-3 cards run at 1..5 MHz;
 * 4 MHz is what nearly every CCID reader uses by default). */
#define SMC_DEFAULT_CLK_KHZ 4000u

/* ISO 7816-3 Table 7 (Fi, fmax in kHz: high nibble) and Table 8 (Di: low nibble)
 * looked up by a TA1 or PPS1 byte; 0 for an RFU code. smc_fidi_valid() says
 * both codes are defined. The tables live in atr.c. */
unsigned smc_fi_of(uint8_t fidi);
unsigned smc_fmax_khz_of(uint8_t fidi);
unsigned smc_di_of(uint8_t fidi);
bool smc_fidi_valid(uint8_t fidi);

/* Words for logs: "none", "T=0", "T=1", "T=0|T=1" (or "other" for unknown bits). */
const char *smc_protocol_str(uint32_t mask);

/* Work out t0.wt_ms, t1.bwt_ms and t1.cwt_ms from Fi, Di, WI, BWI, CWI at clk_khz
 * (0: SMC_DEFAULT_CLK_KHZ). Done by smc_atr_parse at the default clock and again by
 * smc_update_card_capabilities at the reader's clock. */
void smc_card_caps_timing(struct smc_card_caps *caps, uint32_t clk_khz);

/* GET_ATTRIBUTE: the value of tag, answered from the extension alone.
 * Sets *value_len to the size needed even when returning BUFFER_TOO_SMALL. */
smc_status smc_attribute_get(const struct smc_ext *ext, uint32_t tag, uint8_t *reply,
			     size_t reply_cap, size_t *value_len);

/* Card tracking (tracking.c): SMC_REQ_WAIT_CHANGE (timeout in ms) and
 * SMC_REQ_CANCEL_WAIT, which smc_device_control hands over before it takes
 * the slot lock. */
smc_status smc_tracking_wait(struct smc_ext *ext, uint32_t timeout_ms);
smc_status smc_tracking_cancel(struct smc_ext *ext);
/* The first step of a wait (dispatch.c), under the slot lock: *holds when the
 * extension already shows the change; else the driver arms tracking. */
smc_status smc_tracking_arm(struct smc_ext *ext, bool *holds);

#endif
