//! What the Linux system-call target checks, with its own walk of the
//! page tables (`crate::walk`, `crate::census`) and its own reading of
//! the VMM's memory use, never guest-mm's word alone:
//!
//! - the result is a value or `-errno` in `-4095..=-1`, and no call is
//!   fatal (the recording flusher never fails); a successful `mmap` or
//!   `mremap` returns a page-aligned user address inside a VMA, a
//!   successful `munmap` leaves nothing mapped in its range;
//! - the address space passes `check_invariants`; the tables reachable
//!   from CR3 are the allocator's, none empty; the supervisor half is what
//!   the kernel mapped; every user leaf is user-accessible, maps guest RAM
//!   outside the VMM's own regions, lies in a VMA and has no right its
//!   VMA lacks (write, execute; nothing present under `PROT_NONE`);
//! - a call that is not a memory call leaves every VMA as it was, and one
//!   that touches no memory at all (`getpid`, `umask`, ...) leaves the
//!   tables and the allocator's figures too;
//! - no call makes the VMM's own memory grow by 64 MiB or more: the
//!   resident memory of the process, read right around the call (its
//!   peak included), less the guest RAM that became resident (`mincore`);
//! - at the end, unmapping the whole user half and dropping the process
//!   gives back every pool frame, pin and table (unless the program
//!   sealed a mapping, which then cannot be unmapped, as on Linux).

use std::collections::BTreeMap;

use guest_mm::{GuestVirtAddr, SpaceStats, VmFlags};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};
use vmm::guest::kinds::linux::image::TASK_SIZE;
use vmm::guest::kinds::linux::Linux;
use vmm::hosted::hypercall::{HostedKernel, Outcome};
use vmm::layout::{KERNEL_REGION_SIZE, PAGE_SIZE, TABLES_PA, TABLES_SIZE};
use vmm::memory::GuestMem;

use super::linux_program::MM_CALLS;
use crate::census::census;
use crate::walk::{leaves, WalkLeaf, NX, RW, US};

const USER_END: u64 = 1 << 47;
/// Most the VMM's resident memory may grow in one call.
const RSS_BOUND: u64 = 64 << 20;
/// Calls with no memory argument at all: getpid, getuid, getgid,
/// geteuid, getegid, getppid, getpgrp, getpgid, getsid, gettid,
/// sched_yield, umask, alarm.
const PURE_CALLS: &[u64] = &[39, 102, 104, 107, 108, 110, 111, 121, 124, 186, 24, 95, 37];

/// What the machine looked like before any call.
pub(super) struct Baseline {
    mem: GuestMem,
    mem_size: u64,
    cr3: GuestAddress,
    kernel_leaves: Vec<WalkLeaf>,
    /// The allocator's figures once the process is gone.
    gone: SpaceStats,
    /// Guest RAM resident in the host when the checks started.
    guest_at_start: u64,
}

/// A VMA as the checks compare it.
type VmaRow = (u64, u64, u64);

/// The user half at one moment: VMAs, leaves, the allocator's figures
/// and the VMM's resident memory.
pub(super) struct Snapshot {
    vmas: Vec<VmaRow>,
    sealed: bool,
    user: BTreeMap<u64, WalkLeaf>,
    stats: SpaceStats,
}

/// This process's resident memory now and the most it has had (bytes).
#[derive(Clone, Copy, Debug)]
pub(super) struct Resident {
    now: u64,
    peak: u64,
}

/// [`Resident`] from `VmRSS` and `VmHWM` of `/proc/self/status`; read
/// right around a call, so that nothing the checks hold counts.
pub(super) fn resident() -> Resident {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Resident { now: field("VmRSS:"), peak: field("VmHWM:") }
}

/// Bytes of guest RAM the host holds resident (`mincore` over every
/// region's mapping).
fn guest_resident(mem: &GuestMem) -> u64 {
    const HOST_PAGE: usize = 4096;
    let mut total = 0;
    for r in mem.iter() {
        let Ok(ptr) = r.get_host_address(MemoryRegionAddress(0)) else { continue };
        let len = r.len() as usize;
        let mut pages = vec![0u8; len.div_ceil(HOST_PAGE)];
        // SAFETY: `ptr..ptr + len` is the region's own mapping, page
        // aligned and mapped as long as `mem` lives; `pages` has one byte
        // per page of it, which is all mincore writes.
        let ok = unsafe { libc::mincore(ptr.cast(), len, pages.as_mut_ptr()) } == 0;
        if ok {
            total += pages.iter().filter(|&&b| b & 1 != 0).count() as u64 * HOST_PAGE as u64;
        }
    }
    total
}

