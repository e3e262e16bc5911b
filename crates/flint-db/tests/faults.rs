//! Storage faults surface as errors or retries, never as wrong answers: every read path of a
//! database value, the outcome of a write, the indexer's verification and its search-value
//! extraction, run over fault-injecting wrappers of the in-memory adapters.

use bytes::Bytes;
use flint_db::codec::param_hash;
use flint_db::fault::{Faults, FaultyKv, FaultyStore, Op};
use flint_db::mem::{MemKv, MemLog, MemStore};
use flint_db::{
    Cf, ContentHash, ErrorKind, Indexed, Node, NodeConfig, ResourceIndexer, TxCmd, TxOp, ValueMatch,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Indexes the `"name"` of JSON objects; panics on the first `panics` calls.
struct Names {
    panics: AtomicUsize,
    calls: AtomicUsize,
}

impl ResourceIndexer for Names {
    fn index(&self, _type_name: &str, content: &[u8]) -> flint_db::error::Result<Indexed> {
        self.calls.fetch_add(1, Ordering::AcqRel);
        if self
            .panics
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("extraction bug (injected)");
        }
        let v: serde_json::Value =
            serde_json::from_slice(content).map_err(|e| flint_db::DbError::fault(e.to_string()))?;
        let entries = v["name"]
            .as_str()
            .map(|s| vec![(param_hash("name"), s.as_bytes().to_vec())])
            .unwrap_or_default();
        Ok(Indexed {
            entries,
            values: Vec::new(),
            ..Indexed::default()
        })
    }
}

struct Fixture {
    node: Node,
    faults: Arc<Faults>,
    names: Arc<Names>,
}

async fn fixture(panics: usize) -> Fixture {
    let faults = Faults::new();
    let names = Arc::new(Names {
        panics: AtomicUsize::new(panics),
        calls: AtomicUsize::new(0),
    });
    let node = Node::start(
        Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone())),
        Arc::new(MemLog::new()),
        Arc::new(FaultyStore::new(Arc::new(MemStore::new()), faults.clone())),
        NodeConfig {
            resource_indexer: Some(names.clone()),
            sync_timeout: Duration::from_secs(5),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    Fixture {
        node,
        faults,
        names,
    }
}

fn put_cmd(id: &str, body: &str) -> (TxCmd, (ContentHash, Bytes)) {
    let h = ContentHash::of(body.as_bytes());
    (
        TxCmd::new(TxOp::Put, "Patient", id, Some(h)),
        (h, Bytes::from(body.to_string())),
    )
}

async fn put(node: &Node, id: &str, body: &str) -> flint_db::error::Result<u64> {
    let (c, content) = put_cmd(id, body);
    node.transact(vec![c], vec![content]).await.map(|o| o.t)
}

fn name(v: &str) -> ValueMatch {
    ValueMatch::Exact(v.as_bytes().to_vec())
}

fn is_unavailable<T: std::fmt::Debug>(r: flint_db::error::Result<T>) -> bool {
    matches!(r, Err(e) if e.kind == ErrorKind::Unavailable)
}

