//! libusb asynchronous transfers through `rusb::ffi`: with `sys`, the only
//! unsafe code in the crate.
//!
//! rusb wraps only libusb's synchronous API; keeping several bulk-IN
//! transfers in flight needs the asynchronous one. A [`TransferSet`] owns a
//! fixed set of transfers, allocated once at open: `N` single-packet bulk-IN
//! transfers, the bulk-OUT transfers (two: one is refilled while the other
//! is on the bus) and one control transfer. Their completion
//! callback runs inside `libusb_handle_events*` and only records that the
//! transfer finished and when; everything else happens in safe code.
//!
//! # Why this is sound
//! The whole argument lives in this module (this file and [`transfer`],
//! which holds one transfer's states):
//!
//! 1. **Nothing reaches memory libusb may write.** A transfer is [`Idle`]
//!    (ours) or [`Pending`](transfer::Pending) (libusb's, from a successful
//!    submit until its callback has run). Its buffer is a raw allocation,
//!    not a `Box`, and only an `Idle` lends it out, so no Rust reference to
//!    it exists while the kernel may write it. Only an `Idle` frees its
//!    memory (on drop); a `Pending` that is dropped leaks it.
//! 2. **What the transfers point to outlives them.** Each filled transfer
//!    points to the device handle, which owns the libusb context. The set
//!    owns an `Arc` of the claimed device ([`Claimed`]), frees its transfers
//!    in `Drop::drop` (before any field, that `Arc` included, is released),
//!    and if a transfer never comes back it leaks the transfer *and* a count
//!    of that `Arc`, so the handle is never closed under a pending transfer.
//!    No field order is involved.
//! 3. **The callback's writes race with nothing.** libusb runs callbacks only
//!    inside `libusb_handle_events*`, on the thread that calls it. A port of
//!    its own: the set is the only caller for its context
//!    ([`TransferSet::handle_events`], which takes `&mut self`). On a shared
//!    reader the context is the reader's ([`SharedContext`]) and every set in
//!    it lives on the reader thread, the only thread
//!    [`SharedContext::handle_events`] lets in (checked on every call): so a
//!    callback runs on the thread that owns the set, between that thread's
//!    uses of it, never inside a borrow of a buffer libusb may write (point 1).
//!    [`Claimed`] offers no libusb call that handles events (no synchronous
//!    transfers). The records the callback writes are `Cell`s, which keeps
//!    the set `!Sync`.

mod shared_context;
mod transfer;

pub(crate) use self::shared_context::SharedContext;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use rusb::UsbContext;
use rusb::ffi::{self, libusb_transfer};

use self::transfer::{Idle, Slot, from_code};
use super::claimed::Claimed;
use super::event_loop::{Finished, Polled, Transfers};
use super::mailbox::CONTROL_DATA;
use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::proto::ControlRequest;
use crate::realtime::memory::HotRegions;
use crate::time::Timestamp;

/// Bytes libusb allocates in front of a `libusb_transfer` (`libusb_alloc_transfer`:
/// backend private data, then `struct usbi_transfer`; about 160 bytes on Linux
/// in libusb 1.0.27, whose completion handling writes them). A bound with room
/// for other versions: it only widens the locked page range.
const LIBUSB_TRANSFER_PREFIX: usize = 512;

/// Bytes of a control setup packet.
pub(super) const SETUP: usize = 8;

/// The transfers of one claimed interface, and the poll set of its libusb
/// context (a port of its own: one context per open device, see `device`),
/// or the shared reader's context, whose events the reader handles.
#[derive(Debug)]
pub(crate) struct TransferSet {
    /// The IN transfers, then the OUT transfers, then the control transfer.
    slots: Vec<Slot>,
    ins: usize,
    outs: usize,
    /// libusb's pollfds, then the doorbell's (last); empty on a shared context.
    fds: Vec<libc::pollfd>,
    /// The shared reader's context, if the port is on one.
    shared: Option<Arc<SharedContext>>,
    /// Keeps the doorbell's descriptor in `fds` open.
    wake: Arc<Doorbell>,
    /// Keeps the handle (and its context) open while transfers exist.
    device: Arc<Claimed>,
}

