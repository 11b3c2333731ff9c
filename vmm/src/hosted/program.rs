//! A guest program image: segments at virtual addresses with their
//! access rights, and an entry point. Both the built-in guest and a
//! loaded ELF become one of these; [`load`] copies it into frames from the
//! load region and maps them through the [`Mapper`].

use std::collections::BTreeMap;

use guest_mm::Pfn;
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};

use crate::hosted::mapper::{Access, Mapper};
use crate::layout::{PAGE_SIZE, USER_STACK_SIZE};
use crate::memory::{BootFrames, GuestMem, MemoryError};

/// Errors loading a program.
#[derive(Debug, Error)]
pub enum LoadError {
    /// A segment is not in the user half or wraps.
    #[error("segment at {va:#x} ({len:#x} bytes) is outside the user address range")]
    BadSegment {
        /// Virtual address.
        va: u64,
        /// Length in memory.
        len: u64,
    },
    /// A segment has more file bytes than memory bytes.
    #[error("segment at {va:#x} has {file:#x} file bytes but only {mem:#x} memory bytes")]
    FileLargerThanMemory {
        /// Virtual address.
        va: u64,
        /// File bytes.
        file: u64,
        /// Memory bytes.
        mem: u64,
    },
    /// Frames ran out.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Writing the image into guest memory failed.
    #[error("cannot write the image at {pa:#x}")]
    Write {
        /// Guest-physical address.
        pa: u64,
    },
    /// guest-mm refused a mapping.
    #[error("cannot map the image at {va:#x}: {source}")]
    Map {
        /// Virtual address.
        va: u64,
        /// The error.
        #[source]
        source: guest_mm::MmError,
    },
}

/// One loadable segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address of the first byte (need not be page aligned).
    pub va: u64,
    /// Initialised bytes.
    pub bytes: Vec<u8>,
    /// Size in memory (the rest is zero).
    pub mem_len: u64,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

/// A program to run at CPL 3.
#[derive(Clone, Debug, Default)]
pub struct Program {
    /// Segments.
    pub segments: Vec<Segment>,
    /// Entry point.
    pub entry: u64,
}

/// Highest user address (exclusive) a segment may reach.
const USER_TOP: u64 = 1 << 47;

/// Copies `prog` into frames from `frames` and maps every page at its
/// virtual address. Pages shared by two segments get one frame with the
/// union of their rights.
pub fn load(prog: &Program, mem: &GuestMem, frames: &mut BootFrames, mapper: &mut Mapper) -> Result<(), LoadError> {
    // Refuse sizes the load region cannot hold before walking any page
    // (a hostile ELF may claim terabytes of .bss).
    let limit = frames.available();
    let mut claimed = 0u64;
    for s in &prog.segments {
        claimed = claimed.saturating_add(s.mem_len.div_ceil(PAGE_SIZE) + 1);
        if claimed > limit.saturating_add(prog.segments.len() as u64) {
            return Err(LoadError::Memory(MemoryError::LoadRegionFull { needed: claimed.saturating_sub(limit) }));
        }
    }
    // Page -> (write, exec).
    let mut pages: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
    for s in &prog.segments {
        let file = s.bytes.len() as u64;
        if file > s.mem_len {
            return Err(LoadError::FileLargerThanMemory { va: s.va, file, mem: s.mem_len });
        }
        let end = s.va.checked_add(s.mem_len).filter(|&e| e <= USER_TOP && s.mem_len > 0);
        let Some(end) = end else {
            return Err(LoadError::BadSegment { va: s.va, len: s.mem_len });
        };
        let mut p = s.va & !(PAGE_SIZE - 1);
        while p < end {
            let e = pages.entry(p).or_default();
            e.0 |= s.write;
            e.1 |= s.exec;
            p += PAGE_SIZE;
        }
    }
    let pfns = frames.alloc(pages.len() as u64)?;
    let frame_of: BTreeMap<u64, Pfn> = pages.keys().copied().zip(pfns.iter().copied()).collect();
    for &pfn in &pfns {
        mem.write_slice(&[0u8; PAGE_SIZE as usize], pfn.addr()).map_err(|_| LoadError::Write { pa: pfn.addr().0 })?;
    }
    for s in &prog.segments {
        // Copy page by page: consecutive virtual pages need not have
        // consecutive frames.
        let mut done = 0usize;
        while done < s.bytes.len() {
            let va = s.va + done as u64;
            let page = va & !(PAGE_SIZE - 1);
            let off = va - page;
            let n = ((PAGE_SIZE - off) as usize).min(s.bytes.len() - done);
            let pa = frame_of[&page].addr().0 + off;
            mem.write_slice(&s.bytes[done..done + n], GuestAddress(pa)).map_err(|_| LoadError::Write { pa })?;
            done += n;
        }
    }
    // Map runs of consecutive pages with the same rights in one call.
    let mut run: Vec<Pfn> = Vec::new();
    let mut run_start = 0u64;
    let mut run_access = (false, false);
    let entries: Vec<(u64, (bool, bool))> = pages.into_iter().collect();
    for (i, &(va, acc)) in entries.iter().enumerate() {
        if !run.is_empty() && (va != run_start + run.len() as u64 * PAGE_SIZE || acc != run_access) {
            map_run(mapper, run_start, &run, run_access)?;
            run.clear();
        }
        if run.is_empty() {
            run_start = va;
            run_access = acc;
        }
        run.push(pfns[i]);
    }
    if !run.is_empty() {
        map_run(mapper, run_start, &run, run_access)?;
    }
    Ok(())
}

