-- The canonical model: one set of tables for every source, so the same
-- dashboards work for any CRM. Ids are strings, kept verbatim; every record
-- is keyed by tenant, source, source account and the platform's id.
--
-- Entities (deals, activities, companies, contacts, users) are written by
-- the activator as partial change rows into a `<entity>_changes` table
-- (Null engine: nothing is stored there), each row listing the fields it
-- knows in `known`. A materialized view keeps, per record and field, the
-- value of the newest change that knew it: argMax over (source version,
-- receipt time) of (value, present). So a change that carries one field
-- never blanks the others, a late or replayed change never regresses a
-- field, and loading a change twice is harmless. `<entity>_resolved`
-- computes each record's current row from those states (a field's value, or
-- '' / 0 / NULL when it is null or was never known). Merging states is too
-- slow for dashboards over many records, so the activator keeps
-- `current_<entity>`: after each load it inserts the resolved rows of the
-- records the load touched, versioned by the number of changes merged (a
-- row resolved later has merged at least as many), before it records the
-- events as loaded. Dashboards read `current_<entity> FINAL`.
--
-- The tables of earlier releases (events, deal_state, stage_transitions,
-- activity_daily, won_by_source, pipeline_daily, stage_entries,
-- event_ledger, tributary_pii.contacts) are left as they were and no longer
-- fed; their views are dropped. README "Upgrading" says how to rebuild the
-- new tables from the raw topic.
CREATE DATABASE IF NOT EXISTS tributary;

CREATE DATABASE IF NOT EXISTS tributary_pii;

DROP TABLE IF EXISTS tributary.deal_state_mv;

DROP TABLE IF EXISTS tributary.stage_transitions_mv;

DROP TABLE IF EXISTS tributary.activity_daily_mv;

DROP TABLE IF EXISTS tributary.won_by_source_mv;

DROP TABLE IF EXISTS tributary.stage_entries_mv;

-- Every loaded event, whatever its source: what it was about, the template
-- version that took it, its enrichment, and the enriched event itself. A
-- complete copy may replace a partial one (the newest enrichment wins); a
-- retried insert may leave a row twice until a merge: read with FINAL.
CREATE TABLE IF NOT EXISTS tributary.event_log (
    event_date Date,
    tenant String,
    source String,
    account String,
    event_id String,
    object String,
    remote_id String,
    action String,
    version_micro Int64,
    event_time DateTime('UTC'),
    template String,
    template_version UInt32,
    enrichment_status String,
    enrichment_missing Array(String),
    warnings Array(String),
    records UInt32,
    received_at_micro Int64,
    enriched_at_micro Int64,
    loaded_at_micro Int64,
    payload String
) ENGINE = ReplacingMergeTree(enriched_at_micro)
PARTITION BY toYYYYMM(event_date)
ORDER BY (event_date, tenant, event_id);

-- Which events are loaded, written only after every record of the batch
-- and its event_log rows are in. The activator's de-duplication reads it.
CREATE TABLE IF NOT EXISTS tributary.load_ledger (
    event_date Date,
    tenant String,
    event_id String,
    complete UInt8,
    loaded_at_micro Int64
) ENGINE = ReplacingMergeTree(loaded_at_micro)
PARTITION BY toYYYYMM(event_date)
ORDER BY (event_date, tenant, event_id);

