/* PC_to_RDR_Escape (CCID 1.1 6.1.8) on an application's behalf, for
 * FEATURE_CCID_ESC_COMMAND and IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE.
 *
 * An Escape reaches the reader's firmware with bytes only its vendor knows:
 * firmware updates, key loading, switching the reader's mode. So it is sent
 * only when the administrator has allowed it for this reader
 * (CCID_OPTION_ESCAPE_ALLOWED): for every reader with ifdDriverOptions bit 0x01
 * in the bundle's Info.plist, as libccid does with the same bit, or for the
 * readers listed in its smartcrdEscapeReaders key. */
#include "ioctl.h"
#include "smc_log.h"

/* Vendor commands may wait for the user (a key on the reader) or write flash. */
#define CCID_ESCAPE_TIMEOUT_MS 30000u

smc_status ccid_escape(struct smc_ext *ext)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	struct smc_io *io = &ext->io;
	struct ccid_answer a;
	struct ccid_cmd cmd;
	smc_status st;

	if (!ccid_escape_allowed(s->reader)) {
		log_critical("slot %u: control code 0x%08X asks for PC_to_RDR_Escape, which is not allowed "
			     "for this reader: list it in smartcrdEscapeReaders (VVVV:PPPP[:SERIAL]) or "
			     "set bit 0x01 of ifdDriverOptions in Info.plist to allow it",
			     s->index, io->ioctl_code);
		return SMC_ERR_NOT_SUPPORTED;
	}
	ccid_cmd_escape(&cmd, s->index, io->request, io->request_len);
	st = ccid_ioctl_transact(ext, &cmd, CCID_ESCAPE_TIMEOUT_MS, &a);
	if (st != SMC_OK)
		return st;
	if (a.cmd == CCID_CMD_FAILED)
		return ccid_answer_failure(&a, "Escape");
	return SMC_OK;
}
