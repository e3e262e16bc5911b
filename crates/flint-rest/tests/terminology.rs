//! Search modifiers answered by the terminology, through the real router over an in-memory
//! node: token `:in`/`:not-in` (stored ValueSets), `:below`/`:above` (stored CodeSystem
//! hierarchies), their errors and storage faults, and a terminology of one's own handed to
//! the state (search calls the trait, not a walk of its own).

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use flint_db::fault::{Faults, FaultyKv, Op};
use flint_db::mem::MemKv;
use flint_db::{Cf, Db, Node};
use flint_rest::{AppState, RestConfig};
use flint_terminology::{Coding, Direction, Terminology};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

async fn node(engine: &flint_search::Engine, kv: Arc<dyn flint_db::KvStore>) -> Node {
    flint_db::testing::memory_node(engine.indexer(), kv).await
}

fn config() -> RestConfig {
    RestConfig {
        base_url: "http://flint.test".into(),
        context_path: "/fhir".into(),
        ..RestConfig::default()
    }
}

/// Sends `method path` with a JSON body (or none); the status and the JSON answer.
async fn send(router: &Router, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(format!("/fhir/{path}"))
        .header("content-type", "application/fhir+json")
        .body(Body::from(body.map(Value::to_string).unwrap_or_default()))
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn put(router: &Router, path: &str, v: Value) {
    let (status, body) = send(router, "PUT", path, Some(&v)).await;
    assert!(status == 200 || status == 201, "PUT {path}: {body}");
}

/// The sorted ids of a search's matches.
async fn ids(router: &Router, q: &str) -> Vec<String> {
    let (status, b) = send(router, "GET", q, None).await;
    assert_eq!(status, 200, "GET {q}: {b}");
    let mut v: Vec<String> = b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The stored resources of the scenario search always answered (as flint-server's
/// `search_stored` test has them), plus a second version of the ValueSet and one with an
/// unsupported filter.
async fn scenario(router: &Router) {
    put(
        router,
        "Patient/p",
        json!({"resourceType": "Patient", "id": "p"}),
    )
    .await;
    // A ── A1
    //   └─ A2 ── A2a        B (A3 is a child of A by `parent` property)
    put(
        router,
        "CodeSystem/cs",
        json!({"resourceType": "CodeSystem", "id": "cs", "url": "http://x/cs",
        "status": "active", "content": "complete",
        "concept": [{"code": "A", "concept": [{"code": "A1"}, {"code": "A2", "concept": [{"code": "A2a"}]}]},
                    {"code": "B"},
                    {"code": "A3", "property": [{"code": "parent", "valueCode": "A"}]}]}),
    )
    .await;
    put(
        router,
        "ValueSet/vs",
        json!({"resourceType": "ValueSet", "id": "vs", "url": "http://x/vs", "version": "2",
        "status": "active", "compose": {"include": [
            {"system": "http://x/cs", "filter": [{"property": "concept", "op": "is-a", "value": "A2"}]},
            {"system": "http://x/cs", "concept": [{"code": "B"}]}]}}),
    )
    .await;
    put(
        router,
        "ValueSet/vs1",
        json!({"resourceType": "ValueSet", "id": "vs1", "url": "http://x/vs", "version": "1",
        "status": "active", "compose": {"include": [
            {"system": "http://x/cs", "concept": [{"code": "A1"}]}]}}),
    )
    .await;
    put(
        router,
        "ValueSet/exp",
        json!({"resourceType": "ValueSet", "id": "exp", "url": "http://x/exp",
        "status": "active", "expansion": {"timestamp": "2020-01-01", "contains": [
            {"system": "http://x/cs", "code": "A1"}, {"system": "http://other", "code": "B"}]}}),
    )
    .await;
    put(
        router,
        "ValueSet/regex",
        json!({"resourceType": "ValueSet", "id": "regex", "url": "http://x/regex",
        "status": "active", "compose": {"include": [
            {"system": "http://x/cs", "filter": [{"property": "concept", "op": "regex", "value": "A.*"}]}]}}),
    )
    .await;
    put(
        router,
        "ValueSet/nocs",
        json!({"resourceType": "ValueSet", "id": "nocs", "url": "http://x/nocs",
        "status": "active", "compose": {"include": [
            {"system": "http://x/none", "filter": [{"property": "concept", "op": "is-a", "value": "A"}]}]}}),
    )
    .await;
    for c in ["A", "A1", "A2", "A2a", "A3", "B"] {
        put(
            router,
            &format!("Condition/c{c}"),
            json!({"resourceType": "Condition", "id": format!("c{c}"),
            "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": "http://x/cs", "code": c}]}}),
        )
        .await;
    }
}

