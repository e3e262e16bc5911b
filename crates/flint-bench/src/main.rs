//! `flint-bench`: runs a named scenario against a FHIR server with N concurrent clients for a
//! fixed time and prints requests/s, resources/s and latency percentiles.
//!
//! Scenarios: `create` (POST one Patient), `read` (GET one of the Patients created during a
//! warm-up), `tx100` (POST a transaction bundle of 100 resources: 20 Patients with 4
//! Observations each, referencing them by `urn:uuid`), `tx2` (one Patient and one Observation
//! referencing it), `history` (the first page of `Patient/_history`), `search` (GET
//! `[base]/[--query]`, or POST `[type]/_search` with `--post`: resources/s counts the returned
//! entries, or `Bundle.total` for `_summary=count` queries), `download` (the whole result of
//! `--query`, following `next` links page by page, as a bulk export does: one request is
//! the whole download, resources/s counts every entry of every page).

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    Create,
    Read,
    Tx100,
    Tx2,
    History,
    Search,
    Download,
}

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Load tool for FHIR servers")]
struct Args {
    /// Base URL of the FHIR API.
    #[arg(long, default_value = "http://localhost:8080/fhir")]
    base: String,
    /// The scenario to run.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Number of concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The search of the `search` scenario, relative to the base (e.g.
    /// `Observation?code=http://loinc.org|8302-2&_summary=count`).
    /// `@file` reads the query from a file (for long ones, e.g. a thousand patient ids).
    #[arg(long, default_value = "Patient?_summary=count")]
    query: String,
    /// Send the search as `POST [base]/[type]/_search` with the parameters as a form body.
    #[arg(long)]
    post: bool,
}

fn patient(i: u64) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": "urn:bench", "value": i.to_string()}],
           "name": [{"family": format!("Family{i}"), "given": ["Bench"]}],
           "gender": if i.is_multiple_of(2) { "female" } else { "male" }, "birthDate": "1970-01-01"})
}

fn tx100(seed: u64) -> Value {
    let mut entries = Vec::with_capacity(100);
    for p in 0..20u64 {
        let purl = format!("urn:uuid:00000000-0000-4000-8000-{:012x}", seed * 100 + p);
        entries.push(json!({"fullUrl": purl, "resource": patient(seed * 100 + p), "request": {"method": "POST", "url": "Patient"}}));
        for o in 0..4 {
            entries.push(json!({"resource": {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": purl},
                "effectiveDateTime": "2020-01-01T00:00:00Z",
                "valueQuantity": {"value": 70 + o, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
                "request": {"method": "POST", "url": "Observation"}}));
        }
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn tx2(seed: u64) -> Value {
    let purl = format!("urn:uuid:00000000-0000-4000-9000-{seed:012x}");
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": purl, "resource": patient(seed), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": purl}, "effectiveDateTime": "2020-01-01T00:00:00Z",
            "valueQuantity": {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
         "request": {"method": "POST", "url": "Observation"}}]})
}

/// The parts of a search Bundle the download scenario reads.
#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    entry: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    link: Vec<Link>,
}

/// A Bundle link.
#[derive(serde::Deserialize)]
struct Link {
    relation: String,
    url: String,
}

/// Fetches every page of a search from `url` on, following `next` links: the number of
/// entries, or what failed.
async fn download(client: &reqwest::Client, url: &str) -> Result<u64, String> {
    let mut next = Some(url.to_string());
    let mut n = 0;
    while let Some(url) = next.take() {
        let r = client.get(&url).send().await.map_err(|e| e.to_string())?;
        let status = r.status();
        let body = r.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("after {n} resources: {}", failure(status, &body)));
        }
        // Entries are checked to be JSON but not built as trees: the tool measures the
        // server, and building 1,000 resources per page as `Value`s costs more than serving them.
        let page: Page = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        n += page.entry.len() as u64;
        next = page
            .link
            .into_iter()
            .find(|l| l.relation == "next")
            .map(|l| l.url);
    }
    Ok(n)
}

/// A failed answer's status and the start of its body (the OperationOutcome).
fn failure(status: reqwest::StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    format!("{status}: {text}")
}

/// Counts a failed request; the first few are described on stderr.
fn record_error(errors: &AtomicU64, why: String) {
    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
        eprintln!("request failed: {why}");
    }
}

