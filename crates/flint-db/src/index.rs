//! The transaction indexer: verifies one log entry against the database before it and turns it
//! into one atomic batch of index rows, ending in the `TxSuccess` marker, or a `TxError` row.
//!
//! Verification happens here, in log order, on every node, so every node decides the same
//! outcome for the same transaction (preconditions, id collisions, referential integrity).

use crate::codec::{self, VersionOp, VersionValue};
use crate::db::Db;
use crate::error::{DbError, ErrorKind, Result};
use crate::kv::{Cf, KvStore, WriteBatch, scan_prefix, try_scan_prefix};
use crate::log::{IfNoneMatch, TxEntry, TxOp};
use crate::search::{Indexed, ResourceIndexer};
use crate::{ContentHash, T};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Format version of the index rows; a mismatch at start-up asks for a rebuild.
pub const INDEX_VERSION: u64 = 4;

/// The newest transaction the index has processed (committed or rejected), 0 if none.
pub fn head_t(kv: &dyn KvStore) -> Result<T> {
    let mut head = 0;
    for cf in [Cf::TxSuccess, Cf::TxError] {
        scan_prefix(kv, cf, &[], &[], |k, _| {
            head = head.max(codec::read_desc_t(k));
            false
        })?;
    }
    Ok(head)
}

/// Checks (or, for an empty index, writes) the index format version.
pub fn check_version(kv: &dyn KvStore) -> Result<()> {
    match kv.get(Cf::Meta, b"version")? {
        Some(v) if codec::read_u64(&v) == INDEX_VERSION => Ok(()),
        Some(v) => Err(DbError::fault(format!(
            "incompatible index version {} (expected {INDEX_VERSION}): delete the index directory \
             to rebuild it from the transaction log",
            codec::read_u64(&v)
        ))),
        None => {
            let mut b = WriteBatch::default();
            b.put(
                Cf::Meta,
                b"version".to_vec(),
                INDEX_VERSION.to_be_bytes().to_vec(),
            );
            kv.write(b, true)
        }
    }
}

/// Each resource a transaction touches: its references if it exists afterwards, `None` if the
/// transaction deletes it.
type After<'a> = HashMap<(&'a str, &'a str), Option<&'a [(String, String)]>>;

struct NewVersion<'a> {
    type_name: &'a str,
    id: &'a str,
    value: VersionValue,
    refs: &'a [(String, String)],
    /// Content hash of the live version this one replaces (none after a deletion or for a
    /// new resource).
    previous: Option<ContentHash>,
    /// Whether the resource had any version before (possibly a deletion).
    existed: bool,
}

/// The search-index entries of a transaction's new versions, computed by the indexer hook
/// beforehand (in parallel), by content hash.
pub struct SearchIndexing<'a> {
    /// The hook's result per content hash (an error of the hook, which depends on the content
    /// alone, leaves the version without search entries on every node). A version missing
    /// here fails the indexing of its transaction, which is retried: it is never written
    /// without its entries.
    pub indexed: &'a HashMap<ContentHash, Result<Indexed>>,
    /// The hook itself: which entries a stored value blob stands for, so that a purge or a
    /// history deletion removes the entries of the versions it erases.
    pub indexer: &'a dyn ResourceIndexer,
}

/// The most versions one history deletion or purge removes (as Blaze's limit of history
/// deletion); more: 409, nothing removed.
pub const MAX_REMOVED_VERSIONS: usize = 100_000;

/// A content that a committed purge or history deletion left unreferenced by the index: the
/// resource it was a version of and its hash. The node erases it from the resource store
/// once no older database value is alive ([`crate::Node`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unreferenced {
    /// Resource type.
    pub type_name: String,
    /// Resource id.
    pub id: String,
    /// The content hash.
    pub hash: ContentHash,
}

