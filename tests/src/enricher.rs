//! Running the enricher against a test's own topics, and the sample world
//! its tests enrich against (the "Omni" account).

use std::time::Duration;

use serde_json::{Value, json};
use tributary_fake_apis::shapes;
use tributary_fake_apis::{Account, field_definition};

use crate::broker::{self, Record};
use crate::process::Service;

/// The topics one test uses.
#[derive(Debug, Clone)]
pub struct Topics {
    pub raw: String,
    pub enriched: String,
    pub dead_letter: String,
    pub retry: String,
}

impl Topics {
    pub async fn create(brokers: &str, partitions: i32) -> Self {
        Topics {
            raw: broker::unique_topic(brokers, "raw", partitions).await,
            enriched: broker::unique_topic(brokers, "enriched", partitions).await,
            dead_letter: broker::unique_topic(brokers, "dead-letter", partitions).await,
            retry: broker::unique_topic(brokers, "enrichment-retry", partitions).await,
        }
    }
}

/// An enricher process; `extra` is appended to its configuration.
pub struct EnricherProcess {
    pub service: Service,
    pub base: String,
    pub group: String,
}

impl EnricherProcess {
    pub async fn start(brokers: &str, topics: &Topics, group: &str, extra: &str) -> Self {
        let port = crate::free_port();
        let config = format!(
            r#"
[kafka]
brokers = "{brokers}"
compression = "none"

[topics]
raw = "{raw}"
enriched = "{enriched}"
dead_letter = "{dead_letter}"
retry = "{retry}"

[telemetry]
log_level = "{log_level}"

[enricher]
listen = "127.0.0.1:{port}"
group_id = "{group}"
instance_id = "{group}-1"
commit_interval_ms = 100

{extra}
"#,
            log_level = std::env::var("TRIBUTARY_TEST_ENRICHER_LOG")
                .unwrap_or_else(|_| "info,tributary_enricher=debug".into()),
            raw = topics.raw,
            enriched = topics.enriched,
            dead_letter = topics.dead_letter,
            retry = topics.retry,
        );
        let service = Service::start("tributary-enricher", "enricher", &config);
        let base = format!("http://127.0.0.1:{port}");
        crate::process::wait_for_http_ok(
            &format!("{base}/healthz"),
            Duration::from_secs(30),
            || service.log(),
        )
        .await;
        EnricherProcess {
            service,
            base,
            group: group.to_owned(),
        }
    }
}

/// Reads `topic` until every id in `wanted` was seen as `pipeline_event_id`
/// (or `timeout` passed); returns the ids seen and how many records held them.
pub fn wait_for_event_ids(
    brokers: &str,
    topic: &str,
    wanted: &[String],
    timeout: Duration,
) -> (std::collections::BTreeSet<String>, usize) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let batch = read_json(brokers, topic, usize::MAX, Duration::from_secs(3).min(left));
        let seen: std::collections::BTreeSet<String> = batch
            .iter()
            .filter_map(|(_, e)| e["pipeline_event_id"].as_str().map(str::to_owned))
            .collect();
        if wanted.iter().all(|id| seen.contains(id)) || std::time::Instant::now() >= deadline {
            return (seen, batch.len());
        }
    }
}

