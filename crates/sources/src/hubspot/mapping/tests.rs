use serde_json::{Value, json};
use tributary_model::{Context, DealStatus, Field, Mapped, Mapping, MappingError, Record};

use super::HubSpotMapping;

fn map(event: Value, missing: &[&str]) -> Result<Mapped, MappingError> {
    let missing: Vec<String> = missing.iter().map(|m| (*m).to_owned()).collect();
    let context = Context {
        tenant: "acme",
        source: "hubspot",
        received_at_micro: 7,
        missing: &missing,
    };
    HubSpotMapping.map(&context, event.as_object().expect("object"))
}

fn base(object: &str, action: &str) -> Value {
    json!({
        "event_object": object, "event_action": action, "event_portal_id": "62515",
        "event_object_id": "1234567890123456789", "event_timestamp_micro": 1_700_000_000_000_000_i64,
        "event_merged_object_ids": [],
    })
}

fn with(mut event: Value, extra: Value) -> Value {
    if let (Value::Object(e), Value::Object(x)) = (&mut event, extra) {
        e.extend(x);
    }
    event
}

fn deals(mapped: &Mapped) -> Vec<&tributary_model::Deal> {
    mapped
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Deal(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn hydrated(extra: Value) -> Value {
    with(
        with(
            base("deal", "propertyChange"),
            json!({
                "record_found": true, "record_id": "1234567890123456789", "record_archived": false,
                "record_updated_at": "2023-11-14T22:13:20.000Z", "record_version_micro": 1_700_000_000_000_000_i64,
                "deal_name": "Omni", "deal_amount": "1500.50", "deal_currency": "BRL",
                "deal_pipeline_id": "default", "deal_stage_id": "appointmentscheduled",
                "deal_is_closed": "false", "deal_is_closed_won": "false", "deal_close_date": "",
                "deal_create_date": "2023-11-01T10:00:00Z", "deal_owner_id": "77",
                "deal_stage_history_ids": ["appointmentscheduled"],
                "deal_stage_history_times": ["2023-11-01T10:00:00Z"],
            }),
        ),
        extra,
    )
}

#[test]
fn closed_flags_are_read_strictly_and_ids_stay_verbatim() {
    let mapped = map(hydrated(json!({})), &[]).expect("maps");
    let deal = deals(&mapped)[0];
    assert_eq!(deal.key.id, "1234567890123456789");
    assert_eq!(
        deal.status,
        Field::Value(DealStatus::Open),
        "\"false\" is false"
    );
    assert_eq!(deal.won_at, Field::Null);
    assert_eq!(
        deal.expected_close_date,
        Field::Null,
        "an empty date is none"
    );
    assert_eq!(deal.amount.value().map(|a| a.as_str()), Some("1500.5"));
    let won = map(
        hydrated(json!({"deal_is_closed": "true", "deal_is_closed_won": "true"})),
        &[],
    )
    .expect("maps");
    assert_eq!(deals(&won)[0].status, Field::Value(DealStatus::Won));
    let lost = map(
        hydrated(json!({"deal_is_closed": "true", "deal_is_closed_won": "false"})),
        &[],
    )
    .expect("maps");
    assert_eq!(deals(&lost)[0].status, Field::Value(DealStatus::Lost));
    let bad = map(hydrated(json!({"deal_is_closed": "yes"})), &[]).expect_err("not a boolean");
    assert_eq!(bad.field, "deal_is_closed");
}

#[test]
fn a_property_change_not_read_from_the_api_sets_that_property_only() {
    let event = with(
        base("deal", "propertyChange"),
        json!({"event_property_name": "dealstage", "event_property_value": "closedwon"}),
    );
    let mapped = map(event, &["record"]).expect("maps");
    let deals = deals(&mapped);
    assert_eq!(deals.len(), 1);
    let deal = deals[0];
    assert_eq!(deal.stage_id, Field::Value("closedwon".into()));
    assert_eq!(deal.version.at_micro, 1_700_000_000_000_000);
    assert_eq!(deal.title, Field::Unknown, "nothing else blanked");
    assert_eq!(deal.status, Field::Unknown);
    assert_eq!(deal.deleted, Field::Unknown);
    // A property the model does not have: the event maps to nothing.
    let other = with(
        base("deal", "propertyChange"),
        json!({"event_property_name": "hs_next_step", "event_property_value": "call"}),
    );
    assert!(map(other, &["record"]).expect("maps").records.is_empty());
}

#[test]
fn deletions_restores_and_merges_carry_the_events_own_version() {
    let deleted = map(
        with(base("deal", "deletion"), json!({"record_found": false})),
        &[],
    )
    .expect("maps");
    let tombstone = deals(&deleted)[0];
    assert_eq!(tombstone.deleted, Field::Value(true));
    assert_eq!(tombstone.version.at_micro, 1_700_000_000_000_000);
    let restored = map(hydrated(json!({"event_action": "restore"})), &[]).expect("maps");
    assert!(
        deals(&restored).iter().any(
            |d| d.deleted == Field::Value(false) && d.version.at_micro == 1_700_000_000_000_000
        ),
        "restored as of the restore, though archiving did not move updatedAt"
    );
    let merged = map(
        hydrated(json!({
            "event_action": "merge", "event_primary_object_id": "1234567890123456789",
            "event_merged_object_ids": ["55", "1234567890123456789"],
        })),
        &[],
    )
    .expect("maps");
    let gone: Vec<(&str, &Field<String>)> = deals(&merged)
        .iter()
        .filter(|d| d.merged_into.is_known())
        .map(|d| (d.key.id.as_str(), &d.merged_into))
        .collect();
    assert_eq!(
        gone,
        [("55", &Field::Value("1234567890123456789".into()))],
        "the merged-away id points at the survivor; the survivor stays"
    );
    // An id the API answers for with another record was merged into it.
    let answered = map(hydrated(json!({"record_id": "999"})), &[]).expect("maps");
    assert!(
        deals(&answered)
            .iter()
            .any(|d| d.key.id == "1234567890123456789"
                && d.merged_into == Field::Value("999".into()))
    );
    assert!(
        deals(&answered)
            .iter()
            .any(|d| d.key.id == "999" && d.title.is_known())
    );
}

#[test]
fn engagements_are_done_as_each_type_says() {
    let engagement = |object: &str, extra: Value| {
        with(
            with(
                base(object, "creation"),
                json!({
                    "record_found": true, "record_id": "5", "record_archived": false,
                    "record_version_micro": 1_700_000_000_000_000_i64,
                    "activity_timestamp": "2023-11-14T10:00:00Z", "activity_owner_id": "77",
                    "activity_deal_id": "9",
                }),
            ),
            extra,
        )
    };
    let activity = |event: Value| -> tributary_model::Activity {
        map(event, &[])
            .expect("maps")
            .records
            .into_iter()
            .find_map(|r| match r {
                Record::Activity(a) if a.kind.is_known() => Some(a),
                _ => None,
            })
            .expect("an activity")
    };
    let call = activity(engagement(
        "call",
        json!({"activity_status": "COMPLETED", "activity_direction": "INBOUND"}),
    ));
    assert_eq!(call.done, Field::Value(true));
    assert_eq!(call.direction, Field::Value("inbound".into()));
    assert!(call.done_at.is_known());
    let no_answer = activity(engagement("call", json!({"activity_status": "NO_ANSWER"})));
    assert_eq!(no_answer.done, Field::Value(false));
    assert_eq!(no_answer.done_at, Field::Null);
    let task = activity(engagement(
        "task",
        json!({
            "activity_status": "COMPLETED", "activity_completed_at": "2023-11-15T08:00:00Z"
        }),
    ));
    assert_eq!(
        task.done_at.value().map(|t| t.seconds()),
        Some(1_700_035_200)
    );
    let open_task = activity(engagement(
        "task",
        json!({"activity_status": "NOT_STARTED"}),
    ));
    assert_eq!(open_task.done, Field::Value(false));
    assert_eq!(call.deal_id, Field::Value("9".into()));
}

#[test]
fn events_without_what_every_record_needs_are_refused() {
    let mut event = base("deal", "creation");
    event["event_portal_id"] = Value::Null;
    assert_eq!(
        map(event, &[]).expect_err("no account").field,
        "event_portal_id"
    );
    let ticket = base("ticket", "creation");
    assert_eq!(
        map(ticket, &[]).expect_err("no mapping").field,
        "event_object"
    );
    let float_id = with(base("deal", "creation"), json!({"event_object_id": 12.5}));
    assert_eq!(
        map(float_id, &[]).expect_err("a float id").field,
        "event_object_id"
    );
}
