//! The enricher against a real broker and fake APIs: the joined flat event,
//! v1/v2 parity, caching, rate limits, outages, dead letters, and crashes.
#![cfg(feature = "kafka-broker-tests")]
#![recursion_limit = "256"]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary_envelope::DeadLetter;
use tributary_fake_apis::{
    EmailVerifier, EmailVerifierState, FakePipedrive, PipedriveState, Running, Storm, shapes,
};
use tributary_tests::broker;
use tributary_tests::enricher::{
    DealChange, EnricherProcess, JANE, OMNI_KEEPS_CONTACTS, OMNI_TOKEN, Topics, VERIFIER_KEY,
    deal_change_v1, deal_change_v2, jane_verdict, omni_account, omni_change, omni_tenant,
    open_deal, read_json, wait_for_event_ids,
};
use tributary_tests::raw::pipedrive_envelope;

struct World {
    pipedrive: Running<PipedriveState>,
    verifier: Running<EmailVerifierState>,
}

impl World {
    async fn start() -> Self {
        let mut state = PipedriveState::default();
        state.accounts.insert(OMNI_TOKEN.into(), omni_account());
        let pipedrive = FakePipedrive::start(state).await.expect("fake pipedrive");
        let mut email = EmailVerifierState::with_key(VERIFIER_KEY);
        email.results.insert(JANE.into(), jane_verdict());
        let verifier = EmailVerifier::start(email).await.expect("fake verifier");
        World {
            pipedrive,
            verifier,
        }
    }

    /// Configuration for the enricher pointing at this world; `enrichment`
    /// lines (`key = value`) override the test defaults of `[enrichment]`.
    fn config(&self, enrichment: &str) -> String {
        let mut settings: BTreeMap<&str, &str> = BTreeMap::from([
            ("retry_budget_ms", "4000"),
            ("backoff_initial_ms", "50"),
            ("backoff_max_ms", "400"),
            ("request_timeout_ms", "1000"),
            ("circuit_open_ms", "1500"),
        ]);
        for line in enrichment.lines().filter(|l| l.contains('=')) {
            let (key, value) = line.split_once('=').expect("key = value");
            settings.insert(key.trim(), value.trim());
        }
        let section: String = settings
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        format!(
            "[enrichment]\n{section}\n[enrichment.email_validation]\nurl = \"{}/v2/email-verifier\"\napi_key = \"{VERIFIER_KEY}\"\nrequests_per_second = 100\n\n{}",
            self.verifier.base_url(),
            omni_tenant(&self.pipedrive.base_url())
        )
    }
}

async fn produce_raw(brokers: &str, topic: &str, bodies: &[Value]) -> Vec<String> {
    let mut event_ids = Vec::new();
    let messages: Vec<(String, Vec<u8>)> = bodies
        .iter()
        .map(|body| {
            let (key, event) = pipedrive_envelope("omni", &serde_json::to_vec(body).expect("json"));
            event_ids.push(event.event_id.clone());
            (key, event.encode_to_vec())
        })
        .collect();
    broker::produce(brokers, topic, &messages).await;
    event_ids
}

