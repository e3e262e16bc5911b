//! The transaction log: one totally ordered sequence of transactions, each a list of commands.
//! Implementations: in-memory ([`crate::mem::MemLog`]), RocksDB (standalone), Kafka (distributed).

use crate::error::{DbError, Result};
use crate::{ContentHash, T};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxOp {
    /// Create a resource with a new id (fails if the id exists).
    Create,
    /// Create or update a resource (no new version if the content is unchanged).
    Put,
    /// Delete a resource (idempotent).
    Delete,
    /// Erase every version of a resource from the index (`Patient/[id]/$purge` lists the
    /// patient and each resource of its compartment). `refs` lists the local references its
    /// versions held, whose referenced-by rows go with it. Appended after the older variants,
    /// so log entries written before it decode unchanged.
    Purge,
    /// Erase every version of a resource but the current one (`DELETE [type]/[id]/_history`).
    DeleteHistory,
}

/// `If-None-Match` precondition of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IfNoneMatch {
    /// `*`: the resource must not exist (or be deleted).
    Any,
    /// `W/"t"`: the current version must not be `t`.
    Version(T),
}

/// One command of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxCmd {
    /// What to do.
    pub op: TxOp,
    /// Resource type.
    pub type_name: String,
    /// Resource id.
    pub id: String,
    /// Content hash of the new version (`None` for deletes).
    pub hash: Option<ContentHash>,
    /// Local literal references `(type, id)` the new version holds, checked when referential
    /// integrity is enforced.
    pub refs: Vec<(String, String)>,
    /// `If-Match` versions: when non-empty the current version must be one of them.
    pub if_match: Vec<T>,
    /// `If-None-Match` precondition.
    pub if_none_match: Option<IfNoneMatch>,
    /// For deletes: refuse when other resources reference this one.
    pub check_refs: bool,
    /// The search of a conditional create, update or delete (its parameters as a JSON array of
    /// `[name, value]` pairs, e.g. `[["name","x"],["birthdate","1970"]]`), evaluated again by every indexer in log order: the transaction is
    /// rejected (409) when a current resource of the type other than this one matches it, so
    /// concurrent conditional writes cannot both create; on a delete, when a current match is
    /// not deleted by the transaction.
    pub condition: Option<String>,
}

/// [`TxCmd`] as log format 1 wrote it (before `condition`).
#[derive(Deserialize)]
struct TxCmdV1 {
    op: TxOp,
    type_name: String,
    id: String,
    hash: Option<ContentHash>,
    refs: Vec<(String, String)>,
    if_match: Vec<T>,
    if_none_match: Option<IfNoneMatch>,
    check_refs: bool,
}

impl From<TxCmdV1> for TxCmd {
    fn from(c: TxCmdV1) -> Self {
        TxCmd {
            op: c.op,
            type_name: c.type_name,
            id: c.id,
            hash: c.hash,
            refs: c.refs,
            if_match: c.if_match,
            if_none_match: c.if_none_match,
            check_refs: c.check_refs,
            condition: None,
        }
    }
}

impl TxCmd {
    /// A command with no preconditions.
    pub fn new(op: TxOp, type_name: &str, id: &str, hash: Option<ContentHash>) -> Self {
        TxCmd {
            op,
            type_name: type_name.to_string(),
            id: id.to_string(),
            hash,
            refs: Vec::new(),
            if_match: Vec::new(),
            if_none_match: None,
            check_refs: false,
            condition: None,
        }
    }
}

/// A committed log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxEntry {
    /// The transaction's logical time.
    pub t: T,
    /// Commit instant, milliseconds since the epoch (non-decreasing with t).
    pub instant_ms: i64,
    /// The commands.
    pub cmds: Vec<TxCmd>,
}

const FORMAT_VERSION: u8 = 2;

/// Encodes a command list for storage in a log: a format byte followed by postcard.
pub fn encode_cmds(cmds: &[TxCmd]) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Serialising plain structs into a Vec cannot fail.
    if let Ok(body) = postcard::to_allocvec(cmds) {
        out.extend_from_slice(&body);
    }
    out
}

/// Decodes [`encode_cmds`]'s output.
pub fn decode_cmds(bytes: &[u8]) -> Result<Vec<TxCmd>> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => postcard::from_bytes(body)
            .map_err(|e| DbError::fault(format!("corrupt transaction log entry: {e}"))),
        Some((1, body)) => postcard::from_bytes::<Vec<TxCmdV1>>(body)
            .map(|cmds| cmds.into_iter().map(TxCmd::from).collect())
            .map_err(|e| DbError::fault(format!("corrupt transaction log entry: {e}"))),
        _ => Err(DbError::fault("unknown transaction log entry format")),
    }
}

/// The transaction log.
#[async_trait]
pub trait TxLog: Send + Sync {
    /// Appends a transaction; returns its `t` once it is durable.
    async fn submit(&self, cmds: Vec<TxCmd>) -> Result<T>;
    /// Entries with `t >= from`, at most `max`, waiting up to `timeout` for the first one.
    async fn poll(&self, from: T, max: usize, timeout: Duration) -> Result<Vec<TxEntry>>;
    /// The newest durable `t` (0 for an empty log).
    async fn last_t(&self) -> Result<T>;
    /// Moves what only memory and a write-ahead log hold into files, so the next start
    /// replays nothing (called on graceful shutdown; a no-op where nothing is replayed).
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmds_round_trip() {
        let mut c = TxCmd::new(TxOp::Put, "Patient", "a", Some(ContentHash::of(b"x")));
        c.refs.push(("Organization".into(), "o".into()));
        c.if_match = vec![3, 4];
        c.if_none_match = Some(IfNoneMatch::Version(2));
        c.condition = Some(r#"[["identifier","http://x|1"],["name","Ann"]]"#.into());
        let cmds = vec![
            c,
            TxCmd::new(TxOp::Delete, "Patient", "b", None),
            TxCmd::new(TxOp::Purge, "Patient", "c", None),
            TxCmd::new(TxOp::DeleteHistory, "Patient", "d", None),
        ];
        assert_eq!(decode_cmds(&encode_cmds(&cmds)).unwrap(), cmds);
        assert!(decode_cmds(&[9, 1, 2]).is_err());
        assert!(decode_cmds(&[]).is_err());
    }

    #[test]
    fn entries_written_before_purge_existed_decode_unchanged() {
        // The encoding of a delete command of `Patient/b` as it was before `Purge` and
        // `DeleteHistory` were added: the variant index of the older ops is unchanged.
        let old = [
            1, 2, 0, 7, b'P', b'a', b't', b'i', b'e', b'n', b't', 1, b'a', 0, 0, 0, 0, 0, 2, 7,
            b'P', b'a', b't', b'i', b'e', b'n', b't', 1, b'b', 0, 0, 0, 0, 1,
        ];
        let cmds = decode_cmds(&old).unwrap();
        assert_eq!(cmds[0], TxCmd::new(TxOp::Create, "Patient", "a", None));
        let mut d = TxCmd::new(TxOp::Delete, "Patient", "b", None);
        d.check_refs = true;
        assert_eq!(cmds[1], d);
        // Format 2 appends `condition` to each command and keeps the rest byte for byte.
        let new = encode_cmds(&cmds);
        assert_eq!(new[0], 2);
        assert_eq!(&new[1..18], &old[1..18], "the first command up to its end");
        assert_eq!(new[18], 0, "then its absent condition");
        assert_eq!(decode_cmds(&new).unwrap(), cmds);
    }
}
