use serde::{Deserialize, Serialize};
use tributary_config::Secret;

/// `[clickhouse]`: where events and metrics are stored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseSettings {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    pub user: String,
    #[serde(skip_serializing)]
    pub password: Option<Secret>,
    /// The pipeline's database. Contact PII goes to `<database>_pii`, which
    /// the dashboard user cannot read.
    pub database: String,
    /// The `clickhouse` crate's row-type checks against the server's schema.
    /// They use formats and settings ClickHouse 18.16 lacks: keep it on for a
    /// modern server, turn it off for 18.16 (the local one). The activator
    /// turns it off, with a warning, on a server that cannot do them.
    pub validation: bool,
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        ClickHouseSettings {
            url: "http://127.0.0.1:8123".into(),
            user: "default".into(),
            password: None,
            database: "tributary".into(),
            validation: true,
        }
    }
}

impl ClickHouseSettings {
    /// Where contact PII lives.
    pub fn pii_database(&self) -> String {
        format!("{}_pii", self.database)
    }
}
