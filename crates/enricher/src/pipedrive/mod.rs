//! Pipedrive enrichment: the API lookups and the join into one flat event.

pub mod api;
mod enrich;

pub use enrich::{PipedriveEnricher, TenantEnrichment};
