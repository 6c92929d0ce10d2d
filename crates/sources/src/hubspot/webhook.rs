//! HubSpot deliveries at the collector: an app's webhooks and a workflow's
//! "Send a webhook" action.
//!
//! **Routing.** An app sends every installed account's events to one URL,
//! `/webhooks/hubspot`: the tenant is the one whose `portal_id` the body
//! names (the portal most elements name; the rest are malformed). Posted to
//! `/webhooks/hubspot/{tenant}`, the body must be that tenant's portal.
//!
//! **Authentication.** `X-HubSpot-Signature-v3` over method, URI, body and
//! `X-HubSpot-Request-Timestamp` (older than five minutes is refused), or
//! the legacy v1/v2 `X-HubSpot-Signature` when the tenant allows them, with
//! the tenant's client secret. The URI is the one HubSpot called: the
//! tenant's `public_url` followed by the path and query the collector
//! received (a proxy in between may change the host). A workflow's record
//! without a signature may carry the tenant's `workflow_secret` instead.
//! The portal is checked once the request is authentic: another portal's
//! delivery on a tenant's address is refused (403).
//!
//! **Events.** A JSON array is an app's batch: each element becomes its own
//! event (its exact bytes), its object and action from `subscriptionType`
//! (`objectTypeId` for generic `object.*` subscriptions). An element that
//! breaks the rules is left out (the collector keeps it on the dead-letter
//! topic) while its neighbours are accepted: HubSpot retries a whole request
//! on any 4xx, which would duplicate them. A JSON object is a workflow's
//! record: one event. Anything else is refused whole (400).

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use super::model::{DeliveryBody, Partial, read_body, read_element, read_workflow_record};
use super::signature::{
    self, Legacy, SIGNATURE_HEADER, SIGNATURE_V3_HEADER, SignatureError, SignedRequest,
};
use super::{AppEvent, HubSpotTenant, NAME, tenant_settings};
use crate::{
    AuthFailure, Delivery, Prevalidated, Refusal, RejectedElement, SourceConfigError, SplitEvent,
    TenantOf, Warning, WebhookRequest, WebhookSource,
};

/// `payload_version` of an app webhook's events.
pub const PAYLOAD_VERSION_APP: &str = "webhooks-v3";
/// `payload_version` (and `action`) of a workflow's record.
pub const PAYLOAD_VERSION_WORKFLOW: &str = "workflow";
/// The header a workflow's "Send a webhook" action may send the tenant's
/// `workflow_secret` in (its authentication type "API key", key location "Request header").
pub const WORKFLOW_SECRET_HEADER: &str = "x-tributary-workflow-secret";
/// The query parameter it may send it in instead (key location "Query parameter").
pub const WORKFLOW_SECRET_PARAMETER: &str = "secret";
/// The query parameter declaring a workflow record's object (`?object=contact`).
pub const WORKFLOW_OBJECT_PARAMETER: &str = "object";

/// The `WWW-Authenticate` challenge of a 401.
const CHALLENGE: &str = "HubSpot-Signature-v3 realm=\"tributary\"";

const APP_EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x3b8e_5f1c_7d2a_4e96_b0c4_9a61_d2f3_8e17);
const WORKFLOW_EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x8c41_2d7e_95b3_4f0a_a6e2_1b7d_c93f_5a28);
const UNIDENTIFIED_ELEMENT_NAMESPACE: Uuid =
    Uuid::from_u128(0xd5a7_0e93_4b6c_4182_9f3d_6e2a_b18c_07f4);

/// The HubSpot source.
pub struct HubSpot {
    tenants: BTreeMap<String, HubSpotTenant>,
    /// Tenant by portal id.
    by_portal: BTreeMap<String, String>,
    /// What an unknown tenant's deliveries are checked against: default
    /// settings with a random client secret, so they fail as a wrong
    /// signature does, with the same answer.
    no_one: HubSpotTenant,
}

