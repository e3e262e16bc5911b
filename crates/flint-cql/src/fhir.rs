//! FHIR R4 data as CQL values (`using FHIR version '4.0.1'`).
//!
//! A FHIR element is a [`FhirValue`]: the JSON of the element plus its FHIR type name from
//! `flint_model::defs::definitions()`. Property access (`O.code.coding`) reads the element's
//! JSON by the type's definition: choice elements (`O.value`) find the one present
//! `value[x]` key and take its type from the suffix (`valueQuantity` is a `Quantity`),
//! repeating elements are lists.
//!
//! The conversions FHIRHelpers 4.0.1 defines are implemented here natively rather than by
//! evaluating the FHIRHelpers library: primitives become System values as soon as they are
//! read (`P.birthDate` is a System.Date; `.value` of a System value is the value itself, so
//! `P.birthDate.value` also works), and the complex types FHIRHelpers converts (Quantity and
//! its profiles, Ratio, Coding, CodeableConcept, Period, Range) stay FHIR elements, so their
//! FHIR properties stay reachable, until a System operator, a comparison or a membership test
//! takes them ([`to_system`]). Native conversion avoids one user-defined function call (a
//! scope push, a body evaluation) per element read, keeps errors in one place, and needs no
//! overload resolution on FHIR types; explicit calls `FHIRHelpers.ToQuantity(x)` and the
//! like resolve to the same code when the caller did not hand FHIRHelpers over. Primitive
//! extensions (`_birthDate`) are not visible, and a primitive no longer knows its FHIR type
//! (`Patient.gender is FHIR.code` is false; `is String` is true).

use crate::error::{Error, err};
use crate::temporal::Tm;
use crate::value::{Code, Value};
use flint_model::defs::{Kind, definitions};
use rust_decimal::Decimal;
use std::str::FromStr;
use std::sync::Arc;

/// A FHIR element: its JSON and its FHIR type name (`Observation`, `CodeableConcept`,
/// `Patient.contact` for backbone elements).
///
/// An element read from a resource borrows from the resource's JSON instead of copying it:
/// it keeps the resource's `Arc` (the root) and points at its own node inside that tree, so
/// property access (`O.value`, `O.code.coding`) costs no allocation of JSON. The root is
/// never mutated while shared (only `&` access is ever taken through the `Arc`), so the
/// node stays valid for as long as the value holds the root.
#[derive(Clone)]
pub struct FhirValue {
    /// The JSON tree the element lives in (a resource, or the element itself).
    root: Arc<serde_json::Value>,
    /// The element's node inside `*root`.
    node: std::ptr::NonNull<serde_json::Value>,
    /// The FHIR type name, as the definitions spell it.
    pub ty: &'static str,
}

// SAFETY: `node` points into the heap tree owned by `root`, which is immutable while shared
// and lives as long as this value; `serde_json::Value` is `Send + Sync`, so sharing or
// sending a read-only pointer into it is as safe as sharing the `Arc` itself.
unsafe impl Send for FhirValue {}
// SAFETY: see `Send`.
unsafe impl Sync for FhirValue {}

impl FhirValue {
    /// An element of FHIR type `ty` whose JSON is the whole of `json`.
    pub fn new(json: Arc<serde_json::Value>, ty: &'static str) -> FhirValue {
        let node = std::ptr::NonNull::from(&*json);
        FhirValue {
            root: json,
            node,
            ty,
        }
    }

    /// A resource as a CQL value, typed by its `resourceType`; `None` when that is not a
    /// known resource type.
    pub fn resource(json: serde_json::Value) -> Option<FhirValue> {
        Self::shared(Arc::new(json))
    }

    /// [`FhirValue::resource`] of JSON shared with others (e.g. a cache of parsed resources).
    pub fn shared(json: Arc<serde_json::Value>) -> Option<FhirValue> {
        let ty = resource_type_of(&json)?;
        Some(FhirValue::new(json, ty))
    }

