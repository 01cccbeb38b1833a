//! One libusb transfer and its states: [`Idle`] (ours) and [`Pending`]
//! (libusb's until its callback has run), the callback, and what libusb's
//! statuses and codes mean. The soundness argument is in the parent
//! module's docs; the points cited here are its.

use std::cell::Cell;
use std::ptr::NonNull;

use rusb::ffi::{self, libusb_transfer};

use super::SETUP;
use crate::error::TransferError;
use crate::proto::ControlRequest;
use crate::time::Timestamp;
use crate::transport::usb::mailbox::CONTROL_DATA;

/// A libusb transfer status (`libusb_transfer_status`) as a result.
pub(super) fn from_status(status: i32, actual: usize) -> Result<usize, TransferError> {
    use rusb::constants as c;
    match status {
        c::LIBUSB_TRANSFER_COMPLETED => Ok(actual),
        c::LIBUSB_TRANSFER_ERROR => Err(TransferError::Fault),
        c::LIBUSB_TRANSFER_TIMED_OUT => Err(TransferError::TimedOut {
            transferred: actual,
        }),
        c::LIBUSB_TRANSFER_CANCELLED => Err(TransferError::Cancelled),
        c::LIBUSB_TRANSFER_STALL => Err(TransferError::Stall),
        c::LIBUSB_TRANSFER_NO_DEVICE => Err(TransferError::NoDevice),
        c::LIBUSB_TRANSFER_OVERFLOW => Err(TransferError::Overflow),
        other => Err(TransferError::Unknown(other)),
    }
}

/// A libusb error code (`libusb_error`, negative) as a transfer error.
pub(super) fn from_code(code: i32) -> TransferError {
    use rusb::constants as c;
    match code {
        c::LIBUSB_ERROR_NO_DEVICE => TransferError::NoDevice,
        c::LIBUSB_ERROR_PIPE => TransferError::Stall,
        c::LIBUSB_ERROR_TIMEOUT => TransferError::TimedOut { transferred: 0 },
        c::LIBUSB_ERROR_OVERFLOW => TransferError::Overflow,
        other => TransferError::Unknown(other),
    }
}

/// What a transfer's callback records. Written by the callback, read by the
/// set, both on the thread that holds the set (see the parent module's docs, point 3).
#[derive(Debug, Default)]
pub(super) struct Record {
    pub(super) done: Cell<bool>,
    at_ns: Cell<u64>,
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock of [`Timestamp`]. Cannot
/// panic: it runs inside the callback, called from C.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Runs inside `libusb_handle_events*`. Must not unwind (it is called from
/// C): it only stores a flag and a timestamp.
extern "system" fn on_complete(transfer: *mut libusb_transfer) {
    // SAFETY: libusb passes one of our transfers, filled with `user_data`
    // pointing to its `Record`, which is freed only with the transfer itself
    // and only while it is idle (point 1). The `Cell` writes
    // happen on the thread that holds the set mutably (point 3).
    let record = unsafe { &*((*transfer).user_data as *const Record) };
    record.at_ns.set(now_ns());
    record.done.set(true);
}

/// The memory of one transfer: the libusb transfer, its data buffer and the
/// record its callback writes. `Copy` only so that a state change can hand
/// it on: exactly one [`Idle`] or [`Pending`] holds it at any time.
#[derive(Clone, Copy, Debug)]
pub(super) struct Parts {
    raw: NonNull<libusb_transfer>,
    buf: NonNull<[u8]>,
    pub(super) record: NonNull<Record>,
}

/// A transfer libusb does not own: its buffer may be borrowed, it may be
/// filled and submitted, and dropping it frees its memory.
#[derive(Debug)]
pub(super) struct Idle(pub(super) Parts);

/// A transfer libusb owns until its callback has run. It lends nothing out,
/// and dropping it leaks its memory rather than free what the kernel may
/// still write.
#[derive(Debug)]
pub(super) struct Pending(pub(super) Parts);

impl Idle {
    pub(super) fn new(len: usize) -> Result<Idle, TransferError> {
        // SAFETY: 0 isochronous packets; libusb returns null on allocation failure.
        let raw = NonNull::new(unsafe { ffi::libusb_alloc_transfer(0) })
            .ok_or(TransferError::Unknown(rusb::constants::LIBUSB_ERROR_NO_MEM))?;
        let buf = NonNull::from(Box::leak(vec![0u8; len].into_boxed_slice()));
        let record = NonNull::from(Box::leak(Box::<Record>::default()));
        Ok(Idle(Parts { raw, buf, record }))
    }