/// Builds the source from every tenant's `[tenants.<tenant>.hubspot]` section.
pub fn build(sections: Vec<(&str, &Value)>) -> Result<Box<dyn WebhookSource>, SourceConfigError> {
    Ok(Box::new(HubSpot::from_sections(sections)?))
}

impl HubSpot {
    /// The source of these tenants' sections. Deliveries are routed by
    /// portal, so a portal belongs to one tenant.
    pub fn from_sections(sections: Vec<(&str, &Value)>) -> Result<Self, SourceConfigError> {
        let mut tenants = BTreeMap::new();
        let mut by_portal = BTreeMap::new();
        for (tenant, section) in sections {
            let invalid = |reason: String| SourceConfigError::Tenant {
                tenant: tenant.to_owned(),
                source_name: NAME,
                reason,
            };
            let settings = tenant_settings(section).map_err(invalid)?;
            if let Some(other) = by_portal.insert(settings.portal_id.clone(), tenant.to_owned()) {
                return Err(invalid(format!(
                    "portal_id {} is tenant {other:?}'s too: deliveries are routed by portal, so a portal belongs to one tenant",
                    settings.portal_id
                )));
            }
            tenants.insert(tenant.to_owned(), settings);
        }
        let no_one = tenant_settings(&serde_json::json!({
            // Never a portal's: portal ids start at 1.
            "portal_id": "0",
            "client_secret": Uuid::new_v4().to_string(),
        }))
        .map_err(|reason| SourceConfigError::Tenant {
            tenant: String::new(),
            source_name: NAME,
            reason,
        })?;
        Ok(HubSpot {
            tenants,
            by_portal,
            no_one,
        })
    }
}

impl WebhookSource for HubSpot {
    fn name(&self) -> &'static str {
        NAME
    }

    fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }

    fn tenant_of(&self, request: &WebhookRequest<'_>) -> TenantOf {
        let body = match read_body(request.body) {
            Ok(body) => body,
            Err(refusal) => return TenantOf::Unreadable(refusal),
        };
        match body.portal() {
            Some(portal) => match self.by_portal.get(&portal) {
                Some(tenant) => TenantOf::Tenant(tenant.clone()),
                None => TenantOf::NotConfigured(format!("HubSpot portal {portal}")),
            },
            None => TenantOf::Unknown(
                "the delivery names no HubSpot portal (portalId): post it to /webhooks/hubspot/{tenant}".into(),
            ),
        }
    }

    fn authenticate(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
        self.authenticate_at(tenant, request, chrono::Utc::now().timestamp_millis())
    }

    fn split(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<Delivery, Refusal> {
        let settings = self.tenants.get(tenant).ok_or_else(|| {
            Refusal::Invalid(vec![crate::Violation {
                field: "$".into(),
                reason: format!("tenant {tenant:?} has no HubSpot settings"),
            }])
        })?;
        match read_body(request.body)? {
            DeliveryBody::Events(elements) => {
                let mut delivery = Delivery::default();
                for (index, element) in elements.iter().enumerate() {
                    let body = request.body.slice_ref(element.get().as_bytes());
                    let read = read_element(element.get(), Some(&settings.portal_id));
                    let rejected_keys = partial_keys(tenant, &read.partial, &body);
                    match read.finish() {
                        Ok((event, warnings)) => delivery.events.push(SplitEvent {
                            body,
                            keys: app_keys(&event, warnings),
                        }),
                        Err(violations) => delivery.rejected.push(RejectedElement {
                            index,
                            body,
                            violations,
                            keys: rejected_keys,
                        }),
                    }
                }
                Ok(delivery)
            }
            DeliveryBody::Workflow(record) => {
                let declared = request.query_parameter(WORKFLOW_OBJECT_PARAMETER);
                let record = read_workflow_record(record.get(), declared.as_deref())
                    .map_err(Refusal::Invalid)?;
                // The record's own modification time when it carries one, else when HubSpot sent it.
                let occurred_at_ms = record
                    .modified_at_ms
                    .or_else(|| {
                        request
                            .headers
                            .get(signature::TIMESTAMP_HEADER)
                            .and_then(|v| v.to_str().ok()?.parse().ok())
                    })
                    .unwrap_or_else(|| {
                        u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
                    });
                let keys = Prevalidated {
                    event_id: workflow_event_id(
                        tenant,
                        record.object,
                        &record.object_id,
                        request.body,
                    ),
                    payload_version: PAYLOAD_VERSION_WORKFLOW.into(),
                    object: record.object.into(),
                    object_id: record.object_id,
                    action: PAYLOAD_VERSION_WORKFLOW.into(),
                    attempt: 1,
                    occurred_at_micros: occurred_at_ms.saturating_mul(1000),
                    warnings: Vec::new(),
                };
                Ok(Delivery::single(request.body.clone(), keys))
            }
        }
    }

    fn auth_challenge(&self) -> &'static str {
        CHALLENGE
    }
}

