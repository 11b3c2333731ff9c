//! The memory calls, Linux arguments in, guest-mm's pipeline, a result or
//! `-errno` out. This file only translates: which flags exist, which
//! range a call names, which provider backs it, and the checks Linux
//! makes before its mm sees a request (in Linux's order, so the same
//! errno wins). Placement, overlap, splitting, merging, faults and frames
//! are guest-mm's.

use guest_mm::providers::HugetlbFile;
use guest_mm::{Advice, GuestVirtAddr, MmError, MmapProvider, MmapRequest, MremapFlags, Placement, VmFlags};

use crate::memory::GuestMem;

use super::super::process::CAP_IPC_LOCK;

use super::super::image::TASK_SIZE;
use super::ctx::{ret, Ctx};
use crate::hosted::hypercall::{Effects, Outcome};
use crate::layout::PAGE_SIZE;

/// The top of the fallback search for a mapping placed anywhere: below
/// the stack and its guard gap (Linux's `stack_guard_gap`, 1 MiB).
const FALLBACK_TOP: u64 = super::super::process::STACK_TOP - super::super::process::STACK_SIZE - (1 << 20);

/// `mmap` flags (Linux values).
pub mod map {
    /// Shared.
    pub const SHARED: u64 = 0x01;
    /// Private.
    pub const PRIVATE: u64 = 0x02;
    /// Shared, with unknown flags refused.
    pub const SHARED_VALIDATE: u64 = 0x03;
    /// Droppable (private anonymous memory the kernel may free).
    pub const DROPPABLE: u64 = 0x08;
    /// The type bits.
    pub const TYPE: u64 = 0x0f;
    /// Exactly here, replacing.
    pub const FIXED: u64 = 0x10;
    /// Not backed by a file.
    pub const ANONYMOUS: u64 = 0x20;
    /// Below 2 GiB.
    pub const BIT32: u64 = 0x40;
    /// A stack that grows down.
    pub const GROWSDOWN: u64 = 0x100;
    /// Ignored (historic).
    pub const DENYWRITE: u64 = 0x800;
    /// Ignored (historic).
    pub const EXECUTABLE: u64 = 0x1000;
    /// Locked.
    pub const LOCKED: u64 = 0x2000;
    /// No swap reservation.
    pub const NORESERVE: u64 = 0x4000;
    /// Populate now.
    pub const POPULATE: u64 = 0x8000;
    /// With POPULATE: do not block.
    pub const NONBLOCK: u64 = 0x1_0000;
    /// A thread stack (a hint).
    pub const STACK: u64 = 0x2_0000;
    /// Huge pages.
    pub const HUGETLB: u64 = 0x4_0000;
    /// Exactly here, failing if anything is there.
    pub const FIXED_NOREPLACE: u64 = 0x10_0000;
    /// Uninitialised anonymous memory (ignored).
    pub const UNINITIALIZED: u64 = 0x400_0000;
    /// The flags `MAP_SHARED_VALIDATE` accepts (`LEGACY_MAP_MASK` and
    /// the newer ones Linux knows).
    pub const KNOWN: u64 = TYPE
        | FIXED
        | ANONYMOUS
        | BIT32
        | GROWSDOWN
        | DENYWRITE
        | EXECUTABLE
        | LOCKED
        | NORESERVE
        | POPULATE
        | NONBLOCK
        | STACK
        | HUGETLB
        | FIXED_NOREPLACE
        | UNINITIALIZED
        | (0x3f << 26);
}

/// `PROT_*`.
mod prot {
    pub const READ: u64 = 1;
    pub const WRITE: u64 = 2;
    pub const EXEC: u64 = 4;
    pub const SEM: u64 = 8;
    pub const GROWSDOWN: u64 = 0x0100_0000;
    pub const GROWSUP: u64 = 0x0200_0000;
}

fn vm_prot(p: u64) -> VmFlags {
    crate::hosted::hypercall::prot_vm_flags(p)
}

fn page_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE_SIZE - 1).map(|x| x & !(PAGE_SIZE - 1))
}

