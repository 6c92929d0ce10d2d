//! The platforms Tributary takes events from, one folder each, behind one registry.
//!
//! A platform's folder (`src/<platform>/`) holds everything specific to it:
//! its tenant settings and registry entry (`mod.rs`), what the collector does
//! with a delivery (`webhook.rs`: authentication, handshakes, media types,
//! splitting a delivery into events and checking each, the answer), reading
//! its payloads (`model.rs`), its API client (`api.rs`), the enriched event it
//! makes (`enrich.rs`), that event's mapping into the canonical model
//! (`mapping.rs`) and its tests. The stages name no platform: they find it in
//! [`REGISTRY`] by the name in `/webhooks/{source}/...`,
//! `[tenants.<tenant>.<source>]` and the raw event's `source`, and use it
//! through [`WebhookSource`] (collector), [`SourceEnricher`] (enricher) and
//! [`Mapping`] (activator).
//!
//! Adding a platform: write `src/<platform>/` implementing [`WebhookSource`],
//! [`SourceEnricher`] and [`Mapping`] with its tenant settings and tests,
//! export a [`Platform`] from its `mod.rs`, and add that one line to
//! [`REGISTRY`]. Its fake API lives in `tributary-fake-apis` and its part of
//! the simulated world in `tributary-world`.
//! What every platform shares for enrichment (API calls within rate limits,
//! flat records, the contact-data policy, email validation) is in
//! `tributary-enrichment`.

pub mod checks;
pub mod dynamics;
pub mod enrich;
pub mod freshsales;
pub mod hubspot;
pub mod mapped;
pub mod pipedrive;
pub mod pull;
pub mod salesforce;
pub mod webhook;
pub mod zoho;

use std::collections::BTreeMap;

use tributary_config::Tenants;
use tributary_model::Mapping;

pub use enrich::{
    AccessCheck, BoxFuture, BuildSourceEnricher, EnrichFailure, Enriched, EnricherContext,
    FailureReason, SourceEnricher,
};
pub use webhook::{
    AuthFailure, BASIC_CHALLENGE, Delivery, JSON_MEDIA_TYPES, Prevalidated, Refusal, RefusalReply,
    RejectedElement, Reply, SplitEvent, TenantOf, Violation, Warning, WebhookRequest,
    WebhookSource,
};

/// Every platform, by the name used in `/webhooks/{source}/...`, in
/// `[tenants.<tenant>.<source>]` and as the raw event's `source`.
pub const REGISTRY: &[Platform] = &[
    pipedrive::PLATFORM,
    hubspot::PLATFORM,
    salesforce::PLATFORM,
    dynamics::PLATFORM,
    zoho::PLATFORM,
    freshsales::PLATFORM,
];

/// A platform's entry in the registry: its name and how each stage builds
/// its part of it from configuration (a stage that needs a new part of every
/// platform adds a member here).
pub struct Platform {
    pub name: &'static str,
    /// The collector's side: authentication, checks, keys.
    pub webhook: BuildWebhookSource,
    /// The enricher's side: the raw event to its flat enriched event.
    pub enricher: BuildSourceEnricher,
    /// The activator's side: the enriched event into the canonical model.
    pub mapping: &'static dyn Mapping,
    /// Which dashboard template validates the enriched events of each
    /// object (the enriched event's `event_object`).
    pub templates: &'static [TemplateRoute],
    /// Objects the platform sends in normal use that no dashboard needs
    /// (its webhooks cover every object by default). The enricher lets them
    /// refresh its caches, then counts them as ignored instead of passing
    /// them on, so the dead-letter topic holds only what needs a person.
    pub ignored_objects: &'static [&'static str],
    /// The collector's subscriptions to what the platform must be asked
    /// for (Salesforce Change Data Capture), if it has any.
    pub pull: Option<BuildPullSources>,
}

/// Builds a platform's pull subscriptions from every tenant's section for it.
pub type BuildPullSources = fn(
    tenants: Vec<(&str, &serde_json::Value)>,
    http: reqwest::Client,
) -> Result<Vec<Box<dyn pull::PullSource>>, SourceConfigError>;

/// Enriched events of these objects are validated against this template
/// (`schemas/templates/<template>/<version>.json`).
#[derive(Debug, Clone, Copy)]
pub struct TemplateRoute {
    pub objects: &'static [&'static str],
    pub template: &'static str,
}

/// Builds a platform's webhook source from every tenant's section for it.
pub type BuildWebhookSource = fn(
    tenants: Vec<(&str, &serde_json::Value)>,
) -> Result<Box<dyn WebhookSource>, SourceConfigError>;

