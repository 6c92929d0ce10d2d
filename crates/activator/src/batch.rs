//! One batch: the events accepted since the last load, as rows ready to
//! insert, the dead letters for the rest, and the offsets the load covers.
//!
//! De-duplication happens here, before anything is inserted (and so before
//! any materialized view aggregates it): an event whose `pipeline_event_id`
//! the ledger lists is skipped, unless the loaded copy is `partial` and this
//! one `complete`, which is inserted as a completion
//! (`pipeline_first_copy = 0`) that additive views ignore. The ledger rows
//! are written only after the events insert succeeded.

use std::collections::HashMap;

use serde_json::{Value, json};
use tributary_envelope::{DeadLetter, DeadLetterError};

use crate::load::{EventKey, Stored};
use crate::rows::finish_row;

/// An event that passed its template, converted to rows.
pub struct Accepted {
    pub key: EventKey,
    pub complete: bool,
    pub enriched_at_micro: i64,
    pub received_at_micro: i64,
    pub template: String,
    /// The `events` row, open: [`finish_row`] adds what is known at load time.
    pub event_row: Vec<u8>,
    /// The `contacts` row, when the event names a contact.
    pub contact_row: Option<Vec<u8>>,
}

/// The rows to insert for one batch, after de-duplication.
#[derive(Default)]
pub struct Load {
    pub events: Vec<u8>,
    pub contacts: Vec<u8>,
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
            load.events.extend_from_slice(&event.event_row);
            finish_row(
                &mut load.events,
                &[
                    ("pipeline_loaded_at_micro", json!(loaded_at_micro)),
                    ("pipeline_first_copy", json!(u8::from(first_copy))),
                ],
            );
            let _ = serde_json::to_writer(
                &mut load.ledger,
                &json!({
                    "event_date": event.key.date.to_string(),
                    "pipeline_tenant": event.key.tenant,
                    "pipeline_event_id": event.key.event_id,
                    "complete": u8::from(event.complete),
                    "loaded_at_micro": loaded_at_micro,
                }),
            );
            load.ledger.push(b'\n');
            if let Some(contact) = &event.contact_row {
                load.contacts.extend_from_slice(contact);
            }
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
        failed_at: chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
        original: DeadLetter::encode_original(payload),
    }
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
            complete,
            enriched_at_micro: enriched_at,
            received_at_micro: 1,
            template: "pipedrive-sales".into(),
            event_row: format!("{{\"pipeline_event_id\":\"{id}\",\"n\":{enriched_at}").into_bytes(),
            contact_row: None,
        }
    }

    fn rows(load: &Load) -> Vec<Value> {
        load.events
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
        assert_eq!(rows[0]["pipeline_event_id"], "new");
        assert_eq!(rows[0]["pipeline_first_copy"], 1);
        assert_eq!(rows[0]["pipeline_loaded_at_micro"], 99);
        assert_eq!(rows[1]["pipeline_event_id"], "was-partial");
        assert_eq!(rows[1]["pipeline_first_copy"], 0);
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
