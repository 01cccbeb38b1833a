//! The shared reader's loop: epoll over every member's readiness
//! descriptor plus the command doorbell, fair rounds of bounded turns (see
//! `shared` for the policy), the periodic housekeeping, and the commands.
//!
//! The hot path is the wait and [`Serve::round`]: no allocation (the member
//! list and the event buffer are sized on the slow path, prefaulted and
//! locked with the members' memory), no lock, no logging. The epoll watch is
//! edge-triggered, hence the `pending` flag: a member stays pending until a
//! turn finds nothing, which also re-arms it for the next edge. (epoll
//! through `sys`, not mio: the event buffer must be ours to lock.)
//!
//! libusb ports share the reader's libusb context: its descriptors are in
//! the same epoll set under one token, and when they fire the reader lets
//! libusb reap for every device at once, then marks each libusb port pending,
//! so each gets its own bounded turn in the round (see `usb_member`).

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::Pipeline;
use super::faults::FaultCounter;
use super::member::Member;
use super::usb_member::ContextEvents;
use crate::doorbell::Doorbell;
use crate::realtime::memory::{HotRegions, MemoryLease, MemoryLocking, MemoryStatus, lock_regions};
use crate::sys::epoll::{Epoll, EpollEvent, NO_EVENT, token};
use crate::time::Timestamp;
use crate::transport::LinkLost;

/// The command doorbell's token (members use their index).
const COMMANDS: u64 = u64::MAX;
/// The token of the libusb context's descriptors.
const CONTEXT: u64 = u64::MAX - 1;
/// Consecutive failed event handlings of the libusb context after which its
/// ports count as lost (a persistent error must not spin the thread).
const CONTEXT_FAILURE_LIMIT: u32 = 5;
/// Readiness events taken per epoll wait; more stay queued for the next.
const EVENTS: usize = 256;
/// Sleep without members (only a command wakes the reader then).
const IDLE: Option<Duration> = None;
/// Pause after a failed epoll wait, so a persistent error never spins.
const BACK_OFF: Duration = Duration::from_millis(1);

/// What the application asks of the reader (the slow path).
pub(crate) enum Command {
    /// Serve this port from now on; answer with its locked memory.
    Join {
        id: u64,
        member: Box<dyn Member>,
        done: mpsc::SyncSender<Result<MemoryStatus, LinkLost>>,
    },
    /// Port `id`, which joined before its configuration, is configured:
    /// deliver through `pipeline` from now on; answer with its locked memory.
    Arm {
        id: u64,
        pipeline: Pipeline,
        done: mpsc::SyncSender<Result<MemoryStatus, LinkLost>>,
    },
    /// Handle this libusb context's events from now on (sent once, with the
    /// reader's first libusb port); answers whether the reader took them.
    Context {
        events: Arc<dyn ContextEvents>,
        done: mpsc::SyncSender<bool>,
    },
    /// Stop serving port `id` (end its stream, cancel its transfers).
    Leave { id: u64, done: mpsc::SyncSender<()> },
    /// The last handle is gone.
    Stop,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Join { id, .. } => write!(f, "Join({id})"),
            Command::Arm { id, .. } => write!(f, "Arm({id})"),
            Command::Context { .. } => write!(f, "Context"),
            Command::Leave { id, .. } => write!(f, "Leave({id})"),
            Command::Stop => write!(f, "Stop"),
        }
    }
}

struct Slot {
    id: u64,
    member: Box<dyn Member>,
    fd: RawFd,
    /// Has (or may have) completions: gets a turn in the next round.
    pending: bool,
    /// Lives in the libusb context: pending after every event handling.
    in_context: bool,
}

/// The reader thread's state.
pub(crate) struct Serve {
    epoll: Epoll,
    events: Box<[EpollEvent]>,
    /// The events buffer and member list, locked as the members' memory is.
    lease: MemoryLease,
    inbox: mpsc::Receiver<Command>,
    bell: Arc<Doorbell>,
    members: Vec<Option<Slot>>,
    /// Members with `pending` set.
    pending: usize,
    /// Where the next round starts.
    rotor: usize,
    /// The shortest housekeeping interval among the members.
    tick: Option<Duration>,
    next_tick: Timestamp,
    ports: Arc<AtomicUsize>,
    locking: MemoryLocking,
    /// The reader's libusb context, once it has a libusb port.
    context: Option<Arc<dyn ContextEvents>>,
    /// The context's descriptors fired since its events were last handled.
    context_ready: bool,
    context_failures: u32,
}

