//! In-memory adapters: the `in-memory` storage variant and the fakes of unit tests.

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
}
