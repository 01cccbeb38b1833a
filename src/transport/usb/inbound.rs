//! The libusb transport's reader half, and how the event loop gets to it.
//!
//! The event loop must serve control requests before the port's reader
//! exists: the chip is reset and configured through it. So at open it runs
//! on a short-lived plain thread (the *opening* thread, "ftdi-rt-usb-open"),
//! without IN transfers. When the realtime reader starts, it stops that
//! thread and joins it, which hands it the loop by value; only then are the
//! IN transfers submitted. The loop is a value that is moved, never shared,
//! so two threads can never run libusb's event handling for it at once.
//!
//! On a shared reader (one thread serving many ports on one libusb
//! context) there is no opening thread: only the reader may handle the
//! context's events, so the loop moves to the reader as soon as it is built
//! and serves the configuration from there; this half then only carries the
//! reader's guard ([`Hosted`]) to the port.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::event_loop::{EventLoop, Transfers};
use crate::doorbell::Doorbell;
use crate::realtime::memory::HotRegions;
use crate::transport::{Completion, Framing, Hosted, Inbound, LinkLost};

/// The opening thread's wait per turn. It bounds how late the thread sees a
/// stop request that lands just before it re-arms the doorbell (commands
/// and libusb's own timers wake it at once anyway).
const OPENING_TURN: Duration = Duration::from_millis(10);

/// Why this half cannot join a shared reader the ordinary way: a libusb
/// port's loop must be on its reader before the chip is configured, so a
/// port for a shared reader is opened hosted there (`Hosted`).
const NOT_HOSTED: &str = "a libusb port joins a shared reader only when it was opened \
    for it (Port::open_usb with PortConfig::with_reader)";

/// Where the event loop runs.
#[derive(Debug)]
enum Runner<T: Transfers> {
    /// On the opening thread, serving the mailbox.
    Opening {
        thread: JoinHandle<EventLoop<T>>,
        stop: Arc<AtomicBool>,
        wake: Arc<Doorbell>,
    },
    /// On the thread that owns this value (the reader, once it took over).
    /// Boxed once, at the hand-over: the loop is far larger than the others.
    Here(Box<EventLoop<T>>),
    /// On a shared reader since it was built: this is the reader's guard.
    Hosted(Hosted),
    /// The opening thread panicked; the loop was shut down as it unwound
    /// (or the shared reader's guard was taken).
    Gone,
}

/// The reader-thread half of the libusb transport.
#[derive(Debug)]
pub(crate) struct UsbInbound<T: Transfers> {
    runner: Runner<T>,
    max_packet_size: usize,
}

impl<T: Transfers> UsbInbound<T> {
    /// Starts `event_loop` on the opening thread; control requests and
    /// writes are served from now on. `wake` is the loop's doorbell.
    pub(crate) fn start(
        event_loop: EventLoop<T>,
        wake: Arc<Doorbell>,
        max_packet_size: usize,
    ) -> std::io::Result<UsbInbound<T>> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ftdi-rt-usb-open".into())
            .spawn(move || serve_while_opening(event_loop, &thread_stop))?;
        Ok(UsbInbound {
            runner: Runner::Opening { thread, stop, wake },
            max_packet_size,
        })
    }

    /// The half of a loop that lives on a shared reader (`guard`: its place there).
    pub(crate) fn hosted(guard: Hosted, max_packet_size: usize) -> UsbInbound<T> {
        UsbInbound {
            runner: Runner::Hosted(guard),
            max_packet_size,
        }
    }

    /// Takes the loop over from the opening thread (once; later calls just
    /// return it).
    fn take_over(&mut self) -> Option<&mut EventLoop<T>> {
        self.runner = match std::mem::replace(&mut self.runner, Runner::Gone) {
            Runner::Opening { thread, stop, wake } => {
                stop.store(true, Ordering::Release);
                wake.ring_always();
                thread
                    .join()
                    .map_or(Runner::Gone, |l| Runner::Here(Box::new(l)))
            }
            other => other,
        };
        match &mut self.runner {
            Runner::Here(event_loop) => Some(event_loop),
            _ => None,
        }
    }

    /// The loop, if this thread has it (tests inspect the fake through it).
    #[cfg(test)]
    pub(crate) fn event_loop(&mut self) -> Option<&mut EventLoop<T>> {
        match &mut self.runner {
            Runner::Here(event_loop) => Some(event_loop),
            _ => None,
        }
    }

    fn gone() -> LinkLost {
        LinkLost("the USB event loop's opening thread panicked".into())
    }
}

/// The opening thread: turns until asked to stop or the link is lost (then
/// it shuts the loop down, so waiting callers learn at once), and hands the
/// loop back.
fn serve_while_opening<T: Transfers>(
    mut event_loop: EventLoop<T>,
    stop: &AtomicBool,
) -> EventLoop<T> {
    while !stop.load(Ordering::Acquire) {
        if let Err(LinkLost(why)) = event_loop.turn(OPENING_TURN, &mut |_| {}) {
            log::warn!("USB device lost while opening: {why}");
            event_loop.shutdown();
            break;
        }
    }
    event_loop
}

impl<T: Transfers> Inbound for UsbInbound<T> {
    fn framing(&self) -> Framing {
        Framing::Ftdi {
            max_packet_size: self.max_packet_size,
        }
    }

    fn hot_memory(&mut self, regions: &mut HotRegions) {
        // The reader's first call: the loop is ours from here on.
        if let Some(event_loop) = self.take_over() {
            event_loop.hot_memory(regions);
        }
    }

    fn start(&mut self) -> Result<(), LinkLost> {
        let event_loop = self.take_over().ok_or_else(Self::gone)?;
        if let Some(why) = event_loop.lost() {
            return Err(LinkLost(why.to_string()));
        }
        event_loop.arm_in()
    }

    fn wait<F: FnMut(Completion<'_>)>(
        &mut self,
        timeout: Duration,
        mut deliver: F,
    ) -> Result<(), LinkLost> {
        match &mut self.runner {
            Runner::Here(event_loop) => event_loop.turn(timeout, &mut deliver),
            // `start` took the loop over or failed, and the reader stops on failure.
            _ => Err(Self::gone()),
        }
    }

    fn readiness(&self) -> Result<RawFd, &'static str> {
        Err(NOT_HOSTED)
    }

    fn take_hosted(&mut self) -> Option<Hosted> {
        match std::mem::replace(&mut self.runner, Runner::Gone) {
            Runner::Hosted(guard) => Some(guard),
            other => {
                self.runner = other;
                None
            }
        }
    }

    fn shutdown(&mut self) {
        if let Some(event_loop) = self.take_over() {
            event_loop.shutdown();
        }
    }
}

impl<T: Transfers> Drop for UsbInbound<T> {
    fn drop(&mut self) {
        // Stops the opening thread if the reader never started; the loop
        // shuts down as it drops.
        self.take_over();
    }
}