-- Deals: one state row per deal, each field the value of the newest event
-- (by the source's own version, then receipt time) that knew it. Deleted
-- and merged-away deals keep their row: a late update cannot revive them.
CREATE TABLE IF NOT EXISTS tributary.deal_changes (
    tenant String,
    source String,
    account String,
    id String,
    version Int64,
    received Int64,
    known Array(String),
    deleted Nullable(UInt8),
    merged_into Nullable(String),
    title Nullable(String),
    amount Nullable(Decimal(18, 4)),
    amount_text Nullable(String),
    currency Nullable(String),
    pipeline_id Nullable(String),
    stage_id Nullable(String),
    status Nullable(String),
    probability Nullable(Float64),
    expected_close_date Nullable(Date),
    created_at Nullable(DateTime('UTC')),
    won_at Nullable(DateTime('UTC')),
    lost_at Nullable(DateTime('UTC')),
    closed_at Nullable(DateTime('UTC')),
    lost_reason Nullable(String),
    owner_id Nullable(String),
    company_id Nullable(String),
    contact_id Nullable(String),
    stage_changed_at Nullable(DateTime('UTC')),
    marketing_source Nullable(String),
    marketing_campaign Nullable(String),
    updated_at Nullable(DateTime('UTC'))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS tributary.deals (
    tenant String,
    source String,
    account String,
    id String,
    first_seen AggregateFunction(min, Int64),
    last_version AggregateFunction(max, Int64),
    changes AggregateFunction(count),
    deleted AggregateFunction(argMax, Tuple(UInt8, UInt8), Tuple(Int64, Int64)),
    merged_into AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    title AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    amount AggregateFunction(argMax, Tuple(Decimal(18, 4), UInt8), Tuple(Int64, Int64)),
    amount_text AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    currency AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    pipeline_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    stage_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    status AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    probability AggregateFunction(argMax, Tuple(Float64, UInt8), Tuple(Int64, Int64)),
    expected_close_date AggregateFunction(argMax, Tuple(Date, UInt8), Tuple(Int64, Int64)),
    created_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    won_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    lost_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    closed_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    lost_reason AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    owner_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    company_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    contact_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    stage_changed_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    marketing_source AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    marketing_campaign AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    updated_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64))
) ENGINE = AggregatingMergeTree
ORDER BY (tenant, source, account, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.deals_mv TO tributary.deals AS
SELECT
    tenant,
    source,
    account,
    id,
    minState(version) AS first_seen,
    maxState(version) AS last_version,
    countState() AS changes,
    argMaxStateIf(tuple(ifNull(deleted, toUInt8(0)), toUInt8(isNotNull(deleted))), tuple(version, received), has(known, 'deleted')) AS deleted,
    argMaxStateIf(tuple(ifNull(merged_into, ''), toUInt8(isNotNull(merged_into))), tuple(version, received), has(known, 'merged_into')) AS merged_into,
    argMaxStateIf(tuple(ifNull(title, ''), toUInt8(isNotNull(title))), tuple(version, received), has(known, 'title')) AS title,
    argMaxStateIf(tuple(ifNull(amount, toDecimal64(0, 4)), toUInt8(isNotNull(amount))), tuple(version, received), has(known, 'amount')) AS amount,
    argMaxStateIf(tuple(ifNull(amount_text, ''), toUInt8(isNotNull(amount_text))), tuple(version, received), has(known, 'amount_text')) AS amount_text,
    argMaxStateIf(tuple(ifNull(currency, ''), toUInt8(isNotNull(currency))), tuple(version, received), has(known, 'currency')) AS currency,
    argMaxStateIf(tuple(ifNull(pipeline_id, ''), toUInt8(isNotNull(pipeline_id))), tuple(version, received), has(known, 'pipeline_id')) AS pipeline_id,
    argMaxStateIf(tuple(ifNull(stage_id, ''), toUInt8(isNotNull(stage_id))), tuple(version, received), has(known, 'stage_id')) AS stage_id,
    argMaxStateIf(tuple(ifNull(status, ''), toUInt8(isNotNull(status))), tuple(version, received), has(known, 'status')) AS status,
    argMaxStateIf(tuple(ifNull(probability, toFloat64(0)), toUInt8(isNotNull(probability))), tuple(version, received), has(known, 'probability')) AS probability,
    argMaxStateIf(tuple(ifNull(expected_close_date, toDate(0)), toUInt8(isNotNull(expected_close_date))), tuple(version, received), has(known, 'expected_close_date')) AS expected_close_date,
    argMaxStateIf(tuple(ifNull(created_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(created_at))), tuple(version, received), has(known, 'created_at')) AS created_at,
    argMaxStateIf(tuple(ifNull(won_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(won_at))), tuple(version, received), has(known, 'won_at')) AS won_at,
    argMaxStateIf(tuple(ifNull(lost_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(lost_at))), tuple(version, received), has(known, 'lost_at')) AS lost_at,
    argMaxStateIf(tuple(ifNull(closed_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(closed_at))), tuple(version, received), has(known, 'closed_at')) AS closed_at,
    argMaxStateIf(tuple(ifNull(lost_reason, ''), toUInt8(isNotNull(lost_reason))), tuple(version, received), has(known, 'lost_reason')) AS lost_reason,
    argMaxStateIf(tuple(ifNull(owner_id, ''), toUInt8(isNotNull(owner_id))), tuple(version, received), has(known, 'owner_id')) AS owner_id,
    argMaxStateIf(tuple(ifNull(company_id, ''), toUInt8(isNotNull(company_id))), tuple(version, received), has(known, 'company_id')) AS company_id,
    argMaxStateIf(tuple(ifNull(contact_id, ''), toUInt8(isNotNull(contact_id))), tuple(version, received), has(known, 'contact_id')) AS contact_id,
    argMaxStateIf(tuple(ifNull(stage_changed_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(stage_changed_at))), tuple(version, received), has(known, 'stage_changed_at')) AS stage_changed_at,
    argMaxStateIf(tuple(ifNull(marketing_source, ''), toUInt8(isNotNull(marketing_source))), tuple(version, received), has(known, 'marketing_source')) AS marketing_source,
    argMaxStateIf(tuple(ifNull(marketing_campaign, ''), toUInt8(isNotNull(marketing_campaign))), tuple(version, received), has(known, 'marketing_campaign')) AS marketing_campaign,
    argMaxStateIf(tuple(ifNull(updated_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(updated_at))), tuple(version, received), has(known, 'updated_at')) AS updated_at
FROM tributary.deal_changes
GROUP BY tenant, source, account, id;

-- Each deal as it is now, computed from the states above.
CREATE VIEW IF NOT EXISTS tributary.deals_resolved AS
SELECT
    tenant,
    source,
    account,
    id,
    minMerge(first_seen) AS first_seen,
    maxMerge(last_version) AS last_version,
    countMerge(changes) AS changes,
    argMaxMerge(deleted).1 AS deleted,
    argMaxMerge(merged_into).1 AS merged_into,
    argMaxMerge(title).1 AS title,
    argMaxMerge(amount).1 AS amount,
    argMaxMerge(amount_text).1 AS amount_text,
    argMaxMerge(currency).1 AS currency,
    argMaxMerge(pipeline_id).1 AS pipeline_id,
    argMaxMerge(stage_id).1 AS stage_id,
    argMaxMerge(status).1 AS status,
    if(argMaxMerge(probability).2 = 1, argMaxMerge(probability).1, NULL) AS probability,
    if(argMaxMerge(expected_close_date).2 = 1, argMaxMerge(expected_close_date).1, NULL) AS expected_close_date,
    if(argMaxMerge(created_at).2 = 1, argMaxMerge(created_at).1, NULL) AS created_at,
    if(argMaxMerge(won_at).2 = 1, argMaxMerge(won_at).1, NULL) AS won_at,
    if(argMaxMerge(lost_at).2 = 1, argMaxMerge(lost_at).1, NULL) AS lost_at,
    if(argMaxMerge(closed_at).2 = 1, argMaxMerge(closed_at).1, NULL) AS closed_at,
    argMaxMerge(lost_reason).1 AS lost_reason,
    argMaxMerge(owner_id).1 AS owner_id,
    argMaxMerge(company_id).1 AS company_id,
    argMaxMerge(contact_id).1 AS contact_id,
    if(argMaxMerge(stage_changed_at).2 = 1, argMaxMerge(stage_changed_at).1, NULL) AS stage_changed_at,
    argMaxMerge(marketing_source).1 AS marketing_source,
    argMaxMerge(marketing_campaign).1 AS marketing_campaign,
    if(argMaxMerge(updated_at).2 = 1, argMaxMerge(updated_at).1, NULL) AS updated_at
FROM tributary.deals
GROUP BY tenant, source, account, id;

-- Each deal as it is now, kept by the activator: after loading changes it
-- inserts the resolved rows of the deals they touched. The row of the most
-- changes wins, so read with FINAL.
CREATE TABLE IF NOT EXISTS tributary.current_deals (
    tenant String,
    source String,
    account String,
    id String,
    first_seen Int64,
    last_version Int64,
    changes UInt64,
    deleted UInt8,
    merged_into String,
    title String,
    amount Decimal(18, 4),
    amount_text String,
    currency String,
    pipeline_id String,
    stage_id String,
    status String,
    probability Nullable(Float64),
    expected_close_date Nullable(Date),
    created_at Nullable(DateTime('UTC')),
    won_at Nullable(DateTime('UTC')),
    lost_at Nullable(DateTime('UTC')),
    closed_at Nullable(DateTime('UTC')),
    lost_reason String,
    owner_id String,
    company_id String,
    contact_id String,
    stage_changed_at Nullable(DateTime('UTC')),
    marketing_source String,
    marketing_campaign String,
    updated_at Nullable(DateTime('UTC'))
) ENGINE = ReplacingMergeTree(changes)
ORDER BY (tenant, source, account, id);

-- Activities (calls, emails, meetings, tasks, notes), merged field by field
-- like deals: a reassigned, retyped, undone or deleted activity is counted
-- once, where it is now.
CREATE TABLE IF NOT EXISTS tributary.activity_changes (
    tenant String,
    source String,
    account String,
    id String,
    version Int64,
    received Int64,
    known Array(String),
    deleted Nullable(UInt8),
    merged_into Nullable(String),
    kind Nullable(String),
    raw_type Nullable(String),
    direction Nullable(String),
    subject Nullable(String),
    due_date Nullable(Date),
    due_at Nullable(DateTime('UTC')),
    done Nullable(UInt8),
    done_at Nullable(DateTime('UTC')),
    owner_id Nullable(String),
    deal_id Nullable(String),
    contact_id Nullable(String),
    company_id Nullable(String),
    created_at Nullable(DateTime('UTC')),
    updated_at Nullable(DateTime('UTC'))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS tributary.activities (
    tenant String,
    source String,
    account String,
    id String,
    first_seen AggregateFunction(min, Int64),
    last_version AggregateFunction(max, Int64),
    changes AggregateFunction(count),
    deleted AggregateFunction(argMax, Tuple(UInt8, UInt8), Tuple(Int64, Int64)),
    merged_into AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    kind AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    raw_type AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    direction AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    subject AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    due_date AggregateFunction(argMax, Tuple(Date, UInt8), Tuple(Int64, Int64)),
    due_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    done AggregateFunction(argMax, Tuple(UInt8, UInt8), Tuple(Int64, Int64)),
    done_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    owner_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    deal_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    contact_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    company_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    created_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    updated_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64))
) ENGINE = AggregatingMergeTree
ORDER BY (tenant, source, account, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.activities_mv TO tributary.activities AS
SELECT
    tenant,
    source,
    account,
    id,
    minState(version) AS first_seen,
    maxState(version) AS last_version,
    countState() AS changes,
    argMaxStateIf(tuple(ifNull(deleted, toUInt8(0)), toUInt8(isNotNull(deleted))), tuple(version, received), has(known, 'deleted')) AS deleted,
    argMaxStateIf(tuple(ifNull(merged_into, ''), toUInt8(isNotNull(merged_into))), tuple(version, received), has(known, 'merged_into')) AS merged_into,
    argMaxStateIf(tuple(ifNull(kind, ''), toUInt8(isNotNull(kind))), tuple(version, received), has(known, 'kind')) AS kind,
    argMaxStateIf(tuple(ifNull(raw_type, ''), toUInt8(isNotNull(raw_type))), tuple(version, received), has(known, 'raw_type')) AS raw_type,
    argMaxStateIf(tuple(ifNull(direction, ''), toUInt8(isNotNull(direction))), tuple(version, received), has(known, 'direction')) AS direction,
    argMaxStateIf(tuple(ifNull(subject, ''), toUInt8(isNotNull(subject))), tuple(version, received), has(known, 'subject')) AS subject,
    argMaxStateIf(tuple(ifNull(due_date, toDate(0)), toUInt8(isNotNull(due_date))), tuple(version, received), has(known, 'due_date')) AS due_date,
    argMaxStateIf(tuple(ifNull(due_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(due_at))), tuple(version, received), has(known, 'due_at')) AS due_at,
    argMaxStateIf(tuple(ifNull(done, toUInt8(0)), toUInt8(isNotNull(done))), tuple(version, received), has(known, 'done')) AS done,
    argMaxStateIf(tuple(ifNull(done_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(done_at))), tuple(version, received), has(known, 'done_at')) AS done_at,
    argMaxStateIf(tuple(ifNull(owner_id, ''), toUInt8(isNotNull(owner_id))), tuple(version, received), has(known, 'owner_id')) AS owner_id,
    argMaxStateIf(tuple(ifNull(deal_id, ''), toUInt8(isNotNull(deal_id))), tuple(version, received), has(known, 'deal_id')) AS deal_id,
    argMaxStateIf(tuple(ifNull(contact_id, ''), toUInt8(isNotNull(contact_id))), tuple(version, received), has(known, 'contact_id')) AS contact_id,
    argMaxStateIf(tuple(ifNull(company_id, ''), toUInt8(isNotNull(company_id))), tuple(version, received), has(known, 'company_id')) AS company_id,
    argMaxStateIf(tuple(ifNull(created_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(created_at))), tuple(version, received), has(known, 'created_at')) AS created_at,
    argMaxStateIf(tuple(ifNull(updated_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(updated_at))), tuple(version, received), has(known, 'updated_at')) AS updated_at
FROM tributary.activity_changes
GROUP BY tenant, source, account, id;

-- Each activity as it is now, computed from the states above.
CREATE VIEW IF NOT EXISTS tributary.activities_resolved AS
SELECT
    tenant,
    source,
    account,
    id,
    minMerge(first_seen) AS first_seen,
    maxMerge(last_version) AS last_version,
    countMerge(changes) AS changes,
    argMaxMerge(deleted).1 AS deleted,
    argMaxMerge(merged_into).1 AS merged_into,
    argMaxMerge(kind).1 AS kind,
    argMaxMerge(raw_type).1 AS raw_type,
    argMaxMerge(direction).1 AS direction,
    argMaxMerge(subject).1 AS subject,
    if(argMaxMerge(due_date).2 = 1, argMaxMerge(due_date).1, NULL) AS due_date,
    if(argMaxMerge(due_at).2 = 1, argMaxMerge(due_at).1, NULL) AS due_at,
    argMaxMerge(done).1 AS done,
    if(argMaxMerge(done_at).2 = 1, argMaxMerge(done_at).1, NULL) AS done_at,
    argMaxMerge(owner_id).1 AS owner_id,
    argMaxMerge(deal_id).1 AS deal_id,
    argMaxMerge(contact_id).1 AS contact_id,
    argMaxMerge(company_id).1 AS company_id,
    if(argMaxMerge(created_at).2 = 1, argMaxMerge(created_at).1, NULL) AS created_at,
    if(argMaxMerge(updated_at).2 = 1, argMaxMerge(updated_at).1, NULL) AS updated_at
FROM tributary.activities
GROUP BY tenant, source, account, id;

-- Each activity as it is now, kept by the activator: after loading changes it
-- inserts the resolved rows of the activities they touched. The row of the most
-- changes wins, so read with FINAL.
CREATE TABLE IF NOT EXISTS tributary.current_activities (
    tenant String,
    source String,
    account String,
    id String,
    first_seen Int64,
    last_version Int64,
    changes UInt64,
    deleted UInt8,
    merged_into String,
    kind String,
    raw_type String,
    direction String,
    subject String,
    due_date Nullable(Date),
    due_at Nullable(DateTime('UTC')),
    done UInt8,
    done_at Nullable(DateTime('UTC')),
    owner_id String,
    deal_id String,
    contact_id String,
    company_id String,
    created_at Nullable(DateTime('UTC')),
    updated_at Nullable(DateTime('UTC'))
) ENGINE = ReplacingMergeTree(changes)
ORDER BY (tenant, source, account, id);

-- Companies (organizations, accounts, customers).
CREATE TABLE IF NOT EXISTS tributary.company_changes (
    tenant String,
    source String,
    account String,
    id String,
    version Int64,
    received Int64,
    known Array(String),
    deleted Nullable(UInt8),
    merged_into Nullable(String),
    name Nullable(String),
    domain Nullable(String),
    owner_id Nullable(String),
    industry Nullable(String),
    size Nullable(String),
    created_at Nullable(DateTime('UTC')),
    updated_at Nullable(DateTime('UTC'))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS tributary.companies (
    tenant String,
    source String,
    account String,
    id String,
    first_seen AggregateFunction(min, Int64),
    last_version AggregateFunction(max, Int64),
    changes AggregateFunction(count),
    deleted AggregateFunction(argMax, Tuple(UInt8, UInt8), Tuple(Int64, Int64)),
    merged_into AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    name AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    domain AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    owner_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    industry AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    size AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    created_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    updated_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64))
) ENGINE = AggregatingMergeTree
ORDER BY (tenant, source, account, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.companies_mv TO tributary.companies AS
SELECT
    tenant,
    source,
    account,
    id,
    minState(version) AS first_seen,
    maxState(version) AS last_version,
    countState() AS changes,
    argMaxStateIf(tuple(ifNull(deleted, toUInt8(0)), toUInt8(isNotNull(deleted))), tuple(version, received), has(known, 'deleted')) AS deleted,
    argMaxStateIf(tuple(ifNull(merged_into, ''), toUInt8(isNotNull(merged_into))), tuple(version, received), has(known, 'merged_into')) AS merged_into,
    argMaxStateIf(tuple(ifNull(name, ''), toUInt8(isNotNull(name))), tuple(version, received), has(known, 'name')) AS name,
    argMaxStateIf(tuple(ifNull(domain, ''), toUInt8(isNotNull(domain))), tuple(version, received), has(known, 'domain')) AS domain,
    argMaxStateIf(tuple(ifNull(owner_id, ''), toUInt8(isNotNull(owner_id))), tuple(version, received), has(known, 'owner_id')) AS owner_id,
    argMaxStateIf(tuple(ifNull(industry, ''), toUInt8(isNotNull(industry))), tuple(version, received), has(known, 'industry')) AS industry,
    argMaxStateIf(tuple(ifNull(size, ''), toUInt8(isNotNull(size))), tuple(version, received), has(known, 'size')) AS size,
    argMaxStateIf(tuple(ifNull(created_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(created_at))), tuple(version, received), has(known, 'created_at')) AS created_at,
    argMaxStateIf(tuple(ifNull(updated_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(updated_at))), tuple(version, received), has(known, 'updated_at')) AS updated_at
FROM tributary.company_changes
GROUP BY tenant, source, account, id;

-- Each company as it is now, computed from the states above.
CREATE VIEW IF NOT EXISTS tributary.companies_resolved AS
SELECT
    tenant,
    source,
    account,
    id,
    minMerge(first_seen) AS first_seen,
    maxMerge(last_version) AS last_version,
    countMerge(changes) AS changes,
    argMaxMerge(deleted).1 AS deleted,
    argMaxMerge(merged_into).1 AS merged_into,
    argMaxMerge(name).1 AS name,
    argMaxMerge(domain).1 AS domain,
    argMaxMerge(owner_id).1 AS owner_id,
    argMaxMerge(industry).1 AS industry,
    argMaxMerge(size).1 AS size,
    if(argMaxMerge(created_at).2 = 1, argMaxMerge(created_at).1, NULL) AS created_at,
    if(argMaxMerge(updated_at).2 = 1, argMaxMerge(updated_at).1, NULL) AS updated_at
FROM tributary.companies
GROUP BY tenant, source, account, id;

-- Each company as it is now, kept by the activator: after loading changes it
-- inserts the resolved rows of the companies they touched. The row of the most
-- changes wins, so read with FINAL.
CREATE TABLE IF NOT EXISTS tributary.current_companies (
    tenant String,
    source String,
    account String,
    id String,
    first_seen Int64,
    last_version Int64,
    changes UInt64,
    deleted UInt8,
    merged_into String,
    name String,
    domain String,
    owner_id String,
    industry String,
    size String,
    created_at Nullable(DateTime('UTC')),
    updated_at Nullable(DateTime('UTC'))
) ENGINE = ReplacingMergeTree(changes)
ORDER BY (tenant, source, account, id);

-- Contacts without personal data (names, email and phone are in
-- tributary_pii.contact_details).
CREATE TABLE IF NOT EXISTS tributary.contact_changes (
    tenant String,
    source String,
    account String,
    id String,
    version Int64,
    received Int64,
    known Array(String),
    deleted Nullable(UInt8),
    merged_into Nullable(String),
    company_id Nullable(String),
    owner_id Nullable(String),
    email_status Nullable(String),
    created_at Nullable(DateTime('UTC')),
    updated_at Nullable(DateTime('UTC'))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS tributary.contacts (
    tenant String,
    source String,
    account String,
    id String,
    first_seen AggregateFunction(min, Int64),
    last_version AggregateFunction(max, Int64),
    changes AggregateFunction(count),
    deleted AggregateFunction(argMax, Tuple(UInt8, UInt8), Tuple(Int64, Int64)),
    merged_into AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    company_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    owner_id AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    email_status AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    created_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64)),
    updated_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64))
) ENGINE = AggregatingMergeTree
ORDER BY (tenant, source, account, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.contacts_mv TO tributary.contacts AS
SELECT
    tenant,
    source,
    account,
    id,
    minState(version) AS first_seen,
    maxState(version) AS last_version,
    countState() AS changes,
    argMaxStateIf(tuple(ifNull(deleted, toUInt8(0)), toUInt8(isNotNull(deleted))), tuple(version, received), has(known, 'deleted')) AS deleted,
    argMaxStateIf(tuple(ifNull(merged_into, ''), toUInt8(isNotNull(merged_into))), tuple(version, received), has(known, 'merged_into')) AS merged_into,
    argMaxStateIf(tuple(ifNull(company_id, ''), toUInt8(isNotNull(company_id))), tuple(version, received), has(known, 'company_id')) AS company_id,
    argMaxStateIf(tuple(ifNull(owner_id, ''), toUInt8(isNotNull(owner_id))), tuple(version, received), has(known, 'owner_id')) AS owner_id,
    argMaxStateIf(tuple(ifNull(email_status, ''), toUInt8(isNotNull(email_status))), tuple(version, received), has(known, 'email_status')) AS email_status,
    argMaxStateIf(tuple(ifNull(created_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(created_at))), tuple(version, received), has(known, 'created_at')) AS created_at,
    argMaxStateIf(tuple(ifNull(updated_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(updated_at))), tuple(version, received), has(known, 'updated_at')) AS updated_at
FROM tributary.contact_changes
GROUP BY tenant, source, account, id;

-- Each contact as it is now, computed from the states above.
CREATE VIEW IF NOT EXISTS tributary.contacts_resolved AS
SELECT
    tenant,
    source,
    account,
    id,
    minMerge(first_seen) AS first_seen,
    maxMerge(last_version) AS last_version,
    countMerge(changes) AS changes,
    argMaxMerge(deleted).1 AS deleted,
    argMaxMerge(merged_into).1 AS merged_into,
    argMaxMerge(company_id).1 AS company_id,
    argMaxMerge(owner_id).1 AS owner_id,
    argMaxMerge(email_status).1 AS email_status,
    if(argMaxMerge(created_at).2 = 1, argMaxMerge(created_at).1, NULL) AS created_at,
    if(argMaxMerge(updated_at).2 = 1, argMaxMerge(updated_at).1, NULL) AS updated_at
FROM tributary.contacts
GROUP BY tenant, source, account, id;

-- Each contact as it is now, kept by the activator: after loading changes it
-- inserts the resolved rows of the contacts they touched. The row of the most
-- changes wins, so read with FINAL.
CREATE TABLE IF NOT EXISTS tributary.current_contacts (
    tenant String,
    source String,
    account String,
    id String,
    first_seen Int64,
    last_version Int64,
    changes UInt64,
    deleted UInt8,
    merged_into String,
    company_id String,
    owner_id String,
    email_status String,
    created_at Nullable(DateTime('UTC')),
    updated_at Nullable(DateTime('UTC'))
) ENGINE = ReplacingMergeTree(changes)
ORDER BY (tenant, source, account, id);

-- Users: reps, owners, technicians, assignees.
CREATE TABLE IF NOT EXISTS tributary.user_changes (
    tenant String,
    source String,
    account String,
    id String,
    version Int64,
    received Int64,
    known Array(String),
    deleted Nullable(UInt8),
    name Nullable(String),
    email Nullable(String),
    active Nullable(UInt8),
    updated_at Nullable(DateTime('UTC'))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS tributary.users (
    tenant String,
    source String,
    account String,
    id String,
    first_seen AggregateFunction(min, Int64),
    last_version AggregateFunction(max, Int64),
    changes AggregateFunction(count),
    deleted AggregateFunction(argMax, Tuple(UInt8, UInt8), Tuple(Int64, Int64)),
    name AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    email AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    active AggregateFunction(argMax, Tuple(UInt8, UInt8), Tuple(Int64, Int64)),
    updated_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64))
) ENGINE = AggregatingMergeTree
ORDER BY (tenant, source, account, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.users_mv TO tributary.users AS
SELECT
    tenant,
    source,
    account,
    id,
    minState(version) AS first_seen,
    maxState(version) AS last_version,
    countState() AS changes,
    argMaxStateIf(tuple(ifNull(deleted, toUInt8(0)), toUInt8(isNotNull(deleted))), tuple(version, received), has(known, 'deleted')) AS deleted,
    argMaxStateIf(tuple(ifNull(name, ''), toUInt8(isNotNull(name))), tuple(version, received), has(known, 'name')) AS name,
    argMaxStateIf(tuple(ifNull(email, ''), toUInt8(isNotNull(email))), tuple(version, received), has(known, 'email')) AS email,
    argMaxStateIf(tuple(ifNull(active, toUInt8(0)), toUInt8(isNotNull(active))), tuple(version, received), has(known, 'active')) AS active,
    argMaxStateIf(tuple(ifNull(updated_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(updated_at))), tuple(version, received), has(known, 'updated_at')) AS updated_at
FROM tributary.user_changes
GROUP BY tenant, source, account, id;

-- Each user as it is now, computed from the states above.
CREATE VIEW IF NOT EXISTS tributary.users_resolved AS
SELECT
    tenant,
    source,
    account,
    id,
    minMerge(first_seen) AS first_seen,
    maxMerge(last_version) AS last_version,
    countMerge(changes) AS changes,
    argMaxMerge(deleted).1 AS deleted,
    argMaxMerge(name).1 AS name,
    argMaxMerge(email).1 AS email,
    argMaxMerge(active).1 AS active,
    if(argMaxMerge(updated_at).2 = 1, argMaxMerge(updated_at).1, NULL) AS updated_at
FROM tributary.users
GROUP BY tenant, source, account, id;

-- Each user as it is now, kept by the activator: after loading changes it
-- inserts the resolved rows of the users they touched. The row of the most
-- changes wins, so read with FINAL.
CREATE TABLE IF NOT EXISTS tributary.current_users (
    tenant String,
    source String,
    account String,
    id String,
    first_seen Int64,
    last_version Int64,
    changes UInt64,
    deleted UInt8,
    name String,
    email String,
    active UInt8,
    updated_at Nullable(DateTime('UTC'))
) ENGINE = ReplacingMergeTree(changes)
ORDER BY (tenant, source, account, id);

-- Contacts' personal data, in the database the dashboard user cannot read.
CREATE TABLE IF NOT EXISTS tributary_pii.contact_changes (
    tenant String,
    source String,
    account String,
    id String,
    version Int64,
    received Int64,
    known Array(String),
    first_name Nullable(String),
    last_name Nullable(String),
    email Nullable(String),
    phone Nullable(String),
    position Nullable(String),
    updated_at Nullable(DateTime('UTC'))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS tributary_pii.contact_details (
    tenant String,
    source String,
    account String,
    id String,
    first_seen AggregateFunction(min, Int64),
    last_version AggregateFunction(max, Int64),
    first_name AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    last_name AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    email AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    phone AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    position AggregateFunction(argMax, Tuple(String, UInt8), Tuple(Int64, Int64)),
    updated_at AggregateFunction(argMax, Tuple(DateTime('UTC'), UInt8), Tuple(Int64, Int64))
) ENGINE = AggregatingMergeTree
ORDER BY (tenant, source, account, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tributary_pii.contact_details_mv TO tributary_pii.contact_details AS
SELECT
    tenant,
    source,
    account,
    id,
    minState(version) AS first_seen,
    maxState(version) AS last_version,
    argMaxStateIf(tuple(ifNull(first_name, ''), toUInt8(isNotNull(first_name))), tuple(version, received), has(known, 'first_name')) AS first_name,
    argMaxStateIf(tuple(ifNull(last_name, ''), toUInt8(isNotNull(last_name))), tuple(version, received), has(known, 'last_name')) AS last_name,
    argMaxStateIf(tuple(ifNull(email, ''), toUInt8(isNotNull(email))), tuple(version, received), has(known, 'email')) AS email,
    argMaxStateIf(tuple(ifNull(phone, ''), toUInt8(isNotNull(phone))), tuple(version, received), has(known, 'phone')) AS phone,
    argMaxStateIf(tuple(ifNull(position, ''), toUInt8(isNotNull(position))), tuple(version, received), has(known, 'position')) AS position,
    argMaxStateIf(tuple(ifNull(updated_at, toDateTime(0, 'UTC')), toUInt8(isNotNull(updated_at))), tuple(version, received), has(known, 'updated_at')) AS updated_at
FROM tributary_pii.contact_changes
GROUP BY tenant, source, account, id;

-- Pipelines and their stages, as the platform defines them: the newest
-- definition wins. A stage's outcome says what reaching it means (open, won
-- or lost: Pipedrive's stages are all open, HubSpot's closed won and closed
-- lost stages are not); its probability is the CRM's, in percent.
CREATE TABLE IF NOT EXISTS tributary.pipelines (
    tenant String,
    source String,
    account String,
    id String,
    version Int64,
    name String,
    display_order Int64,
    archived UInt8
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, source, account, id);

CREATE TABLE IF NOT EXISTS tributary.stages (
    tenant String,
    source String,
    account String,
    id String,
    version Int64,
    pipeline_id String,
    name String,
    display_order Int64,
    probability Nullable(Float64),
    outcome String,
    archived UInt8
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, source, account, id);

-- Every stage or status a deal entered, append-only: its creation (no from
-- stage), stage changes, and status changes (won, lost, reopened). Keyed by
-- deal and time, so a replayed transition replaces itself (read with FINAL).
CREATE TABLE IF NOT EXISTS tributary.deal_stage_transitions (
    tenant String,
    source String,
    account String,
    deal_id String,
    entered_at_micro Int64,
    entered_at DateTime('UTC'),
    pipeline_id String,
    from_stage_id String,
    to_stage_id String,
    from_status String,
    to_status String,
    change_source String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(entered_at)
ORDER BY (tenant, source, account, deal_id, entered_at_micro);

-- Custom fields, keyed by the platform's stable field key: their
-- definitions (enumeration options as ids and labels) and their values per
-- record (enumerations as option ids). The newest version wins.
CREATE TABLE IF NOT EXISTS tributary.custom_field_definitions (
    tenant String,
    source String,
    account String,
    object String,
    field_key String,
    version Int64,
    label String,
    field_type String,
    option_ids Array(String),
    option_labels Array(String)
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, source, account, object, field_key);

CREATE TABLE IF NOT EXISTS tributary.custom_field_values (
    tenant String,
    source String,
    account String,
    object String,
    id String,
    field_key String,
    version Int64,
    value Nullable(String)
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, source, account, object, id, field_key);

-- A tenant's home currency and the rates that convert other currencies into
-- it (home units per unit of `currency`; the home currency itself has rate
-- 1). `origin` is `configuration` (written by the activator at start from
-- [tenants.<t>]) or `operator` (loaded with `tributary rates`); an
-- operator's rate wins over the configured one. Amounts are never summed
-- across currencies: deals in a currency without a rate are shown apart.
CREATE TABLE IF NOT EXISTS tributary.currency_rates (
    tenant String,
    currency String,
    origin String,
    home_currency String,
    rate Float64,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (tenant, currency, origin);

-- Daily snapshots of open deals by stage, in the tenant's home currency,
-- written by the activator every few minutes from the current state. Each
-- run adds a newer snapshot_at for the day; readers take the newest.
CREATE TABLE IF NOT EXISTS tributary.pipeline_snapshots (
    tenant String,
    day Date,
    snapshot_at DateTime('UTC'),
    source String,
    account String,
    pipeline_id String,
    stage_id String,
    home_currency String,
    deals UInt64,
    value Float64,
    weighted_value Float64,
    unconverted_deals UInt64
) ENGINE = ReplacingMergeTree(snapshot_at)
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, day, source, account, pipeline_id, stage_id, snapshot_at);
