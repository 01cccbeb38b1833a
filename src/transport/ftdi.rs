//! Settings to FTDI control requests, shared by the libusb driver and the
//! simulated chip: both only provide a [`ControlPipe`].

use std::sync::Mutex;
use std::time::Duration;

use super::{Applied, Outbound, Setting};
use crate::error::{Error, Operation, Result, TransferError};
use crate::lock::lock;
use crate::proto::{Chip, ControlRequest, Interface, LineProperties, LineStatus, ModemStatus};
use crate::stats::TransportInfo;

/// Control and bulk-OUT transfers to one FTDI interface. Failures are the
/// transfer's own ([`TransferError`]); the FTDI layer names the operation.
pub(crate) trait ControlPipe: Send + Sync + 'static {
    /// Runs a control request; `data` is the IN buffer (or empty for OUT).
    /// Returns the bytes of the data stage.
    fn control(
        &self,
        request: ControlRequest,
        data: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, TransferError>;

    /// Writes `data` to the bulk-OUT endpoint; returns the bytes taken: by
    /// the device (simulated chip), or into the write-behind queue (libusb,
    /// see [`flush`](Self::flush)). A timeout after partial progress is
    /// [`TransferError::TimedOut`] with the bytes that went through.
    fn bulk_out(&self, data: &[u8], timeout: Duration) -> Result<usize, WriteError>;

    /// Waits until the device has taken every byte written. A pipe whose
    /// writes complete on the device has nothing to wait for.
    fn flush(&self, _timeout: Duration) -> Result<(), WriteError> {
        Ok(())
    }

    /// What the pipe is connected to (before the FTDI layer adds its part).
    fn info(&self) -> TransportInfo;
}

/// How a write or flush failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// This call's own transfer failed (nothing, or `TimedOut`'s
    /// `transferred` bytes, of its data went out).
    Now(TransferError),
    /// A transfer of bytes that an earlier call queued failed (a
    /// write-behind pipe): `lost` bytes queued before this call never
    /// reached the device, and nothing of this call's data was queued.
    Earlier {
        /// How that transfer failed.
        error: TransferError,
        /// Bytes queued, and reported written, that the device did not take.
        lost: u64,
    },
}

impl From<TransferError> for WriteError {
    fn from(error: TransferError) -> WriteError {
        WriteError::Now(error)
    }
}

impl WriteError {
    /// The crate error; a failure of earlier bytes is named so
    /// (`operation: "earlier write"`), its lost bytes logged.
    fn into_error(self, timeout: Duration) -> Error {
        match self {
            WriteError::Now(e) => e.into_error(Operation::Write, timeout),
            WriteError::Earlier { error, lost } => {
                log::warn!(
                    "a bulk-OUT transfer failed ({error}): {lost} byte(s) queued by earlier \
                     writes did not reach the device"
                );
                match error {
                    TransferError::NoDevice | TransferError::Cancelled => Error::Disconnected,
                    TransferError::TimedOut { .. } => Error::TimedOut {
                        operation: EARLIER_WRITE,
                        after: timeout,
                    },
                    source => Error::Transfer {
                        operation: EARLIER_WRITE,
                        source,
                    },
                }
            }
        }
    }
}

