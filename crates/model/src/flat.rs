//! Reading the fields of a flat enriched event strictly, for mappings: a
//! missing key is [`Field::Unknown`], `null` is [`Field::Null`], and a value
//! of the wrong kind is a [`MappingError`] naming the field, never a default.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::{Amount, CustomField, CustomValue, Field, Key, MappingError, Record, Timestamp};

/// The fields of one flat event.
#[derive(Debug, Clone, Copy)]
pub struct Flat<'a> {
    fields: &'a Map<String, Value>,
}

type Read<T> = Result<Field<T>, MappingError>;

impl<'a> Flat<'a> {
    pub fn new(fields: &'a Map<String, Value>) -> Flat<'a> {
        Flat { fields }
    }

    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.fields.get(key)
    }

    fn read<T>(&self, key: &str, convert: impl FnOnce(&'a Value) -> Result<T, String>) -> Read<T> {
        match self.fields.get(key) {
            None => Ok(Field::Unknown),
            Some(Value::Null) => Ok(Field::Null),
            Some(value) => convert(value)
                .map(Field::Value)
                .map_err(|reason| MappingError::new(key, reason)),
        }
    }

    /// An id: a JSON string verbatim, or an integer's exact digits. Floats,
    /// booleans and empty strings are refused.
    pub fn id(&self, key: &str) -> Read<String> {
        self.read(key, id_text)
    }

    /// Text; numbers and booleans are refused (a string field that holds one
    /// has changed shape).
    pub fn text(&self, key: &str) -> Read<String> {
        self.read(key, |value| match value {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("expected text, got {other}")),
        })
    }

    /// Text, treating the empty string as null (platforms that send `""` for unset).
    pub fn text_or_empty(&self, key: &str) -> Read<String> {
        Ok(match self.text(key)? {
            Field::Value(s) if s.is_empty() => Field::Null,
            other => other,
        })
    }

    /// A money amount, treating the empty string as null.
    pub fn amount_or_empty(&self, key: &str) -> Read<Amount> {
        match self.fields.get(key) {
            Some(Value::String(s)) if s.is_empty() => Ok(Field::Null),
            _ => self.amount(key),
        }
    }

    /// A date, treating the empty string as null (a cleared property).
    pub fn date_or_empty(&self, key: &str) -> Read<NaiveDate> {
        match self.fields.get(key) {
            Some(Value::String(s)) if s.is_empty() => Ok(Field::Null),
            _ => self.date(key),
        }
    }

    /// A date as the start of its day (UTC), treating the empty string as
    /// null: the time of platforms that date an event by its day.
    pub fn day_start_or_empty(&self, key: &str) -> Read<Timestamp> {
        Ok(match self.date_or_empty(key)? {
            Field::Value(date) => Field::Value(
                Timestamp::day_start(date).map_err(|reason| MappingError::new(key, reason))?,
            ),
            Field::Null => Field::Null,
            Field::Unknown => Field::Unknown,
        })
    }

    /// A number's text exactly as sent: a JSON number's digits, or a string.
    pub fn number_text(&self, key: &str) -> Read<String> {
        self.read(key, |value| match value {
            Value::Number(n) => Ok(n.to_string()),
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("expected a number, got {other}")),
        })
    }

    /// A time, treating the empty string as null (a cleared property).
    pub fn time_or_empty(&self, key: &str) -> Read<Timestamp> {
        match self.fields.get(key) {
            Some(Value::String(s)) if s.is_empty() => Ok(Field::Null),
            _ => self.time(key),
        }
    }

    /// A boolean: `true`/`false`, the strings `"true"`/`"false"` (HubSpot
    /// sends booleans as strings; "false" is not true), or 0/1.
    pub fn flag(&self, key: &str) -> Read<bool> {
        self.read(key, flag)
    }

    /// A number, or a string holding one.
    pub fn number(&self, key: &str) -> Read<f64> {
        self.read(key, |value| match value {
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("{s:?} is not a number")),
            other => Err(format!("expected a number, got {other}")),
        })
    }

    /// A money amount, from a number or decimal text.
    pub fn amount(&self, key: &str) -> Read<Amount> {
        self.read(key, |value| match value {
            Value::Number(n) => Amount::from_json_number(n),
            Value::String(s) => Amount::parse(s),
            other => Err(format!("expected an amount, got {other}")),
        })
    }

    /// A calendar date: `YYYY-MM-DD`, or the date part of a date-time.
    pub fn date(&self, key: &str) -> Read<NaiveDate> {
        self.read(key, |value| match value {
            Value::String(s) => parse_date(s),
            other => Err(format!("expected a date, got {other}")),
        })
    }

    /// A point in time: RFC 3339, `YYYY-MM-DD hh:mm:ss` (UTC), or epoch
    /// milliseconds (a number or digits, as HubSpot sends them).
    pub fn time(&self, key: &str) -> Read<Timestamp> {
        self.read(key, |value| match value {
            Value::String(s) => parse_time(s),
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| format!("{n} is not epoch milliseconds"))
                .and_then(|ms| Timestamp::from_seconds(ms.div_euclid(1000))),
            other => Err(format!("expected a time, got {other}")),
        })
    }

    /// An integer (counts, orders, microsecond versions).
    pub fn integer(&self, key: &str) -> Read<i64> {
        self.read(key, |value| match value {
            Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{s:?} is not an integer")),
            other => Err(format!("expected an integer, got {other}")),
        })
    }

    /// A list of strings.
    pub fn texts(&self, key: &str) -> Read<Vec<String>> {
        self.read(key, |value| match value {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!("expected text items, got {other}")),
                })
                .collect(),
            other => Err(format!("expected a list, got {other}")),
        })
    }

    /// A required value: a missing or null field is an error.
    pub fn required<T>(key: &str, field: Field<T>) -> Result<T, MappingError> {
        match field {
            Field::Value(value) => Ok(value),
            Field::Null => Err(MappingError::new(key, "is null")),
            Field::Unknown => Err(MappingError::new(key, "is missing")),
        }
    }
}

