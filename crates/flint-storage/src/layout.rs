//! The parts of the index key layout that storage adapters rely on: big-endian integers, `t`
//! stored descending, and the ResourceAsOf key `tid · id · 0x00 · desc(t)` whose resource part
//! (`tid · id · 0x00`) is the prefix that [`crate::KvStore::prefix_cursor`] seeks within (the
//! RocksDB adapter's prefix extractor). The rest of the layout is the database core's.

use crate::T;

/// `!t` as 8 big-endian bytes: newer t first.
pub fn desc_t(t: T) -> [u8; 8] {
    (!t).to_be_bytes()
}

/// Inverse of [`desc_t`].
pub fn read_desc_t(b: &[u8]) -> T {
    !read_u64(b)
}

/// Reads 8 big-endian bytes (zero if too short).
pub fn read_u64(b: &[u8]) -> u64 {
    b.get(..8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// `tid · id · 0x00`: the prefix of all ResourceAsOf keys of one resource.
pub fn resource_prefix(tid: u32, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + id.len() + 8);
    k.extend_from_slice(&tid.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k
}

/// ResourceAsOf key `tid · id · 0x00 · desc(t)`.
pub fn resource_as_of_key(tid: u32, id: &str, t: T) -> Vec<u8> {
    let mut k = resource_prefix(tid, id);
    k.extend_from_slice(&desc_t(t));
    k
}
