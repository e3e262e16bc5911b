//! CQL libraries evaluated over resources stored in an in-memory node, each result checked
//! against a count computed here from the raw JSON written.

use flint_cql::{Context, Engine as Cql, Error, Value, parse_library};
use flint_cql_db::PatientData;
use flint_db::fault::{Faults, FaultyKv, Op};
use flint_db::mem::MemKv;
use flint_db::testing::{memory_node, put_json};
use flint_search::{Engine, Registry};
use flint_terminology::DbTerminology;
use serde_json::{Value as J, json};
use std::sync::Arc;

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const INTERP: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

/// Patients p0..p11 born 1950..2013; systolic blood pressures (8480-6) in mm[Hg] or kPa, some
/// in 2020 (by dateTime or Period) and some in 2019; body weights (29463-7); diabetes
/// (44054006) for every third patient, hypertension (38341003) for every fourth.
fn resources() -> Vec<J> {
    let mut out = vec![
        json!({"resourceType": "ValueSet", "id": "bp", "url": "http://example.org/vs/bp",
        "status": "active", "compose": {"include": [{"system": LOINC,
            "concept": [{"code": "8480-6"}, {"code": "8462-4"}]}]}}),
    ];
    for i in 0..12 {
        let pid = format!("p{i}");
        out.push(json!({"resourceType": "Patient", "id": pid,
            "birthDate": format!("{}-{:02}-{:02}", 1950 + i * 6 - (i % 2) * 3, 1 + i % 12, 1 + (i * 7) % 28)}));
        for k in 0..(i % 4 + 1) {
            let n = i * 10 + k;
            let (value, unit) = if n % 3 == 0 {
                (json!(15 + n % 7), "kPa")
            } else {
                (json!(110 + (n * 13) % 60), "mm[Hg]")
            };
            let mut o = json!({"resourceType": "Observation", "id": format!("bp{n}"),
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "subject": {"reference": format!("Patient/{pid}")},
                "valueQuantity": {"value": value, "unit": unit,
                    "system": "http://unitsofmeasure.org", "code": unit}});
            if mm_hg(&o) > 140.0 {
                o["interpretation"] = json!([{"coding": [{"system": INTERP, "code": "H"}]}]);
            }
            let year = if n % 4 == 3 { 2019 } else { 2020 };
            if n % 2 == 0 {
                o["effectiveDateTime"] = json!(format!("{year}-{:02}-10T08:30:00Z", 1 + n % 12));
            } else {
                o["effectivePeriod"] = json!({"start": format!("{year}-{:02}-10T08:30:00Z", 1 + n % 12),
                    "end": format!("{year}-{:02}-10T09:00:00Z", 1 + n % 12)});
            }
            out.push(o);
        }
        out.push(json!({"resourceType": "Observation", "id": format!("w{i}"), "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "subject": {"reference": format!("Patient/{pid}")},
            "effectiveDateTime": "2020-05-05",
            "valueQuantity": {"value": 60 + i, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}));
        if i % 3 == 0 {
            out.push(json!({"resourceType": "Condition", "id": format!("d{i}"),
                "code": {"coding": [{"system": SNOMED, "code": "44054006"}]},
                "subject": {"reference": format!("Patient/{pid}")}}));
        }
        if i % 4 == 0 {
            out.push(json!({"resourceType": "Condition", "id": format!("h{i}"),
                "code": {"coding": [{"system": SNOMED, "code": "38341003"}]},
                "subject": {"reference": format!("Patient/{pid}")}}));
        }
    }
    out
}

const LIB: &str = r#"
library Test version '1'
using FHIR version '4.0.1'
include FHIRHelpers version '4.0.1' called FHIRHelpers
codesystem "LOINC": 'http://loinc.org'
codesystem "SNOMED": 'http://snomed.info/sct'
valueset "Blood Pressure": 'http://example.org/vs/bp'
code "SBP": '8480-6' from "LOINC"
code "Diabetes": '44054006' from "SNOMED"
codesystem "Interpretation": 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation'
code "High": 'H' from "Interpretation"
parameter "Measurement Period" Interval<DateTime>
  default Interval[@2020-01-01T00:00:00.0Z, @2021-01-01T00:00:00.0Z)
context Patient
define "Adult": AgeInYearsAt(start of "Measurement Period") >= 18
define "BP in MP": [Observation: "Blood Pressure"] O where O.effective during "Measurement Period"
define "High BP": exists ("BP in MP" O where O.value > 140 'mm[Hg]')
define "High BP count": Count("BP in MP" O where O.value > 140 'mm[Hg]')
define "Diabetic": exists [Condition: "Diabetes"]
define "Diabetic by code": exists [Condition: code ~ "Diabetes"]
define "SBP count": Count([Observation: "SBP"])
define "Has SBP": exists [Observation: "SBP"]
define "Observations": Count([Observation])
define "Weights in VS": Count([Observation] O where O.code in "Blood Pressure")
define "Initial Population": "Adult" and "High BP"
define "Birth date": Patient.birthDate
define "Flagged high": Count([Observation: interpretation ~ "High"])
"#;

const POPULATION: &str = r#"
library Population version '1'
using FHIR version '4.0.1'
codesystem "SNOMED": 'http://snomed.info/sct'
code "Diabetes": '44054006' from "SNOMED"
context Unfiltered
define "Patients": Count([Patient])
define "Diabetes conditions": Count([Condition: "Diabetes"])
define "Born before 1980": Count([Patient] P where P.birthDate < @1980-01-01)
"#;

fn effective_in_2020(o: &J) -> bool {
    let s = o["effectiveDateTime"]
        .as_str()
        .or(o["effectivePeriod"]["start"].as_str())
        .unwrap();
    s.starts_with("2020")
}

fn mm_hg(o: &J) -> f64 {
    let v = o["valueQuantity"]["value"].as_f64().unwrap();
    match o["valueQuantity"]["code"].as_str().unwrap() {
        "kPa" => v * 7.500_615_758,
        _ => v,
    }
}

fn age_at_2020(birth: &str) -> i64 {
    let y: i64 = birth[..4].parse().unwrap();
    let md = &birth[5..];
    // On 2020-01-01 the birthday of this year has passed only for 01-01.
    2019 - y + i64::from(md == "01-01")
}

fn of_patient<'a>(all: &'a [J], ty: &str, pid: &str) -> Vec<&'a J> {
    let r = format!("Patient/{pid}");
    all.iter()
        .filter(|x| x["resourceType"] == ty && x["subject"]["reference"] == r.as_str())
        .collect()
}

