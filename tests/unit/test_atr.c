/* ATR parsing (ISO/IEC 7816-3:2006 section 8) on real, published ATRs.
 *
 * Every ATR of the table is copied from pcsc-tools' public smartcard_list.txt
 * (/usr/share/pcsc/smartcard_list.txt); the expected fields were worked out by
 * hand from the bytes, not taken from the parser. Constructed ATRs, used only
 * where no published one shows a case, say so. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smclib.h"

#define T0 SMC_PROTOCOL_T0
#define T1 SMC_PROTOCOL_T1
#define BOTH (SMC_PROTOCOL_T0 | SMC_PROTOCOL_T1)

struct atr_case {
	const char *name;
	const char *hex;
	bool inverse;
	unsigned n_groups;
	size_t hist_len;
	bool tck;
	uint32_t fi, di, fmax_khz;
	uint8_t n, wi;
	uint32_t protocols, first;
	bool specific;
	uint32_t specific_protocol;
	uint8_t class_indicator;
	uint8_t ifsc, bwi, cwi;
};

/* Fields: inverse, groups, K, TCK, Fi, Di, fmax, N, WI, protocols, first,
 * specific mode, specific protocol, class indicator, IFSC, BWI, CWI. */
static const struct atr_case table[] = {
	{ "Slovenian SIGOV-CA e-Gov card: TA1 TB1 TC1, T=0 only, no TCK",
	  "3B 7A 18 00 00 73 66 74 65 20 63 64 31 34 34",
	  false, 1, 10, false, 372, 12, 5000, 0, 10, T0, T0, false, 0, 0, 32, 4, 13 },
	{ "NSSVirtual Smart Card for QEMU: no TA1, N=255",
	  "3B 68 00 FF 56 43 41 52 44 6E 73 73",
	  false, 1, 8, false, 372, 1, 5000, 255, 10, T0, T0, false, 0, 0, 32, 4, 13 },
	{ "Belgian eID: TA1 0x13, TD1 T=0 with TC2",
	  "3B 98 13 40 0A A5 03 01 01 01 AD 13 11",
	  false, 2, 8, false, 372, 4, 5000, 0, 10, T0, T0, false, 0, 0, 32, 4, 13 },
	{ "Belgian eID, RFU Di code in TA1 0x30: Fd/Dd kept",
	  "3B 98 30 40 0A A5 03 01 01 01 AD 13 11",
	  false, 2, 8, false, 372, 1, 5000, 0, 10, T0, T0, false, 0, 0, 32, 4, 13 },
	{ "Estonian EstEID 3.0 (JavaCard, cold): T=0 and T=1",
	  "3B FE 18 00 00 80 31 FE 45 45 73 74 45 49 44 20 76 65 72 20 31 2E 30 A8",
	  false, 3, 14, true, 372, 12, 5000, 0, 10, BOTH, T0, false, 0, 0, 254, 4, 5 },
	{ "OpenPGP Card V2: T=1 only, T=15 class indicator, N=255",
	  "3B DA 18 FF 81 B1 FE 75 1F 03 00 31 C5 73 C0 01 40 00 90 00 0C",
	  false, 4, 10, true, 372, 12, 5000, 255, 10, T1, T1, false, 0, 0x03, 254, 7, 5 },
	{ "Yubico YubiKey 4 (JavaCard/PIV/OpenPGP): T=1, TB3 0x15",
	  "3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4",
	  false, 3, 8, true, 372, 4, 5000, 0, 10, T1, T1, false, 0, 0, 254, 1, 5 },
	{ "Oberthur Cosmo eID: TA1 0x96 (Fi 512, Di 32), T=0 T=1 T=15",
	  "3B DB 96 00 80 B1 FE 45 1F 83 00 31 C0 64 C7 FC 10 00 01 90 00 74",
	  false, 4, 11, true, 512, 32, 5000, 0, 10, BOTH, T0, false, 0, 0x03, 254, 4, 5 },
	{ "French chronotachygraph card: TC2 WI=255, T=0 T=1 T=15",
	  "3B 97 11 C0 FF B1 FE 35 1F 83 A5 05 01 01 02 A3 01 5F",
	  false, 4, 7, true, 372, 1, 5000, 0, 255, BOTH, T0, false, 0, 0x03, 254, 3, 5 },
	{ "HID iClass SE processor: TA2 0x81, specific mode T=1",
	  "3B 90 96 91 81 B1 FE 55 1F C7 D4",
	  false, 4, 0, true, 512, 32, 5000, 0, 10, T1, T1, true, T1, 0x07, 254, 5, 5 },
	{ "SKY PerfecTV HD card: TA1 0x33 (Fi 744, fmax 8 MHz), TA2 specific T=1",
	  "3B B0 33 00 91 81 31 6B 35 FC",
	  false, 3, 0, true, 744, 4, 8000, 0, 10, T1, T1, true, T1, 0, 107, 3, 5 },
	{ "Inside Secure VaultIC 460: TA2 0x80, specific mode T=0, no TCK",
	  "3B 9F 11 10 80 56 61 75 6C 74 49 43 20 34 36 30 31 2E 30 32",
	  false, 2, 15, false, 372, 1, 5000, 0, 10, T0, T0, true, T0, 0, 32, 4, 13 },
	{ "Nokia GSM SIM Ph2 16K: inverse convention TS 0x3F",
	  "3F 2F 00 80 69 AF 03 07 01 59 00 00 0A 0E 83 3E 9F 16",
	  true, 1, 15, false, 372, 1, 5000, 0, 10, T0, T0, false, 0, 0, 32, 4, 13 },
	{ "Postgirot SmartSec bank card: inverse convention, TB1 TC1",
	  "3F 65 25 00 24 09 6B 90 00",
	  true, 1, 5, false, 372, 1, 5000, 0, 10, T0, T0, false, 0, 0, 32, 4, 13 },
	{ "MIFARE Classic 1K through a PC/SC part 3 reader: TD1 T=0, TD2 T=1",
	  "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A",
	  false, 3, 15, true, 372, 1, 5000, 0, 10, BOTH, T0, false, 0, 0, 32, 4, 13 },
	{ "Microsoft Virtual Smart Card: T=1 without TCK (accepted)",
	  "3B 8D 01 80 FB A0 00 00 03 97 42 54 46 59 04 01",
	  false, 2, 13, false, 372, 1, 5000, 0, 10, T1, T1, false, 0, 0, 32, 4, 13 },
	{ "JCOP30 OP-DI 16k VISA (JavaCard): TB1 TC1",
	  "3B 66 00 FF 4A 43 4F 50 33 30",
	  false, 1, 6, false, 372, 1, 5000, 255, 10, T0, T0, false, 0, 0, 32, 4, 13 },
	{ "IBM MFC 4.22: first T=1 TA is 0xFF, an invalid IFSC: default 32",
	  "3B EF 00 FF 81 31 FF 65 49 42 4D 20 4D 46 43 39 32 32 39 32 38 39 30 17",
	  false, 3, 15, true, 372, 1, 5000, 255, 10, T1, T1, false, 0, 0, 32, 6, 5 },
};

