//! The transfer states and libusb's codes, without a device.

use super::transfer::{Idle, Pending, Slot, from_code, from_status};
use crate::error::TransferError;

#[test]
fn libusb_statuses_and_codes_map_to_transfer_errors() {
    use rusb::constants as c;
    assert_eq!(from_status(c::LIBUSB_TRANSFER_COMPLETED, 7), Ok(7));
    let failures = [
        (c::LIBUSB_TRANSFER_ERROR, TransferError::Fault),
        (
            c::LIBUSB_TRANSFER_TIMED_OUT,
            TransferError::TimedOut { transferred: 7 },
        ),
        (c::LIBUSB_TRANSFER_CANCELLED, TransferError::Cancelled),
        (c::LIBUSB_TRANSFER_STALL, TransferError::Stall),
        (c::LIBUSB_TRANSFER_NO_DEVICE, TransferError::NoDevice),
        (c::LIBUSB_TRANSFER_OVERFLOW, TransferError::Overflow),
        (42, TransferError::Unknown(42)),
    ];
    for (status, e) in failures {
        assert_eq!(from_status(status, 7), Err(e), "status {status}");
    }
    assert_eq!(
        from_code(c::LIBUSB_ERROR_NO_DEVICE),
        TransferError::NoDevice
    );
    assert_eq!(from_code(c::LIBUSB_ERROR_PIPE), TransferError::Stall);
    assert_eq!(
        from_code(c::LIBUSB_ERROR_BUSY),
        TransferError::Unknown(c::LIBUSB_ERROR_BUSY)
    );
}

/// The state machine without a device: libusb_alloc_transfer and
/// libusb_free_transfer need no context for a transfer never filled.
#[test]
fn only_a_finished_transfer_comes_back_idle_and_is_freed() {
    let idle = Idle::new(64).unwrap();
    assert_eq!(idle.buf().len(), 64);
    // A fresh transfer reads as completed with nothing transferred.
    assert_eq!(idle.outcome().0, Ok(0));
    let parts = idle.0;
    std::mem::forget(idle);
    // As if submitted: libusb owns it until the callback ran.
    let mut slot = Slot::Pending(Pending(parts));
    assert!(slot.in_flight());
    assert!(!slot.is_idle());
    assert!(slot.take_finished().is_none(), "not before the callback");
    // SAFETY: the record belongs to `parts`, alive until the idle
    // transfer drops at the end of the test.
    unsafe { parts.record.as_ref() }.done.set(true);
    assert!(!slot.in_flight());
    assert!(slot.take_finished().is_some(), "once after it");
    assert!(slot.is_idle());
    assert!(slot.take_finished().is_none(), "and only once");
    drop(slot); // frees the transfer, its buffer and its record
}
