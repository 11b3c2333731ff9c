//! Property test: random sequences of mmap (every action kind, valid and
//! invalid; lazy anonymous and lazy page-buffer mappings too), munmap,
//! mprotect and faults (reads, writes, copy-on-write, fault-around)
//! against a reference model. After every
//! step each page's translation equals the model, the VMAs equal the
//! model, table and pool pages balance, and after unmapping everything the
//! allocator is back at its starting count. The frame guarantee is checked
//! by walking the tables (`frame_guarantee`): no mapped frame is free
//! in the pool or handed out by it, and every page-array frame a leaf maps
//! is pinned.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use guest_mm::providers::{GuestRamProvider, HugePageProvider, PageBuffer, ZeroProvider};
use guest_mm::{
    errno, AddressSpace, CacheMode, FaultAccess, FaultKind, Frames, MmError, MmapProvider, MmapRequest, PageArray,
    PageRun, PageSize, Pfn, VmFlags, VmaDesc, PAGE_SIZE,
};
use proptest::prelude::*;
use vm_memory::GuestAddress;
use vmm_suite::census::census;
use vmm_suite::fixture::{space, va, Layout, Mem};
use vmm_suite::frame_guarantee::assert_mapped_frames_kept;

const L: Layout = Layout { window: (64 << 30, (64 << 30) + (16 << 20)), ..Layout::SMALL };
const WIN_PAGES: u64 = (L.window.1 - L.window.0) / PAGE_SIZE;
const BUFFER_PAGES: u64 = 512;
const IO_PHYS: u64 = 0xfe00_0800;
const IO_SIZE: u64 = 0x1_0000;
/// Frames (outside pool, tables, huge region) the array providers use.
const ARRAY_BASE: u64 = 0x100;

// --- test providers -------------------------------------------------------

/// `MMAP_NOTHING`: the only kind that may merge.
struct Nothing;
impl MmapProvider for Nothing {
    fn name(&self) -> &str {
        "nothing"
    }
    fn mmap_prepare(&self, _desc: &mut VmaDesc) -> Result<(), MmError> {
        Ok(())
    }
}

/// Scattered array frame for page `i`.
fn array_frame(i: u64) -> u64 {
    ARRAY_BASE + (i * 37) % 2048
}

/// `n` array frames from page `first`, pinned in `frames` (per mapping).
fn array(frames: &Frames, n: u64, first: u64) -> Result<PageArray, MmError> {
    PageArray::pin(frames, (0..n).map(|i| Pfn(array_frame(first + i))).collect::<Vec<_>>().into())
}

/// map-kernel-pages from `skip` pages into the VMA (partial form).
struct Partial {
    skip: u64,
    frames: Frames,
}
impl MmapProvider for Partial {
    fn name(&self) -> &str {
        "partial"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let n = desc.pages() - self.skip;
        let start = desc.start().checked_add(self.skip * PAGE_SIZE)?;
        desc.mmap_action_map_kernel_pages(start, array(&self.frames, n, self.skip)?, n);
        Ok(())
    }
}

/// Two runs: pages [0, a) and [b, n).
struct Discontig {
    a: u64,
    b: u64,
    frames: Frames,
}
impl MmapProvider for Discontig {
    fn name(&self) -> &str {
        "discontig"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let n = desc.pages();
        let runs = vec![
            PageRun { start: desc.start(), pages: array(&self.frames, self.a, 0)? },
            PageRun {
                start: desc.start().checked_add(self.b * PAGE_SIZE)?,
                pages: array(&self.frames, n - self.b, self.b)?,
            },
        ];
        desc.mmap_action_map_kernel_pages_discontig(runs);
        Ok(())
    }
}

/// A page array with one bad frame (refused when it is pinned).
struct BadArray {
    bad: u64,
    frames: Frames,
}
impl MmapProvider for BadArray {
    fn name(&self) -> &str {
        "bad-array"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let mut v: Vec<Pfn> = (0..desc.pages()).map(|i| Pfn(array_frame(i))).collect();
        let last = v.len() - 1;
        v[last] = Pfn(self.bad);
        desc.mmap_action_map_kernel_pages_full(PageArray::pin(&self.frames, v.into())?);
        Ok(())
    }
}

/// simple_ioremap of a device window with a sub-page start.
struct Io;
impl MmapProvider for Io {
    fn name(&self) -> &str {
        "io"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_simple_ioremap(GuestAddress(IO_PHYS), IO_SIZE);
        Ok(())
    }
}

