//! Measure evaluation over an in-memory database with a fake `ExpressionEvaluator` whose
//! answers are computed from the stored resources (Patients, Observations, Encounters); the
//! expected counts and scores are computed independently from the raw JSON the tests wrote.

use async_trait::async_trait;
use flint_db::{Db, ErrorKind, Node};
use flint_measure::measure::{Aggregate, MeasureDef, PopulationKind, Scoring};
use flint_measure::{
    Code, EvaluationParams, EvaluationRequest, ExprValue, ExpressionEvaluator, Interval,
    MeasureConfig, MeasureError, NamedParam, ParamValue, PreparedLibrary, ReportType, ResourceRef,
    Scalar, SubjectSession, evaluate,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

const LIB: &str = "http://example.org/Library/test|1";
const GENDER: &str = "http://hl7.org/fhir/administrative-gender";

/// A deterministic data set: patients with a gender and birth date, Observations of code `X`
/// (or `Y`) with values, Encounters with a length in days.
struct Data {
    patients: Vec<Value>,
    observations: Vec<Value>,
    encounters: Vec<Value>,
}

fn data(n: usize) -> Data {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let (mut patients, mut observations, mut encounters) = (vec![], vec![], vec![]);
    for i in 0..n {
        let id = format!("p{i:03}");
        let gender = ["female", "male", "other"][next(3) as usize];
        let year = 1940 + next(70);
        patients.push(
            json!({"resourceType": "Patient", "id": id, "gender": gender,
            "birthDate": format!("{year}-05-01")}),
        );
        for j in 0..next(4) {
            let code = if next(4) == 0 { "Y" } else { "X" };
            observations.push(
                json!({"resourceType": "Observation", "id": format!("o{i}-{j}"),
                "status": "final", "code": {"coding": [{"system": "urn:test", "code": code}]},
                "subject": {"reference": format!("Patient/{id}")},
                "valueQuantity": {"value": next(11), "unit": "mg"}}),
            );
        }
        for j in 0..next(3) {
            encounters.push(
                json!({"resourceType": "Encounter", "id": format!("e{i}-{j}"),
                "status": "finished", "class": {"code": "AMB"},
                "subject": {"reference": format!("Patient/{id}")},
                "length": {"value": next(10), "unit": "d"}}),
            );
        }
    }
    Data {
        patients,
        observations,
        encounters,
    }
}

async fn store(d: &Data) -> Node {
    let node = flint_db::testing::plain_node().await;
    for r in d
        .patients
        .iter()
        .chain(&d.observations)
        .chain(&d.encounters)
    {
        flint_db::testing::put_json(&node, r).await;
    }
    node
}

/// The fake CQL engine: expressions computed from the resources in the database.
#[derive(Default)]
struct Fake {
    prepared: Mutex<Vec<(String, EvaluationParams)>>,
}

struct Loaded {
    patients: BTreeMap<String, Value>,
    /// By subject reference.
    observations: BTreeMap<String, Vec<Value>>,
    encounters: BTreeMap<String, Vec<Value>>,
    all_encounters: BTreeMap<String, Value>,
}

async fn all(db: &Db, ty: &str) -> Vec<Value> {
    let hs = db.type_list(ty, None, usize::MAX).unwrap();
    let mut out = vec![];
    for h in hs {
        out.push(serde_json::from_slice(&db.pull(&h).await.unwrap()).unwrap());
    }
    out
}

#[async_trait]
impl ExpressionEvaluator for Fake {
    async fn prepare(
        &self,
        db: &Db,
        library: &str,
        params: &EvaluationParams,
    ) -> Result<Arc<dyn PreparedLibrary>, MeasureError> {
        if library != LIB {
            return Err(MeasureError::new(
                ErrorKind::Unprocessable,
                format!("no library {library}"),
            ));
        }
        self.prepared
            .lock()
            .unwrap()
            .push((library.to_string(), params.clone()));
        let mut l = Loaded {
            patients: BTreeMap::new(),
            observations: BTreeMap::new(),
            encounters: BTreeMap::new(),
            all_encounters: BTreeMap::new(),
        };
        for p in all(db, "Patient").await {
            l.patients.insert(p["id"].as_str().unwrap().to_string(), p);
        }
        for o in all(db, "Observation").await {
            let s = o["subject"]["reference"].as_str().unwrap().to_string();
            l.observations.entry(s).or_default().push(o);
        }
        for e in all(db, "Encounter").await {
            let s = e["subject"]["reference"].as_str().unwrap().to_string();
            l.all_encounters.insert(
                format!("Encounter/{}", e["id"].as_str().unwrap()),
                e.clone(),
            );
            l.encounters.entry(s).or_default().push(e);
        }
        Ok(Arc::new(l))
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.to_string().parse().ok())
        .unwrap_or(f64::NAN)
}

fn x_values(obs: &[Value]) -> Vec<f64> {
    obs.iter()
        .filter(|o| o["code"]["coding"][0]["code"] == "X")
        .map(|o| num(&o["valueQuantity"]["value"]))
        .collect()
}

fn refs(es: &[Value], keep: impl Fn(f64) -> bool) -> ExprValue {
    ExprValue::Resources(
        es.iter()
            .filter(|e| keep(num(&e["length"]["value"])))
            .map(|e| ResourceRef::new("Encounter", e["id"].as_str().unwrap()))
            .collect(),
    )
}

impl PreparedLibrary for Loaded {
    fn subject<'s>(
        &'s self,
        _db: &'s Db,
        subject: &'s ResourceRef,
    ) -> Result<Box<dyn SubjectSession + 's>, MeasureError> {
        Ok(Box::new(Session { lib: self, subject }))
    }
}

