//! `tributary report`: the "Sales operations" dashboard of one tenant as a
//! self-contained HTML page, from the same SQL as the Grafana panels.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tributary_clickhouse::ClickHouseSettings;
use tributary_clickhouse::dashboard::{self, Scope};
use tributary_report::{Header, Report};

use crate::read::parse_time;

#[derive(Args)]
pub struct ReportArgs {
    /// The tenant to report on.
    #[arg(long)]
    tenant: String,
    /// One pipeline, as the dashboard's pipeline variable names it:
    /// `<source>:<account>:<pipeline id>`, e.g. `pipedrive:8087566:1`
    /// (default: all pipelines).
    #[arg(long)]
    pipeline: Option<String>,
    /// Start of the time range (RFC 3339 or epoch milliseconds; default: 90 days ago).
    #[arg(long)]
    from: Option<String>,
    /// End of the time range (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Where to write the page.
    #[arg(long, default_value = "sales-operations.html")]
    out: PathBuf,
}

pub async fn run(settings: &ClickHouseSettings, args: ReportArgs) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp();
    let seconds = |flag: &str, text: &Option<String>, default: i64| -> anyhow::Result<i64> {
        match text {
            Some(text) => Ok(parse_time(flag, text)?.div_euclid(1_000)),
            None => Ok(default),
        }
    };
    let scope = Scope {
        from: seconds("--from", &args.from, now - 90 * 86_400)?,
        to: seconds("--to", &args.to, now)?,
        tenant: args.tenant,
        pipeline: args.pipeline,
    };
    anyhow::ensure!(scope.from <= scope.to, "--from is after --to");
    let client = tributary_clickhouse::client(settings);
    let panels = dashboard::run_panels(&client, settings, &scope)
        .await
        .with_context(|| format!("running the dashboard's panels on {}", settings.url))?;
    let rows: usize = panels.iter().map(|p| p.rows.len()).sum();
    let report = Report::new(Header::new("Sales operations", &scope, now), panels);
    report
        .write(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} ({} rows for tenant {})",
        args.out.display(),
        rows,
        scope.tenant
    );
    Ok(())
}
