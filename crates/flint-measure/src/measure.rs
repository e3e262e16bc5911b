//! A Measure resource read into what evaluation needs: scoring, population basis, groups
//! with populations and stratifiers, supplemental data.
//!
//! Extensions read (CQFM, `http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/...`):
//! `cqfm-populationBasis` (on the Measure or a group; `boolean` or a resource type),
//! `cqfm-scoring` (a group's own scoring), `cqfm-aggregateMethod` (on a measure-observation
//! population; `sum` when absent) and `cqfm-criteriaReference` (the id of the population a
//! measure observation observes; by default the measure population, or in a ratio measure
//! the numerator for the first observation and the denominator for the second; on the
//! numerator and denominator of a ratio group with two initial populations, the id of the
//! initial population each belongs to).

use crate::MeasureError;
use flint_db::ErrorKind;
use serde_json::Value;

const CQFM: &str = "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/";

/// The scoring of a measure (or group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// Numerator over denominator, the numerator a subset of the denominator.
    Proportion,
    /// Numerator over denominator, both subsets of the initial population.
    Ratio,
    /// An aggregate of observations of the measure population.
    ContinuousVariable,
    /// The initial population only.
    Cohort,
}

impl Scoring {
    fn parse(code: &str) -> Option<Scoring> {
        Some(match code {
            "proportion" => Scoring::Proportion,
            "ratio" => Scoring::Ratio,
            "continuous-variable" => Scoring::ContinuousVariable,
            "cohort" => Scoring::Cohort,
            _ => return None,
        })
    }
}

/// What the members of a population are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// Subjects (criteria are Booleans).
    Boolean,
    /// Resources of a type, e.g. `Encounter` (criteria are lists of them).
    Resource(String),
}

/// The kinds of populations (codes of `http://terminology.hl7.org/CodeSystem/measure-population`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PopulationKind {
    /// `initial-population`.
    InitialPopulation,
    /// `denominator`.
    Denominator,
    /// `denominator-exclusion`.
    DenominatorExclusion,
    /// `numerator`.
    Numerator,
    /// `numerator-exclusion`.
    NumeratorExclusion,
    /// `denominator-exception`.
    DenominatorException,
    /// `measure-population`.
    MeasurePopulation,
    /// `measure-population-exclusion`.
    MeasurePopulationExclusion,
    /// `measure-observation`.
    MeasureObservation,
    /// The numerator's own `initial-population` in a ratio group with two (CQFM: the
    /// numerator's `cqfm-criteriaReference` names it); its code is `initial-population`.
    NumeratorInitialPopulation,
}

/// The code system of population kinds.
pub const POPULATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/measure-population";

impl PopulationKind {
    /// The kind of a population code.
    pub fn parse(code: &str) -> Option<PopulationKind> {
        use PopulationKind::*;
        Some(match code {
            "initial-population" => InitialPopulation,
            "denominator" => Denominator,
            "denominator-exclusion" => DenominatorExclusion,
            "numerator" => Numerator,
            "numerator-exclusion" => NumeratorExclusion,
            "denominator-exception" => DenominatorException,
            "measure-population" => MeasurePopulation,
            "measure-population-exclusion" => MeasurePopulationExclusion,
            "measure-observation" => MeasureObservation,
            _ => return None,
        })
    }

    /// The population code.
    pub fn code(self) -> &'static str {
        use PopulationKind::*;
        match self {
            InitialPopulation | NumeratorInitialPopulation => "initial-population",
            Denominator => "denominator",
            DenominatorExclusion => "denominator-exclusion",
            Numerator => "numerator",
            NumeratorExclusion => "numerator-exclusion",
            DenominatorException => "denominator-exception",
            MeasurePopulation => "measure-population",
            MeasurePopulationExclusion => "measure-population-exclusion",
            MeasureObservation => "measure-observation",
        }
    }
}

/// How observations are aggregated (`cqfm-aggregateMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// The sum.
    Sum,
    /// The mean.
    Average,
    /// The median (the mean of the middle two of an even number).
    Median,
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// The number of observations.
    Count,
}

impl Aggregate {
    /// The method of an `cqfm-aggregateMethod` code.
    pub fn parse(code: &str) -> Option<Aggregate> {
        Some(match code {
            "sum" => Aggregate::Sum,
            "average" => Aggregate::Average,
            "median" => Aggregate::Median,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "count" => Aggregate::Count,
            _ => return None,
        })
    }