/// One subject of the fake library.
struct Session<'s> {
    lib: &'s Loaded,
    subject: &'s ResourceRef,
}

impl SubjectSession for Session<'_> {
    fn evaluate(&mut self, name: &str) -> Result<ExprValue, MeasureError> {
        self.lib.evaluate(self.subject, name)
    }

    fn evaluate_function(
        &mut self,
        name: &str,
        argument: Option<&ResourceRef>,
    ) -> Result<ExprValue, MeasureError> {
        self.lib.evaluate_function(self.subject, name, argument)
    }
}

impl Loaded {
    fn evaluate(&self, subject: &ResourceRef, name: &str) -> Result<ExprValue, MeasureError> {
        let p = &self.patients[&subject.id];
        let key = subject.to_string();
        let obs = self.observations.get(&key).map_or(&[][..], Vec::as_slice);
        let encs = self.encounters.get(&key).map_or(&[][..], Vec::as_slice);
        let xs = x_values(obs);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let year: i32 = p["birthDate"].as_str().unwrap()[..4].parse().unwrap();
        let gender = p["gender"].as_str().unwrap();
        let b = ExprValue::Boolean;
        Ok(match name {
            "HasX" => b(!xs.is_empty()),
            "HighX" => b(xs.iter().any(|v| *v > 5.0)),
            "VeryHighX" => b(xs.iter().any(|v| *v > 8.0)),
            "NotOther" => b(gender != "other"),
            "Old" => b(year < 1970),
            "Female" => b(gender == "female"),
            "NullCriteria" => ExprValue::Null,
            "Gender" => ExprValue::Value(Scalar::Code(Code {
                system: Some(GENDER.into()),
                code: gender.into(),
                display: None,
            })),
            "AgeGroup" => ExprValue::Value(Scalar::String(
                if year < 1970 { "old" } else { "young" }.into(),
            )),
            "MaxX" if xs.is_empty() => ExprValue::Null,
            "MaxX" => ExprValue::Value(Scalar::Integer(max as i64)),
            "ObsCodes" => ExprValue::Values(
                obs.iter()
                    .map(|o| {
                        Scalar::Code(Code {
                            system: Some("urn:test".into()),
                            code: o["code"]["coding"][0]["code"].as_str().unwrap().into(),
                            display: None,
                        })
                    })
                    .collect(),
            ),
            "Encounters" => refs(encs, |_| true),
            "LongEncounters" => refs(encs, |l| l >= 3.0),
            "ZeroEncounters" => refs(encs, |l| l == 0.0),
            _ => {
                return Err(MeasureError::new(
                    ErrorKind::Unprocessable,
                    format!("unknown expression {name}"),
                ));
            }
        })
    }

    fn evaluate_function(
        &self,
        subject: &ResourceRef,
        name: &str,
        argument: Option<&ResourceRef>,
    ) -> Result<ExprValue, MeasureError> {
        match (name, argument) {
            ("EncounterLength", Some(e)) => {
                let enc = &self.all_encounters[&e.to_string()];
                assert_eq!(enc["subject"]["reference"], subject.to_string());
                Ok(ExprValue::Value(Scalar::Decimal(num(
                    &enc["length"]["value"],
                ))))
            }
            ("MaxXQuantity", None) => {
                let obs = self
                    .observations
                    .get(&subject.to_string())
                    .map_or(&[][..], Vec::as_slice);
                let xs = x_values(obs);
                Ok(if xs.is_empty() {
                    ExprValue::Null
                } else {
                    ExprValue::Value(Scalar::Quantity {
                        value: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        unit: Some("mg".into()),
                    })
                })
            }
            _ => Err(MeasureError::new(
                ErrorKind::Unprocessable,
                format!("unknown function {name}"),
            )),
        }
    }
}

// ---- the expected values, computed from the raw JSON --------------------------------------

/// Per patient id: the facts the expressions stand for.
struct Facts {
    has_x: bool,
    high_x: bool,
    very_high_x: bool,
    not_other: bool,
    old: bool,
    female: bool,
    gender: String,
    max_x: Option<f64>,
    obs_codes: BTreeSet<String>,
    encounter_lengths: Vec<(String, f64)>,
}

