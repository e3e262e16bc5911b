//! FHIR model access: navigating JSON resources by element name with the type information of
//! `flint_model::defs` (choice elements, `_name` primitive companions, contained resources),
//! converting primitives to system values and FHIR Quantities to system quantities.
//!
//! FHIR primitive types map to system types as FHIRPath on FHIR defines: `boolean` → Boolean;
//! `integer`, `positiveInt`, `unsignedInt` → Integer; `decimal` → Decimal; `date` → Date;
//! `dateTime`, `instant` → DateTime; `time` → Time; all others → String. A primitive whose text
//! does not parse as its type (invalid data) is seen as a String.

use crate::error::Error;
use crate::temporal::{Date, DateTime, Time};
use crate::value::{Item, Node, Quantity, decimal_from_text};
use flint_model::defs::{Definitions, Kind, TypeDef, definitions};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::LazyLock;

const UCUM: &str = "http://unitsofmeasure.org";

/// A node for a resource JSON object, typed by its `resourceType`.
pub(crate) fn resource_node(v: &Value) -> Node<'_> {
    let ty = v.get("resourceType").and_then(Value::as_str);
    match ty.and_then(|t| definitions().type_def(t).map(|d| (t, d))) {
        Some((t, d)) if d.kind == Kind::Resource => Node {
            value: Some(v),
            ext: None,
            ty: t,
            def: Some(d),
        },
        _ => Node {
            value: Some(v),
            ext: None,
            ty: "",
            def: None,
        },
    }
}

/// An element name with its precomputed `_name` companion key.
#[derive(Debug, Clone)]
pub(crate) struct Name {
    pub(crate) name: String,
    pub(crate) under: String,
    /// Byte offset of the name in the expression text (0 when not parsed).
    pub(crate) pos: usize,
}

impl Name {
    pub(crate) fn new(name: &str) -> Name {
        Name::at(name, 0)
    }

    /// The name as written at byte offset `pos`.
    pub(crate) fn at(name: &str, pos: usize) -> Name {
        Name {
            name: name.to_string(),
            under: format!("_{name}"),
            pos,
        }
    }
}

/// Pushes the children of `node` called `name` onto `out`.
pub(crate) fn navigate<'a>(
    node: &Node<'a>,
    name: &Name,
    out: &mut Vec<Item<'a>>,
) -> Result<(), Error> {
    let Some(obj) = node.value.and_then(Value::as_object) else {
        // A primitive: its `id` and `extension` live in the companion object.
        if let Some(ext) = node.ext.and_then(Value::as_object) {
            let ty = match name.name.as_str() {
                "extension" => "Extension",
                "id" => "string",
                _ => return Ok(()),
            };
            push_values(ext.get(&name.name), None, ty, out);
        }
        return Ok(());
    };
    let Some(def) = node.def else {
        if let Some(v) = obj.get(&name.name) {
            push_untyped(v, out);
        }
        return Ok(());
    };
    if name
        .name
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_uppercase)
    {
        // FHIR element names start in lower case; a capitalised name is a type name.
        return Ok(());
    }
    if let Some(el) = def.element(&name.name) {
        if el.choice {
            for (k, v) in obj {
                let Some(suffix) = k.strip_prefix(name.name.as_str()) else {
                    continue;
                };
                if let Some(t) = el.choice_type(suffix) {
                    let ext = if is_primitive_type(t) {
                        obj.get(&format!("_{k}"))
                    } else {
                        None
                    };
                    push_values(Some(v), ext, t, out);
                }
            }
            // Extension-only primitives of a choice element: `_valueString` without value.
            for (k, v) in obj {
                let Some(rest) = k.strip_prefix('_') else {
                    continue;
                };
                let Some(suffix) = rest.strip_prefix(name.name.as_str()) else {
                    continue;
                };
                if obj.contains_key(rest) {
                    continue;
                }
                if let Some(t) = el.choice_type(suffix) {
                    push_values(None, Some(v), t, out);
                }
            }
        } else {
            let ty = if name.name == "id" && def.kind == Kind::Resource {
                "id"
            } else {
                el.types.first().map(String::as_str).unwrap_or("")
            };
            let v = obj.get(&name.name);
            let ext = if is_primitive_type(ty) {
                obj.get(&name.under)
            } else {
                None
            };
            push_values(v, ext, ty, out);
        }
        return Ok(());
    }
    if let Some((el, _)) = def.resolve_property(&name.name)
        && el.choice
    {
        return Err(Error::semantic(format!(
            "'{}' is not an element of {}: use '{}' (optionally with ofType/as)",
            name.name, node.ty, el.name
        )));
    }
    Ok(())
}

fn is_primitive_type(t: &str) -> bool {
    t.as_bytes().first().is_some_and(u8::is_ascii_lowercase) && !t.contains('.')
}

