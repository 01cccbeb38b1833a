//! [`serialport::SerialPort`] on a [`Port`]: code written against the
//! `serialport` crate runs on ftdi-rt unchanged (with [`crate::new`] in
//! place of `serialport::new`).
//!
//! Every method does what serialport documents, through the port's own
//! machinery: settings go to the chip (or the tty) and are read back from
//! what was last applied; modem lines are asked of the device; the read
//! timeout is the receiver's; `bytes_to_read` counts what the reader has
//! queued; `clear` drops queued input and purges the chip's FIFOs.
//!
//! `try_clone` returns a handle that shares the port (the same writer,
//! settings and receive queue, via `Arc`s): it writes, configures, reads
//! the modem lines and clears, from another thread. Receiving stays with
//! the port itself: the queue from the realtime reader has one consumer,
//! by design (no lock on the receive path), so a clone's `read` is an
//! error that says so. serialport's own duplex pattern (write on the clone,
//! read on the original) works as is; for a receiver on another thread use
//! [`Port::into_split`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use serialport as sp;

use super::serial_types::{
    data_bits_from, data_bits_to, flow_from, flow_to, parity_from, parity_to, stop_bits_from,
    stop_bits_to, unsupported,
};
use super::{Port, Writer};
use crate::channel::Shared;
use crate::proto::{LineProperties, ModemStatus};

/// What both a port and its clones do the same way: everything but
/// receiving.
struct Common<'a> {
    writer: &'a Writer,
    channel: &'a Shared,
}

impl Common<'_> {
    fn name(&self) -> Option<String> {
        Some(self.writer.transport_info().description)
    }

    fn set_line(&self, change: impl FnOnce(&mut LineProperties)) -> sp::Result<()> {
        let mut line = self.writer.line_properties();
        change(&mut line);
        Ok(self.writer.set_line_properties(line)?)
    }

    fn set_data_bits(&self, bits: sp::DataBits) -> sp::Result<()> {
        let bits = data_bits_from(bits)?;
        self.set_line(|l| l.data_bits = bits)
    }

    fn set_parity(&self, parity: sp::Parity) -> sp::Result<()> {
        self.set_line(|l| l.parity = parity_from(parity))
    }

    fn set_stop_bits(&self, bits: sp::StopBits) -> sp::Result<()> {
        self.set_line(|l| l.stop_bits = stop_bits_from(bits))
    }

    fn modem(&self) -> sp::Result<ModemStatus> {
        Ok(self.writer.query_status()?.0)
    }

    fn bytes_to_read(&self) -> sp::Result<u32> {
        Ok(u32::try_from(self.channel.queued_bytes()).unwrap_or(u32::MAX))
    }

    fn clear(&self, which: sp::ClearBuffer) -> sp::Result<()> {
        if matches!(which, sp::ClearBuffer::Input | sp::ClearBuffer::All) {
            // The chip's FIFO first, then what the reader already queued:
            // bytes in flight between the two are queued after the request
            // and kept, as on a tty where tcflush races arrivals the same way.
            self.writer.purge_rx()?;
            self.channel.request_discard();
        }
        if matches!(which, sp::ClearBuffer::Output | sp::ClearBuffer::All) {
            self.writer.purge_tx()?;
        }
        Ok(())
    }
}

