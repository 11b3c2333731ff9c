//! SysV shared memory: `shmget`, `shmat`, `shmdt`, `shmctl`, Linux's
//! arguments in, the segment table (`super::super::sysv_shm`) and
//! guest-mm's pipeline, a result or `-errno` out, with `ipc/shm.c`'s
//! checks in its order.
//!
//! The table's lock is never held across an address-space operation
//! (the attach's VMA hooks take it from inside one).

use guest_mm::{GuestVirtAddr, MmError, MmapRequest, Placement, VmFlags};

use super::super::image::TASK_SIZE;
use super::super::process::{rlimit, CAP_IPC_LOCK};
use super::super::sysv_shm::attach::{now, tag_of};
use super::super::sysv_shm::table::{GetRequest, ShmId, SHM_HUGETLB, SHM_NORESERVE};
use super::super::sysv_shm::{abi, huge_backing, Attach, Backing, Cred};
use super::ctx::{ret, Ctx};
use crate::hosted::hypercall::{Effects, Outcome};
use crate::layout::PAGE_SIZE;

/// `SHM_RDONLY`: attach read-only.
const SHM_RDONLY: u64 = 0o10000;
/// `SHM_RND`: round the address down to `SHMLBA`.
const SHM_RND: u64 = 0o20000;
/// `SHM_REMAP`: replace what is mapped there.
const SHM_REMAP: u64 = 0o40000;
/// `SHM_EXEC`: attach executable.
const SHM_EXEC: u64 = 0o100000;
/// `SHMLBA` on x86-64: a page.
const SHMLBA: u64 = PAGE_SIZE;
/// `SHM_HUGE_SHIFT`: where `SHM_HUGETLB`'s page-size bits start.
const SHM_HUGE_SHIFT: u64 = 26;

/// `shmctl` commands.
mod cmd {
    pub const IPC_RMID: u64 = 0;
    pub const IPC_SET: u64 = 1;
    pub const IPC_STAT: u64 = 2;
    pub const IPC_INFO: u64 = 3;
    pub const SHM_LOCK: u64 = 11;
    pub const SHM_UNLOCK: u64 = 12;
    pub const SHM_STAT: u64 = 13;
    pub const SHM_INFO: u64 = 14;
    pub const SHM_STAT_ANY: u64 = 15;
}

/// The caller's credentials.
fn cred(c: &Ctx<'_>) -> Cred {
    let p = c.linux.proc();
    Cred { uid: p.uid, gid: p.uid, caps: p.caps.0, pid: super::PID as i32 }
}

/// The pages of a new segment (`newseg`'s file): hugetlb for
/// `SHM_HUGETLB` (2 MiB by default or with `SHM_HUGE_2MB`; 1 GiB has no
/// pages here, `ENOMEM`; any other size `EINVAL`; without
/// `CAP_IPC_LOCK` or group 0, `EPERM`), else a shmem object.
fn make_backing(c: &Ctx<'_>, cr: &Cred, flags: u64, name: &str, size: u64) -> Result<Backing, i32> {
    if flags & SHM_HUGETLB != 0 {
        match (flags >> SHM_HUGE_SHIFT) & 0x3f {
            0 | 21 => {}
            30 => return Err(libc::ENOMEM),
            _ => return Err(libc::EINVAL),
        }
        if cr.caps & (1 << CAP_IPC_LOCK) == 0 && cr.gid != 0 {
            return Err(libc::EPERM);
        }
        let pool = c.linux.hugetlb().ok_or(libc::ENOMEM)?;
        return huge_backing(pool, name, size, flags & SHM_NORESERVE != 0);
    }
    let anon = c.linux.anon().ok_or(libc::ENOMEM)?;
    guest_mm::providers::ShmemObject::new(name, anon.frames.clone(), anon.mem.clone(), size)
        .map(Backing::Small)
        .map_err(|e| e.errno())
}

/// `shmget(key, size, shmflg)`.
pub fn shmget(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [key, size, flags, ..] = a;
    let cr = cred(c);
    let r = req_get(c, &cr, GetRequest { key: key as i32, size, flags: flags & 0xffff_ffff });
    ret(r.map(|id| id.0 as u64))
}

fn req_get(c: &Ctx<'_>, cr: &Cred, req: GetRequest) -> Result<ShmId, i32> {
    // The backing is made under the table's lock (no address-space
    // operation runs then: the hooks cannot be waiting for it).
    let mut t = c.linux.shm_table();
    t.get(req, cr, now(), |name, size| make_backing(c, cr, req.flags, name, size))
}

