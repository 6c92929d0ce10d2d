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
pub mod templates;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde_json::Value;
use tokio::sync::{OnceCell, watch};
use tributary_envelope::{DeadLetter, DeadLetterError};
use tributary_kafka::{EventProducer, TopicAdmin};
use tributary_telemetry::{ReadinessCheck, ops_router};

pub use config::{ActivatorConfig, ActivatorSettings};

use crate::batch::{Accepted, Batch, PipelineFields, letter};
use crate::load::{ClickHouse, EventKey, Inserted, Target};
use crate::templates::{Rejection, Templates};

/// The stage name in dead-letter records.
pub const STAGE: &str = "activator";

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
        config
            .currencies()
            .map_err(|reason| anyhow::anyhow!(reason))?;
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

    /// Validates one message against its template and maps it into the
    /// canonical model's rows.
    pub fn judge(&self, incoming: &Incoming<'_>) -> Verdict {
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
                tributary_kafka::max_message_bytes(&self.config.kafka),
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
        let Some(fields) = event.as_object() else {
            unreachable!("checked to be an object above")
        };
        // Every template requires the pipeline's own fields.
        let pipeline = PipelineFields::read(fields);
        let Some(mapping) = tributary_sources::mapping(&pipeline.source) else {
            return dead(
                "no_mapping",
                vec![DeadLetterError::new(
                    "/pipeline_source",
                    format!("no mapping into the model for source {:?}", pipeline.source),
                )],
                Some(&event),
            );
        };
        let context = tributary_model::Context {
            tenant: &pipeline.tenant,
            source: &pipeline.source,
            received_at_micro: pipeline.received_at_micro,
            missing: &pipeline.missing,
        };
        let mapped = match mapping.map(&context, fields) {
            Ok(mapped) => mapped,
            Err(error) => {
                return dead(
                    "unmappable",
                    vec![DeadLetterError::new(
                        format!("/{}", error.field),
                        error.reason,
                    )],
                    Some(&event),
                );
            }
        };
        let Some(event_time) =
            DateTime::from_timestamp_micros(mapped.version.at_micro).filter(|t| t.timestamp() >= 0)
        else {
            return dead(
                "unmappable",
                vec![DeadLetterError::new(
                    "",
                    format!(
                        "the event's version {} is not a representable time",
                        mapped.version.at_micro
                    ),
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
                    "",
                    format!("the event is from before {first_kept}, the oldest day kept"),
                )],
                Some(&event),
            );
        }
        let mut records = Vec::new();
        for record in &mapped.records {
            let table = record.table();
            let at = match records.iter().position(|(t, _)| *t == table) {
                Some(at) => at,
                None => {
                    records.push((table, Vec::new()));
                    records.len() - 1
                }
            };
            record.write_row(&mut records[at].1);
        }
        let touched = mapped
            .records
            .iter()
            .filter_map(|r| Some((r.table(), r.entity_key()?.clone())))
            .filter(|(table, _)| table.current().is_some())
            .collect();
        let log_row = batch::event_log_row(&batch::EventLogFields {
            event_time,
            pipeline: &pipeline,
            mapped: &mapped,
            template_name: &template.name,
            template_version: template.version,
            payload: incoming.payload,
        });
        Verdict::Accepted(Box::new(Accepted {
            key: EventKey {
                date: event_time.date_naive(),
                tenant: pipeline.tenant.clone(),
                event_id: pipeline.event_id.clone(),
            },
            origin: batch::Origin {
                partition: incoming.partition,
                offset: incoming.offset,
                key: incoming.key.clone(),
                source: pipeline.source.clone(),
            },
            complete: pipeline.complete,
            enriched_at_micro: pipeline.enriched_at_micro,
            received_at_micro: pipeline.received_at_micro,
            template: template.name.clone(),
            log_row,
            records,
            touched,
        }))
    }

    /// Loads one batch: de-duplicates it against the ledger, inserts the
    /// records of the new events (every table at once), refreshes the
    /// current rows of the entities they change, then inserts their
    /// event-log rows, then the ledger rows that mark them loaded, and
    /// stores the batch's dead letters. Returns every insert made, in order.
    /// On failure, says what failed (`clickhouse` or `dead_letter`);
    /// retrying is safe: every table takes the same rows twice harmlessly.
    pub async fn load_batch(
        &self,
        clickhouse: &ClickHouse,
        batch: &Batch,
    ) -> Result<Vec<Inserted>, (&'static str, anyhow::Error)> {
        let started = Instant::now();
        let stored = clickhouse
            .stored(&batch.keys())
            .await
            .map_err(|e| ("clickhouse", e.into()))?;
        let now = Utc::now().timestamp_micros();
        let rows = batch.rows(&stored, now);
        let records: Vec<Inserted> = rows
            .records
            .into_iter()
            .map(|(table, rows)| Inserted {
                target: Target::Record(table),
                rows: rows.into(),
            })
            .collect();
        let inserts = records
            .iter()
            .map(|i| clickhouse.insert(i.target, i.rows.clone()));
        for result in futures_util::future::join_all(inserts).await {
            result.map_err(|e| ("clickhouse", e.into()))?;
        }
        // The current rows of what changed, before the events count as
        // loaded: a crash in between loads and refreshes them again.
        let refreshes = rows
            .touched
            .iter()
            .filter_map(|(table, keys)| Some(clickhouse.refresh_current(table.current()?, keys)));
        for result in futures_util::future::join_all(refreshes).await {
            result.map_err(|e| ("clickhouse", e.into()))?;
        }
        let log = Inserted {
            target: Target::EventLog,
            rows: rows.event_log.into(),
        };
        clickhouse
            .insert(log.target, log.rows.clone())
            .await
            .map_err(|e| ("clickhouse", e.into()))?;
        // Only now, with every record in, are these events loaded.
        let ledger = Inserted {
            target: Target::Ledger,
            rows: rows.ledger.into(),
        };
        clickhouse
            .insert(ledger.target, ledger.rows.clone())
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
        self.store_dead_letters(&batch.dead_letters).await?;
        let mut inserted = records;
        inserted.push(log);
        inserted.push(ledger);
        Ok(inserted)
    }

    /// Loads `batch` as [`Activator::load_batch`] does, but if ClickHouse
    /// refuses its rows for what they hold (a value a column cannot take),
    /// halves it until the refused events are found, dead-letters those
    /// with ClickHouse's error and loads the rest. Any other failure is
    /// returned as it is: the whole batch is tried again later.
    pub async fn load_isolating(
        &self,
        clickhouse: &ClickHouse,
        batch: &Batch,
    ) -> Result<(), (&'static str, anyhow::Error)> {
        let error = match self.load_batch(clickhouse, batch).await {
            Ok(_) => return Ok(()),
            Err(failure) => match refused_rows(&failure.1) {
                Some(_) if batch.accepted_len() > 0 => failure,
                _ => return Err(failure),
            },
        };
        tracing::warn!(
            events = batch.accepted_len(),
            error = format!("{:#}", error.1),
            "ClickHouse refused a batch's rows; finding the events it refuses"
        );
        let mut refused = Vec::new();
        let whole = 0..batch.accepted_len();
        let mut parts = vec![whole];
        while let Some(range) = parts.pop() {
            let part = batch.subset(range.clone());
            let failure = match self.load_batch(clickhouse, &part).await {
                Ok(_) => continue,
                Err(failure) => failure,
            };
            let Some(why) = refused_rows(&failure.1) else {
                return Err(failure);
            };
            if range.len() > 1 {
                let middle = range.start + range.len() / 2;
                parts.push(middle..range.end);
                parts.push(range.start..middle);
            } else if let Some(letter) = part.refused(&self.config.topics.enriched, &why) {
                internal_events::dead_lettered("clickhouse_refused");
                tracing::warn!(
                    event_id = letter.1.event_id.as_deref().unwrap_or_default(),
                    partition = letter.1.original_partition,
                    offset = letter.1.original_offset,
                    error = %why,
                    "ClickHouse refuses an event's rows; it goes to the dead-letter topic"
                );
                refused.push(letter);
            }
        }
        refused.extend(batch.dead_letters.iter().cloned());
        self.store_dead_letters(&refused).await
    }

    /// Produces `letters` to the dead-letter topic and waits until stored.
    async fn store_dead_letters(
        &self,
        letters: &[(String, DeadLetter)],
    ) -> Result<(), (&'static str, anyhow::Error)> {
        let mut acks = Vec::with_capacity(letters.len());
        for (key, letter) in letters {
            let ack = self
                .producer
                .enqueue(&self.config.topics.dead_letter, key, &letter.to_json())
                .map_err(|e| ("dead_letter", e.into()))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| ("dead_letter", e.into()))?;
        }
        Ok(())
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

    /// Connects to ClickHouse, applies the migrations and writes the
    /// configured currency rates.
    pub async fn connect(&self) -> anyhow::Result<ClickHouse> {
        let clickhouse = ClickHouse::connect(&self.config.clickhouse).await?;
        let currencies = self
            .config
            .currencies()
            .map_err(|reason| anyhow::anyhow!(reason))?;
        clickhouse
            .write_currency_rates(&currencies)
            .await
            .context("writing the configured currency rates")?;
        Ok(clickhouse)
    }

    /// Connects to ClickHouse (applying migrations), retrying with backoff
    /// until it answers or `shutdown` turns true.
    async fn clickhouse(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<&ClickHouse>> {
        let mut delay = Duration::from_millis(self.config.activator.retry_initial_ms);
        loop {
            match self.connect().await {
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

/// ClickHouse's exception codes for a value the target cannot take or a
/// check of the data failing: the same rows would fail again, whenever sent.
const REFUSED_ROW_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND (e.g. a decimal too big)
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (a check in a view)
    407, // DECIMAL_OVERFLOW
    469, // VIOLATED_CONSTRAINT
];

/// ClickHouse's message, if `error` is ClickHouse refusing the rows
/// themselves rather than being down, overloaded or misconfigured.
fn refused_rows(error: &anyhow::Error) -> Option<String> {
    let clickhouse::error::Error::BadResponse(text) = error
        .chain()
        .find_map(|e| e.downcast_ref::<clickhouse::error::Error>())?
    else {
        return None;
    };
    let code: u32 = text
        .split_once("Code: ")?
        .1
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    REFUSED_ROW_CODES
        .contains(&code)
        .then(|| text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(text: &str) -> anyhow::Error {
        anyhow::Error::new(clickhouse::error::Error::BadResponse(text.into()))
            .context("inserting into deal_changes")
    }

    #[test]
    fn only_clickhouse_refusing_the_rows_themselves_isolates_them() {
        // 18.16's wording, then a modern server's.
        let old = "Code: 69, e.displayText() = DB::Exception: Decimal value is too big: (while read the value of key amount), e.what() = DB::Exception";
        assert_eq!(refused_rows(&response(old)).as_deref(), Some(old));
        let modern = "Code: 395. DB::Exception: Value passed to 'throwIf' function is non-zero. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) (version 24.8.1.1)";
        assert!(refused_rows(&response(modern)).is_some());
        // Down, overloaded or misconfigured: the same rows may load later.
        for transient in [
            "Code: 252, e.displayText() = DB::Exception: Too many parts (300)",
            "Code: 241. DB::Exception: Memory limit (total) exceeded",
            "Code: 60. DB::Exception: Table tributary.deal_changes does not exist",
            "Code: 516. DB::Exception: default: Authentication failed",
            "no code at all",
        ] {
            assert_eq!(refused_rows(&response(transient)), None, "{transient}");
        }
        let network = anyhow::Error::new(clickhouse::error::Error::Network("reset".into()));
        assert_eq!(refused_rows(&network), None);
    }
}