static size_t hex_to_bytes(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	unsigned v;
	int used;

	while (*hex && n < cap && sscanf(hex, "%2x%n", &v, &used) == 1) {
		out[n++] = (uint8_t)v;
		hex += used;
		while (*hex == ' ')
			hex++;
	}
	return n;
}

static void check_case(const struct atr_case *c)
{
	uint8_t atr[64];
	size_t len = hex_to_bytes(c->hex, atr, sizeof(atr));
	struct smc_card_caps caps;

	print_message("%s\n", c->name);
	assert_int_equal(smc_atr_parse(atr, len, &caps), SMC_OK);
	assert_int_equal(caps.atr_len, len);
	assert_memory_equal(caps.atr, atr, len);
	assert_int_equal(caps.inverse, c->inverse);
	assert_int_equal(caps.n_groups, c->n_groups);
	assert_int_equal(caps.hist_len, c->hist_len);
	assert_memory_equal(caps.hist, atr + len - c->hist_len - (c->tck ? 1 : 0), c->hist_len);
	assert_int_equal(caps.tck_present, c->tck);
	assert_int_equal(caps.fi, c->fi);
	assert_int_equal(caps.di, c->di);
	assert_int_equal(caps.fmax_khz, c->fmax_khz);
	assert_int_equal(caps.n, c->n);
	assert_int_equal(caps.t0.wi, c->wi);
	assert_int_equal(caps.protocols, c->protocols);
	assert_int_equal(caps.first_protocol, c->first);
	assert_int_equal(caps.specific_mode, c->specific);
	assert_int_equal(caps.specific_protocol, c->specific_protocol);
	assert_false(caps.specific_implicit);
	assert_int_equal(caps.class_indicator, c->class_indicator);
	assert_int_equal(caps.t1.ifsc, c->ifsc);
	assert_int_equal(caps.t1.bwi, c->bwi);
	assert_int_equal(caps.t1.cwi, c->cwi);
	assert_false(caps.t1.crc);
	assert_int_equal(caps.selected_protocol, 0);
}

