//! Load generator for the collector, with the broker's own ceiling measured
//! in the same run.
//!
//! 1. Bare producer: an rdkafka producer with the collector's settings sends
//!    the same envelopes, `--connections` senders each awaiting its
//!    acknowledgement (the collector's per-request pattern), then pipelined.
//! 2. Peak: `--connections` keep-alive HTTP connections post realistic
//!    Pipedrive deliveries to a collector process as fast as it accepts them.
//! 3. Half rate: an open-loop run at half the peak rate (or `--rate`) against
//!    the collector, then the bare producer at the same rate; latency is
//!    measured from each request's scheduled start, so falling behind shows up.
//!
//! With `--source hubspot`, the same comparison on HubSpot's batches (a
//! JSON array of up to 100 thin events, signed `X-HubSpot-Signature-v3`,
//! each element its own event on the raw topic), from a simulated HubSpot
//! portal (`tributary_world`):
//!
//! 1. Bare producer: `--connections` senders, each queueing one batch's
//!    envelopes (built as the collector builds them) and awaiting all their
//!    acknowledgements, as the collector does for a request.
//! 2. Peak: `--connections` keep-alive connections post the same batches to
//!    `/webhooks/hubspot`, each signed when it is sent.
//!
//! both on the world's own batches (as HubSpot groups its events) and on
//! full batches of 100 events.
//!
//! With `--source salesforce`, the collector's peak on Salesforce Outbound
//! Messages (SOAP) of one notification and of 100, each notification its
//! own event, acknowledged with `<Ack>true</Ack>`.
//!
//! With `--source zoho`, notifications of 1 and of 100 record ids (each id
//! its own event); with `--source freshsales`, workflow bodies naming one
//! deal, authenticated by the secret header.
//!
//! Starts its own broker (the pinned Tansu that deploy/local/up.sh installs)
//! unless `--brokers` names one. Run with
//! `cargo run --release -p tributary-benches --bin collector-load`
//! (`-- --source hubspot` for HubSpot).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use tributary_benches::{Delivery, deliveries, enqueue, histogram, process_usage, record, summary};
use tributary_config::KafkaSettings;
use tributary_tests::process::Service;
use tributary_world::hubspot::MAX_BATCH;
use tributary_world::{Apis, Habits, Version, World};

