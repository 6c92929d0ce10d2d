-- Today's snapshot of open deals by stage, for every tenant, taken by the
-- activator from the current deals. Re-running it adds a newer
-- snapshot_at for the day; readers take the newest one. Values are in the
-- tenant's home currency; deals in a currency without a rate are counted in
-- unconverted_deals and left out of the values. A deal's own probability,
-- when set, overrides its stage's.
INSERT INTO tributary.pipeline_snapshots
SELECT
    tenant,
    toDate(now()) AS day,
    now() AS snapshot_at,
    source,
    account,
    deal_pipeline_id AS pipeline_id,
    deal_stage_id AS stage_id,
    anyIf(home, home_rate > 0) AS home_currency,
    count() AS deals,
    sumIf(deal_amount * home_rate, home_rate > 0) AS value,
    sumIf(deal_amount * home_rate * probability / 100, home_rate > 0) AS weighted_value,
    countIf(home_rate = 0) AS unconverted_deals
FROM
(
    SELECT tenant, source, account, deal_pipeline_id, deal_stage_id, deal_amount, home_rate, home,
        ifNull(deal_own_probability, ifNull(stage_probability, 0)) AS probability
    FROM
    (
        SELECT tenant, source, account, deal_pipeline_id, deal_stage_id, deal_amount, deal_currency,
            deal_own_probability, stage_probability
        FROM
        (
            SELECT tenant, source, account, pipeline_id AS deal_pipeline_id, stage_id AS deal_stage_id,
                toFloat64(amount) AS deal_amount, currency AS deal_currency, probability AS deal_own_probability
            FROM tributary.current_deals FINAL
            WHERE deleted = 0 AND merged_into = '' AND status = 'open'
        ) AS open_deals
        ALL LEFT JOIN
        (
            SELECT tenant, source, account, id AS deal_stage_id, probability AS stage_probability
            FROM tributary.stages FINAL
        ) AS stage_probabilities USING (tenant, source, account, deal_stage_id)
    ) AS staged_deals
    ALL LEFT JOIN
    (
        SELECT tenant, currency AS deal_currency,
            argMax(rate, tuple(multiIf(rate <= 0, 0, origin = 'operator', 2, 1), updated_at)) AS home_rate,
            argMax(home_currency, tuple(multiIf(rate <= 0, 0, origin = 'operator', 2, 1), updated_at)) AS home
        FROM tributary.currency_rates FINAL
        GROUP BY tenant, currency
    ) AS rates USING (tenant, deal_currency)
)
GROUP BY tenant, source, account, deal_pipeline_id, deal_stage_id;
