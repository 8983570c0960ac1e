# shellcheck shell=bash disable=SC2154,SC2034
# (SC2154/SC2034: variables shared with vreader.sh, which sources this file)
# The vicc runs of the virtual reader's scenario: sourced by vreader.sh (it uses
# that file's pass, fail, log, opt, check_descriptor, vreader_stop, and
# guest-lib's load_modules, clean_stale_gadgets, restore_bundles,
# add_to_libccid, start_driver, end_driver; and vreader.sh's variables run,
# opts, RD, VREADER, vr_pid, vr_sock, runs); runs INSIDE the test guest. A
# run whose profile has card-relay=vicc:HOST:PORT goes here instead of the
# applet checks: smartcrd-vreader relays its card to Debian's
# vicc (vsmartcard-vpicc, its iso7816 card), pcscd with one driver in front.
#
# Checks, each "PASS NAME.check" / "FAIL NAME.check: why":
#   usb-device, descriptor   as in vreader.sh
#   vicc         vicc started and connected to the reader's relay port (vicc
#                connects to HOST:PORT, as to vpcd, and exits when it cannot)
#   driver       only the chosen bundle is in /usr/lib/pcsc/drivers
#   reader       pcscd shows the reader holding a card with vicc's ATR
#   vicc-atr     opensc-tool -a prints vicc's ATR
#   vicc-apdu    opensc-tool -c default: SELECT MF without FCI
#                (00 A4 00 0C 02 3F 00) answers 90 00, GET CHALLENGE
#                (00 84 00 00 08) 8 bytes and 90 00
#   vicc-alive   vicc still running, no Python traceback in its log
#   pcscd-alive, vreader-stop   as in vreader.sh
# Files in $VM_RESULTS/NAME/: vreader.log, vicc.log, lsusb.txt, pcscd.log,
# opensc.log.
#
# Debian 12's vicc has two packaging faults worked around here: its module is
# in /usr/lib/python3/site-packages/virtualsmartcard, not on Python's path, and
# it imports Crypto where Debian's pycryptodome is Cryptodome. And a bug of its
# own: SELECT with P2 00 (return the FCI) kills it with a TypeError in
# TLVutils under Python 3, so the checks select with P2 0C (no FCI).

# The ATR of Debian 12's vicc (3.3+dfsg-2), -t iso7816: TA1 13, T=1 only.
VICC_ATR="3B 95 13 81 01 80 73 FF 01 00 0B"
VICC_PY=/run/vicc-python   # holds the Crypto -> Cryptodome symlink
vicc_pid=

# start_vicc HOST PORT: vicc in the background, connected to the reader; 1
# when it is not connected within 60 s (Python starts slowly under TCG).
start_vicc() {
    mkdir -p "$VICC_PY"
    ln -sfn /usr/lib/python3/dist-packages/Cryptodome "$VICC_PY/Crypto"
    PYTHONPATH=/usr/lib/python3/site-packages/virtualsmartcard:$VICC_PY \
        vicc -t iso7816 -H "$1" -P "$2" -vvv >"$RD/vicc.log" 2>&1 &
    vicc_pid=$!
    for _ in $(seq 1 120); do
        grep -q 'Connected to virtual PCD' "$RD/vicc.log" && return 0
        kill -0 "$vicc_pid" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}

stop_vicc() {
    [ -n "$vicc_pid" ] || return 0
    kill -TERM "$vicc_pid" 2>/dev/null
    wait "$vicc_pid" 2>/dev/null
    vicc_pid=
}

