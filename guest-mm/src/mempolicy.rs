//! NUMA memory policies (Linux's `struct mempolicy`, `mm/mempolicy.c`)
//! on a machine with one memory node, node 0.
//!
//! A policy says on which nodes a range's pages should live. With one
//! node every page already lives where any valid policy wants it, so what
//! is left to model is what a program can observe: which modes, flags and
//! node masks are valid (`EINVAL` exactly where Linux 6.12 says so), the
//! policy a VMA carries (it splits VMAs, and VMAs with different policies
//! never merge), and what `get_mempolicy` reports back. Moving pages
//! (`MPOL_MF_MOVE`) is in [`crate::space::AddressSpace::mbind`].

use crate::error::MmError;

/// Nodes a mask can name (`MAX_NUMNODES`, `CONFIG_NODES_SHIFT=10` as in
/// distribution kernels).
pub const MAX_NUMNODES: u64 = 1024;
/// Nodes that exist (`nr_node_ids`): node 0 only.
pub const NR_NODE_IDS: u64 = 1;

/// `MPOL_F_STATIC_NODES`: the mask is kept as given, not remapped.
pub const MPOL_F_STATIC_NODES: u64 = 1 << 15;
/// `MPOL_F_RELATIVE_NODES`: the mask is relative to the allowed nodes.
pub const MPOL_F_RELATIVE_NODES: u64 = 1 << 14;
/// `MPOL_F_NUMA_BALANCING`: NUMA balancing for a bind policy.
pub const MPOL_F_NUMA_BALANCING: u64 = 1 << 13;
/// The mode flags a mode argument may carry.
pub const MPOL_MODE_FLAGS: u64 = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING;

const WORDS: usize = (MAX_NUMNODES / 64) as usize;

/// A set of nodes (`nodemask_t`), `MAX_NUMNODES` bits.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeMask([u64; WORDS]);

impl NodeMask {
    /// No node.
    pub const fn empty() -> NodeMask {
        NodeMask([0; WORDS])
    }

    /// The nodes that exist and have memory (`node_states[N_MEMORY]`,
    /// also the allowed set `cpuset_current_mems_allowed`).
    pub fn online() -> NodeMask {
        let mut m = NodeMask::empty();
        m.0[0] = (1 << NR_NODE_IDS) - 1;
        m
    }

    /// Linux's `get_nodes` over the words a caller read from the user's
    /// mask: `maxnode - 1` bits count (no pointer or `maxnode` of 0 or 1:
    /// empty), more than a page of bits is `EINVAL`, and so is any set bit
    /// past [`MAX_NUMNODES`]. `words` must hold the
    /// [`NodeMask::user_words`] the caller read.
    pub fn from_user(words: &[u64], maxnode: u64) -> Result<NodeMask, MmError> {
        let bits = Self::user_bits(maxnode)?;
        let mut m = NodeMask::empty();
        if bits == 0 {
            return Ok(m);
        }
        let need = bits.div_ceil(64);
        if (words.len() as u64) < need {
            return Err(MmError::Invalid("node mask shorter than maxnode"));
        }
        for (i, &w) in words.iter().take(need as usize).enumerate() {
            let lo = i as u64 * 64;
            let keep = if bits - lo >= 64 { u64::MAX } else { (1u64 << (bits - lo)) - 1 };
            let w = w & keep;
            match m.0.get_mut(i) {
                Some(slot) => *slot = w,
                None if w != 0 => return Err(MmError::Invalid("node mask names a node past MAX_NUMNODES")),
                None => {}
            }
        }
        Ok(m)
    }

    /// How many 64-bit words of the user's mask `get_nodes` reads for
    /// `maxnode` (0 when it reads none); `EINVAL` past a page of bits.
    pub fn user_words(maxnode: u64) -> Result<u64, MmError> {
        Ok(Self::user_bits(maxnode)?.div_ceil(64))
    }

