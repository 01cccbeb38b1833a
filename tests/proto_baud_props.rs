//! Properties of the baud divisor choice, checked by proptest over every chip
//! and by an exhaustive sweep over every integer rate of each divisor class.
//!
//! Two choices are checked (see the `proto::baud` module docs):
//!
//! - `choose_divisor`, libftdi's raw choice, is nearest in libftdi's sense:
//!   below base/2, the divisor with the nearest *bit time* (exact divisor
//!   rounded to an eighth, ties to the larger divisor); from base/2 up, the
//!   fastest special rate not above the request; on the AM, the nearest
//!   *rounded rate* among AM-legal divisors, except that for exact divisors
//!   in [1.125, 2) libftdi only considers 2.
//! - `baud_divisor` sends libftdi's choice whenever it is within 3 %, else
//!   the legal divisor nearest in *rate* (`nearest_divisor`) if that is
//!   within 3 %, else refuses naming the nearest rate. So for every rate no
//!   legal divisor would change its verdict, and an error always names the
//!   nearest rate; the sweeps pin exactly where it differs from libftdi.

use ftdi_rt::proto::{
    BAUD_TOLERANCE_PERCENT, Chip, Divisor, Interface, baud_divisor, choose_divisor, decode_divisor,
    nearest_divisor,
};
use proptest::prelude::*;

const BASE_3MHZ: u32 = 3_000_000;
const BASE_12MHZ: u32 = 12_000_000;
const MAX_EIGHTHS: u32 = 0x1FFFF;

/// Legal divisors, restated independently of the implementation.
fn legal(chip: Chip, d: Divisor) -> bool {
    let am = chip == Chip::Am;
    let base_ok = d.base_hz == BASE_3MHZ || (d.base_hz == BASE_12MHZ && chip.is_high_speed());
    let e = d.eighths;
    // Never in (1, 2) except 1.5, never an integer part beyond 14 bits.
    let range_ok = e == 8 || e == 12 || (16..=MAX_EIGHTHS).contains(&e);
    // AM: fractions .0 .125 .25 .5 only, and no 1.5.
    let am_ok = !am || (e != 12 && matches!(e % 8, 0 | 1 | 2 | 4));
    base_ok && range_ok && am_ok
}

fn within_tolerance(actual: u32, requested: u32) -> bool {
    u64::from(actual.abs_diff(requested)) * 100
        <= u64::from(BAUD_TOLERANCE_PERCENT) * u64::from(requested)
}

/// Legal eighths on one base within `radius` of `center`, plus 1 and 1.5.
fn neighbourhood(chip: Chip, base_hz: u32, center: u32, radius: u32) -> impl Iterator<Item = u32> {
    let lo = center.saturating_sub(radius);
    let hi = center.saturating_add(radius).min(MAX_EIGHTHS);
    [8, 12]
        .into_iter()
        .chain(lo.max(16)..=hi)
        .filter(move |&eighths| legal(chip, Divisor { base_hz, eighths }))
}

/// |bit time error| scaled by `8 * base * baud`: |8·base − baud·eighths|.
fn bit_time_error(base_hz: u32, eighths: u32, baud: u32) -> u64 {
    (8 * u64::from(base_hz)).abs_diff(u64::from(baud) * u64::from(eighths))
}

/// Checks that `d` (the choice for `baud`) is nearest in libftdi's sense.
fn assert_libftdi_nearest(chip: Chip, baud: u32, d: Divisor) {
    let ctx = || format!("{chip} {baud} Bd -> {d:?}");
    let (base, e) = (d.base_hz, d.eighths);
    if chip == Chip::Am {
        let err = d.actual().abs_diff(baud);
        let exact_floor = 24_000_000 / baud;
        // AM-legal divisors are at most 4 eighths apart: 8 covers two on
        // each side.
        for other in neighbourhood(chip, base, e, 8) {
            // libftdi's AM search never looks at 1 when the exact divisor is
            // in [1.125, 2): it takes 2. Both are > 12 % off there.
            if other == 8 && (9..16).contains(&exact_floor) {
                continue;
            }
            let other_err = Divisor {
                base_hz: base,
                eighths: other,
            }
            .actual()
            .abs_diff(baud);
            assert!(err <= other_err, "{}: {other} eighths is nearer", ctx());
        }
        return;
    }
    let (b, base64) = (u64::from(baud), u64::from(base));
    if 2 * b >= base64 {
        // Snap region: the fastest special rate not above the request.
        assert!(
            8 * base64 <= b * u64::from(e),
            "{}: faster than requested",
            ctx()
        );
        for faster in [8, 12, 16].into_iter().filter(|&f| f < e) {
            assert!(
                8 * base64 > b * u64::from(faster),
                "{}: {faster} fits",
                ctx()
            );
        }
    } else {
        let err = bit_time_error(base, e, baud);
        for other in neighbourhood(chip, base, e, 4) {
            let other_err = bit_time_error(base, other, baud);
            assert!(
                err < other_err || (err == other_err && e >= other),
                "{}: {other} eighths has a nearer bit time",
                ctx()
            );
        }
    }
    if chip.is_high_speed() {
        // The other base is never nearer in bit time (errors scaled to a
        // common 96e6·baud denominator).
        if base == BASE_12MHZ {
            let three = (24_000_000 / baud + 1).clamp(16, MAX_EIGHTHS);
            for other in [three - 1, three] {
                let other_err = 4 * bit_time_error(BASE_3MHZ, other, baud);
                assert!(
                    bit_time_error(base, e, baud) <= other_err,
                    "{}: 3 MHz",
                    ctx()
                );
            }
        } else {
            assert!(baud <= 732, "{}", ctx());
            let err = 4 * bit_time_error(base, e, baud);
            assert!(
                err <= bit_time_error(BASE_12MHZ, MAX_EIGHTHS, baud),
                "{}: 12 MHz",
                ctx()
            );
        }
    }
}

