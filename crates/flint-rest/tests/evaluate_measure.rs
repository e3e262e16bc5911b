//! `$evaluate-measure` through the real router over an in-memory node, with a fake
//! expression evaluator whose answers come from the stored resources: initial population =
//! the patient has an Observation of code `X`, numerator = one of those has a value > 5. The
//! expected counts are computed from the JSON the tests wrote.

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use flint_db::mem::MemKv;
use flint_db::{Db, ErrorKind};
use flint_measure::{
    EvaluationParams, ExprValue, ExpressionEvaluator, MeasureConfig, MeasureError, PreparedLibrary,
    ResourceRef, SubjectSession,
};
use flint_rest::{AppState, RestConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

const LIB: &str = "http://example.org/Library/lib";
const URL: &str = "http://example.org/Measure/m";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The single issue of an OperationOutcome answered with `status`.
    fn issue(&self, status: u16) -> Value {
        let v = self.json();
        assert_eq!(self.status.as_u16(), status, "{v}");
        assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
        v["issue"][0].clone()
    }
}

/// The fake CQL engine; remembers the parameters it was prepared with.
#[derive(Default)]
struct Fake {
    params: Mutex<Vec<EvaluationParams>>,
    /// How long each expression takes.
    delay: Option<Duration>,
}

struct Prepared {
    /// Per patient reference: the values of its `X` Observations.
    values: Vec<(String, f64)>,
    delay: Option<Duration>,
}

#[async_trait]
impl ExpressionEvaluator for Fake {
    async fn prepare(
        &self,
        db: &Db,
        library: &str,
        params: &EvaluationParams,
    ) -> Result<Arc<dyn PreparedLibrary>, MeasureError> {
        assert_eq!(library, LIB);
        self.params.lock().unwrap().push(params.clone());
        let mut values = Vec::new();
        for h in db.type_list("Observation", None, usize::MAX)? {
            let o: Value = serde_json::from_slice(&db.pull(&h).await?).unwrap();
            if o["code"]["coding"][0]["code"] == "X" {
                values.push((
                    o["subject"]["reference"].as_str().unwrap().to_string(),
                    o["valueQuantity"]["value"].to_string().parse().unwrap(),
                ));
            }
        }
        Ok(Arc::new(Prepared {
            values,
            delay: self.delay,
        }))
    }
}

impl PreparedLibrary for Prepared {
    fn subject<'s>(
        &'s self,
        _db: &'s Db,
        subject: &'s ResourceRef,
    ) -> Result<Box<dyn SubjectSession + 's>, MeasureError> {
        Ok(Box::new(Session { lib: self, subject }))
    }
}

/// One subject of the fake library.
struct Session<'s> {
    lib: &'s Prepared,
    subject: &'s ResourceRef,
}

impl SubjectSession for Session<'_> {
    fn evaluate(&mut self, name: &str) -> Result<ExprValue, MeasureError> {
        self.lib.evaluate(self.subject, name)
    }

    fn evaluate_function(
        &mut self,
        name: &str,
        argument: Option<&ResourceRef>,
    ) -> Result<ExprValue, MeasureError> {
        self.lib.evaluate_function(self.subject, name, argument)
    }
}

impl Prepared {
    fn evaluate(&self, subject: &ResourceRef, name: &str) -> Result<ExprValue, MeasureError> {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        let s = subject.to_string();
        let mine = self.values.iter().filter(|(r, _)| *r == s);
        Ok(ExprValue::Boolean(match name {
            "InitialPopulation" => mine.count() > 0,
            "Numerator" => mine.into_iter().any(|(_, v)| *v > 5.0),
            "EvenPatient" => even(&subject.id),
            _ => {
                return Err(MeasureError::new(
                    ErrorKind::Unprocessable,
                    format!("unknown {name}"),
                ));
            }
        }))
    }

    fn evaluate_function(
        &self,
        _subject: &ResourceRef,
        name: &str,
        _argument: Option<&ResourceRef>,
    ) -> Result<ExprValue, MeasureError> {
        Err(MeasureError::new(
            ErrorKind::Unprocessable,
            format!("unknown {name}"),
        ))
    }
}

