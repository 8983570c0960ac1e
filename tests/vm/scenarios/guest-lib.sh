# shellcheck shell=bash
# Functions shared by the guest scenarios (sourced; runs INSIDE the test guest).

DRIVERS=/usr/lib/pcsc/drivers

# use_only_bundle ours BUNDLE_DIR | libccid
# pcscd loads every bundle in $DRIVERS and has no setting to look elsewhere:
# move all others out of the way (in the guest's overlay only) and, for ours,
# copy our staged bundle in. Prints the name of the bundle kept.
use_only_bundle() {
    local mode=$1 bundle=${2:-} keep entry stash=$STASH
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

# --- the virtual reader's USB side (smartcrd-vreader on dummy_hcd) -------------

GADGETS=/sys/kernel/config/usb_gadget
STASH=/var/lib/smartcrd-stashed-drivers   # use_only_bundle's

# load_modules SPEED [UDCS]: dummy_hcd at full (is_high_speed=0) or high speed
# with UDCS controllers (default 1), reloaded when either changes;
# libcomposite and usb_f_fs; configfs.
load_modules() {
    local want=N hs=0 num=${2:-1} cur cur_num
    [ "$1" = high ] && { want=Y; hs=1; }
    cur=$(cat /sys/module/dummy_hcd/parameters/is_high_speed 2>/dev/null)
    cur_num=$(cat /sys/module/dummy_hcd/parameters/num 2>/dev/null)
    if [ -n "$cur" ] && { [ "$cur" != "$want" ] || [ "${cur_num:-1}" != "$num" ]; }; then
        rmmod dummy_hcd || echo "load_modules: rmmod dummy_hcd failed" >&2
        cur=
    fi
    if [ -z "$cur" ]; then
        modprobe -d "$VM_KERNEL_DIR" dummy_hcd is_high_speed=$hs num="$num" \
            || echo "load_modules: modprobe dummy_hcd failed" >&2
    fi
    modprobe -d "$VM_KERNEL_DIR" libcomposite || echo "load_modules: modprobe libcomposite failed" >&2
    modprobe -d "$VM_KERNEL_DIR" usb_f_fs || echo "load_modules: modprobe usb_f_fs failed" >&2
    mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
}

# Removes gadgets left by a smartcrd-vreader that died, so the next run can bind.
clean_stale_gadgets() {
    local g
    for g in "$GADGETS"/*/; do
        [ -d "$g" ] || continue
        echo "" >"$g/UDC" 2>/dev/null
        umount /dev/ffs-* 2>/dev/null
        rm -f "$g"/configs/*/ffs.* 2>/dev/null
        rmdir "$g"/configs/*/strings/* "$g"/configs/* "$g"/functions/* "$g"/strings/* "$g" 2>/dev/null
    done
}

# ctl_at SOCKET COMMAND: one line to a smartcrd-vreader control socket; prints
# the answer.
ctl_at() {
    timeout 10 python3 - "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
print(s.makefile().readline().strip())
EOF
}

# --- the bundles ---------------------------------------------------------------

# Undoes use_only_bundle: our copy out, the stashed bundles back.
restore_bundles() {
    local entry
    rm -rf "$DRIVERS/ifd-smartcrd.bundle"
    for entry in "$STASH"/*; do
        [ -e "$entry" ] && mv "$entry" "$DRIVERS"/
    done
}

# libccid takes only the VID/PIDs its Info.plist lists: add ours (three
# parallel arrays, kept the same length). The guest's overlay takes the write.
add_to_libccid() {
    local vid=$1 pid=$2
    python3 - "$DRIVERS/ifd-ccid.bundle/Contents/Info.plist" "$vid" "$pid" <<'EOF'
import plistlib, sys
path, vid, pid = sys.argv[1], "0x%04X" % int(sys.argv[2], 16), "0x%04X" % int(sys.argv[3], 16)
with open(path, "rb") as f:
    pl = plistlib.load(f)
pairs = list(zip(pl["ifdVendorID"], pl["ifdProductID"]))
if (vid, pid) not in [(v.upper().replace("X", "x"), p.upper().replace("X", "x")) for v, p in pairs]:
    pl["ifdVendorID"].append(vid)
    pl["ifdProductID"].append(pid)
    pl["ifdFriendlyName"].append("smartcrd virtual reader")
    with open(path, "wb") as f:
        plistlib.dump(pl, f)
EOF
}

# --- pcscd with one driver ------------------------------------------------------

# start_driver MODE BUNDLE ATR_PATTERN: only the chosen driver bundle in place
# (libccid also learns our VID/PID), the "driver" check, then pcscd (with the
# sanitizer runtime for an instrumented bundle) until a reader shows a card
# whose pcsc_scan line matches ATR_PATTERN. Status: start_pcscd's.
# Uses the caller's vid and pid, and fills the caller's san_env array (the
# caller checks for sanitizer reports with it afterwards), and $RD (the log
# folder). Both call the scenario's pass and fail.
start_driver() {
    local mode=$1 bundle=$2 atr=$3 keep now out
    san_env=()
    restore_bundles
    [ "$mode" = libccid ] && add_to_libccid "$vid" "$pid"
    keep=$(use_only_bundle "$mode" "$bundle")
    now=$(cd "$DRIVERS" && echo *)
    if [ "$now" = "$keep" ]; then pass driver; else fail driver "found: $now"; fi
    # (no process substitution: keep working where the guest has no /dev/fd)
    out=$(sanitizer_env "$keep" "$RD")
    [ -n "$out" ] && mapfile -t san_env <<<"$out"
    start_pcscd "$RD/pcscd.log" "$atr" SMARTCRD_LOG_LEVEL="${SMARTCRD_LOG_LEVEL:-3}" \
        LIBCCID_ifdLogLevel=0x0003 "${san_env[@]}"
}

# end_driver: the "pcscd-alive" check, pcscd stopped, then the "sanitizers"
# check when start_driver ran pcscd with the sanitizer runtime.
end_driver() {
    if pcscd_running; then pass pcscd-alive; else fail pcscd-alive "pcscd exited"; fi
    stop_pcscd
    [ ${#san_env[@]} -eq 0 ] || sanitizer_verdict "$RD"
}


# start_udevd: udevd from the cache (setup.sh's fetch_udev), without rules:
# pcscd's hotplug and libusb's device list follow udevd's netlink messages,
# which a guest without udevd never sends, so a replugged reader would never
# reach pcscd. Status 0 once udevd answers.
start_udevd() {
    local udevadm=$VM_UDEV_DIR/bin/udevadm
    [ -x "$udevadm" ] || { echo "start_udevd: no $udevadm (run tests/vm/setup.sh)" >&2; return 1; }
    mkdir -p /run/udev
    # udevadm is systemd-udevd too, chosen by the name it is started under
    (exec -a systemd-udevd "$udevadm" --daemon) || return 1
    timeout 10 "$udevadm" control --ping
}
