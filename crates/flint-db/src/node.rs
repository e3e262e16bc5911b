//! A database node: owns the index, runs the indexer over the transaction log, accepts writes
//! and hands out database values.

use crate::codec;
use crate::db::{Db, Storage};
use crate::error::{DbError, ErrorKind, Result};
use crate::index;
use crate::kv::{Cf, KvStore, WriteBatch};
use crate::log::{TxCmd, TxEntry, TxLog, TxOp};
use crate::search::{Indexed, ResourceIndexer};
use crate::store::ResourceStore;
use crate::{ContentHash, T};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Settings of a node.
#[derive(Clone)]
pub struct NodeConfig {
    /// Maximum number of resource contents kept in the in-memory cache.
    pub resource_cache_size: u64,
    /// How long a read waits to catch up with the log end, and a write for its indexing.
    pub sync_timeout: Duration,
    /// Maximum number of submitted but not yet indexed transactions (then 503).
    pub max_in_flight: usize,
    /// Computes search-index entries of new versions (none: no search index is written).
    pub resource_indexer: Option<Arc<dyn ResourceIndexer>>,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("resource_cache_size", &self.resource_cache_size)
            .field("sync_timeout", &self.sync_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("resource_indexer", &self.resource_indexer.is_some())
            .finish()
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            resource_cache_size: 100_000,
            sync_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            resource_indexer: None,
        }
    }
}

/// The outcome of a committed transaction.
#[derive(Clone)]
pub struct TxOutcome {
    /// The transaction's `t`.
    pub t: T,
    /// The database as of `t`.
    pub db: Db,
}

struct Inner {
    storage: Arc<Storage>,
    log: Arc<dyn TxLog>,
    /// Newest `t` the indexer has processed.
    indexed: watch::Sender<T>,
    config: NodeConfig,
    in_flight: AtomicUsize,
    closing: AtomicBool,
    stop: tokio::sync::Notify,
    indexer: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// What the lag monitor and the indexer last observed.
    status: parking_lot::Mutex<Observed>,
    /// Search-index entries of contents being written through this node, computed by
    /// [`Node::pre_index`] from their parsed form; the indexer takes them instead of parsing
    /// the contents again.
    pre_indexed: parking_lot::Mutex<HashMap<ContentHash, Result<Indexed>>>,
    /// Contents that committed purges and history deletions left unreferenced, with the `t`
    /// of their transaction, waiting to be erased from the resource store ([`erase_due`]).
    unreferenced: parking_lot::Mutex<Vec<(T, index::Unreferenced)>>,
    /// Serialises erasure runs (the indexer and the lag monitor both start them).
    erasing: tokio::sync::Mutex<()>,
}

/// Observations behind [`NodeStatus`].
#[derive(Default)]
struct Observed {
    /// The log end (`t` of the newest committed transaction) and when it was read.
    log_end: Option<(T, std::time::Instant)>,
    /// The oldest log end not yet indexed and when it was first seen (lag-time estimate).
    behind_since: Option<(T, std::time::Instant)>,
    /// The last error of the log-end check, with when it happened.
    log_error: Option<(String, std::time::Instant)>,
    /// The last error of the indexer (cleared when it indexes again), with when it happened.
    indexer_error: Option<(String, std::time::Instant)>,
    /// Log-append instant of the newest indexed transaction (ms since the epoch).
    indexed_instant_ms: Option<i64>,
}

/// A snapshot of a node's health: how far its index is behind the transaction log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    /// Newest `t` this node has indexed.
    pub indexed_t: T,
    /// Newest `t` of the log as last read (none before the first successful check).
    pub log_end_t: Option<T>,
    /// Seconds since the log end was last read successfully.
    pub log_end_age_seconds: Option<f64>,
    /// Transactions committed to the log and not yet indexed here.
    pub lag_transactions: u64,
    /// How long the oldest known unindexed transaction has waited (0 when caught up; sampled
    /// once a second, so a lower bound within a second).
    pub lag_seconds: f64,
    /// The failure of the last attempt to read the log end (none once one succeeds).
    pub log_error: Option<String>,
    /// The failure of the indexer's last attempt (none once one succeeds).
    pub indexer_error: Option<String>,
    /// Log-append time of the newest indexed transaction, in milliseconds since the Unix epoch.
    pub indexed_instant_ms: Option<i64>,
    /// Transactions submitted by this node and not yet indexed.
    pub in_flight: usize,
}

