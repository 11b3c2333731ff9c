//! Where an `spt` unikernel's memory lies and what the VMM writes into
//! it before the first instruction: the boot-info block, the manifest
//! and the command line, at the addresses Solo5's `spt` ABI fixes.
//!
//! The unikernel sees one flat memory `[0, mem_size)`; the VMM backs
//! virtual page `va` with guest-physical `base + va`, so the image, the
//! boot-info block and the heap are written straight into guest RAM.
//! The first 64 KiB (`HOST_MEM_BASE`) stay unmapped, as under `solo5-spt`,
//! so a null dereference faults.

use thiserror::Error;

/// Lowest mapped address (Solo5's `SPT_HOST_MEM_BASE`).
pub const HOST_MEM_BASE: u64 = 0x1_0000;
/// The boot-info block (`SPT_BOOT_INFO_BASE`).
pub const BOOT_INFO: u64 = HOST_MEM_BASE + 0x1000;
/// Lowest address a segment may be loaded at (`SPT_GUEST_MIN_BASE`).
pub const GUEST_MIN_BASE: u64 = 0x10_0000;
/// Largest command line, terminator included (`SPT_CMDLINE_SIZE`).
pub const CMDLINE_SIZE: usize = 8192;
/// Size of `struct spt_boot_info` (ABI 2): mem_size, kernel_end,
/// cmdline, mft (8 bytes each), epollfd, timerfd (4 bytes each).
pub const BOOT_INFO_SIZE: u64 = 40;
/// The descriptor numbers the unikernel is told for its epoll set and
/// timer (the syscall table accepts only these).
pub const EPOLL_FD: i32 = 3;
/// See [`EPOLL_FD`].
pub const TIMER_FD: i32 = 4;
/// Solo5's default memory size (`solo5-spt` without `--mem`).
pub const DEFAULT_MEM: u64 = 512 << 20;
/// Smallest and largest memory this VMM gives a unikernel.
pub const MEM_RANGE: (u64, u64) = (2 << 20, 2 << 30);

/// Errors laying out the unikernel's memory.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LayoutError {
    /// The memory size is out of range.
    #[error("unikernel memory of {0:#x} bytes: it must be a multiple of 2 MiB from 2 MiB to 2 GiB")]
    BadMemSize(u64),
    /// A segment lies outside `[GUEST_MIN_BASE, mem_size)`.
    #[error("segment [{start:#x}, {end:#x}) lies outside the unikernel's memory [{GUEST_MIN_BASE:#x}, {mem:#x})")]
    SegmentOutside {
        /// Start.
        start: u64,
        /// End (exclusive).
        end: u64,
        /// The memory size.
        mem: u64,
    },
    /// Two segments share a page with different rights.
    #[error("segments overlap at page {0:#x} with different access rights")]
    Overlap(u64),
    /// The command line is too long.
    #[error("command line of {0} bytes is longer than Solo5's {max} (terminator included)", max = CMDLINE_SIZE)]
    CmdlineTooLong(usize),
    /// The command line contains a NUL byte.
    #[error("command line contains a NUL byte")]
    CmdlineNul,
}

/// Checks a memory size.
pub fn check_mem(mem: u64) -> Result<u64, LayoutError> {
    if mem < MEM_RANGE.0 || mem > MEM_RANGE.1 || mem % (2 << 20) != 0 {
        return Err(LayoutError::BadMemSize(mem));
    }
    Ok(mem)
}

/// The boot-info block followed by the manifest and the command line, as
/// bytes to write at [`BOOT_INFO`].
pub fn boot_block(mem: u64, kernel_end: u64, manifest: &[u8], cmdline: &str) -> Result<Vec<u8>, LayoutError> {
    if cmdline.len() + 1 > CMDLINE_SIZE {
        return Err(LayoutError::CmdlineTooLong(cmdline.len() + 1));
    }
    if cmdline.as_bytes().contains(&0) {
        return Err(LayoutError::CmdlineNul);
    }
    let mft_at = BOOT_INFO + BOOT_INFO_SIZE;
    // The manifest holds 8-byte fields: keep it 8-aligned (BOOT_INFO_SIZE is).
    let cmdline_at = mft_at + (manifest.len() as u64).div_ceil(8) * 8;
    let mut b = Vec::with_capacity((cmdline_at - BOOT_INFO) as usize + CMDLINE_SIZE);
    b.extend_from_slice(&mem.to_le_bytes());
    b.extend_from_slice(&kernel_end.to_le_bytes());
    b.extend_from_slice(&cmdline_at.to_le_bytes());
    b.extend_from_slice(&mft_at.to_le_bytes());
    b.extend_from_slice(&EPOLL_FD.to_le_bytes());
    b.extend_from_slice(&TIMER_FD.to_le_bytes());
    b.extend_from_slice(manifest);
    b.resize((cmdline_at - BOOT_INFO) as usize, 0);
    b.extend_from_slice(cmdline.as_bytes());
    b.push(0);
    Ok(b)
}