fn va(addr: u64) -> Result<GuestVirtAddr, i32> {
    GuestVirtAddr::try_new(addr).map_err(|_| libc::EINVAL)
}

/// A user range `[addr, addr + len)` a call names: page-aligned start
/// (`EINVAL`), inside `TASK_SIZE` (`ENOMEM` past it, as Linux's
/// `munmap`, `mprotect` and `madvise` answer).
fn user_range(addr: u64, len: u64) -> Result<(GuestVirtAddr, u64), i32> {
    if addr % PAGE_SIZE != 0 {
        return Err(libc::EINVAL);
    }
    let len = page_up(len).ok_or(libc::ENOMEM)?;
    let end = addr.checked_add(len).ok_or(libc::ENOMEM)?;
    if end > TASK_SIZE {
        return Err(libc::ENOMEM);
    }
    Ok((va(addr)?, len))
}

/// The outcome of an address-space operation: its value, and a fatal
/// message if the shootdown after it failed.
fn done(d: crate::hosted::hypercall::SpaceDone<u64>) -> Outcome {
    let mut o = ret(d.result);
    o.effects = Effects { fatal: d.fatal, ..Default::default() };
    o
}

/// `mmap(addr, len, prot, flags, fd, off)`.
pub fn mmap(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [addr, len, p, flags, fd, off] = a;
    let r = (|| -> Result<(MmapRequest, FileProvider<'_>, bool), i32> {
        // `ksys_mmap_pgoff` looks the descriptor up before `do_mmap`
        // checks anything else: a closed one is EBADF even with length 0.
        if flags & map::ANONYMOUS == 0 {
            c.linux.vfs().special(super::super::fs::Fd(fd as i32)).map_err(|e| e.raw())?;
        }
        if len == 0 {
            return Err(libc::EINVAL);
        }
        let len = page_up(len).ok_or(libc::ENOMEM)?;
        if len > TASK_SIZE {
            return Err(libc::ENOMEM);
        }
        if off % PAGE_SIZE != 0 {
            return Err(libc::EINVAL);
        }
        if off.checked_add(len).is_none() {
            return Err(libc::EOVERFLOW);
        }
        let shared = match flags & map::TYPE {
            map::SHARED => true,
            map::PRIVATE => false,
            map::SHARED_VALIDATE => {
                if flags & !map::KNOWN != 0 {
                    return Err(libc::EOPNOTSUPP);
                }
                true
            }
            map::DROPPABLE if flags & map::ANONYMOUS != 0 => false,
            _ => return Err(libc::EINVAL),
        };
        let placement = if flags & map::FIXED_NOREPLACE != 0 {
            Placement::FixedNoReplace
        } else if flags & map::FIXED != 0 {
            Placement::Fixed
        } else {
            Placement::Anywhere
        };
        let hint = match placement {
            Placement::Anywhere => {
                // A hint outside the user range is ignored, as Linux does.
                let h = addr & !(PAGE_SIZE - 1);
                (h >= 0x1_0000 && h.checked_add(len).is_some_and(|e| e <= TASK_SIZE)).then(|| va(h)).transpose()?
            }
            _ => {
                if addr % PAGE_SIZE != 0 {
                    return Err(libc::EINVAL);
                }
                if addr.checked_add(len).is_none_or(|e| e > TASK_SIZE) {
                    return Err(libc::ENOMEM);
                }
                Some(va(addr)?)
            }
        };
        if super::prctl::mdwe_denies(c, p & prot::EXEC != 0, p & prot::WRITE != 0, p & prot::EXEC != 0) {
            return Err(libc::EACCES);
        }
        // Only private anonymous memory may grow down: a file (hugetlb
        // memory is one), shared or droppable mapping is `EINVAL` (do_mmap).
        let special = flags & map::ANONYMOUS == 0 || shared || flags & map::HUGETLB != 0;
        if flags & map::GROWSDOWN != 0 && (special || flags & map::TYPE == map::DROPPABLE) {
            return Err(libc::EINVAL);
        }
        if flags & map::ANONYMOUS == 0 {
            if let Some(f) = huge_memfd(c, fd)? {
                let req = MmapRequest {
                    addr: hint,
                    len,
                    prot: vm_prot(p),
                    shared,
                    placement,
                    pgoff: off >> 12,
                    ..Default::default()
                };
                return hugetlb_file_request(f, flags, req);
            }
        }
        if flags & map::HUGETLB != 0 {
            return hugetlb_request(c, flags, len, vm_prot(p), shared, placement, hint);
        }
        let anon = c.linux.anon().ok_or(libc::ENOMEM)?;
        if flags & map::ANONYMOUS == 0 {
            let file = file_provider(c, fd, off, len, shared, p & prot::WRITE != 0)?;
            let req = MmapRequest {
                addr: hint,
                len,
                prot: vm_prot(p),
                shared,
                placement,
                pgoff: off >> 12,
                ..Default::default()
            };
            let req = if flags & map::LOCKED != 0 { req.locked() } else { req };
            let populate = flags & (map::POPULATE | map::LOCKED) != 0 && flags & map::NONBLOCK == 0;
            return Ok((req, file, populate));
        }
        let mut extra = if flags & map::TYPE == map::DROPPABLE { VmFlags::DROPPABLE } else { VmFlags::empty() };
        // MAP_GROWSDOWN: a stack that grows on a fault below it.
        if flags & map::GROWSDOWN != 0 {
            extra |= VmFlags::GROWSDOWN;
        }
        // Private anonymous memory's offset follows its address (Linux
        // sets vm_pgoff so), which lets neighbours merge.
        let req = MmapRequest {
            addr: hint,
            len,
            prot: vm_prot(p),
            shared,
            placement,
            pgoff: 0,
            pgoff_from_addr: !shared,
            extra,
        };
        // MAP_LOCKED: VM_LOCKED (VmLck counts it), not only populated.
        let req = if flags & map::LOCKED != 0 { req.locked() } else { req };
        let populate = flags & (map::POPULATE | map::LOCKED) != 0 && flags & map::NONBLOCK == 0;
        let provider = if shared { shared_anon(anon, len)? } else { FileProvider::Zero(&anon.zero) };
        Ok((req, provider, populate))
    })();
    let (req, provider, populate) = match r {
        Ok(x) => x,
        Err(e) => return Outcome::err(e),
    };
    let limit = memlock_limit(c);
    let d = c.hv.space_op(c.vcpu, |m| {
        // A mapping locked by `mlockall(MCL_FUTURE)` counts against
        // RLIMIT_MEMLOCK (Linux's `mlock_future_ok`: EAGAIN).
        let s = m.space();
        // So does a MAP_LOCKED one (`mlock_future_ok`).
        let locking = s.def_flags().contains(VmFlags::LOCKED) || req.extra.contains(VmFlags::LOCKED);
        if let (Some(limit), true) = (limit, locking) {
            if s.locked_bytes().saturating_add(req.len) > limit {
                return Err(MmError::Again);
            }
        }
        let mapped = match m.space_mut().mmap(provider.get(), &req) {
            // Linux falls back to searching the whole range, up to the
            // stack's guard gap, when the top-down search below
            // `mmap_base` finds no room.
            Err(MmError::NoSpace { .. }) if req.placement == Placement::Anywhere => {
                let (lo, hi) = m.space().mmap_window();
                m.space_mut().set_mmap_window(lo, FALLBACK_TOP)?;
                let r = m.space_mut().mmap(provider.get(), &req);
                m.space_mut().set_mmap_window(lo, hi)?;
                r?
            }
            r => r?,
        };
        Ok((mapped.addr.raw(), mapped.flush))
    });
    if let (true, Ok(at)) = (populate, &d.result) {
        // Populating is best effort: mmap has succeeded either way. Huge
        // pages are faulted in one by one (they have no fault-around).
        let (at, len) = (*at, req.len);
        let huge = matches!(provider, FileProvider::Huge(_) | FileProvider::HugeFile(_));
        // A shmem object (shared anonymous memory, a memfd, a /tmp file)
        // gets its pages from read faults (`shmem_fault`), where
        // MADV_WILLNEED would map only the pages it already holds.
        let object = matches!(provider, FileProvider::Shmem(_) | FileProvider::File(_));
        // As `populate_vma_page_range`: a private writable mapping is
        // populated with write faults (its own copies, not the file's
        // or the zero page), anything else with read faults.
        let private_writable = !req.shared && req.prot.contains(VmFlags::WRITE);
        let advice = if private_writable {
            Advice::PopulateWrite
        } else if huge || object {
            Advice::PopulateRead
        } else {
            Advice::WillNeed
        };
        let _ = c.hv.space_op(c.vcpu, |m| {
            let fs = m.space_mut().madvise(GuestVirtAddr::try_new(at)?, len, advice)?;
            Ok(((), fs))
        });
    }
    done(d)
}