impl HubSpot {
    /// [`WebhookSource::authenticate`] with the clock given (epoch milliseconds).
    pub fn authenticate_at(
        &self,
        tenant: &str,
        request: &WebhookRequest<'_>,
        now_ms: i64,
    ) -> Result<(), AuthFailure> {
        let settings = self.tenants.get(tenant).unwrap_or(&self.no_one);
        // An unreadable body is refused by `split`, once the request is authentic.
        let body = read_body(request.body).ok();
        let signed = [SIGNATURE_V3_HEADER, SIGNATURE_HEADER]
            .iter()
            .any(|header| request.headers.contains_key(*header));
        if signed {
            let uri = signed_uri(settings, request);
            let legacy = if settings.legacy_signatures {
                Legacy::Accept
            } else {
                Legacy::Refuse
            };
            let signed_request = SignedRequest {
                method: request.method.as_str(),
                uri: &uri,
                headers: request.headers,
                body: request.body,
            };
            signature::verify(
                settings.client_secret.expose(),
                &signed_request,
                now_ms,
                legacy,
            )
            .map_err(|err: SignatureError| {
                AuthFailure::InvalidBecause(format!("{}: {err}", err.reason()))
            })?;
        } else if let (Some(secret), Some(DeliveryBody::Workflow(_))) =
            (&settings.workflow_secret, &body)
        {
            match workflow_secret(request) {
                None => {
                    return Err(AuthFailure::MissingBecause(format!(
                        "signature_missing: neither X-HubSpot-Signature-v3 nor the workflow secret (header {WORKFLOW_SECRET_HEADER} or query parameter {WORKFLOW_SECRET_PARAMETER}) was sent"
                    )));
                }
                Some(given) if secret.matches(&given) => {}
                Some(_) => {
                    return Err(AuthFailure::InvalidBecause(
                        "workflow_secret_wrong: the workflow secret does not match".into(),
                    ));
                }
            }
        } else {
            return Err(AuthFailure::MissingBecause(format!(
                "signature_missing: missing header {SIGNATURE_V3_HEADER}"
            )));
        }
        // No delivery is authentic for no one (the secret is random).
        if !self.tenants.contains_key(tenant) {
            return Err(AuthFailure::Invalid);
        }
        // Authentic; is it this tenant's account?
        if let Some(body) = &body {
            let portals = body.portals();
            if !portals.is_empty() && !portals.contains(&settings.portal_id) {
                return Err(AuthFailure::Forbidden(format!(
                    "the delivery is for HubSpot portal {}, not tenant {tenant:?}'s portal {}",
                    portals.join(", "),
                    settings.portal_id
                )));
            }
        }
        Ok(())
    }
}

/// The URI HubSpot called, as its signatures cover it: the tenant's
/// `public_url` (else `https://` and the `Host` header) followed by the path
/// and query the collector received.
fn signed_uri(settings: &HubSpotTenant, request: &WebhookRequest<'_>) -> String {
    let path_and_query = request
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    match settings.public_base() {
        Some(base) => format!("{base}{path_and_query}"),
        None => {
            let host = request
                .headers
                .get(http::header::HOST)
                .and_then(|host| host.to_str().ok())
                .or_else(|| request.uri.authority().map(http::uri::Authority::as_str))
                .unwrap_or_default();
            format!("https://{host}{path_and_query}")
        }
    }
}

