/* Opening a CCID reader with libusb-1.0: find the device pcscd named, its CCID
 * interface and that interface's endpoints, claim it, and describe it in
 * struct tp_info. The transfers themselves are in usb_io.c.
 *
 * Nothing about endpoint numbers is assumed: they come from the descriptors
 * (dummy_hcd and gadget stacks renumber them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smc_log.h"
#include "usb_priv.h"

#define USB_CLASS_CCID 0x0B   /* CCID 1.1 section 4.2: bInterfaceClass */
#define USB_CLASS_VENDOR 0xFF /* pre-standard readers with a CCID descriptor */
#define CCID_DESC_TYPE 0x21   /* CCID 1.1 section 5.1: bDescriptorType */

/* ---- open: descriptors ---------------------------------------------------- */

/* Walk a run of descriptors (each bLength, bDescriptorType, ...) for the CCID
 * class descriptor. A truncated one is returned with the bytes that exist; the
 * CCID layer refuses it if it is short. */
static int find_class_desc(const unsigned char *extra, int extra_len, const uint8_t **desc,
			   size_t *desc_len)
{
	size_t off = 0, len = extra_len > 0 ? (size_t)extra_len : 0;

	if (extra == NULL)
		return 0;
	while (len - off >= 2) {
		uint8_t b_length = extra[off];

		if (b_length < 2)
			return 0; /* malformed: cannot step over it */
		if (extra[off + 1] == CCID_DESC_TYPE) {
			*desc = extra + off;
			*desc_len = b_length < len - off ? b_length : len - off;
			return 1;
		}
		if (b_length >= len - off)
			return 0;
		off += b_length;
	}
	return 0;
}

/* The class descriptor follows the interface descriptor; some readers put it
 * after their last endpoint descriptor instead (libusb then files it as that
 * endpoint's extra bytes). */
static int class_desc_of(const struct libusb_interface_descriptor *alt, const uint8_t **desc,
			 size_t *desc_len)
{
	const struct libusb_endpoint_descriptor *last;

	if (find_class_desc(alt->extra, alt->extra_length, desc, desc_len))
		return 1;
	if (alt->bNumEndpoints == 0 || alt->endpoint == NULL)
		return 0;
	last = &alt->endpoint[alt->bNumEndpoints - 1];
	if (!find_class_desc(last->extra, last->extra_length, desc, desc_len))
		return 0;
	log_info("interface %u: CCID descriptor found after the last endpoint (reader quirk)",
		 alt->bInterfaceNumber);
	return 1;
}

enum iface_kind { IFACE_OTHER, IFACE_CCID, IFACE_CCID_NO_DESC };

static enum iface_kind classify(const struct libusb_interface_descriptor *alt,
				const uint8_t **desc, size_t *desc_len)
{
	int found = class_desc_of(alt, desc, desc_len);

	if (alt->bInterfaceClass == USB_CLASS_CCID)
		return found ? IFACE_CCID : IFACE_CCID_NO_DESC;
	/* Vendor class: only with a complete 54-byte CCID descriptor. */
	if (alt->bInterfaceClass == USB_CLASS_VENDOR && found && *desc_len == TP_CLASS_DESC_LEN &&
	    (*desc)[0] == TP_CLASS_DESC_LEN)
		return IFACE_CCID;
	return IFACE_OTHER;
}

/* The numbered interface (wanted >= 0) if it is a CCID one, else the first
 * CCID interface. Alternate setting 0 is the one in use after claiming. */
static tp_status pick_interface(const struct libusb_config_descriptor *cfg, int wanted,
				const char *dev, const struct libusb_interface_descriptor **out,
				const uint8_t **desc, size_t *desc_len)
{
	for (int i = 0; i < cfg->bNumInterfaces; i++) {
		const struct libusb_interface *itf = &cfg->interface[i];
		const struct libusb_interface_descriptor *alt;
		enum iface_kind kind;

		if (itf->num_altsetting < 1 || itf->altsetting == NULL)
			continue;
		alt = &itf->altsetting[0];
		if (wanted >= 0 && alt->bInterfaceNumber != wanted)
			continue;
		kind = classify(alt, desc, desc_len);
		if (kind == IFACE_CCID) {
			*out = alt;
			return TP_OK;
		}
		if (kind == IFACE_CCID_NO_DESC)
			log_critical("%s interface %u: CCID class but no CCID class descriptor", dev,
				     alt->bInterfaceNumber);
		else if (wanted >= 0)
			/* pcscd tries every interface of a composite device: normal */
			log_info("%s interface %u is not a CCID interface (class 0x%02X)", dev,
				 alt->bInterfaceNumber, alt->bInterfaceClass);
		if (wanted >= 0)
			return TP_INVALID;
	}
	if (wanted >= 0)
		log_critical("%s has no interface %d", dev, wanted);
	else
		log_critical("%s has no CCID interface", dev);
	return TP_INVALID;
}

