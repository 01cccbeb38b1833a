#!/usr/bin/env bash
# Timing tier of the virtual rig: boots Debian's stock and/or PREEMPT_RT
# kernel under QEMU TCG with a deterministic clock (-icount shift=1,sleep=off,
# one vCPU) and runs the static guest program `vtime-guest` inside it. The
# guest attaches the simulated FTDI chip to its own kernel through USB/IP
# (vhci-hcd), so ftdi_sio, usbfs and the tty layer are the real ones, and runs
# its cases. See hil-tests/vtime/README.md.
#
# Usage: bash hil-tests/vtime/run.sh [--kernel stock|rt|both] [--prepare-only]
#                                    [-- <vtime-guest args>]
#   --kernel K         which kernel(s) to boot (default: VTIME_KERNEL or stock)
#   --prepare-only     install, fetch, build and pack, but do not boot
#   VTIME_TIMEOUT      host watchdog per boot in seconds (default 900)
#   VTIME_ICOUNT       QEMU -icount setting (default shift=1,sleep=off; "off":
#                      real-time TCG, for comparison only)
#   VTIME_VHCI_PRIO    SCHED_FIFO priority of vhci_rx/vhci_tx in the guest
#                      (default 50; "other" leaves them at SCHED_OTHER)
#   VTIME_OUT          where the console logs go (default hil-tests/vtime/work/out)
# Hooks: hil-tests/vtime/hooks.d/*.sh (extra build steps and initramfs files)
# and the host binary `vtime-report` (judges the logs); see the README.
set -euo pipefail

T0=$(date +%s.%N)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK="$HERE/work"
OUT=${VTIME_OUT:-$WORK/out}
KERNELS=${VTIME_KERNEL:-stock}
PREPARE_ONLY=0
GUEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) KERNELS=${2:?--kernel needs stock, rt or both}; shift ;;
        --kernel=*) KERNELS=${1#--kernel=} ;;
        --prepare-only) PREPARE_ONLY=1 ;;
        --) shift; GUEST_ARGS+=("$@"); break ;;
        *) echo "vtime/run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
case "$KERNELS" in
    stock) FLAVOURS=(stock) ;;
    rt) FLAVOURS=(rt) ;;
    both) FLAVOURS=(stock rt) ;;
    *) echo "vtime/run.sh: --kernel must be stock, rt or both, not $KERNELS" >&2; exit 2 ;;
esac
mkdir -p "$WORK" "$OUT"

# Guest modules in load order (no modules.dep in the .deb; order from each
# .ko's depends=: vhci-hcd needs usbip-core, usbcore and usb-common).
MODULES=(usb-common usbcore usbserial ftdi_sio usbip-core vhci-hcd)

STEP_PREFIX=vtime-step
# shellcheck source=hil-tests/vhil/common.sh
. "$ROOT/hil-tests/vhil/common.sh"

meta_of() {
    case "$1" in
        stock) echo linux-image-amd64 ;;
        rt) echo linux-image-rt-amd64 ;;
    esac
}

