//! Behaviour of a node over the in-memory adapters: versions, preconditions, referential
//! integrity, history, stats and index rebuild.

use bytes::Bytes;
use flint_db::codec::VersionOp;
use flint_db::mem::{MemKv, MemLog, MemStore};
use flint_db::{
    ContentHash, ErrorKind, IfNoneMatch, KvStore, Node, NodeConfig, TxCmd, TxLog, TxOp,
};
use std::sync::Arc;

struct Fixture {
    node: Node,
    log: Arc<MemLog>,
    store: Arc<MemStore>,
}

async fn fixture() -> Fixture {
    let log = Arc::new(MemLog::new());
    let store = Arc::new(MemStore::new());
    let node = Node::start(
        Arc::new(MemKv::new()),
        log.clone(),
        store.clone(),
        NodeConfig::default(),
    )
    .await
    .unwrap();
    Fixture { node, log, store }
}

fn content(s: &str) -> (ContentHash, Bytes) {
    (ContentHash::of(s.as_bytes()), Bytes::from(s.to_string()))
}

async fn put(node: &Node, ty: &str, id: &str, body: &str) -> flint_db::error::Result<u64> {
    let (h, b) = content(body);
    let mut c = TxCmd::new(TxOp::Put, ty, id, Some(h));
    c.check_refs = true;
    node.transact(vec![c], vec![(h, b)]).await.map(|o| o.t)
}

#[tokio::test]
async fn put_creates_then_updates_and_identical_content_keeps_the_version() {
    let f = fixture().await;
    let t1 = put(&f.node, "Patient", "a", "v1").await.unwrap();
    let db = f.node.db();
    let h = db.resource("Patient", "a").unwrap().unwrap();
    assert_eq!((h.t, h.op, h.num_changes), (t1, VersionOp::UpdateCreate, 1));
    assert_eq!(db.pull(&h).await.unwrap(), Bytes::from("v1"));

    let t2 = put(&f.node, "Patient", "a", "v2").await.unwrap();
    let h2 = f.node.db().resource("Patient", "a").unwrap().unwrap();
    assert_eq!((h2.t, h2.op, h2.num_changes), (t2, VersionOp::Put, 2));

    let t3 = put(&f.node, "Patient", "a", "v2").await.unwrap();
    assert!(t3 > t2);
    let h3 = f.node.db().resource("Patient", "a").unwrap().unwrap();
    assert_eq!(h3.t, t2, "identical content must not create a version");
    assert_eq!(f.node.db().type_changes("Patient").unwrap(), 2);
    assert_eq!(f.node.db().type_total("Patient").unwrap(), 1);

    // The older database value still sees version 1.
    assert_eq!(
        f.node
            .db()
            .as_of(t1)
            .resource("Patient", "a")
            .unwrap()
            .unwrap()
            .t,
        t1
    );
    assert_eq!(
        f.node.db().version("Patient", "a", t1).unwrap().unwrap().t,
        t1
    );
    assert!(f.node.db().version("Patient", "a", t3).unwrap().is_none());
}

