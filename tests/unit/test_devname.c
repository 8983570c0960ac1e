/* usb_devname_parse: pcscd's device names, accepted and refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ccid_transport.h"

struct good_case {
	const char *name;
	struct usb_devname want;
};

static const struct good_case good[] = {
	/* libudev form, as pcscd >= 1.6.8 builds it on Linux */
	{ "usb:08e6/4433:libudev:0:/dev/bus/usb/001/002", { 0x08e6, 0x4433, 1, 2, 0 } },
	{ "usb:08e6/3437:libudev:0:/dev/bus/usb/008/047", { 0x08e6, 0x3437, 8, 47, 0 } },
	{ "usb:1050/0407:libudev:2:/dev/bus/usb/003/127", { 0x1050, 0x0407, 3, 127, 2 } },
	{ "usb:1050/0407:libudev:255:/dev/bus/usb/255/001", { 0x1050, 0x0407, 255, 1, 255 } },
	/* libusb-1.0 form: bus, address, interface, all %d */
	{ "usb:08e6/3437:libusb-1.0:7:99:0", { 0x08e6, 0x3437, 7, 99, 0 } },
	{ "usb:076b/5340:libusb-1.0:1:2:1", { 0x076b, 0x5340, 1, 2, 1 } },
	{ "usb:076b/5340:libusb-1.0:255:127:255", { 0x076b, 0x5340, 255, 127, 255 } },
	{ "usb:076b/5340:libusb-1.0:0:1:0", { 0x076b, 0x5340, 0, 1, 0 } },
	/* bare reader.conf form */
	{ "usb:08e6/3437", { 0x08e6, 0x3437, -1, -1, -1 } },
	{ "usb:0000/0000", { 0x0000, 0x0000, -1, -1, -1 } },
	{ "usb:ffff/ffff", { 0xffff, 0xffff, -1, -1, -1 } },
	/* hexadecimal in either case */
	{ "usb:08E6/3A3B", { 0x08e6, 0x3a3b, -1, -1, -1 } },
	{ "usb:aBcD/EfAb:libusb-1.0:3:4:0", { 0xabcd, 0xefab, 3, 4, 0 } },
	{ "usb:FFFF/fFfF:libudev:1:/dev/bus/usb/002/003", { 0xffff, 0xffff, 2, 3, 1 } },
};

static const char *const bad[] = {
	"",
	"usb:",
	"usb",
	"USB:08e6/3437",                 /* scheme is lower case */
	"usb:8e6/3437",                  /* three hex digits */
	"usb:08e6/343",
	"usb:108e6/3437",                /* vendor id above 0xFFFF (five digits) */
	"usb:08e6/34370",                /* product id with a fifth digit */
	"usb:08g6/3437",                 /* not hexadecimal */
	"usb:08e6:3437",                 /* wrong separator */
	"usb:08e6/3437:",                /* separator and nothing */
	"usb:08e6/3437 ",                /* trailing space */
	"usb:08e6/3437:libusb:001:002",  /* libusb-0.1 form, not produced by pcscd any more */
	"usb:08e6/3437:libudev:0",       /* missing device node */
	"usb:08e6/3437:libudev:0:",
	"usb:08e6/3437:libudev::/dev/bus/usb/001/002", /* empty interface */
	"usb:08e6/3437:libudev:256:/dev/bus/usb/001/002", /* interface > 255 */
	"usb:08e6/3437:libudev:-1:/dev/bus/usb/001/002",  /* sign */
	"usb:08e6/3437:libudev:0:/dev/bus/usb/256/002",   /* bus > 255 */
	"usb:08e6/3437:libudev:0:/dev/bus/usb/001/128",   /* address > 127 */
	"usb:08e6/3437:libudev:0:/dev/bus/usb/001/000",   /* address 0 */
	"usb:08e6/3437:libudev:0:/dev/bus/usb/0001/002",  /* overlong bus */
	"usb:08e6/3437:libudev:0:/dev/bus/usb/001/002/",  /* trailing junk */
	"usb:08e6/3437:libudev:0:/dev/bus/usb/001/002x",
	"usb:08e6/3437:libudev:0:/dev/bus/usb/001",       /* missing address */
	"usb:08e6/3437:libudev:0:/dev/usb/001/002",       /* not a usbfs node */
	"usb:08e6/3437:libudev:0:/dev/bus/usb/ 01/002",
	"usb:08e6/3437:libusb-1.0:7:99",                  /* missing interface */
	"usb:08e6/3437:libusb-1.0:7:99:",
	"usb:08e6/3437:libusb-1.0:7:99:0:",               /* trailing separator */
	"usb:08e6/3437:libusb-1.0:7:99:0:5",              /* extra field */
	"usb:08e6/3437:libusb-1.0:300:1:0",               /* bus > 255 */
	"usb:08e6/3437:libusb-1.0:7:200:0",               /* address > 127 */
	"usb:08e6/3437:libusb-1.0:7:99:999",              /* interface > 255 */
	"usb:08e6/3437:libusb-1.0:7:99:0000",             /* overlong interface */
	"usb:08e6/3437:libusb-1.0:0x7:99:0",              /* hex where decimal is due */
	"usb:08e6/3437:libusb-1.0:+7:99:0",
	"usb:08e6/3437:libusb-1.0:7::0",
	"usb:08e6/3437:libusb-1.1:7:99:0",                /* unknown scheme */
};

