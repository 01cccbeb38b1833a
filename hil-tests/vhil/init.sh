#!/bin/busybox sh
# /init of the vhil guest (busybox sh). Loads the USB stack, waits for the
# emulated FT232BM, runs /bin/hil-guest between the results markers, powers off.
# If anything here dies, the kernel panics (init exited), panic=-1 reboots at
# once and QEMU's -no-reboot turns that into an exit; the host watchdog is the
# last resort.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Make sure stdio is the console even if the kernel could not open one.
exec </dev/console >/dev/console 2>&1

# Milliseconds since boot, for the log lines.
ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
say() { echo "vhil-init: $* (uptime $(ms) ms)"; }
say start

# No modules.dep in the kernel .deb: fixed dependency order instead.
for m in usb-common usbcore xhci-hcd xhci-pci usbserial ftdi_sio; do
    insmod /lib/modules/$m.ko || say "insmod $m failed"
done
say "modules loaded"

# Control channel to the host runner: raw, no echo (an echoing tty would bounce
# the host's replies back at it), no flow control.
stty -F /dev/ttyS1 115200 raw -echo \
    || say "stty ttyS1 failed"

# The device exists only once the host firmware has connected to the chardev
# socket; it normally has before the kernel is up. -c: pitfall, a missing node
# must not be mistaken for a file.
i=0
while [ ! -c /dev/ttyUSB0 ] && [ $i -lt 300 ]; do
    sleep 0.05
    i=$((i + 1))
done
if [ -c /dev/ttyUSB0 ]; then say "ttyUSB0 present"; else say "ttyUSB0 MISSING after 15 s"; fi

# Arguments for hil-guest: vhil.args="a b" or vhil.args=a on the kernel
# command line (dotted parameters are not passed to init, so parse it here).
cmdline=$(cat /proc/cmdline)
case "$cmdline" in
    *'vhil.args="'*) args=$(echo "$cmdline" | sed -n 's/.*vhil\.args="\([^"]*\)".*/\1/p') ;;
    *vhil.args=*) args=$(echo "$cmdline" | sed -n 's/.*vhil\.args=\([^ ]*\).*/\1/p') ;;
    *) args="" ;;
esac

echo "==== VHIL-RESULTS-BEGIN"
# shellcheck disable=SC2086 # word splitting of $args is intended
/bin/hil-guest $args
rc=$?
echo "vhil-init: hil-guest exit=$rc"
echo "==== VHIL-RESULTS-END"

sync
poweroff -f
# poweroff -f does not return; if it ever does, exiting init panics and
# panic=-1 + -no-reboot end QEMU.
sleep 5
exit 1
