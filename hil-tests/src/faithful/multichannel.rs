//! One channel of a multi-channel chip to ftdi-rt, the rest to ftdi_sio: on
//! an FT4232H, ftdi-rt claims interface B only; A, C and D keep their
//! /dev/ttyUSB nodes and keep working; releasing B gives it back.

use std::time::Duration;

use ftdi_rt::sim::Loopback;
use ftdi_rt::sim::usb::VirtualFtdi;
use ftdi_rt::{Chip, Interface, Port, PortConfig};

use crate::checks::echo;
use crate::guest::{Ctx, Outcome, is_char_device, wait_until};
use crate::vdev::VirtualDevice;
use crate::virtual_ftdi::{attach, open_usb};

/// Echoes all byte values through a channel's kernel tty.
pub(crate) fn tty_echo(tty: &str) -> Result<(), String> {
    let mut port =
        Port::open_tty(tty, &PortConfig::default()).map_err(|e| format!("open_tty {tty}: {e}"))?;
    let all: Vec<u8> = (0..=255).collect();
    echo(&mut port, &all, Duration::from_secs(2)).map_err(|e| format!("{tty}: {e}"))
}

/// Attaches an FT4232H with a loopback on each channel; its four ttys,
/// channel A's first.
///
/// # Errors
/// As [`attach`]; the kernel gave it other than four ttys.
pub(crate) fn attach_ft4232h_loopbacks(
    ctx: &Ctx,
) -> Result<(VirtualDevice<VirtualFtdi>, [String; 4]), String> {
    let chip = Interface::ALL
        .into_iter()
        .fold(VirtualFtdi::builder(Chip::Ft4232H), |b, i| {
            b.device(i, Loopback::new())
        });
    let dev = attach(ctx, chip, 4)?;
    let ttys = <[String; 4]>::try_from(dev.ttys().to_vec())
        .map_err(|ttys| format!("an FT4232H got ttys {ttys:?}, expected four"))?;
    Ok((dev, ttys))
}

/// `ft4232h-channel-b`: ftdi-rt claims channel B of an FT4232H while
/// ftdi_sio keeps A, C and D (their nodes stay and echo); B's node is gone
/// while claimed and back after the release, and echoes again.
pub fn ft4232h_channel_b(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let (dev, ttys) = attach_ft4232h_loopbacks(ctx)?;
        let [a, b, c, d] = &ttys;
        let mut port = open_usb(&dev, &PortConfig::default().with_interface(Interface::B))?;
        if is_char_device(b) {
            return Err(format!(
                "{b} (channel B) is still there while ftdi-rt holds B"
            ));
        }
        for (name, tty) in [("A", a), ("C", c), ("D", d)] {
            if !is_char_device(tty) {
                return Err(format!(
                    "{tty} (channel {name}) vanished when ftdi-rt claimed B"
                ));
            }
            tty_echo(tty).map_err(|e| format!("channel {name} through ftdi_sio: {e}"))?;
        }
        let all: Vec<u8> = (0..=255).collect();
        echo(&mut port, &all, Duration::from_secs(2))
            .map_err(|e| format!("channel B through ftdi-rt: {e}"))?;
        let info = port.transport_info();
        drop(port);
        let mut b_again = None;
        wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            b_again = dev.live_tty(Interface::B.number());
            b_again.is_some()
        })
        .ok_or("channel B's tty did not come back within 5 s of the release")?;
        let b_again = b_again.unwrap_or_default();
        tty_echo(&b_again)
            .map_err(|e| format!("channel B through ftdi_sio after the release: {e}"))?;
        for tty in [a, c, d] {
            if !is_char_device(tty) {
                return Err(format!("{tty} vanished when ftdi-rt released B"));
            }
        }
        Ok(format!(
            "ftdi-rt held B ({}) while {a}, {c}, {d} echoed through ftdi_sio; B came back as \
             {b_again} and echoed",
            info.description
        ))
    };
    run().into()
}