# Hooks: every hooks.d/*.sh is sourced once per phase with VTIME_PHASE set.
run_hooks() {
    local phase=$1 hook
    for hook in "$HERE"/hooks.d/*.sh; do
        [ -e "$hook" ] || continue
        echo "$STEP_PREFIX: hook $(basename "$hook") ($phase)"
        # shellcheck disable=SC2034 # read by the hook
        VTIME_PHASE=$phase
        # shellcheck disable=SC1090
        . "$hook"
    done
}

# ---------------------------------------------------------------- 1. install
step_begin install
install_rig_packages
step_end

# ----------------------------------------------------- 2. kernels + modules
step_begin kernels
declare -A KERNEL_OF KDIR_OF KPKG_OF
for flavour in "${FLAVOURS[@]}"; do
    fetch_kernel "$(meta_of "$flavour")" "$WORK/kernel" "${MODULES[@]}"
    KERNEL_OF[$flavour]=$KERNEL
    KDIR_OF[$flavour]=$KDIR
    KPKG_OF[$flavour]=$KPKG
    echo "kernel $flavour: $KPKG ($(basename "$KERNEL"))"
done
step_end

# ---------------------------------------------------------------- 3. build
step_begin build
cd "$ROOT"
export LIBUDEV_NO_PKG_CONFIG=1
build_static_guest vtime-guest
GUEST_BIN="$(guest_target_dir)/$GUEST_TARGET/release/vtime-guest"
# The real-adapter suite, run in the guest against the virtual adapter.
# With the hardware features on: the suite's cases are #[ignore]d without
# them, and here the virtual adapter (with its jumpers and a rig that unplugs
# on request) is the hardware.
SUITE_BIN=$(static_test_binary real_adapter --features hardware-tests,hardware-jumpers,hardware-unplug)
[ -x "$SUITE_BIN" ] || { echo "vtime/run.sh: no real_adapter test binary" >&2; exit 1; }
REPORT_BIN=""
if [ -e "$ROOT/hil-tests/src/bin/vtime-report.rs" ] ||
    [ -e "$ROOT/hil-tests/src/bin/vtime-report/main.rs" ]; then
    cargo build --release -p ftdi-rt-hil --bin vtime-report
    REPORT_BIN="$(target_dir)/release/vtime-report"
fi
run_hooks build
step_end

# ------------------------------------------------------------ 4. initramfs
step_begin initramfs
for flavour in "${FLAVOURS[@]}"; do
    RD="$WORK/initramfs-$flavour"
    new_initramfs "$RD"
    install -m 0755 "$HERE/init.sh" "$RD/init"
    cp "${KDIR_OF[$flavour]}"/modules/*.ko "$RD/lib/modules/"
    add_binary "$RD" "$GUEST_BIN"
    add_binary "$RD" "$SUITE_BIN" /bin/real_adapter
    run_hooks initramfs
    pack_initramfs "$RD" "$WORK/initramfs-$flavour.cpio.gz"
done
step_end

printf '%s: %-10s %6s s\n' "$STEP_PREFIX" prepared "$(since "$T0")"
[ "$PREPARE_ONLY" = 1 ] && exit 0

# ------------------------------------------------------------------ 5. boot
# loglevel=3: only critical kernel messages reach the console while cases
# run, so the kernel's own console writes (the 8250 console busy-waits per
# character) stay out of the measured paths; vhci-hcd alone logs an error on
# every port reset of a full-speed device ("vhci_device speed not set").
# init.sh prints the kernel log after the END marker instead.
# The console, each line prefixed with the wall time since QEMU started
# ([ss.mmm], bash's EPOCHREALTIME: no fork per line), into the log and to
# stdout. The guest's own clock is virtual under icount; its uptime is in
# the lines it prints.
icount=${VTIME_ICOUNT:-shift=1,sleep=off}
vhci_prio=${VTIME_VHCI_PRIO:-50}
boot() {
    local flavour=$1 log=$2
    local guest_args="--vhci $vhci_prio ${GUEST_ARGS[*]}"
    local cmd=(qemu-system-x86_64 -accel tcg -M pc -m 512 -smp 1 -nographic -no-reboot
        -nic none -monitor none -serial stdio)
    # Deterministic runs also need the guest's wall clock and its address
    # randomisation fixed: the RTC is read at boot and, with KASLR and mmap
    # randomisation, seeds differences between boots that the timing rows
    # then amplify (determinism.sh: SCHED_OTHER vhci rows drifted by 32-41
    # misses in 2000 without this, 2-17 with it).
    local append="console=ttyS0 panic=-1 quiet loglevel=3"
    if [ "$icount" != off ]; then
        cmd+=(-icount "$icount" -rtc base=2024-01-01T00:00:00,clock=vm)
        append+=" nokaslr norandmaps"
    fi
    cmd+=(-kernel "${KERNEL_OF[$flavour]}" -initrd "$WORK/initramfs-$flavour.cpio.gz"
        -append "$append vtime.args=\"$guest_args\"")
    echo "${cmd[*]}" >"$OUT/cmdline-$flavour.txt"
    local start=${EPOCHREALTIME/./} line us
    : >"$log"
    # stdin from /dev/null: QEMU must not read the terminal. The watchdog
    # kills QEMU; the pipeline then ends and the missing END marker fails it.
    timeout --kill-after=10 "${VTIME_TIMEOUT:-900}" "${cmd[@]}" </dev/null 2>&1 |
        while IFS= read -r line; do
            line=${line%$'\r'}
            us=$((${EPOCHREALTIME/./} - start))
            printf -v line '[%4d.%03d] %s' $((us / 1000000)) $((us / 1000 % 1000)) "$line"
            printf '%s\n' "$line"
            printf '%s\n' "$line" >&3
        done 3>>"$log" || true
}

status=0
LOGS=()
for flavour in "${FLAVOURS[@]}"; do
    step_begin "boot-$flavour"
    log="$OUT/console-$flavour.log"
    LOGS+=("$log")
    echo "kernel ${KPKG_OF[$flavour]}, icount ${icount}, vhci_rx/vhci_tx ${vhci_prio}; console: $log"
    boot "$flavour" "$log"
    step_end
    rc=$(sed -n 's/.*vtime-init: vtime-guest exit=\([0-9]*\).*/\1/p' "$log" | tail -n1)
    if ! grep -q '==== VTIME-RESULTS-END' "$log"; then
        echo "vtime: $flavour: the guest did not finish (no END marker): crash or watchdog; see $log"
        status=1
    elif [ "$rc" != 0 ]; then
        echo "vtime: $flavour: vtime-guest exit=$rc (failed cases: grep 'RESULT .* FAIL' $log)"
        status=1
    else
        echo "vtime: $flavour: all guest cases passed"
    fi
    grep -E '^\[ *[0-9.]+\] (RESULT|vtime-init: (ttyUSB|attach))' "$log" | sed 's/^/  /' || true
done

# ---------------------------------------------------------------- 6. report
if [ -n "$REPORT_BIN" ]; then
    step_begin report
    set +e
    "$REPORT_BIN" "${LOGS[@]}"
    report_rc=$?
    set -e
    step_end
    [ "$report_rc" = 0 ] || status=$report_rc
fi

printf '%s: %-10s %6s s\n' "$STEP_PREFIX" total "$(since "$T0")"
echo "console logs: ${LOGS[*]}"
exit "$status"
