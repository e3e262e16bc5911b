//! The real axum router over an in-memory database node, driven in process with
//! `tower::ServiceExt::oneshot`: capabilities, the resource interactions, search, transactions
//! and error answers, checked by status, headers and body.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use flint_db::Cf;
use flint_db::fault::{Faults, FaultyKv, FaultyStore, Op};
use flint_db::mem::{MemKv, MemStore};
use flint_rest::{AppState, RestConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

/// The base URL the test server is configured with.
const BASE: &str = "http://flint.test/fhir";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A router over a fresh in-memory node, with the times just before and after its state was
/// created (the CapabilityStatement's `date` must lie between them).
struct Api {
    router: Router,
    created: (i64, i64),
}

/// An answer: status, headers and the whole body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The single issue of an OperationOutcome answered with `status`.
    fn issue(&self, status: u16) -> Value {
        let v = self.json();
        assert_eq!(self.status.as_u16(), status, "{v}");
        assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
        assert_eq!(v["issue"][0]["severity"], "error", "{v}");
        v["issue"][0].clone()
    }
}

impl Api {
    async fn new() -> Api {
        Api::over(Arc::new(MemKv::new()), Arc::new(MemStore::new())).await
    }

    /// A router over a node whose index and resource stores fail as `faults` says.
    async fn faulty(faults: &Arc<Faults>) -> Api {
        Api::over(
            Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone())),
            Arc::new(FaultyStore::new(Arc::new(MemStore::new()), faults.clone())),
        )
        .await
    }

    async fn over(kv: Arc<dyn flint_db::KvStore>, store: Arc<dyn flint_db::ResourceStore>) -> Api {
        // The search engine and node wired as flint-server wires them.
        let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
        let node = flint_db::testing::node_over(engine.indexer(), kv, store).await;
        let config = RestConfig {
            base_url: "http://flint.test".into(),
            context_path: "/fhir".into(),
            ..RestConfig::default()
        };
        let before = now_ms();
        let state = AppState::new(node, config, engine);
        let after = now_ms();
        Api {
            router: flint_rest::router(state),
            created: (before, after),
        }
    }

    /// Sends `method path` (relative to the context path) with headers and a body.
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/fhir/{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body.to_string())).unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send("GET", path, headers, "").await
    }

    /// Sends a FHIR JSON body.
    async fn send_json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        v: &Value,
    ) -> Answer {
        let mut all = vec![("content-type", "application/fhir+json")];
        all.extend_from_slice(headers);
        self.send(method, path, &all, &v.to_string()).await
    }
}

fn patient(id: Option<&str>, family: &str) -> Value {
    let mut p =
        json!({"resourceType": "Patient", "name": [{"family": family}], "gender": "female"});
    if let Some(id) = id {
        p["id"] = json!(id);
    }
    p
}

#[tokio::test]
async fn metadata_is_built_once_dated_at_start_and_in_both_formats() {
    let api = Api::new().await;
    let a = api.get("metadata", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header("content-type"),
        Some("application/fhir+json;charset=utf-8")
    );
    let cs = a.json();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["kind"], "instance");
    assert_eq!(cs["implementation"]["url"], BASE);
    let patient = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap();
    assert!(
        patient["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "family" && p["type"] == "string"),
        "the registry's parameters are listed"
    );

    // `date` is when the state was created, not a literal.
    let date = cs["date"].as_str().unwrap();
    assert_ne!(date, "2026-11-25");
    let ms = flint_rest::resource::parse_instant(date).unwrap();
    assert!(
        (api.created.0..=api.created.1).contains(&ms),
        "date {date} ({ms}) outside {:?}",
        api.created
    );

    // Later requests get the same bytes and validator: nothing is rebuilt.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let b = api.get("metadata", &[]).await;
    assert_eq!(a.body, b.body);
    let etag = a.header("etag").unwrap();
    assert!(
        etag.starts_with("W/\"") && etag.ends_with('"') && etag.len() > 6,
        "{etag}"
    );
    assert_eq!(b.header("etag"), Some(etag));
    assert_eq!(a.header("vary"), Some("Accept"));

    // XML by `_format` and by `Accept`: the same statement.
    for (path, headers) in [
        ("metadata?_format=xml", vec![]),
        ("metadata", vec![("accept", "application/fhir+xml")]),
    ] {
        let x = api.get(path, &headers).await;
        assert_eq!(x.status, StatusCode::OK);
        assert_eq!(
            x.header("content-type"),
            Some("application/fhir+xml;charset=utf-8")
        );
        let text = String::from_utf8_lossy(&x.body);
        assert!(
            text.starts_with(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CapabilityStatement xmlns=\"http://hl7.org/fhir\">"
            ),
            "{}",
            &text[..120]
        );
        assert_eq!(flint_model::xml::parse_resource(&x.body).unwrap(), cs);
        assert_eq!(
            x.header("etag"),
            Some(etag),
            "a weak validator for both formats"
        );
    }

    // Pretty JSON is the same statement, indented.
    let p = api.get("metadata?_pretty=true", &[]).await;
    assert!(p.body.contains(&b'\n'));
    assert_eq!(p.json(), cs);

    // Unsupported formats are refused.
    let i = api.get("metadata?_format=text/html", &[]).await.issue(406);
    assert_eq!(i["code"], "not-supported");
}