#[tokio::test]
async fn value_sets_and_code_systems_answer_token_modifiers() {
    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let node = node(&engine, Arc::new(MemKv::new())).await;
    let router = flint_rest::router(AppState::new(node, config(), engine));
    scenario(&router).await;
    // is-a A2 gives A2 and A2a; B is listed. (Without a version, the first id: `vs`.)
    assert_eq!(
        ids(&router, "Condition?code:in=http://x/vs").await,
        ["cA2", "cA2a", "cB"]
    );
    assert_eq!(
        ids(&router, "Condition?code:not-in=http://x/vs").await,
        ["cA", "cA1", "cA3"]
    );
    // A version picks that ValueSet.
    assert_eq!(
        ids(&router, "Condition?code:in=http://x/vs|1").await,
        ["cA1"]
    );
    assert_eq!(
        ids(&router, "Condition?code:in=http://x/vs|2").await,
        ["cA2", "cA2a", "cB"]
    );
    // An expansion is taken as is, systems included (B of another system matches nothing).
    assert_eq!(
        ids(&router, "Condition?code:in=http://x/exp").await,
        ["cA1"]
    );
    // Subsumption is reflexive; `parent` properties count as edges.
    assert_eq!(
        ids(&router, "Condition?code:below=http://x/cs|A").await,
        ["cA", "cA1", "cA2", "cA2a", "cA3"]
    );
    assert_eq!(
        ids(&router, "Condition?code:below=http://x/cs|A2").await,
        ["cA2", "cA2a"]
    );
    assert_eq!(
        ids(&router, "Condition?code:above=http://x/cs|A2a").await,
        ["cA", "cA2", "cA2a"]
    );
    // Inside reverse chains too.
    assert_eq!(
        ids(
            &router,
            "Patient?_has:Condition:subject:code:in=http://x/vs"
        )
        .await,
        ["p"]
    );
    // Unknown value sets and code systems are a 400 naming the parameter, unsupported
    // filters a 422.
    for (q, status, code, message) in [
        (
            "Condition?code:in=http://x/none",
            400,
            "code:in",
            "No ValueSet with url `http://x/none` is stored.",
        ),
        (
            "Condition?code:in=http://x/vs|3",
            400,
            "code:in",
            "No ValueSet with url `http://x/vs|3` is stored.",
        ),
        (
            "Condition?code:not-in=http://x/nocs",
            400,
            "code:not-in",
            "ValueSet `http://x/nocs` filters CodeSystem `http://x/none`, which is not stored.",
        ),
        (
            "Condition?code:in=http://x/regex",
            422,
            "code:in",
            "ValueSet `http://x/regex` uses the filter operator `regex`; only is-a and \
             descendent-of are supported.",
        ),
        (
            "Condition?code:below=http://none|A",
            400,
            "code:below",
            "No CodeSystem with url `http://none` is stored, so `:below` cannot be evaluated.",
        ),
    ] {
        let (st, oo) = send(&router, "GET", q, None).await;
        assert_eq!(st, status, "{q}: {oo}");
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert_eq!(oo["issue"][0]["expression"][0], code, "{q}: {oo}");
        assert_eq!(oo["issue"][0]["diagnostics"], message, "{q}: {oo}");
    }
}

#[tokio::test]
async fn storage_faults_of_terminology_are_503() {
    let faults = Faults::new();
    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let kv = Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone()));
    let node = node(&engine, kv).await;
    let router = flint_rest::router(AppState::new(node, config(), engine));
    scenario(&router).await;
    // The first index scan of each search is the terminology's look-up by url; for the
    // ValueSet of `vs` the second is the look-up of its filtered CodeSystem.
    for (q, skip) in [
        ("Condition?code:in=http://x/vs", 0),
        ("Condition?code:in=http://x/vs", 1),
        ("Condition?code:below=http://x/cs|A", 0),
    ] {
        faults.fail(|op| op == Op::Seek(Cf::SearchParamValue), skip, 1);
        let (st, oo) = send(&router, "GET", q, None).await;
        assert_eq!(st, 503, "{q} (skip {skip}): {oo}");
        assert_eq!(oo["issue"][0]["code"], "transient", "{oo}");
        faults.heal();
    }
    assert_eq!(faults.injected(), 3);
    assert_eq!(
        ids(&router, "Condition?code:in=http://x/vs").await,
        ["cA2", "cA2a", "cB"]
    );
}

/// A terminology of its own: every ValueSet is `{cs|A1}`, every code subsumes `B` only.
#[derive(Default)]
struct Fixed {
    calls: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Terminology for Fixed {
    async fn expand(&self, _db: &Db, url: &str) -> flint_terminology::Result<Vec<Coding>> {
        self.calls.lock().unwrap().push(format!("expand {url}"));
        Ok(vec![Coding::new("http://x/cs", "A1")])
    }

    async fn closure(
        &self,
        _db: &Db,
        system: &str,
        code: &str,
        direction: Direction,
    ) -> flint_terminology::Result<Option<Vec<String>>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("closure {system} {code} {direction:?}"));
        Ok(Some(vec!["B".to_string()]))
    }
}

#[tokio::test]
async fn search_asks_the_terminology_it_is_given() {
    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let node = node(&engine, Arc::new(MemKv::new())).await;
    let fixed = Arc::new(Fixed::default());
    let router = flint_rest::router(AppState::with_terminology(
        node,
        config(),
        engine,
        fixed.clone(),
    ));
    scenario(&router).await;
    assert_eq!(
        ids(&router, "Condition?code:in=http://nowhere").await,
        ["cA1"]
    );
    assert_eq!(
        ids(&router, "Condition?code:above=http://x/cs|A").await,
        ["cB"]
    );
    assert_eq!(
        *fixed.calls.lock().unwrap(),
        ["expand http://nowhere", "closure http://x/cs A Ancestors"]
    );
}
