//! Visiting the literal references (`Reference.reference`) of a resource, driven by the type
//! definitions, including those inside contained and nested resources.

use crate::defs::{Definitions, definitions};
use serde_json::Value;

/// Calls `f` with every `Reference.reference` string of the resource `v`.
pub fn for_each_reference_mut(v: &mut Value, mut f: impl FnMut(&mut String)) {
    let defs = definitions();
    visit_resource(defs, v, &mut f, 0);
}

/// All `Reference.reference` strings of the resource `v`.
pub fn references(v: &Value) -> Vec<String> {
    let mut copy = v.clone();
    let mut out = Vec::new();
    for_each_reference_mut(&mut copy, |r| out.push(r.clone()));
    out
}

fn visit_resource(defs: &Definitions, v: &mut Value, f: &mut dyn FnMut(&mut String), depth: usize) {
    let Some(rt) = v
        .get("resourceType")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    visit_object(defs, v, &rt, f, depth);
}

fn visit_object(
    defs: &Definitions,
    v: &mut Value,
    ty: &str,
    f: &mut dyn FnMut(&mut String),
    depth: usize,
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
        for item in items {
            if child_ty == "Resource" {
                visit_resource(defs, item, f, depth + 1);
            } else {
                visit_object(defs, item, child_ty, f, depth + 1);
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
    fn bundle_entries_are_visited() {
        let v = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Encounter", "status": "finished", "class": {"code": "x"}, "subject": {"reference": "urn:uuid:1"}}}]});
        assert_eq!(references(&v), vec!["urn:uuid:1"]);
    }
}
