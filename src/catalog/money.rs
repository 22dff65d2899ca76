//! Exact money.
//!
//! Prices and amounts are [`Usd`]: a decimal with up to 28 significant digits (`rust_decimal`), never an
//! `f64`. OpenRouter's catalog prices are decimal strings in USD per token (the real dump has values such
//! as `"0.0000000208333333333333"`, 22 decimal places), which parse and print back unchanged. `max_price`
//! and most humans speak USD per *million* tokens; [`Usd::per_million`] and [`Usd::from_per_million`]
//! convert exactly.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An exact amount of US dollars (or a price in USD per unit).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(Decimal);

/// A price or amount that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceError {
    input: String,
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a decimal price", self.input)
    }
}

impl std::error::Error for PriceError {}

const MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd(Decimal::ZERO);

    /// Wraps a decimal.
    pub const fn from_decimal(d: Decimal) -> Self {
        Usd(d)
    }

    /// The decimal value.
    pub const fn as_decimal(self) -> Decimal {
        self.0
    }

    /// Parses a decimal string such as `"0.000003"`, `"1.5e-7"` or `"-1"`; surrounding spaces are
    /// allowed.
    pub fn parse(s: &str) -> Result<Self, PriceError> {
        let t = s.trim();
        let err = || PriceError { input: s.into() };
        if t.is_empty() {
            return Err(err());
        }
        let d = if t.bytes().any(|b| b == b'e' || b == b'E') {
            Decimal::from_scientific(t).map_err(|_| err())?
        } else {
            Decimal::from_str_exact(t).map_err(|_| err())?
        };
        Ok(Usd(d))
    }

    /// Converts a JSON number exactly as it was written: the shortest decimal that round-trips the
    /// `f64` (what serde_json printed, or what a person typed) is what gets parsed.
    pub fn from_f64(v: f64) -> Result<Self, PriceError> {
        if !v.is_finite() {
            return Err(PriceError {
                input: v.to_string(),
            });
        }
        // `{:?}` prints the shortest representation that round-trips, possibly in exponent form.
        Self::parse(&format!("{v:?}"))
    }

    /// A whole number of dollars.
    pub fn from_int(v: i64) -> Self {
        Usd(Decimal::from(v))
    }

    /// Micro-dollars (1e-6 USD).
    pub fn from_micros(micros: i64) -> Self {
        Usd(Decimal::new(micros, 6))
    }

    /// USD per token → USD per million tokens (exact).
    pub fn per_million(self) -> Self {
        Usd(self.0.checked_mul(MILLION).unwrap_or(Decimal::MAX))
    }

    /// USD per million tokens → USD per token (exact for any value with ≤ 22 decimal places).
    pub fn from_per_million(self) -> Self {
        Usd(self.0.checked_div(MILLION).unwrap_or(Decimal::ZERO))
    }

    /// `self × n`, saturating at the largest representable amount.
    pub fn times(self, n: u64) -> Self {
        Usd(self.0.checked_mul(Decimal::from(n)).unwrap_or(Decimal::MAX))
    }

    /// `self × factor` (e.g. a `1 - discount` multiplier), saturating.
    pub fn scale(self, factor: Decimal) -> Self {
        Usd(self.0.checked_mul(factor).unwrap_or(Decimal::MAX))
    }

    /// Saturating addition.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, other: Usd) -> Self {
        Usd(self.0.checked_add(other.0).unwrap_or(Decimal::MAX))
    }

    /// Saturating subtraction.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, other: Usd) -> Self {
        Usd(self.0.checked_sub(other.0).unwrap_or(Decimal::MIN))
    }

    /// True below zero.
    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    /// True at zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// An approximate `f64`, for weights, JSON numbers and display only — never for accumulation.
    pub fn to_f64(self) -> f64 {
        use rust_decimal::prelude::ToPrimitive;
        self.0.to_f64().unwrap_or(f64::MAX)
    }

    /// The value with trailing zeros removed (`"0.15000"` → `"0.15"`).
    pub fn normalize(self) -> Self {
        Usd(self.0.normalize())
    }
}

impl FromStr for Usd {
    type Err = PriceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Usd::parse(s)
    }
}

impl Usd {
    /// The longest text of an amount: a `Decimal`'s 29 digits, its point and sign (`0.` and 27
    /// zeros before a digit, at the largest scale, are shorter).
    pub(crate) const TEXT_MAX: usize = 31;

    /// Bytes of [`PlainText::padded`]: room for the longest text.
    pub(crate) const TEXT_PADDED: usize = 32;