fn map_run(mapper: &mut Mapper, va: u64, pages: &[Pfn], (write, exec): (bool, bool)) -> Result<(), LoadError> {
    guest_mm::GuestVirtAddr::try_new(va)
        .and_then(|v| mapper.map_user_pages(v, pages, Access { write, exec }))
        .map_err(|source| LoadError::Map { va, source })
}

/// Maps a zeroed user stack of [`USER_STACK_SIZE`] ending at `top`.
pub fn map_stack(top: u64, mem: &GuestMem, frames: &mut BootFrames, mapper: &mut Mapper) -> Result<(), LoadError> {
    let stack =
        Segment { va: top - USER_STACK_SIZE, bytes: Vec::new(), mem_len: USER_STACK_SIZE, write: true, exec: false };
    load(&Program { segments: vec![stack], entry: 0 }, mem, frames, mapper)
}

#[cfg(test)]
mod tests {
    use vm_memory::GuestAddress;

    use super::*;
    use crate::memory::create_guest_memory;

    fn setup() -> (GuestMem, BootFrames, Mapper) {
        let mem = create_guest_memory(64 << 20).unwrap();
        let mapper = Mapper::new(mem.clone()).unwrap();
        let frames =
            BootFrames::new(GuestAddress(crate::layout::LOAD_PA), GuestAddress(crate::layout::LOAD_PA + 0x10_0000));
        (mem, frames, mapper)
    }

    fn seg(va: u64, bytes: &[u8], mem_len: u64, write: bool) -> Segment {
        Segment { va, bytes: bytes.to_vec(), mem_len, write, exec: !write }
    }

    #[test]
    fn segments_sharing_a_page_get_one_frame_with_both_rights() {
        let (mem, mut frames, mut mapper) = setup();
        let prog = Program {
            segments: vec![seg(0x40_0000, b"code", 0x10, false), seg(0x40_0800, b"data", 0x1000, true)],
            entry: 0x40_0000,
        };
        load(&prog, &mem, &mut frames, &mut mapper).unwrap();
        let pt = mapper.page_tables();
        let t0 = pt.translate(guest_mm::GuestVirtAddr::try_new(0x40_0000).unwrap()).unwrap();
        let t1 = pt.translate(guest_mm::GuestVirtAddr::try_new(0x40_1000).unwrap()).unwrap();
        assert!(t0.prot.writable && !t0.prot.no_execute && t0.prot.user);
        assert!(t1.prot.writable && t1.prot.no_execute);
        let mut b = [0u8; 4];
        vm_memory::Bytes::read_slice(&mem, &mut b, GuestAddress(t0.phys.0 + 0x800)).unwrap();
        assert_eq!(&b, b"data");
    }

    #[test]
    fn hostile_segments_are_refused_without_walking_them() {
        let (mem, mut frames, mut mapper) = setup();
        let huge = Program { segments: vec![seg(0x40_0000, b"", 1 << 40, true)], entry: 0 };
        assert!(matches!(load(&huge, &mem, &mut frames, &mut mapper), Err(LoadError::Memory(_))));
        let kernel = Program { segments: vec![seg(0xffff_8000_0000_0000, b"x", 1, false)], entry: 0 };
        assert!(matches!(load(&kernel, &mem, &mut frames, &mut mapper), Err(LoadError::BadSegment { .. })));
        let wrap = Program { segments: vec![seg(u64::MAX - 10, b"", 100, false)], entry: 0 };
        assert!(load(&wrap, &mem, &mut frames, &mut mapper).is_err());
        let fat = Program { segments: vec![seg(0x40_0000, b"abcd", 2, false)], entry: 0 };
        assert!(matches!(load(&fat, &mem, &mut frames, &mut mapper), Err(LoadError::FileLargerThanMemory { .. })));
        // Overlapping the stack (already mapped) is refused by guest-mm.
        map_stack(0x8000_0000, &mem, &mut frames, &mut mapper).unwrap();
        let over = Program { segments: vec![seg(0x7fff_f000, b"", 0x1000, false)], entry: 0 };
        assert!(matches!(load(&over, &mem, &mut frames, &mut mapper), Err(LoadError::Map { .. })));
    }
}
