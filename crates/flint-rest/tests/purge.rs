//! `Patient/[id]/$purge` and `DELETE [type]/[id]/_history` through the real router over an
//! in-memory node: after a purge no read path shows anything of the patient (read and vread
//! 404, histories, searches with counts, includes, `_has`, chains, compartments,
//! `$everything`, page links of earlier searches) and the contents leave the resource store;
//! a history deletion keeps only the current version; the switches, unknown resources, wrong
//! methods, referential integrity and storage faults.

mod common;

use axum::Router;
use common::{Answer, send};
use flint_db::fault::{Faults, FaultyKv, Op};
use flint_db::mem::{MemKv, MemStore};
use flint_db::{Cf, ContentHash, Node, ResourceStore};
use flint_rest::{AppState, RestConfig};
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    router: Router,
    node: Node,
    store: Arc<MemStore>,
}

async fn api_with(config: RestConfig, kv: Arc<dyn flint_db::KvStore>) -> Api {
    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let store = Arc::new(MemStore::new());
    let node = flint_db::testing::node_over(engine.indexer(), kv, store.clone()).await;
    let config = RestConfig {
        base_url: "http://flint.test".into(),
        context_path: "/fhir".into(),
        ..config
    };
    Api {
        router: flint_rest::router(AppState::new(node.clone(), config, engine)),
        node,
        store,
    }
}

fn enabled() -> RestConfig {
    RestConfig {
        enable_operation_patient_purge: true,
        enable_interaction_delete_history: true,
        ..RestConfig::default()
    }
}

async fn api() -> Api {
    api_with(enabled(), Arc::new(MemKv::new())).await
}

impl Api {
    async fn send(&self, method: &str, path: &str, body: &str) -> Answer {
        send(&self.router, method, path, body).await
    }

    async fn get(&self, path: &str) -> Value {
        let a = self.send("GET", path, "").await;
        let v = a.json();
        assert_eq!(a.status.as_u16(), 200, "GET {path}: {v}");
        v
    }

    async fn put(&self, v: &Value) {
        let path = format!(
            "{}/{}",
            v["resourceType"].as_str().unwrap(),
            v["id"].as_str().unwrap()
        );
        let a = self.send("PUT", &path, &v.to_string()).await;
        assert!(a.status.is_success(), "{path}: {}", a.json());
    }

    async fn delete(&self, path: &str) {
        let a = self.send("DELETE", path, "").await;
        assert!(a.status.is_success(), "DELETE {path}");
    }

    /// The content hashes of every version of `Type/id` the node holds.
    fn hashes(&self, ty: &str, id: &str) -> Vec<ContentHash> {
        self.node
            .db()
            .instance_history(ty, id, None, 0, usize::MAX)
            .unwrap()
            .into_iter()
            .filter(|h| !h.is_deleted())
            .map(|h| h.hash)
            .collect()
    }
}

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family}]})
}

fn observation(id: &str, patient: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
           "subject": {"reference": format!("Patient/{patient}")},
           "performer": [{"reference": "Practitioner/pr"}]})
}

/// p1 (two versions; Encounter e1; Observations o1 with two versions and o2, deleted) and p2
/// (Observation o3 with the same code as o1); Practitioner pr outside the compartment.
async fn load(api: &Api) {
    api.put(&json!({"resourceType": "Practitioner", "id": "pr"}))
        .await;
    api.put(&patient("p1", "Doe")).await;
    api.put(&patient("p1", "Doelle")).await;
    api.put(&patient("p2", "Roe")).await;
    api.put(
        &json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
                    "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}}),
    )
    .await;
    api.put(&observation("o1", "p1", "8480-6")).await;
    let mut o1 = observation("o1", "p1", "8480-6");
    o1["encounter"] = json!({"reference": "Encounter/e1"});
    api.put(&o1).await;
    api.put(&observation("o2", "p1", "8462-4")).await;
    api.delete("Observation/o2").await;
    api.put(&observation("o3", "p2", "8480-6")).await;
}

