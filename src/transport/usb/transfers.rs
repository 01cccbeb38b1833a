//! libusb asynchronous transfers through `rusb::ffi`: with `sys.rs`, the only
//! unsafe code in the crate.
//!
//! rusb wraps only libusb's synchronous API; keeping several bulk-IN
//! transfers in flight needs the asynchronous one. A [`TransferSet`] owns a
//! fixed set of transfers and their buffers, allocated once at open: `N`
//! single-packet bulk-IN transfers, one bulk-OUT and one control transfer.
//! Their completion callback runs inside `libusb_handle_events*` on the
//! reader thread and only records status, length and a timestamp in the
//! transfer's [`Slot`]; everything else happens in safe code afterwards.
//!
//! libusb's rule: a transfer must not be freed (nor its buffer) while it is
//! pending. [`TransferSet::cancel_all`] plus reaping until
//! [`TransferSet::any_pending`] is false does that; if a transfer never comes
//! back, `Drop` leaks it rather than free memory the kernel may still write.

use std::cell::Cell;
use std::ptr::NonNull;

use rusb::UsbContext;
use rusb::ffi::{self, libusb_transfer};

use crate::proto::ControlRequest;
use crate::realtime::memory::HotRegions;
use crate::sys::monotonic_ns;

/// libusb's status codes for a finished transfer (libusb.h).
pub(crate) mod status {
    pub(crate) const COMPLETED: i32 = rusb::constants::LIBUSB_TRANSFER_COMPLETED;
    pub(crate) const ERROR: i32 = rusb::constants::LIBUSB_TRANSFER_ERROR;
    pub(crate) const TIMED_OUT: i32 = rusb::constants::LIBUSB_TRANSFER_TIMED_OUT;
    pub(crate) const CANCELLED: i32 = rusb::constants::LIBUSB_TRANSFER_CANCELLED;
    pub(crate) const STALL: i32 = rusb::constants::LIBUSB_TRANSFER_STALL;
    pub(crate) const NO_DEVICE: i32 = rusb::constants::LIBUSB_TRANSFER_NO_DEVICE;
    pub(crate) const OVERFLOW: i32 = rusb::constants::LIBUSB_TRANSFER_OVERFLOW;
}

/// libusb's `LIBUSB_ERROR_NO_DEVICE` return code.
pub(crate) const ERROR_NO_DEVICE: i32 = rusb::constants::LIBUSB_ERROR_NO_DEVICE;

/// libusb's name for an error code (static strings: no allocation).
pub(crate) fn rusb_error_text(code: i32) -> &'static str {
    // SAFETY: libusb_error_name returns a pointer to a static, NUL-terminated
    // ASCII string for any input.
    let name = unsafe { std::ffi::CStr::from_ptr(rusb::ffi::libusb_error_name(code)) };
    name.to_str().unwrap_or("LIBUSB_ERROR_OTHER")
}

/// Bytes libusb allocates in front of a `libusb_transfer` (`libusb_alloc_transfer`:
/// backend private data, then `struct usbi_transfer`; about 160 bytes on Linux
/// in libusb 1.0.27, whose completion handling writes them). A bound with room
/// for other versions: it only widens the locked page range.
const LIBUSB_TRANSFER_PREFIX: usize = 512;

/// Bytes of a control setup packet.
const SETUP: usize = 8;
/// Largest control data stage used (GET_MODEM_STATUS: 2 bytes).
pub(crate) const CONTROL_DATA: usize = 8;

/// What a transfer's callback recorded. Only touched on the reader thread
/// (the callback runs inside handle_events there), hence plain `Cell`s.
#[derive(Debug, Default)]
struct Slot {
    pending: Cell<bool>,
    done: Cell<bool>,
    status: Cell<i32>,
    actual: Cell<i32>,
    at_ns: Cell<u64>,
}

/// The record of a finished transfer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Done {
    pub(crate) status: i32,
    pub(crate) actual: usize,
    pub(crate) at_ns: u64,
}

/// Runs inside `libusb_handle_events*` on the reader thread. Must not unwind
/// (it is called from C) and does nothing that could panic.
extern "system" fn on_complete(transfer: *mut libusb_transfer) {
    // SAFETY: libusb passes the transfer it completed; it is one of ours, and
    // its `user_data` points to the `Slot` boxed next to it in the
    // TransferSet, which outlives every pending transfer (see Drop).
    let (slot, status, actual) = unsafe {
        let t = &*transfer;
        (&*(t.user_data as *const Slot), t.status, t.actual_length)
    };
    slot.at_ns.set(monotonic_ns());
    slot.status.set(status);
    slot.actual.set(actual);
    slot.pending.set(false);
    slot.done.set(true);
}

/// One libusb transfer with its buffer and slot.
#[derive(Debug)]
struct Transfer {
    raw: NonNull<libusb_transfer>,
    buf: Box<[u8]>,
    slot: Box<Slot>,
}

