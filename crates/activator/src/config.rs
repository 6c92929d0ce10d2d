//! The activator's configuration: the shared sections plus `[clickhouse]` and `[activator]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tributary_clickhouse::ClickHouseSettings;
use tributary_config::{
    CurrencySettings, KafkaSettings, TelemetrySettings, Tenants, TopicSettings, default_instance_id,
};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActivatorConfig {
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub topics: TopicSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub clickhouse: ClickHouseSettings,
    #[serde(default)]
    pub activator: ActivatorSettings,
    /// Read for each tenant's home currency and rates.
    #[serde(default)]
    pub tenants: Tenants,
}

impl ActivatorConfig {
    /// Every tenant's currency settings; an error names the invalid key.
    pub fn currencies(&self) -> Result<Vec<(String, CurrencySettings)>, String> {
        let mut out = Vec::new();
        for tenant in self.tenants.names() {
            if let Some(settings) = self.tenants.currency(tenant)? {
                out.push((tenant.to_owned(), settings));
            }
        }
        Ok(out)
    }
}

/// `[activator]`: the service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivatorSettings {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    /// Consumer group on the enriched topic.
    pub group_id: String,
    /// Static group membership id of this instance; default: the host name.
    /// Two instances running at the same time need different ids; empty
    /// turns static membership off.
    pub instance_id: String,
    /// Folder of dashboard templates, `<template>/<version>.json`.
    pub templates_dir: PathBuf,
    /// A batch is loaded once it holds this many events...
    pub batch_max_rows: usize,
    /// ...or once its oldest event has waited this long, in milliseconds.
    pub batch_max_age_ms: u64,
    /// First delay before retrying a failed load; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// How often the daily pipeline snapshot is refreshed, in seconds.
    pub snapshot_interval_seconds: u64,
    /// Months of data kept (whole calendar months before the current one);
    /// older partitions are dropped and older events refused. 0 keeps all.
    pub retention_months: u32,
}

impl Default for ActivatorSettings {
    fn default() -> Self {
        ActivatorSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            group_id: "tributary-activator".into(),
            instance_id: default_instance_id("activator"),
            templates_dir: PathBuf::from("schemas/templates"),
            batch_max_rows: 50_000,
            batch_max_age_ms: 1_000,
            retry_initial_ms: 500,
            retry_max_ms: 30_000,
            snapshot_interval_seconds: 60,
            retention_months: 0,
        }
    }
}
