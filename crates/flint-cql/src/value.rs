//! CQL run-time values.

use crate::temporal::{Kind, Tm};
use rust_decimal::Decimal;
use std::fmt;

/// A Code (`Code 'c' from "system"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    /// The code.
    pub code: String,
    /// Code system url.
    pub system: Option<String>,
    /// Code system version.
    pub version: Option<String>,
    /// Display text.
    pub display: Option<String>,
}

/// A CQL value (`Null` is the null of any type).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// null.
    Null,
    /// System.Boolean.
    Bool(bool),
    /// System.Integer (32-bit).
    Int(i32),
    /// System.Long.
    Long(i64),
    /// System.Decimal.
    Dec(Decimal),
    /// System.String.
    Str(String),
    /// System.Date.
    Date(Tm),
    /// System.DateTime.
    DateTime(Tm),
    /// System.Time.
    Time(Tm),
    /// System.Quantity (value, UCUM unit or calendar keyword).
    Quantity(Decimal, String),
    /// System.Ratio of two quantities.
    Ratio(Box<Value>, Box<Value>),
    /// System.Code.
    Code(Code),
    /// System.Concept: codes and display.
    Concept(Vec<Code>, Option<String>),
    /// Interval: low, low closed, high, high closed.
    Interval(Box<Value>, bool, Box<Value>, bool),
    /// List.
    List(Vec<Value>),
    /// Tuple (element order as written).
    Tuple(Vec<(String, Value)>),
    /// A vocabulary reference: `ValueSet` or `CodeSystem` (kind, id/url, version).
    Vocabulary(&'static str, String, Option<String>),
    /// A FHIR element or resource (`using FHIR`): its JSON and FHIR type.
    Fhir(crate::fhir::FhirValue),
}

impl Value {
    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The System type name of the value (`Integer`, `List`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "Any",
            Value::Bool(_) => "Boolean",
            Value::Int(_) => "Integer",
            Value::Long(_) => "Long",
            Value::Dec(_) => "Decimal",
            Value::Str(_) => "String",
            Value::Date(_) => "Date",
            Value::DateTime(_) => "DateTime",
            Value::Time(_) => "Time",
            Value::Quantity(..) => "Quantity",
            Value::Ratio(..) => "Ratio",
            Value::Code(_) => "Code",
            Value::Concept(..) => "Concept",
            Value::Interval(..) => "Interval",
            Value::List(_) => "List",
            Value::Tuple(_) => "Tuple",
            Value::Vocabulary(kind, ..) => kind,
            Value::Fhir(f) => f.ty,
        }
    }
}

fn fmt_dec(d: &Decimal) -> String {
    let s = d.normalize().to_string();
    if s.contains('.') { s } else { format!("{s}.0") }
}

fn quote(s: &str) -> String {
    let mut o = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => o.push_str("\\'"),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('\'');
    o
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Code {{ code: {}, system: {} }}",
            quote(&self.code),
            self.system.as_deref().map(quote).unwrap_or("null".into())
        )
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Long(i) => write!(f, "{i}L"),
            Value::Dec(d) => write!(f, "{}", fmt_dec(d)),
            Value::Str(s) => write!(f, "{}", quote(s)),
            Value::Date(t) => write!(f, "@{}", t.format(Kind::Date)),
            Value::DateTime(t) => write!(f, "@{}", t.format(Kind::DateTime)),
            Value::Time(t) => write!(f, "@{}", t.format(Kind::Time)),
            Value::Quantity(v, u) => write!(f, "{} {}", fmt_dec(v), quote(u)),
            Value::Ratio(a, b) => write!(f, "{a}:{b}"),
            Value::Code(c) => write!(f, "{c}"),
            Value::Concept(cs, _) => {
                write!(f, "Concept {{ ")?;
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{c}")?;
                }
                write!(f, " }}")
            }
            Value::Interval(l, lc, h, hc) => write!(
                f,
                "Interval{}{}, {}{}",
                if *lc { '[' } else { '(' },
                l,
                h,
                if *hc { ']' } else { ')' }
            ),
            Value::List(xs) => {
                write!(f, "{{")?;
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, "}}")
            }
            Value::Vocabulary(kind, id, version) => {
                write!(f, "{kind} {{ id: {}", quote(id))?;
                if let Some(v) = version {
                    write!(f, ", version: {}", quote(v))?;
                }
                write!(f, " }}")
            }
            Value::Fhir(x) => write!(f, "FHIR.{} {}", x.ty, x.json()),
            Value::Tuple(es) => {
                write!(f, "Tuple {{ ")?;
                for (i, (k, v)) in es.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                write!(f, " }}")
            }
        }
    }
}
