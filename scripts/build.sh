#!/usr/bin/env bash
# Build smartcrd out of tree.
#   scripts/build.sh bundle   -> _build/bundle, staged install in _build/stage
#   scripts/build.sh bundle-san -> the same with ASan+UBSan, in _build/stage-san
#                               (pcscd then needs the ASan runtime preloaded)
#   scripts/build.sh check    -> _build/check with ASan+UBSan, runs `make check`
# Both use -Werror. Prints the staged bundle's path for "bundle".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:?usage: build.sh bundle|bundle-san|check}
jobs=$(nproc)

cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] ||
	autoreconf -fi >/dev/null

# stage_bundle DIR STAGE [CONFIGURE_OPTIONS...]: build in DIR, install into STAGE
stage_bundle() {
	local dir=$1 stage=$2
	shift 2
	mkdir -p "$dir" && cd "$dir"
	[ -f Makefile ] || "$top/configure" -q --enable-werror --prefix=/usr \
		--enable-usbdropdir=/usr/lib/pcsc/drivers --with-udev-rules-dir=/usr/lib/udev/rules.d "$@"
	make -s -j"$jobs" >/dev/null
	rm -rf "$stage"
	# libtool reminds of `libtool --finish` for any staged install: not an error.
	make -s install DESTDIR="$stage" 2>&1 >/dev/null | { grep -v "libtool --finish" >&2 || true; }
	[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
	echo "$stage/usr/lib/pcsc/drivers/ifd-smartcrd.bundle"
}

case $kind in
bundle)
	stage_bundle "$top/_build/bundle" "$top/_build/stage"
	;;
bundle-san)
	stage_bundle "$top/_build/bundle-san" "$top/_build/stage-san" --enable-sanitizers
	;;
check)
	mkdir -p _build/check && cd _build/check
	[ -f Makefile ] || "$top/configure" -q --enable-werror --enable-sanitizers
	make -s -j"$jobs" check
	;;
*)
	echo "usage: build.sh bundle|bundle-san|check" >&2
	exit 2
	;;
esac
