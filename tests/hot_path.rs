//! The hot path — packet completion → channel → application — allocates
//! nothing and takes no lock a normal-priority thread can hold.
//!
//! One test per process (this file holds a single #[test]) because the
//! allocation count is global: every thread of the process counts, the
//! reader and the simulated chip included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ftdi_rt::sim::{Line, SimChip, SimConfig, SimHandle, WireByte};
use ftdi_rt::{Error, FlowControl, Port, PortConfig, Reader, Timestamp};

/// Counts every allocation and reallocation in the process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes the device streams; a static table so the device allocates nothing.
static STREAM: [u8; 4096] = {
    let mut s = [0u8; 4096];
    let mut i = 0;
    while i < s.len() {
        s[i] = (i % 251) as u8;
        i += 1;
    }
    s
};

/// Streams STREAM to the host each time the host sends `!`; ignores the rest.
fn streamer(byte: WireByte, line: &mut Line<'_>) {
    if byte.byte == b'!' {
        line.send_at(byte.end, &STREAM);
    }
}

/// What one stream delivered: the largest gap between two chunks, the
/// bytes the chip reported lost and those the channel dropped.
struct Received {
    max_gap: Duration,
    chip_lost: u64,
    channel_dropped: u64,
}

impl Received {
    /// Bytes of the stream that did not arrive.
    fn lost(&self) -> u64 {
        self.chip_lost + self.channel_dropped
    }

    /// Says what was lost. Never inside a measured window: the test
    /// harness captures output into a growing buffer, which allocates.
    fn report(&self) {
        if self.chip_lost > 0 {
            println!(
                "the chip dropped {} bytes (FIFO overrun: the reader was stalled)",
                self.chip_lost
            );
        }
        if self.channel_dropped > 0 {
            println!(
                "the channel dropped {} bytes (this test did not read in time)",
                self.channel_dropped
            );
        }
    }
}

/// Receives a stream of `n` bytes, checking them against STREAM.
///
/// A machine stall of the reader longer than the chip's RX FIFO lasts
/// (256 bytes: 2.8 ms at 921600 Bd; this VM kind stalls for up to tens of
/// ms) makes the chip drop bytes, as silicon would; it reports that with
/// the overrun bit and counts them. Lost bytes are counted towards `n`, and
/// the content is checked up to the first chunk that reports an overrun:
/// a byte wrong before that is corruption on the host path, and fails.
///
/// `lost_before` is the chip's overrun count from before the stream was
/// triggered: read after the trigger, it could already include this
/// stream's first losses (a slow debug build loses them within
/// microseconds), and the wait would be for bytes that never come.
fn receive_stream(
    port: &mut ftdi_rt::Receiver,
    chip: &SimHandle,
    n: usize,
    lost_before: u64,
) -> Received {
    let (mut got, mut lost) = (0u64, 0u64);
    let mut in_sync = true;
    let mut last = Timestamp::now();
    let mut max_gap = Duration::ZERO;
    // Bytes the channel itself dropped (the application, this test, was
    // stalled): reported in stream order, counted like the chip's.
    let mut dropped = 0u64;
    let mut waited = Duration::ZERO;
    while got + lost + dropped < n as u64 {
        // Short waits, re-reading the chip's count in between: when the
        // stream's tail is what the chip dropped, no chunk comes to say so.
        let chunk = match port.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => chunk,
            Err(Error::TimedOut { .. }) => {
                lost = chip.counters().overrun_bytes - lost_before;
                waited += Duration::from_millis(100);
                assert!(
                    waited < Duration::from_secs(5) || got + lost + dropped >= n as u64,
                    "stream stalled: {got} bytes received, {lost} dropped by the chip, \
                     {dropped} by the channel, of {n}, and nothing for 5 s"
                );
                continue;
            }
            Err(Error::Overflow { lost_bytes }) => {
                dropped += lost_bytes;
                in_sync = false;
                continue;
            }
            Err(e) => panic!("stream failed: {e}"),
        };
        waited = Duration::ZERO;
        in_sync &= !chunk.line_status().is_some_and(|l| l.overrun());
        if in_sync {
            for (i, &b) in chunk.payload().iter().enumerate() {
                let at = got as usize + i;
                assert_eq!(b, STREAM[at % STREAM.len()], "data corrupted at {at}");
            }
        }
        got += chunk.payload().len() as u64;
        lost = chip.counters().overrun_bytes - lost_before;
        let now = Timestamp::now();
        max_gap = max_gap.max(now.saturating_since(last));
        last = now;
    }
    Received {
        max_gap,
        chip_lost: lost,
        channel_dropped: dropped,
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "an unoptimised build cannot keep up with the simulated chip at 921600 Bd: \
              the chip overruns on most of each burst, so the stream this test measures \
              never runs at speed; CI runs it in the release build"
)]
fn the_hot_path_allocates_nothing_and_waits_on_no_application_lock() {
    // A port with a reader of its own.
    let chip = SimChip::new(streamer, SimConfig::default()).unwrap();
    let handle = chip.handle();
    // 921600 Bd: a 4096-byte burst is ~45 ms of 62-byte packets, one per 0.67 ms.
    let config = PortConfig::default().with_baud(921_600).best_effort();
    let port = Port::open_sim(chip, &config).unwrap();
    check_hot_path(port, &handle, "its own reader");

    // The same on a shared reader that serves another streaming port too:
    // that port streams throughout, so the reader's rounds, its epoll wait
    // and the other port's turns are all on the measured path.
    let reader = Reader::new(&config.reader_realtime).unwrap();
    let shared = config.clone().with_reader(&reader);
    let other_chip = SimChip::new(streamer, SimConfig::default()).unwrap();
    let other_handle = other_chip.handle();
    let mut other = Port::open_sim(other_chip, &shared).unwrap();
    let chip = SimChip::new(streamer, SimConfig::default()).unwrap();
    let handle = chip.handle();
    let port = Port::open_sim(chip, &shared).unwrap();
    assert_eq!(reader.ports(), 2);
    let (warm, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|s| {
        let busy = s.spawn(|| {
            // Streams on the other port until the check is done (reading
            // it, so its bytes are delivered, not dropped); the first burst
            // warms this thread up before the count starts.
            let mut bursts = 0u32;
            let mut lost = Vec::with_capacity(1024);
            while !stop.load(Ordering::Acquire) {
                let before = other_handle.counters().overrun_bytes;
                other.write_all(b"!").unwrap();
                let got = receive_stream(other.receiver(), &other_handle, STREAM.len(), before);
                bursts += 1;
                if got.lost() > 0 && lost.len() < lost.capacity() {
                    lost.push(got);
                }
                warm.store(true, Ordering::Release);
            }
            for got in &lost {
                got.report();
            }
            bursts
        });
        // (A streamer that failed ends the wait too: its panic is reported
        // by the join below instead of this loop spinning forever.)
        while !warm.load(Ordering::Acquire) && !busy.is_finished() {
            std::thread::yield_now();
        }
        if busy.is_finished() {
            busy.join().expect("the other port's streamer failed");
            unreachable!("the other port's streamer stopped before it was told to");
        }
        check_hot_path(port, &handle, "a shared reader");
        stop.store(true, Ordering::Release);
        assert!(busy.join().unwrap() > 0, "the other port streamed");
    });
}

