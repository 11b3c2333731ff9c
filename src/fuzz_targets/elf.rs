//! The ELF target: a file through the Solo5 note reader and
//! `guest::elf_program::parse`, and what parses
//! through `program::load` into a fresh guest, as `vmm run --guest` does.
//! A program that loads is read back through an independent walk of the
//! page tables: every page of every segment is mapped user-accessible, to a
//! frame of the load region, with the union of the rights of the segments
//! on it, and holds the segments' bytes (later segments win, as in the
//! loader) with zeros elsewhere.

use std::collections::BTreeMap;

use vm_memory::{Bytes, GuestAddress};
use vmm::guest::elf_program::parse;
use vmm::guest::kinds::solo5::note;
use vmm::hosted::mapper::Mapper;
use vmm::hosted::program::{load, Program};
use vmm::layout::{LOAD_PA, LOAD_SIZE, MIN_MEM_SIZE, PAGE_SIZE};
use vmm::memory::{create_guest_memory, BootFrames};

use crate::walk::{leaves, NX, RW, US};

/// Runs one input.
pub fn elf(data: &[u8]) {
    // What `vmm run --guest` reads first: whether it is a Solo5 unikernel.
    let solo5 = note::is_solo5(data);
    if let Ok(n) = note::read(data) {
        assert!(solo5, "notes that read carry Solo5's ABI note");
        let _ = note::devices(&n.manifest);
    }
    let Ok(prog) = parse(data) else { return };
    assert!(!prog.segments.is_empty(), "a parsed program has segments");
    for s in &prog.segments {
        assert!(s.bytes.len() <= data.len(), "segment bytes come from the file");
        assert!(s.mem_len > 0, "empty segments are skipped");
    }
    let mem = create_guest_memory(MIN_MEM_SIZE).expect("guest memory");
    let mut mapper = Mapper::new(mem.clone()).expect("address space");
    let mut frames = BootFrames::new(GuestAddress(LOAD_PA), GuestAddress(LOAD_PA + LOAD_SIZE));
    if load(&prog, &mem, &mut frames, &mut mapper).is_err() {
        return;
    }
    check_loaded(&prog, &mem, mapper.cr3());
}

/// Expected rights and contents of every page of `prog`.
fn expected(prog: &Program) -> BTreeMap<u64, (bool, bool, Vec<u8>)> {
    let mut pages: BTreeMap<u64, (bool, bool, Vec<u8>)> = BTreeMap::new();
    for s in &prog.segments {
        let end = s.va + s.mem_len;
        let mut p = s.va & !(PAGE_SIZE - 1);
        while p < end {
            let e = pages.entry(p).or_insert_with(|| (false, false, vec![0; PAGE_SIZE as usize]));
            e.0 |= s.write;
            e.1 |= s.exec;
            p += PAGE_SIZE;
        }
    }
    for s in &prog.segments {
        for (k, &b) in s.bytes.iter().enumerate() {
            let va = s.va + k as u64;
            let page = pages.get_mut(&(va & !(PAGE_SIZE - 1))).expect("page of a segment");
            page.2[(va % PAGE_SIZE) as usize] = b;
        }
    }
    pages
}

pub(super) fn check_loaded(prog: &Program, mem: &vmm::memory::GuestMem, cr3: GuestAddress) {
    let want = expected(prog);
    let got: BTreeMap<u64, _> = leaves(mem, cr3).into_iter().map(|l| (l.va, l)).collect();
    assert_eq!(got.len(), want.len(), "one leaf per program page, nothing else");
    let mut buf = vec![0u8; PAGE_SIZE as usize];
    for (va, (write, exec, bytes)) in &want {
        let l = got.get(va).unwrap_or_else(|| panic!("page {va:#x} is not mapped"));
        assert_eq!(l.size, PAGE_SIZE, "4 KiB leaf at {va:#x}");
        assert!(l.pa >= LOAD_PA && l.pa < LOAD_PA + LOAD_SIZE, "frame {:#x} of {va:#x} outside the load region", l.pa);
        assert_ne!(l.attrs & US, 0, "{va:#x} user-accessible");
        assert_eq!(l.attrs & RW != 0, *write, "write right at {va:#x}");
        assert_eq!(l.attrs & NX == 0, *exec, "exec right at {va:#x}");
        mem.read_slice(&mut buf, GuestAddress(l.pa)).expect("frame in guest memory");
        assert!(buf == *bytes, "contents of {va:#x}");
    }
    let mut frames: Vec<u64> = got.values().map(|l| l.pa).collect();
    frames.sort_unstable();
    frames.dedup();
    assert_eq!(frames.len(), got.len(), "every page has its own frame");
}
