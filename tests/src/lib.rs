#![recursion_limit = "256"]
//! Helpers for Tributary's end-to-end tests: fixtures, the services run as
//! real processes, a private broker that tests may stop and restart, and
//! readers for what the services wrote to Kafka.
//!
//! Tests needing the local broker are behind the `kafka-broker-tests` feature;
//! `deploy/local/test.sh` starts the services and enables it.

pub mod activator;
pub mod broker;
pub mod chdb;
pub mod clickhouse;
pub mod enricher;
pub mod fixtures;
pub mod pipeline;
pub mod process;
pub mod raw;

use std::net::TcpListener;

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free port on 127.0.0.1")
}

/// A name unique to this test run, for topics and tenants.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// An id as the collector renders it: numbers as digits, strings verbatim.
pub fn id_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
