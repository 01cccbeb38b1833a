//! Keeping the serial console out of the measurements.
//!
//! Under icount the guest's clock is deterministic, but its serial console
//! is not: QEMU's UART completes a byte when the host side takes it, and
//! the host side (a pipe read line by line) takes its time. Console output
//! during a measurement (the kernel's messages when ftdi_sio is unbound and
//! rebound, the rows the guest prints) therefore moves guest work around by
//! host-dependent amounts, and two boots drift apart. The matrix silences
//! the kernel's console messages while it runs and waits for what it printed
//! to leave the UART before each row.

use std::io::{self, Write};

/// The kernel's console log levels, restored when dropped.
#[derive(Debug)]
pub struct QuietKernelConsole {
    saved: Option<String>,
}

const PRINTK: &str = "/proc/sys/kernel/printk";

impl QuietKernelConsole {
    /// Lets only emergencies (level 0) reach the console.
    ///
    /// # Errors
    /// `/proc/sys/kernel/printk` could not be read or written.
    pub fn new() -> Result<QuietKernelConsole, String> {
        let saved = std::fs::read_to_string(PRINTK).map_err(|e| format!("{PRINTK}: {e}"))?;
        std::fs::write(PRINTK, "1").map_err(|e| format!("{PRINTK}: {e}"))?;
        Ok(QuietKernelConsole {
            saved: Some(saved.split_whitespace().next().unwrap_or("4").to_string()),
        })
    }
}

impl Drop for QuietKernelConsole {
    fn drop(&mut self) {
        if let Some(level) = self.saved.take() {
            let _ = std::fs::write(PRINTK, level);
        }
    }
}

/// Flushes stdout and waits until a terminal on it has sent everything
/// (`tcdrain`); returns at once if stdout is not a terminal.
pub fn drain_stdout() {
    let _ = io::stdout().flush();
    // SAFETY: tcdrain takes a descriptor number and touches no memory of
    // ours; on a descriptor that is not a terminal it fails with ENOTTY.
    let _ = unsafe { libc::tcdrain(libc::STDOUT_FILENO) };
}
