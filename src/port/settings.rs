//! Writing and configuring through the port itself: each method is the
//! [`Writer`]'s of the same name, so code that holds only a `&Port` (or
//! only a `&Writer`, see [`Port::split`]) reads the same.

use super::{Port, Writer};
use crate::error::Result;
use crate::proto::{FlowControl, LineProperties, LineStatus, ModemStatus};
use crate::stats::TransportInfo;

impl Port {
    /// Writes all of `data`, waiting up to the port's write timeout.
    /// See [`Writer::write_all`].
    ///
    /// # Errors
    /// [`Error::TimedOut`](crate::Error::TimedOut) if the device did not
    /// take everything in time, [`Error::Disconnected`](crate::Error::Disconnected).
    pub fn write_all(&self, data: &[u8]) -> Result<()> {
        self.writer.write_all(data)
    }

    /// Writes what the device accepts of `data` within the write timeout.
    /// See [`Writer::write`].
    ///
    /// # Errors
    /// As [`write_all`](Port::write_all) when nothing could be written.
    pub fn write(&self, data: &[u8]) -> Result<usize> {
        Writer::write(&self.writer, data)
    }

    /// Sets the baud rate; returns the rate the device actually runs at.
    ///
    /// # Errors
    /// See [`Writer::set_baud_rate`].
    pub fn set_baud_rate(&self, baud: u32) -> Result<u32> {
        self.writer.set_baud_rate(baud)
    }

    /// Sets data bits, parity and stop bits.
    ///
    /// # Errors
    /// See [`Writer::set_line_properties`].
    pub fn set_line_properties(&self, line: LineProperties) -> Result<()> {
        self.writer.set_line_properties(line)
    }

    /// Sets flow control.
    ///
    /// # Errors
    /// See [`Writer::set_flow_control`].
    pub fn set_flow_control(&self, flow: FlowControl) -> Result<()> {
        self.writer.set_flow_control(flow)
    }

    /// Sets the DTR output.
    ///
    /// # Errors
    /// The device's refusal.
    pub fn set_dtr(&self, on: bool) -> Result<()> {
        self.writer.set_dtr(on)
    }

    /// Sets the RTS output (ignored by the chip while RTS/CTS flow control is on).
    ///
    /// # Errors
    /// The device's refusal.
    pub fn set_rts(&self, on: bool) -> Result<()> {
        self.writer.set_rts(on)
    }

    /// Holds TX low (break) or releases it.
    ///
    /// # Errors
    /// The device's refusal.
    pub fn set_break(&self, on: bool) -> Result<()> {
        self.writer.set_break(on)
    }

    /// Sets the FTDI latency timer (1..=255 ms). See [`Writer::set_latency_timer`].
    ///
    /// # Errors
    /// [`Error::LatencyTimer`](crate::Error::LatencyTimer) for 0,
    /// [`Error::Unsupported`](crate::Error::Unsupported) where it has no
    /// effect (a pty, a tty the timer cannot be written on), or the
    /// device's refusal.
    pub fn set_latency_timer(&self, ms: u8) -> Result<()> {
        self.writer.set_latency_timer(ms)
    }

    /// Sets (or with `None` disables) the event character.
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::Error::Unsupported) on transports without one.
    pub fn set_event_char(&self, ch: Option<u8>) -> Result<()> {
        self.writer.set_event_char(ch)
    }

    /// Sets (or with `None` disables) the error character.
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::Error::Unsupported) on transports without one.
    pub fn set_error_char(&self, ch: Option<u8>) -> Result<()> {
        self.writer.set_error_char(ch)
    }

    /// Empties the device's receive FIFO (data the host has not read yet).
    ///
    /// # Errors
    /// The device's refusal.
    pub fn purge_rx(&self) -> Result<()> {
        self.writer.purge_rx()
    }

    /// Empties the device's transmit FIFO (data not sent yet).
    ///
    /// # Errors
    /// The device's refusal.
    pub fn purge_tx(&self) -> Result<()> {
        self.writer.purge_tx()
    }

    /// Asks the device for its modem and line status (a control request on
    /// FTDI transports, TIOCMGET on a tty). See [`Writer::query_status`].
    ///
    /// # Errors
    /// The transport's error.
    pub fn query_status(&self) -> Result<(ModemStatus, LineStatus)> {
        self.writer.query_status()
    }

    /// The modem and line status of the last packet the reader saw (no I/O).
    /// See [`Writer::latest_status`].
    pub fn latest_status(&self) -> (ModemStatus, LineStatus) {
        self.writer.latest_status()
    }

    /// What the port is connected to and how it is set up.
    pub fn transport_info(&self) -> TransportInfo {
        self.writer.transport_info()
    }
}
