use serde_json::{Value, json};
use tributary_model::{Context, Field, Mapping, Record, Timestamp};

use super::PipedriveMapping;

fn map(
    event: Value,
    missing: &[&str],
) -> Result<tributary_model::Mapped, tributary_model::MappingError> {
    let missing: Vec<String> = missing.iter().map(|m| (*m).to_owned()).collect();
    let context = Context {
        tenant: "acme",
        source: "pipedrive",
        received_at_micro: 99,
        missing: &missing,
    };
    PipedriveMapping.map(&context, event.as_object().expect("object"))
}

fn deal_event() -> Value {
    json!({
        "event_action": "updated", "event_object": "deal", "event_company_id": "8087566",
        "event_timestamp_micro": 1_700_000_000_000_001_i64, "event_change_source": "app",
        "deal_id": 8, "deal_title": "Omni deal", "deal_value": 1500.5, "deal_currency": "BRL",
        "deal_status": "won", "deal_previous_status": "open",
        "deal_stage_id": 3, "deal_stage": "Proposal Made", "deal_stage_order_nr": 3, "deal_stage_probability": 60,
        "deal_pipeline_id": 1, "deal_pipeline": "Sales",
        "deal_probability": null, "deal_owner_id": 12415231, "deal_owner_name": "Ana",
        "deal_expected_close_date": "2023-12-01", "deal_add_time": "2023-11-01 10:00:00",
        "deal_update_time": "2023-11-14T22:13:20Z", "deal_won_time": "2023-11-14 22:13:20",
        "deal_lost_time": null, "deal_lost_reason": null, "deal_stage_change_time": "2023-11-10 09:00:00",
        "marketing_source": "Webinar", "marketing_campaign": null,
        "contact_id": 1234567890123456789_i64, "contact_email": "a@b.example", "contact_first_name": "A",
        "contact_last_name": "B", "contact_phone_number": null, "contact_position": null,
        "organization_id": 5, "organization_name": "Omni", "organization_company_size": "small",
        "organization_industry": "retail"
    })
}

fn deal_of(mapped: &tributary_model::Mapped) -> &tributary_model::Deal {
    match &mapped.records[0] {
        Record::Deal(deal) => deal,
        other => panic!("the deal first, got {other:?}"),
    }
}

#[test]
fn a_deal_event_becomes_the_deal_its_stage_pipeline_owner_people_and_a_transition() {
    let mapped = map(deal_event(), &[]).expect("maps");
    assert_eq!(mapped.account, "8087566");
    assert_eq!(mapped.object, "deal");
    assert_eq!(mapped.remote_id, "8");
    assert_eq!(mapped.version.at_micro, 1_700_000_000_000_001);
    assert_eq!(mapped.version.received_micro, 99);
    let deal = deal_of(&mapped);
    assert_eq!(deal.key.account, "8087566");
    assert_eq!(deal.amount.value().map(|a| a.as_str()), Some("1500.5"));
    assert_eq!(deal.currency, Field::Value("BRL".into()));
    assert_eq!(deal.stage_id, Field::Value("3".into()));
    assert_eq!(deal.contact_id, Field::Value("1234567890123456789".into()));
    assert_eq!(deal.deleted, Field::Value(false));
    assert_eq!(deal.probability, Field::Null);
    assert_eq!(
        deal.closed_at,
        Field::Value(Timestamp::from_seconds(1_700_000_000).expect("time"))
    );
    assert_eq!(deal.marketing_source, Field::Value("Webinar".into()));
    let kinds: Vec<&str> = mapped
        .records
        .iter()
        .map(|r| match r {
            Record::Deal(_) => "deal",
            Record::StageTransition(_) => "transition",
            Record::Stage(_) => "stage",
            Record::Pipeline(_) => "pipeline",
            Record::User(_) => "user",
            Record::ContactPii(_) => "pii",
            Record::Company(_) => "company",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "deal",
            "transition",
            "stage",
            "pipeline",
            "user",
            "pii",
            "company"
        ]
    );
    let Record::StageTransition(transition) = &mapped.records[1] else {
        unreachable!()
    };
    assert_eq!(
        (
            transition.from_stage_id.as_str(),
            transition.to_stage_id.as_str()
        ),
        ("3", "3")
    );
    assert_eq!(
        (
            transition.from_status.as_str(),
            transition.to_status.as_str()
        ),
        ("open", "won")
    );
}

