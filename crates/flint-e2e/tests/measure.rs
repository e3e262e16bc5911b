//! `Measure/$evaluate-measure` over HTTP against the real binary, on every storage variant:
//! a CQL library stored as a `Library` (base64 `text/cql`), a proportion Measure with a
//! gender stratifier, generated Patients and blood-pressure Observations; every count is
//! computed here from the data the test wrote.

mod common;

use common::{Server, VARIANTS, json};
use serde_json::{Value, json};

const CQL: &str = "library BP version '1.0.0'
using FHIR version '4.0.1'
include FHIRHelpers version '4.0.1'
codesystem \"LOINC\": 'http://loinc.org'
code \"Systolic\": '8480-6' from \"LOINC\"
parameter \"Measurement Period\" Interval<DateTime>
parameter \"Threshold\" Integer default 140
context Patient
define \"Initial Population\": AgeInYearsAt(start of \"Measurement Period\") >= 18
define \"Denominator\": \"Initial Population\"
define \"High BP\": [Observation: \"Systolic\"] O
  where (O.value as FHIR.Quantity).value > \"Threshold\"
    and O.effective during \"Measurement Period\"
define \"Numerator\": exists \"High BP\"
define \"Gender\": Patient.gender
";

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn population(code: &str, expression: &str) -> Value {
    json!({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": code}]},
           "criteria": {"language": "text/cql-identifier", "expression": expression}})
}

