//! One renderer per known panel, chosen by the panel's title; a panel this
//! code does not know (a future one), or a known one whose columns are not
//! the ones its chart needs, is shown as a table of every row and column.

use std::fmt::Write;

use serde_json::Value;
use tributary_clickhouse::dashboard::PanelRows;

use crate::format::{self, Format, column_format, display, machine, number};
use crate::html::{attr, escape};
use crate::svg::{self, Mark, PALETTE, Series};

/// How a panel is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Kpis,
    Funnel,
    Forecast,
    Conversion,
    Calibration,
    Reps,
    Velocity,
    Sources,
    OpenDeals,
    /// Every row and column as a table: the fallback.
    Table,
}

/// Title prefixes of the dashboard's panels and how each is drawn.
const VIEWS: &[(&str, View)] = &[
    ("Pipeline KPIs", View::Kpis),
    ("Pipeline funnel", View::Funnel),
    ("Forecast by expected close month", View::Forecast),
    ("Stage-to-stage conversion", View::Conversion),
    ("Win probability", View::Calibration),
    ("Rep scoreboard", View::Reps),
    ("Deal velocity", View::Velocity),
    ("Won deals by marketing source", View::Sources),
    ("Open deals", View::OpenDeals),
];

pub fn view_for(title: &str) -> View {
    VIEWS
        .iter()
        .find(|(prefix, _)| title.starts_with(prefix))
        .map(|(_, view)| *view)
        .unwrap_or(View::Table)
}

impl View {
    pub fn name(self) -> &'static str {
        match self {
            View::Kpis => "kpis",
            View::Funnel => "funnel",
            View::Forecast => "forecast",
            View::Conversion => "conversion",
            View::Calibration => "calibration",
            View::Reps => "reps",
            View::Velocity => "velocity",
            View::Sources => "sources",
            View::OpenDeals => "open-deals",
            View::Table => "table",
        }
    }

    fn empty_note(self) -> &'static str {
        match self {
            View::Calibration => {
                "No calibration yet: it is shown once the tenant has at least 50 closed (won or lost) deals, so that the win rates it computes from the tenant's own history mean something."
            }
            View::OpenDeals => "No open deals for this tenant and pipeline.",
            View::Velocity | View::Sources => "No deals were won in this time range.",
            View::Reps => "No activities were done in this time range.",
            View::Conversion => "No deal entered a stage in this time range.",
            _ => "No data for this tenant, pipeline and time range.",
        }
    }
}

/// A panel's rows with what rendering needs: the columns in order and how
/// each is formatted.
struct Rows<'a> {
    panel: &'a PanelRows,
    columns: Vec<String>,
    formats: Vec<Format>,
}

impl<'a> Rows<'a> {
    fn new(panel: &'a PanelRows) -> Rows<'a> {
        // The query's order first, then any key a row has that it lacks:
        // no value is ever left out.
        let mut columns = panel.columns.clone();
        for row in &panel.rows {
            if let Some(object) = row.as_object() {
                for key in object.keys() {
                    if !columns.contains(key) {
                        columns.push(key.clone());
                    }
                }
            }
        }
        let formats = columns
            .iter()
            .map(|c| {
                column_format(
                    c,
                    panel.rows.iter().map(|r| r.get(c).unwrap_or(&Value::Null)),
                )
            })
            .collect();
        Rows {
            panel,
            columns,
            formats,
        }
    }

    fn id(&self) -> u64 {
        self.panel.panel.id
    }

    fn len(&self) -> usize {
        self.panel.rows.len()
    }

    fn has(&self, columns: &[&str]) -> bool {
        columns
            .iter()
            .all(|c| self.columns.iter().any(|have| have == c))
    }

    fn value(&self, row: usize, column: &str) -> &'a Value {
        self.panel.rows[row].get(column).unwrap_or(&Value::Null)
    }

    fn format(&self, column: &str) -> Format {
        self.columns
            .iter()
            .position(|c| c == column)
            .map(|i| self.formats[i])
            .unwrap_or(Format::Text)
    }

    fn display(&self, row: usize, column: &str) -> String {
        display(self.value(row, column), self.format(column))
    }

