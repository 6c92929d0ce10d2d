//! HubSpot's request signatures, as documented in "Validating requests from
//! HubSpot":
//!
//! - **v3** (`X-HubSpot-Signature-v3`): base64 of HMAC-SHA256, keyed with the
//!   app's client secret, over `method + uri + body + timestamp`, where the
//!   timestamp is `X-HubSpot-Request-Timestamp` (epoch milliseconds) and the
//!   URI is the full URL HubSpot called with `%3A %2F %3F %40 %21 %24 %27 %28
//!   %29 %2A %2C %3B` decoded. HubSpot says to reject a timestamp older than
//!   five minutes.
//! - **v2** (`X-HubSpot-Signature` with `X-HubSpot-Signature-Version: v2`):
//!   hex SHA-256 of `client secret + method + uri + body`.
//! - **v1** (`X-HubSpot-Signature` with `X-HubSpot-Signature-Version: v1`):
//!   hex SHA-256 of `client secret + body`. CRM object webhooks of legacy apps
//!   send this one.
//!
//! Signatures are compared in constant time, after decoding them to their 32
//! digest bytes. Every failure says why, so a 401 can carry the reason.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SIGNATURE_V3_HEADER: &str = "x-hubspot-signature-v3";
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-hubspot-signature";
pub const SIGNATURE_VERSION_HEADER: &str = "x-hubspot-signature-version";

/// A v3 timestamp older than this is refused (HubSpot's documented five minutes).
pub const MAX_AGE_MS: i64 = 5 * 60 * 1000;
/// A v3 timestamp further ahead of our clock than this is refused: no clock
/// is that wrong, so the header was made up.
pub const MAX_AHEAD_MS: i64 = 5 * 60 * 1000;

/// The signature scheme a request was verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    V1,
    V2,
    V3,
}

/// Whether the legacy v1 and v2 signatures are accepted when no v3 one is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    Accept,
    Refuse,
}

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header the scheme needs is absent (or empty).
    #[error("missing header {header}")]
    Missing { header: &'static str },
    /// A header is present but cannot be what HubSpot sends.
    #[error("malformed header {header}: {reason}")]
    Malformed {
        header: &'static str,
        reason: &'static str,
    },
    /// Well formed, but not made with this client secret over this request.
    #[error("signature does not match the request")]
    Wrong,
    /// The v3 timestamp is older than [`MAX_AGE_MS`].
    #[error("request timestamp is {age_ms} ms old, more than the {MAX_AGE_MS} ms allowed")]
    Stale { age_ms: i64 },
    /// The v3 timestamp is more than [`MAX_AHEAD_MS`] ahead of our clock.
    #[error("request timestamp is {ahead_ms} ms in the future")]
    FromTheFuture { ahead_ms: i64 },
    /// Only v1 or v2 was sent and legacy signatures are refused.
    #[error("legacy signature {version:?} refused: only X-HubSpot-Signature-v3 is accepted")]
    LegacyRefused { version: SignatureVersion },
}

impl SignatureError {
    /// A stable word for metrics and the 401's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing { .. } => "signature_missing",
            SignatureError::Malformed { .. } => "signature_malformed",
            SignatureError::Wrong => "signature_wrong",
            SignatureError::Stale { .. } => "timestamp_stale",
            SignatureError::FromTheFuture { .. } => "timestamp_in_future",
            SignatureError::LegacyRefused { .. } => "legacy_signature_refused",
        }
    }
}