struct Api {
    router: Router,
    fake: Arc<Fake>,
    /// The patients of the data, and the initial population and numerator members.
    patients: Vec<String>,
    ip: BTreeSet<String>,
    num: BTreeSet<String>,
}

impl Api {
    /// A router with the fake evaluator (or none) and report persistence on or off, loaded
    /// with the test data.
    async fn new(evaluator: bool, persistence: bool) -> Api {
        Api::with(evaluator, persistence, None, None).await
    }

    /// Like [`Api::new`], with an evaluation time limit and a delay per expression.
    async fn with(
        evaluator: bool,
        persistence: bool,
        timeout: Option<Duration>,
        delay: Option<Duration>,
    ) -> Api {
        let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
        let node = flint_db::testing::memory_node(engine.indexer(), Arc::new(MemKv::new())).await;
        let config = RestConfig {
            base_url: "http://flint.test".into(),
            context_path: "/fhir".into(),
            ..RestConfig::default()
        };
        let fake = Arc::new(Fake {
            delay,
            ..Fake::default()
        });
        let mut state = AppState::new(node, config, engine);
        if evaluator {
            state = state.with_measure_evaluator(
                fake.clone(),
                MeasureConfig {
                    threads: 2,
                    report_persistence: persistence,
                    timeout,
                },
            );
        }
        let mut api = Api {
            router: flint_rest::router(state),
            fake,
            patients: vec![],
            ip: BTreeSet::new(),
            num: BTreeSet::new(),
        };
        let mut written = Vec::new();
        for i in 0..9 {
            let id = format!("p{i}");
            written.push(json!({"resourceType": "Patient", "id": id}));
            for j in 0..(i % 3) {
                written.push(json!({"resourceType": "Observation", "id": format!("o{i}-{j}"),
                    "status": "final",
                    "code": {"coding": [{"system": "urn:test", "code": if (i + j) % 4 == 0 { "Y" } else { "X" }}]},
                    "subject": {"reference": format!("Patient/{id}")},
                    "valueQuantity": {"value": (i * 3 + j * 5) % 11}}));
            }
        }
        written.push(measure("m1", true));
        written.push(measure("nolib", false));
        for r in &written {
            let path = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            let a = api.send("PUT", &path, &r.to_string()).await;
            assert!(
                a.status.is_success(),
                "{}",
                String::from_utf8_lossy(&a.body)
            );
        }
        // The expectation, from the raw JSON.
        for r in &written {
            match r["resourceType"].as_str().unwrap() {
                "Patient" => api
                    .patients
                    .push(format!("Patient/{}", r["id"].as_str().unwrap())),
                "Observation" if r["code"]["coding"][0]["code"] == "X" => {
                    let s = r["subject"]["reference"].as_str().unwrap().to_string();
                    if r["valueQuantity"]["value"].as_u64().unwrap() > 5 {
                        api.num.insert(s.clone());
                    }
                    api.ip.insert(s);
                }
                _ => {}
            }
        }
        assert!(
            !api.num.is_empty()
                && api.num.len() < api.ip.len()
                && api.ip.len() < api.patients.len()
        );
        api
    }

    async fn send(&self, method: &str, path: &str, body: &str) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/fhir/{path}"));
        if !body.is_empty() {
            req = req.header("content-type", "application/fhir+json");
        }
        let res = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, "").await
    }

    async fn post(&self, path: &str, params: &[Value]) -> Answer {
        let body = json!({"resourceType": "Parameters", "parameter": params});
        self.send("POST", path, &body.to_string()).await
    }

    async fn total(&self, ty: &str) -> u64 {
        self.get(&format!("{ty}?_summary=count")).await.json()["total"]
            .as_u64()
            .unwrap()
    }

    /// The expected summary counts (initial population, denominator, numerator).
    fn counts(&self) -> Vec<u64> {
        vec![
            self.ip.len() as u64,
            self.ip.len() as u64,
            self.num.len() as u64,
        ]
    }
}

/// Whether patient `p<i>` has an even `i`.
fn even(id: &str) -> bool {
    id.trim_start_matches('p')
        .parse::<u32>()
        .is_ok_and(|i| i % 2 == 0)
}