    /// The element's JSON.
    pub fn json(&self) -> &serde_json::Value {
        // SAFETY: `node` points into `*self.root` (set by `new` or by `child` from a node of
        // the same tree), which `self.root` keeps alive and nobody mutates.
        unsafe { self.node.as_ref() }
    }

    /// An element of type `ty` inside this one's tree; `json` must be a node reached from
    /// [`FhirValue::json`] of `self`.
    fn child(&self, json: &serde_json::Value, ty: &'static str) -> FhirValue {
        FhirValue {
            root: self.root.clone(),
            node: std::ptr::NonNull::from(json),
            ty,
        }
    }
}

impl PartialEq for FhirValue {
    fn eq(&self, other: &FhirValue) -> bool {
        self.ty == other.ty && (self.node == other.node || self.json() == other.json())
    }
}

impl std::fmt::Debug for FhirValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirValue")
            .field("json", self.json())
            .field("ty", &self.ty)
            .finish()
    }
}

/// The definitions' spelling of the resource type of `json` (`'static`).
fn resource_type_of(json: &serde_json::Value) -> Option<&'static str> {
    static TYPES: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    let rt = json.get("resourceType")?.as_str()?;
    let types = TYPES.get_or_init(|| {
        definitions()
            .resource_types()
            .iter()
            .map(String::as_str)
            .collect()
    });
    types.get(rt).copied()
}

/// A resource's JSON as a CQL value (a FHIR element typed by its `resourceType`).
pub fn resource_value(json: serde_json::Value) -> Result<Value, Error> {
    match FhirValue::resource(json) {
        Some(f) => Ok(Value::Fhir(f)),
        None => err("not a FHIR resource of a known type"),
    }
}

/// Wraps the JSON of an element of FHIR type `ty` found inside `parent`: primitives become
/// System values, other elements borrow `parent`'s tree.
fn wrap(parent: &FhirValue, json: &serde_json::Value, ty: &'static str) -> Value {
    let defs = definitions();
    if defs.is_primitive(ty) {
        return primitive(json, ty);
    }
    let ty = if matches!(ty, "Resource" | "DomainResource") {
        resource_type_of(json).unwrap_or(ty)
    } else {
        ty
    };
    Value::Fhir(parent.child(json, ty))
}

/// The System value of a FHIR primitive's JSON value (FHIRHelpers `ToString`, `ToDate`, ...);
/// null when it does not parse (stored resources were validated, so only hand-made ones).
fn primitive(json: &serde_json::Value, ty: &str) -> Value {
    use serde_json::Value as J;
    match (ty, json) {
        ("boolean", J::Bool(b)) => Value::Bool(*b),
        ("integer" | "positiveInt" | "unsignedInt", J::Number(n)) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Value::Int)
            .unwrap_or(Value::Null),
        ("decimal", J::Number(n)) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .map(Value::Dec)
            .unwrap_or(Value::Null),
        ("date", J::String(s)) => match Tm::parse_datetime(s) {
            Some((t, false)) => Value::Date(t),
            _ => Value::Null,
        },
        ("dateTime" | "instant", J::String(s)) => match Tm::parse_datetime(s) {
            Some((t, _)) => Value::DateTime(t),
            None => Value::Null,
        },
        ("time", J::String(s)) => Tm::parse_time(s).map(Value::Time).unwrap_or(Value::Null),
        (_, J::String(s)) => Value::Str(s.clone()),
        _ => Value::Null,
    }
}

