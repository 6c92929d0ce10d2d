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
use tributary_enrichment::api_client::{ApiError, RetryPolicy};
use tributary_enrichment::email_validation::EmailValidator;
use tributary_envelope::{DeadLetter, DeadLetterError, EnrichmentRetry, RawEvent};
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

    /// Turns one raw-topic or retry-topic message into what to write, in
    /// order: the enriched event, a retry of it if it came out partial for a
    /// reason that may pass, or a dead-letter record saying why not. Empty:
    /// nothing, as the event is of an object its platform sends but no
    /// dashboard needs (counted).
    pub async fn process(&self, incoming: &Incoming) -> Vec<Output> {
        let started = Instant::now();
        let key = incoming
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let mut raw = match RawEvent::decode_from(&incoming.payload) {
            Ok(raw) => raw,
            Err(err) => {
                return vec![self.dead_letter(
                    incoming,
                    key,
                    None,
                    "malformed_envelope",
                    vec![DeadLetterError::new("", err.to_string())],
                )];
            }
        };
        // Set when this is a re-enrichment, read from the retry topic.
        let retried = raw.enrichment_retry.take();
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
            return Vec::new();
        }
        let enriched = match enriched {
            Ok(enriched) => enriched,
            Err((reason, message)) => {
                return vec![self.dead_letter(
                    incoming,
                    key,
                    Some(&raw),
                    reason,
                    vec![DeadLetterError::new("", message)],
                )];
            }
        };
        let status = if enriched.complete {
            "complete"
        } else {
            "partial"
        };
        internal_events::enriched(source, status);
        let attempt = retried.as_ref().map_or(0, |r| r.attempt);
        let mut outputs = Vec::with_capacity(2);
        // A retry that is partial again adds nothing the first copy lacks.
        if enriched.complete || attempt == 0 {
            if attempt > 0 {
                internal_events::healed(source, attempt);
            }
            outputs.push(Output {
                topic: self.config.topics.enriched.clone(),
                key: key.clone(),
                payload: enriched.payload,
            });
        }
        let settings = &self.config.enricher;
        if !enriched.complete && enriched.may_heal && settings.retry_partial {
            if attempt < settings.partial_retry_attempts {
                outputs.push(self.retry(raw, key, attempt + 1, &enriched.missing));
            } else {
                let message = format!(
                    "still partial after {attempt} re-enrichments; missing: {}",
                    enriched.missing.join(", ")
                );
                outputs.push(self.dead_letter(
                    incoming,
                    key,
                    Some(&raw),
                    "enrichment_incomplete",
                    vec![DeadLetterError::new("", message)],
                ));
            }
        }
        outputs
    }

    /// `raw` for the retry topic, to be enriched again as its `attempt`-th
    /// re-enrichment once its delay has passed.
    fn retry(&self, mut raw: RawEvent, key: String, attempt: u32, missing: &[&str]) -> Output {
        let delay = self.config.enricher.partial_retry_delay(attempt);
        let not_before = chrono::Utc::now().timestamp_micros() as u64 + delay.as_micros() as u64;
        internal_events::retry_scheduled(attempt);
        tracing::debug!(event_id = %raw.event_id, attempt, ?delay, ?missing, "partial event; enriching it again later");
        raw.enrichment_retry = Some(EnrichmentRetry {
            attempt,
            not_before_micros: not_before,
            missing: missing.iter().map(|m| (*m).to_owned()).collect(),
        });
        Output {
            topic: self.config.topics.retry.clone(),
            key,
            payload: raw.encode_to_vec(),
        }
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
        let topics = &self.config.topics;
        let retry = self.config.enricher.retry_partial.then_some(&topics.retry);
        for topic in [&topics.raw, &topics.enriched, &topics.dead_letter]
            .into_iter()
            .chain(retry)
        {
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
        tokio::spawn(self.clone().check_api_access());
        tokio::spawn(self.clone().upkeep());
        consume::run(self.clone(), shutdown).await?;
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await??;
        tracing::info!("enricher stopped; every committed offset has its output stored");
        Ok(())
    }
}

