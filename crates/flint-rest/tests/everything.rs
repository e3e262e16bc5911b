//! `Patient/[id]/$everything`, `Patient/$everything` and `[base]/$totals` through the real
//! router over an in-memory node: the record's members, each parameter, paging at one `t`
//! with writes between pages, the 409 limit, error answers and storage faults.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use flint_db::Cf;
use flint_db::fault::{Faults, FaultyKv, FaultyStore, Op};
use flint_db::mem::{MemKv, MemStore};
use flint_rest::{AppState, RestConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use tower::ServiceExt;

const BASE: &str = "http://flint.test/fhir";

struct Api {
    router: Router,
}

struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    /// The body of a 200 answer.
    fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        &self.body
    }

    /// The first issue of an OperationOutcome answered with `status`.
    fn issue(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.body["resourceType"], "OperationOutcome",
            "{}",
            self.body
        );
        &self.body["issue"][0]
    }
}

impl Api {
    /// A router over a fresh node whose `$everything` answers at most `limit` resources
    /// without `_count`.
    async fn new(limit: usize) -> Api {
        Api::over(limit, Arc::new(MemKv::new()), Arc::new(MemStore::new())).await
    }

    async fn over(
        limit: usize,
        kv: Arc<dyn flint_db::KvStore>,
        store: Arc<dyn flint_db::ResourceStore>,
    ) -> Api {
        let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
        let node = flint_db::testing::node_over(engine.indexer(), kv, store).await;
        let config = RestConfig {
            base_url: "http://flint.test".into(),
            context_path: "/fhir".into(),
            everything_limit: limit,
            ..RestConfig::default()
        };
        Api {
            router: flint_rest::router(AppState::new(node, config, engine)),
        }
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/fhir/{path}"));
        if !body.is_empty() {
            req = req.header("content-type", "application/fhir+json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Answer { status, body }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], "").await
    }

    async fn put(&self, r: Value) {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let a = self.send("PUT", &path, &[], &r.to_string()).await;
        assert!(a.status.is_success(), "{path}: {}", a.body);
    }
}

/// `Type/id` of the entries of a Bundle, checking each entry's `fullUrl` and `search.mode`.
fn refs(bundle: &Value) -> Vec<String> {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    assert_eq!(bundle["type"], "searchset");
    bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let r = format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            );
            assert_eq!(e["fullUrl"], json!(format!("{BASE}/{r}")), "{e}");
            assert_eq!(e["search"]["mode"], "match", "{e}");
            r
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn set(items: &[&str]) -> Vec<String> {
    sorted(items.iter().map(|s| s.to_string()).collect())
}

fn link<'a>(bundle: &'a Value, relation: &str) -> Option<&'a str> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
}

/// A link as a path relative to the context path.
fn local(url: &str) -> String {
    url.strip_prefix(&format!("{BASE}/"))
        .unwrap_or_else(|| panic!("{url} is not under {BASE}"))
        .to_string()
}

fn reference(r: &str) -> Value {
    json!({"reference": r})
}