#[tokio::test]
async fn create_of_existing_id_conflicts() {
    let f = fixture().await;
    put(&f.node, "Patient", "a", "v1").await.unwrap();
    let (h, b) = content("v9");
    let err = f
        .node
        .transact(
            vec![TxCmd::new(TxOp::Create, "Patient", "a", Some(h))],
            vec![(h, b)],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[tokio::test]
async fn if_match_and_if_none_match() {
    let f = fixture().await;
    let t1 = put(&f.node, "Patient", "a", "v1").await.unwrap();
    let (h, b) = content("v2");
    let mut c = TxCmd::new(TxOp::Put, "Patient", "a", Some(h));
    c.if_match = vec![t1 + 100];
    let err = f
        .node
        .transact(vec![c.clone()], vec![(h, b.clone())])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PreconditionFailed);
    c.if_match = vec![t1 + 100, t1];
    f.node
        .transact(vec![c], vec![(h, b.clone())])
        .await
        .unwrap();

    let mut c = TxCmd::new(TxOp::Put, "Patient", "a", Some(ContentHash::of(b"v3")));
    c.if_none_match = Some(IfNoneMatch::Any);
    let err = f
        .node
        .transact(vec![c], vec![content("v3")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PreconditionFailed);

    let mut c = TxCmd::new(TxOp::Put, "Patient", "new", Some(h));
    c.if_none_match = Some(IfNoneMatch::Any);
    f.node.transact(vec![c], vec![(h, b)]).await.unwrap();
}

#[tokio::test]
async fn referential_integrity_on_write_and_delete() {
    let f = fixture().await;
    let (h, b) = content("obs");
    let mut obs = TxCmd::new(TxOp::Put, "Observation", "o", Some(h));
    obs.refs = vec![("Patient".into(), "p".into())];
    obs.check_refs = true;
    let err = f
        .node
        .transact(vec![obs.clone()], vec![(h, b.clone())])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(err.message.contains("Patient/p"), "{}", err.message);

    // Creating both in one transaction works.
    let (ph, pb) = content("p");
    let mut pat = TxCmd::new(TxOp::Put, "Patient", "p", Some(ph));
    pat.check_refs = true;
    f.node
        .transact(vec![obs.clone(), pat], vec![(h, b), (ph, pb)])
        .await
        .unwrap();

    let mut del = TxCmd::new(TxOp::Delete, "Patient", "p", None);
    del.check_refs = true;
    let err = f
        .node
        .transact(vec![del.clone()], vec![])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(err.message.contains("Observation/o"), "{}", err.message);

    // Deleting the referencing resource in the same transaction is fine.
    let mut del_obs = TxCmd::new(TxOp::Delete, "Observation", "o", None);
    del_obs.check_refs = true;
    let out = f.node.transact(vec![del, del_obs], vec![]).await.unwrap();
    assert!(
        out.db
            .resource("Patient", "p")
            .unwrap()
            .unwrap()
            .is_deleted()
    );
    assert_eq!(out.db.system_total().unwrap(), 0);
}

#[tokio::test]
async fn reference_dropped_by_update_no_longer_blocks_delete() {
    let f = fixture().await;
    put(&f.node, "Patient", "p", "p").await.unwrap();
    let (h, b) = content("obs1");
    let mut obs = TxCmd::new(TxOp::Put, "Observation", "o", Some(h));
    obs.refs = vec![("Patient".into(), "p".into())];
    obs.check_refs = true;
    f.node.transact(vec![obs], vec![(h, b)]).await.unwrap();
    put(&f.node, "Observation", "o", "obs2-without-ref")
        .await
        .unwrap();
    let mut del = TxCmd::new(TxOp::Delete, "Patient", "p", None);
    del.check_refs = true;
    f.node.transact(vec![del], vec![]).await.unwrap();
}

#[tokio::test]
async fn delete_is_idempotent_and_history_lists_versions_newest_first() {
    let f = fixture().await;
    let t1 = put(&f.node, "Patient", "a", "v1").await.unwrap();
    let t2 = put(&f.node, "Patient", "a", "v2").await.unwrap();
    let t3 = f
        .node
        .transact(vec![TxCmd::new(TxOp::Delete, "Patient", "a", None)], vec![])
        .await
        .unwrap()
        .t;
    let t4 = f
        .node
        .transact(vec![TxCmd::new(TxOp::Delete, "Patient", "a", None)], vec![])
        .await
        .unwrap()
        .t;
    let db = f.node.db();
    assert_eq!(db.resource("Patient", "a").unwrap().unwrap().t, t3);
    assert!(t4 > t3);
    let hist = db.instance_history("Patient", "a", None, 0, 10).unwrap();
    assert_eq!(
        hist.iter().map(|h| h.t).collect::<Vec<_>>(),
        vec![t3, t2, t1]
    );
    assert_eq!(
        db.instance_history("Patient", "a", Some(t2), 0, 1).unwrap()[0].t,
        t2
    );
    assert_eq!(db.type_history("Patient", None, t2, 10).unwrap().len(), 2);
    assert_eq!(db.system_history(None, 0, 10).unwrap().len(), 3);
    assert!(db.type_list("Patient", None, 10).unwrap().is_empty());
    let since = db.instant(t2).unwrap();
    assert!(db.t_since(since).unwrap() <= t2);
}

#[tokio::test]
async fn deleting_an_id_that_never_existed_records_one_deletion() {
    let f = fixture().await;
    put(&f.node, "Patient", "live", "v1").await.unwrap();
    let before = f.node.db();
    let (total, changes) = (
        before.type_total("Patient").unwrap(),
        before.system_changes().unwrap(),
    );
    let t = f
        .node
        .transact(
            vec![TxCmd::new(TxOp::Delete, "Patient", "never", None)],
            vec![],
        )
        .await
        .unwrap()
        .t;
    let db = f.node.db();
    let h = db.resource("Patient", "never").unwrap().unwrap();
    assert!(h.is_deleted());
    assert_eq!((h.t, h.num_changes, h.op), (t, 1, VersionOp::Delete));
    let hist = db
        .instance_history("Patient", "never", None, 0, 10)
        .unwrap();
    assert_eq!(hist.iter().map(|h| h.t).collect::<Vec<_>>(), vec![t]);
    // The deletion is a change, but no live resource went away.
    assert_eq!(db.type_total("Patient").unwrap(), total);
    assert_eq!(db.system_total().unwrap(), before.system_total().unwrap());
    assert_eq!(db.system_changes().unwrap(), changes + 1);
    assert_eq!(
        db.type_changes("Patient").unwrap(),
        before.type_changes("Patient").unwrap() + 1
    );
    // Deleting it again changes nothing.
    f.node
        .transact(
            vec![TxCmd::new(TxOp::Delete, "Patient", "never", None)],
            vec![],
        )
        .await
        .unwrap();
    let db = f.node.db();
    assert_eq!(db.resource("Patient", "never").unwrap().unwrap().t, t);
    assert_eq!(db.system_changes().unwrap(), changes + 1);
}

#[tokio::test]
async fn type_list_orders_by_id_and_pages() {
    let f = fixture().await;
    for id in ["b", "a", "c", "ab"] {
        put(&f.node, "Patient", id, id).await.unwrap();
    }
    put(&f.node, "Observation", "x", "x").await.unwrap();
    let db = f.node.db();
    let ids: Vec<_> = db
        .type_list("Patient", None, 10)
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, vec!["a", "ab", "b", "c"]);
    let ids: Vec<_> = db
        .type_list("Patient", Some("ab"), 2)
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, vec!["ab", "b"]);
    assert_eq!(db.system_total().unwrap(), 5);
}

