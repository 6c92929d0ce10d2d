-- The current state of each deal: the row with the newest
-- event_timestamp_micro wins, so a late or replayed older event never
-- regresses it. Read with FINAL (or argMax). Deleted and merged-away deals
-- stay as rows with is_deleted = 1, so a late update cannot resurrect them.
CREATE TABLE IF NOT EXISTS tributary.deal_state (
    pipeline_tenant String,
    deal_id Int64,
    version Int64,
    is_deleted UInt8,
    deal_title Nullable(String),
    deal_status String,
    deal_stage_id Int64,
    deal_stage Nullable(String),
    deal_stage_order_nr Nullable(Int64),
    deal_stage_probability Nullable(Float64),
    deal_pipeline_id Int64,
    deal_pipeline Nullable(String),
    deal_value Float64,
    deal_currency Nullable(String),
    deal_probability Nullable(Float64),
    deal_owner_id Nullable(Int64),
    deal_owner_name Nullable(String),
    deal_expected_close_date Nullable(Date),
    deal_add_time Nullable(DateTime('UTC')),
    deal_won_time Nullable(DateTime('UTC')),
    deal_lost_time Nullable(DateTime('UTC')),
    deal_lost_reason Nullable(String),
    deal_stage_change_time Nullable(DateTime('UTC')),
    marketing_source Nullable(String),
    marketing_campaign Nullable(String),
    organization_id Nullable(Int64),
    organization_name Nullable(String),
    contact_id Nullable(Int64),
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (pipeline_tenant, deal_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.deal_state_mv TO tributary.deal_state AS
SELECT
    pipeline_tenant,
    assumeNotNull(deal_id) AS deal_id,
    event_timestamp_micro AS version,
    toUInt8(event_action IN ('deleted', 'merged') OR ifNull(deal_status, '') = 'deleted') AS is_deleted,
    deal_title,
    ifNull(deal_status, '') AS deal_status,
    ifNull(deal_stage_id, 0) AS deal_stage_id,
    deal_stage,
    deal_stage_order_nr,
    deal_stage_probability,
    ifNull(deal_pipeline_id, 0) AS deal_pipeline_id,
    deal_pipeline,
    ifNull(deal_value, 0) AS deal_value,
    deal_currency,
    deal_probability,
    deal_owner_id,
    deal_owner_name,
    deal_expected_close_date,
    deal_add_time,
    deal_won_time,
    deal_lost_time,
    deal_lost_reason,
    deal_stage_change_time,
    marketing_source,
    marketing_campaign,
    organization_id,
    organization_name,
    contact_id,
    event_time AS updated_at
FROM tributary.events
WHERE event_object = 'deal' AND deal_id IS NOT NULL;
