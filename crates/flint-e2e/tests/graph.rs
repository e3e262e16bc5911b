//! `[type]/[id]/$graph` over HTTP against the real binary, on the in-memory and standalone
//! variants: with `ENABLE_OPERATION_GRAPH=true` a stored GraphDefinition (Patient →
//! Observations by `patient={ref}` → their Encounter by path) yields exactly the resources
//! the test wrote for that patient; without the variable the operation is refused.

mod common;

use common::{Server, VARIANTS, json};
use serde_json::{Value, json};

const URL: &str = "http://example.org/GraphDefinition/patient-observations";

fn put(s: &Server, v: &Value) {
    let path = format!(
        "{}/{}",
        v["resourceType"].as_str().unwrap(),
        v["id"].as_str().unwrap()
    );
    let (status, body) = json(s.put_json(&path, v).send().expect("PUT"));
    assert!(status == 200 || status == 201, "{path}: {status} {body}");
}

fn graph(s: &Server, on: &str) -> (u16, Value) {
    json(
        s.get(&format!("{on}/$graph"))
            .query(&[("graph", URL)])
            .send()
            .expect("GET $graph"),
    )
}

#[test]
fn graph_follows_a_stored_graph_definition() {
    for v in VARIANTS {
        let s = Server::start(v, &[("ENABLE_OPERATION_GRAPH", "true")]);
        put(&s, &json!({"resourceType": "Patient", "id": "a"}));
        put(&s, &json!({"resourceType": "Patient", "id": "b"}));
        put(
            &s,
            &json!({"resourceType": "Encounter", "id": "enc", "status": "finished",
                "class": {"code": "AMB"}, "subject": {"reference": "Patient/a"}}),
        );
        let mut expected = vec!["Encounter/enc".to_string(), "Patient/a".to_string()];
        for i in 0..5 {
            let patient = if i % 2 == 0 { "a" } else { "b" };
            let mut o = json!({"resourceType": "Observation", "id": format!("o{i}"),
                "status": "final", "code": {"text": "x"},
                "subject": {"reference": format!("Patient/{patient}")}});
            if i < 3 {
                // Several Observations share one Encounter: it is listed once.
                o["encounter"] = json!({"reference": "Encounter/enc"});
            }
            put(&s, &o);
            if patient == "a" {
                expected.push(format!("Observation/o{i}"));
            }
        }
        put(
            &s,
            &json!({"resourceType": "GraphDefinition", "id": "g", "url": URL, "name": "g",
                "status": "active", "start": "Patient",
                "link": [{"target": [{"type": "Observation", "params": "patient={ref}",
                    "link": [{"path": "Observation.encounter",
                        "target": [{"type": "Encounter"}]}]}]}]}),
        );
        let (status, bundle) = graph(&s, "Patient/a");
        assert_eq!(status, 200, "{v}: {bundle}");
        assert_eq!(bundle["type"], "searchset", "{v}");
        let entries = bundle["entry"].as_array().expect("entries");
        assert_eq!(bundle["total"], entries.len(), "{v}");
        let mut found: Vec<String> = entries
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["resource"]["resourceType"].as_str().unwrap(),
                    e["resource"]["id"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(found[0], "Patient/a", "{v}");
        found.sort();
        expected.sort();
        assert_eq!(found, expected, "{v}");
        let (status, body) = graph(&s, "Patient/nobody");
        assert_eq!(status, 404, "{v}: {body}");
        drop(s);

        let off = Server::start(v, &[]);
        let (status, body) = graph(&off, "Patient/a");
        assert_eq!(status, 400, "{v}: {body}");
        assert_eq!(body["issue"][0]["code"], "not-supported", "{v}");
        assert!(
            body["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains("ENABLE_OPERATION_GRAPH"),
            "{v}: {body}"
        );
    }
}
