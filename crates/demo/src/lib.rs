//! The whole pipeline on local services, fed by the simulated CRM world.
//!
//! [`Pipeline::start`] starts the fake Pipedrive and HubSpot APIs (and, for
//! a world with them, the Zoho CRM API, the Dataverse Web API and
//! Salesforce's REST and Pub/Sub APIs) and the
//! email verifier (in this process, answering from the world) and the
//! three services (as processes, sharing one configuration file).
//! [`Pipeline::send`] posts the world's webhooks to the collector over HTTP
//! at a chosen rate (each where and as its platform posts it: Pipedrive's
//! with Basic credentials to `/webhooks/pipedrive/{tenant}`, HubSpot's
//! signed batches to `/webhooks/hubspot`, Zoho's channel notifications to
//! `/webhooks/zoho/{tenant}`, Dynamics' contexts to
//! `/webhooks/dynamics/{tenant}?code=<key>`, Salesforce's Outbound Messages
//! to `/webhooks/salesforce/{tenant}?secret=<secret>`; Salesforce's change
//! events are published in order on the fake Pub/Sub API, from which the
//! collector pulls them), bringing the tenant's fake API
//! up to date with each change before its webhook goes out, and delivering
//! again what was not acknowledged, as the platforms do.
//! [`Pipeline::wait_until_loaded`], [`Pipeline::panels`], [`check_panels`]
//! and [`Pipeline::freshness`] then say what the dashboards show and whether
//! it is the world's truth. The demo, the end-to-end tests and the
//! end-to-end benchmark all drive this.

mod service;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use tokio::sync::Semaphore;
use tributary_clickhouse::ClickHouseSettings;
use tributary_clickhouse::dashboard::{self, PanelRows, Scope};
use tributary_config::TopicSettings;
use tributary_fake_apis::dynamics::{DataverseState, FakeDataverse};
use tributary_fake_apis::hubspot::RateLimits;
use tributary_fake_apis::salesforce_pubsub::{FakePubSub, RunningPubSub};
use tributary_fake_apis::zoho::{FakeZoho, ZohoState};
use tributary_fake_apis::{
    EmailVerifier, EmailVerifierState, FakeHubSpot, FakePipedrive, FakeSalesforce, HubSpotState,
    PipedriveState, Running, SalesforceState,
};
use tributary_report::{Comparison, number};
use tributary_world::{Apis, Delivery, Version, World, differences};

pub use service::{ServiceProcess, Stage};

/// The verifier's API key in the generated configuration.
const VERIFIER_KEY: &str = "demo-verifier-key";

/// Where and how to run the pipeline.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the `collector`, `enricher` and `activator` binaries are.
    pub bin_dir: PathBuf,
    /// Configuration and logs go here.
    pub work_dir: PathBuf,
    pub brokers: String,
    pub topics: TopicSettings,
    pub clickhouse: ClickHouseSettings,
    pub templates_dir: PathBuf,
    /// Consumer groups are `<prefix>-enricher` and `<prefix>-activator`.
    pub group_prefix: String,
    /// The collector's port; 0 picks a free one.
    pub collector_port: u16,
    pub log_level: String,
    /// The fake APIs fail every n-th request (a 503 or a 429).
    pub api_flaky_every: Option<u32>,
    /// Each tenant's Pipedrive API budget per rolling 2 s.
    pub api_requests_per_2s: u32,
    /// Each HubSpot tenant's API budget per rolling 10 s (the fake enforces
    /// it; the tenant's configuration says it).
    pub hubspot_requests_per_10s: u32,
    /// `activator.batch_max_age_ms`.
    pub batch_max_age_ms: u64,
    /// Appended to the generated configuration.
    pub extra_config: String,
}

