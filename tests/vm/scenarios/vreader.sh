#!/bin/bash
# Guest scenario: our virtual CCID reader (smartcrd-vreader, a FunctionFS gadget
# on dummy_hcd) driven by pcscd with ONE driver bundle, its test applet swept by
# applet_sweep. Runs INSIDE the test guest (tests/vm/run-vreader.sh boots it).
# Several runs in one boot: the gadget is restarted with another profile
# between runs.
#
# Usage: vreader.sh [--bin VREADER] RUN [--- RUN]...
#   RUN:  [--name NAME] ours BUNDLE_DIR [KEY=VALUE...] [+faults] [+part10]
#         [--name NAME] libccid [KEY=VALUE...] [+faults] [+part10]
#   KEY=VALUE  profile settings for smartcrd-vreader -o (sim/README.md), e.g.
#              level=tpdu card-protocols=t0
#   +faults    also the fault-* checks in this run (the reader faults of
#              FAULTS below) and the hwerror check; +faults=F1,F2... those
#              faults instead, each NAME or NAME_N (on for the next N uses:
#              sim/README.md), or hwerror
#   +part10    also the part10-* checks (PC/SC part 10 through pcscd,
#              tests/vm/part10.py); the profile needs pin-support=verify,modify
#              and a keypad-pin equal to the card's PIN (card-pin)
#   VREADER    the smartcrd-vreader binary (host path); default: next to the
#              staged bundle, STAGE/usr/bin/smartcrd-vreader
# Checks, each a line "PASS NAME.check" / "FAIL NAME.check: why" in
# $VM_RESULTS/result:
#   usb-device   the gadget enumerates (VID:PID on the guest's USB bus)
#   descriptor   lsusb -v shows the profile: VID/PID, the exchange level in
#                dwFeatures, the bulk packet size of the speed asked for
#   raw-host     (APDU levels) raw_host.c, a misbehaving host through libusb:
#                runts, dwLength beyond the data, oversized messages, lone
#                zero-length packets, odd class requests; the reader stays in step
#                and takes messages ending on a packet boundary without a ZLP
#   driver       only the chosen bundle is in /usr/lib/pcsc/drivers
#   reader       pcscd shows the reader with a card
#   sweep        applet_sweep: every short length both ways, 80 36 (61xx and
#                GET RESPONSE at TPDU level with a T=0 card), extended lengths
#                at extended level and with a T=1 card at TPDU and character
#                level; data checked byte by byte
#   time-ext     applet_sweep -E: 80 38 00 xx, the card takes time: the reader's
#                time extensions are paced in real time (TIME_UNIT_MS each; the
#                answer's delay is checked where the reader sends CCID time
#                extensions), T=1 WTX at TPDU level, NULL bytes at character level
#   events       card removal and insertion through the control socket, seen
#                by SCardGetStatusChange, 5 times; the detail is the latency
#                (command -> SCardGetStatusChange return), median and max,
#                figures only: timing never fails the check
#   fault-NAME   (runs with +faults) "fault NAME 1" on the control socket, one
#                APDU that must end in an error or the right answer within
#                FAULT_SECONDS (never a hang), "fault off", then three APDUs
#                that must work: the driver is back in step (applet_sweep -F)
#   hwerror      (runs with +faults) the same with "hwerror 0" on the control
#                socket (a RDR_to_PC_HardwareError on the interrupt endpoint)
#   part10-*     (runs with +part10) part10.py: features, tlv, verify,
#                wrong-pin, modify, malformed, escape (its docstring says what
#                each checks); then pcscd again with ifdDriverOptions 0x0001 in
#                the bundle's Info.plist: escape-allowed
#   pcscd-alive  pcscd still running after the sweep (and the faults)
#   sanitizers   (only for a driver bundle built with ASan/UBSan) no report
#   control      the control socket: status, errors for a bad slot or command
#   replug       unplug/replug through the control socket: the device leaves
#                and comes back on the bus
#   vreader-stop smartcrd-vreader stops on "quit" and removes its gadget
#   vreader-sanitizers  (only for a smartcrd-vreader built with ASan/UBSan) no
#                report in its log
# Files per run in $VM_RESULTS/NAME/: vreader.log, lsusb.txt, raw_host.log,
# pcscd.log, sweep.log (part10.log, part10-escape.log, pcscd-escape.log with
# +part10). Exit status 0 only when every check passed.
set -uo pipefail   # no -e: every check runs and reports even after a failure
# shellcheck source=guest-lib.sh
. "$(dirname "$0")/guest-lib.sh"
# A RUN with card-relay=vicc:HOST:PORT gets the checks of vicc.sh instead.
# shellcheck source=vicc.sh
. "$(dirname "$0")/vicc.sh"

