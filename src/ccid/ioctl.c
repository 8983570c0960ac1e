/* RDF_IOCTL_VENDOR: the one entry for every control code an application sends
 * through SCardControl (IFDHControl). It only finds who answers the code
 * (ioctl.h lists the numbers); the answers live in features.c, pinpad.c,
 * escape.c and mechanical.c. */
#include <string.h>

#include "ioctl.h"
#include "smc_log.h"

void ccid_reader_set_options(struct ccid_reader *reader, unsigned options)
{
	if (reader == NULL)
		return;
	atomic_store(&reader->options, options);
	log_info("%04X:%04X: driver options 0x%X: Escape from applications %s",
		 reader->tp->info.vendor_id, reader->tp->info.product_id, options,
		 (options & CCID_OPTION_ESCAPE_ALLOWED) ? "allowed" : "refused");
}

bool ccid_escape_allowed(const struct ccid_reader *r)
{
	return (atomic_load(&r->options) & CCID_OPTION_ESCAPE_ALLOWED) != 0;
}

smc_status ccid_ioctl_reply(struct smc_ext *ext, const uint8_t *data, size_t len)
{
	struct smc_io *io = &ext->io;

	io->reply_len = len;
	if (len > io->reply_cap) {
		log_info("slot %u: control code 0x%08X: the answer has %zu bytes, the buffer holds %zu",
			 ccid_slot_of(ext)->index, io->ioctl_code, len, io->reply_cap);
		return SMC_ERR_BUFFER_TOO_SMALL;
	}
	if (len > 0)
		memcpy(io->reply, data, len);
	return SMC_OK;
}

smc_status ccid_ioctl_transact(struct smc_ext *ext, const struct ccid_cmd *cmd, unsigned timeout_ms,
				struct ccid_answer *a)
{
	struct smc_io *io = &ext->io;
	smc_status st = ccid_xfer_transact(&ccid_slot_of(ext)->reader->xfer, cmd, timeout_ms, io->reply,
					   io->reply_cap, a);

	if (st == SMC_ERR_BUFFER_TOO_SMALL)
		io->reply_len = a->hdr.dwLength; /* the size needed, nothing written */
	else if (st == SMC_OK && a->cmd != CCID_CMD_FAILED)
		io->reply_len = a->hdr.dwLength;
	return st;
}

static smc_status mech_accept(struct smc_ext *ext)
{
	return ccid_reader_swallow(ext);
}

static smc_status mech_eject(struct smc_ext *ext)
{
	return ccid_card_eject(ext);
}

static smc_status mech_capture(struct smc_ext *ext)
{
	return ccid_mechanical(ext, CCID_MECH_CAPTURE);
}

static smc_status mech_lock(struct smc_ext *ext)
{
	return ccid_mechanical(ext, CCID_MECH_LOCK);
}

static smc_status mech_unlock(struct smc_ext *ext)
{
	return ccid_mechanical(ext, CCID_MECH_UNLOCK);
}

/* What a code does with the application's input bytes. */
enum input {
	INPUT_USED,
	INPUT_IGNORED,  /* a query: input has no meaning (libccid ignores it too) */
	INPUT_REFUSED,  /* an action without input: bytes there mean a mistaken code */
};

struct control_code {
	uint32_t code;
	const char *name;
	smc_status (*fn)(struct smc_ext *ext);
	enum input input;
};

static const struct control_code control_codes[] = {
	{ CCID_IOCTL_GET_FEATURE_REQUEST, "CM_IOCTL_GET_FEATURE_REQUEST", ccid_feature_list, INPUT_IGNORED },
	{ CCID_IOCTL_GET_FEATURE_REQUEST_WINDOWS, "CM_IOCTL_GET_FEATURE_REQUEST (Windows value)",
	  ccid_feature_list, INPUT_IGNORED },
	{ CCID_IOCTL_FEATURE(PART10_FEATURE_VERIFY_PIN_DIRECT), "FEATURE_VERIFY_PIN_DIRECT",
	  ccid_pin_verify, INPUT_USED },
	{ CCID_IOCTL_FEATURE(PART10_FEATURE_MODIFY_PIN_DIRECT), "FEATURE_MODIFY_PIN_DIRECT",
	  ccid_pin_modify, INPUT_USED },
	{ CCID_IOCTL_FEATURE(PART10_FEATURE_IFD_PIN_PROPERTIES), "FEATURE_IFD_PIN_PROPERTIES",
	  ccid_pin_properties, INPUT_IGNORED },
	{ CCID_IOCTL_FEATURE(PART10_FEATURE_GET_TLV_PROPERTIES), "FEATURE_GET_TLV_PROPERTIES",
	  ccid_tlv_properties, INPUT_IGNORED },
	{ CCID_IOCTL_FEATURE(PART10_FEATURE_CCID_ESC_COMMAND), "FEATURE_CCID_ESC_COMMAND", ccid_escape,
	  INPUT_USED },
	{ CCID_IOCTL_VENDOR_IFD_EXCHANGE, "IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE", ccid_escape, INPUT_USED },
	{ CCID_IOCTL_MECHANICAL(CCID_MECH_ACCEPT), "mechanical accept (swallow)", mech_accept, INPUT_REFUSED },
	{ CCID_IOCTL_MECHANICAL(CCID_MECH_EJECT), "mechanical eject", mech_eject, INPUT_REFUSED },
	{ CCID_IOCTL_MECHANICAL(CCID_MECH_CAPTURE), "mechanical capture", mech_capture, INPUT_REFUSED },
	{ CCID_IOCTL_MECHANICAL(CCID_MECH_LOCK), "mechanical lock", mech_lock, INPUT_REFUSED },
	{ CCID_IOCTL_MECHANICAL(CCID_MECH_UNLOCK), "mechanical unlock", mech_unlock, INPUT_REFUSED },
};

static const struct control_code *find_code(uint32_t code)
{
	for (size_t i = 0; i < sizeof(control_codes) / sizeof(control_codes[0]); i++) {
		if (control_codes[i].code == code)
			return &control_codes[i];
	}
	return NULL;
}

smc_status ccid_ioctl_vendor(struct smc_ext *ext)
{
	struct smc_io *io = &ext->io;
	unsigned slot = ccid_slot_of(ext)->index;
	const struct control_code *c = find_code(io->ioctl_code);

	io->reply_len = 0;
	if (c == NULL) {
		log_info("slot %u: control code 0x%08X is none this driver knows", slot, io->ioctl_code);
		return SMC_ERR_NOT_SUPPORTED;
	}
	if (c->input == INPUT_REFUSED && io->request_len > 0) {
		log_critical("slot %u: %s (0x%08X) takes no input, got %zu bytes: refused", slot, c->name,
			     io->ioctl_code, io->request_len);
		return SMC_ERR_INVALID_PARAM;
	}
	if (c->input == INPUT_IGNORED && io->request_len > 0)
		log_info("slot %u: %s takes no input; %zu bytes ignored", slot, c->name, io->request_len);
	log_info("slot %u: %s (0x%08X), %zu bytes in, room for %zu out", slot, c->name, io->ioctl_code,
		 io->request_len, io->reply_cap);
	return c->fn(ext);
}
