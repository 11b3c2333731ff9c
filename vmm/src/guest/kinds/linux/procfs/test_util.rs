//! Helpers of the procfs tests: a real address space over guest memory
//! (no KVM), providers under the names the kind uses, and an
//! independent count of pages taken by translating each one.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use guest_mm::providers::ZeroProvider;
use guest_mm::{FaultAccess, GuestVirtAddr, MmError, MmapProvider, MmapRequest, Pfn, VmFlags, VmaDesc};

use super::*;
use crate::hosted::mapper::{Access, Mapper};
use crate::memory::{create_guest_memory, GuestMem};

/// `TASK_SIZE` of the kind.
pub const TASK: u64 = crate::guest::kinds::linux::image::TASK_SIZE;

/// The zero provider under another name (`[stack]`, `memfd:x`).
pub struct Renamed {
    pub name: &'static str,
    pub inner: Arc<ZeroProvider<GuestMem>>,
}

impl MmapProvider for Renamed {
    fn name(&self) -> &str {
        self.name
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        self.inner.mmap_prepare(desc)
    }
}

/// A mapper over 64 MiB of guest memory and its zero provider.
pub struct Fixture {
    pub mapper: Mapper,
    pub zero: Arc<ZeroProvider<GuestMem>>,
    pub segments: Vec<ImageSegment>,
}

pub fn va(a: u64) -> GuestVirtAddr {
    GuestVirtAddr::try_new(a).unwrap()
}

impl Fixture {
    pub fn new() -> Self {
        let mem = create_guest_memory(64 << 20).unwrap();
        let mapper = Mapper::new(mem.clone()).unwrap();
        let zero = Arc::new(ZeroProvider::new(mapper.space().frames().clone(), mem));
        Fixture { mapper, zero, segments: Vec::new() }
    }

    /// Maps `pages` image pages at `at` (frames from 0x2000 on).
    pub fn image(&mut self, at: u64, pages: u64, access: Access, first_frame: u64) {
        let pfns: Vec<Pfn> = (0..pages).map(|i| Pfn(first_frame + i)).collect();
        self.mapper.map_user_pages(va(at), &pfns, access).unwrap();
    }

    /// An `mmap` of `len` at `at` from `provider`.
    pub fn map(&mut self, provider: &dyn MmapProvider, at: u64, len: u64, prot: VmFlags, shared: bool) {
        let req = if shared { MmapRequest::shared(len, prot) } else { MmapRequest::private(len, prot) };
        let m = self.mapper.space_mut().mmap(provider, &req.fixed(va(at))).unwrap();
        m.flush.ignore();
    }

    /// Anonymous private memory.
    pub fn anon(&mut self, at: u64, len: u64, prot: VmFlags) {
        let zero = self.zero.clone();
        self.map(&*zero, at, len, prot, false);
    }

    /// A fault at `at`.
    pub fn touch(&mut self, at: u64, write: bool) {
        self.mapper.space_mut().fault(va(at), FaultAccess { write, exec: false }).unwrap().flush.ignore();
    }

    /// The view, with the image `/bin/prog` on fe:01 inode 1234.
    pub fn view(&self) -> ProcView<'_> {
        ProcView {
            space: self.mapper.space(),
            image: ImageFile {
                path: "/bin/prog",
                id: FileId { major: 0xfe, minor: 1, ino: 1234 },
                segments: &self.segments,
            },
            start_stack: va(0x7fff_f000_0000),
            task_size: va(TASK),
            shmem_ino: None,
        }
    }

    /// Pages of `[at, at + len)` mapped by a leaf that is not
    /// copy-on-write, found by translating each page.
    pub fn counted_pages(&self, at: u64, len: u64) -> u64 {
        let pt = self.mapper.page_tables();
        (0..len / 4096)
            .filter(|i| {
                let a = va(at + i * 4096);
                pt.translate(a).is_some() && !pt.is_copy_on_write(a)
            })
            .count() as u64
    }
}

/// The value of `field` (in kB) in the first smaps entry of `text`
/// after the line starting with `head`.
pub fn field(text: &str, head: &str, field: &str) -> u64 {
    let at = text.find(head).unwrap();
    let rest = &text[at..];
    let line = rest.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The value of a `status` line.
pub fn status_kb(text: &str, field: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:\t"))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

impl Fixture {
    /// Sets `bits` in the leaf mapping `at`, as a CPU's access would
    /// (Accessed 0x20, Dirty 0x40), walking the tables in guest memory.
    pub fn set_leaf_bits(&self, at: u64, bits: u64) {
        use vm_memory::{Bytes, GuestAddress};
        let mem = self.mapper.space().memory();
        let mut table = self.mapper.cr3().0 & !0xfff;
        for level in (1..=4u64).rev() {
            let slot = GuestAddress(table + 8 * ((at >> (12 + 9 * (level - 1))) & 511));
            let e: u64 = mem.read_obj(slot).unwrap();
            assert!(e & 1 != 0, "{at:#x} not mapped at level {level}");
            if level == 1 || e & 0x80 != 0 {
                mem.write_obj(e | bits, slot).unwrap();
                return;
            }
            table = e & 0x000f_ffff_ffff_f000;
        }
    }
}
