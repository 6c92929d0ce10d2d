//! Versioned migrations: `schemas/clickhouse/NNNN_name.sql`, applied in
//! order and recorded in `<database>.schema_migrations`. Every statement is
//! idempotent (`IF NOT EXISTS`), so a run interrupted half way is simply run
//! again. The files name the databases `tributary` and `tributary_pii`; they
//! are renamed to the configured ones when applied.

use sha2::{Digest, Sha256};

use crate::ClickHouseSettings;

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../schemas/clickhouse/", $name, ".sql")),
        }
    };
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_events"),
    migration!(2, "0002_contacts_pii"),
    migration!(3, "0003_deal_state"),
    migration!(4, "0004_stage_transitions"),
    migration!(5, "0005_activity_daily"),
    migration!(6, "0006_won_by_source"),
    migration!(7, "0007_pipeline_daily"),
    migration!(8, "0008_event_ledger"),
    migration!(9, "0009_stage_entries"),
    migration!(10, "0010_deal_state_merges"),
    migration!(11, "0011_canonical_model"),
];

/// Statements run outside migrations (the activator's periodic jobs).
pub const PIPELINE_SNAPSHOT: &str =
    include_str!("../../../schemas/clickhouse/jobs/pipeline_snapshot.sql");

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error(
        "migration {version} ({name}) was changed after it was applied (recorded checksum {recorded}, file {file}); add a new migration instead"
    )]
    Changed {
        version: u32,
        name: &'static str,
        recorded: String,
        file: String,
    },
}

impl Migration {
    /// SHA-256 of the file, recorded when applied.
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The statements, comments removed, with the databases renamed.
    pub fn statements(&self, settings: &ClickHouseSettings) -> Vec<String> {
        split_statements(&rename_databases(
            self.sql,
            &settings.database,
            &settings.pii_database(),
        ))
    }
}

/// Splits a SQL file into statements: `--` comment lines dropped, statements
/// end with `;` at the end of a line.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            let statement = current.trim().trim_end_matches(';').trim().to_owned();
            if !statement.is_empty() {
                statements.push(statement);
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        statements.push(rest.to_owned());
    }
    statements
}

/// Replaces the identifiers `tributary` and `tributary_pii` (whole words
/// only) with the configured database names.
pub fn rename_databases(sql: &str, database: &str, pii_database: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match word.as_str() {
            "tributary" => out.push_str(database),
            "tributary_pii" => out.push_str(pii_database),
            other => out.push_str(other),
        }
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Applied {
    version: u32,
    checksum: String,
}

/// Applies every migration not yet recorded, in order; returns the versions
/// applied now. Refuses when an applied migration's file has changed.
pub async fn apply_migrations(
    client: &clickhouse::Client,
    settings: &ClickHouseSettings,
) -> Result<Vec<u32>, MigrationError> {
    let db = &settings.database;
    // Every statement names its database; the configured one may not exist yet.
    let client = client.clone().with_database("default");
    client
        .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
        .execute()
        .await?;
    client
        .query(&format!(
            "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, checksum String, applied_at DateTime('UTC')) ENGINE = MergeTree ORDER BY version"
        ))
        .execute()
        .await?;
    let applied: Vec<Applied> = client
        .query(&format!(
            "SELECT version, any(checksum) AS checksum FROM {db}.schema_migrations GROUP BY version"
        ))
        .fetch_all()
        .await?;
    let mut now_applied = Vec::new();
    for migration in MIGRATIONS {
        if let Some(done) = applied.iter().find(|a| a.version == migration.version) {
            if done.checksum != migration.checksum() {
                return Err(MigrationError::Changed {
                    version: migration.version,
                    name: migration.name,
                    recorded: done.checksum.clone(),
                    file: migration.checksum(),
                });
            }
            continue;
        }
        for statement in migration.statements(settings) {
            client.query(&statement).execute().await?;
        }
        client
            .query(&format!(
                "INSERT INTO {db}.schema_migrations (version, name, checksum, applied_at) SELECT ?, ?, ?, now()"
            ))
            .bind(migration.version)
            .bind(migration.name)
            .bind(migration.checksum())
            .execute()
            .await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied ClickHouse migration"
        );
        now_applied.push(migration.version);
    }
    Ok(now_applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_under_schemas_clickhouse_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/clickhouse");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("schemas/clickhouse")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_owned())
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, listed);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }

    #[test]
    fn renaming_touches_whole_identifiers_only() {
        let sql = "CREATE DATABASE IF NOT EXISTS tributary;\nSELECT tributary_events FROM tributary.events, tributary_pii.contacts";
        assert_eq!(
            rename_databases(sql, "t1", "t1_pii"),
            "CREATE DATABASE IF NOT EXISTS t1;\nSELECT tributary_events FROM t1.events, t1_pii.contacts"
        );
    }

    #[test]
    fn statements_split_at_line_end_semicolons_without_comments() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE a (x UInt8)\nENGINE = Memory;\n\nSELECT ';' ;\n-- trailing\n";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE TABLE a (x UInt8)\nENGINE = Memory".to_owned(),
                "SELECT ';'".to_owned()
            ]
        );
    }
}