/// Versions a purge or a history deletion removes from the index.
struct Removal<'a> {
    type_name: &'a str,
    id: &'a str,
    /// The versions removed, newest first.
    versions: Vec<crate::ResourceHandle>,
    /// The version kept (the current one, for a history deletion).
    keep: Option<crate::ResourceHandle>,
    /// The references the purged versions held (a purge's `refs`).
    refs: &'a [(String, String)],
}

/// Runs `indexer` over `contents` (content hash → type and bytes) on up to `threads` threads.
/// A panic of the hook is an error for the whole call (the caller retries; no version is ever
/// left without its search entries), never a silently missing result.
pub fn index_contents(
    indexer: &dyn ResourceIndexer,
    contents: &[(ContentHash, String, Bytes)],
    threads: usize,
) -> Result<HashMap<ContentHash, Result<Indexed>>> {
    let threads = threads.clamp(1, contents.len().max(1));
    let run = |part: &[(ContentHash, String, Bytes)]| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            part.iter()
                .map(|(h, ty, b)| (*h, indexer.index(ty, b)))
                .collect::<Vec<_>>()
        }))
        .map_err(|p| extraction_panicked(&p))
    };
    if threads == 1 {
        return Ok(run(contents)?.into_iter().collect());
    }
    let chunk = contents.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = contents
            .chunks(chunk)
            .map(|part| scope.spawn(move || run(part)))
            .collect();
        let mut out = HashMap::with_capacity(contents.len());
        for h in handles {
            out.extend(h.join().map_err(|p| extraction_panicked(&p))??);
        }
        Ok(out)
    })
}

/// The error for a search-value extraction that panicked (logged, counted in
/// `flint_index_extraction_panics_total`).
fn extraction_panicked(payload: &Box<dyn std::any::Any + Send>) -> DbError {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    metrics::counter!("flint_index_extraction_panics_total").increment(1);
    tracing::error!(panic = %msg, "search-value extraction panicked");
    DbError::fault(format!("search-value extraction panicked: {msg}"))
}

/// Indexes `entry` on top of `before` (the database as of `entry.t - 1`). Returns the outcome of
/// the transaction (for a committed one the contents its purges and history deletions left
/// unreferenced); storage faults are the outer error.
pub fn index_tx(
    kv: &dyn KvStore,
    before: &Db,
    entry: &TxEntry,
    search: Option<&SearchIndexing<'_>>,
) -> Result<Result<Vec<Unreferenced>, DbError>> {
    let t = entry.t;
    match verify(before, entry, search.map(|s| s.indexer)) {
        Ok((versions, removals)) => {
            let mut b = WriteBatch::default();
            let unreferenced =
                write_removals(before, &removals, search.map(|s| s.indexer), &mut b)?;
            write_versions(before, t, &versions, &removals, &mut b)?;
            if let Some(s) = search {
                write_search_entries(s, t, &versions, &mut b)?;
            }
            b.put(
                Cf::TxSuccess,
                codec::desc_t(t).to_vec(),
                (entry.instant_ms as u64).to_be_bytes().to_vec(),
            );
            let mut k = (entry.instant_ms.max(0) as u64).to_be_bytes().to_vec();
            k.extend_from_slice(&t.to_be_bytes());
            b.put(Cf::TByInstant, k, Vec::new());
            kv.write(b, false)?;
            Ok(Ok(unreferenced))
        }
        Err(Failure::Storage(e)) => Err(e),
        Err(Failure::Reject(e)) => {
            let mut b = WriteBatch::default();
            b.put(
                Cf::TxError,
                codec::desc_t(t).to_vec(),
                serde_json::to_vec(&e).unwrap_or_default(),
            );
            kv.write(b, false)?;
            Ok(Err(e))
        }
    }
}

/// Why a transaction could not be verified: it is rejected (its outcome, stored), or a read of
/// the database failed (nothing is decided; the indexer retries).
enum Failure {
    Reject(DbError),
    Storage(DbError),
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::Storage(e)
    }
}

fn conflict(msg: String) -> Failure {
    Failure::Reject(DbError::new(ErrorKind::Conflict, msg))
}

