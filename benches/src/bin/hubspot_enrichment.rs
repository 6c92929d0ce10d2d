//! HubSpot enrichment on a realistic stream: a simulated HubSpot portal's
//! webhook events (deals, contacts, companies and engagements: creations,
//! property changes, associations, merges, deletions and restores), split by
//! the collector's HubSpot source and enriched in memory against the fake
//! HubSpot API, as many at a time as the enricher's lanes allow. Prints the
//! API calls per 1,000 events by endpoint and the events per second, first
//! with no rate limit (what batching saves), then within a private app's
//! burst limit (what the budget allows).
//!
//! `cargo run --release -p tributary-benches --bin hubspot-enrichment`

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use serde_json::json;
use tributary_enrichment::EnrichmentSettings;
use tributary_envelope::{ENVELOPE_VERSION, RawEvent};
use tributary_fake_apis::hubspot::{FakeHubSpot, HubSpotState, RateLimits};
use tributary_sources::{EnricherContext, SourceEnricher, WebhookRequest};
use tributary_world::Habits;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_500)]
    deals: usize,
    #[arg(long, default_value_t = 1_500)]
    activities: usize,
    /// Events enriched at once (the enricher's `lanes`).
    #[arg(long, default_value_t = 4_096)]
    lanes: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let world = tributary_benches::hubspot_world(args.deals, args.activities, args.seed);
    let tenant = &world.tenants[0];
    let account = tenant.hubspot().expect("a HubSpot tenant");

    // The portal as of the last change.
    let mut portals = world.hubspot_portals();
    let portal = portals
        .get_mut(&account.access_token)
        .expect("the tenant's portal");
    for change in &world.changes {
        world.apply_to_portal(portal, change);
    }

    // The events, as the collector splits and stores them.
    let section = json!({
        "portal_id": account.portal_id, "client_secret": account.client_secret,
        "access_token": account.access_token, "api_base_url": "http://placeholder",
        "marketing_source_property": account.marketing_source_property,
    });
    let platform = tributary_sources::platform("hubspot").expect("registered");
    let source = (platform.webhook)(vec![(&tenant.name, &section)])?;
    let mut raw_events = Vec::new();
    for delivery in world.deliveries(&Habits::none()) {
        let body = bytes::Bytes::from(delivery.body.clone());
        let (method, uri, headers) = (
            http::Method::POST,
            "/webhooks/hubspot".parse::<http::Uri>()?,
            http::HeaderMap::new(),
        );
        let request = WebhookRequest {
            method: &method,
            uri: &uri,
            headers: &headers,
            body: &body,
        };
        let split = source
            .split(&tenant.name, &request)
            .map_err(|refusal| anyhow::anyhow!("{refusal:?}"))?;
        for event in split.events {
            raw_events.push(RawEvent {
                envelope_version: ENVELOPE_VERSION,
                tenant: tenant.name.clone(),
                source: "hubspot".into(),
                event_id: event.keys.event_id.clone(),
                keys: Some(tributary_envelope::EventKeys {
                    payload_version: event.keys.payload_version.clone(),
                    object: event.keys.object.clone(),
                    object_id: event.keys.object_id.clone(),
                    action: event.keys.action.clone(),
                    attempt: event.keys.attempt,
                    occurred_at_micros: event.keys.occurred_at_micros,
                }),
                body: event.body,
                ..RawEvent::default()
            });
        }
    }
    let mut by_object: BTreeMap<String, usize> = BTreeMap::new();
    for raw in &raw_events {
        *by_object
            .entry(
                raw.keys
                    .as_ref()
                    .map(|k| k.object.clone())
                    .unwrap_or_default(),
            )
            .or_default() += 1;
    }
    println!(
        "{} HubSpot events ({by_object:?}), {} lanes",
        raw_events.len(),
        args.lanes
    );
    let raw_events = Arc::new(raw_events);

    for (name, limits) in [
        (
            "no rate limit",
            RateLimits {
                per_10_seconds: 1_000_000,
                daily: u32::MAX,
            },
        ),
        ("a private app's burst limit", RateLimits::PROFESSIONAL),
    ] {
        let mut state = HubSpotState::default();
        state.portals = portals.clone();
        state.limits = limits;
        let api = FakeHubSpot::start(state).await?;
        let section = json!({
            "portal_id": account.portal_id, "client_secret": account.client_secret,
            "access_token": account.access_token, "api_base_url": api.base_url(),
            "requests_per_10s": limits.per_10_seconds.min(100_000),
            "marketing_source_property": account.marketing_source_property,
        });
        let settings = EnrichmentSettings::default();
        let enricher: Arc<dyn SourceEnricher> = Arc::from((platform.enricher)(&EnricherContext {
            tenants: vec![(&tenant.name, &section)],
            settings: &settings,
            http: reqwest::Client::new(),
            email: None,
        })?);
        let started = Instant::now();
        let partial = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // As in the enricher: one record's events share a lane, in order.
        let mut queues: Vec<Vec<usize>> = vec![Vec::new(); args.lanes.max(1)];
        for (i, raw) in raw_events.iter().enumerate() {
            let keys = raw.keys.clone().unwrap_or_default();
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (&keys.object, &keys.object_id).hash(&mut hasher);
            queues[(hasher.finish() % args.lanes.max(1) as u64) as usize].push(i);
        }
        let mut lanes = Vec::new();
        for queue in queues {
            let (enricher, raw_events, partial) =
                (enricher.clone(), raw_events.clone(), partial.clone());
            lanes.push(tokio::spawn(async move {
                for i in queue {
                    match enricher.enrich(&raw_events[i]).await {
                        Ok(enriched) if enriched.complete => {}
                        _ => {
                            partial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for lane in lanes {
            lane.await?;
        }
        let elapsed = started.elapsed();
        let calls = api.state().calls.clone();
        let mut by_endpoint: BTreeMap<String, usize> = BTreeMap::new();
        for call in &calls {
            let path = call.path.split('?').next().unwrap_or_default();
            // Ids in paths are not endpoints.
            let endpoint: Vec<&str> = path
                .split('/')
                .map(|part| {
                    if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
                        "{id}"
                    } else {
                        part
                    }
                })
                .collect();
            *by_endpoint.entry(endpoint.join("/")).or_default() += 1;
        }
        let n = raw_events.len() as f64;
        println!();
        println!("## {name}");
        println!(
            "{} calls for {} events: {:.1} per 1,000 events; {:.0} events/s; {} partial",
            calls.len(),
            raw_events.len(),
            calls.len() as f64 * 1_000.0 / n,
            n / elapsed.as_secs_f64(),
            partial.load(std::sync::atomic::Ordering::Relaxed)
        );
        println!("| endpoint | calls | per 1,000 events |");
        println!("|---|---|---|");
        for (endpoint, count) in by_endpoint {
            println!(
                "| `{endpoint}` | {count} | {:.1} |",
                count as f64 * 1_000.0 / n
            );
        }
    }
    Ok(())
}
