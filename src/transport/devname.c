/* pcscd's device names, parsed strictly.
 *
 * pcscd builds the name it passes to IFDHCreateChannelByName with
 *   libudev:    "usb:%04x/%04x:libudev:%d:%s"  (bInterfaceNumber, devnode)
 *               devnode = "/dev/bus/usb/BBB/DDD" (bus and address, %03d)
 *   libusb-1.0: "usb:%04x/%04x:libusb-1.0:%d:%d:%d" (bus, address, interface)
 * and reader.conf gives a bare "usb:%04x/%04x". Every field is checked for
 * its digits, width and range; anything else (trailing bytes, missing parts,
 * signs, spaces, another scheme) is refused with a log line naming the field.
 * The name is never read beyond DEVNAME_MAX + 1 bytes, so an unterminated or
 * hostile string cannot make us run off its end. */
#include <string.h>

#include "ccid_transport.h"
#include "smc_log.h"

/* pcscd's names are well under 100 bytes; anything longer is not one of them. */
#define DEVNAME_MAX 512

/* USB 2.0 section 9.4.6: addresses are 1..127 (0 is the default address,
 * which no configured device keeps). Bus numbers and interface numbers are
 * bytes. Decimal fields take at most three digits ("%03d" or "%d" of a byte). */
#define BUS_MAX 255
#define ADDRESS_MIN 1
#define ADDRESS_MAX 127
#define IFACE_MAX 255
#define DEC_DIGITS_MAX 3

struct cursor {
	const char *p;
	const char *end;
	const char *field; /* what the last read tried to read, for the log */
	int literal;       /* field is a literal that was expected */
};

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly four hexadecimal digits (pcscd prints them with %04x). */
static int read_hex4(struct cursor *c, const char *field, uint16_t *out)
{
	unsigned v = 0;

	c->field = field;
	c->literal = 0;
	if (c->end - c->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int d = hex_value(c->p[i]);

		if (d < 0)
			return -1;
		v = v << 4 | (unsigned)d;
	}
	c->p += 4;
	*out = (uint16_t)v;
	return 0;
}

/* One to three decimal digits (leading zeros allowed), value in [min, max].
 * A fourth digit makes the field overlong rather than a bigger number. */
static int read_dec(struct cursor *c, const char *field, int min, int max, int *out)
{
	int v = 0, n = 0;

	c->field = field;
	c->literal = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if (n == DEC_DIGITS_MAX)
			return -1;
		v = v * 10 + (*c->p - '0');
		c->p++;
		n++;
	}
	if (n == 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int expect(struct cursor *c, const char *lit)
{
	size_t n = strlen(lit);

	c->field = lit;
	c->literal = 1;
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return -1;
	c->p += n;
	return 0;
}

static int at(const struct cursor *c, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(c->end - c->p) >= n && memcmp(c->p, lit, n) == 0;
}

/* IFACE:/dev/bus/usb/BBB/DDD */
static int parse_libudev(struct cursor *c, struct usb_devname *d)
{
	if (read_dec(c, "interface number", 0, IFACE_MAX, &d->interface_number) < 0 ||
	    expect(c, ":/dev/bus/usb/") < 0 ||
	    read_dec(c, "bus number", 0, BUS_MAX, &d->bus) < 0 || expect(c, "/") < 0 ||
	    read_dec(c, "device address", ADDRESS_MIN, ADDRESS_MAX, &d->address) < 0)
		return -1;
	return 0;
}

/* BUS:ADDR:IFACE, all %d */
static int parse_libusb(struct cursor *c, struct usb_devname *d)
{
	if (read_dec(c, "bus number", 0, BUS_MAX, &d->bus) < 0 || expect(c, ":") < 0 ||
	    read_dec(c, "device address", ADDRESS_MIN, ADDRESS_MAX, &d->address) < 0 ||
	    expect(c, ":") < 0 ||
	    read_dec(c, "interface number", 0, IFACE_MAX, &d->interface_number) < 0)
		return -1;
	return 0;
}

static int parse(struct cursor *c, struct usb_devname *d)
{
	if (expect(c, "usb:") < 0 || read_hex4(c, "vendor id", &d->vendor_id) < 0 ||
	    expect(c, "/") < 0 || read_hex4(c, "product id", &d->product_id) < 0)
		return -1;
	if (c->p == c->end)
		return 0; /* bare reader.conf form */

	if (expect(c, ":") < 0)
		return -1;
	c->field = "scheme (libudev: or libusb-1.0:)";
	c->literal = 0;
	if (at(c, "libudev:")) {
		c->p += strlen("libudev:");
		if (parse_libudev(c, d) < 0)
			return -1;
	} else if (at(c, "libusb-1.0:")) {
		c->p += strlen("libusb-1.0:");
		if (parse_libusb(c, d) < 0)
			return -1;
	} else {
		return -1;
	}
	c->field = "end of name";
	c->literal = 0;
	return c->p == c->end ? 0 : -1;
}

int usb_devname_parse(const char *name, struct usb_devname *out)
{
	struct usb_devname d = { 0, 0, -1, -1, -1 };
	struct cursor c;
	size_t len;

	if (name == NULL || out == NULL) {
		log_critical("no device name (name %p, out %p)", (const void *)name, (void *)out);
		return -1;
	}
	len = strnlen(name, DEVNAME_MAX + 1);
	if (len > DEVNAME_MAX) {
		log_critical("device name longer than %d bytes: %.40s...", DEVNAME_MAX, name);
		return -1;
	}
	c.p = name;
	c.end = name + len;
	c.field = "";
	c.literal = 0;
	if (parse(&c, &d) < 0) {
		log_critical("malformed device name \"%s\": %s%s%s at offset %d", name,
			     c.literal ? "expected \"" : "bad ", c.field, c.literal ? "\"" : "",
			     (int)(c.p - name));
		return -1;
	}
	*out = d;
	return 0;
}
