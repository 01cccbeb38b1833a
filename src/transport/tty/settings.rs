//! How each [`Setting`] maps onto a kernel tty: termios (in one TCSETS2,
//! read back so a setting the tty does not keep is an error naming it),
//! modem-line and break ioctls, tcflush, and ftdi_sio's ASYNC_LOW_LATENCY
//! and sysfs `latency_timer`.

use std::io;
use std::path::Path;

use super::{Driver, TtyOutbound, no_such_ioctl};
use crate::error::{Error, Result};
use crate::proto::{BAUD_TOLERANCE_PERCENT, FlowControl, LineProperties, Parity, StopBits};
use crate::sys;
use crate::transport::{Applied, Setting};

/// The termios bits of [`LineProperties`].
const LINE_BITS: libc::tcflag_t =
    libc::CSIZE | libc::PARENB | libc::PARODD | libc::CMSPAR | libc::CSTOPB;

impl TtyOutbound {
    /// Applies one setting (the body of `Outbound::apply`).
    pub(super) fn configure(&self, setting: Setting) -> Result<Applied> {
        match setting {
            Setting::Baud(baud) => self.set_baud(baud),
            Setting::Line(line) => self.set_line(line),
            Setting::Flow(flow) => self.set_flow(flow),
            Setting::ModemLines { dtr, rts } => self.set_modem_lines(dtr, rts),
            Setting::LatencyTimer(ms) => Ok(self.set_latency_timer(ms)),
            Setting::EventChar(None) | Setting::ErrorChar(None) => Ok(Applied::Done),
            Setting::EventChar(Some(ch)) => Err(self.unsupported(
                format!("event character {ch:#04x}"),
                "the tty interface has no event character (ftdi_sio offers one only \
                 through its sysfs event_char attribute); use the libusb transport \
                 (Port::open_usb)",
            )),
            Setting::ErrorChar(Some(ch)) => Err(self.unsupported(
                format!("error character {ch:#04x}"),
                "the tty interface has no error character; use the libusb transport \
                 (Port::open_usb)",
            )),
            Setting::Break(on) => self.set_break(on),
            Setting::PurgeRx => sys::tty::flush(self.fd(), libc::TCIFLUSH)
                .map(|()| Applied::Done)
                .map_err(|e| self.rejected("purge RX", e)),
            Setting::PurgeTx => sys::tty::flush(self.fd(), libc::TCOFLUSH)
                .map(|()| Applied::Done)
                .map_err(|e| self.rejected("purge TX", e)),
        }
    }

    /// Reads the termios, lets `edit` change it, applies it in one TCSETS2
    /// and returns what the kernel kept, for the caller to compare.
    fn edit_termios(
        &self,
        setting: &str,
        edit: impl FnOnce(&mut libc::termios2),
    ) -> Result<libc::termios2> {
        let fd = self.fd();
        let mut t = sys::tty::tcgets2(fd).map_err(|e| self.rejected(setting, e))?;
        edit(&mut t);
        sys::tty::tcsets2(fd, &t).map_err(|e| self.rejected(setting, e))?;
        sys::tty::tcgets2(fd).map_err(|e| self.rejected(setting, e))
    }

    fn set_baud(&self, baud: u32) -> Result<Applied> {
        let setting = format!("baud {baud}");
        if baud == 0 {
            return Err(Error::SettingRejected {
                setting,
                reason: "0 baud means \"hang up\" (B0) to a tty".into(),
            });
        }
        // BOTHER takes any rate; the driver writes back the rate it really
        // runs at (ftdi_sio: what its divisor gives).
        let actual = self
            .edit_termios(&setting, |t| {
                t.c_cflag &= !(libc::CBAUD | libc::CIBAUD);
                t.c_cflag |= libc::BOTHER;
                t.c_ispeed = baud;
                t.c_ospeed = baud;
            })?
            .c_ospeed;
        // The rule the FTDI transports apply to their divisors.
        if u64::from(baud.abs_diff(actual)) * 100
            > u64::from(baud) * u64::from(BAUD_TOLERANCE_PERCENT)
        {
            return Err(Error::SettingRejected {
                setting,
                reason: format!(
                    "the tty runs at {actual} baud instead (more than \
                     {BAUD_TOLERANCE_PERCENT} % off)"
                ),
            });
        }
        Ok(Applied::Baud(actual))
    }

