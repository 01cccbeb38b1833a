//! The userspace libusb driver.
//!
//! Opening ([`device`]) finds the FTDI device ([`list`]), reads and checks
//! its descriptors ([`descriptor`]), detaches ftdi_sio if it is bound and
//! claims the interface ([`claimed`]). Then the event loop ([`event_loop`]) starts, before the
//! chip is configured: from the first reset on, control requests and writes
//! from application threads reach it through a lock-free mailbox
//! ([`mailbox`](mod@mailbox)), which keeps every libusb lock off normal-priority threads,
//! and it alone drives libusb's transfers ([`transfers`]). It runs on a
//! short-lived opening thread while the shared FTDI layer configures the
//! chip, and moves to the realtime reader when that starts ([`inbound`]);
//! only then are the N single-packet bulk-IN transfers put in flight,
//! resubmitted as soon as they complete.
//!
//! On a shared [`Reader`](crate::Reader) ([`UsbHost`]) the port opens its
//! device in the reader's libusb context (`transfers::shared_context`), sharing the
//! device handle with the device's other channels there, and its loop moves
//! to the reader at once instead of to an opening thread: the reader alone
//! handles that context's events, for all its ports in one call per wakeup,
//! then gives each port's loop its turn ([`EventLoop::turn_ready`]).
//!
//! Writes are written behind: a write returns once its bytes are queued,
//! and the loop keeps up to [`OUT_TRANSFERS`] bulk-OUT transfers in flight,
//! so a stream of writes keeps the chip's TX FIFO fed. A flush waits until
//! the device has taken every byte; a failed OUT transfer is reported, with
//! the bytes it cost, by the next write or flush (see [`mailbox`](mod@mailbox)).
//!
//! A failed transfer is a [`crate::TransferError`] everywhere;
//! the FTDI layer turns it into the crate's error.
//!
//! Known limit, outside this crate: libusb's Linux backend `calloc`s the
//! URB array on every submit and frees it on reap, so the reader performs
//! one small C-heap allocation per packet inside libusb (from its own
//! thread's cache; no lock shared with other threads in glibc's tcache).
//! The Rust side allocates nothing per packet.

mod claimed;
pub(crate) mod descriptor;
mod detached;
mod device;
mod event_loop;
mod identity;
mod inbound;
mod lease;
mod libusb;
mod list;
mod mailbox;
mod reopen;
mod transfers;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use event_loop::EventLoop;
pub use identity::{Identity, IdentityWarning};
pub use list::{DeviceInfo, FTDI_VID, Selector, UsbId, list};
pub(crate) use reopen::{UsbReopen, identify};
pub(crate) use transfers::SharedContext;
pub(crate) use transfers::TransferSet;

use self::device::open_and_claim;
use self::inbound::UsbInbound;
use self::mailbox::{Client, REPLY_GRACE, mailbox};
use super::ftdi::{ControlPipe, FtdiOutbound, WriteError};
use super::{Hosted, OpenOptions, Parts};
use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::error::{Error, Result};
use crate::proto::ControlRequest;
use crate::stats::{TransportInfo, TransportKind};

/// Size of one bulk-OUT transfer: a write larger than this goes out in pieces.
const OUT_CAPACITY: usize = 4096;
/// Bulk-OUT transfers in flight at most: two, so that the chip's TX FIFO is
/// refilled from the second while the event loop reaps the first and
/// refills it. With one, the next transfer must reach the chip within a
/// completion round trip: an FT232R's 128-byte TX FIFO lasts 0.43 ms at
/// 3 MBd. Measured in the timing rig at 3 MBd (`baud-pacing`, 0.5 s of
/// 4 KiB writes): one transfer left the FT232R's line idle 10 µs, two never.
const OUT_TRANSFERS: usize = 2;
/// The write queue: bytes written wait here for a free OUT transfer. One
/// transfer's worth: the writer refills it while a transfer is on the bus.
const OUT_QUEUE: usize = OUT_CAPACITY;

/// A shared reader as the libusb transport sees it: the context its ports
/// open their devices in, and the thread their event loops run on.
pub(crate) trait UsbHost {
    /// The reader's libusb context (created with its first libusb port).
    ///
    /// # Errors
    /// libusb cannot initialise, or the reader has ended.
    fn usb_context(&self) -> Result<Arc<SharedContext>>;

    /// Moves `event_loop` (its doorbell: `wake`) onto the reader, which
    /// serves its mailbox from now on; returns the guard of its place there.
    ///
    /// # Errors
    /// The reader has ended.
    fn host(&self, event_loop: EventLoop<TransferSet>, wake: Arc<Doorbell>) -> Result<Hosted>;
}

/// Opens the selected FTDI device, claims its interface and resets the chip;
/// on `host`'s context and thread if given (a shared reader), else on its own.
pub(crate) fn open(
    selector: &Selector,
    options: &OpenOptions,
    host: Option<&dyn UsbHost>,
) -> Result<Parts<UsbInbound<TransferSet>>> {
    let shared = host.map(UsbHost::usb_context).transpose()?;
    let claimed = Arc::new(open_and_claim(
        selector,
        &options.usb_ids,
        options.interface,
        shared.as_deref(),
    )?);
    let (chip, interface, mps) = (claimed.chip, claimed.interface, claimed.max_packet_size);
    let info = TransportInfo {
        kind: TransportKind::Usb,
        description: claimed.description(),
        chip: Some(chip),
        actual_baud: None,
        max_packet_size: Some(mps),
        transfers_in_flight: Some(options.transfers_in_flight),
        notes: Vec::new(),
    };
    let wake = Arc::new(Doorbell::new()?);
    let transfers = TransferSet::new(
        claimed,
        options.transfers_in_flight,
        OUT_TRANSFERS,
        OUT_CAPACITY,
        wake.clone(),
        shared,
    )
    .map_err(|source| Error::Transfer {
        operation: "allocating transfers",
        source,
    })?;
    let (client, server) = mailbox(wake.clone(), OUT_QUEUE, REPLY_GRACE)?;
    let event_loop = EventLoop::new(transfers, server, wake.clone());
    // From here on the event loop serves every control request and write.
    let inbound = match host {
        None => UsbInbound::start(event_loop, wake.clone(), mps)?,
        Some(host) => UsbInbound::hosted(host.host(event_loop, wake.clone())?, mps),
    };
    let pipe = UsbPipe {
        mailbox: client,
        info,
    };
    let outbound = FtdiOutbound::new(pipe, chip, interface, options.control_timeout);
    let notes = outbound.initialize()?;
    Ok(Parts {
        inbound,
        outbound: Box::new(outbound),
        wake,
        notes,
        thread_name: "ftdi-rt-usb-reader",
    })
}

/// Control and bulk OUT: the event loop's mailbox, the only way to libusb.
#[derive(Debug)]
struct UsbPipe {
    mailbox: Client,
    info: TransportInfo,
}

impl ControlPipe for UsbPipe {
    fn control(
        &self,
        request: ControlRequest,
        data: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, TransferError> {
        let (n, reply) = self.mailbox.control(request, timeout)?;
        let n = n.min(data.len()).min(reply.len());
        data[..n].copy_from_slice(&reply[..n]);
        Ok(n)
    }

    fn bulk_out(&self, data: &[u8], timeout: Duration) -> Result<usize, WriteError> {
        self.mailbox.write(data, timeout)
    }

    fn flush(&self, timeout: Duration) -> Result<(), WriteError> {
        self.mailbox.flush(timeout)
    }

    fn info(&self) -> TransportInfo {
        self.info.clone()
    }
}