/// Property `n` of a FHIR element: a System value for primitives, a FHIR element, a list for
/// repeating elements, null when absent; an error when the type has no such element.
pub fn member(f: &FhirValue, n: &str) -> Result<Value, Error> {
    let defs = definitions();
    let Some(td) = defs.type_def(f.ty) else {
        return err(format!("unknown FHIR type {}", f.ty));
    };
    let Some(obj) = f.json().as_object() else {
        return Ok(Value::Null);
    };
    if n == "resourceType" && td.kind == Kind::Resource {
        return Ok(Value::Str(f.ty.to_string()));
    }
    let Some(e) = td.element(n) else {
        return err(format!("FHIR type {} has no element {n}", f.ty));
    };
    let found = if e.choice {
        obj.iter().find_map(|(k, v)| {
            let suffix = k.strip_prefix(n)?;
            e.choice_type(suffix).map(|t| (v, t))
        })
    } else {
        obj.get(n).zip(e.types.first().map(String::as_str))
    };
    let Some((v, ty)) = found else {
        return Ok(if e.is_array() {
            Value::List(Vec::new())
        } else {
            Value::Null
        });
    };
    Ok(match v {
        serde_json::Value::Array(xs) => Value::List(
            xs.iter()
                .map(|x| wrap(f, x, ty))
                .filter(|x| !x.is_null())
                .collect(),
        ),
        v => wrap(f, v, ty),
    })
}

/// The present properties of a FHIR element (name and value as [`member`] reads them), for
/// the identifiers of `sort by`.
pub fn properties(f: &FhirValue) -> Result<Vec<(String, Value)>, Error> {
    let Some(td) = definitions().type_def(f.ty) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in &td.elements {
        let v = member(f, &e.name)?;
        if !v.is_null() && v != Value::List(Vec::new()) {
            out.push((e.name.clone(), v));
        }
    }
    Ok(out)
}

