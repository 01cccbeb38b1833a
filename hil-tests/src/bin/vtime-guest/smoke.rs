//! `smoke`: the simulated FT232R through the guest's real USB stack, end to
//! end: enumeration, ftdi_sio's tty, a frobnicator exchange through the tty
//! and through ftdi-rt's userspace driver, the idle status-packet heartbeat,
//! unplug (Disconnected) and replug.

use std::path::Path;
use std::time::{Duration, Instant};

use ftdi_rt::sim::Frobnicator;
use ftdi_rt::sim::usb::VirtualFtdi;
use ftdi_rt::{Chip, Error, Interface, Port, PortConfig, ReplyEnd, Selector, Timestamp};
use ftdi_rt_hil::guest::{Ctx, Outcome, sysfs_attr};
use ftdi_rt_hil::proto::FROB_REQUEST_LEN;
use ftdi_rt_hil::vdev::{VhciThreads, VirtualDevice};

/// The serial number the smoke device reports (the usb path opens it by it).
pub const SMOKE_SERIAL: &str = "VTIME001";
/// The frobnicator's processing delay (the incident's device).
const FROB_DELAY: Duration = Duration::from_micros(200);
/// A correctness limit for one exchange, not a timing assertion.
const EXCHANGE_LIMIT: Duration = Duration::from_millis(100);

/// An FT232R with a frobnicator on its UART.
pub fn frob_ft232r(serial: &str) -> Result<VirtualFtdi, String> {
    VirtualFtdi::builder(Chip::Ft232R)
        .device(Interface::A, Frobnicator::new(FROB_DELAY))
        .serial_number(serial)
        .build(Timestamp::now())
        .map_err(|e| format!("building the virtual FT232R: {e}"))
}

/// One 7-byte request, its 1-byte reply checked.
fn exchange(port: &mut Port, seed: u8) -> Result<Duration, String> {
    let request: Vec<u8> = (0..FROB_REQUEST_LEN as u8)
        .map(|i| seed.wrapping_add(i * 7))
        .collect();
    let t = port
        .transact(&request, ReplyEnd::Length(1), EXCHANGE_LIMIT)
        .map_err(|e| format!("request {request:02x?}: {e}"))?;
    let want = Frobnicator::reply_for(&request);
    if t.bytes() != [want] {
        return Err(format!(
            "request {request:02x?}: reply {:02x?}, want {want:#04x}",
            t.bytes()
        ));
    }
    Ok(t.latency())
}

fn open_usb() -> Result<Port, String> {
    let selector = Selector::Serial(SMOKE_SERIAL.into());
    Port::open_usb(&selector, &PortConfig::default()).map_err(|e| format!("open_usb: {e}"))
}