/// Patient p1 with Observations o1 (2020, by Practitioner pr1 and Patient p2) and o2 (2022, by
/// Organization org1), MedicationRequest mr1 (Medication m1), Encounter e1 (2021, org1,
/// Location loc1); Patient p2 with Observation o3 (by pr1); Patient p3 with nothing; an
/// unreferenced Organization org2.
async fn record(api: &Api) {
    for r in [
        json!({"resourceType": "Practitioner", "id": "pr1"}),
        json!({"resourceType": "Organization", "id": "org1", "name": "Org one"}),
        json!({"resourceType": "Organization", "id": "org2", "name": "Org two"}),
        json!({"resourceType": "Medication", "id": "m1"}),
        json!({"resourceType": "Location", "id": "loc1"}),
        json!({"resourceType": "Patient", "id": "p1", "gender": "female"}),
        json!({"resourceType": "Patient", "id": "p2", "gender": "male"}),
        json!({"resourceType": "Patient", "id": "p3"}),
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
               "code": {"text": "a"}, "subject": reference("Patient/p1"),
               "effectiveDateTime": "2020-01-01",
               "performer": [reference("Practitioner/pr1"), reference("Patient/p2")]}),
        json!({"resourceType": "Observation", "id": "o2", "status": "final",
               "code": {"text": "b"}, "subject": reference("Patient/p1"),
               "effectiveDateTime": "2022-06-01",
               "performer": [reference("Organization/org1")]}),
        json!({"resourceType": "MedicationRequest", "id": "mr1", "status": "active",
               "intent": "order", "subject": reference("Patient/p1"),
               "authoredOn": "2019-03-03",
               "medicationReference": reference("Medication/m1")}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
               "class": {"code": "AMB"}, "subject": reference("Patient/p1"),
               "period": {"start": "2021-02-01", "end": "2021-02-02"},
               "serviceProvider": reference("Organization/org1"),
               "location": [{"location": reference("Location/loc1")}]}),
        json!({"resourceType": "Observation", "id": "o3", "status": "final",
               "code": {"text": "c"}, "subject": reference("Patient/p2"),
               "effectiveDateTime": "2021-01-01",
               "performer": [reference("Practitioner/pr1")]}),
    ] {
        api.put(r).await;
    }
}

const P1_RECORD: [&str; 9] = [
    "Patient/p1",
    "Observation/o1",
    "Practitioner/pr1",
    "Observation/o2",
    "Organization/org1",
    "MedicationRequest/mr1",
    "Medication/m1",
    "Encounter/e1",
    "Location/loc1",
];

#[tokio::test]
async fn the_record_is_the_patient_its_compartment_and_what_that_references_each_once() {
    let api = Api::new(10_000).await;
    record(&api).await;
    let b = api.get("Patient/p1/$everything").await;
    let b = b.ok();
    let got = refs(b);
    assert_eq!(got[0], "Patient/p1", "the Patient comes first");
    assert_eq!(sorted(got.clone()), set(&P1_RECORD), "{got:?}");
    assert_eq!(b["total"], 9);
    // A referenced resource follows the first member that references it.
    let at = |r: &str| got.iter().position(|x| x == r).unwrap();
    assert_eq!(
        at("Medication/m1"),
        at("MedicationRequest/mr1") + 1,
        "{got:?}"
    );
    assert_eq!(at("Practitioner/pr1"), at("Observation/o1") + 1, "{got:?}");
    assert!(
        at("Organization/org1") < at("Observation/o2"),
        "reached first through e1: {got:?}"
    );
    assert_eq!(
        link(b, "self"),
        Some(format!("{BASE}/Patient/p1/$everything").as_str())
    );
    assert!(link(b, "next").is_none(), "no paging without _count");
    // Resources are answered with their version metadata.
    assert!(b["entry"][0]["resource"]["meta"]["versionId"].is_string());

    // p2's record: o1 is in its compartment (performer), p1 is not supporting.
    let got = refs(api.get("Patient/p2/$everything").await.ok());
    assert_eq!(
        sorted(got),
        set(&[
            "Patient/p2",
            "Observation/o1",
            "Observation/o3",
            "Practitioner/pr1"
        ])
    );
    // p3 has only itself.
    let got = refs(api.get("Patient/p3/$everything").await.ok());
    assert_eq!(got, ["Patient/p3"]);
}

