//! A database value: the index read as of a fixed logical time `t`. Cheap to clone; every read
//! of one request (and every page of one paged result) uses the same value.

use crate::codec::{self, VersionOp, VersionValue};
use crate::error::{DbError, ErrorKind, Result};
use crate::kv::{Cf, KvStore, scan_prefix, try_scan_prefix};
use crate::store::ResourceStore;
use crate::{ContentHash, T};
use bytes::Bytes;
use std::sync::Arc;

/// Storage shared by all database values of a node.
pub(crate) struct Storage {
    pub kv: Arc<dyn KvStore>,
    pub store: Arc<dyn ResourceStore>,
    pub cache: crate::cache::Cache<ContentHash, Bytes>,
    pub instants: crate::cache::Cache<T, i64>,
    /// How many database values of each `t` are alive (see [`Lease`]): erasing the contents
    /// a purge at `t` removed waits until no value older than `t` is.
    pub leases: parking_lot::Mutex<std::collections::BTreeMap<T, usize>>,
    /// The newest `t` of a purge or history deletion this node applied since it started.
    pub removed_t: std::sync::atomic::AtomicU64,
}

impl Storage {
    /// The oldest `t` of a database value alive on this node, if any.
    pub fn oldest_leased(&self) -> Option<T> {
        self.leases.lock().keys().next().copied()
    }
}

/// Registers one database value as alive for as long as it (or a clone) is.
struct Lease {
    storage: Arc<Storage>,
    t: T,
}

impl Lease {
    fn new(storage: Arc<Storage>, t: T) -> Arc<Lease> {
        *storage.leases.lock().entry(t).or_default() += 1;
        Arc::new(Lease { storage, t })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut leases = self.storage.leases.lock();
        if let Some(n) = leases.get_mut(&self.t) {
            *n -= 1;
            if *n == 0 {
                leases.remove(&self.t);
            }
        }
    }
}

/// One version of one resource, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceHandle {
    /// Resource type.
    pub type_name: String,
    /// Resource id.
    pub id: String,
    /// The transaction that wrote this version (`meta.versionId`).
    pub t: T,
    /// Content hash (all zero for deletions).
    pub hash: ContentHash,
    /// Number of versions up to and including this one.
    pub num_changes: u64,
    /// What this version did.
    pub op: VersionOp,
}

impl ResourceHandle {
    /// Whether this version is a deletion.
    pub fn is_deleted(&self) -> bool {
        self.op == VersionOp::Delete
    }

    fn from_value(type_name: &str, id: &str, t: T, v: VersionValue) -> Self {
        ResourceHandle {
            type_name: type_name.to_string(),
            id: id.to_string(),
            t,
            hash: v.hash,
            num_changes: v.num_changes,
            op: v.op,
        }
    }
}

/// A history entry: a handle and the instant of its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The version.
    pub handle: ResourceHandle,
    /// Its transaction's instant (ms since the epoch).
    pub instant_ms: i64,
}

/// A database value as of `t`.
#[derive(Clone)]
pub struct Db {
    pub(crate) storage: Arc<Storage>,
    t: T,
    _lease: Arc<Lease>,
}

/// A ResourceAsOf cursor kept across look-ups (see [`Db::as_of_cursor`]).
pub(crate) struct AsOfCursor<'a> {
    cursor: Box<dyn crate::kv::KvCursor + 'a>,
    key: Vec<u8>,
    /// Look-ups left that seek without trying forward steps first.
    skip_steps: u32,
}

impl Db {
    pub(crate) fn new(storage: Arc<Storage>, t: T) -> Self {
        let lease = Lease::new(storage.clone(), t);
        Db {
            storage,
            t,
            _lease: lease,
        }
    }

    /// The logical time of this value.
    pub fn t(&self) -> T {
        self.t
    }

    /// The same database as of an earlier `t` (clamped to this value's `t`).
    pub fn as_of(&self, t: T) -> Db {
        Db::new(self.storage.clone(), t.min(self.t))
    }

    fn kv(&self) -> &dyn KvStore {
        &*self.storage.kv
    }

    /// The newest version of `type/id` at or before `t` (possibly a deletion).
    pub fn resource(&self, type_name: &str, id: &str) -> Result<Option<ResourceHandle>> {
        self.version_at_or_before(type_name, id, self.t)
    }

