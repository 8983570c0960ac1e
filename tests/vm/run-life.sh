#!/bin/bash
# Reader life through pcscd (scenarios/life.sh): a 2-slot reader worked by 4
# clients, 4 readers side by side, an unplug in the middle of an APDU, and
# unplug/replug cycles with pcscd's file descriptors and threads counted; with
# our driver, then libccid as the reference (one guest boot each). Prints both
# outcomes side by side.
#
# Usage: run-life.sh [--no-reference] [-o RESULTS_DIR] [--cycles N] [--seconds S]
#                    BUNDLE_DIR VREADER
#   BUNDLE_DIR  our staged bundle, <DESTDIR>/usr/lib/pcsc/drivers/ifd-smartcrd.bundle
#   VREADER     the smartcrd-vreader binary
#   --cycles N  unplug/replug cycles (default 100); --seconds S: the 2-slot
#               clients' time (default 60)
#   --reference-cycles N, --reference-seconds S  the same for libccid (default
#               20 and 20: the reference shows the behaviour, our driver the
#               endurance, and the test command's time stays reasonable)
# Exit status: non-zero when a check failed that is not listed as expected to
# fail below, for either driver. Results: RESULTS_DIR/life-{ours,libccid}/.
# Last lines: "run-life totals WHO: P passed, F failed, X expected failures".
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

usage() { sed -n '8,16p' "$0" >&2; exit 2; }

# Checks expected to fail, per driver, with the reason.
declare -A XFAIL_OURS=(
)
declare -A XFAIL_LIBCCID=(
)

results=$VM_DIR/results
reference=yes
cycles=100
seconds=60
ref_cycles=20
ref_seconds=20
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --no-reference) reference=no; shift ;;
        -o) results=$2; shift 2 ;;
        --cycles) cycles=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --reference-cycles) ref_cycles=$2; shift 2 ;;
        --reference-seconds) ref_seconds=$2; shift 2 ;;
        -h|--help|-*) usage ;;
        *) args+=("$1"); shift ;;
    esac
done
[ ${#args[@]} = 2 ] || usage
bundle=$(readlink -f "${args[0]}")
vreader=$(readlink -f "${args[1]}")
[ -d "$bundle" ] || vm_die "no bundle directory ${args[0]}"
[ -x "$vreader" ] || vm_die "no smartcrd-vreader at ${args[1]}"

timeout 1800 "$HERE/setup.sh"

# boot_timeout SECONDS CYCLES: the boot, the slots' clients, about 3 s per
# replug cycle under TCG, and room.
boot_timeout() { echo $((300 + $1 + 6 * $2)); }
ours_dir=$results/life-ours
ref_dir=$results/life-libccid
rm -rf "$ours_dir" "$ref_dir"
ours_rc=0
vm_boot "$ours_dir" "$(boot_timeout "$seconds" "$cycles")" "$VM_DIR/scenarios/life.sh" --bin "$vreader" \
    --cycles "$cycles" --seconds "$seconds" ours "$bundle" || ours_rc=$?
ref_rc=skipped
if [ $reference = yes ]; then
    ref_rc=0
    vm_boot "$ref_dir" "$(boot_timeout "$ref_seconds" "$ref_cycles")" \
        "$VM_DIR/scenarios/life.sh" --bin "$vreader" --cycles "$ref_cycles" \
        --seconds "$ref_seconds" libccid || ref_rc=$?
fi

# --- side by side -------------------------------------------------------------------
# verdict FILE CHECK -> "PASS detail", "FAIL why" or "-"
verdict() {
    local line
    line=$(grep -m1 -E "^(PASS|FAIL) $2(:|$)" "$1" 2>/dev/null) || { echo "-"; return; }
    echo "${line%% *} ${line#* "$2"}" | sed 's/ : / /'
}
checks=$(for f in "$ours_dir/result" "$ref_dir/result"; do if [ -f "$f" ]; then cat "$f"; fi; done \
    | sed -E 's/^(PASS|FAIL) ([^:]+).*/\2/' | awk '!seen[$0]++')
echo
for c in $checks; do
    echo "$c"
    echo "    ours:    $(verdict "$ours_dir/result" "$c")"
    [ $reference = yes ] && echo "    libccid: $(verdict "$ref_dir/result" "$c")"
done
echo
echo "exit status: ours $ours_rc, libccid $ref_rc"
for c in "${!XFAIL_OURS[@]}"; do echo "expected to fail (ours): $c: ${XFAIL_OURS[$c]}"; done
for c in "${!XFAIL_LIBCCID[@]}"; do echo "expected to fail (libccid): $c: ${XFAIL_LIBCCID[$c]}"; done

# totals WHO FILE XFAIL-ARRAY-NAME RC: one line for test.sh to count; sets n.
totals() {
    local f=$2 rc=$4 check passes x=0
    local -n xf=$3
    n=0
    passes=$(grep -c '^PASS' "$f" 2>/dev/null || true)
    while read -r check; do
        [ -n "${xf[$check]:-}" ] && x=$((x + 1)) || n=$((n + 1))
    done < <(grep '^FAIL' "$f" 2>/dev/null | sed -E 's/^FAIL ([^:]+).*/\1/')
    # a guest that died or timed out without a failed check still failed
    [ "$rc" = 0 ] || [ "$n" -gt 0 ] || [ "$x" -gt 0 ] || n=1
    echo "run-life totals $1: ${passes:-0} passed, $n failed, $x expected failures"
}
bad=0
totals ours "$ours_dir/result" XFAIL_OURS "$ours_rc"
[ "$n" = 0 ] || { echo "run-life: our driver: $n unexpected failures; logs in $ours_dir/"; bad=1; }
if [ $reference = yes ]; then
    totals libccid "$ref_dir/result" XFAIL_LIBCCID "$ref_rc"
    [ "$n" = 0 ] || { echo "run-life: libccid: $n unexpected failures; logs in $ref_dir/"; bad=1; }
fi
[ $bad = 0 ] && echo "run-life: PASSED (expected failures aside)"
exit $bad
