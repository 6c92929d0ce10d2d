//! One renderer per known panel, chosen by the panel's title; a panel this
//! code does not know (a future one), or a known one whose columns are not
//! the ones its chart needs, is shown as a table of every row and column.
//!
//! Money is in the tenant's home currency ([`Money`]): the panels that sum
//! amounts say which, and the deals in a currency without a rate (counted,
//! never summed) are shown apart.

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
    Currencies,
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
    ("Currencies", View::Currencies),
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
            View::Currencies => "currencies",
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
            View::Currencies => "No open deals, and no deals won in this time range.",
            _ => "No data for this tenant, pipeline and time range.",
        }
    }

    /// The columns of this view that are sums in the home currency.
    fn home_columns(self) -> &'static [&'static str] {
        match self {
            View::Kpis => &["open_pipeline_value", "weighted_forecast"],
            View::Funnel => &["value"],
            View::Forecast => &["pipeline_value", "weighted_value"],
            View::Calibration => &["open_value", "weighted_crm", "weighted_calibrated"],
            View::Sources => &["total_value", "average_value"],
            View::OpenDeals => &["home_value"],
            View::Currencies => &["open_home_value", "won_home_value"],
            _ => &[],
        }
    }

    /// Views listing deals or currencies one per row, with a `converted`
    /// flag: rows without a rate are listed apart.
    fn lists_conversion(self) -> bool {
        matches!(self, View::OpenDeals | View::Currencies)
    }
}

/// What the panels say about money, read from the panels themselves: the
/// tenant's home currency (the KPI row's `home_currency`), how many open
/// deals are in a currency without a rate (its `open_deals_without_rate`),
/// and which currencies have no rate (the Currencies panel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Money {
    /// `None` when no deal could be converted (the KPI row says `""`).
    pub home: Option<String>,
    pub open_without_rate: u64,
    /// Currencies without a rate that open or won deals are in.
    pub without_rate: Vec<String>,
    /// Those of them that open deals are in.
    pub open_without_rate_currencies: Vec<String>,
    /// The Currencies panel, to point at.
    pub currencies_panel: Option<u64>,
}

impl Money {
    pub fn of(panels: &[PanelRows]) -> Money {
        let mut money = Money::default();
        for p in panels {
            match view_for(&p.panel.title) {
                View::Kpis if p.rows.len() == 1 => {
                    let row = &p.rows[0];
                    money.home = row
                        .get("home_currency")
                        .and_then(Value::as_str)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned);
                    money.open_without_rate = row
                        .get("open_deals_without_rate")
                        .and_then(number)
                        .map_or(0, |n| n.max(0.0) as u64);
                }
                View::Currencies if p.columns.iter().any(|c| c == "converted") => {
                    money.currencies_panel = Some(p.panel.id);
                    for row in &p.rows {
                        if row.get("converted").and_then(number) != Some(0.0) {
                            continue;
                        }
                        let currency = format::text(row.get("currency").unwrap_or(&Value::Null));
                        if row.get("open_deals").and_then(number).unwrap_or(0.0) > 0.0 {
                            money.open_without_rate_currencies.push(currency.clone());
                        }
                        money.without_rate.push(currency);
                    }
                }
                _ => {}
            }
        }
        money
    }

    /// `EUR`, or words for it when it is not known.
    fn home_name(&self) -> &str {
        self.home.as_deref().unwrap_or("the home currency")
    }

    /// A link to the Currencies panel, or its name when it is not shown.
    fn currencies_link(&self) -> String {
        match self.currencies_panel {
            Some(id) => format!("<a href=\"#panel-{id}\">Currencies</a>"),
            None => "Currencies".to_owned(),
        }
    }
}

/// `USD, CHF and BRL`, escaped.
fn listing(items: &[String]) -> String {
    let escaped: Vec<String> = items.iter().map(|i| escape(i)).collect();
    match escaped.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A panel's rows with what rendering needs: the columns in order, how each
/// is formatted, how the panel is drawn and what it is told about money.
struct Rows<'a> {
    panel: &'a PanelRows,
    view: View,
    money: &'a Money,
    columns: Vec<String>,
    formats: Vec<Format>,
}

impl<'a> Rows<'a> {
    fn new(panel: &'a PanelRows, view: View, money: &'a Money) -> Rows<'a> {
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
            view,
            money,
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

    /// A sum in the home currency.
    fn is_home(&self, column: &str) -> bool {
        self.view.home_columns().contains(&column)
    }