/// Access of one page: (write, exec).
pub type Rights = (bool, bool);
/// A range of pages `[start, end)` with one access.
pub type Run = (u64, u64, Rights);

/// Runs of pages covering `[HOST_MEM_BASE, mem)`: each segment's pages
/// with exactly its rights, everything else read/write, no execute (heap,
/// stack, boot block). Returns `(start, end, rights)` runs in address
/// order, and the end of the image (`kernel_end`, page-aligned).
pub fn runs(segments: &[Run], mem: u64) -> Result<(Vec<Run>, u64), LayoutError> {
    const PAGE: u64 = 0x1000;
    let mut segs: Vec<(u64, u64, Rights)> = Vec::with_capacity(segments.len());
    for &(va, len, rights) in segments {
        let end = va.checked_add(len).filter(|&e| va >= GUEST_MIN_BASE && e <= mem);
        let Some(end) = end else {
            return Err(LayoutError::SegmentOutside { start: va, end: va.saturating_add(len), mem });
        };
        segs.push((va & !(PAGE - 1), end.div_ceil(PAGE) * PAGE, rights));
    }
    segs.sort_by_key(|s| s.0);
    for w in segs.windows(2) {
        if w[1].0 < w[0].1 && w[0].2 != w[1].2 {
            return Err(LayoutError::Overlap(w[1].0));
        }
    }
    let kernel_end = segs.iter().map(|s| s.1).max().unwrap_or(GUEST_MIN_BASE);
    let mut out: Vec<(u64, u64, Rights)> = Vec::new();
    let mut push = |s: u64, e: u64, r: Rights| {
        if s >= e {
            return;
        }
        match out.last_mut() {
            Some(last) if last.1 == s && last.2 == r => last.1 = e,
            _ => out.push((s, e, r)),
        }
    };
    let mut cur = HOST_MEM_BASE;
    for (s, e, r) in segs {
        let s = s.max(cur);
        push(cur, s, (true, false));
        push(s, e, r);
        cur = cur.max(e);
    }
    push(cur, mem, (true, false));
    Ok((out, kernel_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_memory_with_exact_rights() {
        let segs =
            [(0x10_0000, 0x3e48, (false, true)), (0x10_4000, 0xc, (true, false)), (0x10_5000, 0x58, (true, false))];
        let (runs, end) = runs(&segs, 8 << 20).unwrap();
        assert_eq!(end, 0x10_6000);
        assert_eq!(
            runs,
            vec![
                (HOST_MEM_BASE, 0x10_0000, (true, false)),
                (0x10_0000, 0x10_4000, (false, true)),
                (0x10_4000, 8 << 20, (true, false))
            ]
        );
    }

    #[test]
    fn bad_segments_and_sizes() {
        assert!(matches!(runs(&[(0x1000, 0x10, (false, true))], 8 << 20), Err(LayoutError::SegmentOutside { .. })));
        assert!(matches!(
            runs(&[(0x10_0000, 9 << 20, (false, true))], 8 << 20),
            Err(LayoutError::SegmentOutside { .. })
        ));
        assert!(matches!(
            runs(&[(0x10_0000, u64::MAX, (false, true))], 8 << 20),
            Err(LayoutError::SegmentOutside { .. })
        ));
        let overlap = [(0x10_0000, 0x1800, (false, true)), (0x10_1000, 0x10, (true, false))];
        assert_eq!(runs(&overlap, 8 << 20), Err(LayoutError::Overlap(0x10_1000)));
        assert!(check_mem(1 << 20).is_err() && check_mem(3 << 20).is_err() && check_mem(4 << 30).is_err());
        assert_eq!(check_mem(DEFAULT_MEM), Ok(DEFAULT_MEM));
    }

    #[test]
    fn boot_block_layout() {
        let b = boot_block(64 << 20, 0x10_6000, &[1, 0, 0, 0, 0, 0, 0, 0, 9], "a b").unwrap();
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(u64_at(0), 64 << 20);
        assert_eq!(u64_at(8), 0x10_6000);
        let (cmdline, mft) = (u64_at(16), u64_at(24));
        assert_eq!(mft, BOOT_INFO + 40);
        assert_eq!(cmdline, BOOT_INFO + 40 + 16);
        assert_eq!(&b[(cmdline - BOOT_INFO) as usize..], b"a b\0");
        assert_eq!(b[40], 1);
        assert_eq!(i32::from_le_bytes(b[32..36].try_into().unwrap()), EPOLL_FD);
        assert_eq!(
            boot_block(1, 1, &[], &"x".repeat(CMDLINE_SIZE)),
            Err(LayoutError::CmdlineTooLong(CMDLINE_SIZE + 1))
        );
        assert_eq!(boot_block(1, 1, &[], "a\0b"), Err(LayoutError::CmdlineNul));
    }
}