impl Snapshot {
    /// Leaves mapped in the user half.
    pub fn leaves(&self) -> usize {
        self.user.len()
    }

    pub fn take(b: &Baseline, hv: &HostedKernel) -> Snapshot {
        let m = hv.mapper();
        let space = m.space();
        let vmas: Vec<VmaRow> = space.vmas().map(|v| (v.start().raw(), v.end(), v.flags().bits())).collect();
        let sealed = space.vmas().any(|v| v.flags().contains(VmFlags::SEALED));
        let stats = space.stats();
        drop(m);
        let user = leaves(&b.mem, b.cr3).into_iter().filter(|l| l.va < USER_END).map(|l| (l.va, l)).collect();
        Snapshot { vmas, sealed, user, stats }
    }

    /// The VMA holding `va`.
    fn vma_at(&self, va: u64) -> Option<VmaRow> {
        self.vmas.iter().copied().find(|&(s, e, _)| s <= va && va < e)
    }
}

impl Baseline {
    /// The machine over `mem` (`mem_size` bytes) with tables at `cr3`;
    /// `gone` is what the allocator says once the process is gone.
    pub fn new(mem: GuestMem, mem_size: u64, cr3: GuestAddress, gone: SpaceStats) -> Self {
        let kernel_leaves = leaves(&mem, cr3).into_iter().filter(|l| l.va >= USER_END).collect();
        let guest_at_start = guest_resident(&mem);
        Baseline { mem, mem_size, cr3, kernel_leaves, gone, guest_at_start }
    }

    /// Every check after call `nr` with arguments `a` (`around`: the
    /// resident memory right before and right after it).
    pub fn check_call(
        &self,
        hv: &HostedKernel,
        (nr, a): (u64, &[u64; 6]),
        out: &Outcome,
        (before, after): (&Snapshot, &Snapshot),
        around: (Resident, Resident),
    ) {
        let what = format!("call {nr}({a:#x?}) -> {}", out.ret);
        assert!(out.ret >= -4095, "{what}: result below -4095");
        assert!(out.effects.fatal.is_none(), "{what}: fatal {:?}", out.effects.fatal);
        if !MM_CALLS.contains(&nr) {
            assert!(before.vmas == after.vmas, "{what}: a call that is not a memory call changed the VMAs");
        }
        if PURE_CALLS.contains(&nr) {
            assert!(before.user == after.user, "{what}: a call that touches no memory changed the tables");
            assert_eq!(before.stats, after.stats, "{what}: a call that touches no memory changed the figures");
        }
        if out.ret >= 0 {
            self.check_success(&what, nr, a, out.ret as u64, after);
        }
        // The most it reached during the call: the peak, if the call raised it.
        let (r0, r1) = around;
        let grew = r1.now.max(if r1.peak > r0.peak { r1.peak } else { 0 }).saturating_sub(r0.now);
        if grew >= RSS_BOUND {
            // Guest RAM the call touched first is not the VMM's own: at
            // most what became resident since the machine was made.
            let guest = guest_resident(&self.mem).saturating_sub(self.guest_at_start);
            assert!(
                grew.saturating_sub(guest) < RSS_BOUND,
                "{what}: the VMM's resident memory grew by {} MiB, at most {} MiB of it guest RAM",
                grew >> 20,
                guest >> 20
            );
        }
        self.check_state(&what, hv, after);
    }