#[tokio::test]
async fn every_read_of_a_database_value_fails_instead_of_answering_short() {
    let f = fixture(0).await;
    for i in 0..50 {
        put(&f.node, &format!("p{i:02}"), r#"{"name":"ann"}"#)
            .await
            .unwrap();
    }
    let db = f.node.db();
    let n = param_hash("name");
    let all = [(&name("ann"), &(|_: &[u8]| true) as &dyn Fn(&[u8]) -> bool)];
    assert_eq!(db.search("Patient", n, &name("ann")).unwrap().len(), 50);
    assert_eq!(db.count_search("Patient", n, &all).unwrap(), 50);

    // A cursor that breaks after some rows: the scan is an error, not the rows before it.
    let mid_scan = |op: Op| matches!(op, Op::Next(Cf::SearchParamValue));
    f.faults.fail(mid_scan, 10, 1);
    assert!(is_unavailable(db.search("Patient", n, &name("ann"))));
    f.faults.fail(mid_scan, 10, 1);
    assert!(is_unavailable(db.count_search("Patient", n, &all)));
    f.faults.fail(mid_scan, 10, 1);
    assert!(is_unavailable(db.search_ids("Patient", n, &all)));
    f.faults.fail(mid_scan, 10, 1);
    assert!(is_unavailable(
        db.search_ids_bounded("Patient", n, &all, 1000)
    ));

    // The version look-ups of the hits.
    let as_of = |op: Op| matches!(op, Op::Seek(Cf::ResourceAsOf) | Op::Next(Cf::ResourceAsOf));
    f.faults.fail(as_of, 5, 1);
    assert!(is_unavailable(db.search("Patient", n, &name("ann"))));
    f.faults.fail(as_of, 0, 1);
    assert!(is_unavailable(db.resource("Patient", "p01")));
    f.faults.fail(as_of, 0, 1);
    assert!(is_unavailable(db.version("Patient", "p01", 2)));
    f.faults.fail(as_of, 20, 1);
    assert!(is_unavailable(db.type_ids("Patient")));
    f.faults.fail(as_of, 20, 1);
    assert!(is_unavailable(db.type_list("Patient", None, 100)));
    f.faults.fail(as_of, 20, 1);
    let ids: Vec<String> = (0..30).map(|i| format!("p{i:02}")).collect();
    assert!(is_unavailable(
        db.resources("Patient", ids.iter().map(String::as_str))
    ));
    f.faults.fail(as_of, 0, 1);
    assert!(is_unavailable(
        db.instance_history("Patient", "p01", None, 0, 10)
    ));

    // The superseded check of counting (superseded rows exist once a resource changes).
    put(&f.node, "p00", r#"{"name":"bob"}"#).await.unwrap();
    let db = f.node.db();
    f.faults
        .fail(|op| matches!(op, Op::Seek(Cf::Superseded)), 0, 1);
    assert!(is_unavailable(db.count_search("Patient", n, &all)));

    // History, stats and time look-ups.
    f.faults
        .fail(|op| matches!(op, Op::Seek(Cf::TypeAsOf)), 0, 1);
    assert!(is_unavailable(db.type_history("Patient", None, 0, 10)));
    f.faults
        .fail(|op| matches!(op, Op::Next(Cf::SystemAsOf)), 3, 1);
    assert!(is_unavailable(db.system_history(None, 0, 100)));
    f.faults
        .fail(|op| matches!(op, Op::Seek(Cf::TypeStats)), 0, 1);
    assert!(is_unavailable(db.type_total("Patient")));
    f.faults
        .fail(|op| matches!(op, Op::Seek(Cf::SystemStats)), 0, 1);
    assert!(is_unavailable(db.system_changes()));
    f.faults
        .fail(|op| matches!(op, Op::Seek(Cf::TByInstant)), 0, 1);
    assert!(is_unavailable(db.t_since(0)));
    f.faults
        .fail(|op| matches!(op, Op::Get(Cf::TxSuccess)), 0, 1);
    assert!(is_unavailable(db.instant(db.t())));
    f.faults.fail(|op| matches!(op, Op::Get(Cf::TxError)), 0, 1);
    assert!(is_unavailable(db.tx_error(db.t())));

    // Value blobs.
    let h = db.resource("Patient", "p01").unwrap().unwrap();
    f.faults
        .fail(|op| matches!(op, Op::Get(Cf::ResourceValue)), 0, 1);
    assert!(is_unavailable(db.index_values(&h)));
    f.faults
        .fail(|op| matches!(op, Op::MultiGet(Cf::ResourceValue)), 0, 1);
    assert!(is_unavailable(
        db.index_values_many(std::slice::from_ref(&h))
    ));

    // Resource contents (the cache holds what was written through this node: use a hash
    // that is not cached).
    let other = ContentHash::of(b"not cached");
    f.faults.fail(|op| op == Op::StoreGet, 0, 1);
    assert!(is_unavailable(db.pull_hash(&other).await));

    // Healed, every answer is the full one again.
    f.faults.heal();
    assert_eq!(db.search("Patient", n, &name("ann")).unwrap().len(), 49);
    assert_eq!(db.count_search("Patient", n, &all).unwrap(), 49);
    assert_eq!(db.type_total("Patient").unwrap(), 50);
    assert!(f.faults.injected() >= 20);
}

#[tokio::test]
async fn a_failed_outcome_read_is_unavailable_never_success() {
    let f = fixture(0).await;
    put(&f.node, "a", r#"{"name":"ann"}"#).await.unwrap();
    // A create of an existing id is rejected by the indexer; reading that rejection fails.
    let (mut c, content) = put_cmd("a", r#"{"name":"eve"}"#);
    c.op = TxOp::Create;
    f.faults.fail(|op| op == Op::Get(Cf::TxError), 0, 1);
    let out = f
        .node
        .transact(vec![c.clone()], vec![content.clone()])
        .await;
    assert!(
        is_unavailable(out),
        "an unread rejection must not be reported as committed"
    );
    // Read again, the rejection is the answer.
    let out = f.node.transact(vec![c], vec![content]).await;
    assert_eq!(out.unwrap_err().kind, ErrorKind::Conflict);
    // A committed write whose success marker cannot be read is unavailable too.
    f.faults.fail(|op| op == Op::Get(Cf::TxSuccess), 0, 1);
    assert!(is_unavailable(put(&f.node, "b", r#"{"name":"bob"}"#).await));
    assert!(f.node.db().resource("Patient", "b").unwrap().is_some());
}

#[tokio::test]
async fn a_failed_store_write_fails_the_write() {
    let f = fixture(0).await;
    f.faults.fail(|op| op == Op::StorePut, 0, 1);
    assert!(is_unavailable(put(&f.node, "a", r#"{"name":"ann"}"#).await));
    assert!(f.node.db().resource("Patient", "a").unwrap().is_none());
    put(&f.node, "a", r#"{"name":"ann"}"#).await.unwrap();
}

#[tokio::test]
async fn the_indexer_retries_a_failed_verification_instead_of_rejecting() {
    let f = fixture(0).await;
    let t1 = put(&f.node, "a", r#"{"name":"ann"}"#).await.unwrap();
    // The indexer's look-up of the current version fails twice: without an error channel it
    // read "no such resource" and rejected the If-Match update with 412.
    f.faults.fail(|op| op == Op::Seek(Cf::ResourceAsOf), 0, 2);
    let (mut c, content) = put_cmd("a", r#"{"name":"amy"}"#);
    c.if_match = vec![t1];
    let out = f.node.transact(vec![c], vec![content]).await.unwrap();
    assert_eq!(f.faults.injected(), 2);
    let h = out.db.resource("Patient", "a").unwrap().unwrap();
    assert_eq!((h.t, h.num_changes), (out.t, 2));
    // The index write itself failing is retried too.
    f.faults.fail(|op| op == Op::Write, 0, 2);
    let t3 = put(&f.node, "b", r#"{"name":"bob"}"#).await.unwrap();
    assert_eq!(f.node.db().resource("Patient", "b").unwrap().unwrap().t, t3);
    assert!(f.node.status().indexer_error.is_none());
}

#[tokio::test]
async fn the_indexer_rereads_contents_it_could_not_fetch() {
    // Two nodes share the log and the resource store; node B reads the contents node A wrote
    // through a store that fails three times (a replica down).
    let log = Arc::new(MemLog::new());
    let store = Arc::new(MemStore::new());
    let start = |store: Arc<dyn flint_db::ResourceStore>| {
        let log = log.clone();
        async move {
            Node::start(
                Arc::new(MemKv::new()),
                log,
                store,
                NodeConfig {
                    resource_indexer: Some(Arc::new(Names {
                        panics: AtomicUsize::new(0),
                        calls: AtomicUsize::new(0),
                    })),
                    sync_timeout: Duration::from_secs(5),
                    ..NodeConfig::default()
                },
            )
            .await
            .unwrap()
        }
    };
    let faults = Faults::new();
    faults.fail(|op| op == Op::StoreGet, 0, 3);
    let a = start(store.clone()).await;
    let b = start(Arc::new(FaultyStore::new(store.clone(), faults.clone()))).await;
    let t = put(&a, "a", r#"{"name":"ann"}"#).await.unwrap();
    let db = b.sync_to(t).await.unwrap();
    assert_eq!(faults.injected(), 3, "node B met the faults");
    let n = param_hash("name");
    assert_eq!(
        db.search("Patient", n, &name("ann")).unwrap().len(),
        1,
        "node B indexed the version with its search values once the store answered"
    );
}

#[tokio::test]
async fn a_panicking_extraction_is_retried_and_never_leaves_a_version_unsearchable() {
    let f = fixture(2).await;
    // Enough versions for the extraction to run on several threads (16 or more).
    let mut cmds = Vec::new();
    let mut contents = Vec::new();
    for i in 0..40 {
        let (c, content) = put_cmd(&format!("p{i:02}"), &format!(r#"{{"name":"n{i}"}}"#));
        cmds.push(c);
        contents.push(content);
    }
    let out = f.node.transact(cmds, contents).await.unwrap();
    assert_eq!(
        f.names.panics.load(Ordering::Acquire),
        0,
        "both panics happened"
    );
    assert!(
        f.names.calls.load(Ordering::Acquire) > 40,
        "the extraction ran again"
    );
    let n = param_hash("name");
    for i in 0..40 {
        assert_eq!(
            out.db
                .search("Patient", n, &name(&format!("n{i}")))
                .unwrap()
                .len(),
            1,
            "p{i:02} is searchable"
        );
    }
    // A single version (extracted without extra threads) too.
    let f = fixture(1).await;
    let out = f.node.transact(
        vec![put_cmd("solo", r#"{"name":"solo"}"#).0],
        vec![put_cmd("solo", r#"{"name":"solo"}"#).1],
    );
    let out = out.await.unwrap();
    assert_eq!(out.db.search("Patient", n, &name("solo")).unwrap().len(), 1);
}
