/* The card's profile keys (card-*), documented in sim/README.md. */
#include <arpa/inet.h>
#include <string.h>

#include "profile_priv.h"

/* ---- the card's keys (card-*) ---------------------------------------------- */

/* "none" (-1) or a number in [0, max]. */
static int set_optional(int *out, const char *v, int base, unsigned long max, const char **why)
{
	uint32_t n;

	if (strcmp(v, "none") == 0) {
		*out = -1;
		return 0;
	}
	if (vrp_parse_u32(v, base, 0, max, &n, why) != 0)
		return -1;
	*out = (int)n;
	return 0;
}

/* Fi and Di codes that ISO 7816-3 Tables 7 and 8 define (not RFU). */
static int set_hist(struct vr_card_profile *c, const char *v, const char **why)
{
	size_t n = strlen(v);
	uint8_t tmp[VR_HIST_MAX];

	if (strcmp(v, "none") == 0) {
		c->hist_len = 0;
		return 0;
	}
	if (n % 2 != 0 || n / 2 > VR_HIST_MAX) {
		*why = "card-historical is an even number of hex digits, at most 15 bytes";
		return -1;
	}
	for (size_t i = 0; i < n / 2; i++) {
		char byte[3] = { v[2 * i], v[2 * i + 1], '\0' };
		uint32_t b;

		if (vrp_parse_u32(byte, 16, 0, 0xFF, &b, why) != 0)
			return -1;
		tmp[i] = (uint8_t)b;
	}
	memcpy(c->hist, tmp, n / 2);
	c->hist_len = (unsigned)(n / 2);
	return 0;
}

static int set_card_protocols(struct vr_card_profile *c, const char *v, const char **why)
{
	uint32_t b;

	if (vrp_set_protocols(&b, v, why) != 0)
		return -1;
	c->t0 = (b & 1) != 0;
	c->t1 = (b & 2) != 0;
	return 0;
}

/* "none" or "vicc:HOST:PORT", HOST an IPv4 address (vicc_relay.h). */
static int set_relay(struct vr_card_profile *c, const char *v, const char **why)
{
	char host[sizeof(c->relay_host)];
	struct in_addr addr;
	const char *colon;
	uint32_t port;
	size_t n;

	if (strcmp(v, "none") == 0) {
		c->relay_host[0] = '\0';
		c->relay_port = 0;
		return 0;
	}
	colon = strrchr(v, ':');
	if (strncmp(v, "vicc:", 5) != 0 || colon == NULL || colon < v + 5) {
		*why = "card-relay is none or vicc:HOST:PORT";
		return -1;
	}
	n = (size_t)(colon - (v + 5));
	if (n == 0 || n >= sizeof(host)) {
		*why = "card-relay: HOST is an IPv4 address";
		return -1;
	}
	memcpy(host, v + 5, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &addr) != 1) {
		*why = "card-relay: HOST is an IPv4 address";
		return -1;
	}
	if (vrp_parse_u32(colon + 1, 10, 1, 65535, &port, why) != 0)
		return -1;
	memcpy(c->relay_host, host, n + 1);
	c->relay_port = (uint16_t)port;
	return 0;
}

/* "none" or a list of a, b, c: the classes of the T=15 class indicator (ISO
 * 7816-3 8.3: b1 A 5 V, b2 B 3 V, b3 C 1.8 V). */
static int set_class(struct vr_card_profile *c, const char *v, const char **why)
{
	static const char *const words[] = { "a", "b", "c", NULL };
	static const uint32_t bits[] = { 0x01, 0x02, 0x04 };
	uint32_t b;

	if (vrp_parse_bits(v, words, bits, &b, why) != 0) {
		*why = "card-class is none or a list of a (5 V), b (3 V), c (1.8 V)";
		return -1;
	}
	c->class_ind = (uint8_t)b;
	return 0;
}

/* Two hex digits: the NAD of the host's blocks (ISO 7816-3 11.3.2.1: SAD in
 * b3-b1, DAD in b7-b5; b8 and b4 are 0, the VPP control of old). */