    pub(super) fn buf(&self) -> &[u8] {
        // SAFETY: an idle transfer's buffer is ours alone (module docs, point
        // 1); the borrow is tied to `&self`, so the transfer cannot be
        // submitted (which takes it by value) while it lasts.
        unsafe { self.0.buf.as_ref() }
    }

    pub(super) fn buf_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `buf`, and `&mut self` makes the borrow unique.
        unsafe { self.0.buf.as_mut() }
    }

    /// Where libusb's transfer record starts (its private data precedes it).
    pub(super) fn libusb_address(&self) -> usize {
        self.0.raw.as_ptr() as usize
    }

    pub(super) fn record(&self) -> &Record {
        // SAFETY: the record lives as long as the transfer (freed in Drop).
        unsafe { self.0.record.as_ref() }
    }

    /// How the last submission ended, and when the callback saw it.
    pub(super) fn outcome(&self) -> (Result<usize, TransferError>, Timestamp) {
        // SAFETY: an idle transfer is not touched by libusb; its fields are
        // the ones its last completion left.
        let (status, actual) = unsafe {
            let t = self.0.raw.as_ref();
            (t.status, t.actual_length)
        };
        let actual = usize::try_from(actual).unwrap_or(0).min(self.buf().len());
        (
            from_status(status, actual),
            Timestamp::from_nanos(self.record().at_ns.get()),
        )
    }

    /// The bytes its last submission moved, whatever its status (a
    /// cancelled or timed-out OUT transfer may have sent some).
    pub(super) fn actual(&self) -> usize {
        // SAFETY: as in `outcome`.
        let actual = unsafe { self.0.raw.as_ref() }.actual_length;
        usize::try_from(actual).unwrap_or(0).min(self.buf().len())
    }

    /// Submits after `fill` set the transfer up; the transfer is libusb's on success.
    fn submit(self) -> Result<Pending, (Idle, TransferError)> {
        self.record().done.set(false);
        // SAFETY: the transfer was filled with a handle kept open by the set,
        // this transfer's buffer and length, `on_complete` and this
        // transfer's record; all stay allocated while it is pending (points 1, 2).
        let rc = unsafe { ffi::libusb_submit_transfer(self.0.raw.as_ptr()) };
        if rc == 0 {
            let parts = self.0;
            std::mem::forget(self);
            Ok(Pending(parts))
        } else {
            Err((self, from_code(rc)))
        }
    }

    /// Fills the transfer as a bulk transfer of the buffer's first `len`
    /// bytes on `endpoint`.
    pub(super) fn fill_bulk(
        &mut self,
        handle: *mut ffi::libusb_device_handle,
        endpoint: u8,
        len: usize,
        timeout_ms: u32,
    ) {
        let len = len.min(self.0.buf.len());
        let record = self.0.record.as_ptr().cast();
        // Straight from the allocation: no reference outlives the submit.
        let buf = self.0.buf.as_ptr().cast::<u8>();
        // SAFETY: fills our own idle transfer with the set's open handle, an
        // endpoint of the claimed interface, our buffer (valid for `len`
        // bytes, which fits an i32: buffers are at most OUT_CAPACITY) and
        // our record.
        unsafe {
            ffi::libusb_fill_bulk_transfer(
                self.0.raw.as_ptr(),
                handle,
                endpoint,
                buf,
                len as i32,
                on_complete,
                record,
                timeout_ms,
            );
        }
    }

