//! Enrichment through the org's REST API, against the fake Salesforce.

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tributary_enrichment::EnrichmentSettings;
use tributary_envelope::{EventKeys, RawEvent};
use tributary_fake_apis::{FakeSalesforce, Running, SalesforceState};
use tributary_model::{Context, DealStatus, Field, Mapping, Outcome, Record};

use super::build;
use crate::salesforce::mapping::SalesforceMapping;
use crate::{EnricherContext, SourceEnricher};

const ORG: &str = "00D5g000004ABCDEA4";
const TOKEN: &str = "00D5g000004ABCD!session";
const OPPORTUNITY: &str = "0065g00000AbCdEAAV";
const OWNER: &str = "0055g00000OwNeRAAA";

/// An org with four stages, a user and one opportunity last modified at
/// `modified` (REST's date-time form).
async fn fake_org(modified: &str) -> Running<SalesforceState> {
    let mut state = SalesforceState::default();
    let org = state.org(TOKEN);
    org.put_stage("Prospecting", 1, 10.0, false, false);
    org.put_stage("Negotiation/Review", 2, 90.0, false, false);
    org.put_stage("Closed Won", 3, 100.0, true, true);
    org.put_stage("Closed Lost", 4, 0.0, false, true);
    org.put(
        "User",
        json!({"Id": OWNER, "Name": "Dana Reyes", "IsActive": true, "Email": "dana@example.com"}),
    );
    org.put(
        "Account",
        json!({"Id": "0015g00000AcCoUAAA", "Name": "Globex", "Website": "https://www.globex.example/about",
               "Industry": "Energy", "NumberOfEmployees": 1200, "OwnerId": OWNER,
               "LastModifiedDate": "2025-02-20T08:00:00.000+0000", "Phone": "+1 555 0100"}),
    );
    org.put(
        "Opportunity",
        json!({
            "Id": OPPORTUNITY, "Name": "Renewal", "Amount": 48000.25, "StageName": "Closed Won",
            "IsWon": true, "IsClosed": true, "IsDeleted": false, "Probability": 100,
            "CloseDate": "2025-03-04", "CreatedDate": "2025-02-01T09:00:00.000+0000",
            "LastStageChangeDate": "2025-03-04T16:30:00.000+0000",
            "LastModifiedDate": modified, "SystemModstamp": modified,
            "OwnerId": OWNER, "AccountId": "0015g00000AcCoUAAA", "LeadSource": "Web"
        }),
    );
    FakeSalesforce::start(state).await.expect("fake Salesforce")
}

fn settings() -> EnrichmentSettings {
    EnrichmentSettings {
        max_attempts: 2,
        retry_budget_ms: 2_000,
        backoff_initial_ms: 10,
        backoff_max_ms: 50,
        ..EnrichmentSettings::default()
    }
}

fn enricher(fake: &Running<SalesforceState>, token: &str) -> Box<dyn SourceEnricher> {
    let section = json!({
        "organization_id": ORG, "endpoint_secret": "s", "currency": "USD",
        "instance_url": fake.base_url(), "access_token": token,
    });
    let settings = settings();
    build(&EnricherContext {
        tenants: vec![("acme", &section)],
        settings: &settings,
        http: reqwest::Client::new(),
        email: None,
    })
    .expect("valid settings")
}

/// An opportunity notification with these `<sf:Field>value</sf:Field>`s.
fn raw(fields: &[(&str, &str)], occurred_at_micros: u64) -> RawEvent {
    let fields: String = fields
        .iter()
        .map(|(name, value)| format!("<sf:{name}>{value}</sf:{name}>"))
        .collect();
    RawEvent {
        tenant: "acme".into(),
        source: "salesforce".into(),
        event_id: "e-1".into(),
        received_at_micros: 1_741_200_000_000_000,
        body: Bytes::from(format!(
            r#"<Notification><Id>04l5g000000AbCdAAA</Id><sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>{OPPORTUNITY}</sf:Id>{fields}</sObject></Notification>"#
        )),
        keys: Some(EventKeys {
            payload_version: "outbound-message".into(),
            object: "opportunity".into(),
            object_id: OPPORTUNITY.into(),
            action: "notified".into(),
            attempt: 1,
            occurred_at_micros,
        }),
        ..RawEvent::default()
    }
}

