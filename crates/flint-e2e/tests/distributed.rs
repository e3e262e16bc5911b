//! `STORAGE=distributed` against a real Apache Kafka broker and a real Apache Cassandra node
//! started by `scripts/services.sh`: two Flint nodes share one log and one resource store; a
//! write on one node is read at once on the other; concurrent writers on both produce one
//! history; a measure stored on one node evaluates on the other; a killed node resumes, and a
//! node with a wiped index rebuilds it from the log; an asynchronous request and a `$export`
//! kicked off on one node are answered (status, result, files) by the other (also while the
//! kicking node is killed in the middle of the export job, which it resumes at restart), and a
//! `Patient/$purge` on one node leaves nothing of the patient readable on the other.

mod common;
#[path = "common/measure.rs"]
mod measure;
#[path = "common/services.rs"]
mod services;

use common::{Server, json, link, outcome};
use measure::{check_bp_report, load_bp};
use serde_json::{Value, json};
use services::{Options, Services};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A node writing its transactions with Kafka compression `compression`; nodes with different
/// codecs read each other's records. It connects over SSL with a client certificate, from key
/// stores that keytool makes of `store_type` (JKS or PKCS12) as the deployment guide shows.
fn start_node(services: &Services, dir: &Path, compression: &str, store_type: &str) -> Server {
    let env = services.node_env_key_stores("ONE", &dir.join("stores"), store_type);
    let index = dir.join("index").display().to_string();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("INDEX_DB_DIR", &index));
    all.push(("DB_KAFKA_COMPRESSION_TYPE", compression));
    all.push(("ENABLE_OPERATION_PATIENT_PURGE", "true"));
    // Small export files, so that one type's files are downloaded from both nodes.
    all.push(("FHIR_OPERATION_EXPORT_MAX_FILE_RESOURCES", "25"));
    // Export jobs wait before planning, so that a node can be killed while one runs.
    all.push(("FLINT_TEST_EXPORT_PLAN_DELAY_MS", "3000"));
    Server::start_in("distributed", None, &all)
}

/// The storage trait contracts that flint-db states (and the in-memory and RocksDB adapters
/// keep) hold for the Kafka log and the Cassandra store, on their own topic and keyspace.
fn storage_contracts(services: &Services) {
    services.run(&["topic", "flint-contract"]);
    services.run(&["keyspace", "flint_contract", "1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let log = flint_kafka::KafkaLog::open(flint_kafka::KafkaConfig {
            bootstrap_servers: format!("127.0.0.1:{}", services.port("KAFKA_PORT")),
            topic: "flint-contract".into(),
            max_request_size: 1 << 20,
            compression_type: "none".into(),
            security_protocol: "PLAINTEXT".into(),
            ssl: flint_kafka::KafkaSsl::default(),
            request_timeout: std::time::Duration::from_secs(30),
            end_offset_timeout: std::time::Duration::from_secs(30),
        })
        .await
        .expect("open the Kafka log");
        flint_db::conformance::tx_log(&log).await;
        let store = flint_cassandra::CassandraStore::open(&flint_cassandra::CassandraConfig {
            contact_points: vec![format!("127.0.0.1:{}", services.port("CASSANDRA_PORT"))],
            username: "cassandra".into(),
            password: "cassandra".into(),
            keyspace: "flint_contract".into(),
            put_consistency: "ONE".into(),
            request_timeout: std::time::Duration::from_secs(30),
            max_concurrent_requests: 64,
            max_request_queue_size: 1000,
        })
        .await
        .expect("open the Cassandra store");
        flint_db::conformance::resource_store(&store).await;
    });
}

