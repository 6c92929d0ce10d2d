use serde_json::json;

use super::*;

const KEY_PEM: &str = include_str!("../../../../tests/fixtures/oauth/test-connected-app-key.pem");

fn settings(extra: Value) -> Result<OAuthSettings, String> {
    let mut section = json!({
        "token_url": "https://login.salesforce.com/services/oauth2/token",
        "client_id": "3MVG9-connected-app",
    });
    for (key, value) in extra.as_object().expect("object") {
        section[key] = value.clone();
    }
    serde_json::from_value(section).map_err(|e| e.to_string())
}

fn store_at(dir: &std::path::Path, key: [u8; 32]) -> TokenStore {
    TokenStore::open(&TokenStoreSettings {
        dir: Some(dir.to_owned()),
        key: Some(Secret::new(STANDARD.encode(key))),
    })
    .expect("opens")
    .expect("configured")
}

#[test]
fn settings_choose_one_grant_and_say_what_is_missing() {
    let refresh =
        settings(json!({"refresh_token": "5Aep861", "client_secret": "s"})).expect("valid");
    assert_eq!(refresh.grant(), Ok(Grant::RefreshToken));
    let jwt = settings(json!({"private_key": KEY_PEM, "username": "integration@acme.example"}))
        .expect("valid");
    assert_eq!(jwt.grant(), Ok(Grant::JwtBearer));
    let app =
        settings(json!({"client_secret": "s", "scope": "https://acme.crm.dynamics.com/.default"}))
            .expect("valid");
    assert_eq!(app.grant(), Ok(Grant::ClientCredentials));
    assert_eq!(jwt.audience(), "https://login.salesforce.com");
    let shown = format!("{refresh:?} {jwt:?}");
    assert!(
        !shown.contains("5Aep861") && !shown.contains("BEGIN PRIVATE"),
        "{shown}"
    );

    let refused = [
        (json!({}), "set refresh_token"),
        (json!({"client_secret": ""}), "client_secret alone"),
        (
            json!({"refresh_token": "r", "client_secret": "s", "private_key": KEY_PEM, "username": "u"}),
            "not both",
        ),
        (json!({"refresh_token": "r"}), "client_secret must be set"),
        (json!({"private_key": KEY_PEM}), "username must be set"),
        (
            json!({"private_key": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----", "username": "u"}),
            "PKCS#8",
        ),
        (
            json!({"refresh_token": "r", "client_secret": "s", "token_url": "login.salesforce.com"}),
            "token_url",
        ),
    ];
    for (extra, expected) in refused {
        let err = settings(extra.clone())
            .and_then(|s| s.grant().map(|_| ()))
            .expect_err("refused");
        assert!(err.contains(expected), "{extra}: {err}");
    }
}

#[test]
fn the_assertion_is_an_rs256_jwt_the_public_key_verifies() {
    let key = signing_key(&Secret::new(KEY_PEM)).expect("key");
    let now = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    let jwt = jwt_assertion(
        &key,
        "3MVG9-app",
        "integration@acme.example",
        "https://login.salesforce.com",
        now,
    )
    .expect("signed");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT"}));
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    assert_eq!(
        claims,
        json!({"iss": "3MVG9-app", "sub": "integration@acme.example", "aud": "https://login.salesforce.com", "exp": 1_764_000_170})
    );
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        key.public().as_ref(),
    );
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
    public
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the signature verifies");
    assert!(public.verify(b"something else", &signature).is_err());
}

#[test]
fn the_store_keeps_tokens_encrypted_per_platform_and_tenant() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store_at(dir.path(), [7; 32]);
    assert!(
        store
            .load("salesforce", "acme")
            .expect("readable")
            .is_none()
    );
    let stored = Stored {
        refresh_token: "5Aep861-rotated".into(),
        seeded_from: "abc".into(),
    };
    store.save("salesforce", "acme", &stored).expect("saved");
    let bytes = fs::read(store.path("salesforce", "acme")).expect("file");
    assert!(
        !String::from_utf8_lossy(&bytes).contains("5Aep861"),
        "encrypted at rest"
    );
    let back = store
        .load("salesforce", "acme")
        .expect("readable")
        .expect("kept");
    assert_eq!(back.refresh_token, "5Aep861-rotated");
    assert_eq!(back.seeded_from, "abc");

    // Another tenant's file in its place does not decrypt.
    fs::copy(
        store.path("salesforce", "acme"),
        store.path("salesforce", "globex"),
    )
    .expect("copy");
    assert!(matches!(
        store.load("salesforce", "globex"),
        Err(TokenStoreError::Decrypt { .. })
    ));
    // Nor does it under another key, or damaged.
    let other = store_at(dir.path(), [8; 32]);
    let err = other.load("salesforce", "acme").err().expect("wrong key");
    assert!(err.to_string().contains("cannot be decrypted"), "{err}");
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    fs::write(store.path("salesforce", "acme"), damaged).expect("write");
    assert!(store.load("salesforce", "acme").is_err());
}

#[test]
fn a_store_needs_a_key_of_32_bytes() {
    let dir = tempfile::tempdir().expect("dir");
    let open = |key: Option<&str>| {
        TokenStore::open(&TokenStoreSettings {
            dir: Some(dir.path().to_owned()),
            key: key.map(Secret::new),
        })
    };
    assert!(
        open(None)
            .expect_err("no key")
            .to_string()
            .contains("32 bytes")
    );
    assert!(
        open(Some("c2hvcnQ="))
            .expect_err("short")
            .to_string()
            .contains("32 bytes")
    );
    assert!(
        open(Some(&STANDARD.encode([1u8; 32])))
            .expect("valid")
            .is_some()
    );
    assert!(
        TokenStore::open(&TokenStoreSettings::default())
            .expect("none")
            .is_none()
    );
}
