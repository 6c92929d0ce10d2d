//! A fake Salesforce Pub/Sub API (gRPC `eventbus.v1.PubSub`): channels of
//! change events encoded in Avro with their schemas, `Subscribe` with the
//! replay presets and flow control (`num_requested`), keepalives carrying
//! the latest replay id, and `GetSchema`.
//!
//! Replay ids are 8-byte big-endian positions. A `CUSTOM` replay id the
//! channel no longer retains (before `retained_from`) or never gave fails
//! the call with `INVALID_ARGUMENT` and the trailer `error-code:
//! sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted`; an
//! unknown `accesstoken` with `UNAUTHENTICATED`. `drop_after` ends the next
//! stream with `UNAVAILABLE` after that many events, as a lost connection.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tributary_salesforce_pubsub::{
    ConsumerEvent, FetchRequest, FetchResponse, ProducerEvent, PubSub, PubSubServer, ReplayPreset,
    SchemaInfo, SchemaRequest,
};

/// The schema id the fake gives [`OPPORTUNITY_CHANGE_EVENT_SCHEMA`].
pub const OPPORTUNITY_SCHEMA_ID: &str = "opportunity-schema-1";

/// `OpportunityChangeEvent`'s Avro schema, in the form Salesforce publishes
/// (a header record, then every field optional, in the object's order;
/// dates as days and date-times as milliseconds since the epoch).
pub const OPPORTUNITY_CHANGE_EVENT_SCHEMA: &str =
    include_str!("../../../tests/fixtures/salesforce/OpportunityChangeEvent.avsc");

/// One change to publish: the header's facts and the fields it sets
/// (`None` to null a field). Bitmaps are computed from the schema.
#[derive(Debug, Clone)]
pub struct Change {
    pub change_type: &'static str,
    pub record_ids: Vec<String>,
    pub commit_timestamp_ms: i64,
    pub fields: Vec<(&'static str, Option<Avro>)>,
}

/// The positions of `names` in `schema`'s fields as a `0x` bitmap.
pub fn bitmap(schema: &Schema, names: &[&str]) -> String {
    let Schema::Record(record) = schema else {
        return "0x0".into();
    };
    let mut bits: Vec<u8> = vec![0; record.fields.len().div_ceil(8).max(1)];
    for name in names {
        if let Some(position) = record.lookup.get(*name) {
            bits[position / 8] |= 1 << (position % 8);
        }
    }
    let hex: String = bits.iter().rev().map(|b| format!("{b:02X}")).collect();
    format!("0x{hex}")
}

/// Encodes a change with `schema` as Salesforce does, as the only change
/// of its transaction.
pub fn encode(schema: &Schema, change: &Change) -> Vec<u8> {
    encode_in_transaction(schema, change, "0002343d-9d90-e395-ed20-cf416ba652ad", 1)
}

/// Encodes a change with `schema` as the `sequence_number`th (from 1) of
/// the transaction `transaction_key`: every change event of one
/// transaction carries its key, numbered in commit order.
pub fn encode_in_transaction(
    schema: &Schema,
    change: &Change,
    transaction_key: &str,
    sequence_number: i32,
) -> Vec<u8> {
    let Schema::Record(record) = schema else {
        return Vec::new();
    };
    let set: Vec<&str> = change
        .fields
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| *n)
        .collect();
    let nulled: Vec<&str> = change
        .fields
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    let strings = |items: Vec<String>| Avro::Array(items.into_iter().map(Avro::String).collect());
    let bitmaps = |names: &[&str]| {
        if names.is_empty() {
            Vec::new()
        } else {
            vec![bitmap(schema, names)]
        }
    };
    let symbols = [
        "CREATE",
        "UPDATE",
        "DELETE",
        "UNDELETE",
        "GAP_CREATE",
        "GAP_UPDATE",
        "GAP_DELETE",
        "GAP_UNDELETE",
        "GAP_OVERFLOW",
        "SNAPSHOT",
    ];
    let change_type = symbols
        .iter()
        .position(|s| *s == change.change_type)
        .unwrap_or(1);
    let header = Avro::Record(vec![
        ("entityName".into(), Avro::String("Opportunity".into())),
        ("recordIds".into(), strings(change.record_ids.clone())),
        (
            "changeType".into(),
            Avro::Enum(change_type as u32, change.change_type.into()),
        ),
        (
            "changeOrigin".into(),
            Avro::String("com/salesforce/api/soap/62.0;client=SfdcInternalAPI/".into()),
        ),
        (
            "transactionKey".into(),
            Avro::String(transaction_key.into()),
        ),
        ("sequenceNumber".into(), Avro::Int(sequence_number)),
        (
            "commitTimestamp".into(),
            Avro::Long(change.commit_timestamp_ms),
        ),
        (
            "commitNumber".into(),
            Avro::Long(change.commit_timestamp_ms / 10),
        ),
        (
            "commitUser".into(),
            Avro::String("0055g00000OwNeRAAA".into()),
        ),
        ("nulledFields".into(), strings(bitmaps(&nulled))),
        ("diffFields".into(), strings(Vec::new())),
        (
            "changedFields".into(),
            // A creation's changed fields are not listed.
            strings(if change.change_type == "CREATE" {
                Vec::new()
            } else {
                bitmaps(&set)
            }),
        ),
    ]);
    let mut values = vec![("ChangeEventHeader".to_owned(), header)];
    for field in record.fields.iter().skip(1) {
        let value = change
            .fields
            .iter()
            .find(|(n, _)| *n == field.name)
            .and_then(|(_, v)| v.clone());
        values.push((
            field.name.clone(),
            match value {
                Some(v) => Avro::Union(1, Box::new(v)),
                None => Avro::Union(0, Box::new(Avro::Null)),
            },
        ));
    }
    apache_avro::to_avro_datum(schema, Avro::Record(values)).unwrap_or_default()
}

