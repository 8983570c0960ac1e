#!/bin/bash
# Guest scenario: reader life through pcscd with ONE driver bundle and
# smartcrd-vreader gadgets on dummy_hcd: a 2-slot reader worked by 4 clients,
# 4 readers side by side, a reader unplugged in the middle of an APDU, and
# unplug/replug cycles with pcscd's file descriptors and threads counted.
# Runs INSIDE the test guest (tests/vm/run-life.sh boots it); the clients are
# tests/vm/life.py (pyscard).
#
# Usage: life.sh [--bin VREADER] [--cycles N] [--seconds S] ours BUNDLE_DIR | libccid
# Checks, each "PASS NAME: detail" / "FAIL NAME: why" in $VM_RESULTS/result:
#   udevd                 udevd runs (pcscd learns of replugged readers from it)
#   slots.usb-device      the 2-slot gadget (slots=2 busy-slots=2) enumerates
#   slots.driver, slots.wait   only the chosen bundle; pcscd shows both slots
#                         with a card
#   slots.clients         4 clients, 2 on each slot, S seconds (default 60) of
#                         the applet's 80 34 with every byte checked, no error
#   slots.pcscd-alive, slots.sanitizers
#   readers.usb-devices   4 gadgets with one VID/PID, serials 0001..0004, on 4
#                         dummy_hcd controllers
#   readers.driver, readers.wait   pcscd shows the 4 readers with a card
#   readers.clients       8 clients, 2 per reader, 20 s, no error
#   readers.independent   a card removed from each reader in turn, then each
#                         reader unplugged and replugged: the others answer
#   readers.unplug-apdu   reader 1 unplugged 1 s into a 5 s APDU: the APDU fails
#                         (the time it took is printed), the reader leaves
#   readers.unplug-transmit   pcscd.log: the driver's transmit failed, and how
#                         long after the first trace of the unplug (printed)
#   readers.unplug-apdu-replug   reader 1 back after its replug and answering
#   readers.replug        reader 2 unplugged and replugged N times (default
#                         100), each time back with a card that answers
#   readers.leaks         pcscd has no more file descriptors or threads after
#                         the cycles than before them (figures printed)
#   readers.pcscd-alive, readers.sanitizers, readers.vreader-stop
# Files in $VM_RESULTS/{slots,readers}/: pcscd.log, vreader*.log, life-*.log.
set -uo pipefail   # no -e: every check runs and reports even after a failure
# shellcheck source=guest-lib.sh
. "$(dirname "$0")/guest-lib.sh"

R=${VM_RESULTS:?run me in the test guest}
RESULT=$R/result
LIFE=$VM_DIR/life.py
TIME_UNIT_MS=100   # one time extension of the slow APDU (life.py unplug-apdu)
VID=1209
PID=5ccd
: >"$RESULT"
failures=0
run=

pass() { echo "PASS $run${run:+.}$1${2:+: $2}" | tee -a "$RESULT"; }
fail() { echo "FAIL $run${run:+.}$1: $2" | tee -a "$RESULT"; failures=$((failures + 1)); }
log() { echo "life[$run]: $*"; }

