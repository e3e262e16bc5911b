//! Byte encodings of index keys and values.
//!
//! Integers are big-endian so byte order equals numeric order; `desc(t)` is `!t` so newer
//! versions sort first. Resource ids are at most 64 bytes of `[A-Za-z0-9\-.]` and never contain
//! `0x00`, which therefore serves as the id terminator wherever an id is followed by more key.

use crate::{ContentHash, T};
pub use flint_storage::layout::{
    desc_t, read_desc_t, read_u64, resource_as_of_key, resource_prefix,
};

/// A type id: a stable 4-byte hash of the resource type name (FNV-1a, 32 bit).
pub fn tid(type_name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in type_name.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Reads 4 big-endian bytes (zero if too short).
pub fn read_u32(b: &[u8]) -> u32 {
    b.get(..4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0)
}

/// What a version did to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionOp {
    /// The resource was created by this version (POST).
    Create,
    /// The resource was created by an update (PUT of a new or deleted resource).
    UpdateCreate,
    /// The resource was updated.
    Put,
    /// The resource was deleted.
    Delete,
}

/// The value stored for each version in the as-of indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionValue {
    /// Content hash (all zero for deletions).
    pub hash: ContentHash,
    /// Number of versions of the resource up to and including this one.
    pub num_changes: u64,
    /// What this version did.
    pub op: VersionOp,
}

impl VersionOp {
    /// Whether this version created the resource (by POST or PUT).
    pub fn is_create(self) -> bool {
        matches!(self, VersionOp::Create | VersionOp::UpdateCreate)
    }
}

impl VersionValue {
    /// Encodes as `hash(32) · num_changes(8) · op(1)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(41);
        v.extend_from_slice(&self.hash.0);
        v.extend_from_slice(&self.num_changes.to_be_bytes());
        v.push(match self.op {
            VersionOp::Create => 1,
            VersionOp::Put => 0,
            VersionOp::Delete => 2,
            VersionOp::UpdateCreate => 3,
        });
        v
    }

    /// Decodes [`VersionValue::encode`]'s output.
    pub fn decode(b: &[u8]) -> Option<VersionValue> {
        if b.len() < 41 {
            return None;
        }
        let hash = ContentHash(b[..32].try_into().ok()?);
        let op = match b[40] {
            1 => VersionOp::Create,
            2 => VersionOp::Delete,
            3 => VersionOp::UpdateCreate,
            _ => VersionOp::Put,
        };
        Some(VersionValue {
            hash,
            num_changes: read_u64(&b[32..40]),
            op,
        })
    }
}

/// The value of a CompartmentSearchParamValue entry: the version it was written for,
/// `hash(32) · num_changes(8) · op(1) · t(8)`, so a scan builds the hit's handle without a
/// ResourceAsOf look-up (entries written before this value existed are empty).
pub fn compartment_entry_value(v: &VersionValue, t: T) -> Vec<u8> {
    let mut b = v.encode();
    b.extend_from_slice(&t.to_be_bytes());
    b
}

/// Decodes [`compartment_entry_value`]'s output (`None` for an empty or malformed value).
pub fn decode_compartment_entry_value(b: &[u8]) -> Option<(VersionValue, T)> {
    if b.len() != 49 {
        return None;
    }
    Some((VersionValue::decode(&b[..41])?, read_u64(&b[41..])))
}

/// Splits a ResourceAsOf key into `(tid, id, t)`.
pub fn decode_resource_as_of_key(k: &[u8]) -> Option<(u32, &str, T)> {
    if k.len() < 4 + 1 + 8 {
        return None;
    }
    let tid = read_u32(k);
    let id = std::str::from_utf8(&k[4..k.len() - 9]).ok()?;
    Some((tid, id, read_desc_t(&k[k.len() - 8..])))
}

/// TypeAsOf key `tid · desc(t) · id`.
pub fn type_as_of_key(tid: u32, t: T, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + id.len());
    k.extend_from_slice(&tid.to_be_bytes());
    k.extend_from_slice(&desc_t(t));
    k.extend_from_slice(id.as_bytes());
    k
}

