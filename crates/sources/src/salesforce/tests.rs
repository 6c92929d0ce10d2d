use bytes::Bytes;
use serde_json::json;

use super::outbound::{read_message, read_notification_bytes};
use super::*;
use crate::{AuthFailure, Refusal, WebhookRequest, WebhookSource};

const ORG: &str = "00D5g000004ABCDEA4";

/// An Outbound Message as Salesforce sends it for an Opportunity rule.
fn message(org: &str, notifications: &[(&str, &str, &str)]) -> String {
    let mut body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k5g000000XyZaAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5g000004ABCD</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5g000004ABCD</PartnerUrl>"#
    );
    for (notification, record, stage) in notifications {
        body.push_str(&format!(
            r#"
   <Notification>
    <Id>{notification}</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{record}</sf:Id>
     <sf:Amount>125000.5</sf:Amount>
     <sf:CloseDate>2025-06-30</sf:CloseDate>
     <sf:IsClosed>false</sf:IsClosed>
     <sf:IsWon>false</sf:IsWon>
     <sf:LastModifiedDate>2025-03-04T14:01:40.123Z</sf:LastModifiedDate>
     <sf:Name>Big &amp; Bold</sf:Name>
     <sf:NextStep xsi:nil="true"/>
     <sf:StageName>{stage}</sf:StageName>
    </sObject>
   </Notification>"#
        ));
    }
    body.push_str("\n  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n");
    body
}

fn source() -> Salesforce {
    let section = json!({"organization_id": "00D5g000004ABCD", "endpoint_secret": "s3cret"});
    Salesforce::from_sections(vec![("acme", &section)]).expect("valid settings")
}

fn request<'a>(
    uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
    body: &'a Bytes,
) -> WebhookRequest<'a> {
    WebhookRequest {
        method: &http::Method::POST,
        uri,
        headers,
        body,
    }
}

#[test]
fn fifteen_character_ids_get_their_check_characters() {
    assert_eq!(
        id_18("001A0000006Vm9r").as_deref(),
        Some("001A0000006Vm9rIAC")
    );
    assert_eq!(id_18("00D5g000004ABCD").as_deref(), Some(ORG));
    assert_eq!(id_18(ORG).as_deref(), Some(ORG));
    assert_eq!(id_18("001A0000006Vm9"), None);
    // The check characters only encode the case: the first 15 are the id.
    assert!(same_id("00D5g000004ABCD", "00D5g000004ABCDEAZ"));
    assert!(!same_id("00D5g000004ABCd", "00D5g000004ABCDEAZ"));
    assert!(!same_id("00D5g000004ABC", "00D5g000004ABC"));
    assert_eq!(id_18("001A0000006Vm9-"), None);
}

