//! End-to-end tests of the generator: determinism, bundle structure, reference integrity, the
//! resource mix and observation invariants.

use flint_gen::catalog;
use flint_gen::json::Style;
use flint_gen::output::{self, Format, Options, patient_bundle};
use flint_gen::patient;
use flint_gen::time::{Window, parse_datetime};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("flint-gen-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(dir: &Path, seed: u64, patients: u64, format: Format, threads: usize) -> output::Stats {
    output::run(&Options {
        patients,
        seed,
        out: dir.to_path_buf(),
        format,
        window: Window::from_seed(seed),
        threads,
    })
    .expect("generation succeeds")
}

/// Every file under `dir` (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn same_arguments_give_identical_bytes() {
    let (a, b, c) = (tmp("det-a"), tmp("det-b"), tmp("det-c"));
    let sa = run(&a, 42, 3, Format::Both, 1);
    let sb = run(&b, 42, 3, Format::Both, 1);
    let sc = run(&c, 42, 3, Format::Both, 3);
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert!(fa.contains_key("0-organizations.json"));
    assert!(fa.contains_key("patient-000003.json"));
    assert!(fa.contains_key("ndjson/Observation.ndjson"));
    assert_eq!(fa, fb, "two runs differ");
    assert_eq!(fa, fc, "thread count changes the output");
    assert_eq!(sa, sb);
    assert_eq!(sa, sc);
}

#[test]
fn patients_depend_only_on_seed_and_index() {
    let dir = tmp("subset");
    run(&dir, 5, 3, Format::Bundles, 2);
    let w = Window::from_seed(5);
    for i in 1..=3 {
        let file = std::fs::read_to_string(dir.join(output::patient_file_name(i))).unwrap();
        assert_eq!(file, patient_bundle(5, i, &w), "patient {i}");
    }
    // Generating a different number of patients does not change patient 2.
    let dir2 = tmp("subset-2");
    run(&dir2, 5, 2, Format::Bundles, 1);
    assert_eq!(
        std::fs::read(dir.join("patient-000002.json")).unwrap(),
        std::fs::read(dir2.join("patient-000002.json")).unwrap()
    );
}

#[test]
fn seeds_and_patients_differ() {
    let (w1, w2) = (Window::from_seed(1), Window::from_seed(2));
    assert_ne!(patient_bundle(1, 1, &w1), patient_bundle(2, 1, &w2));
    assert_ne!(patient_bundle(1, 1, &w1), patient_bundle(1, 2, &w1));
    // Same window, different seed: still different.
    assert_ne!(patient_bundle(1, 1, &w1), patient_bundle(2, 1, &w1));
}