/// Both checks on one port: no allocation per packet, and no lock a
/// normal-priority thread can hold on the reader's path.
fn check_hot_path(mut port: Port, handle: &SimHandle, reader: &str) {
    // Warm up every path once (lazy thread-locals, first-use initialisation).
    let before = handle.counters().overrun_bytes;
    port.write_all(b"!").unwrap();
    receive_stream(port.receiver(), handle, STREAM.len(), before).report();

    // 1. No allocation per packet on the reader path or per receive.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut streams = [None, None, None];
    for stream in &mut streams {
        let before = handle.counters().overrun_bytes;
        port.write_all(b"!").unwrap();
        *stream = Some(receive_stream(
            port.receiver(),
            handle,
            STREAM.len(),
            before,
        ));
    }
    let allocated = ALLOCATIONS.load(Ordering::SeqCst) - before;
    let lost: u64 = streams.iter().flatten().map(Received::lost).sum();
    streams.iter().flatten().for_each(Received::report);
    let packets = port.stats().packets;
    assert_eq!(
        allocated,
        0,
        "{reader}: {allocated} allocations while {} bytes went through the reader and the channel",
        3 * STREAM.len() as u64 - lost
    );
    assert!(
        packets >= (3 * 4096 - lost) / 62,
        "{reader}: the stream really went through ({packets} packets, {lost} bytes lost in the chip)"
    );

    // 2. No lock a normal-priority thread can hold. While the device streams
    //    (two bursts, ~710 ms at 115200 Bd), a normal thread blocks inside a
    //    write for a second: RTS/CTS flow control with CTS low holds the
    //    chip's transmitter, so the write waits holding the port's write
    //    lock. The reader must deliver as usual; if it needed that lock, the
    //    stream would stop for the whole second.
    port.set_baud_rate(115_200).unwrap();
    let before = handle.counters().overrun_bytes;
    port.write_all(b"!!").unwrap();
    std::thread::sleep(Duration::from_millis(5)); // the trigger is on the wire
    port.set_flow_control(FlowControl::RtsCts).unwrap(); // CTS is low
    let (receiver, link) = port.split();
    let (max_gap, held, result) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let start = Timestamp::now();
            // 4 KiB cannot fit the chip's 128-byte FIFO while CTS is low.
            let result = link.write_all(&[0u8; 4096]);
            (start.elapsed(), result)
        });
        std::thread::sleep(Duration::from_millis(20)); // the writer holds the lock
        let got = receive_stream(receiver, handle, 2 * STREAM.len(), before);
        got.report();
        let gap = got.max_gap;
        let (held, result) = writer.join().unwrap();
        (gap, held, result)
    });
    assert!(
        matches!(result, Err(Error::TimedOut { .. })),
        "the write was held: {result:?}"
    );
    assert!(
        held >= Duration::from_millis(900),
        "the write lock was held {held:?}"
    );
    assert!(
        max_gap < Duration::from_millis(50),
        "{reader}: the reader stalled {max_gap:?} while a normal thread held the write lock"
    );
}
