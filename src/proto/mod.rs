//! Placeholder: the sans-IO FTDI protocol core.
#![forbid(unsafe_code)]
