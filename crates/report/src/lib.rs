//! The "Sales operations" dashboard as one self-contained HTML page, for
//! people without Grafana: the rows of every panel (from
//! [`tributary_clickhouse::dashboard::run_panels`], the SQL the Grafana panels
//! run), drawn with inline CSS and inline SVG. No script, font, image or URL
//! is loaded; the page works offline and its Content-Security-Policy forbids
//! fetching anything.
//!
//! The page is what a sales manager reads first: the header (tenant,
//! pipeline, time range, the home currency), the dashboard (KPI tiles, then
//! every panel in the dashboard's order), and only after it the check of
//! the numbers: the comparison with the ground truth and the facts the
//! caller measured (freshness, throughput), when the caller passes them.
//!
//! Panels are drawn by title ([`panels`]): KPI tiles, the funnel and the
//! won-by-source panel as horizontal bars, the forecast as grouped bars, deal
//! velocity as a line over weeks, the rep scoreboard as stacked bars, the
//! currencies as a table of their rates, plus a table of every row under each
//! chart; a panel this code does not know is a table of every row and column,
//! never dropped.
//!
//! Money is in the tenant's home currency, the KPI row's `home_currency`:
//! the tiles, headings and chart legends of sums say it. Deals in a currency
//! without a rate are never summed: the KPI area says how many open deals
//! that leaves out, and the open deals and currencies tables list them apart
//! (a `<tbody data-apart="without-rate">`), with no home value.
//!
//! Every value shown carries its exact machine value, so a test (or a
//! script) can read the numbers back from the page:
//!
//! - a panel is `<section data-panel="{id}" data-panel-title=... data-view=... data-rows="{n}">`;
//! - each of its values (table cell, KPI tile) has `data-panel`, `data-row`
//!   (from 0, in the query's order), `data-column` and `data-value`, the
//!   value's JSON text as ClickHouse returned it (`12.5`, `"1500"`, `null`);
//! - each chart mark (bar, segment, point) has `data-panel`, `data-row`,
//!   `data-series` (the column it draws) and `data-value`;
//! - header items have `data-header` (`tenant`, `pipeline`, `home_currency`,
//!   `from`, `to`, `generated_at`) and `data-value`;
//! - notes about money have `data-note` (`open-without-rate`, with the count
//!   in `data-value`; `without-rate`);
//! - facts have `data-fact` and `data-value`; comparison cells
//!   `data-comparison` (the row), `data-column` and `data-value`.

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;
use tributary_clickhouse::dashboard::{PanelRows, Scope};

mod format;

/// Number reading and formatting, for callers printing the same figures.
pub use format::{decimal, number};
mod html;
mod panels;
mod svg;

use format::group;
use html::{attr, escape};

const STYLE: &str = include_str!("style.css");

/// What the page is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub title: String,
    pub tenant: String,
    /// The pipeline shown (its name or id), `None` for all pipelines.
    pub pipeline: Option<String>,
    /// The time range, Unix seconds, inclusive.
    pub from: i64,
    pub to: i64,
    /// When the report was made, Unix seconds.
    pub generated_at: i64,
}

impl Header {
    /// A header for the dashboard view `scope`; the pipeline is shown by its
    /// id (set [`Header::pipeline`] to show its name instead).
    pub fn new(title: impl Into<String>, scope: &Scope, generated_at: i64) -> Header {
        Header {
            title: title.into(),
            tenant: scope.tenant.clone(),
            pipeline: scope.pipeline.clone(),
            from: scope.from,
            to: scope.to,
            generated_at,
        }
    }
}

/// A figure about how the numbers were made (say, freshness or
/// throughput), shown after the panels with the check of the numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub label: String,
    /// A number is formatted for people; text is shown as it is.
    pub value: Value,
    /// Shown after the value: `s`, `events/s`, `%`.
    pub unit: Option<String>,
}

impl Fact {
    pub fn new(label: impl Into<String>, value: impl Into<Value>) -> Fact {
        Fact {
            label: label.into(),
            value: value.into(),
            unit: None,
        }
    }

    pub fn with_unit(mut self, unit: impl Into<String>) -> Fact {
        self.unit = Some(unit.into());
        self
    }
}

/// One figure of a panel next to the answer it should have.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub panel: String,
    pub metric: String,
    /// What the dashboard's query returned.
    pub dashboard: Value,
    /// What it must be (computed independently).
    pub truth: Value,
}

