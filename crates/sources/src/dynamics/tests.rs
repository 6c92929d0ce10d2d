use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};
use tributary_envelope::RawEvent;
use tributary_model::{Context, DealStatus, Field, Mapping, Record};

use super::context::{attributes, guid, plain, wcf_date_millis};
use super::enrich::DynamicsEnricher;
use super::mapping::DynamicsMapping;
use super::*;
use crate::{AuthFailure, Refusal, WebhookRequest, WebhookSource};

const ORG: &str = "9f2a1c34-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
const OPPORTUNITY: &str = "3a5b7c9d-1e2f-4a6b-8c0d-2e4f6a8b0c1d";
const ACCOUNT: &str = "7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e";

fn entity_type(kind: &str) -> String {
    format!("{kind}:http://schemas.microsoft.com/xrm/2011/Contracts")
}

/// A context as a webhook step on the opportunity posts it (Microsoft's
/// documented shape: key/value lists and WCF values).
fn context(
    message: &str,
    target: Value,
    post_image: Option<Value>,
    extra_parameters: Vec<Value>,
) -> Value {
    let mut parameters = vec![json!({"key": "Target", "value": target})];
    parameters.extend(extra_parameters);
    json!({
        "BusinessUnitId": "f0bf3c9a-8150-e711-811d-e0071b6ac1f1",
        "CorrelationId": "39499111-e689-4be4-9d3a-7f5f0a5a8e2c",
        "Depth": 1,
        "InitiatingUserId": "77dfe2c9-3c5e-4b55-a6d8-d43c1b2c6a51",
        "InputParameters": parameters,
        "IsExecutingOffline": false,
        "IsInTransaction": false,
        "IsOfflinePlayback": false,
        "IsolationMode": 1,
        "MessageName": message,
        "Mode": 1,
        "OperationCreatedOn": "/Date(1741096900000+0000)/",
        "OperationId": "c8a1b2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d",
        "OrganizationId": ORG,
        "OrganizationName": "contoso",
        "OutputParameters": [],
        "ParentContext": null,
        "PostEntityImages": post_image.map_or(json!([]), |image| json!([{"key": "PostImage", "value": image}])),
        "PreEntityImages": [],
        "PrimaryEntityId": OPPORTUNITY,
        "PrimaryEntityName": "opportunity",
        "RequestId": "2f3e4d5c-6b7a-4988-a7b6-c5d4e3f2a1b0",
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": 40,
        "UserId": "77dfe2c9-3c5e-4b55-a6d8-d43c1b2c6a51"
    })
}

fn opportunity_entity(attributes: Vec<(&str, Value)>) -> Value {
    json!({
        "__type": entity_type("Entity"),
        "Attributes": attributes.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        "EntityState": null,
        "FormattedValues": [],
        "Id": OPPORTUNITY,
        "KeyAttributes": [],
        "LogicalName": "opportunity",
        "RelatedEntities": [],
        "RowVersion": "1234567"
    })
}

fn full_opportunity(statecode: i64, modified_ms: i64) -> Value {
    opportunity_entity(vec![
        ("opportunityid", json!(OPPORTUNITY)),
        ("name", json!("Fabrikam renewal")),
        (
            "estimatedvalue",
            json!({"__type": entity_type("Money"), "Value": 1200.5}),
        ),
        (
            "statecode",
            json!({"__type": entity_type("OptionSetValue"), "Value": statecode}),
        ),
        ("stepname", json!("3-Propose")),
        ("closeprobability", json!(40)),
        ("estimatedclosedate", json!("/Date(1743379200000)/")),
        (
            "parentaccountid",
            json!({"__type": entity_type("EntityReference"), "Id": ACCOUNT.to_ascii_uppercase(), "KeyAttributes": [], "LogicalName": "account", "Name": "Fabrikam", "RowVersion": null}),
        ),
        (
            "ownerid",
            json!({"__type": entity_type("EntityReference"), "Id": "77dfe2c9-3c5e-4b55-a6d8-d43c1b2c6a51", "LogicalName": "systemuser", "Name": "Ada Rep"}),
        ),
        ("modifiedon", json!(format!("/Date({modified_ms})/"))),
    ])
}

