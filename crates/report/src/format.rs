//! Values as people read them (thousands separators, one or two decimals,
//! percents, an em dash for null) and as machines read them back (the JSON
//! text of the value exactly as ClickHouse returned it).

use serde_json::Value;

/// What a null shows as.
pub const NULL: &str = "\u{2014}";

/// How a column's values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Verbatim: names, titles, dates.
    Text,
    /// Identifiers: the digits as they are, no separators.
    Id,
    /// A number with thousands separators and this many decimals.
    Number { decimals: usize },
    /// A number of percent (already 0..100), one decimal and ` %`.
    Percent,
    /// An exchange rate: as many decimals as it has, up to six.
    Rate,
}

/// Columns that hold text whatever their values look like (a deal titled
/// "2024" stays a title).
const TEXT_COLUMNS: &[&str] = &[
    "title",
    "stage",
    "stage_name",
    "pipeline",
    "owner",
    "organization",
    "channel",
    "rep",
    "currency",
    "close_month",
    "time",
    "expected_close",
    "updated_at",
    "last_activity",
];

/// The number a value holds: a JSON number, or a string that is one
/// (ClickHouse quotes 64-bit integers unless told not to).
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if is_numeric_text(s) => s.parse().ok(),
        _ => None,
    }
}

/// `-12`, `3.50`, `1e-7`: a plain decimal number, nothing else (no `inf`,
/// `nan`, spaces or thousands separators).
fn is_numeric_text(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    digits(whole)
        && fraction.is_none_or(digits)
        && exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

/// How to show the column `name` holding `values`: by its name where that
/// says what it is, else by what the values are.
pub fn column_format<'a>(name: &str, values: impl IntoIterator<Item = &'a Value>) -> Format {
    if TEXT_COLUMNS.contains(&name) {
        return Format::Text;
    }
    let mut any = false;
    let mut integral = true;
    for value in values {
        if value.is_null() {
            continue;
        }
        let Some(n) = number(value) else {
            return Format::Text;
        };
        any = true;
        integral &= n.fract() == 0.0;
    }
    if !any {
        return Format::Text;
    }
    if name == "id" || name.ends_with("_id") {
        Format::Id
    } else if name.ends_with("_percent") || name.contains("probability") {
        Format::Percent
    } else if name == "rate" || name.ends_with("_rate") {
        Format::Rate
    } else if name.ends_with("_days") {
        Format::Number { decimals: 1 }
    } else if integral {
        Format::Number { decimals: 0 }
    } else {
        Format::Number { decimals: 2 }
    }
}

/// `value` as a person reads it in a column of `format`.
pub fn display(value: &Value, format: Format) -> String {
    match (value, format) {
        (Value::Null, _) => NULL.to_owned(),
        (_, Format::Text) => text(value),
        (Value::Number(n), Format::Id) => n.to_string(),
        (_, Format::Number { decimals }) => match number(value) {
            Some(_) if decimals == 0 && is_integer(value) => group(&integer_text(value)),
            Some(n) => decimal(n, decimals),
            None => text(value),
        },
        (_, Format::Percent) => match number(value) {
            Some(n) => format!("{} %", decimal(n, 1)),
            None => text(value),
        },
        (_, Format::Rate) => match number(value) {
            Some(n) => {
                let shown = decimal(n, 6);
                shown.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
            None => text(value),
        },
        (_, Format::Id) => text(value),
    }
}

/// A value as text: strings verbatim, everything else as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => NULL.to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The exact machine value: the JSON text of the value as it arrived.
pub fn machine(value: &Value) -> String {
    value.to_string()
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// The digits of an integer value, exactly (no detour through f64).
fn integer_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim_start_matches('+').to_owned(),
        other => other.to_string(),
    }
}

/// `n` rounded to `decimals`, with thousands separators; never `-0`.
pub fn decimal(n: f64, decimals: usize) -> String {
    // Halves round away from zero, as people round (`{:.1}` alone gives
    // 4.25 -> 4.2).
    let scale = 10f64.powi(decimals as i32);
    let rounded = if (n * scale).abs() < 1e15 {
        (n * scale).round() / scale
    } else {
        n
    };
    let mut s = format!("{rounded:.decimals$}");
    if s.starts_with('-') && s[1..].bytes().all(|b| b == b'0' || b == b'.') {
        s.remove(0);
    }
    group(&s)
}

/// Inserts `,` every three digits of the whole part: `-1234567.5` ->
/// `-1,234,567.5`. Text that is not a plain number is returned unchanged.
pub fn group(number: &str) -> String {
    let (sign, rest) = match number.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", number),
    };
    let (whole, fraction) = match rest.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (rest, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return number.to_owned();
    }
    let mut out = String::with_capacity(number.len() + whole.len() / 3);
    out.push_str(sign);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// A short number for axis ticks and bar labels: `950`, `12.5k`, `3.4M`.
pub fn compact(n: f64) -> String {
    let abs = n.abs();
    let (scaled, suffix) = if abs >= 1e9 {
        (n / 1e9, "G")
    } else if abs >= 1e6 {
        (n / 1e6, "M")
    } else if abs >= 1e4 {
        (n / 1e3, "k")
    } else {
        (n, "")
    };
    let decimals = if scaled.fract() == 0.0 || scaled.abs() >= 100.0 {
        0
    } else {
        1
    };
    format!("{}{suffix}", decimal(scaled, decimals))
}

