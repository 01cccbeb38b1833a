//! One function written against `serialport::SerialPort`, run unchanged on
//! three ports: serialport's own tty port on a pty, ftdi-rt on the same
//! kind of pty (its kernel-tty transport), and ftdi-rt on the simulated
//! FT232R. The only difference is the line that opens the port:
//!
//! ```text
//! serialport::new(path, 115_200).timeout(t).open()?     // serialport
//! ftdi_rt::new(path, 115_200).timeout(t).open()?        // ftdi-rt, kernel tty
//! ftdi_rt::new("FT1ABCDE", 115_200).timeout(t).open()?  // ftdi-rt, userspace driver
//! ```
//! (With no adapter here, the last is shown with the simulated chip.)
//!
//! ```text
//! cargo run --example serialport_dropin
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use ftdi_rt::serialport::{self, SerialPort};
use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig};
use ftdi_rt_lab::PtyDevice;

const TIMEOUT: Duration = Duration::from_millis(500);
const DEVICE_DELAY: Duration = Duration::from_micros(200);

/// Generic serialport code: one request/reply exchange with the
/// frobnicator (7-byte request, 1-byte reply), and what the port says
/// about itself.
fn exchange(port: &mut dyn SerialPort) -> Result<(), Box<dyn Error>> {
    let request = [0xA5, 1, 2, 3, 4, 0x5A, 6];
    port.clear(serialport::ClearBuffer::All)?;
    let start = Instant::now();
    port.write_all(&request)?;
    let mut reply = [0u8; 1];
    port.read_exact(&mut reply)?;
    let took = start.elapsed();
    if reply[0] != Frobnicator::reply_for(&request) {
        return Err(format!("wrong reply {:#04x}", reply[0]).into());
    }
    let cts = match port.read_clear_to_send() {
        Ok(level) => level.to_string(),
        Err(e) => format!("n/a ({e})"),
    };
    println!(
        "  {}\n  {} Bd {:?} {:?} {:?}, timeout {:?}: reply {:#04x} after {took:?}, CTS {cts}, {} bytes queued",
        port.name().unwrap_or_default(),
        port.baud_rate()?,
        port.data_bits()?,
        port.parity()?,
        port.stop_bits()?,
        port.timeout(),
        reply[0],
        port.bytes_to_read()?,
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    env_logger::init();

    println!("serialport, on a pty:");
    let pty = PtyDevice::spawn(Frobnicator::new(DEVICE_DELAY))?;
    let path = pty.path().to_string_lossy().into_owned();
    let mut port = serialport::new(&path, 115_200).timeout(TIMEOUT).open()?;
    exchange(port.as_mut())?;
    drop(port);

    println!("ftdi-rt, kernel tty transport, on a pty:");
    let mut port = ftdi_rt::new(&path, 115_200)
        .timeout(TIMEOUT)
        // No realtime grant needed for a demonstration.
        .best_effort()
        .open()?;
    exchange(port.as_mut())?;
    drop(port);

    println!("ftdi-rt, simulated FT232R:");
    let chip = SimChip::new(Frobnicator::new(DEVICE_DELAY), SimConfig::default())?;
    let mut port = ftdi_rt::new("sim", 115_200)
        .timeout(TIMEOUT)
        .best_effort()
        .open_sim(chip)?;
    exchange(&mut port)?;
    Ok(())
}
