//! [`AsyncPort`]: a port for tokio (feature `tokio`).
//!
//! Receiving is readiness-driven on the channel's eventfd through tokio's
//! [`AsyncFd`]: `poll_read` takes what the reader queued and, when nothing
//! is there, re-arms the doorbell and yields until the reader rings it.
//! No thread is added: the realtime reader stays the only one between the
//! USB completion and the application.
//!
//! Writing completes synchronously, as [`Writer::write`](crate::Writer::write)
//! does: `poll_write` returns once the device accepted the bytes (one
//! bulk-OUT transfer, normally well under a millisecond; up to the write
//! timeout while flow control holds the line). It does not yield
//! meanwhile.
//!
//! [`AsyncPort::transact`] runs the port's own transaction, so the deadline
//! accounting (stale-input purge, late-reply settling, misses, their
//! attribution, the latency histogram) is the synchronous one, unchanged.
//! It blocks its worker thread for at most the deadline (plus the settling
//! of a previous miss), announced to tokio with `block_in_place`, which
//! needs the multi-thread runtime. A transaction engine without I/O of its
//! own would let this await readiness instead; the async transact should
//! move onto it when the port has one.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::Port;
use crate::error::{Error, Result};
use crate::sys::reactor::{self, StableFd};
use crate::transaction::{ReplyEnd, Transaction};

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
    inner: AsyncFd<Port>,
}

impl AsyncPort {
    /// Registers `port` with the current tokio runtime's reactor.
    ///
    /// # Errors
    /// The reactor's refusal (outside a runtime, tokio panics instead:
    /// call this from within one).
    pub fn new(port: Port) -> io::Result<AsyncPort> {
        // Data may be queued already, with the doorbell not armed: make the
        // first readiness report it (as registering with mio does).
        port.channel.bell.ring_always();
        Ok(AsyncPort {
            inner: reactor::register_readable(port)?,
        })
    }

    /// The port.
    pub fn get_ref(&self) -> &Port {
        self.inner.get_ref()
    }

    /// The port, mutably (`recv_timeout` and friends block: use them only
    /// where blocking is fine).
    pub fn get_mut(&mut self) -> &mut Port {
        self.inner.get_mut()
    }

    /// Deregisters from tokio and gives the port back.
    pub fn into_inner(self) -> Port {
        self.inner.into_inner()
    }

    /// [`Port::transact`], from async code: the same deadline accounting.
    /// Blocks this worker thread for at most the deadline (see the module
    /// documentation).
    ///
    /// # Errors
    /// As [`Port::transact`]; [`Error::Unsupported`] on tokio's
    /// current-thread runtime, where blocking the only thread would stall
    /// everything else.
    pub async fn transact(
        &mut self,
        request: &[u8],
        reply: ReplyEnd<'_>,
        deadline: Duration,
    ) -> Result<Transaction<'_>> {
        if Handle::current().runtime_flavor() != RuntimeFlavor::MultiThread {
            return Err(Error::Unsupported {
                setting: "AsyncPort::transact".into(),
                transport: "tokio's current-thread runtime".into(),
                reason: "it blocks its worker for up to the deadline; use the multi-thread \
                         runtime (#[tokio::main] or flavor = \"multi_thread\")"
                    .into(),
            });
        }
        let port = self.inner.get_mut();
        tokio::task::block_in_place(move || port.transact(request, reply, deadline))
    }
}

/// The port's descriptor is its channel's eventfd, owned by the channel's
/// shared state (an `Arc` the port holds from open to drop) and never
/// replaced.
impl StableFd for Port {}

impl AsyncRead for AsyncPort {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let mut guard = ready!(this.inner.poll_read_ready_mut(cx))?;
            let port = guard.get_inner_mut();
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
        Poll::Ready(Ok(self.get_ref().writer.write(buf)?))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes complete when the device has accepted the bytes.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