static void atr_table_of_published_atrs_parses_to_expected_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		check_case(&table[i]);
}

/* Every prefix and every one-byte change of the table's ATRs, each in a heap
 * block of exactly its size (AddressSanitizer catches a read past it): the
 * parser answers OK or BAD_ATR and never reads beyond the length it is given. */
static void atr_never_reads_past_its_length(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		uint8_t atr[64];
		size_t len = hex_to_bytes(table[i].hex, atr, sizeof(atr));

		for (size_t cut = 0; cut <= len; cut++) {
			for (size_t pos = 0; pos < cut; pos++) {
				uint8_t *copy = malloc(cut);
				struct smc_card_caps caps;
				smc_status st;

				assert_non_null(copy);
				memcpy(copy, atr, cut);
				copy[pos] ^= 0xF0;
				st = smc_atr_parse(copy, cut, &caps);
				assert_true(st == SMC_OK || st == SMC_ERR_BAD_ATR);
				free(copy);
			}
		}
	}
}

static void atr_keeps_interface_bytes_by_group(void **state)
{
	/* OpenPGP Card V2: TA1 18, TC1 FF, TD1 81; TD2 B1; TA3 FE, TB3 75, TD3 1F; TA4 03. */
	uint8_t atr[64];
	size_t len = hex_to_bytes(table[5].hex, atr, sizeof(atr));
	struct smc_card_caps caps;

	(void)state;
	assert_int_equal(smc_atr_parse(atr, len, &caps), SMC_OK);
	assert_int_equal(caps.group[0].present, SMC_TA | SMC_TC | SMC_TD);
	assert_int_equal(caps.group[0].ta, 0x18);
	assert_int_equal(caps.group[0].tc, 0xFF);
	assert_int_equal(caps.group[0].td, 0x81);
	assert_int_equal(caps.group[1].present, SMC_TD);
	assert_int_equal(caps.group[1].td, 0xB1);
	assert_int_equal(caps.group[2].present, SMC_TA | SMC_TB | SMC_TD);
	assert_int_equal(caps.group[2].tb, 0x75);
	assert_int_equal(caps.group[3].present, SMC_TA);
	assert_int_equal(caps.group[3].ta, 0x03);
	assert_int_equal(caps.ta1, 0x18);
}

static void atr_timing_defaults_at_4_mhz(void **state)
{
	/* No TA1, WI 10, BWI 4, CWI 13 at 4000 kHz: WT = 960*10*372/4000 = 892.8 ms,
	 * BWT = 11*372/4000 + 16*960*372/4000 = 1429.50 ms, CWT = 8203*372/4000 = 762.88 ms. */
	uint8_t atr[] = { 0x3B, 0x68, 0x00, 0xFF, 0x56, 0x43, 0x41, 0x52, 0x44, 0x6E, 0x73, 0x73 };
	struct smc_card_caps caps;

	(void)state;
	assert_int_equal(smc_atr_parse(atr, sizeof(atr), &caps), SMC_OK);
	assert_int_equal(caps.t0.wt_ms, 893);
	assert_int_equal(caps.t1.bwt_ms, 1430);
	assert_int_equal(caps.t1.cwt_ms, 763);
}