/// A database node. Clone it freely; all clones share one indexer.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// Starts a node over the given storage: checks the index version, then spawns the indexer,
    /// which first catches up with the log (rebuilding an empty index from `t = 1`).
    pub async fn start(
        kv: Arc<dyn KvStore>,
        log: Arc<dyn TxLog>,
        store: Arc<dyn ResourceStore>,
        config: NodeConfig,
    ) -> Result<Node> {
        index::check_version(&*kv)?;
        let head = index::head_t(&*kv)?;
        let storage = Arc::new(Storage {
            kv,
            store,
            cache: crate::cache::new(config.resource_cache_size as usize),
            instants: crate::cache::new(100_000),
            leases: parking_lot::Mutex::new(Default::default()),
            removed_t: std::sync::atomic::AtomicU64::new(0),
        });
        let inner = Arc::new(Inner {
            storage,
            log,
            indexed: watch::channel(head).0,
            config,
            in_flight: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
            indexer: parking_lot::Mutex::new(None),
            status: parking_lot::Mutex::new(Observed::default()),
            pre_indexed: parking_lot::Mutex::new(HashMap::new()),
            unreferenced: parking_lot::Mutex::new(Vec::new()),
            erasing: tokio::sync::Mutex::new(()),
        });
        let handle = tokio::spawn(run_indexer(Arc::downgrade(&inner)));
        *inner.indexer.lock() = Some(handle);
        tokio::spawn(run_lag_monitor(Arc::downgrade(&inner)));
        Ok(Node { inner })
    }

    /// The newest database value this node has indexed.
    pub fn db(&self) -> Db {
        Db::new(self.inner.storage.clone(), *self.inner.indexed.borrow())
    }

    /// Re-indexes the search entries of every current resource when the search parameters'
    /// `fingerprint` differs from the one the index was built with (a changed
    /// `DB_SEARCH_PARAM_BUNDLE`, say): old entries are removed using each version's value
    /// blob, new ones written. Returns the number of resources re-indexed, `None` when the
    /// fingerprint matched. Call before serving writes.
    pub async fn reindex_if_changed(&self, fingerprint: &[u8]) -> Result<Option<u64>> {
        const KEY: &[u8] = b"search-params";
        let Some(indexer) = self.inner.config.resource_indexer.clone() else {
            return Ok(None);
        };
        let kv = self.inner.storage.kv.clone();
        if kv.get(Cf::Meta, KEY)?.as_deref() == Some(fingerprint) {
            return Ok(None);
        }
        let db = self.sync().await?;
        let mut n = 0u64;
        for ty in flint_model::defs::definitions().resource_types() {
            let mut start: Option<String> = None;
            loop {
                let mut page = db.type_list(ty, start.as_deref(), 512)?;
                if start.is_some() && !page.is_empty() {
                    page.remove(0);
                }
                let Some(last) = page.last() else { break };
                start = Some(last.id.clone());
                n += reindex_page(&db, &indexer, ty, &page, None).await?;
                if page.len() < 511 {
                    break;
                }
            }
        }
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, KEY.to_vec(), fingerprint.to_vec());
        kv.write(b, true)?;
        Ok(Some(n))
    }

    /// Writes again the search entries of parameters `params` (hashes, [`codec::param_hash`]
    /// of their codes) of the resource versions `page` of `type_name` (current in `db`), as
    /// the indexer writes them for a new version: stale entries of those parameters named by
    /// the version's old value blob removed, the new ones and a new value blob written, one
    /// atomic batch. Entries are keyed by version, so versions written meanwhile (which the
    /// indexer indexes with the same registry) are unaffected. Extraction runs on the
    /// blocking pool. Returns how many versions were re-indexed; without a search index
    /// (no resource indexer), 0.
    pub async fn reindex_params(
        &self,
        db: &Db,
        type_name: &str,
        page: &[crate::db::ResourceHandle],
        params: &[u32],
    ) -> Result<u64> {
        let Some(indexer) = self.inner.config.resource_indexer.clone() else {
            return Ok(0);
        };
        reindex_page(db, &indexer, type_name, page, Some(params)).await
    }

    /// How long reads wait for the index to reach the log end (`DB_SYNC_TIMEOUT`).
    pub fn sync_timeout(&self) -> Duration {
        self.inner.config.sync_timeout
    }

    /// The newest `t` this node has indexed.
    pub fn indexed_t(&self) -> T {
        *self.inner.indexed.borrow()
    }

    /// A database value that includes every transaction committed to the log before this call
    /// (waits for the indexer up to the sync timeout, then 503).
    pub async fn sync(&self) -> Result<Db> {
        let last = read_log_end(&self.inner).await?;
        self.sync_to(last).await
    }

    /// How far this node's index is behind the log, as last observed (the log end is read once
    /// a second and on every sync).
    pub fn status(&self) -> NodeStatus {
        let inner = &self.inner;
        let indexed_t = *inner.indexed.borrow();
        let o = inner.status.lock();
        let now = std::time::Instant::now();
        let log_end_t = o.log_end.map(|(t, _)| t);
        let lag_transactions = log_end_t.map_or(0, |e| e.saturating_sub(indexed_t));
        let lag_seconds = match o.behind_since {
            Some((_, since)) if lag_transactions > 0 => now.duration_since(since).as_secs_f64(),
            _ => 0.0,
        };
        let recent = |e: &Option<(String, std::time::Instant)>| {
            e.as_ref()
                .filter(|(_, at)| now.duration_since(*at) < Duration::from_secs(60))
                .map(|(m, _)| m.clone())
        };
        NodeStatus {
            indexed_t,
            log_end_t,
            log_end_age_seconds: o
                .log_end
                .map(|(_, at)| now.duration_since(at).as_secs_f64()),
            lag_transactions,
            lag_seconds,
            log_error: recent(&o.log_error),
            indexer_error: o.indexer_error.as_ref().map(|(m, _)| m.clone()),
            indexed_instant_ms: o.indexed_instant_ms,
            in_flight: self.in_flight(),
        }
    }

    /// A database value as of exactly `t`, once this node has indexed it.
    pub async fn sync_to(&self, t: T) -> Result<Db> {
        self.wait_indexed(t).await?;
        Ok(Db::new(self.inner.storage.clone(), t))
    }

    async fn wait_indexed(&self, t: T) -> Result<()> {
        let mut rx = self.inner.indexed.subscribe();
        match tokio::time::timeout(self.inner.config.sync_timeout, rx.wait_for(|i| *i >= t)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(DbError::unavailable("the database node is shutting down")),
            Err(_) => Err(DbError::unavailable(format!(
                "timeout while waiting for the index to reach t = {t}"
            ))),
        }
    }

    /// Writes a transaction: stores `contents` in the resource store, appends `cmds` to the
    /// log and waits until this node has indexed it. Returns the database as of the
    /// transaction, or the error the indexer decided (409, 412, ...).
    pub async fn transact(
        &self,
        cmds: Vec<TxCmd>,
        contents: Vec<(ContentHash, Bytes)>,
    ) -> Result<TxOutcome> {
        self.transact_inner(cmds, contents).await
    }

    /// [`Node::transact`] for writes whose resources are at hand in parsed form (`(content
    /// hash, type, resource)`, the hash of the resource's canonical bytes): their search
    /// values are computed from that form, so the indexer does not parse the stored bytes
    /// again. Whatever the indexer did not take is dropped when the call ends, also when its
    /// future is dropped mid-flight (a client gone).
    pub async fn transact_parsed<'a>(
        &self,
        cmds: Vec<TxCmd>,
        contents: Vec<(ContentHash, Bytes)>,
        parsed: impl IntoIterator<Item = (ContentHash, &'a str, &'a serde_json::Value)>,
    ) -> Result<TxOutcome> {
        let _pre = match &self.inner.config.resource_indexer {
            Some(indexer) => {
                let done: Vec<_> = parsed
                    .into_iter()
                    .map(|(h, ty, v)| (h, indexer.index_json(ty, v)))
                    .collect();
                let hashes = done.iter().map(|(h, _)| *h).collect();
                self.inner.pre_indexed.lock().extend(done);
                Some(PreIndexed {
                    inner: &self.inner,
                    hashes,
                })
            }
            None => None,
        };
        self.transact_inner(cmds, contents).await
    }

    /// Number of search-value results computed from parsed resources and not yet taken by the
    /// indexer (for tests and diagnostics: it is 0 whenever no write is in flight).
    pub fn pre_indexed_len(&self) -> usize {
        self.inner.pre_indexed.lock().len()
    }

    async fn transact_inner(
        &self,
        cmds: Vec<TxCmd>,
        contents: Vec<(ContentHash, Bytes)>,
    ) -> Result<TxOutcome> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(DbError::unavailable("the database node is shutting down"));
        }
        let n = self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
        let _guard = InFlight(&self.inner.in_flight);
        if n >= self.inner.config.max_in_flight {
            return Err(DbError::unavailable(
                "too many transactions in flight; retry later",
            ));
        }
        if !contents.is_empty() {
            // The indexer needs these contents next (search values): keep them in the cache
            // rather than read back from the store what was just written (in the distributed
            // variant a Cassandra read per resource).
            for (h, b) in &contents {
                self.inner.storage.cache.insert(*h, b.clone());
            }
            self.inner.storage.store.put(contents).await?;
        }
        let t = self.inner.log.submit(cmds).await?;
        self.wait_indexed(t).await?;
        let db = Db::new(self.inner.storage.clone(), t);
        // Read, never assumed: a failed read of the outcome is a 503 with an unknown outcome.
        db.tx_outcome(t)??;
        Ok(TxOutcome { t, db })
    }

    /// Stops accepting writes; in-flight ones still finish.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::Release);
    }

    /// Stops accepting writes, waits for in-flight ones (up to the sync timeout) and stops the
    /// indexer, releasing the storage.
    pub async fn shutdown(&self) {
        self.close();
        let deadline = tokio::time::Instant::now() + self.inner.config.sync_timeout;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.inner.stop.notify_one();
        let handle = self.inner.indexer.lock().take();
        if let Some(h) = handle {
            let _ = h.await;
        }
        let kv = self.inner.storage.kv.clone();
        let store = self.inner.storage.store.clone();
        let log = self.inner.log.clone();
        let flushed =
            tokio::task::spawn_blocking(move || [kv.flush(), store.flush(), log.flush()]).await;
        for e in flushed.into_iter().flatten().filter_map(|r| r.err()) {
            tracing::warn!(error = %e, "could not flush a store on shutdown");
        }
    }

    /// Number of contents that purges and history deletions left unreferenced and that are
    /// not erased from the resource store yet (an older database value is still alive, or
    /// the store failed and the erasure is retried).
    pub fn pending_erasures(&self) -> usize {
        self.inner.unreferenced.lock().len()
    }

    /// Erases from the resource store the contents that purges and history deletions left
    /// unreferenced, as far as no older database value is alive; returns how many are still
    /// pending. The indexer and the lag monitor (once a second) call this on their own.
    pub async fn erase_unreferenced(&self) -> Result<usize> {
        erase_due(&self.inner).await?;
        Ok(self.pending_erasures())
    }

    /// Keeps `bytes` in the resource store under their hash, for state that every node serving
    /// the database must be able to read (the parameters of a search too long for its page
    /// links). No index row names them, so no purge erases them; equal bytes are kept once.
    pub async fn keep(&self, bytes: Bytes) -> Result<ContentHash> {
        let hash = ContentHash::of(&bytes);
        self.inner.storage.store.put(vec![(hash, bytes)]).await?;
        Ok(hash)
    }

    /// Like [`Node::keep`] for a bounded time: at `until_ms` (ms since the epoch) or soon
    /// after, this node deletes the bytes from the resource store ([`Node::sweep_kept`], run
    /// by the lag monitor once a second). The schedule is a row of this node's index
    /// (`Meta`), written before the bytes. Bytes kept by several nodes or several times must
    /// carry their expiry (so equal bytes share one `until_ms` and one deletion).
    pub async fn keep_until(&self, bytes: Bytes, until_ms: i64) -> Result<ContentHash> {
        let hash = ContentHash::of(&bytes);
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, kept_key(until_ms, &hash), Vec::new());
        self.inner.storage.kv.write(b, false)?;
        self.inner.storage.store.put(vec![(hash, bytes)]).await?;
        Ok(hash)
    }

    /// Deletes from the resource store what [`Node::keep_until`] kept on this node until
    /// `now_ms` or earlier; returns how many. A failed deletion keeps its row and is retried.
    pub async fn sweep_kept(&self, now_ms: i64) -> Result<usize> {
        sweep_kept(&self.inner, now_ms).await
    }

    /// The bytes [`Node::keep`] kept under `hash`; `None` when the store has none (they were
    /// never kept, their time ran out, or a crash lost them before the log's next sync made
    /// them durable).
    pub async fn kept(&self, hash: &ContentHash) -> Result<Option<Bytes>> {
        if let Some(b) = self.inner.storage.cache.get(hash) {
            return Ok(Some(b));
        }
        match self.inner.storage.store.get(hash).await? {
            Some(b) if b.is_empty() => Ok(None),
            Some(b) => {
                self.inner.storage.cache.insert(*hash, b.clone());
                Ok(Some(b))
            }
            None => Ok(None),
        }
    }

    /// Number of transactions submitted by this node and not yet indexed.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for TxOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TxOutcome(t = {})", self.t)
    }
}

