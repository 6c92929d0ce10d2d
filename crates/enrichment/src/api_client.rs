//! Calling an external API politely and boundedly.
//!
//! Every request waits for the API's request budget (a rolling-window rate
//! limit, tightened by the `x-ratelimit-remaining` / `x-ratelimit-reset`
//! headers and closed for a `Retry-After` window after a 429), has a
//! timeout, and is retried on 429, 5xx, timeouts and connection errors with
//! exponential backoff and jitter, within a bounded number of attempts and a
//! bounded total time. After several lookups in a row fail, a circuit
//! breaker stops calling for a while, so an API that is down costs events
//! completeness (`partial`), not throughput.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use rand::Rng;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::internal_events;
use crate::settings::EnrichmentSettings;

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    Found(Value),
    /// The API answered 404: the entity does not exist (any more).
    NotFound,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// Retries exhausted, the time budget spent, or the circuit open.
    #[error("{api} unavailable: {reason}")]
    Unavailable { api: &'static str, reason: String },
    /// A 4xx other than 404 and 429 (bad token, bad request): not retried.
    #[error("{api} refused the request with {status}: {body}")]
    Refused {
        api: &'static str,
        status: u16,
        body: String,
    },
    /// The tenant has no access to this API configured: nothing was asked.
    #[error("{api} not configured: {reason}")]
    NotConfigured { api: &'static str, reason: String },
}

impl ApiError {
    /// Asking again later may succeed: the API was down, slow or over its
    /// budget. A refusal or a missing configuration stays as it is.
    pub fn may_pass(&self) -> bool {
        matches!(self, ApiError::Unavailable { .. })
    }
}

/// Retry and breaker settings, from `[enrichment]`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub budget: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub circuit_failures: u32,
    pub circuit_open: Duration,
}

impl RetryPolicy {
    pub fn from_settings(settings: &EnrichmentSettings) -> Self {
        RetryPolicy {
            timeout: Duration::from_millis(settings.request_timeout_ms),
            max_attempts: settings.max_attempts.max(1),
            budget: Duration::from_millis(settings.retry_budget_ms),
            backoff_initial: Duration::from_millis(settings.backoff_initial_ms),
            backoff_max: Duration::from_millis(settings.backoff_max_ms),
            circuit_failures: settings.circuit_failures.max(1),
            circuit_open: Duration::from_millis(settings.circuit_open_ms),
        }
    }

