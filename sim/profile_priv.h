/* Private to the profile's files:
 * profile.c        defaults, the reader's keys, checks, the class descriptor
 * profile_parse.c  value parsers (numbers, lists, words, PINs)
 * profile_card.c   the card's keys (card-*)
 * Each parser returns 0, or -1 with *why saying what was wrong. */
#ifndef SIM_PROFILE_PRIV_H
#define SIM_PROFILE_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "vreader.h"

int vrp_parse_u32(const char *v, int base, unsigned long min, unsigned long max, uint32_t *out,
		  const char **why);
int vrp_parse_bool(const char *v, bool *out, const char **why);
int vrp_parse_string(const char *v, char out[VR_NAME_MAX], const char **why);
/* "none" or a comma list of words, each ORing its bit into *out. */
int vrp_parse_bits(const char *v, const char *const *words, const uint32_t *bits, uint32_t *out,
		   const char **why);
/* "none" or a comma list of at most VR_MAX_LIST numbers. */
int vrp_parse_num_list(const char *v, uint32_t items[VR_MAX_LIST], unsigned *n, const char **why);
int vrp_parse_pin(char out[VR_PIN_MAX + 1], const char *v, const char **why);
int vrp_set_u8(uint8_t *out, const char *v, unsigned long min, unsigned long max, const char **why);
/* Voltage classes "5,3,1.8" as bVoltageSupport bits; protocols "t0,t1". */
int vrp_set_voltages(uint8_t *out, const char *v, const char **why);
int vrp_set_protocols(uint32_t *out, const char *v, const char **why);
/* A TA1 (or -1) whose Fi and Di codes are not RFU (ISO 7816-3 Tables 7, 8). */
int vrp_check_fidi(int ta1, const char **why);

/* A card-* key: 0, -1 with *why, 1 if key is not a card key. */
int vrp_set_card_key(struct vr_card_profile *c, const char *k, const char *v, const char **why);
/* Checks between the card's fields (card-class against card-voltages, the
 * T=1 keys against card-protocols): 0, -1 with *why. */
int vrp_check_card(const struct vr_card_profile *c, const char **why);

#endif
