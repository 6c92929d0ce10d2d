//! HubSpot's enriched events (the flat `hubspot-crm` shape) into the
//! canonical model.
//!
//! The account is the portal. What the webhook itself says (a deletion, a
//! restore, a merge, one property's new value) carries the event's own
//! version, `occurredAt`; what the enricher read from the CRM API is as of
//! the read, so it carries the record's own version (`updatedAt`, or the
//! event's when later: archiving does not move `updatedAt`). An event whose
//! record could not be read maps only what the webhook said, so nothing
//! known is blanked. Statuses come from `hs_is_closed_won` / `hs_is_closed`
//! read strictly ("false" is false), stage outcomes from the pipeline's
//! `isClosed` and probability, never from a stage's name.

use serde_json::{Map, Value};
use tributary_model::flat::{Flat, custom_fields};
use tributary_model::{
    Activity, ActivityType, Company, Contact, ContactPii, Context, Deal, DealStatus, Field, Key,
    Mapped, Mapping, MappingError, Outcome, Pipeline, Record, Stage, StageTransition, Timestamp,
    User, Version,
};

/// The mapping the activator uses for HubSpot events.
pub struct HubSpotMapping;

/// What every record of one event shares.
struct Event<'a> {
    flat: Flat<'a>,
    context: &'a Context<'a>,
    account: String,
    action: String,
    object: String,
    object_id: String,
    /// The webhook's own facts.
    version: Version,
    /// The record as read, when it was: `Some(true)` found, `Some(false)`
    /// gone, `None` not read.
    found: Option<bool>,
    /// The id the API answered with (the survivor after a merge).
    record_id: Option<String>,
    /// What was read from the API.
    hydrated: Version,
}

impl Event<'_> {
    fn key(&self, id: impl Into<String>) -> Key {
        Key {
            tenant: self.context.tenant.to_owned(),
            source: self.context.source.to_owned(),
            account: self.account.clone(),
            id: id.into(),
        }
    }

    /// The id of the record the fields describe.
    fn id(&self) -> String {
        self.record_id
            .clone()
            .unwrap_or_else(|| self.object_id.clone())
    }

    fn micros_of(&self, key: &str) -> Result<Option<i64>, MappingError> {
        Ok(match self.flat.text(key)? {
            Field::Value(text) => Some(
                chrono::DateTime::parse_from_rfc3339(&text)
                    .map_err(|_| MappingError::new(key, format!("{text:?} is not a time")))?
                    .timestamp_micros(),
            ),
            _ => None,
        })
    }
}

impl Mapping for HubSpotMapping {
    fn map(
        &self,
        context: &Context<'_>,
        fields: &Map<String, Value>,
    ) -> Result<Mapped, MappingError> {
        let flat = Flat::new(fields);
        let object = Flat::required("event_object", flat.text("event_object")?)?;
        let action = Flat::required("event_action", flat.text("event_action")?)?;
        let account = Flat::required("event_portal_id", flat.id("event_portal_id")?)?;
        let object_id = Flat::required("event_object_id", flat.id("event_object_id")?)?;
        let at_micro = Flat::required(
            "event_timestamp_micro",
            flat.integer("event_timestamp_micro")?,
        )?;
        let version = Version {
            at_micro,
            received_micro: context.received_at_micro,
        };
        let record_version = flat.integer("record_version_micro")?.value().copied();
        let mut event = Event {
            flat,
            context,
            account,
            action,
            object,
            object_id,
            version,
            found: flat.flag("record_found")?.value().copied(),
            record_id: flat.id("record_id")?.value().cloned(),
            hydrated: Version {
                at_micro: record_version.unwrap_or(at_micro).max(at_micro),
                received_micro: context.received_at_micro,
            },
        };
        if event.found != Some(true) {
            event.record_id = None;
        }
        let mut records = Vec::new();
        let canonical = match event.object.as_str() {
            "deal" => {
                deal(&event, &mut records)?;
                "deal"
            }
            "contact" => {
                contact(&event, &mut records)?;
                "contact"
            }
            "company" => {
                company(&event, &mut records)?;
                "company"
            }
            "call" | "email" | "meeting" | "task" | "note" => {
                activity(&event, &mut records)?;
                "activity"
            }
            other => {
                return Err(MappingError::new(
                    "event_object",
                    format!("no mapping for HubSpot object {other:?}"),
                ));
            }
        };
        Ok(Mapped {
            account: event.account.clone(),
            object: canonical.to_owned(),
            remote_id: event.object_id.clone(),
            action: event.action.clone(),
            version: event.version,
            records,
        })
    }
}

