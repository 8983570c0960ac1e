#!/bin/bash
# PID 1 of the test guest, after the initramfs switched into the host's root
# (read-only 9p + tmpfs overlay). Prepares the guest, runs the scenario named in
# /vm-results/.vm-args with a time limit, writes its exit status to
# /vm-results/status and powers off. Runs INSIDE the guest only.
set -uo pipefail   # no -e: whatever happens, a status must be written

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export VM_RESULTS=/vm-results
export HOME=/root
cd /

finish() {
    echo "$1" >"$VM_RESULTS/status"
    sync
    echo "guest-init: scenario status $1, powering off"
    poweroff -f
    sleep 5   # poweroff -f does not return; this only keeps PID 1 alive meanwhile
}

# shellcheck disable=SC1091
. "$VM_RESULTS/.vm-env" || finish 1

# pcscd keeps its socket and pid file in /run; the host's /run must not leak in.
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/pcscd /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# devtmpfs has no /dev/fd: bash's process substitution <(...) needs it.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
hostname smartcrd-vm
# Readers configured for the host (vsmartcard's vpcd, libccid's serial twin)
# would show up next to the one under test.
rm -f /etc/reader.conf.d/*

mapfile -t argv <"$VM_RESULTS/.vm-args" || finish 1
scenario=${argv[0]:-}
[ -f "$scenario" ] || { echo "guest-init: no scenario '$scenario'"; finish 1; }

echo "guest-init: running $scenario ${argv[*]:1} (limit ${VM_GUEST_TIMEOUT}s)"
# The scenario's output goes to the console (the host's console.log) and to
# scenario.log in the results folder.
timeout --kill-after=5 "$VM_GUEST_TIMEOUT" /bin/bash "$scenario" "${argv[@]:1}" 2>&1 \
    | tee "$VM_RESULTS/scenario.log"
rc=${PIPESTATUS[0]}
[ "$rc" = 124 ] && echo "guest-init: scenario timed out after ${VM_GUEST_TIMEOUT}s"
finish "$rc"
