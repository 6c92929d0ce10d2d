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
    let sql = "SELECT 1 FROM t WHERE pipeline_tenant = ${tenant:singlequote} \
               AND (${pipeline} = 0 OR deal_pipeline_id = ${pipeline}) \
               AND $__timeFilter(ifNull(deal_won_time, toDateTime(0))) AND $__dateFilter(day) \
               AND x BETWEEN $__fromTime AND $__toTime";
    let expanded = expand(sql, &scope()).expect("expands");
    assert_eq!(
        expanded,
        "SELECT 1 FROM t WHERE pipeline_tenant = 'acme' \
         AND (0 = 0 OR deal_pipeline_id = 0) \
         AND ifNull(deal_won_time, toDateTime(0)) >= toDateTime(1735689600) \
         AND ifNull(deal_won_time, toDateTime(0)) <= toDateTime(1743465599) \
         AND day >= toDate('2025-01-01') AND day <= toDate('2025-03-31') \
         AND x BETWEEN toDateTime(1735689600) AND toDateTime(1743465599)"
    );
    let one = Scope {
        pipeline: Some(7),
        ..scope()
    };
    assert!(
        expand("p = ${pipeline}", &one)
            .expect("expands")
            .ends_with("p = 7")
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
    assert_eq!(panels.len(), 9, "{titles:?}");
    for panel in &panels {
        let sql =
            expand(&panel.sql, &scope()).unwrap_or_else(|e| panic!("panel {:?}: {e}", panel.title));
        assert!(!sql.contains('$'), "panel {:?}: {sql}", panel.title);
        assert!(
            sql.contains("pipeline_tenant = 'acme'"),
            "panel {:?} is scoped to the tenant",
            panel.title
        );
    }
}