type Verified<'a> = (Vec<NewVersion<'a>>, Vec<Removal<'a>>);

fn verify<'a>(
    before: &Db,
    entry: &'a TxEntry,
    indexer: Option<&dyn ResourceIndexer>,
) -> Result<Verified<'a>, Failure> {
    let mut seen = HashSet::new();
    for c in &entry.cmds {
        if !seen.insert((c.type_name.as_str(), c.id.as_str())) {
            return Err(Failure::Reject(DbError::new(
                ErrorKind::Invalid,
                format!(
                    "Duplicate resource `{}/{}` in one transaction.",
                    c.type_name, c.id
                ),
            )));
        }
    }
    // Each touched resource after this transaction: its references if it exists, None if not.
    let mut after: After<'_> = HashMap::new();
    let mut versions = Vec::new();
    let mut removals = Vec::new();
    let mut removed = 0usize;
    for c in &entry.cmds {
        let current = before.resource(&c.type_name, &c.id)?;
        let live = current.as_ref().filter(|h| !h.is_deleted());
        let changes = current.as_ref().map_or(0, |h| h.num_changes);
        match c.op {
            TxOp::Create | TxOp::Put => {
                if c.op == TxOp::Create && current.is_some() {
                    return Err(conflict(format!(
                        "Resource `{}/{}` already exists.",
                        c.type_name, c.id
                    )));
                }
                check_preconditions(c, current.as_ref()).map_err(Failure::Reject)?;
                check_condition(before, c, indexer)?;
                let hash = c.hash.unwrap_or(ContentHash::DELETED);
                if live.is_some_and(|h| h.hash == hash) {
                    // Identical content: no new version.
                    after.insert((&c.type_name, &c.id), Some(&c.refs));
                    continue;
                }
                let op = match (live.is_some(), c.op) {
                    (true, _) => VersionOp::Put,
                    (false, TxOp::Create) => VersionOp::Create,
                    (false, _) => VersionOp::UpdateCreate,
                };
                after.insert((&c.type_name, &c.id), Some(&c.refs));
                versions.push(NewVersion {
                    type_name: &c.type_name,
                    id: &c.id,
                    value: VersionValue {
                        hash,
                        num_changes: changes + 1,
                        op,
                    },
                    refs: &c.refs,
                    previous: live.map(|h| h.hash),
                    existed: current.is_some(),
                });
            }
            TxOp::Delete => {
                check_delete_condition(before, entry, c, indexer)?;
                after.insert((&c.type_name, &c.id), None);
                // Deleting a deleted resource changes nothing; deleting an id that never
                // existed records a deletion as its first version (as Blaze), so the history
                // shows the delete.
                if current.is_some() && live.is_none() {
                    continue;
                }
                versions.push(NewVersion {
                    type_name: &c.type_name,
                    id: &c.id,
                    value: VersionValue {
                        hash: ContentHash::DELETED,
                        num_changes: changes + 1,
                        op: VersionOp::Delete,
                    },
                    refs: &[],
                    previous: live.map(|h| h.hash),
                    existed: current.is_some(),
                });
            }
            TxOp::Purge | TxOp::DeleteHistory => {
                let Some(current) = current else {
                    // Nothing to remove (the REST layer answers 404 before it gets here).
                    continue;
                };
                let mut all = before.instance_history(
                    &c.type_name,
                    &c.id,
                    None,
                    0,
                    MAX_REMOVED_VERSIONS + 2,
                )?;
                let keep = if c.op == TxOp::Purge {
                    after.insert((&c.type_name, &c.id), None);
                    None
                } else {
                    Some(all.remove(0))
                };
                removed += all.len();
                if removed > MAX_REMOVED_VERSIONS {
                    return Err(conflict(format!(
                        "Removing more than {MAX_REMOVED_VERSIONS} versions in one transaction \
                         is too costly (`{}/{}` has {} versions).",
                        c.type_name, c.id, current.num_changes
                    )));
                }
                removals.push(Removal {
                    type_name: &c.type_name,
                    id: &c.id,
                    versions: all,
                    keep,
                    refs: if c.op == TxOp::Purge { &c.refs } else { &[] },
                });
            }
        }
    }
    // Referential integrity, against the state after the whole transaction.
    for c in entry.cmds.iter().filter(|c| c.check_refs) {
        match c.op {
            TxOp::Create | TxOp::Put => {
                for (rt, rid) in &c.refs {
                    let exists = match after.get(&(rt.as_str(), rid.as_str())) {
                        Some(e) => e.is_some(),
                        None => before.resource(rt, rid)?.is_some_and(|h| !h.is_deleted()),
                    };
                    if !exists {
                        return Err(conflict(format!(
                            "Referential integrity violated. Resource `{rt}/{rid}` doesn't exist."
                        )));
                    }
                }
            }
            TxOp::DeleteHistory => {}
            TxOp::Delete | TxOp::Purge => {
                if let Some((st, sid)) = referencing(before, &c.type_name, &c.id, &after)? {
                    return Err(conflict(format!(
                        "Referential integrity violated. Resource `{}/{}` is referenced by `{st}/{sid}`.",
                        c.type_name, c.id
                    )));
                }
            }
        }
    }
    Ok((versions, removals))
}

