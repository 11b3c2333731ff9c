//! NUMA memory policy calls on a machine with one memory node: `mbind`
//! (guest-mm's [`guest_mm::AddressSpace::mbind`], which sets VMA policies
//! and moves pages), `set_mempolicy` (the process's policy) and
//! `get_mempolicy`. The argument checks and their order are Linux 6.12's
//! (`kernel_mbind`, `kernel_get_mempolicy`, `kernel_set_mempolicy`); the
//! user's node mask is read as `get_nodes` reads it and written back as
//! `copy_nodes_to_user` writes it.

use guest_mm::mempolicy::{MemPolicy, NodeMask, NR_NODE_IDS};
use guest_mm::{GuestVirtAddr, MmError, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT};

use super::super::image::TASK_SIZE;
use super::ctx::{ret, Ctx};
use crate::hosted::hypercall::{Effects, Outcome};
use crate::layout::PAGE_SIZE;

/// `CAP_SYS_NICE`: `MPOL_MF_MOVE_ALL` needs it.
const CAP_SYS_NICE: u32 = 23;
/// `get_mempolicy` flags.
const MPOL_F_NODE: u64 = 1;
const MPOL_F_ADDR: u64 = 2;
const MPOL_F_MEMS_ALLOWED: u64 = 4;

fn einval(e: MmError) -> i32 {
    e.errno()
}

/// `get_nodes`: the user's mask at `ptr` with `maxnode` bits (none for a
/// null pointer).
fn read_nodes(c: &Ctx<'_>, ptr: u64, maxnode: u64) -> Result<NodeMask, i32> {
    if ptr == 0 {
        return Ok(NodeMask::empty());
    }
    let words = NodeMask::user_words(maxnode).map_err(einval)?;
    let bytes = c.hv.read_user(c.vcpu, ptr, words * 8)?;
    let words: Vec<u64> =
        bytes.chunks_exact(8).map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])).collect();
    NodeMask::from_user(&words, maxnode).map_err(einval)
}

/// `copy_nodes_to_user`: the bytes `maxnode` asks for (rounded to
/// words), the first word from `nodes` and zeroes after it; `EINVAL` for
/// more than a page.
fn write_nodes(c: &Ctx<'_>, ptr: u64, maxnode: u64, nodes: &NodeMask) -> Result<(), i32> {
    let copy = maxnode.wrapping_sub(1).div_ceil(64).saturating_mul(8);
    let words = NR_NODE_IDS.div_ceil(64) * 8;
    if copy > words && copy > PAGE_SIZE {
        return Err(libc::EINVAL);
    }
    let mut out = vec![0u8; copy as usize];
    let first = nodes.words()[0].to_le_bytes();
    let n = out.len().min(8);
    out[..n].copy_from_slice(&first[..n]);
    c.hv.write_user(c.vcpu, ptr, &out)
}

