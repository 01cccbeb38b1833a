//! The libusb transport's logic without USB: the event loop driven through
//! a fake transfer set, the hand-over from the opening thread to the reader.

mod event_loop;
mod fake;
mod identity;
mod inbound;
mod mailbox;
mod write_stream;