fn source(auth: Value) -> Dynamics {
    let mut section = json!({"organization_id": ORG.to_ascii_uppercase(), "secret": "k3y"});
    if let Value::Object(extra) = auth {
        section.as_object_mut().unwrap().extend(extra);
    }
    Dynamics::from_sections(vec![("acme", &section)]).expect("valid settings")
}

fn request<'a>(
    uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
    body: &'a Bytes,
) -> WebhookRequest<'a> {
    WebhookRequest {
        method: &http::Method::POST,
        uri,
        headers,
        body,
    }
}

#[test]
fn wcf_values_read_as_plain_values() {
    assert_eq!(
        wcf_date_millis("/Date(1506384247000)/"),
        Some(1_506_384_247_000)
    );
    assert_eq!(
        wcf_date_millis("/Date(1506384247000+0000)/"),
        Some(1_506_384_247_000)
    );
    assert_eq!(wcf_date_millis("/Date(-1000)/"), Some(-1000));
    assert_eq!(wcf_date_millis("/Date()/"), None);
    assert_eq!(wcf_date_millis("2025-01-01"), None);
    assert_eq!(plain(&json!({"Value": 3})), json!(3));
    assert_eq!(
        plain(&json!("/Date(0)/")),
        json!("1970-01-01T00:00:00.000Z")
    );
    assert_eq!(
        guid("{3A5B7C9D-1E2F-4A6B-8C0D-2E4F6A8B0C1D}").as_deref(),
        Some(OPPORTUNITY)
    );
    assert_eq!(guid("3a5b7c9d1e2f4a6b8c0d2e4f6a8b0c1d"), None);
    let attrs = attributes(&full_opportunity(0, 1_741_096_900_000));
    assert_eq!(attrs["parentaccountid"], ACCOUNT);
    assert_eq!(attrs["parentaccountid_name"], "Fabrikam");
    assert_eq!(attrs["parentaccountid_type"], "account");
    assert_eq!(attrs["estimatedvalue"], json!(1200.5));
    assert_eq!(attrs["statecode"], json!(0));
}

