#!/usr/bin/env bash
# Build smartcrd out of tree.
#   scripts/build.sh bundle   -> _build/bundle, staged install in _build/stage
#   scripts/build.sh check    -> _build/check with ASan+UBSan, runs `make check`
# Both use -Werror. Prints the staged bundle's path for "bundle".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:?usage: build.sh bundle|check}
jobs=$(nproc)

cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] ||
	autoreconf -fi >/dev/null

case $kind in
bundle)
	mkdir -p _build/bundle && cd _build/bundle
	[ -f Makefile ] || "$top/configure" -q --enable-werror --prefix=/usr \
		--enable-usbdropdir=/usr/lib/pcsc/drivers --with-udev-rules-dir=/usr/lib/udev/rules.d
	make -s -j"$jobs" >/dev/null
	rm -rf "$top/_build/stage"
	make -s install DESTDIR="$top/_build/stage" >/dev/null
	echo "$top/_build/stage/usr/lib/pcsc/drivers/ifd-smartcrd.bundle"
	;;
check)
	mkdir -p _build/check && cd _build/check
	[ -f Makefile ] || "$top/configure" -q --enable-werror --enable-sanitizers
	make -s -j"$jobs" check
	;;
*)
	echo "usage: build.sh bundle|check" >&2
	exit 2
	;;
esac
