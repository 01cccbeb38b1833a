#!/usr/bin/env bash
# Virtual hardware-in-the-loop rig: boots a Debian kernel under QEMU (TCG) with
# QEMU's emulated FT232BM (`-device usb-serial`) and runs the static guest test
# program `hil-guest` inside it; the host runner `vhil` plays the device's far
# end (the "firmware") and judges the results. See hil-tests/README.md.
#
# Usage: bash hil-tests/vhil/run.sh [--prepare-only] [-- <extra vhil args>]
#   --prepare-only   install, fetch, build and pack, but do not boot
#   VHIL_GUEST_ARGS  arguments for hil-guest (default: all cases)
#   VHIL_TIMEOUT     host watchdog in seconds (default 300)
#   VHIL_BZIMAGE=1   boot the compressed vmlinuz instead of the extracted vmlinux
set -euo pipefail

T0=$(date +%s.%N)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK="$HERE/work"
PREPARE_ONLY=0
RUNNER_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --prepare-only) PREPARE_ONLY=1 ;;
        --) shift; RUNNER_ARGS+=("$@"); break ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$WORK"

# The modules the guest needs, in load order (the .deb ships no modules.dep;
# the order comes from each .ko's `depends=` field). init.sh uses the same list.
MODULES=(usb-common usbcore xhci-hcd xhci-pci usbserial ftdi_sio)

STEP_PREFIX=vhil-step
# shellcheck source=hil-tests/vhil/common.sh
. "$HERE/common.sh"

# ---------------------------------------------------------------- 1. install
step_begin install
install_rig_packages
step_end

# ------------------------------------------------------ 2. kernel + modules
step_begin kernel
fetch_kernel linux-image-amd64 "$WORK/kernel" "${MODULES[@]}"
echo "kernel: $KPKG ($(basename "$KERNEL"))"
step_end

# ---------------------------------------------------------------- 3. build
step_begin build
cd "$ROOT"
# No libudev anywhere (libusb1-sys would otherwise link libudev.so when
# libudev-dev is installed, and the guest has no udev): set for both builds so
# they agree with each other and with the project's CI.
export LIBUDEV_NO_PKG_CONFIG=1
build_static_guest hil-guest
GUEST_BIN="$(guest_target_dir)/$GUEST_TARGET/release/hil-guest"
cargo build --release -p ftdi-rt-hil --bin vhil
RUNNER_BIN="$(target_dir)/release/vhil"
step_end

# ------------------------------------------------------------ 4. initramfs
step_begin initramfs
RD="$WORK/initramfs"
new_initramfs "$RD"
install -m 0755 "$HERE/init.sh" "$RD/init"
cp "$KDIR"/modules/*.ko "$RD/lib/modules/"
add_binary "$RD" "$GUEST_BIN"
pack_initramfs "$RD" "$WORK/initramfs.cpio.gz"
step_end

printf 'vhil-step: %-10s %6s s\n' prepared "$(since "$T0")"
[ "$PREPARE_ONLY" = 1 ] && exit 0

# ------------------------------------------------------------------ 5. run
# exec: the runner's exit code is the script's, and no shell lingers.
exec "$RUNNER_BIN" \
    --kernel "$KERNEL" \
    --initrd "$WORK/initramfs.cpio.gz" \
    --work "$WORK" \
    --out "$WORK/out" \
    --timeout "${VHIL_TIMEOUT:-300}" \
    --guest-args "${VHIL_GUEST_ARGS:-}" \
    --t0 "$T0" \
    "${RUNNER_ARGS[@]}"