impl Enricher {
    /// Every platform's upkeep of its subscriptions (those that expire), at
    /// start and every `UPKEEP_EVERY`, each outcome logged per tenant.
    async fn upkeep(self: Arc<Self>) {
        let mut every = tokio::time::interval(tributary_sources::enrich::UPKEEP_EVERY);
        loop {
            every.tick().await;
            for (source, enricher) in &self.sources {
                for done in enricher.upkeep().await {
                    let tenant = done.tenant.as_str();
                    match &done.outcome {
                        Ok(detail) => tracing::info!(source, tenant, "upkeep: {detail}"),
                        Err(err) => tracing::error!(
                            source,
                            tenant,
                            error = %err,
                            "upkeep failed: deliveries may stop until it is fixed (retried in {} h)",
                            tributary_sources::enrich::UPKEEP_EVERY.as_secs() / 3_600
                        ),
                    }
                }
            }
        }
    }

    /// Tries each tenant's API access once and says, per tenant, whether it
    /// works: a wrong token or address shows at start, not as partial events
    /// later. Never stops the enricher: the other tenants are unaffected.
    async fn check_api_access(self: Arc<Self>) {
        for (source, enricher) in &self.sources {
            for check in enricher.check_access().await {
                let tenant = check.tenant.as_str();
                match &check.outcome {
                    Ok(detail) => {
                        internal_events::api_access(source, tenant, true);
                        tracing::info!(source, tenant, "API access works: {detail}");
                    }
                    Err(ApiError::Refused { status, body, .. }) => {
                        internal_events::api_access(source, tenant, false);
                        tracing::error!(
                            source,
                            tenant,
                            status,
                            answer = %body,
                            "the API refuses this tenant's access (check tenants.{tenant}.{source}: its token and api_base_url); its events stay partial until it is fixed"
                        );
                    }
                    Err(err) => {
                        internal_events::api_access(source, tenant, false);
                        tracing::error!(
                            source,
                            tenant,
                            error = %err,
                            "the API is unreachable for this tenant (check tenants.{tenant}.{source}.api_base_url); its events are partial and retried meanwhile"
                        );
                    }
                }
            }
        }
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

    fn only(outputs: Vec<Output>) -> Output {
        assert_eq!(outputs.len(), 1, "one output");
        outputs.into_iter().next().expect("one")
    }

    fn dead_letter(output: &Output) -> DeadLetter {
        serde_json::from_slice(&output.payload).expect("a dead-letter record")
    }

    #[tokio::test]
    async fn each_source_is_enriched_by_its_registered_platform_and_others_dead_letter() {
        let enricher = Enricher::new(EnricherConfig::default()).expect("builds");
        let topics = &enricher.config.topics;

        let outputs = enricher
            .process(&incoming("pipedrive", &fixture("v2/deal-change.json")))
            .await;
        // No API configured: asking again later cannot help, so no retry.
        let [output] = &outputs[..] else {
            panic!("one output, not {}", outputs.len())
        };
        assert_eq!(output.topic, topics.enriched);
        assert_eq!(output.key, "acme:x:deal:1");
        let event: Value = serde_json::from_slice(&output.payload).expect("flat JSON");
        assert_eq!(event["pipeline_source"], "pipedrive");
        assert_eq!(event["pipeline_event_id"], "e-1");
        assert_eq!(event["event_object"], "deal");
        // No API configured for the tenant: what the webhook carries, marked partial.
        assert_eq!(event["pipeline_enrichment_status"], "partial");

        let output = only(
            enricher
                .process(&incoming("pipedrive", b"{\"meta\":"))
                .await,
        );
        assert_eq!(output.topic, topics.dead_letter);
        let letter = dead_letter(&output);
        assert_eq!(
            (letter.stage.as_str(), letter.reason.as_str()),
            (STAGE, "unreadable_body")
        );
        assert_eq!(letter.source.as_deref(), Some("pipedrive"));

        let output = only(enricher.process(&incoming("legacycrm", b"[]")).await);
        assert_eq!(output.topic, topics.dead_letter);
        let letter = dead_letter(&output);
        assert_eq!(letter.reason, "unknown_source");
        assert!(letter.errors[0].message.contains("legacycrm"), "{letter:?}");
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
            assert!(output.is_empty(), "{object} is ignored");
        }
        // Ignored only where the platform says so: a HubSpot note feeds a dashboard.
        let output = enricher
            .process(&incoming_of("hubspot", b"{}", keys("note")))
            .await;
        assert_eq!(output.len(), 1);
        // An object no one listed still needs a person.
        let output = only(
            enricher
                .process(&incoming_of("pipedrive", &note, keys("invoice")))
                .await,
        );
        let event: Value = serde_json::from_slice(&output.payload).expect("json");
        assert_eq!(event["pipeline_source"], "pipedrive");
    }

