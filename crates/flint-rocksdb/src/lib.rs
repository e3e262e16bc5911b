//! RocksDB storage adapter for the `standalone` variant: the index store (one column family per
//! index), the transaction log and the resource store, each its own RocksDB database.
//!
//! Durability: the transaction log writes with `sync = true` (WAL fsync), so a write
//! acknowledged to a client survives `kill -9` and power loss; the index store does not sync,
//! since it can always be rebuilt from the other two. The log has a single storer thread that
//! commits every queued transaction in one synced batch (group commit). The resource store
//! syncs its own writes unless a log was opened over it ([`RocksLog::open_syncing`]): then its
//! puts only reach the operating system (enough for `kill -9`) and the storer syncs the
//! store's WAL once per group, before appending — a transaction's contents are written before
//! it is submitted, so they are durable before it is.

use async_trait::async_trait;
use bytes::Bytes;
use flint_storage::admin::{
    BlockCache, ColumnFamilyMetadata, ColumnFamilyState, ColumnFamilyStats, Compactions, DbStats,
    LevelMetadata, SstFile, StoreAdmin,
};
use flint_storage::error::{DbError, Result};
use flint_storage::kv::{Cf, KvCursor, KvStore, WriteBatch as FlintBatch};
use flint_storage::log::{TxCmd, TxEntry, TxLog, decode_cmds, encode_cmds};
use flint_storage::store::ResourceStore;
use flint_storage::{ContentHash, T};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, DBRawIterator,
    Options, ReadOptions, SliceTransform, WriteBatch, WriteOptions,
};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// A RocksDB error is a storage fault the client sees as 503 (retry later), never a result.
fn err(e: rocksdb::Error) -> DbError {
    DbError::unavailable(format!("RocksDB: {e}"))
}

/// Tuning shared by the three databases.
#[derive(Clone)]
pub struct RocksConfig {
    /// Shared LRU block cache.
    pub block_cache: Cache,
}

impl RocksConfig {
    /// A configuration with a block cache of `block_cache_bytes`.
    pub fn new(block_cache_bytes: usize) -> Self {
        RocksConfig {
            block_cache: Cache::new_lru_cache(block_cache_bytes),
        }
    }

    fn options(&self, layout: Layout) -> Options {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_bottommost_compression_type(layout.last_level_compression());
        o.set_level_compaction_dynamic_level_bytes(true);
        // Compact eight level-0 files at a time instead of four: index keys of new resources
        // spread over the whole key space, so each level-0 compaction rewrites most of the
        // level below; merging twice the files per pass halved compaction CPU on import.
        o.set_level_zero_file_num_compaction_trigger(L0_COMPACTION_TRIGGER);
        o.set_max_background_jobs(2);
        let mut t = BlockBasedOptions::default();
        t.set_block_cache(&self.block_cache);
        t.set_block_size(layout.block_size());
        t.set_cache_index_and_filter_blocks(true);
        t.set_bloom_filter(10.0, false);
        // Partitioned filters and indexes: a whole filter of a 64 MiB index file is several
        // MiB, more than one shard of the block cache (2 MiB of 128), so it was read from the
        // file and checksummed again on every look-up that consults it (fix 26 in
        // docs/performance.md). Partitions are metadata-block sized; only the small top
        // levels stay pinned.
        t.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        t.set_partition_filters(true);
        t.set_metadata_block_size(4096);
        t.set_pin_top_level_index_and_filter(true);
        o.set_block_based_table_factory(&t);
        o
    }
}

/// Level-0 files that start a compaction (RocksDB's default is 4).
const L0_COMPACTION_TRIGGER: i32 = 8;

/// How a database is read, which decides its block size and compression.
#[derive(Clone, Copy)]
enum Layout {
    /// Mostly range scans (index, log): 16 KiB blocks, Zstd on the last level.
    Scanned,
    /// Random point reads by content hash (resource store): every read decompresses a whole
    /// block for one resource, so 4 KiB LZ4 blocks. On 9.7 M resources: 3.4x the gets per
    /// second of 16 KiB Zstd blocks for 1.65x the disk (docs/performance.md).
    PointRead,
}

impl Layout {
    fn block_size(self) -> usize {
        match self {
            Layout::Scanned => 16 * 1024,
            Layout::PointRead => 4 * 1024,
        }
    }

    fn last_level_compression(self) -> DBCompressionType {
        match self {
            Layout::Scanned => DBCompressionType::Zstd,
            Layout::PointRead => DBCompressionType::Lz4,
        }
    }
}

