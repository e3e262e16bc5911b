//! Bulk Data `$export` over HTTP against the real binary, on every storage variant: kick-off,
//! manifest, the NDJSON files over a socket (every current resource once, as a read answers
//! it, at the kick-off's `t` whatever is written later), gzip, cancel; standalone: the export
//! survives `kill -9` (its job in the admin database, its files read again from the data).

mod common;

use common::{Server, VARIANTS, json, outcome};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::{Duration, Instant};

fn kick_off(s: &Server, path: &str) -> String {
    let r = s
        .get(path)
        .header("prefer", "respond-async")
        .send()
        .unwrap();
    let headers = r.headers().clone();
    let (st, body) = json(r);
    assert_eq!(st, 202, "{body}");
    headers["content-location"].to_str().unwrap().to_string()
}

fn manifest(s: &Server, url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = s.client.get(url).send().unwrap();
        if r.status() != 202 {
            assert_eq!(r.headers()["content-type"], "application/json");
            let (st, b) = json(r);
            assert_eq!(st, 200, "{b}");
            return b;
        }
        assert!(Instant::now() < deadline, "{url} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The resources of every file by `Type/id` (checking counts, types and that none repeats).
fn download(s: &Server, m: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for f in m["output"].as_array().unwrap() {
        let r = s.client.get(f["url"].as_str().unwrap()).send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/fhir+ndjson");
        let body = r.bytes().unwrap();
        let lines: Vec<Value> = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len() as u64, f["count"].as_u64().unwrap(), "{f}");
        for r in lines {
            assert_eq!(r["resourceType"], f["type"]);
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert!(out.insert(key.clone(), r).is_none(), "{key} twice");
        }
    }
    out
}

fn transact(s: &Server, resources: &[Value]) {
    let entries: Vec<Value> = resources
        .iter()
        .map(|r| {
            json!({"resource": r, "request": {"method": "PUT", "url": format!("{}/{}",
                r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())}})
        })
        .collect();
    let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let (st, body) = json(s.post_json("", &b).send().unwrap());
    assert_eq!(st, 200, "{body}");
}

#[test]
fn bulk_export_over_http() {
    for v in VARIANTS {
        let mut s = Server::start(v, &[]);
        let mut data = Vec::new();
        for i in 0..50 {
            let p = format!("p{i:02}");
            let gender = if i % 2 == 0 { "female" } else { "male" };
            data.push(json!({"resourceType": "Patient", "id": p, "gender": gender}));
            for k in 0..3 {
                data.push(json!({"resourceType": "Observation", "id": format!("o{i:02}-{k}"),
                    "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": format!("c{k}")}]},
                    "subject": {"reference": format!("Patient/{p}")}}));
            }
        }
        transact(&s, &data);
        let (st, _) = json(s.delete("Observation/o00-0").send().unwrap());
        assert!(st == 204 || st == 200, "{st}");
        let current: BTreeSet<String> = data
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap(),
                    r["id"].as_str().unwrap()
                )
            })
            .filter(|r| r != "Observation/o00-0")
            .collect();
        let status = kick_off(&s, "$export");
        // Written after the kick-off: not exported.
        transact(&s, &[json!({"resourceType": "Patient", "id": "late"})]);
        let m = manifest(&s, &status);
        assert_eq!(m["requiresAccessToken"], false, "{v}");
        assert_eq!(m["error"], json!([]));
        let files = download(&s, &m);
        assert_eq!(
            files.keys().cloned().collect::<BTreeSet<_>>(),
            current,
            "{v}"
        );
        for (key, r) in files.iter().take(5) {
            let (st, read) = json(s.get(key).send().unwrap());
            assert_eq!(st, 200);
            assert_eq!(r, &read, "{v} {key}: as a read answers it");
        }

        // gzip over the socket.
        let url = m["output"][0]["url"].as_str().unwrap().to_string();
        let plain = s.client.get(&url).send().unwrap().bytes().unwrap();
        let r = s
            .client
            .get(&url)
            .header("accept-encoding", "gzip")
            .send()
            .unwrap();
        assert_eq!(r.headers()["content-encoding"], "gzip");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&r.bytes().unwrap()[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain.to_vec(), "{v}");

        // A Group export with a filter.
        let g = json!({"resourceType": "Group", "id": "g", "type": "person", "actual": true,
            "member": [{"entity": {"reference": "Patient/p01"}}, {"entity": {"reference": "Patient/p02"}}]});
        let (st, _) = json(s.put_json("Group/g", &g).send().unwrap());
        assert_eq!(st, 201);
        let m = manifest(
            &s,
            &kick_off(
                &s,
                "Group/g/$export?_type=Observation&_typeFilter=Observation%3Fcode%3Dhttp%3A%2F%2Floinc.org%7Cc1",
            ),
        );
        let files = download(&s, &m);
        assert_eq!(
            files.keys().cloned().collect::<Vec<_>>(),
            ["Observation/o01-1", "Observation/o02-1"],
            "{v}"
        );

        if v == "standalone" {
            // The export, its manifest and its files survive kill -9.
            s.kill_and_restart();
            let again = manifest(&s, &status);
            let files = download(&s, &again);
            assert_eq!(files.keys().cloned().collect::<BTreeSet<_>>(), current);
        }

        let (st, _) = json(s.client.delete(&status).send().unwrap());
        assert_eq!(st, 202, "{v}");
        outcome(s.client.get(&status).send().unwrap(), 404);
        outcome(s.client.get(&url).send().unwrap(), 404);
        // Without `Prefer: respond-async`: 400.
        outcome(s.get("$export").send().unwrap(), 400);
    }
}

