//! Silence framing ([`SilenceFramer`]) on Modbus RTU traffic (8E1, 11-bit
//! characters): frames t3.5 apart are split, frames with inner gaps under
//! t1.5 never are, and each end is decided within the stated resolution.

use std::time::Duration;

use ftdi_rt::proto::{DataBits, LineProperties, Parity, StopBits};
use ftdi_rt::sim::WireDirection;
use ftdi_rt::timing::{SilenceFramer, gap_threshold, modbus_rtu_gaps};

use crate::rig::{Rig, T0, scheduled};

const RTU: LineProperties = LineProperties {
    data_bits: DataBits::Eight,
    parity: Parity::Even,
    stop_bits: StopBits::One,
};

/// Frames of 4..=40 bytes; inside them a gap under `inner` before about a
/// third of the bytes; between them `gap(i)`. Returns the schedule and the
/// frame lengths.
fn frames(
    count: usize,
    c: Duration,
    inner: Duration,
    gap: impl Fn(usize) -> Duration,
) -> (Vec<(Duration, u8)>, Vec<usize>) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut schedule = Vec::new();
    let mut lens = Vec::new();
    let mut t = Duration::from_micros(300);
    let below_inner = u64::try_from(inner.as_nanos()).unwrap() - 10;
    for f in 0..count {
        let n = 4 + (next() % 37) as usize;
        for i in 0..n {
            if i > 0 && next() % 3 == 0 {
                t += Duration::from_nanos(next() % below_inner);
            }
            schedule.push((t, (f + i) as u8));
            t += c;
        }
        lens.push(n);
        t += gap(f);
    }
    (schedule, lens)
}

/// Runs `rig` to the end and feeds every packet to `framer`; returns, per
/// end, how many bytes it closed and how long after the true last stop bit
/// it was decided.
fn split(rig: &mut Rig, mut framer: SilenceFramer) -> Vec<(usize, Duration)> {
    rig.run(&mut &[0u8][..], T0 + Duration::from_secs(60), |_| false);
    let rx = rig.wire(WireDirection::FromDevice);
    let mut ends = Vec::new();
    let (mut delivered, mut open) = (0usize, 0usize);
    for p in &rig.packets {
        delivered += usize::from(p.payload_len);
        if let Some(end) = framer.on_packet(p.arrived, usize::from(p.payload_len)) {
            let last_stop = rx[delivered - 1].end;
            ends.push((delivered - open, end.decided - last_stop));
            open = delivered;
        }
    }
    ends
}

#[test]
fn modbus_rtu_at_9600_splits_at_t3_5_and_never_inside_a_frame() {
    for jitter in [Duration::ZERO, Duration::from_micros(20)] {
        let mut rig = Rig::new(scheduled(Vec::new()), 9600, RTU, 1, jitter);
        let c = rig.char_time();
        let (t35, t15) = modbus_rtu_gaps(9600, c);
        // Half the frames exactly t3.5 apart, the rest up to 8 characters.
        let (schedule, lens) = frames(150, c, t15, |f| {
            if f % 2 == 0 {
                t35
            } else {
                t35 + c * (f % 9) as u32 / 2
            }
        });
        rig = Rig::new(scheduled(schedule), 9600, RTU, 1, jitter);
        let quiet = gap_threshold(t35, t15, rig.latency(), jitter).unwrap();
        let framer = SilenceFramer::new(quiet, c).with_arrival_jitter(jitter);
        let ends = split(&mut rig, framer);
        let got: Vec<usize> = ends.iter().map(|e| e.0).collect();
        assert_eq!(
            got, lens,
            "jitter {jitter:?}: one end per frame, at its end"
        );
        let bound = quiet + c + 2 * (rig.latency() + jitter);
        let worst = ends.iter().map(|e| e.1).max().unwrap();
        let best = ends.iter().map(|e| e.1).min().unwrap();
        assert!(
            best >= quiet + c,
            "decided before the silence was proven: {best:?}"
        );
        assert!(
            worst <= bound,
            "decided {worst:?} after the last stop bit, bound {bound:?}"
        );
        println!(
            "silence 9600 Bd, 1 ms latency timer, {jitter:?} jitter: quiet {quiet:?}; {} frames \
             split exactly; end decided {best:?}..{worst:?} after the last stop bit \
             (resolution {:?})",
            lens.len(),
            worst - best
        );
    }
}

#[test]
fn modbus_rtu_at_19200_ends_replies_and_shows_why_back_to_back_frames_cannot_be_split() {
    let probe = Rig::new(scheduled(Vec::new()), 19_200, RTU, 1, Duration::ZERO);
    let c = probe.char_time();
    let (t35, t15) = modbus_rtu_gaps(19_200, c);
    let refused = gap_threshold(t35, t15, probe.latency(), Duration::ZERO).unwrap_err();
    assert_eq!(refused.needed, t15 + 2 * probe.latency());

    // Replies 20 ms apart (request/reply traffic): t3.5 of silence ends each
    // one exactly, never inside.
    let (schedule, lens) = frames(120, c, t15, |_| Duration::from_millis(20));
    let mut rig = Rig::new(scheduled(schedule), 19_200, RTU, 1, Duration::ZERO);
    let ends = split(&mut rig, SilenceFramer::new(t35, c));
    assert_eq!(ends.iter().map(|e| e.0).collect::<Vec<_>>(), lens);
    let worst = ends.iter().map(|e| e.1).max().unwrap();
    let best = ends.iter().map(|e| e.1).min().unwrap();
    assert!(
        best >= t35 + c && worst <= t35 + c + 2 * rig.latency(),
        "{best:?}..{worst:?}"
    );
    println!(
        "silence 19200 Bd, 1 ms latency timer: quiet t3.5 = {t35:?}; {} replies ended exactly, \
         decided {best:?}..{worst:?} after the last stop bit",
        lens.len()
    );

    // Back to back at exactly t3.5: the silence a status packet can prove
    // inside some frame is at least what some t3.5 gap ever proves before
    // the next frame's data, so no quiet time splits them all correctly.
    let (schedule, lens) = frames(150, c, t15, |_| t35);
    let mut rig = Rig::new(scheduled(schedule), 19_200, RTU, 1, Duration::ZERO);
    rig.run(&mut &[0u8][..], T0 + Duration::from_secs(60), |_| false);
    let mut bounds: Vec<usize> = lens
        .iter()
        .scan(0, |sum, n| {
            *sum += n;
            Some(*sum)
        })
        .collect();
    bounds.insert(0, 0);
    let (mut delivered, mut last_data) = (0usize, None);
    let mut inside_max = Duration::ZERO;
    let mut gap_best = vec![Duration::ZERO; lens.len()];
    for p in &rig.packets {
        if p.payload_len > 0 {
            delivered += usize::from(p.payload_len);
            last_data = Some(p.arrived);
            continue;
        }
        let Some(d) = last_data else { continue };
        let proven = (p.arrived - d).saturating_sub(c);
        match bounds.binary_search(&delivered) {
            Ok(k) if k < lens.len() => gap_best[k - 1] = gap_best[k - 1].max(proven),
            Ok(_) => {}
            Err(_) => inside_max = inside_max.max(proven),
        }
    }
    let weakest_gap = gap_best.iter().copied().min().unwrap();
    assert!(
        inside_max >= weakest_gap,
        "inside {inside_max:?}, weakest gap {weakest_gap:?}: a threshold would exist"
    );
    println!(
        "silence 19200 Bd back to back: proven quiet inside a frame up to {inside_max:?}, \
         across some t3.5 gap only {weakest_gap:?}: refused ({refused})"
    );
}
