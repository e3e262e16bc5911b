//! The admin API through the real router over in-memory storage: settings, features, database
//! statistics, the OpenAPI description, jobs as Tasks (create, read, search, pause, resume,
//! cancel and every refusal), a re-index job over data indexed before its search parameter
//! existed (paused mid-way by a storage fault, resumed, and resumed again after a restart),
//! compact jobs and `$compact`.

mod common;
use axum::Router;
use bytes::Bytes;
use common::{Answer, send, send_with};
use flint_db::fault::{Faults, FaultyKv, Op};
use flint_db::mem::{MemKv, MemLog, MemStore};
use flint_db::{ContentHash, KvStore, Node, NodeConfig, StoreAdmin, TxCmd, TxLog, TxOp};
use flint_rest::state::AdminApi;
use flint_rest::{AppState, RestConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const ASYNC: (&str, &str) = ("prefer", "respond-async");
const JOB_TYPE: &str = "https://samply.github.io/blaze/fhir/CodeSystem/JobType";
const RJP: &str = "https://samply.github.io/blaze/fhir/CodeSystem/ReIndexJobParameter";
const RJO: &str = "https://samply.github.io/blaze/fhir/CodeSystem/ReIndexJobOutput";
const CJP: &str = "https://samply.github.io/blaze/fhir/CodeSystem/CompactJobParameter";
const CJO: &str = "https://samply.github.io/blaze/fhir/CodeSystem/CompactJobOutput";
const NICKNAME: &str = "http://flint.test/SearchParameter/Patient-nickname";

/// Patients written before the `nickname` parameter existed (more than one re-index page).
const PATIENTS: usize = 1203;

/// Whether patient `i` has the nickname `Alpha` (the others `Beta`).
fn alpha(i: usize) -> bool {
    i.is_multiple_of(3)
}

/// The storage one server runs on; a "restart" is a new node and state over the same logs
/// and stores (and the same index contents).
struct Storage {
    kv: Arc<MemKv>,
    log: Arc<MemLog>,
    store: Arc<MemStore>,
    admin_log: Arc<MemLog>,
}

fn registry(with_nickname: bool) -> Arc<flint_search::Registry> {
    let mut reg = flint_search::Registry::r4();
    if with_nickname {
        let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "SearchParameter", "url": NICKNAME,
              "name": "nickname", "status": "active", "code": "nickname", "base": ["Patient"],
              "type": "string", "expression": "Patient.name.given"}}]});
        reg.add_bundle(bundle.to_string().as_bytes()).unwrap();
    }
    Arc::new(reg)
}

