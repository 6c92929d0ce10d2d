//! HubSpot's webhook payloads: the elements of an app-webhook batch and the
//! record a workflow's "Send a webhook" action posts.
//!
//! Every id is kept as the digits HubSpot sent, whether as a JSON number or
//! a string: values are read from their raw JSON text, never through a
//! floating-point number, so a 19-digit id survives exactly.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::checks::Checks;
use crate::{Refusal, Violation, Warning};

/// The HubSpot objects Tributary takes, by the name webhooks give them.
pub const OBJECTS: &[&str] = &[
    "deal", "contact", "company", "call", "email", "meeting", "task", "note",
];

/// Object type ids of generic (`object.*`) subscriptions, for [`OBJECTS`].
pub const OBJECT_TYPE_IDS: &[(&str, &str)] = &[
    ("0-1", "contact"),
    ("0-2", "company"),
    ("0-3", "deal"),
    ("0-27", "task"),
    ("0-46", "note"),
    ("0-47", "meeting"),
    ("0-48", "call"),
    ("0-49", "email"),
];

/// The part of `subscriptionType` after the dot.
pub const ACTIONS: &[&str] = &[
    "creation",
    "propertyChange",
    "deletion",
    "merge",
    "restore",
    "associationChange",
    "privacyDeletion",
];

/// The object a type id stands for.
pub fn object_of_type_id(type_id: &str) -> Option<&'static str> {
    OBJECT_TYPE_IDS
        .iter()
        .find(|(id, _)| *id == type_id)
        .map(|(_, object)| *object)
}

fn object_named(name: &str) -> Option<&'static str> {
    OBJECTS.iter().copied().find(|object| *object == name)
}

fn action_named(name: &str) -> Option<&'static str> {
    ACTIONS.iter().copied().find(|action| *action == name)
}

