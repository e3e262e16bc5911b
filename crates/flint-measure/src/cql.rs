//! The CQL operations `[base]/$cql` and `Library/$evaluate` without the CQL language: the
//! [`CqlService`] trait a CQL engine implements, the results it answers ([`ResultValue`],
//! already in FHIR's JSON shapes) and their `Parameters` resource ([`parameters`]).
//!
//! A result becomes `Parameters.parameter` entries the way the CQL IG's "CQL Evaluation
//! Result" profile has them:
//!
//! * a FHIR resource: `resource`; a System or FHIR value: its `value[x]` (`valueInteger`,
//!   `valueQuantity`, `valuePeriod`, ...);
//! * a list: one parameter of the same name per element; an empty list: one parameter whose
//!   `_valueString` has only the `cqf-isEmptyList` extension; a list inside a list: one
//!   parameter whose parts (named `element`) are its elements;
//! * a tuple: one parameter with a `part` per element (a list element gives repeated parts);
//! * null: a parameter whose `_valueString` has only the `data-absent-reason` extension
//!   (`unknown`), so that the parameter still has a value (invariant `inv-1`).
//!
//! Errors are [`MeasureError`]s (`flint_db::DbError`): invalid input or a syntax error 400
//! (with the line and column in the message), an unknown Library or subject 404, an
//! evaluation error 422, a storage fault 503.

use crate::{MeasureError, NamedParam, ResourceRef};
use async_trait::async_trait;
use flint_db::Db;
use serde_json::{Value, json};

/// The extension marking a null value.
pub const DATA_ABSENT_REASON: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

/// The extension marking an empty list.
pub const IS_EMPTY_LIST: &str = "http://hl7.org/fhir/StructureDefinition/cqf-isEmptyList";

/// A CQL result, in the shape its FHIR representation takes.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultValue {
    /// null.
    Null,
    /// A value of `value[x]`: the FHIR type as the key's suffix (`Integer`, `DateTime`,
    /// `Quantity`, `CodeableConcept`, `HumanName`, ...) and its JSON.
    Value {
        /// The FHIR type, spelled as in `value[x]` (`Boolean`, not `boolean`).
        fhir_type: String,
        /// The JSON of the value.
        json: Value,
    },
    /// A FHIR resource.
    Resource(Value),
    /// A list.
    List(Vec<ResultValue>),
    /// A tuple (or a FHIR backbone element): its elements in order.
    Tuple(Vec<(String, ResultValue)>),
}

/// The Library a `Library/$evaluate` evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibrarySelector {
    /// `Library/[id]/$evaluate`: the current Library with this id.
    Id(String),
    /// `Library/$evaluate?url=...`: the Library with this canonical url (`url|version`).
    Canonical(String),
}

/// The CQL engine behind `$cql` and `Library/$evaluate`.
#[async_trait]
pub trait CqlService: Send + Sync {
    /// The value of the CQL `expression` over `db`: in the Patient context of `subject` when
    /// there is one (the subject must exist, else a `NotFound` error pointing at `subject`),
    /// else unfiltered; `using FHIR version '4.0.1'` and FHIRHelpers are implied, and every
    /// parameter of `params` is a parameter the expression may name. A syntax error is an
    /// `Invalid` error without `expression` (the caller knows where the text came from).
    async fn evaluate_expression(
        &self,
        db: &Db,
        expression: &str,
        subject: Option<&ResourceRef>,
        params: &[NamedParam],
    ) -> Result<ResultValue, MeasureError>;

    /// The values of the defines `expressions` (every define of the library when `None`) of
    /// the Library `library` over `db`, in the order asked (the library's order by default),
    /// with `subject` and `params` as for [`CqlService::evaluate_expression`]. An unknown
    /// Library is a `NotFound` error, an unknown define name an `Invalid` one.
    async fn evaluate_library(
        &self,
        db: &Db,
        library: &LibrarySelector,
        subject: Option<&ResourceRef>,
        expressions: Option<&[String]>,
        params: &[NamedParam],
    ) -> Result<Vec<(String, ResultValue)>, MeasureError>;
}

/// Settings of the CQL operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqlConfig {
    /// How long one evaluation may take before the request is answered 503 (`None`: no
    /// limit); the server uses `FHIR_OPERATION_EVALUATE_MEASURE_TIMEOUT`.
    pub timeout: Option<std::time::Duration>,
}

