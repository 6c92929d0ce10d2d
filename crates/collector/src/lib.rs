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
use tributary_telemetry::{ReadinessCheck, ops_router};

pub use config::{CollectorConfig, CollectorSettings};
pub use error::Rejection;

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
        let producer =
            Arc::new(EventProducer::new(&config.kafka).context("creating the kafka producer")?);
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
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address: SocketAddr = listener.local_addr()?;
        tracing::info!(%address, sources = ?self.state.sources.names().collect::<Vec<_>>(), "collector listening");
        // The admin listener stops with the webhooks' server.
        let (stopped, admin_stop) = tokio::sync::watch::channel(false);
        let admin = match self.config.collector.admin_listen {
            Some(admin_address) => {
                let admin_listener = TcpListener::bind(admin_address)
                    .await
                    .with_context(|| format!("binding the admin listener {admin_address}"))?;
                tracing::info!(address = %admin_address, "admin endpoints listening");
                let mut admin_stop = admin_stop;
                let server = axum::serve(admin_listener, self.admin_router())
                    .with_graceful_shutdown(async move {
                        let _ = admin_stop.wait_for(|stop| *stop).await;
                    });
                Some(tokio::spawn(async move { server.await }))
            }
            None => None,
        };
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .context("http server")?;
        let _ = stopped.send(true);
        if let Some(admin) = admin {
            admin.await?.context("admin http server")?;
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