    /// The version of `type/id` written exactly at `vt`, if it is visible at this `t`.
    pub fn version(&self, type_name: &str, id: &str, vt: T) -> Result<Option<ResourceHandle>> {
        if vt > self.t {
            return Ok(None);
        }
        Ok(self
            .version_at_or_before(type_name, id, vt)?
            .filter(|h| h.t == vt))
    }

    /// A cursor for many [`Db::resource_at`] look-ups in a row (a scan's hits): it is
    /// created once and, when look-ups go in key order, steps forward instead of seeking.
    pub(crate) fn as_of_cursor(&self) -> AsOfCursor<'_> {
        AsOfCursor {
            cursor: self.kv().cursor(Cf::ResourceAsOf),
            key: Vec::with_capacity(64),
            skip_steps: 0,
        }
    }

    /// [`Db::resource`] through a reused cursor; `tid` is [`codec::tid`] of `type_name`.
    pub(crate) fn resource_at(
        &self,
        cur: &mut AsOfCursor<'_>,
        type_name: &str,
        tid: u32,
        id: &str,
    ) -> Result<Option<ResourceHandle>> {
        let AsOfCursor {
            cursor: c,
            key,
            skip_steps,
        } = cur;
        key.clear();
        key.extend_from_slice(&tid.to_be_bytes());
        key.extend_from_slice(id.as_bytes());
        key.push(0);
        let prefix_len = key.len();
        key.extend_from_slice(&codec::desc_t(self.t));
        // Forward steps are much cheaper than a seek when the target is close ahead (dense
        // hits); when stepping did not reach it, seek directly for a while (sparse hits).
        let mut positioned = false;
        if *skip_steps > 0 {
            *skip_steps -= 1;
        } else if c.valid() && c.key() < key.as_slice() {
            for _ in 0..4 {
                c.next();
                if !c.on_entry()? || c.key() >= key.as_slice() {
                    positioned = true;
                    break;
                }
            }
            if !positioned {
                *skip_steps = 32;
            }
        }
        if !positioned {
            c.seek(key);
        }
        if c.on_entry()? && c.key().starts_with(&key[..prefix_len]) {
            let vt = codec::read_desc_t(&c.key()[prefix_len..]);
            let v = decode_version(c.value())?;
            return Ok(Some(ResourceHandle::from_value(type_name, id, vt, v)));
        }
        Ok(None)
    }

    fn version_at_or_before(
        &self,
        type_name: &str,
        id: &str,
        t: T,
    ) -> Result<Option<ResourceHandle>> {
        let tid = codec::tid(type_name);
        let prefix = codec::resource_prefix(tid, id);
        let mut c = self.kv().prefix_cursor(Cf::ResourceAsOf);
        c.seek(&codec::resource_as_of_key(tid, id, t));
        if c.on_entry()? && c.key().starts_with(&prefix) {
            let vt = codec::read_desc_t(&c.key()[prefix.len()..]);
            let v = decode_version(c.value())?;
            return Ok(Some(ResourceHandle::from_value(type_name, id, vt, v)));
        }
        Ok(None)
    }

    /// Scans an as-of index from `start` within `prefix`, newest first, collecting versions
    /// not older than `since_t`, at most `limit`. `key` splits a key into `(type, id, t)`.
    fn scan_versions<'k>(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        since_t: T,
        limit: usize,
        key: impl Fn(&[u8]) -> Option<(&'k str, String, T)>,
    ) -> Result<Vec<ResourceHandle>> {
        let mut out = Vec::new();
        try_scan_prefix(self.kv(), cf, prefix, start, |k, v| {
            let Some((ty, id, t)) = key(k) else {
                return Ok(true);
            };
            if t < since_t || out.len() >= limit {
                return Ok(false);
            }
            out.push(ResourceHandle::from_value(ty, &id, t, decode_version(v)?));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Versions of one resource, newest first, starting at `start_t` (inclusive), not older
    /// than `since_t`, at most `limit`.
    pub fn instance_history(
        &self,
        type_name: &str,
        id: &str,
        start_t: Option<T>,
        since_t: T,
        limit: usize,
    ) -> Result<Vec<ResourceHandle>> {
        let tid = codec::tid(type_name);
        let prefix = codec::resource_prefix(tid, id);
        let start = codec::resource_as_of_key(tid, id, start_t.unwrap_or(self.t).min(self.t));
        let n = prefix.len();
        self.scan_versions(Cf::ResourceAsOf, &prefix, &start, since_t, limit, |k| {
            Some((type_name, id.to_string(), codec::read_desc_t(k.get(n..)?)))
        })
    }

    /// Versions of all resources of a type, newest first, starting at `(start_t, start_id)`.
    pub fn type_history(
        &self,
        type_name: &str,
        start: Option<(T, &str)>,
        since_t: T,
        limit: usize,
    ) -> Result<Vec<ResourceHandle>> {
        let tid = codec::tid(type_name);
        let (st, sid) = start.unwrap_or((self.t, ""));
        let start_key = codec::type_as_of_key(tid, st.min(self.t), sid);
        self.scan_versions(
            Cf::TypeAsOf,
            &tid.to_be_bytes(),
            &start_key,
            since_t,
            limit,
            |k| {
                let (_, t, id) = codec::decode_type_as_of_key(k)?;
                Some((type_name, id.to_string(), t))
            },
        )
    }

    /// Versions of all resources, newest first, starting at `(start_t, start_type, start_id)`.
    pub fn system_history(
        &self,
        start: Option<(T, &str, &str)>,
        since_t: T,
        limit: usize,
    ) -> Result<Vec<ResourceHandle>> {
        let (st, sty, sid) = start.unwrap_or((self.t, "", ""));
        let start_key = if sty.is_empty() {
            codec::desc_t(st.min(self.t)).to_vec()
        } else {
            codec::system_as_of_key(st.min(self.t), codec::tid(sty), sid)
        };
        self.scan_versions(Cf::SystemAsOf, &[], &start_key, since_t, limit, |k| {
            let (t, tid, id) = codec::decode_system_as_of_key(k)?;
            Some((type_name_of(tid)?, id.to_string(), t))
        })
    }

    /// The current versions of `ids` of a type (which are in ascending order; ids without a
    /// current version are left out).
    pub fn resources<'a>(
        &self,
        type_name: &str,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<ResourceHandle>> {
        let tid = codec::tid(type_name);
        let mut cur = self.as_of_cursor();
        let mut out = Vec::new();
        for id in ids {
            if let Some(h) = self.resource_at(&mut cur, type_name, tid, id)?
                && !h.is_deleted()
            {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// The ids of the current (non-deleted) resources of a type.
    pub fn type_ids(&self, type_name: &str) -> Result<crate::ids::IdList> {
        let mut out = crate::ids::IdListBuilder::default();
        self.scan_current(type_name, None, |id, _, _| {
            out.push(id);
            true
        })?;
        Ok(out.finish())
    }

    /// Current (non-deleted) resources of a type in id order, starting at `start_id`.
    pub fn type_list(
        &self,
        type_name: &str,
        start_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ResourceHandle>> {
        let mut out = Vec::new();
        self.scan_current(type_name, start_id, |id, t, v| {
            if out.len() >= limit {
                return false;
            }
            out.push(ResourceHandle::from_value(type_name, id, t, v));
            true
        })?;
        Ok(out)
    }

    /// Calls `f(id, t, version)` for the current (non-deleted) version at this `t` of every
    /// resource of a type in id order, starting at `start_id`, until it returns `false`.
    fn scan_current(
        &self,
        type_name: &str,
        start_id: Option<&str>,
        mut f: impl FnMut(&str, T, VersionValue) -> bool,
    ) -> Result<()> {
        let tid = codec::tid(type_name);
        let prefix = tid.to_be_bytes();
        let start = match start_id {
            Some(id) => codec::resource_prefix(tid, id),
            None => prefix.to_vec(),
        };
        let mut seen = false;
        let mut last_id: Vec<u8> = Vec::with_capacity(64);
        try_scan_prefix(self.kv(), Cf::ResourceAsOf, &prefix, &start, |k, v| {
            let Some((_, id, t)) = codec::decode_resource_as_of_key(k) else {
                return Ok(true);
            };
            // Versions of one id are contiguous, newest first: take the first one <= self.t.
            if (seen && last_id == id.as_bytes()) || t > self.t {
                return Ok(true);
            }
            seen = true;
            last_id.clear();
            last_id.extend_from_slice(id.as_bytes());
            let v = decode_version(v)?;
            Ok(v.op == VersionOp::Delete || f(id, t, v))
        })
    }

    /// Every resource `(type, id)` that a version, current or not, ever referenced `type/id`
    /// from (the ReferencedBy index, which keeps a row per referencing resource; rows of
    /// purged resources are gone), in key order.
    pub fn referencing_sources(&self, type_name: &str, id: &str) -> Result<Vec<(String, String)>> {
        let prefix = codec::resource_prefix(codec::tid(type_name), id);
        let mut out = Vec::new();
        scan_prefix(self.kv(), Cf::ReferencedBy, &prefix, &prefix, |k, _| {
            let rest = &k[prefix.len()..];
            if let (Some(ty), Ok(src)) = (
                type_name_of(codec::read_u32(rest)),
                std::str::from_utf8(rest.get(4..).unwrap_or(&[])),
            ) {
                out.push((ty.to_string(), src.to_string()));
            }
            true
        })?;
        Ok(out)
    }

    fn stats(&self, cf: Cf, prefix: &[u8]) -> Result<(u64, u64)> {
        let mut key = prefix.to_vec();
        key.extend_from_slice(&codec::desc_t(self.t));
        let mut out = (0, 0);
        scan_prefix(self.kv(), cf, prefix, &key, |_, v| {
            out = codec::decode_stats(v);
            false
        })?;
        Ok(out)
    }

    /// Number of current resources of a type.
    pub fn type_total(&self, type_name: &str) -> Result<u64> {
        Ok(self
            .stats(Cf::TypeStats, &codec::tid(type_name).to_be_bytes())?
            .0)
    }

    /// Number of versions of all resources of a type.
    pub fn type_changes(&self, type_name: &str) -> Result<u64> {
        Ok(self
            .stats(Cf::TypeStats, &codec::tid(type_name).to_be_bytes())?
            .1)
    }

    /// Number of current resources of all types.
    pub fn system_total(&self) -> Result<u64> {
        Ok(self.stats(Cf::SystemStats, &[])?.0)
    }

    /// Number of versions of all resources.
    pub fn system_changes(&self) -> Result<u64> {
        Ok(self.stats(Cf::SystemStats, &[])?.1)
    }

    /// The commit instant (ms since the epoch) of the committed transaction `t`. A committed
    /// `t` always has one: its absence (or a failed read) is an error, never a made-up time.
    pub fn instant(&self, t: T) -> Result<i64> {
        if let Some(i) = self.storage.instants.get(&t) {
            return Ok(i);
        }
        let v = self
            .kv()
            .get(Cf::TxSuccess, &codec::desc_t(t))?
            .ok_or_else(|| {
                DbError::fault(format!("no commit instant stored for transaction t = {t}"))
            })?;
        let i = codec::read_u64(&v) as i64;
        self.storage.instants.insert(t, i);
        Ok(i)
    }

    /// The smallest `t` committed at or after `instant_ms` (`self.t + 1` if none).
    pub fn t_since(&self, instant_ms: i64) -> Result<T> {
        let mut out = self.t + 1;
        scan_prefix(
            self.kv(),
            Cf::TByInstant,
            &[],
            &(instant_ms.max(0) as u64).to_be_bytes(),
            |k, _| {
                out = codec::read_u64(k.get(8..).unwrap_or(&[]));
                false
            },
        )?;
        Ok(out)
    }

    /// The error of a rejected transaction `t`, `None` if it was committed. A failed read is
    /// the outer error: the caller must not take it for either outcome.
    pub fn tx_error(&self, t: T) -> Result<Option<DbError>> {
        let Some(v) = self.kv().get(Cf::TxError, &codec::desc_t(t))? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&v).unwrap_or_else(|_| {
            DbError::new(ErrorKind::Fault, "transaction failed")
        })))
    }

    /// The outcome of transaction `t`, which this value's node has indexed: `Ok(Ok(()))` when
    /// it committed, `Ok(Err(e))` with the error it was rejected with. Reads both markers, so
    /// a failed or empty read is the outer error and never a guessed outcome.
    pub fn tx_outcome(&self, t: T) -> Result<Result<(), DbError>> {
        if let Some(e) = self.tx_error(t)? {
            return Ok(Err(e));
        }
        match self.kv().get(Cf::TxSuccess, &codec::desc_t(t))? {
            Some(_) => Ok(Ok(())),
            None => Err(DbError::unavailable(format!(
                "the outcome of transaction t = {t} could not be read"
            ))),
        }
    }

    /// Whether this node applied a purge or a history deletion after this value's `t` (since
    /// it started): versions resolved at this `t` before then (a cached search result) may
    /// no longer be in the index, see [`Db::still_indexed`].
    pub fn removals_after(&self) -> bool {
        self.storage
            .removed_t
            .load(std::sync::atomic::Ordering::Acquire)
            > self.t
    }

    /// `handles` without the versions that are no longer in the index (removed by a purge or
    /// a history deletion after they were resolved), in order.
    pub fn still_indexed(&self, handles: &[ResourceHandle]) -> Result<Vec<ResourceHandle>> {
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            if self
                .version_at_or_before(&h.type_name, &h.id, h.t)?
                .is_some_and(|v| v.t == h.t && v.hash == h.hash)
            {
                out.push(h.clone());
            }
        }
        Ok(out)
    }

    /// The stored content (canonical JSON without versionId/lastUpdated) of a version.
    pub async fn pull(&self, handle: &ResourceHandle) -> Result<Bytes> {
        self.pull_hash(&handle.hash).await
    }

    /// The stored content of `hash`.
    pub async fn pull_hash(&self, hash: &ContentHash) -> Result<Bytes> {
        if let Some(b) = self.storage.cache.get(hash) {
            return Ok(b);
        }
        match self.storage.store.get(hash).await? {
            Some(b) if b.is_empty() => Err(erased(hash)),
            Some(b) => {
                self.storage.cache.insert(*hash, b.clone());
                Ok(b)
            }
            None => Err(DbError::fault(format!(
                "resource content {} missing from the resource store",
                hash.to_hex()
            ))),
        }
    }

    /// The stored contents of many versions, in order.
    pub async fn pull_many(&self, handles: &[ResourceHandle]) -> Result<Vec<Bytes>> {
        let mut out: Vec<Option<Bytes>> = handles
            .iter()
            .map(|h| self.storage.cache.get(&h.hash))
            .collect();
        let missing: Vec<ContentHash> = handles
            .iter()
            .zip(&out)
            .filter(|(_, b)| b.is_none())
            .map(|(h, _)| h.hash)
            .collect();
        if !missing.is_empty() {
            let mut fetched = self.storage.store.multi_get(&missing).await?.into_iter();
            for (slot, h) in out.iter_mut().zip(handles) {
                if slot.is_none() {
                    let b = fetched.next().flatten().ok_or_else(|| {
                        DbError::fault(format!(
                            "resource content {} missing from the resource store",
                            h.hash.to_hex()
                        ))
                    })?;
                    if b.is_empty() {
                        return Err(erased(&h.hash));
                    }
                    self.storage.cache.insert(h.hash, b.clone());
                    *slot = Some(b);
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// The error of reading a content that a purge or history deletion erased (only a version
/// still indexed when its content went can meet it: a write racing with the purge of the
/// same content, or an index rebuilt from the log before it reaches the purge).
fn erased(hash: &ContentHash) -> DbError {
    DbError::new(
        ErrorKind::NotFound,
        format!(
            "The content {} was erased by a purge or a history deletion.",
            hash.to_hex()
        ),
    )
}

/// Decodes a stored version value; a malformed one is a storage fault, not a missing version.
fn decode_version(bytes: &[u8]) -> Result<VersionValue> {
    VersionValue::decode(bytes)
        .ok_or_else(|| DbError::fault("malformed version value in the index"))
}

/// The resource type whose [`codec::tid`] is `tid`.
pub fn type_name_of(tid: u32) -> Option<&'static str> {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static MAP: OnceLock<HashMap<u32, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| {
        flint_model::defs::definitions()
            .resource_types()
            .iter()
            .map(|t| (codec::tid(t), t.as_str()))
            .collect()
    })
    .get(&tid)
    .copied()
}