    /// Delay before attempt `attempt + 1`: doubling from `backoff_initial`,
    /// capped, with jitter in [50 %, 100 %] so retries do not synchronise.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .backoff_initial
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.backoff_max);
        base.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// Where an API says how much of its rate limit is left, and when more comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// Requests left in the current window.
    pub remaining: &'static str,
    /// When the window ends.
    pub reset: ResetHeader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetHeader {
    /// Seconds until the window resets.
    Seconds(&'static str),
    /// The window's length in milliseconds (a rolling window: at most that long).
    WindowMillis(&'static str),
}

impl RateLimitHeaders {
    /// `x-ratelimit-remaining` and `x-ratelimit-reset` (seconds).
    pub const RESET_SECONDS: RateLimitHeaders = RateLimitHeaders {
        remaining: "x-ratelimit-remaining",
        reset: ResetHeader::Seconds("x-ratelimit-reset"),
    };

    /// How long to wait when the headers say the window is used up. A
    /// rolling window frees a slot as soon as its oldest request ages out,
    /// which the headers do not say: after a successful answer the budget's
    /// own pace is trusted, and only a refusal (`refused`) waits the window out.
    fn exhausted_for(&self, headers: &HeaderMap, refused: bool) -> Option<Duration> {
        let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
        let remaining = number(self.remaining)?;
        if remaining > 0.0 {
            return None;
        }
        let seconds = match self.reset {
            ResetHeader::Seconds(name) => number(name)?,
            ResetHeader::WindowMillis(_) if !refused => return None,
            ResetHeader::WindowMillis(name) => number(name)? / 1_000.0,
        };
        (seconds > 0.0).then(|| Duration::from_secs_f64(seconds.min(60.0)))
    }
}

/// A request budget: at most `requests` per rolling `window`, and nothing
/// while the API has said to wait.
pub struct RequestBudget {
    limiter: governor::DefaultDirectRateLimiter,
    blocked_until: Mutex<Option<Instant>>,
    headers: RateLimitHeaders,
    allocation: Option<Allocation>,
}

/// A long-window request allocation an API reports on its answers (such as
/// Salesforce's rolling 24-hour `Sforce-Limit-Info: api-usage=25/15000`),
/// shared with everything else the customer runs against it: Tributary
/// stops at its `share` rather than exhausting it for everyone.
#[derive(Debug, Clone, Copy)]
pub struct Allocation {
    /// The header that reports it.
    pub header: &'static str,
    /// `(used, limit)` from the header's value.
    pub read: fn(&str) -> Option<(u64, u64)>,
    /// The share of `limit` this client may use, in (0, 1].
    pub share: f64,
    /// How long no request is sent once the share is used, before one
    /// request looks again (the window rolls, so usage falls by itself).
    pub pause: Duration,
}

impl Allocation {
    /// How long to pause when `headers` say the share is used up.
    fn used_up(&self, headers: &HeaderMap) -> Option<Duration> {
        let value = headers.get(self.header)?.to_str().ok()?;
        let (used, limit) = (self.read)(value)?;
        (limit > 0 && used as f64 >= self.share * limit as f64).then(|| {
            tracing::warn!(
                header = self.header,
                used,
                limit,
                share = self.share,
                pause_s = self.pause.as_secs(),
                "the API allocation's share for Tributary is used; lookups pause"
            );
            self.pause
        })
    }
}

impl RequestBudget {
    pub fn new(requests: u32, window: Duration) -> Self {
        // A token bucket of burst b refilling (n - b) per window never lets
        // more than n through in any window of that length.
        let requests = requests.max(1);
        let burst = (requests / 4).max(1);
        let refill = (requests - burst).max(1);
        let period = window / refill;
        let quota = Quota::with_period(period.max(Duration::from_micros(1)))
            .map(|q| {
                q.allow_burst(std::num::NonZeroU32::new(burst).unwrap_or(std::num::NonZeroU32::MIN))
            })
            .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MIN));
        RequestBudget {
            limiter: RateLimiter::direct(quota),
            blocked_until: Mutex::new(None),
            headers: RateLimitHeaders::RESET_SECONDS,
            allocation: None,
        }
    }

    /// Stops at a share of the allocation the API reports.
    pub fn with_allocation(mut self, allocation: Allocation) -> Self {
        self.allocation = Some(allocation);
        self
    }

    /// Reads the API's rate-limit headers under these names.
    pub fn with_headers(mut self, headers: RateLimitHeaders) -> Self {
        self.headers = headers;
        self
    }

    fn blocked_until(&self) -> Option<Instant> {
        *self.blocked_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// No request until `until` (a `Retry-After` or an exhausted window).
    pub fn block_until(&self, until: Instant) {
        let mut blocked = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.is_none_or(|b| b < until) {
            *blocked = Some(until);
        }
    }

    /// Waits for a request slot; `false` if that would pass `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> bool {
        loop {
            match self.blocked_until() {
                Some(until) if until > Instant::now() => {
                    if until > deadline {
                        return false;
                    }
                    tokio::time::sleep_until(until.into()).await;
                }
                _ => break,
            }
        }
        match tokio::time::timeout_at(deadline.into(), self.limiter.until_ready()).await {
            Ok(()) => {
                // A 429 may have closed the window while this request waited.
                self.blocked_until()
                    .is_none_or(|until| until <= Instant::now())
                    || Box::pin(self.acquire(deadline)).await
            }
            Err(_) => false,
        }
    }

    /// Reads the rate-limit headers of a successful answer: when the window
    /// is used up, waits for its reset. Returns that wait.
    pub fn observe(&self, headers: &HeaderMap) -> Option<Duration> {
        if let Some(pause) = self.allocation.and_then(|a| a.used_up(headers)) {
            return self.wait_for(pause);
        }
        self.wait_for(self.headers.exhausted_for(headers, false)?)
    }

    /// Reads the rate-limit headers of a 429: the wait they ask for.
    pub fn observe_refusal(&self, headers: &HeaderMap) -> Option<Duration> {
        self.wait_for(self.headers.exhausted_for(headers, true)?)
    }

    fn wait_for(&self, wait: Duration) -> Option<Duration> {
        self.block_until(Instant::now() + wait);
        Some(wait)
    }
}

/// Opens after `threshold` failed lookups in a row; closed again after `open_for`.
struct CircuitBreaker {
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    /// Why it last opened: the endpoint and the last failure seen.
    opened_because: Mutex<String>,
    threshold: u32,
    open_for: Duration,
}

