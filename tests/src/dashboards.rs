//! A small sales world for the dashboard tests: two tenants' deals moving
//! through their pipelines, won, lost, reopened, edited and deleted, and their
//! reps' activities. It yields the enriched events the activator loads and,
//! computed directly from the world (never from ClickHouse), what every panel
//! of the "Sales operations" dashboard must show.
//!
//! Deal values are multiples of 50 and probabilities whole percents, so sums
//! of values and weighted values are exact in any order of addition.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use tributary_clickhouse::dashboard::Scope;

/// 2025-01-06T00:00:00Z, a Monday: the world's first day.
pub const START: i64 = 1_736_121_600;
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

#[derive(Debug, Clone)]
pub struct Stage {
    pub id: i64,
    pub name: &'static str,
    pub order: i64,
    pub probability: f64,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: i64,
    pub name: &'static str,
    pub stages: Vec<Stage>,
}

fn stage(id: i64, name: &'static str, order: i64, probability: f64) -> Stage {
    Stage {
        id,
        name,
        order,
        probability,
    }
}

fn sales() -> Pipeline {
    Pipeline {
        id: 1,
        name: "Sales",
        stages: vec![
            stage(1, "Lead In", 1, 10.0),
            stage(2, "Contact Made", 2, 25.0),
            stage(3, "Proposal Made", 3, 50.0),
            stage(4, "Negotiations Started", 4, 80.0),
        ],
    }
}

fn partners() -> Pipeline {
    Pipeline {
        id: 2,
        name: "Partners",
        stages: vec![
            stage(11, "Intro", 1, 20.0),
            stage(12, "Pilot", 2, 60.0),
            stage(13, "Contract", 3, 90.0),
        ],
    }
}