fn by_event_id(records: &[(broker::Record, Value)]) -> BTreeMap<String, Value> {
    records
        .iter()
        .map(|(_, json)| {
            (
                json["pipeline_event_id"]
                    .as_str()
                    .expect("pipeline_event_id")
                    .to_owned(),
                json.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_omni_example_comes_out_as_exactly_the_expected_flat_object() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 3).await;
    let world = World::start().await;
    let enricher = EnricherProcess::start(
        &brokers,
        &topics,
        &tributary_tests::unique("omni"),
        &(world.config("") + OMNI_KEEPS_CONTACTS),
    )
    .await;
    let sent_at = chrono::Utc::now().timestamp_micros();
    let body = deal_change_v1(&omni_change());
    let (key, raw) = pipedrive_envelope("omni", &serde_json::to_vec(&body).expect("json"));
    broker::produce(&brokers, &topics.raw, &[(key.clone(), raw.encode_to_vec())]).await;

    let records = read_json(&brokers, &topics.enriched, 1, Duration::from_secs(30));
    assert_eq!(
        records.len(),
        1,
        "one enriched event:\n{}",
        enricher.service.log()
    );
    let (record, mut event) = records.into_iter().next().expect("one");
    assert_eq!(
        record.key.as_deref(),
        Some(key.as_bytes()),
        "keyed like the raw event"
    );
    let enriched_at = event
        .as_object_mut()
        .expect("object")
        .remove("pipeline_enriched_at_micro")
        .expect("enriched at");
    let enriched_at = enriched_at.as_i64().expect("micros");
    assert!(enriched_at >= sent_at && enriched_at <= chrono::Utc::now().timestamp_micros());
    let expected = json!({
        "event_action": "updated", "event_change_source": "app", "event_id": 5001, "event_object": "deal",
        "event_is_bulk_update": false, "event_permitted_user_ids": [11, 12], "event_pipedrive_service_name": null,
        "event_timestamp": 1_741_624_805, "event_timestamp_micro": 1_741_624_805_412_000_i64,
        "event_trans_pending": false, "event_user_id": 11, "event_webhook_id": "880001", "event_company_id": "777",
        "deal_id": 5001, "deal_title": "Omni Health - clinic rollout",
        "deal_stage": "Contact Made", "deal_stage_id": 2, "deal_stage_order_nr": 2, "deal_stage_probability": 20.0,
        "deal_previous_stage": "Lead In", "deal_previous_stage_id": 1,
        "deal_pipeline": "Sales", "deal_pipeline_id": 1,
        "deal_value": 22944.0, "deal_currency": "USD", "deal_status": "open", "deal_probability": null,
        "deal_owner_id": 11, "deal_owner_name": "Morgan Lee", "deal_expected_close_date": "2025-04-30",
        "deal_add_time": "2025-02-03T10:15:00Z", "deal_update_time": "2025-03-10T16:40:05Z",
        "deal_won_time": null, "deal_lost_time": null, "deal_lost_reason": null,
        "deal_stage_change_time": "2025-03-10T16:40:05Z",
        "marketing_source": "LinkedIn", "marketing_campaign": "Q1 clinics",
        "contact_id": 9001, "contact_email": JANE, "contact_first_name": "Jane", "contact_last_name": "Doe",
        "contact_phone_number": "+1 555 0100", "contact_position": "Operations Director",
        "organization_id": 3001, "organization_name": "Omni Health",
        "organization_company_size": "small", "organization_industry": "health",
        "metrics_total_deals": 5, "metrics_average_deal_value": 18700.0,
        "email_validation_status": "valid", "email_validation_score": "deliverable", "email_validation_email": JANE,
        "email_validation_regexp": true, "email_validation_gibberish": false, "email_validation_disposable": false,
        "email_validation_webmail": false, "email_validation_mx_records": true, "email_validation_smtp_server": true,
        "email_validation_smtp_check": true, "email_validation_accept_all": false, "email_validation_block": false,
        "email_validation_sources_1_domain": "omnihealth.example",
        "email_validation_sources_1_uri": "https://omnihealth.example/team",
        "email_validation_sources_1_extracted_on": "2024-11-02", "email_validation_sources_1_last_seen_on": "2025-02-20",
        "email_validation_sources_1_still_on_page": true,
        "email_validation_sources_2_domain": "healthnews.example",
        "email_validation_sources_2_uri": "https://healthnews.example/omni-expands",
        "email_validation_sources_2_extracted_on": "2024-11-02", "email_validation_sources_2_last_seen_on": "2025-02-20",
        "email_validation_sources_2_still_on_page": true,
        "pipeline_event_id": raw.event_id, "pipeline_tenant": "omni", "pipeline_source": "pipedrive",
        "pipeline_payload_version": "1", "pipeline_received_at_micro": raw.received_at_micros,
        "pipeline_warnings": [], "pipeline_enrichment_status": "complete", "pipeline_enrichment_missing": []
    });
    if event != expected {
        let (got, want) = (
            event.as_object().expect("o"),
            expected.as_object().expect("o"),
        );
        let keys: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
        let diff: Vec<String> = keys
            .into_iter()
            .filter(|k| got.get(*k) != want.get(*k))
            .map(|k| format!("{k}: got {:?}, want {:?}", got.get(k), want.get(k)))
            .collect();
        panic!("enriched event differs:\n{}", diff.join("\n"));
    }
    for value in event.as_object().expect("object").values() {
        let flat = !value.is_object()
            && value
                .as_array()
                .is_none_or(|items| items.iter().all(|i| !i.is_object() && !i.is_array()));
        assert!(
            flat,
            "every value is a scalar or an array of scalars: {value}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_deliveries_of_one_change_enrich_to_the_same_fields() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 3).await;
    let world = World::start().await;
    let _enricher = EnricherProcess::start(
        &brokers,
        &topics,
        &tributary_tests::unique("parity"),
        &world.config(""),
    )
    .await;
    let change = omni_change();
    // The same deal won a minute later, in its own stage: only the status changes.
    let won = DealChange {
        stage_from: change.stage_to,
        status_to: "won",
        timestamp_micro: change.timestamp_micro + 60_000_000,
        ..omni_change()
    };
    let ids = produce_raw(
        &brokers,
        &topics.raw,
        &[
            deal_change_v1(&change),
            deal_change_v2(&change, "6f0c8a52-1e4b-4d7a-9c3e-2b5d7f9a1c04"),
            deal_change_v1(&won),
            deal_change_v2(&won, "0b7d2e61-3f5a-4c8b-a1d9-7e2f4a6c8b10"),
        ],
    )
    .await;
    let records = by_event_id(&read_json(
        &brokers,
        &topics.enriched,
        4,
        Duration::from_secs(30),
    ));
    let strip = |event: &Value| -> BTreeMap<String, Value> {
        event
            .as_object()
            .expect("object")
            .iter()
            .filter(|(k, _)| !k.starts_with("pipeline_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let v1 = strip(&records[&ids[0]]);
    let v2 = strip(&records[&ids[1]]);
    assert!(v1.len() > 60, "a full event: {} fields", v1.len());
    assert_eq!(v1, v2, "v1 and v2 enrich to the same fields");
    assert_eq!(records[&ids[1]]["pipeline_payload_version"], "2.0");
    assert_eq!(
        v1.get("deal_previous_status"),
        None,
        "the status did not change"
    );

    let (won_v1, won_v2) = (strip(&records[&ids[2]]), strip(&records[&ids[3]]));
    assert_eq!(won_v1, won_v2, "v1 and v2 of the win enrich alike");
    assert_eq!(won_v1["deal_status"], "won");
    assert_eq!(won_v1["deal_previous_status"], "open", "the status it left");
    assert_eq!(
        won_v1.get("deal_previous_stage_id"),
        None,
        "the stage did not change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_for_ten_people_look_each_person_up_once() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 6).await;
    let world = World::start().await;
    {
        let mut state = world.pipedrive.state();
        let account = state.account(OMNI_TOKEN);
        for p in 0..10 {
            let person = 9101 + p;
            let (last_name, email) = (person.to_string(), format!("p{person}@example.com"));
            let shape = shapes::PersonShape {
                id: person,
                first_name: "P",
                last_name: &last_name,
                email: Some(&email),
                org_id: Some(3001),
                owner_id: 11,
                ..Default::default()
            };
            account.persons.insert(person, shapes::person(&shape));
            for d in 0..10 {
                let deal = 7000 + p * 10 + d;
                account
                    .deals
                    .insert(deal, shapes::deal(&open_deal(deal, person, 1000.0)));
            }
        }
    }
    let _enricher = EnricherProcess::start(
        &brokers,
        &topics,
        &tributary_tests::unique("cache"),
        // Timeouts long enough that a loaded machine does not retry a
        // lookup that was merely slow: each retry is a call of its own.
        &world.config("request_timeout_ms = 5000\nretry_budget_ms = 20000"),
    )
    .await;
    let mut bodies = Vec::new();
    for n in 0..1000_i64 {
        let person = 9101 + n % 10;
        let deal = 7000 + (n % 10) * 10 + (n / 10) % 10;
        let mut change = omni_change();
        change.deal_id = deal;
        change.person_id = person;
        change.value = 1000.0 + n as f64;
        change.timestamp_micro += n * 1_000;
        bodies.push(deal_change_v2(
            &change,
            &format!("00000000-0000-4000-8000-{n:012}"),
        ));
    }
    let ids = produce_raw(&brokers, &topics.raw, &bodies).await;
    let records = by_event_id(&read_json(
        &brokers,
        &topics.enriched,
        1000,
        Duration::from_secs(120),
    ));
    let missing: Vec<_> = ids.iter().filter(|id| !records.contains_key(*id)).collect();
    assert!(missing.is_empty(), "{} events not enriched", missing.len());
    assert!(
        records
            .values()
            .all(|e| e["pipeline_enrichment_status"] == "complete"),
        "all complete"
    );
    let state = world.pipedrive.state();
    let person_calls = state.calls_to("/api/v2/persons/");
    let list_calls = state.calls_to("/api/v2/deals?");
    assert!(
        person_calls <= 10,
        "{person_calls} person lookups for 10 people"
    );
    assert!(
        list_calls <= 10,
        "{list_calls} deal-list lookups for 10 people"
    );
    // Stages, pipelines and users come as one list each, not one call per id.
    for (list, path) in [
        ("stages", "/api/v2/stages"),
        ("pipelines", "/api/v2/pipelines"),
        ("users", "/api/v1/users"),
    ] {
        let calls = state.calls_to(path);
        assert_eq!(calls, 1, "{calls} calls for the {list}");
        assert_eq!(state.calls_to(&format!("{path}/")), 0, "no {list} by id");
    }
    let verifier_calls = world.verifier.state().calls.len();
    assert!(
        verifier_calls <= 10,
        "{verifier_calls} verifier calls for 10 addresses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_honoured_and_nothing_is_lost() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 3).await;
    let world = World::start().await;
    world.pipedrive.state().behaviour.storm = Some(Storm {
        count: 3,
        retry_after_seconds: 1,
    });
    let enrichment = "retry_budget_ms = 15000\nmax_attempts = 8";
    let _enricher = EnricherProcess::start(
        &brokers,
        &topics,
        &tributary_tests::unique("storm"),
        &world.config(enrichment),
    )
    .await;
    let mut bodies = Vec::new();
    for n in 0..20_i64 {
        let mut change = omni_change();
        change.value += n as f64;
        change.timestamp_micro += n * 1_000;
        bodies.push(deal_change_v2(
            &change,
            &format!("10000000-0000-4000-8000-{n:012}"),
        ));
    }
    let ids = produce_raw(&brokers, &topics.raw, &bodies).await;
    let records = by_event_id(&read_json(
        &brokers,
        &topics.enriched,
        20,
        Duration::from_secs(60),
    ));
    assert_eq!(records.len(), 20, "nothing lost");
    for id in &ids {
        assert_eq!(
            records[id]["pipeline_enrichment_status"], "complete",
            "retried until the storm passed"
        );
    }
    let state = world.pipedrive.state();
    let refusals: Vec<Instant> = state
        .calls
        .iter()
        .filter(|c| c.status == 429)
        .map(|c| c.at)
        .collect();
    assert_eq!(refusals.len(), 3, "the storm answered three times");
    // After the client read a Retry-After of 1 s, it sends nothing until that window ends
    // (a request already on the wire when the 429 was written may still land).
    let last_refusal = *refusals.last().expect("a 429");
    let inside: Vec<Duration> = state
        .calls
        .iter()
        .filter(|c| {
            c.at > last_refusal + Duration::from_millis(50)
                && c.at < last_refusal + Duration::from_millis(950)
        })
        .map(|c| c.at - last_refusal)
        .collect();
    assert!(
        inside.is_empty(),
        "calls inside the Retry-After window: {inside:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_outage_gives_partial_events_that_heal_by_themselves_when_it_returns() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 3).await;
    let world = World::start().await;
    world.pipedrive.state().behaviour.outage = Some(503);
    let enrichment = "retry_budget_ms = 1000\nmax_attempts = 3";
    // Re-enrichment after 3 s, then 6 s: the outage outlasts the first.
    // (Lines before the first table header extend `[enricher]`.)
    let retries = "partial_retry_initial_ms = 3000\npartial_retry_max_ms = 6000\n";
    let _enricher = EnricherProcess::start(
        &brokers,
        &topics,
        &tributary_tests::unique("outage"),
        &format!("{retries}\n{}", world.config(enrichment)),
    )
    .await;
    let mut change = omni_change();
    let during = produce_raw(&brokers, &topics.raw, &[deal_change_v1(&change)]).await;
    let records = by_event_id(&read_json(
        &brokers,
        &topics.enriched,
        1,
        Duration::from_secs(30),
    ));
    let partial = &records[&during[0]];
    assert_eq!(
        partial["pipeline_enrichment_status"], "partial",
        "{partial:#}"
    );
    let missing: BTreeSet<&str> = partial["pipeline_enrichment_missing"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for what in [
        "stage",
        "person",
        "organization",
        "person_deals",
        "deal_fields",
    ] {
        assert!(missing.contains(what), "{what} missing: {missing:?}");
    }
    assert_eq!(
        partial["deal_value"], 22944.0,
        "what the webhook carries is kept"
    );
    assert_eq!(partial["deal_stage"], Value::Null);
    // Enriched again after 3 s, into the outage: partial again, so a second
    // re-enrichment is scheduled, 6 s later.
    let scheduled = broker::read_topic(&brokers, &topics.retry, 2, Duration::from_secs(30));
    assert_eq!(scheduled.len(), 2, "the first re-enrichment met the outage");
    let calls_in_outage = world.pipedrive.state().calls.len();

    world.pipedrive.state().behaviour.outage = None;
    tokio::time::sleep(Duration::from_millis(1600)).await; // the circuit closes
    change.timestamp_micro += 1_000_000;
    let after = produce_raw(
        &brokers,
        &topics.raw,
        &[deal_change_v2(
            &change,
            "20000000-0000-4000-8000-000000000001",
        )],
    )
    .await;
    let records = by_event_id(&read_json(
        &brokers,
        &topics.enriched,
        2,
        Duration::from_secs(30),
    ));
    let complete = &records[&after[0]];
    assert_eq!(
        complete["pipeline_enrichment_status"], "complete",
        "{complete:#}"
    );
    assert_eq!(complete["deal_stage"], "Contact Made");

    // The event enriched during the outage comes out again, complete, with
    // no one replaying anything: once, as its second retry met a healthy API.
    let all = read_json(&brokers, &topics.enriched, 3, Duration::from_secs(30));
    let copies: Vec<&Value> = all
        .iter()
        .map(|(_, event)| event)
        .filter(|event| event["pipeline_event_id"] == during[0].as_str())
        .collect();
    assert_eq!(copies.len(), 2, "the partial copy and the healed one");
    let healed = copies[1];
    assert_eq!(
        healed["pipeline_enrichment_status"], "complete",
        "{healed:#}"
    );
    assert_eq!(healed["deal_stage"], "Contact Made");
    assert_eq!(
        healed["deal_value"], 22944.0,
        "the event's own state still wins"
    );
    assert_eq!(
        healed["pipeline_received_at_micro"], partial["pipeline_received_at_micro"],
        "the same event"
    );
    assert!(calls_in_outage > 0);
    let retried = broker::read_topic(&brokers, &topics.retry, 3, Duration::from_secs(2));
    assert_eq!(
        retried.len(),
        2,
        "two re-enrichments were scheduled, no more"
    );
    let dead = broker::read_topic(&brokers, &topics.dead_letter, 1, Duration::from_secs(1));
    assert!(dead.is_empty(), "nothing needs a person");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_api_access_is_tried_at_start_and_reported() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let world = World::start().await;
    let others = format!(
        "[tenants.stale.pipedrive]\nusername = \"hook\"\npassword = \"p\"\napi_base_url = \"{}\"\napi_token = \"revoked\"\n\
         [tenants.astray.pipedrive]\nusername = \"hook\"\npassword = \"p\"\napi_base_url = \"http://127.0.0.1:9\"\napi_token = \"t\"\n",
        world.pipedrive.base_url()
    );
    let enricher = EnricherProcess::start(
        &brokers,
        &topics,
        &tributary_tests::unique("access"),
        &(world.config("retry_budget_ms = 1500") + &others),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    // The line about `tenant` that says `what` (the log may be coloured).
    let reported = |log: &str, tenant: &str, what: &str| {
        log.lines()
            .any(|line| line.contains(what) && line.contains(&format!("\"{tenant}\"")))
    };
    loop {
        let log = enricher.service.log();
        let all = reported(&log, "omni", "API access works")
            && reported(&log, "stale", "the API refuses this tenant's access")
            && reported(&log, "astray", "the API is unreachable for this tenant");
        if all {
            assert!(log.contains("401"), "the refusal says how: {log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every tenant reported:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = reqwest::get(format!("{}/metrics", enricher.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for (tenant, value) in [("omni", 1), ("stale", 0), ("astray", 0)] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("tributary_enricher_api_access_ok")
                    && l.contains(&format!("tenant=\"{tenant}\""))
                    && l.ends_with(&format!(" {value}"))),
            "{tenant}: {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_input_is_dead_lettered_with_its_reason_and_the_rest_flows() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let world = World::start().await;
    let _enricher = EnricherProcess::start(
        &brokers,
        &topics,
        &tributary_tests::unique("dlq"),
        &world.config(""),
    )
    .await;
    let (key, good) = pipedrive_envelope(
        "omni",
        &serde_json::to_vec(&deal_change_v1(&omni_change())).expect("json"),
    );
    let (_, mut foreign) = pipedrive_envelope(
        "omni",
        &serde_json::to_vec(&deal_change_v1(&omni_change())).expect("json"),
    );
    foreign.source = "legacycrm".into();
    broker::produce(
        &brokers,
        &topics.raw,
        &[
            (
                "acme:pipedrive:deal:1".into(),
                b"\x08\x99not an envelope".to_vec(),
            ),
            (key.clone(), good.encode_to_vec()),
            ("omni:legacycrm:deal:1".into(), foreign.encode_to_vec()),
        ],
    )
    .await;
    let enriched = read_json(&brokers, &topics.enriched, 1, Duration::from_secs(30));
    assert_eq!(enriched.len(), 1);
    assert_eq!(enriched[0].1["pipeline_event_id"], good.event_id.as_str());
    let letters: Vec<DeadLetter> =
        broker::read_topic(&brokers, &topics.dead_letter, 2, Duration::from_secs(30))
            .iter()
            .map(|r| serde_json::from_slice(&r.value).expect("a dead-letter record"))
            .collect();
    let reasons: BTreeSet<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert_eq!(
        reasons,
        BTreeSet::from(["malformed_envelope", "unknown_source"])
    );
    for letter in &letters {
        assert_eq!(letter.stage, "enricher");
        assert_eq!(letter.original_topic, topics.raw);
        assert!(!letter.errors.is_empty() && !letter.errors[0].message.is_empty());
        let original = letter.original_bytes().expect("base64");
        if letter.reason == "malformed_envelope" {
            assert_eq!(original, b"\x08\x99not an envelope");
            assert_eq!(letter.original_offset, 0);
        } else {
            assert_eq!(letter.event_id.as_deref(), Some(foreign.event_id.as_str()));
            assert_eq!(letter.source.as_deref(), Some("legacycrm"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_reach_the_verifier_only_for_tenants_that_chose_it() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let world = World::start().await;
    // The tenant's own choice, not the storage policy: kept emails, no verifier.
    let config = (world.config("") + OMNI_KEEPS_CONTACTS)
        .replace("verify_emails = true", "verify_emails = false");
    assert!(config.contains("verify_emails = false"));
    let _enricher = EnricherProcess::start(
        &brokers,
        &topics,
        &tributary_tests::unique("no-verify"),
        &config,
    )
    .await;
    produce_raw(&brokers, &topics.raw, &[deal_change_v1(&omni_change())]).await;
    let records = read_json(&brokers, &topics.enriched, 1, Duration::from_secs(30));
    let event = &records[0].1;
    assert_eq!(
        event["contact_email"], JANE,
        "stored as the pii policy says"
    );
    assert!(
        event
            .as_object()
            .expect("object")
            .keys()
            .all(|key| !key.starts_with("email_validation_")),
        "{event}"
    );
    assert_eq!(event["pipeline_enrichment_status"], "complete", "{event}");
    assert_eq!(
        world.verifier.state().calls.len(),
        0,
        "the verifier saw nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pii_policy_hashes_or_drops_contact_fields() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let world = World::start().await;
    let config = world.config("")
        + "pii_salt = \"pepper\"\n[tenants.omni.pipedrive.pii]\ncontact_email = \"hash\"\ncontact_phone_number = \"drop\"\ncontact_first_name = \"keep\"\n";
    let _enricher =
        EnricherProcess::start(&brokers, &topics, &tributary_tests::unique("pii"), &config).await;
    produce_raw(&brokers, &topics.raw, &[deal_change_v1(&omni_change())]).await;
    let records = read_json(&brokers, &topics.enriched, 1, Duration::from_secs(30));
    let event = &records[0].1;
    let hashed = event["contact_email"].as_str().expect("hashed email");
    assert_eq!(hashed.len(), 64);
    assert!(
        !records[0]
            .0
            .value
            .windows(JANE.len())
            .any(|w| w == JANE.as_bytes()),
        "the address appears nowhere"
    );
    assert_eq!(event["email_validation_email"], hashed);
    assert!(event.get("contact_phone_number").is_none());
    assert_eq!(event["contact_first_name"], "Jane");
    // What the policy does not name is masked: the safe default.
    assert_eq!(event["contact_last_name"], "D***");
    assert_eq!(event["contact_position"], "O***");
    assert_eq!(
        event["email_validation_status"], "valid",
        "validation still ran on the real address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_and_restarted_it_loses_nothing_and_never_commits_ahead() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 3).await;
    let world = World::start().await;
    world.pipedrive.state().behaviour.latency = Duration::from_millis(2);
    let group = tributary_tests::unique("crash");
    let mut bodies = Vec::new();
    for n in 0..3000_i64 {
        let mut change = omni_change();
        change.deal_id = 5001 + n % 5;
        change.value = 100.0 + n as f64;
        change.timestamp_micro += n * 1_000;
        bodies.push(deal_change_v2(
            &change,
            &format!("30000000-0000-4000-8000-{n:012}"),
        ));
    }
    let ids = produce_raw(&brokers, &topics.raw, &bodies).await;
    let raw_records = broker::read_topic(&brokers, &topics.raw, ids.len(), Duration::from_secs(30));
    let raw_id_at: BTreeMap<(i32, i64), String> = raw_records
        .iter()
        .map(|r| {
            let event = tributary_envelope::RawEvent::decode_from(&r.value).expect("envelope");
            ((r.partition, r.offset), event.event_id)
        })
        .collect();

    let mut enricher = EnricherProcess::start(&brokers, &topics, &group, &world.config("")).await;
    // Let it get part of the way, then kill it without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done =
            broker::read_topic(&brokers, &topics.enriched, 500, Duration::from_millis(500)).len();
        if done >= 300 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress:\n{}",
            enricher.service.log()
        );
    }
    enricher.service.child.kill().expect("SIGKILL");
    let _ = enricher.service.child.wait();

    // Every offset below a committed position has its output stored.
    let committed = broker::committed_offsets(&brokers, &group, &topics.raw);
    let enriched_now: BTreeSet<String> = read_json(
        &brokers,
        &topics.enriched,
        ids.len(),
        Duration::from_secs(3),
    )
    .iter()
    .map(|(_, e)| e["pipeline_event_id"].as_str().expect("id").to_owned())
    .collect();
    assert!(
        committed.values().any(|o| *o > 0),
        "something was committed before the kill"
    );
    for ((partition, offset), id) in &raw_id_at {
        if committed
            .get(partition)
            .is_some_and(|position| offset < position)
        {
            assert!(
                enriched_now.contains(id),
                "offset {offset} of partition {partition} committed before its output was stored"
            );
        }
    }

    // The same instance id: the restarted process takes its partitions back.
    let restarted = EnricherProcess::start(&brokers, &topics, &group, &world.config("")).await;
    let (all, _) = wait_for_event_ids(&brokers, &topics.enriched, &ids, Duration::from_secs(90));
    let lost: Vec<&String> = ids.iter().filter(|id| !all.contains(*id)).collect();
    let log = restarted.service.log();
    let tail: String = log
        .chars()
        .skip(log.chars().count().saturating_sub(4000))
        .collect();
    assert!(
        lost.is_empty(),
        "{} raw events never enriched; restarted enricher's log ends:\n{tail}",
        lost.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_the_broker_refuses_is_dead_lettered_by_reference_and_the_rest_flows() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let world = World::start().await;
    // Outputs above 20 kB are refused for what they are, as a broker's
    // message.max.bytes would refuse them.
    let config = format!(
        "{}\n[kafka.librdkafka]\n\"message.max.bytes\" = \"20000\"\n",
        world.config("")
    );
    let enricher = EnricherProcess::start(
        &brokers,
        &topics,
        &tributary_tests::unique("too-large"),
        &config,
    )
    .await;
    let before = deal_change_v1(&omni_change());
    let mut huge = before.clone();
    huge["current"]["title"] = json!("Enterprise renewal ".repeat(1_600));
    let mut after = before.clone();
    after["meta"]["timestamp_micro"] =
        json!(before["meta"]["timestamp_micro"].as_i64().expect("micro") + 1);
    let ids = produce_raw(&brokers, &topics.raw, &[before, huge, after]).await;

    read_json(&brokers, &topics.enriched, 2, Duration::from_secs(30));
    // Nothing more comes: a short wait for a third.
    let enriched = read_json(&brokers, &topics.enriched, 3, Duration::from_secs(2));
    let passed: Vec<&str> = enriched
        .iter()
        .map(|(_, json)| json["pipeline_event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        passed,
        [ids[0].as_str(), ids[2].as_str()],
        "the neighbours flow"
    );
    broker::read_topic(&brokers, &topics.dead_letter, 1, Duration::from_secs(30));
    let letters = broker::read_topic(&brokers, &topics.dead_letter, 2, Duration::from_secs(2));
    assert_eq!(letters.len(), 1);
    let letter: DeadLetter = serde_json::from_slice(&letters[0].value).expect("a dead letter");
    assert_eq!(
        (letter.stage.as_str(), letter.reason.as_str()),
        ("enricher", "output_refused")
    );
    assert_eq!(letter.event_id.as_deref(), Some(ids[1].as_str()));
    assert!(
        letter.errors[0].message.contains("refused"),
        "{:?}",
        letter.errors
    );
    // The raw event is too large to embed: the record says where it is.
    assert!(letter.original_by_reference && letter.original.is_empty());
    assert_eq!(
        (
            letter.original_topic.as_str(),
            letter.original_partition,
            letter.original_offset
        ),
        (topics.raw.as_str(), 0, 1)
    );

    // The stage did not stall: its offsets move past the refused event.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let committed = broker::committed_offsets(&brokers, &enricher.group, &topics.raw)
            .get(&0)
            .copied();
        if committed == Some(3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "committed {committed:?}, want 3\n{}",
            enricher.service.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // `tributary dlq show` reads the original from its place.
    let mut command = tributary_tests::process::tributary_command();
    let dir = tempfile::tempdir().expect("dir");
    let output = command
        .args(["dlq", "show", "0@0"])
        .current_dir(dir.path())
        .env("TRIBUTARY_KAFKA__BROKERS", &brokers)
        .env("TRIBUTARY_TOPICS__RAW", &topics.raw)
        .env("TRIBUTARY_TOPICS__ENRICHED", &topics.enriched)
        .env("TRIBUTARY_TOPICS__DEAD_LETTER", &topics.dead_letter)
        .output()
        .expect("running tributary");
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "{err}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(shown["original"]["event_id"], ids[1].as_str());
    assert!(
        shown["original"]["body"]
            .as_str()
            .is_some_and(|body| body.contains("Enterprise renewal Enterprise renewal"))
    );
}
