//! Change Data Capture: bitmaps and Avro decoding, and subscriptions against
//! the fake Pub/Sub API (flow control, checkpoints, restarts, refused
//! replay ids, a sink that fails).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use serde_json::{Value, json};
use tributary_envelope::RawEvent;
use tributary_fake_apis::salesforce_pubsub::{
    Change, FakePubSub, OPPORTUNITY_CHANGE_EVENT_SCHEMA, OPPORTUNITY_SCHEMA_ID, PubSubState,
    RunningPubSub, encode,
};
use tributary_salesforce_pubsub::ReplayPreset;

use super::avro::{decode, set_bits};
use super::build;
use crate::BoxFuture;
use crate::pull::{Checkpoints, PullSink, PullSource};

const ORG: &str = "00D5g000004ABCDEA4";
const TOKEN: &str = "00D5g000004ABCD!cdc-session";
const CHANNEL: &str = "/data/OpportunityChangeEvent";
const OPPORTUNITY: &str = "0065g00000AbCdEAAV";

fn schema() -> Schema {
    Schema::parse_str(OPPORTUNITY_CHANGE_EVENT_SCHEMA).expect("schema")
}

#[test]
fn bitmaps_name_positions_from_the_lowest_bit() {
    assert_eq!(set_bits("0x0C").expect("hex"), [2, 3]);
    // Salesforce's documented example.
    assert_eq!(
        set_bits("0x650004E0").expect("hex"),
        [5, 6, 7, 10, 24, 26, 29, 30]
    );
    assert_eq!(set_bits("0x").expect("hex"), Vec::<usize>::new());
    assert!(set_bits("650004E0").is_err());
    assert!(set_bits("0xZZ").is_err());
}

#[test]
fn an_update_says_only_what_changed_and_what_was_nulled() {
    let schema = schema();
    let payload = encode(
        &schema,
        &Change {
            change_type: "UPDATE",
            record_ids: vec![OPPORTUNITY.into()],
            commit_timestamp_ms: 1_741_105_800_000,
            fields: vec![
                ("StageName", Some(Avro::String("Closed Won".into()))),
                ("IsWon", Some(Avro::Boolean(true))),
                ("IsClosed", Some(Avro::Boolean(true))),
                ("LastModifiedDate", Some(Avro::Long(1_741_105_800_000))),
                ("NextStep", None),
                ("Description", None),
            ],
        },
    );
    let change = decode(&schema, &payload).expect("decoded");
    assert_eq!(change.change_type(), "UPDATE");
    assert_eq!(change.entity_name(), "Opportunity");
    assert_eq!(change.record_ids(), [OPPORTUNITY]);
    assert_eq!(change.commit_millis(), Some(1_741_105_800_000));
    assert_eq!(
        change.changed,
        ["StageName", "IsClosed", "IsWon", "LastModifiedDate"]
    );
    assert_eq!(change.nulled, ["Description"]);
    // Amount is null in the payload too, but unchanged: it is not said.
    assert_eq!(
        Value::Object(change.fields),
        json!({"StageName": "Closed Won", "IsWon": true, "IsClosed": true,
               "LastModifiedDate": 1_741_105_800_000_i64, "Description": null})
    );
}

