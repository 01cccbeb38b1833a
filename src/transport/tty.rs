//! Placeholder: the kernel tty transport.
