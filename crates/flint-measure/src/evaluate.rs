//! One `$evaluate-measure`: every subject evaluated, the CQFM/DEQM membership rules applied,
//! counts, scores, strata and supplemental data summed into a `MeasureReport`.
//!
//! # Membership rules
//!
//! Each subject's populations are first the raw results of their criteria (for a boolean
//! basis: the subject when `true`; for a resource basis: the listed resources). An empty
//! initial population ends the subject's evaluation (no other criteria are evaluated). Then,
//! by scoring (a population the group does not define is empty, except a missing denominator,
//! which is the initial population):
//!
//! * proportion: denominator ⊆ initial population; denominator exclusion ⊆ denominator;
//!   numerator ⊆ denominator minus denominator exclusions; numerator exclusion ⊆ numerator;
//!   denominator exception ⊆ denominator minus exclusions minus numerator.
//!   Score = (numerator − numerator exclusions) / (denominator − denominator exclusions −
//!   denominator exceptions); none when that denominator is 0.
//! * ratio: denominator and numerator ⊆ initial population; denominator exclusion ⊆
//!   denominator; numerator exclusion ⊆ numerator. Score = (numerator − numerator
//!   exclusions) / (denominator − denominator exclusions), or, with two measure observations
//!   (of the numerator and of the denominator), the ratio of their aggregates. With two
//!   initial populations (the numerator's and the denominator's, told apart by
//!   `cqfm-criteriaReference`), each is counted on its own, the denominator lies in its
//!   initial population and the numerator in the other; a subject in either is evaluated.
//! * continuous-variable: measure population ⊆ initial population; measure population
//!   exclusion ⊆ measure population. The measure observation function is called for every
//!   member of the measure population that is not excluded (with the member as argument for a
//!   resource basis); score = the aggregate (`cqfm-aggregateMethod`) of the observations.
//! * cohort: the initial population only; no score.
//!
//! The count of a population is the number of its members (subjects, or resources of the
//! basis) after these rules; of a measure observation, the number of observations (a `null`
//! observation is left out).
//!
//! # Stratifiers and supplemental data
//!
//! A stratifier's criteria (or each of its components) is evaluated for every subject with a
//! non-empty initial population; all the subject's members fall in the stratum of that value
//! (`null` is a stratum of its own, text `null`). For a resource basis whose stratifier
//! criteria are functions of one argument (CQFM: `define function "Stay"(E Encounter)`),
//! each member is stratified on its own, by the function called with it. Each stratum has the group's populations
//! counted over its members and its own score. Values are reported as a CodeableConcept
//! ([`Scalar::stratum_value`]).
//!
//! Supplemental data is evaluated for every subject in some initial population and reported
//! the way DEQM R4 does for summary reports: one contained `Observation` per element and
//! value, whose `code` is the value, `valueInteger` the number of subjects with that value,
//! and `extension` [`CRITERIA_REFERENCE`] the element's id; each is listed in
//! `evaluatedResource` (`#id`) with the same extension.

use crate::measure::{Basis, GroupDef, MeasureDef, PopulationKind, Scoring};
use crate::value::json_number;
use crate::{
    EvaluationParams, ExprValue, ExpressionEvaluator, MeasureConfig, MeasureError, PreparedLibrary,
    ResourceRef, Scalar, SubjectSession,
};
use flint_db::{Db, ErrorKind};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};

/// The DEQM extension naming the supplemental data element a contained Observation reports.
pub const CRITERIA_REFERENCE: &str =
    "http://hl7.org/fhir/us/davinci-deqm/StructureDefinition/extension-criteriaReference";

/// What a report is about (`reportType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportType {
    /// `population`: counts of all subjects (MeasureReport type `summary`).
    Population,
    /// `subject`: one subject (type `individual`).
    Subject,
    /// `subject-list`: counts plus a `List` of the members of each population (type
    /// `subject-list`).
    SubjectList,
}

impl ReportType {
    /// The report type of a `reportType` value.
    pub fn parse(s: &str) -> Option<ReportType> {
        Some(match s {
            "population" => ReportType::Population,
            "subject" => ReportType::Subject,
            "subject-list" => ReportType::SubjectList,
            _ => return None,
        })
    }

    /// The MeasureReport `type` code.
    pub fn report_code(self) -> &'static str {
        match self {
            ReportType::Population => "summary",
            ReportType::Subject => "individual",
            ReportType::SubjectList => "subject-list",
        }
    }
}

/// An evaluation request.
#[derive(Debug, Clone)]
pub struct EvaluationRequest {
    /// The parameters handed to the library.
    pub params: EvaluationParams,
    /// `periodStart` and `periodEnd` as given, for the report's `period`.
    pub report_period: (String, String),
    /// The report type.
    pub report_type: ReportType,
    /// The single subject of a `subject` report (required then) or of a population report
    /// limited to it.
    pub subject: Option<ResourceRef>,
    /// The report's `date` (now, as a FHIR dateTime).
    pub date: String,
}

