//! The CQL side of `[base]/$cql` and `Library/$evaluate`: [`CqlOperations`] implements
//! `flint_measure::CqlService` with flint-cql over the stored data.
//!
//! * `$cql`: the expression is evaluated as if it were the one define of a library with
//!   `using FHIR version '4.0.1'`, FHIRHelpers 4.0.1 included as `FHIRHelpers`, a
//!   `parameter` for every parameter passed in, and `context Patient` when a subject is
//!   given (so `Patient.gender` is the subject's gender and `[Observation]` its
//!   Observations); without a subject, retrieves read every current resource of the type.
//! * `Library/$evaluate`: the stored Library (by id, or by canonical url `url|version`),
//!   its `text/cql` content parsed, includes resolved as for `$evaluate-measure`; the defines
//!   asked (all of them by default, in the library's order) are evaluated with one context,
//!   so a define referenced by several is evaluated once. With a subject, each define is
//!   evaluated in its own context: one that follows `context Patient` in the subject's
//!   Patient context, one that follows `context Unfiltered` over all the data (a Patient
//!   define it references is the subject's value); without a subject, every define is
//!   evaluated unfiltered.
//!
//! Evaluation runs on the blocking pool with one [`PatientData`] (or its unfiltered form)
//! at the request's database value, with a step budget (`flint_cql::Context::budget`) and
//! an optional deadline checked before every retrieve and value set look-up, so a runaway
//! expression stops on its own even after the caller gave up waiting.
//!
//! Results become [`ResultValue`]s: System values their FHIR `value[x]` (Integer, Decimal,
//! String, Boolean, Date, DateTime (with seconds, as FHIR wants a time to have), Time,
//! Quantity (UCUM; calendar durations as their UCUM codes), Coding, CodeableConcept,
//! Ratio), intervals of DateTimes or Dates a `Period`, of Quantities, Integers or Decimals a
//! `Range` (whether a boundary is open is not kept), other intervals a tuple of `low`,
//! `lowClosed`, `high`, `highClosed`; resources as they are stored, other FHIR elements their
//! `value[x]` of their type (backbone elements a tuple of their properties); value set and
//! code system references a `valueCanonical`.

use crate::library::{self, unprocessable};
use crate::{ParsedCache, PatientData};
use async_trait::async_trait;
use flint_cql::temporal::{Kind, Tm};
use flint_cql::{Context, DataProvider, Engine, Error, Library, Value};
use flint_db::{Db, DbError, ErrorKind};
use flint_measure::{
    CqlService, LibrarySelector, MeasureError, NamedParam, ResourceRef, ResultValue,
};
use flint_search::Engine as Search;
use flint_terminology::Terminology;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Evaluates `$cql` expressions and stored Libraries over the database, with `search`
/// finding Libraries and answering retrieves and `terminology` expanding value sets.
pub struct CqlOperations {
    search: Search,
    terminology: Arc<dyn Terminology>,
    budget: u64,
    timeout: Option<Duration>,
    parsed: Option<Arc<ParsedCache>>,
}

impl CqlOperations {
    /// The operations over the data `search` indexes, with value sets from `terminology`,
    /// the default step budget and no deadline.
    pub fn new(search: Search, terminology: Arc<dyn Terminology>) -> Self {
        CqlOperations {
            search,
            terminology,
            budget: Context::default().budget,
            timeout: None,
            parsed: None,
        }
    }

    /// The same, taking parsed resources from (and adding them to) `cache`, e.g. the one
    /// `$evaluate-measure` uses ([`crate::CqlMeasureEvaluator::parsed_cache`]).
    pub fn with_parsed_cache(mut self, cache: Arc<ParsedCache>) -> Self {
        self.parsed = Some(cache);
        self
    }

    /// The same with at most `steps` evaluation steps per request.
    pub fn with_budget(mut self, steps: u64) -> Self {
        self.budget = steps;
        self
    }

