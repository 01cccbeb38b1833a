//! The simulated chip's thread: a thin shell that drives a [`ChannelEngine`]
//! on real `CLOCK_MONOTONIC` time.
//!
//! It moves host input from the bus into the engine (IN credits, OUT bytes,
//! commands), runs the engine's events when they are due, moves the packets
//! it sent into the IN ring, and sleeps on its doorbell until the engine's
//! next event or new host input; it never spins. What only a thread on a
//! shared machine has — lateness — is measured here, not in the engine:
//! how late each event was handled goes to the lateness histogram, and
//! stretches of it to the stall log that miss attribution consults.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::bus::{Bus, Command};
use super::engine::ChannelEngine;
use super::transfer::InPacket;
use crate::stats::{new_latency_histogram, record};
use crate::time::{Deadline, Timestamp};

/// How often the chip publishes its lateness histogram.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// The chip thread's ends of the simulated bus.
pub(crate) struct ChipWiring {
    pub(crate) in_ring: rtrb::Producer<InPacket>,
    pub(crate) out_ring: rtrb::Consumer<u8>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) bus: Arc<Bus>,
}

pub(crate) struct ChipThread {
    engine: ChannelEngine,
    wiring: ChipWiring,
    /// Commands taken but not yet handled: one taken while checking for
    /// input before sleeping, or those that came during a stall.
    stashed: VecDeque<Command>,
    /// Bytes the shell put into the engine's TX FIFO that the engine has not
    /// yet taken, as of the last sync: any shortfall was taken since.
    tx_in_engine: usize,
    lateness: Histogram<u64>,
    last_publish: Timestamp,
}

impl ChipThread {
    pub(crate) fn new(engine: ChannelEngine, wiring: ChipWiring) -> ChipThread {
        ChipThread {
            last_publish: engine.now(),
            engine,
            wiring,
            stashed: VecDeque::new(),
            tx_in_engine: 0,
            lateness: new_latency_histogram(),
        }
    }

    /// The thread's body; returns on shutdown or unplug.
    pub(crate) fn run(self) {
        let bus = self.wiring.bus.clone();
        self.run_loop();
        // Gone: it promises nothing, so it is not counted as stalled.
        bus.stalls.promise(None);
    }

    fn run_loop(mut self) {
        loop {
            // Running: any promise is kept (a new one is made before sleeping).
            self.wiring.bus.stalls.promise(None);
            let now = Timestamp::now();
            self.catch_up(now);
            if !self.engine.is_unplugged() && !self.take_host_input(now) {
                return;
            }
            self.sync();
            self.publish(now);
            if self.engine.is_unplugged() {
                return self.unplug();
            }

            let next = self.engine.poll_timeout();
            if next.is_some_and(|t| t <= Timestamp::now()) {
                continue;
            }
            let bus = &self.wiring.bus;
            // Promise when the chip will run next (its next event), before
            // the last look at host input: input after this point shortens
            // the promise (Bus::wake_chip), so a stall is visible while it lasts.
            bus.stalls.promise(next);
            // Announce the sleep, then look at host input once more: anything
            // that arrived before the announcement is handled now, anything
            // after it rings the doorbell.
            bus.chip_wake.arm();
            if self.host_input_pending() {
                continue;
            }
            let bus = &self.wiring.bus;
            let slept = Timestamp::now();
            let timeout = next.map(|t| t.saturating_since(slept));
            if let Ok(true) = bus.chip_wake.wait(timeout) {
                // Silicon reacts to host input at once: a late wakeup to it is
                // the simulation's lateness, logged like a late event.
                let rung = Timestamp::from_nanos(bus.rung_at.load(Ordering::Relaxed));
                if rung > slept {
                    bus.stalls.record(rung, Timestamp::now());
                }
            }
        }
    }

    /// Runs every engine event due by `now` at its own time, recording how
    /// late each was handled.
    fn catch_up(&mut self, now: Timestamp) {
        while let Some(t) = self.engine.poll_timeout() {
            if t > now {
                break;
            }
            record(&mut self.lateness, now.saturating_since(t));
            self.wiring.bus.stalls.record(t, now);
            self.engine.handle_timeout(t);
            self.sync();
        }
    }