#[tokio::test]
async fn start_and_end_filter_members_with_a_clinical_date_only() {
    let api = Api::new(10_000).await;
    record(&api).await;
    // o1 (2020) goes, and Practitioner pr1 with it (only o1 references it); mr1 has no
    // clinical date and stays.
    let got = refs(
        api.get("Patient/p1/$everything?start=2021-01-01")
            .await
            .ok(),
    );
    assert_eq!(
        sorted(got),
        set(&[
            "Patient/p1",
            "Observation/o2",
            "Organization/org1",
            "MedicationRequest/mr1",
            "Medication/m1",
            "Encounter/e1",
            "Location/loc1",
        ])
    );
    let got = refs(api.get("Patient/p1/$everything?end=2020-12-31").await.ok());
    assert_eq!(
        sorted(got),
        set(&[
            "Patient/p1",
            "Observation/o1",
            "Practitioner/pr1",
            "MedicationRequest/mr1",
            "Medication/m1",
        ])
    );
    let got = refs(
        api.get("Patient/p1/$everything?start=2021-01-01T00:00:00Z&end=2021-12-31")
            .await
            .ok(),
    );
    assert_eq!(
        sorted(got),
        set(&[
            "Patient/p1",
            "MedicationRequest/mr1",
            "Medication/m1",
            "Encounter/e1",
            "Organization/org1",
            "Location/loc1",
        ])
    );
    // The same by POST with a Parameters body.
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDate": "2021-01-01"},
        {"name": "end", "valueDate": "2021-12-31"},
    ]});
    let post = api
        .send("POST", "Patient/p1/$everything", &[], &body.to_string())
        .await;
    let get = api
        .get("Patient/p1/$everything?start=2021-01-01&end=2021-12-31")
        .await;
    assert_eq!(refs(post.ok()), refs(get.ok()));
    assert_eq!(
        link(post.ok(), "self"),
        Some(format!("{BASE}/Patient/p1/$everything?start=2021-01-01&end=2021-12-31").as_str())
    );
}

#[tokio::test]
async fn type_and_since_filter_what_is_answered() {
    let api = Api::new(10_000).await;
    record(&api).await;
    let got = refs(
        api.get("Patient/p1/$everything?_type=Observation,Medication")
            .await
            .ok(),
    );
    assert_eq!(
        sorted(got),
        set(&["Observation/o1", "Observation/o2", "Medication/m1"])
    );
    // Repeated `_type` parameters add up; a supporting type alone is still reached.
    let got = refs(
        api.get("Patient/p1/$everything?_type=Organization&_type=Patient")
            .await
            .ok(),
    );
    assert_eq!(sorted(got), set(&["Patient/p1", "Organization/org1"]));
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueCode": "Location"},
    ]});
    let a = api
        .send("POST", "Patient/p1/$everything", &[], &body.to_string())
        .await;
    assert_eq!(refs(a.ok()), ["Location/loc1"]);

    // `_since`: only what changed at or after the instant.
    tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    api.put(
        json!({"resourceType": "Observation", "id": "o2", "status": "amended",
                   "code": {"text": "b"}, "subject": reference("Patient/p1"),
                   "effectiveDateTime": "2022-06-01",
                   "performer": [reference("Organization/org1")]}),
    )
    .await;
    api.put(json!({"resourceType": "Medication", "id": "m1", "status": "active"}))
        .await;
    let o2 = api.get("Observation/o2").await;
    let since = o2.ok()["meta"]["lastUpdated"].as_str().unwrap().to_string();
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("_since", &since)
        .finish();
    let got = refs(api.get(&format!("Patient/p1/$everything?{q}")).await.ok());
    assert_eq!(sorted(got), set(&["Observation/o2", "Medication/m1"]));
    let got = refs(
        api.get(&format!("Patient/p1/$everything?{q}&_type=Medication"))
            .await
            .ok(),
    );
    assert_eq!(got, ["Medication/m1"]);
    let got = refs(
        api.get("Patient/p1/$everything?_since=2999-01-01T00:00:00Z")
            .await
            .ok(),
    );
    assert!(got.is_empty());
}

/// Follows `next` links from `first`, returning every page's entries.
async fn all_pages(api: &Api, first: &Value) -> Vec<Vec<String>> {
    let mut pages = vec![refs(first)];
    let mut b = first.clone();
    while let Some(next) = link(&b, "next") {
        let path = local(next);
        assert!(path.contains("$everything?__page="), "{path}");
        b = api.get(&path).await.ok().clone();
        pages.push(refs(&b));
    }
    pages
}