/// Shared anonymous memory (`MAP_SHARED|MAP_ANONYMOUS`, a shared mapping
/// of `/dev/zero`): a fresh shmem object of `len` bytes (for `/dev/zero`,
/// its offset plus `len`), as Linux's `shmem_zero_setup` makes, so its
/// pages outlive their page-table entries (`MADV_DONTNEED` then a touch
/// finds the same bytes), a fork's child shares them, and a touch past
/// its end after `mremap` grew the mapping is `SIGBUS`. Named after
/// the zero provider, which `/proc/PID/maps` shows as `/dev/zero (deleted)`.
fn shared_anon(anon: &crate::guest::kinds::linux::process::Anon, len: u64) -> Result<FileProvider<'static>, i32> {
    guest_mm::providers::ShmemObject::new(
        crate::guest::kinds::linux::procfs::ZERO_PROVIDER,
        anon.frames.clone(),
        anon.mem.clone(),
        len,
    )
    .map(FileProvider::Shmem)
    .map_err(|e| e.errno())
}

/// What a mapping of a descriptor maps.
enum FileProvider<'a> {
    /// Anonymous memory (`MAP_ANONYMOUS`, `/dev/zero`).
    Zero(&'a guest_mm::providers::ZeroProvider<crate::memory::GuestMem>),
    /// A memfd's pages.
    Shmem(guest_mm::providers::ShmemObject<crate::memory::GuestMem>),
    /// Anonymous `MAP_HUGETLB` memory from the hugetlb pool.
    Huge(guest_mm::providers::HugetlbProvider<crate::memory::GuestMem>),
    /// A regular file's pages.
    File(super::file_map::FileMapping),
    /// An `MFD_HUGETLB` memfd (a hugetlbfs file).
    HugeFile(guest_mm::providers::HugetlbFileProvider<crate::memory::GuestMem>),
}

