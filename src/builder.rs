//! [`new`]: opening a port the way `serialport::new` does, so switching a
//! program from serialport is one line:
//!
//! ```text
//! - let port = serialport::new("/dev/ttyUSB0", 115_200).timeout(t).open()?;
//! + let port = ftdi_rt::new("FT1ABCDE", 115_200).timeout(t).open()?;
//! ```
//!
//! The builder takes serialport's own setting types, so the chained calls
//! stay as they are; [`open`](PortBuilder::open) returns the same
//! `Box<dyn serialport::SerialPort>`, and
//! [`open_native`](PortBuilder::open_native) the concrete [`Port`] (as
//! serialport's returns its `TTYPort`), with ftdi-rt's own API on top.

use std::time::Duration;

use serialport as sp;

use crate::error::Result;
use crate::port::serial_types::{data_bits_from, flow_from, parity_from, stop_bits_from};
use crate::port::{Port, PortConfig};
use crate::transport::usb::Selector;

/// Starts building a port on `device` at `baud`, like `serialport::new`.
///
/// `device` is an FTDI adapter's [`Selector`] (a serial number such as
/// `FT1ABCDE`, a bus-port path `1-1.2`, an index, or empty for the first
/// adapter), opened through the userspace driver; or a path starting with
/// `/` (`/dev/ttyUSB0`, a pty), opened as a kernel tty
/// ([`Port::open_tty`]).
///
/// ```no_run
/// use std::time::Duration;
/// let mut port = ftdi_rt::new("FT1ABCDE", 115_200)
///     .timeout(Duration::from_millis(10))
///     .open()?;
/// port.write_all(b"hello")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn new(device: impl Into<String>, baud: u32) -> PortBuilder {
    PortBuilder {
        device: device.into(),
        baud,
        data_bits: sp::DataBits::Eight,
        parity: sp::Parity::None,
        stop_bits: sp::StopBits::One,
        flow_control: sp::FlowControl::None,
        timeout: Duration::ZERO,
        dtr_on_open: None,
        config: PortConfig::default(),
    }
}

/// The settings of a port to open; see [`new`]. The defaults are
/// serialport's: 8N1, no flow control, a read timeout of 0 (a read returns
/// what is there, or times out at once). Everything else is
/// [`PortConfig`]'s default (1 ms latency timer, the realtime reader
/// required); change it with [`config`](PortBuilder::config) or
/// [`best_effort`](PortBuilder::best_effort).
#[derive(Clone, Debug)]
#[must_use]
pub struct PortBuilder {
    device: String,
    baud: u32,
    data_bits: sp::DataBits,
    parity: sp::Parity,
    stop_bits: sp::StopBits,
    flow_control: sp::FlowControl,
    timeout: Duration,
    dtr_on_open: Option<bool>,
    config: PortConfig,
}

impl PortBuilder {
    /// The device to open (see [`new`]).
    pub fn path(mut self, device: impl Into<String>) -> Self {
        self.device = device.into();
        self
    }

    /// The baud rate.
    pub fn baud_rate(mut self, baud: u32) -> Self {
        self.baud = baud;
        self
    }

    /// Data bits (FTDI chips have 7 or 8; others fail at open, named).
    pub fn data_bits(mut self, data_bits: sp::DataBits) -> Self {
        self.data_bits = data_bits;
        self
    }

    /// Parity.
    pub fn parity(mut self, parity: sp::Parity) -> Self {
        self.parity = parity;
        self
    }

    /// Stop bits.
    pub fn stop_bits(mut self, stop_bits: sp::StopBits) -> Self {
        self.stop_bits = stop_bits;
        self
    }

    /// Flow control (software: XON 0x11 / XOFF 0x13).
    pub fn flow_control(mut self, flow_control: sp::FlowControl) -> Self {
        self.flow_control = flow_control;
        self
    }

