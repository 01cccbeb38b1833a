//! The `timing` case of the guest program: attaches an FT232R whose far end
//! is the incident's frobnicator and runs the [`super::matrix`] on it.

use std::time::Duration;

use ftdi_rt::sim::Frobnicator;

use super::contenders::Device;
use super::matrix::{self, MatrixSpec};
use crate::guest::{Ctx, Outcome};
use crate::virtual_ftdi::{attach_ft232r, selector};

/// Where the initramfs has the libftdi contender (hooks.d/libftdi.sh).
pub const LIBFTDI_LOOP: &str = "/bin/libftdi_loop";

/// `timing`: every contender under every load on the same virtual FT232R
/// (frobnicator, 200 µs device delay unless `timing.device_delay_us` says
/// otherwise); prints the plan, one row and one histogram per combination.
/// Passes when every row ran with no wrong reply; the gates are the host
/// report's.
pub fn timing(ctx: &mut Ctx) -> Outcome {
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        let spec = MatrixSpec::from_ctx(ctx)?;
        let delay = Duration::from_micros(ctx.param("timing.device_delay_us", 200u64));
        let mut dev = attach_ft232r(ctx, Frobnicator::new(delay))?;
        ctx.log(&dev.describe());
        let device = Device {
            tty: dev.tty()?.into(),
            selector: selector(&dev)?,
            usb_id: (ftdi_rt::FTDI_VID, 0x6001),
            libftdi_loop: LIBFTDI_LOOP.into(),
        };
        let result = matrix::run(ctx, &device, &spec, &mut |vhci| dev.set_vhci(vhci));
        // The chip's stand-in must not have been what was late.
        let late = dev.device().lateness();
        ctx.metric(
            "timing-server-lateness",
            &[
                ("n", late.count.to_string()),
                ("p99_us", late.p99.as_micros().to_string()),
                ("max_us", late.max.as_micros().to_string()),
            ],
        );
        result
    };
    run(ctx).into()
}
