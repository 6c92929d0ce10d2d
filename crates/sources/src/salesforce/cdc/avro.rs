//! A change event's Avro payload, decoded with its schema, into what
//! changed.
//!
//! Over the Pub/Sub API every field of the object is in the payload and an
//! unchanged one is null, so the nulls say nothing by themselves: the
//! header's bitmaps do. `changedFields`, `nulledFields` and `diffFields` are
//! lists of hexadecimal bitmaps over the positions of the schema's fields
//! (bit 0, the lowest, is the first field): `"0x650004E0"` for the top-level
//! fields, `"4-0x10"` for the fields of the compound field at position 4.

use std::collections::BTreeMap;

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::types::Value as Avro;
use serde_json::{Map, Value, json};

/// The `ChangeEventHeader` field, and the record a change is about.
pub const HEADER_FIELD: &str = "ChangeEventHeader";

/// The largest event the Pub/Sub API delivers (1 MB), and so the longest
/// string, byte run or array a payload can hold. The Avro reader sizes
/// arrays from the count the payload claims before reading them: without
/// this bound a few corrupt bytes ask for gigabytes.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// A decoded change event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The header's plain fields (`entityName`, `recordIds`, `changeType`,
    /// `commitTimestamp`...), the bitmaps left out.
    pub header: Map<String, Value>,
    /// Field names (`Name.FirstName` for a compound field's part).
    pub changed: Vec<String>,
    pub nulled: Vec<String>,
    pub diff: Vec<String>,
    /// What the event says the record's fields are now: for a creation or
    /// an undeletion every field with a value; otherwise the changed fields
    /// with their values and the nulled ones as null. A field sent as a
    /// diff is left out: its value is not whole.
    pub fields: Map<String, Value>,
}