impl FileProvider<'_> {
    fn get(&self) -> &dyn MmapProvider {
        match self {
            FileProvider::Zero(z) => *z,
            FileProvider::Shmem(o) => o,
            FileProvider::Huge(h) => h,
            FileProvider::File(f) => f,
            FileProvider::HugeFile(h) => h,
        }
    }
}

/// `MAP_HUGE_SHIFT`: where `MAP_HUGETLB`'s page-size bits start.
const MAP_HUGE_SHIFT: u64 = 26;
/// `MAP_HUGE_MASK`: the page-size bits (log2 of the size; 0 the default).
const MAP_HUGE_MASK: u64 = 0x3f;

/// The request of an `mmap(MAP_HUGETLB)` (`ksys_mmap_pgoff`'s hugetlb
/// branch): anonymous only (`EINVAL` for a file that is not hugetlbfs),
/// a page size of 2 MiB (default, `MAP_HUGE_2MB`) or 1 GiB (`MAP_HUGE_1GB`,
/// for which no page is ever reserved: `ENOMEM`), any other `EINVAL`; the
/// length rounded up to the page size, a fixed address on one (`EINVAL`).
fn hugetlb_request<'a>(
    c: &Ctx<'a>,
    flags: u64,
    len: u64,
    prot: VmFlags,
    shared: bool,
    placement: Placement,
    hint: Option<GuestVirtAddr>,
) -> Result<(MmapRequest, FileProvider<'a>, bool), i32> {
    if flags & map::ANONYMOUS == 0 {
        return Err(libc::EINVAL);
    }
    let size: u64 = match (flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK {
        0 | 21 => 2 << 20,
        30 => 1 << 30,
        _ => return Err(libc::EINVAL),
    };
    let len = len.checked_next_multiple_of(size).filter(|&l| l <= TASK_SIZE).ok_or(libc::ENOMEM)?;
    if placement != Placement::Anywhere && hint.is_some_and(|h| h.raw() % size != 0) {
        return Err(libc::EINVAL);
    }
    if size != 2 << 20 {
        // The 1 GiB pool exists on x86-64 and holds no page here.
        return Err(libc::ENOMEM);
    }
    let pool = c.linux.hugetlb().ok_or(libc::ENOMEM)?;
    let req = MmapRequest { addr: hint, len, prot, shared, placement, ..Default::default() };
    let populate = flags & (map::POPULATE | map::LOCKED) != 0 && flags & map::NONBLOCK == 0;
    Ok((req, FileProvider::Huge(pool.provider(flags & map::NORESERVE != 0)), populate))
}

/// The hugetlbfs file behind descriptor `fd` (an `MFD_HUGETLB` memfd), if
/// it is one; `EBADF` for no descriptor.
fn huge_memfd(c: &Ctx<'_>, fd: u64) -> Result<Option<HugetlbFile<GuestMem>>, i32> {
    let special = c.linux.vfs().special(super::super::fs::Fd(fd as i32)).map_err(|e| e.raw())?;
    Ok(special.and_then(|s| super::super::memfd::tag_of(s.special)).and_then(|t| c.linux.memfds().get_huge(t)))
}

/// The request of an `mmap` of a hugetlbfs file (`ksys_mmap_pgoff` and
/// `hugetlbfs_file_mmap`), `MAP_HUGETLB` or not: the length rounded up
/// to 2 MiB, a fixed address on a huge page (`EINVAL`); the offset's
/// alignment, the reservations (`ENOMEM`) and the file's growth are the
/// provider's.
fn hugetlb_file_request<'a>(
    f: HugetlbFile<GuestMem>,
    flags: u64,
    mut req: MmapRequest,
) -> Result<(MmapRequest, FileProvider<'a>, bool), i32> {
    let huge = guest_mm::providers::HUGE_PAGE_SIZE;
    req.len = req.len.checked_next_multiple_of(huge).filter(|&l| l <= TASK_SIZE).ok_or(libc::ENOMEM)?;
    if req.placement != Placement::Anywhere && req.addr.is_some_and(|h| h.raw() % huge != 0) {
        return Err(libc::EINVAL);
    }
    let populate = flags & (map::POPULATE | map::LOCKED) != 0 && flags & map::NONBLOCK == 0;
    Ok((req, FileProvider::HugeFile(f.provider(flags & map::NORESERVE != 0)), populate))
}

