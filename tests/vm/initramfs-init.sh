#!/bin/sh
# /init of the test bed's initramfs (busybox sh). setup.sh copies it in.
# Loads the virtio/9p/overlay modules, mounts the host root (9p, read-only)
# under a tmpfs overlay so the guest can write anywhere (thrown away at
# power-off), mounts the results folder, and switch_roots into guest-init.sh,
# whose host path is named on the kernel command line (smartcrd.init=PATH).
# On any failure it powers off at once: the host then finds no status file.

/bin/busybox --install -s /bin
export PATH=/bin

mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys

fail() {
    echo "initramfs: FAILED: $*"
    sync
    poweroff -f
}

# Read the command line before /proc moves into the new root.
guest_init=
# shellcheck disable=SC2013  # the command line is one line of words
for word in $(cat /proc/cmdline); do
    case $word in
        smartcrd.init=*) guest_init=${word#smartcrd.init=} ;;
    esac
done
[ -n "$guest_init" ] || fail "no smartcrd.init= on the kernel command line"

while read -r m; do
    insmod "/modules/$m" || fail "insmod $m"
done </modules/order

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /ro \
    || fail "mount of the host root (9p)"
mount -t tmpfs -o size=512m,mode=755 tmpfs /rw || fail "tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot \
    || fail "overlay"
mkdir -p /newroot/vm-results
# No cache on the results share: what the guest writes must reach the host now.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /newroot/vm-results \
    || fail "mount of the results folder (9p)"

[ -f "/newroot$guest_init" ] || fail "$guest_init not found in the shared root"

mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev

exec switch_root /newroot /bin/bash "$guest_init"