// SAFETY: the set may move to another thread as a whole:
// - libusb allows its transfers, handles and contexts to be used from any
//   thread (libusb docs, "Multi-threaded applications");
// - the buffers and records are owned by the set alone (libusb aside, while
//   a transfer is pending), so moving the set moves their only owner;
// - the records' `Cell`s are written by callbacks, which run only inside
//   this set's `handle_events` on the thread that holds it (module docs,
//   point 3), so after a move they are written on the new thread only;
// - `Claimed` and `Doorbell` are Send and Sync.
// It is not Sync: `Cell` keeps it so, and nothing here needs sharing.
unsafe impl Send for TransferSet {}

impl TransferSet {
    /// Allocates `ins` bulk-IN transfers of one max packet each, `outs` OUT
    /// transfers of `out_capacity` bytes and the control transfer, and the
    /// poll set: libusb's descriptors (the device's usbfs fd, its event and
    /// timer fds, all created by now) plus `wake`'s. On a `shared` context
    /// there is no poll set: the shared reader waits on the context.
    pub(crate) fn new(
        device: Arc<Claimed>,
        ins: usize,
        outs: usize,
        out_capacity: usize,
        wake: Arc<Doorbell>,
        shared: Option<Arc<SharedContext>>,
    ) -> Result<TransferSet, TransferError> {
        let (ins, outs) = (ins.max(1), outs.max(1));
        let mut slots = Vec::with_capacity(ins + outs + 1);
        for _ in 0..ins {
            slots.push(Slot::Idle(Idle::new(device.max_packet_size)?));
        }
        for _ in 0..outs {
            slots.push(Slot::Idle(Idle::new(out_capacity)?));
        }
        slots.push(Slot::Idle(Idle::new(SETUP + CONTROL_DATA)?));
        let mut fds = Vec::new();
        if shared.is_none() {
            fds = pollfds(device.raw_context());
            fds.push(crate::sys::pollfd(wake.as_fd(), libc::POLLIN));
        }
        Ok(TransferSet {
            slots,
            ins,
            outs,
            fds,
            shared,
            wake,
            device,
        })
    }

    /// OUT transfer `k`'s slot, if there is one.
    fn out_slot(&mut self, k: usize) -> Option<&mut Slot> {
        (k < self.outs).then(|| &mut self.slots[self.ins + k])
    }

    fn control_slot(&self) -> usize {
        self.ins + self.outs
    }
}

impl Transfers for TransferSet {
    fn hot_memory(&mut self, regions: &mut HotRegions) {
        regions.add("transfer state", &self.slots[..]);
        regions.add("transport state", &self.fds[..]);
        regions.add("transport state", &*self.wake);
        for slot in &mut self.slots {
            // Before any submission every transfer is idle.
            let Slot::Idle(idle) = slot else { continue };
            // A fresh calloc may not be resident yet: write through it.
            idle.buf_mut().fill(0);
            regions.add("transfer buffers", idle.buf());
            regions.add("transfer state", idle.record());
            // libusb's record in front of the transfer, written on every reap.
            let raw = idle.libusb_address();
            regions.add_range(
                "transfer state",
                raw.saturating_sub(LIBUSB_TRANSFER_PREFIX),
                LIBUSB_TRANSFER_PREFIX + std::mem::size_of::<libusb_transfer>(),
            );
        }
    }

