//! Registering a file descriptor with tokio's reactor (feature `tokio`).
//!
//! Since tokio 1.54, `AsyncFd::register_with_interest` is `unsafe`: the
//! reactor keeps the raw descriptor number, so the value must keep that
//! very descriptor open for as long as it is registered. The one `unsafe`
//! block lives here, as every other in the crate; what it relies on is the
//! [`StableFd`] contract of the registered type.

use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A value whose `as_raw_fd` returns the same open descriptor from
/// construction to drop (it owns the descriptor, or an `Arc` of what owns
/// it, and never replaces it). Implementing it for a type that can change
/// or close its descriptor while alive would let tokio poll a descriptor
/// number that means something else by then.
pub(crate) trait StableFd: AsRawFd {}

/// An owned descriptor is closed only when it is dropped.
impl StableFd for std::os::fd::OwnedFd {}

/// Registers `inner` for readable events with the current runtime's reactor.
///
/// # Errors
/// The reactor's refusal (epoll_ctl).
///
/// # Panics
/// Outside a tokio runtime (tokio's own panic).
pub(crate) fn register_readable<T: StableFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `T: StableFd` keeps the descriptor `as_raw_fd` returns open
    // and unchanged until `inner` is dropped, and the `AsyncFd` owns
    // `inner`, so the registration never outlives the descriptor
    // (`AsyncFd::into_inner` deregisters before handing it back).
    unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}
