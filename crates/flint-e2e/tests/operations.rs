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

/// The version of a write's answer (`ETag: W/"n"`).
fn version_of(r: reqwest::blocking::Response, what: &str) -> String {
    let st = r.status().as_u16();
    let etag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert!(st == 200 || st == 201, "{what}: {st} {:?}", r.text());
    let etag = etag.unwrap_or_else(|| panic!("{what}: no ETag"));
    etag.trim_start_matches("W/").trim_matches('"').to_string()
}

/// One acknowledged write of the concurrent writer: `Type/id` and its new version (`None`
/// for a deletion), in the order the writer made them (one writer: the log's order).
type Write = (String, Option<String>);

/// The resources (`Type/id` → version) after the first `k` of `writes` on top of `initial`.
fn state_after(
    initial: &std::collections::BTreeMap<String, String>,
    writes: &[Write],
    k: usize,
) -> std::collections::BTreeMap<String, String> {
    let mut s = initial.clone();
    for (key, v) in &writes[..k] {
        match v {
            Some(v) => s.insert(key.clone(), v.clone()),
            None => s.remove(key),
        };
    }
    s
}

/// What paging saw: `Type/id` → `meta.versionId` of every entry, the number of pages, and
/// how many writes were acknowledged when the first page had been answered.
type Paged = (std::collections::BTreeMap<String, String>, usize, usize);