fn type_ids_list() -> String {
    OBJECT_TYPE_IDS
        .iter()
        .map(|(id, object)| format!("{id} {object}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A delivery's body: an app webhook's batch, or a workflow's record.
#[derive(Debug)]
pub enum DeliveryBody<'a> {
    /// A JSON array: app-webhook events, each element as its raw JSON.
    Events(Vec<&'a RawValue>),
    /// A JSON object: the record a workflow's "Send a webhook" action posts.
    Workflow(&'a RawValue),
}

/// Reads a delivery's body: not JSON, or JSON that is neither an array nor
/// an object, is refused whole.
pub fn read_body(bytes: &[u8]) -> Result<DeliveryBody<'_>, Refusal> {
    let body: &RawValue =
        serde_json::from_slice(bytes).map_err(|err| Refusal::MalformedJson(err.to_string()))?;
    match first_byte(body) {
        b'[' => serde_json::from_str(body.get())
            .map(DeliveryBody::Events)
            .map_err(|err| Refusal::MalformedJson(err.to_string())),
        b'{' => Ok(DeliveryBody::Workflow(body)),
        _ => Err(Refusal::Invalid(vec![Violation {
            field: "$".into(),
            reason: format!(
                "must be a JSON array of webhook events (an app's webhooks) or a JSON object (a workflow's \"Send a webhook\" action), got {}",
                raw_kind(body)
            ),
        }])),
    }
}

impl DeliveryBody<'_> {
    /// The HubSpot account the delivery is for: for a batch, the `portalId`
    /// most of its elements name (the first one's on a tie; HubSpot sends one
    /// account's events per request); for a workflow record, its `portalId`
    /// or `portal-id`. `None` when nothing readable names one.
    pub fn portal(&self) -> Option<String> {
        match self {
            DeliveryBody::Events(elements) => {
                let mut counts: Vec<(String, usize)> = Vec::new();
                for element in elements {
                    let Some(portal) = portal_of(element) else {
                        continue;
                    };
                    match counts.iter_mut().find(|(known, _)| *known == portal) {
                        Some((_, count)) => *count += 1,
                        None => counts.push((portal, 1)),
                    }
                }
                // max_by_key keeps the last of equals: walk backwards for the first.
                counts
                    .into_iter()
                    .rev()
                    .max_by_key(|(_, count)| *count)
                    .map(|(portal, _)| portal)
            }
            DeliveryBody::Workflow(record) => {
                let members: BTreeMap<String, &RawValue> =
                    serde_json::from_str(record.get()).ok()?;
                ["portalId", "portal-id"]
                    .iter()
                    .find_map(|key| members.get(*key).and_then(|raw| id_of(raw).ok()))
            }
        }
    }

    /// Every portal the batch's elements name, each once, in order.
    pub fn portals(&self) -> Vec<String> {
        let mut portals: Vec<String> = Vec::new();
        if let DeliveryBody::Events(elements) = self {
            for element in elements {
                if let Some(portal) = portal_of(element)
                    && !portals.contains(&portal)
                {
                    portals.push(portal);
                }
            }
        } else if let Some(portal) = self.portal() {
            portals.push(portal);
        }
        portals
    }
}

/// The `portalId` of an element that is an object and names one.
fn portal_of(element: &RawValue) -> Option<String> {
    if first_byte(element) != b'{' {
        return None;
    }
    let fields: PortalOnly<'_> = serde_json::from_str(element.get()).ok()?;
    id_of(fields.portal_id?).ok()
}

#[derive(Deserialize)]
struct PortalOnly<'a> {
    #[serde(rename = "portalId", borrow, default)]
    portal_id: Option<&'a RawValue>,
}

/// One event of an app webhook, as HubSpot documents its fields. Ids are
/// the digits HubSpot sent; absent optional fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEvent {
    /// `eventId`: HubSpot's id of the change; not guaranteed unique alone.
    pub event_id: String,
    pub subscription_id: Option<String>,
    pub portal_id: String,
    pub app_id: Option<String>,
    /// `occurredAt`, epoch milliseconds.
    pub occurred_at_ms: u64,
    /// `subscriptionType` (or `eventType`, as some of HubSpot's examples
    /// name it), verbatim: `deal.propertyChange`, `object.creation`...
    pub subscription_type: String,
    /// From the subscription type's prefix, or `objectTypeId` for generic ones.
    pub object: &'static str,
    /// The part after the dot.
    pub action: &'static str,
    /// `objectTypeId` (or `fromObjectTypeId` on association changes) when sent.
    pub object_type_id: Option<String>,
    /// `attemptNumber`: 0 for the first delivery.
    pub attempt_number: Option<u32>,
    /// `objectId`; association changes, which may not send it, use `fromObjectId`.
    pub object_id: String,
    pub change_flag: Option<String>,
    pub change_source: Option<String>,
    pub source_id: Option<String>,
    pub property_name: Option<String>,
    /// The new value as HubSpot sent it (a string; other scalars as their JSON text).
    pub property_value: Option<String>,
    pub primary_object_id: Option<String>,
    pub merged_object_ids: Vec<String>,
    pub new_object_id: Option<String>,
    pub number_of_properties_moved: Option<u64>,
    pub association_type: Option<String>,
    pub from_object_id: Option<String>,
    pub to_object_id: Option<String>,
    pub association_removed: Option<bool>,
    pub is_primary_association: Option<bool>,
}

impl AppEvent {
    /// The record the event is about, for ordering and partitioning: a
    /// merge's surviving (primary) record, else the object.
    pub fn entity_id(&self) -> &str {
        match (self.action, &self.primary_object_id) {
            ("merge", Some(primary)) => primary,
            _ => &self.object_id,
        }
    }

    /// The delivery attempt, 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt_number.unwrap_or(0).saturating_add(1)
    }
}

/// Reads one element of an app-webhook batch: the event, with warnings, or
/// every rule it breaks.
pub fn read_app_event(element: &str) -> Result<(AppEvent, Vec<Warning>), Vec<Violation>> {
    read_element(element, None).finish()
}

/// What could be read of an element, whether or not it is valid.
#[derive(Debug, Default)]
pub(crate) struct Partial {
    pub event_id: Option<String>,
    pub subscription_id: Option<String>,
    pub portal_id: Option<String>,
    pub subscription_type: Option<String>,
    pub object: Option<&'static str>,
    pub action: Option<&'static str>,
    pub object_id: Option<String>,
    pub primary_object_id: Option<String>,
    pub occurred_at_ms: Option<u64>,
    pub attempt_number: Option<u32>,
}

impl Partial {
    /// The object id of the record the event is about (see [`AppEvent::entity_id`]).
    pub fn entity_id(&self) -> Option<&str> {
        match (self.action, &self.primary_object_id) {
            (Some("merge"), Some(primary)) => Some(primary),
            _ => self.object_id.as_deref(),
        }
    }
}

