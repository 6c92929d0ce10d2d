//! ClickHouse: the tables' column layouts, the de-duplication look-up,
//! inserts, the daily pipeline snapshot and retention.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use chrono::{Datelike, NaiveDate};
use tributary_clickhouse::{ClickHouseSettings, migrations};

use tributary_config::CurrencySettings;
use tributary_model::{CurrentRows, Key, Table};

/// What a batch needs to know of an event already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Partial,
    Complete,
}

/// Identifies a stored event for the de-duplication look-up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    pub date: NaiveDate,
    pub tenant: String,
    pub event_id: String,
}

/// Where a batch's rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A canonical model table.
    Record(Table),
    EventLog,
    Ledger,
}

impl Target {
    pub fn table(self) -> &'static str {
        match self {
            Target::Record(table) => table.name(),
            Target::EventLog => "event_log",
            Target::Ledger => "load_ledger",
        }
    }

    pub fn is_pii(self) -> bool {
        matches!(self, Target::Record(table) if table.is_pii())
    }

    /// `database.table` with the databases' default names (`tributary`,
    /// `tributary_pii`), as the migrations spell them.
    pub fn default_name(self) -> String {
        let database = if self.is_pii() {
            "tributary_pii"
        } else {
            "tributary"
        };
        format!("{database}.{}", self.table())
    }
}

/// One insert of a load: where, and the `JSONEachRow` lines.
#[derive(Debug, Clone)]
pub struct Inserted {
    pub target: Target,
    pub rows: Bytes,
}

/// Tables partitioned by month, for retention.
const MONTHLY_TABLES: &[&str] = &[
    "event_log",
    "load_ledger",
    "deal_stage_transitions",
    "pipeline_snapshots",
];

/// Ids per look-up query: keeps each well under ClickHouse's default
/// `max_query_size` (256 KiB).
const LOOKUP_CHUNK: usize = 2_000;

/// Bytes of record keys per refresh query, for the same reason.
const REFRESH_LIST_BYTES: usize = 100_000;

pub struct ClickHouse {
    client: clickhouse::Client,
    pub settings: ClickHouseSettings,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct StoredRow {
    event_id: String,
    complete: u8,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct PartitionRow {
    table: String,
    partition: String,
}

impl ClickHouse {
    /// Applies pending migrations. A server that lacks what `validation`
    /// needs (ClickHouse 18.16 has no `RowBinaryWithNamesAndTypes`) is used
    /// without it, with a warning naming the setting.
    pub async fn connect(settings: &ClickHouseSettings) -> anyhow::Result<ClickHouse> {
        let mut settings = settings.clone();
        let mut client = tributary_clickhouse::client(&settings);
        // An unreachable server is an error here (retried by the caller).
        if settings.validation
            && !tributary_clickhouse::validation_supported(&client)
                .await
                .map_err(|err| anyhow::Error::new(err).context("asking ClickHouse for one row"))?
        {
            tracing::warn!(
                url = %settings.url,
                "this ClickHouse server cannot check row types (no RowBinaryWithNamesAndTypes): \
                 loading without [clickhouse] validation; set validation = false to say so"
            );
            settings.validation = false;
            client = tributary_clickhouse::client(&settings);
        }
        migrations::apply_migrations(&client, &settings).await?;
        Ok(ClickHouse { client, settings })
    }

    pub async fn ping(&self) -> Result<(), clickhouse::error::Error> {
        self.client.query("SELECT 1").execute().await
    }

    /// Which of `keys` the ledger lists as loaded, and how complete.
    pub async fn stored(
        &self,
        keys: &[EventKey],
    ) -> Result<HashMap<String, Stored>, clickhouse::error::Error> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let dates: BTreeSet<String> =
                chunk.iter().map(|k| quote(&k.date.to_string())).collect();
            let tenants: BTreeSet<String> = chunk.iter().map(|k| quote(&k.tenant)).collect();
            let ids: Vec<String> = chunk.iter().map(|k| quote(&k.event_id)).collect();
            // event_date and tenant lead the ledger's key, so this reads
            // only the days and tenants of the batch.
            let sql = format!(
                "SELECT event_id, max(complete) AS complete \
                 FROM {db}.load_ledger WHERE event_date IN ({dates}) AND tenant IN ({tenants}) \
                 AND event_id IN ({ids}) GROUP BY event_id",
                db = self.settings.database,
                dates = join(dates),
                tenants = join(tenants),
                ids = ids.join(","),
            );
            let rows: Vec<StoredRow> = self.client.query(&sql).fetch_all().await?;
            for row in rows {
                let stored = if row.complete == 1 {
                    Stored::Complete
                } else {
                    Stored::Partial
                };
                found.insert(row.event_id, stored);
            }
        }
        Ok(found)
    }