/// The provider behind descriptor `fd`: a memfd, `/dev/zero`, or a
/// regular file (`super::file_map`, which checks the open mode against
/// `shared` and `write`); `EBADF` for no descriptor, `ENODEV` for what
/// cannot be mapped.
fn file_provider<'a>(
    c: &Ctx<'a>,
    fd: u64,
    off: u64,
    len: u64,
    shared: bool,
    write: bool,
) -> Result<FileProvider<'a>, i32> {
    let f = super::super::fs::Fd(fd as i32);
    let vfs = c.linux.vfs();
    let special = vfs.special(f).map_err(|e| e.raw())?;
    if let Some(t) = special.and_then(|s| super::super::memfd::tag_of(s.special)) {
        drop(vfs);
        return c.linux.memfds().get(t).map(FileProvider::Shmem).ok_or(libc::EBADF);
    }
    let st = vfs.fstat(f).map_err(|e| e.raw())?;
    let rdev = u64::from_le_bytes(st[40..48].try_into().unwrap_or_default());
    const DEV_ZERO: u64 = (1 << 8) | 5;
    if special.is_none() && rdev == DEV_ZERO {
        let anon = c.linux.anon().ok_or(libc::ENOMEM)?;
        if shared {
            return shared_anon(anon, off.checked_add(len).ok_or(libc::EOVERFLOW)?);
        }
        return Ok(FileProvider::Zero(&anon.zero));
    }
    if special.is_some() {
        return Err(libc::ENODEV);
    }
    drop(vfs);
    super::file_map::file_mapping(c, f, off, len, shared, write).map(FileProvider::File)
}

