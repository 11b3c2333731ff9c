//! The model world: a real address space and the page-by-page model of
//! what it should hold, compared after every step.

use std::collections::{BTreeMap, BTreeSet};

use guest_mm::providers::{GuestRamProvider, HugePageProvider, PageBuffer, ZeroProvider};
use guest_mm::{errno, AddressSpace, CacheMode, MmapProvider, MmapRequest, PageSize, VmFlags, PAGE_SIZE};
use vm_memory::GuestAddress;

use super::ops::{access, Kind, Op};
use super::providers::{array_frame, BadArray, Discontig, Io, Nothing, Partial};
use super::{BUFFER_PAGES, IO_PHYS, IO_SIZE, L, WIN_PAGES};
use crate::census::census;
use crate::fixture::{space, va, Mem};
use crate::frame_guarantee::assert_mapped_frames_kept;
use crate::walk::{leaves, NX, RW, US};

/// What the model knows about one mapped page.
#[derive(Clone, Debug, PartialEq)]
struct MPage {
    pfn: Option<u64>,
    access: VmFlags,
    cache: CacheMode,
    counted: bool,
    zero: bool,
    seg: u64,
    /// The mmap call that made the page (kept across mprotect splits).
    origin: u64,
    provider: &'static str,
    special: bool,
    shared: bool,
    pgoff: u64,
}

/// An address space, its providers, and the model of what it holds.
pub struct World {
    space: AddressSpace<Mem>,
    ram: GuestRamProvider,
    zero: ZeroProvider<Mem>,
    buffer: PageBuffer,
    huge: HugePageProvider,
    model: BTreeMap<u64, MPage>,
    next_seg: u64,
    /// Pages of each zero mapping, by origin.
    zero_sizes: BTreeMap<u64, u64>,
    pool_total: usize,
    start_tables: usize,
}

impl World {
    /// An empty address space and model.
    #[allow(clippy::new_without_default)]
    pub fn new() -> World {
        let space = space(&L);
        let pool_total = space.stats().pool_free;
        let start_tables = space.stats().tables_in_use;
        let ram = GuestRamProvider::new(
            space.layout(),
            &[(GuestAddress(L.pool.0), L.pool.1), (GuestAddress(L.huge.0), L.huge.1)],
        );
        let zero = ZeroProvider::new(space.frames().clone(), space.memory().clone());
        let buffer = PageBuffer::new(space.frames(), BUFFER_PAGES).expect("buffer");
        let huge = HugePageProvider::new(GuestAddress(L.huge.0), L.huge.1, PageSize::Size2M).expect("huge");
        World {
            space,
            ram,
            zero,
            buffer,
            huge,
            model: BTreeMap::new(),
            next_seg: 1,
            zero_sizes: BTreeMap::new(),
            pool_total,
            start_tables,
        }
    }

    fn model_free(&self, start: u64, pages: u64) -> bool {
        self.model.range(start..start + pages * PAGE_SIZE).next().is_none()
    }

    /// Where a non-fixed mapping of `pages` goes: the highest
    /// `align`-aligned free range in the window (top-down placement).
    fn model_top_gap(&self, pages: u64, align: u64) -> Option<u64> {
        let len = pages * PAGE_SIZE;
        // The free runs from the top down: each ends at a mapped page (or
        // the window's end) and starts after the mapped page below it (or at
        // the window's start, which is aligned to any alignment used here).
        let mut end = L.window.1;
        for &a in self.model.keys().rev().chain(std::iter::once(&(L.window.0 - PAGE_SIZE))) {
            let start = a + PAGE_SIZE;
            if end >= start + len {
                let s = (end - len) / align * align;
                if s >= start {
                    return Some(s);
                }
            }
            end = a;
        }
        None
    }

    /// Whether a cut at `start` or `end` falls inside a huge-page mapping
    /// off its 2 MiB pages (hugetlbfs refuses such a split: `EINVAL`).
    /// Huge-page VMAs only ever begin and end on 2 MiB boundaries, so two
    /// huge pages either side of a misaligned cut are one VMA.
    fn cuts_a_huge_page(&self, start: u64, end: u64) -> bool {
        let huge = |a: u64| self.model.get(&a).is_some_and(|p| p.provider == "huge");
        [start, end].into_iter().any(|c| c % (2 << 20) != 0 && huge(c) && huge(c - PAGE_SIZE))
    }

