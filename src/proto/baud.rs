//! Baud-rate divisors: choosing one for a requested rate, encoding it into
//! SET_BAUDRATE's wValue/wIndex, and decoding it back as the chip does.
//!
//! # The divisor (docs/ftdi-protocol.md §3.1)
//!
//! The rate is `base / d`. `base` is 3 MHz (48 MHz / 16) on every chip, or
//! 12 MHz (120 MHz / 10) on H-class chips when divisor bit 17 is set. `d` is
//! kept here in eighths (`Divisor::eighths`), so the rate is
//! `base * 8 / eighths`. The legal divisors are:
//!
//! - 1 (8 eighths) and 1.5 (12 eighths), the two special encodings;
//! - 2 to 16383.875 in steps of 1/8 (16..=0x1FFFF eighths);
//! - on the AM only the fractions .0, .125, .25 and .5, and no 1.5.
//!
//! Nothing strictly between 1 and 2 except 1.5 is legal (FT232R datasheet:
//! "baud rate divisors with values between 1 and 2 are not possible").
//!
//! # How a divisor is chosen
//!
//! [`baud_divisor`] decides in two steps:
//!
//! 1. It takes libftdi's choice, [`choose_divisor`], and sends it if its
//!    rate is within [`BAUD_TOLERANCE_PERCENT`] of the request (inclusive).
//! 2. Otherwise it takes the legal divisor whose *rate* is nearest to the
//!    request, [`nearest_divisor`], and sends it if that is within 3 %;
//!    if not, it returns a [`BaudError`] naming that nearest rate.
//!
//! Step 2 only ever sends a divisor in the three windows of the table
//! below. **Everywhere else the divisor sent is libftdi's, bit for bit** in
//! wValue and in the fraction/clock bits of wIndex, for every chip and rate;
//! elsewhere step 2 only picks the rate an error names. HP and HA parts,
//! which libftdi does not know, are treated like its H types. Only the
//! *placement* of those bits in wIndex differs from libftdi: it follows the
//! Linux driver (see [`Chip::has_channel_byte`]).
//!
//! So no legal divisor could improve on the 3 % verdict, and an error
//! always names the nearest rate. The divisor sent is not always the
//! nearest *rate*, though: where libftdi's choice passes it is kept even if
//! another legal rate is nearer (its bit-time rounding, case 1 below:
//! 10 361 integer rates on a 3 MHz-base chip, 41 491 on H class, all within
//! 3 % either way), since that is what keeps every libftdi vector exact.
//!
//! # libftdi's choice
//!
//! [`choose_divisor`] reproduces libftdi's `ftdi_convert_baudrate`
//! (`ftdi_to_clkbits`, `ftdi_to_clkbits_AM`; docs/ftdi-protocol.md §3.2). It is
//! "nearest" in the following sense, which the property tests check:
//!
//! 1. **Below base/2** (1.5 MBd, or 6 MBd on the 12 MHz base) it rounds the
//!    exact divisor `x = base * 8 / baud` (in eighths) to the nearest
//!    eighth, ties to the larger divisor: the divisor with the nearest *bit
//!    time*. Measured in *rate* instead, when `x` lies in
//!    `(k + k/(2k+1), k + 1/2)` the larger neighbour `k + 1` is nearer than
//!    the chosen `k`. The windows narrow as the divisor grows: about 1300 Bd
//!    wide at k = 16 (≈1.455 MBd), under 1 Bd below ≈110 kBd. Only the
//!    k = 16 window changes the 3 % verdict (see below); in the others the
//!    bit-time choice is kept, as it passes.
//! 2. **From base/2 up to base** it takes the fastest of the three special
//!    rates (base, base/1.5, base/2) that is not faster than the request,
//!    rather than the nearest one. These are the only legal rates above
//!    base/2, so most such requests are far off either way.
//! 3. **AM**: it compares the two AM-legal divisors that bracket the exact
//!    one by their rounded rates, ties to the smaller divisor, except that
//!    for exact divisors in [1.125, 2) it only considers 2, and that it never
//!    goes above 16383.0 even though 16383.5 is encodable (both round to
//!    183 Bd, so that costs nothing).
//! 4. **H class**: the 12 MHz base for 733 Bd and up (where its finer steps
//!    are at least as near), the 3 MHz base below. The kernel switches at
//!    1200 Bd instead; both are exact on the standard rates.
//!
//! # Where we deliberately differ from libftdi
//!
//! An exhaustive sweep of every integer rate (`tests/proto_baud_props.rs`)
//! finds exactly these rates where libftdi's choice is more than 3 % off
//! although another legal rate is within 3 %, on every 3 MHz-base chip (BM,
//! FT2232C, FT232R, FT-X) and, times four, on H-class chips. There
//! [`baud_divisor`] sends the nearest rate instead of libftdi's:
//!
//! | 3 MHz base | H class | libftdi's rate | ours |
//! |---|---|---|---|
//! | 1 454 546 ..= 1 455 427 | 5 818 182 ..= 5 821 710 | 1.5 M / 6 M (+3.06..+3.12 %), case 1 | 1 411 765 / 5 647 059 (−2.94..−3.00 %) |
//! | 1 941 748 ..= 1 999 999 | 7 766 991 ..= 7 999 999 | 1.5 M / 6 M (−22.8..−25.0 %), case 2 | 2 M / 8 M (+0.00..+3.00 %) |
//! | 2 912 622 ..= 2 999 999 | 11 650 486 ..= 11 999 999 | 2 M / 8 M (−31.3..−33.3 %), case 2 | 3 M / 12 M (+0.00..+3.00 %) |
//!
//! Why: in the first row libftdi rounds the divisor (≈2.062, just below
//! 2.0625) to the nearest bit time, 2.0, whose rate is 3.06..3.12 % fast,
//! while 2.125 is only 2.94..3.00 % slow; libftdi's own 5 % rule accepts
//! and sends its off-by-3 % divisor. In the other two it snaps down to a
//! slower special rate that is 22.8..33.3 % slow, which libftdi's 5 % rule
//! refuses, although the next faster special rate is within 3 %. Sending
//! the nearer divisor there turns a refusal into a rate that works (rows 2
//! and 3) or keeps the error within 3 % (row 1), and changes nothing
//! libftdi accepts within 3 %. (libftdi's own `test/baudrate.cpp` has one
//! rate in a window, 1 454 546 Bd, times four on H-class chips: the first
//! rate of the first row. [`choose_divisor`] still matches it bit for bit.)
//!
//! The AM has no such window: apart from case 3's exception, where both
//! candidates are more than 12 % off, its choice is the nearest.
//!
//! When even the nearest rate is more than 3 % off, the error names it,
//! which can differ from libftdi's choice: 2.6 MBd on a 3 MHz-base chip
//! names 3 MBd (+15.4 %) where libftdi would pick 2 MBd (−23.1 %).
//!
//! # Edge cases
//!
//! - `baud == 0` is an error: [`BaudError`] with the slowest legal rate as
//!   `nearest` and an infinite `error_percent`. (The kernel treats B0 as
//!   "hang up"; that is a transport decision, not a divisor.)
//! - Rates above [`Chip::max_baud_rate`] get divisor 1, the fastest rate,
//!   and pass or fail by the 3 % rule like any other (so up to 3 092 783 Bd
//!   is accepted as 3 MBd). Arithmetic is in `u64`/`u128`: no input
//!   overflows.
//! - Rates below the slowest legal one (≈183.1 Bd) get the largest divisor
//!   and likewise pass or fail by the 3 % rule.

