//! `DbTerminology` over a real in-memory database node: what a stored ValueSet stands for and
//! the closure of a code in a stored CodeSystem, with the semantics search always had (pinned
//! here member by member, in order), and storage faults surfacing as errors.

use flint_db::fault::{Faults, FaultyStore, Op};
use flint_db::mem::{MemKv, MemLog, MemStore};
use flint_db::{Db, DbError, Node, NodeConfig, ResourceHandle};
use flint_terminology::{
    CanonicalResolver, Coding, DbTerminology, Direction, Error, Result, Terminology,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Finds resources by a map from `url` and `url|version` to type and id, filled as the
/// tests write (the engine's resolver uses its index; this one needs none). `fail` turns every
/// look-up into a storage fault.
#[derive(Default)]
struct Known {
    urls: Mutex<HashMap<String, (String, String)>>,
    fail: AtomicBool,
}

impl Known {
    fn add(&self, r: &Value) {
        let (Some(url), Some(ty), Some(id)) = (
            r["url"].as_str(),
            r["resourceType"].as_str(),
            r["id"].as_str(),
        ) else {
            return;
        };
        let mut urls = self.urls.lock().unwrap();
        let at = (ty.to_string(), id.to_string());
        urls.entry(url.to_string()).or_insert(at.clone());
        if let Some(v) = r["version"].as_str() {
            urls.insert(format!("{url}|{v}"), at);
        }
    }
}

impl CanonicalResolver for Known {
    fn resolve(&self, db: &Db, type_name: &str, url: &str) -> Result<Option<ResourceHandle>> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(DbError::unavailable("index unavailable").into());
        }
        let Some((ty, id)) = self.urls.lock().unwrap().get(url).cloned() else {
            return Ok(None);
        };
        if ty != type_name {
            return Ok(None);
        }
        Ok(db.resource(&ty, &id)?.filter(|h| !h.is_deleted()))
    }
}

/// A node and the terminology of what was written to it.
struct Fixture {
    kv: Arc<MemKv>,
    log: Arc<MemLog>,
    store: Arc<dyn flint_db::ResourceStore>,
    node: Node,
    t: DbTerminology<Known>,
}

impl Fixture {
    async fn over(store: Arc<dyn flint_db::ResourceStore>) -> Fixture {
        let (kv, log) = (Arc::new(MemKv::new()), Arc::new(MemLog::new()));
        let node = start(&kv, &log, &store).await;
        Fixture {
            kv,
            log,
            store,
            node,
            t: DbTerminology::new(Known::default()),
        }
    }

    /// A fixture with the CodeSystem of [`code_system`] and an older version of it.
    async fn new() -> Fixture {
        let f = Fixture::over(Arc::new(MemStore::new())).await;
        f.put(&code_system()).await;
        // An older version of the CodeSystem under another id: `|1` picks it.
        f.put(
            &json!({"resourceType": "CodeSystem", "id": "cs1", "url": "http://x/cs", "version": "1",
                "status": "retired", "content": "complete",
                "concept": [{"code": "A", "concept": [{"code": "Old"}]}]}),
        )
        .await;
        f
    }

    async fn put(&self, r: &Value) {
        flint_db::testing::put_json(&self.node, r).await;
        self.t.resolver().add(r);
    }

    async fn db(&self) -> Db {
        self.node.sync().await.unwrap()
    }

    /// The database as a freshly started node sees it (nothing cached yet).
    async fn fresh_db(&self) -> Db {
        start(&self.kv, &self.log, &self.store)
            .await
            .sync()
            .await
            .unwrap()
    }
}

async fn start(
    kv: &Arc<MemKv>,
    log: &Arc<MemLog>,
    store: &Arc<dyn flint_db::ResourceStore>,
) -> Node {
    Node::start(
        kv.clone(),
        log.clone(),
        store.clone(),
        NodeConfig::default(),
    )
    .await
    .unwrap()
}

/// A ── A1
///   └─ A2 ── A2a        B        A3 (child of A by a `parent` property)
///                                C ── D (by a `child` property of C)
fn code_system() -> Value {
    json!({"resourceType": "CodeSystem", "id": "cs", "url": "http://x/cs", "version": "2",
        "status": "active", "content": "complete",
        "concept": [
            {"code": "A", "concept": [{"code": "A1"}, {"code": "A2", "concept": [{"code": "A2a"}]}]},
            {"code": "B"},
            {"code": "A3", "property": [{"code": "parent", "valueCode": "A"}]},
            {"code": "C", "property": [{"code": "child", "valueCode": "D"}]},
            {"code": "D"}]})
}

