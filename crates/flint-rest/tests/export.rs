//! Bulk Data `$export` through the real router over an in-memory node and admin database:
//! kick-off, status, manifest, the NDJSON files (each current resource exactly once, as a
//! read answers it, at the kick-off's `t`), `_type`, `_since`, `_typeFilter`, `patient`,
//! `_elements`, the Patient and Group levels (nested Groups), several files per type, gzip,
//! cancel, every error and storage faults (an error, never a short file).

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use flint_db::Cf;
use flint_db::fault::{Faults, FaultyKv, FaultyStore, Op};
use flint_db::mem::{MemKv, MemStore};
use flint_rest::{AppState, RestConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const BASE: &str = "http://flint.test/fhir";

struct Api {
    router: Router,
    state: AppState,
}

/// An answer whose body may have broken off.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, String>,
}

impl Answer {
    fn bytes(&self) -> &Bytes {
        self.body.as_ref().expect("a whole body")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(self.bytes())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(self.bytes())))
    }

    /// The first issue of the OperationOutcome answered with `status`.
    fn issue(&self, status: u16) -> Value {
        let v = self.json();
        assert_eq!(self.status.as_u16(), status, "{v}");
        assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
        v["issue"][0].clone()
    }
}

impl Api {
    async fn new(file_size: usize) -> Api {
        Api::over(file_size, Arc::new(MemKv::new()), Arc::new(MemStore::new())).await
    }

    async fn over(
        file_size: usize,
        kv: Arc<dyn flint_db::KvStore>,
        store: Arc<dyn flint_db::ResourceStore>,
    ) -> Api {
        let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
        let node = flint_db::testing::node_over(engine.indexer(), kv, store).await;
        let admin = flint_db::testing::plain_node().await;
        let config = RestConfig {
            base_url: "http://flint.test".into(),
            context_path: "/fhir".into(),
            export_file_size: file_size,
            ..RestConfig::default()
        };
        let state = AppState::new(node, config, engine)
            .with_jobs(flint_jobs::Scheduler::new(flint_jobs::JobStore::new(admin)));
        Api {
            router: flint_rest::router(state.clone()),
            state,
        }
    }

    /// Sends `method` to `path` (after `/fhir/`, or an absolute URL on [`BASE`]).
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let path = path.strip_prefix(&format!("{BASE}/")).unwrap_or(path);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/fhir/{path}"));
        if !body.is_empty() {
            req = req.header("content-type", "application/fhir+json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string());
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], "").await
    }

    async fn put(&self, r: &Value) {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let a = self.send("PUT", &path, &[], &r.to_string()).await;
        assert!(a.status.is_success(), "{path}: {:?}", a.body);
    }

    /// Stores `resources` in one transaction.
    async fn transact(&self, resources: &[Value]) {
        let entries: Vec<Value> = resources
            .iter()
            .map(|r| {
                json!({"resource": r, "request": {"method": "PUT",
                    "url": format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())}})
            })
            .collect();
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let a = self.send("POST", "", &[], &b.to_string()).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }

    async fn delete(&self, path: &str) {
        let a = self.send("DELETE", path, &[], "").await;
        assert!(a.status.is_success(), "{path}: {:?}", a.body);
    }

    /// Kicks off `path` (GET, or POST with `body`); the status path.
    async fn kick_off(&self, method: &str, path: &str, body: &str) -> String {
        let a = self
            .send(method, path, &[("prefer", "respond-async")], body)
            .await;
        assert_eq!(a.status, 202, "{:?}", a.body);
        let url = a.headers["content-location"].to_str().unwrap().to_string();
        assert!(url.starts_with(&format!("{BASE}/__async-status/")), "{url}");
        url
    }

    /// Polls `status` until it is no longer 202; the final answer.
    async fn wait(&self, status: &str) -> Answer {
        for _ in 0..2000 {
            let a = self.get(status).await;
            if a.status != 202 {
                return a;
            }
            assert_eq!(a.headers["x-progress"], "in-progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{status} did not finish");
    }

    /// Kicks off `path` and waits for its manifest.
    async fn export(&self, path: &str) -> (String, Value) {
        let status = self.kick_off("GET", path, "").await;
        let a = self.wait(&status).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(a.headers["content-type"], "application/json");
        (status, a.json())
    }

    /// The resources of every file of a manifest, by type, checking each file's count and that
    /// it holds only its type.
    async fn files(&self, manifest: &Value) -> BTreeMap<String, Vec<Value>> {
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for f in manifest["output"].as_array().unwrap() {
            let a = self.get(f["url"].as_str().unwrap()).await;
            assert_eq!(a.status, 200, "{f}");
            assert_eq!(a.headers["content-type"], "application/fhir+ndjson");
            let lines = ndjson(a.bytes());
            assert_eq!(lines.len() as u64, f["count"].as_u64().unwrap(), "{f}");
            assert!(lines.iter().all(|r| r["resourceType"] == f["type"]), "{f}");
            out.entry(f["type"].as_str().unwrap().to_string())
                .or_default()
                .extend(lines);
        }
        out
    }

    /// What a read answers for each `Type/id`.
    async fn reads(&self, refs: &BTreeSet<String>) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for r in refs {
            let a = self.get(r).await;
            assert_eq!(a.status, 200, "{r}");
            out.insert(r.clone(), a.json());
        }
        out
    }
}

