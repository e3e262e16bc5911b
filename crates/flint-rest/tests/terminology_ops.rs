//! The terminology operations over real HTTP (the router served on a local socket, an
//! in-memory node): `ValueSet/$expand`, `ValueSet/$validate-code`,
//! `CodeSystem/$validate-code`, `CodeSystem/$lookup`, `CodeSystem/$subsumes` and
//! `ConceptMap/$translate`, at the type and instance levels, by GET and POST, over stored,
//! built-in R4 core and `tx-resource` resources; their errors; the switch
//! `ENABLE_TERMINOLOGY_SERVICE`; storage faults.

use flint_db::Cf;
use flint_db::fault::{Faults, FaultyKv, Op};
use flint_db::mem::MemKv;
use flint_rest::{AppState, RestConfig};
use flint_terminology::builtin;
use serde_json::{Value, json};
use std::sync::Arc;

const CS: &str = "http://x/cs";
const GENDER_VS: &str = "http://hl7.org/fhir/ValueSet/administrative-gender";
const GENDER_CS: &str = "http://hl7.org/fhir/administrative-gender";

/// A server on a local port; its base URL.
struct Server {
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(kv: Arc<dyn flint_db::KvStore>, adjust: impl FnOnce(&mut RestConfig)) -> Server {
    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let node = flint_db::testing::memory_node(engine.indexer(), kv).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = RestConfig {
        base_url: format!("http://{addr}"),
        context_path: "/fhir".into(),
        enable_terminology_service: true,
        ..RestConfig::default()
    };
    adjust(&mut config);
    let router = flint_rest::router(AppState::new(node, config, engine));
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Server {
        base: format!("http://{addr}/fhir"),
        client: reqwest::Client::new(),
        task,
    }
}

impl Server {
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}/{path}", self.base);
        let mut req = self
            .client
            .request(method.parse().unwrap(), url)
            .header("accept", "application/fhir+json");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/fhir+json")
                .body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }

    /// POST of a `Parameters` body of `(name, value object)` pairs.
    async fn post(&self, path: &str, params: &[(&str, Value)]) -> (u16, Value) {
        let parameter: Vec<Value> = params
            .iter()
            .map(|(n, v)| {
                let mut o = v.as_object().unwrap().clone();
                o.insert("name".into(), json!(n));
                Value::Object(o)
            })
            .collect();
        let body = json!({"resourceType": "Parameters", "parameter": parameter});
        self.send("POST", path, Some(&body)).await
    }

    async fn put(&self, r: Value) {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let (st, b) = self.send("PUT", &path, Some(&r)).await;
        assert!(st == 200 || st == 201, "PUT {path}: {b}");
    }

    /// The server with the scenario's CodeSystem, ValueSets and ConceptMap stored.
    async fn scenario(&self) {
        self.put(code_system()).await;
        self.put(
            json!({"resourceType": "ValueSet", "id": "as", "url": "http://x/vs/as",
            "version": "1", "name": "As", "status": "active",
            "compose": {"include": [{"system": CS, "filter": [
                {"property": "concept", "op": "is-a", "value": "A"}]}]}}),
        )
        .await;
        self.put(
            json!({"resourceType": "ValueSet", "id": "mixed", "url": "http://x/vs/mixed",
            "status": "active", "compose": {
                "include": [{"valueSet": ["http://x/vs/as"]},
                            {"system": CS, "concept": [{"code": "B"}, {"code": "C"}]},
                            {"system": GENDER_CS, "concept": [{"code": "male"}]}],
                "exclude": [{"system": CS, "concept": [{"code": "A2"}]}]}}),
        )
        .await;
        self.put(
            json!({"resourceType": "ConceptMap", "id": "cm", "url": "http://x/cm",
            "status": "active", "sourceUri": "http://x/vs/as", "targetUri": "http://y/vs",
            "group": [
                {"source": CS, "target": "http://y", "element": [
                    {"code": "A", "display": "Alpha animal", "target": [
                        {"code": "a", "equivalence": "equivalent"},
                        {"code": "aa", "equivalence": "wider"}]}]},
                {"source": CS, "target": "http://z", "element": [
                    {"code": "A1", "target": [{"code": "z1", "equivalence": "narrower"}]}]}]}),
        )
        .await;
    }
}

