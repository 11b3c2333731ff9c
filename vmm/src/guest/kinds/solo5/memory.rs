//! The unikernel's memory in its address space: unikernel address `va`
//! lives at guest-physical `FREE_PA + va`, and each run of
//! [`layout::runs`] (a segment with its rights, the rest read/write) is
//! mapped there with its rights.
//!
//! The cost of a launch must not grow with `--mem`: the runs are mapped
//! as one linear remap each (no array of frames, no per-frame pins), so
//! the page tables take 2 MiB entries wherever alignment allows and only
//! the ends of a run take 4 KiB ones. What this module does not do:
//! write the unikernel's bytes (that is `kind.rs`'s load).

use guest_mm::GuestVirtAddr;
use vm_memory::GuestAddress;

use super::layout::Run;
use crate::hosted::mapper::{Access, Mapper};
use crate::layout::FREE_PA;

/// Where unikernel address `va` lives in guest-physical memory.
pub fn phys(va: u64) -> GuestAddress {
    GuestAddress(FREE_PA + va)
}

/// Maps every run of `runs` at its unikernel address, to
/// [`phys`]`(start)`, with its rights; the message says which run failed.
pub fn map_runs(mapper: &mut Mapper, runs: &[Run]) -> Result<(), String> {
    for &(start, end, (write, exec)) in runs {
        let va = GuestVirtAddr::try_new(start).map_err(|e| e.to_string())?;
        mapper
            .map_user_linear(va, phys(start), end - start, Access { write, exec })
            .map_err(|e| format!("cannot map [{start:#x}, {end:#x}): {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use guest_mm::PageSize;
    use proptest::prelude::*;

    use super::*;
    use crate::guest::kinds::solo5::layout::{self, HOST_MEM_BASE};
    use crate::hosted::mapper::PoolRam;
    use crate::memory::create_guest_memory;

    const MIB: u64 = 1 << 20;

    /// A mapper over the RAM a unikernel of `mem` bytes gets.
    fn mapper(mem: u64) -> Mapper {
        let ram = create_guest_memory(FREE_PA + mem).unwrap();
        Mapper::with_options(ram, guest_mm::DEFAULT_MAX_MAP_COUNT, PoolRam::FixedOnly).unwrap()
    }

    /// `test_hello`'s segments: text, rodata, data.
    const SEGS: [Run; 3] =
        [(0x10_0000, 0x3000, (false, true)), (0x10_3000, 0x1000, (false, false)), (0x10_4000, 0x2000, (true, false))];

    /// Page-table pages the mapper holds after mapping a unikernel of
    /// `mem` bytes, beyond those of the empty address space.
    fn tables_for(mem: u64) -> usize {
        let mut m = mapper(mem);
        let before = m.page_tables().census().tables.len();
        let (runs, _) = layout::runs(&SEGS, mem).unwrap();
        map_runs(&mut m, &runs).unwrap();
        m.page_tables().census().tables.len() - before
    }

    #[test]
    fn the_page_tables_do_not_grow_with_the_memory_size() {
        // Two tables for the 4 KiB ends of the image and heap, at most a
        // third, whatever the size; 4 KiB leaves for 2 GiB would take
        // 1024 page tables and 2 directories (8 MiB of host memory).
        let small = tables_for(2 * MIB);
        let large = tables_for(2048 * MIB);
        assert!(small <= 4, "{small} tables for 2 MiB");
        assert!(large <= small + 2, "{large} tables for 2 GiB against {small} for 2 MiB");
    }

    /// Checks by walking the tables that every address of `[0, mem)`
    /// the `probes` name translates as `runs` say: page zero and the
    /// first 64 KiB unmapped, the rest at `FREE_PA + va` with the run's
    /// rights, nothing at or past `mem`.
    fn check_walk(m: &Mapper, runs: &[Run], mem: u64, probes: &[u64]) {
        for &va in probes {
            let t = m.page_tables().translate(GuestVirtAddr::try_new(va).unwrap());
            let want = runs.iter().find(|r| r.0 <= va && va < r.1);
            match (t, want) {
                (None, None) => assert!(va < HOST_MEM_BASE || va >= mem, "{va:#x} unmapped"),
                (Some(t), Some(&(_, _, (write, exec)))) => {
                    assert_eq!(t.phys, phys(va), "{va:#x}");
                    assert!(t.prot.present && t.prot.user, "{va:#x}");
                    assert_eq!((t.prot.writable, !t.prot.no_execute), (write, exec), "{va:#x}");
                }
                (t, w) => panic!("{va:#x}: mapped {t:?}, run {w:?}"),
            }
        }
    }

    #[test]
    fn every_run_translates_to_its_frames_with_its_rights() {
        let mem = 64 * MIB;
        let mut m = mapper(mem);
        let (runs, _) = layout::runs(&SEGS, mem).unwrap();
        map_runs(&mut m, &runs).unwrap();
        let probes = [
            0,
            0xfff,
            HOST_MEM_BASE - 1,
            HOST_MEM_BASE,
            0xf_ffff,
            0x10_0000,
            0x10_2fff,
            0x10_3000,
            0x10_4000,
            0x10_5fff,
            0x10_6000,
            0x1f_ffff,
            0x20_0000,
            mem / 2 + 0x123,
            mem - 1,
            mem,
            mem + 0x20_0000,
        ];
        check_walk(&m, &runs, mem, &probes);
        // The heap's aligned middle takes 2 MiB leaves.
        let t = m.page_tables().translate(GuestVirtAddr::try_new(0x20_0000).unwrap()).unwrap();
        assert_eq!(t.size, PageSize::Size2M);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any image layout and memory size: the walk agrees with the
        /// runs at every segment edge, every 2 MiB boundary's neighbours
        /// and random addresses.
        #[test]
        fn walks_agree_with_the_runs(
            mem_mib in (1u64..=64).prop_map(|n| n * 2),
            segs in proptest::collection::vec((0u64..256, 1u64..64, any::<(bool, bool)>()), 1..5),
            random in proptest::collection::vec(any::<u64>(), 32),
        ) {
            let mem = mem_mib * MIB;
            // Segments laid end to end from 1 MiB, W+X left out.
            let mut at = 0x10_0000;
            let mut list = Vec::new();
            for (gap, pages, (w, x)) in segs {
                let start = at + gap * 0x1000;
                let end = start + pages * 0x1000;
                if end > mem {
                    break;
                }
                list.push((start, end - start, (w && !x, x)));
                at = end;
            }
            let (runs, _) = layout::runs(&list, mem).unwrap();
            let mut m = mapper(mem);
            map_runs(&mut m, &runs).unwrap();
            let mut probes: Vec<u64> = runs.iter().flat_map(|r| [r.0, r.1 - 1, r.1]).collect();
            probes.extend((0..=mem / (2 * MIB)).flat_map(|i| [(i * 2 * MIB).saturating_sub(1), i * 2 * MIB]));
            probes.extend(random.iter().map(|r| r % (mem + MIB)));
            check_walk(&m, &runs, mem, &probes);
        }
    }
}