R=${VM_RESULTS:?run me in the test guest}
RESULT=$R/result
TIME_UNIT_MS=100   # smartcrd-vreader --time-unit-ms: what one time extension costs
# Checked with +faults. zlp and stall are the front end's (a zero-length
# packet, a halted bulk IN endpoint before the answer); time-storm sends 50
# time extensions, paced at TIME_UNIT_MS: 5 s before the answer.
FAULTS=(wrong-seq wrong-slot truncate long-length mute time-storm zlp stall)
FAULT_SECONDS=20   # the longest one APDU may take while a fault is on
: >"$RESULT"
failures=0
run=        # name of the current run, prefix of its checks

pass() { echo "PASS $run.$1${2:+: $2}" | tee -a "$RESULT"; }
fail() { echo "FAIL $run.$1: $2" | tee -a "$RESULT"; failures=$((failures + 1)); }
log() { echo "vreader[$run]: $*"; }

# --- smartcrd-vreader --------------------------------------------------------
# (load_modules, clean_stale_gadgets, restore_bundles, add_to_libccid and
# ctl_at are in guest-lib.sh)

vr_pid=
vr_sock=

# ctl COMMAND: one line to this run's control socket; prints the answer.
ctl() { ctl_at "$vr_sock" "$1"; }

# vreader_stop: "quit" on the control socket; TERM then KILL if it stays.
vreader_stop() {
    local answer rc
    [ -n "$vr_pid" ] || return 1
    answer=$(ctl quit 2>&1)
    for _ in $(seq 1 20); do
        kill -0 "$vr_pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$vr_pid" 2>/dev/null; then
        kill -TERM "$vr_pid"
        sleep 2
        kill -KILL "$vr_pid" 2>/dev/null
        wait "$vr_pid" 2>/dev/null
        vr_pid=
        fail vreader-stop "did not stop on quit (answer '$answer'), killed"
        clean_stale_gadgets
        return 1
    fi
    wait "$vr_pid"
    rc=$?
    vr_pid=
    if [ "$answer" = ok ] && [ $rc = 0 ] && [ -z "$(ls -A "$GADGETS")" ]; then
        pass vreader-stop
    else
        fail vreader-stop "answer '$answer', exit $rc, gadgets left: $(ls "$GADGETS" | tr '\n' ' ')"
        clean_stale_gadgets
    fi
    # A smartcrd-vreader built with ASan/UBSan reports on stderr (vreader.log).
    if readelf -d "$VREADER" 2>/dev/null | grep -qE 'NEEDED.*lib(a|ub)san'; then
        if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$RD/vreader.log"; then
            fail vreader-sanitizers "$(grep -m1 -E 'Sanitizer|runtime error:' "$RD/vreader.log")"
        else
            pass vreader-sanitizers
        fi
    fi
}

# --- the checks of one run ---------------------------------------------------------

