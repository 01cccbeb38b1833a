//! RS-485 direction turnaround on the simulated chip: assert RTS (the
//! transceiver's driver enable), send a frame, and drop RTS as soon as the
//! chip reports its transmitter empty (`Port::write_drained`), never before
//! the last stop bit. The simulated transceiver on the other end records
//! when each stop bit ended and when RTS fell, so the example prints the
//! real turnaround (RTS low after the last stop bit) and counts frames cut
//! short. For contrast it also runs the usual guess (write, then sleep the
//! computed wire time), whose turnaround depends on when the write returned
//! and how long the sleep overslept: nothing reports when the line drained.
//!
//! ```text
//! cargo run --release --example rs485_turnaround
//! cargo run --release --example rs485_turnaround -- 200     # frames per method
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftdi_rt::sim::{Device, Line, SimChip, SimConfig, WireByte};
use ftdi_rt::timing::character_time;
use ftdi_rt::{LineProperties, Port, PortConfig, Timestamp};

const BAUD: u32 = 115_200;
const FRAME: usize = 32;

/// What the transceiver saw.
#[derive(Debug, Default)]
struct Bus {
    last_stop: Option<Timestamp>,
    /// RTS low after the last stop bit, per frame.
    turnarounds: Vec<Duration>,
    /// Bytes whose stop bit ended with the driver already disabled.
    cut_bytes: u64,
}

/// An RS-485 transceiver: the driver is enabled while RTS is high.
struct Transceiver(Arc<Mutex<Bus>>);

impl Device for Transceiver {
    fn on_byte(&mut self, byte: WireByte, line: &mut Line<'_>) {
        let mut bus = self.0.lock().unwrap_or_else(|p| p.into_inner());
        bus.last_stop = Some(byte.end);
        if !line.rts() {
            bus.cut_bytes += 1;
        }
    }

    fn on_modem_control(&mut self, _dtr: bool, rts: bool, line: &mut Line<'_>) {
        let mut bus = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !rts && let Some(stop) = bus.last_stop.take() {
            let now = line.now();
            bus.turnarounds.push(now.saturating_since(stop));
        }
    }
}

fn summary(label: &str, bus: &Bus, frames: usize) {
    let mut t = bus.turnarounds.clone();
    t.sort();
    let pick = |q: f64| t.get(((t.len() as f64 - 1.0) * q) as usize).copied();
    println!(
        "{label:<28} {frames} frames: RTS fell after the last stop bit by min {:?}, \
         median {:?}, max {:?}; {} bytes cut off (RTS low before their stop bit)",
        pick(0.0).unwrap_or_default(),
        pick(0.5).unwrap_or_default(),
        pick(1.0).unwrap_or_default(),
        bus.cut_bytes
    );
}

fn main() -> ftdi_rt::Result<()> {
    env_logger::init();
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let bus = Arc::new(Mutex::new(Bus::default()));
    let chip = SimChip::new(Transceiver(bus.clone()), SimConfig::default())?;
    let config = PortConfig::default()
        .with_baud(BAUD)
        .with_latency_timer_ms(1)
        .with_modem_lines(true, false)
        .best_effort();
    let mut port = Port::open_sim(chip, &config)?;
    let frame: Vec<u8> = (0..FRAME as u8).collect();

    for _ in 0..frames {
        port.set_rts(true)?;
        port.write_drained(&frame, Duration::from_millis(100))?;
        port.set_rts(false)?;
    }
    let drained = std::mem::take(&mut *bus.lock().unwrap_or_else(|p| p.into_inner()));
    summary("write_drained, then RTS low", &drained, frames);

    // The usual guess: the write returns once the chip has the bytes, then
    // sleep what they should take on the wire.
    let c = character_time(BAUD, LineProperties::EIGHT_N_ONE).unwrap_or_default();
    for _ in 0..frames {
        port.set_rts(true)?;
        port.write_all(&frame)?;
        std::thread::sleep(c * FRAME as u32);
        port.set_rts(false)?;
        // Let the line settle before the next frame.
        std::thread::sleep(c * FRAME as u32);
    }
    let guessed = std::mem::take(&mut *bus.lock().unwrap_or_else(|p| p.into_inner()));
    summary("write + sleep(wire time)", &guessed, frames);
    println!(
        "latency timer 1 ms: write_drained's stated resolution is one latency period plus \
         the USB and reader delay after the last stop bit"
    );
    Ok(())
}
