//! Salesforce orgs of the simulated world: the same deals, accounts and
//! contacts as any account, as opportunities, accounts and contacts.
//!
//! - [`SalesforceAccount`]: the org (`00D...`), the secret its Outbound
//!   Message endpoint URL carries, and the token of its REST and Pub/Sub
//!   APIs. Ids are 18 characters ([`record_id`]). Opportunities are in one
//!   sales process with Salesforce's standard stages, won and lost in its
//!   `Closed Won` and `Closed Lost` stages, closed on a date (`CloseDate`).
//!   The org has more than one currency, so every opportunity names its
//!   own (`CurrencyIsoCode`).
//! - Opportunities are followed through Change Data Capture
//!   ([`World::salesforce_deliveries`]): a change event per change on
//!   `/data/OpportunityChangeEvent`, in commit order, Avro-encoded with the
//!   org's schema, a bulk edit's events in one transaction (one
//!   `transactionKey`, numbered by `sequenceNumber`); a creation carries every field with a value, an update
//!   its changed fields, a deletion nothing. One in five updates that
//!   neither move nor close an opportunity arrives as a `GAP_UPDATE`
//!   (Salesforce could not say what changed) and has its record read
//!   through the REST API. Deletions show here only: Outbound Messages do
//!   not fire on them.
//! - Accounts and contacts through Outbound Messages (a workflow on each
//!   object, "created, and every time it's edited"): one notification per
//!   message with the record's values, sent again at times (Salesforce
//!   retries until acknowledged, with the same notification id) and late.
//! - An org without Change Data Capture
//!   ([`TenantSpec::salesforce_outbound`](crate::TenantSpec::salesforce_outbound))
//!   has its opportunities sent the same way, every field the dashboards
//!   read selected (`LastStageChangeDate` among them), a mass edit's as one
//!   message of several notifications; no deletion triggers a message, so
//!   it deletes and merges away no opportunity.
//! - The fake REST API ([`World::salesforce_state`],
//!   [`World::apply_to_salesforce`]): stage definitions, users, and the
//!   accounts, contacts and opportunities as of each change; the fake
//!   Pub/Sub API ([`World::salesforce_pubsub_state`]) takes the token and
//!   serves the schema.
//!
//! The reps' activities are tasks, sent by Outbound Messages (a workflow
//! on Task), whose `Type` says call, email or meeting; no deletion
//! triggers a message, so the orgs delete no task.

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use tributary_fake_apis::SalesforceState;
use tributary_fake_apis::salesforce_pubsub::{self, PubSubState};
use tributary_sources::salesforce::id_18;

use crate::World;
use crate::model::*;
use crate::simulate::stage;
use crate::webhooks::{Delivery, Habits, Version, mix};

/// The Change Data Capture channel the world's orgs publish on.
pub const CHANNEL: &str = "/data/OpportunityChangeEvent";

/// The id the fake Pub/Sub API gives the orgs' `OpportunityChangeEvent`
/// schema.
pub const SCHEMA_ID: &str = "opportunity-multicurrency-1";

/// A Salesforce org, as its Outbound Messages and APIs see it.
#[derive(Debug, Clone)]
pub struct SalesforceAccount {
    /// The org's 18-character id: every message names it.
    pub organization_id: String,
    /// The `secret` query parameter of the Outbound Message endpoint.
    pub endpoint_secret: String,
    /// The REST and Pub/Sub APIs' access token.
    pub access_token: String,
    /// Opportunities followed through Change Data Capture (else through
    /// Outbound Messages).
    pub change_data_capture: bool,
}

impl SalesforceAccount {
    pub(crate) fn new(tenant: usize, slug: &str, change_data_capture: bool) -> Self {
        let organization_id = record_id("00D", 7_700_000 + tenant as i64);
        SalesforceAccount {
            access_token: format!("{}!AQ.{slug}-session", &organization_id[..15]),
            organization_id,
            endpoint_secret: format!("{slug}-outbound-secret"),
            change_data_capture,
        }
    }
}