/// Every property of libftdi's choice for one rate, without the encoding.
fn check_choice(chip: Chip, baud: u32) -> Divisor {
    let d = choose_divisor(chip, baud);
    assert!(legal(chip, d), "{chip} {baud} Bd: illegal {d:?}");
    assert!((f64::from(d.actual()) - d.rate_hz()).abs() <= 0.5);
    if baud > 0 {
        assert_libftdi_nearest(chip, baud, d);
    }
    d
}

/// Whether `a` is preferable to `b` as the nearest divisor for `baud`:
/// nearer in exact rate, then the lower rate, then (same rate) the 12 MHz
/// base. Compared as |8·base − baud·e| / e, cross-multiplied.
fn preferable(a: Divisor, b: Divisor, baud: u32) -> bool {
    let b128 = u128::from(baud.max(1));
    let k = |d: Divisor| 8 * u128::from(d.base_hz);
    let e = |d: Divisor| u128::from(d.eighths);
    let dist_a = k(a).abs_diff(b128 * e(a)) * e(b);
    let dist_b = k(b).abs_diff(b128 * e(b)) * e(a);
    let (rate_a, rate_b) = (k(a) * e(b), k(b) * e(a));
    (dist_a, rate_a, std::cmp::Reverse(a.base_hz)) < (dist_b, rate_b, std::cmp::Reverse(b.base_hz))
}

/// The legal divisor with the nearest *rate*, found independently of the
/// library: on every base the chip has, 1, 1.5 and every legal divisor
/// within 4 eighths of the exact one clamped to 2..=16383.875 (legal
/// divisors from 2 up are never more than 4 eighths apart, AM included).
fn reference_nearest(chip: Chip, baud: u32) -> Divisor {
    let bases: &[u32] = if chip.is_high_speed() {
        &[BASE_3MHZ, BASE_12MHZ]
    } else {
        &[BASE_3MHZ]
    };
    let mut best: Option<Divisor> = None;
    for &base_hz in bases {
        let exact = u64::from(base_hz) * 8 / u64::from(baud.max(1));
        let center = u32::try_from(exact)
            .unwrap_or(u32::MAX)
            .clamp(16, MAX_EIGHTHS);
        for eighths in neighbourhood(chip, base_hz, center, 4) {
            let cand = Divisor { base_hz, eighths };
            if best.is_none_or(|cur| preferable(cand, cur, baud)) {
                best = Some(cand);
            }
        }
    }
    best.expect("some legal divisor")
}

/// What `baud_divisor` did with one rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Sent libftdi's divisor (within 3 %). `nearest` is false where
    /// another legal rate is nearer still (libftdi's bit-time rounding,
    /// case 1 of the module docs; both are within 3 %).
    Libftdi { nearest: bool },
    /// libftdi's rate fails 3 %; sent the nearest rate, which passes.
    Nearest { libftdi: u32, ours: u32 },
    /// No legal rate is within 3 %; refused, naming the nearest.
    Refused,
}

/// Names a rate in assertion messages.
struct Ctx(Chip, Interface, u32);

impl std::fmt::Display for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} Bd", self.0, self.1, self.2)
    }
}

