//! An interface whose kernel driver ftdi-rt detached, as the exit path
//! (`crate::exit`) sees it: giving it back is releasing the interface and
//! re-attaching the driver, from whichever thread gets there first (the
//! port's close, or the exit thread on a signal).
//!
//! On a signal the port's event loop may still be running. Releasing the
//! interface makes the kernel cancel its transfers, and libusb reports a
//! cancelled bulk transfer it did not cancel itself as completed with no
//! data, which the loop resubmits; usbfs claims an unclaimed interface for
//! a submission by itself, and ftdi_sio then cannot bind (`EBUSY`). So the
//! `released` flag is set first, and the transfer set submits nothing once
//! it is set; a submission already past that check is the only one that
//! can slip in, and the next round below takes the interface back from it.
//!
//! It shares the device handle with `Claimed` but only makes libusb calls
//! that are single usbfs ioctls (claim, release, attach) and handle no
//! events, so the transfer set's soundness argument (`transfers`, point 3)
//! holds; holding the handle can only keep it open longer (point 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::exit::Release;

/// Rounds of release and attach before giving up: the first can lose to a
/// submission already under way (module docs), the next cannot.
const ROUNDS: usize = 3;

/// A claimed interface with a kernel driver to give back.
#[derive(Debug)]
pub(super) struct DetachedInterface {
    handle: Arc<rusb::DeviceHandle<rusb::Context>>,
    number: u8,
    /// The device in words, for the log.
    name: String,
    released: AtomicBool,
}

impl DetachedInterface {
    pub(super) fn new(
        handle: Arc<rusb::DeviceHandle<rusb::Context>>,
        number: u8,
        name: String,
    ) -> DetachedInterface {
        DetachedInterface {
            handle,
            number,
            name,
            released: AtomicBool::new(false),
        }
    }

    /// The interface has been (or is being) given back: submit nothing.
    pub(super) fn released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }
}

impl Release for DetachedInterface {
    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        let number = self.number;
        let mut last = None;
        for round in 0..ROUNDS {
            if round > 0 {
                // A submission claimed the interface again behind libusb's
                // back: claim it in libusb's books too, so that releasing
                // reaches the kernel.
                let _ = self.handle.claim_interface(number);
            }
            if let Err(e) = self.handle.release_interface(number) {
                log::debug!("releasing interface {number}: {e}");
            }
            match self.handle.attach_kernel_driver(number) {
                Ok(()) => {
                    log::debug!("ftdi_sio re-attached to interface {number}");
                    return;
                }
                Err(rusb::Error::Busy) => last = Some(rusb::Error::Busy),
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = last {
            log::warn!(
                "could not re-attach ftdi_sio to {} interface {number}: {e}; replug the adapter \
                 to get /dev/ttyUSB back",
                self.name
            );
        }
    }
}
