//! The collector: receives webhooks, authenticates and checks them with their
//! platform's source (found in `tributary_sources::REGISTRY`), splits each
//! delivery into its events and produces every one to the raw topic; the
//! malformed elements of a batch go to the dead-letter topic, in the envelope
//! they would have had. A delivery is acknowledged (`202` by default) only
//! once the broker has every one of them; when the broker cannot take them
//! the answer is `503` with `Retry-After`.

pub mod config;
pub mod delivery;
mod error;
mod internal_events;
mod pull;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::post;
use tokio::net::TcpListener;
use tributary_kafka::{EventProducer, TopicAdmin, TopicError};
use tributary_sources::Sources;
use tributary_sources::pull::{Checkpoints, PullSource};
use tributary_telemetry::{ReadinessCheck, ops_router};

pub use config::{CollectorConfig, CollectorSettings};
pub use error::Rejection;

/// The producer's settings: `message.max.bytes` large enough for any body
/// under `[collector] max_body_bytes` in its envelope, and for a refused
/// one's dead letter. Set so unless configured; configured lower, an error
/// naming both settings (a body under the limit must never be refused by
/// the client after the collector took it).
fn producer_settings(config: &CollectorConfig) -> anyhow::Result<tributary_config::KafkaSettings> {
    const KEY: &str = "message.max.bytes";
    let mut kafka = config.kafka.clone();
    let needed = delivery::largest_message_bytes(config.collector.max_body_bytes);
    match kafka.librdkafka.get(KEY) {
        None => {
            kafka.librdkafka.insert(KEY.into(), needed.to_string());
        }
        Some(value) => {
            let configured: usize = value.trim().parse().with_context(|| {
                format!("[kafka.librdkafka] {KEY} = {value:?} is not a number of bytes")
            })?;
            anyhow::ensure!(
                configured >= needed,
                "[kafka.librdkafka] {KEY} = {configured} is below the {needed} bytes that [collector] max_body_bytes = {} needs (a body, its envelope and, for a refused one, its dead letter in base64): raise {KEY} (and the brokers' message.max.bytes) or lower max_body_bytes",
                config.collector.max_body_bytes
            );
        }
    }
    Ok(kafka)
}

/// Shared by every request.
pub(crate) struct AppState {
    settings: CollectorSettings,
    sources: Sources,
    producer: Arc<EventProducer>,
    topic: String,
    /// Where the malformed elements of a batch are kept.
    dead_letter_topic: String,
    /// One permit per request being handled (`max_requests_in_flight`).
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// A collector ready to serve: configuration checked, producer created.
pub struct Collector {
    state: Arc<AppState>,
    config: CollectorConfig,
    /// The pull subscriptions and where they keep their positions.
    subscriptions: Vec<Box<dyn PullSource>>,
    checkpoints: Option<Checkpoints>,
}

impl Collector {
    /// Checks the configuration and creates the producer. Fails if a tenant
    /// section is invalid, or if the broker answers but the raw topic is missing.
    pub async fn new(config: CollectorConfig) -> anyhow::Result<Self> {
        let sources = Sources::from_config(&config.tenants)?;
        Self::with_sources(config, sources).await
    }