/// One `Subscribe` call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub topic: String,
    pub preset: ReplayPreset,
    pub replay_id: Vec<u8>,
}

/// The fake's state.
#[derive(Debug, Default)]
pub struct PubSubState {
    /// Access tokens that are accepted.
    pub tokens: HashSet<String>,
    /// Schemas by id.
    pub schemas: HashMap<String, String>,
    /// Every channel's events, in order (the replay id of the n-th is n + 1).
    pub channels: HashMap<String, Vec<ProducerEvent>>,
    /// Events before this position are no longer retained.
    pub retained_from: usize,
    /// How often an idle stream gets a keepalive (Salesforce: within 270 s).
    pub keepalive: Duration,
    /// End the next stream with `UNAVAILABLE` after this many events.
    pub drop_after: Option<usize>,
    pub subscriptions: Vec<Subscription>,
    /// `num_requested` of every fetch request, in order.
    pub requested: Vec<i32>,
    pub schema_reads: usize,
}

impl PubSubState {
    /// Adds an event to `channel` and returns its replay id.
    pub fn publish(&mut self, channel: &str, schema_id: &str, payload: Vec<u8>) -> Vec<u8> {
        let events = self.channels.entry(channel.to_owned()).or_default();
        let position = events.len();
        events.push(ProducerEvent {
            id: format!("e{position:05}-{}", channel.len()),
            schema_id: schema_id.to_owned(),
            payload,
            headers: Vec::new(),
        });
        replay_id(position + 1)
    }
}

/// The replay id after the event at `position - 1`.
pub fn replay_id(position: usize) -> Vec<u8> {
    (position as u64).to_be_bytes().to_vec()
}