/// Every field the dashboards read, as a message selecting them sends them.
fn full_message(stage: &str, modified: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Name", "Renewal".into()),
        ("Amount", "48000.25".into()),
        ("StageName", stage.into()),
        ("IsWon", "false".into()),
        ("IsClosed", "false".into()),
        ("IsDeleted", "false".into()),
        ("Probability", "90".into()),
        ("CloseDate", "2025-03-04".into()),
        ("CreatedDate", "2025-02-01T09:00:00.000Z".into()),
        ("LastModifiedDate", modified.into()),
        ("SystemModstamp", modified.into()),
        ("OwnerId", OWNER.into()),
        ("AccountId", "0015g00000AcCoUAAA".into()),
        ("LeadSource", "Web".into()),
    ]
}

fn as_pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn fields_of(enriched: &crate::Enriched) -> Map<String, Value> {
    serde_json::from_slice(&enriched.payload).expect("JSON")
}

fn map(fields: &Map<String, Value>) -> Vec<Record> {
    let context = Context {
        tenant: "acme",
        source: "salesforce",
        received_at_micro: 1_741_200_000_000_000,
        missing: &[],
    };
    SalesforceMapping
        .map(&context, fields)
        .expect("mapped")
        .records
}

#[tokio::test]
async fn a_full_message_gets_its_stage_definition_and_owner_from_two_cached_reads() {
    let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
    let enricher = enricher(&fake, TOKEN);
    let message = full_message("Negotiation/Review", "2025-03-04T16:30:00.000Z");
    for _ in 0..3 {
        let enriched = enricher
            .enrich(&raw(&as_pairs(&message), 1_741_105_800_000_000))
            .await
            .expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let fields = fields_of(&enriched);
        assert_eq!(fields["stage_sort_order"], json!(2));
        assert_eq!(fields["stage_default_probability"], json!(90.0));
        assert_eq!(fields["stage_is_closed"], json!(false));
        assert_eq!(fields["owner_name"], json!("Dana Reyes"));
        // The message's values stand: nothing was read to fill them in.
        assert_eq!(fields["sobject_StageName"], json!("Negotiation/Review"));
        let records = map(&fields);
        let stage = records
            .iter()
            .find_map(|r| match r {
                Record::Stage(stage) => Some(stage),
                _ => None,
            })
            .expect("a stage");
        assert_eq!(
            (stage.display_order, stage.probability, stage.outcome),
            (2, Some(90.0), Outcome::Open)
        );
        assert!(stage.version > 0, "a definition replaces a bare stage");
        let user = records
            .iter()
            .find_map(|r| match r {
                Record::User(user) => Some(user),
                _ => None,
            })
            .expect("the owner");
        assert_eq!(user.name, Field::Value("Dana Reyes".into()));
        assert_eq!(user.active, Field::Value(true));
        let company = records
            .iter()
            .find_map(|r| match r {
                Record::Company(company) => Some(company),
                _ => None,
            })
            .expect("the account");
        assert_eq!(company.name, Field::Value("Globex".into()));
        assert_eq!(company.domain, Field::Value("globex.example".into()));
        assert_eq!(company.size, Field::Value("1200".into()));
        assert_eq!(
            company.version.at_micro, 1_740_038_400_000_000,
            "the account's own version"
        );
    }
    let state = fake.state();
    assert_eq!(
        state.calls_to("/services/data/v62.0/query"),
        1,
        "{:?}",
        state.calls
    );
    assert_eq!(state.calls_to("/services/data/v62.0/sobjects/User/"), 1);
    assert_eq!(
        state.calls_to("/services/data/v62.0/sobjects/Opportunity/"),
        0
    );
}