    #[tokio::test]
    async fn a_partial_event_an_api_outage_caused_is_retried_later_then_dead_lettered() {
        // An API that refuses connections: every lookup is unavailable.
        let config: EnricherConfig = tributary_config::Loader::from_toml_str(
            r#"
[enrichment]
retry_budget_ms = 200
max_attempts = 2
backoff_initial_ms = 10
backoff_max_ms = 20

[enricher]
partial_retry_attempts = 2

[tenants.acme.pipedrive]
username = "hook"
password = "s3cret"
api_base_url = "http://127.0.0.1:9"
api_token = "t0ken"
"#,
        )
        .extract()
        .expect("config");
        let enricher = Enricher::new(config).expect("builds");
        let topics = enricher.config.topics.clone();
        let first = incoming("pipedrive", &fixture("v2/deal-change.json"));
        let before = chrono::Utc::now().timestamp_micros() as u64;
        let outputs = enricher.process(&first).await;
        let [partial, retry] = &outputs[..] else {
            panic!("the partial event and its retry, not {}", outputs.len())
        };
        assert_eq!(partial.topic, topics.enriched);
        let event: Value = serde_json::from_slice(&partial.payload).expect("json");
        assert_eq!(event["pipeline_enrichment_status"], "partial");
        assert_eq!(
            (retry.topic.as_str(), retry.key.as_str()),
            (topics.retry.as_str(), "acme:x:deal:1")
        );
        let scheduled = RawEvent::decode_from(&retry.payload).expect("an envelope");
        let plan = scheduled.enrichment_retry.clone().expect("retry fields");
        assert_eq!(plan.attempt, 1);
        let delay = plan.not_before_micros - before;
        assert!(
            (10_000_000..11_000_000).contains(&delay),
            "waits the first delay: {delay} µs"
        );
        assert!(
            plan.missing.contains(&"stage".to_owned()),
            "{:?}",
            plan.missing
        );
        assert_eq!(scheduled.event_id, "e-1", "the same event, enriched again");

        // Partial again: only the next retry (the first copy is as good).
        let again = Incoming {
            topic: topics.retry.clone(),
            key: Some(retry.key.clone().into_bytes()),
            payload: retry.payload.clone(),
            ..first
        };
        let retry = only(enricher.process(&again).await);
        assert_eq!(retry.topic, topics.retry);
        let plan = RawEvent::decode_from(&retry.payload)
            .expect("an envelope")
            .enrichment_retry
            .expect("retry fields");
        assert_eq!(plan.attempt, 2);

        // Out of attempts: a person has to look at it.
        let last = Incoming {
            payload: retry.payload.clone(),
            ..again
        };
        let letter = dead_letter(&only(enricher.process(&last).await));
        assert_eq!(letter.reason, "enrichment_incomplete");
        assert_eq!(letter.event_id.as_deref(), Some("e-1"));
        assert_eq!(letter.original_topic, topics.retry);
        assert!(letter.errors[0].message.contains("stage"), "{letter:?}");
    }
}