/// The workflow secret a request carries: its header, else its query parameter.
fn workflow_secret(request: &WebhookRequest<'_>) -> Option<Vec<u8>> {
    match request.headers.get(WORKFLOW_SECRET_HEADER) {
        Some(value) => Some(value.as_bytes().to_vec()),
        None => request
            .query_parameter(WORKFLOW_SECRET_PARAMETER)
            .map(String::into_bytes),
    }
}

/// The keys of a valid app-webhook event.
fn app_keys(event: &AppEvent, warnings: Vec<Warning>) -> Prevalidated {
    Prevalidated {
        event_id: app_event_id(
            &event.portal_id,
            event.subscription_id.as_deref(),
            &event.subscription_type,
            &event.object_id,
            &event.event_id,
            event.occurred_at_ms,
        ),
        payload_version: PAYLOAD_VERSION_APP.into(),
        object: event.object.into(),
        object_id: event.entity_id().into(),
        action: event.action.into(),
        attempt: event.attempt(),
        occurred_at_micros: event.occurred_at_ms.saturating_mul(1000),
        warnings,
    }
}

/// What can be told of a malformed element's keys. Its event id is the one
/// a valid element with the same readable fields would have (so HubSpot's
/// retries of it share one); without an `eventId`, one made of its bytes.
fn partial_keys(tenant: &str, partial: &Partial, body: &[u8]) -> Prevalidated {
    let event_id = match &partial.event_id {
        Some(event_id) => app_event_id(
            partial.portal_id.as_deref().unwrap_or_default(),
            partial.subscription_id.as_deref(),
            partial.subscription_type.as_deref().unwrap_or_default(),
            partial.object_id.as_deref().unwrap_or_default(),
            event_id,
            partial.occurred_at_ms.unwrap_or_default(),
        ),
        None => {
            let name = [b"hubspot/element\n", tenant.as_bytes(), b"\n", body].concat();
            Uuid::new_v5(&UNIDENTIFIED_ELEMENT_NAMESPACE, &name).to_string()
        }
    };
    Prevalidated {
        event_id,
        payload_version: PAYLOAD_VERSION_APP.into(),
        object: partial.object.unwrap_or_default().into(),
        object_id: partial.entity_id().unwrap_or_default().into(),
        action: partial.action.unwrap_or_default().into(),
        attempt: partial.attempt_number.unwrap_or(0).saturating_add(1),
        occurred_at_micros: partial.occurred_at_ms.unwrap_or(0).saturating_mul(1000),
        warnings: Vec::new(),
    }
}

/// The de-duplication id of an app-webhook event: UUID v5 of the portal,
/// subscription, subscription type, object, `eventId` and `occurredAt`.
/// HubSpot documents `eventId` as not unique on its own; none of these
/// changes when HubSpot retries or duplicates a delivery (`attemptNumber`
/// does, and is left out).
pub fn app_event_id(
    portal_id: &str,
    subscription_id: Option<&str>,
    subscription_type: &str,
    object_id: &str,
    event_id: &str,
    occurred_at_ms: u64,
) -> String {
    let name = format!(
        "hubspot/app\n{portal_id}\n{}\n{subscription_type}\n{object_id}\n{event_id}\n{occurred_at_ms}",
        subscription_id.unwrap_or_default()
    );
    Uuid::new_v5(&APP_EVENT_NAMESPACE, name.as_bytes()).to_string()
}

/// The de-duplication id of a workflow's record, which carries no event id:
/// UUID v5 of tenant, object, id and the body's bytes, identical for
/// HubSpot's retries of one request.
pub fn workflow_event_id(tenant: &str, object: &str, object_id: &str, body: &[u8]) -> String {
    let name = [
        format!("hubspot/workflow\n{tenant}\n{object}\n{object_id}\n").as_bytes(),
        body,
    ]
    .concat();
    Uuid::new_v5(&WORKFLOW_EVENT_NAMESPACE, &name).to_string()
}
