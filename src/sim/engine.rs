//! One UART channel of a simulated FTDI chip as a sans-IO state machine.
//!
//! [`ChannelEngine`] holds everything a channel of the chip is — registers,
//! the device model on its UART, the RX and TX FIFOs, the latency timer, the
//! packetizer, wire timing, flow control, the event character, injected line
//! errors, the modem lines, unplug — and nothing that runs it: it never reads
//! a clock, never sleeps and owns no thread. Whoever drives it passes `now`
//! with every input, asks [`poll_timeout`](ChannelEngine::poll_timeout) when
//! it next needs to run, calls [`handle_timeout`](ChannelEngine::handle_timeout)
//! then, and takes the packets the chip sent with
//! [`poll_packet`](ChannelEngine::poll_packet) (the quinn-proto shape). The
//! threaded [`SimChip`](super::SimChip) drives it on `CLOCK_MONOTONIC`; the
//! virtual USB device drives one per interface for a USB front end; tests
//! drive it on a virtual clock.
//!
//! Events (a TX byte finishing, a byte from the device arriving, the latency
//! timer expiring, an unplug) happen at their own times even when the driver
//! calls late: a late call processes the backlog in time order at the ideal
//! times, as silicon, with its own clock, would have. Every input first runs
//! what was scheduled up to its `now`, so inputs and events keep causal order.
//!
//! Packet rules (FTDI AN232B-04, see docs/ftdi-protocol.md §4.2, §5): a packet goes
//! out when the UART-to-USB FIFO holds a full packet's payload, when the
//! enabled event character arrives (not as the first byte in the buffer),
//! when a modem line changes, or when the latency timer expires since the
//! last packet — status-only if there is no data. A packet needs an IN token
//! from the host (a credit, [`set_in_credits`](ChannelEngine::set_in_credits));
//! without one the data waits in the FIFO and bytes beyond its size are lost
//! with OE reported on the next packet that carries data.

use std::collections::VecDeque;
use std::time::Duration;

use super::device::{Device, DeviceSide, Line, ModemLines, WireByte};
use super::registers::{ChipState, Effect, Stall};
use super::transfer::{InPacket, MAX_PACKET, TransferError};
use super::wire_log::{WireDirection, WireEvent, WireLog};
use super::{SimConfig, SimCounters};
use crate::error::{Error, Result};
use crate::proto::{
    Chip, ControlRequest, Divisor, FlowControl, Interface, LineProperties, LineStatus, ModemStatus,
};
use crate::time::Timestamp;

/// Packets the engine holds for its driver before its queue would grow.
const PACKET_QUEUE: usize = 64;

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

/// The data stage of a control request's answer: up to two bytes for the
/// IN requests a chip answers, none for OUT requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlReply {
    bytes: [u8; 2],
    len: u8,
}

impl ControlReply {
    /// The reply's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// One UART channel of a simulated FTDI chip, driven by its caller's clock.
///
/// ```
/// use std::time::Duration;
/// use ftdi_rt::proto::ControlRequest;
/// use ftdi_rt::sim::{ChannelEngine, Loopback, SimConfig};
/// use ftdi_rt::{Interface, Timestamp};
///
/// let t0 = Timestamp::from_nanos(1_000_000_000);
/// let mut chip = ChannelEngine::new(Loopback::new(), &SimConfig::default(), t0)?;
/// let latency = ControlRequest::set_latency_timer(Interface::A, 1).unwrap();
/// chip.handle_control(t0, &latency).unwrap();
/// chip.set_in_credits(t0, 1); // the host has one IN transfer pending
/// let due = chip.poll_timeout().unwrap();
/// assert_eq!(due, t0 + Duration::from_millis(1));
/// chip.handle_timeout(due);
/// let packet = chip.poll_packet().unwrap();
/// assert_eq!((packet.bytes(), packet.sent_at()), (&[0x01, 0x60][..], due));
/// # Ok::<(), ftdi_rt::Error>(())
/// ```
pub struct ChannelEngine {
    chip: Chip,
    interface: Interface,
    max_packet_size: usize,
    rx_capacity: usize,
    tx_capacity: usize,
    regs: ChipState,
    device: Box<dyn Device>,
    side: DeviceSide,
    /// UART-to-USB: bytes from the device waiting for a packet.
    rx_fifo: VecDeque<u8>,
    /// USB-to-UART: bytes from the host waiting for the wire.
    tx_fifo: VecDeque<u8>,
    /// Error bits for the next packet that carries data.
    pending_errors: u8,
    /// A flush (latency expiry, event char, modem change) is due since then.
    flush_due: Option<Timestamp>,
    /// Ideal time of the last packet: the latency timer runs from here.
    last_packet: Timestamp,
    /// The byte on the TX wire.
    tx: Option<WireByte>,
    /// XOFF received under XON/XOFF flow control.
    xoff: bool,
    unplug_at: Option<Timestamp>,
    unplugged: bool,
    /// IN tokens the host has outstanding: packets the chip may send.
    credits: u32,
    packets: VecDeque<InPacket>,
    counters: SimCounters,
    wire_log: WireLog,
    /// The latest time the engine was run to.
    now: Timestamp,
}

impl std::fmt::Debug for ChannelEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelEngine")
            .field("chip", &self.chip)
            .field("interface", &self.interface)
            .field("now", &self.now)
            .field("state", &self.regs)
            .field("counters", &self.counters)
            .field("unplugged", &self.unplugged)
            .finish_non_exhaustive()
    }
}