    /// Inserts `JSONEachRow` lines into `target`.
    pub async fn insert(
        &self,
        target: Target,
        rows: Bytes,
    ) -> Result<(), clickhouse::error::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let database = if target.is_pii() {
            self.settings.pii_database()
        } else {
            self.settings.database.clone()
        };
        let table = target.table();
        let mut insert = self
            .client
            .insert_formatted_with(format!("INSERT INTO {database}.{table} FORMAT JSONEachRow"));
        insert.send(rows).await?;
        insert.end().await
    }

    /// Inserts the resolved rows of `keys` into the entity's current table.
    pub async fn refresh_current(
        &self,
        current: CurrentRows,
        keys: &BTreeSet<Key>,
    ) -> Result<(), clickhouse::error::Error> {
        for sql in refresh_statements(&self.settings.database, current, keys) {
            // ClickHouse 18.16 moves a filter into a view only when asked.
            self.client
                .query(&sql)
                .with_setting("enable_optimize_predicate_expression", "1")
                .execute()
                .await?;
        }
        Ok(())
    }

    /// Writes the configured home currencies and rates (`origin =
    /// 'configuration'`), and a zero rate (no rate) for each configured rate
    /// no longer in the configuration. Rates an operator loaded stay.
    pub async fn write_currency_rates(
        &self,
        currencies: &[(String, CurrencySettings)],
    ) -> Result<(), clickhouse::error::Error> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Configured {
            tenant: String,
            currency: String,
            home_currency: String,
        }
        let db = &self.settings.database;
        let stored: Vec<Configured> = self
            .client
            .query(&format!(
                "SELECT tenant, currency, home_currency FROM {db}.currency_rates FINAL \
                 WHERE origin = 'configuration' AND rate > 0"
            ))
            .fetch_all()
            .await?;
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
        let mut rows = Vec::new();
        let mut row = |tenant: &str, currency: &str, home: &str, rate: f64| {
            let _ = serde_json::to_writer(
                &mut rows,
                &serde_json::json!({
                    "tenant": tenant, "currency": currency, "origin": "configuration",
                    "home_currency": home, "rate": rate, "updated_at": now,
                }),
            );
            rows.push(b'\n');
        };
        for (tenant, settings) in currencies {
            row(tenant, &settings.home, &settings.home, 1.0);
            for (currency, rate) in &settings.rates {
                if *currency != settings.home {
                    row(tenant, currency, &settings.home, *rate);
                }
            }
        }
        for old in &stored {
            let still = currencies.iter().any(|(tenant, settings)| {
                *tenant == old.tenant
                    && (settings.home == old.currency || settings.rates.contains_key(&old.currency))
            });
            if !still {
                row(&old.tenant, &old.currency, &old.home_currency, 0.0);
            }
        }
        let mut insert = self.client.insert_formatted_with(format!(
            "INSERT INTO {db}.currency_rates FORMAT JSONEachRow"
        ));
        insert.send(Bytes::from(rows)).await?;
        insert.end().await
    }

    /// Refreshes today's pipeline snapshot from the current deal states.
    pub async fn snapshot_pipeline(&self) -> Result<(), clickhouse::error::Error> {
        let sql = tributary_clickhouse::rename_databases(
            migrations::PIPELINE_SNAPSHOT,
            &self.settings.database,
            &self.settings.pii_database(),
        );
        let statement = migrations::split_statements(&sql).join("\n");
        self.client.query(&statement).execute().await
    }

    /// Drops every monthly partition before `first_kept` (a month's first
    /// day); returns `table/partition` of each dropped one.
    pub async fn drop_partitions_before(
        &self,
        first_kept: NaiveDate,
    ) -> Result<Vec<String>, clickhouse::error::Error> {
        let cutoff = first_kept.year() * 100 + first_kept.month() as i32;
        let tables = join(MONTHLY_TABLES.iter().map(|t| quote(t)));
        let sql = format!(
            "SELECT DISTINCT table, partition FROM system.parts WHERE database = {db} \
             AND table IN ({tables}) AND active AND toInt32OrZero(partition) < {cutoff} \
             AND toInt32OrZero(partition) > 0",
            db = quote(&self.settings.database),
        );
        let parts: Vec<PartitionRow> = self.client.query(&sql).fetch_all().await?;
        let mut dropped = Vec::new();
        for part in parts {
            self.client
                .query(&format!(
                    "ALTER TABLE {}.{} DROP PARTITION {}",
                    self.settings.database, part.table, part.partition
                ))
                .execute()
                .await?;
            dropped.push(format!("{}/{}", part.table, part.partition));
        }
        Ok(dropped)
    }
}

