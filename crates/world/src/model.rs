//! What a simulated CRM account holds, and the changes made to it. The
//! model is the platforms' common ground; each platform renders it in its
//! own shapes (`webhooks`, `api` and `enriched` for Pipedrive, `hubspot/`
//! for HubSpot).

/// Seconds in a day and an hour.
pub const DAY: i64 = 86_400;
pub const HOUR: i64 = 3_600;

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The stage's id in its CRM, verbatim (Pipedrive's numbers, HubSpot's
    /// internal names such as `appointmentscheduled`).
    pub id: String,
    pub name: &'static str,
    pub order: i64,
    /// The CRM's win probability of a deal in this stage, in percent.
    pub probability: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The pipeline's id in its CRM, verbatim (`default` for HubSpot's own).
    pub id: String,
    pub name: &'static str,
    /// The open stages, in order. A deal's status says whether it is won or lost.
    pub stages: Vec<Stage>,
    /// Where the CRM keeps won and lost deals as stages of the pipeline
    /// (HubSpot's `closedwon` and `closedlost`); Pipedrive has none.
    pub won_stage: Option<Stage>,
    pub lost_stage: Option<Stage>,
}

impl Stage {
    /// The id as a number, as Pipedrive sends it.
    pub fn numeric_id(&self) -> i64 {
        self.id.parse().expect("a Pipedrive stage id is a number")
    }
}

impl Pipeline {
    /// The id as a number, as Pipedrive sends it.
    pub fn numeric_id(&self) -> i64 {
        self.id
            .parse()
            .expect("a Pipedrive pipeline id is a number")
    }
}

/// Which CRM a tenant's account is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Pipedrive,
    HubSpot,
    Zoho,
    Dynamics,
    Salesforce,
}

impl Platform {
    /// The source name: in `/webhooks/{source}`, `[tenants.<t>.<source>]` and every record.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Pipedrive => "pipedrive",
            Platform::HubSpot => "hubspot",
            Platform::Zoho => "zoho",
            Platform::Dynamics => "dynamics",
            Platform::Salesforce => "salesforce",
        }
    }

    /// Whether won and lost are stages of the pipeline (HubSpot's
    /// `closedwon`, Zoho's and Salesforce's `Closed Won`): a reopened deal
    /// then enters an open stage again.
    pub fn outcome_is_a_stage(self) -> bool {
        matches!(
            self,
            Platform::HubSpot | Platform::Zoho | Platform::Salesforce
        )
    }
}

/// A sales rep (a Pipedrive user, a HubSpot owner): id and name.
pub type Rep = (i64, &'static str);

/// Option ids and labels of the account's custom fields (enum options are
/// sent as ids; the enricher resolves them through the field definitions).
pub const MARKETING_SOURCES: [(i64, &str); 5] = [
    (41, "LinkedIn"),
    (42, "Referral"),
    (43, "Webinar"),
    (44, "Google Ads"),
    (45, "Trade fair"),
];
pub const COMPANY_SIZES: [(i64, &str); 4] =
    [(26, "micro"), (27, "small"), (28, "medium"), (29, "large")];
pub const INDUSTRIES: [(i64, &str); 5] = [
    (19, "health"),
    (20, "retail"),
    (21, "manufacturing"),
    (22, "software"),
    (23, "logistics"),
];

/// Custom field keys (40-character hashes, as Pipedrive makes them).
pub const SOURCE_FIELD: &str = "5f2c8e1a9b0d4c7e8f6a3b2c1d0e9f8a7b6c5d4e";
pub const CAMPAIGN_FIELD: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
pub const SIZE_FIELD: &str = "8d1e0f2a3b4c5d6e7f8091a2b3c4d5e6f7081920";
pub const INDUSTRY_FIELD: &str = "c0ffee00d15ea5e0ba5eba11deadbeef00c0ffee";

#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationState {
    pub name: String,
    pub address: String,
    /// Option ids of the custom fields.
    pub size: i64,
    pub industry: i64,
}

#[derive(Debug, Clone)]
pub struct Organization {
    pub id: i64,
    pub owner: Rep,
    pub add_time: i64,
    pub last: OrganizationState,
}

/// How the email verifier judges an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailClass {
    /// Deliverable, found on `sources` web pages.
    Valid {
        sources: usize,
    },
    Invalid,
    Disposable,
    Webmail,
    AcceptAll,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PersonState {
    pub job_title: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub email: String,
    pub email_class: EmailClass,
    pub org: usize,
    pub owner: Rep,
    pub add_time: i64,
    pub last: PersonState,
}

