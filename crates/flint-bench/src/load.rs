//! `flint-load`: uploads a directory of FHIR Bundles (`*.json`, or bzip2-compressed
//! `*.json.bz2`) to a FHIR server's base with N concurrent clients, batch bundles first (in
//! file order, one at a time: Synthea's practitioner and hospital bundles that the patient
//! bundles reference conditionally), then the rest. Shows a progress bar, never retries,
//! reports every failed bundle and failed entry, prints resources/s at the end and exits with
//! status 1 if anything failed. Memory stays small whatever the directory's size: a first pass
//! reads each file only for its type and number of entries, and uploaders read a file again
//! when they send it (the resources/s figure covers the uploads only).

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Uploads a directory of FHIR bundles")]
struct Args {
    /// Base URL of the FHIR API.
    #[arg(long, default_value = "http://localhost:8080/fhir")]
    base: String,
    /// Directory with `*.json` / `*.json.bz2` bundles.
    dir: PathBuf,
    /// Concurrent uploads (transaction bundles; batch bundles go first, one at a time).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

/// One bundle file: its type and number of entries (its bytes are read when it is sent).
struct Bundle {
    path: PathBuf,
    batch: bool,
    entries: u64,
}

/// The top-level members of a Bundle the first pass reads; entries are checked, not built.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    entry: Vec<serde::de::IgnoredAny>,
}

/// The file's bytes, decompressed.
fn read_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "bz2") {
        let mut out = Vec::with_capacity(raw.len() * 8);
        bzip2::read::BzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn read_bundle(path: &Path) -> Result<Bundle, String> {
    let bytes = read_bytes(path)?;
    let head: Head = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a Bundle: {e}", path.display()))?;
    Ok(Bundle {
        path: path.to_path_buf(),
        batch: head.kind == "batch",
        entries: head.entry.len() as u64,
    })
}

/// Uploads one bundle; `Err` names what failed (the request, or entries with their status).
async fn upload(client: &reqwest::Client, base: &str, b: &Bundle) -> Result<(), String> {
    let path = b.path.clone();
    let bytes = tokio::task::spawn_blocking(move || read_bytes(&path))
        .await
        .map_err(|e| format!("{}: {e}", b.path.display()))??;
    let r = client
        .post(base)
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=minimal")
        .body(bytes)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", b.path.display()))?;
    let status = r.status();
    let body: Value = r
        .json()
        .await
        .map_err(|e| format!("{}: {status}, unreadable answer: {e}", b.path.display()))?;
    if !status.is_success() {
        let msg = body["issue"][0]["diagnostics"].as_str().unwrap_or("");
        return Err(format!("{}: {status}: {msg}", b.path.display()));
    }
    let failed: Vec<String> = body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, e)| {
            let s = e["response"]["status"].as_str().unwrap_or("");
            (!s.starts_with('2')).then(|| format!("entry {i}: {s}"))
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", b.path.display(), failed.join("; ")))
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&args.dir) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.to_string_lossy();
                n.ends_with(".json") || n.ends_with(".json.bz2")
            })
            .collect(),
        Err(e) => {
            eprintln!("cannot read {}: {e}", args.dir.display());
            std::process::exit(2);
        }
    };
    files.sort();
    let mut bundles = Vec::with_capacity(files.len());
    for f in &files {
        match read_bundle(f) {
            Ok(b) => bundles.push(b),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        }
    }
    let total: u64 = bundles.iter().map(|b| b.entries).sum();
    let (batches, rest): (Vec<Bundle>, Vec<Bundle>) = bundles.into_iter().partition(|b| b.batch);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} resources ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let client = reqwest::Client::new();
    let failures = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let report = |r: Result<(), String>, n: u64, bar: &ProgressBar| {
        if let Err(e) = r {
            bar.suspend(|| eprintln!("FAILED {e}"));
            failures.fetch_add(1, Ordering::Relaxed);
        }
        bar.inc(n);
    };
    for b in &batches {
        report(upload(&client, &args.base, b).await, b.entries, &bar);
    }
    let queue = Arc::new(tokio::sync::Mutex::new(rest.into_iter()));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (queue, client, base, bar, failures) = (
            queue.clone(),
            client.clone(),
            args.base.clone(),
            bar.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(b) = queue.lock().await.next() else {
                    break;
                };
                if let Err(e) = upload(&client, &base, &b).await {
                    bar.suspend(|| eprintln!("FAILED {e}"));
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                bar.inc(b.entries);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    bar.finish();
    let secs = start.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    println!(
        "bundles={} resources={total} seconds={secs:.1} resources/s={:.0} failed_bundles={failed}",
        files.len(),
        total as f64 / secs
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
