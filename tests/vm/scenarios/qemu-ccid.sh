#!/bin/bash
# Guest scenario: QEMU's usb-ccid reader with its emulated CAC card, driven by
# pcscd with ONE driver bundle. Runs INSIDE the test guest (started by
# guest-init.sh; tests/vm/run-qemu-ccid.sh boots it).
#
# Usage: qemu-ccid.sh ours BUNDLE_DIR   our staged ifd-smartcrd.bundle (host path)
#        qemu-ccid.sh libccid           Debian's libccid (ifd-ccid.bundle), as a reference
#
# Checks, each a PASS/FAIL line in $VM_RESULTS/result:
#   usb-device   the reader (08e6:4433) enumerates in the guest
#   driver       only the chosen bundle is in /usr/lib/pcsc/drivers
#  phase 1 (one pcscd):
#   reader       pcscd reports the reader with a card in it
#   pcsc_scan    pcsc_scan lists the reader and the card's ATR
#   opensc-tool  opensc-tool -a prints the ATR
#   pkcs15-tool  pkcs15-tool --list-certificates lists three certificates
#   pcscd-alive-1  pcscd is still running at the end of phase 1
#  phase 2 (pcscd restarted, so that phase 1's outcome does not decide it):
#   apdu_loop    a few thousand APDUs, responses of 0..256 data bytes (apdu_loop.c)
#   pcscd-alive-2  pcscd is still running at the end
#   log-level    (ours) SMARTCRD_LOG_LEVEL=7 gives hex dumps of the messages, 3 none
#   sanitizers   (only for a driver built with ASan/UBSan) no sanitizer report
# Files: result, pcscd-1.log, pcscd-2.log, apdu_loop.log, tools.log, lsusb.txt,
# dmesg.txt.
# Exit status 0 only when every check passed.
set -uo pipefail   # no -e: every check runs and reports even after a failure
# shellcheck source=guest-lib.sh
. "$(dirname "$0")/guest-lib.sh"

ATR_SPACED="3B 7A 18 00 00 73 66 74 65 20 63 64 31 34 34"
ATR_COLON="3b:7a:18:00:00:73:66:74:65:20:63:64:31:34:34"
R=${VM_RESULTS:?run me in the test guest}
RESULT=$R/result
TOOLS_LOG=$R/tools.log
APDU_ROUNDS=${APDU_ROUNDS:-6}

mode=${1:-}
bundle=${2:-}
case $mode in
    ours) [ -n "$bundle" ] || { echo "usage: $0 ours BUNDLE_DIR | libccid"; exit 2; } ;;
    libccid) ;;
    *) echo "usage: $0 ours BUNDLE_DIR | libccid"; exit 2 ;;
esac

: >"$RESULT"
: >"$TOOLS_LOG"
failures=0
pass() { echo "PASS $1${2:+: $2}" | tee -a "$RESULT"; }
fail() { echo "FAIL $1: $2" | tee -a "$RESULT"; failures=$((failures + 1)); }
log() { echo "qemu-ccid[$mode]: $*"; }

# Runs a tool with a time limit, its output appended to tools.log; prints it too.
run_tool() {
    local secs=$1 out rc
    shift
    out=$(timeout --kill-after=5 "$secs" "$@" 2>&1)
    rc=$?
    { echo "\$ $* (exit $rc)"; echo "$out"; echo; } >>"$TOOLS_LOG"
    printf '%s\n' "$out"
    return $rc
}

# --- the USB device --------------------------------------------------------
if wait_usb_device 08e6:4433 20; then
    pass usb-device
    timeout 20 lsusb -v -d 08e6:4433 >"$R/lsusb.txt" 2>&1
else
    fail usb-device "no 08e6:4433 on the guest's USB bus after 20 s"
fi

# --- the driver bundle -----------------------------------------------------
keep=$(use_only_bundle "$mode" "$bundle")
drivers_now=$(cd "$DRIVERS" && echo *)
if [ "$drivers_now" = "$keep" ]; then
    pass driver
else
    fail driver "expected only $keep in $DRIVERS, found: $drivers_now"
fi

