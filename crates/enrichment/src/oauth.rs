//! OAuth 2.0 access tokens for the APIs that need them, one
//! [`OAuthTokens`] per tenant and platform.
//!
//! Three grants: a refresh token (`grant_type=refresh_token`), the JWT
//! bearer flow of a connected app (`urn:ietf:params:oauth:grant-type:jwt-bearer`,
//! an RS256 assertion signed with the app's private key: no refresh token at
//! all), and client credentials (`grant_type=client_credentials`, an app
//! acting as itself: Dataverse through Microsoft Entra ID, ServiceTitan). An access token is used until shortly before it expires, then
//! renewed; a `401` from the API renews it at once. Renewals are one at a
//! time: callers waiting meanwhile get the renewed token.
//!
//! QuickBooks and Xero rotate the refresh token on every use, and Salesforce
//! can be set to: the new one is written to the [`TokenStore`] (encrypted,
//! atomically replaced) before its access token is used, so a restart
//! continues with it rather than with the configured one, which no longer
//! works. The configured refresh token is used again only when it changes
//! (the tenant authorized anew). Tokens never appear in logs or `Debug`.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tributary_config::Secret;

use crate::api_client::{ApiClient, ApiError, Fetched, RequestBudget, RetryPolicy};

/// An access token this close to its expiry is renewed before use.
const RENEW_BEFORE: Duration = Duration::from_secs(120);
/// A JWT assertion's lifetime (Salesforce accepts at most 3 minutes).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(170);

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `Authorization: Basic` with the client id and secret (RFC 6749
    /// 2.3.1; QuickBooks and Xero).
    Basic,
    /// `client_id` and `client_secret` in the form body (Salesforce's examples).
    Body,
}

/// `[tenants.<tenant>.<platform>.oauth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// The token endpoint, e.g. `https://login.salesforce.com/services/oauth2/token`.
    pub token_url: String,
    /// The app's client id (Salesforce: the connected app's consumer key).
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The refresh-token grant: the token the tenant's authorization gave.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// The JWT bearer grant: the app's private key (PKCS#8 PEM,
    /// `-----BEGIN PRIVATE KEY-----`) and the user the tokens act as.
    #[serde(default)]
    pub private_key: Option<Secret>,
    #[serde(default)]
    pub username: Option<String>,
    /// The assertion's audience; by default the token endpoint's origin
    /// (`https://login.salesforce.com`).
    #[serde(default)]
    pub audience: Option<String>,
    /// The client-credentials grant's `scope`, e.g.
    /// `https://acme.crm.dynamics.com/.default`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Overrides the platform's usual client authentication.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// An access token's lifetime when the token endpoint does not say
    /// (`expires_in`); Salesforce's default session lasts 2 hours.
    #[serde(default = "default_lifetime_seconds")]
    pub access_token_lifetime_seconds: u64,
}

fn default_lifetime_seconds() -> u64 {
    3_600
}

/// Which grant the settings choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    RefreshToken,
    JwtBearer,
    ClientCredentials,
}

