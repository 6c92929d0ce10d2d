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
//! Starts its own broker (the pinned Tansu that deploy/local/up.sh installs)
//! unless `--brokers` names one. Run with
//! `cargo run --release -p tributary-benches --bin collector-load`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tributary_benches::{Delivery, deliveries, histogram, process_usage, record, summary};
use tributary_config::KafkaSettings;
use tributary_tests::process::Service;

#[derive(Parser, Clone)]
#[command(
    about = "Measure the collector's accepted webhooks/s and ack latency next to the broker's ceiling"
)]
struct Args {
    /// Broker to produce to. Default: a fresh private broker (Tansu on its own
    /// port and storage) started for this run, so runs do not slow each other.
    #[arg(long)]
    brokers: Option<String>,
    /// Concurrent keep-alive connections (and concurrent bare-producer senders).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Length of each measured phase, in seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Events in flight for the pipelined bare-producer run.
    #[arg(long, default_value_t = 1024)]
    pipelined: usize,
    /// Fixed rate for the open-loop run instead of half the peak (events/s).
    #[arg(long)]
    rate: Option<f64>,
    /// Producer setting overrides as `[kafka]` keys, e.g. `linger_ms=2`,
    /// applied to the bare producer and the collector alike.
    #[arg(long = "kafka", value_parser = parse_key_value)]
    kafka: Vec<(String, String)>,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {text:?}"))?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

struct Phase {
    name: String,
    sent: u64,
    ok: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
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
    let tenant = "bench";
    let all = Arc::new(deliveries(tenant));
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
    eprintln!(
        "broker {brokers}, topic {topic}; {} sample deliveries; {} s per phase",
        all.len(),
        args.seconds
    );

    let duration = Duration::from_secs(args.seconds);
    let producer: Arc<FutureProducer> = Arc::new(
        tributary_kafka::producer_config(&settings)
            .create()
            .context("creating the bare producer")?,
    );
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

/// One request or send; resolves to whether the event was stored.
type Operation = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

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
            let mut latency = histogram();
            let mut ok = 0_u64;
            let mut n = worker;
            while Instant::now() < deadline {
                ok += attempt(&operation, n, &sent, &mut latency, Instant::now()).await;
                n += workers;
            }
            (ok, latency)
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
            let mut latency = histogram();
            let mut ok = 0_u64;
            for n in (worker..total).step_by(workers) {
                let scheduled = started + interval.mul_f64(n as f64);
                tokio::time::sleep_until(scheduled.into()).await;
                ok += attempt(&operation, n, &sent, &mut latency, scheduled).await;
            }
            (ok, latency)
        },
    )
    .await
}

/// Runs the n-th operation; counts it as sent and, when it stored its event,
/// records its latency from `since`. Returns 1 if stored.
async fn attempt(
    operation: &Operation,
    n: usize,
    sent: &AtomicU64,
    latency: &mut Histogram<u64>,
    since: Instant,
) -> u64 {
    sent.fetch_add(1, Ordering::Relaxed);
    if operation(n).await {
        record(latency, since.elapsed());
        1
    } else {
        0
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
    F: Future<Output = (u64, Histogram<u64>)> + Send + 'static,
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
    tasks: Vec<tokio::task::JoinHandle<(u64, Histogram<u64>)>>,
    sent: Arc<AtomicU64>,
    started: Instant,
) -> Phase {
    let mut ok = 0;
    let mut latency = histogram();
    for task in tasks {
        if let Ok((stored, worker_latency)) = task.await {
            ok += stored;
            latency.add(&worker_latency).expect("same bounds");
        }
    }
    Phase {
        name,
        sent: sent.load(Ordering::Relaxed),
        ok,
        elapsed: started.elapsed(),
        latency,
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
            producer.send(record, Duration::from_secs(5)).await.is_ok()
        })
    })
}

/// Posts the n-th delivery to the collector on this worker's own connection.
fn post_webhook(url: String, all: Arc<Vec<Delivery>>) -> Operation {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()
        .expect("http client");
    Arc::new(move |n| {
        let request = client
            .post(&url)
            .basic_auth("hook", Some("s3cret"))
            .header("content-type", "application/json")
            .body(all[n % all.len()].body.clone());
        Box::pin(async move {
            request
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED)
        })
    })
}
