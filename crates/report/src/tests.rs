use serde_json::json;
use tributary_clickhouse::dashboard::Panel;

use super::*;

fn scope() -> Scope {
    Scope {
        from: 1_735_689_600, // 2025-01-01T00:00:00Z
        to: 1_743_465_599,   // 2025-03-31T23:59:59Z
        tenant: "o'brien & <sons>".into(),
        pipeline: None,
    }
}

fn panel(id: u64, title: &str, kind: &str, columns: &[&str], rows: Vec<Value>) -> PanelRows {
    PanelRows {
        panel: Panel {
            id,
            title: title.into(),
            kind: kind.into(),
            sql: String::new(),
        },
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows,
    }
}

fn report() -> Report {
    let mut report = Report::new(
        Header::new("Sales <operations>", &scope(), 1_743_500_000),
        vec![
            panel(
                1,
                "Pipeline KPIs",
                "stat",
                &[
                    "open_pipeline_value",
                    "weighted_forecast",
                    "open_deals_without_rate",
                    "home_currency",
                ],
                vec![json!({
                    "open_pipeline_value": 1000.5,
                    "weighted_forecast": 250.25,
                    "open_deals_without_rate": "1",
                    "home_currency": "EUR",
                })],
            ),
            panel(
                2,
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
                    json!({"deal_id": 7, "title": "<script>alert('x')</script>", "amount": 1500, "currency": "USD", "home_value": 1312.5, "converted": 1}),
                    json!({"deal_id": 8, "title": "Franc", "amount": 900, "currency": "CHF", "home_value": 0, "converted": 0}),
                ],
            ),
            panel(
                10,
                "Currencies",
                "table",
                &[
                    "currency",
                    "rate",
                    "converted",
                    "open_deals",
                    "open_amount",
                    "open_home_value",
                ],
                vec![
                    json!({"currency": "USD", "rate": 0.875, "converted": 1, "open_deals": 1, "open_amount": 1500, "open_home_value": 1312.5}),
                    json!({"currency": "CHF", "rate": 0, "converted": 0, "open_deals": 1, "open_amount": 900, "open_home_value": 0}),
                ],
            ),
            panel(
                9,
                "A panel from the future",
                "piechart",
                &["slice", "share"],
                vec![json!({"slice": "a", "share": 0.5})],
            ),
        ],
    );
    report.facts = vec![
        Fact::new("Events loaded", 12_345).with_unit("events"),
        Fact::new("Freshness p50", 0.8372).with_unit("s"),
        Fact::new("Broker", "tansu <local>"),
    ];
    report.comparison = Some(vec![
        Comparison::new("Pipeline KPIs", "won_deals", 12, 12),
        Comparison::new("Pipeline KPIs", "open_pipeline_value", 1000.5, "1000.25"),
        Comparison::new("Open deals", "top title", "Deal 1", "Deal 1"),
    ]);
    report
}

#[test]
fn the_page_is_one_document_with_no_external_resource() {
    let html = report().render();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "@import", "url(", "http://", "https://", "src=",
    ] {
        assert!(!html.contains(forbidden), "the page contains {forbidden:?}");
    }
    assert!(html.contains("default-src 'none'"));
    // Only in-page links.
    for (at, _) in html.match_indices("href=\"") {
        assert_eq!(&html[at + 6..at + 7], "#", "{}", &html[at..at + 40]);
    }
}

#[test]
fn every_text_is_escaped() {
    let html = report().render();
    assert!(html.contains("<h1>Sales &lt;operations&gt;</h1>"));
    assert!(html.contains(
        "<title>Sales &lt;operations&gt; \u{2014} o&#39;brien &amp; &lt;sons&gt;</title>"
    ));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(!html.contains("<script"));
    assert!(!html.contains("<sons>"));
    assert!(html.contains("tansu &lt;local&gt;"));
    // The machine value of a string is its JSON, escaped for the attribute.
    assert!(
        html.contains("data-value=\"&quot;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;\"")
    );
}

#[test]
fn header_facts_and_comparison_carry_their_values() {
    let html = report().render();
    assert!(html.contains("data-header=\"pipeline\" data-value=\"null\">all</dd>"));
    assert!(html.contains(
        "<time datetime=\"2025-01-01T00:00:00Z\" data-header=\"from\" data-value=\"1735689600\">2025-01-01 00:00:00 UTC</time>"
    ));
    assert!(html.contains(
        "data-fact=\"Events loaded\" data-value=\"12345\">12,345<span class=\"unit\">events</span>"
    ));
    assert!(html.contains("data-value=\"0.8372\">0.84<span class=\"unit\">s</span>"));
    assert!(html.contains("data-matching=\"2\" data-total=\"3\">2 of 3 figures match"));
    assert!(html.contains(
        "data-comparison=\"1\" data-column=\"difference\" data-value=\"0.25\">0.25</td>"
    ));
    assert!(html.contains("data-comparison=\"1\" data-match=\"false\""));
    assert!(html.contains(
        "data-comparison=\"2\" data-column=\"difference\" data-value=\"null\">\u{2014}</td>"
    ));
}

