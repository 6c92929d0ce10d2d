//! One HubSpot account (portal) as its CRM API shows it: records with every
//! property's history, archived records, merges, associations, deal
//! pipelines, owners and property definitions.
//!
//! A simulator builds a portal with its definitions, then applies each change
//! at the time it happened ([`HubSpotPortal::set`], [`HubSpotPortal::archive`],
//! [`HubSpotPortal::merge`], [`HubSpotPortal::associate`]...), so the fake API
//! answers with the account as of the latest applied change.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// The CRM object types the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectType {
    Contacts,
    Companies,
    Deals,
    Calls,
    Emails,
    Meetings,
    Tasks,
    Notes,
}

impl ObjectType {
    pub const ALL: [ObjectType; 8] = [
        ObjectType::Contacts,
        ObjectType::Companies,
        ObjectType::Deals,
        ObjectType::Calls,
        ObjectType::Emails,
        ObjectType::Meetings,
        ObjectType::Tasks,
        ObjectType::Notes,
    ];

    /// The name in API paths (`/crm/v3/objects/deals`).
    pub fn plural(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Deals => "deals",
            ObjectType::Calls => "calls",
            ObjectType::Emails => "emails",
            ObjectType::Meetings => "meetings",
            ObjectType::Tasks => "tasks",
            ObjectType::Notes => "notes",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contact",
            ObjectType::Companies => "company",
            ObjectType::Deals => "deal",
            ObjectType::Calls => "call",
            ObjectType::Emails => "email",
            ObjectType::Meetings => "meeting",
            ObjectType::Tasks => "task",
            ObjectType::Notes => "note",
        }
    }

    /// HubSpot's object type id (`0-3` for deals).
    pub fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Companies => "0-2",
            ObjectType::Deals => "0-3",
            ObjectType::Calls => "0-48",
            ObjectType::Emails => "0-49",
            ObjectType::Meetings => "0-47",
            ObjectType::Tasks => "0-27",
            ObjectType::Notes => "0-46",
        }
    }

    /// Accepts the plural, the singular or the type id, in any case, as HubSpot does.
    pub fn parse(name: &str) -> Option<Self> {
        ObjectType::ALL.into_iter().find(|t| {
            name.eq_ignore_ascii_case(t.plural())
                || name.eq_ignore_ascii_case(t.singular())
                || name == t.type_id()
        })
    }

    /// The property holding the creation time.
    pub fn created_property(self) -> &'static str {
        match self {
            ObjectType::Contacts | ObjectType::Companies | ObjectType::Deals => "createdate",
            _ => "hs_createdate",
        }
    }

    /// The property holding the last modification time (contacts predate the `hs_` prefix).
    pub fn modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// What HubSpot returns when a request names no properties.
    fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contacts => &["firstname", "lastname", "email"],
            ObjectType::Companies => &["name", "domain"],
            ObjectType::Deals => &["dealname", "amount", "closedate", "pipeline", "dealstage"],
            _ => &["hs_timestamp"],
        }
    }
}

pub type ObjectId = u64;
/// A record: its type and id.
pub type ObjectRef = (ObjectType, ObjectId);

/// One value a property had, as `propertiesWithHistory` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyVersion {
    /// HubSpot sends values as strings; a cleared value is `""`.
    pub value: String,
    pub timestamp_ms: i64,
    pub source: ChangeSource,
}

/// Who or what made a change (`sourceType`, `sourceId`, `updatedByUserId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSource {
    pub source_type: String,
    pub source_id: Option<String>,
    pub updated_by_user_id: Option<i64>,
}

impl ChangeSource {
    /// A user editing the record in HubSpot.
    pub fn crm_ui(user_id: i64) -> Self {
        ChangeSource {
            source_type: "CRM_UI".into(),
            source_id: Some(format!("userId:{user_id}")),
            updated_by_user_id: Some(user_id),
        }
    }

    /// An app writing through the API.
    pub fn api(app_id: i64) -> Self {
        ChangeSource {
            source_type: "API".into(),
            source_id: Some(app_id.to_string()),
            updated_by_user_id: None,
        }
    }

    /// HubSpot deriving the value itself (`hs_is_closed_won`, modification dates).
    pub fn calculated() -> Self {
        ChangeSource {
            source_type: "CALCULATED".into(),
            source_id: None,
            updated_by_user_id: None,
        }
    }

    /// A workflow.
    pub fn automation(flow_id: i64) -> Self {
        ChangeSource {
            source_type: "AUTOMATION_PLATFORM".into(),
            source_id: Some(format!("enrollmentId:{flow_id}")),
            updated_by_user_id: None,
        }
    }
}

/// A record with every property's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmObject {
    pub id: ObjectId,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Set while the record is archived (deleted, restorable).
    pub archived_at_ms: Option<i64>,
    /// Each property's values, newest first.
    pub history: BTreeMap<String, Vec<PropertyVersion>>,
}

impl CrmObject {
    /// The current value of a property (`""` when cleared, `None` when never set).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.history
            .get(name)
            .and_then(|versions| versions.first())
            .map(|v| v.value.as_str())
    }

    pub fn archived(&self) -> bool {
        self.archived_at_ms.is_some()
    }
}

