//! The realtime reader thread, shared by every transport.
//!
//! It makes itself realtime ([`make_current_thread_realtime`]), prefaults and
//! locks what it touches per packet (the channel ring and state, the
//! transport's buffers and state; the stack was locked by the former), starts
//! the transport's inbound transfers, then loops: wait for completions, run
//! them through the [`Pipeline`], check for stalls. On a lost link it closes
//! the channel with the reason; on stop it lets the transport cancel and
//! drain what is in flight, then unlocks its pages before returning. Its page
//! faults are counted for the statistics ([`faults`]).

mod faults;
mod pipeline;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub(crate) use pipeline::Pipeline;

use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::realtime::memory::{HotRegions, lock_regions};
use crate::realtime::{
    RealtimeConfig, RealtimeStatus, effective_locking, make_current_thread_realtime,
};
use crate::stats::ReaderPageFaults;
use crate::time::Timestamp;
use crate::transport::{Inbound, LinkLost};

/// Stack for realtime threads: comfortably above the prefaulted part.
pub(crate) const REALTIME_STACK_BYTES: usize = 1024 * 1024;

/// Owns the reader thread; dropping it stops and joins the thread.
#[derive(Debug)]
pub(crate) struct ReaderHandle {
    thread: Option<JoinHandle<()>>,
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
            let _ = thread.join();
        }
    }
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns the reader for `transport`. `wake` is the doorbell the transport's
/// `wait` also listens to, so a stop request interrupts it at once. Returns
/// when the thread is realtime and its transfers are in flight, or with the
/// error that prevented it.
pub(crate) fn spawn<T: Inbound>(
    mut transport: T,
    mut pipeline: Pipeline,
    realtime: RealtimeConfig,
    wake: Arc<Doorbell>,
    name: &str,
) -> Result<(ReaderHandle, RealtimeStatus)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<RealtimeStatus>>(1);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let fault_counter = Arc::new(faults::FaultCounter::default());
    let thread_faults = fault_counter.clone();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .stack_size(REALTIME_STACK_BYTES)
        .spawn(move || {
            let _record = faults::FinishOnDrop(&thread_faults);
            thread_faults.started();
            let mut status = match make_current_thread_realtime(&realtime) {
                Ok(status) => status,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            // Small state first, the channel ring (the largest) last: under a
            // small RLIMIT_MEMLOCK what is locked is what matters most.
            let mut regions = HotRegions::default();
            pipeline.hot_state(&mut regions);
            transport.hot_memory(&mut regions);
            pipeline.hot_ring(&mut regions);
            let (mut lease, memory) = lock_regions(effective_locking(&realtime, &status), &regions);
            status.memory.absorb(memory);
            if let Err(LinkLost(why)) = transport.start() {
                transport.shutdown();
                let _ = ready_tx.send(Err(Error::Usb {
                    operation: "starting the inbound transfers",
                    reason: why,
                }));
                return;
            }
            thread_faults.setup_done();
            let _ = ready_tx.send(Ok(status));
            run(&mut transport, &mut pipeline, &thread_stop);
            // While the buffers are still allocated (they drop after this).
            lease.release();
        })?;
    let mut handle = ReaderHandle {
        thread: Some(thread),
        stop,
        wake,
        faults: fault_counter,
    };
    match ready_rx.recv() {
        Ok(Ok(status)) => Ok((handle, status)),
        Ok(Err(e)) => {
            handle.stop();
            Err(e)
        }
        Err(_) => {
            handle.stop();
            Err(Error::Io(std::io::Error::other(
                "the reader thread died while starting",
            )))
        }
    }
}

fn run<T: Inbound>(transport: &mut T, pipeline: &mut Pipeline, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        let timeout = pipeline.poll_interval();
        if let Err(LinkLost(why)) = transport.wait(timeout, |c| pipeline.on_completion(c)) {
            // Tell the application first: draining a vanished device's
            // transfers can take libusb a while, and a waiting application
            // must wake at once.
            pipeline.close(why);
            transport.shutdown();
            return;
        }
        pipeline.after_wait(Timestamp::now());
    }
    transport.shutdown();
    pipeline.close("the port was closed".into());
}