/// A rep: user id and name.
pub type Rep = (i64, &'static str);
/// Where a stage sorts: pipeline id, stage order, stage id.
type StageKey = (i64, i64, i64);

const SOURCES: [Option<&str>; 4] = [Some("LinkedIn"), Some("Referral"), Some("Webinar"), None];
const ACTIVITY_TYPES: [&str; 5] = ["call", "call", "email", "meeting", "task"];

/// A deal's state as of one change.
#[derive(Debug, Clone)]
struct DealState {
    pipeline: usize,
    stage: usize,
    status: &'static str,
    value: f64,
    title: String,
    won_time: Option<i64>,
    lost_time: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Deal {
    pub tenant: &'static str,
    pub id: i64,
    pub owner: Rep,
    pub source: Option<&'static str>,
    pub probability: Option<f64>,
    pub expected_close: NaiveDate,
    pub add_time: i64,
    /// Each stage entered: (pipeline index, stage index, at).
    pub entries: Vec<(usize, usize, i64)>,
    /// Won-deal transitions: (day, +1 or -1, value).
    pub won_transitions: Vec<(NaiveDate, i64, f64)>,
    pub deleted: bool,
    /// Merged into this deal (and so deleted).
    pub merged_into: Option<i64>,
    /// When its latest change happened.
    last_at: i64,
    last: DealState,
}

#[derive(Debug, Clone)]
pub struct Activity {
    pub tenant: &'static str,
    pub id: i64,
    pub user: Rep,
    pub kind: &'static str,
    pub done_at: Option<i64>,
}

pub struct Tenant {
    pub name: &'static str,
    pub pipelines: Vec<Pipeline>,
    pub deals: Vec<Deal>,
    pub activities: Vec<Activity>,
}

/// The whole world: its tenants and every enriched event, in time order.
pub struct World {
    pub tenants: Vec<Tenant>,
    pub events: Vec<Value>,
}

fn iso(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .expect("a valid time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// As ClickHouse renders a `DateTime('UTC')` in JSON.
fn clickhouse_time(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .expect("a valid time")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn date(seconds: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .expect("a valid time")
        .date_naive()
}

fn common(tenant: &str, object: &str, action: &str, id: i64, at: i64) -> Value {
    let micro = at * 1_000_000;
    json!({
        "pipeline_event_id": format!("{tenant}-{object}-{id}-{at}"),
        "pipeline_tenant": tenant, "pipeline_source": "pipedrive", "pipeline_payload_version": "1",
        "pipeline_received_at_micro": micro + 1_000, "pipeline_enriched_at_micro": micro + 2_000,
        "pipeline_warnings": [], "pipeline_enrichment_status": "complete", "pipeline_enrichment_missing": [],
        "event_action": action, "event_object": object, "event_id": id,
        "event_timestamp": at, "event_timestamp_micro": micro,
        "event_change_source": "app", "event_is_bulk_update": false, "event_permitted_user_ids": [11],
        "event_pipedrive_service_name": false, "event_trans_pending": false, "event_user_id": 11,
        "event_webhook_id": "880001"
    })
}

impl Deal {
    fn event(
        &self,
        pipelines: &[Pipeline],
        action: &str,
        at: i64,
        previous: Option<&DealState>,
    ) -> Value {
        let state = &self.last;
        let pipeline = &pipelines[state.pipeline];
        let stage = &pipeline.stages[state.stage];
        let mut event = common(self.tenant, "deal", action, self.id, at);
        let fields = json!({
            "deal_id": self.id, "deal_title": state.title,
            "deal_stage": stage.name, "deal_stage_id": stage.id, "deal_stage_order_nr": stage.order,
            "deal_stage_probability": stage.probability,
            "deal_pipeline": pipeline.name, "deal_pipeline_id": pipeline.id,
            "deal_value": state.value, "deal_currency": "EUR", "deal_status": state.status,
            "deal_probability": self.probability, "deal_owner_id": self.owner.0, "deal_owner_name": self.owner.1,
            "deal_expected_close_date": self.expected_close.to_string(),
            "deal_add_time": iso(self.add_time), "deal_update_time": iso(at),
            "deal_won_time": state.won_time.map(iso), "deal_lost_time": state.lost_time.map(iso),
            "deal_lost_reason": state.lost_time.map(|_| "Price"),
            "deal_stage_change_time": iso(at),
            "marketing_source": self.source, "marketing_campaign": self.source.map(|s| format!("{s} Q1")),
            "contact_id": self.id + 100_000, "contact_email": format!("buyer{}@example.com", self.id),
            "organization_id": self.id + 200_000, "organization_name": format!("Org {}", self.id)
        });
        let object = event.as_object_mut().expect("an object");
        object.extend(fields.as_object().expect("an object").clone());
        if let Some(before) = previous {
            if (before.pipeline, before.stage) != (state.pipeline, state.stage) {
                let old = &pipelines[before.pipeline].stages[before.stage];
                object.insert("deal_previous_stage_id".into(), json!(old.id));
                object.insert("deal_previous_stage".into(), json!(old.name));
            }
            if before.status != state.status {
                object.insert("deal_previous_status".into(), json!(before.status));
            }
        }
        event
    }
}

struct DealWriter<'a> {
    deal: Deal,
    pipelines: &'a [Pipeline],
    events: Vec<Value>,
    at: i64,
}

impl DealWriter<'_> {
    /// Applies `change` at `after` seconds past the previous change and emits its event.
    fn change(&mut self, after: i64, action: &str, change: impl FnOnce(&mut DealState)) {
        self.at += after;
        let before = self.deal.last.clone();
        change(&mut self.deal.last);
        if (before.pipeline, before.stage) != (self.deal.last.pipeline, self.deal.last.stage) {
            self.deal
                .entries
                .push((self.deal.last.pipeline, self.deal.last.stage, self.at));
        }
        let value = self.deal.last.value;
        match (before.status, self.deal.last.status) {
            (b, "won") if b != "won" => {
                self.deal.won_transitions.push((date(self.at), 1, value));
            }
            ("won", a) if a != "won" => {
                // The reversal is dated by the won time it carries, else its own time.
                let day = date(self.deal.last.won_time.unwrap_or(self.at));
                self.deal.won_transitions.push((day, -1, value));
            }
            _ => {}
        }
        let event = self
            .deal
            .event(self.pipelines, action, self.at, Some(&before));
        self.events.push(event);
    }
}

fn generate_deal(
    rng: &mut StdRng,
    tenant: &'static str,
    id: i64,
    pipelines: &[Pipeline],
    reps: &[Rep],
) -> (Deal, Vec<Value>) {
    let pipeline = if pipelines.len() > 1 && rng.random_range(0..4) == 0 {
        1
    } else {
        0
    };
    let add_time = START + rng.random_range(0..80 * DAY / 60) * 60;
    let deal = Deal {
        tenant,
        id,
        owner: reps[rng.random_range(0..reps.len())],
        source: SOURCES[rng.random_range(0..SOURCES.len())],
        probability: (rng.random_range(0..7) == 0).then(|| f64::from(rng.random_range(1..20) * 5)),
        expected_close: date(add_time + rng.random_range(14..120) * DAY),
        add_time,
        entries: vec![(pipeline, 0, add_time)],
        won_transitions: Vec::new(),
        deleted: false,
        merged_into: None,
        last_at: add_time,
        last: DealState {
            pipeline,
            stage: 0,
            status: "open",
            value: 50.0 * f64::from(rng.random_range(10..400)),
            title: format!("Deal {id}"),
            won_time: None,
            lost_time: None,
        },
    };
    let first = deal.event(pipelines, "added", add_time, None);
    let mut writer = DealWriter {
        deal,
        pipelines,
        events: vec![first],
        at: add_time,
    };
    let stages = pipelines[pipeline].stages.len();
    let moves = rng.random_range(0..stages);
    for _ in 0..moves {
        let dwell = rng.random_range(6 * HOUR..10 * DAY);
        writer.change(dwell, "updated", |s| s.stage += 1);
    }
    if moves >= 2 && rng.random_range(0..8) == 0 {
        writer.change(rng.random_range(HOUR..3 * DAY), "updated", |s| s.stage -= 1);
    }
    if rng.random_range(0..5) == 0 {
        let value = 50.0 * f64::from(rng.random_range(10..400));
        writer.change(rng.random_range(HOUR..2 * DAY), "updated", |s| {
            s.value = value;
            s.title = format!("{} (revised)", s.title);
        });
    }
    let close = rng.random_range(HOUR..5 * DAY);
    match rng.random_range(0..20) {
        0..7 => {
            let won_at = writer.at + close;
            writer.change(close, "updated", |s| {
                s.status = "won";
                s.won_time = Some(won_at);
            });
            if rng.random_range(0..6) == 0 {
                writer.change(DAY, "updated", |s| {
                    s.status = "open";
                    s.won_time = None;
                });
                let again = writer.at + 2 * DAY;
                writer.change(2 * DAY, "updated", |s| {
                    s.status = "won";
                    s.won_time = Some(again);
                });
            }
        }
        7..12 => {
            let lost_at = writer.at + close;
            writer.change(close, "updated", |s| {
                s.status = "lost";
                s.lost_time = Some(lost_at);
            });
        }
        _ => {}
    }
    if rng.random_range(0..20) == 0 {
        writer.at += HOUR;
        let before = writer.deal.last.clone();
        writer.deal.deleted = true;
        if before.status == "won" {
            let day = date(before.won_time.unwrap_or(writer.at));
            writer.deal.won_transitions.push((day, -1, before.value));
        }
        let mut event = writer
            .deal
            .event(pipelines, "deleted", writer.at, Some(&before));
        event["deal_status"] = json!("deleted");
        event["deal_previous_status"] = json!(before.status);
        writer.events.push(event);
    }
    writer.deal.last_at = writer.at;
    (writer.deal, writer.events)
}

fn generate_activity(
    rng: &mut StdRng,
    tenant: &'static str,
    id: i64,
    reps: &[Rep],
) -> (Activity, Vec<Value>) {
    let user = reps[rng.random_range(0..reps.len())];
    let kind = ACTIVITY_TYPES[rng.random_range(0..ACTIVITY_TYPES.len())];
    let added = START + rng.random_range(0..85 * DAY / 60) * 60;
    let event = |action: &str, at: i64, done_at: Option<i64>| {
        let mut event = common(tenant, "activity", action, id, at);
        let fields = json!({
            "activity_id": id, "activity_type": kind, "activity_subject": format!("{kind} #{id}"),
            "activity_user_id": user.0, "activity_user_name": user.1,
            "activity_deal_id": null, "activity_person_id": null,
            "activity_done": done_at.is_some(), "activity_due_date": date(added + DAY).to_string(),
            "activity_add_time": iso(added), "activity_marked_as_done_time": done_at.map(iso),
            "activity_update_time": iso(at)
        });
        event
            .as_object_mut()
            .expect("an object")
            .extend(fields.as_object().expect("an object").clone());
        event
    };
    let mut events = Vec::new();
    let roll = rng.random_range(0..10);
    let done_at = (roll < 7).then(|| added + rng.random_range(0..3 * DAY / 60) * 60);
    match done_at {
        // Added already done.
        Some(done) if roll < 2 => events.push(event("added", done, Some(done))),
        Some(done) => {
            events.push(event("added", added, None));
            events.push(event("updated", done.max(added + 60), Some(done)));
            if roll == 6 {
                // Edited after it was done: counted once all the same.
                events.push(event("updated", done.max(added + 60) + HOUR, Some(done)));
            }
        }
        None => {
            events.push(event("added", added, None));
            if roll == 9 {
                events.push(event("deleted", added + HOUR, None));
            }
        }
    }
    (
        Activity {
            tenant,
            id,
            user,
            kind,
            done_at,
        },
        events,
    )
}

impl Tenant {
    /// Merges every 23rd deal into the next one (when neither is deleted), as
    /// Pipedrive reports it: a `merged` event for the deal that survives,
    /// unchanged, and a `deleted` event for the one merged away.
    fn merge_some_deals(&mut self) -> Vec<Value> {
        let mut events = Vec::new();
        for i in (11..self.deals.len().saturating_sub(1)).step_by(23) {
            let (gone, kept) = (&self.deals[i], &self.deals[i + 1]);
            if gone.deleted || kept.deleted {
                continue;
            }
            let at = gone.last_at.max(kept.last_at) + 2 * HOUR;
            let kept_id = kept.id;
            let survivor = &mut self.deals[i + 1];
            survivor.last_at = at;
            events.push(survivor.event(&self.pipelines, "merged", at, None));
            let gone = &mut self.deals[i];
            gone.deleted = true;
            gone.merged_into = Some(kept_id);
            gone.last_at = at;
            if gone.last.status == "won" {
                let day = date(gone.last.won_time.unwrap_or(at));
                gone.won_transitions.push((day, -1, gone.last.value));
            }
            let mut event = gone.event(&self.pipelines, "deleted", at, None);
            event["deal_status"] = json!("deleted");
            event["deal_previous_status"] = json!(gone.last.status);
            events.push(event);
        }
        events
    }
}

impl World {
    /// The deterministic world of `seed`: tenant "north" with two pipelines
    /// and enough closed deals to calibrate, tenant "south" with one and not.
    pub fn generate(seed: u64) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let specs: [(&'static str, Vec<Pipeline>, Vec<Rep>, i64); 2] = [
            (
                "north",
                vec![sales(), partners()],
                vec![(11, "Morgan Lee"), (12, "Sam Ortiz"), (13, "Ada Chen")],
                180,
            ),
            (
                "south",
                vec![sales()],
                vec![(21, "Kim Park"), (22, "Lou Reed")],
                40,
            ),
        ];
        let mut tenants = Vec::new();
        let mut events = Vec::new();
        for (t, (name, pipelines, reps, deals)) in specs.into_iter().enumerate() {
            let base = 1_000 * (t as i64 + 1);
            let mut tenant = Tenant {
                name,
                pipelines,
                deals: Vec::new(),
                activities: Vec::new(),
            };
            for i in 0..deals {
                let (deal, deal_events) =
                    generate_deal(&mut rng, name, base + i, &tenant.pipelines, &reps);
                tenant.deals.push(deal);
                events.extend(deal_events);
            }
            for i in 0..deals {
                let (activity, activity_events) =
                    generate_activity(&mut rng, name, base + i, &reps);
                tenant.activities.push(activity);
                events.extend(activity_events);
            }
            events.extend(tenant.merge_some_deals());
            tenants.push(tenant);
        }
        events.sort_by_key(|e| e["event_timestamp_micro"].as_i64());
        World { tenants, events }
    }

    pub fn tenant(&self, name: &str) -> &Tenant {
        self.tenants
            .iter()
            .find(|t| t.name == name)
            .expect("a tenant of the world")
    }

    /// What every panel must show for `scope`, by panel title: the rows in
    /// the panel's order, each with the columns the truth knows.
    pub fn expected_panels(
        &self,
        scope: &Scope,
    ) -> BTreeMap<&'static str, Vec<Map<String, Value>>> {
        self.tenant(&scope.tenant).expected_panels(scope)
    }
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

    fn expected_panels(&self, scope: &Scope) -> BTreeMap<&'static str, Vec<Map<String, Value>>> {
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
                    let source = sources.entry(deal.source.unwrap_or("(none)")).or_default();
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
                        ("source", json!(d.source.unwrap_or(""))),
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