fn value_set(id: &str, body: Value) -> Value {
    let mut vs = json!({"resourceType": "ValueSet", "id": id, "url": format!("http://x/{id}"),
        "status": "active"});
    for (k, v) in body.as_object().unwrap() {
        vs[k] = v.clone();
    }
    vs
}

fn c(system: &str, code: &str) -> Coding {
    Coding::new(system, code)
}

#[tokio::test]
async fn expansion_contains_is_taken_as_is() {
    let f = Fixture::new().await;
    f.put(
        &value_set(
            "exp",
            json!({"expansion": {"timestamp": "2020-01-01", "contains": [
                {"system": "http://x/cs", "code": "A1"},
                {"system": "http://other", "code": "B", "contains": [{"code": "nested"}]},
                {"display": "no code, skipped", "contains": [{"system": "http://x/cs", "code": "B"}]}]},
                // An expansion wins over the compose.
                "compose": {"include": [{"system": "http://x/cs"}]}}),
        ),
    )
    .await;
    let (db, t) = (f.db().await, &f.t);
    assert_eq!(
        t.expand(&db, "http://x/exp").await.unwrap(),
        [
            c("http://x/cs", "B"),
            c("http://other", "B"),
            Coding {
                system: None,
                code: Some("nested".into())
            },
            c("http://x/cs", "A1"),
        ]
    );
}

#[tokio::test]
async fn compose_includes_concepts_filters_and_whole_systems() {
    let f = Fixture::new().await;
    f.put(
        &value_set(
            "vs",
            json!({"compose": {"include": [
                {"system": "http://x/cs", "filter": [{"property": "concept", "op": "is-a", "value": "A2"}]},
                {"system": "http://x/cs", "concept": [{"code": "B"}]},
                {"system": "http://x/cs", "filter": [
                    {"property": "concept", "op": "descendent-of", "value": "A"},
                    {"property": "concept", "op": "is-a"},
                    {"property": "concept", "op": "is-a", "value": "C"}]},
                {"concept": [{"code": "free"}]},
                {"system": "http://loinc.org"},
                // Concepts and filters in one include: both, and not the whole system.
                {"system": "http://x/cs", "concept": [{"code": "D"}],
                 "filter": [{"property": "concept", "op": "is-a", "value": "unknown"}]},
                // Filters without a system are ignored; so is an include of only a ValueSet.
                {"filter": [{"property": "concept", "op": "regex", "value": ".*"}]},
                {"valueSet": ["http://x/other"]}],
                "exclude": [{"system": "http://x/cs", "concept": [{"code": "B"}]}]}}),
        ),
    )
    .await;
    let (db, t) = (f.db().await, &f.t);
    let cs = "http://x/cs";
    assert_eq!(
        t.expand(&db, "http://x/vs").await.unwrap(),
        [
            // is-a A2: A2 and below.
            c(cs, "A2"),
            c(cs, "A2a"),
            // Listed.
            c(cs, "B"),
            // descendent-of A: below A, not A; `parent` properties are edges.
            c(cs, "A3"),
            c(cs, "A2"),
            c(cs, "A1"),
            c(cs, "A2a"),
            // is-a C: `child` properties are edges.
            c(cs, "C"),
            c(cs, "D"),
            // A concept without a system: the code in any system.
            Coding {
                system: None,
                code: Some("free".into())
            },
            // A whole system.
            Coding {
                system: Some("http://loinc.org".into()),
                code: None
            },
            c(cs, "D"),
            // is-a of a code the CodeSystem lacks: the code itself.
            c(cs, "unknown"),
        ],
        "compose.exclude and include.valueSet are not applied (yet)"
    );
}