fn facts(d: &Data) -> BTreeMap<String, Facts> {
    let mut out = BTreeMap::new();
    for p in &d.patients {
        let id = p["id"].as_str().unwrap();
        let r = format!("Patient/{id}");
        let mine: Vec<&Value> = d
            .observations
            .iter()
            .filter(|o| o["subject"]["reference"] == r.as_str())
            .collect();
        let xs: Vec<f64> = mine
            .iter()
            .filter(|o| o["code"]["coding"][0]["code"] == "X")
            .map(|o| o["valueQuantity"]["value"].to_string().parse().unwrap())
            .collect();
        let year: i32 = p["birthDate"].as_str().unwrap()[..4].parse().unwrap();
        out.insert(
            id.to_string(),
            Facts {
                has_x: !xs.is_empty(),
                high_x: xs.iter().any(|v| *v > 5.0),
                very_high_x: xs.iter().any(|v| *v > 8.0),
                not_other: p["gender"] != "other",
                old: year < 1970,
                female: p["gender"] == "female",
                gender: p["gender"].as_str().unwrap().to_string(),
                max_x: xs.iter().copied().reduce(f64::max),
                obs_codes: mine
                    .iter()
                    .map(|o| o["code"]["coding"][0]["code"].as_str().unwrap().to_string())
                    .collect(),
                encounter_lengths: d
                    .encounters
                    .iter()
                    .filter(|e| e["subject"]["reference"] == r.as_str())
                    .map(|e| {
                        (
                            format!("Encounter/{}", e["id"].as_str().unwrap()),
                            e["length"]["value"].to_string().parse().unwrap(),
                        )
                    })
                    .collect(),
            },
        );
    }
    out
}

/// The proportion rules written out per patient: (ip, den, denex, num, numex, denexcep).
fn proportion_of(f: &Facts) -> [bool; 6] {
    let ip = f.has_x;
    let den = ip && f.not_other;
    let denex = den && f.old;
    let num = den && !denex && f.high_x;
    let numex = num && f.very_high_x;
    let denexcep = den && !denex && !num && f.female;
    [ip, den, denex, num, numex, denexcep]
}

// ---- helpers -----------------------------------------------------------------------------

fn pop(code: &str, expr: &str) -> Value {
    json!({"id": code, "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": code}]},
           "criteria": {"language": "text/cql-identifier", "expression": expr}})
}

fn measure(scoring: &str, populations: Vec<Value>) -> Value {
    json!({"resourceType": "Measure", "id": "m1", "url": "http://example.org/Measure/m1",
        "version": "2", "status": "active", "library": [LIB],
        "scoring": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": scoring}]},
        "group": [{"id": "g1", "population": populations}]})
}

fn proportion_measure() -> Value {
    measure(
        "proportion",
        vec![
            pop("initial-population", "HasX"),
            pop("denominator", "NotOther"),
            pop("denominator-exclusion", "Old"),
            pop("numerator", "HighX"),
            pop("numerator-exclusion", "VeryHighX"),
            pop("denominator-exception", "Female"),
        ],
    )
}

fn request(report_type: ReportType, subject: Option<&str>) -> EvaluationRequest {
    EvaluationRequest {
        params: EvaluationParams {
            period: flint_measure::period::interval("2020", "2020").unwrap(),
            named: vec![NamedParam {
                name: "Threshold".into(),
                values: vec![ParamValue {
                    fhir_type: "integer".into(),
                    value: json!(5),
                }],
            }],
        },
        report_period: ("2020".into(), "2020".into()),
        report_type,
        subject: subject.map(|s| ResourceRef::parse(s).unwrap()),
        date: "2026-01-01T00:00:00Z".into(),
    }
}

fn config(threads: usize) -> MeasureConfig {
    MeasureConfig {
        threads,
        report_persistence: true,
        timeout: None,
    }
}

async fn run(
    node: &Node,
    m: &Value,
    req: &EvaluationRequest,
    threads: usize,
) -> flint_measure::Evaluation {
    let fake = Fake::default();
    let mut n = 0;
    let mut new_id = move || {
        n += 1;
        format!("list{n}")
    };
    let db = node.db();
    evaluate(&fake, &db, m, req, &config(threads), &mut new_id)
        .await
        .unwrap()
}

fn counts(group: &Value) -> Vec<(String, u64)> {
    group["population"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"]["coding"][0]["code"].as_str().unwrap().to_string(),
                p["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn score(v: &Value) -> Option<f64> {
    v.get("measureScore").map(|s| num(&s["value"]))
}

fn close(a: Option<f64>, b: Option<f64>) {
    match (a, b) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{a} != {b}"),
        (a, b) => assert_eq!(a, b),
    }
}

const KINDS: [&str; 6] = [
    "initial-population",
    "denominator",
    "denominator-exclusion",
    "numerator",
    "numerator-exclusion",
    "denominator-exception",
];

fn expected_proportion<'a>(
    fs: impl Iterator<Item = &'a Facts>,
) -> (Vec<(String, u64)>, Option<f64>) {
    let mut c = [0u64; 6];
    for f in fs {
        for (i, b) in proportion_of(f).iter().enumerate() {
            c[i] += *b as u64;
        }
    }
    let den = c[1] as f64 - c[2] as f64 - c[5] as f64;
    let score = (den > 0.0).then(|| (c[3] as f64 - c[4] as f64) / den);
    (
        KINDS
            .iter()
            .zip(c)
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
        score,
    )
}

// ---- tests ---------------------------------------------------------------------------------