/// An element read: its fields and the checks' outcome.
pub(crate) struct ElementRead {
    pub partial: Partial,
    event: Option<AppEvent>,
    checks: Checks,
}

impl ElementRead {
    pub fn finish(self) -> Result<(AppEvent, Vec<Warning>), Vec<Violation>> {
        let warnings = self.checks.finish()?;
        // Every required field was either read or reported as a violation.
        self.event.map(|event| (event, warnings)).ok_or_else(|| {
            vec![Violation {
                field: "$".into(),
                reason: "required fields are missing".into(),
            }]
        })
    }
}

/// The members of an element, each as raw JSON.
#[derive(Deserialize, Default)]
struct RawElement<'a> {
    #[serde(rename = "eventId", borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(rename = "subscriptionId", borrow, default)]
    subscription_id: Option<&'a RawValue>,
    #[serde(rename = "portalId", borrow, default)]
    portal_id: Option<&'a RawValue>,
    #[serde(rename = "appId", borrow, default)]
    app_id: Option<&'a RawValue>,
    #[serde(rename = "occurredAt", borrow, default)]
    occurred_at: Option<&'a RawValue>,
    #[serde(rename = "subscriptionType", borrow, default)]
    subscription_type: Option<&'a RawValue>,
    #[serde(rename = "eventType", borrow, default)]
    event_type: Option<&'a RawValue>,
    #[serde(rename = "attemptNumber", borrow, default)]
    attempt_number: Option<&'a RawValue>,
    #[serde(rename = "objectId", borrow, default)]
    object_id: Option<&'a RawValue>,
    #[serde(rename = "objectTypeId", borrow, default)]
    object_type_id: Option<&'a RawValue>,
    #[serde(rename = "fromObjectTypeId", borrow, default)]
    from_object_type_id: Option<&'a RawValue>,
    #[serde(rename = "changeFlag", borrow, default)]
    change_flag: Option<&'a RawValue>,
    #[serde(rename = "changeSource", borrow, default)]
    change_source: Option<&'a RawValue>,
    #[serde(rename = "sourceId", borrow, default)]
    source_id: Option<&'a RawValue>,
    #[serde(rename = "propertyName", borrow, default)]
    property_name: Option<&'a RawValue>,
    #[serde(rename = "propertyValue", borrow, default)]
    property_value: Option<&'a RawValue>,
    #[serde(rename = "primaryObjectId", borrow, default)]
    primary_object_id: Option<&'a RawValue>,
    #[serde(rename = "mergedObjectIds", borrow, default)]
    merged_object_ids: Option<&'a RawValue>,
    #[serde(rename = "newObjectId", borrow, default)]
    new_object_id: Option<&'a RawValue>,
    #[serde(rename = "numberOfPropertiesMoved", borrow, default)]
    number_of_properties_moved: Option<&'a RawValue>,
    #[serde(rename = "associationType", borrow, default)]
    association_type: Option<&'a RawValue>,
    #[serde(rename = "fromObjectId", borrow, default)]
    from_object_id: Option<&'a RawValue>,
    #[serde(rename = "toObjectId", borrow, default)]
    to_object_id: Option<&'a RawValue>,
    #[serde(rename = "associationRemoved", borrow, default)]
    association_removed: Option<&'a RawValue>,
    #[serde(rename = "isPrimaryAssociation", borrow, default)]
    is_primary_association: Option<&'a RawValue>,
}

/// Whether an absent field is a violation, a warning or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Expected,
    Optional,
}

/// Field reads that record what is wrong in `checks`.
struct Fields<'c> {
    checks: &'c mut Checks,
}

impl Fields<'_> {
    fn read<T>(
        &mut self,
        key: &str,
        raw: Option<&RawValue>,
        need: Need,
        parse: impl Fn(&RawValue) -> Result<T, String>,
    ) -> Option<T> {
        match raw {
            None => {
                match need {
                    Need::Required => self.checks.violation(key, "required field is missing"),
                    Need::Expected => self.checks.warning(
                        "missing_field",
                        key,
                        "a field HubSpot always sends is missing",
                    ),
                    Need::Optional => {}
                }
                None
            }
            Some(raw) => match parse(raw) {
                Ok(value) => Some(value),
                Err(reason) => {
                    self.checks.violation(key, reason);
                    None
                }
            },
        }
    }
}

