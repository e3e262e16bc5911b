//! Asynchronous requests against the real binary: `Prefer: respond-async` answered 202 with a
//! status URL; the result is computed at the request's `t`; a cancel stops it; jobs and their
//! results live in the admin database and survive `kill -9` (standalone: a request running
//! when the process dies runs again after the restart).

mod common;

use common::{Server, VARIANTS, json, outcome};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Sends `req` with `Prefer: respond-async` and returns the status URL of the 202 answer.
fn submit(req: reqwest::blocking::RequestBuilder) -> String {
    let r = req.header("prefer", "respond-async").send().unwrap();
    let headers = r.headers().clone();
    let (st, body) = json(r);
    assert_eq!(st, 202, "{body}");
    let url = headers["content-location"].to_str().unwrap().to_string();
    assert!(url.contains("/__async-status/"), "{url}");
    url
}

/// Polls the status URL until it is no longer 202; its status and body.
fn wait(s: &Server, url: &str) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = s.client.get(url).send().unwrap();
        if r.status() != 202 {
            return json(r);
        }
        assert_eq!(r.headers()["x-progress"], "in-progress");
        assert!(Instant::now() < deadline, "{url} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn put_patient(s: &Server, id: &str, gender: &str) {
    let p = json!({"resourceType": "Patient", "id": id, "gender": gender});
    let st = s
        .put_json(&format!("Patient/{id}"), &p)
        .send()
        .unwrap()
        .status();
    assert!(st.is_success(), "{st}");
}

/// `$cql` of an expression of millions of steps (about a second), whose value is 1200.
fn slow_cql() -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "expression", "valueString":
        "Count((expand Interval[1, 1200]) A where Count((expand Interval[1, 1200]) B where B = A) = 1)"}]})
}

#[test]
fn async_requests_answer_at_their_t_and_cancel() {
    for v in VARIANTS {
        let s = Server::start(v, &[("ENABLE_OPERATION_CQL", "true")]);
        for i in 0..4 {
            put_patient(&s, &format!("f{i}"), "female");
        }
        let url = submit(s.get("Patient?gender=female&_summary=count"));
        for i in 4..7 {
            put_patient(&s, &format!("f{i}"), "female");
        }
        let (st, b) = wait(&s, &url);
        assert_eq!(st, 200, "{v}: {b}");
        assert_eq!(b["type"], "batch-response");
        assert_eq!(b["entry"][0]["resource"]["total"], 4, "{v}: {b}");
        // Finished: a cancel is a conflict.
        outcome(s.client.delete(&url).send().unwrap(), 409);

        // A batch Bundle runs asynchronously as a whole.
        let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": "Patient/f0"}},
            {"request": {"method": "GET", "url": "Patient?_summary=count"}}]});
        let url = submit(s.post_json("", &batch));
        let (st, b) = wait(&s, &url);
        assert_eq!(st, 200);
        assert_eq!(b["entry"][0]["resource"]["id"], "f0", "{b}");
        assert_eq!(b["entry"][1]["resource"]["total"], 7, "{b}");

        // Cancelled while running: 202, then the status is gone.
        let url = submit(s.post_json("$cql", &slow_cql()));
        let r = s.client.delete(&url).send().unwrap();
        if r.status() == 202 {
            outcome(s.client.get(&url).send().unwrap(), 404);
        } else {
            // It had finished already (a fast machine): then it could not be cancelled.
            assert_eq!(r.status(), 409, "{v}");
        }
        outcome(
            s.client
                .get(format!("{}/__async-status/nope", s.base))
                .send()
                .unwrap(),
            404,
        );
    }
}

#[test]
fn a_running_request_survives_kill_9() {
    let mut s = Server::start("standalone", &[("ENABLE_OPERATION_CQL", "true")]);
    put_patient(&s, "p0", "male");
    let url = submit(s.post_json("$cql", &slow_cql()));
    let running = s.client.get(&url).send().unwrap().status() == 202;
    s.kill_and_restart();
    println!(
        "killed while the request was {}",
        if running { "running" } else { "done" }
    );
    let (st, b) = wait(&s, &url);
    assert_eq!(st, 200, "{b}");
    let entry = &b["entry"][0];
    assert_eq!(entry["response"]["status"], "200", "{b}");
    assert_eq!(
        entry["resource"]["parameter"][0]["valueInteger"], 1200,
        "{b}"
    );
    // The finished request survives another kill -9 too.
    s.kill_and_restart();
    let (st, again) = json(s.client.get(&url).send().unwrap());
    assert_eq!((st, &again), (200, &b));
}
