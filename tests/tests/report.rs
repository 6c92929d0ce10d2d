//! The HTML report of the "Sales operations" dashboard, end to end: the
//! generated sales world loaded through the activator's load path, every
//! panel run with `run_panels`, the page rendered and opened in headless
//! Chromium (Debian's `chromium`, installed by deploy/local/up.sh). Every
//! value of every panel must be in the rendered DOM with its exact value, the
//! charts must have a mark per row, the page must paint, and it must load
//! nothing from outside.
#![cfg(feature = "clickhouse-tests")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary_clickhouse::ClickHouseSettings;
use tributary_clickhouse::dashboard::{self, Panel, PanelRows, Scope};
use tributary_report::{Comparison, Fact, Header, Report};
use tributary_tests::activator::load_in_process;
use tributary_tests::clickhouse::{TestDatabase, shared_url};
use tributary_world::{DEFAULT_START as START, World, WorldConfig, differences, same_value};

const SEED: u64 = 20_250_106;
const DAY: i64 = 86_400;
const CHROMIUM: &str = "/usr/bin/chromium";
const TITLE: &str = "Sales operations \u{2014} \"weekly\" <review> & co";

/// A panel no renderer knows, with text that must stay text.
fn future_panel() -> PanelRows {
    PanelRows {
        panel: Panel {
            id: 999,
            title: "Churn <by> cohort & \"segment\"".into(),
            kind: "heatmap".into(),
            sql: String::new(),
        },
        columns: vec!["cohort".into(), "note".into(), "customers".into()],
        rows: vec![
            json!({"cohort": "2025-01", "note": "<script>document.title='owned'</script>", "customers": "1200"}),
            json!({"cohort": "2025-02", "note": "O'Brien & \"Sons\" <b>bold</b>", "customers": null}),
        ],
    }
}

// ---------------------------------------------------------------- the DOM

/// A start tag of the serialized DOM, and the text right after it.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
}

impl Element {
    fn get(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

fn decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every start tag of `html` (as Chromium serializes a DOM: attribute values
/// double-quoted), with its attributes and the text up to the next tag.
fn elements(html: &str) -> Vec<Element> {
    let bytes = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = html[i..].find('<') {
        i += at;
        if html[i..].starts_with("<!--") {
            i += html[i..].find("-->").map_or(html.len() - i, |e| e + 3);
            continue;
        }
        if html[i..].starts_with("</") || html[i..].starts_with("<!") {
            i += html[i..].find('>').map_or(html.len() - i, |e| e + 1);
            continue;
        }
        i += 1;
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
            i += 1;
        }
        let name = html[start..i].to_ascii_lowercase();
        let mut attrs = BTreeMap::new();
        loop {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b'>' {
                i += 1;
                break;
            }
            if bytes[i] == b'/' {
                i += 1;
                continue;
            }
            let a = i;
            while i < bytes.len()
                && !matches!(bytes[i], b'=' | b'>' | b'/')
                && !bytes[i].is_ascii_whitespace()
            {
                i += 1;
            }
            let attr = html[a..i].to_ascii_lowercase();
            let mut value = String::new();
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                    let quote = bytes[i] as char;
                    let end = html[i + 1..].find(quote).map_or(html.len(), |e| i + 1 + e);
                    value = decode(&html[i + 1..end]);
                    i = end + 1;
                } else {
                    let v = i;
                    while i < bytes.len() && bytes[i] != b'>' && !bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    value = decode(&html[v..i]);
                }
            }
            attrs.insert(attr, value);
        }
        let end = html[i.min(html.len())..]
            .find('<')
            .map_or(html.len(), |e| i + e);
        let text = decode(&html[i.min(html.len())..end]);
        out.push(Element { name, attrs, text });
    }
    out
}

// ---------------------------------------------------------------- Chromium

/// Runs headless Chromium on `page` with a fresh profile; the extra
/// arguments say what to produce. Gives up after two minutes.
fn chromium(dir: &Path, page: &Path, what: &[String], stdout: &Path) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: deploy/local/up.sh installs Debian's chromium"
    );
    let profile = tempfile::tempdir_in(dir).expect("a profile folder");
    let mut command = Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Nothing outside resolves: the page must work offline.
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(what)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).expect("stdout file"))
        .stderr(std::fs::File::create(dir.join("chromium.err")).expect("stderr file"));
    let mut child = command.spawn().expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took over two minutes on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium failed ({status}):\n{}",
        std::fs::read_to_string(dir.join("chromium.err")).unwrap_or_default()
    );
}

