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
	"\t<key>smartcrdEscapeReaders</key>\n\t<string>08e6:4433 076B:3021:SN-42</string>\n"
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
	assert_int_equal(cfg.n_escape_readers, 2);

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
	assert_int_equal(cfg.n_escape_readers, 0);
	config_load(&cfg, NULL, "0x8");
	assert_int_equal(cfg.log_mask, 8);
}

/* ---- smartcrdEscapeReaders ------------------------------------------------ */

static size_t parse_list(struct smartcrd_config *cfg, const char *value)
{
	memset(cfg, 0xA5, sizeof(*cfg)); /* no field may be relied on before parsing */
	return config_escape_readers_parse(cfg, value, strlen(value));
}

static void escape_readers_take_any_case_and_both_separators(void **state)
{
	struct smartcrd_config cfg;

	(void)state;
	assert_int_equal(parse_list(&cfg, " 08e6:4433, 076B:3021,,\t0a5C:5800:ABC-123/x\n"), 3);
	assert_int_equal(cfg.escape_readers[0].vendor_id, 0x08E6);
	assert_int_equal(cfg.escape_readers[0].product_id, 0x4433);
	assert_string_equal(cfg.escape_readers[0].serial, "");
	assert_int_equal(cfg.escape_readers[1].vendor_id, 0x076B);
	assert_int_equal(cfg.escape_readers[1].product_id, 0x3021);
	assert_string_equal(cfg.escape_readers[1].serial, "");
	assert_int_equal(cfg.escape_readers[2].vendor_id, 0x0A5C);
	assert_int_equal(cfg.escape_readers[2].product_id, 0x5800);
	/* the serial number is kept as written: it is matched exactly */
	assert_string_equal(cfg.escape_readers[2].serial, "ABC-123/x");

	assert_int_equal(parse_list(&cfg, ""), 0);
	assert_int_equal(parse_list(&cfg, " ,, \n"), 0);
}

static void escape_readers_skip_malformed_entries(void **state)
{
	struct smartcrd_config cfg;
	char long_serial[200];

	(void)state;
	assert_int_equal(parse_list(&cfg, "08e6:443 08e6:44333 zz12:0001 08e6-4433 08e6:4433: "
					  "0x8e6:4433 08e6:4433x 08e6/4433 :4433 08e6:4433:a&amp;b "
					  "08e6:4433:a<b 08e6:4433:caf\xc3\xa9 08e6:4433:\x01 1234:abCD:S:1"),
			 1);
	assert_int_equal(cfg.escape_readers[0].vendor_id, 0x1234);
	assert_int_equal(cfg.escape_readers[0].product_id, 0xABCD);
	assert_string_equal(cfg.escape_readers[0].serial, "S:1");

	/* a serial number longer than a USB string descriptor can give */
	memcpy(long_serial, "08e6:4433:", 10);
	memset(long_serial + 10, 'A', 128);
	long_serial[138] = '\0';
	assert_int_equal(parse_list(&cfg, long_serial), 0);
	long_serial[137] = '\0'; /* 127 characters: the longest there is */
	assert_int_equal(parse_list(&cfg, long_serial), 1);
	assert_int_equal(strlen(cfg.escape_readers[0].serial), CONFIG_SERIAL_MAX);
}

static void escape_readers_keep_the_first_32_entries(void **state)
{
	struct smartcrd_config cfg;
	char list[40 * 10 + 1];

	(void)state;
	for (unsigned i = 0; i < 40; i++)
		snprintf(list + i * 10, sizeof(list) - i * 10, "%04x:%04x,", 0x1000 + i, i);
	assert_int_equal(parse_list(&cfg, list), CONFIG_ESCAPE_READERS_MAX);
	assert_int_equal(cfg.n_escape_readers, CONFIG_ESCAPE_READERS_MAX);
	for (unsigned i = 0; i < CONFIG_ESCAPE_READERS_MAX; i++) {
		assert_int_equal(cfg.escape_readers[i].vendor_id, 0x1000 + i);
		assert_int_equal(cfg.escape_readers[i].product_id, i);
	}
	assert_null(config_escape_allowed_for(&cfg, 0x1000 + 32, 32, NULL));
	assert_non_null(config_escape_allowed_for(&cfg, 0x1000 + 31, 31, NULL));
}

static void escape_readers_huge_value_is_ignored_whole(void **state)
{
	struct smartcrd_config cfg;
	char *list = malloc(CONFIG_ESCAPE_LIST_MAX + 2);

	(void)state;
	assert_non_null(list);
	/* one entry, then blanks up to the limit: accepted */
	memset(list, ' ', CONFIG_ESCAPE_LIST_MAX + 1);
	memcpy(list, "08e6:4433", 9);
	list[CONFIG_ESCAPE_LIST_MAX] = '\0';
	assert_int_equal(parse_list(&cfg, list), 1);
	/* one byte more: nothing of it is used */
	list[CONFIG_ESCAPE_LIST_MAX] = ' ';
	list[CONFIG_ESCAPE_LIST_MAX + 1] = '\0';
	assert_int_equal(parse_list(&cfg, list), 0);
	assert_null(config_escape_allowed_for(&cfg, 0x08E6, 0x4433, NULL));
	free(list);
}