# opt KEY DEFAULT: the value of KEY=... among the run's profile settings.
opt() {
    local kv v=$2
    for kv in "${opts[@]}"; do
        [ "${kv%%=*}" = "$1" ] && v=${kv#*=}
    done
    echo "$v"
}

# check_descriptor VID PID LEVEL SPEED: lsusb -v of the device against the profile.
check_descriptor() {
    local id=$1:$2 level=$3 speed=$4 f="$RD/lsusb.txt" feat bits want mps want_mps
    timeout 20 lsusb -v -d "$id" >"$f" 2>&1
    feat=$(awk '/dwFeatures/ { print $2; exit }' "$f")   # hex, printed without 0x
    [ -n "$feat" ] && feat=0x${feat#0x}
    case $level in
        character) want=0x00000 ;;
        tpdu) want=0x10000 ;;
        short) want=0x20000 ;;
        extended) want=0x40000 ;;
    esac
    bits=$(printf '0x%05X' $(( ${feat:-0} & 0x70000 )))
    mps=$(awk '/bmAttributes/ { attr = $2 } /wMaxPacketSize/ && attr == 2 { print $2; exit }' "$f")
    want_mps=0x0040
    [ "$speed" = high ] && want_mps=0x0200
    if ! grep -qi "idVendor *0x$1" "$f" || ! grep -qi "idProduct *0x$2" "$f"; then
        fail descriptor "lsusb -v does not show $id (see lsusb.txt)"
    elif [ -z "$feat" ]; then
        fail descriptor "no CCID class descriptor (dwFeatures) in lsusb -v"
    elif [ "$bits" != "$want" ]; then
        fail descriptor "dwFeatures $feat: level bits $bits, expected $want ($level)"
    elif [ "$mps" != "$want_mps" ]; then
        fail descriptor "bulk wMaxPacketSize $mps, expected $want_mps ($speed speed)"
    else
        pass descriptor "$id dwFeatures $feat ($level), bulk packets $mps"
    fi
}

# check_control: status, and errors for a bad slot and an unknown command.
check_control() {
    local st bad unknown
    st=$(ctl status)
    bad=$(ctl "insert 9")
    unknown=$(ctl "frobnicate")
    case $st in
        "ok bound=1 enabled=1 cards=1"*) ;;
        *) fail control "status answered '$st'"; return ;;
    esac
    case $bad:$unknown in
        "error: "*:"error: "*) pass control "$st" ;;
        *) fail control "'insert 9' answered '$bad', 'frobnicate' '$unknown'" ;;
    esac
}

# check_replug VID:PID: unplug and replug through the control socket.
check_replug() {
    local id=$1 a b gone=no
    a=$(ctl unplug)
    for _ in $(seq 1 20); do
        usb_present "$id" || { gone=yes; break; }
        sleep 0.25
    done
    b=$(ctl replug)
    if [ "$a" != ok ] || [ "$b" != ok ]; then
        fail replug "control answers: unplug '$a', replug '$b'"
    elif [ $gone = no ]; then
        fail replug "$id still on the bus 5 s after unplug"
    elif ! wait_usb_device "$id" 10; then
        fail replug "$id not back 10 s after replug"
    else
        pass replug
    fi
}

