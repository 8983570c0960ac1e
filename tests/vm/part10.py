#!/usr/bin/python3
"""PC/SC v2 part 10 through pcscd: the features of a PIN pad reader read back
with pyscard (SCardControl), PIN verification and modification on the
virtual keypad checked on the card, malformed structures and too small
buffers refused. A client of the test bed for smartcrd-vreader with
pin-support set (tests/vm/scenarios/vreader.sh, runs with +part10); the
card's applet and the virtual keypad are described in sim/README.md.

Usage:
  part10.py [options]                   the checks below with Escape not allowed
  part10.py --escape-allowed [options]  the reader's driver has ifdDriverOptions
                                        bit 0x01 set: part10-escape-allowed only
Options: --keypad-pin P (the PIN the virtual keypad types; the card's PIN
must be the same at start), --new-pin P (keypad-new-pin), --lcd 0xLLCC
(wLcdLayout), --vid/--pid (hex), --level short|extended|tpdu|character,
--reader SUBSTRING, --mechanical (also part10-mechanical).

Checks, one line each, "PASS part10-NAME: detail" or "FAIL part10-NAME: why":
  part10-features   CM_IOCTL_GET_FEATURE_REQUEST (SCARD_CTL_CODE(3400)) lists
                    VERIFY_PIN_DIRECT, MODIFY_PIN_DIRECT, IFD_PIN_PROPERTIES
                    and GET_TLV_PROPERTIES, each with a 4-byte control code,
                    and not CCID_ESC_COMMAND; the Windows value of the request
                    (0x313520) gives the same list
  part10-tlv        FEATURE_GET_TLV_PROPERTIES: wLcdLayout as the profile,
                    bMinPINSize <= bMaxPINSize when given, dwMaxAPDUDataSize
                    (0 at short APDU level), wIdVendor, wIdProduct,
                    bPPDUSupport 0 (Escape not allowed);
                    FEATURE_IFD_PIN_PROPERTIES: the same wLcdLayout,
                    bEntryValidationCondition 1 to 7
  part10-verify     VERIFY status (00 20 00 80, no data) 63 C3 after a reset,
                    VERIFY_PIN_DIRECT (PIN_VERIFY_STRUCTURE around 00 20 00 80
                    08 FF..FF, the keypad types its PIN) 90 00, status 90 00
  part10-wrong-pin  the card's PIN changed by a plain CHANGE REFERENCE DATA:
                    VERIFY_PIN_DIRECT (keypad PIN now wrong) 63 C2, status not
                    verified; PIN changed back, VERIFY_PIN_DIRECT 90 00
  part10-modify     MODIFY_PIN_DIRECT (00 24 00 80 10, old and new PIN typed)
                    90 00, a plain VERIFY with the new PIN 90 00, with the old
                    one 63 C2; the PIN changed back with a plain APDU
  part10-malformed  refused: ulDataLength not the APDU's length, a structure
                    cut short, an RFU PIN format, bNumberMessage 7 (modify),
                    with the card's PIN state untouched (status still 63 C3
                    after a reset); receive buffers too small for the feature
                    list, the TLV properties, the PIN properties and a PIN
                    verification (SCARD_E_INSUFFICIENT_BUFFER or another
                    error, never success, nothing written past the buffer:
                    pcscd itself refuses them, as it hands the driver a buffer
                    of its own); the card still answers
  part10-escape     IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE (SCARD_CTL_CODE(1))
                    refused while the administrator has not allowed Escape
  part10-mechanical (--mechanical, a reader whose dwMechanical has accept,
                    eject and no lock) the vendor control codes of
                    PC_to_RDR_Mechanical, SCARD_CTL_CODE(3500 + bFunction):
                    eject (3502) and the card leaves the slot as pcscd sees
                    it; accept (3501, through a direct connection) and it is
                    back and answers; lock (3504) refused; run last
  part10-escape-allowed (--escape-allowed) the feature list has
                    CCID_ESC_COMMAND, Escape through its code and through
                    SCARD_CTL_CODE(1) comes back (the virtual reader echoes
                    it), the TLV properties as above (bPPDUSupport 0 or 1,
                    reported: PPDUs are the reader firmware's business)
Last line: "part10: N passed, M failed"; exit 0 only when nothing failed.
"""
import argparse
import ctypes
import struct
import sys
import time