// --- operations -----------------------------------------------------------

#[derive(Clone, Debug)]
enum Kind {
    Nothing,
    Ram { pgoff_sel: u8 },
    Zero,
    Buffer,
    LazyBuffer,
    Huge { two: bool },
    Io,
    Partial { skip: u64 },
    Discontig { a: u64, gap: u64 },
    BadFrame,
    ReservedFrame,
}

#[derive(Clone, Debug)]
enum Op {
    Map { kind: Kind, pages: u64, prot: u8, shared: bool, at: Option<(u64, bool)>, pgoff: u64 },
    Unmap { page: u64, pages: u64 },
    Protect { page: u64, pages: u64, prot: u8 },
    Touch { page: u64, write: bool },
    DontNeed { page: u64, pages: u64 },
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Nothing),
        (0u8..4).prop_map(|s| Kind::Ram { pgoff_sel: s }),
        // Thrice: private zero mappings are the lazy anonymous memory that
        // touches, copy-on-write and DONTNEED exercise.
        Just(Kind::Zero),
        Just(Kind::Zero),
        Just(Kind::Zero),
        Just(Kind::Buffer),
        Just(Kind::LazyBuffer),
        any::<bool>().prop_map(|two| Kind::Huge { two }),
        Just(Kind::Io),
        (0u64..8).prop_map(|skip| Kind::Partial { skip }),
        (0u64..4, 0u64..4).prop_map(|(a, gap)| Kind::Discontig { a, gap }),
        Just(Kind::BadFrame),
        Just(Kind::ReservedFrame),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (kind(), 1u64..24, 0u8..8, any::<bool>(), prop::option::of((0u64..WIN_PAGES, any::<bool>())), 0u64..16)
            .prop_map(|(kind, pages, prot, shared, at, pgoff)| Op::Map { kind, pages, prot, shared, at, pgoff }),
        2 => (0u64..WIN_PAGES, 1u64..1200).prop_map(|(page, pages)| Op::Unmap { page, pages }),
        2 => (0u64..WIN_PAGES, 1u64..64, 0u8..8).prop_map(|(page, pages, prot)| Op::Protect { page, pages, prot }),
        4 => (0u64..WIN_PAGES, any::<bool>()).prop_map(|(page, write)| Op::Touch { page, write }),
        2 => (0u64..WIN_PAGES, 1u64..6).prop_map(|(page, pages)| Op::DontNeed { page, pages }),
    ]
}

fn access(bits: u8) -> VmFlags {
    let mut f = VmFlags::empty();
    if bits & 1 != 0 {
        f |= VmFlags::READ;
    }
    if bits & 2 != 0 {
        f |= VmFlags::WRITE;
    }
    if bits & 4 != 0 {
        f |= VmFlags::EXEC;
    }
    f
}

// --- the model ------------------------------------------------------------

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
    pgoff: u64,
    /// Filled by faults: `Some(true)` anonymous, `Some(false)` the page
    /// buffer.
    lazy: Option<bool>,
    /// The shared zero page, read-only until a write copies it.
    cow: bool,
    /// A pool page a write fault allocated for this page.
    anon_page: bool,
}

struct World {
    space: AddressSpace<Mem>,
    ram: GuestRamProvider,
    zero: ZeroProvider<Mem>,
    buffer: PageBuffer,
    lazy_buffer: PageBuffer,
    huge: HugePageProvider,
    model: BTreeMap<u64, MPage>,
    zero_page: Option<u64>,
    next_seg: u64,
    /// Pages of each zero mapping, by origin.
    zero_sizes: BTreeMap<u64, u64>,
    pool_total: usize,
    start_tables: usize,
}