    fn poll(&mut self, timeout: Duration) -> io::Result<Polled> {
        if let Some(shared) = &self.shared {
            // On the shared reader (its only caller: a closing port's drain):
            // wait in libusb itself, which also reaps; a lost device shows in
            // the transfers' results.
            return shared
                .handle_events(timeout)
                .map(|()| Polled::default())
                .map_err(|e| io::Error::other(e.to_string()));
        }
        for fd in &mut self.fds {
            fd.revents = 0;
        }
        crate::sys::poll(&mut self.fds, Some(timeout))?;
        let libusb = self.fds.len() - 1;
        let mut polled = Polled::default();
        for fd in &mut self.fds[..libusb] {
            // On usbfs, POLLERR/POLLHUP mean the device is gone; libusb then
            // drops the descriptor from its own set so that it stops firing
            // (linux_usbfs.c, op_handle_events). Drop it from ours too, or
            // every later poll would return at once.
            if fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                fd.fd = -1;
                polled.device_gone = true;
            }
        }
        Ok(polled)
    }

    fn handle_events(&mut self) -> Result<(), TransferError> {
        match &self.shared {
            Some(shared) => shared.handle_events(Duration::ZERO),
            None => handle_events_on(self.device.context(), Duration::ZERO),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn back_off(&mut self, pause: Duration) {
        std::thread::sleep(pause);
    }

    fn in_count(&self) -> usize {
        self.ins
    }

    fn submit_in(&mut self, i: usize) -> Result<(), TransferError> {
        // Given back to ftdi_sio on a signal: a submission would claim the
        // interface again (`detached`).
        if self.device.released() {
            return Err(TransferError::Cancelled);
        }
        let (handle, endpoint) = (self.device.raw_handle(), self.device.ep_in);
        let slot = self.slots[..self.ins]
            .get_mut(i)
            .ok_or(TransferError::Unknown(
                rusb::constants::LIBUSB_ERROR_NOT_FOUND,
            ))?;
        // Timeout 0: wait as long as it takes (the chip sends a status
        // packet every latency period anyway).
        slot.submit(|t| t.fill_bulk(handle, endpoint, usize::MAX, 0))
    }

    fn take_in(&mut self, i: usize) -> Option<Finished<'_>> {
        let idle = self.slots[..self.ins].get_mut(i)?.take_finished()?;
        let (result, at) = idle.outcome();
        let n = *result.as_ref().unwrap_or(&0);
        Some(Finished {
            result,
            at,
            data: &idle.buf()[..n],
        })
    }

    fn clear_in_halt(&mut self) -> Result<(), TransferError> {
        // SAFETY: the set's open handle and an endpoint of the claimed
        // interface. libusb_clear_halt is a synchronous ioctl on usbfs; it
        // does not handle events, so no callback runs in it.
        let rc = unsafe { ffi::libusb_clear_halt(self.device.raw_handle(), self.device.ep_in) };
        if rc == 0 { Ok(()) } else { Err(from_code(rc)) }
    }

    fn out_count(&self) -> usize {
        self.outs
    }

    fn out_idle(&self, k: usize) -> bool {
        k < self.outs && self.slots[self.ins + k].is_idle()
    }

    fn submit_out(
        &mut self,
        k: usize,
        timeout_ms: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<(), TransferError> {
        if self.device.released() {
            return Err(TransferError::Cancelled);
        }
        let (handle, endpoint) = (self.device.raw_handle(), self.device.ep_out);
        let slot = self.out_slot(k).ok_or(TransferError::Unknown(
            rusb::constants::LIBUSB_ERROR_NOT_FOUND,
        ))?;
        slot.submit(|t| {
            let len = fill(t.buf_mut());
            t.fill_bulk(handle, endpoint, len, timeout_ms);
        })
    }

    fn take_out(&mut self, k: usize) -> Option<(Result<usize, TransferError>, usize)> {
        let idle = self.out_slot(k)?.take_finished()?;
        Some((idle.outcome().0, idle.actual()))
    }

    fn cancel_out(&mut self, k: usize) {
        if let Some(Slot::Pending(p)) = self.out_slot(k)
            && !p.done()
        {
            p.cancel();
        }
    }

    fn control_idle(&self) -> bool {
        self.slots[self.control_slot()].is_idle()
    }

    fn submit_control(
        &mut self,
        request: ControlRequest,
        timeout_ms: u32,
    ) -> Result<(), TransferError> {
        let handle = self.device.raw_handle();
        let i = self.control_slot();
        self.slots[i].submit(|t| t.fill_control(handle, request, timeout_ms))
    }

    fn take_control(&mut self) -> Option<Finished<'_>> {
        let i = self.control_slot();
        let idle = self.slots[i].take_finished()?;
        let (result, at) = idle.outcome();
        // libusb counts the data stage only; it sits after the setup packet.
        let n = (*result.as_ref().unwrap_or(&0)).min(CONTROL_DATA);
        Some(Finished {
            result,
            at,
            data: &idle.buf()[SETUP..SETUP + n],
        })
    }

    fn cancel_all(&mut self) {
        for slot in &self.slots {
            if let Slot::Pending(p) = slot
                && !p.done()
            {
                p.cancel();
            }
        }
    }

    fn any_pending(&self) -> bool {
        self.slots.iter().any(Slot::in_flight)
    }
}

