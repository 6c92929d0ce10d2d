//! Options for running the whole pipeline (`tributary_demo::Pipeline`) on a
//! test's own topics, groups and database, with the binaries of this build.

use std::path::Path;

use tributary_config::TopicSettings;
use tributary_demo::Options;

use crate::clickhouse::TestDatabase;
use crate::enricher::Topics;
use crate::{broker, process};

pub fn options(topics: &Topics, db: &TestDatabase, work_dir: &Path) -> Options {
    // Built from the current sources; the three live side by side.
    let collector = process::binary("tributary-collector", "collector");
    process::binary("tributary-enricher", "enricher");
    process::binary("tributary-activator", "activator");
    let mut options = Options::new(
        collector.parent().expect("target dir").to_path_buf(),
        work_dir.to_path_buf(),
        db.settings.clone(),
    );
    options.brokers = broker::shared_brokers();
    options.topics = TopicSettings {
        raw: topics.raw.clone(),
        enriched: topics.enriched.clone(),
        dead_letter: topics.dead_letter.clone(),
        retry: topics.retry.clone(),
    };
    options.templates_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/templates").into();
    options.group_prefix = crate::unique("pipeline");
    options
}

/// A pipeline of its own (topics, groups, database) for one source's
/// end-to-end test: the small simulated world's tenants, plus the tenant
/// sections in `extra_config`.
pub struct SourcePipeline {
    pub pipeline: tributary_demo::Pipeline,
    pub db: TestDatabase,
    _topics: Topics,
    _dir: tempfile::TempDir,
}

impl SourcePipeline {
    pub async fn start(database: &str, extra_config: String) -> Self {
        let world = tributary_world::World::generate(tributary_world::WorldConfig::small(7));
        let topics = Topics::create(&broker::shared_brokers(), 3).await;
        let db = TestDatabase::create(database).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = options(&topics, &db, dir.path());
        options.extra_config = extra_config;
        let pipeline = tributary_demo::Pipeline::start(&world, options)
            .await
            .expect("the pipeline starts");
        SourcePipeline {
            pipeline,
            db,
            _topics: topics,
            _dir: dir,
        }
    }

    /// Waits until `source` has exactly `events` distinct events in ClickHouse.
    pub async fn wait_for_events(&self, source: &str, events: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let rows = self
                .db
                .query(&format!(
                    "SELECT count() AS n FROM tributary.event_log FINAL WHERE source = '{source}'"
                ))
                .await;
            if rows[0]["n"].as_u64() == Some(events) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{source} events loaded: {rows:?}, {events} expected"
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// The deals of `source` as the dashboards resolve them (`columns` of
    /// `deals_resolved`), by id.
    pub async fn deals(
        &self,
        source: &str,
        columns: &str,
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.db
            .query(&format!(
                "SELECT id, {columns} FROM tributary.deals_resolved WHERE source = '{source}' ORDER BY id"
            ))
            .await
            .into_iter()
            .map(|row| (row["id"].as_str().unwrap_or_default().to_owned(), row))
            .collect()
    }

    /// The "Pipeline KPIs" panel of the shipped Sales operations dashboard
    /// for `tenant` over all time, as Grafana runs it: open pipeline value,
    /// weighted forecast, won and lost deals, win rate, velocity, home currency.
    pub async fn pipeline_kpis(&self, tenant: &str) -> serde_json::Value {
        let mut rows = self.panel(tenant, "Pipeline KPIs").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows.remove(0)
    }

    /// The rows of the shipped Sales operations dashboard's panel `title`
    /// for `tenant`, over all time, as Grafana runs it.
    pub async fn panel(&self, tenant: &str, title: &str) -> Vec<serde_json::Value> {
        use tributary_clickhouse::dashboard;
        let panel = dashboard::sales_operations_panels()
            .expect("the shipped dashboard parses")
            .into_iter()
            .find(|panel| panel.title == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        let scope = dashboard::Scope {
            from: 0,
            to: 4_102_444_800,
            tenant: tenant.to_owned(),
            pipeline: None,
        };
        let sql = dashboard::expand(&panel.sql, &scope).expect("expands");
        self.db.query(&sql).await
    }
}

/// A number of a ClickHouse row, whether the server wrote it as a JSON
/// number or (64-bit integers) as text.
pub fn number(row: &serde_json::Value, key: &str) -> f64 {
    match &row[key] {
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        serde_json::Value::String(s) => s.parse().unwrap_or(f64::NAN),
        other => panic!("{key} is not a number: {other} in {row}"),
    }
}