/// The outcome: the MeasureReport (without id) and, for `subject-list`, the `List`s its
/// `subjectResults` reference (with the ids `new_id` gave them), for the caller to store.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The MeasureReport.
    pub report: Value,
    /// The subject lists.
    pub lists: Vec<Value>,
}

/// Evaluates `measure` (a Measure resource) over `db` with `evaluator`; `new_id` names the
/// subject lists.
pub async fn evaluate(
    evaluator: &dyn ExpressionEvaluator,
    db: &Db,
    measure: &Value,
    req: &EvaluationRequest,
    config: &MeasureConfig,
    new_id: &mut (dyn FnMut() -> String + Send),
) -> Result<Evaluation, MeasureError> {
    let def = Arc::new(MeasureDef::parse(measure)?);
    let subjects = match (&req.subject, req.report_type) {
        (Some(s), _) => {
            if s.type_name != def.subject_type {
                return Err(MeasureError::new(
                    ErrorKind::Invalid,
                    format!(
                        "The subject `{s}` is not of the Measure's subject type `{}`.",
                        def.subject_type
                    ),
                )
                .at("subject"));
            }
            if db
                .resource(&s.type_name, &s.id)?
                .is_none_or(|h| h.is_deleted())
            {
                return Err(MeasureError::new(
                    ErrorKind::NotFound,
                    format!("The subject `{s}` was not found."),
                )
                .at("subject"));
            }
            vec![s.clone()]
        }
        (None, ReportType::Subject) => {
            return Err(MeasureError::new(
                ErrorKind::Invalid,
                "The report type `subject` needs the parameter `subject`.",
            )
            .at("subject"));
        }
        (None, _) => crate::subjects(db, &def.subject_type)?,
    };
    let lib = evaluator.prepare(db, &def.library, &req.params).await?;
    let keep_members = req.report_type == ReportType::SubjectList;
    let threads = config.threads.clamp(1, subjects.len().max(1));
    // Set when this evaluation is dropped (a time-out) or done: the blocking tasks stop at
    // their next subject.
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    // Subjects are handed out in small batches from a shared counter, so that a thread that
    // drew subjects with little data takes the next batch instead of idling while another
    // works through a slow stretch. Each batch has its own accumulator and they are merged in
    // batch order, so member lists and observations keep the subjects' order whatever the
    // scheduling.
    let batch = batch_size(subjects.len(), threads);
    let subjects = Arc::new(subjects);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..threads {
        let (lib, db, def) = (lib.clone(), db.clone(), def.clone());
        let (subjects, next, stop) = (subjects.clone(), next.clone(), stop.0.clone());
        tasks.spawn_blocking(move || -> Result<Vec<(usize, Acc)>, MeasureError> {
            let mut parts = Vec::new();
            loop {
                let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                let start = i * batch;
                if start >= subjects.len() {
                    return Ok(parts);
                }
                let chunk = &subjects[start..subjects.len().min(start + batch)];
                parts.push((
                    i,
                    evaluate_chunk(&*lib, &db, &def, chunk, keep_members, &stop)?,
                ));
            }
        });
    }
    let mut parts = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let done = r.map_err(|e| MeasureError::fault(format!("evaluation task: {e}")))?;
        parts.extend(done?);
    }
    parts.sort_by_key(|(i, _)| *i);
    let mut parts = parts.into_iter().map(|(_, a)| a);
    let mut acc = parts.next().unwrap_or_else(|| Acc::new(&def, keep_members));
    for p in parts {
        acc.merge(p);
    }
    Ok(report(&def, req, acc, new_id))
}

/// How many subjects a thread takes at a time: small enough that the threads finish
/// together (about 16 batches per thread), large enough that the shared counter is cheap.
fn batch_size(subjects: usize, threads: usize) -> usize {
    (subjects / (threads * 16)).clamp(1, 64)
}

/// Raises its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, AtomicOrdering::Relaxed);
    }
}

/// Evaluates `subjects` one after the other (on a blocking thread), until `stop` is raised.
fn evaluate_chunk(
    lib: &dyn PreparedLibrary,
    db: &Db,
    def: &MeasureDef,
    subjects: &[ResourceRef],
    keep_members: bool,
    stop: &AtomicBool,
) -> Result<Acc, MeasureError> {
    let mut acc = Acc::new(def, keep_members);
    for s in subjects {
        if stop.load(AtomicOrdering::Relaxed) {
            return Err(MeasureError::unavailable("the evaluation was abandoned"));
        }
        let mut session = lib.subject(db, s)?;
        let outcome = evaluate_subject(&mut *session, def, s)?;
        acc.add(outcome);
    }
    Ok(acc)
}

/// The members of one subject's populations, by kind, in a set.
type Sets = BTreeMap<PopulationKind, BTreeSet<String>>;