/// Enumeration as the kernel sees it: VID:PID, bcdDevice, product, ftdi_sio.
fn check_enumeration(bus_id: &str) -> Result<String, String> {
    let dir = Path::new("/sys/bus/usb/devices").join(bus_id);
    let attr = |a: &str| sysfs_attr(&dir, a).unwrap_or_else(|| "?".into());
    let seen = (
        attr("idVendor"),
        attr("idProduct"),
        attr("bcdDevice"),
        attr("product"),
        attr("serial"),
    );
    let want = ("0403", "6001", "0600", "FT232R USB UART", SMOKE_SERIAL);
    if (
        seen.0.as_str(),
        seen.1.as_str(),
        seen.2.as_str(),
        seen.3.as_str(),
        seen.4.as_str(),
    ) != want
    {
        return Err(format!("{bus_id} enumerated as {seen:?}, want {want:?}"));
    }
    let driver = std::fs::read_link(dir.join(format!("{bus_id}:1.0")).join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if driver.as_deref() != Some("ftdi_sio") {
        return Err(format!(
            "{bus_id}:1.0 is bound to {driver:?}, want ftdi_sio"
        ));
    }
    Ok(format!(
        "{bus_id} 0403:6001 bcdDevice 0600 {:?} speed {}",
        seen.3,
        attr("speed")
    ))
}

pub fn smoke(ctx: &mut Ctx) -> Outcome {
    let vhci: VhciThreads = ctx.param("vhci", VhciThreads::DEFAULT);
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        let mut dev = VirtualDevice::attach(frob_ft232r(SMOKE_SERIAL)?, vhci, 1)?;
        ctx.log(&dev.describe());
        let late = |ctx: &Ctx, dev: &VirtualDevice<VirtualFtdi>, after: &str| {
            let h = dev.device().lateness();

            ctx.log(&format!(
                "server lateness after {after}: n={} p99={} us max={} us",
                h.count,
                h.p99.as_micros(),
                h.max.as_micros()
            ));
        };
        late(ctx, &dev, "attach");
        let enumerated = check_enumeration(dev.bus_id())?;
        let tty = dev.tty()?.to_string();
        if tty != "/dev/ttyUSB0" {
            return Err(format!("the tty is {tty}, want /dev/ttyUSB0"));
        }

        let mut port =
            Port::open_tty(&tty, &PortConfig::default()).map_err(|e| format!("open_tty: {e}"))?;
        let tty_rtt = exchange(&mut port, 1)?;
        drop(port);
        late(ctx, &dev, "the tty exchange");

        let mut port = open_usb()?;
        late(ctx, &dev, "open_usb");
        let usb_rtt = exchange(&mut port, 2)?;
        // Idle at latency timer 1 ms: the chip sends a status-only packet
        // every millisecond while the reader keeps IN transfers pending.
        let before = port.stats().status_only_packets;
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let status_only = port.stats().status_only_packets - before;
        late(ctx, &dev, "the idle second");
        let per_second = status_only as f64 / t0.elapsed().as_secs_f64();
        if !(900.0..=1100.0).contains(&per_second) {
            return Err(format!(
                "{status_only} status-only packets in {:?} idle ({per_second:.0}/s), want about 1000/s",
                t0.elapsed()
            ));
        }

        // Unplug while the userspace driver waits for data.
        let unplugger = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let at = Instant::now();
            let r = dev.unplug();
            (dev, at, r)
        });
        let waited = Instant::now();
        let outcome = loop {
            match port.recv_timeout(Duration::from_secs(5)) {
                Ok(_) => continue,
                other => break other,
            }
        };
        let seen_at = Instant::now();
        let (mut dev, unplugged_at, unplug) =
            unplugger.join().map_err(|_| "the unplug thread panicked")?;
        unplug?;
        if !matches!(outcome, Err(Error::Disconnected)) {
            return Err(format!(
                "after the unplug, receive gave {outcome:?} after {:?}, want Disconnected",
                waited.elapsed()
            ));
        }
        let disconnected = seen_at.saturating_duration_since(unplugged_at);
        let why = port.stats().disconnect.unwrap_or_default();
        drop(port);

        late(ctx, &dev, "the unplug");
        let replug = dev.replug()?;
        late(ctx, &dev, "the replug");
        let mut port = open_usb()?;
        exchange(&mut port, 3).map_err(|e| format!("after the replug: {e}"))?;
        drop(port);
        let late = dev.device().lateness();
        ctx.metric(
            "smoke",
            &[
                ("enumerated_ms", dev.attach_time.0.as_millis().to_string()),
                ("tty_rtt_us", tty_rtt.as_micros().to_string()),
                ("usb_rtt_us", usb_rtt.as_micros().to_string()),
                ("status_only_per_s", format!("{per_second:.0}")),
                ("disconnected_ms", disconnected.as_millis().to_string()),
                ("replug_ms", replug.as_millis().to_string()),
                ("server_late_p99_us", late.p99.as_micros().to_string()),
                ("server_late_max_us", late.max.as_micros().to_string()),
            ],
        );
        Ok(format!(
            "{enumerated}; {tty}; frob through tty {} us, through usb {} us; {per_second:.0} \
             status-only packets/s idle; Disconnected {} ms after the unplug ({why}); replugged \
             in {} ms, exchange ok",
            tty_rtt.as_micros(),
            usb_rtt.as_micros(),
            disconnected.as_millis(),
            replug.as_millis()
        ))
    };
    run(ctx).into()
}
