//! Salesforce Change Data Capture through the Pub/Sub API: one subscription
//! per tenant and channel (`/data/OpportunityChangeEvent`...), run by the
//! collector as a [`PullSource`].
//!
//! A subscription asks for [`BATCH`] events, decodes each with its Avro
//! schema (`GetSchema`, cached by id) into what changed ([`avro`]), stores
//! one raw event per record the change covers (payload version `cdc`, event
//! id a UUID v5 of org, event and record, so a re-read event is a
//! duplicate), and only once the broker has them saves the last replay id
//! as its checkpoint and asks for as many events as it handled (flow
//! control). An empty answer (a keepalive) carries the latest replay id,
//! which is saved too. A restart resumes from the checkpoint (`CUSTOM`); a
//! replay id Salesforce no longer accepts (older than the 72-hour
//! retention, or corrupt) is forgotten and the subscription reads again
//! from the earliest event kept, so nothing retained is skipped. Without a
//! checkpoint it starts at `change_events_start` (`latest` by default).
//! An event that cannot be decoded is stored with the reason, for the
//! enricher to put on the dead-letter topic: one bad event never stops a
//! subscription. A `GAP_OVERFLOW` (a transaction of over 100,000 changes)
//! names no record: the records of its entity modified since its commit are
//! listed through the REST API (`queryAll`, so deletions too) and each is
//! stored as a gap of its own, which the enricher reads again; when the
//! listing fails, the overflow is stored as it came and goes to the
//! dead-letter topic saying so.

pub mod avro;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tributary_enrichment::EnrichmentSettings;
use tributary_envelope::{ENVELOPE_VERSION, EventKeys, RawEvent, Verdict};
use tributary_salesforce_pubsub::{
    ACCESS_TOKEN_METADATA, ConsumerEvent, FetchRequest, INSTANCE_URL_METADATA, PubSubClient,
    ReplayPreset, SchemaRequest, TENANT_ID_METADATA,
};

use super::api::OrgApi;
use super::{NAME, SalesforceTenant, id_18, tenant_settings};
use crate::mapped::tenants_by_name;
use crate::pull::{Checkpoints, PullSink, PullSource};
use crate::{BoxFuture, SourceConfigError};

/// The payload version of change events on the raw topic.
pub const PAYLOAD_VERSION_CDC: &str = "cdc";
/// Events asked for at a time (the Pub/Sub API's maximum).
pub const BATCH: i32 = 100;
/// The content type of a change event on the raw topic: the decoded change.
pub const CONTENT_TYPE: &str = "application/json";

/// Where a subscription without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Events from now on (history comes from a backfill).
    #[default]
    Latest,
    /// Every event still retained (72 hours).
    Earliest,
}

/// Builds a subscription for every channel of every tenant with a `pubsub_url`.
pub fn build(
    sections: Vec<(&str, &Value)>,
    http: reqwest::Client,
) -> Result<Vec<Box<dyn PullSource>>, SourceConfigError> {
    let tenants = tenants_by_name(NAME, &sections, tenant_settings)?;
    let mut subscriptions: Vec<Box<dyn PullSource>> = Vec::new();
    for (tenant, settings) in tenants {
        let Some(pubsub_url) = settings.pubsub_url.clone() else {
            continue;
        };
        let refusal = |reason: String| SourceConfigError::Tenant {
            tenant: tenant.clone(),
            source_name: NAME,
            reason,
        };
        // The org's REST API: its token serves the subscription too, and it
        // lists the records a gap overflow does not name. No token store
        // here: tenant_settings refuses a refresh token with Change Data
        // Capture (the enricher owns a rotating one).
        let api = OrgApi::for_tenant(
            &tenant,
            &settings,
            &EnrichmentSettings::default(),
            http.clone(),
            None,
        )
        .map_err(refusal)?
        .ok_or_else(|| refusal("pubsub_url needs access_token or [oauth]".into()))?;
        let api = Arc::new(api);
        for channel in &settings.change_events {
            subscriptions.push(Box::new(ChangeEventSubscription {
                name: format!("{NAME}/{tenant}/{channel}"),
                tenant: tenant.clone(),
                settings: settings.clone(),
                pubsub_url: pubsub_url.clone(),
                channel: channel.clone(),
                api: api.clone(),
                schemas: Mutex::new(HashMap::new()),
            }));
        }
    }
    Ok(subscriptions)
}

