//! The in-memory adapters keep the storage contract (the same checks the RocksDB, Kafka and
//! Cassandra adapters run).

use flint_storage::conformance;
use flint_storage::mem::{MemKv, MemLog, MemStore};

#[test]
fn the_in_memory_index_store_keeps_the_kv_contract() {
    conformance::kv_store(&MemKv::new());
}

#[tokio::test]
async fn the_in_memory_resource_store_and_log_keep_their_contracts() {
    conformance::resource_store(&MemStore::new()).await;
    conformance::tx_log(&MemLog::new()).await;
}
