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

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::faults::FaultCounter;
use super::member::Member;
use crate::doorbell::Doorbell;
use crate::realtime::memory::{HotRegions, MemoryLease, MemoryLocking, MemoryStatus, lock_regions};
use crate::sys::epoll::{Epoll, EpollEvent, NO_EVENT, token};
use crate::time::Timestamp;
use crate::transport::LinkLost;

/// The command doorbell's token (members use their index).
const COMMANDS: u64 = u64::MAX;
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
    /// Stop serving port `id` (end its stream, cancel its transfers).
    Leave { id: u64, done: mpsc::SyncSender<()> },
    /// The last handle is gone.
    Stop,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Join { id, .. } => write!(f, "Join({id})"),
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
                Command::Leave { id, done } => {
                    let found = self
                        .members
                        .iter()
                        .position(|s| s.as_ref().is_some_and(|s| s.id == id));
                    if let Some(i) = found {
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
        let memory = match member.join(self.locking) {
            Ok(memory) => memory,
            Err(lost) => {
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
            member.leave(why.clone());
            return Err(LinkLost(why));
        }
        // Whatever arrived before the registration has no edge: look now.
        self.members[i] = Some(Slot {
            id,
            member,
            fd,
            pending: true,
        });
        self.pending += 1;
        self.ports.fetch_add(1, Ordering::AcqRel);
        self.housekeeping(Timestamp::now());
        self.lock_own_state();
        Ok(memory)
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
        slot.member.leave(why.into());
        self.ports.fetch_sub(1, Ordering::AcqRel);
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
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A member whose turns hand over what `script` says (then nothing),
    /// or forever `flood` completions; every turn is logged by name.
    struct Scripted {
        name: &'static str,
        script: Vec<Result<usize, LinkLost>>,
        flood: Option<usize>,
        log: Arc<Mutex<Vec<&'static str>>>,
    }

    impl Member for Scripted {
        fn join(&mut self, _: MemoryLocking) -> Result<MemoryStatus, LinkLost> {
            Ok(MemoryStatus::default())
        }
        fn readiness(&self) -> RawFd {
            -1
        }
        fn turn(&mut self) -> Result<usize, LinkLost> {
            self.log.lock().unwrap().push(self.name);
            match self.flood {
                Some(n) => Ok(n),
                None if self.script.is_empty() => Ok(0),
                None => self.script.remove(0),
            }
        }
        fn after_wait(&mut self, _: Timestamp) {}
        fn poll_interval(&self) -> Duration {
            Duration::from_millis(1)
        }
        fn leave(&mut self, _: String) {}
    }

    fn serve_with(members: Vec<Scripted>) -> Serve {
        let (_tx, rx) = mpsc::channel();
        let bell = Arc::new(Doorbell::new().unwrap());
        let ports = Arc::new(AtomicUsize::new(0));
        let mut serve = Serve::new(rx, bell, ports, MemoryLocking::Off).unwrap();
        for (i, member) in members.into_iter().enumerate() {
            serve.members.push(Some(Slot {
                id: i as u64,
                member: Box::new(member),
                fd: -1,
                pending: true,
            }));
            serve.pending += 1;
            serve.ports.fetch_add(1, Ordering::AcqRel);
        }
        serve
    }

    fn take(log: &Mutex<Vec<&'static str>>) -> Vec<&'static str> {
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[test]
    fn a_flooding_port_gets_one_turn_per_round_and_the_start_rotates() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let member = |name, script, flood| Scripted {
            name,
            script,
            flood,
            log: log.clone(),
        };
        let mut serve = serve_with(vec![
            member("flood", vec![], Some(4)),
            member("a", vec![Ok(2), Ok(1)], None),
            member("b", vec![Ok(1)], None),
        ]);
        serve.round();
        assert_eq!(take(&log), ["flood", "a", "b"]);
        serve.round();
        assert_eq!(take(&log), ["a", "b", "flood"], "starts one further on");
        // b found nothing in round 2 (re-armed, no longer pending); a has one more.
        serve.round();
        assert_eq!(take(&log), ["flood", "a"]);
        serve.round();
        assert_eq!(take(&log), ["flood"], "the quiet ports are drained");
        assert_eq!(serve.pending, 1);
    }

    #[test]
    fn a_lost_link_removes_that_port_only() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let member = |name, script| Scripted {
            name,
            script,
            flood: None,
            log: log.clone(),
        };
        let mut serve = serve_with(vec![
            member("a", vec![Ok(1), Ok(1)]),
            member("lost", vec![Err(LinkLost("unplugged".into()))]),
        ]);
        serve.round();
        assert_eq!(take(&log), ["a", "lost"]);
        assert!(serve.members[1].is_none());
        assert_eq!(serve.ports.load(Ordering::Acquire), 1);
        serve.round();
        serve.round();
        assert_eq!(take(&log), ["a", "a"]);
        assert_eq!(serve.pending, 0);
    }
}