/// `munmap(addr, len)`.
pub fn munmap(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [addr, len, ..] = a;
    if len == 0 {
        return Outcome::err(libc::EINVAL);
    }
    let (start, len) = match user_range(addr, len) {
        Ok(r) => r,
        Err(e) => return Outcome::err(e),
    };
    done(c.hv.space_op(c.vcpu, |m| Ok((0, m.space_mut().munmap(start, len)?))))
}

/// `mprotect(addr, len, prot)`.
pub fn mprotect(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [addr, len, p, ..] = a;
    // Linux's order: both GROWS bits, the address, a zero length (0),
    // then the other bits.
    if p & prot::GROWSDOWN != 0 && p & prot::GROWSUP != 0 {
        return Outcome::err(libc::EINVAL);
    }
    if len == 0 {
        return if addr % PAGE_SIZE == 0 { Outcome::ret(0) } else { Outcome::err(libc::EINVAL) };
    }
    if p & !(prot::READ | prot::WRITE | prot::EXEC | prot::SEM | prot::GROWSDOWN | prot::GROWSUP) != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let (start, len) = match user_range(addr, len) {
        Ok(r) => r,
        Err(e) => return Outcome::err(e),
    };
    let (down, up) = (p & prot::GROWSDOWN != 0, p & prot::GROWSUP != 0);
    // Memory-deny-write-execute, VMA by VMA in Linux's order: the
    // mappings before a refused one change.
    let (write, exec) = (p & prot::WRITE != 0, p & prot::EXEC != 0);
    let mdwe = super::prctl::mdwe_denies(c, false, write, exec);
    let denied = move |v: &guest_mm::Vma| mdwe && (write || !v.flags().contains(VmFlags::EXEC));
    done(c.hv.space_op(c.vcpu, |m| {
        let s = m.space_mut();
        // PROT_GROWSDOWN: from the start of the stack the range ends in
        // (found under the same lock as the change).
        let (start, end) = s.grows_range(start.raw(), start.raw() + len, down, up)?;
        let start = guest_mm::GuestVirtAddr::try_new(start)?;
        // Linux's order: the mappings before a hole (or a refused one) change.
        Ok((0, s.mprotect_in_order_with(start, end - start.raw(), vm_prot(p), denied)?))
    }))
}

/// `mremap(old, old_len, new_len, flags, new)`.
pub fn mremap(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [old, old_len, new_len, flags, new, _] = a;
    let f = match MremapFlags::from_linux(flags, new) {
        Ok(f) => f,
        Err(err) => return Outcome::err(err.errno()),
    };
    if old % PAGE_SIZE != 0 {
        return Outcome::err(libc::EINVAL);
    }
    if let Some(to) = f.fixed {
        let end = page_up(new_len).and_then(|l| to.raw().checked_add(l));
        if to.raw() % PAGE_SIZE != 0 || end.is_none_or(|e| e > TASK_SIZE) {
            return Outcome::err(libc::EINVAL);
        }
    }
    if page_up(new_len).is_none_or(|l| l > TASK_SIZE) {
        return Outcome::err(libc::EINVAL);
    }
    let Ok(old_va) = va(old) else { return Outcome::err(libc::EINVAL) };
    let limit = memlock_limit(c);
    done(c.hv.space_op(c.vcpu, |m| {
        // A locked mapping that grows (or is duplicated) counts against
        // RLIMIT_MEMLOCK (Linux's `mlock_future_ok` in `vma_to_resize`).
        let s = m.space();
        let grow = page_up(new_len).unwrap_or(u64::MAX).saturating_sub(page_up(old_len).unwrap_or(u64::MAX));
        let flags = s.find_vma(old_va).map_or(VmFlags::empty(), |v| v.flags());
        // Linux's hugetlb mappings never grow, a duplicate included
        // (`EINVAL` before the generic `VM_DONTEXPAND` `EFAULT`).
        if grow > 0 && flags.contains(VmFlags::HUGETLB) {
            return Err(MmError::Invalid("mremap growing a hugetlb mapping"));
        }
        if let (Some(limit), true, true) = (limit, flags.contains(VmFlags::LOCKED), grow > 0) {
            if s.locked_bytes().saturating_add(grow) > limit {
                return Err(MmError::Again);
            }
        }
        let r = m.space_mut().mremap_with(old_va, old_len, new_len, f)?;
        Ok((r.addr.raw(), r.flush))
    }))
}