/// What the verifier needs of a request. `uri` is the full URL as HubSpot
/// called it (scheme, host, path and query: the webhook's target URL), not
/// the path the server saw behind a proxy.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// Verifies a request with the strongest signature it carries: v3 when its
/// header is present (the legacy header is then ignored), otherwise v1 or v2
/// as `X-HubSpot-Signature-Version` says, if `legacy` allows them.
pub fn verify(
    client_secret: &str,
    request: &SignedRequest<'_>,
    now_ms: i64,
    legacy: Legacy,
) -> Result<SignatureVersion, SignatureError> {
    let header = |name: &'static str| -> Result<Option<&str>, SignatureError> {
        match request.headers.get(name) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map(|v| Some(v.trim()).filter(|v| !v.is_empty()))
                .map_err(|_| SignatureError::Malformed {
                    header: name,
                    reason: "not visible ASCII",
                }),
        }
    };
    if let Some(signature) = header(SIGNATURE_V3_HEADER)? {
        verify_v3(
            client_secret,
            request.method,
            request.uri,
            request.body,
            signature,
            header(TIMESTAMP_HEADER)?,
            now_ms,
        )?;
        return Ok(SignatureVersion::V3);
    }
    let Some(signature) = header(SIGNATURE_HEADER)? else {
        return Err(SignatureError::Missing {
            header: SIGNATURE_V3_HEADER,
        });
    };
    let version = match header(SIGNATURE_VERSION_HEADER)? {
        None => {
            return Err(SignatureError::Missing {
                header: SIGNATURE_VERSION_HEADER,
            });
        }
        Some(v) if v.eq_ignore_ascii_case("v1") => SignatureVersion::V1,
        Some(v) if v.eq_ignore_ascii_case("v2") => SignatureVersion::V2,
        Some(_) => {
            return Err(SignatureError::Malformed {
                header: SIGNATURE_VERSION_HEADER,
                reason: "neither v1 nor v2",
            });
        }
    };
    if legacy == Legacy::Refuse {
        return Err(SignatureError::LegacyRefused { version });
    }
    match version {
        SignatureVersion::V1 => verify_v1(client_secret, request.body, signature)?,
        _ => verify_v2(
            client_secret,
            request.method,
            request.uri,
            request.body,
            signature,
        )?,
    }
    Ok(version)
}

/// Checks a v3 signature. `timestamp` is `X-HubSpot-Request-Timestamp` as
/// sent; `now_ms` our clock in epoch milliseconds. The signature is checked
/// before the time, so a stale answer is only given to a genuine request.
pub fn verify_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    signature: &str,
    timestamp: Option<&str>,
    now_ms: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing {
        header: TIMESTAMP_HEADER,
    })?;
    let sent_ms: i64 =
        timestamp
            .parse()
            .ok()
            .filter(|ms: &i64| *ms > 0)
            .ok_or(SignatureError::Malformed {
                header: TIMESTAMP_HEADER,
                reason: "not epoch milliseconds",
            })?;
    let given: [u8; 32] = BASE64
        .decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(SignatureError::Malformed {
            header: SIGNATURE_V3_HEADER,
            reason: "not the base64 of a SHA-256 digest",
        })?;
    let expected = v3_digest(client_secret, method, uri, body, timestamp);
    if !bool::from(expected.ct_eq(&given)) {
        return Err(SignatureError::Wrong);
    }
    let age_ms = now_ms.saturating_sub(sent_ms);
    if age_ms > MAX_AGE_MS {
        return Err(SignatureError::Stale { age_ms });
    }
    if -age_ms > MAX_AHEAD_MS {
        return Err(SignatureError::FromTheFuture { ahead_ms: -age_ms });
    }
    Ok(())
}

/// Checks a v2 signature (hex SHA-256 of secret, method, URI and body).
pub fn verify_v2(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    signature: &str,
) -> Result<(), SignatureError> {
    compare_hex(&v2_digest(client_secret, method, uri, body), signature)
}

/// Checks a v1 signature (hex SHA-256 of secret and body).
pub fn verify_v1(client_secret: &str, body: &[u8], signature: &str) -> Result<(), SignatureError> {
    compare_hex(&v1_digest(client_secret, body), signature)
}

/// The `X-HubSpot-Signature-v3` value HubSpot sends for this request
/// (for simulators and tests).
pub fn sign_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: i64,
) -> String {
    BASE64.encode(v3_digest(
        client_secret,
        method,
        uri,
        body,
        &timestamp_ms.to_string(),
    ))
}

/// The v2 `X-HubSpot-Signature` value (lower-case hex).
pub fn sign_v2(client_secret: &str, method: &str, uri: &str, body: &[u8]) -> String {
    hex(&v2_digest(client_secret, method, uri, body))
}

