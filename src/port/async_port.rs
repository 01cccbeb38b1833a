//! [`AsyncPort`]: a port for tokio (feature `tokio`).
//!
//! Receiving is readiness-driven on the channel's eventfd through tokio's
//! [`AsyncFd`]: `poll_read` takes what the reader queued and, when nothing
//! is there, re-arms the doorbell and yields until the reader rings it.
//! No thread is added: the realtime reader stays the only one between the
//! USB completion and the application.
//!
//! Writing completes synchronously, as [`Writer::write`](crate::Writer::write)
//! does: `poll_write` returns once the bytes are queued for the device (the
//! write-behind queue; up to the write timeout while it is full and flow
//! control holds the line). It does not yield meanwhile.
//!
//! [`AsyncPort::transact`] drives the port's sans-IO transaction engine
//! with an async shell: it receives without blocking and, where the
//! blocking shell would sleep, awaits the descriptor's readiness or the
//! time the engine asks to be woken. So the deadline accounting (stale-input
//! purge, late-reply settling, misses, their attribution, the latency
//! histogram) is the same as [`Port::transact`]'s, it runs on any runtime
//! flavour, and other tasks run while it waits. Its timers are tokio's
//! (millisecond granularity): a miss is decided from the packets'
//! timestamps as in the blocking shell, but may be reported up to a
//! millisecond after the deadline.
//!
//! The readiness is registered on a duplicate of the channel's eventfd
//! (the same eventfd, so the same doorbell), which keeps it apart from
//! the port the engine borrows while the transaction awaits.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use std::os::fd::{AsFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Port;
use crate::error::{Error, Result};
use crate::sys::reactor;
use crate::time::Timestamp;
use crate::transaction::{self, ReplyEnd, Transaction};

/// A [`Port`] registered with tokio: `AsyncRead`, `AsyncWrite`, and an
/// async [`transact`](AsyncPort::transact).
///
/// ```
/// use ftdi_rt::sim::{Loopback, SimChip, SimConfig};
/// use ftdi_rt::{AsyncPort, Port, PortConfig};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let chip = SimChip::new(Loopback::new(), SimConfig::default())?;
///     let port = Port::open_sim(chip, &PortConfig::default().best_effort())?;
///     let mut port = AsyncPort::new(port)?;
///     port.write_all(b"ping").await?;
///     let mut reply = [0u8; 4];
///     port.read_exact(&mut reply).await?;
///     assert_eq!(&reply, b"ping");
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct AsyncPort {
    port: Port,
    /// The channel's eventfd (a duplicate), registered with tokio.
    ready: AsyncFd<OwnedFd>,
}

impl AsyncPort {
    /// Registers `port` with the current tokio runtime's reactor.
    ///
    /// # Errors
    /// The reactor's refusal (outside a runtime, tokio panics instead:
    /// call this from within one).
    pub fn new(port: Port) -> io::Result<AsyncPort> {
        let fd = port.as_fd().try_clone_to_owned()?;
        let ready = reactor::register_readable(fd)?;
        // Data may be queued already, with the doorbell not armed: make the
        // first readiness report it (as registering with mio does).
        port.channel.bell.ring_always();
        Ok(AsyncPort { port, ready })
    }

    /// The port.
    pub fn get_ref(&self) -> &Port {
        &self.port
    }

    /// The port, mutably (`recv_timeout` and friends block: use them only
    /// where blocking is fine).
    pub fn get_mut(&mut self) -> &mut Port {
        &mut self.port
    }

    /// Deregisters from tokio and gives the port back.
    pub fn into_inner(self) -> Port {
        self.port
    }

    /// [`Port::transact`], from async code: the same engine and deadline
    /// accounting, awaiting where the blocking call sleeps (see the module
    /// documentation). Works on every runtime flavour.
    ///
    /// Cancel-safe: dropping the future (a `select!`, a timeout around it)
    /// after the request went out gives that exchange up like a failed
    /// one; the next call settles the rest of its reply before sending, so
    /// a late answer is never taken for the next one.
    ///
    /// # Errors
    /// As [`Port::transact`].
    pub async fn transact(
        &mut self,
        request: &[u8],
        reply: ReplyEnd<'_>,
        deadline: Duration,
    ) -> Result<Transaction<'_>> {
        let ready = &self.ready;
        let (engine, mut io) = self.port.transaction_parts(reply)?;
        transaction::transact_async(engine, &mut io, request, reply, deadline, |until| {
            readable_or(ready, until)
        })
        .await
    }
}

/// Returns when the descriptor has become readable since it was last found
/// empty, or at `until`, whichever first.
async fn readable_or(ready: &AsyncFd<OwnedFd>, until: Timestamp) {
    let left = until.saturating_since(Timestamp::now());
    if let Ok(Ok(mut guard)) = tokio::time::timeout(left, ready.readable()).await {
        // The shell looks again at once (and re-arms the doorbell if it
        // finds nothing), so the readiness seen here is spent.
        guard.clear_ready();
    }
}

impl AsyncRead for AsyncPort {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let mut guard = ready!(this.ready.poll_read_ready(cx))?;
            let port = &mut this.port;
            match port.receiver.try_read(buf.initialize_unfilled()) {
                Ok(Some(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The doorbell is armed: wait for the reader's ring (a ring
                // since the readiness was observed is not cleared: tokio
                // tracks it by tick).
                Ok(None) => guard.clear_ready(),
                // A resuming port's return: what follows comes from the
                // device that is back; the statistics count it.
                Err(Error::Resumed { .. }) => {}
                // The reader is gone and everything was taken: end of stream.
                Err(Error::Disconnected) if port.channel.closed.load(Ordering::Acquire) => {
                    return Poll::Ready(Ok(()));
                }
                // A resuming port's unplug (the stream goes on): an error
                // of kind NotConnected, not an end of stream.
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

impl AsyncWrite for AsyncPort {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.port.writer.write(buf)?))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes complete when the device has accepted the bytes.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
