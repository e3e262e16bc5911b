//! CQL over Synthea data (`../shared/synthea`, which must be there): the shared
//! Organizations, Locations and Practitioners of the two `0-*` batch bundles and the six
//! smallest patient bundles, written resource by resource with their references resolved
//! (`urn:uuid:` to `Type/id`, conditional `Type?identifier=` through the shared resources'
//! identifiers). Patients with a Condition code and Observations of a LOINC code counted
//! through CQL retrieves must equal the counts read from the raw JSON.

use flint_cql::{Context, Engine as Cql, Value, parse_library};
use flint_cql_db::PatientData;
use flint_db::mem::MemKv;
use flint_db::testing::{memory_node, put_json};
use flint_search::{Engine, Registry};
use flint_terminology::DbTerminology;
use serde_json::Value as J;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn read_bundle(p: &Path) -> J {
    let mut s = String::new();
    bzip2::read::BzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    serde_json::from_str(&s).unwrap()
}

/// Rewrites every `reference` of `v`: through `refs`, or removed when it cannot resolve.
fn resolve(v: &mut J, refs: &HashMap<String, String>) {
    match v {
        J::Object(o) => {
            if let Some(J::String(r)) = o.get("reference") {
                match refs.get(r.as_str()) {
                    Some(t) => {
                        o.insert("reference".into(), J::String(t.clone()));
                    }
                    None if r.starts_with("urn:") || r.contains('?') => {
                        o.remove("reference");
                    }
                    None => {}
                }
            }
            for (_, x) in o.iter_mut() {
                resolve(x, refs);
            }
        }
        J::Array(xs) => xs.iter_mut().for_each(|x| resolve(x, refs)),
        _ => {}
    }
}

/// The resources of the bundles with ids from their `fullUrl`s and references resolved.
fn load(dir: &Path) -> Vec<J> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json.bz2"))
        .collect();
    files.sort_by_key(|p| (std::fs::metadata(p).unwrap().len(), p.clone()));
    let (shared, patients): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|p| p.file_name().unwrap().to_string_lossy().starts_with("0-"));
    let mut refs = HashMap::new();
    let mut out = Vec::new();
    for f in shared.iter().chain(patients.iter().take(6)) {
        let b = read_bundle(f);
        for e in b["entry"].as_array().unwrap() {
            let mut r = e["resource"].clone();
            let ty = r["resourceType"].as_str().unwrap().to_string();
            let id = e["fullUrl"]
                .as_str()
                .unwrap()
                .trim_start_matches("urn:uuid:")
                .to_string();
            r["id"] = J::String(id.clone());
            refs.insert(
                e["fullUrl"].as_str().unwrap().to_string(),
                format!("{ty}/{id}"),
            );
            for i in r["identifier"].as_array().into_iter().flatten() {
                if let (Some(s), Some(v)) = (i["system"].as_str(), i["value"].as_str()) {
                    refs.insert(format!("{ty}?identifier={s}|{v}"), format!("{ty}/{id}"));
                }
            }
            out.push(r);
        }
    }
    for r in &mut out {
        resolve(r, &refs);
    }
    out
}

fn codes_of(r: &J) -> Vec<(String, String)> {
    r["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["system"].as_str().unwrap_or_default().to_string(),
                c["code"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn subject(r: &J) -> Option<&str> {
    r["subject"]["reference"].as_str()?.strip_prefix("Patient/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_and_observation_counts_match_the_raw_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/synthea");
    assert!(
        dir.is_dir(),
        "the Synthea bundles belong at {} (../shared/synthea beside the repository)",
        dir.display()
    );
    let all = load(&dir);
    let search = Engine::new(Arc::new(Registry::r4()));
    let node = memory_node(search.indexer(), Arc::new(MemKv::new())).await;
    for r in &all {
        put_json(&node, r).await;
    }
    let db = node.sync().await.unwrap();
    let terminology = DbTerminology::new(search.clone());
    let patients: Vec<&str> = all
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(patients.len(), 6);
    // The SNOMED condition code most patients have, and the LOINC code of most Observations.
    let mut by_code: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let mut obs_by_code: BTreeMap<String, usize> = BTreeMap::new();
    for r in &all {
        for (s, c) in codes_of(r) {
            if r["resourceType"] == "Condition" && s == "http://snomed.info/sct" {
                by_code.entry(c).or_default().insert(subject(r).unwrap());
            } else if r["resourceType"] == "Observation" && s == "http://loinc.org" {
                *obs_by_code.entry(c).or_default() += 1;
            }
        }
    }
    let (cond, with) = by_code.iter().max_by_key(|(_, ps)| ps.len()).unwrap();
    let (loinc, _) = obs_by_code.iter().max_by_key(|(_, n)| **n).unwrap();
    let lib = parse_library(&format!(
        "library S using FHIR version '4.0.1'
codesystem \"SNOMED\": 'http://snomed.info/sct'
codesystem \"LOINC\": 'http://loinc.org'
code \"C\": '{cond}' from \"SNOMED\"
code \"O\": '{loinc}' from \"LOINC\"
context Patient
define \"Has C\": exists [Condition: \"C\"]
define \"O count\": Count([Observation: \"O\"])
define \"O count in memory\": Count([Observation] X where X.code ~ \"O\")
define \"Conditions\": Count([Condition])"
    ))
    .unwrap();
    let mut cql_with = 0;
    for pid in &patients {
        let data = PatientData::new(
            &db,
            &search,
            &terminology,
            *pid,
            tokio::runtime::Handle::current(),
        );
        let cql = Cql::new(&lib).with_data(&data);
        let mut ctx = Context::default();
        let mut ev = |d: &str| cql.eval_define(d, &mut ctx).unwrap();
        let raw_o = all
            .iter()
            .filter(|r| r["resourceType"] == "Observation" && subject(r) == Some(pid))
            .filter(|r| {
                codes_of(r)
                    .iter()
                    .any(|(s, c)| s == "http://loinc.org" && c == loinc)
            })
            .count();
        let raw_c = all
            .iter()
            .filter(|r| r["resourceType"] == "Condition" && subject(r) == Some(pid))
            .count();
        assert_eq!(ev("O count"), Value::Int(raw_o as i32), "{pid}");
        assert_eq!(ev("O count in memory"), Value::Int(raw_o as i32), "{pid}");
        assert_eq!(ev("Conditions"), Value::Int(raw_c as i32), "{pid}");
        let has = ev("Has C") == Value::Bool(true);
        assert_eq!(has, with.contains(pid), "{pid}");
        cql_with += usize::from(has);
    }
    assert_eq!(cql_with, with.len());
    eprintln!(
        "synthea: {} resources, {cql_with}/{} patients with SNOMED {cond}, LOINC {loinc}",
        all.len(),
        patients.len()
    );
}
