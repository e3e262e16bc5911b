//! `STORAGE=distributed` against a real Apache Kafka broker and a real Apache Cassandra node
//! started by `scripts/services.sh`: two Flint nodes share one log and one resource store; a
//! write on one node is read at once on the other; concurrent writers on both produce one
//! history; a killed node resumes, and a node with a wiped index rebuilds it from the log.

mod common;

use common::{Server, json};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Services {
    env: Vec<(String, String)>,
}

impl Services {
    fn run(&self, args: &[&str]) {
        let st = Command::new("bash")
            .arg(repo().join("scripts/services.sh"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .status()
            .expect("run scripts/services.sh");
        assert!(st.success(), "scripts/services.sh {args:?} failed");
    }

    fn start(data: &Path) -> Services {
        let s = Services {
            env: vec![
                ("SERVICES_DATA".into(), data.display().to_string()),
                ("KAFKA_PORT".into(), free_port().to_string()),
                ("KAFKA_CONTROLLER_PORT".into(), free_port().to_string()),
                ("CASSANDRA_PORT".into(), free_port().to_string()),
                ("CASSANDRA_STORAGE_PORT".into(), free_port().to_string()),
            ],
        };
        s.run(&["kafka", "start"]);
        s.run(&["topic", "flint-tx"]);
        s.run(&["cassandra", "start"]);
        s.run(&["keyspace", "flint", "1"]);
        s
    }

    fn port(&self, name: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == name).unwrap().1
    }

    fn node_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "DB_KAFKA_BOOTSTRAP_SERVERS",
                format!("127.0.0.1:{}", self.port("KAFKA_PORT")),
            ),
            (
                "DB_CASSANDRA_CONTACT_POINTS",
                format!("127.0.0.1:{}", self.port("CASSANDRA_PORT")),
            ),
            ("DB_CASSANDRA_PUT_CONSISTENCY_LEVEL", "ONE".into()),
        ]
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.run(&["stop"]);
    }
}

fn start_node(services: &Services, dir: &Path) -> Server {
    let env = services.node_env();
    let index = dir.join("index").display().to_string();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("INDEX_DB_DIR", &index));
    Server::start_in("distributed", None, &all)
}

#[test]
fn two_nodes_share_one_log_and_store() {
    let tmp = tempfile::tempdir().unwrap();
    let services = Services::start(&tmp.path().join("services"));
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = start_node(&services, &a_dir);
    let mut b = start_node(&services, &b_dir);

    // A write on one node is visible on the other at once (reads sync to the log end).
    let r = a
        .put_json(
            "Patient/p1",
            &json!({"resourceType": "Patient", "id": "p1", "active": true}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let (st, v) = json(b.get("Patient/p1").send().unwrap());
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
    let b = start_node(&services, &b_dir);
    let (_, hb2) = json(b.get("Patient/shared/_history?_count=100").send().unwrap());
    assert_eq!(strip(hb2), strip(hb));
    assert_eq!(b.get("Patient/p2").send().unwrap().status(), 200);
}