usb_present() {
    local d
    for d in /sys/bus/usb/devices/*; do
        [ "$(cat "$d/idVendor" 2>/dev/null):$(cat "$d/idProduct" 2>/dev/null)" = "$1" ] && return 0
    done
    return 1
}

# check_faults FAULT...: applet_sweep -F, each fault once; a line per fault,
# check fault-NAME (hwerror, a control command rather than a fault: check
# hwerror).
check_faults() {
    local list f line rc check
    list=$(IFS=,; echo "$*")
    timeout --kill-after=5 $(( $# * 4 * FAULT_SECONDS + 30 )) \
        "$VM_BUILD/applet_sweep" -c "$vr_sock" -F "$list" -T "$FAULT_SECONDS" >"$RD/faults.log" 2>&1
    rc=$?
    for f in "$@"; do
        check=fault-$f
        [ "$f" = hwerror ] && check=hwerror
        line=$(grep -m1 -E "^(PASS|FAIL) fault $f:" "$RD/faults.log")
        case $line in
            PASS*) pass "$check" "${line#PASS fault "$f": }" ;;
            FAIL*) fail "$check" "${line#FAIL fault "$f": }" ;;
            *) fail "$check" "no result (applet_sweep exit $rc; see faults.log)" ;;
        esac
    done
}

# check_events: the "events" check from sweep.log (applet_sweep -c): every
# removal and insertion seen; the detail is the latency line (timing never
# fails it: the guest runs under TCG on a shared machine).
check_events() {
    local lat
    lat=$(grep -m1 '^applet_sweep: event latency: ' "$RD/sweep.log")
    if grep -qE '^FAIL (removal|insertion)' "$RD/sweep.log" || [ -z "$lat" ]; then
        fail events "$(grep -E '^FAIL (removal|insertion)' "$RD/sweep.log" | tr '\n' ' ')$(grep -m1 -E "^applet_sweep: '(remove|insert)" "$RD/sweep.log")"
    else
        pass events "${lat#applet_sweep: event latency: }"
    fi
}

# set_driver_options MODE VALUE: ifdDriverOptions in the Info.plist of the
# bundle in use (the guest's overlay takes the write); both drivers read it
# when pcscd loads them. Bit 0x01 lets applications send Escape.
set_driver_options() {
    set_plist_key "$1" ifdDriverOptions "$2"
}

# set_plist_key MODE KEY VALUE: the <string> after <key>KEY</key> in the
# driver's Info.plist (the guest's copy); status 0 once it reads VALUE.
set_plist_key() {
    local plist
    case $1 in
        ours) plist=$DRIVERS/ifd-smartcrd.bundle/Contents/Info.plist ;;
        libccid) plist=$DRIVERS/ifd-ccid.bundle/Contents/Info.plist ;;
    esac
    sed -i '/<key>'"$2"'<\/key>/{n;s|<string>[^<]*</string>|<string>'"$3"'</string>|}' "$plist"
    grep -A1 "<key>$2</key>" "$plist" | grep -q "<string>$3</string>"
}

# part10_verdicts LOG CHECK...: the "PASS part10-X" / "FAIL part10-X" lines
# of part10.py's LOG as the run's checks.
part10_verdicts() {
    local log=$1 c line
    shift
    for c in "$@"; do
        line=$(grep -m1 -E "^(PASS|FAIL) $c:" "$log")
        case $line in
            PASS*) pass "$c" "${line#PASS "$c": }" ;;
            FAIL*) fail "$c" "${line#FAIL "$c": }" ;;
            *) fail "$c" "no result (see $(basename "$log"))" ;;
        esac
    done
}

# check_part10 MODE LEVEL: PC/SC part 10 through pcscd (part10.py, pyscard):
# the part10-* checks with Escape not allowed (the default), then pcscd
# started again with ifdDriverOptions 0x0001 (our driver at TPDU level:
# smartcrdEscapeReaders listing this reader) for part10-escape-allowed, and
# the option set back. Needs a profile with pin-support=verify,modify whose
# keypad-pin is the card's PIN.
check_part10() {
    local mode=$1 level=$2 lcd layout=0 args rc
    lcd=$(opt lcd none)
    [ "$lcd" != none ] && layout=$(( ${lcd%x*} << 8 | ${lcd#*x} ))
    args=(--keypad-pin "$(opt keypad-pin 1234)" --new-pin "$(opt keypad-new-pin 5678)"
          --lcd "$layout" --vid "$vid" --pid "$pid" --level "$level")
    local mech=()
    # a reader with a motor: eject and accept through the vendor control codes
    [ "$(opt mechanical none)" != none ] && mech=(--mechanical part10-mechanical)
    timeout --kill-after=5 300 python3 "$VM_DIR/part10.py" "${args[@]}" "${mech[@]:0:1}" \
        >"$RD/part10.log" 2>&1
    rc=$?
    grep -E '^part10: ([0-9]+ passed|feature|PIN prop)' "$RD/part10.log"
    part10_verdicts "$RD/part10.log" part10-features part10-tlv part10-verify part10-wrong-pin \
        part10-modify part10-malformed part10-escape "${mech[@]:1}"
    [ $rc = 0 ] || log "part10.py exit $rc"
    # Escape allowed by the administrator: a new pcscd reads the option. Our
    # driver at TPDU level has it for this reader only (smartcrdEscapeReaders
    # with its VID, PID and serial), elsewhere for every reader (the bit).
    local allow=(set_driver_options "$mode" 0x0001) undo=(set_driver_options "$mode" 0x0000)
    if [ "$mode" = ours ] && [ "$level" = tpdu ]; then
        allow=(set_plist_key ours smartcrdEscapeReaders "$vid:$pid:$(opt serial 0001)")
        undo=(set_plist_key ours smartcrdEscapeReaders "")
    fi
    stop_pcscd
    if ! "${allow[@]}"; then
        fail part10-escape-allowed "could not change the bundle's Info.plist: ${allow[*]}"
    elif ! start_pcscd "$RD/pcscd-escape.log" "ATR: " SMARTCRD_LOG_LEVEL="${SMARTCRD_LOG_LEVEL:-3}" \
        LIBCCID_ifdLogLevel=0x0003 "${san_env[@]}"; then
        fail part10-escape-allowed "pcscd with ifdDriverOptions 0x0001: no reader with a card (see pcscd-escape.log)"
    else
        timeout --kill-after=5 120 python3 "$VM_DIR/part10.py" --escape-allowed "${args[@]}" \
            >"$RD/part10-escape.log" 2>&1
        part10_verdicts "$RD/part10-escape.log" part10-escape-allowed
    fi
    "${undo[@]}" || log "could not undo: ${undo[*]}"
}

# run_one MODE BUNDLE: one run with the current $run, $opts.
run_one() {
    local mode=$1 bundle=$2 vid pid level speed id sweep_flags=() kv vopts=() rc summary
    local faults=() time_flags=() part10=no
    local -a san_env=()
    local out
    RD=$R/$run
    mkdir -p "$RD"
    vid=$(opt vid 1209); vid=${vid#0x}; vid=$(printf '%04x' "0x$vid")
    pid=$(opt pid 5CCD); pid=${pid#0x}; pid=$(printf '%04x' "0x$pid")
    level=$(opt level short)
    speed=$(opt speed full)
    id=$vid:$pid
    for kv in "${opts[@]}"; do
        case $kv in
            # hwerror first, stall last: a host that never clears the halt
            # (libccid?) would fail every check after it
            +faults) faults=(hwerror "${FAULTS[@]}") ;;
            +faults=*) IFS=, read -r -a faults <<<"${kv#+faults=}" ;;
            +part10) part10=yes ;;
            *) vopts+=(-o "$kv") ;;
        esac
    done
    # extended lengths: at extended APDU level, and over T=1 blocks below it
    case $level:$(opt card-protocols t0,t1) in
        extended:* | tpdu:t1 | character:t1) sweep_flags+=(-x) ;;
    esac
    # T=0 below the APDU levels: 61xx reaches the application, which sends the
    # GET RESPONSE itself (the reader and libccid only carry TPDUs there).
    case $level:$(opt card-protocols t0,t1) in
        tpdu:t0 | character:t0) sweep_flags+=(-g) ;;
    esac
    # CCID time extensions (bulk IN, paced by the front end) come at the APDU
    # levels and at TPDU level with T=0; elsewhere the card asks S(WTX) or
    # sends NULL bytes, which are not paced.
    case $level:$(opt card-protocols t0,t1) in
        short:* | extended:* | tpdu:t0) time_flags+=(-w "$TIME_UNIT_MS") ;;
    esac
    log "profile: ${opts[*]:-defaults} ($mode)"

    load_modules "$speed"
    clean_stale_gadgets
    vr_sock=/run/vreader-$run.sock
    "$VREADER" --gadget-name "vr$runs" --control "$vr_sock" --time-unit-ms "$TIME_UNIT_MS" "${vopts[@]}" \
        >"$RD/vreader.log" 2>&1 &
    vr_pid=$!
    if wait_usb_device "$id" 15; then
        pass usb-device
    else
        fail usb-device "no $id on the guest's USB bus after 15 s (smartcrd-vreader $(kill -0 $vr_pid 2>/dev/null && echo running || echo gone); see vreader.log)"
        tail -n 5 "$RD/vreader.log"
        vreader_stop
        return
    fi
    check_descriptor "$vid" "$pid" "$level" "$speed"
    # A misbehaving host first (no pcscd yet); its checks speak APDUs, so only
    # at the APDU levels.
    if [ "$level" = short ] || [ "$level" = extended ]; then
        timeout 60 "$VM_BUILD/raw_host" "$id" >"$RD/raw_host.log" 2>&1
        rc=$?
        summary=$(grep -E '^raw_host: [0-9]+ passed' "$RD/raw_host.log" | tail -n 1)
        if [ $rc = 0 ] && kill -0 "$vr_pid" 2>/dev/null; then
            pass raw-host "${summary#raw_host: }"
        else
            fail raw-host "${summary#raw_host: }${summary:+, }exit $rc, smartcrd-vreader $(kill -0 "$vr_pid" 2>/dev/null && echo running || echo gone) (see raw_host.log)"
            grep -m 5 '^FAIL' "$RD/raw_host.log"
        fi
    fi

    if start_driver "$mode" "$bundle" "ATR: "; then
        pass reader "$(timeout 10 pcsc_scan -c -n 2>&1 | grep -m1 'ATR:' | sed 's/^ *//')"
    else
        fail reader "no reader with a card after 30 s (see pcscd.log)"
    fi
    timeout --kill-after=5 300 "$VM_BUILD/applet_sweep" "${sweep_flags[@]}" -c "$vr_sock" \
        -t 240 >"$RD/sweep.log" 2>&1
    rc=$?
    grep -E '^applet_sweep: (connected|sweep of|stopped)' "$RD/sweep.log"
    client_verdict sweep applet_sweep "$RD/sweep.log" $rc
    check_events
    timeout --kill-after=5 60 "$VM_BUILD/applet_sweep" -E "${time_flags[@]}" >"$RD/time-ext.log" 2>&1
    client_verdict time-ext applet_sweep "$RD/time-ext.log" $?
    grep -E '^applet_sweep: 80 38' "$RD/time-ext.log"
    [ ${#faults[@]} -gt 0 ] && check_faults "${faults[@]}"
    [ $part10 = yes ] && check_part10 "$mode" "$level"
    end_driver
    check_control
    check_replug "$id"
    vreader_stop
}

# --- arguments: [--bin VREADER] RUN [--- RUN]... ------------------------------

VREADER=
if [ "${1:-}" = --bin ]; then VREADER=$2; shift 2; fi
runs=0
while [ $# -gt 0 ]; do
    runs=$((runs + 1))
    run=run$runs
    if [ "$1" = --name ]; then run=$2; shift 2; fi
    mode=${1:-}
    shift
    bundle=
    case $mode in
        ours) bundle=${1:-}; shift ;;
        libccid) ;;
        *) echo "usage: $0 [--bin VREADER] [--name NAME] ours BUNDLE|libccid [KEY=VALUE...] [--- ...]"; exit 2 ;;
    esac
    opts=()
    while [ $# -gt 0 ] && [ "$1" != --- ]; do opts+=("$1"); shift; done
    [ "${1:-}" = --- ] && shift
    if [ -z "$VREADER" ] && [ -n "$bundle" ]; then
        VREADER=${bundle%/usr/lib/pcsc/drivers/*}/usr/bin/smartcrd-vreader
    fi
    if [ -z "$VREADER" ] || [ ! -x "$VREADER" ]; then
        fail usb-device "no smartcrd-vreader binary ('$VREADER'): give --bin"
        continue
    fi
    if [ "$(opt card-relay none)" != none ]; then
        run_vicc "$mode" "$bundle"
    else
        run_one "$mode" "$bundle"
    fi
done
dmesg >"$R/dmesg.txt" 2>&1
echo "vreader: $(grep -c ^PASS "$RESULT") passed, $failures failed"
[ $failures = 0 ]
