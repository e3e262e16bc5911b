//! Test support for crates above the database core: a node over the in-memory log and
//! resource store, and writing a JSON resource as one transaction.

use crate::ContentHash;
use crate::kv::KvStore;
use crate::log::{TxCmd, TxOp};
use crate::mem::{MemLog, MemStore};
use crate::node::{Node, NodeConfig, TxOutcome};
use crate::search::ResourceIndexer;
use crate::store::ResourceStore;
use bytes::Bytes;
use std::sync::Arc;

/// A node over `kv` (an in-memory or fault-injecting index store), an in-memory log and
/// resource store, indexing search values with `indexer`.
pub async fn memory_node(indexer: Arc<dyn ResourceIndexer>, kv: Arc<dyn KvStore>) -> Node {
    node_over(indexer, kv, Arc::new(MemStore::new())).await
}

/// A node over a fresh in-memory index, log and resource store, without a search index
/// (for what only reads and writes resources: measure fixtures, the admin database).
pub async fn plain_node() -> Node {
    Node::start(
        Arc::new(crate::mem::MemKv::new()),
        Arc::new(MemLog::new()),
        Arc::new(MemStore::new()),
        NodeConfig::default(),
    )
    .await
    .expect("start an in-memory node")
}

/// Like [`memory_node`], over the resource store `store` too (e.g. a fault-injecting one).
pub async fn node_over(
    indexer: Arc<dyn ResourceIndexer>,
    kv: Arc<dyn KvStore>,
    store: Arc<dyn ResourceStore>,
) -> Node {
    Node::start(
        kv,
        Arc::new(MemLog::new()),
        store,
        NodeConfig {
            resource_indexer: Some(indexer),
            ..NodeConfig::default()
        },
    )
    .await
    .expect("start an in-memory node")
}

/// Writes `resource` (with `resourceType` and `id`) as a put; panics if the write fails.
pub async fn put_json(node: &Node, resource: &serde_json::Value) -> TxOutcome {
    let body = serde_json::to_vec(resource).expect("serialise the resource");
    let h = ContentHash::of(&body);
    let cmd = TxCmd::new(
        TxOp::Put,
        resource["resourceType"].as_str().expect("resourceType"),
        resource["id"].as_str().expect("id"),
        Some(h),
    );
    node.transact(vec![cmd], vec![(h, Bytes::from(body))])
        .await
        .expect("write the resource")
}
