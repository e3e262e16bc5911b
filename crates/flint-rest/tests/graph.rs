//! `[base]/[type]/[id]/$graph` through the real router over an in-memory node: GraphDefinitions
//! in R4 form (path links, params links with `{ref}`, nested target links) and in Blaze's form
//! (R5 nodes and links as extensions), canonical versions, de-duplication, the
//! `ENABLE_OPERATION_GRAPH` switch and every error.

mod common;

use axum::Router;
use common::{Answer, send};
use flint_db::Cf;
use flint_db::fault::{Faults, FaultyKv, FaultyStore, Op};
use flint_db::mem::{MemKv, MemStore};

use serde_json::{Value, json};
use std::sync::Arc;

const EXT: &str = "http://hl7.org/fhir/5.0/StructureDefinition/extension-GraphDefinition";

/// A router over `kv` and `store`, with `$graph` enabled or not.
async fn router_over(
    enabled: bool,
    kv: Arc<dyn flint_db::KvStore>,
    store: Arc<dyn flint_db::ResourceStore>,
) -> Router {
    common::router_over(kv, store, |c| c.enable_operation_graph = enabled).await
}

/// Patients p1 (managed by org1) and p2; Observations o1 (p1, encounter e1), o2 (p1) and o3
/// (p2); Encounters e1 and e2 of p1; a deleted Patient gone.
fn data() -> Vec<Value> {
    vec![
        json!({"resourceType": "Organization", "id": "org1", "name": "Org"}),
        json!({"resourceType": "Patient", "id": "p1",
               "managingOrganization": {"reference": "Organization/org1"}}),
        json!({"resourceType": "Patient", "id": "p2"}),
        json!({"resourceType": "Patient", "id": "gone"}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
               "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}}),
        json!({"resourceType": "Encounter", "id": "e2", "status": "finished",
               "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}}),
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
               "code": {"text": "x"}, "subject": {"reference": "Patient/p1"},
               "encounter": {"reference": "Encounter/e1"}}),
        json!({"resourceType": "Observation", "id": "o2", "status": "final",
               "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}}),
        json!({"resourceType": "Observation", "id": "o3", "status": "final",
               "code": {"text": "x"}, "subject": {"reference": "Patient/p2"}}),
    ]
}

/// An R4 GraphDefinition of `url` starting at `start` with `links`.
fn r4_graph(id: &str, url: &str, start: &str, links: Value) -> Value {
    let mut g = json!({"resourceType": "GraphDefinition", "id": id, "url": url, "name": id,
           "status": "active", "start": start});
    if links.as_array().is_some_and(|l| !l.is_empty()) {
        g["link"] = links;
    }
    g
}

/// Patient → Observations (`subject={ref}`) → their Encounter (path), and Patient → its
/// managing Organization (path).
const NESTED: &str = "http://example.org/GraphDefinition/nested";

fn nested() -> Value {
    r4_graph(
        "nested",
        NESTED,
        "Patient",
        json!([
            {"target": [{"type": "Observation", "params": "subject={ref}",
                "link": [{"path": "Observation.encounter", "target": [{"type": "Encounter"}]}]}]},
            {"path": "Patient.managingOrganization", "target": [{"type": "Organization"}]}
        ]),
    )
}

async fn put(router: &Router, v: &Value) {
    let path = format!(
        "{}/{}",
        v["resourceType"].as_str().unwrap(),
        v["id"].as_str().unwrap()
    );
    let a = send(router, "PUT", &path, &v.to_string()).await;
    assert!(a.status.is_success(), "{path}: {}", a.json());
}

/// An enabled router with [`data`] (Patient/gone deleted) and `graphs`.
async fn api(graphs: &[Value]) -> Router {
    let router = router_over(true, Arc::new(MemKv::new()), Arc::new(MemStore::new())).await;
    load(&router, graphs).await;
    router
}

async fn load(router: &Router, graphs: &[Value]) {
    for v in data().iter().chain(graphs) {
        put(router, v).await;
    }
    let a = send(router, "DELETE", "Patient/gone", "").await;
    assert!(a.status.is_success(), "{}", a.json());
}

async fn graph(router: &Router, on: &str, graph: &str) -> Answer {
    let q: String = form_urlencoded::byte_serialize(graph.as_bytes()).collect();
    send(router, "GET", &format!("{on}/$graph?graph={q}"), "").await
}

/// The `Type/id`s of a searchset Bundle's entries, in order, checking `total`, the entries'
/// `fullUrl`s and search modes.
fn ids(bundle: &Value) -> Vec<String> {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    assert_eq!(bundle["type"], "searchset", "{bundle}");
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    assert_eq!(bundle["total"], entries.len(), "{bundle}");
    entries
        .iter()
        .map(|e| {
            let r = &e["resource"];
            let id = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert_eq!(e["fullUrl"], format!("http://flint.test/fhir/{id}"));
            assert_eq!(e["search"]["mode"], "match");
            assert!(r["meta"]["versionId"].is_string(), "{r}");
            id
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn r4_links_by_params_and_path_nest() {
    let router = api(&[nested()]).await;
    let found = ids(&graph(&router, "Patient/p1", NESTED).await.ok());
    assert_eq!(found[0], "Patient/p1", "the start resource comes first");
    assert_eq!(
        sorted(found.clone()),
        [
            "Encounter/e1",
            "Observation/o1",
            "Observation/o2",
            "Organization/org1",
            "Patient/p1"
        ]
    );
    // Depth first: an Observation's Encounter comes right after it, the Organization of the
    // second link after everything the first reached.
    let at = |id: &str| found.iter().position(|f| f == id).unwrap();
    assert_eq!(at("Encounter/e1"), at("Observation/o1") + 1);
    assert_eq!(at("Organization/org1"), 4);
    // The other patient: its one Observation, no Encounter, no Organization.
    let found = ids(&graph(&router, "Patient/p2", NESTED).await.ok());
    assert_eq!(found, ["Patient/p2", "Observation/o3"]);
    // POST with a Parameters body.
    let body = json!({"resourceType": "Parameters",
        "parameter": [{"name": "graph", "valueUri": NESTED}]});
    let a = send(&router, "POST", "Patient/p2/$graph", &body.to_string()).await;
    assert_eq!(ids(&a.ok()), ["Patient/p2", "Observation/o3"]);
}

#[tokio::test]
async fn resources_reached_twice_and_cycles_are_listed_once() {
    const URL: &str = "http://example.org/GraphDefinition/twice";
    // e1 is reached from o1 and by the Encounter search; every Observation leads back to
    // its Patient, and p1's Encounters to p1 again.
    let twice = r4_graph(
        "twice",
        URL,
        "Patient",
        json!([
            {"target": [{"type": "Observation", "params": "patient={ref}", "link": [
                {"path": "encounter", "target": [{"type": "Encounter"}]},
                {"path": "subject", "target": [{"type": "Patient"}]}]}]},
            {"target": [{"type": "Encounter", "params": "subject={ref}&status=finished", "link": [
                {"path": "subject", "target": [{"type": "Patient"}]}]}]}
        ]),
    );
    let router = api(&[twice]).await;
    let found = ids(&graph(&router, "Patient/p1", URL).await.ok());
    assert_eq!(
        sorted(found),
        [
            "Encounter/e1",
            "Encounter/e2",
            "Observation/o1",
            "Observation/o2",
            "Patient/p1"
        ]
    );
}

#[tokio::test]
async fn r5_links_as_extensions_are_read_as_blaze_reads_them() {
    const URL: &str = "http://example.org/GraphDefinition/r5";
    let node = |id: &str, ty: &str| {
        json!({"url": format!("{EXT}.node"), "extension": [
            {"url": "nodeId", "valueId": id}, {"url": "type", "valueCode": ty}]})
    };
    let link = |source: &str, target: &str, how: (&str, &str)| {
        let mut l = json!({"extension": [
            {"url": format!("{EXT}.link.sourceId"), "valueId": source},
            {"url": format!("{EXT}.link.targetId"), "valueId": target}]});
        match how {
            ("path", p) => l["path"] = json!(p),
            (_, q) => l["extension"]
                .as_array_mut()
                .unwrap()
                .push(json!({"url": format!("{EXT}.link.params"), "valueString": q})),
        }
        l
    };
    let gd = json!({"resourceType": "GraphDefinition", "id": "r5", "url": URL, "name": "r5",
        "status": "active",
        "_start": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
            "valueCode": "unsupported"}]},
        "extension": [
            {"url": format!("{EXT}.start"), "valueId": "patient"},
            node("patient", "Patient"), node("observation", "Observation"),
            node("encounter", "Encounter")],
        "link": [
            link("patient", "observation", ("params", "patient={ref}")),
            link("observation", "encounter", ("path", "Observation.encounter"))]});
    let router = api(&[gd]).await;
    let found = ids(&graph(&router, "Patient/p1", URL).await.ok());
    assert_eq!(found[0], "Patient/p1");
    assert_eq!(
        sorted(found),
        [
            "Encounter/e1",
            "Observation/o1",
            "Observation/o2",
            "Patient/p1"
        ]
    );
}

#[tokio::test]
async fn the_highest_version_answers_unless_one_is_named() {
    const URL: &str = "http://example.org/GraphDefinition/versions";
    let only_patient = |id: &str, version: &str| {
        let mut g = r4_graph(id, URL, "Patient", json!([]));
        g["version"] = json!(version);
        g
    };
    let mut with_obs = r4_graph(
        "v1-10",
        URL,
        "Patient",
        json!([{"target": [{"type": "Observation", "params": "subject={ref}"}]}]),
    );
    with_obs["version"] = json!("1.10");
    let mut draft = only_patient("v9-draft", "9");
    draft["status"] = json!("draft");
    let router = api(&[only_patient("v1-2", "1.2"), with_obs, draft]).await;
    // 1.10 is higher than 1.2; a draft counts only after every active version.
    assert_eq!(ids(&graph(&router, "Patient/p2", URL).await.ok()).len(), 2);
    let found = ids(&graph(&router, "Patient/p2", &format!("{URL}|1.2"))
        .await
        .ok());
    assert_eq!(found, ["Patient/p2"]);
    let found = ids(&graph(&router, "Patient/p2", &format!("{URL}|9")).await.ok());
    assert_eq!(found, ["Patient/p2"]);
    // A changed GraphDefinition is compiled again (the cache is by content).
    let mut changed = r4_graph("v1-10", URL, "Patient", json!([]));
    changed["version"] = json!("1.10");
    put(&router, &changed).await;
    assert_eq!(
        ids(&graph(&router, "Patient/p2", URL).await.ok()),
        ["Patient/p2"]
    );
    let a = graph(&router, "Patient/p2", &format!("{URL}|3")).await;
    let issue = a.issue(404);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains(&format!("{URL}|3")),
        "{issue}"
    );
}

#[tokio::test]
async fn requests_that_cannot_be_answered_are_errors() {
    let router = api(&[nested()]).await;
    // No `graph`.
    let a = send(&router, "GET", "Patient/p1/$graph", "").await;
    let issue = a.issue(400);
    assert_eq!(issue["code"], "invalid");
    assert_eq!(issue["expression"], json!(["graph"]));
    // Twice.
    let a = send(&router, "GET", "Patient/p1/$graph?graph=a&graph=b", "").await;
    assert_eq!(a.issue(400)["expression"], json!(["graph"]));
    // An unknown GraphDefinition.
    let a = graph(&router, "Patient/p1", "http://example.org/unknown").await;
    let issue = a.issue(404);
    assert_eq!(issue["code"], "not-found");
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("`http://example.org/unknown`"),
        "{issue}"
    );
    // An unknown and a deleted start resource.
    let a = graph(&router, "Patient/nobody", NESTED).await;
    let issue = a.issue(404);
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Patient/nobody"),
        "{issue}"
    );
    let a = graph(&router, "Patient/gone", NESTED).await;
    assert_eq!(a.issue(410)["code"], "deleted");
    // A graph starting at another type.
    let a = graph(&router, "Observation/o1", NESTED).await;
    let issue = a.issue(400);
    assert!(
        issue["diagnostics"].as_str().unwrap().contains("`Patient`"),
        "{issue}"
    );
    // The instance level only, and a known type.
    let a = send(
        &router,
        "GET",
        &format!("Patient/$graph?graph={NESTED}"),
        "",
    )
    .await;
    assert_eq!(a.issue(400)["code"], "not-supported");
    let a = send(
        &router,
        "GET",
        &format!("Patiant/p1/$graph?graph={NESTED}"),
        "",
    )
    .await;
    a.issue(404);
    // A POST body that is not Parameters.
    let a = send(&router, "POST", "Patient/p1/$graph", &data()[2].to_string()).await;
    a.issue(400);
}

