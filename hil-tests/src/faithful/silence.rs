//! `ReplyEnd::Silence` through the real stack: Modbus RTU replies framed by
//! t3.5 of silence at 9600 and 19200 Bd, decided from the packets that
//! crossed usbfs, vhci-hcd and USB/IP, against the simulated chip's own
//! record of when the reply's last stop bit left the wire. In virtual time
//! without a kernel (`tests/timing/silence.rs`) the decision comes one
//! character to one character plus two latency periods after t3.5; here
//! the case measures what the real stack adds.

use std::time::Duration;

use ftdi_rt::proto::{DataBits, LineProperties, Parity, StopBits};
use ftdi_rt::sim::usb::VirtualFtdi;
use ftdi_rt::sim::{Line, WireByte, WireDirection};
use ftdi_rt::timing::{DEFAULT_TRANSPORT_SLACK, character_time, modbus_rtu_gaps};
use ftdi_rt::{Chip, Interface, PortConfig, ReplyEnd, Timestamp};

use super::{last_stop_bit, ms};
use crate::guest::{Ctx, Outcome};
use crate::virtual_ftdi::{attach, open_usb};

/// Modbus RTU's line: 8 data bits, even parity, one stop bit (11 bits).
const RTU: LineProperties = LineProperties {
    data_bits: DataBits::Eight,
    parity: Parity::Even,
    stop_bits: StopBits::One,
};
/// Reply body lengths asked for.
const COUNTS: [u8; 4] = [1, 4, 20, 60];
/// Requests per length and rate.
const ROUNDS: usize = 5;
/// The latency timer of the case.
const LATENCY: Duration = Duration::from_millis(1);
/// The slave's turnaround before it answers.
const TURNAROUND: Duration = Duration::from_millis(2);

/// The frame the slave sends for a body of `count` bytes: a header, the
/// body, and a two-byte tail standing for the CRC.
fn frame(count: u8) -> (Vec<u8>, [u8; 2]) {
    let mut body = vec![0x11, 0x03, count];
    body.extend((0..count).map(|i| i.wrapping_mul(7)));
    (body, [0xC0, count])
}

/// A slave answering any 6-byte request (its last byte the count) after
/// [`TURNAROUND`], with a one-character gap (legal, under t1.5) before the
/// tail: a framer that ends replies inside such gaps returns a short frame.
fn slave() -> impl ftdi_rt::sim::Device {
    let mut request = Vec::with_capacity(6);
    move |byte: WireByte, line: &mut Line<'_>| {
        request.push(byte.byte);
        if request.len() < 6 {
            return;
        }
        let (body, tail) = frame(request[5]);
        let begin = byte.end + TURNAROUND;
        let c = line.frame_time();
        line.send_at(begin, &body);
        line.send_at(begin + c * (body.len() as u32 + 1), &tail);
        request.clear();
    }
}

/// What one rate gave: decision lags after t3.5 (min, max) and replies.
struct RateResult {
    replies: usize,
    min_after_t35: Duration,
    max_after_t35: Duration,
}

/// Runs [`COUNTS`] × [`ROUNDS`] silence-framed transactions at `baud`.
fn at_rate(ctx: &Ctx, baud: u32) -> Result<RateResult, String> {
    let builder = VirtualFtdi::builder(Chip::Ft232R)
        .device(Interface::A, slave())
        .wire_log(4096);
    let dev = attach(ctx, builder, 1)?;
    let config = PortConfig::default()
        .with_baud(baud)
        .with_line(RTU)
        .with_latency_timer_ms(1);
    let mut port = open_usb(&dev, &config)?;
    let c = character_time(baud, RTU).ok_or("no character time")?;
    let (t35, _) = modbus_rtu_gaps(baud, c);
    // The stated resolution (one character, which a status packet cannot
    // rule out, and two latency periods) plus what a packet may take from
    // the chip to the reader over the transport.
    let bound = c + LATENCY * 2 + DEFAULT_TRANSPORT_SLACK;
    let mut result = RateResult {
        replies: 0,
        min_after_t35: Duration::MAX,
        max_after_t35: Duration::ZERO,
    };
    for &count in &COUNTS {
        let (body, tail) = frame(count);
        let whole: Vec<u8> = body.iter().chain(&tail).copied().collect();
        for round in 0..ROUNDS {
            let request = [0x11, 0x03, 0, 0, 0, count];
            // The request is handed over just after `before`: `before +
            // arrival` is at most a few µs before the reader's decision.
            let before = Timestamp::now();
            let t = port
                .transact(&request, ReplyEnd::Silence(t35), Duration::from_secs(1))
                .map_err(|e| format!("{baud} Bd, {count}-byte body, round {round}: {e}"))?;
            let what = format!("{baud} Bd, {count}-byte body, round {round}");
            if t.bytes() != whole.as_slice() {
                return Err(format!(
                    "{what}: the reply is {} bytes, the frame {} (split inside a gap under t1.5, \
                     or two frames run together)",
                    t.bytes().len(),
                    whole.len()
                ));
            }
            let decided = before + t.arrival();
            let stop = last_stop_bit(&dev, WireDirection::FromDevice)?;
            let quiet = decided.saturating_since(stop);
            if quiet < t35 {
                return Err(format!(
                    "{what}: the reply was ended {} after its last stop bit, before t3.5 ({})",
                    ms(quiet),
                    ms(t35)
                ));
            }
            let after = quiet - t35;
            if after > bound {
                return Err(format!(
                    "{what}: the reply was ended {} after t3.5 of silence, beyond the stated \
                     resolution {} (one character + two latency periods + transport slack)",
                    ms(after),
                    ms(bound)
                ));
            }
            result.min_after_t35 = result.min_after_t35.min(after);
            result.max_after_t35 = result.max_after_t35.max(after);
            result.replies += 1;
        }
    }
    Ok(result)
}

/// `silence-framing`: Modbus RTU replies with a one-character inner gap,
/// framed by `ReplyEnd::Silence(t3.5)` at 9600 and 19200 Bd: every reply is
/// the whole frame, ended no sooner than t3.5 after its last stop bit and
/// at most one character and two latency periods plus the transport slack
/// after that.
pub fn silence_framing(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let mut parts = Vec::new();
        for baud in [9600u32, 19_200] {
            let r = at_rate(ctx, baud)?;
            ctx.metric(
                "silence-framing",
                &[
                    ("baud", baud.to_string()),
                    ("replies", r.replies.to_string()),
                    ("after_t35_min_us", r.min_after_t35.as_micros().to_string()),
                    ("after_t35_max_us", r.max_after_t35.as_micros().to_string()),
                ],
            );
            parts.push(format!(
                "{baud} Bd: {} whole frames, ended {} to {} after t3.5",
                r.replies,
                ms(r.min_after_t35),
                ms(r.max_after_t35)
            ));
        }
        Ok(parts.join("; "))
    };
    run().into()
}
