//! The documented configuration matches the code: the example file lists
//! every key with its real default, the README documents each one, and the
//! shipped configurations load.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use tributary_activator::{ActivatorConfig, ActivatorSettings};
use tributary_clickhouse::ClickHouseSettings;
use tributary_collector::{CollectorConfig, CollectorSettings};
use tributary_config::{KafkaSettings, Loader, TelemetrySettings, TopicSettings};
use tributary_enricher::{EnricherConfig, EnricherSettings, EnrichmentSettings};
use tributary_sources::Sources;

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn as_json(toml: &str) -> Value {
    Loader::from_toml_str(toml).extract().expect("valid TOML")
}

/// Keys whose default depends on the machine: the example shows them commented out.
const HOST_DEPENDENT: &[&str] = &["enricher.instance_id", "activator.instance_id"];

/// Keys without a default value, documented in the README.
const TENANT_PIPEDRIVE_KEYS: &[&str] = &[
    "username",
    "password",
    "api_base_url",
    "api_token",
    "requests_per_2s",
    "marketing_source_field",
    "marketing_campaign_field",
    "company_size_field",
    "industry_field",
    "pii_salt",
    "pii.contact_email",
    "pii.contact_first_name",
    "pii.contact_last_name",
    "pii.contact_phone_number",
    "pii.contact_position",
];

/// `[tenants.<tenant>.hubspot]`, documented in the README and shown
/// (commented out) in the example.
const TENANT_HUBSPOT_KEYS: &[&str] = &[
    "portal_id",
    "client_secret",
    "public_url",
    "legacy_signatures",
    "workflow_secret",
    "access_token",
    "api_base_url",
    "requests_per_10s",
    "marketing_source_property",
];

/// `prefix.key` for every leaf of a table; an empty table is a leaf (an open map).
fn flatten_keys(prefix: &str, value: &Value, into: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            for (key, value) in fields {
                flatten_keys(&format!("{prefix}.{key}"), value, into);
            }
        }
        _ => into.push((prefix.to_owned(), value.clone())),
    }
}

/// Every `section.key` of the code's defaults, with their values.
fn default_keys() -> Vec<(String, Value)> {
    let sections = [
        ("kafka", serde_json::to_value(KafkaSettings::default())),
        ("topics", serde_json::to_value(TopicSettings::default())),
        (
            "telemetry",
            serde_json::to_value(TelemetrySettings::default()),
        ),
        (
            "collector",
            serde_json::to_value(CollectorSettings::default()),
        ),
        (
            "enricher",
            serde_json::to_value(EnricherSettings::default()),
        ),
        (
            "enrichment",
            serde_json::to_value(EnrichmentSettings::default()),
        ),
        (
            "clickhouse",
            serde_json::to_value(ClickHouseSettings::default()),
        ),
        (
            "activator",
            serde_json::to_value(ActivatorSettings::default()),
        ),
    ];
    let mut keys = Vec::new();
    for (section, value) in sections {
        flatten_keys(section, &value.expect("serializable"), &mut keys);
    }
    // Secrets are not serialized; they have no default but are documented.
    keys.push(("enrichment.email_validation.api_key".into(), Value::Null));
    keys.push(("enrichment.token_store.key".into(), Value::Null));
    keys.push(("clickhouse.password".into(), Value::Null));
    keys
}

fn lookup<'a>(table: &'a Value, dotted: &str) -> &'a Value {
    dotted.split('.').fold(table, |value, key| &value[key])
}