/// The 18-character id of record `id` of the object whose key prefix is
/// `prefix` (`006` opportunities, `001` accounts, `003` contacts, `005`
/// users).
pub fn record_id(prefix: &str, id: i64) -> String {
    id_18(&format!("{prefix}5g{id:010}")).expect("fifteen alphanumerics")
}

/// An opportunity's id.
pub fn opportunity_id(id: i64) -> String {
    record_id("006", id)
}

/// Salesforce's standard opportunity stages (`StageName` values),
/// default probabilities in percent, won and lost as stages.
pub(crate) fn pipelines() -> Vec<Pipeline> {
    vec![Pipeline {
        id: tributary_sources::salesforce::mapping::PIPELINE_ID.into(),
        name: "Opportunities",
        stages: vec![
            stage("Prospecting", "Prospecting", 1, 10.0),
            stage("Qualification", "Qualification", 2, 10.0),
            stage("Needs Analysis", "Needs Analysis", 3, 20.0),
            stage("Value Proposition", "Value Proposition", 4, 50.0),
            stage("Proposal/Price Quote", "Proposal/Price Quote", 5, 75.0),
            stage("Negotiation/Review", "Negotiation/Review", 6, 90.0),
        ],
        won_stage: Some(stage("Closed Won", "Closed Won", 7, 100.0)),
        lost_stage: Some(stage("Closed Lost", "Closed Lost", 8, 0.0)),
    }]
}

/// The org's `OpportunityChangeEvent` schema: the standard one with the
/// `CurrencyIsoCode` a multi-currency org has.
pub fn schema_json() -> String {
    let mut schema: Value =
        serde_json::from_str(salesforce_pubsub::OPPORTUNITY_CHANGE_EVENT_SCHEMA)
            .expect("the standard schema is JSON");
    let fields = schema["fields"].as_array_mut().expect("a record's fields");
    let after = fields
        .iter()
        .position(|f| f["name"] == "Amount")
        .map_or(fields.len(), |p| p + 1);
    fields.insert(
        after,
        json!({"name": "CurrencyIsoCode", "type": ["null", "string"], "default": null}),
    );
    schema.to_string()
}

/// A date-time as the REST API writes it.
fn rest_time(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .expect("a valid time")
        .format("%Y-%m-%dT%H:%M:%S.000+0000")
        .to_string()
}

/// A date-time as an Outbound Message (`xsd:dateTime`) writes it.
fn soap_time(seconds: i64) -> String {
    crate::enriched::iso(seconds).replace('Z', ".000Z")
}

fn days(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days() as i32
}

/// An opportunity's `CloseDate` in a state: the day it was won or lost,
/// else its expected close (set back when it is reopened).
fn close_date(deal: &Deal, state: &DealState) -> NaiveDate {
    state
        .won_time
        .or(state.lost_time)
        .map_or(deal.expected_close, crate::simulate::date)
}

fn forecast_category(status: &str) -> &'static str {
    match status {
        "won" => "Closed",
        "lost" => "Omitted",
        _ => "Pipeline",
    }
}

/// `NumberOfEmployees` for a company size option.
fn employees(size: i64) -> i64 {
    match size {
        26 => 8,
        27 => 40,
        28 => 250,
        _ => 1_200,
    }
}

fn industry(option: i64) -> Option<&'static str> {
    INDUSTRIES
        .iter()
        .find(|(id, _)| *id == option)
        .map(|(_, label)| *label)
}