/// What the event says of the record's existence, at its own version:
/// a deletion or a record the API no longer has is a tombstone, a restore
/// undoes it, a merge points the merged-away ids at the survivor. Returns
/// the tombstone's or the survivor's facts for `make`'s record.
fn lifecycle<R>(
    event: &Event<'_>,
    records: &mut Vec<Record>,
    make: impl Fn(Key, Version) -> R,
    deleted: impl Fn(&mut R, Field<bool>),
    merged_into: impl Fn(&mut R, Field<String>),
    wrap: impl Fn(R) -> Record,
) -> Result<(), MappingError> {
    let flat = &event.flat;
    // Merged away: every id the merge names, and an id the API answers for
    // with another record.
    let survivor = flat
        .id("event_new_object_id")?
        .value()
        .cloned()
        .or(flat.id("event_primary_object_id")?.value().cloned())
        .or(event.record_id.clone());
    let mut gone: Vec<String> = match flat.texts("event_merged_object_ids")? {
        Field::Value(ids) => ids,
        _ => Vec::new(),
    };
    if let Some(record_id) = &event.record_id
        && *record_id != event.object_id
    {
        gone.push(event.object_id.clone());
    }
    if let Some(survivor) = &survivor {
        for id in gone.iter().filter(|id| *id != survivor) {
            let mut record = make(event.key(id.clone()), event.version);
            merged_into(&mut record, Field::Value(survivor.clone()));
            records.push(wrap(record));
        }
    }
    let tombstone = match (event.action.as_str(), event.found) {
        ("deletion" | "privacyDeletion", _) | (_, Some(false)) => Some(true),
        ("restore" | "creation", Some(true) | None) => Some(false),
        _ => None,
    };
    if let Some(is_deleted) = tombstone {
        let mut record = make(event.key(event.id()), event.version);
        deleted(&mut record, Field::Value(is_deleted));
        if !is_deleted {
            merged_into(&mut record, Field::Null);
        }
        records.push(wrap(record));
    }
    Ok(())
}

/// The outcome of each stage of the deal's pipeline, by stage id.
fn stage_outcomes(flat: &Flat<'_>) -> Result<Vec<(String, Outcome)>, MappingError> {
    let (Field::Value(ids), Field::Value(outcomes)) = (
        flat.texts("deal_pipeline_stage_ids")?,
        flat.texts("deal_pipeline_stage_outcomes")?,
    ) else {
        return Ok(Vec::new());
    };
    ids.into_iter()
        .zip(outcomes)
        .map(|(id, outcome)| {
            let outcome = match outcome.as_str() {
                "open" => Outcome::Open,
                "won" => Outcome::Won,
                "lost" => Outcome::Lost,
                other => {
                    return Err(MappingError::new(
                        "deal_pipeline_stage_outcomes",
                        format!("{other:?} is not open, won or lost"),
                    ));
                }
            };
            Ok((id, outcome))
        })
        .collect()
}