#[tokio::test]
async fn metadata_honours_the_base_url_of_the_request() {
    let api = Api::new().await;
    let own = api.get("metadata", &[]).await;
    let fwd = api
        .get(
            "metadata",
            &[
                ("x-forwarded-host", "proxy.example:8443"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
    assert_eq!(fwd.status, StatusCode::OK);
    let v = fwd.json();
    assert_eq!(
        v["implementation"]["url"],
        "https://proxy.example:8443/fhir"
    );
    assert_ne!(fwd.header("etag"), own.header("etag"));
    // Apart from the URL, the statement is the same.
    let mut own_v = own.json();
    own_v["implementation"]["url"] = v["implementation"]["url"].clone();
    assert_eq!(own_v, v);

    let x = api
        .get(
            "metadata?_format=xml",
            &[("forwarded", "host=\"a&b.example\";proto=http")],
        )
        .await;
    let xv = flint_model::xml::parse_resource(&x.body).unwrap();
    assert_eq!(xv["implementation"]["url"], "http://a&b.example/fhir");
}

#[tokio::test]
async fn metadata_honours_summary_and_elements() {
    let api = Api::new().await;
    let full = api.get("metadata", &[]).await;
    let full_v = full.json();

    let e = api
        .get("metadata?_elements=fhirVersion,software", &[])
        .await;
    assert_eq!(e.status, StatusCode::OK);
    let v = e.json();
    assert_eq!(v["fhirVersion"], "4.0.1");
    assert_eq!(v["software"]["name"], "Flint");
    assert_eq!(v["status"], "active", "mandatory elements stay");
    assert!(
        v.get("rest").is_none() && v.get("implementation").is_none(),
        "{v}"
    );
    assert_eq!(v["meta"]["tag"][0]["code"], "SUBSETTED");
    assert_eq!(
        v,
        flint_model::subset::elements(&full_v, &["fhirVersion", "software"])
    );
    assert_ne!(e.header("etag"), full.header("etag"));

    let s = api.get("metadata?_summary=true", &[]).await;
    let v = s.json();
    assert_eq!(
        v,
        flint_model::subset::summary(&full_v, flint_model::subset::Summary::True)
    );
    assert_eq!(
        v["implementation"]["url"], BASE,
        "the base URL is set in subsets too"
    );
    assert_eq!(v["meta"]["tag"][0]["code"], "SUBSETTED");

    let t = api.get("metadata?_summary=text&_format=xml", &[]).await;
    let v = flint_model::xml::parse_resource(&t.body).unwrap();
    assert!(
        v.get("rest").is_none() && v.get("software").is_none(),
        "{v}"
    );
    assert_eq!(v["date"], full_v["date"]);

    // `_summary=false` is the whole statement with the whole statement's validator.
    let f = api.get("metadata?_summary=false", &[]).await;
    assert_eq!(
        (&f.body, f.header("etag")),
        (&full.body, full.header("etag"))
    );

    let i = api.get("metadata?_summary=bogus", &[]).await.issue(400);
    assert_eq!(i["code"], "invalid");
    assert_eq!(i["expression"][0], "_summary");
}

#[tokio::test]
async fn metadata_answers_if_none_match_with_304() {
    let api = Api::new().await;
    let full = api.get("metadata", &[]).await;
    let etag = full.header("etag").unwrap().to_string();
    let strong = etag.trim_start_matches("W/").to_string();
    let list = format!("\"other\", W/\"x,y\", {etag}");
    for inm in [etag.as_str(), "*", strong.as_str(), list.as_str()] {
        let r = api.get("metadata", &[("if-none-match", inm)]).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("content-type"), None);
    }
    // XML revalidates with the same validator.
    let r = api
        .get("metadata?_format=xml", &[("if-none-match", etag.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    for inm in ["W/\"other\"", "\"other\", W/\"nope\"", "garbage"] {
        let r = api.get("metadata", &[("if-none-match", inm)]).await;
        assert_eq!(r.status, StatusCode::OK, "If-None-Match: {inm}");
        assert_eq!(r.body, full.body);
    }

    // A subset has its own validator.
    let sub = api.get("metadata?_elements=software", &[]).await;
    let r = api
        .get(
            "metadata?_elements=software",
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api
        .get(
            "metadata?_elements=software",
            &[("if-none-match", sub.header("etag").unwrap())],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    // Another base URL's statement does not match this one's validator.
    let r = api
        .get(
            "metadata",
            &[
                ("if-none-match", etag.as_str()),
                ("x-forwarded-host", "elsewhere"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn patient_create_read_vread_update_delete_history() {
    let api = Api::new().await;
    let c = api
        .send_json("POST", "Patient", &[], &patient(Some("ignored"), "Doe"))
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.json());
    let created = c.json();
    let id = created["id"].as_str().unwrap().to_string();
    assert_ne!(id, "ignored", "create assigns the id");
    let v1 = created["meta"]["versionId"].as_str().unwrap().to_string();
    assert_eq!(c.header("etag"), Some(format!("W/\"{v1}\"").as_str()));
    assert_eq!(
        c.header("location"),
        Some(format!("{BASE}/Patient/{id}/_history/{v1}").as_str())
    );
    assert!(c.header("last-modified").is_some());

    let r = api.get(&format!("Patient/{id}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        Some("application/fhir+json;charset=utf-8")
    );
    assert_eq!(r.json(), created);
    assert_eq!(r.header("etag"), c.header("etag"));

    let x = api.get(&format!("Patient/{id}?_format=xml"), &[]).await;
    assert!(
        String::from_utf8_lossy(&x.body).contains("<family value=\"Doe\"/>"),
        "{}",
        String::from_utf8_lossy(&x.body)
    );

    // Update with the current version as If-Match.
    let mut next = patient(Some(&id), "Roe");
    next["gender"] = json!("male");
    let etag1 = format!("W/\"{v1}\"");
    let u = api
        .send_json(
            "PUT",
            &format!("Patient/{id}"),
            &[("if-match", &etag1)],
            &next,
        )
        .await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.json());
    let v2 = u.json()["meta"]["versionId"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!(u.json()["name"][0]["family"], "Roe");

    // vread of both versions.
    let old = api.get(&format!("Patient/{id}/_history/{v1}"), &[]).await;
    assert_eq!(old.status, StatusCode::OK);
    assert_eq!(old.json()["name"][0]["family"], "Doe");
    assert_eq!(old.json()["meta"]["versionId"], v1.as_str());
    let new = api.get(&format!("Patient/{id}/_history/{v2}"), &[]).await;
    assert_eq!(new.json()["gender"], "male");
    let missing = api.get(&format!("Patient/{id}/_history/999999"), &[]).await;
    missing.issue(404);

    // Instance history, newest first.
    let h = api.get(&format!("Patient/{id}/_history"), &[]).await;
    assert_eq!(h.status, StatusCode::OK);
    let hv = h.json();
    assert_eq!(
        (hv["type"].as_str(), hv["total"].as_u64()),
        (Some("history"), Some(2))
    );
    let families: Vec<&str> = hv["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["name"][0]["family"].as_str().unwrap())
        .collect();
    assert_eq!(families, ["Roe", "Doe"]);

    // Delete, then read answers 410 with the deletion's version.
    let d = api.send("DELETE", &format!("Patient/{id}"), &[], "").await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert!(d.body.is_empty());
    let gone = api.get(&format!("Patient/{id}"), &[]).await;
    assert_eq!(gone.issue(410)["code"], "deleted");
    let del_tag = gone.header("etag").unwrap().to_string();
    assert_ne!(del_tag, format!("W/\"{v2}\""));
    let h = api.get(&format!("Patient/{id}/_history"), &[]).await.json();
    assert_eq!(h["total"], 3);
    assert_eq!(h["entry"][0]["request"]["method"], "DELETE");

    // Type-level history sees all three versions too.
    let th = api.get("Patient/_history", &[]).await.json();
    assert_eq!(th["total"], 3);
}

#[tokio::test]
async fn search_by_parameter() {
    let api = Api::new().await;
    for (id, family) in [("s1", "Doe"), ("s2", "Smith"), ("s3", "Doerr")] {
        let r = api
            .send_json(
                "PUT",
                &format!("Patient/{id}"),
                &[],
                &patient(Some(id), family),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = api.get("Patient?family:exact=Doe", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let b = r.json();
    assert_eq!(b["type"], "searchset");
    assert_eq!(b["total"], 1);
    assert_eq!(b["entry"][0]["fullUrl"], format!("{BASE}/Patient/s1"));
    assert_eq!(b["entry"][0]["search"]["mode"], "match");

    // `family` is a prefix match: Doe and Doerr, sorted by family.
    let b = api.get("Patient?family=doe&_sort=family", &[]).await.json();
    let ids: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["s1", "s3"]);

    // The same search by POST with a form body.
    let r = api
        .send(
            "POST",
            "Patient/_search",
            &[("content-type", "application/x-www-form-urlencoded")],
            "family=smith",
        )
        .await;
    assert_eq!(r.json()["total"], 1);
    assert_eq!(r.json()["entry"][0]["resource"]["id"], "s2");

    // Strict handling refuses unknown parameters.
    let i = api
        .get("Patient?nonsense=1", &[("prefer", "handling=strict")])
        .await
        .issue(400);
    assert_eq!(i["code"], "invalid");
}

#[tokio::test]
async fn transaction_bundle() {
    let api = Api::new().await;
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0a3c1d4e-0000-4000-8000-000000000001", "resource": patient(None, "Tx"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "urn:uuid:0a3c1d4e-0000-4000-8000-000000000001"}}, "request": {"method": "POST", "url": "Observation"}},
        {"resource": patient(Some("txp"), "Put"), "request": {"method": "PUT", "url": "Patient/txp"}},
        {"request": {"method": "GET", "url": "Patient/txp"}},
    ]});
    let r = api
        .send_json("POST", "", &[("prefer", "return=representation")], &tx)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let v = r.json();
    assert_eq!(v["type"], "transaction-response");
    let e = v["entry"].as_array().unwrap();
    assert_eq!(e.len(), 4);
    assert_eq!(e[0]["response"]["status"], "201");
    let pid = e[0]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        e[1]["resource"]["subject"]["reference"],
        format!("Patient/{pid}")
    );
    assert_eq!(e[3]["resource"]["name"][0]["family"], "Put");
    assert_eq!(
        e[0]["response"]["etag"], e[2]["response"]["etag"],
        "one transaction, one version"
    );
    // The writes are visible to later reads.
    let p = api.get(&format!("Patient/{pid}"), &[]).await;
    assert_eq!(p.json()["name"][0]["family"], "Tx");

    // A failing entry rolls everything back, pointing at the entry.
    let bad = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(Some("never"), "No"), "request": {"method": "PUT", "url": "Patient/never"}},
        {"resource": {"resourceType": "Patient", "id": "y", "birthDate": "not-a-date"}, "request": {"method": "PUT", "url": "Patient/y"}},
    ]});
    let i = api.send_json("POST", "", &[], &bad).await.issue(400);
    assert!(
        i["expression"][0]
            .as_str()
            .unwrap()
            .starts_with("Bundle.entry[1]"),
        "{i}"
    );
    api.get("Patient/never", &[]).await.issue(404);
}

#[tokio::test]
async fn batch_answers_entries_on_their_own_including_metadata() {
    let api = Api::new().await;
    let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient(None, "Ok"), "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/missing"}},
        {"request": {"method": "GET", "url": "metadata"}},
    ]});
    let r = api.send_json("POST", "", &[], &b).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["type"], "batch-response");
    let e = v["entry"].as_array().unwrap();
    let statuses: Vec<&str> = e
        .iter()
        .map(|x| x["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "404", "200"]);
    assert_eq!(e[1]["response"]["outcome"]["issue"][0]["code"], "not-found");
    // The metadata entry is the statement `GET metadata` serves.
    let cs = api.get("metadata", &[]).await.json();
    assert_eq!(e[2]["resource"], cs);
}

#[tokio::test]
async fn a_batch_entry_url_may_hold_a_url_in_its_query_but_not_name_another_server() {
    let api = Api::new().await;
    let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient?_profile=http://example.org/p&_summary=count"}},
        {"request": {"method": "GET", "url": "http://other.example/fhir/Patient?_summary=count"}},
    ]});
    let v = api.send_json("POST", "", &[], &b).await.json();
    let e = v["entry"].as_array().unwrap();
    assert_eq!(e[0]["response"]["status"], "200", "{v}");
    assert_eq!(e[0]["resource"]["total"], 0, "{v}");
    assert_eq!(e[1]["response"]["status"], "400", "{v}");
    let issue = &e[1]["response"]["outcome"]["issue"][0];
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("another server"),
        "{issue}"
    );
}

