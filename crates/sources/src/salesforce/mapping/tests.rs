use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tributary_envelope::{EventKeys, RawEvent};
use tributary_model::{Context, DealStatus, Field, Mapping, Outcome, Record};

use super::SalesforceMapping;
use crate::salesforce::enrich::SalesforceEnricher;
use crate::salesforce::tenant_settings;

const ORG: &str = "00D5g000004ABCDEA4";

fn enricher(currency: Option<&str>) -> SalesforceEnricher {
    let mut section = json!({"organization_id": ORG, "endpoint_secret": "s"});
    if let Some(currency) = currency {
        section["currency"] = json!(currency);
    }
    SalesforceEnricher::new(BTreeMap::from([(
        "acme".to_owned(),
        tenant_settings(&section).expect("valid"),
    )]))
}

/// A notification's bytes as the collector stores them (no envelope).
fn notification(object: &str, id: &str, fields: &str) -> Bytes {
    Bytes::from(format!(
        r#"<Notification><Id>04l5g000000AbCdAAA</Id><sObject xsi:type="sf:{object}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>{id}</sf:Id>{fields}</sObject></Notification>"#
    ))
}

fn raw(object: &str, id: &str, body: Bytes) -> RawEvent {
    RawEvent {
        tenant: "acme".into(),
        source: "salesforce".into(),
        event_id: "e-1".into(),
        received_at_micros: 1_741_096_999_000_000,
        body,
        keys: Some(EventKeys {
            payload_version: "outbound-message".into(),
            object: object.to_ascii_lowercase(),
            object_id: id.into(),
            action: "notified".into(),
            attempt: 1,
            occurred_at_micros: 1_741_096_900_123_000,
        }),
        ..RawEvent::default()
    }
}

fn flat(enricher: &SalesforceEnricher, raw: &RawEvent) -> Map<String, Value> {
    enricher
        .flat_event(raw)
        .expect("enriched")
        .into_map()
        .expect("no collision")
}

fn map(fields: &Map<String, Value>) -> Vec<Record> {
    let context = Context {
        tenant: "acme",
        source: "salesforce",
        received_at_micro: 1_741_096_999_000_000,
        missing: &[],
    };
    SalesforceMapping
        .map(&context, fields)
        .expect("mapped")
        .records
}

const OPPORTUNITY: &str = "0065g00000AbCdEAAV";

#[test]
fn a_won_opportunity_is_a_won_deal_at_its_close_date_with_its_stage() {
    let body = notification(
        "Opportunity",
        OPPORTUNITY,
        "<sf:AccountId>0015g00000XyZaBAAV</sf:AccountId><sf:Amount>125000.5</sf:Amount><sf:CloseDate>2025-03-04</sf:CloseDate>\
         <sf:IsClosed>true</sf:IsClosed><sf:IsWon>true</sf:IsWon><sf:LastModifiedDate>2025-03-04T14:01:40.123Z</sf:LastModifiedDate>\
         <sf:Name>Big &amp; Bold</sf:Name><sf:OwnerId>0055g00000OwNeRAAV</sf:OwnerId><sf:Probability>100.0</sf:Probability>\
         <sf:StageName>Closed Won</sf:StageName><sf:NextStep xsi:nil=\"true\"/>",
    );
    let fields = flat(
        &enricher(Some("EUR")),
        &raw("Opportunity", OPPORTUNITY, body),
    );
    assert_eq!(fields["event_organization_id"], ORG);
    assert_eq!(fields["sobject_NextStep"], Value::Null);
    assert_eq!(fields["pipeline_enrichment_status"], "complete");
    let records = map(&fields);
    let deal = records
        .iter()
        .find_map(|r| match r {
            Record::Deal(d) => Some(d),
            _ => None,
        })
        .expect("a deal");
    assert_eq!(deal.key.account, ORG);
    assert_eq!(deal.key.id, OPPORTUNITY);
    assert_eq!(deal.version.at_micro, 1_741_096_900_123_000);
    assert_eq!(deal.title, Field::Value("Big & Bold".into()));
    assert_eq!(deal.amount_text, Field::Value("125000.5".into()));
    assert_eq!(
        deal.currency,
        Field::Value("EUR".into()),
        "the org's currency"
    );
    assert_eq!(deal.status, Field::Value(DealStatus::Won));
    assert_eq!(deal.stage_id, Field::Value("Closed Won".into()));
    assert_eq!(deal.probability, Field::Value(100.0));
    assert_eq!(deal.company_id, Field::Value("0015g00000XyZaBAAV".into()));
    let won_at = deal.won_at.value().expect("won at");
    assert_eq!(won_at.seconds(), 1_741_046_400, "2025-03-04T00:00:00Z");
    assert_eq!(deal.lost_at, Field::Null);
    // Not selected in the message: unknown, so nothing known is blanked.
    assert_eq!(deal.created_at, Field::Unknown);
    assert_eq!(deal.marketing_source, Field::Unknown);
    let stage = records
        .iter()
        .find_map(|r| match r {
            Record::Stage(s) => Some(s),
            _ => None,
        })
        .expect("a stage");
    assert_eq!(stage.outcome, Outcome::Won);
    assert_eq!(stage.name, "Closed Won");
}

