//! Zoho CRM orgs of the simulated world: the same deals, accounts and
//! contacts as any account, in Zoho's shapes.
//!
//! - [`ZohoAccount`]: the org id, the notification channel (its id and
//!   token) and the CRM API's access token. Deals are in Zoho's one
//!   `Stage` picklist, won and lost in its `Closed Won` / `Closed Lost`
//!   stages; record ids are 19 digits.
//! - Deliveries ([`World::zoho_deliveries`]): a channel created with
//!   `return_affected_field_values`, as the README advises, notifies each
//!   insert, update and delete of a deal, account or contact with the
//!   fields that changed, new values only (a lookup as `{id, name}`), at
//!   Zoho's `server_time`; a Mass Update as one notification listing
//!   every record it changed. Zoho's habits: a notification sent again (the
//!   same one: duplicates and retries both) and one arriving after the
//!   record's next (late).
//! - The fake CRM API ([`World::zoho_state`]): the stage definitions (the
//!   `Stage` picklist with each value's `forecast_type`), the channel, the
//!   token. Notifications carry their values, so no record is read.
//!
//! Zoho's activities (tasks, calls, events) are not taken by the source:
//! the world's Zoho orgs have none.

use serde_json::{Map, Value, json};
use tributary_fake_apis::zoho::ZohoState;

use crate::World;
use crate::enriched::iso;
use crate::model::*;
use crate::simulate::stage;
use crate::webhooks::{Delivery, Habits, Version};

/// The one pipeline: Zoho's stages are one picklist (the source's
/// `deals` pipeline).
pub const PIPELINE_ID: &str = "deals";

/// A Zoho CRM org, as the channel and the API see it.
#[derive(Debug, Clone)]
pub struct ZohoAccount {
    /// The org's id (`zgid`): the account of every record.
    pub org_id: String,
    /// The notification channel watching Deals, Accounts and Contacts.
    pub channel_id: String,
    /// The token the channel was created with: echoed in every notification.
    pub token: String,
    /// The CRM API's access token (`Zoho-oauthtoken`).
    pub access_token: String,
}

impl ZohoAccount {
    pub(crate) fn new(tenant: usize, slug: &str) -> Self {
        let t = tenant as u64 + 1;
        ZohoAccount {
            org_id: (60_012_000_000 + 1_733 * t).to_string(),
            channel_id: (1_000_000_068_000 + t).to_string(),
            token: format!("{slug}-channel-token"),
            access_token: format!("1000.{slug}-access-token"),
        }
    }
}

/// Zoho's standard deal stages (the `Stage` picklist): probabilities in
/// percent, won and lost as stages.
pub(crate) fn pipelines() -> Vec<Pipeline> {
    vec![Pipeline {
        id: PIPELINE_ID.into(),
        name: "Deals",
        stages: vec![
            stage("Qualification", "Qualification", 1, 10.0),
            stage("Needs Analysis", "Needs Analysis", 2, 20.0),
            stage("Value Proposition", "Value Proposition", 3, 40.0),
            stage("Proposal/Price Quote", "Proposal/Price Quote", 4, 75.0),
            stage("Negotiation/Review", "Negotiation/Review", 5, 90.0),
        ],
        won_stage: Some(stage("Closed Won", "Closed Won", 6, 100.0)),
        lost_stage: Some(stage("Closed Lost", "Closed Lost", 7, 0.0)),
    }]
}

/// Zoho's `Stage` picklist as the fields API lists it.
fn pick_list_values(pipeline: &Pipeline) -> Vec<Value> {
    let open = pipeline.stages.iter().map(|s| (s, "Open"));
    let won = pipeline.won_stage.iter().map(|s| (s, "Closed Won"));
    let lost = pipeline.lost_stage.iter().map(|s| (s, "Closed Lost"));
    open.chain(won)
        .chain(lost)
        .map(|(stage, forecast_type)| {
            json!({
                "display_value": stage.name,
                "actual_value": stage.id,
                "sequence_number": stage.order,
                "forecast_type": forecast_type,
                "type": "used",
            })
        })
        .collect()
}

fn time(seconds: i64) -> String {
    // Zoho writes times with the org's offset; UTC here.
    iso(seconds).replace('Z', "+00:00")
}

fn lookup(id: i64, name: &str) -> Value {
    json!({"id": id.to_string(), "name": name})
}

