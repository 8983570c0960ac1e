#!/bin/sh
# Write the udev rule to stdout from the readers list.
# usage: gen-udev-rules.sh readers.txt
# pcsc-lite 2.4 and later run pcscd as the pcscd user, which must be able to
# open the reader's /dev/bus/usb node: give that group access to every device
# with a CCID interface (class 0x0B) and to the listed readers, which may be
# vendor-class devices that carry a CCID descriptor.
set -eu
list=$1
cat <<'HEAD'
# smartcrd: let pcscd (group pcscd) open USB smart card readers.
ACTION!="add|change", GOTO="smartcrd_end"
SUBSYSTEM!="usb", GOTO="smartcrd_end"
ENV{DEVTYPE}!="usb_device", GOTO="smartcrd_end"

ENV{ID_USB_INTERFACES}=="*:0b????:*", GROUP="pcscd", MODE="0660", GOTO="smartcrd_end"
HEAD
grep -v '^[[:space:]]*#' "$list" | grep -v '^[[:space:]]*$' | while read -r vid pid name; do
	v=$(printf '%04x' "$vid")
	p=$(printf '%04x' "$pid")
	printf '# %s\nATTR{idVendor}=="%s", ATTR{idProduct}=="%s", GROUP="pcscd", MODE="0660", GOTO="smartcrd_end"\n' "$name" "$v" "$p"
done
printf '\nLABEL="smartcrd_end"\n'
