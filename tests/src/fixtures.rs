//! The sample webhooks under `tests/fixtures/`, as raw bytes.

use std::path::PathBuf;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One fixture's bytes, e.g. `pipedrive("v1/deal-added.json")`.
pub fn pipedrive(name: &str) -> Vec<u8> {
    let path = dir().join("pipedrive").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every Pipedrive fixture, as (`v1/deal-added.json`, bytes), sorted by name.
pub fn all_pipedrive() -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    for version in ["v1", "v2"] {
        let folder = dir().join("pipedrive").join(version);
        let entries =
            std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
        for entry in entries {
            let path = entry.expect("fixture entry").path();
            if path.extension().is_some_and(|ext| ext == "json") {
                let name = format!(
                    "{version}/{}",
                    path.file_name().expect("name").to_string_lossy()
                );
                all.push((name, std::fs::read(&path).expect("fixture")));
            }
        }
    }
    all.sort();
    all
}

/// One HubSpot fixture's bytes, e.g. `hubspot("app/contact-batch.json")`.
pub fn hubspot(name: &str) -> Vec<u8> {
    let path = dir().join("hubspot").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
