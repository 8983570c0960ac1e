/* Words for smclib's status codes, card states and protocol masks, for logs. */
#include "smclib_internal.h"

const char *smc_status_str(smc_status st)
{
	switch (st) {
	case SMC_OK:
		return "success";
	case SMC_ERR_NOT_SUPPORTED:
		return "not supported";
	case SMC_ERR_INVALID_PARAM:
		return "invalid parameter";
	case SMC_ERR_NO_MEDIA:
		return "no card in the slot";
	case SMC_ERR_INVALID_STATE:
		return "card state does not allow the request";
	case SMC_ERR_PROTOCOL:
		return "protocol not offered or not selected";
	case SMC_ERR_BAD_ATR:
		return "malformed ATR";
	case SMC_ERR_COMM:
		return "communication error";
	case SMC_ERR_TIMEOUT:
		return "timeout";
	case SMC_ERR_NO_DEVICE:
		return "reader is gone";
	case SMC_ERR_BUFFER_TOO_SMALL:
		return "buffer too small";
	case SMC_ERR_POWER:
		return "card did not answer to reset";
	case SMC_ERR_CANCELLED:
		return "cancelled";
	case SMC_ERR_NO_MEMORY:
		return "out of memory";
	case SMC_MORE_PROCESSING:
		return "more processing required";
	}
	return "unknown status";
}

const char *smc_state_str(enum smc_card_state state)
{
	switch (state) {
	case SMC_STATE_UNKNOWN:
		return "UNKNOWN";
	case SMC_STATE_ABSENT:
		return "ABSENT";
	case SMC_STATE_PRESENT:
		return "PRESENT";
	case SMC_STATE_SWALLOWED:
		return "SWALLOWED";
	case SMC_STATE_POWERED:
		return "POWERED";
	case SMC_STATE_NEGOTIABLE:
		return "NEGOTIABLE";
	case SMC_STATE_SPECIFIC:
		return "SPECIFIC";
	}
	return "invalid state";
}

const char *smc_protocol_str(uint32_t mask)
{
	switch (mask) {
	case 0:
		return "none";
	case SMC_PROTOCOL_T0:
		return "T=0";
	case SMC_PROTOCOL_T1:
		return "T=1";
	case SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1:
		return "T=0|T=1";
	}
	return "other";
}