/// A ── A1
///   └─ A2 ── A2a        B (retired)      C
fn code_system() -> Value {
    json!({"resourceType": "CodeSystem", "id": "cs", "url": CS, "version": "2",
        "name": "X", "status": "active", "content": "complete",
        "concept": [
            {"code": "A", "display": "Alpha animal", "concept": [
                {"code": "A1", "display": "Alpha one"},
                {"code": "A2", "display": "Alpha two", "concept": [
                    {"code": "A2a", "display": "Alpha two a",
                     "designation": [{"language": "de", "value": "Alfa zwei a"}]}]}]},
            {"code": "B", "display": "Beta", "property": [{"code": "status", "valueCode": "retired"}]},
            {"code": "C", "display": "Gamma"}]})
}

/// The codes of an expansion's `contains`.
fn codes(vs: &Value) -> Vec<String> {
    vs["expansion"]["contains"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect()
}

/// The parameter `name` of a Parameters answer.
fn param<'v>(p: &'v Value, name: &str) -> &'v Value {
    p["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == name)
        .unwrap_or(&Value::Null)
}

/// Asserts an OperationOutcome of `status` with issue `code` at `expression` (if any).
fn assert_issue(answer: &(u16, Value), status: u16, code: &str, expression: Option<&str>) {
    let (st, oo) = answer;
    assert_eq!(*st, status, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome", "{oo}");
    assert_eq!(oo["issue"][0]["code"], code, "{oo}");
    if let Some(x) = expression {
        assert_eq!(oo["issue"][0]["expression"][0], x, "{oo}");
    }
}

fn gender_codes() -> Vec<String> {
    builtin::code_system(GENDER_CS)
        .unwrap()
        .concepts
        .iter()
        .map(|c| c.code.clone())
        .collect()
}

#[tokio::test]
async fn off_by_default_and_listed_when_on() {
    let off = serve(Arc::new(MemKv::new()), |c| {
        c.enable_terminology_service = false
    })
    .await;
    for path in [
        format!("ValueSet/$expand?url={GENDER_VS}"),
        format!("CodeSystem/$lookup?system={GENDER_CS}&code=male"),
        "ConceptMap/$translate?url=http://x/cm&code=A".into(),
    ] {
        let a = off.get(&path).await;
        assert_issue(&a, 400, "not-supported", None);
        assert!(
            a.1["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains("ENABLE_TERMINOLOGY_SERVICE")
        );
    }
    let listed = |cs: &Value, ty: &str| -> Vec<String> {
        cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == ty)
            .and_then(|r| r["operation"].as_array())
            .into_iter()
            .flatten()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .filter(|n| n != "graphql" && n != "graph")
            .collect()
    };
    let (_, cs) = off.get("metadata").await;
    assert!(!listed(&cs, "ValueSet").contains(&"expand".to_string()));
    let on = serve(Arc::new(MemKv::new()), |_| {}).await;
    let (_, cs) = on.get("metadata").await;
    assert_eq!(listed(&cs, "ValueSet"), ["expand", "validate-code"]);
    assert_eq!(
        listed(&cs, "CodeSystem"),
        ["validate-code", "lookup", "subsumes"]
    );
    assert_eq!(listed(&cs, "ConceptMap"), ["translate"]);
    // Other types do not have them.
    let a = on.get("Patient/$expand").await;
    assert_issue(&a, 400, "not-supported", None);
}

#[tokio::test]
async fn expand_built_in_value_sets_on_an_empty_server() {
    let s = serve(Arc::new(MemKv::new()), |_| {}).await;
    let (st, vs) = s.get(&format!("ValueSet/$expand?url={GENDER_VS}")).await;
    assert_eq!(st, 200, "{vs}");
    assert_eq!(vs["resourceType"], "ValueSet");
    assert_eq!(vs["url"], GENDER_VS);
    assert_eq!(codes(&vs), gender_codes());
    assert_eq!(vs["expansion"]["total"], json!(gender_codes().len()));
    assert!(vs["expansion"]["timestamp"].is_string());
    assert_eq!(vs["expansion"]["contains"][0]["system"], GENDER_CS);
    let (st, post) = s
        .post(
            "ValueSet/$expand",
            &[("url", json!({"valueUri": GENDER_VS}))],
        )
        .await;
    assert_eq!(st, 200, "{post}");
    assert_eq!(codes(&post), gender_codes());
    // The version the package has, and one it lacks.
    let (st, _) = s
        .get(&format!(
            "ValueSet/$expand?url={GENDER_VS}&valueSetVersion=4.0.1"
        ))
        .await;
    assert_eq!(st, 200);
    let a = s
        .get(&format!(
            "ValueSet/$expand?url={GENDER_VS}&valueSetVersion=9"
        ))
        .await;
    assert_issue(&a, 404, "not-found", Some("url"));
}

#[tokio::test]
async fn expand_stored_value_sets_with_every_parameter() {
    let s = serve(Arc::new(MemKv::new()), |_| {}).await;
    s.scenario().await;
    let (st, all) = s.get("ValueSet/$expand?url=http://x/vs/mixed").await;
    assert_eq!(st, 200, "{all}");
    assert_eq!(codes(&all), ["A", "A1", "A2a", "B", "C", "male"]);
    assert!(all.get("compose").is_none());
    // Instance level, and a version.
    let (st, inst) = s.get("ValueSet/as/$expand").await;
    assert_eq!(st, 200, "{inst}");
    assert_eq!(codes(&inst), ["A", "A1", "A2", "A2a"]);
    let (_, v1) = s
        .get("ValueSet/$expand?url=http://x/vs/as&valueSetVersion=1")
        .await;
    assert_eq!(codes(&v1), codes(&inst));
    // Pages are slices of the whole expansion, with its total.
    let every = codes(&all);
    for (offset, count) in [(0, 2), (2, 3), (5, 10), (9, 1)] {
        let (st, page) = s
            .get(&format!(
                "ValueSet/$expand?url=http://x/vs/mixed&offset={offset}&count={count}"
            ))
            .await;
        assert_eq!(st, 200, "{page}");
        let expected: Vec<String> = every.iter().skip(offset).take(count).cloned().collect();
        assert_eq!(codes(&page), expected, "{offset} {count}");
        assert_eq!(page["expansion"]["total"], json!(every.len()));
        assert_eq!(page["expansion"]["offset"], json!(offset));
    }
    // system-version: the version of a system where an include names none.
    let (st, _) = s
        .get(&format!(
            "ValueSet/$expand?url=http://x/vs/as&system-version={CS}|2"
        ))
        .await;
    assert_eq!(st, 200);
    assert_issue(
        &s.get(&format!(
            "ValueSet/$expand?url=http://x/vs/as&system-version={CS}|7"
        ))
        .await,
        404,
        "not-found",
        None,
    );
    // filter: every word prefixes a word of the display or a designation.
    let (_, f) = s
        .get("ValueSet/$expand?url=http://x/vs/mixed&filter=alpha%20tw")
        .await;
    assert_eq!(codes(&f), ["A2a"]);
    assert_eq!(param(&f["expansion"], "filter")["valueString"], "alpha tw");
    let (_, f) = s
        .get("ValueSet/$expand?url=http://x/vs/mixed&filter=zwe")
        .await;
    assert_eq!(codes(&f), ["A2a"]);
    // activeOnly drops the retired B; includeDefinition keeps the compose.
    let (_, active) = s
        .get("ValueSet/$expand?url=http://x/vs/mixed&activeOnly=true&includeDefinition=true")
        .await;
    assert_eq!(codes(&active), ["A", "A1", "A2a", "C", "male"]);
    assert!(active["compose"]["include"].is_array());
    let (_, b) = s
        .get("ValueSet/$expand?url=http://x/vs/mixed&filter=beta")
        .await;
    assert_eq!(b["expansion"]["contains"][0]["inactive"], true);
    // displayLanguage and includeDesignations.
    let (_, de) = s
        .get("ValueSet/$expand?url=http://x/vs/as&displayLanguage=de&includeDesignations=true&excludeNested=true")
        .await;
    let a2a = &de["expansion"]["contains"][3];
    assert_eq!(a2a["display"], "Alfa zwei a");
    assert_eq!(a2a["designation"][0]["language"], "de");
    // A ValueSet in the request, over a CodeSystem in the request.
    let (st, posted) = s
        .post(
            "ValueSet/$expand",
            &[
                (
                    "valueSet",
                    json!({"resource": {"resourceType": "ValueSet", "status": "active",
                        "compose": {"include": [{"system": "http://own"}]}}}),
                ),
                (
                    "tx-resource",
                    json!({"resource": {"resourceType": "CodeSystem", "url": "http://own",
                        "status": "active", "content": "complete",
                        "concept": [{"code": "o1"}, {"code": "o2"}]}}),
                ),
                ("count", json!({"valueInteger": 1})),
            ],
        )
        .await;
    assert_eq!(st, 200, "{posted}");
    assert_eq!(codes(&posted), ["o1"]);
    assert_eq!(posted["expansion"]["total"], 2);
}

#[tokio::test]
async fn expand_errors() {
    let s = serve(Arc::new(MemKv::new()), |c| c.expand_max_size = 3).await;
    s.scenario().await;
    assert_issue(
        &s.get("ValueSet/$expand").await,
        400,
        "invalid",
        Some("url"),
    );
    assert_issue(
        &s.get("ValueSet/$expand?url=http://x/none").await,
        404,
        "not-found",
        Some("url"),
    );
    assert_issue(
        &s.get("ValueSet/none/$expand").await,
        404,
        "not-found",
        None,
    );
    assert_issue(
        &s.get("ValueSet/$expand?url=http://x/vs/as&count=many")
            .await,
        400,
        "invalid",
        Some("count"),
    );
    assert_issue(
        &s.get("ValueSet/$expand?url=http://x/vs/as&activeOnly=yes")
            .await,
        400,
        "invalid",
        Some("activeOnly"),
    );
    assert_issue(
        &s.get("ValueSet/$expand?url=http://x/vs/as&colour=red")
            .await,
        400,
        "invalid",
        Some("colour"),
    );
    assert_issue(
        &s.post(
            "ValueSet/$expand",
            &[("valueSet", json!({"valueString": "x"}))],
        )
        .await,
        400,
        "invalid",
        Some("Parameters.parameter[0]"),
    );
    // Four members, three allowed: too costly unless paged.
    assert_issue(
        &s.get("ValueSet/$expand?url=http://x/vs/as").await,
        409,
        "too-costly",
        None,
    );
    let (st, page) = s.get("ValueSet/$expand?url=http://x/vs/as&count=3").await;
    assert_eq!((st, codes(&page).len()), (200, 3));
    // A compose over a system nobody knows; an operator that is not supported.
    let unknown = json!({"resource": {"resourceType": "ValueSet", "status": "active",
        "compose": {"include": [{"system": "http://nobody"}]}}});
    assert_issue(
        &s.post("ValueSet/$expand", &[("valueSet", unknown)]).await,
        404,
        "not-found",
        None,
    );
    let odd = json!({"resource": {"resourceType": "ValueSet", "status": "active",
        "compose": {"include": [{"system": CS, "filter": [
            {"property": "concept", "op": "sounds-like", "value": "A"}]}]}}});
    assert_issue(
        &s.post("ValueSet/$expand", &[("valueSet", odd)]).await,
        422,
        "not-supported",
        None,
    );
}

#[tokio::test]
async fn validate_code_in_value_sets() {
    let s = serve(Arc::new(MemKv::new()), |_| {}).await;
    s.scenario().await;
    let result = |p: &Value| param(p, "result")["valueBoolean"].as_bool();
    let (st, ok) = s
        .get(&format!(
            "ValueSet/$validate-code?url=http://x/vs/mixed&system={CS}&code=A1"
        ))
        .await;
    assert_eq!(st, 200, "{ok}");
    assert_eq!(result(&ok), Some(true));
    assert_eq!(param(&ok, "display")["valueString"], "Alpha one");
    // Excluded, and not in it.
    for code in ["A2", "Z"] {
        let (_, no) = s
            .get(&format!(
                "ValueSet/$validate-code?url=http://x/vs/mixed&system={CS}&code={code}"
            ))
            .await;
        assert_eq!(result(&no), Some(false), "{code}: {no}");
        assert!(param(&no, "message")["valueString"].is_string());
    }
    // A wrong display is a warning.
    let (_, warn) = s
        .get(&format!(
            "ValueSet/$validate-code?url=http://x/vs/mixed&system={CS}&code=A1&display=Alpha%201"
        ))
        .await;
    assert_eq!(result(&warn), Some(true));
    assert!(
        param(&warn, "message")["valueString"]
            .as_str()
            .unwrap()
            .starts_with("Warning")
    );
    // inferSystem.
    let (_, bare) = s
        .get("ValueSet/$validate-code?url=http://x/vs/mixed&code=male")
        .await;
    assert_eq!(result(&bare), Some(false));
    let (_, inferred) = s
        .get("ValueSet/$validate-code?url=http://x/vs/mixed&code=male&inferSystem=true")
        .await;
    assert_eq!(result(&inferred), Some(true));
    assert_eq!(param(&inferred, "system")["valueUri"], GENDER_CS);
    // coding and codeableConcept by POST; the instance level.
    let (_, c) = s
        .post(
            "ValueSet/as/$validate-code",
            &[(
                "coding",
                json!({"valueCoding": {"system": CS, "code": "A2a"}}),
            )],
        )
        .await;
    assert_eq!(result(&c), Some(true), "{c}");
    let (_, cc) = s
        .post(
            "ValueSet/$validate-code",
            &[
                ("url", json!({"valueUri": "http://x/vs/as"})),
                (
                    "codeableConcept",
                    json!({"valueCodeableConcept": {"coding": [
                        {"system": "http://other", "code": "A"}, {"system": CS, "code": "A"}]}}),
                ),
            ],
        )
        .await;
    assert_eq!(result(&cc), Some(true), "{cc}");
    let (_, q) = s
        .get(&format!(
            "ValueSet/$validate-code?url=http://x/vs/as&coding={CS}|A2"
        ))
        .await;
    assert_eq!(result(&q), Some(true), "{q}");
    // Built in, on the same server.
    let (_, g) = s
        .get(&format!(
            "ValueSet/$validate-code?url={GENDER_VS}&system={GENDER_CS}&code=female"
        ))
        .await;
    assert_eq!(result(&g), Some(true));
    let (_, g) = s
        .get(&format!(
            "ValueSet/$validate-code?url={GENDER_VS}&system={GENDER_CS}&code=woman"
        ))
        .await;
    assert_eq!(result(&g), Some(false));
    // Errors.
    assert_issue(
        &s.get("ValueSet/$validate-code?url=http://x/none&system=a&code=b")
            .await,
        404,
        "not-found",
        Some("url"),
    );
    assert_issue(
        &s.get("ValueSet/$validate-code?url=http://x/vs/as").await,
        400,
        "invalid",
        Some("code"),
    );
    assert_issue(
        &s.get(&format!("ValueSet/$validate-code?system={CS}&code=A"))
            .await,
        400,
        "invalid",
        Some("url"),
    );
    assert_issue(
        &s.get("ValueSet/$validate-code?url=http://x/vs/as&code=A&inferSystem=maybe")
            .await,
        400,
        "invalid",
        Some("inferSystem"),
    );
}

#[tokio::test]
async fn validate_code_in_code_systems() {
    let s = serve(Arc::new(MemKv::new()), |_| {}).await;
    s.scenario().await;
    let result = |p: &Value| param(p, "result")["valueBoolean"].as_bool();
    for c in code_system()["concept"].as_array().unwrap() {
        let code = c["code"].as_str().unwrap();
        let (_, ok) = s
            .get(&format!("CodeSystem/$validate-code?url={CS}&code={code}"))
            .await;
        assert_eq!(result(&ok), Some(true), "{code}: {ok}");
        assert_eq!(param(&ok, "display")["valueString"], c["display"]);
    }
    let (_, no) = s
        .get(&format!("CodeSystem/$validate-code?url={CS}&code=Z"))
        .await;
    assert_eq!(result(&no), Some(false));
    let (_, inst) = s.get("CodeSystem/cs/$validate-code?code=A2a").await;
    assert_eq!(result(&inst), Some(true));
    let (_, coding) = s
        .post(
            "CodeSystem/$validate-code",
            &[(
                "coding",
                json!({"valueCoding": {"system": GENDER_CS, "code": "other"}}),
            )],
        )
        .await;
    assert_eq!(result(&coding), Some(true), "{coding}");
    let (_, posted) = s
        .post(
            "CodeSystem/$validate-code",
            &[
                ("codeSystem", json!({"resource": code_system()})),
                ("code", json!({"valueCode": "C"})),
                ("display", json!({"valueString": "Gamma"})),
            ],
        )
        .await;
    assert_eq!(result(&posted), Some(true));
    assert_eq!(param(&posted, "message"), &Value::Null);
    assert_issue(
        &s.get("CodeSystem/$validate-code?url=http://x/none&code=A")
            .await,
        404,
        "not-found",
        Some("url"),
    );
    assert_issue(
        &s.get("CodeSystem/$validate-code?code=A").await,
        400,
        "invalid",
        Some("url"),
    );
}

#[tokio::test]
async fn lookup_codes() {
    let s = serve(Arc::new(MemKv::new()), |_| {}).await;
    s.scenario().await;
    let (st, l) = s
        .get(&format!("CodeSystem/$lookup?system={CS}&code=A2"))
        .await;
    assert_eq!(st, 200, "{l}");
    assert_eq!(param(&l, "name")["valueString"], "X");
    assert_eq!(param(&l, "version")["valueString"], "2");
    assert_eq!(param(&l, "display")["valueString"], "Alpha two");
    let props: Vec<(String, String)> = l["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "property")
        .filter_map(|p| {
            Some((
                p["part"][0]["valueCode"].as_str()?.to_string(),
                p["part"][1]["valueCode"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert_eq!(
        props,
        [
            ("parent".to_string(), "A".to_string()),
            ("child".into(), "A2a".into())
        ]
    );
    let (_, d) = s
        .get("CodeSystem/cs/$lookup?code=A2a&property=designation&displayLanguage=de")
        .await;
    assert_eq!(param(&d, "display")["valueString"], "Alfa zwei a");
    assert_eq!(
        param(&d, "designation")["part"][1]["valueString"],
        "Alfa zwei a"
    );
    assert_eq!(param(&d, "property"), &Value::Null);
    let (_, g) = s
        .post(
            "CodeSystem/$lookup",
            &[(
                "coding",
                json!({"valueCoding": {"system": GENDER_CS, "code": "male"}}),
            )],
        )
        .await;
    let male = builtin::code_system(GENDER_CS).unwrap();
    assert_eq!(
        param(&g, "display")["valueString"].as_str(),
        male.concept("male").unwrap().display.as_deref()
    );
    assert_issue(
        &s.get(&format!("CodeSystem/$lookup?system={CS}&code=Z"))
            .await,
        404,
        "not-found",
        Some("code"),
    );
    assert_issue(
        &s.get("CodeSystem/$lookup?system=http://x/none&code=Z")
            .await,
        404,
        "not-found",
        Some("system"),
    );
    assert_issue(
        &s.get(&format!("CodeSystem/$lookup?system={CS}")).await,
        400,
        "invalid",
        Some("code"),
    );
    assert_issue(
        &s.get("CodeSystem/$lookup?code=A").await,
        400,
        "invalid",
        Some("system"),
    );
}

#[tokio::test]
async fn subsumes_codes() {
    let s = serve(Arc::new(MemKv::new()), |_| {}).await;
    s.scenario().await;
    for (a, b, outcome) in [
        ("A", "A2a", "subsumes"),
        ("A2a", "A", "subsumed-by"),
        ("A1", "A1", "equivalent"),
        ("A1", "A2", "not-subsumed"),
        ("B", "C", "not-subsumed"),
    ] {
        let (st, p) = s
            .get(&format!(
                "CodeSystem/$subsumes?system={CS}&codeA={a}&codeB={b}"
            ))
            .await;
        assert_eq!(st, 200, "{p}");
        assert_eq!(param(&p, "outcome")["valueCode"], outcome, "{a} {b}");
    }
    let (_, p) = s.get("CodeSystem/cs/$subsumes?codeA=A2&codeB=A2a").await;
    assert_eq!(param(&p, "outcome")["valueCode"], "subsumes");
    let (_, p) = s
        .post(
            "CodeSystem/$subsumes",
            &[
                (
                    "codingA",
                    json!({"valueCoding": {"system": CS, "code": "A2a"}}),
                ),
                (
                    "codingB",
                    json!({"valueCoding": {"system": CS, "code": "A"}}),
                ),
            ],
        )
        .await;
    assert_eq!(param(&p, "outcome")["valueCode"], "subsumed-by", "{p}");
    assert_issue(
        &s.get(&format!("CodeSystem/$subsumes?system={CS}&codeA=A&codeB=Z"))
            .await,
        404,
        "not-found",
        Some("codeB"),
    );
    assert_issue(
        &s.get(&format!("CodeSystem/$subsumes?system={CS}&codeA=A"))
            .await,
        400,
        "invalid",
        Some("codeB"),
    );
    assert_issue(
        &s.post(
            "CodeSystem/$subsumes",
            &[
                (
                    "codingA",
                    json!({"valueCoding": {"system": CS, "code": "A"}}),
                ),
                (
                    "codingB",
                    json!({"valueCoding": {"system": "http://other", "code": "A"}}),
                ),
            ],
        )
        .await,
        400,
        "invalid",
        Some("Parameters.parameter[1]"),
    );
}

#[tokio::test]
async fn translate_codes() {
    let s = serve(Arc::new(MemKv::new()), |_| {}).await;
    s.scenario().await;
    let matches = |p: &Value| -> Vec<(String, String)> {
        p["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["name"] == "match")
            .map(|m| {
                (
                    m["part"][0]["valueCode"].as_str().unwrap().to_string(),
                    m["part"][1]["valueCoding"]["code"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    let (st, p) = s
        .get(&format!(
            "ConceptMap/$translate?url=http://x/cm&system={CS}&code=A"
        ))
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(param(&p, "result")["valueBoolean"], true);
    assert_eq!(matches(&p), [pair("equivalent", "a"), pair("wider", "aa")]);
    assert_eq!(p["parameter"][1]["part"][2]["valueUri"], "http://x/cm");
    let (_, p) = s
        .get(&format!(
            "ConceptMap/cm/$translate?system={CS}&code=A1&targetsystem=http://z"
        ))
        .await;
    assert_eq!(matches(&p), [pair("narrower", "z1")]);
    let (_, p) = s
        .get("ConceptMap/cm/$translate?system=http://y&code=aa&reverse=true")
        .await;
    assert_eq!(matches(&p), [pair("narrower", "A")]);
    let (_, p) = s
        .post(
            "ConceptMap/$translate",
            &[
                ("url", json!({"valueUri": "http://x/cm"})),
                (
                    "codeableConcept",
                    json!({"valueCodeableConcept": {"coding": [
                        {"system": CS, "code": "B"}, {"system": CS, "code": "A1"}]}}),
                ),
            ],
        )
        .await;
    assert_eq!(param(&p, "result")["valueBoolean"], true, "{p}");
    assert_eq!(matches(&p), [pair("narrower", "z1")]);
    let (_, p) = s
        .get(&format!(
            "ConceptMap/$translate?url=http://x/cm&system={CS}&code=C"
        ))
        .await;
    assert_eq!(param(&p, "result")["valueBoolean"], false);
    let (_, p) = s
        .get(&format!(
            "ConceptMap/$translate?url=http://x/cm&system={CS}&code=A&target=http://other/vs"
        ))
        .await;
    assert_eq!(param(&p, "result")["valueBoolean"], false);
    let (_, p) = s
        .get(&format!(
            "ConceptMap/$translate?url=http://x/cm&system={CS}&code=A&target=http://y/vs"
        ))
        .await;
    assert_eq!(param(&p, "result")["valueBoolean"], true);
    assert_issue(
        &s.get(&format!(
            "ConceptMap/$translate?url=http://x/none&system={CS}&code=A"
        ))
        .await,
        404,
        "not-found",
        Some("url"),
    );
    // Without a map: every stored map with the code.
    let (st, p) = s
        .get(&format!("ConceptMap/$translate?system={CS}&code=A"))
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(matches(&p), [pair("equivalent", "a"), pair("wider", "aa")]);
    assert_eq!(p["parameter"][1]["part"][2]["valueUri"], "http://x/cm");
    let (_, p) = s
        .get("ConceptMap/$translate?system=http://z&code=z1&reverse=true")
        .await;
    assert_eq!(matches(&p), [pair("wider", "A1")]);
    let (_, p) = s
        .get(&format!("ConceptMap/$translate?system={CS}&code=C"))
        .await;
    assert_eq!(param(&p, "result")["valueBoolean"], false);
    assert_issue(
        &s.get("ConceptMap/$translate?url=http://x/cm").await,
        400,
        "invalid",
        Some("code"),
    );
}

#[tokio::test]
async fn storage_faults_are_503() {
    let faults = Faults::new();
    let kv = Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone()));
    let s = serve(kv, |_| {}).await;
    s.scenario().await;
    for path in [
        "ValueSet/$expand?url=http://x/vs/as".to_string(),
        format!("ValueSet/$validate-code?url=http://x/vs/as&system={CS}&code=A"),
        format!("CodeSystem/$lookup?system={CS}&code=A"),
        format!("CodeSystem/$subsumes?system={CS}&codeA=A&codeB=A1"),
        format!("ConceptMap/$translate?url=http://x/cm&system={CS}&code=A"),
    ] {
        faults.fail(|op| op == Op::Seek(Cf::SearchParamValue), 0, u64::MAX);
        let a = s.get(&path).await;
        faults.heal();
        assert_issue(&a, 503, "transient", None);
        let (st, b) = s.get(&path).await;
        assert_eq!(st, 200, "{path}: {b}");
    }
}

#[tokio::test]
async fn search_expand_and_validate_code_agree() {
    let s = serve(Arc::new(MemKv::new()), |_| {}).await;
    s.scenario().await;
    let concepts: Vec<String> = flint_terminology::CodeSystem::of(&code_system())
        .concepts
        .iter()
        .map(|c| c.code.clone())
        .collect();
    s.put(json!({"resourceType": "Patient", "id": "p"})).await;
    for code in &concepts {
        s.put(
            json!({"resourceType": "Condition", "id": format!("c{code}"),
            "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": CS, "code": code}]}}),
        )
        .await;
    }
    for vs in ["http://x/vs/as"] {
        let (_, expansion) = s.get(&format!("ValueSet/$expand?url={vs}")).await;
        let members = codes(&expansion);
        let mut expected: Vec<String> = members.iter().map(|c| format!("c{c}")).collect();
        expected.sort();
        let (st, bundle) = s.get(&format!("Condition?code:in={vs}&_count=100")).await;
        assert_eq!(st, 200, "{bundle}");
        let mut found: Vec<String> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
            .collect();
        found.sort();
        assert_eq!(found, expected, "{vs}");
        for code in &concepts {
            let (_, v) = s
                .get(&format!(
                    "ValueSet/$validate-code?url={vs}&system={CS}&code={code}"
                ))
                .await;
            assert_eq!(
                param(&v, "result")["valueBoolean"].as_bool(),
                Some(members.contains(code)),
                "{vs} {code}"
            );
        }
    }
}
