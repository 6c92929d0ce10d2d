use serde_json::{Value, json};

use super::*;

fn shipped() -> Templates {
    Templates::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/templates"
    )))
    .expect("the shipped templates compile")
}

/// A deal event as the enricher emits it (one email-validation source).
fn deal() -> Value {
    json!({
        "pipeline_event_id": "e1", "pipeline_tenant": "acme", "pipeline_source": "pipedrive",
        "pipeline_received_at_micro": 1_741_624_805_500_000_i64,
        "pipeline_enriched_at_micro": 1_741_624_805_600_000_i64,
        "pipeline_enrichment_status": "complete", "pipeline_enrichment_missing": [],
        "pipeline_warnings": [], "pipeline_payload_version": "1",
        "event_action": "updated", "event_object": "deal", "event_id": 5001,
        "event_timestamp": 1_741_624_805, "event_timestamp_micro": 1_741_624_805_412_000_i64,
        "event_pipedrive_service_name": false, "event_permitted_user_ids": [11, 12],
        "deal_id": 5001, "deal_status": "open", "deal_stage_id": 2, "deal_pipeline_id": 1,
        "deal_value": 22944.5, "deal_currency": "USD",
        "deal_add_time": "2025-02-03T10:15:00Z", "deal_expected_close_date": "2025-04-30",
        "email_validation_sources_1_domain": "omnihealth.example",
        "email_validation_sources_1_still_on_page": true
    })
}

fn invalid_paths(templates: &Templates, event: &Value) -> Vec<String> {
    match templates.check(event) {
        Err(Rejection::Invalid(errors)) => errors.into_iter().map(|e| e.path).collect(),
        Err(other) => panic!("expected schema errors, got {other:?}"),
        Ok(_) => panic!("expected schema errors, got a valid event"),
    }
}

#[test]
fn a_deal_with_a_decimal_value_and_one_email_source_is_valid() {
    let templates = shipped();
    let template = templates.check(&deal()).expect("valid");
    assert_eq!(
        (template.name.as_str(), template.version),
        ("pipedrive-sales", 1)
    );
}

#[test]
fn deleted_deals_and_partial_events_are_accepted() {
    let templates = shipped();
    let mut event = deal();
    event["deal_status"] = json!("deleted");
    event["event_action"] = json!("deleted");
    event["pipeline_enrichment_status"] = json!("partial");
    event["pipeline_enrichment_missing"] = json!(["stage", "person"]);
    event["deal_stage"] = Value::Null;
    templates.check(&event).expect("valid");
}

#[test]
fn every_error_is_reported_with_its_path() {
    let templates = shipped();
    let mut event = deal();
    event.as_object_mut().expect("object").remove("deal_id");
    event["deal_value"] = json!("a lot");
    event["deal_add_time"] = json!("last tuesday");
    let mut paths = invalid_paths(&templates, &event);
    paths.sort();
    assert_eq!(paths, vec!["", "/deal_add_time", "/deal_value"]);
}

#[test]
fn what_the_dashboards_need_may_not_be_null() {
    let templates = shipped();
    let mut event = deal();
    event["deal_stage_id"] = Value::Null;
    assert_eq!(invalid_paths(&templates, &event), vec!["/deal_stage_id"]);
    let mut activity = deal();
    activity["event_object"] = json!("activity");
    assert_eq!(
        invalid_paths(&templates, &activity),
        vec!["", ""],
        "activity_id and activity_type are required"
    );
    activity["activity_id"] = json!(9);
    activity["activity_type"] = json!("call");
    templates.check(&activity).expect("valid activity");
}

#[test]
fn objects_no_template_covers_are_refused_as_such() {
    let templates = shipped();
    let mut event = deal();
    event["event_object"] = json!("lead");
    assert!(matches!(
        templates.check(&event),
        Err(Rejection::NoTemplate(_))
    ));
}

#[test]
fn the_newest_version_is_used_and_a_broken_file_refuses_to_load() {
    let dir = tempfile::tempdir().expect("dir");
    // Every routed template has a first version; Pipedrive's has two.
    let mut expected: Vec<(&str, u32)> = Vec::new();
    for (_, _, template) in routes() {
        let folder = dir.path().join(template);
        if !folder.exists() {
            std::fs::create_dir(&folder).expect("folder");
            std::fs::write(folder.join("1.json"), r#"{"type": "object"}"#).expect("v1");
            expected.push((template, 1));
        }
    }
    let folder = dir.path().join("pipedrive-sales");
    std::fs::write(
        folder.join("2.json"),
        r#"{"type": "object", "required": ["x"]}"#,
    )
    .expect("v2");
    for (name, version) in &mut expected {
        if *name == "pipedrive-sales" {
            *version = 2;
        }
    }
    expected.sort();
    let templates = Templates::load(dir.path()).expect("loads");
    assert_eq!(templates.names().collect::<Vec<_>>(), expected);
    assert!(expected.contains(&("pipedrive-sales", 2)), "{expected:?}");

    std::fs::write(folder.join("3.json"), "{ // comments are not JSON\n}").expect("v3");
    let err = Templates::load(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("3.json"), "{err}");
}
