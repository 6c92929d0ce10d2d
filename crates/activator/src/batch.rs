//! One batch: the events accepted since the last load, as rows ready to
//! insert, the dead letters for the rest, and the offsets the load covers.
//!
//! De-duplication happens here, before anything is inserted: an event whose
//! `pipeline_event_id` the ledger lists is skipped, unless the loaded copy
//! is `partial` and this one `complete`, which is loaded again (its records
//! fill in what the partial copy did not know; the newer event-log row
//! replaces the old one). The ledger rows are written last.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tributary_envelope::{DeadLetter, DeadLetterError};
use tributary_model::{Key, Mapped, Table};

use crate::load::{EventKey, Stored};

/// The fields every enriched event carries about its own processing
/// (`pipeline_*`), whatever its source.
pub struct PipelineFields {
    pub event_id: String,
    pub tenant: String,
    pub source: String,
    pub complete: bool,
    pub missing: Vec<String>,
    pub warnings: Vec<String>,
    pub received_at_micro: i64,
    pub enriched_at_micro: i64,
}

impl PipelineFields {
    /// Reads them from a validated event (templates require them).
    pub fn read(fields: &Map<String, Value>) -> PipelineFields {
        let text = |key: &str| {
            fields
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let number = |key: &str| fields.get(key).and_then(Value::as_i64).unwrap_or_default();
        let texts = |key: &str| -> Vec<String> {
            fields
                .get(key)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        PipelineFields {
            event_id: text("pipeline_event_id"),
            tenant: text("pipeline_tenant"),
            source: text("pipeline_source"),
            complete: text("pipeline_enrichment_status") == "complete",
            missing: texts("pipeline_enrichment_missing"),
            warnings: texts("pipeline_warnings"),
            received_at_micro: number("pipeline_received_at_micro"),
            enriched_at_micro: number("pipeline_enriched_at_micro"),
        }
    }
}

/// What an `event_log` row is made of.
pub struct EventLogFields<'a> {
    pub event_time: DateTime<Utc>,
    pub pipeline: &'a PipelineFields,
    pub mapped: &'a Mapped,
    pub template_name: &'a str,
    pub template_version: u32,
    /// The enriched event as read from the topic.
    pub payload: &'a [u8],
}

/// The event's `event_log` row, open: [`Batch::rows`] adds `loaded_at_micro`.
pub fn event_log_row(fields: &EventLogFields<'_>) -> Vec<u8> {
    let pipeline = fields.pipeline;
    let mapped = fields.mapped;
    let row = json!({
        "event_date": fields.event_time.date_naive().to_string(),
        "tenant": pipeline.tenant,
        "source": pipeline.source,
        "account": mapped.account,
        "event_id": pipeline.event_id,
        "object": mapped.object,
        "remote_id": mapped.remote_id,
        "action": mapped.action,
        "version_micro": mapped.version.at_micro,
        "event_time": fields.event_time.format("%Y-%m-%d %H:%M:%S").to_string(),
        "template": fields.template_name,
        "template_version": fields.template_version,
        "enrichment_status": if pipeline.complete { "complete" } else { "partial" },
        "enrichment_missing": pipeline.missing,
        "warnings": pipeline.warnings,
        "records": mapped.records.len(),
        "received_at_micro": pipeline.received_at_micro,
        "enriched_at_micro": pipeline.enriched_at_micro,
        "payload": String::from_utf8_lossy(fields.payload),
    });
    let mut out = serde_json::to_vec(&row).unwrap_or_default();
    // Left open for the load time.
    out.pop();
    out
}

/// Where an accepted event was read, to dead-letter it if ClickHouse
/// refuses its rows.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub partition: i32,
    pub offset: i64,
    /// The message key.
    pub key: String,
    pub source: String,
}

/// An event that passed its template, mapped into rows.
#[derive(Clone)]
pub struct Accepted {
    pub key: EventKey,
    pub origin: Origin,
    pub complete: bool,
    pub enriched_at_micro: i64,
    pub received_at_micro: i64,
    pub template: String,
    /// The `event_log` row, open (see [`event_log_row`]).
    pub log_row: Vec<u8>,
    /// The canonical records' rows, by table (`JSONEachRow`).
    pub records: Vec<(Table, Vec<u8>)>,
    /// The entity records the rows change, by change table.
    pub touched: Vec<(Table, Key)>,
}

