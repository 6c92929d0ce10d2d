//! `tributary tail`: print what is on a topic.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tributary_config::{KafkaSettings, TopicSettings};
use tributary_envelope::{RawEvent, Verdict};

#[derive(Args)]
pub struct TailArgs {
    /// `raw`, `enriched`, `dead-letter`, or a topic name.
    #[arg(long, default_value = "raw")]
    topic: String,
    /// Only events written at or after this time (RFC 3339, or epoch milliseconds).
    #[arg(long)]
    since: Option<String>,
    /// Start from the beginning of the topic (default: only new events).
    #[arg(long, conflicts_with = "since")]
    from_beginning: bool,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<usize>,
    /// Stop after this long without a new event (e.g. `2s`); default: keep waiting.
    #[arg(long, value_parser = parse_duration)]
    idle_exit: Option<Duration>,
    /// Print raw bodies too.
    #[arg(long)]
    body: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("unknown unit in {text:?}; use ms, s or m")),
    }
}

fn parse_since(text: &str) -> anyhow::Result<i64> {
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis);
    }
    let parsed = DateTime::parse_from_rfc3339(text).with_context(|| format!("--since {text:?}"))?;
    Ok(parsed.timestamp_millis())
}

pub async fn run(
    kafka: &KafkaSettings,
    topics: &TopicSettings,
    args: TailArgs,
) -> anyhow::Result<()> {
    let topic = match args.topic.as_str() {
        "raw" => topics.raw.clone(),
        "enriched" => topics.enriched.clone(),
        "dead-letter" => topics.dead_letter.clone(),
        other => other.to_owned(),
    };
    let decode_raw = topic == topics.raw;
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || tail(&kafka, &topic, decode_raw, since, &args)).await?
}

fn tail(
    kafka: &KafkaSettings,
    topic: &str,
    decode_raw: bool,
    since: Option<i64>,
    args: &TailArgs,
) -> anyhow::Result<()> {
    let mut config = tributary_kafka::consumer_config(kafka, "tributary-cli-tail");
    config.set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create().context("creating a consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("reading metadata of {topic} from {}", kafka.brokers))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic {topic} does not exist on {}", kafka.brokers);
    }
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        let start = match (since, args.from_beginning) {
            (Some(millis), _) => {
                Offset::Offset(first_offset_at(&consumer, topic, *partition, millis)?)
            }
            (None, true) => Offset::Beginning,
            (None, false) => Offset::End,
        };
        assignment.add_partition_offset(topic, *partition, start)?;
    }
    consumer.assign(&assignment)?;

    let mut printed = 0;
    let mut last_event = Instant::now();
    loop {
        if args.limit.is_some_and(|limit| printed >= limit) {
            break;
        }
        if args
            .idle_exit
            .is_some_and(|idle| last_event.elapsed() >= idle)
        {
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.context("reading")?;
        // A time lookup past a partition's end can answer offset 0 on some
        // brokers; the timestamp filter keeps older events out regardless.
        if since.is_some_and(|millis| message.timestamp().to_millis().is_some_and(|t| t < millis)) {
            continue;
        }
        last_event = Instant::now();
        printed += 1;
        print_message(&message, decode_raw, args.body);
    }
    eprintln!("{printed} event(s) from {topic}");
    Ok(())
}

/// The earliest offset of `partition` whose timestamp is at or after `millis`.
fn first_offset_at(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    millis: i64,
) -> anyhow::Result<i64> {
    let mut query = TopicPartitionList::new();
    query.add_partition_offset(topic, partition, Offset::Offset(millis))?;
    let found = consumer.offsets_for_times(query, Duration::from_secs(10))?;
    let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let offset = match found.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) => offset,
        // No message that late: start at the end.
        _ => high,
    };
    Ok(offset.min(high))
}

fn print_message(message: &BorrowedMessage<'_>, decode_raw: bool, show_body: bool) {
    let key = message
        .key()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let payload = message.payload().unwrap_or_default();
    let position = format!("p{}@{}", message.partition(), message.offset());
    if !decode_raw {
        println!("{position} {key} {}", String::from_utf8_lossy(payload));
        return;
    }
    match RawEvent::decode_from(payload) {
        Ok(event) => {
            let keys = event.keys.clone().unwrap_or_default();
            let received = DateTime::<Utc>::from_timestamp_micros(
                i64::try_from(event.received_at_micros).unwrap_or(0),
            )
            .map(|t| t.format("%H:%M:%S%.3f").to_string())
            .unwrap_or_default();
            let verdict = match Verdict::try_from(event.verdict) {
                Ok(Verdict::AcceptedWithWarnings) => {
                    let codes: Vec<_> = event.warnings.iter().map(|w| w.code.as_str()).collect();
                    format!("warnings={}", codes.join(","))
                }
                _ => "ok".to_owned(),
            };
            println!(
                "{position} {received} {tenant}/{source} v{version} {action} {object} {id} attempt={attempt} event={event_id} {verdict} {bytes}B",
                tenant = event.tenant,
                source = event.source,
                version = keys.payload_version,
                action = keys.action,
                object = keys.object,
                id = keys.object_id,
                attempt = keys.attempt,
                event_id = event.event_id,
                bytes = event.body.len(),
            );
            if show_body {
                println!("  {}", String::from_utf8_lossy(&event.body));
            }
        }
        Err(err) => println!("{position} {key} <not a raw envelope: {err}>"),
    }
}
