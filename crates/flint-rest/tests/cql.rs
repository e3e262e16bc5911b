//! `[base]/$cql` and `Library/$evaluate` through the real router over an in-memory node,
//! evaluated by flint-cql-db's `CqlOperations` (the real CQL engine) over stored data: two
//! patients (p1 with two Observations, p2 with one) and CQL Libraries.

mod common;

use axum::Router;
use base64::Engine as _;
use common::{Answer, send};
use flint_db::mem::MemKv;
use flint_measure::CqlConfig;
use flint_rest::{AppState, RestConfig};
use serde_json::{Value, json};
use std::sync::Arc;

const LIB_URL: &str = "http://example.org/Library/lib";

const LIB: &str = r#"library Lib version '1.0'
using FHIR version '4.0.1'
include FHIRHelpers version '4.0.1' called FHIRHelpers
include Common version '1' called Common
parameter "Threshold" Integer default 100
context Patient
define "Observation count": Count([Observation])
define "Gender": Patient.gender
define "Doubled": "Threshold" * 2
define "Common answer": Common."Answer"
define "Values": [Observation] O return (O.value as Quantity).value sort asc
"#;

/// Defines in both contexts, referencing each other.
const CONTEXTS: &str = r#"library Contexts version '1'
using FHIR version '4.0.1'
context Patient
define "Mine": Count([Observation])
context Unfiltered
define "All observations": Count([Observation])
define "All patients": Count([Patient])
define "Mine, from an Unfiltered define": "Mine"
context Patient
define "Share": "Mine" * 1.0 / "All observations"
"#;

/// The Observations written: (patient, systolic value).
const OBSERVATIONS: [(&str, i32); 3] = [("p1", 120), ("p1", 95), ("p2", 130)];

const COMMON: &str = "library Common version '1'\ndefine \"Answer\": 42\n";

const BROKEN: &str = "library Broken version '1'\ndefine \"X\": 1 +\n";

/// A library with an unknown identifier (line 3, column 19).
const INVALID_IDENT: &str =
    "library InvalidIdent version '2'\ndefine \"A\": 1\ndefine \"B\": \"A\" + Nope\n";

/// A library with a type mismatch (line 4, column 13): Integer + String.
const INVALID_TYPE: &str = "library InvalidType version '3'\nusing FHIR version '4.0.1'\ncontext Patient\ndefine X: 1 + Patient.gender\n";

fn library(id: &str, name: &str, url: &str, version: &str, cql: &str) -> Value {
    json!({"resourceType": "Library", "id": id, "url": url, "name": name, "version": version,
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}]},
        "content": [{"contentType": "text/cql",
            "data": base64::engine::general_purpose::STANDARD.encode(cql)}]})
}

/// A router with the CQL engine (and `$cql` enabled or not, with a step budget), loaded
/// with the test data.
async fn api_with(enable_cql: bool, budget: Option<u64>) -> Router {
    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let node = flint_db::testing::memory_node(engine.indexer(), Arc::new(MemKv::new())).await;
    let config = RestConfig {
        base_url: "http://flint.test".into(),
        context_path: "/fhir".into(),
        enable_operation_cql: enable_cql,
        ..RestConfig::default()
    };
    let terminology = Arc::new(flint_terminology::DbTerminology::new(engine.clone()));
    let mut ops = flint_cql_db::operations::CqlOperations::new(engine.clone(), terminology);
    if let Some(b) = budget {
        ops = ops.with_budget(b);
    }
    let state =
        AppState::new(node, config, engine).with_cql_service(Arc::new(ops), CqlConfig::default());
    let router = flint_rest::router(state);
    let mut written = vec![
        json!({"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-05-01"}),
        json!({"resourceType": "Patient", "id": "p2", "gender": "male"}),
        library("lib", "Lib", LIB_URL, "1.0", LIB),
        library(
            "common",
            "Common",
            "http://example.org/Library/common",
            "1",
            COMMON,
        ),
        library(
            "broken",
            "Broken",
            "http://example.org/Library/broken",
            "1",
            BROKEN,
        ),
        library(
            "invalid-ident",
            "InvalidIdent",
            "http://example.org/Library/invalid-ident",
            "2",
            INVALID_IDENT,
        ),
        library(
            "invalid-type",
            "InvalidType",
            "http://example.org/Library/invalid-type",
            "3",
            INVALID_TYPE,
        ),
    ];
    written.push(library(
        "contexts",
        "Contexts",
        "http://example.org/Library/contexts",
        "1",
        CONTEXTS,
    ));
    for (i, (p, v)) in OBSERVATIONS.iter().enumerate() {
        written.push(json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "subject": {"reference": format!("Patient/{p}")},
            "valueQuantity": {"value": v, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}));
    }
    for r in &written {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let a = send(&router, "PUT", &path, &r.to_string()).await;
        assert!(
            a.status.is_success(),
            "{}",
            String::from_utf8_lossy(&a.body)
        );
    }
    router
}