/// A column name as a heading: `pass_rate_percent` -> `Pass rate (%)`,
/// `velocity_days` -> `Velocity (days)`, `deal_id` -> `Deal ID`.
pub fn heading(column: &str) -> String {
    let (base, unit) = if let Some(base) = column.strip_suffix("_percent") {
        (base, " (%)")
    } else if let Some(base) = column.strip_suffix("_days") {
        (base, " (days)")
    } else {
        (column, "")
    };
    let words: Vec<String> = base
        .split('_')
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(i, word)| match word {
            "id" => "ID".to_owned(),
            "crm" => "CRM".to_owned(),
            _ if i == 0 => {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect())
                    .unwrap_or_default()
            }
            _ => word.to_owned(),
        })
        .collect();
    if words.is_empty() {
        return column.to_owned();
    }
    format!("{}{unit}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_get_thousands_separators_and_one_or_two_decimals() {
        let whole = Format::Number { decimals: 0 };
        let money = Format::Number { decimals: 2 };
        let days = Format::Number { decimals: 1 };
        assert_eq!(display(&json!(1_234_567), whole), "1,234,567");
        assert_eq!(display(&json!(999), whole), "999");
        assert_eq!(display(&json!(0), whole), "0");
        assert_eq!(display(&json!(-1_234), whole), "-1,234");
        assert_eq!(display(&json!(1_234.5), money), "1,234.50");
        assert_eq!(display(&json!(-0.001), money), "0.00");
        assert_eq!(display(&json!(12.345_6), days), "12.3");
        assert_eq!(display(&json!(42.857_14), Format::Percent), "42.9 %");
        assert_eq!(display(&json!(4.25), Format::Percent), "4.3 %");
        assert_eq!(display(&json!(-2.5), whole), "-3");
        assert_eq!(display(&json!(0.125), money), "0.13");
        assert_eq!(display(&json!(100), Format::Percent), "100.0 %");
        // 64-bit integers stay exact, quoted or not.
        assert_eq!(
            display(&json!(u64::MAX), whole),
            "18,446,744,073,709,551,615"
        );
        assert_eq!(
            display(&json!("18446744073709551615"), whole),
            "18,446,744,073,709,551,615"
        );
        assert_eq!(display(&json!("1500.25"), money), "1,500.25");
        assert_eq!(display(&json!(123_456), Format::Id), "123456");
        assert_eq!(display(&json!(0.875), Format::Rate), "0.875");
        assert_eq!(display(&json!(0.1875), Format::Rate), "0.1875");
        assert_eq!(display(&json!(1), Format::Rate), "1");
        assert_eq!(display(&json!(0), Format::Rate), "0");
        assert_eq!(display(&json!(1234.5), Format::Rate), "1,234.5");
        assert_eq!(display(&json!(1.0 / 3.0), Format::Rate), "0.333333");
        assert_eq!(display(&json!("123456"), Format::Id), "123456");
    }

    #[test]
    fn nulls_are_an_em_dash_and_text_stays_verbatim() {
        for format in [
            Format::Text,
            Format::Id,
            Format::Number { decimals: 2 },
            Format::Percent,
            Format::Rate,
        ] {
            assert_eq!(display(&Value::Null, format), "\u{2014}");
        }
        assert_eq!(display(&json!("Deal <1>"), Format::Text), "Deal <1>");
        assert_eq!(display(&json!(2024), Format::Text), "2024");
        assert_eq!(display(&json!(true), Format::Text), "true");
        assert_eq!(display(&json!("n/a"), Format::Percent), "n/a");
    }

    #[test]
    fn machine_values_are_the_exact_json() {
        assert_eq!(machine(&json!(12.5)), "12.5");
        assert_eq!(machine(&json!("12.50")), "\"12.50\"");
        assert_eq!(machine(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(machine(&Value::Null), "null");
        assert_eq!(machine(&json!("a\"b")), r#""a\"b""#);
    }

    #[test]
    fn columns_are_classified_by_name_then_by_values() {
        let f = |name: &str, values: Vec<Value>| column_format(name, &values);
        assert_eq!(f("title", vec![json!("2024")]), Format::Text);
        assert_eq!(f("deal_id", vec![json!(1), json!("2")]), Format::Id);
        assert_eq!(f("win_rate_percent", vec![json!(50)]), Format::Percent);
        assert_eq!(f("crm_probability", vec![json!(10.5)]), Format::Percent);
        assert_eq!(f("rate", vec![json!(1), json!(0.875)]), Format::Rate);
        assert_eq!(f("pass_rate_percent", vec![json!(50)]), Format::Percent);
        assert_eq!(
            f("velocity_days", vec![json!(3)]),
            Format::Number { decimals: 1 }
        );
        assert_eq!(
            f("deals", vec![json!(3), Value::Null, json!("4")]),
            Format::Number { decimals: 0 }
        );
        assert_eq!(
            f("value", vec![json!(3), json!(2.5)]),
            Format::Number { decimals: 2 }
        );
        assert_eq!(f("note", vec![json!(3), json!("x")]), Format::Text);
        assert_eq!(f("nothing", vec![Value::Null]), Format::Text);
        assert_eq!(f("odd", vec![json!("1,5")]), Format::Text);
        assert_eq!(f("odd", vec![json!("inf")]), Format::Text);
        assert_eq!(
            f("tiny", vec![json!("1e-7")]),
            Format::Number { decimals: 2 }
        );
    }

    #[test]
    fn compact_numbers_and_headings() {
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(12_500.0), "12.5k");
        assert_eq!(compact(3_400_000.0), "3.4M");
        assert_eq!(compact(250_000.0), "250k");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(heading("pass_rate_percent"), "Pass rate (%)");
        assert_eq!(heading("velocity_days"), "Velocity (days)");
        assert_eq!(heading("deal_id"), "Deal ID");
        assert_eq!(heading("crm_probability"), "CRM probability");
        assert_eq!(heading("value"), "Value");
        assert_eq!(heading("_"), "_");
    }
}
