/* Driver settings an administrator can change without rebuilding: read once
 * when pcscd first opens a reader, from the bundle's Info.plist, with the
 * SMARTCRD_LOG_LEVEL environment variable taking precedence for the log mask. */
#ifndef SMARTCRD_CONFIG_H
#define SMARTCRD_CONFIG_H

#include <stddef.h>

struct smartcrd_config {
	unsigned log_mask;       /* smc_log_level bits */
	unsigned driver_options; /* ifdDriverOptions bits: CCID_OPTION_* of ccid.h */
};

/* Find <key>KEY</key> <string>VALUE</string> in plist text and parse VALUE as
 * an unsigned number (decimal, or hexadecimal with 0x). 0 on success, -1 if the
 * key is missing or its value is not a number that fits. */
int config_plist_uint(const char *text, size_t len, const char *key, unsigned long *out);

/* Fill cfg: defaults, then the plist at plist_path (may be NULL or unreadable),
 * then env_log_level (the environment variable's value, may be NULL). */
void config_load(struct smartcrd_config *cfg, const char *plist_path, const char *env_log_level);

/* Path of our own bundle's Info.plist, found from where this library was loaded
 * (…/Contents/Linux/libsmartcrd.so → …/Contents/Info.plist). 0 on success. */
int config_own_plist_path(char *buf, size_t cap);

#endif