    /// The same with evaluations stopped (at their next retrieve) after `timeout`.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}

/// An `Invalid` (400) error.
fn invalid(msg: impl Into<String>) -> MeasureError {
    DbError::new(ErrorKind::Invalid, msg)
}

/// The id of the subject, checked to be a current Patient.
fn subject_id(db: &Db, subject: Option<&ResourceRef>) -> Result<Option<String>, MeasureError> {
    let Some(s) = subject else {
        return Ok(None);
    };
    if s.type_name != "Patient" {
        return Err(invalid(format!(
            "The subject `{s}` is not a Patient; only Patient subjects are supported."
        ))
        .at("subject"));
    }
    match db.resource("Patient", &s.id)? {
        Some(h) if !h.is_deleted() => Ok(Some(s.id.clone())),
        _ => Err(DbError::new(
            ErrorKind::NotFound,
            format!("The subject `{s}` was not found."),
        )
        .at("subject")),
    }
}

/// The CQL values of the parameters passed in; a value that does not convert is invalid
/// input (400).
fn parameters(params: &[NamedParam]) -> Result<HashMap<String, Value>, MeasureError> {
    library::parameter_values(params).map_err(|e| invalid(e.message).at("parameters"))
}

/// What one request evaluates: a library (and its includes), expressions of it, in a
/// context.
struct Job {
    resolved: Arc<flint_cql::Resolved>,
    parameters: HashMap<String, Value>,
    patient: Option<String>,
    /// The name of what is evaluated, for messages.
    name: String,
}

/// What a job computes: one expression, or defines by name.
enum Wanted {
    Expression(flint_cql::Expr),
    Defines(Vec<String>),
}

impl CqlOperations {
    /// Runs `job` on the blocking pool: the values of `wanted`, in order.
    async fn run(&self, db: &Db, job: Job, wanted: Wanted) -> Result<Vec<Value>, MeasureError> {
        let db = db.clone();
        let (search, terminology) = (self.search.clone(), self.terminology.clone());
        let budget = self.budget;
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let handle = tokio::runtime::Handle::current();
        let name = job.name.clone();
        let parsed = self.parsed.clone();
        // Set when this future is dropped (a cancelled request): the evaluation stops within
        // a few thousand steps instead of running to its budget.
        let stop = StopOnDrop::default();
        let flag = stop.0.clone();
        tokio::task::spawn_blocking(move || {
            let parsed = parsed.as_deref();
            let unfiltered = cached(
                PatientData::unfiltered(&db, &search, &*terminology, handle.clone()),
                parsed,
            );
            let unfiltered = Bounded {
                inner: &unfiltered,
                deadline,
            };
            let patient = job.patient.as_ref().map(|id| {
                cached(
                    PatientData::new(&db, &search, &*terminology, id.clone(), handle),
                    parsed,
                )
            });
            let patient = patient.as_ref().map(|p| Bounded { inner: p, deadline });
            // With a subject, each define in its own context (`context Patient` defines the
            // subject's, `context Unfiltered` ones over all the data); without, all unfiltered.
            let engine = match &patient {
                Some(p) => Engine::resolved(&job.resolved).with_contexts(p, &unfiltered),
                None => Engine::resolved(&job.resolved).with_data(&unfiltered),
            };
            let mut ctx = Context::default();
            ctx.budget = budget;
            ctx.stop = Some(flag);
            ctx.parameters = job.parameters;
            match wanted {
                Wanted::Expression(e) => Ok(vec![engine.eval(&e, &mut ctx)?]),
                Wanted::Defines(names) => names
                    .iter()
                    .map(|n| engine.eval_define(n, &mut ctx))
                    .collect(),
            }
        })
        .await
        .map_err(|e| DbError::fault(format!("CQL evaluation task failed: {e}")))?
        .map_err(|e| evaluation_error(&name, budget, e))
    }
}

/// `data` taking parsed resources from `parsed`, if given.
fn cached<'a>(data: PatientData<'a>, parsed: Option<&'a ParsedCache>) -> PatientData<'a> {
    match parsed {
        Some(c) => data.with_parsed_cache(c),
        None => data,
    }
}

/// A flag set when it is dropped.
#[derive(Default)]
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A CQL evaluation error: a storage fault 503, anything else 422.
fn evaluation_error(name: &str, budget: u64, e: Error) -> MeasureError {
    match e {
        Error::Data(m) => DbError::unavailable(format!("{name}: {m}")),
        Error::Budget => unprocessable(format!(
            "{name}: the evaluation ran out of its budget of {budget} steps (or nested too \
             deeply)"
        )),
        Error::Syntax(s) => invalid(format!("{name}: {s}")),
        e => unprocessable(format!("{name}: {e}")),
    }
}

/// A data provider that refuses to work past a deadline.
struct Bounded<'a> {
    inner: &'a dyn DataProvider,
    deadline: Option<Instant>,
}

