//! Measure test support: Libraries holding CQL, Measure populations and stratifiers, counts of
//! a MeasureReport, and the blood-pressure fixture that several tests (every storage variant,
//! two distributed nodes) evaluate.
#![allow(dead_code)]

use crate::common::{Server, json};
use serde_json::{Value, json};

/// Standard base64 (with padding) of `bytes`, as a FHIR Attachment's `data`.
pub fn base64(bytes: &[u8]) -> String {
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

/// A logic `Library` with canonical `http://example.org/Library/{id}` holding `cql`.
pub fn cql_library(id: &str, name: &str, version: &str, cql: &str) -> Value {
    json!({"resourceType": "Library", "id": id, "url": format!("http://example.org/Library/{id}"),
        "version": version, "name": name, "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}]},
        "content": [{"contentType": "text/cql", "data": base64(cql.as_bytes())}]})
}

/// A Measure group population `code` whose criteria is the CQL define `expression`.
pub fn population(code: &str, expression: &str) -> Value {
    json!({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": code}]},
           "criteria": {"language": "text/cql-identifier", "expression": expression}})
}

/// A stratifier named `text` by the CQL define `expression`.
pub fn stratifier(text: &str, expression: &str) -> Value {
    json!({"code": {"text": text},
           "criteria": {"language": "text/cql-identifier", "expression": expression}})
}

/// The measure-scoring coding of `scoring` (`proportion`, `cohort`, ...).
pub fn scoring(scoring: &str) -> Value {
    json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": scoring}]})
}

/// The count of population `code` in a MeasureReport group or stratum.
pub fn count(group: &Value, code: &str) -> u64 {
    group["population"]
        .as_array()
        .unwrap_or_else(|| panic!("no populations in {group}"))
        .iter()
        .find(|p| p["code"]["coding"][0]["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {group}"))["count"]
        .as_u64()
        .unwrap()
}

/// The strata of stratifier `i` of `group` by their value's text.
pub fn strata(group: &Value, i: usize) -> std::collections::BTreeMap<String, Value> {
    group["stratifier"][i]["stratum"]
        .as_array()
        .unwrap_or_else(|| panic!("no stratifier {i} in {group}"))
        .iter()
        .map(|s| (s["value"]["text"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// Stores `resource` with a PUT to `path` and checks the status.
pub fn put(s: &Server, path: &str, resource: &Value, status: u16) {
    let (st, body) = json(s.put_json(path, resource).send().unwrap());
    assert_eq!(st, status, "PUT {path}: {body}");
}

/// The blood-pressure library: adults at the start of the period whose systolic value was
/// above `Threshold` in the period, and their gender.
pub const BP_CQL: &str = "library BP version '1.0.0'
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

/// One patient of the blood-pressure fixture: (id, gender, birth year, systolic value,
/// observation date).
pub type BpPatient = (String, &'static str, i32, u32, &'static str);

/// The 24 patients of the blood-pressure fixture.
pub fn bp_patients() -> Vec<BpPatient> {
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

/// Stores the blood-pressure Library, its proportion Measure `Measure/bp` (stratified by
/// gender) and the patients with their systolic Observations, on `s`.
pub fn load_bp(s: &Server) {
    put(
        s,
        "Library/bp",
        &cql_library("bp", "BP", "1.0.0", BP_CQL),
        201,
    );
    let measure = json!({"resourceType": "Measure", "id": "bp", "url": "http://example.org/Measure/bp",
        "status": "active", "library": ["http://example.org/Library/bp"],
        "scoring": scoring("proportion"),
        "group": [{"population": [population("initial-population", "Initial Population"),
                                  population("denominator", "Denominator"),
                                  population("numerator", "Numerator")],
                   "stratifier": [stratifier("gender", "Gender")]}]});
    put(s, "Measure/bp", &measure, 201);
    for (id, gender, year, systolic, date) in bp_patients() {
        let p = json!({"resourceType": "Patient", "id": id, "gender": gender, "birthDate": format!("{year}-06-15")});
        put(s, &format!("Patient/{id}"), &p, 201);
        let o = json!({"resourceType": "Observation", "id": format!("o-{id}"), "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "subject": {"reference": format!("Patient/{id}")}, "effectiveDateTime": date,
            "valueQuantity": {"value": systolic, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}});
        put(s, &format!("Observation/o-{id}"), &o, 201);
    }
}

/// Expected (initial population, numerator) of the blood-pressure measure over 2020, from
/// the fixture's data: adults on 2020-01-01 (born before mid-2002) with a systolic value
/// above `threshold` measured in 2020; only patients of `gender` when given.
pub fn bp_expected(threshold: u32, gender: Option<&str>) -> (u64, u64) {
    let adults: Vec<_> = bp_patients()
        .into_iter()
        .filter(|(_, g, y, _, _)| *y + 18 < 2020 && gender.is_none_or(|x| x == *g))
        .collect();
    let high = adults
        .iter()
        .filter(|(_, _, _, v, d)| *v > threshold && d.starts_with("2020"))
        .count() as u64;
    (adults.len() as u64, high)
}

/// Checks a population report of the blood-pressure measure over 2020 (default threshold)
/// against [`bp_expected`]: counts, score and the gender strata.
pub fn check_bp_report(report: &Value) {
    let group = &report["group"][0];
    let (ip, num) = bp_expected(140, None);
    assert!(
        ip > 0 && num > 0 && num < ip,
        "the data exercises the measure"
    );
    assert_eq!(count(group, "initial-population"), ip, "{report}");
    assert_eq!(count(group, "denominator"), ip);
    assert_eq!(count(group, "numerator"), num);
    let score = group["measureScore"]["value"].as_f64().unwrap();
    assert!((score - num as f64 / ip as f64).abs() < 1e-9);
    let strata = strata(group, 0);
    assert_eq!(strata.len(), 2, "{group}");
    for (gender, stratum) in &strata {
        let (ip, num) = bp_expected(140, Some(gender));
        assert_eq!(count(stratum, "initial-population"), ip, "{gender}");
        assert_eq!(count(stratum, "numerator"), num, "{gender}");
    }
}