/// One tenant's subscription to one channel.
pub struct ChangeEventSubscription {
    name: String,
    tenant: String,
    settings: SalesforceTenant,
    pubsub_url: String,
    channel: String,
    /// The org's REST API: the token, and a gap overflow's records.
    api: Arc<OrgApi>,
    schemas: Mutex<HashMap<String, Arc<Schema>>>,
}

/// Why a subscription stream ended.
#[derive(Debug)]
enum Ended {
    /// Salesforce no longer accepts the checkpoint's replay id.
    ReplayIdUnusable(String),
    /// The token was refused.
    Unauthenticated(String),
    /// Anything else: connect again after a pause.
    Failed(String),
}

impl PullSource for ChangeEventSubscription {
    fn name(&self) -> &str {
        &self.name
    }

    fn run<'a>(
        &'a self,
        sink: &'a dyn PullSink,
        checkpoints: &'a Checkpoints,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut pause = Duration::from_millis(500);
            loop {
                let ended = self.subscribe_once(sink, checkpoints, &mut pause).await;
                match &ended {
                    Ended::ReplayIdUnusable(why) => {
                        tracing::warn!(subscription = %self.name, reason = %why, "the saved replay id is no longer accepted; reading again from the earliest retained event (duplicates are dropped downstream)");
                        // An empty checkpoint means "from the earliest", durably.
                        if let Err(err) = checkpoints.save(&self.name, &[]) {
                            tracing::error!(subscription = %self.name, error = %err, "could not reset the checkpoint");
                        }
                        internal_events::restarted(&self.name, "replay_id_unusable");
                    }
                    Ended::Unauthenticated(why) => {
                        tracing::warn!(subscription = %self.name, reason = %why, "the access token was refused; renewing it");
                        internal_events::restarted(&self.name, "unauthenticated");
                    }
                    Ended::Failed(why) => {
                        tracing::warn!(subscription = %self.name, reason = %why, retry_in_ms = pause.as_millis() as u64, "subscription interrupted; resuming from the checkpoint");
                        internal_events::restarted(&self.name, "interrupted");
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        })
    }
}

impl ChangeEventSubscription {
    /// The first fetch: from the checkpoint's replay id; from the earliest
    /// retained event after a replay id was refused (an empty checkpoint);
    /// else from the configured start.
    pub fn first_request(&self, checkpoint: Option<Vec<u8>>) -> FetchRequest {
        let (preset, replay_id) = match checkpoint {
            Some(replay_id) if !replay_id.is_empty() => (ReplayPreset::Custom, replay_id),
            Some(_) => (ReplayPreset::Earliest, Vec::new()),
            None => match self.settings.change_events_start {
                Start::Latest => (ReplayPreset::Latest, Vec::new()),
                Start::Earliest => (ReplayPreset::Earliest, Vec::new()),
            },
        };
        FetchRequest {
            topic_name: self.channel.clone(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: BATCH,
            auth_refresh: String::new(),
        }
    }

    fn request<T>(&self, message: T, token: &str) -> Result<tonic::Request<T>, Ended> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        let value = |text: &str| {
            text.parse()
                .map_err(|_| Ended::Failed("a credential is not valid gRPC metadata".into()))
        };
        metadata.insert(ACCESS_TOKEN_METADATA, value(token)?);
        metadata.insert(
            INSTANCE_URL_METADATA,
            value(self.settings.instance_url.as_deref().unwrap_or_default())?,
        );
        metadata.insert(TENANT_ID_METADATA, value(&self.settings.organization_id)?);
        Ok(request)
    }