/// Removes the pre-computed search values of one write that the indexer did not take.
/// Re-indexes the versions `page` of type `ty` (current in `db`): for each, the entries its
/// old value blob names are deleted and those `indexer` computes now are written, with a new
/// value blob, in one batch; `only` limits the entries (old and new) to those parameter
/// hashes. A content the hook refuses keeps its entries, with a warning (as the indexer).
async fn reindex_page(
    db: &Db,
    indexer: &Arc<dyn ResourceIndexer>,
    ty: &str,
    page: &[crate::db::ResourceHandle],
    only: Option<&[u32]>,
) -> Result<u64> {
    let keep = |param: u32| only.is_none_or(|ps| ps.contains(&param));
    let contents = db.pull_many(page).await?;
    let olds = db.index_values_many(page)?;
    let (extract, type_name) = (indexer.clone(), ty.to_string());
    let computed = tokio::task::spawn_blocking(move || {
        contents
            .iter()
            .map(|c| extract.index(&type_name, c))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| DbError::fault(format!("search value extraction failed: {e}")))?;
    let tid = codec::tid(ty);
    let mut b = WriteBatch::default();
    for ((h, indexed), old) in page.iter().zip(computed).zip(olds) {
        let indexed = match indexed {
            Ok(indexed) => indexed,
            Err(e) => {
                tracing::warn!(type_name = %ty, id = %h.id, error = %e, "re-indexing failed");
                continue;
            }
        };
        if let Some(old) = old {
            for (param, value) in indexer.entries_of_values(&old) {
                if keep(param) {
                    b.delete(
                        Cf::SearchParamValue,
                        codec::search_key(param, tid, &value, &h.id, &h.hash),
                    );
                }
            }
            for e in indexer.compartment_entries_of_values(ty, &old) {
                if keep(e.param) {
                    b.delete(
                        Cf::CompartmentSearchParamValue,
                        codec::compartment_search_key(
                            (e.compartment_tid, &e.compartment_id),
                            e.param,
                            tid,
                            &e.value,
                            &h.id,
                            &h.hash,
                        ),
                    );
                }
            }
        }
        for (param, value) in &indexed.entries {
            if keep(*param) {
                b.put(
                    Cf::SearchParamValue,
                    codec::search_key(*param, tid, value, &h.id, &h.hash),
                    Vec::new(),
                );
            }
        }
        for e in &indexed.compartment_entries {
            if keep(e.param) {
                b.put(
                    Cf::CompartmentSearchParamValue,
                    codec::compartment_search_key(
                        (e.compartment_tid, &e.compartment_id),
                        e.param,
                        tid,
                        &e.value,
                        &h.id,
                        &h.hash,
                    ),
                    codec::compartment_entry_value(
                        &codec::VersionValue {
                            hash: h.hash,
                            num_changes: h.num_changes,
                            op: h.op,
                        },
                        h.t,
                    ),
                );
            }
        }
        b.put(
            Cf::ResourceValue,
            codec::resource_value_key(tid, &h.id, &h.hash),
            indexed.values,
        );
    }
    db.storage.kv.write(b, false)?;
    Ok(page.len() as u64)
}

struct PreIndexed<'a> {
    inner: &'a Inner,
    hashes: Vec<ContentHash>,
}