    /// What a value of `column` is counted in: days, or the home currency.
    fn unit(&self, column: &str) -> Option<&str> {
        if column.ends_with("_days") {
            Some("days")
        } else if self.is_home(column) {
            self.money.home.as_deref()
        } else {
            None
        }
    }

    /// `name`, followed by the home currency when `column` is in it:
    /// `Value (EUR)`.
    fn named(&self, name: &str, column: &str) -> String {
        match (self.is_home(column), &self.money.home) {
            (true, Some(home)) => format!("{name} ({home})"),
            _ => name.to_owned(),
        }
    }

    /// A column's heading; sums in the home currency say which it is
    /// (`home_value` -> `Value in EUR`), and so does the rate into it.
    fn heading(&self, column: &str) -> String {
        match &self.money.home {
            Some(home) if self.is_home(column) && column.contains("home") => {
                let rest: Vec<&str> = column.split('_').filter(|w| *w != "home").collect();
                format!("{} in {home}", format::heading(&rest.join("_")))
            }
            Some(home) if self.view == View::Currencies && column == "rate" => {
                format!("Rate to {home}")
            }
            _ => self.named(&format::heading(column), column),
        }
    }

    /// A row of a deal or currency without a rate (its `converted` is 0).
    fn without_rate(&self, row: usize) -> bool {
        self.view.lists_conversion() && number(self.value(row, "converted")) == Some(0.0)
    }

    /// A table cell as people read it, and whether it shows no value:
    /// `converted` says `yes` or `no rate`, and a row without a rate has no
    /// rate and no home value (the query's 0 there means "not converted",
    /// not "worth nothing"; the machine value keeps it).
    fn cell_text(&self, row: usize, column: &str) -> (String, bool) {
        let value = self.value(row, column);
        if self.view.lists_conversion() && !value.is_null() {
            if column == "converted" {
                let text = if self.without_rate(row) {
                    "no rate"
                } else {
                    "yes"
                };
                return (text.to_owned(), false);
            }
            if self.without_rate(row) && (column == "rate" || self.is_home(column)) {
                return (format::NULL.to_owned(), true);
            }
        }
        (display(value, self.format(column)), value.is_null())
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
            name: self.named(name, column),
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
pub fn render_panel(out: &mut String, panel: &PanelRows, money: &Money) {
    let view = view_for(&panel.panel.title);
    let rows = Rows::new(panel, view, money);
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
        table(out, &rows, &Table::default());
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
            table(
                out,
                rows,
                &Table {
                    meters: &["pass_rate_percent"],
                    ..Table::default()
                },
            );
            true
        }
        View::Calibration if rows.has(&["crm_probability", "calibrated_probability"]) => {
            let _ = write!(
                out,
                "<p class=\"note\">The CRM's stage probability next to the share of this tenant's closed deals that passed the stage and were won, and the open value ({}) weighted both ways.</p>",
                escape(rows.money.home_name())
            );
            counted_not_valued(out, rows);
            table(
                out,
                rows,
                &Table {
                    meters: &["crm_probability", "calibrated_probability"],
                    ..Table::default()
                },
            );
            true
        }
        View::Reps => reps(out, rows),
        View::Velocity => velocity(out, rows),
        View::Sources => sources(out, rows),
        View::OpenDeals => {
            let _ = write!(
                out,
                "<p class=\"note\">{} open deals, largest value in {} first{}, each with its own amount and currency. Deals in a currency without a rate come last, apart: they are in no total.</p>",
                format::group(&rows.len().to_string()),
                escape(rows.money.home_name()),
                if rows.len() >= 1000 {
                    " (the panel lists at most 1,000)"
                } else {
                    ""
                }
            );
            table(
                out,
                rows,
                &Table {
                    class: "scroll",
                    apart: Some("In a currency without a rate: not converted, in no total"),
                    ..Table::default()
                },
            );
            true
        }
        View::Currencies if rows.has(&["currency", "converted"]) => {
            let _ = write!(
                out,
                "<p class=\"note\">The rates the figures in {home} use, and each currency's deals: amounts are summed only within their own currency, values in {home} only where there is a rate. A currency without a rate is listed apart and is in no total.</p>",
                home = escape(rows.money.home_name())
            );
            table(
                out,
                rows,
                &Table {
                    apart: Some("Without a rate: never converted, never summed"),
                    ..Table::default()
                },
            );
            true
        }
        View::Conversion | View::Calibration | View::Currencies | View::Table => false,
    }
}

