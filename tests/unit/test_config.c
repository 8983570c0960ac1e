/* Reading the administrator's settings from Info.plist and the environment. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "smc_log.h"

static const char plist[] =
	"<dict>\n"
	"\t<key>ifdVendorID</key>\n\t<array><string>0x08E6</string></array>\n"
	"\t<key>ifdLogLevel</key>\n\t<string>0x000F</string>\n"
	"\t<key>ifdDriverOptions</key>\n\t<string> 5 </string>\n"
	"\t<key>ifdBroken</key>\n\t<string>12abc</string>\n"
	"\t<key>ifdNegative</key>\n\t<string>-1</string>\n"
	"\t<key>ifdHuge</key>\n\t<string>0x1FFFFFFFF</string>\n"
	"\t<key>ifdNoString</key>\n\t<integer>3</integer>\n"
	"</dict>\n";

static unsigned long lookup(const char *key, int *rc)
{
	unsigned long v = 0xDEAD;

	*rc = config_plist_uint(plist, strlen(plist), key, &v);
	return v;
}

static void plist_reads_hex_and_decimal_values(void **state)
{
	int rc;

	(void)state;
	assert_int_equal(lookup("ifdLogLevel", &rc), 0xF);
	assert_int_equal(rc, 0);
	assert_int_equal(lookup("ifdDriverOptions", &rc), 5);
	assert_int_equal(rc, 0);
}

static void plist_rejects_missing_and_malformed_values(void **state)
{
	int rc;

	(void)state;
	lookup("ifdMissing", &rc);
	assert_int_equal(rc, -1);
	lookup("ifdBroken", &rc);
	assert_int_equal(rc, -1);
	lookup("ifdNegative", &rc);
	assert_int_equal(rc, -1);
	lookup("ifdHuge", &rc);
	assert_int_equal(rc, -1);
	lookup("ifdNoString", &rc);
	assert_int_equal(rc, -1);
	/* an array value is not a number */
	lookup("ifdVendorID", &rc);
	assert_int_equal(rc, -1);
}

static void plist_never_reads_past_its_length(void **state)
{
	/* The value's closing tag lies beyond the length given: not found. */
	const char text[] = "<key>ifdLogLevel</key><string>7</string>";
	unsigned long v = 0;

	(void)state;
	assert_int_equal(config_plist_uint(text, strlen(text) - 4, "ifdLogLevel", &v), -1);
	assert_int_equal(config_plist_uint(text, strlen(text), "ifdLogLevel", &v), 0);
	assert_int_equal(v, 7);
}

static char *write_temp_plist(void)
{
	static char path[] = "/tmp/smartcrd-test-plist-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, plist, strlen(plist)), (ssize_t)strlen(plist));
	close(fd);
	return path;
}

static void load_takes_plist_then_environment(void **state)
{
	struct smartcrd_config cfg;
	char *path = write_temp_plist();

	(void)state;
	config_load(&cfg, path, NULL);
	assert_int_equal(cfg.log_mask, 0xF);
	assert_int_equal(cfg.driver_options, 5);

	config_load(&cfg, path, "4");
	assert_int_equal(cfg.log_mask, 4);

	/* A malformed environment value is ignored, not half-used. */
	config_load(&cfg, path, "lots");
	assert_int_equal(cfg.log_mask, 0xF);
	unlink(path);
}

static void load_without_plist_uses_defaults(void **state)
{
	struct smartcrd_config cfg;

	(void)state;
	config_load(&cfg, "/nonexistent/Info.plist", NULL);
	assert_int_equal(cfg.log_mask, SMC_LOG_CRITICAL | SMC_LOG_INFO);
	assert_int_equal(cfg.driver_options, 0);
	config_load(&cfg, NULL, "0x8");
	assert_int_equal(cfg.log_mask, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plist_reads_hex_and_decimal_values),
		cmocka_unit_test(plist_rejects_missing_and_malformed_values),
		cmocka_unit_test(plist_never_reads_past_its_length),
		cmocka_unit_test(load_takes_plist_then_environment),
		cmocka_unit_test(load_without_plist_uses_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