#[tokio::test]
async fn a_thin_message_is_filled_in_and_a_newer_read_carries_its_own_version() {
    let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
    let enricher = enricher(&fake, TOKEN);

    // Same version as the record: the missing fields are filled in.
    let same = raw(
        &[
            ("StageName", "Closed Won"),
            ("LastModifiedDate", "2025-03-04T16:30:00.000Z"),
        ],
        1_741_105_800_000_000,
    );
    let fields = fields_of(&enricher.enrich(&same).await.expect("enriched"));
    assert_eq!(fields["sobject_Amount"], json!("48000.25"));
    assert_eq!(fields["sobject_IsWon"], json!("true"));
    assert_eq!(
        fields["sobject_CreatedDate"],
        json!("2025-02-01T09:00:00.000Z")
    );
    assert_eq!(
        fields["event_timestamp_micro"],
        json!(1_741_105_800_000_000_i64)
    );
    let records = map(&fields);
    let deal = records
        .iter()
        .find_map(|r| match r {
            Record::Deal(deal) => Some(deal),
            _ => None,
        })
        .expect("a deal");
    assert_eq!(deal.status, Field::Value(DealStatus::Won));
    assert_eq!(deal.owner_id, Field::Value(OWNER.into()));
    // The read asks for LastStageChangeDate (API version 52 and later): the
    // deal entered its stage then.
    assert_eq!(
        crate::mapped::stage_entries(&records),
        [(
            "Closed Won".to_owned(),
            1_741_105_800_000_000,
            "won".to_owned()
        )]
    );

    // An older message (the stage it had then): the record has moved on, so
    // the event is the record's newer version, whole.
    let older = raw(
        &[
            ("StageName", "Prospecting"),
            ("Amount", "1000"),
            ("LastModifiedDate", "2025-03-01T10:00:00.000Z"),
        ],
        1_740_823_200_000_000,
    );
    let fields = fields_of(&enricher.enrich(&older).await.expect("enriched"));
    assert_eq!(fields["sobject_StageName"], json!("Closed Won"));
    assert_eq!(fields["sobject_Amount"], json!("48000.25"));
    assert_eq!(
        fields["sobject_LastModifiedDate"],
        json!("2025-03-04T16:30:00.000Z")
    );
    assert_eq!(
        fields["event_timestamp_micro"],
        json!(1_741_105_800_000_000_i64)
    );
    assert_eq!(fields["stage_is_won"], json!(true));
}

#[tokio::test]
async fn a_deleted_opportunity_keeps_the_message_as_it_is() {
    let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
    fake.state().org(TOKEN).delete("Opportunity", OPPORTUNITY);
    let enricher = enricher(&fake, TOKEN);
    let enriched = enricher
        .enrich(&raw(
            &[
                ("StageName", "Closed Lost"),
                ("IsDeleted", "true"),
                ("LastModifiedDate", "2025-03-05T08:00:00.000Z"),
            ],
            1_741_161_600_000_000,
        ))
        .await
        .expect("enriched");
    assert!(enriched.complete, "{:?}", enriched.missing);
    let fields = fields_of(&enriched);
    assert_eq!(fields["sobject_IsDeleted"], json!("true"));
    assert!(!fields.contains_key("sobject_Amount"));
    // The outcome comes from the stage's definition: the message selected
    // neither IsWon nor IsClosed.
    let records = map(&fields);
    let deal = records
        .iter()
        .find_map(|r| match r {
            Record::Deal(deal) => Some(deal),
            _ => None,
        })
        .expect("a deal");
    assert_eq!(deal.status, Field::Value(DealStatus::Lost));
    assert_eq!(deal.deleted, Field::Value(true));
}

#[tokio::test]
async fn lookups_pause_at_the_share_of_the_allocation_and_events_are_partial_until_they_heal() {
    let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
    {
        let mut state = fake.state();
        let org = state.org(TOKEN);
        org.api_limit = 1_000;
        // The next answer reports 500/1000: half, Tributary's default share.
        org.api_used = 499;
    }
    let enricher = enricher(&fake, TOKEN);
    let message = full_message("Closed Won", "2025-03-04T16:30:00.000Z");
    let first = enricher
        .enrich(&raw(&as_pairs(&message), 1_741_105_800_000_000))
        .await
        .expect("enriched");
    // The account read was answered (and said the share is used); the
    // stage and owner lookups then wait for the pause, past their budget.
    assert!(!first.complete);
    assert_eq!(first.missing, ["opportunity_stages", "owner"]);
    assert!(
        first.may_heal,
        "an allocation renews: worth enriching again"
    );
    assert_eq!(fields_of(&first)["account_Name"], json!("Globex"));
    assert_eq!(
        fake.state().calls.len(),
        1,
        "nothing sent after the share is used"
    );
}