/// Reads and checks one element. `portal`: the account the request is for;
/// an element naming another is a violation.
pub(crate) fn read_element(element: &str, portal: Option<&str>) -> ElementRead {
    let mut checks = Checks::default();
    let mut partial = Partial::default();
    // Only an object: serde would also read a struct from an array, by position.
    let parsed = if element.trim_start().starts_with('{') {
        serde_json::from_str::<RawElement<'_>>(element)
            .map_err(|err| format!("unreadable event: {err}"))
    } else {
        Err(format!(
            "must be a JSON object (one event), got {}",
            text_kind(element)
        ))
    };
    let raw = match parsed {
        Ok(raw) => raw,
        Err(reason) => {
            checks.violation("$", reason);
            return ElementRead {
                partial,
                event: None,
                checks,
            };
        }
    };
    let mut fields = Fields {
        checks: &mut checks,
    };
    use Need::{Expected, Optional, Required};

    let event_id = fields.read("eventId", raw.event_id, Required, id_of);
    let portal_id = fields.read("portalId", raw.portal_id, Required, id_of);
    if let (Some(found), Some(expected)) = (&portal_id, portal)
        && found != expected
    {
        fields.checks.violation(
            "portalId",
            format!("portal {found} is not the request's portal {expected}"),
        );
    }
    let subscription_id = fields.read("subscriptionId", raw.subscription_id, Optional, id_of);
    let app_id = fields.read("appId", raw.app_id, Optional, id_of);
    let occurred_at_ms = fields.read("occurredAt", raw.occurred_at, Required, epoch_millis_of);
    let attempt_number = fields.read("attemptNumber", raw.attempt_number, Expected, |raw| {
        integer_of(raw).and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is too large")))
    });
    if let Some(attempt) = attempt_number.filter(|n| *n > 0) {
        fields.checks.warning(
            "redelivery",
            "attemptNumber",
            format!("attempt {attempt}: HubSpot retries an earlier delivery"),
        );
    }

    // The subscription type, under either name HubSpot's documentation uses.
    let subscription_type = match (raw.subscription_type, raw.event_type) {
        (Some(main), alias) => {
            let main = fields.read("subscriptionType", Some(main), Required, string_of);
            if let (Some(main), Some(alias)) = (&main, alias.and_then(|raw| string_of(raw).ok()))
                && *main != alias
            {
                fields.checks.violation(
                    "eventType",
                    format!("{alias:?} disagrees with subscriptionType {main:?}"),
                );
            }
            main
        }
        (None, Some(alias)) => fields.read("eventType", Some(alias), Required, string_of),
        (None, None) => fields.read("subscriptionType", None, Required, string_of),
    };
    let type_id_raw = raw.object_type_id.or(raw.from_object_type_id);
    let type_id_key = if raw.object_type_id.is_some() {
        "objectTypeId"
    } else {
        "fromObjectTypeId"
    };
    let object_type_id = fields.read(type_id_key, type_id_raw, Optional, string_of);
    let (object, action) = match &subscription_type {
        Some(text) => subscription(fields.checks, text, type_id_key, object_type_id.as_deref()),
        None => (None, None),
    };

    let association = action == Some("associationChange");
    let object_id = fields.read(
        "objectId",
        raw.object_id,
        if association { Optional } else { Required },
        id_of,
    );
    let change_flag = fields.read("changeFlag", raw.change_flag, Optional, text_of);
    let change_source = fields.read("changeSource", raw.change_source, Optional, text_of);
    let source_id = fields.read("sourceId", raw.source_id, Optional, text_of);

    let property_change = action == Some("propertyChange");
    let property_name = fields.read(
        "propertyName",
        raw.property_name,
        if property_change { Required } else { Optional },
        string_of,
    );
    let property_value = fields.read("propertyValue", raw.property_value, Optional, scalar_of);

    let merge = action == Some("merge");
    let need_for_merge = if merge { Required } else { Optional };
    let primary_object_id = fields.read(
        "primaryObjectId",
        raw.primary_object_id,
        need_for_merge,
        id_of,
    );
    let merged_object_ids = fields.read(
        "mergedObjectIds",
        raw.merged_object_ids,
        need_for_merge,
        ids_of,
    );
    let new_object_id = fields.read("newObjectId", raw.new_object_id, Optional, id_of);
    let number_of_properties_moved = fields.read(
        "numberOfPropertiesMoved",
        raw.number_of_properties_moved,
        Optional,
        integer_of,
    );

    let need_for_association = if association { Required } else { Optional };
    let from_object_id = fields.read(
        "fromObjectId",
        raw.from_object_id,
        need_for_association,
        id_of,
    );
    let to_object_id = fields.read("toObjectId", raw.to_object_id, need_for_association, id_of);
    let association_type = fields.read(
        "associationType",
        raw.association_type,
        if association { Expected } else { Optional },
        string_of,
    );
    let association_removed = fields.read(
        "associationRemoved",
        raw.association_removed,
        if association { Expected } else { Optional },
        bool_of,
    );
    let is_primary_association = fields.read(
        "isPrimaryAssociation",
        raw.is_primary_association,
        Optional,
        bool_of,
    );

    let object_id = object_id.or_else(|| from_object_id.clone().filter(|_| association));
    partial = Partial {
        event_id: event_id.clone(),
        subscription_id: subscription_id.clone(),
        portal_id: portal_id.clone(),
        subscription_type: subscription_type.clone(),
        object,
        action,
        object_id: object_id.clone(),
        primary_object_id: primary_object_id.clone(),
        occurred_at_ms,
        attempt_number,
    };
    let event = match (
        event_id,
        portal_id,
        occurred_at_ms,
        subscription_type,
        object,
        action,
        object_id,
    ) {
        (
            Some(event_id),
            Some(portal_id),
            Some(occurred_at_ms),
            Some(subscription_type),
            Some(object),
            Some(action),
            Some(object_id),
        ) => Some(AppEvent {
            event_id,
            subscription_id,
            portal_id,
            app_id,
            occurred_at_ms,
            subscription_type,
            object,
            action,
            object_type_id,
            attempt_number,
            object_id,
            change_flag,
            change_source,
            source_id,
            property_name,
            property_value,
            primary_object_id,
            merged_object_ids: merged_object_ids.unwrap_or_default(),
            new_object_id,
            number_of_properties_moved,
            association_type,
            from_object_id,
            to_object_id,
            association_removed,
            is_primary_association,
        }),
        _ => None,
    };
    ElementRead {
        partial,
        event,
        checks,
    }
}