impl Options {
    pub fn new(bin_dir: PathBuf, work_dir: PathBuf, clickhouse: ClickHouseSettings) -> Self {
        Options {
            bin_dir,
            work_dir,
            brokers: "127.0.0.1:9092".into(),
            topics: TopicSettings::default(),
            clickhouse,
            templates_dir: PathBuf::from("schemas/templates"),
            group_prefix: "tributary".into(),
            collector_port: 0,
            log_level: "info".into(),
            api_flaky_every: Some(250),
            // Pipedrive's largest plans allow 480 per 2 s (OAuth, Ultimate).
            api_requests_per_2s: 400,
            // A HubSpot private app on Professional or Enterprise.
            hubspot_requests_per_10s: RateLimits::PROFESSIONAL.per_10_seconds,
            batch_max_age_ms: 250,
            extra_config: String::new(),
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or(0)
}

pub struct Pipeline {
    pub options: Options,
    pub pipedrive: Running<PipedriveState>,
    pub hubspot: Running<HubSpotState>,
    /// The Zoho CRM API, when the world has Zoho orgs.
    pub zoho: Option<Running<ZohoState>>,
    /// The Dataverse Web API, when the world has Dynamics organizations.
    pub dynamics: Option<Running<DataverseState>>,
    /// Salesforce's REST and Pub/Sub APIs, when the world has Salesforce
    /// orgs.
    pub salesforce: Option<Running<SalesforceState>>,
    pub pubsub: Option<RunningPubSub>,
    pub verifier: Running<EmailVerifierState>,
    pub collector: ServiceProcess,
    pub enricher: ServiceProcess,
    pub activator: ServiceProcess,
    pub config_path: PathBuf,
    pub collector_url: String,
    http: reqwest::Client,
    clickhouse: tributary_clickhouse::clickhouse::Client,
    /// Changes the fake APIs already reflect (a prefix of `World::changes`).
    applied: std::sync::Mutex<usize>,
}

/// What sending the deliveries did.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    pub deliveries: usize,
    /// Answered `2xx`, or published (a change event).
    pub accepted: usize,
    /// Tries answered `503` or not answered at all (then delivered again).
    pub retried: usize,
    /// Deliveries the collector refused (`4xx`): status and body.
    pub refused: Vec<(u16, String)>,
    pub elapsed: Duration,
}

/// How long after its receipt an event was visible to a dashboard query.
#[derive(Debug, Clone, Copy, Default)]
pub struct Freshness {
    pub events: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the first receipt to the last load: the pipeline's throughput.
    pub events_per_second: f64,
}

impl Pipeline {
    /// Starts the fake APIs for `world` and the three services.
    pub async fn start(world: &World, options: Options) -> anyhow::Result<Pipeline> {
        std::fs::create_dir_all(&options.work_dir)
            .with_context(|| format!("creating {}", options.work_dir.display()))?;
        let mut pipedrive_state = PipedriveState::default();
        pipedrive_state.accounts = world.accounts();
        pipedrive_state.behaviour.flaky_every = options.api_flaky_every;
        let pipedrive = FakePipedrive::start(pipedrive_state).await?;
        let mut hubspot_state = HubSpotState::default();
        hubspot_state.portals = world.hubspot_portals();
        hubspot_state.limits.per_10_seconds = options.hubspot_requests_per_10s;
        hubspot_state.behaviour.flaky_every = options.api_flaky_every;
        let hubspot = FakeHubSpot::start(hubspot_state).await?;
        let zoho = match world.zoho_state() {
            Some(mut state) => {
                state.behaviour.flaky_every = options.api_flaky_every;
                Some(FakeZoho::start(state).await?)
            }
            None => None,
        };
        let dynamics = match world.dynamics_state() {
            Some(mut state) => {
                state.behaviour.flaky_every = options.api_flaky_every;
                Some(FakeDataverse::start(state).await?)
            }
            None => None,
        };
        let salesforce = match world.salesforce_state() {
            Some(mut state) => {
                state.behaviour.flaky_every = options.api_flaky_every;
                Some(FakeSalesforce::start(state).await?)
            }
            None => None,
        };
        let pubsub = match world.salesforce_pubsub_state() {
            Some(state) => Some(FakePubSub::start(state).await?),
            None => None,
        };
        let mut verifier_state = EmailVerifierState::with_key(VERIFIER_KEY);
        verifier_state.results = world.email_verdicts();
        verifier_state.behaviour.flaky_every = options.api_flaky_every;
        let verifier = EmailVerifier::start(verifier_state).await?;

        let collector_port = match options.collector_port {
            0 => free_port(),
            port => port,
        };
        let (enricher_port, activator_port) = (free_port(), free_port());
        let collector_url = format!("http://127.0.0.1:{collector_port}");
        let apis = Apis {
            pipedrive_url: pipedrive.base_url(),
            pipedrive_requests_per_2s: options.api_requests_per_2s,
            hubspot_url: hubspot.base_url(),
            hubspot_requests_per_10s: options.hubspot_requests_per_10s,
            // HubSpot calls the collector directly: its public URL is ours.
            public_url: collector_url.clone(),
            zoho_url: zoho.as_ref().map(Running::base_url).unwrap_or_default(),
            dynamics_url: dynamics.as_ref().map(Running::base_url).unwrap_or_default(),
            salesforce_url: salesforce
                .as_ref()
                .map(Running::base_url)
                .unwrap_or_default(),
            pubsub_url: pubsub.as_ref().map(RunningPubSub::url).unwrap_or_default(),
        };
        let config = config(
            world,
            &options,
            &apis,
            &verifier.base_url(),
            [collector_port, enricher_port, activator_port],
        );
        let config_path = options.work_dir.join("tributary.toml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let start = |stage, port| ServiceProcess::start(stage, &options, &config_path, port);
        let collector = start(Stage::Collector, collector_port)?;
        let enricher = start(Stage::Enricher, enricher_port)?;
        let activator = start(Stage::Activator, activator_port)?;
        let pipeline = Pipeline {
            collector_url,
            clickhouse: tributary_clickhouse::client(&options.clickhouse),
            options,
            pipedrive,
            hubspot,
            zoho,
            dynamics,
            salesforce,
            pubsub,
            verifier,
            collector,
            enricher,
            activator,
            config_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            applied: std::sync::Mutex::new(0),
        };
        for stage in Stage::ALL {
            pipeline.wait_ready(stage, Duration::from_secs(60)).await?;
        }
        Ok(pipeline)
    }

    /// Waits until a consuming stage's group has given it partitions (the
    /// local broker takes a few seconds to form a new group), so what is sent
    /// next is not timed while the group forms.
    pub async fn wait_assigned(&self, stage: Stage, timeout: Duration) -> anyhow::Result<()> {
        let gauge = match stage {
            Stage::Collector => return Ok(()),
            Stage::Enricher => "tributary_enricher_assigned_partitions",
            Stage::Activator => "tributary_activator_assigned_partitions",
        };
        let deadline = Instant::now() + timeout;
        while self.metric(stage, gauge).await.unwrap_or_default() < 1.0 {
            self.service(stage).check_alive()?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "the {} was given no partitions within {timeout:?}; the end of its log:\n{}",
                stage.name(),
                self.service(stage).log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    pub fn service(&self, stage: Stage) -> &ServiceProcess {
        match stage {
            Stage::Collector => &self.collector,
            Stage::Enricher => &self.enricher,
            Stage::Activator => &self.activator,
        }
    }

    /// Waits until the service answers `/readyz` with `200` and, for a
    /// consuming stage, holds partitions.
    pub async fn wait_ready(&self, stage: Stage, timeout: Duration) -> anyhow::Result<()> {
        let service = self.service(stage);
        let url = format!("{}/readyz", service.base_url());
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(response) = self.http.get(&url).send().await
                && response.status().is_success()
            {
                return self
                    .wait_assigned(stage, deadline.saturating_duration_since(Instant::now()))
                    .await;
            }
            service.check_alive()?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "the {} did not become ready within {timeout:?}; the end of its log:\n{}",
                stage.name(),
                service.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs a service, then starts it again and waits (up to `timeout`)
    /// until it is ready.
    pub async fn kill_and_restart(&self, stage: Stage, timeout: Duration) -> anyhow::Result<()> {
        self.service(stage).kill();
        self.service(stage).restart()?;
        self.wait_ready(stage, timeout).await
    }

    /// Brings the fake APIs up to date with every change up to `change`
    /// (each change in its tenant's Pipedrive account, HubSpot portal,
    /// Dataverse organization or Salesforce org).
    fn apply_changes_through(&self, world: &World, change: usize) {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if *applied > change {
            return;
        }
        let mut pipedrive = self.pipedrive.state();
        let mut hubspot = self.hubspot.state();
        let mut dataverse = self.dynamics.as_ref().map(Running::state);
        let mut salesforce = self.salesforce.as_ref().map(Running::state);
        for c in &world.changes[*applied..=change] {
            world.apply_to_fakes(
                &mut pipedrive.accounts,
                &mut hubspot.portals,
                dataverse.as_deref_mut(),
                salesforce.as_deref_mut(),
                c,
            );
        }
        *applied = change + 1;
    }

    /// Posts `deliveries` in order to the collector, at `rate` per second
    /// (`None`: as fast as `concurrency` requests in flight allow). A try
    /// answered `503` or not at all is delivered again after a pause, as
    /// the platforms retry; `progress` is called with the number done.
    pub async fn send(
        self: &Arc<Self>,
        world: &Arc<World>,
        deliveries: Arc<Vec<Delivery>>,
        rate: Option<f64>,
        concurrency: usize,
        progress: impl Fn(usize) + Send + Sync + 'static,
    ) -> anyhow::Result<SendReport> {
        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let done = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(progress);
        let mut tasks = Vec::with_capacity(deliveries.len());
        let mut report_published = 0;
        for index in 0..deliveries.len() {
            if let Some(rate) = rate {
                let due = started + Duration::from_secs_f64(index as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            self.apply_changes_through(world, deliveries[index].change);
            // A change event is published, in commit order, for the
            // collector to pull.
            if deliveries[index].version == Version::SalesforceChangeEvent {
                self.publish(&deliveries[index])?;
                report_published += 1;
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                continue;
            }
            let permit = permits.clone().acquire_owned().await?;
            let (pipeline, world, deliveries) = (self.clone(), world.clone(), deliveries.clone());
            let (done, progress) = (done.clone(), progress.clone());
            tasks.push(tokio::spawn(async move {
                let outcome = pipeline.deliver(&world, &deliveries[index]).await;
                drop(permit);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                outcome
            }));
        }
        let mut report = SendReport {
            deliveries: deliveries.len(),
            accepted: report_published,
            ..Default::default()
        };
        for task in tasks {
            let (status, body, retried) = task.await??;
            report.retried += retried;
            // 202, or Salesforce's 200 with its SOAP acknowledgement.
            if (200..300).contains(&status) {
                report.accepted += 1;
            } else {
                report.refused.push((status, body));
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Publishes a change event on the fake Pub/Sub API's channel.
    fn publish(&self, delivery: &Delivery) -> anyhow::Result<()> {
        let pubsub = self
            .pubsub
            .as_ref()
            .context("a Salesforce change event without the fake Pub/Sub API")?;
        pubsub.publish(
            tributary_world::salesforce::CHANNEL,
            tributary_world::salesforce::SCHEMA_ID,
            delivery.body.clone(),
        );
        Ok(())
    }

    /// One delivery, tried until the collector answers anything but `503`
    /// (for up to two minutes): its status, body and how many tries failed.
    async fn deliver(
        &self,
        world: &World,
        delivery: &Delivery,
    ) -> anyhow::Result<(u16, String, usize)> {
        let url = format!("{}{}", self.collector_url, world.delivery_path(delivery));
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut failed = 0;
        loop {
            // Signed afresh on each try, as HubSpot stamps each request.
            let now_ms = chrono::Utc::now().timestamp_millis();
            let mut request = self.http.post(&url).body(delivery.body.clone());
            for (name, value) in world.delivery_headers(delivery, &url, now_ms) {
                request = request.header(name, value);
            }
            let answer = request.send().await;
            let pause = match answer {
                Ok(response) if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    return Ok((status, body, failed));
                }
                Ok(response) => response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .map_or(Duration::from_secs(1), Duration::from_secs),
                Err(_) => Duration::from_millis(500),
            };
            failed += 1;
            anyhow::ensure!(
                Instant::now() < deadline,
                "the collector did not take a delivery within two minutes"
            );
            tokio::time::sleep(pause.min(Duration::from_secs(3))).await;
        }
    }

    async fn query(&self, sql: &str) -> anyhow::Result<Vec<Value>> {
        let settings = &self.options.clickhouse;
        let sql = tributary_clickhouse::rename_databases(
            sql,
            &settings.database,
            &settings.pii_database(),
        );
        Ok(dashboard::query_rows(&self.clickhouse, &sql).await?)
    }

    /// Distinct events loaded (in the load ledger, so every view has them).
    pub async fn loaded_events(&self) -> anyhow::Result<u64> {
        let rows = self
            .query("SELECT uniqExact(event_id) AS n FROM tributary.load_ledger")
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r["n"].as_u64())
            .unwrap_or_default())
    }

    /// Waits until `expected` distinct events are loaded; `progress` gets the
    /// count now and then. Fails after `timeout` without progress.
    pub async fn wait_until_loaded(
        &self,
        expected: u64,
        timeout: Duration,
        progress: impl Fn(u64),
    ) -> anyhow::Result<()> {
        let mut last = (0, Instant::now());
        loop {
            let loaded = self.loaded_events().await?;
            progress(loaded);
            if loaded >= expected {
                return Ok(());
            }
            if loaded != last.0 {
                last = (loaded, Instant::now());
            }
            for stage in Stage::ALL {
                self.service(stage).check_alive()?;
            }
            anyhow::ensure!(
                last.1.elapsed() < timeout,
                "only {loaded} of {expected} events loaded, none for {timeout:?}; the end of the logs:\n{}",
                Stage::ALL
                    .iter()
                    .map(|s| format!("{}:\n{}", s.name(), self.service(*s).log_tail(15)))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every panel of the dashboard for `scope`, as Grafana would show it.
    pub async fn panels(&self, scope: &Scope) -> anyhow::Result<Vec<PanelRows>> {
        Ok(dashboard::run_panels(&self.clickhouse, &self.options.clickhouse, scope).await?)
    }

    /// Events by enrichment status (`complete`, `partial`), latest copies.
    pub async fn enrichment_statuses(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let rows = self
            .query("SELECT enrichment_status AS status, count() AS n FROM tributary.event_log FINAL GROUP BY status")
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r["status"].as_str().unwrap_or_default().to_owned(),
                    r["n"].as_u64().unwrap_or_default(),
                )
            })
            .collect())
    }

    /// A service's Prometheus counter or gauge, summed over its labels.
    pub async fn metric(&self, stage: Stage, name: &str) -> anyhow::Result<f64> {
        let url = format!("{}/metrics", self.service(stage).base_url());
        let text = self.http.get(&url).send().await?.text().await?;
        Ok(text
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Receipt by the collector to insertion by the activator, over every
    /// event loaded (its first copy) and received at least `skip` after the
    /// first one. The activator stamps an event just before its batch's
    /// insert, which the dashboard can read once done.
    pub async fn freshness(&self, skip: Duration) -> anyhow::Result<Freshness> {
        self.freshness_where(&format!(
            "received_at_micro >= (SELECT min(received_at_micro) FROM tributary.event_log) + {}",
            skip.as_micros()
        ))
        .await
    }

    /// [`Pipeline::freshness`] of the events received in `from..to` (µs).
    pub async fn freshness_between(&self, from: i64, to: i64) -> anyhow::Result<Freshness> {
        self.freshness_where(&format!(
            "received_at_micro >= {from} AND received_at_micro < {to}"
        ))
        .await
    }

    async fn freshness_where(&self, condition: &str) -> anyhow::Result<Freshness> {
        let sql = format!(
            "SELECT count() AS n, quantilesExact(0.5, 0.99)(lag) AS q, max(lag) AS worst, \
             (max(loaded) - min(received)) / 1e6 AS span \
             FROM (SELECT event_id, min(loaded_at_micro) AS loaded, min(received_at_micro) AS received, \
             loaded - received AS lag \
             FROM tributary.event_log WHERE {condition} GROUP BY event_id)"
        );
        let rows = self.query(&sql).await?;
        let row = rows.first().cloned().unwrap_or_default();
        let ms = |v: &Value| v.as_f64().unwrap_or_default() / 1_000.0;
        let events = row["n"].as_u64().unwrap_or_default();
        let span = row["span"].as_f64().unwrap_or_default();
        Ok(Freshness {
            events,
            p50_ms: ms(&row["q"][0]),
            p99_ms: ms(&row["q"][1]),
            max_ms: ms(&row["worst"]),
            events_per_second: if span > 0.0 {
                events as f64 / span
            } else {
                0.0
            },
        })
    }

    /// Stops the services (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&self) {
        for stage in Stage::ALL {
            self.service(stage).terminate(Duration::from_secs(10));
        }
    }
}

/// The configuration every service reads.
fn config(
    world: &World,
    options: &Options,
    apis: &Apis,
    verifier_url: &str,
    [collector, enricher, activator]: [u16; 3],
) -> String {
    let topics = &options.topics;
    let clickhouse = &options.clickhouse;
    let prefix = &options.group_prefix;
    let mut config = format!(
        r#"# Written by the demo harness: the local services, the fake APIs, and
# the simulated world's tenants.
[kafka]
brokers = "{brokers}"
# The local broker decompresses every batch it stores: no compression locally.
compression = "none"

[topics]
raw = "{raw}"
enriched = "{enriched}"
dead_letter = "{dead_letter}"
retry = "{retry}"

[telemetry]
log_level = "{log_level}"

[collector]
listen = "127.0.0.1:{collector}"
checkpoint_dir = "{checkpoints}"

[enricher]
listen = "127.0.0.1:{enricher}"
group_id = "{prefix}-enricher"
instance_id = "{prefix}-enricher-1"

[enrichment.email_validation]
url = "{verifier_url}/v2/email-verifier"
api_key = "{VERIFIER_KEY}"
requests_per_second = 200

[clickhouse]
url = "{url}"
user = "{user}"
database = "{database}"
validation = {validation}

[activator]
listen = "127.0.0.1:{activator}"
group_id = "{prefix}-activator"
instance_id = "{prefix}-activator-1"
templates_dir = "{templates}"
batch_max_age_ms = {batch_age}

"#,
        brokers = options.brokers,
        raw = topics.raw,
        enriched = topics.enriched,
        dead_letter = topics.dead_letter,
        retry = topics.retry,
        log_level = options.log_level,
        url = clickhouse.url,
        user = clickhouse.user,
        database = clickhouse.database,
        validation = clickhouse.validation,
        templates = options.templates_dir.display(),
        batch_age = options.batch_max_age_ms,
        checkpoints = options.work_dir.join("checkpoints").display(),
    );
    for tenant in 0..world.tenants.len() {
        config.push_str(&world.tenant_config(tenant, apis));
        config.push('\n');
    }
    config.push_str(&world.tenants_toml());
    config.push('\n');
    config.push_str(&options.extra_config);
    config
}

/// One panel's rows against the world's truth.
#[derive(Debug, Clone)]
pub struct PanelCheck {
    pub title: String,
    /// Every difference (rows missing or extra, cells that differ); empty
    /// when the panel shows exactly the truth.
    pub problems: Vec<String>,
    /// Per numeric column: the panel's total next to the truth's, for people.
    pub totals: Vec<Comparison>,
}

/// Each panel against what the world says it must show for `scope`.
pub fn check_panels(world: &World, scope: &Scope, panels: &[PanelRows]) -> Vec<PanelCheck> {
    let expected = world.expected_panels(scope);
    panels
        .iter()
        .map(|panel| {
            let title = panel.panel.title.clone();
            let Some(want) = expected.get(title.as_str()) else {
                return PanelCheck {
                    title,
                    problems: vec!["the world has no answer for this panel".into()],
                    totals: Vec::new(),
                };
            };
            let mut totals = vec![Comparison::new(
                &title,
                "rows",
                Value::from(panel.rows.len()),
                Value::from(want.len()),
            )];
            // Totals of what adds up (counts and money), for a person to read;
            // the cell-by-cell check below covers every column.
            let additive = |column: &str| {
                want.len() == 1
                    || ![
                        "_id",
                        "order",
                        "percent",
                        "probability",
                        "velocity_days",
                        "average_value",
                    ]
                    .iter()
                    .any(|suffix| column.ends_with(suffix))
            };
            let columns: Vec<&String> = want
                .first()
                .map(|row| {
                    row.iter()
                        .filter(|(k, v)| v.is_number() && additive(k))
                        .map(|(k, _)| k)
                        .collect()
                })
                .unwrap_or_default();
            for column in columns {
                let sum = |rows: &mut dyn Iterator<Item = Option<f64>>| rows.flatten().sum::<f64>();
                let got = sum(&mut panel.rows.iter().map(|r| number(&r[column.as_str()])));
                let truth = sum(&mut want.iter().map(|r| number(&r[column.as_str()])));
                let metric = if want.len() == 1 {
                    column.clone()
                } else {
                    format!("total {column}")
                };
                totals.push(Comparison::new(
                    &title,
                    &metric,
                    Value::from(got),
                    Value::from(truth),
                ));
            }
            PanelCheck {
                problems: differences(&panel.rows, want),
                title,
                totals,
            }
        })
        .collect()
}

/// The scope that covers a whole world, for one tenant.
pub fn whole_world(world: &World, tenant: &str) -> Scope {
    let (first, last) = world.span();
    Scope {
        from: first - 86_400,
        to: last + 86_400,
        tenant: tenant.to_owned(),
        pipeline: None,
    }
}
