//! Reading a Salesforce Outbound Message: a SOAP 1.1 envelope whose body is
//! `<notifications>` with the org, the action and up to 100 `<Notification>`
//! elements, each a notification id and an `sObject` with the fields the
//! message definition selected, at their latest values.
//!
//! Elements are matched by local name: the namespace prefixes vary between
//! senders (`soapenv:`, `sf:`), and a notification's bytes are read again
//! on their own by the enricher, without the envelope that declares them.

use std::ops::Range;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// `xmlns` of `<notifications>` and of the acknowledgement.
pub const OUTBOUND_NAMESPACE: &str = "http://soap.sforce.com/2005/09/outbound";
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// `xmlns` of the SOAP 1.1 envelope.
pub const SOAP_NAMESPACE: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// A message's header fields and its notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundMessage {
    pub organization_id: Option<String>,
    pub action_id: Option<String>,
    pub enterprise_url: Option<String>,
    pub notifications: Vec<Notification>,
}

/// One `<Notification>`: its id, its record and where its bytes are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    /// The notification id (`04l...`): the same on every retry of it.
    pub id: Option<String>,
    /// The record's type from `xsi:type` (`Opportunity` for `sf:Opportunity`).
    pub object_type: Option<String>,
    /// The record's fields in document order, by local name; `None` for a
    /// field sent as `xsi:nil="true"`.
    pub fields: Vec<(String, Option<String>)>,
    /// The `<Notification>` element's bytes in the message.
    pub span: Range<usize>,
}

impl Notification {
    /// A field's value; `None` when absent or nil.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .and_then(|(_, value)| value.as_deref())
    }

    /// Whether the message definition selected the field (nil counts).
    pub fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|(field, _)| field == name)
    }
}