static void escape_readers_parse_never_reads_past_the_length(void **state)
{
	struct smartcrd_config cfg;
	const char text[] = "08e6:4433 1234:5678";

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	/* the length ends inside the second entry: it is malformed, not read on */
	assert_int_equal(config_escape_readers_parse(&cfg, text, 14), 1);
	assert_int_equal(cfg.escape_readers[0].vendor_id, 0x08E6);
}

static void escape_readers_match_vid_pid_and_exact_serial(void **state)
{
	struct smartcrd_config cfg;
	const struct config_reader_id *e;

	(void)state;
	assert_int_equal(parse_list(&cfg, "08e6:4433 076b:3021:SN-42"), 2);
	/* VID:PID: any reader of that model, with or without a serial number */
	e = config_escape_allowed_for(&cfg, 0x08E6, 0x4433, NULL);
	assert_ptr_equal(e, &cfg.escape_readers[0]);
	assert_ptr_equal(config_escape_allowed_for(&cfg, 0x08E6, 0x4433, ""), e);
	assert_ptr_equal(config_escape_allowed_for(&cfg, 0x08E6, 0x4433, "whatever"), e);
	assert_null(config_escape_allowed_for(&cfg, 0x08E6, 0x4434, NULL));
	assert_null(config_escape_allowed_for(&cfg, 0x4433, 0x08E6, NULL));
	/* VID:PID:SERIAL: that one reader only, serial compared exactly */
	assert_ptr_equal(config_escape_allowed_for(&cfg, 0x076B, 0x3021, "SN-42"), &cfg.escape_readers[1]);
	assert_null(config_escape_allowed_for(&cfg, 0x076B, 0x3021, "sn-42"));
	assert_null(config_escape_allowed_for(&cfg, 0x076B, 0x3021, "SN-4"));
	assert_null(config_escape_allowed_for(&cfg, 0x076B, 0x3021, "SN-420"));
	assert_null(config_escape_allowed_for(&cfg, 0x0A5C, 0x3021, "SN-42"));
	/* a reader without a serial number never matches a serial entry */
	assert_null(config_escape_allowed_for(&cfg, 0x076B, 0x3021, NULL));
	assert_null(config_escape_allowed_for(&cfg, 0x076B, 0x3021, ""));
}

static char *write_plist_text(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/smartcrd-test-plist-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void load_reads_escape_readers_and_forgets_them_when_the_key_goes(void **state)
{
	struct smartcrd_config cfg;
	char *path = write_plist_text(plist);

	(void)state;
	config_load(&cfg, path, NULL);
	unlink(path);
	assert_int_equal(cfg.n_escape_readers, 2);
	assert_non_null(config_escape_allowed_for(&cfg, 0x08E6, 0x4433, NULL));
	assert_non_null(config_escape_allowed_for(&cfg, 0x076B, 0x3021, "SN-42"));
	assert_null(config_escape_allowed_for(&cfg, 0x076B, 0x3021, NULL));

	/* the key missing (or not a <string>): an empty list */
	path = write_plist_text("<dict><key>ifdDriverOptions</key><string>0</string>"
				"<key>smartcrdEscapeReaders</key><array><string>08e6:4433</string></array>"
				"</dict>");
	config_load(&cfg, path, NULL);
	unlink(path);
	assert_int_equal(cfg.n_escape_readers, 0);
	assert_null(config_escape_allowed_for(&cfg, 0x08E6, 0x4433, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plist_reads_hex_and_decimal_values),
		cmocka_unit_test(plist_rejects_missing_and_malformed_values),
		cmocka_unit_test(plist_never_reads_past_its_length),
		cmocka_unit_test(load_takes_plist_then_environment),
		cmocka_unit_test(load_without_plist_uses_defaults),
		cmocka_unit_test(escape_readers_take_any_case_and_both_separators),
		cmocka_unit_test(escape_readers_skip_malformed_entries),
		cmocka_unit_test(escape_readers_keep_the_first_32_entries),
		cmocka_unit_test(escape_readers_huge_value_is_ignored_whole),
		cmocka_unit_test(escape_readers_parse_never_reads_past_the_length),
		cmocka_unit_test(escape_readers_match_vid_pid_and_exact_serial),
		cmocka_unit_test(load_reads_escape_readers_and_forgets_them_when_the_key_goes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
