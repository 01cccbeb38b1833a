//! Deadline misses are told apart by cause, and a cause is only credited
//! when it alone explains the miss: a stall of the simulated chip's own
//! thread, a machine stall measured by the noise probe (a FIFO-99 thread
//! could not run), or neither — the host path, which is what counts.
//! One test, run in sequence: the stalls it injects must not disturb others.

mod common;

use std::time::Duration;

use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig};
use ftdi_rt::{Error, NoiseProbe, Pinning, Port, PortConfig, ReplyEnd, Timestamp};

const DEADLINE: Duration = Duration::from_micros(3500);

fn port(delay: Duration, probe: &NoiseProbe) -> (Port, ftdi_rt::sim::SimHandle) {
    // The chip on CPU 0, the reader on the last CPU: each stall below hits one.
    let chip_config = SimConfig::default().with_realtime(common::realtime(90, Pinning::Cpu(0)));
    let chip = SimChip::new(Frobnicator::new(delay), chip_config).unwrap();
    let handle = chip.handle();
    let mut port = Port::open_sim(chip, &PortConfig::default().best_effort()).unwrap();
    port.watch_platform(probe);
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

#[test]
fn misses_are_told_apart_by_cause() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("skipped: needs two CPUs to stall one");
        return;
    }
    let Ok(probe) = NoiseProbe::start() else {
        eprintln!("skipped: the noise probe needs SCHED_FIFO");
        return;
    };
    // The application waits on CPU 0, away from the reader's CPU.
    ftdi_rt::make_current_thread_realtime(&common::realtime(70, Pinning::Cpu(0))).unwrap();

    // 1. The simulated chip's thread freezes (as a preempted vCPU would).
    let (mut p, chip) = port(Duration::from_micros(200), &probe);
    let s = miss_then_settle(&mut p, || chip.stall_for(Duration::from_millis(8)));
    assert_eq!(
        (
            s.deadline_misses,
            s.chip_late_misses,
            s.platform_late_misses,
            s.host_misses()
        ),
        (1, 1, 0, 0),
        "{s}"
    );

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
    assert_eq!(
        (
            s.deadline_misses,
            s.chip_late_misses,
            s.platform_late_misses,
            s.host_misses()
        ),
        (1, 0, 1, 0),
        "{s}"
    );

    // 3. A device that answers late: nothing but the host path explains it.
    let (mut p, _chip) = port(Duration::from_millis(6), &probe);
    let err = p
        .transact(b"1234567", ReplyEnd::Length(1), DEADLINE)
        .unwrap_err();
    assert!(matches!(err, Error::DeadlineMissed { .. }), "{err}");
    p.transact(b"ABCDEFG", ReplyEnd::Length(1), Duration::from_millis(50))
        .unwrap();
    let s = p.stats();
    assert_eq!(
        (
            s.deadline_misses,
            s.chip_late_misses,
            s.platform_late_misses,
            s.host_misses()
        ),
        (1, 0, 0, 1),
        "{s}"
    );
}