static void atr_timing_follows_fi_di_and_waiting_integers(void **state)
{
	uint8_t atr[64];
	size_t len;
	struct smc_card_caps caps;

	(void)state;
	/* EstEID: Fi 372, Di 12, BWI 4, CWI 5. BWT = (11*372 + 16*960*372*12)/(12*4000)
	 * = 1428.57 ms; CWT = 43*372/48000 = 0.33 ms, rounded up to 1. */
	len = hex_to_bytes(table[4].hex, atr, sizeof(atr));
	assert_int_equal(smc_atr_parse(atr, len, &caps), SMC_OK);
	assert_int_equal(caps.t1.bwt_ms, 1429);
	assert_int_equal(caps.t1.cwt_ms, 1);
	assert_int_equal(caps.t0.wt_ms, 893);
	/* Chronotachygraph: WI 255: WT = 960*255*372/4000 = 22766.4 ms. */
	len = hex_to_bytes(table[8].hex, atr, sizeof(atr));
	assert_int_equal(smc_atr_parse(atr, len, &caps), SMC_OK);
	assert_int_equal(caps.t0.wt_ms, 22767);
	/* Oberthur Cosmo: Fi 512: WT = 960*10*512/4000 = 1228.8 ms. */
	len = hex_to_bytes(table[7].hex, atr, sizeof(atr));
	assert_int_equal(smc_atr_parse(atr, len, &caps), SMC_OK);
	assert_int_equal(caps.t0.wt_ms, 1229);
}

static void atr_specific_mode_implicit_bit_and_crc(void **state)
{
	/* Constructed (no published ATR shows it): TD1 0x91 (TA2, TD2, T=1),
	 * TA2 0x11 (implicit parameters, T=1), TD2 0x71 (TA3 TB3 TC3, T=1),
	 * TA3 0x80 IFSC 128, TB3 0x23, TC3 0x01 CRC, then TCK. */
	uint8_t atr[] = { 0x3B, 0x80, 0x91, 0x11, 0x71, 0x80, 0x23, 0x01, 0x00 };
	struct smc_card_caps caps;
	uint8_t x = 0;

	(void)state;
	for (size_t i = 1; i < sizeof(atr) - 1; i++)
		x ^= atr[i];
	atr[sizeof(atr) - 1] = x;
	assert_int_equal(smc_atr_parse(atr, sizeof(atr), &caps), SMC_OK);
	assert_true(caps.specific_mode);
	assert_true(caps.specific_implicit);
	assert_int_equal(caps.specific_protocol, T1);
	assert_int_equal(caps.t1.ifsc, 128);
	assert_int_equal(caps.t1.bwi, 2);
	assert_int_equal(caps.t1.cwi, 3);
	assert_true(caps.t1.crc);
}

static void atr_tc2_zero_keeps_default_wi(void **state)
{
	/* The Belgian eID with TC2 changed to 0 (constructed): WI 0 is invalid. */
	uint8_t atr[] = { 0x3B, 0x98, 0x13, 0x40, 0x00, 0xA5, 0x03, 0x01, 0x01, 0x01, 0xAD, 0x13, 0x11 };
	struct smc_card_caps caps;

	(void)state;
	assert_int_equal(smc_atr_parse(atr, sizeof(atr), &caps), SMC_OK);
	assert_int_equal(caps.t0.wi, 10);
}

static void atr_rejects_wrong_tck(void **state)
{
	uint8_t atr[64];
	size_t len = hex_to_bytes(table[4].hex, atr, sizeof(atr));
	struct smc_card_caps caps;

	(void)state;
	atr[len - 1] ^= 0x01;
	assert_int_equal(smc_atr_parse(atr, len, &caps), SMC_ERR_BAD_ATR);
}

static void atr_rejects_truncated(void **state)
{
	uint8_t atr[64];
	size_t len = hex_to_bytes(table[4].hex, atr, sizeof(atr));
	struct smc_card_caps caps;

	(void)state;
	/* Historical bytes cut short (the TCK-less end is only allowed after all K). */
	assert_int_equal(smc_atr_parse(atr, len - 3, &caps), SMC_ERR_BAD_ATR);
	/* Interface bytes announced but missing: T0 FE wants TA1 TB1 TC1 TD1. */
	assert_int_equal(smc_atr_parse(atr, 4, &caps), SMC_ERR_BAD_ATR);
	/* TD2 announces TA3 and TB3; the ATR ends after TA3. */
	assert_int_equal(smc_atr_parse(atr, 8, &caps), SMC_ERR_BAD_ATR);
	/* T=0-only ATR one historical byte short. */
	len = hex_to_bytes(table[0].hex, atr, sizeof(atr));
	assert_int_equal(smc_atr_parse(atr, len - 1, &caps), SMC_ERR_BAD_ATR);
	/* Below the minimum of TS and T0. */
	assert_int_equal(smc_atr_parse(atr, 1, &caps), SMC_ERR_BAD_ATR);
	assert_int_equal(smc_atr_parse(atr, 0, &caps), SMC_ERR_BAD_ATR);
}