#[tokio::test]
async fn an_exceeded_limit_is_a_pause_not_a_refusal() {
    let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
    {
        let mut state = fake.state();
        let org = state.org(TOKEN);
        org.api_limit = 10;
        org.api_used = 10;
    }
    let enricher = enricher(&fake, TOKEN);
    let message = full_message("Closed Won", "2025-03-04T16:30:00.000Z");
    let enriched = enricher
        .enrich(&raw(&as_pairs(&message), 1_741_105_800_000_000))
        .await
        .expect("enriched");
    assert_eq!(enriched.missing, ["account", "opportunity_stages", "owner"]);
    assert!(enriched.may_heal);
    let state = fake.state();
    assert_eq!(state.calls.len(), 1, "{:?}", state.calls);
    assert_eq!(state.calls[0].status, 403);
}

#[tokio::test]
async fn a_wrong_token_shows_at_the_access_check_and_is_not_retried() {
    let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
    let enricher = enricher(&fake, "someone-else");
    let checks = enricher.check_access().await;
    assert_eq!(checks.len(), 1);
    let err = checks[0].outcome.as_ref().expect_err("refused");
    assert!(err.to_string().contains("INVALID_SESSION_ID"), "{err}");
    let enriched = enricher
        .enrich(&raw(
            &as_pairs(&full_message("Closed Won", "2025-03-04T16:30:00.000Z")),
            1_741_105_800_000_000,
        ))
        .await
        .expect("enriched");
    assert!(!enriched.complete && !enriched.may_heal);
    let calls = fake.state().calls.len();
    assert_eq!(
        calls, 4,
        "one call each for the check, the account, the stages and the owner"
    );
}

mod oauth {
    use std::collections::HashMap;

    use base64::Engine;
    use tributary_config::Secret;
    use tributary_enrichment::oauth::{TokenStoreSettings, rsa_public_key};
    use tributary_fake_apis::salesforce::ConnectedApp;

    use super::*;

    const KEY_PEM: &str =
        include_str!("../../../../../tests/fixtures/oauth/test-connected-app-key.pem");
    const CLIENT_ID: &str = "3MVG9-tributary-app";
    const INITIAL: &str = "5Aep861.initial";

    fn store(dir: &std::path::Path, key: u8) -> TokenStoreSettings {
        TokenStoreSettings {
            dir: Some(dir.to_owned()),
            key: Some(Secret::new(
                base64::engine::general_purpose::STANDARD.encode([key; 32]),
            )),
        }
    }

    fn build_with(
        fake: &Running<SalesforceState>,
        oauth: Value,
        token_store: TokenStoreSettings,
    ) -> Result<Box<dyn SourceEnricher>, crate::SourceConfigError> {
        let section = json!({
            "organization_id": ORG, "endpoint_secret": "s", "currency": "USD",
            "instance_url": fake.base_url(), "oauth": oauth,
        });
        let settings = EnrichmentSettings {
            token_store,
            ..settings()
        };
        build(&EnricherContext {
            tenants: vec![("acme", &section)],
            settings: &settings,
            http: reqwest::Client::new(),
            email: None,
        })
    }

    fn refresh_settings(fake: &Running<SalesforceState>) -> Value {
        json!({
            "token_url": format!("{}/services/oauth2/token", fake.base_url()),
            "client_id": CLIENT_ID, "client_secret": "app-secret", "refresh_token": INITIAL,
        })
    }

    /// A message lacking fields: each one reads the opportunity.
    fn thin() -> RawEvent {
        raw(
            &[
                ("StageName", "Closed Won"),
                ("LastModifiedDate", "2025-03-04T16:30:00.000Z"),
            ],
            1_741_105_800_000_000,
        )
    }