/// Reads JSON records of `topic` until `expected` arrived or `timeout` passed.
pub fn read_json(
    brokers: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<(Record, Value)> {
    broker::read_topic(brokers, topic, expected, timeout)
        .into_iter()
        .map(|record| {
            let json = serde_json::from_slice(&record.value)
                .unwrap_or_else(|e| panic!("{topic} holds non-JSON: {e}"));
            (record, json)
        })
        .collect()
}

/// Custom field keys of the sample account (40-character hashes, as Pipedrive makes them).
pub const SOURCE_FIELD: &str = "5f2c8e1a9b0d4c7e8f6a3b2c1d0e9f8a7b6c5d4e";
pub const CAMPAIGN_FIELD: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
pub const SIZE_FIELD: &str = "8d1e0f2a3b4c5d6e7f8091a2b3c4d5e6f7081920";
pub const INDUSTRY_FIELD: &str = "c0ffee00d15ea5e0ba5eba11deadbeef00c0ffee";
pub const OMNI_TOKEN: &str = "omni-api-token";
pub const VERIFIER_KEY: &str = "verifier-key";
pub const JANE: &str = "jane.doe@omnihealth.example";

/// The `[tenants.omni.pipedrive]` section for an API at `api_base_url`.
pub fn omni_tenant(api_base_url: &str) -> String {
    format!(
        r#"[tenants.omni.pipedrive]
username = "hook"
password = "s3cret"
api_base_url = "{api_base_url}"
api_token = "{OMNI_TOKEN}"
requests_per_2s = 100
marketing_source_field = "{SOURCE_FIELD}"
marketing_campaign_field = "{CAMPAIGN_FIELD}"
company_size_field = "{SIZE_FIELD}"
industry_field = "{INDUSTRY_FIELD}"
verify_emails = true
"#
    )
}

/// The Omni tenant's choice to keep its contacts' data as it comes (the
/// default masks it).
pub const OMNI_KEEPS_CONTACTS: &str = "[tenants.omni.pipedrive.pii]
contact_email = \"keep\"
contact_first_name = \"keep\"
contact_last_name = \"keep\"
contact_phone_number = \"keep\"
contact_position = \"keep\"
";

/// The sample account: pipeline "Sales" with stages Lead In (10 %) and
/// Contact Made (20 %); Jane Doe of Omni Health (small, health) with five
/// deals averaging 18,700 once deal 5001 is at 22,944 (the API still lists
/// it at 20,000: the event's own state must win).
pub fn omni_account() -> Account {
    let mut account = Account::default();
    account.users.insert(11, shapes::user(11, "Morgan Lee"));
    account.pipelines.insert(1, shapes::pipeline(1, "Sales"));
    account
        .stages
        .insert(1, shapes::stage(1, 1, 1, "Lead In", 10));
    account
        .stages
        .insert(2, shapes::stage(2, 1, 2, "Contact Made", 20));
    account.persons.insert(
        9001,
        shapes::person(&shapes::PersonShape {
            id: 9001,
            first_name: "Jane",
            last_name: "Doe",
            email: Some(JANE),
            phone: Some("+1 555 0100"),
            job_title: Some("Operations Director"),
            org_id: Some(3001),
            owner_id: 11,
        }),
    );
    account.organizations.insert(
        3001,
        shapes::organization(
            3001,
            "Omni Health",
            11,
            json!({SIZE_FIELD: 27, INDUSTRY_FIELD: 19}),
        ),
    );
    let deals = [
        (5001, 20_000.0),
        (5002, 17_000.0),
        (5003, 18_000.0),
        (5004, 17_556.0),
        (5005, 18_000.0),
    ];
    for (id, value) in deals {
        account
            .deals
            .insert(id, shapes::deal(&open_deal(id, 9001, value)));
    }
    account.deal_fields = vec![
        field_definition("title", "Title", "varchar", &[]),
        field_definition(
            "channel",
            "Source channel",
            "enum",
            &[(5, "Paid search"), (6, "Events")],
        ),
        field_definition(
            SOURCE_FIELD,
            "Marketing source",
            "enum",
            &[(41, "LinkedIn"), (42, "Google Ads")],
        ),
        field_definition(CAMPAIGN_FIELD, "Campaign", "varchar", &[]),
    ];
    account.organization_fields = vec![
        field_definition("name", "Name", "varchar", &[]),
        field_definition(
            SIZE_FIELD,
            "Company size",
            "enum",
            &[(26, "micro"), (27, "small"), (28, "large")],
        ),
        field_definition(
            INDUSTRY_FIELD,
            "Industry",
            "enum",
            &[(19, "health"), (20, "retail")],
        ),
    ];
    account
}

/// An open USD deal of `person` at Omni Health in stage Lead In.
pub fn open_deal(id: i64, person: i64, value: f64) -> shapes::DealShape<'static> {
    shapes::DealShape {
        id,
        person_id: Some(person),
        org_id: Some(3001),
        stage_id: 1,
        pipeline_id: 1,
        value,
        currency: "USD",
        status: "open",
        update_time: "2025-03-01T00:00:00Z",
    }
}

/// Jane's verdict, found on two pages.
pub fn jane_verdict() -> Value {
    shapes::email_verdict(
        JANE,
        "valid",
        "deliverable",
        &[
            ("omnihealth.example", "https://omnihealth.example/team"),
            (
                "healthnews.example",
                "https://healthnews.example/omni-expands",
            ),
        ],
    )
}

/// The state of deal 5001 in the sample change: moved from Lead In to Contact Made.
pub struct DealChange {
    pub deal_id: i64,
    pub person_id: i64,
    pub value: f64,
    pub stage_from: i64,
    pub stage_to: i64,
    pub status_from: &'static str,
    pub status_to: &'static str,
    pub timestamp_micro: i64,
}