/// Resources a search answer stands for: `Bundle.total` for counts, else its entries.
fn search_resources(body: &[u8], count_only: bool) -> u64 {
    if count_only {
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        return v["total"].as_u64().unwrap_or(0);
    }
    let needle = b"\"fullUrl\"";
    body.windows(needle.len()).filter(|w| w == needle).count() as u64
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    let mut ids = Vec::new();
    if let Scenario::Read = args.scenario {
        for i in 0..1000 {
            let r = client
                .post(format!("{}/Patient", args.base))
                .header("content-type", "application/fhir+json")
                .header("prefer", "return=representation")
                .body(patient(i).to_string())
                .send()
                .await?;
            let v: Value = r.json().await?;
            ids.push(v["id"].as_str().unwrap_or_default().to_string());
        }
    }
    let ids = Arc::new(ids);
    let counter = Arc::new(AtomicU64::new(0));
    let resources = Arc::new(AtomicU64::new(0));
    let query_text = match args.query.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)?.trim().to_string(),
        None => args.query.clone(),
    };
    let count_only = query_text.contains("_summary=count");
    let post = args.post;
    let query = Arc::new(query_text);
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let (client, base, ids, counter, errors, resources, query) = (
            client.clone(),
            args.base.clone(),
            ids.clone(),
            counter.clone(),
            errors.clone(),
            resources.clone(),
            query.clone(),
        );
        let scenario = args.scenario;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c as u64 * 1_000_000;
            while Instant::now() < deadline {
                i += 1;
                let start = Instant::now();
                let req = match scenario {
                    Scenario::Create => client
                        .post(format!("{base}/Patient"))
                        .header("content-type", "application/fhir+json")
                        .header("prefer", "return=minimal")
                        .body(patient(i).to_string()),
                    Scenario::Read => {
                        let id = &ids[(i as usize) % ids.len().max(1)];
                        client.get(format!("{base}/Patient/{id}"))
                    }
                    Scenario::Tx100 => client
                        .post(base.clone())
                        .header("content-type", "application/fhir+json")
                        .body(tx100(i).to_string()),
                    Scenario::Tx2 => client
                        .post(base.clone())
                        .header("content-type", "application/fhir+json")
                        .body(tx2(i).to_string()),
                    Scenario::History => client.get(format!("{base}/Patient/_history")),
                    Scenario::Search if post => {
                        let (path, params) = query.split_once('?').unwrap_or((&query, ""));
                        client
                            .post(format!("{base}/{path}/_search"))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(params.to_string())
                    }
                    Scenario::Search | Scenario::Download => client.get(format!("{base}/{query}")),
                };
                if let Scenario::Download = scenario {
                    match download(&client, &format!("{base}/{query}")).await {
                        Ok(n) => {
                            lat.push(start.elapsed());
                            counter.fetch_add(1, Ordering::Relaxed);
                            resources.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(why) => record_error(&errors, why),
                    }
                    continue;
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let body = r.bytes().await.unwrap_or_default();
                        lat.push(start.elapsed());
                        counter.fetch_add(1, Ordering::Relaxed);
                        let n = match scenario {
                            Scenario::Tx100 => 100,
                            Scenario::Tx2 => 2,
                            Scenario::Search => search_resources(&body, count_only),
                            _ => 1,
                        };
                        resources.fetch_add(n, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        let status = r.status();
                        let body = r.bytes().await.unwrap_or_default();
                        record_error(&errors, failure(status, &body));
                    }
                    Err(e) => record_error(&errors, e.to_string()),
                }
            }
            lat
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let secs = started.elapsed().as_secs_f64().max(args.seconds as f64);
    all.sort();
    let n = counter.load(Ordering::Relaxed);
    let res = resources.load(Ordering::Relaxed);
    println!(
        "scenario={:?} clients={} seconds={:.1} requests={} errors={} req/s={:.0} resources/s={:.0} p50={:.2}ms p95={:.2}ms p99={:.2}ms",
        args.scenario,
        args.clients,
        secs,
        n,
        errors.load(Ordering::Relaxed),
        n as f64 / secs,
        res as f64 / secs,
        percentile(&all, 0.50),
        percentile(&all, 0.95),
        percentile(&all, 0.99)
    );
    Ok(())
}
