//! Events to ClickHouse rows. The column layout is read from the server at
//! start (`system.columns`), so each JSON value is converted to what its
//! column holds: booleans to 0/1, timestamps to `YYYY-MM-DD hh:mm:ss` UTC,
//! integral floats to integers. Rows are written as `JSONEachRow` lines.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

/// A column's type, as far as conversion needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Integer,
    Float,
    Date,
    DateTime,
    Nullable(Box<ColumnType>),
    Array(Box<ColumnType>),
    /// A type events never fill (aggregate states and the like).
    Other(String),
}

impl ColumnType {
    /// Parses ClickHouse's type name (`Nullable(DateTime('UTC'))`, ...).
    pub fn parse(name: &str) -> ColumnType {
        let name = name.trim();
        let inner = |prefix: &str| {
            name.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
                .map(ColumnType::parse)
        };
        if let Some(inner) = inner("Nullable(") {
            return ColumnType::Nullable(Box::new(inner));
        }
        if let Some(inner) = inner("Array(") {
            return ColumnType::Array(Box::new(inner));
        }
        if let Some(inner) = inner("LowCardinality(") {
            return inner;
        }
        match name {
            "String" => ColumnType::String,
            "Int8" | "Int16" | "Int32" | "Int64" | "UInt8" | "UInt16" | "UInt32" | "UInt64" => {
                ColumnType::Integer
            }
            "Float32" | "Float64" => ColumnType::Float,
            "Date" => ColumnType::Date,
            _ if name.starts_with("DateTime") && !name.starts_with("DateTime64") => {
                ColumnType::DateTime
            }
            _ => ColumnType::Other(name.to_owned()),
        }
    }

    /// `value` as this column holds it; `None` when it does not fit.
    pub fn convert(&self, value: &Value) -> Option<Value> {
        match (self, value) {
            (ColumnType::Nullable(_), Value::Null) => Some(Value::Null),
            (ColumnType::Nullable(inner), value) => inner.convert(value),
            (ColumnType::Array(_), Value::Null) => Some(Value::Array(Vec::new())),
            (ColumnType::Array(inner), Value::Array(items)) => items
                .iter()
                .map(|item| inner.convert(item))
                .collect::<Option<Vec<_>>>()
                .map(Value::Array),
            (ColumnType::String, Value::String(_)) => Some(value.clone()),
            (ColumnType::String, Value::Bool(_) | Value::Number(_)) => {
                Some(Value::String(value.to_string()))
            }
            (ColumnType::Integer, Value::Bool(b)) => Some(Value::from(u8::from(*b))),
            (ColumnType::Integer, Value::Number(n)) => {
                if n.is_i64() || n.is_u64() {
                    Some(value.clone())
                } else {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| Value::from(f as i64))
                }
            }
            (ColumnType::Float, Value::Number(_)) => Some(value.clone()),
            (ColumnType::Date, Value::String(s)) => {
                parse_date(s).map(|d| Value::String(d.to_string()))
            }
            (ColumnType::DateTime, Value::String(s)) => parse_date_time(s).map(date_time_text),
            (ColumnType::DateTime, Value::Number(n)) => n
                .as_i64()
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .map(date_time_text),
            _ => None,
        }
    }
}