#[tokio::test]
async fn graph_definitions_that_cannot_be_followed_are_422_naming_the_link() {
    let bad = |id: &str, links: Value| {
        r4_graph(id, &format!("http://example.org/{id}"), "Patient", links)
    };
    let router = api(&[
        bad(
            "unparsable",
            json!([
            {"path": "Patient.managingOrganization", "target": [{"type": "Organization"}]},
            {"path": "Patient.(", "target": [{"type": "Organization"}]}]),
        ),
        bad(
            "bad-params",
            json!([{"target": [{"type": "Observation", "params": "nonsense={ref}"}]}]),
        ),
        bad(
            "both",
            json!([{"path": "Patient.link.other",
            "target": [{"type": "Patient", "params": "link={ref}"}]}]),
        ),
        bad("neither", json!([{"target": [{"type": "Observation"}]}])),
        bad(
            "deep",
            json!([{"target": [{"type": "Observation", "params": "subject={ref}",
            "link": [{"path": "subject", "target": [{"type": "Patient",
                "link": [{"path": "(((", "target": [{"type": "Patient"}]}]}]}]}]}]),
        ),
        bad(
            "failing",
            json!([{"path": "Patient.managingOrganization.single() | 1 + 'a'",
            "target": [{"type": "Organization"}]}]),
        ),
    ])
    .await;
    for (id, link) in [
        ("unparsable", "GraphDefinition.link[1].target[0]"),
        ("bad-params", "GraphDefinition.link[0].target[0]"),
        ("both", "GraphDefinition.link[0].target[0]"),
        ("neither", "GraphDefinition.link[0].target[0]"),
        (
            "deep",
            "GraphDefinition.link[0].target[0].link[0].target[0].link[0].target[0]",
        ),
        ("failing", "GraphDefinition.link[0].target[0]"),
    ] {
        // Twice: a GraphDefinition that does not compile is remembered as its error.
        for _ in 0..2 {
            let a = graph(&router, "Patient/p1", &format!("http://example.org/{id}")).await;
            let issue = a.issue(422);
            assert_eq!(issue["code"], "processing", "{id}: {issue}");
            assert_eq!(issue["expression"], json!([link]), "{id}: {issue}");
            let msg = issue["diagnostics"].as_str().unwrap();
            assert!(msg.contains(&format!("`{link}`")), "{id}: {msg}");
        }
    }
}