/// Storage holding [`PATIENTS`] Patients and a few Observations, indexed by a registry
/// without the `nickname` parameter.
async fn storage() -> Storage {
    let s = Storage {
        kv: Arc::new(MemKv::new()),
        log: Arc::new(MemLog::new()),
        store: Arc::new(MemStore::new()),
        admin_log: Arc::new(MemLog::new()),
    };
    let engine = flint_search::Engine::new(registry(false));
    let node = Node::start(
        s.kv.clone(),
        s.log.clone(),
        s.store.clone(),
        NodeConfig {
            resource_indexer: Some(engine.indexer()),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let mut resources: Vec<Value> = (0..PATIENTS)
        .map(|i| {
            let nick = if alpha(i) { "Alpha" } else { "Beta" };
            json!({"resourceType": "Patient", "id": format!("p{i:05}"),
                   "name": [{"family": "F", "given": [nick]}]})
        })
        .collect();
    for i in 0..5 {
        resources.push(json!({"resourceType": "Observation", "id": format!("o{i}"),
            "status": "final", "code": {"text": "x"}}));
    }
    for chunk in resources.chunks(100) {
        let mut cmds = Vec::new();
        let mut contents = Vec::new();
        for r in chunk {
            let body = serde_json::to_vec(r).unwrap();
            let h = ContentHash::of(&body);
            cmds.push(TxCmd::new(
                TxOp::Put,
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap(),
                Some(h),
            ));
            contents.push((h, Bytes::from(body)));
        }
        node.transact(cmds, contents).await.unwrap();
    }
    node.shutdown().await;
    s
}

/// A server over `s` whose registry has the `nickname` parameter (not re-indexed at start);
/// `faults` applies to its index writes.
async fn server(s: &Storage, faults: Arc<Faults>, enabled: bool) -> (Router, AppState) {
    let engine = flint_search::Engine::new(registry(true));
    let kv: Arc<dyn KvStore> = Arc::new(FaultyKv::new(s.kv.clone(), faults));
    let node = Node::start(
        kv,
        s.log.clone(),
        s.store.clone(),
        NodeConfig {
            resource_indexer: Some(engine.indexer()),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let admin_kv = Arc::new(MemKv::new());
    let admin = Node::start(
        admin_kv.clone(),
        s.admin_log.clone(),
        s.store.clone(),
        NodeConfig::default(),
    )
    .await
    .unwrap();
    let config = RestConfig {
        base_url: "http://flint.test".into(),
        context_path: "/fhir".into(),
        enable_admin_api: enabled,
        ..RestConfig::default()
    };
    let databases: Vec<(String, Arc<dyn StoreAdmin>)> = vec![
        ("index".into(), s.kv.clone()),
        ("transaction".into(), s.log.clone()),
        ("resource".into(), s.store.clone()),
        ("admin-index".into(), admin_kv),
        ("admin-transaction".into(), s.admin_log.clone()),
    ];
    let state = AppState::new(node, config, engine)
        .with_jobs(flint_jobs::Scheduler::new(flint_jobs::JobStore::new(admin)))
        .with_admin(AdminApi {
            databases,
            settings: vec![
                json!({"name": "STORAGE", "value": "in-memory", "defaultValue": "in-memory"}),
                json!({"name": "PAGE_SECRET", "value": "[hidden]"}),
            ],
            features: vec![
                json!({"name": "Admin API", "toggle": "ENABLE_ADMIN_API", "enabled": enabled}),
            ],
        });
    (flint_rest::router(state.clone()), state)
}

fn task(job_type: &str, inputs: Value) -> String {
    let mut t = json!({"resourceType": "Task", "status": "ready", "intent": "order",
           "code": {"coding": [{"system": JOB_TYPE, "code": job_type}]}});
    if inputs.as_array().is_some_and(|i| !i.is_empty()) {
        t["input"] = inputs;
    }
    t.to_string()
}

fn re_index_task(url: &str) -> String {
    task(
        "re-index",
        json!([{"type": {"coding": [{"system": RJP, "code": "search-param-url"}]},
                "valueCanonical": url}]),
    )
}

fn compact_task(db: &str, cf: &str) -> String {
    task(
        "compact",
        json!([{"type": {"coding": [{"system": CJP, "code": "database"}]}, "valueCode": db},
               {"type": {"coding": [{"system": CJP, "code": "column-family"}]}, "valueCode": cf}]),
    )
}

/// The value of output `code` (of `system`) of `task`.
fn output(task: &Value, system: &str, code: &str) -> Value {
    task["output"]
        .as_array()
        .and_then(|os| {
            os.iter().find(|o| {
                o["type"]["coding"][0]["system"] == system && o["type"]["coding"][0]["code"] == code
            })
        })
        .map(|o| {
            o.as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| k.starts_with("value"))
                .unwrap()
                .1
                .clone()
        })
        .unwrap_or(Value::Null)
}

async fn get_task(api: &Router, id: &str) -> Value {
    send(api, "GET", &format!("__admin/Task/{id}"), "")
        .await
        .ok()
}

/// Polls job `id` until `done(task)`; the Task then.
async fn wait_until(api: &Router, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..2000 {
        let t = get_task(api, id).await;
        if done(&t) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never got there: {}", get_task(api, id).await);
}

async fn create(api: &Router, body: &str) -> Value {
    let a = send(api, "POST", "__admin/Task", body).await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let t = a.json();
    let id = t["id"].as_str().unwrap();
    assert_eq!(
        a.headers["location"],
        format!("http://flint.test/fhir/__admin/Task/{id}")
    );
    t
}

async fn nickname_count(api: &Router, name: &str) -> u64 {
    let a = send(
        api,
        "GET",
        &format!("Patient?nickname={name}&_summary=count"),
        "",
    )
    .await;
    a.ok()["total"].as_u64().unwrap()
}

fn plain_json(a: &Answer) -> Value {
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.headers["content-type"], "application/json");
    serde_json::from_slice(&a.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_off_every_admin_path_is_404_and_compact_names_the_switch() {
    let s = storage().await;
    let (api, _) = server(&s, Faults::new(), false).await;
    for path in [
        "__admin",
        "__admin/dbs",
        "__admin/Task",
        "__admin/openapi.json",
    ] {
        let issue = send(&api, "GET", path, "").await.issue(404);
        assert!(
            issue["diagnostics"]
                .as_str()
                .unwrap()
                .contains("ENABLE_ADMIN_API"),
            "{issue}"
        );
    }
    let issue = send(
        &api,
        "POST",
        "__admin/Task",
        &compact_task("index", "default"),
    )
    .await
    .issue(404);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ENABLE_ADMIN_API")
    );
    let issue = send(&api, "POST", "$compact", "").await.issue(400);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ENABLE_ADMIN_API"),
        "{issue}"
    );
    let meta = send(&api, "GET", "metadata", "").await.ok();
    let ops = meta["rest"][0]["operation"].to_string();
    assert!(!ops.contains("\"compact\""), "{ops}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_features_databases_and_the_openapi_description() {
    let s = storage().await;
    let (api, state) = server(&s, Faults::new(), true).await;
    let root = plain_json(&send(&api, "GET", "__admin", "").await);
    let admin = state.admin();
    assert_eq!(root["settings"], Value::Array(admin.settings.clone()));
    assert_eq!(root["features"], Value::Array(admin.features.clone()));
    assert_eq!(
        plain_json(&send(&api, "GET", "__admin/settings", "").await),
        root["settings"]
    );
    assert_eq!(
        plain_json(&send(&api, "GET", "__admin/features", "").await),
        root["features"]
    );
    let meta = send(&api, "GET", "metadata", "").await.ok();
    assert!(
        meta["rest"][0]["operation"]
            .to_string()
            .contains("\"compact\"")
    );

    // Every database, with the statistics its adapter knows.
    let dbs = plain_json(&send(&api, "GET", "__admin/dbs", "").await);
    let names: Vec<&str> = dbs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "index",
            "transaction",
            "resource",
            "admin-index",
            "admin-transaction"
        ]
    );
    let resource_bytes: u64 = s
        .store
        .column_families()
        .unwrap()
        .iter()
        .map(|c| c.estimate_live_data_size)
        .sum();
    assert_eq!(dbs[2]["estimateLiveDataSize"], resource_bytes);
    let one = plain_json(&send(&api, "GET", "__admin/dbs/resource/stats", "").await);
    assert_eq!(one, dbs[2]);
    // Every resource version is one content of the store and one transaction entry per 100.
    let cfs = plain_json(&send(&api, "GET", "__admin/dbs/resource/column-families", "").await);
    assert_eq!(cfs[0]["name"], "default");
    assert_eq!(cfs[0]["estimateNumKeys"], PATIENTS as u64 + 5);
    let log = plain_json(&send(&api, "GET", "__admin/dbs/transaction/column-families", "").await);
    assert_eq!(log[0]["estimateNumKeys"], s.log.last_t().await.unwrap());
    let index = plain_json(&send(&api, "GET", "__admin/dbs/index/column-families", "").await);
    let index_names: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = flint_db::Cf::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(index_names, all);
    let current = index
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "type-as-of-index")
        .unwrap();
    assert_eq!(current["estimateNumKeys"], PATIENTS as u64 + 5);
    for key in [
        "estimateLiveDataSize",
        "liveSstFilesSize",
        "sizeAllMemTables",
    ] {
        assert!(current[key].is_u64(), "{current}");
    }

    // Unknown databases and paths, wrong methods.
    let issue = send(&api, "GET", "__admin/dbs/nope/stats", "")
        .await
        .issue(404);
    assert!(issue["diagnostics"].as_str().unwrap().contains("`nope`"));
    send(&api, "GET", "__admin/dbs/nope/column-families", "")
        .await
        .issue(404);
    send(&api, "GET", "__admin/dbs/index", "").await.issue(404);
    send(&api, "GET", "__admin/nothing", "").await.issue(404);
    // SST files, levels and state: in memory there are none (422); unknown ones 404.
    for view in ["metadata", "tables", "state"] {
        let issue = send(
            &api,
            "GET",
            &format!("__admin/dbs/index/column-families/type-as-of-index/{view}"),
            "",
        )
        .await
        .issue(422);
        assert!(
            issue["diagnostics"].as_str().unwrap().contains(view),
            "{issue}"
        );
        let issue = send(
            &api,
            "GET",
            &format!("__admin/dbs/index/column-families/nope/{view}"),
            "",
        )
        .await
        .issue(404);
        assert!(
            issue["diagnostics"].as_str().unwrap().contains("`nope`"),
            "{issue}"
        );
        send(
            &api,
            "GET",
            &format!("__admin/dbs/nope/column-families/default/{view}"),
            "",
        )
        .await
        .issue(404);
        send(
            &api,
            "POST",
            &format!("__admin/dbs/resource/column-families/default/{view}"),
            "{}",
        )
        .await
        .issue(405);
    }
    send(
        &api,
        "GET",
        "__admin/dbs/index/column-families/type-as-of-index/other",
        "",
    )
    .await
    .issue(404);
    send(&api, "DELETE", "__admin/dbs", "").await.issue(405);
    send(&api, "POST", "__admin/settings", "{}")
        .await
        .issue(405);
    send(&api, "PUT", "__admin/Task", "{}").await.issue(405);

    // The OpenAPI description names every path served.
    let api_doc = plain_json(&send(&api, "GET", "__admin/openapi.json", "").await);
    assert_eq!(api_doc["openapi"], "3.0.3");
    let paths = api_doc["paths"].as_object().unwrap();
    for p in [
        "/",
        "/settings",
        "/features",
        "/openapi.json",
        "/dbs",
        "/dbs/{db}/stats",
        "/dbs/{db}/column-families",
        "/Task",
        "/Task/{id}",
        "/Task/{id}/$pause",
        "/Task/{id}/$resume",
        "/Task/{id}/$cancel",
        "/dbs/{db}/column-families/{cf}/metadata",
        "/dbs/{db}/column-families/{cf}/tables",
        "/dbs/{db}/column-families/{cf}/state",
        "/Task/_history",
        "/Task/{id}/_history",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // Every schema it refers to is defined.
    let text = api_doc.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        let target = r.split('"').next().unwrap();
        let mut node = &api_doc;
        for seg in target.trim_start_matches("#/").split('/') {
            node = &node[seg];
        }
        assert!(node.is_object(), "{target} undefined");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_of_jobs_lists_every_version_newest_first() {
    let s = storage().await;
    let (api, _) = server(&s, Faults::new(), true).await;
    let compact = json!({"resourceType": "Task", "status": "ready", "intent": "order",
        "code": {"coding": [{"system": JOB_TYPE, "code": "compact"}]},
        "input": [{"type": {"coding": [{"system": CJP, "code": "database"}]}, "valueCode": "index"},
                  {"type": {"coding": [{"system": CJP, "code": "column-family"}]},
                   "valueCode": "type-as-of-index"}]});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let task = create(&api, &compact.to_string()).await;
        let id = task["id"].as_str().unwrap().to_string();
        wait_until(&api, &id, |t| t["status"] == "completed").await;
        ids.push(id);
    }
    // One job: every version, newest first, the last one as a read answers it.
    let id = &ids[0];
    let h = send(&api, "GET", &format!("__admin/Task/{id}/_history"), "")
        .await
        .ok();
    assert_eq!(h["type"], "history");
    let entries = h["entry"].as_array().unwrap();
    assert_eq!(h["total"], entries.len());
    assert!(entries.len() >= 2, "created, then completed: {h}");
    let versions: Vec<u64> = entries
        .iter()
        .map(|e| {
            e["resource"]["meta"]["versionId"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] > w[1]), "{versions:?}");
    let read = get_task(&api, id).await;
    assert_eq!(entries[0]["resource"]["status"], "completed");
    assert_eq!(
        entries[0]["resource"]["meta"]["versionId"],
        read["meta"]["versionId"]
    );
    assert_eq!(
        entries[0]["response"]["etag"],
        format!("W/\"{}\"", versions[0])
    );
    let first = entries.last().unwrap();
    assert_eq!(first["request"]["method"], "POST");
    assert_eq!(first["response"]["status"], "201");
    assert_eq!(first["resource"]["status"], "ready");
    assert!(
        entries[..entries.len() - 1]
            .iter()
            .all(|e| e["request"]["method"] == "PUT")
    );

    // Every job: the versions of both, paged at one database value.
    let all = send(&api, "GET", "__admin/Task/_history", "").await.ok();
    let total = all["total"].as_u64().unwrap() as usize;
    let mut per_job = std::collections::BTreeMap::<String, usize>::new();
    for e in all["entry"].as_array().unwrap() {
        *per_job
            .entry(e["resource"]["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_job.len(), 2, "{per_job:?}");
    assert_eq!(per_job[id], entries.len());
    assert_eq!(per_job.values().sum::<usize>(), total);
    let mut paged = Vec::new();
    let mut page = send(&api, "GET", "__admin/Task/_history?_count=1", "")
        .await
        .ok();
    loop {
        paged.extend(page["entry"].as_array().cloned().unwrap_or_default());
        let Some(next) = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string())
        else {
            break;
        };
        // A version written between pages does not shift them.
        create(&api, &compact.to_string()).await;
        let path = next.split_once("/fhir/").unwrap().1.to_string();
        page = send(&api, "GET", &path, "").await.ok();
    }
    assert_eq!(paged, all["entry"].as_array().unwrap().clone());

    // Refused: an unknown job, bad parameters, other methods.
    send(&api, "GET", "__admin/Task/nope/_history", "")
        .await
        .issue(404);
    for (q, param) in [
        ("_count=x", "_count"),
        ("_offset=-1", "_offset"),
        ("foo=1", "foo"),
        ("__t=999999999", "__t"),
    ] {
        let issue = send(&api, "GET", &format!("__admin/Task/_history?{q}"), "")
            .await
            .issue(400);
        assert_eq!(issue["expression"], json!([param]), "{q}: {issue}");
    }
    send(&api, "DELETE", "__admin/Task/_history", "")
        .await
        .issue(405);
    send(&api, "POST", &format!("__admin/Task/{id}/_history"), "{}")
        .await
        .issue(405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_jobs_and_refused_transitions() {
    let s = storage().await;
    let (api, _) = server(&s, Faults::new(), true).await;
    let at = |a: Answer, status: u16| a.issue(status)["expression"][0].clone();

    send(
        &api,
        "POST",
        "__admin/Task",
        r#"{"resourceType": "Patient"}"#,
    )
    .await
    .issue(400);
    send(&api, "POST", "__admin/Task", "{not json")
        .await
        .issue(400);
    let no_code = json!({"resourceType": "Task", "status": "ready", "intent": "order"});
    assert_eq!(
        at(
            send(&api, "POST", "__admin/Task", &no_code.to_string()).await,
            400
        ),
        "Task.code"
    );
    assert_eq!(
        at(
            send(&api, "POST", "__admin/Task", &task("prune", json!([]))).await,
            422
        ),
        "Task.code"
    );
    assert_eq!(
        at(
            send(
                &api,
                "POST",
                "__admin/Task",
                &task("async-interaction", json!([]))
            )
            .await,
            422
        ),
        "Task.code"
    );
    assert_eq!(
        at(
            send(&api, "POST", "__admin/Task", &task("re-index", json!([]))).await,
            400
        ),
        "Task.input"
    );
    assert_eq!(
        at(
            send(
                &api,
                "POST",
                "__admin/Task",
                &re_index_task("http://nowhere/sp")
            )
            .await,
            422
        ),
        "Task.input[0].valueCanonical"
    );
    assert_eq!(
        at(
            send(
                &api,
                "POST",
                "__admin/Task",
                &compact_task("nope", "default")
            )
            .await,
            400
        ),
        "Task.input[0].valueCode"
    );
    assert_eq!(
        at(
            send(&api, "POST", "__admin/Task", &compact_task("index", "nope")).await,
            400
        ),
        "Task.input[1].valueCode"
    );
    // Nothing was created by the refused requests.
    let list = send(&api, "GET", "__admin/Task", "").await.ok();
    assert_eq!(list["total"], 0, "{list}");

    send(&api, "GET", "__admin/Task/nope", "").await.issue(404);
    send(&api, "POST", "__admin/Task/nope/$cancel", "")
        .await
        .issue(404);
    send(&api, "POST", "__admin/Task/nope/$pause", "")
        .await
        .issue(404);
    send(&api, "POST", "__admin/Task/nope/$resume", "")
        .await
        .issue(404);
    assert_eq!(
        at(
            send(&api, "GET", "__admin/Task?status=sleeping", "").await,
            400
        ),
        "status"
    );
    assert_eq!(
        at(send(&api, "GET", "__admin/Task?owner=x", "").await, 400),
        "owner"
    );
    assert_eq!(
        at(send(&api, "GET", "__admin/Task?_count=x", "").await, 400),
        "_count"
    );

    // A compact job runs to completion; then it can be neither paused, resumed nor cancelled.
    let job = create(&api, &compact_task("index", "search-param-value-index")).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["status"], "ready");
    let done = wait_until(&api, id, |t| t["status"] == "completed").await;
    assert!(
        output(&done, CJO, "processing-duration")["value"].is_number(),
        "{done}"
    );
    let msg = |a: Answer| a.issue(409)["diagnostics"].as_str().unwrap().to_string();
    assert!(
        msg(send(&api, "POST", &format!("__admin/Task/{id}/$pause"), "").await)
            .contains("cannot be paused")
    );
    assert!(
        msg(send(&api, "POST", &format!("__admin/Task/{id}/$resume"), "").await)
            .contains("completed")
    );
    assert!(
        msg(send(&api, "POST", &format!("__admin/Task/{id}/$cancel"), "").await)
            .contains("completed")
    );
    send(&api, "POST", &format!("__admin/Task/{id}/$restart"), "")
        .await
        .issue(400);
    send(&api, "GET", &format!("__admin/Task/{id}/$cancel"), "")
        .await
        .issue(405);

    // The list finds it by status and type, and pages.
    let second = create(&api, &compact_task("resource", "default")).await;
    wait_until(&api, second["id"].as_str().unwrap(), |t| {
        t["status"] == "completed"
    })
    .await;
    let all = send(
        &api,
        "GET",
        "__admin/Task?code=compact&status=completed,failed",
        "",
    )
    .await
    .ok();
    assert_eq!(all["total"], 2, "{all}");
    let page = send(&api, "GET", "__admin/Task?_count=1", "").await.ok();
    assert_eq!(page["entry"].as_array().unwrap().len(), 1);
    let next = page["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap();
    let next_path = next["url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://flint.test/fhir/")
        .unwrap();
    let page2 = send(&api, "GET", next_path, "").await.ok();
    assert_ne!(
        page2["entry"][0]["resource"]["id"],
        page["entry"][0]["resource"]["id"]
    );
    assert!(!page2["link"].to_string().contains("\"next\""));
    let none = send(&api, "GET", "__admin/Task?code=re-index", "")
        .await
        .ok();
    assert_eq!(none["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_index_job_indexes_old_data_pauses_resumes_and_survives_a_restart() {
    let s = storage().await;
    let faults = Faults::new();
    let (api, _) = server(&s, faults.clone(), true).await;
    let alphas = (0..PATIENTS).filter(|i| alpha(*i)).count() as u64;
    // Written before the parameter existed: the index has no entries of it.
    assert_eq!(nickname_count(&api, "Alpha").await, 0);

    // The first page's index write succeeds, the second fails until healed: the job waits
    // in progress with one page done.
    faults.fail(|op| op == Op::Write, 1, u64::MAX);
    let job = create(&api, &re_index_task(NICKNAME)).await;
    let id = job["id"].as_str().unwrap().to_string();
    let stuck = wait_until(&api, &id, |t| {
        t["status"] == "in-progress" && output(t, RJO, "resources-processed") == json!(500)
    })
    .await;
    assert_eq!(output(&stuck, RJO, "total-resources"), json!(PATIENTS));
    let next = output(&stuck, RJO, "next-resource");
    assert!(next.as_str().unwrap().starts_with("Patient/"), "{stuck}");
    while faults.injected() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Paused: on hold with its progress kept; pausing again is a conflict.
    let paused = send(&api, "POST", &format!("__admin/Task/{id}/$pause"), "")
        .await
        .ok();
    assert_eq!(paused["status"], "on-hold");
    assert_eq!(output(&paused, RJO, "resources-processed"), json!(500));
    let again = send(&api, "POST", &format!("__admin/Task/{id}/$pause"), "").await;
    assert!(
        again.issue(409)["diagnostics"]
            .as_str()
            .unwrap()
            .contains("on-hold")
    );
    faults.heal();

    // A restart: a new server over the same storage finds the paused job as it was.
    let (api2, state2) = server(&s, Faults::new(), true).await;
    assert_eq!(
        flint_rest::http::resume_async_requests(&state2)
            .await
            .unwrap(),
        0
    );
    let after = get_task(&api2, &id).await;
    assert_eq!(after["status"], "on-hold");
    assert_eq!(output(&after, RJO, "next-resource"), next);
    let resumed = send(&api2, "POST", &format!("__admin/Task/{id}/$resume"), "")
        .await
        .ok();
    assert_ne!(resumed["status"], "on-hold");
    let done = wait_until(&api2, &id, |t| t["status"] == "completed").await;
    // Every Patient exactly once: the resumed job went on from its cursor.
    assert_eq!(output(&done, RJO, "total-resources"), json!(PATIENTS));
    assert_eq!(output(&done, RJO, "resources-processed"), json!(PATIENTS));
    assert!(
        output(&done, RJO, "processing-duration")["value"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(output(&done, RJO, "next-resource"), Value::Null);
    assert_eq!(nickname_count(&api2, "Alpha").await, alphas);
    assert_eq!(
        nickname_count(&api2, "Beta").await,
        PATIENTS as u64 - alphas
    );
    let msg = send(&api2, "POST", &format!("__admin/Task/{id}/$cancel"), "").await;
    assert!(
        msg.issue(409)["diagnostics"]
            .as_str()
            .unwrap()
            .contains("completed")
    );

    // Written after the parameter existed: indexed by the indexer, found at once.
    let p = json!({"resourceType": "Patient", "id": "new", "name": [{"given": ["Alpha"]}]});
    assert!(
        send(&api2, "PUT", "Patient/new", &p.to_string())
            .await
            .status
            .is_success()
    );
    assert_eq!(nickname_count(&api2, "Alpha").await, alphas + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_re_index_goes_on_after_a_restart_and_a_cancelled_one_stops() {
    let s = storage().await;
    // The first server's index writes fail from the second page on, for good: it stands for a
    // process that stopped there.
    let dead = Faults::new();
    dead.fail(|op| op == Op::Write, 1, u64::MAX);
    let (api, _) = server(&s, dead.clone(), true).await;
    let job = create(&api, &re_index_task(NICKNAME)).await;
    let id = job["id"].as_str().unwrap().to_string();
    wait_until(&api, &id, |t| {
        output(t, RJO, "resources-processed") == json!(500)
    })
    .await;

    let (api2, state2) = server(&s, Faults::new(), true).await;
    assert_eq!(
        flint_rest::http::resume_async_requests(&state2)
            .await
            .unwrap(),
        1
    );
    let done = wait_until(&api2, &id, |t| t["status"] == "completed").await;
    assert_eq!(output(&done, RJO, "resources-processed"), json!(PATIENTS));
    let alphas = (0..PATIENTS).filter(|i| alpha(*i)).count() as u64;
    assert_eq!(nickname_count(&api2, "Alpha").await, alphas);

    // A job cancelled while it waits stops: cancelled, and stays so.
    let blocked = Faults::new();
    blocked.fail(|op| op == Op::Write, 0, u64::MAX);
    let (api3, _) = server(&s, blocked.clone(), true).await;
    let job = create(&api3, &re_index_task(NICKNAME)).await;
    let id = job["id"].as_str().unwrap().to_string();
    while blocked.injected() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancelled = send(&api3, "POST", &format!("__admin/Task/{id}/$cancel"), "")
        .await
        .ok();
    assert_eq!(cancelled["status"], "cancelled");
    let tries = blocked.injected();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(blocked.injected(), tries, "the work stopped retrying");
    let msg = send(&api3, "POST", &format!("__admin/Task/{id}/$cancel"), "").await;
    assert!(
        msg.issue(409)["diagnostics"]
            .as_str()
            .unwrap()
            .contains("already cancelled")
    );
    let msg = send(&api3, "POST", &format!("__admin/Task/{id}/$resume"), "").await;
    assert!(
        msg.issue(409)["diagnostics"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
    assert_eq!(get_task(&api3, &id).await["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_runs_asynchronously_only() {
    let s = storage().await;
    let (api, _) = server(&s, Faults::new(), true).await;
    let params = |db: &str, cf: &str| {
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "database", "valueCode": db}, {"name": "column-family", "valueCode": cf}]})
        .to_string()
    };
    let issue = send(&api, "POST", "$compact", &params("index", "default"))
        .await
        .issue(400);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("respond-async"),
        "{issue}"
    );
    let expr = |a: Answer| a.issue(400)["expression"][0].clone();
    assert_eq!(
        expr(send(&api, "POST", "$compact", &params("nope", "default")).await),
        "Parameters.parameter[0].valueCode"
    );
    assert_eq!(
        expr(send(&api, "POST", "$compact", &params("index", "nope")).await),
        "Parameters.parameter[1].valueCode"
    );
    let missing = json!({"resourceType": "Parameters", "parameter": [{"name": "database", "valueCode": "index"}]});
    assert_eq!(
        expr(send(&api, "POST", "$compact", &missing.to_string()).await),
        "column-family"
    );
    send(&api, "GET", "$compact", "").await.issue(405);

    let done = accepted_result(
        &api,
        send_with(
            &api,
            "POST",
            "$compact",
            &params("index", "search-param-value-index"),
            &[ASYNC],
        )
        .await,
    )
    .await;
    assert_eq!(done["type"], "batch-response");
    let entry = &done["entry"][0]["response"];
    assert_eq!(entry["status"], "200", "{done}");
    let text = entry["outcome"]["issue"][0]["diagnostics"]
        .as_str()
        .unwrap();
    assert!(text.contains("search-param-value-index"), "{text}");
    // Bad parameters of an accepted request are the request's error.
    let bad = accepted_result(
        &api,
        send_with(
            &api,
            "POST",
            "$compact",
            &params("nope", "default"),
            &[ASYNC],
        )
        .await,
    )
    .await;
    let entry = &bad["entry"][0]["response"];
    assert!(
        entry["status"].as_str().unwrap().starts_with("400"),
        "{bad}"
    );
    assert_eq!(
        entry["outcome"]["issue"][0]["expression"][0],
        "Parameters.parameter[0].valueCode"
    );
}

/// The result of the accepted asynchronous request `a`, polled until it is done.
async fn accepted_result(api: &Router, a: Answer) -> Value {
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    let url = a.headers["content-location"].to_str().unwrap();
    let status = url
        .strip_prefix("http://flint.test/fhir/")
        .unwrap()
        .to_string();
    for _ in 0..500 {
        let r = send(api, "GET", &status, "").await;
        if r.status != 202 {
            return r.ok();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{status} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_a_re_index_are_indexed_correctly() {
    let s = storage().await;
    let faults = Faults::new();
    let (api, _) = server(&s, faults.clone(), true).await;
    let alphas = (0..PATIENTS).filter(|i| alpha(*i)).count() as u64;
    // Index writes fail after the job's first page: the job holds its database value there.
    faults.fail(|op| op == Op::Write, 1, u64::MAX);
    let job = create(&api, &re_index_task(NICKNAME)).await;
    let id = job["id"].as_str().unwrap().to_string();
    wait_until(&api, &id, |t| {
        output(t, RJO, "resources-processed") == json!(500)
    })
    .await;
    let before = s.log.last_t().await.unwrap();
    // Meanwhile, after the job's `t`: 90 Alphas become Betas, 30 new Alphas arrive (their
    // indexing waits for the fault to heal, and then runs beside the job's other pages).
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            for k in 0..90 {
                let pid = format!("p{:05}", k * 3);
                let p =
                    json!({"resourceType": "Patient", "id": pid, "name": [{"given": ["Beta"]}]});
                let a = send(&api, "PUT", &format!("Patient/{pid}"), &p.to_string()).await;
                assert!(a.status.is_success(), "{}", a.json());
                if k % 3 == 0 {
                    let nid = format!("n{k}");
                    let n = json!({"resourceType": "Patient", "id": nid, "name": [{"given": ["Alpha"]}]});
                    let a = send(&api, "PUT", &format!("Patient/{nid}"), &n.to_string()).await;
                    assert!(a.status.is_success(), "{}", a.json());
                }
            }
        })
    };
    while s.log.last_t().await.unwrap() == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    faults.heal();
    let done = wait_until(&api, &id, |t| t["status"] == "completed").await;
    writer.await.unwrap();
    assert_eq!(output(&done, RJO, "total-resources"), json!(PATIENTS));
    // The job counted and processed the Patients of one database value.
    assert_eq!(
        output(&done, RJO, "resources-processed"),
        output(&done, RJO, "total-resources")
    );
    assert_eq!(nickname_count(&api, "Alpha").await, alphas - 90 + 30);
    assert_eq!(
        nickname_count(&api, "Beta").await,
        PATIENTS as u64 - alphas + 90
    );
}
