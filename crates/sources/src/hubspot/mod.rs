//! HubSpot: app webhooks and the CRM API.

pub mod signature;
