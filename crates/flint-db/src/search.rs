//! The storage side of search: a hook that turns a resource version into search-index entries
//! at indexing time, and scans of the search index at a database value's `t`.
//!
//! What the values mean (normalised strings, token forms, date intervals, ...) is decided by
//! the hook's implementation (the search crate); this module stores opaque, order-preserving
//! value bytes under a parameter hash. A scan hit only counts if the hash prefix in the key
//! matches the resource's version current at `t`, which discards entries of older versions and
//! of rejected transactions without ever deleting them.

use crate::codec::{self, VALUE_END};
use crate::db::{Db, ResourceHandle};
use crate::error::Result;
use crate::kv::{Cf, scan_prefix};

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
}

/// Computes the search-index entries of resource versions while the indexer writes them.
pub trait ResourceIndexer: Send + Sync {
    /// The entries and value blob of a resource version given its canonical JSON content.
    fn index(&self, type_name: &str, content: &[u8]) -> Result<Indexed>;

    /// The entries a value blob written by [`ResourceIndexer::index`] stands for (so a
    /// re-index can remove them); empty when unknown.
    fn entries_of_values(&self, _values: &[u8]) -> Vec<IndexEntry> {
        Vec::new()
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
    pub fn search(&self, type_name: &str, param: u32, m: &ValueMatch) -> Vec<ResourceHandle> {
        self.search_filtered(type_name, param, m, |_| true)
    }

    /// Like [`Db::search`], keeping only entries whose (unescaped) value `accept` approves.
    /// `m` narrows the scan; `accept` decides each value exactly.
    pub fn search_filtered(
        &self,
        type_name: &str,
        param: u32,
        m: &ValueMatch,
        mut accept: impl FnMut(&[u8]) -> bool,
    ) -> Vec<ResourceHandle> {
        let tid = codec::tid(type_name);
        let base = codec::search_prefix(param, tid);
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
        // One value's entries come in id order and an id's entries are adjacent, so an exact
        // scan yields sorted, distinct hits. Ranges and prefixes span values: sort and dedup.
        let in_id_order = matches!(m, ValueMatch::Exact(_));
        let mut hits: Vec<ResourceHandle> = Vec::with_capacity(256);
        let mut cur = self.as_of_cursor();
        let mut value = Vec::with_capacity(64);
        scan_prefix(
            &*self.storage.kv,
            Cf::SearchParamValue,
            &prefix,
            &start,
            |k, _| {
                if end.as_ref().is_some_and(|e| k >= e.as_slice()) {
                    return false;
                }
                let Some((id, hp)) = codec::search_key_target(k) else {
                    return true;
                };
                if hits.last().is_some_and(|h| h.id == id) {
                    return true;
                }
                let Some(raw) = codec::search_key_value(k, base.len(), id.len()) else {
                    return true;
                };
                value.clear();
                codec::unescape_into(raw, &mut value);
                if !accept(&value) {
                    return true;
                }
                // Entries of older versions and rejected transactions carry another hash
                // prefix than the current version's: they do not count.
                if let Some(h) = self
                    .resource_at(&mut cur, type_name, tid, id)
                    .filter(|h| !h.is_deleted() && h.hash.0[..4] == hp)
                {
                    hits.push(h);
                }
                true
            },
        );
        if !in_id_order {
            hits.sort_unstable_by(|a, b| a.id.cmp(&b.id));
            hits.dedup_by(|a, b| a.id == b.id);
        }
        hits
    }

    /// The value blob the search hook stored for a resource version, if any.
    pub fn index_values(&self, handle: &ResourceHandle) -> Option<Vec<u8>> {
        let key =
            codec::resource_value_key(codec::tid(&handle.type_name), &handle.id, &handle.hash);
        self.storage.kv.get(Cf::ResourceValue, &key).ok().flatten()
    }
}
