//! Host side: the "firmware" of the emulated device, i.e. whatever sits on the
//! far side of the FT232's UART.
//!
//! QEMU's `usb-serial` device forwards the guest's bulk-OUT payload to a
//! chardev (a unix socket here) and turns bytes read from it into bulk-IN
//! packets. With `always-plugged=off` (the default) the device is plugged in
//! only while a client is connected, so connecting to the socket *is*
//! plugging the adapter in, and closing it is pulling it out.
//!
//! Two rules shape the loop:
//! * keep draining the socket at all times: QEMU writes guest->host data with
//!   a blocking write from the vCPU thread, so a host that stops reading
//!   freezes the guest;
//! * never block on a write either: the socket is non-blocking and replies
//!   queue in memory until `ppoll` says there is room.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::proto::{FROB_REQUEST_LEN, Mode, frob_reply};

/// How often to retry connecting to the socket while "unplugged".
const CONNECT_RETRY: Duration = Duration::from_millis(20);
/// Longest sleep in the session loop, so mode changes, unplug requests and
/// stop are noticed promptly even when no data flows.
const MAX_POLL: Duration = Duration::from_millis(5);

/// Firmware counters, reported by `STATS` and at the end of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Successful connections to the socket (plug-ins).
    pub connects: u64,
    /// Bytes received from the guest.
    pub rx_bytes: u64,
    /// Bytes sent to the guest.
    pub tx_bytes: u64,
    /// Complete frobnicator requests answered (or scheduled).
    pub frob_requests: u64,
    /// Unplugs performed on request.
    pub unplugs: u64,
}

#[derive(Debug)]
struct Shared {
    mode: Mode,
    /// Bumped on every mode change, so the loop can drop a partial request.
    mode_gen: u64,
    /// Pending unplug: close at this instant, stay down this long.
    unplug: Option<(Instant, Duration)>,
    stats: Stats,
    stop: bool,
}

/// Handle to the running firmware: change its mode, schedule unplugs, read
/// counters, stop it. Cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct Firmware {
    shared: Arc<Mutex<Shared>>,
    t0: Instant,
}

/// The data path, separated from I/O so it can be unit-tested.
#[derive(Debug, Default)]
pub struct Engine {
    partial: Vec<u8>,
    /// Frobnicator replies not yet due: (due time, byte), in request order.
    scheduled: VecDeque<(Instant, u8)>,
    /// Bytes ready to be written to the socket.
    pub out: VecDeque<u8>,
}

impl Engine {
    /// Feeds bytes received from the guest at `now` through `mode`; returns
    /// the number of complete frobnicator requests seen.
    pub fn on_rx(&mut self, data: &[u8], mode: Mode, now: Instant) -> u64 {
        match mode {
            Mode::Echo => {
                self.out.extend(data);
                0
            }
            Mode::Frob { delay_us } => {
                let mut n = 0;
                for &b in data {
                    self.partial.push(b);
                    if self.partial.len() == FROB_REQUEST_LEN {
                        let due = now + Duration::from_micros(delay_us);
                        self.scheduled.push_back((due, frob_reply(&self.partial)));
                        self.partial.clear();
                        n += 1;
                    }
                }
                n
            }
        }
    }

    /// Moves the replies due at `now` to the output queue.
    pub fn release_due(&mut self, now: Instant) {
        while let Some(&(due, byte)) = self.scheduled.front() {
            if due > now {
                break;
            }
            self.out.push_back(byte);
            self.scheduled.pop_front();
        }
    }

    /// When the next scheduled reply is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.scheduled.front().map(|&(due, _)| due)
    }

    /// Forgets a partial request (mode change or reconnect).
    pub fn reset_partial(&mut self) {
        self.partial.clear();
    }
}

enum SessionEnd {
    Stop,
    Unplug(Duration),
    Closed(String),
}