/// The v1 `X-HubSpot-Signature` value (lower-case hex).
pub fn sign_v1(client_secret: &str, body: &[u8]) -> String {
    hex(&v1_digest(client_secret, body))
}

/// The URI as v3 signs it: the twelve escapes HubSpot lists are decoded,
/// every other byte (other escapes included) is kept as it is. Hex digits
/// are matched in either case, as percent-encoding defines them.
pub fn v3_uri(uri: &str) -> String {
    let bytes = uri.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(decoded) = bytes
                .get(i + 1..i + 3)
                .and_then(hex_pair)
                .filter(|byte| b":/?@!$'()*,;".contains(byte))
        {
            out.push(decoded);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII escapes were replaced by ASCII bytes: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| uri.to_owned())
}

fn v3_digest(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(client_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(method.as_bytes());
    mac.update(v3_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac.finalize().into_bytes().into()
}

fn v2_digest(client_secret: &str, method: &str, uri: &str, body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(client_secret.as_bytes());
    hash.update(method.as_bytes());
    hash.update(uri.as_bytes());
    hash.update(body);
    hash.finalize().into()
}

fn v1_digest(client_secret: &str, body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(client_secret.as_bytes());
    hash.update(body);
    hash.finalize().into()
}

fn compare_hex(expected: &[u8; 32], signature: &str) -> Result<(), SignatureError> {
    let given = unhex(signature).ok_or(SignatureError::Malformed {
        header: SIGNATURE_HEADER,
        reason: "not the hex of a SHA-256 digest",
    })?;
    if bool::from(expected.ct_eq(&given)) {
        Ok(())
    } else {
        Err(SignatureError::Wrong)
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks(2)) {
        *byte = hex_pair(pair)?;
    }
    Some(out)
}

/// Two hex digits (either case) as a byte; nothing else (no sign, no space).
fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    match pair {
        [high, low] => Some((digit(*high)? * 16 + digit(*low)?) as u8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    /// The client secret and body of HubSpot's own examples in "Validating
    /// requests from HubSpot" (v1 and v2 sections).
    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    const SENT_MS: i64 = 1_564_113_600_000;

    /// The v3 vector: computed with Python's `hmac` over
    /// `"POST" + "https://example.com/webhooks/hubspot?tenant=acme&name=O'Brien:%20x" + BODY + "1564113600000"`
    /// (the decoded URI), and the same value from the official
    /// `hubspot-api-client` 12.0.0's `Signature.get_signature(..., "v3", ...)`.
    const V3_URI_AS_CALLED: &str =
        "https://example.com/webhooks/hubspot?tenant=acme&name=O%27Brien%3A%20x";
    const V3_SIGNATURE: &str = "7mlPT94lUseiWG0asuKmPSpwcJTesqhom5t325Vj/FQ=";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn request<'a>(uri: &'a str, headers: &'a HeaderMap) -> SignedRequest<'a> {
        SignedRequest {
            method: "POST",
            uri,
            headers,
            body: BODY.as_bytes(),
        }
    }

    #[test]
    fn hubspot_documented_v1_and_v2_examples_verify() {
        // v1: hash given in HubSpot's documentation for this body.
        let v1 = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";
        assert_eq!(sign_v1(SECRET, BODY.as_bytes()), v1);
        assert_eq!(verify_v1(SECRET, BODY.as_bytes(), v1), Ok(()));
        // v2: HubSpot's GET example (no body).
        let v2 = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e";
        assert_eq!(
            verify_v2(
                SECRET,
                "GET",
                "https://www.example.com/webhook_uri",
                b"",
                v2
            ),
            Ok(())
        );
        // Upper-case hex is the same digest.
        assert_eq!(
            verify_v2(
                SECRET,
                "GET",
                "https://www.example.com/webhook_uri",
                b"",
                &v2.to_uppercase()
            ),
            Ok(())
        );
        // v2 over a POST, computed with Python's hashlib.sha256(secret + "POST" + uri + body).
        assert_eq!(
            sign_v2(
                SECRET,
                "POST",
                "https://example.com/webhooks/hubspot",
                BODY.as_bytes()
            ),
            "bf955bab8100fa3daf2a8abb34644249297b93a9b5f86e655a5fd4c2cadd9b6c"
        );
    }

    #[test]
    fn v3_decodes_the_listed_escapes_before_hashing() {
        assert_eq!(
            v3_uri(V3_URI_AS_CALLED),
            "https://example.com/webhooks/hubspot?tenant=acme&name=O'Brien:%20x"
        );
        assert_eq!(
            v3_uri("/a%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B%3a%20%26%3D%2"),
            "/a:/?@!$'()*,;:%20%26%3D%2"
        );
        assert_eq!(
            sign_v3(SECRET, "POST", V3_URI_AS_CALLED, BODY.as_bytes(), SENT_MS),
            V3_SIGNATURE
        );
        let now = SENT_MS + 1_000;
        let sent = SENT_MS.to_string();
        assert_eq!(
            verify_v3(
                SECRET,
                "POST",
                V3_URI_AS_CALLED,
                BODY.as_bytes(),
                V3_SIGNATURE,
                Some(&sent),
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn verify_picks_v3_and_checks_its_timestamp() {
        let sent = SENT_MS.to_string();
        let map = headers(&[
            (SIGNATURE_V3_HEADER, V3_SIGNATURE),
            (TIMESTAMP_HEADER, &sent),
            // A wrong legacy signature beside a good v3 one does not matter.
            (SIGNATURE_HEADER, "00"),
            (SIGNATURE_VERSION_HEADER, "v1"),
        ]);
        let req = request(V3_URI_AS_CALLED, &map);
        assert_eq!(
            verify(SECRET, &req, SENT_MS + MAX_AGE_MS, Legacy::Refuse),
            Ok(SignatureVersion::V3)
        );
        assert_eq!(
            verify(SECRET, &req, SENT_MS + MAX_AGE_MS + 1, Legacy::Accept),
            Err(SignatureError::Stale {
                age_ms: MAX_AGE_MS + 1
            })
        );
        assert_eq!(
            verify(SECRET, &req, SENT_MS - MAX_AHEAD_MS - 1, Legacy::Accept),
            Err(SignatureError::FromTheFuture {
                ahead_ms: MAX_AHEAD_MS + 1
            })
        );
    }

    #[test]
    fn v3_refuses_what_was_not_signed() {
        let sent = SENT_MS.to_string();
        let now = SENT_MS;
        let check = |secret: &str, method: &str, uri: &str, body: &str, ts: &str| {
            verify_v3(
                secret,
                method,
                uri,
                body.as_bytes(),
                V3_SIGNATURE,
                Some(ts),
                now,
            )
        };
        assert_eq!(check(SECRET, "POST", V3_URI_AS_CALLED, BODY, &sent), Ok(()));
        let wrong = Err(SignatureError::Wrong);
        assert_eq!(
            check("another-secret", "POST", V3_URI_AS_CALLED, BODY, &sent),
            wrong
        );
        assert_eq!(check(SECRET, "PUT", V3_URI_AS_CALLED, BODY, &sent), wrong);
        assert_eq!(
            check(
                SECRET,
                "POST",
                "https://example.com/webhooks/hubspot",
                BODY,
                &sent
            ),
            wrong
        );
        assert_eq!(
            check(
                SECRET,
                "POST",
                V3_URI_AS_CALLED,
                &BODY.replace("123", "124"),
                &sent
            ),
            wrong
        );
        // The timestamp is signed: moving it (even to "now") breaks the signature.
        assert_eq!(
            check(
                SECRET,
                "POST",
                V3_URI_AS_CALLED,
                BODY,
                &(SENT_MS + 1).to_string()
            ),
            wrong
        );
        // A stale request with a wrong signature is reported as wrong, not stale.
        assert_eq!(
            verify_v3(
                "another-secret",
                "POST",
                V3_URI_AS_CALLED,
                BODY.as_bytes(),
                V3_SIGNATURE,
                Some(&sent),
                now + MAX_AGE_MS * 10
            ),
            wrong
        );
    }

    #[test]
    fn each_failure_has_its_own_reason() {
        let sent = SENT_MS.to_string();
        let uri = V3_URI_AS_CALLED;
        let at = |pairs: &[(&'static str, &str)], legacy| {
            let map = headers(pairs);
            verify(SECRET, &request(uri, &map), SENT_MS, legacy).map_err(|e| e.reason())
        };
        assert_eq!(at(&[], Legacy::Accept), Err("signature_missing"));
        assert_eq!(
            at(&[(SIGNATURE_V3_HEADER, V3_SIGNATURE)], Legacy::Accept),
            Err("signature_missing")
        );
        assert_eq!(
            at(
                &[
                    (SIGNATURE_V3_HEADER, V3_SIGNATURE),
                    (TIMESTAMP_HEADER, "yesterday")
                ],
                Legacy::Accept
            ),
            Err("signature_malformed")
        );
        assert_eq!(
            at(
                &[
                    (SIGNATURE_V3_HEADER, "not base64!"),
                    (TIMESTAMP_HEADER, &sent)
                ],
                Legacy::Accept
            ),
            Err("signature_malformed")
        );
        // Valid base64, but 16 bytes: not a SHA-256 digest.
        assert_eq!(
            at(
                &[
                    (SIGNATURE_V3_HEADER, "AAAAAAAAAAAAAAAAAAAAAA=="),
                    (TIMESTAMP_HEADER, &sent)
                ],
                Legacy::Accept
            ),
            Err("signature_malformed")
        );
        let other = BASE64.encode([7u8; 32]);
        assert_eq!(
            at(
                &[(SIGNATURE_V3_HEADER, &other), (TIMESTAMP_HEADER, &sent)],
                Legacy::Accept
            ),
            Err("signature_wrong")
        );
        // Legacy headers.
        let v1 = sign_v1(SECRET, BODY.as_bytes());
        assert_eq!(
            at(&[(SIGNATURE_HEADER, &v1)], Legacy::Accept),
            Err("signature_missing")
        );
        assert_eq!(
            at(
                &[(SIGNATURE_HEADER, &v1), (SIGNATURE_VERSION_HEADER, "v9")],
                Legacy::Accept
            ),
            Err("signature_malformed")
        );
        assert_eq!(
            at(
                &[(SIGNATURE_HEADER, &v1), (SIGNATURE_VERSION_HEADER, "v1")],
                Legacy::Refuse
            ),
            Err("legacy_signature_refused")
        );
        assert_eq!(
            at(
                &[(SIGNATURE_HEADER, "+f"), (SIGNATURE_VERSION_HEADER, "v1")],
                Legacy::Accept
            ),
            Err("signature_malformed")
        );
        // A hex string with a sign where a digit belongs is malformed, not parsed leniently.
        let signed = format!("+{}", &v1[1..]);
        assert_eq!(
            at(
                &[
                    (SIGNATURE_HEADER, &signed),
                    (SIGNATURE_VERSION_HEADER, "v1")
                ],
                Legacy::Accept
            ),
            Err("signature_malformed")
        );
        assert_eq!(
            at(
                &[(SIGNATURE_HEADER, &v1), (SIGNATURE_VERSION_HEADER, "v1")],
                Legacy::Accept
            ),
            Ok(SignatureVersion::V1)
        );
        let v2 = sign_v2(SECRET, "POST", uri, BODY.as_bytes());
        assert_eq!(
            at(
                &[(SIGNATURE_HEADER, &v2), (SIGNATURE_VERSION_HEADER, "V2")],
                Legacy::Accept
            ),
            Ok(SignatureVersion::V2)
        );
        // A v1 signature presented as v2 does not verify.
        assert_eq!(
            at(
                &[(SIGNATURE_HEADER, &v1), (SIGNATURE_VERSION_HEADER, "v2")],
                Legacy::Accept
            ),
            Err("signature_wrong")
        );
    }
}
