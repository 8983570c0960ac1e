#!/bin/bash
# Guest scenario for ./demo.sh: our driver at work with QEMU's USB CCID reader
# and its emulated CAC card. Runs INSIDE the test guest; everything it shows
# goes to $VM_RESULTS/demo.txt, which demo.sh prints on the host.
# Usage: demo.sh BUNDLE_DIR
set -uo pipefail
# shellcheck source=guest-lib.sh
. "$(dirname "$0")/guest-lib.sh"

R=${VM_RESULTS:?run me in the test guest}
OUT=$R/demo.txt
ATR="3B 7A 18 00 00 73 66 74 65 20 63 64 31 34 34"
bundle=${1:?usage: demo.sh BUNDLE_DIR}
: >"$OUT"

show() { # show TITLE COMMAND...: the command line, then its output
    local title=$1
    shift
    { printf '\n--- %s\n$ %s\n' "$title" "$*"; timeout 60 "$@" 2>&1; } >>"$OUT"
}

wait_usb_device 08e6:4433 20 || { echo "QEMU's reader did not appear" >>"$OUT"; exit 1; }
show "the reader on the guest's USB bus" lsusb -d 08e6:4433
show "drivers pcscd will load" ls "$DRIVERS"
use_only_bundle ours "$bundle" >/dev/null
show "drivers pcscd will load (ours only)" ls "$DRIVERS"

if ! start_pcscd "$R/pcscd.log" "$ATR"; then
    { echo "pcscd shows no reader with a card; its log:"; tail -n 40 "$R/pcscd.log"; } >>"$OUT"
    exit 1
fi
show "pcsc_scan: readers and the card's ATR" pcsc_scan -c -n
show "the ATR through OpenSC" opensc-tool -a
# SELECT the CAC applet of the first certificate; T=0 answers 61 0D (13 bytes
# waiting), which GET RESPONSE fetches.
show "an APDU and its answer: SELECT, then GET RESPONSE" \
    opensc-tool -s "00 A4 04 00 07 A0 00 00 00 79 01 00" -s "00 C0 00 00 0D"
show "the certificates OpenSC reads from the card" pkcs15-tool --list-certificates
{ printf '\n--- what our driver wrote in pcscd'"'"'s log\n'; grep -m 12 'smartcrd' "$R/pcscd.log"; } >>"$OUT"
pcscd_running || { echo "pcscd died" >>"$OUT"; exit 1; }
stop_pcscd
exit 0