/// Pushes nodes for a JSON member (single or array) and its companion, typed `ty`.
fn push_values<'a>(
    v: Option<&'a Value>,
    ext: Option<&'a Value>,
    ty: &'static str,
    out: &mut Vec<Item<'a>>,
) {
    let def = if ty == "Resource" {
        None
    } else {
        type_def_of(ty)
    };
    let make = |value: Option<&'a Value>, ext: Option<&'a Value>| -> Option<Item<'a>> {
        let value = value.filter(|v| !v.is_null());
        let ext = ext.filter(|v| !v.is_null());
        if value.is_none() && ext.is_none() {
            return None;
        }
        if ty == "Resource" {
            return value.map(|v| Item::Node(resource_node(v)));
        }
        Some(Item::Node(Node {
            value,
            ext,
            ty,
            def,
        }))
    };
    match (v, ext) {
        (Some(Value::Array(a)), e) => {
            let ea = e.and_then(Value::as_array);
            let n = a.len().max(ea.map_or(0, Vec::len));
            for i in 0..n {
                if let Some(item) = make(a.get(i), ea.and_then(|ea| ea.get(i))) {
                    out.push(item);
                }
            }
        }
        (None, Some(Value::Array(ea))) => {
            for e in ea {
                if let Some(item) = make(None, Some(e)) {
                    out.push(item);
                }
            }
        }
        (v, e) => {
            if let Some(item) = make(v, e) {
                out.push(item);
            }
        }
    }
}

fn push_untyped<'a>(v: &'a Value, out: &mut Vec<Item<'a>>) {
    match v {
        Value::Array(a) => {
            for x in a {
                if !x.is_null() {
                    out.push(Item::Node(untyped(x)));
                }
            }
        }
        Value::Null => {}
        x => out.push(Item::Node(untyped(x))),
    }
}

fn untyped(v: &Value) -> Node<'_> {
    if v.get("resourceType").is_some() {
        return resource_node(v);
    }
    Node {
        value: Some(v),
        ext: None,
        ty: "",
        def: None,
    }
}

/// Pushes all immediate children of `node` (JSON member order).
pub(crate) fn children<'a>(node: &Node<'a>, out: &mut Vec<Item<'a>>) {
    let Some(obj) = node.value.and_then(Value::as_object) else {
        if let Some(ext) = node.ext.and_then(Value::as_object) {
            push_values(ext.get("id"), None, "string", out);
            push_values(ext.get("extension"), None, "Extension", out);
        }
        return;
    };
    let Some(def) = node.def else {
        for (k, v) in obj {
            if k != "resourceType" {
                push_untyped(v, out);
            }
        }
        return;
    };
    for (k, v) in obj {
        if k == "resourceType" {
            continue;
        }
        if let Some(rest) = k.strip_prefix('_') {
            if obj.contains_key(rest) {
                continue;
            }
            if let Some((_, t)) = def.resolve_property(rest) {
                push_values(None, Some(v), t, out);
            }
            continue;
        }
        match def.resolve_property(k) {
            Some((_, t)) => {
                let t = if k == "id" && def.kind == Kind::Resource {
                    "id"
                } else {
                    t
                };
                let ext = if is_primitive_type(t) {
                    companion(obj, k)
                } else {
                    None
                };
                push_values(Some(v), ext, t, out);
            }
            None => push_untyped(v, out),
        }
    }
}

fn companion<'a>(obj: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    obj.get(&format!("_{k}"))
}

/// A hasher for pointer-sized keys (the keys are already well distributed).
#[derive(Default)]
struct PtrHasher(u64);

impl std::hash::Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type PtrMap = HashMap<usize, &'static TypeDef, BuildHasherDefault<PtrHasher>>;

/// Type definitions keyed by the address of the type-code strings in the element
/// definitions, so navigation resolves a child's type without hashing its name.
static TYPE_BY_CODE_PTR: LazyLock<PtrMap> = LazyLock::new(|| {
    let defs = definitions();
    let mut m = PtrMap::default();
    for name in defs.resource_types() {
        collect_codes(defs, name, &mut m, 0);
    }
    m
});

fn collect_codes(defs: &'static Definitions, name: &str, m: &mut PtrMap, depth: usize) {
    let Some(td) = defs.type_def(name) else {
        return;
    };
    if depth > 12 {
        return;
    }
    for el in &td.elements {
        for t in &el.types {
            let key = t.as_ptr() as usize;
            if m.contains_key(&key) {
                continue;
            }
            if let Some(d) = defs.type_def(t) {
                m.insert(key, d);
                collect_codes(defs, t, m, depth + 1);
            }
        }
    }
}

