//! Checks that drive ftdi-rt's public API, shared by the virtual rig's guest
//! program and the real-adapter suite: the far end echoes (TX wired to RX, or
//! the rig's firmware in `echo` mode) or frobnicates (`frob` mode).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ftdi_rt::{Error, Port, ReplyEnd};

/// Writes `data` and reads the same number of bytes back within `limit`;
/// the echo must be identical.
pub fn echo(port: &mut Port, data: &[u8], limit: Duration) -> Result<(), String> {
    echo_masked(port, data, 0xFF, limit)
}

/// As [`echo`], but only the bits under `mask` must match (0x7F with 7 data
/// bits), and more bytes than were sent is an error too.
pub fn echo_masked(port: &mut Port, data: &[u8], mask: u8, limit: Duration) -> Result<(), String> {
    port.receiver().discard_pending();
    port.write_all(data)
        .map_err(|e| format!("write {} bytes: {e}", data.len()))?;
    let start = Instant::now();
    let mut got = Vec::with_capacity(data.len());
    while got.len() < data.len() {
        let left = limit.saturating_sub(start.elapsed());
        match port.recv_timeout(left) {
            Ok(chunk) => got.extend_from_slice(chunk.payload()),
            Err(Error::TimedOut { .. }) => {
                return Err(format!(
                    "{} of {} bytes came back within {limit:?}",
                    got.len(),
                    data.len()
                ));
            }
            Err(e) => return Err(format!("after {} of {} bytes: {e}", got.len(), data.len())),
        }
    }
    if got.len() > data.len() {
        return Err(format!(
            "{} bytes too many came back",
            got.len() - data.len()
        ));
    }
    match got.iter().zip(data).position(|(a, b)| a & mask != b & mask) {
        None => Ok(()),
        Some(i) => Err(format!(
            "echo of {} bytes differs at byte {i}: sent {:#04x}, got {:#04x} (mask {mask:#04x})",
            data.len(),
            data[i],
            got[i]
        )),
    }
}

/// A burst of `n` bytes with a pattern that shows shifts and drops.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// All 256 byte values, then bursts of each size (crossing packet boundaries
/// and several transfers), echoed intact.
pub fn echo_bursts(port: &mut Port, sizes: &[usize]) -> Result<String, String> {
    let all: Vec<u8> = (0..=255u8).collect();
    echo(port, &all, Duration::from_secs(5)).map_err(|e| format!("256 byte values: {e}"))?;
    for (k, &n) in sizes.iter().enumerate() {
        echo(port, &pattern(n, k as u8), Duration::from_secs(10))
            .map_err(|e| format!("burst of {n}: {e}"))?;
    }
    Ok(format!(
        "256 byte values and bursts of {sizes:?} bytes came back intact"
    ))
}

/// What a request/reply loop measured.
#[derive(Clone, Debug, Default)]
pub struct LoopResult {
    /// Transactions run.
    pub n: usize,
    /// Deadline misses.
    pub misses: u64,
    /// Replies that were not the expected answer.
    pub wrong: u64,
    /// Latencies of completed transactions, µs, sorted.
    pub latencies_us: Vec<u64>,
}

