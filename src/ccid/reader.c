/* Opening and closing a CCID reader: the class descriptor decides what the
 * reader can do, and each slot gets an smclib extension with the CCID callbacks. */
#include <stdlib.h>
#include <string.h>

#include "ccid_reader.h"
#include "smc_log.h"

/* SCARD_READER_TYPE_USB */
#define READER_TYPE_USB 0x4u
/* SCARD_ATTR_CHANNEL_ID: DWORD 0xDDDDCCCC, DDDD 0x0020 for USB, CCCC bus and address */
#define CHANNEL_TYPE_USB 0x0020u

/* Extended APDUs pass at extended APDU level, and below APDU level over T=1,
 * whose blocks chain any length (over T=0 they are refused per APDU). */
static uint32_t max_input(const struct ccid_descriptor *d)
{
	bool t1_blocks = (d->level == CCID_LEVEL_TPDU || d->level == CCID_LEVEL_CHARACTER) &&
			 (d->dwProtocols & SMC_PROTOCOL_T1);

	if (d->level == CCID_LEVEL_EXTENDED_APDU || t1_blocks)
		return CCID_EXTENDED_APDU_MAX;
	return CCID_SHORT_APDU_MAX;
}

/* A USB string into a smaller field: cut to fit, always terminated, and safe
 * even if the transport left the source unterminated. */
