//! The standard I/O traits on a port and its writer: `io::Read` from the
//! channel, `io::Write` to the device, and the channel's file descriptor
//! for poll/epoll/mio.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use super::{Port, Writer};

impl io::Read for Port {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.receiver.read(buf)
    }
}

impl io::Write for Port {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.writer.write(buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Waits until the device has taken the bytes written behind.
        Ok(self.writer.flush()?)
    }
}

impl io::Write for &Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(Writer::write(self, buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(Writer::flush(self)?)
    }
}

impl AsFd for Port {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.receiver.as_fd()
    }
}

impl AsRawFd for Port {
    fn as_raw_fd(&self) -> RawFd {
        self.receiver.as_raw_fd()
    }
}

impl mio::event::Source for Port {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.receiver.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.receiver.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.receiver.deregister(registry)
    }
}
