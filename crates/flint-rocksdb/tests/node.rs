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
