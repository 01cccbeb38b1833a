//! The shared reader's rounds, against scripted members (and a scripted
//! libusb context), without a thread.

use super::*;
use std::sync::Mutex;

/// A member whose turns hand over what `script` says (then nothing),
/// or forever `flood` completions; every turn is logged by name.
struct Scripted {
    name: &'static str,
    script: Vec<Result<usize, LinkLost>>,
    flood: Option<usize>,
    log: Arc<Mutex<Vec<&'static str>>>,
    /// A libusb port in the reader's context.
    usb: bool,
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
    fn in_context(&self) -> bool {
        self.usb
    }
}

fn serve_with(members: Vec<Scripted>) -> Serve {
    let (_tx, rx) = mpsc::channel();
    let bell = Arc::new(Doorbell::new().unwrap());
    let ports = Arc::new(AtomicUsize::new(0));
    let mut serve = Serve::new(rx, bell, ports, MemoryLocking::Off).unwrap();
    for (i, member) in members.into_iter().enumerate() {
        let member_in_context = member.usb;
        serve.members.push(Some(Slot {
            id: i as u64,
            member: Box::new(member),
            fd: -1,
            pending: true,
            in_context: member_in_context,
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
        usb: false,
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
        usb: false,
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

/// A libusb context whose event handlings are counted and scripted.
#[derive(Debug, Default)]
struct FakeContext {
    handled: Mutex<usize>,
    results: Mutex<Vec<Result<(), crate::error::TransferError>>>,
}

impl ContextEvents for FakeContext {
    fn claim(&self) -> bool {
        true
    }
    fn pollfds(&self) -> Vec<libc::pollfd> {
        Vec::new()
    }
    fn handle_events(&self) -> Result<(), crate::error::TransferError> {
        *self.handled.lock().unwrap() += 1;
        self.results.lock().unwrap().pop().unwrap_or(Ok(()))
    }
}

#[test]
fn context_events_are_handled_once_and_give_every_usb_port_one_turn() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let member = |name, flood, usb| Scripted {
        name,
        script: vec![],
        flood,
        log: log.clone(),
        usb,
    };
    let mut serve = serve_with(vec![
        member("usb-flood", Some(4), true),
        member("tty", None, false),
        member("usb-quiet", None, true),
    ]);
    let context = Arc::new(FakeContext::default());
    serve.context = Some(context.clone());
    serve.round();
    assert_eq!(take(&log), ["usb-flood", "tty", "usb-quiet"]);
    assert_eq!(serve.pending, 1, "the quiet ports are drained");

    // The context fires: one event handling for all its ports, and each of
    // them (not the tty) is pending for one turn in the next round.
    serve.context_ready = true;
    serve.context_events();
    assert_eq!(*context.handled.lock().unwrap(), 1);
    assert!(!serve.context_ready);
    assert_eq!(serve.pending, 2);
    serve.round();
    assert_eq!(
        take(&log),
        ["usb-quiet", "usb-flood"],
        "rotated start; the flood gets one bounded turn, the quiet port its own"
    );
    assert_eq!(serve.pending, 1);
}

#[test]
fn a_context_that_keeps_failing_loses_its_ports_only() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let member = |name, usb| Scripted {
        name,
        script: vec![],
        flood: None,
        log: log.clone(),
        usb,
    };
    let mut serve = serve_with(vec![member("usb", true), member("tty", false)]);
    let context = Arc::new(FakeContext::default());
    *context.results.lock().unwrap() =
        vec![Err(crate::error::TransferError::Fault); CONTEXT_FAILURE_LIMIT as usize];
    serve.context = Some(context.clone());
    for _ in 0..CONTEXT_FAILURE_LIMIT - 1 {
        serve.context_events();
        assert!(serve.members[0].is_some());
        assert!(serve.context_ready, "looks again after the pause");
    }
    serve.context_events();
    assert!(serve.members[0].is_none(), "the usb port is lost");
    assert!(serve.members[1].is_some(), "the tty port stays");
    assert_eq!(serve.ports.load(Ordering::Acquire), 1);
    // A success resets the count.
    serve.context_events();
    assert_eq!(serve.context_failures, 0);
}

/// A member that, as it starts, looks at how many ports the reader says it
/// serves: what an application reading the member's first event sees.
struct Observing {
    bell: Doorbell,
    ports: Arc<AtomicUsize>,
    seen: Arc<AtomicUsize>,
    fail: bool,
}

impl Member for Observing {
    fn join(&mut self, _: MemoryLocking) -> Result<MemoryStatus, LinkLost> {
        self.seen
            .store(self.ports.load(Ordering::Acquire), Ordering::Release);
        if self.fail {
            return Err(LinkLost("scripted".into()));
        }
        Ok(MemoryStatus::default())
    }
    fn readiness(&self) -> RawFd {
        use std::os::fd::{AsFd, AsRawFd};
        self.bell.as_fd().as_raw_fd()
    }
    fn turn(&mut self) -> Result<usize, LinkLost> {
        Ok(0)
    }
    fn after_wait(&mut self, _: Timestamp) {}
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn leave(&mut self, _: String) {}
}

#[test]
fn a_joining_port_is_counted_before_it_starts_and_uncounted_if_it_cannot() {
    // A resumed port puts `Resumed` in its stream as it starts; the CI run
    // that found this read `Reader::ports()` after that event and saw the
    // port missing.
    let mut serve = serve_with(Vec::new());
    let seen = Arc::new(AtomicUsize::new(usize::MAX));
    let ports = serve.ports.clone();
    let member = |fail| Observing {
        bell: Doorbell::new().unwrap(),
        ports: ports.clone(),
        seen: seen.clone(),
        fail,
    };
    let joining = Box::new(member(false));
    assert!(serve.join(1, joining).is_ok());
    assert_eq!(seen.load(Ordering::Acquire), 1, "counted while starting");
    assert_eq!(serve.ports.load(Ordering::Acquire), 1);

    let failing = Box::new(member(true));
    assert!(serve.join(2, failing).is_err());
    assert_eq!(seen.load(Ordering::Acquire), 2);
    assert_eq!(
        serve.ports.load(Ordering::Acquire),
        1,
        "a failed join is not counted"
    );
}
