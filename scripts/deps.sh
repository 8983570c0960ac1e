#!/usr/bin/env bash
# Install the Debian packages needed to build smartcrd and run its unit tests,
# if any is missing. The QEMU test bed installs its own (tests/vm/setup.sh).
set -euo pipefail

packages=(build-essential autoconf automake libtool pkg-config
	libpcsclite-dev libusb-1.0-0-dev libcmocka-dev)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
