//! A producer that reports plainly whether the broker has an event, and
//! recovers by itself when the broker comes back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use tributary_config::KafkaSettings;

/// Where the broker stored an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The local queue is full: the broker is slower than the offered load.
    #[error("producer queue is full")]
    QueueFull,
    /// The broker did not acknowledge the event in time or refused it.
    #[error("broker did not store the event: {0}")]
    NotStored(KafkaError),
    /// No acknowledgement within the configured message timeout (and a margin).
    #[error("no acknowledgement from the broker within {0:?}")]
    Timeout(Duration),
    #[error("kafka client: {0}")]
    Client(KafkaError),
}

impl ProduceError {
    /// The message itself is refused (too large, an invalid record): sending
    /// it again fails the same way, so it must go elsewhere, not be retried.
    pub fn refuses_the_message(&self) -> bool {
        matches!(
            self,
            ProduceError::NotStored(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge
                    | RDKafkaErrorCode::InvalidMessageSize
                    | RDKafkaErrorCode::MessageBatchTooLarge
                    | RDKafkaErrorCode::InvalidRecord
            ))
        )
    }
}

/// An idempotent producer whose every `send` resolves only once the broker
/// acknowledged the event (or definitely did not).
///
/// A client whose delivery failed in a way that disturbs its idempotence state
/// (a timeout, a lost connection, a fenced or unknown producer id, a fatal
/// error) is retired and replaced by a fresh one with a new producer id.
/// librdkafka would otherwise recover such a client by bumping its producer
/// epoch, which the local broker (Tansu 0.6.0) mishandles: its storage panics
/// and stops serving. With Apache Kafka the replacement is merely a new
/// producer id. Either way the service recovers without a restart.
///
/// A client that lost every broker connection (the broker restarted) is
/// replaced too before its next event, even when no delivery failed: the
/// local broker panics on the first event of a producer id it lost track of.
pub struct EventProducer {
    settings: KafkaSettings,
    inner: RwLock<Arc<Client>>,
    ack_deadline: Duration,
}

/// A client and whether it lost every broker connection since it was created.
struct Client {
    producer: FutureProducer<BrokerWatch>,
    all_brokers_lost: Arc<AtomicBool>,
    created: Instant,
}

/// A client that lost every broker is replaced only once it is this old, so
/// a long outage replaces it every so often, not on every event.
const MIN_AGE_TO_REPLACE: Duration = Duration::from_secs(2);

impl std::ops::Deref for Client {
    type Target = FutureProducer<BrokerWatch>;
    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

/// A client context that notes when every broker connection was lost, and
/// logs librdkafka's global errors as the default context does.
struct BrokerWatch {
    all_brokers_lost: Arc<AtomicBool>,
}

impl ClientContext for BrokerWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.all_brokers_lost.store(true, Ordering::Relaxed);
        }
        tracing::error!(target: "librdkafka", "{error}: {reason}");
    }
}

fn create_client(settings: &KafkaSettings) -> Result<Client, KafkaError> {
    let all_brokers_lost = Arc::new(AtomicBool::new(false));
    let producer = crate::producer_config(settings).create_with_context(BrokerWatch {
        all_brokers_lost: all_brokers_lost.clone(),
    })?;
    Ok(Client {
        producer,
        all_brokers_lost,
        created: Instant::now(),
    })
}

impl EventProducer {
    pub fn new(settings: &KafkaSettings) -> Result<Self, ProduceError> {
        let producer = create_client(settings).map_err(ProduceError::Client)?;
        Ok(EventProducer {
            settings: settings.clone(),
            inner: RwLock::new(Arc::new(producer)),
            // librdkafka enforces message.timeout.ms itself; the margin only
            // guards against a callback that never comes.
            ack_deadline: Duration::from_millis(u64::from(settings.message_timeout_ms))
                + Duration::from_secs(1),
        })
    }