#[test]
fn compound_fields_are_read_through_their_own_bitmap() {
    let schema = Schema::parse_str(
        r#"{"type": "record", "name": "ContactChangeEvent", "fields": [
            {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader", "fields": [
                {"name": "entityName", "type": "string"},
                {"name": "recordIds", "type": {"type": "array", "items": "string"}},
                {"name": "changeType", "type": "string"},
                {"name": "commitTimestamp", "type": "long"},
                {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
                {"name": "diffFields", "type": {"type": "array", "items": "string"}},
                {"name": "changedFields", "type": {"type": "array", "items": "string"}}]}},
            {"name": "Name", "type": ["null", {"type": "record", "name": "Name", "fields": [
                {"name": "Salutation", "type": ["null", "string"]},
                {"name": "FirstName", "type": ["null", "string"]},
                {"name": "LastName", "type": ["null", "string"]}]}]},
            {"name": "AccountId", "type": ["null", "string"]},
            {"name": "Description", "type": ["null", "string"]}]}"#,
    )
    .expect("schema");
    let strings =
        |items: &[&str]| Avro::Array(items.iter().map(|s| Avro::String((*s).into())).collect());
    let record = Avro::Record(vec![
        (
            "ChangeEventHeader".into(),
            Avro::Record(vec![
                ("entityName".into(), Avro::String("Contact".into())),
                ("recordIds".into(), strings(&["0035g00000AbCdEAAV"])),
                ("changeType".into(), Avro::String("UPDATE".into())),
                ("commitTimestamp".into(), Avro::Long(1)),
                ("nulledFields".into(), strings(&[])),
                // Description sent as a diff: not whole, so left out.
                ("diffFields".into(), strings(&["0x8"])),
                // AccountId and Description (bits 2, 3); Name.LastName (part 2 of field 1).
                ("changedFields".into(), strings(&["0xC", "1-0x4"])),
            ]),
        ),
        (
            "Name".into(),
            Avro::Union(
                1,
                Box::new(Avro::Record(vec![
                    ("Salutation".into(), Avro::Union(0, Box::new(Avro::Null))),
                    ("FirstName".into(), Avro::Union(0, Box::new(Avro::Null))),
                    (
                        "LastName".into(),
                        Avro::Union(1, Box::new(Avro::String("Reyes".into()))),
                    ),
                ])),
            ),
        ),
        (
            "AccountId".into(),
            Avro::Union(1, Box::new(Avro::String("0015g00000AcCoUAAA".into()))),
        ),
        (
            "Description".into(),
            Avro::Union(1, Box::new(Avro::String("@@ -1 +1 @@".into()))),
        ),
    ]);
    let payload = apache_avro::to_avro_datum(&schema, record).expect("encoded");
    let change = decode(&schema, &payload).expect("decoded");
    assert_eq!(
        change.changed,
        ["AccountId", "Description", "Name.LastName"]
    );
    assert_eq!(change.diff, ["Description"]);
    assert_eq!(
        Value::Object(change.fields),
        json!({"AccountId": "0015g00000AcCoUAAA", "Name.LastName": "Reyes"})
    );
    let err = decode(&schema, &payload[..5]).expect_err("cut short");
    assert!(err.contains("does not fit its schema"), "{err}");
}

/// Collects what the subscription stores; fails the first `fail` stores.
#[derive(Default)]
struct Collected {
    events: Mutex<Vec<RawEvent>>,
    fail: Mutex<usize>,
    attempts: Mutex<usize>,
}

impl PullSink for Collected {
    fn store(&self, events: Vec<RawEvent>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            *self.attempts.lock().expect("lock") += 1;
            let mut fail = self.fail.lock().expect("lock");
            if *fail > 0 {
                *fail -= 1;
                return Err("the broker is away".into());
            }
            self.events.lock().expect("lock").extend(events);
            Ok(())
        })
    }
}

impl Collected {
    fn len(&self) -> usize {
        self.events.lock().expect("lock").len()
    }

    async fn wait_for(&self, count: usize) {
        for _ in 0..200 {
            if self.len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} events stored, not {count}", self.len());
    }
}

async fn fake() -> RunningPubSub {
    let mut state = PubSubState {
        keepalive: Duration::from_millis(200),
        ..PubSubState::default()
    };
    state.tokens.insert(TOKEN.into());
    FakePubSub::start(state).await.expect("fake Pub/Sub")
}

fn subscription(fake: &RunningPubSub, start: &str) -> Box<dyn PullSource> {
    let section = json!({
        "organization_id": ORG, "endpoint_secret": "s",
        "instance_url": "https://acme.my.salesforce.com", "access_token": TOKEN,
        "pubsub_url": fake.url(), "change_events": [CHANNEL], "change_events_start": start,
    });
    let mut built = build(vec![("acme", &section)], reqwest::Client::new()).expect("built");
    assert_eq!(built.len(), 1);
    built.remove(0)
}