/// The lines of an NDJSON body (each a JSON resource, the last one ended by a newline).
fn ndjson(body: &[u8]) -> Vec<Value> {
    if body.is_empty() {
        return Vec::new();
    }
    assert_eq!(body.last(), Some(&b'\n'));
    body[..body.len() - 1]
        .split(|b| *b == b'\n')
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// `Type/id` of every exported resource, checking that none appears twice.
fn refs_once(files: &BTreeMap<String, Vec<Value>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rs in files.values() {
        for r in rs {
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert!(out.insert(key.clone()), "{key} twice");
        }
    }
    out
}

fn patient(id: &str, gender: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": gender})
}

fn observation(id: &str, patient: Option<&str>, code: &str) -> Value {
    let mut o = json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]}});
    if let Some(p) = patient {
        o["subject"] = json!({"reference": format!("Patient/{p}")});
    }
    o
}

/// A small data set: patients p0..p4, two Observations each (codes a and b), one Observation
/// without subject, an Organization, a Group of p1 and p3 (and an inactive p4); p0's first
/// Observation updated, p4's second deleted. Returns the current `Type/id`s.
async fn data(api: &Api) -> BTreeSet<String> {
    let mut current = BTreeSet::new();
    let mut batch = Vec::new();
    for i in 0..5 {
        let p = format!("p{i}");
        batch.push(patient(&p, if i % 2 == 0 { "female" } else { "male" }));
        batch.push(observation(&format!("o{i}a"), Some(&p), "a"));
        batch.push(observation(&format!("o{i}b"), Some(&p), "b"));
    }
    batch.push(observation("orphan", None, "a"));
    batch.push(json!({"resourceType": "Organization", "id": "org", "name": "Acme"}));
    api.transact(&batch).await;
    api.put(
        &json!({"resourceType": "Group", "id": "g", "type": "person", "actual": true,
        "member": [{"entity": {"reference": "Patient/p1"}},
                   {"entity": {"reference": format!("{BASE}/Patient/p3")}},
                   {"entity": {"reference": "Patient/p4"}, "inactive": true}]}),
    )
    .await;
    let mut updated = observation("o0a", Some("p0"), "a");
    updated["status"] = json!("amended");
    api.put(&updated).await;
    api.delete("Observation/o4b").await;
    for r in &batch {
        current.insert(format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        ));
    }
    current.insert("Group/g".into());
    current.remove("Observation/o4b");
    current
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_export_has_every_current_resource_once_as_a_read_answers_it() {
    let api = Api::new(100_000).await;
    let current = data(&api).await;
    let (_, manifest) = api.export("$export").await;
    assert_eq!(manifest["request"], format!("{BASE}/$export"));
    assert_eq!(manifest["requiresAccessToken"], false);
    assert_eq!(manifest["error"], json!([]));
    let time = manifest["transactionTime"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() >= 20, "{time}");
    // The counts are those of the resources stored, per type.
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    for r in &current {
        *stored
            .entry(r.split('/').next().unwrap().to_string())
            .or_default() += 1;
    }
    let counts: BTreeMap<String, u64> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_string(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, stored);
    let files = api.files(&manifest).await;
    let exported = refs_once(&files);
    assert_eq!(exported, current);
    // Each line is what a read answers (versionId and lastUpdated included).
    let reads = api.reads(&current).await;
    for rs in files.values() {
        for r in rs {
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert!(r["meta"]["versionId"].is_string() && r["meta"]["lastUpdated"].is_string());
            assert_eq!(r, &reads[&key], "{key}");
        }
    }
    // The transaction time is that of the kick-off's `t` (the last write, a delete): no
    // exported version is newer.
    let newest = reads
        .values()
        .map(|r| r["meta"]["lastUpdated"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    assert!(time >= newest.as_str(), "{time} {newest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_the_kick_off_are_not_exported() {
    let api = Api::new(2).await;
    let current = data(&api).await;
    let before = api.reads(&current).await;
    let status = api.kick_off("GET", "$export", "").await;
    // Writes while the job is planned and before the files are read.
    api.put(&patient("late", "male")).await;
    api.put(&patient("p0", "other")).await;
    api.delete("Observation/o1a").await;
    let a = api.wait(&status).await;
    assert_eq!(a.status, 200);
    api.put(&patient("later", "male")).await;
    api.put(&patient("p2", "other")).await;
    api.delete("Observation/o2a").await;
    let files = api.files(&a.json()).await;
    assert_eq!(refs_once(&files), current);
    for r in files.values().flatten() {
        let key = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        assert_eq!(r, &before[&key], "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_is_split_into_files_of_the_configured_size() {
    let api = Api::new(3).await;
    let batch: Vec<Value> = (0..8).map(|i| patient(&format!("x{i}"), "male")).collect();
    api.transact(&batch).await;
    let (status, manifest) = api.export("$export?_type=Patient").await;
    let out = manifest["output"].as_array().unwrap();
    let counts: Vec<u64> = out.iter().map(|f| f["count"].as_u64().unwrap()).collect();
    assert_eq!(counts, [3, 3, 2]);
    let id = status.rsplit('/').next().unwrap();
    let urls: Vec<&str> = out.iter().map(|f| f["url"].as_str().unwrap()).collect();
    assert_eq!(
        urls,
        (1..=3)
            .map(|k| format!("{BASE}/__export/{id}/Patient.{k}.ndjson"))
            .collect::<Vec<_>>()
    );
    let files = api.files(&manifest).await;
    let all: BTreeSet<String> = batch
        .iter()
        .map(|p| format!("Patient/{}", p["id"].as_str().unwrap()))
        .collect();
    assert_eq!(refs_once(&files), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_and_since_select_resources() {
    let api = Api::new(100_000).await;
    let current = data(&api).await;
    let (_, m) = api
        .export("$export?_type=Observation,Group&_type=Organization")
        .await;
    let files = api.files(&m).await;
    let want: BTreeSet<String> = current
        .iter()
        .filter(|r| {
            r.starts_with("Observation/")
                || r.starts_with("Group/")
                || r.starts_with("Organization/")
        })
        .cloned()
        .collect();
    assert_eq!(refs_once(&files), want);

    // `_since`: what changed after the instant of the last write so far.
    let reads = api.reads(&current).await;
    let last = reads
        .values()
        .map(|r| r["meta"]["lastUpdated"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    api.put(&patient("new", "male")).await;
    let mut changed = observation("o1b", Some("p1"), "b");
    changed["status"] = json!("amended");
    api.put(&changed).await;
    let (_, m) = api.export(&format!("$export?_since={last}")).await;
    let files = api.files(&m).await;
    assert_eq!(
        refs_once(&files),
        BTreeSet::from(["Patient/new".to_string(), "Observation/o1b".to_string()])
    );
    let (_, m) = api
        .export(&format!("$export?_since={last}&_type=Observation"))
        .await;
    assert_eq!(
        refs_once(&api.files(&m).await),
        BTreeSet::from(["Observation/o1b".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_filters_select_with_the_search_engine() {
    let api = Api::new(100_000).await;
    let current = data(&api).await;
    let q = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (_, m) = api
        .export(&format!(
            "$export?_type=Observation,Patient&_typeFilter={}",
            q("Observation?code=http://loinc.org|a")
        ))
        .await;
    let files = api.files(&m).await;
    let want: BTreeSet<String> = current
        .iter()
        .filter(|r| {
            r.starts_with("Patient/")
                || (r.starts_with("Observation/") && r.ends_with('a'))
                || *r == "Observation/orphan"
        })
        .cloned()
        .collect();
    assert_eq!(refs_once(&files), want);
    // Several filters of a type: any of them; comma-separated or repeated.
    let (_, m) = api
        .export(&format!(
            "$export?_typeFilter={}&_typeFilter={}",
            q("Patient?gender=female,Observation?subject=Patient/p1"),
            q("Observation?subject=Patient/p2,Patient/p3")
        ))
        .await;
    let files = api.files(&m).await;
    let exported = refs_once(&files);
    for p in ["p0", "p2", "p4"] {
        assert!(exported.contains(&format!("Patient/{p}")), "{exported:?}");
    }
    for p in ["p1", "p3"] {
        assert!(!exported.contains(&format!("Patient/{p}")), "{exported:?}");
    }
    let obs: BTreeSet<&String> = exported
        .iter()
        .filter(|r| r.starts_with("Observation/"))
        .collect();
    assert_eq!(
        obs.into_iter().cloned().collect::<Vec<_>>(),
        [
            "Observation/o1a",
            "Observation/o1b",
            "Observation/o2a",
            "Observation/o2b",
            "Observation/o3a",
            "Observation/o3b"
        ]
    );
    // Types without a filter are exported whole.
    assert!(exported.contains("Organization/org") && exported.contains("Group/g"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_and_group_exports_answer_the_patients_compartments() {
    let api = Api::new(100_000).await;
    let current = data(&api).await;
    let (_, m) = api.export("Patient/$export").await;
    assert_eq!(m["request"], format!("{BASE}/Patient/$export"));
    let files = api.files(&m).await;
    let want: BTreeSet<String> = current
        .iter()
        .filter(|r| {
            // The Group is in the compartments of its members (`member`).
            r.starts_with("Patient/")
                || *r == "Group/g"
                || (r.starts_with("Observation/") && *r != "Observation/orphan")
        })
        .cloned()
        .collect();
    assert_eq!(refs_once(&files), want);

    let (_, m) = api.export("Group/g/$export").await;
    let files = api.files(&m).await;
    let want: BTreeSet<String> = [
        "Patient/p1",
        "Patient/p3",
        "Observation/o1a",
        "Observation/o1b",
        "Observation/o3a",
        "Observation/o3b",
        "Group/g",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(refs_once(&files), want);

    // With `_type`, `_typeFilter` (also for the Patient) and `_since`, by POST.
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient,Observation"},
        {"name": "_typeFilter", "valueString": "Observation?code=http://loinc.org|b"},
        {"name": "_typeFilter", "valueString": "Patient?gender=male"},
        {"name": "_outputFormat", "valueString": "application/fhir+ndjson"}]});
    let status = api
        .kick_off("POST", "Group/g/$export", &body.to_string())
        .await;
    let a = api.wait(&status).await;
    assert_eq!(a.status, 200);
    let m = a.json();
    assert_eq!(m["request"], format!("{BASE}/Group/g/$export"));
    let files = api.files(&m).await;
    assert_eq!(
        refs_once(&files),
        [
            "Observation/o1b",
            "Observation/o3b",
            "Patient/p1",
            "Patient/p3"
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_gzipped_when_accepted() {
    let api = Api::new(100_000).await;
    data(&api).await;
    let (_, m) = api.export("$export?_type=Observation").await;
    let url = m["output"][0]["url"].as_str().unwrap();
    let plain = api.get(url).await;
    let gz = api
        .send("GET", url, &[("accept-encoding", "br, gzip")], "")
        .await;
    assert_eq!(gz.status, 200);
    assert_eq!(gz.headers["content-encoding"], "gzip");
    assert!(plain.headers.get("content-encoding").is_none());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.bytes()[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain.bytes().to_vec());
    assert_eq!(
        ndjson(&unzipped).len() as u64,
        m["output"][0]["count"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_export_and_its_files_are_gone() {
    let api = Api::new(100_000).await;
    data(&api).await;
    let (status, m) = api.export("$export").await;
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    assert_eq!(api.get(&url).await.status, 200);
    let a = api.send("DELETE", &status, &[], "").await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    assert_eq!(api.get(&status).await.issue(404)["code"], "not-found");
    assert_eq!(api.get(&url).await.issue(404)["code"], "not-found");
    assert_eq!(
        api.send("DELETE", &status, &[], "").await.issue(404)["code"],
        "not-found"
    );
    // A running one: cancelled at once (whether or not planning had finished).
    let status = api.kick_off("GET", "Patient/$export", "").await;
    assert_eq!(api.send("DELETE", &status, &[], "").await.status, 202);
    assert_eq!(api.get(&status).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_the_parameter() {
    let api = Api::new(100_000).await;
    data(&api).await;
    let a = api.get("$export").await;
    assert!(
        a.issue(400)["diagnostics"]
            .as_str()
            .unwrap()
            .contains("respond-async")
    );
    let asynch = [("prefer", "respond-async")];
    let refused = |a: Answer, expression: &str| {
        let issue = a.issue(400);
        assert_eq!(issue["expression"], json!([expression]), "{issue}");
    };
    refused(
        api.send("GET", "$export?_type=Patient,Foo", &asynch, "")
            .await,
        "_type",
    );
    refused(
        api.send(
            "GET",
            "$export?_outputFormat=application/fhir%2Bjson",
            &asynch,
            "",
        )
        .await,
        "_outputFormat",
    );
    refused(
        api.send("GET", "$export?_since=yesterday", &asynch, "")
            .await,
        "_since",
    );
    refused(
        api.send(
            "GET",
            "$export?_type=Patient&_typeFilter=Observation%3Fcode%3Da",
            &asynch,
            "",
        )
        .await,
        "_typeFilter",
    );
    refused(
        api.send(
            "GET",
            "$export?_typeFilter=Observation%3Fnope%3Da",
            &asynch,
            "",
        )
        .await,
        "_typeFilter",
    );
    refused(
        api.send("GET", "$export?_typeFilter=Observation", &asynch, "")
            .await,
        "_typeFilter",
    );
    refused(
        api.send("GET", "$export?_typeFilter=Foo%3Fa%3Db", &asynch, "")
            .await,
        "_typeFilter",
    );
    let strict = [("prefer", "respond-async"), ("prefer", "handling=strict")];
    refused(
        api.send("GET", "$export?organizeOutputBy=Patient", &strict, "")
            .await,
        "organizeOutputBy",
    );
    assert_eq!(
        api.send("GET", "$export?organizeOutputBy=Patient", &asynch, "")
            .await
            .status,
        202
    );
    // Levels and types it is not defined for, unknown Groups and jobs.
    let a = api.send("GET", "Observation/$export", &asynch, "").await;
    assert_eq!(a.issue(400)["code"], "not-supported");
    let a = api.send("GET", "Patient/p1/$export", &asynch, "").await;
    assert_eq!(a.issue(400)["code"], "not-supported");
    assert_eq!(api.send("DELETE", "$export", &asynch, "").await.status, 405);
    assert_eq!(
        api.send("GET", "Group/nope/$export", &asynch, "")
            .await
            .issue(404)["code"],
        "not-found"
    );
    api.delete("Group/g").await;
    assert_eq!(
        api.send("GET", "Group/g/$export", &asynch, "").await.status,
        410
    );
    assert_eq!(
        api.get("__async-status/nope").await.issue(404)["code"],
        "not-found"
    );
    assert_eq!(
        api.get("__export/nope/Patient.ndjson").await.issue(404)["code"],
        "not-found"
    );
    let (status, _) = api.export("$export?_type=Patient").await;
    let id = status.rsplit('/').next().unwrap();
    assert_eq!(
        api.get(&format!("__export/{id}/Observation.ndjson"))
            .await
            .status,
        404
    );
    assert_eq!(
        api.send("POST", &format!("__export/{id}/Patient.ndjson"), &[], "")
            .await
            .status,
        405
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capability_statement_lists_export() {
    let api = Api::new(100_000).await;
    let cs = api.get("metadata").await.json();
    let def = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export";
    let system = &cs["rest"][0]["operation"];
    assert!(
        system
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "export" && o["definition"] == def),
        "{system}"
    );
    for ty in ["Patient", "Group"] {
        let r = cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == ty)
            .unwrap();
        assert!(
            r["operation"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["name"] == "export"),
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_faults_are_errors_never_short_files() {
    let faults = Faults::new();
    let api = Api::over(
        100_000,
        Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone())),
        Arc::new(FaultyStore::new(Arc::new(MemStore::new()), faults.clone())),
    )
    .await;
    // More than one streamed batch (1,000 resources).
    for chunk in 0..3 {
        let batch: Vec<Value> = (0..500)
            .map(|i| patient(&format!("p{chunk}-{i:03}"), "female"))
            .collect();
        api.transact(&batch).await;
    }
    let (_, m) = api.export("$export").await;
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    assert_eq!(m["output"][0]["count"], 1500);
    let whole = api.get(&url).await;
    assert_eq!(ndjson(whole.bytes()).len(), 1500);

    // Before the first byte: a 503 (each batch of 1,000 is one scan of the index).
    faults.fail(|op| op == Op::Seek(Cf::ResourceAsOf), 0, 1);
    assert_eq!(api.get(&url).await.issue(503)["code"], "transient");
    faults.fail(|op| op == Op::Next(Cf::ResourceAsOf), 500, 1);
    assert_eq!(api.get(&url).await.issue(503)["code"], "transient");
    // After it: the body breaks off (the client sees an error, not a shorter file).
    faults.fail(|op| op == Op::Seek(Cf::ResourceAsOf), 1, 1);
    let a = api.get(&url).await;
    assert_eq!(a.status, 200);
    assert!(
        a.body.is_err(),
        "a broken file must not end like a whole one"
    );
    faults.fail(|op| op == Op::Next(Cf::ResourceAsOf), 1200, 1);
    let a = api.get(&url).await;
    assert!(
        a.body.is_err(),
        "a broken file must not end like a whole one"
    );
    assert!(faults.injected() >= 3);

    // A fault that outlasts the job's retries fails it: the status says so.
    faults.fail(|op| matches!(op, Op::Seek(Cf::TypeStats)), 0, u64::MAX);
    let status = api.kick_off("GET", "$export", "").await;
    let a = api.wait(&status).await;
    assert!(
        a.issue(500)["diagnostics"]
            .as_str()
            .unwrap()
            .contains("failed")
    );
    faults.heal();
    assert_eq!(ndjson(api.get(&url).await.bytes()).len(), 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_unfinished_at_a_stop_is_planned_again_at_start() {
    let api = Api::new(100_000).await;
    let current = data(&api).await;
    let (status, manifest) = api.export("$export").await;
    let id = status.rsplit('/').next().unwrap();
    // As the admin database holds it when the server stopped while planning.
    let jobs = api.state.jobs().unwrap();
    jobs.store()
        .update(
            id,
            |_| true,
            |t| {
                t["status"] = json!("in-progress");
                t.as_object_mut().unwrap().remove("output");
            },
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(api.get(&status).await.status, 202);
    api.put(&patient("late", "male")).await;
    assert_eq!(
        flint_rest::http::resume_async_requests(&api.state)
            .await
            .unwrap(),
        1
    );
    let again = api.wait(&status).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), manifest, "planned again at the kick-off's t");
    assert_eq!(refs_once(&api.files(&manifest).await), current);
}

/// The `Type/id`s of `current` that are in the compartments of `patients` (the Patients and
/// their Observations; the data set's Group is in the compartments of its members).
fn compartments(current: &BTreeSet<String>, patients: &[&str], types: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in current {
        let (ty, id) = r.split_once('/').unwrap();
        if !types.contains(&ty) {
            continue;
        }
        let member = match ty {
            "Patient" => patients.contains(&id),
            // o{i}a, o{i}b belong to p{i}.
            "Observation" => patients.iter().any(|p| id.len() == 3 && id[1..2] == p[1..]),
            // Inactive members too: the compartment is by the `member` search parameter
            // (p3 is named by an absolute URL, which the compartment index does not hold).
            "Group" => patients.iter().any(|p| ["p1", "p4"].contains(p)),
            _ => false,
        };
        if member {
            out.insert(r.clone());
        }
    }
    out
}

fn patient_param(ids: &[&str]) -> Value {
    let ps: Vec<Value> = ids
        .iter()
        .map(|id| json!({"name": "patient", "valueReference": {"reference": format!("Patient/{id}")}}))
        .collect();
    json!({"resourceType": "Parameters", "parameter": ps})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_parameter_limits_the_compartments() {
    let api = Api::new(100_000).await;
    let current = data(&api).await;
    let types = ["Patient", "Observation", "Group"];
    let export = |path: &'static str, ids: &'static [&'static str]| {
        let api = &api;
        async move {
            let status = api
                .kick_off("POST", path, &patient_param(ids).to_string())
                .await;
            let a = api.wait(&status).await;
            assert_eq!(a.status, 200, "{:?}", a.body);
            refs_once(&api.files(&a.json()).await)
        }
    };
    assert_eq!(
        export("Patient/$export", &["p0", "p2"]).await,
        compartments(&current, &["p0", "p2"], &types)
    );
    assert_eq!(
        export("Group/g/$export", &["p1"]).await,
        compartments(&current, &["p1"], &types)
    );
    // A GET names them as comma-separated references (absolute ones on the base too).
    let (_, m) = api
        .export(&format!(
            "Patient/$export?_type=Patient&patient=Patient/p4,{BASE}/Patient/p1"
        ))
        .await;
    assert_eq!(
        refs_once(&api.files(&m).await),
        compartments(&current, &["p1", "p4"], &["Patient"])
    );

    // Refused: at the system level, a patient that does not exist or is not a member of the
    // Group (p4 is an inactive one), a reference to another type.
    let asynch = [("prefer", "respond-async")];
    for (path, body) in [
        ("$export", patient_param(&["p0"])),
        ("Patient/$export", patient_param(&["p0", "nope"])),
        ("Group/g/$export", patient_param(&["p1", "p0"])),
        ("Group/g/$export", patient_param(&["p4"])),
        (
            "Patient/$export",
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "patient", "valueReference": {"reference": "Observation/o1a"}}]}),
        ),
    ] {
        let a = api.send("POST", path, &asynch, &body.to_string()).await;
        let issue = a.issue(400);
        assert_eq!(
            issue["expression"],
            json!(["patient"]),
            "{path} {body}: {issue}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_that_are_groups_are_followed_once() {
    let api = Api::new(100_000).await;
    data(&api).await;
    // outer: p0 and the Group g (p1, p3); loop1 and loop2 name each other, loop2 also p2.
    let group = |id: &str, members: &[&str]| {
        let ms: Vec<Value> = members
            .iter()
            .map(|m| json!({"entity": {"reference": m}}))
            .collect();
        let mut g = json!({"resourceType": "Group", "id": id, "type": "person", "actual": true});
        if !ms.is_empty() {
            g["member"] = json!(ms);
        }
        g
    };
    api.put(&group("outer", &["Patient/p0", "Group/g"])).await;
    // (loop1 first without members: references must resolve.)
    api.put(&group("loop1", &[])).await;
    api.put(&group(
        "loop2",
        &["Group/loop1", "Patient/p2", "Group/outer"],
    ))
    .await;
    api.put(&group("loop1", &["Group/loop2"])).await;
    let patients = |m: Value| {
        let api = &api;
        async move {
            let files = api.files(&m).await;
            refs_once(&files)
                .into_iter()
                .filter(|r| r.starts_with("Patient/"))
                .collect::<Vec<_>>()
        }
    };
    let (_, m) = api.export("Group/outer/$export?_type=Patient").await;
    assert_eq!(
        patients(m).await,
        ["Patient/p0", "Patient/p1", "Patient/p3"]
    );
    let (_, m) = api.export("Group/loop1/$export?_type=Patient").await;
    assert_eq!(
        patients(m).await,
        ["Patient/p0", "Patient/p1", "Patient/p2", "Patient/p3"]
    );
}

/// `read` reduced as `_elements` reduces it: `keep` plus `resourceType`, `id`, `meta`, tagged
/// `SUBSETTED`.
fn subset_of(read: &Value, keep: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in read.as_object().unwrap() {
        if ["resourceType", "id", "meta"].contains(&k.as_str()) || keep.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    let tags = out["meta"]
        .as_object_mut()
        .unwrap()
        .entry("tag")
        .or_insert(json!([]));
    tags.as_array_mut().unwrap().push(json!({
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "SUBSETTED"}));
    Value::Object(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elements_keep_the_listed_and_the_mandatory_elements() {
    let api = Api::new(100_000).await;
    let current = data(&api).await;
    let reads = api.reads(&current).await;
    // A typed element: only that type is reduced; the others are whole.
    let (_, m) = api
        .export("$export?_type=Patient,Observation&_elements=Patient.gender")
        .await;
    for rs in api.files(&m).await.values() {
        for r in rs {
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            let want = if key.starts_with("Patient/") {
                subset_of(&reads[&key], &["gender"])
            } else {
                reads[&key].clone()
            };
            assert_eq!(r, &want, "{key}");
        }
    }
    // An untyped element reduces every type: Observation keeps its mandatory `status` and
    // `code` (and `subject`, named), Patient keeps nothing else, Organization its `name`.
    let (_, m) = api
        .export(
            "$export?_type=Patient,Observation,Organization&_elements=subject,Organization.name",
        )
        .await;
    let files = api.files(&m).await;
    assert_eq!(
        files.values().map(Vec::len).sum::<usize>(),
        current.iter().filter(|r| !r.starts_with("Group/")).count()
    );
    for rs in files.values() {
        for r in rs {
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            let keep: &[&str] = match r["resourceType"].as_str().unwrap() {
                "Observation" => &["status", "code", "subject"],
                "Organization" => &["name"],
                _ => &[],
            };
            assert_eq!(r, &subset_of(&reads[&key], keep), "{key}");
        }
    }
    // A choice element by its typed name, the same as by its base name.
    let (_, by_base) = api
        .export("$export?_type=Observation&_elements=value")
        .await;
    let (_, by_type) = api
        .export("$export?_type=Observation&_elements=valueQuantity")
        .await;
    assert_eq!(api.files(&by_base).await, api.files(&by_type).await);

    let asynch = [("prefer", "respond-async")];
    for bad in [
        "_elements=Patient.nope",
        "_elements=Foo.id",
        "_elements=name.family",
        "_elements=Patient.name.family",
        "_elements=nosuchelement",
        "_elements=",
        "_type=Observation&_elements=Patient.gender",
        "_type=Patient&_elements=status",
    ] {
        let a = api
            .send("GET", &format!("$export?{bad}"), &asynch, "")
            .await;
        let issue = a.issue(400);
        assert_eq!(issue["expression"], json!(["_elements"]), "{bad}: {issue}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_associated_data_adds_the_provenance_of_the_exported_resources() {
    let api = Api::new(100_000).await;
    data(&api).await;
    let provenance = |id: &str, recorded: &str, targets: &[&str]| {
        let ts: Vec<Value> = targets.iter().map(|t| json!({"reference": t})).collect();
        json!({"resourceType": "Provenance", "id": id, "target": ts, "recorded": recorded,
               "agent": [{"who": {"reference": "Organization/org"}}]})
    };
    api.put(&provenance(
        "pv1",
        "2020-01-01T00:00:00Z",
        &["Observation/o1a"],
    ))
    .await;
    api.put(&provenance(
        "pv2",
        "2021-01-01T00:00:00Z",
        &["Observation/o1a", "Patient/p2"],
    ))
    .await;
    api.put(&provenance(
        "pv3",
        "2019-01-01T00:00:00Z",
        &["Observation/o0b"],
    ))
    .await;
    api.put(&provenance(
        "pv4",
        "2022-01-01T00:00:00Z",
        &["Organization/org"],
    ))
    .await;
    let provenances = |m: Value| {
        let api = &api;
        async move {
            refs_once(&api.files(&m).await)
                .into_iter()
                .filter(|r| r.starts_with("Provenance/"))
                .collect::<Vec<_>>()
        }
    };
    // Every Provenance of an exported resource (pv4 names an Organization, not exported).
    let (_, m) = api
        .export(
            "$export?_type=Patient,Observation&includeAssociatedData=RelevantProvenanceResources",
        )
        .await;
    assert_eq!(
        provenances(m).await,
        ["Provenance/pv1", "Provenance/pv2", "Provenance/pv3"]
    );
    // The latest per resource: o1a's is pv2 (2021 after 2020), p2's pv2, o0b's pv3.
    let (_, m) = api
        .export("$export?_type=Patient,Observation&includeAssociatedData=LatestProvenanceResources")
        .await;
    assert_eq!(provenances(m).await, ["Provenance/pv2", "Provenance/pv3"]);
    // At the Group level (p1 and p3): o1a's latest only.
    let (_, m) = api
        .export("Group/g/$export?_type=Patient,Observation&includeAssociatedData=LatestProvenanceResources")
        .await;
    assert_eq!(provenances(m).await, ["Provenance/pv2"]);
    // Both values: the relevant ones (which hold the latest).
    let (_, m) = api
        .export("$export?_type=Observation&includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources")
        .await;
    assert_eq!(
        provenances(m).await,
        ["Provenance/pv1", "Provenance/pv2", "Provenance/pv3"]
    );

    let asynch = [("prefer", "respond-async")];
    for (value, says) in [("_myData", "custom"), ("Everything", "Unknown")] {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "includeAssociatedData", "valueCode": value}]});
        let a = api
            .send("POST", "Patient/$export", &asynch, &body.to_string())
            .await;
        let issue = a.issue(400);
        assert_eq!(issue["code"], "not-supported", "{issue}");
        assert_eq!(
            issue["expression"],
            json!(["includeAssociatedData"]),
            "{issue}"
        );
        let text = issue["diagnostics"].as_str().unwrap();
        assert!(text.contains(value) && text.contains(says), "{text}");
    }
}
