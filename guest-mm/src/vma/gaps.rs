//! The free ranges of an address space (the gaps between VMAs), indexed so
//! that placement costs O(log n) whatever the number of VMAs.
//!
//! # Design
//!
//! Linux keeps, in every node of its VMA tree, the largest gap below that
//! subtree (`rb_subtree_gap` in the augmented rbtree, the gap fields of the
//! maple tree) and descends towards the highest gap that is large enough.
//! Here the gaps live in a tree of their own, beside the `BTreeMap` of
//! VMAs in [`super::VmaTree`]: the maximal free ranges of the whole 64-bit
//! space, disjoint and never adjacent, in a treap keyed by start (random
//! priorities, so expected depth O(log n) whatever the order of
//! operations; nodes in one `Vec`, children by index). The priority
//! generator is seeded per index from the process's random hasher keys, so
//! a guest that knows this code still cannot choose an order of mmaps and
//! munmaps that degenerates the treap. The VMA map is
//! untouched by this, so lookups, range walks and in-place VMA edits keep
//! their code; the two structures change together only in
//! [`super::VmaTree::insert`] (a range is taken) and
//! [`super::VmaTree::remove_range`] (a range is given back). Splitting and
//! merging VMAs never changes the free space, so they do not touch it.
//!
//! Each node keeps, for each tracked alignment `A` (1 byte, 2 MiB, 1 GiB),
//! the most room any range of its subtree offers to an `A`-aligned
//! mapping: `max(end - align_up(start, A))`. A range `[a, b)` holds an
//! `A`-aligned mapping of `len` bytes exactly when `b - align_up(a, A) >=
//! len`, so this maximum answers "is there a fit below this node" exactly,
//! not only "is there a gap of `len + A - 1` bytes" as Linux asks (Linux may
//! fail an aligned request that would fit; this index does not).
//!
//! # Cost
//!
//! - taking or giving back a range: O(log n) (one or two in-place updates,
//!   or one insert or remove, each along one root path);
//! - [`FreeRanges::find_top_down`]: O(log n) for alignments up to 4 KiB,
//!   2 MiB and 1 GiB (the ranges are page-aligned, so 1-byte room is 4 KiB
//!   room). Other alignments prune with the largest tracked alignment below
//!   them, a necessary condition: still exact, but a search may visit
//!   ranges that have the room but not at that alignment.
//!
//! # What it does not do
//!
//! It does not know VMAs: it trusts its caller to take only free ranges and
//! give back only used ones (both are handled, by clipping, if not).

use std::hash::BuildHasher;

use crate::addr::PAGE_SIZE;

const NIL: u32 = u32::MAX;
/// Alignment shifts whose room every node keeps: 1 byte, 2 MiB, 1 GiB.
const TRACKED: [u32; 3] = [0, 21, 30];
/// End of the space the index covers: the highest page-aligned address
/// (a VMA's exclusive end can be no higher).
pub(crate) const SPACE_END: u64 = !(PAGE_SIZE - 1);

#[derive(Clone, Debug)]
struct Node {
    start: u64,
    end: u64,
    prio: u32,
    left: u32,
    right: u32,
    /// For each tracked alignment, the subtree's largest room.
    room: [u64; TRACKED.len()],
}

/// `end - align_up(start, 1 << shift)`, or 0 when nothing aligned fits.
fn room_of(start: u64, end: u64, shift: u32) -> u64 {
    let mask = (1u64 << shift) - 1;
    match start.checked_add(mask) {
        Some(s) => end.saturating_sub(s & !mask),
        None => 0,
    }
}

/// A top-down search: `len` bytes, `align`-aligned, inside `[lo, hi)`.
struct Query {
    len: u64,
    align: u64,
    lo: u64,
    hi: u64,
    /// The tracked alignment used for pruning.
    k: usize,
}

/// The maximal free ranges of one address space.
#[derive(Clone, Debug)]
pub(crate) struct FreeRanges {
    nodes: Vec<Node>,
    /// Slots of removed nodes, reused first.
    spare: Vec<u32>,
    root: u32,
    len: usize,
    /// Priority generator state (xorshift64).
    seed: u64,
}