    async fn rotating_app() -> Running<SalesforceState> {
        let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
        fake.state().app = Some(ConnectedApp {
            client_id: CLIENT_ID.into(),
            client_secret: "app-secret".into(),
            refresh_tokens: HashMap::from([(INITIAL.into(), TOKEN.into())]),
            rotate_refresh_tokens: true,
            ..ConnectedApp::default()
        });
        fake
    }

    #[tokio::test]
    async fn rotated_refresh_tokens_are_stored_encrypted_and_survive_a_restart() {
        let fake = rotating_app().await;
        let dir = tempfile::tempdir().expect("dir");
        let enricher =
            build_with(&fake, refresh_settings(&fake), store(dir.path(), 1)).expect("built");
        let first = enricher.enrich(&thin()).await.expect("enriched");
        assert!(first.complete, "{:?}", first.missing);
        {
            let state = fake.state();
            let app = state.app.as_ref().expect("app");
            assert!(!app.refresh_tokens.contains_key(INITIAL), "rotated away");
            assert_eq!(app.issued, 1);
        }
        // The session times out: a 401 renews the token once, and the
        // lookup succeeds.
        fake.state().expire_sessions();
        let second = enricher.enrich(&thin()).await.expect("enriched");
        assert!(second.complete, "{:?}", second.missing);
        assert_eq!(fake.state().app.as_ref().expect("app").issued, 2);

        // The stored token is encrypted: no token text in the directory.
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("file");
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("5Aep861"), "{text}");
        }

        // A restart with the same settings (whose refresh token is void
        // now) continues with the stored one.
        drop(enricher);
        let restarted =
            build_with(&fake, refresh_settings(&fake), store(dir.path(), 1)).expect("built");
        let after = restarted.enrich(&thin()).await.expect("enriched");
        assert!(after.complete, "{:?}", after.missing);
        assert_eq!(fake.state().app.as_ref().expect("app").issued, 3);

        // Under another key the store cannot be read: said at start.
        let err = build_with(&fake, refresh_settings(&fake), store(dir.path(), 2))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("cannot be decrypted"), "{err}");
        // Without a store a refresh token is refused at start too.
        let err = build_with(
            &fake,
            refresh_settings(&fake),
            TokenStoreSettings::default(),
        )
        .err()
        .expect("refused");
        assert!(err.to_string().contains("token_store"), "{err}");
    }

    #[tokio::test]
    async fn a_new_authorization_in_the_settings_replaces_the_stored_token() {
        let fake = rotating_app().await;
        let dir = tempfile::tempdir().expect("dir");
        let enricher =
            build_with(&fake, refresh_settings(&fake), store(dir.path(), 1)).expect("built");
        assert!(enricher.enrich(&thin()).await.expect("enriched").complete);
        drop(enricher);
        // The tenant authorizes anew: a new refresh token in the settings.
        fake.state()
            .app
            .as_mut()
            .expect("app")
            .refresh_tokens
            .insert("5Aep861.reauthorized".into(), TOKEN.into());
        let mut settings = refresh_settings(&fake);
        settings["refresh_token"] = json!("5Aep861.reauthorized");
        let enricher = build_with(&fake, settings, store(dir.path(), 1)).expect("built");
        let enriched = enricher.enrich(&thin()).await.expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let state = fake.state();
        let app = state.app.as_ref().expect("app");
        assert!(!app.refresh_tokens.contains_key("5Aep861.reauthorized"));
    }

    #[tokio::test]
    async fn a_refused_refresh_token_says_to_authorize_again_and_is_not_retried() {
        let fake = rotating_app().await;
        let dir = tempfile::tempdir().expect("dir");
        let mut settings = refresh_settings(&fake);
        settings["refresh_token"] = json!("5Aep861.revoked");
        let enricher = build_with(&fake, settings, store(dir.path(), 1)).expect("built");
        let checks = enricher.check_access().await;
        let err = checks[0].outcome.as_ref().expect_err("refused");
        assert!(
            err.to_string().contains("invalid_grant") && err.to_string().contains("authorize"),
            "{err}"
        );
        let enriched = enricher.enrich(&thin()).await.expect("enriched");
        assert!(!enriched.complete && !enriched.may_heal);
        assert_eq!(fake.state().calls_to("/services/data/"), 0);
    }

    #[tokio::test]
    async fn the_jwt_bearer_grant_signs_in_with_the_apps_key() {
        let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
        fake.state().app = Some(ConnectedApp {
            client_id: CLIENT_ID.into(),
            public_key: Some(rsa_public_key(&Secret::new(KEY_PEM)).expect("public key")),
            users: HashMap::from([("integration@acme.example".into(), TOKEN.into())]),
            ..ConnectedApp::default()
        });
        let oauth = json!({
            "token_url": format!("{}/services/oauth2/token", fake.base_url()),
            "audience": "https://login.salesforce.com",
            "client_id": CLIENT_ID, "private_key": KEY_PEM, "username": "integration@acme.example",
        });
        // No refresh token, so no store is needed.
        let enricher =
            build_with(&fake, oauth.clone(), TokenStoreSettings::default()).expect("built");
        let enriched = enricher.enrich(&thin()).await.expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let mut stranger = oauth;
        stranger["username"] = json!("someone@else.example");
        let enricher = build_with(&fake, stranger, TokenStoreSettings::default()).expect("built");
        let err = enricher
            .check_access()
            .await
            .remove(0)
            .outcome
            .expect_err("refused");
        assert!(err.to_string().contains("invalid_grant"), "{err}");
    }
}

