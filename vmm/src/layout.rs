//! Where things live: the guest-physical memory map and the virtual
//! addresses the VMM chooses.
//!
//! Guest-physical map (RAM starts at 0):
//!
//! | range                      | what |
//! |----------------------------|------|
//! | `[0, 4 KiB)`               | never used (null page) |
//! | [`GDT_PA`], [`IDT_PA`]     | GDT and IDT, one page each |
//! | [`STUB_PA`]                | the kernel stub code |
//! | [`PERCPU_PA`] + i * [`PERCPU_SIZE`] | per-vCPU TSS, scratch, stacks |
//! | `[0, KERNEL_REGION_SIZE)`  | all of the above: reserved for the VMM |
//! | [`TABLES_PA`]              | page-table pages (guest-mm's allocator) |
//! | [`POOL_PA`]                | kernel page pool (zero pages, page buffers) |
//! | [`LOAD_PA`]                | the guest program image and stacks |
//! | [`HUGE_PA`]                | the huge-page region (2 MiB pages) |
//! | [`FREE_PA`]                | the guest-RAM window: [`RAM_WINDOW_SIZE`] bytes of free RAM only the guest-RAM provider maps |
//! | [`POOL_RAM_PA`] .. end of RAM | free RAM the kernel page pool takes too (see below) |
//!
//! The kernel region is mapped supervisor-only at [`KERNEL_VA`] + its
//! physical address (the top 512 GiB of the upper half); the guest program
//! lives in the lower half. BAR windows sit above RAM, at
//! [`DEFAULT_BAR_BASE`] unless configured; [`KVM_RESERVED`] below 4 GiB is
//! KVM's.
//!
//! The kernel page pool hands out frames of [`POOL_PA`] and, for guest
//! kinds that leave free RAM to the VMM (all but Solo5, whose unikernel
//! memory is the free RAM), of `[POOL_RAM_PA, end of RAM)` as well: every
//! page the VMM does not reserve is then usable by the fault path and
//! eager mappings. The rule that keeps the guest-RAM provider (this
//! project's `/dev/mem`) from mapping a frame the pool handed out: it may
//! map only the guest-RAM window `[FREE_PA, POOL_RAM_PA)`, which the pool
//! never takes; a mapping of pool RAM is refused (`EPERM`).
//!
//! This module only names addresses; nothing here touches memory.

/// Base page size.
pub const PAGE_SIZE: u64 = 4096;

/// Guest-physical address of the GDT.
pub const GDT_PA: u64 = 0x1000;
/// Guest-physical address of the IDT.
pub const IDT_PA: u64 = 0x2000;
/// Guest-physical address of the kernel stub code.
pub const STUB_PA: u64 = 0x4000;
/// Bytes reserved for the stub code.
pub const STUB_SIZE: u64 = 0x4000;
/// First per-vCPU area.
pub const PERCPU_PA: u64 = 0x1_0000;
/// Size of one per-vCPU area.
pub const PERCPU_SIZE: u64 = 0x1_0000;
/// Most vCPUs the layout has room for.
pub const MAX_VCPUS: u8 = 32;
/// Size of the VMM-owned kernel region at guest-physical 0.
pub const KERNEL_REGION_SIZE: u64 = 0x40_0000;

/// Offsets inside a per-vCPU area.
pub mod percpu {
    /// The TSS (with a full I/O permission bitmap: 0x68 + 8 KiB + 1 byte).
    pub const TSS: u64 = 0x0000;
    /// Kernel scratch (IA32_KERNEL_GS_BASE points here).
    pub const SCRATCH: u64 = 0x3000;
    /// Top of the IST1 stack (exceptions).
    pub const IST_EXC_TOP: u64 = 0x8000;
    /// Top of the IST2 stack (NMI: TLB shootdown).
    pub const IST_NMI_TOP: u64 = 0xa000;
    /// Top of the IST3 stack (double fault).
    pub const IST_DF_TOP: u64 = 0xc000;
    /// Top of the RSP0 stack.
    pub const RSP0_TOP: u64 = 0x1_0000;
}

