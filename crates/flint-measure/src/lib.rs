//! `Measure/$evaluate-measure` independent of the CQL language: the [`ExpressionEvaluator`]
//! trait a CQL engine implements, the measure logic over its answers (CQFM/DEQM population
//! membership, counts, scores, stratifiers, supplemental data) and the `MeasureReport`.
//!
//! The flow of one evaluation ([`evaluate::evaluate`]):
//!
//! 1. The Measure is read into a [`measure::MeasureDef`] (scoring, population basis, groups,
//!    populations, stratifiers, supplemental data); one that cannot be evaluated (no library,
//!    a criteria without expression) is a 422.
//! 2. The evaluator prepares the Measure's primary library (`Measure.library[0]`) once, with
//!    the [`EvaluationParams`] (the measurement period and the named parameters).
//! 3. Every subject ([`subjects`]: every current resource of the Measure's subject type,
//!    Patient by default, or the single requested one) is evaluated on its own, in parallel
//!    on [`MeasureConfig::threads`] tasks: each population criterion, then the membership
//!    rules of the scoring ([`evaluate`] documents them), then observations, stratifier values
//!    and supplemental data of its members.
//! 4. The per-subject outcomes are summed into the report; a `subject-list` report also makes
//!    one `List` per population, which the caller stores.
//!
//! Errors are [`flint_db::DbError`]s: their kind decides the HTTP status (invalid 400,
//! not found 404, unprocessable 422, storage faults 500/503).

pub mod cql;
pub mod evaluate;
pub mod measure;
pub mod period;
pub mod value;

pub use cql::{CqlConfig, CqlService, LibrarySelector, ResultValue};
pub use evaluate::{Evaluation, EvaluationRequest, ReportType, evaluate};
pub use period::Interval;
pub use value::{Code, ExprValue, ResourceRef, Scalar};

use async_trait::async_trait;
use flint_db::{Db, DbError};
use serde_json::Value;
use std::sync::Arc;

/// The error type of measure evaluation (its kind decides the HTTP status).
pub type MeasureError = DbError;

/// One named parameter of an evaluation: every value given for the name, in order (a name
/// given more than once is a list; once, a single value).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedParam {
    /// The parameter name (`Parameters.parameter.name`).
    pub name: String,
    /// The values given for it.
    pub values: Vec<ParamValue>,
}

/// A parameter value as it came in a `Parameters` resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamValue {
    /// The FHIR type of the value (`boolean`, `integer`, `decimal`, `string`, `code`, `date`,
    /// `dateTime`, `Quantity`, `Coding`, ...): the suffix of `value[x]`, first letter lower
    /// case for primitives.
    pub fhir_type: String,
    /// The value's JSON (`value[x]`'s content).
    pub value: Value,
}

/// What an evaluation is parameterised with: the CQL `Measurement Period` and named
/// parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationParams {
    /// The measurement period, an interval of DateTimes (both ends included).
    pub period: Interval,
    /// Further named parameters (from a POST `Parameters` body), by name.
    pub named: Vec<NamedParam>,
}

/// The CQL side of measure evaluation: prepares a Measure's library for one evaluation.
///
/// `prepare` is called once per `$evaluate-measure`; the returned [`PreparedLibrary`] is then
/// called for every subject (from several tasks at once when [`MeasureConfig::threads`] > 1).
#[async_trait]
pub trait ExpressionEvaluator: Send + Sync {
    /// Prepares (resolves, translates, compiles) the library with canonical url `library`
    /// (`url` or `url|version`, from `Measure.library[0]`) for an evaluation over `db` with
    /// `params`. An unknown library or one that does not compile is an `Unprocessable`
    /// error (422); a storage fault keeps its kind.
    async fn prepare(
        &self,
        db: &Db,
        library: &str,
        params: &EvaluationParams,
    ) -> Result<Arc<dyn PreparedLibrary>, MeasureError>;
}

/// A library prepared for one evaluation: opens the evaluation of each subject.
///
/// Subjects are evaluated on tokio's blocking pool, many per task, from several tasks at
/// once when [`MeasureConfig::threads`] > 1: a session may wait for the database there.
pub trait PreparedLibrary: Send + Sync {
    /// Opens the evaluation of `subject` (e.g. `Patient/1`) over `db`: the expressions the
    /// session evaluates share one context, so a define used by several criteria is
    /// evaluated once per subject.
    fn subject<'s>(
        &'s self,
        db: &'s Db,
        subject: &'s ResourceRef,
    ) -> Result<Box<dyn SubjectSession + 's>, MeasureError>;
}

/// The evaluation of one subject's expressions (opened by [`PreparedLibrary::subject`]).
pub trait SubjectSession {
    /// The value of expression `name` (a population, stratifier, stratifier component or
    /// supplemental data criterion) for the subject.
    fn evaluate(&mut self, name: &str) -> Result<ExprValue, MeasureError>;

    /// The value of function `name` (a measure observation) for the subject, called with
    /// `argument`: the population member observed (e.g. an Encounter) for a resource
    /// population basis, `None` (no argument) for a boolean one.
    fn evaluate_function(
        &mut self,
        name: &str,
        argument: Option<&ResourceRef>,
    ) -> Result<ExprValue, MeasureError>;

    /// Whether `name` is a function of one argument (then a stratifier of a resource-basis
    /// measure is evaluated per member, with the member as argument). None by default.
    fn has_function(&self, _name: &str) -> bool {
        false
    }
}

/// Settings of measure evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureConfig {
    /// How many subjects are evaluated at once (`FHIR_OPERATION_EVALUATE_MEASURE_THREADS`);
    /// 1 evaluates them one after the other on the calling task.
    pub threads: usize,
    /// Whether a POST stores its MeasureReport
    /// (`FHIR_OPERATION_EVALUATE_MEASURE_REPORT_PERSISTENCE`); subject-list `List`s are
    /// stored either way.
    pub report_persistence: bool,
    /// How long one evaluation may take before it is abandoned
    /// (`FHIR_OPERATION_EVALUATE_MEASURE_TIMEOUT`, 1 h by default; `None`: no limit).
    pub timeout: Option<std::time::Duration>,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        MeasureConfig {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            report_persistence: true,
            timeout: Some(std::time::Duration::from_secs(3600)),
        }
    }
}

/// The subjects of a population: the ids of every current resource of `subject_type` (e.g.
/// `Patient`) in `db`, in id order.
pub fn subjects(db: &Db, subject_type: &str) -> Result<Vec<ResourceRef>, MeasureError> {
    let ids = db.type_ids(subject_type)?;
    Ok(ids
        .iter()
        .map(|id| ResourceRef::new(subject_type, id))
        .collect())
}
