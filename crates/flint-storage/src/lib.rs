//! The storage contract of Flint, free of FHIR: the traits every storage adapter implements
//! (the ordered key-value [`KvStore`] the index lives in, the totally ordered [`TxLog`], the
//! content-addressed [`ResourceStore`]), their column families, write batches, log commands,
//! errors, content hashes and logical times, the key layout that adapters' prefix filters rely
//! on, and the in-memory adapters. Adapters (RocksDB, Kafka, Cassandra) depend on this crate
//! alone; the database core (`flint-db`) builds on it.
//!
//! For tests: [`fault`] wraps any adapter with injected faults, [`conformance`] checks an
//! adapter against the contract.

pub mod admin;
pub mod conformance;
pub mod error;
pub mod fault;
pub mod kv;
pub mod layout;
pub mod log;
pub mod mem;
pub mod store;

pub use admin::{ColumnFamilyStats, DbStats, StoreAdmin};
pub use error::{DbError, ErrorKind, Result};
pub use kv::{Cf, KvCursor, KvStore, WriteBatch};
pub use log::{IfNoneMatch, TxCmd, TxEntry, TxLog, TxOp};
pub use store::ResourceStore;

use sha2::{Digest, Sha256};

/// A logical time: the number of the transaction that produced a database value.
pub type T = u64;

/// SHA-256 of a resource version's canonical JSON bytes (without `meta.versionId` and
/// `meta.lastUpdated`): the key of the content-addressed resource store.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(Sha256::digest(bytes).into())
    }

    /// The all-zero hash used for deletion versions.
    pub const DELETED: ContentHash = ContentHash([0; 32]);

    /// Lower-case hex form (used as Cassandra key and in logs).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

/// Current time in milliseconds since the epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Waits until `last` reaches `from` or `timeout` passes (the long poll of log adapters).
pub async fn wait_for_t(
    last: &tokio::sync::watch::Sender<T>,
    from: T,
    timeout: std::time::Duration,
) {
    let mut rx = last.subscribe();
    let _ = tokio::time::timeout(timeout, rx.wait_for(|t| *t >= from)).await;
}
