//! A simulated CRM world for the demo, the end-to-end tests and the
//! benchmarks: one or more Pipedrive accounts over a period (default 120
//! days), seeded and deterministic.
//!
//! - [`World::generate`] simulates the accounts: pipelines and stages with
//!   win probabilities, reps, organizations and people, deals moving through
//!   the stages and won, lost, reopened, edited, deleted and merged, and the
//!   reps' activities. Every change is kept, in time order ([`World::changes`]).
//! - [`World::deliveries`] renders them as the webhooks Pipedrive sends (v1 or
//!   v2, with retries, duplicates, late arrivals, bulk edits).
//! - [`World::accounts`], [`World::apply`] and [`World::email_verdicts`] are
//!   what the fake APIs answer, as of each change.
//! - [`World::expected_panels`] is the ground truth: every dashboard number
//!   computed from the world itself, never from the pipeline.
//! - [`World::enriched_events`] are the changes as enriched events, for tests
//!   of the activator alone.

mod api;
mod enriched;
mod model;
mod simulate;
mod truth;
mod webhooks;

pub use api::definitions;
pub use model::*;
pub use simulate::{DEFAULT_START, TenantSpec, WorldConfig};
pub use truth::{PanelRows, differences, same_value};
pub use webhooks::{Delivery, Habits, Version};

pub struct World {
    pub config: WorldConfig,
    pub tenants: Vec<Tenant>,
    /// Every change of every account, in time order.
    pub changes: Vec<Change>,
}

impl World {
    pub fn generate(config: WorldConfig) -> World {
        let (tenants, changes) = simulate::simulate(&config);
        World {
            config,
            tenants,
            changes,
        }
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
