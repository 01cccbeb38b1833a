//! The realtime reader thread, shared by every transport.
//!
//! It starts through [`realtime::spawn`] (realtime first), prefaults and
//! locks what it touches per packet (the channel ring and state, the
//! transport's buffers and state; the stack was locked by the former), starts
//! the transport's inbound transfers, then loops: wait for completions, run
//! them through the [`Pipeline`], check for stalls. On a lost link it closes
//! the channel with the reason (a port that resumes gets its pipeline back
//! instead, see [`Pipeline::link_lost`]); on stop it lets the transport cancel and
//! drain what is in flight, then unlocks its pages before returning. Its page
//! faults are counted for the statistics ([`faults`]).
//!
//! A shared [`Reader`] ([`shared`]) runs the same pipeline for many ports on
//! one thread ([`serve`]), each port behind the object-safe [`member::Member`];
//! its libusb ports share one libusb context whose events it handles
//! ([`usb_member`]).

mod faults;
mod member;
mod pipeline;
mod serve;
mod shared;
mod usb_member;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) use pipeline::{Handback, Pipeline};
pub(crate) use shared::Membership;
pub use shared::Reader;

use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::realtime::memory::{HotRegions, lock_regions};
use crate::realtime::{self, RealtimeConfig, RealtimeStatus, RtThread, effective_locking};
use crate::stats::ReaderPageFaults;
use crate::time::Timestamp;
use crate::transport::{Inbound, LinkLost};

/// The reader serving a port: its own thread, or its place on a shared one.
#[derive(Debug)]
pub(crate) enum PortReader {
    /// A reader thread of the port's own.
    Own(ReaderHandle),
    /// A place on a shared [`Reader`].
    Shared(Membership),
}

impl PortReader {
    /// The serving thread's page faults so far (allocates: reads /proc).
    pub(crate) fn page_faults(&self) -> Option<ReaderPageFaults> {
        match self {
            PortReader::Own(own) => own.page_faults(),
            PortReader::Shared(member) => member.reader().page_faults(),
        }
    }

    /// CPU time the serving thread has used (a shared reader's for all its ports).
    pub(crate) fn cpu_time(&self) -> Option<std::time::Duration> {
        match self {
            PortReader::Own(own) => own.faults.cpu_time(),
            PortReader::Shared(member) => member.reader().cpu_time(),
        }
    }

    /// Stops serving the port: cancels its transfers and ends its stream,
    /// and returns once that is done (a shared reader goes on with the others).
    pub(crate) fn stop(&mut self) {
        match self {
            PortReader::Own(own) => own.stop(),
            PortReader::Shared(member) => member.leave(),
        }
    }
}

/// Dropping it stops serving the port, whichever reader serves it (a port
/// and its owned receiving half rely on this, not on a `Drop` of their own).
impl Drop for PortReader {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Owns the reader thread; dropping it stops and joins the thread.
#[derive(Debug)]
pub(crate) struct ReaderHandle {
    thread: Option<RtThread>,
    stop: Arc<AtomicBool>,
    wake: Arc<Doorbell>,
    faults: Arc<faults::FaultCounter>,
}

impl ReaderHandle {
    /// The reader thread's page faults so far (allocates: reads /proc).
    pub(crate) fn page_faults(&self) -> Option<ReaderPageFaults> {
        self.faults.read()
    }

    /// Asks the reader to stop and waits until it has cancelled its
    /// transfers and exited.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.wake.ring_always();
        if let Some(thread) = self.thread.take() {
            // A reader that panicked has closed the channel (its pipeline
            // dropped); the panic message went to stderr.
            let _ = thread.join();
        }
    }
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns the reader for `transport` (through [`realtime::spawn`]). `wake`
/// is the doorbell the transport's `wait` also listens to, so a stop
/// request interrupts it at once. Returns when the thread is realtime, its
/// hot path resident and its transfers in flight, or with the error that
/// prevented it.
pub(crate) fn spawn<T: Inbound>(
    mut transport: T,
    mut pipeline: Pipeline,
    config: &RealtimeConfig,
    wake: Arc<Doorbell>,
    name: &str,
) -> Result<(ReaderHandle, RealtimeStatus)> {
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let fault_counter = Arc::new(faults::FaultCounter::default());
    let thread_faults = fault_counter.clone();
    let locking_config = *config;
    let (thread, status) = realtime::spawn(name, config, move |mut startup| {
        let _record = faults::FinishOnDrop(&thread_faults);
        thread_faults.started();
        // Small state first, the channel ring (the largest) last: under a
        // small RLIMIT_MEMLOCK what is locked is what matters most.
        let mut regions = HotRegions::default();
        pipeline.hot_state(&mut regions);
        transport.hot_memory(&mut regions);
        pipeline.hot_ring(&mut regions);
        let locking = effective_locking(&locking_config, startup.status());
        let (mut lease, memory) = lock_regions(locking, &regions);
        startup.status_mut().memory.absorb(memory);
        if let Err(LinkLost(why)) = transport.start() {
            transport.shutdown();
            startup.fail(Error::Usb {
                operation: "starting the inbound transfers",
                reason: why,
            });
            return;
        }
        pipeline.started(Timestamp::now());
        thread_faults.setup_done();
        startup.ready();
        run(&mut transport, &mut pipeline, &thread_stop);
        // While the buffers are still allocated (they drop after this).
        lease.release();
        // A port that resumes gets its stream back after a lost link.
        pipeline.hand_back();
    })?;
    let handle = ReaderHandle {
        thread: Some(thread),
        stop,
        wake,
        faults: fault_counter,
    };
    Ok((handle, status))
}

fn run<T: Inbound>(transport: &mut T, pipeline: &mut Pipeline, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        let timeout = pipeline.poll_interval();
        if let Err(LinkLost(why)) = transport.wait(timeout, |c| pipeline.on_completion(c)) {
            // Tell the application first: draining a vanished device's
            // transfers can take libusb a while, and a waiting application
            // must wake at once.
            pipeline.link_lost(why);
            transport.shutdown();
            return;
        }
        pipeline.after_wait(Timestamp::now());
    }
    transport.shutdown();
    pipeline.close("the port was closed".into());
}
