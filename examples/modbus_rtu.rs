//! Modbus RTU on the simulated chip at 9600 and 19200 Bd (8E1): each reply
//! is framed by t3.5 of silence with `Port::transact` and
//! `ReplyEnd::Silence(t3.5)`, decided from the packet stream (data packets
//! and the chip's status-only heartbeats, fed to a `timing::SilenceFramer`
//! inside the transaction engine), never by a bare timer. The simulated slave answers
//! "read holding registers" after 2 ms, with a legal one-character gap
//! before the CRC, so a framer that split inside gaps would fail the CRC.
//!
//! ```text
//! cargo run --release --example modbus_rtu
//! cargo run --release --example modbus_rtu -- 500     # requests per baud rate
//! ```

use std::time::Duration;

use ftdi_rt::proto::{DataBits, LineProperties, Parity, StopBits};
use ftdi_rt::sim::{Line, SimChip, SimConfig, WireByte};
use ftdi_rt::timing::{character_time, modbus_rtu_gaps};
use ftdi_rt::{Error, Port, PortConfig, ReplyEnd};

const RTU: LineProperties = LineProperties {
    data_bits: DataBits::Eight,
    parity: Parity::Even,
    stop_bits: StopBits::One,
};
const SLAVE: u8 = 0x11;
const THINK: Duration = Duration::from_millis(2);
const DEADLINE: Duration = Duration::from_millis(500);

fn crc16(bytes: &[u8]) -> [u8; 2] {
    let mut crc = 0xFFFFu16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc.to_le_bytes()
}

fn with_crc(mut frame: Vec<u8>) -> Vec<u8> {
    let crc = crc16(&frame);
    frame.extend(crc);
    frame
}

/// A slave answering function 0x03 (read holding registers) with register
/// n = n * 3, its CRC sent one character time after the body.
fn slave() -> impl ftdi_rt::sim::Device {
    let mut request = Vec::with_capacity(8);
    move |byte: WireByte, line: &mut Line<'_>| {
        request.push(byte.byte);
        if request.len() < 8 {
            return;
        }
        let ok = request[0] == SLAVE && request[1] == 0x03 && crc16(&request[..6]) == request[6..8];
        if ok {
            let start = u16::from_be_bytes([request[2], request[3]]);
            let count = u16::from_be_bytes([request[4], request[5]]).min(60);
            let mut body = vec![SLAVE, 0x03, (count * 2) as u8];
            for r in start..start.saturating_add(count) {
                body.extend(r.wrapping_mul(3).to_be_bytes());
            }
            let crc = crc16(&body);
            let begin = byte.end + THINK;
            let c = line.frame_time();
            line.send_at(begin, &body);
            line.send_at(begin + c * (body.len() as u32 + 1), &crc);
        }
        request.clear();
    }
}

fn run(baud: u32, requests: u32) -> ftdi_rt::Result<()> {
    let chip = SimChip::new(slave(), SimConfig::default())?;
    let config = PortConfig::default()
        .with_baud(baud)
        .with_line(RTU)
        .with_latency_timer_ms(1)
        .best_effort();
    let mut port = Port::open_sim(chip, &config)?;
    let c = character_time(baud, RTU).unwrap_or_default();
    let (t35, _) = modbus_rtu_gaps(baud, c);
    let (mut good, mut bad) = (0u32, 0u32);
    let mut past_earliest = Vec::new();
    for i in 0..requests {
        let count = 1 + (i % 20) as u16;
        let start = (i * 7 % 1000) as u16;
        let mut request = vec![SLAVE, 0x03];
        request.extend(start.to_be_bytes());
        request.extend(count.to_be_bytes());
        let request = with_crc(request);
        let (n, valid) = match port.transact(&request, ReplyEnd::Silence(t35), DEADLINE) {
            Ok(t) => {
                let reply = t.bytes();
                let n = reply.len();
                // The earliest a status packet can prove t3.5 of silence:
                // request and reply on the wire (the CRC one character
                // late), the slave's think time, t3.5 and one character.
                let earliest = c * (request.len() + n + 1 + 1) as u32 + THINK + t35;
                past_earliest.push(t.arrival().saturating_sub(earliest));
                let valid =
                    n == 5 + 2 * usize::from(count) && crc16(&reply[..n - 2]) == reply[n - 2..];
                (n, valid)
            }
            Err(Error::DeadlineMissed { .. }) => {
                if let Some(miss) = port.last_miss() {
                    println!("  request {i}: {miss}");
                }
                (0, false)
            }
            Err(e) => return Err(e),
        };
        if valid {
            good += 1
        } else {
            bad += 1;
            println!("  request {i}: {n}-byte reply is not one whole frame");
        }
        // t3.5 of silence before the next request, as the master must keep.
        std::thread::sleep(t35);
    }
    past_earliest.sort();
    println!(
        "{baud} Bd 8E1, t3.5 = {t35:?}: {good} replies framed whole (CRC good), {bad} not; \
         end decided {:?} median, {:?} max after the earliest instant a packet could \
         prove t3.5 (USB OUT time included)",
        past_earliest.get(past_earliest.len() / 2),
        past_earliest.last()
    );
    Ok(())
}

fn main() -> ftdi_rt::Result<()> {
    env_logger::init();
    let requests: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
        .max(1);
    for baud in [9600, 19_200] {
        run(baud, requests)?;
    }
    Ok(())
}
