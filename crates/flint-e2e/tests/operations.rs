//! `Patient/$everything` and `$totals` over HTTP against the real binary, on every storage
//! variant: a patient's record with a referenced Medication, paging with a write between
//! pages, the type level, errors and the per-type totals.

mod common;

use common::{Server, VARIANTS, json, link, outcome};
use serde_json::{Value, json};

/// `Type/id` of a Bundle's entries.
fn refs(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            assert_eq!(e["search"]["mode"], "match", "{e}");
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect()
}

fn put(s: &Server, r: Value) {
    let path = format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    );
    let (st, b) = json(s.put_json(&path, &r).send().unwrap());
    assert!(st == 200 || st == 201, "PUT {path}: {st} {b}");
}

fn get(s: &Server, url: &str) -> Value {
    let (st, b) = json(s.client.get(url).send().unwrap());
    assert_eq!(st, 200, "GET {url}: {b}");
    assert_eq!(b["type"], "searchset", "{b}");
    b
}

#[test]
fn everything_and_totals_over_http() {
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        put(&s, json!({"resourceType": "Medication", "id": "m1"}));
        put(&s, json!({"resourceType": "Patient", "id": "p1"}));
        put(&s, json!({"resourceType": "Patient", "id": "p2"}));
        put(
            &s,
            json!({"resourceType": "MedicationRequest", "id": "mr1", "status": "active",
                   "intent": "order", "subject": {"reference": "Patient/p1"},
                   "medicationReference": {"reference": "Medication/m1"}}),
        );
        for (i, date) in ["2020-01-01", "2021-01-01", "2022-01-01"]
            .iter()
            .enumerate()
        {
            put(
                &s,
                json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final",
                       "code": {"text": "x"}, "subject": {"reference": "Patient/p1"},
                       "effectiveDateTime": date}),
            );
        }

        let b = get(&s, &s.url("Patient/p1/$everything"));
        let got = refs(&b);
        assert_eq!(b["total"], 6, "{v}: {got:?}");
        assert_eq!(got[0], "Patient/p1", "{v}");
        let mr = got
            .iter()
            .position(|r| r == "MedicationRequest/mr1")
            .unwrap();
        assert_eq!(got[mr + 1], "Medication/m1", "{v}: {got:?}");
        assert!(!got.contains(&"Patient/p2".to_string()), "{v}");

        // start filters the Observations; paging keeps it and reads at one t.
        let first = get(
            &s,
            &s.url("Patient/p1/$everything?start=2021-01-01&_count=2"),
        );
        assert_eq!(first["total"], 5, "{v}");
        let mut pages = refs(&first);
        put(
            &s,
            json!({"resourceType": "Observation", "id": "o9", "status": "final",
                   "code": {"text": "x"}, "subject": {"reference": "Patient/p1"},
                   "effectiveDateTime": "2023-01-01"}),
        );
        let mut next = link(&first, "next");
        while let Some(url) = next {
            assert!(url.contains("$everything?__page="), "{url}");
            let b = get(&s, &url);
            assert_eq!(b["total"], 5, "{v}: the first page's t");
            pages.extend(refs(&b));
            next = link(&b, "next");
        }
        assert_eq!(pages.len(), 5, "{v}: {pages:?}");
        assert!(!pages.contains(&"Observation/o0".to_string()), "{v}");
        assert!(!pages.contains(&"Observation/o9".to_string()), "{v}");
        let now = get(&s, &s.url("Patient/p1/$everything?start=2021-01-01"));
        assert_eq!(now["total"], 6, "{v}: a new invocation sees the write");

        // The type level: every patient's record, each resource once.
        let all = refs(&get(
            &s,
            &s.url("Patient/$everything?_type=Patient,Medication"),
        ));
        assert_eq!(all, ["Patient/p1", "Medication/m1", "Patient/p2"], "{v}");

        // Errors.
        let issue = outcome(s.get("Patient/none/$everything").send().unwrap(), 404);
        assert_eq!(issue["code"], "not-found", "{v}");
        let issue = outcome(
            s.get("Patient/p1/$everything?_count=0").send().unwrap(),
            400,
        );
        assert_eq!(issue["expression"], json!(["_count"]), "{v}");
        let (st, _) = json(s.delete("Patient/p2").send().unwrap());
        assert!(st == 200 || st == 204, "{v}: {st}");
        let issue = outcome(s.get("Patient/p2/$everything").send().unwrap(), 410);
        assert_eq!(issue["code"], "deleted", "{v}");

        // $totals: current resources per type, sorted by type.
        let (st, t) = json(s.get("$totals").send().unwrap());
        assert_eq!(st, 200, "{v}: {t}");
        assert_eq!(
            t,
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "Medication", "valueUnsignedInt": 1},
                {"name": "MedicationRequest", "valueUnsignedInt": 1},
                {"name": "Observation", "valueUnsignedInt": 4},
                {"name": "Patient", "valueUnsignedInt": 1},
            ]}),
            "{v}"
        );
    }
}
