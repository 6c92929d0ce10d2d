//! ClickHouse for every stage that needs it: the `[clickhouse]` settings, a
//! client built from them, the versioned migrations under
//! `schemas/clickhouse/`, and the Grafana dashboard's panel queries.

pub mod dashboard;
pub mod migrations;
mod settings;

/// The `clickhouse` crate, for callers that hold a [`client`].
pub use clickhouse;
pub use migrations::{Migration, MigrationError, apply_migrations, rename_databases};
pub use settings::ClickHouseSettings;

/// A client for `settings`, with the database and credentials set.
pub fn client(settings: &ClickHouseSettings) -> clickhouse::Client {
    let mut client = clickhouse::Client::default()
        .with_url(&settings.url)
        .with_user(&settings.user)
        .with_database(&settings.database)
        .with_validation(settings.validation);
    if let Some(password) = &settings.password {
        client = client.with_password(password.expose());
    }
    client
}