#[test]
fn what_a_failed_lookup_left_empty_is_unknown_not_empty() {
    let mut event = deal_event();
    event["marketing_source"] = Value::Null;
    event["deal_stage"] = Value::Null;
    event["organization_name"] = Value::Null;
    let mapped = map(event, &["deal_fields", "stage", "organization"]).expect("maps");
    let deal = deal_of(&mapped);
    assert_eq!(deal.marketing_source, Field::Unknown, "kept as stored");
    assert!(
        !mapped
            .records
            .iter()
            .any(|r| matches!(r, Record::Stage(_) | Record::Company(_))),
        "no stage or company rows without their lookups"
    );
    // With the lookup made, an empty source is a fact.
    let mut event = deal_event();
    event["marketing_source"] = Value::Null;
    assert_eq!(
        deal_of(&map(event, &[]).expect("maps")).marketing_source,
        Field::Null
    );
}

#[test]
fn a_deleted_deal_is_a_tombstone_keeping_its_last_status() {
    let mut event = deal_event();
    event["event_action"] = json!("deleted");
    event["deal_status"] = json!("deleted");
    let mapped = map(event, &[]).expect("maps");
    let deal = deal_of(&mapped);
    assert_eq!(deal.deleted, Field::Value(true));
    assert_eq!(deal.status, Field::Unknown);
    assert!(
        !mapped
            .records
            .iter()
            .any(|r| matches!(r, Record::StageTransition(_))),
        "a deletion is no transition"
    );
}

#[test]
fn ids_that_do_not_fit_are_refused_with_their_field() {
    let mut event = deal_event();
    event["deal_stage_id"] = json!(3.5);
    let err = map(event, &[]).expect_err("a fractional id");
    assert_eq!(err.field, "deal_stage_id");
    let mut event = deal_event();
    event["event_company_id"] = Value::Null;
    assert_eq!(
        map(event, &[]).expect_err("no account").field,
        "event_company_id"
    );
    let mut event = deal_event();
    event["event_object"] = json!("product");
    assert_eq!(
        map(event, &[]).expect_err("no mapping").field,
        "event_object"
    );
}

#[test]
fn an_activity_is_done_where_and_by_whom_it_is_now() {
    let event = json!({
        "event_action": "updated", "event_object": "activity", "event_company_id": "1",
        "event_timestamp_micro": 5_000_000, "activity_id": 77, "activity_type": "deadline",
        "activity_subject": "Call back", "activity_done": false, "activity_due_date": "2024-01-02",
        "activity_due_time": "09:30", "activity_user_id": 9, "activity_user_name": "Bo",
        "activity_deal_id": null, "activity_person_id": 3, "activity_org_id": null,
        "activity_add_time": "2024-01-01 08:00:00", "activity_marked_as_done_time": "2024-01-01 09:00:00",
        "activity_update_time": "2024-01-01 09:00:00"
    });
    let mapped = map(event, &[]).expect("maps");
    let Record::Activity(activity) = &mapped.records[0] else {
        panic!("an activity")
    };
    assert_eq!(
        activity.kind,
        Field::Value(tributary_model::ActivityType::Task)
    );
    assert_eq!(activity.raw_type, Field::Value("deadline".into()));
    assert_eq!(activity.done, Field::Value(false));
    assert_eq!(activity.done_at, Field::Null, "undone: no done time");
    assert_eq!(
        activity.due_at.value().map(|t| t.seconds()),
        Some(1_704_187_800)
    );
    assert!(matches!(&mapped.records[1], Record::User(u) if u.key.id == "9"));
}