static void copy_name(char *dst, size_t cap, const char src[TP_STRING_MAX])
{
	size_t n = strnlen(src, TP_STRING_MAX);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void fill_vendor_attr(struct smc_vendor_attr *va, const struct tp_info *info)
{
	copy_name(va->vendor_name, sizeof(va->vendor_name), info->manufacturer);
	copy_name(va->ifd_type, sizeof(va->ifd_type), info->product);
	copy_name(va->serial_no, sizeof(va->serial_no), info->serial);
	/* bcdDevice 0xMMmm becomes 0xMMmm0000 (major, minor, build 0) */
	va->ifd_version = (uint32_t)info->bcd_device << 16;
}

static void fill_reader_caps(struct smc_reader_caps *rc, const struct ccid_descriptor *d,
			     const struct tp_info *info)
{
	rc->protocols = d->dwProtocols & (SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1);
	rc->reader_type = READER_TYPE_USB;
	rc->mechanical = d->dwMechanical;
	rc->channel = CHANNEL_TYPE_USB << 16 | (uint32_t)info->bus << 8 | info->address;
	rc->clk_default_khz = d->dwDefaultClock;
	rc->clk_max_khz = d->dwMaximumClock;
	rc->rate_default = d->dwDataRate;
	rc->rate_max = d->dwMaxDataRate;
	rc->max_ifsd = d->dwMaxIFSD;
	rc->max_input = max_input(d);
	rc->card_events = info->has_interrupt != 0; /* events.c reads its interrupt pipe */
}

static smc_status setup_slot(struct ccid_reader *r, unsigned i)
{
	struct smc_ext *ext = &r->slots[i];
	smc_status st = smc_ext_init(ext);

	if (st != SMC_OK)
		return st;
	r->slot_priv[i].reader = r;
	r->slot_priv[i].index = (uint8_t)i;
	fill_vendor_attr(&ext->vendor_attr, &r->tp->info);
	fill_reader_caps(&ext->reader_caps, &r->desc, &r->tp->info);
	ext->reader_fn[RDF_CARD_POWER] = ccid_card_power;
	ext->reader_fn[RDF_TRANSMIT] = ccid_transmit;
	ext->reader_fn[RDF_SET_PROTOCOL] = ccid_set_protocol;
	ext->reader_fn[RDF_CARD_TRACKING] = ccid_card_tracking;
	ext->reader_fn[RDF_CARD_EJECT] = ccid_card_eject;
	ext->reader_fn[RDF_READER_SWALLOW] = ccid_reader_swallow;
	ext->reader_fn[RDF_IOCTL_VENDOR] = ccid_ioctl_vendor;
	ext->reader_ext = &r->slot_priv[i];
	return SMC_OK;
}

/* What this driver can run today; the rest is refused with a clear reason. */
static smc_status check_supported(const struct ccid_descriptor *d)
{
	if ((d->dwProtocols & (SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1)) == 0) {
		log_critical("reader offers neither T=0 nor T=1 (dwProtocols 0x%08X): not supported",
			     d->dwProtocols);
		return SMC_ERR_NOT_SUPPORTED;
	}
	return SMC_OK;
}

static smc_status open_reader(struct ccid_reader *r)
{
	const struct tp_info *info = &r->tp->info;
	smc_status st;

	log_info("opening %.*s %.*s (%04X:%04X, bcdDevice %04X, bus %u address %u)",
		 TP_STRING_MAX, info->manufacturer, TP_STRING_MAX, info->product,
		 info->vendor_id, info->product_id,
		 info->bcd_device, info->bus, info->address);
	st = ccid_descriptor_parse(info->class_desc, info->class_desc_len, &r->desc);
	if (st != SMC_OK)
		return st;
	ccid_descriptor_log(&r->desc);
	st = check_supported(&r->desc);
	if (st != SMC_OK)
		return st;
	st = ccid_xfer_init(&r->xfer, r->tp, r->desc.max_msg_len);
	if (st != SMC_OK)
		return st;
	/* 5.1: bMaxCCIDBusySlots slots may run commands at once (0 in CCID 1.0) */
	ccid_xfer_set_busy_slots(&r->xfer, r->desc.bMaxCCIDBusySlots < r->desc.n_slots
						   ? r->desc.bMaxCCIDBusySlots : r->desc.n_slots);
	r->slots = calloc(r->desc.n_slots, sizeof(*r->slots));
	r->slot_priv = calloc(r->desc.n_slots, sizeof(*r->slot_priv));
	if (r->slots == NULL || r->slot_priv == NULL) {
		log_critical("out of memory for %u slots", r->desc.n_slots);
		return SMC_ERR_NO_MEMORY;
	}
	for (unsigned i = 0; i < r->desc.n_slots; i++) {
		st = setup_slot(r, i);
		if (st != SMC_OK)
			return st;
		r->n_slots = i + 1;
	}
	ccid_speed_open(r);
	return SMC_OK;
}

smc_status ccid_reader_open(struct ccid_transport *tp, struct ccid_reader **out)
{
	struct ccid_reader *r;
	smc_status st;

	if (out != NULL)
		*out = NULL;
	if (tp == NULL || out == NULL) {
		log_critical("no transport or no place for the reader");
		if (tp != NULL)
			tp->ops->close(tp);
		return SMC_ERR_INVALID_PARAM;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		log_critical("out of memory for a reader");
		tp->ops->close(tp);
		return SMC_ERR_NO_MEMORY;
	}
	r->tp = tp;
	st = ccid_events_init(r);
	if (st == SMC_OK)
		st = open_reader(r);
	if (st != SMC_OK) {
		ccid_reader_close(r);
		return st;
	}
	*out = r;
	return SMC_OK;
}

unsigned ccid_reader_slot_count(const struct ccid_reader *reader)
{
	return reader ? reader->n_slots : 0;
}

unsigned ccid_reader_busy_slots(const struct ccid_reader *reader)
{
	return reader ? ccid_xfer_busy_slots(&reader->xfer) : 0;
}

struct smc_ext *ccid_reader_slot(struct ccid_reader *reader, unsigned slot)
{
	if (reader == NULL || slot >= reader->n_slots)
		return NULL;
	return &reader->slots[slot];
}

int ccid_reader_is_gone(const struct ccid_reader *reader)
{
	if (reader == NULL)
		return 0;
	return (reader->xfer.rx != NULL && ccid_xfer_is_gone(&reader->xfer)) || ccid_events_gone(reader);
}

void ccid_reader_close(struct ccid_reader *reader)
{
	if (reader == NULL)
		return;
	ccid_events_shutdown(reader); /* tracking waits end, the event thread is joined */
	for (unsigned i = 0; i < reader->n_slots; i++)
		smc_ext_destroy(&reader->slots[i]);
	free(reader->slots);
	free(reader->slot_priv);
	ccid_xfer_destroy(&reader->xfer);
	if (reader->tp != NULL)
		reader->tp->ops->close(reader->tp);
	free(reader);
}
