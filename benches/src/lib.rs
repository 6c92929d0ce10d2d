//! Shared pieces of the benchmarks: realistic deliveries, latency summaries,
//! and the CPU and memory of a process under load.

pub mod stream;

use std::time::Duration;

use hdrhistogram::Histogram;

/// A simulated world of one HubSpot portal, tenant "harbor", with `deals`
/// deals and `activities` engagements.
pub fn hubspot_world(deals: usize, activities: usize, seed: u64) -> tributary_world::World {
    tributary_world::World::generate(tributary_world::WorldConfig {
        tenants: vec![tributary_world::TenantSpec::hubspot(
            "harbor", 2, 6, deals, activities,
        )],
        ..tributary_world::WorldConfig::small(seed)
    })
}

/// The sample deliveries (every fixture class), with the envelope and key the
/// collector would produce for each.
pub struct Delivery {
    pub name: String,
    pub body: Vec<u8>,
    pub key: String,
    pub envelope: Vec<u8>,
}

pub fn deliveries(tenant: &str) -> Vec<Delivery> {
    tributary_tests::fixtures::all_pipedrive()
        .into_iter()
        .map(|(name, body)| {
            let (key, event) = tributary_tests::raw::pipedrive_envelope(tenant, &body);
            Delivery {
                name,
                key,
                envelope: event.encode_to_vec(),
                body,
            }
        })
        .collect()
}

/// Queues `record`, waiting while the producer's queue is full (a bare,
/// pipelined producer's way of sending as fast as the broker takes).
pub async fn enqueue<K, P>(
    producer: &rdkafka::producer::FutureProducer,
    mut record: rdkafka::producer::FutureRecord<'_, K, P>,
) -> rdkafka::producer::DeliveryFuture
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return delivery,
            Err((_, back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// A latency histogram in microseconds (1 µs to 60 s).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    histogram.saturating_record(micros);
}

/// `p50 / p99 / max` in milliseconds.
pub fn summary(histogram: &Histogram<u64>) -> (f64, f64, f64) {
    let ms = |us: u64| us as f64 / 1000.0;
    (
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    )
}

/// CPU seconds used so far and peak resident memory of a process (Linux /proc).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessUsage {
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
    pub rss_mib: f64,
}

pub fn process_usage(pid: u32) -> Option<ProcessUsage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some(ProcessUsage {
        // USER_HZ is 100 on Linux.
        cpu_seconds: ticks / 100.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        rss_mib: kib("VmRSS:") / 1024.0,
    })
}