/// Every property for one rate, including the wire encoding:
///
/// - libftdi's choice is nearest in libftdi's sense (`check_choice`);
/// - `nearest_divisor` is the reference nearest rate;
/// - `baud_divisor` is `Ok` exactly when the nearest legal rate is within
///   3 % (no legal divisor would change the verdict), sends libftdi's
///   divisor whenever that passes and the nearest otherwise, and any error
///   names the nearest rate.
fn check_rate(chip: Chip, interface: Interface, baud: u32) -> Outcome {
    // Formatted only when an assertion fails: the sweeps call this for
    // every rate.
    let ctx = Ctx(chip, interface, baud);
    let libftdi = check_choice(chip, baud);
    let nearest = reference_nearest(chip, baud);
    assert_eq!(nearest_divisor(chip, baud), nearest, "{ctx}: nearest");
    let libftdi_ok = within_tolerance(libftdi.actual(), baud);
    let nearest_ok = within_tolerance(nearest.actual(), baud);
    // The nearest rate is at least as near as libftdi's, after rounding too.
    assert!(
        nearest.actual().abs_diff(baud) <= libftdi.actual().abs_diff(baud),
        "{ctx}"
    );
    let result = baud_divisor(chip, interface, baud);
    assert_eq!(result.is_ok(), nearest_ok, "{ctx}: verdict {result:?}");
    match result {
        Ok(bd) => {
            let expected = if libftdi_ok { libftdi } else { nearest };
            assert!(within_tolerance(bd.actual, baud), "{ctx}: accepted {bd:?}");
            assert_eq!(bd.actual, expected.actual(), "{ctx}");
            assert_eq!(
                decode_divisor(chip, bd.value, bd.index),
                Ok(expected),
                "{ctx}"
            );
            if chip.has_channel_byte() {
                assert_eq!(bd.index & 0xFF, interface.port());
                assert!(bd.index >> 8 <= 3);
            } else {
                assert!(bd.index <= 1, "{chip}: no port byte, no clock bit");
            }
            if libftdi_ok {
                Outcome::Libftdi {
                    nearest: libftdi.rate_hz() == nearest.rate_hz(),
                }
            } else {
                Outcome::Nearest {
                    libftdi: libftdi.actual(),
                    ours: bd.actual,
                }
            }
        }
        Err(e) => {
            assert!(!libftdi_ok, "{ctx}: refused libftdi's {libftdi:?}");
            assert_eq!((e.requested, e.nearest), (baud, nearest.actual()), "{ctx}");
            assert!(e.error_percent.abs() > f64::from(BAUD_TOLERANCE_PERCENT));
            Outcome::Refused
        }
    }
}

/// A range of rates where `baud_divisor` sends the nearest rate instead of
/// libftdi's: (first, last, libftdi's rate, ours).
type Window = (u32, u32, u32, u32);

/// Sweeps every integer rate from 1 to 4 % above the chip's maximum, checks
/// every property, and returns the windows where we differ from libftdi and
/// the number of rates where we send libftdi's divisor although another
/// legal rate is nearer (both within 3 %).
fn sweep(chip: Chip) -> (Vec<Window>, u32) {
    let mut windows: Vec<Window> = Vec::new();
    let mut not_nearest = 0;
    let top = chip.max_baud_rate() / 100 * 104;
    for baud in 1..=top {
        match check_rate(chip, Interface::A, baud) {
            Outcome::Nearest { libftdi, ours } => match windows.last_mut() {
                Some((_, hi, l, o)) if *hi + 1 == baud && (*l, *o) == (libftdi, ours) => {
                    *hi = baud;
                }
                _ => windows.push((baud, baud, libftdi, ours)),
            },
            Outcome::Libftdi { nearest: false } => not_nearest += 1,
            Outcome::Libftdi { nearest: true } | Outcome::Refused => {}
        }
    }
    (windows, not_nearest)
}

// The exhaustive sweeps, one chip per divisor class. They take seconds each
// in a debug build, so they run only in optimised builds
// (`cargo test --release --test proto_baud_props`); the dense sweep, the
// window proptest and the window-edge test below cover debug builds.
//
// Besides every property, they record as a regression exactly where
// `baud_divisor` deliberately differs from libftdi: where libftdi's choice
// fails the 3 % rule although the nearest legal rate passes. See the
// `proto::baud` module docs, "Where we deliberately differ from libftdi".
//
// They also count the rates where libftdi's choice passes and is kept
// although another legal rate is nearer: its rounding to the nearest bit
// time (module docs, case 1) or, on the AM, to the nearest rounded rate.
// Keeping it there is what makes every libftdi vector match bit for bit;
// the verdict is the same either way, as `check_rate` asserts.

