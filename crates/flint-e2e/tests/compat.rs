//! Blaze compatibility at the REST level (issue 19) over HTTP against the real binary, on every
//! storage variant: bare status codes in batch, transaction and history entries, `Link`
//! headers on searchset and history pages, deletions of unknown ids, `DELETE [type]`,
//! system-level `_has`, the `location-distance` of `near` results and long `POST _search`
//! forms paged to the end.

mod common;

use common::{Server, VARIANTS, json, link, outcome};
use serde_json::{Value, json};

fn each_variant(test: impl Fn(&Server)) {
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        test(&s);
    }
}

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family}]})
}

/// The `response.status` of each entry of a response Bundle.
fn statuses(b: &Value) -> Vec<String> {
    b["entry"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {b}"))
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn entry_statuses_are_bare_codes() {
    each_variant(|s| {
        s.put_json("Patient/st-old", &patient("st-old", "Old"))
            .send()
            .unwrap();
        let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": patient("x", "New"), "request": {"method": "POST", "url": "Patient"}},
            {"resource": patient("st-old", "Changed"), "request": {"method": "PUT", "url": "Patient/st-old"}},
            {"request": {"method": "GET", "url": "Patient/st-old"}},
            {"request": {"method": "GET", "url": "Patient/st-missing"}},
            {"request": {"method": "DELETE", "url": "Patient/st-old"}},
        ]});
        let (st, b) = json(s.post_json("", &batch).send().unwrap());
        assert_eq!(st, 200, "{b}");
        assert_eq!(statuses(&b), ["201", "200", "200", "404", "204"], "{b}");

        let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": patient("st-tx", "Tx"), "request": {"method": "PUT", "url": "Patient/st-tx"}},
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        ]});
        let (st, b) = json(s.post_json("", &tx).send().unwrap());
        assert_eq!(st, 200, "{b}");
        assert_eq!(statuses(&b), ["201", "201"], "{b}");

        // History: a create, an update, a delete, newest first.
        let (st, h) = json(s.get("Patient/st-old/_history").send().unwrap());
        assert_eq!(st, 200, "{h}");
        assert_eq!(statuses(&h), ["204", "200", "201"], "{h}");
        let methods: Vec<&str> = h["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["request"]["method"].as_str().unwrap())
            .collect();
        assert_eq!(methods, ["DELETE", "PUT", "PUT"]);
    });
}