/// A running fake; stops when dropped.
pub struct RunningPubSub {
    pub address: SocketAddr,
    pub state: Arc<Mutex<PubSubState>>,
    published: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningPubSub {
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, PubSubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes and wakes the subscriptions.
    pub fn publish(&self, channel: &str, schema_id: &str, payload: Vec<u8>) -> Vec<u8> {
        let id = self.state().publish(channel, schema_id, payload);
        self.published.notify_waiters();
        id
    }
}

impl Drop for RunningPubSub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct FakePubSub;

impl FakePubSub {
    pub async fn start(mut state: PubSubState) -> std::io::Result<RunningPubSub> {
        if state.keepalive.is_zero() {
            state.keepalive = Duration::from_secs(270);
        }
        state
            .schemas
            .entry(OPPORTUNITY_SCHEMA_ID.into())
            .or_insert_with(|| OPPORTUNITY_CHANGE_EVENT_SCHEMA.into());
        let state = Arc::new(Mutex::new(state));
        let published = Arc::new(Notify::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let service = PubSubServer::new(Service {
            state: state.clone(),
            published: published.clone(),
        });
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Ok(RunningPubSub {
            address,
            state,
            published,
            task,
        })
    }
}

struct Service {
    state: Arc<Mutex<PubSubState>>,
    published: Arc<Notify>,
}

impl Service {
    fn lock(&self) -> std::sync::MutexGuard<'_, PubSubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let token = request
            .metadata()
            .get(tributary_salesforce_pubsub::ACCESS_TOKEN_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if self.lock().tokens.contains(token) {
            return Ok(());
        }
        let mut status = Status::unauthenticated("Authentication exception");
        status.metadata_mut().insert(
            "error-code",
            "sfdc.platform.eventbus.grpc.service.auth.error"
                .parse()
                .map_err(|_| Status::internal("metadata"))?,
        );
        Err(status)
    }
}

fn replay_refused() -> Status {
    let mut status = Status::invalid_argument("The replay ID validation failed");
    if let Ok(code) = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted".parse() {
        status.metadata_mut().insert("error-code", code);
    }
    status
}

#[tonic::async_trait]
impl PubSub for Service {
    type SubscribeStream = ReceiverStream<Result<FetchResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.authenticate(&request)?;
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no fetch request"))?;
        let preset = ReplayPreset::try_from(first.replay_preset).unwrap_or(ReplayPreset::Latest);
        let (mut position, keepalive, mut drop_after) = {
            let mut state = self.lock();
            state.subscriptions.push(Subscription {
                topic: first.topic_name.clone(),
                preset,
                replay_id: first.replay_id.clone(),
            });
            state.requested.push(first.num_requested);
            let length = state.channels.get(&first.topic_name).map_or(0, Vec::len);
            let position = match preset {
                ReplayPreset::Latest => length,
                ReplayPreset::Earliest => state.retained_from.min(length),
                ReplayPreset::Custom => {
                    let bytes: [u8; 8] = first
                        .replay_id
                        .as_slice()
                        .try_into()
                        .map_err(|_| replay_refused())?;
                    let after = u64::from_be_bytes(bytes) as usize;
                    if after < state.retained_from || after > length {
                        return Err(replay_refused());
                    }
                    after
                }
            };
            (position, state.keepalive, state.drop_after.take())
        };
        let topic = first.topic_name.clone();
        let mut outstanding = first.num_requested.clamp(0, 100);
        let (sender, receiver) = mpsc::channel(16);
        let state = self.state.clone();
        let published = self.published.clone();
        tokio::spawn(async move {
            loop {
                let (batch, latest) = {
                    let state = state.lock().unwrap_or_else(|p| p.into_inner());
                    let events = state.channels.get(&topic).cloned().unwrap_or_default();
                    let take =
                        (outstanding.max(0) as usize).min(events.len().saturating_sub(position));
                    let batch: Vec<ConsumerEvent> = events[position..position + take]
                        .iter()
                        .enumerate()
                        .map(|(i, event)| ConsumerEvent {
                            event: Some(event.clone()),
                            replay_id: replay_id(position + i + 1),
                        })
                        .collect();
                    (batch, replay_id(events.len()))
                };
                if !batch.is_empty() {
                    let mut batch = batch;
                    if let Some(left) = drop_after.as_mut() {
                        if *left == 0 {
                            let _ = sender
                                .send(Err(Status::unavailable("connection reset")))
                                .await;
                            return;
                        }
                        batch.truncate(*left);
                        *left -= batch.len();
                    }
                    position += batch.len();
                    outstanding -= batch.len() as i32;
                    let response = FetchResponse {
                        latest_replay_id: batch
                            .last()
                            .map(|e| e.replay_id.clone())
                            .unwrap_or_default(),
                        events: batch,
                        rpc_id: "fake-rpc".into(),
                        pending_num_requested: outstanding,
                    };
                    if sender.send(Ok(response)).await.is_err() {
                        return;
                    }
                    continue;
                }
                tokio::select! {
                    request = inbound.message() => match request {
                        Ok(Some(request)) => {
                            state.lock().unwrap_or_else(|p| p.into_inner()).requested.push(request.num_requested);
                            outstanding = (outstanding + request.num_requested).min(100);
                        }
                        _ => return,
                    },
                    () = published.notified() => {}
                    () = tokio::time::sleep(keepalive) => {
                        let response = FetchResponse {
                            events: Vec::new(),
                            latest_replay_id: latest,
                            rpc_id: "fake-rpc".into(),
                            pending_num_requested: outstanding,
                        };
                        if sender.send(Ok(response)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        self.authenticate(&request)?;
        let id = request.into_inner().schema_id;
        let mut state = self.lock();
        state.schema_reads += 1;
        let schema = state
            .schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no schema {id}")))?;
        Ok(Response::new(SchemaInfo {
            schema_json: schema,
            schema_id: id,
            rpc_id: "fake-rpc".into(),
        }))
    }
}
