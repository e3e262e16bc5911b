//! Structural validation against the R4 definitions, producing the canonical form.
//!
//! Checked: `resourceType` present and a concrete resource type; every property a known element
//! (choice elements with a valid type suffix, `_name` companions only for primitives); JSON
//! types per primitive type; arrays exactly where the maximum cardinality is `*`; no empty
//! objects, arrays or strings; `null` only inside primitive arrays aligned with a companion;
//! primitive values against their type's format (the definitions' regexes, integer ranges,
//! `instant` with seconds and zone, ids). Not checked: invariants, required bindings,
//! minimum cardinalities (the REST layer accepts resources missing required elements, as Blaze
//! does).

use crate::ModelError;
use crate::defs::{Definitions, ElementDef, Kind, TypeDef, definitions};
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Maximum nesting depth of resources and elements (deeper input is rejected, not recursed).
const MAX_DEPTH: usize = 64;

/// Where a value sits (`Observation.code.coding[0]`), formatted only when an error names it.
#[derive(Clone, Copy)]
enum Path<'a> {
    /// A path given as text.
    Text(&'a str),
    /// Element `name` of the value at the parent path.
    Field(&'a Path<'a>, &'a str),
    /// Item `i` of the array at the parent path.
    Item(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Text(s) => f.write_str(s),
            Path::Field(p, name) => write!(f, "{p}.{name}"),
            Path::Item(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

impl From<Path<'_>> for String {
    fn from(p: Path<'_>) -> String {
        p.to_string()
    }
}

/// Validates a parsed resource and returns it in canonical form.
pub fn resource(v: Value) -> Result<Value, ModelError> {
    let defs = definitions();
    validate_resource(defs, v, None, 0)
}

fn type_name_err(rt: &str) -> String {
    format!("Unknown resource type `{rt}`.")
}

/// Validates a (possibly nested) resource; `path` is where it sits (None at the root).
fn validate_resource(
    defs: &Definitions,
    v: Value,
    path: Option<Path<'_>>,
    depth: usize,
) -> Result<Value, ModelError> {
    let here = |p: &str| match path {
        Some(base) => format!("{base}.{p}"),
        None => p.to_string(),
    };
    let Value::Object(mut obj) = v else {
        return Err(ModelError::at(
            "Expected a resource (a JSON object).",
            path.unwrap_or(Path::Text("Resource")),
        ));
    };
    let rt = match obj.shift_remove("resourceType") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(ModelError::at(
                "`resourceType` must be a string.",
                here("resourceType"),
            ));
        }
        None => {
            return Err(ModelError::at(
                "Missing `resourceType`.",
                path.unwrap_or(Path::Text("resourceType")),
            ));
        }
    };
    if !defs.is_resource_type(&rt) {
        return Err(ModelError::at(type_name_err(&rt), here("resourceType")));
    }
    let td = defs
        .type_def(&rt)
        .ok_or_else(|| ModelError::at(type_name_err(&rt), here("resourceType")))?;
    let rt_path = rt.clone();
    let base = path.unwrap_or(Path::Text(&rt_path));
    if let Some(id) = obj.get("id") {
        match id {
            Value::String(s) if crate::is_valid_id(s) => {}
            _ => {
                return Err(ModelError::at(
                    "Invalid resource id: ids are 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'.",
                    Path::Field(&base, "id"),
                ));
            }
        }
    }
    let mut out = Map::with_capacity(obj.len() + 1);
    out.insert("resourceType".into(), Value::String(rt));
    validate_object(defs, obj, td, base, depth, &mut out)?;
    Ok(Value::Object(out))
}

struct Slot<'t> {
    /// The element's property name (without `_`).
    key: String,
    value: Option<Value>,
    companion: Option<Value>,
    ty: &'t str,
}

