-- Contact PII lives in its own database, which the dashboard user cannot
-- read (ClickHouse 18.16 has no column grants; a database is the unit its
-- users.xml can allow). Latest known values per contact.
CREATE DATABASE IF NOT EXISTS tributary_pii;

CREATE TABLE IF NOT EXISTS tributary_pii.contacts (
    pipeline_tenant String,
    contact_id Int64,
    contact_email Nullable(String),
    contact_first_name Nullable(String),
    contact_last_name Nullable(String),
    contact_phone_number Nullable(String),
    contact_position Nullable(String),
    email_validation_email Nullable(String),
    event_timestamp_micro Int64,
    pipeline_event_id String
) ENGINE = ReplacingMergeTree(event_timestamp_micro)
ORDER BY (pipeline_tenant, contact_id);
