//! Static types over the FHIR R4 element model: the inference the FHIRPath strict mode
//! ([`crate::check_strict`]) and flint-cql's type checker share.
//!
//! A [`Ty`] is a System type, a FHIR complex type or resource by name, a list, an interval,
//! a tuple or a choice; [`Ty::Any`] stands for what is not known statically and matches
//! everything. FHIR primitive elements are typed as the System types they are read as
//! (`date` is `Date`, `code` is `String`), repeating elements as lists, choice elements as
//! choices of their types ([`element_ty`]); [`fhir_member`] looks an element up in a FHIR
//! type's definition.

use flint_model::defs::{ElementDef, Kind, definitions};

/// A static type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// Not known statically: matches every type.
    Any,
    /// The type of `null`: converts to every type.
    Null,
    /// System.Boolean.
    Bool,
    /// System.Integer.
    Int,
    /// System.Long.
    Long,
    /// System.Decimal.
    Dec,
    /// System.String.
    Str,
    /// System.Date.
    Date,
    /// System.DateTime.
    DateTime,
    /// System.Time.
    Time,
    /// System.Quantity.
    Quantity,
    /// System.Ratio.
    Ratio,
    /// System.Code.
    Code,
    /// System.Concept.
    Concept,
    /// A value set or code system reference.
    Vocabulary,
    /// `List<T>`.
    List(Box<Ty>),
    /// `Interval<T>`.
    Interval(Box<Ty>),
    /// A tuple with exactly these elements.
    Tuple(Vec<(String, Ty)>),
    /// A FHIR complex type, resource or backbone element (`Patient.contact`), by the
    /// definitions' name.
    Fhir(String),
    /// One of these types (a FHIR choice element, an ambiguous type name).
    Choice(Vec<Ty>),
}

impl std::fmt::Display for Ty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ty::Any => write!(f, "Any"),
            Ty::Null => write!(f, "null"),
            Ty::Bool => write!(f, "Boolean"),
            Ty::Int => write!(f, "Integer"),
            Ty::Long => write!(f, "Long"),
            Ty::Dec => write!(f, "Decimal"),
            Ty::Str => write!(f, "String"),
            Ty::Date => write!(f, "Date"),
            Ty::DateTime => write!(f, "DateTime"),
            Ty::Time => write!(f, "Time"),
            Ty::Quantity => write!(f, "Quantity"),
            Ty::Ratio => write!(f, "Ratio"),
            Ty::Code => write!(f, "Code"),
            Ty::Concept => write!(f, "Concept"),
            Ty::Vocabulary => write!(f, "Vocabulary"),
            Ty::List(t) => write!(f, "List<{t}>"),
            Ty::Interval(t) => write!(f, "Interval<{t}>"),
            Ty::Tuple(es) => {
                write!(f, "Tuple {{ ")?;
                for (i, (n, t)) in es.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{n} {t}")?;
                }
                write!(f, " }}")
            }
            Ty::Fhir(n) => write!(f, "FHIR.{n}"),
            Ty::Choice(ts) => {
                write!(f, "Choice<")?;
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{t}")?;
                }
                write!(f, ">")
            }
        }
    }
}

/// The System type a FHIR primitive is read as (`System.String` in the definitions).
pub fn system_of(s: Option<&str>) -> Ty {
    match s.map(|s| s.trim_start_matches("System.")) {
        Some("Boolean") => Ty::Bool,
        Some("Integer") => Ty::Int,
        Some("Decimal") => Ty::Dec,
        Some("String") => Ty::Str,
        Some("Date") => Ty::Date,
        Some("DateTime") => Ty::DateTime,
        Some("Time") => Ty::Time,
        _ => Ty::Any,
    }
}

/// The type FHIR type name `n` denotes: a primitive's System type, a complex type or
/// resource, `Any` for an abstract or unknown type.
pub fn fhir_named(n: &str) -> Ty {
    match definitions().type_def(n) {
        Some(td) if td.kind == Kind::PrimitiveType => system_of(td.system.as_deref()),
        Some(td) if td.is_abstract => Ty::Any,
        Some(_) => Ty::Fhir(n.to_string()),
        None => Ty::Any,
    }
}

/// The type of a FHIR element as evaluation reads it (a list when it repeats, a choice for
/// a choice element).
pub fn element_ty(el: &ElementDef) -> Ty {
    let t = if el.choice {
        choice(el.types.iter().map(|t| fhir_named(t)).collect())
    } else {
        el.types.first().map_or(Ty::Any, |t| fhir_named(t))
    };
    if el.is_array() {
        Ty::List(Box::new(t))
    } else {
        t
    }
}

/// The type of element `n` of FHIR type `ty` (`Any` when `ty` is unknown, or abstract and
/// without `n`, since its subtypes have more elements); `None` when `ty` definitely has no
/// such element.
pub fn fhir_member(ty: &str, n: &str) -> Option<Ty> {
    let defs = definitions();
    let Some(td) = defs.type_def(ty) else {
        return Some(Ty::Any);
    };
    if n == "resourceType" && td.kind == Kind::Resource {
        return Some(Ty::Str);
    }
    if td.is_abstract {
        return Some(td.element(n).map_or(Ty::Any, element_ty));
    }
    td.element(n).map(element_ty)
}

/// A choice of types (`Any` if any alternative is; the one type when only one is left).
pub fn choice(ts: Vec<Ty>) -> Ty {
    let mut out: Vec<Ty> = Vec::new();
    for t in ts {
        if t == Ty::Any {
            return Ty::Any;
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    match out.len() {
        0 => Ty::Any,
        1 => out.pop().unwrap_or(Ty::Any),
        _ => Ty::Choice(out),
    }
}
