/* PIN entry on the reader's keypad: FEATURE_VERIFY_PIN_DIRECT and
 * FEATURE_MODIFY_PIN_DIRECT (PC/SC v2 part 10) through PC_to_RDR_Secure
 * (CCID 1.1 6.1.11).
 *
 * The application's PIN_VERIFY_STRUCTURE / PIN_MODIFY_STRUCTURE (reader.h) is
 * parsed into a struct pin_entry, checked field by field, and only then turned
 * into the CCID structure: the same fields in CCID's order, without bTimerOut2
 * (CCID has one timeout) and ulDataLength (dwLength says it), and with the
 * modification's bMsgIndex2/3 only when bNumberMessage asks for them.
 *
 * The card's answer goes back as the response APDU. A PIN entry that timed out
 * or was cancelled on the keypad is no error of the reader: PC/SC part 10 (2.5)
 * has the IFD answer SW 64 00 and 64 01 then, so that the application can
 * tell the user; pcscd would turn any IFD error into SCARD_E_NOT_TRANSACTED. */
#include <string.h>

#include "ioctl.h"
#include "smc_log.h"

/* reader.h: the fixed parts before abData */
#define VERIFY_STRUCT_LEN 19u
#define MODIFY_STRUCT_LEN 24u
/* CCID: bPINOperation and the largest modification structure (bMsgIndex1-3) */
#define SECURE_HEADER_MAX (1u + 20u)
/* The PIN APDU: a short command APDU (ISO/IEC 7816-3:2006 12.1.3), CLA INS P1
 * P2 at least. PIN blocks are at most 15 bytes (bmPINBlockString), so a short
 * APDU holds anything a keypad fills in. */
#define PIN_APDU_MIN 4u
#define PIN_APDU_MAX CCID_SHORT_APDU_MAX

#define OP_VERIFY 0x00u   /* bPINOperation */
#define OP_MODIFY 0x01u

/* bmFormatString (CCID 6.1.11.4) */
#define FORMAT_UNITS_BYTES 0x80u
#define FORMAT_POSITION(f) (((f) >> 3) & 0x0Fu)
#define FORMAT_TYPE(f) ((f) & 0x03u)
#define FORMAT_TYPE_RFU 0x03u       /* 0 binary, 1 BCD, 2 ASCII */
/* bmPINBlockString */
#define BLOCK_LENGTH_BITS(b) ((b) >> 4)
#define BLOCK_BYTES(b) ((b) & 0x0Fu)
/* bmPINLengthFormat */
#define LENGTH_FORMAT_RFU 0xE0u
#define LENGTH_UNITS_BYTES 0x10u
#define LENGTH_POSITION(l) ((l) & 0x0Fu)
/* bConfirmPIN bit 1: the current PIN is entered too */
#define CONFIRM_CURRENT_PIN 0x02u
/* bNumberMessage 0xFF: the reader's default messages */
#define MESSAGES_DEFAULT 0xFFu
#define VERIFY_MESSAGES_MAX 1u
#define MODIFY_MESSAGES_MAX 3u

/* The PIN entry's wait (pin_timeout_ms): at least this, then the card's own
 * time for the APDU. */
#define PIN_WAIT_MIN_MS 30000u
#define PIN_WAIT_MARGIN_MS 10000u
#define PIN_WAIT_DEFAULT_MS 90000u /* bTimerOut 0: readers use up to a minute or so */

/* PC/SC part 10 2.5: answers the IFD gives for its own outcomes */
#define SW_PIN_TIMEOUT 0x6400u
#define SW_PIN_CANCELLED 0x6401u
#define SW_LEN 2u