    fn set_line(&self, line: LineProperties) -> Result<Applied> {
        if line.stop_bits == StopBits::OnePointFive {
            return Err(self.unsupported(
                "stop bits 1.5",
                "termios knows 1 or 2 stop bits (CSTOPB) only; use 1 or 2, or the \
                 libusb transport (Port::open_usb), where the FTDI chip does 1.5",
            ));
        }
        let setting = format!("line {line}");
        let want = line_bits(line);
        let kept = self.edit_termios(&setting, |t| {
            t.c_cflag = (t.c_cflag & !LINE_BITS) | want;
            // As serialport does: check parity only when there is a parity bit.
            if line.parity == Parity::None {
                t.c_iflag = (t.c_iflag & !libc::INPCK) | libc::IGNPAR;
            } else {
                t.c_iflag = (t.c_iflag | libc::INPCK) & !libc::IGNPAR;
            }
        })?;
        if kept.c_cflag & LINE_BITS != want {
            let why = if self.driver == Driver::Pty {
                " (a pty carries 8-bit bytes and has no parity)"
            } else {
                ""
            };
            return Err(Error::SettingRejected {
                setting,
                reason: format!("the tty kept {}{why}", describe_line(kept.c_cflag)),
            });
        }
        Ok(Applied::Done)
    }

    fn set_flow(&self, flow: FlowControl) -> Result<Applied> {
        let (rts_cts, chars) = match flow {
            FlowControl::None => (false, None),
            FlowControl::RtsCts => (true, None),
            FlowControl::XonXoff { xon, xoff } => (false, Some((xon, xoff))),
            FlowControl::DtrDsr => {
                return Err(self.unsupported(
                    "DTR/DSR flow control",
                    "the Linux tty layer does flow control on RTS/CTS (CRTSCTS) and \
                     XON/XOFF only; use one of those, or the libusb transport \
                     (Port::open_usb), where the FTDI chip does DTR/DSR itself",
                ));
            }
        };
        let setting = format!("flow control {flow:?}");
        let xon_xoff = libc::IXON | libc::IXOFF;
        let kept = self.edit_termios(&setting, |t| {
            set_bits(&mut t.c_cflag, libc::CRTSCTS, rts_cts);
            set_bits(&mut t.c_iflag, xon_xoff, chars.is_some());
            t.c_iflag &= !libc::IXANY;
            if let Some((xon, xoff)) = chars {
                t.c_cc[libc::VSTART] = xon;
                t.c_cc[libc::VSTOP] = xoff;
            }
        })?;
        let taken = (kept.c_cflag & libc::CRTSCTS != 0) == rts_cts
            && (kept.c_iflag & xon_xoff == xon_xoff) == chars.is_some()
            && chars.is_none_or(|(xon, xoff)| {
                (kept.c_cc[libc::VSTART], kept.c_cc[libc::VSTOP]) == (xon, xoff)
            });
        if !taken {
            return Err(Error::SettingRejected {
                setting,
                reason: "the tty did not keep it".into(),
            });
        }
        if rts_cts && self.driver == Driver::Pty {
            return Ok(Applied::Skipped(
                "a pty has no RTS/CTS lines: RTS/CTS flow control has no effect".into(),
            ));
        }
        Ok(Applied::Done)
    }

    fn set_modem_lines(&self, dtr: Option<bool>, rts: Option<bool>) -> Result<Applied> {
        for (bit, on) in [(libc::TIOCM_DTR, dtr), (libc::TIOCM_RTS, rts)] {
            let Some(on) = on else { continue };
            match sys::tty::set_modem_lines(self.fd(), bit, on) {
                Ok(()) => {}
                Err(e) if no_such_ioctl(&e) => {
                    return Ok(Applied::Skipped(match self.driver {
                        Driver::Pty => {
                            "a pty has no modem lines (DTR, RTS, CTS, DSR, RI, DCD)".into()
                        }
                        _ => format!("{} has no modem lines ({e})", self.driver.name()),
                    }));
                }
                Err(e) => return Err(self.rejected("DTR/RTS", e)),
            }
        }
        Ok(Applied::Done)
    }

