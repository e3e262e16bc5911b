//! Fault-injecting wrappers of the storage traits, for tests: a [`FaultyKv`] and a
//! [`FaultyStore`] forward every call to the real adapter until a [`Faults`] plan says that the
//! n-th matching call fails. They prove that a storage error surfaces as an error (a 503 over
//! HTTP, a retry in the indexer), never as an empty result or a guessed outcome.

use crate::ContentHash;
use crate::error::{DbError, Result};
use crate::kv::{Cf, KvCursor, KvStore, WriteBatch};
use crate::store::ResourceStore;
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a storage call does, as a fault plan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `KvStore::get` of a column family.
    Get(Cf),
    /// `KvStore::multi_get` of a column family.
    MultiGet(Cf),
    /// `KvStore::write`.
    Write,
    /// A cursor's `seek` on a column family.
    Seek(Cf),
    /// A cursor's `next` on a column family.
    Next(Cf),
    /// `ResourceStore::get` or `multi_get`.
    StoreGet,
    /// `ResourceStore::put`.
    StorePut,
    /// `ResourceStore::delete`.
    StoreDelete,
}

/// A fault plan: which calls fail. Shared by the wrappers it is handed to; change it at any
/// time from the test.
#[derive(Default)]
pub struct Faults {
    rule: Mutex<Option<Rule>>,
    /// Calls that failed because of this plan.
    injected: AtomicU64,
}

struct Rule {
    matches: Box<dyn Fn(Op) -> bool + Send + Sync>,
    /// Matching calls still let through before the first failure.
    skip: u64,
    /// Failures still to inject (`u64::MAX`: until [`Faults::heal`]).
    left: u64,
}

impl Faults {
    /// A plan that fails nothing (yet).
    pub fn new() -> Arc<Faults> {
        Arc::new(Faults::default())
    }

    /// From now on, lets `skip` calls matching `matches` through, then fails the next `times`
    /// matching ones (`u64::MAX`: every one until [`Faults::heal`]).
    pub fn fail(
        &self,
        matches: impl Fn(Op) -> bool + Send + Sync + 'static,
        skip: u64,
        times: u64,
    ) {
        *self.rule.lock() = Some(Rule {
            matches: Box::new(matches),
            skip,
            left: times,
        });
    }

    /// Fails nothing from now on.
    pub fn heal(&self) {
        *self.rule.lock() = None;
    }

    /// How many calls this plan has failed so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Acquire)
    }

    /// `Err` when the plan fails this call.
    pub fn check(&self, op: Op) -> Result<()> {
        let mut rule = self.rule.lock();
        let Some(r) = rule.as_mut() else {
            return Ok(());
        };
        if !(r.matches)(op) {
            return Ok(());
        }
        if r.skip > 0 {
            r.skip -= 1;
            return Ok(());
        }
        if r.left == 0 {
            return Ok(());
        }
        if r.left != u64::MAX {
            r.left -= 1;
        }
        self.injected.fetch_add(1, Ordering::AcqRel);
        Err(DbError::unavailable(format!(
            "injected storage fault at {op:?}"
        )))
    }
}

/// A [`KvStore`] that fails the calls its [`Faults`] plan selects and forwards the rest.
pub struct FaultyKv {
    inner: Arc<dyn KvStore>,
    faults: Arc<Faults>,
}

impl FaultyKv {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn KvStore>, faults: Arc<Faults>) -> Self {
        FaultyKv { inner, faults }
    }
}

impl KvStore for FaultyKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.faults.check(Op::Get(cf))?;
        self.inner.get(cf, key)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        self.faults.check(Op::Write)?;
        self.inner.write(batch, sync)
    }

    fn multi_get(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.faults.check(Op::MultiGet(cf))?;
        self.inner.multi_get(cf, keys)
    }

    fn cursor(&self, cf: Cf) -> Box<dyn KvCursor + '_> {
        Box::new(FaultyCursor {
            inner: self.inner.cursor(cf),
            faults: &self.faults,
            cf,
            error: None,
        })
    }

    fn prefix_cursor(&self, cf: Cf) -> Box<dyn KvCursor + '_> {
        Box::new(FaultyCursor {
            inner: self.inner.prefix_cursor(cf),
            faults: &self.faults,
            cf,
            error: None,
        })
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}

/// A cursor that stops with an error, as a RocksDB iterator does on an I/O error: it is no
/// longer valid and its status is the error, until the next seek.
struct FaultyCursor<'a> {
    inner: Box<dyn KvCursor + 'a>,
    faults: &'a Faults,
    cf: Cf,
    error: Option<DbError>,
}

impl KvCursor for FaultyCursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        self.error = self.faults.check(Op::Seek(self.cf)).err();
        self.inner.seek(key);
    }
    fn valid(&self) -> bool {
        self.error.is_none() && self.inner.valid()
    }
    fn key(&self) -> &[u8] {
        if self.error.is_some() {
            &[]
        } else {
            self.inner.key()
        }
    }
    fn value(&self) -> &[u8] {
        if self.error.is_some() {
            &[]
        } else {
            self.inner.value()
        }
    }
    fn next(&mut self) {
        if self.error.is_none() {
            self.error = self.faults.check(Op::Next(self.cf)).err();
            self.inner.next();
        }
    }
    fn status(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => self.inner.status(),
        }
    }
}

/// A [`ResourceStore`] that fails the calls its [`Faults`] plan selects and forwards the rest.
pub struct FaultyStore {
    inner: Arc<dyn ResourceStore>,
    faults: Arc<Faults>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ResourceStore>, faults: Arc<Faults>) -> Self {
        FaultyStore { inner, faults }
    }
}

#[async_trait]
impl ResourceStore for FaultyStore {
    async fn get(&self, hash: &ContentHash) -> Result<Option<Bytes>> {
        self.faults.check(Op::StoreGet)?;
        self.inner.get(hash).await
    }

    async fn multi_get(&self, hashes: &[ContentHash]) -> Result<Vec<Option<Bytes>>> {
        self.faults.check(Op::StoreGet)?;
        self.inner.multi_get(hashes).await
    }

    async fn put(&self, entries: Vec<(ContentHash, Bytes)>) -> Result<()> {
        self.faults.check(Op::StorePut)?;
        self.inner.put(entries).await
    }

    async fn delete(&self, hashes: &[ContentHash]) -> Result<()> {
        self.faults.check(Op::StoreDelete)?;
        self.inner.delete(hashes).await
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}
