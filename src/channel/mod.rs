//! The poll-friendly channel from the realtime reader to the application.
//!
//! A wait-free single-producer/single-consumer ring ([`rtrb`]) of fixed-size
//! [`Chunk`] records, allocated once, plus an `eventfd` the reader signals so
//! the receiving side is a file descriptor. The reader never blocks on it: a
//! full ring drops the chunk and the loss reaches the application as
//! [`Error::Overflow`](crate::Error::Overflow) at the right point of the
//! stream. When the reader stops, the application still receives everything
//! queued, then [`Error::Disconnected`](crate::Error::Disconnected).
//!
//! A port that resumes after an unplug keeps its channel open: the sender
//! (the reader's pipeline) moves to the reader of the device that came
//! back, and the unplug and the return travel in the ring as marked empty
//! chunks ([`Mark`]), which the receiver reports once each, in order, as
//! [`Error::Disconnected`](crate::Error::Disconnected) and
//! [`Error::Resumed`](crate::Error::Resumed).
//!
//! ```text
//!  reader thread (SCHED_FIFO)                 application thread
//!  Sender::push ──► rtrb ring of Chunk ──► Receiver::{recv_timeout, try_recv, read}
//!       └── eventfd (only when the receiver sleeps) ──► poll / epoll / mio
//! ```

mod chunk;
mod receiver;
mod sender;
mod shared;

use std::sync::Arc;

pub(crate) use chunk::Mark;
pub use chunk::{CHUNK_CAPACITY, Chunk};
pub use receiver::Receiver;
pub(crate) use sender::Sender;
pub(crate) use shared::Shared;

/// Creates a channel holding up to `capacity` chunks. Allocates the ring, the
/// eventfd and the delivery histogram; nothing is allocated after this.
pub(crate) fn channel(capacity: usize) -> std::io::Result<(Sender, Receiver, Arc<Shared>)> {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity.max(1));
    let shared = Arc::new(Shared::new()?);
    Ok((
        Sender::new(producer, shared.clone()),
        Receiver::new(consumer, shared.clone()),
        shared,
    ))
}

#[cfg(test)]
mod tests;
