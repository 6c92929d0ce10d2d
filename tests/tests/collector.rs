//! The collector against a real broker: what it stores, what it refuses, and
//! how it behaves when the broker goes away and comes back.
#![cfg(feature = "kafka-broker-tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tributary_envelope::{DeadLetter, RawEvent, Verdict};
use tributary_tests::broker::{self, PrivateBroker, Record};
use tributary_tests::fixtures;
use tributary_tests::process::Service;

const USER: &str = "hook";
const PASSWORD: &str = "s3cret";

struct Collector {
    service: Service,
    /// Where refused deliveries are kept.
    dead_letter: String,
    base: String,
    /// Where `/metrics`, `/healthz` and `/readyz` are: `base` unless the
    /// collector has an admin listener.
    admin: String,
    http: reqwest::Client,
}

impl Collector {
    /// Starts a collector for tenant `acme` on `topic`, with extra `[collector]` keys.
    async fn start(brokers: &str, topic: &str, extra: &str) -> Self {
        Self::start_with(brokers, topic, "", extra).await
    }

    /// Like `start`, with `/metrics`, `/healthz` and `/readyz` on an admin listener.
    async fn start_with_admin_listener(brokers: &str, topic: &str) -> Self {
        let admin = format!("127.0.0.1:{}", tributary_tests::free_port());
        let extra = format!("admin_listen = \"{admin}\"");
        Self::launch(brokers, topic, "", &extra, Some(&admin)).await
    }

    /// Like `start`, with extra `[kafka]` keys too.
    async fn start_with(brokers: &str, topic: &str, kafka_extra: &str, extra: &str) -> Self {
        Self::launch(brokers, topic, kafka_extra, extra, None).await
    }

    async fn launch(
        brokers: &str,
        topic: &str,
        kafka_extra: &str,
        extra: &str,
        admin_listen: Option<&str>,
    ) -> Self {
        let port = tributary_tests::free_port();
        let dead_letter = broker::unique_topic(brokers, "dead-letter-collector", 1).await;
        let config = format!(
            r#"
[kafka]
brokers = "{brokers}"
{kafka_extra}

[topics]
raw = "{topic}"
dead_letter = "{dead_letter}"

[telemetry]
log_level = "debug"

[collector]
listen = "127.0.0.1:{port}"
{extra}

[tenants.acme.pipedrive]
username = "{USER}"
password = "{PASSWORD}"
"#
        );
        let service = Service::start("tributary-collector", "collector", &config);
        let base = format!("http://127.0.0.1:{port}");
        let collector = Collector {
            service,
            dead_letter,
            admin: admin_listen.map_or_else(|| base.clone(), |admin| format!("http://{admin}")),
            base,
            http: reqwest::Client::new(),
        };
        collector.wait_until_healthy().await;
        collector
    }

    async fn wait_until_healthy(&self) {
        let url = format!("{}/healthz", self.admin);
        tributary_tests::process::wait_for_http_ok(&url, Duration::from_secs(30), || {
            self.service.log()
        })
        .await;
    }

    fn webhook(&self, tenant: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/webhooks/pipedrive/{tenant}", self.base))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/json")
            .header("user-agent", "Pipedrive Webhooks")
            .header("x-forwarded-for", "203.0.113.7")
    }

    async fn post(&self, body: &[u8]) -> (StatusCode, Value) {
        let response = self
            .webhook("acme")
            .body(body.to_vec())
            .send()
            .await
            .expect("request");
        let status = response.status();
        let json = response.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

fn decode(record: &Record) -> RawEvent {
    RawEvent::decode_from(&record.value).expect("a raw-topic envelope")
}

fn now_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_micros(),
    )
    .expect("micros")
}

