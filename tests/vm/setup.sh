#!/bin/bash
# Prepares the virtual test bed; idempotent, safe to run before every test run.
#  1. installs the Debian packages it needs (apt-get update only when one is missing)
#  2. fetches Debian's kernel package into the cache (not installed) and runs depmod
#  3. builds the tiny busybox initramfs that mounts the host root in the guest
#  4. creates the NSS database with the three certificates of QEMU's emulated CAC card
#  5. builds the test programs that run in the guest (apdu_loop, applet_sweep, raw_host)
#  6. fetches Debian's udev package into the cache (not installed): udevd for the guest
# Must run as root on Debian 12. Everything goes to tests/vm/cache (git-ignored),
# or to $SMARTCRD_VM_CACHE when set.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || vm_die "setup.sh must run as root (apt-get, mknod)"

PACKAGES=(
    qemu-system-x86   # the guest
    busybox-static    # the initramfs' only program
    cpio gzip         # to pack the initramfs
    kmod              # depmod on the host, modprobe -d in the guest
    pcscd libccid pcsc-tools opensc python3-pyscard usbutils
    libnss3-tools     # certutil, for the emulated card's certificates
    vsmartcard-vpicc python3-pycryptodome   # vicc, a third-party card (scenarios/vicc.sh)
    gcc libc6-dev pkg-config libpcsclite-dev libusb-1.0-0-dev   # to build the test programs
    coreutils         # timeout
)