#[derive(Parser, Clone)]
#[command(
    about = "Measure the collector's accepted webhooks/s and ack latency next to the broker's ceiling"
)]
struct Args {
    /// Broker to produce to. Default: a fresh private broker (Tansu on its own
    /// port and storage) started for this run, so runs do not slow each other.
    #[arg(long)]
    brokers: Option<String>,
    /// The platform whose deliveries are posted: Pipedrive's single-event
    /// webhooks, HubSpot's signed batches, or Salesforce's Outbound Messages.
    #[arg(long, value_enum, default_value_t = Source::Pipedrive)]
    source: Source,
    /// Concurrent keep-alive connections (and concurrent bare-producer senders).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Length of each measured phase, in seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Events in flight for the pipelined bare-producer run (Pipedrive).
    #[arg(long, default_value_t = 1024)]
    pipelined: usize,
    /// Fixed rate for the open-loop run instead of half the peak (events/s; Pipedrive).
    #[arg(long)]
    rate: Option<f64>,
    /// Deals of the simulated HubSpot portal (HubSpot).
    #[arg(long, default_value_t = 1_500)]
    deals: usize,
    /// Activities of the simulated HubSpot portal (HubSpot).
    #[arg(long, default_value_t = 1_500)]
    activities: usize,
    /// Seed of the simulated HubSpot portal (HubSpot).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Producer setting overrides as `[kafka]` keys, e.g. `linger_ms=2`,
    /// applied to the bare producer and the collector alike.
    #[arg(long = "kafka", value_parser = parse_key_value)]
    kafka: Vec<(String, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Source {
    Pipedrive,
    #[value(name = "hubspot")]
    HubSpot,
    /// Outbound Messages of 1 and of 100 notifications.
    Salesforce,
    /// Notifications of 1 and of 100 record ids.
    Zoho,
    /// Workflow bodies naming one deal.
    Freshsales,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {text:?}"))?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

struct Phase {
    name: String,
    /// Operations started (requests or sends).
    sent: u64,
    /// Operations that stored their events.
    ok: u64,
    /// Events stored by them (one per operation for Pipedrive).
    events: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn event_rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn row(&self) -> String {
        let (p50, p99, max) = summary(&self.latency);
        format!(
            "| {} | {:.0} | {} / {} | {p50:.2} | {p99:.2} | {max:.2} |",
            self.name,
            self.rate(),
            self.ok,
            self.sent,
        )
    }

    /// A row of the HubSpot table: requests and the events they carried.
    fn batch_row(&self) -> String {
        let (p50, p99, max) = summary(&self.latency);
        format!(
            "| {} | {:.1} | {:.0} | {:.1} | {} / {} | {p50:.2} | {p99:.2} | {max:.2} |",
            self.name,
            self.rate(),
            self.event_rate(),
            self.events as f64 / self.ok.max(1) as f64,
            self.ok,
            self.sent,
        )
    }
}

/// What both platforms' runs share: the broker, the raw topic, the settings.
struct Setup {
    args: Args,
    brokers: String,
    topic: String,
    /// The `[kafka]` section's body, for the collector's configuration.
    kafka_toml: String,
    producer: Arc<FutureProducer>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let private = args
        .brokers
        .is_none()
        .then(tributary_tests::broker::PrivateBroker::start);
    let brokers = args
        .brokers
        .clone()
        .or_else(|| private.as_ref().map(|b| b.brokers()))
        .context("a broker")?;
    let topic = tributary_tests::broker::unique_topic(&brokers, "bench-raw", 6).await;
    let mut kafka_toml = format!("brokers = \"{brokers}\"\n");
    for (key, value) in &args.kafka {
        let value = if value.parse::<f64>().is_ok() {
            value.clone()
        } else {
            format!("\"{value}\"")
        };
        kafka_toml.push_str(&format!("{key} = {value}\n"));
    }
    #[derive(serde::Deserialize)]
    struct KafkaOnly {
        kafka: KafkaSettings,
    }
    let settings = tributary_config::Loader::from_toml_str(&format!("[kafka]\n{kafka_toml}"))
        .extract::<KafkaOnly>()?
        .kafka;
    let producer: Arc<FutureProducer> = Arc::new(
        tributary_kafka::producer_config(&settings)
            .create()
            .context("creating the bare producer")?,
    );
    let setup = Setup {
        args,
        brokers,
        topic,
        kafka_toml,
        producer,
    };
    match setup.args.source {
        Source::Pipedrive => pipedrive(setup).await,
        Source::HubSpot => hubspot(setup).await,
        Source::Salesforce => salesforce(setup).await,
        Source::Zoho | Source::Freshsales => json_webhooks(setup).await,
    }
}

/// A client keeping one connection open, as a platform's sender does.
fn keep_alive_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()
        .expect("http client")
}

/// A collector producing to `topic` with `tenants` (TOML), once ready; and
/// its address.
async fn start_collector(kafka_toml: &str, topic: &str, tenants: &str) -> (Service, String) {
    let port = tributary_tests::free_port();
    let config = format!(
        "[kafka]\n{kafka_toml}[topics]\nraw = \"{topic}\"\n[telemetry]\nlog_level = \"warn\"\n[collector]\nlisten = \"127.0.0.1:{port}\"\n{tenants}"
    );
    let collector = Service::start("tributary-collector", "collector", &config);
    let base = format!("http://127.0.0.1:{port}");
    tributary_tests::process::wait_for_http_ok(
        &format!("{base}/readyz"),
        Duration::from_secs(30),
        || collector.log(),
    )
    .await;
    (collector, base)
}

const ZOHO_TOKEN: &str = "bench-channel-token";
const FRESHSALES_SECRET: &str = "bench-workflow-secret";

/// A Zoho notification of `ids` record ids, the `n`-th.
fn zoho_notification(n: usize, ids: usize) -> String {
    let ids: Vec<String> = (0..ids)
        .map(|i| {
            format!(
                "\"{}\"",
                5_725_767_000_000_000_000u64 + (n * 100 + i) as u64
            )
        })
        .collect();
    format!(
        r#"{{"server_time":{},"module":"Deals","operation":"update","ids":[{}],"channel_id":"1000000068001","token":"{ZOHO_TOKEN}","resource_uri":"https://www.zohoapis.com/crm/v8/Deals","query_params":{{}}}}"#,
        1_718_000_000_000u64 + n as u64,
        ids.join(",")
    )
}

/// A Freshsales workflow body naming one deal, the `n`-th change.
fn freshsales_body(n: usize) -> String {
    format!(
        r#"{{"deal": {{"id": "{}", "name": "Deal {n}", "amount": "1200.0", "updated_at": "2026-11-02T10:{:02}:{:02}Z"}}}}"#,
        17_000_000_000u64 + (n % 5_000) as u64,
        (n / 60) % 60,
        n % 60
    )
}

/// Posts `body(n)` as JSON with `header`; the events stored when answered 202.
fn post_json(
    url: String,
    header: (&'static str, &'static str),
    events: u64,
    body: fn(usize) -> String,
) -> Operation {
    let client = keep_alive_client();
    Arc::new(move |n| {
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .header(header.0, header.1)
            .body(body(n));
        Box::pin(async move {
            match request.send().await {
                Ok(response) if response.status() == reqwest::StatusCode::ACCEPTED => events,
                _ => 0,
            }
        })
    })
}

/// Zoho's notifications (1 and 100 ids) or Freshsales' workflow bodies: the
/// collector's peak, each record its own event.
async fn json_webhooks(setup: Setup) -> anyhow::Result<()> {
    let Setup {
        args,
        brokers,
        topic,
        kafka_toml,
        producer: _,
    } = setup;
    let port = tributary_tests::free_port();
    let (name, section) = match args.source {
        Source::Zoho => (
            "zoho",
            format!(
                "org_id = \"600\"\nchannel_ids = [\"1000000068001\"]\ntoken = \"{ZOHO_TOKEN}\"\n"
            ),
        ),
        _ => (
            "freshsales",
            format!(
                "secret = \"{FRESHSALES_SECRET}\"\napi_url = \"https://bench.myfreshworks.com/crm/sales\"\napi_key = \"unused\"\n"
            ),
        ),
    };
    let config = format!(
        "[kafka]\n{kafka_toml}[topics]\nraw = \"{topic}\"\n[telemetry]\nlog_level = \"warn\"\n[collector]\nlisten = \"127.0.0.1:{port}\"\n[tenants.acme.{name}]\n{section}"
    );
    let collector = Service::start("tributary-collector", "collector", &config);
    let base = format!("http://127.0.0.1:{port}");
    tributary_tests::process::wait_for_http_ok(
        &format!("{base}/readyz"),
        Duration::from_secs(30),
        || collector.log(),
    )
    .await;
    let url = format!("{base}/webhooks/{name}/acme");
    let runs: Vec<(String, Box<dyn Fn() -> Operation>)> = match args.source {
        Source::Zoho => vec![
            (
                "1 id a notification".to_owned(),
                Box::new(|| {
                    post_json(url.clone(), ("x-unused", "-"), 1, |n| {
                        zoho_notification(n, 1)
                    })
                }),
            ),
            (
                "100 ids a notification".to_owned(),
                Box::new(|| {
                    post_json(url.clone(), ("x-unused", "-"), 100, |n| {
                        zoho_notification(n, 100)
                    })
                }),
            ),
        ],
        _ => vec![(
            "1 deal a body".to_owned(),
            Box::new(|| {
                post_json(
                    url.clone(),
                    ("x-tributary-secret", FRESHSALES_SECRET),
                    1,
                    freshsales_body,
                )
            }),
        )],
    };
    // One request first, so a configuration mistake is an error, not zeros.
    let first = (runs[0].1)()(999_999).await;
    anyhow::ensure!(
        first > 0,
        "the collector did not accept a delivery\n{}",
        collector.log()
    );
    eprintln!(
        "broker {brokers}, topic {topic}; {name}; {} s per phase",
        args.seconds
    );
    let duration = Duration::from_secs(args.seconds);
    let n = args.connections;
    let mut phases = Vec::new();
    let mut usage = vec![process_usage(collector.pid()).unwrap_or_default()];
    for (label, operation) in &runs {
        phases.push(
            closed_loop(
                format!("collector peak, {name}, {label} ({n} connections)"),
                n,
                duration,
                operation,
            )
            .await,
        );
        usage.push(process_usage(collector.pid()).unwrap_or_default());
    }
    println!();
    println!(
        "| run | requests/s | events/s | events/request | stored / sent (requests) | p50 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for phase in &phases {
        println!("{}", phase.batch_row());
    }
    for (i, phase) in phases.iter().enumerate() {
        println!(
            "collector process, {}: {:.3} CPU-ms per event",
            phase.name,
            1000.0 * (usage[i + 1].cpu_seconds - usage[i].cpu_seconds) / phase.events.max(1) as f64
        );
    }
    println!(
        "collector peak RSS: {:.0} MiB",
        usage.last().map_or(0.0, |u| u.peak_rss_mib)
    );
    Ok(())
}

const SALESFORCE_ORG: &str = "00D5g000004ABCDEA4";
const SALESFORCE_SECRET: &str = "bench-endpoint-secret";

/// An Outbound Message of `notifications` opportunity notifications, ids
/// unique to `n` so every request stores new events.
fn outbound_message(n: usize, notifications: usize) -> String {
    let mut body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{SALESFORCE_ORG}</OrganizationId><ActionId>04k5g000000XyZaAAK</ActionId><SessionId xsi:nil="true"/><EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5g000004ABCD</EnterpriseUrl><PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5g000004ABCD</PartnerUrl>"#
    );
    for i in 0..notifications {
        let id = n * notifications + i;
        body.push_str(&format!(
            r#"<Notification><Id>04l5g{id:013}</Id><sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>0065g{:013}</sf:Id><sf:Amount>{}.50</sf:Amount><sf:CloseDate>2025-03-04</sf:CloseDate><sf:IsClosed>false</sf:IsClosed><sf:IsWon>false</sf:IsWon><sf:LastModifiedDate>2025-03-01T10:00:00.000Z</sf:LastModifiedDate><sf:Name>Renewal {id}</sf:Name><sf:OwnerId>0055g00000OwNeRAAA</sf:OwnerId><sf:StageName>Negotiation</sf:StageName></sObject></Notification>"#,
            id % 50_000,
            1_000 + id % 9_000
        ));
    }
    body.push_str("</notifications></soapenv:Body></soapenv:Envelope>");
    body
}

/// Posts the n-th Outbound Message; resolves to its notifications once
/// acknowledged with `<Ack>true</Ack>`.
fn post_outbound(url: String, notifications: usize) -> Operation {
    let client = keep_alive_client();
    Arc::new(move |n| {
        let request = client
            .post(&url)
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"\"")
            .body(outbound_message(n, notifications));
        Box::pin(async move {
            match request.send().await {
                Ok(response) if response.status() == reqwest::StatusCode::OK => {
                    let acknowledged = response
                        .text()
                        .await
                        .is_ok_and(|body| body.contains("<Ack>true</Ack>"));
                    if acknowledged {
                        notifications as u64
                    } else {
                        0
                    }
                }
                _ => 0,
            }
        })
    })
}

