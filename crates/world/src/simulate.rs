//! The simulation: accounts with pipelines, reps, organizations and people,
//! and over the configured period their deals moving through the stages
//! (forward, sometimes back), won, lost, reopened, edited, deleted and merged,
//! and the reps' activities. Seeded and deterministic.

use chrono::{DateTime, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::*;

/// One account to simulate.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub name: String,
    pub platform: Platform,
    /// 1 or 2: Pipedrive's "Sales" (and "Partners"); HubSpot's "Sales
    /// Pipeline" (and "Partnerships").
    pub pipelines: usize,
    pub reps: usize,
    pub deals: usize,
    pub activities: usize,
    /// Salesforce: opportunities followed through Change Data Capture;
    /// without it through Outbound Messages only, which no deletion
    /// triggers, so the org deletes and merges away no opportunity.
    pub change_data_capture: bool,
}

impl TenantSpec {
    /// A Pipedrive account.
    pub fn new(name: &str, pipelines: usize, reps: usize, deals: usize, activities: usize) -> Self {
        TenantSpec {
            name: name.to_owned(),
            platform: Platform::Pipedrive,
            pipelines,
            reps,
            deals,
            activities,
            change_data_capture: false,
        }
    }

    /// A Zoho CRM org: Zoho's one stage picklist, no activities (the Zoho
    /// source does not take them).
    pub fn zoho(name: &str, reps: usize, deals: usize) -> Self {
        TenantSpec {
            platform: Platform::Zoho,
            ..TenantSpec::new(name, 1, reps, deals, 0)
        }
    }

    /// A Dynamics 365 organization: the standard sales process's stages, no
    /// activities (the Dynamics source does not take them).
    pub fn dynamics(name: &str, reps: usize, deals: usize) -> Self {
        TenantSpec {
            platform: Platform::Dynamics,
            ..TenantSpec::new(name, 1, reps, deals, 0)
        }
    }

    /// A Salesforce org: one sales process with Salesforce's standard
    /// stages, the reps' activities as tasks.
    pub fn salesforce(name: &str, reps: usize, deals: usize, activities: usize) -> Self {
        TenantSpec {
            platform: Platform::Salesforce,
            change_data_capture: true,
            ..TenantSpec::new(name, 1, reps, deals, activities)
        }
    }

    /// A Salesforce org whose opportunities reach Tributary through an
    /// Outbound Message only (a workflow on every edit, selecting every
    /// field the dashboards read): no Change Data Capture.
    pub fn salesforce_outbound(name: &str, reps: usize, deals: usize, activities: usize) -> Self {
        TenantSpec {
            change_data_capture: false,
            ..TenantSpec::salesforce(name, reps, deals, activities)
        }
    }