mod change_events {
    use apache_avro::Schema;
    use apache_avro::types::Value as Avro;
    use tributary_fake_apis::salesforce_pubsub::{
        Change, OPPORTUNITY_CHANGE_EVENT_SCHEMA, OPPORTUNITY_SCHEMA_ID, encode,
    };
    use tributary_salesforce_pubsub::{ConsumerEvent, ProducerEvent};

    use super::*;
    use crate::salesforce::cdc::raw_events;

    fn change_event(change: Change) -> RawEvent {
        let schema = Schema::parse_str(OPPORTUNITY_CHANGE_EVENT_SCHEMA).expect("schema");
        let event = ConsumerEvent {
            event: Some(ProducerEvent {
                id: "e-42".into(),
                schema_id: OPPORTUNITY_SCHEMA_ID.into(),
                payload: encode(&schema, &change),
                headers: Vec::new(),
            }),
            replay_id: vec![0, 0, 0, 42],
        };
        raw_events(
            "acme",
            ORG,
            "/data/OpportunityChangeEvent",
            &event,
            Ok(&schema),
            1_741_200_000_000_000,
        )
        .remove(0)
    }

    fn without_api() -> Box<dyn SourceEnricher> {
        let section = json!({"organization_id": ORG, "endpoint_secret": "s", "currency": "USD"});
        let settings = settings();
        build(&EnricherContext {
            tenants: vec![("acme", &section)],
            settings: &settings,
            http: reqwest::Client::new(),
            email: None,
        })
        .expect("valid")
    }

    fn deal_of(records: &[Record]) -> &tributary_model::Deal {
        records
            .iter()
            .find_map(|r| match r {
                Record::Deal(deal) => Some(deal),
                _ => None,
            })
            .expect("a deal")
    }

