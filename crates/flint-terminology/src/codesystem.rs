//! [`CodeSystem`]: one CodeSystem resource read once into what the terminology operations
//! ask of it: its concepts in document order with their displays, designations and
//! properties, a code → concept index (case-folded when the system is not case-sensitive)
//! and the [`Hierarchy`] of its parent/child edges.

use crate::Hierarchy;
use serde_json::Value;
use std::collections::HashMap;

/// A designation of a concept: another display, maybe in another language or of a use.
#[derive(Debug, Clone, PartialEq)]
pub struct Designation {
    /// The language (`designation.language`).
    pub language: Option<String>,
    /// The use (`designation.use`, a Coding).
    pub use_: Option<Value>,
    /// The text.
    pub value: String,
}

impl Designation {
    /// The designations stated in a `designation` array.
    pub fn all_of(v: &Value) -> Vec<Designation> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                Some(Designation {
                    language: d["language"].as_str().map(str::to_string),
                    use_: d.get("use").cloned(),
                    value: d["value"].as_str()?.to_string(),
                })
            })
            .collect()
    }

    /// The designation as FHIR JSON (`language`, `use`, `value`).
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        if let Some(l) = &self.language {
            o.insert("language".into(), Value::String(l.clone()));
        }
        if let Some(u) = &self.use_ {
            o.insert("use".into(), u.clone());
        }
        o.insert("value".into(), Value::String(self.value.clone()));
        Value::Object(o)
    }
}

/// One concept of a CodeSystem.
#[derive(Debug, Clone, PartialEq)]
pub struct Concept {
    /// The code.
    pub code: String,
    /// Its display, if stated.
    pub display: Option<String>,
    /// Its definition, if stated.
    pub definition: Option<String>,
    /// Its designations.
    pub designations: Vec<Designation>,
    /// Its properties as stated: the `property` entries (`code` and `value[x]`).
    pub properties: Vec<Value>,
}

impl Concept {
    /// The values of property `code`, as text (`valueCode`, `valueString`, `valueBoolean`,
    /// numbers, dates, a `valueCoding`'s code).
    pub fn property_values(&self, code: &str) -> Vec<String> {
        self.properties
            .iter()
            .filter(|p| p["code"].as_str() == Some(code))
            .filter_map(property_text)
            .collect()
    }

    /// Whether the concept is inactive: property `inactive` true, or `status` retired or
    /// inactive.
    pub fn inactive(&self) -> bool {
        self.property_values("inactive").iter().any(|v| v == "true")
            || self
                .property_values("status")
                .iter()
                .any(|v| v == "retired" || v == "inactive")
    }

    /// Whether the concept is abstract (not selectable): property `notSelectable` true.
    pub fn is_abstract(&self) -> bool {
        self.property_values("notSelectable")
            .iter()
            .any(|v| v == "true")
    }
}

/// The text of a property's (or a parameter's) `value[x]`.
pub(crate) fn property_text(p: &Value) -> Option<String> {
    let obj = p.as_object()?;
    for (k, v) in obj {
        let Some(_) = k.strip_prefix("value") else {
            continue;
        };
        return match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Object(o) => o.get("code").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
    }
    None
}

/// A CodeSystem read for the terminology operations.
#[derive(Debug, Clone)]
pub struct CodeSystem {
    /// Its canonical url.
    pub url: String,
    /// Its version, if stated.
    pub version: Option<String>,
    /// Its name, if stated.
    pub name: Option<String>,
    /// Its `content` (`complete`, `fragment`, `not-present`, ...).
    pub content: String,
    /// Whether codes are compared case-sensitively (`caseSensitive`, default true).
    pub case_sensitive: bool,
    /// Its concepts in document order (depth first).
    pub concepts: Vec<Concept>,
    /// Code → position in `concepts`.
    index: HashMap<String, usize>,
    /// Lower-cased code → position, when not case-sensitive.
    folded: HashMap<String, usize>,
    /// Its parent/child edges.
    pub hierarchy: Hierarchy,
}

impl CodeSystem {
    /// Reads a CodeSystem resource.
    pub fn of(cs: &Value) -> CodeSystem {
        let mut concepts = Vec::new();
        let mut stack: Vec<&Value> = cs["concept"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .collect();
        while let Some(c) = stack.pop() {
            let Some(code) = c["code"].as_str() else {
                continue;
            };
            concepts.push(Concept {
                code: code.to_string(),
                display: c["display"].as_str().map(str::to_string),
                definition: c["definition"].as_str().map(str::to_string),
                designations: Designation::all_of(&c["designation"]),
                properties: c["property"].as_array().cloned().unwrap_or_default(),
            });
            stack.extend(c["concept"].as_array().into_iter().flatten().rev());
        }
        let case_sensitive = cs["caseSensitive"].as_bool().unwrap_or(true);
        let mut index = HashMap::with_capacity(concepts.len());
        let mut folded = HashMap::new();
        for (i, c) in concepts.iter().enumerate() {
            index.entry(c.code.clone()).or_insert(i);
            if !case_sensitive {
                folded.entry(c.code.to_lowercase()).or_insert(i);
            }
        }
        CodeSystem {
            url: cs["url"].as_str().unwrap_or_default().to_string(),
            version: cs["version"].as_str().map(str::to_string),
            name: cs["name"].as_str().map(str::to_string),
            content: cs["content"].as_str().unwrap_or("complete").to_string(),
            case_sensitive,
            concepts,
            index,
            folded,
            hierarchy: Hierarchy::of(cs),
        }
    }

    /// The position of `code` among the concepts (ignoring case when the system is not
    /// case-sensitive).
    pub fn find(&self, code: &str) -> Option<usize> {
        self.index.get(code).copied().or_else(|| {
            (!self.case_sensitive)
                .then(|| self.folded.get(&code.to_lowercase()).copied())
                .flatten()
        })
    }

    /// The concept with `code`.
    pub fn concept(&self, code: &str) -> Option<&Concept> {
        self.find(code).map(|i| &self.concepts[i])
    }

    /// Whether the CodeSystem states all its codes (`complete`); a `fragment`, `example` or
    /// `not-present` one does not, so a code it lacks is not known to be wrong.
    pub fn is_complete(&self) -> bool {
        self.content == "complete"
    }
}