/// The condition `c` carries (if any) and the ids of its current matches at `before`: a
/// failed read is a storage failure (retried), a query the indexer refuses rejects the
/// transaction, as does a condition without a search index.
fn condition_matches<'c>(
    before: &Db,
    c: &'c crate::log::TxCmd,
    indexer: Option<&dyn ResourceIndexer>,
) -> Result<Option<(&'c String, Vec<String>)>, Failure> {
    let Some(query) = &c.condition else {
        return Ok(None);
    };
    let Some(indexer) = indexer else {
        return Err(Failure::Reject(DbError::new(
            ErrorKind::Invalid,
            format!("Conditional interactions need a search index (`{query}`)."),
        )));
    };
    let ids = indexer
        .condition_matches(before, &c.type_name, query)
        .map_err(|e| match e.kind {
            ErrorKind::Unavailable | ErrorKind::Fault => Failure::Storage(e),
            _ => Failure::Reject(e),
        })?;
    Ok(Some((query, ids)))
}

/// A conditional write's search, again at the database before the transaction: any current
/// match other than the written resource rejects the transaction (409), so that of two
/// concurrent conditional creates with the same criteria exactly one creates, on every node.
fn check_condition(
    before: &Db,
    c: &crate::log::TxCmd,
    indexer: Option<&dyn ResourceIndexer>,
) -> Result<(), Failure> {
    let Some((query, ids)) = condition_matches(before, c, indexer)? else {
        return Ok(());
    };
    match ids.iter().find(|id| **id != c.id) {
        Some(other) => Err(conflict(format!(
            "The condition `{query}` of the conditional write of `{}/{}` matches `{}/{other}`, \
             written meanwhile.",
            c.type_name, c.id, c.type_name
        ))),
        None => Ok(()),
    }
}

/// A conditional delete's search, again at the database before the transaction: every
/// current match must be deleted by this transaction, so a conditional delete deletes exactly
/// what its condition selects at its place in the log (a match written meanwhile rejects it,
/// 409, and the REST layer evaluates the condition again). The condition rides on one delete
/// command of the transaction (evaluated once); the others of the type count as its deletes.
fn check_delete_condition(
    before: &Db,
    entry: &TxEntry,
    c: &crate::log::TxCmd,
    indexer: Option<&dyn ResourceIndexer>,
) -> Result<(), Failure> {
    let Some((query, ids)) = condition_matches(before, c, indexer)? else {
        return Ok(());
    };
    let deleted: HashSet<&str> = entry
        .cmds
        .iter()
        .filter(|d| d.op == TxOp::Delete && d.type_name == c.type_name)
        .map(|d| d.id.as_str())
        .collect();
    match ids.iter().find(|id| !deleted.contains(id.as_str())) {
        Some(other) => Err(conflict(format!(
            "The condition `{query}` of the conditional delete of `{}` matches `{}/{other}`, \
             written meanwhile.",
            c.type_name, c.type_name
        ))),
        None => Ok(()),
    }
}