#[test]
fn settings_need_an_org_id_and_a_secret() {
    let settings =
        tenant_settings(&json!({"organization_id": "00D5g000004ABCD", "endpoint_secret": "x"}))
            .expect("valid");
    assert_eq!(settings.organization_id, ORG);
    let err =
        tenant_settings(&json!({"organization_id": "0015g000004ABCD", "endpoint_secret": "x"}))
            .expect_err("an account id");
    assert!(err.contains("00D"), "{err}");
    let err = tenant_settings(&json!({"organization_id": ORG, "endpoint_secret": ""}))
        .expect_err("empty secret");
    assert!(err.contains("endpoint_secret"), "{err}");
    let err = tenant_settings(&json!({"organization_id": ORG})).expect_err("no secret");
    assert!(err.contains("endpoint_secret"), "{err}");
    let shown = format!(
        "{:?}",
        tenant_settings(&json!({"organization_id": ORG, "endpoint_secret": "hunter2"}))
            .expect("valid")
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn rest_settings_come_in_pairs_with_a_version_and_a_share() {
    let with = |extra: Value| {
        let mut section = json!({"organization_id": ORG, "endpoint_secret": "x"});
        for (key, value) in extra.as_object().expect("object") {
            section[key] = value.clone();
        }
        tenant_settings(&section)
    };
    let settings = with(json!({
        "instance_url": "https://acme.my.salesforce.com", "access_token": "00D!tok",
        "api_version": "v61.0"
    }))
    .expect("valid");
    assert_eq!(settings.api_version, "61.0");
    assert_eq!(settings.api_allocation_share, 0.5);
    assert!(!format!("{settings:?}").contains("00D!tok"));
    let refused = [
        (
            json!({"instance_url": "https://acme.my.salesforce.com"}),
            "without access_token",
        ),
        (json!({"access_token": "t"}), "without instance_url"),
        (
            json!({"instance_url": "acme.my.salesforce.com", "access_token": "t"}),
            "instance_url must be an http(s) address",
        ),
        (json!({"api_version": "latest"}), "api_version \"latest\""),
        (json!({"api_allocation_share": 1.5}), "api_allocation_share"),
        (json!({"requests_per_10s": 0}), "requests_per_10s"),
        (
            json!({"pubsub_url": "https://api.pubsub.salesforce.com:7443"}),
            "pubsub_url needs instance_url",
        ),
    ];
    for (extra, expected) in refused {
        let err = with(extra.clone()).expect_err("refused");
        assert!(err.contains(expected), "{extra}: {err}");
    }
}

#[test]
fn a_message_is_read_with_its_notifications_fields_and_spans() {
    let body = message(
        ORG,
        &[
            ("04l5g000000AbCdAAA", "0065g00000AbCdEAAV", "Prospecting"),
            ("04l5g000000AbCeAAA", "0065g00000AbCdFAAV", "Closed Won"),
        ],
    );
    let message = read_message(body.as_bytes()).expect("a valid message");
    assert_eq!(message.organization_id.as_deref(), Some(ORG));
    assert_eq!(message.action_id.as_deref(), Some("04k5g000000XyZaAAK"));
    assert_eq!(message.notifications.len(), 2);
    let first = &message.notifications[0];
    assert_eq!(first.id.as_deref(), Some("04l5g000000AbCdAAA"));
    assert_eq!(first.object_type.as_deref(), Some("Opportunity"));
    assert_eq!(first.field("Name"), Some("Big & Bold"));
    assert_eq!(first.field("Amount"), Some("125000.5"));
    assert_eq!(first.field("NextStep"), None);
    assert!(first.has_field("NextStep"), "a nil field is still selected");
    assert!(!first.has_field("Probability"));
    let second = &message.notifications[1];
    assert_eq!(second.field("StageName"), Some("Closed Won"));
    // Each notification's bytes read alone give the same notification.
    for notification in &message.notifications {
        let bytes = &body.as_bytes()[notification.span.clone()];
        assert!(bytes.starts_with(b"<Notification>") && bytes.ends_with(b"</Notification>"));
        let alone = read_notification_bytes(bytes).expect("readable alone");
        assert_eq!(alone.fields, notification.fields);
        assert_eq!(alone.id, notification.id);
        assert_eq!(alone.object_type, notification.object_type);
    }
}

#[test]
fn what_is_not_an_outbound_message_says_why() {
    for (body, expected) in [
        (
            "<soapenv:Envelope><soapenv:Body><notifications>",
            "ends inside",
        ),
        ("{\"json\": true}", "text outside"),
        ("<html><body/></html>", "not a SOAP <Envelope>"),
        (
            "<soapenv:Envelope xmlns:soapenv=\"x\"><soapenv:Body><somethingElse/></soapenv:Body></soapenv:Envelope>",
            "not an Outbound Message",
        ),
        (
            "<soapenv:Envelope xmlns:soapenv=\"x\"><soapenv:Body><login><u>a</u></login></soapenv:Body></soapenv:Envelope>",
            "<login>",
        ),
        (
            "<Envelope><Body><notifications><OrganizationId>a<b/></OrganizationId></notifications></Body></Envelope>",
            "holds an element",
        ),
        ("", "no <notifications>"),
    ] {
        let err = read_message(body.as_bytes()).expect_err(body);
        assert!(err.contains(expected), "{body}: {err}");
    }
}

#[test]
fn each_notification_is_an_event_identified_by_org_and_notification() {
    let source = source();
    let body = Bytes::from(message(
        ORG,
        &[
            ("04l5g000000AbCdAAA", "0065g00000AbCdEAAV", "Prospecting"),
            ("04l5g000000AbCeAAA", "0065g00000AbCdFAAV", "Closed Won"),
        ],
    ));
    let uri: http::Uri = "/webhooks/salesforce/acme?secret=s3cret".parse().unwrap();
    let headers = http::HeaderMap::new();
    let delivery = source
        .split("acme", &request(&uri, &headers, &body))
        .expect("accepted");
    assert!(delivery.rejected.is_empty());
    assert_eq!(delivery.events.len(), 2);
    let first = &delivery.events[0];
    assert_eq!(first.keys.object, "opportunity");
    assert_eq!(first.keys.object_id, "0065g00000AbCdEAAV");
    assert_eq!(first.keys.payload_version, PAYLOAD_VERSION_OUTBOUND);
    assert_eq!(first.keys.occurred_at_micros, 1_741_096_900_123_000);
    assert!(first.body.starts_with(b"<Notification>"));
    assert_ne!(first.keys.event_id, delivery.events[1].keys.event_id);
    // A retry of the same message gives the same ids.
    let again = source
        .split("acme", &request(&uri, &headers, &body))
        .expect("accepted");
    assert_eq!(again.events[0].keys.event_id, first.keys.event_id);
    // The same notification id in another org is another event.
    assert_ne!(
        webhook::notification_event_id("00D000000000001AAA", "04l5g000000AbCdAAA"),
        first.keys.event_id
    );
}

#[test]
fn a_broken_notification_is_left_out_while_the_others_are_stored() {
    let source = source();
    let text = message(
        ORG,
        &[
            ("04l5g000000AbCdAAA", "0065g00000AbCdEAAV", "Prospecting"),
            ("not-an-id", "0065g00000AbCdFAAV", "Closed Won"),
        ],
    )
    .replacen(
        "<sf:LastModifiedDate>2025-03-04T14:01:40.123Z</sf:LastModifiedDate>",
        "",
        1,
    );
    let body = Bytes::from(text);
    let uri: http::Uri = "/webhooks/salesforce/acme?secret=s3cret".parse().unwrap();
    let headers = http::HeaderMap::new();
    let delivery = source
        .split("acme", &request(&uri, &headers, &body))
        .expect("accepted");
    assert_eq!(delivery.events.len(), 1);
    assert_eq!(
        delivery.events[0].keys.warnings[0].code,
        "no_modification_time"
    );
    assert_eq!(delivery.rejected.len(), 1);
    let rejected = &delivery.rejected[0];
    assert_eq!(rejected.index, 1);
    assert_eq!(
        rejected.violations[0].field,
        "notifications.Notification[1].Id"
    );
    assert_eq!(rejected.keys.object_id, "0065g00000AbCdFAAV");
    assert!(rejected.body.starts_with(b"<Notification>"));

    let empty = Bytes::from(message(ORG, &[]));
    match source.split("acme", &request(&uri, &headers, &empty)) {
        Err(Refusal::Invalid(violations)) => {
            assert_eq!(violations[0].field, "notifications.Notification")
        }
        other => panic!("{other:?}"),
    }
    let broken = Bytes::from_static(b"<soapenv:Envelope><soapenv:Body>");
    assert!(matches!(
        source.split("acme", &request(&uri, &headers, &broken)),
        Err(Refusal::MalformedXml(_))
    ));
}

#[test]
fn the_secret_and_the_org_authenticate_a_message() {
    let source = source();
    let headers = http::HeaderMap::new();
    let ours = Bytes::from(message(
        ORG,
        &[("04l5g000000AbCdAAA", "0065g00000AbCdEAAV", "Prospecting")],
    ));
    let check = |uri: &str, tenant: &str, body: &Bytes| {
        let uri: http::Uri = uri.parse().unwrap();
        source.authenticate(tenant, &request(&uri, &headers, body))
    };
    assert_eq!(
        check("/webhooks/salesforce/acme?secret=s3cret", "acme", &ours),
        Ok(())
    );
    assert!(matches!(
        check("/webhooks/salesforce/acme", "acme", &ours),
        Err(AuthFailure::MissingBecause(_))
    ));
    assert!(matches!(
        check("/webhooks/salesforce/acme?secret=wrong", "acme", &ours),
        Err(AuthFailure::InvalidBecause(_))
    ));
    assert!(matches!(
        check("/webhooks/salesforce/globex?secret=s3cret", "globex", &ours),
        Err(AuthFailure::InvalidBecause(_))
    ));
    // The 15-character form of the tenant's own org is the same org.
    let short = Bytes::from(message(
        "00D5g000004ABCD",
        &[("04l5g000000AbCdAAA", "0065g00000AbCdEAAV", "Prospecting")],
    ));
    assert_eq!(
        check("/webhooks/salesforce/acme?secret=s3cret", "acme", &short),
        Ok(())
    );
    let foreign = Bytes::from(message(
        "00D000000000001AAA",
        &[("04l5g000000AbCdAAA", "0065g00000AbCdEAAV", "Prospecting")],
    ));
    match check("/webhooks/salesforce/acme?secret=s3cret", "acme", &foreign) {
        Err(AuthFailure::Forbidden(why)) => assert!(why.contains("00D000000000001AAA"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn answers_are_soap() {
    let source = source();
    let ack = source
        .acknowledge("acme", &crate::Delivery::default())
        .expect("an acknowledgement");
    assert_eq!(ack.status, 200);
    let body = String::from_utf8(ack.body).expect("utf-8");
    assert!(body.contains("<Ack>true</Ack>"), "{body}");
    assert!(body.contains(outbound::OUTBOUND_NAMESPACE), "{body}");
    let fault = source
        .refusal_reply(&crate::RefusalReply {
            status: 400,
            code: "malformed_xml",
            message: "a <b> & c",
            violations: &[],
        })
        .expect("a fault");
    assert_eq!(fault.status, 400);
    let text = String::from_utf8(fault.body).expect("utf-8");
    assert!(
        text.contains("<faultcode>soapenv:Client</faultcode>"),
        "{text}"
    );
    assert!(text.contains("a &lt;b&gt; &amp; c"), "{text}");
    // The fault is itself well-formed XML.
    assert!(quick_xml::Reader::from_str(&text).read_event().is_ok());
    let server = source
        .refusal_reply(&crate::RefusalReply {
            status: 503,
            code: "broker_unavailable",
            message: "retry",
            violations: &[],
        })
        .expect("a fault");
    assert!(
        String::from_utf8(server.body)
            .unwrap()
            .contains("soapenv:Server")
    );
}

#[test]
fn the_fixture_message_gives_an_opportunity_and_an_account() {
    let fixture =
        include_str!("../../../../tests/fixtures/salesforce/opportunity-outbound-message.xml");
    let source = source();
    let uri: http::Uri = "/webhooks/salesforce/acme?secret=s3cret".parse().unwrap();
    let headers = http::HeaderMap::new();
    let body = Bytes::from(fixture.to_owned());
    assert_eq!(
        source.authenticate("acme", &request(&uri, &headers, &body)),
        Ok(())
    );
    let delivery = source
        .split("acme", &request(&uri, &headers, &body))
        .expect("accepted");
    let objects: Vec<&str> = delivery
        .events
        .iter()
        .map(|e| e.keys.object.as_str())
        .collect();
    assert_eq!(objects, ["opportunity", "account"]);
    // The account's time is its SystemModstamp.
    assert_eq!(
        delivery.events[1].keys.occurred_at_micros,
        1_741_096_901_000_000
    );
}