#[tokio::test]
async fn graph_is_off_unless_enabled() {
    let router = router_over(false, Arc::new(MemKv::new()), Arc::new(MemStore::new())).await;
    load(&router, &[nested()]).await;
    let a = graph(&router, "Patient/p1", NESTED).await;
    let issue = a.issue(400);
    assert_eq!(issue["code"], "not-supported");
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ENABLE_OPERATION_GRAPH"),
        "{issue}"
    );
    let operations = |meta: &Value, ty: &str| -> Vec<String> {
        let r = meta["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == ty)
            .unwrap()
            .clone();
        r["operation"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect()
    };
    let meta = send(&router, "GET", "metadata", "").await.ok();
    assert!(!operations(&meta, "Patient").contains(&"graph".to_string()));
    assert_eq!(
        operations(&meta, "Measure"),
        ["evaluate-measure", "graphql"]
    );
    // Enabled: every type lists it.
    let on = api(&[]).await;
    let meta = send(&on, "GET", "metadata", "").await.ok();
    assert!(operations(&meta, "Patient").contains(&"graph".to_string()));
    assert_eq!(
        operations(&meta, "Measure"),
        ["evaluate-measure", "graph", "graphql"]
    );
}

/// A storage fault anywhere in the traversal is a 503, never a shorter Bundle.
#[tokio::test]
async fn storage_faults_are_503() {
    let faults = Faults::new();
    let router = router_over(
        true,
        Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone())),
        Arc::new(FaultyStore::new(Arc::new(MemStore::new()), faults.clone())),
    )
    .await;
    load(&router, &[nested()]).await;
    let full = sorted(ids(&graph(&router, "Patient/p1", NESTED).await.ok()));
    let mut failed = 0;
    for op in [
        Op::Seek(Cf::SearchParamValue),
        Op::Next(Cf::SearchParamValue),
        Op::StoreGet,
    ] {
        for skip in 0..12 {
            faults.fail(move |o| o == op, skip, 1);
            let before = faults.injected();
            let a = graph(&router, "Patient/p1", NESTED).await;
            if faults.injected() > before {
                assert_eq!(a.issue(503)["code"], "transient", "{op:?} after {skip}");
                failed += 1;
            } else {
                assert_eq!(sorted(ids(&a.ok())), full, "{op:?} after {skip}");
            }
        }
    }
    faults.heal();
    assert!(failed >= 3, "only {failed} requests met a fault");
    assert_eq!(
        sorted(ids(&graph(&router, "Patient/p1", NESTED).await.ok())),
        full
    );
}