use super::chip::Chip;
use super::interface::Interface;

/// The tolerance [`baud_divisor`] accepts, in percent of the requested rate.
///
/// 3 % is pyftdi's `BAUDRATE_TOLERANCE` (docs/ftdi-protocol.md §3.2). libftdi's
/// ≈5 % would spend on one end alone the whole mid-bit sampling margin of a
/// 10-bit frame (half a bit over 9.5 bits, ≈5.3 %), leaving nothing for the
/// other end's clock.
pub const BAUD_TOLERANCE_PERCENT: u32 = 3;

/// 48 MHz / 16: the divisor base of every chip.
const BASE_3MHZ: u32 = 3_000_000;
/// 120 MHz / 10: the divisor base of H-class chips when bit 17 is set.
const BASE_12MHZ: u32 = 12_000_000;
/// The largest divisor, 16383.875, in eighths (14-bit integer part).
const MAX_EIGHTHS: u32 = 0x1FFFF;
/// The largest divisor libftdi uses on the AM, 16383.0, in eighths.
const AM_MAX_EIGHTHS: u32 = 0x1FFF8;
/// Divisor bit 17: select the 12 MHz base (H class only).
const CLOCK_12MHZ_BIT: u32 = 1 << 17;

/// Fraction in eighths (index) to its 3-bit code in divisor bits 16..14
/// (docs/ftdi-protocol.md §3.1: the kernel's `divfrac`, libftdi's `frac_code`).
const FRAC_CODE: [u32; 8] = [0, 3, 2, 4, 1, 5, 6, 7];
/// The inverse: 3-bit code (index) to eighths, QEMU's `subdivisors8`.
const CODE_EIGHTHS: [u32; 8] = [0, 4, 2, 1, 3, 5, 6, 7];