/// Salesforce's Outbound Messages: the collector's peak on messages of one
/// notification and of 100 (Salesforce's largest).
async fn salesforce(setup: Setup) -> anyhow::Result<()> {
    let Setup {
        args,
        brokers,
        topic,
        kafka_toml,
        producer: _,
    } = setup;
    let (collector, base) = start_collector(
        &kafka_toml,
        &topic,
        &format!(
            "[tenants.acme.salesforce]\norganization_id = \"{SALESFORCE_ORG}\"\nendpoint_secret = \"{SALESFORCE_SECRET}\"\n"
        ),
    )
    .await;
    let url = format!("{base}/webhooks/salesforce/acme?secret={SALESFORCE_SECRET}");
    // One message first, so a configuration mistake is an error, not zeros.
    let first = post_outbound(url.clone(), 1)(999_999_999).await;
    anyhow::ensure!(
        first == 1,
        "the collector did not acknowledge a message\n{}",
        collector.log()
    );
    eprintln!(
        "broker {brokers}, topic {topic}; Outbound Messages of 1 and of 100 notifications ({} and {} bytes); {} s per phase",
        outbound_message(0, 1).len(),
        outbound_message(0, 100).len(),
        args.seconds
    );
    let duration = Duration::from_secs(args.seconds);
    let n = args.connections;
    let usage_before = process_usage(collector.pid()).unwrap_or_default();
    let single = closed_loop(
        format!("collector peak, 1 notification a message ({n} connections)"),
        n,
        duration,
        || post_outbound(url.clone(), 1),
    )
    .await;
    let usage_single = process_usage(collector.pid()).unwrap_or_default();
    let hundred = closed_loop(
        format!("collector peak, 100 notifications a message ({n} connections)"),
        n,
        duration,
        || post_outbound(url.clone(), 100),
    )
    .await;
    let usage_hundred = process_usage(collector.pid()).unwrap_or_default();
    println!();
    println!(
        "| run | requests/s | events/s | events/request | stored / sent (requests) | p50 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for phase in [&single, &hundred] {
        println!("{}", phase.batch_row());
    }
    let per_event = |before: f64, after: f64, phase: &Phase| {
        1000.0 * (after - before) / phase.events.max(1) as f64
    };
    println!(
        "collector process: {:.3} CPU-ms per notification in messages of 1, {:.3} in messages of 100; {:.0} MiB peak RSS",
        per_event(usage_before.cpu_seconds, usage_single.cpu_seconds, &single),
        per_event(
            usage_single.cpu_seconds,
            usage_hundred.cpu_seconds,
            &hundred
        ),
        usage_hundred.peak_rss_mib
    );
    Ok(())
}