/// The stage entries a notification with `fields` maps into.
fn entries(fields: &str) -> Vec<(String, i64, String)> {
    let body = notification("Opportunity", OPPORTUNITY, fields);
    crate::mapped::stage_entries(&map(&flat(
        &enricher(None),
        &raw("Opportunity", OPPORTUNITY, body),
    )))
}

#[test]
fn an_opportunity_enters_its_stage_when_the_message_says() {
    let open = "<sf:IsClosed>false</sf:IsClosed><sf:IsWon>false</sf:IsWon><sf:StageName>Proposal</sf:StageName>";
    assert_eq!(
        entries(&format!(
            "{open}<sf:LastStageChangeDate>2025-03-02T09:30:00.000Z</sf:LastStageChangeDate>\
             <sf:CreatedDate>2025-02-01T08:00:00.000Z</sf:CreatedDate><sf:LastModifiedDate>2025-03-04T14:01:40.123Z</sf:LastModifiedDate>"
        )),
        [(
            "Proposal".to_owned(),
            1_740_907_800_000_000,
            "open".to_owned()
        )],
        "at its LastStageChangeDate"
    );
    assert!(
        entries(&format!(
            "{open}<sf:CreatedDate>2025-02-01T08:00:00.000Z</sf:CreatedDate><sf:LastModifiedDate>2025-03-04T14:01:40.123Z</sf:LastModifiedDate>"
        ))
        .is_empty(),
        "modified since its creation: when it entered the stage is not said"
    );
    assert_eq!(
        entries(&format!(
            "{open}<sf:CreatedDate>2025-02-01T08:00:00.000Z</sf:CreatedDate><sf:LastModifiedDate>2025-02-01T08:00:00.000Z</sf:LastModifiedDate>"
        )),
        [(
            "Proposal".to_owned(),
            1_738_396_800_000_000,
            "open".to_owned()
        )],
        "never modified: it entered its stage at its creation"
    );
    // A change event carries only what changed: its StageName moved.
    let body = notification("Opportunity", OPPORTUNITY, open);
    let mut fields = flat(&enricher(None), &raw("Opportunity", OPPORTUNITY, body));
    fields.insert("event_change_event".into(), json!(true));
    assert_eq!(
        crate::mapped::stage_entries(&map(&fields)),
        [(
            "Proposal".to_owned(),
            1_741_096_900_000_000,
            "open".to_owned()
        )],
        "at the commit's second, as LastStageChangeDate would say it"
    );
}

#[test]
fn closed_and_not_won_is_lost_and_the_record_currency_wins() {
    let body = notification(
        "Opportunity",
        OPPORTUNITY,
        "<sf:CurrencyIsoCode>USD</sf:CurrencyIsoCode><sf:IsClosed>true</sf:IsClosed><sf:IsWon>false</sf:IsWon>\
         <sf:StageName>Perdue</sf:StageName><sf:CloseDate>2025-02-01</sf:CloseDate>",
    );
    let records = map(&flat(
        &enricher(Some("EUR")),
        &raw("Opportunity", OPPORTUNITY, body),
    ));
    let Some(Record::Deal(deal)) = records.iter().find(|r| matches!(r, Record::Deal(_))) else {
        panic!("a deal")
    };
    assert_eq!(deal.status, Field::Value(DealStatus::Lost));
    assert_eq!(deal.currency, Field::Value("USD".into()));
    assert!(deal.lost_at.is_known() && deal.won_at == Field::Null);
    let Some(Record::Stage(stage)) = records.iter().find(|r| matches!(r, Record::Stage(_))) else {
        panic!("a stage")
    };
    assert_eq!(
        stage.outcome,
        Outcome::Lost,
        "from IsWon/IsClosed, not the name"
    );

    // Without IsWon and IsClosed the status is unknown: no stage outcome is guessed.
    let body = notification(
        "Opportunity",
        OPPORTUNITY,
        "<sf:StageName>Closed Won</sf:StageName>",
    );
    let records = map(&flat(
        &enricher(None),
        &raw("Opportunity", OPPORTUNITY, body),
    ));
    let Some(Record::Deal(deal)) = records.iter().find(|r| matches!(r, Record::Deal(_))) else {
        panic!("a deal")
    };
    assert_eq!(deal.status, Field::Unknown);
    assert_eq!(deal.currency, Field::Unknown);
    assert!(!records.iter().any(|r| matches!(r, Record::Stage(_))));
}