/// The resource part `tid · id · 0x00` of a key `tid · id · 0x00 · t(8)`: prefix filters of
/// the ResourceAsOf index then tell, without reading a block, that a file holds no version of
/// a resource (every write checks the resource's current version, and most writes of an
/// import create new resources).
fn resource_prefix(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(8)]
}

/// Whether `key` is long enough to have a [`resource_prefix`] (type, at least one id byte,
/// separator, `t`).
fn has_resource_prefix(key: &[u8]) -> bool {
    key.len() >= 4 + 1 + 1 + 8
}

/// Bound of the index store's write-ahead log: beyond it, RocksDB flushes the column families
/// holding the oldest log file.
const INDEX_MAX_WAL_BYTES: u64 = 256 << 20;

fn open(
    path: &Path,
    config: &RocksConfig,
    layout: Layout,
    cfs: &[&str],
    prefixed: &[&str],
    max_wal: Option<u64>,
) -> Result<DB> {
    std::fs::create_dir_all(path)
        .map_err(|e| DbError::fault(format!("cannot create {}: {e}", path.display())))?;
    let mut opts = config.options(layout);
    if let Some(bytes) = max_wal {
        opts.set_max_total_wal_size(bytes);
    }
    let descs = cfs.iter().map(|n| {
        let mut o = config.options(layout);
        if prefixed.contains(n) {
            o.set_prefix_extractor(SliceTransform::create(
                "flint.resource-prefix",
                resource_prefix,
                Some(has_resource_prefix),
            ));
        }
        ColumnFamilyDescriptor::new(*n, o)
    });
    DB::open_cf_descriptors(&opts, path, descs).map_err(err)
}

/// The index store: a RocksDB database with one column family per [`Cf`].
///
/// Its write-ahead log is bounded (`max_total_wal_size`): with fourteen column families, a
/// log file is only deleted once every family has flushed what it holds, and the rarely
/// written ones kept gigabytes of log alive (3.8 GB of 4.8 GB after 961k resources).
pub struct RocksKv {
    db: DB,
}

impl RocksKv {
    /// Opens (or creates) the index store at `path`.
    pub fn open(path: &Path, config: &RocksConfig) -> Result<Self> {
        let names: Vec<&str> = Cf::ALL.iter().map(|c| c.name()).collect();
        Ok(RocksKv {
            db: open(
                path,
                config,
                Layout::Scanned,
                &names,
                &[Cf::ResourceAsOf.name()],
                Some(INDEX_MAX_WAL_BYTES),
            )?,
        })
    }

    fn cursor_with(&self, cf: Cf, o: ReadOptions) -> Box<dyn KvCursor + '_> {
        match self.cf(cf) {
            Ok(h) => Box::new(RocksCursor(Ok(self.db.raw_iterator_cf_opt(h, o)))),
            // A missing column family is a fault the cursor reports, not an empty index.
            Err(e) => Box::new(RocksCursor(Err(e))),
        }
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| DbError::fault(format!("column family {} missing", cf.name())))
    }
}

impl KvStore for RocksKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf)?, key).map_err(err)
    }

    fn write(&self, mut batch: FlintBatch, sync: bool) -> Result<()> {
        // Keys in order (stable, so repeated keys keep their order): each memtable insert then
        // starts its skip-list search from the previous one's position.
        batch
            .writes
            .sort_by(|a, b| (a.cf, &a.key).cmp(&(b.cf, &b.key)));
        let mut b = WriteBatch::default();
        for w in batch.writes {
            let cf = self.cf(w.cf)?;
            match w.value {
                Some(v) => b.put_cf(cf, w.key, v),
                None => b.delete_cf(cf, w.key),
            }
        }
        let mut o = WriteOptions::default();
        o.set_sync(sync);
        self.db.write_opt(b, &o).map_err(err)
    }

    fn multi_get(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.db
            .batched_multi_get_cf(self.cf(cf)?, keys, true)
            .into_iter()
            .map(|r| r.map(|o| o.map(|v| v.to_vec())).map_err(err))
            .collect()
    }

    fn flush(&self) -> Result<()> {
        let cfs = Cf::ALL
            .iter()
            .map(|c| self.cf(*c))
            .collect::<Result<Vec<_>>>()?;
        self.db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
            .map_err(err)
    }

    fn cursor(&self, cf: Cf) -> Box<dyn KvCursor + '_> {
        // Scans cross resource prefixes: ignore prefix filters.
        let mut o = ReadOptions::default();
        o.set_total_order_seek(true);
        self.cursor_with(cf, o)
    }

    fn prefix_cursor(&self, cf: Cf) -> Box<dyn KvCursor + '_> {
        let mut o = ReadOptions::default();
        o.set_prefix_same_as_start(true);
        self.cursor_with(cf, o)
    }
}