/// What one subject contributes to one group.
struct GroupOutcome {
    sets: Sets,
    /// Per population index: the observed members and their observations.
    observations: Vec<Vec<(String, f64)>>,
    /// Per stratifier: the subject's values (one per component); `None` when the subject has
    /// no members.
    strata: Vec<Option<StratumOf>>,
}

/// Where a subject's members fall for one stratifier.
enum StratumOf {
    /// All of them in the stratum of these values (one per component).
    Subject(Vec<Option<Scalar>>),
    /// Each member (of a resource basis) in the stratum of its own values: the stratifier's
    /// criteria are functions of the member.
    PerMember(BTreeMap<String, Vec<Option<Scalar>>>),
}

impl GroupOutcome {
    /// The part of this outcome about `members` only.
    fn restricted(&self, members: &BTreeSet<&str>) -> GroupOutcome {
        GroupOutcome {
            sets: self
                .sets
                .iter()
                .map(|(k, set)| {
                    let kept = set
                        .iter()
                        .filter(|m| members.contains(m.as_str()))
                        .cloned()
                        .collect();
                    (*k, kept)
                })
                .collect(),
            observations: self
                .observations
                .iter()
                .map(|obs| {
                    obs.iter()
                        .filter(|(m, _)| members.contains(m.as_str()))
                        .cloned()
                        .collect()
                })
                .collect(),
            strata: Vec::new(),
        }
    }
}

struct SubjectOutcome {
    groups: Vec<GroupOutcome>,
    /// Per supplemental data element: its values (empty when the subject is in no initial
    /// population).
    sde: Vec<Vec<Scalar>>,
}

/// An expression cache for one subject (a name evaluated once however often it is used).
struct SubjectEval<'a, 's> {
    session: &'a mut (dyn SubjectSession + 's),
    cache: HashMap<String, ExprValue>,
}

impl SubjectEval<'_, '_> {
    fn get(&mut self, name: &str) -> Result<ExprValue, MeasureError> {
        if let Some(v) = self.cache.get(name) {
            return Ok(v.clone());
        }
        let v = self.session.evaluate(name)?;
        self.cache.insert(name.to_string(), v.clone());
        Ok(v)
    }
}

fn wrong(name: &str, subject: &ResourceRef, what: &str, got: &ExprValue) -> MeasureError {
    MeasureError::new(
        ErrorKind::Unprocessable,
        format!("The expression `{name}` returned {got:?} for `{subject}`, expected {what}."),
    )
}

fn members_of(
    v: &ExprValue,
    basis: &Basis,
    subject: &ResourceRef,
    name: &str,
) -> Result<BTreeSet<String>, MeasureError> {
    match (v, basis) {
        (ExprValue::Null, _) => Ok(BTreeSet::new()),
        (ExprValue::Boolean(b), Basis::Boolean) => Ok(if *b {
            BTreeSet::from([subject.to_string()])
        } else {
            BTreeSet::new()
        }),
        (ExprValue::Resources(rs), Basis::Resource(_)) => {
            Ok(rs.iter().map(ResourceRef::to_string).collect())
        }
        (_, Basis::Boolean) => Err(wrong(name, subject, "a Boolean", v)),
        (_, Basis::Resource(t)) => Err(wrong(name, subject, &format!("a list of {t}"), v)),
    }
}

fn scalar_of(
    v: ExprValue,
    name: &str,
    subject: &ResourceRef,
) -> Result<Option<Scalar>, MeasureError> {
    match v {
        ExprValue::Null => Ok(None),
        ExprValue::Value(s) => Ok(Some(s)),
        ExprValue::Boolean(b) => Ok(Some(Scalar::Boolean(b))),
        other => Err(wrong(name, subject, "a single value", &other)),
    }
}

/// Applies the membership rules of `scoring` to the raw criteria results.
pub fn apply_rules(scoring: Scoring, group: &GroupDef, raw: &Sets) -> Sets {
    use PopulationKind::*;
    let get = |k| raw.get(&k).cloned().unwrap_or_default();
    let and = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> BTreeSet<String> {
        a.intersection(b).cloned().collect()
    };
    let minus = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> BTreeSet<String> {
        a.difference(b).cloned().collect()
    };
    let ip = get(InitialPopulation);
    let mut out = Sets::new();
    match scoring {
        Scoring::Proportion | Scoring::Ratio => {
            let den = if group.population(Denominator).is_some() {
                and(&get(Denominator), &ip)
            } else {
                ip.clone()
            };
            let denex = and(&get(DenominatorExclusion), &den);
            let num = if scoring == Scoring::Proportion {
                minus(&and(&get(Numerator), &den), &denex)
            } else if group.population(NumeratorInitialPopulation).is_some() {
                // Two initial populations: the numerator is inside its own.
                let num_ip = get(NumeratorInitialPopulation);
                let num = and(&get(Numerator), &num_ip);
                out.insert(NumeratorInitialPopulation, num_ip);
                num
            } else {
                and(&get(Numerator), &ip)
            };
            let numex = and(&get(NumeratorExclusion), &num);
            if scoring == Scoring::Proportion {
                let denexcep = minus(&minus(&and(&get(DenominatorException), &den), &denex), &num);
                out.insert(DenominatorException, denexcep);
            }
            out.insert(Denominator, den);
            out.insert(DenominatorExclusion, denex);
            out.insert(Numerator, num);
            out.insert(NumeratorExclusion, numex);
        }
        Scoring::ContinuousVariable => {
            let mp = and(&get(MeasurePopulation), &ip);
            let mpex = and(&get(MeasurePopulationExclusion), &mp);
            out.insert(MeasurePopulation, mp);
            out.insert(MeasurePopulationExclusion, mpex);
        }
        Scoring::Cohort => {}
    }
    out.insert(InitialPopulation, ip);
    out
}

