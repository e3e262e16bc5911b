//! The content-addressed resource store: `hash → canonical JSON bytes`, values never change.
//! Implementations: in-memory, RocksDB (standalone), Cassandra (distributed).

use crate::ContentHash;
use crate::error::Result;
use async_trait::async_trait;
use bytes::Bytes;

/// Stores resource contents by their hash.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// The content of `hash`, if stored.
    async fn get(&self, hash: &ContentHash) -> Result<Option<Bytes>>;
    /// The contents of many hashes, in order.
    async fn multi_get(&self, hashes: &[ContentHash]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::with_capacity(hashes.len());
        for h in hashes {
            out.push(self.get(h).await?);
        }
        Ok(out)
    }
    /// Stores contents durably (returns after they survive a crash).
    async fn put(&self, entries: Vec<(ContentHash, Bytes)>) -> Result<()>;
    /// Erases contents (a purge or a history deletion made them unreachable): their bytes are
    /// gone and `get` answers an empty value for them from then on, an *erased* content that
    /// readers tell apart from one the store cannot serve (yet): an index rebuilt from the
    /// log meets erased contents of versions a later purge removes, and must index them
    /// without search values instead of waiting for them. A later `put` of the same content
    /// stores it again. Erasing an absent or erased hash is harmless.
    async fn delete(&self, hashes: &[ContentHash]) -> Result<()>;
    /// Moves what only memory and a write-ahead log hold into files, so the next start
    /// replays nothing (called on graceful shutdown; a no-op where nothing is replayed).
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}
