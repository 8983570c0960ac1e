/* T=0 at TPDU level: ISO/IEC 7816-3:2006 section 10 (the TPDU: CLA INS P1 P2 P3)
 * and ISO/IEC 7816-4:2013 section 5.1 (the APDU cases). There is no automatic
 * GET RESPONSE or ENVELOPE here: a 61xx or 6Cxx goes back to the application. */
#include <string.h>

#include "smc_log.h"
#include "smclib_internal.h"

#define HDR_LEN 4       /* CLA INS P1 P2 */
#define T0_MAX_DATA 256 /* a short Le of 00 means 256 */

enum apdu_case { CASE_1, CASE_2S, CASE_3S, CASE_4S, CASE_2E, CASE_3E, CASE_4E };

/* An APDU split into its fields (7816-4 5.1), after its length was checked. */
struct apdu {
	enum apdu_case kind;
	size_t lc;          /* bytes of command data */
	const uint8_t *data;
	uint32_t le;        /* bytes expected back, 0 when none (256 or 65536 for 00) */
};

static smc_status apdu_parse_extended(const uint8_t *a, size_t len, struct apdu *out)
{
	size_t n = ((size_t)a[5] << 8) | a[6];

	if (len == 7) {
		out->kind = CASE_2E;
		out->le = n ? (uint32_t)n : 65536u;
		return SMC_OK;
	}
	if (n == 0) {
		log_critical("extended APDU of %zu bytes has Lc = 0", len);
		return SMC_ERR_INVALID_PARAM;
	}
	out->lc = n;
	out->data = a + 7;
	if (len == 7 + n) {
		out->kind = CASE_3E;
		return SMC_OK;
	}
	if (len == 7 + n + 2) {
		size_t le = ((size_t)a[len - 2] << 8) | a[len - 1];

		out->kind = CASE_4E;
		out->le = le ? (uint32_t)le : 65536u;
		return SMC_OK;
	}
	log_critical("extended APDU of %zu bytes does not match Lc = %zu (expected %zu or %zu bytes)",
		     len, n, 7 + n, 9 + n);
	return SMC_ERR_INVALID_PARAM;
}

/* 7816-4 5.1: the case follows from the length and the byte after the header. */
static smc_status apdu_parse(const uint8_t *a, size_t len, struct apdu *out)
{
	size_t b4;

	memset(out, 0, sizeof(*out));
	if (a == NULL || len < HDR_LEN) {
		log_critical("APDU of %zu bytes is shorter than its 4-byte header", a ? len : 0);
		return SMC_ERR_INVALID_PARAM;
	}
	if (len == HDR_LEN) {
		out->kind = CASE_1;
		return SMC_OK;
	}
	b4 = a[HDR_LEN];
	if (len == 5) {
		out->kind = CASE_2S;
		out->le = b4 ? (uint32_t)b4 : 256u;
		return SMC_OK;
	}
	if (b4 == 0) {
		if (len >= 7)
			return apdu_parse_extended(a, len, out);
		log_critical("APDU of %zu bytes with 00 after the header matches no case", len);
		return SMC_ERR_INVALID_PARAM;
	}
	out->lc = b4;
	out->data = a + 5;
	if (len == 5 + b4) {
		out->kind = CASE_3S;
		return SMC_OK;
	}
	if (len == 6 + b4) {
		out->kind = CASE_4S;
		out->le = a[len - 1] ? a[len - 1] : 256u;
		return SMC_OK;
	}
	log_critical("APDU of %zu bytes does not match Lc = %zu (expected %zu or %zu bytes)",
		     len, b4, 5 + b4, 6 + b4);
	return SMC_ERR_INVALID_PARAM;
}

/* 7816-3 10.3.2: the TPDU carries P3 = Lc (cases 3, 4) or Le (case 2), 00 for case 1.
 * Extended APDUs fit when their data or Le fit in one byte; otherwise they would
 * need ENVELOPE or GET RESPONSE chaining, which this layer does not do. */