impl Serve {
    /// On the reader thread: the epoll instance with the command doorbell in it.
    pub(crate) fn new(
        inbox: mpsc::Receiver<Command>,
        bell: Arc<Doorbell>,
        ports: Arc<AtomicUsize>,
        locking: MemoryLocking,
    ) -> std::io::Result<Serve> {
        let epoll = Epoll::new()?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&*bell));
        epoll.add(fd, COMMANDS)?;
        Ok(Serve {
            epoll,
            events: vec![NO_EVENT; EVENTS].into_boxed_slice(),
            lease: MemoryLease::default(),
            inbox,
            bell,
            members: Vec::new(),
            pending: 0,
            rotor: 0,
            tick: None,
            next_tick: Timestamp::now(),
            ports,
            locking,
            context: None,
            context_ready: false,
            context_failures: 0,
        })
    }

    /// Serves until told to stop; then every member left leaves.
    pub(crate) fn run(&mut self, faults: &FaultCounter) {
        loop {
            let timeout = if self.pending > 0 {
                Some(Duration::ZERO)
            } else {
                self.tick
                    .map(|_| self.next_tick.saturating_since(Timestamp::now()))
                    .or(IDLE)
            };
            let mut commands = false;
            match self.epoll.wait(&mut self.events, timeout) {
                Ok(n) => {
                    for event in &self.events[..n] {
                        match token(event) {
                            COMMANDS => commands = true,
                            CONTEXT => self.context_ready = true,
                            i => {
                                let i = usize::try_from(i).unwrap_or(usize::MAX);
                                if let Some(Some(slot)) = self.members.get_mut(i)
                                    && !slot.pending
                                {
                                    slot.pending = true;
                                    self.pending += 1;
                                }
                            }
                        }
                    }
                }
                Err(_) => std::thread::sleep(BACK_OFF),
            }
            if self.context_ready {
                self.context_events();
            }
            self.round();
            let now = Timestamp::now();
            if self.tick.is_some() && now >= self.next_tick {
                self.housekeeping(now);
            }
            if commands && faults.count_as_setup(|| self.commands()) {
                break;
            }
        }
        for i in 0..self.members.len() {
            self.remove(i, "the shared reader stopped");
        }
        self.lease.release();
    }

    /// One round: a turn for every pending member, from the rotor on.
    fn round(&mut self) {
        let n = self.members.len();
        if self.pending == 0 || n == 0 {
            return;
        }
        let start = self.rotor % n;
        self.rotor = start + 1;
        let now = Timestamp::now();
        for k in 0..n {
            let i = (start + k) % n;
            let outcome = match self.members[i].as_mut() {
                Some(slot) if slot.pending => slot.member.turn(),
                _ => continue,
            };
            match (outcome, self.members[i].as_mut()) {
                (Ok(0), Some(slot)) => {
                    slot.pending = false;
                    self.pending -= 1;
                }
                // More may be there: another turn next round.
                (Ok(_), Some(slot)) => slot.member.after_wait(now),
                (Ok(_), None) => {}
                (Err(LinkLost(why)), _) => self.remove(i, why),
            }
        }
    }

    /// Lets libusb reap for the whole context, then marks every libusb port
    /// pending: each takes its own completions in its turn.
    fn context_events(&mut self) {
        self.context_ready = false;
        let Some(context) = &self.context else {
            return;
        };
        match context.handle_events() {
            Ok(()) => self.context_failures = 0,
            Err(e) => {
                self.context_failures += 1;
                if self.context_failures >= CONTEXT_FAILURE_LIMIT {
                    self.lose_context(e);
                    return;
                }
                // Look again after a pause; the edge for what is left is gone.
                self.context_ready = true;
                std::thread::sleep(BACK_OFF);
            }
        }
        for slot in self.members.iter_mut().flatten() {
            if slot.in_context && !slot.pending {
                slot.pending = true;
                self.pending += 1;
            }
        }
    }

    /// The context's events cannot be handled: its ports are lost (slow path).
    #[cold]
    fn lose_context(&mut self, e: crate::error::TransferError) {
        let why = format!(
            "handling the shared reader's USB events failed {CONTEXT_FAILURE_LIMIT} times in a row (last: {e})"
        );
        for i in 0..self.members.len() {
            if self.members[i].as_ref().is_some_and(|s| s.in_context) {
                self.remove(i, why.clone());
            }
        }
        self.context_failures = 0;
    }

    /// Watches the context's descriptors (all of them: a port that joined
    /// may have opened a device, which adds its usbfs descriptor). One that
    /// is watched already stays; one libusb closed left the set by itself.
    fn watch_context(&mut self) {
        let Some(context) = &self.context else {
            return;
        };
        for fd in context.pollfds() {
            match self.epoll.add_polled(fd.fd, fd.events, CONTEXT) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => log::warn!(
                    "the shared reader cannot watch libusb descriptor {}: {e}",
                    fd.fd
                ),
            }
        }
        // Whatever is there already has no edge: look now.
        self.context_ready = true;
    }

    /// Every member's stall check and loss notice, once per tick; the tick
    /// follows the members' latency timers, which the application may change.
    fn housekeeping(&mut self, now: Timestamp) {
        let mut tick: Option<Duration> = None;
        for slot in self.members.iter_mut().flatten() {
            slot.member.after_wait(now);
            let interval = slot.member.poll_interval();
            tick = Some(tick.map_or(interval, |t| t.min(interval)));
        }
        self.tick = tick;
        self.next_tick = now + tick.unwrap_or_default();
    }

    /// Drains the mailbox. Returns whether to stop.
    fn commands(&mut self) -> bool {
        self.bell.arm();
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::Join { id, member, done } => {
                    let _ = done.send(self.join(id, member));
                }
                Command::Arm { id, pipeline, done } => {
                    let _ = done.send(self.arm(id, pipeline));
                }
                Command::Context { events, done } => {
                    let claimed = events.claim();
                    if claimed {
                        self.context = Some(events);
                        self.watch_context();
                    }
                    let _ = done.send(claimed);
                }
                Command::Leave { id, done } => {
                    if let Some(i) = self.find(id) {
                        self.remove(i, "the port was closed");
                    }
                    let _ = done.send(());
                }
                Command::Stop => return true,
            }
        }
        false
    }

    fn join(&mut self, id: u64, mut member: Box<dyn Member>) -> Result<MemoryStatus, LinkLost> {
        // Counted before it starts: a resumed port puts `Resumed` in its
        // stream as it starts, and whoever reads that event must find the
        // port counted (`Reader::ports`), not a moment later.
        self.ports.fetch_add(1, Ordering::AcqRel);
        let memory = match member.join(self.locking) {
            Ok(memory) => memory,
            Err(lost) => {
                self.ports.fetch_sub(1, Ordering::AcqRel);
                member.leave(lost.0.clone());
                return Err(lost);
            }
        };
        let i = match self.members.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.members.push(None);
                self.members.len() - 1
            }
        };
        let fd = member.readiness();
        if let Err(e) = self.epoll.add(fd, i as u64) {
            let why = format!("the shared reader could not watch the port: {e}");
            self.ports.fetch_sub(1, Ordering::AcqRel);
            member.leave(why.clone());
            return Err(LinkLost(why));
        }
        // Whatever arrived before the registration has no edge: look now.
        let in_context = member.in_context();
        self.members[i] = Some(Slot {
            id,
            member,
            fd,
            pending: true,
            in_context,
        });
        self.pending += 1;
        if in_context {
            self.watch_context();
        }
        self.housekeeping(Timestamp::now());
        self.lock_own_state();
        Ok(memory)
    }

    /// Gives hosted port `id` its pipeline and puts its transfers in flight.
    fn arm(&mut self, id: u64, pipeline: Pipeline) -> Result<MemoryStatus, LinkLost> {
        let Some(i) = self.find(id) else {
            return Err(LinkLost(
                "the port left the shared reader while it was being configured \
                 (its device was lost)"
                    .into(),
            ));
        };
        let armed = match self.members[i].as_mut() {
            Some(slot) => slot.member.arm(pipeline, self.locking),
            None => return Err(LinkLost("the port is gone".into())),
        };
        match armed {
            Ok(memory) => {
                if let Some(slot) = self.members[i].as_mut()
                    && !slot.pending
                {
                    slot.pending = true;
                    self.pending += 1;
                }
                // The pipeline brings its own housekeeping interval.
                self.housekeeping(Timestamp::now());
                Ok(memory)
            }
            Err(lost) => {
                self.remove(i, lost.0.clone());
                Err(lost)
            }
        }
    }

    fn find(&self, id: u64) -> Option<usize> {
        self.members
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.id == id))
    }

    /// Prefaults and locks the reader's own per-round state (the event
    /// buffer and the member list, which a join may have moved), as the
    /// members' memory is locked.
    fn lock_own_state(&mut self) {
        self.events.fill(NO_EVENT);
        let mut regions = HotRegions::default();
        regions.add("shared reader state", &self.events[..]);
        regions.add("shared reader state", &self.members[..]);
        // The new lease first: pages both cover stay locked throughout.
        let (lease, _) = lock_regions(self.locking, &regions);
        self.lease = lease;
    }

    /// Takes member `i` out (the slow path): unwatched first, so its
    /// descriptor can close, then its stream ended with `why`.
    fn remove(&mut self, i: usize, why: impl Into<String>) {
        let Some(mut slot) = self.members.get_mut(i).and_then(Option::take) else {
            return;
        };
        let _ = self.epoll.delete(slot.fd);
        if slot.pending {
            self.pending -= 1;
        }
        // Uncounted before its stream ends, for the reason `join` counts
        // first: whoever reads the end finds the port gone.
        self.ports.fetch_sub(1, Ordering::AcqRel);
        slot.member.leave(why.into());
    }
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("members", &self.members.iter().flatten().count())
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