    /// The aggregate of `values`; `None` when there are none.
    pub fn apply(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        Some(match self {
            Aggregate::Sum => values.iter().sum(),
            Aggregate::Average => values.iter().sum::<f64>() / n,
            Aggregate::Median => {
                let mut v = values.to_vec();
                v.sort_by(f64::total_cmp);
                let m = v.len() / 2;
                if v.len() % 2 == 1 {
                    v[m]
                } else {
                    (v[m - 1] + v[m]) / 2.0
                }
            }
            Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregate::Count => n,
        })
    }
}

/// One population of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationDef {
    /// Its kind.
    pub kind: PopulationKind,
    /// Its id in the Measure, if any.
    pub id: Option<String>,
    /// Its `code` as in the Measure (or the standard coding of its kind).
    pub code: Value,
    /// The expression (a function name for a measure observation).
    pub expression: String,
    /// For a measure observation: how its values are aggregated.
    pub aggregate: Aggregate,
    /// For a measure observation: the kind of population it observes.
    pub observes: Option<PopulationKind>,
}

/// One component of a stratifier, or the stratifier's own criteria.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentDef {
    /// Its `code` (may be absent).
    pub code: Option<Value>,
    /// Its expression.
    pub expression: String,
}

/// A stratifier: one criteria, or components.
#[derive(Debug, Clone, PartialEq)]
pub struct StratifierDef {
    /// Its id, if any.
    pub id: Option<String>,
    /// Its `code`, if any.
    pub code: Option<Value>,
    /// The criteria (its `code` the stratifier's) when `components` is empty.
    pub criteria: Option<String>,
    /// The components.
    pub components: Vec<ComponentDef>,
}

/// A group of populations.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDef {
    /// Its id, if any.
    pub id: Option<String>,
    /// Its `code`, if any.
    pub code: Option<Value>,
    /// Its scoring.
    pub scoring: Scoring,
    /// Its population basis.
    pub basis: Basis,
    /// Its populations, in Measure order.
    pub populations: Vec<PopulationDef>,
    /// Its stratifiers.
    pub stratifiers: Vec<StratifierDef>,
}

impl GroupDef {
    /// The population of `kind` (the first, if several).
    pub fn population(&self, kind: PopulationKind) -> Option<&PopulationDef> {
        self.populations.iter().find(|p| p.kind == kind)
    }
}

/// A supplemental data element.
#[derive(Debug, Clone, PartialEq)]
pub struct SupplementalDef {
    /// Its id (`sde-1`, ... when the Measure has none).
    pub id: String,
    /// Its `code`, if any.
    pub code: Option<Value>,
    /// Its expression.
    pub expression: String,
}

/// A Measure as evaluation reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureDef {
    /// The canonical the report names (`url|version`, `url`, or `Measure/id` without url).
    pub canonical: String,
    /// The primary library (`Measure.library[0]`).
    pub library: String,
    /// The subject type (from `Measure.subjectCodeableConcept`, `Patient` by default).
    pub subject_type: String,
    /// The groups.
    pub groups: Vec<GroupDef>,
    /// The supplemental data.
    pub supplemental: Vec<SupplementalDef>,
}

fn unprocessable(msg: impl Into<String>, at: String) -> MeasureError {
    MeasureError::new(ErrorKind::Unprocessable, msg).at(at)
}

fn extension<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get("extension")?
        .as_array()?
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(&format!("{CQFM}{name}")))
}

fn codes(cc: &Value) -> impl Iterator<Item = &str> {
    cc.get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("code").and_then(Value::as_str))
}

fn scoring_of(cc: Option<&Value>, at: &str) -> Result<Option<Scoring>, MeasureError> {
    let Some(cc) = cc else { return Ok(None) };
    match codes(cc).find_map(Scoring::parse) {
        Some(s) => Ok(Some(s)),
        None => Err(unprocessable(
            format!(
                "The scoring `{cc}` is not one of proportion, ratio, continuous-variable, cohort."
            ),
            at.to_string(),
        )),
    }
}

fn basis_of(v: &Value) -> Option<Basis> {
    let code = extension(v, "cqfm-populationBasis")?
        .get("valueCode")?
        .as_str()?;
    Some(if code == "boolean" {
        Basis::Boolean
    } else {
        Basis::Resource(code.to_string())
    })
}

