//! [`VirtualFtdi`]: a whole FTDI chip as a USB device — descriptors,
//! standard requests, vendor requests routed to the right channel, and each
//! channel's bulk endpoints — on the [`UsbFunction`] seam.

use std::collections::VecDeque;

use super::bulk::BulkChannel;
use super::descriptors::{Descriptors, MAX_STRING_UNITS, chip_usb};
use super::standard::{self, DeviceState, Shape};
use super::{SetupPacket, Urb, UrbCompletion, UrbStatus, UsbFunction, UsbSpeed};
use crate::error::{Error, Result};
use crate::proto::{
    Chip, ControlRequest, Interface, LineStatus, SIO_GET_LATENCY_TIMER, SIO_POLL_MODEM_STATUS,
    SIO_READ_PINS,
};
use crate::sim::{
    ChannelEngine, ChipState, Device, Line, ModemLines, SimConfig, SimCounters, WireByte, WireLog,
};
use crate::time::Timestamp;

/// The serial number a [`VirtualFtdi`] reports unless told otherwise.
pub const DEFAULT_SERIAL_NUMBER: &str = "FTSIM001";

/// First vendor request of the EEPROM group (READ, WRITE, ERASE: 0x90..=0x92),
/// whose wIndex is a word address, not a channel.
const EEPROM_REQUESTS: std::ops::RangeInclusive<u8> = 0x90..=0x92;

/// A chip has no such interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {chip} has no interface {interface} (it has {} channel(s))", chip.channels())]
pub struct NoSuchInterface {
    /// The chip asked.
    pub chip: Chip,
    /// The interface asked for.
    pub interface: Interface,
}

/// How a [`VirtualFtdi`] is built: the chip, a device model per channel,
/// the identity it reports.
#[must_use]
pub struct VirtualFtdiBuilder {
    chip: Chip,
    devices: [Option<Box<dyn Device>>; 4],
    serial_number: Option<String>,
    max_packet_size: Option<usize>,
    wire_log: usize,
}

impl std::fmt::Debug for VirtualFtdiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wired: Vec<bool> = self.devices.iter().map(Option::is_some).collect();
        f.debug_struct("VirtualFtdiBuilder")
            .field("chip", &self.chip)
            .field("devices", &wired)
            .field("serial_number", &self.serial_number)
            .field("max_packet_size", &self.max_packet_size)
            .field("wire_log", &self.wire_log)
            .finish()
    }
}

impl VirtualFtdiBuilder {
    /// Wires `device` to `interface`'s UART. A channel without one has
    /// nothing connected: what it sends goes nowhere, nothing comes back.
    pub fn device<D: Device>(mut self, interface: Interface, device: D) -> Self {
        self.devices[usize::from(interface.number())] = Some(Box::new(device));
        self
    }

    /// The serial number string (default [`DEFAULT_SERIAL_NUMBER`]); give
    /// several devices different ones, or the same or an empty one to test
    /// duplicate identities.
    pub fn serial_number(mut self, serial: impl Into<String>) -> Self {
        self.serial_number = Some(serial.into());
        self
    }

    /// No serial number at all (iSerialNumber 0), as an FT4232H without an
    /// EEPROM reports.
    pub fn without_serial_number(mut self) -> Self {
        self.serial_number = None;
        self
    }

    /// Bulk max packet size: 64 puts a high-speed chip on a full-speed port
    /// (it then connects at full speed); default: the chip's own (64 or 512).
    pub fn max_packet_size(mut self, size: usize) -> Self {
        self.max_packet_size = Some(size);
        self
    }

    /// Keeps, per channel, the newest `capacity` bytes that crossed the wire
    /// ([`VirtualFtdi::wire_log`]); default 0, none.
    pub fn wire_log(mut self, capacity: usize) -> Self {
        self.wire_log = capacity;
        self
    }

