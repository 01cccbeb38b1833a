//! Entry points for the fuzz targets in `fuzz/` (feature `__fuzz`; hidden,
//! not part of the API, may change at any time). Each exposes one internal
//! path that device data reaches, with no more surface than the target needs.

use std::sync::Arc;

use crate::channel::{self, Receiver};
use crate::error::Result;
use crate::proto::{Chip, Interface};
use crate::reader::Pipeline;
use crate::stats::Counters;
use crate::time::Timestamp;
use crate::transport::usb::descriptor::{
    BulkEndpoints, EndpointFields, bulk_endpoints, max_packet_size, uart_chip,
};
use crate::transport::{Completion, Framing};

/// The reader's pipeline on FTDI framing, feeding a channel whose
/// application end the target reads: the path of every bulk-IN completion.
#[derive(Debug)]
pub struct PipelineHarness {
    pipeline: Pipeline,
    receiver: Receiver,
    counters: Arc<Counters>,
    clock: u64,
}

/// What the pipeline counted (the figures `Statistics` reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineCounts {
    /// Packets with a valid header (status-only ones included).
    pub packets: u64,
    /// Packets that carried only the two status bytes.
    pub status_only: u64,
    /// Pieces too short to hold a header.
    pub malformed: u64,
    /// Payload bytes the packets carried.
    pub payload_bytes: u64,
}

impl PipelineHarness {
    /// A pipeline for packets of `max_packet_size` bytes and a channel of
    /// `capacity` chunks.
    ///
    /// # Errors
    /// The channel's eventfd could not be created.
    pub fn new(max_packet_size: usize, capacity: usize) -> Result<PipelineHarness> {
        let (sender, receiver, _shared) = channel::channel(capacity)?;
        let counters = Arc::new(Counters::default());
        let framing = Framing::Ftdi { max_packet_size };
        Ok(PipelineHarness {
            pipeline: Pipeline::new(sender, counters.clone(), framing),
            receiver,
            counters,
            clock: 0,
        })
    }

    /// One completed bulk-IN transfer holding `data`, as the reader hands it on.
    pub fn complete(&mut self, data: &[u8]) {
        self.clock += 1_000;
        self.pipeline.on_completion(Completion {
            data,
            at: Timestamp::from_nanos(self.clock),
        });
    }

    /// The end of a reader turn (stall check, loss notice).
    pub fn after_wait(&mut self) {
        self.pipeline.after_wait(Timestamp::from_nanos(self.clock));
    }

    /// The reader stops: the stream ends after what is in the channel.
    pub fn close(&mut self) {
        self.pipeline.close("closed by the fuzz target".into());
    }

    /// The application end.
    pub fn receiver(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// What the pipeline counted so far.
    pub fn counts(&self) -> PipelineCounts {
        let c = &*self.counters;
        PipelineCounts {
            packets: c.packets.get(),
            status_only: c.status_only.get(),
            malformed: c.malformed.get(),
            payload_bytes: c.payload_bytes.get(),
        }
    }
}

/// What opening derives from a device's descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescribedDevice {
    /// The chip, from bcdDevice and iSerialNumber.
    pub chip: Chip,
    /// The bulk-IN endpoint's address.
    pub ep_in: u8,
    /// The bulk-OUT endpoint's address.
    pub ep_out: u8,
    /// The bulk-IN endpoint's max packet size, as the framing will use it.
    pub max_packet_size: usize,
}

/// Runs the checks opening applies to a device's descriptor fields: the
/// chip and its channels for `interface`, then the interface's bulk pair
/// among `endpoints` (`[bEndpointAddress, bmAttributes, wMaxPacketSize
/// low, high]` each).
///
/// # Errors
/// As opening refuses the device.
pub fn describe_device(
    bcd_device: u16,
    i_serial_number: u8,
    interface: Interface,
    endpoints: &[[u8; 4]],
) -> Result<DescribedDevice> {
    let chip = uart_chip(bcd_device, i_serial_number, interface, "the fuzzed device")?;
    let fields: Vec<EndpointFields> = endpoints
        .iter()
        .map(|&[address, attributes, lo, hi]| EndpointFields {
            address,
            attributes,
            max_packet_size: u16::from_le_bytes([lo, hi]),
        })
        .collect();
    let BulkEndpoints {
        ep_in,
        ep_out,
        max_packet_size,
    } = bulk_endpoints(interface.number(), &fields)?;
    Ok(DescribedDevice {
        chip,
        ep_in,
        ep_out,
        max_packet_size,
    })
}

/// The packet size the framing would use for a bulk-IN endpoint's
/// wMaxPacketSize, or why it is refused.
///
/// # Errors
/// A size the FTDI framing cannot work with.
pub fn framing_packet_size(w_max_packet_size: u16) -> Result<usize> {
    max_packet_size(w_max_packet_size)
}
