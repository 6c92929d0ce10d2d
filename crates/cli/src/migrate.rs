//! `tributary migrate`: applies pending ClickHouse migrations (the activator
//! does the same at start).

use clap::Args;
use tributary_clickhouse::ClickHouseSettings;

#[derive(Args)]
pub struct MigrateArgs {}

pub async fn run(settings: &ClickHouseSettings, _args: MigrateArgs) -> anyhow::Result<()> {
    let client = tributary_clickhouse::client(settings);
    let applied = tributary_clickhouse::apply_migrations(&client, settings).await?;
    if applied.is_empty() {
        println!("{}: every migration was already applied", settings.database);
    } else {
        println!("{}: applied migrations {applied:?}", settings.database);
    }
    Ok(())
}
