//! The storage side of search: a hook that turns a resource version into search-index entries
//! at indexing time, and scans of the search index at a database value's `t`.
//!
//! What the values mean (normalised strings, token forms, date intervals, ...) is decided by
//! the hook's implementation (the search crate); this module stores opaque, order-preserving
//! value bytes under a parameter hash. A scan hit only counts if the hash prefix in the key
//! matches the resource's version current at `t`, which discards entries of older versions and
//! of rejected transactions without ever deleting them.

use crate::T;
use crate::codec::{self, VALUE_END};
use crate::db::{AsOfCursor, Db, ResourceHandle};
use crate::error::{DbError, ErrorKind, Result};
use crate::ids::{IdList, IdListBuilder};
use crate::kv::{Cf, KvCursor, scan_prefix, try_scan_prefix};
use std::collections::HashSet;

/// One search-index entry of a resource version: a parameter hash ([`codec::param_hash`] of
/// its code) and an encoded value.
pub type IndexEntry = (u32, Vec<u8>);

/// What the search hook computed for one resource version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexed {
    /// Entries of the SearchParamValue index.
    pub entries: Vec<IndexEntry>,
    /// An opaque blob of all index values of the version, kept in the ResourceValue index for
    /// filtering, sorting and includes without reading the resource.
    pub values: Vec<u8>,
    /// Entries of the CompartmentSearchParamValue index: some of `entries` again under each
    /// compartment the version is in.
    pub compartment_entries: Vec<CompartmentEntry>,
}

/// One CompartmentSearchParamValue entry of a resource version: an [`IndexEntry`] under a
/// compartment (its type's [`codec::tid`] and id, e.g. `Patient/p1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CompartmentEntry {
    /// The compartment's type id ([`codec::tid`] of e.g. `Patient`).
    pub compartment_tid: u32,
    /// The compartment's id (the patient's id).
    pub compartment_id: String,
    /// The parameter hash.
    pub param: u32,
    /// The encoded value.
    pub value: Vec<u8>,
}

/// Computes the search-index entries of resource versions while the indexer writes them.
pub trait ResourceIndexer: Send + Sync {
    /// The entries and value blob of a resource version given its canonical JSON content.
    fn index(&self, type_name: &str, content: &[u8]) -> Result<Indexed>;

    /// The same as [`ResourceIndexer::index`] for the parsed form of the content.
    fn index_json(&self, type_name: &str, resource: &serde_json::Value) -> Result<Indexed> {
        let bytes = serde_json::to_vec(resource).map_err(|e| DbError::fault(e.to_string()))?;
        self.index(type_name, &bytes)
    }

    /// The entries a value blob written by [`ResourceIndexer::index`] stands for, or more (so
    /// a re-index can remove them; deleting an absent entry is harmless); empty when unknown.
    fn entries_of_values(&self, _values: &[u8]) -> Vec<IndexEntry> {
        Vec::new()
    }

    /// The compartment entries of a version of `type_name` whose value blob is `values`, or
    /// more (as [`ResourceIndexer::entries_of_values`], for a re-index to remove them).
    fn compartment_entries_of_values(
        &self,
        _type_name: &str,
        _values: &[u8],
    ) -> Vec<CompartmentEntry> {
        Vec::new()
    }

    /// The ids of the resources of `type_name` current in `db` that the search `query` (a
    /// [`crate::TxCmd::condition`]) selects: how the indexer re-checks conditional writes in
    /// log order. An invalid query is an `Invalid` error, a storage fault `Unavailable`.
    fn condition_matches(&self, _db: &Db, type_name: &str, query: &str) -> Result<Vec<String>> {
        Err(DbError::new(
            ErrorKind::Invalid,
            format!("Conditional writes of {type_name} need a search index (`{query}`)."),
        ))
    }
}

/// Which values of a parameter a scan selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// Exactly this value.
    Exact(Vec<u8>),
    /// Every value starting with these bytes.
    Prefix(Vec<u8>),
    /// Values in `[from, to)` (byte order of the encodings); `None` is unbounded.
    Range(Option<Vec<u8>>, Option<Vec<u8>>),
}

impl Db {
    /// Current resources of `type_name` having a value of parameter `param` that `m` selects,
    /// in id order.
    pub fn search(
        &self,
        type_name: &str,
        param: u32,
        m: &ValueMatch,
    ) -> Result<Vec<ResourceHandle>> {
        self.search_filtered(type_name, param, m, |_| true)
    }