/// Pipedrive's webhooks: one event per request.
async fn pipedrive(setup: Setup) -> anyhow::Result<()> {
    let Setup {
        args,
        brokers,
        topic,
        kafka_toml,
        producer,
    } = setup;
    let tenant = "bench";
    let all = Arc::new(deliveries(tenant));
    eprintln!(
        "broker {brokers}, topic {topic}; {} sample deliveries; {} s per phase",
        all.len(),
        args.seconds
    );

    let duration = Duration::from_secs(args.seconds);
    let bare_op = || bare_send(producer.clone(), topic.clone(), all.clone());
    let n = args.connections;
    let bare = closed_loop(
        format!("bare producer, each sender awaiting its ack ({n} senders)"),
        n,
        duration,
        bare_op,
    )
    .await;
    let pipelined = closed_loop(
        format!("bare producer, pipelined ({} in flight)", args.pipelined),
        args.pipelined,
        duration,
        bare_op,
    )
    .await;

    let port = tributary_tests::free_port();
    let config = format!(
        "[kafka]\n{kafka_toml}[topics]\nraw = \"{topic}\"\n[telemetry]\nlog_level = \"warn\"\n[collector]\nlisten = \"127.0.0.1:{port}\"\n[tenants.{tenant}.pipedrive]\nusername = \"hook\"\npassword = \"s3cret\"\n"
    );
    let collector = Service::start("tributary-collector", "collector", &config);
    let url = format!("http://127.0.0.1:{port}/webhooks/pipedrive/{tenant}");
    let ready = format!("http://127.0.0.1:{port}/readyz");
    tributary_tests::process::wait_for_http_ok(&ready, Duration::from_secs(30), || collector.log())
        .await;
    let post_op = || post_webhook(url.clone(), all.clone());
    let usage_before = process_usage(collector.pid()).unwrap_or_default();
    let peak = closed_loop(
        format!("collector peak ({n} connections)"),
        n,
        duration,
        post_op,
    )
    .await;
    let usage_peak = process_usage(collector.pid()).unwrap_or_default();
    let half_rate = args.rate.unwrap_or(peak.rate() / 2.0);
    let half = open_loop(
        format!("collector at {half_rate:.0}/s (half the peak)"),
        n,
        duration,
        half_rate,
        post_op,
    )
    .await;
    let usage_after = process_usage(collector.pid()).unwrap_or_default();
    let bare_half = open_loop(
        format!("bare producer at {half_rate:.0}/s"),
        n,
        duration,
        half_rate,
        bare_op,
    )
    .await;

    println!();
    println!("| run | events/s | stored / sent | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for phase in [&bare, &pipelined, &peak, &half, &bare_half] {
        println!("{}", phase.row());
    }
    println!();
    println!(
        "collector peak: {:.0}/s = {:.0} % of the bare producer at the same concurrency ({:.0} % of pipelined)",
        peak.rate(),
        100.0 * peak.rate() / bare.rate(),
        100.0 * peak.rate() / pipelined.rate()
    );
    let (_, half_p99, _) = summary(&half.latency);
    let (_, bare_half_p99, _) = summary(&bare_half.latency);
    println!(
        "ack latency at half the peak rate ({half_rate:.0}/s): collector p99 {half_p99:.2} ms, bare producer p99 {bare_half_p99:.2} ms"
    );
    println!(
        "collector process: {:.2} CPU-s per 1000 accepted at peak, {:.0} MiB peak RSS",
        1000.0 * (usage_peak.cpu_seconds - usage_before.cpu_seconds) / peak.ok.max(1) as f64,
        usage_after.peak_rss_mib
    );
    Ok(())
}

