//! An independent list of the leaves of a page-table tree: like
//! [`crate::census`], it reads the tables from guest memory with plain
//! loads and trusts nothing guest-mm says about them.

use vm_memory::{Bytes, GuestAddress, GuestMemory};

const P: u64 = 1;
/// Accessed: set by a CPU on every entry its walk used.
pub const A: u64 = 1 << 5;
const PS: u64 = 1 << 7;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Writable.
pub const RW: u64 = 1 << 1;
/// User accessible.
pub const US: u64 = 1 << 2;
/// Write-through, cache-disable and PAT bits of a 4 KiB entry (the PAT bit
/// of a huge leaf, bit 12, is folded into the same place by [`leaves`]).
pub const CACHE: u64 = (1 << 3) | (1 << 4) | (1 << 7);
/// No-execute.
pub const NX: u64 = 1 << 63;

/// One present leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkLeaf {
    /// Canonical virtual address of its first byte.
    pub va: u64,
    /// 4 KiB, 2 MiB or 1 GiB.
    pub size: u64,
    /// Physical address of its first byte.
    pub pa: u64,
    /// The entry's attribute bits: [`RW`], [`US`], [`NX`] and [`CACHE`]
    /// (in 4 KiB-entry form), each ANDed/ORed down the walk the way the CPU
    /// combines them (`RW`, `US` need every level, `NX` any level).
    pub attrs: u64,
    /// The leaf entry's Accessed bit: a CPU used it, and may have cached
    /// the translation (an entry with the bit clear cannot be cached).
    pub accessed: bool,
}

impl WalkLeaf {
    /// The leaf's end (exclusive).
    pub fn end(&self) -> u64 {
        self.va.wrapping_add(self.size)
    }
}

/// Every present leaf reachable from `root`, in address order.
pub fn leaves<M: GuestMemory>(mem: &M, root: GuestAddress) -> Vec<WalkLeaf> {
    let mut out = Vec::new();
    walk(mem, root, 4, 0, RW | US, 0, &mut out);
    out
}

/// The 512 entries of the table at `table`, read with one copy.
pub fn read_table<M: GuestMemory>(mem: &M, table: GuestAddress) -> [u64; 512] {
    let mut bytes = [0u8; 4096];
    mem.read_slice(&mut bytes, table).expect("table inside guest memory");
    let mut out = [0u64; 512];
    for (e, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *e = u64::from_le_bytes(b.try_into().expect("8 bytes"));
    }
    out
}

fn canonical(va: u64) -> u64 {
    if va & (1 << 47) != 0 {
        va | 0xffff_0000_0000_0000
    } else {
        va
    }
}

fn walk<M: GuestMemory>(
    mem: &M,
    table: GuestAddress,
    level: u32,
    base: u64,
    and: u64,
    or: u64,
    out: &mut Vec<WalkLeaf>,
) {
    let shift = 12 + 9 * (level - 1);
    for (i, e) in read_table(mem, table).into_iter().enumerate() {
        let i = i as u64;
        if e & P == 0 {
            continue;
        }
        let va = base | (i << shift);
        let and = and & e & (RW | US);
        let or = or | (e & NX);
        let leaf = level == 1 || (e & PS != 0 && level <= 3);
        if leaf {
            let size = 1u64 << shift;
            let cache = if level == 1 { e & CACHE } else { (e & ((1 << 3) | (1 << 4))) | ((e >> 5) & (1 << 7)) };
            let pa = e & ADDR & !(size - 1);
            out.push(WalkLeaf { va: canonical(va), size, pa, attrs: and | or | cache, accessed: e & A != 0 });
        } else {
            walk(mem, GuestAddress(e & ADDR), level - 1, va, and, or, out);
        }
    }
}
