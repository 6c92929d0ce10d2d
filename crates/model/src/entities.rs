//! Entities: records whose fields are merged one by one, last writer (by
//! the source's version) wins per field. Each has a `<entity>_changes`
//! input table and a state table in `0011_canonical_model.sql`; the field
//! lists here and there must agree (a test checks it).

use chrono::NaiveDate;

use crate::row::ChangeRow;
use crate::value::RowValue;
use crate::{Amount, Field, Key, Timestamp, Version};

macro_rules! entity {
    (
        $(#[$doc:meta])*
        $name:ident => $table:literal {
            $( $(#[$field_doc:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            pub key: Key,
            pub version: Version,
            $( $(#[$field_doc])* pub $field: Field<$ty>, )*
        }

        impl $name {
            /// The input table, in the main database or the PII one.
            pub const CHANGES_TABLE: &'static str = $table;
            /// The fields, in the tables' order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// A record that knows nothing yet.
            pub fn new(key: Key, version: Version) -> Self {
                $name { key, version, ..Default::default() }
            }

            pub(crate) fn write_row(&self, out: &mut Vec<u8>) {
                let mut row = ChangeRow::start(out, &self.key, &self.version);
                $( row.field(stringify!($field), &self.$field); )*
                row.finish();
            }

            /// Whether the record knows anything beyond its key.
            pub fn knows_anything(&self) -> bool {
                false $( || self.$field.is_known() )*
            }
        }
    };
}

/// A deal's status, from the platform's own won/lost signal (never from a
/// stage name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DealStatus {
    Open,
    Won,
    Lost,
}

impl DealStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DealStatus::Open => "open",
            DealStatus::Won => "won",
            DealStatus::Lost => "lost",
        }
    }
}

impl RowValue for DealStatus {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.as_str().to_owned().write_json(out);
    }
}

/// What kind of activity, across platforms (the platform's own word is kept
/// in `raw_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityType {
    Call,
    Email,
    Meeting,
    Task,
    Note,
    Other,
}

impl ActivityType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityType::Call => "call",
            ActivityType::Email => "email",
            ActivityType::Meeting => "meeting",
            ActivityType::Task => "task",
            ActivityType::Note => "note",
            ActivityType::Other => "other",
        }
    }
}

impl RowValue for ActivityType {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.as_str().to_owned().write_json(out);
    }
}

entity! {
    /// An opportunity. Deleted and merged-away deals keep their row (a
    /// tombstone), so a late update cannot bring them back.
    Deal => "deal_changes" {
        deleted: bool,
        /// The surviving deal's id, on a deal merged away.
        merged_into: String,
        title: String,
        amount: Amount,
        /// The amount as the platform sent it.
        amount_text: String,
        /// ISO 4217 code.
        currency: String,
        pipeline_id: String,
        stage_id: String,
        status: DealStatus,
        /// The deal's own win probability in percent, overriding its stage's.
        probability: f64,
        expected_close_date: NaiveDate,
        created_at: Timestamp,
        won_at: Timestamp,
        lost_at: Timestamp,
        closed_at: Timestamp,
        lost_reason: String,
        owner_id: String,
        company_id: String,
        contact_id: String,
        stage_changed_at: Timestamp,
        /// Where the deal came from (a label), for won-by-source reporting.
        marketing_source: String,
        marketing_campaign: String,
        updated_at: Timestamp,
    }
}

entity! {
    /// A call, email, meeting, task or note.
    Activity => "activity_changes" {
        deleted: bool,
        merged_into: String,
        /// The canonical kind (call, email, meeting, task, note, other).
        kind: ActivityType,
        raw_type: String,
        /// `inbound` or `outbound`, where the platform says.
        direction: String,
        subject: String,
        due_date: NaiveDate,
        due_at: Timestamp,
        done: bool,
        done_at: Timestamp,
        owner_id: String,
        deal_id: String,
        contact_id: String,
        company_id: String,
        created_at: Timestamp,
        updated_at: Timestamp,
    }
}

entity! {
    /// An account, organization or customer.
    Company => "company_changes" {
        deleted: bool,
        merged_into: String,
        name: String,
        domain: String,
        owner_id: String,
        industry: String,
        size: String,
        created_at: Timestamp,
        updated_at: Timestamp,
    }
}

entity! {
    /// A person, without personal data (see [`ContactPii`]).
    Contact => "contact_changes" {
        deleted: bool,
        merged_into: String,
        company_id: String,
        owner_id: String,
        /// The email verifier's verdict on the address.
        email_status: String,
        created_at: Timestamp,
        updated_at: Timestamp,
    }
}

entity! {
    /// A person's personal data, kept in the PII database that dashboards cannot read.
    ContactPii => "contact_changes" {
        first_name: String,
        last_name: String,
        email: String,
        phone: String,
        position: String,
        updated_at: Timestamp,
    }
}

entity! {
    /// A rep, owner, technician or assignee.
    User => "user_changes" {
        deleted: bool,
        name: String,
        email: String,
        active: bool,
        updated_at: Timestamp,
    }
}
