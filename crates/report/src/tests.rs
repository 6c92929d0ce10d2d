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
                "Open deals",
                "table",
                &["deal_id", "title", "value"],
                vec![json!({"deal_id": 7, "title": "<script>alert('x')</script>", "value": 1500})],
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
