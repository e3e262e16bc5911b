//! Measures extraction throughput over the official R4 examples:
//! `cargo run --release -p flint-search-core --example extract_throughput [rounds]`.

use flint_search_core::Registry;
use serde_json::Value;
use std::time::Instant;

fn main() {
    let dir = std::env::var("FLINT_FHIR_EXAMPLES").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-examples").to_string()
    });
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("cannot read {dir}");
        return;
    };
    let resources: Vec<Value> = entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    let t = Instant::now();
    let registry = Registry::r4();
    println!(
        "registry: {} parameters ({} unsupported) built in {:.0} ms",
        registry.all().len(),
        registry.unsupported().len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let start = Instant::now();
    let (mut values, mut errors) = (0usize, 0usize);
    for _ in 0..rounds {
        for r in &resources {
            match registry.extract(r) {
                Ok(v) => values += v.len(),
                Err(_) => errors += 1,
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = resources.len() * rounds;
    println!(
        "{} resources x {rounds} rounds: {values} values, {errors} errors in {secs:.3} s: {:.0} resources/s, {:.0} values/s",
        resources.len(),
        n as f64 / secs,
        values as f64 / secs
    );
}