/// The DOM Chromium built from `page`.
fn rendered_dom(dir: &Path, page: &Path) -> String {
    let out = dir.join("dom.html");
    chromium(dir, page, &["--dump-dom".into()], &out);
    std::fs::read_to_string(out).expect("the dumped DOM")
}

/// A 1400x3000 screenshot of `page`; asserts it is a PNG that is not blank.
fn screenshot(dir: &Path, page: &Path, png: &Path) {
    chromium(
        dir,
        page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1400,3000".into(),
            "--hide-scrollbars".into(),
        ],
        &dir.join("screenshot.out"),
    );
    let bytes = std::fs::read(png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("width"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("height"));
    assert_eq!((width, height), (1400, 3000));
    // A blank page of that size compresses to a few kilobytes; text and
    // charts make it far larger.
    assert!(
        bytes.len() > 60_000,
        "the screenshot is {} bytes: did the page paint?",
        bytes.len()
    );
}

// ---------------------------------------------------------------- checks

fn as_number(text: &str) -> Option<f64> {
    let cleaned: String = text
        .trim()
        .trim_end_matches('%')
        .chars()
        .filter(|c| *c != ',' && !c.is_whitespace())
        .collect();
    if cleaned.is_empty()
        || cleaned.contains(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
    {
        return None;
    }
    if cleaned[1..].contains('-') {
        return None; // a date
    }
    cleaned.parse().ok()
}

fn value_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The displayed text says what the value is (rounded to what is shown).
fn shows(text: &str, value: &Value) -> bool {
    match value {
        Value::Null => text == "\u{2014}",
        Value::String(s) if text == s => true,
        _ => match (as_number(text), value_number(value)) {
            (Some(shown), Some(n)) => (shown - n).abs() <= 0.051 + n.abs() * 1e-12,
            _ => false,
        },
    }
}

/// What a cell shows where the report words a value rather than printing
/// it: `converted` as yes or "no rate", and a row without a rate has no rate
/// and no home value (the query's 0 there means "not converted").
fn worded(view: &str, row: &Value, column: &str) -> Option<&'static str> {
    if !matches!(view, "open-deals" | "currencies") {
        return None;
    }
    let without_rate = value_number(&row["converted"]) == Some(0.0);
    match column {
        "converted" if without_rate => Some("no rate"),
        "converted" => Some("yes"),
        "rate" | "home_value" | "open_home_value" | "won_home_value" if without_rate => {
            Some("\u{2014}")
        }
        _ => None,
    }
}