/// Validates the properties of an object of type `td` into `out`, in canonical order.
fn validate_object(
    defs: &Definitions,
    obj: Map<String, Value>,
    td: &TypeDef,
    path: Path<'_>,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ModelError> {
    if depth > MAX_DEPTH {
        return Err(ModelError::at("The resource is nested too deeply.", path));
    }
    // One slot per element index; a choice element takes one concrete key.
    let mut slots: Vec<Option<Slot>> = Vec::new();
    slots.resize_with(td.elements.len(), || None);
    for (key, value) in obj {
        let (name, companion) = match key.strip_prefix('_') {
            Some(n) => (n, true),
            None => (key.as_str(), false),
        };
        let Some((idx, elem, ty)) = resolve(td, name) else {
            return Err(ModelError::at(
                format!("Unknown element `{key}`."),
                Path::Field(&path, &key),
            ));
        };
        if companion && !defs.is_primitive(ty) {
            return Err(ModelError::at(
                format!("Unknown element `{key}`: only primitive elements have `_` companions."),
                Path::Field(&path, &key),
            ));
        }
        if let Some(slot) = &slots[idx]
            && slot.key != name
        {
            return Err(ModelError::at(
                format!(
                    "Choice element `{}[x]` has more than one value (`{}` and `{name}`).",
                    elem.name, slot.key
                ),
                Path::Field(&path, name),
            ));
        }
        let slot = slots[idx].get_or_insert_with(|| Slot {
            key: String::new(),
            value: None,
            companion: None,
            ty,
        });
        if companion {
            if slot.key.is_empty() {
                slot.key = name.to_string();
            }
            slot.companion = Some(value);
        } else {
            slot.key = key;
            slot.value = Some(value);
        }
    }
    for (slot, elem) in slots.into_iter().zip(&td.elements) {
        let Some(slot) = slot else { continue };
        let p = Path::Field(&path, &slot.key);
        let (value, companion) =
            validate_element(defs, elem, slot.ty, slot.value, slot.companion, p, depth)?;
        let companion_key = companion.as_ref().map(|_| format!("_{}", slot.key));
        if let Some(v) = value {
            out.insert(slot.key, v);
        }
        if let (Some(k), Some(c)) = (companion_key, companion) {
            out.insert(k, c);
        }
    }
    if out.is_empty()
        || (out.len() == 1 && out.contains_key("resourceType") && td.kind != Kind::Resource)
    {
        return Err(ModelError::at("Empty objects are not allowed.", path));
    }
    Ok(())
}

/// Finds the element a property name denotes: `(index, element, concrete type)`.
fn resolve<'a>(td: &'a TypeDef, name: &str) -> Option<(usize, &'a ElementDef, &'a str)> {
    if let Some(i) = td.elements.iter().position(|e| e.name == name) {
        let e = &td.elements[i];
        if e.choice {
            return None;
        }
        return e.types.first().map(|t| (i, e, t.as_str()));
    }
    td.elements
        .iter()
        .enumerate()
        .filter(|(_, e)| e.choice)
        .find_map(|(i, e)| {
            let suffix = name.strip_prefix(e.name.as_str())?;
            e.choice_type(suffix).map(|t| (i, e, t))
        })
}

type Pair = (Option<Value>, Option<Value>);

