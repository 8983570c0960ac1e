/* GET_ATTRIBUTE: the SCARD_ATTR_* values smclib answers from the extension alone,
 * without a callback. Tags and formats are pcsc-lite's <reader.h> ones, which equal
 * Windows': DWORDs are 4 bytes in host order (as libccid answers), strings are
 * their bytes and the terminating NUL, presence and interface status one byte. */
#include <string.h>

#include <wintypes.h> /* reader.h uses ULONG without including it */
#include <reader.h>

#include "smc_log.h"
#include "smclib_internal.h"

/* SCARD_ATTR_ICC_PRESENCE values (PC/SC part 3). */
#define PRESENCE_ABSENT 0
#define PRESENCE_PRESENT 1
#define PRESENCE_SWALLOWED 2

/* One attribute value before it is copied out. */
struct attr_value {
	const void *bytes;
	size_t len;
	uint32_t dword;
	uint8_t byte;
};

static void value_dword(struct attr_value *v, uint32_t x)
{
	v->dword = x;
	v->bytes = &v->dword;
	v->len = sizeof(v->dword);
}

static void value_byte(struct attr_value *v, uint8_t x)
{
	v->byte = x;
	v->bytes = &v->byte;
	v->len = 1;
}

/* A fixed-size name field: its bytes up to the NUL, plus the NUL. Empty: no value. */
static smc_status value_string(struct attr_value *v, const char *s, size_t cap, const char *what)
{
	size_t n = strnlen(s, cap - 1);

	if (n == 0) {
		log_info("the reader has no %s", what);
		return SMC_ERR_NOT_SUPPORTED;
	}
	v->bytes = s;
	v->len = n + 1;
	return SMC_OK;
}

static uint8_t icc_presence(enum smc_card_state state)
{
	if (state == SMC_STATE_SWALLOWED)
		return PRESENCE_SWALLOWED;
	return state > SMC_STATE_ABSENT ? PRESENCE_PRESENT : PRESENCE_ABSENT;
}

static smc_status value_atr(struct attr_value *v, const struct smc_ext *ext)
{
	enum smc_card_state state = ext->reader_caps.current_state;
	const struct smc_card_caps *caps = &ext->card_caps;

	if (state < SMC_STATE_POWERED || caps->atr_len == 0 || caps->atr_len > SMC_ATR_MAX) {
		log_info("no ATR to give: card state %s, ATR length %zu", smc_state_str(state),
			 caps->atr_len);
		return SMC_ERR_INVALID_STATE;
	}
	v->bytes = caps->atr;
	v->len = caps->atr_len;
	return SMC_OK;
}

static smc_status vendor_value(const struct smc_ext *ext, uint32_t tag, struct attr_value *v)
{
	const struct smc_vendor_attr *va = &ext->vendor_attr;

	switch (tag) {
	case SCARD_ATTR_VENDOR_NAME:
		return value_string(v, va->vendor_name, sizeof(va->vendor_name), "vendor name");
	case SCARD_ATTR_VENDOR_IFD_TYPE:
		return value_string(v, va->ifd_type, sizeof(va->ifd_type), "IFD type");
	case SCARD_ATTR_VENDOR_IFD_SERIAL_NO:
		return value_string(v, va->serial_no, sizeof(va->serial_no), "serial number");
	case SCARD_ATTR_VENDOR_IFD_VERSION:
		value_dword(v, va->ifd_version);
		return SMC_OK;
	}
	return SMC_ERR_NOT_SUPPORTED;
}

