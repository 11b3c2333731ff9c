//! The pipeline builds a VMA only from its own bounds. Outside this crate
//! a provider cannot even build a second descriptor (see the
//! `compile_fail` examples on [`crate::VmaDesc`]); here, where the
//! constructor is visible, a provider that replaces its descriptor
//! anyway is refused and nothing changes.

#![allow(clippy::unwrap_used)]

use super::test_util::{space, va, WINDOW};
use super::MmapRequest;
use crate::addr::{Pfn, PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::provider::MmapProvider;

/// Replaces its descriptor by one for `[at, at + len)` and remaps it whole.
struct Replacer {
    at: u64,
    len: u64,
}

impl MmapProvider for Replacer {
    fn name(&self) -> &str {
        "replacer"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        *desc = VmaDesc::new(va(self.at), self.at + self.len, desc.pgoff, desc.flags, desc.page_prot);
        desc.mmap_action_remap_full(Pfn(0x100));
        Ok(())
    }
}

/// Remaps its VMA whole.
struct Plain;

impl MmapProvider for Plain {
    fn name(&self) -> &str {
        "plain"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_remap_full(Pfn(0x200));
        Ok(())
    }
}

#[test]
fn a_replaced_descriptor_is_refused_and_changes_nothing() {
    let mut s = space();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let old = s.mmap(&Plain, &MmapRequest::shared(4 * PAGE_SIZE, rw).fixed(va(WINDOW.0))).unwrap();
    old.flush.ignore();
    let vmas: Vec<String> = s.vmas().map(|v| format!("{v:?}")).collect();
    let leaves = s.page_tables().leaves(va(0), 1 << 47);
    // Over the existing mapping; past the window's end; both; a shrink
    // inside the pipeline's own range.
    let cases = [
        (WINDOW.0, 8 * PAGE_SIZE),
        (WINDOW.1 - PAGE_SIZE, 4 * PAGE_SIZE),
        (WINDOW.0 - PAGE_SIZE, WINDOW.1 - WINDOW.0 + 2 * PAGE_SIZE),
        (WINDOW.1 - 2 * PAGE_SIZE, PAGE_SIZE),
    ];
    for (at, len) in cases {
        let p = Replacer { at, len };
        let r = s.mmap(&p, &MmapRequest::shared(2 * PAGE_SIZE, rw));
        let e = r.map(|m| m.addr).unwrap_err();
        assert_eq!(e.errno(), errno::EINVAL, "{at:#x}+{len:#x}: {e}");
        assert_eq!(s.vmas().map(|v| format!("{v:?}")).collect::<Vec<_>>(), vmas, "{at:#x}+{len:#x}");
        assert_eq!(s.page_tables().leaves(va(0), 1 << 47), leaves, "{at:#x}+{len:#x}");
        assert!(s.take_deferred_flush().is_empty());
    }
    // A provider that keeps its descriptor gets exactly the placed range.
    let m = s.mmap(&Plain, &MmapRequest::shared(2 * PAGE_SIZE, rw)).unwrap();
    m.flush.ignore();
    let v = s.find_vma(m.addr).unwrap();
    assert_eq!((v.start(), v.end()), (m.addr, m.addr.raw() + 2 * PAGE_SIZE));
    assert!(v.start().raw() >= WINDOW.0 && v.end() <= WINDOW.1);
}
