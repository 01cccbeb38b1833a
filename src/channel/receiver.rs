//! The application end of the channel.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::unix::SourceFd;

use super::chunk::{Chunk, Mark};
use super::shared::Shared;
use crate::error::{Error, Result};
use crate::stats::{LatencySummary, new_latency_histogram, record};
use crate::time::{Deadline, Timestamp};

/// What the application receives from: a file descriptor that becomes
/// readable when data arrives, plus blocking, non-blocking and `io::Read`
/// access to the chunks.
///
/// Receiving allocates nothing and takes no lock. The time from a chunk's
/// arrival to the moment the application takes it is recorded in the
/// delivery-latency histogram.
///
/// A chunk returned by `recv_timeout`/`try_recv` is borrowed in place: it
/// keeps its ring slot until the next receive call.
///
/// # With mio (or poll/epoll)
/// Register it (it implements [`mio::event::Source`]; [`AsFd`] for other
/// loops); on a readable event call [`try_recv`](Receiver::try_recv) until it
/// returns `Ok(None)`. Only an empty `try_recv` re-arms the wakeup, so always
/// drain before polling again.
#[derive(Debug)]
pub struct Receiver {
    ring: rtrb::Consumer<Chunk>,
    shared: Arc<Shared>,
    /// The head chunk was handed out by `recv`/`try_recv`; pop it next time.
    head_taken: bool,
    /// The head chunk's delivery latency has been recorded.
    head_recorded: bool,
    /// The loss in front of the head chunk has been reported.
    loss_reported: bool,
    read_timeout: Option<Duration>,
    delivery: Histogram<u64>,
    chunks: u64,
    bytes: u64,
}

impl Receiver {
    pub(crate) fn new(ring: rtrb::Consumer<Chunk>, shared: Arc<Shared>) -> Receiver {
        Receiver {
            ring,
            shared,
            head_taken: false,
            head_recorded: false,
            loss_reported: false,
            read_timeout: None,
            delivery: new_latency_histogram(),
            chunks: 0,
            bytes: 0,
        }
    }

