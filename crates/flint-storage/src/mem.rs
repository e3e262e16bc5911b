//! In-memory adapters: the `in-memory` storage variant and the fakes of unit tests.

use crate::admin::{ColumnFamilyStats, DbStats, StoreAdmin};
use crate::error::Result;
use crate::kv::{Cf, KvCursor, KvStore, WriteBatch};
use crate::log::{TxCmd, TxEntry, TxLog};
use crate::store::ResourceStore;
use crate::{ContentHash, T};
/// The clock and the long-poll helper, also here for callers of the in-memory adapters.
pub use crate::{now_ms, wait_for_t};
use async_trait::async_trait;
use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use crossbeam_skiplist::map::Entry;
use parking_lot::Mutex;
use std::ops::Bound;
use std::time::Duration;
use tokio::sync::watch;

/// An ordered in-memory key-value store: one lock-free skip list per column family.
pub struct MemKv {
    cfs: Vec<SkipMap<Vec<u8>, Vec<u8>>>,
    write_lock: Mutex<()>,
}

impl Default for MemKv {
    fn default() -> Self {
        MemKv {
            cfs: Cf::ALL.iter().map(|_| SkipMap::new()).collect(),
            write_lock: Mutex::new(()),
        }
    }
}

impl MemKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn cf(&self, cf: Cf) -> &SkipMap<Vec<u8>, Vec<u8>> {
        &self.cfs[cf.index()]
    }
}

impl KvStore for MemKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.cf(cf).get(key).map(|e| e.value().clone()))
    }

    fn write(&self, batch: WriteBatch, _sync: bool) -> Result<()> {
        // Writers are serialised; readers only ever look at rows of committed `t`, which the
        // TxSuccess row (written last) makes visible.
        let _g = self.write_lock.lock();
        for w in batch.writes {
            match w.value {
                Some(v) => {
                    self.cf(w.cf).insert(w.key, v);
                }
                None => {
                    self.cf(w.cf).remove(&w.key);
                }
            }
        }
        Ok(())
    }

    fn cursor(&self, cf: Cf) -> Box<dyn KvCursor + '_> {
        Box::new(MemCursor {
            map: self.cf(cf),
            cur: None,
        })
    }
}

struct MemCursor<'a> {
    map: &'a SkipMap<Vec<u8>, Vec<u8>>,
    cur: Option<Entry<'a, Vec<u8>, Vec<u8>>>,
}

impl KvCursor for MemCursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        self.cur = self.map.lower_bound(Bound::Included(key));
    }
    fn valid(&self) -> bool {
        self.cur.is_some()
    }
    fn key(&self) -> &[u8] {
        self.cur.as_ref().map(|e| e.key().as_slice()).unwrap_or(&[])
    }
    fn value(&self) -> &[u8] {
        self.cur
            .as_ref()
            .map(|e| e.value().as_slice())
            .unwrap_or(&[])
    }
    fn next(&mut self) {
        self.cur = self.cur.take().and_then(|e| e.next());
    }
    fn status(&self) -> Result<()> {
        Ok(())
    }
}

/// An in-memory transaction log.
pub struct MemLog {
    entries: Mutex<Vec<TxEntry>>,
    last_t: watch::Sender<T>,
}

impl Default for MemLog {
    fn default() -> Self {
        MemLog {
            entries: Mutex::new(Vec::new()),
            last_t: watch::channel(0).0,
        }
    }
}

impl MemLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TxLog for MemLog {
    async fn submit(&self, cmds: Vec<TxCmd>) -> Result<T> {
        let mut entries = self.entries.lock();
        let t = entries.len() as T + 1;
        let instant_ms = now_ms().max(entries.last().map_or(0, |e| e.instant_ms));
        entries.push(TxEntry {
            t,
            instant_ms,
            cmds,
        });
        self.last_t.send_replace(t);
        Ok(t)
    }

    async fn poll(&self, from: T, max: usize, timeout: Duration) -> Result<Vec<TxEntry>> {
        wait_for_t(&self.last_t, from, timeout).await;
        let entries = self.entries.lock();
        let start = from.saturating_sub(1) as usize;
        Ok(entries.iter().skip(start).take(max).cloned().collect())
    }

    async fn last_t(&self) -> Result<T> {
        Ok(*self.last_t.borrow())
    }
}

/// An in-memory resource store.
#[derive(Default)]
pub struct MemStore {
    map: SkipMap<ContentHash, Bytes>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ResourceStore for MemStore {
    async fn get(&self, hash: &ContentHash) -> Result<Option<Bytes>> {
        Ok(self.map.get(hash).map(|e| e.value().clone()))
    }

    async fn put(&self, entries: Vec<(ContentHash, Bytes)>) -> Result<()> {
        for (h, b) in entries {
            self.map.insert(h, b);
        }
        Ok(())
    }

    async fn delete(&self, hashes: &[ContentHash]) -> Result<()> {
        for h in hashes {
            self.map.insert(*h, Bytes::new());
        }
        Ok(())
    }
}

/// Statistics of one in-memory column family: exact key count and bytes held.
fn mem_cf_stats(name: &str, keys: u64, bytes: u64) -> ColumnFamilyStats {
    ColumnFamilyStats {
        name: name.to_string(),
        estimate_num_keys: keys,
        estimate_live_data_size: bytes,
        live_sst_files_size: 0,
        size_all_mem_tables: bytes,
    }
}

/// In-memory stores tell their exact sizes; they have no disk, block cache or compactions
/// (compacting a known column family does nothing).
fn mem_db_stats(cfs: &[ColumnFamilyStats]) -> DbStats {
    DbStats {
        estimate_live_data_size: Some(cfs.iter().map(|c| c.estimate_live_data_size).sum()),
        ..DbStats::default()
    }
}

impl StoreAdmin for MemKv {
    fn stats(&self) -> Result<DbStats> {
        Ok(mem_db_stats(&self.column_families()?))
    }

