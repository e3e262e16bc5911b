//! The items FHIRPath collections hold: nodes of the input resource tree (borrowed, with their
//! FHIR type) and computed system values (Boolean, Integer, Decimal, String, Date, DateTime,
//! Time, Quantity), plus the type descriptions `type()` returns.
//!
//! A [`Node`] borrows the JSON of an element: for a primitive element the JSON scalar and the
//! `_name` companion object holding its `id`/`extension`, either of which may be absent. Its
//! location in the input tree is found on demand by [`Node::location`], so navigation costs no
//! path bookkeeping.

use crate::model;
use crate::temporal::{Date, DateTime, Time};
use flint_model::defs::{Kind, TypeDef};
use rust_decimal::Decimal;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// A node of the input tree: a JSON element with its FHIR type.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub(crate) value: Option<&'a Value>,
    pub(crate) ext: Option<&'a Value>,
    pub(crate) ty: &'a str,
    pub(crate) def: Option<&'static TypeDef>,
}

/// One step of a location in a JSON tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

impl<'a> Node<'a> {
    /// A node for a resource (its type is taken from `resourceType`); untyped if unknown.
    pub fn resource(value: &'a Value) -> Node<'a> {
        model::resource_node(value)
    }

    /// The JSON value of the node; `None` for a primitive that only has extensions.
    pub fn value(&self) -> Option<&'a Value> {
        self.value
    }

    /// The `_name` companion of a primitive (its `id` and `extension`), if present.
    pub fn primitive_extension(&self) -> Option<&'a Value> {
        self.ext
    }

    /// The FHIR type name: a type code (`string`, `HumanName`, `Patient`) or, for backbone
    /// elements, the element path (`Patient.contact`). Empty for untyped JSON.
    pub fn type_name(&self) -> &'a str {
        self.ty
    }

    /// Whether the node is a FHIR primitive (`string`, `date`, ...).
    pub fn is_primitive(&self) -> bool {
        match self.def {
            Some(d) => d.kind == Kind::PrimitiveType,
            None => !matches!(self.value, Some(Value::Object(_) | Value::Array(_))),
        }
    }

    /// The type definition, when the type is known.
    pub fn type_def(&self) -> Option<&'static TypeDef> {
        self.def
    }

    /// The location of this node inside `root` (object keys and array indexes), found by
    /// identity; `None` if the node does not belong to `root` (e.g. a resolved reference).
    /// For a primitive with only extensions the location names the primitive itself (`given`,
    /// not `_given`), whose value is then absent or `null`.
    pub fn location(&self, root: &Value) -> Option<Vec<PathSegment>> {
        let mut path = Vec::new();
        if let Some(v) = self.value {
            if find_ptr(root, v, &mut path) {
                return Some(path);
            }
            return None;
        }
        let e = self.ext?;
        if find_ptr(root, e, &mut path) {
            for seg in path.iter_mut().rev() {
                if let PathSegment::Key(k) = seg
                    && let Some(stripped) = k.strip_prefix('_')
                {
                    *k = stripped.to_string();
                    break;
                }
            }
            return Some(path);
        }
        None
    }

    /// The system value of a primitive node, converted per its FHIR type.
    pub fn to_system(&self) -> Option<Item<'a>> {
        model::primitive_value(self)
    }
}

fn find_ptr(cur: &Value, target: &Value, path: &mut Vec<PathSegment>) -> bool {
    if std::ptr::eq(cur, target) {
        return true;
    }
    match cur {
        Value::Object(m) => {
            for (k, v) in m {
                path.push(PathSegment::Key(k.clone()));
                if find_ptr(v, target, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(PathSegment::Index(i));
                if find_ptr(v, target, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

/// A quantity: a decimal value with a UCUM unit code or a calendar duration keyword.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    /// The numeric value.
    pub value: Decimal,
    /// A UCUM code (`mg`, `'1'` for unity) or a calendar keyword (`week`, `days`).
    pub unit: String,
}

impl Quantity {
    /// Whether the unit is a calendar duration keyword rather than a UCUM code.
    pub fn is_calendar(&self) -> bool {
        crate::temporal::CalendarUnit::from_keyword(&self.unit).is_some()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_calendar() {
            write!(f, "{} {}", self.value, self.unit)
        } else {
            write!(f, "{} '{}'", self.value, self.unit)
        }
    }
}

/// A type description as returned by `type()`: `System.Integer`, `FHIR.Patient`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// `System` or `FHIR`.
    pub namespace: &'static str,
    /// The type name within the namespace.
    pub name: String,
}

/// One item of a FHIRPath collection.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// A node of the input tree (or of a resolved or variable resource).
    Node(Node<'a>),
    /// A computed `System.Boolean`.
    Boolean(bool),
    /// A computed `System.Integer`.
    Integer(i64),
    /// A computed `System.Decimal`.
    Decimal(Decimal),
    /// A computed `System.String`.
    String(Cow<'a, str>),
    /// A computed `System.Date`.
    Date(Date),
    /// A computed `System.DateTime`.
    DateTime(DateTime),
    /// A computed `System.Time`.
    Time(Time),
    /// A computed `System.Quantity`.
    Quantity(Quantity),
    /// A type description (result of `type()`).
    Type(TypeInfo),
}

impl<'a> Item<'a> {
    /// The node, if this item is one.
    pub fn as_node(&self) -> Option<&Node<'a>> {
        match self {
            Item::Node(n) => Some(n),
            _ => None,
        }
    }

    /// The item as a system value: primitive nodes are converted, complex nodes that are
    /// FHIR Quantities become `Quantity`; other complex nodes give `None`.
    pub fn to_system(&self) -> Option<Item<'a>> {
        match self {
            Item::Node(n) => {
                if n.is_primitive() {
                    n.to_system()
                } else {
                    model::quantity_of(n).map(Item::Quantity)
                }
            }
            other => Some(other.clone()),
        }
    }

    /// The type name: the FHIR type of a node, or the system type name (`Integer`, ...).
    pub fn type_name(&self) -> &str {
        match self {
            Item::Node(n) => n.ty,
            Item::Boolean(_) => "Boolean",
            Item::Integer(_) => "Integer",
            Item::Decimal(_) => "Decimal",
            Item::String(_) => "String",
            Item::Date(_) => "Date",
            Item::DateTime(_) => "DateTime",
            Item::Time(_) => "Time",
            Item::Quantity(_) => "Quantity",
            Item::Type(_) => "TypeInfo",
        }
    }

    /// The string form `toString()` gives, for primitives and system values.
    pub fn to_fhirpath_string(&self) -> Option<String> {
        Some(match self.to_system()? {
            Item::Boolean(b) => b.to_string(),
            Item::Integer(i) => i.to_string(),
            Item::Decimal(d) => d.to_string(),
            Item::String(s) => s.into_owned(),
            Item::Date(d) => d.to_string(),
            Item::DateTime(d) => d.to_string(),
            Item::Time(t) => t.to_string(),
            Item::Quantity(q) => q.to_string(),
            Item::Type(t) => format!("{}.{}", t.namespace, t.name),
            Item::Node(_) => return None,
        })
    }
}

/// Parses a decimal from JSON number text (plain or scientific notation).
pub(crate) fn decimal_from_text(s: &str) -> Option<Decimal> {
    Decimal::from_str(s)
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}
