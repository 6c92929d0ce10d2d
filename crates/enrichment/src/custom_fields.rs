//! Custom fields in a flat enriched event, the same for every platform:
//! each value as `custom_<field key>` (text, or null), and the definitions
//! of the fields the event carries as parallel arrays `custom_field_names`,
//! `custom_field_labels`, `custom_field_types`, with enumeration options in
//! `custom_field_options` as `key<TAB>option id<TAB>label`.

use serde_json::Value;

use crate::flatten::FlatRecord;

/// One custom field's definition.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomFieldDefinition<'a> {
    /// The platform's stable key (never the label).
    pub key: &'a str,
    pub label: &'a str,
    pub field_type: &'a str,
    /// (option id, label).
    pub options: Vec<(String, String)>,
}

/// A custom value as text: strings as they are, numbers and booleans in
/// JSON, arrays (multi-select option ids) comma-joined, objects (a monetary
/// value with its currency, an address) as JSON.
pub fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(value_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Some(other.to_string()),
    }
}

/// Puts each field's value and the definitions of those fields.
pub fn put_custom_fields<'a>(
    record: &mut FlatRecord,
    fields: impl IntoIterator<Item = (CustomFieldDefinition<'a>, Option<String>)>,
) {
    let mut names = Vec::new();
    let mut labels = Vec::new();
    let mut types = Vec::new();
    let mut options = Vec::new();
    for (definition, value) in fields {
        record.put(format!("custom_{}", definition.key), value);
        names.push(definition.key.to_owned());
        labels.push(definition.label.to_owned());
        types.push(definition.field_type.to_owned());
        options.extend(
            definition
                .options
                .iter()
                .map(|(id, label)| format!("{}\t{id}\t{label}", definition.key)),
        );
    }
    record.put("custom_field_names", names);
    record.put("custom_field_labels", labels);
    record.put("custom_field_types", types);
    record.put("custom_field_options", options);
}
