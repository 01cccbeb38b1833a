//! The hot path — packet completion → channel → application — allocates
//! nothing and takes no lock a normal-priority thread can hold.
//!
//! One test per process (this file holds a single #[test]) because the
//! allocation count is global: every thread of the process counts, the
//! reader and the simulated chip included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ftdi_rt::sim::{Line, SimChip, SimConfig, WireByte};
use ftdi_rt::{Error, FlowControl, Port, PortConfig, Timestamp};

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

/// Receives `n` bytes, checking them against STREAM; returns the largest
/// gap between two chunks.
fn receive_stream(port: &mut ftdi_rt::Receiver, n: usize) -> Duration {
    let mut got = 0;
    let mut last = Timestamp::now();
    let mut max_gap = Duration::ZERO;
    while got < n {
        let chunk = port
            .recv_timeout(Duration::from_secs(5))
            .expect("stream stalled");
        for (i, &b) in chunk.payload().iter().enumerate() {
            assert_eq!(
                b,
                STREAM[(got + i) % STREAM.len()],
                "data corrupted at {}",
                got + i
            );
        }
        got += chunk.payload().len();
        let now = Timestamp::now();
        max_gap = max_gap.max(now.saturating_since(last));
        last = now;
    }
    max_gap
}

#[test]
fn the_hot_path_allocates_nothing_and_waits_on_no_application_lock() {
    let chip = SimChip::new(streamer, SimConfig::default()).unwrap();
    // 921600 Bd: a 4096-byte burst is ~45 ms of 62-byte packets, one per 0.67 ms.
    let config = PortConfig::default().with_baud(921_600).best_effort();
    let mut port = Port::open_sim(chip, &config).unwrap();

    // Warm up every path once (lazy thread-locals, first-use initialisation).
    port.write_all(b"!").unwrap();
    receive_stream(port.receiver(), STREAM.len());

    // 1. No allocation per packet on the reader path or per receive.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..3 {
        port.write_all(b"!").unwrap();
        receive_stream(port.receiver(), STREAM.len());
    }
    let allocated = ALLOCATIONS.load(Ordering::SeqCst) - before;
    let packets = port.stats().packets;
    assert_eq!(
        allocated,
        0,
        "{allocated} allocations while {} bytes went through the reader and the channel",
        3 * STREAM.len()
    );
    assert!(
        packets >= 3 * 4096 / 62,
        "the stream really went through ({packets} packets)"
    );

    // 2. No lock a normal-priority thread can hold. While the device streams
    //    (two bursts, ~710 ms at 115200 Bd), a normal thread blocks inside a
    //    write for a second: RTS/CTS flow control with CTS low holds the
    //    chip's transmitter, so the write waits holding the port's write
    //    lock. The reader must deliver as usual; if it needed that lock, the
    //    stream would stop for the whole second.
    port.set_baud_rate(115_200).unwrap();
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
        let gap = receive_stream(receiver, 2 * STREAM.len());
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
        "the reader stalled {max_gap:?} while a normal thread held the write lock"
    );
}
