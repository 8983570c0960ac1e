/* Value parsers shared by the profile's files (see profile_priv.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "profile_priv.h"

/* ---- value parsers: 0 ok, -1 with *why ------------------------------------- */

static int parse_ulong(const char *v, int base, unsigned long min, unsigned long max,
		       unsigned long *out, const char **why)
{
	char *end;
	unsigned long n;

	if (v == NULL || *v == '\0' || *v == '-' || *v == '+' || *v == ' ') {
		*why = "expected a number";
		return -1;
	}
	errno = 0;
	n = strtoul(v, &end, base);
	if (errno != 0 || *end != '\0') {
		*why = "not a number";
		return -1;
	}
	if (n < min || n > max) {
		*why = "number out of range";
		return -1;
	}
	*out = n;
	return 0;
}

int vrp_parse_u32(const char *v, int base, unsigned long min, unsigned long max, uint32_t *out,
		     const char **why)
{
	unsigned long n;

	if (parse_ulong(v, base, min, max, &n, why) != 0)
		return -1;
	*out = (uint32_t)n;
	return 0;
}

int vrp_parse_bool(const char *v, bool *out, const char **why)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "1") == 0 || strcmp(v, "on") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(v, "no") == 0 || strcmp(v, "0") == 0 || strcmp(v, "off") == 0) {
		*out = false;
		return 0;
	}
	*why = "expected yes or no";
	return -1;
}

int vrp_parse_string(const char *v, char out[VR_NAME_MAX], const char **why)
{
	size_t n = strlen(v);

	if (n == 0 || n >= VR_NAME_MAX) {
		*why = "string empty or longer than 63 bytes";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] == 0x7F) {
			*why = "control character in string";
			return -1;
		}
	}
	memcpy(out, v, n + 1);
	return 0;
}

/* "a,b,c": each item through a callback that ORs bits into *out or appends to a
 * list. Items are cut at VR_NAME_MAX bytes (longer ones are errors). */
typedef int (*item_fn)(const char *item, void *ctx, const char **why);

static int parse_list(const char *v, item_fn fn, void *ctx, const char **why)
{
	char item[VR_NAME_MAX];
	const char *p = v;

	if (*v == '\0') {
		*why = "empty list";
		return -1;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (n == 0 || n >= sizeof(item)) {
			*why = "empty or overlong list item";
			return -1;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if (fn(item, ctx, why) != 0)
			return -1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

struct bits_ctx {
	const char *const *words;
	const uint32_t *bits;
	uint32_t value;
};

static int bits_item(const char *item, void *ctx, const char **why)
{
	struct bits_ctx *b = ctx;

	for (size_t i = 0; b->words[i] != NULL; i++) {
		if (strcmp(item, b->words[i]) == 0) {
			b->value |= b->bits[i];
			return 0;
		}
	}
	*why = "unknown word in list";
	return -1;
}

int vrp_parse_bits(const char *v, const char *const *words, const uint32_t *bits, uint32_t *out,
		      const char **why)
{
	struct bits_ctx b = { words, bits, 0 };

	if (strcmp(v, "none") == 0) {
		*out = 0;
		return 0;
	}
	if (parse_list(v, bits_item, &b, why) != 0)
		return -1;
	*out = b.value;
	return 0;
}

struct num_list {
	uint32_t *items;
	unsigned n;
};

static int num_item(const char *item, void *ctx, const char **why)
{
	struct num_list *l = ctx;
	uint32_t v;

	if (l->n >= VR_MAX_LIST) {
		*why = "more than 16 values in list";
		return -1;
	}
	if (vrp_parse_u32(item, 10, 1, 0xFFFFFFFFul, &v, why) != 0)
		return -1;
	l->items[l->n++] = v;
	return 0;
}

int vrp_parse_num_list(const char *v, uint32_t items[VR_MAX_LIST], unsigned *n, const char **why)
{
	uint32_t tmp[VR_MAX_LIST];
	struct num_list l = { tmp, 0 };

	if (strcmp(v, "none") == 0) {
		*n = 0;
		return 0;
	}
	if (parse_list(v, num_item, &l, why) != 0)
		return -1;
	memcpy(items, tmp, sizeof(tmp));
	*n = l.n;
	return 0;
}

int vrp_set_voltages(uint8_t *out, const char *v, const char **why)
{
	static const char *const words[] = { "5", "3", "1.8", NULL };
	static const uint32_t bits[] = { 0x01, 0x02, 0x04 };
	uint32_t b;

	if (vrp_parse_bits(v, words, bits, &b, why) != 0)
		return -1;
	if (b == 0) {
		*why = "at least one voltage (5, 3, 1.8)";
		return -1;
	}
	*out = (uint8_t)b;
	return 0;
}

int vrp_set_protocols(uint32_t *out, const char *v, const char **why)
{
	static const char *const words[] = { "t0", "t1", NULL };
	static const uint32_t bits[] = { 0x1, 0x2 };
	uint32_t b;

	if (vrp_parse_bits(v, words, bits, &b, why) != 0)
		return -1;
	if (b == 0) {
		*why = "at least one protocol (t0, t1)";
		return -1;
	}
	*out = b;
	return 0;
}

int vrp_set_u8(uint8_t *out, const char *v, unsigned long min, unsigned long max, const char **why)
{
	uint32_t n;

	if (vrp_parse_u32(v, 0, min, max, &n, why) != 0)
		return -1;
	*out = (uint8_t)n;
	return 0;
}

int vrp_check_fidi(int ta1, const char **why)
{
	static const uint8_t fi_ok[16] = { 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0 };
	static const uint8_t di_ok[16] = { 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0 };

	if (ta1 >= 0 && (!fi_ok[ta1 >> 4] || !di_ok[ta1 & 0xF])) {
		*why = "card-ta1 has an RFU Fi or Di code";
		return -1;
	}
	return 0;
}


/* 1 to 8 decimal digits (a PIN of the applet or of the virtual keypad). */
int vrp_parse_pin(char out[VR_PIN_MAX + 1], const char *v, const char **why)
{
	size_t n = strlen(v);

	if (n < 1 || n > VR_PIN_MAX || strspn(v, "0123456789") != n) {
		*why = "a PIN is 1 to 8 decimal digits";
		return -1;
	}
	memcpy(out, v, n + 1);
	return 0;
}
