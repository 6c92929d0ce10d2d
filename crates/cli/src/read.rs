//! Reading topics, shared by the subcommands: topic-name resolution, time
//! arguments, offset lookups by time (with the past-the-end fix) and reading
//! fixed offset ranges up to where they ended when the command started.

use std::cell::OnceCell;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::DateTime;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tributary_config::{KafkaSettings, TopicSettings};

/// Timeout of one metadata, watermark or offset request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A read that gets neither a message nor an end-of-partition for this long
/// has stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Which of the pipeline's topics a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Raw,
    Enriched,
    DeadLetter,
    Other,
}

/// `raw`, `enriched` and `dead-letter` name the configured topics; anything
/// else is a topic name (which may still be one of the configured ones).
pub fn resolve_topic(topics: &TopicSettings, name: &str) -> (String, TopicKind) {
    let topic = match name {
        "raw" => topics.raw.clone(),
        "enriched" => topics.enriched.clone(),
        "dead-letter" => topics.dead_letter.clone(),
        other => other.to_owned(),
    };
    let kind = if topic == topics.raw {
        TopicKind::Raw
    } else if topic == topics.enriched {
        TopicKind::Enriched
    } else if topic == topics.dead_letter {
        TopicKind::DeadLetter
    } else {
        TopicKind::Other
    };
    (topic, kind)
}

/// A time argument: epoch milliseconds, or RFC 3339 (`2025-03-04T14:00:00Z`).
pub fn parse_time(flag: &str, text: &str) -> anyhow::Result<i64> {
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis);
    }
    let parsed = DateTime::parse_from_rfc3339(text).with_context(|| {
        format!(
            "{flag} {text:?} is neither RFC 3339 (e.g. 2025-03-04T14:00:00Z) nor epoch milliseconds"
        )
    })?;
    Ok(parsed.timestamp_millis())
}

/// Offsets `start..end` (end exclusive) of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

impl Range {
    pub fn len(&self) -> i64 {
        (self.end - self.start).max(0)
    }
}

/// A consumer for reading one topic outside any consumer group's progress:
/// partitions are assigned explicitly and nothing is ever committed.
pub struct TopicReader {
    kafka: KafkaSettings,
    consumer: BaseConsumer,
    /// A second consumer for single-message probes, so they never mix with a read.
    probe: OnceCell<BaseConsumer>,
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// A consumer that never commits; `group.id` is only required by the client.
pub fn plain_consumer(kafka: &KafkaSettings, purpose: &str) -> anyhow::Result<BaseConsumer> {
    let mut config = tributary_kafka::consumer_config(kafka, &format!("tributary-cli-{purpose}"));
    config.set("enable.partition.eof", "true");
    config.create().context("creating a kafka consumer")
}

/// The partitions of `topic`, or an error naming it when it does not exist.
pub fn partitions_of(
    consumer: &BaseConsumer,
    kafka: &KafkaSettings,
    topic: &str,
) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("reading metadata of {topic} from {}", kafka.brokers))?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic {topic} does not exist on {}", kafka.brokers);
    }
    partitions.sort_unstable();
    Ok(partitions)
}

impl TopicReader {
    /// Opens `topic`; fails when it does not exist.
    pub fn open(kafka: &KafkaSettings, topic: &str, purpose: &str) -> anyhow::Result<Self> {
        let consumer = plain_consumer(kafka, purpose)?;
        let partitions = partitions_of(&consumer, kafka, topic)?;
        Ok(TopicReader {
            kafka: kafka.clone(),
            consumer,
            probe: OnceCell::new(),
            topic: topic.to_owned(),
            partitions,
        })
    }

    pub fn consumer(&self) -> &BaseConsumer {
        &self.consumer
    }

    /// Fails unless `partition` is one of the topic's.
    pub fn check_partition(&self, partition: i32) -> anyhow::Result<()> {
        if !self.partitions.contains(&partition) {
            bail!(
                "topic {} has no partition {partition} (partitions: 0..{})",
                self.topic,
                self.partitions.len()
            );
        }
        Ok(())
    }

