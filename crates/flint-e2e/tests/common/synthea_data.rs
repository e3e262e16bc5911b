//! The raw resources of Synthea transaction bundles, with what resolves their references the
//! way the server must (shared by the tests that check answers against the raw JSON).
#![allow(dead_code)]

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// The raw resources of all bundles, with what is needed to resolve their references the way
/// the server must: `urn:uuid:` full URLs within the data and conditional references
/// `Type?identifier=system|value`.
pub struct Data {
    pub resources: Vec<Value>,
    pub by_full_url: HashMap<String, usize>,
    pub by_identifier: HashMap<String, Vec<usize>>,
}

impl Data {
    pub fn new(bundles: &[Value]) -> Data {
        let mut d = Data {
            resources: Vec::new(),
            by_full_url: HashMap::new(),
            by_identifier: HashMap::new(),
        };
        let mut conditional_seen = BTreeSet::new();
        for b in bundles {
            for e in b["entry"].as_array().unwrap() {
                let r = &e["resource"];
                let t = r["resourceType"].as_str().unwrap();
                // A conditional create whose criteria already matched creates nothing.
                if let Some(c) = e["request"]["ifNoneExist"].as_str()
                    && !conditional_seen.insert(format!("{t}?{c}"))
                {
                    continue;
                }
                let i = d.resources.len();
                if let Some(u) = e["fullUrl"].as_str() {
                    d.by_full_url.insert(u.to_string(), i);
                }
                for id in r["identifier"].as_array().into_iter().flatten() {
                    if let (Some(sys), Some(v)) = (id["system"].as_str(), id["value"].as_str()) {
                        d.by_identifier
                            .entry(format!("{t}?identifier={sys}|{v}"))
                            .or_default()
                            .push(i);
                    }
                }
                d.resources.push(r.clone());
            }
        }
        d
    }

    pub fn of_type<'a>(&'a self, t: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.resources
            .iter()
            .filter(move |r| r["resourceType"] == t)
    }

    /// The resource a Reference points at.
    pub fn resolve(&self, reference: &Value) -> Option<&Value> {
        let r = reference["reference"].as_str()?;
        if let Some(&i) = self.by_full_url.get(r) {
            return Some(&self.resources[i]);
        }
        match self.by_identifier.get(r).map(Vec::as_slice) {
            Some([i]) => Some(&self.resources[*i]),
            _ => None,
        }
    }
}

/// Whether a CodeableConcept has a coding `system`|`code`.
pub fn has_coding(cc: &Value, system: &str, code: &str) -> bool {
    cc["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["system"] == system && c["code"] == code)
}