fn has_code(x: &J, code: &str) -> bool {
    x["code"]["coding"][0]["code"] == code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libraries_over_stored_patients() {
    let search = Engine::new(Arc::new(Registry::r4()));
    let node = memory_node(search.indexer(), Arc::new(MemKv::new())).await;
    let all = resources();
    for r in &all {
        put_json(&node, r).await;
    }
    let db = node.sync().await.unwrap();
    let terminology = DbTerminology::new(search.clone());
    let lib = parse_library(LIB).unwrap();
    let (mut initial, mut diabetic) = (0, 0);
    for p in all.iter().filter(|r| r["resourceType"] == "Patient") {
        let pid = p["id"].as_str().unwrap();
        let data = PatientData::new(
            &db,
            &search,
            &terminology,
            pid,
            tokio::runtime::Handle::current(),
        );
        let cql = Cql::new(&lib).with_data(&data);
        let mut ctx = Context::default();
        let mut ev = |d: &str| cql.eval_define(d, &mut ctx).unwrap();
        let obs = of_patient(&all, "Observation", pid);
        let bps: Vec<_> = obs.iter().filter(|o| has_code(o, "8480-6")).collect();
        let high = bps
            .iter()
            .filter(|o| effective_in_2020(o) && mm_hg(o) > 140.0)
            .count();
        let adult = age_at_2020(p["birthDate"].as_str().unwrap()) >= 18;
        let conds = of_patient(&all, "Condition", pid);
        let diab = conds.iter().any(|c| has_code(c, "44054006"));
        assert_eq!(
            ev("Birth date").to_string(),
            format!("@{}", p["birthDate"].as_str().unwrap())
        );
        assert_eq!(ev("Adult"), Value::Bool(adult), "{pid}");
        assert_eq!(ev("High BP count"), Value::Int(high as i32), "{pid}");
        assert_eq!(ev("High BP"), Value::Bool(high > 0), "{pid}");
        assert_eq!(ev("SBP count"), Value::Int(bps.len() as i32), "{pid}");
        assert_eq!(ev("Observations"), Value::Int(obs.len() as i32), "{pid}");
        assert_eq!(ev("Weights in VS"), Value::Int(bps.len() as i32), "{pid}");
        assert_eq!(ev("Diabetic"), Value::Bool(diab), "{pid}");
        // `interpretation` has no search parameter: filtered in memory.
        let flagged = bps.iter().filter(|o| mm_hg(o) > 140.0).count();
        assert_eq!(ev("Flagged high"), Value::Int(flagged as i32), "{pid}");
        assert_eq!(ev("Diabetic by code"), Value::Bool(diab), "{pid}");
        // Only the index scan's matches are read: a fresh provider retrieving by code reads
        // the patient's blood pressures, not its weights.
        {
            let data = PatientData::new(
                &db,
                &search,
                &terminology,
                pid,
                tokio::runtime::Handle::current(),
            );
            let cql = Cql::new(&lib).with_data(&data);
            let n = cql
                .eval_define("SBP count", &mut Context::default())
                .unwrap();
            assert_eq!(n, Value::Int(bps.len() as i32));
            assert_eq!(data.resources_read(), bps.len() as u64, "{pid}");
        }
        // `exists [T: codes]` is answered by the index scan alone: nothing is read.
        {
            let data = PatientData::new(
                &db,
                &search,
                &terminology,
                pid,
                tokio::runtime::Handle::current(),
            );
            let cql = Cql::new(&lib).with_data(&data);
            let has = cql.eval_define("Has SBP", &mut Context::default()).unwrap();
            assert_eq!(has, Value::Bool(!bps.is_empty()), "{pid}");
            assert_eq!(data.resources_read(), 0, "{pid}");
        }
        let ip = ev("Initial Population") == Value::Bool(true);
        assert_eq!(ip, adult && high > 0, "{pid}");
        initial += usize::from(ip);
        diabetic += usize::from(diab);
    }
    let lib = parse_library(POPULATION).unwrap();
    let data = PatientData::unfiltered(
        &db,
        &search,
        &terminology,
        tokio::runtime::Handle::current(),
    );
    let cql = Cql::new(&lib).with_data(&data);
    let mut ctx = Context::default();
    let patients: Vec<&J> = all
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .collect();
    assert_eq!(
        cql.eval_define("Patients", &mut ctx).unwrap(),
        Value::Int(patients.len() as i32)
    );
    assert_eq!(
        cql.eval_define("Diabetes conditions", &mut ctx).unwrap(),
        Value::Int(4)
    );
    let before = patients
        .iter()
        .filter(|p| p["birthDate"].as_str().unwrap() < "1980-01-01")
        .count();
    assert_eq!(
        cql.eval_define("Born before 1980", &mut ctx).unwrap(),
        Value::Int(before as i32)
    );
    // The fixture exercises both outcomes.
    assert!(initial > 0 && initial < 12, "{initial}");
    assert_eq!(diabetic, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_faults_are_errors_not_empty_lists() {
    let faults = Faults::new();
    let search = Engine::new(Arc::new(Registry::r4()));
    let kv = Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone()));
    let node = memory_node(search.indexer(), kv).await;
    for r in resources() {
        put_json(&node, &r).await;
    }
    let db = node.sync().await.unwrap();
    let terminology = DbTerminology::new(search.clone());
    let lib = parse_library(LIB).unwrap();
    let data = PatientData::new(
        &db,
        &search,
        &terminology,
        "p0",
        tokio::runtime::Handle::current(),
    );
    let cql = Cql::new(&lib).with_data(&data);
    faults.fail(
        |op| matches!(op, Op::Seek(_) | Op::Next(_) | Op::Get(_)),
        0,
        u64::MAX,
    );
    for d in ["Observations", "Diabetic", "SBP count", "Adult"] {
        let mut ctx = Context::default();
        let r = cql.eval_define(d, &mut ctx);
        assert!(matches!(r, Err(Error::Data(_))), "{d}: {r:?}");
    }
    faults.heal();
    let mut ctx = Context::default();
    assert!(matches!(
        cql.eval_define("Observations", &mut ctx),
        Ok(Value::Int(_))
    ));
}

/// ELM's related-context retrieve (`[P -> Observation]`, here from `context Unfiltered`) is the
/// Patient compartment of that patient, and `ExpandValueSet` the stored ValueSet's codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn related_context_retrieves_and_value_set_expansion() {
    let search = Engine::new(Arc::new(Registry::r4()));
    let node = memory_node(search.indexer(), Arc::new(MemKv::new())).await;
    let all = resources();
    for r in &all {
        put_json(&node, r).await;
    }
    let db = node.sync().await.unwrap();
    let terminology = DbTerminology::new(search.clone());
    let lib = parse_library(
        "library R version '1'\nusing FHIR version '4.0.1'\n\
         valueset \"Blood Pressure\": 'http://example.org/vs/bp'\ncontext Unfiltered\n\
         define \"Codes\": ExpandValueSet(\"Blood Pressure\")",
    )
    .unwrap();
    let data = PatientData::unfiltered(
        &db,
        &search,
        &terminology,
        tokio::runtime::Handle::current(),
    );
    let cql = Cql::new(&lib).with_data(&data);
    for p in all.iter().filter(|r| r["resourceType"] == "Patient") {
        let pid = p["id"].as_str().unwrap();
        let patient = data.read("Patient", pid).unwrap().expect("stored");
        let related = flint_cql::Expr::Call(
            flint_cql::eval::RETRIEVE_IN.into(),
            vec![
                flint_cql::Expr::Lit(patient),
                flint_cql::Expr::Retrieve("Observation".into(), None, None),
            ],
            None,
        );
        let Value::List(got) = cql.eval(&related, &mut Context::default()).unwrap() else {
            panic!("a list");
        };
        let want = of_patient(&all, "Observation", pid).len();
        assert_eq!(got.len(), want, "{pid}");
        // By id as well, and with a code filter (the related patient's blood pressures).
        let bp = flint_cql::Expr::Call(
            flint_cql::eval::RETRIEVE_IN.into(),
            vec![
                flint_cql::Expr::Lit(Value::Str(pid.into())),
                flint_cql::Expr::Retrieve(
                    "Observation".into(),
                    Some("code".into()),
                    Some(Box::new(flint_cql::Expr::Ident("Blood Pressure".into()))),
                ),
            ],
            None,
        );
        let Value::List(bps) = cql.eval(&bp, &mut Context::default()).unwrap() else {
            panic!("a list");
        };
        let want = of_patient(&all, "Observation", pid)
            .iter()
            .filter(|o| has_code(o, "8480-6") || has_code(o, "8462-4"))
            .count();
        assert_eq!(bps.len(), want, "{pid}");
    }
    let Value::List(codes) = cql.eval_define("Codes", &mut Context::default()).unwrap() else {
        panic!("a list");
    };
    let mut got: Vec<String> = codes
        .iter()
        .map(|c| match c {
            Value::Code(c) => format!("{}|{}", c.system.as_deref().unwrap_or(""), c.code),
            o => panic!("a code: {o:?}"),
        })
        .collect();
    got.sort();
    let vs = &all[0];
    let mut want: Vec<String> = vs["compose"]["include"][0]["concept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{LOINC}|{}", c["code"].as_str().unwrap()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    // A related context that is not a Patient is an error, never an empty list.
    let bad = flint_cql::Expr::Call(
        flint_cql::eval::RETRIEVE_IN.into(),
        vec![
            flint_cql::Expr::Lit(Value::Int(1)),
            flint_cql::Expr::Retrieve("Observation".into(), None, None),
        ],
        None,
    );
    assert!(cql.eval(&bad, &mut Context::default()).is_err());
}

/// `Subsumes`/`SubsumedBy` by a stored CodeSystem's hierarchy, each answer checked against the
/// hierarchy read from the CodeSystem's JSON by `flint_terminology::Hierarchy`; a code system
/// that is not stored is unknown (null), and a storage fault is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subsumption_by_stored_code_systems() {
    const CS: &str = "http://example.org/cs/findings";
    let cs = json!({"resourceType": "CodeSystem", "id": "findings", "url": CS,
        "status": "active", "content": "complete", "hierarchyMeaning": "is-a",
        "concept": [
            {"code": "disorder", "concept": [
                {"code": "diabetes", "concept": [{"code": "type-1"}, {"code": "type-2"}]},
                {"code": "hypertension"}]},
            {"code": "finding"},
            {"code": "obesity", "property": [{"code": "parent", "valueCode": "disorder"}]}]});
    let faults = Faults::new();
    let search = Engine::new(Arc::new(Registry::r4()));
    let kv = Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone()));
    let node = memory_node(search.indexer(), kv).await;
    put_json(&node, &cs).await;
    put_json(&node, &json!({"resourceType": "Patient", "id": "p"})).await;
    let db = node.sync().await.unwrap();
    let terminology = DbTerminology::new(search.clone());
    let hierarchy = flint_terminology::Hierarchy::of(&cs);
    let codes = [
        "disorder",
        "diabetes",
        "type-1",
        "type-2",
        "hypertension",
        "finding",
        "obesity",
    ];
    let mut src = format!(
        "library S version '1'\ncodesystem \"F\": '{CS}'\ncodesystem \"U\": 'http://unknown'\n\
         define Zero: 0\n"
    );
    for a in codes {
        for b in codes {
            src.push_str(&format!(
                "define \"{a} {b}\": Subsumes(Code '{a}' from \"F\", Code '{b}' from \"F\")\n\
                 define \"{a} by {b}\": SubsumedBy(Code '{a}' from \"F\", Code '{b}' from \"F\")\n"
            ));
        }
    }
    src.push_str(
        "define \"Unknown system\": Subsumes(Code 'a' from \"U\", Code 'b' from \"U\")\n\
         define \"Concepts\": Subsumes(Concept { Code 'finding' from \"F\", Code 'diabetes' from \"F\" }, \
           Concept { Code 'type-2' from \"F\" })\n",
    );
    let lib = parse_library(&src).unwrap();
    let data = PatientData::new(
        &db,
        &search,
        &terminology,
        "p",
        tokio::runtime::Handle::current(),
    );
    let cql = Cql::new(&lib).with_data(&data);
    let ev = |d: &str| cql.eval_define(d, &mut Context::default());
    let mut subsuming = 0;
    for a in codes {
        for b in codes {
            let want = hierarchy.subsumes(a, b);
            subsuming += usize::from(want);
            assert_eq!(
                ev(&format!("{a} {b}")).unwrap(),
                Value::Bool(want),
                "{a} {b}"
            );
            assert_eq!(
                ev(&format!("{a} by {b}")).unwrap(),
                Value::Bool(hierarchy.subsumes(b, a)),
                "{a} by {b}"
            );
        }
    }
    // Not every pair, not only the equal ones.
    assert!(subsuming > codes.len() && subsuming < codes.len() * codes.len());
    assert_eq!(ev("Unknown system").unwrap(), Value::Null);
    assert_eq!(ev("Concepts").unwrap(), Value::Bool(true));
    faults.fail(
        |op| matches!(op, Op::Seek(_) | Op::Next(_) | Op::Get(_)),
        0,
        u64::MAX,
    );
    let r = ev("disorder type-2");
    assert!(matches!(r, Err(Error::Data(_))), "{r:?}");
    faults.heal();
}