/// `shmat(shmid, shmaddr, shmflg)` (`do_shmat`).
pub fn shmat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [id, addr, flags, ..] = a;
    let r = (|| -> Result<(Attach, MmapRequest, bool), i32> {
        if (id as i32) < 0 {
            return Err(libc::EINVAL);
        }
        let mut addr = addr;
        if addr != 0 {
            if addr % SHMLBA != 0 {
                if flags & SHM_RND == 0 {
                    return Err(libc::EINVAL);
                }
                addr &= !(SHMLBA - 1);
                if addr == 0 && flags & SHM_REMAP != 0 {
                    return Err(libc::EINVAL);
                }
            }
        } else if flags & SHM_REMAP != 0 {
            return Err(libc::EINVAL);
        }
        let fixed = a[1] != 0;
        let (mut prot, mut acc) =
            if flags & SHM_RDONLY != 0 { (VmFlags::READ, 0o444) } else { (VmFlags::READ | VmFlags::WRITE, 0o666) };
        if flags & SHM_EXEC != 0 {
            prot |= VmFlags::EXEC;
            acc |= 0o111;
        }
        let cr = cred(c);
        let (backing, file_key) = {
            let t = c.linux.shm_table();
            let s = t.check_attach(ShmId(id as i32), &cr, acc)?;
            (s.backing.clone(), s.file_key)
        };
        let size = backing.file_size();
        let len = size.checked_next_multiple_of(PAGE_SIZE).ok_or(libc::ENOMEM)?;
        if fixed && addr.checked_add(len).is_none() {
            return Err(libc::EINVAL);
        }
        if fixed && addr + len > TASK_SIZE {
            return Err(libc::ENOMEM);
        }
        let at = if fixed { Some(GuestVirtAddr::try_new(addr).map_err(|_| libc::EINVAL)?) } else { None };
        let placement = if fixed { Placement::Fixed } else { Placement::Anywhere };
        let req = MmapRequest { addr: at, len, prot, shared: true, placement, pgoff: 0, ..Default::default() };
        let table = c.linux.shm().clone();
        let attach = Attach::new(ShmId(id as i32), file_key, backing, table, cr.pid, flags & SHM_RDONLY != 0);
        Ok((attach, req, fixed && flags & SHM_REMAP == 0))
    })();
    let (attach, req, no_overlap) = match r {
        Ok(x) => x,
        Err(e) => return Outcome::err(e),
    };
    let d = c.hv.space_op(c.vcpu, |m| {
        if let (true, Some(at)) = (no_overlap, req.addr) {
            let end = at.raw() + req.len;
            if m.space().vmas().any(|v| v.start().raw() < end && v.end() > at.raw()) {
                return Err(MmError::Invalid("shmat over a mapping without SHM_REMAP"));
            }
        }
        let mapped = match m.space_mut().mmap(&attach, &req) {
            // As mmap: the whole range below the stack's guard gap when
            // the window below `mmap_base` has no room.
            Err(MmError::NoSpace { .. }) if req.placement == Placement::Anywhere => {
                let (lo, hi) = m.space().mmap_window();
                let top = super::super::process::STACK_TOP - super::super::process::STACK_SIZE - (1 << 20);
                m.space_mut().set_mmap_window(lo, top)?;
                let r = m.space_mut().mmap(&attach, &req);
                m.space_mut().set_mmap_window(lo, hi)?;
                r?
            }
            r => r?,
        };
        Ok((mapped.addr.raw(), mapped.flush))
    });
    drop(attach);
    let mut o = ret(d.result);
    o.effects = Effects { fatal: d.fatal, ..Default::default() };
    o
}