/// The statements that insert the resolved rows of `keys` into the
/// entity's current table, in `database`. The view's filter on the table's
/// key reads only the granules of those records.
pub fn refresh_statements(
    database: &str,
    current: CurrentRows,
    keys: &BTreeSet<Key>,
) -> Vec<String> {
    let mut statements = Vec::new();
    let mut keys = keys.iter().peekable();
    while keys.peek().is_some() {
        let mut list = String::new();
        while list.len() < REFRESH_LIST_BYTES
            && let Some(key) = keys.next()
        {
            if !list.is_empty() {
                list.push(',');
            }
            list.push_str(&format!(
                "({},{},{},{})",
                quote(&key.tenant),
                quote(&key.source),
                quote(&key.account),
                quote(&key.id)
            ));
        }
        statements.push(format!(
            "INSERT INTO {database}.{table} SELECT * FROM {database}.{resolved} \
             WHERE (tenant, source, account, id) IN ({list})",
            table = current.table,
            resolved = current.resolved,
        ));
    }
    statements
}

/// A ClickHouse string literal.
pub fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '\'' => quoted.push_str("\\'"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

fn join(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_names_each_key_once_and_splits_long_lists() {
        let current = Table::DealChanges
            .current()
            .expect("deals have current rows");
        let key = |id: String| Key {
            tenant: "acme".into(),
            source: "hubspot".into(),
            account: "62515".into(),
            id,
        };
        let few: BTreeSet<Key> = ["1", "it's"].map(|id| key(id.into())).into();
        let statements = refresh_statements("tributary", current, &few);
        assert_eq!(
            statements,
            [
                "INSERT INTO tributary.current_deals SELECT * FROM tributary.deals_resolved \
              WHERE (tenant, source, account, id) IN \
              (('acme','hubspot','62515','1'),('acme','hubspot','62515','it\\'s'))"
            ]
        );
        let many: BTreeSet<Key> = (0..10_000).map(|i| key(format!("{i:020}"))).collect();
        let statements = refresh_statements("tributary", current, &many);
        assert!(statements.len() > 1, "split");
        assert!(
            statements.iter().all(|s| s.len() < 200_000),
            "each under the query size limit"
        );
        let named: usize = statements.iter().map(|s| s.matches("'acme'").count()).sum();
        assert_eq!(named, 10_000, "every key once");
    }

    #[test]
    fn string_literals_escape_quotes_and_backslashes() {
        assert_eq!(quote("it's"), "'it\\'s'");
        assert_eq!(quote("a\\b"), "'a\\\\b'");
    }
}
