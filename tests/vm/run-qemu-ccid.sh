#!/bin/bash
# QEMU's USB CCID reader with its emulated CAC card: our driver, then libccid as
# a reference, each in its own guest boot (so neither inherits the other's
# device state). Prints both outcomes side by side.
#
# Usage: run-qemu-ccid.sh [--no-reference] [-o RESULTS_DIR] BUNDLE_DIR
#        run-qemu-ccid.sh --reference-only
#   BUNDLE_DIR  our staged bundle, e.g. <DESTDIR>/usr/lib/pcsc/drivers/ifd-smartcrd.bundle
#               (from `make install DESTDIR=...`)
#   --no-reference    skip the libccid boot (saves about 25 s)
#   --reference-only  only the libccid boot (what this bed was developed with)
#   -o RESULTS_DIR    where our run's results go (default results/qemu-ccid-ours)
# Exit status: non-zero only when OUR run failed (or could not run). libccid's
# outcome is printed for comparison and never fails the run: libccid 1.5.2 gets
# out of step with QEMU's reader (see /work/shared/docs/vm-testbed.md).
# Results: tests/vm/results/qemu-ccid-{ours,libccid}/ (result, pcscd-*.log,
# apdu_loop.log, tools.log, console.log). SMARTCRD_LOG_LEVEL is passed to pcscd.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

usage() { sed -n '6,13p' "$0" >&2; exit 2; }

bundle=
ours_dir=$VM_DIR/results/qemu-ccid-ours
reference=yes
ours=yes
while [ $# -gt 0 ]; do
    case $1 in
        --no-reference) reference=no; shift ;;
        --reference-only) ours=no; shift ;;
        -o) ours_dir=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) bundle=$1; shift ;;
    esac
done
if [ $ours = yes ]; then
    [ -n "$bundle" ] || usage
    [ -d "$bundle" ] || vm_die "no bundle directory $bundle"
    # The guest sees the host's root: an absolute host path works there as is.
    bundle=$(readlink -f "$bundle")
fi

# Idempotent; quick when everything is in place.
timeout 1800 "$HERE/setup.sh"

# One boot: QEMU's time limit covers the scenario's own worst case (reader waits,
# tool and apdu_loop time limits) with room to spare.
BOOT_TIMEOUT=420
mapfile -t ccid < <(vm_qemu_ccid_devices)

ref_dir=$VM_DIR/results/qemu-ccid-libccid
# Results of an earlier run must not be shown as this run's.
for d in "$ours_dir" "$ref_dir"; do
    rm -f "$d"/result "$d"/boot-seconds "$d"/*.log "$d"/*.txt "$d"/asan.* "$d"/ubsan.* 2>/dev/null || true
done

ours_rc=skipped
ref_rc=skipped
if [ $ours = yes ]; then
    ours_rc=0
    vm_boot "$ours_dir" $BOOT_TIMEOUT \
        "$VM_DIR/scenarios/qemu-ccid.sh" ours "$bundle" -- "${ccid[@]}" || ours_rc=$?
fi
if [ $reference = yes ]; then
    ref_rc=0
    vm_boot "$ref_dir" $BOOT_TIMEOUT \
        "$VM_DIR/scenarios/qemu-ccid.sh" libccid -- "${ccid[@]}" || ref_rc=$?
fi

# --- side by side ---------------------------------------------------------------
# result lines: "PASS name" or "FAIL name: detail"
cell() {  # cell RESULT_FILE CHECK -> "PASS detail" / "FAIL detail" / "-"
    local f=$1 name=$2 line
    [ -f "$f" ] || { echo "-"; return; }
    line=$(grep -E "^(PASS|FAIL) $name(:|$)" "$f" | head -n 1)
    [ -n "$line" ] || { echo "-"; return; }
    local verdict=${line%% *} rest=${line#* } detail=
    rest=${rest#"$name"}
    detail=${rest#: }
    detail=${detail% (see *}    # the logs are named in the result file
    printf '%s %s' "$verdict" "$detail" | cut -c1-44
}
ours_file=$ours_dir/result
ref_file=$ref_dir/result
checks=$(for f in "$ours_file" "$ref_file"; do if [ -f "$f" ]; then cat "$f"; fi; done \
    | sed -E 's/^(PASS|FAIL) ([^:]+).*/\2/' | awk '!seen[$0]++')

boot_time() { cat "$1/boot-seconds" 2>/dev/null || echo -; }
echo
printf '%-14s  %-44s  %s\n' "check" "ours" "libccid (reference only)"
printf '%-14s  %-44s  %s\n' "-----" "----" "------------------------"
for c in $checks; do
    printf '%-14s  %-44s  %s\n' "$c" "$(cell "$ours_file" "$c")" "$(cell "$ref_file" "$c")"
done
printf '%-14s  %-44s  %s\n' "exit status" "$ours_rc" "$ref_rc"
printf '%-14s  %-44s  %s\n' "boot seconds" "$(boot_time "$ours_dir")" "$(boot_time "$ref_dir")"
echo

if [ $ours = no ]; then
    echo "run-qemu-ccid: reference only (libccid status $ref_rc)"
    exit 0
fi
if [ "$ours_rc" = 0 ]; then
    echo "run-qemu-ccid: our driver PASSED"
    exit 0
fi
echo "run-qemu-ccid: our driver FAILED (status $ours_rc); logs in $ours_dir/"
exit 1
