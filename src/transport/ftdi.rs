//! Settings to FTDI control requests, shared by the libusb driver and the
//! simulated chip: both only provide a [`ControlPipe`].

use std::sync::Mutex;
use std::time::Duration;

use super::{Applied, Outbound, Setting};
use crate::error::{Error, Result};
use crate::lock::lock;
use crate::proto::{Chip, ControlRequest, Interface, LineProperties, LineStatus, ModemStatus};
use crate::stats::TransportInfo;

/// How a control or bulk-OUT transfer failed, on any FTDI transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PipeFailure {
    Stall,
    NoDevice,
    TimedOut,
    Other(String),
}

impl PipeFailure {
    /// The crate error for this failure of `operation` (a STALL of a control
    /// request names the request).
    pub(crate) fn into_error(
        self,
        request: Option<ControlRequest>,
        operation: &'static str,
        timeout: Duration,
    ) -> Error {
        match self {
            PipeFailure::Stall => match request {
                Some(request) => Error::Stall { request },
                None => Error::Usb {
                    operation,
                    reason: "the endpoint stalled".into(),
                },
            },
            PipeFailure::NoDevice => Error::Disconnected,
            PipeFailure::TimedOut => Error::TimedOut {
                operation,
                after: timeout,
            },
            PipeFailure::Other(reason) => Error::Usb { operation, reason },
        }
    }
}

/// Control and bulk-OUT transfers to one FTDI interface.
pub(crate) trait ControlPipe: Send + Sync + 'static {
    /// Runs a control request; `data` is the IN buffer (or empty for OUT).
    /// A STALL must come back as [`Error::Stall`].
    fn control(&self, request: ControlRequest, data: &mut [u8], timeout: Duration)
    -> Result<usize>;

    /// Writes `data` to the bulk-OUT endpoint; returns the bytes accepted.
    fn bulk_out(&self, data: &[u8], timeout: Duration) -> Result<usize>;

    /// What the pipe is connected to (before the FTDI layer adds its part).
    fn info(&self) -> TransportInfo;
}

/// Line settings the chip cannot report back but SET_DATA must repeat
/// (break is a bit of the same request).
#[derive(Clone, Copy, Debug, Default)]
struct DataState {
    line: LineProperties,
    break_on: bool,
}

/// [`Outbound`] for any FTDI [`ControlPipe`].
#[derive(Debug)]
pub(crate) struct FtdiOutbound<P> {
    pipe: P,
    chip: Chip,
    interface: Interface,
    timeout: Duration,
    data: Mutex<DataState>,
}

impl<P: ControlPipe> FtdiOutbound<P> {
    pub(crate) fn new(pipe: P, chip: Chip, interface: Interface, timeout: Duration) -> Self {
        FtdiOutbound {
            pipe,
            chip,
            interface,
            timeout,
            data: Mutex::new(DataState::default()),
        }
    }

    fn send(&self, request: ControlRequest) -> Result<()> {
        self.pipe.control(request, &mut [], self.timeout).map(drop)
    }

    /// The first steps of opening: reset, back to UART mode, purge both
    /// FIFOs. Returns notes about steps the chip declined.
    pub(crate) fn initialize(&self) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        self.send(ControlRequest::reset(self.interface))?;
        // Chips without bit-bang modes (and QEMU's FT232BM) STALL SET_BITMODE;
        // they are in UART mode anyway, so a STALL here is harmless.
        match self.send(ControlRequest::uart_mode(self.interface)) {
            Ok(()) => {}
            Err(Error::Stall { .. }) => notes
                .push("SET_BITMODE (reset to UART) stalled: the chip has no bit-bang modes".into()),
            Err(e) => return Err(e),
        }
        self.send(ControlRequest::purge_rx(self.interface))?;
        self.send(ControlRequest::purge_tx(self.interface))?;
        Ok(notes)
    }
}

impl<P: ControlPipe> Outbound for FtdiOutbound<P> {
    fn write(&self, data: &[u8], timeout: Duration) -> Result<usize> {
        self.pipe.bulk_out(data, timeout)
    }

    fn apply(&self, setting: Setting) -> Result<Applied> {
        let i = self.interface;
        match setting {
            Setting::Baud(baud) => {
                let (request, divisor) = ControlRequest::baud_rate(self.chip, i, baud)?;
                self.send(request)?;
                return Ok(Applied::Baud(divisor.actual));
            }
            Setting::Line(line) => {
                let mut state = lock(&self.data);
                self.send(ControlRequest::line_properties(i, line, state.break_on))?;
                state.line = line;
            }
            Setting::Break(on) => {
                let mut state = lock(&self.data);
                self.send(ControlRequest::line_properties(i, state.line, on))?;
                state.break_on = on;
            }
            Setting::Flow(flow) => self.send(ControlRequest::flow_control(i, flow))?,
            Setting::ModemLines { dtr, rts } => {
                self.send(ControlRequest::modem_control(i, dtr, rts))?
            }
            Setting::LatencyTimer(ms) => {
                if !self.chip.has_latency_timer() {
                    return Ok(Applied::Skipped(format!(
                        "the {} has no latency timer; it flushes every 40 ms",
                        self.chip
                    )));
                }
                self.send(ControlRequest::set_latency_timer(i, ms)?)?;
            }
            Setting::EventChar(ch) => self.send(ControlRequest::event_char(i, ch))?,
            Setting::ErrorChar(ch) => self.send(ControlRequest::error_char(i, ch))?,
            Setting::PurgeRx => self.send(ControlRequest::purge_rx(i))?,
            Setting::PurgeTx => self.send(ControlRequest::purge_tx(i))?,
        }
        Ok(Applied::Done)
    }

    fn query_status(&self) -> Result<(ModemStatus, LineStatus)> {
        let mut buf = [0u8; 2];
        let n = self.pipe.control(
            ControlRequest::poll_modem_status(self.interface),
            &mut buf,
            self.timeout,
        )?;
        // The SIO answers with one byte; treat a missing line byte as "no news".
        Ok((
            ModemStatus(buf[0]),
            LineStatus(if n >= 2 { buf[1] } else { 0 }),
        ))
    }

    fn info(&self) -> TransportInfo {
        let mut info = self.pipe.info();
        info.chip = Some(self.chip);
        info
    }
}