    /// `(low, high)`: the first offset kept and the offset the next message gets.
    pub fn watermarks(&self, partition: i32) -> anyhow::Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(&self.topic, partition, REQUEST_TIMEOUT)
            .with_context(|| {
                format!(
                    "reading the offsets of {} partition {partition}",
                    self.topic
                )
            })
    }

    /// Every partition from its first kept offset to its current end.
    pub fn whole(&self) -> anyhow::Result<Vec<Range>> {
        self.partitions
            .iter()
            .map(|&partition| {
                let (start, end) = self.watermarks(partition)?;
                Ok(Range {
                    partition,
                    start,
                    end,
                })
            })
            .collect()
    }

    /// The earliest offset of `partition` whose message time is at or after
    /// `millis`; the partition's end (`high`) when no message is that late.
    ///
    /// Some brokers (Tansu 0.6.0, the local one) answer offset 0 for a time
    /// later than the newest message instead of the end, so that case is
    /// decided here from the newest message's own timestamp, whatever the
    /// broker answers.
    pub fn offset_at_time(&self, partition: i32, millis: i64) -> anyhow::Result<i64> {
        let (low, high) = self.watermarks(partition)?;
        if high <= low {
            return Ok(high);
        }
        if let Some(newest) = self.timestamp_at(partition, high - 1)?
            && newest < millis
        {
            return Ok(high);
        }
        let mut query = TopicPartitionList::new();
        query.add_partition_offset(&self.topic, partition, Offset::Offset(millis))?;
        let found = self
            .consumer
            .offsets_for_times(query, REQUEST_TIMEOUT)
            .with_context(|| {
                format!(
                    "looking up offsets by time in {} partition {partition}",
                    self.topic
                )
            })?;
        let offset = match found
            .find_partition(&self.topic, partition)
            .map(|p| p.offset())
        {
            Some(Offset::Offset(offset)) => offset,
            // No message that late.
            _ => high,
        };
        Ok(offset.clamp(low, high))
    }

    /// The message time (epoch ms) of the message at `offset`, if it has one.
    fn timestamp_at(&self, partition: i32, offset: i64) -> anyhow::Result<Option<i64>> {
        Ok(self
            .message_at(partition, offset)?
            .and_then(|m| m.timestamp().to_millis()))
    }

    /// The message at `partition@offset`; `None` when there is none (past the
    /// end, or a gap).
    pub fn message_at(&self, partition: i32, offset: i64) -> anyhow::Result<Option<OwnedMessage>> {
        let probe = match self.probe.get() {
            Some(probe) => probe,
            None => {
                let created = plain_consumer(&self.kafka, "probe")?;
                self.probe.get_or_init(|| created)
            }
        };
        let (_, high) = self.watermarks(partition)?;
        if offset >= high {
            return Ok(None);
        }
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&self.topic, partition, Offset::Offset(offset))?;
        probe.assign(&assignment)?;
        let deadline = Instant::now() + STALL_TIMEOUT;
        let found = loop {
            if Instant::now() >= deadline {
                bail!(
                    "no answer reading {} partition {partition} at offset {offset} within {STALL_TIMEOUT:?}",
                    self.topic
                );
            }
            match probe.poll(Duration::from_millis(200)) {
                None => {}
                Some(Ok(message))
                    if message.partition() == partition && message.offset() >= offset =>
                {
                    break (message.offset() == offset).then(|| message.detach());
                }
                Some(Ok(_)) => {}
                Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break None,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(err)) => {
                    return Err(err).with_context(|| format!("reading {}", self.topic));
                }
            }
        };
        probe.unassign()?;
        Ok(found)
    }

    /// Reads every message of `ranges` in offset order per partition (the
    /// partitions interleaved), stopping at each range's end even when the
    /// partition has grown since, or when `each` says so.
    pub fn read<F>(&self, ranges: &[Range], mut each: F) -> anyhow::Result<()>
    where
        F: FnMut(&BorrowedMessage<'_>) -> anyhow::Result<ControlFlow<()>>,
    {
        // Next offset wanted per partition; a partition is done at its end.
        let mut next: Vec<(Range, i64)> = ranges
            .iter()
            .filter(|r| r.start < r.end)
            .map(|r| (*r, r.start))
            .collect();
        if next.is_empty() {
            return Ok(());
        }
        let mut assignment = TopicPartitionList::new();
        for (range, _) in &next {
            assignment.add_partition_offset(
                &self.topic,
                range.partition,
                Offset::Offset(range.start),
            )?;
        }
        self.consumer.assign(&assignment)?;
        let mut last_event = Instant::now();
        let result = loop {
            next.retain(|(range, wanted)| *wanted < range.end);
            if next.is_empty() {
                break Ok(());
            }
            if last_event.elapsed() >= STALL_TIMEOUT {
                let (range, wanted) = next[0];
                break Err(anyhow::anyhow!(
                    "reading {} stalled: nothing from partition {} at offset {wanted} (range ends at {}) for {STALL_TIMEOUT:?}",
                    self.topic,
                    range.partition,
                    range.end
                ));
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Ok(message)) => {
                    last_event = Instant::now();
                    let Some((range, wanted)) = next
                        .iter_mut()
                        .find(|(r, _)| r.partition == message.partition())
                    else {
                        continue;
                    };
                    // A stale or repeated message, or one past the range.
                    if message.offset() < *wanted || message.offset() >= range.end {
                        if message.offset() >= range.end {
                            *wanted = range.end;
                        }
                        continue;
                    }
                    *wanted = message.offset() + 1;
                    match each(&message) {
                        Ok(ControlFlow::Continue(())) => {}
                        Ok(ControlFlow::Break(())) => break Ok(()),
                        Err(err) => break Err(err),
                    }
                }
                // The partition's current end, which is at or past the range's end:
                // the offsets left in the range hold no message.
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    last_event = Instant::now();
                    if let Some((range, wanted)) =
                        next.iter_mut().find(|(r, _)| r.partition == partition)
                    {
                        *wanted = range.end;
                    }
                }
                Some(Err(err)) => {
                    break Err(err).with_context(|| format!("reading {}", self.topic));
                }
            }
        };
        self.consumer.unassign()?;
        result
    }
}

