//! The engine as the canonical resolver of stored terminology: ValueSets and CodeSystems found
//! by `url` (and `url|version`) through the search index, and `DbTerminology` over it.

use flint_db::Cf;
use flint_db::Node;
use flint_db::fault::{Faults, FaultyKv, Op};
use flint_db::mem::MemKv;
use flint_search::{Engine, Registry};
use flint_terminology::{
    CanonicalResolver, Coding, DbTerminology, Direction, Error as TerminologyError, Terminology,
};
use serde_json::{Value, json};
use std::sync::Arc;

async fn node(engine: &Engine, kv: Arc<dyn flint_db::KvStore>) -> Node {
    flint_db::testing::memory_node(engine.indexer(), kv).await
}

async fn put(node: &Node, r: &Value) {
    flint_db::testing::put_json(node, r).await;
}

fn code_system(id: &str, version: &str, codes: &[&str]) -> Value {
    code_system_at("http://x/cs", id, version, codes)
}

fn code_system_at(url: &str, id: &str, version: &str, codes: &[&str]) -> Value {
    let concepts: Vec<Value> = codes.iter().map(|c| json!({"code": c})).collect();
    json!({"resourceType": "CodeSystem", "id": id, "url": url, "version": version,
        "status": "active", "content": "complete",
        "concept": [{"code": "root", "concept": concepts}]})
}

#[tokio::test]
async fn resolves_by_url_and_version_through_the_index() {
    let faults = Faults::new();
    let engine = Engine::new(Arc::new(Registry::r4()));
    let kv = Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone()));
    let node = node(&engine, kv).await;
    // Two versions under one url: without a version, the first id wins.
    put(&node, &code_system("b", "2", &["new"])).await;
    put(&node, &code_system("a", "1", &["old"])).await;
    // Search syntax in a url or version.
    put(
        &node,
        &code_system_at("http://x/a,b", "c", "1,0|x", &["odd"]),
    )
    .await;
    put(
        &node,
        &json!({"resourceType": "ValueSet", "id": "vs", "url": "http://x/vs", "status": "active",
            "compose": {"include": [{"system": "http://x/cs",
                "filter": [{"property": "concept", "op": "is-a", "value": "root"}]}]}}),
    )
    .await;
    let db = node.sync().await.unwrap();
    let id = |ty: &str, url: &str| engine.resolve(&db, ty, url).unwrap().map(|h| h.id);
    assert_eq!(id("CodeSystem", "http://x/cs").as_deref(), Some("a"));
    assert_eq!(id("CodeSystem", "http://x/cs|2").as_deref(), Some("b"));
    assert_eq!(id("CodeSystem", "http://x/cs|3"), None);
    assert_eq!(id("CodeSystem", "http://x/a,b").as_deref(), Some("c"));
    assert_eq!(id("CodeSystem", "http://x/a,b|1,0|x").as_deref(), Some("c"));
    assert_eq!(id("CodeSystem", "http://x/a,b|1,0"), None);
    assert_eq!(id("CodeSystem", "http://x/a"), None);
    assert_eq!(id("ValueSet", "http://x/cs"), None);
    assert_eq!(id("ValueSet", "http://x/vs").as_deref(), Some("vs"));
    // Search syntax in a url is literal: no OR of two urls.
    assert_eq!(id("ValueSet", "http://x/vs,http://x/cs"), None);
    assert_eq!(id("CodeSystem", "http://x/cs,http://x/vs"), None);
    // An empty version is no version.
    assert_eq!(id("CodeSystem", "http://x/cs|").as_deref(), Some("a"));
    // The terminology over the engine.
    let t = DbTerminology::new(engine.clone());
    assert_eq!(
        t.expand(&db, "http://x/vs").await.unwrap(),
        [
            Coding::new("http://x/cs", "root"),
            Coding::new("http://x/cs", "old")
        ]
    );
    assert_eq!(
        t.closure(&db, "http://x/cs|2", "new", Direction::Ancestors)
            .await
            .unwrap(),
        Some(vec!["new".to_string(), "root".to_string()])
    );
    assert_eq!(
        t.expand(&db, "http://x/none").await,
        Err(TerminologyError::UnknownValueSet("http://x/none".into()))
    );
    // A broken index scan is a storage fault, not "no such ValueSet".
    faults.fail(|op| matches!(op, Op::Seek(Cf::SearchParamValue)), 0, 1);
    assert!(matches!(
        t.expand(&db, "http://x/vs").await,
        Err(TerminologyError::Storage(_))
    ));
    assert_eq!(faults.injected(), 1);
}
