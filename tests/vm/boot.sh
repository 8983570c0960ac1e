#!/bin/bash
# Boots the test guest once with a scenario script; exits with the scenario's
# status (1 when the guest wrote none: crash, hang, QEMU refused to start).
#
# Usage: boot.sh [-t SECONDS] [-o RESULTS_DIR] [--ccid] SCENARIO [ARGS...] [-- QEMU_OPTIONS...]
#   -t SECONDS      time limit around QEMU (default 420)
#   -o RESULTS_DIR  folder shared read-write with the guest (/vm-results there);
#                   default tests/vm/results/<scenario name>
#   --ccid          plug in QEMU's USB CCID reader with the emulated CAC card
#   SCENARIO        a host path; the guest sees the host root, so it runs as is
#   QEMU_OPTIONS    extra devices etc., passed to QEMU unchanged
# Environment: SMARTCRD_LOG_LEVEL is passed into the guest; SMARTCRD_VM_CACHE
# moves the cache (default tests/vm/cache). Run tests/vm/setup.sh first.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

timeout_s=420
results=
ccid=no
while [ $# -gt 0 ]; do
    case $1 in
        -t) timeout_s=$2; shift 2 ;;
        -o) results=$2; shift 2 ;;
        --ccid) ccid=yes; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
scenario=$1
shift
results=${results:-$VM_DIR/results/$(basename "$scenario" .sh)}

# Scenario arguments first, then "--" and QEMU options.
declare -a sargs=() qargs=()
while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then shift; qargs=("$@"); break; fi
    sargs+=("$1"); shift
done
if [ $ccid = yes ]; then
    mapfile -t ccid_opts < <(vm_qemu_ccid_devices)
    qargs=("${ccid_opts[@]}" "${qargs[@]}")
fi

rc=0
vm_boot "$results" "$timeout_s" "$scenario" "${sargs[@]}" -- "${qargs[@]}" || rc=$?
exit $rc
