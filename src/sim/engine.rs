//! The simulated chip's thread: its clock, its FIFOs and its packetizer.
//!
//! Events (a TX byte finishing, a byte from the device arriving, the latency
//! timer expiring, an unplug) are processed in time order at their ideal
//! times, so a late wakeup of this thread shifts nothing in the model: it is
//! recorded as chip lateness and the backlog is processed as silicon would
//! have. Between events the thread sleeps on its doorbell (host input) with a
//! timeout (the next event); it never spins.
//!
//! Packet rules (FTDI AN232B-04, see ftdi-protocol.md §4.2): a packet goes
//! out when the UART-to-USB FIFO holds a full packet's payload, when the
//! enabled event character arrives (not as the first byte in the buffer),
//! when a modem line changes, or when the latency timer expires since the
//! last packet — status-only if there is no data. A packet needs an IN
//! transfer in flight (a credit); without one the data waits in the FIFO and
//! bytes beyond its size are lost with OE reported.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::bus::{Bus, Command, InPacket, TransferError};
use super::device::{Device, DeviceSide, Line, ModemLines, WireByte};
use super::registers::{ChipState, Effect, Stall};
use crate::proto::{
    Chip, Divisor, FlowControl, Interface, LineProperties, LineStatus, ModemStatus,
};
use crate::stats::new_latency_histogram;
use crate::time::Timestamp;

/// How often the chip publishes its lateness histogram.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    TxDone,
    Arrival,
    LatencyExpiry,
    Unplug,
}

/// Duration of one character on the wire.
pub(crate) fn frame_time(divisor: Divisor, line: LineProperties) -> Duration {
    let ns = divisor.bit_time_ns() * f64::from(line.frame_half_bits()) / 2.0;
    Duration::from_nanos(ns.round() as u64)
}

/// The chip's ends of the simulated bus.
pub(crate) struct ChipWiring {
    pub(crate) in_ring: rtrb::Producer<InPacket>,
    pub(crate) out_fifo: rtrb::Consumer<u8>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) bus: Arc<Bus>,
}

pub(crate) struct Engine {
    pub(crate) chip: Chip,
    pub(crate) interface: Interface,
    pub(crate) max_payload: usize,
    pub(crate) fifo_capacity: usize,
    pub(crate) regs: ChipState,
    pub(crate) device: Box<dyn Device>,
    pub(crate) side: DeviceSide,
    pub(crate) rx_fifo: VecDeque<u8>,
    /// Error bits for the next packet that carries data.
    pub(crate) pending_errors: u8,
    /// A flush (latency expiry, event char, modem change) is due since then.
    pub(crate) flush_due: Option<Timestamp>,
    /// Ideal time of the last packet: the latency timer runs from here.
    pub(crate) last_packet: Timestamp,
    /// The byte on the TX wire.
    pub(crate) tx: Option<WireByte>,
    /// XOFF received under XON/XOFF flow control.
    pub(crate) xoff: bool,
    pub(crate) unplug_at: Option<Timestamp>,
    pub(crate) in_ring: rtrb::Producer<InPacket>,
    pub(crate) out_fifo: rtrb::Consumer<u8>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) bus: Arc<Bus>,
    pub(crate) lateness: Histogram<u64>,
    pub(crate) last_publish: Timestamp,
}

impl Engine {
    pub(crate) fn new(
        chip: Chip,
        interface: Interface,
        max_packet_size: usize,
        device: Box<dyn Device>,
        wiring: ChipWiring,
    ) -> Engine {
        let ChipWiring {
            in_ring,
            out_fifo,
            commands,
            bus,
        } = wiring;
        let regs = ChipState::power_on(chip);
        let now = Timestamp::now();
        Engine {
            chip,
            interface,
            max_payload: max_packet_size - 2,
            fifo_capacity: chip.uart_to_usb_fifo(),
            side: DeviceSide::new(frame_time(regs.divisor, regs.line)),
            regs,
            device,
            rx_fifo: VecDeque::with_capacity(chip.uart_to_usb_fifo()),
            pending_errors: 0,
            flush_due: None,
            last_packet: now,
            tx: None,
            xoff: false,
            unplug_at: None,
            in_ring,
            out_fifo,
            commands,
            bus,
            lateness: new_latency_histogram(),
            last_publish: now,
        }
    }

    /// The chip thread's body; returns on shutdown or unplug.
    pub(crate) fn run(self) {
        let bus = self.bus.clone();
        self.run_loop();
        // Gone: it promises nothing, so it is not counted as stalled.
        bus.stalls.expect(None);
    }