/// Collects every `reference` string under `v`.
fn references<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference" {
                    if let Some(s) = x.as_str() {
                        out.push(s);
                    }
                } else {
                    references(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

fn catalog_refs() -> HashSet<String> {
    let mut s = HashSet::new();
    for i in 0..catalog::ORGS {
        s.insert(format!("Organization/{}", catalog::org_id(i)));
    }
    for i in 0..catalog::PRACTITIONERS {
        s.insert(format!("Practitioner/{}", catalog::practitioner_id(i)));
    }
    s
}

fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[test]
fn bundles_are_transactions_with_resolvable_references() {
    let w = Window::from_seed(11);
    let shared = catalog_refs();
    for i in 1..=15 {
        let b: Value = serde_json::from_str(&patient_bundle(11, i, &w)).unwrap();
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "transaction");
        let entries = b["entry"].as_array().unwrap();
        assert!(!entries.is_empty());
        assert_eq!(entries[0]["resource"]["resourceType"], "Patient");
        let mut full_urls = HashSet::new();
        for e in entries {
            let fu = e["fullUrl"].as_str().expect("fullUrl");
            assert!(fu.starts_with("urn:uuid:") && is_uuid_v4(&fu[9..]), "{fu}");
            assert!(full_urls.insert(fu), "duplicate fullUrl {fu}");
            assert_eq!(e["request"]["method"], "POST");
            assert_eq!(e["request"]["url"], e["resource"]["resourceType"]);
            assert!(e["resource"].get("id").is_none());
        }
        for e in entries {
            let mut refs = Vec::new();
            references(&e["resource"], &mut refs);
            for r in refs {
                assert!(
                    full_urls.contains(r) || shared.contains(r),
                    "patient {i}: unresolved reference {r} in {}",
                    e["resource"]["resourceType"]
                );
            }
        }
    }
}

#[test]
fn catalog_bundle_puts_organizations_and_practitioners() {
    let b: Value = serde_json::from_str(&catalog::catalog_bundle()).unwrap();
    assert_eq!(b["type"], "batch");
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(entries.len(), catalog::ORGS + catalog::PRACTITIONERS);
    let mut urls = HashSet::new();
    for e in entries {
        let r = &e["resource"];
        assert_eq!(e["request"]["method"], "PUT");
        let url = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        assert_eq!(e["request"]["url"], url.as_str());
        assert!(
            r["identifier"][0]["value"]
                .as_str()
                .is_some_and(|v| v.len() == 10)
        );
        assert!(urls.insert(url));
    }
    assert_eq!(urls, catalog_refs());
}

#[test]
fn ndjson_has_ids_and_type_references() {
    let dir = tmp("ndjson");
    run(&dir, 9, 3, Format::Both, 2);
    let mut ids = HashSet::new();
    let mut resources = Vec::new();
    for (name, bytes) in files(&dir.join("ndjson")) {
        let ty = name.trim_end_matches(".ndjson").to_string();
        for line in String::from_utf8(bytes).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["resourceType"], ty.as_str());
            let id = v["id"].as_str().expect("id").to_string();
            assert!(ids.insert(format!("{ty}/{id}")));
            resources.push(v);
        }
    }
    for v in &resources {
        let mut refs = Vec::new();
        references(v, &mut refs);
        for r in refs {
            assert!(ids.contains(r), "unresolved {r}");
        }
    }
    // The NDJSON ids are the bundle entries' uuids.
    let b: Value =
        serde_json::from_slice(&std::fs::read(dir.join("patient-000002.json")).unwrap()).unwrap();
    for e in b["entry"].as_array().unwrap() {
        let uuid = &e["fullUrl"].as_str().unwrap()[9..];
        let key = format!("{}/{uuid}", e["resource"]["resourceType"].as_str().unwrap());
        assert!(ids.contains(&key), "{key} missing from NDJSON");
    }
}

#[test]
fn about_a_thousand_resources_per_patient() {
    let w = Window::from_seed(1);
    let counts: Vec<usize> = (1..=50)
        .map(|i| patient::generate(1, i, &w, Style::Bundle).len())
        .collect();
    let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    assert!((800.0..=1200.0).contains(&mean), "mean {mean}: {counts:?}");
    assert!(
        counts.iter().any(|c| *c < 500) && counts.iter().any(|c| *c > 1500),
        "{counts:?}"
    );
}

