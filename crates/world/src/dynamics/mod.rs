//! Dynamics 365 (Dataverse) organizations of the simulated world: the same
//! deals, accounts and contacts as any account, as opportunities, accounts
//! and contacts in Dataverse's shapes.
//!
//! - [`DynamicsAccount`]: the organization (a GUID), the webhook
//!   registration's key (`WebhookKey`: the `code` query parameter) and the
//!   Web API's token. Ids are GUIDs ([`guid`]). Opportunities are in the
//!   standard sales process (`1-Qualify` .. `4-Close`); won and lost is
//!   their `statecode`, and a close is on a date.
//! - Deliveries ([`World::dynamics_deliveries`]): the `RemoteExecutionContext`
//!   of a webhook step per message, as the Plug-in Registration Tool sets
//!   them up: opportunities' `Create` and `Update` with a post image of
//!   every attribute, `Win` and `Lose` with their `OpportunityClose`,
//!   `Delete`; accounts' and contacts' steps without images (the target
//!   holds what the operation set); some updates stripped for size
//!   (`x-ms-dynamics-msg-size-exceeded`). Dataverse's habits: a context sent again
//!   (the asynchronous service retries) and one arriving after the record's
//!   next (late).
//! - The fake Web API ([`World::dynamics_state`],
//!   [`World::apply_to_dataverse`]): the organizations' currencies, which
//!   opportunities name by reference only, and their opportunities as of
//!   each change, whose stage a `Win` or `Lose` (without an image) reads.
//!
//! Dynamics' activities (tasks, phone calls, appointments) are not taken by
//! the source: the world's organizations have none.

use serde_json::{Value, json};
use tributary_fake_apis::dynamics::DataverseState;

use crate::World;
use crate::model::*;
use crate::simulate::stage;
use crate::webhooks::{Delivery, Habits, Version};

/// The one pipeline opportunities are in (the source's).
pub const PIPELINE_ID: &str = "opportunities";

/// A Dynamics 365 organization, as its webhook registration and Web API
/// see it.
#[derive(Debug, Clone)]
pub struct DynamicsAccount {
    /// The organization's id (`OrganizationId`): the account of every record.
    pub organization_id: String,
    pub organization_name: String,
    /// The webhook registration's key (sent as `?code=`).
    pub webhook_key: String,
    /// The Web API's bearer token.
    pub access_token: String,
}

impl DynamicsAccount {
    pub(crate) fn new(tenant: usize, slug: &str) -> Self {
        DynamicsAccount {
            organization_id: guid(9_000_000 + tenant as i64),
            organization_name: slug.to_owned(),
            webhook_key: format!("{slug}-webhook-key"),
            access_token: format!("eyJ0eXAiOiJKV1Qi.{slug}"),
        }
    }
}