fn date_time_text(t: DateTime<Utc>) -> Value {
    Value::String(t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// RFC 3339, or Pipedrive's `YYYY-MM-DD hh:mm:ss` (UTC).
pub fn parse_date_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// The columns of one table, in order, by name.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    by_name: HashMap<String, ColumnType>,
}

impl Columns {
    pub fn new(columns: impl IntoIterator<Item = (String, String)>) -> Columns {
        Columns {
            by_name: columns
                .into_iter()
                .map(|(name, ty)| {
                    let ty = ColumnType::parse(&ty);
                    (name, ty)
                })
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&ColumnType> {
        self.by_name.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

/// A value that does not fit its column.
#[derive(Debug, PartialEq, Eq)]
pub struct Unfit {
    pub field: String,
    pub column_type: String,
}

/// Starts a `{"column": value, ...` row in `out` with the fields of `event`
/// that `columns` has (skipping `reserved`), then `computed`; [`finish_row`]
/// closes it. Returns the fields `columns` lacks and `elsewhere` does not
/// take. A value that does not fit its column leaves `out` as it was.
pub fn write_row(
    out: &mut Vec<u8>,
    event: &Map<String, Value>,
    columns: &Columns,
    elsewhere: &Columns,
    reserved: &[&str],
    computed: &[(&str, Value)],
) -> Result<Vec<String>, Unfit> {
    let start = out.len();
    let mut unmapped = Vec::new();
    out.push(b'{');
    let mut first = true;
    let mut field = |out: &mut Vec<u8>, name: &str, value: &Value| {
        if !first {
            out.push(b',');
        }
        first = false;
        // Column names are identifiers: no escaping needed.
        let _ = write!(out, "\"{name}\":");
        let _ = serde_json::to_writer(&mut *out, value);
    };
    for (name, value) in event {
        match columns.get(name) {
            Some(ty) if !reserved.contains(&name.as_str()) => match ty.convert(value) {
                Some(converted) => field(out, name, &converted),
                None => {
                    out.truncate(start);
                    return Err(Unfit {
                        field: name.clone(),
                        column_type: format!("{ty:?}"),
                    });
                }
            },
            _ if elsewhere.contains(name) => {}
            _ => unmapped.push(name.clone()),
        }
    }
    for (name, value) in computed {
        field(out, name, value);
    }
    Ok(unmapped)
}

/// Appends `more` fields to a row [`write_row`] started.
pub fn append_fields(out: &mut Vec<u8>, more: &[(&str, Value)]) {
    for (name, value) in more {
        if out.last() != Some(&b'{') {
            out.push(b',');
        }
        let _ = write!(out, "\"{name}\":");
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

/// Appends `more` fields to a row [`write_row`] started and closes it.
pub fn finish_row(out: &mut Vec<u8>, more: &[(&str, Value)]) {
    append_fields(out, more);
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_the_types_the_migrations_use() {
        assert_eq!(
            ColumnType::parse("Nullable(DateTime('UTC'))"),
            ColumnType::Nullable(Box::new(ColumnType::DateTime))
        );
        assert_eq!(
            ColumnType::parse("Array(Int64)"),
            ColumnType::Array(Box::new(ColumnType::Integer))
        );
        assert_eq!(ColumnType::parse("UInt8"), ColumnType::Integer);
        assert_eq!(
            ColumnType::parse("LowCardinality(String)"),
            ColumnType::String
        );
        assert!(matches!(
            ColumnType::parse("AggregateFunction(uniqExact, Int64)"),
            ColumnType::Other(_)
        ));
    }

    #[test]
    fn converts_values_to_what_their_column_holds() {
        let dt = ColumnType::parse("Nullable(DateTime('UTC'))");
        assert_eq!(
            dt.convert(&json!("2025-03-10T16:40:05Z")),
            Some(json!("2025-03-10 16:40:05"))
        );
        assert_eq!(
            dt.convert(&json!("2025-03-10T18:40:05+02:00")),
            Some(json!("2025-03-10 16:40:05"))
        );
        assert_eq!(
            dt.convert(&json!("2025-03-10 16:40:05")),
            Some(json!("2025-03-10 16:40:05"))
        );
        assert_eq!(dt.convert(&Value::Null), Some(Value::Null));
        assert_eq!(dt.convert(&json!("yesterday")), None);
        let flag = ColumnType::parse("Nullable(UInt8)");
        assert_eq!(flag.convert(&json!(true)), Some(json!(1)));
        assert_eq!(flag.convert(&json!(false)), Some(json!(0)));
        let int = ColumnType::parse("Int64");
        assert_eq!(int.convert(&json!(5.0)), Some(json!(5)));
        assert_eq!(int.convert(&json!(5.5)), None);
        let text = ColumnType::parse("Nullable(String)");
        assert_eq!(text.convert(&json!(false)), Some(json!("false")));
        let date = ColumnType::parse("Nullable(Date)");
        assert_eq!(
            date.convert(&json!("2025-04-30")),
            Some(json!("2025-04-30"))
        );
        assert_eq!(date.convert(&json!("2025-02-30")), None);
        let ids = ColumnType::parse("Array(Int64)");
        assert_eq!(ids.convert(&json!([1, 2])), Some(json!([1, 2])));
        assert_eq!(ids.convert(&json!(["x"])), None);
    }

    #[test]
    fn writes_known_fields_reports_unknown_ones_and_refuses_unfit_values() {
        let columns = Columns::new([
            ("deal_id".to_owned(), "Nullable(Int64)".to_owned()),
            (
                "deal_add_time".to_owned(),
                "Nullable(DateTime('UTC'))".to_owned(),
            ),
            ("event_date".to_owned(), "Date".to_owned()),
        ]);
        let pii = Columns::new([("contact_email".to_owned(), "Nullable(String)".to_owned())]);
        let event = json!({"deal_id": 7, "deal_add_time": "2025-02-03T10:15:00Z",
            "contact_email": "a@b.example", "mystery": 1, "event_date": "x"});
        let mut out = Vec::new();
        let unmapped = write_row(
            &mut out,
            event.as_object().expect("object"),
            &columns,
            &pii,
            &["event_date"],
            &[("event_date", json!("2025-02-03"))],
        )
        .expect("fits");
        finish_row(&mut out, &[("deal_title", json!("x"))]);
        assert_eq!(
            unmapped,
            vec!["event_date".to_owned(), "mystery".to_owned()]
        );
        let row: Value = serde_json::from_slice(&out).expect("one JSON line");
        assert_eq!(
            row,
            json!({"deal_id": 7, "deal_add_time": "2025-02-03 10:15:00", "event_date": "2025-02-03", "deal_title": "x"})
        );

        let bad = json!({"deal_id": "seven"});
        let mut out = b"previous\n".to_vec();
        let unfit = write_row(
            &mut out,
            bad.as_object().expect("o"),
            &columns,
            &pii,
            &[],
            &[],
        )
        .expect_err("a string is no deal id");
        assert_eq!(unfit.field, "deal_id");
        assert_eq!(out, b"previous\n", "a refused row leaves nothing behind");
    }
}