#[tokio::test]
async fn error_answers() {
    let api = Api::new().await;
    // Unknown resource type.
    let i = api.get("Patint/1", &[]).await.issue(404);
    assert_eq!(i["code"], "not-found");
    assert!(i["diagnostics"].as_str().unwrap().contains("Patint"), "{i}");
    api.send_json("POST", "Patint", &[], &patient(None, "X"))
        .await
        .issue(404);
    // Unknown resource, and no endpoint outside the context path.
    api.get("Patient/nobody", &[]).await.issue(404);
    let outside = api
        .router
        .clone()
        .oneshot(Request::get("/elsewhere").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);

    // Malformed JSON.
    let r = api
        .send(
            "POST",
            "Patient",
            &[("content-type", "application/fhir+json")],
            "{not json",
        )
        .await;
    assert_eq!(
        r.header("content-type"),
        Some("application/fhir+json;charset=utf-8")
    );
    assert_eq!(r.issue(400)["code"], "invalid");
    // Invalid content points at the element.
    let i = api
        .send_json(
            "POST",
            "Patient",
            &[],
            &json!({"resourceType": "Patient", "foo": 1}),
        )
        .await
        .issue(400);
    assert_eq!(i["expression"][0], "Patient.foo");
    let i = api
        .send_json(
            "POST",
            "Patient",
            &[],
            &json!({"resourceType": "Patient", "birthDate": "1990-13-01"}),
        )
        .await
        .issue(400);
    assert_eq!(i["expression"][0], "Patient.birthDate");
    let i = api
        .send_json("PUT", "Patient/a", &[], &patient(Some("b"), "X"))
        .await
        .issue(400);
    assert_eq!(i["expression"][0], "Patient.id");

    // Wrong method.
    api.send("POST", "metadata", &[], "").await.issue(405);
    api.send("DELETE", "metadata", &[], "").await.issue(405);
    api.send("PATCH", "Patient", &[], "").await.issue(405);

    // Wrong content type.
    let i = api
        .send(
            "POST",
            "Patient",
            &[("content-type", "text/plain")],
            "hello",
        )
        .await
        .issue(415);
    assert_eq!(i["code"], "not-supported");

    // An Accept the server cannot produce: 406 (as Blaze), before the request is looked at;
    // a FHIR type among the ranges, or a wildcard, is served.
    for path in ["Patient/never", "metadata", "Patient?_count=1"] {
        let i = api
            .send("GET", path, &[("accept", "text/plain")], "")
            .await
            .issue(406);
        assert_eq!(i["code"], "not-supported");
        assert!(
            i["diagnostics"].as_str().unwrap().contains("text/plain"),
            "{i}"
        );
    }
    let a = api
        .send(
            "GET",
            "metadata",
            &[("accept", "text/plain, application/fhir+xml;q=0.5")],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = api
        .send(
            "GET",
            "metadata",
            &[("accept", "text/plain, */*;q=0.1")],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);

    // If-Match with a stale version.
    let c = api
        .send_json("PUT", "Patient/im", &[], &patient(Some("im"), "A"))
        .await;
    assert_eq!(c.status, StatusCode::CREATED);
    let v1 = c.header("etag").unwrap().to_string();
    let u = api
        .send_json("PUT", "Patient/im", &[], &patient(Some("im"), "B"))
        .await;
    assert_eq!(u.status, StatusCode::OK);
    let i = api
        .send_json(
            "PUT",
            "Patient/im",
            &[("if-match", &v1)],
            &patient(Some("im"), "C"),
        )
        .await
        .issue(412);
    assert_eq!(i["code"], "conflict");
    // The stale write changed nothing.
    let r = api.get("Patient/im", &[]).await;
    assert_eq!(r.json()["name"][0]["family"], "B");
    assert_eq!(r.header("etag"), u.header("etag"));
}

/// A storage fault is a 503 OperationOutcome on every kind of request, never an empty or
/// made-up answer; once the storage heals, the same requests answer in full.
#[tokio::test]
async fn storage_faults_are_503_never_wrong_answers() {
    let faults = Faults::new();
    let api = Api::faulty(&faults).await;
    let json = [("Content-Type", "application/fhir+json")];
    for i in 0..20 {
        let body =
            json!({"resourceType": "Patient", "id": format!("p{i}"), "name": [{"family": "Doe"}]});
        let a = api
            .send("PUT", &format!("Patient/p{i}"), &json, &body.to_string())
            .await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
    }
    let unavailable = |a: &Answer| {
        let issue = a.issue(503);
        assert_eq!(issue["code"], "transient", "{issue}");
    };
    // A search whose index scan breaks half-way.
    faults.fail(|op| op == Op::Next(Cf::SearchParamValue), 5, 1);
    unavailable(&api.send("GET", "Patient?family=doe", &[], "").await);
    // Counting.
    faults.fail(|op| matches!(op, Op::Seek(Cf::SearchParamValue)), 0, 1);
    unavailable(
        &api.send("GET", "Patient?family=doe&_summary=count", &[], "")
            .await,
    );
    // A read whose version look-up fails is not a 404.
    faults.fail(|op| op == Op::Seek(Cf::ResourceAsOf), 0, 1);
    unavailable(&api.send("GET", "Patient/p1", &[], "").await);
    // (A read whose commit instant cannot be read: the instants of these writes are cached
    // by their replies; flint-db's fault tests check `Db::instant` itself.)
    // A write whose outcome cannot be read is not reported as committed.
    faults.fail(|op| op == Op::Get(Cf::TxError), 0, 1);
    let body = json!({"resourceType": "Patient", "name": [{"family": "Roe"}]});
    unavailable(&api.send("POST", "Patient", &json, &body.to_string()).await);
    // A write whose content cannot be stored fails and leaves nothing behind.
    faults.fail(|op| op == Op::StorePut, 0, 1);
    let body = json!({"resourceType": "Patient", "id": "q", "name": [{"family": "Poe"}]});
    unavailable(&api.send("PUT", "Patient/q", &json, &body.to_string()).await);
    // History and type totals.
    faults.fail(|op| matches!(op, Op::Seek(Cf::TypeAsOf)), 0, 1);
    unavailable(&api.send("GET", "Patient/_history", &[], "").await);
    faults.fail(|op| matches!(op, Op::Seek(Cf::TypeStats)), 0, 1);
    unavailable(&api.send("GET", "Patient?_summary=count", &[], "").await);
    // A search too long for its page links, whose parameters cannot be kept: no page with
    // links that lead nowhere.
    let names: Vec<String> = (0..300).map(|i| format!("n{i}")).collect();
    let long = format!("family=doe,{}&_count=5", names.join(","));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    faults.fail(|op| op == Op::StorePut, 0, 1);
    unavailable(&api.send("POST", "Patient/_search", &form, &long).await);
    // Kept, then unreadable when the next page is asked for: 503, not 410 (gone).
    faults.heal();
    let first = api
        .send("POST", "Patient/_search", &form, &long)
        .await
        .json();
    let next = local(link(&first, "next").unwrap());
    assert!(next.len() < 600, "{next}");
    faults.fail(|op| op == Op::StoreGet, 0, 1);
    unavailable(&api.get(&next, &[]).await);
    faults.heal();
    let second = api.get(&next, &[]).await.json();
    assert_eq!(ids(&second, "match").len(), 5, "{second}");
    assert!(faults.injected() >= 9);
    // Healed: full answers.
    faults.heal();
    let a = api
        .send("GET", "Patient?family=doe&_summary=count", &[], "")
        .await;
    assert_eq!(a.json()["total"], 20);
    let a = api.send("GET", "Patient/p2", &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_ne!(a.json()["meta"]["lastUpdated"], "1970-01-01T00:00:00.000Z");
    assert_eq!(
        api.send("GET", "Patient/q", &[], "").await.status,
        StatusCode::NOT_FOUND
    );
}

/// The path of an absolute link of the test server, for [`Api::get`].
fn local(link: &Value) -> String {
    let url = link.as_str().unwrap();
    url.strip_prefix(&format!("{BASE}/"))
        .unwrap_or_else(|| panic!("{url} is not under {BASE}"))
        .to_string()
}

/// The URL of the link with `relation` in a bundle, if any.
fn link<'a>(bundle: &'a Value, relation: &str) -> Option<&'a Value> {
    bundle["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| &l["url"])
}

fn ids(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn search_pages_are_read_at_the_first_pages_t() {
    let api = Api::new().await;
    for (i, f) in ["Pagea", "Pageb", "Pagec", "Paged", "Pagee"]
        .iter()
        .enumerate()
    {
        let r = api
            .send_json(
                "PUT",
                &format!("Patient/pg{i}"),
                &[],
                &patient(Some(&format!("pg{i}")), f),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let first = api
        .get("Patient?family=page&_sort=family&_count=2", &[])
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let b = first.json();
    assert_eq!(b["total"], 5);
    assert_eq!(ids(&b, "match"), ["pg0", "pg1"]);
    assert_eq!(
        link(&b, "self").unwrap(),
        &json!(format!("{BASE}/Patient?family=page&_sort=family&_count=2"))
    );
    assert!(link(&b, "first").is_some() && link(&b, "previous").is_none());
    let next = local(link(&b, "next").unwrap());
    assert!(next.starts_with("__page/"), "{next}");

    // A write after the first page changes neither the total nor the pages.
    let r = api
        .send_json("PUT", "Patient/pg5", &[], &patient(Some("pg5"), "Pagea"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let b = api.get(&next, &[]).await.json();
    assert_eq!(b["total"], 5);
    assert_eq!(ids(&b, "match"), ["pg2", "pg3"]);
    assert!(link(&b, "previous").is_some());
    let b = api.get(&local(link(&b, "next").unwrap()), &[]).await.json();
    assert_eq!(ids(&b, "match"), ["pg4"]);
    assert!(link(&b, "next").is_none());
    // A new search sees the write.
    let b = api
        .get("Patient?family=page&_summary=count", &[])
        .await
        .json();
    assert_eq!(b["total"], 6);
    assert!(b.get("entry").is_none(), "{b}");
    assert_eq!(b["link"].as_array().unwrap().len(), 1, "only a self link");

    // POST _search pages the same way; strict handling carries over to later pages.
    let r = api
        .send(
            "POST",
            "Patient/_search",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("prefer", "handling=strict"),
            ],
            "family=page&_sort=family&_count=4",
        )
        .await;
    let b = r.json();
    assert_eq!(ids(&b, "match"), ["pg0", "pg5", "pg1", "pg2"]);
    let b = api
        .send("POST", &local(link(&b, "next").unwrap()), &[], "")
        .await
        .json();
    assert_eq!(ids(&b, "match"), ["pg3", "pg4"]);

    // A changed link is refused.
    let mut bad = next.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    api.get(&bad, &[]).await.issue(400);
}

#[tokio::test]
async fn search_bundles_hold_matches_includes_and_outcomes() {
    let api = Api::new().await;
    let r = api
        .send_json("PUT", "Patient/inc", &[], &patient(Some("inc"), "Included"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for i in 0..2 {
        let obs = json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final",
            "code": {"text": "x"}, "subject": {"reference": "Patient/inc"}});
        let r = api
            .send_json("PUT", &format!("Observation/o{i}"), &[], &obs)
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    // `_include`: the matches, then the included resource once.
    let b = api
        .get("Observation?_include=Observation:subject&_sort=_id", &[])
        .await
        .json();
    assert_eq!(b["total"], 2);
    assert_eq!(ids(&b, "match"), ["o0", "o1"]);
    assert_eq!(ids(&b, "include"), ["inc"]);
    // `_revinclude` from the other side.
    let b = api
        .get("Patient?_id=inc&_revinclude=Observation:subject", &[])
        .await
        .json();
    assert_eq!(ids(&b, "match"), ["inc"]);
    let mut inc = ids(&b, "include");
    inc.sort();
    assert_eq!(inc, ["o0", "o1"]);
    // Lenient handling reports an ignored parameter in an outcome entry.
    let b = api.get("Patient?_id=inc&nonsense=1", &[]).await.json();
    assert_eq!(ids(&b, "match"), ["inc"]);
    let last = b["entry"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["search"]["mode"], "outcome");
    assert_eq!(last["resource"]["issue"][0]["severity"], "warning");
    // System search over `_type`, and compartment search.
    let b = api
        .get("?_type=Patient,Observation&_count=10", &[])
        .await
        .json();
    assert_eq!(b["total"], 3);
    assert_eq!(ids(&b, "match").len(), 3);
    let b = api.get("Patient/inc/Observation", &[]).await.json();
    assert_eq!(b["total"], 2);
    let b = api
        .get("Patient/inc/Observation?_summary=count", &[])
        .await
        .json();
    assert_eq!(b["total"], 2);
    api.get("Patient/in$c/Observation", &[]).await.issue(400);
    api.get("?_type=Patint", &[]).await.issue(404);
    // `_elements` shapes each entry.
    let b = api.get("Observation?_elements=status", &[]).await.json();
    let e = &b["entry"][0]["resource"];
    assert_eq!(e["status"], "final");
    assert!(e.get("subject").is_none(), "{e}");
    assert_eq!(e["meta"]["tag"][0]["code"], "SUBSETTED");
}

#[tokio::test]
async fn transaction_resolves_conditionals_and_references_then_answers_in_entry_order() {
    let api = Api::new().await;
    let mut known = patient(Some("known"), "Known");
    known["identifier"] = json!([{"system": "urn:sys", "value": "k1"}]);
    let r = api.send_json("PUT", "Patient/known", &[], &known).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api
        .send_json("PUT", "Patient/gone", &[], &patient(Some("gone"), "Gone"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api
        .send_json(
            "PUT",
            "Patient/patched",
            &[],
            &patient(Some("patched"), "Before"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let patch = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "Patient.gender"},
        {"name": "value", "valueCode": "male"},
    ]}]});
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        // A conditional create matching `known`: no write, its full URL refers to it.
        {"fullUrl": "urn:uuid:0a3c1d4e-0000-4000-8000-00000000000a",
         "resource": patient(None, "Dup"),
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:sys|k1"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "a"},
            "subject": {"reference": "urn:uuid:0a3c1d4e-0000-4000-8000-00000000000a"}},
         "request": {"method": "POST", "url": "Observation"}},
        // A conditional reference.
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "b"},
            "subject": {"reference": "Patient?identifier=urn:sys|k1"}},
         "request": {"method": "POST", "url": "Observation"}},
        // A relative reference under an entry's RESTful full URL.
        {"fullUrl": "http://other.example/fhir/Patient/rel",
         "resource": patient(Some("rel"), "Rel"),
         "request": {"method": "PUT", "url": "Patient/rel"}},
        {"fullUrl": "http://other.example/fhir/Observation/o-rel",
         "resource": {"resourceType": "Observation", "id": "o-rel", "status": "final",
            "code": {"text": "c"}, "subject": {"reference": "Patient/rel"}},
         "request": {"method": "PUT", "url": "Observation/o-rel"}},
        {"resource": patch, "request": {"method": "PATCH", "url": "Patient/patched"}},
        {"request": {"method": "DELETE", "url": "Patient?family=gone"}},
        {"request": {"method": "GET", "url": "Patient/patched"}},
    ]});
    let r = api
        .send_json("POST", "", &[("prefer", "return=representation")], &tx)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let v = r.json();
    let e = v["entry"].as_array().unwrap();
    let statuses: Vec<&str> = e
        .iter()
        .map(|x| x["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["200", "201", "201", "201", "201", "200", "204", "200"]
    );
    assert_eq!(e[0]["resource"]["id"], "known");
    assert_eq!(e[1]["resource"]["subject"]["reference"], "Patient/known");
    assert_eq!(e[2]["resource"]["subject"]["reference"], "Patient/known");
    assert_eq!(e[4]["resource"]["subject"]["reference"], "Patient/rel");
    assert_eq!(e[5]["resource"]["gender"], "male");
    // The read entry sees the transaction's writes.
    assert_eq!(e[7]["resource"]["gender"], "male");
    assert_eq!(e[7]["resource"]["name"][0]["family"], "Before");
    api.get("Patient/gone", &[]).await.issue(410);
    let b = api.get("Patient?identifier=urn:sys|k1", &[]).await.json();
    assert_eq!(b["total"], 1, "the conditional create wrote nothing");

    // An unresolvable conditional reference fails the transaction at its entry.
    let bad = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(Some("never2"), "No"), "request": {"method": "PUT", "url": "Patient/never2"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "Patient?identifier=urn:sys|nobody"}},
         "request": {"method": "POST", "url": "Observation"}},
    ]});
    let i = api.send_json("POST", "", &[], &bad).await.issue(400);
    assert_eq!(i["code"], "not-found");
    assert_eq!(i["expression"][0], "Bundle.entry[1].resource");
    api.get("Patient/never2", &[]).await.issue(404);
}

