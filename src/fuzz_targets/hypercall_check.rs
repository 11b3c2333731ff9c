//! What the hypercall target checks after each call, with its own walk of
//! the page tables (`crate::walk`), never guest-mm's view of them:
//!
//! - the result is a value or `-errno` in `-4095..=-1`; an `mmap` result is
//!   a page-aligned user address; no call is fatal (the flusher never fails);
//! - a failed call (and any call but `mmap`, `munmap`, `mprotect`) changes
//!   nothing: the same leaves, tables, VMAs, pool pages and map counts;
//! - the supervisor half is exactly what the kernel mapped at boot;
//! - a user leaf is user-accessible and never maps a frame the VMM owns
//!   (the kernel region, the page tables) or one outside RAM and the BAR
//!   windows;
//! - every 4 KiB page whose translation was removed, moved to another frame
//!   or lost a right (write, user, execute, cache mode) was in a range the
//!   call asked every vCPU to flush;
//! - the tables reachable from CR3 are exactly the allocator's, none empty;
//! - at the end, unmapping the whole user half gives back every table,
//!   pool page and map count the guest's mappings took.

use std::collections::BTreeMap;

use devices::BarWindow;
use guest_mm::SpaceStats;
use vm_memory::{Bytes, GuestAddress};
use vmm::hosted::hypercall::{Args, HostedKernel, Outcome};
use vmm::hosted::stub::abi::nr;
use vmm::hosted::tlb::{Range, RecordingFlusher};
use vmm::layout::{KERNEL_REGION_SIZE, PAGE_SIZE, TABLES_PA, TABLES_SIZE};
use vmm::memory::GuestMem;

use crate::census::census;
use crate::walk::{leaves, WalkLeaf, A, CACHE, NX, RW, US};

const USER_END: u64 = 1 << 47;

/// What the guest looked like before any hypercall.
pub(super) struct Baseline {
    pub mem: GuestMem,
    pub mem_size: u64,
    cr3: GuestAddress,
    kernel_tables: usize,
    kernel_leaves: Vec<WalkLeaf>,
    start: SpaceStats,
    bars: Vec<(u64, u64)>,
}

/// The user half's leaves and the allocator's figures at one moment.
pub(super) struct Snapshot {
    user: BTreeMap<u64, WalkLeaf>,
    stats: SpaceStats,
}

fn stats(hv: &HostedKernel) -> SpaceStats {
    hv.mapper().space().stats()
}

impl Snapshot {
    pub fn take(b: &Baseline, hv: &HostedKernel) -> Snapshot {
        Snapshot { user: user_leaves(b), stats: stats(hv) }
    }
}

fn user_leaves(b: &Baseline) -> BTreeMap<u64, WalkLeaf> {
    leaves(&b.mem, b.cr3).into_iter().filter(|l| l.va < USER_END).map(|l| (l.va, l)).collect()
}

/// Where `page` translates to in `map`: frame address and attributes.
fn lookup(map: &BTreeMap<u64, WalkLeaf>, page: u64) -> Option<(u64, u64)> {
    let (_, l) = map.range(..=page).next_back()?;
    (page < l.end()).then(|| (l.pa + (page - l.va), l.attrs))
}

/// Whether `new` keeps everything `old` allowed (same frame, no right lost).
fn keeps(old: (u64, u64), new: Option<(u64, u64)>) -> bool {
    let Some(new) = new else { return false };
    let (oa, na) = (old.1, new.1);
    old.0 == new.0
        && (oa & RW == 0 || na & RW != 0)
        && (oa & US == 0 || na & US != 0)
        && (na & NX == 0 || oa & NX != 0)
        && oa & CACHE == na & CACHE
}

impl Baseline {
    pub fn new(
        hv: &HostedKernel,
        mem: (GuestMem, u64),
        cr3: GuestAddress,
        kernel_tables: usize,
        bars: &[BarWindow],
    ) -> Self {
        let (mem, mem_size) = mem;
        let kernel_leaves = leaves(&mem, cr3).into_iter().filter(|l| l.va >= USER_END).collect();
        Baseline {
            mem,
            mem_size,
            cr3,
            kernel_tables,
            kernel_leaves,
            start: stats(hv),
            bars: bars.iter().map(|w| (w.base.0, w.base.0 + w.size)).collect(),
        }
    }

    /// Every check after one call (`before` and `after` are the user
    /// half's leaves around it; `flushed` what the flusher was asked).
    pub fn check_call(
        &self,
        hv: &HostedKernel,
        nr: u64,
        out: &Outcome,
        before: &Snapshot,
        after: &Snapshot,
        flushed: &[(u8, Vec<Range>)],
    ) {
        let what = format!("call {nr:#x} -> {}", out.ret);
        assert!(out.ret >= -4095, "{what}: result below -4095");
        assert!(out.effects.fatal.is_none(), "{what}: fatal {:?}", out.effects.fatal);
        if nr == nr::MMAP && out.ret >= 0 {
            let a = out.ret as u64;
            assert!(a.is_multiple_of(PAGE_SIZE) && a < USER_END, "{what}: mmap result is not a user page");
        }
        // `madvise` (WILLNEED populates, DONTNEED drops) and `mremap`
        // change mappings as much as the other three; `madvise` over a
        // range with a hole applies the part before it and then answers
        // ENOMEM, as Linux does, so even its failure may change them.
        let changes =
            (matches!(nr, nr::MMAP | nr::MUNMAP | nr::MPROTECT | nr::MREMAP) && out.ret >= 0) || nr == nr::MADVISE;
        if !changes {
            assert!(before.user == after.user, "{what}: a call that failed or maps nothing changed the tables");
            assert_eq!(before.stats, after.stats, "{what}: a call that failed or maps nothing changed the figures");
        }
        self.check_tables(&what, hv, &after.user);
        self.check_flushes(&what, before, after, flushed);
    }

