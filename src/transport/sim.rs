//! The simulated chip behind the transport seam.
//!
//! [`SimInbound`] is the reader's end of the simulated bus (wait-free ring,
//! credits, doorbells); [`SimPipe`] gives the shared FTDI layer the chip's
//! control and bulk-OUT transfers. Everything above is the same code that
//! drives a real adapter.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::ftdi::{ControlPipe, FtdiOutbound, WriteError};
use super::{Completion, Framing, Inbound, LinkLost, OpenOptions, Parts, Reopen};
use crate::doorbell::Doorbell;
use crate::error::{Error, Result, TransferError};
use crate::proto::ControlRequest;
use crate::realtime::memory::HotRegions;
use crate::sim::{HostIn, HostOut, SimChip, SimHandle};
use crate::stats::{TransportInfo, TransportKind};
use crate::time::Timestamp;

/// Connects to a simulated chip and resets it, as the libusb transport
/// does a real one.
///
/// # Errors
/// [`Error::InvalidConfig`] if the options ask for another interface than
/// the chip models; a control request the chip refuses.
pub(crate) fn open(chip: SimChip, options: &OpenOptions) -> Result<Parts<SimInbound>> {
    if options.interface != chip.interface() {
        return Err(Error::InvalidConfig(format!(
            "the simulated chip models interface {}, the config asks for {}",
            chip.interface(),
            options.interface
        )));
    }
    let (kind, interface, max_packet_size) =
        (chip.chip(), chip.interface(), chip.max_packet_size());
    let (host_in, host_out) = chip.into_host_ends();
    let description = format!("simulated {kind} interface {interface}");
    let pipe = SimPipe::new(
        host_out,
        description,
        max_packet_size,
        options.transfers_in_flight,
    );
    let outbound = FtdiOutbound::new(pipe, kind, interface, options.control_timeout);
    let notes = outbound.initialize()?;
    let wake = Arc::new(Doorbell::new()?);
    let inbound = SimInbound {
        host: host_in,
        wake: wake.clone(),
        in_flight: u32::try_from(options.transfers_in_flight).unwrap_or(u32::MAX),
        max_packet_size,
    };
    Ok(Parts {
        inbound,
        outbound: Box::new(outbound),
        wake,
        notes,
        thread_name: "ftdi-rt-reader",
    })
}

/// Finds a simulated chip again after an unplug: the chip plugged back
/// into the unplugged one's socket ([`SimHandle::replug`]).
#[derive(Debug)]
pub(crate) struct SimReopen {
    /// The chip the port runs on now (the one whose socket to look in).
    chip: SimHandle,
}

impl SimReopen {
    /// Watches the socket of the chip behind `chip`.
    pub(crate) fn new(chip: SimHandle) -> SimReopen {
        SimReopen { chip }
    }
}

impl Reopen for SimReopen {
    type Inbound = SimInbound;

    fn poll(&mut self, options: &OpenOptions) -> Result<Option<Parts<SimInbound>>> {
        let Some(chip) = self.chip.take_replugged() else {
            return Ok(None);
        };
        let handle = chip.handle();
        let parts = open(chip, options)?;
        // Its own socket, for the next unplug.
        self.chip = handle;
        Ok(Some(parts))
    }

    fn waits_for(&self) -> String {
        self.chip.identity()
    }
}

/// The reader-thread half: completed IN packets from the chip.
#[derive(Debug)]
pub(crate) struct SimInbound {
    host: HostIn,
    wake: Arc<Doorbell>,
    in_flight: u32,
    max_packet_size: usize,
}

impl Inbound for SimInbound {
    fn framing(&self) -> Framing {
        Framing::Ftdi {
            max_packet_size: self.max_packet_size,
        }
    }

    fn hot_memory(&mut self, regions: &mut HotRegions) {
        // The reader writes the bus's credits, timestamps and doorbells and
        // the IN ring's head. The IN ring's slots are written by the chip's
        // thread; rtrb gives a consumer no address for empty slots, so they
        // are left to the chip (resident once it has sent through them).
        regions.add("transport state", &*self.wake);
        regions.add("transport state", &*self.host.bus);
        regions.add("transport state", self.host.ring.buffer());
    }

    fn start(&mut self) -> std::result::Result<(), LinkLost> {
        self.host.submit(self.in_flight);
        Ok(())
    }

    fn wait<F: FnMut(Completion<'_>)>(
        &mut self,
        timeout: Duration,
        mut deliver: F,
    ) -> std::result::Result<(), LinkLost> {
        self.host
            .wait(timeout, Some(&self.wake), |packet| {
                deliver(Completion {
                    data: packet.bytes(),
                    at: Timestamp::now(),
                })
            })
            .map(drop)
            .map_err(|_| LinkLost("the simulated device was unplugged".into()))
    }

    fn readiness(&self) -> std::result::Result<RawFd, &'static str> {
        // Rung by the chip after each IN packet and on unplug; `wait` arms
        // it (drains it and asks for the next ring) whenever it finds nothing.
        Ok(self.host.bus.in_ready.as_fd().as_raw_fd())
    }

    fn shutdown(&mut self) {
        // Nothing to cancel: credits die with the bus.
    }
}

/// Control and bulk OUT to the simulated chip.
#[derive(Debug)]
pub(crate) struct SimPipe {
    host: HostOut,
    info: TransportInfo,
}

impl SimPipe {
    fn new(
        host: HostOut,
        description: String,
        max_packet_size: usize,
        in_flight: usize,
    ) -> SimPipe {
        SimPipe {
            host,
            info: TransportInfo {
                kind: TransportKind::Sim,
                description,
                chip: None,
                actual_baud: None,
                max_packet_size: Some(max_packet_size),
                transfers_in_flight: Some(in_flight),
                notes: Vec::new(),
            },
        }
    }
}

impl ControlPipe for SimPipe {
    fn control(
        &self,
        request: ControlRequest,
        data: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, TransferError> {
        self.host.control(request, data, timeout)
    }

    fn bulk_out(&self, data: &[u8], timeout: Duration) -> Result<usize, WriteError> {
        Ok(self.host.bulk_out(data, timeout)?)
    }

    fn info(&self) -> TransportInfo {
        self.info.clone()
    }
}
