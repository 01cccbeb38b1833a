//! A libusb context: the one place one is created, so that every way in
//! (listing, opening, a shared reader's context) reports libusb's failure
//! to initialise the same way.

use crate::error::{Error, Result};

/// A new libusb context; its initialisation failure as a clear error.
///
/// # Errors
/// [`Error::UsbUnavailable`] when libusb cannot initialise (no usbfs).
pub(crate) fn context() -> Result<rusb::Context> {
    rusb::Context::new().map_err(|e| Error::UsbUnavailable {
        // libusb's own text alone ("Other error") says nothing.
        reason: format!("libusb could not initialise: {e}"),
    })
}
