//! `tributary dlq`: list, show and redrive the records of the dead-letter
//! topic (`tributary_envelope::DeadLetter`, one JSON object per message, keyed
//! with the failed message's own key).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use rdkafka::Message;
use serde::Serialize;
use serde_json::{Value, json};
use tributary_collector::delivery::{self, Topics, WHOLE_DELIVERY_REASONS};
use tributary_config::{KafkaSettings, Tenants, TopicSettings};
use tributary_envelope::{DeadLetter, DeadLetterError, RawEvent, Verdict};
use tributary_sources::Sources;

use crate::read::{self, TopicReader};
use crate::send::{Outgoing, Sender};

#[derive(Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead-letter records, then count them by stage and reason.
    List(Filters),
    /// Print one record as JSON, its original message decoded.
    Show(ShowArgs),
    /// Send records' original messages back to the topic they failed on.
    Redrive(RedriveArgs),
}

/// Which records: every filter given must match.
#[derive(Args, Clone, Default)]
pub struct Filters {
    /// Only records of this stage (`collector`, `enricher`, `activator`).
    #[arg(long)]
    stage: Option<String>,
    /// Only records of this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only records with this reason (e.g. `malformed_envelope`).
    #[arg(long)]
    reason: Option<String>,
    /// At most this many records (the first ones, in offset order per partition).
    #[arg(long)]
    limit: Option<usize>,
}

impl Filters {
    fn any(&self) -> bool {
        self.stage.is_some() || self.tenant.is_some() || self.reason.is_some()
    }

    fn matches(&self, letter: &DeadLetter) -> bool {
        self.stage.as_ref().is_none_or(|s| *s == letter.stage)
            && self.reason.as_ref().is_none_or(|r| *r == letter.reason)
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| letter.tenant.as_ref() == Some(t))
    }
}

#[derive(Args)]
struct ShowArgs {
    /// The record's position on the dead-letter topic, as `list` prints it: `<partition>@<offset>`.
    #[arg(value_parser = read::parse_position)]
    position: (i32, i64),
}

#[derive(Args)]
struct RedriveArgs {
    #[command(flatten)]
    filters: Filters,
    /// Print what would be sent; send nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(
    kafka: &KafkaSettings,
    topics: &TopicSettings,
    tenants: &Tenants,
    args: DlqArgs,
) -> anyhow::Result<()> {
    let kafka = kafka.clone();
    let topics = topics.clone();
    let tenants = tenants.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || match args.command {
        DlqCommand::List(filters) => list(&kafka, &topics, &filters),
        DlqCommand::Show(show_args) => show(&kafka, &topics, show_args.position),
        DlqCommand::Redrive(redrive_args) => {
            redrive(&kafka, &topics, &tenants, runtime, &redrive_args)
        }
    })
    .await?
}

/// One message of the dead-letter topic.
pub struct Letter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// The record, or why the message is not one.
    pub record: Result<DeadLetter, String>,
}

impl Letter {
    fn position(&self) -> String {
        format!("{}@{}", self.partition, self.offset)
    }
}

fn letter_of(message: &impl Message) -> Letter {
    Letter {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        record: serde_json::from_slice::<DeadLetter>(message.payload().unwrap_or_default())
            .map_err(|err| format!("not a dead-letter record: {err}")),
    }
}

/// Reads the dead-letter topic from its beginning up to its end as it is now.
pub fn read_letters(
    kafka: &KafkaSettings,
    topic: &str,
    mut each: impl FnMut(Letter) -> ControlFlow<()>,
) -> anyhow::Result<()> {
    let reader = TopicReader::open(kafka, topic, "dlq")?;
    let ranges = reader.whole()?;
    reader.read(&ranges, |message| Ok(each(letter_of(message))))
}

/// Records by stage and reason, plus messages that are not records.
#[derive(Debug, Default)]
pub struct Counts {
    pub by_stage_reason: BTreeMap<(String, String), u64>,
    pub unreadable: u64,
}