/// The exclusion of the population a measure observation observes.
fn exclusion_of(kind: PopulationKind) -> Option<PopulationKind> {
    match kind {
        PopulationKind::Numerator => Some(PopulationKind::NumeratorExclusion),
        PopulationKind::Denominator => Some(PopulationKind::DenominatorExclusion),
        PopulationKind::MeasurePopulation => Some(PopulationKind::MeasurePopulationExclusion),
        _ => None,
    }
}

fn evaluate_subject(
    session: &mut dyn SubjectSession,
    def: &MeasureDef,
    subject: &ResourceRef,
) -> Result<SubjectOutcome, MeasureError> {
    let mut ev = SubjectEval {
        session,
        cache: HashMap::new(),
    };
    let mut groups = Vec::new();
    let mut in_some_ip = false;
    for g in &def.groups {
        let mut raw = Sets::new();
        let ip_def = g
            .population(PopulationKind::InitialPopulation)
            .ok_or_else(|| {
                MeasureError::new(
                    ErrorKind::Unprocessable,
                    "a Measure group has no initial-population",
                )
            })?;
        let ip = members_of(
            &ev.get(&ip_def.expression)?,
            &g.basis,
            subject,
            &ip_def.expression,
        )?;
        let mut has_members = !ip.is_empty();
        raw.insert(PopulationKind::InitialPopulation, ip);
        // A ratio group's second initial population (the numerator's).
        if let Some(p) = g.population(PopulationKind::NumeratorInitialPopulation) {
            let ip = members_of(&ev.get(&p.expression)?, &g.basis, subject, &p.expression)?;
            has_members |= !ip.is_empty();
            raw.insert(PopulationKind::NumeratorInitialPopulation, ip);
        }
        if has_members {
            in_some_ip = true;
            for p in &g.populations {
                if matches!(
                    p.kind,
                    PopulationKind::InitialPopulation
                        | PopulationKind::NumeratorInitialPopulation
                        | PopulationKind::MeasureObservation
                ) {
                    continue;
                }
                let m = members_of(&ev.get(&p.expression)?, &g.basis, subject, &p.expression)?;
                raw.entry(p.kind).or_default().extend(m);
            }
        }
        let sets = apply_rules(g.scoring, g, &raw);
        let mut observations = Vec::new();
        for p in &g.populations {
            let mut obs = Vec::new();
            if let (PopulationKind::MeasureObservation, Some(observes)) = (p.kind, p.observes) {
                let empty = BTreeSet::new();
                let observed = sets.get(&observes).unwrap_or(&empty);
                let excluded = exclusion_of(observes)
                    .and_then(|k| sets.get(&k))
                    .unwrap_or(&empty);
                for m in observed.difference(excluded) {
                    let arg = match g.basis {
                        Basis::Boolean => None,
                        Basis::Resource(_) => ResourceRef::parse(m),
                    };
                    let v = ev.session.evaluate_function(&p.expression, arg.as_ref())?;
                    match scalar_of(v, &p.expression, subject)? {
                        None => {}
                        Some(s) => match s.number() {
                            Some(n) => obs.push((m.clone(), n)),
                            None => {
                                return Err(wrong(
                                    &p.expression,
                                    subject,
                                    "a number or quantity",
                                    &ExprValue::Value(s),
                                ));
                            }
                        },
                    }
                }
            }
            observations.push(obs);
        }
        let mut strata = Vec::new();
        for s in &g.stratifiers {
            if !has_members {
                strata.push(None);
                continue;
            }
            let names: Vec<&str> = match &s.criteria {
                Some(c) => vec![c.as_str()],
                None => s.components.iter().map(|c| c.expression.as_str()).collect(),
            };
            let per_member = matches!(g.basis, Basis::Resource(_))
                && names.iter().all(|n| ev.session.has_function(n));
            if per_member {
                // Every member is in an initial population (the rules keep the other
                // populations inside them).
                let mut by_member = BTreeMap::new();
                let mut ip = BTreeSet::new();
                for k in [
                    PopulationKind::InitialPopulation,
                    PopulationKind::NumeratorInitialPopulation,
                ] {
                    ip.extend(sets.get(&k).into_iter().flatten());
                }
                for m in ip {
                    let arg = ResourceRef::parse(m);
                    let mut values = Vec::new();
                    for name in &names {
                        let v = ev.session.evaluate_function(name, arg.as_ref())?;
                        values.push(scalar_of(v, name, subject)?);
                    }
                    by_member.insert(m.clone(), values);
                }
                strata.push(Some(StratumOf::PerMember(by_member)));
                continue;
            }
            let mut values = Vec::new();
            for name in names {
                let v = ev.get(name)?;
                values.push(scalar_of(v, name, subject)?);
            }
            strata.push(Some(StratumOf::Subject(values)));
        }
        groups.push(GroupOutcome {
            sets,
            observations,
            strata,
        });
    }
    let mut sde = Vec::new();
    for s in &def.supplemental {
        if !in_some_ip && !def.groups.is_empty() {
            sde.push(Vec::new());
            continue;
        }
        let values = match ev.get(&s.expression)? {
            ExprValue::Null => Vec::new(),
            ExprValue::Boolean(b) => vec![Scalar::Boolean(b)],
            ExprValue::Value(v) => vec![v],
            ExprValue::Values(vs) => vs,
            ExprValue::Resources(rs) => rs.iter().map(|r| Scalar::String(r.to_string())).collect(),
        };
        sde.push(values);
    }
    Ok(SubjectOutcome { groups, sde })
}