from smartcard.scard import (SCARD_CTL_CODE, SCARD_E_INSUFFICIENT_BUFFER, SCARD_PROTOCOL_T0,
                             SCARD_PROTOCOL_T1, SCARD_RESET_CARD, SCARD_S_SUCCESS,
                             SCARD_SCOPE_SYSTEM, SCARD_SHARE_DIRECT, SCARD_SHARE_SHARED,
                             SCARD_STATE_PRESENT, SCARD_STATE_UNAWARE, SCARD_UNPOWER_CARD,
                             SCardConnect, SCardControl, SCardDisconnect,
                             SCardEstablishContext, SCardGetErrorMessage, SCardGetStatusChange,
                             SCardListReaders, SCardReconnect, SCardReleaseContext,
                             SCardTransmit)

# PC/SC v2 part 10 feature tags and TLV property tags (2.3, 2.6.14)
FEATURE_VERIFY_PIN_DIRECT = 0x06
FEATURE_MODIFY_PIN_DIRECT = 0x07
FEATURE_IFD_PIN_PROPERTIES = 0x0A
FEATURE_GET_TLV_PROPERTIES = 0x12
FEATURE_CCID_ESC_COMMAND = 0x13
FEATURE_NAMES = {
    0x01: "VERIFY_PIN_START", 0x02: "VERIFY_PIN_FINISH", 0x03: "MODIFY_PIN_START",
    0x04: "MODIFY_PIN_FINISH", 0x05: "GET_KEY_PRESSED", 0x06: "VERIFY_PIN_DIRECT",
    0x07: "MODIFY_PIN_DIRECT", 0x08: "MCT_READER_DIRECT", 0x09: "MCT_UNIVERSAL",
    0x0A: "IFD_PIN_PROPERTIES", 0x0B: "ABORT", 0x0C: "SET_SPE_MESSAGE",
    0x0D: "VERIFY_PIN_DIRECT_APP_ID", 0x0E: "MODIFY_PIN_DIRECT_APP_ID", 0x0F: "WRITE_DISPLAY",
    0x10: "GET_KEY", 0x11: "IFD_DISPLAY_PROPERTIES", 0x12: "GET_TLV_PROPERTIES",
    0x13: "CCID_ESC_COMMAND", 0x20: "EXECUTE_PACE",
}
TLV_NAMES = {
    0x01: "wLcdLayout", 0x02: "bEntryValidationCondition", 0x03: "bTimeOut2",
    0x04: "wLcdMaxCharacters", 0x05: "wLcdMaxLines", 0x06: "bMinPINSize", 0x07: "bMaxPINSize",
    0x08: "sFirmwareID", 0x09: "bPPDUSupport", 0x0A: "dwMaxAPDUDataSize", 0x0B: "wIdVendor",
    0x0C: "wIdProduct",
}
CM_IOCTL_GET_FEATURE_REQUEST = SCARD_CTL_CODE(3400)
# the driver's vendor codes for PC_to_RDR_Mechanical (src/ccid/ioctl.h)
MECH_ACCEPT, MECH_EJECT, MECH_LOCK = SCARD_CTL_CODE(3501), SCARD_CTL_CODE(3502), SCARD_CTL_CODE(3504)
GET_FEATURE_REQUEST_WINDOWS = 0x313520
IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE = SCARD_CTL_CODE(1)

# The applet (sim/README.md): VERIFY and CHANGE REFERENCE DATA on PIN 80, PIN
# blocks of ASCII digits padded with FF (8 bytes here)
SELECT = [0x00, 0xA4, 0x04, 0x00, 0x06, 0xA0, 0x00, 0x00, 0x00, 0x18, 0xFF]
VERIFY_STATUS = [0x00, 0x20, 0x00, 0x80]
PIN_BLOCK = 8
# bmFormatString 0x82: positions in bytes, PIN at byte 0, left justified, ASCII;
# bmPINBlockString 0x08: no length field, an 8-byte block; bmPINLengthFormat 0
FORMAT_ASCII_BYTES = 0x82
BLOCK_8 = 0x08
MIN_DIGITS, MAX_DIGITS = 4, 8
LANG_EN_US = 0x0409
VALIDATION_KEY = 0x02