    #[tokio::test]
    async fn a_change_event_is_a_deal_change_of_only_its_changed_fields() {
        let raw = change_event(Change {
            change_type: "UPDATE",
            record_ids: vec![OPPORTUNITY.into()],
            commit_timestamp_ms: 1_741_105_800_000,
            fields: vec![
                ("StageName", Some(Avro::String("Closed Won".into()))),
                ("IsWon", Some(Avro::Boolean(true))),
                ("IsClosed", Some(Avro::Boolean(true))),
                ("CloseDate", Some(Avro::Int(20_151))),
                ("LastModifiedDate", Some(Avro::Long(1_741_105_800_000))),
                ("LeadSource", None),
            ],
        });
        let enriched = without_api().enrich(&raw).await.expect("enriched");
        assert!(enriched.complete);
        let fields = fields_of(&enriched);
        assert_eq!(fields["sobject_CloseDate"], json!("2025-03-04"));
        assert_eq!(
            fields["sobject_LastModifiedDate"],
            json!("2025-03-04T16:30:00.000Z")
        );
        assert_eq!(fields["sobject_LeadSource"], Value::Null);
        assert_eq!(fields["event_action"], json!("update"));
        assert_eq!(
            fields["event_timestamp_micro"],
            json!(1_741_105_800_000_000_i64)
        );
        assert!(
            !fields.contains_key("sobject_Amount"),
            "unchanged: not said"
        );
        let records = map(&fields);
        let deal = deal_of(&records);
        assert_eq!(deal.status, Field::Value(DealStatus::Won));
        assert_eq!(deal.stage_id, Field::Value("Closed Won".into()));
        assert_eq!(
            deal.amount,
            Field::Unknown,
            "an update never blanks what it did not change"
        );
        assert_eq!(deal.marketing_source, Field::Null);
        assert!(deal.won_at.is_known());
    }

    #[tokio::test]
    async fn a_deletion_is_a_tombstone_and_a_gap_needs_the_api() {
        let deleted = change_event(Change {
            change_type: "DELETE",
            record_ids: vec![OPPORTUNITY.into()],
            commit_timestamp_ms: 1_741_105_800_000,
            fields: vec![],
        });
        let fields = fields_of(&without_api().enrich(&deleted).await.expect("enriched"));
        assert_eq!(deal_of(&map(&fields)).deleted, Field::Value(true));

        let gap = change_event(Change {
            change_type: "GAP_UPDATE",
            record_ids: vec![OPPORTUNITY.into()],
            commit_timestamp_ms: 1_741_105_000_000,
            fields: vec![],
        });
        let partial = without_api().enrich(&gap).await.expect("enriched");
        assert_eq!(partial.missing, ["record"]);
        assert!(!partial.may_heal);

        // With the API the record is read as it is now.
        let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
        let healed = enricher(&fake, TOKEN).enrich(&gap).await.expect("enriched");
        assert!(healed.complete, "{:?}", healed.missing);
        let fields = fields_of(&healed);
        assert_eq!(fields["sobject_StageName"], json!("Closed Won"));
        assert_eq!(fields["sobject_Amount"], json!("48000.25"));
        assert_eq!(
            fields["event_timestamp_micro"],
            json!(1_741_105_800_000_000_i64),
            "at the record's LastModifiedDate, later than the gap"
        );
        // A change event is never filled in from the API: it says what changed.
        let update = change_event(Change {
            change_type: "UPDATE",
            record_ids: vec![OPPORTUNITY.into()],
            commit_timestamp_ms: 1_741_105_900_000,
            fields: vec![("Name", Some(Avro::String("Renewal 2".into())))],
        });
        let before = fake
            .state()
            .calls_to("/services/data/v62.0/sobjects/Opportunity/");
        let fields = fields_of(
            &enricher(&fake, TOKEN)
                .enrich(&update)
                .await
                .expect("enriched"),
        );
        assert!(!fields.contains_key("sobject_Amount"));
        assert_eq!(
            fake.state()
                .calls_to("/services/data/v62.0/sobjects/Opportunity/"),
            before
        );
    }

    #[tokio::test]
    async fn a_win_without_its_close_date_is_dated_by_the_api_else_by_its_commit() {
        let won = change_event(Change {
            change_type: "UPDATE",
            record_ids: vec![OPPORTUNITY.into()],
            // 2025-03-06T10:13:20Z
            commit_timestamp_ms: 1_741_256_000_000,
            fields: vec![
                ("StageName", Some(Avro::String("Closed Won".into()))),
                ("IsWon", Some(Avro::Boolean(true))),
                ("IsClosed", Some(Avro::Boolean(true))),
            ],
        });
        let won_at = |fields: &Map<String, Value>| deal_of(&map(fields)).won_at.clone();
        let fields = fields_of(&without_api().enrich(&won).await.expect("enriched"));
        assert_eq!(
            won_at(&fields),
            Field::Value(tributary_model::Timestamp::from_seconds(1_741_219_200).expect("time")),
            "the commit's day"
        );
        let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
        let fields = fields_of(&enricher(&fake, TOKEN).enrich(&won).await.expect("enriched"));
        assert_eq!(fields["sobject_CloseDate"], json!("2025-03-04"));
        assert_eq!(
            won_at(&fields),
            Field::Value(tributary_model::Timestamp::from_seconds(1_741_046_400).expect("time")),
            "the CloseDate read from the API"
        );
    }