/* Both structures, field by field (names as in reader.h). */
struct pin_entry {
	bool modify;
	const char *name;              /* for logs */
	uint8_t bTimerOut, bTimerOut2;
	uint8_t bmFormatString, bmPINBlockString, bmPINLengthFormat;
	uint8_t bInsertionOffsetOld, bInsertionOffsetNew;   /* modification */
	uint16_t wPINMaxExtraDigit;    /* XXYY: minimum XX, maximum YY digits */
	uint8_t bConfirmPIN;           /* modification */
	uint8_t bEntryValidationCondition;
	uint8_t bNumberMessage;
	uint16_t wLangId;
	uint8_t bMsgIndex[3];          /* verification: bMsgIndex in [0] */
	uint8_t bTeoPrologue[3];
	uint32_t ulDataLength;
	const uint8_t *apdu;           /* abData */
	size_t apdu_len;               /* the bytes after the structure */
	size_t lc;                     /* the APDU's Lc (0: no data field) */
};

static uint16_t host16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t host32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static unsigned min_digits(const struct pin_entry *e)
{
	return e->wPINMaxExtraDigit >> 8;
}

static unsigned max_digits(const struct pin_entry *e)
{
	return e->wPINMaxExtraDigit & 0xFFu;
}

/* ---- parsing (reader.h's layouts) ----------------------------------------- */

static smc_status check_length(unsigned slot, const char *name, size_t len, size_t fixed)
{
	if (len >= fixed + PIN_APDU_MIN)
		return SMC_OK;
	log_critical("slot %u: %s structure of %zu bytes: at least %zu needed (%zu bytes, then an APDU of at least %u)",
		     slot, name, len, fixed + PIN_APDU_MIN, fixed, PIN_APDU_MIN);
	return SMC_ERR_INVALID_PARAM;
}

/* The five bytes both structures begin with (PIN_VERIFY_STRUCTURE and
 * PIN_MODIFY_STRUCTURE, reader.h): the timeouts and the PIN's format. */
static void parse_head(const uint8_t *m, const char *name, struct pin_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->name = name;
	e->bTimerOut = m[0];
	e->bTimerOut2 = m[1];
	e->bmFormatString = m[2];
	e->bmPINBlockString = m[3];
	e->bmPINLengthFormat = m[4];
}

static void parse_verify(const uint8_t *m, size_t len, struct pin_entry *e)
{
	parse_head(m, "PIN verification", e);
	e->wPINMaxExtraDigit = host16(m + 5);
	e->bEntryValidationCondition = m[7];
	e->bNumberMessage = m[8];
	e->wLangId = host16(m + 9);
	e->bMsgIndex[0] = m[11];
	memcpy(e->bTeoPrologue, m + 12, 3);
	e->ulDataLength = host32(m + 15);
	e->apdu = m + VERIFY_STRUCT_LEN;
	e->apdu_len = len - VERIFY_STRUCT_LEN;
}

static void parse_modify(const uint8_t *m, size_t len, struct pin_entry *e)
{
	parse_head(m, "PIN modification", e);
	e->modify = true;
	e->bInsertionOffsetOld = m[5];
	e->bInsertionOffsetNew = m[6];
	e->wPINMaxExtraDigit = host16(m + 7);
	e->bConfirmPIN = m[9];
	e->bEntryValidationCondition = m[10];
	e->bNumberMessage = m[11];
	e->wLangId = host16(m + 12);
	memcpy(e->bMsgIndex, m + 14, 3);
	memcpy(e->bTeoPrologue, m + 17, 3);
	e->ulDataLength = host32(m + 20);
	e->apdu = m + MODIFY_STRUCT_LEN;
	e->apdu_len = len - MODIFY_STRUCT_LEN;
}

/* ---- checks, one field at a time --------------------------------------------- */