/// `madvise(addr, len, advice)`.
pub fn madvise(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [addr, len, advice, ..] = a;
    if addr % PAGE_SIZE != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let Ok(adv) = Advice::from_linux(advice) else { return Outcome::err(libc::EINVAL) };
    if len == 0 {
        return Outcome::ret(0);
    }
    let (start, len) = match user_range(addr, len) {
        Ok(r) => r,
        Err(e) => return Outcome::err(e),
    };
    // What MADV_REMOVE punched (even when the call fails part-way: the
    // object has punched) leaves every other process's mappings too.
    done(c.hv.space_op(c.vcpu, |m| {
        let r = m.space_mut().madvise(start, len, adv);
        c.linux.file_zaps().punched(m.space_mut().take_punches());
        Ok((0, r?))
    }))
}

/// The limit on locked memory, unless the process may lock any amount
/// (`CAP_IPC_LOCK`).
fn memlock_limit(c: &Ctx<'_>) -> Option<u64> {
    let p = c.linux.proc();
    (!p.has_cap(CAP_IPC_LOCK)).then_some(p.rlimits[super::super::process::rlimit::MEMLOCK].0)
}

/// Linux's `mlock` start: the address rounded down to a page, the length
/// up (covering the first byte's page).
fn lock_range(addr: u64, len: u64) -> Result<(GuestVirtAddr, u64), i32> {
    let start = addr & !(PAGE_SIZE - 1);
    let len = len.checked_add(addr - start).and_then(page_up).ok_or(libc::ENOMEM)?;
    user_range(start, len)
}

fn mlock_common(c: &Ctx<'_>, addr: u64, len: u64, on_fault: bool) -> Outcome {
    if len == 0 {
        return Outcome::ret(0);
    }
    let (start, len) = match lock_range(addr, len) {
        Ok(r) => r,
        Err(e) => return Outcome::err(e),
    };
    let limit = memlock_limit(c);
    done(c.hv.space_op(c.vcpu, |m| {
        let s = m.space_mut();
        if let Some(limit) = limit {
            let more = len - s.locked_bytes_in(start, len);
            if s.locked_bytes().saturating_add(more) > limit {
                return Err(MmError::NoSpace { len });
            }
        }
        Ok((0, s.mlock(start, len, on_fault)?))
    }))
}

/// `mlock(addr, len)`.
pub fn mlock(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    mlock_common(c, a[0], a[1], false)
}

/// `mlock2(addr, len, flags)`: `MLOCK_ONFAULT`.
pub fn mlock2(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    const MLOCK_ONFAULT: u64 = 1;
    if a[2] & !MLOCK_ONFAULT != 0 {
        return Outcome::err(libc::EINVAL);
    }
    mlock_common(c, a[0], a[1], a[2] & MLOCK_ONFAULT != 0)
}

/// `munlock(addr, len)`.
pub fn munlock(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    if a[1] == 0 {
        return Outcome::ret(0);
    }
    let (start, len) = match lock_range(a[0], a[1]) {
        Ok(r) => r,
        Err(e) => return Outcome::err(e),
    };
    done(c.hv.space_op(c.vcpu, |m| {
        m.space_mut().munlock(start, len)?;
        Ok((0, Default::default()))
    }))
}