    /// Takes the next chunk, waiting up to `timeout`.
    ///
    /// # Errors
    /// [`Error::TimedOut`] if nothing arrived; [`Error::Overflow`] once at the
    /// point of the stream where data was dropped (then the data after it);
    /// [`Error::Disconnected`] after everything received has been taken.
    /// On a port that resumes after an unplug
    /// ([`PortConfig::with_resume`](crate::PortConfig::with_resume)),
    /// [`Error::Disconnected`] once where the link was lost, then
    /// [`Error::Resumed`] once where the device came back, each between
    /// the data before and after it; receive on after either.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<&Chunk> {
        self.wait_ready(Some(timeout))?;
        Ok(self.take_head())
    }

    /// Takes the next chunk, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`recv_timeout`](Receiver::recv_timeout), without the timeout.
    pub fn recv(&mut self) -> Result<&Chunk> {
        self.wait_ready(None)?;
        Ok(self.take_head())
    }

    /// Takes the next chunk if one is there; `Ok(None)` if not (and the file
    /// descriptor will become readable when one arrives).
    ///
    /// # Errors
    /// [`Error::Overflow`] and [`Error::Disconnected`] as for `recv_timeout`.
    pub fn try_recv(&mut self) -> Result<Option<&Chunk>> {
        if !self.ready()? {
            self.shared.bell.arm();
            if !self.ready()? {
                return Ok(None);
            }
        }
        Ok(Some(self.take_head()))
    }

    /// The chunk the last successful receive handed out (for callers that
    /// cannot keep that borrow across a loop).
    ///
    /// # Errors
    /// [`Error::Disconnected`] if no chunk is handed out.
    pub(crate) fn head(&self) -> Result<&Chunk> {
        if !self.head_taken {
            return Err(Error::Disconnected);
        }
        self.ring.peek().map_err(|_| Error::Disconnected)
    }

    /// Whether a chunk is ready for [`try_recv`](Receiver::try_recv),
    /// without taking it.
    pub(crate) fn has_chunk(&mut self) -> Result<bool> {
        self.ready()
    }

    /// Timeout for the `io::Read` implementation (`None`, the default, blocks).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// The timeout of the `io::Read` implementation (`None`: it blocks).
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// Payload bytes received and not taken yet (a snapshot: the reader
    /// may be adding more). Bytes still in the chip's FIFO or in flight on
    /// the bus are not counted: the host cannot know them.
    pub fn queued_bytes(&self) -> u64 {
        self.shared.queued_bytes()
    }

    /// Drops everything received so far, from `&self`: the next receive
    /// skips what had arrived by now (loss notices are kept). Any handle
    /// of the port can ask this (`serialport::SerialPort::clear`).
    pub fn clear_received(&self) {
        self.shared.request_discard();
    }

    /// Drops everything received so far without waiting; returns the number
    /// of bytes dropped. Loss and disconnect notices are kept for the next
    /// receive, and so is everything from an unplug or resume event on (a
    /// port that resumes, [`Error::Resumed`]).
    pub fn discard_pending(&mut self) -> u64 {
        let mut dropped = 0;
        loop {
            if self.head_taken {
                self.pop_head();
            }
            if self.ring.peek().is_ok_and(|c| c.mark != Mark::Data) {
                return dropped;
            }
            match self.ready() {
                Ok(true) => {
                    dropped += self.take_head().payload().len() as u64;
                }
                // A loss notice counts as handled: the data is unwanted anyway.
                Err(Error::Overflow { .. }) => continue,
                _ => return dropped,
            }
        }
    }

    /// Time from each chunk's arrival to the application taking it, summarised.
    pub fn delivery_latency(&self) -> LatencySummary {
        LatencySummary::from_histogram(&self.delivery)
    }

    /// The delivery latencies themselves (for the port's statistics).
    pub(crate) fn delivery_histogram(&self) -> &Histogram<u64> {
        &self.delivery
    }

    /// Chunks the application has taken so far.
    pub fn delivered_chunks(&self) -> u64 {
        self.chunks
    }

    /// Payload bytes the application has taken so far.
    pub fn delivered_bytes(&self) -> u64 {
        self.bytes
    }

    /// Prepares the head of the ring: pops the chunk handed out last time,
    /// skips loss markers and consumed chunks, reports a loss once, and
    /// reports the close once the ring is empty. `Ok(true)`: the head is ready.
    fn ready(&mut self) -> Result<bool> {
        if self.head_taken {
            self.pop_head();
        }
        loop {
            let (lost, consumed, mark) = match self.ring.peek() {
                Ok(chunk) => (chunk.lost_before, chunk.start == chunk.end, chunk.mark),
                Err(_) => {
                    if !self.shared.closed.load(Ordering::Acquire) {
                        return Ok(false);
                    }
                    // The close is published after the last chunk; look again.
                    if !self.ring.is_empty() {
                        continue;
                    }
                    let lost = self.shared.lost_at_close.swap(0, Ordering::Relaxed);
                    return Err(if lost > 0 {
                        Error::Overflow { lost_bytes: lost }
                    } else {
                        Error::Disconnected
                    });
                }
            };
            if lost > 0 && !self.loss_reported {
                self.loss_reported = true;
                return Err(Error::Overflow { lost_bytes: lost });
            }
            // A resuming port's events, once each, after the loss before them.
            match mark {
                Mark::Data => {}
                Mark::LinkLost => {
                    self.pop_head();
                    return Err(Error::Disconnected);
                }
                Mark::Resumed { gap_ns } => {
                    self.pop_head();
                    return Err(Error::Resumed {
                        gap: Duration::from_nanos(gap_ns),
                    });
                }
            }
            if consumed {
                self.pop_head();
                continue;
            }
            if self.shared.taken_bytes.get() < self.shared.discard_until.load(Ordering::Relaxed) {
                // Cleared by `clear_received` (perhaps on another handle):
                // every chunk pushed before the request goes.
                if let Ok(chunk) = self.ring.peek() {
                    self.shared
                        .taken_bytes
                        .add(u64::from(chunk.end - chunk.start));
                }
                self.pop_head();
                continue;
            }
            return Ok(true);
        }
    }

    fn wait_ready(&mut self, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(Deadline::from_now);
        // The doorbell lives in the shared state `ready` also reads.
        let shared = Arc::clone(&self.shared);
        let outcome = shared.bell.wait_until(deadline, || match self.ready() {
            Ok(false) => None,
            Ok(true) => Some(Ok(())),
            Err(e) => Some(Err(e)),
        })?;
        match (outcome, timeout) {
            (Some(ready), _) => ready,
            (None, Some(after)) => Err(Error::TimedOut {
                operation: "receive",
                after,
            }),
            // Without a deadline wait_until returns only what it found;
            // should it ever come back empty, wait again.
            (None, None) => self.wait_ready(None),
        }
    }

    /// Hands out the head chunk (which `ready()` just confirmed).
    fn take_head(&mut self) -> &Chunk {
        self.head_taken = true;
        self.record_head();
        if let Ok(chunk) = self.ring.peek() {
            self.shared
                .taken_bytes
                .add(u64::from(chunk.end - chunk.start));
        }
        match self.ring.peek() {
            Ok(chunk) => chunk,
            // ready() returned true and nothing popped since: the head exists.
            Err(_) => unreachable!("take_head without a ready head"),
        }
    }

    fn record_head(&mut self) {
        if self.head_recorded {
            return;
        }
        if let Ok(chunk) = self.ring.peek() {
            let latency = Timestamp::now().saturating_since(chunk.arrived);
            record(&mut self.delivery, latency);
            self.chunks += 1;
            self.bytes += u64::from(chunk.end - chunk.start);
            self.head_recorded = true;
        }
    }

    fn pop_head(&mut self) {
        if let Ok(slots) = self.ring.read_chunk(1) {
            slots.commit_all();
        }
        self.head_taken = false;
        self.head_recorded = false;
        self.loss_reported = false;
    }
}