const GONE: [(&str, &str); 4] = [
    ("Patient", "p1"),
    ("Encounter", "e1"),
    ("Observation", "o1"),
    ("Observation", "o2"),
];

/// Every `Type/id` a Bundle shows, in its entries or their resources' references.
fn shown(bundle: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for e in bundle["entry"].as_array().into_iter().flatten() {
        if let Some(r) = e.get("resource") {
            out.push(format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            ));
            out.push(r.to_string());
        }
        if let Some(u) = e["fullUrl"].as_str() {
            out.push(u.to_string());
        }
        if let Some(u) = e["request"]["url"].as_str() {
            out.push(u.to_string());
        }
    }
    out
}

fn assert_nothing_of_p1(what: &str, bundle: &Value) {
    for s in shown(bundle) {
        for (ty, id) in GONE {
            let r = format!("{ty}/{id}");
            assert!(
                !(s == r || s.ends_with(&format!("/{r}")) || s.contains(&format!("\"{r}\""))),
                "{what} shows {r}: {s}"
            );
        }
        assert!(!s.contains("Doe"), "{what} shows the patient's name: {s}");
    }
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(|u| u.split_once("/fhir/").unwrap().1.to_string())
}

#[tokio::test]
async fn after_a_purge_no_read_path_shows_anything_of_the_patient() {
    let api = api().await;
    load(&api).await;
    let mut gone_hashes = Vec::new();
    for (ty, id) in GONE {
        gone_hashes.extend(api.hashes(ty, id));
    }
    let kept_hashes: Vec<ContentHash> = [("Patient", "p2"), ("Observation", "o3")]
        .iter()
        .flat_map(|(t, i)| api.hashes(t, i))
        .collect();
    let p1_version = api.get("Patient/p1").await["meta"]["versionId"]
        .as_str()
        .unwrap()
        .to_string();
    // Searches begun before the purge, continued after it.
    let mut paged_next = Vec::new();
    for path in [
        "Observation?_count=1",
        "Observation?_count=1&_sort=-_id",
        "Patient?_count=1&_sort=-_id",
        "Observation?_count=1&_sort=-_lastUpdated&_include=Observation:subject",
    ] {
        let first = api.get(path).await;
        paged_next.push(next_link(&first).expect("a next link"));
    }
    let history = api.get("_history?_count=2").await;
    let history_next = next_link(&history).expect("a next link");
    let totals_before = api.get("$totals").await;
    assert_eq!(
        api.get("Observation?code=8480-6&_summary=count").await["total"],
        2
    );

    let a = api.send("POST", "Patient/p1/$purge", "").await;
    let v = a.ok();
    assert_eq!(v["resourceType"], "OperationOutcome");
    assert!(
        v["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("3 resource"),
        "{v}"
    );

    for (ty, id) in GONE {
        let a = api.send("GET", &format!("{ty}/{id}"), "").await;
        assert_eq!(
            a.status.as_u16(),
            404,
            "read {ty}/{id} after the purge: 404, not 410"
        );
        let a = api.send("GET", &format!("{ty}/{id}/_history"), "").await;
        assert_eq!(a.status.as_u16(), 404, "history of {ty}/{id}");
    }
    let a = api
        .send("GET", &format!("Patient/p1/_history/{p1_version}"), "")
        .await;
    assert_eq!(a.status.as_u16(), 404);
    for v in 1..=12 {
        let a = api
            .send("GET", &format!("Observation/o1/_history/{v}"), "")
            .await;
        assert_eq!(a.status.as_u16(), 404, "vread o1/{v}");
    }
    let searches = [
        "_history",
        "Patient/_history",
        "Observation/_history",
        "Encounter/_history",
        "Patient",
        "Observation",
        "Encounter",
        "Patient?name=Doe",
        "Patient?_id=p1",
        "Observation?subject=Patient/p1",
        "Observation?patient=p1",
        "Observation?code=8480-6",
        "Observation?code=8480-6&_include=Observation:subject",
        "Observation?_include=Observation:encounter",
        "Practitioner?_revinclude=Observation:performer",
        "Patient?_has:Observation:subject:code=8480-6",
        "Observation?subject.name=Doe",
        "Observation?subject:Patient.family=Doelle",
        "Encounter?_has:Observation:encounter:code=8480-6",
        "Patient/p1/Observation",
        "Patient/p1/Encounter",
        "?_id=p1,o1,e1,o2",
        "Practitioner?_id=pr&_revinclude=Observation:performer",
    ];
    for path in searches {
        let b = api.get(path).await;
        assert_nothing_of_p1(path, &b);
        let counted = format!(
            "{path}{}_summary=count",
            if path.contains('?') { "&" } else { "?" }
        );
        if !path.contains("_history") && !path.contains("include") {
            let c = api.get(&counted).await;
            let shown_here = b["entry"].as_array().map_or(0, |e| {
                e.iter()
                    .filter(|e| e["search"]["mode"] != "include")
                    .count()
            });
            assert_eq!(c["total"], shown_here, "{counted}");
        }
    }
    assert_eq!(
        api.get("Observation?code=8480-6&_summary=count").await["total"],
        1
    );
    assert_eq!(
        api.get("Patient?_has:Observation:subject:code=8480-6")
            .await["total"],
        1
    );
    assert_eq!(api.get("Observation/_history").await["total"], 1);
    assert_eq!(api.get("Patient/_history").await["total"], 1);
    let a = api.send("GET", "Patient/p1/$everything", "").await;
    assert_eq!(a.status.as_u16(), 404, "{}", a.json());
    let everything = api.get("Patient/$everything").await;
    assert_nothing_of_p1("Patient/$everything", &everything);
    // Pages of searches begun before the purge: answered, never a 500, nothing of p1.
    for next in &paged_next {
        let a = api.send("GET", next, "").await;
        assert!(a.status.is_success(), "{next}: {}", a.json());
        assert_nothing_of_p1("an earlier search's next page", &a.json());
    }
    let a = api.send("GET", &history_next, "").await;
    assert!(a.status.is_success(), "{}", a.json());
    assert_nothing_of_p1("an earlier history's next page", &a.json());
    // $totals: one Patient and one Encounter fewer; one live Observation (o1) fewer.
    let count = |v: &Value, ty: &str| {
        v["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == ty)
            .map_or(0, |p| p["valueUnsignedInt"].as_u64().unwrap())
    };
    let totals = api.get("$totals").await;
    for (ty, fewer) in [("Patient", 1), ("Encounter", 1), ("Observation", 1)] {
        assert_eq!(
            count(&totals, ty),
            count(&totals_before, ty) - fewer,
            "{ty}"
        );
    }
    // The contents leave the resource store; p2's stay.
    assert_eq!(api.node.erase_unreferenced().await.unwrap(), 0);
    for h in &gone_hashes {
        assert_eq!(api.store.get(h).await.unwrap().as_deref(), Some(&b""[..]));
    }
    for h in &kept_hashes {
        assert!(!api.store.get(h).await.unwrap().unwrap().is_empty());
    }
    // A purged id can be used again, as a new resource.
    api.put(&patient("p1", "New")).await;
    let h = api.get("Patient/p1/_history").await;
    assert_eq!(h["total"], 1);
}

#[tokio::test]
async fn a_purge_finds_deleted_members_and_leaves_other_patients_alone() {
    // Without referential integrity, so that the referenced patient can be deleted first.
    let api = api_with(
        RestConfig {
            enforce_referential_integrity: false,
            ..enabled()
        },
        Arc::new(MemKv::new()),
    )
    .await;
    load(&api).await;
    let before_p2 = api.get("Patient/p2/$everything").await;
    // A deleted patient is purged too.
    api.delete("Patient/p1").await;
    assert_eq!(api.send("GET", "Patient/p1", "").await.status.as_u16(), 410);
    api.send("POST", "Patient/p1/$purge", "").await.ok();
    assert_eq!(api.send("GET", "Patient/p1", "").await.status.as_u16(), 404);
    assert_eq!(
        api.send("GET", "Observation/o2/_history", "")
            .await
            .status
            .as_u16(),
        404,
        "a deleted compartment member is purged with its history"
    );
    let after_p2 = api.get("Patient/p2/$everything").await;
    assert_eq!(after_p2["total"], before_p2["total"]);
    assert_eq!(shown(&after_p2), shown(&before_p2));
}

#[tokio::test]
async fn deleting_a_history_keeps_only_the_current_version() {
    let api = api().await;
    load(&api).await;
    api.put(&patient("h", "First")).await;
    api.put(&patient("h", "Second")).await;
    api.put(&patient("h", "Third")).await;
    let old = api.hashes("Patient", "h");
    let current = api.get("Patient/h").await;
    let vid = current["meta"]["versionId"].as_str().unwrap().to_string();
    let history = api.get("Patient/h/_history").await;
    let old_versions: Vec<String> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["resource"]["meta"]["versionId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|v| *v != vid)
        .collect();
    assert_eq!(old_versions.len(), 2);
    let type_total = api.get("Patient/_history").await["total"].as_u64().unwrap();
    let system_total = api.get("_history").await["total"].as_u64().unwrap();

    let a = api.send("DELETE", "Patient/h/_history", "").await;
    assert_eq!(a.status.as_u16(), 204);
    assert_eq!(a.headers["etag"].to_str().unwrap(), format!("W/\"{vid}\""));
    for v in &old_versions {
        let a = api
            .send("GET", &format!("Patient/h/_history/{v}"), "")
            .await;
        assert_eq!(a.status.as_u16(), 404, "vread of removed version {v}");
    }
    assert_eq!(api.get(&format!("Patient/h/_history/{vid}")).await, current);
    assert_eq!(api.get("Patient/h").await, current);
    let history = api.get("Patient/h/_history").await;
    assert_eq!(history["total"], 1);
    assert_eq!(history["entry"].as_array().unwrap().len(), 1);
    assert_eq!(history["entry"][0]["resource"], current);
    let of_h = |b: &Value| {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["fullUrl"].as_str().unwrap().ends_with("/Patient/h"))
            .count()
    };
    let th = api.get("Patient/_history").await;
    assert_eq!(th["total"].as_u64().unwrap(), type_total - 2);
    assert_eq!(of_h(&th), 1);
    let sh = api.get("_history").await;
    assert_eq!(sh["total"].as_u64().unwrap(), system_total - 2);
    assert_eq!(of_h(&sh), 1);
    assert_eq!(api.get("Patient?name=First").await["total"], 0);
    assert_eq!(api.get("Patient?name=Third").await["total"], 1);
    // The removed versions' contents leave the store; the current one stays.
    assert_eq!(api.node.erase_unreferenced().await.unwrap(), 0);
    let kept = api.hashes("Patient", "h");
    assert_eq!(kept.len(), 1);
    for h in old.iter().filter(|h| !kept.contains(h)) {
        assert_eq!(api.store.get(h).await.unwrap().as_deref(), Some(&b""[..]));
    }
    assert!(!api.store.get(&kept[0]).await.unwrap().unwrap().is_empty());
    // Of a deleted resource, the deletion stays: 410.
    api.delete("Patient/h").await;
    let a = api.send("DELETE", "Patient/h/_history", "").await;
    assert_eq!(a.status.as_u16(), 204);
    assert_eq!(api.send("GET", "Patient/h", "").await.status.as_u16(), 410);
    let history = api.get("Patient/h/_history").await;
    assert_eq!(history["total"], 1);
    assert_eq!(history["entry"][0]["request"]["method"], "DELETE");
    // Unknown resources: 404; other methods: 405; invalid type: 404.
    let a = api.send("DELETE", "Patient/nope/_history", "").await;
    a.issue(404);
    let a = api.send("PUT", "Patient/p2/_history", "{}").await;
    a.issue(405);
    let a = api.send("DELETE", "NoSuchType/x/_history", "").await;
    a.issue(404);
}

#[tokio::test]
async fn switched_off_both_answer_400_naming_their_variable() {
    let api = api_with(RestConfig::default(), Arc::new(MemKv::new())).await;
    load(&api).await;
    let a = api.send("POST", "Patient/p1/$purge", "").await;
    let issue = a.issue(400);
    assert_eq!(issue["code"], "not-supported");
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ENABLE_OPERATION_PATIENT_PURGE"),
        "{issue}"
    );
    let a = api.send("DELETE", "Patient/p1/_history", "").await;
    let issue = a.issue(400);
    assert_eq!(issue["code"], "not-supported");
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ENABLE_INTERACTION_DELETE_HISTORY"),
        "{issue}"
    );
    assert_eq!(api.get("Patient/p1/_history").await["total"], 2);
    let listed = |cs: &Value| {
        cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Patient")
            .unwrap()["operation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "purge")
    };
    assert!(!listed(&api.get("metadata").await));
    let on = api_with(enabled(), Arc::new(MemKv::new())).await;
    assert!(listed(&on.get("metadata").await));
}

#[tokio::test]
async fn purge_errors_unknown_patient_wrong_method_type_and_level() {
    let api = api().await;
    load(&api).await;
    api.send("POST", "Patient/nope/$purge", "").await.issue(404);
    api.send("GET", "Patient/p1/$purge", "").await.issue(405);
    let issue = api
        .send("POST", "Observation/o1/$purge", "")
        .await
        .issue(400);
    assert_eq!(issue["code"], "not-supported");
    let issue = api.send("POST", "Patient/$purge", "").await.issue(400);
    assert_eq!(issue["code"], "not-supported");
    api.send("POST", "Patient/bad_id!/$purge", "")
        .await
        .issue(400);
    assert_eq!(api.get("Patient/p1/_history").await["total"], 2);
}

/// A Task (outside the Patient compartment) referencing p1.
fn task() -> Value {
    json!({"resourceType": "Task", "id": "t", "status": "requested", "intent": "order",
           "for": {"reference": "Patient/p1"}})
}

#[tokio::test]
async fn a_purge_refuses_when_a_resource_left_alive_references_the_patient() {
    let api = api().await;
    load(&api).await;
    api.put(&task()).await;
    let issue = api.send("POST", "Patient/p1/$purge", "").await.issue(409);
    assert!(
        issue["diagnostics"].as_str().unwrap().contains("Task/t"),
        "{issue}"
    );
    assert_eq!(api.get("Patient/p1/_history").await["total"], 2);
    assert_eq!(api.get("Observation/o1/_history").await["total"], 2);
    // Without referential integrity the purge goes through; the Task's reference dangles.
    let lax = api_with(
        RestConfig {
            enforce_referential_integrity: false,
            ..enabled()
        },
        Arc::new(MemKv::new()),
    )
    .await;
    load(&lax).await;
    lax.put(&task()).await;
    lax.send("POST", "Patient/p1/$purge", "").await.ok();
    assert_eq!(lax.send("GET", "Patient/p1", "").await.status.as_u16(), 404);
    assert_eq!(lax.get("Task/t").await["for"]["reference"], "Patient/p1");
}

#[tokio::test]
async fn storage_faults_are_503_and_purge_nothing() {
    let faults = Faults::new();
    let kv = Arc::new(MemKv::new());
    let api = api_with(
        enabled(),
        Arc::new(FaultyKv::new(kv.clone(), faults.clone())),
    )
    .await;
    load(&api).await;
    for cf in [Cf::ReferencedBy, Cf::ResourceAsOf, Cf::SearchParamValue] {
        faults.fail(move |op| op == Op::Seek(cf), 0, u64::MAX);
        api.send("POST", "Patient/p1/$purge", "").await.issue(503);
        if cf == Cf::ResourceAsOf {
            api.send("DELETE", "Patient/p1/_history", "")
                .await
                .issue(503);
        }
        faults.heal();
        assert_eq!(api.get("Patient/p1/_history").await["total"], 2, "{cf:?}");
        assert_eq!(
            api.get("Observation/o1/_history").await["total"],
            2,
            "{cf:?}"
        );
    }
    api.send("POST", "Patient/p1/$purge", "").await.ok();
    assert_eq!(api.send("GET", "Patient/p1", "").await.status.as_u16(), 404);
}
