//! Salesforce Change Data Capture: arbitrary bytes as an event's Avro
//! payload under `OpportunityChangeEvent`'s schema, through the decoding of
//! its header and bitmaps, the raw events made of it, the enricher's
//! reading of them and the mapping into the model.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tributary_model::{Context, Mapping};
use tributary_salesforce_pubsub::{ConsumerEvent, ProducerEvent};
use tributary_sources::salesforce::cdc::raw_events;
use tributary_sources::salesforce::enrich::SalesforceEnricher;
use tributary_sources::salesforce::{self, mapping::SalesforceMapping};

static SCHEMA: LazyLock<apache_avro::Schema> = LazyLock::new(|| {
    apache_avro::Schema::parse_str(include_str!(
        "../../tests/fixtures/salesforce/OpportunityChangeEvent.avsc"
    ))
    .expect("the fixture schema parses")
});

static ENRICHER: LazyLock<SalesforceEnricher> = LazyLock::new(|| {
    let section = serde_json::json!({"organization_id": "00D5g000004ABCD", "endpoint_secret": "s", "currency": "USD"});
    let settings = salesforce::tenant_settings(&section).expect("valid");
    SalesforceEnricher::new(BTreeMap::from([("acme".to_owned(), settings)]))
});

fuzz_target!(|data: &[u8]| {
    let event = ConsumerEvent {
        event: Some(ProducerEvent {
            id: "e-1".into(),
            schema_id: "s".into(),
            payload: data.to_vec(),
            headers: Vec::new(),
        }),
        replay_id: vec![1],
    };
    for raw in raw_events("acme", "00D5g000004ABCDEA4", "/data/OpportunityChangeEvent", &event, Ok(&SCHEMA), 1) {
        let Ok(record) = ENRICHER.flat_event(&raw) else {
            continue;
        };
        let Ok(fields) = record.into_map() else {
            continue;
        };
        let context = Context {
            tenant: "acme",
            source: "salesforce",
            received_at_micro: 1,
            missing: &[],
        };
        let _ = SalesforceMapping.map(&context, &fields);
    }
});