/// The expression of a criteria (`Expression`), which must be CQL.
fn expression_of(v: &Value, at: &str) -> Result<String, MeasureError> {
    let criteria = v.get("criteria");
    if let Some(lang) = criteria
        .and_then(|c| c.get("language"))
        .and_then(Value::as_str)
        && !matches!(
            lang,
            "text/cql" | "text/cql-identifier" | "text/cql.identifier"
        )
    {
        return Err(unprocessable(
            format!("The criteria language `{lang}` is not supported (only CQL)."),
            format!("{at}.criteria.language"),
        ));
    }
    criteria
        .and_then(|c| c.get("expression"))
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            unprocessable(
                "The criteria has no expression.",
                format!("{at}.criteria.expression"),
            )
        })
}

fn array<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    v.get(name)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_of<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// A ratio group may have two initial populations, the denominator's and the numerator's
/// (CQF Measures: each of the numerator and denominator names its own by id in
/// `cqfm-criteriaReference`). The numerator's becomes [`PopulationKind::NumeratorInitialPopulation`];
/// one reference is enough (the other initial population is the other side's). Two initial
/// populations elsewhere, more than two, or references that do not tell them apart are 422s.
fn two_initial_populations(
    scoring: Scoring,
    populations: &mut [PopulationDef],
    references: &[Option<String>],
    at: &str,
) -> Result<(), MeasureError> {
    let ips: Vec<usize> = populations
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == PopulationKind::InitialPopulation)
        .map(|(i, _)| i)
        .collect();
    if ips.len() < 2 {
        return Ok(());
    }
    let here = format!("{at}.population");
    if scoring != Scoring::Ratio || ips.len() > 2 {
        return Err(unprocessable(
            "Only a ratio group may have two initial-populations (one for the numerator, one for the denominator).",
            here,
        ));
    }
    // The initial population a numerator or denominator names (its index among `ips`).
    let named = |kind: PopulationKind| -> Result<Option<usize>, MeasureError> {
        let Some(i) = populations.iter().position(|p| p.kind == kind) else {
            return Ok(None);
        };
        let Some(r) = &references[i] else {
            return Ok(None);
        };
        match ips
            .iter()
            .position(|&ip| populations[ip].id.as_deref() == Some(r.as_str()))
        {
            Some(k) => Ok(Some(k)),
            None => Err(unprocessable(
                format!(
                    "The criteria reference `{r}` of the {} names no initial-population of the group.",
                    kind.code()
                ),
                format!("{at}.population[{i}].extension"),
            )),
        }
    };
    let num = named(PopulationKind::Numerator)?;
    let den = named(PopulationKind::Denominator)?;
    let num = match (num, den) {
        (Some(n), Some(d)) if n != d => n,
        (Some(n), None) => n,
        (None, Some(d)) => 1 - d,
        _ => {
            return Err(unprocessable(
                "A ratio group with two initial-populations needs the numerator's and the denominator's cqfm-criteriaReference to name one each.",
                here,
            ));
        }
    };
    populations[ips[num]].kind = PopulationKind::NumeratorInitialPopulation;
    Ok(())
}