#[tokio::test]
async fn proportion_counts_and_score_follow_the_membership_rules() {
    let d = data(60);
    let node = store(&d).await;
    let fs = facts(&d);
    let (want, want_score) = expected_proportion(fs.values());
    assert!(
        want.iter().all(|(_, n)| *n > 0),
        "the data exercise every population: {want:?}"
    );
    let e = run(
        &node,
        &proportion_measure(),
        &request(ReportType::Population, None),
        1,
    )
    .await;
    let r = &e.report;
    assert_eq!(r["resourceType"], "MeasureReport");
    assert_eq!(r["status"], "complete");
    assert_eq!(r["type"], "summary");
    assert_eq!(r["measure"], "http://example.org/Measure/m1|2");
    assert_eq!(r["period"], json!({"start": "2020", "end": "2020"}));
    assert_eq!(r["group"][0]["id"], "g1");
    assert_eq!(counts(&r["group"][0]), want);
    close(score(&r["group"][0]), want_score);
    assert!(e.lists.is_empty());

    // The same with four tasks.
    let e4 = run(
        &node,
        &proportion_measure(),
        &request(ReportType::Population, None),
        4,
    )
    .await;
    assert_eq!(e4.report, e.report);
}

#[tokio::test]
async fn the_evaluator_gets_the_library_and_parameters() {
    let d = data(3);
    let node = store(&d).await;
    let fake = Fake::default();
    let db = node.db();
    let req = request(ReportType::Population, None);
    evaluate(
        &fake,
        &db,
        &proportion_measure(),
        &req,
        &config(1),
        &mut || "x".into(),
    )
    .await
    .unwrap();
    let seen = fake.prepared.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, LIB);
    assert_eq!(
        seen[0].1.period,
        Interval {
            start: "2020-01-01T00:00:00.000".into(),
            end: "2020-12-31T23:59:59.999".into()
        }
    );
    assert_eq!(seen[0].1.named[0].name, "Threshold");
}