impl ChannelEngine {
    /// Powers up `config.interface` of `config.chip` at `now`, wired to
    /// `device` (`config.realtime` is the threaded shell's and ignored here).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a max packet size outside 8..=512 or an
    /// interface the chip does not have.
    pub fn new<D: Device>(device: D, config: &SimConfig, now: Timestamp) -> Result<ChannelEngine> {
        ChannelEngine::with_boxed_device(Box::new(device), config, now)
    }

    pub(crate) fn with_boxed_device(
        device: Box<dyn Device>,
        config: &SimConfig,
        now: Timestamp,
    ) -> Result<ChannelEngine> {
        let chip = config.chip;
        let max_packet_size = config
            .max_packet_size
            .unwrap_or(chip.default_max_packet_size());
        if !(8..=MAX_PACKET).contains(&max_packet_size) {
            return Err(Error::InvalidConfig(format!(
                "simulated max packet size {max_packet_size} is outside 8..={MAX_PACKET}"
            )));
        }
        if u16::from(config.interface.number()) >= u16::from(chip.channels()) {
            return Err(Error::InvalidConfig(format!(
                "the {chip} has no interface {}",
                config.interface
            )));
        }
        let regs = ChipState::power_on(chip);
        Ok(ChannelEngine {
            chip,
            interface: config.interface,
            max_packet_size,
            rx_capacity: chip.uart_to_usb_fifo(),
            tx_capacity: chip.usb_to_uart_fifo(),
            side: DeviceSide::new(frame_time(regs.divisor, regs.line)),
            regs,
            device,
            rx_fifo: VecDeque::with_capacity(chip.uart_to_usb_fifo()),
            tx_fifo: VecDeque::with_capacity(chip.usb_to_uart_fifo()),
            pending_errors: 0,
            flush_due: None,
            last_packet: now,
            tx: None,
            xoff: false,
            unplug_at: None,
            unplugged: false,
            credits: 0,
            packets: VecDeque::with_capacity(PACKET_QUEUE),
            counters: SimCounters::default(),
            wire_log: WireLog::default(),
            now,
        })
    }

    /// Keeps a record of the newest `capacity` bytes that crossed the wire
    /// ([`wire_log`](ChannelEngine::wire_log)); allocated here, once.
    #[must_use]
    pub fn with_wire_log(mut self, capacity: usize) -> ChannelEngine {
        self.wire_log = WireLog::with_capacity(capacity);
        self
    }

    /// The chip family.
    pub fn chip(&self) -> Chip {
        self.chip
    }

    /// The channel this engine is.
    pub fn interface(&self) -> Interface {
        self.interface
    }

    /// Bulk max packet size (status bytes included).
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// The latest time the engine has been run to.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The registers as the host last set them.
    pub fn state(&self) -> &ChipState {
        &self.regs
    }

    /// What the chip has done so far.
    pub fn counters(&self) -> SimCounters {
        self.counters
    }

    /// The chip's modem inputs (CTS, DSR, RI, DCD) as they are.
    pub fn modem_lines(&self) -> ModemLines {
        self.side.modem
    }