/* wMaxPacketSize: bits 10..0 size, bits 12..11 extra transactions per
 * microframe for high-bandwidth periodic endpoints (USB 2.0 section 9.6.6). */
static unsigned packet_bytes(uint16_t w, int periodic)
{
	unsigned size = w & 0x7FF;

	return periodic ? size * (1 + ((w >> 11) & 3)) : size;
}

static tp_status pick_endpoints(struct usb_priv *p, const struct libusb_interface_descriptor *alt,
				const char *dev, struct tp_info *info)
{
	int bulk_in = 0, bulk_out = 0, intr_in = 0;

	for (int i = 0; i < alt->bNumEndpoints && alt->endpoint != NULL; i++) {
		const struct libusb_endpoint_descriptor *ep = &alt->endpoint[i];
		int type = ep->bmAttributes & LIBUSB_TRANSFER_TYPE_MASK;
		int in = (ep->bEndpointAddress & LIBUSB_ENDPOINT_DIR_MASK) == LIBUSB_ENDPOINT_IN;

		if (type == LIBUSB_TRANSFER_TYPE_BULK && in && !bulk_in) {
			bulk_in = 1;
			p->ep_bulk_in = ep->bEndpointAddress;
			info->bulk_in_packet = (uint16_t)packet_bytes(ep->wMaxPacketSize, 0);
		} else if (type == LIBUSB_TRANSFER_TYPE_BULK && !in && !bulk_out) {
			bulk_out = 1;
			p->ep_bulk_out = ep->bEndpointAddress;
		} else if (type == LIBUSB_TRANSFER_TYPE_INTERRUPT && in && !intr_in) {
			unsigned n = packet_bytes(ep->wMaxPacketSize, 1);

			if (n == 0 || n > INTR_BUF_MAX) {
				log_critical("%s: interrupt IN endpoint 0x%02X with wMaxPacketSize 0x%04X: not used",
					     dev, ep->bEndpointAddress, ep->wMaxPacketSize);
				continue;
			}
			intr_in = 1;
			p->ep_intr_in = ep->bEndpointAddress;
			/* One packet per transfer: CCID interrupt messages fit in one
			 * (NotifySlotChange is 1 + slots/4 bytes), and a transfer that
			 * asked for more would wait past a message of exactly one packet. */
			p->intr_packet = (uint16_t)n;
		}
	}
	if (!bulk_in || !bulk_out) {
		log_critical("%s interface %u lacks a bulk %s endpoint", dev, alt->bInterfaceNumber,
			     bulk_in ? "OUT" : "IN");
		return TP_INVALID;
	}
	if (info->bulk_in_packet == 0) {
		log_critical("%s: bulk IN endpoint 0x%02X has wMaxPacketSize 0", dev, p->ep_bulk_in);
		return TP_INVALID;
	}
	info->has_interrupt = intr_in;
	return TP_OK;
}

/* Interface, class descriptor and endpoints from the active configuration. */
static tp_status read_descriptors(struct usb_priv *p, libusb_device *dev, int wanted,
				  const char *name, struct tp_info *info)
{
	struct libusb_config_descriptor *cfg = NULL;
	const struct libusb_interface_descriptor *alt = NULL;
	const uint8_t *desc = NULL;
	size_t desc_len = 0;
	tp_status st;
	int r = libusb_get_active_config_descriptor(dev, &cfg);

	if (r < 0) {
		log_critical("%s: cannot read the configuration descriptor: %s", name,
			     libusb_strerror(r));
		return r == LIBUSB_ERROR_NO_DEVICE ? TP_NO_DEVICE : TP_IO_ERROR;
	}
	st = pick_interface(cfg, wanted, name, &alt, &desc, &desc_len);
	if (st == TP_OK)
		st = pick_endpoints(p, alt, name, info);
	if (st == TP_OK) {
		p->iface = alt->bInterfaceNumber;
		info->interface_number = alt->bInterfaceNumber;
		info->class_desc_len = desc_len < TP_CLASS_DESC_LEN ? desc_len : TP_CLASS_DESC_LEN;
		memcpy(info->class_desc, desc, info->class_desc_len);
		if (desc_len != TP_CLASS_DESC_LEN)
			log_info("%s: CCID descriptor has %zu bytes, not %d", name, desc_len,
				 TP_CLASS_DESC_LEN);
	}
	libusb_free_config_descriptor(cfg);
	return st;
}