/// The object and action of a subscription type: legacy `deal.creation`,
/// or generic `object.creation` with the object from its type id.
fn subscription(
    checks: &mut Checks,
    text: &str,
    type_id_key: &str,
    type_id: Option<&str>,
) -> (Option<&'static str>, Option<&'static str>) {
    let Some((prefix, action_name)) = text.split_once('.') else {
        checks.violation(
            "subscriptionType",
            format!("{text:?} is not <object>.<action>"),
        );
        return (None, None);
    };
    let action = action_named(action_name);
    if action.is_none() {
        checks.violation(
            "subscriptionType",
            format!(
                "action {action_name:?} is not one Tributary takes: {}",
                ACTIONS.join(", ")
            ),
        );
    }
    let by_type_id = type_id.map(|id| (id, object_of_type_id(id)));
    let object = if prefix == "object" {
        match by_type_id {
            None => {
                checks.violation(
                    "objectTypeId",
                    "required for a generic object.* subscription",
                );
                None
            }
            Some((id, None)) => {
                checks.violation(
                    type_id_key,
                    format!(
                        "object type {id:?} is not one Tributary takes: {}",
                        type_ids_list()
                    ),
                );
                None
            }
            Some((_, Some(object))) => Some(object),
        }
    } else {
        let object = object_named(prefix);
        match (object, by_type_id) {
            (None, _) => {
                checks.violation(
                    "subscriptionType",
                    format!(
                        "object {prefix:?} is not one Tributary takes: {}",
                        OBJECTS.join(", ")
                    ),
                );
            }
            (Some(object), Some((id, by_id))) if by_id != Some(object) => checks.violation(
                type_id_key,
                format!("{id:?} disagrees with the subscription type's object {object:?}"),
            ),
            _ => {}
        }
        object
    };
    (object, action)
}

