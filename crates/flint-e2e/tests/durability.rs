//! Durability and operations of the standalone variant against the real binary: acknowledged
//! writes survive `kill -9` mid-load, a deleted index is rebuilt to the same database, SIGTERM
//! shuts down gracefully, metrics are exported.

mod common;

use common::{Server, json};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn acknowledged_writes_survive_kill_9_mid_load() {
    let mut s = Server::start("standalone", &[]);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let base = s.base.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("w{w}-{i}");
                let body = if i % 3 == 0 {
                    // Every third write is a transaction bundle of two resources.
                    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                        {"resource": {"resourceType": "Patient", "id": id, "active": true}, "request": {"method": "PUT", "url": format!("Patient/{id}")}},
                        {"resource": {"resourceType": "Observation", "id": id, "status": "final", "code": {"text": "x"}, "subject": {"reference": format!("Patient/{id}")}}, "request": {"method": "PUT", "url": format!("Observation/{id}")}},
                    ]})
                } else {
                    json!({"resourceType": "Patient", "id": id, "active": true})
                };
                let url = if i % 3 == 0 { base.clone() } else { format!("{base}/Patient/{id}") };
                let req = if i % 3 == 0 { client.post(url) } else { client.put(url) };
                match req.header("content-type", "application/fhir+json").body(body.to_string()).send() {
                    Ok(r) if r.status().is_success() => {
                        let mut a = acked.lock().unwrap();
                        a.push(("Patient".into(), id.clone()));
                        if i % 3 == 0 {
                            a.push(("Observation".into(), id.clone()));
                        }
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => break,
                }
                i += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let _ = s.child.kill(); // SIGKILL while writes are in flight
    let _ = s.child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the load ran ({} acknowledged writes)",
        acked.len()
    );

    s.kill_and_restart();
    for (ty, id) in &acked {
        let r = s.get(&format!("{ty}/{id}")).send().unwrap();
        assert_eq!(r.status(), 200, "acknowledged {ty}/{id} lost after kill -9");
    }
    // The restarted server keeps working and its history is consistent.
    let (_, hist) = json(s.get("_history?_count=1").send().unwrap());
    assert!(hist["total"].as_u64().unwrap() >= acked.len() as u64);
    assert_eq!(
        s.put_json(
            "Patient/after",
            &json!({"resourceType": "Patient", "id": "after"})
        )
        .send()
        .unwrap()
        .status(),
        201
    );
}

#[test]
fn deleted_index_is_rebuilt_to_the_same_database() {
    let mut s = Server::start("standalone", &[]);
    for i in 0..20 {
        let id = format!("r{i}");
        s.put_json(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id, "active": i % 2 == 0}),
        )
        .send()
        .unwrap();
    }
    s.put_json(
        "Patient/r1",
        &json!({"resourceType": "Patient", "id": "r1", "gender": "other"}),
    )
    .send()
    .unwrap();
    s.delete("Patient/r2").send().unwrap();
    let _ = s
        .put_json(
            "Patient/r3",
            &json!({"resourceType": "Patient", "id": "r3"}),
        )
        .header("if-match", "W/\"9999\"")
        .send();
    let (_, before) = json(s.get("_history?_count=1000").send().unwrap());
    let (_, r1_before) = json(s.get("Patient/r1").send().unwrap());

    let _ = s.child.kill();
    let _ = s.child.wait();
    std::fs::remove_dir_all(s.data.as_ref().unwrap().join("index")).unwrap();
    s.kill_and_restart();

    let (_, after) = json(s.get("_history?_count=1000").send().unwrap());
    let strip = |mut v: serde_json::Value| {
        // Links carry the same t; compare the whole bundles.
        v["link"] = json!(null);
        v
    };
    assert_eq!(strip(before), strip(after));
    let (_, r1_after) = json(s.get("Patient/r1").send().unwrap());
    assert_eq!(r1_before, r1_after);
    assert_eq!(s.get("Patient/r2").send().unwrap().status(), 410);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut s = Server::start("standalone", &[]);
    s.put_json("Patient/t", &json!({"resourceType": "Patient", "id": "t"}))
        .send()
        .unwrap();
    let pid = s.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn prometheus_metrics_count_requests_per_interaction() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Server::start("in-memory", &[("METRICS_SERVER_PORT", &port.to_string())]);
    s.get("metadata").send().unwrap();
    s.get("Patient/x").send().unwrap();
    let text = s
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("http_fhir_requests_total"), "{text}");
    assert!(text.contains("interaction=\"read\""), "{text}");
    assert!(
        text.contains("http_fhir_request_duration_seconds"),
        "{text}"
    );
}