/// A chosen divisor, ready for a SET_BAUDRATE request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaudDivisor {
    /// The request's wValue: divisor bits 15..0.
    pub value: u16,
    /// The request's wIndex: divisor bits 17..16, placed per the Linux rule
    /// (`hi` on AM/BM/R, `(hi << 8) | port` on the others).
    pub index: u16,
    /// The rate the chip will run at, rounded half up to whole baud
    /// (the same figure libftdi returns).
    pub actual: u32,
}

/// The requested rate is more than [`BAUD_TOLERANCE_PERCENT`] away from the
/// rate the chip would run at.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error(
    "{requested} Bd is not achievable within 3 %: the nearest rate the chip can run at is \
     {nearest} Bd ({error_percent:+.2} %)"
)]
pub struct BaudError {
    /// The rate asked for.
    pub requested: u32,
    /// The nearest rate the chip can run at, rounded half up to whole baud:
    /// the rate of [`nearest_divisor`]. No legal divisor is nearer in rate.
    pub nearest: u32,
    /// `(nearest - requested) / requested * 100`; `+inf` when `requested`
    /// is 0.
    pub error_percent: f64,
}

/// The divisor a chip applies, as the chip decodes SET_BAUDRATE.
///
/// The rate is `base_hz * 8 / eighths`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Divisor {
    /// 3 000 000 (48 MHz / 16) or, on H-class chips with bit 17, 12 000 000.
    pub base_hz: u32,
    /// The divisor in eighths: 8 (1), 12 (1.5), or 16..=0x1FFFF.
    pub eighths: u32,
}

impl Divisor {
    /// The exact rate in baud. Infinite if `eighths` is 0 (never produced by
    /// this module; the fields are public).
    pub fn rate_hz(self) -> f64 {
        f64::from(self.base_hz) * 8.0 / f64::from(self.eighths)
    }

    /// The rate rounded half up to whole baud, which is what
    /// [`BaudDivisor::actual`] reports and what libftdi computes.
    /// Saturates at `u32::MAX` (only reachable with hand-built fields).
    pub fn actual(self) -> u32 {
        // floor(base*8/e + 1/2) = floor((16*base + e) / (2*e)), all integer.
        let e = u64::from(self.eighths);
        match (16 * u64::from(self.base_hz) + e).checked_div(2 * e) {
            Some(r) => u32::try_from(r).unwrap_or(u32::MAX),
            None => u32::MAX,
        }
    }

    /// The duration of one bit on the wire, in nanoseconds.
    pub fn bit_time_ns(self) -> f64 {
        f64::from(self.eighths) * 1e9 / (f64::from(self.base_hz) * 8.0)
    }