    /// ftdi_sio runs the chip's latency timer at 1 ms while ASYNC_LOW_LATENCY
    /// is set, whatever sysfs says; so the flag is set for 1 ms and cleared
    /// otherwise, and either mechanism alone suffices for 1 ms. Tried on every
    /// tty, so the notes say what a pty or another driver lacks.
    fn set_latency_timer(&self, ms: u8) -> Applied {
        let low_latency = match sys::tty::set_low_latency(self.fd(), ms == 1) {
            Ok(true) => Ok(()),
            Ok(false) => Err("the driver ignored ASYNC_LOW_LATENCY (TIOCSSERIAL)".to_string()),
            Err(e) => Err(format!(
                "ASYNC_LOW_LATENCY could not be {} (TIOCSSERIAL: {e})",
                if ms == 1 { "set" } else { "cleared" }
            )),
        };
        let timer = match &self.driver {
            Driver::Sysfs { device, .. } if self.driver.is_ftdi_sio() => {
                write_latency_timer(device, ms)
            }
            Driver::Pty => Err("a pty has no latency timer".to_string()),
            other => Err(format!("{} has no latency timer", other.name())),
        };
        let in_effect = match (&timer, &low_latency) {
            (Ok(()), Ok(())) => true,
            (Ok(()), Err(_)) | (Err(_), Ok(())) => ms == 1 && self.driver.is_ftdi_sio(),
            (Err(_), Err(_)) => false,
        };
        if in_effect {
            return Applied::Done;
        }
        let why: Vec<String> = [timer.err(), low_latency.err()]
            .into_iter()
            .flatten()
            .collect();
        Applied::Skipped(format!(
            "latency timer not set to {ms} ms: {}",
            why.join("; ")
        ))
    }

    fn set_break(&self, on: bool) -> Result<Applied> {
        sys::tty::set_break(self.fd(), on).map_err(|e| self.rejected("break", e))?;
        if self.driver == Driver::Pty {
            return Ok(Applied::Skipped(
                "a pty has no TX line: break has no effect".into(),
            ));
        }
        Ok(Applied::Done)
    }
}

fn set_bits(flags: &mut libc::tcflag_t, bits: libc::tcflag_t, on: bool) {
    if on {
        *flags |= bits;
    } else {
        *flags &= !bits;
    }
}

/// The `c_cflag` bits (within [`LINE_BITS`]) of `line`; 1.5 stop bits are
/// refused before this.
fn line_bits(line: LineProperties) -> libc::tcflag_t {
    let size = match line.data_bits {
        crate::proto::DataBits::Seven => libc::CS7,
        crate::proto::DataBits::Eight => libc::CS8,
    };
    let parity = match line.parity {
        Parity::None => 0,
        Parity::Odd => libc::PARENB | libc::PARODD,
        Parity::Even => libc::PARENB,
        // CMSPAR: PARODD then picks a parity bit of 1 (mark) or 0 (space).
        Parity::Mark => libc::PARENB | libc::CMSPAR | libc::PARODD,
        Parity::Space => libc::PARENB | libc::CMSPAR,
    };
    let stop = match line.stop_bits {
        StopBits::Two => libc::CSTOPB,
        StopBits::One | StopBits::OnePointFive => 0,
    };
    size | parity | stop
}

/// `c_cflag` line bits in the short form (`8N1`), for error messages.
fn describe_line(cflag: libc::tcflag_t) -> String {
    let bits = match cflag & libc::CSIZE {
        libc::CS5 => 5,
        libc::CS6 => 6,
        libc::CS7 => 7,
        _ => 8,
    };
    let parity = match (
        cflag & libc::PARENB != 0,
        cflag & libc::CMSPAR != 0,
        cflag & libc::PARODD != 0,
    ) {
        (false, _, _) => 'N',
        (true, true, true) => 'M',
        (true, true, false) => 'S',
        (true, false, true) => 'O',
        (true, false, false) => 'E',
    };
    let stop = if cflag & libc::CSTOPB != 0 { 2 } else { 1 };
    format!("{bits}{parity}{stop}")
}

/// Writes ftdi_sio's sysfs `latency_timer`; the error says why not.
fn write_latency_timer(device: &Path, ms: u8) -> std::result::Result<(), String> {
    let file = device.join("latency_timer");
    std::fs::write(&file, ms.to_string()).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            "; a udev rule sets it at plug-in: ACTION==\"add\", SUBSYSTEM==\"usb-serial\", \
             DRIVER==\"ftdi_sio\", ATTR{latency_timer}=\"1\""
        } else {
            ""
        };
        format!("writing {} failed ({e}){hint}", file.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::DataBits;

    fn lp(data_bits: DataBits, parity: Parity, stop_bits: StopBits) -> LineProperties {
        LineProperties::new(data_bits, parity, stop_bits)
    }

    #[test]
    fn line_bits_round_trip_through_their_description() {
        for (line, text) in [
            (LineProperties::EIGHT_N_ONE, "8N1"),
            (lp(DataBits::Seven, Parity::Even, StopBits::Two), "7E2"),
            (lp(DataBits::Eight, Parity::Odd, StopBits::One), "8O1"),
            (lp(DataBits::Eight, Parity::Mark, StopBits::One), "8M1"),
            (lp(DataBits::Seven, Parity::Space, StopBits::Two), "7S2"),
        ] {
            assert_eq!(describe_line(line_bits(line)), text);
            assert_eq!(line.to_string(), text);
        }
    }
}