/// The custom fields a flat event carries (`custom_<key>` values and the
/// `custom_field_*` definitions, as `tributary_enrichment::custom_fields`
/// writes them), as records of the `record`'s `object` at `version`.
pub fn custom_fields(
    flat: &Flat<'_>,
    record: &Key,
    object: &str,
    version: i64,
) -> Result<Vec<Record>, MappingError> {
    let Field::Value(names) = flat.texts("custom_field_names")? else {
        return Ok(Vec::new());
    };
    let column = |key: &str| -> Result<Vec<String>, MappingError> {
        Ok(match flat.texts(key)? {
            Field::Value(values) => values,
            _ => Vec::new(),
        })
    };
    let labels = column("custom_field_labels")?;
    let types = column("custom_field_types")?;
    let options = column("custom_field_options")?;
    let mut records = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let value = match flat.text(&format!("custom_{name}"))? {
            Field::Value(value) => Some(value),
            Field::Null => None,
            Field::Unknown => continue,
        };
        records.push(Record::CustomValue(CustomValue {
            record: record.clone(),
            object: object.to_owned(),
            field_key: name.clone(),
            version,
            value,
        }));
        let field_options = options
            .iter()
            .filter_map(|option| {
                let mut parts = option.splitn(3, '\t');
                let (Some(field), Some(id), Some(label)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return None;
                };
                (field == name).then(|| (id.to_owned(), label.to_owned()))
            })
            .collect();
        records.push(Record::CustomField(CustomField {
            key: record.sibling(name.clone()),
            object: object.to_owned(),
            version,
            label: labels.get(i).cloned().unwrap_or_default(),
            field_type: types.get(i).cloned().unwrap_or_default(),
            options: field_options,
        }));
    }
    Ok(records)
}

/// An id's text: a string verbatim or an integer's digits.
pub fn id_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::String(_) => Err("an id may not be empty".into()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        other => Err(format!(
            "expected an id (a string or an integer), got {other}"
        )),
    }
}

/// A company's domain from its website as people type it:
/// `https://www.Acme.com/about` is `acme.com`.
pub fn domain_of_website(site: &str) -> String {
    let rest = site.split_once("://").map_or(site, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#', ':']).next().unwrap_or(rest);
    host.trim_start_matches("www.").to_ascii_lowercase()
}

/// A strict boolean (see [`Flat::flag`]).
pub fn flag(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        other => Err(format!("expected true or false, got {other}")),
    }
}

/// `YYYY-MM-DD`, or the date part of a longer date-time text.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let date = text
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| format!("{text:?} is not a date"))?;
    let seconds = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or(-1);
    // ClickHouse's Date covers the same range as its DateTime here.
    Timestamp::from_seconds(seconds)?;
    Ok(date)
}

/// RFC 3339 or `YYYY-MM-DD hh:mm:ss` (UTC), or epoch milliseconds as digits.
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = text
            .parse()
            .map_err(|_| format!("{text:?} is not a time"))?;
        return Timestamp::from_seconds(ms.div_euclid(1000));
    }
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
        .ok_or_else(|| format!("{text:?} is not a time"))?;
    Timestamp::from_seconds(parsed.timestamp())
}