fn publish_stage(fake: &RunningPubSub, stage: &str, at_ms: i64) -> Vec<u8> {
    let payload = encode(
        &schema(),
        &Change {
            change_type: "UPDATE",
            record_ids: vec![OPPORTUNITY.into()],
            commit_timestamp_ms: at_ms,
            fields: vec![("StageName", Some(Avro::String(stage.into())))],
        },
    );
    fake.publish(CHANNEL, OPPORTUNITY_SCHEMA_ID, payload)
}

fn run(
    source: Box<dyn PullSource>,
    sink: Arc<Collected>,
    checkpoints: Checkpoints,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { source.run(sink.as_ref(), &checkpoints).await })
}

#[tokio::test]
async fn a_subscription_stores_then_checkpoints_and_a_restart_resumes_after_it() {
    let fake = fake().await;
    let created = encode(
        &schema(),
        &Change {
            change_type: "CREATE",
            record_ids: vec![OPPORTUNITY.into(), "0065g00000AbCdFAAV".into()],
            commit_timestamp_ms: 1_741_000_000_000,
            fields: vec![
                ("Name", Some(Avro::String("Renewal".into()))),
                ("Amount", Some(Avro::Double(48_000.25))),
                ("StageName", Some(Avro::String("Prospecting".into()))),
                ("CloseDate", Some(Avro::Int(20_151))),
            ],
        },
    );
    fake.publish(CHANNEL, OPPORTUNITY_SCHEMA_ID, created);
    let dir = tempfile::tempdir().expect("dir");
    let checkpoints = Checkpoints::open(dir.path()).expect("checkpoints");
    let sink = Arc::new(Collected::default());
    let task = run(
        subscription(&fake, "earliest"),
        sink.clone(),
        checkpoints.clone(),
    );
    // One creation of two records: two events.
    sink.wait_for(2).await;
    let second = publish_stage(&fake, "Negotiation", 1_741_100_000_000);
    sink.wait_for(3).await;
    {
        let events = sink.events.lock().expect("lock");
        let keys = events[0].keys.clone().expect("keys");
        assert_eq!(
            (
                keys.payload_version.as_str(),
                keys.object.as_str(),
                keys.action.as_str()
            ),
            ("cdc", "opportunity", "create")
        );
        assert_eq!(keys.object_id, OPPORTUNITY);
        assert_eq!(keys.occurred_at_micros, 1_741_000_000_000_000);
        assert_ne!(events[0].event_id, events[1].event_id, "one id per record");
        assert_eq!(
            events[1].keys.as_ref().expect("keys").object_id,
            "0065g00000AbCdFAAV"
        );
        let body: Value = serde_json::from_slice(&events[0].body).expect("JSON");
        assert_eq!(body["fields"]["Amount"], json!(48_000.25));
        assert_eq!(body["fields"]["CloseDate"], json!(20_151));
        let update: Value = serde_json::from_slice(&events[2].body).expect("JSON");
        assert_eq!(update["fields"], json!({"StageName": "Negotiation"}));
    }
    // The checkpoint is the last stored event's replay id (or a later
    // keepalive's, which names the same event).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        checkpoints
            .load(subscription(&fake, "earliest").name())
            .expect("read"),
        Some(second)
    );
    task.abort();
    let _ = task.await;

    // Two changes while it is stopped; the restart reads exactly those.
    publish_stage(&fake, "Closed Won", 1_741_105_800_000);
    publish_stage(&fake, "Closed Won", 1_741_105_900_000);
    let task = run(
        subscription(&fake, "latest"),
        sink.clone(),
        checkpoints.clone(),
    );
    sink.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.len(), 5, "nothing read twice, nothing skipped");
    task.abort();
    let state = fake.state();
    let presets: Vec<ReplayPreset> = state.subscriptions.iter().map(|s| s.preset).collect();
    assert_eq!(presets, [ReplayPreset::Earliest, ReplayPreset::Custom]);
    // Flow control: 100 asked by each subscription at first, then as many
    // as were handled (one event at a time, then the two left while it was
    // stopped).
    assert_eq!(state.requested, [100, 1, 1, 100, 2]);
    assert_eq!(
        state.schema_reads, 2,
        "the schema is read once per subscription"
    );
}