fn measure(id: &str, library: bool) -> Value {
    let pop = |code: &str, expr: &str| {
        json!({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": code}]},
               "criteria": {"language": "text/cql-identifier", "expression": expr}})
    };
    let mut m = json!({"resourceType": "Measure", "id": id, "url": format!("{URL}-{id}"), "version": "1",
    "status": "active",
    "scoring": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": "proportion"}]},
    "group": [{"population": [
        pop("initial-population", "InitialPopulation"),
        pop("denominator", "InitialPopulation"),
        pop("numerator", "Numerator"),
    ]}]});
    if library {
        m["library"] = json!([LIB]);
    }
    m
}

fn counts(report: &Value) -> Vec<u64> {
    report["group"][0]["population"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .collect()
}

fn score(report: &Value) -> f64 {
    report["group"][0]["measureScore"]["value"]
        .to_string()
        .parse()
        .unwrap()
}

fn param(name: &str, key: &str, value: &str) -> Value {
    let mut p = json!({"name": name});
    p[key] = json!(value);
    p
}

#[tokio::test]
async fn get_at_both_levels_answers_the_report_inline() {
    let api = Api::new(true, true).await;
    for path in [
        "Measure/m1/$evaluate-measure?periodStart=2020&periodEnd=2020".to_string(),
        format!("Measure/$evaluate-measure?measure={URL}-m1&periodStart=2020&periodEnd=2020"),
        format!("Measure/$evaluate-measure?measure={URL}-m1%7C1&periodStart=2020&periodEnd=2020"),
    ] {
        let a = api.get(&path).await;
        let r = a.json();
        assert_eq!(a.status, StatusCode::OK, "{r}");
        assert_eq!(r["resourceType"], "MeasureReport");
        assert_eq!(r["type"], "summary");
        assert_eq!(r["status"], "complete");
        assert_eq!(r["measure"], format!("{URL}-m1|1"));
        assert_eq!(r["period"], json!({"start": "2020", "end": "2020"}));
        assert!(r.get("id").is_none(), "a GET stores nothing");
        assert_eq!(counts(&r), api.counts());
        let want = api.num.len() as f64 / api.ip.len() as f64;
        assert!((score(&r) - want).abs() < 1e-9);
    }
    assert_eq!(api.total("MeasureReport").await, 0);
    let p = api.fake.params.lock().unwrap()[0].clone();
    assert_eq!(p.period.start, "2020-01-01T00:00:00.000");
    assert_eq!(p.period.end, "2020-12-31T23:59:59.999");
}

#[tokio::test]
async fn post_stores_the_report() {
    let api = Api::new(true, true).await;
    let a = api
        .post(
            "Measure/m1/$evaluate-measure",
            &[
                param("periodStart", "valueDate", "2020-01-01"),
                param("periodEnd", "valueDate", "2020-12-31"),
                json!({"name": "Threshold", "valueInteger": 5}),
                json!({"name": "Codes", "valueCode": "a"}),
                json!({"name": "Codes", "valueCode": "b"}),
            ],
        )
        .await;
    let r = a.json();
    assert_eq!(a.status, StatusCode::CREATED, "{r}");
    let id = r["id"].as_str().unwrap();
    let location = a.headers["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!(
            "http://flint.test/fhir/MeasureReport/{id}/_history/"
        )),
        "{location}"
    );
    assert_eq!(counts(&r), api.counts());
    let stored = api.get(&format!("MeasureReport/{id}")).await.json();
    assert_eq!(counts(&stored), api.counts());
    assert_eq!(api.total("MeasureReport").await, 1);
    let p = api.fake.params.lock().unwrap()[0].clone();
    let named: Vec<(&str, usize, &str)> = p
        .named
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.values.len(),
                n.values[0].fhir_type.as_str(),
            )
        })
        .collect();
    assert_eq!(named, [("Threshold", 1, "integer"), ("Codes", 2, "code")]);

    // At the type level, by canonical.
    let a = api
        .post(
            "Measure/$evaluate-measure",
            &[
                param("measure", "valueString", &format!("{URL}-m1|1")),
                param("periodStart", "valueDate", "2020"),
                param("periodEnd", "valueDate", "2020"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(api.total("MeasureReport").await, 2);
}

#[tokio::test]
async fn post_without_persistence_answers_inline() {
    let api = Api::new(true, false).await;
    let a = api
        .post(
            "Measure/m1/$evaluate-measure",
            &[
                param("periodStart", "valueDate", "2020"),
                param("periodEnd", "valueDate", "2020"),
            ],
        )
        .await;
    let r = a.json();
    assert_eq!(a.status, StatusCode::OK, "{r}");
    assert!(r.get("id").is_none() && a.headers.get("location").is_none());
    assert_eq!(counts(&r), api.counts());
    assert_eq!(api.total("MeasureReport").await, 0);
}

#[tokio::test]
async fn subject_list_stores_and_references_lists() {
    for persistence in [true, false] {
        let api = Api::new(true, persistence).await;
        let a = api
            .post(
                "Measure/m1/$evaluate-measure",
                &[
                    param("periodStart", "valueDate", "2020"),
                    param("periodEnd", "valueDate", "2020"),
                    param("reportType", "valueCode", "subject-list"),
                ],
            )
            .await;
        let r = a.json();
        assert_eq!(
            a.status.as_u16(),
            if persistence { 201 } else { 200 },
            "{r}"
        );
        assert_eq!(r["type"], "subject-list");
        let pops = r["group"][0]["population"].as_array().unwrap();
        for (p, want) in pops.iter().zip([&api.ip, &api.ip, &api.num]) {
            let list_ref = p["subjectResults"]["reference"].as_str().unwrap();
            let list = api.get(list_ref).await;
            assert_eq!(list.status, StatusCode::OK, "{list_ref}");
            let got: BTreeSet<String> = list.json()["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["item"]["reference"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(&got, want);
            // The list serves `_list` searches.
            let id = list_ref.strip_prefix("List/").unwrap();
            let total = api
                .get(&format!("Patient?_list={id}&_summary=count"))
                .await
                .json()["total"]
                .as_u64()
                .unwrap();
            assert_eq!(total as usize, want.len());
        }
        assert_eq!(api.total("List").await, 3);
    }
}

#[tokio::test]
async fn subject_reports() {
    let api = Api::new(true, true).await;
    for s in api.patients.clone() {
        let id = s.strip_prefix("Patient/").unwrap();
        for subject in [s.as_str(), id] {
            let a = api
                .get(&format!(
                    "Measure/m1/$evaluate-measure?periodStart=2020-01&periodEnd=2020-12&subject={subject}"
                ))
                .await;
            let r = a.json();
            assert_eq!(a.status, StatusCode::OK, "{r}");
            assert_eq!(r["type"], "individual");
            assert_eq!(r["subject"]["reference"], s);
            let ip = api.ip.contains(&s) as u64;
            assert_eq!(counts(&r), vec![ip, ip, api.num.contains(&s) as u64], "{s}");
        }
    }
    // reportType=population limited to a subject is a summary of one.
    let a = api
        .get("Measure/m1/$evaluate-measure?periodStart=2020&periodEnd=2020&subject=p1&reportType=population")
        .await;
    assert_eq!(a.json()["type"], "summary");
}

#[tokio::test]
async fn parameter_errors_name_the_parameter() {
    let api = Api::new(true, true).await;
    let base = "Measure/m1/$evaluate-measure";
    for (query, at) in [
        ("periodEnd=2020", "periodStart"),
        ("periodStart=2020", "periodEnd"),
        ("periodStart=2020-13&periodEnd=2020", "periodStart"),
        ("periodStart=2020&periodEnd=last-year", "periodEnd"),
        ("periodStart=2021&periodEnd=2020", "periodEnd"),
        (
            "periodStart=2020&periodEnd=2020&reportType=everything",
            "reportType",
        ),
        (
            "periodStart=2020&periodEnd=2020&reportType=subject-list",
            "reportType",
        ),
        (
            "periodStart=2020&periodEnd=2020&reportType=subject",
            "subject",
        ),
        (
            "periodStart=2020&periodEnd=2020&subject=Patient/a/b",
            "subject",
        ),
        (
            "periodStart=2020&periodStart=2021&periodEnd=2021",
            "periodStart",
        ),
        ("periodStart=2020&periodEnd=2020&Threshold=3", "Threshold"),
    ] {
        let issue = api.get(&format!("{base}?{query}")).await.issue(400);
        assert_eq!(issue["code"], "invalid", "{query}");
        assert_eq!(issue["expression"], json!([at]), "{query}");
    }
    // Type level: the measure is required and must exist.
    let issue = api
        .get("Measure/$evaluate-measure?periodStart=2020&periodEnd=2020")
        .await
        .issue(400);
    assert_eq!(issue["expression"], json!(["measure"]));
    let issue = api
        .get(&format!(
            "Measure/$evaluate-measure?measure={URL}-m1%7C9&periodStart=2020&periodEnd=2020"
        ))
        .await
        .issue(404);
    assert_eq!(issue["expression"], json!(["measure"]));
    // An unknown Measure, an unknown subject.
    api.get("Measure/nope/$evaluate-measure?periodStart=2020&periodEnd=2020")
        .await
        .issue(404);
    let issue = api
        .get(&format!(
            "{base}?periodStart=2020&periodEnd=2020&subject=nobody"
        ))
        .await
        .issue(404);
    assert_eq!(issue["expression"], json!(["subject"]));
    // A Measure without library can't be evaluated.
    let issue = api
        .get("Measure/nolib/$evaluate-measure?periodStart=2020&periodEnd=2020")
        .await
        .issue(422);
    assert_eq!(issue["expression"], json!(["Measure.library"]));
    // A POST body that is not Parameters, a parameter of the wrong type.
    let a = api
        .send(
            "POST",
            base,
            &json!({"resourceType": "Patient"}).to_string(),
        )
        .await;
    a.issue(400);
    let issue = api
        .post(
            base,
            &[
                json!({"name": "periodStart", "valueInteger": 2020}),
                param("periodEnd", "valueDate", "2020"),
            ],
        )
        .await
        .issue(400);
    assert_eq!(issue["expression"], json!(["periodStart"]));
    // Other types have no such operation.
    let issue = api
        .get("Patient/$evaluate-measure?periodStart=2020&periodEnd=2020")
        .await
        .issue(400);
    assert_eq!(issue["code"], "not-supported");
    assert_eq!(api.total("MeasureReport").await, 0);
}

#[tokio::test]
async fn without_an_evaluator_the_operation_is_not_supported() {
    let api = Api::new(false, true).await;
    let issue = api
        .get("Measure/m1/$evaluate-measure?periodStart=2020&periodEnd=2020")
        .await
        .issue(422);
    assert_eq!(issue["code"], "not-supported");
    assert!(
        issue["diagnostics"].as_str().unwrap().contains("CQL"),
        "{issue}"
    );
    // Parameters are still checked first.
    api.get("Measure/m1/$evaluate-measure?periodEnd=2020")
        .await
        .issue(400);
    // The CapabilityStatement lists the operation on Measure.
    let cs = api.get("metadata").await.json();
    let m = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Measure")
        .unwrap()
        .clone();
    assert_eq!(
        m["operation"],
        json!([{"name": "evaluate-measure", "definition": "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"},
               {"name": "graphql", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-graphql"}])
    );
}

#[tokio::test]
async fn an_evaluation_over_the_time_limit_is_a_timeout() {
    let api = Api::with(
        true,
        true,
        Some(Duration::from_millis(50)),
        Some(Duration::from_millis(40)),
    )
    .await;
    let issue = api
        .post(
            "Measure/m1/$evaluate-measure",
            &[
                param("periodStart", "valueDate", "2020"),
                param("periodEnd", "valueDate", "2020"),
            ],
        )
        .await
        .issue(503);
    assert_eq!(issue["code"], "timeout");
    assert_eq!(api.total("MeasureReport").await, 0);
}

#[tokio::test]
async fn evaluate_measure_runs_inside_batch_bundles() {
    let api = Api::new(true, true).await;
    let params = json!({"resourceType": "Parameters", "parameter": [
        param("periodStart", "valueDate", "2020"),
        param("periodEnd", "valueDate", "2020"),
    ]});
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET",
            "url": "Measure/m1/$evaluate-measure?periodStart=2020&periodEnd=2020"}},
        {"request": {"method": "POST", "url": "Measure/m1/$evaluate-measure"},
         "resource": params},
        {"request": {"method": "GET", "url": "Measure/m1/$evaluate-measure?periodEnd=2020"}},
        {"request": {"method": "GET",
            "url": "Measure/unknown/$evaluate-measure?periodStart=2020&periodEnd=2020"}},
    ]});
    let a = api.send("POST", "", &batch.to_string()).await;
    let r = a.json();
    assert_eq!(a.status, StatusCode::OK, "{r}");
    assert_eq!(r["type"], "batch-response");
    let e = r["entry"].as_array().unwrap();
    // A GET answers the report inline.
    assert_eq!(e[0]["response"]["status"], "200", "{}", e[0]);
    assert_eq!(e[0]["resource"]["resourceType"], "MeasureReport");
    assert_eq!(counts(&e[0]["resource"]), api.counts());
    // A POST stores it and answers where.
    assert!(
        e[1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("201"),
        "{}",
        e[1]
    );
    let location = e[1]["response"]["location"].as_str().unwrap();
    let id = location.split('/').nth_back(2).unwrap();
    let stored = api.get(&format!("MeasureReport/{id}")).await.json();
    assert_eq!(counts(&stored), api.counts());
    assert_eq!(api.total("MeasureReport").await, 1);
    // Errors are the entry's own, with their OperationOutcome.
    assert!(
        e[2]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("400"),
        "{}",
        e[2]
    );
    assert_eq!(
        e[2]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert!(
        e[3]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("404"),
        "{}",
        e[3]
    );
}

/// A ratio measure with two initial populations (CQF Measures): the denominator's (patients
/// with an `X` Observation) and the numerator's (the even patients), linked by the
/// numerator's and denominator's `cqfm-criteriaReference`.
#[tokio::test]
async fn ratio_with_two_initial_populations() {
    let api = Api::new(true, true).await;
    let pop = |id: &str, code: &str, expr: &str, r: Option<&str>| {
        let mut p = json!({"id": id,
            "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": code}]},
            "criteria": {"language": "text/cql-identifier", "expression": expr}});
        if let Some(r) = r {
            p["extension"] = json!([{"url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-criteriaReference",
                "valueString": r}]);
        }
        p
    };
    let m = json!({"resourceType": "Measure", "id": "ratio2", "url": format!("{URL}-ratio2"),
    "status": "active", "library": [LIB],
    "scoring": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": "ratio"}]},
    "group": [{"population": [
        pop("ip-den", "initial-population", "InitialPopulation", None),
        pop("ip-num", "initial-population", "EvenPatient", None),
        pop("den", "denominator", "InitialPopulation", Some("ip-den")),
        pop("num", "numerator", "Numerator", Some("ip-num")),
    ]}]});
    let a = api.send("PUT", "Measure/ratio2", &m.to_string()).await;
    assert!(
        a.status.is_success(),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let a = api
        .get("Measure/ratio2/$evaluate-measure?periodStart=2020&periodEnd=2020")
        .await;
    let r = a.json();
    assert_eq!(a.status, StatusCode::OK, "{r}");
    let evens: BTreeSet<&String> = api.patients.iter().filter(|p| even(&p[8..])).collect();
    let num = api.num.iter().filter(|p| evens.contains(p)).count() as u64;
    let want = vec![
        api.ip.len() as u64,
        evens.len() as u64,
        api.ip.len() as u64,
        num,
    ];
    assert!(
        evens.iter().any(|p| !api.ip.contains(*p)) && api.ip.iter().any(|p| !evens.contains(p)),
        "the two initial populations differ"
    );
    assert!(
        num > 0 && num < api.num.len() as u64,
        "the numerator's own initial population limits it"
    );
    assert_eq!(counts(&r), want);
    let ids: Vec<&str> = r["group"][0]["population"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ip-den", "ip-num", "den", "num"]);
    assert!((score(&r) - num as f64 / api.ip.len() as f64).abs() < 1e-9);
    // Two initial populations that nothing tells apart: 422 naming the populations.
    let mut bad = m.clone();
    for p in bad["group"][0]["population"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("extension");
    }
    let a = api.send("PUT", "Measure/ratio2", &bad.to_string()).await;
    assert!(a.status.is_success());
    let issue = api
        .get("Measure/ratio2/$evaluate-measure?periodStart=2020&periodEnd=2020")
        .await
        .issue(422);
    assert_eq!(
        issue["expression"][0], "Measure.group[0].population",
        "{issue}"
    );
}

/// A router with the real CQL engine (flint-cql-db) holding a Library `name` (version `3`)
/// with CQL `cql` and a Measure `m` over it.
async fn real_engine_with(name: &str, cql: &str) -> Api {
    use base64::Engine as _;
    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let node = flint_db::testing::memory_node(engine.indexer(), Arc::new(MemKv::new())).await;
    let config = RestConfig {
        base_url: "http://flint.test".into(),
        context_path: "/fhir".into(),
        ..RestConfig::default()
    };
    let terminology = Arc::new(flint_terminology::DbTerminology::new(engine.clone()));
    let evaluator = flint_cql_db::CqlMeasureEvaluator::new(engine.clone(), terminology);
    let state = AppState::new(node, config, engine).with_measure_evaluator(
        Arc::new(evaluator),
        MeasureConfig {
            threads: 2,
            report_persistence: false,
            timeout: None,
        },
    );
    let api = Api {
        router: flint_rest::router(state),
        fake: Arc::new(Fake::default()),
        patients: vec![],
        ip: BTreeSet::new(),
        num: BTreeSet::new(),
    };
    let lib_url = format!("http://example.org/Library/{name}");
    let library = json!({"resourceType": "Library", "id": "lib", "url": lib_url, "name": name,
        "version": "3", "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}]},
        "content": [{"contentType": "text/cql",
            "data": base64::engine::general_purpose::STANDARD.encode(cql)}]});
    let mut m = measure("m", false);
    m["library"] = json!([format!("{lib_url}|3")]);
    for r in [
        json!({"resourceType": "Patient", "id": "p1", "gender": "female"}),
        library,
        m,
    ] {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let a = api.send("PUT", &path, &r.to_string()).await;
        assert!(a.status.is_success());
    }
    api
}

/// Errors in the measure's library (an unknown identifier, a type mismatch, a syntax error)
/// are 400 naming the library, its version, the line and the column; a valid library over
/// the same data is evaluated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_errors_are_400_with_library_line_and_column() {
    let head = "using FHIR version '4.0.1'\ncontext Patient\n";
    let cases = [
        (
            "InvalidIdent",
            format!(
                "library InvalidIdent version '3'\n{head}define InitialPopulation: true\n\
                 define Numerator: InitialPopulation and NoSuchDefine\n"
            ),
            "CQL library `InvalidIdent version '3'`: error at line 5, column 41",
            "`NoSuchDefine`",
        ),
        (
            "InvalidType",
            format!(
                "library InvalidType version '3'\n{head}define InitialPopulation: true\n\
                 define Numerator: Patient.gender > 5\n"
            ),
            "CQL library `InvalidType version '3'`: error at line 5, column 34",
            "(String, Integer)",
        ),
        (
            "InvalidSyntax",
            format!(
                "library InvalidSyntax version '3'\n{head}define InitialPopulation: true\n\
                 define Numerator: (1 +\n"
            ),
            "syntax error at 6:1",
            "InvalidSyntax",
        ),
    ];
    for (name, cql, at, what) in &cases {
        let api = real_engine_with(name, cql).await;
        let issue = api
            .get("Measure/m/$evaluate-measure?periodStart=2020&periodEnd=2020")
            .await
            .issue(400);
        let msg = issue["diagnostics"].as_str().unwrap();
        assert!(msg.contains(at) && msg.contains(what), "{msg}");
    }
    let ok = format!(
        "library Valid version '3'\n{head}define InitialPopulation: true\n\
         define Numerator: Patient.gender = 'female'\n"
    );
    let api = real_engine_with("Valid", &ok).await;
    let a = api
        .get("Measure/m/$evaluate-measure?periodStart=2020&periodEnd=2020")
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(counts(&a.json()), vec![1, 1, 1]);
}