#[tokio::test]
async fn pages_are_read_at_the_first_pages_t_and_keep_the_parameters() {
    let api = Api::new(10_000).await;
    record(&api).await;
    let whole = refs(
        api.get(
            "Patient/p1/$everything?_type=Patient,Observation,Practitioner,Organization,Encounter",
        )
        .await
        .ok(),
    );
    assert_eq!(whole.len(), 6, "{whole:?}");
    let first = api
        .get("Patient/p1/$everything?_type=Patient,Observation,Practitioner,Organization,Encounter&_count=4")
        .await;
    let first = first.ok().clone();
    assert_eq!(first["total"], 6);
    assert_eq!(refs(&first).len(), 4);
    assert!(link(&first, "previous").is_none() && link(&first, "first").is_some());
    let next = local(link(&first, "next").unwrap());

    // Writes after the first page: a new member, a changed one, a deleted one.
    api.put(
        json!({"resourceType": "Observation", "id": "o9", "status": "final",
                   "code": {"text": "z"}, "subject": reference("Patient/p1")}),
    )
    .await;
    api.put(
        json!({"resourceType": "Observation", "id": "o2", "status": "amended",
                   "code": {"text": "b"}, "subject": reference("Patient/p1"),
                   "performer": [reference("Organization/org1")]}),
    )
    .await;
    let d = api.send("DELETE", "Encounter/e1", &[], "").await;
    assert!(d.status.is_success(), "{}", d.body);

    let second = api.get(&next).await;
    let second = second.ok().clone();
    assert_eq!(second["total"], 6, "the total of the first page's t");
    assert!(link(&second, "previous").is_some());
    assert!(link(&second, "next").is_none());
    // Its self link (sealed anew) opens the same page.
    let again = api.get(&local(link(&second, "self").unwrap())).await;
    assert_eq!(refs(again.ok()), refs(&second));
    let mut paged = refs(&first);
    paged.extend(refs(&second));
    assert_eq!(
        paged, whole,
        "the pages make up the record at the first page's t"
    );
    // o2 is served in its version of the first page's t, the deleted e1 too.
    let all: Vec<&Value> = first["entry"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["entry"].as_array().unwrap())
        .collect();
    let o2 = all.iter().find(|e| e["resource"]["id"] == "o2").unwrap();
    assert_eq!(o2["resource"]["status"], "final", "not the amended version");
    assert!(all.iter().any(|e| e["resource"]["id"] == "e1"));
    // The previous link leads back to the first page.
    let back = api.get(&local(link(&second, "previous").unwrap())).await;
    assert_eq!(refs(back.ok()), refs(&first));

    // A new invocation sees the writes.
    let now = refs(
        api.get(
            "Patient/p1/$everything?_type=Patient,Observation,Practitioner,Organization,Encounter",
        )
        .await
        .ok(),
    );
    assert!(now.contains(&"Observation/o9".to_string()), "{now:?}");
    assert!(!now.contains(&"Encounter/e1".to_string()), "{now:?}");

    // A page link of p1 does not open on p2, nor at the type level; a changed one is a 400.
    let token = next.split("__page=").nth(1).unwrap();
    let a = api
        .get(&format!("Patient/p2/$everything?__page={token}"))
        .await;
    a.issue(400);
    let a = api
        .get(&format!("Patient/$everything?__page={token}"))
        .await;
    a.issue(400);
    let mut bad = token.to_string();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    let a = api
        .get(&format!("Patient/p1/$everything?__page={bad}"))
        .await;
    a.issue(400);
    // A search page link is not an `$everything` one, and the other way round.
    let a = api.get(&format!("__page/{token}")).await;
    a.issue(400);
    let s = api.get("Observation?_count=1").await;
    let search_next = local(link(s.ok(), "next").unwrap());
    let search_token = search_next.strip_prefix("__page/").unwrap();
    let a = api
        .get(&format!("Patient/p1/$everything?__page={search_token}"))
        .await;
    a.issue(400);
}

