//! ftdi-rt: placeholder crate root while the foundation is laid.
#![deny(missing_docs)]

pub mod proto;
