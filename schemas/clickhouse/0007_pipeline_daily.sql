-- Daily pipeline snapshots: open deals by stage (count, value, weighted
-- value), written by the activator from deal_state every few minutes. Each
-- run replaces the day's rows; readers take the newest snapshot_at per day.
CREATE TABLE IF NOT EXISTS tributary.pipeline_daily (
    pipeline_tenant String,
    day Date,
    snapshot_at DateTime('UTC'),
    deal_pipeline_id Int64,
    deal_pipeline String,
    deal_stage_id Int64,
    deal_stage String,
    deal_stage_order_nr Int64,
    deals UInt64,
    value Float64,
    weighted_value Float64
) ENGINE = ReplacingMergeTree(snapshot_at)
PARTITION BY toYYYYMM(day)
ORDER BY (pipeline_tenant, day, deal_pipeline_id, deal_stage_id, snapshot_at);
