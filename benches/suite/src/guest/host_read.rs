//! The host peer of the guest read loops: the same SSE2 instructions as
//! [`super::programs::read_loop`], run on the host over host addresses of
//! guest memory, timed with the same TSC.
//!
//! The only `unsafe` of the guest-side suite outside `tsc` lives here: an
//! inline-assembly loop over memory the caller proves is mapped, by
//! handing in guest memory and guest-physical pages that are checked to
//! lie entirely inside it.

use vm_memory::{GuestAddress, GuestMemoryBackend};

use super::tsc;
use vmm::layout::PAGE_SIZE;
use vmm::memory::GuestMem;

/// Host addresses of whole guest pages, checked to be mapped.
#[derive(Debug)]
pub struct HostPages<'a> {
    _mem: &'a GuestMem,
    ptrs: Vec<*const u8>,
}

impl<'a> HostPages<'a> {
    /// The host addresses of the guest-physical pages `pas` (page aligned);
    /// `None` if any is misaligned or not entirely inside `mem`.
    pub fn new(mem: &'a GuestMem, pas: &[u64]) -> Option<HostPages<'a>> {
        let mut ptrs = Vec::with_capacity(pas.len());
        for &pa in pas {
            if pa % PAGE_SIZE != 0 || !mem.check_range(GuestAddress(pa), PAGE_SIZE as usize) {
                return None;
            }
            ptrs.push(mem.get_host_address(GuestAddress(pa)).ok()?.cast_const());
        }
        Some(HostPages { _mem: mem, ptrs })
    }

    /// Pages held.
    pub fn len(&self) -> usize {
        self.ptrs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ptrs.is_empty()
    }

    /// Reads every page once with the guest's loop; returns the TSC
    /// cycles it took.
    pub fn read_all(&self) -> u64 {
        let mut sum = 0u64;
        let t0 = tsc::now();
        for &p in &self.ptrs {
            sum = sum.wrapping_add(read_page(p));
        }
        let t1 = tsc::now();
        std::hint::black_box(sum);
        t1.wrapping_sub(t0)
    }
}

/// One page through the guest's loop (`paddq` of four 16-byte loads per
/// 64 bytes into four accumulators); returns the wrapping sum of the
/// page's u64s, folded from the accumulators after the loop.
fn read_page(p: *const u8) -> u64 {
    let sum: u64;
    // SAFETY: `p` comes from `HostPages::new`, which checked that the whole
    // page at `p` is mapped guest memory, and `HostPages` borrows that
    // memory, so it stays mapped. The page is 4096-byte aligned, so every
    // 16-byte load is aligned as `paddq` requires; the loop reads exactly
    // PAGE_SIZE bytes (a multiple of 64) and writes only registers it
    // declares. Guest memory may change under us (a guest shares it); the
    // loop only reads, so that cannot be unsound.
    unsafe {
        std::arch::asm!(
            "pxor {a0}, {a0}",
            "pxor {a1}, {a1}",
            "pxor {a2}, {a2}",
            "pxor {a3}, {a3}",
            "2:",
            "paddq {a0}, xmmword ptr [{p}]",
            "paddq {a1}, xmmword ptr [{p} + 16]",
            "paddq {a2}, xmmword ptr [{p} + 32]",
            "paddq {a3}, xmmword ptr [{p} + 48]",
            "add {p}, 64",
            "sub {n}, 64",
            "jnz 2b",
            "paddq {a0}, {a1}",
            "paddq {a2}, {a3}",
            "paddq {a0}, {a2}",
            "pshufd {a1}, {a0}, 0x4e",
            "paddq {a0}, {a1}",
            "movq {sum}, {a0}",
            p = inout(reg) p => _,
            n = inout(reg) PAGE_SIZE => _,
            sum = out(reg) sum,
            a0 = out(xmm_reg) _,
            a1 = out(xmm_reg) _,
            a2 = out(xmm_reg) _,
            a3 = out(xmm_reg) _,
            options(nostack, readonly),
        );
    }
    sum
}

#[cfg(test)]
mod tests {
    use vm_memory::Bytes;

    use super::*;
    use vmm::memory::create_guest_memory;

    #[test]
    fn pages_must_be_whole_and_inside_guest_memory() {
        let mem = create_guest_memory(1 << 20).unwrap();
        assert_eq!(HostPages::new(&mem, &[0, 0x1000, 0xff000]).map(|p| p.len()), Some(3));
        assert!(HostPages::new(&mem, &[0x800]).is_none(), "misaligned");
        assert!(HostPages::new(&mem, &[1 << 20]).is_none(), "past the end");
        assert!(HostPages::new(&mem, &[]).is_some_and(|p| p.is_empty()));
    }

    #[test]
    fn the_loop_reads_every_byte() {
        let mem = create_guest_memory(1 << 20).unwrap();
        let words: Vec<u8> = (1..=512u64).flat_map(|w| w.to_le_bytes()).collect();
        mem.write_slice(&words, GuestAddress(0x3000)).unwrap();
        let pages = HostPages::new(&mem, &[0x3000, 0x7000]).unwrap();
        assert_eq!(read_page(pages.ptrs[0]), 512 * 513 / 2);
        assert_eq!(read_page(pages.ptrs[1]), 0);
        assert!(pages.read_all() > 0);
    }
}