    /// Powers the chip up at `now`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a chip that is not modelled (FT232R,
    /// FT2232H and FT4232H are), a device for an interface the chip lacks, a
    /// max packet size other than 64 (or 512 on a high-speed chip), or a
    /// serial number longer than a string descriptor holds.
    pub fn build(self, now: Timestamp) -> Result<VirtualFtdi> {
        let chip = self.chip;
        if chip_usb(chip).is_none() {
            return Err(Error::InvalidConfig(format!(
                "the virtual USB device models the FT232R, FT2232H and FT4232H, not the {chip}"
            )));
        }
        let channels = usize::from(chip.channels());
        if let Some(extra) = self.devices[channels..].iter().position(Option::is_some) {
            let interface = Interface::ALL[channels + extra];
            return Err(Error::InvalidConfig(
                NoSuchInterface { chip, interface }.to_string(),
            ));
        }
        let mps = self
            .max_packet_size
            .unwrap_or(chip.default_max_packet_size());
        let speed = match mps {
            64 => UsbSpeed::Full,
            512 if chip.is_high_speed() => UsbSpeed::High,
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "the {chip}'s bulk endpoints are 64 bytes{}, not {mps}",
                    if chip.is_high_speed() {
                        " (full speed) or 512 (high speed)"
                    } else {
                        ""
                    }
                )));
            }
        };
        if let Some(serial) = &self.serial_number
            && serial.encode_utf16().count() > MAX_STRING_UNITS
        {
            return Err(Error::InvalidConfig(format!(
                "a serial number holds at most {MAX_STRING_UNITS} UTF-16 units"
            )));
        }
        let descriptors = Descriptors::new(chip, speed, self.serial_number.as_deref())
            .ok_or_else(|| Error::InvalidConfig(format!("no descriptors for the {chip}")))?;
        let mut bulk = Vec::with_capacity(channels);
        for (&interface, device) in chip.interfaces().iter().zip(self.devices) {
            let device = device.unwrap_or_else(|| Box::new(|_: WireByte, _: &mut Line<'_>| {}));
            let config = SimConfig::default()
                .with_chip(chip)
                .with_interface(interface)
                .with_max_packet_size(mps);
            let engine = ChannelEngine::with_boxed_device(device, &config, now)?
                .with_wire_log(self.wire_log);
            bulk.push(BulkChannel::new(engine));
        }
        Ok(VirtualFtdi {
            chip,
            speed,
            max_packet_size: mps,
            serial_number: self.serial_number,
            descriptors,
            state: DeviceState::default(),
            channels: bulk,
            completions: VecDeque::new(),
            unplug_at: None,
            unplugged: false,
            now,
        })
    }
}

/// A simulated FTDI chip as a USB device, for a host-controller front end
/// (USB/IP, or a test playing the host) to drive through [`UsbFunction`].
///
/// Each interface is a channel with its own [`ChannelEngine`]: its own
/// registers, FIFOs, latency timer and device model. Vendor requests reach
/// the channel wIndex names (port 1..=4 = A..=D; 0 = A, as the kernel sends
/// for an FT232R); on a single-channel chip every vendor request goes to A.
/// EEPROM requests (READ/WRITE/ERASE_EEPROM) STALL: there is no EEPROM, so
/// ftdi_sio's CBUS probe of an FT232R logs "GPIO initialisation failed: -32"
/// and goes on. Bulk URBs before SET_CONFIGURATION STALL, as a device in the
/// Address state does not answer on its bulk endpoints.
///
/// Bulk IN follows the chip: a pending IN URB is the host controller issuing
/// IN tokens, so a channel sends (status packets included) only while the
/// host has an IN URB pending on its endpoint, and its data waits in the
/// FIFO (overrunning with OE) while there is none. IN URBs queue in
/// submission order and only the head one receives packets; each packet is
/// appended to it, and it completes on a short packet or when full (a packet
/// longer than the room left completes it with [`UrbStatus::Overflow`], as
/// babble would). An unlinked head URB leaves what the chip sent into it for
/// the next IN URB.
///
/// Bulk OUT: the head OUT URB goes to the chip's TX FIFO one max packet at a
/// time, each packet whole once the FIFO has room for it (until then the
/// chip NAKs it), so the URB completes when the FIFO takes its last packet,
/// paced by the UART draining at the baud rate. A control URB completes at
/// once. After an unplug every pending and later URB completes
/// [`UrbStatus::NoDevice`].
pub struct VirtualFtdi {
    chip: Chip,
    speed: UsbSpeed,
    max_packet_size: usize,
    serial_number: Option<String>,
    descriptors: Descriptors,
    state: DeviceState,
    channels: Vec<BulkChannel>,
    completions: VecDeque<UrbCompletion>,
    unplug_at: Option<Timestamp>,
    unplugged: bool,
    now: Timestamp,
}

