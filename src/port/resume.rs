//! Devices that come back: a port opened with
//! [`PortConfig::with_resume`] survives an unplug.
//!
//! When the reader loses the link it puts the unplug in the stream
//! (`Disconnected`, once), makes writes and settings fail fast, drains the
//! transport and hands the port's pipeline (which holds the channel's
//! sending end) to the port's watcher: a normal-priority thread of the
//! port's own, never the realtime reader. The watcher looks for the same
//! device every [`SCAN_EVERY`] through the transport's [`Reopen`] (the
//! libusb transport: a `list()` scan for the same [`Identity`](crate::Identity);
//! the simulated chip: a chip plugged back into its socket). When it is
//! back, the watcher opens it, puts every setting the port had on it (the
//! writer's record of what was last applied), makes it the writer's
//! device, and starts a reader on it with the same pipeline: the port's
//! own reader, or a place on the same shared [`Reader`](crate::Reader).
//! That reader puts the resume in the stream with the gap's length
//! (`Error::Resumed`, once) and counts it in the statistics.
//!
//! Why a scan and not libusb's hotplug callbacks: the scan runs only while
//! a device is gone, costs one enumeration per period, and needs nothing
//! the machine may lack; hotplug here would need libusb's netlink monitor
//! (this libusb is built without libudev), which gets no events in a
//! container's network namespace, plus an event thread per context. A
//! period of 100 ms is short next to a replug (the kernel's enumeration
//! alone takes longer) and long next to an enumeration.
//!
//! Dropping the port stops the watcher at once (a message wakes it), then
//! the reader; a pipeline handed back after that has nobody to take it and
//! drops, which ends the stream.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{PortConfig, Writer};
use crate::error::{Error, Result};
use crate::lock::lock;
use crate::reader::{self, Handback, Pipeline, PortReader};
use crate::stats::ReaderPageFaults;
use crate::time::Timestamp;
use crate::transport::{Parts, Reopen};

/// How often the watcher looks for the device while it is gone.
pub(crate) const SCAN_EVERY: Duration = Duration::from_millis(100);

/// What the watcher is told.
pub(crate) enum Watch {
    /// The reader lost the link and let go of the pipeline.
    Lost(Pipeline),
    /// The port is closing.
    Stop,
}

/// The reader serving a port: fixed for the port's life, or the current
/// one of a port that resumes (replaced by the watcher after each replug).
#[derive(Debug)]
pub(crate) enum Serving {
    /// Without resume.
    Fixed(PortReader),
    /// With resume.
    Resumable(Resumable),
}

impl Serving {
    /// The serving thread's page faults so far (allocates: reads /proc).
    pub(crate) fn page_faults(&self) -> Option<ReaderPageFaults> {
        match self {
            Serving::Fixed(reader) => reader.page_faults(),
            Serving::Resumable(r) => lock(&r.current).page_faults(),
        }
    }

    /// CPU time the serving thread has used.
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        match self {
            Serving::Fixed(reader) => reader.cpu_time(),
            Serving::Resumable(r) => lock(&r.current).cpu_time(),
        }
    }
}

/// A port's watcher and its current reader.
#[derive(Debug)]
pub(crate) struct Resumable {
    /// The reader now serving the port (the watcher swaps in a new one).
    current: Arc<Mutex<PortReader>>,
    inbox: mpsc::Sender<Watch>,
    watcher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Watch::Lost(_) => f.write_str("Lost"),
            Watch::Stop => f.write_str("Stop"),
        }
    }
}

/// What the watcher needs to bring the port back.
pub(crate) struct Resume<R: Reopen> {
    /// Finds and opens the same device again.
    pub(crate) reopen: R,
    /// The port's configuration (reader, realtime settings, open options).
    pub(crate) config: PortConfig,
    /// The port's writer, which re-applies the settings.
    pub(crate) writer: Arc<Writer>,
}

/// Arms `pipeline` to come back to a watcher instead of ending the stream
/// on a lost link. Before the reader starts; then [`Resumable::start`].
pub(crate) fn arm(pipeline: &mut Pipeline) -> (mpsc::Sender<Watch>, mpsc::Receiver<Watch>) {
    let (tx, rx) = mpsc::channel();
    let handback_tx = tx.clone();
    pipeline.resume_to(Handback(Arc::new(move |pipeline| {
        // Err: the port is closing; the pipeline drops and ends the stream.
        let _ = handback_tx.send(Watch::Lost(pipeline));
    })));
    (tx, rx)
}