passed = 0
failed = 0


def log(msg):
    print("part10: " + msg, flush=True)


def verdict(name, ok, detail):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print("%s part10-%s: %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)


def hexs(data):
    return " ".join("%02X" % b for b in data)


def err(rv):
    return "%s (0x%08X)" % (SCardGetErrorMessage(rv).strip(), rv & 0xFFFFFFFF)


def pin_block(pin):
    return list(pin.encode()) + [0xFF] * (PIN_BLOCK - len(pin))


def verify_structure(apdu, ul_data_length=None, fmt=FORMAT_ASCII_BYTES):
    """PIN_VERIFY_STRUCTURE (pcsc-lite reader.h, packed, host order)."""
    head = struct.pack("<BBBBBHBBHB3sI", 0, 0, fmt, BLOCK_8, 0x00,
                       MIN_DIGITS << 8 | MAX_DIGITS, VALIDATION_KEY, 0x01, LANG_EN_US, 0,
                       b"\0\0\0", len(apdu) if ul_data_length is None else ul_data_length)
    assert len(head) == 19
    return list(head) + apdu


def modify_structure(apdu, number_message=0x03):
    """PIN_MODIFY_STRUCTURE: current PIN at offset 0, new at 8, both entered
    (bConfirmPIN 0x03: confirmation and current PIN), three messages."""
    head = struct.pack("<BBBBBBBHBBBHBBB3sI", 0, 0, FORMAT_ASCII_BYTES, BLOCK_8, 0x00,
                       0, PIN_BLOCK, MIN_DIGITS << 8 | MAX_DIGITS, 0x03, VALIDATION_KEY,
                       number_message, LANG_EN_US, 0, 1, 2, b"\0\0\0", len(apdu))
    assert len(head) == 24
    return list(head) + apdu


VERIFY_PIN_APDU = [0x00, 0x20, 0x00, 0x80, PIN_BLOCK] + [0xFF] * PIN_BLOCK
MODIFY_PIN_APDU = [0x00, 0x24, 0x00, 0x80, 2 * PIN_BLOCK] + [0xFF] * (2 * PIN_BLOCK)


class Reader:
    def __init__(self, want):
        rv, self.ctx = SCardEstablishContext(SCARD_SCOPE_SYSTEM)
        if rv != SCARD_S_SUCCESS:
            raise RuntimeError("SCardEstablishContext: " + err(rv))
        rv, readers = SCardListReaders(self.ctx, [])
        if rv != SCARD_S_SUCCESS or not readers:
            raise RuntimeError("SCardListReaders: " + (err(rv) if rv else "no reader"))
        names = [r for r in readers if want is None or want in r]
        if not names:
            raise RuntimeError("no reader matching '%s' among %s" % (want, readers))
        self.name = names[0]
        rv, self.card, self.proto = SCardConnect(self.ctx, self.name, SCARD_SHARE_SHARED,
                                                 SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
        if rv != SCARD_S_SUCCESS:
            raise RuntimeError("SCardConnect(%s): %s" % (self.name, err(rv)))
        log("connected to '%s' with T=%d" % (self.name, 1 if self.proto == SCARD_PROTOCOL_T1 else 0))
        # pyscard loads libpcsclite.so.1 itself: the same library, so its card
        # handle works here too. Only for what pyscard cannot do: a receive
        # buffer of a given size (pyscard always offers a large one).
        self.lib = ctypes.CDLL("libpcsclite.so.1")
        self.lib.SCardControl.restype = ctypes.c_long
        self.lib.SCardControl.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p,
                                          ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                                          ctypes.POINTER(ctypes.c_ulong)]

    def control(self, code, data=()):
        rv, out = SCardControl(self.card, code, list(data))
        return rv, list(out) if rv == SCARD_S_SUCCESS else []

    def control_small(self, code, data, cap):
        """SCardControl with a receive buffer of cap bytes, inside a larger
        one filled with a pattern: (rv, bytes returned, bytes written past cap)."""
        room = cap + 512
        buf = (ctypes.c_ubyte * room)(*([0x5A] * room))
        sent = (ctypes.c_ubyte * max(1, len(data)))(*data)
        got = ctypes.c_ulong(0)
        rv = self.lib.SCardControl(self.card, code, sent, len(data), buf, cap, ctypes.byref(got))
        past = sum(1 for b in buf[cap:] if b != 0x5A)
        return rv & 0xFFFFFFFF, got.value, past

    def transmit(self, apdu):
        rv, resp = SCardTransmit(self.card, self.proto, apdu)
        if rv != SCARD_S_SUCCESS:
            return None, err(rv)
        return list(resp), None

    def sw(self, apdu):
        """The status word as 'XXXX', or the error."""
        resp, why = self.transmit(apdu)
        if resp is None:
            return "error " + why
        if len(resp) < 2:
            return "short answer " + hexs(resp)
        return "%02X%02X" % (resp[-2], resp[-1])

    def reset(self):
        rv, self.proto = SCardReconnect(self.card, SCARD_SHARE_SHARED,
                                        SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_RESET_CARD)
        return rv

    def close(self):
        SCardDisconnect(self.card, SCARD_UNPOWER_CARD)
        SCardReleaseContext(self.ctx)


def pin_control_sw(rd, code, structure):
    """VERIFY/MODIFY_PIN_DIRECT: the card's status word as 'XXXX', or the error."""
    rv, out = rd.control(code, structure)
    if rv != SCARD_S_SUCCESS:
        return "error " + err(rv)
    if len(out) != 2:
        return "answer of %d bytes: %s" % (len(out), hexs(out))
    return "%02X%02X" % (out[0], out[1])


def parse_features(out):
    """The PCSC_TLV_STRUCTURE list: {tag: code}, or a reason it is malformed."""
    feats = {}
    if len(out) % 6:
        return None, "%d bytes, not a multiple of 6: %s" % (len(out), hexs(out))
    for i in range(0, len(out), 6):
        tag, length = out[i], out[i + 1]
        if length != 4:
            return None, "feature 0x%02X with length %d" % (tag, length)
        if tag in feats:
            return None, "feature 0x%02X listed twice" % tag
        feats[tag] = struct.unpack(">I", bytes(out[i + 2:i + 6]))[0]
    return feats, None


def parse_tlv(out):
    props = {}
    i = 0
    while i < len(out):
        if i + 2 > len(out) or i + 2 + out[i + 1] > len(out):
            return None, "property 0x%02X runs past the %d bytes: %s" % (out[i], len(out), hexs(out))
        tag, length = out[i], out[i + 1]
        value = bytes(out[i + 2:i + 2 + length])
        props[tag] = value if tag == 0x08 else int.from_bytes(value, "little")
        i += 2 + length
    return props, None


# ---- the checks ------------------------------------------------------------------

def read_features(rd, escape_allowed):
    """The feature list: (features, problems, detail)."""
    rv, out = rd.control(CM_IOCTL_GET_FEATURE_REQUEST)
    if rv != SCARD_S_SUCCESS:
        return None, ["GET_FEATURE_REQUEST: " + err(rv)], ""
    feats, why = parse_features(out)
    if feats is None:
        return None, [why], ""
    for tag, code in sorted(feats.items()):
        log("feature 0x%02X %s: control code 0x%08X" % (tag, FEATURE_NAMES.get(tag, "?"), code))
    codes = " ".join("%02X:%08X" % (t, feats[t]) for t in sorted(feats))
    want = [FEATURE_VERIFY_PIN_DIRECT, FEATURE_MODIFY_PIN_DIRECT, FEATURE_IFD_PIN_PROPERTIES,
            FEATURE_GET_TLV_PROPERTIES]
    missing = [FEATURE_NAMES[t] for t in want if t not in feats]
    zero = [FEATURE_NAMES.get(t, "0x%02X" % t) for t, c in feats.items() if c == 0]
    if missing or zero:
        return None, ["missing %s, zero code for %s (list: %s)" % (missing or "none", zero or "none",
                                                                   codes)], codes
    problems = []
    if escape_allowed and FEATURE_CCID_ESC_COMMAND not in feats:
        problems.append("no CCID_ESC_COMMAND in the feature list (%s)" % codes)
    if not escape_allowed and FEATURE_CCID_ESC_COMMAND in feats:
        problems.append("CCID_ESC_COMMAND listed while Escape is not allowed (%s)" % codes)
    rv, win = rd.control(GET_FEATURE_REQUEST_WINDOWS)
    if rv != SCARD_S_SUCCESS:
        problems.append("Windows value 0x313520: " + err(rv))
    elif win != out:
        problems.append("Windows value 0x313520 gives another list: %s" % hexs(win))
    return feats, problems, codes + " (same with 0x313520)"


def check_features(rd):
    feats, problems, detail = read_features(rd, False)
    verdict("features", not problems, "; ".join(problems) if problems else detail)
    return feats


def read_tlv(rd, feats, args, escape_allowed):
    """GET_TLV_PROPERTIES and IFD_PIN_PROPERTIES: (problems, detail)."""
    rv, out = rd.control(feats[FEATURE_GET_TLV_PROPERTIES])
    if rv != SCARD_S_SUCCESS:
        return ["GET_TLV_PROPERTIES: " + err(rv)], ""
    props, why = parse_tlv(out)
    if props is None:
        return [why], ""
    log("TLV properties: " + hexs(out))
    for tag, value in sorted(props.items()):
        log("  0x%02X %s = %s" % (tag, TLV_NAMES.get(tag, "?"),
                                  value.hex() if isinstance(value, bytes) else "0x%X (%d)" % (value, value)))
    problems = []

    def want(tag, value):
        got = props.get(tag)
        if got != value:
            problems.append("%s %s, expected 0x%X" % (TLV_NAMES[tag], "absent" if got is None
                                                      else "0x%X" % got, value))

    want(0x01, args.lcd)
    if args.lcd:
        want(0x04, args.lcd & 0xFF)
        want(0x05, args.lcd >> 8)
    want(0x0B, args.vid)
    want(0x0C, args.pid)
    # bPPDUSupport bit 0: PPDUs (FF C2 01 ..., part 10 amendment 1) over
    # CCID_ESC_COMMAND. Never without Escape; with it, libccid says 1 while
    # the reader firmware must know PPDUs (the virtual reader does not), so
    # 0 is as right: only reported.
    if not escape_allowed:
        want(0x09, 0)
    elif props.get(0x09) not in (0, 1):
        problems.append("bPPDUSupport %s with Escape allowed" % props.get(0x09))
    pin_min, pin_max = props.get(0x06), props.get(0x07)
    if (pin_min is None) != (pin_max is None):
        problems.append("only one of bMinPINSize/bMaxPINSize given")
    elif pin_min is not None and pin_min > pin_max:
        problems.append("bMinPINSize %d > bMaxPINSize %d" % (pin_min, pin_max))
    apdu_max = props.get(0x0A)
    if apdu_max is None:
        problems.append("no dwMaxAPDUDataSize")
    elif args.level == "short" and apdu_max != 0:
        problems.append("dwMaxAPDUDataSize %d at short APDU level (0: short APDUs only)" % apdu_max)
    elif args.level == "extended" and not 256 < apdu_max <= 65536:
        problems.append("dwMaxAPDUDataSize %d at extended APDU level" % apdu_max)
    # FEATURE_IFD_PIN_PROPERTIES: PIN_PROPERTIES_STRUCTURE (reader.h), host order
    rv, pp = rd.control(feats[FEATURE_IFD_PIN_PROPERTIES])
    if rv != SCARD_S_SUCCESS:
        problems.append("IFD_PIN_PROPERTIES: " + err(rv))
    elif len(pp) != 4:
        problems.append("IFD_PIN_PROPERTIES of %d bytes: %s" % (len(pp), hexs(pp)))
    else:
        layout, validation, timeout2 = struct.unpack("<HBB", bytes(pp))
        log("PIN properties: wLcdLayout 0x%04X, bEntryValidationCondition 0x%02X, bTimeOut2 %d"
            % (layout, validation, timeout2))
        if layout != args.lcd:
            problems.append("IFD_PIN_PROPERTIES wLcdLayout 0x%04X" % layout)
        if not 1 <= validation <= 7:
            problems.append("bEntryValidationCondition 0x%02X" % validation)
    pins = "PIN %d-%d" % (pin_min, pin_max) if pin_min is not None else "no PIN sizes"
    detail = "LCD %04X, %s, max APDU %s, %04X:%04X" % (
        props.get(0x01, 0), pins, apdu_max, props.get(0x0B, 0), props.get(0x0C, 0))
    return problems, detail


def check_tlv(rd, feats, args):
    problems, detail = read_tlv(rd, feats, args, False)
    verdict("tlv", not problems, "; ".join(problems) if problems else detail)


def check_verify(rd, feats, args):
    if rd.reset() != SCARD_S_SUCCESS:
        verdict("verify", False, "SCardReconnect (reset) failed")
        return
    rd.sw(SELECT)
    before = rd.sw(VERIFY_STATUS)
    answer = pin_control_sw(rd, feats[FEATURE_VERIFY_PIN_DIRECT], verify_structure(VERIFY_PIN_APDU))
    after = rd.sw(VERIFY_STATUS)
    detail = "status %s, VERIFY_PIN_DIRECT %s, status %s" % (before, answer, after)
    verdict("verify", before == "63C3" and answer == "9000" and after == "9000", detail)


def change_pin(rd, old, new):
    return rd.sw(MODIFY_PIN_APDU[:5] + pin_block(old) + pin_block(new))


def check_wrong_pin(rd, feats, args):
    other = "0" * len(args.keypad_pin) if args.keypad_pin != "0" * len(args.keypad_pin) else "1"
    changed = change_pin(rd, args.keypad_pin, other)
    if changed != "9000":
        verdict("wrong-pin", False, "CHANGE REFERENCE DATA to another PIN: %s" % changed)
        return
    wrong = pin_control_sw(rd, feats[FEATURE_VERIFY_PIN_DIRECT], verify_structure(VERIFY_PIN_APDU))
    status = rd.sw(VERIFY_STATUS)
    back = change_pin(rd, other, args.keypad_pin)
    again = pin_control_sw(rd, feats[FEATURE_VERIFY_PIN_DIRECT], verify_structure(VERIFY_PIN_APDU))
    detail = "keypad PIN wrong: %s, status %s; PIN back %s, VERIFY_PIN_DIRECT %s" % (
        wrong, status, back, again)
    verdict("wrong-pin", wrong == "63C2" and status == "63C2" and back == "9000" and again == "9000",
            detail)


def check_modify(rd, feats, args):
    answer = pin_control_sw(rd, feats[FEATURE_MODIFY_PIN_DIRECT], modify_structure(MODIFY_PIN_APDU))
    with_new = rd.sw(VERIFY_PIN_APDU[:5] + pin_block(args.new_pin))
    with_old = rd.sw(VERIFY_PIN_APDU[:5] + pin_block(args.keypad_pin))
    # back to the keypad PIN (a correct PIN resets the try counter)
    back = change_pin(rd, args.new_pin, args.keypad_pin)
    detail = "MODIFY_PIN_DIRECT %s, VERIFY new PIN %s, old PIN %s; PIN back %s" % (
        answer, with_new, with_old, back)
    verdict("modify", answer == "9000" and with_new == "9000" and with_old == "63C2" and back == "9000",
            detail)


def check_malformed(rd, feats, args):
    problems, notes = [], []
    if rd.reset() != SCARD_S_SUCCESS:
        verdict("malformed", False, "SCardReconnect (reset) failed")
        return
    start = rd.sw(VERIFY_STATUS)
    verify = feats[FEATURE_VERIFY_PIN_DIRECT]
    cases = [
        ("ulDataLength+1", verify, verify_structure(VERIFY_PIN_APDU, len(VERIFY_PIN_APDU) + 1)),
        ("10-byte structure", verify, verify_structure(VERIFY_PIN_APDU)[:10]),
        ("RFU PIN format", verify, verify_structure(VERIFY_PIN_APDU, fmt=0x83)),
        ("bNumberMessage 7", feats[FEATURE_MODIFY_PIN_DIRECT],
         modify_structure(MODIFY_PIN_APDU, number_message=7)),
    ]
    for name, code, data in cases:
        rv, out = rd.control(code, data)
        if rv == SCARD_S_SUCCESS:
            problems.append("%s accepted: %s" % (name, hexs(out)))
        else:
            notes.append("%s: %s" % (name, err(rv)))
    after = rd.sw(VERIFY_STATUS)
    if start != "63C3":
        problems.append("PIN status query after a reset answered %s, not 63C3" % start)
    elif after != start:
        problems.append("PIN status %s before the structures, %s after (the card was reached)"
                        % (start, after))
    # pcscd (1.9.9, winscard_svc.c) calls IFDHControl with its own 65548-byte
    # buffer and refuses the answer afterwards when it is longer than the
    # client's: the driver never sees these small buffers, and a PIN entry
    # runs on the card before pcscd withholds its answer.
    small = [
        ("feature list in 4 bytes", CM_IOCTL_GET_FEATURE_REQUEST, [], 4),
        ("TLV properties in 4 bytes", feats[FEATURE_GET_TLV_PROPERTIES], [], 4),
        ("PIN properties in 2 bytes", feats[FEATURE_IFD_PIN_PROPERTIES], [], 2),
        ("VERIFY_PIN_DIRECT answer in 1 byte", verify, verify_structure(VERIFY_PIN_APDU), 1),
    ]
    for name, code, data, cap in small:
        rv, got, past = rd.control_small(code, data, cap)
        line = "%s: 0x%08X, %d bytes returned, %d written past the buffer" % (name, rv, got, past)
        notes.append(line)
        if rv == SCARD_S_SUCCESS or past:
            problems.append(line)
        elif rv != SCARD_E_INSUFFICIENT_BUFFER & 0xFFFFFFFF:
            notes.append("(%s: an error, but not SCARD_E_INSUFFICIENT_BUFFER)" % name)
    end = rd.sw(VERIFY_STATUS)
    notes.append("PIN status after the PIN verification with a 1-byte buffer: %s (%s)" % (
        end, "the keypad PIN reached the card, pcscd withheld the answer" if end == "9000"
        else "the card was not reached"))
    select = rd.sw(SELECT)
    for n in notes:
        log(n)
    if select != "9000":
        problems.append("SELECT after them: %s" % select)
    verdict("malformed", not problems, "; ".join(problems) if problems else
            "4 structures refused, card untouched; 4 small buffers refused")


def check_escape_refused(rd, feats):
    data = [0x01, 0x02, 0x03, 0xA5]
    rv, out = rd.control(IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE, data)
    select = rd.sw(SELECT)
    if rv == SCARD_S_SUCCESS:
        verdict("escape", False, "SCARD_CTL_CODE(1) accepted: %s" % hexs(out))
    elif FEATURE_CCID_ESC_COMMAND in feats:
        verdict("escape", False, "CCID_ESC_COMMAND listed")
    else:
        verdict("escape", select == "9000", "SCARD_CTL_CODE(1): %s; SELECT after %s" % (err(rv), select))


def check_escape_allowed(rd, args):
    feats, problems, _ = read_features(rd, True)
    if feats is None or problems:
        verdict("escape-allowed", False, "; ".join(problems))
        return
    data = [0x01, 0x02, 0x03, 0xA5]
    for name, code in (("CCID_ESC_COMMAND 0x%08X" % feats[FEATURE_CCID_ESC_COMMAND],
                        feats[FEATURE_CCID_ESC_COMMAND]),
                       ("SCARD_CTL_CODE(1)", IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE)):
        rv, out = rd.control(code, data)
        if rv != SCARD_S_SUCCESS:
            problems.append("%s: %s" % (name, err(rv)))
        elif out != data:
            problems.append("%s answered %s, not the echo" % (name, hexs(out)))
    problems += read_tlv(rd, feats, args, True)[0]
    rv, out = rd.control(feats[FEATURE_GET_TLV_PROPERTIES])
    props = parse_tlv(out)[0] if rv == SCARD_S_SUCCESS else None
    ppdu = props.get(0x09) if props else None
    verdict("escape-allowed", not problems, "; ".join(problems) if problems else
            "echo through %08X and SCARD_CTL_CODE(1), bPPDUSupport %s"
            % (feats[FEATURE_CCID_ESC_COMMAND], ppdu))


def card_in(rd):
    rv, states = SCardGetStatusChange(rd.ctx, 0, [(rd.name, SCARD_STATE_UNAWARE)])
    return rv == SCARD_S_SUCCESS and bool(states[0][1] & SCARD_STATE_PRESENT)


def wait_card(rd, present, seconds=10):
    """True once pcscd shows the card present (or absent), within seconds."""
    for _ in range(seconds * 20):
        if card_in(rd) == present:
            return True
        time.sleep(0.05)
    return False


def check_mechanical(rd):
    problems = []
    rv, _ = rd.control(MECH_EJECT)
    if rv != SCARD_S_SUCCESS:
        problems.append("eject: " + err(rv))
    elif not wait_card(rd, False):
        problems.append("eject answered, the card still present after 10 s")
    # no card, so a direct connection carries the next control codes
    rv, direct, _ = SCardConnect(rd.ctx, rd.name, SCARD_SHARE_DIRECT, 0)
    if rv != SCARD_S_SUCCESS:
        problems.append("direct connection: " + err(rv))
    else:
        rv, _ = SCardControl(direct, MECH_ACCEPT, [])
        if rv != SCARD_S_SUCCESS:
            problems.append("accept: " + err(rv))
        elif not wait_card(rd, True):
            problems.append("accept answered, no card after 10 s")
        rv, _ = SCardControl(direct, MECH_LOCK, [])
        if rv == SCARD_S_SUCCESS:
            problems.append("lock accepted by a reader without a lock")
        SCardDisconnect(direct, 0)
    select = "-"
    if not problems:
        # the handle of before the eject belongs to a card that left: a new one
        SCardDisconnect(rd.card, SCARD_UNPOWER_CARD)
        rv, rd.card, rd.proto = SCardConnect(rd.ctx, rd.name, SCARD_SHARE_SHARED,
                                             SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
        select = rd.sw(SELECT) if rv == SCARD_S_SUCCESS else "connect: " + err(rv)
        if select != "9000":
            problems.append("the accepted card: SELECT " + select)
    verdict("mechanical", not problems, "; ".join(problems) if problems else
            "eject: card gone; accept: card back, SELECT 9000; lock refused")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reader")
    ap.add_argument("--keypad-pin", default="1234")
    ap.add_argument("--new-pin", default="5678")
    ap.add_argument("--lcd", default="0", type=lambda v: int(v, 0))
    ap.add_argument("--vid", default="1209", type=lambda v: int(v, 16))
    ap.add_argument("--pid", default="5CCD", type=lambda v: int(v, 16))
    ap.add_argument("--level", default="short")
    ap.add_argument("--escape-allowed", action="store_true")
    ap.add_argument("--mechanical", action="store_true")
    args = ap.parse_args()
    try:
        rd = Reader(args.reader)
    except RuntimeError as e:
        log(str(e))
        print("part10: 0 passed, 1 failed")
        return 1
    if args.escape_allowed:
        check_escape_allowed(rd, args)
    else:
        feats = check_features(rd)
        if feats is not None:
            check_tlv(rd, feats, args)
            check_verify(rd, feats, args)
            check_wrong_pin(rd, feats, args)
            check_modify(rd, feats, args)
            check_malformed(rd, feats, args)
            check_escape_refused(rd, feats)
            if args.mechanical:
                check_mechanical(rd)
    rd.close()
    print("part10: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