impl World {
    fn new() -> World {
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
        let lazy_buffer = buffer.lazy();
        World {
            space,
            ram,
            zero,
            buffer,
            lazy_buffer,
            huge,
            model: BTreeMap::new(),
            zero_page: None,
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
        let slots = (L.window.1 - L.window.0) / align;
        (0..slots).rev().map(|k| L.window.0 + k * align).find(|&s| s + len <= L.window.1 && self.model_free(s, pages))
    }

    /// Pool pages zero mappings hold: a zero mapping's array stays pinned
    /// whole while any piece of its VMA is left (partly unmapped arrays
    /// are not unpinned page by page).
    fn pool_used_by_zero(&self) -> usize {
        let live: BTreeSet<u64> = self.model.values().filter(|p| p.zero).map(|p| p.origin).collect();
        let shared: usize = live.iter().map(|o| self.zero_sizes.get(o).copied().unwrap_or(0) as usize).sum();
        // Faulted anonymous pages are pinned per faulted run and let go
        // page by page: exactly the live ones count.
        shared + self.model.values().filter(|p| p.anon_page).count() + self.zero_page.is_some() as usize
    }

    fn pool_free(&self) -> usize {
        self.pool_total - BUFFER_PAGES as usize - self.pool_used_by_zero()
    }

    /// The VMAs the model implies, coalesced the way the merge rules allow.
    fn model_vmas(&self) -> Vec<(u64, u64, VmFlags, &'static str)> {
        let mut want: Vec<(u64, u64, VmFlags, &str)> = Vec::new();
        let mut prev: Option<(u64, &MPage)> = None;
        for (&a, m) in &self.model {
            let joins = prev.is_some_and(|(pa, pm)| {
                pa + PAGE_SIZE == a
                    && (pm.seg == m.seg
                        || (!pm.special
                            && !m.special
                            && pm.provider == m.provider
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
        want
    }

    /// A guest access at window page `page`: what the fault path must do.
    fn touch(&mut self, page: u64, write: bool) {
        let a = L.window.0 + page * PAGE_SIZE;
        let r = self.space.fault(va(a + 8), if write { FaultAccess::WRITE } else { FaultAccess::READ });
        let Some(m) = self.model.get(&a).cloned() else {
            assert_eq!(r.expect_err("no VMA").errno(), errno::ENOMEM);
            return;
        };
        if (write && !m.access.contains(VmFlags::WRITE)) || m.access.is_empty() {
            assert_eq!(r.expect_err("access").errno(), errno::EACCES, "{m:?}");
            return;
        }
        if m.pfn.is_some() && (!write || !m.cow) {
            assert_eq!(r.expect("spurious").kind, FaultKind::Spurious);
            return;
        }
        let Some(anon) = m.lazy else {
            assert_eq!(r.expect_err("no fault handler").errno(), errno::EOPNOTSUPP, "{m:?}");
            return;
        };
        // Copy-on-write of the zero page.
        if m.pfn.is_some() {
            if self.pool_free() == 0 {
                assert_eq!(r.expect_err("pool").errno(), errno::ENOMEM);
                return;
            }
            let f = r.expect("cow");
            assert_eq!(f.kind, FaultKind::CopiedOnWrite);
            assert_eq!(f.flush.pages(), 1);
            f.flush.ignore();
            let got = self.space.translate(va(a)).expect("copied").pfn.0;
            assert_ne!(Some(got), self.zero_page);
            let p = self.model.get_mut(&a).expect("page");
            (p.pfn, p.cow, p.anon_page) = (Some(got), false, true);
            return;
        }
        // An absent page, then fault-around inside its VMA's window.
        let need = if !anon {
            0
        } else if write {
            1
        } else {
            self.zero_page.is_none() as usize
        };
        if self.pool_free() < need {
            assert_eq!(r.expect_err("pool").errno(), errno::ENOMEM);
            return;
        }
        let f = r.expect("fault");
        assert_eq!(f.kind, FaultKind::Mapped);
        if anon && !write {
            let zp = self.space.translate(va(a)).expect("zero page").pfn.0;
            assert_eq!(*self.zero_page.get_or_insert(zp), zp, "one shared zero page");
        }
        let (vs, ve) = self
            .model_vmas()
            .into_iter()
            .find(|&(s, e, _, _)| s <= a && a < e)
            .map(|(s, e, _, _)| (s, e))
            .expect("vma");
        let win = if write { guest_mm::space::WRITE_FAULT_AROUND_PAGES } else { guest_mm::space::FAULT_AROUND_PAGES }
            * PAGE_SIZE;
        let (ws, we) = ((a & !(win - 1)).max(vs), ((a & !(win - 1)) + win).min(ve));
        // Runs of absent pages besides the faulting one, in order.
        let mut runs: Vec<Vec<u64>> = vec![Vec::new()];
        for p in (ws..we).step_by(PAGE_SIZE as usize) {
            if p != a && self.model[&p].pfn.is_none() {
                runs.last_mut().expect("run").push(p);
            } else if !runs.last().expect("run").is_empty() {
                runs.push(Vec::new());
            }
        }
        let mut filled = vec![a];
        let mut free = self.pool_free() - need;
        for run in runs.into_iter().filter(|r| !r.is_empty()) {
            if anon && write {
                if free < run.len() {
                    continue;
                }
                free -= run.len();
            }
            filled.extend(run);
        }
        assert_eq!(f.around, filled.len() as u64 - 1, "fault-around pages");
        for p in filled {
            let got = self.space.translate(va(p)).expect("filled").pfn.0;
            let mp = self.model.get_mut(&p).expect("page");
            mp.counted = true;
            if !anon {
                assert_eq!(got, self.buffer.pages()[mp.pgoff as usize].0, "buffer page at {p:#x}");
            } else if write {
                mp.anon_page = true;
            } else {
                mp.cow = true;
                assert_eq!(Some(got), self.zero_page);
            }
            mp.pfn = Some(got);
        }
    }

    /// `MADV_DONTNEED`: the entries go (and a faulted page's frame back to
    /// the pool at once), the VMAs stay. As Linux, the mapped parts are
    /// advised in address order: a PFNMAP/IO/HUGETLB VMA stops the walk
    /// with `EINVAL` (the pages before it are dropped), and a hole is
    /// `ENOMEM` after every mapped part was dropped.
    fn dont_need(&mut self, page: u64, pages: u64) {
        let start = L.window.0 + page * PAGE_SIZE;
        let end = start + pages * PAGE_SIZE;
        let r = self.space.madvise(va(start), pages * PAGE_SIZE, guest_mm::Advice::DontNeed).map(|f| f.ignore());
        let special = VmFlags::PFNMAP | VmFlags::IO | VmFlags::HUGETLB;
        let mut dropped_to = end;
        let mut want = Ok(());
        for a in (start..end).step_by(PAGE_SIZE as usize) {
            if !self.model.contains_key(&a) {
                want = want.and(Err(errno::ENOMEM));
            } else if self.space.find_vma(va(a)).is_some_and(|v| v.flags().intersects(special)) {
                (want, dropped_to) = (Err(errno::EINVAL), a);
                break;
            }
        }
        assert_eq!(r.map_err(|e| e.errno()), want, "madvise({start:#x}, {pages} pages)");
        // Dropped entries of a failed call are in the deferred flush.
        self.space.take_deferred_flush().ignore();
        for (_, p) in self.model.range_mut(start..dropped_to) {
            (p.pfn, p.counted, p.cow, p.anon_page) = (None, false, false, false);
        }
    }

    /// Most touches and advice aim at a mapped page (chosen by `sel`), the
    /// rest at `sel` itself, anywhere in the window: random pages of the
    /// window would rarely hit a mapping.
    fn aim(&self, sel: u64) -> u64 {
        if sel.is_multiple_of(4) || self.model.is_empty() {
            return sel;
        }
        let a = self.model.keys().nth((sel as usize) % self.model.len()).copied().unwrap_or(L.window.0);
        (a - L.window.0) / PAGE_SIZE
    }

    /// Whether a cut at `start` or `end` falls inside a huge-page mapping
    /// off its 2 MiB pages (hugetlbfs refuses such a split: `EINVAL`).
    /// Huge-page VMAs only ever begin and end on 2 MiB boundaries, so two
    /// huge pages either side of a misaligned cut are one VMA.
    fn cuts_a_huge_page(&self, start: u64, end: u64) -> bool {
        let huge = |a: u64| self.model.get(&a).is_some_and(|p| p.provider == "huge");
        [start, end].into_iter().any(|c| c % (2 << 20) != 0 && huge(c) && huge(c - PAGE_SIZE))
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Map { kind, pages, prot, shared, at, pgoff } => self.map(kind, *pages, *prot, *shared, *at, *pgoff),
            Op::Touch { page, write } => self.touch(self.aim(*page), *write),
            Op::DontNeed { page, pages } => self.dont_need(self.aim(*page), *pages),
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
            Kind::Buffer | Kind::LazyBuffer => (pages, pgoff * 31),
            Kind::Partial { skip } => (pages.max(skip + 1), 0),
            Kind::Discontig { a, gap } => (pages.max(a + gap + 1), 0),
            _ => (pages, pgoff),
        };
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
            Kind::LazyBuffer => &self.lazy_buffer,
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
            Kind::Buffer | Kind::LazyBuffer if pgoff + pages > BUFFER_PAGES => Some(errno::EINVAL),
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
                let pool_short = matches!(kind, Kind::Zero) && shared && self.pool_free() < pages as usize;
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
        if matches!(kind, Kind::Zero) && shared {
            self.zero_sizes.insert(seg, pages);
        }
        // A private zero mapping is lazy anonymous memory.
        let lazy = match kind {
            Kind::Zero if !shared => Some(true),
            Kind::LazyBuffer => Some(false),
            _ => None,
        };
        let zero_frames: Vec<u64> = if matches!(kind, Kind::Zero) && shared {
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
                Kind::Zero if !shared => (None, CacheMode::WriteBack, false, false),
                Kind::Zero => (Some(zero_frames[i as usize]), CacheMode::WriteBack, true, true),
                Kind::LazyBuffer => (None, CacheMode::WriteBack, false, true),
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
                    zero: matches!(kind, Kind::Zero) && shared,
                    seg,
                    origin: seg,
                    provider: provider_name(kind),
                    special,
                    pgoff: pgoff + i,
                    lazy,
                    cow: false,
                    anon_page: false,
                },
            );
        }
    }

    /// Every invariant, checked against the model and an independent walk.
    fn check(&self) {
        // Translations, page by page, over the whole window.
        for p in 0..WIN_PAGES {
            let a = L.window.0 + p * PAGE_SIZE;
            let got = self.space.translate(va(a));
            // PROT_NONE pages keep their frame in a not-present entry.
            let want = self.model.get(&a).filter(|m| m.pfn.is_some() && !m.access.is_empty());
            match (got, want) {
                (None, None) => {}
                (Some(t), Some(m)) => {
                    assert_eq!(Some(t.pfn.0), m.pfn, "frame at {a:#x}");
                    assert!(t.prot.user && t.prot.present, "user and present at {a:#x}");
                    assert_eq!(t.prot.writable, m.access.contains(VmFlags::WRITE) && !m.cow, "write bit at {a:#x}");
                    assert_eq!(t.prot.no_execute, !m.access.contains(VmFlags::EXEC), "NX at {a:#x}");
                    assert_eq!(t.prot.cache, m.cache, "cache mode at {a:#x}");
                    assert_eq!(t.counted, m.counted, "counted at {a:#x}");
                }
                (g, w) => panic!("at {a:#x}: page tables say {g:?}, model says {w:?}"),
            }
        }
        // VMAs, coalesced the way the merge rules allow.
        let want = self.model_vmas();
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
        assert_eq!(st.pool_free, self.pool_free(), "pool pages");
        // The frame guarantee, by walking the tables.
        let page_array_leaves = assert_mapped_frames_kept(&self.space);
        assert_eq!(page_array_leaves, self.model.values().filter(|m| m.counted).count(), "page-array leaves");
    }
}

fn provider_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Nothing => "nothing",
        Kind::Ram { .. } => "guest-ram",
        Kind::Zero => "zero",
        Kind::Buffer => "page-buffer",
        Kind::LazyBuffer => "page-buffer-lazy",
        Kind::Huge { .. } => "huge",
        Kind::Io => "io",
        Kind::Partial { .. } => "partial",
        Kind::Discontig { .. } => "discontig",
        Kind::BadFrame | Kind::ReservedFrame => "bad-array",
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mapper_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
            w.check();
        }
        // Unmap everything: back to the starting counts.
        w.space.munmap(va(L.window.0), L.window.1 - L.window.0).expect("munmap all").ignore();
        w.model.clear();
        w.check();
        let st = w.space.stats();
        prop_assert_eq!(st.tables_in_use, w.start_tables);
        prop_assert_eq!(st.pins, BUFFER_PAGES);
        prop_assert_eq!(st.vmas, 0);
        prop_assert_eq!(st.pool_free, w.pool_total - BUFFER_PAGES as usize - w.zero_page.is_some() as usize);
        drop(w.buffer);
        drop(w.lazy_buffer);
        drop(w.zero);
        prop_assert_eq!(w.space.stats().pool_free, w.pool_total);
        prop_assert_eq!(w.space.stats().pins, 0);
        let _ = Arc::new(());
    }
}
