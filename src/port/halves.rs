//! Owned halves of a port: [`Port::into_split`] gives a receiving and a
//! writing half that each own what they need, so they can move to separate
//! threads (or tasks) without `thread::scope`.
//!
//! The receiving half owns the realtime reader: dropping it stops the
//! reader, as dropping the port does. The writing half shares the device's
//! outbound side (an `Arc`); the device is released when the last of the
//! two is gone, whichever order they go in. The transport keeps its own
//! references for the reader (the claimed USB interface, the tty fd, the
//! simulated bus), so neither order leaves the other half with a closed
//! device.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::resume::Serving;
use super::{Port, Writer};
use crate::channel::Receiver;
use crate::realtime::RealtimeStatus;
use crate::stats::ReaderPageFaults;

/// The receiving half of a port split with [`Port::into_split`]: `Send`
/// and `'static`. Dereferences to the [`Receiver`] (`recv_timeout`,
/// `try_recv`, ...); also `io::Read`, [`AsFd`](std::os::fd::AsFd) and [`mio::event::Source`].
///
/// Dropping it stops the port's reader (its own thread; on a shared
/// reader, the port leaves it and the others go on).
#[derive(Debug)]
pub struct OwnedReceiver {
    // The reader stops before the receiver's end of the channel goes.
    reader: Serving,
    pub(super) receiver: Receiver,
    realtime: RealtimeStatus,
}

/// The writing and configuring half of a port split with
/// [`Port::into_split`]: `Send`, `Sync`, `'static` and cheap to clone.
/// Dereferences to the [`Writer`]; also `io::Write`.
///
/// The device is released when the last clone of it and the
/// [`OwnedReceiver`] are gone.
#[derive(Clone, Debug)]
pub struct OwnedWriter {
    pub(super) writer: Arc<Writer>,
}

impl Port {
    /// Splits the port into owned halves that can live on separate threads
    /// or tasks: the receiver (with the reader thread) and the writer.
    /// Transactions need both halves and are not available on them; use
    /// [`split`](Port::split) for a scoped split that keeps them.
    ///
    /// ```
    /// use std::io::Read;
    /// use ftdi_rt::sim::{Loopback, SimChip, SimConfig};
    /// use ftdi_rt::{Port, PortConfig};
    ///
    /// let chip = SimChip::new(Loopback::new(), SimConfig::default())?;
    /// let port = Port::open_sim(chip, &PortConfig::default().best_effort())?;
    /// let (mut rx, tx) = port.into_split();
    /// let receiving = std::thread::spawn(move || {
    ///     let mut buf = [0; 4];
    ///     rx.read_exact(&mut buf).map(|()| buf)
    /// });
    /// tx.write_all(b"ping")?;
    /// assert_eq!(&receiving.join().expect("receiver thread")?, b"ping");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_split(self) -> (OwnedReceiver, OwnedWriter) {
        let Port {
            reader,
            receiver,
            writer,
            realtime,
            ..
        } = self;
        (
            OwnedReceiver {
                reader,
                receiver,
                realtime,
            },
            OwnedWriter { writer },
        )
    }
}

impl OwnedReceiver {
    /// How the reader thread runs (guaranteed realtime or best effort).
    pub fn realtime(&self) -> &RealtimeStatus {
        &self.realtime
    }

    /// The reader thread's page faults so far (reads /proc; see
    /// [`Statistics::reader_page_faults`](crate::Statistics::reader_page_faults)).
    pub fn reader_page_faults(&self) -> Option<ReaderPageFaults> {
        self.reader.page_faults()
    }
}

impl OwnedWriter {
    /// Writes all of `data`. See [`Writer::write_all`] (the same method;
    /// here so that it, not `io::Write`'s, is what `tx.write_all` means).
    ///
    /// # Errors
    /// As [`Writer::write_all`].
    pub fn write_all(&self, data: &[u8]) -> crate::Result<()> {
        self.writer.write_all(data)
    }

    /// Writes what the device accepts of `data`. See [`Writer::write`].
    ///
    /// # Errors
    /// As [`Writer::write`].
    pub fn write(&self, data: &[u8]) -> crate::Result<usize> {
        Writer::write(&self.writer, data)
    }
}

impl Deref for OwnedReceiver {
    type Target = Receiver;
    fn deref(&self) -> &Receiver {
        &self.receiver
    }
}

impl DerefMut for OwnedReceiver {
    fn deref_mut(&mut self) -> &mut Receiver {
        &mut self.receiver
    }
}

impl Deref for OwnedWriter {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.writer
    }
}