impl Drop for TransferSet {
    fn drop(&mut self) {
        let mut leaked = 0;
        for slot in self.slots.drain(..) {
            match slot {
                // Freed here, while `self.device` still holds the handle open.
                Slot::Idle(idle) => drop(idle),
                Slot::Pending(pending) => match pending.finish() {
                    Ok(idle) => drop(idle),
                    // The owner could not reap it (a device that never
                    // answers the cancel): dropping a Pending leaks it.
                    Err(_pending) => leaked += 1,
                },
                Slot::Vacant => {}
            }
        }
        if leaked > 0 {
            log::error!(
                "leaking {leaked} USB transfer(s) still pending after cancellation; \
                 the device stays claimed until the process exits"
            );
            // Never close the handle under a pending transfer (point 2).
            std::mem::forget(self.device.clone());
        }
    }
}

/// Lets libusb reap and run completion callbacks on `context`, waiting at
/// most `timeout` (zero: without blocking). Callers make sure it runs on the
/// thread that owns the context's transfers (point 3).
pub(super) fn handle_events_on(
    context: &rusb::Context,
    timeout: Duration,
) -> Result<(), TransferError> {
    let wait = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 1 000 000: fits suseconds_t on every target.
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: an open context (`context` holds a reference on it); `wait` is
    // a valid timeval that outlives the call (zero: libusb looks without
    // blocking); `completed` may be null. Callbacks run here, on this thread,
    // which owns every transfer of the context (point 3).
    let rc = unsafe {
        ffi::libusb_handle_events_timeout_completed(
            context.as_raw(),
            (&wait as *const libc::timeval).cast(),
            std::ptr::null_mut(),
        )
    };
    if rc == 0 { Ok(()) } else { Err(from_code(rc)) }
}

/// The file descriptors libusb wants polled. Allocates: called at open.
pub(super) fn pollfds(context: *mut ffi::libusb_context) -> Vec<libc::pollfd> {
    let mut out = Vec::new();
    // SAFETY: an open context (the caller holds the device that owns it).
    // libusb returns null or a null-terminated array of pointers to
    // libusb_pollfd, valid until libusb_free_pollfds, which we call.
    unsafe {
        let list = ffi::libusb_get_pollfds(context);
        if list.is_null() {
            return out;
        }
        let mut i = 0;
        while !(*list.add(i)).is_null() {
            let p = &**list.add(i);
            out.push(libc::pollfd {
                fd: p.fd,
                events: p.events,
                revents: 0,
            });
            i += 1;
        }
        ffi::libusb_free_pollfds(list);
    }
    out
}

/// bcdDevice exactly as the descriptor has it. rusb only offers it decoded
/// as a BCD version, which folds non-BCD digits (0x0A00 reads back as
/// 0x1000, an FT-X), so the raw field is read through libusb.
pub(crate) fn raw_bcd_device(device: &rusb::Device<rusb::Context>) -> Option<u16> {
    let mut desc = std::mem::MaybeUninit::<ffi::libusb_device_descriptor>::uninit();
    // SAFETY: `device` holds a reference on the libusb device for the call;
    // libusb fills the whole descriptor on success (it copies the cached one).
    let rc = unsafe { ffi::libusb_get_device_descriptor(device.as_raw(), desc.as_mut_ptr()) };
    // SAFETY: initialised by libusb when it returns 0.
    (rc == 0).then(|| unsafe { desc.assume_init() }.bcdDevice)
}

#[cfg(test)]
mod tests;
