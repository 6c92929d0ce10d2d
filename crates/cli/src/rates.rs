//! `tributary rates`: a tenant's currency rates, as the dashboards use them.
//!
//! `list` prints each currency's rate into the home currency and where it
//! comes from; `set` loads an operator's rates (`origin = 'operator'`),
//! which win over the configured ones, e.g. a month's closing rates from
//! finance. A rate of 0 takes a currency's operator rate back.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;
use tributary_clickhouse::ClickHouseSettings;
use tributary_config::is_currency_code;

#[derive(Args)]
pub struct RatesArgs {
    #[command(subcommand)]
    command: RatesCommand,
}

#[derive(Subcommand)]
enum RatesCommand {
    /// Print a tenant's rates: currency, rate, origin, when.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Load rates into the home currency: `USD=0.92 BRL=0.17`.
    Set {
        #[arg(long)]
        tenant: String,
        /// The home currency the rates convert into (must match the tenant's).
        #[arg(long)]
        home: String,
        /// `CODE=RATE`, home-currency units per unit of CODE; 0 removes it.
        #[arg(required = true, value_parser = parse_rate)]
        rates: Vec<(String, f64)>,
    },
}

fn parse_rate(text: &str) -> Result<(String, f64), String> {
    let (code, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: write CODE=RATE, e.g. USD=0.92"))?;
    let code = code.trim().to_owned();
    if !is_currency_code(&code) {
        return Err(format!("{code:?} is not an ISO 4217 code such as USD"));
    }
    let rate: f64 = rate
        .trim()
        .parse()
        .map_err(|_| format!("{rate:?} is not a number"))?;
    if !rate.is_finite() || rate < 0.0 {
        return Err(format!(
            "{code}: the rate must be a positive number (or 0 to remove it)"
        ));
    }
    Ok((code, rate))
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct RateRow {
    currency: String,
    origin: String,
    home_currency: String,
    rate: f64,
    updated_at: String,
}

/// Every rate row of the tenant, latest per currency and origin.
async fn rows(settings: &ClickHouseSettings, tenant: &str) -> anyhow::Result<Vec<RateRow>> {
    let client = tributary_clickhouse::client(settings);
    let sql = format!(
        "SELECT currency, origin, home_currency, rate, toString(updated_at) AS updated_at \
         FROM {}.currency_rates FINAL WHERE tenant = ? ORDER BY currency, origin",
        settings.database
    );
    Ok(client.query(&sql).bind(tenant).fetch_all().await?)
}

pub async fn run(settings: &ClickHouseSettings, args: RatesArgs) -> anyhow::Result<()> {
    match args.command {
        RatesCommand::List { tenant } => {
            let rows = rows(settings, &tenant).await?;
            if rows.is_empty() {
                println!(
                    "{tenant}: no rates; amounts are not summed until home_currency and rates are set"
                );
                return Ok(());
            }
            println!(
                "{:<8}  {:>14}  {:<13}  {:<8}  updated",
                "currency", "rate", "origin", "home"
            );
            for row in rows {
                let rate = if row.rate > 0.0 {
                    format!("{}", row.rate)
                } else {
                    "(none)".to_owned()
                };
                println!(
                    "{:<8}  {:>14}  {:<13}  {:<8}  {}",
                    row.currency, rate, row.origin, row.home_currency, row.updated_at
                );
            }
            Ok(())
        }
        RatesCommand::Set {
            tenant,
            home,
            rates,
        } => {
            anyhow::ensure!(
                is_currency_code(&home),
                "--home {home:?} is not an ISO 4217 code such as EUR"
            );
            let existing = rows(settings, &tenant).await?;
            if let Some(other) = existing
                .iter()
                .find(|r| r.rate > 0.0 && r.home_currency != home)
            {
                anyhow::bail!(
                    "{tenant}'s rates convert into {}, not {home}: a tenant has one home currency",
                    other.home_currency
                );
            }
            let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
            let mut body = Vec::new();
            let mut write = |currency: &str, rate: f64| -> anyhow::Result<()> {
                serde_json::to_writer(
                    &mut body,
                    &serde_json::json!({
                        "tenant": tenant, "currency": currency, "origin": "operator",
                        "home_currency": home, "rate": rate, "updated_at": now,
                    }),
                )?;
                body.push(b'\n');
                Ok(())
            };
            write(&home, 1.0)?;
            for (currency, rate) in &rates {
                if *currency != home {
                    write(currency, *rate)?;
                }
            }
            let client = tributary_clickhouse::client(settings);
            let mut insert = client.insert_formatted_with(format!(
                "INSERT INTO {}.currency_rates FORMAT JSONEachRow",
                settings.database
            ));
            insert
                .send(body.into())
                .await
                .context("loading the rates into ClickHouse")?;
            insert.end().await?;
            println!(
                "{tenant}: loaded {} rate(s) into {home} (origin operator)",
                rates.len()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_are_code_equals_a_non_negative_number() {
        assert_eq!(parse_rate("USD=0.92"), Ok(("USD".into(), 0.92)));
        assert_eq!(parse_rate("BRL = 0"), Ok(("BRL".into(), 0.0)));
        for bad in ["USD", "usd=1", "USD=x", "USD=-1", "US=1"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
