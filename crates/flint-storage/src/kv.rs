//! The key-value store the index lives in: ordered byte keys in a fixed set of column families,
//! atomic write batches and seekable cursors. RocksDB and an in-memory skip list implement it.

use crate::error::Result;

/// The column families of the index store (see `ARCHITECTURE.md` for the key layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Bookkeeping: index format version.
    Meta,
    /// `tid · id · 0x00 · desc(t)` → version value: a resource's versions, newest first.
    ResourceAsOf,
    /// `tid · desc(t) · id` → version value: a type's versions, newest first.
    TypeAsOf,
    /// `desc(t) · tid · id` → version value: all versions, newest first.
    SystemAsOf,
    /// `desc(t)` → `instant(8)`: committed transactions, newest first.
    TxSuccess,
    /// `t` → JSON error: rejected transactions.
    TxError,
    /// `instant_ms(8) · t(8)` → empty: transactions by time, for `_since`.
    TByInstant,
    /// `tid · desc(t)` → `total(8) · changes(8)`: per-type counts as of t.
    TypeStats,
    /// `desc(t)` → `total(8) · changes(8)`: system counts as of t.
    SystemStats,
    /// `target tid · target id · 0x00 · source tid · source id` → source hash: who references whom
    /// (referential integrity on delete).
    ReferencedBy,
    /// `param hash · tid · esc(value) · 0x00 0x00 · id · len(id) · hash prefix(4)` → empty:
    /// resources by search-parameter value, the main search index.
    SearchParamValue,
    /// `tid · id · 0x00 · hash prefix(4)` → value blob: all search-parameter values of each
    /// resource version (for filtering, sorting and includes).
    ResourceValue,
    /// `tid · id · 0x00 · hash prefix(4)` → `t(8)`: versions whose search entries stopped being
    /// current at `t` (superseded by other content, or deleted). A version current again later
    /// (same content restored) has its row removed. Lets counting skip the per-hit version
    /// look-up for resources not changed after the count's `t`.
    Superseded,
    /// `compartment tid · compartment id · 0x00 · param hash · tid · esc(value) · 0x00 0x00 ·
    /// id · len(id) · hash prefix(4)` → empty: the SearchParamValue entries of the code
    /// parameters again under each compartment the resource is in, so a code search inside
    /// one patient's compartment (a CQL retrieve) scans only that patient's hits.
    CompartmentSearchParamValue,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 14] = [
        Cf::Meta,
        Cf::ResourceAsOf,
        Cf::TypeAsOf,
        Cf::SystemAsOf,
        Cf::TxSuccess,
        Cf::TxError,
        Cf::TByInstant,
        Cf::TypeStats,
        Cf::SystemStats,
        Cf::ReferencedBy,
        Cf::SearchParamValue,
        Cf::ResourceValue,
        Cf::Superseded,
        Cf::CompartmentSearchParamValue,
    ];

    /// The column family's name in RocksDB.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "default",
            Cf::ResourceAsOf => "resource-as-of-index",
            Cf::TypeAsOf => "type-as-of-index",
            Cf::SystemAsOf => "system-as-of-index",
            Cf::TxSuccess => "tx-success-index",
            Cf::TxError => "tx-error-index",
            Cf::TByInstant => "t-by-instant-index",
            Cf::TypeStats => "type-stats-index",
            Cf::SystemStats => "system-stats-index",
            Cf::ReferencedBy => "referenced-by-index",
            Cf::SearchParamValue => "search-param-value-index",
            Cf::ResourceValue => "resource-value-index",
            Cf::Superseded => "superseded-index",
            Cf::CompartmentSearchParamValue => "compartment-search-param-value-index",
        }
    }

    /// Position in [`Cf::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One write of a batch: a put (`Some(value)`) or a delete (`None`).
#[derive(Debug, Clone)]
pub struct Write {
    /// Column family.
    pub cf: Cf,
    /// Key bytes.
    pub key: Vec<u8>,
    /// New value, or `None` to delete the key.
    pub value: Option<Vec<u8>>,
}

/// An atomic batch of writes.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    /// The writes, applied in order.
    pub writes: Vec<Write>,
}

impl WriteBatch {
    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push(Write {
            cf,
            key,
            value: Some(value),
        });
    }

    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.writes.push(Write {
            cf,
            key,
            value: None,
        });
    }
}

/// A cursor over one column family, in ascending key order.
///
/// A cursor that stops being [`valid`](KvCursor::valid) has either reached the end of its rows
/// or hit a storage fault: [`status`](KvCursor::status) tells which, and every loop over a cursor
/// must ask it (or use [`KvCursor::on_entry`]) so that an I/O error never reads as "no more
/// rows".
pub trait KvCursor {
    /// Positions at the first key `>= key`.
    fn seek(&mut self, key: &[u8]);
    /// Whether the cursor is on an entry.
    fn valid(&self) -> bool;
    /// Key of the current entry (empty if not valid).
    fn key(&self) -> &[u8];
    /// Value of the current entry (empty if not valid).
    fn value(&self) -> &[u8];
    /// Moves to the next entry.
    fn next(&mut self);
    /// `Ok` unless the cursor stopped because of a storage fault (or could not be opened).
    fn status(&self) -> Result<()>;
    /// Whether the cursor is on an entry; an error when it is not because of a storage fault.
    fn on_entry(&self) -> Result<bool> {
        if self.valid() {
            Ok(true)
        } else {
            self.status().map(|()| false)
        }
    }
}

/// An ordered key-value store with column families.
pub trait KvStore: Send + Sync {
    /// The value of `key` in `cf`.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Applies `batch` atomically; `sync` waits until it and every earlier batch are durable.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()>;
    /// The values of many keys of `cf` (given in ascending order), in order.
    fn multi_get(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(cf, k)).collect()
    }
    /// A new cursor over `cf` (unpositioned: call `seek` first).
    fn cursor(&self, cf: Cf) -> Box<dyn KvCursor + '_>;
    /// A cursor for a seek whose result is used only while keys share the seek key's
    /// resource prefix (ResourceAsOf: type and id); the store may skip files by prefix
    /// filters, and the cursor may end after the prefix.
    fn prefix_cursor(&self, cf: Cf) -> Box<dyn KvCursor + '_> {
        self.cursor(cf)
    }
    /// Moves what only memory and the write-ahead log hold into the store's files, so the
    /// next start replays no log (called on graceful shutdown).
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// Calls `f(key, value)` for every entry of `cf` whose key starts with `prefix`, beginning at
/// `start` (which must itself start with `prefix`), until `f` returns `false`. A storage fault
/// met on the way is the error (never a silently shorter scan).
pub fn scan_prefix(
    kv: &dyn KvStore,
    cf: Cf,
    prefix: &[u8],
    start: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    try_scan_prefix(kv, cf, prefix, start, |k, v| Ok(f(k, v)))
}

/// [`scan_prefix`] with a fallible callback: its error ends the scan and is returned.
pub fn try_scan_prefix(
    kv: &dyn KvStore,
    cf: Cf,
    prefix: &[u8],
    start: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
) -> Result<()> {
    let mut c = kv.cursor(cf);
    c.seek(start);
    while c.on_entry()? && c.key().starts_with(prefix) {
        if !f(c.key(), c.value())? {
            return Ok(());
        }
        c.next();
    }
    Ok(())
}
