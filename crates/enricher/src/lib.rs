//! The enricher: raw webhooks in, flat self-contained events out.
//!
//! It consumes the raw topic in a consumer group, decodes each envelope,
//! hands it to its platform's enricher (found in `tributary_sources::REGISTRY`
//! by the event's source), which reads the body and joins in context from the
//! platform's API and an email verifier (cached, within rate limits, retried
//! with backoff), and produces the flat result to the enriched topic with the
//! raw event's key. What cannot be processed goes to the
//! dead-letter topic with its reason; nothing is dropped. Offsets are
//! committed only once the outputs before them are stored.

pub mod config;
mod consume;
mod internal_events;
pub mod offsets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use tokio::sync::watch;
use tributary_enrichment::api_client::RetryPolicy;
use tributary_enrichment::email_validation::EmailValidator;
use tributary_envelope::{DeadLetter, DeadLetterError, RawEvent};
use tributary_kafka::{EventProducer, TopicAdmin};
use tributary_sources::{EnricherContext, REGISTRY, SourceEnricher};
use tributary_telemetry::{ReadinessCheck, ops_router};

pub use config::{EnricherConfig, EnricherSettings, EnrichmentSettings};
pub use consume::{Incoming, Output};

/// The stage name in dead-letter records.
pub const STAGE: &str = "enricher";

/// The `source` label of events whose source is not registered.
const UNKNOWN_SOURCE: &str = "unknown";

pub struct Enricher {
    pub config: EnricherConfig,
    producer: Arc<EventProducer>,
    /// Every registered platform's enricher, by its registry name.
    sources: BTreeMap<&'static str, Box<dyn SourceEnricher>>,
}

impl Enricher {
    /// Checks the configuration and builds the clients (no network yet).
    pub fn new(config: EnricherConfig) -> anyhow::Result<Self> {
        let producer =
            Arc::new(EventProducer::new(&config.kafka).context("creating the kafka producer")?);
        let sources = build_sources(&config)?;
        Ok(Enricher {
            config,
            producer,
            sources,
        })
    }

    /// Turns one raw-topic message into what to write: the enriched event, or
    /// a dead-letter record saying why not. `None`: nothing, as the event is
    /// of an object its platform sends but no dashboard needs (counted).
    pub async fn process(&self, incoming: &Incoming) -> Option<Output> {
        let started = Instant::now();
        let key = incoming
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let raw = match RawEvent::decode_from(&incoming.payload) {
            Ok(raw) => raw,
            Err(err) => {
                return Some(self.dead_letter(
                    incoming,
                    key,
                    None,
                    "malformed_envelope",
                    vec![DeadLetterError::new("", err.to_string())],
                ));
            }
        };
        // Metric labels come from the registry's names, never from the input.
        let found = self.sources.get_key_value(raw.source.as_str());
        let source = found.map_or(UNKNOWN_SOURCE, |(name, _)| *name);
        internal_events::received(source);
        let enriched = match found {
            Some((_, enricher)) => enricher
                .enrich(&raw)
                .await
                .map_err(|failure| (failure.reason.code(), failure.message)),
            None => Err((
                "unknown_source",
                format!("no enrichment for source {:?}", raw.source),
            )),
        };
        internal_events::enrich_latency(started.elapsed());
        // Enriched all the same: such an event may refresh cached definitions.
        if let Some(object) = ignored_object(&raw) {
            internal_events::ignored(source, object);
            return None;
        }
        Some(match enriched {
            Ok(enriched) => {
                let status = if enriched.complete {
                    "complete"
                } else {
                    "partial"
                };
                internal_events::enriched(source, status);
                Output {
                    topic: self.config.topics.enriched.clone(),
                    key,
                    payload: enriched.payload,
                }
            }
            Err((reason, message)) => self.dead_letter(
                incoming,
                key,
                Some(&raw),
                reason,
                vec![DeadLetterError::new("", message)],
            ),
        })
    }

    /// The dead letter of an event whose output the broker refuses for what
    /// it is (too large, invalid): retrying it would stall the stage.
    pub fn refused_output(&self, incoming: &Incoming, output: &Output, refusal: &str) -> Output {
        let raw = RawEvent::decode_from(&incoming.payload).ok();
        self.dead_letter(
            incoming,
            output.key.clone(),
            raw.as_ref(),
            "output_refused",
            vec![DeadLetterError::new(
                "",
                format!(
                    "the broker refused the {}-byte output for {}: {refusal}",
                    output.payload.len(),
                    output.topic
                ),
            )],
        )
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
            original: String::new(),
            original_by_reference: false,
        }
        .with_original(
            &incoming.payload,
            tributary_kafka::max_message_bytes(&self.config.kafka),
        );
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

/// Every registered platform's enricher, sharing one HTTP client and email verifier.
fn build_sources(
    config: &EnricherConfig,
) -> anyhow::Result<BTreeMap<&'static str, Box<dyn SourceEnricher>>> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("tributary-enricher/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(32)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .context("creating the HTTP client")?;
    let policy = RetryPolicy::from_settings(&config.enrichment);
    let email = EmailValidator::new(&config.enrichment.email_validation, policy, http.clone())
        .map(Arc::new);
    let mut sources = BTreeMap::new();
    for platform in REGISTRY {
        let context = EnricherContext {
            tenants: config.tenants.for_source(platform.name).collect(),
            settings: &config.enrichment,
            http: http.clone(),
            email: email.clone(),
        };
        let build = platform.enricher;
        sources.insert(platform.name, build(&context)?);
    }
    Ok(sources)
}