    fn run_loop(mut self) {
        loop {
            // Running: any promise is kept (a new one is made before sleeping).
            self.bus.stalls.expect(None);
            let now = Timestamp::now();
            if !self.handle_commands(now) {
                return;
            }
            while let Some((t, event)) = self.next_event() {
                if t > now {
                    break;
                }
                let late = now.saturating_since(t).as_nanos() as u64;
                self.lateness.saturating_record(late.max(1));
                self.bus.stalls.record(t, now);
                self.fire(event, t);
                self.packetize(t);
                if self.bus.is_unplugged() {
                    return self.unplug();
                }
            }
            self.start_tx(now);
            self.packetize(now);
            self.publish(now);

            let next = self.next_event().map(|(t, _)| t);
            if next.is_some_and(|t| t <= Timestamp::now()) {
                continue;
            }
            // Promise when the chip will run next (its next event), before
            // the last look at host input: input after this point shortens
            // the promise (Bus::wake_chip), so a stall is visible while it lasts.
            self.bus.stalls.expect(next);
            // Announce the sleep, then look at host input once more: anything
            // that arrived before the announcement is handled now, anything
            // after it rings the doorbell.
            self.bus.chip_wake.arm();
            let now = Timestamp::now();
            if !self.handle_commands(now) {
                return;
            }
            if self.start_tx(now) | self.packetize(now) {
                continue;
            }
            let slept = Timestamp::now();
            let timeout = next.map(|t| t.saturating_since(slept));
            if let Ok(true) = self.bus.chip_wake.wait(timeout) {
                // Silicon reacts to host input at once: a late wakeup to it is
                // the simulation's lateness, logged like a late event.
                let rung = Timestamp::from_nanos(self.bus.rung_at.load(Ordering::Relaxed));
                if rung > slept {
                    self.bus.stalls.record(rung, Timestamp::now());
                }
            }
        }
    }

    fn next_event(&self) -> Option<(Timestamp, Event)> {
        // Ties resolve in this order: a finished TX byte may make the device
        // send, and a byte arriving at the very instant the timer expires
        // still makes that packet.
        let latency = Duration::from_millis(u64::from(self.regs.latency_timer_ms));
        [
            self.tx.map(|b| (b.end, Event::TxDone)),
            self.side.incoming.front().map(|a| (a.at, Event::Arrival)),
            self.flush_due
                .is_none()
                .then(|| (self.last_packet.add(latency), Event::LatencyExpiry)),
            self.unplug_at.map(|t| (t, Event::Unplug)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }

    fn fire(&mut self, event: Event, t: Timestamp) {
        match event {
            Event::TxDone => {
                if let Some(byte) = self.tx.take() {
                    self.device.on_byte(byte, &mut Line::new(&mut self.side, t));
                    self.after_device(t);
                    self.start_tx(t);
                }
            }
            Event::Arrival => {
                if let Some(arrival) = self.side.incoming.pop_front() {
                    self.receive(arrival.byte, t);
                }
            }
            Event::LatencyExpiry => self.flush_due = Some(t),
            Event::Unplug => self.bus.unplugged.store(true, Ordering::Release),
        }
    }

    /// A byte from the device reaches the chip's RX FIFO.
    fn receive(&mut self, byte: u8, t: Timestamp) {
        if let FlowControl::XonXoff { xon, xoff } = self.regs.flow {
            if byte == xoff {
                self.xoff = true;
            } else if byte == xon {
                self.xoff = false;
                self.start_tx(t);
            }
        }
        if self.rx_fifo.len() >= self.fifo_capacity {
            // The host is not reading: the byte is lost, as on the chip.
            self.pending_errors |= LineStatus::OE;
            self.bus
                .counters
                .overrun_bytes
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let first = self.rx_fifo.is_empty();
        self.rx_fifo.push_back(byte);
        if self.regs.event_char == Some(byte) && !first {
            self.flush_due.get_or_insert(t);
        }
    }

    /// What the device model changed in its last callback.
    fn after_device(&mut self, t: Timestamp) {
        if self.side.modem_changed {
            self.side.modem_changed = false;
            self.flush_due.get_or_insert(t);
            self.start_tx(t);
        }
    }

    fn tx_allowed(&self) -> bool {
        !self.regs.break_on
            && match self.regs.flow {
                FlowControl::None => true,
                FlowControl::RtsCts => self.side.modem.cts,
                FlowControl::DtrDsr => self.side.modem.dsr,
                FlowControl::XonXoff { .. } => !self.xoff,
            }
    }

    /// Starts the next byte from the USB-to-UART FIFO if the wire is idle.
    fn start_tx(&mut self, t: Timestamp) -> bool {
        if self.tx.is_some() || !self.tx_allowed() {
            return false;
        }
        let Ok(byte) = self.out_fifo.pop() else {
            return false;
        };
        self.tx = Some(WireByte {
            byte,
            start: t,
            end: t.add(self.side.frame),
        });
        self.bus.out_space.ring();
        true
    }

    fn modem_byte(&self) -> u8 {
        let m = self.side.modem;
        ModemStatus::from_lines(m.cts, m.dsr, m.ri, m.dcd).0
    }

    fn line_byte(&self) -> u8 {
        // THRE: nothing waiting to be sent; TEMT: and nothing on the wire.
        let mut line = 0;
        if self.out_fifo.is_empty() {
            line |= LineStatus::THRE;
            if self.tx.is_none() {
                line |= LineStatus::TEMT;
            }
        }
        line
    }

    /// Sends every packet that is due and has a credit; returns whether any went.
    fn packetize(&mut self, t: Timestamp) -> bool {
        let mut sent = false;
        loop {
            let full = self.rx_fifo.len() >= self.max_payload;
            if !full && self.flush_due.is_none() {
                break;
            }
            if self.bus.credits.load(Ordering::Acquire) == 0 {
                break;
            }
            let modem = self.modem_byte();
            let mut line = self.line_byte();
            let Ok(mut slots) = self.in_ring.write_chunk(1) else {
                break;
            };
            self.bus.credits.fetch_sub(1, Ordering::AcqRel);
            let n = self.rx_fifo.len().min(self.max_payload);
            if n > 0 {
                line |= self.pending_errors;
                self.pending_errors = 0;
            }
            let packet = &mut slots.as_mut_slices().0[0];
            packet.data[0] = modem;
            packet.data[1] = line;
            for (dst, src) in packet.data[2..2 + n]
                .iter_mut()
                .zip(self.rx_fifo.drain(..n))
            {
                *dst = src;
            }
            packet.len = (2 + n) as u16;
            packet.sent_at = t;
            slots.commit_all();

            let c = &self.bus.counters;
            c.packets.fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                c.status_only.fetch_add(1, Ordering::Relaxed);
            }
            c.bytes_to_host.fetch_add(n as u64, Ordering::Relaxed);
            self.last_packet = t;
            if self.rx_fifo.is_empty() {
                self.flush_due = None;
            }
            self.bus.in_ready.ring();
            sent = true;
        }
        sent
    }

    /// Runs queued commands; false on shutdown.
    fn handle_commands(&mut self, now: Timestamp) -> bool {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Control { request, reply } => {
                    let answer = self.control(&request, now);
                    let _ = reply.send(answer);
                    if let Ok(mut state) = self.bus.state.lock() {
                        *state = self.regs;
                    }
                }
                Command::InjectLineError(errors) => self.pending_errors |= errors.0,
                Command::SetModemLines(lines) => self.set_modem_lines(lines, now),
                Command::UnplugAt(t) => {
                    self.unplug_at = Some(self.unplug_at.map_or(t, |u| u.min(t)));
                }
                // The chip's thread stops as a preempted vCPU would.
                Command::Stall(d) => std::thread::sleep(d),
                Command::Shutdown => return false,
            }
        }
        true
    }