/// Under a panel whose deal counts include deals in a currency without a
/// rate but whose values do not: says so.
fn counted_not_valued(out: &mut String, rows: &Rows) {
    let money = rows.money;
    if money.without_rate.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<p class=\"note\" data-note=\"without-rate\">Deals in {} (no rate into {}) are counted here but are in no value: see {}.</p>",
        listing(&money.without_rate),
        escape(money.home_name()),
        money.currencies_link()
    );
}

/// How a table is drawn.
#[derive(Default)]
struct Table<'s> {
    /// Extra classes of its wrapper (`scroll`).
    class: &'s str,
    /// Percent columns that get a bar.
    meters: &'s [&'s str],
    /// Rows without a rate go to a group of their own under this label.
    apart: Option<&'s str>,
}

/// Every row and column.
fn table(out: &mut String, rows: &Rows, how: &Table) {
    let _ = write!(
        out,
        "<div class=\"table-wrap {}\"><table><thead><tr>",
        how.class
    );
    for (column, format) in rows.columns.iter().zip(&rows.formats) {
        let _ = write!(
            out,
            "<th scope=\"col\" class=\"{}\"{}>{}</th>",
            align(*format),
            attr("data-column", column),
            escape(&rows.heading(column))
        );
    }
    out.push_str("</tr></thead>");
    let (kept, apart): (Vec<usize>, Vec<usize>) =
        (0..rows.len()).partition(|row| how.apart.is_none() || !rows.without_rate(*row));
    let row = |out: &mut String, row: usize| {
        out.push_str("<tr>");
        for (column, format) in rows.columns.iter().zip(&rows.formats) {
            let value = rows.value(row, column);
            let (text, empty) = rows.cell_text(row, column);
            let class = if empty { "null" } else { align(*format) };
            let _ = write!(
                out,
                "<td class=\"{class}\"{}>{}",
                rows.cell_attrs(row, column),
                escape(&text)
            );
            if how.meters.contains(&column.as_str())
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
    };
    out.push_str("<tbody>");
    for r in kept {
        row(out, r);
    }
    out.push_str("</tbody>");
    if let (Some(label), false) = (how.apart, apart.is_empty()) {
        let _ = write!(
            out,
            "<tbody class=\"apart\" data-apart=\"without-rate\"><tr class=\"apart-head\"><th scope=\"rowgroup\" colspan=\"{}\">{}</th></tr>",
            rows.columns.len(),
            escape(label)
        );
        for r in apart {
            row(out, r);
        }
        out.push_str("</tbody>");
    }
    out.push_str("</table></div>");
}

fn align(format: Format) -> &'static str {
    match format {
        Format::Text => "text",
        _ => "num",
    }
}