/// Where the simulated HubSpot app posts (the signature covers this URL
/// followed by the path).
const PUBLIC_URL: &str = "https://hooks.example.com";

/// A set of HubSpot batches: the requests as the world posts them, and for
/// the bare producer each batch's envelopes as the collector stores them.
struct Batches {
    world: Arc<World>,
    deliveries: Arc<Vec<tributary_world::Delivery>>,
    bodies: Arc<Vec<Bytes>>,
    envelopes: Arc<Vec<Vec<Envelope>>>,
}

impl Batches {
    fn new(
        world: Arc<World>,
        deliveries: Vec<tributary_world::Delivery>,
        tenant: &str,
        source: &dyn tributary_sources::WebhookSource,
    ) -> anyhow::Result<Self> {
        let bodies: Vec<Bytes> = deliveries
            .iter()
            .map(|d| Bytes::from(d.body.clone()))
            .collect();
        let envelopes = bodies
            .iter()
            .map(|body| hubspot_envelopes(tenant, source, body))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Batches {
            world,
            deliveries: Arc::new(deliveries),
            bodies: Arc::new(bodies),
            envelopes: Arc::new(envelopes),
        })
    }

    fn events(&self) -> usize {
        self.envelopes.iter().map(Vec::len).sum()
    }

    fn mean_events(&self) -> f64 {
        self.events() as f64 / self.envelopes.len().max(1) as f64
    }

    /// The median and largest number of events in a batch.
    fn median_and_max_events(&self) -> (usize, usize) {
        let mut sizes: Vec<usize> = self.envelopes.iter().map(Vec::len).collect();
        sizes.sort_unstable();
        (
            sizes.get(sizes.len() / 2).copied().unwrap_or(0),
            sizes.last().copied().unwrap_or(0),
        )
    }

    fn mean_bytes(&self) -> f64 {
        self.bodies.iter().map(Bytes::len).sum::<usize>() as f64 / self.bodies.len().max(1) as f64
    }
}

/// A record for the raw topic: its key and the encoded event.
type Envelope = (String, Vec<u8>);

