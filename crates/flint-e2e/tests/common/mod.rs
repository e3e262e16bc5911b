//! Test support: runs the real `flint` binary on a free port and talks to it over HTTP.
#![allow(dead_code)]

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server process.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub base: String,
    pub client: Client,
    pub storage: &'static str,
    pub data: Option<PathBuf>,
    env: Vec<(String, String)>,
    /// Group id the process runs with (lets firewall rules single out one node).
    gid: Option<u32>,
    _tmp: Option<tempfile::TempDir>,
}

/// A port that was free, never handed out before in this test process: parallel tests
/// must not start two servers on one port (the second would exit, and its test would talk
/// to the first one's server).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The storage variants every interaction test runs on.
pub const VARIANTS: [&str; 2] = ["in-memory", "standalone"];

impl Server {
    /// Starts a server with `STORAGE=storage` (standalone data in a fresh temp dir).
    pub fn start(storage: &'static str, env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().to_path_buf();
        let mut s = Server::start_in(storage, Some(&data), env);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server whose standalone data lives in `data`.
    pub fn start_in(storage: &'static str, data: Option<&Path>, env: &[(&str, &str)]) -> Server {
        Server::start_as(storage, data, env, None)
    }

    /// Like [`Server::start_in`], with the process in group `gid` when given.
    pub fn start_as(
        storage: &'static str,
        data: Option<&Path>,
        env: &[(&str, &str)],
        gid: Option<u32>,
    ) -> Server {
        // A port found free can be taken by another socket before the server binds it (tests
        // run in parallel): when the server exits before it is ready, try other ports.
        for attempt in 1.. {
            let port = free_port();
            let mut all: Vec<(String, String)> = vec![
                ("STORAGE".into(), storage.into()),
                ("SERVER_PORT".into(), port.to_string()),
                ("METRICS_SERVER_PORT".into(), free_port().to_string()),
                ("BASE_URL".into(), format!("http://127.0.0.1:{port}")),
                ("LOG_LEVEL".into(), "warn".into()),
                // Tests count what they write from an empty database; those about the base
                // StructureDefinitions (compat.rs) turn them on.
                ("FHIR_BASE_STRUCTURE_DEFINITIONS".into(), "false".into()),
            ];
            if let Some(d) = data {
                for (k, sub) in [
                    ("INDEX_DB_DIR", "index"),
                    ("TRANSACTION_DB_DIR", "transaction"),
                    ("RESOURCE_DB_DIR", "resource"),
                ] {
                    all.push((k.into(), d.join(sub).display().to_string()));
                }
            }
            for (k, v) in env {
                all.retain(|(n, _)| n != k);
                all.push((k.to_string(), v.to_string()));
            }
            let child = spawn(&all, gid);
            let mut s = Server {
                child,
                port,
                base: format!("http://127.0.0.1:{port}/fhir"),
                client: Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .expect("client"),
                storage,
                data: data.map(Path::to_path_buf),
                env: all,
                gid,
                _tmp: None,
            };
            match s.wait_ready() {
                Ok(()) => return s,
                Err(status) if attempt < 3 => {
                    eprintln!(
                        "server on port {port} exited before it was ready ({status}); retrying"
                    )
                }
                Err(status) => panic!("server on port {port} exited before it was ready: {status}"),
            }
        }
        unreachable!()
    }

    /// Waits until the server answers `/health`; `Err` with its exit status if it exits
    /// first. Panics when it is not ready within a minute.
    fn wait_ready(&mut self) -> Result<(), std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://127.0.0.1:{}/health", self.port);
        while Instant::now() < deadline {
            if let Ok(r) = self.client.get(&url).send()
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server on port {} did not become ready", self.port);
    }

    /// `kill -9` and start again with the same configuration and data.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// `kill -9` the process (see [`Server::restart`]).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again with the same configuration and data and waits until ready.
    pub fn restart(&mut self) {
        self.child = spawn(&self.env, self.gid);
        if let Err(status) = self.wait_ready() {
            panic!(
                "server on port {} exited after a restart: {status}",
                self.port
            );
        }
    }

    /// The value of an environment variable the process was started with.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The Prometheus text of the metrics port.
    pub fn metrics(&self) -> String {
        let port = self.env_value("METRICS_SERVER_PORT").expect("metrics port");
        self.client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .and_then(|r| r.text())
            .expect("metrics")
    }

    /// The JSON of `/health?detail`: (status code, body).
    pub fn health_detail(&self) -> (u16, Value) {
        json(
            self.client
                .get(format!("http://127.0.0.1:{}/health?detail", self.port))
                .send()
                .expect("health"),
        )
    }

    /// The absolute URL of `path` under the FHIR base.
    pub fn url(&self, path: &str) -> String {
        if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.client.delete(self.url(path))
    }
    pub fn post_json(&self, path: &str, body: &Value) -> RequestBuilder {
        self.client
            .post(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
    }
    pub fn put_json(&self, path: &str, body: &Value) -> RequestBuilder {
        self.client
            .put(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
    }
    pub fn patch(&self, path: &str, content_type: &str, body: &str) -> RequestBuilder {
        self.client
            .patch(self.url(path))
            .header("content-type", content_type)
            .body(body.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(env: &[(String, String)], gid: Option<u32>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flint-e2e-server"));
    if let Some(gid) = gid {
        std::os::unix::process::CommandExt::gid(&mut cmd, gid);
    }
    // FLINT_TEST_LOGS=dir keeps each server's log (tracing writes to stdout) in
    // dir/flint-<port>.log, for debugging.
    let stdout = match std::env::var_os("FLINT_TEST_LOGS") {
        Some(dir) => {
            let port = env
                .iter()
                .find(|(k, _)| k == "SERVER_PORT")
                .map_or("0", |(_, v)| v.as_str());
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(&dir).join(format!("flint-{port}.log")))
                .map_or(Stdio::null(), Stdio::from)
        }
        None => Stdio::null(),
    };
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the flint binary")
}

/// Status and parsed JSON body of a response.
pub fn json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, v)
}

/// Asserts an OperationOutcome with `status` and returns its first issue.
pub fn outcome(r: Response, status: u16) -> Value {
    let (s, v) = json(r);
    assert_eq!(s, status, "unexpected status, body: {v}");
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    v["issue"][0].clone()
}

/// The URL of a search: `query` is `Type?params`, `Patient/1/Observation?params`, `?params`
/// (system search) or an absolute URL (a paging link).
pub fn search_url(s: &Server, query: &str) -> String {
    if query.starts_with("http://") || query.starts_with("https://") {
        query.to_string()
    } else if query.starts_with('?') {
        format!("{}{query}", s.base)
    } else {
        s.url(query)
    }
}

/// The `url` of the bundle link with `relation`, if any.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_string)
}

/// One search request (GET of `query`, see [`search_url`]): asserts status 200, a `searchset`
/// Bundle with a `self` link, and entries whose `fullUrl` is `[base]/[type]/[id]` with search
/// mode `match` or `include`.
pub fn search_page(s: &Server, query: &str) -> Value {
    let url = search_url(s, query);
    let (st, b) = json(s.client.get(&url).send().expect("search request"));
    assert_eq!(st, 200, "GET {url}: {b}");
    check_searchset(s, &url, &b);
    b
}

/// The checks of [`search_page`] on a bundle already fetched.
pub fn check_searchset(s: &Server, url: &str, b: &Value) {
    assert_eq!(b["resourceType"], "Bundle", "GET {url}: {b}");
    assert_eq!(b["type"], "searchset", "GET {url}: {b}");
    assert!(link(b, "self").is_some(), "GET {url}: no self link: {b}");
    for e in b["entry"].as_array().into_iter().flatten() {
        let r = &e["resource"];
        // search.mode `outcome`: an OperationOutcome with warnings about the search (R4
        // Bundle.entry.search.mode), not a result.
        if e["search"]["mode"] == "outcome" {
            assert_eq!(r["resourceType"], "OperationOutcome", "GET {url}: {e}");
            continue;
        }
        let (t, id) = (r["resourceType"].as_str(), r["id"].as_str());
        let (t, id) = (
            t.unwrap_or_else(|| panic!("GET {url}: entry without resourceType: {e}")),
            id.unwrap_or_else(|| panic!("GET {url}: entry without id: {e}")),
        );
        assert_eq!(
            e["fullUrl"].as_str(),
            Some(s.url(&format!("{t}/{id}")).as_str()),
            "GET {url}: fullUrl"
        );
        let mode = e["search"]["mode"].as_str();
        assert!(
            matches!(mode, Some("match" | "include")),
            "GET {url}: search.mode {mode:?}"
        );
    }
}

/// All pages of a search, following `next` links; the first page first.
pub fn search_all_pages(s: &Server, query: &str) -> Vec<Value> {
    let mut pages = vec![search_page(s, query)];
    while let Some(next) = link(pages.last().unwrap(), "next") {
        assert!(pages.len() < 100_000, "endless paging for {query}");
        pages.push(search_page(s, &next));
    }
    pages
}

/// The entries of `bundle` with search mode `mode`, as `Type/id`.
pub fn entries_with_mode(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap_or_default(),
                e["resource"]["id"].as_str().unwrap_or_default()
            )
        })
        .collect()
}