/// A RocksDB iterator, or the error that kept it from being opened.
struct RocksCursor<'a>(Result<DBRawIterator<'a>>);

impl KvCursor for RocksCursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        if let Ok(i) = &mut self.0 {
            i.seek(key);
        }
    }
    fn valid(&self) -> bool {
        self.0.as_ref().is_ok_and(|i| i.valid())
    }
    fn key(&self) -> &[u8] {
        self.0.as_ref().ok().and_then(|i| i.key()).unwrap_or(&[])
    }
    fn value(&self) -> &[u8] {
        self.0.as_ref().ok().and_then(|i| i.value()).unwrap_or(&[])
    }
    fn next(&mut self) {
        if let Ok(i) = &mut self.0 {
            i.next();
        }
    }
    fn status(&self) -> Result<()> {
        match &self.0 {
            Ok(i) => i.status().map_err(err),
            Err(e) => Err(e.clone()),
        }
    }
}

type Submission = (Vec<TxCmd>, oneshot::Sender<Result<T>>);

/// The transaction log in a RocksDB database: key `t` (8 bytes big-endian), value
/// `instant_ms(8) · encoded commands`. One storer thread assigns `t` and commits all queued
/// transactions in one synced write batch.
pub struct RocksLog {
    db: Arc<DB>,
    tx: Option<mpsc::Sender<Submission>>,
    storer: Option<std::thread::JoinHandle<()>>,
    last_t: Arc<watch::Sender<T>>,
}

impl Drop for RocksLog {
    fn drop(&mut self) {
        // Closing the channel ends the storer after it committed what is queued.
        self.tx.take();
        if let Some(h) = self.storer.take() {
            let _ = h.join();
        }
    }
}

impl RocksLog {
    /// Opens (or creates) the log at `path` and starts its storer thread.
    pub fn open(path: &Path, config: &RocksConfig) -> Result<Self> {
        Self::open_with(path, config, None)
    }

    /// Opens the log at `path` so that it makes `store`'s writes durable: before each group
    /// commit the storer syncs the store's WAL, and the store's puts stop syncing their own
    /// (one fsync per group of transactions instead of one per put).
    pub fn open_syncing(path: &Path, config: &RocksConfig, store: &RocksStore) -> Result<Self> {
        let log = Self::open_with(path, config, Some(store.db.clone()))?;
        store.db.sync_puts.store(false, Ordering::Release);
        Ok(log)
    }

    fn open_with(path: &Path, config: &RocksConfig, syncs: Option<Arc<StoreDb>>) -> Result<Self> {
        let db = Arc::new(open(
            path,
            config,
            Layout::Scanned,
            &["default"],
            &[],
            None,
        )?);
        let (last, last_instant) = {
            let mut it = db.raw_iterator();
            it.seek_to_last();
            match (it.key(), it.value()) {
                (Some(k), Some(v)) => (read_u64(k), read_u64(v) as i64),
                _ => (0, 0),
            }
        };
        let last_t = Arc::new(watch::channel(last).0);
        let (tx, rx) = mpsc::channel::<Submission>();
        let (sdb, slast) = (db.clone(), last_t.clone());
        let storer = std::thread::Builder::new()
            .name("flint-tx-log-storer".into())
            .spawn(move || store_loop(&sdb, syncs.as_deref(), &rx, &slast, last, last_instant))
            .map_err(|e| DbError::fault(format!("cannot start the log storer: {e}")))?;
        Ok(RocksLog {
            db,
            tx: Some(tx),
            storer: Some(storer),
            last_t,
        })
    }
}

fn read_u64(b: &[u8]) -> u64 {
    flint_storage::layout::read_u64(b)
}

fn store_loop(
    db: &DB,
    store: Option<&StoreDb>,
    rx: &mpsc::Receiver<Submission>,
    last_t: &watch::Sender<T>,
    mut t: T,
    mut instant: i64,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        instant = instant.max(flint_storage::now_ms());
        let mut batch = WriteBatch::default();
        for (i, (cmds, _)) in group.iter().enumerate() {
            let mut v = (instant as u64).to_be_bytes().to_vec();
            v.extend_from_slice(&encode_cmds(cmds));
            batch.put((t + 1 + i as u64).to_be_bytes(), v);
        }
        let mut o = WriteOptions::default();
        o.set_sync(true);
        let written = match store {
            Some(s) => s.sync_wal(),
            None => Ok(()),
        }
        .and_then(|()| db.write_opt(batch, &o));
        match written {
            Ok(()) => {
                // The log end moves before any submitter hears its `t`: a `last_t` read after
                // `submit` returned is never behind it (the TxLog contract).
                let first = t + 1;
                t += group.len() as T;
                last_t.send_replace(t);
                for (i, (_, reply)) in group.into_iter().enumerate() {
                    let _ = reply.send(Ok(first + i as T));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "transaction log write failed");
                for (_, reply) in group {
                    let _ = reply.send(Err(DbError::unavailable(format!(
                        "transaction log write failed: {e}"
                    ))));
                }
            }
        }
    }
}