static int set_nad(struct vr_card_profile *c, const char *v, const char **why)
{
	uint32_t n;

	if (vrp_parse_u32(v, 16, 0, 0xFF, &n, why) != 0)
		return -1;
	if (n & 0x88) {
		*why = "card-nad: bits 8 and 4 must be 0 (ISO 7816-3 11.3.2.1)";
		return -1;
	}
	c->nad = (uint8_t)n;
	return 0;
}

/* The T=1 keys: card-ifs-request and card-nad (ISO 7816-3 11). */
static int set_t1_key(struct vr_card_profile *c, const char *k, const char *v, const char **why)
{
	if (strcmp(k, "card-ifs-request") == 0) {
		if (strcmp(v, "none") == 0) {
			c->ifs_request = 0;
			return 0;
		}
		return vrp_set_u8(&c->ifs_request, v, 1, 254, why);
	}
	if (strcmp(k, "card-nad") == 0)
		return set_nad(c, v, why);
	return 1;
}

int vrp_check_card(const struct vr_card_profile *c, const char **why)
{
	if (c->class_ind != 0 && c->voltages_set && c->voltages != c->class_ind)
		*why = "card-class and card-voltages name different voltages";
	else if ((c->ifs_request != 0 || c->nad != 0) && !c->t1)
		*why = "card-ifs-request and card-nad are T=1 settings: card-protocols must offer t1";
	else
		return 0;
	return -1;
}

int vrp_set_card_key(struct vr_card_profile *c, const char *k, const char *v, const char **why)
{
	if (strcmp(k, "card") == 0)
		return vrp_parse_bool(v, &c->present, why);
	if (strcmp(k, "card-protocols") == 0)
		return set_card_protocols(c, v, why);
	if (strcmp(k, "card-ta1") == 0) {
		int ta1;

		if (set_optional(&ta1, v, 16, 0xFF, why) != 0 || vrp_check_fidi(ta1, why) != 0)
			return -1;
		c->ta1 = ta1;
		return 0;
	}
	if (strcmp(k, "card-tc1") == 0)
		return set_optional(&c->tc1, v, 0, 0xFF, why);
	if (strcmp(k, "card-wi") == 0) {
		int wi;

		if (set_optional(&wi, v, 0, 0xFF, why) != 0)
			return -1;
		if (wi == 0) {
			*why = "card-wi 0 is reserved (ISO 7816-3 10.2)";
			return -1;
		}
		c->wi = wi;
		return 0;
	}
	if (strcmp(k, "card-ta2") == 0)
		return set_optional(&c->ta2, v, 16, 0xFF, why);
	if (strcmp(k, "card-ifsc") == 0)
		return vrp_set_u8(&c->ifsc, v, 1, 254, why);
	if (strcmp(k, "card-bwi") == 0)
		return vrp_set_u8(&c->bwi, v, 0, 9, why);
	if (strcmp(k, "card-cwi") == 0)
		return vrp_set_u8(&c->cwi, v, 0, 15, why);
	if (strcmp(k, "card-edc") == 0) {
		if (strcmp(v, "lrc") != 0 && strcmp(v, "crc") != 0) {
			*why = "card-edc is lrc or crc";
			return -1;
		}
		c->crc = v[0] == 'c';
		return 0;
	}
	if (strcmp(k, "card-convention") == 0) {
		if (strcmp(v, "direct") != 0 && strcmp(v, "inverse") != 0) {
			*why = "card-convention is direct or inverse";
			return -1;
		}
		c->inverse = v[0] == 'i';
		return 0;
	}
	if (strcmp(k, "card-historical") == 0)
		return set_hist(c, v, why);
	if (strcmp(k, "card-pin") == 0)
		return vrp_parse_pin(c->pin, v, why);
	if (strcmp(k, "card-relay") == 0)
		return set_relay(c, v, why);
	if (strcmp(k, "card-voltages") == 0) {
		if (vrp_set_voltages(&c->voltages, v, why) != 0)
			return -1;
		c->voltages_set = true;
		return 0;
	}
	if (strcmp(k, "card-class") == 0)
		return set_class(c, v, why);
	return set_t1_key(c, k, v, why);
}

