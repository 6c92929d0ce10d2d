//! `tributary tail`: print what is on a topic.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tributary_config::{KafkaSettings, TopicSettings};
use tributary_envelope::{RawEvent, Verdict};

use crate::read::{self, TopicKind, TopicReader};

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

pub async fn run(
    kafka: &KafkaSettings,
    topics: &TopicSettings,
    args: TailArgs,
) -> anyhow::Result<()> {
    let (topic, kind) = read::resolve_topic(topics, &args.topic);
    let decode_raw = kind == TopicKind::Raw;
    let since = args
        .since
        .as_deref()
        .map(|text| read::parse_time("--since", text))
        .transpose()?;
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
    let reader = TopicReader::open(kafka, topic, "tail")?;
    let mut assignment = TopicPartitionList::new();
    for partition in &reader.partitions {
        let start = match (since, args.from_beginning) {
            (Some(millis), _) => Offset::Offset(reader.offset_at_time(*partition, millis)?),
            (None, true) => Offset::Beginning,
            (None, false) => Offset::End,
        };
        assignment.add_partition_offset(topic, *partition, start)?;
    }
    let consumer = reader.consumer();
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
        let message = match message {
            Ok(message) => message,
            // The reader reports partition ends; tail keeps waiting past them.
            Err(KafkaError::PartitionEOF(_)) => continue,
            Err(err) => return Err(err).context("reading"),
        };
        // Message times need not grow with offsets (producers set them):
        // the filter keeps older events out of a time-started tail.
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
                Ok(Verdict::Rejected) => format!("rejected violations={}", event.warnings.len()),
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