impl Counts {
    fn add(&mut self, letter: &Letter) {
        match &letter.record {
            Ok(record) => {
                *self
                    .by_stage_reason
                    .entry((record.stage.clone(), record.reason.clone()))
                    .or_default() += 1;
            }
            Err(_) => self.unreadable += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.by_stage_reason.values().sum::<u64>() + self.unreadable
    }

    /// Indented lines: `stage reason count`, aligned.
    pub fn print(&self) {
        let stage_width = self
            .by_stage_reason
            .keys()
            .map(|(s, _)| s.len())
            .max()
            .unwrap_or(0)
            .max(5);
        let reason_width = self
            .by_stage_reason
            .keys()
            .map(|(_, r)| r.len())
            .max()
            .unwrap_or(0)
            .max(6);
        for ((stage, reason), count) in &self.by_stage_reason {
            println!("  {stage:<stage_width$}  {reason:<reason_width$}  {count}");
        }
        if self.unreadable > 0 {
            println!(
                "  {:<stage_width$}  {:<reason_width$}  {}",
                "-", "unreadable", self.unreadable
            );
        }
    }
}

/// Every record on the dead-letter topic, counted (for `status`).
pub fn count_all(kafka: &KafkaSettings, topic: &str) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    read_letters(kafka, topic, |letter| {
        counts.add(&letter);
        ControlFlow::Continue(())
    })?;
    Ok(counts)
}

/// The records `filters` select, in reading order, up to its limit.
fn select(
    kafka: &KafkaSettings,
    topic: &str,
    filters: &Filters,
) -> anyhow::Result<Vec<(Letter, DeadLetter)>> {
    let mut selected = Vec::new();
    read_letters(kafka, topic, |letter| {
        if filters.limit.is_some_and(|limit| selected.len() >= limit) {
            return ControlFlow::Break(());
        }
        if let Ok(record) = &letter.record
            && filters.matches(record)
        {
            let record = record.clone();
            selected.push((letter, record));
        }
        ControlFlow::Continue(())
    })?;
    Ok(selected)
}

fn or_dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("-")
}

fn first_error(errors: &[DeadLetterError]) -> String {
    let Some(first) = errors.first() else {
        return "-".into();
    };
    let message = first
        .message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if errors.len() > 1 {
        format!("{message} (+{} more)", errors.len() - 1)
    } else {
        message
    }
}

fn list(kafka: &KafkaSettings, topics: &TopicSettings, filters: &Filters) -> anyhow::Result<()> {
    let mut counts = Counts::default();
    let mut shown = 0usize;
    read_letters(kafka, &topics.dead_letter, |letter| {
        let matches = match &letter.record {
            Ok(record) => filters.matches(record),
            // A message that is not a record matches no filter.
            Err(_) => !filters.any(),
        };
        if !matches {
            return ControlFlow::Continue(());
        }
        counts.add(&letter);
        if filters.limit.is_some_and(|limit| shown >= limit) {
            return ControlFlow::Continue(());
        }
        shown += 1;
        match &letter.record {
            Ok(record) => println!(
                "{} {} {} {} {} {} {}",
                letter.position(),
                record.failed_at,
                record.stage,
                record.reason,
                or_dash(record.tenant.as_deref()),
                or_dash(record.event_id.as_deref()),
                first_error(&record.errors),
            ),
            Err(why) => println!("{} - - unreadable - - {why}", letter.position()),
        }
        ControlFlow::Continue(())
    })?;
    let total = counts.total();
    if usize::try_from(total).is_ok_and(|t| t > shown) {
        println!(
            "{total} record(s) on {} ({shown} listed)",
            topics.dead_letter
        );
    } else {
        println!("{total} record(s) on {}", topics.dead_letter);
    }
    counts.print();
    Ok(())
}

/// What `show` prints: the record in its own field order, `original` decoded.
#[derive(Serialize)]
struct Shown<'a> {
    position: String,
    key: Option<String>,
    stage: &'a str,
    reason: &'a str,
    errors: &'a [DeadLetterError],
    event_id: Option<&'a str>,
    tenant: Option<&'a str>,
    source: Option<&'a str>,
    original_topic: &'a str,
    original_partition: i32,
    original_offset: i64,
    failed_at: &'a str,
    original: Value,
}

