//! `mbind(start, len, mode, nodemask, maxnode, flags)` on a machine with
//! one NUMA node (node 0), as Linux 6.12's `kernel_mbind` answers there:
//! the mode, its flags, the node mask and the call's flags are checked in
//! Linux's order with its errors, the range must be mapped without holes
//! (`EFAULT`), and then nothing is left to do: every page already lies on
//! the only node, so `MPOL_MF_MOVE` migrates nothing and `MPOL_MF_STRICT`
//! finds nothing misplaced. The policy itself is not kept (there is no
//! `get_mempolicy` to read it back).

use super::ctx::{ret, Ctx};
use crate::hosted::hypercall::Outcome;

/// `MPOL_DEFAULT`.
const MPOL_DEFAULT: i32 = 0;
/// `MPOL_PREFERRED`.
const MPOL_PREFERRED: i32 = 1;
/// `MPOL_BIND`.
const MPOL_BIND: i32 = 2;
/// `MPOL_LOCAL`.
const MPOL_LOCAL: i32 = 4;
/// `MPOL_PREFERRED_MANY`.
const MPOL_PREFERRED_MANY: i32 = 5;
/// `MPOL_MAX`: the first mode that is not one.
const MPOL_MAX: i32 = 7;
/// `MPOL_F_STATIC_NODES`.
const MPOL_F_STATIC_NODES: i32 = 1 << 15;
/// `MPOL_F_RELATIVE_NODES`.
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
/// `MPOL_F_NUMA_BALANCING`.
const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;
/// The mode flags.
const MPOL_MODE_FLAGS: i32 = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING;
/// `MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL`.
const MPOL_MF_VALID: u64 = 1 | 2 | 4;
/// `MPOL_MF_MOVE_ALL`.
const MPOL_MF_MOVE_ALL: u64 = 4;
/// `MAX_NUMNODES` of a distribution kernel (`CONFIG_NODES_SHIFT=10`).
const MAX_NUMNODES: u64 = 1024;
/// Node masks longer than this many bits are refused.
const MAX_MASK_BITS: u64 = 4096 * 8;
/// `CAP_SYS_NICE`, needed for `MPOL_MF_MOVE_ALL`.
const CAP_SYS_NICE: u32 = 23;

/// The mode split from its flags (`sanitize_mpol_flags`).
fn sanitize(mode: u64) -> Result<(i32, i32), i32> {
    let raw = mode as u32 as i32;
    let (flags, mode) = (raw & MPOL_MODE_FLAGS, raw & !MPOL_MODE_FLAGS);
    if !(0..MPOL_MAX).contains(&mode) {
        return Err(libc::EINVAL);
    }
    if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
        return Err(libc::EINVAL);
    }
    if flags & MPOL_F_NUMA_BALANCING != 0 && mode != MPOL_BIND && mode != MPOL_PREFERRED_MANY {
        return Err(libc::EINVAL);
    }
    Ok((mode, flags))
}

/// The words of the node mask `get_nodes` reads from `at` for `maxnode`
/// (`None`: no mask); `read(at, words)` reads the program's memory.
/// Returns whether node 0 is set and whether any node is.
fn nodes(at: u64, maxnode: u64, read: impl Fn(u64, u64) -> Result<Vec<u64>, i32>) -> Result<(bool, bool), i32> {
    let bits = maxnode.wrapping_sub(1);
    if bits == 0 || at == 0 {
        return Ok((false, false));
    }
    if bits > MAX_MASK_BITS {
        return Err(libc::EINVAL);
    }
    let words = read(at, bits.div_ceil(64))?;
    let mut any = false;
    for (i, w) in words.iter().enumerate() {
        let first = i as u64 * 64;
        let valid = (bits - first).min(64);
        let w = if valid == 64 { *w } else { *w & ((1u64 << valid) - 1) };
        // Nodes past MAX_NUMNODES must be clear.
        let beyond = match MAX_NUMNODES.checked_sub(first) {
            Some(n) if n >= 64 => 0,
            Some(n) => w & !((1u64 << n) - 1),
            None => w,
        };
        if beyond != 0 {
            return Err(libc::EINVAL);
        }
        any |= w != 0;
    }
    Ok((words.first().is_some_and(|w| w & 1 != 0), any))
}