    /// When each byte crossed the wire (empty unless enabled with
    /// [`with_wire_log`](ChannelEngine::with_wire_log)).
    pub fn wire_log(&self) -> &WireLog {
        &self.wire_log
    }

    /// Whether the chip has been unplugged.
    pub fn is_unplugged(&self) -> bool {
        self.unplugged
    }

    /// When the engine next needs [`handle_timeout`](ChannelEngine::handle_timeout);
    /// `None` when nothing is scheduled (unplugged, or idle with a flush
    /// waiting for an IN token).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_event().map(|(t, _)| t)
    }

    /// Runs everything scheduled up to `now`, each event at its own time.
    /// `now` earlier than the engine's clock changes nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some((t, event)) = self.next_event() {
            if t > now {
                break;
            }
            // The clock follows the events it runs. Only a device model that
            // sends "in the past" schedules before it: that byte arrives
            // now, so time never runs back.
            let t = t.max(self.now);
            self.now = t;
            self.fire(event, t);
            self.packetize(t);
        }
        self.now = self.now.max(now);
    }

    /// The next bulk-IN packet the chip sent, in the order sent.
    pub fn poll_packet(&mut self) -> Option<InPacket> {
        self.packets.pop_front()
    }

    /// IN tokens the host has outstanding.
    pub fn in_credits(&self) -> u32 {
        self.credits
    }

    /// The host now has `credits` IN tokens outstanding (each lets the chip
    /// send one packet; a sent packet uses one up). Whatever is due goes at once.
    pub fn set_in_credits(&mut self, now: Timestamp, credits: u32) {
        self.handle_timeout(now);
        if self.unplugged {
            return;
        }
        self.credits = credits;
        self.packetize(self.now);
    }

    /// Free room in the USB-to-UART (TX) FIFO.
    pub fn tx_space(&self) -> usize {
        self.tx_capacity - self.tx_fifo.len()
    }

    /// Bytes in the TX FIFO, not yet on the wire.
    pub fn tx_queued(&self) -> usize {
        self.tx_fifo.len()
    }

    /// Bulk OUT: the TX FIFO takes what fits of `data`; returns how many
    /// bytes it accepted (the rest waits, as a NAKed packet does).
    pub fn write(&mut self, now: Timestamp, data: &[u8]) -> usize {
        self.handle_timeout(now);
        if self.unplugged {
            return 0;
        }
        let n = data.len().min(self.tx_space());
        self.tx_fifo.extend(&data[..n]);
        self.counters.bytes_from_host += n as u64;
        self.start_tx(self.now);
        n
    }

    /// A vendor control request addressed to this channel.
    ///
    /// # Errors
    /// [`TransferError::Stall`] where a real chip would refuse it,
    /// [`TransferError::NoDevice`] after an unplug.
    pub fn handle_control(
        &mut self,
        now: Timestamp,
        request: &ControlRequest,
    ) -> std::result::Result<ControlReply, TransferError> {
        self.handle_timeout(now);
        if self.unplugged {
            return Err(TransferError::NoDevice);
        }
        let now = self.now;
        let effect = self
            .regs
            .handle(self.chip, self.interface, request)
            .map_err(|Stall| TransferError::Stall)?;
        let reply = |bytes: [u8; 2], len: usize| ControlReply {
            bytes,
            len: len.min(2) as u8,
        };
        match effect {
            Effect::None => {}
            Effect::PurgeRx => self.purge_rx(),
            Effect::PurgeTx => self.tx_fifo.clear(),
            Effect::Reset => {
                self.purge_rx();
                self.tx_fifo.clear();
                self.xoff = false;
                self.modem_control(now);
            }
            Effect::Timing => self.side.frame = frame_time(self.regs.divisor, self.regs.line),
            Effect::ModemControl => self.modem_control(now),
            Effect::PollModemStatus => return Ok(reply([self.modem_byte(), self.line_byte()], 2)),
            Effect::Reply(bytes, n) => return Ok(reply(bytes, n)),
        }
        // Flow control or break may have changed: the wire may start again,
        // and the device may have moved a modem line.
        self.start_tx(now);
        self.packetize(now);
        Ok(ControlReply::default())
    }

    /// Changes the chip's modem inputs, as the device (or a jumper) would;
    /// a change makes the chip send a packet.
    pub fn set_modem_lines(&mut self, now: Timestamp, lines: ModemLines) {
        self.handle_timeout(now);
        if self.unplugged || lines == self.side.modem {
            return;
        }
        self.side.modem = lines;
        self.flush_due.get_or_insert(self.now);
        self.start_tx(self.now);
        self.packetize(self.now);
    }

    /// Sets these line-status error bits (OE, PE, FE, BI, FIFO error) on the
    /// next packet that carries data.
    pub fn inject_line_error(&mut self, errors: LineStatus) {
        self.pending_errors |= errors.0;
    }

    /// Unplugs the chip at `at` (or at once, on the next run, if `at` has
    /// passed); an earlier unplug time wins.
    pub fn unplug_at(&mut self, at: Timestamp) {
        self.unplug_at = Some(self.unplug_at.map_or(at, |u| u.min(at)));
    }

    fn next_event(&self) -> Option<(Timestamp, Event)> {
        if self.unplugged {
            return None;
        }
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
                    self.wire_log.record(WireEvent {
                        direction: WireDirection::ToDevice,
                        byte: byte.byte,
                        start: byte.start,
                        end: byte.end,
                    });
                    self.device.on_byte(byte, &mut Line::new(&mut self.side, t));
                    self.after_device(t);
                    self.start_tx(t);
                }
            }
            Event::Arrival => {
                if let Some(arrival) = self.side.incoming.pop_front() {
                    self.wire_log.record(WireEvent {
                        direction: WireDirection::FromDevice,
                        byte: arrival.byte,
                        start: arrival.start,
                        end: arrival.at,
                    });
                    self.receive(arrival.byte, t);
                }
            }
            Event::LatencyExpiry => self.flush_due = Some(t),
            Event::Unplug => {
                self.unplugged = true;
                self.credits = 0;
            }
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
        if self.rx_fifo.len() >= self.rx_capacity {
            // The host is not reading: the byte is lost, as on the chip.
            self.pending_errors |= LineStatus::OE;
            self.counters.overrun_bytes += 1;
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

    /// Starts the next byte from the TX FIFO if the wire is idle.
    fn start_tx(&mut self, t: Timestamp) {
        if self.tx.is_some() || !self.tx_allowed() {
            return;
        }
        if let Some(byte) = self.tx_fifo.pop_front() {
            self.tx = Some(WireByte {
                byte,
                start: t,
                end: t.add(self.side.frame),
            });
        }
    }

    fn modem_byte(&self) -> u8 {
        let m = self.side.modem;
        ModemStatus::from_lines(m.cts, m.dsr, m.ri, m.dcd).0
    }

    fn line_byte(&self) -> u8 {
        // THRE: nothing waiting to be sent; TEMT: and nothing on the wire.
        let mut line = 0;
        if self.tx_fifo.is_empty() {
            line |= LineStatus::THRE;
            if self.tx.is_none() {
                line |= LineStatus::TEMT;
            }
        }
        line
    }

    /// Sends every packet that is due and has a credit.
    fn packetize(&mut self, t: Timestamp) {
        let max_payload = self.max_packet_size - 2;
        loop {
            let full = self.rx_fifo.len() >= max_payload;
            if (!full && self.flush_due.is_none()) || self.credits == 0 || self.unplugged {
                return;
            }
            self.credits -= 1;
            let n = self.rx_fifo.len().min(max_payload);
            let mut packet = InPacket {
                len: (2 + n) as u16,
                sent_at: t,
                ..InPacket::default()
            };
            packet.data[0] = self.modem_byte();
            packet.data[1] = self.line_byte();
            if n > 0 {
                packet.data[1] |= self.pending_errors;
                self.pending_errors = 0;
            }
            for (dst, src) in packet.data[2..2 + n]
                .iter_mut()
                .zip(self.rx_fifo.drain(..n))
            {
                *dst = src;
            }
            self.packets.push_back(packet);
            self.counters.packets += 1;
            if n == 0 {
                self.counters.status_only += 1;
            }
            self.counters.bytes_to_host += n as u64;
            self.last_packet = t;
            if self.rx_fifo.is_empty() {
                self.flush_due = None;
            }
        }
    }

    fn purge_rx(&mut self) {
        self.rx_fifo.clear();
        self.pending_errors = 0;
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
}
