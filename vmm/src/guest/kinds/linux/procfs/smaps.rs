//! `/proc/self/smaps` and `smaps_rollup` in Linux 6.12's format
//! (`show_smap`, `__show_smap`, `show_smap_vma_flags`,
//! `show_smaps_rollup`): the maps line, then one `%8lu kB` field per
//! counter (`Private_Hugetlb` is `%7lu`: its label is one longer),
//! `THPeligible`, and the `VmFlags` mnemonics of the flags guest-mm
//! keeps, in bit order. Counters come from [`MemStats`]; `AnonHugePages`
//! counts anonymous THPs mapped by a 2 MiB leaf; no KSM, swap or
//! lazy-free pages exist here, so those are 0.
//! `ProtectionKey` is not printed (no protection keys are exposed).

use guest_mm::VmFlags;

use super::maps::{line, put, region_line};
use super::region::{FileId, ProcView, Region};
use super::stats::{MemStats, PSS_SHIFT};

/// Linux's two-letter `VmFlags` mnemonics of the flags guest-mm has, in
/// bit order (guest-mm's bits are Linux's).
pub const MNEMONICS: &[(VmFlags, &str)] = &[
    (VmFlags::READ, "rd"),
    (VmFlags::WRITE, "wr"),
    (VmFlags::EXEC, "ex"),
    (VmFlags::SHARED, "sh"),
    (VmFlags::MAYREAD, "mr"),
    (VmFlags::MAYWRITE, "mw"),
    (VmFlags::MAYEXEC, "me"),
    (VmFlags::MAYSHARE, "ms"),
    (VmFlags::GROWSDOWN, "gd"),
    (VmFlags::PFNMAP, "pf"),
    (VmFlags::LOCKED, "lo"),
    (VmFlags::IO, "io"),
    (VmFlags::SEQ_READ, "sr"),
    (VmFlags::RAND_READ, "rr"),
    (VmFlags::DONTCOPY, "dc"),
    (VmFlags::DONTEXPAND, "de"),
    (VmFlags::LOCKONFAULT, "lf"),
    (VmFlags::HUGETLB, "ht"),
    (VmFlags::WIPEONFORK, "wf"),
    (VmFlags::DONTDUMP, "dd"),
    (VmFlags::MIXEDMAP, "mm"),
    (VmFlags::HUGEPAGE, "hg"),
    (VmFlags::NOHUGEPAGE, "nh"),
    (VmFlags::SEALED, "sl"),
];

/// `seq_put_decimal_ull_width(m, label, bytes >> 10, width)`.
fn kb(out: &mut Vec<u8>, label: &str, bytes: u64, width: usize) {
    put(out, format_args!("{label}{:>width$} kB\n", bytes >> 10));
}

/// The counters both files print (`__show_smap`).
fn counters(out: &mut Vec<u8>, st: &MemStats, rollup: bool) {
    kb(out, "Rss:            ", st.resident, 8);
    kb(out, "Pss:            ", st.pss >> PSS_SHIFT, 8);
    kb(out, "Pss_Dirty:      ", st.pss_dirty >> PSS_SHIFT, 8);
    if rollup {
        kb(out, "Pss_Anon:       ", st.pss_anon >> PSS_SHIFT, 8);
        kb(out, "Pss_File:       ", st.pss_file, 8);
        kb(out, "Pss_Shmem:      ", st.pss_shmem, 8);
    }
    kb(out, "Shared_Clean:   ", st.shared_clean, 8);
    kb(out, "Shared_Dirty:   ", st.shared_dirty, 8);
    kb(out, "Private_Clean:  ", st.private_clean, 8);
    kb(out, "Private_Dirty:  ", st.private_dirty, 8);
    kb(out, "Referenced:     ", st.referenced, 8);
    kb(out, "Anonymous:      ", st.anonymous, 8);
    kb(out, "KSM:            ", 0, 8);
    kb(out, "LazyFree:       ", 0, 8);
    kb(out, "AnonHugePages:  ", st.anon_huge, 8);
    kb(out, "ShmemPmdMapped: ", 0, 8);
    kb(out, "FilePmdMapped:  ", 0, 8);
    kb(out, "Shared_Hugetlb: ", 0, 8);
    kb(out, "Private_Hugetlb: ", st.private_hugetlb, 7);
    kb(out, "Swap:           ", 0, 8);
    kb(out, "SwapPss:        ", 0, 8);
    kb(out, "Locked:         ", st.locked, 8);
}

/// The `VmFlags:` line (each mnemonic followed by a space).
pub(super) fn vm_flags_line(out: &mut Vec<u8>, flags: VmFlags) {
    out.extend_from_slice(b"VmFlags: ");
    for &(f, m) in MNEMONICS {
        if flags.contains(f) {
            out.extend_from_slice(m.as_bytes());
            out.push(b' ');
        }
    }
    out.push(b'\n');
}

/// `THPeligible` (Linux's `thp_vma_allowable_orders` with
/// `TVA_SMAPS`): the policy allows some THP size for the VMA, and an
/// aligned block of that size fits at the VMA's end.
fn thp_eligible(view: &ProcView<'_>, vma: &guest_mm::Vma) -> bool {
    if !guest_mm::vma_may_hold_thp(vma) {
        return false;
    }
    let orders = view.space.thp_policy().allowed_orders(vma.flags());
    (0..=guest_mm::THP_PMD_ORDER).filter(|o| orders & (1 << o) != 0).any(|o| {
        let size = guest_mm::PAGE_SIZE << o;
        vma.end().checked_sub(size).is_some_and(|a| a & !(size - 1) >= vma.start().raw())
    })
}

/// One region's entry.
fn entry(out: &mut Vec<u8>, view: &ProcView<'_>, r: &Region<'_>) {
    let st = MemStats::of_region(view, r);
    region_line(out, r);
    let page = if r.flags().contains(VmFlags::HUGETLB) { 2 << 20 } else { 4 << 10 };
    kb(out, "Size:           ", r.size(), 8);
    kb(out, "KernelPageSize: ", page, 8);
    kb(out, "MMUPageSize:    ", page, 8);
    counters(out, &st, false);
    put(out, format_args!("THPeligible:    {:>8}\n", u8::from(thp_eligible(view, r.vma))));
    vm_flags_line(out, r.flags());
}

/// The contents of `/proc/self/smaps`.
pub fn smaps(view: &ProcView<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    view.for_each_region(|r| entry(&mut out, view, &r));
    out
}

/// The contents of `/proc/self/smaps_rollup`: one header from the first
/// line's start to the last line's end (`---p`, no file), named
/// `[rollup]`, then the sums, with `Pss_Anon`, `Pss_File`, `Pss_Shmem`.
pub fn smaps_rollup(view: &ProcView<'_>) -> Vec<u8> {
    let mut total = MemStats::default();
    let mut span: Option<(u64, u64)> = None;
    view.for_each_region(|r| {
        total.add(&MemStats::of_region(view, &r));
        span = Some((span.map_or(r.start.raw(), |s| s.0), r.end.raw()));
    });
    let (start, end) = span.unwrap_or((0, 0));
    let mut out = Vec::new();
    line(&mut out, start, end, VmFlags::empty(), 0, FileId::default(), Some("[rollup]"));
    counters(&mut out, &total, true);
    out
}