impl Bounded<'_> {
    fn check(&self) -> Result<(), Error> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(Error::Data(
                "the evaluation took longer than its time limit".into(),
            )),
            _ => Ok(()),
        }
    }
}

impl DataProvider for Bounded<'_> {
    fn retrieve(
        &self,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<Vec<Value>, Error> {
        self.check()?;
        self.inner.retrieve(data_type, code_path, codes)
    }

    fn retrieve_exists(
        &self,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<bool, Error> {
        self.check()?;
        self.inner.retrieve_exists(data_type, code_path, codes)
    }

    fn in_vocabulary(&self, code: &Value, vocabulary: &Value) -> Result<Option<bool>, Error> {
        self.check()?;
        self.inner.in_vocabulary(code, vocabulary)
    }

    fn expand_vocabulary(&self, vocabulary: &Value) -> Result<Vec<flint_cql::value::Code>, Error> {
        self.check()?;
        self.inner.expand_vocabulary(vocabulary)
    }

    fn subsumes(
        &self,
        ancestor: &flint_cql::value::Code,
        code: &flint_cql::value::Code,
    ) -> Result<Option<bool>, Error> {
        self.check()?;
        self.inner.subsumes(ancestor, code)
    }

    fn retrieve_related(
        &self,
        context: &Value,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<Vec<Value>, Error> {
        self.check()?;
        self.inner
            .retrieve_related(context, data_type, code_path, codes)
    }
}

#[async_trait]
impl CqlService for CqlOperations {
    async fn evaluate_expression(
        &self,
        db: &Db,
        expression: &str,
        subject: Option<&ResourceRef>,
        params: &[NamedParam],
    ) -> Result<ResultValue, MeasureError> {
        let (expr, positions) = flint_cql::parse_expression_with_positions(expression)
            .map_err(|e| invalid(format!("The CQL expression does not parse: {e}")))?;
        let patient = subject_id(db, subject)?;
        let parameters = parameters(params)?;
        let lib = Library {
            usings: vec![("FHIR".into(), Some("4.0.1".into()))],
            includes: vec![(
                "FHIRHelpers".into(),
                Some("4.0.1".into()),
                "FHIRHelpers".into(),
            )],
            parameters: params
                .iter()
                .map(|p| (p.name.clone(), None, None))
                .collect(),
            contexts: match patient {
                Some(_) => vec!["Patient".into()],
                None => vec!["Unfiltered".into()],
            },
            ..Library::default()
        };
        let resolved = Arc::new(flint_cql::Resolved {
            library: Arc::new(lib),
            includes: vec![("FHIRHelpers".into(), library::fhir_helpers_resolved()?)],
        });
        let errors = flint_cql::check::check_expression(&resolved, &expr, &positions);
        if let Some(e) = errors.first() {
            return Err(invalid(library::semantic_message(e, errors.len() - 1)).at("expression"));
        }
        let job = Job {
            resolved,
            parameters,
            patient,
            name: "The CQL expression".into(),
        };
        let mut values = self.run(db, job, Wanted::Expression(expr)).await?;
        result_value(values.pop().unwrap_or(Value::Null))
    }

    async fn evaluate_library(
        &self,
        db: &Db,
        selector: &LibrarySelector,
        subject: Option<&ResourceRef>,
        expressions: Option<&[String]>,
        params: &[NamedParam],
    ) -> Result<Vec<(String, ResultValue)>, MeasureError> {
        let (query, what, at) = match selector {
            LibrarySelector::Id(id) => (
                vec![("_id".to_string(), id.clone())],
                format!("Library/{id}"),
                None,
            ),
            LibrarySelector::Canonical(c) => (
                library::canonical_query(c),
                format!("Library `{c}`"),
                Some("url"),
            ),
        };
        let stored = library::library_resource(&self.search, db, &query)
            .await?
            .ok_or_else(|| {
                let e = DbError::new(ErrorKind::NotFound, format!("The {what} was not found."));
                match at {
                    Some(at) => e.at(at),
                    None => e,
                }
            })?;
        let name = stored["name"]
            .as_str()
            .or(stored["url"].as_str())
            .unwrap_or(&what)
            .to_string();
        let kind = ErrorKind::Invalid;
        let lib = library::compile(&stored, &name, kind).map_err(|e| e.at("Library.content"))?;
        let resolved = library::resolve(&self.search, db, lib.clone(), &name, kind)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::Invalid => e.at("Library.content"),
                _ => e,
            })?;
        library::check(&resolved, kind).map_err(|e| e.at("Library.content"))?;
        let names: Vec<String> = match expressions {
            None => lib.defines.iter().map(|(n, _)| n.clone()).collect(),
            Some(asked) => {
                for n in asked {
                    if !lib.defines.iter().any(|(d, _)| d == n) {
                        return Err(invalid(format!(
                            "The library `{name}` has no define named `{n}`."
                        ))
                        .at("expression"));
                    }
                }
                asked.to_vec()
            }
        };
        let patient = subject_id(db, subject)?;
        let job = Job {
            resolved,
            parameters: parameters(params)?,
            patient,
            name: format!("CQL library `{name}`"),
        };
        let values = self.run(db, job, Wanted::Defines(names.clone())).await?;
        names
            .into_iter()
            .zip(values)
            .map(|(n, v)| Ok((n, result_value(v)?)))
            .collect()
    }
}

