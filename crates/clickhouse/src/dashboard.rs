//! The "Sales operations" and "Pipeline health" dashboards as Grafana
//! provisions them (`deploy/grafana/dashboards/`), and the expansion of
//! its variables and the ClickHouse data source's time macros, so tests, the
//! demo's report and operators run exactly the SQL the panels run
//! ([`run_panels`] runs them all and returns their rows as JSON).

use serde_json::Value;

use crate::ClickHouseSettings;

/// The dashboard definition Grafana provisions.
pub const SALES_OPERATIONS_JSON: &str =
    include_str!("../../../deploy/grafana/dashboards/sales-operations.json");

/// The operators' dashboard: partial events per tenant, what they miss.
pub const PIPELINE_HEALTH_JSON: &str =
    include_str!("../../../deploy/grafana/dashboards/pipeline-health.json");

/// One panel's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panel {
    pub id: u64,
    pub title: String,
    /// Grafana's panel type: `stat`, `table`, `barchart`, `timeseries`.
    pub kind: String,
    pub sql: String,
}

/// What a dashboard view is scoped to: the time range and the variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Unix seconds, inclusive, as Grafana's time picker sends them.
    pub from: i64,
    pub to: i64,
    pub tenant: String,
    /// A pipeline as the variable's values name it
    /// (`<source>:<account>:<pipeline id>`), or `None` for all pipelines
    /// (the variable's "All", an empty string).
    pub pipeline: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DashboardError {
    #[error("the dashboard definition is not valid: {0}")]
    Definition(String),
    #[error("panel SQL uses `{0}`, which the expansion does not know")]
    Unknown(String),
    #[error("{0} is not a valid time")]
    Time(i64),
    #[error("macro `{0}` is missing its closing parenthesis")]
    Unclosed(String),
}

/// Every panel with a query, in the dashboard's order.
pub fn sales_operations_panels() -> Result<Vec<Panel>, DashboardError> {
    panels(SALES_OPERATIONS_JSON)
}

/// Every panel of the "Pipeline health" dashboard.
pub fn pipeline_health_panels() -> Result<Vec<Panel>, DashboardError> {
    panels(PIPELINE_HEALTH_JSON)
}

/// The panels of a Grafana dashboard definition.
pub fn panels(definition: &str) -> Result<Vec<Panel>, DashboardError> {
    let dashboard: Value =
        serde_json::from_str(definition).map_err(|e| DashboardError::Definition(e.to_string()))?;
    let panels = dashboard["panels"]
        .as_array()
        .ok_or_else(|| DashboardError::Definition("no `panels` list".into()))?;
    panels
        .iter()
        .filter_map(|panel| {
            let sql = panel["targets"][0]["rawSql"].as_str()?;
            Some(Ok(Panel {
                id: panel["id"].as_u64().unwrap_or_default(),
                title: panel["title"].as_str().unwrap_or_default().to_owned(),
                kind: panel["type"].as_str().unwrap_or_default().to_owned(),
                sql: sql.to_owned(),
            }))
        })
        .collect()
}

