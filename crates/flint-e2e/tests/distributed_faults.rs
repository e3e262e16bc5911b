//! Jepsen-style test of `STORAGE=distributed` with real processes: three Flint nodes (two talk
//! to Kafka over SSL with client certificates, PEM and PKCS#12; one over PLAINTEXT), one Kafka
//! broker, and a three-node Cassandra cluster with replication factor 3 and writes at QUORUM.
//!
//! Clients spread over the nodes read and write single-resource registers while a nemesis
//! injects faults one after another: `kill -9` of a Flint node and its restart, a restart of the
//! Kafka broker, the stop of one Cassandra node, and a network partition of one Flint node
//! (iptables drops its packets to Kafka and Cassandra; the node runs in its own group so the
//! rule matches only it). Afterwards every node must have recovered by itself, hold every
//! acknowledged write exactly once, agree on one history, and the recorded history must be
//! linearizable.

mod common;
#[path = "common/linearizability.rs"]
mod linearizability;
#[path = "common/services.rs"]
mod services;

use common::{Server, json};
use linearizability::{Event, Op, Outcome, Verdict};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use services::{Options, Services};
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Group id of the node that gets partitioned (matched by the iptables owner rule).
const PARTITIONED_GID: u32 = 4242;
/// Registers (resources Patient/reg-0 … reg-{KEYS-1}).
const KEYS: u64 = 3;
/// Clients per node.
const CLIENTS_PER_NODE: usize = 3;
/// Longest a client waits for an answer; the server must always answer before it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

struct Firewall {
    rules: Vec<Vec<String>>,
}

