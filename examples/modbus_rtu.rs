//! Modbus RTU on the simulated chip at 9600 and 19200 Bd (8E1): each reply
//! is framed by t3.5 of silence, decided from the packet stream (data
//! packets and the chip's status-only heartbeats, `timing::SilenceFramer`
//! fed by `Port::watch_packets`), never by a bare timer; the request's end
//! on the wire comes from `Port::write_drained`. The simulated slave answers
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
use ftdi_rt::timing::{SilenceFramer, character_time, modbus_rtu_gaps};
use ftdi_rt::{Port, PortConfig};

const RTU: LineProperties = LineProperties {
    data_bits: DataBits::Eight,
    parity: Parity::Even,
    stop_bits: StopBits::One,
};
const SLAVE: u8 = 0x11;
const THINK: Duration = Duration::from_millis(2);

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
    let mut after_last = Vec::new();
    for i in 0..requests {
        let count = 1 + (i % 20) as u16;
        let start = (i * 7 % 1000) as u16;
        let mut request = vec![SLAVE, 0x03];
        request.extend(start.to_be_bytes());
        request.extend(count.to_be_bytes());
        let request = with_crc(request);
        let from = port.next_packet_seq();
        port.write_drained(&request, Duration::from_millis(100))?;
        let mut framer = SilenceFramer::new(t35, c).with_arrival_jitter(Duration::from_micros(100));
        let end = port.watch_packets(from, Duration::from_millis(500), |p| {
            framer.on_packet(p.arrived, usize::from(p.payload_len))
        })?;
        after_last.push(end.decided - end.last_data);
        let mut reply = Vec::new();
        while let Some(chunk) = port.try_recv()? {
            reply.extend_from_slice(chunk.payload());
        }
        let n = reply.len();
        let valid = n == 5 + 2 * usize::from(count) && crc16(&reply[..n - 2]) == reply[n - 2..];
        if valid {
            good += 1
        } else {
            bad += 1
        }
        // t3.5 of silence before the next request, as the master must keep.
        std::thread::sleep(t35);
    }
    after_last.sort();
    println!(
        "{baud} Bd 8E1, t3.5 = {t35:?}: {good} replies framed whole (CRC good), {bad} not; \
         silence decided {:?} median, {:?} max after the last data packet arrived",
        after_last[after_last.len() / 2],
        after_last[after_last.len() - 1]
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