#[test]
fn settings_name_where_the_key_travels() {
    assert!(tenant_settings(&json!({"organization_id": ORG, "secret": "k"})).is_ok());
    let err = tenant_settings(&json!({"organization_id": "contoso", "secret": "k"}))
        .expect_err("not a GUID");
    assert!(err.contains("GUID"), "{err}");
    let err = tenant_settings(&json!({"organization_id": ORG, "secret": "k", "auth": "header"}))
        .expect_err("header without a name");
    assert!(err.contains("key_name"), "{err}");
    let err = tenant_settings(&json!({"organization_id": ORG, "secret": "k", "key_name": "x"}))
        .expect_err("a webhook key has no name");
    assert!(err.contains("key_name"), "{err}");
    let err = tenant_settings(&json!({"organization_id": ORG, "secret": ""})).expect_err("empty");
    assert!(err.contains("secret"), "{err}");
    let shown = format!(
        "{:?}",
        tenant_settings(&json!({"organization_id": ORG, "secret": "hunter2"})).unwrap()
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn each_authentication_the_registration_offers_is_checked() {
    let body = Bytes::from(
        serde_json::to_vec(&context("Update", full_opportunity(0, 1), None, vec![])).unwrap(),
    );
    let none = http::HeaderMap::new();
    let check = |source: &Dynamics, uri: &str, headers: &http::HeaderMap| {
        let uri: http::Uri = uri.parse().unwrap();
        source.authenticate("acme", &request(&uri, headers, &body))
    };
    let key = source(json!({}));
    assert_eq!(
        check(&key, "/webhooks/dynamics/acme?code=k3y", &none),
        Ok(())
    );
    assert!(matches!(
        check(&key, "/webhooks/dynamics/acme", &none),
        Err(AuthFailure::MissingBecause(_))
    ));
    assert!(matches!(
        check(&key, "/webhooks/dynamics/acme?code=nope", &none),
        Err(AuthFailure::InvalidBecause(_))
    ));
    let header = source(json!({"auth": "header", "key_name": "X-Tributary-Key"}));
    let mut headers = http::HeaderMap::new();
    headers.insert("x-tributary-key", "k3y".parse().unwrap());
    assert_eq!(check(&header, "/webhooks/dynamics/acme", &headers), Ok(()));
    assert!(matches!(
        check(&header, "/webhooks/dynamics/acme?code=k3y", &none),
        Err(AuthFailure::MissingBecause(_))
    ));
    let query = source(json!({"auth": "query", "key_name": "token"}));
    assert_eq!(
        check(&query, "/webhooks/dynamics/acme?token=k3y", &none),
        Ok(())
    );
    // Another organization's context on the tenant's address.
    let mut foreign = context("Update", full_opportunity(0, 1), None, vec![]);
    foreign["OrganizationId"] = json!("00000000-1111-2222-3333-444444444444");
    let foreign = Bytes::from(serde_json::to_vec(&foreign).unwrap());
    let uri: http::Uri = "/webhooks/dynamics/acme?code=k3y".parse().unwrap();
    assert!(matches!(
        key.authenticate("acme", &request(&uri, &none, &foreign)),
        Err(AuthFailure::Forbidden(_))
    ));
}

#[test]
fn a_context_is_one_event_identified_by_its_execution() {
    let source = source(json!({}));
    let uri: http::Uri = "/webhooks/dynamics/acme?code=k3y".parse().unwrap();
    let mut headers = http::HeaderMap::new();
    let body = Bytes::from(
        serde_json::to_vec(&context(
            "Update",
            full_opportunity(0, 1_741_096_950_000),
            Some(full_opportunity(0, 1_741_096_950_000)),
            vec![],
        ))
        .unwrap(),
    );
    let delivery = source
        .split("acme", &request(&uri, &headers, &body))
        .expect("accepted");
    let keys = &delivery.events[0].keys;
    assert_eq!(keys.object, "opportunity");
    assert_eq!(keys.object_id, OPPORTUNITY);
    assert_eq!(keys.action, "Update");
    assert_eq!(
        keys.occurred_at_micros, 1_741_096_950_000_000,
        "the record's modifiedon"
    );
    assert!(keys.warnings.is_empty());
    let again = source
        .split("acme", &request(&uri, &headers, &body))
        .expect("accepted");
    assert_eq!(
        again.events[0].keys.event_id, keys.event_id,
        "a retry is the same event"
    );
    let mut other = context("Update", full_opportunity(0, 1), None, vec![]);
    other["OperationId"] = json!("d9b2c3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e");
    let other = Bytes::from(serde_json::to_vec(&other).unwrap());
    let other = source
        .split("acme", &request(&uri, &headers, &other))
        .expect("accepted");
    assert_ne!(other.events[0].keys.event_id, keys.event_id);

    headers.insert(SIZE_EXCEEDED_HEADER, "true".parse().unwrap());
    let mut stripped = context("Update", full_opportunity(0, 1), None, vec![]);
    stripped["InputParameters"] = json!([]);
    let stripped = Bytes::from(serde_json::to_vec(&stripped).unwrap());
    let delivery = source
        .split("acme", &request(&uri, &headers, &stripped))
        .expect("accepted");
    let keys = &delivery.events[0].keys;
    assert_eq!(keys.warnings[0].code, "message_size_exceeded");
    assert_eq!(
        keys.occurred_at_micros, 1_741_096_900_000_000,
        "the operation's time"
    );
}

#[test]
fn what_is_not_a_context_is_refused_with_every_reason() {
    let source = source(json!({}));
    let uri: http::Uri = "/webhooks/dynamics/acme?code=k3y".parse().unwrap();
    let headers = http::HeaderMap::new();
    let split = |body: &[u8]| {
        source.split(
            "acme",
            &request(&uri, &headers, &Bytes::copy_from_slice(body)),
        )
    };
    assert!(matches!(
        split(b"{not json"),
        Err(Refusal::MalformedJson(_))
    ));
    assert!(matches!(split(b"[1]"), Err(Refusal::Invalid(_))));
    match split(br#"{"MessageName": 3, "PrimaryEntityId": "abc", "OrganizationId": "x", "InputParameters": {}}"#) {
        Err(Refusal::Invalid(violations)) => {
            let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
            assert_eq!(fields, ["MessageName", "PrimaryEntityName", "PrimaryEntityId", "OrganizationId", "InputParameters"]);
        }
        other => panic!("{other:?}"),
    }
}

fn enriched(body: &Value) -> serde_json::Map<String, Value> {
    enriched_with(body, &http::HeaderMap::new())
}

fn enriched_with(body: &Value, headers: &http::HeaderMap) -> serde_json::Map<String, Value> {
    let raw = raw_event(body, headers);
    let settings =
        tenant_settings(&json!({"organization_id": ORG, "secret": "k3y", "currency": "GBP"}))
            .unwrap();
    DynamicsEnricher::new(BTreeMap::from([("acme".to_owned(), settings)]))
        .flat_event(&raw)
        .expect("enriched")
        .0
        .into_map()
        .expect("no collision")
}

/// The raw event the collector makes of a context.
fn raw_event(body: &Value, headers: &http::HeaderMap) -> RawEvent {
    let source = source(json!({}));
    let uri: http::Uri = "/webhooks/dynamics/acme?code=k3y".parse().unwrap();
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap());
    let delivery = source
        .split("acme", &request(&uri, headers, &bytes))
        .expect("accepted");
    delivery.events[0]
        .keys
        .raw_event("acme", NAME, 1_741_097_000_000_000, bytes)
}

/// The records an enriched event maps into.
fn records(fields: &serde_json::Map<String, Value>) -> Vec<Record> {
    let context = Context {
        tenant: "acme",
        source: NAME,
        received_at_micro: 1,
        missing: &[],
    };
    DynamicsMapping
        .map(&context, fields)
        .expect("mapped")
        .records
}

fn deal(fields: &serde_json::Map<String, Value>) -> tributary_model::Deal {
    records(fields)
        .into_iter()
        .find_map(|r| match r {
            Record::Deal(d) => Some(d),
            _ => None,
        })
        .expect("a deal")
}

#[test]
fn an_update_maps_the_post_image_into_a_deal() {
    let fields = enriched(&context(
        "Update",
        opportunity_entity(vec![("stepname", json!("3-Propose"))]),
        Some(full_opportunity(0, 1_741_096_950_000)),
        vec![],
    ));
    assert_eq!(fields["attr_parentaccountid_name"], "Fabrikam");
    let deal = deal(&fields);
    assert_eq!(deal.key.account, ORG);
    assert_eq!(deal.version.at_micro, 1_741_096_950_000_000);
    assert_eq!(deal.title, Field::Value("Fabrikam renewal".into()));
    assert_eq!(deal.amount_text, Field::Value("1200.5".into()));
    assert_eq!(deal.currency, Field::Value("GBP".into()));
    assert_eq!(deal.status, Field::Value(DealStatus::Open));
    assert_eq!(deal.stage_id, Field::Value("3-Propose".into()));
    assert_eq!(
        deal.company_id,
        Field::Value(ACCOUNT.into()),
        "GUIDs in lower case"
    );
    assert_eq!(deal.probability, Field::Value(40.0));
    let stage = records(&fields)
        .into_iter()
        .find_map(|r| match r {
            Record::Stage(stage) => Some(stage),
            _ => None,
        })
        .expect("the open stage");
    assert_eq!(
        (stage.name.as_str(), stage.display_order),
        ("3-Propose", 3),
        "ordered by the process stage's number"
    );

    // A step without an image carries what changed only: the rest stays unknown.
    let fields = enriched(&context(
        "Update",
        opportunity_entity(vec![("name", json!("Renamed"))]),
        None,
        vec![],
    ));
    let deal = self::deal(&fields);
    assert_eq!(deal.title, Field::Value("Renamed".into()));
    assert_eq!(deal.status, Field::Unknown);
    assert_eq!(deal.amount, Field::Unknown);
    assert_eq!(deal.currency, Field::Unknown);
}

/// The stage entries an event's mapping records: stage, time, status.
fn entries(fields: &serde_json::Map<String, Value>) -> Vec<(String, i64, String)> {
    crate::mapped::stage_entries(&records(fields))
}

#[test]
fn only_an_operation_that_sets_the_stage_enters_it() {
    let moved = enriched(&context(
        "Update",
        opportunity_entity(vec![("stepname", json!("3-Propose"))]),
        Some(full_opportunity(0, 1_741_096_950_000)),
        vec![],
    ));
    assert_eq!(
        entries(&moved),
        [(
            "3-Propose".to_owned(),
            1_741_096_950_000_000,
            "open".to_owned()
        )]
    );
    // The image names the stage, but the operation set only the name.
    let renamed = enriched(&context(
        "Update",
        opportunity_entity(vec![("name", json!("Renamed"))]),
        Some(full_opportunity(0, 1_741_096_960_000)),
        vec![],
    ));
    assert_eq!(renamed["attr_stepname"], "3-Propose");
    assert!(entries(&renamed).is_empty(), "the stage did not move");
}

/// A `Win` of the opportunity: its close and status, no target, no image.
fn win_context() -> Value {
    let close = json!({"key": "OpportunityClose", "value": {
        "__type": entity_type("Entity"),
        "Attributes": [
            {"key": "opportunityid", "value": {"__type": entity_type("EntityReference"), "Id": OPPORTUNITY, "LogicalName": "opportunity", "Name": null}},
            {"key": "actualend", "value": "/Date(1741132800000)/"},
            {"key": "actualrevenue", "value": {"Value": 1300}}
        ],
        "Id": "00000000-0000-0000-0000-000000000000",
        "LogicalName": "opportunityclose"
    }});
    let status =
        json!({"key": "Status", "value": {"__type": entity_type("OptionSetValue"), "Value": 3}});
    let mut win = context(
        "Win",
        json!(null),
        None,
        vec![close.clone(), status.clone()],
    );
    win["InputParameters"] = json!([close, status]);
    win
}

#[test]
fn win_lose_and_delete_say_the_outcome() {
    let fields = enriched(&win_context());
    assert_eq!(
        fields["pipeline_enrichment_missing"],
        json!(["stage"]),
        "without the Web API the stage it closes in is unknown"
    );
    let deal = deal(&fields);
    assert_eq!(deal.status, Field::Value(DealStatus::Won));
    assert_eq!(
        deal.won_at.value().map(|t| t.seconds()),
        Some(1_741_132_800)
    );
    assert_eq!(deal.lost_at, Field::Null);

    let lost = deal_of(2);
    assert_eq!(lost.status, Field::Value(DealStatus::Lost));

    let mut delete = context(
        "Delete",
        json!({"__type": entity_type("EntityReference"), "Id": OPPORTUNITY, "LogicalName": "opportunity"}),
        None,
        vec![],
    );
    delete["PostEntityImages"] = json!([]);
    let deal = self::deal(&enriched(&delete));
    assert_eq!(deal.deleted, Field::Value(true));
    assert_eq!(deal.title, Field::Unknown, "a delete blanks nothing");
}

fn deal_of(statecode: i64) -> tributary_model::Deal {
    deal(&enriched(&context(
        "Update",
        full_opportunity(statecode, 2),
        Some(full_opportunity(statecode, 2)),
        vec![],
    )))
}

#[test]
fn the_fixture_context_is_accepted_and_maps_into_an_open_deal() {
    let fixture = include_str!("../../../../tests/fixtures/dynamics/opportunity-update.json");
    let body: Value = serde_json::from_str(fixture).expect("JSON");
    let source = source(json!({}));
    let uri: http::Uri = "/webhooks/dynamics/acme?code=k3y".parse().unwrap();
    let headers = http::HeaderMap::new();
    let bytes = Bytes::from(fixture.to_owned());
    assert_eq!(
        source.authenticate("acme", &request(&uri, &headers, &bytes)),
        Ok(())
    );
    let deal = deal(&enriched(&body));
    assert_eq!(deal.status, Field::Value(DealStatus::Open));
    assert_eq!(deal.stage_id, Field::Value("3-Propose".into()));
    assert_eq!(deal.title, Field::Value("Fabrikam renewal".into()));
}

#[test]
fn a_context_stripped_for_size_is_partial_missing_the_record() {
    let mut headers = http::HeaderMap::new();
    headers.insert(SIZE_EXCEEDED_HEADER, "true".parse().unwrap());
    let mut stripped = context("Update", full_opportunity(0, 1), None, vec![]);
    stripped["InputParameters"] = json!([]);
    let fields = enriched_with(&stripped, &headers);
    assert_eq!(fields["pipeline_enrichment_status"], "partial");
    assert_eq!(fields["pipeline_enrichment_missing"], json!(["record"]));
    let whole = enriched(&context("Update", full_opportunity(0, 1), None, vec![]));
    assert_eq!(whole["pipeline_enrichment_status"], "complete");
}

mod web_api {
    use tributary_enrichment::EnrichmentSettings;
    use tributary_fake_apis::Running;
    use tributary_fake_apis::dynamics::{DataverseState, EntraApp, FakeDataverse};

    use super::*;
    use crate::{EnricherContext, SourceEnricher};

    const SCOPE: &str = "https://contoso.crm.dynamics.com/.default";

    async fn fake() -> Running<DataverseState> {
        let mut state = DataverseState {
            app: Some(EntraApp {
                directory: "contoso-directory".into(),
                client_id: "app-id".into(),
                client_secret: "app-secret".into(),
                scope: SCOPE.into(),
                issued: 0,
            }),
            ..DataverseState::default()
        };
        state.put(
            "opportunities",
            OPPORTUNITY,
            json!({
                "@odata.etag": "W/\"1234567\"",
                "opportunityid": OPPORTUNITY,
                "name": "Fabrikam renewal",
                "estimatedvalue": 1200.5,
                "estimatedvalue@OData.Community.Display.V1.FormattedValue": "£1,200.50",
                "statecode": 1,
                "statecode@OData.Community.Display.V1.FormattedValue": "Won",
                "actualclosedate": "2025-03-04",
                "stepname": "4-Close",
                "salesstagecode": 3,
                "modifiedon": "2025-03-04T16:30:00Z",
                "_parentaccountid_value": ACCOUNT,
                "_parentaccountid_value@OData.Community.Display.V1.FormattedValue": "Fabrikam",
                "_parentaccountid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
                "_ownerid_value": "77dfe2c9-3c5e-4b55-a6d8-d43c1b2c6a51",
                "_ownerid_value@OData.Community.Display.V1.FormattedValue": "Ada Rep",
                "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser"
            }),
        );
        FakeDataverse::start(state).await.expect("fake Dataverse")
    }

    fn enricher(fake: &Running<DataverseState>, secret: &str) -> Box<dyn SourceEnricher> {
        let section = json!({
            "organization_id": ORG, "secret": "k3y", "currency": "GBP",
            "web_api_url": fake.base_url(),
            "oauth": {
                "token_url": format!("{}/contoso-directory/oauth2/v2.0/token", fake.base_url()),
                "client_id": "app-id", "client_secret": secret, "scope": SCOPE,
            },
        });
        let settings = EnrichmentSettings {
            max_attempts: 2,
            retry_budget_ms: 2_000,
            backoff_initial_ms: 10,
            ..EnrichmentSettings::default()
        };
        enrich::build(&EnricherContext {
            tenants: vec![("acme", &section)],
            settings: &settings,
            http: reqwest::Client::new(),
            email: None,
        })
        .expect("valid settings")
    }

    fn stripped() -> RawEvent {
        let mut headers = http::HeaderMap::new();
        headers.insert(SIZE_EXCEEDED_HEADER, "true".parse().unwrap());
        let mut body = context("Update", full_opportunity(0, 1), None, vec![]);
        body["InputParameters"] = json!([]);
        raw_event(&body, &headers)
    }

    #[tokio::test]
    async fn a_stripped_context_has_its_record_read_with_an_application_users_token() {
        let fake = fake().await;
        let enricher = enricher(&fake, "app-secret");
        let enriched = enricher.enrich(&stripped()).await.expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let fields: serde_json::Map<String, Value> =
            serde_json::from_slice(&enriched.payload).expect("JSON");
        assert_eq!(fields["attr_name"], "Fabrikam renewal");
        assert_eq!(fields["attr_parentaccountid_name"], "Fabrikam");
        assert_eq!(fields["attr_ownerid_type"], "systemuser");
        let deal = deal(&fields);
        assert_eq!(deal.status, Field::Value(DealStatus::Won));
        assert_eq!(deal.title, Field::Value("Fabrikam renewal".into()));
        assert_eq!(deal.company_id, Field::Value(ACCOUNT.into()));
        // A second one uses the same token.
        assert!(
            enricher
                .enrich(&stripped())
                .await
                .expect("enriched")
                .complete
        );
        let state = fake.state();
        assert_eq!(state.calls_to("/contoso-directory/oauth2/v2.0/token"), 1);
        assert_eq!(state.calls_to("/api/data/v9.2/opportunities("), 2);
        assert!(!format!("{:?}", state.calls).contains("app-secret"));
    }

    #[tokio::test]
    async fn a_win_enters_the_stage_the_web_api_says_the_opportunity_is_in() {
        let fake = fake().await;
        let enricher = enricher(&fake, "app-secret");
        let win = raw_event(&win_context(), &http::HeaderMap::new());
        let enriched = enricher.enrich(&win).await.expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let fields: serde_json::Map<String, Value> =
            serde_json::from_slice(&enriched.payload).expect("JSON");
        assert_eq!(fields["attr_stepname"], "4-Close");
        assert!(
            fields.get("attr_name").is_none(),
            "only the stage is read, the rest is as of now"
        );
        assert_eq!(
            entries(&fields),
            [(
                "4-Close".to_owned(),
                1_741_096_900_000_000,
                "won".to_owned()
            )]
        );
        assert_eq!(fake.state().calls_to("/api/data/v9.2/opportunities("), 1);

        // A Web API that answers every other request with a 503 or a 429
        // (`Retry-After: 1`), starting with this read, is waited out.
        let flaky = self::fake().await;
        flaky.state().behaviour.flaky_every = Some(2);
        flaky.state().behaviour.seen = 1;
        let enricher = self::enricher(&flaky, "app-secret");
        let enriched = enricher.enrich(&win).await.expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let refused = flaky
            .state()
            .calls
            .iter()
            .filter(|c| c.status == 429 || c.status == 503)
            .count();
        assert!(refused >= 1, "{:?}", flaky.state().calls);
    }

    const EURO: &str = "2b7e1f0a-91c4-4c6e-8f6b-0d3c5a9e4e01";
    const YEN: &str = "2b7e1f0a-91c4-4c6e-8f6b-0d3c5a9e4e02";

    /// A create of an opportunity in the currency `currency` (a reference).
    fn in_currency(currency: &str) -> RawEvent {
        let mut opportunity = full_opportunity(0, 1_741_096_950_000);
        opportunity["Attributes"].as_array_mut().unwrap().push(json!({
            "key": "transactioncurrencyid",
            "value": {"__type": entity_type("EntityReference"), "Id": currency.to_ascii_uppercase(), "LogicalName": "transactioncurrency", "Name": "Euro"},
        }));
        raw_event(
            &context("Create", opportunity.clone(), Some(opportunity), vec![]),
            &http::HeaderMap::new(),
        )
    }

    fn currency_record(id: &str, code: &str) -> Value {
        json!({"transactioncurrencyid": id, "isocurrencycode": code, "currencyname": code})
    }

    #[tokio::test]
    async fn an_opportunitys_currency_is_looked_up_once_among_the_organizations() {
        let fake = fake().await;
        fake.state()
            .put("transactioncurrencies", EURO, currency_record(EURO, "EUR"));
        let enricher = enricher(&fake, "app-secret");
        for _ in 0..2 {
            let enriched = enricher.enrich(&in_currency(EURO)).await.expect("enriched");
            assert!(enriched.complete, "{:?}", enriched.missing);
            let fields: serde_json::Map<String, Value> =
                serde_json::from_slice(&enriched.payload).expect("JSON");
            assert_eq!(fields["event_currency"], "EUR");
            assert_eq!(deal(&fields).currency, Field::Value("EUR".into()));
        }
        assert_eq!(
            fake.state()
                .calls_to("/api/data/v9.2/transactioncurrencies"),
            1
        );
        // A currency added since is found by reading them again.
        fake.state()
            .put("transactioncurrencies", YEN, currency_record(YEN, "JPY"));
        let enriched = enricher.enrich(&in_currency(YEN)).await.expect("enriched");
        let fields: serde_json::Map<String, Value> =
            serde_json::from_slice(&enriched.payload).expect("JSON");
        assert_eq!(deal(&fields).currency, Field::Value("JPY".into()));
        // One the organization does not have leaves the event partial and
        // the currency unknown, never the organization's.
        let unknown = "2b7e1f0a-91c4-4c6e-8f6b-0d3c5a9e4e03";
        let enriched = enricher
            .enrich(&in_currency(unknown))
            .await
            .expect("enriched");
        assert_eq!(enriched.missing, ["currency"]);
        let fields: serde_json::Map<String, Value> =
            serde_json::from_slice(&enriched.payload).expect("JSON");
        assert_eq!(deal(&fields).currency, Field::Unknown);
        assert_eq!(deal(&fields).amount_text, Field::Value("1200.5".into()));
    }

    #[test]
    fn without_the_web_api_a_named_currency_is_missing() {
        let mut opportunity = full_opportunity(0, 1);
        opportunity["Attributes"].as_array_mut().unwrap().push(json!({
            "key": "transactioncurrencyid",
            "value": {"__type": entity_type("EntityReference"), "Id": EURO, "LogicalName": "transactioncurrency", "Name": "Euro"},
        }));
        let fields = enriched(&context("Update", opportunity, None, vec![]));
        assert_eq!(fields["pipeline_enrichment_missing"], json!(["currency"]));
        assert_eq!(deal(&fields).currency, Field::Unknown);
    }

    #[tokio::test]
    async fn a_wrong_client_secret_shows_at_start_and_leaves_the_record_missing() {
        let fake = fake().await;
        let enricher = enricher(&fake, "not-the-secret");
        let checks = enricher.check_access().await;
        let err = checks[0].outcome.as_ref().expect_err("refused");
        assert!(err.to_string().contains("invalid_client"), "{err}");
        let enriched = enricher.enrich(&stripped()).await.expect("enriched");
        assert_eq!(enriched.missing, ["record"]);
        assert!(!enriched.may_heal);
        // With the right secret the start check names the user it acts as.
        let checks = enrich::build(&EnricherContext {
            tenants: vec![],
            settings: &EnrichmentSettings::default(),
            http: reqwest::Client::new(),
            email: None,
        })
        .expect("no tenants")
        .check_access()
        .await;
        assert!(checks.is_empty());
        let ok = self::enricher(&fake, "app-secret").check_access().await;
        assert!(
            ok[0]
                .outcome
                .as_ref()
                .expect("accepted")
                .contains("acting as user")
        );
    }

    #[test]
    fn web_api_settings_come_with_a_token_or_oauth() {
        let err = tenant_settings(&json!({"organization_id": ORG, "secret": "k", "web_api_url": "https://contoso.crm.dynamics.com"}))
            .expect_err("no credentials");
        assert!(
            err.contains("web_api_url is set without access_token"),
            "{err}"
        );
        let err =
            tenant_settings(&json!({"organization_id": ORG, "secret": "k", "access_token": "t"}))
                .expect_err("no address");
        assert!(err.contains("without web_api_url"), "{err}");
        let settings = tenant_settings(&json!({"organization_id": ORG, "secret": "k", "web_api_url": "https://contoso.crm.dynamics.com", "access_token": "t0k3n"}))
            .expect("valid");
        assert_eq!(settings.requests_per_5min, 6_000);
        assert!(!format!("{settings:?}").contains("t0k3n"));
    }
}

#[test]
fn an_opportunitys_owner_and_account_come_with_their_names() {
    let fields = enriched(&context("Update", full_opportunity(0, 1), None, vec![]));
    let context = Context {
        tenant: "acme",
        source: NAME,
        received_at_micro: 1,
        missing: &[],
    };
    let records = DynamicsMapping
        .map(&context, &fields)
        .expect("mapped")
        .records;
    let owner = records
        .iter()
        .find_map(|r| match r {
            Record::User(user) => Some(user),
            _ => None,
        })
        .expect("the owner");
    assert_eq!(owner.name, Field::Value("Ada Rep".into()));
    let company = records
        .iter()
        .find_map(|r| match r {
            Record::Company(company) => Some(company),
            _ => None,
        })
        .expect("the account");
    assert_eq!(company.key.id, ACCOUNT);
    assert_eq!(company.name, Field::Value("Fabrikam".into()));
}