fn validate_element(
    defs: &Definitions,
    elem: &ElementDef,
    ty: &str,
    value: Option<Value>,
    companion: Option<Value>,
    path: Path<'_>,
    depth: usize,
) -> Result<Pair, ModelError> {
    let primitive = defs.is_primitive(ty);
    if elem.is_array() {
        let values = match value {
            Some(Value::Array(a)) => Some(a),
            Some(_) => {
                return Err(ModelError::at(
                    format!("Element `{}` repeats and must be an array.", elem.name),
                    path,
                ));
            }
            None => None,
        };
        let companions = match companion {
            Some(Value::Array(a)) => Some(a),
            Some(_) => {
                return Err(ModelError::at(
                    "A repeating primitive's `_` companion must be an array.",
                    path,
                ));
            }
            None => None,
        };
        let n = values
            .as_ref()
            .map_or(0, Vec::len)
            .max(companions.as_ref().map_or(0, Vec::len));
        if n == 0 {
            return Err(ModelError::at("Empty arrays are not allowed.", path));
        }
        if let (Some(v), Some(c)) = (&values, &companions)
            && v.len() != c.len()
        {
            return Err(ModelError::at(
                "A primitive array and its `_` companion must have the same length.",
                path,
            ));
        }
        let mut vs = values.map(|v| v.into_iter().map(Some).collect::<Vec<_>>());
        let mut cs = companions.map(|c| c.into_iter().map(Some).collect::<Vec<_>>());
        let mut out_v = Vec::with_capacity(n);
        let mut out_c = Vec::with_capacity(n);
        let mut any_v = false;
        let mut any_c = false;
        for i in 0..n {
            let p = Path::Item(&path, i);
            let v = vs
                .as_mut()
                .and_then(|v| v[i].take())
                .filter(|v| !v.is_null());
            let c = cs
                .as_mut()
                .and_then(|c| c[i].take())
                .filter(|c| !c.is_null());
            if !primitive {
                if vs.is_none() {
                    return Err(ModelError::at("Unexpected `_` companion.", p));
                }
                let Some(v) = v else {
                    return Err(ModelError::at("`null` is not allowed here.", p));
                };
                out_v.push(validate_value(defs, ty, v, p, depth)?);
                any_v = true;
                continue;
            }
            if v.is_none() && c.is_none() {
                return Err(ModelError::at(
                    "`null` needs a value in the other array of a primitive and its `_` companion.",
                    p,
                ));
            }
            match v {
                Some(v) => {
                    out_v.push(validate_primitive(defs, ty, v, p)?);
                    any_v = true;
                }
                None => out_v.push(Value::Null),
            }
            match c {
                Some(c) => {
                    out_c.push(validate_companion(defs, c, p, depth)?);
                    any_c = true;
                }
                None => out_c.push(Value::Null),
            }
        }
        return Ok((
            any_v.then_some(Value::Array(out_v)),
            any_c.then_some(Value::Array(out_c)),
        ));
    }
    if matches!(value, Some(Value::Array(_))) || matches!(companion, Some(Value::Array(_))) {
        return Err(ModelError::at(
            format!(
                "Element `{}` does not repeat and must not be an array.",
                elem.name
            ),
            path,
        ));
    }
    let value = match value {
        Some(Value::Null) => return Err(ModelError::at("`null` is not allowed here.", path)),
        Some(v) if primitive => Some(validate_primitive(defs, ty, v, path)?),
        Some(v) => Some(validate_value(defs, ty, v, path, depth)?),
        None => None,
    };
    let companion = match companion {
        Some(c) => Some(validate_companion(defs, c, path, depth)?),
        None => None,
    };
    Ok((value, companion))
}

/// Validates the `_name` companion of a primitive: an Element (id and extensions).
fn validate_companion(
    defs: &Definitions,
    c: Value,
    path: Path<'_>,
    depth: usize,
) -> Result<Value, ModelError> {
    let td = defs
        .type_def("Element")
        .ok_or_else(|| ModelError::new("definitions lack Element"))?;
    let Value::Object(obj) = c else {
        return Err(ModelError::at(
            "A primitive's `_` companion must be an object.",
            path,
        ));
    };
    let mut out = Map::new();
    validate_object(defs, obj, td, path, depth + 1, &mut out)?;
    Ok(Value::Object(out))
}

/// Validates a complex value (or nested resource) of type `ty`.
fn validate_value(
    defs: &Definitions,
    ty: &str,
    v: Value,
    path: Path<'_>,
    depth: usize,
) -> Result<Value, ModelError> {
    if ty == "Resource" {
        return validate_resource(defs, v, Some(path), depth + 1);
    }
    let Some(td) = defs.type_def(ty) else {
        return Err(ModelError::at(format!("Unknown type `{ty}`."), path));
    };
    let Value::Object(obj) = v else {
        return Err(ModelError::at(
            format!("Expected an object of type `{ty}`."),
            path,
        ));
    };
    let mut out = Map::with_capacity(obj.len());
    validate_object(defs, obj, td, path, depth + 1, &mut out)?;
    Ok(Value::Object(out))
}

fn regexes() -> &'static HashMap<String, Regex> {
    static R: OnceLock<HashMap<String, Regex>> = OnceLock::new();
    R.get_or_init(|| {
        let defs = definitions();
        defs.resource_types(); // force load
        let mut m = HashMap::new();
        for name in [
            "base64Binary",
            "boolean",
            "canonical",
            "code",
            "date",
            "dateTime",
            "decimal",
            "id",
            "instant",
            "integer",
            "markdown",
            "oid",
            "positiveInt",
            "string",
            "time",
            "unsignedInt",
            "uri",
            "url",
            "uuid",
        ] {
            if let Some(re) = defs.type_def(name).and_then(|t| t.regex.as_deref())
                && let Ok(r) = Regex::new(&format!("^(?:{re})$"))
            {
                m.insert(name.to_string(), r);
            }
        }
        m
    })
}