/// The registered platform of that name.
pub fn platform(name: &str) -> Option<&'static Platform> {
    REGISTRY.iter().find(|platform| platform.name == name)
}

/// The mapping of `source`'s enriched events into the canonical model.
pub fn mapping(source: &str) -> Option<&'static dyn Mapping> {
    platform(source).map(|platform| platform.mapping)
}

/// The registered platforms' names, for messages.
pub fn known_names() -> String {
    REGISTRY
        .iter()
        .map(|platform| platform.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum SourceConfigError {
    #[error("[tenants.{tenant}.{source_name}]: {reason}")]
    Tenant {
        tenant: String,
        source_name: &'static str,
        reason: String,
    },
    #[error("[tenants.{tenant}.{source_name}]: unknown source; known sources: {known}")]
    UnknownSource {
        tenant: String,
        source_name: String,
        known: String,
    },
}

/// Every registered platform's webhook source, built from configuration.
pub struct Sources {
    by_name: BTreeMap<&'static str, Box<dyn WebhookSource>>,
}

impl Sources {
    /// Builds every registered source from `[tenants]`, failing on an unknown
    /// source name or an invalid tenant section.
    pub fn from_config(tenants: &Tenants) -> Result<Self, SourceConfigError> {
        for (tenant, source) in tenants.source_names() {
            if platform(source).is_none() {
                return Err(SourceConfigError::UnknownSource {
                    tenant: tenant.to_owned(),
                    source_name: source.to_owned(),
                    known: known_names(),
                });
            }
        }
        let mut built = Vec::with_capacity(REGISTRY.len());
        for platform in REGISTRY {
            let build = platform.webhook;
            built.push(build(tenants.for_source(platform.name).collect())?);
        }
        Ok(Sources::new(built))
    }

    /// These sources, by their names (a later one replaces an earlier one of
    /// the same name). The collector's tests use it for sources of their own.
    pub fn new(sources: impl IntoIterator<Item = Box<dyn WebhookSource>>) -> Self {
        Sources {
            by_name: sources
                .into_iter()
                .map(|source| (source.name(), source))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&dyn WebhookSource> {
        self.by_name.get(name).map(|source| &**source)
    }

    /// The sources' names, for the startup log.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

/// Every registered platform's pull subscriptions, from `[tenants]`.
pub fn pull_sources(
    tenants: &Tenants,
    http: reqwest::Client,
) -> Result<Vec<Box<dyn pull::PullSource>>, SourceConfigError> {
    let mut subscriptions = Vec::new();
    for platform in REGISTRY {
        if let Some(build) = platform.pull {
            subscriptions.extend(build(
                tenants.for_source(platform.name).collect(),
                http.clone(),
            )?);
        }
    }
    Ok(subscriptions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_source_in_config_fails_boot_and_names_the_known_ones() {
        let mut tenants = Tenants::default();
        tenants.insert(
            "acme",
            "pipedriv",
            json!({"username": "u", "password": "p"}),
        );
        let err = Sources::from_config(&tenants)
            .err()
            .expect("unknown source");
        let text = err.to_string();
        assert!(
            text.contains("pipedriv") && text.contains("pipedrive"),
            "{text}"
        );
    }

    #[test]
    fn configured_tenants_are_known_to_their_source_only() {
        let mut tenants = Tenants::default();
        tenants.insert(
            "acme",
            "pipedrive",
            json!({"username": "u", "password": "p"}),
        );
        let sources = Sources::from_config(&tenants).expect("builds");
        let pipedrive = sources.get("pipedrive").expect("registered");
        assert!(pipedrive.has_tenant("acme"));
        assert!(!pipedrive.has_tenant("globex"));
        let hubspot = sources.get("hubspot").expect("registered");
        assert!(!hubspot.has_tenant("acme"));
        assert!(
            !sources
                .get("salesforce")
                .expect("registered")
                .has_tenant("acme")
        );
        assert!(sources.get("legacycrm").is_none());
    }

    #[test]
    fn registry_names_are_unique_and_each_source_answers_to_its_own() {
        let mut names: Vec<_> = REGISTRY.iter().map(|platform| platform.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len(), "a name registered twice");
        let sources = Sources::from_config(&Tenants::default()).expect("builds");
        for platform in REGISTRY {
            let source = sources.get(platform.name).expect("built");
            assert_eq!(source.name(), platform.name);
            assert_eq!(
                super::platform(platform.name).map(|found| found.name),
                Some(platform.name)
            );
        }
    }
}