fn check_preconditions(
    c: &crate::log::TxCmd,
    current: Option<&crate::ResourceHandle>,
) -> Result<(), DbError> {
    let current_t = current.filter(|h| !h.is_deleted()).map(|h| h.t);
    if !c.if_match.is_empty() && !current_t.is_some_and(|t| c.if_match.contains(&t)) {
        return Err(DbError::new(
            ErrorKind::PreconditionFailed,
            format!(
                "Precondition `If-Match` failed: the current version of `{}/{}` is {}.",
                c.type_name,
                c.id,
                current_t.map_or("none".to_string(), |t| t.to_string())
            ),
        ));
    }
    match c.if_none_match {
        Some(IfNoneMatch::Any) if current_t.is_some() => Err(DbError::new(
            ErrorKind::PreconditionFailed,
            format!(
                "Precondition `If-None-Match: *` failed: resource `{}/{}` exists.",
                c.type_name, c.id
            ),
        )),
        Some(IfNoneMatch::Version(v)) if current_t == Some(v) => Err(DbError::new(
            ErrorKind::PreconditionFailed,
            format!(
                "Precondition `If-None-Match` failed: the current version of `{}/{}` is {v}.",
                c.type_name, c.id
            ),
        )),
        _ => Ok(()),
    }
}

/// A resource other than `type/id` that references it after the transaction.
fn referencing(
    before: &Db,
    type_name: &str,
    id: &str,
    after: &After<'_>,
) -> Result<Option<(String, String)>> {
    let prefix = codec::resource_prefix(codec::tid(type_name), id);
    let mut found = None;
    try_scan_prefix(
        &*before.storage.kv,
        Cf::ReferencedBy,
        &prefix,
        &prefix,
        |k, v| {
            let rest = &k[prefix.len()..];
            let Some(src_type) = crate::db::type_name_of(codec::read_u32(rest)) else {
                return Ok(true);
            };
            let Ok(src_id) = std::str::from_utf8(rest.get(4..).unwrap_or(&[])) else {
                return Ok(true);
            };
            if (src_type, src_id) == (type_name, id) {
                return Ok(true);
            }
            let refers = match after.get(&(src_type, src_id)) {
                // Written in this transaction: its new references decide.
                Some(Some(refs)) => refs.iter().any(|(rt, rid)| rt == type_name && rid == id),
                Some(None) => false,
                None => before
                    .resource(src_type, src_id)?
                    .is_some_and(|h| !h.is_deleted() && h.hash.0[..] == *v),
            };
            if refers {
                found = Some((src_type.to_string(), src_id.to_string()));
            }
            Ok(!refers)
        },
    )?;
    Ok(found)
}

/// Writes the search-index rows of each new (non-deleted) version. An error of the extraction
/// hook (a property of the content, the same on every node) skips that resource's rows with a
/// warning and never fails the transaction; a version without any result (its content was not
/// read) is a fault, so the indexer retries instead of writing it unsearchable.
fn write_search_entries(
    s: &SearchIndexing<'_>,
    t: T,
    versions: &[NewVersion<'_>],
    b: &mut WriteBatch,
) -> Result<()> {
    for v in versions.iter().filter(|v| v.value.op != VersionOp::Delete) {
        let indexed = match s.indexed.get(&v.value.hash) {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                tracing::warn!(type_name = v.type_name, id = v.id, error = %e, "search indexing failed");
                continue;
            }
            None => {
                return Err(DbError::unavailable(format!(
                    "search values of {}/{} were not computed (content {:?} not read)",
                    v.type_name, v.id, v.value.hash
                )));
            }
        };
        let tid = codec::tid(v.type_name);
        for (param, value) in &indexed.entries {
            b.put(
                Cf::SearchParamValue,
                codec::search_key(*param, tid, value, v.id, &v.value.hash),
                Vec::new(),
            );
        }
        for e in &indexed.compartment_entries {
            b.put(
                Cf::CompartmentSearchParamValue,
                codec::compartment_search_key(
                    (e.compartment_tid, &e.compartment_id),
                    e.param,
                    tid,
                    &e.value,
                    v.id,
                    &v.value.hash,
                ),
                codec::compartment_entry_value(&v.value, t),
            );
        }
        b.put(
            Cf::ResourceValue,
            codec::resource_value_key(tid, v.id, &v.value.hash),
            indexed.values.clone(),
        );
    }
    Ok(())
}

