//! A database node over the three RocksDB databases: data survives reopening, and a deleted
//! index is rebuilt from the transaction log and resource store into the same database.

use bytes::Bytes;
use flint_db::{ContentHash, Node, NodeConfig, TxCmd, TxOp};
use flint_rocksdb::{RocksConfig, RocksKv, RocksLog, RocksStore};
use std::path::Path;
use std::sync::Arc;

async fn open(dir: &Path) -> Node {
    let cfg = RocksConfig::new(8 << 20);
    // Wired as the server wires it: the log syncs the store's WAL.
    let store = RocksStore::open(&dir.join("resource"), &cfg).unwrap();
    let log = RocksLog::open_syncing(&dir.join("transaction"), &cfg, &store).unwrap();
    Node::start(
        Arc::new(RocksKv::open(&dir.join("index"), &cfg).unwrap()),
        Arc::new(log),
        Arc::new(store),
        NodeConfig::default(),
    )
    .await
    .unwrap()
}

async fn put(node: &Node, id: &str, body: &str) {
    let h = ContentHash::of(body.as_bytes());
    node.transact(
        vec![TxCmd::new(TxOp::Put, "Patient", id, Some(h))],
        vec![(h, Bytes::from(body.to_string()))],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_and_rebuild_give_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let (t, hist) = {
        let node = open(dir.path()).await;
        for i in 0..30 {
            put(&node, &format!("p{}", i % 7), &format!("v{i}")).await;
        }
        node.transact(
            vec![TxCmd::new(TxOp::Delete, "Patient", "p3", None)],
            vec![],
        )
        .await
        .unwrap();
        let db = node.db();
        let out = (db.t(), db.system_history(None, 0, 100).unwrap());
        node.shutdown().await;
        out
    };
    // Reopen: same t, same history, contents readable.
    {
        let node = open(dir.path()).await;
        let db = node.sync().await.unwrap();
        assert_eq!(db.t(), t);
        assert_eq!(db.system_history(None, 0, 100).unwrap(), hist);
        let h = db.resource("Patient", "p1").unwrap().unwrap();
        assert_eq!(db.pull(&h).await.unwrap(), Bytes::from("v29"));
        put(&node, "p1", "after-reopen").await;
        node.shutdown().await;
    }
    // Rebuild: delete the index, the log replays into the same database.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let node = open(dir.path()).await;
    let db = node.sync().await.unwrap();
    assert_eq!(db.t(), t + 1);
    assert_eq!(db.as_of(t).system_history(None, 0, 100).unwrap(), hist);
    assert!(db.resource("Patient", "p3").unwrap().unwrap().is_deleted());
    assert_eq!(db.type_total("Patient").unwrap(), 6);
}

#[test]
fn the_rocksdb_index_store_keeps_the_kv_contract() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RocksConfig::new(8 << 20);
    flint_storage::conformance::kv_store(&RocksKv::open(dir.path(), &cfg).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rocksdb_resource_store_and_log_keep_their_contracts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RocksConfig::new(8 << 20);
    let store = RocksStore::open(&dir.path().join("resource"), &cfg).unwrap();
    flint_storage::conformance::resource_store(&store).await;
    let log = RocksLog::open_syncing(&dir.path().join("transaction"), &cfg, &store).unwrap();
    flint_storage::conformance::tx_log(&log).await;
}

/// Every version of `Patient/id` this node's index holds, newest first.
fn versions(node: &Node, id: &str) -> Vec<flint_db::ResourceHandle> {
    node.db()
        .instance_history("Patient", id, None, 0, usize::MAX)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_and_history_deleted_contents_stay_erased_after_reopen_and_rebuild() {
    use flint_db::ResourceStore;
    let dir = tempfile::tempdir().unwrap();
    let (erased, kept, t) = {
        let node = open(dir.path()).await;
        for i in 0..3 {
            put(&node, "gone", &format!("gone-{i}")).await;
            put(&node, "trimmed", &format!("trimmed-{i}")).await;
        }
        put(&node, "other", "other").await;
        let mut erased: Vec<ContentHash> = versions(&node, "gone").iter().map(|h| h.hash).collect();
        let trimmed = versions(&node, "trimmed");
        erased.extend(trimmed[1..].iter().map(|h| h.hash));
        let kept = vec![trimmed[0].hash, versions(&node, "other")[0].hash];
        node.transact(
            vec![
                TxCmd::new(TxOp::Purge, "Patient", "gone", None),
                TxCmd::new(TxOp::DeleteHistory, "Patient", "trimmed", None),
            ],
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(node.erase_unreferenced().await.unwrap(), 0);
        let t = node.db().t();
        node.shutdown().await;
        (erased, kept, t)
    };
    let check = |node: &Node| {
        let db = node.db();
        assert_eq!(db.t(), t);
        assert!(db.resource("Patient", "gone").unwrap().is_none());
        assert_eq!(versions(node, "trimmed").len(), 1);
        assert_eq!(db.type_total("Patient").unwrap(), 2);
        assert_eq!(db.type_changes("Patient").unwrap(), 2);
    };
    // Reopen: the erasure is durable, the index unchanged.
    {
        let node = open(dir.path()).await;
        node.sync().await.unwrap();
        check(&node);
        node.shutdown().await;
    }
    let store_check = |store: RocksStore| async move {
        for h in &erased {
            assert_eq!(store.get(h).await.unwrap().as_deref(), Some(&b""[..]));
        }
        for h in &kept {
            assert!(!store.get(h).await.unwrap().unwrap().is_empty());
        }
    };
    store_check(
        RocksStore::open(&dir.path().join("resource"), &RocksConfig::new(8 << 20)).unwrap(),
    )
    .await;
    // Rebuild: the log replays over erased contents without waiting for them.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let node = open(dir.path()).await;
    node.sync().await.unwrap();
    check(&node);
    let h = node.db().resource("Patient", "other").unwrap().unwrap();
    assert_eq!(node.db().pull(&h).await.unwrap(), Bytes::from("other"));
    node.shutdown().await;
}