/// Counts (and members) per population kind, observations per population index.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<PopulationKind, usize>,
    members: BTreeMap<PopulationKind, Vec<String>>,
    observations: Vec<Vec<(String, f64)>>,
}

impl Tally {
    fn new(pops: usize) -> Self {
        Tally {
            observations: vec![Vec::new(); pops],
            ..Tally::default()
        }
    }

    fn add(&mut self, g: &GroupOutcome, keep_members: bool) {
        for (k, set) in &g.sets {
            *self.counts.entry(*k).or_default() += set.len();
            if keep_members {
                self.members
                    .entry(*k)
                    .or_default()
                    .extend(set.iter().cloned());
            }
        }
        for (acc, obs) in self.observations.iter_mut().zip(&g.observations) {
            acc.extend(obs.iter().cloned());
        }
    }

    fn merge(&mut self, other: Tally) {
        for (k, n) in other.counts {
            *self.counts.entry(k).or_default() += n;
        }
        for (k, m) in other.members {
            self.members.entry(k).or_default().extend(m);
        }
        for (acc, obs) in self.observations.iter_mut().zip(other.observations) {
            acc.extend(obs);
        }
    }

    fn count(&self, k: PopulationKind) -> usize {
        self.counts.get(&k).copied().unwrap_or(0)
    }

    /// The score of `group` over this tally.
    fn score(&self, group: &GroupDef) -> Option<f64> {
        use PopulationKind::*;
        let c = |k| self.count(k) as f64;
        let observed = |kind: PopulationKind| -> Option<f64> {
            let (i, p) = group
                .populations
                .iter()
                .enumerate()
                .find(|(_, p)| p.kind == MeasureObservation && p.observes == Some(kind))?;
            let values: Vec<f64> = self.observations[i].iter().map(|(_, v)| *v).collect();
            p.aggregate.apply(&values)
        };
        match group.scoring {
            Scoring::Proportion => {
                let den = c(Denominator) - c(DenominatorExclusion) - c(DenominatorException);
                (den > 0.0).then(|| (c(Numerator) - c(NumeratorExclusion)) / den)
            }
            Scoring::Ratio => {
                let has_obs = group
                    .populations
                    .iter()
                    .any(|p| p.kind == MeasureObservation);
                if has_obs {
                    let (n, d) = (observed(Numerator)?, observed(Denominator)?);
                    (d != 0.0).then(|| n / d)
                } else {
                    let den = c(Denominator) - c(DenominatorExclusion);
                    (den > 0.0).then(|| (c(Numerator) - c(NumeratorExclusion)) / den)
                }
            }
            Scoring::ContinuousVariable => observed(MeasurePopulation),
            Scoring::Cohort => None,
        }
    }
}

/// One stratum's values and tally.
struct Stratum {
    values: Vec<Option<Scalar>>,
    tally: Tally,
}

struct GroupAcc {
    tally: Tally,
    strata: Vec<BTreeMap<String, Stratum>>,
}

struct Acc {
    keep_members: bool,
    groups: Vec<GroupAcc>,
    sde: Vec<BTreeMap<String, (Scalar, usize)>>,
}

