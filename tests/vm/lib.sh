# shellcheck shell=bash
# Common settings and the boot function of the virtual test bed.
# Sourced by setup.sh, boot.sh and the run-*.sh scripts (never executed).
#
# Why a guest at all: the host kernel has no USB. A QEMU guest (TCG; KVM hangs
# on these machines) boots Debian's own kernel with the host's root filesystem
# shared read-only over 9p plus a tmpfs overlay, so pcscd, libusb, the driver and
# the test programs run there exactly as on a workstation. See
# /work/shared/docs/vm-testbed.md for the verified recipe.

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The cache may live elsewhere (e.g. on a CI runner); the guest sees it at the
# same absolute path because the whole host root is shared.
VM_CACHE=${SMARTCRD_VM_CACHE:-$VM_DIR/cache}
VM_KERNEL_DIR=$VM_CACHE/kernel          # dpkg -x of the linux-image package
VM_INITRAMFS=$VM_CACHE/initramfs.cpio.gz
VM_NSSDB=$VM_CACHE/nssdb                # certificates of the emulated CAC card
VM_BUILD=$VM_CACHE/build                # host-built test programs (apdu_loop)
VM_UDEV_DIR=$VM_CACHE/udev              # dpkg -x of the udev package (udevd for the guest)
VM_CERT_NICKS=(smartcrd-cert1 smartcrd-cert2 smartcrd-cert3)

vm_log() { printf '[vm %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
vm_die() { vm_log "ERROR: $*"; exit 1; }

# The kernel version of the unpacked image (the single folder under lib/modules).
vm_kernel_version() {
    local d
    for d in "$VM_KERNEL_DIR"/lib/modules/*/; do
        [ -d "$d" ] || continue
        basename "$d"
        return 0
    done
    return 1
}

# QEMU options that plug QEMU's USB CCID reader with the emulated CAC card
# (libcacard, certificates from our NSS database) into an xHCI controller.
vm_qemu_ccid_devices() {
    printf '%s\n' \
        -device qemu-xhci,id=xhci \
        -device usb-ccid,id=ccid,bus=xhci.0 \
        -device "ccid-card-emulated,backend=certificates,db=sql:$VM_NSSDB,cert1=${VM_CERT_NICKS[0]},cert2=${VM_CERT_NICKS[1]},cert3=${VM_CERT_NICKS[2]}"
}

# vm_boot RESULTS_DIR TIMEOUT_S SCENARIO [SCENARIO_ARGS...] [-- QEMU_OPTIONS...]
#
# Boots the guest, which runs SCENARIO (a host path, visible in the guest through
# the shared root) with its arguments, under guest-init.sh. RESULTS_DIR is shared
# read-write and appears as $VM_RESULTS (/vm-results) in the guest. The console
# goes to RESULTS_DIR/console.log. Returns the scenario's exit status as written
# to RESULTS_DIR/status by the guest; no status file (guest crashed, hung, or
# QEMU refused to start) is a failure (status 1).
# Environment passed into the guest: SMARTCRD_LOG_LEVEL, VM_GUEST_TIMEOUT.
vm_boot() {
    local results=$1 timeout_s=$2 scenario=$3
    shift 3
    local -a sargs=() qargs=()
    while [ $# -gt 0 ]; do
        if [ "$1" = "--" ]; then shift; qargs=("$@"); break; fi
        sargs+=("$1"); shift
    done

    local kver
    kver=$(vm_kernel_version) || vm_die "no kernel in $VM_KERNEL_DIR: run tests/vm/setup.sh"
    [ -f "$VM_INITRAMFS" ] || vm_die "no initramfs: run tests/vm/setup.sh"
    [ -f "$scenario" ] || vm_die "no scenario $scenario"
    scenario=$(readlink -f "$scenario")

    mkdir -p "$results"
    results=$(readlink -f "$results")
    # Stale results must never pass for new ones.
    rm -f "$results/status" "$results/console.log" "$results/.vm-args" "$results/.vm-env"

    # Arguments travel in a file, one per line: the kernel command line is short
    # and has no quoting.
    printf '%s\n' "$scenario" "${sargs[@]}" >"$results/.vm-args"
    # Guest environment; the guest sources this file (values quoted with %q).
    # The guest gets a little less time than QEMU so it can still write a
    # status and power off cleanly when its scenario hangs.
    {
        printf 'export VM_KERNEL_DIR=%q\n' "$VM_KERNEL_DIR"
        printf 'export VM_CACHE=%q\n' "$VM_CACHE"
        printf 'export VM_BUILD=%q\n' "$VM_BUILD"
        printf 'export VM_UDEV_DIR=%q\n' "$VM_UDEV_DIR"
        printf 'export VM_DIR=%q\n' "$VM_DIR"
        printf 'export VM_GUEST_TIMEOUT=%q\n' "${VM_GUEST_TIMEOUT:-$((timeout_s - 15))}"
        if [ -n "${SMARTCRD_LOG_LEVEL:-}" ]; then
            printf 'export SMARTCRD_LOG_LEVEL=%q\n' "$SMARTCRD_LOG_LEVEL"
        fi
    } >"$results/.vm-env"

    local -a qemu=(
        qemu-system-x86_64
        -accel tcg                 # KVM hangs on these machines
        -m "${VM_MEMORY_MB:-1024}"
        -smp 1
        -nodefaults -no-user-config
        -display none -serial stdio -monitor none
        -no-reboot                 # a guest panic (panic=-1) ends QEMU
        -kernel "$VM_KERNEL_DIR/boot/vmlinuz-$kver"
        -initrd "$VM_INITRAMFS"
        -append "console=ttyS0 panic=-1 loglevel=4 smartcrd.init=$VM_DIR/guest-init.sh"
        # The host root, read-only; the guest puts a tmpfs overlay on it.
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
        # The results folder, read-write.
        -virtfs "local,path=$results,mount_tag=results,security_model=none,multidevs=remap"
        "${qargs[@]}"
    )

    vm_log "boot: $(basename "$scenario") ${sargs[*]} (timeout ${timeout_s}s, log $results/console.log)"
    local t0=$SECONDS qrc=0
    timeout --kill-after=10 "$timeout_s" "${qemu[@]}" </dev/null >"$results/console.log" 2>&1 || qrc=$?
    local took=$((SECONDS - t0))
    echo "$took" >"$results/boot-seconds"
    if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
        vm_log "boot: QEMU timed out after ${timeout_s}s"
    elif [ "$qrc" != 0 ]; then
        vm_log "boot: QEMU exited with $qrc (see $results/console.log)"
    fi

    local status
    if [ -f "$results/status" ] && status=$(tr -dc '0-9' <"$results/status") && [ -n "$status" ]; then
        vm_log "boot: done in ${took}s, scenario status $status"
        return "$status"
    fi
    vm_log "boot: done in ${took}s, no status file: failure"
    tail -n 20 "$results/console.log" >&2 || true
    return 1
}
