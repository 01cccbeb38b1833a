//! The timing tier's measurements and verdict.
//!
//! The timing tier boots a guest under QEMU TCG with
//! `-icount shift=1,sleep=off -smp 1` (guest time is instruction count × 2 ns,
//! independent of the host's load) and attaches ftdi-rt's simulated chip to
//! the guest kernel through USB/IP (vhci-hcd), so usbcore, ftdi_sio, the tty
//! layer, the workqueue, usbfs and ftdi-rt's reader all run for real against
//! a device with the chip's timing. Reference: usbip-timing-rig.md.
//!
//! Guest side:
//! * [`row`]: the `timing` row format (the contract) and the
//!   `timing-hist` histogram line;
//! * [`recorder`]: latencies into an HDR histogram, rows from it;
//! * [`contenders`]: ftdi-rt's usb path, the kernel tty path, the libftdi1
//!   C loop;
//! * [`loads`]: idle, hogs, rt-burst, kwork;
//! * [`console`]: the serial console kept out of the measurements;
//! * [`guest_cpu`]: how busy the guest's vCPU was over a window, and which
//!   threads used it;
//! * [`matrix`]: every contender under every load, printing the rows (the
//!   vhci kthreads' priority knob is the library's
//!   `AttachedDevice::set_kthread_priority`);
//! * [`case`]: the guest program's `timing` case, which runs the matrix on
//!   a virtual FT232R with the frobnicator;
//! * [`shared16`]: the `shared-reader-16ch` case, 16 channels of 4 FT4232H
//!   on one shared reader against 16 readers, under `rt-burst`.
//!
//! Host side:
//! * [`report`]: the rows of a console log as a table with ratios to the
//!   kernel path, and the gates;
//! * [`plot`]: an SVG latency histogram per load.

pub mod case;
pub mod console;
pub mod contenders;
pub mod guest_cpu;
pub mod loads;
pub mod matrix;
pub mod plot;
pub mod recorder;
pub mod report;
pub mod row;
pub mod shared16;