#[test]
fn a_change_event_that_closes_without_is_won_is_lost() {
    // A change event carries what changed: losing an open opportunity
    // changes IsClosed, not IsWon; losing a won one changes IsWon, not
    // IsClosed.
    let status = |fields: &str, change_event: bool| {
        let body = notification("Opportunity", OPPORTUNITY, fields);
        let mut flat = flat(
            &enricher(Some("EUR")),
            &raw("Opportunity", OPPORTUNITY, body),
        );
        if change_event {
            flat.insert("event_change_event".into(), json!(true));
        }
        map(&flat).into_iter().find_map(|r| match r {
            Record::Deal(deal) => Some(deal.status),
            _ => None,
        })
    };
    let lost = Some(Field::Value(DealStatus::Lost));
    assert_eq!(status("<sf:IsClosed>true</sf:IsClosed>", true), lost);
    assert_eq!(status("<sf:IsWon>false</sf:IsWon>", true), lost);
    assert_eq!(
        status("<sf:IsWon>true</sf:IsWon>", true),
        Some(Field::Value(DealStatus::Won))
    );
    assert_eq!(
        status("<sf:IsClosed>false</sf:IsClosed>", true),
        Some(Field::Value(DealStatus::Open)),
        "reopened"
    );
    assert_eq!(
        status("<sf:IsClosed>true</sf:IsClosed>", false),
        Some(Field::Unknown),
        "a message that selects IsClosed but not IsWon says no more"
    );
}