/// How an error of bytes queued by an earlier write names its operation.
pub(crate) const EARLIER_WRITE: &str = "earlier write (bytes queued before this call)";

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
        self.control(request, &mut []).map(drop)
    }

    fn control(&self, request: ControlRequest, data: &mut [u8]) -> Result<usize> {
        self.pipe
            .control(request, data, self.timeout)
            .map_err(|e| e.into_error(Operation::Control(request), self.timeout))
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
        match self.pipe.bulk_out(data, timeout) {
            Ok(n) => Ok(n),
            // Partial progress is a short write, not an error.
            Err(WriteError::Now(TransferError::TimedOut { transferred })) if transferred > 0 => {
                Ok(transferred)
            }
            Err(e) => Err(e.into_error(timeout)),
        }
    }

    fn flush(&self, timeout: Duration) -> Result<()> {
        self.pipe.flush(timeout).map_err(|e| e.into_error(timeout))
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
        let n = self.control(ControlRequest::poll_modem_status(self.interface), &mut buf)?;
        // The SIO answers with one byte; treat a missing line byte as "no news".
        Ok((
            ModemStatus(buf[0]),
            LineStatus(if n >= 2 { buf[1] } else { 0 }),
        ))
    }

    fn read_eeprom_word(&self, word: u16) -> Result<u16> {
        let mut buf = [0u8; 2];
        let n = self.control(ControlRequest::read_eeprom(word), &mut buf)?;
        if n < 2 {
            return Err(Error::SettingRejected {
                setting: format!("READ_EEPROM word {word:#04x}"),
                reason: format!("the chip answered {n} bytes instead of 2"),
            });
        }
        Ok(u16::from_le_bytes(buf))
    }

    fn read_latency_timer(&self) -> Result<u8> {
        let mut buf = [0u8; 1];
        let n = self.control(ControlRequest::get_latency_timer(self.interface), &mut buf)?;
        if n < 1 {
            return Err(Error::SettingRejected {
                setting: "GET_LATENCY_TIMER".into(),
                reason: "the chip answered no byte".into(),
            });
        }
        Ok(buf[0])
    }

    fn info(&self) -> TransportInfo {
        let mut info = self.pipe.info();
        info.chip = Some(self.chip);
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::TransportKind;

    /// A pipe that fails every transfer with one error.
    #[derive(Debug)]
    struct Failing(TransferError);

    impl ControlPipe for Failing {
        fn control(
            &self,
            _: ControlRequest,
            _: &mut [u8],
            _: Duration,
        ) -> Result<usize, TransferError> {
            Err(self.0)
        }

        fn bulk_out(&self, _: &[u8], _: Duration) -> Result<usize, WriteError> {
            Err(WriteError::Now(self.0))
        }

        fn info(&self) -> TransportInfo {
            TransportInfo {
                kind: TransportKind::Sim,
                description: "failing pipe".into(),
                chip: None,
                actual_baud: None,
                max_packet_size: None,
                transfers_in_flight: None,
                notes: Vec::new(),
            }
        }
    }

    fn outbound(e: TransferError) -> FtdiOutbound<Failing> {
        FtdiOutbound::new(
            Failing(e),
            Chip::Ft232R,
            Interface::A,
            Duration::from_millis(50),
        )
    }

    #[test]
    fn a_timeout_after_partial_progress_is_a_short_write() {
        let w = Duration::from_millis(20);
        let o = outbound(TransferError::TimedOut { transferred: 3 });
        assert_eq!(o.write(b"hello", w).unwrap(), 3);
        let o = outbound(TransferError::TimedOut { transferred: 0 });
        assert!(matches!(
            o.write(b"hello", w),
            Err(Error::TimedOut { operation: "write", after }) if after == w
        ));
    }

    #[test]
    fn failures_name_their_operation_and_a_stall_its_request() {
        let o = outbound(TransferError::Stall);
        match o.apply(Setting::PurgeRx) {
            Err(Error::Stall { request }) => {
                assert_eq!(request, ControlRequest::purge_rx(Interface::A))
            }
            other => panic!("{other:?}"),
        }
        // Chips without bit-bang modes stall SET_BITMODE: only noted.
        assert!(
            matches!(o.initialize(), Err(Error::Stall { request }) if request == ControlRequest::reset(Interface::A))
        );
        assert!(matches!(
            outbound(TransferError::NoDevice).query_status(),
            Err(Error::Disconnected)
        ));
        assert!(matches!(
            outbound(TransferError::Fault).write(b"x", Duration::from_millis(1)),
            Err(Error::Transfer {
                operation: "write",
                source: TransferError::Fault
            })
        ));
    }
}
