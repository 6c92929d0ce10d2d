//! Configuration for every Tributary service.
//!
//! One TOML file, named by `TRIBUTARY_CONFIG` (default `tributary.toml` in the
//! working directory when it exists), then environment variables on top:
//! `TRIBUTARY_<SECTION>__<KEY>`, nested with double underscores, for example
//! `TRIBUTARY_KAFKA__BROKERS` or `TRIBUTARY_TENANTS__ACME__PIPEDRIVE__PASSWORD`.
//! Every key has a default that boots against the local services started by
//! `deploy/local/up.sh`, except tenants, which must be configured.
//!
//! Each service extracts its own typed view (see [`Loader::extract`]) built
//! from the shared sections defined here plus its own section.

mod secret;
mod shared;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;

pub use secret::{Secret, lenient_string};
pub use shared::{
    CurrencySettings, KafkaSettings, LogFormat, TENANT_SETTINGS, TelemetrySettings, Tenants,
    TopicSettings, default_instance_id, enrichment_retry_group, is_currency_code,
};

/// The environment variable naming the configuration file.
pub const CONFIG_PATH_VAR: &str = "TRIBUTARY_CONFIG";
/// The file read when `TRIBUTARY_CONFIG` is not set, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "tributary.toml";
/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "TRIBUTARY_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} named by {CONFIG_PATH_VAR} does not exist")]
    MissingFile { path: PathBuf },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        // figment's error already names the key and where its value came from.
        ConfigError::Invalid(err.to_string())
    }
}

/// Where configuration comes from: an optional TOML file plus the environment.
#[derive(Clone)]
pub struct Loader {
    figment: Figment,
    file: Option<PathBuf>,
}

/// The file only: the merged values hold every secret of the configuration.
impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// The standard sources: `TRIBUTARY_CONFIG` (or `./tributary.toml`), then
    /// `TRIBUTARY_*` environment variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        let file = match std::env::var_os(CONFIG_PATH_VAR) {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(ConfigError::MissingFile { path });
                }
                Some(path)
            }
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        Ok(Self::with_file(file.as_deref()))
    }

    /// A specific file (if any) plus `TRIBUTARY_*` environment variables.
    pub fn with_file(file: Option<&Path>) -> Self {
        let mut figment = Figment::new();
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(env_provider());
        Loader {
            figment,
            file: file.map(Path::to_path_buf),
        }
    }

    /// Configuration given as TOML text, with no environment overrides.
    /// Used by tests and tools that build their configuration in code.
    pub fn from_toml_str(toml: &str) -> Self {
        Loader {
            figment: Figment::from(Toml::string(toml)),
            file: None,
        }
    }

    /// The file that was read, if any (for the startup log line).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Extracts a service's typed configuration.
    pub fn extract<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        Ok(self.figment.extract()?)
    }
}

fn env_provider() -> Env {
    // `TRIBUTARY_CONFIG` names the file; it is not itself a key.
    Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"])
}

#[cfg(test)]
// figment's `Jail` closures must return its (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(default)]
        kafka: KafkaSettings,
        #[serde(default)]
        topics: TopicSettings,
        #[serde(default)]
        telemetry: TelemetrySettings,
        #[serde(default)]
        tenants: Tenants,
    }

    #[test]
    fn defaults_boot_against_local_services() {
        figment::Jail::expect_with(|_jail| {
            let sample: Sample = Loader::with_file(None).extract().expect("defaults");
            assert_eq!(sample.kafka.brokers, "127.0.0.1:9092");
            assert_eq!(sample.topics.raw, "tributary.raw");
            assert_eq!(sample.topics.enriched, "tributary.enriched");
            assert_eq!(sample.topics.dead_letter, "tributary.dead-letter");
            assert_eq!(sample.telemetry.log_format, LogFormat::Human);
            assert!(sample.tenants.is_empty());
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_including_nested_tenant_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custom.toml",
                r#"
                [kafka]
                brokers = "file:9092"
                [tenants.acme.pipedrive]
                username = "hook"
                password = "from-file"
                "#,
            )?;
            jail.set_env("TRIBUTARY_CONFIG", "custom.toml");
            jail.set_env("TRIBUTARY_KAFKA__BROKERS", "env:9092");
            // A numeric-looking secret must stay a string.
            jail.set_env("TRIBUTARY_TENANTS__ACME__PIPEDRIVE__PASSWORD", "123456");
            let loader = Loader::from_env().expect("loads");
            assert_eq!(loader.file(), Some(Path::new("custom.toml")));
            let sample: Sample = loader.extract().expect("extracts");
            assert_eq!(sample.kafka.brokers, "env:9092");
            let section = sample
                .tenants
                .section("acme", "pipedrive")
                .expect("section");
            assert_eq!(section["username"], "hook");
            let password: Secret =
                serde_json::from_value(section["password"].clone()).expect("secret");
            assert!(password.matches(b"123456"));
            Ok(())
        });
    }

    #[test]
    fn missing_named_file_is_an_error_not_a_silent_default() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TRIBUTARY_CONFIG", "nope.toml");
            let err = Loader::from_env().expect_err("missing file");
            assert!(err.to_string().contains("nope.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn typos_in_a_section_are_rejected_with_the_key_name() {
        let err = Loader::from_toml_str("[kafka]\nbrokerz = \"x\"\n")
            .extract::<Sample>()
            .expect_err("unknown key");
        assert!(err.to_string().contains("brokerz"), "{err}");
    }
}