impl std::fmt::Debug for VirtualFtdi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualFtdi")
            .field("chip", &self.chip)
            .field("speed", &self.speed)
            .field("serial_number", &self.serial_number)
            .field("state", &self.state)
            .field("unplugged", &self.unplugged)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl VirtualFtdi {
    /// Starts building a virtual `chip`.
    pub fn builder(chip: Chip) -> VirtualFtdiBuilder {
        VirtualFtdiBuilder {
            chip,
            devices: [None, None, None, None],
            serial_number: Some(DEFAULT_SERIAL_NUMBER.to_owned()),
            max_packet_size: None,
            wire_log: 0,
        }
    }

    /// The chip family.
    pub fn chip(&self) -> Chip {
        self.chip
    }

    /// Bulk max packet size of every endpoint.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// The serial number string it reports, if any.
    pub fn serial_number(&self) -> Option<&str> {
        self.serial_number.as_deref()
    }

    /// The address the host gave it (0 before SET_ADDRESS).
    pub fn address(&self) -> u8 {
        self.state.address
    }

    /// The configuration the host selected (0: not configured).
    pub fn configuration(&self) -> u8 {
        self.state.configuration
    }

    fn channel(&self, interface: Interface) -> std::result::Result<&BulkChannel, NoSuchInterface> {
        self.channels
            .get(usize::from(interface.number()))
            .ok_or(NoSuchInterface {
                chip: self.chip,
                interface,
            })
    }

    fn index(&self, interface: Interface) -> std::result::Result<usize, NoSuchInterface> {
        self.channel(interface)
            .map(|_| usize::from(interface.number()))
    }

    /// A channel's registers as the host last set them.
    ///
    /// # Errors
    /// [`NoSuchInterface`] for an interface the chip lacks.
    pub fn state(&self, interface: Interface) -> std::result::Result<ChipState, NoSuchInterface> {
        self.channel(interface).map(|c| *c.engine.state())
    }

    /// What a channel has done so far.
    ///
    /// # Errors
    /// [`NoSuchInterface`] for an interface the chip lacks.
    pub fn counters(
        &self,
        interface: Interface,
    ) -> std::result::Result<SimCounters, NoSuchInterface> {
        self.channel(interface).map(|c| c.engine.counters())
    }

    /// When each byte crossed a channel's wire (enable with
    /// [`VirtualFtdiBuilder::wire_log`]).
    ///
    /// # Errors
    /// [`NoSuchInterface`] for an interface the chip lacks.
    pub fn wire_log(&self, interface: Interface) -> std::result::Result<&WireLog, NoSuchInterface> {
        self.channel(interface).map(|c| c.engine.wire_log())
    }

    /// Sets line-status error bits (OE, PE, FE, BI) on a channel's next
    /// packet that carries data.
    ///
    /// # Errors
    /// [`NoSuchInterface`] for an interface the chip lacks.
    pub fn inject_line_error(
        &mut self,
        interface: Interface,
        errors: LineStatus,
    ) -> std::result::Result<(), NoSuchInterface> {
        let i = self.index(interface)?;
        self.channels[i].engine.inject_line_error(errors);
        Ok(())
    }

    /// Changes a channel's modem inputs (CTS, DSR, RI, DCD) at `now`; a
    /// change makes the channel send a packet.
    ///
    /// # Errors
    /// [`NoSuchInterface`] for an interface the chip lacks.
    pub fn set_modem_lines(
        &mut self,
        now: Timestamp,
        interface: Interface,
        lines: ModemLines,
    ) -> std::result::Result<(), NoSuchInterface> {
        let i = self.index(interface)?;
        self.advance(now);
        let ch = &mut self.channels[i];
        ch.engine.set_modem_lines(self.now, lines);
        ch.service(self.now, &mut self.completions);
        Ok(())
    }

    /// Unplugs the device now: every pending URB completes `NoDevice`, as
    /// does every later one.
    pub fn unplug(&mut self, now: Timestamp) {
        self.advance(now);
        self.disconnect(self.now);
    }

    /// Unplugs the device at `at` (an earlier time wins).
    pub fn unplug_at(&mut self, at: Timestamp) {
        self.unplug_at = Some(self.unplug_at.map_or(at, |u| u.min(at)));
    }

    fn disconnect(&mut self, at: Timestamp) {
        if self.unplugged {
            return;
        }
        self.unplugged = true;
        for ch in &mut self.channels {
            ch.engine.unplug_at(at);
            ch.engine.handle_timeout(at);
            ch.fail_all(UrbStatus::NoDevice, &mut self.completions);
        }
    }

    /// Runs every channel up to `now`, one event time after another, so
    /// that what one event sends lands in the URBs pending at that time.
    fn advance(&mut self, now: Timestamp) {
        let now = now.max(self.now);
        while let Some(due) = self.poll_timeout().filter(|&t| t <= now) {
            // An event a device model scheduled in the past runs now (at its
            // own time inside the engine): the device clock never goes back.
            let t = due.max(self.now);
            for ch in &mut self.channels {
                if ch.engine.poll_timeout().is_some_and(|due| due <= t) {
                    ch.engine.handle_timeout(t);
                    ch.service(t, &mut self.completions);
                }
            }
            if self.unplug_at.is_some_and(|u| u <= t) {
                self.disconnect(t);
            }
            self.now = t;
        }
        self.now = now;
    }

    /// The bulk channel behind endpoint `number` in direction `dir_in`.
    fn bulk_channel(&self, number: u8, dir_in: bool) -> Option<usize> {
        let index = match (dir_in, number) {
            (true, n) if n % 2 == 1 => (n - 1) / 2,
            (false, n) if n >= 2 && n.is_multiple_of(2) => (n - 2) / 2,
            _ => return None,
        };
        (usize::from(index) < self.channels.len()).then_some(usize::from(index))
    }

    fn complete(&mut self, id: u32, status: UrbStatus) {
        self.completions.push_back(UrbCompletion {
            id,
            status,
            data: Vec::new(),
            actual_length: 0,
        });
    }

    fn control(&mut self, urb: &Urb) {
        let Some(setup) = urb.setup else {
            return self.complete(urb.id, UrbStatus::Stall);
        };
        let answer = match setup.request_type & 0x60 {
            0x00 => {
                let shape = Shape {
                    descriptors: &self.descriptors,
                    interfaces: self.channels.len() as u8,
                };
                standard::handle(&mut self.state, &shape, setup)
            }
            0x40 => self.vendor(setup),
            _ => None,
        };
        let Some(mut data) = answer else {
            return self.complete(urb.id, UrbStatus::Stall);
        };
        let actual_length = if setup.is_in() {
            data.truncate(usize::from(setup.length).min(urb.length));
            data.len()
        } else {
            data.clear();
            urb.data.len()
        };
        self.completions.push_back(UrbCompletion {
            id: urb.id,
            status: UrbStatus::Completed,
            data,
            actual_length,
        });
    }

    /// An FTDI vendor request: to the channel wIndex names, answered by its engine.
    fn vendor(&mut self, setup: SetupPacket) -> Option<Vec<u8>> {
        if EEPROM_REQUESTS.contains(&setup.request) {
            return None;
        }
        let channel = match (self.channels.len(), setup.index & 0xFF) {
            (1, _) | (_, 0) => 0,
            (n, port) if usize::from(port) <= n => usize::from(port) - 1,
            _ => return None,
        };
        let mut request = ControlRequest {
            request_type: setup.request_type,
            request: setup.request,
            value: setup.value,
            index: setup.index,
            length: setup.length,
        };
        // The chip answers with its own reply length; a longer wLength just
        // gets a short data stage, a shorter one a cut reply.
        if setup.is_in() && setup.length > 0 {
            request.length = match setup.request {
                SIO_POLL_MODEM_STATUS => 2,
                SIO_GET_LATENCY_TIMER | SIO_READ_PINS => 1,
                _ => setup.length,
            };
        }
        let now = self.now;
        let ch = &mut self.channels[channel];
        let reply = ch.engine.handle_control(now, &request);
        ch.service(now, &mut self.completions);
        reply.ok().map(|r| r.bytes().to_vec())
    }
}

