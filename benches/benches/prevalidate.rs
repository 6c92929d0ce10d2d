//! The collector's own CPU cost per delivery, without the broker: split and
//! check the body with its registered source, build and encode the envelope.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tributary_envelope::{ENVELOPE_VERSION, RawEvent};
use tributary_sources::WebhookRequest;

fn prevalidate_and_encode(c: &mut Criterion) {
    let platform = tributary_sources::platform("pipedrive").expect("registered");
    let section = serde_json::json!({"username": "hook", "password": "s3cret"});
    let source = (platform.webhook)(vec![("acme", &section)]).expect("source");
    let (method, headers) = (http::Method::POST, http::HeaderMap::new());
    let uri: http::Uri = "/webhooks/pipedrive/acme".parse().expect("uri");
    let mut group = c.benchmark_group("collector_per_delivery");
    for name in ["v1/deal-updated.json", "v2/deal-change.json"] {
        let body = bytes::Bytes::from(tributary_tests::fixtures::pipedrive(name));
        let request = WebhookRequest {
            method: &method,
            uri: &uri,
            headers: &headers,
            body: &body,
        };
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| {
                let delivery = source.split("acme", &request).expect("valid");
                let encoded: Vec<_> = delivery
                    .events
                    .into_iter()
                    .map(|event| {
                        RawEvent {
                            envelope_version: ENVELOPE_VERSION,
                            tenant: "acme".into(),
                            source: platform.name.into(),
                            event_id: event.keys.event_id,
                            body: event.body,
                            ..RawEvent::default()
                        }
                        .encode_to_vec()
                    })
                    .collect();
                std::hint::black_box(encoded)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, prevalidate_and_encode);
criterion_main!(benches);
