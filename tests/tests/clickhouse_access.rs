//! The dashboard user of the local ClickHouse (deploy/local/clickhouse/users.xml):
//! reads the pipeline database, cannot read contact PII, cannot write.
#![cfg(feature = "clickhouse-tests")]

use tributary_clickhouse::ClickHouseSettings;
use tributary_tests::clickhouse::shared_url;

async fn as_dashboards(sql: &str) -> (bool, String) {
    let response = reqwest::Client::new()
        .post(shared_url())
        .basic_auth("dashboards", Some("dashboards"))
        .body(sql.to_owned())
        .send()
        .await
        .expect("ClickHouse answers");
    let ok = response.status().is_success();
    (ok, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_dashboard_user_reads_metrics_but_not_contacts_and_writes_nothing() {
    // The real database names: the user's grant is for `tributary` only.
    let settings = ClickHouseSettings {
        url: shared_url(),
        validation: false,
        ..ClickHouseSettings::default()
    };
    let client = tributary_clickhouse::client(&settings);
    tributary_clickhouse::apply_migrations(&client, &settings)
        .await
        .expect("migrations");

    let (ok, text) = as_dashboards("SELECT count() FROM tributary.deals").await;
    assert!(ok, "{text}");
    let (ok, text) = as_dashboards("SELECT count() FROM tributary_pii.contact_details").await;
    assert!(!ok && text.contains("Access denied"), "{text}");
    let (ok, text) =
        as_dashboards("INSERT INTO tributary.pipeline_snapshots (tenant) VALUES ('x')").await;
    assert!(!ok && text.to_lowercase().contains("readonly"), "{text}");
}