    fn user_bits(maxnode: u64) -> Result<u64, MmError> {
        let bits = maxnode.wrapping_sub(1);
        if bits == 0 {
            return Ok(0);
        }
        if bits > 4096 * 8 {
            return Err(MmError::Invalid("maxnode is more than a page of bits"));
        }
        Ok(bits)
    }

    /// The mask's words.
    pub fn words(&self) -> &[u64] {
        &self.0
    }

    /// No node set?
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// Is `node` in the set?
    pub fn contains(&self, node: u64) -> bool {
        node < MAX_NUMNODES && self.0[(node / 64) as usize] & (1 << (node % 64)) != 0
    }

    fn and(&self, other: &NodeMask) -> NodeMask {
        let mut m = *self;
        for (a, b) in m.0.iter_mut().zip(other.0) {
            *a &= b;
        }
        m
    }

    /// `mpol_relative_nodemask`: bit `n` of `self` names the
    /// `n mod |onto|`-th node of `onto`.
    fn relative_onto(&self, onto: &NodeMask) -> NodeMask {
        let targets: Vec<u64> = (0..MAX_NUMNODES).filter(|&n| onto.contains(n)).collect();
        let mut m = NodeMask::empty();
        if targets.is_empty() {
            return m;
        }
        for n in (0..MAX_NUMNODES).filter(|&n| self.contains(n)) {
            let t = targets[(n % targets.len() as u64) as usize];
            m.0[(t / 64) as usize] |= 1 << (t % 64);
        }
        m
    }
}

impl std::fmt::Debug for NodeMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries((0..MAX_NUMNODES).filter(|&n| self.contains(n))).finish()
    }
}

/// A policy's mode (`MPOL_*`); `MPOL_DEFAULT` is the absence of a policy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PolicyMode {
    /// `MPOL_PREFERRED`: the first node of the mask first.
    Preferred = 1,
    /// `MPOL_BIND`: only the mask's nodes.
    Bind = 2,
    /// `MPOL_INTERLEAVE`: round robin over the mask.
    Interleave = 3,
    /// `MPOL_LOCAL`: the node of the CPU that allocates.
    Local = 4,
    /// `MPOL_PREFERRED_MANY`: the mask's nodes first.
    PreferredMany = 5,
    /// `MPOL_WEIGHTED_INTERLEAVE`: weighted round robin over the mask.
    WeightedInterleave = 6,
}

/// `MPOL_MAX`: modes are below it.
const MPOL_MAX: u64 = 7;

/// A policy other than the default.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MemPolicy {
    mode: PolicyMode,
    flags: u64,
    /// The nodes it allows, within the online ones (`pol->nodes`).
    nodes: NodeMask,
    /// The mask as the user gave it, kept for `STATIC`/`RELATIVE`
    /// policies (`pol->w.user_nodemask`).
    user: NodeMask,
}