impl Comparison {
    pub fn new(
        panel: impl Into<String>,
        metric: impl Into<String>,
        dashboard: impl Into<Value>,
        truth: impl Into<Value>,
    ) -> Comparison {
        Comparison {
            panel: panel.into(),
            metric: metric.into(),
            dashboard: dashboard.into(),
            truth: truth.into(),
        }
    }

    /// Dashboard minus truth when both are numbers, else null.
    pub fn difference(&self) -> Option<f64> {
        Some(number(&self.dashboard)? - number(&self.truth)?)
    }

    /// Equal: numbers as numbers (within the rounding of the last bits of a
    /// floating-point sum), anything else exactly.
    pub fn matches(&self) -> bool {
        match (number(&self.dashboard), number(&self.truth)) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            _ => self.dashboard == self.truth,
        }
    }
}

/// Everything on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub header: Header,
    pub facts: Vec<Fact>,
    /// Shown as a table after the panels when present.
    pub comparison: Option<Vec<Comparison>>,
    /// In the order to show them (the dashboard's).
    pub panels: Vec<PanelRows>,
}

impl Report {
    pub fn new(header: Header, panels: Vec<PanelRows>) -> Report {
        Report {
            header,
            facts: Vec::new(),
            comparison: None,
            panels,
        }
    }

    /// The page, a complete HTML document.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * 1024 + self.panels.len() * 16 * 1024);
        let h = &self.header;
        let money = panels::Money::of(&self.panels);
        let pipeline = h.pipeline.as_deref().unwrap_or("all");
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{STYLE}</style></head><body>",
            escape(&format!("{} \u{2014} {}", h.title, h.tenant))
        );
        let _ = write!(
            out,
            "<header class=\"top\"><div class=\"eyebrow\">Tributary report</div><h1>{}</h1><dl class=\"scope\">",
            escape(&h.title)
        );
        let item = |out: &mut String, label: &str, key: &str, value: &Value, shown: String| {
            let _ = write!(
                out,
                "<div><dt>{}</dt><dd{}{}>{shown}</dd></div>",
                escape(label),
                attr("data-header", key),
                attr("data-value", &value.to_string())
            );
        };
        item(
            &mut out,
            "Tenant",
            "tenant",
            &Value::from(h.tenant.as_str()),
            escape(&h.tenant),
        );
        item(
            &mut out,
            "Pipeline",
            "pipeline",
            &h.pipeline.as_deref().map_or(Value::Null, Value::from),
            escape(pipeline),
        );
        if let Some(home) = &money.home {
            item(
                &mut out,
                "Amounts in",
                "home_currency",
                &Value::from(home.as_str()),
                escape(home),
            );
        }
        let _ = write!(
            out,
            "<div><dt>Time range</dt><dd data-header=\"range\">{} \u{2013} {}</dd></div>",
            time(h.from, "from"),
            time(h.to, "to")
        );
        let _ = write!(
            out,
            "<div><dt>Generated</dt><dd>{}</dd></div></dl></header>",
            time(h.generated_at, "generated_at")
        );

        let checked = self.comparison.is_some() || !self.facts.is_empty();
        out.push_str("<nav class=\"toc\">");
        for p in &self.panels {
            let _ = write!(
                out,
                "<a href=\"#panel-{}\">{}</a>",
                p.panel.id,
                escape(short_title(&p.panel.title))
            );
        }
        if checked {
            out.push_str(
                "<span class=\"toc-break\"></span><span class=\"toc-label\">Checking the numbers:</span>",
            );
            if self.comparison.is_some() {
                out.push_str("<a href=\"#comparison\">Dashboard vs. ground truth</a>");
            }
            if !self.facts.is_empty() {
                out.push_str("<a href=\"#facts\">How the numbers were made</a>");
            }
        }
        out.push_str("</nav><main>");
        for p in &self.panels {
            panels::render_panel(&mut out, p, &money);
        }
        out.push_str("</main>");

        if checked {
            out.push_str(
                "<div class=\"check\" id=\"check\"><h2 class=\"part\">Checking the numbers</h2>\
                 <p class=\"note\">Not part of the dashboard: how the figures above were checked and made.</p>",
            );
            if let Some(rows) = &self.comparison {
                render_comparison(&mut out, rows);
            }
            if !self.facts.is_empty() {
                self.render_facts(&mut out);
            }
            out.push_str("</div>");
        }
        let _ = writeln!(
            out,
            "<footer>Every figure comes from the SQL of the Grafana dashboard \u{201c}Sales operations\u{201d} \
             (deploy/grafana/dashboards/sales-operations.json), run on ClickHouse for tenant {}, pipeline {}. \
             This page is self-contained: it loads no script, font or image and works offline.</footer></body></html>",
            escape(&h.tenant),
            escape(pipeline)
        );
        out
    }

    /// Renders the page into the file at `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.render())
    }

    fn render_facts(&self, out: &mut String) {
        out.push_str(
            "<section class=\"block\" id=\"facts\"><h3>How the numbers were made</h3><div class=\"facts\">",
        );
        for fact in &self.facts {
            let shown = match &fact.value {
                Value::Number(_) => fact_number(&fact.value),
                other => format::text(other),
            };
            let _ = write!(
                out,
                "<div class=\"fact\"><div class=\"fact-label\">{}</div><div class=\"fact-value\"{}{}>{}",
                escape(&fact.label),
                attr("data-fact", &fact.label),
                attr("data-value", &fact.value.to_string()),
                escape(&shown)
            );
            if let Some(unit) = &fact.unit {
                let _ = write!(out, "<span class=\"unit\">{}</span>", escape(unit));
            }
            out.push_str("</div></div>");
        }
        out.push_str("</div></section>");
    }
}