/// The record a workflow's "Send a webhook" action posts, as far as the
/// collector needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRecord {
    pub object: &'static str,
    pub object_id: String,
    /// `portalId` or `portal-id`, when the record carries it.
    pub portal_id: Option<String>,
    /// `hs_lastmodifieddate` (or the legacy `lastmodifieddate`), epoch
    /// milliseconds, when the record carries it.
    pub modified_at_ms: Option<u64>,
}

/// Where a workflow record's id may be, in order: the v3 property
/// `hs_object_id` (top level, as a customized body names it, or under
/// `properties`), then the ids of the object APIs' shapes.
const WORKFLOW_ID_KEYS: &[&str] = &[
    "objectId",
    "vid",
    "canonical-vid",
    "dealId",
    "companyId",
    "id",
];

/// Reads a workflow's record. Workflows post the object as the object APIs
/// return it (legacy contacts: `vid`, `portal-id`, `properties.<name>.value`;
/// legacy deals and companies: `dealId` / `companyId`, `portalId`; v3: `id`,
/// `properties.<name>`) or a body the workflow's author chose (top-level
/// properties such as `hs_object_id`). The object is `declared` (the
/// webhook URL's `object` parameter: a name or a type id) or told by the
/// shape (`vid` is a contact, `dealId` a deal, `companyId` a company).
pub fn read_workflow_record(
    body: &str,
    declared: Option<&str>,
) -> Result<WorkflowRecord, Vec<Violation>> {
    let mut checks = Checks::default();
    let top: BTreeMap<String, &RawValue> = serde_json::from_str(body).map_err(|err| {
        vec![Violation {
            field: "$".into(),
            reason: format!("must be a JSON object of the record's properties: {err}"),
        }]
    })?;
    let properties: Option<BTreeMap<String, &RawValue>> = top
        .get("properties")
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    let property = |name: &str| -> Option<&RawValue> {
        let raw = top
            .get(name)
            .copied()
            .or_else(|| properties.as_ref()?.get(name).copied())?;
        // Legacy APIs wrap each value: {"value": "...", "versions": [...]}.
        let value = if first_byte(raw) == b'{' {
            let wrapped: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get()).ok()?;
            wrapped.get("value").copied()?
        } else {
            raw
        };
        Some(value).filter(|raw| raw.get() != "null")
    };

    let by_shape = if top.contains_key("vid") || top.contains_key("is-contact") {
        Some("contact")
    } else if top.contains_key("dealId") {
        Some("deal")
    } else if top.contains_key("companyId") {
        Some("company")
    } else {
        None
    };
    let object = match declared {
        Some(declared) => match object_named(declared).or_else(|| object_of_type_id(declared)) {
            Some(object) => {
                if let Some(shape) = by_shape.filter(|shape| *shape != object) {
                    checks.violation(
                        "$",
                        format!("the URL declares a {object} but the body is a {shape}'s"),
                    );
                }
                Some(object)
            }
            None => {
                checks.violation(
                    "object",
                    format!(
                        "the URL's object {declared:?} is not one Tributary takes: {} (or {})",
                        OBJECTS.join(", "),
                        type_ids_list()
                    ),
                );
                None
            }
        },
        None => {
            if by_shape.is_none() {
                checks.violation(
                    "$",
                    "cannot tell which object this is: add ?object=<deal|contact|company|...> to the workflow's webhook URL",
                );
            }
            by_shape
        }
    };

    let mut object_id = None;
    let candidates = std::iter::once(("hs_object_id", property("hs_object_id"))).chain(
        WORKFLOW_ID_KEYS
            .iter()
            .map(|key| (*key, top.get(*key).copied())),
    );
    for (key, raw) in candidates {
        if let Some(raw) = raw.filter(|raw| raw.get() != "null") {
            match id_of(raw) {
                Ok(id) => {
                    object_id = Some(id);
                    break;
                }
                Err(reason) => checks.violation(key, reason),
            }
        }
    }
    if object_id.is_none() && checks.is_clean() {
        checks.violation(
            "hs_object_id",
            "the record's id is missing (hs_object_id, objectId, vid, dealId, companyId or id)",
        );
    }

    let mut portal_id = None;
    for key in ["portalId", "portal-id"] {
        if let Some(raw) = top.get(key) {
            match id_of(raw) {
                Ok(portal) => portal_id = portal_id.or(Some(portal)),
                Err(reason) => checks.violation(key, reason),
            }
        }
    }
    let modified_at_ms = ["hs_lastmodifieddate", "lastmodifieddate"]
        .iter()
        .find_map(|name| property(name).and_then(time_millis_of));

    checks.finish()?;
    match (object, object_id) {
        (Some(object), Some(object_id)) => Ok(WorkflowRecord {
            object,
            object_id,
            portal_id,
            modified_at_ms,
        }),
        _ => Err(vec![Violation {
            field: "$".into(),
            reason: "the record's object or id is missing".into(),
        }]),
    }
}