/// A deal's changing fields, as of one change.
#[derive(Debug, Clone, PartialEq)]
pub struct DealState {
    /// Indexes into the tenant's pipelines and that pipeline's stages.
    pub pipeline: usize,
    pub stage: usize,
    /// `open`, `won` or `lost`.
    pub status: &'static str,
    pub value: f64,
    pub title: String,
    pub won_time: Option<i64>,
    pub lost_time: Option<i64>,
    pub stage_change_time: i64,
    pub update_time: i64,
}

#[derive(Debug, Clone)]
pub struct Deal {
    pub id: i64,
    pub owner: Rep,
    pub person: usize,
    pub org: usize,
    /// A `MARKETING_SOURCES` entry.
    pub source: Option<(i64, &'static str)>,
    pub campaign: Option<String>,
    /// The deal's own win probability, overriding its stage's (Pipedrive).
    pub probability: Option<f64>,
    pub expected_close: chrono::NaiveDate,
    pub add_time: i64,
    /// ISO 4217 code of its value.
    pub currency: &'static str,
    /// Each open stage entered: (pipeline index, stage index, at). In
    /// HubSpot a reopened deal leaves its won or lost stage and so enters
    /// an open stage again, which counts as an entry.
    pub entries: Vec<(usize, usize, i64)>,
    /// How many times it was won (a deal reopened and won again counts twice).
    pub wins: usize,
    pub deleted: bool,
    /// Merged into this deal (and so deleted).
    pub merged_into: Option<i64>,
    /// When its latest change happened.
    pub last_at: i64,
    pub last: DealState,
}

impl Deal {
    pub fn source_label(&self) -> Option<&'static str> {
        self.source.map(|(_, label)| label)
    }
}

impl Tenant {
    /// The stage a deal's state is in: its open stage, or its pipeline's
    /// won or lost stage where the platform has them.
    pub fn stage_in(&self, state: &DealState) -> &Stage {
        let pipeline = &self.pipelines[state.pipeline];
        let closed = match state.status {
            "won" => pipeline.won_stage.as_ref(),
            "lost" => pipeline.lost_stage.as_ref(),
            _ => None,
        };
        closed.unwrap_or(&pipeline.stages[state.stage])
    }

    pub fn platform(&self) -> Platform {
        match self.crm {
            CrmAccount::Pipedrive(_) => Platform::Pipedrive,
            CrmAccount::HubSpot(_) => Platform::HubSpot,
            CrmAccount::Zoho(_) => Platform::Zoho,
            CrmAccount::Dynamics(_) => Platform::Dynamics,
            CrmAccount::Salesforce(_) => Platform::Salesforce,
        }
    }

    pub fn pipedrive(&self) -> Option<&PipedriveAccount> {
        match &self.crm {
            CrmAccount::Pipedrive(account) => Some(account),
            CrmAccount::HubSpot(_)
            | CrmAccount::Zoho(_)
            | CrmAccount::Dynamics(_)
            | CrmAccount::Salesforce(_) => None,
        }
    }

    pub fn hubspot(&self) -> Option<&crate::hubspot::HubSpotAccount> {
        match &self.crm {
            CrmAccount::HubSpot(account) => Some(account),
            CrmAccount::Pipedrive(_)
            | CrmAccount::Zoho(_)
            | CrmAccount::Dynamics(_)
            | CrmAccount::Salesforce(_) => None,
        }
    }

    /// The rate of `currency` into the home currency, if one is configured.
    pub fn rate(&self, currency: &str) -> Option<f64> {
        if currency == self.home_currency {
            return Some(1.0);
        }
        self.rates
            .iter()
            .find(|(c, _)| *c == currency)
            .map(|(_, r)| *r)
    }
}

/// An activity's changing fields, as of one change: it may be reassigned,
/// retyped (not in HubSpot, whose engagements keep their type), marked done
/// on another day, undone or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityState {
    /// The rep it is assigned to.
    pub user: Rep,
    /// `call`, `email`, `meeting`, `task`, `deadline`, ... (HubSpot's
    /// engagements: `call`, `email`, `meeting`, `task`).
    pub kind: &'static str,
    pub subject: String,
    /// When it was marked done, if it is done.
    pub done_at: Option<i64>,
    pub update_time: i64,
}