/// Keeps the Superseded index true after `v`: the replaced version's entries stop being
/// current at `t` (unless the new version shares their hash prefix, and with it the entries'
/// keys), and entries of the new version that an earlier version left behind are current again.
fn write_superseded(t: T, tid: u32, v: &NewVersion<'_>, b: &mut WriteBatch) {
    let new_prefix = &v.value.hash.0[..4];
    let live_again = v.value.op != VersionOp::Delete;
    if let Some(prev) = &v.previous
        && (!live_again || prev.0[..4] != *new_prefix)
    {
        b.put(
            Cf::Superseded,
            codec::superseded_key(tid, v.id, prev),
            t.to_be_bytes().to_vec(),
        );
    }
    if live_again && v.existed {
        b.delete(
            Cf::Superseded,
            codec::superseded_key(tid, v.id, &v.value.hash),
        );
    }
}

/// Deletes every index row of the removed versions: their ResourceAsOf, TypeAsOf and
/// SystemAsOf rows, and, unless the kept version shares their hash prefix (and with it the
/// keys), their search and compartment entries (found through their value blob and `indexer`),
/// value blob and Superseded row; a purge also deletes the ReferencedBy rows of the
/// references it names. A history deletion rewrites the kept version as the first of its
/// resource (`num_changes` 1). Returns the contents no remaining version refers to.
fn write_removals(
    before: &Db,
    removals: &[Removal<'_>],
    indexer: Option<&dyn ResourceIndexer>,
    b: &mut WriteBatch,
) -> Result<Vec<Unreferenced>> {
    let mut unreferenced: Vec<Unreferenced> = Vec::new();
    for r in removals {
        let tid = codec::tid(r.type_name);
        let kept = r.keep.as_ref().filter(|h| !h.is_deleted());
        for v in &r.versions {
            b.delete(Cf::ResourceAsOf, codec::resource_as_of_key(tid, r.id, v.t));
            b.delete(Cf::TypeAsOf, codec::type_as_of_key(tid, v.t, r.id));
            b.delete(Cf::SystemAsOf, codec::system_as_of_key(v.t, tid, r.id));
            if v.is_deleted() {
                continue;
            }
            if kept.is_some_and(|k| k.hash.0[..4] == v.hash.0[..4]) {
                // Same keys as the kept version's rows; its content too when equal.
                if kept.is_some_and(|k| k.hash != v.hash) {
                    push_unique(&mut unreferenced, r, v.hash);
                }
                continue;
            }
            if let (Some(ix), Some(blob)) = (indexer, before.index_values(v)?) {
                for (param, value) in ix.entries_of_values(&blob) {
                    b.delete(
                        Cf::SearchParamValue,
                        codec::search_key(param, tid, &value, r.id, &v.hash),
                    );
                }
                for e in ix.compartment_entries_of_values(r.type_name, &blob) {
                    b.delete(
                        Cf::CompartmentSearchParamValue,
                        codec::compartment_search_key(
                            (e.compartment_tid, &e.compartment_id),
                            e.param,
                            tid,
                            &e.value,
                            r.id,
                            &v.hash,
                        ),
                    );
                }
            }
            b.delete(
                Cf::ResourceValue,
                codec::resource_value_key(tid, r.id, &v.hash),
            );
            b.delete(Cf::Superseded, codec::superseded_key(tid, r.id, &v.hash));
            push_unique(&mut unreferenced, r, v.hash);
        }
        for (rt, rid) in r.refs {
            b.delete(
                Cf::ReferencedBy,
                codec::referenced_by_key(codec::tid(rt), rid, tid, r.id),
            );
        }
        if let Some(k) = &r.keep
            && !r.versions.is_empty()
        {
            let val = VersionValue {
                hash: k.hash,
                num_changes: 1,
                op: k.op,
            }
            .encode();
            b.put(
                Cf::ResourceAsOf,
                codec::resource_as_of_key(tid, r.id, k.t),
                val.clone(),
            );
            b.put(
                Cf::TypeAsOf,
                codec::type_as_of_key(tid, k.t, r.id),
                val.clone(),
            );
            b.put(Cf::SystemAsOf, codec::system_as_of_key(k.t, tid, r.id), val);
        }
    }
    Ok(unreferenced)
}

fn push_unique(out: &mut Vec<Unreferenced>, r: &Removal<'_>, hash: ContentHash) {
    if !out
        .iter()
        .any(|u| u.hash == hash && u.id == r.id && u.type_name == r.type_name)
    {
        out.push(Unreferenced {
            type_name: r.type_name.to_string(),
            id: r.id.to_string(),
            hash,
        });
    }
}

fn write_versions(
    before: &Db,
    t: T,
    versions: &[NewVersion<'_>],
    removals: &[Removal<'_>],
    b: &mut WriteBatch,
) -> Result<()> {
    let mut type_delta: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for r in removals {
        let d = type_delta.entry(r.type_name).or_default();
        d.1 -= r.versions.len() as i64;
        // A purge removes a live resource from the total.
        if r.keep.is_none() && r.versions.first().is_some_and(|h| !h.is_deleted()) {
            d.0 -= 1;
        }
    }
    for v in versions {
        let tid = codec::tid(v.type_name);
        let val = v.value.encode();
        b.put(
            Cf::ResourceAsOf,
            codec::resource_as_of_key(tid, v.id, t),
            val.clone(),
        );
        b.put(
            Cf::TypeAsOf,
            codec::type_as_of_key(tid, t, v.id),
            val.clone(),
        );
        b.put(Cf::SystemAsOf, codec::system_as_of_key(t, tid, v.id), val);
        write_superseded(t, tid, v, b);
        for (rt, rid) in v.refs {
            b.put(
                Cf::ReferencedBy,
                codec::referenced_by_key(codec::tid(rt), rid, tid, v.id),
                v.value.hash.0.to_vec(),
            );
        }
        let d = type_delta.entry(v.type_name).or_default();
        d.1 += 1;
        match v.value.op {
            VersionOp::Create | VersionOp::UpdateCreate => d.0 += 1,
            // A deletion lowers the total only when it ends a live resource.
            VersionOp::Delete if v.previous.is_some() => d.0 -= 1,
            VersionOp::Delete => {}
            VersionOp::Put => {}
        }
    }
    let (mut sys_total, mut sys_changes) = (before.system_total()?, before.system_changes()?);
    for (ty, (dt, dc)) in type_delta {
        let total = (before.type_total(ty)? as i64 + dt).max(0) as u64;
        let changes = (before.type_changes(ty)? as i64 + dc).max(0) as u64;
        let mut k = codec::tid(ty).to_be_bytes().to_vec();
        k.extend_from_slice(&codec::desc_t(t));
        b.put(Cf::TypeStats, k, codec::encode_stats(total, changes));
        sys_total = (sys_total as i64 + dt).max(0) as u64;
        sys_changes = (sys_changes as i64 + dc).max(0) as u64;
    }
    if !versions.is_empty() || !removals.is_empty() {
        b.put(
            Cf::SystemStats,
            codec::desc_t(t).to_vec(),
            codec::encode_stats(sys_total, sys_changes),
        );
    }
    Ok(())
}