fn stratum_key(values: &[Option<Scalar>]) -> String {
    values
        .iter()
        .map(|v| v.as_ref().map_or_else(|| "null".to_string(), Scalar::key))
        .collect::<Vec<_>>()
        .join("\u{1}")
}

impl Acc {
    fn new(def: &MeasureDef, keep_members: bool) -> Self {
        Acc {
            keep_members,
            groups: def
                .groups
                .iter()
                .map(|g| GroupAcc {
                    tally: Tally::new(g.populations.len()),
                    strata: g.stratifiers.iter().map(|_| BTreeMap::new()).collect(),
                })
                .collect(),
            sde: def.supplemental.iter().map(|_| BTreeMap::new()).collect(),
        }
    }

    fn add(&mut self, o: SubjectOutcome) {
        for (acc, g) in self.groups.iter_mut().zip(o.groups) {
            acc.tally.add(&g, self.keep_members);
            let n = g.observations.len();
            let keep = self.keep_members;
            for (strata, of) in acc.strata.iter_mut().zip(&g.strata) {
                let mut add = |values: &Vec<Option<Scalar>>, part: &GroupOutcome| {
                    strata
                        .entry(stratum_key(values))
                        .or_insert_with(|| Stratum {
                            values: values.clone(),
                            tally: Tally::new(n),
                        })
                        .tally
                        .add(part, keep);
                };
                match of {
                    None => {}
                    Some(StratumOf::Subject(values)) => add(values, &g),
                    Some(StratumOf::PerMember(by_member)) => {
                        let mut groups: BTreeMap<String, (&Vec<Option<Scalar>>, BTreeSet<&str>)> =
                            BTreeMap::new();
                        for (m, values) in by_member {
                            groups
                                .entry(stratum_key(values))
                                .or_insert_with(|| (values, BTreeSet::new()))
                                .1
                                .insert(m.as_str());
                        }
                        for (values, members) in groups.into_values() {
                            add(values, &g.restricted(&members));
                        }
                    }
                }
            }
        }
        for (acc, values) in self.sde.iter_mut().zip(o.sde) {
            let mut seen = BTreeSet::new();
            for v in values {
                if seen.insert(v.key()) {
                    acc.entry(v.key()).or_insert((v, 0)).1 += 1;
                }
            }
        }
    }

    fn merge(&mut self, other: Acc) {
        for (a, b) in self.groups.iter_mut().zip(other.groups) {
            a.tally.merge(b.tally);
            for (sa, sb) in a.strata.iter_mut().zip(b.strata) {
                for (k, s) in sb {
                    match sa.get_mut(&k) {
                        Some(t) => t.tally.merge(s.tally),
                        None => {
                            sa.insert(k, s);
                        }
                    }
                }
            }
        }
        for (a, b) in self.sde.iter_mut().zip(other.sde) {
            for (k, (v, n)) in b {
                a.entry(k).or_insert((v, 0)).1 += n;
            }
        }
    }
}

fn population_code(p: &crate::measure::PopulationDef) -> Value {
    if p.code.is_null() {
        json!({"coding": [{"system": crate::measure::POPULATION_SYSTEM, "code": p.kind.code()}]})
    } else {
        p.code.clone()
    }
}

/// The population entries of a group or stratum over `tally`.
fn populations(
    g: &GroupDef,
    tally: &Tally,
    mut lists: Option<&mut Vec<Value>>,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, p) in g.populations.iter().enumerate() {
        let mut e = Map::new();
        if let Some(id) = &p.id {
            e.insert("id".into(), json!(id));
        }
        e.insert("code".into(), population_code(p));
        let (count, members): (usize, Vec<String>) = if p.kind == PopulationKind::MeasureObservation
        {
            let obs = &tally.observations[i];
            (obs.len(), obs.iter().map(|(m, _)| m.clone()).collect())
        } else {
            (
                tally.count(p.kind),
                tally.members.get(&p.kind).cloned().unwrap_or_default(),
            )
        };
        e.insert("count".into(), json!(count));
        if let Some(lists) = lists.as_mut() {
            let id = new_id();
            let mut seen = BTreeSet::new();
            let entries: Vec<Value> = members
                .into_iter()
                .filter(|m| seen.insert(m.clone()))
                .map(|m| json!({"item": {"reference": m}}))
                .collect();
            let mut list = json!({
                "resourceType": "List",
                "id": id,
                "status": "current",
                "mode": "working",
            });
            if !entries.is_empty() {
                list["entry"] = json!(entries);
            }
            lists.push(list);
            e.insert(
                "subjectResults".into(),
                json!({"reference": format!("List/{id}")}),
            );
        }
        out.push(Value::Object(e));
    }
    out
}

fn score_json(v: Option<f64>) -> Option<Value> {
    v.filter(|v| v.is_finite())
        .map(|v| json!({"value": json_number(v)}))
}

