//! `tributary status`: how far behind each stage is, what was dead-lettered,
//! and when each tenant's last event reached ClickHouse.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Deserialize;
use tributary_clickhouse::ClickHouseSettings;
use tributary_config::{KafkaSettings, TopicSettings, enrichment_retry_group};

use crate::dlq;
use crate::read::{self, REQUEST_TIMEOUT};

/// Longest wait for ClickHouse's answer.
const CLICKHOUSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct StatusArgs {}

/// What `status` reads from the configuration.
pub struct StatusConfig<'a> {
    pub kafka: &'a KafkaSettings,
    pub topics: &'a TopicSettings,
    pub clickhouse: &'a ClickHouseSettings,
    pub enricher_group: &'a str,
    pub activator_group: &'a str,
    /// `[collector] checkpoint_dir`: the pull subscriptions' positions.
    pub checkpoint_dir: Option<&'a std::path::Path>,
}

/// One partition of a group's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: i32,
    /// The group's committed offset; `None` when it has committed none.
    pub committed: Option<i64>,
    pub low: i64,
    pub high: i64,
}

impl PartitionLag {
    /// Messages the group has not yet processed; without a commit, all it
    /// would read from the beginning (the stages start at the earliest offset).
    pub fn lag(&self) -> i64 {
        match self.committed {
            Some(committed) => (self.high - committed.max(self.low)).max(0),
            None => self.high - self.low,
        }
    }
}

pub async fn run(config: StatusConfig<'_>, _args: StatusArgs) -> anyhow::Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let kafka = config.kafka.clone();
    let stages = [
        (
            "enricher",
            config.enricher_group.to_owned(),
            config.topics.raw.clone(),
        ),
        (
            "re-enrichment",
            enrichment_retry_group(config.enricher_group),
            config.topics.retry.clone(),
        ),
        (
            "activator",
            config.activator_group.to_owned(),
            config.topics.enriched.clone(),
        ),
    ];
    for (stage, group, topic) in stages {
        let kafka = kafka.clone();
        let lags = {
            let (group, topic) = (group.clone(), topic.clone());
            tokio::task::spawn_blocking(move || group_lag(&kafka, &group, &topic)).await?
        };
        println!("{stage}: group {group} on {topic}");
        match lags {
            Ok(lags) => print_lags(&lags),
            Err(err) => {
                println!("  could not be read: {err:#}");
                problems.push(format!("{stage} lag: {err:#}"));
            }
        }
    }

    let dead_letter = config.topics.dead_letter.clone();
    let counts = {
        let topic = dead_letter.clone();
        tokio::task::spawn_blocking(move || dlq::count_all(&kafka, &topic)).await?
    };
    match counts {
        Ok(counts) => {
            println!("dead letters on {dead_letter}: {}", counts.total());
            counts.print();
        }
        Err(err) => {
            println!("dead letters on {dead_letter}: could not be read: {err:#}");
            problems.push(format!("dead letters: {err:#}"));
        }
    }

    let settings = config.clickhouse;
    println!(
        "last events per tenant (ClickHouse {}.event_log):",
        settings.database
    );
    match tokio::time::timeout(CLICKHOUSE_TIMEOUT, last_events(settings)).await {
        Ok(Ok(rows)) => print_last_events(&rows),
        Ok(Err(err)) => {
            let what = match err {
                clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut => {
                    "reached"
                }
                _ => "queried",
            };
            println!(
                "  ClickHouse could not be {what} at {}: {err}",
                settings.url
            );
            if matches!(err, clickhouse::error::Error::BadResponse(_)) && settings.validation {
                println!(
                    "  (ClickHouse 18.16, the local one, needs [clickhouse] validation = false)"
                );
            }
            problems.push(format!("ClickHouse could not be {what}: {err}"));
        }
        Err(_) => {
            println!(
                "  ClickHouse could not be reached at {}: no answer within {CLICKHOUSE_TIMEOUT:?}",
                settings.url
            );
            problems.push("ClickHouse: no answer".into());
        }
    }

    println!("partial events per tenant (still missing lookups, newest enrichment of each):");
    match tokio::time::timeout(CLICKHOUSE_TIMEOUT, partial_events(settings)).await {
        Ok(Ok(rows)) => print_partial_events(&rows),
        Ok(Err(err)) => {
            println!("  could not be read: {err}");
            problems.push(format!("partial events: {err}"));
        }
        Err(_) => {
            println!("  no answer within {CLICKHOUSE_TIMEOUT:?}");
            problems.push("partial events: no answer".into());
        }
    }

    if let Some(dir) = config.checkpoint_dir {
        println!("pull subscriptions (checkpoints in {}):", dir.display());
        match checkpoints(dir, std::time::SystemTime::now()) {
            Ok(rows) => print_checkpoints(&rows),
            Err(err) => {
                println!("  could not be read: {err}");
                problems.push(format!("checkpoints: {err}"));
            }
        }
    }

    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("status is incomplete: {}", problems.join("; "))
    }
}

