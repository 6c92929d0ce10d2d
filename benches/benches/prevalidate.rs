//! The collector's own CPU cost per delivery, without the broker: read and
//! prevalidate the body, build and encode the envelope.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tributary_envelope::{ENVELOPE_VERSION, RawEvent};

fn prevalidate_and_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("collector_per_delivery");
    for name in ["v1/deal-updated.json", "v2/deal-change.json"] {
        let body = bytes::Bytes::from(tributary_tests::fixtures::pipedrive(name));
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| {
                let checked =
                    tributary_sources::pipedrive::prevalidate("acme", &body).expect("valid");
                let event = RawEvent {
                    envelope_version: ENVELOPE_VERSION,
                    tenant: "acme".into(),
                    source: "pipedrive".into(),
                    event_id: checked.event_id,
                    body: body.clone(),
                    ..RawEvent::default()
                };
                std::hint::black_box(event.encode_to_vec())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, prevalidate_and_encode);
criterion_main!(benches);