#[test]
fn two_nodes_share_one_log_and_store() {
    let tmp = tempfile::tempdir().unwrap();
    let services = Services::start(
        &tmp.path().join("services"),
        Options {
            cassandra_nodes: 1,
            replication: 1,
            ssl: true,
        },
    );
    storage_contracts(&services);
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    // Node A reads JKS key stores, node B PKCS#12 ones; the broker requires client certificates.
    let mut a = start_node(&services, &a_dir, "zstd", "JKS");
    let mut b = start_node(&services, &b_dir, "snappy", "PKCS12");

    // A measure stored through one node evaluates on the other from its local index, with the
    // counts of the data (before any other Patient exists, which would join the population).
    load_bp(&a);
    let (st, report) = json(
        b.get("Measure/bp/$evaluate-measure?periodStart=2020&periodEnd=2020")
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{report}");
    check_bp_report(&report);

    // A write on one node is visible on the other at once (reads sync to the log end).
    let r = a
        .put_json(
            "Patient/n1",
            &json!({"resourceType": "Patient", "id": "n1", "active": true}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let (st, v) = json(b.get("Patient/n1").send().unwrap());
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["active"], true);

    // Concurrent writers on both nodes produce one serial history.
    std::thread::scope(|s| {
        for (n, node) in [(0, &a), (1, &b)] {
            s.spawn(move || {
                for i in 0..20 {
                    let body = json!({"resourceType": "Patient", "id": "shared", "gender": if (i + n) % 2 == 0 { "male" } else { "female" }, "birthDate": format!("19{:02}", i * 2 + n)});
                    let st = node.put_json("Patient/shared", &body).send().unwrap().status();
                    assert!(st.is_success(), "{st}");
                }
            });
        }
    });
    let (_, ha) = json(a.get("Patient/shared/_history?_count=100").send().unwrap());
    let (_, hb) = json(b.get("Patient/shared/_history?_count=100").send().unwrap());
    assert_eq!(ha["total"], 40);
    // The same versions, contents and instants on both nodes (full URLs name each node).
    let strip = |v: serde_json::Value| -> Vec<serde_json::Value> {
        v["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!([e["resource"], e["request"], e["response"]]))
            .collect()
    };
    assert_eq!(strip(ha), strip(hb.clone()));

    // Referential integrity is decided by the indexer in log order, the same on both nodes.
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/missing"}});
    assert_eq!(
        a.post_json("Observation", &obs).send().unwrap().status(),
        409
    );

    // Paging links made by one node open on the other (no PAGE_SECRET: the nodes share a key
    // kept in Cassandra), including the sealed links of a POST search, and those of a search
    // too long for its links, whose parameters one node keeps in Cassandra for the other.
    for i in 0..7 {
        let p = json!({"resourceType": "Patient", "name": [{"family": "Pager", "given": [format!("n{i}")]}]});
        assert_eq!(a.post_json("Patient", &p).send().unwrap().status(), 201);
    }
    let others: Vec<String> = (0..300).map(|i| format!("Other{i}")).collect();
    let long_form = format!("family=Pager,{}&_count=2", others.join(","));
    for (post, form) in [
        (false, ""),
        (true, "family=Pager&_count=2"),
        (true, long_form.as_str()),
    ] {
        let first = if post {
            a.client
                .post(a.url("Patient/_search"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.to_string())
                .send()
                .unwrap()
        } else {
            a.get("Patient?family=Pager&_count=2").send().unwrap()
        };
        let (st, mut page) = json(first);
        assert_eq!(st, 200, "{page}");
        let mut seen = Vec::new();
        let mut hops = 0;
        loop {
            for e in page["entry"].as_array().into_iter().flatten() {
                seen.push(e["resource"]["id"].as_str().unwrap().to_string());
            }
            let Some(next) = link(&page, "next") else {
                break;
            };
            assert!(next.len() < 1024, "a next link of {} bytes", next.len());
            // Alternate nodes for every page.
            let node = if hops % 2 == 0 { &b } else { &a };
            let path = next.split_once("/fhir/").unwrap().1;
            let (st, p) = json(node.get(path).send().unwrap());
            assert_eq!(st, 200, "page {hops} on the other node: {p}");
            page = p;
            hops += 1;
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 7, "post = {post}: {seen:?}");
        assert_eq!(hops, 3);
    }

    // Health detail and metrics: caught up with the log; Kafka and Cassandra timings.
    let (st, h) = b.health_detail();
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["status"], "UP", "{h}");
    assert_eq!(h["storage"], "distributed", "{h}");
    let indexed = h["node"]["indexed_t"].as_u64().unwrap();
    assert!(indexed >= 48, "{h}");
    assert_eq!(h["node"]["lag_transactions"], 0, "{h}");
    let m = a.metrics();
    for name in [
        "flint_index_lag_transactions",
        "flint_index_lag_seconds",
        "flint_kafka_request_duration_seconds",
        "flint_cassandra_request_duration_seconds",
    ] {
        assert!(m.contains(name), "metric {name} missing:\n{m}");
    }

    // kill -9 of node B, restart: it resumes from its index.
    b.kill_and_restart();
    a.put_json(
        "Patient/p2",
        &json!({"resourceType": "Patient", "id": "p2"}),
    )
    .send()
    .unwrap();
    assert_eq!(b.get("Patient/p2").send().unwrap().status(), 200);
    drop(b);

    // A node with a wiped index rebuilds it from the log and the store.
    std::fs::remove_dir_all(b_dir.join("index")).unwrap();
    let b = start_node(&services, &b_dir, "lz4", "PKCS12");
    let (_, hb2) = json(b.get("Patient/shared/_history?_count=100").send().unwrap());
    assert_eq!(strip(hb2), strip(hb));
    assert_eq!(b.get("Patient/p2").send().unwrap().status(), 200);

    async_requests_across_nodes(&a, &b);
    export_across_nodes(&a, &b);
    export_survives_a_killed_node(&mut a, &b);
    purge_across_nodes(&a, &b);
    conditional_creates_across_nodes(&a, &b);
}

/// 50 identical conditional creates, alternating between the two nodes and released at once,
/// create one Patient: every node's indexer checks each create's condition again in log
/// order, and the losers answer with the winner (issue 19).
fn conditional_creates_across_nodes(a: &Server, b: &Server) {
    const RACERS: usize = 50;
    let system = "http://example.org/race-distributed";
    let barrier = std::sync::Barrier::new(RACERS);
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let (node, barrier) = (if i % 2 == 0 { a } else { b }, &barrier);
                scope.spawn(move || {
                    let r = node
                        .post_json(
                            "Patient",
                            &json!({"resourceType": "Patient",
                                    "identifier": [{"system": system, "value": "1"}]}),
                        )
                        .header("If-None-Exist", format!("identifier={system}|1"));
                    barrier.wait();
                    json(r.send().unwrap())
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(
        answers.iter().all(|(st, _)| *st == 200 || *st == 201),
        "{:?}",
        answers
            .iter()
            .map(|(st, b)| (st, b.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(answers.iter().filter(|(st, _)| *st == 201).count(), 1);
    let winner = answers[0].1["id"].clone();
    assert!(
        answers.iter().all(|(_, b)| b["id"] == winner),
        "one resource"
    );
    for node in [a, b] {
        let (_, found) = json(
            node.get(&format!("Patient?identifier={system}|1&_summary=count"))
                .send()
                .unwrap(),
        );
        assert_eq!(found["total"], 1, "{found}");
    }
}

/// `path` of an absolute URL of node `from`, relative to its FHIR base, for another node.
fn relative(url: &str) -> &str {
    url.split_once("/fhir/").expect("a URL under /fhir/").1
}

/// Sends `req` with `Prefer: respond-async`: the status URL of the 202, relative to the base.
fn submit_async(req: reqwest::blocking::RequestBuilder) -> String {
    let r = req.header("prefer", "respond-async").send().unwrap();
    let headers = r.headers().clone();
    let (st, body) = json(r);
    assert_eq!(st, 202, "{body}");
    let url = headers["content-location"].to_str().unwrap();
    assert!(url.contains("/__async-status/"), "{url}");
    relative(url).to_string()
}

/// Polls `status` (relative) on `node` until it is no longer 202: the final answer.
fn poll(node: &Server, status: &str) -> reqwest::blocking::Response {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = node.get(status).send().unwrap();
        if r.status() != 202 {
            return r;
        }
        assert!(r.headers().contains_key("x-progress"), "{status}");
        assert!(Instant::now() < deadline, "{status} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn put(node: &Server, r: &Value) {
    let path = format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    );
    let (st, b) = json(node.put_json(&path, r).send().unwrap());
    assert!(st == 200 || st == 201, "PUT {path}: {st} {b}");
}

fn observation(id: &str, patient: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
           "subject": {"reference": format!("Patient/{patient}")}})
}

/// A `_summary=count` search and a batch sent asynchronously to node A are answered by node
/// B (202 while running, then the result), at A's `t` whatever B writes meanwhile; a
/// finished request cancelled on B is a conflict.
fn async_requests_across_nodes(a: &Server, b: &Server) {
    for i in 0..5 {
        put(
            a,
            &json!({"resourceType": "Patient", "id": format!("ax{i}")}),
        );
        put(
            a,
            &observation(&format!("ax-o{i}"), &format!("ax{i}"), "async-1"),
        );
    }
    let (st, sync) = json(a.get("Observation?_summary=count").send().unwrap());
    assert_eq!(st, 200, "{sync}");
    let expected = sync["total"].as_u64().unwrap();
    assert!(expected >= 5, "{sync}");
    let status = submit_async(a.get("Observation?_summary=count"));
    // Written after the kick-off, on the other node: not counted.
    put(b, &observation("ax-late", "ax0", "async-1"));
    let (st, bundle) = json(poll(b, &status));
    assert_eq!(st, 200, "{bundle}");
    assert_eq!(bundle["type"], "batch-response", "{bundle}");
    assert_eq!(
        bundle["entry"][0]["resource"]["total"], expected,
        "{bundle}"
    );
    // Node A answers the same result, and a cancel on B of the finished request is 409.
    let (st, again) = json(a.get(&status).send().unwrap());
    assert_eq!((st, &again), (200, &bundle));
    outcome(b.delete(&status).send().unwrap(), 409);

    // A batch Bundle kicked off on B, answered by A.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/ax3"}},
        {"request": {"method": "GET", "url": "Observation?code=http://loinc.org|async-1&_summary=count"}}]});
    let status = submit_async(b.post_json("", &batch));
    let (st, bundle) = json(poll(a, &status));
    assert_eq!(st, 200, "{bundle}");
    assert_eq!(bundle["entry"][0]["resource"]["id"], "ax3", "{bundle}");
    assert_eq!(bundle["entry"][1]["resource"]["total"], 6, "{bundle}");

    // Unknown ids are 404 on every node.
    outcome(b.get("__async-status/unknown").send().unwrap(), 404);
}

/// Every current resource (of `types`, or all) by `Type/id` with its `meta.versionId`, read
/// through the search API of `node` (all pages).
fn current_versions(node: &Server, types: Option<&str>) -> BTreeMap<String, String> {
    let mut url = match types {
        Some(t) => format!("?_type={t}&_count=500"),
        None => "?_count=500".to_string(),
    };
    let mut out = BTreeMap::new();
    loop {
        let (st, page) = json(
            node.client
                .get(common::search_url(node, &url))
                .send()
                .unwrap(),
        );
        assert_eq!(st, 200, "{url}: {page}");
        for e in page["entry"].as_array().into_iter().flatten() {
            let r = &e["resource"];
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            out.insert(key, r["meta"]["versionId"].as_str().unwrap().to_string());
        }
        match link(&page, "next") {
            Some(next) => url = next,
            None => return out,
        }
    }
}

/// Downloads every file of `manifest` alternately from `nodes`: `Type/id` to `versionId`,
/// asserting each line's type, the counts and that no resource repeats.
fn download_all(nodes: [&Server; 2], manifest: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, f) in manifest["output"].as_array().unwrap().iter().enumerate() {
        let node = nodes[k % 2];
        let r = node
            .get(relative(f["url"].as_str().unwrap()))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{f}");
        assert_eq!(r.headers()["content-type"], "application/fhir+ndjson");
        let body = r.bytes().unwrap();
        let mut n = 0;
        for line in body.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            let r: Value = serde_json::from_slice(line).unwrap();
            assert_eq!(r["resourceType"], f["type"], "{f}");
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            let version = r["meta"]["versionId"].as_str().unwrap().to_string();
            assert!(out.insert(key.clone(), version).is_none(), "{key} twice");
            n += 1;
        }
        assert_eq!(n, f["count"].as_u64().unwrap(), "{f}");
    }
    out
}

/// `$export` kicked off on one node: its status answered and its files downloaded on both,
/// every resource current at the kick-off exactly once, whatever is written afterwards.
fn export_across_nodes(a: &Server, b: &Server) {
    for i in 0..30 {
        put(
            a,
            &json!({"resourceType": "Patient", "id": format!("ex{i:02}")}),
        );
        for k in 0..3 {
            put(
                b,
                &observation(&format!("ex{i:02}-{k}"), &format!("ex{i:02}"), "export-1"),
            );
        }
    }
    // System level: every type.
    let expected = current_versions(a, None);
    let status = submit_async(a.get("$export"));
    // Written after the kick-off on the other node: an update, a delete and a create.
    put(
        b,
        &json!({"resourceType": "Patient", "id": "ex00", "active": false}),
    );
    assert!(
        b.delete("Observation/ex01-0")
            .send()
            .unwrap()
            .status()
            .is_success()
    );
    put(b, &json!({"resourceType": "Patient", "id": "ex-late"}));
    let r = poll(b, &status);
    assert_eq!(r.headers()["content-type"], "application/json");
    let (st, manifest) = json(r);
    assert_eq!(st, 200, "{manifest}");
    let (st, from_a) = json(a.get(&status).send().unwrap());
    assert_eq!(st, 200, "{from_a}");
    assert_eq!(
        from_a["output"].as_array().unwrap().len(),
        manifest["output"].as_array().unwrap().len()
    );
    // FHIR_OPERATION_EXPORT_MAX_FILE_RESOURCES=25: the Patients are in several files.
    let patient_files = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["type"] == "Patient")
        .count();
    assert!(patient_files >= 2, "{manifest}");
    assert_eq!(download_all([b, a], &manifest), expected);

    // Patient level on node B, downloaded from A first: the compartments of all patients.
    let expected = current_versions(b, Some("Patient,Observation"));
    let status = submit_async(b.get("Patient/$export?_type=Patient,Observation"));
    let (st, manifest) = json(poll(a, &status));
    assert_eq!(st, 200, "{manifest}");
    assert_eq!(download_all([a, b], &manifest), expected);

    // Cancelled on A: the files are gone on B too.
    let file = relative(manifest["output"][0]["url"].as_str().unwrap()).to_string();
    assert_eq!(a.delete(&status).send().unwrap().status(), 202);
    outcome(b.get(&status).send().unwrap(), 404);
    outcome(b.get(&file).send().unwrap(), 404);
}