/// Every check of one rendered report; returns the problems found.
fn check_report(dom: &str, panels: &[PanelRows]) -> Vec<String> {
    let all = elements(dom);
    let mut problems = Vec::new();

    // Nothing from outside: no script, and every link in the page.
    for e in &all {
        if matches!(
            e.name.as_str(),
            "script" | "link" | "img" | "iframe" | "object" | "embed"
        ) {
            problems.push(format!("a <{}> element: {:?}", e.name, e.attrs));
        }
        for (name, value) in &e.attrs {
            let lower = value.trim().to_ascii_lowercase();
            let linked = matches!(
                name.as_str(),
                "src" | "href" | "xlink:href" | "srcset" | "action" | "poster" | "data"
            );
            if linked && !lower.starts_with('#') {
                problems.push(format!(
                    "<{} {name}={value:?}> points outside the page",
                    e.name
                ));
            }
            if lower.contains("http://")
                || lower.contains("https://")
                || (name == "style" && lower.contains("url("))
            {
                problems.push(format!("<{} {name}={value:?}> names a URL", e.name));
            }
        }
    }
    if !all.iter().any(|e| e.name == "style") {
        problems.push("no inline style".into());
    }
    let h1: Vec<&Element> = all.iter().filter(|e| e.name == "h1").collect();
    if h1.len() != 1 || h1[0].text != TITLE {
        problems.push(format!(
            "the title is {:?}",
            h1.iter().map(|e| &e.text).collect::<Vec<_>>()
        ));
    }

    for p in panels {
        let id = p.panel.id.to_string();
        let title = &p.panel.title;
        let of_panel: Vec<&Element> = all
            .iter()
            .filter(|e| e.get("data-panel") == Some(id.as_str()))
            .collect();
        let Some(section) = of_panel.iter().find(|e| e.name == "section") else {
            problems.push(format!("{title}: no section"));
            continue;
        };
        if section.get("data-panel-title") != Some(title.as_str()) {
            problems.push(format!(
                "{title}: the section is titled {:?}",
                section.get("data-panel-title")
            ));
        }
        if section.get("data-rows") != Some(p.rows.len().to_string().as_str()) {
            problems.push(format!(
                "{title}: data-rows {:?}, {} rows",
                section.get("data-rows"),
                p.rows.len()
            ));
        }
        // Every cell, exactly once, with its exact value and a text that shows it.
        let cells: Vec<&&Element> = of_panel
            .iter()
            .filter(|e| e.get("data-column").is_some() && e.get("data-series").is_none())
            .collect();
        let mut expected_cells = 0;
        for (i, row) in p.rows.iter().enumerate() {
            let row_text = i.to_string();
            for (column, value) in row.as_object().expect("rows are objects") {
                expected_cells += 1;
                let found: Vec<&&&Element> = cells
                    .iter()
                    .filter(|e| {
                        e.get("data-row") == Some(row_text.as_str())
                            && e.get("data-column") == Some(column)
                    })
                    .collect();
                let [cell] = found.as_slice() else {
                    problems.push(format!(
                        "{title}: row {i} `{column}` is on the page {} times",
                        found.len()
                    ));
                    continue;
                };
                let machine: Value = match cell.get("data-value").map(serde_json::from_str) {
                    Some(Ok(v)) => v,
                    other => {
                        problems.push(format!("{title}: row {i} `{column}`: data-value {other:?}"));
                        continue;
                    }
                };
                if !same_value(&machine, value) || machine.is_string() != value.is_string() {
                    problems.push(format!(
                        "{title}: row {i} `{column}`: page {machine}, ClickHouse {value}"
                    ));
                }
                let view = section.get("data-view").unwrap_or_default();
                let shown = match worded(view, row, column) {
                    Some(words) => cell.text == words,
                    None => shows(&cell.text, value),
                };
                if !shown {
                    problems.push(format!(
                        "{title}: row {i} `{column}`: shows {:?} for {value}",
                        cell.text
                    ));
                }
            }
        }
        if cells.len() != expected_cells {
            problems.push(format!(
                "{title}: {} value cells, the rows have {expected_cells}",
                cells.len()
            ));
        }

        // Chart marks: each stands for its row's value, in the rows' order.
        let marks: Vec<&&Element> = of_panel
            .iter()
            .filter(|e| e.get("data-series").is_some())
            .collect();
        for mark in &marks {
            let row: usize = mark
                .get("data-row")
                .and_then(|r| r.parse().ok())
                .unwrap_or(usize::MAX);
            let series = mark.get("data-series").unwrap_or_default();
            let want = p.rows.get(row).and_then(|r| r.get(series));
            let got: Option<Value> = mark
                .get("data-value")
                .and_then(|v| serde_json::from_str(v).ok());
            match (got, want) {
                (Some(got), Some(want)) if same_value(&got, want) => {}
                (got, want) => problems.push(format!(
                    "{title}: mark {series} row {row}: {got:?}, row has {want:?}"
                )),
            }
        }
        let count = |element: &str, series: &str| {
            marks
                .iter()
                .filter(|m| m.name == element && m.get("data-series") == Some(series))
                .count()
        };
        let in_order = |series: &str| {
            let rows: Vec<usize> = marks
                .iter()
                .filter(|m| m.get("data-series") == Some(series))
                .filter_map(|m| m.get("data-row")?.parse().ok())
                .collect();
            rows == (0..p.rows.len()).collect::<Vec<_>>()
        };
        let n = p.rows.len();
        let view = section.get("data-view").unwrap_or_default();
        let mut expect_marks = |element: &str, series: &str, want: usize| {
            let got = count(element, series);
            if got != want {
                problems.push(format!(
                    "{title}: {got} <{element}> marks for {series}, expected {want}"
                ));
            }
        };
        match view {
            "kpis" => {
                let tiles = of_panel
                    .iter()
                    .filter(|e| e.get("class") == Some("tile-value"))
                    .count();
                if tiles != p.columns.len() {
                    problems.push(format!(
                        "{title}: {tiles} KPI tiles for {} columns",
                        p.columns.len()
                    ));
                }
            }
            "funnel" => {
                expect_marks("rect", "deals", n);
                expect_marks("rect", "value", n);
            }
            "forecast" => {
                expect_marks("rect", "pipeline_value", n);
                expect_marks("rect", "weighted_value", n);
            }
            "velocity" => {
                expect_marks("circle", "velocity_days", n);
                expect_marks("rect", "won_deals", n);
            }
            "sources" => {
                expect_marks("rect", "won_deals", n);
                expect_marks("rect", "total_value", n);
            }
            "reps" => {
                for series in ["calls", "emails", "meetings", "other"] {
                    let drawn = p
                        .rows
                        .iter()
                        .filter(|r| value_number(&r[series]).is_some_and(|v| v > 0.0))
                        .count();
                    expect_marks("rect", series, drawn);
                }
            }
            _ => {
                if !marks.is_empty() {
                    problems.push(format!(
                        "{title}: {} chart marks in a {view} view",
                        marks.len()
                    ));
                }
            }
        }
        for series in match view {
            "funnel" => vec!["deals", "value"],
            "forecast" => vec!["pipeline_value", "weighted_value"],
            "velocity" => vec!["velocity_days", "won_deals"],
            "sources" => vec!["won_deals", "total_value"],
            _ => vec![],
        } {
            if n > 0 && !in_order(series) {
                problems.push(format!(
                    "{title}: {series} marks are not one per row in the rows' order"
                ));
            }
        }
        if view == "velocity" && n > 0 && !all.iter().any(|e| e.name == "polyline") {
            problems.push(format!("{title}: no line"));
        }
    }
    problems
}

