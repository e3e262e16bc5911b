//! Sorted sets of resource ids packed into one buffer: what search evaluates clauses to, so a
//! query over millions of hits holds ids (about 20 bytes each) instead of resource handles,
//! and resolves versions only for the page it serves.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Distinct resource ids in byte order, stored back to back with their end offsets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IdList {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl std::fmt::Debug for IdList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl IdList {
    /// The empty list.
    pub fn new() -> Self {
        IdList::default()
    }

    /// A list from ids already in ascending order (duplicates next to each other are dropped).
    pub fn from_sorted<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut b = IdListBuilder::default();
        for id in ids {
            b.push_sorted(id);
        }
        b.bytes_sorted()
    }

    /// A list of any ids in any order.
    pub fn from_unsorted<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut b = IdListBuilder::default();
        for id in ids {
            b.push(id);
        }
        b.finish()
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`-th id.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        // Only whole `&str`s are pushed, so every slice between ends is valid UTF-8.
        std::str::from_utf8(&self.bytes[start..self.ends[i] as usize]).unwrap_or_default()
    }

    /// The ids in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + DoubleEndedIterator + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Whether `id` is in the list.
    pub fn contains(&self, id: &str) -> bool {
        self.position(id).is_ok()
    }

    fn position(&self, id: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).cmp(id) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Ids in both lists.
    pub fn intersect(&self, other: &IdList) -> IdList {
        let (small, large) = if self.len() <= other.len() {
            (self, other)
        } else {
            (other, self)
        };
        // A much smaller side is cheaper by binary search than by walking both.
        if small.len() * 16 < large.len() {
            return IdList::from_sorted(small.iter().filter(|id| large.contains(id)));
        }
        let mut out = IdListBuilder::default();
        let (mut a, mut b) = (self.iter().peekable(), other.iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            match x.cmp(y) {
                Ordering::Less => {
                    a.next();
                }
                Ordering::Greater => {
                    b.next();
                }
                Ordering::Equal => {
                    out.push_sorted(x);
                    a.next();
                    b.next();
                }
            }
        }
        out.bytes_sorted()
    }

    /// Ids of this list that are not in `other`.
    pub fn difference(&self, other: &IdList) -> IdList {
        IdList::from_sorted(self.iter().filter(|id| !other.contains(id)))
    }

    /// Ids in either list.
    pub fn union(&self, other: &IdList) -> IdList {
        let mut out = IdListBuilder::default();
        let (mut a, mut b) = (self.iter().peekable(), other.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x <= y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            if let Some(id) = next {
                out.push_sorted(id);
            }
        }
        out.bytes_sorted()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4
    }
}

/// Collects ids in any order into an [`IdList`].
#[derive(Default)]
pub struct IdListBuilder {
    bytes: Vec<u8>,
    ends: Vec<u32>,
    /// Index (into `ends`) of the first id of each ascending run after the first: a union of
    /// scans pushes one sorted run per scan, which [`IdListBuilder::finish`] merges.
    runs: Vec<usize>,
    started: bool,
}

/// Runs up to this many are merged; more are sorted.
const MAX_MERGED_RUNS: usize = 256;

impl IdListBuilder {
    /// Adds an id.
    pub fn push(&mut self, id: &str) {
        if !self.started {
            self.started = true;
        } else {
            match self.last().cmp(id.as_bytes()) {
                Ordering::Less => {}
                Ordering::Equal => return,
                // Beyond the runs that are merged, their starts are not needed.
                Ordering::Greater if self.runs.len() < MAX_MERGED_RUNS => {
                    self.runs.push(self.ends.len())
                }
                Ordering::Greater => {}
            }
        }
        self.bytes.extend_from_slice(id.as_bytes());
        self.ends.push(self.bytes.len() as u32);
    }

    /// Adds an id known to be at least the previous one (equal ones are dropped).
    fn push_sorted(&mut self, id: &str) {
        if self.started && self.last() == id.as_bytes() {
            return;
        }
        self.started = true;
        self.bytes.extend_from_slice(id.as_bytes());
        self.ends.push(self.bytes.len() as u32);
    }

    /// Whether the last id pushed equals `id`.
    pub fn last_is(&self, id: &str) -> bool {
        self.started && self.last() == id.as_bytes()
    }

    fn last(&self) -> &[u8] {
        let n = self.ends.len();
        let start = if n < 2 { 0 } else { self.ends[n - 2] as usize };
        &self.bytes[start..]
    }

    /// Merges the ascending runs (a k-way merge: much cheaper than sorting for few runs).
    fn merge_runs(self) -> IdList {
        let list = IdList {
            bytes: self.bytes,
            ends: self.ends,
        };
        let mut bounds = vec![0];
        bounds.extend_from_slice(&self.runs);
        bounds.push(list.len());
        let mut heap: BinaryHeap<Reverse<(&str, usize, usize)>> = bounds
            .windows(2)
            .filter(|w| w[0] < w[1])
            .map(|w| Reverse((list.get(w[0]), w[0], w[1])))
            .collect();
        let mut out = IdListBuilder {
            bytes: Vec::with_capacity(list.bytes.len()),
            ends: Vec::with_capacity(list.len()),
            ..IdListBuilder::default()
        };
        while let Some(Reverse((id, i, end))) = heap.pop() {
            out.push_sorted(id);
            if i + 1 < end {
                heap.push(Reverse((list.get(i + 1), i + 1, end)));
            }
        }
        out.bytes_sorted()
    }

    fn bytes_sorted(self) -> IdList {
        IdList {
            bytes: self.bytes,
            ends: self.ends,
        }
    }

    /// The sorted, distinct list.
    pub fn finish(self) -> IdList {
        if self.runs.is_empty() {
            return self.bytes_sorted();
        }
        if self.runs.len() < MAX_MERGED_RUNS {
            return self.merge_runs();
        }
        // Sorted by the first sixteen bytes as a number first (one comparison decides all
        // server-assigned ids, which share long time prefixes; ids hold no NUL bytes, so zero
        // padding keeps byte order), then by the whole id.
        let bytes = &self.bytes;
        let mut spans: Vec<(u128, u32, u32)> = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &e in &self.ends {
            let id = &bytes[start as usize..e as usize];
            let mut head = [0u8; 16];
            let n = id.len().min(16);
            head[..n].copy_from_slice(&id[..n]);
            spans.push((u128::from_be_bytes(head), start, e));
            start = e;
        }
        let slice = |&(_, s, e): &(u128, u32, u32)| &bytes[s as usize..e as usize];
        spans.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| slice(a).cmp(slice(b))));
        let mut out = IdListBuilder {
            bytes: Vec::with_capacity(bytes.len()),
            ends: Vec::with_capacity(spans.len()),
            ..IdListBuilder::default()
        };
        for s in &spans {
            // Spans are whole `&str`s.
            out.push_sorted(std::str::from_utf8(slice(s)).unwrap_or_default());
        }
        out.bytes_sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(l: &IdList) -> Vec<&str> {
        l.iter().collect()
    }

    #[test]
    fn builds_sorted_distinct_lists_from_any_order() {
        let l = IdList::from_unsorted(["c", "a", "b", "a", "c", "aa"]);
        assert_eq!(ids(&l), ["a", "aa", "b", "c"]);
        assert_eq!(l.len(), 4);
        assert!(l.contains("aa") && !l.contains("d") && !l.contains(""));
        let s = IdList::from_sorted(["a", "a", "b"]);
        assert_eq!(ids(&s), ["a", "b"]);
        assert!(IdList::from_unsorted([]).is_empty());
        // Few runs are merged, many are sorted: both give the same list.
        let few: Vec<String> = (0..3)
            .flat_map(|r| (0..50).map(move |i| format!("{:03}", i * 3 + r)))
            .collect();
        let want: Vec<String> = (0..150).map(|i| format!("{i:03}")).collect();
        assert_eq!(
            ids(&IdList::from_unsorted(few.iter().map(String::as_str))),
            want
        );
        let many: Vec<String> = (0..600).rev().map(|i| format!("{i:03}")).collect();
        let l = IdList::from_unsorted(many.iter().map(String::as_str));
        assert_eq!(l.len(), 600);
        assert!(l.iter().zip(l.iter().skip(1)).all(|(a, b)| a < b));
    }

    #[test]
    fn set_operations() {
        let a = IdList::from_unsorted(["1", "2", "3", "5", "8"]);
        let b = IdList::from_unsorted(["2", "3", "4", "8", "9"]);
        assert_eq!(ids(&a.intersect(&b)), ["2", "3", "8"]);
        assert_eq!(ids(&a.union(&b)), ["1", "2", "3", "4", "5", "8", "9"]);
        assert_eq!(ids(&a.difference(&b)), ["1", "5"]);
        // The binary-search path of a small side against a large one.
        let big = IdList::from_unsorted(
            (0..1000)
                .map(|i| format!("{i:04}"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        );
        let small = IdList::from_unsorted(["0007", "0500", "x"]);
        assert_eq!(ids(&small.intersect(&big)), ["0007", "0500"]);
        assert_eq!(ids(&big.intersect(&small)), ["0007", "0500"]);
    }
}