# life CHECK LOG ARGS...: life.py ARGS, its "PASS/FAIL life-NAME" lines as
# this scenario's checks; no line at all (a crash, a hang) fails CHECK.
life() {
    local check=$1 logf=$2 line verdict name detail seen=no
    shift 2
    timeout --kill-after=5 900 python3 "$LIFE" "$@" >"$logf" 2>&1
    while read -r line; do
        verdict=${line%% *}
        name=${line#* life-}
        detail=${name#*: }
        name=${name%%:*}
        seen=yes
        if [ "$verdict" = PASS ]; then pass "$name" "$detail"; else fail "$name" "$detail"; fi
    done < <(grep -E '^(PASS|FAIL) life-' "$logf")
    [ $seen = yes ] || fail "$check" "life.py $1 reported nothing (see $(basename "$logf")): $(tail -n 3 "$logf" | tr '\n' ' ')"
}

# vreaders_start COUNT PROFILE...: COUNT smartcrd-vreader gadgets, number i on
# dummy_udc.(i-1) with serial 000i and control socket /run/vr-i.sock.
vr_pids=()
vreaders_start() {
    local count=$1 i
    shift
    vr_pids=()
    for i in $(seq 1 "$count"); do
        "$VREADER" --gadget-name "life$i" --udc "dummy_udc.$((i - 1))" --control "/run/vr-$i.sock" \
            --time-unit-ms "$TIME_UNIT_MS" -o "serial=000$i" "${@/#/-o}" \
            >"$RD/vreader$i.log" 2>&1 &
        vr_pids+=($!)
    done
}

# usb_count: how many devices with our VID/PID the guest's USB bus has.
usb_count() {
    local d n=0
    for d in /sys/bus/usb/devices/*; do
        [ "$(cat "$d/idVendor" 2>/dev/null):$(cat "$d/idProduct" 2>/dev/null)" = "$VID:$PID" ] \
            && n=$((n + 1))
    done
    echo $n
}

wait_usb_count() {  # wait_usb_count N SECONDS
    for _ in $(seq 1 $(($2 * 2))); do
        [ "$(usb_count)" -ge "$1" ] && return 0
        sleep 0.5
    done
    return 1
}

# vreaders_stop: "quit" on each control socket; the gadgets must be gone.
vreaders_stop() {
    local i pid answers=
    for i in $(seq 1 ${#vr_pids[@]}); do
        answers+="$(ctl_at "/run/vr-$i.sock" quit 2>&1) "
    done
    for pid in "${vr_pids[@]}"; do
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ -z "$(ls -A "$GADGETS")" ]; then
        pass vreader-stop "answers: $answers"
    else
        fail vreader-stop "answers: $answers; gadgets left: $(ls "$GADGETS" | tr '\n' ' ')"
        clean_stale_gadgets
    fi
    vr_pids=()
}

# transmit_reaction PCSCD_LOG: the "unplug-transmit" check: in pcscd's log
# (each line starts with the microseconds since the one before), the time from
# the first line after the slow APDU's 1 s pause (the unplug's first trace) to
# pcscd's "IFDTransmit() Card not transacted": the driver's share of the
# unplug-apdu time, the rest being pcscd's and the client's. Fails when the
# driver's transmit never failed.
transmit_reaction() {
    local us
    us=$(awk '/APDU: 80 38 00 30/ { apdu = 1; next }
        apdu && !started && $1 + 0 >= 500000 { started = 1; next }
        started { sum += $1 }
        started && /IFDTransmit\(\) Card not transacted/ { print sum; exit }' "$1")
    if [ -n "$us" ]; then
        pass unplug-transmit "the driver's transmit failed $((us / 1000)) ms after the unplug's first trace in pcscd.log"
    else
        fail unplug-transmit "no failed IFDTransmit after the slow APDU in pcscd.log"
    fi
}

# counts PID: "FDS THREADS" of a process
counts() {
    echo "$(ls "/proc/$1/fd" 2>/dev/null | wc -l) $(ls "/proc/$1/task" 2>/dev/null | wc -l)"
}

# --- a 2-slot reader, 4 clients ----------------------------------------------------

phase_slots() {
    run=slots
    RD=$R/$run
    mkdir -p "$RD"
    load_modules full 1
    clean_stale_gadgets
    vreaders_start 1 slots=2 busy-slots=2
    if wait_usb_count 1 15; then pass usb-device; else fail usb-device "no $VID:$PID after 15 s"; fi
    local vid=$VID pid=$PID
    if start_driver "$mode" "$bundle" "ATR: "; then
        life wait "$RD/life-wait.log" wait --count 2 --match "(0001)" --timeout 30
    else
        fail wait "no reader with a card after 30 s (see pcscd.log)"
    fi
    life clients "$RD/life-clients.log" clients --clients 4 --seconds "$seconds" --match "(0001)"
    end_driver
    vreaders_stop
}

# --- 4 readers: side by side, unplugged during an APDU, replugged many times -------

phase_readers() {
    local before after i socks= matches=
    run=readers
    RD=$R/$run
    mkdir -p "$RD"
    load_modules full 4
    clean_stale_gadgets
    vreaders_start 4
    if wait_usb_count 4 30; then
        pass usb-devices "4 x $VID:$PID"
    else
        fail usb-devices "$(usb_count) of 4 x $VID:$PID after 30 s"
    fi
    local vid=$VID pid=$PID
    if start_driver "$mode" "$bundle" "ATR: "; then
        life wait "$RD/life-wait.log" wait --count 4 --match "(000" --timeout 60
    else
        fail wait "no reader with a card after 30 s (see pcscd.log)"
    fi
    life clients "$RD/life-clients.log" clients --clients 8 --seconds 20 --match ""
    for i in 1 2 3 4; do
        socks+="${socks:+,}/run/vr-$i.sock"
        matches+="${matches:+,}(000$i)"
    done
    life independent "$RD/life-independent.log" independent --sockets "$socks" --matches "$matches"
    life unplug-apdu "$RD/life-unplug-apdu.log" unplug-apdu --socket /run/vr-1.sock --match "(0001)"
    transmit_reaction "$RD/pcscd.log"
    sleep 2   # pcscd and the driver settle before the counts
    before=$(counts "$pcscd_pid")
    life replug "$RD/life-replug.log" replug --socket /run/vr-2.sock --match "(0002)" \
        --cycles "$cycles"
    # the last replugged reader's threads may still be starting: a few seconds
    for _ in $(seq 1 20); do
        after=$(counts "$pcscd_pid")
        [ "${after% *}" -le "${before% *}" ] && [ "${after#* }" -le "${before#* }" ] && break
        sleep 0.5
    done
    if [ "${after% *}" -le "${before% *}" ] && [ "${after#* }" -le "${before#* }" ]; then
        pass leaks "pcscd before $cycles cycles: ${before% *} fds, ${before#* } threads; after: ${after% *} fds, ${after#* } threads"
    else
        fail leaks "pcscd before $cycles cycles: ${before% *} fds, ${before#* } threads; after: ${after% *} fds, ${after#* } threads"
        ls -l "/proc/$pcscd_pid/fd" >"$RD/pcscd-fds.txt" 2>&1
    fi
    end_driver
    vreaders_stop
}

# --- arguments -----------------------------------------------------------------------

VREADER=
cycles=100
seconds=60
while [ $# -gt 0 ]; do
    case $1 in
        --bin) VREADER=$2; shift 2 ;;
        --cycles) cycles=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        *) break ;;
    esac
done
mode=${1:-}
bundle=${2:-}
case $mode in
    ours) [ -d "$bundle" ] || { echo "usage: $0 [--bin VREADER] ours BUNDLE_DIR | libccid"; exit 2; } ;;
    libccid) ;;
    *) echo "usage: $0 [--bin VREADER] [--cycles N] [--seconds S] ours BUNDLE_DIR | libccid"; exit 2 ;;
esac
[ -x "$VREADER" ] || { echo "no smartcrd-vreader at '$VREADER'"; exit 2; }

if start_udevd; then pass udevd; else fail udevd "udevd did not start: replugged readers cannot reach pcscd"; fi
phase_slots
phase_readers
dmesg >"$R/dmesg.txt" 2>&1
echo "life: $(grep -c ^PASS "$RESULT") passed, $failures failed"
[ $failures = 0 ]