    /// The read timeout (`Duration::MAX`: reads block until data comes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// DTR after opening (default: asserted, as [`PortConfig`] says).
    pub fn dtr_on_open(mut self, state: bool) -> Self {
        self.dtr_on_open = Some(state);
        self
    }

    /// Everything serialport has no word for (latency timer, transfers in
    /// flight, the reader's realtime settings, ...). The serialport-style
    /// settings of this builder are applied on top of it.
    pub fn config(mut self, config: PortConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs the reader without the realtime guarantee where it is refused
    /// (see [`PortConfig::best_effort`]).
    pub fn best_effort(mut self) -> Self {
        self.config = self.config.best_effort();
        self
    }

    /// The port configuration these settings make.
    ///
    /// # Errors
    /// A setting FTDI chips do not have (5 or 6 data bits).
    pub fn port_config(&self) -> sp::Result<PortConfig> {
        let mut config = self.config.clone().with_baud(self.baud);
        config.line.data_bits = data_bits_from(self.data_bits)?;
        config.line.parity = parity_from(self.parity);
        config.line.stop_bits = stop_bits_from(self.stop_bits);
        config.flow = flow_from(self.flow_control);
        if let Some(dtr) = self.dtr_on_open {
            config.dtr = dtr;
        }
        Ok(config)
    }

    /// Opens the port, as `serialport::SerialPortBuilder::open` does.
    ///
    /// # Errors
    /// ftdi-rt's error as a `serialport::Error` (its message kept whole:
    /// it says how to fix it, e.g. which udev rule to install).
    pub fn open(self) -> sp::Result<Box<dyn sp::SerialPort>> {
        let port = self.open_native()?;
        Ok(Box::new(port))
    }

    /// Opens the port as a [`Port`], ftdi-rt's own API included.
    ///
    /// # Errors
    /// As [`Port::open_usb`] or [`Port::open_tty`]; an unsupported setting.
    pub fn open_native(self) -> Result<Port> {
        let config = self.checked_config()?;
        let mut port = if self.device.starts_with('/') {
            Port::open_tty(&self.device, &config)?
        } else {
            Port::open_usb(&self.device.parse::<Selector>()?, &config)?
        };
        port.receiver().set_read_timeout(Some(self.timeout));
        Ok(port)
    }

    /// Opens a port on a simulated chip with these settings (feature
    /// `sim`); the device name is not used.
    ///
    /// # Errors
    /// As [`Port::open_sim`]; an unsupported setting.
    #[cfg(feature = "sim")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
    pub fn open_sim(self, chip: crate::sim::SimChip) -> Result<Port> {
        let config = self.checked_config()?;
        let mut port = Port::open_sim(chip, &config)?;
        port.receiver().set_read_timeout(Some(self.timeout));
        Ok(port)
    }

    fn checked_config(&self) -> Result<PortConfig> {
        self.port_config()
            .map_err(|e| crate::Error::InvalidConfig(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{DataBits, FlowControl, Parity, StopBits};

    #[test]
    fn serialport_settings_become_the_port_config() {
        let config = new("FT1ABCDE", 9600)
            .data_bits(sp::DataBits::Seven)
            .parity(sp::Parity::Even)
            .stop_bits(sp::StopBits::Two)
            .flow_control(sp::FlowControl::Hardware)
            .dtr_on_open(false)
            .port_config()
            .unwrap();
        assert_eq!(config.baud, 9600);
        assert_eq!(config.line.data_bits, DataBits::Seven);
        assert_eq!(config.line.parity, Parity::Even);
        assert_eq!(config.line.stop_bits, StopBits::Two);
        assert_eq!(config.flow, FlowControl::RtsCts);
        assert!(!config.dtr);
    }

    #[test]
    fn unsupported_data_bits_fail_at_open_with_the_reason() {
        let e = new("/dev/null", 9600)
            .data_bits(sp::DataBits::Six)
            .open_native()
            .unwrap_err();
        assert!(e.to_string().contains("7 or 8"), "{e}");
    }
}
