//! `STORAGE=distributed` against a real Apache Kafka broker and a real Apache Cassandra node
//! started by `scripts/services.sh`: two Flint nodes share one log and one resource store; a
//! write on one node is read at once on the other; concurrent writers on both produce one
//! history; a measure stored on one node evaluates on the other; a killed node resumes, and a
//! node with a wiped index rebuilds it from the log.

mod common;
#[path = "common/measure.rs"]
mod measure;
#[path = "common/services.rs"]
mod services;

use common::{Server, json, link};
use measure::{check_bp_report, load_bp};
use serde_json::json;
use services::{Options, Services};
use std::path::Path;

/// A node writing its transactions with Kafka compression `compression`; nodes with different
/// codecs read each other's records.
fn start_node(services: &Services, dir: &Path, compression: &str) -> Server {
    let env = services.node_env("ONE");
    let index = dir.join("index").display().to_string();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("INDEX_DB_DIR", &index));
    all.push(("DB_KAFKA_COMPRESSION_TYPE", compression));
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
            extra: Vec::new(),
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
            ssl: false,
        },
    );
    storage_contracts(&services);
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = start_node(&services, &a_dir, "zstd");
    let mut b = start_node(&services, &b_dir, "snappy");

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
    let b = start_node(&services, &b_dir, "lz4");
    let (_, hb2) = json(b.get("Patient/shared/_history?_count=100").send().unwrap());
    assert_eq!(strip(hb2), strip(hb));
    assert_eq!(b.get("Patient/p2").send().unwrap().status(), 200);
}
