//! Visiting the literal references (`Reference.reference`) of a resource, driven by the type
//! definitions, including those inside contained and nested resources ([`references`]), or
//! only the resource's own ([`own_references`]).

use crate::defs::{Definitions, definitions};
use serde_json::Value;

/// Calls `f` with every `Reference.reference` string of the resource `v`.
pub fn for_each_reference_mut(v: &mut Value, mut f: impl FnMut(&mut String)) {
    let defs = definitions();
    visit_resource(defs, v, &mut f, 0, true);
}

/// The resource's own `Reference.reference` strings: its elements' and its contained
/// resources' (which belong to it), not those of other resources it carries as content
/// (`Bundle.entry.resource`, `Bundle.entry.response.outcome`, `Parameters.parameter.resource`):
/// a stored document or collection Bundle does not itself refer to what its entries refer
/// to. These are what referential integrity and `referenced-by` rows are about.
pub fn own_references(v: &Value) -> Vec<String> {
    let mut copy = v.clone();
    let mut out = Vec::new();
    for_each_own_reference_mut(&mut copy, |r| out.push(r.clone()));
    out
}

/// Calls `f` with every one of the resource's own `Reference.reference` strings (see
/// [`own_references`]): what a transaction rewrites, leaving a carried Bundle's entries as
/// they are.
pub fn for_each_own_reference_mut(v: &mut Value, mut f: impl FnMut(&mut String)) {
    visit_resource(definitions(), v, &mut f, 0, false);
}

/// All `Reference.reference` strings of the resource `v`.
pub fn references(v: &Value) -> Vec<String> {
    let mut copy = v.clone();
    let mut out = Vec::new();
    for_each_reference_mut(&mut copy, |r| out.push(r.clone()));
    out
}

fn visit_resource(
    defs: &Definitions,
    v: &mut Value,
    f: &mut dyn FnMut(&mut String),
    depth: usize,
    nested: bool,
) {
    let Some(rt) = v
        .get("resourceType")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    visit_object(defs, v, &rt, f, depth, nested);
}

fn visit_object(
    defs: &Definitions,
    v: &mut Value,
    ty: &str,
    f: &mut dyn FnMut(&mut String),
    depth: usize,
    nested: bool,
) {
    if depth > 64 {
        return;
    }
    let Some(td) = defs.type_def(ty) else { return };
    let Some(obj) = v.as_object_mut() else { return };
    if ty == "Reference"
        && let Some(Value::String(s)) = obj.get_mut("reference")
    {
        f(s);
    }
    for (key, value) in obj.iter_mut() {
        if key.starts_with('_') || key == "resourceType" {
            continue;
        }
        let Some((_, child_ty)) = td.resolve_property(key) else {
            continue;
        };
        if defs.is_primitive(child_ty) {
            continue;
        }
        let items: Vec<&mut Value> = match value {
            Value::Array(a) => a.iter_mut().collect(),
            other => vec![other],
        };
        if child_ty == "Resource" && !nested && key != "contained" {
            continue;
        }
        for item in items {
            if child_ty == "Resource" {
                visit_resource(defs, item, f, depth + 1, nested);
            } else {
                visit_object(defs, item, child_ty, f, depth + 1, nested);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_references_everywhere() {
        let mut v = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "Patient/1"},
            "performer": [{"reference": "Practitioner/2"}, {"display": "no ref"}],
            "extension": [{"url": "u", "valueReference": {"reference": "Device/3"}}],
            "contained": [{"resourceType": "Specimen", "subject": {"reference": "Patient/4"}}],
            "note": [{"text": "reference"}]});
        let mut refs = references(&v);
        refs.sort();
        assert_eq!(
            refs,
            vec!["Device/3", "Patient/1", "Patient/4", "Practitioner/2"]
        );
        for_each_reference_mut(&mut v, |r| r.insert_str(0, "x/"));
        assert_eq!(v["subject"]["reference"], "x/Patient/1");
    }

    #[test]
    fn own_references_leave_out_carried_resources() {
        let doc = json!({"resourceType": "Bundle", "type": "document",
            "entry": [{"resource": {"resourceType": "Composition", "status": "final",
                "subject": {"reference": "Patient/x"}}},
                {"response": {"status": "201", "outcome": {"resourceType": "OperationOutcome",
                    "issue": [], "contained": []}}}]});
        assert_eq!(references(&doc), vec!["Patient/x"]);
        assert!(own_references(&doc).is_empty());
        let p = json!({"resourceType": "Parameters", "parameter": [{"name": "r",
            "resource": {"resourceType": "Observation", "subject": {"reference": "Patient/y"}}}]});
        assert!(own_references(&p).is_empty());
        // Contained resources belong to the resource: their references are its own.
        let o = json!({"resourceType": "Observation", "subject": {"reference": "Patient/1"},
            "specimen": {"reference": "#s"},
            "contained": [{"resourceType": "Specimen", "id": "s",
                "subject": {"reference": "Patient/4"}, "parent": [{"reference": "#t"}]}]});
        let mut own = own_references(&o);
        own.sort();
        assert_eq!(own, vec!["#s", "#t", "Patient/1", "Patient/4"]);
    }

    #[test]
    fn bundle_entries_are_visited() {
        let v = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Encounter", "status": "finished", "class": {"code": "x"}, "subject": {"reference": "urn:uuid:1"}}}]});
        assert_eq!(references(&v), vec!["urn:uuid:1"]);
    }
}
