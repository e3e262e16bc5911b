//! The `$validate-code` rate against a generated CodeSystem hierarchy: stores a CodeSystem of
//! N concepts (default 10,000; a tree with 10 children per concept, so about four levels)
//! and a ValueSet of every concept below the root (`is-a`) in an in-memory node, serves the
//! router on a local socket and sends `CodeSystem/$validate-code` and then
//! `ValueSet/$validate-code` GETs of codes spread over the hierarchy from C concurrent
//! HTTP/1.1 keep-alive clients (default 32) for S seconds each (default 5). Prints requests
//! per second and the answers' check (every code valid, every invented one not), plus the
//! rate of the same validations called in process (no HTTP).
//!
//! `cargo run --release -p flint-rest --example terminology_bench -- 10000 32 5`

use flint_db::mem::MemKv;
use flint_rest::{AppState, RestConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CS: &str = "http://bench/cs";
const VS: &str = "http://bench/vs";

/// A CodeSystem of `n` concepts `c0` .. `c{n-1}`: `c0` the root, `c{i}`'s children
/// `c{10i+1}` .. `c{10i+10}`, nested in the concept tree.
fn code_system(n: usize) -> Value {
    fn concept(i: usize, n: usize) -> Value {
        let mut c = json!({"code": format!("c{i}"), "display": format!("Concept {i}")});
        let kids: Vec<Value> = (10 * i + 1..=10 * i + 10)
            .filter(|k| *k < n)
            .map(|k| concept(k, n))
            .collect();
        if !kids.is_empty() {
            c["concept"] = Value::Array(kids);
        }
        c
    }
    json!({"resourceType": "CodeSystem", "id": "bench", "url": CS, "status": "active",
        "content": "complete", "concept": [concept(0, n)]})
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let clients = args.get(1).copied().unwrap_or(32);
    let seconds = args.get(2).copied().unwrap_or(5) as u64;

    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let node = flint_db::testing::memory_node(engine.indexer(), Arc::new(MemKv::new())).await;
    flint_db::testing::put_json(&node, &code_system(n)).await;
    flint_db::testing::put_json(
        &node,
        &json!({"resourceType": "ValueSet", "id": "bench", "url": VS, "status": "active",
            "compose": {"include": [{"system": CS, "filter": [
                {"property": "concept", "op": "is-a", "value": "c0"}]}]}}),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = RestConfig {
        base_url: format!("http://{addr}"),
        context_path: "/fhir".into(),
        enable_terminology_service: true,
        ..RestConfig::default()
    };
    let state = AppState::new(node.clone(), config, engine);
    let router = flint_rest::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let base = format!("http://{addr}/fhir");
    println!("{n} concepts, {clients} clients, {seconds} s per operation");

    // In process: the service's own cost per validation.
    let db = node.sync().await.unwrap();
    let session = state.terminology_service().at(&db, vec![]);
    let vs = session.value_set(VS).await.unwrap().unwrap();
    let rounds = 20_000;
    let started = Instant::now();
    for i in 0..rounds {
        let code = format!("c{}", (i * 7919) % n);
        let cs = session.code_system(CS).await.unwrap().unwrap();
        let c = flint_terminology::CodingInput {
            system: Some(CS.into()),
            code,
            ..Default::default()
        };
        let out = session.validate_in_code_system(&cs, &[c]);
        assert_eq!(out["parameter"][0]["valueBoolean"], true);
    }
    let cs_rate = rounds as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for i in 0..rounds {
        let c = flint_terminology::CodingInput {
            system: Some(CS.into()),
            code: format!("c{}", (i * 7919) % n),
            ..Default::default()
        };
        let out = session
            .validate_in_value_set(&vs, &[c], false)
            .await
            .unwrap();
        assert_eq!(out["parameter"][0]["valueBoolean"], true);
    }
    let vs_rate = rounds as f64 / started.elapsed().as_secs_f64();
    println!(
        "in process (resolve by url + validate): CodeSystem {cs_rate:.0}/s, ValueSet (is-a) {vs_rate:.0}/s"
    );

    for (name, path) in [
        (
            "CodeSystem/$validate-code",
            format!("CodeSystem/$validate-code?url={CS}&code="),
        ),
        (
            "ValueSet/$validate-code",
            format!("ValueSet/$validate-code?url={VS}&system={CS}&code="),
        ),
    ] {
        let done = Arc::new(AtomicU64::new(0));
        let wrong = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for k in 0..clients {
            let (done, wrong) = (done.clone(), wrong.clone());
            let url = format!("{base}/{path}");
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut i = k * 1_000_003;
                while Instant::now() < deadline {
                    i += 7919;
                    // One request in ten asks for a code the system lacks.
                    let (code, valid) = if i % 10 == 0 {
                        (format!("x{i}"), false)
                    } else {
                        (format!("c{}", i % n), true)
                    };
                    let res = client.get(format!("{url}{code}")).send().await.unwrap();
                    let body: Value = res.json().await.unwrap();
                    if body["parameter"][0]["valueBoolean"] != valid {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let started = Instant::now();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let count = done.load(Ordering::Relaxed);
        println!(
            "HTTP {name}: {count} requests in {secs:.1} s = {:.0} requests/s ({} wrong answers)",
            count as f64 / secs,
            wrong.load(Ordering::Relaxed)
        );
    }
}