    fn set_modem_lines(&mut self, lines: ModemLines, now: Timestamp) {
        if lines != self.side.modem {
            self.side.modem = lines;
            self.flush_due.get_or_insert(now);
            self.start_tx(now);
        }
    }

    fn control(
        &mut self,
        request: &crate::proto::ControlRequest,
        now: Timestamp,
    ) -> Result<([u8; 2], usize), TransferError> {
        let effect = self
            .regs
            .handle(self.chip, self.interface, request)
            .map_err(|Stall| TransferError::Stall)?;
        match effect {
            Effect::None => {}
            Effect::PurgeRx => self.purge_rx(),
            Effect::PurgeTx => self.purge_tx(),
            Effect::Reset => {
                self.purge_rx();
                self.purge_tx();
                self.xoff = false;
                self.modem_control(now);
            }
            Effect::Timing => self.side.frame = frame_time(self.regs.divisor, self.regs.line),
            Effect::ModemControl => self.modem_control(now),
            Effect::PollModemStatus => return Ok(([self.modem_byte(), self.line_byte()], 2)),
            Effect::Reply(bytes, n) => return Ok((bytes, n)),
        }
        // Flow control or break may have changed: the wire may start again.
        self.start_tx(now);
        Ok(([0, 0], 0))
    }

    fn purge_rx(&mut self) {
        self.rx_fifo.clear();
        self.pending_errors = 0;
    }

    fn purge_tx(&mut self) {
        while self.out_fifo.pop().is_ok() {}
        self.bus.out_space.ring();
    }

    fn modem_control(&mut self, now: Timestamp) {
        if (self.side.dtr, self.side.rts) != (self.regs.dtr, self.regs.rts) {
            self.side.dtr = self.regs.dtr;
            self.side.rts = self.regs.rts;
            let (dtr, rts) = (self.regs.dtr, self.regs.rts);
            self.device
                .on_modem_control(dtr, rts, &mut Line::new(&mut self.side, now));
            self.after_device(now);
        }
    }

    fn publish(&mut self, now: Timestamp) {
        if now.saturating_since(self.last_publish) < PUBLISH_EVERY {
            return;
        }
        if let Ok(mut shared) = self.bus.lateness.try_lock() {
            // Same bounds on both sides, so adding never reallocates.
            if shared.add(&self.lateness).is_ok() {
                self.lateness.reset();
                self.last_publish = now;
            }
        }
    }

    /// Silicon vanished: every pending and later transfer fails.
    fn unplug(mut self) {
        self.bus.unplugged.store(true, Ordering::Release);
        self.last_publish = Timestamp::default();
        self.publish(Timestamp::now());
        self.bus.in_ready.ring_always();
        self.bus.out_space.ring_always();
        // Pending control requests see their reply channel close: NoDevice.
    }
}