/// The section of panel `id` holds an empty-panel note mentioning `words`.
fn empty_note(dom: &str, id: u64, words: &str) -> bool {
    let Some(at) = dom.find(&format!("id=\"panel-{id}\"")) else {
        return false;
    };
    let section = &dom[at..at + dom[at..].find("</section>").unwrap_or(dom.len() - at)];
    section.contains("data-empty=\"true\"") && section.contains(words)
}

/// The serialized section of panel `id`.
fn section_of(dom: &str, id: u64) -> &str {
    let at = dom
        .find(&format!("id=\"panel-{id}\""))
        .unwrap_or_else(|| panic!("panel {id} is not on the page"));
    &dom[at..at + dom[at..].find("</section>").unwrap_or(dom.len() - at)]
}

/// Every row of panel `p` whose `converted` is 0 is in the group apart
/// (`data-apart="without-rate"`) of its table, every other row before it.
fn rows_without_rate_apart(dom: &str, p: &PanelRows, key: &str) -> Result<usize, String> {
    let section = section_of(dom, p.panel.id);
    let apart = section.find("data-apart=\"without-rate\"");
    let mut without_rate = 0;
    for (i, row) in p.rows.iter().enumerate() {
        let cell = format!(
            "data-panel=\"{}\" data-row=\"{i}\" data-column=\"{key}\"",
            p.panel.id
        );
        let at = section
            .find(&cell)
            .ok_or_else(|| format!("{}: row {i} is missing", p.panel.title))?;
        let is_apart = apart.is_some_and(|apart| at > apart);
        let lacks_rate = value_number(&row["converted"]) == Some(0.0);
        without_rate += usize::from(lacks_rate);
        if is_apart != lacks_rate {
            return Err(format!(
                "{}: row {i} ({}) is {} the deals without a rate",
                p.panel.title,
                row[key],
                if is_apart { "among" } else { "not among" }
            ));
        }
    }
    Ok(without_rate)
}

// ---------------------------------------------------------------- the test

fn scope(tenant: &str) -> Scope {
    Scope {
        from: START - DAY,
        to: START + 200 * DAY,
        tenant: tenant.into(),
        pipeline: None,
    }
}