impl World {
    /// What the fake Zoho CRM API holds for the world's orgs: the stage
    /// definitions (every org has Zoho's standard stages), each org's
    /// channel and token. `None` without Zoho orgs.
    pub fn zoho_state(&self) -> Option<ZohoState> {
        let orgs: Vec<&ZohoAccount> = self
            .tenants
            .iter()
            .filter_map(|t| match &t.crm {
                CrmAccount::Zoho(account) => Some(account),
                _ => None,
            })
            .collect();
        if orgs.is_empty() {
            return None;
        }
        let expiry = time(self.config.start + (self.config.days + 1) * DAY);
        Some(ZohoState {
            tokens: orgs.iter().map(|o| o.access_token.clone()).collect(),
            stages: pick_list_values(&pipelines()[0]),
            channels: orgs
                .iter()
                .map(|o| {
                    json!({"channel_id": o.channel_id, "events": ["Deals.all", "Accounts.all", "Contacts.all"],
                        "channel_expiry": expiry, "token": o.token, "notify_url": "https://collector.example/webhooks/zoho"})
                })
                .collect(),
            ..ZohoState::default()
        })
    }

    /// The notification of a Zoho change: module, operation and the
    /// record's changed values (none for a delete).
    fn zoho_notification(
        &self,
        change: &Change,
    ) -> Option<(&'static str, &'static str, i64, Map<String, Value>)> {
        let tenant = &self.tenants[change.tenant];
        let operation = match change.action {
            Action::Added => "insert",
            Action::Deleted => "delete",
            Action::Updated | Action::Merged | Action::Restored => "update",
        };
        let mut values = Map::new();
        let rep = |id: i64| -> Value {
            let name = tenant.reps.iter().find(|r| r.0 == id).map_or("", |r| r.1);
            lookup(id, name)
        };
        let (module, id) = match &change.subject {
            Subject::Deal {
                deal,
                before,
                after,
                ..
            } => {
                let deal = &tenant.deals[*deal];
                if let Some(after) = after {
                    let stage = tenant.stage_in(after);
                    let moved = before
                        .as_ref()
                        .is_none_or(|b| tenant.stage_in(b).id != stage.id);
                    if moved {
                        values.insert("Stage".into(), json!(stage.id));
                        values.insert("Probability".into(), json!(stage.probability));
                    }
                    if before.as_ref().is_none_or(|b| b.value != after.value) {
                        values.insert("Amount".into(), json!(after.value));
                    }
                    if before.as_ref().is_none_or(|b| b.title != after.title) {
                        values.insert("Deal_Name".into(), json!(after.title));
                    }
                    if before.is_none() {
                        let person = &tenant.persons[deal.person];
                        let org = &tenant.organizations[deal.org];
                        values.insert("Currency".into(), json!(deal.currency));
                        values.insert(
                            "Closing_Date".into(),
                            json!(deal.expected_close.to_string()),
                        );
                        values.insert("Owner".into(), rep(deal.owner.0));
                        values.insert("Account_Name".into(), lookup(org.id, &org.last.name));
                        values.insert(
                            "Contact_Name".into(),
                            lookup(
                                person.id,
                                &format!("{} {}", person.first_name, person.last_name),
                            ),
                        );
                        if let Some(source) = deal.source_label() {
                            values.insert("Lead_Source".into(), json!(source));
                        }
                        values.insert("Created_Time".into(), json!(time(deal.add_time)));
                    }
                    values.insert("Modified_Time".into(), json!(time(change.at())));
                }
                ("Deals", deal.id)
            }
            Subject::Organization {
                organization,
                before,
                after,
            } => {
                let org = &tenant.organizations[*organization];
                if let Some(after) = after {
                    if before.as_ref().is_none_or(|b| b.name != after.name) {
                        values.insert("Account_Name".into(), json!(after.name));
                    }
                    if before.as_ref().is_none_or(|b| b.address != after.address) {
                        values.insert("Billing_Street".into(), json!(after.address));
                    }
                    if before.as_ref().is_none_or(|b| b.industry != after.industry) {
                        let industry = INDUSTRIES.iter().find(|(id, _)| *id == after.industry);
                        values.insert("Industry".into(), json!(industry.map(|(_, l)| *l)));
                    }
                    if before.is_none() {
                        values.insert("Owner".into(), rep(org.owner.0));
                        values.insert("Created_Time".into(), json!(time(org.add_time)));
                    }
                    values.insert("Modified_Time".into(), json!(time(change.at())));
                }
                ("Accounts", org.id)
            }
            Subject::Person {
                person,
                before,
                after,
            } => {
                let person = &tenant.persons[*person];
                if let Some(after) = after {
                    if before
                        .as_ref()
                        .is_none_or(|b| b.job_title != after.job_title)
                    {
                        values.insert("Title".into(), json!(after.job_title));
                    }
                    if before.as_ref().is_none_or(|b| b.phone != after.phone) {
                        values.insert("Phone".into(), json!(after.phone));
                    }
                    if before.is_none() {
                        let org = &tenant.organizations[person.org];
                        values.insert("First_Name".into(), json!(person.first_name));
                        values.insert("Last_Name".into(), json!(person.last_name));
                        values.insert("Email".into(), json!(person.email));
                        values.insert("Account_Name".into(), lookup(org.id, &org.last.name));
                        values.insert("Owner".into(), rep(person.owner.0));
                        values.insert("Created_Time".into(), json!(time(person.add_time)));
                    }
                    values.insert("Modified_Time".into(), json!(time(change.at())));
                }
                ("Contacts", person.id)
            }
            // Zoho orgs of the world have no activities.
            Subject::Activity { .. } => return None,
        };
        Some((module, operation, id, values))
    }