impl Drop for PreIndexed<'_> {
    fn drop(&mut self) {
        let mut pre = self.inner.pre_indexed.lock();
        for h in &self.hashes {
            pre.remove(h);
        }
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The indexer loop: polls the log from the index head and indexes transactions in order. It
/// never gives up: storage faults are logged and retried with back-off. It stops when the node
/// is dropped.
async fn run_indexer(weak: std::sync::Weak<Inner>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let from = *inner.indexed.borrow() + 1;
        let log = inner.log.clone();
        let polled = tokio::select! {
            p = log.poll(from, 500, Duration::from_millis(200)) => p,
            _ = inner.stop.notified() => return,
        };
        drop(inner);
        drop(log);
        let Some(inner) = weak.upgrade() else { return };
        let result = match polled {
            Ok(entries) => index_entries(&inner, entries).await,
            Err(e) => Err(e),
        };
        drop(inner);
        match result {
            Ok(()) => {
                backoff = Duration::from_millis(50);
                if let Some(inner) = weak.upgrade() {
                    inner.status.lock().indexer_error = None;
                }
            }
            Err(e) => {
                if let Some(inner) = weak.upgrade() {
                    inner.status.lock().indexer_error =
                        Some((e.to_string(), std::time::Instant::now()));
                }
                metrics::counter!("flint_indexer_errors_total").increment(1);
                tracing::error!(error = %e, "indexer failed; retrying");
                tokio::time::sleep(backoff).await;
                // At most a second between attempts: a node resumes soon after a fault ends.
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Contents of the new versions of `entry`, by hash (for search indexing).
async fn fetch_contents(inner: &Inner, entry: &TxEntry) -> Result<HashMap<ContentHash, Bytes>> {
    let hashes: Vec<ContentHash> = entry
        .cmds
        .iter()
        .filter_map(|c| c.hash)
        .filter(|h| *h != ContentHash::DELETED)
        .collect();
    let mut out = HashMap::with_capacity(hashes.len());
    let mut missing = Vec::new();
    for h in hashes {
        match inner.storage.cache.get(&h) {
            Some(b) => {
                out.insert(h, b);
            }
            None => missing.push(h),
        }
    }
    if !missing.is_empty() {
        let fetched = inner.storage.store.multi_get(&missing).await?;
        for (h, b) in missing.into_iter().zip(fetched) {
            match b {
                // Erased by a later purge (an index rebuilt from the log): indexed without
                // search values, [`index_group`] knows it by the empty content.
                Some(b) => {
                    out.insert(h, b);
                }
                // The writer stored the content before it appended the transaction: a miss
                // means the store cannot serve it right now (a replica down). Retry rather than
                // index the version without its search entries.
                None => {
                    return Err(DbError::unavailable(format!(
                        "resource content {h:?} of t = {} not found in the resource store",
                        entry.t
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// Resource versions whose search values are extracted together (bounds the memory held).
const EXTRACT_GROUP: usize = 4096;

async fn index_entries(inner: &Inner, entries: Vec<TxEntry>) -> Result<()> {
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut versions = 0;
        while end < entries.len() && (end == start || versions < EXTRACT_GROUP) {
            versions += entries[end].cmds.len();
            end += 1;
        }
        index_group(inner, &entries[start..end]).await?;
        start = end;
    }
    Ok(())
}

async fn index_group(inner: &Inner, entries: &[TxEntry]) -> Result<()> {
    // Search values depend on the contents only: extract them for the whole group at once,
    // on every core, before the serial part (verification and index writes) runs.
    let indexed = match &inner.config.resource_indexer {
        Some(indexer) => {
            let head = *inner.indexed.borrow();
            let mut done = HashMap::new();
            let mut work: Vec<(ContentHash, String, Bytes)> = Vec::new();
            for entry in entries.iter().filter(|e| e.t > head) {
                // Versions written through this node were indexed from their parsed form.
                {
                    let mut pre = inner.pre_indexed.lock();
                    if !pre.is_empty() {
                        for c in &entry.cmds {
                            if let Some(h) = c.hash
                                && let Some(x) = pre.remove(&h)
                            {
                                done.insert(h, x);
                            }
                        }
                    }
                }
                let pending: Vec<(ContentHash, &str)> = entry
                    .cmds
                    .iter()
                    .filter_map(|c| Some((c.hash?, c.type_name.as_str())))
                    .filter(|(h, _)| *h != ContentHash::DELETED && !done.contains_key(h))
                    .collect();
                if pending.is_empty() {
                    continue;
                }
                let contents = fetch_contents(inner, entry).await?;
                for (h, ty) in pending {
                    match contents.get(&h) {
                        Some(b) if b.is_empty() => {
                            done.insert(
                                h,
                                Err(DbError::new(
                                    ErrorKind::NotFound,
                                    format!("content {h:?} was erased by a later purge"),
                                )),
                            );
                        }
                        Some(b) => work.push((h, ty.to_string(), b.clone())),
                        None => {}
                    }
                }
            }
            if !work.is_empty() {
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                // Small batches are not worth the threads.
                let threads = if work.len() < 16 { 1 } else { threads };
                // CPU-bound: off the async workers, on the blocking pool (which the scoped
                // threads of `index_contents` then share the cores with).
                let indexer = indexer.clone();
                let extracted = tokio::task::spawn_blocking(move || {
                    index::index_contents(&*indexer, &work, threads)
                })
                .await
                .map_err(|e| DbError::fault(format!("search-value extraction failed: {e}")))??;
                done.extend(extracted);
            }
            done
        }
        None => HashMap::new(),
    };
    for entry in entries {
        let head = *inner.indexed.borrow();
        if entry.t <= head {
            continue;
        }
        if entry.t != head + 1 {
            return Err(DbError::new(
                ErrorKind::Fault,
                format!(
                    "transaction log gap: expected t = {}, got {}",
                    head + 1,
                    entry.t
                ),
            ));
        }
        let before = Db::new(inner.storage.clone(), head);
        let search = inner
            .config
            .resource_indexer
            .as_ref()
            .map(|ix| index::SearchIndexing {
                indexed: &indexed,
                indexer: &**ix,
            });
        let outcome = index::index_tx(&*inner.storage.kv, &before, entry, search.as_ref())?;
        let removes = entry
            .cmds
            .iter()
            .any(|c| matches!(c.op, TxOp::Purge | TxOp::DeleteHistory));
        if removes && outcome.is_ok() {
            inner.storage.removed_t.fetch_max(entry.t, Ordering::AcqRel);
        }
        match outcome {
            Ok(unreferenced) if !unreferenced.is_empty() => {
                // Erased contents leave the cache at once (no new read finds their versions).
                for u in &unreferenced {
                    inner.storage.cache.remove(&u.hash);
                }
                inner
                    .unreferenced
                    .lock()
                    .extend(unreferenced.into_iter().map(|u| (entry.t, u)));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(t = entry.t, error = %e, "transaction rejected"),
        }
        drop(before);
        inner.indexed.send_replace(entry.t);
        let mut o = inner.status.lock();
        o.indexed_instant_ms = Some(entry.instant_ms);
        o.indexer_error = None;
        drop(o);
        metrics::gauge!("flint_index_t").set(entry.t as f64);
    }
    if !inner.unreferenced.lock().is_empty()
        && let Err(e) = erase_due(inner).await
    {
        // Retried on the next run; never a reason to stop indexing.
        tracing::warn!(error = %e, "erasing purged contents failed; retrying later");
    }
    Ok(())
}

/// Erases the unreferenced contents of purges and history deletions at `t` once no database
/// value older than `t` is alive on this node (such a value could still read them: a paged
/// search or an asynchronous job that began before the purge). Each content is checked again
/// against the newest database value first: a later write of the same resource with the same
/// content keeps it. A failed erasure stays pending and is retried.
async fn erase_due(inner: &Inner) -> Result<()> {
    let _running = inner.erasing.lock().await;
    let oldest = inner.storage.oldest_leased();
    let due: Vec<(T, index::Unreferenced)> = {
        let mut pending = inner.unreferenced.lock();
        let (due, wait) = pending
            .drain(..)
            .partition(|(t, _)| oldest.is_none_or(|o| o >= *t));
        *pending = wait;
        due
    };
    if due.is_empty() {
        return Ok(());
    }
    let result = erase(inner, &due).await;
    if result.is_err() {
        inner.unreferenced.lock().extend(due);
    }
    result
}

async fn erase(inner: &Inner, due: &[(T, index::Unreferenced)]) -> Result<()> {
    let db = Db::new(inner.storage.clone(), *inner.indexed.borrow());
    let mut hashes = Vec::with_capacity(due.len());
    for (_, u) in due {
        let in_use = db
            .instance_history(&u.type_name, &u.id, None, 0, usize::MAX)?
            .iter()
            .any(|h| h.hash == u.hash);
        if !in_use && !hashes.contains(&u.hash) {
            hashes.push(u.hash);
        }
    }
    drop(db);
    if !hashes.is_empty() {
        inner.storage.store.delete(&hashes).await?;
        for h in &hashes {
            inner.storage.cache.remove(h);
        }
        metrics::counter!("flint_erased_contents_total").increment(hashes.len() as u64);
    }
    Ok(())
}

/// Reads the log end, recording it (or the failure) for [`Node::status`] and the lag metrics.
async fn read_log_end(inner: &Inner) -> Result<T> {
    let started = std::time::Instant::now();
    let result = inner.log.last_t().await;
    let now = std::time::Instant::now();
    metrics::histogram!("flint_log_end_duration_seconds").record((now - started).as_secs_f64());
    let mut o = inner.status.lock();
    match &result {
        Ok(end) => {
            let end = *end;
            o.log_end = Some((end, now));
            o.log_error = None;
            let indexed = *inner.indexed.borrow();
            o.behind_since = match o.behind_since {
                _ if end <= indexed => None,
                // Still behind a transaction seen earlier: keep its time.
                Some((t, since)) if t > indexed => Some((t, since)),
                _ => Some((end, now)),
            };
            let lag = end.saturating_sub(indexed);
            metrics::gauge!("flint_log_end_t").set(end as f64);
            metrics::gauge!("flint_index_lag_transactions").set(lag as f64);
            let secs = o.behind_since.map_or(0.0, |(_, s)| (now - s).as_secs_f64());
            metrics::gauge!("flint_index_lag_seconds").set(secs);
        }
        Err(e) => o.log_error = Some((e.to_string(), now)),
    }
    result
}

/// The `Meta` row scheduling the deletion of kept bytes: the prefix, the expiry (big-endian,
/// so rows sort by it) and the hash.
const KEPT_PREFIX: &[u8] = b"kept-until/";

fn kept_key(until_ms: i64, hash: &ContentHash) -> Vec<u8> {
    let mut k = KEPT_PREFIX.to_vec();
    k.extend_from_slice(&(until_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&hash.0);
    k
}

/// [`Node::sweep_kept`]: the rows due (they sort by expiry, so the scan stops at the first
/// later one), then the contents, then the rows.
async fn sweep_kept(inner: &Inner, now_ms: i64) -> Result<usize> {
    let kv = inner.storage.kv.clone();
    let mut due: Vec<(Vec<u8>, ContentHash)> = Vec::new();
    crate::kv::try_scan_prefix(&*kv, Cf::Meta, KEPT_PREFIX, KEPT_PREFIX, |k, _| {
        let rest = &k[KEPT_PREFIX.len()..];
        let (Some(until), Some(hash)) = (rest.get(..8), rest.get(8..40)) else {
            return Err(DbError::fault("malformed kept-until row"));
        };
        let until = u64::from_be_bytes(until.try_into().unwrap_or_default());
        if until > now_ms.max(0) as u64 {
            return Ok(false);
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(hash);
        due.push((k.to_vec(), ContentHash(h)));
        Ok(true)
    })?;
    if due.is_empty() {
        return Ok(0);
    }
    let hashes: Vec<ContentHash> = due.iter().map(|(_, h)| *h).collect();
    inner.storage.store.delete(&hashes).await?;
    for h in &hashes {
        inner.storage.cache.remove(h);
    }
    let mut b = WriteBatch::default();
    for (k, _) in &due {
        b.delete(Cf::Meta, k.clone());
    }
    kv.write(b, false)?;
    Ok(due.len())
}

/// Reads the log end once a second so that the lag is known even when no request comes in.
async fn run_lag_monitor(weak: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.closing.load(Ordering::Acquire) {
            return;
        }
        let _ = read_log_end(&inner).await;
        if let Err(e) = sweep_kept(&inner, crate::mem::now_ms()).await {
            tracing::warn!(error = %e, "deleting expired kept search parameters failed; retrying later");
        }
        if !inner.unreferenced.lock().is_empty()
            && let Err(e) = erase_due(&inner).await
        {
            tracing::warn!(error = %e, "erasing purged contents failed; retrying later");
        }
    }
}