/// The rows to insert for one batch, after de-duplication.
#[derive(Default)]
pub struct Load {
    pub records: Vec<(Table, Vec<u8>)>,
    /// Entity records whose current rows the load must refresh, by change table.
    pub touched: BTreeMap<Table, BTreeSet<Key>>,
    pub event_log: Vec<u8>,
    pub ledger: Vec<u8>,
    /// (template, first copy) of each inserted event.
    pub inserted: Vec<(String, bool)>,
    pub received_at_micro: Vec<i64>,
    pub duplicates: usize,
}

#[derive(Default)]
pub struct Batch {
    accepted: Vec<Accepted>,
    /// Index in `accepted` of each event id's best copy in this batch.
    by_event_id: HashMap<String, usize>,
    pub dead_letters: Vec<(String, DeadLetter)>,
    /// The highest offset read per partition.
    pub offsets: HashMap<i32, i64>,
    /// Messages in the batch (accepted, duplicates within it, dead letters).
    pub messages: usize,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    pub fn read(&mut self, partition: i32, offset: i64) {
        self.messages += 1;
        let highest = self.offsets.entry(partition).or_insert(offset);
        *highest = (*highest).max(offset);
    }

    pub fn accept(&mut self, event: Accepted) {
        match self.by_event_id.get(&event.key.event_id) {
            Some(&i) => {
                // The same event twice in one batch: keep the better copy.
                let kept = &self.accepted[i];
                if (event.complete, event.enriched_at_micro)
                    > (kept.complete, kept.enriched_at_micro)
                {
                    self.accepted[i] = event;
                }
            }
            None => {
                self.by_event_id
                    .insert(event.key.event_id.clone(), self.accepted.len());
                self.accepted.push(event);
            }
        }
    }

    pub fn dead_letter(&mut self, key: String, letter: DeadLetter) {
        self.dead_letters.push((key, letter));
    }

    pub fn keys(&self) -> Vec<EventKey> {
        self.accepted.iter().map(|a| a.key.clone()).collect()
    }

    /// Accepted events (one per event id).
    pub fn accepted_len(&self) -> usize {
        self.accepted.len()
    }

    /// A batch of the accepted events in `range` alone: no dead letters, no
    /// offsets (the whole batch commits them).
    pub fn subset(&self, range: std::ops::Range<usize>) -> Batch {
        let mut part = Batch::default();
        for event in &self.accepted[range] {
            part.messages += 1;
            part.accept(event.clone());
        }
        part
    }

    /// The dead letter of the batch's only accepted event, whose rows
    /// ClickHouse refused with `error`. Its original is referred to on the
    /// enriched topic (`topic`), not copied: the rows hold it already.
    pub fn refused(&self, topic: &str, error: &str) -> Option<(String, DeadLetter)> {
        let [event] = &self.accepted[..] else {
            return None;
        };
        let letter = DeadLetter {
            stage: crate::STAGE.into(),
            reason: "clickhouse_refused".into(),
            errors: vec![DeadLetterError::new("", error)],
            event_id: Some(event.key.event_id.clone()),
            tenant: Some(event.key.tenant.clone()),
            source: Some(event.origin.source.clone()),
            original_topic: topic.into(),
            original_partition: event.origin.partition,
            original_offset: event.origin.offset,
            failed_at: Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            original: String::new(),
            original_by_reference: true,
        };
        Some((event.origin.key.clone(), letter))
    }

    /// The rows to insert, given what is stored already.
    pub fn rows(&self, stored: &HashMap<String, Stored>, loaded_at_micro: i64) -> Load {
        let mut load = Load::default();
        for event in &self.accepted {
            let first_copy = match stored.get(&event.key.event_id) {
                None => true,
                Some(Stored::Partial) if event.complete => false,
                Some(_) => {
                    load.duplicates += 1;
                    continue;
                }
            };
            for (table, rows) in &event.records {
                match load.records.iter_mut().find(|(t, _)| t == table) {
                    Some((_, all)) => all.extend_from_slice(rows),
                    None => load.records.push((*table, rows.clone())),
                }
            }
            for (table, key) in &event.touched {
                load.touched.entry(*table).or_default().insert(key.clone());
            }
            load.event_log.extend_from_slice(&event.log_row);
            let _ = writeln!(load.event_log, ",\"loaded_at_micro\":{loaded_at_micro}}}");
            let _ = serde_json::to_writer(
                &mut load.ledger,
                &json!({
                    "event_date": event.key.date.to_string(),
                    "tenant": event.key.tenant,
                    "event_id": event.key.event_id,
                    "complete": u8::from(event.complete),
                    "loaded_at_micro": loaded_at_micro,
                }),
            );
            load.ledger.push(b'\n');
            load.inserted.push((event.template.clone(), first_copy));
            load.received_at_micro.push(event.received_at_micro);
        }
        load.duplicates += self.messages - self.dead_letters.len() - self.accepted.len();
        load
    }
}