    /// Tables balance, the kernel half is untouched, user leaves are sane.
    fn check_tables(&self, what: &str, hv: &HostedKernel, user: &BTreeMap<u64, WalkLeaf>) {
        let c = census(&self.mem, self.cr3);
        let st = stats(hv);
        assert_eq!(c.tables, st.tables_in_use, "{what}: reachable tables vs allocator");
        assert_eq!(c.empty_tables, 0, "{what}: empty table left linked");
        let kernel: Vec<WalkLeaf> = leaves(&self.mem, self.cr3).into_iter().filter(|l| l.va >= USER_END).collect();
        assert!(kernel == self.kernel_leaves, "{what}: the supervisor half changed");
        for l in user.values() {
            assert_ne!(l.attrs & US, 0, "{what}: supervisor-only leaf at {:#x} in the user half", l.va);
            let (s, e) = (l.pa, l.pa + l.size);
            let owned = s < KERNEL_REGION_SIZE || (s < TABLES_PA + TABLES_SIZE && TABLES_PA < e);
            assert!(!owned, "{what}: {:#x} maps a VMM frame {s:#x}", l.va);
            let ok = e <= self.mem_size || self.bars.iter().any(|&(bs, be)| bs <= s && e <= be);
            assert!(ok, "{what}: {:#x} maps {s:#x}..{e:#x}, neither RAM nor a BAR", l.va);
        }
    }

    /// What a CPU's access to user address `va` does to the tables: its
    /// walk sets the Accessed bit of every present entry it uses,
    /// top-down (read back by the independent walker).
    pub fn touch(&self, va: u64) {
        if va >= USER_END {
            return;
        }
        let mut table = self.cr3.0 & !0xfff;
        for level in (1..=4u64).rev() {
            let at = GuestAddress(table + 8 * ((va >> (12 + 9 * (level - 1))) & 511));
            let Ok(e) = self.mem.read_obj::<u64>(at) else { return };
            if e & 1 == 0 || self.mem.write_obj(e | A, at).is_err() || level == 1 || e & (1 << 7) != 0 {
                return;
            }
            table = e & 0x000f_ffff_ffff_f000;
        }
    }

    /// Every page that lost its translation or a right was flushed, if a
    /// CPU could have cached it (its leaf's Accessed bit was set: the
    /// VMM skips the shootdown of entries no CPU used).
    fn check_flushes(&self, what: &str, before: &Snapshot, after: &Snapshot, flushed: &[(u8, Vec<Range>)]) {
        let covered = |p: u64| flushed.iter().flat_map(|(_, r)| r).any(|&(va, len)| va <= p && p - va < len);
        for (&va, l) in before.user.iter().filter(|(_, l)| l.accessed) {
            if let Some(n) = after.user.get(&va) {
                if n.size == l.size && keeps((l.pa, l.attrs), Some((n.pa, n.attrs))) {
                    continue;
                }
            }
            for p in (va..l.end()).step_by(PAGE_SIZE as usize) {
                let old = (l.pa + (p - va), l.attrs);
                if !keeps(old, lookup(&after.user, p)) {
                    assert!(
                        covered(p),
                        "{what}: {p:#x} changed ({old:x?} -> {:x?}) without a flush",
                        lookup(&after.user, p)
                    );
                }
            }
        }
    }

    /// Unmaps the whole user half and checks that every table, pool page
    /// and map count the guest took is back.
    pub fn check_teardown(&self, hv: &HostedKernel, flusher: &RecordingFlusher) {
        let before = Snapshot::take(self, hv);
        let out = hv.dispatch(0, &Args { nr: nr::MUNMAP, a: [0, USER_END, 0, 0, 0, 0] });
        let flushed = std::mem::take(&mut *flusher.0.lock().unwrap_or_else(|e| e.into_inner()));
        assert_eq!(out.ret, 0, "munmap of the whole user half");
        let after = Snapshot::take(self, hv);
        self.check_tables("teardown", hv, &after.user);
        self.check_flushes("teardown", &before, &after, &flushed);
        assert!(after.user.is_empty(), "user leaves left after unmapping everything");
        let st = stats(hv);
        assert_eq!(st.vmas, 0, "VMAs left");
        assert_eq!(st.pins, self.start.pins, "pinned frames left");
        assert_eq!(st.tables_in_use, self.kernel_tables, "tables left");
        assert_eq!(st.pool_free, self.start.pool_free, "pool pages lost");
    }
}
