//! ClickHouse: the tables' column layouts, the de-duplication look-up,
//! inserts, the daily pipeline snapshot and retention.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use chrono::{Datelike, NaiveDate};
use tributary_clickhouse::{ClickHouseSettings, migrations};

use crate::rows::Columns;

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

/// Tables the activator writes.
pub const EVENTS: &str = "events";
pub const CONTACTS: &str = "contacts";
pub const LEDGER: &str = "event_ledger";

/// Tables partitioned by month, for retention.
const MONTHLY_TABLES: &[&str] = &[
    "events",
    "event_ledger",
    "stage_transitions",
    "activity_daily",
    "won_by_source",
    "pipeline_daily",
];

/// Ids per look-up query: keeps each well under ClickHouse's default
/// `max_query_size` (256 KiB).
const LOOKUP_CHUNK: usize = 2_000;

pub struct ClickHouse {
    client: clickhouse::Client,
    pub settings: ClickHouseSettings,
    pub events: Columns,
    pub contacts: Columns,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct ColumnRow {
    name: String,
    r#type: String,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct StoredRow {
    pipeline_event_id: String,
    complete: u8,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct PartitionRow {
    table: String,
    partition: String,
}

impl ClickHouse {
    /// Applies pending migrations and reads the column layouts.
    pub async fn connect(settings: &ClickHouseSettings) -> anyhow::Result<ClickHouse> {
        let client = tributary_clickhouse::client(settings);
        migrations::apply_migrations(&client, settings).await?;
        let events = columns(&client, &settings.database, EVENTS).await?;
        let contacts = columns(&client, &settings.pii_database(), CONTACTS).await?;
        Ok(ClickHouse {
            client,
            settings: settings.clone(),
            events,
            contacts,
        })
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
                "SELECT pipeline_event_id, max(complete) AS complete \
                 FROM {db}.event_ledger WHERE event_date IN ({dates}) AND pipeline_tenant IN ({tenants}) \
                 AND pipeline_event_id IN ({ids}) GROUP BY pipeline_event_id",
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
                found.insert(row.pipeline_event_id, stored);
            }
        }
        Ok(found)
    }

    /// Inserts `JSONEachRow` lines into `table` of `database`.
    pub async fn insert(
        &self,
        database: &str,
        table: &str,
        rows: Bytes,
    ) -> Result<(), clickhouse::error::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client
            .insert_formatted_with(format!("INSERT INTO {database}.{table} FORMAT JSONEachRow"));
        insert.send(rows).await?;
        insert.end().await
    }

    /// Refreshes today's pipeline snapshot from the current deal states.
    pub async fn snapshot_pipeline(&self) -> Result<(), clickhouse::error::Error> {
        let sql = tributary_clickhouse::rename_databases(
            migrations::PIPELINE_DAILY_SNAPSHOT,
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

async fn columns(
    client: &clickhouse::Client,
    database: &str,
    table: &str,
) -> anyhow::Result<Columns> {
    let rows: Vec<ColumnRow> = client
        .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ?")
        .bind(database)
        .bind(table)
        .fetch_all()
        .await?;
    anyhow::ensure!(!rows.is_empty(), "table {database}.{table} has no columns");
    Ok(Columns::new(rows.into_iter().map(|r| (r.name, r.r#type))))
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
    fn string_literals_escape_quotes_and_backslashes() {
        assert_eq!(quote("it's"), "'it\\'s'");
        assert_eq!(quote("a\\b"), "'a\\\\b'");
    }
}
