/* Reading the driver's settings: see config.h. */
#define _GNU_SOURCE
#include "config.h"

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

int config_plist_uint(const char *text, size_t len, const char *key, unsigned long *out)
{
	char key_tag[96];
	const char *p, *value, *close;
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
	value = p + 8;
	rest -= 8;
	close = find_bytes(value, rest, "</string>");
	if (close == NULL)
		return -1;
	return parse_uint(value, (size_t)(close - value), out);
}

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
	size_t len = 0;

	cfg->log_mask = DEFAULT_LOG_MASK;
	cfg->driver_options = 0;
	if (plist_path != NULL)
		text = read_file(plist_path, &len);
	if (text != NULL) {
		if (config_plist_uint(text, len, "ifdLogLevel", &v) == 0)
			cfg->log_mask = (unsigned)v;
		if (config_plist_uint(text, len, "ifdDriverOptions", &v) == 0)
			cfg->driver_options = (unsigned)v;
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