/// A fact's number: whole numbers with separators, others with 2 decimals.
fn fact_number(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => group(&n.to_string()),
        other => number(other).map_or_else(|| format::text(other), |n| decimal(n, 2)),
    }
}

fn render_comparison(out: &mut String, rows: &[Comparison]) {
    let matching = rows.iter().filter(|c| c.matches()).count();
    let _ = write!(
        out,
        "<section class=\"block\" id=\"comparison\"><div class=\"panel-head\"><h3>Dashboard vs. ground truth</h3>\
         <span class=\"summary\" data-matching=\"{matching}\" data-total=\"{}\">{} of {} figures match</span></div>\
         <div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Panel</th><th scope=\"col\">Metric</th>\
         <th scope=\"col\" class=\"num\">Dashboard</th><th scope=\"col\" class=\"num\">Ground truth</th>\
         <th scope=\"col\" class=\"num\">Difference</th><th scope=\"col\">Check</th></tr></thead><tbody>",
        rows.len(),
        group(&matching.to_string()),
        group(&rows.len().to_string()),
    );
    for (i, c) in rows.iter().enumerate() {
        let difference = c.difference().map_or(Value::Null, Value::from);
        let cell = |column: &str, value: &Value| {
            let shown = match value {
                Value::Null => format::NULL.to_owned(),
                _ if number(value).is_some() => {
                    let n = number(value).unwrap_or_default();
                    if n.fract() == 0.0 {
                        decimal(n, 0)
                    } else {
                        decimal(n, 2)
                    }
                }
                other => format::text(other),
            };
            format!(
                "<td class=\"{}\" data-comparison=\"{i}\"{}{}>{}</td>",
                if number(value).is_some() {
                    "num"
                } else {
                    "text"
                },
                attr("data-column", column),
                attr("data-value", &value.to_string()),
                escape(&shown)
            )
        };
        let _ = write!(
            out,
            "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td>{}{}{}{}</tr>",
            escape(&c.panel),
            escape(&c.metric),
            cell("dashboard", &c.dashboard),
            cell("truth", &c.truth),
            cell("difference", &difference),
            if c.matches() {
                format!(
                    "<td class=\"ok\" data-comparison=\"{i}\" data-match=\"true\">\u{2713} match</td>"
                )
            } else {
                format!(
                    "<td class=\"bad\" data-comparison=\"{i}\" data-match=\"false\">\u{2717} differs</td>"
                )
            }
        );
    }
    out.push_str("</tbody></table></div></section>");
}

/// `<time>` for Unix seconds, shown in UTC.
fn time(seconds: i64, key: &str) -> String {
    match chrono::DateTime::from_timestamp(seconds, 0) {
        Some(t) => format!(
            "<time datetime=\"{}\" data-header=\"{key}\" data-value=\"{seconds}\">{}</time>",
            t.format("%Y-%m-%dT%H:%M:%SZ"),
            t.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => format!("<time data-header=\"{key}\" data-value=\"{seconds}\">{seconds}</time>"),
    }
}

/// The part of a title before a colon: the navigation's label.
fn short_title(title: &str) -> &str {
    title.split(':').next().unwrap_or(title).trim()
}

#[cfg(test)]
mod tests;