static void atr_accepts_missing_tck_right_after_historical_bytes(void **state)
{
	uint8_t atr[64];
	size_t len = hex_to_bytes(table[4].hex, atr, sizeof(atr));
	struct smc_card_caps caps;

	(void)state;
	assert_int_equal(smc_atr_parse(atr, len - 1, &caps), SMC_OK);
	assert_false(caps.tck_present);
	assert_int_equal(caps.hist_len, 14);
	assert_int_equal(caps.protocols, BOTH);
}

static void atr_tolerates_one_stray_byte_and_rejects_more(void **state)
{
	uint8_t atr[64];
	size_t len;
	struct smc_card_caps caps;

	(void)state;
	/* T=0 only: one stray byte (an unneeded TCK) is tolerated, two are not. */
	len = hex_to_bytes(table[0].hex, atr, sizeof(atr));
	atr[len] = 0x5A;
	assert_int_equal(smc_atr_parse(atr, len + 1, &caps), SMC_OK);
	assert_int_equal(caps.hist_len, table[0].hist_len);
	atr[len + 1] = 0x00;
	assert_int_equal(smc_atr_parse(atr, len + 2, &caps), SMC_ERR_BAD_ATR);
	/* A byte after the TCK. */
	len = hex_to_bytes(table[4].hex, atr, sizeof(atr));
	atr[len] = 0x00;
	assert_int_equal(smc_atr_parse(atr, len + 1, &caps), SMC_ERR_BAD_ATR);
}

static void atr_rejects_longer_than_33_bytes(void **state)
{
	uint8_t atr[34] = { 0x3B, 0x0F };
	struct smc_card_caps caps;

	(void)state;
	assert_int_equal(smc_atr_parse(atr, sizeof(atr), &caps), SMC_ERR_BAD_ATR);
	/* The same header with exactly K=15 bytes is fine. */
	assert_int_equal(smc_atr_parse(atr, 17, &caps), SMC_OK);
}

static void atr_rejects_more_than_16_groups(void **state)
{
	/* 3B 80 then 16 TDs 0x80 that each announce one more TD: a 17th group. */
	uint8_t atr[SMC_ATR_MAX];
	struct smc_card_caps caps;

	(void)state;
	atr[0] = 0x3B;
	atr[1] = 0x80;
	memset(atr + 2, 0x80, 16);
	atr[18] = 0x00;
	assert_int_equal(smc_atr_parse(atr, 19, &caps), SMC_ERR_BAD_ATR);
	/* 15 TDs, the last one ending the chain: exactly 16 groups, accepted. */
	memset(atr + 2, 0x80, 14);
	atr[16] = 0x00;
	assert_int_equal(smc_atr_parse(atr, 17, &caps), SMC_OK);
	assert_int_equal(caps.n_groups, 16);
}

static void atr_rejects_unknown_ts(void **state)
{
	uint8_t atr[] = { 0x3A, 0x00 };
	struct smc_card_caps caps;

	(void)state;
	assert_int_equal(smc_atr_parse(atr, sizeof(atr), &caps), SMC_ERR_BAD_ATR);
	atr[0] = 0x3B;
	assert_int_equal(smc_atr_parse(atr, sizeof(atr), &caps), SMC_OK);
}

/* The Postgirot ATR 3F 65 25 00 24 09 6B 90 00 as a reader sampling in the
 * direct convention sees it: each byte bit-reversed and complemented, by hand. */
static const uint8_t postgirot_read_direct[] = { 0x03, 0x59, 0x5B, 0xFF, 0xDB, 0x6F, 0x29, 0xF6, 0xFF };
static const uint8_t postgirot[] = { 0x3F, 0x65, 0x25, 0x00, 0x24, 0x09, 0x6B, 0x90, 0x00 };

static void atr_inverse_read_as_direct_is_decoded(void **state)
{
	struct smc_card_caps caps;

	(void)state;
	assert_int_equal(smc_atr_parse(postgirot_read_direct, sizeof(postgirot_read_direct), &caps),
			 SMC_OK);
	assert_true(caps.inverse);
	assert_int_equal(caps.atr_len, sizeof(postgirot));
	assert_memory_equal(caps.atr, postgirot, sizeof(postgirot));
	assert_int_equal(caps.hist_len, 5);
	assert_int_equal(caps.protocols, T0);
}