/// The envelopes (key, encoded event) the collector stores for one HubSpot
/// batch, split by the collector's own HubSpot source.
fn hubspot_envelopes(
    tenant: &str,
    source: &dyn tributary_sources::WebhookSource,
    body: &Bytes,
) -> anyhow::Result<Vec<Envelope>> {
    let (method, uri, headers) = (
        http::Method::POST,
        http::Uri::from_static("/webhooks/hubspot"),
        http::HeaderMap::new(),
    );
    let request = tributary_sources::WebhookRequest {
        method: &method,
        uri: &uri,
        headers: &headers,
        body,
    };
    let split = source
        .split(tenant, &request)
        .map_err(|refusal| anyhow::anyhow!("the collector would refuse a batch: {refusal:?}"))?;
    anyhow::ensure!(
        split.rejected.is_empty(),
        "the collector would reject elements of a batch: {:?}",
        split.rejected
    );
    let received_at_micros = u64::try_from(now_ms()).unwrap_or(0) * 1_000;
    Ok(split
        .events
        .into_iter()
        .map(|event| {
            let raw = tributary_tests::raw::envelope(
                tenant,
                "hubspot",
                event.body,
                event.keys,
                received_at_micros,
            );
            (raw.partition_key(), raw.encode_to_vec())
        })
        .collect())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// HubSpot's app webhooks: batches of thin events, each element stored as
/// its own event.
async fn hubspot(setup: Setup) -> anyhow::Result<()> {
    let Setup {
        args,
        brokers,
        topic,
        kafka_toml,
        producer,
    } = setup;
    let world = Arc::new(tributary_benches::hubspot_world(
        args.deals,
        args.activities,
        args.seed,
    ));
    let tenant = &world.tenants[0];
    let account = tenant.hubspot().context("a HubSpot tenant")?;
    let section = json!({
        "portal_id": account.portal_id, "client_secret": account.client_secret,
        "access_token": account.access_token, "api_base_url": "http://127.0.0.1:9",
        "public_url": PUBLIC_URL,
        "marketing_source_property": account.marketing_source_property,
    });
    let platform = tributary_sources::platform("hubspot").context("HubSpot is registered")?;
    let source = (platform.webhook)(vec![(&tenant.name, &section)])?;

    // As HubSpot groups the world's events (with its retries, duplicates
    // and late events), and in full batches of 100.
    let realistic = Batches::new(
        world.clone(),
        world.deliveries(&Habits::default()),
        &tenant.name,
        source.as_ref(),
    )?;
    let full_deliveries: Vec<tributary_world::Delivery> = world
        .hubspot_events()
        .chunks(MAX_BATCH)
        .filter(|chunk| chunk.len() == MAX_BATCH)
        .map(|chunk| {
            let elements: Vec<Value> = chunk
                .iter()
                .map(|event| event.element(&account.portal_id, 0))
                .collect();
            tributary_world::Delivery {
                tenant: 0,
                change: chunk.iter().map(|e| e.change).max().unwrap_or(0),
                version: Version::HubSpot,
                attempt: 1,
                body: serde_json::to_vec(&elements).expect("JSON"),
            }
        })
        .collect();
    let full = Batches::new(
        world.clone(),
        full_deliveries,
        &tenant.name,
        source.as_ref(),
    )?;
    anyhow::ensure!(
        !full.envelopes.is_empty(),
        "the portal makes fewer than {MAX_BATCH} events: raise --deals or --activities"
    );
    let (median, largest) = realistic.median_and_max_events();
    eprintln!(
        "broker {brokers}, topic {topic}; HubSpot portal of {} deals and {} activities: {} events in {} batches ({:.1} events and {:.0} bytes each on average, median {median}, largest {largest}), and {} full batches of {MAX_BATCH} ({:.0} bytes each); {} s per phase",
        args.deals,
        args.activities,
        realistic.events(),
        realistic.envelopes.len(),
        realistic.mean_events(),
        realistic.mean_bytes(),
        full.envelopes.len(),
        full.mean_bytes(),
        args.seconds
    );

    // One batch first, so the producer's connection and the topic's metadata
    // are not in the first phase (the collector gets the same below).
    let warm_up = bare_send_batch(producer.clone(), topic.clone(), full.envelopes.clone());
    anyhow::ensure!(warm_up(0).await > 0, "the broker did not store a batch");

    let duration = Duration::from_secs(args.seconds);
    let n = args.connections;
    let bare_realistic = closed_loop(
        format!("bare producer, the world's batches, each sender awaiting its batch's acks ({n} senders)"),
        n,
        duration,
        || bare_send_batch(producer.clone(), topic.clone(), realistic.envelopes.clone()),
    )
    .await;
    let bare_full = closed_loop(
        format!("bare producer, batches of {MAX_BATCH}, each sender awaiting its batch's acks ({n} senders)"),
        n,
        duration,
        || bare_send_batch(producer.clone(), topic.clone(), full.envelopes.clone()),
    )
    .await;

    let port = tributary_tests::free_port();
    let apis = Apis {
        pipedrive_url: "http://127.0.0.1:9".into(),
        pipedrive_requests_per_2s: 80,
        hubspot_url: "http://127.0.0.1:9".into(),
        hubspot_requests_per_10s: 100,
        public_url: PUBLIC_URL.into(),
        zoho_url: "http://127.0.0.1:9".into(),
        dynamics_url: "http://127.0.0.1:9".into(),
        salesforce_url: "http://127.0.0.1:9".into(),
        pubsub_url: "http://127.0.0.1:9".into(),
    };
    let config = format!(
        "[kafka]\n{kafka_toml}[topics]\nraw = \"{topic}\"\n[telemetry]\nlog_level = \"warn\"\n[collector]\nlisten = \"127.0.0.1:{port}\"\n{}",
        world.tenant_config(0, &apis)
    );
    let collector = Service::start("tributary-collector", "collector", &config);
    let base = format!("http://127.0.0.1:{port}");
    let ready = format!("{base}/readyz");
    tributary_tests::process::wait_for_http_ok(&ready, Duration::from_secs(30), || collector.log())
        .await;
    // One delivery first, so a configuration or signing mistake is an error, not zeros.
    let client = reqwest::Client::new();
    for batches in [&realistic, &full] {
        let response = signed_post(
            &client,
            &base,
            &batches.world,
            &batches.deliveries[0],
            batches.bodies[0].clone(),
        )
        .send()
        .await?;
        let status = response.status();
        anyhow::ensure!(
            status == reqwest::StatusCode::ACCEPTED,
            "the collector answered {status}: {}\n{}",
            response.text().await.unwrap_or_default(),
            collector.log()
        );
    }

    let usage_before = process_usage(collector.pid()).unwrap_or_default();
    let peak_realistic = closed_loop(
        format!("collector peak, the world's batches ({n} connections)"),
        n,
        duration,
        || post_batch(base.clone(), &realistic),
    )
    .await;
    let usage_realistic = process_usage(collector.pid()).unwrap_or_default();
    let peak_full = closed_loop(
        format!("collector peak, batches of {MAX_BATCH} ({n} connections)"),
        n,
        duration,
        || post_batch(base.clone(), &full),
    )
    .await;
    let usage_full = process_usage(collector.pid()).unwrap_or_default();

    println!();
    println!(
        "| run | requests/s | events/s | events/request | stored / sent (requests) | p50 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for phase in [&bare_realistic, &peak_realistic, &bare_full, &peak_full] {
        println!("{}", phase.batch_row());
    }
    println!();
    for (what, peak, bare) in [
        ("the world's batches", &peak_realistic, &bare_realistic),
        ("batches of 100", &peak_full, &bare_full),
    ] {
        println!(
            "collector peak on {what}: {:.1} requests/s, {:.0} events/s = {:.0} % of the bare producer at the same concurrency",
            peak.rate(),
            peak.event_rate(),
            100.0 * peak.event_rate() / bare.event_rate()
        );
    }
    // CPU-ms per accepted request and per accepted event.
    let cpu_ms = |before: f64, after: f64, phase: &Phase| {
        let ms = 1000.0 * (after - before);
        (ms / phase.ok.max(1) as f64, ms / phase.events.max(1) as f64)
    };
    let (realistic_request, realistic_event) = cpu_ms(
        usage_before.cpu_seconds,
        usage_realistic.cpu_seconds,
        &peak_realistic,
    );
    let (full_request, full_event) = cpu_ms(
        usage_realistic.cpu_seconds,
        usage_full.cpu_seconds,
        &peak_full,
    );
    println!(
        "collector process at peak: {realistic_request:.3} CPU-ms per request, {realistic_event:.3} per event on the world's batches; {full_request:.3} per request, {full_event:.4} per event on batches of 100; {:.0} MiB peak RSS",
        usage_full.peak_rss_mib
    );
    Ok(())
}

/// One request or send; resolves to the number of events stored (0: none,
/// the request or send failed).
type Operation = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync>;

/// Each of `workers` runs the next operation as soon as its previous one ended.
async fn closed_loop(
    name: String,
    workers: usize,
    duration: Duration,
    operation: impl Fn() -> Operation,
) -> Phase {
    let deadline = Instant::now() + duration;
    run_phase(
        name,
        workers,
        operation,
        move |worker, operation, sent| async move {
            let mut tally = Tally::default();
            let mut n = worker;
            while Instant::now() < deadline {
                attempt(&operation, n, &sent, &mut tally, Instant::now()).await;
                n += workers;
            }
            tally
        },
    )
    .await
}

/// Operations start on a fixed schedule at `rate` per second, spread over
/// `workers`; latency counts from the scheduled start, so a worker that
/// falls behind shows up in the figures.
async fn open_loop(
    name: String,
    workers: usize,
    duration: Duration,
    rate: f64,
    operation: impl Fn() -> Operation,
) -> Phase {
    let started = Instant::now();
    let total = (rate * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    run_phase(
        name,
        workers,
        operation,
        move |worker, operation, sent| async move {
            let mut tally = Tally::default();
            for n in (worker..total).step_by(workers) {
                let scheduled = started + interval.mul_f64(n as f64);
                tokio::time::sleep_until(scheduled.into()).await;
                attempt(&operation, n, &sent, &mut tally, scheduled).await;
            }
            tally
        },
    )
    .await
}

/// One worker's count: operations that stored their events, the events, and
/// their latencies.
struct Tally {
    ok: u64,
    events: u64,
    latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            ok: 0,
            events: 0,
            latency: histogram(),
        }
    }
}

