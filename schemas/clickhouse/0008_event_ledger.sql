-- Which events are loaded: one row per pipeline_event_id, written by the
-- activator only after the insert into events (and so every materialized
-- view fed by it) has succeeded. The activator's de-duplication reads this,
-- not events: an insert that failed half way (events written, a view not)
-- is not in the ledger, so its retry inserts the whole batch again, and
-- every view is idempotent to that (replacing tables, distinct-count and
-- set states).
CREATE TABLE IF NOT EXISTS tributary.event_ledger (
    event_date Date,
    pipeline_tenant String,
    pipeline_event_id String,
    complete UInt8,
    loaded_at_micro Int64
) ENGINE = ReplacingMergeTree(loaded_at_micro)
PARTITION BY toYYYYMM(event_date)
ORDER BY (event_date, pipeline_tenant, pipeline_event_id);
