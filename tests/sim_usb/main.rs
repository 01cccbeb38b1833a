//! The virtual FTDI USB device (`sim::usb::VirtualFtdi`) driven as a host
//! controller would, in virtual time: descriptors, enumeration, vendor
//! requests per channel, bulk IN and OUT as silicon behaves on the bus, the
//! device at the far end, unplug.
#![cfg(feature = "usbip")]

mod bulk_in;
mod bulk_out;
mod descriptors;
mod enumeration;
mod host;
mod line;
mod unplug;