/// A dead-letter record for an enriched-topic message.
#[allow(clippy::too_many_arguments)]
pub fn letter(
    reason: &str,
    errors: Vec<DeadLetterError>,
    event: Option<&Value>,
    topic: &str,
    partition: i32,
    offset: i64,
    payload: &[u8],
    max_message_bytes: usize,
) -> DeadLetter {
    let text = |key: &str| {
        event
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    DeadLetter {
        stage: crate::STAGE.into(),
        reason: reason.into(),
        errors,
        event_id: text("pipeline_event_id"),
        tenant: text("pipeline_tenant"),
        source: text("pipeline_source"),
        original_topic: topic.into(),
        original_partition: partition,
        original_offset: offset,
        failed_at: Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        original: String::new(),
        original_by_reference: false,
    }
    .with_original(payload, max_message_bytes)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn accepted(id: &str, complete: bool, enriched_at: i64) -> Accepted {
        Accepted {
            key: EventKey {
                date: NaiveDate::from_ymd_opt(2025, 3, 10).expect("date"),
                tenant: "acme".into(),
                event_id: id.into(),
            },
            origin: Origin::default(),
            complete,
            enriched_at_micro: enriched_at,
            received_at_micro: 1,
            template: "pipedrive-sales".into(),
            log_row: format!("{{\"event_id\":\"{id}\",\"n\":{enriched_at}").into_bytes(),
            records: vec![(
                Table::DealChanges,
                format!("{{\"id\":\"{id}\"}}\n").into_bytes(),
            )],
            touched: vec![(
                Table::DealChanges,
                Key {
                    id: id.to_string(),
                    ..Key::default()
                },
            )],
        }
    }

    fn rows(load: &Load) -> Vec<Value> {
        load.event_log
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("json"))
            .collect()
    }

    #[test]
    fn stored_events_are_skipped_and_a_complete_copy_replaces_a_partial_one() {
        let mut batch = Batch::default();
        for (offset, event) in [
            accepted("new", true, 1),
            accepted("stored", true, 1),
            accepted("was-partial", true, 1),
            accepted("still-partial", false, 1),
        ]
        .into_iter()
        .enumerate()
        {
            batch.read(0, offset as i64);
            batch.accept(event);
        }
        let stored = HashMap::from([
            ("stored".to_owned(), Stored::Complete),
            ("was-partial".to_owned(), Stored::Partial),
            ("still-partial".to_owned(), Stored::Partial),
        ]);
        let load = batch.rows(&stored, 99);
        let rows = rows(&load);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["event_id"], "new");
        assert_eq!(rows[0]["loaded_at_micro"], 99);
        assert_eq!(rows[1]["event_id"], "was-partial");
        assert_eq!(load.inserted[1], ("pipedrive-sales".to_owned(), false));
        assert_eq!(
            load.records,
            vec![(
                Table::DealChanges,
                b"{\"id\":\"new\"}\n{\"id\":\"was-partial\"}\n".to_vec()
            )],
            "the records of both, in one insert"
        );
        assert_eq!(load.duplicates, 2);
        assert_eq!(batch.offsets[&0], 3);
    }

    #[test]
    fn the_same_event_twice_in_a_batch_is_loaded_once_as_its_best_copy() {
        let mut batch = Batch::default();
        for (offset, event) in [
            accepted("e", false, 5),
            accepted("e", true, 3),
            accepted("e", false, 9),
        ]
        .into_iter()
        .enumerate()
        {
            batch.read(2, offset as i64);
            batch.accept(event);
        }
        let load = batch.rows(&HashMap::new(), 1);
        let rows = rows(&load);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0]["n"], 3,
            "the complete copy wins over later partial ones"
        );
        assert_eq!(load.duplicates, 2);
    }
}
