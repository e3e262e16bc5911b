//! `Measure/$evaluate-measure` over HTTP against the real binary, on every storage variant:
//! a CQL library stored as a `Library` (base64 `text/cql`), a proportion Measure with a
//! gender stratifier, generated Patients and blood-pressure Observations; every count is
//! computed here from the data the test wrote.

mod common;
#[path = "common/measure.rs"]
mod measure;

use common::{Server, VARIANTS, json};
use measure::{base64, bp_expected, check_bp_report, count, cql_library, load_bp, population, put};
use serde_json::json;

#[test]
fn evaluate_measure_counts_match_the_data() {
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        load_bp(&s);
        let (st, report) = json(
            s.get("Measure/bp/$evaluate-measure?periodStart=2020&periodEnd=2020")
                .send()
                .unwrap(),
        );
        assert_eq!(st, 200, "{v}: {report}");
        check_bp_report(&report);
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
        let (_, num) = bp_expected(160, None);
        assert_eq!(count(&stored["group"][0], "numerator"), num);
        // A library that does not parse is a 400 naming it.
        put(
            &s,
            "Library/bp",
            &cql_library("bp", "BP", "1.0.0", "library BP define X: (1 +"),
            200,
        );
        let (st, oo) = json(
            s.get("Measure/bp/$evaluate-measure?periodStart=2020&periodEnd=2020")
                .send()
                .unwrap(),
        );
        assert_eq!(st, 400, "{oo}");
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