#[tokio::test]
async fn a_lost_stream_or_a_failing_sink_neither_skips_nor_repeats() {
    let fake = fake().await;
    for (n, stage) in ["Prospecting", "Qualification", "Negotiation", "Closed Won"]
        .iter()
        .enumerate()
    {
        publish_stage(&fake, stage, 1_741_000_000_000 + n as i64);
    }
    fake.state().drop_after = Some(2);
    let dir = tempfile::tempdir().expect("dir");
    let checkpoints = Checkpoints::open(dir.path()).expect("checkpoints");
    let sink = Arc::new(Collected::default());
    *sink.fail.lock().expect("lock") = 2;
    let task = run(subscription(&fake, "earliest"), sink.clone(), checkpoints);
    sink.wait_for(4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.abort();
    let events = sink.events.lock().expect("lock");
    let stages: Vec<String> = events
        .iter()
        .map(|e| {
            let body: Value = serde_json::from_slice(&e.body).expect("JSON");
            body["fields"]["StageName"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        stages,
        ["Prospecting", "Qualification", "Negotiation", "Closed Won"]
    );
    assert!(
        *sink.attempts.lock().expect("lock") >= 4,
        "the failed stores were retried"
    );
    assert!(
        fake.state().subscriptions.len() >= 2,
        "the lost stream was resumed"
    );
}

#[tokio::test]
async fn a_replay_id_no_longer_retained_restarts_from_the_earliest_event() {
    let fake = fake().await;
    for n in 0..3 {
        publish_stage(&fake, "Prospecting", 1_741_000_000_000 + n);
    }
    let dir = tempfile::tempdir().expect("dir");
    let checkpoints = Checkpoints::open(dir.path()).expect("checkpoints");
    let source = subscription(&fake, "latest");
    // A checkpoint from before the retention window.
    checkpoints
        .save(source.name(), &1u64.to_be_bytes())
        .expect("save");
    fake.state().retained_from = 2;
    let sink = Arc::new(Collected::default());
    let task = run(source, sink.clone(), checkpoints);
    sink.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.abort();
    assert_eq!(sink.len(), 1, "the one event still retained");
    let presets: Vec<ReplayPreset> = fake
        .state()
        .subscriptions
        .iter()
        .map(|s| s.preset)
        .collect();
    assert_eq!(presets, [ReplayPreset::Custom, ReplayPreset::Earliest]);
}

#[tokio::test]
async fn an_undecodable_event_is_kept_with_why_and_the_next_ones_flow() {
    let fake = fake().await;
    fake.publish(CHANNEL, OPPORTUNITY_SCHEMA_ID, vec![0xff, 0xff, 0xff]);
    fake.publish(CHANNEL, "no-such-schema", vec![]);
    publish_stage(&fake, "Closed Won", 1_741_105_800_000);
    let dir = tempfile::tempdir().expect("dir");
    let sink = Arc::new(Collected::default());
    let task = run(
        subscription(&fake, "earliest"),
        sink.clone(),
        Checkpoints::open(dir.path()).expect("checkpoints"),
    );
    sink.wait_for(3).await;
    task.abort();
    let events = sink.events.lock().expect("lock");
    let bodies: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_slice(&e.body).expect("JSON"))
        .collect();
    assert!(
        bodies[0]["undecodable"]
            .as_str()
            .expect("why")
            .contains("does not fit")
    );
    assert!(
        bodies[1]["undecodable"]
            .as_str()
            .expect("why")
            .contains("no-such-schema")
    );
    assert_eq!(events[0].keys.as_ref().expect("keys").action, "undecodable");
    assert_eq!(bodies[2]["fields"]["StageName"], "Closed Won");
}

#[tokio::test]
async fn a_gap_overflows_records_are_listed_and_each_stored_as_a_gap() {
    use tributary_fake_apis::{FakeSalesforce, SalesforceState};
    // The org: one opportunity modified in the overflow's transaction, one
    // before it, one modified in it and deleted since.
    let mut state = SalesforceState::default();
    let org = state.org(TOKEN);
    let opportunity = |id: &str, modified: &str| json!({"Id": id, "IsDeleted": false, "SystemModstamp": modified, "Name": id});
    org.put(
        "Opportunity",
        opportunity("0065g00000Ov1AAAAA", "2025-03-04T16:30:00.000+0000"),
    );
    org.put(
        "Opportunity",
        opportunity("0065g00000Ov2AAAAA", "2025-03-04T16:29:59.000+0000"),
    );
    org.put(
        "Opportunity",
        opportunity("0065g00000Ov3AAAAA", "2025-03-04T16:30:01.000+0000"),
    );
    org.delete("Opportunity", "0065g00000Ov3AAAAA");
    let api = FakeSalesforce::start(state).await.expect("fake REST API");
    let fake = fake().await;
    let overflow = |fake: &RunningPubSub| {
        let payload = encode(
            &schema(),
            &Change {
                change_type: "GAP_OVERFLOW",
                record_ids: Vec::new(),
                commit_timestamp_ms: 1_741_105_800_250,
                fields: Vec::new(),
            },
        );
        fake.publish(CHANNEL, OPPORTUNITY_SCHEMA_ID, payload);
    };
    overflow(&fake);
    publish_stage(&fake, "Closed Won", 1_741_105_900_000);
    let section = |token: &str| {
        json!({
            "organization_id": ORG, "endpoint_secret": "s",
            "instance_url": api.base_url(), "access_token": token,
            "pubsub_url": fake.url(), "change_events": [CHANNEL], "change_events_start": "earliest",
        })
    };
    let listed = build(vec![("acme", &section(TOKEN))], reqwest::Client::new())
        .expect("built")
        .remove(0);
    let dir = tempfile::tempdir().expect("dir");
    let sink = Arc::new(Collected::default());
    let task = run(
        listed,
        sink.clone(),
        Checkpoints::open(dir.path()).expect("checkpoints"),
    );
    sink.wait_for(3).await;
    task.abort();
    let mut gaps: Vec<(String, String)> = sink.events.lock().expect("lock")[..2]
        .iter()
        .map(|e| {
            let keys = e.keys.clone().expect("keys");
            (keys.object_id, keys.action)
        })
        .collect();
    gaps.sort();
    assert_eq!(
        gaps,
        [
            ("0065g00000Ov1AAAAA".to_owned(), "gap_update".to_owned()),
            ("0065g00000Ov3AAAAA".to_owned(), "gap_delete".to_owned()),
        ],
        "the records modified since the commit's second, deleted ones too"
    );
    let ids: std::collections::HashSet<String> = sink
        .events
        .lock()
        .expect("lock")
        .iter()
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(ids.len(), 3, "one event id per record");
    assert_eq!(
        sink.events.lock().expect("lock")[2]
            .keys
            .as_ref()
            .expect("keys")
            .action,
        "update",
        "and the next event flows"
    );

    // Without a REST API that answers, the overflow is kept as it came,
    // for the dead-letter topic.
    let unlisted = build(
        vec![("acme", &section("00D5g000004ABCD!not-a-session"))],
        reqwest::Client::new(),
    )
    .expect("built")
    .remove(0);
    let sink = Arc::new(Collected::default());
    let dir = tempfile::tempdir().expect("dir");
    fake.state()
        .tokens
        .insert("00D5g000004ABCD!not-a-session".into());
    let task = run(
        unlisted,
        sink.clone(),
        Checkpoints::open(dir.path()).expect("checkpoints"),
    );
    sink.wait_for(2).await;
    task.abort();
    let events = sink.events.lock().expect("lock");
    assert_eq!(
        events[0].keys.as_ref().expect("keys").action,
        "gap_overflow"
    );
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn a_refused_token_is_said_and_retried() {
    let fake = fake().await;
    fake.state().tokens.clear();
    let dir = tempfile::tempdir().expect("dir");
    let sink = Arc::new(Collected::default());
    let task = run(
        subscription(&fake, "latest"),
        sink.clone(),
        Checkpoints::open(dir.path()).expect("checkpoints"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        fake.state().subscriptions.is_empty(),
        "refused before subscribing"
    );
    fake.state().tokens.insert(TOKEN.into());
    publish_stage(&fake, "Closed Won", 1_741_105_800_000);
    // Subscribed from latest once accepted: then a new change arrives.
    for _ in 0..100 {
        if !fake.state().subscriptions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish_stage(&fake, "Closed Lost", 1_741_105_900_000);
    sink.wait_for(1).await;
    task.abort();
}

#[test]
fn settings_for_change_data_capture_say_what_is_missing() {
    let base = json!({
        "organization_id": ORG, "endpoint_secret": "s",
        "instance_url": "https://acme.my.salesforce.com", "access_token": TOKEN,
        "pubsub_url": "https://api.pubsub.salesforce.com:7443",
    });
    let settings = crate::salesforce::tenant_settings(&base).expect("valid");
    assert_eq!(
        settings.change_events,
        [CHANNEL],
        "the opportunity channel by default"
    );
    let with = |key: &str, value: Value| {
        let mut section = base.clone();
        section[key] = value;
        crate::salesforce::tenant_settings(&section)
    };
    let err = with("change_events", json!(["/event/Thing__e"])).expect_err("not CDC");
    assert!(err.contains("not a Change Data Capture channel"), "{err}");
    let err = with("change_events", json!([])).expect_err("none");
    assert!(err.contains("at least one"), "{err}");
    let mut no_instance = base.clone();
    no_instance
        .as_object_mut()
        .expect("object")
        .remove("instance_url");
    no_instance
        .as_object_mut()
        .expect("object")
        .remove("access_token");
    let err = crate::salesforce::tenant_settings(&no_instance).expect_err("no instance");
    assert!(err.contains("instance_url"), "{err}");
    let mut refresh = base.clone();
    refresh
        .as_object_mut()
        .expect("object")
        .remove("access_token");
    refresh["oauth"] = json!({"token_url": "https://login.salesforce.com/services/oauth2/token", "client_id": "c", "client_secret": "s", "refresh_token": "r"});
    let err = crate::salesforce::tenant_settings(&refresh).expect_err("refresh token");
    assert!(err.contains("JWT bearer"), "{err}");
}

/// `tests/fixtures/salesforce/opportunity-change-event.avro`: an update of
/// an opportunity to Closed Won, as the Pub/Sub API delivers its payload
/// (kept as bytes, so the decoder is held to them, not to an encoder).
const FIXTURE: &[u8] =
    include_bytes!("../../../../../tests/fixtures/salesforce/opportunity-change-event.avro");

#[test]
fn the_fixture_payload_decodes_to_its_change() {
    let change = decode(&schema(), FIXTURE).expect("decoded");
    assert_eq!(change.change_type(), "UPDATE");
    assert_eq!(change.record_ids(), [OPPORTUNITY]);
    assert_eq!(change.commit_millis(), Some(1_741_105_800_000));
    assert_eq!(
        change.changed,
        [
            "StageName",
            "Probability",
            "IsClosed",
            "IsWon",
            "LastModifiedDate"
        ]
    );
    assert_eq!(change.nulled, ["Type"]);
    assert_eq!(change.fields["Probability"], json!(100.0));
    assert_eq!(change.fields["Type"], Value::Null);
}
