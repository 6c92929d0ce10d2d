//! API calls per 1,000 events for the CRMs whose enrichment reads their
//! API: Salesforce (Outbound Messages with the REST API, and Change Data
//! Capture's change events, decoded as the collector's subscription
//! decodes them), Dynamics 365
//! (contexts, one in 20 stripped for size), Zoho (channels with and without
//! `return_affected_field_values`) and Freshsales (workflow webhooks, every
//! record read).
//!
//! Each platform's deliveries are split by its own webhook source and each
//! event enriched by its own enricher, in process, against its fake API
//! (`tributary-fake-apis`), which counts the calls. The events: `--events`
//! changes of `--deals` deals owned by 5 owners in 20 accounts, in time
//! order. The request budgets are raised so the figures are the calls
//! themselves, not the pacing; events/s is in process, against local fakes.
//! No broker or ClickHouse is needed. Run with
//! `cargo run --release -p tributary-benches --bin crm-api-calls`.

use std::collections::HashSet;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use serde_json::{Value, json};
use tributary_enrichment::EnrichmentSettings;
use tributary_fake_apis::dynamics::{DataverseState, FakeDataverse};
use tributary_fake_apis::freshsales::{FakeFreshsales, FreshsalesState};
use tributary_fake_apis::zoho::{FakeZoho, ZohoState};
use tributary_fake_apis::{FakeSalesforce, Running, SalesforceState};
use tributary_sources::{EnricherContext, WebhookRequest};

#[derive(Parser)]
#[command(about = "Count the API calls each CRM's enrichment makes per 1,000 events")]
struct Args {
    /// Events (changes) per run.
    #[arg(long, default_value_t = 1_000)]
    events: usize,
    /// Deals the changes are spread over.
    #[arg(long, default_value_t = 200)]
    deals: usize,
}

const OWNERS: usize = 5;
const ACCOUNTS: usize = 20;
const TENANT: &str = "bench";

