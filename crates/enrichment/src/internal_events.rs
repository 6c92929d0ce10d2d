//! The metrics of enrichment work, whatever the platform: lookups that failed
//! (making an event `partial`) and how each API request went. They keep the
//! enricher's metric names: the enricher is the process that does this work.

use metrics::counter;

/// A lookup failed; `what` names it (`person`, `stage`, `email_validation`...).
pub fn missing(what: &'static str) {
    counter!("tributary_enricher_enrichment_missing_total", "what" => what).increment(1);
}

/// `outcome`: ok, not_found, pending, rate_limited, server_error, timeout,
/// connection_error, refused, circuit_open.
pub fn api_request(api: &'static str, endpoint: &'static str, outcome: &'static str) {
    counter!("tributary_enricher_api_requests_total", "api" => api, "endpoint" => endpoint, "outcome" => outcome)
        .increment(1);
}

pub fn api_retry(api: &'static str, endpoint: &'static str) {
    counter!("tributary_enricher_api_retries_total", "api" => api, "endpoint" => endpoint)
        .increment(1);
}
