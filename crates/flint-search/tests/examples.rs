//! Extracts every parameter on every official R4 example resource.

use flint_search::{IndexValue, Registry};
use serde_json::Value;
use std::collections::BTreeMap;

#[test]
fn extracts_all_examples() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-examples");
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("examples not found at {dir}; skipping");
        return;
    };
    let reg = Registry::r4();
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    let (mut resources, mut values) = (0usize, 0usize);
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut params_with_values: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        resources += 1;
        match reg.extract(&v) {
            Ok(vals) => {
                values += vals.len();
                for (p, val) in &vals {
                    *params_with_values.entry(p.url.clone()).or_default() += 1;
                    let k = match val {
                        IndexValue::String(_) => "string",
                        IndexValue::Token(_) => "token",
                        IndexValue::Reference(_) => "reference",
                        IndexValue::Date(_) => "date",
                        IndexValue::Number(_) => "number",
                        IndexValue::Quantity(_) => "quantity",
                        IndexValue::Uri(_) => "uri",
                        IndexValue::Composite(_) => "composite",
                        IndexValue::Near(_) => "near",
                    };
                    *by_kind.entry(k).or_default() += 1;
                }
            }
            Err(e) => failures.push(format!("{}: {e}", f.display())),
        }
    }
    println!(
        "{resources} resources, {values} index values, {} of {} parameters had values",
        params_with_values.len(),
        reg.all().len()
    );
    println!("values by type: {by_kind:?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(resources >= 700, "only {resources} examples read");
}
