//! The values an [`crate::ExpressionEvaluator`] answers with, and their FHIR forms in a
//! MeasureReport.

use serde_json::{Value, json};
use std::fmt;

/// The R5 cross-version extension carrying a stratum value of any type on the R4
/// `stratum.value` CodeableConcept (R5 made it `value[x]`).
pub const STRATUM_VALUE_EXTENSION: &str = "http://hl7.org/fhir/5.0/StructureDefinition/extension-MeasureReport.group.stratifier.stratum.value";

/// A reference to a resource by type and id (`Patient/1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    /// The resource type.
    pub type_name: String,
    /// The id.
    pub id: String,
}

impl ResourceRef {
    /// A reference to `type_name/id`.
    pub fn new(type_name: &str, id: &str) -> Self {
        ResourceRef {
            type_name: type_name.to_string(),
            id: id.to_string(),
        }
    }

    /// Parses `Type/id` (the reference's literal form).
    pub fn parse(s: &str) -> Option<Self> {
        let (t, id) = s.split_once('/')?;
        (!t.is_empty() && !id.is_empty() && !id.contains('/')).then(|| ResourceRef::new(t, id))
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.type_name, self.id)
    }
}

/// A code with its system and display.
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    /// The code system url.
    pub system: Option<String>,
    /// The code.
    pub code: String,
    /// Its display, if known.
    pub display: Option<String>,
}

/// A single value: an observation's result, a stratifier value or a supplemental data value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A Boolean.
    Boolean(bool),
    /// An Integer.
    Integer(i64),
    /// A Decimal.
    Decimal(f64),
    /// A Quantity with its UCUM unit.
    Quantity {
        /// The value.
        value: f64,
        /// The unit, if any.
        unit: Option<String>,
    },
    /// A String.
    String(String),
    /// A Code.
    Code(Code),
}

/// The result of evaluating an expression for one subject.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprValue {
    /// CQL `null`.
    Null,
    /// A Boolean (populations of a boolean population basis).
    Boolean(bool),
    /// A list of resources (populations of a resource population basis, e.g. Encounters).
    Resources(Vec<ResourceRef>),
    /// A single value (observations, stratifier values, supplemental data).
    Value(Scalar),
    /// A list of values (supplemental data such as a patient's race codes).
    Values(Vec<Scalar>),
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `n` as a JSON number (integral values without a fraction).
pub fn json_number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

impl Scalar {
    /// The value as text: a stratum's `value.text`, a supplemental data value's text.
    pub fn display(&self) -> String {
        match self {
            Scalar::Boolean(b) => b.to_string(),
            Scalar::Integer(i) => i.to_string(),
            Scalar::Decimal(d) => number_text(*d),
            Scalar::Quantity { value, unit } => match unit {
                Some(u) => format!("{} '{u}'", number_text(*value)),
                None => number_text(*value),
            },
            Scalar::String(s) => s.clone(),
            Scalar::Code(c) => c.display.clone().unwrap_or_else(|| c.code.clone()),
        }
    }

    /// A key equal for equal values (and different across types), for grouping.
    pub fn key(&self) -> String {
        match self {
            Scalar::Boolean(b) => format!("b:{b}"),
            Scalar::Integer(i) => format!("n:{}", *i as f64),
            Scalar::Decimal(d) => format!("n:{d}"),
            Scalar::Quantity { value, unit } => {
                format!("q:{value}:{}", unit.as_deref().unwrap_or(""))
            }
            Scalar::String(s) => format!("s:{s}"),
            Scalar::Code(c) => format!("c:{}|{}", c.system.as_deref().unwrap_or(""), c.code),
        }
    }

    /// The numeric value (of an Integer, Decimal or Quantity), for observations.
    pub fn number(&self) -> Option<f64> {
        match self {
            Scalar::Integer(i) => Some(*i as f64),
            Scalar::Decimal(d) => Some(*d),
            Scalar::Quantity { value, .. } => Some(*value),
            _ => None,
        }
    }

    /// The value as a FHIR `value[x]`: the element name and its JSON (e.g. `valueInteger`, 3).
    pub fn fhir_value(&self) -> (&'static str, Value) {
        match self {
            Scalar::Boolean(b) => ("valueBoolean", json!(b)),
            Scalar::Integer(i) => ("valueInteger", json!(i)),
            Scalar::Decimal(d) => ("valueDecimal", json_number(*d)),
            Scalar::Quantity { value, unit } => {
                let mut q = json!({ "value": json_number(*value) });
                if let Some(u) = unit {
                    q["unit"] = json!(u);
                    q["system"] = json!("http://unitsofmeasure.org");
                    q["code"] = json!(u);
                }
                ("valueQuantity", q)
            }
            Scalar::String(s) => ("valueString", json!(s)),
            Scalar::Code(_) => ("valueCodeableConcept", self.codeable_concept()),
        }
    }

    /// The value as a CodeableConcept: a code's coding, or only the text of other values.
    pub fn codeable_concept(&self) -> Value {
        match self {
            Scalar::Code(c) => {
                let mut coding = serde_json::Map::new();
                if let Some(s) = &c.system {
                    coding.insert("system".into(), json!(s));
                }
                coding.insert("code".into(), json!(c.code));
                if let Some(d) = &c.display {
                    coding.insert("display".into(), json!(d));
                }
                json!({ "coding": [coding], "text": self.display() })
            }
            _ => json!({ "text": self.display() }),
        }
    }

    /// The R4 `stratum.value` (or `stratum.component.value`): a CodeableConcept whose text is
    /// the display; values other than codes also carry themselves, typed, in the
    /// [`STRATUM_VALUE_EXTENSION`].
    pub fn stratum_value(&self) -> Value {
        let mut cc = self.codeable_concept();
        if !matches!(self, Scalar::Code(_)) {
            let (name, v) = self.fhir_value();
            let mut ext = serde_json::Map::new();
            ext.insert("url".into(), json!(STRATUM_VALUE_EXTENSION));
            ext.insert(name.into(), v);
            cc["extension"] = json!([ext]);
        }
        cc
    }
}
