# shellcheck shell=bash
# Shared pieces of the virtual rig's tiers (sourced by hil-tests/vhil/run.sh,
# the logic tier, and hil-tests/vtime/run.sh, the timing tier): step timing,
# Debian packages, guest kernels fetched with `apt-get download`, static
# guest builds, and the busybox initramfs.
#
# The sourcing script sets STEP_PREFIX (e.g. "vhil-step") and ROOT (the
# workspace) before calling anything here. Runs under `set -euo pipefail`.

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
STEP_T=0
STEP_NAME=""
step_begin() { STEP_NAME=$1; STEP_T=$(now); echo "$STEP_PREFIX: $STEP_NAME ..."; }
step_end() { printf '%s: %-10s %6s s\n' "$STEP_PREFIX" "$STEP_NAME" "$(since "$STEP_T")"; }

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
}

# apt_install PKG... : installs what is missing. The package lists are
# updated only when apt does not know a package, or when the install fails
# (stale lists pointing at files the mirror dropped).
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    for p in "${missing[@]}"; do
        apt-cache show "$p" >/dev/null 2>&1 || apt_update_once
    done
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        apt_update_once
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# The emulator, busybox for the initramfs, xz for the vmlinux extraction.
install_rig_packages() {
    local need=()
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    [ -x /bin/busybox ] || need+=(busybox-static)
    command -v xz >/dev/null || need+=(xz-utils)
    [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
    qemu-system-x86_64 --version | head -n1
}

# The kernel package a meta package (linux-image-amd64, linux-image-rt-amd64)
# currently depends on: the ABI name moves with every Debian point release.
kernel_pkg_of() {
    apt-cache depends "$1" 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# fetch_kernel META CACHE MODULE... : makes sure CACHE/<pkg>/ holds the
# kernel META depends on, as an ELF vmlinux for a fast boot (vmlinuz as the
# fallback), and the named modules (.ko, flat). Sets KPKG, KDIR and KERNEL.
# Older ABIs of the same META in CACHE are removed. VHIL_BZIMAGE=1 boots the
# compressed vmlinuz instead.
# shellcheck disable=SC2034 # KPKG, KDIR and KERNEL are for the caller
fetch_kernel() {
    local meta=$1 cache=$2
    shift 2
    local modules=("$@")
    KPKG=$(kernel_pkg_of "$meta" || true)
    if [ -z "$KPKG" ]; then
        apt_update_once
        KPKG=$(kernel_pkg_of "$meta")
    fi
    [ -n "$KPKG" ] || { echo "cannot resolve $meta" >&2; return 1; }
    KDIR="$cache/$KPKG"
    local want
    want=$(printf '%s\n' "${modules[@]}" | sort | tr '\n' ' ')
    if [ ! -f "$KDIR/.complete" ] || [ "$(cat "$KDIR/.complete")" != "$want" ]; then
        local d
        for d in "$cache"/*/; do
            [ -f "$d/.meta" ] && [ "$(cat "$d/.meta")" = "$meta" ] && rm -rf "$d"
        done
        rm -rf "$KDIR" "$cache/deb"
        mkdir -p "$cache/deb" "$KDIR/modules"
        # `apt-get download` writes to the cwd; a stale list can name a .deb
        # the mirror no longer has, so retry once after `apt-get update`.
        if ! (cd "$cache/deb" && apt-get download -qq "$KPKG"); then
            apt_update_once
            KPKG=$(kernel_pkg_of "$meta")
            KDIR="$cache/$KPKG"
            mkdir -p "$KDIR/modules"
            (cd "$cache/deb" && apt-get download -qq "$KPKG")
        fi
        # Extract only vmlinuz and the modules (the full tree is ~400 MB).
        local pats=('./boot/vmlinuz-*') m f
        for m in "${modules[@]}"; do pats+=("*/$m.ko"); done
        mkdir -p "$cache/deb/x"
        dpkg-deb --fsys-tarfile "$cache"/deb/*.deb | tar -x -C "$cache/deb/x" --wildcards "${pats[@]}"
        mv "$cache"/deb/x/boot/vmlinuz-* "$KDIR/vmlinuz"
        for m in "${modules[@]}"; do
            f=$(find "$cache/deb/x" -name "$m.ko" | head -n1)
            [ -n "$f" ] || { echo "$m.ko not in $KPKG" >&2; return 1; }
            mv "$f" "$KDIR/modules/"
        done
        rm -rf "$cache/deb"
        extract_vmlinux "$KDIR"
        echo "$meta" >"$KDIR/.meta"
        echo "$want" >"$KDIR/.complete"
    fi
    KERNEL="$KDIR/vmlinuz"
    if [ -f "$KDIR/vmlinux" ] && [ "${VHIL_BZIMAGE:-0}" != 1 ]; then KERNEL="$KDIR/vmlinux"; fi
}

# Boot speed: under TCG the bzImage's own XZ decompression takes ~8 s of
# emulated CPU. Decompress once here instead and boot the ELF vmlinux
# through QEMU's PVH entry (Debian kernels have CONFIG_PVH): /init then
# starts ~3 s after QEMU does instead of ~11 s. vmlinuz stays as fallback.
extract_vmlinux() {
    local kdir=$1 off
    off=$(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$kdir/vmlinuz" | head -n1 | cut -d: -f1 || true)
    # (Via a file, not a pipe: xz stops reading at the end of the stream and
    # pipefail would count tail's SIGPIPE as a failure.)
    if [ -n "$off" ] && tail -c +$((off + 1)) "$kdir/vmlinuz" >"$kdir/payload.xz" &&
        xz -dc --single-stream "$kdir/payload.xz" >"$kdir/vmlinux.tmp" 2>/dev/null &&
        [ "$(head -c 4 "$kdir/vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
        mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
        rm -f "$kdir/payload.xz"
    else
        rm -f "$kdir/vmlinux.tmp" "$kdir/payload.xz"
        echo "could not extract vmlinux; booting the bzImage (slower)"
    fi
}

# The workspace's target directory (absolute).
target_dir() {
    local t=${CARGO_TARGET_DIR:-$ROOT/target}
    case "$t" in /*) ;; *) t="$ROOT/$t" ;; esac
    echo "$t"
}

# The target directory of the static guest builds: separate, so their
# RUSTFLAGS do not invalidate the main cache; shared by both tiers.
GUEST_TARGET=x86_64-unknown-linux-gnu
guest_target_dir() { echo "$(target_dir)/vhil"; }

# build_static_guest BIN... : builds hil-tests binaries statically for the
# guest (the explicit --target keeps build scripts dynamic). Prints nothing
# else; the binaries are in $(guest_target_dir)/$GUEST_TARGET/release/.
build_static_guest() {
    local args=() b
    for b in "$@"; do args+=(--bin "$b"); done
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release -p ftdi-rt-hil "${args[@]}" \
        --target "$GUEST_TARGET" --target-dir "$(guest_target_dir)")
}

# static_test_binary TEST [CARGO ARGS...] : builds the hil-tests integration
# test TEST statically (with the extra cargo arguments, e.g. --features), as
# build_static_guest does, and prints the executable's path
# (from cargo's JSON messages; awk reads them all, so cargo never writes
# into a closed pipe).
static_test_binary() {
    local test=$1
    shift
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" \
        cargo test --release -p ftdi-rt-hil --test "$test" --no-run "$@" \
        --target "$GUEST_TARGET" --target-dir "$(guest_target_dir)" \
        --message-format=json-render-diagnostics) |
        awk -v t="\"name\":\"$test\"" 'index($0, t) && /"executable":"/ {
            exe = $0; sub(/.*"executable":"/, "", exe); sub(/".*/, "", exe) }
            END { print exe }'
}

# new_initramfs RD : an empty initramfs root with busybox.
new_initramfs() {
    local rd=$1
    rm -rf "$rd"
    mkdir -p "$rd"/{bin,lib/modules,proc,sys,dev,tmp}
    install -m 0755 /bin/busybox "$rd/bin/busybox"
}

# add_binary RD SRC [DEST] : copies an executable into the initramfs
# (stripped; the build keeps its debug info) with the shared libraries ldd
# lists for it, at their own paths. DEST defaults to /bin/<name>.
add_binary() {
    local rd=$1 src=$2 dest=${3:-/bin/$(basename "$2")} lib
    install -D -m 0755 "$src" "$rd$dest"
    strip "$rd$dest" 2>/dev/null || true
    # Static binaries: ldd says "not a dynamic executable" and lists nothing.
    for lib in $(ldd "$src" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }'); do
        [ -e "$rd$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$rd$lib"
    done
}

# pack_initramfs RD OUT : newc cpio, gzip -1 (busybox's cpio: the host has none).
pack_initramfs() {
    local rd=$1 out=$2
    (cd "$rd" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null) |
        gzip -1 >"$out"
    stat -c %s "$out" | awk '{ printf "initramfs: %.2f MB\n", $1 / 1048576 }'
}