/// `Type/id` of a searchset's entries.
fn entry_keys(b: &Value) -> BTreeSet<String> {
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect()
}

/// Group members and compartment references written as absolute URLs on this server's base
/// (`http://host/fhir/Patient/x`) name the local patient: `Group/[id]/$export`, `$everything`,
/// compartment searches and `$purge` find them as they find relative ones.
#[test]
fn absolute_references_to_this_server_are_local() {
    for v in VARIANTS {
        let s = Server::start(v, &[("ENABLE_OPERATION_PATIENT_PURGE", "true")]);
        let abs = |r: &str| s.url(r);
        let obs = |id: &str, subject: String| {
            json!({"resourceType": "Observation", "id": id, "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "c1"}]},
                   "subject": {"reference": subject}})
        };
        transact(
            &s,
            &[
                json!({"resourceType": "Patient", "id": "x"}),
                json!({"resourceType": "Patient", "id": "y"}),
                json!({"resourceType": "Patient", "id": "z"}),
                obs("ox", abs("Patient/x")),
                obs("oy", "Patient/y".into()),
                obs("oz", "http://elsewhere.example/fhir/Patient/z".into()),
                json!({"resourceType": "Group", "id": "g", "type": "person", "actual": true,
                       "member": [{"entity": {"reference": abs("Patient/x")}},
                                  {"entity": {"reference": "Patient/y"}},
                                  {"entity": {"reference": "http://elsewhere.example/fhir/Patient/z"}}]}),
            ],
        );
        let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();

        // The Group export: both members with their compartments (the Group is in both);
        // the member on another server is not this server's Patient/z.
        let m = manifest(&s, &kick_off(&s, "Group/g/$export"));
        let files = download(&s, &m);
        assert_eq!(
            files.keys().cloned().collect::<BTreeSet<_>>(),
            set(&[
                "Group/g",
                "Observation/ox",
                "Observation/oy",
                "Patient/x",
                "Patient/y"
            ]),
            "{v}"
        );

        // `$everything` and compartment searches (with and without a code clause, which
        // the compartment's code index answers).
        let (st, b) = json(s.get("Patient/x/$everything").send().unwrap());
        assert_eq!(st, 200, "{v}: {b}");
        assert_eq!(
            entry_keys(&b),
            set(&["Group/g", "Observation/ox", "Patient/x"]),
            "{v}"
        );
        for q in [
            "Patient/x/Observation",
            "Patient/x/Observation?code=http://loinc.org|c1",
            "Patient/x/Observation?code=http://loinc.org|c1&status=final",
        ] {
            let (st, b) = json(s.get(q).send().unwrap());
            assert_eq!(st, 200, "{v} {q}: {b}");
            assert_eq!(entry_keys(&b), set(&["Observation/ox"]), "{v} {q}");
        }
        let (_, b) = json(
            s.get("Patient/x/Observation?code=http://loinc.org|c2")
                .send()
                .unwrap(),
        );
        assert_eq!(entry_keys(&b), set(&[]), "{v}");
        let (_, b) = json(s.get("Patient/z/$everything").send().unwrap());
        assert_eq!(
            entry_keys(&b),
            set(&["Patient/z"]),
            "{v}: another server's reference"
        );

        // A purge of `x` erases what names it by its absolute URL (the Group whole, as
        // with a relative member), nothing of `y`'s or `z`'s.
        let (st, b) = json(
            s.post_json("Patient/x/$purge", &json!({"resourceType": "Parameters"}))
                .send()
                .unwrap(),
        );
        assert_eq!(st, 200, "{v}: {b}");
        for gone in ["Patient/x", "Observation/ox", "Group/g"] {
            assert_eq!(s.get(gone).send().unwrap().status(), 404, "{v} {gone}");
        }
        for kept in ["Patient/y", "Observation/oy", "Patient/z", "Observation/oz"] {
            assert_eq!(s.get(kept).send().unwrap().status(), 200, "{v} {kept}");
        }
    }
}

/// An export whose job is killed (`kill -9`) while it plans runs again at start: its status
/// answers 202 until the manifest, which holds what was current at the kick-off.
#[test]
fn an_export_killed_while_planning_resumes() {
    let mut s = Server::start("standalone", &[("FLINT_TEST_EXPORT_PLAN_DELAY_MS", "4000")]);
    let data: Vec<Value> = (0..30)
        .map(|i| json!({"resourceType": "Patient", "id": format!("k{i:02}")}))
        .collect();
    transact(&s, &data);
    let status = kick_off(&s, "$export?_type=Patient");
    // The job waits 4 s before it plans: it is running when the process dies.
    s.kill();
    s.restart();
    let r = s.client.get(&status).send().unwrap();
    assert_eq!(r.status(), 202, "the job runs again after the restart");
    assert_eq!(r.headers()["x-progress"], "in-progress");
    transact(&s, &[json!({"resourceType": "Patient", "id": "late"})]);
    let m = manifest(&s, &status);
    let files = download(&s, &m);
    let expected: BTreeSet<String> = data
        .iter()
        .map(|r| format!("Patient/{}", r["id"].as_str().unwrap()))
        .collect();
    assert_eq!(files.keys().cloned().collect::<BTreeSet<_>>(), expected);
}