#[tokio::test]
async fn a_new_node_rebuilds_the_same_database_from_the_log() {
    let f = fixture().await;
    put(&f.node, "Patient", "a", "v1").await.unwrap();
    put(&f.node, "Patient", "a", "v2").await.unwrap();
    let _ = f
        .node
        .transact(vec![TxCmd::new(TxOp::Create, "Patient", "a", None)], vec![])
        .await;
    put(&f.node, "Patient", "b", "b").await.unwrap();
    let db = f.node.db();

    let kv2: Arc<dyn KvStore> = Arc::new(MemKv::new());
    let node2 = Node::start(kv2, f.log.clone(), f.store.clone(), NodeConfig::default())
        .await
        .unwrap();
    let db2 = node2.sync().await.unwrap();
    assert_eq!(db2.t(), db.t());
    assert_eq!(f.log.last_t().await.unwrap(), db.t());
    for id in ["a", "b"] {
        assert_eq!(
            db.resource("Patient", id).unwrap(),
            db2.resource("Patient", id).unwrap()
        );
        assert_eq!(
            db.instance_history("Patient", id, None, 0, 10).unwrap(),
            db2.instance_history("Patient", id, None, 0, 10).unwrap()
        );
    }
    assert_eq!(db.system_total().unwrap(), db2.system_total().unwrap());
    assert_eq!(db.system_changes().unwrap(), db2.system_changes().unwrap());
    assert!(db2.tx_error(3).unwrap().is_some());
}

#[tokio::test]
async fn kept_bytes_are_deleted_once_their_time_ran_out() {
    let f = fixture().await;
    // Expiries in the future, so that the lag monitor's own sweeps (at the real time) leave
    // them alone and only the sweeps below, at chosen instants, delete them.
    let now = flint_db::mem::now_ms();
    let day = 86_400_000;
    let untils = [now + 10 * day, now + 20 * day, now + 30 * day];
    let mut hashes = Vec::new();
    for (i, until) in untils.iter().enumerate() {
        let bytes = Bytes::from(format!("kept {i}"));
        let h = f.node.keep_until(bytes.clone(), *until).await.unwrap();
        assert_eq!(h, ContentHash::of(&bytes));
        // Read once, so the node's cache holds it too.
        assert_eq!(f.node.kept(&h).await.unwrap(), Some(bytes));
        hashes.push(h);
    }
    assert_eq!(f.node.sweep_kept(now).await.unwrap(), 0);
    assert_eq!(present(&f.node, &hashes).await, [true, true, true]);
    assert_eq!(
        f.node.sweep_kept(untils[0]).await.unwrap(),
        1,
        "due at its instant"
    );
    assert_eq!(present(&f.node, &hashes).await, [false, true, true]);
    assert_eq!(f.node.sweep_kept(untils[2] - 1).await.unwrap(), 1);
    assert_eq!(present(&f.node, &hashes).await, [false, false, true]);
    // The store itself no longer serves them (not just the node's cache).
    for h in &hashes[..2] {
        let stored = flint_db::ResourceStore::get(&*f.store, h).await.unwrap();
        assert!(stored.is_none_or(|b| b.is_empty()), "{h:?} still stored");
    }
    assert_eq!(
        f.node.sweep_kept(untils[2] - 1).await.unwrap(),
        0,
        "swept once"
    );
}

/// Which of `hashes` the node still serves.
async fn present(node: &Node, hashes: &[ContentHash]) -> Vec<bool> {
    let mut out = Vec::new();
    for h in hashes {
        out.push(node.kept(h).await.unwrap().is_some());
    }
    out
}