static void atr_inverse_read_of_malformed_atr_is_rejected(void **state)
{
	/* The same bytes one short: the decoded ATR lacks a historical byte. */
	struct smc_card_caps caps;

	(void)state;
	assert_int_equal(smc_atr_parse(postgirot_read_direct, sizeof(postgirot_read_direct) - 1, &caps),
			 SMC_ERR_BAD_ATR);
}

static void invert_data_reverses_and_complements(void **state)
{
	uint8_t buf[sizeof(postgirot)];

	(void)state;
	memcpy(buf, postgirot, sizeof(buf));
	smc_invert_data(buf, sizeof(buf));
	assert_memory_equal(buf, postgirot_read_direct, sizeof(buf));
	smc_invert_data(buf, sizeof(buf));
	assert_memory_equal(buf, postgirot, sizeof(buf));
}

static void atr_parse_failure_leaves_caps_untouched(void **state)
{
	uint8_t atr[] = { 0x3B, 0x81, 0x81 }; /* TD1 T=1 then nothing: K=1 missing */
	struct smc_card_caps caps;

	(void)state;
	memset(&caps, 0xA5, sizeof(caps));
	assert_int_equal(smc_atr_parse(atr, sizeof(atr), &caps), SMC_ERR_BAD_ATR);
	assert_int_equal(caps.fi, 0xA5A5A5A5u);
}

static void update_card_capabilities_sets_negotiable(void **state)
{
	struct smc_ext ext;
	uint8_t atr[64];
	size_t len = hex_to_bytes(table[4].hex, atr, sizeof(atr));

	(void)state;
	assert_int_equal(smc_ext_init(&ext), SMC_OK);
	ext.reader_caps.current_state = SMC_STATE_POWERED;
	memcpy(ext.card_caps.atr, atr, len);
	ext.card_caps.atr_len = len;
	assert_int_equal(smc_update_card_capabilities(&ext), SMC_OK);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_NEGOTIABLE);
	assert_int_equal(ext.card_caps.atr_len, len);
	assert_memory_equal(ext.card_caps.atr, atr, len);
	assert_int_equal(ext.card_caps.protocols, BOTH);
	assert_int_equal(ext.card_caps.selected_protocol, 0);
	smc_ext_destroy(&ext);
}

static void update_card_capabilities_specific_mode_selects_protocol(void **state)
{
	struct smc_ext ext;
	uint8_t atr[64];
	size_t len = hex_to_bytes(table[9].hex, atr, sizeof(atr));

	(void)state;
	assert_int_equal(smc_ext_init(&ext), SMC_OK);
	memcpy(ext.card_caps.atr, atr, len);
	ext.card_caps.atr_len = len;
	assert_int_equal(smc_update_card_capabilities(&ext), SMC_OK);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_SPECIFIC);
	assert_int_equal(ext.card_caps.selected_protocol, T1);
	smc_ext_destroy(&ext);
}

static void update_card_capabilities_uses_reader_clock(void **state)
{
	/* QEMU ATR (defaults) at 4800 kHz: WT = 960*10*372/4800 = 744 ms exactly,
	 * BWT = 0.8525 + 1190.4 = 1191.25 ms, CWT = 8203*372/4800 = 635.73 ms. */
	struct smc_ext ext;
	uint8_t atr[64];
	size_t len = hex_to_bytes(table[1].hex, atr, sizeof(atr));

	(void)state;
	assert_int_equal(smc_ext_init(&ext), SMC_OK);
	ext.reader_caps.clk_default_khz = 4800;
	memcpy(ext.card_caps.atr, atr, len);
	ext.card_caps.atr_len = len;
	assert_int_equal(smc_update_card_capabilities(&ext), SMC_OK);
	assert_int_equal(ext.card_caps.t0.wt_ms, 744);
	assert_int_equal(ext.card_caps.t1.bwt_ms, 1192);
	assert_int_equal(ext.card_caps.t1.cwt_ms, 636);
	smc_ext_destroy(&ext);
}