fn show(kafka: &KafkaSettings, topics: &TopicSettings, position: (i32, i64)) -> anyhow::Result<()> {
    let (partition, offset) = position;
    let reader = TopicReader::open(kafka, &topics.dead_letter, "dlq")?;
    reader.check_partition(partition)?;
    let Some(message) = reader.message_at(partition, offset)? else {
        let (low, high) = reader.watermarks(partition)?;
        bail!(
            "no message at {partition}@{offset} on {} (partition {partition} holds offsets {low}..{high})",
            topics.dead_letter
        );
    };
    let letter = letter_of(&message);
    let record = match &letter.record {
        Ok(record) => record,
        Err(why) => bail!("{}@{} on {}: {why}", partition, offset, topics.dead_letter),
    };
    let original = decode_original(kafka, topics, record);
    let shown = Shown {
        position: letter.position(),
        key: letter
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        stage: &record.stage,
        reason: &record.reason,
        errors: &record.errors,
        event_id: record.event_id.as_deref(),
        tenant: record.tenant.as_deref(),
        source: record.source.as_deref(),
        original_topic: &record.original_topic,
        original_partition: record.original_partition,
        original_offset: record.original_offset,
        failed_at: &record.failed_at,
        original,
    };
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

/// The original message's bytes: embedded in the record, or, for one too
/// large to embed, read from its place on its topic.
fn original_of(kafka: &KafkaSettings, record: &DeadLetter) -> anyhow::Result<Vec<u8>> {
    if !record.original_by_reference {
        return record
            .original_bytes()
            .context("its original is not base64");
    }
    let (topic, partition, offset) = (
        &record.original_topic,
        record.original_partition,
        record.original_offset,
    );
    let reader = TopicReader::open(kafka, topic, "dlq")?;
    reader.check_partition(partition)?;
    match reader.message_at(partition, offset)? {
        Some(message) => Ok(message.payload().unwrap_or_default().to_vec()),
        None => bail!(
            "its original, too large to embed, is no longer at {partition}@{offset} on {topic} (past the topic's retention)"
        ),
    }
}

/// The original message, decoded by what its topic carries: a raw envelope
/// (its fields, the body as text) or an enriched event (its JSON).
fn decode_original(kafka: &KafkaSettings, topics: &TopicSettings, record: &DeadLetter) -> Value {
    let bytes = match original_of(kafka, record) {
        Ok(bytes) => bytes,
        Err(err) => return json!({ "undecodable": format!("{err:#}") }),
    };
    let raw = record.original_topic == topics.raw
        || (record.original_topic != topics.enriched && record.stage == "enricher");
    if raw {
        return match RawEvent::decode_from(&bytes) {
            Ok(event) => envelope_json(&event),
            Err(err) => json!({
                "undecodable": err.to_string(),
                "bytes": bytes.len(),
                "text": String::from_utf8_lossy(&bytes),
            }),
        };
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => value,
        Err(err) => json!({
            "undecodable": format!("not JSON: {err}"),
            "bytes": bytes.len(),
            "text": String::from_utf8_lossy(&bytes),
        }),
    }
}

fn envelope_json(event: &RawEvent) -> Value {
    let received_at = i64::try_from(event.received_at_micros)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let keys = event.keys.as_ref().map(|k| {
        json!({
            "payload_version": k.payload_version,
            "object": k.object,
            "object_id": k.object_id,
            "action": k.action,
            "attempt": k.attempt,
            "occurred_at_micros": k.occurred_at_micros,
        })
    });
    json!({
        "envelope_version": event.envelope_version,
        "tenant": event.tenant,
        "source": event.source,
        "received_at_micros": event.received_at_micros,
        "received_at": received_at,
        "event_id": event.event_id,
        "content_type": event.content_type,
        "headers": event.headers.iter().map(|h| json!({"name": h.name, "value": h.value})).collect::<Vec<_>>(),
        "verdict": Verdict::try_from(event.verdict).map_or("unknown", |v| v.as_str_name()),
        "warnings": event.warnings.iter().map(|w| json!({"code": w.code, "field": w.field, "message": w.message})).collect::<Vec<_>>(),
        "keys": keys,
        "body": String::from_utf8_lossy(&event.body),
    })
}

/// One message a redrive sends, for the record at `record` of the selection.
struct Resend {
    record: usize,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// What a redrive sends, and the selected records (by index) still refused, with why.
struct Plan {
    resends: Vec<Resend>,
    refused: Vec<(usize, String)>,
}

/// True for a delivery the collector kept whole: redriving it splits it again.
fn is_whole_delivery(record: &DeadLetter) -> bool {
    record.stage == delivery::STAGE && WHOLE_DELIVERY_REASONS.contains(&record.reason.as_str())
}

/// What redriving each selected record sends: its original message as it
/// is, or for a delivery the collector kept whole, what its source makes of
/// it now (its events, and dead letters for elements still malformed).
/// Records still refused send nothing and are listed with why.
fn plan_resends(
    kafka: &KafkaSettings,
    topics: &TopicSettings,
    tenants: &Tenants,
    selected: &[(Letter, DeadLetter)],
) -> anyhow::Result<Plan> {
    let mut sources: Option<Sources> = None;
    let mut resends = Vec::new();
    let mut refused = Vec::new();
    for (index, (letter, record)) in selected.iter().enumerate() {
        let bytes = original_of(kafka, record)
            .with_context(|| format!("{} on {}", letter.position(), topics.dead_letter))?;
        if !is_whole_delivery(record) {
            resends.push(Resend {
                record: index,
                topic: record.original_topic.clone(),
                key: letter.key.clone(),
                payload: bytes,
            });
            continue;
        }
        let kept = RawEvent::decode_from(&bytes).with_context(|| {
            format!("{}: its original is not a raw envelope", letter.position())
        })?;
        let sources = match &mut sources {
            Some(sources) => sources,
            None => sources.insert(
                Sources::from_config(tenants)
                    .context("the [tenants] sections, to split kept deliveries again")?,
            ),
        };
        let split_topics = Topics {
            raw: &record.original_topic,
            dead_letter: &topics.dead_letter,
        };
        match delivery::redeliver(sources, &kept, split_topics) {
            Ok(messages) => resends.extend(messages.into_iter().map(|message| Resend {
                record: index,
                topic: message.topic.to_owned(),
                key: Some(message.key.into_bytes()),
                payload: message.payload,
            })),
            Err(why) => refused.push((index, why)),
        }
    }
    Ok(Plan { resends, refused })
}

fn redrive(
    kafka: &KafkaSettings,
    topics: &TopicSettings,
    tenants: &Tenants,
    runtime: tokio::runtime::Handle,
    args: &RedriveArgs,
) -> anyhow::Result<()> {
    let selected = select(kafka, &topics.dead_letter, &args.filters)?;
    let Plan { resends, refused } = plan_resends(kafka, topics, tenants, &selected)?;
    // Every destination must exist before anything is sent.
    let destinations: BTreeSet<&str> = resends.iter().map(|r| r.topic.as_str()).collect();
    let consumer = read::plain_consumer(kafka, "dlq")?;
    for topic in &destinations {
        read::partitions_of(&consumer, kafka, topic)
            .with_context(|| "a selected record's original_topic".to_owned())?;
    }
    for (index, why) in &refused {
        let (letter, record) = &selected[*index];
        println!(
            "kept {} ({} {}): {why}",
            letter.position(),
            record.stage,
            record.reason
        );
    }
    let describe = |resend: &Resend| {
        let (letter, record) = &selected[resend.record];
        let key = resend.key.as_deref().map_or_else(
            || "(none)".to_owned(),
            |k| String::from_utf8_lossy(k).into_owned(),
        );
        format!(
            "{} ({} {}) -> {} key {key} ({} bytes)",
            letter.position(),
            record.stage,
            record.reason,
            resend.topic,
            resend.payload.len()
        )
    };
    if args.dry_run {
        println!("dry run: nothing is sent");
        for resend in &resends {
            println!("would send {}", describe(resend));
        }
        println!(
            "{} record(s) would be redriven",
            selected.len() - refused.len()
        );
        return Ok(());
    }

    let mut sender: Sender<usize> = Sender::new(kafka, runtime)?;
    let mut outcomes = Vec::new();
    for (index, resend) in resends.iter().enumerate() {
        let outgoing = Outgoing {
            topic: &resend.topic,
            key: resend.key.as_deref(),
            payload: Some(&resend.payload),
            headers: None,
        };
        match sender.send(index, outgoing) {
            Ok(done) => outcomes.extend(done),
            Err(_stopped) => break,
        }
    }
    outcomes.extend(sender.finish());
    outcomes.sort_by_key(|o| o.tag);
    let mut stored = vec![false; resends.len()];
    let mut first_failure = None;
    for outcome in outcomes {
        let resend = &resends[outcome.tag];
        match outcome.delivery {
            Ok((partition, offset)) => {
                stored[outcome.tag] = true;
                println!("sent {}, stored at {partition}@{offset}", describe(resend));
            }
            Err(why) => {
                println!("FAILED {}: {why}", describe(resend));
                first_failure.get_or_insert(why);
            }
        }
    }
    // A record is redriven once every message made of it is stored.
    let mut redriven = vec![true; selected.len()];
    for (index, _) in &refused {
        redriven[*index] = false;
    }
    for (resend, stored) in resends.iter().zip(&stored) {
        redriven[resend.record] &= *stored;
    }
    let sent = redriven.iter().filter(|redriven| **redriven).count();
    println!("redrove {sent} of {} record(s)", selected.len());
    let unsent = stored.iter().filter(|stored| !**stored).count();
    if unsent > 0 {
        bail!(
            "{unsent} message(s) were not sent (first failure: {}); redriving them again is safe",
            first_failure.as_deref().unwrap_or("stopped")
        );
    }
    if !refused.is_empty() {
        bail!(
            "{} kept deliveries are still refused by their source and stay on {}",
            refused.len(),
            topics.dead_letter
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(stage: &str, reason: &str, tenant: Option<&str>) -> DeadLetter {
        DeadLetter {
            stage: stage.into(),
            reason: reason.into(),
            errors: vec![
                DeadLetterError::new("/deal_id", "is a required\nproperty"),
                DeadLetterError::new("/x", "other"),
            ],
            event_id: None,
            tenant: tenant.map(str::to_owned),
            source: None,
            original_topic: "tributary.enriched".into(),
            original_partition: 0,
            original_offset: 1,
            failed_at: "2025-03-04T14:00:00Z".into(),
            original: DeadLetter::encode_original(b"{}"),
            original_by_reference: false,
        }
    }

    #[test]
    fn every_given_filter_must_match() {
        let record = letter("activator", "schema_validation", Some("acme"));
        assert!(Filters::default().matches(&record));
        let only = |stage: Option<&str>, tenant: Option<&str>, reason: Option<&str>| Filters {
            stage: stage.map(str::to_owned),
            tenant: tenant.map(str::to_owned),
            reason: reason.map(str::to_owned),
            limit: None,
        };
        assert!(only(Some("activator"), Some("acme"), Some("schema_validation")).matches(&record));
        assert!(!only(Some("enricher"), None, None).matches(&record));
        assert!(!only(None, Some("globex"), None).matches(&record));
        assert!(!only(None, None, Some("invalid_json")).matches(&record));
        assert!(!only(None, Some("acme"), None).matches(&letter(
            "enricher",
            "malformed_envelope",
            None
        )));
    }

    #[test]
    fn the_first_error_is_one_line_and_counts_the_rest() {
        let record = letter("activator", "schema_validation", None);
        assert_eq!(
            first_error(&record.errors),
            "is a required property (+1 more)"
        );
        assert_eq!(first_error(&[]), "-");
    }

    #[test]
    fn originals_are_decoded_by_their_topic() {
        let topics = TopicSettings::default();
        let mut record = letter("activator", "no_template", None);
        record.original = DeadLetter::encode_original(br#"{"deal_id":7}"#);
        assert_eq!(
            decode_original(&KafkaSettings::default(), &topics, &record),
            json!({"deal_id": 7})
        );

        let event = RawEvent {
            envelope_version: tributary_envelope::ENVELOPE_VERSION,
            tenant: "acme".into(),
            source: "pipedrive".into(),
            body: b"{\"v\":1}".to_vec().into(),
            ..RawEvent::default()
        };
        record.stage = "enricher".into();
        record.original_topic = topics.raw.clone();
        record.original = DeadLetter::encode_original(&event.encode_to_vec());
        let decoded = decode_original(&KafkaSettings::default(), &topics, &record);
        assert_eq!(decoded["tenant"], "acme");
        assert_eq!(decoded["body"], "{\"v\":1}");

        record.original = DeadLetter::encode_original(b"\xff\xff\xff");
        assert!(
            decode_original(&KafkaSettings::default(), &topics, &record)["undecodable"].is_string()
        );
    }
}