static smc_status check_formats(unsigned slot, const struct pin_entry *e)
{
	unsigned max_msg = e->modify ? MODIFY_MESSAGES_MAX : VERIFY_MESSAGES_MAX;

	if (FORMAT_TYPE(e->bmFormatString) == FORMAT_TYPE_RFU) {
		log_critical("slot %u: %s: bmFormatString 0x%02X has PIN format 3, which is RFU "
			     "(0 binary, 1 BCD, 2 ASCII)", slot, e->name, e->bmFormatString);
		return SMC_ERR_INVALID_PARAM;
	}
	if (e->bmPINLengthFormat & LENGTH_FORMAT_RFU) {
		log_critical("slot %u: %s: bmPINLengthFormat 0x%02X sets RFU bits 7-5", slot, e->name,
			     e->bmPINLengthFormat);
		return SMC_ERR_INVALID_PARAM;
	}
	if (max_digits(e) == 0 || min_digits(e) > max_digits(e)) {
		log_critical("slot %u: %s: wPINMaxExtraDigit 0x%04X asks for %u to %u digits", slot, e->name,
			     e->wPINMaxExtraDigit, min_digits(e), max_digits(e));
		return SMC_ERR_INVALID_PARAM;
	}
	if (e->bEntryValidationCondition == 0 ||
	    (e->bEntryValidationCondition & ~PART10_ENTRY_VALIDATION_ALL) != 0) {
		log_critical("slot %u: %s: bEntryValidationCondition 0x%02X is none of 1 (maximum size), "
			     "2 (validation key), 4 (timeout) or their combinations", slot, e->name,
			     e->bEntryValidationCondition);
		return SMC_ERR_INVALID_PARAM;
	}
	if (e->bNumberMessage > max_msg && e->bNumberMessage != MESSAGES_DEFAULT) {
		log_critical("slot %u: %s: bNumberMessage %u: 0 to %u, or 0xFF (default), expected", slot,
			     e->name, e->bNumberMessage, max_msg);
		return SMC_ERR_INVALID_PARAM;
	}
	return SMC_OK;
}

/* ISO/IEC 7816-3:2006 12.1.3: a short command APDU is CLA INS P1 P2 (case 1),
 * then Le (2S), or Lc and Lc bytes (3S), and Le (4S). *lc: 0 without data. */
static bool short_apdu_shape(const uint8_t *a, size_t len, size_t *lc)
{
	*lc = 0;
	if (len <= 5)
		return len >= PIN_APDU_MIN;
	if (a[4] == 0)
		return false; /* an extended length */
	*lc = a[4];
	return len == 5u + *lc || len == 6u + *lc;
}

static smc_status check_apdu(struct smc_ext *ext, struct pin_entry *e, size_t header_len)
{
	const struct ccid_reader *r = ccid_slot_of(ext)->reader;
	unsigned slot = ccid_slot_of(ext)->index;
	size_t used = CCID_HEADER_LEN + header_len;
	size_t room = r->desc.max_msg_len > used ? r->desc.max_msg_len - used : 0;

	if (e->ulDataLength != e->apdu_len) {
		log_critical("slot %u: %s: ulDataLength %u, but %zu bytes follow the structure", slot,
			     e->name, e->ulDataLength, e->apdu_len);
		return SMC_ERR_INVALID_PARAM;
	}
	if (e->apdu_len > PIN_APDU_MAX || e->apdu_len > room) {
		log_critical("slot %u: %s: abData of %zu bytes is longer than a short APDU (%u) or the "
			     "reader's message leaves room for (%zu)", slot, e->name, e->apdu_len,
			     PIN_APDU_MAX, room);
		return SMC_ERR_INVALID_PARAM;
	}
	if (!short_apdu_shape(e->apdu, e->apdu_len, &e->lc)) {
		/* only lengths above 5 can fail: byte 4 is there */
		log_critical("slot %u: %s: abData of %zu bytes (byte 4: 0x%02X) is no short command APDU",
			     slot, e->name, e->apdu_len, e->apdu[4]);
		return SMC_ERR_INVALID_PARAM;
	}
	return SMC_OK;
}

/* A bit position within the data field: bytes or bits as the flag says. */
static size_t in_bits(size_t base_bytes, unsigned position, bool bytes)
{
	return base_bytes * 8u + position * (bytes ? 8u : 1u);
}

/* The PIN block (and the PIN length field, if any) for the PIN inserted at
 * byte offset base must lie within the APDU's data field (CCID 6.1.11.4). */