impl OAuthSettings {
    /// Checks the settings and says which grant they choose.
    pub fn grant(&self) -> Result<Grant, String> {
        let url = self
            .token_url
            .strip_prefix("https://")
            .or_else(|| self.token_url.strip_prefix("http://"));
        if url.is_none_or(|rest| rest.is_empty()) {
            return Err(format!(
                "oauth.token_url must be an http(s) address, got {:?}",
                self.token_url
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err("oauth.client_id must be set".into());
        }
        if self.access_token_lifetime_seconds < 300 {
            return Err("oauth.access_token_lifetime_seconds must be at least 300".into());
        }
        match (&self.refresh_token, &self.private_key) {
            (Some(_), Some(_)) => Err("oauth: set refresh_token (the refresh-token grant) or private_key and username (the JWT bearer grant), not both".into()),
            (None, None) => {
                if self.client_secret.as_ref().is_none_or(Secret::is_empty) {
                    return Err("oauth: set refresh_token (the refresh-token grant), private_key and username (the JWT bearer grant), or client_secret alone (the client-credentials grant)".into());
                }
                Ok(Grant::ClientCredentials)
            }
            (Some(token), None) => {
                if token.is_empty() {
                    return Err("oauth.refresh_token must not be empty".into());
                }
                if self.client_secret.as_ref().is_none_or(Secret::is_empty) {
                    return Err("oauth.client_secret must be set for the refresh-token grant".into());
                }
                Ok(Grant::RefreshToken)
            }
            (None, Some(key)) => {
                if self.username.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    return Err("oauth.username must be set for the JWT bearer grant: the user the tokens act as".into());
                }
                signing_key(key).map_err(|err| format!("oauth.private_key: {err}"))?;
                Ok(Grant::JwtBearer)
            }
        }
    }

    /// The assertion's audience: `audience`, else the token URL's origin.
    fn audience(&self) -> String {
        if let Some(audience) = &self.audience {
            return audience.clone();
        }
        let (scheme, rest) = self.token_url.split_once("://").unwrap_or(("https", ""));
        let host = rest.split('/').next().unwrap_or_default();
        format!("{scheme}://{host}")
    }
}

/// An RSA key pair from a PKCS#8 PEM.
fn signing_key(pem: &Secret) -> Result<ring::signature::RsaKeyPair, String> {
    let body: String = pem
        .expose()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::trim)
        .collect();
    if !pem.expose().contains("-----BEGIN PRIVATE KEY-----") {
        return Err("expected a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----); convert an RSA key with `openssl pkcs8 -topk8 -nocrypt`".into());
    }
    let der = STANDARD
        .decode(body)
        .map_err(|err| format!("the PEM's body is not base64: {err}"))?;
    ring::signature::RsaKeyPair::from_pkcs8(&der)
        .map_err(|err| format!("not an RSA private key: {err}"))
}

/// The public key (PKCS#1 DER) of a PKCS#8 PEM private key: what the
/// certificate uploaded to the app holds.
pub fn rsa_public_key(pem: &Secret) -> Result<Vec<u8>, String> {
    signing_key(pem).map(|key| key.public().as_ref().to_vec())
}

/// A signed JWT bearer assertion (RS256).
pub fn jwt_assertion(
    key: &ring::signature::RsaKeyPair,
    issuer: &str,
    subject: &str,
    audience: &str,
    now: SystemTime,
) -> Result<String, String> {
    let exp = now
        .checked_add(ASSERTION_LIFETIME)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or("the clock is before 1970")?;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        serde_json::json!({"iss": issuer, "sub": subject, "aud": audience, "exp": exp}).to_string(),
    );
    let signed = format!("{header}.{claims}");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing the assertion failed")?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// `[enrichment.token_store]`: where rotated refresh tokens are kept.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenStoreSettings {
    /// A directory only Tributary's enricher reads and writes.
    pub dir: Option<PathBuf>,
    /// 32 bytes, base64: the AES-256-GCM key the tokens are encrypted with.
    #[serde(skip_serializing)]
    pub key: Option<Secret>,
}

/// What the store keeps for one tenant and platform.
#[derive(Serialize, Deserialize)]
struct Stored {
    refresh_token: String,
    /// SHA-256 of the configured refresh token this one descends from: a
    /// different configured token (a new authorization) replaces it.
    seeded_from: String,
}

/// Rotated refresh tokens, one encrypted file per tenant and platform
/// (`<platform>-<tenant>.token`: a 12-byte nonce, then the AES-256-GCM
/// ciphertext; the platform and tenant are authenticated with it, so a file
/// cannot stand in for another's).
pub struct TokenStore {
    dir: PathBuf,
    key: LessSafeKey,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    #[error(
        "enrichment.token_store.key must be 32 bytes in base64 (e.g. from `openssl rand -base64 32`): {0}"
    )]
    Key(String),
    #[error("token store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "token store {path}: cannot be decrypted with the configured key (a different key, or a damaged file)"
    )]
    Decrypt { path: PathBuf },
}