/// The GUID Dataverse knows a world record by: its id in the last twelve
/// digits, so distinct ids never share one.
pub fn guid(id: i64) -> String {
    let n = id as u64;
    let mix = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        mix >> 32,
        (mix >> 16) & 0xffff,
        mix & 0xfff,
        (mix >> 20) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// An opportunity's `statecode` and `statuscode` in a status: open
/// (In Progress), won (Won), lost (Out-Sold).
fn status_codes(status: &str) -> (i64, i64) {
    match status {
        "won" => (1, 3),
        "lost" => (2, 5),
        _ => (0, 1),
    }
}

/// A currency's `transactioncurrency` id.
fn currency_id(code: &str) -> String {
    let n = code
        .bytes()
        .fold(0x7C_0000_i64, |n, b| n * 256 + i64::from(b));
    guid(n)
}

/// The standard sales process's stages (`stepname`), probabilities in
/// percent; won and lost are the opportunity's state, not stages.
pub(crate) fn pipelines() -> Vec<Pipeline> {
    vec![Pipeline {
        id: PIPELINE_ID.into(),
        name: "Opportunities",
        stages: vec![
            stage("1-Qualify", "1-Qualify", 1, 10.0),
            stage("2-Develop", "2-Develop", 2, 30.0),
            stage("3-Propose", "3-Propose", 3, 60.0),
            stage("4-Close", "4-Close", 4, 80.0),
        ],
        won_stage: None,
        lost_stage: None,
    }]
}

const CONTRACTS: &str = "http://schemas.microsoft.com/xrm/2011/Contracts";

fn typed(kind: &str, value: Value) -> Value {
    json!({"__type": format!("{kind}:{CONTRACTS}"), "Value": value})
}

fn reference(logical_name: &str, id: &str, name: &str) -> Value {
    json!({"__type": format!("EntityReference:{CONTRACTS}"), "Id": id, "KeyAttributes": [],
        "LogicalName": logical_name, "Name": name, "RowVersion": null})
}

/// A WCF date: milliseconds since the epoch.
fn date(seconds: i64) -> Value {
    json!(format!("/Date({})/", seconds * 1_000))
}

fn entity(logical_name: &str, id: &str, attributes: Vec<(&str, Value)>) -> Value {
    json!({
        "__type": format!("Entity:{CONTRACTS}"),
        "Attributes": attributes.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        "EntityState": null,
        "FormattedValues": [],
        "Id": id,
        "KeyAttributes": [],
        "LogicalName": logical_name,
        "RelatedEntities": [],
        "RowVersion": null,
    })
}

/// What one context says: message, entity, record id, target, post image
/// and the other input parameters.
struct Operation {
    message: &'static str,
    entity: &'static str,
    id: String,
    target: Value,
    image: Option<Value>,
    parameters: Vec<(&'static str, Value)>,
    /// An update that neither moves the stage nor closes the opportunity:
    /// some of these arrive stripped for size.
    strippable: bool,
}

impl Operation {
    /// A `Create` or `Update` of `entity` whose target holds `set`.
    fn write(
        message: &'static str,
        entity: &'static str,
        id: String,
        set: Vec<(&str, Value)>,
        image: Option<Value>,
    ) -> Self {
        Operation {
            message,
            entity,
            target: self::entity(entity, &id, set),
            id,
            image,
            parameters: Vec::new(),
            strippable: false,
        }
    }

    /// A `Delete`: its target the record's reference.
    fn delete(entity: &'static str, id: String) -> Self {
        Operation {
            message: "Delete",
            entity,
            target: reference(entity, &id, ""),
            id,
            image: None,
            parameters: Vec::new(),
            strippable: false,
        }
    }
}

impl World {
    /// What the fake Web API holds for the world's organizations: every
    /// currency their opportunities are in, and their tokens. `None`
    /// without Dynamics organizations.
    pub fn dynamics_state(&self) -> Option<DataverseState> {
        let orgs: Vec<(&Tenant, &DynamicsAccount)> = self
            .tenants
            .iter()
            .filter_map(|t| match &t.crm {
                CrmAccount::Dynamics(account) => Some((t, account)),
                _ => None,
            })
            .collect();
        if orgs.is_empty() {
            return None;
        }
        let mut state = DataverseState::default();
        for (tenant, account) in orgs {
            state.tokens.insert(account.access_token.clone());
            let currencies = tenant
                .deals
                .iter()
                .map(|d| d.currency)
                .chain([tenant.home_currency]);
            for code in currencies {
                let id = currency_id(code);
                state.put(
                    "transactioncurrencies",
                    &id,
                    json!({"transactioncurrencyid": id, "isocurrencycode": code,
                        "currencyname": code, "currencysymbol": code, "exchangerate": 1.0}),
                );
            }
        }
        Some(state)
    }

    /// Brings the fake Web API's opportunities up to date with `change`: an
    /// opportunity as the Web API reads it (lookups as `_<name>_value`),
    /// gone once deleted.
    pub fn apply_to_dataverse(&self, dataverse: &mut DataverseState, change: &Change) {
        let Subject::Deal { deal, after, .. } = &change.subject else {
            return;
        };
        let tenant = &self.tenants[change.tenant];
        let deal = &tenant.deals[*deal];
        let id = guid(deal.id);
        let Some(state) = after else {
            dataverse.records.remove(&("opportunities".to_owned(), id));
            return;
        };
        let stage = &tenant.pipelines[state.pipeline].stages[state.stage];
        let (statecode, _) = status_codes(state.status);
        dataverse.put(
            "opportunities",
            &id,
            json!({
                "opportunityid": id,
                "name": state.title,
                "estimatedvalue": state.value,
                "statecode": statecode,
                "stepname": stage.id,
                "salesstagecode": stage.order - 1,
                "modifiedon": crate::enriched::iso(state.update_time),
                "_transactioncurrencyid_value": currency_id(deal.currency),
                "_transactioncurrencyid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "transactioncurrency",
            }),
        );
    }

    /// An opportunity's every attribute in `state` (a post image, or a
    /// create's target).
    fn opportunity_attributes(
        tenant: &Tenant,
        deal: &Deal,
        state: &DealState,
    ) -> Vec<(&'static str, Value)> {
        let pipeline = &tenant.pipelines[state.pipeline];
        let stage = &pipeline.stages[state.stage];
        let org = &tenant.organizations[deal.org];
        let person = &tenant.persons[deal.person];
        let (statecode, statuscode) = status_codes(state.status);
        let closed = state.won_time.or(state.lost_time);
        vec![
            ("opportunityid", json!(guid(deal.id))),
            ("name", json!(state.title)),
            ("estimatedvalue", typed("Money", json!(state.value))),
            (
                "transactioncurrencyid",
                reference(
                    "transactioncurrency",
                    &currency_id(deal.currency),
                    deal.currency,
                ),
            ),
            ("statecode", typed("OptionSetValue", json!(statecode))),
            ("statuscode", typed("OptionSetValue", json!(statuscode))),
            ("stepname", json!(stage.id)),
            (
                "salesstagecode",
                typed("OptionSetValue", json!(stage.order - 1)),
            ),
            ("closeprobability", json!(stage.probability)),
            (
                "estimatedclosedate",
                date(
                    deal.expected_close
                        .and_hms_opt(0, 0, 0)
                        .expect("midnight")
                        .and_utc()
                        .timestamp(),
                ),
            ),
            ("actualclosedate", closed.map_or(Value::Null, date)),
            (
                "parentaccountid",
                reference("account", &guid(org.id), &org.last.name),
            ),
            (
                "customerid",
                reference("account", &guid(org.id), &org.last.name),
            ),
            (
                "parentcontactid",
                reference(
                    "contact",
                    &guid(person.id),
                    &format!("{} {}", person.first_name, person.last_name),
                ),
            ),
            (
                "ownerid",
                reference("systemuser", &guid(deal.owner.0), deal.owner.1),
            ),
            ("createdon", date(deal.add_time)),
            ("modifiedon", date(state.update_time)),
        ]
    }

    /// The context of a Dynamics change, as its step posts it.
    fn dynamics_operation(&self, change: &Change) -> Option<Operation> {
        let tenant = &self.tenants[change.tenant];
        let at = change.at();
        let rep = |rep: Rep| reference("systemuser", &guid(rep.0), rep.1);
        Some(match &change.subject {
            Subject::Deal {
                deal,
                before,
                after,
                ..
            } => {
                let deal = &tenant.deals[*deal];
                let id = guid(deal.id);
                let Some(after) = after else {
                    return Some(Operation::delete("opportunity", id));
                };
                let all = World::opportunity_attributes(tenant, deal, after);
                let image = entity("opportunity", &id, all.clone());
                let Some(before) = before else {
                    return Some(Operation::write(
                        "Create",
                        "opportunity",
                        id,
                        all,
                        Some(image),
                    ));
                };
                let closed = match (before.status, after.status) {
                    ("open", "won") => Some(("Win", 3, after.won_time)),
                    ("open", "lost") => Some(("Lose", 5, after.lost_time)),
                    _ => None,
                };
                if let Some((message, status, on)) = closed {
                    let close = entity(
                        "opportunityclose",
                        "00000000-0000-0000-0000-000000000000",
                        vec![
                            ("opportunityid", reference("opportunity", &id, &after.title)),
                            ("subject", json!(format!("{message}: {}", after.title))),
                            ("actualend", date(on.expect("a close has its date"))),
                            ("actualrevenue", typed("Money", json!(after.value))),
                        ],
                    );
                    return Some(Operation {
                        message,
                        entity: "opportunity",
                        id,
                        target: Value::Null,
                        image: None,
                        parameters: vec![
                            ("OpportunityClose", close),
                            ("Status", typed("OptionSetValue", json!(status))),
                        ],
                        strippable: false,
                    });
                }
                // An update's target: what it set, and the system's own.
                let set: Vec<&str> = [
                    (before.stage != after.stage || before.pipeline != after.pipeline)
                        .then_some(["stepname", "salesstagecode", "closeprobability"].as_slice()),
                    (before.value != after.value).then_some(["estimatedvalue"].as_slice()),
                    (before.title != after.title).then_some(["name"].as_slice()),
                    (before.status != after.status)
                        .then_some(["statecode", "statuscode", "actualclosedate"].as_slice()),
                ]
                .into_iter()
                .flatten()
                .flatten()
                .copied()
                .chain(["opportunityid", "modifiedon"])
                .collect();
                let target = all
                    .iter()
                    .filter(|(name, _)| set.contains(name))
                    .cloned()
                    .collect();
                Operation {
                    strippable: (before.stage, before.pipeline, before.status)
                        == (after.stage, after.pipeline, after.status),
                    ..Operation::write("Update", "opportunity", id, target, Some(image))
                }
            }
            Subject::Organization {
                organization,
                before,
                after,
            } => {
                let org = &tenant.organizations[*organization];
                let id = guid(org.id);
                let Some(after) = after else {
                    return Some(Operation::delete("account", id));
                };
                let mut set = vec![("accountid", json!(id))];
                if before.as_ref().is_none_or(|b| b.name != after.name) {
                    set.push(("name", json!(after.name)));
                }
                if before.as_ref().is_none_or(|b| b.address != after.address) {
                    set.push(("address1_line1", json!(after.address)));
                }
                if before.as_ref().is_none_or(|b| b.industry != after.industry) {
                    set.push((
                        "industrycode",
                        typed("OptionSetValue", json!(after.industry)),
                    ));
                }
                if before.is_none() {
                    set.push(("ownerid", rep(org.owner)));
                    set.push(("createdon", date(org.add_time)));
                }
                set.push(("modifiedon", date(at)));
                let message = if before.is_none() { "Create" } else { "Update" };
                Operation::write(message, "account", id, set, None)
            }
            Subject::Person {
                person,
                before,
                after,
            } => {
                let person = &tenant.persons[*person];
                let id = guid(person.id);
                let Some(after) = after else {
                    return Some(Operation::delete("contact", id));
                };
                let mut set = vec![("contactid", json!(id))];
                if before
                    .as_ref()
                    .is_none_or(|b| b.job_title != after.job_title)
                {
                    set.push(("jobtitle", json!(after.job_title)));
                }
                if before.as_ref().is_none_or(|b| b.phone != after.phone) {
                    set.push(("telephone1", json!(after.phone)));
                }
                if before.is_none() {
                    let org = &tenant.organizations[person.org];
                    set.push(("firstname", json!(person.first_name)));
                    set.push(("lastname", json!(person.last_name)));
                    set.push(("emailaddress1", json!(person.email)));
                    set.push((
                        "parentcustomerid",
                        reference("account", &guid(org.id), &org.last.name),
                    ));
                    set.push(("ownerid", rep(person.owner)));
                    set.push(("createdon", date(person.add_time)));
                }
                set.push(("modifiedon", date(at)));
                let message = if before.is_none() { "Create" } else { "Update" };
                Operation::write(message, "contact", id, set, None)
            }
            // Dynamics organizations of the world have no activities.
            Subject::Activity { .. } => return None,
        })
    }

    /// The body of the context of `change` (the `index`th) in `account`.
    fn dynamics_body(
        &self,
        account: &DynamicsAccount,
        index: usize,
        change: &Change,
    ) -> Option<Vec<u8>> {
        let operation = self.dynamics_operation(change)?;
        let user = guid(change.user);
        let mut parameters = Vec::new();
        if !operation.target.is_null() {
            parameters.push(json!({"key": "Target", "value": operation.target}));
        }
        parameters.extend(
            operation
                .parameters
                .into_iter()
                .map(|(key, value)| json!({"key": key, "value": value})),
        );
        let mut images = operation.image.map_or(
            json!([]),
            |image| json!([{"key": "PostImage", "value": image}]),
        );
        // Dataverse strips a context over 256 KB of its images and
        // parameters (`x-ms-dynamics-msg-size-exceeded`): here one in five
        // of the updates that neither move nor close an opportunity.
        if operation.strippable && index.is_multiple_of(5) {
            parameters.clear();
            images = json!([]);
        }
        // Each operation's own ids: distinct per change, the same on a retry.
        let operation_id = |what: &str| {
            let name = format!("{}/{index}/{what}", account.organization_id);
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
        };
        let body = json!({
            "BusinessUnitId": guid(8_000_000),
            "CorrelationId": operation_id("correlation"),
            "Depth": 1,
            "InitiatingUserId": user,
            "InputParameters": parameters,
            "IsExecutingOffline": false,
            "IsInTransaction": false,
            "IsOfflinePlayback": false,
            "IsolationMode": 1,
            "MessageName": operation.message,
            "Mode": 1,
            "OperationCreatedOn": format!("/Date({}+0000)/", change.at() * 1_000),
            "OperationId": operation_id("operation"),
            "OrganizationId": account.organization_id,
            "OrganizationName": account.organization_name,
            "OutputParameters": [],
            "OwningExtension": reference("sdkmessageprocessingstep", &guid(7_000_000), "Tributary webhook"),
            "ParentContext": null,
            "PostEntityImages": images,
            "PreEntityImages": [],
            "PrimaryEntityId": operation.id,
            "PrimaryEntityName": operation.entity,
            "RequestId": operation_id("request"),
            "SecondaryEntityName": "none",
            "SharedVariables": [],
            "Stage": 40,
            "UserId": user,
        });
        Some(serde_json::to_vec(&body).expect("JSON"))
    }

    /// Dataverse's contexts for its organizations' changes, in arrival
    /// order: each change once, some again (`duplicates` and `retries`: the
    /// asynchronous service sends the same context), some after the
    /// record's next change (`late`).
    pub(crate) fn dynamics_deliveries(&self, habits: &Habits) -> Vec<Delivery> {
        self.each_change_delivered(habits, 0xD7A5_0365, Version::Dynamics, |index, change| {
            match &self.tenants[change.tenant].crm {
                CrmAccount::Dynamics(account) => self.dynamics_body(account, index, change),
                _ => None,
            }
        })
    }

    /// `[tenants.<name>.dynamics]` of a Dynamics organization, its Web API
    /// at `api_url`.
    pub(crate) fn dynamics_config(
        tenant: &Tenant,
        account: &DynamicsAccount,
        api_url: &str,
    ) -> String {
        format!(
            r#"[tenants.{name}.dynamics]
organization_id = "{org}"
auth = "webhook_key"
secret = "{key}"
currency = "{currency}"
web_api_url = "{api_url}"
access_token = "{token}"
"#,
            name = tenant.name,
            org = account.organization_id,
            key = account.webhook_key,
            currency = tenant.home_currency,
            token = account.access_token,
        )
    }
}

#[cfg(test)]
mod tests;