/* A string descriptor as printable ASCII, empty if absent or unreadable. */
static void read_string(libusb_device_handle *h, uint8_t index, char *out, const char *what,
			const char *name)
{
	int r;

	out[0] = '\0';
	if (index == 0)
		return;
	r = libusb_get_string_descriptor_ascii(h, index, (unsigned char *)out, TP_STRING_MAX);
	if (r < 0) {
		log_info("%s: cannot read the %s string: %s", name, what, libusb_strerror(r));
		out[0] = '\0';
		return;
	}
	if (r >= TP_STRING_MAX)
		r = TP_STRING_MAX - 1;
	out[r] = '\0';
	/* libusb turns non-ASCII into '?'; do the same for control characters,
	 * which would otherwise land in logs and reader names. */
	for (int i = 0; i < r; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7F)
			out[i] = '?';
}

/* ---- open: the device ----------------------------------------------------- */

static tp_status open_and_claim(struct usb_priv *p, libusb_device *dev, const char *name)
{
	int r = libusb_open(dev, &p->handle);

	if (r == LIBUSB_ERROR_ACCESS) {
		log_critical("%s: permission denied opening the device (udev rules?)", name);
		return TP_IO_ERROR;
	}
	if (r < 0) {
		log_critical("%s: cannot open the device: %s", name, libusb_strerror(r));
		return r == LIBUSB_ERROR_NO_DEVICE ? TP_NO_DEVICE : TP_IO_ERROR;
	}
	r = libusb_claim_interface(p->handle, p->iface);
	if (r == 0)
		return TP_OK;
	if (r == LIBUSB_ERROR_BUSY)
		log_critical("%s: interface %u is busy: claimed by another program or a kernel driver",
			     name, p->iface);
	else
		log_critical("%s: cannot claim interface %u: %s", name, p->iface,
			     libusb_strerror(r));
	libusb_close(p->handle);
	p->handle = NULL;
	return r == LIBUSB_ERROR_NO_DEVICE ? TP_NO_DEVICE : TP_IO_ERROR;
}

static tp_status open_candidate(struct usb_priv *p, libusb_device *dev,
				const struct libusb_device_descriptor *dd, int wanted_iface,
				struct tp_info *info)
{
	char name[48];
	tp_status st;

	snprintf(name, sizeof(name), "%04x:%04x at bus %u address %u", dd->idVendor,
		 dd->idProduct, libusb_get_bus_number(dev), libusb_get_device_address(dev));
	memset(info, 0, sizeof(*info));
	st = read_descriptors(p, dev, wanted_iface, name, info);
	if (st == TP_OK)
		st = open_and_claim(p, dev, name);
	if (st != TP_OK)
		return st;
	info->vendor_id = dd->idVendor;
	info->product_id = dd->idProduct;
	info->bcd_device = dd->bcdDevice;
	info->bus = libusb_get_bus_number(dev);
	info->address = libusb_get_device_address(dev);
	read_string(p->handle, dd->iManufacturer, info->manufacturer, "manufacturer", name);
	read_string(p->handle, dd->iProduct, info->product, "product", name);
	read_string(p->handle, dd->iSerialNumber, info->serial, "serial number", name);
	snprintf(p->where, sizeof(p->where), "%04x:%04x bus %u address %u interface %u",
		 info->vendor_id, info->product_id, info->bus, info->address, p->iface);
	return TP_OK;
}

/* By bus and address when the name gives them (then VID/PID must match),
 * else the first device with the VID/PID that opens. */
static tp_status find_and_open(struct usb_priv *p, const struct usb_devname *n,
			       struct tp_info *info)
{
	libusb_device **list;
	ssize_t count = libusb_get_device_list(p->ctx, &list);
	tp_status st = TP_NO_DEVICE;
	int seen = 0;