/// Runs the n-th operation; counts it as sent and, when it stored its
/// events, counts them and records its latency from `since`.
async fn attempt(
    operation: &Operation,
    n: usize,
    sent: &AtomicU64,
    tally: &mut Tally,
    since: Instant,
) {
    sent.fetch_add(1, Ordering::Relaxed);
    let events = operation(n).await;
    if events > 0 {
        record(&mut tally.latency, since.elapsed());
        tally.ok += 1;
        tally.events += events;
    }
}

/// Runs `worker` on `workers` tasks, each with its own operation, and sums up.
async fn run_phase<W, F>(
    name: String,
    workers: usize,
    operation: impl Fn() -> Operation,
    worker: W,
) -> Phase
where
    W: Fn(usize, Operation, Arc<AtomicU64>) -> F,
    F: Future<Output = Tally> + Send + 'static,
{
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|n| tokio::spawn(worker(n, operation(), sent.clone())))
        .collect();
    finish(name, tasks, sent, started).await
}

async fn finish(
    name: String,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
    sent: Arc<AtomicU64>,
    started: Instant,
) -> Phase {
    let mut total = Tally::default();
    for task in tasks {
        if let Ok(tally) = task.await {
            total.ok += tally.ok;
            total.events += tally.events;
            total.latency.add(&tally.latency).expect("same bounds");
        }
    }
    Phase {
        name,
        sent: sent.load(Ordering::Relaxed),
        ok: total.ok,
        events: total.events,
        latency: total.latency,
        elapsed: started.elapsed(),
    }
}

