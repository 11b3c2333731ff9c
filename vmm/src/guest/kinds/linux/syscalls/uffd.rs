//! `userfaultfd(flags)` and the ioctls of its descriptor, registration
//! only (see [`super::super::userfaultfd`] for what is not done):
//! `UFFDIO_API`, `UFFDIO_REGISTER` and `UFFDIO_UNREGISTER` check their
//! arguments and the VMAs as Linux 6.12 does; every other request is
//! `EINVAL`, as Linux answers an unknown one.

use guest_mm::VmFlags;

use super::super::image::TASK_SIZE;
use super::super::userfaultfd::{self as uffd, VmaKind};
use super::ctx::{ret, Ctx};
use crate::hosted::hypercall::Outcome;

/// `mmap_min_addr`.
const MIN_ADDR: u64 = 0x1_0000;
/// `UFFDIO_API`: `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
const UFFDIO_API: u64 = 0xc018_aa3f;
/// `UFFDIO_REGISTER`: `_IOWR(0xAA, 0x00, struct uffdio_register)`.
const UFFDIO_REGISTER: u64 = 0xc020_aa00;
/// `UFFDIO_UNREGISTER`: `_IOR(0xAA, 0x01, struct uffdio_range)`.
const UFFDIO_UNREGISTER: u64 = 0x8010_aa01;
/// `UFFDIO_COPY`: `_IOWR(0xAA, 0x03, struct uffdio_copy)`.
const UFFDIO_COPY: u64 = 0xc028_aa03;

/// `userfaultfd(flags)`.
pub fn userfaultfd(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    ret(c.linux.uffds().create(&mut c.linux.vfs(), a[0]).map(|f| f.0 as u64))
}

/// `N` little-endian words of the program's memory at `at` (`EFAULT`).
fn read_words<const N: usize>(c: &Ctx<'_>, at: u64) -> Result<[u64; N], i32> {
    let bytes = c.hv.read_user(c.vcpu, at, 8 * N as u64)?;
    let mut out = [0u64; N];
    for (w, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(b.try_into().map_err(|_| libc::EFAULT)?);
    }
    Ok(out)
}

fn to_bytes(ws: &[u64]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The VMAs meeting `[start, end)`, as `userfaultfd_register` sees them.
fn vmas_in(c: &Ctx<'_>, start: u64, end: u64) -> Vec<VmaKind> {
    let m = c.hv.mapper();
    m.space()
        .vmas()
        .filter(|v| v.end() > start && v.start().raw() < end)
        .map(|v| {
            let f = v.flags();
            let hugetlb = f.contains(VmFlags::HUGETLB).then(|| v.ops().map_or(2 << 20, |o| o.pagesize(v)));
            let memfd = v.provider_name().starts_with(super::super::procfs::MEMFD_PREFIX);
            VmaKind {
                start: v.start().raw(),
                end: v.end(),
                anonymous: v.is_anonymous(),
                shmem: hugetlb.is_none()
                    && (memfd
                        || (f.contains(VmFlags::SHARED) && v.provider_name() == super::super::procfs::ZERO_PROVIDER)),
                hugetlb,
                may_write: f.contains(VmFlags::MAYWRITE),
                droppable: f.contains(VmFlags::DROPPABLE),
            }
        })
        .collect()
}

/// An ioctl on userfaultfd `tag`.
pub fn ioctl(c: &Ctx<'_>, tag: u32, req: u64, arg: u64) -> Outcome {
    let r = (|| {
        if req == UFFDIO_API {
            let [api, features, _] = read_words::<3>(c, arg)?;
            let (r, out) = c.linux.uffds().api(tag, api, features);
            c.hv.write_user(c.vcpu, arg, &to_bytes(&out))?;
            return r.map(|()| 0);
        }
        if !c.linux.uffds().initialized(tag) {
            return Err(libc::EINVAL);
        }
        match req {
            UFFDIO_REGISTER => {
                // range.start, range.len, mode (ioctls is written back).
                let [start, len, mode] = read_words::<3>(c, arg)?;
                uffd::check_mode(mode)?;
                let end = uffd::validate_range(start, len, MIN_ADDR, TASK_SIZE)?;
                let ioctls = uffd::check_register(&vmas_in(c, start, end), start, end, mode)?;
                c.hv.write_user(c.vcpu, arg + 24, &ioctls.to_le_bytes())?;
                c.linux.uffds().register(tag, start, end);
                Ok(0)
            }
            UFFDIO_UNREGISTER => {
                let [start, len] = read_words::<2>(c, arg)?;
                let end = uffd::validate_range(start, len, MIN_ADDR, TASK_SIZE)?;
                c.linux.uffds().unregister(tag, start, end);
                Ok(0)
            }
            UFFDIO_COPY => copy(c, tag, arg),
            _ => Err(libc::EINVAL),
        }
    })();
    ret(r)
}

/// `UFFDIO_COPY` (`struct uffdio_copy { dst, src, len, mode, copy }`):
/// page by page, the bytes at `src` become a fresh page at `dst`, mapped
/// with the VMA's own protection (a read-only VMA's page stays read-only,
/// as `mfill_atomic_pte_copy` maps it); `EEXIST` at the first page
/// already there. `copy` gets the bytes copied, or the error when none
/// were. `dst`, `len` page-aligned and registered with this context
/// (`ENOENT` otherwise); only mode `DONTWAKE` (nothing waits here).
fn copy(c: &Ctx<'_>, tag: u32, arg: u64) -> Result<u64, i32> {
    const DONTWAKE: u64 = 1;
    let [dst, src, len, mode] = read_words::<4>(c, arg)?;
    let report = |v: i64| c.hv.write_user(c.vcpu, arg + 32, &v.to_le_bytes());
    let end = uffd::validate_range(dst, len, MIN_ADDR, TASK_SIZE)?;
    if src.checked_add(len).is_none() || mode & !DONTWAKE != 0 {
        return Err(libc::EINVAL);
    }
    if !c.linux.uffds().covers(tag, dst, end) {
        return Err(libc::ENOENT);
    }
    let mut done = 0u64;
    let mut failed = None;
    while done < len {
        let at = dst + done;
        let va = guest_mm::GuestVirtAddr::try_new(at).map_err(|_| libc::EINVAL)?;
        let present = c.hv.mapper().space().translate(va).is_some();
        if present {
            failed = Some(libc::EEXIST);
            break;
        }
        let bytes = match c.hv.read_user(c.vcpu, src + done, 4096) {
            Ok(b) => b,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        match super::super::proc_mem::write(c.linux, c.hv, c.vcpu, at, &bytes) {
            Ok(4096) => done += 4096,
            Ok(_) | Err(_) => {
                failed = Some(libc::ENOENT);
                break;
            }
        }
    }
    match (failed, done) {
        (Some(e), 0) => {
            report(-i64::from(e))?;
            Err(e)
        }
        (Some(_), n) => {
            // A partial copy: the count says how far, the call EAGAIN.
            report(n as i64)?;
            Err(libc::EAGAIN)
        }
        (None, n) => {
            report(n as i64)?;
            Ok(0)
        }
    }
}