	if (count < 0) {
		log_critical("cannot list USB devices: %s", libusb_strerror((int)count));
		return TP_IO_ERROR;
	}
	for (ssize_t i = 0; i < count; i++) {
		libusb_device *dev = list[i];
		struct libusb_device_descriptor dd;

		if (n->bus >= 0 && (libusb_get_bus_number(dev) != n->bus ||
				    libusb_get_device_address(dev) != n->address))
			continue;
		if (libusb_get_device_descriptor(dev, &dd) < 0)
			continue;
		if (dd.idVendor != n->vendor_id || dd.idProduct != n->product_id) {
			if (n->bus < 0)
				continue;
			log_critical("device at bus %d address %d is %04x:%04x, not %04x:%04x",
				     n->bus, n->address, dd.idVendor, dd.idProduct, n->vendor_id,
				     n->product_id);
			seen = 1;
			break;
		}
		seen = 1;
		st = open_candidate(p, dev, &dd, n->interface_number, info);
		if (st == TP_OK || n->bus >= 0)
			break;
	}
	if (!seen) {
		if (n->bus >= 0)
			log_critical("no USB device %04x:%04x at bus %d address %d", n->vendor_id,
				     n->product_id, n->bus, n->address);
		else
			log_critical("no USB device %04x:%04x", n->vendor_id, n->product_id);
	}
	libusb_free_device_list(list, 1);
	return st;
}

static void log_found(const struct ccid_transport *tp, const struct usb_priv *p)
{
	const struct tp_info *i = &tp->info;

	log_info("found %s \"%s\" \"%s\" serial \"%s\" bcdDevice %04x", p->where, i->manufacturer,
		 i->product, i->serial, i->bcd_device);
	if (i->has_interrupt)
		log_info("%s: bulk IN 0x%02X (%u bytes), bulk OUT 0x%02X, interrupt IN 0x%02X (%u bytes)",
			 p->where, p->ep_bulk_in, i->bulk_in_packet, p->ep_bulk_out, p->ep_intr_in,
			 p->intr_packet);
	else
		log_info("%s: bulk IN 0x%02X (%u bytes), bulk OUT 0x%02X, no interrupt IN", p->where,
			 p->ep_bulk_in, i->bulk_in_packet, p->ep_bulk_out);
	log_hex("CCID class descriptor", i->class_desc, i->class_desc_len);
}

tp_status usb_transport_open(const char *device_name, struct ccid_transport **out)
{
	struct usb_devname n;
	struct ccid_transport *tp;
	struct usb_priv *p;
	tp_status st;
	int r;

	if (out == NULL) {
		log_critical("no place for the transport");
		return TP_INVALID;
	}
	*out = NULL;
	if (usb_devname_parse(device_name, &n) < 0)
		return TP_INVALID; /* the parser said what was wrong */

	tp = calloc(1, sizeof(*tp));
	p = calloc(1, sizeof(*p));
	if (tp == NULL || p == NULL) {
		log_critical("out of memory opening %s", device_name);
		st = TP_NO_MEMORY;
		goto fail_alloc;
	}
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		log_critical("cannot create a mutex for %s", device_name);
		st = TP_NO_MEMORY;
		goto fail_alloc;
	}
	p->intr = libusb_alloc_transfer(0);
	if (p->intr == NULL) {
		log_critical("out of memory opening %s", device_name);
		st = TP_NO_MEMORY;
		goto fail_mutex;
	}
	r = libusb_init(&p->ctx);
	if (r < 0) {
		log_critical("libusb_init failed: %s", libusb_strerror(r));
		st = r == LIBUSB_ERROR_NO_MEM ? TP_NO_MEMORY : TP_IO_ERROR;
		goto fail_transfer;
	}
	st = find_and_open(p, &n, &tp->info);
	if (st != TP_OK)
		goto fail_ctx;

	tp->ops = &usb_ops;
	tp->priv = p;
	log_found(tp, p);
	*out = tp;
	return TP_OK;

fail_ctx:
	libusb_exit(p->ctx);
fail_transfer:
	libusb_free_transfer(p->intr);
fail_mutex:
	pthread_mutex_destroy(&p->lock);
fail_alloc:
	free(p);
	free(tp);
	return st;
}