#[async_trait]
impl TxLog for RocksLog {
    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(err)
    }

    async fn submit(&self, cmds: Vec<TxCmd>) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or_else(|| DbError::unavailable("the transaction log is closed"))?
            .send((cmds, reply))
            .map_err(|_| DbError::unavailable("the transaction log is closed"))?;
        rx.await
            .map_err(|_| DbError::unavailable("the transaction log is closed"))?
    }

    async fn poll(&self, from: T, max: usize, timeout: Duration) -> Result<Vec<TxEntry>> {
        flint_storage::wait_for_t(&self.last_t, from, timeout).await;
        let last = *self.last_t.borrow();
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator();
        it.seek(from.to_be_bytes());
        while it.valid() && out.len() < max {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let t = read_u64(k);
            if t > last {
                break;
            }
            out.push(TxEntry {
                t,
                instant_ms: read_u64(v) as i64,
                cmds: decode_cmds(v.get(8..).unwrap_or(&[]))?,
            });
            it.next();
        }
        it.status().map_err(err)?;
        Ok(out)
    }

    async fn last_t(&self) -> Result<T> {
        Ok(*self.last_t.borrow())
    }
}

/// The resource store in a RocksDB database: key content hash, value canonical JSON bytes.
pub struct RocksStore {
    db: Arc<StoreDb>,
}

/// The resource store's database and how its writes become durable.
struct StoreDb {
    db: DB,
    /// Whether puts sync the WAL themselves (false once a log syncs it, see
    /// [`RocksLog::open_syncing`]).
    sync_puts: AtomicBool,
    /// WAL syncs the log asked for (tests and diagnostics).
    wal_syncs: AtomicU64,
}

impl StoreDb {
    /// Makes every write so far durable (fsync of the WAL files).
    fn sync_wal(&self) -> std::result::Result<(), rocksdb::Error> {
        self.wal_syncs.fetch_add(1, Ordering::Relaxed);
        self.db.flush_wal(true)
    }
}

impl RocksStore {
    /// Opens (or creates) the resource store at `path`.
    pub fn open(path: &Path, config: &RocksConfig) -> Result<Self> {
        Ok(RocksStore {
            db: Arc::new(StoreDb {
                db: open(path, config, Layout::PointRead, &["default"], &[], None)?,
                sync_puts: AtomicBool::new(true),
                wal_syncs: AtomicU64::new(0),
            }),
        })
    }

    /// How many times a log synced this store's WAL before appending.
    pub fn wal_syncs(&self) -> u64 {
        self.db.wal_syncs.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl ResourceStore for RocksStore {
    fn flush(&self) -> Result<()> {
        self.db.db.flush().map_err(err)
    }

    async fn get(&self, hash: &ContentHash) -> Result<Option<Bytes>> {
        Ok(self.db.db.get(hash.0).map_err(err)?.map(Bytes::from))
    }

    async fn multi_get(&self, hashes: &[ContentHash]) -> Result<Vec<Option<Bytes>>> {
        self.db
            .db
            .multi_get(hashes.iter().map(|h| h.0))
            .into_iter()
            .map(|r| r.map(|o| o.map(Bytes::from)).map_err(err))
            .collect()
    }

    async fn put(&self, entries: Vec<(ContentHash, Bytes)>) -> Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut b = WriteBatch::default();
            for (h, v) in entries {
                b.put(h.0, v);
            }
            let mut o = WriteOptions::default();
            o.set_sync(db.sync_puts.load(Ordering::Acquire));
            db.db.write_opt(b, &o).map_err(err)
        })
        .await
        .map_err(|e| DbError::fault(format!("resource store write task failed: {e}")))?
    }

    /// Overwrites each content with the empty erased value (synced like a put); the old
    /// bytes leave the files at their next compaction.
    async fn delete(&self, hashes: &[ContentHash]) -> Result<()> {
        let db = self.db.clone();
        let hashes = hashes.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut b = WriteBatch::default();
            for h in hashes {
                b.put(h.0, []);
            }
            let mut o = WriteOptions::default();
            o.set_sync(true);
            db.db.write_opt(b, &o).map_err(err)
        })
        .await
        .map_err(|e| DbError::fault(format!("resource store delete task failed: {e}")))?
    }
}