#[tokio::test]
async fn operations_are_dispatched_by_name_level_and_method() {
    let api = Api::new().await;
    let versions = json!([
        {"name": "version", "valueCode": "4.0"},
        {"name": "default", "valueCode": "4.0"},
    ]);
    // `$versions` at the system level, by GET and by POST, in both formats.
    for r in [
        api.get("$versions", &[]).await,
        api.send("POST", "$versions", &[], "").await,
    ] {
        assert_eq!(r.status, StatusCode::OK);
        let v = r.json();
        assert_eq!(v["resourceType"], "Parameters");
        assert_eq!(v["parameter"], versions);
    }
    let x = api.get("$versions?_format=xml", &[]).await;
    assert_eq!(
        x.header("content-type"),
        Some("application/fhir+xml;charset=utf-8")
    );
    let xv = flint_model::xml::parse_resource(&x.body).unwrap();
    assert_eq!(xv["parameter"], versions);
    // The CapabilityStatement lists it (and `$totals`, `$export`).
    let cs = api.get("metadata", &[]).await.json();
    assert_eq!(
        cs["rest"][0]["operation"],
        json!([{"name": "versions",
            "definition": "http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions"},
            {"name": "totals",
            "definition": "https://samply.github.io/blaze/fhir/OperationDefinition/totals"},
            {"name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
            {"name": "graphql",
            "definition": "http://hl7.org/fhir/OperationDefinition/Resource-graphql"}])
    );

    // An unknown operation is 400 `not-supported` at every level (not an invalid id).
    for path in [
        "$frobnicate",
        "Measure/$frobnicate",
        "Measure/m1/$frobnicate",
    ] {
        for method in ["GET", "POST"] {
            let i = api.send(method, path, &[], "").await.issue(400);
            assert_eq!(i["code"], "not-supported", "{method} {path}: {i}");
            let d = i["diagnostics"].as_str().unwrap();
            assert!(d.contains("`$frobnicate`"), "{d}");
        }
    }
    // `$evaluate-measure` is a Measure type and instance operation only.
    for path in ["$evaluate-measure", "Patient/p1/$evaluate-measure"] {
        let i = api.get(path, &[]).await.issue(400);
        assert_eq!(i["code"], "not-supported", "{path}: {i}");
    }
    // A known operation at a level it does not have.
    for path in ["Patient/$versions", "Patient/p1/$versions"] {
        let i = api.get(path, &[]).await.issue(400);
        assert_eq!(i["code"], "not-supported", "{path}: {i}");
    }
    // A method the operation does not allow.
    for method in ["DELETE", "PUT", "PATCH"] {
        let i = api.send(method, "$versions", &[], "").await.issue(405);
        assert_eq!(i["code"], "not-supported");
    }
    // Types and ids are checked as for every interaction.
    api.get("Patint/$versions", &[]).await.issue(404);
    let i = api.get("Patient/a%20b/$versions", &[]).await.issue(400);
    assert_eq!(i["code"], "invalid");

    // Batch entries are dispatched the same way.
    let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "$versions"}},
        {"request": {"method": "GET", "url": "Measure/$frobnicate"}},
    ]});
    let v = api.send_json("POST", "", &[], &b).await.json();
    let e = v["entry"].as_array().unwrap();
    assert_eq!(e[0]["response"]["status"], "200");
    assert_eq!(e[0]["resource"]["parameter"], versions);
    assert_eq!(e[1]["response"]["status"], "400");
    assert_eq!(
        e[1]["response"]["outcome"]["issue"][0]["code"],
        "not-supported"
    );
}

