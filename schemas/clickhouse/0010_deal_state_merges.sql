-- A `merged` event is about the deal that survives a merge; the deal merged
-- away gets a `deleted` event of its own (webhooks v1; v2 sends a change
-- with merged_from_id and a delete with merged_to_id). The survivor stays in
-- the pipeline: only deletions mark a deal deleted.
DROP TABLE IF EXISTS tributary.deal_state_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.deal_state_mv TO tributary.deal_state AS
SELECT
    pipeline_tenant,
    assumeNotNull(deal_id) AS deal_id,
    event_timestamp_micro AS version,
    toUInt8(event_action = 'deleted' OR ifNull(deal_status, '') = 'deleted') AS is_deleted,
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

-- Survivors of merges loaded before: their merge event again, now not
-- deleted. Same version, inserted later: the replacing table keeps this one.
INSERT INTO tributary.deal_state
SELECT
    pipeline_tenant,
    assumeNotNull(deal_id) AS deal_id,
    event_timestamp_micro AS version,
    toUInt8(event_action = 'deleted' OR ifNull(deal_status, '') = 'deleted') AS is_deleted,
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
WHERE event_object = 'deal' AND deal_id IS NOT NULL AND event_action = 'merged';
