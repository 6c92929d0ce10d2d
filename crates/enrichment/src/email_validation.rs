//! Email validation through a Hunter-style verifier, cached per address.
//!
//! `GET {url}?email=...&api_key=...` answers `{"data": {...}}`. The verdict
//! is kept flat under `email_validation_`: `status`, `score` (which carries
//! the verifier's `result` word: deliverable, undeliverable or risky), the
//! boolean checks, and each source numbered from 1.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde_json::{Map, Value, json};
use tributary_config::Secret;

use crate::api_client::{ApiClient, ApiError, Fetched, RequestBudget, RetryPolicy};
use crate::flatten::flatten;
use crate::settings::EmailValidationSettings;

/// The flattened verdict for one address.
pub type Verdict = Arc<Map<String, Value>>;

const CHECKS: &[&str] = &[
    "email",
    "regexp",
    "gibberish",
    "disposable",
    "webmail",
    "mx_records",
    "smtp_server",
    "smtp_check",
    "accept_all",
    "block",
];
const SOURCE_FIELDS: &[&str] = &[
    "domain",
    "uri",
    "extracted_on",
    "last_seen_on",
    "still_on_page",
];

pub struct EmailValidator {
    url: String,
    api_key: Option<Secret>,
    client: ApiClient,
    cache: Cache<String, Verdict>,
}

impl EmailValidator {
    /// `None` when no verifier is configured.
    pub fn new(
        settings: &EmailValidationSettings,
        policy: RetryPolicy,
        http: reqwest::Client,
    ) -> Option<Self> {
        if settings.url.is_empty() {
            return None;
        }
        let budget =
            RequestBudget::new(settings.requests_per_second.max(1), Duration::from_secs(1));
        Some(EmailValidator {
            url: settings.url.clone(),
            api_key: settings.api_key.clone(),
            client: ApiClient::new("email_validation", http, policy, budget),
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(settings.ttl_seconds))
                .build(),
        })
    }

    /// The flattened verdict for `email` (lower-cased), from cache or the verifier.
    /// Concurrent lookups of one address make one call.
    pub async fn validate(&self, email: &str) -> Result<Verdict, ApiError> {
        let email = email.trim().to_lowercase();
        self.cache
            .try_get_with(email.clone(), self.fetch(email))
            .await
            .map_err(|e| (*e).clone())
    }

    async fn fetch(&self, email: String) -> Result<Verdict, ApiError> {
        let fetched = self
            .client
            .get_json("email-verifier", || {
                let mut query = vec![("email", email.as_str())];
                if let Some(key) = &self.api_key {
                    query.push(("api_key", key.expose()));
                }
                self.client.http().get(&self.url).query(&query)
            })
            .await?;
        let data = match fetched {
            Fetched::Found(body) => body.get("data").cloned().unwrap_or(Value::Null),
            Fetched::NotFound => Value::Null,
        };
        if !data.is_object() {
            return Err(ApiError::Unavailable {
                api: "email_validation",
                reason: "the verifier answered without a verdict".into(),
            });
        }
        Ok(Arc::new(verdict_fields(&data)))
    }
}

/// The documented verdict fields of a verifier `data` object, flattened
/// under `email_validation_`; `score` carries the `result` word.
pub fn verdict_fields(data: &Value) -> Map<String, Value> {
    let mut kept = Map::new();
    kept.insert(
        "status".into(),
        data.get("status").cloned().unwrap_or(Value::Null),
    );
    kept.insert(
        "score".into(),
        data.get("result").cloned().unwrap_or(Value::Null),
    );
    for check in CHECKS {
        kept.insert(
            (*check).into(),
            data.get(*check).cloned().unwrap_or(Value::Null),
        );
    }
    let sources: Vec<Value> = data
        .get("sources")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|source| {
                    let mut fields = Map::new();
                    for field in SOURCE_FIELDS {
                        fields.insert(
                            (*field).into(),
                            source.get(*field).cloned().unwrap_or(Value::Null),
                        );
                    }
                    Value::Object(fields)
                })
                .collect()
        })
        .unwrap_or_default();
    if !sources.is_empty() {
        kept.insert("sources".into(), Value::Array(sources));
    }
    // Fixed keys and numbered sources cannot collide.
    flatten("email_validation", &json!(kept)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_flatten_with_the_result_word_as_score_and_numbered_sources() {
        let data = json!({
            "status": "valid", "result": "deliverable", "score": 98, "email": "ana@globex.example",
            "regexp": true, "gibberish": false, "disposable": false, "webmail": false,
            "mx_records": true, "smtp_server": true, "smtp_check": true, "accept_all": false, "block": false,
            "_deprecation_notice": "Using result is deprecated, use status instead",
            "sources": [
                {"domain": "globex.example", "uri": "http://globex.example/team", "extracted_on": "2024-01-02",
                 "last_seen_on": "2025-02-01", "still_on_page": true, "extra": 1}
            ]
        });
        let fields = verdict_fields(&data);
        assert_eq!(fields["email_validation_score"], json!("deliverable"));
        assert_eq!(fields["email_validation_status"], json!("valid"));
        assert_eq!(
            fields["email_validation_sources_1_domain"],
            json!("globex.example")
        );
        assert_eq!(
            fields["email_validation_sources_1_still_on_page"],
            json!(true)
        );
        assert!(!fields.contains_key("email_validation__deprecation_notice"));
        assert!(!fields.contains_key("email_validation_sources_1_extra"));
        assert_eq!(fields.len(), 12 + 5);
    }
}