    /// Whether `chip` can run this divisor: 1, 1.5 (not on the AM) or
    /// 2..=16383.875 (AM: fractions .0/.125/.25/.5 only), on the 3 MHz base,
    /// or the 12 MHz base on H-class chips.
    pub fn is_legal_for(self, chip: Chip) -> bool {
        let am = matches!(chip, Chip::Am);
        let base_ok =
            self.base_hz == BASE_3MHZ || (self.base_hz == BASE_12MHZ && chip.is_high_speed());
        let eighths_ok = match self.eighths {
            8 => true,
            12 => !am,
            16..=MAX_EIGHTHS => !am || matches!(self.eighths & 7, 0 | 1 | 2 | 4),
            _ => false,
        };
        base_ok && eighths_ok
    }

    /// Encodes this divisor as SET_BAUDRATE (wValue, wIndex) for `chip` and
    /// `interface`, the inverse of [`decode_divisor`]; `None` if the divisor
    /// is not [legal](Divisor::is_legal_for) on `chip`.
    pub fn encode(self, chip: Chip, interface: Interface) -> Option<(u16, u16)> {
        if !self.is_legal_for(chip) {
            return None;
        }
        let encoded = self.encoded();
        // Both casts keep what fits: `encoded` is at most 18 bits.
        let value = (encoded & 0xFFFF) as u16;
        let hi = (encoded >> 16) as u16;
        let index = if chip.has_channel_byte() {
            (hi << 8) | interface.port()
        } else {
            hi
        };
        Some((value, index))
    }

    /// The 18-bit encoded divisor: integer part in bits 13..0, fraction code
    /// in 16..14, the 12 MHz select in bit 17. Assumes a legal divisor.
    fn encoded(self) -> u32 {
        let e = self.eighths;
        let div = match e {
            // The two special encodings (docs/ftdi-protocol.md §3.1): 1 -> 0, 1.5 -> 1.
            8 => 0,
            12 => 1,
            _ => (e >> 3) | (FRAC_CODE[(e & 7) as usize] << 14),
        };
        if self.base_hz == BASE_12MHZ {
            div | CLOCK_12MHZ_BIT
        } else {
            div
        }
    }
}

/// SET_BAUDRATE wValue/wIndex that the chip would not accept as a divisor.
///
/// Rejected: a divisor in (1, 2) other than 1.5 or below 1 (integer part 0
/// or 1 with a fraction); the 12 MHz clock bit on a chip without the
/// 120 MHz clock; the fraction high bit or the 1.5 encoding on an AM; and
/// wIndex bits outside the divisor (and, where the chip has one, the port
/// byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "wValue {value:#06x} / wIndex {index:#06x} is not a legal baud divisor for this chip \
     (divisors in (1, 2) other than 1.5, the 12 MHz bit on a non-H chip, the fraction high \
     bit or 1.5 on an AM, and reserved wIndex bits are rejected)"
)]
pub struct InvalidDivisor {
    /// The rejected wValue.
    pub value: u16,
    /// The rejected wIndex.
    pub index: u16,
}

/// Chooses the divisor for `baud` on `chip` and encodes it for `interface`.
///
/// The divisor is libftdi's choice ([`choose_divisor`]) whenever that is
/// within [`BAUD_TOLERANCE_PERCENT`]; otherwise the [`nearest_divisor`], if
/// that is within 3 % (see the module docs: this differs from libftdi in
/// three narrow windows only). `interface` only matters on chips with a
/// channel byte; it is not checked against [`Chip::interfaces`], which is
/// the caller's job.
///
/// # Errors
///
/// [`BaudError`], naming the nearest rate the chip can run at, if no legal
/// divisor is within [`BAUD_TOLERANCE_PERCENT`]: including `baud == 0`
/// (infinitely off) and rates more than 3 % above [`Chip::max_baud_rate`].
/// Never panics.
pub fn baud_divisor(chip: Chip, interface: Interface, baud: u32) -> Result<BaudDivisor, BaudError> {
    let libftdi = choose_divisor(chip, baud);
    let divisor = if within_tolerance(libftdi.actual(), baud) {
        libftdi
    } else {
        nearest_divisor(chip, baud)
    };
    let actual = divisor.actual();
    if !within_tolerance(actual, baud) {
        // Division by zero is intended here: baud 0 reports +inf.
        let error_percent = (f64::from(actual) - f64::from(baud)) / f64::from(baud) * 100.0;
        return Err(BaudError {
            requested: baud,
            nearest: actual,
            error_percent,
        });
    }
    // Both choices are always legal, so `encode` succeeds; the fallback
    // keeps this path panic-free regardless.
    match divisor.encode(chip, interface) {
        Some((value, index)) => Ok(BaudDivisor {
            value,
            index,
            actual,
        }),
        None => Err(BaudError {
            requested: baud,
            nearest: actual,
            error_percent: f64::NAN,
        }),
    }
}