/// Issue 19: a stored Bundle's entries are content, not the Bundle's references. A document
/// pointing at a Patient the server lacks is stored (referential integrity is about the
/// resource's own references), leaves no `referenced-by` row (deleting a Patient its entries
/// point at is allowed), and a transaction leaves its references as written; a resource's
/// own references, those of its contained resources included, are still checked, and
/// references between contained resources (`#id`) are no references to check.
#[tokio::test]
async fn references_inside_a_stored_bundle_are_not_its_own() {
    let api = Api::new().await;
    let composition = |subject: &str| {
        json!({"resourceType": "Composition", "status": "final", "type": {"text": "note"},
               "date": "2021-01-01", "title": "t", "author": [{"display": "a"}],
               "subject": {"reference": subject}})
    };
    let doc = json!({"resourceType": "Bundle", "type": "document",
        "timestamp": "2021-01-01T00:00:00Z",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0a3c1d4e-0000-4000-8000-0000000000d1"},
        "entry": [{"fullUrl": "http://flint.test/fhir/Composition/c", "resource": composition("Patient/x")}]});
    let r = api.send_json("POST", "Bundle", &[], &doc).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    // The same Patient reference as the resource's own is refused.
    let own = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                     "subject": {"reference": "Patient/x"}});
    let i = api
        .send_json("POST", "Observation", &[], &own)
        .await
        .issue(409);
    assert!(
        i["diagnostics"].as_str().unwrap().contains("Patient/x"),
        "{i}"
    );
    // So is a contained resource's reference to a missing resource: it belongs to the
    // resource; references between contained resources are fine.
    let contained = |subject: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
               "specimen": {"reference": "#s"},
               "contained": [{"resourceType": "Specimen", "id": "s", "subject": {"reference": subject},
                              "parent": [{"reference": "#t"}]},
                             {"resourceType": "Specimen", "id": "t"}]})
    };
    api.send_json("POST", "Observation", &[], &contained("Patient/x"))
        .await
        .issue(409);
    let r = api
        .send_json("PUT", "Patient/y", &[], &patient(Some("y"), "Y"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api
        .send_json("POST", "Observation", &[], &contained("Patient/y"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let obs = r.json()["id"].as_str().unwrap().to_string();
    // A collection Bundle pointing at Patient/y does not keep it from being deleted; the
    // Observation (whose contained Specimen points at it) does.
    let collection = json!({"resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": composition("Patient/y")}]});
    let r = api.send_json("POST", "Bundle", &[], &collection).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    api.send("DELETE", "Patient/y", &[], "").await.issue(409);
    let r = api
        .send("DELETE", &format!("Observation/{obs}"), &[], "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.send("DELETE", "Patient/y", &[], "").await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // In a transaction, a stored Bundle's entries keep their references as written: neither
    // rewritten to the transaction's new ids nor resolved as conditional references.
    let p = "urn:uuid:0a3c1d4e-0000-4000-8000-0000000000e1";
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": p, "resource": patient(None, "Tx"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": composition(p)},
            {"resource": composition("Patient?identifier=urn:sys|none")}]},
         "request": {"method": "POST", "url": "Bundle"}}]});
    let r = api
        .send_json("POST", "", &[("prefer", "return=representation")], &tx)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let stored = &r.json()["entry"][1]["resource"];
    assert_eq!(stored["entry"][0]["resource"]["subject"]["reference"], p);
    assert_eq!(
        stored["entry"][1]["resource"]["subject"]["reference"],
        "Patient?identifier=urn:sys|none"
    );
}

