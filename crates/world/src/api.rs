//! What the fake Pipedrive API and email verifier answer: a Pipedrive account's
//! definitions (pipelines, stages, users, custom fields) from the start, and
//! its people, organizations and deals as they are at the time of each
//! lookup, because the sender applies each change before it delivers it.

use std::collections::HashMap;

use serde_json::{Value, json};
use tributary_fake_apis::{Account, HubSpotPortal, field_definition, shapes};

use crate::World;
use crate::enriched::iso;
use crate::model::*;

/// Where the tenants' APIs are and what they allow, for their configuration.
#[derive(Debug, Clone)]
pub struct Apis {
    /// The Pipedrive API (`api_base_url`) and its burst limit per 2 s.
    pub pipedrive_url: String,
    pub pipedrive_requests_per_2s: u32,
    /// The HubSpot CRM API (`api_base_url`) and its burst limit per 10 s.
    pub hubspot_url: String,
    pub hubspot_requests_per_10s: u32,
    /// How HubSpot reaches the collector (its webhooks' target URL is this
    /// plus `/webhooks/hubspot`; the signature covers the full URL).
    pub public_url: String,
    /// The Zoho CRM API (`api_domain`), for orgs' stage definitions.
    pub zoho_url: String,
    /// The Dataverse Web API (`web_api_url`), for organizations' currencies.
    pub dynamics_url: String,
    /// The Salesforce REST API (`instance_url`) and Pub/Sub API
    /// (`pubsub_url`).
    pub salesforce_url: String,
    pub pubsub_url: String,
}

/// The account as the API shows it before any change: definitions only.
pub fn definitions(tenant: &Tenant) -> Account {
    let mut account = Account::default();
    for (id, name) in &tenant.reps {
        account.users.insert(*id, shapes::user(*id, name));
    }
    for pipeline in &tenant.pipelines {
        let pipeline_id = pipeline.numeric_id();
        account
            .pipelines
            .insert(pipeline_id, shapes::pipeline(pipeline_id, pipeline.name));
        for stage in &pipeline.stages {
            account.stages.insert(
                stage.numeric_id(),
                shapes::stage(
                    stage.numeric_id(),
                    pipeline_id,
                    stage.order,
                    stage.name,
                    stage.probability as i64,
                ),
            );
        }
    }
    account.deal_fields = vec![
        field_definition("title", "Title", "varchar", &[]),
        field_definition(
            "channel",
            "Source channel",
            "enum",
            &[(5, "Paid search"), (6, "Events")],
        ),
        field_definition(SOURCE_FIELD, "Marketing source", "enum", &MARKETING_SOURCES),
        field_definition(CAMPAIGN_FIELD, "Campaign", "varchar", &[]),
    ];
    account.person_fields = vec![field_definition("name", "Name", "varchar", &[])];
    account.organization_fields = vec![
        field_definition("name", "Name", "varchar", &[]),
        field_definition(SIZE_FIELD, "Company size", "enum", &COMPANY_SIZES),
        field_definition(INDUSTRY_FIELD, "Industry", "enum", &INDUSTRIES),
    ];
    account
}

impl World {
    /// Every Pipedrive account by API token, before any change.
    pub fn accounts(&self) -> HashMap<String, Account> {
        self.tenants
            .iter()
            .filter_map(|t| Some((t.pipedrive()?.api_token.clone(), definitions(t))))
            .collect()
    }

    /// Brings `account` (the API of the change's tenant) up to date with a change.
    pub fn apply(&self, account: &mut Account, change: &Change) {
        let tenant = &self.tenants[change.tenant];
        let at = change.at();
        match &change.subject {
            Subject::Person { person, after, .. } => {
                let person = &tenant.persons[*person];
                match after {
                    Some(state) => {
                        let mut value = shapes::person(&shapes::PersonShape {
                            id: person.id,
                            first_name: person.first_name,
                            last_name: person.last_name,
                            email: Some(&person.email),
                            phone: state.phone.as_deref(),
                            job_title: state.job_title.as_deref(),
                            org_id: Some(tenant.organizations[person.org].id),
                            owner_id: person.owner.0,
                        });
                        value["add_time"] = json!(iso(person.add_time));
                        value["update_time"] = json!(iso(at));
                        account.persons.insert(person.id, value);
                    }
                    None => {
                        account.persons.remove(&person.id);
                    }
                }
            }
            Subject::Organization {
                organization,
                after,
                ..
            } => {
                let org = &tenant.organizations[*organization];
                match after {
                    Some(state) => {
                        let mut value = shapes::organization(
                            org.id,
                            &state.name,
                            org.owner.0,
                            json!({SIZE_FIELD: state.size, INDUSTRY_FIELD: state.industry}),
                        );
                        value["address"] = json!({"value": state.address});
                        value["update_time"] = json!(iso(at));
                        account.organizations.insert(org.id, value);
                    }
                    None => {
                        account.organizations.remove(&org.id);
                    }
                }
            }
            Subject::Deal { deal, after, .. } => {
                let deal = &tenant.deals[*deal];
                match after {
                    Some(state) => {
                        let pipeline = &tenant.pipelines[state.pipeline];
                        let mut value = shapes::deal(&shapes::DealShape {
                            id: deal.id,
                            person_id: Some(tenant.persons[deal.person].id),
                            org_id: Some(tenant.organizations[deal.org].id),
                            stage_id: pipeline.stages[state.stage].numeric_id(),
                            pipeline_id: pipeline.numeric_id(),
                            value: state.value,
                            currency: deal.currency,
                            status: state.status,
                            update_time: &iso(state.update_time),
                        });
                        value["title"] = json!(state.title);
                        value["owner_id"] = json!(deal.owner.0);
                        account.deals.insert(deal.id, value);
                    }
                    None => {
                        account.deals.remove(&deal.id);
                    }
                }
            }
            Subject::Activity { .. } => {}
        }
    }

