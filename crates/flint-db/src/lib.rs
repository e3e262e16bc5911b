//! Database core: immutable database values at a logical time `t`, the storage traits every
//! variant implements (key-value index store, transaction log, content-addressed resource
//! store), the indexer that turns log entries into index rows, and in-memory adapters.
//!
//! The write path is: resource contents go to the [`ResourceStore`] (keyed by their SHA-256
//! hash), then the transaction's commands go to the [`TxLog`] which assigns `t`; every node's
//! indexer consumes the log in order, verifies each transaction against the database before it
//! (preconditions, referential integrity) and writes one atomic batch of index rows ending in the
//! `TxSuccess` marker (or a `TxError` row). A [`Db`] reads the index as of a fixed `t`.

pub mod cache;
pub mod codec;
pub mod conformance;
pub mod db;
pub mod error;
pub mod fault;
pub mod ids;
pub mod index;
pub mod kv;
pub mod log;
pub mod mem;
pub mod node;
pub mod search;
pub mod store;

pub use db::{Db, HistoryEntry, ResourceHandle};
pub use error::{DbError, ErrorKind};
pub use ids::IdList;
pub use kv::{Cf, KvCursor, KvStore, WriteBatch};
pub use log::{IfNoneMatch, TxCmd, TxEntry, TxLog, TxOp};
pub use node::{Node, NodeConfig, TxOutcome};
pub use search::{IndexEntry, Indexed, ResourceIndexer, ValueMatch};
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