/// Counts and result lists are kept by query and `t`: the same search at an unchanged `t`
/// needs no index scan (it answers while every index scan fails), and a write moves `t`, so
/// the next request scans again and sees the write.
#[tokio::test]
async fn repeated_searches_at_an_unchanged_t_reuse_their_results_and_never_go_stale() {
    let faults = Faults::new();
    let api = Api::faulty(&faults).await;
    let json = [("Content-Type", "application/fhir+json")];
    let put = |i: usize| {
        let body =
            json!({"resourceType": "Patient", "id": format!("c{i}"), "name": [{"family": "Kent"}]});
        (format!("Patient/c{i}"), body.to_string())
    };
    for i in 0..7 {
        let (path, body) = put(i);
        assert_eq!(
            api.send("PUT", &path, &json, &body).await.status,
            StatusCode::CREATED
        );
    }
    let count = "Patient?family=kent&_summary=count";
    let page = "Patient?family=kent&_count=3";
    assert_eq!(api.get(count, &[]).await.json()["total"], 7);
    let first = api.get(page, &[]).await.json();
    assert_eq!(ids(&first, "match").len(), 3);

    // Every index scan fails from now on: the repeated count and first page (also with
    // another page size or parameter order) still answer, from what was computed at this `t`.
    let scans = |op: Op| {
        matches!(
            op,
            Op::Seek(Cf::SearchParamValue) | Op::Next(Cf::SearchParamValue)
        )
    };
    faults.fail(scans, 0, u64::MAX);
    assert_eq!(api.get(count, &[]).await.json()["total"], 7);
    assert_eq!(
        ids(&api.get(page, &[]).await.json(), "match"),
        ids(&first, "match")
    );
    let other = api.get("Patient?_count=5&family=kent", &[]).await;
    assert_eq!(ids(&other.json(), "match").len(), 5);
    assert_eq!(faults.injected(), 0);
    // A search not computed before does scan, and fails.
    api.get("Patient?family=other&_summary=count", &[])
        .await
        .issue(503);
    assert!(faults.injected() > 0);

    // A write moves `t`: the same count scans again (and fails while scans fail) ...
    faults.heal();
    let (path, body) = put(7);
    assert_eq!(
        api.send("PUT", &path, &json, &body).await.status,
        StatusCode::CREATED
    );
    faults.fail(scans, 0, u64::MAX);
    api.get(count, &[]).await.issue(503);
    api.get(page, &[]).await.issue(503);
    // ... and once the storage heals it sees the new resource.
    faults.heal();
    assert_eq!(api.get(count, &[]).await.json()["total"], 8);
    let again = api.get(page, &[]).await.json();
    assert_eq!(again["total"], 8);
}
