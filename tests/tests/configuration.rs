//! The documented configuration matches the code: the example file lists
//! every key with its real default, the README documents each one, and the
//! shipped configurations load.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use tributary_collector::{CollectorConfig, CollectorSettings};
use tributary_config::{KafkaSettings, Loader, TelemetrySettings, TopicSettings};
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
    ];
    let mut keys = Vec::new();
    for (section, value) in sections {
        let Value::Object(fields) = value.expect("serializable") else {
            panic!("{section}")
        };
        for (key, value) in fields {
            keys.push((format!("{section}.{key}"), value));
        }
    }
    keys
}

#[test]
fn the_example_lists_every_key_with_its_default() {
    let example = as_json(&repo_file("tributary.example.toml"));
    let mut documented = BTreeSet::new();
    for (section, fields) in example.as_object().expect("table") {
        if section == "tenants" {
            continue;
        }
        for key in fields.as_object().expect("section").keys() {
            documented.insert(format!("{section}.{key}"));
        }
    }
    let in_code: BTreeSet<String> = default_keys().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        documented, in_code,
        "tributary.example.toml and the code list the same keys"
    );
    for (key, default) in default_keys() {
        let (section, field) = key.split_once('.').expect("dotted");
        let example_value = &example[section][field];
        if key == "kafka.librdkafka" {
            continue; // an open table, empty by default
        }
        assert_eq!(
            example_value, &default,
            "{key}: the example shows the real default"
        );
    }
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
    for key in [
        "tenants.<tenant>.pipedrive.username",
        "tenants.<tenant>.pipedrive.password",
    ] {
        assert!(
            readme.contains(&format!("`{key}`")),
            "README documents `{key}`"
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
        serde_json::json!({"username": "pipedrive-acme", "password": "from-env"}),
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
