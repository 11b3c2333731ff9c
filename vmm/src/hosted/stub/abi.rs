//! The guest ABI: kernel ports, hypercall numbers and the register
//! conventions documented in `docs/guest-abi.md`.
//!
//! Hypercalls use the Linux x86-64 `syscall` register convention: `rax` =
//! number, arguments in `rdi, rsi, rdx, r10, r8, r9`, result in `rax` (a
//! value or an address, or `-errno`); every other register is preserved.
//! The call itself is `out 0xe8, al` from user mode (one exit, no kernel
//! code). `int 0x80` and `syscall` reach the same port through the kernel
//! stub on KVM backends that implement them (`syscall` clobbers `rcx` and
//! `r11`).

/// `out` port of the exception stub (vector in `al`, see the stub docs).
pub const EXC_PORT: u16 = 0xe0;
/// The hypercall port (user mode may write it).
pub const HCALL_PORT: u16 = 0xe8;
/// `out` port of the TLB-shootdown NMI handler (after its flush).
pub const FLUSH_ACK_PORT: u16 = 0xe2;
/// The interrupt vector of the hypercall gate (`int 0x80`).
pub const HCALL_VECTOR: u8 = 0x80;
/// Ports user mode may not use (the TSS I/O bitmap denies them).
pub const KERNEL_PORTS: std::ops::Range<u16> = 0xe0..0xe8;

/// Hypercall numbers. The Linux ones keep their Linux numbers.
pub mod nr {
    /// `write(fd, buf, len)`: fd 1 and 2 go to the serial console.
    pub const WRITE: u64 = 1;
    /// `mmap(addr, len, prot, flags, fd, off)`; `fd` names a provider.
    pub const MMAP: u64 = 9;
    /// `mprotect(addr, len, prot)`.
    pub const MPROTECT: u64 = 10;
    /// `munmap(addr, len)`.
    pub const MUNMAP: u64 = 11;
    /// `mremap(old, old_len, new_len, flags, new)`.
    pub const MREMAP: u64 = 25;
    /// `madvise(addr, len, advice)`: `MADV_WILLNEED`, `MADV_DONTNEED`.
    pub const MADVISE: u64 = 28;
    /// `exit(status)`: this vCPU stops; the run ends when all have.
    pub const EXIT: u64 = 60;
    /// `exit_group(status)`: the whole guest stops.
    pub const EXIT_GROUP: u64 = 231;
    /// `report(check, passed, got, expected, step)`: one line of the
    /// report; for a failure, `step` says which step of the check failed.
    pub const REPORT: u64 = 0x1000;
    /// `expect_fault(resume_rip)`: the next exception on this vCPU resumes
    /// at `resume_rip` instead of ending the run (one shot; 0 disarms).
    /// On resume `rax` = vector, `rdi` = error code, `rsi` = CR2 (the
    /// faulting address), `rdx` = faulting RIP; `rcx`, `r8`, `r10` are
    /// clobbered, every other register is as at the fault.
    pub const EXPECT_FAULT: u64 = 0x1001;
    /// `exit_count(kind)`: exits this vCPU took so far (`kind` 0: all,
    /// 1: MMIO, 2: port I/O).
    pub const EXIT_COUNT: u64 = 0x1002;
    /// `vcpu_id()`: the index of the calling vCPU.
    pub const VCPU_ID: u64 = 0x1003;
    /// `translate(va)`: the guest-physical address `va` maps to, or
    /// `-EFAULT` (asks the VMM's page-table walker).
    pub const TRANSLATE: u64 = 0x1004;
}

/// Provider handles, passed as the `fd` argument of `mmap`.
pub mod fd {
    /// Guest RAM by physical address (`off` = guest-physical address).
    pub const GUEST_RAM: u64 = 0x100;
    /// Zero-filled pages from the kernel pool (also `MAP_ANONYMOUS`).
    pub const ZERO: u64 = 0x101;
    /// The kernel page buffer the VMM filled with a known pattern.
    pub const PAGE_BUFFER: u64 = 0x102;
    /// Huge pages (2 MiB leaves).
    pub const HUGE: u64 = 0x103;
    /// The kernel page buffer, mapped lazily: each page on first touch,
    /// with fault-around.
    pub const PAGE_BUFFER_LAZY: u64 = 0x104;
    /// BAR window `i` is `BAR0 + i` (whole window, shared, `off` 0).
    pub const BAR0: u64 = 0x200;
    /// The register region of BAR `i` (from offset 0x100 of the window,
    /// a sub-page start) is `BAR_REGION0 + i`; `off` picks its first page.
    pub const BAR_REGION0: u64 = 0x300;
    /// First handle after the BAR ranges.
    pub const END: u64 = 0x400;
}

/// `mmap` protection bits (Linux values).
pub mod prot {
    /// PROT_READ.
    pub const READ: u64 = 1;
    /// PROT_WRITE.
    pub const WRITE: u64 = 2;
    /// PROT_EXEC.
    pub const EXEC: u64 = 4;
}

/// `mmap` flags (Linux values).
pub mod map {
    /// MAP_SHARED.
    pub const SHARED: u64 = 0x01;
    /// MAP_PRIVATE.
    pub const PRIVATE: u64 = 0x02;
    /// MAP_FIXED.
    pub const FIXED: u64 = 0x10;
    /// MAP_ANONYMOUS.
    pub const ANONYMOUS: u64 = 0x20;
    /// MAP_FIXED_NOREPLACE.
    pub const FIXED_NOREPLACE: u64 = 0x10_0000;
}

/// `mremap` flags (Linux values).
pub mod mremap {
    /// MREMAP_MAYMOVE.
    pub const MAYMOVE: u64 = 1;
    /// MREMAP_FIXED.
    pub const FIXED: u64 = 2;
}

/// `madvise` advice (Linux values).
pub mod madv {
    /// MADV_WILLNEED.
    pub const WILLNEED: u64 = 3;
    /// MADV_DONTNEED.
    pub const DONTNEED: u64 = 4;
}

/// Offset of a BAR's register region (see [`fd::BAR_REGION0`]).
pub const BAR_REGION_OFFSET: u64 = 0x100;
/// Pages in the kernel page buffer ([`fd::PAGE_BUFFER`]).
pub const PAGE_BUFFER_PAGES: u64 = 16;

/// Word `word` of page `page` of the kernel page buffer, as the VMM
/// fills it.
pub const fn page_pattern(page: u64, word: u64) -> u64 {
    page.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ word
}

/// What the u64 at guest-physical `pa` of the huge-page region holds.
pub const fn huge_pattern(pa: u64) -> u64 {
    pa ^ 0x4855_4745_0000_0000
}

/// What the u64 at offset `off` of a passed-through BAR's host backing
/// holds when the guest starts (the VMM writes it).
pub const fn window_pattern(off: u64) -> u64 {
    off ^ 0x5057_494e_0000_0000
}
