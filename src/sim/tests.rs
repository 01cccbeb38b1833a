//! Tests of the simulated chip at the USB-packet level.