/// A scratch folder under the target dir, left behind when the test fails
/// (or `TRIBUTARY_REPORT_KEEP` is set) so the pages and their screenshots
/// can be looked at.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("TRIBUTARY_REPORT_KEEP").is_some() {
            eprintln!("the reports are in {}", self.0.display());
        } else if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_every_panel_value_in_a_real_browser() {
    let world = World::generate(WorldConfig::sample(SEED));
    let events = world.enriched_events();
    let payloads: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).expect("json"))
        .collect();
    let db = TestDatabase::create("report").await;
    load_in_process(&db.settings, &world.tenants_toml(), &payloads, 500).await;
    let client = tributary_clickhouse::client(&db.settings);
    let scratch =
        Scratch(Path::new(env!("CARGO_TARGET_TMPDIR")).join(tributary_tests::unique("report")));
    std::fs::create_dir_all(&scratch.0).expect("scratch folder");

    let mut tenants_with_deals_without_rate = 0;
    for tenant in ["north", "south"] {
        let scope = scope(tenant);
        let started = Instant::now();
        let panels = dashboard::run_panels(&client, &db.settings, &scope)
            .await
            .unwrap_or_else(|e| panic!("{scope:?}: {e}"));
        let query_seconds = started.elapsed().as_secs_f64();

        // run_panels gives the world's numbers, and the same rows as the
        // dashboard test's own query path, with the columns in query order.
        let expected = world.expected_panels(&scope);
        let shipped = dashboard::sales_operations_panels().expect("the dashboard parses");
        assert_eq!(
            panels.iter().map(|p| &p.panel).collect::<Vec<_>>(),
            shipped.iter().collect::<Vec<_>>()
        );
        let mut comparison = Vec::new();
        for p in &panels {
            let want = &expected[p.panel.title.as_str()];
            let problems = differences(&p.rows, want);
            assert!(
                problems.is_empty(),
                "{tenant} {}: {problems:?}",
                p.panel.title
            );
            let sql = dashboard::expand(&p.panel.sql, &scope).expect("expands");
            assert_eq!(p.rows, db.query(&sql).await, "{}", p.panel.title);
            if let Some(first) = p.rows.first() {
                let keys: Vec<&String> = first.as_object().expect("an object").keys().collect();
                assert_eq!(
                    keys.len(),
                    p.columns.len(),
                    "{}: {:?}",
                    p.panel.title,
                    p.columns
                );
                assert!(p.columns.iter().all(|c| first.get(c).is_some()));
            }
            if p.panel.title == "Pipeline KPIs" {
                for (metric, truth) in &want[0] {
                    comparison.push(Comparison::new(
                        &p.panel.title,
                        metric,
                        p.rows[0][metric].clone(),
                        truth.clone(),
                    ));
                }
            }
        }
        assert_eq!(
            panels[0].columns,
            [
                "open_pipeline_value",
                "weighted_forecast",
                "won_deals",
                "lost_deals",
                "win_rate_percent",
                "won_seconds",
                "won_with_add_time",
                "velocity_days",
                "open_deals_without_rate",
                "home_currency"
            ]
        );

        let mut shown = panels.clone();
        shown.push(future_panel());
        let mut report = Report::new(
            Header::new(TITLE, &scope, chrono::Utc::now().timestamp()),
            shown.clone(),
        );
        report.facts = vec![
            Fact::new("Events loaded", events.len() as u64).with_unit("events"),
            Fact::new("Panel queries", query_seconds).with_unit("s"),
        ];
        let truths = comparison.len();
        report.comparison = Some(comparison);
        let page = scratch.0.join(format!("{tenant}.html"));
        report.write(&page).expect("writing the report");
        let source = std::fs::read_to_string(&page).expect("the report");
        assert!(
            !source.contains("http://") && !source.contains("https://"),
            "the page names a URL"
        );

        let dom = rendered_dom(&scratch.0, &page);
        let problems = check_report(&dom, &shown);
        assert!(
            problems.is_empty(),
            "{tenant} ({}):\n{}",
            page.display(),
            problems.join("\n")
        );
        // The checks see a value that is off and a mark that is missing.
        let at = dom
            .find("data-column=\"won_deals\" data-value=\"")
            .expect("the won deals tile")
            + "data-column=\"won_deals\" data-value=\"".len();
        let off = format!("{}9{}", &dom[..at], &dom[at..]);
        assert!(
            !check_report(&off, &shown).is_empty(),
            "a changed value goes unnoticed"
        );
        let missing = dom.replacen("<circle ", "<ellipse ", 1);
        assert!(
            !check_report(&missing, &shown).is_empty(),
            "a missing point goes unnoticed"
        );

        // The dashboard comes first, the KPI tiles opening it; the check of
        // the numbers after every panel.
        let position = |needle: &str| {
            dom.find(needle)
                .unwrap_or_else(|| panic!("{tenant}: {needle:?} is not on the page"))
        };
        let main = position("<main>");
        assert!(main < position("class=\"tiles headline\""));
        assert!(position("class=\"tiles headline\"") < position("id=\"panel-2\""));
        let check = position("id=\"check\"");
        for p in &shown {
            let at = position(&format!("id=\"panel-{}\"", p.panel.id));
            assert!(
                main < at && at < check,
                "{tenant}: {} is not in the dashboard before the check",
                p.panel.title
            );
        }
        assert!(check < position("id=\"comparison\""));
        assert!(check < position("id=\"facts\""));

        // Money in the home currency: the header and the KPI tiles say it.
        let kpis = &panels[0].rows[0];
        let home = kpis["home_currency"].as_str().expect("a home currency");
        assert_eq!(home, "EUR", "{tenant}: the world's home currency");
        let all = elements(&dom);
        assert!(
            all.iter()
                .any(|e| e.get("data-header") == Some("home_currency") && e.text == home),
            "{tenant}: the header does not say the home currency"
        );
        for column in ["open_pipeline_value", "weighted_forecast"] {
            let tile = all
                .iter()
                .position(|e| {
                    e.get("class") == Some("tile-value") && e.get("data-column") == Some(column)
                })
                .unwrap_or_else(|| panic!("{tenant}: no {column} tile"));
            let unit = &all[tile + 1];
            assert!(
                unit.name == "span" && unit.get("class") == Some("unit") && unit.text == home,
                "{tenant}: the {column} tile is followed by {unit:?}, not its currency"
            );
        }
        // Deals in a currency without a rate: counted in the KPI area, apart
        // in the open deals and the currencies, never in a total.
        let open_without_rate = value_number(&kpis["open_deals_without_rate"]).expect("a count");
        let note = all
            .iter()
            .find(|e| e.get("data-note") == Some("open-without-rate"));
        if open_without_rate > 0.0 {
            tenants_with_deals_without_rate += 1;
            let note = note.unwrap_or_else(|| panic!("{tenant}: no note of the deals left out"));
            assert_eq!(
                note.get("data-value"),
                Some(open_without_rate.to_string().as_str())
            );
            assert!(
                note.text
                    .starts_with(&format!("{open_without_rate} open deal")),
                "{tenant}: {:?}",
                note.text
            );
        } else {
            assert!(note.is_none(), "{tenant}: a note of no deal left out");
        }
        let by_title = |title: &str| {
            shown
                .iter()
                .find(|p| p.panel.title == title)
                .unwrap_or_else(|| panic!("no panel {title}"))
        };
        let currencies = by_title("Currencies");
        let open_deals = by_title("Open deals");
        let apart = rows_without_rate_apart(&dom, open_deals, "deal_id")
            .unwrap_or_else(|e| panic!("{tenant}: {e}"));
        assert_eq!(
            apart as f64, open_without_rate,
            "{tenant}: open deals apart"
        );
        let currencies_apart = rows_without_rate_apart(&dom, currencies, "currency")
            .unwrap_or_else(|e| panic!("{tenant}: {e}"));
        for row in currencies
            .rows
            .iter()
            .filter(|r| value_number(&r["converted"]) == Some(0.0))
        {
            let currency = row["currency"].as_str().expect("a currency code");
            if value_number(&row["open_deals"]).unwrap_or(0.0) > 0.0 {
                assert!(
                    note.is_some_and(|n| n.text.contains(currency)),
                    "{tenant}: the note does not name {currency}"
                );
            }
        }
        assert!(
            open_without_rate == 0.0 || currencies_apart > 0,
            "{tenant}: open deals without a rate, but no currency without one"
        );
        // The check sees deals without a rate among the others.
        let mixed = dom.replace("data-apart=\"without-rate\"", "data-apart=\"\"");
        if apart > 0 {
            assert!(rows_without_rate_apart(&mixed, open_deals, "deal_id").is_err());
        }

        let summary = all
            .iter()
            .find(|e| e.get("data-matching").is_some())
            .expect("the comparison table");
        assert_eq!(
            summary.get("data-matching"),
            Some(truths.to_string().as_str())
        );
        assert_eq!(summary.get("data-total"), Some(truths.to_string().as_str()));
        assert!(
            all.iter()
                .any(|e| e.get("data-fact") == Some("Events loaded"))
        );
        assert!(
            all.iter()
                .any(|e| e.get("data-header") == Some("tenant") && e.text == tenant)
        );
        let calibration = panels
            .iter()
            .find(|p| p.panel.title.starts_with("Win probability"))
            .expect("the calibration panel");
        if tenant == "south" {
            assert!(
                calibration.rows.is_empty(),
                "south has too few closed deals"
            );
            assert!(
                empty_note(&dom, calibration.panel.id, "50 closed"),
                "the calibration panel explains why it is empty"
            );
        } else {
            assert!(!calibration.rows.is_empty());
        }

        let png = scratch.0.join(format!("{tenant}.png"));
        screenshot(&scratch.0, &page, &png);
    }
    assert!(
        tenants_with_deals_without_rate > 0,
        "the world has open deals in a currency without a rate"
    );
}

