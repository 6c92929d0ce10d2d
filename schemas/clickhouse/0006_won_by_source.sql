-- Won deals with their total value by marketing source and day won (the
-- Omni report). Fed by status transitions: a deal becoming won counts +1 and
-- +value, a won deal reopened or lost counts -1 and -value. Each transition
-- is kept as a set member keyed by its pipeline_event_id, so a transition
-- that reaches this view twice (an insert retried after ClickHouse failed
-- half way through it) still counts once. Read with
-- arraySum(t -> t.2, groupUniqArrayMerge(transitions)) for the deal count and
-- arraySum(t -> t.2 * t.3, ...) for the value. Completions of partial events
-- (pipeline_first_copy = 0) are skipped: the first copy already counted.
CREATE TABLE IF NOT EXISTS tributary.won_by_source (
    pipeline_tenant String,
    deal_pipeline_id Int64,
    marketing_source String,
    day Date,
    transitions AggregateFunction(groupUniqArray, Tuple(String, Int8, Float64))
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (pipeline_tenant, deal_pipeline_id, marketing_source, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.won_by_source_mv TO tributary.won_by_source AS
SELECT
    pipeline_tenant,
    ifNull(deal_pipeline_id, 0) AS deal_pipeline_id,
    ifNull(marketing_source, '') AS marketing_source,
    toDate(ifNull(deal_won_time, event_time)) AS day,
    groupUniqArrayState((
        pipeline_event_id,
        toInt8(if(ifNull(deal_status, '') = 'won', 1, -1)),
        toFloat64(ifNull(deal_value, 0))
    )) AS transitions
FROM tributary.events
WHERE event_object = 'deal' AND pipeline_first_copy = 1
  AND (
        (ifNull(deal_status, '') = 'won' AND (event_action = 'added' OR ifNull(deal_previous_status, 'won') != 'won'))
     OR (ifNull(deal_previous_status, '') = 'won' AND ifNull(deal_status, 'won') != 'won')
  )
GROUP BY pipeline_tenant, deal_pipeline_id, marketing_source, day;
