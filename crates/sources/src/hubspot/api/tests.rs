//! How record lookups share batch reads, against the fake HubSpot API.

use std::sync::Arc;
use std::time::Duration;

use tributary_enrichment::EnrichmentSettings;
use tributary_fake_apis::Running;
use tributary_fake_apis::hubspot::{
    ChangeSource, FakeHubSpot, HubSpotState, ObjectType as FakeType, SAMPLE_START_MS, sample_portal,
};

use super::{HubSpotApi, ObjectType, Portal, PortalAccess, now_micro};

const TOKEN: &str = "pat-na1-test";
const DEALS_READ: &str = "/crm/v3/objects/deals/batch/read";

/// A fake portal with deals 1000..1020, and the API to it within `requests_per_10s`.
async fn portal(requests_per_10s: u32, latency: Duration) -> (Running<HubSpotState>, Arc<Portal>) {
    let mut portal = sample_portal();
    let ui = ChangeSource::crm_ui(9001);
    for id in 1_000..1_020 {
        let name = format!("Deal {id}");
        portal.set(
            FakeType::Deals,
            id,
            SAMPLE_START_MS,
            &[
                ("dealname", &name),
                ("pipeline", "811234"),
                ("dealstage", "1101"),
            ],
            &ui,
        );
    }
    let mut state = HubSpotState::with_portal(TOKEN, portal);
    state.behaviour.latency = latency;
    let fake = FakeHubSpot::start(state).await.expect("the fake starts");
    let settings = EnrichmentSettings {
        retry_budget_ms: 10_000,
        ..EnrichmentSettings::default()
    };
    let api = HubSpotApi::new(
        vec![PortalAccess {
            tenant: "acme".into(),
            base_url: fake.base_url(),
            token: tributary_config::Secret::new(TOKEN),
            requests_per_10s,
        }],
        &settings,
        reqwest::Client::new(),
    );
    let portal = api.portal("acme").expect("configured").clone();
    (fake, portal)
}

/// Waits until a batch read of deal `id` is under way.
async fn until_in_flight(portal: &Portal, id: &str) {
    loop {
        let reading = super::lock(&portal.records)
            .get(&ObjectType::Deals)
            .is_some_and(|pending| pending.in_flight.contains_key(id));
        if reading {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn deal_name(found: &super::Looked) -> Option<String> {
    let record = found.as_ref().ok()?.as_ref()?;
    record.property("dealname").map(str::to_owned)
}

#[tokio::test]
async fn a_lookup_joins_the_read_under_way_when_that_read_is_fresh_enough() {
    let (fake, portal) = portal(190, Duration::from_millis(300)).await;
    let received = now_micro();
    let first = tokio::spawn({
        let portal = portal.clone();
        async move { portal.record(ObjectType::Deals, "1000", received).await }
    });
    // The first read is under way (the fake answers after 300 ms).
    until_in_flight(&portal, "1000").await;
    let received_before_it_started = tokio::spawn({
        let portal = portal.clone();
        async move { portal.record(ObjectType::Deals, "1000", received).await }
    });
    let first = first.await.expect("joins");
    let joined = received_before_it_started.await.expect("joins");
    assert_eq!(deal_name(&first).as_deref(), Some("Deal 1000"));
    assert_eq!(deal_name(&joined).as_deref(), Some("Deal 1000"));
    assert_eq!(fake.state().calls_to(DEALS_READ), 1, "one read for both");

    // An event received after a read started needs a read of its own.
    let later = now_micro();
    let read = tokio::spawn({
        let portal = portal.clone();
        async move { portal.record(ObjectType::Deals, "1001", later).await }
    });
    until_in_flight(&portal, "1001").await;
    // Strictly after the read started (its stamp is in µs).
    tokio::time::sleep(Duration::from_millis(1)).await;
    let newer = now_micro();
    let needs_its_own = portal.record(ObjectType::Deals, "1001", newer).await;
    read.await.expect("joins").expect("read");
    assert_eq!(deal_name(&needs_its_own).as_deref(), Some("Deal 1001"));
    assert_eq!(fake.state().calls_to(DEALS_READ), 3);
}

#[tokio::test]
async fn a_batch_waiting_for_its_request_slot_takes_the_lookups_that_arrive_meanwhile() {
    // Two requests at once, then one every 10 s / 6 ≈ 1.7 s.
    let (fake, portal) = portal(8, Duration::ZERO).await;
    // The property list and one batch read use the burst.
    let primed = portal.record(ObjectType::Deals, "1000", 0).await;
    assert_eq!(deal_name(&primed).as_deref(), Some("Deal 1000"));
    assert_eq!(fake.state().calls_to(DEALS_READ), 1);

    let mut lookups = Vec::new();
    for id in 1_001..1_011 {
        let portal = portal.clone();
        lookups.push(tokio::spawn(async move {
            portal.record(ObjectType::Deals, &id.to_string(), 0).await
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for (lookup, id) in lookups.into_iter().zip(1_001..) {
        let found = lookup.await.expect("joins");
        assert_eq!(deal_name(&found), Some(format!("Deal {id}")));
    }
    let state = fake.state();
    assert_eq!(
        state.calls_to(DEALS_READ),
        2,
        "the ten lookups share the next slot's read: {:?}",
        state.calls
    );
}
