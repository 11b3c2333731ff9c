//! A reference model of guest-mm's address space, shared by the proptest
//! (`tests/mapper/mapper_model.rs`) and the `mapper_ops` fuzz target.
//!
//! [`World`] runs random sequences of mmap (every action kind, valid and
//! invalid), munmap and mprotect ([`Op`]) on a real [`guest_mm::AddressSpace`]
//! and on a page-by-page model, and [`World::check`] compares the two:
//! every page's translation, the VMAs (coalesced the way the merge rules
//! allow), table pages against an independent walk of guest memory, map
//! counts and pool pages. A mismatch panics with what differs.
//!
//! What it does not model: the exact placement of a non-fixed mapping
//! (only that it lies in the window, on free pages, aligned), and which
//! resource failure (`ENOMEM`) a full pool or window gives beyond "allowed".

mod ops;
mod providers;
mod world;

pub use ops::{access, Kind, Op, MAX_OPS};
pub use world::World;

use crate::fixture::Layout;
use guest_mm::PAGE_SIZE;

/// The model's guest: the small layout with a 16 MiB window.
pub const L: Layout = Layout { window: (64 << 30, (64 << 30) + (16 << 20)), ..Layout::SMALL };
/// Pages in the window.
pub const WIN_PAGES: u64 = (L.window.1 - L.window.0) / PAGE_SIZE;
/// Pool pages the page buffer provider holds.
pub const BUFFER_PAGES: u64 = 512;
/// The I/O provider's device window (a sub-page start).
pub const IO_PHYS: u64 = 0xfe00_0800;
/// The I/O provider's window size.
pub const IO_SIZE: u64 = 0x1_0000;
/// Frames (outside pool, tables, huge region) the array providers use.
pub const ARRAY_BASE: u64 = 0x100;
