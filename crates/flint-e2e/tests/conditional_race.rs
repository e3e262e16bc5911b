//! Conditional writes racing each other over HTTP against the real binary: 50 identical
//! conditional creates (`If-None-Exist`) and 50 identical conditional updates fired at once
//! leave exactly one resource, because the indexer evaluates each write's condition again in
//! log order (issue 19), also inside transaction Bundles; conditional deletes racing creates
//! of matching resources delete exactly what matched at their place in the log. Across two
//! distributed nodes: `distributed.rs`.

mod common;

use common::{Server, VARIANTS, json};
use serde_json::{Value, json};
use std::sync::{Arc, Barrier};

const RACERS: usize = 50;

/// Runs `request` from `RACERS` threads released together; their statuses and bodies.
fn race(
    s: &Arc<Server>,
    request: impl Fn(&Server, usize) -> reqwest::blocking::RequestBuilder + Send + Sync + 'static,
) -> Vec<(u16, Value)> {
    let request = Arc::new(request);
    let barrier = Arc::new(Barrier::new(RACERS));
    let threads: Vec<_> = (0..RACERS)
        .map(|i| {
            let (s, barrier, request) = (s.clone(), barrier.clone(), request.clone());
            std::thread::spawn(move || {
                let r = request(&s, i);
                barrier.wait();
                json(r.send().expect("response"))
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn ids_with_identifier(s: &Server, system: &str) -> Vec<String> {
    let (status, b) = json(
        s.get(&format!("Patient?identifier={system}|1&_count=100"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{b}");
    b["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn patient(system: &str, i: usize) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": "1"}],
        "birthDate": format!("1970-01-{:02}", 1 + i % 28),
    })
}

#[test]
fn concurrent_conditional_creates_create_once() {
    for storage in VARIANTS {
        let s = Arc::new(Server::start(storage, &[]));
        let system = "http://example.org/race-create";
        let answers = race(&s, move |s, i| {
            s.post_json("Patient", &patient(system, i))
                .header("If-None-Exist", format!("identifier={system}|1"))
        });
        let created = answers.iter().filter(|(st, _)| *st == 201).count();
        assert!(
            answers.iter().all(|(st, _)| *st == 200 || *st == 201),
            "{storage}: every racer is answered with the resource: {:?}",
            answers.iter().map(|(st, _)| st).collect::<Vec<_>>()
        );
        assert_eq!(created, 1, "{storage}: exactly one create");
        let ids = ids_with_identifier(&s, system);
        assert_eq!(ids.len(), 1, "{storage}: one resource: {ids:?}");
        assert!(
            answers.iter().all(|(_, b)| b["id"] == ids[0].as_str()),
            "{storage}: every answer is the one resource"
        );
    }
}

#[test]
fn concurrent_conditional_updates_create_once() {
    for storage in VARIANTS {
        let s = Arc::new(Server::start(storage, &[]));
        let system = "http://example.org/race-update";
        let answers = race(&s, move |s, i| {
            s.put_json(
                &format!("Patient?identifier={system}|1"),
                &patient(system, i),
            )
        });
        assert!(
            answers.iter().all(|(st, _)| *st == 200 || *st == 201),
            "{storage}: every racer writes: {:?}",
            answers
                .iter()
                .map(|(st, b)| (st, b.to_string()))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            answers.iter().filter(|(st, _)| *st == 201).count(),
            1,
            "{storage}: exactly one create, the others update it"
        );
        let ids = ids_with_identifier(&s, system);
        assert_eq!(ids.len(), 1, "{storage}: one resource: {ids:?}");
    }
}

#[test]
fn concurrent_conditional_creates_in_transactions_create_once() {
    let s = Arc::new(Server::start("standalone", &[]));
    let system = "http://example.org/race-transaction";
    let answers = race(&s, move |s, i| {
        s.post_json(
            "",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": "urn:uuid:4a3b1f6e-0000-4000-8000-000000000001",
                 "resource": patient(system, i),
                 "request": {"method": "POST", "url": "Patient",
                             "ifNoneExist": format!("identifier={system}|1")}},
                {"resource": {"resourceType": "Observation", "status": "final",
                              "code": {"text": format!("racer {i}")},
                              "subject": {"reference": "urn:uuid:4a3b1f6e-0000-4000-8000-000000000001"}},
                 "request": {"method": "POST", "url": "Observation"}}
            ]}),
        )
    });
    assert!(
        answers.iter().all(|(st, _)| *st == 200),
        "every transaction commits: {:?}",
        answers
            .iter()
            .map(|(st, b)| (st, b.to_string()))
            .collect::<Vec<_>>()
    );
    let ids = ids_with_identifier(&s, system);
    assert_eq!(ids.len(), 1, "one Patient: {ids:?}");
    // Every racer's Observation points at that one Patient.
    let (_, b) = json(
        s.get(&format!(
            "Observation?subject=Patient/{}&_summary=count",
            ids[0]
        ))
        .send()
        .unwrap(),
    );
    assert_eq!(b["total"], RACERS, "{b}");
}

/// The `t` of each version of `Patient/{id}`, oldest first, with the method that wrote it.
fn versions(s: &Server, id: &str) -> Vec<(u64, String)> {
    let (st, b) = json(s.get(&format!("Patient/{id}/_history")).send().unwrap());
    assert_eq!(st, 200, "{b}");
    let mut out: Vec<(u64, String)> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let etag = e["response"]["etag"].as_str().unwrap();
            let t = etag
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse()
                .unwrap();
            (t, e["request"]["method"].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn conditional_deletes_racing_creates_delete_what_matched_at_their_place_in_the_log() {
    for storage in VARIANTS {
        let s = Arc::new(Server::start(storage, &[("ALLOW_MULTIPLE_DELETE", "true")]));
        let system = "http://example.org/race-delete";
        // Matching Patients written before the race: whichever delete comes first in the log
        // finds them (the racers' own creates may all land after every delete).
        let mut created = Vec::new();
        for i in 0..3 {
            let (st, b) = json(s.post_json("Patient", &patient(system, i)).send().unwrap());
            assert_eq!(st, 201, "{storage}: {b}");
            created.push(b["id"].as_str().unwrap().to_string());
        }
        // Racers alternate: creates of matching Patients and conditional deletes of them all.
        let answers = race(&s, move |s, i| {
            if i % 5 == 4 {
                s.client
                    .delete(s.url(&format!("Patient?identifier={system}|1")))
            } else {
                s.post_json("Patient", &patient(system, i))
            }
        });
        let mut deleted_without_conflict = false;
        for (i, (st, b)) in answers.iter().enumerate() {
            if i % 5 == 4 {
                // Creates landing in a delete's window again and again may exhaust its
                // retries: 409, and it deleted nothing (the history check below).
                assert!(
                    *st == 204 || (*st == 409 && b["issue"][0]["code"] == "conflict"),
                    "{storage}: a conditional delete: {st} {b}"
                );
                deleted_without_conflict |= *st == 204;
            } else {
                assert_eq!(*st, 201, "{storage}: {b}");
                created.push(b["id"].as_str().unwrap().to_string());
            }
        }
        // Every delete transaction's `t`, from the deletions it recorded.
        let history: Vec<(String, Vec<(u64, String)>)> = created
            .iter()
            .map(|id| (id.clone(), versions(&s, id)))
            .collect();
        let deletes: std::collections::BTreeSet<u64> = history
            .iter()
            .flat_map(|(_, vs)| vs.iter().filter(|(_, m)| m == "DELETE").map(|(t, _)| *t))
            .collect();
        assert!(deleted_without_conflict, "{storage}: every delete gave up");
        assert!(
            !deletes.is_empty(),
            "{storage}: the first delete found the Patients written before the race"
        );
        for (id, vs) in &history {
            let created_t = vs[0].0;
            assert_eq!(vs[0].1, "POST", "{storage}: {id} {vs:?}");
            // The first delete after the create must have found and deleted it; with no
            // delete after it, it lives.
            let expected: Vec<(u64, String)> = std::iter::once(vs[0].clone())
                .chain(
                    deletes
                        .range(created_t + 1..)
                        .next()
                        .map(|t| (*t, "DELETE".to_string())),
                )
                .collect();
            assert_eq!(
                vs, &expected,
                "{storage}: Patient/{id} created at {created_t}, deletes at {deletes:?}"
            );
        }
        let live = ids_with_identifier(&s, system);
        let expected_live: Vec<&String> = history
            .iter()
            .filter(|(_, vs)| vs.len() == 1)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(live.len(), expected_live.len(), "{storage}: {live:?}");
    }
}
