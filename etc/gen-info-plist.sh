#!/bin/sh
# Write the bundle's Info.plist to stdout from the readers list.
# usage: gen-info-plist.sh readers.txt VERSION
# pcscd reads ifdVendorID/ifdProductID/ifdFriendlyName (three parallel arrays)
# to pick a driver for a device; CFBundleName CCIDCLASSDRIVER also makes pcscd
# offer us any interface of class 0x0B that no bundle lists. The driver itself
# reads ifdLogLevel, ifdDriverOptions and smartcrdEscapeReaders at load time
# (src/config.c).
set -eu
list=$1
version=$2

readers() {
	# "0xVVVV 0xPPPP name..." lines, comments and blank lines dropped
	grep -v '^[[:space:]]*#' "$list" | grep -v '^[[:space:]]*$'
}
xml_escape() {
	sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
}
array() {
	# $1: which column (1 VID, 2 PID, 3 the name)
	readers | while read -r vid pid name; do
		case $1 in
		1) value=$vid ;;
		2) value=$pid ;;
		3) value=$(printf '%s' "$name" | xml_escape) ;;
		esac
		printf '\t\t<string>%s</string>\n' "$value"
	done
}

cat <<HEAD
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple Computer//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleDevelopmentRegion</key>
	<string>English</string>
	<key>CFBundleExecutable</key>
	<string>libsmartcrd.so</string>
	<key>CFBundleIdentifier</key>
	<string>org.smartcrd.driver</string>
	<key>CFBundleInfoDictionaryVersion</key>
	<string>6.0</string>
	<key>CFBundleName</key>
	<string>CCIDCLASSDRIVER</string>
	<key>CFBundlePackageType</key>
	<string>BNDL</string>
	<key>CFBundleShortVersionString</key>
	<string>$version</string>
	<key>CFBundleSignature</key>
	<string>????</string>
	<key>CFBundleVersion</key>
	<string>$version</string>
	<key>ifdCapabilities</key>
	<string>0x00000000</string>
	<key>ifdProtocolSupport</key>
	<string>0x00000001</string>
	<key>ifdVersionNumber</key>
	<string>0x00000001</string>
	<!-- Log level: the sum of 1 critical, 2 info, 4 communication (hex
	     dumps of every exchange), 8 periodic (presence polling). The
	     SMARTCRD_LOG_LEVEL environment variable of pcscd overrides it. -->
	<key>ifdLogLevel</key>
	<string>0x0003</string>
	<!-- Driver options, the sum of:
	     0x01  applications may send vendor commands (PC_to_RDR_Escape) to
	           the reader through SCardControl: FEATURE_CCID_ESC_COMMAND and
	           IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE, SCARD_CTL_CODE(1). They
	           reach the reader's firmware, so they are refused unless set
	           (libccid's DRIVER_OPTION_CCID_EXCHANGE_AUTHORIZED, same bit). -->
	<key>ifdDriverOptions</key>
	<string>0x0000</string>
	<!-- Readers that take vendor commands (PC_to_RDR_Escape) from
	     applications even when bit 0x01 above is not set: a list
	     separated by spaces or commas of VVVV:PPPP (vendor and product
	     id, four hexadecimal digits each) or VVVV:PPPP:SERIAL (only the
	     reader with that USB serial number, matched exactly; printable
	     ASCII without spaces, commas, & < >). At most 32 entries;
	     malformed ones are skipped and logged. Example:
	     <string>08e6:3437 076b:3021:1234567</string> -->
	<key>smartcrdEscapeReaders</key>
	<string></string>
	<key>ifdManufacturerString</key>
	<string>smartcrd</string>
	<key>ifdProductString</key>
	<string>smartcrd CCID driver</string>
HEAD
printf '\t<key>ifdVendorID</key>\n\t<array>\n'; array 1; printf '\t</array>\n'
printf '\t<key>ifdProductID</key>\n\t<array>\n'; array 2; printf '\t</array>\n'
printf '\t<key>ifdFriendlyName</key>\n\t<array>\n'; array 3; printf '\t</array>\n'
printf '</dict>\n</plist>\n'