    /// Like [`Db::search`], keeping only entries whose (unescaped) value `accept` approves.
    /// `m` narrows the scan; `accept` decides each value exactly.
    pub fn search_filtered(
        &self,
        type_name: &str,
        param: u32,
        m: &ValueMatch,
        accept: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<ResourceHandle>> {
        let tid = codec::tid(type_name);
        let mut hits: Vec<ResourceHandle> = Vec::with_capacity(256);
        let mut cur = self.as_of_cursor();
        self.scan_entries(tid, param, m, accept, |id, hp| {
            self.push_current_hit(&mut hits, &mut cur, type_name, tid, id, hp)
        })?;
        // An exact scan yields sorted, distinct hits. Ranges and prefixes span values.
        if !matches!(m, ValueMatch::Exact(_)) {
            sort_distinct(&mut hits);
        }
        Ok(hits)
    }

    /// The current version of `type_name/id` if the index entry with hash prefix `hp` is
    /// its (entries of older versions carry another prefix and do not count).
    fn current_with_prefix(
        &self,
        cur: &mut AsOfCursor<'_>,
        type_name: &str,
        tid: u32,
        id: &str,
        hp: [u8; 4],
    ) -> Result<Option<ResourceHandle>> {
        Ok(self
            .resource_at(cur, type_name, tid, id)?
            .filter(|h| !h.is_deleted() && h.hash.0[..4] == hp))
    }

    /// Adds the hit `id` (entry hash prefix `hp`) to `hits` if it is current and not the last
    /// one added (one value's entries come in id order and an id's entries are adjacent);
    /// always continues the scan.
    fn push_current_hit(
        &self,
        hits: &mut Vec<ResourceHandle>,
        cur: &mut AsOfCursor<'_>,
        type_name: &str,
        tid: u32,
        id: &str,
        hp: [u8; 4],
    ) -> Result<bool> {
        if hits.last().is_none_or(|h| h.id != id)
            && let Some(h) = self.current_with_prefix(cur, type_name, tid, id, hp)?
        {
            hits.push(h);
        }
        Ok(true)
    }

    /// Calls `hit(id, hash prefix)` for every SearchParamValue entry of `param` on type `tid`
    /// that `m` selects and whose unescaped value `accept` approves, in key order, until it
    /// returns `false` (or an error, which ends the scan and is returned).
    fn scan_entries(
        &self,
        tid: u32,
        param: u32,
        m: &ValueMatch,
        accept: impl FnMut(&[u8]) -> bool,
        hit: impl FnMut(&str, [u8; 4]) -> Result<bool>,
    ) -> Result<()> {
        let mut hit = hit;
        let base = codec::search_prefix(param, tid);
        self.scan_entries_under(Cf::SearchParamValue, base, m, accept, |id, hp, _| {
            hit(id, hp)
        })
    }

    /// [`Db::scan_entries`] over the keys of `cf` starting with `base` (a SearchParamValue or
    /// a CompartmentSearchParamValue prefix: both end in the same value and target layout).
    fn scan_entries_under(
        &self,
        cf: Cf,
        base: Vec<u8>,
        m: &ValueMatch,
        mut accept: impl FnMut(&[u8]) -> bool,
        mut hit: impl FnMut(&str, [u8; 4], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let (start, prefix, end) = match m {
            ValueMatch::Exact(v) => {
                let mut p = base.clone();
                codec::push_escaped(&mut p, v);
                p.extend_from_slice(&VALUE_END);
                (p.clone(), p, None)
            }
            ValueMatch::Prefix(v) => {
                let mut p = base.clone();
                codec::push_escaped(&mut p, v);
                (p.clone(), p, None)
            }
            ValueMatch::Range(from, to) => {
                let mut s = base.clone();
                if let Some(f) = from {
                    codec::push_escaped(&mut s, f);
                }
                let e = to.as_ref().map(|t| {
                    let mut e = base.clone();
                    codec::push_escaped(&mut e, t);
                    e
                });
                (s, base.clone(), e)
            }
        };
        let mut value = Vec::with_capacity(64);
        try_scan_prefix(&*self.storage.kv, cf, &prefix, &start, |k, entry| {
            if end.as_ref().is_some_and(|e| k >= e.as_slice()) {
                return Ok(false);
            }
            let Some((id, hp)) = codec::search_key_target(k) else {
                return Ok(true);
            };
            let Some(raw) = codec::search_key_value(k, base.len(), id.len()) else {
                return Ok(true);
            };
            value.clear();
            codec::unescape_into(raw, &mut value);
            if accept(&value) {
                hit(id, hp, entry)
            } else {
                Ok(true)
            }
        })
    }

    /// Number of current resources of `type_name` having a value of parameter `param` that
    /// one of `scans` (a value match and an exact filter, as for [`Db::search_filtered`])
    /// selects. Equal to the length of the union of those searches, but without a version
    /// look-up per hit: an entry is current unless the Superseded index says its version was
    /// replaced at or before `t`; only resources changed after `t` are looked up.
    pub fn count_search(
        &self,
        type_name: &str,
        param: u32,
        scans: &[ValueScan<'_>],
    ) -> Result<usize> {
        if let [(m @ ValueMatch::Exact(_), f)] = scans {
            // Exact scans yield an id's entries next to each other: count distinct ids.
            let counted = self.stable_scan(type_name, |current| {
                let mut n = 0;
                let mut last: Vec<u8> = Vec::with_capacity(64);
                self.scan_entries(
                    current.tid,
                    param,
                    m,
                    |v| f(v),
                    |id, hp| {
                        if last == id.as_bytes() || !current.is(id, hp)? {
                            return Ok(true);
                        }
                        last.clear();
                        last.extend_from_slice(id.as_bytes());
                        n += 1;
                        Ok(true)
                    },
                )?;
                Ok(n)
            })?;
            if let Some(n) = counted {
                return Ok(n);
            }
        }
        Ok(self.search_ids(type_name, param, scans)?.len())
    }

    /// The ids of the current resources of `type_name` having a value of parameter `param`
    /// that one of `scans` selects, checked like [`Db::count_search`] counts them (without a
    /// version look-up per hit).
    pub fn search_ids(
        &self,
        type_name: &str,
        param: u32,
        scans: &[ValueScan<'_>],
    ) -> Result<IdList> {
        Ok(self
            .search_ids_bounded(type_name, param, scans, usize::MAX)?
            .unwrap_or_default())
    }

    /// Like [`Db::search_ids`], but `None` as soon as the scans select more than
    /// `max_entries` index entries: a caller with few candidates checks them instead of
    /// reading a large part of the index.
    pub fn search_ids_bounded(
        &self,
        type_name: &str,
        param: u32,
        scans: &[ValueScan<'_>],
        max_entries: usize,
    ) -> Result<Option<IdList>> {
        let found = self.stable_scan(type_name, |current| {
            let mut ids = IdListBuilder::default();
            let mut budget = max_entries;
            let mut over = false;
            for (m, f) in scans {
                self.scan_entries(
                    current.tid,
                    param,
                    m,
                    |v| f(v),
                    |id, hp| {
                        if budget == 0 {
                            over = true;
                            return Ok(false);
                        }
                        budget -= 1;
                        if !ids.last_is(id) && current.is(id, hp)? {
                            ids.push(id);
                        }
                        Ok(true)
                    },
                )?;
                if over {
                    return Ok(None);
                }
            }
            Ok(Some(ids.finish()))
        })?;
        if let Some(ids) = found {
            return Ok(ids);
        }
        let mut ids = IdListBuilder::default();
        let mut n = 0usize;
        for (m, f) in scans {
            let hits = self.search_filtered(type_name, param, m, |v| f(v))?;
            n = n.saturating_add(hits.len());
            if n > max_entries {
                return Ok(None);
            }
            for h in hits {
                ids.push(&h.id);
            }
        }
        Ok(Some(ids.finish()))
    }

    /// The ids of the current resources of `type_name` in the compartment `compartment/id`
    /// (e.g. `Patient/p1`) having a value of parameter `param` that one of `scans` selects,
    /// from the CompartmentSearchParamValue index: only parameters the search hook writes
    /// compartment entries for ([`Indexed::compartment_entries`]) are found there. The scan
    /// reads only the compartment's hits, checked like [`Db::search_ids`] checks them.
    pub fn compartment_search_ids(
        &self,
        compartment: (&str, &str),
        type_name: &str,
        param: u32,
        scans: &[ValueScan<'_>],
    ) -> Result<IdList> {
        let tid = codec::tid(type_name);
        let base =
            codec::compartment_search_prefix(codec::tid(compartment.0), compartment.1, param, tid);
        let scan_all = |check: &mut dyn FnMut(&str, [u8; 4]) -> Result<bool>| -> Result<IdList> {
            let mut ids = IdListBuilder::default();
            for (m, f) in scans {
                self.scan_entries_under(
                    Cf::CompartmentSearchParamValue,
                    base.clone(),
                    m,
                    |v| f(v),
                    |id, hp, _| {
                        if !ids.last_is(id) && check(id, hp)? {
                            ids.push(id);
                        }
                        Ok(true)
                    },
                )?;
            }
            Ok(ids.finish())
        };
        let found = self.stable_scan(type_name, |current| {
            scan_all(&mut |id, hp| current.is(id, hp))
        })?;
        if let Some(ids) = found {
            return Ok(ids);
        }
        let mut cur = self.as_of_cursor();
        scan_all(&mut |id, hp| {
            Ok(self
                .current_with_prefix(&mut cur, type_name, tid, id, hp)?
                .is_some())
        })
    }

    /// Like [`Db::compartment_search_ids`], but the current versions of the hits, in id
    /// order: each hit's version is looked up once (instead of a currency check during the
    /// scan and a look-up afterwards).
    pub fn compartment_search_handles(
        &self,
        compartment: (&str, &str),
        type_name: &str,
        param: u32,
        scans: &[ValueScan<'_>],
    ) -> Result<Vec<ResourceHandle>> {
        let tid = codec::tid(type_name);
        let base =
            codec::compartment_search_prefix(codec::tid(compartment.0), compartment.1, param, tid);
        let scan_all = |check: &mut HandleCheck<'_>| -> Result<Vec<ResourceHandle>> {
            let mut hits: Vec<ResourceHandle> = Vec::new();
            for (m, f) in scans {
                self.scan_entries_under(
                    Cf::CompartmentSearchParamValue,
                    base.clone(),
                    m,
                    |v| f(v),
                    |id, hp, entry| {
                        if hits.last().is_none_or(|h| h.id != id)
                            && let Some(h) = check(id, hp, entry)?
                        {
                            hits.push(h);
                        }
                        Ok(true)
                    },
                )?;
            }
            Ok(hits)
        };
        // Entries carry their version: a hit of a resource unchanged since `t` is current
        // unless the Superseded index says otherwise, and needs no ResourceAsOf look-up.
        let found = self.stable_scan(type_name, |current| {
            scan_all(&mut |id, hp, entry| current.handle(id, hp, entry))
        })?;
        let mut hits = match found {
            Some(hits) => hits,
            None => {
                let mut cur = self.as_of_cursor();
                scan_all(&mut |id, hp, _| {
                    self.current_with_prefix(&mut cur, type_name, tid, id, hp)
                })?
            }
        };
        if scans.len() > 1 || !scans.iter().all(|(m, _)| matches!(m, ValueMatch::Exact(_))) {
            sort_distinct(&mut hits);
        }
        Ok(hits)
    }

    /// Runs `scan` with a [`Current`] check for `type_name` and returns its result, unless
    /// versions of the type written meanwhile may have been missed three times in a row or
    /// too many resources changed after `t` (then `None`: look every hit up instead).
    fn stable_scan<R>(
        &self,
        type_name: &str,
        mut scan: impl FnMut(&mut Current<'_>) -> Result<R>,
    ) -> Result<Option<R>> {
        let tid = codec::tid(type_name);
        for _ in 0..3 {
            let Some((newest, changed)) = self.changed_after_t(tid, CHANGED_LIMIT)? else {
                return Ok(None);
            };
            let mut current = Current {
                db: self,
                type_name,
                tid,
                changed,
                cursor: self.as_of_cursor(),
                superseded: SupersededCursor::new(self, tid),
            };
            let r = scan(&mut current)?;
            // A version of this type written during the scan may have added entries that
            // `changed` does not cover: scan again.
            if self.changed_after_t(tid, 0)?.map(|(t, _)| t) == Some(newest) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// The newest `t` of any version of type `tid` (0 if none) and the ids of that type with
    /// versions after this value's `t`; `None` when there are more than `limit` of those.
    fn changed_after_t(&self, tid: u32, limit: usize) -> Result<Option<(T, HashSet<String>)>> {
        let prefix = tid.to_be_bytes();
        let mut newest = 0;
        let mut changed = HashSet::new();
        let mut over = false;
        scan_prefix(&*self.storage.kv, Cf::TypeAsOf, &prefix, &prefix, |k, _| {
            let Some((_, vt, id)) = codec::decode_type_as_of_key(k) else {
                return true;
            };
            newest = newest.max(vt);
            if vt <= self.t() || limit == 0 {
                return false;
            }
            if changed.len() >= limit {
                over = true;
                return false;
            }
            changed.insert(id.to_string());
            true
        })?;
        Ok((!over).then_some((newest, changed)))
    }

    /// The value blobs of many resource versions of one type (sorted by id), in order, read
    /// with one multi-get per batch of 1,024.
    pub fn index_values_many(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(handles.len());
        for chunk in handles.chunks(1024) {
            let keys: Vec<Vec<u8>> = chunk
                .iter()
                .map(|h| codec::resource_value_key(codec::tid(&h.type_name), &h.id, &h.hash))
                .collect();
            out.extend(self.storage.kv.multi_get(Cf::ResourceValue, &keys)?);
        }
        Ok(out)
    }

    /// The value blob the search hook stored for a resource version, if any.
    pub fn index_values(&self, handle: &ResourceHandle) -> Result<Option<Vec<u8>>> {
        let key =
            codec::resource_value_key(codec::tid(&handle.type_name), &handle.id, &handle.hash);
        self.storage.kv.get(Cf::ResourceValue, &key)
    }
}

/// Decides a compartment entry `(id, hash prefix, entry value)`: the current version it
/// belongs to, if any.
type HandleCheck<'a> = dyn FnMut(&str, [u8; 4], &[u8]) -> Result<Option<ResourceHandle>> + 'a;

/// One scan of a count: a value match and the exact filter of each entry's value.
pub type ValueScan<'a> = (&'a ValueMatch, &'a dyn Fn(&[u8]) -> bool);

/// Resources changed after a count's `t` beyond which counting looks every hit up instead.
const CHANGED_LIMIT: usize = 4096;

/// Decides whether a scan's entry `(id, hash prefix)` belongs to the version of `id` current
/// at the database value's `t`.
struct Current<'a> {
    db: &'a Db,
    type_name: &'a str,
    tid: u32,
    /// Resources with versions after `t`: looked up (their newest version may supersede the
    /// entry's without being `t`'s).
    changed: HashSet<String>,
    cursor: AsOfCursor<'a>,
    superseded: SupersededCursor<'a>,
}

impl Current<'_> {
    /// The version of `id` current at `t` if a compartment entry (hash prefix `hp`, value
    /// `entry`) belongs to it: built from the entry's value when it carries its version
    /// and `id` did not change after `t`, else looked up.
    fn handle(&mut self, id: &str, hp: [u8; 4], entry: &[u8]) -> Result<Option<ResourceHandle>> {
        if !self.changed.contains(id)
            && let Some((v, vt)) = codec::decode_compartment_entry_value(entry)
            && v.hash.0[..4] == hp
        {
            return Ok(self.superseded.is_current(id, hp)?.then(|| ResourceHandle {
                type_name: self.type_name.to_string(),
                id: id.to_string(),
                t: vt,
                hash: v.hash,
                num_changes: v.num_changes,
                op: v.op,
            }));
        }
        self.db
            .current_with_prefix(&mut self.cursor, self.type_name, self.tid, id, hp)
    }

    fn is(&mut self, id: &str, hp: [u8; 4]) -> Result<bool> {
        if self.changed.contains(id) {
            Ok(self
                .db
                .current_with_prefix(&mut self.cursor, self.type_name, self.tid, id, hp)?
                .is_some())
        } else {
            self.superseded.is_current(id, hp)
        }
    }
}

/// Answers "was this version superseded at or before `t`?" for a scan's hits with one cursor
/// over the Superseded index: hits mostly come in key order, and the index is small (only
/// replaced versions), so most answers are one comparison with the cursor's key.
struct SupersededCursor<'a> {
    cursor: Box<dyn KvCursor + 'a>,
    t: T,
    key: Vec<u8>,
    /// The previous target: a smaller one needs a new seek.
    last: Vec<u8>,
    seeked: bool,
}

impl<'a> SupersededCursor<'a> {
    fn new(db: &'a Db, tid: u32) -> Self {
        SupersededCursor {
            cursor: db.storage.kv.cursor(Cf::Superseded),
            t: db.t(),
            key: tid.to_be_bytes().to_vec(),
            last: Vec::new(),
            seeked: false,
        }
    }

    fn is_current(&mut self, id: &str, hp: [u8; 4]) -> Result<bool> {
        self.key.truncate(4);
        self.key.extend_from_slice(id.as_bytes());
        self.key.push(0);
        self.key.extend_from_slice(&hp);
        let c = &mut self.cursor;
        if !self.seeked || self.key < self.last {
            c.seek(&self.key);
            self.seeked = true;
        } else if c.valid() && c.key() < self.key.as_slice() {
            let mut steps = 0;
            while c.valid() && c.key() < self.key.as_slice() {
                if steps == 4 {
                    c.seek(&self.key);
                    break;
                }
                c.next();
                steps += 1;
            }
        }
        self.last.clear();
        self.last.extend_from_slice(&self.key);
        Ok(!(c.on_entry()?
            && c.key() == self.key.as_slice()
            && codec::read_u64(c.value()) <= self.t))
    }
}

/// Sorts hits by id and drops repeated ids (scans of ranges, prefixes or several values).
fn sort_distinct(hits: &mut Vec<ResourceHandle>) {
    hits.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    hits.dedup_by(|a, b| a.id == b.id);
}
