//! The exit path without USB: the registry in this process, and the signal
//! path in child processes (this test binary run again, with the `child`
//! test and a role in the environment) whose fake interface writes a marker
//! file when it is released.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::registry::{self, Registration, Release};
use crate::sys::signal::{reset_to_default, send};

const ROLE: &str = "FTDI_RT_EXIT_TEST_ROLE";
const MARKER: &str = "FTDI_RT_EXIT_TEST_MARKER";
/// The signals the child puts back to their default action first (those a
/// wrapper such as nohup set on purpose stay as it left them).
const RESET: &str = "FTDI_RT_EXIT_TEST_RESET";
const READY: &str = "ftdi-rt-exit-child: ready";
const RELEASING: &str = "ftdi-rt-exit-child: releasing";
/// The exit code of the application's own handler in the children.
const APP_EXIT: i32 = 7;
/// How long a child may take to end: a bound for a broken build, not a
/// synchronisation (every wait below is on an event).
const CHILD_LIMIT: Duration = Duration::from_secs(30);

fn append(path: &Path, line: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("opening the marker file");
    writeln!(f, "{line}").expect("writing the marker file");
}

/// A fake claimed interface: releasing it writes "released" to a file (and,
/// `hang`, then never returns, like a re-attach stuck in the kernel).
#[derive(Debug)]
struct Marker {
    path: PathBuf,
    hang: bool,
    released: Mutex<usize>,
}

impl Release for Marker {
    fn release(&self) {
        *self.released.lock().unwrap() += 1;
        if self.path.as_os_str().is_empty() {
            return;
        }
        append(&self.path, "released");
        if self.hang {
            println!("{RELEASING}");
            loop {
                std::thread::park();
            }
        }
    }
}

fn marker(path: PathBuf, hang: bool) -> Arc<Marker> {
    Arc::new(Marker {
        path,
        hang,
        released: Mutex::new(0),
    })
}

/// The child process's side. Not a test of its own: the tests below run it
/// in a child, with its role in the environment.
#[test]
#[ignore = "the child process of the signal tests in this module, which run it themselves"]
fn child() {
    let role = std::env::var(ROLE).expect("a role in FTDI_RT_EXIT_TEST_ROLE");
    let path = PathBuf::from(std::env::var(MARKER).expect("a marker path"));
    // Whatever the test run inherited (a CI started in the background of a
    // non-interactive shell ignores SIGINT), the child starts as a process
    // started from a terminal does.
    for name in std::env::var(RESET).unwrap_or_default().split(',') {
        let signal = match name {
            "INT" => libc::SIGINT,
            "TERM" => libc::SIGTERM,
            "HUP" => libc::SIGHUP,
            _ => continue,
        };
        reset_to_default(signal).expect("resetting a signal to its default");
    }
    let app_path = path.clone();
    let app_exit = move || {
        append(&app_path, "app");
        std::process::exit(APP_EXIT);
    };
    let register = |hang| Registration::new(marker(path.clone(), hang));
    let _kept = match role.as_str() {
        "plain" => register(false),
        "hang" => register(true),
        "opted-out" => {
            super::leave_signals_alone();
            register(false)
        }
        "app-before" => {
            ctrlc::set_handler(app_exit).expect("installing the app's SIGINT handler");
            register(false)
        }
        "app-after" => {
            let kept = register(false);
            ctrlc::set_handler(app_exit).expect("installing the app's SIGINT handler");
            kept
        }
        "hook-after" => {
            let kept = register(false);
            // The application handles SIGTERM through signal-hook, which
            // chains to the handler it found (ftdi-rt's).
            let (mut rx, tx) = std::os::unix::net::UnixStream::pair().unwrap();
            signal_hook::low_level::pipe::register(libc::SIGTERM, tx).unwrap();
            println!("{READY}");
            let mut byte = [0u8];
            std::io::Read::read_exact(&mut rx, &mut byte).unwrap();
            // Ends the process only if ftdi-rt's thread has looked at the
            // signal and left it alone (had it not, it would have ended the
            // process as killed by SIGTERM before this returns).
            super::signals::test_hook::wait_declined(1);
            drop(kept);
            app_exit();
            unreachable!()
        }
        other => panic!("unknown role {other}"),
    };
    println!("{READY}");
    loop {
        std::thread::park();
    }
}

/// A child process in one role.
struct Child {
    process: std::process::Child,
    out: BufReader<ChildStdout>,
    marker: PathBuf,
}