/// The event's object, if its platform lists it as one no dashboard needs
/// (named by the registry, never by the input).
fn ignored_object(raw: &RawEvent) -> Option<&'static str> {
    let object = raw.keys.as_ref()?.object.as_str();
    tributary_sources::platform(&raw.source)?
        .ignored_objects
        .iter()
        .find(|ignored| **ignored == object)
        .copied()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tributary_envelope::{ENVELOPE_VERSION, RawEvent};

    use super::*;

    fn incoming(source: &str, body: &[u8]) -> Incoming {
        incoming_of(source, body, None)
    }

    fn incoming_of(
        source: &str,
        body: &[u8],
        keys: Option<tributary_envelope::EventKeys>,
    ) -> Incoming {
        let raw = RawEvent {
            envelope_version: ENVELOPE_VERSION,
            tenant: "acme".into(),
            source: source.into(),
            event_id: "e-1".into(),
            body: body.to_vec().into(),
            keys,
            ..RawEvent::default()
        };
        Incoming {
            topic: "raw".into(),
            partition: 0,
            offset: 9,
            key: Some(b"acme:x:deal:1".to_vec()),
            payload: raw.encode_to_vec(),
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pipedrive")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn dead_letter(output: &Output) -> DeadLetter {
        serde_json::from_slice(&output.payload).expect("a dead-letter record")
    }

    #[tokio::test]
    async fn each_source_is_enriched_by_its_registered_platform_and_others_dead_letter() {
        let enricher = Enricher::new(EnricherConfig::default()).expect("builds");
        let topics = &enricher.config.topics;

        let output = enricher
            .process(&incoming("pipedrive", &fixture("v2/deal-change.json")))
            .await
            .expect("something to write");
        assert_eq!(output.topic, topics.enriched);
        assert_eq!(output.key, "acme:x:deal:1");
        let event: Value = serde_json::from_slice(&output.payload).expect("flat JSON");
        assert_eq!(event["pipeline_source"], "pipedrive");
        assert_eq!(event["pipeline_event_id"], "e-1");
        assert_eq!(event["event_object"], "deal");
        // No API configured for the tenant: what the webhook carries, marked partial.
        assert_eq!(event["pipeline_enrichment_status"], "partial");

        let output = enricher
            .process(&incoming("pipedrive", b"{\"meta\":"))
            .await
            .expect("something to write");
        assert_eq!(output.topic, topics.dead_letter);
        let letter = dead_letter(&output);
        assert_eq!(
            (letter.stage.as_str(), letter.reason.as_str()),
            (STAGE, "unreadable_body")
        );
        assert_eq!(letter.source.as_deref(), Some("pipedrive"));

        let output = enricher
            .process(&incoming("salesforce", b"[]"))
            .await
            .expect("something to write");
        assert_eq!(output.topic, topics.dead_letter);
        let letter = dead_letter(&output);
        assert_eq!(letter.reason, "unknown_source");
        assert!(
            letter.errors[0].message.contains("salesforce"),
            "{letter:?}"
        );
        assert_eq!(letter.original_offset, 9);
    }

    #[tokio::test]
    async fn objects_a_platform_sends_but_no_dashboard_needs_are_ignored_not_dead_lettered() {
        let enricher = Enricher::new(EnricherConfig::default()).expect("builds");
        let keys = |object: &str| {
            Some(tributary_envelope::EventKeys {
                object: object.into(),
                ..Default::default()
            })
        };
        let note = fixture("v1/note-added.json");
        for object in ["note", "stage", "product"] {
            let output = enricher
                .process(&incoming_of("pipedrive", &note, keys(object)))
                .await;
            assert!(output.is_none(), "{object} is ignored");
        }
        // Ignored only where the platform says so: a HubSpot note feeds a dashboard.
        let output = enricher
            .process(&incoming_of("hubspot", b"{}", keys("note")))
            .await;
        assert!(output.is_some());
        // An object no one listed still needs a person.
        let output = enricher
            .process(&incoming_of("pipedrive", &note, keys("invoice")))
            .await
            .expect("something to write");
        let event: Value = serde_json::from_slice(&output.payload).expect("json");
        assert_eq!(event["pipeline_source"], "pipedrive");
    }
}