/// The headline figures of the KPI panel, with a line under each.
const HEADLINES: &[(&str, &str, &str)] = &[
    (
        "open_pipeline_value",
        "Open pipeline value",
        "open deals, converted at the rates in Currencies",
    ),
    (
        "weighted_forecast",
        "Weighted forecast",
        "open value \u{d7} win probability",
    ),
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
        let unit = rows
            .unit(column)
            .map(|u| format!("<span class=\"unit\">{}</span>", escape(u)))
            .unwrap_or_default();
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
    out.push_str("</div>");
    let money = rows.money;
    if money.open_without_rate > 0 {
        let n = money.open_without_rate;
        let (deals, are) = if n == 1 {
            ("open deal is", "is")
        } else {
            ("open deals are", "are")
        };
        let which = if money.open_without_rate_currencies.is_empty() {
            String::new()
        } else {
            format!(" ({})", listing(&money.open_without_rate_currencies))
        };
        let _ = write!(
            out,
            "<p class=\"warning\" data-note=\"open-without-rate\" data-value=\"{n}\">{} {deals} in a currency without a rate{which} and {are} not in these totals: see {}.</p>",
            format::group(&n.to_string()),
            money.currencies_link()
        );
    }
    out.push_str("<div class=\"tiles details\">");
    for column in &rows.columns {
        if !HEADLINES.iter().any(|(c, _, _)| c == column) {
            let class = if column == "open_deals_without_rate" && money.open_without_rate > 0 {
                "small attention"
            } else {
                "small"
            };
            tile(out, column, &format::heading(column), "", class);
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
        &rows.named("Open deals and their value by stage", "value"),
        &categories,
        &series,
    ));
    counted_not_valued(out, rows);
    table(out, rows, &Table::default());
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
        &rows.named(
            "Pipeline and weighted value by expected close month",
            "pipeline_value",
        ),
        &categories,
        &series,
    ));
    counted_not_valued(out, rows);
    table(out, rows, &Table::default());
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
    table(out, rows, &Table::default());
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
        &rows.named(
            "Won deals and their value by marketing source",
            "total_value",
        ),
        &categories,
        &series,
    ));
    counted_not_valued(out, rows);
    table(out, rows, &Table::default());
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
    table(out, rows, &Table::default());
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
        render_with(p, &Money::default())
    }

    fn render_with(p: &PanelRows, money: &Money) -> String {
        let mut out = String::new();
        render_panel(&mut out, p, money);
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

    fn kpi_panel(without_rate: Value, home: &str) -> PanelRows {
        panel(
            "Pipeline KPIs",
            "stat",
            &[
                "open_pipeline_value",
                "weighted_forecast",
                "win_rate_percent",
                "open_deals_without_rate",
                "home_currency",
            ],
            vec![json!({
                "open_pipeline_value": 1234567.5,
                "weighted_forecast": 500000,
                "win_rate_percent": 37.5,
                "open_deals_without_rate": without_rate,
                "home_currency": home,
            })],
        )
    }

    fn currencies_panel() -> PanelRows {
        let mut p = panel(
            "Currencies",
            "table",
            &[
                "currency",
                "rate",
                "converted",
                "open_deals",
                "open_amount",
                "open_home_value",
                "won_deals",
                "won_amount",
                "won_home_value",
            ],
            vec![
                json!({"currency": "EUR", "rate": 1, "converted": 1, "open_deals": "4", "open_amount": 4000, "open_home_value": 4000, "won_deals": "1", "won_amount": 100, "won_home_value": 100}),
                json!({"currency": "USD", "rate": 0.875, "converted": 1, "open_deals": "2", "open_amount": 1000, "open_home_value": 875, "won_deals": "0", "won_amount": 0, "won_home_value": 0}),
                json!({"currency": "CHF", "rate": 0, "converted": 0, "open_deals": "3", "open_amount": 1500, "open_home_value": 0, "won_deals": "1", "won_amount": 700, "won_home_value": 0}),
                json!({"currency": "JPY", "rate": 0, "converted": 0, "open_deals": "0", "open_amount": 0, "open_home_value": 0, "won_deals": "2", "won_amount": 90000, "won_home_value": 0}),
            ],
        );
        p.panel.id = 10;
        p
    }

    #[test]
    fn money_is_read_from_the_kpi_row_and_the_currencies_panel() {
        let money = Money::of(&[kpi_panel(json!("3"), "EUR"), currencies_panel()]);
        assert_eq!(
            money,
            Money {
                home: Some("EUR".into()),
                open_without_rate: 3,
                without_rate: vec!["CHF".into(), "JPY".into()],
                open_without_rate_currencies: vec!["CHF".into()],
                currencies_panel: Some(10),
            }
        );
        // No deal converted: the query's home currency is empty, and none is claimed.
        let money = Money::of(&[kpi_panel(json!(0), "")]);
        assert_eq!(money, Money::default());
    }

    #[test]
    fn kpi_tiles_say_the_home_currency_and_the_open_deals_left_out() {
        let kpis = kpi_panel(json!("3"), "EUR");
        let html = render_with(&kpis, &Money::of(&[kpis.clone(), currencies_panel()]));
        assert!(
            html.contains("data-column=\"open_pipeline_value\" data-value=\"1234567.5\">1,234,567.50</div><span class=\"unit\">EUR</span>"),
            "{html}"
        );
        assert!(html.contains(
            "data-column=\"weighted_forecast\" data-value=\"500000\">500,000</div><span class=\"unit\">EUR</span>"
        ));
        assert!(html.contains("data-value=\"37.5\">37.5 %</div><div class=\"tile-note\">"));
        assert!(
            html.contains("data-column=\"home_currency\" data-value=\"&quot;EUR&quot;\">EUR</div>")
        );
        // Every value is a tile, the count of deals left out and the currency too.
        assert_eq!(html.matches("class=\"tile-value\"").count(), 5);
        assert!(html.contains(
            "<p class=\"warning\" data-note=\"open-without-rate\" data-value=\"3\">3 open deals are in a currency without a rate (CHF) and are not in these totals: see <a href=\"#panel-10\">Currencies</a>.</p>"
        ), "{html}");
        // Right under the headline figures.
        assert!(html.find("data-note=\"open-without-rate\"") < html.find("tiles details"));

        let kpis = kpi_panel(json!(0), "EUR");
        let html = render_with(&kpis, &Money::of(std::slice::from_ref(&kpis)));
        assert!(!html.contains("data-note"), "{html}");
        assert!(html.contains("<span class=\"unit\">EUR</span>"));
        let html = render(&kpi_panel(json!(1), "EUR"));
        assert!(
            !html.contains("<span class=\"unit\">EUR</span>"),
            "a currency is only said when the page knows it"
        );
    }

    #[test]
    fn currencies_show_their_rates_and_those_without_one_apart() {
        let p = currencies_panel();
        let kpis = kpi_panel(json!(3), "EUR");
        let html = render_with(&p, &Money::of(&[kpis, p.clone()]));
        assert!(html.contains("data-view=\"currencies\""));
        assert!(!html.contains("<svg"));
        assert!(
            html.contains("data-column=\"rate\">Rate to EUR</th>"),
            "{html}"
        );
        assert!(html.contains("data-column=\"open_home_value\">Open value in EUR</th>"));
        assert!(html.contains("data-column=\"won_home_value\">Won value in EUR</th>"));
        assert!(html.contains("data-column=\"open_amount\">Open amount</th>"));
        assert!(html.contains(
            "<td class=\"num\" data-panel=\"10\" data-row=\"1\" data-column=\"rate\" data-value=\"0.875\">0.875</td>"
        ));
        assert!(
            html.contains("data-row=\"1\" data-column=\"converted\" data-value=\"1\">yes</td>")
        );
        // Without a rate: apart, saying so, with no rate and no home value
        // (the query's 0 kept as the machine value).
        let apart = html
            .find("<tbody class=\"apart\" data-apart=\"without-rate\">")
            .expect("a group apart");
        for row in ["0", "1"] {
            let at = html
                .find(&format!("data-row=\"{row}\" data-column=\"currency\""))
                .unwrap();
            assert!(at < apart, "a converted currency is not apart");
        }
        for row in ["2", "3"] {
            let at = html
                .find(&format!("data-row=\"{row}\" data-column=\"currency\""))
                .unwrap();
            assert!(at > apart, "a currency without a rate is apart");
        }
        assert!(
            html[apart..]
                .contains("colspan=\"9\">Without a rate: never converted, never summed</th>")
        );
        assert!(html.contains(
            "<td class=\"null\" data-panel=\"10\" data-row=\"2\" data-column=\"rate\" data-value=\"0\">\u{2014}</td>"
        ));
        assert!(html.contains(
            "<td class=\"null\" data-panel=\"10\" data-row=\"2\" data-column=\"open_home_value\" data-value=\"0\">\u{2014}</td>"
        ));
        assert!(
            html.contains("data-row=\"2\" data-column=\"converted\" data-value=\"0\">no rate</td>")
        );
        // Its own amounts stay, in its own currency.
        assert!(
            html.contains(
                "data-row=\"2\" data-column=\"open_amount\" data-value=\"1500\">1,500</td>"
            )
        );
        // Every value is on the page.
        assert_eq!(html.matches("<td ").count(), 4 * 9);
    }

    #[test]
    fn open_deals_show_their_own_amount_and_the_home_value() {
        let p = panel(
            "Open deals",
            "table",
            &[
                "deal_id",
                "title",
                "amount",
                "currency",
                "home_value",
                "converted",
            ],
            vec![
                json!({"deal_id": "7", "title": "Big", "amount": 1000, "currency": "USD", "home_value": 875, "converted": 1}),
                json!({"deal_id": "8", "title": "Swiss", "amount": 2500.5, "currency": "CHF", "home_value": 0, "converted": 0}),
                json!({"deal_id": "9", "title": "Small", "amount": 10, "currency": "EUR", "home_value": 10, "converted": 1}),
            ],
        );
        let money = Money {
            home: Some("EUR".into()),
            ..Money::default()
        };
        let html = render_with(&p, &money);
        assert!(
            html.contains("data-column=\"home_value\">Value in EUR</th>"),
            "{html}"
        );
        assert!(html.contains("data-column=\"amount\">Amount</th>"));
        assert!(html.contains("data-row=\"0\" data-column=\"amount\" data-value=\"1000\">1,000.00</td><td class=\"text\" data-panel=\"42\" data-row=\"0\" data-column=\"currency\" data-value=\"&quot;USD&quot;\">USD</td>"));
        assert!(
            html.contains("data-row=\"0\" data-column=\"home_value\" data-value=\"875\">875</td>")
        );
        assert!(
            html.contains(
                "data-row=\"1\" data-column=\"home_value\" data-value=\"0\">\u{2014}</td>"
            )
        );
        assert!(
            html.contains("data-row=\"1\" data-column=\"converted\" data-value=\"0\">no rate</td>")
        );
        // The deal without a rate is apart, after the others, whatever the order.
        let apart = html
            .find("data-apart=\"without-rate\"")
            .expect("a group apart");
        assert!(html.find("data-row=\"2\" data-column=\"title\"").unwrap() < apart);
        assert!(html.find("data-row=\"1\" data-column=\"title\"").unwrap() > apart);
        assert!(html[apart..].contains("not converted, in no total"));
    }

    #[test]
    fn sums_are_labelled_with_the_home_currency() {
        let funnel = panel(
            "Pipeline funnel: open deals by stage",
            "barchart",
            &["pipeline", "stage", "stage_order", "deals", "value"],
            vec![
                json!({"pipeline": "Sales", "stage": "Lead In", "stage_order": 1, "deals": 5, "value": 2500.0}),
            ],
        );
        let currencies = currencies_panel();
        let money = Money::of(&[kpi_panel(json!(3), "EUR"), currencies]);
        let html = render_with(&funnel, &money);
        assert!(
            html.contains("data-column=\"value\">Value (EUR)</th>"),
            "{html}"
        );
        assert!(
            html.contains(">Value (EUR)</text>"),
            "the chart's series says it"
        );
        assert!(html.contains("data-column=\"deals\">Deals</th>"));
        assert!(html.contains(
            "<p class=\"note\" data-note=\"without-rate\">Deals in CHF and JPY (no rate into EUR) are counted here but are in no value: see <a href=\"#panel-10\">Currencies</a>.</p>"
        ), "{html}");

        let sources = panel(
            "Won deals by marketing source",
            "table",
            &["channel", "won_deals", "total_value", "average_value"],
            vec![
                json!({"channel": "Web", "won_deals": 2, "total_value": 300.5, "average_value": 150.25}),
            ],
        );
        let html = render_with(&sources, &money);
        assert!(html.contains("data-column=\"total_value\">Total value (EUR)</th>"));
        assert!(html.contains("data-column=\"average_value\">Average value (EUR)</th>"));
        assert!(html.contains("data-column=\"won_deals\">Won deals</th>"));

        let forecast = panel(
            "Forecast by expected close month",
            "barchart",
            &["close_month", "deals", "pipeline_value", "weighted_value"],
            vec![
                json!({"close_month": "2025-03-01", "deals": 2, "pipeline_value": 100.5, "weighted_value": 50.25}),
            ],
        );
        let html = render_with(&forecast, &money);
        assert!(html.contains("data-column=\"pipeline_value\">Pipeline value (EUR)</th>"));
        assert!(html.contains("data-column=\"weighted_value\">Weighted value (EUR)</th>"));

        let calibration = panel(
            "Win probability: CRM vs. calibrated from this tenant's history",
            "table",
            &[
                "stage_name",
                "crm_probability",
                "calibrated_probability",
                "open_value",
                "weighted_crm",
                "weighted_calibrated",
            ],
            vec![
                json!({"stage_name": "Lead In", "crm_probability": 10, "calibrated_probability": 12.5, "open_value": 1000, "weighted_crm": 100, "weighted_calibrated": 125}),
            ],
        );
        let html = render_with(&calibration, &money);
        for heading in [
            "Open value (EUR)",
            "Weighted CRM (EUR)",
            "Weighted calibrated (EUR)",
        ] {
            assert!(
                html.contains(&format!(">{heading}</th>")),
                "{heading}: {html}"
            );
        }
        // An unknown panel's columns are its own: nothing is claimed about them.
        let html = render_with(
            &panel("Churn", "table", &["value"], vec![json!({"value": 1.5})]),
            &money,
        );
        assert!(html.contains("data-column=\"value\">Value</th>"));
        assert!(!html.contains("data-note"));
    }
}