    /// A HubSpot account (at least two owners, so a reassignment changes the owner).
    pub fn hubspot(
        name: &str,
        pipelines: usize,
        reps: usize,
        deals: usize,
        activities: usize,
    ) -> Self {
        TenantSpec {
            platform: Platform::HubSpot,
            ..TenantSpec::new(name, pipelines, reps.max(2), deals, activities)
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub seed: u64,
    /// The first day, Unix seconds (midnight UTC).
    pub start: i64,
    /// Length of the simulated period; every change falls inside it.
    pub days: i64,
    pub tenants: Vec<TenantSpec>,
}

/// 2025-01-06T00:00:00Z, a Monday.
pub const DEFAULT_START: i64 = 1_736_121_600;

impl WorldConfig {
    /// The demo's world: two Pipedrive accounts, a HubSpot portal, a Zoho
    /// CRM org, a Dynamics 365 organization and two Salesforce orgs (one
    /// with Change Data Capture, one with Outbound Messages only) over 120
    /// days, about 10,500 changes.
    pub fn demo(seed: u64, start: i64) -> Self {
        WorldConfig {
            seed,
            start,
            days: 120,
            tenants: vec![
                TenantSpec::new("northwind", 2, 6, 700, 900),
                TenantSpec::new("globex", 1, 3, 120, 200),
                TenantSpec::hubspot("initech", 2, 4, 260, 320),
                TenantSpec::zoho("umbrella", 3, 150),
                TenantSpec::dynamics("contoso", 3, 150),
                TenantSpec::salesforce("hooli", 3, 150, 150),
                TenantSpec::salesforce_outbound("stark", 2, 100, 100),
            ],
        }
    }

    /// The dashboard tests' world: Pipedrive accounts "north" with two
    /// pipelines and enough closed deals to calibrate and "south" with one
    /// and too few, and a HubSpot portal "harbor" with two pipelines and
    /// enough closed deals to calibrate.
    pub fn sample(seed: u64) -> Self {
        WorldConfig {
            seed,
            start: DEFAULT_START,
            days: 120,
            tenants: vec![
                TenantSpec::new("north", 2, 3, 180, 180),
                TenantSpec::new("south", 1, 2, 40, 40),
                TenantSpec::hubspot("harbor", 2, 3, 150, 150),
            ],
        }
    }

    /// A small world for end-to-end tests: two Pipedrive accounts, a
    /// HubSpot portal, a Zoho CRM org, a Dynamics 365 organization and two
    /// Salesforce orgs (Change Data Capture; Outbound Messages only), a few
    /// hundred changes each, one with enough closed deals to calibrate.
    pub fn small(seed: u64) -> Self {
        WorldConfig {
            seed,
            start: DEFAULT_START,
            days: 120,
            tenants: vec![
                TenantSpec::new("north", 2, 3, 110, 60),
                TenantSpec::new("south", 1, 2, 25, 20),
                TenantSpec::hubspot("harbor", 2, 3, 100, 60),
                TenantSpec::zoho("delta", 3, 60),
                TenantSpec::dynamics("ember", 3, 60),
                TenantSpec::salesforce("fjord", 3, 60, 40),
                TenantSpec::salesforce_outbound("kelp", 2, 40, 30),
            ],
        }
    }

    /// This world with only the accounts of `platform`.
    pub fn only(mut self, platform: Platform) -> Self {
        self.tenants.retain(|t| t.platform == platform);
        self
    }

    /// This world with one more account (simulated after the others, so
    /// theirs stay as they were).
    pub fn with(mut self, tenant: TenantSpec) -> Self {
        self.tenants.push(tenant);
        self
    }
}

const REP_NAMES: [&str; 12] = [
    "Morgan Lee",
    "Sam Ortiz",
    "Ada Chen",
    "Kim Park",
    "Lou Reed",
    "Noor Haddad",
    "Ines Duarte",
    "Tom Becker",
    "Priya Nair",
    "Jonas Weber",
    "Lena Novak",
    "Omar Farouk",
];
const FIRST_NAMES: [&str; 12] = [
    "Jane", "Ana", "Jonas", "Mia", "Lucas", "Sofia", "Noah", "Emma", "Liam", "Olivia", "Mateo",
    "Yuki",
];
const LAST_NAMES: [&str; 12] = [
    "Doe", "Ferreira", "Weber", "Rossi", "Martin", "Silva", "Kowalski", "Jensen", "Murphy",
    "Tanaka", "Garcia", "Novak",
];
const COMPANY_WORDS: [&str; 12] = [
    "Omni",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Acme",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
];
const COMPANY_KINDS: [&str; 6] = ["Health", "Retail", "Works", "Software", "Logistics", "Labs"];
const JOB_TITLES: [&str; 6] = [
    "CEO",
    "COO",
    "Head of Sales",
    "Operations Director",
    "Buyer",
    "CTO",
];
const ACTIVITY_TYPES: [&str; 6] = ["call", "call", "email", "meeting", "task", "deadline"];

/// HubSpot's engagement types: a task counts as "other", as Pipedrive's
/// tasks and deadlines do.
const HUBSPOT_ACTIVITY_TYPES: [&str; 6] = ["call", "call", "email", "meeting", "task", "task"];

pub(crate) fn stage(id: &str, name: &'static str, order: i64, probability: f64) -> Stage {
    Stage {
        id: id.to_owned(),
        name,
        order,
        probability,
    }
}

fn sales() -> Pipeline {
    Pipeline {
        id: "1".into(),
        name: "Sales",
        stages: vec![
            stage("1", "Lead In", 1, 10.0),
            stage("2", "Contact Made", 2, 25.0),
            stage("3", "Proposal Made", 3, 50.0),
            stage("4", "Negotiations Started", 4, 80.0),
        ],
        won_stage: None,
        lost_stage: None,
    }
}

fn partners() -> Pipeline {
    Pipeline {
        id: "2".into(),
        name: "Partners",
        stages: vec![
            stage("11", "Intro", 1, 20.0),
            stage("12", "Pilot", 2, 60.0),
            stage("13", "Contract", 3, 90.0),
        ],
        won_stage: None,
        lost_stage: None,
    }
}

/// Where a tenant's ids start: each kind of record counts up from its base.
struct IdBases {
    organization: i64,
    person: i64,
    deal: i64,
    activity: i64,
    rep: i64,
}

impl IdBases {
    /// Ids are unique across tenants, so a shared fake API cannot mix them
    /// up. Pipedrive's are small numbers; HubSpot's records have ids of ten
    /// or eleven digits and its owners of eight; Zoho's are 19 digits.
    fn of(platform: Platform, tenant: usize) -> Self {
        let t = tenant as i64 + 1;
        match platform {
            Platform::Pipedrive => IdBases {
                organization: 10_000 * t,
                person: 100_000 * t,
                deal: 1_000 * t,
                activity: 1_000 * t,
                rep: 100 * t + 11,
            },
            Platform::HubSpot => IdBases {
                organization: 18_400_000_000 + 1_000_000 * t,
                person: 51_200_000_000 + 1_000_000 * t,
                deal: 27_300_000_000 + 1_000_000 * t,
                activity: 61_900_000_000 + 1_000_000 * t,
                rep: 72_000_000 + 1_000 * t,
            },
            // Dynamics' ids are GUIDs, made of these (`dynamics::guid`).
            Platform::Dynamics => IdBases {
                organization: 3_100_000 + 100_000 * t,
                person: 3_200_000 + 100_000 * t,
                deal: 3_300_000 + 100_000 * t,
                activity: 3_400_000 + 100_000 * t,
                rep: 3_500_000 + 100_000 * t,
            },
            // Salesforce's ids are 18 characters, made of these
            // (`salesforce::record_id`).
            Platform::Salesforce => IdBases {
                organization: 4_100_000 + 100_000 * t,
                person: 4_200_000 + 100_000 * t,
                deal: 4_300_000 + 100_000 * t,
                activity: 4_400_000 + 100_000 * t,
                rep: 4_500_000 + 100_000 * t,
            },
            // Zoho's ids are 19 digits: the org's prefix, then a counter.
            Platform::Zoho => {
                let org = 5_725_767_000_000_000_000 + 100_000_000 * t;
                IdBases {
                    organization: org + 1_000_000,
                    person: org + 2_000_000,
                    deal: org + 3_000_000,
                    activity: org + 4_000_000,
                    rep: org + 411_000,
                }
            }
        }
    }
}

pub(crate) fn date(seconds: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .expect("a valid time")
        .date_naive()
}

/// Builds the world: accounts and their changes, in time order.
pub(crate) fn simulate(config: &WorldConfig) -> (Vec<Tenant>, Vec<Change>) {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut tenants = Vec::new();
    let mut changes = Vec::new();
    for (t, spec) in config.tenants.iter().enumerate() {
        let mut sim = Simulation {
            rng: &mut rng,
            config,
            tenant: t,
            platform: spec.platform,
            deletions_seen: spec.platform != Platform::Salesforce || spec.change_data_capture,
            changes: Vec::new(),
        };
        let tenant = sim.tenant(spec);
        changes.extend(sim.changes);
        tenants.push(tenant);
    }
    changes.sort_by_key(|c| (c.at_micro, c.tenant));
    (tenants, changes)
}

struct Simulation<'a> {
    rng: &'a mut StdRng,
    config: &'a WorldConfig,
    tenant: usize,
    platform: Platform,
    /// Whether the platform tells of a deal's deletion (Salesforce's
    /// Outbound Messages do not).
    deletions_seen: bool,
    changes: Vec<Change>,
}

impl Simulation<'_> {
    /// A change at `at` seconds (plus a few random milliseconds, as real
    /// timestamps have).
    fn push(&mut self, at: i64, action: Action, user: i64, subject: Subject) {
        let micro = at * 1_000_000 + self.rng.random_range(0..1_000) * 1_000;
        self.changes.push(Change {
            tenant: self.tenant,
            at_micro: micro,
            action,
            user,
            subject,
        });
    }