#[tokio::test]
async fn subject_reports_and_subject_lists() {
    let d = data(40);
    let node = store(&d).await;
    let fs = facts(&d);
    // Individual: for every patient, the counts are its own memberships.
    for (id, f) in fs.iter().take(12) {
        let s = format!("Patient/{id}");
        let e = run(
            &node,
            &proportion_measure(),
            &request(ReportType::Subject, Some(&s)),
            1,
        )
        .await;
        assert_eq!(e.report["type"], "individual");
        assert_eq!(e.report["subject"]["reference"], s);
        let (want, want_score) = expected_proportion(std::iter::once(f));
        assert_eq!(counts(&e.report["group"][0]), want, "{id}");
        close(score(&e.report["group"][0]), want_score);
    }
    // Subject list: one List per population with exactly its members.
    let e = run(
        &node,
        &proportion_measure(),
        &request(ReportType::SubjectList, None),
        3,
    )
    .await;
    assert_eq!(e.report["type"], "subject-list");
    let pops = e.report["group"][0]["population"].as_array().unwrap();
    assert_eq!(e.lists.len(), pops.len());
    for (i, p) in pops.iter().enumerate() {
        let list = &e.lists[i];
        assert_eq!(list["resourceType"], "List");
        assert_eq!(
            p["subjectResults"]["reference"],
            format!("List/{}", list["id"].as_str().unwrap())
        );
        let got: BTreeSet<String> = list["entry"]
            .as_array()
            .map(|es| {
                es.iter()
                    .map(|e| e["item"]["reference"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let want: BTreeSet<String> = fs
            .iter()
            .filter(|(_, f)| proportion_of(f)[i])
            .map(|(id, _)| format!("Patient/{id}"))
            .collect();
        assert_eq!(got, want, "{}", KINDS[i]);
        assert_eq!(p["count"].as_u64().unwrap() as usize, want.len());
    }
    // A subject report needs a subject; an unknown subject is not found.
    let db = node.db();
    let fake = Fake::default();
    let err = evaluate(
        &fake,
        &db,
        &proportion_measure(),
        &request(ReportType::Subject, None),
        &config(1),
        &mut || "x".into(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.kind, err.expression.as_deref()),
        (ErrorKind::Invalid, Some("subject"))
    );
    let err = evaluate(
        &fake,
        &db,
        &proportion_measure(),
        &request(ReportType::Subject, Some("Patient/nope")),
        &config(1),
        &mut || "x".into(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn ratio_score() {
    let d = data(50);
    let node = store(&d).await;
    let fs = facts(&d);
    let m = measure(
        "ratio",
        vec![
            pop("initial-population", "HasX"),
            pop("denominator", "NotOther"),
            pop("denominator-exclusion", "Old"),
            pop("numerator", "HighX"),
            pop("numerator-exclusion", "VeryHighX"),
        ],
    );
    let e = run(&node, &m, &request(ReportType::Population, None), 2).await;
    let (mut ip, mut den, mut denex, mut numr, mut numex) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for f in fs.values() {
        let i = f.has_x;
        let dn = i && f.not_other;
        let nu = i && f.high_x; // a ratio numerator is not limited to the denominator
        ip += i as u64;
        den += dn as u64;
        denex += (dn && f.old) as u64;
        numr += nu as u64;
        numex += (nu && f.very_high_x) as u64;
    }
    let g = &e.report["group"][0];
    assert_eq!(
        counts(g),
        vec![
            ("initial-population".into(), ip),
            ("denominator".into(), den),
            ("denominator-exclusion".into(), denex),
            ("numerator".into(), numr),
            ("numerator-exclusion".into(), numex),
        ]
    );
    close(score(g), Some((numr - numex) as f64 / (den - denex) as f64));
}

fn cv_measure(method: &str) -> Value {
    let mut obs = pop("measure-observation", "EncounterLength");
    obs["extension"] = json!([
        {"url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-aggregateMethod", "valueCode": method},
        {"url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-criteriaReference", "valueString": "measure-population"}
    ]);
    let mut m = measure(
        "continuous-variable",
        vec![
            pop("initial-population", "Encounters"),
            pop("measure-population", "LongEncounters"),
            pop("measure-population-exclusion", "ZeroEncounters"),
            obs,
        ],
    );
    m["extension"] = json!([{"url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-populationBasis", "valueCode": "Encounter"}]);
    m
}

#[tokio::test]
async fn continuous_variable_with_every_aggregate_method() {
    let d = data(40);
    let node = store(&d).await;
    let fs = facts(&d);
    let all: Vec<f64> = fs
        .values()
        .flat_map(|f| f.encounter_lengths.iter().map(|(_, l)| *l))
        .collect();
    // Measure population: encounters of length ≥ 3; exclusion: length 0 (none of those).
    let observed: Vec<f64> = all.iter().copied().filter(|l| *l >= 3.0).collect();
    assert!(observed.len() > 4);
    let mut sorted = observed.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let sum: f64 = observed.iter().sum();
    for (method, want) in [
        ("sum", sum),
        ("average", sum / n as f64),
        ("median", median),
        ("min", sorted[0]),
        ("max", sorted[n - 1]),
        ("count", n as f64),
    ] {
        let e = run(
            &node,
            &cv_measure(method),
            &request(ReportType::Population, None),
            2,
        )
        .await;
        let g = &e.report["group"][0];
        assert_eq!(
            counts(g),
            vec![
                ("initial-population".into(), all.len() as u64),
                ("measure-population".into(), n as u64),
                ("measure-population-exclusion".into(), 0),
                ("measure-observation".into(), n as u64),
            ],
            "{method}"
        );
        close(score(g), Some(want));
    }
    // Subject lists of a resource basis list the resources.
    let e = run(
        &node,
        &cv_measure("sum"),
        &request(ReportType::SubjectList, None),
        1,
    )
    .await;
    let mp: BTreeSet<&str> = e.lists[1]["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"]["reference"].as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = fs
        .values()
        .flat_map(|f| f.encounter_lengths.iter())
        .filter(|(_, l)| *l >= 3.0)
        .map(|(r, _)| r.as_str())
        .collect();
    assert_eq!(mp, want);
}

#[tokio::test]
async fn continuous_variable_of_a_boolean_basis_with_exclusions() {
    let d = data(40);
    let node = store(&d).await;
    let fs = facts(&d);
    let mut obs = pop("measure-observation", "MaxXQuantity");
    obs["extension"] = json!([{"url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-aggregateMethod", "valueCode": "average"}]);
    let m = measure(
        "continuous-variable",
        vec![
            pop("initial-population", "HasX"),
            pop("measure-population", "NotOther"),
            pop("measure-population-exclusion", "Old"),
            obs,
        ],
    );
    let e = run(&node, &m, &request(ReportType::Population, None), 1).await;
    let mp: Vec<&Facts> = fs.values().filter(|f| f.has_x && f.not_other).collect();
    let kept: Vec<f64> = mp
        .iter()
        .filter(|f| !f.old)
        .map(|f| f.max_x.unwrap())
        .collect();
    let g = &e.report["group"][0];
    assert_eq!(
        counts(g),
        vec![
            (
                "initial-population".into(),
                fs.values().filter(|f| f.has_x).count() as u64
            ),
            ("measure-population".into(), mp.len() as u64),
            (
                "measure-population-exclusion".into(),
                mp.iter().filter(|f| f.old).count() as u64
            ),
            ("measure-observation".into(), kept.len() as u64),
        ]
    );
    close(score(g), Some(kept.iter().sum::<f64>() / kept.len() as f64));
}

#[tokio::test]
async fn stratifiers_with_criteria_and_components() {
    let d = data(80);
    let node = store(&d).await;
    let fs = facts(&d);
    let mut m = proportion_measure();
    m["group"][0]["stratifier"] = json!([
        {"id": "by-gender", "code": {"text": "gender"}, "criteria": {"language": "text/cql-identifier", "expression": "Gender"}},
        {"id": "by-gender-age", "component": [
            {"code": {"text": "gender"}, "criteria": {"language": "text/cql-identifier", "expression": "Gender"}},
            {"code": {"text": "age"}, "criteria": {"language": "text/cql-identifier", "expression": "AgeGroup"}}
        ]},
        {"id": "by-max", "criteria": {"language": "text/cql-identifier", "expression": "MaxX"}}
    ]);
    let e = run(&node, &m, &request(ReportType::Population, None), 3).await;
    let strat = &e.report["group"][0]["stratifier"];
    assert_eq!(strat[0]["code"], json!([{"text": "gender"}]));

    // By gender: the patients with members (a non-empty initial population) by gender.
    let genders: BTreeSet<&str> = fs
        .values()
        .filter(|f| f.has_x)
        .map(|f| f.gender.as_str())
        .collect();
    let strata = strat[0]["stratum"].as_array().unwrap();
    assert_eq!(strata.len(), genders.len());
    for s in strata {
        let g = s["value"]["coding"][0]["code"].as_str().unwrap();
        assert_eq!(s["value"]["coding"][0]["system"], GENDER);
        assert_eq!(s["value"]["text"], g);
        let (want, want_score) = expected_proportion(fs.values().filter(|f| f.gender == g));
        assert_eq!(counts(s), want, "{g}");
        close(score(s), want_score);
    }

    // By gender and age group.
    let mut seen = 0;
    for s in strat[1]["stratum"].as_array().unwrap() {
        let c = s["component"].as_array().unwrap();
        assert_eq!(c[0]["code"]["text"], "gender");
        assert_eq!(c[1]["code"]["text"], "age");
        let g = c[0]["value"]["coding"][0]["code"].as_str().unwrap();
        let old = c[1]["value"]["text"] == "old";
        assert_eq!(
            c[1]["value"]["extension"][0]["valueString"],
            if old { "old" } else { "young" }
        );
        let (want, want_score) =
            expected_proportion(fs.values().filter(|f| f.gender == g && f.old == old));
        assert_eq!(counts(s), want, "{g} {old}");
        close(score(s), want_score);
        seen += want[0].1;
    }
    assert_eq!(seen, fs.values().filter(|f| f.has_x).count() as u64);

    // By an integer value, carried typed in the extension.
    for s in strat[2]["stratum"].as_array().unwrap() {
        let v = s["value"]["extension"][0]["valueInteger"].as_f64().unwrap();
        assert_eq!(s["value"]["text"], format!("{}", v as i64));
        let (want, _) = expected_proportion(fs.values().filter(|f| f.max_x == Some(v)));
        assert_eq!(counts(s), want);
    }

    // A subject list: every stratum population has its own List of exactly its members.
    let e = run(&node, &m, &request(ReportType::SubjectList, None), 3).await;
    let lists: std::collections::HashMap<String, &Value> = e
        .lists
        .iter()
        .map(|l| (format!("List/{}", l["id"].as_str().unwrap()), l))
        .collect();
    for s in e.report["group"][0]["stratifier"][0]["stratum"]
        .as_array()
        .unwrap()
    {
        let g = s["value"]["coding"][0]["code"].as_str().unwrap();
        for (i, p) in s["population"].as_array().unwrap().iter().enumerate() {
            let list = lists[p["subjectResults"]["reference"].as_str().unwrap()];
            let got: BTreeSet<String> = list["entry"]
                .as_array()
                .map(|es| {
                    es.iter()
                        .map(|e| e["item"]["reference"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let want: BTreeSet<String> = fs
                .iter()
                .filter(|(_, f)| f.gender == g && proportion_of(f)[i])
                .map(|(id, _)| format!("Patient/{id}"))
                .collect();
            assert_eq!(got, want, "{g} {}", KINDS[i]);
            assert_eq!(p["count"].as_u64().unwrap() as usize, want.len());
        }
    }
}

#[tokio::test]
async fn supplemental_data_counts_values_of_the_initial_population() {
    let d = data(50);
    let node = store(&d).await;
    let fs = facts(&d);
    let mut m = proportion_measure();
    m["supplementalData"] = json!([
        {"id": "sde-gender", "criteria": {"language": "text/cql-identifier", "expression": "Gender"}},
        {"id": "sde-codes", "criteria": {"language": "text/cql-identifier", "expression": "ObsCodes"}}
    ]);
    let e = run(&node, &m, &request(ReportType::Population, None), 2).await;
    let contained = e.report["contained"].as_array().unwrap();
    let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
    for o in contained {
        assert_eq!(o["resourceType"], "Observation");
        let id = o["id"].as_str().unwrap();
        let sde = o["extension"][0]["valueString"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            o["extension"][0]["url"],
            flint_measure::evaluate::CRITERIA_REFERENCE
        );
        assert!(
            e.report["evaluatedResource"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["reference"] == format!("#{id}"))
        );
        let code = o["code"]["coding"][0]["code"].as_str().unwrap().to_string();
        got.insert((sde, code), o["valueInteger"].as_u64().unwrap());
    }
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for f in fs.values().filter(|f| f.has_x) {
        *want
            .entry(("sde-gender".into(), f.gender.clone()))
            .or_default() += 1;
        for c in &f.obs_codes {
            *want.entry(("sde-codes".into(), c.clone())).or_default() += 1;
        }
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn cohort_and_null_criteria() {
    let d = data(20);
    let node = store(&d).await;
    let fs = facts(&d);
    let m = measure("cohort", vec![pop("initial-population", "HasX")]);
    let e = run(&node, &m, &request(ReportType::Population, None), 1).await;
    let g = &e.report["group"][0];
    assert_eq!(
        counts(g),
        vec![(
            "initial-population".into(),
            fs.values().filter(|f| f.has_x).count() as u64
        )]
    );
    assert!(g.get("measureScore").is_none());
    let m = measure(
        "proportion",
        vec![pop("initial-population", "NullCriteria")],
    );
    let e = run(&node, &m, &request(ReportType::Population, None), 1).await;
    assert_eq!(counts(&e.report["group"][0])[0].1, 0);
    assert!(
        e.report["group"][0].get("measureScore").is_none(),
        "0/0 has no score"
    );
}

#[tokio::test]
async fn wrong_result_types_and_unknown_libraries_are_unprocessable() {
    let d = data(5);
    let node = store(&d).await;
    let db = node.db();
    let fake = Fake::default();
    let req = request(ReportType::Population, None);
    // A boolean basis with a criteria returning resources.
    let m = measure("cohort", vec![pop("initial-population", "Encounters")]);
    let e = evaluate(&fake, &db, &m, &req, &config(1), &mut || "x".into()).await;
    assert_eq!(e.unwrap_err().kind, ErrorKind::Unprocessable);
    let mut m = proportion_measure();
    m["library"] = json!(["http://example.org/Library/other"]);
    let e = evaluate(&fake, &db, &m, &req, &config(1), &mut || "x".into()).await;
    assert_eq!(e.unwrap_err().kind, ErrorKind::Unprocessable);
}

#[test]
fn measure_definitions() {
    let mut m = cv_measure("median");
    let def = MeasureDef::parse(&m).unwrap();
    assert_eq!(def.library, LIB);
    assert_eq!(def.subject_type, "Patient");
    let g = &def.groups[0];
    assert_eq!(g.scoring, Scoring::ContinuousVariable);
    assert_eq!(
        g.basis,
        flint_measure::measure::Basis::Resource("Encounter".into())
    );
    let o = g.population(PopulationKind::MeasureObservation).unwrap();
    assert_eq!(
        (o.aggregate, o.observes),
        (Aggregate::Median, Some(PopulationKind::MeasurePopulation))
    );

    m["group"][0]["population"][3]["extension"][0]["valueCode"] = json!("mode");
    let e = MeasureDef::parse(&m).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unprocessable);
    assert_eq!(
        e.expression.as_deref(),
        Some("Measure.group[0].population[3].extension")
    );

    for (change, at) in [
        (json!({"library": null}), "Measure.library"),
        (
            json!({"scoring": {"coding": [{"code": "nonsense"}]}}),
            "Measure.scoring",
        ),
    ] {
        let mut m = proportion_measure();
        for (k, v) in change.as_object().unwrap() {
            m[k] = v.clone();
        }
        let e = MeasureDef::parse(&m).unwrap_err();
        assert_eq!(
            (e.kind, e.expression.as_deref()),
            (ErrorKind::Unprocessable, Some(at))
        );
    }
    let mut m = proportion_measure();
    m["group"][0]["population"][1]["criteria"] =
        json!({"language": "text/fhirpath", "expression": "x"});
    let e = MeasureDef::parse(&m).unwrap_err();
    assert_eq!(
        e.expression.as_deref(),
        Some("Measure.group[0].population[1].criteria.language")
    );
    let mut m = proportion_measure();
    m["group"][0]["population"][0]["criteria"] = json!({"language": "text/cql-identifier"});
    let e = MeasureDef::parse(&m).unwrap_err();
    assert_eq!(
        e.expression.as_deref(),
        Some("Measure.group[0].population[0].criteria.expression")
    );
    let mut m = proportion_measure();
    m["group"][0]["population"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert!(
        MeasureDef::parse(&m)
            .unwrap_err()
            .message
            .contains("initial-population")
    );
}

/// A population with a `cqfm-criteriaReference` to `target`.
fn pop_ref(code: &str, expr: &str, target: &str) -> Value {
    let mut p = pop(code, expr);
    p["extension"] = json!([{
        "url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-criteriaReference",
        "valueString": target}]);
    p
}

/// A ratio group with two initial populations: the denominator's (`NotOther`) and the
/// numerator's (`HasX`), named by the numerator's and the denominator's criteria references.
fn two_ip_measure(num_ref: Option<&str>, den_ref: Option<&str>) -> Value {
    let with = |code: &str, expr: &str, r: Option<&str>| match r {
        Some(r) => pop_ref(code, expr, r),
        None => pop(code, expr),
    };
    let mut ip_den = pop("initial-population", "NotOther");
    ip_den["id"] = json!("ip-den");
    let mut ip_num = pop("initial-population", "HasX");
    ip_num["id"] = json!("ip-num");
    let mut m = measure(
        "ratio",
        vec![
            ip_num,
            ip_den,
            with("denominator", "Old", den_ref),
            pop("denominator-exclusion", "Female"),
            with("numerator", "HighX", num_ref),
            pop("numerator-exclusion", "VeryHighX"),
        ],
    );
    m["group"][0]["stratifier"] = json!([{"id": "by-gender",
        "criteria": {"language": "text/cql-identifier", "expression": "Gender"}}]);
    m
}

/// The expected counts of [`two_ip_measure`] over `fs`, in population order (ip-num, ip-den,
/// denominator, denominator-exclusion, numerator, numerator-exclusion).
fn two_ip_counts<'a>(fs: impl Iterator<Item = &'a Facts>) -> [u64; 6] {
    let mut c = [0u64; 6];
    for f in fs {
        let ip_num = f.has_x;
        let ip_den = f.not_other;
        let den = ip_den && f.old;
        let denex = den && f.female;
        let num = ip_num && f.high_x;
        let numex = num && f.very_high_x;
        for (i, b) in [ip_num, ip_den, den, denex, num, numex]
            .into_iter()
            .enumerate()
        {
            c[i] += u64::from(b);
        }
    }
    c
}

#[tokio::test]
async fn ratio_with_two_initial_populations() {
    let d = data(60);
    let node = store(&d).await;
    let fs = facts(&d);
    let want = two_ip_counts(fs.values());
    // The fixture tells the two initial populations apart.
    assert_ne!(want[0], want[1]);
    assert!(fs.values().any(|f| f.has_x && !f.not_other));
    assert!(fs.values().any(|f| !f.has_x && f.not_other));
    let ratio = |c: &[u64; 6]| {
        let den = c[2] - c[3];
        (den > 0).then(|| (c[4] - c[5]) as f64 / den as f64)
    };
    // Both references, one of them, or the other: the same reading.
    for (num_ref, den_ref) in [
        (Some("ip-num"), Some("ip-den")),
        (Some("ip-num"), None),
        (None, Some("ip-den")),
    ] {
        let m = two_ip_measure(num_ref, den_ref);
        let def = MeasureDef::parse(&m).unwrap();
        let kinds: Vec<PopulationKind> = def.groups[0].populations.iter().map(|p| p.kind).collect();
        assert_eq!(kinds[0], PopulationKind::NumeratorInitialPopulation);
        assert_eq!(kinds[1], PopulationKind::InitialPopulation);
        let e = run(&node, &m, &request(ReportType::SubjectList, None), 2).await;
        let g = &e.report["group"][0];
        let got: Vec<u64> = counts(g).into_iter().map(|(_, n)| n).collect();
        assert_eq!(got, want.to_vec(), "{num_ref:?} {den_ref:?}");
        // Both report as initial-population, each with its own id and subject list.
        let pops = g["population"].as_array().unwrap();
        assert_eq!(pops[0]["id"], "ip-num");
        assert_eq!(pops[1]["id"], "ip-den");
        assert_eq!(pops[0]["code"]["coding"][0]["code"], "initial-population");
        assert_eq!(pops[1]["code"]["coding"][0]["code"], "initial-population");
        let list_len = |p: &Value| {
            let id = p["subjectResults"]["reference"].as_str().unwrap();
            let l = e
                .lists
                .iter()
                .find(|l| format!("List/{}", l["id"].as_str().unwrap()) == id)
                .unwrap();
            l.get("entry").and_then(Value::as_array).map_or(0, Vec::len) as u64
        };
        assert_eq!(list_len(&pops[0]), want[0]);
        assert_eq!(list_len(&pops[1]), want[1]);
        close(score(g), ratio(&want));
        // Strata by gender: the same rules over each gender's patients.
        for stratum in g["stratifier"][0]["stratum"].as_array().unwrap() {
            let gender = stratum["value"]["coding"][0]["code"].as_str().unwrap();
            let want = two_ip_counts(fs.values().filter(|f| f.gender == gender));
            let got: Vec<u64> = counts(stratum).into_iter().map(|(_, n)| n).collect();
            assert_eq!(got, want.to_vec(), "{gender}");
            close(score(stratum), ratio(&want));
        }
        // Every subject in either initial population is in some stratum.
        let stratified: u64 = g["stratifier"][0]["stratum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let genders = s["value"]["coding"][0]["code"].as_str().unwrap();
                fs.values()
                    .filter(|f| f.gender == genders && (f.has_x || f.not_other))
                    .count() as u64
            })
            .sum();
        assert_eq!(
            stratified,
            fs.values().filter(|f| f.has_x || f.not_other).count() as u64
        );
    }
    // What cannot be read is a 422 naming the group's populations.
    let mut proportion = two_ip_measure(Some("ip-num"), Some("ip-den"));
    proportion["scoring"]["coding"][0]["code"] = json!("proportion");
    for bad in [
        two_ip_measure(None, None),
        two_ip_measure(Some("ip-num"), Some("ip-num")),
        two_ip_measure(Some("nowhere"), None),
        proportion,
    ] {
        let e = MeasureDef::parse(&bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unprocessable, "{e:?}");
    }
}

#[tokio::test]
async fn reports_do_not_depend_on_how_subjects_are_shared_among_threads() {
    // 300 subjects are handed out in batches from a shared counter: whatever thread takes which
    // batch, the report and the member lists (in subject order) are those of one thread.
    let d = data(300);
    let node = store(&d).await;
    let fs = facts(&d);
    let m = proportion_measure();
    let req = request(ReportType::SubjectList, None);
    let one = run(&node, &m, &req, 1).await;
    for threads in [2, 3, 7] {
        let many = run(&node, &m, &req, threads).await;
        assert_eq!(many.report, one.report, "{threads} threads");
        assert_eq!(many.lists, one.lists, "{threads} threads");
    }
    let ip = counts(&one.report["group"][0])[0].1;
    assert_eq!(ip, fs.values().filter(|f| f.has_x).count() as u64);
    assert!(ip > 0);
}