/// `$export` kicked off on node A, which is killed (`kill -9`) while the job runs (it waits
/// `FLINT_TEST_EXPORT_PLAN_DELAY_MS` before planning) and restarted: node B answers the status
/// URL throughout (202 while A is down, then the manifest once A resumed the job at start),
/// and the files hold every Patient current at the kick-off, whatever B wrote meanwhile.
fn export_survives_a_killed_node(a: &mut Server, b: &Server) {
    for i in 0..20 {
        put(
            b,
            &json!({"resourceType": "Patient", "id": format!("kx{i:02}")}),
        );
    }
    let expected = current_versions(b, Some("Patient"));
    let status = submit_async(a.get("$export?_type=Patient"));
    a.kill();
    for _ in 0..2 {
        let r = b.get(&status).send().unwrap();
        assert_eq!(r.status(), 202, "the status while the kicking node is down");
        assert_eq!(r.headers()["x-progress"], "in-progress");
        // Written after the kick-off: not exported.
        put(
            b,
            &json!({"resourceType": "Patient", "id": "kx00", "active": false}),
        );
        put(b, &json!({"resourceType": "Patient", "id": "kx-late"}));
    }
    a.restart();
    let (st, manifest) = json(poll(b, &status));
    assert_eq!(st, 200, "{manifest}");
    assert_eq!(download_all([b, a], &manifest), expected);
    let (st, from_a) = json(a.get(&status).send().unwrap());
    assert_eq!(st, 200, "{from_a}");
    assert_eq!(from_a["transactionTime"], manifest["transactionTime"]);
}