/// Splits a TypeAsOf key into `(tid, t, id)`.
pub fn decode_type_as_of_key(k: &[u8]) -> Option<(u32, T, &str)> {
    if k.len() < 12 {
        return None;
    }
    Some((
        read_u32(k),
        read_desc_t(&k[4..12]),
        std::str::from_utf8(&k[12..]).ok()?,
    ))
}

/// SystemAsOf key `desc(t) · tid · id`.
pub fn system_as_of_key(t: T, tid: u32, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + id.len());
    k.extend_from_slice(&desc_t(t));
    k.extend_from_slice(&tid.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Splits a SystemAsOf key into `(t, tid, id)`.
pub fn decode_system_as_of_key(k: &[u8]) -> Option<(T, u32, &str)> {
    if k.len() < 12 {
        return None;
    }
    Some((
        read_desc_t(k),
        read_u32(&k[8..12]),
        std::str::from_utf8(&k[12..]).ok()?,
    ))
}

/// Stats value `total(8) · num_changes(8)`.
pub fn encode_stats(total: u64, changes: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&changes.to_be_bytes());
    v
}

/// Decodes [`encode_stats`]'s output into `(total, num_changes)`.
pub fn decode_stats(b: &[u8]) -> (u64, u64) {
    (read_u64(b), read_u64(b.get(8..).unwrap_or(&[])))
}

/// ReferencedBy key `target tid · target id · 0x00 · source tid · source id`.
pub fn referenced_by_key(target_tid: u32, target_id: &str, src_tid: u32, src_id: &str) -> Vec<u8> {
    let mut k = resource_prefix(target_tid, target_id);
    k.extend_from_slice(&src_tid.to_be_bytes());
    k.extend_from_slice(src_id.as_bytes());
    k
}