/// `mbind(addr, len, mode, nodemask, maxnode, flags)`.
pub fn mbind(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [addr, len, mode, nmask, maxnode, flags] = a;
    // `flags` is an `unsigned int`.
    let flags = flags as u32 as u64;
    let r = (|| {
        MemPolicy::check_mode(mode).map_err(einval)?;
        let nodes = read_nodes(c, nmask, maxnode)?;
        if flags & !(MPOL_MF_STRICT | guest_mm::MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0 {
            return Err(libc::EINVAL);
        }
        if flags & MPOL_MF_MOVE_ALL != 0 && !c.linux.proc().has_cap(CAP_SYS_NICE) {
            return Err(libc::EPERM);
        }
        if addr % PAGE_SIZE != 0 {
            return Err(libc::EINVAL);
        }
        let len = len.checked_add(PAGE_SIZE - 1).map(|l| l & !(PAGE_SIZE - 1)).ok_or(libc::EINVAL)?;
        let end = addr.checked_add(len).ok_or(libc::EINVAL)?;
        if len == 0 {
            return Ok(None);
        }
        let policy = MemPolicy::new(mode, nodes).map_err(einval)?;
        // No VMA lies past the user range: a range there is all hole, a
        // range reaching past it has one (fine for the default policy).
        if addr >= TASK_SIZE || (end > TASK_SIZE && policy.is_some()) {
            return Err(libc::EFAULT);
        }
        let start = GuestVirtAddr::try_new(addr).map_err(|_| libc::EFAULT)?;
        Ok(Some((start, end.min(TASK_SIZE) - addr, policy, nodes)))
    })();
    let (start, len, policy, nodes) = match r {
        Ok(Some(v)) => v,
        Ok(None) => return Outcome::ret(0),
        Err(e) => return Outcome::err(e),
    };
    let d = c.hv.space_op(c.vcpu, |m| {
        let done = m.space_mut().mbind(start, len, policy, &nodes, flags)?;
        let failed = flags & MPOL_MF_STRICT != 0 && policy.is_some() && done.not_moved > 0;
        Ok((u64::from(failed), done.flush))
    });
    let mut o = match d.result {
        Ok(1) => Outcome::err(libc::EIO),
        other => ret(other.map(|_| 0)),
    };
    o.effects = Effects { fatal: d.fatal, ..Default::default() };
    o
}

/// `set_mempolicy(mode, nodemask, maxnode)`: the process's policy (kept,
/// inherited by fork, reported by `get_mempolicy`).
pub fn set_mempolicy(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [mode, nmask, maxnode, ..] = a;
    let r = (|| {
        MemPolicy::check_mode(mode).map_err(einval)?;
        let nodes = read_nodes(c, nmask, maxnode)?;
        let policy = MemPolicy::new(mode, nodes).map_err(einval)?;
        c.linux.proc().mempolicy = policy;
        Ok(0)
    })();
    ret(r)
}

/// `get_mempolicy(mode, nodemask, maxnode, addr, flags)`.
pub fn get_mempolicy(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [mode_ptr, nmask, maxnode, addr, flags, _] = a;
    let r = (|| {
        if nmask != 0 && maxnode < NR_NODE_IDS {
            return Err(libc::EINVAL);
        }
        if flags & !(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED) != 0 {
            return Err(libc::EINVAL);
        }
        let (mode, nodes) = if flags & MPOL_F_MEMS_ALLOWED != 0 {
            if flags & (MPOL_F_NODE | MPOL_F_ADDR) != 0 {
                return Err(libc::EINVAL);
            }
            (0, NodeMask::online())
        } else {
            let own = c.linux.proc().mempolicy;
            let policy = if flags & MPOL_F_ADDR != 0 {
                let at = GuestVirtAddr::try_new(addr).map_err(|_| libc::EFAULT)?;
                c.hv.mapper().space().policy_at(at).map_err(|e| e.errno())?
            } else if addr != 0 {
                return Err(libc::EINVAL);
            } else {
                own
            };
            let mode = if flags & MPOL_F_NODE != 0 {
                if flags & MPOL_F_ADDR != 0 {
                    // The node of the page at `addr`, faulted in for a read
                    // as `get_user_pages` does: the only node.
                    c.hv.read_user(c.vcpu, addr, 1)?;
                    0
                } else if own.is_some_and(|p| p.interleaves()) {
                    0
                } else {
                    return Err(libc::EINVAL);
                }
            } else {
                policy.map_or(0, |p| p.linux_mode())
            };
            (mode, policy.map_or(NodeMask::empty(), |p| p.reported_nodes()))
        };
        if mode_ptr != 0 {
            c.hv.write_user(c.vcpu, mode_ptr, &(mode as u32).to_le_bytes())?;
        }
        if nmask != 0 {
            write_nodes(c, nmask, maxnode, &nodes)?;
        }
        Ok(0)
    })();
    ret(r)
}