    /// Brings the fake APIs up to date with a change: the Pipedrive account
    /// or HubSpot portal of its tenant, found in `pipedrive` (by API token)
    /// or `hubspot` (by access token), or the Dataverse organization's or
    /// Salesforce org's records in `dataverse` or `salesforce`.
    pub fn apply_to_fakes(
        &self,
        pipedrive: &mut HashMap<String, Account>,
        hubspot: &mut HashMap<String, HubSpotPortal>,
        dataverse: Option<&mut tributary_fake_apis::dynamics::DataverseState>,
        salesforce: Option<&mut tributary_fake_apis::SalesforceState>,
        change: &Change,
    ) {
        match &self.tenants[change.tenant].crm {
            CrmAccount::Pipedrive(account) => {
                if let Some(fake) = pipedrive.get_mut(&account.api_token) {
                    self.apply(fake, change);
                }
            }
            CrmAccount::HubSpot(account) => {
                if let Some(portal) = hubspot.get_mut(&account.access_token) {
                    self.apply_to_portal(portal, change);
                }
            }
            CrmAccount::Dynamics(_) => {
                if let Some(dataverse) = dataverse {
                    self.apply_to_dataverse(dataverse, change);
                }
            }
            CrmAccount::Salesforce(_) => {
                if let Some(salesforce) = salesforce {
                    self.apply_to_salesforce(salesforce, change);
                }
            }
            // Zoho's notifications carry their values: its API is not read
            // for records.
            CrmAccount::Zoho(_) => {}
        }
    }

    /// The verifier's verdict (`data` of its answer) for every person's email.
    pub fn email_verdicts(&self) -> HashMap<String, Value> {
        let mut verdicts = HashMap::new();
        for tenant in &self.tenants {
            for person in &tenant.persons {
                let domain = person.email.split('@').nth(1).unwrap_or_default();
                let pages: Vec<(String, String)> = match person.email_class {
                    EmailClass::Valid { sources } => (1..=sources)
                        .map(|n| (domain.to_owned(), format!("https://{domain}/team/{n}")))
                        .collect(),
                    _ => Vec::new(),
                };
                let pages: Vec<(&str, &str)> = pages
                    .iter()
                    .map(|(d, u)| (d.as_str(), u.as_str()))
                    .collect();
                let (status, result) = match person.email_class {
                    EmailClass::Valid { .. } => ("valid", "deliverable"),
                    EmailClass::Invalid => ("invalid", "undeliverable"),
                    EmailClass::Disposable => ("disposable", "risky"),
                    EmailClass::Webmail => ("webmail", "deliverable"),
                    EmailClass::AcceptAll => ("accept_all", "risky"),
                };
                let mut verdict = shapes::email_verdict(&person.email, status, result, &pages);
                if person.email_class == EmailClass::AcceptAll {
                    verdict["accept_all"] = json!(true);
                }
                verdicts.insert(person.email.clone(), verdict);
            }
        }
        verdicts
    }

    /// The `[tenants.<name>.<platform>]` configuration of a tenant, its API
    /// reached as `apis` says.
    pub fn tenant_config(&self, tenant: usize, apis: &Apis) -> String {
        let tenant = &self.tenants[tenant];
        match &tenant.crm {
            CrmAccount::Pipedrive(account) => format!(
                r#"[tenants.{name}.pipedrive]
username = "{user}"
password = "{password}"
api_base_url = "{api_base_url}"
api_token = "{token}"
requests_per_2s = {requests_per_2s}
marketing_source_field = "{SOURCE_FIELD}"
marketing_campaign_field = "{CAMPAIGN_FIELD}"
company_size_field = "{SIZE_FIELD}"
industry_field = "{INDUSTRY_FIELD}"
verify_emails = true
"#,
                name = tenant.name,
                user = account.webhook_user,
                password = account.webhook_password,
                token = account.api_token,
                api_base_url = apis.pipedrive_url,
                requests_per_2s = apis.pipedrive_requests_per_2s,
            ),
            CrmAccount::HubSpot(account) => format!(
                r#"[tenants.{name}.hubspot]
portal_id = "{portal}"
client_secret = "{secret}"
access_token = "{token}"
api_base_url = "{api_base_url}"
requests_per_10s = {requests_per_10s}
public_url = "{public_url}"
marketing_source_property = "{property}"
"#,
                name = tenant.name,
                portal = account.portal_id,
                secret = account.client_secret,
                token = account.access_token,
                api_base_url = apis.hubspot_url,
                requests_per_10s = apis.hubspot_requests_per_10s,
                public_url = apis.public_url,
                property = account.marketing_source_property,
            ),
            CrmAccount::Zoho(account) => World::zoho_config(tenant, account, &apis.zoho_url),
            CrmAccount::Dynamics(account) => {
                World::dynamics_config(tenant, account, &apis.dynamics_url)
            }
            CrmAccount::Salesforce(account) => World::salesforce_config(tenant, account, apis),
        }
    }
}
