//! Helpers for the activator's end-to-end tests: the process, and enriched
//! events as the enricher writes them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::enricher::Topics;
use crate::process::Service;

/// An activator process; `extra` is appended to its configuration.
pub struct ActivatorProcess {
    pub service: Service,
    pub base: String,
}

impl ActivatorProcess {
    pub async fn start(
        brokers: &str,
        topics: &Topics,
        clickhouse: &tributary_clickhouse::ClickHouseSettings,
        group: &str,
        extra: &str,
    ) -> Self {
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

[telemetry]
log_level = "info,tributary_activator=debug"

[clickhouse]
url = "{url}"
database = "{database}"
validation = false

[activator]
listen = "127.0.0.1:{port}"
group_id = "{group}"
instance_id = "{group}-1"
templates_dir = "{templates}"
batch_max_age_ms = 300
retry_initial_ms = 200
retry_max_ms = 1000
{extra}
"#,
            raw = topics.raw,
            enriched = topics.enriched,
            dead_letter = topics.dead_letter,
            url = clickhouse.url,
            database = clickhouse.database,
            templates = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/templates"),
        );
        let service = Service::start("tributary-activator", "activator", &config);
        let base = format!("http://127.0.0.1:{port}");
        crate::process::wait_for_http_ok(
            &format!("{base}/healthz"),
            Duration::from_secs(30),
            || service.log(),
        )
        .await;
        ActivatorProcess { service, base }
    }
}

