//! What the built-in guest's program and its checks share: the machine it
//! is generated for ([`Params`]), the check ids the report names, the
//! layout of its data ([`Data`]) and the signature of a check.

use iced_x86::code_asm::*;

use crate::guest::asm::AsmResult;

/// What the generated guest knows about its machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// vCPUs.
    pub vcpus: u8,
    /// Guest RAM in bytes.
    pub mem_size: u64,
    /// Index and size of the first trapped BAR.
    pub trapped_bar: Option<(u64, u64)>,
    /// Index and size of the first passed-through BAR.
    pub passthrough_bar: Option<(u64, u64)>,
}

/// Check ids.
pub mod id {
    /// Boot: CPL 3, serial, hypercalls.
    pub const BOOT: u64 = 0;
    /// map-kernel-pages over a page array.
    pub const KERNEL_PAGES: u64 = 1;
    /// Trapped BAR.
    pub const TRAPPED_BAR: u64 = 2;
    /// Passed-through BAR.
    pub const PASSTHROUGH_BAR: u64 = 3;
    /// simple_ioremap.
    pub const SIMPLE_IOREMAP: u64 = 4;
    /// 2 MiB leaves.
    pub const HUGE: u64 = 5;
    /// munmap / mprotect faults.
    pub const FAULTS: u64 = 6;
    /// Bad requests.
    pub const BAD_REQUESTS: u64 = 7;
    /// Cross-vCPU shootdown.
    pub const SHOOTDOWN: u64 = 8;
    /// VMM side: passthrough writes visible on the host.
    pub const HOST_SEES_GUEST_WRITES: u64 = 9;
    /// Lazy anonymous memory: zero page, copy-on-write, DONTNEED.
    pub const LAZY_ZERO: u64 = 10;
    /// Fault-around on a lazy page buffer.
    pub const FAULT_AROUND: u64 = 11;
    /// mremap: grow, move, DONTEXPAND.
    pub const MREMAP: u64 = 12;
}

/// A check generator.
pub type CheckFn = fn(&mut CodeAssembler, &Params, &Data) -> AsmResult;

/// Labels and addresses of shared data.
#[derive(Clone, Copy, Debug)]
pub struct Data {
    /// A message for the `write` hypercall.
    pub hello: CodeLabel,
    /// Expected per-page checksums of the page-buffer check.
    pub page_sums: CodeLabel,
}

/// Offsets in the data page shared by the vCPUs.
pub mod shared {
    /// vCPU 0 → 1: go (and the address to read is in `ADDR`).
    pub const GO: u64 = 0x00;
    /// The page vCPU 1 reads.
    pub const ADDR: u64 = 0x08;
    /// vCPU 1 → 0: reading.
    pub const READY: u64 = 0x10;
    /// vCPU 1's loop count.
    pub const COUNT: u64 = 0x18;
    /// vCPU 0 → 1: munmap returned.
    pub const UNMAPPED: u64 = 0x20;
    /// vCPU 1: a read succeeded after munmap returned.
    pub const STALE: u64 = 0x28;
    /// vCPU 1: its read faulted at the right address.
    pub const FAULTED: u64 = 0x30;
    /// vCPU 1 → 0: done.
    pub const DONE: u64 = 0x38;
}
