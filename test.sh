#!/usr/bin/env bash
# Run every test of smartcrd on a Debian 12 machine (as root, or with sudo):
#   1. installs what is missing (build tools, the QEMU test bed and its kernel),
#   2. builds with -Werror and runs the cmocka unit tests under ASan+UBSan,
#   3. builds the bundle and checks that `make distcheck` passes,
#   4. boots the QEMU test guest and runs the scenarios through pcscd,
#      with QEMU's reader and with our virtual reader at each exchange level,
#      libccid run beside ours as a reference; reader life (several slots,
#      several readers, hot unplug, replug cycles); then QEMU's reader again
#      with our driver built with ASan + UBSan.
# Ends with one line "summary: N passed, M failed"; exits non-zero on a failure.
set -uo pipefail
# apt-get, the guest's initramfs (mknod) and the test bed need root.
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=SMARTCRD_LOG_LEVEL "$0" "$@"
top=$(cd "$(dirname "$0")" && pwd)
cd "$top"
passed=0
failed=0
failures=()

step() { printf '\n=== %s\n' "$*"; }
count() { # count NAME STATUS
	if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

step "dependencies"
scripts/deps.sh || { echo "cannot install build dependencies"; exit 1; }
tests/vm/setup.sh || { echo "cannot set up the test bed"; exit 1; }

step "unit tests (cmocka, ASan + UBSan)"
scripts/build.sh check
unit_rc=$?
# Count the cmocka tests one by one from the test logs.
for log in _build/check/tests/unit/test_*.log; do
	[ -f "$log" ] || continue
	name=$(basename "$log" .log)
	n_ok=$(grep -c '^\[       OK \]' "$log")
	# a test that started and did not end OK failed (or crashed the program)
	n_bad=$(( $(grep -c '^\[ RUN      \]' "$log") - n_ok ))
	passed=$((passed + n_ok))
	failed=$((failed + n_bad))
	printf '%-24s %3d passed, %d failed\n' "$name" "$n_ok" "$n_bad"
	[ "$n_bad" -eq 0 ] || failures+=("$name")
done
if [ $unit_rc -ne 0 ]; then
	cat _build/check/test-suite.log 2>/dev/null | tail -60
	count "make check" 1
fi

step "bundle and make distcheck"
bundle=$(scripts/build.sh bundle)
count "bundle build" $?
(cd _build/bundle && make -s distcheck >distcheck.log 2>&1)
rc=$?
[ $rc -eq 0 ] || tail -40 _build/bundle/distcheck.log
count "make distcheck" $rc

# guest_run NAME RESULTS_DIR COMMAND...: a test guest run; each check of our
# driver is a PASS or FAIL line in RESULTS_DIR/result.
guest_run() {
	local name=$1 dir=$2 rc n_ok n_bad
	shift 2
	"$@"
	rc=$?
	n_ok=$(grep -c '^PASS' "$dir/result" 2>/dev/null)
	n_bad=$(grep -c '^FAIL' "$dir/result" 2>/dev/null)
	passed=$((passed + ${n_ok:-0}))
	failed=$((failed + ${n_bad:-0}))
	[ "${n_bad:-0}" -eq 0 ] || failures+=("$name: $(grep '^FAIL' "$dir/result" | cut -d: -f1 | tr '\n' ' ')")
	# A run that failed without a failed check (no guest, no result) still fails.
	[ $rc -eq 0 ] || [ "${n_bad:-0}" -gt 0 ] || count "$name" 1
}
results=$top/tests/vm/results

# count_totals NAME OUTPUT: the lines "run-NAME totals WHO: P passed, F failed,
# X expected failures" of a side-by-side runner. Ours counts; libccid's
# failures count too, since libccid vouches for the virtual reader.
count_totals() {
	local name=$1 out=$2 who p f x
	while read -r _ _ who p _ f _ x _; do
		passed=$((passed + p))
		failed=$((failed + f))
		[ "$f" -eq 0 ] || failures+=("$name (${who%:})")
		[ "$x" -eq 0 ] || echo "(${who%:}: $x checks expected to fail, listed above)"
	done < <(grep "^run-$name totals " "$out")
	grep -q "^run-$name totals ours" "$out" || count "$name scenarios" 1
}

step "test guest: QEMU's usb-ccid reader with its CAC card (libccid beside us as a reference)"
guest_run qemu-ccid "$results/qemu-ccid-ours" tests/vm/run-qemu-ccid.sh "$bundle"

step "test guest: our virtual reader (smartcrd-vreader on dummy_hcd) at each exchange level, libccid beside us"
vreader=$top/_build/stage/usr/bin/smartcrd-vreader
tests/vm/run-vreader.sh "$bundle" "$vreader" | tee _build/vreader.txt
rc=${PIPESTATUS[0]}
count_totals vreader _build/vreader.txt

step "test guest: reader life: 2 slots and 4 clients, 4 readers, unplug during an APDU, 100 replugs (libccid beside us)"
tests/vm/run-life.sh "$bundle" "$vreader" | tee _build/life.txt
count_totals life _build/life.txt

step "test guest: the same with our driver built with ASan + UBSan"
bundle_san=$(scripts/build.sh bundle-san)
count "sanitizer bundle build" $?
guest_run qemu-ccid-sanitizers "$results/qemu-ccid-sanitizers" \
	tests/vm/run-qemu-ccid.sh --no-reference -o "$results/qemu-ccid-sanitizers" "$bundle_san"

echo
[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