/// Refuses a library whose `using FHIR` names a version other than 4.0.1 (the only model
/// the definitions describe).
pub fn check_model(lib: &crate::ast::Library) -> Result<(), Error> {
    for (m, v) in &lib.usings {
        if m == "FHIR" && v.as_deref().is_some_and(|v| v != "4.0.1") {
            return err(format!(
                "using FHIR version '{}': only 4.0.1 is supported",
                v.as_deref().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// Whether FHIR type `ty` is `name` or derives from it (`Age` is a `Quantity`).
pub fn is_a(ty: &str, name: &str) -> bool {
    ty == name || definitions().is_subtype(ty, name)
}

fn str_at(j: &serde_json::Value, k: &str) -> Option<String> {
    j.get(k).and_then(|v| v.as_str()).map(str::to_string)
}

fn code_of(j: &serde_json::Value) -> Code {
    Code {
        code: str_at(j, "code").unwrap_or_default(),
        system: str_at(j, "system"),
        version: str_at(j, "version"),
        display: str_at(j, "display"),
    }
}

/// FHIRHelpers `ToCalendarUnit`.
fn calendar_unit(u: &str) -> &str {
    match u {
        "ms" => "millisecond",
        "s" => "second",
        "min" => "minute",
        "h" => "hour",
        "d" => "day",
        "wk" => "week",
        "mo" => "month",
        "a" => "year",
        u => u,
    }
}

/// FHIRHelpers `ToQuantity` (a comparator or a non-UCUM system is an error, as there).
fn quantity(j: &serde_json::Value) -> Result<Value, Error> {
    let v = match j.get("value") {
        Some(v) => primitive(v, "decimal"),
        None => return Ok(Value::Null),
    };
    let Value::Dec(d) = v else {
        return Ok(Value::Null);
    };
    if j.get("comparator").is_some() {
        return err(
            "FHIR Quantity value has a comparator and cannot be converted to a System.Quantity value",
        );
    }
    match j.get("system").and_then(|s| s.as_str()) {
        None
        | Some("http://unitsofmeasure.org")
        | Some("http://hl7.org/fhirpath/CodeSystem/calendar-units") => {}
        Some(s) => {
            return err(format!(
                "Invalid FHIR Quantity code: {} ({s}|{})",
                str_at(j, "unit").unwrap_or_default(),
                str_at(j, "code").unwrap_or_default()
            ));
        }
    }
    let unit = str_at(j, "code")
        .or_else(|| str_at(j, "unit"))
        .unwrap_or_else(|| "1".into());
    Ok(Value::Quantity(d, calendar_unit(&unit).to_string()))
}

/// The System value FHIRHelpers converts a FHIR element to (Quantity, Ratio, Coding,
/// CodeableConcept, Period, Range); other values (resources, other types) unchanged, lists
/// element by element.
pub fn to_system(v: Value) -> Result<Value, Error> {
    match v {
        Value::Fhir(f) => convert(&f),
        Value::List(xs) if xs.iter().any(|x| matches!(x, Value::Fhir(_))) => Ok(Value::List(
            xs.into_iter().map(to_system).collect::<Result<_, _>>()?,
        )),
        v => Ok(v),
    }
}

fn convert(f: &FhirValue) -> Result<Value, Error> {
    let j = f.json();
    let ty = f.ty;
    if is_a(ty, "Quantity") {
        return quantity(j);
    }
    Ok(match ty {
        "Coding" => Value::Code(code_of(j)),
        "CodeableConcept" => Value::Concept(
            j.get("coding")
                .and_then(|c| c.as_array())
                .map(|cs| cs.iter().map(code_of).collect())
                .unwrap_or_default(),
            str_at(j, "text"),
        ),
        "Period" => {
            let at = |k| {
                j.get(k)
                    .map(|x| primitive(x, "dateTime"))
                    .unwrap_or(Value::Null)
            };
            let (s, e) = (at("start"), at("end"));
            // FHIRHelpers: a missing start makes the interval open at its start.
            let low_closed = !s.is_null();
            Value::Interval(Box::new(s), low_closed, Box::new(e), true)
        }
        "Range" => {
            let at = |k| j.get(k).map(quantity).unwrap_or(Ok(Value::Null));
            Value::Interval(Box::new(at("low")?), true, Box::new(at("high")?), true)
        }
        "Ratio" => {
            let at = |k| j.get(k).map(quantity).unwrap_or(Ok(Value::Null));
            let (n, d) = (at("numerator")?, at("denominator")?);
            if n.is_null() || d.is_null() {
                Value::Null
            } else {
                Value::Ratio(Box::new(n), Box::new(d))
            }
        }
        _ => Value::Fhir(f.clone()),
    })
}

/// The FHIRHelpers 4.0.1 functions answered natively (`FHIRHelpers.ToQuantity(x)` when no
/// FHIRHelpers library was handed to the engine): the conversion of the one argument.
pub fn helper(name: &str, arg: Value) -> Option<Result<Value, Error>> {
    match name {
        "ToQuantity"
        | "ToQuantityIgnoringComparator"
        | "ToCode"
        | "ToConcept"
        | "ToInterval"
        | "ToRatio"
        | "ToString"
        | "ToBoolean"
        | "ToDate"
        | "ToDateTime"
        | "ToTime"
        | "ToDecimal"
        | "ToInteger" => {
            if name == "ToQuantityIgnoringComparator"
                && let Value::Fhir(f) = &arg
            {
                let mut j = f.json().clone();
                if let Some(o) = j.as_object_mut() {
                    o.remove("comparator");
                }
                return Some(quantity(&j));
            }
            Some(to_system(arg))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn properties_and_conversions() {
        let o = FhirValue::resource(json!({"resourceType": "Observation", "id": "o1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "effectivePeriod": {"start": "2020-01-01T10:00:00Z"},
            "valueQuantity": {"value": 120.5, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}))
        .unwrap();
        assert_eq!(member(&o, "status").unwrap(), Value::Str("final".into()));
        let Value::Fhir(v) = member(&o, "value").unwrap() else {
            panic!()
        };
        assert_eq!(v.ty, "Quantity");
        assert_eq!(
            to_system(Value::Fhir(v)).unwrap().to_string(),
            "120.5 'mm[Hg]'"
        );
        let Value::Fhir(c) = member(&o, "code").unwrap() else {
            panic!()
        };
        let Value::List(codings) = member(&c, "coding").unwrap() else {
            panic!()
        };
        assert_eq!(codings.len(), 1);
        let Value::Fhir(p) = member(&o, "effective").unwrap() else {
            panic!()
        };
        assert_eq!(p.ty, "Period");
        assert!(matches!(
            to_system(Value::Fhir(p)).unwrap(),
            Value::Interval(_, true, h, true) if h.is_null()
        ));
        assert!(member(&o, "nonsense").is_err());
    }
}