    /// Hands the host's input to the engine at `now`; false on shutdown.
    fn take_host_input(&mut self, now: Timestamp) -> bool {
        let credits = self.wiring.bus.credits.swap(0, Ordering::AcqRel);
        if credits > 0 {
            let total = self.engine.in_credits().saturating_add(credits);
            self.engine.set_in_credits(now, total);
        }
        self.feed_tx(now);
        while let Some(command) = self
            .stashed
            .pop_front()
            .or_else(|| self.wiring.commands.try_recv().ok())
        {
            // Bytes written before the command was sent reach the chip first.
            self.feed_tx(now);
            match command {
                Command::Control { request, reply } => {
                    let answer = self.engine.handle_control(now, &request);
                    // The new state is published before the reply: a host
                    // that reads it once its request completed sees it.
                    if let Ok(mut state) = self.wiring.bus.state.lock() {
                        *state = *self.engine.state();
                    }
                    let _ = reply.send(answer);
                }
                Command::InjectLineError(errors) => self.engine.inject_line_error(errors),
                Command::SetModemLines(lines) => self.engine.set_modem_lines(now, lines),
                Command::UnplugAt(t) => self.engine.unplug_at(t),
                Command::Stall(d) => {
                    if !self.stall(d) {
                        return false;
                    }
                }
                Command::Shutdown => return false,
            }
        }
        true
    }

    /// Stops the chip's thread for `duration`, as a preempted vCPU would:
    /// commands that come meanwhile wait for it (in order), except a
    /// shutdown, which ends the stall and the thread at once (dropping a
    /// port must not wait out `stall_for(Duration::MAX)`). False on shutdown.
    fn stall(&mut self, duration: Duration) -> bool {
        let until = Deadline::from_now(duration);
        loop {
            let left = until.remaining(Timestamp::now());
            if left.is_zero() {
                return true;
            }
            // recv_timeout copes with a `left` past the end of Instant.
            match self.wiring.commands.recv_timeout(left) {
                Ok(Command::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Ok(other) => self.stashed.push_back(other),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn host_input_pending(&mut self) -> bool {
        if self.stashed.is_empty()
            && let Ok(command) = self.wiring.commands.try_recv()
        {
            self.stashed.push_back(command);
        }
        !self.stashed.is_empty()
            || self.wiring.bus.credits.load(Ordering::Acquire) > 0
            || !self.wiring.out_ring.is_empty()
    }

    /// Moves the host's OUT bytes into the engine's TX FIFO (they always fit:
    /// the writer never has more outstanding than the FIFO holds).
    fn feed_tx(&mut self, now: Timestamp) {
        let n = self.wiring.out_ring.slots();
        if n == 0 {
            return;
        }
        // The bytes go on the wire no earlier than the chip takes them: with
        // the loop's `now`, read before this thread ran its due events (or
        // was preempted), a request written meanwhile would start crossing
        // the wire before the host wrote it, and its reply would come back
        // sooner than silicon could answer. The clock is read after the
        // ring's count, so after every byte counted was written.
        let now = now.max(Timestamp::now());
        self.catch_up(now);
        let Ok(chunk) = self.wiring.out_ring.read_chunk(n) else {
            return;
        };
        let (first, second) = chunk.as_slices();
        let mut taken = self.engine.write(now, first);
        if taken == first.len() {
            taken += self.engine.write(now, second);
        }
        chunk.commit(taken);
        self.tx_in_engine += taken;
    }

    /// Delivers what the engine produced: packets to the IN ring, freed TX
    /// FIFO space to the writer, counters to the handle.
    fn sync(&mut self) {
        let bus = &self.wiring.bus;
        let mut sent = false;
        while self.wiring.in_ring.slots() > 0 {
            let Some(packet) = self.engine.poll_packet() else {
                break;
            };
            let _ = self.wiring.in_ring.push(packet);
            sent = true;
        }
        if sent {
            bus.in_ready.ring();
        }
        let queued = self.engine.tx_queued();
        if queued < self.tx_in_engine {
            bus.tx_fill
                .fetch_sub(self.tx_in_engine - queued, Ordering::AcqRel);
            bus.out_space.ring();
        }
        self.tx_in_engine = queued;
        bus.counters.publish(self.engine.counters());
    }

    fn publish(&mut self, now: Timestamp) {
        if now.saturating_since(self.last_publish) < PUBLISH_EVERY {
            return;
        }
        if let Ok(mut shared) = self.wiring.bus.lateness.try_lock() {
            // Same bounds on both sides, so adding never reallocates.
            if shared.add(&self.lateness).is_ok() {
                self.lateness.reset();
                self.last_publish = now;
            }
        }
    }

    /// Silicon vanished: every pending and later transfer fails.
    fn unplug(mut self) {
        self.sync();
        let bus = self.wiring.bus.clone();
        bus.unplugged.store(true, Ordering::Release);
        self.last_publish = Timestamp::default();
        self.publish(Timestamp::now());
        bus.in_ready.ring_always();
        bus.out_space.ring_always();
        // Pending control requests see their reply channel close: NoDevice.
    }
}