#[test]
fn observations_are_well_formed_and_in_the_window() {
    for (seed, start_year) in [(1, None), (3, Some(2005))] {
        let w = start_year.map_or(Window::from_seed(seed), Window::from_start_year);
        let mut categories = HashSet::new();
        let mut codes = HashSet::new();
        for i in 1..=10 {
            let b: Value = serde_json::from_str(&patient_bundle(seed, i, &w)).unwrap();
            for e in b["entry"].as_array().unwrap() {
                let r = &e["resource"];
                if r["resourceType"] != "Observation" {
                    continue;
                }
                assert_eq!(r["status"], "final");
                let cat = &r["category"][0]["coding"][0];
                assert_eq!(
                    cat["system"],
                    "http://terminology.hl7.org/CodeSystem/observation-category"
                );
                categories.insert(cat["code"].as_str().unwrap().to_string());
                assert_eq!(r["code"]["coding"][0]["system"], "http://loinc.org");
                codes.insert(r["code"]["coding"][0]["code"].as_str().unwrap().to_string());
                let t = parse_datetime(r["effectiveDateTime"].as_str().expect("effectiveDateTime"))
                    .unwrap();
                assert!(
                    w.contains(t),
                    "{} outside the window",
                    r["effectiveDateTime"]
                );
                assert!(parse_datetime(r["issued"].as_str().expect("issued")).unwrap() >= t);
                assert!(r["encounter"]["reference"].as_str().is_some());
                let quantities: Vec<&Value> = std::iter::once(&r["valueQuantity"])
                    .chain(
                        r["component"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|c| &c["valueQuantity"]),
                    )
                    .filter(|q| q.is_object())
                    .collect();
                assert!(
                    !quantities.is_empty() || r["valueCodeableConcept"].is_object(),
                    "observation without a value"
                );
                for q in quantities {
                    assert!(q["value"].as_f64().is_some_and(|v| v >= 0.0));
                    assert_eq!(q["system"], "http://unitsofmeasure.org");
                    assert_eq!(q["unit"], q["code"]);
                }
            }
        }
        for c in ["vital-signs", "laboratory", "survey", "social-history"] {
            assert!(categories.contains(c), "no {c} observation");
        }
        for c in [
            "29463-7", "8302-2", "39156-5", "85354-9", "8867-4", "9279-1", "718-7", "2339-0",
            "72166-2",
        ] {
            assert!(codes.contains(c), "no {c} observation");
        }
    }
}

#[test]
fn resources_have_r4_shapes() {
    let w = Window::from_seed(1);
    let b: Value = serde_json::from_str(&patient_bundle(1, 4, &w)).unwrap();
    let mut types = HashSet::new();
    for e in b["entry"].as_array().unwrap() {
        let r = &e["resource"];
        let ty = r["resourceType"].as_str().unwrap();
        types.insert(ty.to_string());
        match ty {
            "Patient" => {
                assert!(r["address"].is_array() && r["name"].is_array() && r["telecom"].is_array());
                assert!(r["address"][0]["postalCode"].is_string());
                assert!(r["birthDate"].as_str().is_some_and(|d| d.len() == 10));
            }
            "Encounter" => {
                assert!(r["class"].is_object() && r["class"]["code"].is_string());
                assert_eq!(
                    r["type"][0]["coding"][0]["system"],
                    "http://snomed.info/sct"
                );
                assert!(
                    r["participant"][0]["individual"]["reference"]
                        .as_str()
                        .unwrap()
                        .starts_with("Practitioner/")
                );
                assert!(
                    r["serviceProvider"]["reference"]
                        .as_str()
                        .unwrap()
                        .starts_with("Organization/")
                );
            }
            "Condition" => {
                assert_eq!(r["code"]["coding"][0]["system"], "http://snomed.info/sct");
                assert!(r["clinicalStatus"]["coding"].is_array() && r["onsetDateTime"].is_string());
            }
            "MedicationRequest" | "MedicationAdministration" => {
                assert_eq!(
                    r["medicationCodeableConcept"]["coding"][0]["system"],
                    "http://www.nlm.nih.gov/research/umls/rxnorm"
                );
            }
            "DiagnosticReport" => assert!(r["category"].is_array() && r["code"].is_object()),
            "Immunization" => assert_eq!(
                r["vaccineCode"]["coding"][0]["system"],
                "http://hl7.org/fhir/sid/cvx"
            ),
            _ => {}
        }
    }
    for t in [
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "DiagnosticReport",
        "Claim",
        "ExplanationOfBenefit",
    ] {
        assert!(types.contains(t), "patient 4 has no {t}");
    }
}