impl Change {
    pub fn change_type(&self) -> &str {
        self.header
            .get("changeType")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn entity_name(&self) -> &str {
        self.header
            .get("entityName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn record_ids(&self) -> Vec<String> {
        self.header
            .get("recordIds")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `commitTimestamp`, in milliseconds since the epoch.
    pub fn commit_millis(&self) -> Option<i64> {
        self.header.get("commitTimestamp").and_then(Value::as_i64)
    }
}

/// Decodes `payload` with `schema`.
pub fn decode(schema: &Schema, payload: &[u8]) -> Result<Change, String> {
    let Schema::Record(record) = schema else {
        return Err("the event's schema is not a record".into());
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "the payload is {} bytes, over the {MAX_PAYLOAD_BYTES} an event can have",
            payload.len()
        ));
    }
    // Set once for the process; every decode here shares the bound.
    apache_avro::util::max_allocation_bytes(MAX_PAYLOAD_BYTES);
    let value = apache_avro::from_avro_datum(schema, &mut &payload[..], None)
        .map_err(|err| format!("the payload does not fit its schema: {err}"))?;
    let Avro::Record(values) = value else {
        return Err("the payload is not a record".into());
    };
    let named = named_records(schema);
    let values: BTreeMap<&str, &Avro> = values.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let header = match values.get(HEADER_FIELD).map(|v| unwrap_union(v)) {
        Some(Avro::Record(fields)) => fields,
        _ => return Err(format!("the payload has no {HEADER_FIELD}")),
    };
    let mut plain = Map::new();
    let mut bitmaps: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in header {
        match name.as_str() {
            "changedFields" | "nulledFields" | "diffFields" => {
                let list = match unwrap_union(value) {
                    Avro::Array(items) => items
                        .iter()
                        .filter_map(|item| match unwrap_union(item) {
                            Avro::String(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                bitmaps.insert(name.as_str(), list);
            }
            _ => {
                plain.insert(name.clone(), to_json(value));
            }
        }
    }
    let names = |key: &str| -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for bitmap in bitmaps.get(key).into_iter().flatten() {
            out.extend(field_names(record, &named, bitmap).map_err(|e| format!("{key}: {e}"))?);
        }
        Ok(out)
    };
    let (changed, nulled, diff) = (
        names("changedFields")?,
        names("nulledFields")?,
        names("diffFields")?,
    );
    let change_type = plain
        .get("changeType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut fields = Map::new();
    match change_type.as_str() {
        "CREATE" | "UNDELETE" => {
            for (name, value) in &values {
                if *name != HEADER_FIELD {
                    put_present(&mut fields, name, value);
                }
            }
        }
        _ => {
            for name in &changed {
                if diff.contains(name) {
                    continue;
                }
                if let Some(value) = lookup(&values, name) {
                    fields.insert(name.clone(), to_json(value));
                }
            }
            for name in &nulled {
                fields.insert(name.clone(), Value::Null);
            }
        }
    }
    Ok(Change {
        header: plain,
        changed,
        nulled,
        diff,
        fields,
    })
}

/// Every field with a value, a compound field's parts as `Parent.Part`.
fn put_present(fields: &mut Map<String, Value>, name: &str, value: &Avro) {
    match unwrap_union(value) {
        Avro::Null => {}
        Avro::Record(parts) => {
            for (part, value) in parts {
                put_present(fields, &format!("{name}.{part}"), value);
            }
        }
        other => {
            fields.insert(name.to_owned(), to_json(other));
        }
    }
}

/// A field's value by its (possibly dotted) name.
fn lookup<'a>(values: &BTreeMap<&str, &'a Avro>, name: &str) -> Option<&'a Avro> {
    let mut parts = name.split('.');
    let mut value = unwrap_union(values.get(parts.next()?)?);
    for part in parts {
        let Avro::Record(fields) = value else {
            return None;
        };
        value = unwrap_union(&fields.iter().find(|(n, _)| n == part)?.1);
    }
    Some(value)
}

fn unwrap_union(value: &Avro) -> &Avro {
    match value {
        Avro::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

/// Every named record in the schema, so references can be followed.
fn named_records(schema: &Schema) -> BTreeMap<String, RecordSchema> {
    fn walk(schema: &Schema, out: &mut BTreeMap<String, RecordSchema>) {
        match schema {
            Schema::Record(record)
                if out
                    .insert(record.name.name.clone(), record.clone())
                    .is_none() =>
            {
                for field in &record.fields {
                    walk(&field.schema, out);
                }
            }
            Schema::Union(union) => union.variants().iter().for_each(|v| walk(v, out)),
            Schema::Array(array) => walk(&array.items, out),
            Schema::Map(map) => walk(&map.types, out),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(schema, &mut out);
    out
}

/// The record a (possibly optional, possibly referenced) field holds.
fn record_of<'a>(
    schema: &'a Schema,
    named: &'a BTreeMap<String, RecordSchema>,
) -> Option<&'a RecordSchema> {
    match schema {
        Schema::Record(record) => Some(record),
        Schema::Ref { name } => named.get(&name.name),
        Schema::Union(union) => union.variants().iter().find_map(|v| record_of(v, named)),
        _ => None,
    }
}

/// The positions whose bits are set in a hexadecimal bitmap (`0x...`), bit
/// 0 being the lowest.
pub fn set_bits(hex: &str) -> Result<Vec<usize>, String> {
    let digits = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .ok_or_else(|| format!("{hex:?} is not a 0x bitmap"))?;
    let mut bits = Vec::new();
    for (from_end, digit) in digits.chars().rev().enumerate() {
        let nibble = digit
            .to_digit(16)
            .ok_or_else(|| format!("{hex:?} is not hexadecimal"))?;
        for bit in 0..4 {
            if nibble & (1 << bit) != 0 {
                bits.push(from_end * 4 + bit);
            }
        }
    }
    Ok(bits)
}

/// The field names a bitmap entry names: `0x...` over the top-level fields,
/// `N-0x...` over the parts of the compound field at position N.
fn field_names(
    record: &RecordSchema,
    named: &BTreeMap<String, RecordSchema>,
    entry: &str,
) -> Result<Vec<String>, String> {
    let field_at = |fields: &[apache_avro::schema::RecordField], position: usize| {
        fields.get(position).map(|f| f.name.clone()).ok_or_else(|| {
            format!("{entry:?} names field {position}, which the schema does not have")
        })
    };
    match entry.split_once('-') {
        None => set_bits(entry)?
            .into_iter()
            .map(|position| field_at(&record.fields, position))
            .collect(),
        Some((parent, bitmap)) => {
            let parent: usize = parent
                .parse()
                .map_err(|_| format!("{entry:?}: {parent:?} is not a field position"))?;
            let parent_field = record.fields.get(parent).ok_or_else(|| {
                format!("{entry:?} names field {parent}, which the schema does not have")
            })?;
            let compound = record_of(&parent_field.schema, named)
                .ok_or_else(|| format!("{entry:?}: field {} is not compound", parent_field.name))?;
            set_bits(bitmap)?
                .into_iter()
                .map(|position| {
                    field_at(&compound.fields, position)
                        .map(|part| format!("{}.{part}", parent_field.name))
                })
                .collect()
        }
    }
}

/// An Avro value as JSON: dates as `YYYY-MM-DD`, timestamps as epoch
/// milliseconds, bytes as base64.
pub fn to_json(value: &Avro) -> Value {
    use base64::Engine;
    match value {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => json!(b),
        Avro::Int(n) => json!(n),
        Avro::Long(n) => json!(n),
        Avro::Float(n) => json!(n),
        Avro::Double(n) => json!(n),
        Avro::String(s) | Avro::Enum(_, s) => json!(s),
        Avro::Bytes(b) | Avro::Fixed(_, b) => {
            json!(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Avro::Union(_, inner) => to_json(inner),
        Avro::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Avro::Map(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Avro::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        Avro::Date(days) => chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0)
            .map(|t| json!(t.format("%Y-%m-%d").to_string()))
            .unwrap_or(Value::Null),
        Avro::TimestampMillis(ms) | Avro::LocalTimestampMillis(ms) => json!(ms),
        Avro::TimestampMicros(us) | Avro::LocalTimestampMicros(us) => json!(us / 1_000),
        other => json!(format!("{other:?}")),
    }
}