/// Implements the methods that are the same on a port and its clones.
macro_rules! common_serial_port_methods {
    () => {
        fn name(&self) -> Option<String> {
            self.common().name()
        }

        fn baud_rate(&self) -> sp::Result<u32> {
            Ok(self.common().writer.baud_rate())
        }

        fn data_bits(&self) -> sp::Result<sp::DataBits> {
            Ok(data_bits_to(
                self.common().writer.line_properties().data_bits,
            ))
        }

        fn flow_control(&self) -> sp::Result<sp::FlowControl> {
            flow_to(self.common().writer.flow_control())
        }

        fn parity(&self) -> sp::Result<sp::Parity> {
            parity_to(self.common().writer.line_properties().parity)
        }

        fn stop_bits(&self) -> sp::Result<sp::StopBits> {
            stop_bits_to(self.common().writer.line_properties().stop_bits)
        }

        fn set_baud_rate(&mut self, baud_rate: u32) -> sp::Result<()> {
            Ok(self.common().writer.set_baud_rate(baud_rate).map(drop)?)
        }

        fn set_data_bits(&mut self, data_bits: sp::DataBits) -> sp::Result<()> {
            self.common().set_data_bits(data_bits)
        }

        fn set_flow_control(&mut self, flow_control: sp::FlowControl) -> sp::Result<()> {
            Ok(self
                .common()
                .writer
                .set_flow_control(flow_from(flow_control))?)
        }

        fn set_parity(&mut self, parity: sp::Parity) -> sp::Result<()> {
            self.common().set_parity(parity)
        }

        fn set_stop_bits(&mut self, stop_bits: sp::StopBits) -> sp::Result<()> {
            self.common().set_stop_bits(stop_bits)
        }

        fn write_request_to_send(&mut self, level: bool) -> sp::Result<()> {
            Ok(self.common().writer.set_rts(level)?)
        }

        fn write_data_terminal_ready(&mut self, level: bool) -> sp::Result<()> {
            Ok(self.common().writer.set_dtr(level)?)
        }

        fn read_clear_to_send(&mut self) -> sp::Result<bool> {
            Ok(self.common().modem()?.cts())
        }

        fn read_data_set_ready(&mut self) -> sp::Result<bool> {
            Ok(self.common().modem()?.dsr())
        }

        fn read_ring_indicator(&mut self) -> sp::Result<bool> {
            Ok(self.common().modem()?.ri())
        }

        fn read_carrier_detect(&mut self) -> sp::Result<bool> {
            Ok(self.common().modem()?.dcd())
        }

        fn bytes_to_read(&self) -> sp::Result<u32> {
            self.common().bytes_to_read()
        }

        /// Always 0: a write returns once the device (or the kernel tty)
        /// has accepted its bytes, so nothing waits on the host side.
        fn bytes_to_write(&self) -> sp::Result<u32> {
            Ok(0)
        }

        fn clear(&self, buffer_to_clear: sp::ClearBuffer) -> sp::Result<()> {
            self.common().clear(buffer_to_clear)
        }

        fn set_break(&self) -> sp::Result<()> {
            Ok(self.common().writer.set_break(true)?)
        }

        fn clear_break(&self) -> sp::Result<()> {
            Ok(self.common().writer.set_break(false)?)
        }
    };
}

impl Port {
    fn common(&self) -> Common<'_> {
        Common {
            writer: &self.writer,
            channel: &self.channel,
        }
    }

    fn clone_handle(&self) -> PortClone {
        PortClone {
            writer: self.writer.clone(),
            channel: self.channel.clone(),
            timeout: self.receiver.read_timeout().unwrap_or(Duration::MAX),
        }
    }
}

/// serialport's interface on the port. The read timeout is the receiver's
/// (serialport's `Duration::MAX` stands for "block").
impl sp::SerialPort for Port {
    common_serial_port_methods!();

    fn timeout(&self) -> Duration {
        self.receiver.read_timeout().unwrap_or(Duration::MAX)
    }

    fn set_timeout(&mut self, timeout: Duration) -> sp::Result<()> {
        self.receiver.set_read_timeout(Some(timeout));
        Ok(())
    }

    fn try_clone(&self) -> sp::Result<Box<dyn sp::SerialPort>> {
        Ok(Box::new(self.clone_handle()))
    }
}

/// A handle from [`Port`]'s `try_clone`: shares the port's writer,
/// settings and receive queue; everything but receiving (see the module
/// documentation).
#[derive(Debug)]
struct PortClone {
    writer: Arc<Writer>,
    channel: Arc<Shared>,
    /// Kept per handle, as serialport's own clones keep theirs.
    timeout: Duration,
}

const CLONE_CANNOT_READ: &str = "a clone from try_clone writes and configures the port but \
    cannot receive: the realtime reader's queue has one consumer. Read from the original port, \
    or use Port::into_split for a receiver that moves to another thread";

impl PortClone {
    fn common(&self) -> Common<'_> {
        Common {
            writer: &self.writer,
            channel: &self.channel,
        }
    }
}

impl sp::SerialPort for PortClone {
    common_serial_port_methods!();

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn set_timeout(&mut self, timeout: Duration) -> sp::Result<()> {
        self.timeout = timeout;
        Ok(())
    }

    fn try_clone(&self) -> sp::Result<Box<dyn sp::SerialPort>> {
        Ok(Box::new(PortClone {
            writer: self.writer.clone(),
            channel: self.channel.clone(),
            timeout: self.timeout,
        }))
    }
}

impl io::Read for PortClone {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::from(unsupported(CLONE_CANNOT_READ)))
    }
}

impl io::Write for PortClone {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.writer.write(buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
