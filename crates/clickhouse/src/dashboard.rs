//! The "Sales operations" dashboard as Grafana provisions it
//! (`deploy/grafana/dashboards/sales-operations.json`), and the expansion of
//! its variables and the ClickHouse data source's time macros, so tests, the
//! demo's report and operators run exactly the SQL the panels run.

use serde_json::Value;

/// The dashboard definition Grafana provisions.
pub const SALES_OPERATIONS_JSON: &str =
    include_str!("../../../deploy/grafana/dashboards/sales-operations.json");

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
    /// A pipeline id, or `None` for all pipelines (the variable's "All").
    pub pipeline: Option<i64>,
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
/// variables `${tenant:singlequote}` and `${pipeline}` (0 for "All"), and the
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
            (
                "${tenant:singlequote}",
                format!(
                    "'{}'",
                    scope.tenant.replace('\\', "\\\\").replace('\'', "\\'")
                ),
            ),
            ("${pipeline}", scope.pipeline.unwrap_or(0).to_string()),
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

#[cfg(test)]
mod tests;