/// An integer property of column family `cf` (0 when RocksDB does not report it).
fn cf_property(db: &DB, cf: &rocksdb::ColumnFamily, name: &str) -> Result<u64> {
    Ok(db
        .property_int_value_cf(cf, name)
        .map_err(err)?
        .unwrap_or(0))
}

/// The handles of the column families `names` of `db` (a missing one is a fault).
fn handles<'a>(db: &'a DB, names: &[&str]) -> Result<Vec<(String, &'a rocksdb::ColumnFamily)>> {
    names
        .iter()
        .map(|n| {
            db.cf_handle(n)
                .map(|h| (n.to_string(), h))
                .ok_or_else(|| DbError::fault(format!("column family {n} missing")))
        })
        .collect()
}

/// [`StoreAdmin::stats`] of `db` with column families `names`: live data, pending and running
/// compactions summed over them, the block cache as RocksDB reports it and the free space of
/// the file system holding the database.
fn rocks_stats(db: &DB, names: &[&str]) -> Result<DbStats> {
    let cfs = handles(db, names)?;
    let (mut live, mut pending, mut pending_bytes) = (0u64, 0u64, 0u64);
    for (_, h) in &cfs {
        live += cf_property(db, h, "rocksdb.estimate-live-data-size")?;
        pending += cf_property(db, h, "rocksdb.compaction-pending")?;
        pending_bytes += cf_property(db, h, "rocksdb.estimate-pending-compaction-bytes")?;
    }
    let int = |name: &str| db.property_int_value(name).map_err(err);
    let block_cache = match (
        int("rocksdb.block-cache-capacity")?,
        int("rocksdb.block-cache-usage")?,
    ) {
        (Some(capacity), Some(usage)) => Some(BlockCache { capacity, usage }),
        _ => None,
    };
    Ok(DbStats {
        estimate_live_data_size: Some(live),
        usable_space: flint_storage::admin::usable_space(db.path()),
        block_cache,
        compactions: Some(Compactions {
            pending,
            pending_bytes,
            running: int("rocksdb.num-running-compactions")?.unwrap_or(0),
        }),
    })
}

/// [`StoreAdmin::column_families`] of `db` with column families `names`.
fn rocks_cf_stats(db: &DB, names: &[&str]) -> Result<Vec<ColumnFamilyStats>> {
    handles(db, names)?
        .into_iter()
        .map(|(name, h)| {
            Ok(ColumnFamilyStats {
                estimate_num_keys: cf_property(db, h, "rocksdb.estimate-num-keys")?,
                estimate_live_data_size: cf_property(db, h, "rocksdb.estimate-live-data-size")?,
                live_sst_files_size: cf_property(db, h, "rocksdb.live-sst-files-size")?,
                size_all_mem_tables: cf_property(db, h, "rocksdb.cur-size-all-mem-tables")?,
                name,
            })
        })
        .collect()
}

/// [`StoreAdmin::compact`] of `db` with column families `names`: the whole key range of the
/// column family, down to the last level.
fn rocks_compact(db: &DB, names: &[&str], cf: &str) -> Result<bool> {
    if !names.contains(&cf) {
        return Ok(false);
    }
    let h = db
        .cf_handle(cf)
        .ok_or_else(|| DbError::fault(format!("column family {cf} missing")))?;
    db.compact_range_cf(h, None::<&[u8]>, None::<&[u8]>);
    Ok(true)
}

/// The live SST files of column family `cf` of `db` (one of `names`), by level and name;
/// `None` for another column family.
fn rocks_tables(db: &DB, names: &[&str], cf: &str) -> Result<Option<Vec<SstFile>>> {
    if !names.contains(&cf) {
        return Ok(None);
    }
    let mut files: Vec<SstFile> = db
        .live_files()
        .map_err(err)?
        .into_iter()
        .filter(|f| f.column_family_name == cf)
        .map(|f| SstFile {
            name: f.name,
            level: f.level.max(0) as u32,
            file_size: f.size as u64,
            num_entries: f.num_entries,
            num_deletions: f.num_deletions,
            smallest_key: flint_storage::admin::hex(f.start_key.as_deref().unwrap_or_default()),
            largest_key: flint_storage::admin::hex(f.end_key.as_deref().unwrap_or_default()),
        })
        .collect();
    files.sort_by(|a, b| (a.level, &a.name).cmp(&(b.level, &b.name)));
    Ok(Some(files))
}

/// The levels RocksDB keeps (its default `num_levels`, which Flint does not change).
const LEVELS: u32 = 7;