impl Transfer {
    fn new(len: usize) -> Result<Transfer, rusb::Error> {
        // SAFETY: 0 isochronous packets; libusb returns null on allocation failure.
        let raw = unsafe { ffi::libusb_alloc_transfer(0) };
        Ok(Transfer {
            raw: NonNull::new(raw).ok_or(rusb::Error::NoMem)?,
            buf: vec![0u8; len].into_boxed_slice(),
            slot: Box::default(),
        })
    }

    fn user_data(&self) -> *mut std::ffi::c_void {
        (&*self.slot as *const Slot).cast_mut().cast()
    }

    /// Submits after the caller filled the transfer; records it as pending.
    fn submit(&self) -> Result<(), i32> {
        self.slot.done.set(false);
        // SAFETY: the transfer was filled with our buffer, callback and slot,
        // all owned by the TransferSet and kept alive while it is pending.
        let rc = unsafe { ffi::libusb_submit_transfer(self.raw.as_ptr()) };
        if rc == 0 {
            self.slot.pending.set(true);
            Ok(())
        } else {
            Err(rc)
        }
    }

    fn cancel(&self) {
        if self.slot.pending.get() {
            // SAFETY: the transfer is ours and pending; cancelling a transfer
            // that completes concurrently is allowed (libusb returns NOT_FOUND).
            unsafe { ffi::libusb_cancel_transfer(self.raw.as_ptr()) };
        }
    }

    fn take_done(&self) -> Option<Done> {
        if !self.slot.done.get() {
            return None;
        }
        self.slot.done.set(false);
        Some(Done {
            status: self.slot.status.get(),
            actual: usize::try_from(self.slot.actual.get()).unwrap_or(0),
            at_ns: self.slot.at_ns.get(),
        })
    }
}

/// The transfers of one open interface.
#[derive(Debug)]
pub(crate) struct TransferSet {
    context: *mut ffi::libusb_context,
    handle: *mut ffi::libusb_device_handle,
    ep_in: u8,
    ep_out: u8,
    /// The IN transfers, then the OUT transfer, then the control transfer:
    /// one vector so that `Drop` can leak all of them at once if it must.
    all: Vec<Transfer>,
    ins: usize,
}

// SAFETY: the raw pointers are libusb objects that libusb allows to be used
// from any thread; the set is built on the opening thread and then used by
// the reader thread only (it is moved there before any transfer is submitted).
unsafe impl Send for TransferSet {}

impl TransferSet {
    /// Allocates `ins` bulk-IN transfers of `max_packet` bytes, and the OUT
    /// and control transfers. The device handle must outlive the set (the
    /// caller keeps an `Arc` to it next to the set).
    pub(crate) fn new(
        handle: &rusb::DeviceHandle<rusb::Context>,
        ep_in: u8,
        ep_out: u8,
        max_packet: usize,
        ins: usize,
        out_capacity: usize,
    ) -> Result<TransferSet, rusb::Error> {
        let mut all = (0..ins)
            .map(|_| Transfer::new(max_packet))
            .collect::<Result<Vec<_>, _>>()?;
        all.push(Transfer::new(out_capacity)?);
        all.push(Transfer::new(SETUP + CONTROL_DATA)?);
        Ok(TransferSet {
            context: handle.context().as_raw(),
            handle: handle.as_raw(),
            ep_in,
            ep_out,
            all,
            ins,
        })
    }

    /// Before any submission: writes through the buffers (a fresh calloc may
    /// not be resident) and reports what the reader touches per completion:
    /// the buffers, the slots the callback writes, the transfer table and
    /// libusb's own transfer records, which it updates on every reap.
    pub(crate) fn hot_memory(&mut self, regions: &mut HotRegions) {
        regions.add("transfer state", &self.all[..]);
        for t in &mut self.all {
            t.buf.fill(0);
            regions.add("transfer buffers", &t.buf[..]);
            regions.add("transfer state", &*t.slot);
            let raw = t.raw.as_ptr() as usize;
            regions.add_range(
                "transfer state",
                raw.saturating_sub(LIBUSB_TRANSFER_PREFIX),
                LIBUSB_TRANSFER_PREFIX + std::mem::size_of::<libusb_transfer>(),
            );
        }
    }

    pub(crate) fn in_count(&self) -> usize {
        self.ins
    }

    fn out(&self) -> &Transfer {
        &self.all[self.ins]
    }

    fn control(&self) -> &Transfer {
        &self.all[self.ins + 1]
    }

    /// Fills transfer `i` as a bulk transfer of its first `len` bytes on
    /// `endpoint` and submits it.
    fn submit_bulk(
        &mut self,
        i: usize,
        endpoint: u8,
        len: usize,
        timeout_ms: u32,
    ) -> Result<(), i32> {
        let handle = self.handle;
        let t = &mut self.all[i];
        let len = len.min(t.buf.len()) as i32;
        // SAFETY: fills our own transfer with our handle, an endpoint of the
        // claimed interface, our buffer (valid for `len` bytes) and our slot;
        // all live as long as the set, which outlives the pending transfer.
        unsafe {
            ffi::libusb_fill_bulk_transfer(
                t.raw.as_ptr(),
                handle,
                endpoint,
                t.buf.as_mut_ptr(),
                len,
                on_complete,
                t.user_data(),
                timeout_ms,
            );
        }
        t.submit()
    }