/// Reads a whole Outbound Message. The error says what is wrong (for the SOAP fault).
pub fn read_message(body: &[u8]) -> Result<OutboundMessage, String> {
    let mut reader = Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut message = OutboundMessage::default();
    let mut seen_notifications = false;
    loop {
        let start = position(&reader);
        let event = reader.read_event().map_err(|err| {
            format!(
                "not well-formed XML at byte {}: {err}",
                reader.error_position()
            )
        })?;
        match event {
            Event::Start(element) => {
                let name = local_name(&element);
                let depth = path.len();
                if depth == 0 && name != "Envelope" {
                    return Err(format!(
                        "the root element is <{name}>, not a SOAP <Envelope>"
                    ));
                }
                if depth == 1 && name != "Body" && name != "Header" {
                    return Err(format!("unexpected <{name}> in the SOAP envelope"));
                }
                if depth == 2 && path[1] == "Body" {
                    if name != "notifications" {
                        return Err(format!(
                            "the SOAP body holds <{name}>, not an Outbound Message's <notifications>"
                        ));
                    }
                    seen_notifications = true;
                }
                if depth == 3 && path[2] == "notifications" && name == "Notification" {
                    let notification = read_notification(&mut reader, start)?;
                    message.notifications.push(notification);
                    continue;
                }
                if depth == 3 && path[2] == "notifications" {
                    let value = read_text(&mut reader, &name)?;
                    match name.as_str() {
                        "OrganizationId" => message.organization_id = Some(value),
                        "ActionId" => message.action_id = Some(value),
                        "EnterpriseUrl" => message.enterprise_url = Some(value),
                        _ => {}
                    }
                    continue;
                }
                path.push(name);
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Empty(element) => {
                if path.is_empty() {
                    return Err("the message is an empty element, not a SOAP envelope".into());
                }
                if path.len() == 2 && path[1] == "Body" {
                    return Err(format!(
                        "the SOAP body holds an empty <{}>, not an Outbound Message",
                        local_name(&element)
                    ));
                }
            }
            Event::Text(text) if path.is_empty() && !text.iter().all(u8::is_ascii_whitespace) => {
                return Err("text outside the SOAP envelope".into());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(format!("the XML ends inside <{}>", path.join("><")));
    }
    if !seen_notifications {
        return Err("the SOAP body holds no <notifications>".into());
    }
    // The reader counts positions after a byte-order mark it skipped.
    if body.starts_with(UTF8_BOM) {
        for notification in &mut message.notifications {
            let span = &mut notification.span;
            *span = span.start + UTF8_BOM.len()..span.end + UTF8_BOM.len();
        }
    }
    Ok(message)
}

/// Reads one `<Notification>` on its own (its bytes as the collector stored them).
pub fn read_notification_bytes(bytes: &[u8]) -> Result<Notification, String> {
    let mut reader = Reader::from_reader(bytes);
    loop {
        let start = position(&reader);
        match reader.read_event().map_err(|err| {
            format!(
                "not well-formed XML at byte {}: {err}",
                reader.error_position()
            )
        })? {
            Event::Start(element) if local_name(&element) == "Notification" => {
                return read_notification(&mut reader, start);
            }
            Event::Start(element) | Event::Empty(element) => {
                return Err(format!(
                    "<{}> is not a <Notification>",
                    local_name(&element)
                ));
            }
            Event::Eof => return Err("no <Notification> element".into()),
            _ => {}
        }
    }
}

/// Reads a `<Notification>` whose start tag began at `start` and was just read.
fn read_notification(reader: &mut Reader<&[u8]>, start: usize) -> Result<Notification, String> {
    let mut notification = Notification::default();
    loop {
        match read(reader)? {
            Event::Start(element) => match local_name(&element).as_str() {
                "Id" => notification.id = Some(read_text(reader, "Id")?),
                "sObject" => {
                    notification.object_type = object_type(&element)?;
                    read_fields(reader, &mut notification.fields)?;
                }
                other => {
                    let other = other.to_owned();
                    read_text(reader, &other)?;
                }
            },
            Event::Empty(element) if local_name(&element) == "sObject" => {
                notification.object_type = object_type(&element)?;
            }
            Event::End(_) => break,
            Event::Eof => return Err("the XML ends inside a <Notification>".into()),
            _ => {}
        }
    }
    notification.span = start..position(reader);
    Ok(notification)
}

/// The fields of an `sObject`, up to its end tag.
fn read_fields(
    reader: &mut Reader<&[u8]>,
    fields: &mut Vec<(String, Option<String>)>,
) -> Result<(), String> {
    loop {
        match read(reader)? {
            Event::Start(element) => {
                let name = local_name(&element);
                let value = read_text(reader, &name)?;
                fields.push((name, Some(value)));
            }
            Event::Empty(element) => {
                let name = local_name(&element);
                let value = if is_nil(&element)? {
                    None
                } else {
                    Some(String::new())
                };
                fields.push((name, value));
            }
            Event::End(_) => return Ok(()),
            Event::Eof => return Err("the XML ends inside an <sObject>".into()),
            _ => {}
        }
    }
}

/// The text of the element `name` whose start tag was just read, up to its
/// end tag, entities resolved. Nested elements are refused: every field an
/// Outbound Message carries is a simple value.
fn read_text(reader: &mut Reader<&[u8]>, name: &str) -> Result<String, String> {
    let mut raw = String::new();
    loop {
        match read(reader)? {
            Event::Text(text) => {
                raw.push_str(&text.decode().map_err(|err| format!("<{name}>: {err}"))?)
            }
            Event::GeneralRef(reference) => {
                raw.push('&');
                raw.push_str(
                    &reference
                        .decode()
                        .map_err(|err| format!("<{name}>: {err}"))?,
                );
                raw.push(';');
            }
            Event::CData(data) => raw.push_str(&quick_xml::escape::escape(
                data.decode().map_err(|err| format!("<{name}>: {err}"))?,
            )),
            Event::End(_) => break,
            Event::Start(element) | Event::Empty(element) => {
                return Err(format!(
                    "<{name}> holds an element (<{}>), not a value",
                    local_name(&element)
                ));
            }
            Event::Eof => return Err(format!("the XML ends inside <{name}>")),
            _ => {}
        }
    }
    quick_xml::escape::unescape(&raw)
        .map(|text| text.into_owned())
        .map_err(|err| format!("<{name}>: {err}"))
}

fn read<'a>(reader: &mut Reader<&'a [u8]>) -> Result<Event<'a>, String> {
    reader.read_event().map_err(|err| {
        format!(
            "not well-formed XML at byte {}: {err}",
            reader.error_position()
        )
    })
}

fn position(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

fn local_name(element: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(element.local_name().as_ref()).into_owned()
}

/// An attribute's value by local name (`xsi:type` is `type`).
fn attribute(element: &BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|err| format!("a malformed attribute: {err}"))?;
        if attribute.key.local_name().as_ref() == name.as_bytes() {
            let value = attribute
                .unescape_value()
                .map_err(|err| format!("attribute {name}: {err}"))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

fn is_nil(element: &BytesStart<'_>) -> Result<bool, String> {
    Ok(attribute(element, "nil")?.is_some_and(|value| value == "true" || value == "1"))
}

/// `sf:Opportunity` -> `Opportunity`.
fn object_type(element: &BytesStart<'_>) -> Result<Option<String>, String> {
    Ok(
        attribute(element, "type")?.map(|value| match value.split_once(':') {
            Some((_, local)) => local.to_owned(),
            None => value,
        }),
    )
}

/// The answer Salesforce takes as "every notification stored".
pub fn acknowledgement() -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_NAMESPACE}"><soapenv:Body><notificationsResponse xmlns="{OUTBOUND_NAMESPACE}"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#
    )
    .into_bytes()
}

/// A SOAP 1.1 fault: `Client` when the message is at fault (4xx), `Server`
/// otherwise; the text escaped.
pub fn fault(client: bool, code: &str, message: &str) -> Vec<u8> {
    let side = if client { "Client" } else { "Server" };
    let text = quick_xml::escape::escape(format!("{code}: {message}"));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_NAMESPACE}"><soapenv:Body><soapenv:Fault><faultcode>soapenv:{side}</faultcode><faultstring>{text}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
    )
    .into_bytes()
}
