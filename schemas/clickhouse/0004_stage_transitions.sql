-- One row per stage change of a deal. The key includes the change's time, so
-- a replayed transition replaces itself (read with FINAL). Time in stage is
-- the gap to the deal's previous transition (or its add time), computed at
-- query time because a late transition can arrive after its successor.
CREATE TABLE IF NOT EXISTS tributary.stage_transitions (
    pipeline_tenant String,
    deal_id Int64,
    deal_pipeline_id Int64,
    from_stage_id Int64,
    from_stage Nullable(String),
    to_stage_id Int64,
    to_stage Nullable(String),
    to_stage_order_nr Nullable(Int64),
    changed_at_micro Int64,
    changed_at DateTime('UTC'),
    deal_add_time Nullable(DateTime('UTC')),
    deal_value Float64,
    deal_owner_id Nullable(Int64),
    pipeline_event_id String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(changed_at)
ORDER BY (pipeline_tenant, deal_id, changed_at_micro, to_stage_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.stage_transitions_mv TO tributary.stage_transitions AS
SELECT
    pipeline_tenant,
    assumeNotNull(deal_id) AS deal_id,
    ifNull(deal_pipeline_id, 0) AS deal_pipeline_id,
    assumeNotNull(deal_previous_stage_id) AS from_stage_id,
    deal_previous_stage AS from_stage,
    assumeNotNull(deal_stage_id) AS to_stage_id,
    deal_stage AS to_stage,
    deal_stage_order_nr AS to_stage_order_nr,
    event_timestamp_micro AS changed_at_micro,
    event_time AS changed_at,
    deal_add_time,
    ifNull(deal_value, 0) AS deal_value,
    deal_owner_id,
    pipeline_event_id
FROM tributary.events
WHERE event_object = 'deal' AND deal_id IS NOT NULL
  AND deal_previous_stage_id IS NOT NULL AND deal_stage_id IS NOT NULL;