/// Windows on the 3 MHz base (BM, FT2232C, FT232R, FT-X).
const WINDOWS_3MHZ: [Window; 3] = [
    (1_454_546, 1_455_427, 1_500_000, 1_411_765),
    (1_941_748, 1_999_999, 1_500_000, 2_000_000),
    (2_912_622, 2_999_999, 2_000_000, 3_000_000),
];

/// Windows on H-class chips (the 12 MHz base).
const WINDOWS_H: [Window; 3] = [
    (5_818_182, 5_821_710, 6_000_000, 5_647_059),
    (7_766_991, 7_999_999, 6_000_000, 8_000_000),
    (11_650_486, 11_999_999, 8_000_000, 12_000_000),
];

/// The windows of a chip's class.
fn windows(chip: Chip) -> &'static [Window] {
    if chip == Chip::Am {
        &[]
    } else if chip.is_high_speed() {
        &WINDOWS_H
    } else {
        &WINDOWS_3MHZ
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "exhaustive: run with --release")]
fn sweep_3mhz_class() {
    let (windows, not_nearest) = sweep(Chip::Ft232R);
    assert_eq!(windows, WINDOWS_3MHZ);
    assert_eq!(not_nearest, 10_361);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "exhaustive: run with --release")]
fn sweep_am() {
    let (windows, not_nearest) = sweep(Chip::Am);
    assert_eq!(windows, vec![]);
    assert_eq!(not_nearest, 2_085);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "exhaustive: run with --release")]
fn sweep_h_class() {
    let (windows, not_nearest) = sweep(Chip::Ft232H);
    assert_eq!(windows, WINDOWS_H);
    assert_eq!(not_nearest, 41_491);
}

/// The windows' exact edges, cheap enough for every build and checked on
/// every chip: inside, we send the nearest rate where libftdi's fails 3 %;
/// one rate outside on either side, we do what libftdi does (send its
/// divisor, or refuse). A window that grows or shrinks fails here.
#[test]
fn window_edges() {
    for &chip in Chip::ALL {
        for &(lo, hi, libftdi, ours) in windows(chip) {
            for inside in [lo, lo + (hi - lo) / 2, hi] {
                assert_eq!(
                    check_rate(chip, Interface::A, inside),
                    Outcome::Nearest { libftdi, ours },
                    "{chip} {inside}"
                );
            }
            for outside in [lo - 1, hi + 1] {
                let outcome = check_rate(chip, Interface::A, outside);
                assert!(
                    !matches!(outcome, Outcome::Nearest { .. }),
                    "{chip} {outside}: {outcome:?}"
                );
            }
        }
    }
}

/// Every chip shares its class's choice; spot-check the encoding of every
/// chip and channel on a dense grid.
#[test]
fn every_chip_and_channel_dense() {
    for &chip in Chip::ALL {
        for &itf in chip.interfaces() {
            let mut baud = 1u32;
            while baud <= chip.max_baud_rate() / 100 * 104 {
                check_rate(chip, itf, baud);
                baud += 1 + baud / 2000;
            }
        }
    }
}

fn chip_strategy() -> impl Strategy<Value = Chip> {
    proptest::sample::select(Chip::ALL)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn any_rate_in_range(chip in chip_strategy(), itf in 0usize..4, frac in 0.0f64..=1.0) {
        let itf = chip.interfaces()[itf % chip.interfaces().len()];
        let baud = ((f64::from(chip.max_baud_rate()) * frac) as u32).max(1);
        check_rate(chip, itf, baud);
    }

    /// Any rate in any window of any chip gets the nearest rate.
    #[test]
    fn any_rate_in_a_window(chip in chip_strategy(), which in 0usize..3, frac in 0.0f64..=1.0) {
        if let Some(&(lo, hi, libftdi, ours)) = windows(chip).get(which) {
            let baud = lo + (f64::from(hi - lo) * frac) as u32;
            let itf = chip.interfaces()[which % chip.interfaces().len()];
            prop_assert_eq!(check_rate(chip, itf, baud), Outcome::Nearest { libftdi, ours });
        }
    }

    #[test]
    fn any_u32_never_panics(chip in chip_strategy(), baud in any::<u32>()) {
        check_rate(chip, Interface::A, baud);
    }

    #[test]
    fn decode_never_panics(chip in chip_strategy(), value in any::<u16>(), index in any::<u16>()) {
        if let Ok(d) = decode_divisor(chip, value, index) {
            prop_assert!(legal(chip, d));
            // Re-encoding gives the same divisor bits (the port byte aside).
            let (v, i) = d.encode(chip, Interface::A).unwrap();
            prop_assert_eq!(v, value);
            if chip.has_channel_byte() {
                prop_assert_eq!(i >> 8, index >> 8);
            } else {
                prop_assert_eq!(i, index);
            }
        }
    }
}
