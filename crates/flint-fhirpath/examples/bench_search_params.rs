//! Measures search-parameter evaluation speed over the official examples:
//! `cargo run --release -p flint-fhirpath --example bench_search_params [rounds]`.

use flint_fhirpath::{EvalContext, compile};
use flint_model::defs::definitions;
use serde_json::Value;
use std::time::Instant;

fn main() {
    let dir = std::env::var("FLINT_FHIR_EXAMPLES").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-examples").to_string()
    });
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let mut resources: Vec<Value> = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("cannot read {dir}");
        return;
    };
    for e in entries.flatten() {
        if let Ok(bytes) = std::fs::read(e.path())
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        {
            resources.push(v);
        }
    }
    let params: Vec<_> = definitions()
        .search_params()
        .iter()
        .filter_map(|sp| {
            let expr = compile(sp.expression.as_deref()?).ok()?;
            Some((sp.base.clone(), expr))
        })
        .collect();
    let mut work = Vec::new();
    for r in &resources {
        let ty = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
        let exprs: Vec<_> = params
            .iter()
            .filter(|(b, _)| {
                b.iter()
                    .any(|b| b == ty || b == "Resource" || b == "DomainResource")
            })
            .map(|(_, e)| e)
            .collect();
        work.push((r, exprs));
    }
    let total: usize = work.iter().map(|(_, e)| e.len()).sum();
    let start = Instant::now();
    let mut values = 0usize;
    for _ in 0..rounds {
        for (r, exprs) in &work {
            let ctx = EvalContext::new(r);
            for e in exprs {
                values += e.evaluate_with(&ctx).map(|v| v.len()).unwrap_or(0);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let evals = total * rounds;
    println!(
        "{} resources, {evals} evaluations, {values} values in {secs:.3}s: {:.0} evaluations/s, {:.0} resources/s",
        resources.len(),
        evals as f64 / secs,
        (resources.len() * rounds) as f64 / secs
    );
}
