#!/usr/bin/env bash
# Builds the libftdi1 contender of the timing tier, libftdi_loop.c, as one
# static binary for the initramfs (which has no C library of its own).
#
# Usage: build.sh <cargo target dir of the static guest build> <output binary>
#
# Linked statically from:
# * Debian's libftdi1.a (package libftdi1-dev, installed here when missing);
# * the libusb that the libusb1-sys crate vendors and builds for the guest
#   program (libusb-vendored.a, found in the given target dir). Debian's own
#   libusb-1.0.a cannot be used: it is built with udev support and Debian
#   ships no static libudev. The vendored one is built without udev
#   (LIBUDEV_NO_PKG_CONFIG=1), the same libusb ftdi-rt itself runs on, so the
#   two userspace contenders also share their libusb.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 <cargo target dir> <output binary>" >&2; exit 2; }
TARGET_DIR=$1
OUT=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

libftdi_a() { gcc -print-file-name=libftdi1.a; }
if [ ! -f "$(libftdi_a)" ] || [ ! -f /usr/include/libftdi1/ftdi.h ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends libftdi1-dev; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends libftdi1-dev
    fi
fi
LIBFTDI=$(libftdi_a)
[ -f "$LIBFTDI" ] || { echo "build.sh: libftdi1.a not found after installing libftdi1-dev" >&2; exit 1; }

# The newest vendored libusb in the target dir (one per libusb1-sys build hash).
LIBUSB=$(find "$TARGET_DIR" -name libusb-vendored.a -printf '%T@ %p\n' 2>/dev/null |
    sort -rn | head -n1 | cut -d' ' -f2-)
if [ -z "$LIBUSB" ]; then
    echo "build.sh: no libusb-vendored.a under $TARGET_DIR: build the static guest program first" \
        "(its libusb1-sys dependency builds it)" >&2
    exit 1
fi
LIBUSB_INCLUDE=$(dirname "$LIBUSB")/include
[ -f "$LIBUSB_INCLUDE/libusb.h" ] || { echo "build.sh: no libusb.h beside $LIBUSB" >&2; exit 1; }

mkdir -p "$(dirname "$OUT")"
gcc -std=c11 -O2 -Wall -Wextra -Werror -static \
    -I"$LIBUSB_INCLUDE" -I/usr/include/libftdi1 \
    -o "$OUT" "$HERE/libftdi_loop.c" "$LIBFTDI" "$LIBUSB" -lpthread
strip "$OUT"
echo "build.sh: $OUT ($(stat -c %s "$OUT") bytes; $(basename "$LIBFTDI") + $LIBUSB)"
