//! Extracts every parameter on every official R4 example resource.

use flint_search_core::{IndexValue, Registry};
use serde_json::Value;
use std::collections::BTreeMap;

#[test]
fn extracts_all_examples() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-examples");
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!("cannot read the R4 examples at {dir} (../shared/fhir-examples beside the repository): {e}")
    });
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

fn esc(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '|' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every extracted value is found again by a query built from it, and matching any parsed
/// query against any example's values never panics.
#[test]
fn extracted_values_match_queries_built_from_them() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-examples");
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!("cannot read the R4 examples at {dir} (../shared/fhir-examples beside the repository): {e}")
    });
    let reg = Registry::r4();
    let (mut checked, mut unparsable) = (0usize, 0usize);
    for e in entries.flatten() {
        let Ok(bytes) = std::fs::read(e.path()) else {
            continue;
        };
        let Ok(res) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let ty = res["resourceType"].as_str().unwrap_or_default().to_string();
        let Ok(vals) = reg.extract(&res) else {
            continue;
        };
        for (p, v) in &vals {
            let queries: Vec<(String, String)> = match v {
                IndexValue::Token(t) => match (&t.system, &t.code) {
                    (Some(s), Some(c)) => vec![
                        (p.code.clone(), format!("{}|{}", esc(s), esc(c))),
                        (p.code.clone(), esc(c)),
                    ],
                    (None, Some(c)) => vec![(p.code.clone(), format!("|{}", esc(c)))],
                    _ => vec![],
                },
                IndexValue::String(s) if !s.normalized.is_empty() => vec![
                    (format!("{}:exact", p.code), esc(&s.exact)),
                    (p.code.clone(), esc(&s.exact)),
                    (format!("{}:contains", p.code), esc(&s.exact)),
                ],
                IndexValue::Reference(flint_search_core::ReferenceValue::Local {
                    type_name,
                    id,
                    ..
                }) => vec![(p.code.clone(), format!("{type_name}/{id}"))],
                IndexValue::Uri(u) => vec![(p.code.clone(), esc(u))],
                IndexValue::Number(n) => n
                    .value
                    .map(|d| vec![(p.code.clone(), d.to_string())])
                    .unwrap_or_default(),
                IndexValue::Quantity(q) => match (q.number.value, &q.system, &q.code) {
                    (Some(d), Some(s), Some(c)) => {
                        vec![(p.code.clone(), format!("{d}|{}|{}", esc(s), esc(c)))]
                    }
                    _ => vec![],
                },
                _ => vec![],
            };
            for (k, val) in queries {
                let Ok(q) = flint_search_core::parse_query(&reg, &ty, &[(k.clone(), val.clone())])
                else {
                    unparsable += 1;
                    continue;
                };
                let Some(clause) = q.clauses.first() else {
                    unparsable += 1;
                    continue;
                };
                let own: Vec<IndexValue> = vals
                    .iter()
                    .filter(|(x, _)| x.code == p.code)
                    .map(|(_, v)| v.clone())
                    .collect();
                assert_eq!(
                    clause.matches(&own),
                    Ok(true),
                    "{ty}?{k}={val} in {}",
                    e.path().display()
                );
                checked += 1;
            }
        }
    }
    println!("{checked} self-queries matched, {unparsable} not parsable");
    assert!(checked > 3000);
    assert_eq!(unparsable, 0);
}

/// Reference parameters on `canonical` elements (issue 19): every official example is found
/// by each of its own canonical values, as written (absolute or relative), with and without
/// its `|version`, and a `|version` query finds only that version (or, with `:below`, the
/// versions under it).
#[test]
fn canonical_references_match_their_own_values() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-examples");
    let reg = Registry::r4();
    let (mut checked, mut failures) = (0usize, Vec::new());
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let Ok(res) = serde_json::from_slice::<Value>(&std::fs::read(e.path()).unwrap()) else {
            continue;
        };
        let ty = res["resourceType"].as_str().unwrap_or_default().to_string();
        let Ok(vals) = reg.extract(&res) else {
            continue;
        };
        for (p, v) in &vals {
            let IndexValue::Reference(flint_search_core::ReferenceValue::Canonical {
                url,
                version,
            }) = v
            else {
                continue;
            };
            let own: Vec<IndexValue> = vals
                .iter()
                .filter(|(x, _)| x.code == p.code)
                .map(|(_, v)| v.clone())
                .collect();
            let mut queries = vec![(p.code.clone(), esc(url), true)];
            if let Some(ver) = version {
                queries.push((p.code.clone(), format!("{}|{}", esc(url), esc(ver)), true));
                queries.push((
                    p.code.clone(),
                    format!("{}|{}-other", esc(url), esc(ver)),
                    false,
                ));
                queries.push((
                    format!("{}:below", p.code),
                    format!("{}|{}", esc(url), esc(ver)),
                    true,
                ));
            }
            for (k, val, want) in queries {
                let q = flint_search_core::parse_query(&reg, &ty, &[(k.clone(), val.clone())]);
                let got = q.map_err(|e| e.to_string()).and_then(|q| {
                    q.clauses[0]
                        .matches(&own)
                        .map_err(|e| e.to_string())
                        .and_then(|m| {
                            if m == want {
                                Ok(())
                            } else {
                                Err(format!("matched: {m}"))
                            }
                        })
                });
                if let Err(e) = got {
                    failures.push(format!("{ty}?{k}={val} ({}): {e}", e_path(&e, &res)));
                }
                checked += 1;
            }
        }
    }
    println!("{checked} canonical self-queries");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 64, "only {checked} canonical queries");
}

fn e_path(_e: &str, res: &Value) -> String {
    format!(
        "{}/{}",
        res["resourceType"].as_str().unwrap_or(""),
        res["id"].as_str().unwrap_or("")
    )
}
