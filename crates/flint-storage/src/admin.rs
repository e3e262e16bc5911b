//! Administration of a storage database (one RocksDB database, or one in-memory store): the
//! statistics the admin API shows and manual compaction. FHIR-free, like the rest of this
//! crate; each adapter reports what it can tell (`None` for what it cannot).

use crate::error::Result;
use serde::Serialize;

/// Statistics of a whole database (JSON keys in camelCase, as Blaze's admin API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbStats {
    /// Estimated bytes of live data (all column families).
    pub estimate_live_data_size: Option<u64>,
    /// Bytes still usable on the file system the database lives on.
    pub usable_space: Option<u64>,
    /// The block cache, if the database has one.
    pub block_cache: Option<BlockCache>,
    /// Compactions waiting and running, if the database compacts.
    pub compactions: Option<Compactions>,
}

/// The block cache of a database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockCache {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Bytes in use.
    pub usage: u64,
}

/// The compactions of a database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Compactions {
    /// Column families with a compaction pending (`rocksdb.compaction-pending`, summed).
    pub pending: u64,
    /// Estimated bytes compactions still have to rewrite
    /// (`rocksdb.estimate-pending-compaction-bytes`, summed).
    pub pending_bytes: u64,
    /// Compactions running now.
    pub running: u64,
}

/// Statistics of one column family (JSON keys in camelCase, as Blaze's admin API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnFamilyStats {
    /// The column family's name.
    pub name: String,
    /// Estimated number of keys (exact in memory).
    pub estimate_num_keys: u64,
    /// Estimated bytes of live data.
    pub estimate_live_data_size: u64,
    /// Bytes of the live SST files (0 in memory).
    pub live_sst_files_size: u64,
    /// Bytes of the memtables (everything, in memory).
    pub size_all_mem_tables: u64,
}

/// The LSM tree of one column family: its SST files, in total and per level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnFamilyMetadata {
    /// The column family's name.
    pub name: String,
    /// Bytes of all its SST files.
    pub file_size: u64,
    /// Number of its SST files.
    pub num_files: u64,
    /// Every level, from 0, with its files.
    pub levels: Vec<LevelMetadata>,
}

/// One level of a column family's LSM tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LevelMetadata {
    /// The level (0 holds the flushed memtables).
    pub level: u32,
    /// Bytes of the level's SST files.
    pub file_size: u64,
    /// Number of the level's SST files.
    pub num_files: u64,
}

/// One SST file of a column family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SstFile {
    /// The file name (`/000123.sst`, relative to the database directory).
    pub name: String,
    /// The level it is in.
    pub level: u32,
    /// Its size in bytes.
    pub file_size: u64,
    /// Entries it holds (puts and deletions).
    pub num_entries: u64,
    /// Deletions (tombstones) among them.
    pub num_deletions: u64,
    /// Its smallest key, hex-encoded.
    pub smallest_key: String,
    /// Its largest key, hex-encoded.
    pub largest_key: String,
}

/// The flush and compaction state of one column family (RocksDB properties).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnFamilyState {
    /// Whether a memtable flush is pending (`rocksdb.mem-table-flush-pending`).
    pub mem_table_flush_pending: bool,
    /// Immutable memtables not flushed yet (`rocksdb.num-immutable-mem-table`).
    pub num_immutable_mem_tables: u64,
    /// Entries in the active memtable (`rocksdb.num-entries-active-mem-table`).
    pub num_entries_active_mem_table: u64,
    /// Deletions in the active memtable (`rocksdb.num-deletes-active-mem-table`).
    pub num_deletes_active_mem_table: u64,
    /// Whether a compaction is pending (`rocksdb.compaction-pending`).
    pub compaction_pending: bool,
    /// Bytes compactions still have to rewrite (`rocksdb.estimate-pending-compaction-bytes`).
    pub estimate_pending_compaction_bytes: u64,
    /// Whether writes to the database are stopped (`rocksdb.is-write-stopped`).
    pub write_stopped: bool,
    /// The rate writes are delayed to, bytes/s, 0 when not delayed
    /// (`rocksdb.actual-delayed-write-rate`).
    pub actual_delayed_write_rate: u64,
}

/// Hex of `bytes` (lower case).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Statistics and manual compaction of a storage database.
pub trait StoreAdmin: Send + Sync {
    /// Statistics of the whole database.
    fn stats(&self) -> Result<DbStats>;

    /// Statistics of each column family, in a fixed order.
    fn column_families(&self) -> Result<Vec<ColumnFamilyStats>>;

    /// Compacts the whole key range of `column_family` (blocking: call it off the async
    /// workers); `Ok(false)` when the database has no such column family.
    fn compact(&self, column_family: &str) -> Result<bool>;

    /// The SST files of `column_family` by level (blocking); `Ok(None)` when the database
    /// keeps no files (in memory) or has no such column family.
    fn column_family_metadata(&self, _column_family: &str) -> Result<Option<ColumnFamilyMetadata>> {
        Ok(None)
    }

    /// The SST files of `column_family`, by level and name (blocking); `Ok(None)` as for
    /// [`StoreAdmin::column_family_metadata`].
    fn tables(&self, _column_family: &str) -> Result<Option<Vec<SstFile>>> {
        Ok(None)
    }

    /// The flush and compaction state of `column_family` (blocking); `Ok(None)` when the
    /// database has none (in memory) or no such column family.
    fn column_family_state(&self, _column_family: &str) -> Result<Option<ColumnFamilyState>> {
        Ok(None)
    }
}

/// Free bytes for unprivileged users on the file system holding `path` (`statvfs`), where the
/// platform tells; `None` otherwise.
pub fn usable_space(path: &std::path::Path) -> Option<u64> {
    fs_usable_space(path)
}

#[cfg(unix)]
fn fs_usable_space(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `buf` a writable `struct statvfs`.
    let rc = unsafe { libc::statvfs(c.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded and filled the struct.
    let s = unsafe { buf.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    Some((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

#[cfg(not(unix))]
fn fs_usable_space(_path: &std::path::Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_space_of_the_temp_dir_is_known_and_missing_paths_are_not() {
        let free = usable_space(&std::env::temp_dir()).expect("statvfs of the temp dir");
        assert!(free > 0);
        assert_eq!(
            usable_space(std::path::Path::new("/no/such/dir/here")),
            None
        );
    }

    #[test]
    fn stats_serialise_in_camel_case() {
        let s = DbStats {
            estimate_live_data_size: Some(1),
            usable_space: None,
            block_cache: Some(BlockCache {
                capacity: 2,
                usage: 3,
            }),
            compactions: Some(Compactions {
                pending: 0,
                pending_bytes: 4,
                running: 5,
            }),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["estimateLiveDataSize"], 1);
        assert_eq!(v["blockCache"]["usage"], 3);
        assert_eq!(v["compactions"]["pendingBytes"], 4);
    }
}
