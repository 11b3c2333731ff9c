//! [`AddressSpace::check_invariants`]: the address space audits itself.
//!
//! Three censuses, each reading the state a different way from the code
//! that built it:
//! - the page-table tree walked from CR3 ([`crate::PageTables::census`])
//!   against the frames the table allocator believes it handed out: none
//!   leaked, none freed while linked, no link shared or outside memory,
//!   no empty table below the root;
//! - every leaf walked from CR3 ([`crate::PageTables::leaves`]): every
//!   page-array leaf (software `COUNTED` bit) on a pinned frame, and every
//!   user-half leaf inside a VMA;
//! - the page pool: every frame free exactly once, or used (owned or
//!   pinned), so `free + used == total`, and no frame a page-array leaf
//!   maps on the free list;
//! - the VMAs' flags: lock bits only where mlock may put them
//!   (`VM_LOCKONFAULT` only with `VM_LOCKED`, neither on a `VM_SPECIAL`
//!   or huge-page VMA), `VM_WIPEONFORK` only on private anonymous memory.
//!
//! It changes nothing, and it is not cheap (it reads every table and every
//! leaf): it is meant for the end of a run and for tests, not for the
//! hot path.

use std::collections::HashMap;

use thiserror::Error;
use vm_memory::GuestMemoryBackend;

use super::{AddressSpace, KERNEL_HALF, USER_END};
use crate::addr::{GuestVirtAddr, Pfn};