/// The read-only dashboard user may not change output settings: the panels
/// still run (64-bit integers then arrive quoted, which the report reads).
#[tokio::test]
async fn the_panels_run_as_the_read_only_dashboard_user() {
    let admin = ClickHouseSettings {
        url: shared_url(),
        validation: false,
        ..ClickHouseSettings::default()
    };
    tributary_clickhouse::apply_migrations(&tributary_clickhouse::client(&admin), &admin)
        .await
        .expect("migrations");
    let reader = ClickHouseSettings {
        user: "dashboards".into(),
        password: Some(tributary_config::Secret::new("dashboards")),
        ..admin
    };
    let client = tributary_clickhouse::client(&reader);
    let panels =
        dashboard::run_panels(&client, &reader, &scope(&tributary_tests::unique("nobody")))
            .await
            .expect("the dashboard user runs every panel");
    assert_eq!(panels.len(), 10);
    let kpis = &panels[0];
    assert_eq!(kpis.rows.len(), 1, "an aggregate without rows is one row");
    assert_eq!(
        kpis.rows[0]["won_deals"],
        json!("0"),
        "quoted: the setting was refused"
    );
    assert!(panels[1..].iter().all(|p| p.rows.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tributary_report_writes_the_page_of_a_tenant_from_the_configured_database() {
    let world = World::generate(WorldConfig::sample(SEED));
    let payloads: Vec<Vec<u8>> = world
        .enriched_events()
        .iter()
        .map(|e| serde_json::to_vec(e).expect("json"))
        .collect();
    let db = TestDatabase::create("cli_report").await;
    load_in_process(&db.settings, &world.tenants_toml(), &payloads, 500).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("north.html");
    let config = dir.path().join("tributary.toml");
    std::fs::write(&config, "").expect("an empty configuration");
    let scope = Scope {
        from: START - DAY,
        to: START + 200 * DAY,
        tenant: "north".into(),
        pipeline: None,
    };
    let output = Command::new(tributary_tests::process::binary(
        "tributary-cli",
        "tributary",
    ))
    .args(["report", "--tenant", "north", "--out"])
    .arg(&out)
    .args(["--from", &(scope.from * 1_000).to_string()])
    .args(["--to", &(scope.to * 1_000).to_string()])
    .env("TRIBUTARY_CONFIG", &config)
    .env("TRIBUTARY_CLICKHOUSE__URL", shared_url())
    .env("TRIBUTARY_CLICKHOUSE__DATABASE", db.name())
    .env("TRIBUTARY_CLICKHOUSE__VALIDATION", "false")
    .output()
    .expect("running tributary report");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page = std::fs::read_to_string(&out).expect("the page");
    // The page holds the tenant's exact open pipeline value, as the world has it.
    let kpis = &world.expected_panels(&scope)["Pipeline KPIs"][0];
    let open_value = kpis["open_pipeline_value"].as_f64().expect("a value");
    assert!(page.contains("north"));
    assert!(
        page.contains("data-column=\"open_pipeline_value\""),
        "the KPI tile is there"
    );
    let tile = page
        .split("data-column=\"open_pipeline_value\"")
        .nth(1)
        .and_then(|rest| rest.split("data-value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the tile's value");
    let shown: f64 = tile
        .trim_matches('"')
        .replace("&quot;", "")
        .parse()
        .expect("a number");
    assert_eq!(shown, open_value);

    let refused = Command::new(tributary_tests::process::binary(
        "tributary-cli",
        "tributary",
    ))
    .args([
        "report",
        "--tenant",
        "north",
        "--from",
        "2025-03-01T00:00:00Z",
        "--to",
        "2025-01-01T00:00:00Z",
    ])
    .env("TRIBUTARY_CONFIG", &config)
    .output()
    .expect("running tributary report");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--from is after --to"));
}
