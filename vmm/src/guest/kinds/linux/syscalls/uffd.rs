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
                Ok(0)
            }
            UFFDIO_UNREGISTER => {
                let [start, len] = read_words::<2>(c, arg)?;
                uffd::validate_range(start, len, MIN_ADDR, TASK_SIZE)?;
                Ok(0)
            }
            _ => Err(libc::EINVAL),
        }
    })();
    ret(r)
}