impl Default for CqlConfig {
    fn default() -> Self {
        CqlConfig {
            timeout: Some(std::time::Duration::from_secs(3600)),
        }
    }
}

/// A `Parameters` resource with the parameters of every `(name, value)` of `results`.
pub fn parameters(results: &[(String, ResultValue)]) -> Value {
    let mut out = Vec::new();
    for (name, value) in results {
        push_parameters(&mut out, name, value);
    }
    json!({"resourceType": "Parameters", "parameter": out})
}

/// Appends the parameters (or parts) named `name` that stand for `value`.
fn push_parameters(out: &mut Vec<Value>, name: &str, value: &ResultValue) {
    match value {
        ResultValue::List(items) if items.is_empty() => {
            out.push(marked(name, IS_EMPTY_LIST, json!({"valueBoolean": true})));
        }
        ResultValue::List(items) => {
            for item in items {
                match item {
                    ResultValue::List(inner) => {
                        let mut parts = Vec::new();
                        push_parameters(&mut parts, "element", &ResultValue::List(inner.clone()));
                        out.push(json!({"name": name, "part": parts}));
                    }
                    item => out.push(single(name, item)),
                }
            }
        }
        value => out.push(single(name, value)),
    }
}

/// The one parameter of a value that is not a list.
fn single(name: &str, value: &ResultValue) -> Value {
    match value {
        ResultValue::Null => marked(name, DATA_ABSENT_REASON, json!({"valueCode": "unknown"})),
        ResultValue::Value { fhir_type, json } => {
            let mut p = json!({"name": name});
            p[format!("value{fhir_type}")] = json.clone();
            p
        }
        ResultValue::Resource(r) => json!({"name": name, "resource": r}),
        ResultValue::Tuple(elements) => {
            let mut parts = Vec::new();
            for (n, v) in elements {
                push_parameters(&mut parts, n, v);
            }
            if parts.is_empty() {
                // An empty tuple: nothing to list, but the parameter needs content.
                return marked(name, DATA_ABSENT_REASON, json!({"valueCode": "unknown"}));
            }
            json!({"name": name, "part": parts})
        }
        ResultValue::List(_) => {
            let mut parts = Vec::new();
            push_parameters(&mut parts, "element", value);
            json!({"name": name, "part": parts})
        }
    }
}

/// A parameter whose `_valueString` has only the extension `url` with `value`.
fn marked(name: &str, url: &str, value: Value) -> Value {
    let mut ext = json!({"url": url});
    if let (Some(e), Some(v)) = (ext.as_object_mut(), value.as_object()) {
        e.extend(v.clone());
    }
    json!({"name": name, "_valueString": {"extension": [ext]}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ty: &str, json: Value) -> ResultValue {
        ResultValue::Value {
            fhir_type: ty.into(),
            json,
        }
    }

    #[test]
    fn values_lists_tuples_and_nulls_become_parameters() {
        let p = parameters(&[
            ("a".into(), v("Integer", json!(1))),
            (
                "b".into(),
                ResultValue::List(vec![v("String", json!("x")), ResultValue::Null]),
            ),
            ("c".into(), ResultValue::List(vec![])),
            (
                "d".into(),
                ResultValue::Tuple(vec![
                    ("n".into(), v("Boolean", json!(true))),
                    (
                        "l".into(),
                        ResultValue::List(vec![v("Integer", json!(1)), v("Integer", json!(2))]),
                    ),
                ]),
            ),
            (
                "e".into(),
                ResultValue::Resource(json!({"resourceType": "Patient", "id": "1"})),
            ),
            (
                "f".into(),
                ResultValue::List(vec![ResultValue::List(vec![v("Integer", json!(3))])]),
            ),
        ]);
        assert_eq!(
            p,
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "a", "valueInteger": 1},
                {"name": "b", "valueString": "x"},
                {"name": "b", "_valueString": {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "unknown"}]}},
                {"name": "c", "_valueString": {"extension": [{"url": IS_EMPTY_LIST, "valueBoolean": true}]}},
                {"name": "d", "part": [
                    {"name": "n", "valueBoolean": true},
                    {"name": "l", "valueInteger": 1},
                    {"name": "l", "valueInteger": 2},
                ]},
                {"name": "e", "resource": {"resourceType": "Patient", "id": "1"}},
                {"name": "f", "part": [{"name": "element", "valueInteger": 3}]},
            ]})
        );
    }
}