/// `sql` as Grafana's ClickHouse data source sends it for `scope`: the
/// variables `${tenant:singlequote}` and `${pipeline:singlequote}` (`''` for
/// "All"), and the
/// macros `$__timeFilter(col)`, `$__dateFilter(col)`, `$__fromTime`,
/// `$__toTime`, expanded as the plugin does. Anything else starting with `$`
/// is an error rather than SQL that would fail or mean something else.
pub fn expand(sql: &str, scope: &Scope) -> Result<String, DashboardError> {
    let from = format!("toDateTime({})", scope.from);
    let to = format!("toDateTime({})", scope.to);
    let date = |seconds: i64| {
        chrono::DateTime::from_timestamp(seconds, 0)
            .map(|t| format!("toDate('{}')", t.format("%Y-%m-%d")))
            .ok_or(DashboardError::Time(seconds))
    };
    let (from_date, to_date) = (date(scope.from)?, date(scope.to)?);
    let mut out = String::with_capacity(sql.len() + 256);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let simple: [(&str, String); 4] = [
            ("${tenant:singlequote}", single_quote(&scope.tenant)),
            (
                "${pipeline:singlequote}",
                single_quote(scope.pipeline.as_deref().unwrap_or_default()),
            ),
            ("$__fromTime", from.clone()),
            ("$__toTime", to.clone()),
        ];
        if let Some((name, value)) = simple.iter().find(|(name, _)| rest.starts_with(name)) {
            out.push_str(value);
            rest = &rest[name.len()..];
            continue;
        }
        let filter = [
            ("$__timeFilter(", &from, &to),
            ("$__dateFilter(", &from_date, &to_date),
        ]
        .into_iter()
        .find(|(name, _, _)| rest.starts_with(name));
        let Some((name, low, high)) = filter else {
            let word: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ')' && *c != ',')
                .collect();
            return Err(DashboardError::Unknown(word));
        };
        let args = &rest[name.len()..];
        let close = matching_parenthesis(args)
            .ok_or_else(|| DashboardError::Unclosed(name.trim_end_matches('(').to_owned()))?;
        let column = args[..close].trim();
        out.push_str(&format!("{column} >= {low} AND {column} <= {high}"));
        rest = &args[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A variable's value as Grafana's `singlequote` format writes it.
fn single_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The index of the `)` closing an argument list that starts just after `(`.
fn matching_parenthesis(args: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in args.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// One panel with the rows its query returned.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelRows {
    pub panel: Panel,
    /// The result's column names in the query's order (empty without rows).
    pub columns: Vec<String>,
    /// One JSON object per row, as ClickHouse's `JSONEachRow` writes it.
    /// 64-bit integers are numbers, except for a read-only user, which may
    /// not change that setting: then they arrive as quoted strings.
    pub rows: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error(transparent)]
    Dashboard(#[from] DashboardError),
    #[error("panel {title:?}: {source}")]
    Expand {
        title: String,
        #[source]
        source: DashboardError,
    },
    #[error("panel {title:?}: ClickHouse: {source}")]
    ClickHouse {
        title: String,
        #[source]
        source: clickhouse::error::Error,
    },
    #[error("panel {title:?}: row {row} is not a JSON object: {message}")]
    Row {
        title: String,
        row: usize,
        message: String,
    },
}

/// The setting that makes ClickHouse write 64-bit integers as JSON numbers.
const QUOTE_64BIT_INTEGERS: &str = "output_format_json_quote_64bit_integers";

/// Runs every panel of the "Sales operations" dashboard for `scope`, in the
/// dashboard's order: the SQL expanded as Grafana's data source sends it,
/// the databases renamed to the configured ones, the rows fetched as
/// `JSONEachRow` with 64-bit integers as numbers.
pub async fn run_panels(
    client: &clickhouse::Client,
    settings: &ClickHouseSettings,
    scope: &Scope,
) -> Result<Vec<PanelRows>, PanelError> {
    let mut out = Vec::new();
    for panel in sales_operations_panels()? {
        out.push(run_panel(client, settings, scope, panel).await?);
    }
    Ok(out)
}

/// Runs one panel's query for `scope`.
pub async fn run_panel(
    client: &clickhouse::Client,
    settings: &ClickHouseSettings,
    scope: &Scope,
    panel: Panel,
) -> Result<PanelRows, PanelError> {
    let sql = panel_sql(&panel, settings, scope)?;
    let clickhouse_error = |source| PanelError::ClickHouse {
        title: panel.title.clone(),
        source,
    };
    let body = match fetch_json_each_row(client, &sql, true).await {
        // A read-only user may not change output settings: take quoted integers.
        Err(error) if is_readonly_refusal(&error) => fetch_json_each_row(client, &sql, false)
            .await
            .map_err(clickhouse_error)?,
        other => other.map_err(clickhouse_error)?,
    };
    let (columns, rows) = parse_json_each_row(&body).map_err(|(row, message)| PanelError::Row {
        title: panel.title.clone(),
        row,
        message,
    })?;
    Ok(PanelRows {
        panel,
        columns,
        rows,
    })
}

/// The statement `run_panel` sends for `panel`: expanded for `scope`, the
/// databases renamed, no trailing semicolon.
pub fn panel_sql(
    panel: &Panel,
    settings: &ClickHouseSettings,
    scope: &Scope,
) -> Result<String, PanelError> {
    let expanded = expand(&panel.sql, scope).map_err(|source| PanelError::Expand {
        title: panel.title.clone(),
        source,
    })?;
    let renamed = crate::rename_databases(&expanded, &settings.database, &settings.pii_database());
    Ok(renamed.trim().trim_end_matches(';').trim_end().to_owned())
}

/// Runs any query and returns its rows as JSON objects, 64-bit integers as
/// numbers (a user allowed to change output settings is needed).
pub async fn query_rows(
    client: &clickhouse::Client,
    sql: &str,
) -> Result<Vec<Value>, clickhouse::error::Error> {
    let body = fetch_json_each_row(client, sql.trim().trim_end_matches(';'), true).await?;
    body.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|e| clickhouse::error::Error::Custom(format!("{e}: {line}")))
        })
        .collect()
}

async fn fetch_json_each_row(
    client: &clickhouse::Client,
    sql: &str,
    numbers: bool,
) -> Result<String, clickhouse::error::Error> {
    // Sent verbatim: a `?` in a tenant's name is not a bind placeholder.
    let mut query = client.query_raw(sql);
    if numbers {
        query = query.with_setting(QUOTE_64BIT_INTEGERS, "0");
    }
    let bytes = query.fetch_bytes("JSONEachRow")?.collect().await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// ClickHouse refused to change a setting because the user is read-only
/// (code 164, `READONLY`).
fn is_readonly_refusal(error: &clickhouse::error::Error) -> bool {
    matches!(error, clickhouse::error::Error::BadResponse(message)
        if message.contains("Code: 164") && message.contains(QUOTE_64BIT_INTEGERS))
}

/// `JSONEachRow` output as the column names (in the order of the first row's
/// keys) and one object per non-empty line; an error names the line (from 0).
fn parse_json_each_row(body: &str) -> Result<(Vec<String>, Vec<Value>), (usize, String)> {
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let row = rows.len();
        let value: Value = serde_json::from_str(line).map_err(|e| (row, e.to_string()))?;
        if !value.is_object() {
            return Err((row, format!("got {line}")));
        }
        if row == 0 {
            columns = serde_json::from_str::<KeysInOrder>(line)
                .map_err(|e| (row, e.to_string()))?
                .0;
        }
        rows.push(value);
    }
    Ok((columns, rows))
}

/// The keys of a JSON object in the order they appear (a `serde_json::Map`
/// sorts them unless the `preserve_order` feature is on).
struct KeysInOrder(Vec<String>);

impl<'de> serde::Deserialize<'de> for KeysInOrder {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = KeysInOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeysInOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, serde::de::IgnoredAny)) = map.next_entry::<String, _>()? {
                    keys.push(key);
                }
                Ok(KeysInOrder(keys))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

#[cfg(test)]
mod tests;