/// libftdi's raw divisor choice for `baud` on `chip`: what
/// `ftdi_convert_baudrate` picks, bit for bit, without any tolerance check
/// and without [`baud_divisor`]'s fallback to the [`nearest_divisor`] (see
/// the module docs for how, and where, the two differ). Always
/// [legal](Divisor::is_legal_for) on `chip`. `baud == 0` is treated as 1 Bd,
/// giving the slowest divisor (≈183.1 Bd).
pub fn choose_divisor(chip: Chip, baud: u32) -> Divisor {
    choose(chip, baud.max(1))
}

/// The [legal](Divisor::is_legal_for) divisor for `chip` whose exact rate
/// is nearest to `baud`, over every base the chip has (3 MHz, and 12 MHz on
/// H-class chips) and, on the AM, only its fractions (up to 16383.5, which
/// libftdi never uses).
///
/// Ties between two different rates equally far from `baud` go to the
/// *lower* rate (2.5 MBd on a 3 MHz-base chip gives 2 MBd, not 3 MBd). When
/// both bases give the same rate, the 12 MHz one is returned, as libftdi
/// uses it wherever both can. `baud == 0` is treated as 1 Bd, giving the
/// slowest legal rate (≈183.1 Bd).
///
/// Since the rounded rate ([`Divisor::actual`]) is monotone in the exact
/// one, no legal divisor has a nearer rounded rate either, so this is the
/// best any divisor can do against the 3 % rule. It looks at no more than
/// two candidates per base: the legal divisors just at or below and just
/// above the exact divisor.
pub fn nearest_divisor(chip: Chip, baud: u32) -> Divisor {
    let baud = baud.max(1);
    let am = matches!(chip, Chip::Am);
    let bases: &[u32] = if chip.is_high_speed() {
        &[BASE_3MHZ, BASE_12MHZ]
    } else {
        &[BASE_3MHZ]
    };
    // The slowest legal rate is a fine start: it is replaced by any nearer
    // candidate, and the candidates always include the nearest.
    let mut best = Divisor {
        base_hz: BASE_3MHZ,
        eighths: legal_at_or_below(am, MAX_EIGHTHS).unwrap_or(8),
    };
    for &base_hz in bases {
        // The exact divisor is base * 8 / baud eighths; the nearest rate on
        // this base is one of the legal divisors that bracket it.
        let floor = u32::try_from(u64::from(base_hz) * 8 / u64::from(baud)).unwrap_or(u32::MAX);
        let below = legal_at_or_below(am, floor);
        let above = legal_at_or_above(am, floor.saturating_add(1));
        for eighths in [below, above].into_iter().flatten() {
            let candidate = Divisor { base_hz, eighths };
            if preferable(candidate, best, baud) {
                best = candidate;
            }
        }
    }
    best
}