    async fn connect(&self) -> Result<PubSubClient, Ended> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.pubsub_url.clone())
            .map_err(|err| Ended::Failed(format!("pubsub_url: {err}")))?
            .connect_timeout(Duration::from_secs(10))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if self.pubsub_url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())
                .map_err(|err| Ended::Failed(format!("TLS: {err}")))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|err| Ended::Failed(format!("connecting to {}: {err}", self.pubsub_url)))?;
        Ok(PubSubClient::new(channel))
    }

    async fn subscribe_once(
        &self,
        sink: &dyn PullSink,
        checkpoints: &Checkpoints,
        pause: &mut Duration,
    ) -> Ended {
        let checkpoint = match checkpoints.load(&self.name) {
            Ok(checkpoint) => checkpoint,
            Err(err) => return Ended::Failed(format!("reading the checkpoint: {err}")),
        };
        let token = match self.api.credentials().token().await {
            Ok(token) => token,
            Err(err) => return Ended::Failed(format!("no access token: {err}")),
        };
        let mut client = match self.connect().await {
            Ok(client) => client,
            Err(ended) => return ended,
        };
        let (requests, queue) = tokio::sync::mpsc::channel::<FetchRequest>(4);
        let first = self.first_request(checkpoint);
        tracing::info!(subscription = %self.name, preset = ?ReplayPreset::try_from(first.replay_preset).ok(), "subscribing");
        if requests.send(first).await.is_err() {
            return Ended::Failed("the request queue closed".into());
        }
        let stream = tokio_stream::wrappers::ReceiverStream::new(queue);
        let request = match self.request(stream, token.expose()) {
            Ok(request) => request,
            Err(ended) => return ended,
        };
        let mut responses = match client.subscribe(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return self.classify(status, &token).await,
        };
        loop {
            let response = match responses.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return Ended::Failed("the server ended the stream".into()),
                Err(status) => return self.classify(status, &token).await,
            };
            // Working again: the next interruption starts with a short pause.
            *pause = Duration::from_millis(500);
            if response.events.is_empty() {
                if !response.latest_replay_id.is_empty()
                    && let Err(err) = checkpoints.save(&self.name, &response.latest_replay_id)
                {
                    return Ended::Failed(format!("saving the checkpoint: {err}"));
                }
                continue;
            }
            let handled = response.events.len() as i32;
            let mut raw = Vec::new();
            let mut last_replay_id = Vec::new();
            for event in &response.events {
                let schema = self.schema(&mut client, &token, event).await;
                raw.extend(self.raw_events(event, schema.as_deref()));
                last_replay_id.clone_from(&event.replay_id);
            }
            let raw = self.with_overflows_listed(raw).await;
            let count = raw.len();
            // Stored before the checkpoint moves: a failure here re-reads
            // these events rather than losing them.
            let mut wait = Duration::from_millis(200);
            while let Err(err) = sink.store(raw.clone()).await {
                tracing::warn!(subscription = %self.name, error = %err, "change events not stored yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            internal_events::stored(&self.name, count);
            if let Err(err) = checkpoints.save(&self.name, &last_replay_id) {
                return Ended::Failed(format!("saving the checkpoint: {err}"));
            }
            let more = FetchRequest {
                topic_name: self.channel.clone(),
                num_requested: handled,
                ..FetchRequest::default()
            };
            if requests.send(more).await.is_err() {
                return Ended::Failed("the request stream closed".into());
            }
        }
    }

    async fn classify(&self, status: tonic::Status, token: &tributary_config::Secret) -> Ended {
        let code = status
            .metadata()
            .get("error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let why = format!("{:?}: {} {code}", status.code(), status.message());
        if code.contains("replayid") {
            return Ended::ReplayIdUnusable(why);
        }
        if status.code() == tonic::Code::Unauthenticated || code.contains("auth") {
            self.api.credentials().rejected(token).await;
            return Ended::Unauthenticated(why);
        }
        Ended::Failed(why)
    }

    /// `raw` with every gap overflow replaced by a gap event per record of
    /// its entity modified since its commit (kept as it came when they
    /// cannot be listed).
    async fn with_overflows_listed(&self, raw: Vec<RawEvent>) -> Vec<RawEvent> {
        let mut out = Vec::with_capacity(raw.len());
        for event in raw {
            let overflow = event
                .keys
                .as_ref()
                .is_some_and(|keys| keys.action == "gap_overflow");
            if !overflow {
                out.push(event);
                continue;
            }
            match self.overflow_records(&event).await {
                Ok(records) => {
                    tracing::info!(subscription = %self.name, records = records.len(), "a gap overflow's records are read again");
                    out.extend(records);
                }
                Err(reason) => {
                    tracing::warn!(subscription = %self.name, %reason, "a gap overflow's records could not be listed; it goes to the dead-letter topic");
                    out.push(event);
                }
            }
        }
        out
    }

    /// A gap event for each record of the overflow's entity modified at or
    /// after the second of its commit: `gap_delete` for one in the recycle
    /// bin, else `gap_update`.
    async fn overflow_records(&self, overflow: &RawEvent) -> Result<Vec<RawEvent>, String> {
        let api = &self.api;
        let body: Value = serde_json::from_slice(&overflow.body).map_err(|e| e.to_string())?;
        let entity = body["header"]["entityName"]
            .as_str()
            .filter(|e| !e.is_empty())
            .ok_or("the overflow names no entity")?;
        let commit = body["header"]["commitTimestamp"]
            .as_i64()
            .and_then(|ms| chrono::DateTime::from_timestamp(ms.div_euclid(1_000), 0))
            .ok_or("the overflow has no commit time")?;
        let records = api
            .modified_since(entity, commit)
            .await
            .map_err(|e| e.to_string())?;
        let event_uuid = body["event_uuid"].as_str().unwrap_or_default();
        Ok(records
            .into_iter()
            .map(|(id, deleted)| {
                let id = id_18(&id).unwrap_or(id);
                let mut event = overflow.clone();
                event.event_id = change_event_id(&self.settings.organization_id, event_uuid, &id);
                let mut record_body = body.clone();
                record_body["record_id"] = json!(id);
                record_body["listed_after_overflow"] = json!(true);
                event.body = serde_json::to_vec(&record_body).unwrap_or_default().into();
                if let Some(keys) = event.keys.as_mut() {
                    keys.object_id = id;
                    keys.action = if deleted { "gap_delete" } else { "gap_update" }.into();
                }
                event
            })
            .collect())
    }

    /// The event's schema, read once per id.
    async fn schema(
        &self,
        client: &mut PubSubClient,
        token: &tributary_config::Secret,
        event: &ConsumerEvent,
    ) -> Result<Arc<Schema>, String> {
        let id = event
            .event
            .as_ref()
            .map(|e| e.schema_id.clone())
            .unwrap_or_default();
        if let Some(schema) = self.schemas.lock().await.get(&id) {
            return Ok(schema.clone());
        }
        let request = self
            .request(
                SchemaRequest {
                    schema_id: id.clone(),
                },
                token.expose(),
            )
            .map_err(|_| "the token is not valid gRPC metadata".to_owned())?;
        let info = client
            .get_schema(request)
            .await
            .map_err(|status| format!("GetSchema({id}): {}", status.message()))?
            .into_inner();
        let schema = Arc::new(
            Schema::parse_str(&info.schema_json)
                .map_err(|err| format!("schema {id} is not an Avro schema: {err}"))?,
        );
        self.schemas.lock().await.insert(id, schema.clone());
        Ok(schema)
    }

    fn raw_events(&self, event: &ConsumerEvent, schema: Result<&Schema, &String>) -> Vec<RawEvent> {
        raw_events(
            &self.tenant,
            &self.settings.organization_id,
            &self.channel,
            event,
            schema,
            chrono::Utc::now().timestamp_micros().max(0) as u64,
        )
    }
}

/// A change event's id for one of its records: read twice, it is one event.
fn change_event_id(organization_id: &str, event_uuid: &str, record: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{organization_id}:{event_uuid}:{record}").as_bytes(),
    )
    .to_string()
}