fn count(group: &Value, code: &str) -> u64 {
    group["population"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"]["coding"][0]["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {group}"))["count"]
        .as_u64()
        .unwrap()
}

/// One generated patient: (id, gender, birth year, systolic value, observation date).
fn patients() -> Vec<(String, &'static str, i32, u32, &'static str)> {
    (0..24)
        .map(|i| {
            let date = if i % 5 == 0 {
                "2019-11-30"
            } else {
                "2020-03-01"
            };
            (
                format!("p{i}"),
                if i % 3 == 0 { "male" } else { "female" },
                1960 + i * 2,
                110 + (i as u32 * 7) % 60,
                date,
            )
        })
        .collect()
}

#[test]
fn evaluate_measure_counts_match_the_data() {
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        let library = json!({"resourceType": "Library", "id": "bp", "url": "http://example.org/Library/bp",
            "version": "1.0.0", "name": "BP", "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}]},
            "content": [{"contentType": "text/cql", "data": base64(CQL.as_bytes())}]});
        assert_eq!(
            s.put_json("Library/bp", &library).send().unwrap().status(),
            201
        );
        let measure = json!({"resourceType": "Measure", "id": "bp", "url": "http://example.org/Measure/bp",
            "status": "active", "library": ["http://example.org/Library/bp"],
            "scoring": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": "proportion"}]},
            "group": [{"population": [population("initial-population", "Initial Population"),
                                      population("denominator", "Denominator"),
                                      population("numerator", "Numerator")],
                       "stratifier": [{"code": {"text": "gender"},
                                       "criteria": {"language": "text/cql-identifier", "expression": "Gender"}}]}]});
        assert_eq!(
            s.put_json("Measure/bp", &measure).send().unwrap().status(),
            201
        );
        for (id, gender, year, systolic, date) in patients() {
            let p = json!({"resourceType": "Patient", "id": id, "gender": gender, "birthDate": format!("{year}-06-15")});
            assert_eq!(
                s.put_json(&format!("Patient/{id}"), &p)
                    .send()
                    .unwrap()
                    .status(),
                201
            );
            let o = json!({"resourceType": "Observation", "id": format!("o-{id}"), "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "subject": {"reference": format!("Patient/{id}")}, "effectiveDateTime": date,
                "valueQuantity": {"value": systolic, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}});
            assert_eq!(
                s.put_json(&format!("Observation/o-{id}"), &o)
                    .send()
                    .unwrap()
                    .status(),
                201
            );
        }
        // Expected, from the data: adults on 2020-01-01 (born before mid-2002), with a
        // systolic value above the threshold measured in 2020.
        let expected = |threshold: u32, gender: Option<&str>| {
            let adults: Vec<_> = patients()
                .into_iter()
                .filter(|(_, g, y, _, _)| *y + 18 < 2020 && gender.is_none_or(|x| x == *g))
                .collect();
            let high = adults
                .iter()
                .filter(|(_, _, _, v, d)| *v > threshold && d.starts_with("2020"))
                .count() as u64;
            (adults.len() as u64, high)
        };
        let (st, report) = json(
            s.get("Measure/bp/$evaluate-measure?periodStart=2020&periodEnd=2020")
                .send()
                .unwrap(),
        );
        assert_eq!(st, 200, "{report}");
        let group = &report["group"][0];
        let (ip, num) = expected(140, None);
        assert!(
            ip > 0 && num > 0 && num < ip,
            "the data exercises the measure"
        );
        assert_eq!(count(group, "initial-population"), ip, "{v}");
        assert_eq!(count(group, "denominator"), ip);
        assert_eq!(count(group, "numerator"), num);
        let score = group["measureScore"]["value"].as_f64().unwrap();
        assert!((score - num as f64 / ip as f64).abs() < 1e-9);
        for stratum in group["stratifier"][0]["stratum"].as_array().unwrap() {
            let gender = stratum["value"]["text"].as_str().unwrap();
            let (ip, num) = expected(140, Some(gender));
            assert_eq!(count(stratum, "initial-population"), ip, "{gender}");
            assert_eq!(count(stratum, "numerator"), num, "{gender}");
        }
        // A POST with a library parameter stores the report (201 with Location).
        let params = json!({"resourceType": "Parameters", "parameter": [
            {"name": "periodStart", "valueDate": "2020-01-01"},
            {"name": "periodEnd", "valueDate": "2020-12-31"},
            {"name": "Threshold", "valueInteger": 160}]});
        let r = s
            .post_json("Measure/bp/$evaluate-measure", &params)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let (_, stored) = json(r);
        assert!(location.contains("/MeasureReport/"), "{location}");
        let (_, num) = expected(160, None);
        assert_eq!(count(&stored["group"][0], "numerator"), num);
        // A library that does not parse is a 422 naming it.
        let broken = json!({"resourceType": "Library", "id": "bp", "url": "http://example.org/Library/bp",
            "version": "1.0.0", "name": "BP", "status": "active",
            "content": [{"contentType": "text/cql", "data": base64(b"library BP define X: (1 +")}]});
        assert_eq!(
            s.put_json("Library/bp", &broken).send().unwrap().status(),
            200
        );
        let (st, oo) = json(
            s.get("Measure/bp/$evaluate-measure?periodStart=2020&periodEnd=2020")
                .send()
                .unwrap(),
        );
        assert_eq!(st, 422, "{oo}");
        assert!(
            oo["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains("http://example.org/Library/bp"),
            "{oo}"
        );
    }
}

const CV_CQL: &str = "library LOS version '1'
using FHIR version '4.0.1'
parameter \"Measurement Period\" Interval<DateTime>
context Patient
define \"Encounters\": [Encounter] E where E.period starts during \"Measurement Period\"
define function \"Length\"(E Encounter): duration in days of E.period
define function \"Stay\"(E Encounter): if duration in days of E.period >= 3 then 'long' else 'short'
";

#[test]
fn continuous_variable_observations_come_from_a_cql_function() {
    let s = Server::start("in-memory", &[]);
    let library = json!({"resourceType": "Library", "id": "los", "url": "http://example.org/Library/los",
        "version": "1", "name": "LOS", "status": "active",
        "content": [{"contentType": "text/cql", "data": base64(CV_CQL.as_bytes())}]});
    assert_eq!(
        s.put_json("Library/los", &library).send().unwrap().status(),
        201
    );
    let mut obs = population("measure-observation", "Length");
    obs["extension"] = json!([
        {"url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-aggregateMethod", "valueCode": "sum"},
        {"url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-criteriaReference", "valueString": "mp"}]);
    let mut mp = population("measure-population", "Encounters");
    mp["id"] = json!("mp");
    let measure = json!({"resourceType": "Measure", "id": "los", "url": "http://example.org/Measure/los",
        "status": "active", "library": ["http://example.org/Library/los"],
        "extension": [{"url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-populationBasis", "valueCode": "Encounter"}],
        "scoring": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": "continuous-variable"}]},
        "group": [{"population": [population("initial-population", "Encounters"), mp, obs],
            "stratifier": [{"code": {"text": "stay"},
                "criteria": {"language": "text/cql-identifier", "expression": "Stay"}}]}]});
    assert_eq!(
        s.put_json("Measure/los", &measure).send().unwrap().status(),
        201
    );
    // Patient i has i % 3 + 1 encounters in 2020, the k-th of (i + k) % 4 + 1 days (so one
    // patient's encounters fall in different strata), and one in 2019.
    let (mut encounters, mut days) = (0u64, 0u64);
    // Per stay (each encounter on its own, by the function "Stay"): encounters, days.
    let mut stays: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for i in 0..9u64 {
        let p = json!({"resourceType": "Patient", "id": format!("p{i}")});
        assert_eq!(
            s.put_json(&format!("Patient/p{i}"), &p)
                .send()
                .unwrap()
                .status(),
            201
        );
        for k in 0..=(i % 3 + 1) {
            let (year, len) = if k == 0 {
                (2019, 2)
            } else {
                (2020, (i + k) % 4 + 1)
            };
            let e = json!({"resourceType": "Encounter", "id": format!("e{i}-{k}"), "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": format!("Patient/p{i}")},
                "period": {"start": format!("{year}-03-{:02}T08:00:00Z", k + 1),
                           "end": format!("{year}-03-{:02}T08:00:00Z", k + 1 + len)}});
            assert_eq!(
                s.put_json(&format!("Encounter/e{i}-{k}"), &e)
                    .send()
                    .unwrap()
                    .status(),
                201
            );
            if year == 2020 {
                encounters += 1;
                days += len;
                let stay = stays
                    .entry(if len >= 3 { "long" } else { "short" })
                    .or_default();
                stay.0 += 1;
                stay.1 += len;
            }
        }
    }
    let (st, report) = json(
        s.get("Measure/los/$evaluate-measure?periodStart=2020&periodEnd=2020")
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{report}");
    let group = &report["group"][0];
    assert_eq!(count(group, "initial-population"), encounters);
    assert_eq!(count(group, "measure-population"), encounters);
    assert_eq!(count(group, "measure-observation"), encounters);
    assert_eq!(
        group["measureScore"]["value"].as_f64(),
        Some(days as f64),
        "{group}"
    );
    // A stratifier function of the Encounter: each encounter in the stratum of its stay,
    // however the patient's other encounters fall.
    let strata = group["stratifier"][0]["stratum"].as_array().unwrap();
    assert_eq!(strata.len(), stays.len(), "{group}");
    assert!(stays.len() == 2, "both strata occur in the data");
    for st in strata {
        let (n, d) = stays[st["value"]["text"].as_str().unwrap()];
        assert_eq!(count(st, "initial-population"), n, "{st}");
        assert_eq!(count(st, "measure-observation"), n, "{st}");
        assert_eq!(st["measureScore"]["value"].as_f64(), Some(d as f64), "{st}");
    }
}