/// Whether `a` is strictly preferable to `b` as the nearest divisor for
/// `baud` (at least 1): nearer in exact rate; equally near and slower; or
/// the same rate on the 12 MHz base.
fn preferable(a: Divisor, b: Divisor, baud: u32) -> bool {
    let baud = u128::from(baud);
    let (ka, ea) = (8 * u128::from(a.base_hz), u128::from(a.eighths));
    let (kb, eb) = (8 * u128::from(b.base_hz), u128::from(b.eighths));
    // |ka/ea - baud| against |kb/eb - baud|, both scaled by ea * eb: at
    // most 2^27 * 2^32 * 2^17, far inside u128.
    let dist_a = ka.abs_diff(baud * ea) * eb;
    let dist_b = kb.abs_diff(baud * eb) * ea;
    // ka/ea against kb/eb, likewise.
    let (rate_a, rate_b) = (ka * eb, kb * ea);
    dist_a < dist_b
        || (dist_a == dist_b && (rate_a < rate_b || (rate_a == rate_b && a.base_hz > b.base_hz)))
}

/// The largest legal divisor (in eighths) at or below `eighths`, if any.
fn legal_at_or_below(am: bool, eighths: u32) -> Option<u32> {
    match eighths {
        0..8 => None,
        8..12 => Some(8),
        12..16 => Some(if am { 8 } else { 12 }),
        _ if am => Some(am_fraction_down(eighths.min(MAX_EIGHTHS))),
        _ => Some(eighths.min(MAX_EIGHTHS)),
    }
}

/// The smallest legal divisor (in eighths) at or above `eighths`, if any.
fn legal_at_or_above(am: bool, eighths: u32) -> Option<u32> {
    const UP: [u32; 8] = [0, 0, 0, 1, 0, 3, 2, 1];
    match eighths {
        0..=8 => Some(8),
        9..=12 if !am => Some(12),
        9..=16 => Some(16),
        _ if eighths > MAX_EIGHTHS => None,
        // AM fractions: the largest, 16383.5, is below MAX_EIGHTHS, so
        // anything above it has no AM-legal divisor at or above.
        _ if am => Some(eighths + UP[(eighths & 7) as usize]).filter(|&e| e <= MAX_EIGHTHS),
        _ => Some(eighths),
    }
}

/// Whether `actual` is within [`BAUD_TOLERANCE_PERCENT`] of `requested`
/// (inclusive); never for `requested == 0` unless `actual` is 0 too.
fn within_tolerance(actual: u32, requested: u32) -> bool {
    u64::from(actual.abs_diff(requested)) * 100
        <= u64::from(BAUD_TOLERANCE_PERCENT) * u64::from(requested)
}

/// Decodes SET_BAUDRATE's wValue/wIndex the way `chip` would.
///
/// On chips with a channel byte the divisor's high bits are wIndex bits
/// 8..9 and the low byte (the port) is ignored; on AM/BM/R they are wIndex
/// bits 0..1 (docs/ftdi-protocol.md §3.1). A libftdi-style FT-X or FT2232C request
/// (`wIndex = hi`) is therefore read as a port byte with no fraction high
/// bit, as the Linux-rule chips would.
pub fn decode_divisor(chip: Chip, value: u16, index: u16) -> Result<Divisor, InvalidDivisor> {
    let invalid = InvalidDivisor { value, index };
    let hi = if chip.has_channel_byte() {
        index >> 8
    } else {
        index
    };
    if hi & !0b11 != 0 {
        return Err(invalid);
    }
    let frac_hi = u32::from(hi & 1);
    let clock_12mhz = hi & 2 != 0;
    if clock_12mhz && !chip.is_high_speed() {
        return Err(invalid);
    }
    let am = matches!(chip, Chip::Am);
    if am && frac_hi != 0 {
        // The AM has a 2-bit fraction: .0, .5, .25, .125 only.
        return Err(invalid);
    }
    let n = u32::from(value & 0x3FFF);
    let code = u32::from(value >> 14) | (frac_hi << 2);
    let eighths = match (n, code) {
        (0, 0) => 8,
        // 1.5 is "not supported by the FT8U232AM" (kernel header).
        (1, 0) if !am => 12,
        (0 | 1, _) => return Err(invalid),
        _ => n * 8 + CODE_EIGHTHS[code as usize],
    };
    let base_hz = if clock_12mhz { BASE_12MHZ } else { BASE_3MHZ };
    Ok(Divisor { base_hz, eighths })
}