    /// Fills the transfer as `request`; an IN request reads up to its
    /// wLength (at most [`CONTROL_DATA`]) bytes.
    pub(super) fn fill_control(
        &mut self,
        handle: *mut ffi::libusb_device_handle,
        request: ControlRequest,
        timeout_ms: u32,
    ) {
        let length = request.length.min(CONTROL_DATA as u16);
        let record = self.0.record.as_ptr().cast();
        debug_assert!(self.0.buf.len() >= SETUP + CONTROL_DATA);
        let buf = self.0.buf.as_ptr().cast::<u8>();
        // SAFETY: the buffer holds SETUP + CONTROL_DATA bytes (allocated so
        // in `TransferSet::new`), room for the setup packet and a data stage
        // of `length` bytes; the rest as in `fill_bulk`.
        unsafe {
            ffi::libusb_fill_control_setup(
                buf,
                request.request_type,
                request.request,
                request.value,
                request.index,
                length,
            );
            ffi::libusb_fill_control_transfer(
                self.0.raw.as_ptr(),
                handle,
                buf,
                on_complete,
                record,
                timeout_ms,
            );
        }
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        // SAFETY: idle, so libusb does not hold it; allocated by
        // libusb_alloc_transfer and freed once, here. libusb_free_transfer
        // reads the transfer's device handle (for logging), which the set
        // keeps open until its transfers are freed (point 2). The buffer and
        // record came from `Box::leak` in `new` and are released once, here.
        unsafe {
            ffi::libusb_free_transfer(self.0.raw.as_ptr());
            drop(Box::from_raw(self.0.buf.as_ptr()));
            drop(Box::from_raw(self.0.record.as_ptr()));
        }
    }
}

impl Pending {
    pub(super) fn done(&self) -> bool {
        // SAFETY: the record lives as long as the transfer (never freed while pending).
        unsafe { self.0.record.as_ref() }.done.get()
    }

    /// Back to idle once the callback has run; libusb no longer touches it then.
    pub(super) fn finish(self) -> Result<Idle, Pending> {
        if self.done() {
            Ok(Idle(self.0))
        } else {
            Err(self)
        }
    }

    pub(super) fn cancel(&self) {
        // SAFETY: the transfer is ours and was submitted; cancelling one that
        // completes at the same time is allowed (libusb returns NOT_FOUND).
        unsafe { ffi::libusb_cancel_transfer(self.0.raw.as_ptr()) };
    }
}

/// One transfer of the set. `Vacant` exists only during a state change.
#[derive(Debug)]
pub(super) enum Slot {
    Idle(Idle),
    Pending(Pending),
    Vacant,
}

impl Slot {
    pub(super) fn is_idle(&self) -> bool {
        matches!(self, Slot::Idle(_))
    }

    /// Fills and submits an idle transfer; a busy one is refused.
    pub(super) fn submit(&mut self, fill: impl FnOnce(&mut Idle)) -> Result<(), TransferError> {
        match std::mem::replace(self, Slot::Vacant) {
            Slot::Idle(mut idle) => {
                fill(&mut idle);
                match idle.submit() {
                    Ok(pending) => {
                        *self = Slot::Pending(pending);
                        Ok(())
                    }
                    Err((idle, e)) => {
                        *self = Slot::Idle(idle);
                        Err(e)
                    }
                }
            }
            busy => {
                *self = busy;
                Err(TransferError::Unknown(rusb::constants::LIBUSB_ERROR_BUSY))
            }
        }
    }

    /// The transfer, idle again, if it was pending and has finished since.
    pub(super) fn take_finished(&mut self) -> Option<&Idle> {
        if !matches!(self, Slot::Pending(p) if p.done()) {
            return None;
        }
        if let Slot::Pending(pending) = std::mem::replace(self, Slot::Vacant) {
            *self = match pending.finish() {
                Ok(idle) => Slot::Idle(idle),
                Err(pending) => Slot::Pending(pending),
            };
        }
        match self {
            Slot::Idle(idle) => Some(idle),
            _ => None,
        }
    }

    /// libusb still owns it (submitted, callback not yet run).
    pub(super) fn in_flight(&self) -> bool {
        matches!(self, Slot::Pending(p) if !p.done())
    }
}