impl LoopResult {
    /// The `p`-th percentile latency in µs (nearest rank).
    pub fn percentile(&self, p: f64) -> u64 {
        let v = &self.latencies_us;
        if v.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    /// `(name, value)` pairs for a METRIC line.
    pub fn metric(&self) -> Vec<(&'static str, String)> {
        vec![
            ("n", self.n.to_string()),
            ("p50_us", self.percentile(50.0).to_string()),
            ("p99_us", self.percentile(99.0).to_string()),
            ("p999_us", self.percentile(99.9).to_string()),
            (
                "max_us",
                self.latencies_us.last().copied().unwrap_or(0).to_string(),
            ),
            ("misses", self.misses.to_string()),
            ("wrong", self.wrong.to_string()),
        ]
    }
}

/// Runs `n` transactions of `request(i)` with replies checked by `expect`.
/// Errors other than deadline misses end the loop.
pub fn request_reply(
    port: &mut Port,
    n: usize,
    deadline: Duration,
    request: impl Fn(usize) -> Vec<u8>,
    reply: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<LoopResult, String> {
    let mut r = LoopResult {
        n,
        ..LoopResult::default()
    };
    r.latencies_us.reserve(n);
    for i in 0..n {
        let req = request(i);
        let want = reply(&req);
        match port.transact(&req, ReplyEnd::Length(want.len()), deadline) {
            Ok(t) => {
                if t.bytes() != want.as_slice() {
                    r.wrong += 1;
                }
                r.latencies_us.push(t.latency().as_micros() as u64);
            }
            Err(Error::DeadlineMissed { .. }) => r.misses += 1,
            Err(e) => return Err(format!("transaction {i}: {e}")),
        }
    }
    r.latencies_us.sort_unstable();
    Ok(r)
}

/// Streams echo traffic until the port reports `Disconnected`; `unplug` is
/// called once traffic flows. Returns the time from the last data received to
/// the `Disconnected` notice, and the bytes received.
pub fn stream_until_disconnected(
    port: &mut Port,
    unplug: impl FnOnce(),
) -> Result<(Duration, usize), String> {
    let (receiver, link) = port.split();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let chunk = pattern(256, 1);
            let mut written = 0usize;
            while !stop.load(Ordering::Relaxed) {
                match link.write_all(&chunk) {
                    Ok(()) => written += chunk.len(),
                    // The device is gone: writes must fail, not hang.
                    Err(_) => break,
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            written
        });
        let mut unplug = Some(unplug);
        let start = Instant::now();
        let mut last_data = Instant::now();
        let mut got = 0usize;
        let result = loop {
            if let Some(f) = unplug.take_if(|_| got > 4096) {
                f();
            }
            if start.elapsed() > Duration::from_secs(20) {
                break Err(format!(
                    "no Disconnected within 20 s ({got} bytes received)"
                ));
            }
            match receiver.recv_timeout(Duration::from_millis(500)) {
                Ok(c) => {
                    got += c.payload().len();
                    last_data = Instant::now();
                }
                Err(Error::Disconnected) => break Ok((last_data.elapsed(), got)),
                Err(Error::TimedOut { .. }) | Err(Error::Overflow { .. }) => {}
                Err(e) => break Err(format!("unexpected {e}")),
            }
        };
        stop.store(true, Ordering::Relaxed);
        let _ = writer.join();
        result
    })
}

/// Like [`echo`], but a second thread writes `data` in 256-byte pieces while
/// this one receives. A burst that takes seconds on the wire (4096 bytes at
/// 9600 Bd: about 4.3 s) then neither fills the channel while a single
/// `write_all` blocks nor needs a write timeout longer than the burst: each
/// piece only waits for room in the chip's TX FIFO. Returns the time from
/// the first write to the last byte back.
pub fn echo_streaming(port: &mut Port, data: &[u8], limit: Duration) -> Result<Duration, String> {
    echo_streaming_in_pieces(port, data, 256, limit)
}

/// [`echo_streaming`] with writes of `piece` bytes. Each write is a round
/// trip to the device, so at high baud rates small pieces leave the chip's
/// TX idle between them; pieces of a few KiB keep it busy (what a
/// throughput measurement needs).
pub fn echo_streaming_in_pieces(
    port: &mut Port,
    data: &[u8],
    piece: usize,
    limit: Duration,
) -> Result<Duration, String> {
    let piece = piece.max(1);
    port.receiver().discard_pending();
    let (receiver, link) = port.split();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| {
        let writer = s.spawn(|| -> Result<(), String> {
            for (k, bytes) in data.chunks(piece).enumerate() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                link.write_all(bytes)
                    .map_err(|e| format!("write at byte {}: {e}", k * piece))?;
            }
            Ok(())
        });
        let mut got = Vec::with_capacity(data.len());
        let mut failure = None;
        while got.len() < data.len() {
            let left = limit.saturating_sub(start.elapsed());
            match receiver.recv_timeout(left) {
                Ok(chunk) => got.extend_from_slice(chunk.payload()),
                Err(Error::TimedOut { .. }) => {
                    failure = Some(format!(
                        "{} of {} bytes came back within {limit:?}",
                        got.len(),
                        data.len()
                    ));
                    break;
                }
                Err(e) => {
                    failure = Some(format!("after {} of {} bytes: {e}", got.len(), data.len()));
                    break;
                }
            }
        }
        let took = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err("the writer thread panicked".into()));
        match (failure, written) {
            (Some(f), Err(w)) => return Err(format!("{f} ({w})")),
            (Some(f), Ok(())) => return Err(f),
            (None, Err(w)) => return Err(w),
            (None, Ok(())) => {}
        }
        if got.len() > data.len() {
            return Err(format!(
                "{} bytes more came back than the {} sent",
                got.len() - data.len(),
                data.len()
            ));
        }
        if let Some(at) = got.iter().zip(data).position(|(a, b)| a != b) {
            return Err(format!(
                "echo of {} bytes differs at byte {at}: sent {:#04x}, got {:#04x}",
                data.len(),
                data[at],
                got[at]
            ));
        }
        Ok(took)
    })
}
