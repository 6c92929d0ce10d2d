//! What the enriched events of platforms whose deliveries carry their
//! records start with, read once for their mappings: the object, the
//! action, the account, the record's id and the version; and the tenant
//! settings each stage reads per platform.

use std::collections::BTreeMap;

use serde_json::Value;
use tributary_model::flat::Flat;
use tributary_model::{
    Company, Context, DealStatus, Field, Key, Mapped, MappingError, Outcome, Record,
    StageTransition, User, Version,
};

use crate::SourceConfigError;

/// The `event_*` fields every such event has.
#[derive(Debug, Clone)]
pub struct EventHeader {
    pub object: String,
    pub action: String,
    /// The platform account (org) the record belongs to.
    pub account: String,
    pub object_id: String,
    /// The platform's time (`event_timestamp_micro`), receipt breaking ties.
    pub version: Version,
    tenant: String,
    source: String,
}

impl EventHeader {
    /// Reads the header; `account_field` names the platform's account field.
    pub fn read(
        flat: &Flat<'_>,
        context: &Context<'_>,
        account_field: &str,
    ) -> Result<Self, MappingError> {
        Ok(EventHeader {
            object: Flat::required("event_object", flat.text("event_object")?)?,
            action: Flat::required("event_action", flat.text("event_action")?)?,
            account: Flat::required(account_field, flat.id(account_field)?)?,
            object_id: Flat::required("event_object_id", flat.id("event_object_id")?)?,
            version: Version {
                at_micro: Flat::required(
                    "event_timestamp_micro",
                    flat.integer("event_timestamp_micro")?,
                )?,
                received_micro: context.received_at_micro,
            },
            tenant: context.tenant.to_owned(),
            source: context.source.to_owned(),
        })
    }

    /// The key of the record `id` in the event's account.
    pub fn key(&self, id: impl Into<String>) -> Key {
        Key {
            tenant: self.tenant.clone(),
            source: self.source.clone(),
            account: self.account.clone(),
            id: id.into(),
        }
    }

    /// The key of the event's own record.
    pub fn record_key(&self) -> Key {
        self.key(self.object_id.clone())
    }

    /// The mapped event: the canonical `object` this header's record is,
    /// made of `records`.
    pub fn into_mapped(self, object: &str, records: Vec<Record>) -> Mapped {
        Mapped {
            account: self.account,
            object: object.to_owned(),
            remote_id: self.object_id,
            action: self.action,
            version: self.version,
            records,
        }
    }

    /// The refusal of an object the platform's mapping does not know.
    pub fn unknown_object(&self, platform: &str) -> MappingError {
        MappingError::new(
            "event_object",
            format!("no mapping for {platform} object {:?}", self.object),
        )
    }

    /// The user a reference names (an owner with its display name), its
    /// name as of this event; nothing without both id and name.
    pub fn referenced_user(&self, id: Field<String>, name: Field<String>) -> Option<Record> {
        let (Field::Value(id), Field::Value(name)) = (id, name) else {
            return None;
        };
        let mut user = User::new(self.key(id), self.version);
        user.name = Field::Value(name);
        Some(Record::User(user))
    }

    /// The company a reference names (a deal's account with its name), its
    /// name as of this event; nothing without both id and name.
    pub fn referenced_company(&self, id: Field<String>, name: Field<String>) -> Option<Record> {
        let (Field::Value(id), Field::Value(name)) = (id, name) else {
            return None;
        };
        let mut company = Company::new(self.key(id), self.version);
        company.name = Field::Value(name);
        Some(Record::Company(company))
    }
}

impl EventHeader {
    /// The event's deal entering `stage` of `pipeline` at `at_micro`, with
    /// the status it entered in where known: what the stage-to-stage
    /// conversion and the calibrated probabilities count. The stage it left
    /// is not in such a delivery; the entry time keys the row, so every
    /// delivery that reports the same entry makes the same row.
    pub fn stage_entry(
        &self,
        pipeline: &Field<String>,
        stage: &Field<String>,
        status: &Field<DealStatus>,
        at_micro: i64,
    ) -> Option<Record> {
        let Field::Value(stage) = stage else {
            return None;
        };
        Some(Record::StageTransition(StageTransition {
            deal: self.record_key(),
            entered_at_micro: at_micro,
            pipeline_id: pipeline.value().cloned().unwrap_or_default(),
            from_stage_id: String::new(),
            to_stage_id: stage.clone(),
            from_status: String::new(),
            to_status: status.value().map_or("", |s| s.as_str()).to_owned(),
            change_source: String::new(),
        }))
    }
}

/// The stage entries among mapped records: stage, entry time, status.
#[cfg(test)]
pub(crate) fn stage_entries(records: &[Record]) -> Vec<(String, i64, String)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::StageTransition(t) => Some((
                t.to_stage_id.clone(),
                t.entered_at_micro,
                t.to_status.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// A stage's outcome from a forecast type as CRMs name it (`Open`,
/// `Closed Won`, `Closed Lost`); `None` for anything else.
pub fn forecast_outcome(forecast_type: &str) -> Option<Outcome> {
    let forecast_type = forecast_type.to_ascii_lowercase();
    if forecast_type.contains("won") {
        Some(Outcome::Won)
    } else if forecast_type.contains("lost") {
        Some(Outcome::Lost)
    } else if forecast_type.contains("open") {
        Some(Outcome::Open)
    } else {
        None
    }
}

/// Every tenant's settings for `source_name`, each read and checked by `read`.
pub fn tenants_by_name<T>(
    source_name: &'static str,
    sections: &[(&str, &Value)],
    read: impl Fn(&Value) -> Result<T, String>,
) -> Result<BTreeMap<String, T>, SourceConfigError> {
    sections
        .iter()
        .map(|(tenant, section)| {
            read(section)
                .map(|settings| ((*tenant).to_owned(), settings))
                .map_err(|reason| SourceConfigError::Tenant {
                    tenant: (*tenant).to_owned(),
                    source_name,
                    reason,
                })
        })
        .collect()
}

/// An absolute http(s) address without query or fragment.
pub fn check_http_url(key: &str, url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(['?', '#']) => {
            Ok(())
        }
        _ => Err(format!(
            "{key} must be an http(s) address without query or fragment, got {url:?}"
        )),
    }
}

/// An API's access settings: its address (`url_key`) with a fixed
/// `access_token` or `[oauth]`, both or neither.
pub fn check_api_access(
    url_key: &str,
    url: Option<&String>,
    access_token: Option<&tributary_config::Secret>,
    oauth: Option<&tributary_enrichment::oauth::OAuthSettings>,
) -> Result<(), String> {
    let credentials = match (access_token, oauth) {
        (Some(_), Some(_)) => return Err("set access_token or [oauth], not both".into()),
        (Some(token), None) if token.is_empty() => {
            return Err(format!(
                "access_token must not be empty; leave out {url_key} and access_token to run without the API"
            ));
        }
        (None, Some(oauth)) => {
            oauth.grant()?;
            true
        }
        (token, _) => token.is_some(),
    };
    match (url, credentials) {
        (Some(url), true) => check_http_url(url_key, url),
        (None, false) => Ok(()),
        (Some(_), false) => Err(format!(
            "{url_key} is set without access_token or [oauth]: the API needs both"
        )),
        (None, true) => Err(format!(
            "access_token or [oauth] is set without {url_key}: the API needs both"
        )),
    }
}

/// Text of ASCII digits only, at least one.
pub fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}
