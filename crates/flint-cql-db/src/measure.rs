//! The CQL side of `Measure/$evaluate-measure`: [`CqlMeasureEvaluator`] implements
//! `flint_measure::ExpressionEvaluator` with flint-cql over the stored data.
//!
//! * The library is the stored `Library` with the Measure's canonical url (`url|version`
//!   picks the version); its content is the `application/elm+json` attachment when there is
//!   one, else the `text/cql` one (base64 `data`), compiled once per Library version.
//!   Includes resolve to FHIRHelpers 4.0.1 (built in) or to stored Libraries by `name` (and
//!   `version`), to any depth (see `library`).
//! * The library's `Measurement Period` parameter is the measure's period, an interval of
//!   DateTimes; named POST parameters of simple types (boolean, integer, decimal, string,
//!   code, date, dateTime) set the parameters of the same name, repeated ones as lists.
//! * Subjects are evaluated on the blocking pool (the data provider waits for the async
//!   database), one [`PatientData`] and one CQL context per subject (a define is evaluated
//!   once per subject, whichever criteria use it); results become `ExprValue`s: booleans,
//!   resource lists (their `Type/id`), scalars or lists of them.
//! * Each define is evaluated in its own context (`Engine::with_contexts`): one after
//!   `context Unfiltered` retrieves from all the data, and is evaluated once per evaluation,
//!   by the first subject that needs it, its value shared with every other subject through
//!   the evaluation's `flint_cql::SharedDefines` (unless it reads a Patient-context define,
//!   which makes it the subject's own).
//!
//! * Measure observations call the library's function of that name with the observed
//!   member (a stored resource, for a resource basis) or with no argument.
//!

use crate::library::{self, cql_error, unprocessable};
use crate::{ParsedCache, PatientData};
use async_trait::async_trait;
use flint_cql::{Context, Engine, SharedDefines, Value};
use flint_db::{Db, DbError, ErrorKind};
use flint_measure::{
    EvaluationParams, ExprValue, ExpressionEvaluator, MeasureError, PreparedLibrary, ResourceRef,
    Scalar, SubjectSession,
};
use flint_search::Engine as Search;
use flint_terminology::Terminology;
use std::collections::HashMap;
use std::sync::Arc;

/// Evaluates measure criteria written in CQL over the database, with `search` finding stored
/// Libraries and answering retrieves and `terminology` expanding value sets.
pub struct CqlMeasureEvaluator {
    search: Search,
    terminology: Arc<dyn Terminology>,
    parsed: Arc<ParsedCache>,
}

/// How many parsed resources an evaluator keeps by default ([`CqlMeasureEvaluator::new`]).
pub const DEFAULT_PARSED_CACHE_SIZE: usize = 200_000;

impl CqlMeasureEvaluator {
    /// An evaluator over the data `search` indexes, with value sets from `terminology`,
    /// keeping up to [`DEFAULT_PARSED_CACHE_SIZE`] parsed resources across evaluations.
    pub fn new(search: Search, terminology: Arc<dyn Terminology>) -> Self {
        CqlMeasureEvaluator {
            search,
            terminology,
            parsed: Arc::new(crate::parsed_cache(DEFAULT_PARSED_CACHE_SIZE)),
        }
    }

    /// The same evaluator keeping up to `resources` parsed resources across evaluations
    /// (the entries are resource versions by content hash, so they never go stale).
    pub fn with_parsed_cache_size(mut self, resources: usize) -> Self {
        self.parsed = Arc::new(crate::parsed_cache(resources));
        self
    }

    /// The parsed-resource cache of this evaluator (to share with `$cql`).
    pub fn parsed_cache(&self) -> Arc<ParsedCache> {
        self.parsed.clone()
    }
}

#[async_trait]
impl ExpressionEvaluator for CqlMeasureEvaluator {
    async fn prepare(
        &self,
        db: &Db,
        library: &str,
        params: &EvaluationParams,
    ) -> Result<Arc<dyn PreparedLibrary>, MeasureError> {
        let q = library::canonical_query(library);
        let stored = library::library_resource(&self.search, db, &q)
            .await?
            .ok_or_else(|| unprocessable(format!("Library `{library}` is not stored")))?;
        // An error in a library (syntax, semantics, include cycles) is a bad request.
        let kind = ErrorKind::Invalid;
        let lib = library::compile(&stored, library, kind)?;
        let resolved = library::resolve(&self.search, db, lib, library, kind).await?;
        library::check(&resolved, kind)?;
        let mut parameters = library::parameter_values(&params.named)?;
        let period = flint_cql::evaluate_expression(&format!(
            "Interval[@{}, @{}]",
            params.period.start, params.period.end
        ))
        .map_err(|e| unprocessable(format!("measurement period: {e}")))?;
        // A named parameter of that name overrides the period.
        parameters
            .entry("Measurement Period".to_string())
            .or_insert(period);
        Ok(Arc::new(Prepared {
            name: library.to_string(),
            resolved,
            parameters,
            search: self.search.clone(),
            terminology: self.terminology.clone(),
            parsed: self.parsed.clone(),
            shared: Arc::new(SharedDefines::default()),
        }))
    }
}

/// A library ready for one evaluation.
struct Prepared {
    name: String,
    resolved: Arc<flint_cql::Resolved>,
    parameters: HashMap<String, Value>,
    search: Search,
    terminology: Arc<dyn Terminology>,
    parsed: Arc<ParsedCache>,
    /// The Unfiltered defines' values, shared by every subject of this evaluation.
    shared: Arc<SharedDefines>,
}