/// A `value[x]` result.
fn val(fhir_type: &str, json: serde_json::Value) -> ResultValue {
    ResultValue::Value {
        fhir_type: fhir_type.to_string(),
        json,
    }
}

/// A CQL value as a result.
pub fn result_value(v: Value) -> Result<ResultValue, MeasureError> {
    Ok(match v {
        Value::Null => ResultValue::Null,
        Value::Bool(b) => val("Boolean", json!(b)),
        Value::Int(i) => val("Integer", json!(i)),
        Value::Long(i) => match i32::try_from(i) {
            Ok(i) => val("Integer", json!(i)),
            Err(_) => val("Decimal", json!(i)),
        },
        Value::Dec(d) => val("Decimal", decimal(&d)),
        Value::Str(s) => val("String", json!(s)),
        Value::Date(t) => val("Date", json!(t.format(Kind::Date))),
        Value::DateTime(t) => val("DateTime", json!(date_time(&t))),
        Value::Time(t) => val("Time", json!(time(&t))),
        Value::Quantity(d, u) => val("Quantity", quantity(&d, &u)),
        Value::Ratio(a, b) => match (*a, *b) {
            (Value::Quantity(n, nu), Value::Quantity(d, du)) => val(
                "Ratio",
                json!({"numerator": quantity(&n, &nu), "denominator": quantity(&d, &du)}),
            ),
            (a, b) => ResultValue::Tuple(vec![
                ("numerator".into(), result_value(a)?),
                ("denominator".into(), result_value(b)?),
            ]),
        },
        Value::Code(c) => val("Coding", coding(&c)),
        Value::Concept(codes, text) => {
            let mut cc = json!({"coding": codes.iter().map(coding).collect::<Vec<_>>()});
            if let Some(t) = text {
                cc["text"] = json!(t);
            }
            val("CodeableConcept", cc)
        }
        Value::Interval(low, low_closed, high, high_closed) => {
            interval(*low, low_closed, *high, high_closed)?
        }
        Value::List(xs) => {
            ResultValue::List(xs.into_iter().map(result_value).collect::<Result<_, _>>()?)
        }
        Value::Tuple(es) => ResultValue::Tuple(
            es.into_iter()
                .map(|(k, v)| Ok((k, result_value(v)?)))
                .collect::<Result<_, MeasureError>>()?,
        ),
        Value::Vocabulary(_, url, version) => val(
            "Canonical",
            json!(match version {
                Some(v) => format!("{url}|{v}"),
                None => url,
            }),
        ),
        Value::Fhir(f) => {
            let defs = flint_model::defs::definitions();
            if defs.is_resource_type(f.ty) {
                ResultValue::Resource(f.json().clone())
            } else if f.ty.contains('.') {
                // A backbone element: its properties.
                let props = flint_cql::fhir::properties(&f)
                    .map_err(|e| unprocessable(format!("result {}: {e}", f.ty)))?;
                ResultValue::Tuple(
                    props
                        .into_iter()
                        .map(|(k, v)| Ok((k, result_value(v)?)))
                        .collect::<Result<_, MeasureError>>()?,
                )
            } else {
                let mut chars = f.ty.chars();
                let ty = match chars.next() {
                    Some(c) => format!("{}{}", c.to_ascii_uppercase(), chars.as_str()),
                    None => String::new(),
                };
                val(&ty, f.json().clone())
            }
        }
    })
}