/// A field of an Outbound Message's `sObject`.
fn soap_field(name: &str, value: Option<&str>) -> String {
    match value {
        Some(value) => format!("\n     <sf:{name}>{}</sf:{name}>", xml_escape(value)),
        None => format!("\n     <sf:{name} xsi:nil=\"true\"/>"),
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl World {
    fn salesforce_orgs(&self) -> impl Iterator<Item = (&Tenant, &SalesforceAccount)> {
        self.tenants.iter().filter_map(|t| match &t.crm {
            CrmAccount::Salesforce(account) => Some((t, account)),
            _ => None,
        })
    }

    /// What the fake REST API holds for the world's orgs before any change:
    /// the stage definitions and the users. `None` without Salesforce orgs.
    pub fn salesforce_state(&self) -> Option<SalesforceState> {
        let mut state = SalesforceState::default();
        let mut any = false;
        for (tenant, account) in self.salesforce_orgs() {
            any = true;
            let org = state.org(&account.access_token);
            let pipeline = &tenant.pipelines[0];
            let open = pipeline.stages.iter().map(|s| (s, false, false));
            let won = pipeline.won_stage.iter().map(|s| (s, true, true));
            let lost = pipeline.lost_stage.iter().map(|s| (s, false, true));
            for (stage, won, closed) in open.chain(won).chain(lost) {
                org.put_stage(&stage.id, stage.order, stage.probability, won, closed);
            }
            for (id, name) in &tenant.reps {
                org.put(
                    "User",
                    json!({"Id": record_id("005", *id), "Name": name, "IsActive": true,
                        "Email": format!("{}@{}.example", name.to_lowercase().replace(' ', "."), tenant.name),
                        "LastModifiedDate": rest_time(self.config.start)}),
                );
            }
        }
        any.then_some(state)
    }

    /// What the fake Pub/Sub API holds for the world's orgs with Change
    /// Data Capture: their tokens and the change events' schema (the events
    /// are published as they are delivered). `None` without such orgs.
    pub fn salesforce_pubsub_state(&self) -> Option<PubSubState> {
        let mut state = PubSubState {
            keepalive: std::time::Duration::from_secs(5),
            ..PubSubState::default()
        };
        for (_, account) in self.salesforce_orgs() {
            if account.change_data_capture {
                state.tokens.insert(account.access_token.clone());
            }
        }
        if state.tokens.is_empty() {
            return None;
        }
        state.schemas.insert(SCHEMA_ID.into(), schema_json());
        Some(state)
    }

    /// Brings the fake REST API up to date with `change`: the record as
    /// the API reads it, gone once deleted.
    pub fn apply_to_salesforce(&self, state: &mut SalesforceState, change: &Change) {
        let tenant = &self.tenants[change.tenant];
        let CrmAccount::Salesforce(account) = &tenant.crm else {
            return;
        };
        let org = state.org(&account.access_token);
        match &change.subject {
            Subject::Deal { deal, after, .. } => {
                let deal = &tenant.deals[*deal];
                let id = opportunity_id(deal.id);
                match after {
                    Some(state) => org.put(
                        "Opportunity",
                        opportunity_fields(tenant, deal, state, rest_time),
                    ),
                    None => org.delete("Opportunity", &id),
                }
            }
            Subject::Organization {
                organization,
                after: Some(state),
                ..
            } => {
                let organization = &tenant.organizations[*organization];
                let mut record = account_fields(organization, state, change.at(), rest_time);
                record["IsDeleted"] = json!(false);
                org.put("Account", record);
            }
            Subject::Person {
                person,
                after: Some(_),
                ..
            } => {
                let person = &tenant.persons[*person];
                let mut record = contact_fields(tenant, person, change.at(), rest_time);
                record["IsDeleted"] = json!(false);
                org.put("Contact", record);
            }
            _ => {}
        }
    }

    /// The change event of an opportunity's change: a creation with every
    /// field that has a value, an update with what changed (a gap for one in
    /// five that neither move nor close it), a deletion.
    fn change_event(&self, index: usize, change: &Change) -> Option<salesforce_pubsub::Change> {
        let tenant = &self.tenants[change.tenant];
        let Subject::Deal {
            deal,
            before,
            after,
            ..
        } = &change.subject
        else {
            return None;
        };
        let deal = &tenant.deals[*deal];
        let event = |change_type, fields| salesforce_pubsub::Change {
            change_type,
            record_ids: vec![opportunity_id(deal.id)],
            commit_timestamp_ms: change.at_micro / 1_000,
            fields,
        };
        let Some(after) = after else {
            return Some(event("DELETE", Vec::new()));
        };
        let text = |s: &str| Some(Avro::String(s.to_owned()));
        let stage = tenant.stage_in(after);
        let mut fields: Vec<(&'static str, Option<Avro>)> = Vec::new();
        let mut put = |name: &'static str, value: Option<Avro>| fields.push((name, value));
        let Some(before) = before else {
            let organization = &tenant.organizations[deal.org];
            put("AccountId", text(&record_id("001", organization.id)));
            put("IsPrivate", Some(Avro::Boolean(false)));
            put("Name", text(&after.title));
            put("StageName", text(&stage.id));
            put("Amount", Some(Avro::Double(after.value)));
            put("CurrencyIsoCode", text(deal.currency));
            put("Probability", Some(Avro::Double(stage.probability)));
            put("CloseDate", Some(Avro::Int(days(close_date(deal, after)))));
            if let Some(source) = deal.source_label() {
                put("LeadSource", text(source));
            }
            put("IsClosed", Some(Avro::Boolean(after.status != "open")));
            put("IsWon", Some(Avro::Boolean(after.status == "won")));
            put("ForecastCategory", text(forecast_category(after.status)));
            put("OwnerId", text(&record_id("005", deal.owner.0)));
            put("CreatedDate", Some(Avro::Long(deal.add_time * 1_000)));
            put("CreatedById", text(&record_id("005", change.user)));
            put("LastModifiedDate", Some(Avro::Long(change.at() * 1_000)));
            put("LastModifiedById", text(&record_id("005", change.user)));
            return Some(event("CREATE", fields));
        };
        let moved = tenant.stage_in(before).id != stage.id;
        if moved {
            put("StageName", text(&stage.id));
            put("Probability", Some(Avro::Double(stage.probability)));
            put("ForecastCategory", text(forecast_category(after.status)));
        }
        if (before.status == "won") != (after.status == "won") {
            put("IsWon", Some(Avro::Boolean(after.status == "won")));
        }
        let closes = (before.status == "open") != (after.status == "open");
        if closes {
            put("IsClosed", Some(Avro::Boolean(after.status != "open")));
        }
        let close = close_date(deal, after);
        if close_date(deal, before) != close {
            put("CloseDate", Some(Avro::Int(days(close))));
        }
        if before.value != after.value {
            put("Amount", Some(Avro::Double(after.value)));
        }
        if before.title != after.title {
            put("Name", text(&after.title));
        }
        put("LastModifiedDate", Some(Avro::Long(change.at() * 1_000)));
        put("LastModifiedById", text(&record_id("005", change.user)));
        let gap =
            !moved && !closes && mix(self.config.seed ^ 0x6A9, index as u64).is_multiple_of(5);
        Some(if gap {
            event("GAP_UPDATE", Vec::new())
        } else {
            event("UPDATE", fields)
        })
    }

    /// The Avro payload of `change`'s change event, as published, the
    /// `sequence`th of the transaction `transaction`.
    pub(crate) fn change_event_payload(
        &self,
        schema: &Schema,
        index: usize,
        change: &Change,
        (transaction, sequence): (&str, i32),
    ) -> Option<Vec<u8>> {
        let event = self.change_event(index, change)?;
        Some(salesforce_pubsub::encode_in_transaction(
            schema,
            &event,
            transaction,
            sequence,
        ))
    }

    /// The transaction of a change: a bulk edit's changes (one tenant's,
    /// in one second) share one, numbered in order; any other change is a
    /// transaction of its own. Its key is a UUID, as Salesforce's.
    fn transaction_key(&self, index: usize, change: &Change) -> String {
        let bulk = matches!(change.subject, Subject::Deal { bulk: true, .. });
        let n = if bulk {
            (change.tenant as u64) << 48 | change.at() as u64
        } else {
            1 << 63 | index as u64
        };
        self.seeded_uuid(n, !n)
    }

    /// The notification of a change in an Outbound Message: the record's
    /// values. `None` for what no message is set up for (an org with
    /// Change Data Capture follows its opportunities there; no deletion
    /// triggers a message).
    fn outbound_notification(
        &self,
        account: &SalesforceAccount,
        index: usize,
        change: &Change,
    ) -> Option<String> {
        let tenant = &self.tenants[change.tenant];
        let (object, record) = match &change.subject {
            Subject::Deal {
                deal,
                after: Some(state),
                ..
            } if !account.change_data_capture => {
                let deal = &tenant.deals[*deal];
                (
                    "Opportunity",
                    opportunity_fields(tenant, deal, state, soap_time),
                )
            }
            Subject::Organization {
                organization,
                after: Some(state),
                ..
            } => (
                "Account",
                account_fields(
                    &tenant.organizations[*organization],
                    state,
                    change.at(),
                    soap_time,
                ),
            ),
            Subject::Person {
                person,
                after: Some(_),
                ..
            } => (
                "Contact",
                contact_fields(tenant, &tenant.persons[*person], change.at(), soap_time),
            ),
            Subject::Activity {
                activity,
                after: Some(state),
                ..
            } => (
                "Task",
                task_fields(tenant, &tenant.activities[*activity], state),
            ),
            _ => return None,
        };
        let mut fields = String::new();
        for (name, value) in record.as_object().expect("a record") {
            let text = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            fields.push_str(&soap_field(name, text.as_deref()));
        }
        let notification = record_id("04l", 5_000_000 + index as i64);
        Some(format!(
            r#"
   <Notification>
    <Id>{notification}</Id>
    <sObject xsi:type="sf:{object}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{fields}
    </sObject>
   </Notification>"#
        ))
    }

    /// An Outbound Message of `changes` (one notification each; `None`
    /// when none is sent).
    fn outbound_message(&self, account: &SalesforceAccount, changes: &[usize]) -> Option<Vec<u8>> {
        let notifications: String = changes
            .iter()
            .filter_map(|&i| self.outbound_notification(account, i, &self.changes[i]))
            .collect();
        if notifications.is_empty() {
            return None;
        }
        let tenant = &self.tenants[self.changes[changes[0]].tenant];
        let org = &account.organization_id;
        Some(
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>{action}</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://{name}.my.salesforce.com/services/Soap/c/62.0/{org15}</EnterpriseUrl>
   <PartnerUrl>https://{name}.my.salesforce.com/services/Soap/u/62.0/{org15}</PartnerUrl>{notifications}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
"#,
                action = record_id("04k", 1),
                name = tenant.name,
                org15 = &org[..15],
            )
            .into_bytes(),
        )
    }

    /// Salesforce's deliveries for its orgs' changes: the Outbound Messages
    /// of accounts and contacts in arrival order (some sent again, some
    /// late), and the opportunities' change events in commit order.
    pub(crate) fn salesforce_deliveries(&self, habits: &Habits) -> Vec<Vec<Delivery>> {
        if self.salesforce_orgs().next().is_none() {
            return Vec::new();
        }
        // A mass edit's messages are one (up to 100 notifications).
        let told_with = self.told_with(Platform::Salesforce);
        let messages = self.each_change_delivered(
            habits,
            0x5A1E_5F0C,
            Version::SalesforceOutbound,
            |index, change| {
                let CrmAccount::Salesforce(account) = &self.tenants[change.tenant].crm else {
                    return None;
                };
                self.outbound_message(account, &told_with(index))
            },
        );
        let schema = Schema::parse_str(&schema_json()).expect("the org's schema");
        let mut sequences: HashMap<String, i32> = HashMap::new();
        let events = self
            .changes
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                matches!(&self.tenants[c.tenant].crm,
                    CrmAccount::Salesforce(account) if account.change_data_capture)
            })
            .filter_map(|(index, change)| {
                let transaction = self.transaction_key(index, change);
                let sequence = sequences.entry(transaction.clone()).or_default();
                *sequence += 1;
                let body =
                    self.change_event_payload(&schema, index, change, (&transaction, *sequence))?;
                Some(Delivery {
                    tenant: change.tenant,
                    change: index,
                    version: Version::SalesforceChangeEvent,
                    attempt: 1,
                    body,
                })
            })
            .collect();
        vec![messages, events]
    }

    /// `[tenants.<name>.salesforce]` of an org, its APIs as `apis` says.
    pub(crate) fn salesforce_config(
        tenant: &Tenant,
        account: &SalesforceAccount,
        apis: &crate::Apis,
    ) -> String {
        let mut config = format!(
            r#"[tenants.{name}.salesforce]
organization_id = "{org}"
endpoint_secret = "{secret}"
instance_url = "{instance_url}"
access_token = "{token}"
"#,
            name = tenant.name,
            org = account.organization_id,
            secret = account.endpoint_secret,
            instance_url = apis.salesforce_url,
            token = account.access_token,
        );
        if account.change_data_capture {
            config.push_str(&format!(
                r#"pubsub_url = "{pubsub_url}"
change_events = ["{CHANNEL}"]
# The harness publishes from the first change on: read them all.
change_events_start = "earliest"
"#,
                pubsub_url = apis.pubsub_url,
            ));
        }
        config
    }
}

