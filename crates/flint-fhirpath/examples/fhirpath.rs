//! Evaluates a FHIRPath expression on a JSON resource and prints each result with its type
//! and location: `cargo run -p flint-fhirpath --example fhirpath -- 'Patient.name.given' file.json`.

use flint_fhirpath::{EvalContext, Item, compile};
use serde_json::Value;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(expr), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: fhirpath <expression> <resource.json>");
        std::process::exit(2);
    };
    let resource: Value = match std::fs::read(&file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{file}: {e}");
            std::process::exit(1);
        }
    };
    let compiled = match compile(&expr) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    match compiled.evaluate_with(&EvalContext::new(&resource)) {
        Ok(items) => {
            for i in &items {
                let text = i.to_fhirpath_string().unwrap_or_else(|| match i {
                    Item::Node(n) => n.value().map(Value::to_string).unwrap_or_default(),
                    _ => String::new(),
                });
                let loc = i
                    .as_node()
                    .and_then(|n| n.location(&resource))
                    .map(|l| format!(" @ {l:?}"))
                    .unwrap_or_default();
                println!("{}: {text}{loc}", i.type_name());
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
