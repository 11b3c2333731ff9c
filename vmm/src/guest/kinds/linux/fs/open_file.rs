//! Open file descriptions: what `open` creates and `dup` shares — the
//! node, the file offset, the status flags, and what was fixed at open
//! (a synthetic file's contents, a host file's handle). Counted, so the
//! last close can release the node.

use std::fs::File;

use super::node::Ino;

/// Index of a description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescId(pub usize);

/// What was fixed when the file was opened.
#[derive(Debug)]
pub enum Content {
    /// Nothing: read through the node.
    Live,
    /// A synthetic file's bytes, made once at open.
    Snapshot(Vec<u8>),
    /// A host file, opened at open.
    Host(File),
}

/// One open file description.
#[derive(Debug)]
pub struct Description {
    /// The node opened.
    pub node: Ino,
    /// The file offset (for directories, the next entry's position).
    pub offset: u64,
    /// Access mode and status flags (`O_*`, as `F_GETFL` shows them).
    pub flags: i32,
    /// Descriptors referring to it.
    pub refs: u32,
    /// What was fixed at open.
    pub content: Content,
}

impl Description {
    /// Opened with `O_PATH`: no I/O at all.
    pub fn is_path(&self) -> bool {
        self.flags & libc::O_PATH != 0
    }

    /// Readable (not `O_WRONLY`, not `O_PATH`).
    pub fn readable(&self) -> bool {
        !self.is_path() && matches!(self.flags & libc::O_ACCMODE, libc::O_RDONLY | libc::O_RDWR)
    }

    /// Writable (`O_WRONLY` or `O_RDWR`, not `O_PATH`).
    pub fn writable(&self) -> bool {
        !self.is_path() && matches!(self.flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR)
    }
}

/// Every open description.
#[derive(Debug, Default)]
pub struct Descriptions {
    slots: Vec<Option<Description>>,
    free: Vec<usize>,
}

impl Descriptions {
    /// Adds a description with one reference.
    pub fn add(&mut self, mut desc: Description) -> DescId {
        desc.refs = 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(desc);
                DescId(i)
            }
            None => {
                self.slots.push(Some(desc));
                DescId(self.slots.len() - 1)
            }
        }
    }

    /// The description `id`.
    /// Every open description.
    pub fn iter(&self) -> impl Iterator<Item = &Description> {
        self.slots.iter().flatten()
    }

    pub fn get(&self, id: DescId) -> Option<&Description> {
        self.slots.get(id.0).and_then(Option::as_ref)
    }

    /// The description `id`, to change.
    pub fn get_mut(&mut self, id: DescId) -> Option<&mut Description> {
        self.slots.get_mut(id.0).and_then(Option::as_mut)
    }

    /// One more descriptor refers to `id`.
    pub fn retain(&mut self, id: DescId) {
        if let Some(d) = self.get_mut(id) {
            d.refs += 1;
        }
    }

    /// One descriptor fewer refers to `id`; returns the description when
    /// that was the last.
    pub fn release(&mut self, id: DescId) -> Option<Description> {
        let d = self.get_mut(id)?;
        d.refs = d.refs.saturating_sub(1);
        if d.refs > 0 {
            return None;
        }
        self.free.push(id.0);
        self.slots.get_mut(id.0).and_then(Option::take)
    }
}
