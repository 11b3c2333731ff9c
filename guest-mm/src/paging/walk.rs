//! The writer's walk: descending from the root, creating missing tables,
//! and undoing everything one operation wrote when it fails.
//!
//! [`Writer::populate`] is shared by map, insert and restore; what ends up
//! in the leaves is decided by a [`Filler`]. New tables are zeroed, then
//! filled, then linked into their parent with one store, so a concurrent
//! hardware walker sees either nothing or the finished subtree. A new leaf
//! table that the range covers whole is not zeroed when the filler writes
//! every entry without reading it ([`Filler::fill_fresh`]): zeroing 4 KiB
//! that is overwritten at once cost about 0.3 ns per mapped page.
//!
//! The writer trusts no entry blindly either: a table pointer is followed
//! only when it names a frame of the table allocator.

use vm_memory::GuestMemory;

use super::entry::{classify, entry_end, index, span, table_entry, Entry, ADDR_4K, P};
use super::flush::FlushSet;
use super::stats::MapStats;
use super::table::{Table, ENTRIES};
use crate::addr::{PageSize, Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::frames::TableAllocator;

/// Decides and writes the leaves of a [`Writer::populate`] pass.
pub(super) trait Filler {
    /// Whether the entry at `level` (2 or 3) that the range covers as
    /// `[va, end)` becomes one leaf of that level. Level-1 entries always
    /// are leaves and are not asked about.
    fn leaf_here(&self, level: u32, va: u64, end: u64) -> bool;

    /// Writes `n` leaves at `level` into entries `first..first + n` of
    /// `table`, the first one mapping `va`. Every entry must be unused:
    /// stops at the first used one (or at a frame the filler refuses).
    fn fill(&mut self, table: &Table<'_>, level: u32, first: usize, va: u64, n: usize) -> Result<(), Stopped>;

    /// Whether [`Filler::fill_fresh`] may be used: a new leaf table whose
    /// 512 entries the range covers whole is then not zeroed first.
    fn fills_fresh_tables(&self) -> bool {
        false
    }

    /// Writes all 512 level-1 entries of `table`, a new table that was not
    /// zeroed (its entries are garbage and must not be read), the first
    /// one mapping `va`. On a stop the writer clears nothing past
    /// `written`: the table is freed unlinked, and every table allocation
    /// either zeroes or overwrites whole before linking.
    fn fill_fresh(&mut self, table: &Table<'_>, va: u64) -> Result<(), Stopped> {
        table.zero();
        self.fill(table, 1, 0, va, ENTRIES)
    }
}

/// Why a [`Filler::fill`] stopped early, after writing `written` entries.
#[derive(Debug)]
pub(super) struct Stopped {
    /// Entries written before stopping.
    pub(super) written: usize,
    /// `None`: the next entry was in use (`MmError::Exists`).
    pub(super) error: Option<MmError>,
}

impl Stopped {
    /// Stopped at a used entry.
    pub(super) fn used(written: usize) -> Self {
        Stopped { written, error: None }
    }
}

/// Entries `first..first + count` of `table` written by this operation,
/// the first one mapping `va`.
#[derive(Debug)]
struct Run {
    va: u64,
    table: Pfn,
    level: u8,
    first: u16,
    count: u16,
}

/// A table this operation allocated, and where it is (or will be) linked.
#[derive(Debug)]
struct Created {
    parent: Pfn,
    index: u16,
    child: Pfn,
}

/// One operation's access to the tables: guest memory, the allocator and
/// an undo log of what it wrote.
pub(super) struct Writer<'a, M: GuestMemory> {
    pub(super) mem: &'a M,
    pub(super) alloc: &'a mut TableAllocator,
    root: Pfn,
    unchecked: bool,
    /// Start of the caller's range, reported by `MmError::Exists`.
    pub(super) start: u64,
    runs: Vec<Run>,
    created: Vec<Created>,
    /// Where [`Writer::rollback`] records the entries it cleared that a
    /// hardware walker could have used (the owner's pending flush).
    cleared: &'a mut FlushSet,
}

impl<'a, M: GuestMemory> Writer<'a, M> {
    pub(super) fn new(
        mem: &'a M,
        alloc: &'a mut TableAllocator,
        cleared: &'a mut FlushSet,
        root: Pfn,
        unchecked: bool,
        start: u64,
    ) -> Self {
        Writer { mem, alloc, root, unchecked, start, runs: Vec::new(), created: Vec::new(), cleared }
    }

    /// Reserves room in the undo log for about `tables` leaf tables.
    pub(super) fn reserve_log(&mut self, tables: usize) {
        self.runs.reserve(tables);
    }

    /// The error for a range that is (partly) mapped already.
    pub(super) fn exists(&self) -> MmError {
        MmError::Exists { addr: self.start }
    }

    /// A writable view of the table in `frame`, refusing frames that are
    /// not table pages, or the root, as a child (a corrupted pointer).
    pub(super) fn view(&self, frame: Pfn) -> Result<Table<'a>, MmError> {
        if !self.alloc.contains(frame) || frame == self.root {
            return Err(MmError::GuestMemory { addr: frame.0 << PAGE_SHIFT });
        }
        Table::new(self.mem, frame, true)
    }

    /// The root table.
    pub(super) fn root(&self) -> Result<Table<'a>, MmError> {
        Table::new(self.mem, self.root, true)
    }

    /// Allocates one frame, honouring failure injection unless unchecked.
    pub(super) fn alloc_frame(&mut self) -> Result<Pfn, MmError> {
        if self.unchecked {
            self.alloc.alloc_unchecked()
        } else {
            self.alloc.alloc()
        }
    }

    /// A new table for entry `index` of `parent`, zeroed if `zero`,
    /// recorded in the undo log but not linked.
    fn new_table(&mut self, parent: Pfn, index: usize, zero: bool) -> Result<Table<'a>, MmError> {
        let frame = self.alloc_frame()?;
        let table = match self.view(frame) {
            Ok(t) => t,
            Err(e) => {
                self.alloc.free(frame);
                return Err(e);
            }
        };
        if zero {
            table.zero();
        }
        self.created.push(Created { parent, index: index as u16, child: frame });
        Ok(table)
    }

    fn record(&mut self, table: Pfn, level: u32, first: usize, va: u64, count: usize) {
        if count == 0 {
            return;
        }
        if let Some(last) = self.runs.last_mut() {
            if last.table == table && last.level as u32 == level && last.first as usize + last.count as usize == first {
                last.count += count as u16;
                return;
            }
        }
        self.runs.push(Run { va, table, level: level as u8, first: first as u16, count: count as u16 });
    }

    /// Maps `[va, end)` below `table` (at `level`), creating missing
    /// tables. `[va, end)` lies inside the range `table` covers. A used
    /// entry where a leaf goes, or a leaf where a table is needed, is
    /// `MmError::Exists`; the caller then calls [`Writer::rollback`].
    pub(super) fn populate<F: Filler>(
        &mut self,
        table: &Table<'a>,
        level: u32,
        va: u64,
        end: u64,
        f: &mut F,
    ) -> Result<(), MmError> {
        let mut cur = va;
        if level == 1 {
            let first = index(cur, 1);
            let n = (((end - cur) / PAGE_SIZE) as usize).min(ENTRIES - first);
            return self.fill(f, table, 1, first, cur, n);
        }
        while cur < end {
            let idx = index(cur, level);
            let next = entry_end(cur, level, end);
            if f.leaf_here(level, cur, next) {
                self.fill(f, table, level, idx, cur, 1)?;
            } else {
                match classify(table.get(idx), level) {
                    Entry::Table(frame) => {
                        let child = self.view(frame)?;
                        self.populate(&child, level - 1, cur, next, f)?;
                    }
                    Entry::Empty => {
                        // A new leaf table the range covers whole is
                        // written entry by entry anyway: skip zeroing it.
                        let whole = level == 2 && next - cur == ENTRIES as u64 * PAGE_SIZE && f.fills_fresh_tables();
                        let child = self.new_table(table.frame(), idx, !whole)?;
                        if whole {
                            match f.fill_fresh(&child, cur) {
                                Ok(()) => self.record(child.frame(), 1, 0, cur, ENTRIES),
                                Err(stop) => {
                                    self.record(child.frame(), 1, 0, cur, stop.written.min(ENTRIES));
                                    return Err(stop.error.unwrap_or_else(|| self.exists()));
                                }
                            }
                        } else {
                            self.populate(&child, level - 1, cur, next, f)?;
                        }
                        table.set_release(idx, table_entry(child.frame()));
                    }
                    Entry::Leaf(_) => return Err(self.exists()),
                }
            }
            cur = next;
        }
        Ok(())
    }

    /// Runs `f.fill` and records what it wrote in the undo log.
    fn fill<F: Filler>(
        &mut self,
        f: &mut F,
        table: &Table<'a>,
        level: u32,
        first: usize,
        va: u64,
        n: usize,
    ) -> Result<(), MmError> {
        match f.fill(table, level, first, va, n) {
            Ok(()) => {
                self.record(table.frame(), level, first, va, n);
                Ok(())
            }
            Err(stop) => {
                self.record(table.frame(), level, first, va, stop.written.min(n));
                Err(stop.error.unwrap_or_else(|| self.exists()))
            }
        }
    }

    /// Keeps what this operation wrote; returns its counters.
    pub(super) fn commit(&mut self) -> MapStats {
        let mut stats = MapStats { tables_allocated: self.created.len() as u64, ..MapStats::default() };
        for run in self.runs.drain(..) {
            if let Some(size) = PageSize::from_level(run.level as u32) {
                stats.add_leaves(size, run.count as u64);
            }
        }
        self.created.clear();
        stats
    }

    /// Clears every entry this operation wrote, then unlinks and frees the
    /// tables it allocated, newest first.
    ///
    /// Entries written into a table the hardware walker could reach (one
    /// that existed before, or a new one already linked into a reachable
    /// parent) were live and may be cached: their ranges go to the owner's
    /// pending flush, and so does "tables freed" when a linked table is
    /// freed. Entries of tables never linked were never seen.
    pub(super) fn rollback(&mut self) {
        let linked = self.linked();
        for run in &self.runs {
            let fresh = self.created.iter().position(|c| c.child == run.table);
            if fresh.is_none_or(|i| linked[i]) {
                self.cleared.add(run.va, run.count as u64 * span(run.level as u32));
            }
        }
        if linked.iter().any(|&l| l) {
            self.cleared.set_tables_freed();
        }
        for run in self.runs.drain(..).rev() {
            match Table::new(self.mem, run.table, true) {
                Ok(t) => {
                    let first = run.first as usize;
                    for i in first..first + run.count as usize {
                        t.set(i, 0);
                    }
                }
                Err(e) => log::error!("rollback cannot reach table {:#x}: {e}", run.table),
            }
        }
        for c in self.created.drain(..).rev() {
            if let Ok(parent) = Table::new(self.mem, c.parent, true) {
                let raw = parent.get(c.index as usize);
                if raw & P != 0 && (raw & ADDR_4K) >> PAGE_SHIFT == c.child.0 {
                    parent.set(c.index as usize, 0);
                }
            }
            self.alloc.free(c.child);
        }
    }

    /// Records that a table which was reachable over `[va, va + len)` has
    /// been unlinked and freed (a re-join): the owner must flush.
    pub(super) fn freed_linked_table(&mut self, va: u64, len: u64) {
        self.cleared.add(va, len);
        self.cleared.set_tables_freed();
    }

    /// For each created table (in creation order), whether it is reachable
    /// from the root now: linked into a parent that existed before or is
    /// itself reachable. A parent is always created before its children.
    fn linked(&self) -> Vec<bool> {
        let mut linked = Vec::with_capacity(self.created.len());
        for c in &self.created {
            let parent_reachable = match self.created.iter().position(|p| p.child == c.parent) {
                Some(i) => linked.get(i).copied().unwrap_or(false),
                None => true,
            };
            let points = Table::new(self.mem, c.parent, false).is_ok_and(|parent| {
                let raw = parent.get(c.index as usize);
                raw & P != 0 && (raw & ADDR_4K) >> PAGE_SHIFT == c.child.0
            });
            linked.push(parent_reachable && points);
        }
        linked
    }

    /// The table holding the entry that maps `va` at `stop` level, or the
    /// deepest entry above it when the walk ends early (empty entry, leaf,
    /// or a pointer the writer refuses to follow). Returns the table, its
    /// level and the index.
    pub(super) fn find(&self, va: u64, stop: u32) -> Option<(Table<'a>, u32, usize)> {
        let mut table = self.root().ok()?;
        let mut level = 4;
        loop {
            let idx = index(va, level);
            if level == stop {
                return Some((table, level, idx));
            }
            match classify(table.get(idx), level) {
                Entry::Table(frame) => match self.view(frame) {
                    Ok(child) => {
                        table = child;
                        level -= 1;
                    }
                    Err(_) => return Some((table, level, idx)),
                },
                _ => return Some((table, level, idx)),
            }
        }
    }
}