/// The raw events of one change event: one per record it covers, or one
/// carrying why it could not be decoded.
pub fn raw_events(
    tenant: &str,
    organization_id: &str,
    channel: &str,
    event: &ConsumerEvent,
    schema: Result<&Schema, &String>,
    received_at_micros: u64,
) -> Vec<RawEvent> {
    let producer = event.event.clone().unwrap_or_default();
    let replay_id = base64::engine::general_purpose::STANDARD.encode(&event.replay_id);
    let channel_entity = channel
        .trim_start_matches("/data/")
        .trim_end_matches("ChangeEvent")
        .to_ascii_lowercase();
    let envelope = |object: String, object_id: String, action: String, at: u64, body: Value| {
        let event_id = change_event_id(organization_id, &producer.id, &object_id);
        RawEvent {
            envelope_version: ENVELOPE_VERSION,
            tenant: tenant.to_owned(),
            source: NAME.to_owned(),
            received_at_micros,
            event_id,
            content_type: CONTENT_TYPE.to_owned(),
            verdict: Verdict::Accepted as i32,
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
            keys: Some(EventKeys {
                payload_version: PAYLOAD_VERSION_CDC.to_owned(),
                object,
                object_id,
                action,
                attempt: 1,
                occurred_at_micros: at,
            }),
            ..RawEvent::default()
        }
    };
    let decoded = schema
        .map_err(Clone::clone)
        .and_then(|schema| avro::decode(schema, &producer.payload));
    let change = match decoded {
        Ok(change) => change,
        Err(reason) => {
            tracing::warn!(channel, event = %producer.id, %reason, "a change event could not be decoded; kept for the dead-letter topic");
            return vec![envelope(
                channel_entity,
                producer.id.clone(),
                "undecodable".into(),
                0,
                json!({
                    "channel": channel, "event_uuid": producer.id, "schema_id": producer.schema_id,
                    "replay_id": replay_id, "undecodable": reason,
                    "payload": base64::engine::general_purpose::STANDARD.encode(&producer.payload),
                }),
            )];
        }
    };
    let object = change.entity_name().to_ascii_lowercase();
    let action = change.change_type().to_ascii_lowercase();
    // A commit time past what microseconds hold is no time: ordered by receipt.
    let at = change
        .commit_millis()
        .and_then(|ms| u64::try_from(ms).ok())
        .and_then(|ms| ms.checked_mul(1_000))
        .unwrap_or(0);
    let mut ids = change.record_ids();
    // A gap overflow names no records: one event says so.
    if ids.is_empty() {
        ids.push(String::new());
    }
    ids.into_iter()
        .map(|id| {
            let record_id = id_18(&id).unwrap_or(id);
            let body = json!({
                "channel": channel,
                "event_uuid": producer.id,
                "schema_id": producer.schema_id,
                "replay_id": replay_id,
                "record_id": record_id,
                "header": change.header,
                "changed_fields": change.changed,
                "nulled_fields": change.nulled,
                "diff_fields": change.diff,
                "fields": change.fields,
            });
            envelope(object.clone(), record_id, action.clone(), at, body)
        })
        .collect()
}

mod internal_events {
    pub fn stored(subscription: &str, events: usize) {
        metrics::counter!("tributary_collector_pulled_events_total", "subscription" => subscription.to_owned())
            .increment(events as u64);
    }

    pub fn restarted(subscription: &str, reason: &'static str) {
        metrics::counter!("tributary_collector_pull_restarts_total", "subscription" => subscription.to_owned(), "reason" => reason)
            .increment(1);
    }
}

#[cfg(test)]
mod tests;