/// `shmdt(shmaddr)` (`ksys_shmdt`): the first VMA of an attach at or
/// above `shmaddr` whose offset matches its distance from it is unmapped
/// with every other VMA of the same attach so placed, up to the
/// segment's size from `shmaddr`; `EINVAL` when there is none.
pub fn shmdt(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let addr = a[0];
    if addr % PAGE_SIZE != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let d = c.hv.space_op(c.vcpu, |m| {
        let matches = |v: &guest_mm::Vma| v.start().raw().wrapping_sub(addr) / PAGE_SIZE == v.pgoff();
        let mut doomed: Vec<(u64, u64)> = Vec::new();
        let mut first: Option<(std::sync::Arc<dyn std::any::Any + Send + Sync>, u64)> = None;
        for v in m.space().vmas().filter(|v| v.end() > addr) {
            match &first {
                None => {
                    if tag_of(v).is_some() && matches(v) {
                        let size = tag_of(v).map_or(0, |t| t.file_size);
                        first = v.private().cloned().map(|p| (p, size.next_multiple_of(PAGE_SIZE)));
                        doomed.push((v.start().raw(), v.size()));
                    }
                }
                Some((tag, size)) => {
                    if v.end() - addr > *size {
                        break;
                    }
                    let same = v.private().is_some_and(|p| std::sync::Arc::ptr_eq(p, tag));
                    if same && matches(v) {
                        doomed.push((v.start().raw(), v.size()));
                    }
                }
            }
        }
        if doomed.is_empty() {
            return Err(MmError::Invalid("no attach at the address"));
        }
        let mut flush = guest_mm::FlushSet::default();
        for (start, len) in doomed {
            // Whole VMAs: an unmap cannot fail but for a seal.
            flush.merge(m.space_mut().munmap(GuestVirtAddr::try_new(start)?, len)?);
        }
        Ok((0, flush))
    });
    let mut o = ret(d.result);
    o.effects = Effects { fatal: d.fatal, ..Default::default() };
    o
}

/// `shmctl(shmid, cmd, buf)` (`ksys_shmctl`; on x86-64 every call is the
/// `IPC_64` version, and `cmd` is taken as it is).
pub fn shmctl(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [id, command, buf, ..] = a;
    let (id, command) = (id as i32, command as i32);
    if command < 0 || id < 0 {
        return Outcome::err(libc::EINVAL);
    }
    let cr = cred(c);
    let shm = ShmId(id);
    let r = match command as u64 {
        cmd::IPC_INFO => {
            let (bytes, max) = {
                let t = c.linux.shm_table();
                (abi::shminfo(&t.limits()), t.max_index())
            };
            c.hv.write_user(c.vcpu, buf, &bytes).map(|()| u64::from(max))
        }
        cmd::SHM_INFO => {
            let (bytes, max) = {
                let t = c.linux.shm_table();
                let rss: u64 = t.segments().map(|s| s.backing.resident_bytes() / PAGE_SIZE).sum();
                (abi::shm_info(&t.usage(), rss), t.max_index())
            };
            c.hv.write_user(c.vcpu, buf, &bytes).map(|()| u64::from(max))
        }
        cmd::IPC_STAT | cmd::SHM_STAT | cmd::SHM_STAT_ANY => {
            let found = {
                let t = c.linux.shm_table();
                let seg = match command as u64 {
                    cmd::IPC_STAT => t.segment(shm),
                    _ => t.at_index(id as u32),
                };
                seg.and_then(|s| {
                    let mut st = if command as u64 == cmd::SHM_STAT_ANY { s.stat } else { t.stat(s.id, &cr)? };
                    st.nattch = s.stat.nattch;
                    Ok((s.id, st))
                })
            };
            found.and_then(|(sid, st)| {
                c.hv.write_user(c.vcpu, buf, &abi::shmid_ds(&st))?;
                Ok(if command as u64 == cmd::IPC_STAT { 0 } else { sid.0 as u64 })
            })
        }
        cmd::IPC_SET => (|| {
            let bytes = c.hv.read_user(c.vcpu, buf, abi::SHMID_DS_SIZE as u64)?;
            let ds: [u8; abi::SHMID_DS_SIZE] = bytes.try_into().map_err(|_| libc::EFAULT)?;
            let (uid, gid, mode) = abi::set_fields(&ds);
            c.linux.shm_table().set(shm, &cr, uid, gid, mode, now()).map(|()| 0)
        })(),
        cmd::IPC_RMID => {
            let gone = c.linux.shm_table().remove(shm, &cr);
            // The backing (if destroyed now) drops here, unlocked.
            gone.map(|b| {
                drop(b);
                0
            })
        }
        cmd::SHM_LOCK | cmd::SHM_UNLOCK => {
            let memlock = c.linux.proc().rlimits[rlimit::MEMLOCK].0;
            c.linux.shm_table().lock(shm, &cr, command as u64 == cmd::SHM_LOCK, memlock).map(|()| 0)
        }
        _ => Err(libc::EINVAL),
    };
    ret(r)
}