/// One broken invariant. The doc comment of each variant is its message.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Violation {
    /// A table page the allocator holds is not reachable from CR3.
    #[error("table page {pfn:#x} is held by the allocator but not reachable from CR3 (leaked)")]
    TableLeaked {
        /// The frame.
        pfn: Pfn,
    },
    /// A table reachable from CR3 is not one the allocator holds.
    #[error("level-{level} table {pfn:#x} (for {va:#x}) is reachable from CR3 but not held by the allocator")]
    TableNotHeld {
        /// The frame.
        pfn: Pfn,
        /// Its level.
        level: u32,
        /// First address it translates.
        va: u64,
    },
    /// A table link points outside guest memory or at a table already in
    /// the tree.
    #[error("level-{level} entry for {va:#x} links frame {pfn:#x}, {}", if *.shared { "already in the tree" } else { "outside guest memory" })]
    BadTableLink {
        /// The virtual address the entry translates.
        va: u64,
        /// The level of the table holding it.
        level: u32,
        /// The frame it names.
        pfn: Pfn,
        /// Shared (or a cycle) rather than outside memory.
        shared: bool,
    },
    /// A table below the root has no entry in use (it should have been
    /// freed).
    #[error("level-{level} table {pfn:#x} (for {va:#x}) is empty")]
    EmptyTable {
        /// The frame.
        pfn: Pfn,
        /// Its level.
        level: u32,
        /// First address it translates.
        va: u64,
    },
    /// The allocator's own bookkeeping disagrees with itself.
    #[error("table allocator: in_use is {in_use} but {held} frames are held{}", if *.free_list_sane { "" } else { ", and the free list names a frame twice or one never handed out" })]
    AllocatorCorrupt {
        /// The counter.
        in_use: usize,
        /// Frames handed out and not on the free list.
        held: usize,
        /// The free list is a set of handed-out frames.
        free_list_sane: bool,
    },
    /// A page-array leaf maps a frame nothing pins: the pool may hand it
    /// out again while the guest still uses it.
    #[error("the page-array leaf at {va:#x} maps frame {pfn:#x}, which nothing pins")]
    UnpinnedLeaf {
        /// The leaf's address.
        va: u64,
        /// The frame.
        pfn: Pfn,
    },
    /// A frame a page-array leaf maps is on the pool's free list.
    #[error("the page-array leaf at {va:#x} maps frame {pfn:#x}, which is on the pool's free list")]
    MappedButFree {
        /// The leaf's address.
        va: u64,
        /// The frame.
        pfn: Pfn,
    },
    /// A user-half leaf lies (partly) outside every VMA.
    #[error("a {size:#x}-byte leaf at {va:#x} lies outside every VMA")]
    LeafOutsideVma {
        /// First address of the leaf.
        va: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// A VMA carries flags mlock or madvise never give it.
    #[error("the VMA at {start:#x} has flags {flags:?} it can never get ({why})")]
    BadVmaFlags {
        /// Start of the VMA.
        start: u64,
        /// Its flags.
        flags: crate::flags::VmFlags,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A pool frame is neither free, nor owned, nor pinned.
    #[error("pool frame {pfn:#x} is neither free, owned nor pinned (leaked)")]
    PoolLeaked {
        /// The frame.
        pfn: Pfn,
    },
    /// A pool frame is on the free list while owned or pinned.
    #[error("pool frame {pfn:#x} is on the free list but owned or pinned")]
    PoolFreeButUsed {
        /// The frame.
        pfn: Pfn,
    },
    /// A frame is on the pool's free list more than once, or is not a
    /// pool frame.
    #[error("pool free list: frame {pfn:#x} {}", if *.foreign { "is not a pool frame" } else { "is listed more than once" })]
    PoolFreeList {
        /// The frame.
        pfn: Pfn,
        /// Not a pool frame at all.
        foreign: bool,
    },
    /// Free and used pool frames do not add up to the pool.
    #[error("pool: {free} free + {used} used != {total} frames")]
    PoolUnbalanced {
        /// Free frames.
        free: usize,
        /// Used frames.
        used: usize,
        /// Frames in the pool.
        total: usize,
    },
}

/// What [`AddressSpace::check_invariants`] looked at, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Table pages reachable from CR3.
    pub tables: usize,
    /// Leaves walked (both halves).
    pub leaves: usize,
    /// Page-array leaves among them.
    pub counted: u64,
    /// VMAs.
    pub vmas: usize,
    /// Pool frames free / used / in total.
    pub pool: (usize, usize, usize),
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Checks the address space's invariants by walking the page tables
    /// from CR3 and recounting (see the module docs); returns what it
    /// looked at and every violation found (empty when sound).
    pub fn check_invariants(&self) -> (Audit, Vec<Violation>) {
        let mut v = Vec::new();
        let mut audit = Audit { vmas: self.vmas.len(), ..Audit::default() };
        self.check_tables(&mut audit, &mut v);
        self.check_leaves(&mut audit, &mut v);
        self.check_pool(&mut audit, &mut v);
        self.check_vma_flags(&mut v);
        (audit, v)
    }

    fn check_vma_flags(&self, v: &mut Vec<Violation>) {
        use crate::flags::{VmFlags, VM_LOCKED_MASK};
        for vma in self.vmas.iter() {
            let flags = vma.flags();
            let why = if flags.contains(VmFlags::LOCKONFAULT) && !flags.contains(VmFlags::LOCKED) {
                "on-fault without locked"
            } else if flags.intersects(VM_LOCKED_MASK) && flags.is_unlockable() {
                "a special or huge-page VMA locked"
            } else if flags.contains(VmFlags::WIPEONFORK) && !vma.is_private_anon() {
                "wipe-on-fork on memory that is not private anonymous"
            } else {
                continue;
            };
            v.push(Violation::BadVmaFlags { start: vma.start().raw(), flags, why });
        }
    }

    fn check_tables(&self, audit: &mut Audit, v: &mut Vec<Violation>) {
        let census = self.pt.census();
        audit.tables = census.tables.len();
        let alloc = self.pt.allocator();
        let (held, sane) = alloc.held();
        if held.len() != alloc.in_use() || !sane {
            v.push(Violation::AllocatorCorrupt { in_use: alloc.in_use(), held: held.len(), free_list_sane: sane });
        }
        for l in &census.bad_links {
            v.push(Violation::BadTableLink { va: l.va, level: l.level, pfn: l.pfn, shared: l.seen_before });
        }
        let mut reached: HashMap<Pfn, ()> = HashMap::with_capacity(census.tables.len());
        for t in &census.tables {
            reached.insert(t.pfn, ());
            if held.binary_search(&t.pfn).is_err() {
                v.push(Violation::TableNotHeld { pfn: t.pfn, level: t.level, va: t.va });
            }
            if t.used == 0 && t.level != 4 {
                v.push(Violation::EmptyTable { pfn: t.pfn, level: t.level, va: t.va });
            }
        }
        for p in held.into_iter().filter(|p| !reached.contains_key(p)) {
            v.push(Violation::TableLeaked { pfn: p });
        }
    }

    fn check_leaves(&self, audit: &mut Audit, v: &mut Vec<Violation>) {
        let mut leaves = self.pt.leaves(GuestVirtAddr::ZERO, USER_END);
        let user = leaves.len();
        if let Ok(k) = GuestVirtAddr::try_new(KERNEL_HALF) {
            leaves.extend(self.pt.leaves(k, 0u64.wrapping_sub(KERNEL_HALF)));
        }
        audit.leaves = leaves.len();
        let st = self.frames.lock();
        let free = st.free_view();
        let mut counted = 0u64;
        for (i, l) in leaves.iter().enumerate() {
            let va = l.va.raw();
            if let Some(pfn) = l.counted_frame() {
                counted += 1;
                if st.pins().get(pfn) == 0 {
                    v.push(Violation::UnpinnedLeaf { va, pfn });
                }
                if free.contains(pfn) {
                    v.push(Violation::MappedButFree { va, pfn });
                }
            }
            let size = l.size.bytes();
            if i < user && !self.vmas.covers(va, va.saturating_add(size)) {
                v.push(Violation::LeafOutsideVma { va, size });
            }
        }
        audit.counted = counted;
    }

    fn check_pool(&self, audit: &mut Audit, v: &mut Vec<Violation>) {
        let c = self.frames.lock().pool_census();
        audit.pool = (c.free, c.used, c.total);
        v.extend(c.leaked.iter().map(|&pfn| Violation::PoolLeaked { pfn }));
        v.extend(c.free_but_used.iter().map(|&pfn| Violation::PoolFreeButUsed { pfn }));
        v.extend(c.free_twice.iter().map(|&pfn| Violation::PoolFreeList { pfn, foreign: false }));
        v.extend(c.foreign_free.iter().map(|&pfn| Violation::PoolFreeList { pfn, foreign: true }));
        if c.free + c.used != c.total {
            v.push(Violation::PoolUnbalanced { free: c.free, used: c.used, total: c.total });
        }
    }
}
