//! A simulated CRM world for the demo, the end-to-end tests and the
//! benchmarks: one or more Pipedrive, HubSpot, Zoho CRM, Dynamics 365 and
//! Salesforce accounts over a period (default 120 days), seeded and
//! deterministic.
//!
//! - [`World::generate`] simulates the accounts: pipelines and stages with
//!   win probabilities, reps, organizations and people, deals moving through
//!   the stages and won, lost, reopened, edited, deleted (in HubSpot, some
//!   restored) and merged, and the reps' activities. Every change is kept,
//!   in time order ([`World::changes`]). The simulation is the same for
//!   every platform; each tenant's platform renders it.
//! - [`World::deliveries`] renders them as the webhooks each platform
//!   sends: Pipedrive's v1 or v2 (with retries, duplicates, late arrivals,
//!   bulk edits), HubSpot's signed batches of thin events
//!   ([`World::hubspot_events`]), Zoho's channel notifications with the
//!   changed values (`zoho/`), Dynamics' webhook contexts (`dynamics/`),
//!   Salesforce's Outbound Messages and change events (`salesforce/`);
//!   [`World::delivery_path`] and [`World::delivery_headers`] say where and
//!   how each is posted (a change event is published on the fake Pub/Sub
//!   API instead).
//! - [`World::accounts`], [`World::apply`], [`World::hubspot_portals`],
//!   [`World::apply_to_portal`], [`World::zoho_state`],
//!   [`World::dynamics_state`], [`World::salesforce_state`],
//!   [`World::apply_to_salesforce`], [`World::salesforce_pubsub_state`] and
//!   [`World::email_verdicts`] are what the fake APIs answer, as of each
//!   change.
//! - [`World::expected_panels`] is the ground truth: every dashboard number
//!   computed from the world itself, never from the pipeline.
//! - [`World::enriched_events`] are the changes as enriched events, for tests
//!   of the activator alone.

mod api;
pub mod dynamics;
mod enriched;
pub mod hubspot;
mod model;
pub mod salesforce;
mod simulate;
mod truth;
mod webhooks;
pub mod zoho;

pub use api::{Apis, definitions};
pub use dynamics::DynamicsAccount;
pub use hubspot::{HubSpotAccount, HubSpotEvent, HubSpotOwner};
pub use model::*;
pub use salesforce::SalesforceAccount;
pub use simulate::{DEFAULT_START, TenantSpec, WorldConfig};
pub use truth::{PanelRows, differences, same_value};
pub use webhooks::{Delivery, Habits, Version};
pub use zoho::ZohoAccount;

pub struct World {
    pub config: WorldConfig,
    pub tenants: Vec<Tenant>,
    /// Every change of every account, in time order.
    pub changes: Vec<Change>,
    /// The events HubSpot sends for its tenants' changes.
    hubspot_events: Vec<HubSpotEvent>,
}

impl World {
    pub fn generate(config: WorldConfig) -> World {
        let (tenants, changes) = simulate::simulate(&config);
        let mut world = World {
            config,
            tenants,
            changes,
            hubspot_events: Vec::new(),
        };
        let mut events = Vec::new();
        world.replay_hubspot(|_, _, change_events| events.extend(change_events));
        world.hubspot_events = events;
        world
    }

    /// How many distinct events the pipeline loads for the world: one per
    /// Pipedrive, Zoho, Dynamics or Salesforce change, one per HubSpot event
    /// (a change may make several), however often each is delivered.
    pub fn distinct_events(&self) -> usize {
        let one_each = self
            .changes
            .iter()
            .filter(|c| {
                matches!(
                    self.tenants[c.tenant].platform(),
                    Platform::Pipedrive
                        | Platform::Zoho
                        | Platform::Dynamics
                        | Platform::Salesforce
                )
            })
            .count();
        one_each + self.hubspot_events.len()
    }

    pub fn tenant(&self, name: &str) -> &Tenant {
        self.tenants
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tenant {name:?} in the world"))
    }

    /// Each tenant's home currency and rates as configuration
    /// (`[tenants.<t>]` sections), as the activator reads them.
    pub fn tenants_toml(&self) -> String {
        let mut toml = String::new();
        for tenant in &self.tenants {
            toml.push_str(&format!(
                "[tenants.{}]\nhome_currency = \"{}\"\n[tenants.{}.currency_rates]\n",
                tenant.name, tenant.home_currency, tenant.name
            ));
            for (currency, rate) in &tenant.rates {
                toml.push_str(&format!("{currency} = {rate:?}\n"));
            }
        }
        toml
    }

    /// The first and last change's time (seconds).
    pub fn span(&self) -> (i64, i64) {
        let first = self.changes.first().map_or(self.config.start, Change::at);
        let last = self.changes.last().map_or(self.config.start, Change::at);
        (first, last)
    }
}

#[cfg(test)]
mod tests;
