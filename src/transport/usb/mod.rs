//! The userspace libusb driver.
//!
//! Opening ([`device`]) finds the FTDI device, reads its endpoints, detaches
//! ftdi_sio if it is bound and claims the interface; the shared FTDI layer
//! then resets and configures the chip with synchronous control requests.
//! From the moment the realtime reader starts, it alone drives libusb
//! ([`event_loop`]): N single-packet bulk-IN transfers in flight
//! ([`transfers`]), resubmitted as soon as they complete; writes and control
//! requests from the application reach it through a lock-free mailbox
//! ([`mailbox`]), which keeps every libusb lock off normal-priority threads.
//!
//! Known limit, outside this crate: libusb's Linux backend `calloc`s the
//! URB array on every submit and frees it on reap, so the reader performs
//! one small C-heap allocation per packet inside libusb (from its own
//! thread's cache; no lock shared with other threads in glibc's tcache).
//! The Rust side allocates nothing per packet.

mod device;
mod event_loop;
mod list;
mod mailbox;
mod transfers;

use std::sync::Arc;
use std::time::Duration;

pub use list::{DeviceInfo, FTDI_VID, Selector, UsbId, list};

use self::device::{Claimed, open_and_claim};
use self::event_loop::UsbInbound;
use self::mailbox::{CallError, Client, Failure, mailbox};
use self::transfers::TransferSet;
use self::transfers::rusb_error_text;
use super::ftdi::{ControlPipe, FtdiOutbound, PipeFailure};
use super::{OpenOptions, Parts};
use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::proto::ControlRequest;
use crate::stats::{TransportInfo, TransportKind};

/// Size of the bulk-OUT transfer: a write larger than this goes out in pieces.
const OUT_CAPACITY: usize = 4096;

/// Opens the selected FTDI device, claims its interface and resets the chip.
pub(crate) fn open(selector: &Selector, options: &OpenOptions) -> Result<Parts<UsbInbound>> {
    let claimed = Arc::new(open_and_claim(
        selector,
        &options.usb_ids,
        options.interface,
    )?);
    let (chip, interface, mps) = (claimed.chip, claimed.interface, claimed.max_packet_size);
    let transfers = TransferSet::new(
        &claimed.handle,
        claimed.ep_in,
        claimed.ep_out,
        mps,
        options.transfers_in_flight,
        OUT_CAPACITY,
    )
    .map_err(|e| Error::Usb {
        operation: "allocating transfers",
        reason: e.to_string(),
    })?;
    let wake = Arc::new(Doorbell::new()?);
    let (client, server) = mailbox(wake.clone(), OUT_CAPACITY)?;
    let info = TransportInfo {
        kind: TransportKind::Usb,
        description: claimed.description(),
        chip: Some(chip),
        actual_baud: None,
        max_packet_size: Some(mps),
        transfers_in_flight: Some(options.transfers_in_flight),
        notes: Vec::new(),
    };
    let pipe = UsbPipe {
        claimed: claimed.clone(),
        mailbox: client,
        info,
    };
    let outbound = FtdiOutbound::new(pipe, chip, interface, options.control_timeout);
    // Synchronous control requests: the reader does not run yet.
    let notes = outbound.initialize()?;
    let inbound = UsbInbound::new(transfers, claimed, server, wake.clone(), mps);
    Ok(Parts {
        inbound,
        outbound: Box::new(outbound),
        wake,
        notes,
        thread_name: "ftdi-rt-usb-reader",
    })
}

/// Control and bulk OUT: synchronous libusb calls before the reader starts,
/// the reader's mailbox afterwards.
#[derive(Debug)]
struct UsbPipe {
    claimed: Arc<Claimed>,
    mailbox: Client,
    info: TransportInfo,
}

fn pipe_failure(f: Failure) -> PipeFailure {
    match f {
        Failure::Stall => PipeFailure::Stall,
        Failure::NoDevice => PipeFailure::NoDevice,
        Failure::TimedOut { .. } => PipeFailure::TimedOut,
        Failure::Other(code) => {
            PipeFailure::Other(format!("libusb status {code} ({})", rusb_error_text(code)))
        }
    }
}

fn call_error(
    e: CallError,
    request: Option<ControlRequest>,
    operation: &'static str,
    timeout: Duration,
) -> Error {
    match e {
        CallError::Stopped => Error::Disconnected,
        CallError::NoReply | CallError::NotStarted => Error::TimedOut {
            operation,
            after: timeout,
        },
        CallError::Failed(f) => pipe_failure(f).into_error(request, operation, timeout),
    }
}

fn rusb_error(
    e: rusb::Error,
    request: Option<ControlRequest>,
    operation: &'static str,
    timeout: Duration,
) -> Error {
    match e {
        rusb::Error::Pipe => PipeFailure::Stall.into_error(request, operation, timeout),
        rusb::Error::NoDevice => Error::Disconnected,
        rusb::Error::Timeout => Error::TimedOut {
            operation,
            after: timeout,
        },
        rusb::Error::Access => Error::PermissionDenied {
            device: operation.to_string(),
        },
        other => Error::Usb {
            operation,
            reason: other.to_string(),
        },
    }
}

impl ControlPipe for UsbPipe {
    fn control(
        &self,
        request: ControlRequest,
        data: &mut [u8],
        timeout: Duration,
    ) -> Result<usize> {
        if self.mailbox.reader_started() {
            let (n, reply) = self
                .mailbox
                .control(request, timeout)
                .map_err(|e| call_error(e, Some(request), "control request", timeout))?;
            let n = n.min(data.len());
            data[..n].copy_from_slice(&reply[..n]);
            return Ok(n);
        }
        let h = &self.claimed.handle;
        let (rt, r, v, i) = (
            request.request_type,
            request.request,
            request.value,
            request.index,
        );
        let result = if request.is_in() {
            let len = usize::from(request.length).min(data.len());
            h.read_control(rt, r, v, i, &mut data[..len], timeout)
        } else {
            h.write_control(rt, r, v, i, &[], timeout)
        };
        result.map_err(|e| rusb_error(e, Some(request), "control request", timeout))
    }

    fn bulk_out(&self, data: &[u8], timeout: Duration) -> Result<usize> {
        let data = &data[..data.len().min(OUT_CAPACITY)];
        if self.mailbox.reader_started() {
            return match self.mailbox.write(data, timeout) {
                Ok(n) => Ok(n),
                Err(CallError::Failed(Failure::TimedOut { transferred })) if transferred > 0 => {
                    Ok(transferred)
                }
                Err(e) => Err(call_error(e, None, "write", timeout)),
            };
        }
        self.claimed
            .handle
            .write_bulk(self.claimed.ep_out, data, timeout)
            .map_err(|e| rusb_error(e, None, "write", timeout))
    }

    fn info(&self) -> TransportInfo {
        self.info.clone()
    }
}