impl Resumable {
    /// Starts the watcher of a port whose reader (`reader`) serves a
    /// pipeline armed by [`arm`].
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be created.
    pub(crate) fn start<R: Reopen>(
        reader: PortReader,
        (inbox, watched): (mpsc::Sender<Watch>, mpsc::Receiver<Watch>),
        resume: Resume<R>,
    ) -> Result<Resumable> {
        let current = Arc::new(Mutex::new(reader));
        let slot = current.clone();
        let watcher = std::thread::Builder::new()
            .name("ftdi-rt-resume".into())
            .spawn(move || watch(&watched, resume, &slot))
            .map_err(Error::Io)?;
        Ok(Resumable {
            current,
            inbox,
            watcher: Some(watcher),
        })
    }
}

impl Drop for Resumable {
    fn drop(&mut self) {
        // The watcher first, so that it starts no reader after this; the
        // current reader stops when `current` drops.
        let _ = self.inbox.send(Watch::Stop);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        lock(&self.current).stop();
    }
}

/// The watcher's body: waits for a lost link, then for the device.
fn watch<R: Reopen>(
    inbox: &mpsc::Receiver<Watch>,
    mut resume: Resume<R>,
    current: &Mutex<PortReader>,
) {
    loop {
        let Ok(Watch::Lost(mut pipeline)) = inbox.recv() else {
            return;
        };
        log::warn!(
            "{}: the device is gone; waiting for {} to come back",
            resume.writer.transport_info().description,
            resume.reopen.waits_for()
        );
        let mut last_error = String::new();
        loop {
            match inbox.recv_timeout(SCAN_EVERY) {
                Err(RecvTimeoutError::Timeout) => {}
                // Closing (the pipeline drops: the stream ends).
                _ => return,
            }
            pipeline.flush_marks(Timestamp::now());
            let parts = match resume.reopen.poll(&resume.config.open_options()) {
                Ok(Some(parts)) => parts,
                Ok(None) => continue,
                Err(e) => {
                    note(&mut last_error, &e, &resume);
                    continue;
                }
            };
            match restart(parts, pipeline, &resume) {
                Ok(reader) => {
                    // The old reader has ended; joining it is quick, but
                    // not under the lock `stats()` takes.
                    let old = std::mem::replace(&mut *lock(current), reader);
                    drop(old);
                    log::info!(
                        "{}: the device is back; the port resumed with its settings",
                        resume.writer.transport_info().description
                    );
                    break;
                }
                Err((e, Some(back))) => {
                    note(&mut last_error, &e, &resume);
                    pipeline = *back;
                }
                Err((e, None)) => {
                    log::error!(
                        "{}: the device came back but no reader could start on it, so the \
                         port's stream has ended: {e}",
                        resume.writer.transport_info().description
                    );
                    return;
                }
            }
        }
    }
}

/// Logs a failure to bring the device back, once per distinct message.
fn note<R: Reopen>(last: &mut String, e: &Error, resume: &Resume<R>) {
    let message = e.to_string();
    if *last != message {
        log::warn!(
            "{}: waiting for {}: {message}",
            resume.writer.transport_info().description,
            resume.reopen.waits_for()
        );
        *last = message;
    }
}

/// Puts the settings on the device that came back and starts a reader on
/// it with `pipeline`. On a refused setting the pipeline comes back (the
/// watcher tries again with the next scan); if no reader could start, it
/// is gone with the stream.
fn restart<R: Reopen>(
    parts: Parts<R::Inbound>,
    pipeline: Pipeline,
    resume: &Resume<R>,
) -> std::result::Result<PortReader, (Error, Option<Box<Pipeline>>)> {
    let Parts {
        inbound,
        outbound,
        wake,
        notes: _,
        thread_name,
    } = parts;
    if let Err(e) = resume.writer.resume_on(outbound) {
        return Err((e, Some(Box::new(pipeline))));
    }
    let config = &resume.config;
    let started = match &config.reader {
        None => reader::spawn(
            inbound,
            pipeline,
            &config.reader_realtime,
            wake,
            thread_name,
        )
        .map(|(own, _)| PortReader::Own(own)),
        Some(shared) => {
            let description = resume.writer.transport_info().description;
            shared
                .attach(inbound, pipeline, &description)
                .map(|(member, _)| PortReader::Shared(member))
        }
    };
    started.map_err(|e| {
        resume.writer.link_lost();
        (e, None)
    })
}