static smc_status t0_p3(const struct apdu *ap, uint8_t *p3, size_t *data_len)
{
	*data_len = 0;
	switch (ap->kind) {
	case CASE_1:
		*p3 = 0;
		return SMC_OK;
	case CASE_2S:
	case CASE_2E:
		if (ap->le > T0_MAX_DATA) {
			log_critical("extended case 2 APDU with Le = %u: extended APDUs over T=0 need GET RESPONSE/ENVELOPE handling, not supported yet",
				     ap->le);
			return SMC_ERR_NOT_SUPPORTED;
		}
		*p3 = (uint8_t)(ap->le & 0xFF);
		return SMC_OK;
	case CASE_3S:
	case CASE_4S:
	case CASE_3E:
	case CASE_4E:
		if (ap->lc > 255) {
			log_critical("extended APDU with Lc = %zu: extended APDUs over T=0 need GET RESPONSE/ENVELOPE handling, not supported yet",
				     ap->lc);
			return SMC_ERR_NOT_SUPPORTED;
		}
		*p3 = (uint8_t)ap->lc;
		*data_len = ap->lc;
		return SMC_OK;
	}
	return SMC_ERR_INVALID_PARAM;
}

smc_status smc_t0_request(const uint8_t *apdu, size_t apdu_len, uint8_t *tpdu, size_t tpdu_cap,
			  size_t *tpdu_len)
{
	struct apdu ap;
	size_t data_len, need;
	uint8_t p3;
	smc_status st;

	if (tpdu_len == NULL || (tpdu == NULL && tpdu_cap != 0)) {
		log_critical("no TPDU buffer or length to fill");
		return SMC_ERR_INVALID_PARAM;
	}
	*tpdu_len = 0;
	st = apdu_parse(apdu, apdu_len, &ap);
	if (st != SMC_OK)
		return st;
	st = t0_p3(&ap, &p3, &data_len);
	if (st != SMC_OK)
		return st;
	need = HDR_LEN + 1 + data_len;
	if (need > tpdu_cap) {
		log_critical("T=0 TPDU needs %zu bytes, buffer holds %zu", need, tpdu_cap);
		return SMC_ERR_BUFFER_TOO_SMALL;
	}
	memcpy(tpdu, apdu, HDR_LEN);
	tpdu[HDR_LEN] = p3;
	if (data_len)
		memcpy(tpdu + HDR_LEN + 1, ap.data, data_len);
	*tpdu_len = need;
	return SMC_OK;
}

/* 7816-3 10.3.3: the TPDU ends with SW1 SW2, SW1 being 6X (not 60, the NULL
 * procedure byte) or 9X. Data only comes back for cases 2 and 4, at most Le. */
smc_status smc_t0_reply(const uint8_t *apdu, size_t apdu_len, const uint8_t *reply, size_t reply_len)
{
	struct apdu ap;
	size_t data_len;
	uint8_t sw1;
	smc_status st;

	st = apdu_parse(apdu, apdu_len, &ap);
	if (st != SMC_OK)
		return st;
	if (reply == NULL || reply_len < 2) {
		log_critical("T=0 reply of %zu bytes lacks SW1 SW2", reply ? reply_len : 0);
		return SMC_ERR_COMM;
	}
	data_len = reply_len - 2;
	if (data_len > T0_MAX_DATA) {
		log_critical("T=0 reply carries %zu data bytes, more than %d", data_len, T0_MAX_DATA);
		return SMC_ERR_COMM;
	}
	if (data_len > ap.le) {
		log_critical("T=0 reply carries %zu data bytes, but the APDU expects at most %u",
			     data_len, ap.le);
		return SMC_ERR_COMM;
	}
	sw1 = reply[reply_len - 2];
	if (sw1 == 0x60 || ((sw1 & 0xF0) != 0x60 && (sw1 & 0xF0) != 0x90)) {
		log_critical("T=0 reply status %02X %02X: SW1 is not 6X or 9X", sw1,
			     reply[reply_len - 1]);
		return SMC_ERR_COMM;
	}
	return SMC_OK;
}
