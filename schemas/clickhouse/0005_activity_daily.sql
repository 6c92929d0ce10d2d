-- Done activities by rep, type and day (the day each was marked done).
-- Distinct-count and max states are idempotent: the same activity seen again,
-- or updated while done, does not count twice.
CREATE TABLE IF NOT EXISTS tributary.activity_daily (
    pipeline_tenant String,
    day Date,
    user_id Int64,
    activity_type String,
    done AggregateFunction(uniqExact, Int64),
    last_done_at AggregateFunction(max, DateTime('UTC')),
    user_name AggregateFunction(argMax, String, Int64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (pipeline_tenant, day, user_id, activity_type);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.activity_daily_mv TO tributary.activity_daily AS
SELECT
    pipeline_tenant,
    toDate(ifNull(activity_marked_as_done_time, event_time)) AS day,
    ifNull(activity_user_id, 0) AS user_id,
    ifNull(activity_type, '') AS activity_type,
    uniqExactState(assumeNotNull(activity_id)) AS done,
    maxState(ifNull(activity_marked_as_done_time, event_time)) AS last_done_at,
    argMaxState(ifNull(activity_user_name, ''), event_timestamp_micro) AS user_name
FROM tributary.events
WHERE event_object = 'activity' AND activity_id IS NOT NULL
  AND activity_done = 1 AND event_action != 'deleted'
GROUP BY pipeline_tenant, day, user_id, activity_type;
