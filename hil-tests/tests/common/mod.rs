//! Set-up shared by the real-adapter cases: which adapter (named by the
//! environment), opening it, one case at a time, a watchdog against hangs,
//! and output that shows in a normal `cargo test` run.
//!
//! Whether a case runs is decided at build time, by features of this
//! package: `hardware-tests` (an adapter with TX wired to RX),
//! `hardware-jumpers` (and the RTS#→CTS#, DTR#→DSR# jumpers) and
//! `hardware-unplug` (and someone at the machine to unplug it when
//! prompted). Without them the cases are reported ignored, with the reason;
//! with them, a missing adapter fails the case with what to set.

use std::io::Write as _;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use ftdi_rt::{DeviceInfo, Error, LineProperties, Port, PortConfig, Selector};

/// Names the adapter: a serial number or a bus-port path (see [`Selector`]).
pub const DEVICE_VAR: &str = "FTDI_RT_HIL_DEVICE";

/// The one command that runs the suite on a real adapter.
pub const COMMAND: &str = "FTDI_RT_HIL_DEVICE=<serial|bus-port> cargo test --release -p ftdi-rt-hil --features hardware-tests --test real_adapter -- --test-threads=1";

/// Writes one line to stderr, bypassing libtest's capture: `eprintln!` output
/// is captured and shown only for failing tests, a direct write always shows.
/// Skip notices, the unplug prompts and the measurements go through here.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::common::say_line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// See [`say!`].
pub fn say_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{args}");
}

/// One case at a time: the cases share one adapter. `--test-threads=1`
/// keeps the output in order; this lock keeps the device safe without it.
static TURN: Mutex<()> = Mutex::new(());

/// The adapter a case runs on (cloned into the case's thread).
#[derive(Clone, Debug)]
pub struct Adapter {
    /// The case's name, for messages.
    pub case: &'static str,
    /// The device, parsed from [`DEVICE_VAR`].
    pub selector: Selector,
    /// [`DEVICE_VAR`] as given.
    pub named: String,
}

/// A case that runs: the adapter, and this case's turn on it.
#[derive(Debug)]
pub struct Rig {
    /// The adapter.
    pub adapter: Adapter,
    _turn: MutexGuard<'static, ()>,
}

/// [`DEVICE_VAR`], trimmed, if set and not empty.
fn named_device() -> Option<String> {
    std::env::var(DEVICE_VAR)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The rig for `case`. The suite was built to run on an adapter (feature
/// `hardware-tests`), so a missing or unparsable [`DEVICE_VAR`] fails the
/// case, saying what to set.
pub fn rig(case: &'static str) -> Rig {
    let Some(named) = named_device() else {
        panic!(
            "{case}: no FTDI adapter is named, but the suite was built to run on one \
             (feature hardware-tests).\n\
             \x20 Wire the adapter's TXD to its RXD (with feature hardware-jumpers also RTS# to \
             CTS# and DTR# to DSR#),\n\
             \x20 set {DEVICE_VAR} to its serial number (e.g. FT1ABCDE; serial:1234 for an \
             all-digit one)\n\
             \x20 or its bus-port path (e.g. 1-1.2, as in /sys/bus/usb/devices), and run\n\
             \x20   {COMMAND}\n\
             \x20 Wiring, permissions and realtime: hil-tests/README.md."
        );
    };
    let selector = Selector::from_str(&named).unwrap_or_else(|e| panic!("{DEVICE_VAR}: {e}"));
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    say!("\n---- {case} (adapter: {selector})");
    Rig {
        adapter: Adapter {
            case,
            selector,
            named,
        },
        _turn: turn,
    }
}

impl Rig {
    /// Runs the case on its own thread and fails it if it has not finished
    /// within `limit`: a hang becomes a failure instead of a stuck run. (The
    /// hung thread keeps the port; later cases then find the device busy.)
    pub fn run<T: Send + 'static>(
        self,
        limit: Duration,
        case: impl FnOnce(&Adapter) -> T + Send + 'static,
    ) -> T {
        let adapter = self.adapter.clone();
        let (done, finished) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name(adapter.case.to_string())
            .spawn(move || {
                let out = case(&adapter);
                let _ = done.send(());
                out
            })
            .expect("spawn the case's thread");
        match finished.recv_timeout(limit) {
            // Finished, or panicked (the sender was dropped): join tells which.
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "{}: still running after {limit:?}: it hangs (the port stays open, so \
                 later cases may find the device busy)",
                self.adapter.case
            ),
        }
    }
}

impl Adapter {
    /// Opens the adapter with the default configuration: 115200 8N1, latency
    /// timer 1 ms, and a realtime reader that is *required* (the error says
    /// how to grant it).
    pub fn open(&self) -> Port {
        self.open_with(&PortConfig::default())
    }

    /// Opens the adapter; panics with the driver's explanation if it cannot.
    /// Retries for 3 s while the interface is busy (ftdi_sio may still be
    /// re-binding after the previous case closed the port).
    pub fn open_with(&self, config: &PortConfig) -> Port {
        let start = Instant::now();
        loop {
            match Port::open_usb(&self.selector, config) {
                Ok(port) => {
                    say!(
                        "  opened {} ({:?}, max packet {:?}); reader {}",
                        port.transport_info().description,
                        port.transport_info().chip,
                        port.transport_info().max_packet_size,
                        port.realtime()
                    );
                    return port;
                }
                Err(Error::Busy { .. }) if start.elapsed() < Duration::from_secs(3) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!(
                    "{}: cannot open the adapter {DEVICE_VAR}={:?} ({}): {e}\n\
                     (permissions and realtime: hil-tests/README.md)",
                    self.case, self.named, self.selector
                ),
            }
        }
    }
}

/// The listed device the selector names, as `Port::open_usb` would choose it.
pub fn find_listed(selector: &Selector, found: &[DeviceInfo]) -> Option<DeviceInfo> {
    let hit = match selector {
        Selector::First => found.first(),
        Selector::Index(i) => found.get(*i),
        Selector::Serial(s) => found.iter().find(|d| d.serial.as_deref() == Some(s)),
        Selector::Path { bus, ports } => found
            .iter()
            .find(|d| d.bus == *bus && &d.port_path == ports),
    };
    hit.cloned()
}

/// Polls `cond` every `step` until it holds (true) or `limit` passes (false).
pub fn wait_until(limit: Duration, step: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// Time `bytes` characters take on the wire at `baud` with `line` framing.
pub fn wire_time(bytes: usize, baud: u32, line: LineProperties) -> Duration {
    Duration::from_secs_f64(
        bytes as f64 * f64::from(line.frame_half_bits()) / 2.0 / f64::from(baud.max(1)),
    )
}

/// The median of `samples` (sorts them); zero for none.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