/// An account's fields, as the REST API reads them and its Outbound
/// Message sends them (times written by `time`).
fn account_fields(
    organization: &Organization,
    state: &OrganizationState,
    at: i64,
    time: fn(i64) -> String,
) -> Value {
    json!({
        "Id": record_id("001", organization.id),
        "Name": state.name,
        "BillingStreet": state.address,
        "Website": null,
        "Industry": industry(state.industry),
        "NumberOfEmployees": employees(state.size),
        "OwnerId": record_id("005", organization.owner.0),
        "CreatedDate": time(organization.add_time),
        "LastModifiedDate": time(at),
    })
}

/// A contact's fields (its relations and times; its name and email are
/// sent too, and not passed on by the source).
fn contact_fields(tenant: &Tenant, person: &Person, at: i64, time: fn(i64) -> String) -> Value {
    json!({
        "Id": record_id("003", person.id),
        "FirstName": person.first_name,
        "LastName": person.last_name,
        "Email": person.email,
        "AccountId": record_id("001", tenant.organizations[person.org].id),
        "OwnerId": record_id("005", person.owner.0),
        "CreatedDate": time(person.add_time),
        "LastModifiedDate": time(at),
    })
}

/// An opportunity's fields, as the REST API reads them and an Outbound
/// Message selecting every field the dashboards read sends them (times
/// written by `time`).
fn opportunity_fields(
    tenant: &Tenant,
    deal: &Deal,
    state: &DealState,
    time: fn(i64) -> String,
) -> Value {
    let stage = tenant.stage_in(state);
    json!({
        "Id": opportunity_id(deal.id),
        "Name": state.title,
        "Amount": state.value,
        "CurrencyIsoCode": deal.currency,
        "StageName": stage.id,
        "Probability": stage.probability,
        "ForecastCategory": forecast_category(state.status),
        "IsWon": state.status == "won",
        "IsClosed": state.status != "open",
        "IsDeleted": false,
        "CloseDate": close_date(deal, state).to_string(),
        "CreatedDate": time(deal.add_time),
        "LastModifiedDate": time(state.update_time),
        "SystemModstamp": time(state.update_time),
        "LastStageChangeDate": time(state.stage_change_time),
        "OwnerId": record_id("005", deal.owner.0),
        "AccountId": record_id("001", tenant.organizations[deal.org].id),
        "LeadSource": deal.source_label(),
    })
}