static void update_card_capabilities_decodes_inverse_read_in_place(void **state)
{
	struct smc_ext ext;

	(void)state;
	assert_int_equal(smc_ext_init(&ext), SMC_OK);
	memcpy(ext.card_caps.atr, postgirot_read_direct, sizeof(postgirot_read_direct));
	ext.card_caps.atr_len = sizeof(postgirot_read_direct);
	assert_int_equal(smc_update_card_capabilities(&ext), SMC_OK);
	assert_true(ext.card_caps.inverse);
	assert_memory_equal(ext.card_caps.atr, postgirot, sizeof(postgirot));
	smc_ext_destroy(&ext);
}

static void update_card_capabilities_bad_atr_keeps_state(void **state)
{
	struct smc_ext ext;

	(void)state;
	assert_int_equal(smc_ext_init(&ext), SMC_OK);
	ext.reader_caps.current_state = SMC_STATE_POWERED;
	ext.card_caps.atr[0] = 0x3B;
	ext.card_caps.atr[1] = 0x01; /* one historical byte announced, none there */
	ext.card_caps.atr_len = 2;
	assert_int_equal(smc_update_card_capabilities(&ext), SMC_ERR_BAD_ATR);
	assert_int_equal(ext.reader_caps.current_state, SMC_STATE_POWERED);
	ext.card_caps.atr_len = 40;
	assert_int_equal(smc_update_card_capabilities(&ext), SMC_ERR_BAD_ATR);
	smc_ext_destroy(&ext);
}

static void card_caps_clear_sets_iso_defaults(void **state)
{
	struct smc_card_caps caps;

	(void)state;
	memset(&caps, 0x5A, sizeof(caps));
	smc_card_caps_clear(&caps);
	assert_int_equal(caps.atr_len, 0);
	assert_int_equal(caps.ta1, 0x11);
	assert_int_equal(caps.fi, 372);
	assert_int_equal(caps.di, 1);
	assert_int_equal(caps.t0.wi, 10);
	assert_int_equal(caps.t1.ifsc, 32);
	assert_int_equal(caps.t1.cwi, 13);
	assert_int_equal(caps.t1.bwi, 4);
	assert_false(caps.t1.crc);
	assert_int_equal(caps.selected_protocol, 0);
	assert_int_equal(caps.protocols, 0);
}

static void status_str_names_every_status(void **state)
{
	(void)state;
	for (int st = SMC_OK; st <= SMC_MORE_PROCESSING; st++)
		assert_string_not_equal(smc_status_str((smc_status)st), "unknown status");
	assert_string_equal(smc_status_str((smc_status)999), "unknown status");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(atr_table_of_published_atrs_parses_to_expected_fields),
		cmocka_unit_test(atr_never_reads_past_its_length),
		cmocka_unit_test(atr_keeps_interface_bytes_by_group),
		cmocka_unit_test(atr_timing_defaults_at_4_mhz),
		cmocka_unit_test(atr_timing_follows_fi_di_and_waiting_integers),
		cmocka_unit_test(atr_specific_mode_implicit_bit_and_crc),
		cmocka_unit_test(atr_tc2_zero_keeps_default_wi),
		cmocka_unit_test(atr_rejects_wrong_tck),
		cmocka_unit_test(atr_rejects_truncated),
		cmocka_unit_test(atr_accepts_missing_tck_right_after_historical_bytes),
		cmocka_unit_test(atr_tolerates_one_stray_byte_and_rejects_more),
		cmocka_unit_test(atr_rejects_longer_than_33_bytes),
		cmocka_unit_test(atr_rejects_more_than_16_groups),
		cmocka_unit_test(atr_rejects_unknown_ts),
		cmocka_unit_test(atr_inverse_read_as_direct_is_decoded),
		cmocka_unit_test(atr_inverse_read_of_malformed_atr_is_rejected),
		cmocka_unit_test(invert_data_reverses_and_complements),
		cmocka_unit_test(atr_parse_failure_leaves_caps_untouched),
		cmocka_unit_test(update_card_capabilities_sets_negotiable),
		cmocka_unit_test(update_card_capabilities_specific_mode_selects_protocol),
		cmocka_unit_test(update_card_capabilities_uses_reader_clock),
		cmocka_unit_test(update_card_capabilities_decodes_inverse_read_in_place),
		cmocka_unit_test(update_card_capabilities_bad_atr_keeps_state),
		cmocka_unit_test(card_caps_clear_sets_iso_defaults),
		cmocka_unit_test(status_str_names_every_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
