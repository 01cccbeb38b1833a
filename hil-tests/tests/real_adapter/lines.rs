//! Every line setting: data bits × parity × stop bits, echoed or reported as
//! rejected by the chip.

use super::*;

/// Every line setting: 7/8 data bits × none/odd/even/mark/space parity ×
/// 1/1.5/2 stop bits. Each is set and a pattern of all byte values echoed
/// (with 7 data bits only the low 7 bits are compared). A setting the chip
/// refuses with a STALL is a finding, reported, not a failure; the port must
/// work after it. What loopback cannot show: that the framing on the wire
/// is what a third party expects (TX and RX share the setting).
#[test]
#[cfg_attr(
    not(feature = "hardware-tests"),
    ignore = "needs an FTDI adapter with TXD wired to RXD: build with --features hardware-tests and name it in FTDI_RT_HIL_DEVICE (hil-tests/README.md)"
)]
fn every_line_setting_echoes_or_is_reported_as_rejected() {
    let rig = common::rig("every_line_setting_echoes_or_is_reported_as_rejected");
    rig.run(Duration::from_secs(120), |adapter| {
        let mut port = adapter.open();
        let all: Vec<u8> = (0..=255).collect();
        let (mut passed, mut rejected, mut failures, mut with_errors) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for data_bits in [DataBits::Seven, DataBits::Eight] {
            for parity in [
                Parity::None,
                Parity::Odd,
                Parity::Even,
                Parity::Mark,
                Parity::Space,
            ] {
                for stop_bits in [StopBits::One, StopBits::OnePointFive, StopBits::Two] {
                    let line = LineProperties::new(data_bits, parity, stop_bits);
                    match port.set_line_properties(line) {
                        Ok(()) => {}
                        Err(Error::Stall { .. }) => {
                            rejected.push(line.to_string());
                            continue;
                        }
                        Err(e) => {
                            failures.push(format!("{line}: setting it failed: {e}"));
                            continue;
                        }
                    }
                    let mask = if data_bits == DataBits::Seven {
                        0x7F
                    } else {
                        0xFF
                    };
                    let before = port.stats().line_errors;
                    match checks::echo_masked(&mut port, &all, mask, Duration::from_secs(2)) {
                        Ok(()) => passed.push(line.to_string()),
                        Err(e) => {
                            failures.push(format!("{line}: {e}"));
                            settle(&mut port);
                        }
                    }
                    let after = port.stats().line_errors;
                    if after.total() > before.total() {
                        with_errors.push(format!(
                            "{line} (PE {}, FE {}, OE {})",
                            after.parity - before.parity,
                            after.framing - before.framing,
                            after.overrun - before.overrun
                        ));
                    }
                }
            }
        }
        say!("  echoed: {}", passed.join(" "));
        say!(
            "  rejected by the chip (STALL): {}",
            if rejected.is_empty() {
                "none".to_string()
            } else {
                rejected.join(" ")
            }
        );
        if !with_errors.is_empty() {
            say!(
                "  FINDING: line errors reported in loopback: {}",
                with_errors.join(", ")
            );
        }
        port.set_line_properties(LineProperties::EIGHT_N_ONE)
            .expect("back to 8N1");
        checks::echo(&mut port, b"8N1 again", Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("after all line settings, 8N1: {e}"));
        assert!(
            failures.is_empty(),
            "line settings that failed:\n{}",
            failures.join("\n")
        );
    });
}
