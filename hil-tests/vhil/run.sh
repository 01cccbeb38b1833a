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

now() { date +%s.%N; }
STEP_T=0
STEP_NAME=""
step_begin() { STEP_NAME=$1; STEP_T=$(now); echo "vhil-step: $STEP_NAME ..."; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
step_end() { printf 'vhil-step: %-10s %6s s\n' "$STEP_NAME" "$(since "$STEP_T")"; }

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
}

# ---------------------------------------------------------------- 1. install
step_begin install
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v xz >/dev/null || need+=(xz-utils)
if [ ${#need[@]} -gt 0 ]; then
    # Update the package lists only when apt does not know a package, or when
    # the install fails (stale lists pointing at files the mirror dropped).
    for p in "${need[@]}"; do
        apt-cache show "$p" >/dev/null 2>&1 || apt_update_once
    done
    if ! apt-get install -y -qq --no-install-recommends "${need[@]}"; then
        apt_update_once
        apt-get install -y -qq --no-install-recommends "${need[@]}"
    fi
fi
qemu-system-x86_64 --version | head -n1
step_end

# ------------------------------------------------------ 2. kernel + modules
step_begin kernel
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
KPKG=$(kernel_pkg || true)
if [ -z "$KPKG" ]; then
    apt_update_once
    KPKG=$(kernel_pkg)
fi
[ -n "$KPKG" ] || { echo "run.sh: cannot resolve linux-image-amd64" >&2; exit 1; }
KDIR="$WORK/kernel/$KPKG"
if [ ! -f "$KDIR/.complete" ]; then
    rm -rf "$WORK/kernel" "$WORK/deb"
    mkdir -p "$WORK/deb" "$KDIR/modules"
    # `apt-get download` writes to the cwd; a stale list can name a .deb the
    # mirror no longer has, so retry once after `apt-get update`.
    if ! (cd "$WORK/deb" && apt-get download -qq "$KPKG"); then
        apt_update_once
        KPKG=$(kernel_pkg)
        KDIR="$WORK/kernel/$KPKG"
        mkdir -p "$KDIR/modules"
        (cd "$WORK/deb" && apt-get download -qq "$KPKG")
    fi
    # Extract only vmlinuz and the six modules (the full tree is ~400 MB).
    pats=('./boot/vmlinuz-*')
    for m in "${MODULES[@]}"; do pats+=("*/$m.ko"); done
    mkdir -p "$WORK/deb/x"
    dpkg-deb --fsys-tarfile "$WORK"/deb/*.deb | tar -x -C "$WORK/deb/x" --wildcards "${pats[@]}"
    mv "$WORK"/deb/x/boot/vmlinuz-* "$KDIR/vmlinuz"
    for m in "${MODULES[@]}"; do
        f=$(find "$WORK/deb/x" -name "$m.ko" | head -n1)
        [ -n "$f" ] || { echo "run.sh: $m.ko not in $KPKG" >&2; exit 1; }
        mv "$f" "$KDIR/modules/"
    done
    rm -rf "$WORK/deb"
    # Boot speed: under TCG the bzImage's own XZ decompression takes ~8 s of
    # emulated CPU. Decompress once here instead and boot the ELF vmlinux
    # through QEMU's PVH entry (Debian kernels have CONFIG_PVH): /init then
    # starts ~3 s after QEMU does instead of ~11 s. vmlinuz stays as fallback.
    off=$(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$KDIR/vmlinuz" | head -n1 | cut -d: -f1 || true)
    # (Via a file, not a pipe: xz stops reading at the end of the stream and
    # pipefail would count tail's SIGPIPE as a failure.)
    if [ -n "$off" ] && tail -c +$((off + 1)) "$KDIR/vmlinuz" >"$KDIR/payload.xz" &&
        xz -dc --single-stream "$KDIR/payload.xz" >"$KDIR/vmlinux.tmp" 2>/dev/null &&
        [ "$(head -c 4 "$KDIR/vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
        mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
        rm -f "$KDIR/payload.xz"
    else
        rm -f "$KDIR/vmlinux.tmp" "$KDIR/payload.xz"
        echo "run.sh: could not extract vmlinux; booting the bzImage (slower)"
    fi
    touch "$KDIR/.complete"
fi
KERNEL="$KDIR/vmlinuz"
if [ -f "$KDIR/vmlinux" ] && [ "${VHIL_BZIMAGE:-0}" != 1 ]; then KERNEL="$KDIR/vmlinux"; fi
echo "kernel: $KPKG ($(basename "$KERNEL"))"
step_end

# ---------------------------------------------------------------- 3. build
step_begin build
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
# No libudev anywhere (libusb1-sys would otherwise link libudev.so when
# libudev-dev is installed, and the guest has no udev): set for both builds so
# they agree with each other and with the project's CI.
export LIBUDEV_NO_PKG_CONFIG=1
# Static guest binary: the explicit --target keeps build scripts dynamic; the
# separate target dir keeps these RUSTFLAGS from invalidating the main cache.
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release -p ftdi-rt-hil --bin hil-guest \
    --target x86_64-unknown-linux-gnu --target-dir "$TARGET_DIR/vhil"
GUEST_BIN="$TARGET_DIR/vhil/x86_64-unknown-linux-gnu/release/hil-guest"
cargo build --release -p ftdi-rt-hil --bin vhil
RUNNER_BIN="$TARGET_DIR/release/vhil"
step_end

# ------------------------------------------------------------ 4. initramfs
step_begin initramfs
RD="$WORK/initramfs"
rm -rf "$RD"
mkdir -p "$RD"/{bin,lib/modules,proc,sys,dev,tmp}
install -m 0755 "$HERE/init.sh" "$RD/init"
install -m 0755 /bin/busybox "$RD/bin/busybox"
cp "$KDIR"/modules/*.ko "$RD/lib/modules/"
# Strip only the copy: the target dir keeps debug info for backtraces.
install -m 0755 "$GUEST_BIN" "$RD/bin/hil-guest"
strip "$RD/bin/hil-guest" 2>/dev/null || true
# No host cpio on a fresh machine: busybox's writes the newc format too.
(cd "$RD" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null) |
    gzip -1 >"$WORK/initramfs.cpio.gz"
ls -l "$WORK/initramfs.cpio.gz" | awk '{ printf "initramfs: %.2f MB\n", $5 / 1048576 }'
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