# --- pcscd ----------------------------------------------------------------
# -f: foreground, logs to stdout; -d: debug; -a: APDUs. SMARTCRD_LOG_LEVEL, when
# the host set it, came in through the environment. libccid's own level:
# critical + info + communication (0x07), for a readable reference log.
export LIBCCID_ifdLogLevel=${LIBCCID_ifdLogLevel:-0x0007}
# A driver built with the sanitizers (configure's SAN_FLAGS) needs the ASan
# runtime loaded first into pcscd, which is not instrumented. Reports go to
# asan.* / ubsan.* in the results; the "sanitizers" check fails on any.
san_env=()
san_out=$(sanitizer_env "$keep" "$R")
[ -z "$san_out" ] || mapfile -t san_env <<<"$san_out"
[ ${#san_env[@]} -eq 0 ] || log "driver built with sanitizers: pcscd runs with ${san_env[*]}"

# start_phase PHASE: pcscd with its log pcscd-PHASE.log, waiting for the card.
# Our log level: phase 1 with hex dumps of every message (7), phase 2 without
# (3), so that the log-level check sees SMARTCRD_LOG_LEVEL work both ways. A
# level the host passed in wins, and the check is skipped.
start_phase() {
    local level=${SMARTCRD_LOG_LEVEL:-$2}
    log "phase $1: starting pcscd (SMARTCRD_LOG_LEVEL=$level)"
    start_pcscd "$R/pcscd-$1.log" "$ATR_SPACED" SMARTCRD_LOG_LEVEL="$level" "${san_env[@]}"
}

pcscd_state() { pcscd_running && echo running || echo gone; }

# end_phase PHASE: records whether pcscd survived the phase, then stops it.
end_phase() {
    local phase=$1
    if pcscd_running; then
        pass "pcscd-alive-$phase"
    else
        wait "$pcscd_pid"
        fail "pcscd-alive-$phase" "pcscd exited with status $? during phase $phase"
    fi
    stop_pcscd
}

# --- phase 1: the usual tools ---------------------------------------------
if start_phase 1 7; then
    pass reader
else
    fail reader "no reader with the CAC card after 30 s (pcscd $(pcscd_state))"
fi

out=$(run_tool 30 pcsc_scan -c -n)
if echo "$out" | grep -qE '^ *Reader 0: .+' && echo "$out" | grep -q "ATR: $ATR_SPACED"; then
    pass pcsc_scan
else
    fail pcsc_scan "no reader line with ATR $ATR_SPACED (see tools.log)"
fi

out=$(run_tool 30 opensc-tool -a)
if echo "$out" | grep -qi "$ATR_COLON"; then
    pass opensc-tool
else
    fail opensc-tool "ATR not printed (see tools.log)"
fi

out=$(run_tool 60 pkcs15-tool --list-certificates)
ncerts=$(echo "$out" | grep -c '^X\.509 Certificate')
if [ "$ncerts" = 3 ]; then
    pass pkcs15-tool
else
    fail pkcs15-tool "listed $ncerts certificates, expected 3 (see tools.log)"
fi
end_phase 1

# --- phase 2: the APDU length sweep, with a fresh pcscd ------------------------
# A fresh pcscd (the driver closes and opens the reader again) so that a failure
# in phase 1 does not hide what the sweep would show.
start_phase 2 3 || log "phase 2: no reader with the card after 30 s (pcscd $(pcscd_state))"
log "apdu_loop: $APDU_ROUNDS rounds"
# -t: apdu_loop stops sending after 150 s; timeout: in case a transmit hangs.
timeout --kill-after=5 180 "$VM_BUILD/apdu_loop" -n "$APDU_ROUNDS" -t 150 \
    "$VM_CACHE/nssdb/smartcrd-cert1.der" >"$R/apdu_loop.log" 2>&1
rc=$?
grep -E '^apdu_loop: ([0-9]+ APDUs in|data lengths with failures|connected)' "$R/apdu_loop.log"
client_verdict apdu_loop apdu_loop "$R/apdu_loop.log" $rc
end_phase 2

# --- wrap up ----------------------------------------------------------------
if [ "$mode" = ours ] && [ -z "${SMARTCRD_LOG_LEVEL:-}" ]; then
    dumps1=$(grep -c 'smartcrd PC_to_RDR_' "$R/pcscd-1.log")
    dumps2=$(grep -c 'smartcrd PC_to_RDR_' "$R/pcscd-2.log")
    if [ "$dumps1" -gt 0 ] && [ "$dumps2" = 0 ]; then
        pass log-level "level 7: $dumps1 message dumps, level 3: none"
    else
        fail log-level "message dumps: $dumps1 at level 7 (want some), $dumps2 at level 3 (want none)"
    fi
fi
[ ${#san_env[@]} -eq 0 ] || sanitizer_verdict "$R"
dmesg >"$R/dmesg.txt" 2>&1

echo "qemu-ccid[$mode]: $(grep -c ^PASS "$RESULT") passed, $failures failed"
[ $failures = 0 ]
