//! `Patient/[id]/$purge` and `DELETE [type]/[id]/_history` over HTTP against the real binary,
//! on every storage variant: the switches (`ENABLE_OPERATION_PATIENT_PURGE`,
//! `ENABLE_INTERACTION_DELETE_HISTORY`), a purge followed by every read path showing nothing of
//! the patient (also after a `kill -9` and restart of the standalone server), and a history
//! deletion keeping only the current version.

mod common;

use common::{Server, VARIANTS, json, outcome};
use serde_json::{Value, json};

const ON: [(&str, &str); 2] = [
    ("ENABLE_OPERATION_PATIENT_PURGE", "true"),
    ("ENABLE_INTERACTION_DELETE_HISTORY", "true"),
];

fn put(s: &Server, r: Value) {
    let path = format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    );
    let (st, b) = json(s.put_json(&path, &r).send().unwrap());
    assert!(st == 200 || st == 201, "PUT {path}: {st} {b}");
}

fn status(s: &Server, path: &str) -> u16 {
    s.get(path).send().unwrap().status().as_u16()
}

fn get(s: &Server, path: &str) -> Value {
    let (st, b) = json(s.get(path).send().unwrap());
    assert_eq!(st, 200, "GET {path}: {b}");
    b
}

fn load(s: &Server) {
    put(
        s,
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Doe"}]}),
    );
    put(
        s,
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Doelle"}]}),
    );
    put(
        s,
        json!({"resourceType": "Patient", "id": "p2", "name": [{"family": "Roe"}]}),
    );
    for (id, p) in [("o1", "p1"), ("o2", "p1"), ("o3", "p2")] {
        put(
            s,
            json!({"resourceType": "Observation", "id": id, "status": "final",
                   "code": {"text": "x"}, "subject": {"reference": format!("Patient/{p}")}}),
        );
    }
}

/// Every read path shows nothing of p1 and its observations; p2's are there.
fn nothing_of_p1(s: &Server, v: &str) {
    for path in [
        "Patient/p1",
        "Patient/p1/_history",
        "Patient/p1/_history/2",
        "Observation/o1",
        "Observation/o2/_history",
        "Patient/p1/$everything",
    ] {
        assert_eq!(status(s, path), 404, "{v}: {path}");
    }
    for path in [
        "Patient",
        "Observation",
        "_history",
        "Patient/_history",
        "Observation/_history",
        "Observation?subject=Patient/p1",
        "Observation?_include=Observation:subject",
        "Patient?_has:Observation:subject:status=final",
        "Observation?subject.name=Doe",
        "Patient/p1/Observation",
    ] {
        let b = get(s, path);
        let text = b["entry"].to_string();
        for gone in ["Patient/p1", "Observation/o1", "Observation/o2", "Doe"] {
            assert!(!text.contains(gone), "{v}: {path} shows {gone}: {text}");
        }
    }
    assert_eq!(get(s, "Observation?_summary=count")["total"], 1, "{v}");
    assert_eq!(get(s, "Patient?_summary=count")["total"], 1, "{v}");
    assert_eq!(get(s, "Observation/o3")["id"], "o3", "{v}");
}

#[test]
fn purge_and_history_deletion_over_http() {
    for v in VARIANTS {
        let mut s = Server::start(v, &ON);
        load(&s);
        let r = s.post_json("Patient/p1/$purge", &json!({"resourceType": "Parameters"}));
        let (st, b) = json(r.send().unwrap());
        assert_eq!(st, 200, "{v}: {b}");
        assert_eq!(b["resourceType"], "OperationOutcome", "{v}");
        nothing_of_p1(&s, v);
        let issue = outcome(
            s.post_json("Patient/p1/$purge", &json!({"resourceType": "Parameters"}))
                .send()
                .unwrap(),
            404,
        );
        assert_eq!(issue["code"], "not-found", "{v}");

        // History deletion.
        put(
            &s,
            json!({"resourceType": "Patient", "id": "p2", "name": [{"family": "Roe2"}]}),
        );
        assert_eq!(get(&s, "Patient/p2/_history")["total"], 2, "{v}");
        let r = s.delete("Patient/p2/_history").send().unwrap();
        assert_eq!(r.status().as_u16(), 204, "{v}");
        let h = get(&s, "Patient/p2/_history");
        assert_eq!(h["total"], 1, "{v}");
        let vid = h["entry"][0]["resource"]["meta"]["versionId"]
            .as_str()
            .unwrap()
            .to_string();
        for older in 1..vid.parse::<u64>().unwrap() {
            assert_eq!(
                status(&s, &format!("Patient/p2/_history/{older}")),
                404,
                "{v}: vread {older}"
            );
        }
        assert_eq!(get(&s, "Patient?name=Roe2")["total"], 1, "{v}");

        if v == "standalone" {
            s.kill_and_restart();
            nothing_of_p1(&s, v);
            assert_eq!(
                get(&s, "Patient/p2/_history")["total"],
                1,
                "{v} after restart"
            );
        }
    }
}

#[test]
fn switched_off_they_answer_400_naming_the_variable() {
    let s = Server::start("in-memory", &[]);
    load(&s);
    let issue = outcome(
        s.post_json("Patient/p1/$purge", &json!({"resourceType": "Parameters"}))
            .send()
            .unwrap(),
        400,
    );
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ENABLE_OPERATION_PATIENT_PURGE"),
        "{issue}"
    );
    let issue = outcome(s.delete("Patient/p1/_history").send().unwrap(), 400);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ENABLE_INTERACTION_DELETE_HISTORY"),
        "{issue}"
    );
    assert_eq!(get(&s, "Patient/p1/_history")["total"], 2);
}
