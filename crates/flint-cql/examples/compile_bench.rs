//! How long translating a CQL library takes: parses FHIRHelpers 4.0.1 (the file named by the
//! first argument, by default the copy in flint-model's definitions) and a small measure
//! library many times and prints the time per parse.
//!
//! ```text
//! cargo run --release -p flint-cql --example compile_bench -- crates/flint-model/definitions/cql/FHIRHelpers-4.0.1.cql
//! ```

use std::time::Instant;

const MEASURE: &str = "library valdate version '1'
using FHIR version '4.0.1'
include FHIRHelpers version '4.0.1'
codesystem \"LOINC\": 'http://loinc.org'
code \"Weight\": '29463-7' from \"LOINC\"
parameter \"Measurement Period\" Interval<DateTime>
context Patient
define \"IP\": exists [Observation: \"Weight\"] O where O.effective during \"Measurement Period\"
define \"Num\": exists [Observation: \"Weight\"] O
  where (O.value as FHIR.Quantity).value > 80 and O.effective during \"Measurement Period\"
define \"Gender\": Patient.gender
";

fn time(name: &str, src: &str, runs: u32) {
    let start = Instant::now();
    for _ in 0..runs {
        let lib = flint_cql::parse_library(src).expect("the library parses");
        std::hint::black_box(lib);
    }
    let per = start.elapsed() / runs;
    println!(
        "{name}: {} lines, {:.1} µs per parse ({runs} runs)",
        src.lines().count(),
        per.as_secs_f64() * 1e6
    );
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "crates/flint-model/definitions/cql/FHIRHelpers-4.0.1.cql".into());
    let helpers = std::fs::read_to_string(&path).expect("FHIRHelpers source");
    time("FHIRHelpers 4.0.1", &helpers, 200);
    time("measure library (valdate)", MEASURE, 20_000);
}
