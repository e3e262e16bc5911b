//! `_summary` and `_elements`: subsets of a resource, tagged `SUBSETTED`.

use crate::defs::{Definitions, TypeDef, definitions};
use serde_json::{Map, Value, json};

/// The `_summary` modes that return a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Elements marked as summary (and mandatory ones), recursively through backbone elements.
    True,
    /// `text`, `id`, `meta` and the mandatory top-level elements.
    Text,
    /// Everything except `text`.
    Data,
}

const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

fn base_name(key: &str) -> &str {
    key.strip_prefix('_').unwrap_or(key)
}

/// Keeps the properties of `obj` whose element satisfies `keep`.
fn filter(
    obj: &Map<String, Value>,
    td: &TypeDef,
    keep: impl Fn(&str, &crate::defs::ElementDef) -> bool,
) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| {
            *k == "resourceType"
                || td
                    .resolve_property(base_name(k))
                    .is_some_and(|(e, _)| keep(base_name(k), e))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn summary_object(defs: &Definitions, v: &Value, ty: &str) -> Value {
    let (Some(td), Some(obj)) = (defs.type_def(ty), v.as_object()) else {
        return v.clone();
    };
    let mut out = filter(obj, td, |_, e| e.summary || e.min > 0);
    // Recurse into backbone elements, whose types the resource defines.
    for (k, val) in out.iter_mut() {
        if let Some((_, child)) = td.resolve_property(k)
            && defs
                .type_def(child)
                .is_some_and(|t| t.kind == crate::defs::Kind::Backbone)
        {
            let new = match &*val {
                Value::Array(a) => {
                    Value::Array(a.iter().map(|x| summary_object(defs, x, child)).collect())
                }
                other => summary_object(defs, other, child),
            };
            *val = new;
        }
    }
    Value::Object(out)
}

/// The `_summary` subset of a resource.
pub fn summary(v: &Value, mode: Summary) -> Value {
    let defs = definitions();
    let Some(rt) = v.get("resourceType").and_then(Value::as_str) else {
        return v.clone();
    };
    let (Some(td), Some(obj)) = (defs.type_def(rt), v.as_object()) else {
        return v.clone();
    };
    let mut out = match mode {
        Summary::True => summary_object(defs, v, rt),
        Summary::Text => Value::Object(filter(obj, td, |n, e| {
            matches!(n, "id" | "meta" | "text") || e.min > 0
        })),
        Summary::Data => Value::Object(filter(obj, td, |n, _| n != "text")),
    };
    tag_subsetted(&mut out);
    out
}

/// The `_elements` subset: the listed top-level elements plus id, meta and mandatory ones.
pub fn elements(v: &Value, names: &[&str]) -> Value {
    let defs = definitions();
    let Some(rt) = v.get("resourceType").and_then(Value::as_str) else {
        return v.clone();
    };
    let (Some(td), Some(obj)) = (defs.type_def(rt), v.as_object()) else {
        return v.clone();
    };
    let mut out = Value::Object(filter(obj, td, |_, e| {
        matches!(e.name.as_str(), "id" | "meta") || e.min > 0 || names.contains(&e.name.as_str())
    }));
    tag_subsetted(&mut out);
    out
}

/// Adds the `SUBSETTED` tag to `meta.tag`, creating `meta` in its canonical place if needed.
fn tag_subsetted(v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    if !obj.contains_key("meta") {
        let pos = obj
            .keys()
            .position(|k| !matches!(k.as_str(), "resourceType" | "id" | "_id"))
            .unwrap_or(obj.len());
        obj.shift_insert(pos, "meta".into(), Value::Object(Map::new()));
    }
    let Some(Value::Object(meta)) = obj.get_mut("meta") else {
        return;
    };
    let tag = json!({"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"});
    match meta.get_mut("tag") {
        Some(Value::Array(tags)) => {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        _ => {
            // `tag` is the last element of Meta, so appending keeps the canonical order.
            meta.insert("tag".into(), Value::Array(vec![tag]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_modes() {
        let p = json!({"resourceType": "Patient", "id": "a", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "name": [{"family": "F"}], "maritalStatus": {"text": "s"},
            "contact": [{"name": {"family": "C"}, "gender": "male"}], "link": [{"other": {"reference": "Patient/b"}, "type": "seealso"}]});
        let s = summary(&p, Summary::True);
        assert!(
            s.get("maritalStatus").is_none()
                && s.get("text").is_none()
                && s.get("contact").is_none()
        );
        assert_eq!(s["link"][0]["type"], "seealso");
        assert_eq!(s["meta"]["tag"][0]["code"], "SUBSETTED");
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.starts_with(r#"{"resourceType":"Patient","id":"a","meta":"#),
            "{text}"
        );
        let t = summary(&p, Summary::Text);
        assert!(t.get("text").is_some() && t.get("name").is_none());
        let d = summary(&p, Summary::Data);
        assert!(d.get("text").is_none() && d.get("maritalStatus").is_some());
    }

    #[test]
    fn elements_keeps_listed_and_mandatory() {
        let o = json!({"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "c"}, "valueQuantity": {"value": 1}, "subject": {"reference": "Patient/a"}});
        let e = elements(&o, &["value"]);
        assert!(
            e.get("valueQuantity").is_some()
                && e.get("status").is_some()
                && e.get("subject").is_none()
        );
    }
}
