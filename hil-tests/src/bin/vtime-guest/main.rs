//! vtime-guest: the test program of the timing tier's guest. It attaches
//! simulated devices to the guest's own kernel through USB/IP (vhci-hcd) and
//! runs cases through the real kernel stack.
//!
//! Usage: `vtime-guest [--list] [--only a,b] [--skip a,b] [--set key=value]...
//!                     [--vhci 50|other] [--case-timeout s]`
//! (`vtime-guest --hold-usb SELECTOR INTERFACE` is the child process of the
//! `reattach-on-signal` case.)
//!
//! `--vhci` is how vhci-hcd's `vhci_rx`/`vhci_tx` kernel threads run
//! (`SCHED_FIFO` priority, or `other` to leave them at `SCHED_OTHER`); cases
//! read it as the `vhci` parameter. Each case prints one `RESULT` line; exit
//! status 0 = all passed, 1 = some failed, 2 = bad usage, 3 = a case hung.
//!
//! To add a case: write `fn my_case(ctx: &mut Ctx) -> Outcome` in a module
//! of this binary and append it to [`CASES`]; attach devices with
//! `ftdi_rt_hil::vdev::VirtualDevice`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use ftdi_rt_hil::guest::{Case, Ctx, Selection, emit, run_cases};
use ftdi_rt_hil::vdev::VhciThreads;
use ftdi_rt_hil::{faithful, timing};

mod probe;
mod smoke;
mod suite;

/// The registry, in run order.
const CASES: &[Case] = &[
    Case {
        name: "usbip-attach",
        about: "a descriptor-only device attaches through vhci-hcd, enumerates, unplugs, replugs; the host's detach is seen",
        run: probe::usbip_attach,
    },
    Case {
        name: "smoke",
        about: "FT232R 0403:6001 enumerates, ttyUSB0, frob exchange via tty and usb, ~1000 status packets/s idle, unplug gives Disconnected, replug works",
        run: smoke::smoke,
    },
    // The timing tier's comparison and the faithful-device cases
    // (ftdi_rt_hil::timing, ftdi_rt_hil::faithful).
    Case {
        name: "timing",
        about: "usb, tty and libftdi under idle, hogs, rt-burst and kwork on a frobnicator FT232R: one timing row each",
        run: timing::case::timing,
    },
    Case {
        name: "status-heartbeat",
        about: "~1000 status-only packets per idle second at latency 1 ms, ~62 at 16 ms, through ftdi-rt's reader",
        run: faithful::heartbeat::status_heartbeat,
    },
    Case {
        name: "latency-timer-rtt",
        about: "a one-byte echo's median round trip at latency 16 ms is several times that at 1 ms",
        run: faithful::heartbeat::latency_timer_rtt,
    },
    Case {
        name: "event-char",
        about: "at latency 16 ms a reply ending in the event character comes back at once, others wait for the timer",
        run: faithful::flush::event_char,
    },
    Case {
        name: "baud-pacing",
        about: "bytes move at the wire's rate within 2 %: FT232R 115200 Bd both ways, FT2232H 3 MBd both ways, FT232R 3 MBd to the device (to the host reported: the guest CPU's edge)",
        run: faithful::pacing::baud_pacing,
    },
    Case {
        name: "line-errors",
        about: "OE, PE, FE, BI injected in the chip arrive flagged with their byte and are counted",
        run: faithful::errors::line_errors,
    },
    Case {
        name: "app-stops-reading",
        about: "an application that stops reading loses bytes only where Overflow says, and they are counted",
        run: faithful::errors::app_stops_reading,
    },
    Case {
        name: "vhci-unplug",
        about: "a vhci detach mid-stream: Disconnected within 100 ms, writes fail, no hang; replug works",
        run: faithful::unplug::vhci_unplug,
    },
    Case {
        name: "vhci-resume",
        about: "a port with resume survives a vhci detach: Disconnected, writes fail fast; the same FT232R replugged power-cycled: Resumed with the gap, 1 resume counted, registers = settings, transactions work",
        run: faithful::resume::vhci_resume,
    },
    Case {
        name: "ft4232h-channel-b",
        about: "ftdi-rt claims channel B of an FT4232H while A, C, D stay on ftdi_sio; B's tty returns on release",
        run: faithful::multichannel::ft4232h_channel_b,
    },
    Case {
        name: "reattach-on-signal",
        about: "a child holding FT4232H channel B through ftdi-rt, killed by SIGTERM, then SIGINT: B's interface is back on ftdi_sio with its tty",
        run: faithful::reattach::reattach_on_signal,
    },
    Case {
        name: "shared-reader-16ch",
        about: "4 FT4232H, 16 channels, the request/reply loop on all at once under rt-burst: one shared reader (one device handle per chip) against 16 readers",
        run: timing::shared16::shared_reader_16ch,
    },
    Case {
        name: "write-drained",
        about: "Port::write_drained of 1-300 bytes returns after the last stop bit (chip's wire log) by at most a latency period + transport slack",
        run: faithful::drained::write_drained,
    },
    Case {
        name: "silence-framing",
        about: "Modbus RTU replies at 9600 and 19200 Bd framed by ReplyEnd::Silence(t3.5): whole frames, ended t3.5 to t3.5 + 1 character + 2 latency periods + slack after the last stop bit",
        run: faithful::silence::silence_framing,
    },
    Case {
        name: "real-adapter",
        about: "the real-adapter suite (tests/real_adapter) against a loopback FT232R with RTS->CTS and DTR->DSR jumpers",
        run: suite::real_adapter,
    },
];