/// One deal change as the enricher emits it.
#[derive(Debug, Clone)]
pub struct DealChange {
    pub tenant: &'static str,
    pub deal_id: i64,
    pub at_micro: i64,
    pub stage: (i64, &'static str, i64, f64),
    pub previous_stage: Option<(i64, &'static str)>,
    pub status: &'static str,
    pub previous_status: Option<&'static str>,
    pub value: f64,
    pub source: &'static str,
}

/// Stages of the test pipeline: (id, name, order, probability).
pub const STAGES: [(i64, &str, i64, f64); 4] = [
    (1, "Lead In", 1, 10.0),
    (2, "Contact Made", 2, 20.0),
    (3, "Proposal Made", 3, 60.0),
    (4, "Negotiations Started", 4, 80.0),
];

impl DealChange {
    pub fn event_id(&self) -> String {
        format!("{}-deal-{}-{}", self.tenant, self.deal_id, self.at_micro)
    }

    pub fn to_json(&self) -> Value {
        let (stage_id, stage, order, probability) = self.stage;
        let mut event = json!({
            "pipeline_event_id": self.event_id(), "pipeline_tenant": self.tenant,
            "pipeline_source": "pipedrive", "pipeline_payload_version": "1",
            "pipeline_received_at_micro": self.at_micro + 1_000,
            "pipeline_enriched_at_micro": self.at_micro + 2_000,
            "pipeline_warnings": [], "pipeline_enrichment_status": "complete",
            "pipeline_enrichment_missing": [],
            "event_action": if self.previous_stage.is_none() && self.previous_status.is_none() { "added" } else { "updated" },
            "event_object": "deal", "event_id": self.deal_id,
            "event_timestamp": self.at_micro / 1_000_000, "event_timestamp_micro": self.at_micro,
            "event_change_source": "app", "event_is_bulk_update": false,
            "event_permitted_user_ids": [11], "event_pipedrive_service_name": false,
            "event_trans_pending": false, "event_user_id": 11, "event_webhook_id": "880001",
            "event_company_id": "4242",
            "deal_id": self.deal_id, "deal_title": format!("Deal {}", self.deal_id),
            "deal_stage": stage, "deal_stage_id": stage_id, "deal_stage_order_nr": order,
            "deal_stage_probability": probability, "deal_pipeline": "Sales", "deal_pipeline_id": 1,
            "deal_value": self.value, "deal_currency": "USD", "deal_status": self.status,
            "deal_probability": null, "deal_owner_id": 11, "deal_owner_name": "Morgan Lee",
            "deal_expected_close_date": "2025-04-30", "deal_add_time": "2025-02-03T10:15:00Z",
            "deal_update_time": "2025-03-10T16:40:05Z",
            "deal_won_time": if self.status == "won" { json!("2025-03-10T16:40:05Z") } else { Value::Null },
            "deal_lost_time": null, "deal_lost_reason": null,
            "deal_stage_change_time": "2025-03-10T16:40:05Z",
            "marketing_source": self.source, "marketing_campaign": "Q1",
            "contact_id": 9001, "contact_email": "jane@omnihealth.example",
            "contact_first_name": "Jane", "contact_last_name": "Doe",
            "organization_id": 3001, "organization_name": "Omni Health",
            "metrics_total_deals": 5, "metrics_average_deal_value": 18700.0,
            "email_validation_status": "valid", "email_validation_score": "deliverable",
            "email_validation_sources_1_domain": "omnihealth.example",
            "email_validation_sources_1_still_on_page": true
        });
        if let Some((id, name)) = self.previous_stage {
            event["deal_previous_stage_id"] = json!(id);
            event["deal_previous_stage"] = json!(name);
        }
        if let Some(status) = self.previous_status {
            event["deal_previous_status"] = json!(status);
        }
        event
    }
}

/// A deterministic history: `deals` deals of `tenant`, each added in Lead
/// In, moved forward a few stages, some won (and one of those reopened and
/// won again), some lost.
pub fn deal_history(tenant: &'static str, deals: i64, start_micro: i64) -> Vec<DealChange> {
    let sources = ["LinkedIn", "Referral", "Webinar"];
    let mut changes = Vec::new();
    for deal_id in 1..=deals {
        let mut at = start_micro + deal_id * 1_000_000;
        let value = 1_000.0 + (deal_id * 137 % 50) as f64 * 100.0 + 0.5;
        let source = sources[(deal_id % 3) as usize];
        let base = DealChange {
            tenant,
            deal_id,
            at_micro: at,
            stage: STAGES[0],
            previous_stage: None,
            status: "open",
            previous_status: None,
            value,
            source,
        };
        changes.push(base.clone());
        let moves = deal_id % 4;
        for step in 1..=moves as usize {
            at += 3_600_000_000;
            changes.push(DealChange {
                at_micro: at,
                stage: STAGES[step],
                previous_stage: Some((STAGES[step - 1].0, STAGES[step - 1].1)),
                ..base.clone()
            });
        }
        let stage = STAGES[moves as usize];
        let close = |at: i64, status: &'static str, previous: &'static str| DealChange {
            at_micro: at,
            stage,
            previous_stage: None,
            status,
            previous_status: Some(previous),
            ..base.clone()
        };
        match deal_id % 5 {
            0 => {
                changes.push(close(at + 60_000_000, "won", "open"));
                if deal_id % 10 == 0 {
                    changes.push(close(at + 120_000_000, "open", "won"));
                    changes.push(close(at + 180_000_000, "won", "open"));
                }
            }
            1 => changes.push(close(at + 60_000_000, "lost", "open")),
            _ => {}
        }
    }
    changes
}

/// An activator configuration for in-process use against `clickhouse`, with
/// the repository's templates and the tenants' settings in `tenants_toml`
/// (`[tenants.<t>]` sections: home currencies and rates).
pub fn in_process_config(
    clickhouse: &tributary_clickhouse::ClickHouseSettings,
    tenants_toml: &str,
) -> tributary_activator::ActivatorConfig {
    let mut config: tributary_activator::ActivatorConfig =
        tributary_config::Loader::from_toml_str(tenants_toml)
            .extract()
            .expect("the tenants' settings parse");
    config.clickhouse = clickhouse.clone();
    config.activator.templates_dir =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/templates").into();
    config
}

/// Loads enriched events into `clickhouse` through the activator's own load
/// path (validation, mapping, de-duplication against what is stored,
/// inserts feeding the views) in batches of `batch_size`, without a broker,
/// after writing the currency rates of `tenants_toml`. Returns each batch's
/// inserts as made; panics on a dead letter.
pub async fn load_in_process(
    clickhouse: &tributary_clickhouse::ClickHouseSettings,
    tenants_toml: &str,
    payloads: &[Vec<u8>],
    batch_size: usize,
) -> Vec<Vec<tributary_activator::load::Inserted>> {
    use tributary_activator::{Activator, Incoming, Verdict, batch::Batch};
    let activator =
        Activator::new(in_process_config(clickhouse, tenants_toml)).expect("an activator");
    let target = activator
        .connect()
        .await
        .expect("ClickHouse answers and migrates");
    let mut loads = Vec::new();
    for (i, chunk) in payloads.chunks(batch_size.max(1)).enumerate() {
        let mut batch = Batch::default();
        for (j, payload) in chunk.iter().enumerate() {
            let incoming = Incoming {
                topic: "in-process",
                partition: 0,
                offset: (i * batch_size + j) as i64,
                key: String::new(),
                payload,
            };
            batch.read(0, incoming.offset);
            match activator.judge(&incoming) {
                Verdict::Accepted(event) => batch.accept(*event),
                Verdict::DeadLetter(letter) => panic!(
                    "dead letter for {}: {:?}",
                    String::from_utf8_lossy(payload),
                    letter.errors
                ),
            }
        }
        let inserted = activator
            .load_batch(&target, &batch)
            .await
            .unwrap_or_else(|(what, e)| panic!("loading failed at {what}: {e:#}"));
        loads.push(inserted);
    }
    loads
}