    /// The amount as [`Display`](fmt::Display) writes it (every digit of the scale, `-` if
    /// negative), written in place: by `itoa` when the mantissa fits in a `u64` (any price or cost
    /// of a generation), by the formatting machinery otherwise.
    pub(crate) fn plain(&self) -> PlainText {
        let mut t = PlainText {
            buf: [b'0'; PLAIN_BUF],
            start: PLAIN_END,
        };
        let m = self.0.mantissa();
        let Ok(abs) = u64::try_from(m.unsigned_abs()) else {
            let mut w = Cursor {
                buf: &mut t.buf,
                at: 0,
            };
            let _ = fmt::Write::write_fmt(&mut w, format_args!("{}", self.0));
            let len = w.at;
            t.buf.copy_within(..len, PLAIN_END - len);
            t.start = PLAIN_END - len;
            return t;
        };
        let mut itoa = itoa::Buffer::new();
        let digits = itoa.format(abs).as_bytes();
        let scale = self.0.scale() as usize;
        // The fraction's digits end the text, zeros (the buffer's) before them; then the point,
        // and the integer part (a zero, the buffer's, when it is zero).
        let (int, frac) = digits.split_at(digits.len().saturating_sub(scale));
        t.buf[PLAIN_END - frac.len()..PLAIN_END].copy_from_slice(frac);
        let mut start = PLAIN_END;
        if scale > 0 {
            start -= scale + 1;
            t.buf[start] = b'.';
        }
        t.start = if int.is_empty() {
            start - 1
        } else {
            t.buf[start - int.len()..start].copy_from_slice(int);
            start - int.len()
        };
        if m < 0 {
            t.start -= 1;
            t.buf[t.start] = b'-';
        }
        t
    }
}

/// Where a [`PlainText`] ends in its buffer: after room for the longest text and one byte more,
/// so that its start is never 0 (a sign always has room before the digits of a `u64`).
const PLAIN_END: usize = Usd::TEXT_MAX + 1;

/// A [`PlainText`]'s buffer: its text, and [`Usd::TEXT_PADDED`] bytes from its start.
const PLAIN_BUF: usize = PLAIN_END - 1 + Usd::TEXT_PADDED;

/// The text of an amount ([`Usd::plain`]), kept in a small buffer.
pub(crate) struct PlainText {
    buf: [u8; PLAIN_BUF],
    start: usize,
}

impl PlainText {
    /// The text and bytes of no meaning after it, [`Usd::TEXT_PADDED`] in all: a copy of a fixed
    /// size (no call), of which a writer keeps [`PlainText::len`] bytes.
    pub(crate) fn padded(&self) -> &[u8; Usd::TEXT_PADDED] {
        let b = &self.buf[self.start..self.start + Usd::TEXT_PADDED];
        b.try_into().unwrap_or(&[b'0'; Usd::TEXT_PADDED])
    }

    /// Bytes of the text.
    pub(crate) fn len(&self) -> usize {
        PLAIN_END - self.start
    }
}

/// A [`fmt::Write`] into a [`PlainText`]'s buffer, from its start (text past it is dropped).
struct Cursor<'b> {
    buf: &'b mut [u8; PLAIN_BUF],
    at: usize,
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = (self.at + s.len()).min(Usd::TEXT_MAX);
        let n = end - self.at;
        self.buf[self.at..end].copy_from_slice(&s.as_bytes()[..n]);
        self.at = end;
        Ok(())
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.0)
    }
}

/// Serialised as a decimal string, the way OpenRouter's catalog writes prices.
impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Reads a decimal string or a JSON number.
impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Usd;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a price as a decimal string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Usd, E> {
                Usd::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Usd, E> {
                Ok(Usd::from_int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Usd, E> {
                Ok(Usd(Decimal::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Usd, E> {
                Usd::from_f64(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_long_decimals() {
        for s in [
            "0.0000000208333333333333",
            "0.000003",
            "0",
            "-1",
            "0.01",
            "15",
        ] {
            assert_eq!(Usd::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn per_million_is_exact() {
        let p = Usd::parse("0.00000015").unwrap();
        assert_eq!(p.per_million().normalize().to_string(), "0.15");
        assert_eq!(p.per_million().from_per_million(), p);
        let odd = Usd::parse("0.0000000208333333333333").unwrap();
        assert_eq!(odd.per_million().from_per_million(), odd);
    }

    #[test]
    fn numbers_parse_as_written() {
        assert_eq!(
            Usd::from_f64(1.5e-7).unwrap(),
            Usd::parse("0.00000015").unwrap()
        );
        assert_eq!(Usd::from_f64(0.1).unwrap(), Usd::parse("0.1").unwrap());
        assert!(Usd::parse("abc").is_err());
        assert!(Usd::parse("").is_err());
        assert!(Usd::from_f64(f64::NAN).is_err());
    }

    #[test]
    fn sums_do_not_drift() {
        let p = Usd::parse("0.1").unwrap();
        let mut total = Usd::ZERO;
        for _ in 0..10 {
            total = total.add(p);
        }
        assert_eq!(total, Usd::from_int(1));
    }

    proptest::proptest! {
        /// The text written in place is `Display`'s, for mantissas of any size and sign.
        #[test]
        fn plain_is_display(
            m in proptest::prelude::any::<i64>(),
            wide in 0u32..3,
            scale in 0u32..=28,
        ) {
            let mantissa = match wide {
                0 => i128::from(m),
                1 => i128::from(m) * 1_000_000_000,
                _ => i128::from(m) << 32 | 0xffff_ffff,
            };
            let d = Usd(Decimal::from_i128_with_scale(mantissa, scale));
            let t = d.plain();
            let text = std::str::from_utf8(&t.padded()[..t.len()]).unwrap();
            proptest::prop_assert_eq!(text, d.to_string());
        }
    }
}