static smc_status reader_value(const struct smc_ext *ext, uint32_t tag, struct attr_value *v)
{
	const struct smc_reader_caps *rc = &ext->reader_caps;

	switch (tag) {
	case SCARD_ATTR_CHANNEL_ID:
		value_dword(v, rc->channel);
		return SMC_OK;
	case SCARD_ATTR_MAXINPUT:
		value_dword(v, rc->max_input);
		return SMC_OK;
	case SCARD_ATTR_ASYNC_PROTOCOL_TYPES:
		value_dword(v, rc->protocols);
		return SMC_OK;
	case SCARD_ATTR_DEFAULT_CLK:
		value_dword(v, rc->clk_default_khz);
		return SMC_OK;
	case SCARD_ATTR_MAX_CLK:
		value_dword(v, rc->clk_max_khz);
		return SMC_OK;
	case SCARD_ATTR_DEFAULT_DATA_RATE:
		value_dword(v, rc->rate_default);
		return SMC_OK;
	case SCARD_ATTR_MAX_DATA_RATE:
		value_dword(v, rc->rate_max);
		return SMC_OK;
	case SCARD_ATTR_MAX_IFSD:
		value_dword(v, rc->max_ifsd);
		return SMC_OK;
	case SCARD_ATTR_ICC_PRESENCE:
		value_byte(v, icc_presence(rc->current_state));
		return SMC_OK;
	case SCARD_ATTR_ICC_INTERFACE_STATUS:
		value_byte(v, rc->current_state >= SMC_STATE_POWERED);
		return SMC_OK;
	}
	return SMC_ERR_NOT_SUPPORTED;
}

/* BWT and CWT are in milliseconds, as card_caps keeps them. */
static smc_status card_value(const struct smc_ext *ext, uint32_t tag, struct attr_value *v)
{
	const struct smc_card_caps *cc = &ext->card_caps;

	switch (tag) {
	case SCARD_ATTR_CURRENT_PROTOCOL_TYPE:
		value_dword(v, cc->selected_protocol);
		return SMC_OK;
	case SCARD_ATTR_ATR_STRING:
		return value_atr(v, ext);
	case SCARD_ATTR_CURRENT_F:
		value_dword(v, cc->fi);
		return SMC_OK;
	case SCARD_ATTR_CURRENT_D:
		value_dword(v, cc->di);
		return SMC_OK;
	case SCARD_ATTR_CURRENT_N:
		value_dword(v, cc->n);
		return SMC_OK;
	case SCARD_ATTR_CURRENT_W:
		value_dword(v, cc->t0.wi);
		return SMC_OK;
	/* the T=1 engine's values once it runs (an S(IFS) may have changed them),
	 * the ATR's before */
	case SCARD_ATTR_CURRENT_IFSC:
		value_dword(v, ext->t1.running ? ext->t1.ifsc : cc->t1.ifsc);
		return SMC_OK;
	case SCARD_ATTR_CURRENT_IFSD:
		value_dword(v, ext->t1.running ? ext->t1.ifsd : cc->t1.ifsd);
		return SMC_OK;
	case SCARD_ATTR_CURRENT_BWT:
		value_dword(v, cc->t1.bwt_ms);
		return SMC_OK;
	case SCARD_ATTR_CURRENT_CWT:
		value_dword(v, cc->t1.cwt_ms);
		return SMC_OK;
	}
	return SMC_ERR_NOT_SUPPORTED;
}

static bool vendor_tag(uint32_t tag)
{
	return tag == SCARD_ATTR_VENDOR_NAME || tag == SCARD_ATTR_VENDOR_IFD_TYPE ||
	       tag == SCARD_ATTR_VENDOR_IFD_SERIAL_NO || tag == SCARD_ATTR_VENDOR_IFD_VERSION;
}

static smc_status attribute_value(const struct smc_ext *ext, uint32_t tag, struct attr_value *v)
{
	smc_status st;

	if (vendor_tag(tag))
		return vendor_value(ext, tag, v);
	st = reader_value(ext, tag, v);
	if (st != SMC_ERR_NOT_SUPPORTED)
		return st;
	st = card_value(ext, tag, v);
	if (st == SMC_ERR_NOT_SUPPORTED)
		log_info("attribute 0x%08X is not supported", tag);
	return st;
}

smc_status smc_attribute_get(const struct smc_ext *ext, uint32_t tag, uint8_t *reply,
			     size_t reply_cap, size_t *value_len)
{
	struct attr_value v = { 0 };
	smc_status st;

	*value_len = 0;
	st = attribute_value(ext, tag, &v);
	if (st != SMC_OK)
		return st;
	*value_len = v.len;
	if (reply == NULL || v.len > reply_cap) {
		log_info("attribute 0x%08X needs %zu bytes, buffer holds %zu", tag, v.len,
			 reply ? reply_cap : 0);
		return SMC_ERR_BUFFER_TOO_SMALL;
	}
	memcpy(reply, v.bytes, v.len);
	return SMC_OK;
}