/// `mlockall(flags)`: `MCL_CURRENT`, `MCL_FUTURE`, `MCL_ONFAULT`.
pub fn mlockall(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    const CURRENT: u64 = 1;
    const FUTURE: u64 = 2;
    const ONFAULT: u64 = 4;
    let f = a[0];
    if f == 0 || f & !(CURRENT | FUTURE | ONFAULT) != 0 || f == ONFAULT {
        return Outcome::err(libc::EINVAL);
    }
    let limit = memlock_limit(c);
    done(c.hv.space_op(c.vcpu, |m| {
        let s = m.space_mut();
        if let (Some(limit), true) = (limit, f & CURRENT != 0) {
            if s.mapped_bytes() > limit {
                return Err(MmError::NoSpace { len: s.mapped_bytes() });
            }
        }
        Ok((0, s.mlockall(f & CURRENT != 0, f & FUTURE != 0, f & ONFAULT != 0)?))
    }))
}

/// `munlockall()`.
pub fn munlockall(c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    done(c.hv.space_op(c.vcpu, |m| {
        m.space_mut().munlockall();
        Ok((0, Default::default()))
    }))
}

/// `mincore(addr, len, vec)`.
pub fn mincore(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [addr, len, vec, ..] = a;
    if addr % PAGE_SIZE != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let r = (|| {
        let (start, len) = user_range(addr, len)?;
        // One byte per page, copied out a bounded piece at a time.
        let mut done_pages = 0u64;
        let pages = len / PAGE_SIZE;
        while done_pages < pages {
            let n = (pages - done_pages).min(1 << 16);
            let at = va(start.raw() + done_pages * PAGE_SIZE)?;
            let bytes = c.hv.mapper().space().mincore(at, n * PAGE_SIZE).map_err(|e| e.errno())?;
            c.hv.write_user(c.vcpu, vec + done_pages, &bytes)?;
            done_pages += n;
        }
        Ok(0)
    })();
    ret(r)
}

/// `mseal(addr, len, flags)`.
pub fn mseal(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [addr, len, flags, ..] = a;
    if flags != 0 || addr % PAGE_SIZE != 0 {
        return Outcome::err(libc::EINVAL);
    }
    if len == 0 {
        return Outcome::ret(0);
    }
    let Some(l) = page_up(len) else { return Outcome::err(libc::EINVAL) };
    if addr.checked_add(l).is_none_or(|e| e > TASK_SIZE) {
        return Outcome::err(libc::ENOMEM);
    }
    let Ok(start) = va(addr) else { return Outcome::err(libc::EINVAL) };
    done(c.hv.space_op(c.vcpu, |m| {
        m.space_mut().mseal(start, l, 0)?;
        Ok((0, Default::default()))
    }))
}

/// `brk(addr)`: guest-mm's program break (one `[heap]` VMA after the
/// image); a request it cannot meet returns the break unchanged, as
/// Linux does.
pub fn brk(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let d = c.hv.space_op(c.vcpu, |m| {
        let b = m.space_mut().brk(a[0]);
        Ok((b.brk.raw(), b.flush))
    });
    done(d)
}

/// `msync(addr, len, flags)`: everything is in memory; the range must be
/// mapped.
pub fn msync(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [addr, len, flags, ..] = a;
    const ASYNC: u64 = 1;
    const INVALIDATE: u64 = 2;
    const SYNC: u64 = 4;
    if flags & !(ASYNC | INVALIDATE | SYNC) != 0 || (flags & ASYNC != 0 && flags & SYNC != 0) {
        return Outcome::err(libc::EINVAL);
    }
    let (start, len) = match user_range(addr, len) {
        Ok(r) => r,
        Err(e) => return Outcome::err(e),
    };
    let m = c.hv.mapper();
    let end = start.raw() + len;
    let mut at = start.raw();
    for v in m.space().vmas() {
        if v.end() <= at || v.start().raw() >= end {
            continue;
        }
        if v.start().raw() > at {
            return Outcome::err(libc::ENOMEM);
        }
        at = v.end();
        if at >= end {
            break;
        }
    }
    if at < end && len > 0 {
        return Outcome::err(libc::ENOMEM);
    }
    Outcome::ret(0)
}