    #[tokio::test]
    async fn an_undecodable_event_or_an_overflow_goes_to_the_dead_letter_topic_with_why() {
        let schema = Schema::parse_str(OPPORTUNITY_CHANGE_EVENT_SCHEMA).expect("schema");
        let broken = ConsumerEvent {
            event: Some(ProducerEvent {
                id: "e-43".into(),
                schema_id: OPPORTUNITY_SCHEMA_ID.into(),
                payload: vec![0xff],
                headers: Vec::new(),
            }),
            replay_id: vec![1],
        };
        let raw = raw_events(
            "acme",
            ORG,
            "/data/OpportunityChangeEvent",
            &broken,
            Ok(&schema),
            1,
        )
        .remove(0);
        let err = without_api().enrich(&raw).await.expect_err("undecodable");
        assert!(err.to_string().contains("could not be decoded"), "{err}");
        let overflow = change_event(Change {
            change_type: "GAP_OVERFLOW",
            record_ids: vec![],
            commit_timestamp_ms: 1_741_105_000_000,
            fields: vec![],
        });
        let err = without_api().enrich(&overflow).await.expect_err("overflow");
        assert!(err.to_string().contains("gap_overflow"), "{err}");
    }

    #[tokio::test]
    async fn a_tasks_gap_is_read_again_as_a_task() {
        let fake = fake_org("2025-03-04T16:30:00.000+0000").await;
        fake.state().org(TOKEN).put(
            "Task",
            json!({"Id": "00T5g00000TaSkAAAV", "Subject": "Pricing call", "Type": "Call",
                "TaskSubtype": "Call", "IsClosed": true, "CompletedDateTime": "2025-03-04T11:00:00.000+0000",
                "ActivityDate": "2025-03-04", "WhatId": OPPORTUNITY, "WhoId": null, "AccountId": null,
                "OwnerId": "0055g00000OwNeRAAA", "IsDeleted": false, "Description": "private",
                "CreatedDate": "2025-03-04T10:00:00.000+0000", "LastModifiedDate": "2025-03-04T11:00:00.000+0000"}),
        );
        let raw = RawEvent {
            tenant: "acme".into(),
            source: "salesforce".into(),
            event_id: "e-task".into(),
            received_at_micros: 1,
            body: serde_json::to_vec(&json!({"event_uuid": "e-44", "fields": {}}))
                .expect("JSON")
                .into(),
            keys: Some(EventKeys {
                payload_version: crate::salesforce::cdc::PAYLOAD_VERSION_CDC.into(),
                object: "task".into(),
                object_id: "00T5g00000TaSkAAAV".into(),
                action: "gap_update".into(),
                attempt: 1,
                occurred_at_micros: 1_741_080_000_000_000,
            }),
            ..RawEvent::default()
        };
        let enriched = enricher(&fake, TOKEN).enrich(&raw).await.expect("enriched");
        assert!(enriched.complete, "{:?}", enriched.missing);
        let fields = fields_of(&enriched);
        assert!(!fields.contains_key("sobject_Description"));
        let activity = map(&fields)
            .into_iter()
            .find_map(|r| match r {
                Record::Activity(activity) => Some(activity),
                _ => None,
            })
            .expect("an activity");
        assert_eq!(activity.subject, Field::Value("Pricing call".into()));
        assert_eq!(activity.done, Field::Value(true));
        assert_eq!(activity.deal_id, Field::Value(OPPORTUNITY.into()));
    }
}
