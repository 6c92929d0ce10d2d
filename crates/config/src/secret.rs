//! Secrets from configuration: never printed, compared in constant time.

use std::fmt;

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A configured secret (webhook password, API token, signing key).
///
/// `Debug` and `Display` print a placeholder, so a secret cannot reach a log
/// line by accident. Comparison hashes both sides first so that neither the
/// content nor the length of the secret leaks through timing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's value, for the one place that must send it (an API header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a candidate received from outside.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let expected = Sha256::digest(self.0.as_bytes());
        let given = Sha256::digest(candidate);
        bool::from(expected.ct_eq(&given))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient_string(deserializer).map(Secret)
    }
}

/// Deserializes text that may arrive as a number or boolean: an environment
/// override like `..._PASSWORD=123456` is parsed as an integer before it
/// reaches the service. Use with `#[serde(deserialize_with = "lenient_string")]`.
pub fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Uint(u64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Raw::deserialize(deserializer)? {
        Raw::Text(s) => s,
        Raw::Int(n) => n.to_string(),
        Raw::Uint(n) => n.to_string(),
        Raw::Float(n) => n.to_string(),
        Raw::Bool(b) => b.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
    }

    #[test]
    fn matches_only_the_exact_value() {
        let secret = Secret::new("s3cret");
        assert!(secret.matches(b"s3cret"));
        assert!(!secret.matches(b"s3cre"));
        assert!(!secret.matches(b"s3cret "));
        assert!(!secret.matches(b""));
    }

    #[test]
    fn numbers_from_the_environment_become_text() {
        let secret: Secret = serde_json::from_str("123456").expect("number");
        assert!(secret.matches(b"123456"));
    }
}
