//! `tributary replay`: re-process a range of a topic by the stage that reads
//! it, by producing the selected messages again (same key, same value bytes,
//! same headers) onto the same topic. Every stage downstream de-duplicates on
//! the event id, so a replay completes partial events and changes no number.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{ArgGroup, Args};
use rdkafka::Message;
use serde::Deserialize;
use tributary_config::{KafkaSettings, TopicSettings};
use tributary_envelope::RawEvent;

use crate::read::{self, Range, TopicKind, TopicReader};
use crate::send::{Outcome, Outgoing, Sender};

#[derive(Args)]
#[command(group(ArgGroup::new("range").required(true).args(["from", "start_offset"])))]
pub struct ReplayArgs {
    /// `raw`, `enriched`, or a topic name.
    #[arg(long)]
    topic: String,
    /// Replay messages written at or after this time (RFC 3339, or epoch milliseconds).
    #[arg(long, conflicts_with_all = ["start_offset", "end_offset"])]
    from: Option<String>,
    /// ...and before this time (default: each partition's end when the command started).
    #[arg(long, requires = "from", conflicts_with_all = ["start_offset", "end_offset"])]
    to: Option<String>,
    /// Only this partition (required with --start-offset).
    #[arg(long)]
    partition: Option<i32>,
    /// First offset to replay, in --partition.
    #[arg(long, requires = "partition")]
    start_offset: Option<i64>,
    /// Offset to stop before (default: the partition's end when the command started).
    #[arg(long, requires = "start_offset")]
    end_offset: Option<i64>,
    /// Only messages of this tenant (read from the envelope or the enriched event).
    #[arg(long)]
    tenant: Option<String>,
    /// Print what would be replayed; produce nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(
    kafka: &KafkaSettings,
    topics: &TopicSettings,
    args: ReplayArgs,
) -> anyhow::Result<()> {
    let (topic, kind) = read::resolve_topic(topics, &args.topic);
    if kind == TopicKind::DeadLetter {
        bail!(
            "no stage reads {topic}, the dead-letter topic; `tributary dlq redrive` sends its records back where they failed"
        );
    }
    let from = args
        .from
        .as_deref()
        .map(|t| read::parse_time("--from", t))
        .transpose()?;
    let to = args
        .to
        .as_deref()
        .map(|t| read::parse_time("--to", t))
        .transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        bail!(
            "--from ({}) is after --to ({})",
            args.from.unwrap_or_default(),
            args.to.unwrap_or_default()
        );
    }
    let selection = match (from, args.start_offset) {
        (Some(from), _) => Selection::Time { from, to },
        (None, Some(start)) => Selection::Offsets {
            start,
            end: args.end_offset,
        },
        (None, None) => bail!("give --from or --start-offset"),
    };
    let kafka = kafka.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        replay(
            &kafka,
            runtime,
            &topic,
            kind,
            selection,
            args.partition,
            args.tenant.as_deref(),
            args.dry_run,
        )
    })
    .await?
}

#[derive(Debug, Clone, Copy)]
enum Selection {
    Time { from: i64, to: Option<i64> },
    Offsets { start: i64, end: Option<i64> },
}

/// The offset ranges to replay, per partition, fixed before anything is produced.
fn plan(
    reader: &TopicReader,
    selection: Selection,
    only: Option<i32>,
) -> anyhow::Result<Vec<Range>> {
    let partitions = match only {
        Some(partition) => {
            reader.check_partition(partition)?;
            vec![partition]
        }
        None => reader.partitions.clone(),
    };
    let mut ranges = Vec::with_capacity(partitions.len());
    for partition in partitions {
        // The end as it is now: the command never chases its own messages.
        let (low, high) = reader.watermarks(partition)?;
        let range = match selection {
            Selection::Offsets { start, end } => {
                if let Some(end) = end
                    && start > end
                {
                    bail!("--start-offset {start} is after --end-offset {end}");
                }
                let end = end.unwrap_or(high);
                if start > end {
                    bail!(
                        "--start-offset {start} is past the end of {} partition {partition} (next offset {end})",
                        reader.topic
                    );
                }
                if end > high {
                    bail!(
                        "--end-offset {end} is past the end of {} partition {partition} (next offset {high})",
                        reader.topic
                    );
                }
                if start < low {
                    bail!(
                        "--start-offset {start} is before the first offset {} partition {partition} still holds ({low})",
                        reader.topic
                    );
                }
                Range {
                    partition,
                    start,
                    end,
                }
            }
            Selection::Time { from, to } => {
                let end = match to {
                    Some(to) => reader.offset_at_time(partition, to)?.min(high),
                    None => high,
                };
                let start = reader.offset_at_time(partition, from)?.min(end);
                Range {
                    partition,
                    start,
                    end,
                }
            }
        };
        ranges.push(range);
    }
    Ok(ranges)
}