impl TokenStore {
    /// The store the settings describe; `None` when they name no directory.
    pub fn open(settings: &TokenStoreSettings) -> Result<Option<TokenStore>, TokenStoreError> {
        let Some(dir) = &settings.dir else {
            return Ok(None);
        };
        let key = settings
            .key
            .as_ref()
            .ok_or_else(|| TokenStoreError::Key("not set".into()))?;
        let bytes = STANDARD
            .decode(key.expose().trim())
            .map_err(|err| TokenStoreError::Key(err.to_string()))?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| TokenStoreError::Key(format!("{} bytes", bytes.len())))?;
        fs::create_dir_all(dir).map_err(|source| TokenStoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Some(TokenStore {
            dir: dir.clone(),
            key: LessSafeKey::new(key),
        }))
    }

    fn path(&self, platform: &str, tenant: &str) -> PathBuf {
        let safe = |s: &str| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        };
        self.dir
            .join(format!("{}-{}.token", safe(platform), safe(tenant)))
    }

    fn aad(platform: &str, tenant: &str) -> String {
        format!("tributary-token/{platform}/{tenant}")
    }

    fn load(&self, platform: &str, tenant: &str) -> Result<Option<Stored>, TokenStoreError> {
        let path = self.path(platform, tenant);
        let mut bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(TokenStoreError::Io { path, source }),
        };
        if bytes.len() < NONCE_LEN {
            return Err(TokenStoreError::Decrypt { path });
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes)
            .map_err(|_| TokenStoreError::Decrypt { path: path.clone() })?;
        let aad = Self::aad(platform, tenant);
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut sealed)
            .map_err(|_| TokenStoreError::Decrypt { path: path.clone() })?;
        serde_json::from_slice(plain)
            .map(Some)
            .map_err(|_| TokenStoreError::Decrypt { path })
    }

    /// Replaces the file atomically and durably: a crash leaves the old
    /// token or the new one, never a torn file.
    fn save(&self, platform: &str, tenant: &str, stored: &Stored) -> Result<(), TokenStoreError> {
        let path = self.path(platform, tenant);
        let io = |source| TokenStoreError::Io {
            path: path.clone(),
            source,
        };
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| io(std::io::Error::other("no randomness for a nonce")))?;
        let mut sealed = serde_json::to_vec(stored).map_err(|e| io(std::io::Error::other(e)))?;
        let aad = Self::aad(platform, tenant);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| io(std::io::Error::other("encryption failed")))?;
        let temporary = path.with_extension("token.tmp");
        let mut file = fs::File::create(&temporary).map_err(io)?;
        file.write_all(&nonce).map_err(io)?;
        file.write_all(&sealed).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&temporary, &path).map_err(io)?;
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn fingerprint(token: &Secret) -> String {
    let digest = Sha256::digest(token.expose().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// An access token and when to renew it.
struct Current {
    token: Secret,
    renew_at: Instant,
}

struct State {
    current: Option<Current>,
    /// The refresh token to use next (refresh-token grant).
    refresh_token: Option<Secret>,
}

/// One tenant's access tokens for one platform.
pub struct OAuthTokens {
    api: &'static str,
    tenant: String,
    settings: OAuthSettings,
    grant: Grant,
    client_auth: ClientAuth,
    client: ApiClient,
    store: Option<Arc<TokenStore>>,
    seeded_from: Option<String>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("api", &self.api)
            .field("tenant", &self.tenant)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

impl OAuthTokens {
    /// Tokens for `tenant` on `api`. The refresh-token grant needs a store
    /// (a rotated token must outlive the process); the refresh token used
    /// is the stored one, unless the configured one has changed since.
    pub fn new(
        api: &'static str,
        tenant: &str,
        settings: OAuthSettings,
        default_client_auth: ClientAuth,
        policy: RetryPolicy,
        http: reqwest::Client,
        store: Option<Arc<TokenStore>>,
    ) -> Result<OAuthTokens, String> {
        let grant = settings.grant()?;
        let mut refresh_token = settings.refresh_token.clone();
        let seeded_from = settings.refresh_token.as_ref().map(fingerprint);
        if grant == Grant::RefreshToken {
            let store = store.as_ref().ok_or(
                "oauth with a refresh_token needs [enrichment.token_store] (dir and key): refresh tokens rotate, and the new one must survive a restart",
            )?;
            let stored = store.load(api, tenant).map_err(|err| err.to_string())?;
            if let Some(stored) = stored
                && Some(&stored.seeded_from) == seeded_from.as_ref()
            {
                refresh_token = Some(Secret::new(stored.refresh_token));
            }
        }
        // The token endpoint is called rarely; its budget only guards bursts.
        let budget = RequestBudget::new(10, Duration::from_secs(10));
        Ok(OAuthTokens {
            api,
            tenant: tenant.to_owned(),
            client_auth: settings.client_auth.unwrap_or(default_client_auth),
            settings,
            grant,
            client: ApiClient::new(api, http, policy, budget),
            store,
            seeded_from,
            state: tokio::sync::Mutex::new(State {
                current: None,
                refresh_token,
            }),
        })
    }

    /// A usable access token: the current one, or a renewed one when it is
    /// about to expire.
    pub async fn access_token(&self) -> Result<Secret, ApiError> {
        let mut state = self.state.lock().await;
        if let Some(current) = &state.current
            && current.renew_at > Instant::now()
        {
            return Ok(current.token.clone());
        }
        self.renew(&mut state).await
    }

    /// The API refused `used` (401): the next call renews, unless another
    /// caller already has.
    pub async fn rejected(&self, used: &Secret) {
        let mut state = self.state.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|current| current.token.expose() == used.expose())
        {
            state.current = None;
        }
    }

    async fn renew(&self, state: &mut State) -> Result<Secret, ApiError> {
        let mut form: Vec<(&str, String)> = match self.grant {
            Grant::RefreshToken => vec![
                ("grant_type", "refresh_token".into()),
                (
                    "refresh_token",
                    state
                        .refresh_token
                        .as_ref()
                        .map(|t| t.expose().to_owned())
                        .unwrap_or_default(),
                ),
            ],
            Grant::ClientCredentials => {
                let mut form = vec![("grant_type", "client_credentials".to_owned())];
                if let Some(scope) = &self.settings.scope {
                    form.push(("scope", scope.clone()));
                }
                form
            }
            Grant::JwtBearer => {
                let key = self
                    .settings
                    .private_key
                    .as_ref()
                    .ok_or_else(|| self.not_configured("no private_key"))
                    .and_then(|pem| signing_key(pem).map_err(|e| self.not_configured(&e)))?;
                let assertion = jwt_assertion(
                    &key,
                    &self.settings.client_id,
                    self.settings.username.as_deref().unwrap_or_default(),
                    &self.settings.audience(),
                    SystemTime::now(),
                )
                .map_err(|e| self.not_configured(&e))?;
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                    ),
                    ("assertion", assertion),
                ]
            }
        };
        // The JWT bearer grant is authenticated by its assertion alone.
        let secret = match self.grant {
            Grant::RefreshToken | Grant::ClientCredentials => self.settings.client_secret.clone(),
            Grant::JwtBearer => None,
        };
        if self.client_auth == ClientAuth::Body
            && let Some(secret) = &secret
        {
            form.push(("client_id", self.settings.client_id.clone()));
            form.push(("client_secret", secret.expose().to_owned()));
        }
        let answer = self
            .client
            .get_json("oauth_token", || {
                let request = self
                    .client
                    .http()
                    .post(&self.settings.token_url)
                    .header("accept", "application/json")
                    .form(&form);
                match (self.client_auth, &secret) {
                    (ClientAuth::Basic, Some(secret)) => {
                        request.basic_auth(&self.settings.client_id, Some(secret.expose()))
                    }
                    _ => request,
                }
            })
            .await
            .map_err(|err| self.explained(err))?;
        let Fetched::Found(answer) = answer else {
            return Err(self.not_configured("the token endpoint answered 404: check token_url"));
        };
        // Some token endpoints (Zoho's) refuse a grant with 200 and an error.
        if let Some(error) = answer.get("error").and_then(Value::as_str) {
            return Err(self.explained(ApiError::Refused {
                api: self.api,
                status: 200,
                body: format!("{{\"error\":\"{error}\"}}"),
            }));
        }
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                self.not_configured("the token endpoint's answer has no access_token")
            })?;
        if let Some(rotated) = answer.get("refresh_token").and_then(Value::as_str)
            && state
                .refresh_token
                .as_ref()
                .is_some_and(|old| old.expose() != rotated)
        {
            // Kept before it is relied on: the old one may already be void.
            let rotated = Secret::new(rotated);
            if let Some(store) = &self.store {
                let stored = Stored {
                    refresh_token: rotated.expose().to_owned(),
                    seeded_from: self.seeded_from.clone().unwrap_or_default(),
                };
                if let Err(err) = store.save(self.api, &self.tenant, &stored) {
                    tracing::error!(api = self.api, tenant = %self.tenant, error = %err, "the rotated refresh token could not be stored; a restart will need a new authorization");
                }
            }
            state.refresh_token = Some(rotated);
            tracing::info!(api = self.api, tenant = %self.tenant, "refresh token rotated and stored");
        }
        let lifetime = answer
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(self.settings.access_token_lifetime_seconds);
        let lifetime = Duration::from_secs(lifetime);
        let token = Secret::new(token);
        state.current = Some(Current {
            token: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE.min(lifetime / 2)),
        });
        tracing::debug!(api = self.api, tenant = %self.tenant, lifetime_s = lifetime.as_secs(), "access token renewed");
        Ok(token)
    }

    fn not_configured(&self, reason: &str) -> ApiError {
        ApiError::NotConfigured {
            api: self.api,
            reason: format!("OAuth for tenant {}: {reason}", self.tenant),
        }
    }

    /// A refusal from the token endpoint, said in terms of what to do.
    fn explained(&self, err: ApiError) -> ApiError {
        match err {
            ApiError::Refused { status, body, .. } => {
                let hint = if body.contains("invalid_grant") || body.contains("invalid_code") {
                    " (the refresh token or assertion was not accepted: authorize the app anew, or check username, audience and the app's certificate)"
                } else if body.contains("invalid_client") {
                    " (check client_id, client_secret and client_auth)"
                } else {
                    ""
                };
                ApiError::Refused {
                    api: self.api,
                    status,
                    body: format!("token endpoint: {body}{hint}"),
                }
            }
            other => other,
        }
    }
}