impl CircuitBreaker {
    fn is_open(&self) -> bool {
        self.open_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| until > Instant::now())
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// A lookup failed because the API did (`because` says how); true when
    /// that opened the circuit.
    fn failed(&self, because: &str) -> bool {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= self.threshold {
            self.failures.store(0, Ordering::Relaxed);
            *self
                .opened_because
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = because.to_owned();
            *self.open_until.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Instant::now() + self.open_for);
            return true;
        }
        false
    }

    fn opened_because(&self) -> String {
        self.opened_because
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One external API, for one tenant (each tenant has its own budget).
pub struct ApiClient {
    api: &'static str,
    http: reqwest::Client,
    policy: RetryPolicy,
    budget: RequestBudget,
    breaker: CircuitBreaker,
    /// Request slots taken by [`ApiClient::reserve`], not yet used.
    reserved: AtomicU32,
}

/// Why one attempt did not produce an answer.
enum Attempt {
    Retry(String),
    RetryAfter(Duration, String),
}

impl ApiClient {
    pub fn new(
        api: &'static str,
        http: reqwest::Client,
        policy: RetryPolicy,
        budget: RequestBudget,
    ) -> Self {
        let breaker = CircuitBreaker {
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            opened_because: Mutex::new(String::new()),
            threshold: policy.circuit_failures,
            open_for: policy.circuit_open,
        };
        ApiClient {
            api,
            http,
            policy,
            budget,
            breaker,
            reserved: AtomicU32::new(0),
        }
    }

    /// Waits for a request slot and keeps it for the next request. A caller
    /// that batches lookups gathers them while it waits, then sends them
    /// all: under a tight budget every call is as full as it can be.
    pub async fn reserve(&self) {
        if self
            .budget
            .acquire(Instant::now() + self.policy.budget)
            .await
        {
            self.reserved.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A reserved slot, if one is left (taking it).
    fn take_reserved(&self) -> bool {
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// No request for `wait`: the API said, other than with a 429, that its
    /// limit is reached (Salesforce's 403 `REQUEST_LIMIT_EXCEEDED`).
    pub fn pause(&self, wait: Duration) {
        self.budget.block_until(Instant::now() + wait);
    }

    /// Sends a request (a GET, or a POST that reads, like a batch read) and
    /// reads its JSON answer, with the budget, retries and breaker. `request`
    /// builds the request afresh for every attempt. `202` and `222` count as
    /// "not ready yet" and are retried like a 5xx.
    pub async fn get_json(
        &self,
        endpoint: &'static str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Fetched, ApiError> {
        if self.breaker.is_open() {
            internal_events::api_request(self.api, endpoint, "circuit_open");
            return Err(self.unavailable(&format!(
                "circuit open after repeated failures (last: {})",
                self.breaker.opened_because()
            )));
        }
        let deadline = Instant::now() + self.policy.budget;
        let mut last_problem = String::from("no attempt made within the retry budget");
        // Whether the last answer (or its absence) says the API is failing.
        // A 429 or running out of our own request budget says the API is
        // busy, not down: neither opens the circuit.
        let mut api_failing = false;
        for attempt in 1..=self.policy.max_attempts {
            let slot =
                (attempt == 1 && self.take_reserved()) || self.budget.acquire(deadline).await;
            if !slot {
                last_problem =
                    format!("request budget not available before the deadline ({last_problem})");
                break;
            }
            let wait = match self.attempt(endpoint, &request).await {
                Ok(Ok(fetched)) => {
                    self.breaker.succeeded();
                    return Ok(fetched);
                }
                Ok(Err(refused)) => return Err(refused),
                Err(Attempt::RetryAfter(wait, problem)) => {
                    self.budget.block_until(Instant::now() + wait);
                    last_problem = problem;
                    api_failing = false;
                    wait
                }
                Err(Attempt::Retry(problem)) => {
                    last_problem = problem;
                    api_failing = true;
                    self.policy.backoff(attempt)
                }
            };
            if attempt == self.policy.max_attempts || Instant::now() + wait > deadline {
                break;
            }
            internal_events::api_retry(self.api, endpoint);
            tokio::time::sleep(wait).await;
        }
        if api_failing {
            let because = format!("{endpoint}: {last_problem}");
            if self.breaker.failed(&because) {
                tracing::warn!(
                    api = self.api,
                    endpoint,
                    last_failure = %last_problem,
                    open_for_ms = self.breaker.open_for.as_millis() as u64,
                    "circuit opened: calls pause after {} failed lookups in a row",
                    self.breaker.threshold
                );
            }
        }
        Err(self.unavailable(&last_problem))
    }

    async fn attempt(
        &self,
        endpoint: &'static str,
        request: &impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Result<Fetched, ApiError>, Attempt> {
        let response = match request().timeout(self.policy.timeout).send().await {
            Ok(response) => response,
            Err(err) => {
                let outcome = if err.is_timeout() {
                    "timeout"
                } else {
                    "connection_error"
                };
                internal_events::api_request(self.api, endpoint, outcome);
                return Err(Attempt::Retry(format!("{outcome}: {}", err.without_url())));
            }
        };
        let status = response.status().as_u16();
        match status {
            // 202: still working on it (Hunter); 222: the remote check failed, retry later (Hunter).
            202 | 222 => {
                internal_events::api_request(self.api, endpoint, "pending");
                Err(Attempt::Retry(format!(
                    "{status}: the result is not ready yet"
                )))
            }
            // No content: a lookup found nothing (Zoho's "no such record").
            204 => {
                self.budget.observe(response.headers());
                internal_events::api_request(self.api, endpoint, "not_found");
                Ok(Ok(Fetched::NotFound))
            }
            200..=299 => {
                self.budget.observe(response.headers());
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| Attempt::Retry(format!("reading body: {e}")))?;
                internal_events::api_request(self.api, endpoint, "ok");
                match serde_json::from_slice(&body) {
                    Ok(json) => Ok(Ok(Fetched::Found(json))),
                    Err(err) => Err(Attempt::Retry(format!("answer is not JSON: {err}"))),
                }
            }
            404 => {
                self.budget.observe(response.headers());
                internal_events::api_request(self.api, endpoint, "not_found");
                Ok(Ok(Fetched::NotFound))
            }
            429 => {
                internal_events::api_request(self.api, endpoint, "rate_limited");
                // `Retry-After` says exactly how long; without it, an
                // exhausted window waits for its end.
                let wait = retry_after(response.headers())
                    .or_else(|| self.budget.observe_refusal(response.headers()))
                    .unwrap_or(self.policy.backoff_initial);
                Err(Attempt::RetryAfter(
                    wait,
                    format!("429 rate limited for {wait:?}"),
                ))
            }
            500..=599 => {
                internal_events::api_request(self.api, endpoint, "server_error");
                Err(Attempt::Retry(format!("{status} from the server")))
            }
            _ => {
                internal_events::api_request(self.api, endpoint, "refused");
                let body = response.text().await.unwrap_or_default();
                Ok(Err(ApiError::Refused {
                    api: self.api,
                    status,
                    body: body.chars().take(200).collect(),
                }))
            }
        }
    }

    fn unavailable(&self, reason: &str) -> ApiError {
        ApiError::Unavailable {
            api: self.api,
            reason: reason.to_owned(),
        }
    }
}

/// `Retry-After` in seconds (the form APIs use), else `x-ratelimit-reset`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    ["retry-after", "x-ratelimit-reset"]
        .iter()
        .find_map(|name| {
            let seconds: f64 = headers.get(*name)?.to_str().ok()?.trim().parse().ok()?;
            (seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(300.0)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::from_settings(&EnrichmentSettings::default())
    }

    /// A client with the breaker of `settings` and a roomy request budget.
    fn client(settings: EnrichmentSettings) -> ApiClient {
        ApiClient::new(
            "test",
            reqwest::Client::new(),
            RetryPolicy::from_settings(&settings),
            RequestBudget::new(100, Duration::from_secs(10)),
        )
    }

    fn quick() -> EnrichmentSettings {
        EnrichmentSettings {
            max_attempts: 2,
            retry_budget_ms: 50,
            backoff_initial_ms: 1,
            backoff_max_ms: 2,
            circuit_failures: 3,
            ..EnrichmentSettings::default()
        }
    }

    #[tokio::test]
    async fn running_out_of_our_own_budget_never_opens_the_circuit() {
        let client = client(quick());
        // No request allowed for a minute: every lookup gives up unsent.
        client
            .budget
            .block_until(Instant::now() + Duration::from_secs(60));
        for _ in 0..10 {
            let failed = client
                .get_json("deal", || client.http().get("http://127.0.0.1:9/never"))
                .await;
            let Err(ApiError::Unavailable { reason, .. }) = failed else {
                panic!("no budget, no answer: {failed:?}");
            };
            assert!(reason.contains("request budget"), "{reason}");
        }
        assert!(!client.breaker.is_open(), "a busy budget is not a down API");
    }

    #[tokio::test]
    async fn an_api_that_keeps_failing_opens_the_circuit_and_says_why() {
        let client = client(quick());
        // Nothing listens on the discard port: every attempt is refused.
        let request = || client.http().get("http://127.0.0.1:9/v1/deals/1");
        for _ in 0..3 {
            assert!(client.get_json("deal", request).await.is_err());
        }
        assert!(client.breaker.is_open());
        let Err(ApiError::Unavailable { reason, .. }) = client.get_json("deal", request).await
        else {
            panic!("the circuit is open");
        };
        assert!(
            reason
                .starts_with("circuit open after repeated failures (last: deal: connection_error"),
            "{reason}"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = policy();
        for attempt in 1..=10 {
            let expected = (policy.backoff_initial * (1 << (attempt - 1))).min(policy.backoff_max);
            let delay = policy.backoff(attempt);
            assert!(
                delay <= expected && delay >= expected / 2,
                "attempt {attempt}: {delay:?} vs {expected:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_budget_never_allows_more_than_its_window_holds() {
        let budget = RequestBudget::new(8, Duration::from_millis(400));
        let start = Instant::now();
        let mut granted = Vec::new();
        while start.elapsed() < Duration::from_millis(1_200) {
            if budget.acquire(start + Duration::from_millis(1_200)).await {
                granted.push(start.elapsed());
            }
        }
        // Any 400 ms window holds at most 8 grants.
        for (i, first) in granted.iter().enumerate() {
            let in_window = granted[i..]
                .iter()
                .take_while(|t| **t < *first + Duration::from_millis(400))
                .count();
            assert!(
                in_window <= 8,
                "{in_window} grants within 400 ms of {first:?}"
            );
        }
        assert!(
            granted.len() >= 16,
            "the budget is used, not starved: {}",
            granted.len()
        );
    }

    #[tokio::test]
    async fn a_block_holds_every_request_until_it_ends() {
        let budget = RequestBudget::new(100, Duration::from_secs(2));
        let until = Instant::now() + Duration::from_millis(150);
        budget.block_until(until);
        assert!(
            !budget
                .acquire(Instant::now() + Duration::from_millis(50))
                .await,
            "cannot wait past the deadline"
        );
        assert!(
            budget
                .acquire(Instant::now() + Duration::from_secs(1))
                .await
        );
        assert!(Instant::now() >= until);
    }

    #[test]
    fn exhausted_windows_and_retry_after_headers_are_read() {
        let budget = RequestBudget::new(10, Duration::from_secs(2));
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "0".parse().expect("header"));
        headers.insert("x-ratelimit-reset", "2".parse().expect("header"));
        budget.observe(&headers);
        assert!(
            budget
                .blocked_until()
                .is_some_and(|u| u > Instant::now() + Duration::from_millis(1_500))
        );
        let mut retry = HeaderMap::new();
        retry.insert("retry-after", "3".parse().expect("header"));
        assert_eq!(retry_after(&retry), Some(Duration::from_secs(3)));
    }

    #[test]
    fn requests_pause_once_the_share_of_the_allocation_is_used() {
        fn usage(value: &str) -> Option<(u64, u64)> {
            let (used, limit) = value.strip_prefix("api-usage=")?.split_once('/')?;
            Some((used.parse().ok()?, limit.parse().ok()?))
        }
        let budget = RequestBudget::new(10, Duration::from_secs(2)).with_allocation(Allocation {
            header: "sforce-limit-info",
            read: usage,
            share: 0.5,
            pause: Duration::from_secs(600),
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            "sforce-limit-info",
            "api-usage=499/1000".parse().expect("header"),
        );
        assert_eq!(budget.observe(&headers), None, "under the share");
        assert!(budget.blocked_until().is_none());
        headers.insert(
            "sforce-limit-info",
            "api-usage=500/1000".parse().expect("header"),
        );
        assert_eq!(budget.observe(&headers), Some(Duration::from_secs(600)));
        assert!(
            budget
                .blocked_until()
                .is_some_and(|u| u > Instant::now() + Duration::from_secs(590))
        );
    }

    #[test]
    fn a_rolling_window_named_by_its_length_is_waited_out_when_a_request_is_refused() {
        let rolling = RateLimitHeaders {
            remaining: "x-window-remaining",
            reset: ResetHeader::WindowMillis("x-window-millis"),
        };
        let budget = RequestBudget::new(10, Duration::from_secs(10)).with_headers(rolling);
        let mut headers = HeaderMap::new();
        headers.insert("x-window-remaining", "3".parse().expect("header"));
        headers.insert("x-window-millis", "10000".parse().expect("header"));
        assert_eq!(budget.observe(&headers), None, "requests are left");
        headers.insert("x-window-remaining", "0".parse().expect("header"));
        assert_eq!(
            budget.observe(&headers),
            None,
            "after a success the budget's own pace is trusted"
        );
        assert_eq!(
            budget.observe_refusal(&headers),
            Some(Duration::from_secs(10))
        );
        assert!(
            budget
                .blocked_until()
                .is_some_and(|u| u > Instant::now() + Duration::from_secs(9))
        );
    }
}