    /// (Re)submits bulk-IN transfer `i` for one max packet (timeout 0: wait
    /// as long as it takes). Returns libusb's error code on failure.
    pub(crate) fn submit_in(&mut self, i: usize) -> Result<(), i32> {
        let i = i.min(self.ins - 1);
        self.submit_bulk(i, self.ep_in, usize::MAX, 0)
    }

    /// Buffer of the OUT transfer, to be filled before [`submit_out`](Self::submit_out).
    pub(crate) fn out_buffer(&mut self) -> &mut [u8] {
        let i = self.ins;
        &mut self.all[i].buf
    }

    pub(crate) fn out_idle(&self) -> bool {
        let slot = &self.out().slot;
        !slot.pending.get() && !slot.done.get()
    }

    /// Submits the first `len` bytes of the OUT buffer.
    pub(crate) fn submit_out(&mut self, len: usize, timeout_ms: u32) -> Result<(), i32> {
        self.submit_bulk(self.ins, self.ep_out, len, timeout_ms)
    }

    pub(crate) fn control_idle(&self) -> bool {
        let slot = &self.control().slot;
        !slot.pending.get() && !slot.done.get()
    }

    /// Submits a control request; an IN request reads up to its wLength
    /// (at most [`CONTROL_DATA`]) bytes.
    pub(crate) fn submit_control(
        &mut self,
        request: ControlRequest,
        timeout_ms: u32,
    ) -> Result<(), i32> {
        let (handle, i) = (self.handle, self.ins + 1);
        let t = &mut self.all[i];
        let length = request.length.min(CONTROL_DATA as u16);
        // SAFETY: the buffer holds SETUP + CONTROL_DATA bytes, enough for the
        // setup packet and a data stage of `length` bytes; the rest as in submit_in.
        unsafe {
            ffi::libusb_fill_control_setup(
                t.buf.as_mut_ptr(),
                request.request_type,
                request.request,
                request.value,
                request.index,
                length,
            );
            ffi::libusb_fill_control_transfer(
                t.raw.as_ptr(),
                handle,
                t.buf.as_mut_ptr(),
                on_complete,
                t.user_data(),
                timeout_ms,
            );
        }
        t.submit()
    }

    /// The finished IN transfer `i`, if it finished, and its bytes.
    pub(crate) fn take_in(&self, i: usize) -> Option<(Done, &[u8])> {
        let t = self.all.get(i).filter(|_| i < self.ins)?;
        t.take_done()
            .map(|d| (d, &t.buf[..d.actual.min(t.buf.len())]))
    }

    /// The finished OUT transfer, if it finished.
    pub(crate) fn take_out(&self) -> Option<Done> {
        self.out().take_done()
    }

    /// The finished control transfer, if it finished, and its data stage.
    pub(crate) fn take_control(&self) -> Option<(Done, &[u8])> {
        let t = self.control();
        t.take_done()
            .map(|d| (d, &t.buf[SETUP..SETUP + d.actual.min(CONTROL_DATA)]))
    }

    /// Runs libusb's event handling once without blocking: reaps completed
    /// URBs and fires their callbacks (on this thread), handles timeouts.
    pub(crate) fn handle_events(&self) -> i32 {
        let zero = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: our context; a zero timeval makes libusb poll without
        // blocking; `completed` may be null.
        unsafe {
            ffi::libusb_handle_events_timeout_completed(
                self.context,
                (&zero as *const libc::timeval).cast(),
                std::ptr::null_mut(),
            )
        }
    }

    /// The file descriptors libusb wants polled (the device's usbfs fd, its
    /// event and timer fds). Allocates: call once, before the loop.
    pub(crate) fn pollfds(&self) -> Vec<libc::pollfd> {
        let mut out = Vec::new();
        // SAFETY: libusb returns a null-terminated array of pointers to
        // libusb_pollfd, valid until libusb_free_pollfds, which we call.
        unsafe {
            let list = ffi::libusb_get_pollfds(self.context);
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

    /// Asks libusb to cancel every pending transfer; they complete (as
    /// CANCELLED, or whatever happened first) through `handle_events`.
    pub(crate) fn cancel_all(&self) {
        for t in &self.all {
            t.cancel();
        }
    }

    pub(crate) fn any_pending(&self) -> bool {
        self.all.iter().any(|t| t.slot.pending.get())
    }
}

impl Drop for TransferSet {
    fn drop(&mut self) {
        if self.any_pending() {
            // The owner could not reap everything (a device that never
            // answers the cancel). Freeing now would let the kernel write into
            // freed memory: leak the transfers and their buffers instead.
            log::error!("leaking USB transfers that are still pending after cancellation");
            std::mem::forget(std::mem::take(&mut self.all));
            return;
        }
        for t in &self.all {
            // SAFETY: not pending (checked above), allocated by
            // libusb_alloc_transfer, freed exactly once here.
            unsafe { ffi::libusb_free_transfer(t.raw.as_ptr()) };
        }
    }
}