    /// The body of one notification on `account`'s channel of `changes`
    /// (one operation on one module; several records in a mass update).
    fn zoho_body(&self, account: &ZohoAccount, changes: &[&Change]) -> Option<Vec<u8>> {
        let notifications: Vec<_> = changes
            .iter()
            .filter_map(|change| self.zoho_notification(change))
            .collect();
        let (module, operation, ..) = notifications.first()?;
        let last = changes.last()?;
        let ids: Vec<String> = notifications.iter().map(|n| n.2.to_string()).collect();
        let mut body = json!({
            "server_time": last.at_micro / 1_000,
            "query_params": {},
            "module": module,
            "resource_uri": format!("https://www.zohoapis.com/crm/v2/{module}"),
            "ids": ids,
            "operation": operation,
            "channel_id": account.channel_id.parse::<u64>().ok(),
            "token": account.token,
        });
        if *operation != "delete" {
            let fields: Vec<Value> = notifications
                .iter()
                .map(|(_, _, id, values)| json!({ id.to_string(): values.keys().collect::<Vec<_>>() }))
                .collect();
            let values: Vec<Value> = notifications
                .iter()
                .map(|(_, _, id, values)| json!({"record_id": id.to_string(), "values": values}))
                .collect();
            body["affected_fields"] = json!(fields);
            body["affected_values"] = json!(values);
        }
        Some(serde_json::to_vec(&body).expect("JSON"))
    }

    /// Zoho's notifications for its orgs' changes, in arrival order: each
    /// change once, some again (`duplicates` and `retries`: Zoho sends the
    /// same notification), some after the record's next change (`late`).
    pub(crate) fn zoho_deliveries(&self, habits: &Habits) -> Vec<Delivery> {
        let told_with = self.told_with(Platform::Zoho);
        self.each_change_delivered(habits, 0x2040_C4A7, Version::Zoho, |index, change| {
            let CrmAccount::Zoho(account) = &self.tenants[change.tenant].crm else {
                return None;
            };
            let changes: Vec<&Change> =
                told_with(index).iter().map(|&i| &self.changes[i]).collect();
            self.zoho_body(account, &changes)
        })
    }

    /// `[tenants.<name>.zoho]` of a Zoho org, its API at `api_url`.
    pub(crate) fn zoho_config(tenant: &Tenant, account: &ZohoAccount, api_url: &str) -> String {
        format!(
            r#"[tenants.{name}.zoho]
org_id = "{org}"
channel_ids = ["{channel}"]
token = "{token}"
currency = "{currency}"
api_domain = "{api_url}"
access_token = "{access_token}"
"#,
            name = tenant.name,
            org = account.org_id,
            channel = account.channel_id,
            token = account.token,
            currency = tenant.home_currency,
            access_token = account.access_token,
        )
    }
}

#[cfg(test)]
mod tests;