impl Firewall {
    fn iptables(args: &[String]) {
        let out = Command::new("iptables")
            .args(args)
            .output()
            .expect("iptables");
        assert!(
            out.status.success(),
            "iptables {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Drops every packet the partitioned node's sockets send to `ports` on loopback.
    fn partition(ports: &[&str]) -> Firewall {
        let rules: Vec<Vec<String>> = ports
            .iter()
            .map(|p| {
                format!(
                    "OUTPUT -m owner --gid-owner {PARTITIONED_GID} -p tcp -d 127.0.0.0/8 --dport {p} -j DROP"
                )
                .split(' ')
                .map(str::to_string)
                .collect()
            })
            .collect();
        for r in &rules {
            let mut args = vec!["-I".to_string()];
            args.extend(r.iter().cloned());
            Firewall::iptables(&args);
        }
        Firewall { rules }
    }

    fn heal(&mut self) {
        for r in self.rules.drain(..) {
            let mut args = vec!["-D".to_string()];
            args.extend(r);
            Firewall::iptables(&args);
        }
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        self.heal();
    }
}

fn register(v: Option<u64>, key: u64) -> Value {
    let mut p = json!({"resourceType": "Patient", "id": format!("reg-{key}")});
    if let Some(v) = v {
        p["multipleBirthInteger"] = json!(v);
    }
    p
}

/// One client: reads and writes random registers on one node until `stop`.
fn client(
    id: usize,
    base: String,
    start: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Event>>>,
) {
    let http = Client::builder().timeout(CLIENT_TIMEOUT).build().unwrap();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        let key = next() % KEYS;
        let write = next() % 10 < 4;
        let url = format!("{base}/Patient/reg-{key}");
        let invoke = start.elapsed().as_nanos() as u64;
        let (op, outcome) = if write {
            seq += 1;
            let v = (id as u64 + 1) * 1_000_000 + seq;
            let r = http
                .put(&url)
                .header("content-type", "application/fhir+json")
                .body(register(Some(v), key).to_string())
                .send();
            let outcome = match r {
                Ok(r) if r.status().is_success() => Outcome::Ok(None),
                Ok(r) if r.status().is_client_error() => {
                    panic!("write {v} answered {}: {:?}", r.status(), r.text())
                }
                // Refused before sending (the node is down): the write cannot have happened.
                Err(e) if e.is_connect() => {
                    std::thread::sleep(Duration::from_millis(50));
                    Outcome::Failed
                }
                Ok(r) => {
                    assert_eq!(r.status(), 503, "write {v}: {:?}", r.text());
                    Outcome::Unknown
                }
                Err(e) => {
                    assert!(
                        !e.is_timeout(),
                        "write {v}: no answer within {CLIENT_TIMEOUT:?}"
                    );
                    Outcome::Unknown
                }
            };
            (Op::Write(v), outcome)
        } else {
            let outcome = match http.get(&url).send() {
                Err(e) if e.is_connect() => {
                    std::thread::sleep(Duration::from_millis(50));
                    Outcome::Failed
                }
                Ok(r) if r.status() == 404 => Outcome::Ok(None),
                Ok(r) if r.status() == 200 => {
                    let v: Value = r.json().unwrap();
                    Outcome::Ok(v["multipleBirthInteger"].as_u64())
                }
                Ok(r) => {
                    assert_eq!(r.status(), 503, "read: {:?}", r.text());
                    Outcome::Unknown
                }
                Err(e) => {
                    assert!(!e.is_timeout(), "read: no answer within {CLIENT_TIMEOUT:?}");
                    Outcome::Unknown
                }
            };
            (Op::Read, outcome)
        };
        let complete = start.elapsed().as_nanos() as u64;
        history.lock().unwrap().push(Event {
            process: id,
            key,
            op,
            invoke_ns: invoke,
            complete_ns: complete,
            outcome,
        });
    }
}

/// Waits until `/health?detail` of every node says UP and caught up with the log.
fn wait_healthy(nodes: &[&Server], within: Duration) {
    let deadline = Instant::now() + within;
    for n in nodes {
        loop {
            let (st, h) = n.health_detail();
            if st == 200 && h["node"]["lag_transactions"] == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not recover: {h}",
                n.port
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Successful writes per node in the window `[from, to)` of the history.
fn acked_writes_between(history: &[Event], from: u64, to: u64, clients: &[usize]) -> usize {
    history
        .iter()
        .filter(|e| {
            matches!(e.op, Op::Write(_))
                && e.outcome == Outcome::Ok(None)
                && e.invoke_ns >= from
                && e.invoke_ns < to
                && clients.contains(&e.process)
        })
        .count()
}

#[test]
fn registers_stay_linearizable_under_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let services = Services::start(
        &tmp.path().join("services"),
        Options {
            cassandra_nodes: 3,
            replication: 3,
            ssl: true,
        },
    );
    services.run(&["iptables"]);
    let node_env = |env: Vec<(&'static str, String)>, dir: &str| {
        let mut env = env;
        env.push((
            "INDEX_DB_DIR",
            tmp.path().join(dir).join("index").display().to_string(),
        ));
        env.push(("DB_SYNC_TIMEOUT", "5000".into()));
        env.push(("DB_KAFKA_DELIVERY_TIMEOUT", "8000".into()));
        env.push(("DB_CASSANDRA_REQUEST_TIMEOUT", "3000".into()));
        env
    };
    let start_node = |env: &[(&'static str, String)], gid| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start_as("distributed", None, &env, gid)
    };
    let env_a = node_env(services.node_env_ssl("QUORUM", false), "a");
    let env_b = node_env(services.node_env_ssl("QUORUM", true), "b");
    let env_c = node_env(services.node_env("QUORUM"), "c");
    let a = start_node(&env_a, None);
    let mut b = start_node(&env_b, None);
    let c = start_node(&env_c, Some(PARTITIONED_GID));

    // A write on one node is read at once on the others.
    let r = a
        .put_json("Patient/reg-0", &register(Some(1), 0))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    for n in [&b, &c] {
        let (st, v) = json(n.get("Patient/reg-0").send().unwrap());
        assert_eq!((st, &v["multipleBirthInteger"]), (200, &json!(1)), "{v}");
    }

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    for (n, base) in bases.iter().enumerate() {
        for k in 0..CLIENTS_PER_NODE {
            let id = n * CLIENTS_PER_NODE + k;
            let (base, stop, history) = (base.clone(), stop.clone(), history.clone());
            workers.push(std::thread::spawn(move || {
                client(id, base, start, stop, history)
            }));
        }
    }
    let now = || start.elapsed().as_nanos() as u64;
    let pause = |s: u64| std::thread::sleep(Duration::from_secs(s));
    let mut windows: Vec<(&str, u64, u64)> = Vec::new();

    pause(5);
    // 1. kill -9 of Flint node B, restart after 3 s.
    let t0 = now();
    b.kill();
    pause(3);
    b.restart();
    windows.push(("kill -9 of node B", t0, now()));
    pause(5);

    // 2. Restart of the Kafka broker.
    let t0 = now();
    services.run(&["kafka", "stop"]);
    pause(3);
    services.run(&["kafka", "start"]);
    windows.push(("Kafka restart", t0, now()));
    pause(5);

    // 3. One Cassandra node of three stops: QUORUM writes go on.
    let t0 = now();
    services.run(&["cassandra", "stop-node", "3"]);
    let down = now();
    pause(10);
    let up = now();
    services.run(&["cassandra", "start-node", "3"]);
    windows.push(("Cassandra node 3 down", t0, now()));
    pause(5);

    // 4. Network partition of node C from Kafka and Cassandra for 15 s.
    let t0 = now();
    let mut fw =
        Firewall::partition(&[services.port("KAFKA_PORT"), services.port("CASSANDRA_PORT")]);
    pause(15);
    fw.heal();
    windows.push(("partition of node C", t0, now()));

    // Every node recovers by itself; then a last stretch of normal operation.
    wait_healthy(&[&a, &b, &c], Duration::from_secs(120));
    let calm = now();
    pause(5);
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().expect("client thread");
    }
    let end = now();
    let history = Arc::try_unwrap(history).unwrap().into_inner().unwrap();

    // What happened, for the log.
    let count = |f: &dyn Fn(&Event) -> bool| history.iter().filter(|e| f(e)).count();
    let writes = count(&|e| matches!(e.op, Op::Write(_)));
    let acked = count(&|e| matches!(e.op, Op::Write(_)) && e.outcome == Outcome::Ok(None));
    let unknown = count(&|e| e.outcome == Outcome::Unknown);
    println!(
        "{} operations: {writes} writes ({acked} acknowledged), {unknown} with unknown outcome",
        history.len()
    );
    let mut phases = vec![("start", 0, windows[0].1)];
    for (i, w) in windows.iter().enumerate() {
        phases.push(*w);
        let next = windows.get(i + 1).map_or(calm, |n| n.1);
        phases.push(("between", w.2, next));
    }
    phases.push(("recovered", calm, end));
    println!("phase                     from     to  acked writes  unknown writes  unknown reads");
    for (name, from, to) in &phases {
        let inside = |e: &&Event| e.invoke_ns >= *from && e.invoke_ns < *to;
        let n = |f: &dyn Fn(&Event) -> bool| history.iter().filter(inside).filter(|e| f(e)).count();
        println!(
            "{name:<24} {:>6.1} {:>6.1} {:>13} {:>15} {:>14}",
            *from as f64 / 1e9,
            *to as f64 / 1e9,
            n(&|e| matches!(e.op, Op::Write(_)) && e.outcome == Outcome::Ok(None)),
            n(&|e| matches!(e.op, Op::Write(_)) && e.outcome == Outcome::Unknown),
            n(&|e| e.op == Op::Read && e.outcome == Outcome::Unknown),
        );
    }

    // With one Cassandra node of three down, QUORUM writes still succeed.
    assert!(
        acked_writes_between(&history, down, up, &(0..9).collect::<Vec<_>>()) > 0,
        "no write succeeded while one Cassandra node was down"
    );
    // After the faults every node takes writes again (recovery without a restart).
    for (n, name) in ["A", "B", "C"].iter().enumerate() {
        let clients: Vec<usize> = (n * CLIENTS_PER_NODE..(n + 1) * CLIENTS_PER_NODE).collect();
        assert!(
            acked_writes_between(&history, calm, end, &clients) > 0,
            "node {name} acknowledged no write after recovering"
        );
    }

    // Every acknowledged write is in every node's history exactly once; the nodes agree.
    let mut acked_values: HashMap<u64, Vec<u64>> = HashMap::new();
    for e in &history {
        if let (Op::Write(v), Outcome::Ok(None)) = (&e.op, &e.outcome) {
            acked_values.entry(e.key).or_default().push(*v);
        }
    }
    for key in 0..KEYS {
        let mut reference: Option<Vec<Value>> = None;
        for n in [&a, &b, &c] {
            let (st, h) = json(
                n.get(&format!("Patient/reg-{key}/_history?_count=10000"))
                    .send()
                    .unwrap(),
            );
            assert_eq!(st, 200, "{h}");
            let versions: Vec<Value> = h["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| json!([e["resource"], e["response"]]))
                .collect();
            let mut times: BTreeMap<u64, usize> = BTreeMap::new();
            for v in &versions {
                if let Some(x) = v[0]["multipleBirthInteger"].as_u64() {
                    *times.entry(x).or_default() += 1;
                }
            }
            for v in acked_values.get(&key).into_iter().flatten() {
                assert_eq!(
                    times.get(v).copied(),
                    Some(1),
                    "acknowledged write {v} of reg-{key} on node {}",
                    n.port
                );
            }
            assert!(
                times.values().all(|&k| k == 1),
                "a write applied twice on reg-{key}"
            );
            match &reference {
                None => reference = Some(versions),
                Some(r) => assert_eq!(r, &versions, "nodes disagree on reg-{key}"),
            }
        }
    }

    // The history is linearizable (the write before the run is the initial value of reg-0).
    let mut checked = history;
    checked.insert(
        0,
        Event {
            process: usize::MAX,
            key: 0,
            op: Op::Write(1),
            invoke_ns: 0,
            complete_ns: 0,
            outcome: Outcome::Ok(None),
        },
    );
    match linearizability::check(&checked, None, 200_000_000) {
        Verdict::Linearizable { ops_checked } => {
            println!("linearizable: {ops_checked} operations checked")
        }
        v => panic!("{v:?}"),
    }
    drop(fw);
}