impl Child {
    fn spawn(role: &str, under: Option<&str>) -> Child {
        let marker = std::env::temp_dir().join(format!(
            "ftdi-rt-exit-{}-{role}-{}",
            std::process::id(),
            MARKER_SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_file(&marker);
        let exe = std::env::current_exe().unwrap();
        let mut cmd = match under {
            Some(wrapper) => {
                let mut c = Command::new(wrapper);
                c.arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut process = cmd
            .args([
                "--exact",
                "exit::tests::child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env(MARKER, &marker)
            // Under nohup, SIGHUP stays as nohup set it.
            .env(
                RESET,
                if under.is_some() {
                    "INT,TERM"
                } else {
                    "INT,TERM,HUP"
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning the test binary as a child");
        let out = BufReader::new(process.stdout.take().unwrap());
        let mut child = Child {
            process,
            out,
            marker,
        };
        child.wait_for(READY);
        child
    }

    /// Reads the child's output until a line holds `what` (libtest may
    /// print its own text in front of it).
    fn wait_for(&mut self, what: &str) {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "the child ended before printing {what:?}");
            if line.contains(what) {
                return;
            }
        }
    }

    fn signal(&self, signal: libc::c_int) {
        send(self.process.id(), signal).expect("kill");
    }

    /// Waits for the child to end; its status and the marker's lines.
    fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let t0 = Instant::now();
        let status = loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                break status;
            }
            if t0.elapsed() > CHILD_LIMIT {
                let _ = self.process.kill();
                panic!("the child did not end within {CHILD_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let lines = std::fs::read_to_string(&self.marker)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        let _ = std::fs::remove_file(&self.marker);
        (status, lines)
    }
}

static MARKER_SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn each_signal_releases_then_ends_the_process_as_killed_by_it() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let child = Child::spawn("plain", None);
        child.signal(signal);
        let (status, marker) = child.finish();
        assert_eq!(status.signal(), Some(signal), "{status:?}");
        assert_eq!(marker, ["released"], "signal {signal}");
    }
}

#[test]
fn a_second_signal_ends_a_release_that_hangs() {
    let mut child = Child::spawn("hang", None);
    child.signal(libc::SIGTERM);
    child.wait_for(RELEASING);
    child.signal(libc::SIGINT);
    let (status, marker) = child.finish();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    assert_eq!(marker, ["released"]);
}

#[test]
fn opting_out_leaves_the_default_action() {
    let child = Child::spawn("opted-out", None);
    child.signal(libc::SIGTERM);
    let (status, marker) = child.finish();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(marker.is_empty(), "released although opted out: {marker:?}");
}

#[test]
fn an_ignored_signal_stays_ignored() {
    // nohup starts the child with SIGHUP ignored.
    let child = Child::spawn("plain", Some("nohup"));
    child.signal(libc::SIGHUP);
    // Had ftdi-rt handled SIGHUP, the child would end by it (pending
    // signals are delivered lowest number first, SIGHUP before SIGTERM).
    child.signal(libc::SIGTERM);
    let (status, marker) = child.finish();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert_eq!(marker, ["released"]);
}

#[test]
fn an_application_handler_installed_before_keeps_working() {
    let child = Child::spawn("app-before", None);
    child.signal(libc::SIGINT);
    let (status, marker) = child.finish();
    assert_eq!(status.code(), Some(APP_EXIT), "{status:?}");
    assert_eq!(
        marker,
        ["app"],
        "the app's handler ran, ftdi-rt released nothing"
    );
}

#[test]
fn an_application_handler_installed_after_keeps_working() {
    let child = Child::spawn("app-after", None);
    child.signal(libc::SIGINT);
    let (status, marker) = child.finish();
    assert_eq!(status.code(), Some(APP_EXIT), "{status:?}");
    assert_eq!(marker, ["app"]);
}

#[test]
fn a_signal_hook_registration_after_ftdi_rt_keeps_working() {
    let child = Child::spawn("hook-after", None);
    child.signal(libc::SIGTERM);
    let (status, marker) = child.finish();
    assert_eq!(status.code(), Some(APP_EXIT), "{status:?}");
    // The app closed its port (the registration) after the signal.
    assert_eq!(marker, ["released", "app"]);
}

#[test]
fn an_entry_is_released_once_by_whoever_takes_it() {
    // In this process: no handlers (the children above test those).
    super::leave_signals_alone();
    let (a, b) = (marker(PathBuf::new(), false), marker(PathBuf::new(), false));
    let count = |m: &Marker| *m.released.lock().unwrap();

    let ra = Registration::new(a.clone());
    assert_eq!(registry::len(), 1);
    drop(ra);
    assert_eq!((count(&a), registry::len()), (1, 0), "a close releases");

    let rb = Registration::new(b.clone());
    assert_eq!(super::reattach_kernel_drivers(), 1);
    assert_eq!(count(&b), 1, "the exit path releases");
    drop(rb);
    assert_eq!(count(&b), 1, "and the close after it does not again");
}
