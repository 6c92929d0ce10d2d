-- Every stage a deal entered: the stage it was added in and each stage it
-- moved to. The conversion table and the calibrated probabilities read it
-- (stage_transitions lacks the stage a deal was added in). A replayed entry
-- has the same key and replaces itself; readers count distinct deals.
CREATE TABLE IF NOT EXISTS tributary.stage_entries (
    pipeline_tenant String,
    deal_pipeline_id Int64,
    deal_id Int64,
    stage_id Int64,
    stage String,
    stage_order_nr Int64,
    stage_probability Float64,
    entered_at_micro Int64,
    entered_at DateTime('UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(entered_at)
ORDER BY (pipeline_tenant, deal_pipeline_id, deal_id, stage_id, entered_at_micro);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.stage_entries_mv TO tributary.stage_entries AS
SELECT
    pipeline_tenant,
    ifNull(deal_pipeline_id, 0) AS deal_pipeline_id,
    assumeNotNull(deal_id) AS deal_id,
    assumeNotNull(deal_stage_id) AS stage_id,
    ifNull(deal_stage, '') AS stage,
    ifNull(deal_stage_order_nr, 0) AS stage_order_nr,
    ifNull(deal_stage_probability, 0) AS stage_probability,
    event_timestamp_micro AS entered_at_micro,
    event_time AS entered_at
FROM tributary.events
WHERE event_object = 'deal' AND deal_id IS NOT NULL AND deal_stage_id IS NOT NULL
  AND (event_action = 'added' OR deal_previous_stage_id IS NOT NULL);

-- Entries of events loaded before this table existed.
INSERT INTO tributary.stage_entries
SELECT
    pipeline_tenant,
    ifNull(deal_pipeline_id, 0) AS deal_pipeline_id,
    assumeNotNull(deal_id) AS deal_id,
    assumeNotNull(deal_stage_id) AS stage_id,
    ifNull(deal_stage, '') AS stage,
    ifNull(deal_stage_order_nr, 0) AS stage_order_nr,
    ifNull(deal_stage_probability, 0) AS stage_probability,
    event_timestamp_micro AS entered_at_micro,
    event_time AS entered_at
FROM tributary.events
WHERE event_object = 'deal' AND deal_id IS NOT NULL AND deal_stage_id IS NOT NULL
  AND (event_action = 'added' OR deal_previous_stage_id IS NOT NULL);