/// Sends the n-th delivery's envelope with a bare rdkafka producer.
fn bare_send(producer: Arc<FutureProducer>, topic: String, all: Arc<Vec<Delivery>>) -> Operation {
    Arc::new(move |n| {
        let (producer, topic, all) = (producer.clone(), topic.clone(), all.clone());
        Box::pin(async move {
            let delivery = &all[n % all.len()];
            let record = FutureRecord::to(&topic)
                .key(&delivery.key)
                .payload(&delivery.envelope);
            u64::from(producer.send(record, Duration::from_secs(5)).await.is_ok())
        })
    })
}

/// Posts the n-th delivery to the collector on this worker's own connection.
fn post_webhook(url: String, all: Arc<Vec<Delivery>>) -> Operation {
    let client = keep_alive_client();
    Arc::new(move |n| {
        let request = client
            .post(&url)
            .basic_auth("hook", Some("s3cret"))
            .header("content-type", "application/json")
            .body(all[n % all.len()].body.clone());
        Box::pin(async move {
            u64::from(
                request
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED),
            )
        })
    })
}

/// Queues the n-th batch's envelopes with a bare rdkafka producer and awaits
/// every acknowledgement, as the collector does for a HubSpot request.
fn bare_send_batch(
    producer: Arc<FutureProducer>,
    topic: String,
    batches: Arc<Vec<Vec<Envelope>>>,
) -> Operation {
    Arc::new(move |n| {
        let (producer, topic, batches) = (producer.clone(), topic.clone(), batches.clone());
        Box::pin(async move {
            let batch = &batches[n % batches.len()];
            let mut acknowledgements = Vec::with_capacity(batch.len());
            for (key, payload) in batch {
                let record = FutureRecord::to(&topic).key(key).payload(payload);
                acknowledgements.push(enqueue(&producer, record).await);
            }
            let mut stored = 0;
            for acknowledgement in acknowledgements {
                stored += u64::from(matches!(acknowledgement.await, Ok(Ok(_))));
            }
            if stored == batch.len() as u64 {
                stored
            } else {
                0
            }
        })
    })
}

/// The request HubSpot makes for `delivery`: posted where the world says,
/// signed (`X-HubSpot-Signature-v3` and its timestamp) now.
fn signed_post(
    client: &reqwest::Client,
    base: &str,
    world: &World,
    delivery: &tributary_world::Delivery,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let path = world.delivery_path(delivery);
    let signed_url = format!("{PUBLIC_URL}{path}");
    let mut request = client.post(format!("{base}{path}")).body(body);
    for (name, value) in world.delivery_headers(delivery, &signed_url, now_ms()) {
        request = request.header(name, value);
    }
    request
}

/// Posts the n-th batch to the collector on this worker's own connection,
/// signed as it is sent. Resolves to the batch's events once accepted.
fn post_batch(base: String, batches: &Batches) -> Operation {
    let client = keep_alive_client();
    let (world, deliveries, bodies, envelopes) = (
        batches.world.clone(),
        batches.deliveries.clone(),
        batches.bodies.clone(),
        batches.envelopes.clone(),
    );
    Arc::new(move |n| {
        let i = n % deliveries.len();
        let request = signed_post(&client, &base, &world, &deliveries[i], bodies[i].clone());
        let events = envelopes[i].len() as u64;
        Box::pin(async move {
            let accepted = request
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED);
            if accepted { events } else { 0 }
        })
    })
}