#[derive(Deserialize)]
struct EnrichedTenant<'a> {
    #[serde(borrow)]
    pipeline_tenant: Option<std::borrow::Cow<'a, str>>,
}

fn enriched_tenant(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<EnrichedTenant<'_>>(payload)
        .ok()?
        .pipeline_tenant
        .map(|t| t.into_owned())
}

/// The tenant a message belongs to, read from its content (never its key alone).
fn tenant_of(kind: TopicKind, payload: &[u8]) -> Option<String> {
    match kind {
        TopicKind::Raw => RawEvent::decode_from(payload).ok().map(|e| e.tenant),
        TopicKind::Enriched => enriched_tenant(payload),
        TopicKind::DeadLetter | TopicKind::Other => enriched_tenant(payload)
            .or_else(|| RawEvent::decode_from(payload).ok().map(|e| e.tenant)),
    }
}

#[derive(Default)]
struct PartitionTally {
    read: u64,
    selected: u64,
    acknowledged: u64,
}

#[allow(clippy::too_many_arguments)]
fn replay(
    kafka: &KafkaSettings,
    runtime: tokio::runtime::Handle,
    topic: &str,
    kind: TopicKind,
    selection: Selection,
    only: Option<i32>,
    tenant: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let reader = TopicReader::open(kafka, topic, "replay")?;
    let ranges = plan(&reader, selection, only)?;
    let in_ranges: i64 = ranges.iter().map(Range::len).sum();
    let mut tally: BTreeMap<i32, PartitionTally> = ranges
        .iter()
        .map(|r| (r.partition, PartitionTally::default()))
        .collect();
    let selected = |message: &rdkafka::message::BorrowedMessage<'_>| {
        tenant.is_none_or(|wanted| {
            tenant_of(kind, message.payload().unwrap_or_default()).as_deref() == Some(wanted)
        })
    };
    let mut progress = Progress::new(in_ranges);

    if dry_run {
        if tenant.is_some() {
            reader.read(&ranges, |message| {
                let entry = tally.entry(message.partition()).or_default();
                entry.read += 1;
                if selected(message) {
                    entry.selected += 1;
                }
                progress.tick(&tally, 0);
                Ok(ControlFlow::Continue(()))
            })?;
        } else {
            for range in &ranges {
                let entry = tally.entry(range.partition).or_default();
                entry.read = u64::try_from(range.len()).unwrap_or(0);
                entry.selected = entry.read;
            }
        }
        println!("dry run: nothing is produced");
        for range in &ranges {
            let t = &tally[&range.partition];
            println!(
                "partition {}: offsets {}..{} ({} in range), {} to replay",
                range.partition,
                range.start,
                range.end,
                range.len(),
                t.selected
            );
        }
        let total: u64 = tally.values().map(|t| t.selected).sum();
        println!(
            "{total} message(s) of {topic} would be replayed{}",
            filter_note(tenant, &tally)
        );
        return Ok(());
    }

    let mut sender: Sender<i32> = Sender::new(kafka, runtime)?;
    let mut failures: Vec<String> = Vec::new();
    let read_result = reader.read(&ranges, |message| {
        let partition = message.partition();
        tally.entry(partition).or_default().read += 1;
        if !selected(message) {
            return Ok(ControlFlow::Continue(()));
        }
        tally.entry(partition).or_default().selected += 1;
        let outgoing = Outgoing {
            topic,
            key: message.key(),
            payload: message.payload(),
            headers: message
                .headers()
                .map(rdkafka::message::BorrowedHeaders::detach),
        };
        match sender.send(partition, outgoing) {
            Ok(outcomes) => count(outcomes, &mut tally, &mut failures),
            Err(_stopped) => return Ok(ControlFlow::Break(())),
        }
        progress.tick(&tally, sender.in_flight());
        Ok(ControlFlow::Continue(()))
    });
    let outcomes = sender.finish();
    count(outcomes, &mut tally, &mut failures);

    for range in &ranges {
        let t = &tally[&range.partition];
        println!(
            "partition {}: offsets {}..{}, {} replayed",
            range.partition, range.start, range.end, t.acknowledged
        );
    }
    let acknowledged: u64 = tally.values().map(|t| t.acknowledged).sum();
    println!(
        "replayed {acknowledged} message(s) onto {topic}{}",
        filter_note(tenant, &tally)
    );
    read_result?;
    if let Some(first) = failures.first() {
        let selected: u64 = tally.values().map(|t| t.selected).sum();
        bail!(
            "{} of {selected} selected message(s) were not acknowledged (first: {first}); replaying the range again is safe",
            selected - acknowledged
        );
    }
    Ok(())
}