/// An interval: a Period, a Range, or a tuple of its boundaries.
fn interval(
    low: Value,
    low_closed: bool,
    high: Value,
    high_closed: bool,
) -> Result<ResultValue, MeasureError> {
    let kind = |v: &Value| match v {
        Value::Date(_) | Value::DateTime(_) => Some("Period"),
        Value::Quantity(..) | Value::Int(_) | Value::Dec(_) => Some("Range"),
        _ => None,
    };
    let shape = match (kind(&low), kind(&high)) {
        (Some(a), Some(b)) if a == b => Some(a),
        (Some(a), None) if high.is_null() => Some(a),
        (None, Some(b)) if low.is_null() => Some(b),
        _ => None,
    };
    let end_text = |v: &Value| match v {
        Value::Date(t) => Some(json!(t.format(Kind::Date))),
        Value::DateTime(t) => Some(json!(date_time(t))),
        _ => None,
    };
    let end_quantity = |v: &Value| match v {
        Value::Quantity(d, u) => Some(quantity(d, u)),
        Value::Int(i) => Some(json!({"value": i})),
        Value::Dec(d) => Some(json!({"value": decimal(d)})),
        _ => None,
    };
    Ok(match shape {
        Some("Period") => {
            let mut p = json!({});
            if let Some(s) = end_text(&low) {
                p["start"] = s;
            }
            if let Some(e) = end_text(&high) {
                p["end"] = e;
            }
            val("Period", p)
        }
        Some(_) => {
            let mut r = json!({});
            if let Some(l) = end_quantity(&low) {
                r["low"] = l;
            }
            if let Some(h) = end_quantity(&high) {
                r["high"] = h;
            }
            val("Range", r)
        }
        None => ResultValue::Tuple(vec![
            ("low".into(), result_value(low)?),
            ("lowClosed".into(), val("Boolean", json!(low_closed))),
            ("high".into(), result_value(high)?),
            ("highClosed".into(), val("Boolean", json!(high_closed))),
        ]),
    })
}

/// A decimal as a JSON number with its digits as written.
fn decimal(d: &rust_decimal::Decimal) -> serde_json::Value {
    serde_json::from_str(&d.to_string()).unwrap_or_else(|_| json!(d.to_string()))
}

