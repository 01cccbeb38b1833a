//! Set-up shared by the real-adapter cases: which adapter (named by the
//! environment), skipping with a message when none is named, opening it,
//! one case at a time, a watchdog against hangs, and output that shows
//! in a normal `cargo test` run.

use std::io::Write as _;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, Once, mpsc};
use std::time::{Duration, Instant};

use ftdi_rt::{DeviceInfo, Error, LineProperties, Port, PortConfig, Selector};

/// Names the adapter: a serial number or a bus-port path (see [`Selector`]).
pub const DEVICE_VAR: &str = "FTDI_RT_HIL_DEVICE";
/// `1`: the handshake jumpers RTS→CTS and DTR→DSR are wired.
pub const JUMPERS_VAR: &str = "FTDI_RT_HIL_JUMPERS";
/// `1`: someone is at the machine to unplug and replug the adapter when asked.
pub const UNPLUG_VAR: &str = "FTDI_RT_HIL_UNPLUG";

/// The one command that runs the suite on a real adapter.
pub const COMMAND: &str = "FTDI_RT_HIL_DEVICE=<serial|bus-port> cargo test --release -p ftdi-rt-hil --test real_adapter -- --test-threads=1";

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

/// The full explanation is printed once; later skips refer to it.
static EXPLAINED: Once = Once::new();

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

/// A case that may run: the adapter, and this case's turn on it.
#[derive(Debug)]
pub struct Rig {
    /// The adapter.
    pub adapter: Adapter,
    _turn: MutexGuard<'static, ()>,
}

fn flag(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

/// [`DEVICE_VAR`], trimmed, if set and not empty.
fn named_device() -> Option<String> {
    std::env::var(DEVICE_VAR)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The rig, or `None` after saying why the case is skipped: no adapter is
/// named. Panics if [`DEVICE_VAR`] is set but names nothing sensible.
pub fn rig(case: &'static str) -> Option<Rig> {
    let Some(named) = named_device() else {
        EXPLAINED.call_once(|| {
            say!(
                "\nreal_adapter: SKIPPING every case: no FTDI adapter is named.\n\
                 \x20 To run them: wire the adapter's TXD to its RXD (optionally RTS# to CTS# and DTR# to DSR#),\n\
                 \x20 set {DEVICE_VAR} to its serial number (e.g. FT1ABCDE; serial:1234 for an all-digit one)\n\
                 \x20 or its bus-port path (e.g. 1-1.2, as in /sys/bus/usb/devices), and run\n\
                 \x20   {COMMAND}\n\
                 \x20 Optional: {JUMPERS_VAR}=1 (handshake jumpers wired), {UNPLUG_VAR}=1 (prompted unplug case).\n\
                 \x20 Wiring, permissions and realtime: hil-tests/README.md."
            );
        });
        say!("SKIPPED {case}: {DEVICE_VAR} is not set");
        return None;
    };
    let selector = Selector::from_str(&named).unwrap_or_else(|e| panic!("{DEVICE_VAR}: {e}"));
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    say!("\n---- {case} (adapter: {selector})");
    Some(Rig {
        adapter: Adapter {
            case,
            selector,
            named,
        },
        _turn: turn,
    })
}

/// As [`rig`], and skipped unless [`JUMPERS_VAR`] says RTS→CTS and DTR→DSR are wired.
pub fn rig_with_jumpers(case: &'static str) -> Option<Rig> {
    if named_device().is_some() && !flag(JUMPERS_VAR) {
        say!(
            "SKIPPED {case}: needs the handshake jumpers RTS#→CTS# and DTR#→DSR#; \
             wire them and set {JUMPERS_VAR}=1"
        );
        return None;
    }
    rig(case)
}

/// As [`rig`], and skipped unless [`UNPLUG_VAR`] says someone will unplug the adapter.
pub fn rig_with_unplug(case: &'static str) -> Option<Rig> {
    if named_device().is_some() && !flag(UNPLUG_VAR) {
        say!(
            "SKIPPED {case}: prompts you to unplug and replug the adapter; \
             set {UNPLUG_VAR}=1 and stay at the machine"
        );
        return None;
    }
    rig(case)
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