/// libftdi's choice for `baud` (at least 1: callers clamp) on `chip`.
fn choose(chip: Chip, baud: u32) -> Divisor {
    if matches!(chip, Chip::Am) {
        return Divisor {
            base_hz: BASE_3MHZ,
            eighths: am_eighths(baud),
        };
    }
    // libftdi uses the 120 MHz / 10 clock when `baud * 10 > 120 MHz / 0x3fff`
    // (integer division: 7324), i.e. from 733 Bd, where a 14-bit integer part
    // on the 12 MHz base still reaches the rate.
    let base_hz = if chip.is_high_speed() && u64::from(baud) * 10 > 120_000_000 / 0x3FFF {
        BASE_12MHZ
    } else {
        BASE_3MHZ
    };
    Divisor {
        base_hz,
        eighths: clkbits_eighths(base_hz, baud),
    }
}

/// The divisor libftdi's `ftdi_to_clkbits` picks on `base_hz`, in eighths.
fn clkbits_eighths(base_hz: u32, baud: u32) -> u32 {
    let base = u64::from(base_hz);
    let baud = u64::from(baud);
    // From base/2 up, snap *down* to the fastest special rate that does not
    // exceed the request; this is what keeps divisors in (1, 2) other than
    // 1.5 from ever being produced.
    if baud >= base {
        8
    } else if baud * 3 >= base * 2 {
        12
    } else if baud * 2 >= base {
        16
    } else {
        // libftdi computes sixteenths by truncating division and rounds the
        // odd one up, which is round-half-up of the exact eighths.
        let sixteenths = base * 16 / baud;
        let eighths = sixteenths / 2 + (sixteenths & 1);
        // baud < base/2 keeps this >= 16. libftdi clamps at `> 0x20000`, so
        // exactly 0x20000 would slip through, but no integer rate lands there
        // (it needs 183.1047..183.1062 Bd on the 3 MHz base).
        eighths.min(u64::from(MAX_EIGHTHS)) as u32
    }
}

/// The divisor libftdi's `ftdi_to_clkbits_AM` picks, in eighths of 3 MHz.
///
/// The AM only has the fractions .0, .125, .25 and .5, no 1.5 and nothing in
/// (1, 2). libftdi rounds the truncated exact divisor down to an AM fraction,
/// takes the next AM-legal divisor above as the other candidate, and keeps
/// the one whose rounded rate is nearer (the lower divisor on a tie).
fn am_eighths(baud: u32) -> u32 {
    let exact_floor = 24_000_000 / baud;
    let lower = am_fraction_down(exact_floor);
    let candidates = [am_snap_up(lower), am_snap_up(lower + 1)];
    // Strictly nearer only: a tie keeps the first (smaller) divisor.
    if am_rate(candidates[1]).abs_diff(baud) < am_rate(candidates[0]).abs_diff(baud) {
        candidates[1]
    } else {
        candidates[0]
    }
}

/// Rounds eighths down to an AM fraction (.0, .125, .25, .5).
fn am_fraction_down(eighths: u32) -> u32 {
    const DOWN: [u32; 8] = [0, 0, 0, 1, 0, 1, 2, 3];
    eighths - DOWN[(eighths & 7) as usize]
}

/// Rounds eighths up to an AM-legal divisor: 1 below 1, 2 for anything in
/// (1, 2), otherwise the next AM fraction, capped at libftdi's AM maximum.
fn am_snap_up(eighths: u32) -> u32 {
    const UP: [u32; 8] = [0, 0, 0, 1, 0, 3, 2, 1];
    if eighths <= 8 {
        8
    } else if eighths < 16 {
        16
    } else {
        (eighths + UP[(eighths & 7) as usize]).min(AM_MAX_EIGHTHS)
    }
}

/// The rounded rate of an AM divisor, as libftdi estimates it.
fn am_rate(eighths: u32) -> u32 {
    Divisor {
        base_hz: BASE_3MHZ,
        eighths,
    }
    .actual()
}