/// Enriches each delivery's events as the collector and the enricher would.
async fn enrich_all(
    platform: &str,
    section: &Value,
    query: &str,
    deliveries: &[(Vec<(&'static str, String)>, String)],
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let platform = tributary_sources::platform(platform).expect("registered");
    let source = (platform.webhook)(vec![(TENANT, section)])?;
    let settings = EnrichmentSettings::default();
    let enricher = (platform.enricher)(&EnricherContext {
        tenants: vec![(TENANT, section)],
        settings: &settings,
        http: reqwest::Client::new(),
        email: None,
    })?;
    let uri: http::Uri = format!("/webhooks/{}/{TENANT}{query}", platform.name).parse()?;
    let mut raws = Vec::new();
    for (headers, body) in deliveries {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse()?);
        }
        let body = Bytes::from(body.clone());
        let request = WebhookRequest {
            method: &http::Method::POST,
            uri: &uri,
            headers: &map,
            body: &body,
        };
        source
            .authenticate(TENANT, &request)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let delivery = source
            .split(TENANT, &request)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        // The collector's verdicts travel with the event (Dynamics'
        // size-exceeded warning makes the enricher read the record).
        raws.extend(
            delivery
                .events
                .into_iter()
                .map(|event| event.keys.raw_event(TENANT, platform.name, 1, event.body)),
        );
    }
    enrich_raws(platform.name, enricher.as_ref(), &raws, started).await
}

/// Enriches raw events one by one, counting those left partial.
async fn enrich_raws(
    platform: &str,
    enricher: &dyn tributary_sources::SourceEnricher,
    raws: &[tributary_envelope::RawEvent],
    started: Instant,
) -> anyhow::Result<Run> {
    let (mut events, mut partial) = (0, 0);
    for raw in raws {
        let enriched = enricher
            .enrich(raw)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        events += 1;
        if !enriched.complete && partial == 0 {
            eprintln!(
                "{platform}: the first partial event misses {:?}",
                enriched.missing
            );
        }
        partial += usize::from(!enriched.complete);
    }
    Ok(Run {
        events,
        partial,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The `n`-th change: its deal, owner, account and stage.
fn change(n: usize, deals: usize) -> (usize, usize, usize, usize) {
    let deal = (n * 7919) % deals;
    (deal, deal % OWNERS, deal % ACCOUNTS, n % 4)
}

/// What one run enriched, and how long it took.
struct Run {
    events: usize,
    partial: usize,
    seconds: f64,
}

impl Run {
    /// The run's row, with the `calls` its fake API counted.
    fn row(&self, platform: &str, how: &str, calls: usize) {
        println!(
            "| {platform} | {how} | {} | {} | {calls} | {:.1} | {:.0} |",
            self.events,
            self.partial,
            1000.0 * calls as f64 / self.events.max(1) as f64,
            self.events as f64 / self.seconds.max(1e-9)
        );
    }
}

async fn salesforce(args: &Args) -> anyhow::Result<()> {
    for every_field in [true, false] {
        salesforce_run(args, every_field).await?;
    }
    salesforce_change_events(args).await
}

const SALESFORCE_ORG: &str = "00D5g000004ABCDEA4";
const SALESFORCE_TOKEN: &str = "bench-session";

/// An org with the stages, owners, accounts and opportunities the runs
/// name.
fn salesforce_org(args: &Args) -> SalesforceState {
    const TOKEN: &str = SALESFORCE_TOKEN;
    let mut state = SalesforceState::default();
    let org = state.org(TOKEN);
    for (order, (name, probability, won, closed)) in [
        ("Prospecting", 10.0, false, false),
        ("Qualification", 20.0, false, false),
        ("Negotiation", 80.0, false, false),
        ("Closed Won", 100.0, true, true),
    ]
    .into_iter()
    .enumerate()
    {
        org.put_stage(name, order as i64 + 1, probability, won, closed);
    }
    for owner in 0..OWNERS {
        org.put(
            "User",
            json!({"Id": format!("0055g00000OwN{owner:03}AA"), "Name": format!("Rep {owner}"), "IsActive": true}),
        );
    }
    for account in 0..ACCOUNTS {
        org.put(
            "Account",
            json!({"Id": format!("0015g00000Acc{account:03}AA"), "Name": format!("Account {account}"), "Website": "https://example.com", "Industry": "Retail", "NumberOfEmployees": 50, "OwnerId": "0055g00000OwN000AA", "LastModifiedDate": "2025-03-01T10:00:00.000+0000"}),
        );
    }
    for deal in 0..args.deals {
        org.put(
            "Opportunity",
            json!({
                "Id": format!("0065g0000{deal:06}AAV"), "Name": format!("Deal {deal}"), "Amount": 1000,
                "StageName": "Negotiation", "IsWon": false, "IsClosed": false, "IsDeleted": false,
                "Probability": 80, "CloseDate": "2025-06-30", "CreatedDate": "2025-03-01T10:00:00.000+0000",
                "LastStageChangeDate": "2025-03-03T09:00:00.000+0000",
                "LastModifiedDate": "2025-03-04T15:00:00.000+0000", "SystemModstamp": "2025-03-04T15:00:00.000+0000",
                "OwnerId": format!("0055g00000OwN{:03}AA", deal % OWNERS),
                "AccountId": format!("0015g00000Acc{:03}AA", deal % ACCOUNTS), "LeadSource": "Web"
            }),
        );
    }
    state
}

fn salesforce_section(api: &Running<SalesforceState>) -> Value {
    json!({
        "organization_id": SALESFORCE_ORG, "endpoint_secret": "bench-secret", "currency": "USD",
        "instance_url": api.base_url(), "access_token": SALESFORCE_TOKEN, "requests_per_10s": 100_000,
    })
}

/// Outbound Messages selecting every field the mapping reads, or only the
/// stage (the enricher then reads the opportunity).
async fn salesforce_run(args: &Args, every_field: bool) -> anyhow::Result<()> {
    const ORG: &str = SALESFORCE_ORG;
    let api = FakeSalesforce::start(salesforce_org(args)).await?;
    let section = salesforce_section(&api);
    let stages = ["Prospecting", "Qualification", "Negotiation", "Closed Won"];
    let deliveries: Vec<_> = (0..args.events)
        .map(|n| {
            let (deal, owner, account, stage) = change(n, args.deals);
            let modified = format!("2025-03-04T14:{:02}:{:02}.000Z", (n / 60) % 60, n % 60);
            let fields = if every_field {
                format!(
                    "<sf:AccountId>0015g00000Acc{account:03}AA</sf:AccountId><sf:Amount>1000</sf:Amount><sf:CloseDate>2025-06-30</sf:CloseDate><sf:CreatedDate>2025-03-01T10:00:00.000Z</sf:CreatedDate><sf:IsClosed>{closed}</sf:IsClosed><sf:IsDeleted>false</sf:IsDeleted><sf:IsWon>{closed}</sf:IsWon><sf:LastModifiedDate>{modified}</sf:LastModifiedDate><sf:LeadSource>Web</sf:LeadSource><sf:Name>Deal {deal}</sf:Name><sf:OwnerId>0055g00000OwN{owner:03}AA</sf:OwnerId><sf:Probability>50</sf:Probability><sf:StageName>{}</sf:StageName><sf:SystemModstamp>{modified}</sf:SystemModstamp>",
                    stages[stage],
                    closed = stage == 3,
                )
            } else {
                format!(
                    "<sf:LastModifiedDate>{modified}</sf:LastModifiedDate><sf:StageName>{}</sf:StageName>",
                    stages[stage]
                )
            };
            let body = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{ORG}</OrganizationId><ActionId>04k5g000000XyZaAAK</ActionId><SessionId xsi:nil="true"/><EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5g000004ABCD</EnterpriseUrl><PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5g000004ABCD</PartnerUrl><Notification><Id>04l5g{n:013}</Id><sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>0065g0000{deal:06}AAV</sf:Id>{fields}</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"#
            );
            (vec![("content-type", "text/xml".to_owned())], body)
        })
        .collect();
    let run = enrich_all("salesforce", &section, "?secret=bench-secret", &deliveries).await?;
    let how = if every_field {
        "Outbound Messages selecting every field the mapping reads"
    } else {
        "Outbound Messages selecting only the stage (each opportunity read)"
    };
    run.row("Salesforce", how, api.state().calls.len());
    Ok(())
}

/// Change events as Change Data Capture sends them: every 10th a creation
/// (every field, its account read), every 20th a gap (its record read),
/// the rest stage changes with what changed only (a close without its
/// unchanged `CloseDate`, which is read).
async fn salesforce_change_events(args: &Args) -> anyhow::Result<()> {
    use apache_avro::types::Value as Avro;
    use tributary_fake_apis::salesforce_pubsub::{
        Change, OPPORTUNITY_CHANGE_EVENT_SCHEMA, OPPORTUNITY_SCHEMA_ID, encode,
    };
    use tributary_salesforce_pubsub::{ConsumerEvent, ProducerEvent};
    let started = Instant::now();
    let api = FakeSalesforce::start(salesforce_org(args)).await?;
    let section = salesforce_section(&api);
    let platform = tributary_sources::platform("salesforce").expect("registered");
    let settings = EnrichmentSettings::default();
    let enricher = (platform.enricher)(&EnricherContext {
        tenants: vec![(TENANT, &section)],
        settings: &settings,
        http: reqwest::Client::new(),
        email: None,
    })?;
    let schema = apache_avro::Schema::parse_str(OPPORTUNITY_CHANGE_EVENT_SCHEMA)?;
    let stages = ["Prospecting", "Qualification", "Negotiation", "Closed Won"];
    let text = |s: String| Some(Avro::String(s));
    let mut raws = Vec::new();
    for n in 0..args.events {
        let (deal, owner, account, stage) = change(n, args.deals);
        let at_ms = 1_741_096_800_000 + 60_000 * n as i64;
        let modified = ("LastModifiedDate", Some(Avro::Long(at_ms)));
        let (change_type, fields) = if n % 10 == 0 {
            let fields = vec![
                ("AccountId", text(format!("0015g00000Acc{account:03}AA"))),
                ("Name", text(format!("Deal {deal}"))),
                ("StageName", text(stages[0].into())),
                ("Amount", Some(Avro::Double(1000.0))),
                ("CloseDate", Some(Avro::Int(20_269))),
                ("IsClosed", Some(Avro::Boolean(false))),
                ("IsWon", Some(Avro::Boolean(false))),
                ("OwnerId", text(format!("0055g00000OwN{owner:03}AA"))),
                ("CreatedDate", Some(Avro::Long(at_ms))),
                modified,
            ];
            ("CREATE", fields)
        } else if n % 20 == 5 {
            ("GAP_UPDATE", Vec::new())
        } else {
            let mut fields = vec![("StageName", text(stages[stage].into())), modified];
            if stage == 3 {
                fields.push(("IsWon", Some(Avro::Boolean(true))));
                fields.push(("IsClosed", Some(Avro::Boolean(true))));
            }
            ("UPDATE", fields)
        };
        let payload = encode(
            &schema,
            &Change {
                change_type,
                record_ids: vec![format!("0065g0000{deal:06}AAV")],
                commit_timestamp_ms: at_ms,
                fields,
            },
        );
        let event = ConsumerEvent {
            event: Some(ProducerEvent {
                id: format!("e{n:06}"),
                schema_id: OPPORTUNITY_SCHEMA_ID.into(),
                payload,
                headers: Vec::new(),
            }),
            replay_id: (n as u64 + 1).to_be_bytes().to_vec(),
        };
        raws.extend(tributary_sources::salesforce::cdc::raw_events(
            TENANT,
            SALESFORCE_ORG,
            "/data/OpportunityChangeEvent",
            &event,
            Ok(&schema),
            1,
        ));
    }
    let run = enrich_raws("salesforce", enricher.as_ref(), &raws, started).await?;
    run.row(
        "Salesforce",
        "change events (1 in 10 a creation, 1 in 20 a gap, closes without CloseDate)",
        api.state().calls.len(),
    );
    Ok(())
}

/// Dataverse webhook contexts of opportunity updates naming their currency
/// (read once), every 20th stripped for size
/// (`x-ms-dynamics-msg-size-exceeded`, its record read) and every 10th a
/// `Win` (no image: the stage it closes in read).
async fn dynamics(args: &Args) -> anyhow::Result<()> {
    const ORG: &str = "9f2a1c34-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
    const TOKEN: &str = "bench-dataverse-token";
    let opportunity = |deal: usize| format!("3a5b7c9d-1e2f-4a6b-8c0d-{deal:012}");
    let mut state = DataverseState {
        tokens: HashSet::from([TOKEN.to_owned()]),
        ..DataverseState::default()
    };
    for deal in 0..args.deals {
        state.put(
            "opportunities",
            &opportunity(deal),
            json!({
                "opportunityid": opportunity(deal), "name": format!("Deal {deal}"), "estimatedvalue": 1000.0,
                "statecode": 0, "stepname": "2-Develop", "modifiedon": "2025-03-04T16:30:00Z",
            }),
        );
    }
    const EURO: &str = "2b7e1f0a-91c4-4c6e-8f6b-0d3c5a9e4e01";
    state.put(
        "transactioncurrencies",
        EURO,
        json!({"transactioncurrencyid": EURO, "isocurrencycode": "EUR"}),
    );
    let api = FakeDataverse::start(state).await?;
    let section = json!({
        "organization_id": ORG, "secret": "bench-key", "currency": "GBP",
        "web_api_url": api.base_url(), "access_token": TOKEN, "requests_per_5min": 1_000_000,
    });
    let deliveries: Vec<_> = (0..args.events)
        .map(|n| {
            let (deal, ..) = change(n, args.deals);
            let id = opportunity(deal);
            let modified = 1_741_000_000_000u64 + n as u64 * 1_000;
            let target = json!({
                "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
                "Attributes": [
                    {"key": "name", "value": format!("Deal {deal}")},
                    {"key": "estimatedvalue", "value": {"__type": "Money:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 1000.0}},
                    {"key": "statecode", "value": {"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 0}},
                    {"key": "stepname", "value": "2-Develop"},
                    {"key": "transactioncurrencyid", "value": {"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", "Id": EURO, "LogicalName": "transactioncurrency", "Name": "Euro"}},
                    {"key": "modifiedon", "value": format!("/Date({modified})/")}
                ],
                "Id": id, "LogicalName": "opportunity", "FormattedValues": [], "KeyAttributes": [], "RelatedEntities": []
            });
            let stripped = n % 20 == 19;
            let win = n % 10 == 4;
            let close = json!([
                {"key": "OpportunityClose", "value": {
                    "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts", "LogicalName": "opportunityclose",
                    "Id": "00000000-0000-0000-0000-000000000000",
                    "Attributes": [
                        {"key": "opportunityid", "value": {"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", "Id": id, "LogicalName": "opportunity", "Name": null}},
                        {"key": "actualend", "value": format!("/Date({modified})/")}
                    ]
                }},
                {"key": "Status", "value": {"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 3}}
            ]);
            let parameters = if stripped {
                json!([])
            } else if win {
                close
            } else {
                json!([{"key": "Target", "value": target}])
            };
            let context = json!({
                "CorrelationId": "39499111-e689-4be4-9d3a-7f5f0a5a8e2c", "Depth": 1,
                "InputParameters": parameters,
                "MessageName": if win { "Win" } else { "Update" }, "Mode": 1,
                "OperationCreatedOn": format!("/Date({modified}+0000)/"),
                "OperationId": format!("c8a1b2d3-e4f5-4a6b-9c7d-{n:012}"),
                "OrganizationId": ORG, "OrganizationName": "contoso", "OutputParameters": [],
                "PostEntityImages": [], "PreEntityImages": [], "PrimaryEntityId": id,
                "PrimaryEntityName": "opportunity", "RequestId": format!("2f3e4d5c-6b7a-4988-a7b6-{n:012}"),
                "SecondaryEntityName": "none", "Stage": 40, "UserId": "77dfe2c9-3c5e-4b55-a6d8-d43c1b2c6a51"
            });
            let mut headers = vec![("content-type", "application/json".to_owned())];
            if stripped {
                headers.push(("x-ms-dynamics-msg-size-exceeded", "true".to_owned()));
            }
            (headers, context.to_string())
        })
        .collect();
    let run = enrich_all("dynamics", &section, "?code=bench-key", &deliveries).await?;
    run.row(
        "Dynamics 365",
        "webhook contexts naming their currency, one in 20 stripped for size (its record read), one in 10 a Win (its stage read)",
        api.state().calls.len(),
    );
    Ok(())
}

async fn zoho(args: &Args) -> anyhow::Result<()> {
    const TOKEN: &str = "bench-zoho-token";
    for with_values in [true, false] {
        let mut state = ZohoState {
            tokens: HashSet::from([TOKEN.to_owned()]),
            stages: ["Qualification", "Negotiation/Review", "Proposal/Price Quote", "Closed Won"]
                .iter()
                .enumerate()
                .map(|(i, stage)| json!({"display_value": stage, "actual_value": stage, "sequence_number": i + 1, "forecast_type": if *stage == "Closed Won" { "Closed Won" } else { "Open" }}))
                .collect(),
            ..ZohoState::default()
        };
        for deal in 0..args.deals {
            state.put(
                "Deals",
                &format!("{}", 5_725_767_000_000_000_000u64 + deal as u64),
                json!({"Deal_Name": format!("Deal {deal}"), "Amount": 1000, "Stage": "Qualification",
                       "Owner": {"id": format!("{}", 5_725_767_000_000_411_000u64 + (deal % OWNERS) as u64), "name": format!("Rep {}", deal % OWNERS)},
                       "Modified_Time": "2024-06-11T20:30:00+05:30"}),
            );
        }
        let api = FakeZoho::start(state).await?;
        let section = json!({
            "org_id": "60012345678", "channel_ids": ["1000000068001"], "token": "bench-channel",
            "currency": "INR", "api_domain": api.base_url(), "access_token": TOKEN, "requests_per_minute": 1_000_000,
        });
        let stages = [
            "Qualification",
            "Negotiation/Review",
            "Proposal/Price Quote",
            "Closed Won",
        ];
        let deliveries: Vec<_> = (0..args.events)
            .map(|n| {
                let (deal, _, _, stage) = change(n, args.deals);
                let id = 5_725_767_000_000_000_000u64 + deal as u64;
                let values = if with_values {
                    format!(
                        r#","affected_fields":[{{"{id}":["Stage"]}}],"affected_values":[{{"record_id":"{id}","values":{{"Stage":"{}"}}}}]"#,
                        stages[stage]
                    )
                } else {
                    String::new()
                };
                let body = format!(
                    r#"{{"server_time":{},"module":"Deals","operation":"update","ids":["{id}"]{values},"channel_id":"1000000068001","token":"bench-channel","resource_uri":"https://www.zohoapis.com/crm/v8/Deals","query_params":{{}}}}"#,
                    1_718_000_000_000u64 + n as u64
                );
                (vec![("content-type", "application/json".to_owned())], body)
            })
            .collect();
        let run = enrich_all("zoho", &section, "", &deliveries).await?;
        let how = if with_values {
            "notifications with values (return_affected_field_values)"
        } else {
            "notifications of ids only (each record read)"
        };
        run.row("Zoho", how, api.state().calls.len());
    }
    Ok(())
}

async fn freshsales(args: &Args) -> anyhow::Result<()> {
    const KEY: &str = "bench-api-key";
    let mut state = FreshsalesState {
        api_keys: HashSet::from([KEY.to_owned()]),
        users: (0..OWNERS)
            .map(|o| json!({"id": 9000 + o, "display_name": format!("Rep {o}")}))
            .collect(),
        deal_stages: vec![
            json!({"id": 1, "name": "New", "position": 1, "forecast_type": "Open"}),
            json!({"id": 2, "name": "Won", "position": 2, "forecast_type": "Closed Won"}),
        ],
        deal_pipelines: vec![json!({"id": 77, "name": "Default Pipeline"})],
        currencies: vec![json!({"id": 1, "currency_code": "USD"})],
        requests_per_hour: u32::MAX,
        ..FreshsalesState::default()
    };
    for account in 0..ACCOUNTS {
        state.put(
            "sales_accounts",
            json!({"id": 5000 + account, "name": format!("Account {account}")}),
        );
    }
    for deal in 0..args.deals {
        state.put(
            "deals",
            json!({"id": 17_000_000_000u64 + deal as u64, "name": format!("Deal {deal}"), "amount": "1000.0",
                   "currency_id": 1, "deal_stage_id": 1 + (deal % 2), "deal_pipeline_id": 77,
                   "owner_id": 9000 + deal % OWNERS, "sales_account_id": 5000 + deal % ACCOUNTS,
                   "updated_at": "2026-11-02T10:00:00Z", "created_at": "2026-11-01T10:00:00Z"}),
        );
    }
    let api = FakeFreshsales::start(state).await?;
    let section = json!({
        "secret": "bench-workflow-secret", "api_url": format!("{}/crm/sales", api.base_url()),
        "api_key": KEY, "requests_per_hour": 1_000_000,
    });
    let deliveries: Vec<_> = (0..args.events)
        .map(|n| {
            let (deal, ..) = change(n, args.deals);
            (
                vec![
                    ("content-type", "application/json".to_owned()),
                    ("x-tributary-secret", "bench-workflow-secret".to_owned()),
                ],
                format!(
                    r#"{{"deal": {{"id": "{}"}}}}"#,
                    17_000_000_000u64 + deal as u64
                ),
            )
        })
        .collect();
    let run = enrich_all("freshsales", &section, "", &deliveries).await?;
    run.row(
        "Freshsales",
        "workflow bodies naming the deal (each record read)",
        api.state().calls.len(),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    eprintln!(
        "{} changes of {} deals ({OWNERS} owners, {ACCOUNTS} accounts) per run",
        args.events, args.deals
    );
    println!(
        "| platform | deliveries | events | partial | API calls | calls per 1,000 events | events/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    salesforce(&args).await?;
    dynamics(&args).await?;
    zoho(&args).await?;
    freshsales(&args).await?;
    Ok(())
}
