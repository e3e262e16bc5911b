//! Compiles every R4 search-parameter expression and evaluates it on every official example
//! resource (and every resource inside example Bundles) whose type is in the parameter's base:
//! no compile error, no evaluation error, no panic.

use flint_fhirpath::{EvalContext, Expression, compile};
use flint_model::defs::definitions;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Instant;

fn examples_dir() -> PathBuf {
    match std::env::var_os("FLINT_FHIR_EXAMPLES") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fhir-examples"
        )),
    }
}

fn load_examples() -> Vec<Value> {
    let dir = examples_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let v: Value =
            serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        // Resources inside bundles are resources too.
        if let Some(entries) = v.get("entry").and_then(Value::as_array) {
            for e in entries {
                if let Some(r) = e.get("resource") {
                    out.push(r.clone());
                }
            }
        }
        out.push(v);
    }
    out
}

struct Param {
    id: String,
    base: Vec<String>,
    expr: Expression,
    components: Vec<Expression>,
}

fn applies(base: &[String], ty: &str) -> bool {
    base.iter()
        .any(|b| b == ty || b == "Resource" || (b == "DomainResource" && ty != "Bundle"))
}

#[test]
fn search_parameter_expressions_evaluate_on_examples() {
    let mut params = Vec::new();
    let mut compile_errors = Vec::new();
    for sp in definitions().search_params() {
        let Some(src) = sp.expression.as_deref() else {
            continue;
        };
        let expr = match compile(src) {
            Ok(e) => e,
            Err(e) => {
                compile_errors.push(format!("{}: `{src}`: {e}", sp.id));
                continue;
            }
        };
        let mut components = Vec::new();
        for c in &sp.component {
            match compile(&c.expression) {
                Ok(e) => components.push(e),
                Err(e) => {
                    compile_errors.push(format!("{} component `{}`: {e}", sp.id, c.expression))
                }
            }
        }
        params.push(Param {
            id: sp.id.clone(),
            base: sp.base.clone(),
            expr,
            components,
        });
    }
    let resources = load_examples();
    let mut errors = Vec::new();
    let mut evaluations = 0u64;
    let mut results = 0u64;
    let start = Instant::now();
    for r in &resources {
        let Some(ty) = r.get("resourceType").and_then(Value::as_str) else {
            continue;
        };
        let ctx = EvalContext::new(r);
        for p in params.iter().filter(|p| applies(&p.base, ty)) {
            evaluations += 1;
            match p.expr.evaluate_with(&ctx) {
                Ok(items) => {
                    results += items.len() as u64;
                    for item in &items {
                        for c in &p.components {
                            let cctx = EvalContext::new(r).with_start(vec![item.clone()]);
                            if let Err(e) = c.evaluate_with(&cctx) {
                                errors.push(format!(
                                    "{} component `{}` on {ty}/{}: {e}",
                                    p.id,
                                    c.source(),
                                    r.get("id").and_then(Value::as_str).unwrap_or("?")
                                ));
                            }
                        }
                    }
                }
                Err(e) => errors.push(format!(
                    "{} `{}` on {ty}/{}: {e}",
                    p.id,
                    p.expr.source(),
                    r.get("id").and_then(Value::as_str).unwrap_or("?")
                )),
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} parameters, {} resources, {evaluations} evaluations, {results} values in {secs:.3}s ({:.0} evaluations/s)",
        params.len(),
        resources.len(),
        evaluations as f64 / secs.max(1e-9)
    );
    for e in compile_errors.iter().chain(&errors) {
        println!("ERROR {e}");
    }
    println!(
        "search-params: {} passed, {} failed",
        evaluations as usize - errors.len(),
        errors.len() + compile_errors.len()
    );
    assert!(
        compile_errors.is_empty(),
        "{} expressions failed to compile",
        compile_errors.len()
    );
    assert!(errors.is_empty(), "{} evaluations failed", errors.len());
}
