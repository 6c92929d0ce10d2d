-- Today's snapshot of open deals by stage, taken by the activator from
-- deal_state. Re-running it adds a newer snapshot_at for the day; readers
-- take the newest one. A deal's own probability, when set, overrides its
-- stage's (as in Pipedrive).
INSERT INTO tributary.pipeline_daily
SELECT
    pipeline_tenant,
    toDate(now()) AS day,
    now() AS snapshot_at,
    deal_pipeline_id,
    any(ifNull(deal_pipeline, '')) AS deal_pipeline,
    deal_stage_id,
    any(ifNull(deal_stage, '')) AS deal_stage,
    any(ifNull(deal_stage_order_nr, 0)) AS deal_stage_order_nr,
    count() AS deals,
    sum(deal_value) AS value,
    sum(deal_value * ifNull(deal_probability, ifNull(deal_stage_probability, 0)) / 100) AS weighted_value
FROM tributary.deal_state FINAL
WHERE is_deleted = 0 AND deal_status = 'open'
GROUP BY pipeline_tenant, deal_pipeline_id, deal_stage_id
