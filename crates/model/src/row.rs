//! Writing records as `JSONEachRow` lines.

use std::io::Write;

use crate::value::RowValue;
use crate::{Field, Key, Version};

/// One `{...}` line being written.
pub(crate) struct RowWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> RowWriter<'a> {
    pub(crate) fn start(out: &'a mut Vec<u8>) -> RowWriter<'a> {
        out.push(b'{');
        RowWriter { out, first: true }
    }

    /// Column names are identifiers: written without escaping.
    pub(crate) fn column(&mut self, name: &str, value: &impl RowValue) -> &mut Self {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        let _ = write!(self.out, "\"{name}\":");
        value.write_json(self.out);
        self
    }

    pub(crate) fn optional(&mut self, name: &str, value: Option<&impl RowValue>) -> &mut Self {
        match value {
            Some(value) => self.column(name, value),
            None => {
                if !self.first {
                    self.out.push(b',');
                }
                self.first = false;
                let _ = write!(self.out, "\"{name}\":null");
                self
            }
        }
    }

    pub(crate) fn key(&mut self, key: &Key) -> &mut Self {
        self.column("tenant", &key.tenant)
            .column("source", &key.source)
            .column("account", &key.account)
            .column("id", &key.id)
    }

    pub(crate) fn finish(&mut self) {
        self.out.extend_from_slice(b"}\n");
    }
}

/// Writes an entity's change row: key, version, the fields it knows (null
/// or a value) and their names in `known`. Unknown fields are left out, so
/// the input table's default (null) stands and `known` says to ignore it.
pub(crate) struct ChangeRow<'a> {
    row: RowWriter<'a>,
    known: Vec<&'static str>,
}

impl<'a> ChangeRow<'a> {
    pub(crate) fn start(out: &'a mut Vec<u8>, key: &Key, version: &Version) -> ChangeRow<'a> {
        let mut row = RowWriter::start(out);
        row.key(key)
            .column("version", &version.at_micro)
            .column("received", &version.received_micro);
        ChangeRow {
            row,
            known: Vec::new(),
        }
    }

    pub(crate) fn field<T: RowValue>(&mut self, name: &'static str, field: &Field<T>) {
        match field {
            Field::Unknown => return,
            Field::Null => self.row.optional(name, None::<&T>),
            Field::Value(value) => self.row.column(name, value),
        };
        self.known.push(name);
    }

    pub(crate) fn finish(mut self) {
        let known: Vec<String> = self.known.iter().map(|s| (*s).to_owned()).collect();
        self.row.column("known", &known);
        self.row.finish();
    }
}
