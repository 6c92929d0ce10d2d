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
use crate::model::{CrmAccount, Deal, Pipeline, Stage, Tenant};
use crate::simulate::date;

/// Where a stage sorts: pipeline id, stage order, stage id (ids as the
/// dashboards sort them: as text).
type StageKey = (String, i64, String);

/// Deals that entered a stage, and those of them that went further.
type Passage = (BTreeSet<i64>, BTreeSet<i64>);

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

fn stage_key(pipeline: &Pipeline, stage: &Stage) -> StageKey {
    (pipeline.id.clone(), stage.order, stage.id.clone())
}

impl Tenant {
    /// The source name and account the tenant's records carry.
    pub fn source(&self) -> &'static str {
        self.platform().name()
    }

    /// The account the records carry: Pipedrive's company id, HubSpot's portal id.
    pub fn account(&self) -> String {
        match &self.crm {
            CrmAccount::Pipedrive(account) => account.company_id.to_string(),
            CrmAccount::HubSpot(account) => account.portal_id.clone(),
            CrmAccount::Zoho(account) => account.org_id.clone(),
            CrmAccount::Dynamics(account) => account.organization_id.clone(),
            CrmAccount::Salesforce(account) => account.organization_id.clone(),
        }
    }

    /// A pipeline as the dashboard's `pipeline` variable names it.
    pub fn pipeline_key(&self, pipeline: &Pipeline) -> String {
        format!("{}:{}:{}", self.source(), self.account(), pipeline.id)
    }

    fn in_pipeline(&self, deal: &Deal, scope: &Scope) -> bool {
        scope
            .pipeline
            .as_ref()
            .is_none_or(|p| self.pipeline_key(&self.pipelines[deal.last.pipeline]) == *p)
    }

    fn current<'a>(&'a self, scope: &'a Scope) -> impl Iterator<Item = &'a Deal> + 'a {
        self.deals
            .iter()
            .filter(move |d| !d.deleted && self.in_pipeline(d, scope))
    }

    fn stage_of(&self, deal: &Deal) -> &Stage {
        &self.pipelines[deal.last.pipeline].stages[deal.last.stage]
    }

    fn probability(&self, deal: &Deal) -> f64 {
        deal.probability.unwrap_or(self.stage_of(deal).probability)
    }

    /// The deal's value in the home currency, if its currency has a rate.
    fn home_value(&self, deal: &Deal) -> Option<f64> {
        self.rate(deal.currency).map(|rate| deal.last.value * rate)
    }

    fn weight(&self, deal: &Deal) -> Option<f64> {
        self.home_value(deal)
            .map(|value| value * self.probability(deal) / 100.0)
    }

    /// A deal's id as its CRM gives it: Dynamics' GUIDs, Salesforce's
    /// opportunity ids, the others' numbers.
    pub fn record_id(&self, id: i64) -> String {
        match self.platform() {
            crate::Platform::Dynamics => crate::dynamics::guid(id),
            crate::Platform::Salesforce => crate::salesforce::opportunity_id(id),
            _ => id.to_string(),
        }
    }

    /// A rep's id as its CRM gives it: Salesforce's user ids, the others'
    /// numbers.
    pub fn rep_id(&self, id: i64) -> String {
        match self.platform() {
            crate::Platform::Salesforce => crate::salesforce::record_id("005", id),
            _ => id.to_string(),
        }
    }

    /// The stage probability the dashboards know: Zoho's and Dynamics'
    /// stages carry none (their deals' own probability weighs them), so 0.
    fn stage_probability_shown(&self, stage: &Stage) -> f64 {
        match self.platform() {
            crate::Platform::Zoho | crate::Platform::Dynamics => 0.0,
            crate::Platform::Pipedrive | crate::Platform::HubSpot | crate::Platform::Salesforce => {
                stage.probability
            }
        }
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
        let sum = |values: &mut dyn Iterator<Item = Option<f64>>| -> f64 { values.flatten().sum() };
        let mut panels = BTreeMap::new();

        // KPI row, in the home currency.
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
        let any_converted = self.current(scope).any(|d| self.rate(d.currency).is_some());
        panels.insert(
            "Pipeline KPIs",
            vec![row(vec![
                (
                    "open_pipeline_value",
                    json!(sum(&mut open.iter().map(|d| self.home_value(d)))),
                ),
                (
                    "weighted_forecast",
                    json!(sum(&mut open.iter().map(|d| self.weight(d)))),
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
                (
                    "open_deals_without_rate",
                    json!(
                        open.iter()
                            .filter(|d| self.rate(d.currency).is_none())
                            .count()
                    ),
                ),
                (
                    "home_currency",
                    json!(if any_converted {
                        self.home_currency
                    } else {
                        ""
                    }),
                ),
            ])],
        );

        // Funnel: open deals by stage, in order.
        let mut by_stage: BTreeMap<StageKey, (usize, f64, &str, &str, i64)> = BTreeMap::new();
        for deal in &open {
            let pipeline = &self.pipelines[deal.last.pipeline];
            let stage = self.stage_of(deal);
            let entry = by_stage.entry(stage_key(pipeline, stage)).or_insert((
                0,
                0.0,
                pipeline.name,
                stage.name,
                stage.order,
            ));
            entry.0 += 1;
            entry.1 += self.home_value(deal).unwrap_or(0.0);
        }
        panels.insert(
            "Pipeline funnel: open deals by stage",
            by_stage
                .values()
                .map(|(deals, value, pipeline, stage, order)| {
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
            entry.1 += self.home_value(deal).unwrap_or(0.0);
            entry.2 += self.weight(deal).unwrap_or(0.0);
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

        // Conversion: every entry counts, deleted deals included (history
        // happened); being won counts as passing the last stage.
        let entries: Vec<(&Deal, &Pipeline, &Stage, i64)> = self
            .deals
            .iter()
            .flat_map(|d| {
                d.entries.iter().map(move |(p, s, at)| {
                    (d, &self.pipelines[*p], &self.pipelines[*p].stages[*s], *at)
                })
            })
            .filter(|(_, pipeline, _, _)| {
                scope
                    .pipeline
                    .as_ref()
                    .is_none_or(|p| self.pipeline_key(pipeline) == *p)
            })
            .collect();
        let mut furthest: HashMap<(&str, i64), i64> = HashMap::new();
        for (deal, pipeline, stage, _) in &entries {
            let f = furthest.entry((&pipeline.id, deal.id)).or_insert(0);
            *f = (*f).max(stage.order);
        }
        let mut conversion: BTreeMap<StageKey, (&str, i64, Passage)> = BTreeMap::new();
        for (deal, pipeline, stage, at) in &entries {
            if !in_range(*at) {
                continue;
            }
            let entry = conversion.entry(stage_key(pipeline, stage)).or_insert((
                stage.name,
                stage.order,
                Passage::default(),
            ));
            entry.2.0.insert(deal.id);
            if furthest[&(pipeline.id.as_str(), deal.id)] > stage.order || deal.wins > 0 {
                entry.2.1.insert(deal.id);
            }
        }
        panels.insert(
            "Stage-to-stage conversion",
            conversion
                .values()
                .map(|(name, order, (entered, advanced))| {
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
            // Closed deals that entered each stage, and those of them won.
            let mut stages: BTreeMap<StageKey, (&Stage, &str, Passage)> = BTreeMap::new();
            for (deal, pipeline, stage, _) in &entries {
                let closed = !deal.deleted
                    && matches!(deal.last.status, "won" | "lost")
                    && self.pipelines[deal.last.pipeline].id == pipeline.id;
                if !closed {
                    continue;
                }
                let entry = stages.entry(stage_key(pipeline, stage)).or_insert((
                    stage,
                    &pipeline.id,
                    Passage::default(),
                ));
                entry.2.0.insert(deal.id);
                if deal.last.status == "won" {
                    entry.2.1.insert(deal.id);
                }
            }
            for (stage, pipeline, (closed, won)) in stages.values() {
                let in_stage: Vec<&&Deal> = open
                    .iter()
                    .filter(|d| {
                        self.pipelines[d.last.pipeline].id == *pipeline
                            && self.stage_of(d).id == stage.id
                    })
                    .collect();
                let open_value = sum(&mut in_stage.iter().map(|d| self.home_value(d)));
                let (closed, won) = (closed.len() as u64, won.len() as u64);
                calibration.push(row(vec![
                    ("stage_name", json!(stage.name)),
                    ("stage_order", json!(stage.order)),
                    (
                        "crm_probability",
                        json!(self.stage_probability_shown(stage)),
                    ),
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
                        json!(sum(&mut in_stage.iter().map(|d| self.weight(d)))),
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

        // Rep scoreboard: each activity done in the date range, once, by
        // its rep and kind now.
        let mut reps: BTreeMap<String, (&str, BTreeMap<&str, u64>, i64)> = BTreeMap::new();
        for activity in self.activities.iter().filter(|a| !a.deleted) {
            let state = &activity.last;
            let Some(done) = state.done_at else {
                continue;
            };
            if !(from_day..=to_day).contains(&date(done)) {
                continue;
            }
            let rep =
                reps.entry(self.rep_id(state.user.0))
                    .or_insert((state.user.1, BTreeMap::new(), 0));
            *rep.1.entry(state.kind).or_default() += 1;
            rep.2 = rep.2.max(done);
        }
        let mut scoreboard: Vec<(u64, String, Map<String, Value>)> = reps
            .into_iter()
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
                    ("last_activity", json!(clickhouse_time(last))),
                ]);
                (total, user, r)
            })
            .collect();
        scoreboard.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        panels.insert(
            "Rep scoreboard",
            scoreboard.into_iter().map(|(_, _, r)| r).collect(),
        );

        // Velocity by the Monday of the week won.
        let mut weeks: BTreeMap<NaiveDate, (u64, i64)> = BTreeMap::new();
        for deal in &won {
            let won_at = deal.last.won_time.expect("a won deal has its time");
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

        // Won deals by source: deals won now, by the day of their latest win.
        let mut sources: BTreeMap<&str, (u64, u64, f64)> = BTreeMap::new();
        for deal in self.current(scope).filter(|d| d.last.status == "won") {
            let won_at = deal.last.won_time.expect("a won deal has its time");
            if !(from_day..=to_day).contains(&date(won_at)) {
                continue;
            }
            let source = sources
                .entry(deal.source_label().unwrap_or("(none)"))
                .or_default();
            source.0 += 1;
            if let Some(value) = self.home_value(deal) {
                source.1 += 1;
                source.2 += value;
            }
        }
        let mut by_source: Vec<(&str, u64, u64, f64)> = sources
            .into_iter()
            .map(|(s, (won, converted, value))| (s, won, converted, value))
            .collect();
        by_source.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.0.cmp(b.0)));
        panels.insert(
            "Won deals by marketing source",
            by_source
                .into_iter()
                .map(|(channel, won, converted, value)| {
                    row(vec![
                        ("channel", json!(channel)),
                        ("won_deals", json!(won)),
                        ("total_value", json!(value)),
                        (
                            "average_value",
                            json!(if converted == 0 {
                                0.0
                            } else {
                                value / converted as f64
                            }),
                        ),
                    ])
                })
                .collect(),
        );

        // Open deals, largest first in the home currency, those without a rate last.
        let mut table: Vec<&&Deal> = open.iter().collect();
        table.sort_by(|a, b| {
            let home = |d: &Deal| self.home_value(d);
            home(b)
                .is_some()
                .cmp(&home(a).is_some())
                .then(home(b).unwrap_or(0.0).total_cmp(&home(a).unwrap_or(0.0)))
                .then(b.last.value.total_cmp(&a.last.value))
                // The panel breaks ties by the id as the CRM gives it.
                .then(self.record_id(a.id).cmp(&self.record_id(b.id)))
        });
        panels.insert(
            "Open deals",
            table
                .into_iter()
                .take(1_000)
                .map(|d| {
                    row(vec![
                        ("deal_id", json!(self.record_id(d.id))),
                        ("title", json!(d.last.title)),
                        ("pipeline", json!(self.pipelines[d.last.pipeline].name)),
                        ("stage", json!(self.stage_of(d).name)),
                        ("owner", json!(d.owner.1)),
                        ("organization", json!(self.organizations[d.org].last.name)),
                        ("channel", json!(d.source_label().unwrap_or(""))),
                        ("amount", json!(d.last.value)),
                        ("currency", json!(d.currency)),
                        ("home_value", json!(self.home_value(d).unwrap_or(0.0))),
                        ("converted", json!(u8::from(self.home_value(d).is_some()))),
                        ("probability", json!(self.probability(d))),
                        ("expected_close", json!(d.expected_close.to_string())),
                        ("updated_at", json!(clickhouse_time(d.last.update_time))),
                    ])
                })
                .collect(),
        );

        // Currencies: each one's deals, and the rate used for it.
        let mut currencies: BTreeMap<(bool, &str), [f64; 6]> = BTreeMap::new();
        for deal in self.current(scope) {
            let won_in_range =
                deal.last.status == "won" && deal.last.won_time.is_some_and(in_range);
            let is_open = deal.last.status == "open";
            if !is_open && !won_in_range {
                continue;
            }
            let rate = self.rate(deal.currency);
            // Converted currencies first.
            let sums = currencies
                .entry((rate.is_none(), deal.currency))
                .or_default();
            let home = self.home_value(deal).unwrap_or(0.0);
            let at = if is_open { 0 } else { 3 };
            sums[at] += 1.0;
            sums[at + 1] += deal.last.value;
            sums[at + 2] += home;
        }
        panels.insert(
            "Currencies",
            currencies
                .into_iter()
                .map(|((unconverted, currency), sums)| {
                    row(vec![
                        ("currency", json!(currency)),
                        ("rate", json!(self.rate(currency).unwrap_or(0.0))),
                        ("converted", json!(u8::from(!unconverted))),
                        ("open_deals", json!(sums[0])),
                        ("open_amount", json!(sums[1])),
                        ("open_home_value", json!(sums[2])),
                        ("won_deals", json!(sums[3])),
                        ("won_amount", json!(sums[4])),
                        ("won_home_value", json!(sums[5])),
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