/// [`StoreAdmin::column_family_metadata`] from the live files of `cf`: every level (at least
/// [`LEVELS`]) with its files.
fn rocks_metadata(db: &DB, names: &[&str], cf: &str) -> Result<Option<ColumnFamilyMetadata>> {
    let Some(files) = rocks_tables(db, names, cf)? else {
        return Ok(None);
    };
    let n = files
        .iter()
        .map(|f| f.level + 1)
        .max()
        .unwrap_or(0)
        .max(LEVELS);
    let mut levels: Vec<LevelMetadata> = (0..n)
        .map(|level| LevelMetadata {
            level,
            ..LevelMetadata::default()
        })
        .collect();
    for f in &files {
        let l = &mut levels[f.level as usize];
        l.file_size += f.file_size;
        l.num_files += 1;
    }
    Ok(Some(ColumnFamilyMetadata {
        name: cf.to_string(),
        file_size: files.iter().map(|f| f.file_size).sum(),
        num_files: files.len() as u64,
        levels,
    }))
}

/// [`StoreAdmin::column_family_state`] of `cf` of `db` from RocksDB's properties.
fn rocks_state(db: &DB, names: &[&str], cf: &str) -> Result<Option<ColumnFamilyState>> {
    if !names.contains(&cf) {
        return Ok(None);
    }
    let (_, h) = handles(db, &[cf])?.remove(0);
    let p = |name: &str| cf_property(db, h, name);
    let int =
        |name: &str| -> Result<u64> { Ok(db.property_int_value(name).map_err(err)?.unwrap_or(0)) };
    Ok(Some(ColumnFamilyState {
        mem_table_flush_pending: p("rocksdb.mem-table-flush-pending")? > 0,
        num_immutable_mem_tables: p("rocksdb.num-immutable-mem-table")?,
        num_entries_active_mem_table: p("rocksdb.num-entries-active-mem-table")?,
        num_deletes_active_mem_table: p("rocksdb.num-deletes-active-mem-table")?,
        compaction_pending: p("rocksdb.compaction-pending")? > 0,
        estimate_pending_compaction_bytes: p("rocksdb.estimate-pending-compaction-bytes")?,
        write_stopped: int("rocksdb.is-write-stopped")? > 0,
        actual_delayed_write_rate: int("rocksdb.actual-delayed-write-rate")?,
    }))
}

/// The names of the index store's column families.
fn index_cf_names() -> Vec<&'static str> {
    Cf::ALL.iter().map(|c| c.name()).collect()
}

impl StoreAdmin for RocksKv {
    fn stats(&self) -> Result<DbStats> {
        rocks_stats(&self.db, &index_cf_names())
    }

    fn column_families(&self) -> Result<Vec<ColumnFamilyStats>> {
        rocks_cf_stats(&self.db, &index_cf_names())
    }

    fn compact(&self, column_family: &str) -> Result<bool> {
        rocks_compact(&self.db, &index_cf_names(), column_family)
    }

    fn column_family_metadata(&self, column_family: &str) -> Result<Option<ColumnFamilyMetadata>> {
        rocks_metadata(&self.db, &index_cf_names(), column_family)
    }

    fn tables(&self, column_family: &str) -> Result<Option<Vec<SstFile>>> {
        rocks_tables(&self.db, &index_cf_names(), column_family)
    }

    fn column_family_state(&self, column_family: &str) -> Result<Option<ColumnFamilyState>> {
        rocks_state(&self.db, &index_cf_names(), column_family)
    }
}

impl StoreAdmin for RocksLog {
    fn stats(&self) -> Result<DbStats> {
        rocks_stats(&self.db, &["default"])
    }

    fn column_families(&self) -> Result<Vec<ColumnFamilyStats>> {
        rocks_cf_stats(&self.db, &["default"])
    }

    fn compact(&self, column_family: &str) -> Result<bool> {
        rocks_compact(&self.db, &["default"], column_family)
    }

    fn column_family_metadata(&self, column_family: &str) -> Result<Option<ColumnFamilyMetadata>> {
        rocks_metadata(&self.db, &["default"], column_family)
    }

    fn tables(&self, column_family: &str) -> Result<Option<Vec<SstFile>>> {
        rocks_tables(&self.db, &["default"], column_family)
    }

    fn column_family_state(&self, column_family: &str) -> Result<Option<ColumnFamilyState>> {
        rocks_state(&self.db, &["default"], column_family)
    }
}

impl StoreAdmin for RocksStore {
    fn stats(&self) -> Result<DbStats> {
        rocks_stats(&self.db.db, &["default"])
    }