static void devname_parses_every_good_form(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct usb_devname d;

		memset(&d, 0x5a, sizeof(d));
		print_message("%s\n", good[i].name);
		assert_int_equal(usb_devname_parse(good[i].name, &d), 0);
		assert_int_equal(d.vendor_id, good[i].want.vendor_id);
		assert_int_equal(d.product_id, good[i].want.product_id);
		assert_int_equal(d.bus, good[i].want.bus);
		assert_int_equal(d.address, good[i].want.address);
		assert_int_equal(d.interface_number, good[i].want.interface_number);
	}
}

static void devname_rejects_malformed_names(void **state)
{
	(void)state;
	assert_true(sizeof(bad) / sizeof(bad[0]) >= 15);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct usb_devname d = { 0x1111, 0x2222, 33, 44, 55 };

		print_message("%s\n", bad[i]);
		assert_int_equal(usb_devname_parse(bad[i], &d), -1);
		/* a refused name leaves the output alone */
		assert_int_equal(d.vendor_id, 0x1111);
		assert_int_equal(d.interface_number, 55);
	}
}

static void devname_rejects_null_arguments(void **state)
{
	struct usb_devname d;

	(void)state;
	assert_int_equal(usb_devname_parse(NULL, &d), -1);
	assert_int_equal(usb_devname_parse("usb:08e6/3437", NULL), -1);
}

/* An overlong name is refused without reading past the cap: the buffer below
 * has no NUL at all, and ASan would catch a read beyond it. */
static void devname_rejects_overlong_unterminated_name(void **state)
{
	enum { N = 513 }; /* one byte over the cap, and no NUL */
	char *name = test_malloc(N);
	struct usb_devname d;

	(void)state;
	memset(name, '1', N);
	memcpy(name, "usb:08e6/3437:libusb-1.0:", 25);
	assert_int_equal(usb_devname_parse(name, &d), -1);
	test_free(name);
}

/* A good name followed by a long run of digits (under the cap) is refused. */
static void devname_rejects_good_prefix_with_long_tail(void **state)
{
	char name[300];
	struct usb_devname d;

	(void)state;
	memset(name, '0', sizeof(name));
	memcpy(name, "usb:08e6/3437:libusb-1.0:7:99:", 30);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(usb_devname_parse(name, &d), -1);
}

/* status.c rides along: every status has its own words, out-of-range too. */
static void tp_status_str_names_every_status(void **state)
{
	(void)state;
	for (int a = TP_OK; a <= TP_INVALID; a++) {
		assert_non_null(tp_status_str((tp_status)a));
		assert_string_not_equal(tp_status_str((tp_status)a), "unknown transport status");
		for (int b = TP_OK; b < a; b++)
			assert_string_not_equal(tp_status_str((tp_status)a), tp_status_str((tp_status)b));
	}
	assert_string_equal(tp_status_str((tp_status)(TP_INVALID + 1)), "unknown transport status");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(devname_parses_every_good_form),
		cmocka_unit_test(devname_rejects_malformed_names),
		cmocka_unit_test(devname_rejects_null_arguments),
		cmocka_unit_test(devname_rejects_overlong_unterminated_name),
		cmocka_unit_test(devname_rejects_good_prefix_with_long_tail),
		cmocka_unit_test(tp_status_str_names_every_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
