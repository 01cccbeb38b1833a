//! Deadline misses are told apart by cause, and a cause is only credited
//! when it alone explains the miss: a stall of the simulated chip's own
//! thread, a machine stall measured by the noise probe (a FIFO-99 thread
//! could not run), or neither — the host path, which is what counts.
//! One test, run in sequence: the stalls it injects must not disturb others.
//! It needs SCHED_FIFO (the noise probe, and stalls made by a FIFO-99
//! spinner) and two CPUs (one to stall, one to measure from), so it runs
//! with the `realtime-tests` feature (as CI does) and is reported ignored
//! otherwise.

mod common;

use std::time::Duration;

use std::sync::Arc;

use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig};
use ftdi_rt::{Error, Pinning, Port, PortConfig, ReplyEnd, Statistics, Timestamp};
use ftdi_rt_lab::NoiseProbe;

const DEADLINE: Duration = Duration::from_micros(3500);

fn port(delay: Duration, probe: &Arc<NoiseProbe>) -> (Port, ftdi_rt::sim::SimHandle) {
    // The chip on CPU 0, the reader on the last CPU: each stall below hits one.
    let chip_config = SimConfig::default().with_realtime(common::realtime(90, Pinning::Cpu(0)));
    let chip = SimChip::new(Frobnicator::new(delay), chip_config).unwrap();
    let handle = chip.handle();
    let mut port = Port::open_sim(chip, &PortConfig::default().best_effort()).unwrap();
    port.discount_stalls(probe.clone());
    (port, handle)
}

fn miss_then_settle(port: &mut Port, during: impl FnOnce()) -> ftdi_rt::Statistics {
    port.transact(b"1234567", ReplyEnd::Length(1), DEADLINE)
        .unwrap();
    during();
    let err = port
        .transact(b"abcdefg", ReplyEnd::Length(1), DEADLINE)
        .unwrap_err();
    assert!(matches!(err, Error::DeadlineMissed { .. }), "{err}");
    // The next transaction settles the late reply and attributes the miss.
    port.transact(b"ABCDEFG", ReplyEnd::Length(1), Duration::from_millis(50))
        .unwrap();
    port.stats()
}

/// (all misses, explained by the simulated chip, by the machine, host path)
fn causes(s: &Statistics) -> (u64, u64, u64, u64) {
    (
        s.deadline_misses,
        s.explained_by("simulated-chip"),
        s.explained_by("machine"),
        s.host_misses(),
    )
}

#[test]
#[cfg_attr(
    not(feature = "realtime-tests"),
    ignore = "needs SCHED_FIFO and 2 CPUs: run with --features realtime-tests (as root or with CAP_SYS_NICE)"
)]
fn misses_are_told_apart_by_cause() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cpus >= 2,
        "needs two CPUs to stall one, this machine has {cpus}"
    );
    let probe = Arc::new(NoiseProbe::start().expect("the noise probe needs SCHED_FIFO 99"));
    // The application waits on CPU 0, away from the reader's CPU.
    ftdi_rt::make_current_thread_realtime(&common::realtime(70, Pinning::Cpu(0))).unwrap();

    // 1. The simulated chip's thread freezes (as a preempted vCPU would).
    let (mut p, chip) = port(Duration::from_micros(200), &probe);
    let s = miss_then_settle(&mut p, || chip.stall_for(Duration::from_millis(8)));
    assert_eq!(causes(&s), (1, 1, 0, 0), "{s}");

    // 2. The machine cannot run anything else on the reader's CPU for 8 ms:
    //    a FIFO-99 spinner there delays the reader and the probe alike.
    let (mut p, _chip) = port(Duration::from_micros(200), &probe);
    let reader_cpu = p.realtime().cpu.expect("the reader is pinned");
    let s = miss_then_settle(&mut p, || {
        std::thread::spawn(move || {
            ftdi_rt::make_current_thread_realtime(&common::realtime(99, Pinning::Cpu(reader_cpu)))
                .unwrap();
            let start = Timestamp::now();
            while start.elapsed() < Duration::from_millis(8) {
                std::hint::spin_loop();
            }
        });
    });
    assert_eq!(causes(&s), (1, 0, 1, 0), "{s}");

    // 3. A device that answers late: nothing but the host path explains it.
    let (mut p, _chip) = port(Duration::from_millis(6), &probe);
    let err = p
        .transact(b"1234567", ReplyEnd::Length(1), DEADLINE)
        .unwrap_err();
    assert!(matches!(err, Error::DeadlineMissed { .. }), "{err}");
    p.transact(b"ABCDEFG", ReplyEnd::Length(1), Duration::from_millis(50))
        .unwrap();
    let s = p.stats();
    assert_eq!(causes(&s), (1, 0, 0, 1), "{s}");
}