/// `Patient/$purge` on node A: nothing of the patient on node B (read, vread, history,
/// searches, `$everything`), the other patient's record intact.
fn purge_across_nodes(a: &Server, b: &Server) {
    put(
        a,
        &json!({"resourceType": "Patient", "id": "pg1", "name": [{"family": "Purgeable"}]}),
    );
    put(
        a,
        &json!({"resourceType": "Patient", "id": "pg1", "name": [{"family": "Purgeable2"}]}),
    );
    put(
        a,
        &json!({"resourceType": "Patient", "id": "pg2", "name": [{"family": "Keeper"}]}),
    );
    for (id, p) in [("pg-o1", "pg1"), ("pg-o2", "pg1"), ("pg-o3", "pg2")] {
        put(b, &observation(id, p, "purge-1"));
    }
    put(b, &observation("pg-o1", "pg1", "purge-2"));
    let (st, h) = json(b.get("Patient/pg1/_history").send().unwrap());
    assert_eq!((st, h["total"].as_u64()), (200, Some(2)), "{h}");

    let (st, r) = json(
        a.post_json("Patient/pg1/$purge", &json!({"resourceType": "Parameters"}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{r}");
    for path in [
        "Patient/pg1",
        "Patient/pg1/_history",
        "Patient/pg1/_history/1",
        "Observation/pg-o1",
        "Observation/pg-o1/_history",
        "Observation/pg-o2",
        "Patient/pg1/$everything",
    ] {
        let st = b.get(path).send().unwrap().status();
        assert_eq!(st, 404, "node B: {path}");
    }
    // The versions of the purged resources, which no list may show.
    for path in [
        "Patient?name=Purgeable",
        "Patient?name=Purgeable2",
        "Observation?subject=Patient/pg1",
        "Observation?code=http://loinc.org|purge-1,http://loinc.org|purge-2&_count=500",
        "Observation?code=http://loinc.org|purge-1&_include=Observation:subject",
        "Patient?_has:Observation:subject:code=purge-2",
        "Patient/pg1/Observation",
        "Patient/_history?_count=500",
        "Observation/_history?_count=500",
        "_history?_count=500",
    ] {
        let (st, page) = json(b.get(path).send().unwrap());
        assert_eq!(st, 200, "node B: {path}: {page}");
        let text = page["entry"].to_string();
        for gone in ["Patient/pg1", "\"pg1\"", "pg-o1", "pg-o2", "Purgeable"] {
            assert!(!text.contains(gone), "node B: {path} shows {gone}: {text}");
        }
    }
    let (_, page) = json(
        b.get("Observation?code=http://loinc.org|purge-1&_summary=count")
            .send()
            .unwrap(),
    );
    assert_eq!(page["total"], 1, "{page}");
    let (st, o3) = json(b.get("Observation/pg-o3").send().unwrap());
    assert_eq!(
        (st, &o3["subject"]["reference"]),
        (200, &json!("Patient/pg2"))
    );
    let (st, p2) = json(b.get("Patient/pg2/$everything").send().unwrap());
    assert_eq!((st, p2["total"].as_u64()), (200, Some(2)), "{p2}");
}
