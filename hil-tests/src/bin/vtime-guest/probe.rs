//! `usbip-attach`: the USB/IP front end on its own, with a descriptor-only
//! device (no driver binds it), so a failure here is the front end's and
//! not the FTDI model's: attach, enumeration, the vhci threads' priority,
//! unplug, replug, and a detach the host does (vhci-hcd's `detach` file).

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use ftdi_rt::Timestamp;
use ftdi_rt::sim::usb::{Urb, UrbCompletion, UrbStatus, UsbFunction, UsbSpeed};
use ftdi_rt::usbip::DetachReason;
use ftdi_rt_hil::guest::{Ctx, Outcome, sysfs_attr, wait_until};
use ftdi_rt_hil::vdev::{VhciThreads, VirtualDevice};

/// pid.codes' test VID:PID, vendor-specific class: nothing binds it.
const DEVICE: [u8; 18] = [
    18, 1, 0x00, 0x02, 0xff, 0, 0, 64, 0x09, 0x12, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 1,
];
/// One configuration, one interface, no endpoints.
const CONFIG: [u8; 18] = [9, 2, 18, 0, 1, 1, 0, 0x80, 50, 9, 4, 0, 0, 0, 0xff, 0, 0, 0];

/// Answers the standard requests of enumeration and STALLs the rest.
#[derive(Debug, Default)]
pub struct DescriptorOnly {
    done: VecDeque<UrbCompletion>,
}

impl UsbFunction for DescriptorOnly {
    fn speed(&self) -> UsbSpeed {
        UsbSpeed::Full
    }

    fn submit(&mut self, _now: Timestamp, urb: Urb) {
        let reply: Option<&[u8]> =
            match urb.setup.map(|s| (s.request_type, s.request, s.value >> 8)) {
                Some((0x80, 6, 1)) => Some(&DEVICE),
                Some((0x80, 6, 2)) => Some(&CONFIG),
                Some((0x80, 0, _)) => Some(&[0, 0]),
                Some((0x00, 9, _)) => Some(&[]),
                _ => None,
            };
        let completion = match reply {
            Some(data) => {
                let n = data.len().min(urb.length);
                UrbCompletion {
                    id: urb.id,
                    status: UrbStatus::Completed,
                    data: if urb.dir_in {
                        data[..n].to_vec()
                    } else {
                        Vec::new()
                    },
                    actual_length: if urb.dir_in { n } else { urb.data.len() },
                }
            }
            None => UrbCompletion {
                id: urb.id,
                status: UrbStatus::Stall,
                data: Vec::new(),
                actual_length: 0,
            },
        };
        self.done.push_back(completion);
    }

    fn unlink(&mut self, _now: Timestamp, _id: u32) -> bool {
        false
    }

    fn poll_completion(&mut self) -> Option<UrbCompletion> {
        self.done.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }

    fn handle_timeout(&mut self, _now: Timestamp) {}

    fn is_unplugged(&self) -> bool {
        false
    }
}

fn vid_pid(bus_id: &str) -> String {
    let dir = Path::new("/sys/bus/usb/devices").join(bus_id);
    format!(
        "{}:{}",
        sysfs_attr(&dir, "idVendor").unwrap_or_default(),
        sysfs_attr(&dir, "idProduct").unwrap_or_default()
    )
}

pub fn usbip_attach(ctx: &mut Ctx) -> Outcome {
    let vhci: VhciThreads = ctx.param("vhci", VhciThreads::DEFAULT);
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        let mut dev = VirtualDevice::attach(DescriptorOnly::default(), vhci, 0)?;
        ctx.log(&dev.describe());
        let first = dev.bus_id().to_string();
        if vid_pid(&first) != "1209:0001" {
            return Err(format!("{first} enumerated as {}", vid_pid(&first)));
        }
        let addressed = dev.attach_time.0;
        let sysfs = Path::new("/sys/bus/usb/devices").join(&first);
        dev.unplug()?;
        wait_until(Duration::from_secs(5), Duration::from_millis(2), || {
            !sysfs.exists()
        })
        .ok_or_else(|| format!("{} still exists after the unplug", sysfs.display()))?;
        let back = dev.replug()?;
        let second = dev.bus_id().to_string();
        if vid_pid(&second) != "1209:0001" {
            return Err(format!("after the replug {second} is {}", vid_pid(&second)));
        }
        // The host detaches: vhci-hcd closes the link, the handle says so.
        let port = dev.device().port().ok_or("no port after the replug")?;
        std::fs::write("/sys/devices/platform/vhci_hcd.0/detach", port.to_string())
            .map_err(|e| format!("writing {port} to detach: {e}"))?;
        wait_until(Duration::from_secs(5), Duration::from_millis(2), || {
            dev.device().detached().is_some()
        })
        .ok_or("the handle did not notice the host's detach within 5 s")?;
        let reason = dev.device().detached();
        if reason != Some(DetachReason::HostDetached) {
            return Err(format!(
                "after the host's detach the handle says {reason:?}"
            ));
        }
        ctx.metric(
            "usbip-attach",
            &[
                ("addressed_ms", addressed.as_millis().to_string()),
                ("replug_ms", back.as_millis().to_string()),
            ],
        );
        Ok(format!(
            "{first} addressed {} ms after attach; unplug removed it; replugged as {second} in {} \
             ms; the host's detach was seen ({vhci})",
            addressed.as_millis(),
            back.as_millis()
        ))
    };
    run(ctx).into()
}