#[derive(Debug, Clone)]
pub struct Activity {
    pub id: i64,
    pub deal: Option<usize>,
    pub person: usize,
    pub org: usize,
    pub add_time: i64,
    pub due_date: chrono::NaiveDate,
    pub deleted: bool,
    pub last: ActivityState,
}

/// Currencies a tenant's deals are in, beside its home currency, with the
/// rate into it (home units per unit). Rates are exact binary fractions, so
/// converted sums are exact in any order. `CHF` has no rate: its deals are
/// shown apart, never summed.
pub const FOREIGN_CURRENCIES: [(&str, Option<f64>); 3] =
    [("USD", Some(0.875)), ("BRL", Some(0.1875)), ("CHF", None)];

/// A Pipedrive account: its company, API token and webhooks.
#[derive(Debug, Clone)]
pub struct PipedriveAccount {
    pub company_id: i64,
    pub host: String,
    /// The API token the fake API accepts and the enricher sends.
    pub api_token: String,
    /// HTTP Basic credentials the webhooks carry.
    pub webhook_user: String,
    pub webhook_password: String,
    pub webhook_v1_id: String,
    pub webhook_v2_id: String,
}

/// The CRM account a tenant is, with what reaching it takes.
#[derive(Debug, Clone)]
pub enum CrmAccount {
    Pipedrive(PipedriveAccount),
    HubSpot(crate::hubspot::HubSpotAccount),
    Zoho(crate::zoho::ZohoAccount),
    Dynamics(crate::dynamics::DynamicsAccount),
    Salesforce(crate::salesforce::SalesforceAccount),
}

/// One CRM account (a tenant of the pipeline).
pub struct Tenant {
    pub name: String,
    /// The currency the dashboards show, and the configured rates into it.
    pub home_currency: &'static str,
    pub rates: Vec<(&'static str, f64)>,
    pub crm: CrmAccount,
    pub pipelines: Vec<Pipeline>,
    pub reps: Vec<Rep>,
    pub organizations: Vec<Organization>,
    pub persons: Vec<Person>,
    pub deals: Vec<Deal>,
    pub activities: Vec<Activity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Added,
    Updated,
    Deleted,
    /// The survivor of a merge (in Pipedrive the deal merged away is
    /// `Deleted`; HubSpot reports the merge once, for the survivor).
    Merged,
    /// A deleted deal brought back (HubSpot).
    Restored,
}

impl Action {
    /// The word webhooks v1 and the enriched events use.
    pub fn word(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
            Action::Merged => "merged",
            Action::Restored => "restored",
        }
    }
}

/// What changed. `before` is the state the change left (none when added),
/// `after` the state it made (none when deleted).
#[derive(Debug, Clone)]
pub enum Subject {
    Deal {
        deal: usize,
        before: Option<DealState>,
        after: Option<DealState>,
        /// Part of a bulk edit of several deals.
        bulk: bool,
        /// Merged into this deal id (on the delete) or absorbed it (on the survivor's event).
        merged_to: Option<i64>,
        merged_from: Option<i64>,
    },
    Activity {
        activity: usize,
        before: Option<ActivityState>,
        after: Option<ActivityState>,
    },
    Person {
        person: usize,
        before: Option<PersonState>,
        after: Option<PersonState>,
    },
    Organization {
        organization: usize,
        before: Option<OrganizationState>,
        after: Option<OrganizationState>,
    },
}

/// One change in one account: what Pipedrive sends one webhook for, and
/// HubSpot one or more events.
#[derive(Debug, Clone)]
pub struct Change {
    pub tenant: usize,
    /// Microseconds; the whole seconds are the change's time.
    pub at_micro: i64,
    pub action: Action,
    /// The rep who made it.
    pub user: i64,
    pub subject: Subject,
}

impl Change {
    pub fn at(&self) -> i64 {
        self.at_micro.div_euclid(1_000_000)
    }

    /// `deal`, `activity`, `person` or `organization`.
    pub fn object(&self) -> &'static str {
        match self.subject {
            Subject::Deal { .. } => "deal",
            Subject::Activity { .. } => "activity",
            Subject::Person { .. } => "person",
            Subject::Organization { .. } => "organization",
        }
    }

    /// The changed entity's id.
    pub fn object_id(&self, tenant: &Tenant) -> i64 {
        match &self.subject {
            Subject::Deal { deal, .. } => tenant.deals[*deal].id,
            Subject::Activity { activity, .. } => tenant.activities[*activity].id,
            Subject::Person { person, .. } => tenant.persons[*person].id,
            Subject::Organization { organization, .. } => tenant.organizations[*organization].id,
        }
    }
}
