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

/// Whether the server reads the format the `clickhouse` crate's row-type
/// validation uses (ClickHouse 18.16 has no `RowBinaryWithNamesAndTypes`);
/// an unreachable server is an error.
pub async fn validation_supported(
    client: &clickhouse::Client,
) -> Result<bool, clickhouse::error::Error> {
    match client.query("SELECT toUInt8(1)").fetch_one::<u8>().await {
        Ok(_) => Ok(true),
        Err(clickhouse::error::Error::BadResponse(message))
            if message.contains("RowBinaryWithNamesAndTypes")
                || message.contains("UNKNOWN_FORMAT")
                || message.contains("Code: 73") =>
        {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// `settings` as this server can use them: `validation` turned off when the
/// server cannot check row types (the second value says so). Unchanged when
/// the server cannot be asked: what the caller does next reports why.
pub async fn adapted(settings: &ClickHouseSettings) -> (ClickHouseSettings, bool) {
    let mut settings = settings.clone();
    if settings.validation && matches!(validation_supported(&client(&settings)).await, Ok(false)) {
        settings.validation = false;
        return (settings, true);
    }
    (settings, false)
}

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