impl PreparedLibrary for Prepared {
    fn subject<'s>(
        &'s self,
        db: &'s Db,
        subject: &'s ResourceRef,
    ) -> Result<Box<dyn SubjectSession + 's>, MeasureError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| DbError::fault(format!("measure evaluation outside the runtime: {e}")))?;
        let data = PatientData::new(
            db,
            &self.search,
            &*self.terminology,
            subject.id.clone(),
            handle.clone(),
        )
        .with_parsed_cache(&self.parsed);
        let unfiltered = PatientData::unfiltered(db, &self.search, &*self.terminology, handle)
            .with_parsed_cache(&self.parsed);
        let mut ctx = Context::default();
        ctx.parameters = self.parameters.clone();
        ctx.shared = Some(self.shared.clone());
        Ok(Box::new(Session {
            prepared: self,
            data,
            unfiltered,
            ctx,
        }))
    }
}

/// One subject's evaluation: its data provider and the context its expressions share.
struct Session<'s> {
    prepared: &'s Prepared,
    data: PatientData<'s>,
    /// All the data, for the defines of the Unfiltered context.
    unfiltered: PatientData<'s>,
    ctx: Context,
}

/// The engine over `prepared`'s library and includes: `data` for the Patient context,
/// `unfiltered` (all the data) for the Unfiltered one.
fn engine<'a>(
    prepared: &'a Prepared,
    data: &'a PatientData<'a>,
    unfiltered: &'a PatientData<'a>,
) -> Engine<'a> {
    Engine::resolved(&prepared.resolved).with_contexts(data, unfiltered)
}

impl SubjectSession for Session<'_> {
    fn has_function(&self, name: &str) -> bool {
        self.prepared
            .resolved
            .library
            .functions
            .iter()
            .any(|f| f.name == name && f.params.len() == 1)
    }

    fn evaluate(&mut self, name: &str) -> Result<ExprValue, MeasureError> {
        let p = self.prepared;
        let value = engine(p, &self.data, &self.unfiltered)
            .eval_define(name, &mut self.ctx)
            .map_err(|e| cql_error(&p.name, e))?;
        expr_value(value, &p.name, name)
    }

    fn evaluate_function(
        &mut self,
        name: &str,
        argument: Option<&ResourceRef>,
    ) -> Result<ExprValue, MeasureError> {
        let p = self.prepared;
        let arg = match argument {
            None => None,
            Some(r) => Some(
                self.data
                    .read(&r.type_name, &r.id)
                    .map_err(|e| cql_error(&p.name, e))?
                    .ok_or_else(|| {
                        unprocessable(format!(
                            "measure observation of {}/{}: the resource does not exist",
                            r.type_name, r.id
                        ))
                    })?,
            ),
        };
        let args = arg.into_iter().map(flint_cql::Expr::Lit).collect();
        let value = engine(p, &self.data, &self.unfiltered)
            .eval(
                &flint_cql::Expr::Call(name.to_string(), args, None),
                &mut self.ctx,
            )
            .map_err(|e| cql_error(&p.name, e))?;
        expr_value(value, &p.name, name)
    }
}

/// A CQL result as a measure result.
fn expr_value(v: Value, library: &str, name: &str) -> Result<ExprValue, MeasureError> {
    Ok(match v {
        Value::Null => ExprValue::Null,
        Value::Bool(b) => ExprValue::Boolean(b),
        Value::List(items) if items.iter().all(|i| matches!(i, Value::Fhir(_))) => {
            let mut refs = Vec::new();
            for i in &items {
                if let Value::Fhir(f) = i
                    && let (Some(t), Some(id)) =
                        (f.json()["resourceType"].as_str(), f.json()["id"].as_str())
                {
                    refs.push(ResourceRef::new(t, id));
                }
            }
            ExprValue::Resources(refs)
        }
        Value::List(items) => {
            let mut out = Vec::new();
            for i in items {
                if let Some(s) = scalar(i)? {
                    out.push(s);
                }
            }
            ExprValue::Values(out)
        }
        v => match scalar(v)? {
            Some(s) => ExprValue::Value(s),
            None => {
                return Err(unprocessable(format!(
                    "`{name}` of `{library}` is not a boolean, resources or a simple value"
                )));
            }
        },
    })
}

/// A simple CQL value as a measure scalar (`None` for null).
fn scalar(v: Value) -> Result<Option<Scalar>, MeasureError> {
    let v = flint_cql::fhir::to_system(v).map_err(|e| unprocessable(e.to_string()))?;
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Bool(b) => Scalar::Boolean(b),
        Value::Int(i) => Scalar::Integer(i64::from(i)),
        Value::Long(i) => Scalar::Integer(i),
        Value::Dec(d) => Scalar::Decimal(d.to_string().parse().unwrap_or(f64::NAN)),
        Value::Quantity(d, unit) => Scalar::Quantity {
            value: d.to_string().parse().unwrap_or(f64::NAN),
            unit: Some(unit),
        },
        Value::Str(s) => Scalar::String(s),
        Value::Code(c) => Scalar::Code(flint_measure::Code {
            system: c.system.clone(),
            code: c.code.clone(),
            display: c.display.clone(),
        }),
        other => Scalar::String(other.to_string()),
    }))
}