    /// Like [`Collector::new`], with these sources instead of the registry's.
    pub async fn with_sources(config: CollectorConfig, sources: Sources) -> anyhow::Result<Self> {
        let kafka = producer_settings(&config)?;
        let producer = Arc::new(EventProducer::new(&kafka).context("creating the kafka producer")?);
        let admin = TopicAdmin::new(&config.kafka)?;
        match admin.partitions(&config.topics.raw).await {
            Ok(partitions) => {
                tracing::info!(topic = %config.topics.raw, partitions, "raw topic found")
            }
            Err(missing @ TopicError::Missing { .. }) => {
                return Err(missing).context("the raw topic must exist before the collector starts (deploy/local/up.sh creates it)");
            }
            // Not fatal: /readyz reports it and deliveries get 503 until the broker is back.
            Err(err) => tracing::warn!(error = %err, "broker not reachable at startup"),
        }
        let subscriptions =
            tributary_sources::pull_sources(&config.tenants, reqwest::Client::new())?;
        let checkpoints = match (&config.collector.checkpoint_dir, subscriptions.is_empty()) {
            (_, true) => None,
            (Some(dir), false) => Some(
                Checkpoints::open(dir)
                    .with_context(|| format!("[collector] checkpoint_dir {}", dir.display()))?,
            ),
            (None, false) => anyhow::bail!(
                "[collector] checkpoint_dir must be set: {} pull subscription(s) (Salesforce Change Data Capture) keep their positions there",
                subscriptions.len()
            ),
        };
        // Only batches with malformed elements need it: they get 503 until it exists.
        if let Err(missing @ TopicError::Missing { .. }) =
            admin.partitions(&config.topics.dead_letter).await
        {
            tracing::warn!(error = %missing, "the dead-letter topic is missing: batches with malformed elements are answered 503 until it exists");
        }
        Ok(Collector {
            state: Arc::new(AppState {
                settings: config.collector.clone(),
                sources,
                producer,
                topic: config.topics.raw.clone(),
                dead_letter_topic: config.topics.dead_letter.clone(),
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    config.collector.max_requests_in_flight.max(1),
                )),
            }),
            config,
            subscriptions,
            checkpoints,
        })
    }

    /// The HTTP application: the webhooks, plus `/metrics`, `/healthz` and
    /// `/readyz` unless they have their own listener (`admin_listen`).
    pub fn router(&self) -> Router {
        let webhooks = self.webhooks_router();
        if self.config.collector.admin_listen.is_some() {
            webhooks
        } else {
            webhooks.merge(self.admin_router())
        }
    }

    fn webhooks_router(&self) -> Router {
        Router::new()
            .route("/webhooks/{source}/{tenant}", post(webhook::receive))
            .route("/webhooks/{source}", post(webhook::receive_untenanted))
            .with_state(self.state.clone())
    }

    /// `/metrics`, `/healthz` and `/readyz`.
    pub fn admin_router(&self) -> Router {
        let producer = self.state.producer.clone();
        let topic = self.state.topic.clone();
        let readiness: ReadinessCheck = Arc::new(move || {
            let producer = producer.clone();
            let topic = topic.clone();
            Box::pin(async move {
                if producer.broker_reachable(&topic).await {
                    Ok(())
                } else {
                    Err(format!("broker unreachable or topic {topic} missing"))
                }
            })
        });
        ops_router(readiness)
    }

    /// Binds the configured `[collector] listen` address.
    pub async fn bind(&self) -> anyhow::Result<TcpListener> {
        let listen = self.config.collector.listen;
        TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))
    }

    /// Serves until `shutdown` resolves, then stops accepting connections,
    /// finishes in-flight requests and waits for queued events to be acknowledged.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address: SocketAddr = listener.local_addr()?;
        let header_timeout =
            Duration::from_millis(self.config.collector.header_read_timeout_ms.max(1));
        tracing::info!(%address, sources = ?self.state.sources.names().collect::<Vec<_>>(), "collector listening");
        let pulls = pull::start(
            std::mem::take(&mut self.subscriptions),
            self.checkpoints.clone(),
            self.state.producer.clone(),
            &self.state.topic,
        );
        // The admin listener stops with the webhooks' server.
        let (stopped, admin_stop) = tokio::sync::watch::channel(false);
        let admin = match self.config.collector.admin_listen {
            Some(admin_address) => {
                let admin_listener = TcpListener::bind(admin_address)
                    .await
                    .with_context(|| format!("binding the admin listener {admin_address}"))?;
                tracing::info!(address = %admin_address, "admin endpoints listening");
                let mut admin_stop = admin_stop;
                let server = serve_http1(
                    admin_listener,
                    self.admin_router(),
                    header_timeout,
                    async move {
                        let _ = admin_stop.wait_for(|stop| *stop).await;
                    },
                );
                Some(tokio::spawn(server))
            }
            None => None,
        };
        serve_http1(listener, self.router(), header_timeout, shutdown).await;
        let _ = stopped.send(true);
        for pull in &pulls {
            pull.abort();
        }
        if let Some(admin) = admin {
            admin.await.context("admin http server")?;
        }
        let drain = Duration::from_secs(u64::from(self.state.settings.drain_timeout_seconds));
        let producer = self.state.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(drain))
            .await?
            .context("flushing queued events")?;
        tracing::info!("collector stopped; every accepted event is stored");
        Ok(())
    }
}

/// Serves `router` over HTTP/1.1 on `listener` until `shutdown`, then lets
/// the requests in progress finish. A client must send a request's headers
/// within `header_timeout`, and a kept-alive connection must start its next
/// request within it, or the connection is closed: a slow or idle client
/// cannot hold a connection (axum's own `serve` sets no such limit).
async fn serve_http1(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: pass, then go on.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout);
        let connection =
            graceful.watch(builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection closed");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_takes_the_largest_message_a_body_under_the_limit_makes() {
        let config = CollectorConfig::default();
        let kafka = producer_settings(&config).expect("defaults agree");
        let set: usize = kafka.librdkafka["message.max.bytes"]
            .parse()
            .expect("bytes");
        let body = config.collector.max_body_bytes;
        assert_eq!(set, delivery::largest_message_bytes(body));
        // Base64 of the body alone is 4/3 of it: a dead letter of a body at
        // the limit fits, with room for its envelope.
        assert!(set > body / 3 * 4 + 32 * 1024, "{set}");

        let mut lower = CollectorConfig::default();
        lower
            .kafka
            .librdkafka
            .insert("message.max.bytes".into(), "1000000".into());
        let err = producer_settings(&lower).expect_err("too low").to_string();
        assert!(
            err.contains("message.max.bytes = 1000000") && err.contains("max_body_bytes = 1048576"),
            "{err}"
        );
        lower.collector.max_body_bytes = 600_000;
        let kafka = producer_settings(&lower).expect("a smaller body fits");
        assert_eq!(
            kafka.librdkafka["message.max.bytes"], "1000000",
            "kept as configured"
        );
    }
}
