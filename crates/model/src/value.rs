//! Value types of the model and how each is written into a `JSONEachRow`
//! line for its ClickHouse column.

use std::io::Write;

use chrono::{DateTime, NaiveDate};

/// A money amount as ClickHouse's `Decimal(18, 4)` holds it: at most 14
/// integer digits, rounded to 4 decimals. The text the platform sent is
/// kept beside it (`amount_text`), so nothing is lost to the rounding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    /// Normalised decimal text: optional `-`, digits, optional `.` and up to 4 digits.
    text: String,
}

impl Amount {
    const MAX_INTEGER_DIGITS: usize = 14;
    const SCALE: usize = 4;

    /// Parses a plain decimal (`1500`, `-12.5`, `0.125`, `1e3`): no
    /// thousands separators, no currency symbols.
    pub fn parse(text: &str) -> Result<Amount, String> {
        let trimmed = text.trim();
        let (negative, unsigned) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => {
                let exponent: i32 = unsigned[at + 1..]
                    .parse()
                    .map_err(|_| format!("{text:?} is not a decimal number"))?;
                (&unsigned[..at], exponent)
            }
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits_ok(whole) || !digits_ok(fraction) {
            return Err(format!("{text:?} is not a decimal number"));
        }
        if exponent.unsigned_abs() > 40 {
            return Err(format!("{text:?} is out of range"));
        }
        // Shift the decimal point by the exponent over the digit string.
        let mut digits: String = format!("{whole}{fraction}");
        let mut point = whole.len() as i64 + i64::from(exponent);
        if point < 0 {
            digits = "0".repeat(point.unsigned_abs() as usize) + &digits;
            point = 0;
        }
        let point = point as usize;
        if digits.len() < point {
            digits.push_str(&"0".repeat(point - digits.len()));
        }
        let (int_part, frac_part) = digits.split_at(point);
        // Round half away from zero to the scale.
        let mut scaled: Vec<u8> = format!(
            "{int_part}{:0<width$}",
            &frac_part[..frac_part.len().min(Self::SCALE)],
            width = Self::SCALE
        )
        .into_bytes();
        if frac_part
            .as_bytes()
            .get(Self::SCALE)
            .is_some_and(|d| *d >= b'5')
        {
            let mut i = scaled.len();
            loop {
                if i == 0 {
                    scaled.insert(0, b'1');
                    break;
                }
                i -= 1;
                if scaled[i] == b'9' {
                    scaled[i] = b'0';
                } else {
                    scaled[i] += 1;
                    break;
                }
            }
        }
        let scaled = String::from_utf8(scaled).unwrap_or_default();
        let (int_digits, frac_digits) = scaled.split_at(scaled.len() - Self::SCALE);
        let int_digits = int_digits.trim_start_matches('0');
        if int_digits.len() > Self::MAX_INTEGER_DIGITS {
            return Err(format!(
                "{text:?} has more than {} integer digits",
                Self::MAX_INTEGER_DIGITS
            ));
        }
        let frac_digits = frac_digits.trim_end_matches('0');
        let int_digits = if int_digits.is_empty() {
            "0"
        } else {
            int_digits
        };
        let zero = int_digits == "0" && frac_digits.is_empty();
        let sign = if negative && !zero { "-" } else { "" };
        let text = if frac_digits.is_empty() {
            format!("{sign}{int_digits}")
        } else {
            format!("{sign}{int_digits}.{frac_digits}")
        };
        Ok(Amount { text })
    }

    /// From a JSON number, through its exact text (never via rounding to a float first
    /// when the number is an integer).
    pub fn from_json_number(number: &serde_json::Number) -> Result<Amount, String> {
        if number.is_i64() || number.is_u64() {
            return Amount::parse(&number.to_string());
        }
        match number.as_f64() {
            // Rust's shortest round-trip text of the float, without exponent.
            Some(f) if f.is_finite() => Amount::parse(&format!("{f}")),
            _ => Err(format!("{number} is not a finite number")),
        }
    }

    /// The normalised decimal text (no exponent, no trailing zeros).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn to_f64(&self) -> f64 {
        self.text.parse().unwrap_or(0.0)
    }
}

/// A point in time with second precision, as ClickHouse's `DateTime('UTC')`
/// holds it (1970-01-01 to 2106-02-07).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub fn from_seconds(seconds: i64) -> Result<Timestamp, String> {
        if (0..=i64::from(u32::MAX)).contains(&seconds) {
            Ok(Timestamp(seconds))
        } else {
            Err(format!(
                "{seconds} s since the epoch is outside 1970-01-01..2106-02-07"
            ))
        }
    }

    pub fn from_micros(micros: i64) -> Result<Timestamp, String> {
        Timestamp::from_seconds(micros.div_euclid(1_000_000))
    }

    /// The start of a calendar day, UTC.
    pub fn day_start(date: NaiveDate) -> Result<Timestamp, String> {
        let seconds = date
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .ok_or_else(|| format!("{date} has no midnight"))?;
        Timestamp::from_seconds(seconds)
    }

    pub fn seconds(self) -> i64 {
        self.0
    }
}

/// A value written as its column expects it in `JSONEachRow`.
pub(crate) trait RowValue {
    fn write_json(&self, out: &mut Vec<u8>);
}

impl RowValue for String {
    fn write_json(&self, out: &mut Vec<u8>) {
        let _ = serde_json::to_writer(&mut *out, self);
    }
}

impl RowValue for bool {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(if *self { b'1' } else { b'0' });
    }
}

impl RowValue for i64 {
    fn write_json(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "{self}");
    }
}

impl RowValue for f64 {
    fn write_json(&self, out: &mut Vec<u8>) {
        // Values come from JSON or arithmetic on it: never NaN or infinite.
        let _ = serde_json::to_writer(&mut *out, &serde_json::Value::from(*self));
    }
}

impl RowValue for Amount {
    fn write_json(&self, out: &mut Vec<u8>) {
        // A bare JSON number, digit for digit: ClickHouse 18.16 reads a
        // Decimal only from an unquoted number.
        out.extend_from_slice(self.text.as_bytes());
    }
}

impl RowValue for NaiveDate {
    fn write_json(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "\"{}\"", self.format("%Y-%m-%d"));
    }
}

impl RowValue for Timestamp {
    fn write_json(&self, out: &mut Vec<u8>) {
        let text = DateTime::from_timestamp(self.0, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let _ = write!(out, "\"{text}\"");
    }
}

impl<T: RowValue> RowValue for Vec<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.write_json(out);
        }
        out.push(b']');
    }
}