impl Receiver {
    /// Copies what fits of the head chunk into `buf` (which `ready()` just
    /// confirmed); a partly read chunk stays at the head.
    fn copy_head(&mut self, buf: &mut [u8]) -> usize {
        self.record_head();
        let Ok(mut slots) = self.ring.read_chunk(1) else {
            return 0;
        };
        let chunk = &mut slots.as_mut_slices().0[0];
        let n = buf.len().min(chunk.payload().len());
        buf[..n].copy_from_slice(&chunk.payload()[..n]);
        chunk.start += n as u16;
        self.shared.taken_bytes.add(n as u64);
        if chunk.start == chunk.end {
            slots.commit_all();
            self.head_recorded = false;
            self.loss_reported = false;
        }
        n
    }

    /// `io::Read` without waiting: copies what is there into `buf`, or
    /// returns `Ok(None)` (and the file descriptor becomes readable when
    /// data arrives, as after an empty [`try_recv`](Receiver::try_recv)).
    ///
    /// # Errors
    /// [`Error::Overflow`] and [`Error::Disconnected`] as for `recv_timeout`.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        if buf.is_empty() {
            return Ok(Some(0));
        }
        if !self.ready()? {
            self.shared.bell.arm();
            if !self.ready()? {
                return Ok(None);
            }
        }
        Ok(Some(self.copy_head(buf)))
    }
}

impl io::Read for Receiver {
    /// Blocks until at least one byte is there (or the read timeout passes),
    /// then copies what fits. A partly read chunk stays at the head.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.wait_ready(self.read_timeout)?;
        Ok(self.copy_head(buf))
    }
}

impl AsFd for Receiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.bell.as_fd()
    }
}

impl AsRawFd for Receiver {
    fn as_raw_fd(&self) -> RawFd {
        self.shared.bell.as_fd().as_raw_fd()
    }
}

impl mio::event::Source for Receiver {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        SourceFd(&self.as_raw_fd()).register(registry, token, interests)?;
        // Data may already be queued: make the first poll report it, so the
        // drain-until-empty rule holds from the start.
        self.shared.bell.ring_always();
        Ok(())
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        SourceFd(&self.as_raw_fd()).reregister(registry, token, interests)?;
        self.shared.bell.ring_always();
        Ok(())
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        SourceFd(&self.as_raw_fd()).deregister(registry)
    }
}