static smc_status check_pin_place(unsigned slot, const struct pin_entry *e, size_t base,
				  const char *which)
{
	size_t data_bits = e->lc * 8u;
	size_t start = in_bits(base, FORMAT_POSITION(e->bmFormatString),
			       e->bmFormatString & FORMAT_UNITS_BYTES);
	size_t block = BLOCK_BYTES(e->bmPINBlockString) * 8u;
	size_t length_at = in_bits(base, LENGTH_POSITION(e->bmPINLengthFormat),
				   e->bmPINLengthFormat & LENGTH_UNITS_BYTES);
	size_t length_bits = BLOCK_LENGTH_BITS(e->bmPINBlockString);

	if (start + (block ? block : 1u) > data_bits) {
		log_critical("slot %u: %s: the %s would start at bit %zu (offset %zu, bmFormatString 0x%02X) "
			     "and take %zu bits (bmPINBlockString 0x%02X): past the %zu-byte data field of "
			     "abPINApdu", slot, e->name, which, start, base, e->bmFormatString, block,
			     e->bmPINBlockString, e->lc);
		return SMC_ERR_INVALID_PARAM;
	}
	if (length_bits > 0 && length_at + length_bits > data_bits) {
		log_critical("slot %u: %s: the length field of the %s (bit %zu, %zu bits; bmPINLengthFormat "
			     "0x%02X) lies past the %zu-byte data field of abPINApdu", slot, e->name, which,
			     length_at, length_bits, e->bmPINLengthFormat, e->lc);
		return SMC_ERR_INVALID_PARAM;
	}
	return SMC_OK;
}

static smc_status check_pin_places(unsigned slot, const struct pin_entry *e)
{
	smc_status st;

	/* A case 1 APDU with no PIN block: the reader appends the PIN (some
	 * readers are used so); with a block to fill, a data field is needed. */
	if (e->lc == 0) {
		if (BLOCK_BYTES(e->bmPINBlockString) == 0 && BLOCK_LENGTH_BITS(e->bmPINBlockString) == 0)
			return SMC_OK;
		log_critical("slot %u: %s: bmPINBlockString 0x%02X asks for a PIN block, but abPINApdu has "
			     "no data field", slot, e->name, e->bmPINBlockString);
		return SMC_ERR_INVALID_PARAM;
	}
	if (!e->modify)
		return check_pin_place(slot, e, 0, "PIN");
	if (e->bInsertionOffsetNew >= e->lc) {
		log_critical("slot %u: %s: bInsertionOffsetNew %u is past the %zu-byte data field", slot,
			     e->name, e->bInsertionOffsetNew, e->lc);
		return SMC_ERR_INVALID_PARAM;
	}
	st = check_pin_place(slot, e, e->bInsertionOffsetNew, "new PIN");
	if (st != SMC_OK || !(e->bConfirmPIN & CONFIRM_CURRENT_PIN))
		return st;
	if (e->bInsertionOffsetOld >= e->lc) {
		log_critical("slot %u: %s: bInsertionOffsetOld %u is past the %zu-byte data field", slot,
			     e->name, e->bInsertionOffsetOld, e->lc);
		return SMC_ERR_INVALID_PARAM;
	}
	return check_pin_place(slot, e, e->bInsertionOffsetOld, "current PIN");
}

/* The card must be there with its protocol chosen, at a level where the reader
 * can send the APDU itself: at TPDU level over T=1 the reader would need our
 * T=1 block numbering (bTeoPrologue) and the engine would lose step with the
 * card; at character level the reader does not run the protocol at all. */
static smc_status check_card(struct smc_ext *ext, const struct pin_entry *e)
{
	const struct ccid_descriptor *d = &ccid_slot_of(ext)->reader->desc;
	enum smc_card_state state = ext->reader_caps.current_state;
	unsigned slot = ccid_slot_of(ext)->index;

	if (state == SMC_STATE_ABSENT) {
		log_info("slot %u: %s refused: no card", slot, e->name);
		return SMC_ERR_NO_MEDIA;
	}
	if (state != SMC_STATE_SPECIFIC) {
		log_info("slot %u: %s refused: card state %s, no protocol selected (connect first)", slot,
			 e->name, smc_state_str(state));
		return SMC_ERR_INVALID_STATE;
	}
	if (d->level == CCID_LEVEL_CHARACTER ||
	    (d->level == CCID_LEVEL_TPDU && ext->card_caps.selected_protocol == SMC_PROTOCOL_T1)) {
		log_critical("slot %u: %s: PC_to_RDR_Secure at %s level with T=%u is not supported", slot,
			     e->name, ccid_level_str(d->level),
			     ext->card_caps.selected_protocol == SMC_PROTOCOL_T1 ? 1u : 0u);
		return SMC_ERR_NOT_SUPPORTED;
	}
	return SMC_OK;
}