#[test]
fn the_example_lists_every_key_with_its_default() {
    let example_text = repo_file("tributary.example.toml");
    let example = as_json(&example_text);
    let mut documented = Vec::new();
    for (section, fields) in example.as_object().expect("table") {
        if section != "tenants" {
            flatten_keys(section, fields, &mut documented);
        }
    }
    let documented: BTreeSet<String> = documented.into_iter().map(|(k, _)| k).collect();
    for (key, default) in default_keys() {
        let field = key.rsplit('.').next().expect("dotted");
        if HOST_DEPENDENT.contains(&key.as_str()) || default.is_null() {
            assert!(
                example_text.contains(&format!("# {field} = ")),
                "{key}: the example shows it commented out"
            );
            continue;
        }
        assert!(
            documented.contains(&key),
            "tributary.example.toml lists {key}"
        );
        assert_eq!(
            lookup(&example, &key),
            &default,
            "{key}: the example shows the real default"
        );
    }
    let in_code: BTreeSet<String> = default_keys().into_iter().map(|(k, _)| k).collect();
    let unknown: Vec<&String> = documented.difference(&in_code).collect();
    assert!(
        unknown.is_empty(),
        "the example lists keys the code does not know: {unknown:?}"
    );
    for key in TENANT_PIPEDRIVE_KEYS {
        let field = key.rsplit('.').next().expect("key");
        assert!(
            example_text.contains(&format!("{field} = ")),
            "the example shows tenants.<tenant>.pipedrive.{key}"
        );
    }
    let hubspot = &example_text[example_text
        .find("[tenants.acme.hubspot]")
        .expect("the example shows a HubSpot tenant")..];
    for key in TENANT_HUBSPOT_KEYS {
        assert!(
            hubspot.contains(&format!("# {key} = ")),
            "the example shows tenants.<tenant>.hubspot.{key}"
        );
    }
}

#[test]
fn the_documented_hubspot_keys_are_the_ones_the_code_reads() {
    // Every documented key is one the section takes (it refuses unknown keys).
    let section = serde_json::json!({
        "portal_id": "62515",
        "client_secret": "s",
        "public_url": "https://hooks.example.com",
        "legacy_signatures": false,
        "workflow_secret": "w",
        "access_token": "t",
        "api_base_url": "https://api.hubapi.com",
        "requests_per_10s": 190,
        "marketing_source_property": "hs_analytics_source",
    });
    let documented: BTreeSet<&str> = TENANT_HUBSPOT_KEYS.iter().copied().collect();
    let given: BTreeSet<&str> = section
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(given, documented);
    tributary_sources::hubspot::tenant_settings(&section).expect("every documented key is read");
}

#[test]
fn the_readme_documents_every_key() {
    let readme = repo_file("README.md");
    for (key, _) in default_keys() {
        assert!(
            readme.contains(&format!("`{key}`")),
            "README documents `{key}`"
        );
    }
    for key in TENANT_PIPEDRIVE_KEYS {
        assert!(
            readme.contains(&format!("`tenants.<tenant>.pipedrive.{key}`")),
            "README documents `tenants.<tenant>.pipedrive.{key}`"
        );
    }
    for key in TENANT_HUBSPOT_KEYS {
        assert!(
            readme.contains(&format!("`tenants.<tenant>.hubspot.{key}`")),
            "README documents `tenants.<tenant>.hubspot.{key}`"
        );
    }
}

#[test]
fn shipped_configurations_load_and_their_tenants_are_valid() {
    for path in ["tributary.example.toml", "deploy/local/tributary.toml"] {
        let config: CollectorConfig = Loader::from_toml_str(&repo_file(path))
            .extract()
            .expect(path);
        let sources =
            Sources::from_config(&config.tenants).unwrap_or_else(|e| panic!("{path}: {e}"));
        let enricher: EnricherConfig = Loader::from_toml_str(&repo_file(path))
            .extract()
            .unwrap_or_else(|e| panic!("{path} for the enricher: {e}"));
        Sources::from_config(&enricher.tenants).unwrap_or_else(|e| panic!("{path}: {e}"));
        let _: ActivatorConfig = Loader::from_toml_str(&repo_file(path))
            .extract()
            .unwrap_or_else(|e| panic!("{path} for the activator: {e}"));
        assert!(
            sources
                .get("pipedrive")
                .expect("pipedrive")
                .has_tenant("acme"),
            "{path}"
        );
    }
    // Production keeps passwords out of the file; compose supplies them.
    let mut production: CollectorConfig =
        Loader::from_toml_str(&repo_file("deploy/production/tributary.toml"))
            .extract()
            .expect("production");
    assert!(
        Sources::from_config(&production.tenants).is_err(),
        "a tenant without its password must not boot"
    );
    production.tenants.insert(
        "acme",
        "pipedrive",
        serde_json::json!({
            "username": "pipedrive-acme",
            "password": "from-env",
            "api_base_url": "https://acme.pipedrive.com",
            "api_token": "from-env",
        }),
    );
    Sources::from_config(&production.tenants).expect("with the password from the environment");
}