#[tokio::test]
async fn the_type_level_pages_through_every_patient_each_resource_once() {
    let api = Api::new(10_000).await;
    record(&api).await;
    let whole = api.get("Patient/$everything").await;
    let got = refs(whole.ok());
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "each resource once: {got:?}");
    let mut expected: Vec<&str> = P1_RECORD.to_vec();
    expected.extend(["Patient/p2", "Observation/o3", "Patient/p3"]);
    assert_eq!(sorted(got.clone()), set(&expected));
    assert_eq!(whole.ok()["total"], 12);
    assert_eq!(
        link(whole.ok(), "self"),
        Some(format!("{BASE}/Patient/$everything").as_str())
    );

    let first = api.get("Patient/$everything?_count=5").await.ok().clone();
    api.put(json!({"resourceType": "Patient", "id": "p0"}))
        .await;
    let d = api.send("DELETE", "Patient/p3", &[], "").await;
    assert!(d.status.is_success(), "{}", d.body);
    let pages = all_pages(&api, &first).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 2]);
    assert_eq!(pages.concat(), got, "the pages at the first page's t");

    // Parameters work at the type level too.
    let got = refs(
        api.get("Patient/$everything?_type=Observation&start=2021-01-01")
            .await
            .ok(),
    );
    assert_eq!(sorted(got), set(&["Observation/o2", "Observation/o3"]));
}

#[tokio::test]
async fn more_than_the_limit_without_count_is_too_costly() {
    let api = Api::new(9).await;
    record(&api).await;
    // p1's record is exactly the limit.
    let got = refs(api.get("Patient/p1/$everything").await.ok());
    assert_eq!(got.len(), 9);
    api.put(
        json!({"resourceType": "Observation", "id": "o9", "status": "final",
                   "code": {"text": "z"}, "subject": reference("Patient/p1")}),
    )
    .await;
    let a = api.get("Patient/p1/$everything").await;
    let issue = a.issue(409);
    assert_eq!(issue["code"], "too-costly", "{issue}");
    let a = api.get("Patient/$everything").await;
    assert_eq!(a.issue(409)["code"], "too-costly");
    // Filters that bring it under the limit, and paging, answer.
    let got = refs(
        api.get("Patient/p1/$everything?_type=Observation")
            .await
            .ok(),
    );
    assert_eq!(got.len(), 3);
    let first = api
        .get("Patient/p1/$everything?_count=7")
        .await
        .ok()
        .clone();
    assert_eq!(first["total"], 10);
    let pages = all_pages(&api, &first).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 3]);
    let all = api.get("Patient/$everything?_count=100").await;
    assert_eq!(all.ok()["total"], 13);
}