/// A rep's activity as a Salesforce task, as its Outbound Message sends it:
/// its kind as the standard `Type` (Call, Email, Meeting; anything else
/// Other), done when closed, about the deal (or account) and contact.
fn task_fields(tenant: &Tenant, activity: &Activity, state: &ActivityState) -> Value {
    let (kind, subtype) = match state.kind {
        "call" => ("Call", "Call"),
        "email" => ("Email", "Email"),
        "meeting" => ("Meeting", "Task"),
        _ => ("Other", "Task"),
    };
    let what = match activity.deal {
        Some(deal) => opportunity_id(tenant.deals[deal].id),
        None => record_id("001", tenant.organizations[activity.org].id),
    };
    json!({
        "Id": record_id("00T", activity.id),
        "Subject": state.subject,
        "Type": kind,
        "TaskSubtype": subtype,
        "Status": if state.done_at.is_some() { "Completed" } else { "Not Started" },
        "IsClosed": state.done_at.is_some(),
        "CompletedDateTime": state.done_at.map(soap_time),
        "ActivityDate": activity.due_date.to_string(),
        "WhatId": what,
        "WhoId": record_id("003", tenant.persons[activity.person].id),
        "OwnerId": record_id("005", state.user.0),
        "CreatedDate": soap_time(activity.add_time),
        "LastModifiedDate": soap_time(state.update_time),
    })
}
