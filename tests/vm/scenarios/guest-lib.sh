# shellcheck shell=bash
# Functions shared by the guest scenarios (sourced; runs INSIDE the test guest).

DRIVERS=/usr/lib/pcsc/drivers

# use_only_bundle ours BUNDLE_DIR | libccid
# pcscd loads every bundle in $DRIVERS and has no setting to look elsewhere:
# move all others out of the way (in the guest's overlay only) and, for ours,
# copy our staged bundle in. Prints the name of the bundle kept.
use_only_bundle() {
    local mode=$1 bundle=${2:-} keep entry stash=/var/lib/smartcrd-stashed-drivers
    case $mode in
        ours) keep=ifd-smartcrd.bundle ;;
        libccid) keep=ifd-ccid.bundle ;;
        *) return 2 ;;
    esac
    mkdir -p "$stash"
    for entry in "$DRIVERS"/*; do
        [ -e "$entry" ] || continue
        [ "$(basename "$entry")" = "$keep" ] && [ "$mode" = libccid ] && continue
        mv "$entry" "$stash"/
    done
    if [ "$mode" = ours ]; then
        if [ -f "$bundle/Contents/Info.plist" ] && ls "$bundle"/Contents/Linux/*.so >/dev/null 2>&1; then
            cp -a "$bundle" "$DRIVERS/$keep"
        else
            echo "bundle $bundle lacks Contents/Info.plist or Contents/Linux/*.so" >&2
        fi
    fi
    echo "$keep"
}

# wait_usb_device VID:PID SECONDS: loads the xHCI driver, waits for the device.
wait_usb_device() {
    local id=$1 secs=$2 d
    modprobe -d "$VM_KERNEL_DIR" xhci_pci 2>/dev/null
    for _ in $(seq 1 $((secs * 2))); do
        for d in /sys/bus/usb/devices/*; do
            [ "$(cat "$d/idVendor" 2>/dev/null):$(cat "$d/idProduct" 2>/dev/null)" = "$id" ] && return 0
        done
        sleep 0.5
    done
    return 1
}

# start_pcscd LOGFILE ATR [ENV...]: starts pcscd -f -d -a in the background
# (pid in $pcscd_pid) and waits until pcsc_scan shows a reader holding the card
# with ATR (spaced hex). 1 when no such reader shows up within 30 s.
pcscd_pid=
start_pcscd() {
    local logfile=$1 atr=$2
    shift 2
    env "$@" pcscd -f -d -a >"$logfile" 2>&1 &
    pcscd_pid=$!
    for _ in $(seq 1 30); do
        kill -0 "$pcscd_pid" 2>/dev/null || return 1
        timeout 10 pcsc_scan -c -n 2>&1 | grep -q "$atr" && return 0
        sleep 1
    done
    return 1
}

pcscd_running() { kill -0 "$pcscd_pid" 2>/dev/null; }

# stop_pcscd: TERM, then KILL after 5 s.
stop_pcscd() {
    kill -TERM "$pcscd_pid" 2>/dev/null
    for _ in $(seq 1 20); do
        pcscd_running || break
        sleep 0.25
    done
    kill -KILL "$pcscd_pid" 2>/dev/null
    wait "$pcscd_pid" 2>/dev/null
}

# sanitizer_env BUNDLE_NAME LOG_DIR: for a driver bundle in $DRIVERS built with
# ASan or UBSan (configure's --enable-sanitizers), prints the environment pcscd
# (not instrumented) needs, one VAR=value a line: the ASan runtime preloaded,
# reports to LOG_DIR/asan.* and LOG_DIR/ubsan.*. Prints nothing for a plain build.
sanitizer_env() {
    local so rt
    so=$(find "$DRIVERS/$1/Contents/Linux" -maxdepth 1 -name '*.so' 2>/dev/null | head -n 1)
    [ -n "$so" ] || return 0
    if readelf -d "$so" 2>/dev/null | grep -q 'NEEDED.*libasan'; then
        rt=$(ldd "$so" | awk '/libasan/ { print $3; exit }')
        printf '%s\n' "LD_PRELOAD=$rt" "ASAN_OPTIONS=detect_leaks=0:log_path=$2/asan" \
            "UBSAN_OPTIONS=print_stacktrace=1:log_path=$2/ubsan"
    elif readelf -d "$so" 2>/dev/null | grep -q 'NEEDED.*libubsan'; then
        echo "UBSAN_OPTIONS=print_stacktrace=1:log_path=$2/ubsan"
    fi
}

# client_verdict CHECK PROGRAM LOG RC: a test client (apdu_loop, applet_sweep)
# passes when it exited 0 and closed with "PROGRAM: N passed, M failed". Calls
# the scenario's pass or fail; on failure shows the client's first FAIL lines.
client_verdict() {
    local check=$1 prog=$2 log=$3 rc=$4 summary
    summary=$(grep -E "^$prog: [0-9]+ passed, [0-9]+ failed\$" "$log" | tail -n 1)
    if [ "$rc" = 0 ] && [ -n "$summary" ]; then
        pass "$check" "${summary#"$prog": }"
    else
        fail "$check" "${summary#"$prog": }${summary:+, }exit $rc (see $(basename "$log"))"
        grep -m 10 -E "^(FAIL|$prog: SCard)" "$log"
    fi
}

# sanitizer_verdict DIR: for a driver run with the sanitizer runtime, the
# scenario's "sanitizers" check: it passes when DIR holds no asan.* or ubsan.*
# report, and fails showing the start of the reports otherwise.
sanitizer_verdict() {
    local out
    out=$(find "$1" -maxdepth 1 \( -name 'asan.*' -o -name 'ubsan.*' \) -printf '%f ')
    if [ -z "$out" ]; then
        pass sanitizers "driver built with sanitizers: no report"
    else
        fail sanitizers "reports: $out"
        head -n 30 "$1"/asan.* "$1"/ubsan.* 2>/dev/null
    fi
}
