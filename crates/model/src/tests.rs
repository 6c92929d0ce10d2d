use serde_json::{Value, json};

use super::flat::{self, Flat, parse_time};
use super::*;

fn rows(records: &[Record]) -> Vec<Value> {
    let mut out = Vec::new();
    for record in records {
        record.write_row(&mut out);
    }
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

fn key(id: &str) -> Key {
    Key {
        tenant: "acme".into(),
        source: "hubspot".into(),
        account: "62515".into(),
        id: id.into(),
    }
}

#[test]
fn amounts_keep_their_digits_and_round_to_four_decimals() {
    let cases = [
        ("1500", "1500"),
        ("1500.50", "1500.5"),
        ("-12.345", "-12.345"),
        ("0.00005", "0.0001"),
        ("0.00004", "0"),
        ("-0.00004", "0"),
        ("99999999999999.9999", "99999999999999.9999"),
        ("1e3", "1000"),
        ("2.5E-2", "0.025"),
        ("+7", "7"),
        ("0012.100", "12.1"),
        ("9.99995", "10"),
    ];
    for (text, expected) in cases {
        assert_eq!(
            Amount::parse(text).map(|a| a.as_str().to_owned()),
            Ok(expected.to_owned()),
            "{text}"
        );
    }
    for bad in [
        "",
        "1,500",
        "$5",
        "abc",
        "1.2.3",
        "100000000000000",
        "1e99",
        ".",
    ] {
        assert!(Amount::parse(bad).is_err(), "{bad:?} refused");
    }
    let float = serde_json::Number::from_f64(1234.56).expect("finite");
    assert_eq!(
        Amount::from_json_number(&float).map(|a| a.as_str().to_owned()),
        Ok("1234.56".to_owned())
    );
}

#[test]
fn ids_are_kept_verbatim_and_never_parsed_into_numbers() {
    let event = json!({
        "big": 9_223_372_036_854_775_807_i64,
        "bigger": 12_345_678_901_234_567_890_u64,
        "sf": "0065g00000ABCDEAZ1",
        "float": 12.0,
        "empty": "",
        "none": null,
    });
    let flat = Flat::new(event.as_object().expect("object"));
    assert_eq!(
        flat.id("big"),
        Ok(Field::Value("9223372036854775807".into()))
    );
    assert_eq!(
        flat.id("bigger"),
        Ok(Field::Value("12345678901234567890".into()))
    );
    assert_eq!(flat.id("sf"), Ok(Field::Value("0065g00000ABCDEAZ1".into())));
    assert_eq!(flat.id("none"), Ok(Field::Null));
    assert_eq!(flat.id("absent"), Ok(Field::Unknown));
    let err = flat.id("float").expect_err("a float is no id");
    assert_eq!(err.field, "float");
    assert!(flat.id("empty").is_err());
}

#[test]
fn booleans_are_parsed_strictly() {
    let event = json!({"a": "false", "b": "true", "c": true, "d": 0, "e": "yes", "f": ""});
    let flat = Flat::new(event.as_object().expect("object"));
    assert_eq!(
        flat.flag("a"),
        Ok(Field::Value(false)),
        "\"false\" is false"
    );
    assert_eq!(flat.flag("b"), Ok(Field::Value(true)));
    assert_eq!(flat.flag("c"), Ok(Field::Value(true)));
    assert_eq!(flat.flag("d"), Ok(Field::Value(false)));
    assert!(flat.flag("e").is_err());
    assert!(flat.flag("f").is_err());
}

#[test]
fn times_come_from_rfc3339_clickhouse_text_or_epoch_milliseconds() {
    let expected = Timestamp::from_seconds(1_700_000_000).expect("in range");
    for text in [
        "2023-11-14T22:13:20Z",
        "2023-11-14T23:13:20+01:00",
        "2023-11-14 22:13:20",
        "1700000000000",
        "2023-11-14T22:13:20.999Z",
    ] {
        assert_eq!(parse_time(text), Ok(expected), "{text}");
    }
    assert!(
        parse_time("1969-12-31T23:59:59Z").is_err(),
        "before DateTime's range"
    );
    assert!(parse_time("yesterday").is_err());
    let event = json!({"ms": 1_700_000_000_123_i64});
    let flat = Flat::new(event.as_object().expect("object"));
    assert_eq!(flat.time("ms"), Ok(Field::Value(expected)));
}

#[test]
fn a_change_row_names_the_fields_it_knows_and_leaves_the_rest_out() {
    let mut deal = Deal::new(
        key("1234567890123456789"),
        Version {
            at_micro: 10,
            received_micro: 20,
        },
    );
    deal.stage_id = Field::Value("closedwon".into());
    deal.lost_reason = Field::Null;
    deal.amount = Field::Value(Amount::parse("1500.25").expect("amount"));
    deal.status = Field::Value(DealStatus::Won);
    deal.won_at = Field::Value(Timestamp::from_seconds(1_700_000_000).expect("time"));
    let rows = rows(&[Record::Deal(deal)]);
    assert_eq!(
        rows,
        vec![json!({
            "tenant": "acme", "source": "hubspot", "account": "62515", "id": "1234567890123456789",
            "version": 10, "received": 20,
            "amount": 1500.25, "stage_id": "closedwon", "status": "won",
            "won_at": "2023-11-14 22:13:20", "lost_reason": null,
            "known": ["amount", "stage_id", "status", "won_at", "lost_reason"],
        })]
    );
}

#[test]
fn whole_rows_carry_every_column() {
    let stage = Stage {
        key: key("appointmentscheduled"),
        version: 5,
        pipeline_id: "default".into(),
        name: "Appointment scheduled".into(),
        display_order: 0,
        probability: Some(20.0),
        outcome: Outcome::Open,
        archived: false,
    };
    let transition = StageTransition {
        deal: key("42"),
        entered_at_micro: 1_700_000_000_000_001,
        pipeline_id: "default".into(),
        from_stage_id: String::new(),
        to_stage_id: "appointmentscheduled".into(),
        from_status: String::new(),
        to_status: "open".into(),
        change_source: "CRM_UI".into(),
    };
    let field = CustomField {
        key: key("deal_tier"),
        object: "deal".into(),
        version: 1,
        label: "Tier".into(),
        field_type: "enumeration".into(),
        options: vec![("gold".into(), "Gold".into())],
    };
    let rows = rows(&[
        Record::Stage(stage),
        Record::StageTransition(transition),
        Record::CustomField(field),
    ]);
    assert_eq!(rows[0]["probability"], json!(20.0));
    assert_eq!(rows[0]["outcome"], json!("open"));
    assert_eq!(rows[1]["deal_id"], json!("42"));
    assert_eq!(rows[1]["entered_at"], json!("2023-11-14 22:13:20"));
    assert_eq!(rows[2]["option_ids"], json!(["gold"]));
    assert_eq!(rows[2]["option_labels"], json!(["Gold"]));
}

/// The field lists here and the columns of the migration agree.
#[test]
fn every_entity_field_has_its_columns_in_the_migration() {
    let sql = include_str!("../../../schemas/clickhouse/0011_canonical_model.sql");
    let entities: [(&str, &str, &[&str]); 6] = [
        ("tributary", Deal::CHANGES_TABLE, Deal::FIELDS),
        ("tributary", Activity::CHANGES_TABLE, Activity::FIELDS),
        ("tributary", Company::CHANGES_TABLE, Company::FIELDS),
        ("tributary", Contact::CHANGES_TABLE, Contact::FIELDS),
        (
            "tributary_pii",
            ContactPii::CHANGES_TABLE,
            ContactPii::FIELDS,
        ),
        ("tributary", User::CHANGES_TABLE, User::FIELDS),
    ];
    for (database, table, fields) in entities {
        let start = sql
            .find(&format!("CREATE TABLE IF NOT EXISTS {database}.{table} ("))
            .unwrap_or_else(|| panic!("{database}.{table} in the migration"));
        let body = &sql[start..start + sql[start..].find(") ENGINE").expect("end")];
        for field in fields {
            assert!(
                body.contains(&format!("\n    {field} Nullable(")),
                "{database}.{table} has a nullable column {field}"
            );
        }
        let columns = body.matches(" Nullable(").count();
        assert_eq!(
            columns,
            fields.len(),
            "{database}.{table}: no extra columns"
        );
    }
}

#[test]
fn custom_fields_come_with_their_definitions_by_stable_key() {
    let event = json!({
        "custom_lead_source": "web", "custom_tier": null,
        "custom_field_names": ["lead_source", "tier", "gone"],
        "custom_field_labels": ["Lead source", "Tier", "Gone"],
        "custom_field_types": ["enumeration", "string", "string"],
        "custom_field_options": ["lead_source\tweb\tWeb", "lead_source\tevent\tEvent"],
    });
    let flat = Flat::new(event.as_object().expect("object"));
    let records = flat::custom_fields(&flat, &key("42"), "deal", 9).expect("reads");
    let values: Vec<(&str, Option<&str>)> = records
        .iter()
        .filter_map(|r| match r {
            Record::CustomValue(v) => Some((v.field_key.as_str(), v.value.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(
        values,
        [("lead_source", Some("web")), ("tier", None)],
        "a field the event does not carry is not claimed empty"
    );
    let lead_source = records
        .iter()
        .find_map(|r| match r {
            Record::CustomField(f) if f.key.id == "lead_source" => Some(f),
            _ => None,
        })
        .expect("its definition");
    assert_eq!(lead_source.label, "Lead source");
    assert_eq!(
        lead_source.options,
        [
            ("web".to_owned(), "Web".to_owned()),
            ("event".to_owned(), "Event".to_owned())
        ]
    );
    assert_eq!(lead_source.key.tenant, "acme", "kept per tenant and source");
}