/// Every entry of every page of `first_url`, following the `next` links; after each page the
/// next is fetched only once the writer acknowledged two more writes, so that at least one
/// write it sent after that page was answered lands between every two pages (one writer has
/// at most one write in flight). Asserts no resource repeats and `total` holds on every page.
fn page_while_writing(
    s: &Server,
    first_url: &str,
    acked: &std::sync::atomic::AtomicUsize,
) -> Paged {
    use std::sync::atomic::Ordering;
    let mut seen = std::collections::BTreeMap::new();
    let mut url = first_url.to_string();
    let mut total = None;
    let mut pages = 0;
    let mut acked_after_first = 0;
    loop {
        let b = get(s, &url);
        let after = acked.load(Ordering::SeqCst);
        pages += 1;
        if pages == 1 {
            acked_after_first = after;
        }
        let t = b["total"].as_u64().unwrap();
        assert_eq!(*total.get_or_insert(t), t, "page {pages}: total changed");
        for e in b["entry"].as_array().into_iter().flatten() {
            assert_eq!(e["search"]["mode"], "match", "{e}");
            let r = &e["resource"];
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            let v = r["meta"]["versionId"].as_str().unwrap().to_string();
            assert!(seen.insert(key.clone(), v).is_none(), "{key} on two pages");
        }
        let Some(next) = link(&b, "next") else {
            break;
        };
        url = next;
        while acked.load(Ordering::SeqCst) < after + 2 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    assert_eq!(seen.len() as u64, total.unwrap(), "entries vs total");
    (seen, pages, acked_after_first)
}

/// `$everything` paged with `_count=50` (instance and type level) while one writer adds,
/// updates and deletes resources of the patient's compartment (and another patient's): every
/// page comes from the first page's database value, so the pages together are exactly the
/// record after some prefix of the writer's acknowledged writes (the writes are serial, so
/// the database at any `t` is such a prefix), each resource once, with its version of then.
#[test]
fn everything_pages_are_one_snapshot_under_concurrent_writes() {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let obs = |id: &str, patient: &str, value: usize| {
        json!({"resourceType": "Observation", "id": id, "status": "final",
               "code": {"text": "w"}, "subject": {"reference": format!("Patient/{patient}")},
               "valueInteger": value})
    };
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        // Every resource (`Type/id` → version) and the patient whose record holds it.
        let mut current: BTreeMap<String, String> = BTreeMap::new();
        let mut owner: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut put_one = |r: Value, of: &'static str| {
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            let ver = version_of(s.put_json(&key, &r).send().unwrap(), &key);
            current.insert(key.clone(), ver);
            owner.insert(key, of);
        };
        put_one(json!({"resourceType": "Patient", "id": "x"}), "x");
        put_one(json!({"resourceType": "Patient", "id": "y"}), "y");
        put_one(json!({"resourceType": "Medication", "id": "m1"}), "x");
        put_one(
            json!({"resourceType": "MedicationRequest", "id": "mr", "status": "active",
                   "intent": "order", "subject": {"reference": "Patient/x"},
                   "medicationReference": {"reference": "Medication/m1"}}),
            "x",
        );
        // Even ids now; the writer's odd ids fall between them in id order, before and after
        // every page boundary.
        for i in (0..400).step_by(2) {
            put_one(obs(&format!("o{i:04}"), "x", 0), "x");
        }
        for i in (0..60).step_by(2) {
            put_one(obs(&format!("y{i:04}"), "y", 0), "y");
        }

        for (round, url, of_x) in [
            (0, s.url("Patient/x/$everything?_count=50"), true),
            (1, s.url("Patient/$everything?_count=50"), false),
        ] {
            let start = current.clone();
            let writes: Mutex<Vec<Write>> = Mutex::default();
            let new_owners: Mutex<Vec<(String, &'static str)>> = Mutex::default();
            let acked = AtomicUsize::new(0);
            let stop = AtomicBool::new(false);
            let (observed, pages, acked_after_first) = std::thread::scope(|scope| {
                let writer = scope.spawn(|| {
                    let mut live: Vec<String> = start
                        .keys()
                        .filter(|k| k.starts_with("Observation/") && owner[*k] == "x")
                        .cloned()
                        .collect();
                    let mut n = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        let (key, ver) = match n % 5 {
                            0 | 1 | 4 => {
                                let of = if n % 5 == 4 { "y" } else { "x" };
                                let prefix = if of == "x" { "o" } else { "y" };
                                let id = format!("{prefix}{:04}-{round}", 2 * n + 1);
                                let key = format!("Observation/{id}");
                                let r = s.put_json(&key, &obs(&id, of, n)).send().unwrap();
                                let ver = version_of(r, &key);
                                new_owners.lock().unwrap().push((key.clone(), of));
                                if of == "x" {
                                    live.push(key.clone());
                                }
                                (key, Some(ver))
                            }
                            2 => {
                                let key = live[(n * 7) % live.len()].clone();
                                let id = key.trim_start_matches("Observation/").to_string();
                                let r = s.put_json(&key, &obs(&id, "x", n)).send().unwrap();
                                (key.clone(), Some(version_of(r, &key)))
                            }
                            _ => {
                                let key = live.remove((n * 11) % live.len());
                                let st = s.delete(&key).send().unwrap().status().as_u16();
                                assert!(st == 200 || st == 204, "DELETE {key}: {st}");
                                (key, None)
                            }
                        };
                        writes.lock().unwrap().push((key, ver));
                        acked.fetch_add(1, Ordering::SeqCst);
                        n += 1;
                    }
                });
                // The writer is under way before the first page, so the first page's `t`
                // falls among its writes.
                while acked.load(Ordering::SeqCst) < 3 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                let out = page_while_writing(&s, &url, &acked);
                stop.store(true, Ordering::SeqCst);
                writer.join().unwrap();
                out
            });
            let writes = writes.into_inner().unwrap();
            owner.extend(new_owners.into_inner().unwrap());
            assert!(pages >= 5, "{v} round {round}: {pages} pages");
            // The record in a state: `x`'s resources at the instance level, all at the type
            // level.
            let record = |st: BTreeMap<String, String>| -> BTreeMap<String, String> {
                st.into_iter()
                    .filter(|(k, _)| !of_x || owner[k] == "x")
                    .collect()
            };
            // The first page's `t` is before the writes sent after it was answered: at most
            // `acked_after_first` writes and the one in flight then.
            let latest = (acked_after_first + 1).min(writes.len());
            let snapshots: Vec<usize> = (0..=latest)
                .filter(|k| record(state_after(&start, &writes, *k)) == observed)
                .collect();
            assert!(
                !snapshots.is_empty(),
                "{v} round {round}: the pages are no snapshot of the record at the first \
                 page's t ({} writes, {latest} before it at most, {} entries)",
                writes.len(),
                observed.len()
            );
            current = state_after(&start, &writes, writes.len());
            // Writes of the record landed between the pages, and none of them shows.
            assert_ne!(record(current.clone()), observed, "{v} round {round}");
        }
    }
}