    fn current(&self) -> Arc<Client> {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The client to send with: a fresh one if the current one lost every
    /// broker since it was created.
    fn sending_client(&self) -> Arc<Client> {
        let producer = self.current();
        if !producer.all_brokers_lost.load(Ordering::Relaxed)
            || producer.created.elapsed() < MIN_AGE_TO_REPLACE
        {
            return producer;
        }
        self.retire(producer, "every broker connection was lost");
        self.current()
    }

    /// Sends one event and waits for the broker's acknowledgement.
    pub async fn send(
        self: &Arc<Self>,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<Delivered, ProduceError> {
        self.enqueue(topic, key, payload)?.await
    }

    /// Queues one event and returns, separately, the wait for its
    /// acknowledgement. Events queued one after another for the same key keep
    /// their order on the partition, whenever their acknowledgements are awaited.
    pub fn enqueue(
        self: &Arc<Self>,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<
        impl Future<Output = Result<Delivered, ProduceError>> + Send + 'static + use<>,
        ProduceError,
    > {
        let producer = self.sending_client();
        let record = FutureRecord::to(topic).key(key).payload(payload);
        let delivery = match producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                return Err(ProduceError::QueueFull);
            }
            Err((err, _)) => {
                self.retire_if_disturbed(producer, &err);
                return Err(ProduceError::NotStored(err));
            }
        };
        let this = self.clone();
        Ok(async move {
            match tokio::time::timeout(this.ack_deadline, delivery).await {
                Err(_) => {
                    this.retire(producer, "no acknowledgement in time");
                    Err(ProduceError::Timeout(this.ack_deadline))
                }
                // The client was dropped with the event in flight.
                Ok(Err(_canceled)) => Err(ProduceError::NotStored(KafkaError::Canceled)),
                Ok(Ok(Ok(delivery))) => Ok(Delivered {
                    partition: delivery.partition,
                    offset: delivery.offset,
                }),
                Ok(Ok(Err((err, _message)))) => {
                    this.retire_if_disturbed(producer, &err);
                    Err(ProduceError::NotStored(err))
                }
            }
        })
    }

    fn retire_if_disturbed(&self, failed: Arc<Client>, err: &KafkaError) {
        if let Some((code, reason)) = failed.client().fatal_error() {
            self.retire(failed, &format!("fatal error {code}: {reason}"));
        } else if err.rdkafka_error_code().is_some_and(disturbs_idempotence) {
            self.retire(failed, &err.to_string());
        }
    }

    /// Replaces `failed` with a fresh client, once, whoever notices first; the
    /// retired client's pending events fail at once instead of being resent.
    fn retire(&self, failed: Arc<Client>, why: &str) {
        let mut guard = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !Arc::ptr_eq(&guard, &failed) {
            return; // already replaced
        }
        let fresh = match create_client(&self.settings) {
            Ok(fresh) => Arc::new(fresh),
            Err(err) => {
                tracing::error!(error = %err, "could not create a replacement kafka producer");
                return;
            }
        };
        tracing::warn!(reason = why, "replacing the kafka producer client");
        let retired = std::mem::replace(&mut *guard, fresh);
        drop(guard);
        retired.purge(PurgeConfig::default().queue().inflight());
        drop(failed);
        // Dropping a client flushes for up to half a second: keep that off the async workers.
        tokio::task::spawn_blocking(move || drop(retired));
    }

    /// Waits until every queued event is acknowledged or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), ProduceError> {
        self.current()
            .flush(Timeout::After(timeout))
            .map_err(ProduceError::Client)
    }

    /// Events queued locally and not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.current().in_flight_count()
    }

    /// Whether the broker answers a metadata request for `topic` in time.
    pub async fn broker_reachable(&self, topic: &str) -> bool {
        let producer = self.current();
        let topic = topic.to_owned();
        let timeout = Duration::from_millis(u64::from(self.settings.metadata_timeout_ms));
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .is_ok_and(|metadata| {
                    metadata
                        .topics()
                        .iter()
                        .any(|t| t.name() == topic && t.error().is_none())
                })
        })
        .await
        .unwrap_or(false)
    }
}

/// Errors after which librdkafka would bump the producer epoch or has lost
/// track of the producer's sequence.
fn disturbs_idempotence(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::PurgeInflight
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::Fatal
    )
}