fn first_byte(raw: &RawValue) -> u8 {
    raw.get()
        .trim_start()
        .as_bytes()
        .first()
        .copied()
        .unwrap_or(b' ')
}

fn raw_kind(raw: &RawValue) -> &'static str {
    text_kind(raw.get())
}

fn text_kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

/// A value for a message, cut to a readable length.
fn shown(raw: &RawValue) -> String {
    let text = raw.get();
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text.to_owned()
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// An id: a JSON number or string of decimal digits, not zero, kept verbatim.
pub(crate) fn id_of(raw: &RawValue) -> Result<String, String> {
    let text = raw.get().trim();
    let digits = if text.starts_with('"') {
        serde_json::from_str::<String>(text).ok()
    } else {
        Some(text.to_owned())
    };
    match digits {
        Some(digits) if all_digits(&digits) && digits.bytes().any(|b| b != b'0') => Ok(digits),
        _ => Err(format!(
            "must be an id of decimal digits (a number or a string), got {}",
            shown(raw)
        )),
    }
}

fn ids_of(raw: &RawValue) -> Result<Vec<String>, String> {
    let items: Vec<&RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| format!("must be an array of ids, got {}", raw_kind(raw)))?;
    items.into_iter().map(id_of).collect()
}

/// A non-negative integer as a number or a digit string.
fn integer_of(raw: &RawValue) -> Result<u64, String> {
    let text = raw.get().trim();
    let digits = text.trim_matches('"');
    if all_digits(digits) && (digits.len() + 2 == text.len() || digits.len() == text.len()) {
        digits.parse().map_err(|_| format!("{digits} is too large"))
    } else {
        Err(format!(
            "must be a non-negative integer, got {}",
            shown(raw)
        ))
    }
}

/// Epoch milliseconds (13 digits: 2001 to 2286).
fn epoch_millis_of(raw: &RawValue) -> Result<u64, String> {
    match integer_of(raw) {
        Ok(ms) if (1_000_000_000_000..10_000_000_000_000).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "must be an epoch time in milliseconds, got {}",
            shown(raw)
        )),
    }
}

/// A property's time: epoch milliseconds (legacy APIs) or ISO-8601 (v3).
fn time_millis_of(raw: &RawValue) -> Option<u64> {
    if let Ok(ms) = epoch_millis_of(raw) {
        return Some(ms);
    }
    let text: String = serde_json::from_str(raw.get()).ok()?;
    let parsed = chrono::DateTime::parse_from_rfc3339(&text).ok()?;
    u64::try_from(parsed.timestamp_millis()).ok()
}

/// A non-empty string.
fn string_of(raw: &RawValue) -> Result<String, String> {
    match serde_json::from_str::<String>(raw.get()) {
        Ok(text) if !text.trim().is_empty() => Ok(text),
        Ok(_) => Err("must not be empty".into()),
        Err(_) => Err(format!("must be a string, got {}", raw_kind(raw))),
    }
}

/// Any string, empty included.
fn text_of(raw: &RawValue) -> Result<String, String> {
    serde_json::from_str::<String>(raw.get())
        .map_err(|_| format!("must be a string, got {}", raw_kind(raw)))
}

/// A property value: a string, or another scalar as its JSON text.
fn scalar_of(raw: &RawValue) -> Result<String, String> {
    match first_byte(raw) {
        b'"' => text_of(raw),
        b'{' | b'[' => Err(format!(
            "must be a string (or another scalar), got {}",
            raw_kind(raw)
        )),
        _ => Ok(raw.get().trim().to_owned()),
    }
}

fn bool_of(raw: &RawValue) -> Result<bool, String> {
    serde_json::from_str(raw.get())
        .map_err(|_| format!("must be true or false, got {}", raw_kind(raw)))
}