/// How an API's requests are authorized: a fixed token from the settings,
/// or OAuth 2.0 tokens renewed before expiry and on `401`.
pub enum Credentials {
    Fixed(Secret),
    OAuth(Box<OAuthTokens>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Fixed(_) => f.write_str("Credentials::Fixed(***)"),
            Credentials::OAuth(tokens) => tokens.fmt(f),
        }
    }
}

impl Credentials {
    /// A tenant's credentials for `api` from its `access_token` or `oauth`
    /// settings (the fixed token first); `None` when it has neither.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: &'static str,
        tenant: &str,
        access_token: Option<&Secret>,
        oauth: Option<&OAuthSettings>,
        default_client_auth: ClientAuth,
        policy: &RetryPolicy,
        http: reqwest::Client,
        store: Option<Arc<TokenStore>>,
    ) -> Result<Option<Credentials>, String> {
        Ok(match (access_token, oauth) {
            (Some(token), _) => Some(Credentials::Fixed(token.clone())),
            (None, Some(oauth)) => Some(Credentials::OAuth(Box::new(OAuthTokens::new(
                api,
                tenant,
                oauth.clone(),
                default_client_auth,
                policy.clone(),
                http,
                store,
            )?))),
            (None, None) => None,
        })
    }

    pub async fn token(&self) -> Result<Secret, ApiError> {
        match self {
            Credentials::Fixed(token) => Ok(token.clone()),
            Credentials::OAuth(tokens) => tokens.access_token().await,
        }
    }

    /// `used` was refused: an OAuth token is renewed on next use; a fixed
    /// one stays as configured.
    pub async fn rejected(&self, used: &Secret) {
        if let Credentials::OAuth(tokens) = self {
            tokens.rejected(used).await;
        }
    }

    pub fn renewable(&self) -> bool {
        matches!(self, Credentials::OAuth(_))
    }

    /// Runs `call` with a current token; under OAuth a `401` renews the
    /// token and runs it once more.
    pub async fn with_token<T, Call, Answer>(&self, call: Call) -> Result<T, ApiError>
    where
        Call: Fn(Secret) -> Answer,
        Answer: Future<Output = Result<T, ApiError>>,
    {
        let mut renewed = false;
        loop {
            let token = self.token().await?;
            match call(token.clone()).await {
                Err(ApiError::Refused { status: 401, .. }) if !renewed && self.renewable() => {
                    self.rejected(&token).await;
                    renewed = true;
                }
                other => return other,
            }
        }
    }
}