fn report(
    def: &MeasureDef,
    req: &EvaluationRequest,
    acc: Acc,
    new_id: &mut (dyn FnMut() -> String + Send),
) -> Evaluation {
    let mut lists = Vec::new();
    let mut groups = Vec::new();
    for (g, ga) in def.groups.iter().zip(acc.groups) {
        let mut e = Map::new();
        if let Some(id) = &g.id {
            e.insert("id".into(), json!(id));
        }
        if let Some(c) = &g.code {
            e.insert("code".into(), c.clone());
        }
        let l = (req.report_type == ReportType::SubjectList).then_some(&mut lists);
        e.insert(
            "population".into(),
            json!(populations(g, &ga.tally, l, &mut *new_id)),
        );
        if let Some(s) = score_json(ga.tally.score(g)) {
            e.insert("measureScore".into(), s);
        }
        let mut stratifiers = Vec::new();
        for (s, strata) in g.stratifiers.iter().zip(ga.strata) {
            let mut se = Map::new();
            if let Some(id) = &s.id {
                se.insert("id".into(), json!(id));
            }
            if let Some(c) = &s.code {
                se.insert("code".into(), json!([c]));
            }
            let mut out = Vec::new();
            for stratum in strata.into_values() {
                let mut st = Map::new();
                let text = |v: &Option<Scalar>| {
                    v.as_ref()
                        .map_or_else(|| json!({"text": "null"}), Scalar::stratum_value)
                };
                if s.components.is_empty() {
                    st.insert("value".into(), text(&stratum.values[0]));
                } else {
                    let comps: Vec<Value> = s
                        .components
                        .iter()
                        .zip(&stratum.values)
                        .map(|(c, v)| {
                            let mut ce = Map::new();
                            ce.insert(
                                "code".into(),
                                c.code
                                    .clone()
                                    .unwrap_or_else(|| json!({"text": c.expression})),
                            );
                            ce.insert("value".into(), text(v));
                            Value::Object(ce)
                        })
                        .collect();
                    st.insert("component".into(), json!(comps));
                }
                let l = (req.report_type == ReportType::SubjectList).then_some(&mut lists);
                st.insert(
                    "population".into(),
                    json!(populations(g, &stratum.tally, l, &mut *new_id)),
                );
                if let Some(sc) = score_json(stratum.tally.score(g)) {
                    st.insert("measureScore".into(), sc);
                }
                out.push(Value::Object(st));
            }
            if !out.is_empty() {
                se.insert("stratum".into(), json!(out));
            }
            stratifiers.push(Value::Object(se));
        }
        if !stratifiers.is_empty() {
            e.insert("stratifier".into(), json!(stratifiers));
        }
        groups.push(Value::Object(e));
    }
    let mut contained = Vec::new();
    let mut evaluated = Vec::new();
    for (s, values) in def.supplemental.iter().zip(acc.sde) {
        for (i, (v, n)) in values.into_values().enumerate() {
            let id = format!("{}-{}", s.id, i + 1);
            let ext = json!([{"url": CRITERIA_REFERENCE, "valueString": s.id}]);
            contained.push(json!({
                "resourceType": "Observation",
                "id": id,
                "extension": ext,
                "status": "final",
                "code": v.codeable_concept(),
                "valueInteger": n,
            }));
            evaluated.push(json!({"extension": ext, "reference": format!("#{id}")}));
        }
    }
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("MeasureReport"));
    if !contained.is_empty() {
        r.insert("contained".into(), json!(contained));
    }
    r.insert("status".into(), json!("complete"));
    r.insert("type".into(), json!(req.report_type.report_code()));
    r.insert("measure".into(), json!(def.canonical));
    if req.report_type == ReportType::Subject
        && let Some(s) = &req.subject
    {
        r.insert("subject".into(), json!({"reference": s.to_string()}));
    }
    r.insert("date".into(), json!(req.date));
    r.insert(
        "period".into(),
        json!({"start": req.report_period.0, "end": req.report_period.1}),
    );
    if !groups.is_empty() {
        r.insert("group".into(), json!(groups));
    }
    if !evaluated.is_empty() {
        r.insert("evaluatedResource".into(), json!(evaluated));
    }
    Evaluation {
        report: Value::Object(r),
        lists,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::MeasureDef;
    use PopulationKind::*;

    fn group(scoring: &str, kinds: &[PopulationKind]) -> GroupDef {
        let pops: Vec<Value> = kinds
            .iter()
            .map(|k| {
                json!({"code": {"coding": [{"code": k.code()}]},
                       "criteria": {"language": "text/cql", "expression": k.code()}})
            })
            .collect();
        let m = json!({"resourceType": "Measure", "library": ["urn:lib"],
            "scoring": {"coding": [{"code": scoring}]}, "group": [{"population": pops}]});
        MeasureDef::parse(&m).unwrap().groups.remove(0)
    }

    fn set(members: &str) -> BTreeSet<String> {
        members.split_whitespace().map(str::to_string).collect()
    }

    fn raw(entries: &[(PopulationKind, &str)]) -> Sets {
        entries.iter().map(|(k, m)| (*k, set(m))).collect()
    }

    #[test]
    fn proportion_rules() {
        let all = [
            InitialPopulation,
            Denominator,
            DenominatorExclusion,
            Numerator,
            NumeratorExclusion,
            DenominatorException,
        ];
        let g = group("proportion", &all);
        let r = raw(&[
            (InitialPopulation, "a b c d e f"),
            (Denominator, "a b c d e x"), // x is outside the initial population
            (DenominatorExclusion, "b y"),
            (Numerator, "a b c x"), // b is excluded, x not in the denominator
            (NumeratorExclusion, "c d"),
            (DenominatorException, "a b d e f"), // a is in the numerator, f not in the denominator
        ]);
        let s = apply_rules(Scoring::Proportion, &g, &r);
        assert_eq!(s[&Denominator], set("a b c d e"));
        assert_eq!(s[&DenominatorExclusion], set("b"));
        assert_eq!(s[&Numerator], set("a c"));
        assert_eq!(s[&NumeratorExclusion], set("c"));
        assert_eq!(s[&DenominatorException], set("d e"));
        let mut t = Tally::new(all.len());
        t.add(
            &GroupOutcome {
                sets: s,
                observations: vec![vec![]; all.len()],
                strata: vec![],
            },
            true,
        );
        // (2 − 1) / (5 − 1 − 2)
        assert_eq!(t.score(&g), Some(0.5));

        // Without a denominator population the denominator is the initial population.
        let g = group("proportion", &[InitialPopulation, Numerator]);
        let s = apply_rules(
            Scoring::Proportion,
            &g,
            &raw(&[(InitialPopulation, "a b"), (Numerator, "b c")]),
        );
        assert_eq!(s[&Denominator], set("a b"));
        assert_eq!(s[&Numerator], set("b"));
    }

    #[test]
    fn ratio_and_continuous_variable_rules() {
        let g = group(
            "ratio",
            &[
                InitialPopulation,
                Denominator,
                DenominatorExclusion,
                Numerator,
                NumeratorExclusion,
            ],
        );
        let s = apply_rules(
            Scoring::Ratio,
            &g,
            &raw(&[
                (InitialPopulation, "a b c d"),
                (Denominator, "a b"),
                (DenominatorExclusion, "b"),
                (Numerator, "b c d x"),
                (NumeratorExclusion, "d"),
            ]),
        );
        assert_eq!(
            s[&Numerator],
            set("b c d"),
            "not limited to the denominator"
        );
        assert_eq!(s[&NumeratorExclusion], set("d"));
        assert_eq!(s[&Denominator], set("a b"));
        assert!(!s.contains_key(&DenominatorException));

        let g = group(
            "continuous-variable",
            &[
                InitialPopulation,
                MeasurePopulation,
                MeasurePopulationExclusion,
            ],
        );
        let s = apply_rules(
            Scoring::ContinuousVariable,
            &g,
            &raw(&[
                (InitialPopulation, "a b c"),
                (MeasurePopulation, "b c x"),
                (MeasurePopulationExclusion, "c a"),
            ]),
        );
        assert_eq!(s[&MeasurePopulation], set("b c"));
        assert_eq!(s[&MeasurePopulationExclusion], set("c"));
    }

    #[test]
    fn aggregates() {
        use crate::measure::Aggregate::*;
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(Sum.apply(&v), Some(10.0));
        assert_eq!(Average.apply(&v), Some(2.5));
        assert_eq!(Median.apply(&v), Some(2.5));
        assert_eq!(Median.apply(&v[..3]), Some(3.0));
        assert_eq!(Min.apply(&v), Some(1.0));
        assert_eq!(Max.apply(&v), Some(4.0));
        assert_eq!(Count.apply(&v), Some(4.0));
        assert_eq!(Sum.apply(&[]), None);
    }

    #[test]
    fn stratum_values() {
        let q = Scalar::Quantity {
            value: 2.5,
            unit: Some("mg".into()),
        };
        assert_eq!(q.display(), "2.5 'mg'");
        let v = q.stratum_value();
        assert_eq!(v["text"], "2.5 'mg'");
        assert_eq!(v["extension"][0]["valueQuantity"]["unit"], "mg");
        let c = Scalar::Code(crate::Code {
            system: Some("s".into()),
            code: "c".into(),
            display: Some("See".into()),
        });
        assert_eq!(
            c.stratum_value(),
            json!({"coding": [{"system": "s", "code": "c", "display": "See"}], "text": "See"})
        );
        assert_eq!(Scalar::Integer(3).key(), Scalar::Decimal(3.0).key());
        assert_ne!(Scalar::String("3".into()).key(), Scalar::Integer(3).key());
    }
}