/// A System Quantity as a FHIR Quantity (UCUM; calendar durations as their UCUM codes).
fn quantity(d: &rust_decimal::Decimal, unit: &str) -> serde_json::Value {
    let code = match unit.strip_suffix('s').unwrap_or(unit) {
        "year" => "a",
        "month" => "mo",
        "week" => "wk",
        "day" => "d",
        "hour" => "h",
        "minute" => "min",
        "second" => "s",
        "millisecond" => "ms",
        _ => unit,
    };
    json!({"value": decimal(d), "unit": unit, "system": "http://unitsofmeasure.org", "code": code})
}

/// A System Code as a FHIR Coding.
fn coding(c: &flint_cql::value::Code) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    if let Some(s) = &c.system {
        o.insert("system".into(), json!(s));
    }
    if let Some(v) = &c.version {
        o.insert("version".into(), json!(v));
    }
    o.insert("code".into(), json!(c.code));
    if let Some(d) = &c.display {
        o.insert("display".into(), json!(d));
    }
    serde_json::Value::Object(o)
}

/// `t` padded to seconds (FHIR times have them); unknown components are zero.
fn to_seconds(t: &Tm) -> Tm {
    let mut t = *t;
    if t.prec < 6 {
        for c in &mut t.v[t.prec.max(3)..] {
            *c = 0;
        }
        t.prec = 6;
    }
    t
}

/// A DateTime as a FHIR dateTime: a date alone when no time is known, else with seconds.
fn date_time(t: &Tm) -> String {
    if t.prec <= 3 {
        t.format(Kind::Date)
    } else {
        to_seconds(t).format(Kind::DateTime)
    }
}

/// A Time as a FHIR time (`hh:mm:ss`).
fn time(t: &Tm) -> String {
    let s = to_seconds(t).format(Kind::Time);
    s.strip_prefix('T').unwrap_or(&s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> ResultValue {
        result_value(flint_cql::evaluate_expression(src).unwrap()).unwrap()
    }

    #[test]
    fn system_values_become_fhir_values() {
        assert_eq!(eval("1 + 2"), val("Integer", json!(3)));
        let digits: serde_json::Value = serde_json::from_str("2.50").unwrap();
        assert_eq!(
            eval("1.50 + 1"),
            val("Decimal", digits),
            "the digits are kept"
        );
        assert_eq!(eval("@2020-01-02"), val("Date", json!("2020-01-02")));
        assert_eq!(
            eval("@2020-01-02T10:30Z"),
            val("DateTime", json!("2020-01-02T10:30:00Z"))
        );
        assert_eq!(eval("@2020-01T"), val("DateTime", json!("2020-01")));
        assert_eq!(eval("@T10:30"), val("Time", json!("10:30:00")));
        assert_eq!(
            eval("3 days"),
            val(
                "Quantity",
                json!({"value": 3, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"})
            )
        );
        assert_eq!(
            eval("Interval[1 'mg', 2 'mg']"),
            val(
                "Range",
                json!({"low": {"value": 1, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
                       "high": {"value": 2, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}})
            )
        );
        assert_eq!(
            eval("Interval[@2020-01-01T00:00:00Z, null]"),
            val("Period", json!({"start": "2020-01-01T00:00:00Z"}))
        );
        assert_eq!(
            eval("Interval[@T10:00, @T11:00)"),
            ResultValue::Tuple(vec![
                ("low".into(), val("Time", json!("10:00:00"))),
                ("lowClosed".into(), val("Boolean", json!(true))),
                ("high".into(), val("Time", json!("11:00:00"))),
                ("highClosed".into(), val("Boolean", json!(false))),
            ])
        );
        assert_eq!(
            eval("Code { code: 'x', system: 'urn:s' }"),
            val("Coding", json!({"system": "urn:s", "code": "x"}))
        );
    }
}
