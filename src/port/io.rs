//! The standard I/O traits on a port and its halves: `io::Read` from the
//! channel, `io::Write` to the device, and the channel's file descriptor
//! for poll/epoll/mio.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use super::{OwnedReceiver, OwnedWriter, Port, Writer};

/// `io::Read`, `AsFd`, `AsRawFd` and `mio::event::Source` for a type that
/// holds the channel's [`Receiver`](crate::Receiver) in its `receiver` field.
macro_rules! receiving_io {
    ($t:ty) => {
        impl io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.receiver.read(buf)
            }
        }

        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.receiver.as_fd()
            }
        }

        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.receiver.as_raw_fd()
            }
        }

        impl mio::event::Source for $t {
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
    };
}

receiving_io!(Port);
receiving_io!(OwnedReceiver);

/// `io::Write` for a type whose `writer` field dereferences to a [`Writer`].
macro_rules! writing_io {
    ($t:ty) => {
        impl io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                Ok(Writer::write(&self.writer, buf)?)
            }

            fn flush(&mut self) -> io::Result<()> {
                // Waits until the device has taken the bytes written behind.
                Ok(Writer::flush(&self.writer)?)
            }
        }
    };
}

writing_io!(Port);
writing_io!(OwnedWriter);

impl io::Write for &Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(Writer::write(self, buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(Writer::flush(self)?)
    }
}