/// One pull subscription's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The subscription, as its file names it.
    pub subscription: String,
    /// Since the position was last saved (a keepalive saves it too).
    pub age: Duration,
    /// The saved position is "from the earliest retained event" (after a
    /// replay id was refused).
    pub from_earliest: bool,
}

/// Every checkpoint in `dir`, oldest save first.
pub fn checkpoints(
    dir: &std::path::Path,
    now: std::time::SystemTime,
) -> std::io::Result<Vec<Checkpoint>> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(subscription) = name.strip_suffix(".checkpoint") else {
            continue;
        };
        let metadata = entry.metadata()?;
        let age = metadata
            .modified()
            .ok()
            .and_then(|saved| now.duration_since(saved).ok())
            .unwrap_or_default();
        rows.push(Checkpoint {
            subscription: subscription.to_owned(),
            age,
            from_earliest: metadata.len() == 0,
        });
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.age));
    Ok(rows)
}

fn print_checkpoints(rows: &[Checkpoint]) {
    if rows.is_empty() {
        println!("  none yet");
        return;
    }
    for row in rows {
        let note = if row.from_earliest {
            "  (reading again from the earliest retained event)"
        } else {
            ""
        };
        println!(
            "  {}  saved {} s ago{note}",
            row.subscription,
            row.age.as_secs()
        );
    }
}

/// The committed offset, watermarks and lag of `group` on every partition of `topic`.
/// Reads the group's offsets without joining it.
pub fn group_lag(
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
) -> anyhow::Result<Vec<PartitionLag>> {
    let consumer: BaseConsumer = tributary_kafka::consumer_config(kafka, group)
        .create()
        .context("creating a kafka consumer")?;
    let partitions = read::partitions_of(&consumer, kafka, topic)?;
    let mut query = TopicPartitionList::new();
    for partition in &partitions {
        query.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(query, REQUEST_TIMEOUT)
        .with_context(|| format!("reading the offsets group {group} committed on {topic}"))?;
    partitions
        .iter()
        .map(|&partition| {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                .with_context(|| format!("reading the offsets of {topic} partition {partition}"))?;
            let committed = match committed
                .find_partition(topic, partition)
                .map(|p| p.offset())
            {
                Some(Offset::Offset(offset)) if offset >= 0 => Some(offset),
                _ => None,
            };
            Ok(PartitionLag {
                partition,
                committed,
                low,
                high,
            })
        })
        .collect()
}

fn print_lags(lags: &[PartitionLag]) {
    println!(
        "  {:<9}  {:>12}  {:>12}  {:>10}",
        "partition", "committed", "end", "lag"
    );
    for lag in lags {
        let committed = lag
            .committed
            .map_or_else(|| "-".to_owned(), |c| c.to_string());
        println!(
            "  {:<9}  {committed:>12}  {:>12}  {:>10}",
            lag.partition,
            lag.high,
            lag.lag()
        );
    }
    let end: i64 = lags.iter().map(|l| l.high).sum();
    let total: i64 = lags.iter().map(PartitionLag::lag).sum();
    println!("  {:<9}  {:>12}  {end:>12}  {total:>10}", "total", "");
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct TenantLast {
    tenant: String,
    events: u64,
    last_event_micro: i64,
    last_received_micro: i64,
}

async fn last_events(settings: &ClickHouseSettings) -> clickhouse::error::Result<Vec<TenantLast>> {
    let client = tributary_clickhouse::client(settings);
    let sql = format!(
        "SELECT tenant, uniqExact(event_id) AS events, \
         max(version_micro) AS last_event_micro, \
         max(received_at_micro) AS last_received_micro \
         FROM {}.event_log GROUP BY tenant ORDER BY tenant",
        settings.database
    );
    client.query(&sql).fetch_all::<TenantLast>().await
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct TenantPartial {
    tenant: String,
    partial: u64,
    oldest_received_micro: i64,
    /// What they miss, most common first (at most five kinds).
    missing: Vec<String>,
}

/// Per tenant, the events whose newest enrichment is still partial: how
/// many, the oldest, and what they miss. A partial event completed later
/// (re-enriched with the same id) no longer counts.
async fn partial_events(
    settings: &ClickHouseSettings,
) -> clickhouse::error::Result<Vec<TenantPartial>> {
    let client = tributary_clickhouse::client(settings);
    let sql = format!(
        "SELECT tenant, uniqExact(event_id) AS partial, min(received) AS oldest_received_micro, \
         topK(5)(lookup) AS missing FROM ( \
           SELECT tenant, event_id, \
                  argMax(enrichment_status, enriched_at_micro) AS status_now, \
                  argMax(enrichment_missing, enriched_at_micro) AS missing_now, \
                  argMax(received_at_micro, enriched_at_micro) AS received \
           FROM {}.event_log GROUP BY tenant, event_id \
         ) ARRAY JOIN if(empty(missing_now), [''], missing_now) AS lookup \
         WHERE status_now = 'partial' GROUP BY tenant ORDER BY tenant",
        settings.database
    );
    let mut rows = client.query(&sql).fetch_all::<TenantPartial>().await?;
    for row in &mut rows {
        row.missing.retain(|lookup| !lookup.is_empty());
    }
    Ok(rows)
}

fn print_partial_events(rows: &[TenantPartial]) {
    if rows.is_empty() {
        println!("  none");
        return;
    }
    let width = tenant_width(rows.iter().map(|r| r.tenant.as_str()));
    println!(
        "  {:<width$}  {:>10}  {:<27}  missing",
        "tenant", "partial", "oldest received"
    );
    for row in rows {
        println!(
            "  {:<width$}  {:>10}  {:<27}  {}",
            row.tenant,
            row.partial,
            micros_text(row.oldest_received_micro),
            if row.missing.is_empty() {
                "-".to_owned()
            } else {
                row.missing.join(",")
            }
        );
    }
}

/// The width of a tenant column: its longest name, at least the heading's.
fn tenant_width<'a>(tenants: impl Iterator<Item = &'a str>) -> usize {
    tenants.map(str::len).max().unwrap_or(0).max("tenant".len())
}

fn micros_text(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros).map_or_else(
        || micros.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Micros, true),
    )
}