/// The policy `mode`/`mflags` with the mask `(node0, any)` checked as
/// `mpol_new` and `mpol_set_nodemask` check it on one node.
fn check_policy(mode: i32, mflags: i32, node0: bool, any: bool) -> Result<(), i32> {
    let fixed = mflags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0;
    match mode {
        MPOL_DEFAULT if any => Err(libc::EINVAL),
        MPOL_DEFAULT => Ok(()),
        MPOL_PREFERRED if !any && fixed => Err(libc::EINVAL),
        MPOL_PREFERRED if !any => Ok(()),
        MPOL_LOCAL if any || fixed => Err(libc::EINVAL),
        MPOL_LOCAL => Ok(()),
        _ if !any => Err(libc::EINVAL),
        // Relative nodes fold onto the allowed ones; otherwise the mask
        // must name node 0, the only one online.
        _ if mflags & MPOL_F_RELATIVE_NODES != 0 || node0 => Ok(()),
        _ => Err(libc::EINVAL),
    }
}

/// `mbind`; see the module docs.
pub fn mbind(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [start, len, mode, nmask, maxnode, flags] = a;
    let read = |at: u64, words: u64| {
        let bytes = c.hv.read_user(c.vcpu, at, words * 8)?;
        Ok(bytes.chunks_exact(8).map(|b| b.iter().rev().fold(0u64, |w, &x| (w << 8) | u64::from(x))).collect())
    };
    ret((|| {
        let (mode, mflags) = sanitize(mode)?;
        let (node0, any) = nodes(nmask, maxnode, read)?;
        let end = range(start, len, flags, c.linux.proc().has_cap(CAP_SYS_NICE))?;
        let Some(end) = end else { return Ok(0) };
        check_policy(mode, mflags, node0, any)?;
        let m = c.hv.mapper();
        if !covered(m.space().vmas().map(|v| (v.start().raw(), v.end())), start, end) {
            return Err(libc::EFAULT);
        }
        Ok(0)
    })())
}

/// `do_mbind`'s checks of the call's flags and range: the end, or `None`
/// for an empty range (nothing to do).
fn range(start: u64, len: u64, flags: u64, sys_nice: bool) -> Result<Option<u64>, i32> {
    if flags & !MPOL_MF_VALID != 0 {
        return Err(libc::EINVAL);
    }
    if flags & MPOL_MF_MOVE_ALL != 0 && !sys_nice {
        return Err(libc::EPERM);
    }
    if start % 4096 != 0 {
        return Err(libc::EINVAL);
    }
    // PAGE_ALIGN wraps for a length near the top, as in Linux.
    let len = len.wrapping_add(4095) & !4095;
    let end = start.wrapping_add(len);
    if end < start {
        return Err(libc::EINVAL);
    }
    Ok((end != start).then_some(end))
}