    fn column_families(&self) -> Result<Vec<ColumnFamilyStats>> {
        Ok(Cf::ALL
            .iter()
            .map(|cf| {
                let map = self.cf(*cf);
                let bytes = map
                    .iter()
                    .map(|e| (e.key().len() + e.value().len()) as u64)
                    .sum();
                mem_cf_stats(cf.name(), map.len() as u64, bytes)
            })
            .collect())
    }

    fn compact(&self, column_family: &str) -> Result<bool> {
        Ok(Cf::ALL.iter().any(|c| c.name() == column_family))
    }
}

impl StoreAdmin for MemLog {
    fn stats(&self) -> Result<DbStats> {
        Ok(mem_db_stats(&self.column_families()?))
    }

    fn column_families(&self) -> Result<Vec<ColumnFamilyStats>> {
        let entries = self.entries.lock();
        // Each entry as stored by the persistent logs: `t`, the instant and the commands.
        let bytes = entries
            .iter()
            .map(|e| 16 + crate::log::encode_cmds(&e.cmds).len() as u64)
            .sum();
        Ok(vec![mem_cf_stats("default", entries.len() as u64, bytes)])
    }

    fn compact(&self, column_family: &str) -> Result<bool> {
        Ok(column_family == "default")
    }
}

impl StoreAdmin for MemStore {
    fn stats(&self) -> Result<DbStats> {
        Ok(mem_db_stats(&self.column_families()?))
    }

    fn column_families(&self) -> Result<Vec<ColumnFamilyStats>> {
        let bytes = self.map.iter().map(|e| 32 + e.value().len() as u64).sum();
        Ok(vec![mem_cf_stats("default", self.map.len() as u64, bytes)])
    }

    fn compact(&self, column_family: &str) -> Result<bool> {
        Ok(column_family == "default")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::TxOp;

    #[test]
    fn cursor_seeks_and_iterates_in_order() {
        let kv = MemKv::new();
        let mut b = WriteBatch::default();
        for k in [b"b".to_vec(), b"a".to_vec(), b"c".to_vec()] {
            b.put(Cf::Meta, k.clone(), k);
        }
        kv.write(b, false).unwrap();
        let mut c = kv.cursor(Cf::Meta);
        c.seek(b"aa");
        let mut seen = vec![];
        while c.valid() {
            seen.push(c.key().to_vec());
            c.next();
        }
        assert_eq!(seen, vec![b"b".to_vec(), b"c".to_vec()]);
        assert!(!kv.cursor(Cf::TxError).valid());
    }

    #[tokio::test]
    async fn log_assigns_consecutive_t_and_polls_from() {
        let log = MemLog::new();
        for i in 0..3 {
            let t = log
                .submit(vec![TxCmd::new(
                    TxOp::Delete,
                    "Patient",
                    &i.to_string(),
                    None,
                )])
                .await
                .unwrap();
            assert_eq!(t, i + 1);
        }
        let got = log.poll(2, 10, Duration::from_millis(1)).await.unwrap();
        assert_eq!(got.iter().map(|e| e.t).collect::<Vec<_>>(), vec![2, 3]);
        assert!(
            log.poll(4, 10, Duration::from_millis(5))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(log.last_t().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn memory_stores_count_exactly() {
        let kv = MemKv::new();
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, b"ab".to_vec(), b"cde".to_vec());
        b.put(Cf::TxError, b"k".to_vec(), Vec::new());
        kv.write(b, false).unwrap();
        let cfs = kv.column_families().unwrap();
        assert_eq!(cfs.len(), Cf::ALL.len());
        let meta = cfs.iter().find(|c| c.name == "default").unwrap();
        assert_eq!(
            (meta.estimate_num_keys, meta.estimate_live_data_size),
            (1, 5)
        );
        assert_eq!(kv.stats().unwrap().estimate_live_data_size, Some(6));
        assert!(kv.compact("tx-error-index").unwrap());
        assert!(!kv.compact("nope").unwrap());
        let store = MemStore::new();
        store
            .put(vec![(ContentHash::of(b"x"), Bytes::from_static(b"x"))])
            .await
            .unwrap();
        assert_eq!(store.column_families().unwrap()[0].estimate_num_keys, 1);
        assert_eq!(store.stats().unwrap().estimate_live_data_size, Some(33));
        let log = MemLog::new();
        log.submit(vec![]).await.unwrap();
        assert_eq!(log.column_families().unwrap()[0].estimate_num_keys, 1);
        assert!(log.compact("default").unwrap() && !log.compact("x").unwrap());
    }
}
