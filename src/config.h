/* Driver settings an administrator can change without rebuilding: read once
 * when pcscd first opens a reader, from the bundle's Info.plist, with the
 * SMARTCRD_LOG_LEVEL environment variable taking precedence for the log mask. */
#ifndef SMARTCRD_CONFIG_H
#define SMARTCRD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* smartcrdEscapeReaders: the readers that may take PC_to_RDR_Escape from
 * applications even without ifdDriverOptions bit 0x01. The <string> value is a
 * list separated by spaces or commas of
 *   VVVV:PPPP         any reader with that vendor and product id (4 hex digits)
 *   VVVV:PPPP:SERIAL  only the one whose USB serial number string is SERIAL
 *                     (exact, printable ASCII without space , & < >)
 * Malformed entries are skipped with a log line; at most CONFIG_ESCAPE_READERS_MAX. */
#define CONFIG_ESCAPE_READERS_MAX 32
#define CONFIG_ESCAPE_LIST_MAX 8192 /* bytes of the value; longer: the whole key is ignored */
#define CONFIG_SERIAL_MAX 127       /* a USB string as the transport keeps it (TP_STRING_MAX - 1) */

struct config_reader_id {
	uint16_t vendor_id, product_id;
	char serial[CONFIG_SERIAL_MAX + 1]; /* "" matches any serial number */
};

struct smartcrd_config {
	unsigned log_mask;       /* smc_log_level bits */
	unsigned driver_options; /* ifdDriverOptions bits: CCID_OPTION_* of ccid.h */
	struct config_reader_id escape_readers[CONFIG_ESCAPE_READERS_MAX];
	size_t n_escape_readers;
};

/* Find <key>KEY</key> <string>VALUE</string> in plist text and parse VALUE as
 * an unsigned number (decimal, or hexadecimal with 0x). 0 on success, -1 if the
 * key is missing or its value is not a number that fits. */
int config_plist_uint(const char *text, size_t len, const char *key, unsigned long *out);

/* The same search, giving VALUE as it stands in text (not terminated, no XML
 * entities decoded): *value points into text, *value_len its length. */
int config_plist_string(const char *text, size_t len, const char *key, const char **value,
			size_t *value_len);

/* Replace cfg's smartcrdEscapeReaders list with the one in value (len bytes).
 * Returns how many entries were kept. */
size_t config_escape_readers_parse(struct smartcrd_config *cfg, const char *value, size_t len);

/* The smartcrdEscapeReaders entry that the reader vid:pid with serial number
 * serial (NULL or "" when it has none) matches, or NULL. */
const struct config_reader_id *config_escape_allowed_for(const struct smartcrd_config *cfg, uint16_t vid,
							 uint16_t pid, const char *serial);

/* Fill cfg: defaults, then the plist at plist_path (may be NULL or unreadable),
 * then env_log_level (the environment variable's value, may be NULL). */
void config_load(struct smartcrd_config *cfg, const char *plist_path, const char *env_log_level);

/* Path of our own bundle's Info.plist, found from where this library was loaded
 * (…/Contents/Linux/libsmartcrd.so → …/Contents/Info.plist). 0 on success. */
int config_own_plist_path(char *buf, size_t cap);

#endif