#[test]
fn tasks_and_events_are_activities_about_what_they_name() {
    let activity = |object: &str, id: &str, fields: &str| {
        let body = notification(object, id, fields);
        let flat = flat(&enricher(Some("EUR")), &raw(object, id, body));
        assert!(
            !flat.contains_key("sobject_Description"),
            "a description is free text about people: {flat:?}"
        );
        map(&flat)
            .into_iter()
            .find_map(|r| match r {
                Record::Activity(activity) => Some(activity),
                _ => None,
            })
            .expect("an activity")
    };
    let call = activity(
        "Task",
        "00T5g00000AbCdEAAV",
        "<sf:Subject>Pricing call</sf:Subject><sf:TaskSubtype>Call</sf:TaskSubtype>\
         <sf:Type xsi:nil=\"true\"/><sf:Description>her husband's birthday</sf:Description>\
         <sf:IsClosed>true</sf:IsClosed><sf:CompletedDateTime>2025-03-04T16:30:00.000Z</sf:CompletedDateTime>\
         <sf:ActivityDate>2025-03-04</sf:ActivityDate><sf:WhatId>0065g00000AbCdEAAV</sf:WhatId>\
         <sf:WhoId>0035g00000AbCdEAAV</sf:WhoId><sf:AccountId>0015g00000AbCdEAAV</sf:AccountId>\
         <sf:OwnerId>0055g00000OwNeRAAA</sf:OwnerId><sf:LastModifiedDate>2025-03-04T16:31:00.000Z</sf:LastModifiedDate>",
    );
    assert_eq!(call.kind, Field::Value(tributary_model::ActivityType::Call));
    assert_eq!(call.raw_type, Field::Value("Call".into()));
    assert_eq!(call.subject, Field::Value("Pricing call".into()));
    assert_eq!(call.done, Field::Value(true));
    assert_eq!(
        call.done_at.value().map(|t| t.seconds()),
        Some(1_741_105_800)
    );
    assert_eq!(call.deal_id, Field::Value(OPPORTUNITY.into()));
    assert_eq!(call.contact_id, Field::Value("0035g00000AbCdEAAV".into()));
    assert_eq!(call.company_id, Field::Value("0015g00000AbCdEAAV".into()));
    assert_eq!(call.owner_id, Field::Value("0055g00000OwNeRAAA".into()));

    let open = activity(
        "Task",
        "00T5g00000AbCdFAAV",
        "<sf:Subject>Send contract</sf:Subject><sf:IsClosed>false</sf:IsClosed>\
         <sf:WhatId>0015g00000AbCdEAAV</sf:WhatId>",
    );
    assert_eq!(
        open.kind,
        Field::Unknown,
        "neither Type nor subtype selected"
    );
    assert_eq!(open.done, Field::Value(false));
    assert_eq!(open.done_at, Field::Null);
    assert_eq!(open.company_id, Field::Value("0015g00000AbCdEAAV".into()));
    assert_eq!(open.deal_id, Field::Null);

    let meeting = activity(
        "Event",
        "00U5g00000AbCdEAAV",
        "<sf:Subject>Demo</sf:Subject><sf:Type xsi:nil=\"true\"/><sf:EventSubtype>Event</sf:EventSubtype>\
         <sf:StartDateTime>2025-03-05T09:00:00.000Z</sf:StartDateTime><sf:WhatId>0065g00000AbCdEAAV</sf:WhatId>",
    );
    assert_eq!(
        meeting.kind,
        Field::Value(tributary_model::ActivityType::Meeting)
    );
    assert_eq!(
        meeting.due_at.value().map(|t| t.seconds()),
        Some(1_741_165_200)
    );
    assert_eq!(
        meeting.done,
        Field::Null,
        "Salesforce keeps no done flag for events"
    );
    assert_eq!(meeting.deal_id, Field::Value(OPPORTUNITY.into()));
}

#[test]
fn contacts_pass_on_no_personal_data_and_accounts_their_domain() {
    let contact_id = "0035g00000CoNtAAAV";
    let body = notification(
        "Contact",
        contact_id,
        "<sf:AccountId>0015g00000XyZaBAAV</sf:AccountId><sf:Email>jane@example.com</sf:Email>\
         <sf:FirstName>Jane</sf:FirstName><sf:Phone>+1 555 0100</sf:Phone>",
    );
    let fields = flat(&enricher(None), &raw("Contact", contact_id, body));
    let text = serde_json::to_string(&fields).expect("json");
    for personal in ["jane@example.com", "Jane", "555"] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }
    assert_eq!(fields["sobject_AccountId"], "0015g00000XyZaBAAV");
    let Some(Record::Contact(contact)) = map(&fields).into_iter().next() else {
        panic!("a contact")
    };
    assert_eq!(
        contact.company_id,
        Field::Value("0015g00000XyZaBAAV".into())
    );

    let account_id = "0015g00000XyZaBAAV";
    let body = notification(
        "Account",
        account_id,
        "<sf:Name>Acme</sf:Name><sf:Website>https://www.Acme.com/about</sf:Website>",
    );
    let Some(Record::Company(company)) =
        map(&flat(&enricher(None), &raw("Account", account_id, body)))
            .into_iter()
            .next()
    else {
        panic!("a company")
    };
    assert_eq!(company.domain, Field::Value("acme.com".into()));
    assert_eq!(company.name, Field::Value("Acme".into()));
}

#[test]
fn an_unreadable_notification_or_unknown_object_is_refused_with_why() {
    let broken = raw(
        "Opportunity",
        OPPORTUNITY,
        Bytes::from_static(b"<Notification><Id>"),
    );
    let failure = enricher(None).flat_event(&broken).expect_err("unreadable");
    assert_eq!(failure.reason.code(), "unreadable_body");
    let lead = notification("Lead", "00Q5g00000LeAdAAAV", "");
    let fields = flat(&enricher(None), &raw("Lead", "00Q5g00000LeAdAAAV", lead));
    let context = Context {
        tenant: "acme",
        source: "salesforce",
        received_at_micro: 0,
        missing: &[],
    };
    let err = SalesforceMapping
        .map(&context, &fields)
        .expect_err("no mapping");
    assert!(err.to_string().contains("lead"), "{err}");
}