/// Validates a primitive value of type `ty` and returns it unchanged.
fn validate_primitive(
    defs: &Definitions,
    ty: &str,
    v: Value,
    path: Path<'_>,
) -> Result<Value, ModelError> {
    let bad = |what: &str| ModelError::at(format!("Invalid {ty} value: {what}."), path);
    match ty {
        "boolean" => {
            if !v.is_boolean() {
                return Err(bad("expected true or false"));
            }
        }
        "integer" | "positiveInt" | "unsignedInt" => {
            let Value::Number(n) = &v else {
                return Err(bad("expected a JSON number"));
            };
            let Some(i) = n.as_i64() else {
                return Err(bad(&format!("`{n}` is not an integer")));
            };
            let ok = match ty {
                "positiveInt" => (1..=i32::MAX as i64).contains(&i),
                "unsignedInt" => (0..=i32::MAX as i64).contains(&i),
                _ => (i32::MIN as i64..=i32::MAX as i64).contains(&i),
            };
            if !ok {
                return Err(bad(&format!("`{i}` is out of range")));
            }
        }
        "decimal" => {
            let Value::Number(n) = &v else {
                return Err(bad("expected a JSON number"));
            };
            let s = n.to_string();
            if s.len() > 64 {
                return Err(bad("too many digits"));
            }
        }
        "xhtml" => {
            let Value::String(s) = &v else {
                return Err(bad("expected a string"));
            };
            if has_control_chars(s) {
                return Err(bad("control characters are not allowed"));
            }
            check_xhtml(s).map_err(|m| bad(&m))?;
        }
        _ => {
            let Value::String(s) = &v else {
                return Err(bad("expected a JSON string"));
            };
            if s.is_empty() {
                return Err(bad("empty strings are not allowed"));
            }
            if has_control_chars(s) {
                return Err(bad(
                    "control characters other than tab, CR and LF are not allowed",
                ));
            }
            if !defs.is_primitive(ty) {
                return Err(bad("unknown primitive type"));
            }
            // `string` and `markdown` allow any characters (their definitions' regexes are
            // written for ECMAScript and reject Unicode spaces that real data contains).
            if !matches!(ty, "string" | "markdown")
                && let Some(re) = regexes().get(ty)
                && !re.is_match(s)
            {
                return Err(bad(&format!("`{}` does not match the format", truncate(s))));
            }
            if ty == "instant" && !(s.len() > 10 && s.contains(':')) {
                return Err(bad("an instant needs a time with seconds and a zone"));
            }
        }
    }
    Ok(v)
}

/// Whether `s` has characters below U+0020 other than tab, CR and LF (XML cannot carry them).
fn has_control_chars(s: &str) -> bool {
    s.bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n'))
}