fn count(
    outcomes: Vec<Outcome<i32>>,
    tally: &mut BTreeMap<i32, PartitionTally>,
    failures: &mut Vec<String>,
) {
    for outcome in outcomes {
        match outcome.delivery {
            Ok(_) => tally.entry(outcome.tag).or_default().acknowledged += 1,
            Err(why) => failures.push(why),
        }
    }
}

fn filter_note(tenant: Option<&str>, tally: &BTreeMap<i32, PartitionTally>) -> String {
    let read: u64 = tally.values().map(|t| t.read).sum();
    let selected: u64 = tally.values().map(|t| t.selected).sum();
    match tenant {
        Some(tenant) => format!(
            " ({read} read, {} not of tenant {tenant} skipped)",
            read - selected
        ),
        None => String::new(),
    }
}

/// A line on stderr about once a second while the work lasts.
struct Progress {
    total: i64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(total: i64) -> Self {
        let now = Instant::now();
        Progress {
            total,
            started: now,
            last: now,
        }
    }

    fn tick(&mut self, tally: &BTreeMap<i32, PartitionTally>, in_flight: usize) {
        if self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let read: u64 = tally.values().map(|t| t.read).sum();
        let selected: u64 = tally.values().map(|t| t.selected).sum();
        let acknowledged: u64 = tally.values().map(|t| t.acknowledged).sum();
        eprintln!(
            "replay: {read}/{} read, {selected} selected, {acknowledged} replayed, {in_flight} awaiting acknowledgement ({:.0?})",
            self.total,
            self.started.elapsed()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_envelope::ENVELOPE_VERSION;

    #[test]
    fn the_tenant_comes_from_the_content() {
        let raw = RawEvent {
            envelope_version: ENVELOPE_VERSION,
            tenant: "acme".into(),
            ..RawEvent::default()
        }
        .encode_to_vec();
        assert_eq!(tenant_of(TopicKind::Raw, &raw).as_deref(), Some("acme"));
        assert_eq!(tenant_of(TopicKind::Raw, b"{}"), None);
        let enriched = br#"{"pipeline_tenant":"globex","deal_id":1}"#;
        assert_eq!(
            tenant_of(TopicKind::Enriched, enriched).as_deref(),
            Some("globex")
        );
        assert_eq!(tenant_of(TopicKind::Enriched, &raw), None);
        assert_eq!(tenant_of(TopicKind::Other, &raw).as_deref(), Some("acme"));
        assert_eq!(
            tenant_of(TopicKind::Other, enriched).as_deref(),
            Some("globex")
        );
    }
}
