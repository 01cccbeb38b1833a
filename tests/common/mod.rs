//! Helpers shared by the integration tests. Each test file is its own crate
//! and uses a subset, hence the `allow(dead_code)`.
#![allow(dead_code)]

use std::time::Duration;

use ftdi_rt::sim::Frobnicator;
use ftdi_rt::{Pinning, Port, RealtimeConfig, RealtimePolicy, ReplyEnd};

/// Serialises the timing-sensitive tests of one test binary: libtest runs
/// them on parallel threads, and one test's simulated chip and reader would
/// otherwise perturb another's timing on a 2-CPU machine.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// SCHED_FIFO where permitted (best effort), memory not locked.
pub fn realtime(priority: u8, pinning: Pinning) -> RealtimeConfig {
    RealtimeConfig::default()
        .with_priority(priority)
        .with_pinning(pinning)
        .with_lock_memory(false)
        .with_policy(RealtimePolicy::BestEffort)
}

/// The application thread waits on the channel; like the reader it runs
/// SCHED_FIFO (where permitted), below the reader, so what the figures show
/// is the driver path's delay, not the test thread's own.
pub fn app_realtime(pinning: Pinning) {
    ftdi_rt::make_current_thread_realtime(&realtime(70, pinning)).expect("best effort never fails");
}

/// A 7-byte request that differs for every `i`.
pub fn request(i: u32) -> [u8; 7] {
    let b = i.to_le_bytes();
    [0xA5, b[0], b[1], b[2], b[3], 0x5A, (i % 7) as u8]
}

/// `n` transactions with the frobnicator on `port`, each within `deadline`,
/// each request different (`salt` apart from other ports' and rounds'),
/// each reply checked.
pub fn exchange(port: &mut Port, salt: u32, n: u32, deadline: Duration) {
    for i in 0..n {
        let req = request(salt * 100_000 + i);
        let t = port
            .transact(&req, ReplyEnd::Length(1), deadline)
            .unwrap_or_else(|e| panic!("port {salt}, transaction {i}: {e}"));
        assert_eq!(
            t.bytes(),
            [Frobnicator::reply_for(&req)],
            "port {salt}, {i}"
        );
    }
}