    /// Pool pages zero mappings hold: a zero mapping's array stays pinned
    /// whole while any piece of its VMA is left (partly unmapped arrays
    /// are not unpinned page by page).
    fn pool_used_by_zero(&self) -> usize {
        let live: BTreeSet<u64> = self.model.values().filter(|p| p.zero).map(|p| p.origin).collect();
        live.iter().map(|o| self.zero_sizes.get(o).copied().unwrap_or(0) as usize).sum()
    }

    /// Runs `op` on the address space and the model; panics when the
    /// result (or errno) differs from what the model expects.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Map { kind, pages, prot, shared, at, pgoff } => self.map(kind, *pages, *prot, *shared, *at, *pgoff),
            Op::Unmap { page, pages } => {
                let start = L.window.0 + page * PAGE_SIZE;
                let r = self.space.munmap(va(start), pages * PAGE_SIZE);
                if self.cuts_a_huge_page(start, start + pages * PAGE_SIZE) {
                    assert_eq!(r.map(|f| f.ignore()).expect_err("huge cut").errno(), errno::EINVAL);
                    return;
                }
                r.expect("munmap").ignore();
                let keys: Vec<u64> = self.model.range(start..start + pages * PAGE_SIZE).map(|(k, _)| *k).collect();
                for k in keys {
                    self.model.remove(&k);
                }
            }
            Op::Protect { page, pages, prot } => {
                let start = L.window.0 + page * PAGE_SIZE;
                let end = start + pages * PAGE_SIZE;
                let r = self.space.mprotect(va(start), pages * PAGE_SIZE, access(*prot));
                let covered = (start..end).step_by(PAGE_SIZE as usize).all(|a| self.model.contains_key(&a));
                if !covered {
                    assert_eq!(r.map(|f| f.ignore()).expect_err("hole").errno(), errno::ENOMEM);
                    return;
                }
                if self.cuts_a_huge_page(start, end) {
                    assert_eq!(r.map(|f| f.ignore()).expect_err("huge cut").errno(), errno::EINVAL);
                    return;
                }
                r.expect("mprotect").ignore();
                let mut remap: BTreeMap<u64, u64> = BTreeMap::new();
                for (_, p) in self.model.range_mut(start..end) {
                    let seg = *remap.entry(p.seg).or_insert_with(|| {
                        self.next_seg += 1;
                        self.next_seg
                    });
                    p.seg = seg;
                    p.access = access(*prot);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn map(&mut self, kind: &Kind, pages: u64, prot: u8, shared: bool, at: Option<(u64, bool)>, pgoff: u64) {
        let acc = access(prot);
        let (pages, pgoff) = match kind {
            Kind::Huge { two } => (if *two { 1024 } else { 512 }, (pgoff % 4) * 512),
            Kind::Ram { pgoff_sel } => (
                pages,
                match pgoff_sel {
                    0 | 1 => 0x200 + pgoff * 8,        // valid RAM
                    2 => L.pool.0 / PAGE_SIZE + pgoff, // the pool: EPERM
                    _ => L.ram / PAGE_SIZE + pgoff,    // past RAM: EINVAL
                },
            ),
            Kind::Buffer => (pages, pgoff * 31),
            Kind::Partial { skip } => (pages.max(skip + 1), 0),
            Kind::Discontig { a, gap } => (pages.max(a + gap + 1), 0),
            _ => (pages, pgoff),
        };
        // Private zero mappings are lazy (pages come at the first touch):
        // this model covers eager mappings, so its zero mappings are shared;
        // tests/mapper/mapper_model_lazy.rs models the lazy ones and their faults.
        let shared = shared || matches!(kind, Kind::Zero);
        let mut req = if shared {
            MmapRequest::shared(pages * PAGE_SIZE, acc)
        } else {
            MmapRequest::private(pages * PAGE_SIZE, acc)
        };
        req = req.pgoff(pgoff);
        if let Some((page, noreplace)) = at {
            let page = page.min(WIN_PAGES - pages.min(WIN_PAGES));
            let a = va(L.window.0 + page * PAGE_SIZE);
            req = if noreplace { req.fixed_noreplace(a) } else { req.fixed(a) };
        }
        let frames = self.space.frames().clone();
        let partial =
            Partial { skip: if let Kind::Partial { skip } = kind { *skip } else { 0 }, frames: frames.clone() };
        let (da, db) = match kind {
            Kind::Discontig { a, gap } => (*a, a + gap),
            _ => (0, 0),
        };
        let discontig = Discontig { a: da, b: db, frames: frames.clone() };
        let bad = BadArray { bad: L.ram / PAGE_SIZE + 5, frames: frames.clone() };
        let reserved = BadArray { bad: L.tables.0 / PAGE_SIZE + 3, frames };
        let provider: &dyn MmapProvider = match kind {
            Kind::Nothing => &Nothing,
            Kind::Ram { .. } => &self.ram,
            Kind::Zero => &self.zero,
            Kind::Buffer => &self.buffer,
            Kind::Huge { .. } => &self.huge,
            Kind::Io => &Io,
            Kind::Partial { .. } => &partial,
            Kind::Discontig { .. } => &discontig,
            Kind::BadFrame => &bad,
            Kind::ReservedFrame => &reserved,
        };
        let result = self.space.mmap(provider, &req);
        self.space.take_deferred_flush().ignore();

        // What the model expects to fail, and with which errno.
        let fixed = at.map(|(p, _)| L.window.0 + p.min(WIN_PAGES - pages.min(WIN_PAGES)) * PAGE_SIZE);
        let align = if matches!(kind, Kind::Huge { .. }) { 2 << 20 } else { PAGE_SIZE };
        let expect_err: Option<i32> = match kind {
            // Placement comes before prepare (as `get_unmapped_area` comes
            // before the driver's mmap): no room beats any provider error.
            _ if at.is_none() && self.model_top_gap(pages, align).is_none() => Some(errno::ENOMEM),
            _ if matches!(at, Some((_, true))) && !self.model_free(fixed.unwrap_or(0), pages) => Some(errno::EEXIST),
            Kind::Huge { .. } if fixed.is_some_and(|f| f % (2 << 20) != 0) => Some(errno::EINVAL),
            Kind::Huge { .. } if pgoff + pages > L.huge.1 / PAGE_SIZE => Some(errno::EINVAL),
            Kind::Ram { pgoff_sel: 2 } => Some(errno::EPERM),
            Kind::Ram { pgoff_sel: 3 } => Some(errno::EINVAL),
            Kind::Buffer if pgoff + pages > BUFFER_PAGES => Some(errno::EINVAL),
            Kind::Io if pgoff + pages > (IO_SIZE + (IO_PHYS & 0xfff)).div_ceil(PAGE_SIZE) => Some(errno::EINVAL),
            Kind::BadFrame => Some(errno::EFAULT),
            Kind::ReservedFrame => Some(errno::EPERM),
            _ => None,
        };
        let mapped = match (result, expect_err) {
            (Err(e), Some(want)) => {
                assert_eq!(e.errno(), want, "{kind:?}: {e}");
                return;
            }
            (Err(e), None) => {
                // Allowed resource failures only.
                let pool_short = matches!(kind, Kind::Zero)
                    && self.pool_total - BUFFER_PAGES as usize - self.pool_used_by_zero() < pages as usize;
                assert!(
                    (e.errno() == errno::ENOMEM && (pool_short || fixed.is_none())),
                    "unexpected failure for {kind:?} ({pages} pages at {fixed:?}): {e}"
                );
                return;
            }
            (Ok(m), Some(want)) => panic!("{kind:?} mapped at {:#x}, expected errno {want}", m.addr.raw()),
            (Ok(m), None) => m,
        };
        mapped.flush.ignore();
        let start = mapped.addr.raw();
        assert!(start >= L.window.0 && start + pages * PAGE_SIZE <= L.window.1, "placed outside the window");
        if let Some(f) = fixed {
            assert_eq!(start, f, "fixed mapping moved");
        } else {
            assert!(self.model_free(start, pages), "placed over an existing mapping");
            assert_eq!(Some(start), self.model_top_gap(pages, align), "not the highest free range (top-down)");
        }
        if matches!(kind, Kind::Huge { .. }) {
            assert_eq!(start % (2 << 20), 0, "huge mapping not huge-aligned");
        }
        // Replace the model's range.
        let keys: Vec<u64> = self.model.range(start..start + pages * PAGE_SIZE).map(|(k, _)| *k).collect();
        for k in keys {
            self.model.remove(&k);
        }
        self.next_seg += 1;
        let seg = self.next_seg;
        if matches!(kind, Kind::Zero) {
            self.zero_sizes.insert(seg, pages);
        }
        let zero_frames: Vec<u64> = if matches!(kind, Kind::Zero) {
            // Read from the leaves: a PROT_NONE page does not translate.
            let leaves = self.space.page_tables().leaves(va(start), pages * PAGE_SIZE);
            assert_eq!(leaves.len() as u64, pages, "every zero page has a leaf");
            leaves.iter().map(|l| (l.raw & 0x000f_ffff_ffff_f000) >> 12).collect()
        } else {
            Vec::new()
        };
        for i in 0..pages {
            let (pfn, cache, counted, special) = match kind {
                Kind::Nothing => (None, CacheMode::WriteBack, false, false),
                Kind::Ram { .. } => (Some(pgoff + i), CacheMode::WriteBack, false, true),
                Kind::Zero => (Some(zero_frames[i as usize]), CacheMode::WriteBack, true, true),
                Kind::Buffer => (Some(self.buffer.pages()[(pgoff + i) as usize].0), CacheMode::WriteBack, true, true),
                Kind::Huge { .. } => (Some(L.huge.0 / PAGE_SIZE + pgoff + i), CacheMode::WriteBack, false, true),
                Kind::Io => (Some((IO_PHYS >> 12) + pgoff + i), CacheMode::Uncached, false, true),
                Kind::Partial { skip } => ((i >= *skip).then(|| array_frame(i)), CacheMode::WriteBack, true, true),
                Kind::Discontig { .. } => {
                    ((i < da || i >= db).then(|| array_frame(i)), CacheMode::WriteBack, true, true)
                }
                Kind::BadFrame | Kind::ReservedFrame => unreachable!(),
            };
            self.model.insert(
                start + i * PAGE_SIZE,
                MPage {
                    pfn,
                    access: acc,
                    cache,
                    counted: counted && pfn.is_some(),
                    zero: matches!(kind, Kind::Zero),
                    seg,
                    origin: seg,
                    provider: provider_name(kind),
                    special,
                    shared,
                    pgoff: pgoff + i,
                },
            );
        }
    }

    /// Every invariant, checked against the model and an independent walk.
    /// Checks every invariant; panics on the first difference.
    pub fn check(&self) {
        // Translations: an independent walk of guest memory finds exactly
        // the pages the model maps (PROT_NONE pages keep their frame in a
        // not-present entry, so they are absent), with the model's frame and
        // rights; guest-mm's own translate() agrees and gives the cache mode
        // and the map-count bit.
        let mut walked = leaves(self.space.memory(), self.space.cr3())
            .into_iter()
            .flat_map(|l| (0..l.size).step_by(PAGE_SIZE as usize).map(move |off| (l.va + off, l.pa + off, l.attrs)));
        let shown = |m: &MPage| m.pfn.is_some() && !m.access.is_empty();
        // Both in address order: a merge of the two lists.
        for (&a, m) in self.model.iter().filter(|(_, m)| shown(m)) {
            let w = walked.next();
            let Some((wa, pa, attrs)) = w.filter(|w| w.0 == a) else {
                panic!("at {a:#x}: the model says {m:?}; the walk's next page is {w:x?}")
            };
            assert_eq!(Some(pa / PAGE_SIZE), m.pfn, "frame at {wa:#x}");
            assert_ne!(attrs & US, 0, "user bit at {a:#x}");
            assert_eq!(attrs & RW != 0, m.access.contains(VmFlags::WRITE), "write bit at {a:#x}");
            assert_eq!(attrs & NX != 0, !m.access.contains(VmFlags::EXEC), "NX at {a:#x}");
            let t = self.space.translate(va(a)).unwrap_or_else(|| panic!("translate() misses {a:#x}"));
            assert_eq!(t.pfn.0 * PAGE_SIZE, pa, "translate() frame at {a:#x}");
            assert_eq!(t.prot.cache, m.cache, "cache mode at {a:#x}");
            assert_eq!(t.counted, m.counted, "counted at {a:#x}");
        }
        if let Some(extra) = walked.next() {
            panic!("the page tables map {extra:x?}, the model nothing there");
        }
        // VMAs, coalesced the way the merge rules allow.
        let mut want: Vec<(u64, u64, VmFlags, &str)> = Vec::new();
        let mut prev: Option<(u64, &MPage)> = None;
        for (&a, m) in &self.model {
            let joins = prev.is_some_and(|(pa, pm)| {
                pa + PAGE_SIZE == a
                    && (pm.seg == m.seg
                        || (!pm.special
                            && !m.special
                            && pm.provider == m.provider
                            && pm.shared == m.shared
                            && pm.access == m.access
                            && pm.pgoff + 1 == m.pgoff))
            });
            if joins {
                if let Some(last) = want.last_mut() {
                    last.1 = a + PAGE_SIZE;
                }
            } else {
                want.push((a, a + PAGE_SIZE, m.access, m.provider));
            }
            prev = Some((a, m));
        }
        let got: Vec<(u64, u64, VmFlags, &str)> = self
            .space
            .vmas()
            .map(|v| (v.start().raw(), v.end(), v.flags() & guest_mm::VM_ACCESS_FLAGS, v.provider_name()))
            .collect();
        assert_eq!(got, want, "VMAs differ from the model");
        // Tables: what a walk finds is what the allocator handed out, and no
        // empty table is left behind.
        let c = census(self.space.memory(), self.space.cr3());
        let st = self.space.stats();
        assert_eq!(c.tables, st.tables_in_use, "reachable tables vs allocator");
        assert_eq!(c.empty_tables, 0, "empty tables left behind");
        // Pool pages balance.
        assert_eq!(st.pool_free, self.pool_total - BUFFER_PAGES as usize - self.pool_used_by_zero(), "pool pages");
        // The frame guarantee, by walking the tables.
        let page_array_leaves = assert_mapped_frames_kept(&self.space);
        assert_eq!(page_array_leaves, self.model.values().filter(|m| m.counted).count(), "page-array leaves");
    }

    /// Unmaps everything and checks that tables, counts, VMAs and pool
    /// pages are back at their starting values (then that dropping the page
    /// buffer returns its pages too).
    pub fn finish(mut self) {
        self.space.munmap(va(L.window.0), L.window.1 - L.window.0).expect("munmap all").ignore();
        self.model.clear();
        self.check();
        let st = self.space.stats();
        assert_eq!(st.tables_in_use, self.start_tables, "tables after unmapping everything");
        assert_eq!(st.pins, BUFFER_PAGES, "pins after unmapping everything (the page buffer's)");
        assert_eq!(st.vmas, 0, "VMAs after unmapping everything");
        assert_eq!(st.pool_free, self.pool_total - BUFFER_PAGES as usize, "pool after unmapping everything");
        drop(self.buffer);
        assert_eq!(self.space.stats().pool_free, self.pool_total, "pool after dropping the page buffer");
        assert_eq!(self.space.stats().pins, 0, "pins after dropping the page buffer");
    }

    /// Runs `ops`, checking after each, then [`World::finish`].
    pub fn run(ops: &[Op]) {
        let mut w = World::new();
        for op in ops {
            w.apply(op);
            w.check();
        }
        w.finish();
    }
}

fn provider_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Nothing => "nothing",
        Kind::Ram { .. } => "guest-ram",
        Kind::Zero => "zero",
        Kind::Buffer => "page-buffer",
        Kind::Huge { .. } => "huge",
        Kind::Io => "io",
        Kind::Partial { .. } => "partial",
        Kind::Discontig { .. } => "discontig",
        Kind::BadFrame | Kind::ReservedFrame => "bad-array",
    }
}
