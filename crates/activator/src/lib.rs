//! The activator: enriched events in, dashboard rows out.
//!
//! It consumes the enriched topic in a consumer group, validates each event
//! against the dashboard template its source and object feed, converts it to
//! rows and loads batches into ClickHouse (a row count or an age, whichever
//! comes first). Each batch is de-duplicated on `pipeline_event_id` against
//! what is stored before anything is inserted, so materialized views never
//! aggregate an event twice. Offsets are committed only after ClickHouse has
//! confirmed the insert and the batch's dead letters are stored; a
//! ClickHouse outage pauses loading with backoff, never drops a batch.

pub mod batch;
pub mod config;
mod consume;
mod internal_events;
pub mod load;
pub mod rows;
pub mod templates;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, watch};
use tributary_envelope::{DeadLetter, DeadLetterError};
use tributary_kafka::{EventProducer, TopicAdmin};
use tributary_telemetry::{ReadinessCheck, ops_router};

pub use config::{ActivatorConfig, ActivatorSettings};

use crate::batch::{Accepted, Batch, letter};
use crate::load::{ClickHouse, EventKey};
use crate::rows::write_row;
use crate::templates::{Rejection, Templates};

/// The stage name in dead-letter records.
pub const STAGE: &str = "activator";

/// Columns the activator fills itself; an event's own field of that name is
/// not copied (it is listed in `pipeline_unmapped_fields`).
const COMPUTED: &[&str] = &[
    "event_time",
    "event_date",
    "pipeline_template",
    "pipeline_template_version",
    "pipeline_loaded_at_micro",
    "pipeline_first_copy",
    "pipeline_unmapped_fields",
];

/// A message read from the enriched topic.
pub struct Incoming<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: &'a [u8],
}

/// What becomes of one message.
pub enum Verdict {
    Accepted(Box<Accepted>),
    DeadLetter(Box<DeadLetter>),
}

pub struct Activator {
    pub config: ActivatorConfig,
    templates: Templates,
    producer: Arc<EventProducer>,
    clickhouse: OnceCell<ClickHouse>,
}

impl Activator {
    /// Loads and compiles the templates and builds the producer (no network yet).
    pub fn new(config: ActivatorConfig) -> anyhow::Result<Self> {
        let templates = Templates::load(&config.activator.templates_dir)?;
        for (name, version) in templates.names() {
            tracing::info!(template = name, version, "template compiled");
        }
        let producer =
            Arc::new(EventProducer::new(&config.kafka).context("creating the kafka producer")?);
        Ok(Activator {
            config,
            templates,
            producer,
            clickhouse: OnceCell::new(),
        })
    }

    /// The first day of the oldest month kept, when retention is on.
    fn first_kept_day(&self, now: DateTime<Utc>) -> Option<NaiveDate> {
        let months = self.config.activator.retention_months;
        (months > 0).then(|| {
            let this_month = now.date_naive().with_day(1).unwrap_or(now.date_naive());
            this_month
                .checked_sub_months(Months::new(months))
                .unwrap_or(this_month)
        })
    }