    /// The attributes that let a reader find this value and read it back.
    fn cell_attrs(&self, row: usize, column: &str) -> String {
        format!(
            " data-panel=\"{}\" data-row=\"{row}\"{}{}",
            self.id(),
            attr("data-column", column),
            attr("data-value", &machine(self.value(row, column)))
        )
    }

    fn series(&self, column: &str, name: &str, color: &'static str) -> Series {
        Series {
            column: column.to_owned(),
            name: name.to_owned(),
            color,
            marks: (0..self.len())
                .map(|row| {
                    let value = self.value(row, column);
                    number(value).map(|n| Mark {
                        row,
                        value: n,
                        machine: machine(value),
                        text: self.display(row, column),
                    })
                })
                .collect(),
        }
    }

    fn text(&self, row: usize, column: &str) -> String {
        format::text(self.value(row, column))
    }
}

/// One panel as a `<section>`.
pub fn render_panel(out: &mut String, panel: &PanelRows) {
    let view = view_for(&panel.panel.title);
    let rows = Rows::new(panel);
    let _ = write!(
        out,
        "<section class=\"panel view-{}\" id=\"panel-{}\" data-panel=\"{}\"{}{} data-view=\"{}\" data-rows=\"{}\"><div class=\"panel-head\"><h2>{}</h2><span class=\"count\">{}</span></div>",
        view.name(),
        panel.panel.id,
        panel.panel.id,
        attr("data-panel-title", &panel.panel.title),
        attr("data-kind", &panel.panel.kind),
        view.name(),
        rows.len(),
        escape(&panel.panel.title),
        escape(&match rows.len() {
            1 => "1 row".to_owned(),
            n => format!("{} rows", format::group(&n.to_string())),
        }),
    );
    if rows.len() == 0 {
        let _ = write!(
            out,
            "<p class=\"empty\" data-empty=\"true\">{}</p>",
            escape(view.empty_note())
        );
    } else if !render_view(out, view, &rows) {
        if view != View::Table {
            out.push_str("<p class=\"note\">Shown as a table: the panel's columns are not the ones its chart is drawn from.</p>");
        }
        table(out, &rows, "", &[]);
    }
    out.push_str("</section>");
}

/// Draws `view`; false when the rows do not have what it needs.
fn render_view(out: &mut String, view: View, rows: &Rows) -> bool {
    match view {
        View::Kpis => kpis(out, rows),
        View::Funnel => funnel(out, rows),
        View::Forecast => forecast(out, rows),
        View::Conversion if rows.has(&["pass_rate_percent"]) => {
            table(out, rows, "", &["pass_rate_percent"]);
            true
        }
        View::Calibration if rows.has(&["crm_probability", "calibrated_probability"]) => {
            out.push_str("<p class=\"note\">The CRM's stage probability next to the share of this tenant's closed deals that passed the stage and were won, and the open value weighted both ways.</p>");
            table(
                out,
                rows,
                "",
                &["crm_probability", "calibrated_probability"],
            );
            true
        }
        View::Reps => reps(out, rows),
        View::Velocity => velocity(out, rows),
        View::Sources => sources(out, rows),
        View::OpenDeals => {
            let _ = write!(
                out,
                "<p class=\"note\">{} open deals, largest first{}.</p>",
                format::group(&rows.len().to_string()),
                if rows.len() >= 1000 {
                    " (the panel lists at most 1,000)"
                } else {
                    ""
                }
            );
            table(out, rows, "scroll", &[]);
            true
        }
        View::Conversion | View::Calibration | View::Table => false,
    }
}

