//! The admin API against the real binary (`ENABLE_ADMIN_API`): off by default; on, the
//! databases of each storage variant with RocksDB's statistics (standalone), settings with
//! secrets masked, a re-index job over a custom parameter, compact jobs and `$compact`.

mod common;

use common::{Server, VARIANTS, json, outcome};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const JOB_TYPE: &str = "https://samply.github.io/blaze/fhir/CodeSystem/JobType";
const COLOUR: &str = "http://flint.test/SearchParameter/Patient-colour";

fn task(job_type: &str, inputs: Value) -> Value {
    json!({"resourceType": "Task", "status": "ready", "intent": "order",
           "code": {"coding": [{"system": JOB_TYPE, "code": job_type}]}, "input": inputs})
}

fn input(system: &str, code: &str, key: &str, value: &str) -> Value {
    json!({"type": {"coding": [{"system": format!("https://samply.github.io/blaze/fhir/CodeSystem/{system}"),
                                "code": code}]}, key: value})
}

fn output(task: &Value, code: &str) -> Value {
    task["output"]
        .as_array()
        .and_then(|os| os.iter().find(|o| o["type"]["coding"][0]["code"] == code))
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

/// Creates the job `t` and waits until it has finished; its Task.
fn run_job(s: &Server, t: &Value) -> Value {
    let (st, created) = json(s.post_json("__admin/Task", t).send().unwrap());
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (st, task) = json(s.get(&format!("__admin/Task/{id}")).send().unwrap());
        assert_eq!(st, 200, "{task}");
        if task["status"] == "completed" || task["status"] == "failed" {
            return task;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {task}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn admin_json(s: &Server, path: &str) -> Value {
    let r = s.get(path).send().unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let (st, v) = json(r);
    assert_eq!(st, 200, "{v}");
    v
}

/// The SST files of the compacted `search-param-value-index` (standalone: in the last level,
/// as many and as large as the column family's statistics say), its state; in memory 422.
fn column_family_files(s: &Server, v: &str) {
    let cf = "__admin/dbs/index/column-families/search-param-value-index";
    if v != "standalone" {
        for view in ["metadata", "tables", "state"] {
            outcome(s.get(&format!("{cf}/{view}")).send().unwrap(), 422);
        }
        return;
    }
    let m = admin_json(s, &format!("{cf}/metadata"));
    assert_eq!(m["name"], "search-param-value-index");
    let levels = m["levels"].as_array().unwrap();
    assert!(levels.len() >= 7, "{m}");
    assert!(
        m["numFiles"].as_u64().unwrap() >= 1,
        "compacted data is in files: {m}"
    );
    assert_eq!(levels[0]["numFiles"], 0, "compacted out of level 0: {m}");
    let sum = |k: &str| levels.iter().map(|l| l[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (sum("numFiles"), sum("fileSize")),
        (
            m["numFiles"].as_u64().unwrap(),
            m["fileSize"].as_u64().unwrap()
        )
    );
    let stats = admin_json(s, "__admin/dbs/index/column-families");
    let row = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "search-param-value-index")
        .unwrap();
    assert_eq!(row["liveSstFilesSize"], m["fileSize"], "{row} {m}");
    let tables = admin_json(s, &format!("{cf}/tables"));
    let tables = tables.as_array().unwrap();
    assert_eq!(tables.len() as u64, m["numFiles"].as_u64().unwrap());
    for t in tables {
        assert!(t["name"].as_str().unwrap().ends_with(".sst"), "{t}");
        assert!(t["numEntries"].as_u64().unwrap() > 0, "{t}");
        assert!(
            t["smallestKey"].as_str().unwrap() <= t["largestKey"].as_str().unwrap(),
            "{t}"
        );
        let level = t["level"].as_u64().unwrap() as usize;
        assert!(levels[level]["numFiles"].as_u64().unwrap() > 0, "{t} {m}");
    }
    let state = admin_json(s, &format!("{cf}/state"));
    assert_eq!(state["writeStopped"], false, "{state}");
    assert!(state["numEntriesActiveMemTable"].is_u64(), "{state}");
    outcome(
        s.get("__admin/dbs/index/column-families/nope/tables")
            .send()
            .unwrap(),
        404,
    );
}

#[test]
fn the_admin_api_is_off_by_default() {
    let s = Server::start("in-memory", &[]);
    let issue = outcome(s.get("__admin/dbs").send().unwrap(), 404);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ENABLE_ADMIN_API")
    );
    outcome(s.get("__admin").send().unwrap(), 404);
    let p = json!({"resourceType": "Parameters"});
    let issue = outcome(s.post_json("$compact", &p).send().unwrap(), 400);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ENABLE_ADMIN_API")
    );
}

#[test]
fn databases_settings_and_jobs_on_every_variant() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("params.json");
    std::fs::write(
        &bundle,
        json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
            "resourceType": "SearchParameter", "url": COLOUR, "name": "colour",
            "status": "active", "code": "colour", "base": ["Patient"], "type": "string",
            "expression": "Patient.extension.where(url = 'http://x/colour').value"}}]})
        .to_string(),
    )
    .unwrap();
    for v in VARIANTS {
        let s = Server::start(
            v,
            &[
                ("ENABLE_ADMIN_API", "true"),
                ("PAGE_SECRET", "do-not-show"),
                ("DB_SEARCH_PARAM_BUNDLE", bundle.to_str().unwrap()),
            ],
        );
        let n = 30;
        for i in 0..n {
            let colour = if i % 2 == 0 { "red" } else { "blue" };
            let p = json!({"resourceType": "Patient", "id": format!("p{i}"), "extension": [
                {"url": "http://x/colour", "valueString": colour}]});
            let st = s
                .put_json(&format!("Patient/p{i}"), &p)
                .send()
                .unwrap()
                .status();
            assert!(st.is_success(), "{st}");
        }

        let root = admin_json(&s, "__admin");
        let setting = |name: &str| {
            root["settings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == name)
                .unwrap_or_else(|| panic!("no setting {name}"))
                .clone()
        };
        assert_eq!(setting("STORAGE")["value"], v);
        assert_eq!(setting("PAGE_SECRET")["value"], "[hidden]");
        assert!(!root.to_string().contains("do-not-show"));
        assert!(
            root["features"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["toggle"] == "ENABLE_ADMIN_API" && f["enabled"] == true)
        );
        let doc = admin_json(&s, "__admin/openapi.json");
        assert!(doc["paths"]["/Task/{id}/$pause"].is_object());

        let dbs = admin_json(&s, "__admin/dbs");
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
        let index = &dbs[0];
        if v == "standalone" {
            // RocksDB's statistics: the shared block cache of DB_BLOCK_CACHE_SIZE (128 MiB).
            assert_eq!(index["blockCache"]["capacity"], 128u64 << 20, "{index}");
            assert!(index["usableSpace"].as_u64().unwrap() > 0, "{index}");
            assert!(index["compactions"]["running"].is_u64(), "{index}");
        } else {
            assert!(index["blockCache"].is_null() && index["usableSpace"].is_null());
        }
        let cfs = admin_json(&s, "__admin/dbs/resource/column-families");
        assert_eq!(cfs[0]["name"], "default");
        assert!(cfs[0]["estimateNumKeys"].as_u64().unwrap() >= n, "{cfs}");
        outcome(s.get("__admin/dbs/nope/stats").send().unwrap(), 404);

        // A re-index job over the custom parameter: every Patient, and the search still right.
        let reindex = run_job(
            &s,
            &task(
                "re-index",
                json!([input(
                    "ReIndexJobParameter",
                    "search-param-url",
                    "valueCanonical",
                    COLOUR
                )]),
            ),
        );
        assert_eq!(reindex["status"], "completed", "{reindex}");
        assert_eq!(output(&reindex, "total-resources"), json!(n));
        assert_eq!(output(&reindex, "resources-processed"), json!(n));
        let (_, b) = json(s.get("Patient?colour=red&_summary=count").send().unwrap());
        assert_eq!(b["total"], n / 2, "{b}");

        // Compaction: as a job and as the asynchronous $compact.
        let compact = run_job(
            &s,
            &task(
                "compact",
                json!([
                    input("CompactJobParameter", "database", "valueCode", "index"),
                    input(
                        "CompactJobParameter",
                        "column-family",
                        "valueCode",
                        "search-param-value-index"
                    )
                ]),
            ),
        );
        assert_eq!(compact["status"], "completed", "{compact}");
        assert!(output(&compact, "processing-duration")["value"].is_number());
        column_family_files(&s, v);
        let params = json!({"resourceType": "Parameters", "parameter": [
            {"name": "database", "valueCode": "resource"}, {"name": "column-family", "valueCode": "default"}]});
        let r = s
            .post_json("$compact", &params)
            .header("prefer", "respond-async")
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
        let url = r.headers()["content-location"]
            .to_str()
            .unwrap()
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        let result = loop {
            let r = s.client.get(&url).send().unwrap();
            if r.status() != 202 {
                break json(r);
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(result.0, 200);
        assert_eq!(
            result.1["entry"][0]["response"]["status"], "200",
            "{}",
            result.1
        );
        let (_, b) = json(s.get("Patient?colour=blue&_summary=count").send().unwrap());
        assert_eq!(b["total"], n / 2, "compaction keeps every entry: {b}");
        // The jobs are listed; a finished one cannot be cancelled.
        let (_, list) = json(s.get("__admin/Task?code=re-index,compact").send().unwrap());
        assert_eq!(list["total"], 2, "{list}");
        let id = reindex["id"].as_str().unwrap();
        outcome(
            s.client
                .post(s.url(&format!("__admin/Task/{id}/$cancel")))
                .send()
                .unwrap(),
            409,
        );
        let metrics = s.metrics();
        assert!(metrics.contains("flint_jobs_created_total"), "{metrics}");
    }
}