impl Firmware {
    /// Starts the firmware thread: it connects to `socket` (retrying every
    /// 20 ms), runs `mode`, and logs events to `log`.
    pub fn spawn(socket: PathBuf, mode: Mode, log: File) -> (Firmware, JoinHandle<()>) {
        let fw = Firmware {
            shared: Arc::new(Mutex::new(Shared {
                mode,
                mode_gen: 0,
                unplug: None,
                stats: Stats::default(),
                stop: false,
            })),
            t0: Instant::now(),
        };
        let worker = fw.clone();
        let handle = thread::Builder::new()
            .name("firmware".into())
            .spawn(move || worker.main_loop(&socket, log))
            .expect("spawn firmware thread");
        (fw, handle)
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere must not wedge the firmware: take the data anyway.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches the mode; applies to every byte received from now on.
    pub fn set_mode(&self, mode: Mode) {
        let mut s = self.lock();
        s.mode = mode;
        s.mode_gen += 1;
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.lock().mode
    }

    /// Schedules an unplug `after` from now, lasting `down`.
    pub fn unplug(&self, after: Duration, down: Duration) {
        self.lock().unplug = Some((Instant::now() + after, down));
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    /// Asks the thread to disconnect and exit.
    pub fn stop(&self) {
        self.lock().stop = true;
    }

    fn main_loop(&self, socket: &std::path::Path, mut log: File) {
        // Reply delays are tens of microseconds: without this, the kernel's
        // default 50 us timer slack would stretch every ppoll timeout.
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only
        // affects the calling thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        let mut say = |msg: &str| {
            let _ = writeln!(log, "{:9.3} {msg}", self.t0.elapsed().as_secs_f64());
        };
        loop {
            let stream = loop {
                if self.lock().stop {
                    say("stop");
                    return;
                }
                match UnixStream::connect(socket) {
                    Ok(s) => break s,
                    Err(_) => thread::sleep(CONNECT_RETRY),
                }
            };
            let n = {
                let mut s = self.lock();
                s.stats.connects += 1;
                s.stats.connects
            };
            say(&format!("connected (plug-in #{n}), mode {}", self.mode()));
            match self.session(stream) {
                SessionEnd::Stop => {
                    say("stop");
                    return;
                }
                SessionEnd::Closed(why) => say(&format!("disconnected: {why}")),
                SessionEnd::Unplug(down) => {
                    say(&format!("unplugged for {} ms", down.as_millis()));
                    let until = Instant::now() + down;
                    while Instant::now() < until {
                        if self.lock().stop {
                            say("stop");
                            return;
                        }
                        thread::sleep(Duration::from_millis(2));
                    }
                    say("re-plugging");
                }
            }
        }
    }

    fn session(&self, mut stream: UnixStream) -> SessionEnd {
        if let Err(e) = stream.set_nonblocking(true) {
            return SessionEnd::Closed(format!("set_nonblocking: {e}"));
        }
        let fd = stream.as_raw_fd();
        let mut engine = Engine::default();
        let mut gen_seen = self.lock().mode_gen;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (mode_gen, unplug, stop) = {
                let s = self.lock();
                (s.mode_gen, s.unplug, s.stop)
            };
            if stop {
                return SessionEnd::Stop;
            }
            if mode_gen != gen_seen {
                engine.reset_partial();
                gen_seen = mode_gen;
            }
            let now = Instant::now();
            if let Some((at, down)) = unplug
                && now >= at
            {
                let mut s = self.lock();
                s.unplug = None;
                s.stats.unplugs += 1;
                drop(s);
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return SessionEnd::Unplug(down);
            }
            engine.release_due(now);
            if let Err(e) = self.flush(&mut stream, &mut engine) {
                return SessionEnd::Closed(format!("write: {e}"));
            }

            // Sleep until data arrives, the socket has room for pending
            // output, the next reply is due, or MAX_POLL passes.
            let mut wait = MAX_POLL;
            for t in [engine.next_due(), unplug.map(|u| u.0)]
                .into_iter()
                .flatten()
            {
                wait = wait.min(t.saturating_duration_since(now));
            }
            let mut events = libc::POLLIN;
            if !engine.out.is_empty() {
                events |= libc::POLLOUT;
            }
            let mut pfd = libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            let ts = libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `pfd` and `ts` are valid for the duration of the call,
            // nfds is 1 matching the single pollfd, and a null sigmask is
            // allowed (no signal mask change).
            let rc = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return SessionEnd::Closed(format!("ppoll: {e}"));
                }
                continue;
            }
            if pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
                continue;
            }
            // Drain everything available before doing anything else.
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => return SessionEnd::Closed("QEMU closed the socket".into()),
                    Ok(n) => {
                        // Read the mode now, not before the poll: these bytes
                        // may follow a MODE command answered meanwhile.
                        let mode = self.mode();
                        let reqs = engine.on_rx(&buf[..n], mode, Instant::now());
                        let mut s = self.lock();
                        s.stats.rx_bytes += n as u64;
                        s.stats.frob_requests += reqs;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return SessionEnd::Closed(format!("read: {e}")),
                }
            }
        }
    }

    fn flush(&self, stream: &mut UnixStream, engine: &mut Engine) -> io::Result<()> {
        while !engine.out.is_empty() {
            let (head, _) = engine.out.as_slices();
            match stream.write(head) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    engine.out.drain(..n);
                    self.lock().stats.tx_bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_returns_every_byte() {
        let mut e = Engine::default();
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(e.on_rx(&all, Mode::Echo, Instant::now()), 0);
        assert_eq!(e.out.iter().copied().collect::<Vec<_>>(), all);
    }

    #[test]
    fn frob_waits_for_seven_bytes_and_the_delay() {
        let mut e = Engine::default();
        let t0 = Instant::now();
        let mode = Mode::Frob { delay_us: 1000 };
        assert_eq!(e.on_rx(&[1, 2, 3], mode, t0), 0);
        assert_eq!(e.on_rx(&[4, 5, 6, 7, 250, 10], mode, t0), 1);
        e.release_due(t0);
        assert!(e.out.is_empty(), "reply before its delay");
        assert_eq!(e.next_due(), Some(t0 + Duration::from_millis(1)));
        e.release_due(t0 + Duration::from_millis(1));
        assert_eq!(e.out.pop_front(), Some(28));
        // 250, 10 are a partial request; a mode change drops them.
        e.reset_partial();
        assert_eq!(e.on_rx(&[1; 7], mode, t0), 1);
        e.release_due(t0 + Duration::from_secs(1));
        assert_eq!(e.out.pop_front(), Some(7));
    }

    #[test]
    fn firmware_serves_a_socket_and_unplugs() {
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("vhil-fw-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("ftdi.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).unwrap();
        let log = File::create(dir.join("fw.log")).unwrap();
        let (fw, th) = Firmware::spawn(sock.clone(), Mode::Echo, log);

        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(b"abc").unwrap();
        let mut got = [0u8; 3];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abc");

        fw.set_mode(Mode::Frob { delay_us: 0 });
        conn.write_all(&[1, 2, 3, 4, 5, 6, 7]).unwrap();
        let mut r = [0u8; 1];
        conn.read_exact(&mut r).unwrap();
        assert_eq!(r[0], 28);

        fw.unplug(Duration::ZERO, Duration::from_millis(10));
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap(); // EOF = unplugged
        let (_conn2, _) = listener.accept().unwrap(); // re-plugged
        fw.stop();
        th.join().unwrap();
        let st = fw.stats();
        assert_eq!((st.connects, st.unplugs, st.frob_requests), (2, 1, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