impl UsbFunction for VirtualFtdi {
    fn speed(&self) -> UsbSpeed {
        self.speed
    }

    fn submit(&mut self, now: Timestamp, urb: Urb) {
        self.advance(now);
        if self.unplugged {
            return self.complete(urb.id, UrbStatus::NoDevice);
        }
        if urb.endpoint == 0 {
            return self.control(&urb);
        }
        let channel = self.bulk_channel(urb.endpoint, urb.dir_in);
        let (Some(i), None, 1) = (channel, urb.setup, self.state.configuration) else {
            return self.complete(urb.id, UrbStatus::Stall);
        };
        let ch = &mut self.channels[i];
        if urb.dir_in {
            ch.submit_in(self.now, urb.id, urb.length, &mut self.completions);
        } else {
            ch.submit_out(self.now, urb.id, urb.data, &mut self.completions);
        }
    }

    fn unlink(&mut self, now: Timestamp, id: u32) -> bool {
        self.advance(now);
        let at = self.now;
        self.channels
            .iter_mut()
            .any(|ch| ch.unlink(at, id, &mut self.completions))
    }

    fn poll_completion(&mut self) -> Option<UrbCompletion> {
        self.completions.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        if self.unplugged {
            return None;
        }
        self.channels
            .iter()
            .filter_map(|ch| ch.engine.poll_timeout())
            .chain(self.unplug_at)
            .min()
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
    }

    fn is_unplugged(&self) -> bool {
        self.unplugged
    }
}
