//! The ground truth: what every panel of the "Sales operations" dashboard
//! must show, computed directly from the world (never from ClickHouse), and
//! the comparison of a panel's rows with it.
//!
//! Deal values are multiples of 50 and probabilities whole percents, so sums
//! of values and weighted values are exact in any order of addition.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use tributary_clickhouse::dashboard::Scope;

use crate::World;
use crate::model::{Deal, Stage, Tenant};
use crate::simulate::date;

/// Where a stage sorts: pipeline id, stage order, stage id.
type StageKey = (i64, i64, i64);

/// Rows of one panel: each with the columns the truth knows.
pub type PanelRows = Vec<Map<String, Value>>;

impl World {
    /// What every panel must show for `scope`, by panel title.
    pub fn expected_panels(&self, scope: &Scope) -> BTreeMap<&'static str, PanelRows> {
        self.tenant(&scope.tenant).expected_panels(scope)
    }
}

/// As ClickHouse renders a `DateTime('UTC')` in JSON.
fn clickhouse_time(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .expect("a valid time")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn row(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl Tenant {
    fn in_pipeline(&self, deal: &Deal, scope: &Scope) -> bool {
        scope
            .pipeline
            .is_none_or(|p| self.pipelines[deal.last.pipeline].id == p)
    }

    fn current<'a>(&'a self, scope: &'a Scope) -> impl Iterator<Item = &'a Deal> + 'a {
        self.deals
            .iter()
            .filter(move |d| !d.deleted && self.in_pipeline(d, scope))
    }

    fn stage_of(&self, deal: &Deal) -> &Stage {
        &self.pipelines[deal.last.pipeline].stages[deal.last.stage]
    }

    fn weight(&self, deal: &Deal) -> f64 {
        deal.last.value * deal.probability.unwrap_or(self.stage_of(deal).probability) / 100.0
    }

    pub fn closed_deals(&self) -> usize {
        self.deals
            .iter()
            .filter(|d| !d.deleted && matches!(d.last.status, "won" | "lost"))
            .count()
    }

    pub fn expected_panels(&self, scope: &Scope) -> BTreeMap<&'static str, PanelRows> {
        let in_range = |t: i64| scope.from <= t && t <= scope.to;
        let (from_day, to_day) = (date(scope.from), date(scope.to));
        let open: Vec<&Deal> = self
            .current(scope)
            .filter(|d| d.last.status == "open")
            .collect();
        let mut panels = BTreeMap::new();

        // KPI row.
        let won: Vec<&Deal> = self
            .current(scope)
            .filter(|d| d.last.status == "won" && d.last.won_time.is_some_and(in_range))
            .collect();
        let lost = self
            .current(scope)
            .filter(|d| d.last.status == "lost" && d.last.lost_time.is_some_and(in_range))
            .count() as u64;
        let won_count = won.len() as u64;
        let won_seconds: i64 = won
            .iter()
            .map(|d| d.last.won_time.unwrap_or_default() - d.add_time)
            .sum();
        panels.insert(
            "Pipeline KPIs",
            vec![row(vec![
                (
                    "open_pipeline_value",
                    json!(open.iter().map(|d| d.last.value).sum::<f64>()),
                ),
                (
                    "weighted_forecast",
                    json!(open.iter().map(|d| self.weight(d)).sum::<f64>()),
                ),
                ("won_deals", json!(won_count)),
                ("lost_deals", json!(lost)),
                (
                    "win_rate_percent",
                    json!(if won_count + lost == 0 {
                        0.0
                    } else {
                        (100 * won_count) as f64 / (won_count + lost) as f64
                    }),
                ),
                ("won_seconds", json!(won_seconds)),
                (
                    "velocity_days",
                    json!(if won_count == 0 {
                        0.0
                    } else {
                        won_seconds as f64 / won_count as f64 / 86_400.0
                    }),
                ),
            ])],
        );

        // Funnel: open deals by stage, in order.
        let mut by_stage: BTreeMap<StageKey, (usize, f64, &str, &str)> = BTreeMap::new();
        for deal in &open {
            let pipeline = &self.pipelines[deal.last.pipeline];
            let stage = self.stage_of(deal);
            let entry = by_stage
                .entry((pipeline.id, stage.order, stage.id))
                .or_insert((0, 0.0, pipeline.name, stage.name));
            entry.0 += 1;
            entry.1 += deal.last.value;
        }
        panels.insert(
            "Pipeline funnel: open deals by stage",
            by_stage
                .iter()
                .map(|((_, order, _), (deals, value, pipeline, stage))| {
                    row(vec![
                        ("pipeline", json!(pipeline)),
                        ("stage", json!(stage)),
                        ("stage_order", json!(order)),
                        ("deals", json!(deals)),
                        ("value", json!(value)),
                    ])
                })
                .collect(),
        );

        // Forecast by expected close month.
        let mut by_month: BTreeMap<NaiveDate, (usize, f64, f64)> = BTreeMap::new();
        for deal in &open {
            let month = deal.expected_close.with_day(1).expect("a first day");
            let entry = by_month.entry(month).or_default();
            entry.0 += 1;
            entry.1 += deal.last.value;
            entry.2 += self.weight(deal);
        }
        panels.insert(
            "Forecast by expected close month",
            by_month
                .iter()
                .map(|(month, (deals, value, weighted))| {
                    row(vec![
                        ("close_month", json!(month.to_string())),
                        ("deals", json!(deals)),
                        ("pipeline_value", json!(value)),
                        ("weighted_value", json!(weighted)),
                    ])
                })
                .collect(),
        );

        // Conversion: every entry counts, deleted deals included (history happened).
        let entries: Vec<(&Deal, i64, &Stage, i64)> = self
            .deals
            .iter()
            .flat_map(|d| {
                d.entries.iter().map(move |(p, s, at)| {
                    (
                        d,
                        self.pipelines[*p].id,
                        &self.pipelines[*p].stages[*s],
                        *at,
                    )
                })
            })
            .filter(|(_, pipeline, _, _)| scope.pipeline.is_none_or(|p| p == *pipeline))
            .collect();
        let mut furthest: HashMap<(i64, i64), i64> = HashMap::new();
        for (deal, pipeline, stage, _) in &entries {
            let f = furthest.entry((*pipeline, deal.id)).or_insert(0);
            *f = (*f).max(stage.order);
        }
        let mut conversion: BTreeMap<StageKey, (&str, BTreeSet<i64>, BTreeSet<i64>)> =
            BTreeMap::new();
        for (deal, pipeline, stage, at) in &entries {
            if !in_range(*at) {
                continue;
            }
            let entry = conversion
                .entry((*pipeline, stage.order, stage.id))
                .or_insert((stage.name, BTreeSet::new(), BTreeSet::new()));
            entry.1.insert(deal.id);
            if furthest[&(*pipeline, deal.id)] > stage.order {
                entry.2.insert(deal.id);
            }
        }
        panels.insert(
            "Stage-to-stage conversion",
            conversion
                .iter()
                .map(|((_, order, _), (name, entered, advanced))| {
                    let (entered, advanced) = (entered.len() as u64, advanced.len() as u64);
                    row(vec![
                        ("stage_name", json!(name)),
                        ("stage_order", json!(order)),
                        ("entered", json!(entered)),
                        ("advanced", json!(advanced)),
                        (
                            "pass_rate_percent",
                            json!((100 * advanced) as f64 / entered as f64),
                        ),
                    ])
                })
                .collect(),
        );

        // Calibrated probabilities, once the tenant has 50 closed deals.
        let mut calibration = Vec::new();
        if self.closed_deals() >= 50 {
            let mut stages: BTreeMap<StageKey, (&Stage, BTreeSet<i64>, BTreeSet<i64>)> =
                BTreeMap::new();
            for (deal, pipeline, stage, _) in &entries {
                let closed = !deal.deleted
                    && matches!(deal.last.status, "won" | "lost")
                    && self.pipelines[deal.last.pipeline].id == *pipeline;
                if !closed {
                    continue;
                }
                let entry = stages.entry((*pipeline, stage.order, stage.id)).or_insert((
                    stage,
                    BTreeSet::new(),
                    BTreeSet::new(),
                ));
                entry.1.insert(deal.id);
                if deal.last.status == "won" {
                    entry.2.insert(deal.id);
                }
            }
            for ((pipeline, _, _), (stage, closed, won)) in &stages {
                let in_stage: Vec<&&Deal> = open
                    .iter()
                    .filter(|d| {
                        self.pipelines[d.last.pipeline].id == *pipeline
                            && self.stage_of(d).id == stage.id
                    })
                    .collect();
                let open_value: f64 = in_stage.iter().map(|d| d.last.value).sum();
                let (closed, won) = (closed.len() as u64, won.len() as u64);
                calibration.push(row(vec![
                    ("stage_name", json!(stage.name)),
                    ("stage_order", json!(stage.order)),
                    ("crm_probability", json!(stage.probability)),
                    ("closed_deals", json!(closed)),
                    ("won_deals", json!(won)),
                    (
                        "calibrated_probability",
                        json!((100 * won) as f64 / closed as f64),
                    ),
                    ("open_deals", json!(in_stage.len())),
                    ("open_value", json!(open_value)),
                    (
                        "weighted_crm",
                        json!(in_stage.iter().map(|d| self.weight(d)).sum::<f64>()),
                    ),
                    (
                        "weighted_calibrated",
                        json!(open_value * won as f64 / closed as f64),
                    ),
                ]));
            }
        }
        panels.insert(
            "Win probability: CRM vs. calibrated from this tenant's history",
            calibration,
        );

        // Rep scoreboard: activities done in the date range.
        let mut reps: BTreeMap<i64, (&str, BTreeMap<&str, u64>, i64)> = BTreeMap::new();
        for activity in &self.activities {
            let Some(done) = activity.done_at else {
                continue;
            };
            if !(from_day..=to_day).contains(&date(done)) {
                continue;
            }
            let rep = reps
                .entry(activity.user.0)
                .or_insert((activity.user.1, BTreeMap::new(), 0));
            *rep.1.entry(activity.kind).or_default() += 1;
            rep.2 = rep.2.max(done);
        }
        let mut scoreboard: Vec<(u64, i64, Map<String, Value>)> = reps
            .iter()
            .map(|(user, (name, kinds, last))| {
                let count = |k: &str| kinds.get(k).copied().unwrap_or(0);
                let total: u64 = kinds.values().sum();
                let other = total - count("call") - count("email") - count("meeting");
                let r = row(vec![
                    ("user_id", json!(user)),
                    ("rep", json!(name)),
                    ("calls", json!(count("call"))),
                    ("emails", json!(count("email"))),
                    ("meetings", json!(count("meeting"))),
                    ("other", json!(other)),
                    ("total", json!(total)),
                    ("last_activity", json!(clickhouse_time(*last))),
                ]);
                (total, *user, r)
            })
            .collect();
        scoreboard.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        panels.insert(
            "Rep scoreboard",
            scoreboard.into_iter().map(|(_, _, r)| r).collect(),
        );

        // Velocity by the Monday of the week won.
        let mut weeks: BTreeMap<NaiveDate, (u64, i64)> = BTreeMap::new();
        for deal in self.current(scope).filter(|d| d.last.status == "won") {
            let won_at = deal.last.won_time.expect("a won deal has its time");
            if !in_range(won_at) {
                continue;
            }
            let day = date(won_at);
            let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
            let week = weeks.entry(monday).or_default();
            week.0 += 1;
            week.1 += won_at - deal.add_time;
        }
        panels.insert(
            "Deal velocity by week won",
            weeks
                .iter()
                .map(|(monday, (count, seconds))| {
                    row(vec![
                        ("time", json!(monday.to_string())),
                        ("won_deals", json!(count)),
                        (
                            "velocity_days",
                            json!(*seconds as f64 / *count as f64 / 86_400.0),
                        ),
                    ])
                })
                .collect(),
        );

        // Won deals by source, net of reversals, by the day of each transition.
        let mut sources: BTreeMap<&str, (i64, f64)> = BTreeMap::new();
        for deal in self.deals.iter().filter(|d| self.in_pipeline(d, scope)) {
            for (day, sign, value) in &deal.won_transitions {
                if (from_day..=to_day).contains(day) {
                    let source = sources
                        .entry(deal.source_label().unwrap_or("(none)"))
                        .or_default();
                    source.0 += sign;
                    source.1 += *sign as f64 * value;
                }
            }
        }
        let mut by_source: Vec<(&str, i64, f64)> = sources
            .into_iter()
            .filter(|(_, (won, _))| *won != 0)
            .map(|(s, (won, value))| (s, won, value))
            .collect();
        by_source.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(b.0)));
        panels.insert(
            "Won deals by marketing source",
            by_source
                .into_iter()
                .map(|(source, won, value)| {
                    row(vec![
                        ("source", json!(source)),
                        ("won_deals", json!(won)),
                        ("total_value", json!(value)),
                        ("average_value", json!(value / won as f64)),
                    ])
                })
                .collect(),
        );

        // Open deals, largest first.
        let mut table: Vec<&&Deal> = open.iter().collect();
        table.sort_by(|a, b| b.last.value.total_cmp(&a.last.value).then(a.id.cmp(&b.id)));
        panels.insert(
            "Open deals",
            table
                .into_iter()
                .take(1_000)
                .map(|d| {
                    row(vec![
                        ("deal_id", json!(d.id)),
                        ("title", json!(d.last.title)),
                        ("pipeline", json!(self.pipelines[d.last.pipeline].name)),
                        ("stage", json!(self.stage_of(d).name)),
                        ("owner", json!(d.owner.1)),
                        ("source", json!(d.source_label().unwrap_or(""))),
                        ("value", json!(d.last.value)),
                        (
                            "probability",
                            json!(d.probability.unwrap_or(self.stage_of(d).probability)),
                        ),
                        ("expected_close", json!(d.expected_close.to_string())),
                    ])
                })
                .collect(),
        );
        panels
    }
}

/// Differences between a panel's rows and the expected ones: the rows must be
/// as many and in the same order, and each expected column equal (numbers
/// equal as numbers, whether ClickHouse quoted them or not).
pub fn differences(got: &[Value], want: &[Map<String, Value>]) -> Vec<String> {
    let mut out = Vec::new();
    if got.len() != want.len() {
        out.push(format!("{} rows, expected {}", got.len(), want.len()));
    }
    for (i, (got, want)) in got.iter().zip(want).enumerate() {
        for (column, expected) in want {
            let actual = got.get(column).unwrap_or(&Value::Null);
            if !same_value(actual, expected) {
                out.push(format!(
                    "row {i} `{column}`: got {actual}, expected {expected}"
                ));
            }
        }
    }
    out
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Equal, with numbers compared as numbers: exact for integers, and within
/// rounding of the last bits for floating-point results.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (_, Value::Number(_)) | (Value::Number(_), _) => match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => false,
        },
        _ => a == b,
    }
}
