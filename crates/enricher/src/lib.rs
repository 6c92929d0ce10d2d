//! The enricher: raw webhooks in, flat self-contained events out.
//!
//! It consumes the raw topic in a consumer group, decodes each envelope,
//! reads the body with the source's own module, joins in context from the
//! platform's API and an email verifier (cached, within rate limits, retried
//! with backoff), flattens the result and produces it to the enriched topic
//! with the raw event's key. What cannot be processed goes to the
//! dead-letter topic with its reason; nothing is dropped. Offsets are
//! committed only once the outputs before them are stored.

pub mod config;
mod consume;
mod internal_events;
pub mod offsets;
pub mod pipedrive;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use tokio::sync::watch;
use tributary_envelope::{DeadLetter, DeadLetterError, RawEvent};
use tributary_kafka::{EventProducer, TopicAdmin};
use tributary_sources::pipedrive::{self as pipedrive_source, PipedriveTenant};
use tributary_telemetry::{ReadinessCheck, ops_router};

pub use config::{EnricherConfig, EnricherSettings, EnrichmentSettings};
pub use consume::{Incoming, Output};

use crate::pipedrive::api::{PipedriveApi, TenantAccess};
use crate::pipedrive::{PipedriveEnricher, TenantEnrichment};
use tributary_enrichment::api_client::RetryPolicy;
use tributary_enrichment::email_validation::EmailValidator;

/// The stage name in dead-letter records.
pub const STAGE: &str = "enricher";

pub struct Enricher {
    pub config: EnricherConfig,
    producer: Arc<EventProducer>,
    pipedrive: PipedriveEnricher,
}

impl Enricher {
    /// Checks the configuration and builds the clients (no network yet).
    pub fn new(config: EnricherConfig) -> anyhow::Result<Self> {
        let producer =
            Arc::new(EventProducer::new(&config.kafka).context("creating the kafka producer")?);
        let pipedrive = build_pipedrive(&config)?;
        Ok(Enricher {
            config,
            producer,
            pipedrive,
        })
    }

    /// Turns one raw-topic message into what to write: the enriched event, or
    /// a dead-letter record saying why not.
    pub async fn process(&self, incoming: &Incoming) -> Output {
        let started = Instant::now();
        let key = incoming
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let raw = match RawEvent::decode_from(&incoming.payload) {
            Ok(raw) => raw,
            Err(err) => {
                return self.dead_letter(
                    incoming,
                    key,
                    None,
                    "malformed_envelope",
                    vec![DeadLetterError::new("", err.to_string())],
                );
            }
        };
        // Metric labels must come from a fixed set, not from the input.
        let source: &'static str = if raw.source == pipedrive_source::NAME {
            pipedrive_source::NAME
        } else {
            "unknown"
        };
        internal_events::received(source);
        let enriched = match raw.source.as_str() {
            pipedrive_source::NAME => match pipedrive_source::parse(&raw.body) {
                Ok(event) => {
                    let record = self.pipedrive.enrich(&raw, event).await;
                    let complete = record
                        .get("pipeline_enrichment_status")
                        .and_then(|s| s.as_str())
                        == Some("complete");
                    record
                        .to_json_bytes()
                        .map(|payload| (payload, complete))
                        .map_err(|collision| ("flatten_collision", collision.to_string()))
                }
                Err(err) => Err(("unreadable_body", err.to_string())),
            },
            other => Err((
                "unknown_source",
                format!("no enrichment for source {other:?}"),
            )),
        };
        internal_events::enrich_latency(started.elapsed());
        match enriched {
            Ok((payload, complete)) => {
                internal_events::enriched(source, if complete { "complete" } else { "partial" });
                Output {
                    topic: self.config.topics.enriched.clone(),
                    key,
                    payload,
                }
            }
            Err((reason, message)) => self.dead_letter(
                incoming,
                key,
                Some(&raw),
                reason,
                vec![DeadLetterError::new("", message)],
            ),
        }
    }

    fn dead_letter(
        &self,
        incoming: &Incoming,
        key: String,
        raw: Option<&RawEvent>,
        reason: &'static str,
        errors: Vec<DeadLetterError>,
    ) -> Output {
        internal_events::dead_lettered(reason);
        tracing::warn!(
            reason,
            partition = incoming.partition,
            offset = incoming.offset,
            "dead-lettering a raw event"
        );
        let letter = DeadLetter {
            stage: STAGE.into(),
            reason: reason.into(),
            errors,
            event_id: raw.map(|r| r.event_id.clone()),
            tenant: raw.map(|r| r.tenant.clone()),
            source: raw.map(|r| r.source.clone()),
            original_topic: incoming.topic.clone(),
            original_partition: incoming.partition,
            original_offset: incoming.offset,
            failed_at: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string(),
            original: DeadLetter::encode_original(&incoming.payload),
        };
        Output {
            topic: self.config.topics.dead_letter.clone(),
            key,
            payload: letter.to_json(),
        }
    }

    /// `/metrics`, `/healthz` and `/readyz` (the broker answers for the raw and enriched topics).
    pub fn ops_router(&self) -> Router {
        let producer = self.producer.clone();
        let topics = [
            self.config.topics.raw.clone(),
            self.config.topics.enriched.clone(),
        ];
        let readiness: ReadinessCheck = Arc::new(move || {
            let producer = producer.clone();
            let topics = topics.clone();
            Box::pin(async move {
                for topic in &topics {
                    if !producer.broker_reachable(topic).await {
                        return Err(format!("broker unreachable or topic {topic} missing"));
                    }
                }
                Ok(())
            })
        });
        ops_router(readiness)
    }

    /// Runs until `shutdown` turns true: drains, commits and returns.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let admin = TopicAdmin::new(&self.config.kafka)?;
        for topic in [
            &self.config.topics.raw,
            &self.config.topics.enriched,
            &self.config.topics.dead_letter,
        ] {
            match admin.partitions(topic).await {
                Ok(_) => {}
                Err(missing @ tributary_kafka::TopicError::Missing { .. }) => {
                    return Err(missing).context("the pipeline's topics must exist before the enricher starts (deploy/local/up.sh creates them)");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "broker not reachable at startup; waiting for it")
                }
            }
        }
        consume::run(self.clone(), shutdown).await?;
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await??;
        tracing::info!("enricher stopped; every committed offset has its output stored");
        Ok(())
    }
}

fn build_pipedrive(config: &EnricherConfig) -> anyhow::Result<PipedriveEnricher> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("tributary-enricher/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(32)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .context("creating the HTTP client")?;
    let mut access = Vec::new();
    let mut policies = HashMap::new();
    for (tenant, section) in config.tenants.for_source(pipedrive_source::NAME) {
        let settings: PipedriveTenant = pipedrive_source::tenant_settings(section)
            .map_err(|reason| anyhow::anyhow!("[tenants.{tenant}.pipedrive]: {reason}"))?;
        if let (Some(base_url), Some(token)) = (&settings.api_base_url, &settings.api_token) {
            access.push(TenantAccess {
                tenant: tenant.to_owned(),
                base_url: base_url.clone(),
                token: token.clone(),
                requests_per_2s: settings.requests_per_2s,
            });
        }
        policies.insert(tenant.to_owned(), TenantEnrichment::from(&settings));
    }
    let policy = RetryPolicy::from_settings(&config.enrichment);
    let email = EmailValidator::new(&config.enrichment.email_validation, policy, http.clone())
        .map(Arc::new);
    let api = PipedriveApi::new(access, &config.enrichment, http);
    Ok(PipedriveEnricher::new(api, email, policies))
}