#[test]
fn compose_only_sets_keys_that_exist() {
    let compose = repo_file("docker-compose.yml");
    let known: BTreeSet<String> = default_keys().into_iter().map(|(k, _)| k).collect();
    let mut seen = 0;
    for line in compose.lines() {
        let Some(name) = line
            .trim()
            .split(':')
            .next()
            .and_then(|n| n.strip_prefix("TRIBUTARY_"))
        else {
            continue;
        };
        if name == "CONFIG" {
            continue;
        }
        seen += 1;
        let key = name.to_ascii_lowercase().replace("__", ".");
        let is_tenant_key = key.starts_with("tenants.") && key.split('.').count() == 4;
        assert!(
            known.contains(&key) || is_tenant_key,
            "docker-compose.yml sets unknown key {key}"
        );
    }
    assert!(
        seen >= 3,
        "compose configures the services through TRIBUTARY_* variables"
    );
}

/// Every secret a configuration can hold, each where it goes.
const SECRET_CONFIGURATION: &str = r#"
[kafka.librdkafka]
"security.protocol" = "SASL_SSL"
"sasl.username" = "tributary"
"sasl.password" = "kafka-sasl-secret-1"
"ssl.key.password" = "kafka-ssl-key-secret-2"

[enrichment.email_validation]
url = "https://verifier.example/v2/email-verifier"
api_key = "verifier-key-secret-3"

[clickhouse]
password = "clickhouse-secret-4"

[tenants.acme.pipedrive]
username = "pipedrive-acme"
password = "pipedrive-password-secret-5"
api_base_url = "https://acme.pipedrive.com"
api_token = "pipedrive-token-secret-6"
pii_salt = "pipedrive-salt-secret-7"

[tenants.acme.hubspot]
portal_id = "62515"
client_secret = "hubspot-client-secret-8"
workflow_secret = "hubspot-workflow-secret-9"
access_token = "hubspot-token-secret-10"
"#;

/// The secrets of [`SECRET_CONFIGURATION`] that appear in `text`.
fn secrets_in(text: &str) -> Vec<String> {
    (1..=10)
        .map(|n| format!("secret-{n}"))
        .filter(|secret| {
            // `secret-1` is a prefix of `secret-10`: match whole markers.
            text.match_indices(secret.as_str())
                .any(|(at, _)| !text[at + secret.len()..].starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect()
}

#[test]
fn no_configuration_type_shows_a_secret() {
    let loader = Loader::from_toml_str(SECRET_CONFIGURATION);
    let collector: CollectorConfig = loader.extract().expect("collector");
    let enricher: EnricherConfig = loader.extract().expect("enricher");
    let activator: ActivatorConfig = loader.extract().expect("activator");
    // The secrets are read: the test would prove nothing otherwise.
    assert_eq!(
        enricher
            .kafka
            .librdkafka
            .get("sasl.password")
            .map(String::as_str),
        Some("kafka-sasl-secret-1")
    );
    let formatted = [
        format!("{loader:?}"),
        format!("{collector:?} {collector:#?}"),
        format!("{enricher:?} {enricher:#?}"),
        format!("{activator:?} {activator:#?}"),
        format!("{:?}", collector.kafka),
        format!("{:?}", collector.tenants),
    ];
    for text in formatted {
        let shown = secrets_in(&text);
        assert!(shown.is_empty(), "{shown:?} shown in {text}");
    }
    // What is not a credential still shows, to debug a connection with.
    let kafka = format!("{:?}", collector.kafka);
    for shown in [
        "SASL_SSL",
        "\"sasl.username\": \"tributary\"",
        "sasl.password",
    ] {
        assert!(kafka.contains(shown), "{shown} in {kafka}");
    }
    let tenants = format!("{:?}", collector.tenants);
    assert!(
        tenants.contains("hubspot") && tenants.contains("pipedrive"),
        "{tenants}"
    );
}
