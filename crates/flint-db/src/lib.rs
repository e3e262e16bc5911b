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
pub use flint_storage::{admin, conformance, error, fault, kv, log, mem, store};
pub mod codec;
pub mod db;
pub mod ids;
pub mod index;
pub mod node;
pub mod search;
pub mod testing;

pub use admin::{ColumnFamilyStats, DbStats, StoreAdmin};
pub use db::{Db, HistoryEntry, ResourceHandle};
pub use error::{DbError, ErrorKind};
pub use ids::IdList;
pub use kv::{Cf, KvCursor, KvStore, WriteBatch};
pub use log::{IfNoneMatch, TxCmd, TxEntry, TxLog, TxOp};
pub use node::{Node, NodeConfig, TxOutcome};
pub use search::{CompartmentEntry, IndexEntry, Indexed, ResourceIndexer, ValueMatch};
pub use store::ResourceStore;

pub use flint_storage::{ContentHash, T};