impl MemPolicy {
    /// `sanitize_mpol_flags`, `mpol_new` and `mpol_set_nodemask` for the
    /// mode argument `mode` (mode with its flags) and the user's mask:
    /// `Ok(None)` for `MPOL_DEFAULT` (no policy), else the policy, or
    /// `EINVAL` as Linux 6.12 decides (an unknown mode, both
    /// `STATIC` and `RELATIVE`, `NUMA_BALANCING` off a bind mode, a mask
    /// on `DEFAULT` or `LOCAL`, node flags on `LOCAL`, no usable node for
    /// a mode that needs one). `mode` is taken as the kernel's `int`.
    pub fn new(mode: u64, nodes: NodeMask) -> Result<Option<MemPolicy>, MmError> {
        let (mode, flags) = Self::check_mode(mode)?;
        let mut mode = match mode {
            0 => {
                return if nodes.is_empty() { Ok(None) } else { Err(MmError::Invalid("MPOL_DEFAULT with nodes")) };
            }
            1 => PolicyMode::Preferred,
            2 => PolicyMode::Bind,
            3 => PolicyMode::Interleave,
            4 => PolicyMode::Local,
            5 => PolicyMode::PreferredMany,
            _ => PolicyMode::WeightedInterleave,
        };
        let node_flags = flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES);
        if nodes.is_empty() {
            match mode {
                PolicyMode::Preferred if node_flags == 0 => mode = PolicyMode::Local,
                PolicyMode::Local if node_flags == 0 => {}
                _ => return Err(MmError::Invalid("memory policy without nodes")),
            }
        } else if mode == PolicyMode::Local {
            if node_flags != 0 {
                return Err(MmError::Invalid("MPOL_LOCAL with node flags"));
            }
            return Err(MmError::Invalid("MPOL_LOCAL with nodes"));
        }
        let mut pol = MemPolicy { mode, flags, nodes: NodeMask::empty(), user: NodeMask::empty() };
        if mode == PolicyMode::Local {
            return Ok(Some(pol));
        }
        let allowed = NodeMask::online();
        let usable =
            if flags & MPOL_F_RELATIVE_NODES != 0 { nodes.relative_onto(&allowed) } else { nodes.and(&allowed) };
        if usable.is_empty() {
            return Err(MmError::Invalid("no allowed node in the memory policy's mask"));
        }
        if node_flags != 0 {
            pol.user = nodes;
        }
        pol.nodes = if mode == PolicyMode::Preferred {
            // The first node only (`mpol_new_preferred`).
            let first = (0..MAX_NUMNODES).find(|&n| usable.contains(n)).unwrap_or(0);
            let mut one = NodeMask::empty();
            one.0[(first / 64) as usize] = 1 << (first % 64);
            one
        } else {
            usable
        };
        Ok(Some(pol))
    }

    /// `sanitize_mpol_flags`: the mode argument (the kernel's `int`) split
    /// into mode and mode flags, `EINVAL` for an unknown mode, `STATIC`
    /// with `RELATIVE`, or `NUMA_BALANCING` off `MPOL_BIND` and
    /// `MPOL_PREFERRED_MANY`. Linux checks this before it reads the mask.
    pub fn check_mode(mode: u64) -> Result<(u64, u64), MmError> {
        let mode = mode as u32 as u64;
        let flags = mode & MPOL_MODE_FLAGS;
        let mode = mode & !MPOL_MODE_FLAGS;
        if mode >= MPOL_MAX {
            return Err(MmError::Invalid("unknown memory policy mode"));
        }
        if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
            return Err(MmError::Invalid("MPOL_F_STATIC_NODES with MPOL_F_RELATIVE_NODES"));
        }
        if flags & MPOL_F_NUMA_BALANCING != 0 && mode != 2 && mode != 5 {
            return Err(MmError::Invalid("MPOL_F_NUMA_BALANCING needs MPOL_BIND or MPOL_PREFERRED_MANY"));
        }
        Ok((mode, flags))
    }

    /// Its mode.
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }

    /// What `get_mempolicy` reports as the mode: the mode with its mode
    /// flags.
    pub fn linux_mode(&self) -> u64 {
        self.mode as u64 | self.flags
    }

    /// What `get_mempolicy` reports as the mask: the user's mask for a
    /// `STATIC`/`RELATIVE` policy, else its nodes (none for `LOCAL`).
    pub fn reported_nodes(&self) -> NodeMask {
        if self.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 {
            self.user
        } else {
            self.nodes
        }
    }

    /// Interleaving (`get_mempolicy(MPOL_F_NODE)` without an address
    /// reports the next node only for these).
    pub fn interleaves(&self) -> bool {
        matches!(self.mode, PolicyMode::Interleave | PolicyMode::WeightedInterleave)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mask(bits: &[u64]) -> NodeMask {
        let mut m = NodeMask::empty();
        for &b in bits {
            m.0[(b / 64) as usize] |= 1 << (b % 64);
        }
        m
    }

    #[test]
    fn default_is_no_policy_and_takes_no_nodes() {
        assert_eq!(MemPolicy::new(0, NodeMask::empty()), Ok(None));
        assert!(MemPolicy::new(0, mask(&[0])).is_err());
    }

    #[test]
    fn modes_and_flags_are_checked_as_linux_does() {
        assert!(MemPolicy::new(7, mask(&[0])).is_err(), "MPOL_MAX");
        assert!(MemPolicy::new(2 | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, mask(&[0])).is_err());
        assert!(MemPolicy::new(3 | MPOL_F_NUMA_BALANCING, mask(&[0])).is_err());
        assert!(MemPolicy::new(2 | MPOL_F_NUMA_BALANCING, mask(&[0])).unwrap().is_some());
        // Modes that need nodes.
        for m in [2, 3, 5, 6] {
            assert!(MemPolicy::new(m, NodeMask::empty()).is_err(), "mode {m}");
            assert_eq!(MemPolicy::new(m, mask(&[0])).unwrap().unwrap().linux_mode(), m);
        }
        // Node 5 does not exist: nothing usable.
        assert!(MemPolicy::new(2, mask(&[5])).is_err());
        // ... unless relative: bit 5 names the only allowed node.
        let rel = MemPolicy::new(2 | MPOL_F_RELATIVE_NODES, mask(&[5])).unwrap().unwrap();
        assert_eq!(rel.reported_nodes(), mask(&[5]));
        assert_eq!(rel.linux_mode(), 2 | MPOL_F_RELATIVE_NODES);
        // Static keeps the user's mask for reporting, the nodes within it.
        let st = MemPolicy::new(3 | MPOL_F_STATIC_NODES, mask(&[0, 9])).unwrap().unwrap();
        assert_eq!(st.reported_nodes(), mask(&[0, 9]));
        assert!(st.interleaves());
        let plain = MemPolicy::new(2, mask(&[0, 9])).unwrap().unwrap();
        assert_eq!(plain.reported_nodes(), mask(&[0]));
    }

    #[test]
    fn preferred_without_nodes_is_local_and_local_takes_no_nodes() {
        let p = MemPolicy::new(1, NodeMask::empty()).unwrap().unwrap();
        assert_eq!((p.mode(), p.linux_mode()), (PolicyMode::Local, 4));
        assert!(p.reported_nodes().is_empty());
        assert!(MemPolicy::new(1 | MPOL_F_STATIC_NODES, NodeMask::empty()).is_err());
        assert_eq!(MemPolicy::new(4, NodeMask::empty()).unwrap().unwrap().mode(), PolicyMode::Local);
        assert!(MemPolicy::new(4, mask(&[0])).is_err());
        assert!(MemPolicy::new(4 | MPOL_F_STATIC_NODES, NodeMask::empty()).is_err());
        // The mode is the kernel's int: high bits are dropped.
        assert_eq!(MemPolicy::new((1 << 32) | 2, mask(&[0])).unwrap().unwrap().mode(), PolicyMode::Bind);
    }

    #[test]
    fn user_masks_follow_get_nodes() {
        // maxnode 0 and 1 read nothing; past a page of bits is EINVAL.
        assert!(NodeMask::user_words(0).is_err(), "maxnode 0 wraps to a huge count");
        assert_eq!(NodeMask::user_words(1).ok(), Some(0));
        assert_eq!(NodeMask::user_words(65).ok(), Some(1));
        assert_eq!(NodeMask::user_words(66).ok(), Some(2));
        assert!(NodeMask::user_words(4096 * 8 + 2).is_err());
        assert!(NodeMask::from_user(&[], 1).unwrap().is_empty());
        // Bits past maxnode - 1 are dropped.
        assert_eq!(NodeMask::from_user(&[0b111], 3).unwrap(), mask(&[0, 1]));
        // Bits past MAX_NUMNODES: EINVAL when set, fine when clear.
        let mut words = vec![0u64; 17];
        words[0] = 1;
        assert_eq!(NodeMask::from_user(&words, 17 * 64 + 1).unwrap(), mask(&[0]));
        words[16] = 1;
        assert!(NodeMask::from_user(&words, 17 * 64 + 1).is_err());
        // Too few words for maxnode.
        assert!(NodeMask::from_user(&[1], 130).is_err());
    }
}
