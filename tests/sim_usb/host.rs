//! A host controller in virtual time: submits URBs to a [`VirtualFtdi`],
//! runs its clock event by event, and keeps every completion with the
//! instant it happened.

use std::time::Duration;

use ftdi_rt::proto::ControlRequest;
use ftdi_rt::sim::ModemLines;
use ftdi_rt::sim::usb::{
    SetupPacket, Urb, UrbCompletion, UrbStatus, UsbFunction, UsbSpeed, VirtualFtdi,
};
use ftdi_rt::{Chip, Interface, Timestamp};

/// Where virtual time starts (any instant works; not zero, so that "before
/// the start" is representable).
pub const T0: Timestamp = Timestamp::from_nanos(1_000_000_000);

pub struct Host {
    pub dev: VirtualFtdi,
    pub now: Timestamp,
    next_id: u32,
    /// Completions not yet taken, with the virtual time they happened.
    pub done: Vec<(Timestamp, UrbCompletion)>,
}

impl Host {
    pub fn new(dev: VirtualFtdi) -> Host {
        Host {
            dev,
            now: T0,
            next_id: 1,
            done: Vec::new(),
        }
    }

    /// A configured device (address 1, configuration 1), as after enumeration.
    pub fn configured(dev: VirtualFtdi) -> Host {
        let mut host = Host::new(dev);
        host.standard_out(0x00, 5, 1, 0).expect("SET_ADDRESS");
        host.standard_out(0x00, 9, 1, 0).expect("SET_CONFIGURATION");
        host
    }

    pub fn ft232r() -> Host {
        Host::configured(VirtualFtdi::builder(Chip::Ft232R).build(T0).unwrap())
    }

    pub fn speed(&self) -> UsbSpeed {
        self.dev.speed()
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    fn drain(&mut self) {
        while let Some(c) = self.dev.poll_completion() {
            self.done.push((self.now, c));
        }
    }

    /// Removes and returns the completion of URB `id`, if it happened.
    pub fn take(&mut self, id: u32) -> Option<(Timestamp, UrbCompletion)> {
        let pos = self.done.iter().position(|(_, c)| c.id == id)?;
        Some(self.done.remove(pos))
    }

    /// Runs the device's clock to `end`, one event time after another.
    pub fn run_until(&mut self, end: Timestamp) {
        while let Some(t) = self.dev.poll_timeout().filter(|&t| t <= end) {
            self.now = self.now.max(t);
            self.dev.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(end);
        self.dev.handle_timeout(self.now);
        self.drain();
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    pub fn submit(&mut self, urb: Urb) {
        self.dev.submit(self.now, urb);
        self.drain();
    }

    /// A control transfer: its IN data, or how it failed.
    pub fn control(&mut self, setup: SetupPacket) -> Result<Vec<u8>, UrbStatus> {
        let id = self.id();
        self.submit(Urb {
            id,
            endpoint: 0,
            dir_in: setup.is_in(),
            setup: Some(setup),
            length: usize::from(setup.length),
            data: Vec::new(),
        });
        let (_, c) = self.take(id).expect("a control URB completes at once");
        match c.status {
            UrbStatus::Completed => Ok(c.data),
            status => Err(status),
        }
    }

    pub fn standard_in(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        length: u16,
    ) -> Result<Vec<u8>, UrbStatus> {
        self.control(SetupPacket {
            request_type,
            request,
            value,
            index,
            length,
        })
    }

    pub fn standard_out(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
    ) -> Result<Vec<u8>, UrbStatus> {
        self.standard_in(request_type, request, value, index, 0)
    }

    pub fn descriptor(&mut self, kind: u8, index: u8, length: u16) -> Result<Vec<u8>, UrbStatus> {
        let langid = if kind == 3 && index != 0 { 0x0409 } else { 0 };
        self.standard_in(
            0x80,
            6,
            u16::from(kind) << 8 | u16::from(index),
            langid,
            length,
        )
    }

    /// An FTDI vendor request, as the protocol module builds it.
    pub fn vendor(&mut self, request: ControlRequest) -> Result<Vec<u8>, UrbStatus> {
        self.control(SetupPacket {
            request_type: request.request_type,
            request: request.request,
            value: request.value,
            index: request.index,
            length: request.length,
        })
    }

    /// Baud rate and latency timer of `interface`.
    pub fn setup(&mut self, interface: Interface, baud: u32, latency_ms: u8) {
        let chip = self.dev.chip();
        let (baud, _) = ControlRequest::baud_rate(chip, interface, baud).unwrap();
        self.vendor(baud).unwrap();
        let latency = ControlRequest::set_latency_timer(interface, latency_ms).unwrap();
        self.vendor(latency).unwrap();
    }

    pub fn submit_in(&mut self, interface: Interface, length: usize) -> u32 {
        let id = self.id();
        self.submit(Urb {
            id,
            endpoint: interface.endpoint_in() & 0x0F,
            dir_in: true,
            setup: None,
            length,
            data: Vec::new(),
        });
        id
    }

    pub fn submit_out(&mut self, interface: Interface, data: &[u8]) -> u32 {
        let id = self.id();
        self.submit(Urb {
            id,
            endpoint: interface.endpoint_out(),
            dir_in: false,
            setup: None,
            length: data.len(),
            data: data.to_vec(),
        });
        id
    }

    pub fn set_modem_lines(&mut self, interface: Interface, lines: ModemLines) {
        self.dev
            .set_modem_lines(self.now, interface, lines)
            .unwrap();
        self.drain();
    }

    pub fn unplug(&mut self) {
        self.dev.unplug(self.now);
        self.drain();
    }

    pub fn unlink(&mut self, id: u32) -> bool {
        let pending = self.dev.unlink(self.now, id);
        self.drain();
        pending
    }

    /// Keeps `pending` IN URBs of `length` bytes on `interface` until `end`,
    /// resubmitting each the instant it completes (unless it failed), as a
    /// reader with transfers in flight does; returns the IN completions in
    /// order. URBs still pending at `end` are unlinked.
    pub fn stream_in(
        &mut self,
        interface: Interface,
        length: usize,
        pending: usize,
        end: Timestamp,
    ) -> Vec<(Timestamp, UrbCompletion)> {
        let mut ids: Vec<u32> = (0..pending)
            .map(|_| self.submit_in(interface, length))
            .collect();
        let mut got = Vec::new();
        loop {
            while let Some(pos) = self.done.iter().position(|(_, c)| ids.contains(&c.id)) {
                let (t, c) = self.done.remove(pos);
                ids.retain(|&id| id != c.id);
                let again = c.status == UrbStatus::Completed;
                got.push((t, c));
                if again && self.now < end {
                    let id = self.submit_in(interface, length);
                    ids.push(id);
                }
            }
            match self.dev.poll_timeout().filter(|&t| t <= end) {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.dev.handle_timeout(self.now);
                    self.drain();
                }
                None => break,
            }
        }
        for id in ids {
            self.unlink(id);
            self.take(id);
        }
        self.now = self.now.max(end);
        got
    }
}

/// The payload of an IN completion: its bytes without the two status bytes
/// that start every `mps`-byte packet.
pub fn payload(data: &[u8], mps: usize) -> Vec<u8> {
    data.chunks(mps)
        .flat_map(|packet| packet[2.min(packet.len())..].to_vec())
        .collect()
}