pub fn omni_change() -> DealChange {
    DealChange {
        deal_id: 5001,
        person_id: 9001,
        value: 22_944.0,
        stage_from: 1,
        stage_to: 2,
        status_from: "open",
        status_to: "open",
        timestamp_micro: 1_741_624_805_412_000,
    }
}

/// The webhook v1 Pipedrive sends for the change.
pub fn deal_change_v1(change: &DealChange) -> Value {
    let deal = |stage: i64, status: &str| {
        json!({
            "id": change.deal_id, "creator_user_id": 11, "user_id": 11, "person_id": change.person_id, "org_id": 3001,
            "stage_id": stage, "title": "Omni Health - clinic rollout", "value": change.value, "currency": "USD",
            "add_time": "2025-02-03 10:15:00", "update_time": "2025-03-10 16:40:05", "stage_change_time": "2025-03-10 16:40:05",
            "active": true, "deleted": false, "status": status, "probability": null, "lost_reason": null, "visible_to": "3",
            "close_time": null, "pipeline_id": 1, "won_time": null, "lost_time": null, "expected_close_date": "2025-04-30",
            "owner_name": "Morgan Lee", "person_name": "Jane Doe", "org_name": "Omni Health", "channel": 5, "channel_id": null,
            "origin": "ManuallyCreated", SOURCE_FIELD: "41", CAMPAIGN_FIELD: "Q1 clinics"
        })
    };
    let seconds = change.timestamp_micro / 1_000_000;
    json!({
        "v": 1, "matches_filters": {"current": [], "previous": []},
        "meta": {
            "v": 1, "action": "updated", "object": "deal", "id": change.deal_id, "company_id": 777, "user_id": 11,
            "host": "omni.pipedrive.com", "timestamp": seconds, "timestamp_micro": change.timestamp_micro,
            "permitted_user_ids": [11, 12], "trans_pending": false, "is_bulk_update": false, "pipedrive_service_name": false,
            "matches_filters": {"current": [], "previous": []}, "webhook_id": "880001", "change_source": "app"
        },
        "retry": 0, "current": deal(change.stage_to, change.status_to),
        "previous": deal(change.stage_from, change.status_from), "event": "updated.deal"
    })
}

/// The webhook v2 Pipedrive sends for the same change.
pub fn deal_change_v2(change: &DealChange, event_id: &str) -> Value {
    let timestamp = chrono::DateTime::from_timestamp_micros(change.timestamp_micro)
        .expect("a valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    // v2 sends only what changed as `previous`.
    let mut previous = json!({});
    if change.stage_from != change.stage_to {
        previous["stage_id"] = json!(change.stage_from);
        previous["stage_change_time"] = json!("2025-02-03T10:15:00Z");
    }
    if change.status_from != change.status_to {
        previous["status"] = json!(change.status_from);
    }
    json!({
        "meta": {
            "action": "change", "entity": "deal", "entity_id": change.deal_id.to_string(), "id": event_id,
            "company_id": "777", "user_id": "11", "timestamp": timestamp, "version": "2.0", "webhook_id": "880001",
            "webhook_owner_id": "11", "change_source": "app", "attempt": 1, "is_bulk_edit": false,
            "host": "omni.pipedrive.com", "permitted_user_ids": ["11", "12"], "type": "general",
            "correlation_id": "0d3c1f7a-77e2-4a44-9d0e-5a1b2c3d4e5f"
        },
        "data": {
            "id": change.deal_id, "title": "Omni Health - clinic rollout", "creator_user_id": 11, "owner_id": 11,
            "value": change.value, "person_id": change.person_id, "org_id": 3001, "stage_id": change.stage_to, "pipeline_id": 1,
            "currency": "USD", "add_time": "2025-02-03T10:15:00Z", "update_time": "2025-03-10T16:40:05Z",
            "stage_change_time": "2025-03-10T16:40:05Z", "is_deleted": false, "status": change.status_to, "probability": null,
            "lost_reason": null, "visible_to": 3, "close_time": null, "won_time": null, "lost_time": null,
            "expected_close_date": "2025-04-30", "label_ids": [], "origin": "ManuallyCreated", "origin_id": null,
            "channel": 5, "channel_id": null,
            "custom_fields": {
                SOURCE_FIELD: {"type": "enum", "id": 41},
                CAMPAIGN_FIELD: {"type": "varchar", "value": "Q1 clinics"}
            }
        },
        "previous": previous
    })
}