    /// Validates and converts one message, against the tables' layout.
    pub fn judge(&self, clickhouse: &ClickHouse, incoming: &Incoming<'_>) -> Verdict {
        internal_events::received();
        let dead = |reason: &'static str, errors: Vec<DeadLetterError>, event: Option<&Value>| {
            internal_events::dead_lettered(reason);
            Verdict::DeadLetter(Box::new(letter(
                reason,
                errors,
                event,
                incoming.topic,
                incoming.partition,
                incoming.offset,
                incoming.payload,
            )))
        };
        let event: Value = match serde_json::from_slice(incoming.payload) {
            Ok(event @ Value::Object(_)) => event,
            Ok(_) => {
                return dead(
                    "invalid_json",
                    vec![DeadLetterError::new("", "not a JSON object")],
                    None,
                );
            }
            Err(err) => {
                return dead(
                    "invalid_json",
                    vec![DeadLetterError::new("", err.to_string())],
                    None,
                );
            }
        };
        let template = match self.templates.check(&event) {
            Ok(template) => template,
            Err(Rejection::NoTemplate(message)) => {
                return dead(
                    "no_template",
                    vec![DeadLetterError::new("", message)],
                    Some(&event),
                );
            }
            Err(Rejection::Invalid(errors)) => {
                return dead("schema_validation", errors, Some(&event));
            }
        };
        let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or_default();
        let number = |key: &str| event.get(key).and_then(Value::as_i64).unwrap_or_default();
        // Every template requires these, so they are present here.
        let Some(event_time) = DateTime::from_timestamp_micros(number("event_timestamp_micro"))
        else {
            return dead(
                "schema_validation",
                vec![DeadLetterError::new(
                    "/event_timestamp_micro",
                    "not a representable time",
                )],
                Some(&event),
            );
        };
        if let Some(first_kept) = self.first_kept_day(Utc::now())
            && event_time.date_naive() < first_kept
        {
            return dead(
                "beyond_retention",
                vec![DeadLetterError::new(
                    "/event_timestamp_micro",
                    format!("the event is from before {first_kept}, the oldest day kept"),
                )],
                Some(&event),
            );
        }
        let Some(fields) = event.as_object() else {
            unreachable!("checked to be an object above")
        };
        let mut event_row = Vec::with_capacity(incoming.payload.len());
        let computed = [
            (
                "event_time",
                json!(event_time.format("%Y-%m-%d %H:%M:%S").to_string()),
            ),
            ("event_date", json!(event_time.date_naive().to_string())),
            ("pipeline_template", json!(template.name)),
            ("pipeline_template_version", json!(template.version)),
        ];
        let unmapped = match write_row(
            &mut event_row,
            fields,
            &clickhouse.events,
            &clickhouse.contacts,
            COMPUTED,
            &computed,
        ) {
            Ok(unmapped) => unmapped,
            Err(unfit) => {
                return dead(
                    "unloadable",
                    vec![DeadLetterError::new(
                        format!("/{}", unfit.field),
                        format!("the value does not fit column type {}", unfit.column_type),
                    )],
                    Some(&event),
                );
            }
        };
        if !unmapped.is_empty() {
            internal_events::unmapped_fields(unmapped.len());
        }
        // Left open: the load adds the fields known only then.
        rows::append_fields(
            &mut event_row,
            &[("pipeline_unmapped_fields", json!(unmapped))],
        );
        let contact_row = match self.contact_row(clickhouse, &event) {
            Ok(row) => row,
            Err(unfit) => {
                return dead(
                    "unloadable",
                    vec![DeadLetterError::new(
                        format!("/{}", unfit.field),
                        format!("the value does not fit column type {}", unfit.column_type),
                    )],
                    Some(&event),
                );
            }
        };
        Verdict::Accepted(Box::new(Accepted {
            key: EventKey {
                date: event_time.date_naive(),
                tenant: text("pipeline_tenant").to_owned(),
                event_id: text("pipeline_event_id").to_owned(),
            },
            complete: text("pipeline_enrichment_status") == "complete",
            enriched_at_micro: number("pipeline_enriched_at_micro"),
            received_at_micro: number("pipeline_received_at_micro"),
            template: template.name.clone(),
            event_row,
            contact_row,
        }))
    }

    /// The contact's PII fields, for the PII database, when the event has a
    /// contact and any of them.
    fn contact_row(
        &self,
        clickhouse: &ClickHouse,
        event: &Value,
    ) -> Result<Option<Vec<u8>>, rows::Unfit> {
        let Some(fields) = event.as_object() else {
            return Ok(None);
        };
        let has_contact = fields.get("contact_id").is_some_and(Value::is_i64);
        let pii: serde_json::Map<String, Value> = fields
            .iter()
            .filter(|(name, _)| {
                clickhouse.contacts.contains(name) && !clickhouse.events.contains(name)
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if !has_contact || pii.is_empty() {
            return Ok(None);
        }
        let keys = [
            "pipeline_tenant",
            "contact_id",
            "event_timestamp_micro",
            "pipeline_event_id",
        ];
        let mut row = Vec::new();
        let computed: Vec<(&str, Value)> = keys
            .iter()
            .map(|k| (*k, fields.get(*k).cloned().unwrap_or(Value::Null)))
            .collect();
        write_row(
            &mut row,
            &pii,
            &clickhouse.contacts,
            &rows::Columns::default(),
            &keys,
            &computed,
        )?;
        rows::finish_row(&mut row, &[]);
        Ok(Some(row))
    }

    /// Loads one batch: de-duplicates it against the ledger, inserts contacts,
    /// events and ledger rows, then stores its dead letters. Returns the
    /// `events` rows inserted (JSONEachRow). On failure, says what failed
    /// (`clickhouse` or `dead_letter`); retrying is safe.
    pub async fn load_batch(
        &self,
        clickhouse: &ClickHouse,
        batch: &Batch,
    ) -> Result<bytes::Bytes, (&'static str, anyhow::Error)> {
        let started = Instant::now();
        let stored = clickhouse
            .stored(&batch.keys())
            .await
            .map_err(|e| ("clickhouse", e.into()))?;
        let now = Utc::now().timestamp_micros();
        let rows = batch.rows(&stored, now);
        let database = &clickhouse.settings.database;
        // Contacts first: the events insert is what marks the batch as stored.
        clickhouse
            .insert(
                &clickhouse.settings.pii_database(),
                load::CONTACTS,
                rows.contacts.into(),
            )
            .await
            .map_err(|e| ("clickhouse", e.into()))?;
        let events = bytes::Bytes::from(rows.events);
        clickhouse
            .insert(database, load::EVENTS, events.clone())
            .await
            .map_err(|e| ("clickhouse", e.into()))?;
        // Only now, with every view fed, are these events loaded.
        clickhouse
            .insert(database, load::LEDGER, rows.ledger.into())
            .await
            .map_err(|e| ("clickhouse", e.into()))?;
        for (template, first_copy) in &rows.inserted {
            internal_events::loaded(template, *first_copy);
        }
        for _ in 0..rows.duplicates {
            internal_events::duplicate();
        }
        for received_at in &rows.received_at_micro {
            if let Ok(lag) = u64::try_from(now - received_at) {
                internal_events::visible_after(Duration::from_micros(lag));
            }
        }
        internal_events::batch_loaded(rows.inserted.len(), started.elapsed());
        let mut acks = Vec::with_capacity(batch.dead_letters.len());
        for (key, letter) in &batch.dead_letters {
            let ack = self
                .producer
                .enqueue(&self.config.topics.dead_letter, key, &letter.to_json())
                .map_err(|e| ("dead_letter", e.into()))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| ("dead_letter", e.into()))?;
        }
        Ok(events)
    }

    /// `/metrics`, `/healthz` and `/readyz` (ClickHouse answers, migrations
    /// are applied, and the broker answers for the enriched topic).
    pub fn ops_router(self: &Arc<Self>) -> Router {
        let this = self.clone();
        let readiness: ReadinessCheck = Arc::new(move || {
            let this = this.clone();
            Box::pin(async move {
                let Some(clickhouse) = this.clickhouse.get() else {
                    return Err("ClickHouse not reached yet (migrations pending)".into());
                };
                clickhouse
                    .ping()
                    .await
                    .map_err(|e| format!("ClickHouse unreachable: {e}"))?;
                let topic = &this.config.topics.enriched;
                if !this.producer.broker_reachable(topic).await {
                    return Err(format!("broker unreachable or topic {topic} missing"));
                }
                Ok(())
            })
        });
        ops_router(readiness)
    }

    /// Connects to ClickHouse (applying migrations), retrying with backoff
    /// until it answers or `shutdown` turns true.
    async fn clickhouse(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<&ClickHouse>> {
        let mut delay = Duration::from_millis(self.config.activator.retry_initial_ms);
        loop {
            match ClickHouse::connect(&self.config.clickhouse).await {
                Ok(clickhouse) => {
                    return Ok(Some(
                        self.clickhouse.get_or_init(|| async { clickhouse }).await,
                    ));
                }
                Err(err)
                    if err
                        .downcast_ref::<tributary_clickhouse::MigrationError>()
                        .is_some_and(|e| {
                            matches!(e, tributary_clickhouse::MigrationError::Changed { .. })
                        }) =>
                {
                    return Err(err.context("refusing to start"));
                }
                Err(err) => {
                    tracing::warn!(error = format!("{err:#}"), url = %self.config.clickhouse.url, retry_in = ?delay, "ClickHouse not ready; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return Ok(None),
            }
            delay = (delay * 2).min(Duration::from_millis(self.config.activator.retry_max_ms));
        }
    }

    /// Runs until `shutdown` turns true: loads what it has read, commits and returns.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let admin = TopicAdmin::new(&self.config.kafka)?;
        for topic in [
            &self.config.topics.enriched,
            &self.config.topics.dead_letter,
        ] {
            match admin.partitions(topic).await {
                Ok(_) => {}
                Err(missing @ tributary_kafka::TopicError::Missing { .. }) => {
                    return Err(missing).context("the pipeline's topics must exist before the activator starts (deploy/local/up.sh creates them)");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "broker not reachable at startup; waiting for it")
                }
            }
        }
        let Some(clickhouse) = self.clickhouse(&mut shutdown).await? else {
            return Ok(());
        };
        consume::run(&self, clickhouse, shutdown).await?;
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await??;
        tracing::info!("activator stopped; every committed offset has its rows in ClickHouse");
        Ok(())
    }
}