#[test]
fn an_unknown_panel_is_kept_as_a_table() {
    let html = report().render();
    assert!(html.contains("<a href=\"#panel-9\">A panel from the future</a>"));
    let at = html
        .find("id=\"panel-9\"")
        .expect("the unknown panel is on the page");
    let section = &html[at..];
    assert!(section.contains("data-view=\"table\""));
    assert!(section.contains("data-column=\"slice\" data-value=\"&quot;a&quot;\">a</td>"));
    assert!(section.contains("data-column=\"share\" data-value=\"0.5\">0.50</td>"));
}

#[test]
fn comparisons_match_numbers_as_numbers() {
    assert!(Comparison::new("p", "m", json!("12"), 12).matches());
    assert!(Comparison::new("p", "m", 0.1 + 0.2, 0.3).matches());
    assert!(!Comparison::new("p", "m", 1, 2).matches());
    assert_eq!(Comparison::new("p", "m", 1, 2).difference(), Some(-1.0));
    assert!(!Comparison::new("p", "m", "a", "b").matches());
    assert!(Comparison::new("p", "m", Value::Null, Value::Null).matches());
}

/// Where `needle` first is in `html`.
fn at(html: &str, needle: &str) -> usize {
    html.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not on the page"))
}

#[test]
fn the_dashboard_comes_first_and_the_check_of_the_numbers_after_it() {
    let html = report().render();
    let main = at(&html, "<main>");
    let main_end = at(&html, "</main>");
    // The KPI tiles open the dashboard, every panel follows in order.
    assert!(main < at(&html, "id=\"panel-1\""));
    assert!(at(&html, "class=\"tiles headline\"") < at(&html, "id=\"panel-2\""));
    assert!(at(&html, "id=\"panel-2\"") < at(&html, "id=\"panel-10\""));
    assert!(at(&html, "id=\"panel-10\"") < at(&html, "id=\"panel-9\""));
    assert!(at(&html, "id=\"panel-9\"") < main_end);
    // Then, labelled as such, the comparison and the facts.
    let check = at(&html, "<h2 class=\"part\">Checking the numbers</h2>");
    assert!(main_end < check);
    assert!(check < at(&html, "id=\"comparison\""));
    assert!(at(&html, "id=\"comparison\"") < at(&html, "id=\"facts\""));
    assert!(!html.contains("At a glance"));
    // The contents list the panels first, then the check.
    let toc = &html[at(&html, "<nav class=\"toc\">")..at(&html, "</nav>")];
    let links: Vec<&str> = toc
        .split("href=\"")
        .skip(1)
        .map(|l| l.split('"').next().unwrap_or_default())
        .collect();
    assert_eq!(
        links,
        [
            "#panel-1",
            "#panel-2",
            "#panel-10",
            "#panel-9",
            "#comparison",
            "#facts"
        ]
    );
    assert!(toc.contains("<a href=\"#panel-10\">Currencies</a>"));
    assert!(at(&html, "#panel-9") < at(&html, "Checking the numbers:"));
}

#[test]
fn without_a_comparison_or_facts_there_is_no_check() {
    let mut report = report();
    report.comparison = None;
    report.facts.clear();
    let html = report.render();
    assert!(!html.contains("Checking the numbers"));
    assert!(!html.contains("id=\"comparison\""));
    assert!(!html.contains("id=\"facts\""));
    assert!(html.contains("id=\"panel-9\""));
}

#[test]
fn money_is_in_the_home_currency_and_what_has_no_rate_is_apart() {
    let html = report().render();
    assert!(html.contains(
        "<dt>Amounts in</dt><dd data-header=\"home_currency\" data-value=\"&quot;EUR&quot;\">EUR</dd>"
    ));
    assert!(html.contains(
        "data-column=\"open_pipeline_value\" data-value=\"1000.5\">1,000.50</div><span class=\"unit\">EUR</span>"
    ));
    assert!(html.contains(
        "data-column=\"weighted_forecast\" data-value=\"250.25\">250.25</div><span class=\"unit\">EUR</span>"
    ));
    assert!(html.contains(
        "data-note=\"open-without-rate\" data-value=\"1\">1 open deal is in a currency without a rate (CHF) and is not in these totals: see <a href=\"#panel-10\">Currencies</a>."
    ));
    // The open deal in CHF and the currency itself are each listed apart.
    for panel in ["panel-2", "panel-10"] {
        let section = &html[at(&html, &format!("id=\"{panel}\""))..];
        let section = &section[..at(section, "</section>")];
        let apart = at(section, "data-apart=\"without-rate\"");
        assert!(at(section, "data-row=\"0\"") < apart, "{panel}");
        assert!(at(section, "data-row=\"1\"") > apart, "{panel}");
        assert!(
            section
                .contains("data-row=\"1\" data-column=\"converted\" data-value=\"0\">no rate</td>")
        );
    }
    assert!(html.contains("data-column=\"home_value\">Value in EUR</th>"));
    assert!(html.contains("data-column=\"rate\">Rate to EUR</th>"));
}