/// A Prometheus counter's value, 0 when absent.
fn counter(metrics: &str, name_and_labels: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_and_health_can_have_their_own_listener() {
    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-admin", 1).await;
    let collector = Collector::start_with_admin_listener(&brokers, &topic).await;
    let (status, reply) = collector
        .post(&fixtures::pipedrive("v2/deal-change.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    for path in ["/metrics", "/healthz", "/readyz"] {
        let get = |base: &str| collector.http.get(format!("{base}{path}")).send();
        let admin = get(&collector.admin).await.expect("admin listener");
        assert_eq!(
            admin.status(),
            StatusCode::OK,
            "{path} on the admin listener"
        );
        let public = get(&collector.base).await.expect("webhook listener");
        assert_eq!(
            public.status(),
            StatusCode::NOT_FOUND,
            "{path} is not on the webhooks' listener"
        );
    }
    let metrics = collector.metrics().await;
    assert!(
        metrics.contains("tributary_collector_events_accepted_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_slow_body_gets_408_and_requests_beyond_the_limit_get_503() {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-slow", 1).await;
    let collector = Collector::start(
        &brokers,
        &topic,
        "body_read_timeout_ms = 1500\nmax_requests_in_flight = 1",
    )
    .await;
    let address = collector.base.trim_start_matches("http://").to_owned();
    // A client that sends its headers and a tenth of its body, then stalls.
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let started = Instant::now();
    slow.write_all(
        format!(
            "POST /webhooks/pipedrive/acme HTTP/1.1\r\nHost: {address}\r\n\
             Authorization: Basic {credentials}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"meta\":"
        )
        .as_bytes(),
    )
    .await
    .expect("writes");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // It holds the only slot: another request is shed, told when to retry.
    let response = collector
        .webhook("acme")
        .body(fixtures::pipedrive("v2/deal-change.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "too_many_requests_in_flight");

    // The slow one is answered 408 once its time is up, and closed.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer))
        .await
        .expect("the collector closes the connection")
        .expect("reads");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(1_500));

    // The slot is free again.
    let (status, reply) = collector
        .post(&fixtures::pipedrive("v2/deal-change.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-slow-headers", 1).await;
    let collector = Collector::start(&brokers, &topic, "header_read_timeout_ms = 1000").await;
    let address = collector.base.trim_start_matches("http://").to_owned();
    // Reads until the server closes (`Some` with what it sent) or 6 s pass.
    async fn until_closed(stream: &mut tokio::net::TcpStream) -> Option<String> {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(6);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&seen).into_owned()),
                Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
                Err(_) => return None,
            }
        }
    }

    // Headers trickling in, never finished: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    let started = Instant::now();
    slow.write_all(
        format!("POST /webhooks/pipedrive/acme HTTP/1.1\r\nHost: {address}\r\n").as_bytes(),
    )
    .await
    .expect("writes");
    let closed = until_closed(&mut slow).await;
    assert!(
        closed.is_some(),
        "a connection with unfinished headers stays open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // A kept-alive connection gets its answer, then is closed when idle.
    let mut idle = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .expect("writes");
    let answered = until_closed(&mut idle).await.expect("closed once idle");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // Requests that keep coming are served as before.
    let (status, reply) = collector
        .post(&fixtures::pipedrive("v2/deal-change.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
}

#[tokio::test]
async fn wrong_basic_credentials_are_answered_without_waiting_for_the_body() {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-early-auth", 1).await;
    let collector = Collector::start(&brokers, &topic, "body_read_timeout_ms = 8000").await;
    let address = collector.base.trim_start_matches("http://").to_owned();
    let ask = |credentials: String, path: &'static str| {
        let address = address.clone();
        async move {
            // Headers and a tenth of the body, then nothing more.
            let mut stream = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connects");
            let started = Instant::now();
            stream
                .write_all(
                    format!(
                        "POST {path} HTTP/1.1\r\nHost: {address}\r\n\
                         Authorization: Basic {credentials}\r\nContent-Type: application/json\r\n\
                         Content-Length: 100\r\n\r\n{{\"meta\":"
                    )
                    .as_bytes(),
                )
                .await
                .expect("writes");
            let mut answer = vec![0u8; 2048];
            let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
                .await
                .expect("an answer")
                .expect("reads");
            (
                String::from_utf8_lossy(&answer[..n]).into_owned(),
                started.elapsed(),
            )
        }
    };
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    for (credentials, path) in [
        (encode(&format!("{USER}:wrong")), "/webhooks/pipedrive/acme"),
        (
            encode(&format!("{USER}:{PASSWORD}")),
            "/webhooks/pipedrive/nobody",
        ),
    ] {
        let (answer, took) = ask(credentials, path).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
        assert!(
            took < Duration::from_secs(3),
            "{path}: answered after {took:?}"
        );
    }
    let (answer, took) = ask(encode("x:y"), "/webhooks/nosuchtool/acme").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    // The right credentials still wait for the body, as they must.
    let (answer, took) = ask(
        encode(&format!("{USER}:{PASSWORD}")),
        "/webhooks/pipedrive/acme",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took >= Duration::from_secs(8), "{took:?}");
}

#[tokio::test]
async fn the_client_address_is_kept_when_configured() {
    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-client-ip", 1).await;
    let collector = Collector::start(&brokers, &topic, "keep_client_ip = true").await;
    let (status, reply) = collector
        .post(&fixtures::pipedrive("v2/deal-change.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let records = broker::read_topic(&brokers, &topic, 1, Duration::from_secs(30));
    let event = decode(&records[0]);
    let kept: Vec<(&str, &str)> = event
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect();
    assert!(
        kept.contains(&("x-forwarded-for", "203.0.113.7")),
        "{kept:?}"
    );
}

#[tokio::test]
async fn every_fixture_is_stored_byte_for_byte_with_its_envelope() {
    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-fixtures", 6).await;
    let collector = Collector::start(&brokers, &topic, "").await;
    let before = now_micros();

    let all = fixtures::all_pipedrive();
    assert!(
        all.len() >= 30,
        "expected every fixture class, found {}",
        all.len()
    );
    let mut sent = BTreeMap::new();
    for (name, body) in &all {
        let (status, reply) = collector.post(body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{name}: {reply}");
        let event_id = reply["event_id"].as_str().expect("event_id").to_owned();
        sent.entry(event_id)
            .or_insert_with(Vec::new)
            .push((name.clone(), body.clone()));
    }

    let records = broker::read_topic(&brokers, &topic, all.len(), Duration::from_secs(30));
    assert_eq!(
        records.len(),
        all.len(),
        "every accepted delivery is on the topic, once"
    );
    let mut partitions_by_key: BTreeMap<Vec<u8>, BTreeSet<i32>> = BTreeMap::new();
    for record in &records {
        let event = decode(record);
        let deliveries = sent
            .get(&event.event_id)
            .expect("event id was returned by the collector");
        assert!(
            deliveries.iter().any(|(_, body)| *body == event.body),
            "stored body of {} is byte-for-byte one that was sent",
            event.event_id
        );
        let (name, body) = deliveries
            .iter()
            .find(|(_, b)| *b == event.body)
            .expect("match");
        let json: Value = serde_json::from_slice(body).expect("json");
        let meta = &json["meta"];
        let keys = event.keys.clone().expect("keys");
        let (object, object_id) = if name.starts_with("v1/") {
            (
                meta["object"].as_str().expect("object").to_owned(),
                meta["id"].to_string(),
            )
        } else {
            (
                meta["entity"].as_str().expect("entity").to_owned(),
                tributary_tests::id_text(&meta["entity_id"]),
            )
        };
        assert_eq!(
            (keys.object.as_str(), keys.object_id.as_str()),
            (object.as_str(), object_id.as_str()),
            "{name}"
        );
        let expected_key = format!("acme:pipedrive:{object}:{object_id}");
        assert_eq!(
            record.key.as_deref(),
            Some(expected_key.as_bytes()),
            "{name}"
        );
        assert_eq!(event.tenant, "acme");
        assert_eq!(event.source, "pipedrive");
        assert_eq!(event.content_type, "application/json");
        assert!(
            event.received_at_micros >= before && event.received_at_micros <= now_micros(),
            "{name}"
        );
        let header_names: Vec<_> = event.headers.iter().map(|h| h.name.as_str()).collect();
        assert!(
            header_names.contains(&"user-agent"),
            "{name}: {header_names:?}"
        );
        assert!(
            !header_names.contains(&"authorization"),
            "credentials never stored"
        );
        assert!(
            !header_names.contains(&"x-forwarded-for"),
            "the client's address is kept only if configured"
        );
        let warning_codes: Vec<_> = event.warnings.iter().map(|w| w.code.as_str()).collect();
        let expected_verdict = if warning_codes.is_empty() {
            Verdict::Accepted
        } else {
            Verdict::AcceptedWithWarnings
        };
        assert_eq!(event.verdict, expected_verdict as i32, "{name}");
        if name.contains("trans-pending") {
            assert_eq!(warning_codes, ["transaction_pending"], "{name}");
        }
        if name.contains("bulk") {
            assert_eq!(warning_codes, ["bulk_update"], "{name}");
        }
        if name.contains("import") {
            assert_eq!(warning_codes, ["pipedrive_service"], "{name}");
        }
        partitions_by_key
            .entry(record.key.clone().unwrap_or_default())
            .or_default()
            .insert(record.partition);
    }
    for (key, partitions) in partitions_by_key {
        assert_eq!(
            partitions.len(),
            1,
            "one entity's events share a partition: {}",
            String::from_utf8_lossy(&key)
        );
    }
}

#[tokio::test]
async fn redeliveries_get_the_same_event_id() {
    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-redelivery", 3).await;
    let collector = Collector::start(&brokers, &topic, "").await;
    for (first, retry) in [
        ("v1/deal-updated.json", "v1/deal-updated-retry.json"),
        ("v2/deal-change.json", "v2/deal-change-retry.json"),
    ] {
        let (status_a, a) = collector.post(&fixtures::pipedrive(first)).await;
        let (status_b, b) = collector.post(&fixtures::pipedrive(retry)).await;
        // An exact repeat, as Pipedrive's v1 duplicates look.
        let (status_c, c) = collector.post(&fixtures::pipedrive(first)).await;
        assert_eq!(
            (status_a, status_b, status_c),
            (
                StatusCode::ACCEPTED,
                StatusCode::ACCEPTED,
                StatusCode::ACCEPTED
            )
        );
        assert_eq!(a["event_id"], b["event_id"], "{first} and {retry}");
        assert_eq!(a["event_id"], c["event_id"], "{first} twice");
        assert_eq!(b["warnings"], json!(["redelivery"]));
    }
    // Each delivery is stored; de-duplication is the later stages' job.
    let records = broker::read_topic(&brokers, &topic, 6, Duration::from_secs(20));
    let mut attempts: Vec<_> = records
        .iter()
        .map(|r| decode(r).keys.expect("keys").attempt)
        .collect();
    attempts.sort_unstable();
    assert_eq!(attempts, [1, 1, 1, 1, 3, 3]);
}

/// (what, path, credentials, content type, body, status, error code)
type Case<'a> = (
    &'a str,
    &'a str,
    Option<(&'a str, &'a str)>,
    Option<&'a str>,
    &'a [u8],
    StatusCode,
    &'a str,
);

#[tokio::test]
async fn every_rejection_has_its_status_and_nothing_reaches_the_topic() {
    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-rejections", 3).await;
    let collector = Collector::start(&brokers, &topic, "max_body_bytes = 65536").await;
    let valid = fixtures::pipedrive("v1/deal-updated.json");
    let url = |path: &str| format!("{}{path}", collector.base);
    let http = &collector.http;

    let mut invalid_meta: Value = serde_json::from_slice(&valid).expect("json");
    invalid_meta["meta"]["action"] = json!("edited");
    invalid_meta["meta"]["timestamp"] = json!("yesterday");
    let mut oversized: Value = serde_json::from_slice(&valid).expect("json");
    oversized["current"]["notes"] = json!("x".repeat(70_000));

    let json = Some("application/json");
    let good = Some((USER, PASSWORD));
    let too_large = serde_json::to_vec(&oversized).expect("json");
    let invalid = serde_json::to_vec(&invalid_meta).expect("json");
    let truncated = b"{\"meta\": {\"v\": 1,".to_vec();
    let cases: Vec<Case<'_>> = vec![
        (
            "unknown source",
            "/webhooks/legacycrm/acme",
            good,
            json,
            &valid,
            StatusCode::NOT_FOUND,
            "unknown_source",
        ),
        (
            "no credentials",
            "/webhooks/pipedrive/acme",
            None,
            json,
            &valid,
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
        ),
        (
            "wrong password",
            "/webhooks/pipedrive/acme",
            Some((USER, "guess")),
            json,
            &valid,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "wrong user",
            "/webhooks/pipedrive/acme",
            Some(("admin", PASSWORD)),
            json,
            &valid,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "form body",
            "/webhooks/pipedrive/acme",
            good,
            Some("application/x-www-form-urlencoded"),
            &valid,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            "/webhooks/pipedrive/acme",
            good,
            None,
            &valid,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "too large",
            "/webhooks/pipedrive/acme",
            good,
            json,
            &too_large,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "not json",
            "/webhooks/pipedrive/acme",
            good,
            json,
            &truncated,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "invalid meta",
            "/webhooks/pipedrive/acme",
            good,
            json,
            &invalid,
            StatusCode::BAD_REQUEST,
            "invalid_webhook",
        ),
    ];
    let metrics_before = collector.metrics().await;
    let mut expected_by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for (what, path, credentials, content_type, body, status, code) in cases {
        let mut request = http.post(url(path)).body(body.to_vec());
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), status, "{what}");
        if status == StatusCode::UNAUTHORIZED {
            assert!(
                response.headers().contains_key("www-authenticate"),
                "{what}"
            );
        }
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["error"], code, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        *expected_by_reason.entry(code).or_default() += 1;
        if code == "invalid_webhook" {
            let violations = body["violations"].as_array().expect("violations listed");
            let fields: Vec<_> = violations
                .iter()
                .map(|v| v["field"].as_str().expect("field"))
                .collect();
            assert_eq!(fields, ["meta.action", "meta.timestamp"], "{body}");
            assert!(
                violations
                    .iter()
                    .all(|v| v["reason"].as_str().is_some_and(|r| !r.is_empty()))
            );
        }
    }
    // An unknown tenant gets the answer wrong credentials get, with or
    // without credentials, so answers do not tell which tenants exist; it
    // is counted as what it is.
    let answer = |path: &'static str, credentials: Option<(&'static str, &'static str)>| {
        let mut request = http
            .post(url(path))
            .header("content-type", "application/json")
            .body(valid.clone());
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            let challenge = response.headers().get("www-authenticate").cloned();
            let body: Value = response.json().await.expect("a JSON error body");
            (status, challenge, body)
        }
    };
    for credentials in [good, Some((USER, "guess")), None] {
        let unknown = answer("/webhooks/pipedrive/globex", credentials).await;
        let wrong = answer(
            "/webhooks/pipedrive/acme",
            credentials.map(|(user, _)| (user, "guess")),
        )
        .await;
        assert_eq!(unknown, wrong, "{credentials:?}");
        assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
        let code = if credentials.is_some() {
            "invalid_credentials"
        } else {
            "missing_credentials"
        };
        *expected_by_reason.entry(code).or_default() += 1;
        *expected_by_reason.entry("unknown_tenant").or_default() += 1;
    }
    let metrics_after = collector.metrics().await;
    for (reason, count) in expected_by_reason {
        let source = if reason == "unknown_source" {
            "unknown"
        } else {
            "pipedrive"
        };
        let series = format!(
            "tributary_collector_events_rejected_total{{source=\"{source}\",reason=\"{reason}\"}}"
        );
        assert_eq!(
            counter(&metrics_after, &series) - counter(&metrics_before, &series),
            count,
            "{series}"
        );
    }
    // Neither the configured secret nor a guessed one reaches the log, even at debug level.
    // Each reason is logged without debug logging, at most once per
    // source and reason every 10 s (the metrics count every refusal).
    let log = collector.service.log();
    let logged = |reason: &str| {
        log.lines()
            .filter(|line| {
                // The reason is the one quoted value of its kind (the log
                // may color field names).
                line.contains("INFO")
                    && line.contains("delivery rejected")
                    && line.contains(&format!("\"{reason}\""))
            })
            .count()
    };
    for reason in ["invalid_credentials", "unknown_tenant", "malformed_json"] {
        assert_eq!(logged(reason), 1, "{reason} logged once:\n{log}");
    }
    for secret in [PASSWORD, "guess", "aG9vazpzM2NyZXQ=", "aG9vazpndWVzcw=="] {
        assert!(!log.contains(secret), "{secret:?} appears in the log");
    }
    // What authenticated but broke the source's rules is kept whole on the
    // dead-letter topic, with why; nothing else refused is stored anywhere.
    let letters = broker::read_topic(&brokers, &collector.dead_letter, 5, Duration::from_secs(5));
    let kept: Vec<(String, Vec<u8>, String, Vec<String>)> = letters
        .iter()
        .map(|record| {
            let letter: DeadLetter = serde_json::from_slice(&record.value).expect("a dead letter");
            assert_eq!(letter.stage, "collector");
            assert_eq!(letter.tenant.as_deref(), Some("acme"));
            assert_eq!(letter.source.as_deref(), Some("pipedrive"));
            assert_eq!(letter.original_topic, topic, "redriven to the raw topic");
            assert!(!letter.failed_at.is_empty());
            let original = RawEvent::decode_from(&letter.original_bytes().expect("base64"))
                .expect("the envelope the delivery would have had");
            assert_eq!(original.verdict, Verdict::Rejected as i32);
            assert!(original.received_at_micros > 0);
            let fields = letter.errors.iter().map(|e| e.path.clone()).collect();
            (
                letter.reason,
                original.body.to_vec(),
                original.content_type,
                fields,
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (
                "unsupported_media_type".into(),
                valid.clone(),
                "application/x-www-form-urlencoded".into(),
                vec!["$".into()]
            ),
            (
                "unsupported_media_type".into(),
                valid.clone(),
                "(none)".into(),
                vec!["$".into()]
            ),
            (
                "malformed_json".into(),
                truncated.clone(),
                "application/json".into(),
                vec!["$".into()]
            ),
            (
                "invalid_webhook".into(),
                invalid.clone(),
                "application/json".into(),
                vec!["meta.action".into(), "meta.timestamp".into()]
            ),
        ]
    );
    for reason in [
        "unsupported_media_type",
        "malformed_json",
        "invalid_webhook",
    ] {
        let series = format!(
            "tributary_collector_events_dead_lettered_total{{source=\"pipedrive\",reason=\"{reason}\"}}"
        );
        let expected = if reason == "unsupported_media_type" {
            2
        } else {
            1
        };
        assert_eq!(
            counter(&metrics_after, &series) - counter(&metrics_before, &series),
            expected,
            "{series}"
        );
    }
    // Nothing was produced: a valid event sent last is the topic's only message.
    let (status, _) = collector.post(&valid).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let records = broker::read_topic(&brokers, &topic, 2, Duration::from_secs(5));
    assert_eq!(
        records.len(),
        1,
        "only the valid delivery reached the topic"
    );
    assert_eq!(decode(&records[0]).body, valid);
}

#[tokio::test]
async fn broker_outage_answers_503_quickly_and_recovers_without_a_restart() {
    let mut private = PrivateBroker::start();
    let brokers = private.brokers();
    let topic = broker::unique_topic(&brokers, "raw-outage", 3).await;
    let collector = Collector::start(&brokers, &topic, "retry_after_seconds = 7").await;
    let http = &collector.http;
    let ready = |c: &Collector| http.get(format!("{}/readyz", c.base)).send();

    let (status, before) = collector
        .post(&fixtures::pipedrive("v1/deal-added.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{before}");
    assert_eq!(
        ready(&collector).await.expect("readyz").status(),
        StatusCode::OK
    );

    private.stop();
    let started = Instant::now();
    let response = collector
        .webhook("acme")
        .body(fixtures::pipedrive("v1/deal-updated.json"))
        .send()
        .await
        .expect("an answer, not a hang");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}, past Pipedrive's 10 s timeout"
    );
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "broker_unavailable");
    assert_eq!(
        ready(&collector).await.expect("readyz").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    private.resume();
    // The same delivery, retried as Pipedrive would, is accepted once the broker is back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let (status, reply) = collector
            .post(&fixtures::pipedrive("v1/deal-updated.json"))
            .await;
        if status == StatusCode::ACCEPTED {
            break reply;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
        assert!(
            Instant::now() < deadline,
            "collector never recovered:\n{}",
            collector.service.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        ready(&collector).await.expect("readyz").status(),
        StatusCode::OK
    );
    let (status, third) = collector
        .post(&fixtures::pipedrive("v1/deal-deleted.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{third}");

    // Every 202 is on the topic. (The 503'd delivery may be there too: a timed-out
    // send can still have landed, which is why redeliveries keep their event id.)
    let records = broker::read_topic(&brokers, &topic, 4, Duration::from_secs(10));
    let stored: BTreeSet<String> = records.iter().map(|r| decode(r).event_id).collect();
    for reply in [&before, &after, &third] {
        let id = reply["event_id"].as_str().expect("event id");
        assert!(stored.contains(id), "accepted event {id} is stored");
    }
}

#[tokio::test]
async fn a_full_producer_queue_answers_503_at_once() {
    let mut private = PrivateBroker::start();
    let brokers = private.brokers();
    let topic = broker::unique_topic(&brokers, "raw-queue", 1).await;
    let collector = Collector::start_with(&brokers, &topic, "queue_max_messages = 1", "").await;
    private.stop();
    // The first delivery occupies the only queue slot while the broker is away...
    let first = tokio::spawn({
        let request = collector
            .webhook("acme")
            .body(fixtures::pipedrive("v1/deal-added.json"));
        async move { request.send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so the next one is refused immediately instead of waiting.
    let started = Instant::now();
    let (status, body) = collector
        .post(&fixtures::pipedrive("v1/deal-updated.json"))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "producer_queue_full");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, took {:?}",
        started.elapsed()
    );
    assert_eq!(
        first.await.expect("join").expect("answer"),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_in_flight_requests_then_exits_cleanly() {
    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-sigterm", 3).await;
    let mut collector = Collector::start(&brokers, &topic, "").await;
    let all = std::sync::Arc::new(fixtures::all_pipedrive());
    let signalled = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());

    // Steady load from several connections, so requests are mid-flight when the signal lands.
    let mut workers = Vec::new();
    for worker in 0..16 {
        let all = all.clone();
        let signalled = signalled.clone();
        let request = {
            let c = &collector;
            move |body: Vec<u8>| c.webhook("acme").body(body)
        };
        let mut requests = Vec::new();
        for i in 0..400 {
            requests.push(request(all[(worker * 7 + i) % all.len()].1.clone()));
        }
        workers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for request in requests {
                match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let json: Value = response.json().await.unwrap_or(Value::Null);
                        let after_signal = signalled.get().is_some_and(|at| Instant::now() > *at);
                        outcomes.push((status, json, after_signal));
                    }
                    // The listener is closed: the collector is shutting down.
                    Err(_) => break,
                }
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(collector.service.pid()).expect("pid"));
    signalled.set(Instant::now()).expect("signal once");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let (exit, collector) = tokio::task::spawn_blocking(move || {
        let exit = collector.service.terminate(Duration::from_secs(20));
        (exit, collector)
    })
    .await
    .expect("join");
    let exit = exit.unwrap_or_else(|| {
        panic!(
            "collector did not exit after SIGTERM:\n{}",
            collector.service.log()
        )
    });
    assert!(
        exit.success(),
        "exit status {exit}:\n{}",
        collector.service.log()
    );

    let mut accepted = Vec::new();
    let mut accepted_after_signal = 0;
    for worker in workers {
        for (status, json, after_signal) in worker.await.expect("join") {
            assert_eq!(
                status,
                StatusCode::ACCEPTED,
                "a request in flight at shutdown still got its answer: {json}"
            );
            accepted.push(json["event_id"].as_str().expect("event id").to_owned());
            accepted_after_signal += usize::from(after_signal);
        }
    }
    assert!(
        accepted_after_signal > 0,
        "requests in flight at SIGTERM were answered (202) before exit"
    );
    let records = broker::read_topic(&brokers, &topic, accepted.len(), Duration::from_secs(30));
    let stored: Vec<String> = records.iter().map(|r| decode(r).event_id).collect();
    let stored_set: BTreeSet<&String> = stored.iter().collect();
    for id in &accepted {
        assert!(
            stored_set.contains(id),
            "accepted event {id} was flushed before exit"
        );
    }
    assert_eq!(
        records.len(),
        accepted.len(),
        "exactly the accepted deliveries were stored"
    );
    assert!(
        collector.service.log().contains("collector stopped"),
        "{}",
        collector.service.log()
    );
}

#[tokio::test]
async fn health_endpoints_answer() {
    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-health", 1).await;
    let collector = Collector::start(&brokers, &topic, "").await;
    for (path, status) in [
        ("/healthz", StatusCode::OK),
        ("/readyz", StatusCode::OK),
        ("/metrics", StatusCode::OK),
    ] {
        let response = collector
            .http
            .get(format!("{}{path}", collector.base))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), status, "{path}");
    }
    let (status, _) = collector
        .post(&fixtures::pipedrive("v1/deal-added.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let metrics = collector.metrics().await;
    assert_eq!(
        counter(
            &metrics,
            "tributary_collector_events_accepted_total{source=\"pipedrive\"}"
        ),
        1
    );
    assert_eq!(
        counter(
            &metrics,
            "tributary_collector_events_received_total{source=\"pipedrive\"}"
        ),
        1
    );
    assert!(
        metrics.contains("tributary_collector_produce_latency_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn refuses_to_start_when_the_raw_topic_is_missing() {
    let brokers = broker::shared_brokers();
    let port = tributary_tests::free_port();
    let config = format!(
        "[kafka]\nbrokers = \"{brokers}\"\n[topics]\nraw = \"{}\"\n[collector]\nlisten = \"127.0.0.1:{port}\"\n",
        tributary_tests::unique("never-created")
    );
    let mut service = Service::start("tributary-collector", "collector", &config);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = service.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "collector kept running without its topic"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    assert!(
        service.log().contains("does not exist"),
        "{}",
        service.log()
    );
}

/// A platform of the kind the collector's extension points are for: every
/// account posts to `/webhooks/batches`, a delivery is a JSON array of
/// events naming their account (`portal`), and answers are XML.
mod batches {
    use std::collections::BTreeMap;

    use serde_json::Value;
    use serde_json::value::RawValue;
    use tributary_sources::{
        AuthFailure, Delivery, Prevalidated, Refusal, RefusalReply, RejectedElement, Reply,
        SplitEvent, TenantOf, Violation, WebhookRequest, WebhookSource,
    };

    pub const SIGNATURE: &str = "signed";

    /// Tenant by portal.
    pub struct Batches(pub BTreeMap<i64, &'static str>);

    fn xml(status: u16, body: String) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/xml; charset=utf-8".into())],
            body: body.into_bytes(),
        }
    }

    impl WebhookSource for Batches {
        fn name(&self) -> &'static str {
            "batches"
        }

        fn has_tenant(&self, tenant: &str) -> bool {
            self.0.values().any(|t| *t == tenant)
        }

        fn tenant_of(&self, request: &WebhookRequest<'_>) -> TenantOf {
            let elements: Vec<Value> = serde_json::from_slice(request.body).unwrap_or_default();
            match elements.first().and_then(|first| first["portal"].as_i64()) {
                Some(portal) => match self.0.get(&portal) {
                    Some(tenant) => TenantOf::Tenant((*tenant).to_owned()),
                    None => TenantOf::Unknown(format!("portal {portal} is not configured")),
                },
                None => TenantOf::Unknown("the delivery names no portal".into()),
            }
        }

        fn authenticate(
            &self,
            _tenant: &str,
            request: &WebhookRequest<'_>,
        ) -> Result<(), AuthFailure> {
            match request.headers.get("x-signature") {
                None => Err(AuthFailure::Missing),
                Some(value) if value == SIGNATURE => Ok(()),
                Some(_) => Err(AuthFailure::Invalid),
            }
        }

        fn content_types(&self) -> &'static [&'static str] {
            &["application/json", "text/plain"]
        }

        fn split(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<Delivery, Refusal> {
            let elements: Vec<&RawValue> = serde_json::from_slice(request.body)
                .map_err(|err| Refusal::MalformedJson(err.to_string()))?;
            let mut delivery = Delivery::default();
            for (index, element) in elements.into_iter().enumerate() {
                let body = request.body.slice_ref(element.get().as_bytes());
                let value: Value = serde_json::from_str(element.get()).unwrap_or_default();
                match (value["id"].as_str(), value["kind"].as_str()) {
                    (Some(id), Some(kind)) => delivery.events.push(SplitEvent {
                        body,
                        keys: Prevalidated {
                            event_id: format!("{tenant}:{id}"),
                            payload_version: "1".into(),
                            object: kind.into(),
                            object_id: id.into(),
                            action: "changed".into(),
                            attempt: 1,
                            occurred_at_micros: 0,
                            warnings: Vec::new(),
                        },
                    }),
                    _ => delivery.rejected.push(RejectedElement {
                        index,
                        body,
                        violations: vec![Violation {
                            field: "id".into(),
                            reason: "id and kind must be strings".into(),
                        }],
                        keys: Prevalidated {
                            event_id: format!("{tenant}:rejected:{index}"),
                            object: value["kind"].as_str().unwrap_or_default().into(),
                            ..Prevalidated::default()
                        },
                    }),
                }
            }
            Ok(delivery)
        }

        fn acknowledge(&self, _tenant: &str, delivery: &Delivery) -> Option<Reply> {
            Some(xml(
                200,
                format!("<Ack events=\"{}\">true</Ack>", delivery.events.len()),
            ))
        }

        fn refusal_reply(&self, refusal: &RefusalReply<'_>) -> Option<Reply> {
            Some(xml(
                refusal.status,
                format!(
                    "<Fault><code>{}</code><message>{}</message><violations>{}</violations></Fault>",
                    refusal.code,
                    refusal.message,
                    refusal.violations.len()
                ),
            ))
        }
    }
}

#[tokio::test]
async fn a_batch_is_split_into_events_routed_by_its_account_and_answered_in_the_source_format() {
    use tributary_collector::{Collector, CollectorConfig};
    use tributary_sources::Sources;

    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-batches", 3).await;
    let dead_letters = broker::unique_topic(&brokers, "dead-letter-batches", 1).await;
    let config: CollectorConfig = tributary_config::Loader::from_toml_str(&format!(
        "[kafka]\nbrokers = \"{brokers}\"\n[topics]\nraw = \"{topic}\"\ndead_letter = \"{dead_letters}\"\n[collector]\nlisten = \"127.0.0.1:0\"\n"
    ))
    .extract()
    .expect("config");
    let pipedrive = tributary_sources::platform("pipedrive").expect("registered");
    let pipedrive_section = json!({"username": USER, "password": PASSWORD});
    let sources = Sources::new([
        (pipedrive.webhook)(vec![("acme", &pipedrive_section)]).expect("pipedrive"),
        Box::new(batches::Batches(BTreeMap::from([
            (7, "globex"),
            (8, "initech"),
        ]))),
    ]);
    let collector = Collector::with_sources(config, sources)
        .await
        .expect("collector");
    let listener = collector.bind().await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(collector.serve(listener, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let post = |path: &str, body: &str, content_type: &str| {
        http.post(format!("{base}{path}"))
            .header("x-signature", batches::SIGNATURE)
            .header("content-type", content_type)
            .body(body.to_owned())
    };

    // Three elements, the middle one malformed: two events, each its own bytes.
    let first = r#"{"portal": 7, "id": "a1",  "kind": "contact"}"#;
    let second = r#"{"portal": 7,"id":"b2","kind":"deal","note":"ü"}"#;
    let batch = format!("[\n  {first},\n  {{\"portal\": 7, \"id\": 3}},\n  {second}\n]");
    let response = post("/webhooks/batches", &batch, "application/json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/xml; charset=utf-8"
    );
    assert_eq!(
        response.text().await.expect("body"),
        "<Ack events=\"2\">true</Ack>"
    );
    // A tenant in the path works as well, and a declared media type other than JSON.
    let single = r#"[{"portal": 8, "id": "c3", "kind": "deal"}]"#;
    let response = post("/webhooks/batches/initech", single, "text/plain")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);

    let mut events: Vec<RawEvent> =
        broker::read_topic(&brokers, &topic, 3, Duration::from_secs(20))
            .iter()
            .map(decode)
            .collect();
    events.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    let stored: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.tenant.as_str(),
                e.source.as_str(),
                e.event_id.as_str(),
                String::from_utf8(e.body.to_vec()).expect("utf-8"),
                e.partition_key(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [
            (
                "globex",
                "batches",
                "globex:a1",
                first.to_owned(),
                "globex:batches:contact:a1".to_owned()
            ),
            (
                "globex",
                "batches",
                "globex:b2",
                second.to_owned(),
                "globex:batches:deal:b2".to_owned()
            ),
            (
                "initech",
                "batches",
                "initech:c3",
                r#"{"portal": 8, "id": "c3", "kind": "deal"}"#.to_owned(),
                "initech:batches:deal:c3".to_owned()
            ),
        ]
    );

    // Refusals, in the source's format, with the collector's status and headers.
    let cases = [
        (
            "unknown account",
            post(
                "/webhooks/batches",
                r#"[{"portal": 9, "id": "x", "kind": "deal"}]"#,
                "application/json",
            ),
            StatusCode::NOT_FOUND,
            "unknown_tenant",
            "portal 9",
        ),
        (
            "not an array",
            post(
                "/webhooks/batches/globex",
                r#"{"portal": 7, "id": "x"}"#,
                "application/json",
            ),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "<violations>0</violations>",
        ),
        (
            "undeclared media type",
            post("/webhooks/batches", single, "application/xml"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "text/plain",
        ),
        (
            "no signature",
            http.post(format!("{base}/webhooks/batches"))
                .header("content-type", "application/json")
                .body(single),
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
            "",
        ),
    ];
    for (what, request, status, code, detail) in cases {
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), status, "{what}");
        if status == StatusCode::UNAUTHORIZED {
            assert!(
                response.headers().contains_key("www-authenticate"),
                "{what}"
            );
        }
        let body = response.text().await.expect("body");
        assert!(
            body.starts_with(&format!("<Fault><code>{code}</code>")) && body.contains(detail),
            "{what}: {body}"
        );
    }

    // Pipedrive keeps its tenant in the path, and its JSON answers.
    let response = http
        .post(format!("{base}/webhooks/pipedrive"))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/json")
        .body(fixtures::pipedrive("v2/deal-change.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"], "tenant_required");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("/webhooks/pipedrive/{tenant}")),
        "{body}"
    );

    // A batch whose every element is malformed is kept whole on the
    // dead-letter topic and acknowledged: refusing it would only make the
    // platform send it again.
    let response = post(
        "/webhooks/batches",
        r#"[{"portal": 7}, {"portal": 7, "id": 1, "kind": "deal"}]"#,
        "application/json",
    )
    .send()
    .await
    .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.expect("body"),
        "<Ack events=\"0\">true</Ack>"
    );
    let letters = broker::read_topic(&brokers, &dead_letters, 6, Duration::from_secs(20));
    // The refused deliveries that authenticated are kept whole, in order.
    let whole: Vec<(String, Option<String>)> = letters
        .iter()
        .map(|record| {
            serde_json::from_slice::<DeadLetter>(&record.value).expect("a dead-letter record")
        })
        .filter(|letter| letter.reason != "invalid_element")
        .map(|letter| (letter.reason, letter.tenant))
        .collect();
    assert_eq!(
        whole,
        [
            ("malformed_json".to_owned(), Some("globex".to_owned())),
            (
                "unsupported_media_type".to_owned(),
                Some("initech".to_owned())
            ),
        ]
    );
    let mut kept: Vec<(String, String)> = letters
        .iter()
        .filter_map(|record| {
            let letter: DeadLetter =
                serde_json::from_slice(&record.value).expect("a dead-letter record");
            (letter.reason == "invalid_element").then_some((record, letter))
        })
        .map(|(record, letter)| {
            assert_eq!(letter.stage, "collector");
            assert_eq!(letter.original_topic, topic);
            let envelope =
                RawEvent::decode_from(&letter.original_bytes().expect("base64")).expect("envelope");
            assert_eq!(envelope.verdict, Verdict::Rejected as i32);
            assert_eq!(
                record.key.as_deref(),
                Some(envelope.partition_key().as_bytes())
            );
            (
                letter.event_id.expect("event id"),
                String::from_utf8(envelope.body.to_vec()).expect("utf-8"),
            )
        })
        .collect();
    kept.sort();
    let expected = [
        ("globex:rejected:0", r#"{"portal": 7}"#),
        (
            "globex:rejected:1",
            r#"{"portal": 7, "id": 1, "kind": "deal"}"#,
        ),
        // The malformed middle element of the first batch.
        ("globex:rejected:1", r#"{"portal": 7, "id": 3}"#),
    ];
    assert_eq!(
        kept,
        expected.map(|(id, body)| (id.to_owned(), body.to_owned()))
    );

    // Nothing of the refused deliveries reached the raw topic.
    let records = broker::read_topic(&brokers, &topic, 4, Duration::from_secs(3));
    assert_eq!(records.len(), 3);
    let _ = stop.send(());
    server.await.expect("joined").expect("stopped cleanly");
}

/// HubSpot through the real collector: an app's batches, its signatures,
/// routing by portal, malformed elements on the dead-letter topic, and a
/// workflow's record.
mod hubspot {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use reqwest::StatusCode;
    use serde_json::Value;
    use serde_json::value::RawValue;
    use tributary_envelope::{DeadLetter, RawEvent, Verdict};
    use tributary_sources::hubspot::signature::{
        SIGNATURE_HEADER, SIGNATURE_V3_HEADER, SIGNATURE_VERSION_HEADER, TIMESTAMP_HEADER, sign_v1,
        sign_v3,
    };
    use tributary_tests::broker::{self, Record};
    use tributary_tests::enricher::Topics;
    use tributary_tests::fixtures;
    use tributary_tests::process::Service;

    use super::{counter, decode};

    pub const SECRET: &str = "app-client-secret";
    const WORKFLOW_SECRET: &str = "workflow-s3cret";
    /// Where HubSpot sends the webhooks: a proxy in front of the collector.
    const PUBLIC_URL: &str = "https://hooks.example.com";

    /// How a request is signed.
    #[derive(Clone, Copy)]
    pub enum Sign<'a> {
        /// `X-HubSpot-Signature-v3` with this secret, sent this many ms ago.
        V3(&'a str, i64),
        /// The legacy v1 signature.
        V1(&'a str),
        /// The tenant's workflow secret as a header.
        WorkflowSecret(&'a str),
        Unsigned,
    }

    pub struct HubSpotCollector {
        pub service: Service,
        pub base: String,
        pub http: reqwest::Client,
        pub brokers: String,
        pub topics: Topics,
    }

    fn now_ms() -> i64 {
        i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("ms")
    }

    impl HubSpotCollector {
        /// A collector for `acme` (portal 62515) and `globex` (portal 99),
        /// with topics of its own.
        pub async fn start() -> Self {
            let brokers = broker::shared_brokers();
            let topics = Topics::create(&brokers, 3).await;
            let port = tributary_tests::free_port();
            let config = format!(
                r#"
[kafka]
brokers = "{brokers}"

[topics]
raw = "{raw}"
dead_letter = "{dead_letter}"

[telemetry]
log_level = "debug"

[collector]
listen = "127.0.0.1:{port}"

[tenants.acme.hubspot]
portal_id = "62515"
client_secret = "{SECRET}"
public_url = "{PUBLIC_URL}"
workflow_secret = "{WORKFLOW_SECRET}"

[tenants.globex.hubspot]
portal_id = 99
client_secret = "globex-app-secret"
public_url = "{PUBLIC_URL}"
"#,
                raw = topics.raw,
                dead_letter = topics.dead_letter,
            );
            let service = Service::start("tributary-collector", "collector", &config);
            let collector = HubSpotCollector {
                service,
                base: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::new(),
                brokers,
                topics,
            };
            let url = format!("{}/healthz", collector.base);
            tributary_tests::process::wait_for_http_ok(&url, Duration::from_secs(30), || {
                collector.service.log()
            })
            .await;
            collector
        }

        /// Runs the `tributary` command with the collector's configuration.
        pub fn tributary(&self, args: &[&str]) -> std::process::Output {
            tributary_tests::process::tributary_command()
                .args(args)
                .env(
                    "TRIBUTARY_CONFIG",
                    self.service.dir.path().join("tributary.toml"),
                )
                .env("TRIBUTARY_KAFKA__COMPRESSION", "none")
                .env("TRIBUTARY_TOPICS__ENRICHED", &self.topics.enriched)
                .current_dir(tempfile::tempdir().expect("dir").path())
                .output()
                .expect("running tributary")
        }

        /// Posts `body` to `path` as HubSpot would, signed as `sign` says.
        pub async fn post(&self, path: &str, body: &[u8], sign: Sign<'_>) -> (StatusCode, Value) {
            let response = self
                .request(path, body, sign)
                .send()
                .await
                .expect("request");
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                assert!(
                    response.headers().contains_key("www-authenticate"),
                    "a 401 names its scheme"
                );
            }
            (status, response.json().await.unwrap_or(Value::Null))
        }

        pub fn request(&self, path: &str, body: &[u8], sign: Sign<'_>) -> reqwest::RequestBuilder {
            let mut request = self
                .http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .header(
                    "user-agent",
                    "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
                )
                .body(body.to_vec());
            match sign {
                Sign::V3(secret, age_ms) => {
                    let sent = now_ms() - age_ms;
                    let uri = format!("{PUBLIC_URL}{path}");
                    request = request
                        .header(
                            SIGNATURE_V3_HEADER,
                            sign_v3(secret, "POST", &uri, body, sent),
                        )
                        .header(TIMESTAMP_HEADER, sent.to_string());
                }
                Sign::V1(secret) => {
                    request = request
                        .header(SIGNATURE_HEADER, sign_v1(secret, body))
                        .header(SIGNATURE_VERSION_HEADER, "v1");
                }
                Sign::WorkflowSecret(secret) => {
                    request = request.header("x-tributary-workflow-secret", secret);
                }
                Sign::Unsigned => {}
            }
            request
        }

        pub async fn metrics(&self) -> String {
            self.http
                .get(format!("{}/metrics", self.base))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics text")
        }

        pub fn raw(&self, expected: usize, timeout: Duration) -> Vec<Record> {
            broker::read_topic(&self.brokers, &self.topics.raw, expected, timeout)
        }

        pub fn dead_letters(&self, expected: usize, timeout: Duration) -> Vec<Record> {
            broker::read_topic(&self.brokers, &self.topics.dead_letter, expected, timeout)
        }
    }

    /// The elements of a batch, each as its exact bytes.
    fn elements(body: &[u8]) -> Vec<Vec<u8>> {
        serde_json::from_slice::<Vec<&RawValue>>(body)
            .expect("a JSON array")
            .iter()
            .map(|element| element.get().as_bytes().to_vec())
            .collect()
    }

    fn event_ids(answer: &Value) -> Vec<String> {
        match answer.get("events") {
            Some(events) => events
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["event_id"].as_str().expect("event id").to_owned())
                .collect(),
            None => vec![answer["event_id"].as_str().expect("event id").to_owned()],
        }
    }

    #[tokio::test]
    async fn each_element_of_a_batch_is_stored_as_its_own_raw_event_byte_for_byte() {
        let collector = HubSpotCollector::start().await;
        let batches = [
            "app/contact-batch.json",
            "app/deal-batch.json",
            "app/company-batch.json",
            "app/generic-engagements.json",
            "app/large-ids.json",
        ];
        // element bytes -> (event id the collector answered, batch)
        let mut sent: BTreeMap<Vec<u8>, (String, &str)> = BTreeMap::new();
        for (i, name) in batches.iter().enumerate() {
            let body = fixtures::hubspot(name);
            // The app's one address, and the tenant's own; v3 and the legacy v1.
            let path = if i % 2 == 0 {
                "/webhooks/hubspot"
            } else {
                "/webhooks/hubspot/acme"
            };
            let sign = if i == 2 {
                Sign::V1(SECRET)
            } else {
                Sign::V3(SECRET, 1_000)
            };
            let (status, answer) = collector.post(path, &body, sign).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{name}: {answer}");
            let ids = event_ids(&answer);
            let elements = elements(&body);
            assert_eq!(ids.len(), elements.len(), "{name}: {answer}");
            for (element, id) in elements.into_iter().zip(ids) {
                sent.insert(element, (id, name));
            }
        }
        let records = collector.raw(sent.len() + 1, Duration::from_secs(5));
        assert_eq!(records.len(), sent.len(), "one raw event per element, once");
        for record in &records {
            let event = decode(record);
            let body = event.body.to_vec();
            let (id, name) = sent.get(&body).unwrap_or_else(|| {
                panic!(
                    "stored body is not an element's exact bytes: {}",
                    String::from_utf8_lossy(&body)
                )
            });
            assert_eq!(&event.event_id, id, "{name}");
            assert_eq!(
                (event.tenant.as_str(), event.source.as_str()),
                ("acme", "hubspot")
            );
            assert_eq!(event.content_type, "application/json");
            let keys = event.keys.clone().expect("keys");
            assert_eq!(keys.payload_version, "webhooks-v3");
            let element: Value = serde_json::from_slice(&body).expect("json");
            let expected_id = match keys.action.as_str() {
                "merge" => tributary_tests::id_text(&element["primaryObjectId"]),
                "associationChange" => tributary_tests::id_text(&element["fromObjectId"]),
                _ => tributary_tests::id_text(&element["objectId"]),
            };
            assert_eq!(keys.object_id, expected_id, "{name}: ids keep every digit");
            assert_eq!(
                keys.occurred_at_micros,
                element["occurredAt"].as_u64().expect("ms") * 1000
            );
            assert_eq!(keys.attempt, 1);
            assert_eq!(
                record.key.as_deref(),
                Some(format!("acme:hubspot:{}:{}", keys.object, keys.object_id).as_bytes())
            );
            let header_names: Vec<&str> = event.headers.iter().map(|h| h.name.as_str()).collect();
            assert!(header_names.contains(&"user-agent"), "{header_names:?}");
            assert!(
                !header_names
                    .iter()
                    .any(|h| h.starts_with("x-hubspot-signature")),
                "signatures are not stored"
            );
        }
        let objects: std::collections::BTreeSet<String> = records
            .iter()
            .map(|r| decode(r).keys.expect("keys").object)
            .collect();
        assert_eq!(
            objects.into_iter().collect::<Vec<_>>(),
            [
                "call", "company", "contact", "deal", "email", "meeting", "note", "task"
            ]
        );
    }

    #[tokio::test]
    async fn retries_and_duplicates_of_an_event_keep_its_event_id() {
        let collector = HubSpotCollector::start().await;
        let batch = fixtures::hubspot("app/deal-batch.json");
        let (_, first) = collector
            .post("/webhooks/hubspot", &batch, Sign::V3(SECRET, 0))
            .await;
        // HubSpot's retry of the stage change (attemptNumber 3), and a duplicate of the batch.
        let (_, retry) = collector
            .post(
                "/webhooks/hubspot",
                &fixtures::hubspot("app/deal-stage-retry.json"),
                Sign::V3(SECRET, 0),
            )
            .await;
        let (status, duplicate) = collector
            .post("/webhooks/hubspot", &batch, Sign::V3(SECRET, 0))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(event_ids(&first), event_ids(&duplicate));
        assert_eq!(event_ids(&retry), [event_ids(&first)[1].clone()]);
        assert_eq!(retry["warnings"], serde_json::json!(["redelivery"]));
        // Each delivery is stored; de-duplication is the later stages' job.
        let records = collector.raw(13, Duration::from_secs(30));
        assert_eq!(records.len(), 13);
        let stage_change: Vec<u32> = records
            .iter()
            .map(decode)
            .filter(|e| e.event_id == event_ids(&first)[1])
            .map(|e| e.keys.expect("keys").attempt)
            .collect();
        let mut attempts = stage_change;
        attempts.sort_unstable();
        assert_eq!(attempts, [1, 1, 4]);
    }

    /// (what, path, body, signature, status, error code, what the reason says)
    type Refused<'a> = (
        &'a str,
        &'a str,
        &'a [u8],
        Sign<'a>,
        StatusCode,
        &'a str,
        &'a str,
    );

    #[tokio::test]
    async fn refused_deliveries_say_why_and_what_authenticated_is_kept() {
        let collector = HubSpotCollector::start().await;
        let batch = fixtures::hubspot("app/contact-batch.json");
        let foreign = String::from_utf8(batch.clone())
            .expect("utf-8")
            .replace("62515", "99")
            .into_bytes();
        let unknown_portal = String::from_utf8(batch.clone())
            .expect("utf-8")
            .replace("62515", "4242")
            .into_bytes();
        let cases: Vec<Refused<'_>> = vec![
            (
                "no signature",
                "/webhooks/hubspot",
                &batch,
                Sign::Unsigned,
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "x-hubspot-signature-v3",
            ),
            (
                "wrong secret",
                "/webhooks/hubspot",
                &batch,
                Sign::V3("guessed-secret", 0),
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "signature_wrong",
            ),
            (
                "wrong legacy secret",
                "/webhooks/hubspot/acme",
                &batch,
                Sign::V1("guessed-secret"),
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "signature_wrong",
            ),
            (
                "stale",
                "/webhooks/hubspot",
                &batch,
                Sign::V3(SECRET, 6 * 60 * 1000),
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "stale",
            ),
            (
                "workflow secret on a batch",
                "/webhooks/hubspot/acme",
                &batch,
                Sign::WorkflowSecret(WORKFLOW_SECRET),
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "x-hubspot-signature-v3",
            ),
            (
                "another portal on acme's address",
                "/webhooks/hubspot/acme",
                &foreign,
                Sign::V3(SECRET, 0),
                StatusCode::FORBIDDEN,
                "forbidden",
                "portal 99",
            ),
            (
                "not an array",
                "/webhooks/hubspot/acme",
                b"\"contact.creation\"",
                Sign::V3(SECRET, 0),
                StatusCode::BAD_REQUEST,
                "invalid_webhook",
                "array",
            ),
            (
                "not JSON",
                "/webhooks/hubspot/acme",
                b"[{\"objectId\": 1,",
                Sign::V3(SECRET, 0),
                StatusCode::BAD_REQUEST,
                "malformed_json",
                "JSON",
            ),
            (
                "not JSON, no tenant",
                "/webhooks/hubspot",
                b"objectId=1",
                Sign::V3(SECRET, 0),
                StatusCode::BAD_REQUEST,
                "malformed_json",
                "JSON",
            ),
        ];
        let before = collector.metrics().await;
        let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
        for (what, path, body, sign, status, code, detail) in cases {
            let (got, answer) = collector.post(path, body, sign).await;
            assert_eq!(got, status, "{what}: {answer}");
            assert_eq!(answer["error"], code, "{what}: {answer}");
            // Why: in the message, or for a broken rule in its violation.
            let why = if code == "invalid_webhook" {
                assert_eq!(answer["violations"][0]["field"], "$", "{what}: {answer}");
                &answer["violations"][0]["reason"]
            } else {
                &answer["message"]
            };
            let why = why.as_str().expect("a reason");
            assert!(
                why.contains(detail),
                "{what}: {why:?} should say {detail:?}"
            );
            *by_reason.entry(code).or_default() += 1;
        }
        // A portal no tenant is gets the answer a wrong signature gets (a
        // stale one too), so answers do not tell which portals are
        // configured; it is counted as what it is.
        for age_ms in [0, 6 * 60 * 1000] {
            let unknown = collector
                .post(
                    "/webhooks/hubspot",
                    &unknown_portal,
                    Sign::V3(SECRET, age_ms),
                )
                .await;
            let wrong = collector
                .post(
                    "/webhooks/hubspot",
                    &batch,
                    Sign::V3("guessed-secret", age_ms),
                )
                .await;
            assert_eq!(unknown, wrong, "signed {age_ms} ms ago");
            assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
            *by_reason.entry("invalid_credentials").or_default() += 1;
            *by_reason.entry("unknown_tenant").or_default() += 1;
        }
        let after = collector.metrics().await;
        for (reason, count) in by_reason {
            let series = format!(
                "tributary_collector_events_rejected_total{{source=\"hubspot\",reason=\"{reason}\"}}"
            );
            assert_eq!(
                counter(&after, &series) - counter(&before, &series),
                count,
                "{series}"
            );
        }
        let log = collector.service.log();
        for secret in [SECRET, "guessed-secret", WORKFLOW_SECRET] {
            assert!(!log.contains(secret), "{secret:?} appears in the log");
        }
        // Nothing was produced: a valid delivery sent last is all the topics hold.
        let (status, answer) = collector
            .post("/webhooks/hubspot", &batch, Sign::V3(SECRET, 0))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let records = collector.raw(3, Duration::from_secs(5));
        assert_eq!(records.len(), 2, "only the valid batch's two events");
        // What authenticated but broke HubSpot's rules is kept whole; what
        // did not authenticate (or named no portal) is not stored.
        let kept: Vec<(String, Option<String>, Vec<u8>)> = collector
            .dead_letters(3, Duration::from_secs(5))
            .iter()
            .map(|record| {
                let letter: DeadLetter =
                    serde_json::from_slice(&record.value).expect("a dead letter");
                assert_eq!(letter.stage, "collector");
                let original = RawEvent::decode_from(&letter.original_bytes().expect("base64"))
                    .expect("an envelope");
                (letter.reason, letter.tenant, original.body.to_vec())
            })
            .collect();
        assert_eq!(
            kept,
            [
                (
                    "invalid_webhook".into(),
                    Some("acme".into()),
                    b"\"contact.creation\"".to_vec()
                ),
                (
                    "malformed_json".into(),
                    Some("acme".into()),
                    b"[{\"objectId\": 1,".to_vec()
                ),
            ]
        );
        // Redriving them splits them again: still refused, they stay kept
        // and nothing is sent.
        let output = collector.tributary(&["dlq", "redrive", "--stage", "collector"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{stdout}");
        assert_eq!(stdout.matches("still refused").count(), 2, "{stdout}");
        assert!(stdout.contains("redrove 0 of 2"), "{stdout}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("still refused by their source"),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(collector.raw(3, Duration::from_secs(3)).len(), 2);
    }

    #[tokio::test]
    async fn malformed_elements_are_dead_lettered_and_redriven_to_the_raw_topic() {
        let collector = HubSpotCollector::start().await;
        let body = fixtures::hubspot("app/two-malformed.json");
        let elements = elements(&body);
        let (status, answer) = collector
            .post("/webhooks/hubspot", &body, Sign::V3(SECRET, 0))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(event_ids(&answer).len(), 3);
        let rejected: Vec<(u64, String)> = answer["rejected"]
            .as_array()
            .expect("rejected")
            .iter()
            .map(|r| {
                (
                    r["index"].as_u64().expect("index"),
                    r["violations"][0]["field"]
                        .as_str()
                        .expect("field")
                        .to_owned(),
                )
            })
            .collect();
        assert_eq!(
            rejected,
            [
                (1, "objectId".to_owned()),
                (3, "subscriptionType".to_owned())
            ]
        );

        let raw = collector.raw(4, Duration::from_secs(5));
        assert_eq!(raw.len(), 3, "the valid neighbours are stored");
        let letters = collector.dead_letters(2, Duration::from_secs(20));
        assert_eq!(letters.len(), 2);
        let mut originals = Vec::new();
        for record in &letters {
            let letter: DeadLetter = serde_json::from_slice(&record.value).expect("a dead letter");
            assert_eq!(
                (letter.stage.as_str(), letter.reason.as_str()),
                ("collector", "invalid_element")
            );
            assert_eq!(letter.tenant.as_deref(), Some("acme"));
            assert_eq!(letter.source.as_deref(), Some("hubspot"));
            assert_eq!(letter.original_topic, collector.topics.raw);
            assert!(!letter.errors.is_empty() && !letter.errors[0].message.is_empty());
            let original = letter.original_bytes().expect("base64");
            let envelope = RawEvent::decode_from(&original).expect("a raw envelope");
            assert_eq!(envelope.verdict, Verdict::Rejected as i32);
            assert_eq!(Some(envelope.event_id.clone()), letter.event_id);
            assert!(
                elements.contains(&envelope.body.to_vec()),
                "the element's exact bytes"
            );
            assert_eq!(
                envelope
                    .warnings
                    .iter()
                    .map(|w| w.field.as_str())
                    .collect::<Vec<_>>(),
                letter
                    .errors
                    .iter()
                    .map(|e| e.path.as_str())
                    .collect::<Vec<_>>()
            );
            assert_eq!(
                record.key.as_deref(),
                Some(envelope.partition_key().as_bytes())
            );
            originals.push((record.key.clone(), original));
        }
        let fields: std::collections::BTreeSet<String> = letters
            .iter()
            .map(|r| {
                let letter: DeadLetter = serde_json::from_slice(&r.value).expect("letter");
                letter.errors[0].path.clone()
            })
            .collect();
        assert_eq!(
            fields.into_iter().collect::<Vec<_>>(),
            ["objectId", "subscriptionType"]
        );
        let metrics = collector.metrics().await;
        assert_eq!(
            counter(
                &metrics,
                "tributary_collector_events_dead_lettered_total{source=\"hubspot\",reason=\"invalid_element\"}"
            ),
            2
        );
        assert_eq!(
            counter(
                &metrics,
                "tributary_collector_events_accepted_total{source=\"hubspot\"}"
            ),
            3
        );

        // `tributary dlq redrive` sends each envelope to the raw topic, with its key.
        let output = collector.tributary(&["dlq", "redrive", "--stage", "collector"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("redrove 2 of 2"), "{stdout}");
        let raw = collector.raw(6, Duration::from_secs(5));
        assert_eq!(raw.len(), 5);
        let redriven: Vec<(Option<Vec<u8>>, Vec<u8>)> = raw
            .iter()
            .filter(|r| decode(r).verdict == Verdict::Rejected as i32)
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect();
        originals.sort();
        let mut redriven = redriven;
        redriven.sort();
        assert_eq!(
            redriven, originals,
            "the envelopes, byte for byte, with their keys"
        );
    }

    #[tokio::test]
    async fn a_workflows_record_is_one_raw_event() {
        let collector = HubSpotCollector::start().await;
        let converted = fixtures::hubspot("workflow/contact-converted.json");
        // The secret as the action's API key, in a header or in the query.
        let (status, by_header) = collector
            .post(
                "/webhooks/hubspot/acme",
                &converted,
                Sign::WorkflowSecret(WORKFLOW_SECRET),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{by_header}");
        let custom = fixtures::hubspot("workflow/contact-custom-body.json");
        let path = format!("/webhooks/hubspot/acme?object=contact&secret={WORKFLOW_SECRET}");
        let (status, by_query) = collector.post(&path, &custom, Sign::Unsigned).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{by_query}");
        // Signed by the app, to the app's address: the record names its portal.
        let deal = fixtures::hubspot("workflow/deal.json");
        let (status, signed) = collector
            .post("/webhooks/hubspot", &deal, Sign::V3(SECRET, 0))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{signed}");
        let (status, wrong) = collector
            .post(
                "/webhooks/hubspot/acme",
                &converted,
                Sign::WorkflowSecret("guess"),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong}");

        let records = collector.raw(4, Duration::from_secs(5));
        assert_eq!(records.len(), 3);
        let mut stored: Vec<(String, String, String, Vec<u8>)> = records
            .iter()
            .map(|r| {
                let event = decode(r);
                let keys = event.keys.expect("keys");
                assert_eq!(
                    (keys.payload_version.as_str(), keys.action.as_str()),
                    ("workflow", "workflow")
                );
                (
                    keys.object,
                    keys.object_id,
                    event.event_id,
                    event.body.to_vec(),
                )
            })
            .collect();
        stored.sort();
        let id = |answer: &Value| answer["event_id"].as_str().expect("event id").to_owned();
        let mut expected = vec![
            (
                "contact".to_owned(),
                "3234574".to_owned(),
                id(&by_header),
                converted,
            ),
            (
                "contact".to_owned(),
                "3234574".to_owned(),
                id(&by_query),
                custom,
            ),
            (
                "deal".to_owned(),
                "1234567890".to_owned(),
                id(&signed),
                deal,
            ),
        ];
        expected.sort();
        assert_eq!(stored, expected);
    }
}

/// Sizes agree end to end: a body at the limit is stored (and, when its
/// source refuses it, kept), one byte more gets 413, never a 503 that
/// would repeat forever.
#[tokio::test]
async fn any_body_under_the_limit_is_stored_and_any_over_it_gets_413() {
    let brokers = broker::shared_brokers();
    let topic = broker::unique_topic(&brokers, "raw-sizes", 1).await;
    let collector = Collector::start(&brokers, &topic, "").await;
    let limit = 1024 * 1024;
    let valid = fixtures::pipedrive("v1/deal-updated.json");
    // The fixture with its notes padded so the body is exactly `size` bytes.
    let padded = |size: usize| {
        let mut body: Value = serde_json::from_slice(&valid).expect("json");
        body["current"]["notes"] = json!("");
        let bare = serde_json::to_vec(&body).expect("json").len();
        body["current"]["notes"] = json!("n".repeat(size - bare));
        let bytes = serde_json::to_vec(&body).expect("json");
        assert_eq!(bytes.len(), size);
        bytes
    };
    let at_limit = padded(limit);
    let (status, answer) = collector.post(&at_limit).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let stored = broker::read_topic(&brokers, &topic, 1, Duration::from_secs(20));
    assert_eq!(stored.len(), 1);
    assert_eq!(decode(&stored[0]).body, at_limit, "stored byte for byte");

    let (status, answer) = collector.post(&padded(limit + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");

    // A refused body at the limit is kept whole on the dead-letter topic.
    let mut broken = at_limit.clone();
    broken.truncate(limit - 1);
    broken.push(b' ');
    let (status, answer) = collector.post(&broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let letters = broker::read_topic(&brokers, &collector.dead_letter, 1, Duration::from_secs(20));
    assert_eq!(letters.len(), 1);
    let letter: DeadLetter = serde_json::from_slice(&letters[0].value).expect("a dead letter");
    assert_eq!(letter.reason, "malformed_json");
    let kept = RawEvent::decode_from(&letter.original_bytes().expect("base64")).expect("envelope");
    assert_eq!(kept.body, broken);
}

#[tokio::test]
async fn an_idle_collector_stores_again_after_the_broker_restarts() {
    let mut private = PrivateBroker::start();
    let brokers = private.brokers();
    let topic = broker::unique_topic(&brokers, "raw-restart", 3).await;
    let collector = Collector::start(&brokers, &topic, "").await;
    let (status, before) = collector
        .post(&fixtures::pipedrive("v1/deal-added.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{before}");

    // No delivery while the broker is away: the producer learns of the outage
    // only from its connections, not from a failed send.
    private.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    private.resume();

    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let (status, reply) = collector
            .post(&fixtures::pipedrive("v1/deal-updated.json"))
            .await;
        if status == StatusCode::ACCEPTED {
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery stored after the broker's restart: {status} {reply}\n{}",
            collector.service.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Its producer id is from before the restart, which the local broker
    // panics on: the client was replaced rather than used again.
    let log = collector.service.log();
    assert!(
        log.contains("every broker connection was lost"),
        "the producer client was not replaced:\n{log}"
    );
    let records = broker::read_topic(&brokers, &topic, 2, Duration::from_secs(10));
    let stored: BTreeSet<String> = records.iter().map(|r| decode(r).event_id).collect();
    for reply in [&before, &after] {
        let id = reply["event_id"].as_str().expect("event id");
        assert!(stored.contains(id), "accepted event {id} is stored");
    }
}