# check_vicc_opensc: the ATR and two APDUs through pcscd with opensc-tool.
# Its -a prints the ATR as lower-case hex with colons.
check_vicc_opensc() {
    local want got n
    want=$(echo "$VICC_ATR" | tr 'A-F ' 'a-f:')
    timeout 60 opensc-tool -c default -a -s "00 A4 00 0C 02 3F 00" -s "00 84 00 00 08" \
        >"$RD/opensc.log" 2>&1
    got=$(grep -m1 -iE '^[0-9a-f]{2}(:[0-9a-f]{2})+$' "$RD/opensc.log")
    if [ "$got" = "$want" ]; then
        pass vicc-atr "$got"
    else
        fail vicc-atr "opensc-tool -a printed '${got:-nothing}', expected $want (see opensc.log)"
    fi
    n=$(grep -c 'SW1=0x90, SW2=0x00' "$RD/opensc.log")
    # GET CHALLENGE's 8 bytes: the hex dump line after its answer
    if [ "$n" = 2 ] && grep -A1 'SW1=0x90, SW2=0x00' "$RD/opensc.log" | tail -n 1 \
        | grep -qiE '^([0-9a-f]{2} ){8}'; then
        pass vicc-apdu "SELECT MF 90 00, GET CHALLENGE 8 bytes 90 00"
    else
        fail vicc-apdu "$n of 2 APDUs answered 90 00 (see opensc.log)"
        grep -m 6 -E 'Sending|Received|rror' "$RD/opensc.log"
    fi
}

# run_vicc MODE BUNDLE: one run with the current $run, $opts.
run_vicc() {
    local mode=$1 bundle=$2 vid pid level relay host port id kv vopts=()
    local -a san_env=()
    local out
    RD=$R/$run
    mkdir -p "$RD"
    vid=$(opt vid 1209); vid=${vid#0x}; vid=$(printf '%04x' "0x$vid")
    pid=$(opt pid 5CCD); pid=${pid#0x}; pid=$(printf '%04x' "0x$pid")
    level=$(opt level short)
    relay=$(opt card-relay none)
    relay=${relay#vicc:}
    host=${relay%:*}
    port=${relay##*:}
    id=$vid:$pid
    for kv in "${opts[@]}"; do
        case $kv in
            +*) ;;   # no fault checks with vicc
            *) vopts+=(-o "$kv") ;;
        esac
    done
    log "profile: ${opts[*]} ($mode), vicc on $host:$port"
    # vicc and the reader talk over loopback, which nothing brought up yet.
    ip link set lo up 2>/dev/null || busybox ip link set lo up

    load_modules "$(opt speed full)"
    clean_stale_gadgets
    vr_sock=/run/vreader-$run.sock
    "$VREADER" --gadget-name "vr$runs" --control "$vr_sock" -v "${vopts[@]}" >"$RD/vreader.log" 2>&1 &
    vr_pid=$!
    if wait_usb_device "$id" 15; then
        pass usb-device
    else
        fail usb-device "no $id on the guest's USB bus after 15 s (see vreader.log)"
        tail -n 5 "$RD/vreader.log"
        vreader_stop
        return
    fi
    check_descriptor "$vid" "$pid" "$level" "$(opt speed full)"
    # The reader listens from its start; vicc connects to it.
    if start_vicc "$host" "$port"; then
        pass vicc "connected to $host:$port"
    else
        fail vicc "not connected to $host:$port (see vicc.log)"
        tail -n 5 "$RD/vicc.log"
    fi

    if start_driver "$mode" "$bundle" "ATR: $VICC_ATR"; then
        pass reader "ATR: $VICC_ATR"
    else
        fail reader "no reader with vicc's ATR $VICC_ATR after 30 s (see pcscd.log): $(timeout 10 pcsc_scan -c -n 2>&1 | grep -m1 'ATR:')"
    fi
    check_vicc_opensc
    if kill -0 "$vicc_pid" 2>/dev/null && ! grep -q Traceback "$RD/vicc.log"; then
        pass vicc-alive
    else
        fail vicc-alive "vicc $(kill -0 "$vicc_pid" 2>/dev/null && echo running || echo gone): $(grep -m1 -E 'Error' "$RD/vicc.log")"
    fi
    end_driver
    vreader_stop
    stop_vicc
}