/// A deal pipeline stage; HubSpot sends `probability` and `isClosed` as strings in `metadata`.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineStage {
    pub id: String,
    pub label: String,
    pub display_order: i32,
    /// 0.0 to 1.0.
    pub probability: f64,
    pub is_closed: bool,
    pub archived: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl PipelineStage {
    pub fn open(id: &str, label: &str, display_order: i32, probability: f64) -> Self {
        PipelineStage {
            id: id.into(),
            label: label.into(),
            display_order,
            probability,
            is_closed: false,
            archived: false,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    /// A closed stage with probability 1: deals in it are won.
    pub fn won(id: &str, label: &str, display_order: i32) -> Self {
        PipelineStage {
            is_closed: true,
            ..PipelineStage::open(id, label, display_order, 1.0)
        }
    }

    /// A closed stage with probability 0: deals in it are lost.
    pub fn lost(id: &str, label: &str, display_order: i32) -> Self {
        PipelineStage {
            is_closed: true,
            ..PipelineStage::open(id, label, display_order, 0.0)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    pub display_order: i32,
    pub archived: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub stages: Vec<PipelineStage>,
}

impl Pipeline {
    pub fn new(id: &str, label: &str, display_order: i32, stages: Vec<PipelineStage>) -> Self {
        Pipeline {
            id: id.into(),
            label: label.into(),
            display_order,
            archived: false,
            created_at_ms: 0,
            updated_at_ms: 0,
            stages,
        }
    }

    /// The pipeline every portal starts with: id `default`, HubSpot's seven stages.
    pub fn default_sales() -> Self {
        Pipeline::new(
            "default",
            "Sales Pipeline",
            0,
            vec![
                PipelineStage::open("appointmentscheduled", "Appointment Scheduled", 0, 0.2),
                PipelineStage::open("qualifiedtobuy", "Qualified To Buy", 1, 0.4),
                PipelineStage::open("presentationscheduled", "Presentation Scheduled", 2, 0.6),
                PipelineStage::open("decisionmakerboughtin", "Decision Maker Bought-In", 3, 0.8),
                PipelineStage::open("contractsent", "Contract Sent", 4, 0.9),
                PipelineStage::won("closedwon", "Closed Won", 5),
                PipelineStage::lost("closedlost", "Closed Lost", 6),
            ],
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub primary: bool,
}

/// A HubSpot user who can own records (`hubspot_owner_id` holds its `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub user_id: Option<i64>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Deactivated users stay as archived owners.
    pub archived: bool,
    pub teams: Vec<Team>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Owner {
    pub fn new(id: &str, user_id: i64, first_name: &str, last_name: &str, email: &str) -> Self {
        Owner {
            id: id.into(),
            user_id: Some(user_id),
            email: email.into(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            archived: false,
            teams: Vec::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyOption {
    pub label: String,
    pub value: String,
    pub display_order: i32,
    pub hidden: bool,
}

/// A property definition as `/crm/v3/properties/{objectType}` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyDefinition {
    pub name: String,
    pub label: String,
    /// `string`, `number`, `enumeration`, `datetime`, `date`, `bool`.
    pub property_type: String,
    /// `text`, `number`, `select`, `radio`, `date`, `booleancheckbox`, `calculation_equation`...
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<PropertyOption>,
    pub hubspot_defined: bool,
    pub calculated: bool,
    pub hidden: bool,
    pub archived: bool,
    pub display_order: i32,
    /// `OWNER` for owner references, whose options come from the owners API.
    pub referenced_object_type: Option<String>,
}

impl PropertyDefinition {
    fn standard(name: &str, label: &str, property_type: &str, field_type: &str) -> Self {
        PropertyDefinition {
            name: name.into(),
            label: label.into(),
            property_type: property_type.into(),
            field_type: field_type.into(),
            group_name: String::new(),
            description: String::new(),
            options: Vec::new(),
            hubspot_defined: true,
            calculated: false,
            hidden: false,
            archived: false,
            display_order: -1,
            referenced_object_type: None,
        }
    }

    pub fn text(name: &str, label: &str) -> Self {
        Self::standard(name, label, "string", "text")
    }

    pub fn number(name: &str, label: &str) -> Self {
        Self::standard(name, label, "number", "number")
    }

    pub fn datetime(name: &str, label: &str) -> Self {
        Self::standard(name, label, "datetime", "date")
    }

    pub fn boolean(name: &str, label: &str) -> Self {
        Self::standard(name, label, "bool", "booleancheckbox")
    }

    /// An enumeration with `(value, label)` options in this order.
    pub fn enumeration(name: &str, label: &str, options: &[(&str, &str)]) -> Self {
        PropertyDefinition {
            options: options
                .iter()
                .zip(0..)
                .map(|((value, label), display_order)| PropertyOption {
                    label: (*label).into(),
                    value: (*value).into(),
                    display_order,
                    hidden: false,
                })
                .collect(),
            ..Self::standard(name, label, "enumeration", "select")
        }
    }

    /// A portal's own property (`hubspotDefined: false`).
    pub fn custom(self) -> Self {
        PropertyDefinition {
            hubspot_defined: false,
            display_order: 0,
            ..self
        }
    }

    fn calculated(self) -> Self {
        PropertyDefinition {
            calculated: true,
            field_type: "calculation_equation".into(),
            ..self
        }
    }

    fn owner(name: &str, label: &str) -> Self {
        PropertyDefinition {
            referenced_object_type: Some("OWNER".into()),
            ..Self::standard(name, label, "enumeration", "select")
        }
    }
}

/// The standard properties the pipeline reads, per object type, with their
/// documented option values.
pub fn standard_definitions(object_type: ObjectType) -> Vec<PropertyDefinition> {
    use PropertyDefinition as P;
    let mut definitions = vec![
        P::number("hs_object_id", "Record ID"),
        P::datetime(object_type.created_property(), "Create Date"),
        P::datetime(object_type.modified_property(), "Last Modified Date"),
        P::owner("hubspot_owner_id", "Owner"),
        P::text("hs_merged_object_ids", "Merged Record IDs"),
    ];
    let specific = match object_type {
        ObjectType::Contacts => vec![
            P::text("firstname", "First Name"),
            P::text("lastname", "Last Name"),
            P::text("email", "Email"),
            P::text("phone", "Phone Number"),
            P::text("jobtitle", "Job Title"),
            P::text("associatedcompanyid", "Primary Associated Company ID"),
            P::enumeration(
                "lifecyclestage",
                "Lifecycle Stage",
                &[
                    ("subscriber", "Subscriber"),
                    ("lead", "Lead"),
                    ("marketingqualifiedlead", "Marketing Qualified Lead"),
                    ("salesqualifiedlead", "Sales Qualified Lead"),
                    ("opportunity", "Opportunity"),
                    ("customer", "Customer"),
                    ("evangelist", "Evangelist"),
                    ("other", "Other"),
                ],
            ),
            P::enumeration(
                "hs_lead_status",
                "Lead Status",
                &[
                    ("NEW", "New"),
                    ("OPEN", "Open"),
                    ("IN_PROGRESS", "In Progress"),
                    ("OPEN_DEAL", "Open Deal"),
                    ("UNQUALIFIED", "Unqualified"),
                    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
                    ("CONNECTED", "Connected"),
                    ("BAD_TIMING", "Bad Timing"),
                ],
            ),
        ],
        ObjectType::Companies => vec![
            P::text("name", "Company name"),
            P::text("domain", "Company Domain Name"),
            P::text("industry", "Industry"),
            P::number("numberofemployees", "Number of Employees"),
            P::text("city", "City"),
            P::text("country", "Country/Region"),
        ],
        ObjectType::Deals => vec![
            P::text("dealname", "Deal Name"),
            P::number("amount", "Amount"),
            P::text("deal_currency_code", "Currency"),
            P::enumeration("pipeline", "Pipeline", &[]),
            P::enumeration("dealstage", "Deal Stage", &[]),
            P::datetime("closedate", "Close Date"),
            P::number("hs_deal_stage_probability", "Deal Stage Probability").calculated(),
            P::boolean("hs_is_closed", "Is Deal Closed?").calculated(),
            P::boolean("hs_is_closed_won", "Is Closed Won").calculated(),
            P::text("closed_lost_reason", "Closed Lost Reason"),
            P::enumeration(
                "dealtype",
                "Deal Type",
                &[
                    ("newbusiness", "New Business"),
                    ("existingbusiness", "Existing Business"),
                ],
            ),
            P::datetime("hs_lastmodifieddate", "Last Modified Date"),
        ],
        ObjectType::Calls => vec![
            P::datetime("hs_timestamp", "Activity date"),
            P::text("hs_call_title", "Call Title"),
            P::text("hs_call_body", "Call notes"),
            P::number("hs_call_duration", "Call duration (ms)"),
            P::enumeration(
                "hs_call_direction",
                "Call direction",
                &[("INBOUND", "Inbound"), ("OUTBOUND", "Outbound")],
            ),
            P::enumeration(
                "hs_call_status",
                "Call status",
                &[
                    ("BUSY", "Busy"),
                    ("CALLING_CRM_USER", "Calling CRM user"),
                    ("CANCELED", "Canceled"),
                    ("COMPLETED", "Completed"),
                    ("CONNECTING", "Connecting"),
                    ("FAILED", "Failed"),
                    ("IN_PROGRESS", "In progress"),
                    ("NO_ANSWER", "No answer"),
                    ("QUEUED", "Queued"),
                    ("RINGING", "Ringing"),
                ],
            ),
            P::text("hs_call_disposition", "Call outcome"),
        ],
        ObjectType::Emails => vec![
            P::datetime("hs_timestamp", "Activity date"),
            P::text("hs_email_subject", "Email subject"),
            P::text("hs_email_text", "Email body"),
            P::enumeration(
                "hs_email_direction",
                "Email direction",
                &[
                    ("EMAIL", "Sent by the owner"),
                    ("INCOMING_EMAIL", "Reply"),
                    ("FORWARDED_EMAIL", "Forwarded"),
                ],
            ),
            P::enumeration(
                "hs_email_status",
                "Email send status",
                &[
                    ("BOUNCED", "Bounced"),
                    ("FAILED", "Failed"),
                    ("SCHEDULED", "Scheduled"),
                    ("SENDING", "Sending"),
                    ("SENT", "Sent"),
                ],
            ),
        ],
        ObjectType::Meetings => vec![
            P::datetime("hs_timestamp", "Activity date"),
            P::text("hs_meeting_title", "Meeting name"),
            P::text("hs_meeting_body", "Meeting description"),
            P::datetime("hs_meeting_start_time", "Start time"),
            P::datetime("hs_meeting_end_time", "End time"),
            P::enumeration(
                "hs_meeting_outcome",
                "Meeting outcome",
                &[
                    ("SCHEDULED", "Scheduled"),
                    ("COMPLETED", "Completed"),
                    ("RESCHEDULED", "Rescheduled"),
                    ("NO_SHOW", "No show"),
                    ("CANCELED", "Canceled"),
                ],
            ),
        ],
        ObjectType::Tasks => vec![
            P::datetime("hs_timestamp", "Due date"),
            P::text("hs_task_subject", "Task title"),
            P::text("hs_task_body", "Notes"),
            P::enumeration(
                "hs_task_status",
                "Task status",
                &[
                    ("NOT_STARTED", "Not started"),
                    ("IN_PROGRESS", "In progress"),
                    ("WAITING", "Waiting"),
                    ("COMPLETED", "Completed"),
                    ("DEFERRED", "Deferred"),
                ],
            ),
            P::enumeration(
                "hs_task_priority",
                "Priority",
                &[("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")],
            ),
            P::enumeration(
                "hs_task_type",
                "Task type",
                &[("CALL", "Call"), ("EMAIL", "Email"), ("TODO", "To-do")],
            ),
            P::datetime("hs_task_completion_date", "Completed at"),
        ],
        ObjectType::Notes => vec![
            P::datetime("hs_timestamp", "Activity date"),
            P::text("hs_note_body", "Note body"),
        ],
    };
    // Deals list hs_lastmodifieddate among their own; keep one definition per name.
    for definition in specific {
        if !definitions.iter().any(|d| d.name == definition.name) {
            definitions.push(definition);
        }
    }
    definitions
}

/// A HubSpot-defined association type between two object types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssociationType {
    pub type_id: u32,
    /// `Primary` for the primary company of a contact or deal.
    pub label: Option<&'static str>,
    /// The name the v3 object endpoints give it (`deal_to_company_unlabeled`).
    pub v3_name: &'static str,
}

/// HubSpot-defined association types: (from, to, unlabeled type, primary type).
const ASSOCIATION_TYPES: &[(
    ObjectType,
    ObjectType,
    AssociationType,
    Option<AssociationType>,
)] = {
    use ObjectType::{Calls, Companies, Contacts, Deals, Emails, Meetings, Notes, Tasks};
    const fn t(type_id: u32, v3_name: &'static str) -> AssociationType {
        AssociationType {
            type_id,
            label: None,
            v3_name,
        }
    }
    const fn primary(type_id: u32, v3_name: &'static str) -> Option<AssociationType> {
        Some(AssociationType {
            type_id,
            label: Some("Primary"),
            v3_name,
        })
    }
    &[
        (
            Contacts,
            Companies,
            t(279, "contact_to_company_unlabeled"),
            primary(1, "contact_to_company"),
        ),
        (
            Companies,
            Contacts,
            t(280, "company_to_contact_unlabeled"),
            primary(2, "company_to_contact"),
        ),
        (Deals, Contacts, t(3, "deal_to_contact"), None),
        (Contacts, Deals, t(4, "contact_to_deal"), None),
        (
            Deals,
            Companies,
            t(341, "deal_to_company_unlabeled"),
            primary(5, "deal_to_company"),
        ),
        (
            Companies,
            Deals,
            t(342, "company_to_deal_unlabeled"),
            primary(6, "company_to_deal"),
        ),
        (Calls, Contacts, t(194, "call_to_contact"), None),
        (Contacts, Calls, t(193, "contact_to_call"), None),
        (Calls, Companies, t(182, "call_to_company"), None),
        (Companies, Calls, t(181, "company_to_call"), None),
        (Calls, Deals, t(206, "call_to_deal"), None),
        (Deals, Calls, t(205, "deal_to_call"), None),
        (Emails, Contacts, t(198, "email_to_contact"), None),
        (Contacts, Emails, t(197, "contact_to_email"), None),
        (Emails, Companies, t(186, "email_to_company"), None),
        (Companies, Emails, t(185, "company_to_email"), None),
        (Emails, Deals, t(210, "email_to_deal"), None),
        (Deals, Emails, t(209, "deal_to_email"), None),
        (Meetings, Contacts, t(200, "meeting_event_to_contact"), None),
        (Contacts, Meetings, t(199, "contact_to_meeting_event"), None),
        (
            Meetings,
            Companies,
            t(188, "meeting_event_to_company"),
            None,
        ),
        (
            Companies,
            Meetings,
            t(187, "company_to_meeting_event"),
            None,
        ),
        (Meetings, Deals, t(212, "meeting_event_to_deal"), None),
        (Deals, Meetings, t(211, "deal_to_meeting_event"), None),
        (Notes, Contacts, t(202, "note_to_contact"), None),
        (Contacts, Notes, t(201, "contact_to_note"), None),
        (Notes, Companies, t(190, "note_to_company"), None),
        (Companies, Notes, t(189, "company_to_note"), None),
        (Notes, Deals, t(214, "note_to_deal"), None),
        (Deals, Notes, t(213, "deal_to_note"), None),
        (Tasks, Contacts, t(204, "task_to_contact"), None),
        (Contacts, Tasks, t(203, "contact_to_task"), None),
        (Tasks, Companies, t(192, "task_to_company"), None),
        (Companies, Tasks, t(191, "company_to_task"), None),
        (Tasks, Deals, t(216, "task_to_deal"), None),
        (Deals, Tasks, t(215, "deal_to_task"), None),
    ]
};

/// The unlabeled and (if any) primary association types from one object type to another.
pub fn association_types(
    from: ObjectType,
    to: ObjectType,
) -> Option<(AssociationType, Option<AssociationType>)> {
    ASSOCIATION_TYPES
        .iter()
        .find(|(f, t, ..)| *f == from && *t == to)
        .map(|(_, _, unlabeled, primary)| (*unlabeled, *primary))
}

/// An association type by its id.
pub fn association_type(type_id: u32) -> Option<AssociationType> {
    ASSOCIATION_TYPES
        .iter()
        .find_map(|(_, _, unlabeled, primary)| {
            [Some(*unlabeled), *primary]
                .into_iter()
                .flatten()
                .find(|t| t.type_id == type_id)
        })
}

/// The portal: everything the fake API serves for one account.
#[derive(Debug, Clone, Default)]
pub struct HubSpotPortal {
    /// The HubSpot account id (`portalId` in webhooks).
    pub portal_id: String,
    pub objects: BTreeMap<ObjectType, BTreeMap<ObjectId, CrmObject>>,
    /// Records merged away, and the record that absorbed each.
    pub merged_into: BTreeMap<ObjectRef, ObjectId>,
    /// From a record to the records it is associated with, by association type ids.
    pub associations: BTreeMap<ObjectRef, BTreeMap<ObjectRef, BTreeSet<u32>>>,
    pub deal_pipelines: Vec<Pipeline>,
    pub owners: Vec<Owner>,
    pub properties: BTreeMap<ObjectType, Vec<PropertyDefinition>>,
}

impl HubSpotPortal {
    /// A portal with the standard property definitions and HubSpot's default
    /// sales pipeline, and no records or owners.
    pub fn new(portal_id: &str) -> Self {
        HubSpotPortal {
            portal_id: portal_id.into(),
            properties: ObjectType::ALL
                .into_iter()
                .map(|t| (t, standard_definitions(t)))
                .collect(),
            deal_pipelines: vec![Pipeline::default_sales()],
            ..Default::default()
        }
    }

    pub fn object(&self, object_type: ObjectType, id: ObjectId) -> Option<&CrmObject> {
        self.objects.get(&object_type)?.get(&id)
    }

    /// Adds a property definition (or replaces the one with its name).
    pub fn define(&mut self, object_type: ObjectType, definition: PropertyDefinition) {
        let definitions = self.properties.entry(object_type).or_default();
        definitions.retain(|d| d.name != definition.name);
        definitions.push(definition);
    }

    /// Sets properties of a record at `at_ms`, creating it if it does not
    /// exist (created then, with `hs_object_id` and its creation date).
    /// Values equal to the current ones leave no history. Any change moves
    /// `updatedAt` and the last-modified property to `at_ms`. Deal stage
    /// changes also set `hs_is_closed`, `hs_is_closed_won` and
    /// `hs_deal_stage_probability` from the stage, as HubSpot calculates them.
    pub fn set(
        &mut self,
        object_type: ObjectType,
        id: ObjectId,
        at_ms: i64,
        values: &[(&str, &str)],
        source: &ChangeSource,
    ) {
        let mut values: Vec<(String, String, ChangeSource)> = values
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned(), source.clone()))
            .collect();
        let stage = values
            .iter()
            .find(|(name, ..)| name == "dealstage")
            .filter(|_| object_type == ObjectType::Deals)
            .and_then(|(_, stage_id, _)| self.stage(stage_id))
            .map(|stage| (stage.is_closed, stage.probability));
        if let Some((is_closed, probability)) = stage {
            let calculated = ChangeSource::calculated();
            let won = is_closed && probability >= 1.0;
            for (name, value) in [
                ("hs_is_closed", is_closed.to_string()),
                ("hs_is_closed_won", won.to_string()),
                ("hs_deal_stage_probability", number(probability)),
            ] {
                values.push((name.into(), value, calculated.clone()));
            }
        }
        let object = self
            .objects
            .entry(object_type)
            .or_default()
            .entry(id)
            .or_insert_with(|| {
                let mut object = CrmObject {
                    id,
                    created_at_ms: at_ms,
                    updated_at_ms: at_ms,
                    archived_at_ms: None,
                    history: BTreeMap::new(),
                };
                let calculated = ChangeSource::calculated();
                record(
                    &mut object,
                    "hs_object_id",
                    &id.to_string(),
                    at_ms,
                    &calculated,
                );
                record(
                    &mut object,
                    object_type.created_property(),
                    &iso_millis(at_ms),
                    at_ms,
                    &calculated,
                );
                object
            });
        let mut changed = false;
        for (name, value, source) in &values {
            changed |= record(object, name, value, at_ms, source);
        }
        if changed {
            object.updated_at_ms = object.updated_at_ms.max(at_ms);
            record(
                object,
                object_type.modified_property(),
                &iso_millis(at_ms),
                at_ms,
                &ChangeSource::calculated(),
            );
        }
    }

    /// Archives (deletes) a record. Like HubSpot, this does not move
    /// `updatedAt` or the last-modified property; `archivedAt` says when.
    pub fn archive(&mut self, object_type: ObjectType, id: ObjectId, at_ms: i64) {
        if let Some(object) = self.object_mut(object_type, id) {
            object.archived_at_ms = Some(at_ms);
        }
    }

    /// Restores an archived record; the restore counts as a modification.
    pub fn restore(&mut self, object_type: ObjectType, id: ObjectId, at_ms: i64) {
        if let Some(object) = self.object_mut(object_type, id)
            && object.archived_at_ms.take().is_some()
        {
            object.updated_at_ms = object.updated_at_ms.max(at_ms);
            record(
                object,
                object_type.modified_property(),
                &iso_millis(at_ms),
                at_ms,
                &ChangeSource::calculated(),
            );
        }
    }

    /// Merges `merged` into `primary`: the merged record disappears (reading
    /// its id answers with the primary record), its associations move to the
    /// primary, and the primary's `hs_merged_object_ids` lists it.
    pub fn merge(
        &mut self,
        object_type: ObjectType,
        primary: ObjectId,
        merged: ObjectId,
        at_ms: i64,
        source: &ChangeSource,
    ) {
        if primary == merged || self.object(object_type, primary).is_none() {
            return;
        }
        let Some(_) = self
            .objects
            .get_mut(&object_type)
            .and_then(|objects| objects.remove(&merged))
        else {
            return;
        };
        for target in self.merged_into.values_mut().filter(|t| **t == merged) {
            *target = primary;
        }
        self.merged_into.insert((object_type, merged), primary);
        let moved = self
            .associations
            .remove(&(object_type, merged))
            .unwrap_or_default();
        for (other, types) in moved {
            if other == (object_type, primary) {
                if let Some(back) = self.associations.get_mut(&other) {
                    back.remove(&(object_type, merged));
                }
                continue;
            }
            if let Some(back) = self.associations.get_mut(&other) {
                back.remove(&(object_type, merged));
            }
            let keeps_primary = types
                .iter()
                .filter_map(|t| association_type(*t))
                .any(|t| t.label.is_some());
            self.link((object_type, primary), other, keeps_primary);
        }
        let mut ids: Vec<String> = self
            .object(object_type, primary)
            .and_then(|o| o.value("hs_merged_object_ids"))
            .filter(|v| !v.is_empty())
            .map(|v| v.split(';').map(str::to_owned).collect())
            .unwrap_or_default();
        ids.push(merged.to_string());
        self.set(
            object_type,
            primary,
            at_ms,
            &[("hs_merged_object_ids", &ids.join(";"))],
            source,
        );
    }

    /// The record an id resolves to: itself, or the record it was merged into.
    pub fn resolve(&self, object_type: ObjectType, id: ObjectId) -> Option<&CrmObject> {
        self.object(object_type, id).or_else(|| {
            self.merged_into
                .get(&(object_type, id))
                .and_then(|primary| self.object(object_type, *primary))
        })
    }

    /// Associates two records both ways with HubSpot's unlabeled type (no-op
    /// for a pair of types HubSpot does not associate).
    pub fn associate(&mut self, a: ObjectRef, b: ObjectRef) {
        self.link(a, b, false);
    }

    /// Makes `company` the primary company of a contact or deal (both ways,
    /// with the unlabeled type too, as HubSpot shows it). The previous
    /// primary company stays associated, unlabeled.
    pub fn associate_primary(&mut self, record: ObjectRef, company: ObjectRef) {
        let previous: Vec<ObjectRef> = self
            .associations
            .get(&record)
            .into_iter()
            .flatten()
            .filter(|(other, types)| {
                other.0 == company.0
                    && types
                        .iter()
                        .any(|t| association_type(*t).is_some_and(|t| t.label.is_some()))
            })
            .map(|(other, _)| *other)
            .collect();
        for other in previous {
            self.unlink(record, other);
            self.link(record, other, false);
        }
        self.link(record, company, true);
    }

    /// Removes every association between two records, both ways.
    pub fn dissociate(&mut self, a: ObjectRef, b: ObjectRef) {
        self.unlink(a, b);
    }

    /// Records associated with `from` of type `to`, with the association type ids.
    pub fn associated(&self, from: ObjectRef, to: ObjectType) -> Vec<(ObjectId, &BTreeSet<u32>)> {
        self.associations
            .get(&from)
            .into_iter()
            .flatten()
            .filter(|((t, _), types)| *t == to && !types.is_empty())
            .map(|((_, id), types)| (*id, types))
            .collect()
    }

    pub fn stage(&self, stage_id: &str) -> Option<&PipelineStage> {
        self.deal_pipelines
            .iter()
            .flat_map(|p| &p.stages)
            .find(|s| s.id == stage_id)
    }

    fn object_mut(&mut self, object_type: ObjectType, id: ObjectId) -> Option<&mut CrmObject> {
        self.objects.get_mut(&object_type)?.get_mut(&id)
    }

    fn link(&mut self, a: ObjectRef, b: ObjectRef, primary: bool) {
        let (Some((forward, forward_primary)), Some((backward, backward_primary))) =
            (association_types(a.0, b.0), association_types(b.0, a.0))
        else {
            return;
        };
        for (from, to, unlabeled, labeled) in [
            (a, b, forward, forward_primary),
            (b, a, backward, backward_primary),
        ] {
            let types = self
                .associations
                .entry(from)
                .or_default()
                .entry(to)
                .or_default();
            types.insert(unlabeled.type_id);
            if primary && let Some(labeled) = labeled {
                types.insert(labeled.type_id);
            }
        }
    }

    fn unlink(&mut self, a: ObjectRef, b: ObjectRef) {
        for (from, to) in [(a, b), (b, a)] {
            if let Some(targets) = self.associations.get_mut(&from) {
                targets.remove(&to);
            }
        }
    }

    /// A record in the v3 object shape.
    pub(crate) fn object_json(
        &self,
        object_type: ObjectType,
        object: &CrmObject,
        projection: &Projection,
    ) -> Value {
        let mut properties = Map::new();
        let always = [
            "hs_object_id",
            object_type.created_property(),
            object_type.modified_property(),
        ];
        let requested: Vec<&str> = match &projection.properties {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => object_type.default_properties().to_vec(),
        };
        let defined = |name: &str| {
            self.properties
                .get(&object_type)
                .is_some_and(|d| d.iter().any(|d| d.name == name))
        };
        for name in always.into_iter().chain(requested) {
            match object.value(name) {
                Some(value) => {
                    properties.insert(name.to_owned(), Value::String(value.to_owned()));
                }
                // Defined but never set: null. Unknown names are left out.
                None if defined(name) => {
                    properties.insert(name.to_owned(), Value::Null);
                }
                None => {}
            }
        }
        let mut json = json!({
            "id": object.id.to_string(),
            "properties": properties,
            "createdAt": iso_millis(object.created_at_ms),
            "updatedAt": iso_millis(object.updated_at_ms),
            "archived": object.archived(),
        });
        if let Some(at) = object.archived_at_ms {
            json["archivedAt"] = json!(iso_millis(at));
        }
        if !projection.with_history.is_empty() {
            let history: Map<String, Value> = projection
                .with_history
                .iter()
                .filter_map(|name| {
                    let versions = object.history.get(name)?;
                    let versions: Vec<Value> = versions.iter().map(version_json).collect();
                    Some((name.clone(), Value::Array(versions)))
                })
                .collect();
            json["propertiesWithHistory"] = Value::Object(history);
        }
        if !projection.associations.is_empty() && !object.archived() {
            let mut associations = Map::new();
            for to in &projection.associations {
                let results: Vec<Value> = self
                    .associated((object_type, object.id), *to)
                    .into_iter()
                    .flat_map(|(id, types)| {
                        // Labeled (primary) type first, then the unlabeled one.
                        let mut types: Vec<AssociationType> =
                            types.iter().filter_map(|t| association_type(*t)).collect();
                        types.sort_by_key(|t| (t.label.is_none(), t.type_id));
                        types
                            .into_iter()
                            .map(move |t| json!({"id": id.to_string(), "type": t.v3_name}))
                    })
                    .collect();
                // HubSpot leaves out the types with no associated record.
                if !results.is_empty() {
                    associations.insert(to.plural().to_owned(), json!({"results": results}));
                }
            }
            if !associations.is_empty() {
                json["associations"] = Value::Object(associations);
            }
        }
        json
    }
}

/// Which parts of a record a request asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Projection {
    /// `None`: the type's default properties.
    pub properties: Option<Vec<String>>,
    pub with_history: Vec<String>,
    pub associations: Vec<ObjectType>,
}

/// Appends a version unless the value is already current; whether it changed.
fn record(
    object: &mut CrmObject,
    name: &str,
    value: &str,
    at_ms: i64,
    source: &ChangeSource,
) -> bool {
    let versions = object.history.entry(name.to_owned()).or_default();
    if versions.first().is_some_and(|v| v.value == value) {
        return false;
    }
    // Newest first; a change applied late still lands in time order.
    let position = versions
        .iter()
        .position(|v| v.timestamp_ms <= at_ms)
        .unwrap_or(versions.len());
    versions.insert(
        position,
        PropertyVersion {
            value: value.to_owned(),
            timestamp_ms: at_ms,
            source: source.clone(),
        },
    );
    true
}

fn version_json(version: &PropertyVersion) -> Value {
    let mut json = json!({
        "value": version.value,
        "timestamp": iso_millis(version.timestamp_ms),
        "sourceType": version.source.source_type,
    });
    if let Some(id) = &version.source.source_id {
        json["sourceId"] = json!(id);
    }
    if let Some(user) = version.source.updated_by_user_id {
        json["updatedByUserId"] = json!(user);
    }
    json
}

/// Epoch milliseconds as HubSpot writes times: `2024-05-01T09:30:00.000Z`.
pub fn iso_millis(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A number as HubSpot writes probabilities: `0.2`, `1.0`.
pub(crate) fn number(value: f64) -> String {
    format!("{value:?}")
}

pub(crate) fn pipeline_json(pipeline: &Pipeline) -> Value {
    json!({
        "id": pipeline.id,
        "label": pipeline.label,
        "displayOrder": pipeline.display_order,
        "archived": pipeline.archived,
        "createdAt": iso_millis(pipeline.created_at_ms),
        "updatedAt": iso_millis(pipeline.updated_at_ms),
        "stages": pipeline.stages.iter().filter(|s| !s.archived).map(|stage| json!({
            "id": stage.id,
            "label": stage.label,
            "displayOrder": stage.display_order,
            "metadata": {
                "isClosed": stage.is_closed.to_string(),
                "probability": number(stage.probability),
            },
            "archived": stage.archived,
            "createdAt": iso_millis(stage.created_at_ms),
            "updatedAt": iso_millis(stage.updated_at_ms),
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn owner_json(owner: &Owner) -> Value {
    let mut json = json!({
        "id": owner.id,
        "email": owner.email,
        "type": "PERSON",
        "firstName": owner.first_name,
        "lastName": owner.last_name,
        "createdAt": iso_millis(owner.created_at_ms),
        "updatedAt": iso_millis(owner.updated_at_ms),
        "archived": owner.archived,
        "teams": owner.teams.iter().map(|t| json!({"id": t.id, "name": t.name, "primary": t.primary})).collect::<Vec<_>>(),
    });
    if let Some(user_id) = owner.user_id {
        json["userId"] = json!(user_id);
        json["userIdIncludingInactive"] = json!(user_id);
    }
    json
}

pub(crate) fn property_json(
    portal: &HubSpotPortal,
    object_type: ObjectType,
    definition: &PropertyDefinition,
) -> Value {
    let group = match definition.group_name.as_str() {
        "" => format!("{}information", object_type.singular()),
        named => named.to_owned(),
    };
    // Pipeline and stage options are the portal's pipelines and stages.
    let derived: Vec<PropertyOption> = match definition.name.as_str() {
        "pipeline" if definition.options.is_empty() => portal
            .deal_pipelines
            .iter()
            .map(|p| PropertyOption {
                label: p.label.clone(),
                value: p.id.clone(),
                display_order: p.display_order,
                hidden: p.archived,
            })
            .collect(),
        "dealstage" if definition.options.is_empty() => portal
            .deal_pipelines
            .iter()
            .flat_map(|p| &p.stages)
            .map(|s| PropertyOption {
                label: s.label.clone(),
                value: s.id.clone(),
                display_order: s.display_order,
                hidden: s.archived,
            })
            .collect(),
        _ => definition.options.clone(),
    };
    let mut json = json!({
        "name": definition.name,
        "label": definition.label,
        "type": definition.property_type,
        "fieldType": definition.field_type,
        "description": definition.description,
        "groupName": group,
        "options": derived.iter().map(|o| json!({
            "label": o.label, "value": o.value, "displayOrder": o.display_order, "hidden": o.hidden,
        })).collect::<Vec<_>>(),
        "displayOrder": definition.display_order,
        "calculated": definition.calculated,
        "externalOptions": definition.referenced_object_type.is_some(),
        "hasUniqueValue": false,
        "hidden": definition.hidden,
        "hubspotDefined": definition.hubspot_defined,
        "modificationMetadata": {
            "archivable": !definition.hubspot_defined,
            "readOnlyDefinition": definition.hubspot_defined,
            "readOnlyValue": definition.calculated,
        },
        "formField": false,
        "archived": definition.archived,
        "createdAt": iso_millis(0),
        "updatedAt": iso_millis(0),
    });
    if let Some(referenced) = &definition.referenced_object_type {
        json["referencedObjectType"] = json!(referenced);
    }
    json
}