/// `partition@offset`, as `tail` and `dlq list` print it (`p3@1207` or `3@1207`).
pub fn parse_position(text: &str) -> Result<(i32, i64), String> {
    let (partition, offset) = text
        .split_once('@')
        .ok_or_else(|| format!("{text:?} is not <partition>@<offset>, e.g. 3@1207"))?;
    let partition = partition.strip_prefix('p').unwrap_or(partition);
    let partition: i32 = partition
        .parse()
        .map_err(|_| format!("{text:?}: partition {partition:?} is not a number"))?;
    let offset: i64 = offset
        .parse()
        .map_err(|_| format!("{text:?}: offset {offset:?} is not a number"))?;
    if partition < 0 || offset < 0 {
        return Err(format!("{text:?}: partition and offset cannot be negative"));
    }
    Ok((partition, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_the_configured_topics() {
        let topics = TopicSettings {
            raw: "r".into(),
            enriched: "e".into(),
            dead_letter: "d".into(),
            retry: "t".into(),
        };
        assert_eq!(resolve_topic(&topics, "raw"), ("r".into(), TopicKind::Raw));
        assert_eq!(
            resolve_topic(&topics, "enriched"),
            ("e".into(), TopicKind::Enriched)
        );
        assert_eq!(
            resolve_topic(&topics, "dead-letter"),
            ("d".into(), TopicKind::DeadLetter)
        );
        assert_eq!(
            resolve_topic(&topics, "e"),
            ("e".into(), TopicKind::Enriched)
        );
        assert_eq!(
            resolve_topic(&topics, "other"),
            ("other".into(), TopicKind::Other)
        );
    }

    #[test]
    fn times_are_rfc3339_or_epoch_millis() {
        assert_eq!(
            parse_time("--from", "2025-03-04T14:00:00Z").unwrap(),
            1_741_096_800_000
        );
        assert_eq!(
            parse_time("--from", "2025-03-04T15:00:00+01:00").unwrap(),
            1_741_096_800_000
        );
        assert_eq!(
            parse_time("--from", "1741096800000").unwrap(),
            1_741_096_800_000
        );
        let err = parse_time("--to", "yesterday").unwrap_err().to_string();
        assert!(err.contains("--to") && err.contains("yesterday"), "{err}");
    }

    #[test]
    fn positions_read_as_printed() {
        assert_eq!(parse_position("3@1207"), Ok((3, 1207)));
        assert_eq!(parse_position("p0@5"), Ok((0, 5)));
        assert!(parse_position("3:1207").is_err());
        assert!(parse_position("x@1").is_err());
        assert!(parse_position("1@-2").is_err());
    }
}
