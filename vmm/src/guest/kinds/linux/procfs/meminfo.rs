//! `/proc/meminfo`, the `/proc/sys/vm` knobs guest-mm implements, and
//! `/sys/kernel/mm/hugepages/hugepages-2048kB/*`, in Linux 6.12's
//! formats (`meminfo_proc_show`: a 16-column label and `%8lu kB`;
//! `hugetlb_report_meminfo`: `%5lu` counts).
//!
//! The numbers are the caller's ([`MemInfo`]); counters of things that do
//! not exist here (swap, page cache, slab, vmalloc use, ...) are 0.

use guest_mm::AddressSpace;

use super::maps::put;
use crate::memory::GuestMem;

/// `VMALLOC_TOTAL >> 10` on x86-64 with 4-level paging (32 TiB).
const VMALLOC_TOTAL_KB: u64 = 34_359_738_367;

/// What `/proc/meminfo` reports, in bytes (huge pages in pages).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total: u64,
    /// `MemFree`.
    pub free: u64,
    /// `MemAvailable` (`free` when 0).
    pub available: u64,
    /// `AnonPages`.
    pub anon: u64,
    /// `AnonHugePages`.
    pub anon_huge: u64,
    /// `Mlocked` (and `Unevictable`).
    pub mlocked: u64,
    /// `Shmem`.
    pub shmem: u64,
    /// `PageTables`.
    pub page_tables: u64,
    /// `Committed_AS`.
    pub committed: u64,
    /// `HugePages_Total`.
    pub hugepages_total: u64,
    /// `HugePages_Free`.
    pub hugepages_free: u64,
    /// `HugePages_Rsvd`.
    pub hugepages_rsvd: u64,
}

/// One `show_val_kb` line: the label padded to 16 columns, `%8lu kB`.
fn val(out: &mut Vec<u8>, label: &str, bytes: u64) {
    put(out, format_args!("{label:<16}{:>8} kB\n", bytes >> 10));
}

/// The contents of `/proc/meminfo`.
pub fn meminfo(m: &MemInfo) -> Vec<u8> {
    let mut o = Vec::new();
    let huge_bytes = m.hugepages_total * (2 << 20);
    let available = if m.available == 0 { m.free } else { m.available };
    val(&mut o, "MemTotal:", m.total);
    val(&mut o, "MemFree:", m.free);
    val(&mut o, "MemAvailable:", available);
    for label in ["Buffers:", "Cached:", "SwapCached:"] {
        val(&mut o, label, 0);
    }
    val(&mut o, "Active:", m.anon);
    val(&mut o, "Inactive:", 0);
    val(&mut o, "Active(anon):", m.anon);
    for label in ["Inactive(anon):", "Active(file):", "Inactive(file):"] {
        val(&mut o, label, 0);
    }
    val(&mut o, "Unevictable:", m.mlocked);
    val(&mut o, "Mlocked:", m.mlocked);
    for label in ["SwapTotal:", "SwapFree:", "Zswap:", "Zswapped:", "Dirty:", "Writeback:"] {
        val(&mut o, label, 0);
    }
    val(&mut o, "AnonPages:", m.anon);
    val(&mut o, "Mapped:", 0);
    val(&mut o, "Shmem:", m.shmem);
    for label in ["KReclaimable:", "Slab:", "SReclaimable:", "SUnreclaim:", "KernelStack:"] {
        val(&mut o, label, 0);
    }
    val(&mut o, "PageTables:", m.page_tables);
    for label in ["SecPageTables:", "NFS_Unstable:", "Bounce:", "WritebackTmp:"] {
        val(&mut o, label, 0);
    }
    // overcommit_ratio 50, no swap: half of what huge pages leave.
    val(&mut o, "CommitLimit:", m.total.saturating_sub(huge_bytes) / 2);
    val(&mut o, "Committed_AS:", m.committed);
    put(&mut o, format_args!("{:<16}{:>8} kB\n", "VmallocTotal:", VMALLOC_TOTAL_KB));
    for label in ["VmallocUsed:", "VmallocChunk:", "Percpu:"] {
        val(&mut o, label, 0);
    }
    put(&mut o, format_args!("HardwareCorrupted: {:>5} kB\n", 0));
    for label in
        ["AnonHugePages:", "ShmemHugePages:", "ShmemPmdMapped:", "FileHugePages:", "FilePmdMapped:", "Unaccepted:"]
    {
        val(&mut o, label, if label == "AnonHugePages:" { m.anon_huge } else { 0 });
    }
    put(
        &mut o,
        format_args!(
            "HugePages_Total:   {:>5}\nHugePages_Free:    {:>5}\nHugePages_Rsvd:    {:>5}\nHugePages_Surp:    {:>5}\n",
            m.hugepages_total, m.hugepages_free, m.hugepages_rsvd, 0
        ),
    );
    val(&mut o, "Hugepagesize:", 2 << 20);
    val(&mut o, "Hugetlb:", huge_bytes);
    for label in ["DirectMap4k:", "DirectMap2M:", "DirectMap1G:"] {
        val(&mut o, label, 0);
    }
    o
}

/// `/proc/sys/vm/NAME`, for the knobs guest-mm implements:
/// `mmap_min_addr` (65536), `max_map_count` (the space's limit),
/// `overcommit_memory` (0, heuristic), `overcommit_ratio` (50),
/// `nr_hugepages` (`hugepages`).
pub fn sysctl_vm(space: &AddressSpace<GuestMem>, name: &str, hugepages: u64) -> Option<Vec<u8>> {
    let v = match name {
        "mmap_min_addr" => 65536,
        "max_map_count" => space.max_map_count() as u64,
        "overcommit_memory" => 0,
        "overcommit_ratio" => 50,
        "nr_hugepages" => hugepages,
        _ => return None,
    };
    Some(format!("{v}\n").into_bytes())
}

/// `/sys/kernel/mm/hugepages/hugepages-2048kB/NAME` for a pool of
/// `total` pages, `free` of them free and `rsvd` reserved (no surplus).
pub fn hugepages_file(name: &str, total: u64, free: u64, rsvd: u64) -> Option<Vec<u8>> {
    let v = match name {
        "nr_hugepages" | "nr_hugepages_mempolicy" => total,
        "free_hugepages" => free,
        "resv_hugepages" => rsvd,
        "surplus_hugepages" | "nr_overcommit_hugepages" => 0,
        _ => return None,
    };
    Some(format!("{v}\n").into_bytes())
}
