//! Dashboard templates: `<templates_dir>/<template>/<version>.json`, JSON
//! Schema (draft-07), compiled once at start. Each event is validated
//! against the newest version of the template its source and object feed;
//! the version used is stored on its row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tributary_envelope::DeadLetterError;

/// Which template an event feeds, by source and object: each platform's
/// routes from the sources' registry.
fn routes() -> impl Iterator<Item = (&'static str, &'static [&'static str], &'static str)> {
    tributary_sources::REGISTRY.iter().flat_map(|platform| {
        platform
            .templates
            .iter()
            .map(move |route| (platform.name, route.objects, route.template))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("reading templates from {dir}: {source}")]
    Read {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
    #[error("no version of template {template:?} under {dir} (it is routed to)")]
    Missing { template: String, dir: PathBuf },
}

/// One compiled template version.
pub struct Template {
    pub name: String,
    pub version: u32,
    validator: jsonschema::Validator,
}

/// Why an event fits no template.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Source and object feed no template (`no_template`).
    NoTemplate(String),
    /// The template's schema refuses it (`schema_validation`), every error.
    Invalid(Vec<DeadLetterError>),
}

pub struct Templates {
    /// The newest version of each template.
    newest: BTreeMap<String, Template>,
}

impl Templates {
    /// Loads and compiles every template under `dir`; fails on an invalid
    /// file or a routed template with no version.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let read_dir = |d: &Path| {
            std::fs::read_dir(d).map_err(|source| TemplateError::Read {
                dir: d.to_owned(),
                source,
            })
        };
        let mut newest: BTreeMap<String, Template> = BTreeMap::new();
        for entry in read_dir(dir)? {
            let folder = entry
                .map_err(|source| TemplateError::Read {
                    dir: dir.to_owned(),
                    source,
                })?
                .path();
            if !folder.is_dir() {
                continue;
            }
            let name = folder
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for file in read_dir(&folder)? {
                let file = file
                    .map_err(|source| TemplateError::Read {
                        dir: folder.clone(),
                        source,
                    })?
                    .path();
                if file.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let template = compile(&name, &file)?;
                if newest
                    .get(&name)
                    .is_none_or(|current| current.version < template.version)
                {
                    newest.insert(name.clone(), template);
                }
            }
        }
        for (_, _, template) in routes() {
            if !newest.contains_key(template) {
                return Err(TemplateError::Missing {
                    template: template.into(),
                    dir: dir.to_owned(),
                });
            }
        }
        Ok(Templates { newest })
    }

    /// The template `event` feeds, and whether it is valid there.
    pub fn check(&self, event: &Value) -> Result<&Template, Rejection> {
        let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or_default();
        let (source, object) = (text("pipeline_source"), text("event_object"));
        let name = routes()
            .find(|(s, objects, _)| *s == source && objects.contains(&object))
            .map(|(_, _, template)| template)
            .ok_or_else(|| {
                Rejection::NoTemplate(format!(
                    "no dashboard template for source {source:?} and object {object:?}"
                ))
            })?;
        let template = &self.newest[name];
        template.validate(event)?;
        Ok(template)
    }

    pub fn names(&self) -> impl Iterator<Item = (&str, u32)> {
        self.newest.values().map(|t| (t.name.as_str(), t.version))
    }
}

impl Template {
    fn validate(&self, event: &Value) -> Result<(), Rejection> {
        let errors: Vec<DeadLetterError> = self
            .validator
            .iter_errors(event)
            .map(|e| DeadLetterError::new(e.instance_path().to_string(), e.to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Rejection::Invalid(errors))
        }
    }
}

fn compile(name: &str, file: &Path) -> Result<Template, TemplateError> {
    let invalid = |reason: String| TemplateError::Invalid {
        file: file.to_owned(),
        reason,
    };
    let version = file
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| invalid("the file name must be the version number, e.g. 1.json".into()))?;
    let text = std::fs::read_to_string(file).map_err(|e| invalid(e.to_string()))?;
    let schema: Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let validator = jsonschema::draft7::new(&schema)
        .map_err(|e| invalid(format!("not a valid draft-07 schema: {e}")))?;
    Ok(Template {
        name: name.to_owned(),
        version,
        validator,
    })
}

#[cfg(test)]
mod tests;