/// Do the VMAs `vmas` (in address order) cover `[start, end)` without a
/// hole?
fn covered(vmas: impl Iterator<Item = (u64, u64)>, start: u64, end: u64) -> bool {
    let mut at = start;
    for (s, e) in vmas {
        if e <= at {
            continue;
        }
        if s > at {
            return false;
        }
        at = e;
        if at >= end {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(words: Vec<u64>) -> impl Fn(u64, u64) -> Result<Vec<u64>, i32> {
        move |_, n| Ok(words.iter().copied().chain(std::iter::repeat(0)).take(n as usize).collect())
    }

    #[test]
    fn modes_and_their_flags_are_checked_as_linux() {
        assert_eq!(sanitize(4), Ok((MPOL_LOCAL, 0)));
        assert_eq!(sanitize(7), Err(libc::EINVAL));
        assert_eq!(sanitize(u64::from((1u32 << 15) | (1 << 14) | 2)), Err(libc::EINVAL));
        assert_eq!(sanitize(u64::from((1u32 << 13) | 3)), Err(libc::EINVAL), "balancing needs BIND");
        assert_eq!(sanitize(u64::from((1u32 << 13) | 2)), Ok((MPOL_BIND, 1 << 13)));
        // Only the low 32 bits count (Linux's int).
        assert_eq!(sanitize((1 << 40) | 1), Ok((MPOL_PREFERRED, 0)));
    }

    #[test]
    fn node_masks_are_read_and_checked_as_get_nodes_does() {
        let never = |_: u64, _: u64| -> Result<Vec<u64>, i32> { Err(libc::EFAULT) };
        assert_eq!(nodes(0, 0x7ff, never), Ok((false, false)), "no mask");
        assert_eq!(nodes(8, 1, never), Ok((false, false)), "maxnode 1: no bits");
        assert_eq!(nodes(8, 0, never), Err(libc::EINVAL), "maxnode 0 wraps");
        assert_eq!(nodes(8, 40000, never), Err(libc::EINVAL));
        assert_eq!(nodes(8, 3, never), Err(libc::EFAULT));
        assert_eq!(nodes(8, 3, mask(vec![1])), Ok((true, true)));
        assert_eq!(nodes(8, 3, mask(vec![2])), Ok((false, true)));
        assert_eq!(nodes(8, 2, mask(vec![2])), Ok((false, false)), "bits past maxnode - 1 are ignored");
        assert_eq!(nodes(8, 2000, mask(vec![0; 16].into_iter().chain([1]).collect())), Err(libc::EINVAL));
        assert_eq!(nodes(8, 2000, mask(vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 << 63])), Ok((false, true)));
    }

    #[test]
    fn policies_need_the_mask_their_mode_needs() {
        assert_eq!(check_policy(MPOL_LOCAL, 0, false, false), Ok(()));
        assert_eq!(check_policy(MPOL_LOCAL, 0, true, true), Err(libc::EINVAL));
        assert_eq!(check_policy(MPOL_DEFAULT, 0, true, true), Err(libc::EINVAL));
        assert_eq!(check_policy(MPOL_PREFERRED, 0, false, false), Ok(()), "local allocation");
        assert_eq!(check_policy(MPOL_PREFERRED, MPOL_F_STATIC_NODES, false, false), Err(libc::EINVAL));
        assert_eq!(check_policy(MPOL_BIND, 0, false, false), Err(libc::EINVAL));
        assert_eq!(check_policy(MPOL_BIND, 0, true, true), Ok(()));
        assert_eq!(check_policy(MPOL_BIND, 0, false, true), Err(libc::EINVAL), "node 1 is not online");
        assert_eq!(check_policy(MPOL_BIND, MPOL_F_RELATIVE_NODES, false, true), Ok(()));
    }

    #[test]
    fn the_range_and_flags_are_checked_before_the_vmas() {
        assert_eq!(range(0x1000, 1, 2, false), Ok(Some(0x2000)));
        assert_eq!(range(0x1000, 0, 2, false), Ok(None));
        assert_eq!(range(0x1000, u64::MAX - 10, 0, false), Ok(None), "the aligned length wraps to 0");
        assert_eq!(range(0x1001, 1, 0, false), Err(libc::EINVAL));
        assert_eq!(range(0x1000, 1, 8, false), Err(libc::EINVAL));
        assert_eq!(range(0x1000, 1, 4, false), Err(libc::EPERM));
        assert_eq!(range(0x1000, 1, 4, true), Ok(Some(0x2000)));
        assert_eq!(range(!4095, 0x2000, 0, false), Err(libc::EINVAL));
        let vmas = [(0x1000, 0x3000), (0x3000, 0x5000), (0x6000, 0x7000)];
        assert!(covered(vmas.into_iter(), 0x2000, 0x5000));
        assert!(!covered(vmas.into_iter(), 0x2000, 0x6001), "a hole");
        assert!(!covered(vmas.into_iter(), 0x0, 0x2000), "a hole at the head");
        assert!(!covered(vmas.into_iter(), 0x6000, 0x8000), "a hole at the tail");
    }
}