/* ---- the Secure message ----------------------------------------------------- */

/* CCID 6.1.11.4 (verification) and 6.1.11.7 (modification), bPINOperation
 * first, up to abPINApdu; wPINMaxExtraDigit and wLangId little-endian.
 * Returns the length (at most SECURE_HEADER_MAX). */
static size_t build_header(const struct pin_entry *e, uint8_t out[SECURE_HEADER_MAX])
{
	size_t n = 0;

	out[n++] = e->modify ? OP_MODIFY : OP_VERIFY;
	out[n++] = e->bTimerOut;
	out[n++] = e->bmFormatString;
	out[n++] = e->bmPINBlockString;
	out[n++] = e->bmPINLengthFormat;
	if (e->modify) {
		out[n++] = e->bInsertionOffsetOld;
		out[n++] = e->bInsertionOffsetNew;
	}
	out[n++] = (uint8_t)e->wPINMaxExtraDigit;
	out[n++] = (uint8_t)(e->wPINMaxExtraDigit >> 8);
	if (e->modify)
		out[n++] = e->bConfirmPIN;
	out[n++] = e->bEntryValidationCondition;
	out[n++] = e->bNumberMessage;
	out[n++] = (uint8_t)e->wLangId;
	out[n++] = (uint8_t)(e->wLangId >> 8);
	out[n++] = e->bMsgIndex[0];
	/* bMsgIndex2 when there is a second message, bMsgIndex3 with a third
	 * (0xFF, the default messages, counts as three), as libccid sends them */
	if (e->modify && e->bNumberMessage != 0)
		out[n++] = e->bMsgIndex[1];
	if (e->modify && e->bNumberMessage >= MODIFY_MESSAGES_MAX)
		out[n++] = e->bMsgIndex[2];
	memcpy(out + n, e->bTeoPrologue, 3);
	return n + 3;
}

/* The CCID structure's length before abPINApdu. */
static size_t secure_header_len(const struct pin_entry *e)
{
	uint8_t scratch[SECURE_HEADER_MAX];

	return build_header(e, scratch);
}

/* How long the user may take: bTimerOut seconds and a margin, or with
 * bTimerOut 0 (the reader's own default, unknown here) a generous bound, so
 * that the driver never gives up while the reader still waits for keys. */
static unsigned pin_timeout_ms(struct smc_ext *ext, const struct pin_entry *e)
{
	unsigned user = e->bTimerOut ? e->bTimerOut * 1000u + PIN_WAIT_MARGIN_MS
				     : PIN_WAIT_DEFAULT_MS;

	if (user < PIN_WAIT_MIN_MS)
		user = PIN_WAIT_MIN_MS;
	return user + ccid_xfr_timeout_ms(ext);
}

static smc_status put_sw(struct smc_ext *ext, uint16_t sw)
{
	const uint8_t out[SW_LEN] = { (uint8_t)(sw >> 8), (uint8_t)sw };

	return ccid_ioctl_reply(ext, out, sizeof(out));
}

static smc_status secure_failed(struct smc_ext *ext, const struct pin_entry *e, const struct ccid_answer *a)
{
	smc_status st = ccid_answer_failure(a, "Secure");

	if (a->icc == CCID_ICC_ABSENT)
		ccid_track_icc(ext, CCID_ICC_ABSENT);
	if (a->bError == CCID_ERR_PIN_TIMEOUT && a->icc != CCID_ICC_ABSENT) {
		log_info("slot %u: %s timed out on the keypad: SW 64 00", ccid_slot_of(ext)->index, e->name);
		return put_sw(ext, SW_PIN_TIMEOUT);
	}
	if (a->bError == CCID_ERR_PIN_CANCELLED && a->icc != CCID_ICC_ABSENT) {
		log_info("slot %u: %s cancelled on the keypad: SW 64 01", ccid_slot_of(ext)->index, e->name);
		return put_sw(ext, SW_PIN_CANCELLED);
	}
	return st;
}

