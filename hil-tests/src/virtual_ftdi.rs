//! Attaching virtual FTDI chips to the guest's kernel for the timing tier's
//! cases, and opening them with ftdi-rt.

use ftdi_rt::sim::Device;
use ftdi_rt::sim::usb::{UsbFunction, VirtualFtdi, VirtualFtdiBuilder};
use ftdi_rt::{Chip, Error, Interface, Port, PortConfig, Selector, Timestamp};

use crate::guest::Ctx;
use crate::vdev::{VhciThreads, VirtualDevice};

/// The run's vhci setting (`--vhci`), FIFO 50 unless told otherwise.
pub fn vhci(ctx: &Ctx) -> VhciThreads {
    ctx.param("vhci", VhciThreads::DEFAULT)
}

/// Builds the chip `builder` describes and attaches it; waits until each
/// of its `channels` has a tty.
///
/// # Errors
/// The chip could not be built, or the kernel did not enumerate it and give
/// each channel a tty.
pub fn attach(
    ctx: &Ctx,
    builder: VirtualFtdiBuilder,
    channels: usize,
) -> Result<VirtualDevice<VirtualFtdi>, String> {
    let ftdi = builder
        .build(Timestamp::now())
        .map_err(|e| format!("building the virtual chip: {e}"))?;
    VirtualDevice::attach(ftdi, vhci(ctx), channels)
}

/// Attaches an FT232R running `device`.
///
/// # Errors
/// As [`attach`].
pub fn attach_ft232r(
    ctx: &Ctx,
    device: impl Device + 'static,
) -> Result<VirtualDevice<VirtualFtdi>, String> {
    attach(
        ctx,
        VirtualFtdi::builder(Chip::Ft232R).device(Interface::A, device),
        1,
    )
}

/// The selector of an attached device for `Port::open_usb`.
///
/// # Errors
/// A bus id that is not a bus-port path.
pub fn selector<F: UsbFunction + Send + 'static>(
    dev: &VirtualDevice<F>,
) -> Result<Selector, String> {
    format!("path:{}", dev.bus_id())
        .parse()
        .map_err(|e: Error| format!("bus id {}: {e}", dev.bus_id()))
}

/// Opens ftdi-rt's userspace path on an attached device.
///
/// # Errors
/// The open failed.
pub fn open_usb<F: UsbFunction + Send + 'static>(
    dev: &VirtualDevice<F>,
    config: &PortConfig,
) -> Result<Port, String> {
    Port::open_usb(&selector(dev)?, config).map_err(|e| format!("open_usb {}: {e}", dev.bus_id()))
}