/// Guest-physical base of the page-table region.
pub const TABLES_PA: u64 = KERNEL_REGION_SIZE;
/// Size of the page-table region.
pub const TABLES_SIZE: u64 = 0x80_0000;
/// Guest-physical base of the kernel page pool.
pub const POOL_PA: u64 = TABLES_PA + TABLES_SIZE;
/// Size of the kernel page pool.
pub const POOL_SIZE: u64 = 0x80_0000;
/// First guest-physical address for the program image.
pub const LOAD_PA: u64 = POOL_PA + POOL_SIZE;
/// Size of the load region.
pub const LOAD_SIZE: u64 = 0xc0_0000;
/// Base of the huge-page region (2 MiB aligned).
pub const HUGE_PA: u64 = LOAD_PA + LOAD_SIZE;
/// Size of the huge-page region.
pub const HUGE_SIZE: u64 = 0x100_0000;
/// First byte of free guest RAM.
pub const FREE_PA: u64 = HUGE_PA + HUGE_SIZE;
/// Size of the guest-RAM window at [`FREE_PA`]: free RAM the pool never
/// takes, for the guest-RAM provider alone.
pub const RAM_WINDOW_SIZE: u64 = 0x100_0000;
/// First byte of the free RAM the kernel page pool takes, to the end of
/// RAM (when the guest's kind leaves free RAM to the VMM).
pub const POOL_RAM_PA: u64 = FREE_PA + RAM_WINDOW_SIZE;
/// Smallest guest memory the layout works with (the pool then has no
/// free RAM beyond [`POOL_PA`]).
pub const MIN_MEM_SIZE: u64 = POOL_RAM_PA;

/// Virtual base of the supervisor mapping of the kernel region.
pub const KERNEL_VA: u64 = 0xffff_ff80_0000_0000;

/// The supervisor virtual address of kernel-region physical address `pa`.
pub const fn kernel_va(pa: u64) -> u64 {
    KERNEL_VA + pa
}

/// Guest-physical address of vCPU `index`'s per-vCPU area.
pub const fn percpu_pa(index: u8) -> u64 {
    PERCPU_PA + index as u64 * PERCPU_SIZE
}

/// Virtual address where the built-in guest's code is linked.
pub const BUILTIN_CODE_VA: u64 = 0x40_0000;
/// Virtual address of the built-in guest's data page(s).
pub const BUILTIN_DATA_VA: u64 = 0x60_0000;
/// Exclusive top of the user stack (below the mapper's 4 GiB window).
pub const USER_STACK_TOP: u64 = 0x8000_0000;
/// Size of the user stack of each vCPU.
pub const USER_STACK_SIZE: u64 = 0x1_0000;
/// Gap between two vCPUs' stacks (a guard page below each).
pub const USER_STACK_STRIDE: u64 = USER_STACK_SIZE + PAGE_SIZE;

/// Exclusive top of vCPU `index`'s user stack.
pub const fn user_stack_top(index: u8) -> u64 {
    USER_STACK_TOP - index as u64 * USER_STACK_STRIDE
}

/// KVM's identity-mapped page table for real mode on hosts without
/// unrestricted guests (one page; set only for machines with
/// [`crate::vstate::vm::VmOptions::pc`]).
pub const IDENTITY_MAP_PA: u64 = 0xfffb_c000;
/// KVM's real-mode TSS (three pages; set because Intel KVM expects it).
pub const KVM_TSS_PA: u64 = 0xfffb_d000;
/// The one-page memory slot the VMM creates and deletes to make KVM drop
/// its shadow translations (it exists only during that zap, so the guest
/// never reaches a page of the VMM's here).
pub const ZAP_SLOT_PA: u64 = 0xfffc_0000;
/// `[start, end)` of guest-physical space the VMM keeps for KVM (no BAR
/// window may overlap it).
pub const KVM_RESERVED: (u64, u64) = (IDENTITY_MAP_PA, ZAP_SLOT_PA + PAGE_SIZE);

/// Default guest-physical base of the first BAR window.
pub const DEFAULT_BAR_BASE: u64 = 0xe000_0000;

// The regions above must not overlap; checked at compile time.
const _: () = {
    assert!(STUB_PA + STUB_SIZE <= PERCPU_PA);
    assert!(percpu_pa(MAX_VCPUS) <= KERNEL_REGION_SIZE);
    assert!(IDT_PA + PAGE_SIZE <= STUB_PA);
    // The TSS with its I/O bitmap fits below the scratch page.
    assert!(percpu::TSS + 0x68 + 8192 < percpu::SCRATCH);
    assert!(percpu::SCRATCH + PAGE_SIZE <= percpu::IST_EXC_TOP - 0x4000);
    assert!(TABLES_PA + TABLES_SIZE == POOL_PA);
    assert!(HUGE_PA % (2 << 20) == 0 && HUGE_SIZE % (2 << 20) == 0);
    assert!(POOL_RAM_PA % PAGE_SIZE == 0 && POOL_RAM_PA > FREE_PA);
    assert!(user_stack_top(MAX_VCPUS) > BUILTIN_DATA_VA + (1 << 24));
};
