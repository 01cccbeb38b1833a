//! Placeholder: the libusb transport.