impl MeasureDef {
    /// Reads `measure` (a Measure resource); errors are 422s naming the element at fault.
    pub fn parse(measure: &Value) -> Result<MeasureDef, MeasureError> {
        let library = array(measure, "library")
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| {
                unprocessable(
                    "The Measure has no library, so it can't be evaluated.",
                    "Measure.library".into(),
                )
            })?
            .to_string();
        let canonical = match (str_of(measure, "url"), str_of(measure, "version")) {
            (Some(u), Some(v)) => format!("{u}|{v}"),
            (Some(u), None) => u.to_string(),
            _ => format!("Measure/{}", str_of(measure, "id").unwrap_or("")),
        };
        let subject_type = measure
            .get("subjectCodeableConcept")
            .and_then(|cc| codes(cc).next())
            .unwrap_or("Patient")
            .to_string();
        let scoring = scoring_of(measure.get("scoring"), "Measure.scoring")?;
        let basis = basis_of(measure).unwrap_or(Basis::Boolean);
        let mut groups = Vec::new();
        for (gi, g) in array(measure, "group").iter().enumerate() {
            let at = format!("Measure.group[{gi}]");
            let scoring = match scoring_of(
                extension(g, "cqfm-scoring").and_then(|e| e.get("valueCodeableConcept")),
                &at,
            )? {
                Some(s) => s,
                None => scoring.ok_or_else(|| {
                    unprocessable("The Measure has no scoring.", "Measure.scoring".into())
                })?,
            };
            let basis = basis_of(g).unwrap_or_else(|| basis.clone());
            let mut populations = Vec::new();
            let mut observation_index = 0;
            let mut ids: Vec<(String, PopulationKind)> = Vec::new();
            let mut references: Vec<Option<String>> = Vec::new();
            for (pi, p) in array(g, "population").iter().enumerate() {
                let at = format!("{at}.population[{pi}]");
                let code = p.get("code").cloned().unwrap_or(Value::Null);
                let kind = codes(&code)
                    .find_map(PopulationKind::parse)
                    .ok_or_else(|| {
                        unprocessable(
                            format!(
                                "The population code `{code}` is not a measure-population code."
                            ),
                            format!("{at}.code"),
                        )
                    })?;
                let expression = expression_of(p, &at)?;
                let id = str_of(p, "id").map(str::to_string);
                if let Some(id) = &id {
                    ids.push((id.clone(), kind));
                }
                let mut aggregate = Aggregate::Sum;
                let mut observes = None;
                if kind == PopulationKind::MeasureObservation {
                    if let Some(m) = extension(p, "cqfm-aggregateMethod") {
                        let c = m.get("valueCode").and_then(Value::as_str).unwrap_or("");
                        aggregate = Aggregate::parse(c).ok_or_else(|| {
                            unprocessable(
                                format!("The aggregate method `{c}` is not one of sum, average, median, min, max, count."),
                                format!("{at}.extension"),
                            )
                        })?;
                    }
                    observes = Some(match scoring {
                        Scoring::Ratio if observation_index == 0 => PopulationKind::Numerator,
                        Scoring::Ratio => PopulationKind::Denominator,
                        _ => PopulationKind::MeasurePopulation,
                    });
                    observation_index += 1;
                }
                references.push(
                    extension(p, "cqfm-criteriaReference")
                        .and_then(|e| e.get("valueString"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                );
                populations.push(PopulationDef {
                    kind,
                    id,
                    code,
                    expression,
                    aggregate,
                    observes,
                });
            }
            for (p, r) in populations.iter_mut().zip(&references) {
                if p.kind == PopulationKind::MeasureObservation
                    && let Some(r) = r
                {
                    let kind = ids.iter().find(|(id, _)| id == r).map(|(_, k)| *k);
                    p.observes = Some(kind.ok_or_else(|| {
                        unprocessable(
                            format!(
                                "The criteria reference `{r}` names no population of the group."
                            ),
                            format!("{at}.population"),
                        )
                    })?);
                }
            }
            two_initial_populations(scoring, &mut populations, &references, &at)?;
            if !populations
                .iter()
                .any(|p| p.kind == PopulationKind::InitialPopulation)
            {
                return Err(unprocessable(
                    "The group has no initial-population.",
                    format!("{at}.population"),
                ));
            }
            let mut stratifiers = Vec::new();
            for (si, s) in array(g, "stratifier").iter().enumerate() {
                let at = format!("{at}.stratifier[{si}]");
                let mut components = Vec::new();
                for (ci, c) in array(s, "component").iter().enumerate() {
                    components.push(ComponentDef {
                        code: c.get("code").cloned(),
                        expression: expression_of(c, &format!("{at}.component[{ci}]"))?,
                    });
                }
                let criteria = if components.is_empty() {
                    Some(expression_of(s, &at)?)
                } else {
                    None
                };
                stratifiers.push(StratifierDef {
                    id: str_of(s, "id").map(str::to_string),
                    code: s.get("code").cloned(),
                    criteria,
                    components,
                });
            }
            groups.push(GroupDef {
                id: str_of(g, "id").map(str::to_string),
                code: g.get("code").cloned(),
                scoring,
                basis,
                populations,
                stratifiers,
            });
        }
        let mut supplemental = Vec::new();
        for (i, s) in array(measure, "supplementalData").iter().enumerate() {
            supplemental.push(SupplementalDef {
                id: str_of(s, "id").map_or_else(|| format!("sde-{}", i + 1), str::to_string),
                code: s.get("code").cloned(),
                expression: expression_of(s, &format!("Measure.supplementalData[{i}]"))?,
            });
        }
        Ok(MeasureDef {
            canonical,
            library,
            subject_type,
            groups,
            supplemental,
        })
    }
}
