#!/bin/busybox sh
# shellcheck shell=dash
# /init of the timing tier's guest (busybox sh). Loads the USB stack with
# vhci-hcd, runs /bin/vtime-guest between the results markers (it attaches
# the simulated chip itself), powers off. If anything here dies, the kernel
# panics (init exited), panic=-1 reboots at once and QEMU's -no-reboot turns
# that into an exit; the host watchdog is the last resort.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

# Milliseconds of guest uptime (virtual time under icount).
ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
say() { echo "vtime-init: $* (uptime $(ms) ms)"; }
say "start, kernel $(uname -r)"

# No modules.dep in the kernel .deb: fixed dependency order instead.
for m in usb-common usbcore usbserial ftdi_sio usbip-core vhci-hcd; do
    insmod /lib/modules/$m.ko || say "insmod $m failed"
done
[ -d /sys/devices/platform/vhci_hcd.0 ] || say "vhci_hcd.0 MISSING"
say "modules loaded"

# Arguments for vtime-guest: vtime.args="a b" on the kernel command line
# (dotted parameters are not passed to init, so parse it here).
cmdline=$(cat /proc/cmdline)
case "$cmdline" in
    *'vtime.args="'*) args=$(echo "$cmdline" | sed -n 's/.*vtime\.args="\([^"]*\)".*/\1/p') ;;
    *) args="" ;;
esac

echo "==== VTIME-RESULTS-BEGIN"
# shellcheck disable=SC2086 # word splitting of $args is intended
/bin/vtime-guest $args
rc=$?
echo "vtime-init: vtime-guest exit=$rc"
echo "==== VTIME-RESULTS-END"
# The kernel log, kept off the console while the cases ran (loglevel=3).
echo "==== guest dmesg (warnings and worse)"
dmesg | grep -iE 'warn|err|bug|fail|oops|call trace|vhci|usb' | tail -n 60

sync
poweroff -f
sleep 5
exit 1