fn deal(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    lifecycle(
        event,
        records,
        Deal::new,
        |d, v| d.deleted = v,
        |d, v| d.merged_into = v,
        Record::Deal,
    )?;
    if event.found != Some(true) {
        // Not read: what the webhook said of one property.
        if let Some(record) = property_change_of_deal(event)? {
            records.push(Record::Deal(record));
        }
        stage_change_of_webhook(event, &[], &[], records)?;
        return Ok(());
    }
    let id = event.id();
    let outcomes = stage_outcomes(flat)?;
    let outcome_of = |stage: &str| outcomes.iter().find(|(s, _)| s == stage).map(|(_, o)| *o);
    let mut deal = Deal::new(event.key(id.clone()), event.hydrated);
    deal.deleted = flat.flag("record_archived")?;
    deal.title = flat.text("deal_name")?;
    deal.amount = flat.amount_or_empty("deal_amount")?;
    deal.amount_text = flat.text_or_empty("deal_amount")?;
    deal.currency = flat.text_or_empty("deal_currency")?;
    deal.pipeline_id = flat.text_or_empty("deal_pipeline_id")?;
    deal.stage_id = flat.text_or_empty("deal_stage_id")?;
    deal.status = match (
        flat.flag("deal_is_closed_won")?,
        flat.flag("deal_is_closed")?,
    ) {
        (Field::Value(true), _) => Field::Value(DealStatus::Won),
        (_, Field::Value(true)) => Field::Value(DealStatus::Lost),
        (_, Field::Value(false)) => Field::Value(DealStatus::Open),
        (Field::Unknown, Field::Unknown) => Field::Unknown,
        _ => Field::Null,
    };
    // HubSpot has no deal-level probability override: the stage's applies.
    deal.probability = Field::Null;
    deal.expected_close_date = flat.date_or_empty("deal_close_date")?;
    deal.created_at = flat.time_or_empty("deal_create_date")?;
    deal.lost_reason = flat.text_or_empty("deal_closed_lost_reason")?;
    deal.owner_id = flat.text_or_empty("deal_owner_id")?;
    deal.company_id = flat.id("deal_company_id")?;
    deal.contact_id = flat.id("deal_contact_id")?;
    deal.marketing_source = flat.text_or_empty("deal_marketing_source")?;
    deal.updated_at = flat.time("record_updated_at")?;

    // The stage history, oldest first: transitions, and when the deal
    // entered its current stage.
    let history = match (
        flat.texts("deal_stage_history_ids")?,
        flat.texts("deal_stage_history_times")?,
    ) {
        (Field::Value(ids), Field::Value(times)) if ids.len() == times.len() => ids
            .into_iter()
            .zip(times)
            .map(|(stage, time)| {
                let micros = chrono::DateTime::parse_from_rfc3339(&time)
                    .map_err(|_| {
                        MappingError::new(
                            "deal_stage_history_times",
                            format!("{time:?} is not a time"),
                        )
                    })?
                    .timestamp_micros();
                Ok((stage, micros))
            })
            .collect::<Result<Vec<_>, MappingError>>()?,
        (Field::Value(_), Field::Value(_)) => {
            return Err(MappingError::new(
                "deal_stage_history_times",
                "has not one time per stage in deal_stage_history_ids",
            ));
        }
        _ => Vec::new(),
    };
    let entered_current = history.last().map(|(_, micros)| *micros);
    let entered = Field::known(
        entered_current
            .map(Timestamp::from_micros)
            .transpose()
            .map_err(|reason| MappingError::new("deal_stage_history_times", reason))?,
    );
    if !history.is_empty() {
        deal.stage_changed_at = entered.clone();
    }
    // Won or lost when it entered its won or lost stage.
    let closed_at = match (&deal.status, outcomes.is_empty() || history.is_empty()) {
        (Field::Value(DealStatus::Open), _) => Field::Null,
        (Field::Value(_), false) => entered.clone(),
        _ => Field::Unknown,
    };
    (deal.won_at, deal.lost_at) = match deal.status {
        Field::Value(DealStatus::Won) => (closed_at.clone(), Field::Null),
        Field::Value(DealStatus::Lost) => (Field::Null, closed_at.clone()),
        Field::Value(DealStatus::Open) => (Field::Null, Field::Null),
        _ => (Field::Unknown, Field::Unknown),
    };
    deal.closed_at = closed_at;

    let pipeline_id = deal.pipeline_id.value().cloned().unwrap_or_default();
    let status_of = |stage: &str| match outcome_of(stage) {
        Some(Outcome::Won) => "won",
        Some(Outcome::Lost) => "lost",
        Some(Outcome::Open) => "open",
        None => "",
    };
    let change_source = |i: usize| -> Result<String, MappingError> {
        Ok(match flat.texts("deal_stage_history_sources")? {
            Field::Value(sources) => sources.get(i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
    };
    for (i, (stage, micros)) in history.iter().enumerate() {
        let from = i
            .checked_sub(1)
            .map(|p| history[p].0.clone())
            .unwrap_or_default();
        records.push(Record::StageTransition(StageTransition {
            deal: event.key(id.clone()),
            entered_at_micro: *micros,
            pipeline_id: pipeline_id.clone(),
            from_status: if from.is_empty() {
                String::new()
            } else {
                status_of(&from).to_owned()
            },
            from_stage_id: from,
            to_stage_id: stage.clone(),
            to_status: status_of(stage).to_owned(),
            change_source: change_source(i)?,
        }));
    }
    // The history read is the survivor's after a merge: the webhook still
    // says when this deal itself entered a stage.
    let read_for_this_deal = id == event.object_id;
    let known: Vec<i64> = if read_for_this_deal {
        history.iter().map(|(_, micros)| *micros).collect()
    } else {
        Vec::new()
    };
    stage_change_of_webhook(event, &known, &outcomes, records)?;
    pipeline_and_stages(event, &pipeline_id, &outcomes, records)?;
    owner(event, records)?;
    deals_company(event, records)?;
    custom(event, "deal", &id, records)?;
    records.insert(0, Record::Deal(deal));
    Ok(())
}

/// A `dealstage` change the webhook reports, as a transition of the event's
/// own deal at the event's time, unless the history read has it (`known`
/// entry times). The stage it left is not in the webhook.
fn stage_change_of_webhook(
    event: &Event<'_>,
    known: &[i64],
    outcomes: &[(String, Outcome)],
    records: &mut Vec<Record>,
) -> Result<(), MappingError> {
    let flat = &event.flat;
    let (Field::Value(name), Field::Value(stage)) = (
        flat.text("event_property_name")?,
        flat.text_or_empty("event_property_value")?,
    ) else {
        return Ok(());
    };
    if name != "dealstage" || known.contains(&event.version.at_micro) {
        return Ok(());
    }
    let to_status = match outcomes.iter().find(|(s, _)| *s == stage).map(|(_, o)| *o) {
        Some(outcome) => outcome.as_str(),
        None => "",
    };
    records.push(Record::StageTransition(StageTransition {
        deal: event.key(event.object_id.clone()),
        entered_at_micro: event.version.at_micro,
        pipeline_id: flat
            .text_or_empty("deal_pipeline_id")?
            .value()
            .cloned()
            .unwrap_or_default(),
        from_stage_id: String::new(),
        to_stage_id: stage,
        from_status: String::new(),
        to_status: to_status.to_owned(),
        change_source: flat
            .text("event_change_source")?
            .value()
            .cloned()
            .unwrap_or_default(),
    }));
    Ok(())
}

/// A deal property change the API could not complete: the one property, if
/// the model has it, at the event's version.
fn property_change_of_deal(event: &Event<'_>) -> Result<Option<Deal>, MappingError> {
    let flat = &event.flat;
    let (Field::Value(name), value) = (
        flat.text("event_property_name")?,
        flat.text_or_empty("event_property_value")?,
    ) else {
        return Ok(None);
    };
    let mut deal = Deal::new(event.key(event.object_id.clone()), event.version);
    match name.as_str() {
        "dealname" => deal.title = value,
        "amount" => {
            deal.amount = flat.amount_or_empty("event_property_value")?;
            deal.amount_text = value;
        }
        "deal_currency_code" => deal.currency = value,
        "dealstage" => deal.stage_id = value,
        "pipeline" => deal.pipeline_id = value,
        "hubspot_owner_id" => deal.owner_id = value,
        "closed_lost_reason" => deal.lost_reason = value,
        "closedate" => deal.expected_close_date = flat.date_or_empty("event_property_value")?,
        _ => return Ok(None),
    }
    Ok(deal.knows_anything().then_some(deal))
}

/// The deal's pipeline and every stage of it, as the enricher read them.
fn pipeline_and_stages(
    event: &Event<'_>,
    pipeline_id: &str,
    outcomes: &[(String, Outcome)],
    records: &mut Vec<Record>,
) -> Result<(), MappingError> {
    let flat = &event.flat;
    let Field::Value(name) = flat.text("deal_pipeline_name")? else {
        return Ok(());
    };
    let version = event.hydrated.at_micro;
    records.push(Record::Pipeline(Pipeline {
        key: event.key(pipeline_id),
        version,
        name,
        display_order: flat
            .integer("deal_pipeline_order")?
            .value()
            .copied()
            .unwrap_or(0),
        archived: false,
    }));
    let column = |key: &str| -> Result<Vec<String>, MappingError> {
        Ok(match flat.texts(key)? {
            Field::Value(values) => values,
            _ => Vec::new(),
        })
    };
    let names = column("deal_pipeline_stage_names")?;
    let orders = column("deal_pipeline_stage_orders")?;
    let probabilities = column("deal_pipeline_stage_probabilities")?;
    if names.len() != outcomes.len()
        || orders.len() != outcomes.len()
        || probabilities.len() != outcomes.len()
    {
        return Err(MappingError::new(
            "deal_pipeline_stage_ids",
            "the stage arrays differ in length",
        ));
    }
    for (i, (id, outcome)) in outcomes.iter().enumerate() {
        let order = orders[i].trim().parse::<i64>().map_err(|_| {
            MappingError::new(
                "deal_pipeline_stage_orders",
                format!("{:?} is not an order", orders[i]),
            )
        })?;
        // HubSpot's probability is a fraction ("0.2"); the model's a percent.
        let probability = match probabilities[i].trim() {
            "" => None,
            text => Some(
                text.parse::<f64>()
                    .map(|p| (p * 1_000_000.0).round() / 10_000.0)
                    .map_err(|_| {
                        MappingError::new(
                            "deal_pipeline_stage_probabilities",
                            format!("{text:?} is not a probability"),
                        )
                    })?,
            ),
        };
        records.push(Record::Stage(Stage {
            key: event.key(id.clone()),
            version,
            pipeline_id: pipeline_id.to_owned(),
            name: names[i].clone(),
            display_order: order,
            probability,
            outcome: *outcome,
            archived: false,
        }));
    }
    Ok(())
}

/// The record's owner, when the owners were read.
fn owner(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let flat = &event.flat;
    let owner_id = [
        "deal_owner_id",
        "contact_owner_id",
        "company_owner_id",
        "activity_owner_id",
    ]
    .iter()
    .find_map(|key| flat.raw(key).and_then(Value::as_str).map(str::to_owned));
    if let (Some(id), Field::Value(name)) = (owner_id, flat.text("owner_name")?) {
        let mut user = User::new(event.key(id), event.hydrated);
        user.name = Field::Value(name);
        user.email = flat.text("owner_email")?;
        records.push(Record::User(user));
    }
    Ok(())
}

/// A company record from the event's `company_*` fields, at its own version.
fn company_record(event: &Event<'_>, id: &str, version: Version) -> Result<Company, MappingError> {
    let flat = &event.flat;
    let mut company = Company::new(event.key(id), version);
    company.name = flat.text("company_name")?;
    company.domain = flat.text_or_empty("company_domain")?;
    company.industry = flat.text_or_empty("company_industry")?;
    company.size = flat.text_or_empty("company_size")?;
    company.owner_id = flat.text_or_empty("company_owner_id")?;
    Ok(company)
}

/// The deal's company, read with it (maybe from the cache: its own version).
fn deals_company(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    let Field::Value(id) = event.flat.id("company_id")? else {
        return Ok(());
    };
    let at_micro = event
        .micros_of("company_updated_at")?
        .unwrap_or(event.version.at_micro);
    let version = Version {
        at_micro,
        received_micro: event.version.received_micro,
    };
    records.push(Record::Company(company_record(event, &id, version)?));
    Ok(())
}

fn company(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    lifecycle(
        event,
        records,
        Company::new,
        |c, v| c.deleted = v,
        |c, v| c.merged_into = v,
        Record::Company,
    )?;
    if event.found != Some(true) {
        return Ok(());
    }
    let id = event.id();
    let mut company = company_record(event, &id, event.hydrated)?;
    company.deleted = event.flat.flag("record_archived")?;
    company.created_at = event.flat.time("record_created_at")?;
    company.updated_at = event.flat.time("record_updated_at")?;
    records.push(Record::Company(company));
    owner(event, records)?;
    custom(event, "company", &id, records)
}

fn contact(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    lifecycle(
        event,
        records,
        Contact::new,
        |c, v| c.deleted = v,
        |c, v| c.merged_into = v,
        Record::Contact,
    )?;
    if event.found != Some(true) {
        return Ok(());
    }
    let flat = &event.flat;
    let id = event.id();
    let mut contact = Contact::new(event.key(id.clone()), event.hydrated);
    contact.deleted = flat.flag("record_archived")?;
    contact.company_id = flat.id("contact_company_id")?;
    contact.owner_id = flat.text_or_empty("contact_owner_id")?;
    contact.created_at = flat.time("record_created_at")?;
    contact.updated_at = flat.time("record_updated_at")?;
    records.push(Record::Contact(contact));
    let mut pii = ContactPii::new(event.key(id.clone()), event.hydrated);
    pii.first_name = flat.text("contact_first_name")?;
    pii.last_name = flat.text("contact_last_name")?;
    pii.email = flat.text("contact_email")?;
    pii.phone = flat.text("contact_phone_number")?;
    pii.position = flat.text("contact_position")?;
    pii.updated_at = flat.time("record_updated_at")?;
    records.push(Record::ContactPii(pii));
    owner(event, records)?;
    custom(event, "contact", &id, records)
}

fn activity(event: &Event<'_>, records: &mut Vec<Record>) -> Result<(), MappingError> {
    lifecycle(
        event,
        records,
        Activity::new,
        |a, v| a.deleted = v,
        |a, v| a.merged_into = v,
        Record::Activity,
    )?;
    if event.found != Some(true) {
        return Ok(());
    }
    let flat = &event.flat;
    let id = event.id();
    let mut activity = Activity::new(event.key(id), event.hydrated);
    activity.deleted = flat.flag("record_archived")?;
    let kind = event.object.as_str();
    activity.kind = Field::Value(match kind {
        "call" => ActivityType::Call,
        "email" => ActivityType::Email,
        "meeting" => ActivityType::Meeting,
        "task" => ActivityType::Task,
        _ => ActivityType::Note,
    });
    activity.raw_type = Field::Value(kind.to_owned());
    activity.subject = flat.text("activity_subject")?;
    activity.direction = flat.text("activity_direction")?.map(|d| {
        match d.as_str() {
            "INBOUND" | "INCOMING_EMAIL" => "inbound",
            _ => "outbound",
        }
        .to_owned()
    });
    let timestamp = flat.time_or_empty("activity_timestamp")?;
    let status = flat.text("activity_status")?;
    let status = status.value().map(String::as_str);
    // Done, as each engagement type says it.
    let done = match kind {
        "call" | "meeting" | "task" => status == Some("COMPLETED"),
        // A logged email happened; a scheduled or failed one did not.
        "email" => !matches!(status, Some("SCHEDULED" | "FAILED" | "BOUNCED")),
        _ => true,
    };
    activity.done = Field::Value(done);
    activity.done_at = match (done, kind) {
        (false, _) => Field::Null,
        (true, "task") => flat
            .time_or_empty("activity_completed_at")?
            .or(timestamp.clone()),
        (true, _) => timestamp.clone(),
    };
    if kind == "task" {
        activity.due_at = timestamp.clone();
        activity.due_date = match &timestamp {
            Field::Value(t) => Field::known(
                chrono::DateTime::from_timestamp(t.seconds(), 0).map(|d| d.date_naive()),
            ),
            other => other.clone().map(|_| chrono::NaiveDate::MIN),
        };
    }
    activity.owner_id = flat.text_or_empty("activity_owner_id")?;
    activity.deal_id = flat.id("activity_deal_id")?;
    activity.contact_id = flat.id("activity_contact_id")?;
    activity.company_id = flat.id("activity_company_id")?;
    activity.created_at = flat.time("record_created_at")?;
    activity.updated_at = flat.time("record_updated_at")?;
    records.push(Record::Activity(activity));
    owner(event, records)
}

/// The record's custom properties and their definitions.
fn custom(
    event: &Event<'_>,
    object: &str,
    id: &str,
    records: &mut Vec<Record>,
) -> Result<(), MappingError> {
    records.extend(custom_fields(
        &event.flat,
        &event.key(id),
        object,
        event.hydrated.at_micro,
    )?);
    Ok(())
}

#[cfg(test)]
mod tests;