async fn api() -> Router {
    api_with(true, None).await
}

async fn post(router: &Router, path: &str, params: Value) -> Answer {
    let mut body = json!({"resourceType": "Parameters"});
    if params.as_array().is_some_and(|p| !p.is_empty()) {
        body["parameter"] = params;
    }
    send(router, "POST", path, &body.to_string()).await
}

/// `$cql` of `expression` (with more parameters).
async fn cql(router: &Router, expression: &str, more: &[Value]) -> Answer {
    let mut params = vec![json!({"name": "expression", "valueString": expression})];
    params.extend(more.iter().cloned());
    post(router, "$cql", json!(params)).await
}

/// The `parameter`s of a 200 Parameters answer.
fn returns(a: &Answer) -> Vec<Value> {
    let v = a.ok();
    assert_eq!(v["resourceType"], "Parameters", "{v}");
    v["parameter"].as_array().cloned().unwrap_or_default()
}

/// The single `return` of a `$cql` answer.
fn one(a: &Answer) -> Value {
    let r = returns(a);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["name"], "return");
    r[0].clone()
}

fn subject(s: &str) -> Value {
    json!({"name": "subject", "valueString": s})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_evaluates_arithmetic() {
    let api = api().await;
    assert_eq!(one(&cql(&api, "1 + 2", &[]).await)["valueInteger"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_retrieves_in_the_subject_context() {
    let api = api().await;
    for s in ["Patient/p1", "p1"] {
        let a = cql(&api, "Count([Observation])", &[subject(s)]).await;
        assert_eq!(one(&a)["valueInteger"], 2, "{s}");
    }
    let a = cql(&api, "Count([Observation])", &[subject("p2")]).await;
    assert_eq!(one(&a)["valueInteger"], 1);
    // Unfiltered: every Observation.
    let a = cql(&api, "Count([Observation])", &[]).await;
    assert_eq!(one(&a)["valueInteger"], 3);
    let a = cql(&api, "Patient.gender", &[subject("p1")]).await;
    assert_eq!(one(&a)["valueString"], "female");
    let a = cql(&api, "Patient.birthDate", &[subject("p1")]).await;
    assert_eq!(one(&a)["valueDate"], "1980-05-01");
    let a = cql(
        &api,
        "[Observation: code in Code { code: '8480-6', system: 'http://loinc.org' }]",
        &[subject("p2")],
    )
    .await;
    assert_eq!(one(&a)["resource"]["id"], "o2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_takes_parameters() {
    let api = api().await;
    let params = json!({"name": "parameters", "resource": {"resourceType": "Parameters", "parameter": [
        {"name": "X", "valueInteger": 41},
        {"name": "Ys", "valueString": "a"},
        {"name": "Ys", "valueString": "b"},
        {"name": "Start", "valueDate": "2020-02-03"},
    ]}});
    let a = cql(&api, "X + 1", std::slice::from_ref(&params)).await;
    assert_eq!(one(&a)["valueInteger"], 42);
    let a = cql(&api, "Count(Ys)", std::slice::from_ref(&params)).await;
    assert_eq!(one(&a)["valueInteger"], 2);
    let a = cql(&api, "Start + 1 day", &[params]).await;
    assert_eq!(one(&a)["valueDate"], "2020-02-04");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_answers_every_result_type() {
    let api = api().await;
    let cases: Vec<(&str, Value)> = vec![
        ("1", json!({"valueInteger": 1})),
        ("1.5", json!({"valueDecimal": 1.5})),
        ("'abc'", json!({"valueString": "abc"})),
        ("true", json!({"valueBoolean": true})),
        ("@2020-01-02", json!({"valueDate": "2020-01-02"})),
        (
            "@2020-01-02T10:30:00.000Z",
            json!({"valueDateTime": "2020-01-02T10:30:00.000Z"}),
        ),
        ("@T10:30:00", json!({"valueTime": "10:30:00"})),
        (
            "5 'mg'",
            json!({"valueQuantity": {"value": 5, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}),
        ),
        (
            "Code { code: 'x', system: 'urn:s', display: 'X' }",
            json!({"valueCoding": {"system": "urn:s", "code": "x", "display": "X"}}),
        ),
        (
            "Concept { codes: { Code { code: 'x', system: 'urn:s' } }, display: 'd' }",
            json!({"valueCodeableConcept": {"coding": [{"system": "urn:s", "code": "x"}], "text": "d"}}),
        ),
        (
            "Interval[@2020-01-01T00:00:00Z, @2020-12-31T00:00:00Z]",
            json!({"valuePeriod": {"start": "2020-01-01T00:00:00Z", "end": "2020-12-31T00:00:00Z"}}),
        ),
        (
            "Interval[1 'kg', 2 'kg']",
            json!({"valueRange": {
                "low": {"value": 1, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
                "high": {"value": 2, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}}),
        ),
        (
            "Tuple { a: 1, b: 'x', c: {2, 3} }",
            json!({"part": [
                {"name": "a", "valueInteger": 1},
                {"name": "b", "valueString": "x"},
                {"name": "c", "valueInteger": 2},
                {"name": "c", "valueInteger": 3}]}),
        ),
        (
            "null",
            json!({"_valueString": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}}),
        ),
        (
            "List<Integer>{}",
            json!({"_valueString": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/cqf-isEmptyList", "valueBoolean": true}]}}),
        ),
    ];
    for (expr, want) in cases {
        let a = cql(&api, expr, &[]).await;
        let mut got = one(&a);
        got.as_object_mut().unwrap().remove("name");
        assert_eq!(got, want, "{expr}");
    }
    // A list: one `return` per element.
    let r = returns(&cql(&api, "{1, 2, 3}", &[]).await);
    let values: Vec<&Value> = r.iter().map(|p| &p["valueInteger"]).collect();
    assert_eq!(values, [1, 2, 3]);
    assert!(r.iter().all(|p| p["name"] == "return"));
    // A resource.
    let a = cql(&api, "[Patient]", &[subject("p1")]).await;
    let p = one(&a);
    assert_eq!(
        (&p["resource"]["resourceType"], &p["resource"]["id"]),
        (&json!("Patient"), &json!("p1"))
    );
    // A FHIR element keeps its type.
    let a = cql(
        &api,
        "First([Observation] O sort by id).value",
        &[subject("p1")],
    )
    .await;
    assert_eq!(one(&a)["valueQuantity"]["value"], 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_errors() {
    let api = api().await;
    // A syntax error names its line and column and points at the expression.
    let a = cql(&api, "1 +\n  * 2", &[]).await;
    let issue = a.issue(400);
    assert_eq!(issue["code"], "invalid");
    let msg = issue["diagnostics"].as_str().unwrap();
    assert!(msg.contains("2:3"), "{msg}");
    assert_eq!(
        issue["expression"],
        json!(["Parameters.parameter[0].value"])
    );
    // No expression.
    let a = post(&api, "$cql", json!([subject("p1")])).await;
    let issue = a.issue(400);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("expression")
    );
    assert_eq!(issue["expression"], json!(["expression"]));
    // An unknown subject.
    let a = cql(&api, "1", &[subject("Patient/nobody")]).await;
    let issue = a.issue(404);
    assert_eq!(
        issue["expression"],
        json!(["Parameters.parameter[1].value"])
    );
    // An unknown identifier and a type mismatch: 400 before evaluation, with line and
    // column, pointing at the expression.
    let a = cql(&api, "1 +\n  Foo", &[]).await;
    let issue = a.issue(400);
    let msg = issue["diagnostics"].as_str().unwrap();
    assert!(
        msg.contains("line 2, column 3") && msg.contains("`Foo`"),
        "{msg}"
    );
    assert_eq!(
        issue["expression"],
        json!(["Parameters.parameter[0].value"])
    );
    let a = cql(&api, "Patient.gender + 1", &[subject("p1")]).await;
    let issue = a.issue(400);
    let msg = issue["diagnostics"].as_str().unwrap();
    assert!(
        msg.contains("line 1, column 16") && msg.contains("(String, Integer)"),
        "{msg}"
    );
    let a = cql(&api, "[Observation] O where O.status", &[]).await;
    let msg = a.issue(400)["diagnostics"].as_str().unwrap().to_string();
    assert!(msg.contains("must be a Boolean, not String"), "{msg}");
    // An evaluation error.
    let a = cql(&api, "singleton from { 1, 2 }", &[]).await;
    assert_eq!(a.issue(422)["code"], "processing");
    // An unknown parameter.
    let a = cql(&api, "1", &[json!({"name": "bogus", "valueString": "x"})]).await;
    assert_eq!(
        a.issue(400)["expression"],
        json!(["Parameters.parameter[1].name"])
    );
    // Ignored parameters.
    let a = cql(
        &api,
        "1",
        &[json!({"name": "dataEndpoint", "valueString": "x"})],
    )
    .await;
    assert_eq!(one(&a)["valueInteger"], 1);
    // GET is not allowed.
    let a = send(&api, "GET", "$cql?expression=1", "").await;
    assert_eq!(a.issue(405)["code"], "not-supported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_runaway_expressions_stop() {
    let api = api_with(true, Some(10_000)).await;
    let a = cql(
        &api,
        "Count(from (expand { Interval[1, 1000] }) A, (expand { Interval[1, 1000] }) B)",
        &[],
    )
    .await;
    let issue = a.issue(422);
    assert!(
        issue["diagnostics"].as_str().unwrap().contains("budget"),
        "{issue}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_results_are_answered() {
    let api = api().await;
    // The outer list is the `return` parameters themselves, so one level fewer of parts.
    for (wrap, parts) in [("{R}", 989), ("Tuple { a: R }", 990)] {
        let expr = format!("(expand {{ Interval[1, 990] }}) X aggregate R starting 1: {wrap}");
        let a = cql(&api, &expr, &[]).await;
        // 990 levels of parts, built, written and dropped without overflowing a stack
        // (deeper than serde_json parses by default, so counted in the text).
        assert_eq!(a.status.as_u16(), 200, "{wrap}");
        let body = String::from_utf8_lossy(&a.body);
        assert_eq!(body.matches("\"part\":[").count(), parts, "{wrap}");
        assert!(body.contains("\"valueInteger\":1}"), "{wrap}");
        // The same in XML.
        let params = json!({"resourceType": "Parameters",
            "parameter": [{"name": "expression", "valueString": expr}]});
        let a = send(&api, "POST", "$cql?_format=xml", &params.to_string()).await;
        assert_eq!(a.status.as_u16(), 200, "{wrap}");
        let body = String::from_utf8_lossy(&a.body);
        assert_eq!(body.matches("<part>").count(), parts, "{wrap}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_is_off_unless_enabled() {
    let api = api_with(false, None).await;
    let a = cql(&api, "1 + 2", &[]).await;
    let issue = a.issue(400);
    assert_eq!(issue["code"], "not-supported");
    assert_eq!(
        issue["diagnostics"],
        "Operation `$cql` is not enabled on this server (set ENABLE_OPERATION_CQL=true)."
    );
    let system_ops = |meta: Value| -> Vec<String> {
        meta["rest"][0]["operation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect()
    };
    let meta = send(&api, "GET", "metadata", "").await.ok();
    assert_eq!(
        system_ops(meta.clone()),
        ["versions", "totals", "export", "graphql"]
    );
    let library = meta["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Library")
        .unwrap()
        .clone();
    assert_eq!(library["operation"][0]["name"], "evaluate");
    let enabled = api_with(true, None).await;
    let meta = send(&enabled, "GET", "metadata", "").await.ok();
    assert_eq!(
        system_ops(meta),
        ["versions", "cql", "totals", "export", "graphql"]
    );
}

/// The values of a `Library/$evaluate` answer by name.
fn by_name(a: &Answer) -> Vec<(String, Value)> {
    returns(a)
        .into_iter()
        .map(|mut p| {
            let name = p["name"].as_str().unwrap().to_string();
            p.as_object_mut().unwrap().remove("name");
            (name, p)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_evaluate_at_the_instance_level() {
    let api = api().await;
    let a = post(
        &api,
        "Library/lib/$evaluate",
        json!([subject("Patient/p1")]),
    )
    .await;
    assert_eq!(
        by_name(&a),
        [
            ("Observation count".to_string(), json!({"valueInteger": 2})),
            ("Gender".to_string(), json!({"valueString": "female"})),
            ("Doubled".to_string(), json!({"valueInteger": 200})),
            ("Common answer".to_string(), json!({"valueInteger": 42})),
            ("Values".to_string(), json!({"valueDecimal": 95})),
            ("Values".to_string(), json!({"valueDecimal": 120})),
        ]
    );
    // Only the expressions asked, in that order; GET works too.
    let a = send(
        &api,
        "GET",
        "Library/lib/$evaluate?subject=p2&expression=Doubled&expression=Observation%20count",
        "",
    )
    .await;
    assert_eq!(
        by_name(&a),
        [
            ("Doubled".to_string(), json!({"valueInteger": 200})),
            ("Observation count".to_string(), json!({"valueInteger": 1})),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_evaluate_at_the_type_level_with_parameters() {
    let api = api().await;
    let params = json!({"name": "parameters", "resource": {"resourceType": "Parameters",
        "parameter": [{"name": "Threshold", "valueInteger": 5}]}});
    for url in [LIB_URL.to_string(), format!("{LIB_URL}|1.0")] {
        let a = post(
            &api,
            "Library/$evaluate",
            json!([
                {"name": "url", "valueCanonical": url},
                subject("p1"),
                {"name": "expression", "valueString": "Doubled"},
                {"name": "expression", "valueString": "Common answer"},
                params,
            ]),
        )
        .await;
        assert_eq!(
            by_name(&a),
            [
                ("Doubled".to_string(), json!({"valueInteger": 10})),
                ("Common answer".to_string(), json!({"valueInteger": 42})),
            ],
            "{url}"
        );
    }
    let a = send(
        &api,
        "GET",
        &format!("Library/$evaluate?url={LIB_URL}&expression=Doubled"),
        "",
    )
    .await;
    assert_eq!(
        by_name(&a),
        [("Doubled".to_string(), json!({"valueInteger": 200}))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_evaluate_errors() {
    let api = api().await;
    let a = post(&api, "Library/nothere/$evaluate", json!([])).await;
    assert_eq!(a.issue(404)["code"], "not-found");
    let a = send(
        &api,
        "GET",
        "Library/$evaluate?url=http://example.org/Library/nothere",
        "",
    )
    .await;
    assert_eq!(a.issue(404)["expression"], json!(["url"]));
    let a = send(
        &api,
        "GET",
        &format!("Library/$evaluate?url={LIB_URL}|9"),
        "",
    )
    .await;
    a.issue(404);
    let a = send(&api, "GET", "Library/$evaluate", "").await;
    assert_eq!(a.issue(400)["expression"], json!(["url"]));
    let a = send(&api, "GET", "Library/lib/$evaluate?expression=Nope", "").await;
    let issue = a.issue(400);
    assert_eq!(issue["expression"], json!(["expression"]));
    assert!(issue["diagnostics"].as_str().unwrap().contains("Nope"));
    let a = send(&api, "GET", "Library/lib/$evaluate?subject=nobody", "").await;
    assert_eq!(a.issue(404)["expression"], json!(["subject"]));
    let a = send(&api, "GET", "Library/broken/$evaluate", "").await;
    let issue = a.issue(400);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("syntax error at 3:1"),
        "{issue}"
    );
    assert_eq!(issue["expression"], json!(["Library.content"]));
    // Semantic errors of the stored library: 400 naming it, its version, line and column.
    for (id, want) in [
        (
            "invalid-ident",
            "`InvalidIdent version '2'`: error at line 3, column 19",
        ),
        (
            "invalid-type",
            "`InvalidType version '3'`: error at line 4, column 13",
        ),
    ] {
        let a = send(&api, "GET", &format!("Library/{id}/$evaluate"), "").await;
        let issue = a.issue(400);
        let msg = issue["diagnostics"].as_str().unwrap();
        assert!(msg.contains(want), "{msg}");
        assert_eq!(issue["expression"], json!(["Library.content"]));
    }
    let a = send(&api, "GET", "Patient/$evaluate", "").await;
    assert_eq!(a.issue(400)["code"], "not-supported");
}

/// Each define is evaluated in its own context: with a subject, `context Patient` defines
/// see the subject's data and `context Unfiltered` ones all of it, whichever refers to which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_evaluate_keeps_each_defines_context() {
    let api = api().await;
    let all = OBSERVATIONS.len() as i64;
    for p in ["p1", "p2"] {
        let mine = OBSERVATIONS.iter().filter(|(s, _)| *s == p).count() as i64;
        let a = post(
            &api,
            "Library/contexts/$evaluate",
            json!([subject(&format!("Patient/{p}"))]),
        )
        .await;
        let got = by_name(&a);
        let int = |n: &str| {
            got.iter()
                .find(|(k, _)| k == n)
                .unwrap_or_else(|| panic!("{n} in {got:?}"))
                .1["valueInteger"]
                .as_i64()
        };
        assert_eq!(int("Mine"), Some(mine), "{p}");
        assert_eq!(int("All observations"), Some(all), "{p}");
        assert_eq!(int("All patients"), Some(2), "{p}");
        assert_eq!(int("Mine, from an Unfiltered define"), Some(mine), "{p}");
        let share = got.iter().find(|(k, _)| k == "Share").unwrap().1["valueDecimal"]
            .as_f64()
            .unwrap();
        assert!(
            (share - mine as f64 / all as f64).abs() < 1e-6,
            "{p}: {share}"
        );
    }
    // Without a subject every define is unfiltered.
    let a = post(&api, "Library/contexts/$evaluate", json!([])).await;
    let got = by_name(&a);
    assert_eq!(got[0], ("Mine".to_string(), json!({"valueInteger": all})));
}