/// A tenant's access to one API: where it is and how it is authorized.
pub struct Access<'a> {
    pub api: &'static str,
    pub tenant: &'a str,
    /// The API's address; `None`: the tenant has no access configured.
    pub base_url: Option<&'a String>,
    pub access_token: Option<&'a Secret>,
    pub oauth: Option<&'a OAuthSettings>,
    /// How the platform's token endpoint takes the client's id and secret.
    pub client_auth: ClientAuth,
    pub budget: RequestBudget,
}

/// An API client whose requests carry a tenant's credentials: the retrying,
/// rate-limited [`ApiClient`], the API's address and the [`Credentials`].
pub struct AuthorizedClient {
    pub client: ApiClient,
    /// Without a trailing slash.
    pub base_url: String,
    pub credentials: Credentials,
}

impl AuthorizedClient {
    /// The client `access` describes; `None` when the tenant has no address
    /// or no credentials for the API.
    pub fn new(
        access: Access<'_>,
        settings: &crate::EnrichmentSettings,
        http: reqwest::Client,
        store: Option<Arc<TokenStore>>,
    ) -> Result<Option<AuthorizedClient>, String> {
        let Some(base_url) = access.base_url else {
            return Ok(None);
        };
        let policy = RetryPolicy::from_settings(settings);
        let Some(credentials) = Credentials::new(
            access.api,
            access.tenant,
            access.access_token,
            access.oauth,
            access.client_auth,
            &policy,
            http.clone(),
            store,
        )?
        else {
            return Ok(None);
        };
        Ok(Some(AuthorizedClient {
            client: ApiClient::new(access.api, http, policy, access.budget),
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
        }))
    }

    /// A read (see [`ApiClient::get_json`]) built by `request` from the
    /// HTTP client and a current token; under OAuth a `401` renews the token
    /// and reads once more.
    pub async fn get_json(
        &self,
        endpoint: &'static str,
        request: impl Fn(&reqwest::Client, &Secret) -> reqwest::RequestBuilder,
    ) -> Result<Fetched, ApiError> {
        let (client, request) = (&self.client, &request);
        self.credentials
            .with_token(|token| async move {
                client
                    .get_json(endpoint, || request(client.http(), &token))
                    .await
            })
            .await
    }
}

#[cfg(test)]
mod tests;
