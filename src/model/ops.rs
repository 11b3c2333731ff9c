//! The operations the model runs, and how a fuzz input decodes into them.
//! The proptest builds the same [`Op`]s from its own strategies, with the
//! same value ranges.

use guest_mm::VmFlags;

use super::WIN_PAGES;
use crate::input::Input;

/// Most operations one fuzz input decodes to (keeps each run short).
pub const MAX_OPS: usize = 40;

/// Which provider (and action) a mapping uses.
#[derive(Clone, Debug)]
pub enum Kind {
    /// `MMAP_NOTHING`.
    Nothing,
    /// Guest RAM; `pgoff_sel` 0, 1: valid RAM, 2: the pool (`EPERM`),
    /// 3: past RAM (`EINVAL`).
    Ram {
        /// Which kind of offset.
        pgoff_sel: u8,
    },
    /// Zero pages from the pool.
    Zero,
    /// The page buffer (map-kernel-pages).
    Buffer,
    /// Huge pages, one or two 2 MiB leaves.
    Huge {
        /// Two leaves rather than one.
        two: bool,
    },
    /// `simple_ioremap` of a device window.
    Io,
    /// map-kernel-pages that skips the first pages.
    Partial {
        /// Pages skipped.
        skip: u64,
    },
    /// Two page runs with a gap.
    Discontig {
        /// Length of the first run.
        a: u64,
        /// Pages between the runs.
        gap: u64,
    },
    /// A page array with a frame outside guest memory (`EFAULT`).
    BadFrame,
    /// A page array with a page-table frame (`EPERM`).
    ReservedFrame,
}

/// One step of a sequence.
#[derive(Clone, Debug)]
pub enum Op {
    /// mmap.
    Map {
        /// Provider.
        kind: Kind,
        /// Length in pages (some kinds adjust it).
        pages: u64,
        /// Access bits (see [`access`]).
        prot: u8,
        /// `MAP_SHARED` rather than `MAP_PRIVATE`.
        shared: bool,
        /// Fixed placement: window page and whether it is `NOREPLACE`.
        at: Option<(u64, bool)>,
        /// Page offset (its meaning depends on the kind).
        pgoff: u64,
    },
    /// munmap of window pages.
    Unmap {
        /// First window page.
        page: u64,
        /// Length in pages.
        pages: u64,
    },
    /// mprotect of window pages.
    Protect {
        /// First window page.
        page: u64,
        /// Length in pages.
        pages: u64,
        /// Access bits.
        prot: u8,
    },
}

/// `READ`, `WRITE`, `EXEC` from bits 0, 1, 2.
pub fn access(bits: u8) -> VmFlags {
    let mut f = VmFlags::empty();
    if bits & 1 != 0 {
        f |= VmFlags::READ;
    }
    if bits & 2 != 0 {
        f |= VmFlags::WRITE;
    }
    if bits & 4 != 0 {
        f |= VmFlags::EXEC;
    }
    f
}

impl Kind {
    /// Decodes a kind (the proptest's ranges).
    pub fn decode(i: &mut Input<'_>) -> Kind {
        match i.u8() % 10 {
            0 => Kind::Nothing,
            1 => Kind::Ram { pgoff_sel: i.range(0, 4) as u8 },
            2 => Kind::Zero,
            3 => Kind::Buffer,
            4 => Kind::Huge { two: i.bool() },
            5 => Kind::Io,
            6 => Kind::Partial { skip: i.range(0, 8) },
            7 => Kind::Discontig { a: i.range(0, 4), gap: i.range(0, 4) },
            8 => Kind::BadFrame,
            _ => Kind::ReservedFrame,
        }
    }
}

impl Op {
    /// Decodes one operation (the proptest's ranges and weights, 4:2:2).
    pub fn decode(i: &mut Input<'_>) -> Op {
        match i.u8() % 8 {
            0..=3 => {
                let kind = Kind::decode(i);
                let pages = i.range(1, 24);
                let prot = i.range(0, 8) as u8;
                let shared = i.bool();
                let at = i.bool().then(|| (i.range(0, WIN_PAGES), i.bool()));
                let pgoff = i.range(0, 16);
                Op::Map { kind, pages, prot, shared, at, pgoff }
            }
            4 | 5 => Op::Unmap { page: i.range(0, WIN_PAGES), pages: i.range(1, 1200) },
            _ => Op::Protect { page: i.range(0, WIN_PAGES), pages: i.range(1, 64), prot: i.range(0, 8) as u8 },
        }
    }

    /// Decodes a whole input into at most [`MAX_OPS`] operations.
    pub fn decode_all(data: &[u8]) -> Vec<Op> {
        let mut i = Input::new(data);
        let mut ops = Vec::new();
        while !i.is_empty() && ops.len() < MAX_OPS {
            ops.push(Op::decode(&mut i));
        }
        ops
    }
}