install_packages() {
    local -a missing=()
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    vm_log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -q
    timeout 1200 apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# The kernel package that linux-image-amd64 points to, e.g. linux-image-6.1.0-56-amd64.
kernel_package_name() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

fetch_kernel() {
    if vm_kernel_version >/dev/null && [ -f "$VM_KERNEL_DIR/.depmod-done" ]; then
        return 0
    fi
    local pkg
    pkg=$(kernel_package_name)
    if [ -z "$pkg" ]; then
        # A fresh machine may have no package lists yet.
        timeout 600 apt-get update -q
        pkg=$(kernel_package_name)
    fi
    [ -n "$pkg" ] || vm_die "cannot find the kernel package behind linux-image-amd64"
    vm_log "fetching $pkg"
    local debs=$VM_CACHE/debs
    rm -rf "$debs" "$VM_KERNEL_DIR"
    mkdir -p "$debs"
    # apt-get download writes into the current folder as the _apt user when it
    # can (otherwise it warns and downloads as root, which also works).
    chown _apt "$debs" 2>/dev/null || true
    (cd "$debs" && timeout 900 apt-get download -q "$pkg")
    local deb
    deb=$(ls "$debs"/"$pkg"_*.deb)
    mkdir -p "$VM_KERNEL_DIR"
    dpkg -x "$deb" "$VM_KERNEL_DIR"
    rm -rf "$debs"      # about 70 MB we no longer need
    local kver
    kver=$(vm_kernel_version) || vm_die "no lib/modules in $deb"
    [ -f "$VM_KERNEL_DIR/boot/vmlinuz-$kver" ] || vm_die "no vmlinuz in $deb"
    # modules.dep lets modprobe -d resolve dependencies, here and in the guest.
    depmod -b "$VM_KERNEL_DIR" "$kver"
    touch "$VM_KERNEL_DIR/.depmod-done"
    vm_log "kernel $kver ready in $VM_KERNEL_DIR"
}

# Modules the initramfs needs to reach the host root: virtio PCI, 9p, overlay.
# modprobe --show-depends gives them with their dependencies, in load order.
INITRAMFS_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

build_initramfs() {
    local init=$VM_DIR/initramfs-init.sh kver
    kver=$(vm_kernel_version)
    if [ -f "$VM_INITRAMFS" ] && [ "$VM_INITRAMFS" -nt "$init" ] \
        && [ "$VM_INITRAMFS" -nt "$VM_KERNEL_DIR/.depmod-done" ]; then
        return 0
    fi
    vm_log "building the initramfs"
    local stage
    stage=$(mktemp -d "$VM_CACHE/initramfs.XXXXXX")
    mkdir -p "$stage"/{bin,dev,proc,sys,modules,ro,rw,newroot}
    cp /bin/busybox "$stage/bin/busybox"
    ln -s busybox "$stage/bin/sh"
    # The kernel opens /dev/console for init before anything is mounted.
    mknod -m 600 "$stage/dev/console" c 5 1
    cp "$init" "$stage/init"
    chmod 755 "$stage/init"

    local line path name
    : >"$stage/modules/order"
    while read -r line; do
        # lines look like "insmod /path/to/x.ko" (or "builtin x")
        case $line in
            insmod\ *) path=${line#insmod }; path=${path%% *} ;;
            *) continue ;;
        esac
        name=$(basename "$path")
        grep -qx "$name" "$stage/modules/order" && continue
        cp "$path" "$stage/modules/$name"
        echo "$name" >>"$stage/modules/order"
    done < <(modprobe -d "$VM_KERNEL_DIR" -S "$kver" --show-depends -a "${INITRAMFS_MODULES[@]}")
    [ -s "$stage/modules/order" ] || vm_die "no initramfs modules found"

    (cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$VM_INITRAMFS.tmp"
    mv "$VM_INITRAMFS.tmp" "$VM_INITRAMFS"
    vm_log "initramfs modules: $(tr '\n' ' ' <"$stage/modules/order")"
    rm -rf "$stage"
}

# QEMU's ccid-card-emulated refuses to start without a valid NSS database holding
# the three certificates it is told about. Self-signed RSA-2048 certificates with
# explicit serials (-m) so that every run makes the same kind of card.
make_nssdb() {
    if [ -f "$VM_NSSDB/.done" ]; then
        return 0
    fi
    vm_log "creating the NSS database $VM_NSSDB"
    rm -rf "$VM_NSSDB"
    mkdir -p "$VM_NSSDB"
    certutil -N -d "sql:$VM_NSSDB" --empty-password
    # certutil wants random noise for key generation; give it some non-interactively.
    head -c 2048 /dev/urandom >"$VM_NSSDB/noise"
    local i nick
    for i in 0 1 2; do
        nick=${VM_CERT_NICKS[$i]}
        # (certutil chats on stderr; show it only when it fails)
        timeout 120 certutil -S -x -d "sql:$VM_NSSDB" -z "$VM_NSSDB/noise" \
            -n "$nick" -s "CN=smartcrd test card $((i + 1)),O=smartcrd" \
            -t "CT,CT,CT" -k rsa -g 2048 -v 120 -m $((1001 + i)) \
            >"$VM_NSSDB/certutil.log" 2>&1 \
            || { cat "$VM_NSSDB/certutil.log" >&2; vm_die "certutil -S $nick"; }
        # The DER form lets apdu_loop check the bytes the card returns.
        certutil -L -d "sql:$VM_NSSDB" -n "$nick" -r >"$VM_NSSDB/$nick.der"
    done
    rm -f "$VM_NSSDB/noise" "$VM_NSSDB/certutil.log"
    touch "$VM_NSSDB/.done"
}

# build_program NAME [PKG]: tests/vm/NAME.c -> $VM_BUILD/NAME, when the source
# is newer; PKG (pkg-config name) is the library it uses, libpcsclite by default.
build_program() {
    local src=$VM_DIR/$1.c out=$VM_BUILD/$1 pkg=${2:-libpcsclite}
    if [ -x "$out" ] && [ "$out" -nt "$src" ]; then
        return 0
    fi
    vm_log "building $1"
    # shellcheck disable=SC2046
    gcc -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
        -Wstrict-prototypes $(pkg-config --cflags "$pkg") \
        -o "$out.tmp" "$src" $(pkg-config --libs "$pkg")
    mv "$out.tmp" "$out"
}

build_programs() {
    mkdir -p "$VM_BUILD"
    build_program apdu_loop      # QEMU's reader + CAC card (qemu-ccid.sh)
    build_program applet_sweep   # the virtual reader's test applet (vreader.sh)
    build_program raw_host libusb-1.0   # a misbehaving host for the virtual reader
}

# pcscd and libusb hear of plugged and unplugged devices from udevd, not from
# the kernel; a host without udev (a container) has no udevd to lend the
# guest. udevadm (which is also systemd-udevd) needs no library of its own
# version, so the udev package of the installed libudev is preferred, and any
# other does.
fetch_udev() {
    [ -x "$VM_UDEV_DIR/bin/udevadm" ] && return 0
    local debs=$VM_CACHE/udev-debs ver deb
    ver=$(dpkg-query -W -f='${Version}' libudev1 2>/dev/null || true)
    rm -rf "$debs" "$VM_UDEV_DIR"
    mkdir -p "$debs"
    chown _apt "$debs" 2>/dev/null || true
    vm_log "fetching udev${ver:+ $ver}"
    if ! (cd "$debs" && timeout 300 apt-get download -q "udev${ver:+=$ver}") \
        && ! (cd "$debs" && timeout 300 apt-get download -q udev); then
        timeout 600 apt-get update -q
        (cd "$debs" && timeout 300 apt-get download -q udev) || vm_die "cannot fetch udev"
    fi
    deb=$(ls "$debs"/udev_*.deb)
    mkdir -p "$VM_UDEV_DIR"
    dpkg -x "$deb" "$VM_UDEV_DIR"
    rm -rf "$debs"
    [ -x "$VM_UDEV_DIR/bin/udevadm" ] || vm_die "no bin/udevadm in $deb"
}

t0=$SECONDS
mkdir -p "$VM_CACHE"
install_packages
fetch_kernel
build_initramfs
make_nssdb
build_programs
fetch_udev
vm_log "setup done in $((SECONDS - t0))s (cache $VM_CACHE)"