#[tokio::test]
async fn unknown_deleted_and_bad_parameters_are_refused() {
    let api = Api::new(10_000).await;
    record(&api).await;
    let a = api.get("Patient/nobody/$everything").await;
    assert_eq!(a.issue(404)["code"], "not-found");
    let d = api.send("DELETE", "Patient/p3", &[], "").await;
    assert!(d.status.is_success(), "{}", d.body);
    let a = api.get("Patient/p3/$everything").await;
    assert_eq!(a.issue(410)["code"], "deleted");
    // Only on Patient.
    let a = api.get("Observation/o1/$everything").await;
    assert_eq!(a.issue(400)["code"], "not-supported");

    for (query, expression) in [
        ("start=yesterday", "start"),
        ("start=2020-13-01", "start"),
        ("end=ge2020", "end"),
        ("start=2020&start=2021", "start"),
        ("_since=2020-01-01T25:00:00Z", "_since"),
        ("_since=", "_since"),
        ("_type=Observation,Foo", "_type"),
        ("_type=", "_type"),
        ("_count=0", "_count"),
        ("_count=-1", "_count"),
        ("_count=ten", "_count"),
    ] {
        for path in ["Patient/p1/$everything", "Patient/$everything"] {
            let a = api.get(&format!("{path}?{query}")).await;
            let issue = a.issue(400);
            assert_eq!(issue["code"], "invalid", "{query}: {issue}");
            assert_eq!(issue["expression"], json!([expression]), "{query}: {issue}");
        }
    }
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_count", "valueInteger": 0},
    ]});
    let a = api
        .send("POST", "Patient/p1/$everything", &[], &body.to_string())
        .await;
    assert_eq!(a.issue(400)["expression"], json!(["_count"]));
    let a = api
        .send(
            "POST",
            "Patient/p1/$everything",
            &[],
            &json!({"resourceType": "Patient"}).to_string(),
        )
        .await;
    a.issue(400);
    // Unknown parameters: ignored, or refused under strict handling.
    let got = refs(api.get("Patient/p1/$everything?foo=bar").await.ok());
    assert_eq!(got.len(), 9);
    let a = api
        .send(
            "GET",
            "Patient/p1/$everything?foo=bar",
            &[("prefer", "handling=strict")],
            "",
        )
        .await;
    assert_eq!(a.issue(400)["expression"], json!(["foo"]));
    // PUT is not an invocation.
    let a = api.send("PUT", "Patient/p1/$everything", &[], "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn totals_count_current_resources_per_type_sorted_by_type() {
    let api = Api::new(10_000).await;
    let empty = api.get("$totals").await;
    assert_eq!(empty.ok(), &json!({"resourceType": "Parameters"}));
    record(&api).await;
    let expected = json!({"resourceType": "Parameters", "parameter": [
        {"name": "Encounter", "valueUnsignedInt": 1},
        {"name": "Location", "valueUnsignedInt": 1},
        {"name": "Medication", "valueUnsignedInt": 1},
        {"name": "MedicationRequest", "valueUnsignedInt": 1},
        {"name": "Observation", "valueUnsignedInt": 3},
        {"name": "Organization", "valueUnsignedInt": 2},
        {"name": "Patient", "valueUnsignedInt": 3},
        {"name": "Practitioner", "valueUnsignedInt": 1},
    ]});
    assert_eq!(api.get("$totals").await.ok(), &expected);
    // Updates do not count twice; deleted resources do not count; POST answers the same.
    api.put(json!({"resourceType": "Organization", "id": "org2", "name": "Renamed"}))
        .await;
    for path in ["Organization/org2", "Encounter/e1", "Patient/p3"] {
        let d = api.send("DELETE", path, &[], "").await;
        assert!(d.status.is_success(), "{path}: {}", d.body);
    }
    let a = api.send("POST", "$totals", &[], "").await;
    let names: Vec<(String, u64)> = a.ok()["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["valueUnsignedInt"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [
        ("Location", 1),
        ("Medication", 1),
        ("MedicationRequest", 1),
        ("Observation", 3),
        ("Organization", 1),
        ("Patient", 2),
        ("Practitioner", 1),
    ]
    .iter()
    .map(|(n, c)| (n.to_string(), *c))
    .collect();
    assert_eq!(names, want);
    // Only at the system level.
    let a = api.get("Patient/$totals").await;
    assert_eq!(a.issue(400)["code"], "not-supported");
}

#[tokio::test]
async fn the_capability_statement_lists_the_operations() {
    let api = Api::new(10_000).await;
    let cs = api.get("metadata").await.ok().clone();
    let system: Vec<&str> = cs["rest"][0]["operation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(system.contains(&"totals"), "{system:?}");
    let patient = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap();
    assert_eq!(
        patient["operation"],
        json!([{"name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
               {"name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
               {"name": "graphql",
                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-graphql"}])
    );
}

#[tokio::test]
async fn storage_faults_are_503s() {
    let faults = Faults::new();
    let api = Api::over(
        10_000,
        Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone())),
        Arc::new(FaultyStore::new(Arc::new(MemStore::new()), faults.clone())),
    )
    .await;
    record(&api).await;
    let unavailable = |a: &Answer| {
        assert_eq!(a.issue(503)["code"], "transient", "{}", a.body);
    };
    faults.fail(|op| matches!(op, Op::Seek(Cf::ResourceAsOf)), 0, 1);
    unavailable(&api.get("Patient/p1/$everything").await);
    faults.fail(|op| matches!(op, Op::Seek(Cf::SearchParamValue)), 2, 1);
    unavailable(&api.get("Patient/p1/$everything").await);
    faults.fail(|op| matches!(op, Op::Seek(Cf::SearchParamValue)), 0, 1);
    unavailable(&api.get("Patient/$everything?_count=3").await);
    faults.fail(|op| matches!(op, Op::Seek(Cf::TypeStats)), 0, 1);
    unavailable(&api.get("$totals").await);
    assert!(faults.injected() >= 3);
    faults.heal();
    assert_eq!(refs(api.get("Patient/p1/$everything").await.ok()).len(), 9);
}
