//! The activator's reading of an enriched event: arbitrary bytes as JSON,
//! checked against the shipped dashboard templates and, when valid, mapped
//! into the canonical model and written as `JSONEachRow` rows, as
//! `Activator::judge` does. Every row written must be one JSON object.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tributary_activator::batch::{self, EventLogFields, PipelineFields};
use tributary_activator::templates::{Rejection, Templates};

static TEMPLATES: LazyLock<Templates> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/templates");
    Templates::load(&dir).expect("the shipped templates compile")
});

fuzz_target!(|data: &[u8]| {
    let Ok(event @ Value::Object(_)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let template = match TEMPLATES.check(&event) {
        Ok(template) => template,
        Err(Rejection::NoTemplate(message)) => {
            assert!(!message.is_empty());
            return;
        }
        Err(Rejection::Invalid(errors)) => {
            assert!(!errors.is_empty(), "an invalid event has its errors");
            return;
        }
    };
    let Value::Object(fields) = &event else {
        unreachable!()
    };
    let pipeline = PipelineFields::read(fields);
    let Some(mapping) = tributary_sources::mapping(&pipeline.source) else {
        return;
    };
    let context = tributary_model::Context {
        tenant: &pipeline.tenant,
        source: &pipeline.source,
        received_at_micro: pipeline.received_at_micro,
        missing: &pipeline.missing,
    };
    let Ok(mapped) = mapping.map(&context, fields) else {
        return;
    };
    for record in &mapped.records {
        let mut row = Vec::new();
        record.write_row(&mut row);
        assert_eq!(row.last(), Some(&b'\n'), "a JSONEachRow line");
        let line = &row[..row.len() - 1];
        assert!(!line.contains(&b'\n'), "one line per row");
        match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(_)) => {}
            other => panic!(
                "{:?} row is not a JSON object: {other:?}\n{}",
                record.table(),
                String::from_utf8_lossy(line)
            ),
        }
        let _ = record.entity_key();
    }
    let Some(event_time) =
        DateTime::from_timestamp_micros(mapped.version.at_micro).filter(|t| t.timestamp() >= 0)
    else {
        return;
    };
    let mut log_row = batch::event_log_row(&EventLogFields {
        event_time,
        pipeline: &pipeline,
        mapped: &mapped,
        template_name: &template.name,
        template_version: template.version,
        payload: data,
    });
    log_row.extend_from_slice(b",\"loaded_at_micro\":1}");
    assert!(
        serde_json::from_slice::<Value>(&log_row).is_ok_and(|row| row.is_object()),
        "the event_log row is a JSON object"
    );
});