fn print_last_events(rows: &[TenantLast]) {
    if rows.is_empty() {
        println!("  no events loaded");
        return;
    }
    let width = tenant_width(rows.iter().map(|r| r.tenant.as_str()));
    println!(
        "  {:<width$}  {:>10}  {:<27}  {:<27}",
        "tenant", "events", "last event time", "last received"
    );
    for row in rows {
        println!(
            "  {:<width$}  {:>10}  {:<27}  {:<27}",
            row.tenant,
            row.events,
            micros_text(row.last_event_micro),
            micros_text(row.last_received_micro)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_commit_or_the_beginning() {
        let lag = |committed, low, high| {
            PartitionLag {
                partition: 0,
                committed,
                low,
                high,
            }
            .lag()
        };
        assert_eq!(lag(Some(3), 0, 10), 7);
        assert_eq!(lag(Some(10), 0, 10), 0);
        assert_eq!(lag(None, 2, 10), 8);
        // A commit older than what the topic still holds: the group resumes at the beginning.
        assert_eq!(lag(Some(1), 4, 10), 6);
    }

    #[test]
    fn checkpoints_are_listed_with_their_age_oldest_first() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path()
                .join("salesforce-acme--data-OpportunityChangeEvent.checkpoint"),
            [0, 1],
        )
        .expect("write");
        std::fs::write(
            dir.path()
                .join("salesforce-acme--data-AccountChangeEvent.checkpoint"),
            [],
        )
        .expect("write");
        std::fs::write(dir.path().join("unrelated.tmp"), [1]).expect("write");
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let rows = checkpoints(dir.path(), later).expect("read");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|row| row.age >= Duration::from_secs(29)));
        let account = rows
            .iter()
            .find(|row| row.subscription.ends_with("AccountChangeEvent"))
            .expect("listed");
        assert!(account.from_earliest);
        assert!(rows.iter().any(|row| !row.from_earliest));
    }

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(
            micros_text(1_741_096_800_123_456),
            "2025-03-04T14:00:00.123456Z"
        );
    }
}