    /// What a successful memory call promises.
    fn check_success(&self, what: &str, nr: u64, a: &[u64; 6], ret: u64, after: &Snapshot) {
        match nr {
            // mmap, mremap: a page-aligned user address inside a VMA.
            9 | 25 => {
                assert!(ret.is_multiple_of(PAGE_SIZE) && ret < TASK_SIZE, "{what}: not a user page");
                let len = if nr == 9 { a[1] } else { a[2] };
                let last = ret.saturating_add(len.div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE - PAGE_SIZE);
                assert!(after.vma_at(ret).is_some(), "{what}: no VMA at the result");
                assert!(after.vma_at(last).is_some(), "{what}: no VMA at the last page {last:#x}");
            }
            // munmap: nothing left in the range.
            11 => {
                let end = a[0].saturating_add(a[1].div_ceil(PAGE_SIZE) * PAGE_SIZE);
                assert!(
                    !after.vmas.iter().any(|&(s, e, _)| s < end && a[0] < e),
                    "{what}: a VMA overlaps the unmapped range"
                );
                assert!(
                    !after.user.values().any(|l| l.va < end && a[0] < l.end()),
                    "{what}: a leaf is left in the unmapped range"
                );
            }
            _ => {}
        }
    }

    /// The audit, the tables and the user leaves.
    pub fn check_state(&self, what: &str, hv: &HostedKernel, now: &Snapshot) {
        let (_, violations) = hv.check_invariants();
        assert!(violations.is_empty(), "{what}: invariants broken: {violations:#?}");
        let c = census(&self.mem, self.cr3);
        assert_eq!(c.tables, now.stats.tables_in_use, "{what}: reachable tables vs allocator");
        assert_eq!(c.empty_tables, 0, "{what}: empty table left linked");
        let kernel: Vec<WalkLeaf> = leaves(&self.mem, self.cr3).into_iter().filter(|l| l.va >= USER_END).collect();
        assert!(kernel == self.kernel_leaves, "{what}: the supervisor half changed");
        for l in now.user.values() {
            assert_ne!(l.attrs & US, 0, "{what}: supervisor-only leaf at {:#x} in the user half", l.va);
            let (s, e) = (l.pa, l.pa + l.size);
            let owned = s < KERNEL_REGION_SIZE || (s < TABLES_PA + TABLES_SIZE && TABLES_PA < e);
            assert!(!owned, "{what}: {:#x} maps a VMM frame {s:#x}", l.va);
            assert!(e <= self.mem_size, "{what}: {:#x} maps {s:#x}..{e:#x}, outside RAM", l.va);
            let vma = now.vma_at(l.va).filter(|&(_, end, _)| l.end() <= end);
            let Some((_, _, flags)) = vma else { panic!("{what}: leaf {:#x}..{:#x} outside every VMA", l.va, l.end()) };
            let flags = VmFlags::from_bits_retain(flags);
            assert!(
                flags.intersects(VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC),
                "{what}: {:#x} present under PROT_NONE",
                l.va
            );
            assert!(l.attrs & RW == 0 || flags.contains(VmFlags::WRITE), "{what}: {:#x} writable, its VMA not", l.va);
            assert!(l.attrs & NX != 0 || flags.contains(VmFlags::EXEC), "{what}: {:#x} executable, its VMA not", l.va);
        }
    }

    /// Unmaps the whole user half, drops the process, and checks every
    /// frame, pin and table came back.
    pub fn check_teardown(&self, hv: &HostedKernel, linux: Linux) {
        let sealed = Snapshot::take(self, hv).sealed;
        let done = {
            let mut m = hv.mapper();
            let space = m.space_mut();
            space.munmap(GuestVirtAddr::ZERO, USER_END).map(|f| f.ignore())
        };
        if sealed {
            assert!(done.is_err(), "a sealed mapping was unmapped");
            return;
        }
        done.unwrap_or_else(|e| panic!("unmapping the whole user half: {e}"));
        // The shared zero page (of the process's anonymous memory) lives as
        // long as its provider, which the heap keeps in the address space:
        // taken now if no read fault took it, it is the one frame not back.
        let anon = linux.anon().expect("the process was loaded");
        anon.zero.anon_ops().zero_page().expect("the zero page");
        drop(linux);
        let after = Snapshot::take(self, hv);
        self.check_state("teardown", hv, &after);
        assert!(after.user.is_empty(), "user leaves left after unmapping everything");
        let want = SpaceStats { pool_free: self.gone.pool_free - 1, ..self.gone };
        assert_eq!(after.stats, want, "figures once the process is gone (VMAs, pins, tables, pool)");
    }
}
