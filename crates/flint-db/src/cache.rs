//! The node's caches (resource contents by hash, transaction instants by `t`): quick_cache
//! (sharded, CLOCK-Pro-like eviction, no background work) with a cheap hasher. Their keys are
//! SHA-256 content hashes (uniform already) and transaction numbers (dense integers), never
//! chosen by clients directly, so SipHash's flooding resistance buys nothing here; the hasher
//! folds 8 bytes per step and finishes with the SplitMix64 mixer, so every bit of the result
//! depends on every input bit (shards and buckets use different bits).

use std::hash::{BuildHasher, Hash, Hasher};

/// A concurrent cache of at most a fixed number of entries.
pub type Cache<K, V> = quick_cache::sync::Cache<K, V, quick_cache::UnitWeighter, KeyHasher>;

/// A cache holding at most `capacity` entries (at least one).
pub fn new<K: Eq + Hash + Clone, V: Clone>(capacity: usize) -> Cache<K, V> {
    let capacity = capacity.max(1);
    Cache::with(
        capacity,
        capacity as u64,
        quick_cache::UnitWeighter,
        KeyHasher,
        Default::default(),
    )
}

/// Builds [`KeyHash`]ers.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyHasher;

impl BuildHasher for KeyHasher {
    type Hasher = KeyHash;

    fn build_hasher(&self) -> KeyHash {
        KeyHash(0)
    }
}

/// The state of one hash computation.
#[derive(Debug, Clone, Copy)]
pub struct KeyHash(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl KeyHash {
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(K).rotate_left(31);
    }
}

impl Hasher for KeyHash {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(K);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(v: impl std::hash::Hash) -> u64 {
        KeyHasher.hash_one(v)
    }

    /// Dense integers spread over the low and the high bits alike.
    #[test]
    fn dense_keys_spread_over_all_bits() {
        for shift in [0, 20, 44] {
            let mut buckets = [0u32; 256];
            for t in 0..65_536u64 {
                buckets[((hash(t) >> shift) & 255) as usize] += 1;
            }
            let (min, max) = (buckets.iter().min().unwrap(), buckets.iter().max().unwrap());
            assert!(*min > 150 && *max < 370, "shift {shift}: {min}..{max}");
        }
    }

    #[test]
    fn different_keys_hash_differently() {
        assert_ne!(hash([0u8; 32]), hash([1u8; 32]));
        assert_ne!(hash(1u64), hash(2u64));
        // Every byte of a content hash counts, not only the first word.
        for i in 0..32 {
            let mut key = [0u8; 32];
            key[i] = 1;
            assert_ne!(hash(key), hash([0u8; 32]), "byte {i}");
        }
    }
}
