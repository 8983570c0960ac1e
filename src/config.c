/* Reading the driver's settings: see config.h. */
#define _GNU_SOURCE
#include "config.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smc_log.h"

/* An Info.plist with thousands of readers is about 300 KiB (libccid's). */
#define PLIST_MAX_BYTES (1024 * 1024)
#define DEFAULT_LOG_MASK (SMC_LOG_CRITICAL | SMC_LOG_INFO)

static const char *find_bytes(const char *hay, size_t hay_len, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0 || n > hay_len)
		return NULL;
	for (size_t i = 0; i + n <= hay_len; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return hay + i;
	return NULL;
}

static int parse_uint(const char *s, size_t len, unsigned long *out)
{
	char buf[32];
	char *end;
	unsigned long v;

	while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	if (len == 0 || len >= sizeof(buf) || *s == '-' || *s == '+')
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoul(buf, &end, 0);
	if (errno != 0 || *end != '\0' || v > 0xFFFFFFFFul)
		return -1;
	*out = v;
	return 0;
}

int config_plist_string(const char *text, size_t len, const char *key, const char **value,
			size_t *value_len)
{
	char key_tag[96];
	const char *p, *close;
	size_t rest;

	if (snprintf(key_tag, sizeof(key_tag), "<key>%s</key>", key) >= (int)sizeof(key_tag))
		return -1;
	p = find_bytes(text, len, key_tag);
	if (p == NULL)
		return -1;
	p += strlen(key_tag);
	rest = len - (size_t)(p - text);
	/* Only white space (or comments are not expected here) before <string>. */
	while (rest > 0 && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++, rest--;
	if (rest < 8 || memcmp(p, "<string>", 8) != 0)
		return -1;
	p += 8;
	rest -= 8;
	close = find_bytes(p, rest, "</string>");
	if (close == NULL)
		return -1;
	*value = p;
	*value_len = (size_t)(close - p);
	return 0;
}

int config_plist_uint(const char *text, size_t len, const char *key, unsigned long *out)
{
	const char *value;
	size_t value_len;

	if (config_plist_string(text, len, key, &value, &value_len) != 0)
		return -1;
	return parse_uint(value, value_len, out);
}

/* ---- smartcrdEscapeReaders ---------------------------------------------- */

#define ESCAPE_KEY "smartcrdEscapeReaders"
#define LOGGED_ENTRY_MAX 48 /* characters of a bad entry shown in the log */

static int is_separator(char c)
{
	return c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r';
}

/* Exactly four hexadecimal digits at s (the caller made sure they are there). */
static int parse_hex4(const char *s, uint16_t *out)
{
	char digits[5];

	for (int i = 0; i < 4; i++)
		if (!isxdigit((unsigned char)s[i]))
			return -1;
	memcpy(digits, s, 4);
	digits[4] = '\0';
	*out = (uint16_t)strtoul(digits, NULL, 16);
	return 0;
}

/* Printable ASCII except the list's separators, and the characters that the
 * plist would carry as entities (which are not decoded). */
static int serial_char_ok(char c)
{
	return c > ' ' && c < 0x7F && c != ',' && c != '&' && c != '<' && c != '>';
}

/* One entry, tok[0..len) without separators: VVVV:PPPP or VVVV:PPPP:SERIAL.
 * -1 with *why when it is neither. */
static int parse_reader_id(const char *tok, size_t len, struct config_reader_id *id, const char **why)
{
	const char *serial;
	size_t serial_len;

	memset(id, 0, sizeof(*id));
	if (len < 9 || tok[4] != ':' || parse_hex4(tok, &id->vendor_id) != 0 ||
	    parse_hex4(tok + 5, &id->product_id) != 0 || (len > 9 && tok[9] != ':')) {
		*why = "not VVVV:PPPP or VVVV:PPPP:SERIAL (four hexadecimal digits each)";
		return -1;
	}
	if (len == 9)
		return 0;
	serial = tok + 10;
	serial_len = len - 10;
	if (serial_len == 0) {
		*why = "empty serial number";
		return -1;
	}
	if (serial_len > CONFIG_SERIAL_MAX) {
		*why = "serial number longer than a USB string can be";
		return -1;
	}
	for (size_t i = 0; i < serial_len; i++) {
		if (!serial_char_ok(serial[i])) {
			*why = "serial number with a character other than printable ASCII (or one of & < >)";
			return -1;
		}
	}
	memcpy(id->serial, serial, serial_len);
	id->serial[serial_len] = '\0';
	return 0;
}

/* tok as it may go into a log line: printable, shortened. */
static void printable(const char *tok, size_t len, char *out, size_t cap)
{
	size_t n = len < cap - 4 ? len : cap - 4;

	for (size_t i = 0; i < n; i++)
		out[i] = tok[i] >= ' ' && tok[i] < 0x7F ? tok[i] : '?';
	if (n < len)
		memcpy(out + n, "...", 3), n += 3;
	out[n] = '\0';
}

static void add_escape_reader(struct smartcrd_config *cfg, const char *tok, size_t len)
{
	struct config_reader_id id;
	char shown[LOGGED_ENTRY_MAX + 4];
	const char *why;

	if (parse_reader_id(tok, len, &id, &why) != 0) {
		printable(tok, len, shown, sizeof(shown));
		log_critical(ESCAPE_KEY ": entry \"%s\" skipped: %s", shown, why);
		return;
	}
	if (cfg->n_escape_readers == CONFIG_ESCAPE_READERS_MAX) {
		printable(tok, len, shown, sizeof(shown));
		log_critical(ESCAPE_KEY ": entry \"%s\" skipped: more than %d entries", shown,
			     CONFIG_ESCAPE_READERS_MAX);
		return;
	}
	cfg->escape_readers[cfg->n_escape_readers++] = id;
}

size_t config_escape_readers_parse(struct smartcrd_config *cfg, const char *value, size_t len)
{
	size_t i = 0, start;

	cfg->n_escape_readers = 0;
	if (len > CONFIG_ESCAPE_LIST_MAX) {
		log_critical(ESCAPE_KEY ": value of %zu bytes, more than %d: ignored (no reader listed)", len,
			     CONFIG_ESCAPE_LIST_MAX);
		return 0;
	}
	while (i < len) {
		while (i < len && is_separator(value[i]))
			i++;
		start = i;
		while (i < len && !is_separator(value[i]))
			i++;
		if (i > start)
			add_escape_reader(cfg, value + start, i - start);
	}
	return cfg->n_escape_readers;
}

const struct config_reader_id *config_escape_allowed_for(const struct smartcrd_config *cfg, uint16_t vid,
							 uint16_t pid, const char *serial)
{
	for (size_t i = 0; i < cfg->n_escape_readers && i < CONFIG_ESCAPE_READERS_MAX; i++) {
		const struct config_reader_id *e = &cfg->escape_readers[i];

		if (e->vendor_id != vid || e->product_id != pid)
			continue;
		/* a serial entry needs a reader that has that very serial number */
		if (e->serial[0] == '\0' || (serial != NULL && strcmp(serial, e->serial) == 0))
			return e;
	}
	return NULL;
}

/* ---- loading ------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = malloc(PLIST_MAX_BYTES);
	if (buf == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, PLIST_MAX_BYTES, f);
	fclose(f);
	*len = n;
	return buf;
}

void config_load(struct smartcrd_config *cfg, const char *plist_path, const char *env_log_level)
{
	unsigned long v;
	char *text = NULL;
	const char *list;
	size_t len = 0, list_len;

	cfg->log_mask = DEFAULT_LOG_MASK;
	cfg->driver_options = 0;
	cfg->n_escape_readers = 0;
	if (plist_path != NULL)
		text = read_file(plist_path, &len);
	if (text != NULL) {
		if (config_plist_uint(text, len, "ifdLogLevel", &v) == 0)
			cfg->log_mask = (unsigned)v;
		if (config_plist_uint(text, len, "ifdDriverOptions", &v) == 0)
			cfg->driver_options = (unsigned)v;
		if (config_plist_string(text, len, ESCAPE_KEY, &list, &list_len) == 0 &&
		    config_escape_readers_parse(cfg, list, list_len) > 0)
			log_info(ESCAPE_KEY ": %zu entries: those readers take Escape from applications",
				 cfg->n_escape_readers);
		free(text);
	}
	if (env_log_level != NULL && *env_log_level != '\0') {
		if (parse_uint(env_log_level, strlen(env_log_level), &v) == 0)
			cfg->log_mask = (unsigned)v;
		else
			log_critical("SMARTCRD_LOG_LEVEL=\"%s\" is not a number; ignored", env_log_level);
	}
}

int config_own_plist_path(char *buf, size_t cap)
{
	Dl_info info;
	const char *slash;
	size_t dir_len;

	if (dladdr((void *)config_own_plist_path, &info) == 0 || info.dli_fname == NULL)
		return -1;
	/* dli_fname is …/Contents/Linux/libsmartcrd.so: go up two levels. */
	slash = strrchr(info.dli_fname, '/');
	if (slash == NULL)
		return -1;
	dir_len = (size_t)(slash - info.dli_fname);
	if (snprintf(buf, cap, "%.*s/../Info.plist", (int)dir_len, info.dli_fname) >= (int)cap)
		return -1;
	return 0;
}