/// Appends `value` with every `0x00` escaped as `0x00 0xFF`: order-preserving, and the
/// terminator `0x00 0x00` ([`VALUE_END`]) sorts before any continuation, so an exact value is a
/// key prefix that no longer value shares.
pub fn push_escaped(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

/// Terminator of an escaped value inside a key.
pub const VALUE_END: [u8; 2] = [0, 0];

/// The 4-byte hash of a search parameter code (FNV-1a, like [`tid`]).
pub fn param_hash(code: &str) -> u32 {
    tid(code)
}

/// SearchParamValue prefix `param hash · tid` of one parameter of one type.
pub fn search_prefix(param: u32, tid: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(40);
    k.extend_from_slice(&param.to_be_bytes());
    k.extend_from_slice(&tid.to_be_bytes());
    k
}

/// SearchParamValue key `param · tid · esc(value) · 00 00 · id · len(id) · hash prefix`.
pub fn search_key(param: u32, tid: u32, value: &[u8], id: &str, hash: &ContentHash) -> Vec<u8> {
    let mut k = search_prefix(param, tid);
    push_search_tail(&mut k, value, id, hash);
    k
}

/// Appends the tail every search key shares: `esc(value) · 00 00 · id · len(id) · hash prefix`.
fn push_search_tail(k: &mut Vec<u8>, value: &[u8], id: &str, hash: &ContentHash) {
    push_escaped(k, value);
    k.extend_from_slice(&VALUE_END);
    k.extend_from_slice(id.as_bytes());
    k.push(id.len() as u8);
    k.extend_from_slice(&hash.0[..4]);
}

/// CompartmentSearchParamValue prefix `compartment tid · compartment id · 0x00 · param hash ·
/// tid`: one code parameter of one type inside one compartment (e.g. `Patient/p1`).
pub fn compartment_search_prefix(comp_tid: u32, comp_id: &str, param: u32, tid: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(48 + comp_id.len());
    k.extend_from_slice(&comp_tid.to_be_bytes());
    k.extend_from_slice(comp_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&param.to_be_bytes());
    k.extend_from_slice(&tid.to_be_bytes());
    k
}

/// CompartmentSearchParamValue key: [`compartment_search_prefix`] · `esc(value) · 00 00 · id ·
/// len(id) · hash prefix` (the tail of a [`search_key`]).
pub fn compartment_search_key(
    compartment: (u32, &str),
    param: u32,
    tid: u32,
    value: &[u8],
    id: &str,
    hash: &ContentHash,
) -> Vec<u8> {
    let mut k = compartment_search_prefix(compartment.0, compartment.1, param, tid);
    push_search_tail(&mut k, value, id, hash);
    k
}

/// The `(id, hash prefix)` at the end of a SearchParamValue key.
pub fn search_key_target(k: &[u8]) -> Option<(&str, [u8; 4])> {
    let n = k.len();
    let hp: [u8; 4] = k.get(n.checked_sub(4)?..)?.try_into().ok()?;
    let id_len = *k.get(n.checked_sub(5)?)? as usize;
    let id_start = n.checked_sub(5 + id_len)?;
    let id = std::str::from_utf8(k.get(id_start..n - 5)?).ok()?;
    Some((id, hp))
}

/// ResourceValue key `tid · id · 0x00 · hash prefix(4)`: one value blob per version.
pub fn resource_value_key(tid: u32, id: &str, hash: &ContentHash) -> Vec<u8> {
    let mut k = resource_prefix(tid, id);
    k.extend_from_slice(&hash.0[..4]);
    k
}

/// Superseded key `tid · id · 0x00 · hash prefix(4)` (the layout of [`resource_value_key`]).
pub fn superseded_key(tid: u32, id: &str, hash: &ContentHash) -> Vec<u8> {
    resource_value_key(tid, id, hash)
}

/// The escaped value bytes of a SearchParamValue key whose prefix is `prefix_len` bytes long
/// and whose id is `id_len` bytes long (everything between the prefix and [`VALUE_END`]).
pub fn search_key_value(k: &[u8], prefix_len: usize, id_len: usize) -> Option<&[u8]> {
    let end = k.len().checked_sub(5 + id_len + VALUE_END.len())?;
    k.get(prefix_len..end)
}

/// Appends the unescaped form of `escaped` (see [`push_escaped`]) to `out`.
pub fn unescape_into(escaped: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < escaped.len() {
        let b = escaped[i];
        out.push(b);
        i += if b == 0 { 2 } else { 1 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desc_t_orders_newest_first() {
        assert!(desc_t(2) < desc_t(1));
        assert_eq!(read_desc_t(&desc_t(42)), 42);
    }

    #[test]
    fn resource_keys_do_not_interleave_for_prefix_ids() {
        let t = tid("Patient");
        let a = resource_as_of_key(t, "abc", 1);
        let b = resource_as_of_key(t, "abcd", 7);
        assert!(a < b);
        assert!(!b.starts_with(&resource_prefix(t, "abc")));
        assert_eq!(decode_resource_as_of_key(&b), Some((t, "abcd", 7)));
    }

    #[test]
    fn escaped_values_keep_order_and_exactness() {
        let h = ContentHash::of(b"x");
        let k = |v: &[u8]| search_key(1, 2, v, "id", &h);
        assert!(k(b"a") < k(b"a\0"));
        assert!(k(b"a\0") < k(b"a\x01"));
        assert!(k(b"ab") < k(b"b"));
        let mut exact = search_prefix(1, 2);
        push_escaped(&mut exact, b"a");
        exact.extend_from_slice(&VALUE_END);
        assert!(k(b"a").starts_with(&exact));
        assert!(!k(b"a\0").starts_with(&exact));
        assert!(!k(b"ab").starts_with(&exact));
        assert_eq!(
            search_key_target(&k(b"a\0b")),
            Some(("id", [h.0[0], h.0[1], h.0[2], h.0[3]]))
        );
        assert_eq!(search_key_target(&[1]), None);
    }

    #[test]
    fn version_value_round_trips() {
        let v = VersionValue {
            hash: ContentHash::of(b"x"),
            num_changes: 3,
            op: VersionOp::Delete,
        };
        assert_eq!(VersionValue::decode(&v.encode()), Some(v));
        assert_eq!(VersionValue::decode(&[1, 2]), None);
    }

    #[test]
    fn tids_are_distinct_for_all_resource_types() {
        let mut seen = std::collections::HashSet::new();
        for ty in flint_model::defs::definitions().resource_types() {
            assert!(seen.insert(tid(ty)), "tid collision for {ty}");
        }
    }
}