/// Every row and column; `meters` are percent columns that get a bar.
fn table(out: &mut String, rows: &Rows, class: &str, meters: &[&str]) {
    let _ = write!(out, "<div class=\"table-wrap {class}\"><table><thead><tr>");
    for (column, format) in rows.columns.iter().zip(&rows.formats) {
        let _ = write!(
            out,
            "<th scope=\"col\" class=\"{}\"{}>{}</th>",
            align(*format),
            attr("data-column", column),
            escape(&format::heading(column))
        );
    }
    out.push_str("</tr></thead><tbody>");
    for row in 0..rows.len() {
        out.push_str("<tr>");
        for (column, format) in rows.columns.iter().zip(&rows.formats) {
            let value = rows.value(row, column);
            let class = if value.is_null() {
                "null"
            } else {
                align(*format)
            };
            let _ = write!(
                out,
                "<td class=\"{class}\"{}>{}",
                rows.cell_attrs(row, column),
                escape(&display(value, *format))
            );
            if meters.contains(&column.as_str())
                && let Some(n) = number(value)
            {
                let _ = write!(
                    out,
                    "<span class=\"meter\"><span style=\"width:{:.1}%\"></span></span>",
                    n.clamp(0.0, 100.0)
                );
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
}

fn align(format: Format) -> &'static str {
    match format {
        Format::Text => "text",
        _ => "num",
    }
}

/// The headline figures of the KPI panel, with a line under each.
const HEADLINES: &[(&str, &str, &str)] = &[
    ("open_pipeline_value", "Open pipeline value", ""),
    ("weighted_forecast", "Weighted forecast", ""),
    ("win_rate_percent", "Win rate", "won / closed in the range"),
    (
        "velocity_days",
        "Deal velocity",
        "average days from added to won",
    ),
];

fn kpis(out: &mut String, rows: &Rows) -> bool {
    if rows.len() != 1 {
        return false;
    }
    let tile = |out: &mut String, column: &str, label: &str, note: &str, class: &str| {
        let unit = if column.ends_with("_days") {
            "<span class=\"unit\">days</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<div class=\"tile {class}\"><div class=\"tile-label\">{}</div><div class=\"tile-value\"{}>{}</div>{unit}{}</div>",
            escape(label),
            rows.cell_attrs(0, column),
            escape(&rows.display(0, column)),
            if note.is_empty() {
                String::new()
            } else {
                format!("<div class=\"tile-note\">{}</div>", escape(note))
            }
        );
    };
    out.push_str("<div class=\"tiles headline\">");
    for (column, label, note) in HEADLINES {
        if rows.has(&[column]) {
            tile(out, column, label, note, "big");
        }
    }
    out.push_str("</div><div class=\"tiles details\">");
    for column in &rows.columns {
        if !HEADLINES.iter().any(|(c, _, _)| c == column) {
            tile(out, column, &format::heading(column), "", "small");
        }
    }
    out.push_str("</div>");
    true
}

fn funnel(out: &mut String, rows: &Rows) -> bool {
    if !rows.has(&["stage", "deals", "value"]) {
        return false;
    }
    let pipelines: std::collections::BTreeSet<String> =
        (0..rows.len()).map(|r| rows.text(r, "pipeline")).collect();
    let categories: Vec<String> = (0..rows.len())
        .map(|r| {
            if pipelines.len() > 1 {
                format!(
                    "{} \u{b7} {}",
                    rows.text(r, "pipeline"),
                    rows.text(r, "stage")
                )
            } else {
                rows.text(r, "stage")
            }
        })
        .collect();
    let series = [
        rows.series("deals", "Open deals", PALETTE[0]),
        rows.series("value", "Value", PALETTE[1]),
    ];
    out.push_str(&svg::bar_columns(
        rows.id(),
        "Open deals and their value by stage",
        &categories,
        &series,
    ));
    table(out, rows, "", &[]);
    true
}

/// `2025-03-01` -> `Mar 2025`; anything else unchanged.
fn month_label(text: &str) -> String {
    chrono::NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d")
        .map(|d| d.format("%b %Y").to_string())
        .unwrap_or_else(|_| text.to_owned())
}

fn forecast(out: &mut String, rows: &Rows) -> bool {
    if !rows.has(&["close_month", "pipeline_value", "weighted_value"]) {
        return false;
    }
    let categories: Vec<String> = (0..rows.len())
        .map(|r| month_label(&rows.text(r, "close_month")))
        .collect();
    let series = [
        rows.series("pipeline_value", "Pipeline value", PALETTE[0]),
        rows.series("weighted_value", "Weighted value", PALETTE[2]),
    ];
    out.push_str(&svg::grouped_columns(
        rows.id(),
        "Pipeline and weighted value by expected close month",
        &categories,
        &series,
    ));
    table(out, rows, "", &[]);
    true
}

fn velocity(out: &mut String, rows: &Rows) -> bool {
    if !rows.has(&["time", "velocity_days"]) {
        return false;
    }
    let categories: Vec<String> = (0..rows.len()).map(|r| rows.text(r, "time")).collect();
    let days: Option<Vec<f64>> = categories
        .iter()
        .map(|t| {
            chrono::NaiveDate::parse_from_str(t.get(..10).unwrap_or(t), "%Y-%m-%d")
                .ok()
                .map(|d| (d - chrono::NaiveDate::default()).num_days() as f64)
        })
        .collect();
    let positions = days.unwrap_or_else(|| (0..rows.len()).map(|i| i as f64).collect());
    let line = rows.series("velocity_days", "Average days to win", PALETTE[3]);
    let bars = rows
        .has(&["won_deals"])
        .then(|| rows.series("won_deals", "Deals won", PALETTE[5]));
    out.push_str(&svg::line_chart(
        rows.id(),
        "Average days to win and deals won, by week won",
        &categories,
        &positions,
        &line,
        bars.as_ref(),
    ));
    table(out, rows, "", &[]);
    true
}

fn sources(out: &mut String, rows: &Rows) -> bool {
    if !rows.has(&["channel", "won_deals", "total_value"]) {
        return false;
    }
    let categories: Vec<String> = (0..rows.len()).map(|r| rows.text(r, "channel")).collect();
    let series = [
        rows.series("won_deals", "Deals won", PALETTE[0]),
        rows.series("total_value", "Total value", PALETTE[1]),
    ];
    out.push_str(&svg::bar_columns(
        rows.id(),
        "Won deals and their value by marketing source",
        &categories,
        &series,
    ));
    table(out, rows, "", &[]);
    true
}

fn reps(out: &mut String, rows: &Rows) -> bool {
    let kinds = [
        ("calls", "Calls"),
        ("emails", "Emails"),
        ("meetings", "Meetings"),
        ("other", "Other"),
    ];
    if !rows.has(&["calls", "emails", "meetings", "other"]) {
        return false;
    }
    let categories: Vec<String> = (0..rows.len())
        .map(|r| {
            let name = rows.text(r, "rep");
            if rows.value(r, "rep").is_null() || name.is_empty() {
                format!("User {}", rows.text(r, "user_id"))
            } else {
                name
            }
        })
        .collect();
    let series: Vec<Series> = kinds
        .iter()
        .enumerate()
        .map(|(i, (column, name))| rows.series(column, name, PALETTE[i]))
        .collect();
    out.push_str(&svg::stacked_bars(
        rows.id(),
        "Activities done per rep, by type",
        &categories,
        &series,
    ));
    table(out, rows, "", &[]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tributary_clickhouse::dashboard::Panel;

    fn panel(title: &str, kind: &str, columns: &[&str], rows: Vec<Value>) -> PanelRows {
        PanelRows {
            panel: Panel {
                id: 42,
                title: title.into(),
                kind: kind.into(),
                sql: String::new(),
            },
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows,
        }
    }

    fn render(p: &PanelRows) -> String {
        let mut out = String::new();
        render_panel(&mut out, p);
        out
    }

    #[test]
    fn panels_are_chosen_by_title_and_unknown_ones_are_tables() {
        assert_eq!(view_for("Pipeline KPIs"), View::Kpis);
        assert_eq!(
            view_for("Pipeline funnel: open deals by stage"),
            View::Funnel
        );
        assert_eq!(
            view_for("Win probability: CRM vs. calibrated from this tenant's history"),
            View::Calibration
        );
        assert_eq!(view_for("Churn by cohort"), View::Table);
    }

    #[test]
    fn an_unknown_panel_is_a_table_of_every_row_and_column() {
        let p = panel(
            "Churn <by> cohort",
            "heatmap",
            &["cohort", "customers", "churn_percent"],
            vec![
                json!({"cohort": "2025-01", "customers": "1200", "churn_percent": 4.25, "extra": null}),
                json!({"cohort": "2025-02", "customers": 980, "churn_percent": null}),
            ],
        );
        let html = render(&p);
        assert!(html.contains("data-view=\"table\""), "{html}");
        assert!(html.contains("<h2>Churn &lt;by&gt; cohort</h2>"));
        assert!(!html.contains("<svg"));
        assert!(
            !html.contains("class=\"note\""),
            "no 'shown as a table' note for an unknown panel"
        );
        // Every cell, the key only the first row has included, in the query's order.
        assert_eq!(html.matches("<td ").count(), 8);
        assert!(
            html.contains(
                "<th scope=\"col\" class=\"num\" data-column=\"customers\">Customers</th>"
            )
        );
        assert!(html.find("data-column=\"cohort\"") < html.find("data-column=\"extra\""));
        assert!(html.contains(
            "<td class=\"num\" data-panel=\"42\" data-row=\"0\" data-column=\"customers\" data-value=\"&quot;1200&quot;\">1,200</td>"
        ));
        assert!(html.contains(
            "<td class=\"num\" data-panel=\"42\" data-row=\"0\" data-column=\"churn_percent\" data-value=\"4.25\">4.3 %</td>"
        ), "{html}");
        assert!(html.contains(
            "<td class=\"null\" data-panel=\"42\" data-row=\"1\" data-column=\"churn_percent\" data-value=\"null\">\u{2014}</td>"
        ));
    }

    #[test]
    fn a_known_panel_whose_columns_changed_falls_back_to_a_table() {
        let p = panel(
            "Pipeline funnel: open deals by stage",
            "barchart",
            &["stage", "count"],
            vec![json!({"stage": "Lead In", "count": 3})],
        );
        let html = render(&p);
        assert!(html.contains("Shown as a table"));
        assert!(!html.contains("<svg"));
        assert!(html.contains("data-column=\"count\" data-value=\"3\">3</td>"));
    }

    #[test]
    fn empty_panels_say_so_and_calibration_says_why() {
        let html = render(&panel(
            "Win probability: CRM vs. calibrated from this tenant's history",
            "table",
            &[],
            vec![],
        ));
        assert!(html.contains("data-empty=\"true\""));
        assert!(html.contains("at least 50 closed"));
        let html = render(&panel("Something new", "table", &[], vec![]));
        assert!(html.contains("No data"));
    }

    #[test]
    fn the_funnel_has_one_bar_per_row_and_series_in_row_order() {
        let p = panel(
            "Pipeline funnel: open deals by stage",
            "barchart",
            &["pipeline", "stage", "stage_order", "deals", "value"],
            vec![
                json!({"pipeline": "Sales", "stage": "Lead In", "stage_order": 1, "deals": 5, "value": 2500.0}),
                json!({"pipeline": "Sales", "stage": "Won & \"done\"", "stage_order": 2, "deals": "2", "value": 900.5}),
            ],
        );
        let html = render(&p);
        assert_eq!(html.matches("data-series=\"deals\"").count(), 2);
        assert_eq!(html.matches("data-series=\"value\"").count(), 2);
        let first = html.find("data-row=\"0\" data-series=\"deals\"").unwrap();
        let second = html.find("data-row=\"1\" data-series=\"deals\"").unwrap();
        assert!(first < second);
        assert!(html.contains("Won &amp; &quot;done&quot;"));
        assert!(!html.contains("Won & \"done\""));
    }

    #[test]
    fn kpis_are_tiles_carrying_every_value() {
        let p = panel(
            "Pipeline KPIs",
            "stat",
            &[
                "open_pipeline_value",
                "won_deals",
                "win_rate_percent",
                "velocity_days",
            ],
            vec![
                json!({"open_pipeline_value": 1234567.5, "won_deals": 12, "win_rate_percent": 37.5, "velocity_days": 21.25}),
            ],
        );
        let html = render(&p);
        assert_eq!(html.matches("class=\"tile-value\"").count(), 4);
        assert!(html.contains(
            "data-column=\"open_pipeline_value\" data-value=\"1234567.5\">1,234,567.50</div>"
        ));
        assert!(html.contains("data-value=\"37.5\">37.5 %</div>"));
        assert!(
            html.contains(">21.3</div><span class=\"unit\">days</span>"),
            "{html}"
        );
    }
}