    fn column_families(&self) -> Result<Vec<ColumnFamilyStats>> {
        rocks_cf_stats(&self.db.db, &["default"])
    }

    fn compact(&self, column_family: &str) -> Result<bool> {
        rocks_compact(&self.db.db, &["default"], column_family)
    }

    fn column_family_metadata(&self, column_family: &str) -> Result<Option<ColumnFamilyMetadata>> {
        rocks_metadata(&self.db.db, &["default"], column_family)
    }

    fn tables(&self, column_family: &str) -> Result<Option<Vec<SstFile>>> {
        rocks_tables(&self.db.db, &["default"], column_family)
    }

    fn column_family_state(&self, column_family: &str) -> Result<Option<ColumnFamilyState>> {
        rocks_state(&self.db.db, &["default"], column_family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flint_storage::log::TxOp;

    #[tokio::test]
    async fn a_syncing_log_syncs_the_store_once_per_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RocksConfig::new(1 << 20);
        let h = ContentHash::of(b"abc");
        {
            let store = RocksStore::open(&dir.path().join("r"), &cfg).unwrap();
            let log =
                Arc::new(RocksLog::open_syncing(&dir.path().join("l"), &cfg, &store).unwrap());
            // Puts alone no longer sync; the append of a transaction does, first.
            store.put(vec![(h, Bytes::from("abc"))]).await.unwrap();
            assert_eq!(store.wal_syncs(), 0);
            assert_eq!(log.submit(vec![]).await.unwrap(), 1);
            assert_eq!(store.wal_syncs(), 1);
            // Concurrent submissions share syncs: never more than one per transaction.
            let handles: Vec<_> = (0..50)
                .map(|_| {
                    let log = log.clone();
                    tokio::spawn(async move { log.submit(vec![]).await.unwrap() })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
            assert!((2..=51).contains(&store.wal_syncs()));
        }
        // What the store acknowledged is there after reopening (its WAL is replayed).
        let store = RocksStore::open(&dir.path().join("r"), &cfg).unwrap();
        assert_eq!(store.get(&h).await.unwrap(), Some(Bytes::from("abc")));
    }

    #[tokio::test]
    async fn log_survives_reopen_and_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RocksConfig::new(1 << 20);
        {
            let log = RocksLog::open(dir.path(), &cfg).unwrap();
            let mut handles = Vec::new();
            let log = Arc::new(log);
            for i in 0..20 {
                let log = log.clone();
                handles.push(tokio::spawn(async move {
                    log.submit(vec![TxCmd::new(
                        TxOp::Delete,
                        "Patient",
                        &i.to_string(),
                        None,
                    )])
                    .await
                    .unwrap()
                }));
            }
            let mut ts: Vec<T> = Vec::new();
            for h in handles {
                ts.push(h.await.unwrap());
            }
            ts.sort();
            assert_eq!(ts, (1..=20).collect::<Vec<_>>());
        }
        let log = RocksLog::open(dir.path(), &cfg).unwrap();
        assert_eq!(log.last_t().await.unwrap(), 20);
        let entries = log.poll(5, 100, Duration::from_millis(1)).await.unwrap();
        assert_eq!(entries.len(), 16);
        assert!(entries.windows(2).all(|w| w[0].t + 1 == w[1].t));
        assert!(
            entries
                .windows(2)
                .all(|w| w[0].instant_ms <= w[1].instant_ms)
        );
        assert_eq!(log.submit(vec![]).await.unwrap(), 21);
    }

    #[tokio::test]
    async fn store_and_kv_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RocksConfig::new(1 << 20);
        let store = RocksStore::open(&dir.path().join("r"), &cfg).unwrap();
        let h = ContentHash::of(b"abc");
        store.put(vec![(h, Bytes::from("abc"))]).await.unwrap();
        assert_eq!(store.get(&h).await.unwrap(), Some(Bytes::from("abc")));
        let missing = ContentHash::of(b"nope");
        assert_eq!(
            store.multi_get(&[missing, h]).await.unwrap(),
            vec![None, Some(Bytes::from("abc"))]
        );

        let kv = RocksKv::open(&dir.path().join("i"), &cfg).unwrap();
        let mut b = FlintBatch::default();
        b.put(Cf::TypeAsOf, b"b".to_vec(), b"2".to_vec());
        b.put(Cf::TypeAsOf, b"a".to_vec(), b"1".to_vec());
        b.put(Cf::TypeStats, b"a".to_vec(), b"x".to_vec());
        kv.write(b, false).unwrap();
        let mut c = kv.cursor(Cf::TypeAsOf);
        c.seek(b"");
        let mut keys = vec![];
        while c.valid() {
            keys.push(c.key().to_vec());
            c.next();
        }
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(kv.get(Cf::TypeStats, b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(
            kv.multi_get(
                Cf::TypeAsOf,
                &[b"a".to_vec(), b"ab".to_vec(), b"b".to_vec()]
            )
            .unwrap(),
            vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())]
        );
    }

    #[test]
    fn resource_versions_are_found_through_prefix_filters_and_scans_cross_them() {
        use flint_storage::layout::{resource_as_of_key, resource_prefix as prefix_of};
        let dir = tempfile::tempdir().unwrap();
        let kv = RocksKv::open(dir.path(), &RocksConfig::new(1 << 20)).unwrap();
        // Ids that are prefixes of each other, in several files (one flush per round) and in
        // the memtable.
        let ids = ["a", "ab", "abc", "b"];
        for (round, t) in [(0, 3u64), (1, 7), (2, 9)] {
            let mut b = FlintBatch::default();
            for id in &ids[round..] {
                b.put(
                    Cf::ResourceAsOf,
                    resource_as_of_key(1, id, t),
                    t.to_be_bytes().to_vec(),
                );
            }
            kv.write(b, false).unwrap();
            if round < 2 {
                kv.flush().unwrap();
            }
        }
        // The newest version at or before t, as `Db::version_at_or_before` reads it.
        let at = |id: &str, t: u64| -> Option<u64> {
            let p = prefix_of(1, id);
            let mut c = kv.prefix_cursor(Cf::ResourceAsOf);
            c.seek(&resource_as_of_key(1, id, t));
            (c.valid() && c.key().starts_with(&p))
                .then(|| u64::from_be_bytes(c.value().try_into().unwrap()))
        };
        assert_eq!(at("a", 10), Some(3));
        assert_eq!(at("ab", 10), Some(7));
        assert_eq!(at("ab", 6), Some(3));
        assert_eq!(at("abc", 10), Some(9));
        assert_eq!(at("abc", 8), Some(7));
        assert_eq!(at("b", 2), None);
        assert_eq!(at("aa", 10), None);
        assert_eq!(at("abcd", 10), None);
        assert_eq!(at("a", 10), Some(3));
        // A plain cursor scans the whole type across resources and files.
        let mut c = kv.cursor(Cf::ResourceAsOf);
        c.seek(&1u32.to_be_bytes());
        let mut n = 0;
        while c.valid() && c.key().starts_with(&1u32.to_be_bytes()) {
            n += 1;
            c.next();
        }
        assert_eq!(n, 1 + 2 + 3 + 3);
    }

    #[test]
    fn flushed_index_store_reopens_without_a_log_to_replay() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RocksConfig::new(1 << 20);
        let wal_bytes = |dir: &Path| -> u64 {
            std::fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .map(|e| e.metadata().unwrap().len())
                .sum()
        };
        {
            let kv = RocksKv::open(dir.path(), &cfg).unwrap();
            let mut b = FlintBatch::default();
            for i in 0..1000u32 {
                b.put(Cf::ResourceAsOf, i.to_be_bytes().to_vec(), vec![7; 100]);
            }
            kv.write(b, true).unwrap();
            assert!(wal_bytes(dir.path()) > 100_000);
            kv.flush().unwrap();
        }
        let kv = RocksKv::open(dir.path(), &cfg).unwrap();
        assert_eq!(wal_bytes(dir.path()), 0);
        assert_eq!(
            kv.get(Cf::ResourceAsOf, &999u32.to_be_bytes()).unwrap(),
            Some(vec![7; 100])
        );

        // The resource store and the log too.
        let (sdir, ldir) = (dir.path().join("r"), dir.path().join("l"));
        let h = ContentHash::of(b"abc");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = RocksStore::open(&sdir, &cfg).unwrap();
            store.put(vec![(h, Bytes::from("abc"))]).await.unwrap();
            let log = RocksLog::open(&ldir, &cfg).unwrap();
            log.submit(vec![]).await.unwrap();
            assert!(wal_bytes(&sdir) > 0 && wal_bytes(&ldir) > 0);
            store.flush().unwrap();
            TxLog::flush(&log).unwrap();
        });
        let store = RocksStore::open(&sdir, &cfg).unwrap();
        let log = RocksLog::open(&ldir, &cfg).unwrap();
        assert_eq!((wal_bytes(&sdir), wal_bytes(&ldir)), (0, 0));
        rt.block_on(async {
            assert_eq!(store.get(&h).await.unwrap(), Some(Bytes::from("abc")));
            assert_eq!(log.last_t().await.unwrap(), 1);
        });
    }
}