impl Default for FreeRanges {
    /// The whole space free.
    fn default() -> Self {
        // Any non-zero seed works for xorshift; this one is unpredictable.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x2545_f491_4f6c_dd1d_u64) | 1;
        let mut f = FreeRanges { nodes: Vec::new(), spare: Vec::new(), root: NIL, len: 0, seed };
        f.insert(0, SPACE_END);
        f
    }
}

impl FreeRanges {
    /// Number of free ranges.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The free ranges in address order.
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::with_capacity(self.len);
        let mut stack = Vec::new();
        let mut t = self.root;
        while t != NIL || !stack.is_empty() {
            while t != NIL {
                stack.push(t);
                t = self.nodes[t as usize].left;
            }
            if let Some(n) = stack.pop() {
                let node = &self.nodes[n as usize];
                out.push((node.start, node.end));
                t = node.right;
            }
        }
        out
    }

    /// Marks `[s, e)` used: trims or removes the free ranges it overlaps.
    pub(crate) fn take(&mut self, s: u64, e: u64) {
        if s >= e {
            return;
        }
        loop {
            let c = match self.floor(s) {
                Some(c) if self.node(c).end > s => c,
                _ => match self.ceil(s) {
                    Some(c) if self.node(c).start < e => c,
                    _ => return,
                },
            };
            let (a, b) = (self.node(c).start, self.node(c).end);
            match (a < s, b > e) {
                (true, true) => {
                    self.set(a, a, s);
                    self.insert(e, b);
                    return;
                }
                (true, false) => self.set(a, a, s),
                (false, true) => {
                    self.set(a, e, b);
                    return;
                }
                (false, false) => self.remove(a),
            }
        }
    }

    /// Marks `[s, e)` free, coalescing with the free ranges it touches.
    pub(crate) fn give(&mut self, s: u64, e: u64) {
        let e = e.min(SPACE_END);
        if s >= e {
            return;
        }
        // The range that ends at or after `s` and starts at or before it
        // absorbs the rest; any range starting in `(s, e]` merges in.
        let keep = self.floor(s).filter(|&c| self.node(c).end >= s);
        let mut hi = e;
        let mut from = s;
        if let Some(k) = keep {
            hi = hi.max(self.node(k).end);
            from = self.node(k).start.saturating_add(1);
        }
        while let Some(c) = self.ceil(from) {
            let (a, b) = (self.node(c).start, self.node(c).end);
            if a > hi {
                break;
            }
            hi = hi.max(b);
            self.remove(a);
        }
        match keep {
            Some(k) => {
                let a = self.node(k).start;
                self.set(a, a, hi);
            }
            None => self.insert(s, hi),
        }
    }

    /// Highest `align`-aligned start of a free `len`-byte range inside
    /// `[lo, hi)`; `align` must be a power of two.
    pub(crate) fn find_top_down(&self, len: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
        if len == 0 || hi <= lo || hi - lo < len || !align.is_power_of_two() {
            return None;
        }
        let shift = align.trailing_zeros();
        let k = TRACKED.iter().rposition(|&t| t <= shift).unwrap_or(0);
        self.search(self.root, 0, u64::MAX, &Query { len, align, lo, hi, k })
    }

    /// Search of subtree `t`, whose ranges all lie inside `[blo, bhi)`:
    /// right subtree first, then the node, then the left subtree.
    fn search(&self, t: u32, blo: u64, bhi: u64, q: &Query) -> Option<u64> {
        if t == NIL || bhi <= q.lo || blo >= q.hi {
            return None;
        }
        let n = self.node(t);
        // Clipping to the window only shrinks room, so this prunes
        // subtrees that straddle the window's ends soundly too.
        if n.room[q.k] < q.len {
            return None;
        }
        if let Some(s) = self.search(n.right, n.end, bhi, q) {
            return Some(s);
        }
        let (a, b) = (n.start.max(q.lo), n.end.min(q.hi));
        if b > a && b - a >= q.len {
            let s = (b - q.len) & !(q.align - 1);
            if s >= a {
                return Some(s);
            }
        }
        self.search(n.left, blo, n.start, q)
    }

    fn node(&self, t: u32) -> &Node {
        &self.nodes[t as usize]
    }

    /// Recomputes `t`'s room from itself and its children.
    fn pull(&mut self, t: u32) {
        let (l, r) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
        let n = &self.nodes[t as usize];
        let mut room = TRACKED.map(|s| room_of(n.start, n.end, s));
        for c in [l, r] {
            if c != NIL {
                for (x, y) in room.iter_mut().zip(self.nodes[c as usize].room) {
                    *x = (*x).max(y);
                }
            }
        }
        self.nodes[t as usize].room = room;
    }

    /// The range with the greatest start `<= key`.
    fn floor(&self, key: u64) -> Option<u32> {
        let (mut t, mut best) = (self.root, None);
        while t != NIL {
            let n = self.node(t);
            if n.start <= key {
                best = Some(t);
                t = n.right;
            } else {
                t = n.left;
            }
        }
        best
    }

    /// The range with the least start `>= key`.
    fn ceil(&self, key: u64) -> Option<u32> {
        let (mut t, mut best) = (self.root, None);
        while t != NIL {
            let n = self.node(t);
            if n.start >= key {
                best = Some(t);
                t = n.left;
            } else {
                t = n.right;
            }
        }
        best
    }

    /// Gives the range starting at `key` new bounds that keep the order.
    fn set(&mut self, key: u64, start: u64, end: u64) {
        let root = self.root;
        self.set_in(root, key, start, end);
    }

    fn set_in(&mut self, t: u32, key: u64, start: u64, end: u64) {
        if t == NIL {
            return;
        }
        let n = &self.nodes[t as usize];
        if key == n.start {
            let n = &mut self.nodes[t as usize];
            n.start = start;
            n.end = end;
        } else if key < n.start {
            self.set_in(n.left, key, start, end);
        } else {
            self.set_in(n.right, key, start, end);
        }
        self.pull(t);
    }

    fn insert(&mut self, start: u64, end: u64) {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let node = Node { start, end, prio: (self.seed >> 32) as u32, left: NIL, right: NIL, room: [0; TRACKED.len()] };
        let t = match self.spare.pop() {
            Some(t) => {
                self.nodes[t as usize] = node;
                t
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.pull(t);
        let (l, r) = self.split(self.root, start);
        let lt = self.merge(l, t);
        self.root = self.merge(lt, r);
        self.len += 1;
    }

    fn remove(&mut self, start: u64) {
        let (l, r) = self.split(self.root, start);
        let (m, r) = self.split(r, start.saturating_add(1));
        if m != NIL {
            self.spare.push(m);
            self.len -= 1;
        }
        self.root = self.merge(l, r);
    }

    /// Splits `t` into the ranges starting below `key` and the rest.
    fn split(&mut self, t: u32, key: u64) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.nodes[t as usize].start < key {
            let (l, r) = self.split(self.nodes[t as usize].right, key);
            self.nodes[t as usize].right = l;
            self.pull(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.nodes[t as usize].left, key);
            self.nodes[t as usize].left = r;
            self.pull(t);
            (l, t)
        }
    }

    /// Joins two treaps, every range of `a` below every range of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio > self.nodes[b as usize].prio {
            let m = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = m;
            self.pull(a);
            a
        } else {
            let m = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = m;
            self.pull(b);
            b
        }
    }

    /// Checks every invariant: ranges ordered, disjoint, not adjacent and
    /// non-empty; heap order of priorities; every room recomputed from
    /// scratch; the count. Returns the first violation.
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut count = 0;
        self.check_in(self.root, u32::MAX, &mut count)?;
        if count != self.len {
            return Err(format!("{count} nodes reachable, len {}", self.len));
        }
        let r = self.ranges();
        for w in r.windows(2) {
            if w[0].1 >= w[1].0 {
                return Err(format!("ranges {:#x?} and {:#x?} touch or overlap", w[0], w[1]));
            }
        }
        if let Some(bad) = r.iter().find(|(s, e)| s >= e || *e > SPACE_END) {
            return Err(format!("bad range {bad:#x?}"));
        }
        Ok(())
    }

    /// Depth of the treap (0 when empty).
    #[cfg(test)]
    pub(crate) fn depth(&self) -> usize {
        fn d(f: &FreeRanges, t: u32) -> usize {
            if t == NIL {
                return 0;
            }
            let n = f.node(t);
            1 + d(f, n.left).max(d(f, n.right))
        }
        d(self, self.root)
    }

    /// Checks subtree `t`; returns its recomputed room.
    #[cfg(test)]
    fn check_in(&self, t: u32, parent_prio: u32, count: &mut usize) -> Result<[u64; TRACKED.len()], String> {
        if t == NIL {
            return Ok([0; TRACKED.len()]);
        }
        *count += 1;
        let n = self.node(t);
        if n.prio > parent_prio {
            return Err(format!("heap order broken at {:#x}", n.start));
        }
        let l = self.check_in(n.left, n.prio, count)?;
        let r = self.check_in(n.right, n.prio, count)?;
        if n.left != NIL && self.node(n.left).start >= n.start {
            return Err(format!("left child out of order at {:#x}", n.start));
        }
        if n.right != NIL && self.node(n.right).start <= n.start {
            return Err(format!("right child out of order at {:#x}", n.start));
        }
        let mut room = TRACKED.map(|s| room_of(n.start, n.end, s));
        for (i, x) in room.iter_mut().enumerate() {
            *x = (*x).max(l[i]).max(r[i]);
        }
        if room != n.room {
            return Err(format!("room at {:#x}: kept {:#x?}, recomputed {:#x?}", n.start, n.room, room));
        }
        Ok(room)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;
    const M2: u64 = 2 << 20;

    #[test]
    fn a_small_range_below_a_window_end_is_not_a_fit() {
        // [0x1000, 0x3000) free and a large range above the window: the
        // small one has 0x2000 bytes, so a 0x4000 request finds nothing,
        // whichever of the two the random priorities make the root.
        for _ in 0..64 {
            let mut f = FreeRanges::default();
            f.take(0, 0x1000);
            f.take(0x3000, 0x10000);
            assert_eq!(f.find_top_down(0x4000, 0x1000, 0, 0x10000), None);
            assert_eq!(f.find_top_down(0x2000, 0x1000, 0, 0x10000), Some(0x1000));
        }
    }

    #[test]
    fn priorities_keep_the_treap_shallow() {
        // 10,000 ranges made in address order (the worst order for a
        // search tree without balancing): a treap's expected depth is
        // about 3 ln n (28 here); a chain would be 10,000 deep.
        let mut f = FreeRanges::default();
        for i in 0..10_000u64 {
            f.take(i * 0x2000 + 0x1000, i * 0x2000 + 0x2000);
        }
        assert_eq!(f.len(), 10_001);
        assert!(f.depth() <= 80, "depth {}", f.depth());
        f.check().unwrap();
    }

    #[test]
    fn a_window_exactly_the_size_asked_for_fits() {
        let mut f = FreeRanges::default();
        assert_eq!(f.find_top_down(0x1000, 0x1000, 0x5000, 0x6000), Some(0x5000));
        assert_eq!(f.find_top_down(0x2000, 0x1000, 0x5000, 0x6000), None);
        f.take(0x5000, 0x6000);
        assert_eq!(f.find_top_down(0x1000, 0x1000, 0x5000, 0x6000), None);
        assert_eq!(f.find_top_down(0x1000, 0x1000, 0x4000, 0x7000), Some(0x6000));
    }

    #[test]
    fn taking_what_is_partly_taken_clips() {
        // The caller should take only free ranges; if it does not, only
        // the free parts change (and nothing loops).
        let mut f = FreeRanges::default();
        f.take(0x3000, 0x5000);
        f.take(0x1000, 0x4000);
        assert_eq!(f.ranges(), vec![(0, 0x1000), (0x5000, SPACE_END)]);
        // Starting exactly where a free range ends, in used space.
        f.take(0x1000, 0x6000);
        assert_eq!(f.ranges(), vec![(0, 0x1000), (0x6000, SPACE_END)]);
        // Entirely inside used space: nothing changes.
        f.take(0x2000, 0x3000);
        assert_eq!(f.ranges(), vec![(0, 0x1000), (0x6000, SPACE_END)]);
        f.check().unwrap();
    }

    #[test]
    fn room_is_what_an_aligned_mapping_gets() {
        // Already aligned: all of it.
        assert_eq!(room_of(2 * M2, 4 * M2, 21), 2 * M2);
        // Rounded up to the next 2 MiB, or 1 GiB.
        assert_eq!(room_of(0x1000, 3 * M2, 21), 2 * M2);
        assert_eq!(room_of(G + 0x1000, 3 * G, 30), G);
        assert_eq!(room_of(0x1000, 0x3000, 0), 0x2000);
        // Nothing aligned inside; rounding past the end of the space.
        assert_eq!(room_of(0x1000, M2, 21), 0);
        assert_eq!(room_of(u64::MAX - 0x1000, u64::MAX, 21), 0);
    }

    #[test]
    fn starts_whole_and_takes_and_gives_back() {
        // The whole space up to the highest page-aligned address.
        assert_eq!(SPACE_END, 0xffff_ffff_ffff_f000);
        let mut f = FreeRanges::default();
        assert_eq!(f.ranges(), vec![(0, SPACE_END)]);
        f.take(0x1000, 0x3000);
        assert_eq!(f.ranges(), vec![(0, 0x1000), (0x3000, SPACE_END)]);
        f.take(0, 0x1000);
        f.take(0x3000, 0x4000);
        assert_eq!(f.ranges(), vec![(0x4000, SPACE_END)]);
        f.give(0x1000, 0x2000);
        assert_eq!(f.ranges(), vec![(0x1000, 0x2000), (0x4000, SPACE_END)]);
        // Giving back joins both neighbours.
        f.give(0x2000, 0x4000);
        assert_eq!(f.ranges(), vec![(0x1000, SPACE_END)]);
        f.check().unwrap();
        // Taking across several ranges (a caller bug) clips them all.
        f.take(0x5000, 0x6000);
        f.take(0x7000, 0x8000);
        f.take(0x1000, 0x9000);
        assert_eq!(f.ranges(), vec![(0x9000, SPACE_END)]);
        f.check().unwrap();
    }

    #[test]
    fn aligned_search_is_exact() {
        let mut f = FreeRanges::default();
        f.take(0, SPACE_END);
        assert_eq!(f.len(), 0);
        assert_eq!(f.find_top_down(0x1000, 0x1000, 0, u64::MAX), None);
        // A 3 MiB gap at 1 MiB past a 2 MiB boundary: a 2 MiB-aligned
        // 2 MiB mapping fits exactly once (Linux's len + align - 1 test
        // would refuse it).
        f.give(G + (1 << 20), G + (4 << 20));
        // A higher 2 MiB gap that is not 2 MiB aligned.
        f.give(4 * G + 0x1000, 4 * G + 0x1000 + M2);
        assert_eq!(f.find_top_down(M2, M2, 0, u64::MAX), Some(G + M2));
        assert_eq!(f.find_top_down(M2, 0x1000, 0, u64::MAX), Some(4 * G + 0x1000));
        assert_eq!(f.find_top_down(M2 + 0x1000, 0x1000, 0, u64::MAX), Some(G + M2 - 0x1000));
        assert_eq!(f.find_top_down(4 << 20, 0x1000, 0, u64::MAX), None);
        assert_eq!(f.find_top_down(0x1000, G, 0, u64::MAX), None);
        // 64 KiB (untracked): exact too.
        assert_eq!(f.find_top_down(0x10000, 0x10000, 0, u64::MAX), Some(4 * G + M2 - 0x10000));
        // The window clips.
        assert_eq!(f.find_top_down(0x1000, 0x1000, 0, G + M2), Some(G + M2 - 0x1000));
        assert_eq!(f.find_top_down(M2, M2, G + M2 + 1, u64::MAX), None);
        // A 1 GiB-aligned gigabyte.
        f.give(7 * G - 0x1000, 9 * G);
        assert_eq!(f.find_top_down(G, G, 0, u64::MAX), Some(8 * G));
        assert_eq!(f.find_top_down(G, G, 0, 9 * G - 1), Some(7 * G));
        assert_eq!(f.find_top_down(0x1000, 3, 0, u64::MAX), None, "not a power of two");
        f.check().unwrap();
    }
}