fn usage() -> ExitCode {
    eprintln!(
        "usage: vtime-guest [--list] [--only a,b] [--skip a,b] [--set key=value]... \
         [--vhci 50|other] [--case-timeout SECS]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // The child role of `reattach-on-signal`.
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, selector, interface] = argv.as_slice()
        && flag == faithful::reattach::HOLD_USB
    {
        return faithful::reattach::hold_usb(selector, interface);
    }
    let mut ctx = Ctx::new();
    ctx.case_timeout = Duration::from_secs(600);
    let mut sel = Selection::default();
    let mut args = std::env::args().skip(1);
    let list = |s: String| {
        s.split(',')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    };
    while let Some(a) = args.next() {
        let mut val = || args.next();
        match a.as_str() {
            "--list" => {
                for c in CASES {
                    println!("{:20} {}", c.name, c.about);
                }
                return ExitCode::SUCCESS;
            }
            "--only" => match val() {
                Some(v) => sel.only = list(v),
                None => return usage(),
            },
            "--skip" => match val() {
                Some(v) => sel.skip = list(v),
                None => return usage(),
            },
            "--set" => match val().as_deref().and_then(|v| v.split_once('=')) {
                Some((k, v)) => {
                    ctx.params.insert(k.to_string(), v.to_string());
                }
                None => return usage(),
            },
            "--vhci" => match val().map(|v| v.parse::<VhciThreads>()) {
                Some(Ok(v)) => {
                    ctx.params.insert("vhci".into(), v.label());
                }
                Some(Err(e)) => {
                    eprintln!("vtime-guest: {e}");
                    return usage();
                }
                None => return usage(),
            },
            "--case-timeout" => match val().and_then(|v| v.parse().ok()) {
                Some(s) => ctx.case_timeout = Duration::from_secs(s),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let unknown = sel.unknown(CASES);
    if !unknown.is_empty() {
        eprintln!("vtime-guest: unknown case(s) {unknown:?}; see --list");
        return ExitCode::from(2);
    }
    emit(&format!(
        "# vtime-guest: {} case(s) selected; vhci threads {}",
        CASES.iter().filter(|c| sel.wants(c.name)).count(),
        ctx.params.get("vhci").map_or("fifo50", String::as_str)
    ));
    let sum = run_cases(CASES, &mut ctx, &sel);
    emit(&format!(
        "# vtime-guest summary: passed={} failed={} skipped={}",
        sum.passed, sum.failed, sum.skipped
    ));
    let _ = io::stdout().flush();
    if sum.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
