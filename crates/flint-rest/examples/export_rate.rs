//! The `$export` rate: stores N Observations (default 100,000) in an in-memory node, kicks off
//! `[base]/$export`, waits for the manifest and downloads every file through the router,
//! three times (the first read warms the caches), plain and gzip; prints resources/s.
//!
//! `cargo run --release -p flint-rest --example export_rate -- 200000`

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use flint_db::mem::MemKv;
use flint_rest::{AppState, RestConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, axum::http::HeaderMap, bytes::Bytes) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/fhir+json");
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res
        .into_body()
        .collect()
        .await
        .expect("whole body")
        .to_bytes();
    (status, headers, bytes)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let node = flint_db::testing::memory_node(engine.indexer(), Arc::new(MemKv::new())).await;
    let admin = flint_db::testing::plain_node().await;
    let config = RestConfig {
        base_url: "http://bench".into(),
        context_path: "/fhir".into(),
        enforce_referential_integrity: false,
        ..RestConfig::default()
    };
    let state = AppState::new(node, config, engine)
        .with_jobs(flint_jobs::Scheduler::new(flint_jobs::JobStore::new(admin)));
    let router = flint_rest::router(state);

    let started = Instant::now();
    for chunk in 0..n.div_ceil(1000) {
        let entries: Vec<Value> = (chunk * 1000..((chunk + 1) * 1000).min(n))
            .map(|i| {
                let id = format!("o{i:08}");
                json!({"resource": {
                    "resourceType": "Observation", "id": id, "status": "final",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
                    "subject": {"reference": format!("Patient/p{}", i % 1000)},
                    "effectiveDateTime": "2024-01-01T10:00:00Z",
                    "valueQuantity": {"value": 60 + i % 40, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}},
                    "request": {"method": "PUT", "url": format!("Observation/{id}")}})
            })
            .collect();
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let (st, _, body) = send(&router, "POST", "/fhir", &[], b.to_string()).await;
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    }
    println!(
        "stored {n} Observations in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let kicked = Instant::now();
    let (st, h, _) = send(
        &router,
        "GET",
        "/fhir/$export",
        &[("prefer", "respond-async")],
        String::new(),
    )
    .await;
    assert_eq!(st, 202);
    let status = h["content-location"]
        .to_str()
        .unwrap()
        .replace("http://bench", "");
    let manifest: Value = loop {
        let (st, _, body) = send(&router, "GET", &status, &[], String::new()).await;
        if st == 200 {
            break serde_json::from_slice(&body).unwrap();
        }
        assert_eq!(st, 202);
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    println!("manifest after {:.3} s", kicked.elapsed().as_secs_f64());
    let urls: Vec<String> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["url"].as_str().unwrap().replace("http://bench", ""))
        .collect();
    for (label, headers) in [
        ("plain", &[][..]),
        ("gzip", &[("accept-encoding", "gzip")][..]),
    ] {
        for round in 1..=3 {
            let t0 = Instant::now();
            let (mut lines, mut bytes) = (0usize, 0usize);
            for u in &urls {
                // Frame by frame, as a client reading the stream (no concatenation).
                let mut req = Request::builder().uri(u.as_str());
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                let res = router
                    .clone()
                    .oneshot(req.body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let mut body = res.into_body();
                while let Some(frame) = body.frame().await {
                    let Ok(data) = frame.expect("whole body").into_data() else {
                        continue;
                    };
                    bytes += data.len();
                    if label == "plain" {
                        lines += data.iter().filter(|b| **b == b'\n').count();
                    }
                }
            }
            let s = t0.elapsed().as_secs_f64();
            if label == "plain" {
                assert_eq!(lines, n, "every resource once");
            }
            println!(
                "{label} round {round}: {n} resources, {:.1} MB in {s:.3} s = {:.0} resources/s",
                bytes as f64 / 1e6,
                n as f64 / s
            );
        }
    }
}