#[tokio::test]
async fn filter_problems_are_errors() {
    let f = Fixture::new().await;
    for (id, include) in [
        (
            "regex",
            json!({"system": "http://x/cs", "filter": [{"property": "concept", "op": "regex", "value": "A.*"}]}),
        ),
        (
            "nocs",
            json!({"system": "http://x/none", "filter": [{"property": "concept", "op": "is-a", "value": "A"}]}),
        ),
        (
            // A filter without a value needs no CodeSystem.
            "novalue",
            json!({"system": "http://x/none", "filter": [{"property": "concept", "op": "is-a"}]}),
        ),
    ] {
        f.put(&value_set(id, json!({"compose": {"include": [include]}})))
            .await;
    }
    let (db, t) = (f.db().await, &f.t);
    assert_eq!(
        t.expand(&db, "http://x/regex").await,
        Err(Error::UnsupportedFilter {
            value_set: "http://x/regex".into(),
            op: "regex".into()
        })
    );
    let e = t.expand(&db, "http://x/nocs").await.unwrap_err();
    assert_eq!(
        e,
        Error::UnknownFilterSystem {
            value_set: "http://x/nocs".into(),
            system: "http://x/none".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "ValueSet `http://x/nocs` filters CodeSystem `http://x/none`, which is not stored"
    );
    assert_eq!(t.expand(&db, "http://x/novalue").await, Ok(vec![]));
    let e = t.expand(&db, "http://x/missing").await.unwrap_err();
    assert_eq!(e, Error::UnknownValueSet("http://x/missing".into()));
    assert_eq!(
        e.to_string(),
        "No ValueSet with url `http://x/missing` is stored"
    );
}

#[tokio::test]
async fn closures_walk_nesting_and_properties() {
    let f = Fixture::new().await;
    let (db, t) = (f.db().await, &f.t);
    let below = |code: &'static str| {
        let db = &db;
        async move {
            t.closure(db, "http://x/cs", code, Direction::Descendants)
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(below("A").await, ["A", "A3", "A2", "A1", "A2a"]);
    assert_eq!(below("A2").await, ["A2", "A2a"]);
    assert_eq!(below("C").await, ["C", "D"]);
    // Reflexive, also for codes the CodeSystem lacks.
    assert_eq!(below("zzz").await, ["zzz"]);
    assert_eq!(
        t.closure(&db, "http://x/cs", "A2a", Direction::Ancestors)
            .await
            .unwrap()
            .unwrap(),
        ["A2a", "A2", "A"]
    );
    // A version picks that CodeSystem.
    assert_eq!(
        t.closure(&db, "http://x/cs|1", "A", Direction::Descendants)
            .await
            .unwrap()
            .unwrap(),
        ["A", "Old"]
    );
    assert_eq!(
        t.closure(&db, "http://x/none", "A", Direction::Descendants)
            .await
            .unwrap(),
        None
    );
    let h = t.hierarchy(&db, "http://x/cs").await.unwrap().unwrap();
    assert!(h.subsumes("A", "A2a") && h.subsumes("A", "A3") && h.subsumes("B", "B"));
    assert!(!h.subsumes("A2a", "A") && !h.subsumes("A", "B") && !h.subsumes("A", "zzz"));
}

#[tokio::test]
async fn storage_faults_are_errors_never_no_codes() {
    let faults = Faults::new();
    let f = Fixture::over(Arc::new(FaultyStore::new(
        Arc::new(MemStore::new()),
        faults.clone(),
    )))
    .await;
    f.put(&code_system()).await;
    f.put(&value_set(
        "vs",
        json!({"compose": {"include": [
            {"system": "http://x/cs", "filter": [{"property": "concept", "op": "is-a", "value": "A"}]}]}}),
    ))
    .await;
    let t = &f.t;
    let expand = |db: Db| async move { t.expand(&db, "http://x/vs").await };
    assert_eq!(expand(f.fresh_db().await).await.unwrap().len(), 5);
    // The look-up fails.
    t.resolver().fail.store(true, Ordering::SeqCst);
    assert!(matches!(expand(f.db().await).await, Err(Error::Storage(_))));
    assert!(matches!(
        t.closure(&f.db().await, "http://x/cs", "A", Direction::Descendants)
            .await,
        Err(Error::Storage(_))
    ));
    t.resolver().fail.store(false, Ordering::SeqCst);
    // Reading the ValueSet's content fails, then the filtered CodeSystem's.
    for skip in 0..2 {
        let db = f.fresh_db().await;
        faults.fail(|op| op == Op::StoreGet, skip, 1);
        let r = expand(db).await;
        assert!(matches!(r, Err(Error::Storage(_))), "skip {skip}: {r:?}");
        assert_eq!(faults.injected(), skip + 1);
        faults.heal();
    }
    assert_eq!(expand(f.fresh_db().await).await.unwrap().len(), 5);
}
