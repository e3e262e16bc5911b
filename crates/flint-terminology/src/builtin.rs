//! The built-in CodeSystems and ValueSets: every one of the official `hl7.fhir.r4.core`
//! 4.0.1 package, as `scripts/fetch-definitions.py` extracts them from the package into
//! `data/r4-core-terminology.json.gz` (structure only: no narrative). The file is compiled
//! into the binary and read once, on the first look-up; each CodeSystem is indexed
//! ([`CodeSystem::of`]) on its first use and kept.

use crate::CodeSystem;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

/// The gzip-compressed JSON array of the package's CodeSystems and ValueSets.
static DATA: &[u8] = include_bytes!("../data/r4-core-terminology.json.gz");

/// The package, read.
struct Package {
    code_systems: HashMap<String, Value>,
    value_sets: HashMap<String, Arc<Value>>,
    indexed: Mutex<HashMap<String, Arc<CodeSystem>>>,
}

fn package() -> &'static Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        let mut json = Vec::new();
        // The file is part of the build: a failure here is a broken build, not input.
        flate2::read::GzDecoder::new(DATA)
            .read_to_end(&mut json)
            .expect("the built-in terminology is gzip");
        let all: Vec<Value> =
            serde_json::from_slice(&json).expect("the built-in terminology is JSON");
        let mut code_systems = HashMap::new();
        let mut value_sets = HashMap::new();
        for r in all {
            let Some(url) = r["url"].as_str().map(str::to_string) else {
                continue;
            };
            match r["resourceType"].as_str() {
                Some("CodeSystem") => {
                    code_systems.insert(url, r);
                }
                Some("ValueSet") => {
                    value_sets.insert(url, Arc::new(r));
                }
                _ => {}
            }
        }
        Package {
            code_systems,
            value_sets,
            indexed: Mutex::new(HashMap::new()),
        }
    })
}

/// `url` without a `|version`, and the version when one is given and not empty.
pub(crate) fn split_version(url: &str) -> (&str, Option<&str>) {
    match url.split_once('|') {
        Some((u, v)) if !v.is_empty() => (u, Some(v)),
        Some((u, _)) => (u, None),
        None => (url, None),
    }
}

fn version_fits(resource: &Value, version: Option<&str>) -> bool {
    version.is_none() || resource["version"].as_str() == version
}

/// The built-in CodeSystem with canonical `url` (`url|version` asks for that version).
pub fn code_system(url: &str) -> Option<Arc<CodeSystem>> {
    let (url, version) = split_version(url);
    let p = package();
    let cs = p.code_systems.get(url)?;
    if !version_fits(cs, version) {
        return None;
    }
    let mut indexed = p.indexed.lock().unwrap_or_else(|e| e.into_inner());
    Some(
        indexed
            .entry(url.to_string())
            .or_insert_with(|| Arc::new(CodeSystem::of(cs)))
            .clone(),
    )
}

/// The built-in CodeSystem resource with canonical `url` (structure only).
pub fn code_system_resource(url: &str) -> Option<&'static Value> {
    let (url, version) = split_version(url);
    package()
        .code_systems
        .get(url)
        .filter(|cs| version_fits(cs, version))
}

/// The built-in ValueSet with canonical `url` (`url|version` asks for that version).
pub fn value_set(url: &str) -> Option<Arc<Value>> {
    let (url, version) = split_version(url);
    package()
        .value_sets
        .get(url)
        .filter(|vs| version_fits(vs, version))
        .cloned()
}

/// How many CodeSystems and ValueSets are built in.
pub fn counts() -> (usize, usize) {
    let p = package();
    (p.code_systems.len(), p.value_sets.len())
}
