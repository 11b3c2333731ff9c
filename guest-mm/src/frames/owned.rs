//! Which pool frames an owner ([`crate::frames::PoolPages`]) holds: a
//! sparse bitmap, one 512-byte chunk per 16 MiB of guest-physical space
//! that holds at least one owned frame.
//!
//! Host memory grows with the frames owned (at most one bit each, plus a
//! chunk's map entry), never with the size of the pool: a pool over
//! 64 GiB of guest RAM that nobody allocated from costs nothing here.
//! This module does not know which frames are pool frames; the pool does.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::addr::Pfn;

/// Frames per chunk.
const CHUNK_FRAMES: u64 = 4096;
/// `u64` words per chunk.
const WORDS: usize = (CHUNK_FRAMES / 64) as usize;

/// One chunk's bits and how many are set (a chunk with none is dropped).
#[derive(Clone, Debug)]
struct Chunk {
    bits: Box<[u64; WORDS]>,
    set: u32,
}

/// A set of frame numbers, stored as chunks of bits.
#[derive(Clone, Debug, Default)]
pub(crate) struct OwnedSet {
    chunks: BTreeMap<u64, Chunk>,
    len: u64,
}

/// Chunk key, word index and bit mask of `pfn`.
fn place(pfn: Pfn) -> (u64, usize, u64) {
    let key = pfn.0 / CHUNK_FRAMES;
    let bit = pfn.0 % CHUNK_FRAMES;
    (key, (bit / 64) as usize, 1u64 << (bit % 64))
}

impl OwnedSet {
    /// Adds `pfn`; false if it was already in.
    pub(crate) fn insert(&mut self, pfn: Pfn) -> bool {
        let (key, word, mask) = place(pfn);
        let chunk = self.chunks.entry(key).or_insert_with(|| Chunk { bits: Box::new([0; WORDS]), set: 0 });
        if chunk.bits[word] & mask != 0 {
            return false;
        }
        chunk.bits[word] |= mask;
        chunk.set += 1;
        self.len += 1;
        true
    }

    /// Removes `pfn`; false if it was not in.
    pub(crate) fn remove(&mut self, pfn: Pfn) -> bool {
        let (key, word, mask) = place(pfn);
        let Some(chunk) = self.chunks.get_mut(&key) else { return false };
        if chunk.bits[word] & mask == 0 {
            return false;
        }
        chunk.bits[word] &= !mask;
        chunk.set -= 1;
        if chunk.set == 0 {
            self.chunks.remove(&key);
        }
        self.len -= 1;
        true
    }

    /// Is `pfn` in?
    pub(crate) fn contains(&self, pfn: Pfn) -> bool {
        let (key, word, mask) = place(pfn);
        self.chunks.get(&key).is_some_and(|c| c.bits[word] & mask != 0)
    }

    /// Frames in the set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The frames of `range` in the set, ascending. Costs the chunks that
    /// overlap the range and hold something, not the range's length.
    pub(crate) fn in_range(&self, range: Range<u64>) -> Vec<Pfn> {
        let mut out = Vec::new();
        if range.start >= range.end {
            return out;
        }
        let keys = range.start / CHUNK_FRAMES..=(range.end - 1) / CHUNK_FRAMES;
        for (&key, chunk) in self.chunks.range(keys) {
            for (w, &bits) in chunk.bits.iter().enumerate() {
                let mut b = bits;
                while b != 0 {
                    let pfn = key * CHUNK_FRAMES + w as u64 * 64 + u64::from(b.trailing_zeros());
                    b &= b - 1;
                    if range.contains(&pfn) {
                        out.push(Pfn(pfn));
                    }
                }
            }
        }
        out
    }

    /// Host bytes the set holds (its chunks, roughly counting a map
    /// entry's overhead as one more word per chunk).
    pub(crate) fn host_bytes(&self) -> usize {
        let per_chunk = std::mem::size_of::<[u64; WORDS]>() + std::mem::size_of::<(u64, Chunk)>() + 8;
        std::mem::size_of::<Self>() + self.chunks.len() * per_chunk
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_contains_and_empty_chunks_go() {
        let mut s = OwnedSet::default();
        let far = Pfn((64 << 30) / 4096 - 1);
        assert!(s.insert(Pfn(5)) && s.insert(far) && s.insert(Pfn(4096)));
        assert!(!s.insert(Pfn(5)), "inserted twice");
        assert_eq!(s.len(), 3);
        assert!(s.contains(Pfn(5)) && s.contains(far) && !s.contains(Pfn(6)));
        assert_eq!(s.chunks.len(), 3);
        assert_eq!(s.in_range(0..4097), vec![Pfn(5), Pfn(4096)]);
        assert_eq!(s.in_range(6..far.0), vec![Pfn(4096)]);
        assert_eq!(s.in_range(far.0..far.0 + 1), vec![far]);
        assert!(s.in_range(7..7).is_empty());
        assert!(s.remove(Pfn(4096)) && !s.remove(Pfn(4096)) && !s.remove(Pfn(1 << 30)));
        assert_eq!((s.len(), s.chunks.len()), (2, 2));
        assert!(s.remove(Pfn(5)) && s.remove(far));
        assert_eq!((s.len(), s.chunks.len()), (0, 0));
        assert_eq!(s.host_bytes(), std::mem::size_of::<OwnedSet>());
    }
}