    fn tenant(&mut self, spec: &TenantSpec) -> Tenant {
        let t = self.tenant as i64;
        let start = self.config.start;
        let two = spec.pipelines > 1;
        let pipelines = match (self.platform, two) {
            (Platform::Pipedrive, false) => vec![sales()],
            (Platform::Pipedrive, true) => vec![sales(), partners()],
            (Platform::HubSpot, two) => crate::hubspot::pipelines(two),
            (Platform::Zoho, _) => crate::zoho::pipelines(),
            (Platform::Dynamics, _) => crate::dynamics::pipelines(),
            (Platform::Salesforce, _) => crate::salesforce::pipelines(),
        };
        let ids = IdBases::of(self.platform, self.tenant);
        let reps: Vec<Rep> = (0..spec.reps.max(1))
            .map(|i| {
                (
                    ids.rep + i as i64,
                    REP_NAMES[(i + 3 * self.tenant) % REP_NAMES.len()],
                )
            })
            .collect();
        let slug = spec
            .name
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let crm = match self.platform {
            Platform::Pipedrive => CrmAccount::Pipedrive(PipedriveAccount {
                company_id: 7_843_211 + t,
                host: format!("{slug}.pipedrive.com"),
                api_token: format!("{slug}-api-token"),
                webhook_user: "hook".into(),
                webhook_password: format!("{slug}-webhook-secret"),
                webhook_v1_id: format!("{}", 1_148_302 + t),
                webhook_v2_id: format!("{}", 2_290_117 + t),
            }),
            Platform::HubSpot => CrmAccount::HubSpot(crate::hubspot::HubSpotAccount::new(
                self.tenant,
                &slug,
                &reps,
            )),
            Platform::Zoho => CrmAccount::Zoho(crate::zoho::ZohoAccount::new(self.tenant, &slug)),
            Platform::Dynamics => {
                CrmAccount::Dynamics(crate::dynamics::DynamicsAccount::new(self.tenant, &slug))
            }
            Platform::Salesforce => {
                CrmAccount::Salesforce(crate::salesforce::SalesforceAccount::new(
                    self.tenant,
                    &slug,
                    spec.change_data_capture,
                ))
            }
        };
        let mut tenant = Tenant {
            name: spec.name.clone(),
            home_currency: "EUR",
            rates: FOREIGN_CURRENCIES
                .iter()
                .filter_map(|(code, rate)| Some((*code, (*rate)?)))
                .collect(),
            crm,
            pipelines,
            reps,
            organizations: Vec::new(),
            persons: Vec::new(),
            deals: Vec::new(),
            activities: Vec::new(),
        };

        // The account's organizations and people; each is added to the CRM
        // shortly before its first deal (see `add_people_and_organizations`).
        let organizations = (spec.deals / 4).max(1);
        for i in 0..organizations {
            let owner = tenant.reps[self.rng.random_range(0..tenant.reps.len())];
            let name = format!(
                "{} {} {}",
                COMPANY_WORDS[i % COMPANY_WORDS.len()],
                COMPANY_KINDS[(i / COMPANY_WORDS.len()) % COMPANY_KINDS.len()],
                i / (COMPANY_WORDS.len() * COMPANY_KINDS.len()) + 1
            );
            let org = Organization {
                id: ids.organization + i as i64,
                owner,
                add_time: start + self.rng.random_range(0..6 * HOUR),
                last: OrganizationState {
                    name,
                    address: format!("{} Market Street", 10 + i),
                    size: COMPANY_SIZES[self.rng.random_range(0..COMPANY_SIZES.len())].0,
                    industry: INDUSTRIES[self.rng.random_range(0..INDUSTRIES.len())].0,
                },
            };
            tenant.organizations.push(org);
        }
        let persons = (spec.deals / 2).max(1);
        for i in 0..persons {
            let org = self.rng.random_range(0..organizations);
            let owner = tenant.organizations[org].owner;
            let first_name = FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())];
            let last_name = LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())];
            let email_class = match self.rng.random_range(0..20) {
                0..9 => EmailClass::Valid { sources: 1 },
                9..12 => EmailClass::Valid { sources: 2 },
                12..13 => EmailClass::Valid { sources: 0 },
                13..15 => EmailClass::Webmail,
                15..17 => EmailClass::Invalid,
                17..18 => EmailClass::Disposable,
                _ => EmailClass::AcceptAll,
            };
            let domain = match email_class {
                EmailClass::Webmail => "gmail.example".to_owned(),
                EmailClass::Disposable => "mailinator.example".to_owned(),
                _ => format!("org{}.{slug}.example", tenant.organizations[org].id),
            };
            let person = Person {
                id: ids.person + i as i64,
                first_name,
                last_name,
                email: format!(
                    "{}.{}{}@{domain}",
                    first_name.to_lowercase(),
                    last_name.to_lowercase(),
                    i
                ),
                email_class,
                org,
                owner,
                add_time: start + 6 * HOUR + self.rng.random_range(0..6 * HOUR),
                last: PersonState {
                    job_title: (self.rng.random_range(0..4) > 0)
                        .then(|| JOB_TITLES[self.rng.random_range(0..JOB_TITLES.len())].to_owned()),
                    phone: (self.rng.random_range(0..3) > 0)
                        .then(|| format!("+1 555 {:04}", self.rng.random_range(0..10_000))),
                },
            };
            tenant.persons.push(person);
        }

        for i in 0..spec.deals {
            self.deal(&mut tenant, ids.deal + i as i64);
        }
        self.add_people_and_organizations(&mut tenant);
        match self.platform {
            // Zoho deletes the records merged into another.
            Platform::Pipedrive | Platform::Zoho | Platform::Dynamics | Platform::Salesforce => {
                self.merge_some_deals(&mut tenant)
            }
            Platform::HubSpot => self.merge_duplicate_deals(&mut tenant),
        }
        // Zoho's Mass Update; Salesforce's mass edit of a list view (one
        // transaction).
        if matches!(self.platform, Platform::Zoho | Platform::Salesforce) {
            self.mass_update_deals(&mut tenant);
        }
        for i in 0..spec.activities {
            self.activity(&mut tenant, ids.activity + i as i64);
        }
        self.edit_people_and_organizations(&mut tenant);
        tenant
    }

    /// The latest day a deal may be added: late enough that the longest
    /// history (about 45 days) still ends inside the period.
    fn add_window(&self) -> i64 {
        (self.config.days - 46).max(self.config.days / 3).max(1) * DAY
    }

    fn deal(&mut self, tenant: &mut Tenant, id: i64) {
        let window = self.add_window();
        let start = self.config.start;
        let rng = &mut *self.rng;
        let pipeline = if tenant.pipelines.len() > 1 && rng.random_range(0..4) == 0 {
            1
        } else {
            0
        };
        let add_time = start + DAY + rng.random_range(0..window / 60) * 60;
        let person = rng.random_range(0..tenant.persons.len());
        let owner = if rng.random_range(0..4) == 0 {
            tenant.reps[rng.random_range(0..tenant.reps.len())]
        } else {
            tenant.persons[person].owner
        };
        // Dynamics' opportunities have no lead source of their own.
        let source = (rng.random_range(0..5) > 0)
            .then(|| MARKETING_SOURCES[rng.random_range(0..MARKETING_SOURCES.len())])
            .filter(|_| self.platform != Platform::Dynamics);
        let deal = Deal {
            id,
            owner,
            person,
            org: tenant.persons[person].org,
            source,
            campaign: source
                .map(|(_, label)| format!("{label} Q{}", 1 + (add_time / (90 * DAY)) % 4)),
            // HubSpot deals have no probability of their own in this model:
            // their stage's is theirs.
            probability: (rng.random_range(0..7) == 0)
                .then(|| f64::from(rng.random_range(1..20) * 5))
                .filter(|_| self.platform == Platform::Pipedrive),
            expected_close: date(add_time + rng.random_range(14..120) * DAY),
            add_time,
            // Most deals in the home currency; some in currencies with a
            // rate, a few in one without.
            currency: match rng.random_range(0..20) {
                0..3 => FOREIGN_CURRENCIES[0].0,
                3..5 => FOREIGN_CURRENCIES[1].0,
                5 => FOREIGN_CURRENCIES[2].0,
                _ => tenant.home_currency,
            },
            entries: vec![(pipeline, 0, add_time)],
            wins: 0,
            deleted: false,
            merged_into: None,
            last_at: add_time,
            last: DealState {
                pipeline,
                stage: 0,
                status: "open",
                value: 50.0 * f64::from(rng.random_range(10..400)),
                title: format!(
                    "{} - {}",
                    tenant.organizations[tenant.persons[person].org].last.name,
                    ["renewal", "new seats", "pilot", "rollout", "expansion"]
                        [rng.random_range(0..5)]
                ),
                won_time: None,
                lost_time: None,
                stage_change_time: add_time,
                update_time: add_time,
            },
        };
        let index = tenant.deals.len();
        self.push(
            add_time,
            Action::Added,
            owner.0,
            Subject::Deal {
                deal: index,
                before: None,
                after: Some(deal.last.clone()),
                bulk: false,
                merged_to: None,
                merged_from: None,
            },
        );
        tenant.deals.push(deal);

        let stages = tenant.pipelines[pipeline].stages.len();
        let moves = self.rng.random_range(0..stages);
        // HubSpot's default pipeline has five open stages: shorter dwells
        // keep the longest history inside the period.
        let longest_dwell = match self.platform {
            Platform::Pipedrive => 10 * DAY,
            Platform::HubSpot | Platform::Zoho | Platform::Dynamics | Platform::Salesforce => {
                7 * DAY
            }
        };
        for _ in 0..moves {
            let dwell = self.rng.random_range(6 * HOUR..longest_dwell);
            let bulk = self.rng.random_range(0..12) == 0;
            self.change_deal(tenant, index, dwell, bulk, |s| s.stage += 1);
        }
        if moves >= 2 && self.rng.random_range(0..8) == 0 {
            let after = self.rng.random_range(HOUR..3 * DAY);
            self.change_deal(tenant, index, after, false, |s| s.stage -= 1);
        }
        if self.rng.random_range(0..5) == 0 {
            let value = 50.0 * f64::from(self.rng.random_range(10..400));
            let after = self.rng.random_range(HOUR..2 * DAY);
            self.change_deal(tenant, index, after, false, |s| {
                s.value = value;
                s.title = format!("{} (revised)", s.title);
            });
        }
        let close = self.rng.random_range(HOUR..5 * DAY);
        match self.rng.random_range(0..20) {
            0..7 => {
                self.change_deal(tenant, index, close, false, |s| s.status = "won");
                if self.rng.random_range(0..6) == 0 {
                    self.change_deal(tenant, index, DAY, false, |s| s.status = "open");
                    self.change_deal(tenant, index, 2 * DAY, false, |s| s.status = "won");
                }
            }
            7..12 => self.change_deal(tenant, index, close, false, |s| s.status = "lost"),
            _ => {}
        }
        if self.rng.random_range(0..20) == 0 && self.may_delete(&tenant.deals[index]) {
            let at = tenant.deals[index].last_at + HOUR;
            self.delete_deal(tenant, index, at, None);
            // HubSpot keeps deleted records restorable for 90 days: some come back.
            if self.platform == Platform::HubSpot && self.rng.random_range(0..3) > 0 {
                let after = self.rng.random_range(HOUR..3 * DAY);
                self.restore_deal(tenant, index, at + after);
            }
        }
    }

    /// Whether the simulation deletes `deal` (or merges it away). Not a
    /// closed Dynamics opportunity: the stage a `Win` or `Lose` enters is
    /// read through the Web API, and the world's compressed time would
    /// have the record gone before the enricher reads it. No opportunity of
    /// a Salesforce org without Change Data Capture: nothing would say so.
    fn may_delete(&self, deal: &Deal) -> bool {
        self.deletions_seen && (self.platform != Platform::Dynamics || deal.last.status == "open")
    }

    /// Whether the simulation deletes activities. Not Salesforce's tasks:
    /// they reach Tributary through Outbound Messages, which no deletion
    /// triggers.
    fn may_delete_activity(&self) -> bool {
        self.platform != Platform::Salesforce
    }

    /// Applies `change` `after` seconds past the deal's latest change and
    /// records it, keeping the deal's won and lost times, stage entries and
    /// won transitions as the CRM and the dashboards see them.
    fn change_deal(
        &mut self,
        tenant: &mut Tenant,
        index: usize,
        after: i64,
        bulk: bool,
        change: impl FnOnce(&mut DealState),
    ) {
        let deal = &mut tenant.deals[index];
        let at = deal.last_at + after;
        let before = deal.last.clone();
        change(&mut deal.last);
        let state = &mut deal.last;
        state.update_time = at;
        let reopened = before.status != "open" && state.status == "open";
        if (before.pipeline, before.stage) != (state.pipeline, state.stage) {
            state.stage_change_time = at;
            deal.entries.push((state.pipeline, state.stage, at));
        } else if reopened && self.platform.outcome_is_a_stage() {
            // Out of its won or lost stage, back into the open one.
            state.stage_change_time = at;
            deal.entries.push((state.pipeline, state.stage, at));
        } else if before.status != state.status && self.platform == Platform::Salesforce {
            // Into its won or lost stage: Salesforce's `LastStageChangeDate`.
            state.stage_change_time = at;
        }
        // Dynamics and Salesforce close an opportunity on a date (the close
        // dialog's "Actual Close Date", the `CloseDate`), not at a time.
        let closed_at = if matches!(self.platform, Platform::Dynamics | Platform::Salesforce) {
            at - at.rem_euclid(DAY)
        } else {
            at
        };
        match (before.status, state.status) {
            (b, "won") if b != "won" => {
                state.won_time = Some(closed_at);
                state.lost_time = None;
                deal.wins += 1;
            }
            ("won", a) if a != "won" => state.won_time = None,
            _ => {}
        }
        if state.status == "lost" && before.status != "lost" {
            state.lost_time = Some(closed_at);
        } else if state.status != "lost" {
            state.lost_time = None;
        }
        deal.last_at = at;
        let user = deal.owner.0;
        let after = Some(deal.last.clone());
        self.push(
            at,
            Action::Updated,
            user,
            Subject::Deal {
                deal: index,
                before: Some(before),
                after,
                bulk,
                merged_to: None,
                merged_from: None,
            },
        );
    }

    fn delete_deal(&mut self, tenant: &mut Tenant, index: usize, at: i64, merged_to: Option<i64>) {
        let deal = &mut tenant.deals[index];
        deal.deleted = true;
        deal.merged_into = merged_to;
        deal.last_at = at;
        let user = deal.owner.0;
        let before = Some(deal.last.clone());
        self.push(
            at,
            Action::Deleted,
            user,
            Subject::Deal {
                deal: index,
                before,
                after: None,
                bulk: false,
                merged_to,
                merged_from: None,
            },
        );
    }

    /// Brings a deleted deal back, as it was (HubSpot's restore counts as a
    /// modification of the deal).
    fn restore_deal(&mut self, tenant: &mut Tenant, index: usize, at: i64) {
        let deal = &mut tenant.deals[index];
        deal.deleted = false;
        deal.last_at = at;
        deal.last.update_time = at;
        let user = deal.owner.0;
        let after = Some(deal.last.clone());
        self.push(
            at,
            Action::Restored,
            user,
            Subject::Deal {
                deal: index,
                before: None,
                after,
                bulk: false,
                merged_to: None,
                merged_from: None,
            },
        );
    }

    /// Merges every 23rd deal into the next live deal of the same company
    /// (duplicates are deals of one customer), as HubSpot reports it: one
    /// `merge` event for the deal that survives, which absorbs the other
    /// (its modification time moves; the merged deal's id now reads as the
    /// survivor).
    fn merge_duplicate_deals(&mut self, tenant: &mut Tenant) {
        for i in (11..tenant.deals.len().saturating_sub(1)).step_by(23) {
            let gone = &tenant.deals[i];
            if gone.deleted {
                continue;
            }
            let Some(kept) = (i + 1..tenant.deals.len()).find(|&j| {
                let d = &tenant.deals[j];
                !d.deleted && d.org == gone.org && d.merged_into.is_none()
            }) else {
                continue;
            };
            let at = gone.last_at.max(tenant.deals[kept].last_at) + 2 * HOUR;
            let (gone_id, kept_id) = (gone.id, tenant.deals[kept].id);
            let gone = &mut tenant.deals[i];
            gone.deleted = true;
            gone.merged_into = Some(kept_id);
            gone.last_at = at;
            let survivor = &mut tenant.deals[kept];
            let before = Some(survivor.last.clone());
            survivor.last_at = at;
            survivor.last.update_time = at;
            let after = Some(survivor.last.clone());
            let user = survivor.owner.0;
            self.push(
                at,
                Action::Merged,
                user,
                Subject::Deal {
                    deal: kept,
                    before,
                    after,
                    bulk: false,
                    merged_to: None,
                    merged_from: Some(gone_id),
                },
            );
        }
    }

    /// Renames a few groups of live deals at once, as Zoho's Mass Update
    /// does (one notification lists them all) and Salesforce's mass edit
    /// (one transaction): four consecutive deals from
    /// every 17th, renamed in one second after the latest change of any.
    fn mass_update_deals(&mut self, tenant: &mut Tenant) {
        for first in (5..tenant.deals.len().saturating_sub(4)).step_by(17) {
            let group: Vec<usize> = (first..first + 4)
                .filter(|&i| !tenant.deals[i].deleted)
                .collect();
            if group.len() < 2 {
                continue;
            }
            let at = group
                .iter()
                .map(|&i| tenant.deals[i].last_at)
                .max()
                .unwrap_or_default()
                + 3 * HOUR;
            for index in group {
                let deal = &mut tenant.deals[index];
                let before = Some(deal.last.clone());
                deal.last.title = format!("{} (key account)", deal.last.title);
                deal.last.update_time = at;
                deal.last_at = at;
                let after = Some(deal.last.clone());
                let user = deal.owner.0;
                self.push(
                    at,
                    Action::Updated,
                    user,
                    Subject::Deal {
                        deal: index,
                        before,
                        after,
                        bulk: true,
                        merged_to: None,
                        merged_from: None,
                    },
                );
            }
        }
    }

    /// Merges every 23rd deal into the next one (when neither is deleted), as
    /// Pipedrive reports it: a `merged` event for the deal that survives,
    /// unchanged, and a `deleted` event for the one merged away (Zoho: an
    /// update of the one kept, its modification time moved, and a delete).
    fn merge_some_deals(&mut self, tenant: &mut Tenant) {
        for i in (11..tenant.deals.len().saturating_sub(1)).step_by(23) {
            let (gone, kept) = (&tenant.deals[i], &tenant.deals[i + 1]);
            if gone.deleted || kept.deleted || !self.may_delete(gone) {
                continue;
            }
            let at = gone.last_at.max(kept.last_at) + 2 * HOUR;
            let (gone_id, kept_id) = (gone.id, kept.id);
            let survivor = &mut tenant.deals[i + 1];
            survivor.last_at = at;
            let before = Some(survivor.last.clone());
            // Zoho's merge modifies the record it keeps; Dynamics' and
            // Salesforce's (which merge no opportunities: a person moves
            // what matters and deletes the other) too.
            if matches!(
                self.platform,
                Platform::Zoho | Platform::Dynamics | Platform::Salesforce
            ) {
                survivor.last.update_time = at;
            }
            let after = Some(survivor.last.clone());
            let user = survivor.owner.0;
            self.push(
                at,
                Action::Merged,
                user,
                Subject::Deal {
                    deal: i + 1,
                    before,
                    after,
                    bulk: false,
                    merged_to: None,
                    merged_from: Some(gone_id),
                },
            );
            self.delete_deal(tenant, i, at, Some(kept_id));
        }
    }

    fn activity(&mut self, tenant: &mut Tenant, id: i64) {
        let rng = &mut *self.rng;
        let deal = rng.random_range(0..tenant.deals.len());
        let (person, org, owner, deal_added) = {
            let d = &tenant.deals[deal];
            (d.person, d.org, d.owner, d.add_time)
        };
        let user = if rng.random_range(0..4) == 0 {
            tenant.reps[rng.random_range(0..tenant.reps.len())]
        } else {
            owner
        };
        let kinds = match self.platform {
            Platform::Pipedrive | Platform::Zoho | Platform::Dynamics | Platform::Salesforce => {
                ACTIVITY_TYPES
            }
            Platform::HubSpot => HUBSPOT_ACTIVITY_TYPES,
        };
        let kind = kinds[rng.random_range(0..kinds.len())];
        let added = deal_added + rng.random_range(0..20 * DAY / 60) * 60;
        let roll = rng.random_range(0..10);
        let done_at = (roll < 7).then(|| added + rng.random_range(0..3 * DAY / 60) * 60);
        // What happens to a done activity afterwards: the cases a scoreboard
        // that counts ids per rep, kind and day gets wrong.
        let twist = rng.random_range(0..16);
        let mut other_rep = tenant.reps[rng.random_range(0..tenant.reps.len())];
        let other_kind = ACTIVITY_TYPES[rng.random_range(0..ACTIVITY_TYPES.len())];
        let hubspot = self.platform == Platform::HubSpot;
        if hubspot && other_rep == user {
            // HubSpot sends nothing for an edit that changes nothing.
            let at = tenant.reps.iter().position(|r| *r == user).unwrap_or(0);
            other_rep = tenant.reps[(at + 1) % tenant.reps.len()];
        }
        let shift = rng.random_range(1..4) * DAY + rng.random_range(0..HOUR);
        let index = tenant.activities.len();
        let mut activity = Activity {
            id,
            deal: Some(deal),
            person,
            org,
            add_time: added,
            due_date: date(added + DAY),
            deleted: false,
            last: ActivityState {
                user,
                kind,
                subject: format!("{kind} #{id}"),
                done_at: None,
                update_time: added,
            },
        };
        type ActivityChange = (i64, Action, Option<ActivityState>, Option<ActivityState>);
        let mut changes: Vec<ActivityChange> = Vec::new();
        // Records an edit of the activity at `at`.
        fn edit(
            changes: &mut Vec<ActivityChange>,
            activity: &mut Activity,
            at: i64,
            change: &dyn Fn(&mut ActivityState),
        ) {
            let before = activity.last.clone();
            change(&mut activity.last);
            activity.last.update_time = at;
            changes.push((
                at,
                Action::Updated,
                Some(before),
                Some(activity.last.clone()),
            ));
        }
        let done_by = match done_at {
            // Added already done.
            Some(done) if roll < 2 => {
                activity.add_time = done;
                activity.last.done_at = Some(done);
                activity.last.update_time = done;
                changes.push((done, Action::Added, None, Some(activity.last.clone())));
                Some(done)
            }
            Some(done) => {
                changes.push((added, Action::Added, None, Some(activity.last.clone())));
                let at = done.max(added + 60);
                edit(&mut changes, &mut activity, at, &|s| s.done_at = Some(done));
                // HubSpot sends no event for an email's subject (its
                // webhooks cannot subscribe to it).
                if roll == 6 && !(hubspot && kind == "email") {
                    // Edited after it was done: counted once all the same.
                    edit(&mut changes, &mut activity, at + HOUR, &|s| {
                        s.subject = format!("{} (notes added)", s.subject)
                    });
                }
                Some(at)
            }
            None => {
                changes.push((added, Action::Added, None, Some(activity.last.clone())));
                if roll == 9 && self.may_delete_activity() {
                    activity.deleted = true;
                    changes.push((
                        added + HOUR,
                        Action::Deleted,
                        Some(activity.last.clone()),
                        None,
                    ));
                }
                None
            }
        };
        if let Some(done) = done_by {
            let at = done + 2 * HOUR;
            match twist {
                0 | 1 => edit(&mut changes, &mut activity, at, &|s| s.user = other_rep),
                // HubSpot cannot retype an engagement: it is reassigned instead.
                2 if hubspot => edit(&mut changes, &mut activity, at, &|s| s.user = other_rep),
                2 => edit(&mut changes, &mut activity, at, &|s| s.kind = other_kind),
                3 | 4 => edit(&mut changes, &mut activity, at, &|s| {
                    s.done_at = s.done_at.map(|d| d + shift)
                }),
                5 => edit(&mut changes, &mut activity, at, &|s| s.done_at = None),
                6 if self.may_delete_activity() => {
                    activity.deleted = true;
                    changes.push((at, Action::Deleted, Some(activity.last.clone()), None));
                }
                _ => {}
            }
        }
        let user = activity.last.user;
        for (at, action, before, after) in changes {
            self.push(
                at,
                action,
                user.0,
                Subject::Activity {
                    activity: index,
                    before,
                    after,
                },
            );
        }
        tenant.activities.push(activity);
    }

    /// Adds each person a few hours to days before their first deal (people
    /// without deals some time in the first weeks), and each organization
    /// before its first person.
    fn add_people_and_organizations(&mut self, tenant: &mut Tenant) {
        let start = self.config.start;
        let mut first_deal = vec![i64::MAX; tenant.persons.len()];
        for deal in &tenant.deals {
            first_deal[deal.person] = first_deal[deal.person].min(deal.add_time);
        }
        let mut first_person = vec![i64::MAX; tenant.organizations.len()];
        for (i, person) in tenant.persons.iter_mut().enumerate() {
            let before = match first_deal[i] {
                i64::MAX => start + self.rng.random_range(DAY..30 * DAY),
                deal => deal - self.rng.random_range(HOUR..3 * DAY),
            };
            person.add_time = before.max(start + HOUR);
            first_person[person.org] = first_person[person.org].min(person.add_time);
        }
        for (i, org) in tenant.organizations.iter_mut().enumerate() {
            let before = match first_person[i] {
                i64::MAX => start + self.rng.random_range(DAY..30 * DAY),
                person => person - self.rng.random_range(10 * 60..2 * DAY),
            };
            org.add_time = before.max(start);
            let subject = Subject::Organization {
                organization: i,
                before: None,
                after: Some(org.last.clone()),
            };
            let owner = org.owner.0;
            self.push(org.add_time, Action::Added, owner, subject);
        }
        for (i, person) in tenant.persons.iter().enumerate() {
            let subject = Subject::Person {
                person: i,
                before: None,
                after: Some(person.last.clone()),
            };
            self.push(person.add_time, Action::Added, person.owner.0, subject);
        }
    }

    /// Some people change jobs or phones, some organizations move.
    fn edit_people_and_organizations(&mut self, tenant: &mut Tenant) {
        let end = self.config.start + self.config.days * DAY - DAY;
        for (i, person) in tenant.persons.iter_mut().enumerate() {
            if self.rng.random_range(0..5) != 0 {
                continue;
            }
            let at = self
                .rng
                .random_range(person.add_time + DAY..end.max(person.add_time + 2 * DAY));
            let before = person.last.clone();
            let mut title = self.rng.random_range(0..JOB_TITLES.len());
            if self.platform == Platform::HubSpot
                && before.job_title.as_deref() == Some(JOB_TITLES[title])
            {
                // HubSpot sends nothing for an edit that changes nothing.
                title = (title + 1) % JOB_TITLES.len();
            }
            person.last.job_title = Some(JOB_TITLES[title].to_owned());
            let after = Some(person.last.clone());
            let user = person.owner.0;
            self.push(
                at,
                Action::Updated,
                user,
                Subject::Person {
                    person: i,
                    before: Some(before),
                    after,
                },
            );
        }
        for (i, org) in tenant.organizations.iter_mut().enumerate() {
            if self.rng.random_range(0..7) != 0 {
                continue;
            }
            let at = self
                .rng
                .random_range(org.add_time + DAY..end.max(org.add_time + 2 * DAY));
            let before = org.last.clone();
            org.last.address = format!("{} Harbour Road", self.rng.random_range(1..200));
            let after = Some(org.last.clone());
            let user = org.owner.0;
            self.push(
                at,
                Action::Updated,
                user,
                Subject::Organization {
                    organization: i,
                    before: Some(before),
                    after,
                },
            );
        }
    }
}
