use super::*;

fn scope() -> Scope {
    Scope {
        from: 1_735_689_600, // 2025-01-01T00:00:00Z
        to: 1_743_465_599,   // 2025-03-31T23:59:59Z
        tenant: "acme".into(),
        pipeline: None,
    }
}

#[test]
fn variables_and_macros_expand_as_the_data_source_sends_them() {
    let sql = "SELECT 1 FROM t WHERE tenant = ${tenant:singlequote} \
               AND (${pipeline:singlequote} = '' OR p = ${pipeline:singlequote}) \
               AND $__timeFilter(ifNull(deal_won_time, toDateTime(0))) AND $__dateFilter(day) \
               AND x BETWEEN $__fromTime AND $__toTime";
    let expanded = expand(sql, &scope()).expect("expands");
    assert_eq!(
        expanded,
        "SELECT 1 FROM t WHERE tenant = 'acme' \
         AND ('' = '' OR p = '') \
         AND ifNull(deal_won_time, toDateTime(0)) >= toDateTime(1735689600) \
         AND ifNull(deal_won_time, toDateTime(0)) <= toDateTime(1743465599) \
         AND day >= toDate('2025-01-01') AND day <= toDate('2025-03-31') \
         AND x BETWEEN toDateTime(1735689600) AND toDateTime(1743465599)"
    );
    let one = Scope {
        pipeline: Some("hubspot:62515:default".into()),
        ..scope()
    };
    assert!(
        expand("p = ${pipeline:singlequote}", &one)
            .expect("expands")
            .ends_with("p = 'hubspot:62515:default'")
    );
}

#[test]
fn a_tenant_with_a_quote_stays_one_string_literal() {
    let tricky = Scope {
        tenant: "o'brien\\".into(),
        ..scope()
    };
    assert_eq!(
        expand("t = ${tenant:singlequote}", &tricky).expect("expands"),
        r"t = 'o\'brien\\'"
    );
}

#[test]
fn unknown_variables_and_unclosed_macros_are_errors() {
    assert_eq!(
        expand("x = $owner", &scope()),
        Err(DashboardError::Unknown("$owner".into()))
    );
    assert_eq!(
        expand("$__timeFilter(a", &scope()),
        Err(DashboardError::Unclosed("$__timeFilter".into()))
    );
}

#[test]
fn every_shipped_panel_has_sql_that_expands_completely() {
    let panels = sales_operations_panels().expect("the shipped dashboard parses");
    let titles: Vec<&str> = panels.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(panels.len(), 10, "{titles:?}");
    for panel in &panels {
        let sql =
            expand(&panel.sql, &scope()).unwrap_or_else(|e| panic!("panel {:?}: {e}", panel.title));
        assert!(!sql.contains('$'), "panel {:?}: {sql}", panel.title);
        assert!(
            sql.contains("tenant = 'acme'"),
            "panel {:?} is scoped to the tenant",
            panel.title
        );
    }
}

#[test]
fn json_each_row_keeps_the_columns_in_the_query_order() {
    let body = "{\"stage\":\"Lead In\",\"deals\":3,\"value\":\"1500\",\"avg\":null}\n\n{\"stage\":\"Won?\",\"deals\":1,\"value\":2.5,\"avg\":1}\n";
    let (columns, rows) = parse_json_each_row(body).expect("parses");
    assert_eq!(columns, ["stage", "deals", "value", "avg"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["value"], "1500");
    assert_eq!(rows[1]["value"], 2.5);
    assert!(rows[0]["avg"].is_null());
    assert_eq!(parse_json_each_row(""), Ok((Vec::new(), Vec::new())));
    assert_eq!(
        parse_json_each_row("{\"a\":1}\n[1]").map_err(|(row, _)| row),
        Err(1)
    );
    assert!(parse_json_each_row("{\"a\":").is_err());
}

#[test]
fn panel_sql_is_expanded_with_the_configured_databases() {
    let settings = ClickHouseSettings {
        database: "report_1".into(),
        ..ClickHouseSettings::default()
    };
    let panel = Panel {
        id: 1,
        title: "t".into(),
        kind: "table".into(),
        sql: "SELECT count() FROM tributary.deals WHERE tenant = ${tenant:singlequote};\n".into(),
    };
    assert_eq!(
        panel_sql(&panel, &settings, &scope()).expect("expands"),
        "SELECT count() FROM report_1.deals WHERE tenant = 'acme'"
    );
    let broken = Panel {
        sql: "SELECT $owner".into(),
        ..panel
    };
    let error = panel_sql(&broken, &settings, &scope()).expect_err("unknown variable");
    assert!(
        matches!(&error, PanelError::Expand { title, .. } if title == "t"),
        "{error}"
    );
}

#[test]
fn a_read_only_refusal_of_the_integer_setting_is_recognised() {
    let old = clickhouse::error::Error::BadResponse(
        "Code: 164, e.displayText() = DB::Exception: Cannot override setting (output_format_json_quote_64bit_integers) in readonly mode".into(),
    );
    let modern = clickhouse::error::Error::BadResponse(
        "Code: 164. DB::Exception: Cannot modify 'output_format_json_quote_64bit_integers' setting in readonly mode. (READONLY)".into(),
    );
    let other = clickhouse::error::Error::BadResponse(
        "Code: 60. DB::Exception: Table x.deal_state doesn't exist".into(),
    );
    assert!(is_readonly_refusal(&old));
    assert!(is_readonly_refusal(&modern));
    assert!(!is_readonly_refusal(&other));
    assert!(!is_readonly_refusal(&clickhouse::error::Error::TimedOut));
}