/// Checks that a narrative is one well-formed XHTML `div` element (no DOCTYPE, nothing after).
fn check_xhtml(s: &str) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(s);
    let mut depth = 0usize;
    let mut seen_root = false;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                if depth == 0 {
                    if seen_root || e.local_name().as_ref() != b"div" {
                        return Err("narrative must be one XHTML <div> element".into());
                    }
                    seen_root = true;
                }
                depth += 1;
            }
            Ok(Event::Empty(e)) => {
                if depth == 0 {
                    if seen_root || e.local_name().as_ref() != b"div" {
                        return Err("narrative must be one XHTML <div> element".into());
                    }
                    seen_root = true;
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) => break,
            Ok(Event::DocType(_)) => return Err("DOCTYPE is not allowed in a narrative".into()),
            Ok(Event::Text(t)) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err("text outside the narrative <div>".into());
            }
            Ok(_) => {}
            Err(e) => return Err(format!("narrative is not well-formed XHTML ({e})")),
        }
    }
    if !seen_root || depth != 0 {
        return Err("narrative must be one well-formed XHTML <div> element".into());
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> (String, Option<String>) {
        let e = resource(v).unwrap_err();
        (e.message, e.expression)
    }

    #[test]
    fn canonical_order_and_companions() {
        let v = resource(json!({"gender": "male", "_birthDate": {"extension": [{"valueBoolean": true, "url": "u"}]}, "birthDate": "2000", "id": "a", "resourceType": "Patient"})).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"resourceType":"Patient","id":"a","gender":"male","birthDate":"2000","_birthDate":{"extension":[{"url":"u","valueBoolean":true}]}}"#
        );
    }

    #[test]
    fn decimals_keep_their_text() {
        let v: Value = serde_json::from_str(r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50}}"#).unwrap();
        let v = resource(v).unwrap();
        assert!(serde_json::to_string(&v).unwrap().contains("1.50"));
    }

    #[test]
    fn rejections_inside_contained_resources_and_choices_name_the_element() {
        assert_eq!(
            err(json!({"resourceType": "Patient",
                "contained": [{"resourceType": "Organization", "id": "o", "foo": 1}]}))
            .1
            .as_deref(),
            Some("Patient.contained[0].foo")
        );
        assert_eq!(
            err(
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueString": "a", "valueBoolean": true})
            )
            .1
            .as_deref(),
            Some("Observation.valueBoolean")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "_gender": {"foo": 1}}))
                .1
                .as_deref(),
            Some("Patient.gender.foo")
        );
    }

    #[test]
    fn rejections_name_the_element() {
        assert_eq!(
            err(json!({"resourceType": "Patient", "foo": 1}))
                .1
                .as_deref(),
            Some("Patient.foo")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "name": {"family": "x"}}))
                .1
                .as_deref(),
            Some("Patient.name")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "gender": ["male"]}))
                .1
                .as_deref(),
            Some("Patient.gender")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "active": "true"}))
                .1
                .as_deref(),
            Some("Patient.active")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "birthDate": "2000-13"}))
                .1
                .as_deref(),
            Some("Patient.birthDate")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "name": [{"given": ["a", 1]}]}))
                .1
                .as_deref(),
            Some("Patient.name[0].given[1]")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "name": []}))
                .1
                .as_deref(),
            Some("Patient.name")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "name": [{}]}))
                .1
                .as_deref(),
            Some("Patient.name[0]")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "gender": ""}))
                .1
                .as_deref(),
            Some("Patient.gender")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "id": "a_b"}))
                .1
                .as_deref(),
            Some("Patient.id")
        );
        assert_eq!(
            err(json!({"resourceType": "Observation", "valueFoo": 1}))
                .1
                .as_deref(),
            Some("Observation.valueFoo")
        );
        assert!(
            err(json!({"resourceType": "Observation", "valueString": "a", "valueBoolean": true}))
                .0
                .contains("more than one")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "multipleBirthInteger": 1.5}))
                .1
                .as_deref(),
            Some("Patient.multipleBirthInteger")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "_gender": "x"}))
                .1
                .as_deref(),
            Some("Patient.gender")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "_name": {}}))
                .1
                .as_deref(),
            Some("Patient._name")
        );
        assert_eq!(
            err(json!({"resourceType": "Nope"})).1.as_deref(),
            Some("resourceType")
        );
        assert_eq!(
            err(json!({"resourceType": "DomainResource"})).1.as_deref(),
            Some("resourceType")
        );
        assert!(err(json!({"name": []})).0.contains("resourceType"));
        assert_eq!(err(json!({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {"resourceType": "Patient", "x": 1}}]})).1.as_deref(), Some("Bundle.entry[0].resource.x"));
        assert_eq!(
            err(json!({"resourceType": "Observation", "issued": "2020-01-01"}))
                .1
                .as_deref(),
            Some("Observation.issued")
        );
        assert_eq!(
            err(json!({"resourceType": "Patient", "gender": null}))
                .1
                .as_deref(),
            Some("Patient.gender")
        );
    }

    #[test]
    fn primitive_arrays_with_nulls_and_companions() {
        let ok = resource(
            json!({"resourceType": "Patient", "name": [{"given": ["a", null], "_given": [null, {"id": "x"}]}]}),
        );
        assert!(ok.is_ok(), "{ok:?}");
        assert!(
            resource(json!({"resourceType": "Patient", "name": [{"given": ["a", null]}]})).is_err()
        );
        assert!(resource(json!({"resourceType": "Patient", "name": [{"given": ["a"], "_given": [null, {"id": "x"}]}]})).is_err());
    }

    #[test]
    fn contained_and_nested_resources() {
        let v = resource(json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "name": "x"}], "managingOrganization": {"reference": "#o"}})).unwrap();
        assert_eq!(v["contained"][0]["resourceType"], "Organization");
        assert_eq!(err(json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "nam": "x"}]})).1.as_deref(), Some("Patient.contained[0].nam"));
    }
}
