#!/usr/bin/env bash
# Build smartcrd and show it at work, without any hardware: installs what is
# missing (as root, or with sudo), builds the driver bundle, boots the QEMU test
# guest with QEMU's USB CCID reader and an emulated CAC card, starts pcscd with
# our driver only, and prints what the usual tools see: the reader, the card's
# ATR, an APDU and its answer, and the certificates OpenSC reads.
set -euo pipefail
# apt-get, the guest's initramfs (mknod) and the test bed need root.
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=SMARTCRD_LOG_LEVEL "$0" "$@"
top=$(cd "$(dirname "$0")" && pwd)
cd "$top"

scripts/deps.sh
tests/vm/setup.sh
echo "demo: building the driver"
bundle=$(scripts/build.sh bundle)
echo "demo: booting the test guest (about a minute under software emulation)"
results=$top/_build/demo
rc=0
tests/vm/boot.sh --ccid -o "$results" tests/vm/scenarios/demo.sh "$bundle" || rc=$?
cat "$results/demo.txt" 2>/dev/null || tail -n 30 "$results/console.log"
echo
[ $rc -eq 0 ] && echo "demo: done (full pcscd log: $results/pcscd.log)" || echo "demo: FAILED (see $results/)"
exit $rc