/// The definition of type `ty`, fast for type codes taken from element definitions.
fn type_def_of(ty: &'static str) -> Option<&'static TypeDef> {
    match TYPE_BY_CODE_PTR.get(&(ty.as_ptr() as usize)) {
        Some(d) => Some(d),
        None => definitions().type_def(ty),
    }
}

/// The system type a FHIR primitive type maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sys {
    Boolean,
    Integer,
    Decimal,
    String,
    Date,
    DateTime,
    Time,
}

pub(crate) fn primitive_system_type(ty: &str) -> Sys {
    match ty {
        "boolean" => Sys::Boolean,
        "integer" | "positiveInt" | "unsignedInt" | "integer64" => Sys::Integer,
        "decimal" => Sys::Decimal,
        "date" => Sys::Date,
        "dateTime" | "instant" => Sys::DateTime,
        "time" => Sys::Time,
        _ => Sys::String,
    }
}

/// The system value of a primitive node.
pub(crate) fn primitive_value<'a>(node: &Node<'a>) -> Option<Item<'a>> {
    let v = node.value?;
    if node.def.is_none() {
        return match v {
            Value::Bool(b) => Some(Item::Boolean(*b)),
            Value::String(s) => Some(Item::String(Cow::Borrowed(s))),
            Value::Number(n) => number_item(n.as_str(), true),
            _ => None,
        };
    }
    let text: &'a str = match v {
        Value::String(s) => s,
        Value::Bool(b) => return Some(Item::Boolean(*b)),
        Value::Number(n) => {
            return match primitive_system_type(node.ty) {
                Sys::Integer => number_item(n.as_str(), true),
                Sys::Decimal => decimal_from_text(n.as_str()).map(Item::Decimal),
                _ => Some(Item::String(Cow::Owned(n.as_str().to_string()))),
            };
        }
        _ => return None,
    };
    let item = match primitive_system_type(node.ty) {
        Sys::Date => Date::parse(text).map(Item::Date),
        Sys::DateTime => DateTime::parse(text).map(Item::DateTime),
        Sys::Time => Time::parse(text).map(Item::Time),
        Sys::Boolean => match text {
            "true" => Some(Item::Boolean(true)),
            "false" => Some(Item::Boolean(false)),
            _ => None,
        },
        Sys::Integer => text.parse().ok().map(Item::Integer),
        Sys::Decimal => decimal_from_text(text).map(Item::Decimal),
        Sys::String => None,
    };
    Some(item.unwrap_or(Item::String(Cow::Borrowed(text))))
}

fn number_item<'a>(s: &str, allow_int: bool) -> Option<Item<'a>> {
    if allow_int
        && !s.contains(['.', 'e', 'E'])
        && let Ok(i) = s.parse::<i64>()
    {
        return Some(Item::Integer(i));
    }
    decimal_from_text(s).map(Item::Decimal)
}

/// Whether FHIR type `ty` is `target` or derives from it, following the R4 type hierarchy
/// (`uuid` is a `uri`, `code` a `string`, `Age` a `Quantity`, `Patient` a `DomainResource`).
pub(crate) fn fhir_type_is(ty: &str, def: Option<&TypeDef>, target: &str) -> bool {
    if ty.is_empty() {
        return false;
    }
    if ty == target {
        return true;
    }
    match def {
        // R4's primitive hierarchy as its StructureDefinitions give it: `code`, `id` and
        // `markdown` derive from `string`, `url`, `canonical`, `oid` and `uuid` from `uri`...
        Some(d) if d.kind == Kind::PrimitiveType => definitions().is_subtype(ty, target),
        // R4 resources derive only from DomainResource or Resource.
        Some(d) if d.kind == Kind::Resource && !d.is_abstract => match target {
            "Resource" => true,
            "DomainResource" => d.base.as_deref() == Some("DomainResource"),
            _ => false,
        },
        _ => definitions().is_subtype(ty, target),
    }
}

/// The system quantity of a FHIR Quantity (or subtype) node.
pub(crate) fn quantity_of(node: &Node<'_>) -> Option<Quantity> {
    if !fhir_type_is(node.ty, node.def, "Quantity") {
        return None;
    }
    let obj = node.value?.as_object()?;
    let value = match obj.get("value")? {
        Value::Number(n) => decimal_from_text(n.as_str())?,
        Value::String(s) => decimal_from_text(s)?,
        _ => return None,
    };
    let code = obj.get("code").and_then(Value::as_str);
    let system = obj.get("system").and_then(Value::as_str);
    let unit = match (system, code) {
        (Some(UCUM), Some(c)) => c,
        (_, Some(c)) => c,
        _ => obj.get("unit").and_then(Value::as_str).unwrap_or("1"),
    };
    Some(Quantity {
        value,
        unit: unit.to_string(),
    })
}
