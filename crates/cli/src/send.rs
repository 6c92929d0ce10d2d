//! Producing for the operator tools (replay, redrive): the project's producer
//! settings (`tributary_kafka::producer_config`: acks=all, idempotent, the
//! configured compression and message timeout), exact key and value bytes,
//! and a bounded window of unacknowledged messages so nothing waits in the
//! queue past the message timeout however much is sent.
//!
//! The first failed delivery stops the sender: what is still queued is
//! purged and nothing more is produced with that client. After a timed-out
//! delivery librdkafka would recover an idempotent producer by bumping its
//! epoch, which the local broker (Tansu 0.6.0) mishandles (its storage panics
//! on the next produce); a one-shot command simply stops and reports instead.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::types::RDKafkaErrorCode;
use tributary_config::KafkaSettings;

/// Unacknowledged messages at most.
const WINDOW: usize = 1_000;

/// Where the broker stored a message, or why it did not.
pub type Delivery = Result<(i32, i64), String>;

/// One message's outcome, with the caller's tag.
pub struct Outcome<T> {
    pub tag: T,
    pub delivery: Delivery,
}

/// One message to produce.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: Option<OwnedHeaders>,
}

pub struct Sender<T> {
    producer: FutureProducer,
    pending: VecDeque<(T, Instant, DeliveryFuture)>,
    window: usize,
    ack_deadline: Duration,
    runtime: tokio::runtime::Handle,
    stopped: Option<String>,
}

impl<T> Sender<T> {
    /// Must be called from a blocking thread of a tokio runtime (acknowledgements are awaited on it).
    pub fn new(kafka: &KafkaSettings, runtime: tokio::runtime::Handle) -> anyhow::Result<Self> {
        let producer: FutureProducer = tributary_kafka::producer_config(kafka)
            .create()
            .context("creating a kafka producer")?;
        let queue = usize::try_from(kafka.queue_max_messages).unwrap_or(WINDOW);
        Ok(Sender {
            producer,
            pending: VecDeque::new(),
            window: WINDOW.min(queue / 2).max(1),
            // librdkafka enforces message.timeout.ms itself; the margin only
            // guards against a callback that never comes.
            ack_deadline: Duration::from_millis(u64::from(kafka.message_timeout_ms))
                + Duration::from_secs(1),
            runtime,
            stopped: None,
        })
    }

    /// Messages queued and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Queues one message; returns the outcomes of the earlier messages whose
    /// acknowledgement it waited for to stay within the window. Refused once
    /// a delivery failed.
    pub fn send(&mut self, tag: T, message: Outgoing<'_>) -> Result<Vec<Outcome<T>>, String> {
        if let Some(why) = &self.stopped {
            return Err(why.clone());
        }
        let mut done = Vec::new();
        while self.pending.len() >= self.window {
            done.extend(self.wait_oldest());
        }
        let mut record = FutureRecord::to(message.topic);
        if let Some(key) = message.key {
            record = record.key(key);
        }
        if let Some(payload) = message.payload {
            record = record.payload(payload);
        }
        if let Some(headers) = message.headers {
            record = record.headers(headers);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.pending.push_back((tag, Instant::now(), delivery));
                    return Ok(done);
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    if self.pending.is_empty() {
                        std::thread::sleep(Duration::from_millis(10));
                    } else {
                        done.extend(self.wait_oldest());
                    }
                    if let Some(why) = &self.stopped {
                        return Err(why.clone());
                    }
                }
                Err((err, _)) => {
                    let why = format!("producing to {}: {err}", message.topic);
                    self.stop(&why);
                    return Err(why);
                }
            }
        }
    }

    /// Waits for every acknowledgement still outstanding.
    pub fn finish(mut self) -> Vec<Outcome<T>> {
        let mut done = Vec::new();
        while !self.pending.is_empty() {
            done.extend(self.wait_oldest());
        }
        done
    }

    fn wait_oldest(&mut self) -> Option<Outcome<T>> {
        let (tag, queued, delivery) = self.pending.pop_front()?;
        let left = self.ack_deadline.saturating_sub(queued.elapsed());
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(left, delivery).await });
        let delivery = match result {
            Err(_) => Err(format!("no acknowledgement within {:?}", self.ack_deadline)),
            Ok(Err(_canceled)) => Err("the producer dropped the message".to_owned()),
            Ok(Ok(Ok(stored))) => Ok((stored.partition, stored.offset)),
            Ok(Ok(Err((err, _)))) => Err(err.to_string()),
        };
        if let Err(why) = &delivery {
            self.stop(why);
        }
        Some(Outcome { tag, delivery })
    }

    fn stop(&mut self, why: &str) {
        if self.stopped.is_none() {
            self.stopped = Some(why.to_owned());
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
        }
    }
}