static smc_status run_secure(struct smc_ext *ext, const struct pin_entry *e)
{
	struct ccid_slot *s = ccid_slot_of(ext);
	struct smc_io *io = &ext->io;
	uint8_t data[SECURE_HEADER_MAX + PIN_APDU_MAX];
	size_t n = build_header(e, data);
	struct ccid_answer a;
	struct ccid_cmd cmd;
	smc_status st;

	memcpy(data + n, e->apdu, e->apdu_len); /* checked: at most PIN_APDU_MAX */
	ccid_cmd_secure(&cmd, s->index, 0, 0, data, n + e->apdu_len);
	log_info("slot %u: %s on the keypad (%u to %u digits, bTimerOut %u s)", s->index, e->name,
		 min_digits(e), max_digits(e), e->bTimerOut);
	st = ccid_ioctl_transact(ext, &cmd, pin_timeout_ms(ext, e), &a);
	if (st != SMC_OK)
		return st;
	if (a.cmd == CCID_CMD_FAILED)
		return secure_failed(ext, e, &a);
	if (a.hdr.dwLength < SW_LEN) {
		log_critical("slot %u: %s: the reader's answer has %u bytes, no SW1 SW2", s->index, e->name,
			     a.hdr.dwLength);
		io->reply_len = 0;
		return SMC_ERR_COMM;
	}
	log_info("slot %u: %s: the card answered SW %02X %02X", s->index, e->name,
		 io->reply[io->reply_len - 2], io->reply[io->reply_len - 1]);
	return SMC_OK;
}

/* ---- the two features ------------------------------------------------------- */

static smc_status pin_entry(struct smc_ext *ext, bool modify)
{
	const struct ccid_descriptor *d = &ccid_slot_of(ext)->reader->desc;
	unsigned slot = ccid_slot_of(ext)->index;
	uint8_t need = modify ? CCID_PIN_SUPPORT_MODIFY : CCID_PIN_SUPPORT_VERIFY;
	const char *name = modify ? "PIN modification" : "PIN verification";
	struct smc_io *io = &ext->io;
	struct pin_entry e;
	smc_status st;

	if (!(d->bPINSupport & need)) {
		log_info("slot %u: %s: the reader does not offer it (bPINSupport 0x%02X)", slot, name,
			 d->bPINSupport);
		return SMC_ERR_NOT_SUPPORTED;
	}
	st = check_length(slot, name, io->request_len, modify ? MODIFY_STRUCT_LEN : VERIFY_STRUCT_LEN);
	if (st != SMC_OK)
		return st;
	if (modify)
		parse_modify(io->request, io->request_len, &e);
	else
		parse_verify(io->request, io->request_len, &e);
	st = check_formats(slot, &e);
	if (st == SMC_OK)
		st = check_apdu(ext, &e, secure_header_len(&e));
	if (st == SMC_OK)
		st = check_pin_places(slot, &e);
	if (st != SMC_OK)
		return st;
	/* the answer must have somewhere to go before the user types the PIN */
	if (io->reply_cap < SW_LEN) {
		log_critical("slot %u: %s: a buffer of %zu bytes cannot take the card's SW1 SW2", slot, name,
			     io->reply_cap);
		io->reply_len = SW_LEN;
		return SMC_ERR_BUFFER_TOO_SMALL;
	}
	st = check_card(ext, &e);
	if (st != SMC_OK)
		return st;
	return run_secure(ext, &e);
}

smc_status ccid_pin_verify(struct smc_ext *ext)
{
	return pin_entry(ext, false);
}

smc_status ccid_pin_modify(struct smc_ext *ext)
{
	return pin_entry(ext, true);
}
