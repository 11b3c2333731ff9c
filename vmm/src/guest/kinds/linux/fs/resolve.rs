//! Path lookup in the tree: from the root, the working directory or a
//! directory descriptor, component by component, with `.`, `..`,
//! search (`x`) permission on every directory passed, and symbolic links
//! followed (at most 40, then `ELOOP`) except a final one the caller
//! asks to keep.

use super::errno::{Errno, EBADF, ELOOP, ENOENT, ENOTDIR};
use super::fd_table::Fd;
use super::node::{Ino, NodeKind, ROOT};
use super::path::{self, ParsedPath};
use super::vfs::{Vfs, MAY_EXEC};

/// Symbolic links followed in one lookup before `ELOOP` (Linux's
/// `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

/// Where a path led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lookup {
    /// To an existing node, named `name` in `parent` (`name` is empty
    /// for `/`, `.` or `..` when the path ends so).
    Found {
        /// The node.
        ino: Ino,
        /// The directory the last component was looked up in.
        parent: Ino,
        /// The last component.
        name: Vec<u8>,
    },
    /// To a missing last component `name` of existing directory `parent`.
    Missing {
        /// The directory that lacks it.
        parent: Ino,
        /// The missing name.
        name: Vec<u8>,
    },
}

/// A lookup and whether the path ended with `/`.
#[derive(Debug)]
pub(super) struct Resolved {
    /// Where it led.
    pub lookup: Lookup,
    /// The path ended with a slash.
    pub trailing_slash: bool,
}

impl Vfs {
    /// The directory a relative path starts from: the cwd for
    /// `AT_FDCWD`, else `dirfd`'s node (`EBADF`, `ENOTDIR`).
    pub(super) fn start_dir(&self, dirfd: Fd) -> Result<Ino, Errno> {
        if dirfd == Fd::CWD {
            return Ok(self.cwd);
        }
        let ino = self.desc(dirfd).map_err(|_| EBADF)?.node;
        match self.node(ino)?.kind {
            NodeKind::Dir(_) => Ok(ino),
            _ => Err(ENOTDIR),
        }
    }

    /// Looks `path` up relative to `dirfd`; follows a final symbolic
    /// link when `follow` (or when the path ends with `/`).
    pub(super) fn resolve_at(&self, dirfd: Fd, path: &[u8], follow: bool) -> Result<Resolved, Errno> {
        let parsed = path::parse(path)?;
        let start = if parsed.absolute { ROOT } else { self.start_dir(dirfd)? };
        let mut links = 0;
        let lookup = self.walk(start, &parsed, follow || parsed.trailing_slash, &mut links)?;
        Ok(Resolved { lookup, trailing_slash: parsed.trailing_slash })
    }

    /// The parent of directory `ino` (the root is its own).
    fn parent_of(&self, ino: Ino) -> Result<Ino, Errno> {
        Ok(self.node(ino)?.parent)
    }

    fn walk(&self, start: Ino, parsed: &ParsedPath<'_>, follow_last: bool, links: &mut u32) -> Result<Lookup, Errno> {
        let mut dir = start;
        let Some(last_index) = parsed.components.len().checked_sub(1) else {
            return Ok(Lookup::Found { ino: dir, parent: self.parent_of(dir)?, name: Vec::new() });
        };
        for (i, &comp) in parsed.components.iter().enumerate() {
            let last = i == last_index;
            let NodeKind::Dir(d) = &self.node(dir)?.kind else {
                return Err(ENOTDIR);
            };
            self.check_perm(dir, MAY_EXEC)?;
            let next = match comp {
                b"." => Some(dir),
                b".." => Some(self.parent_of(dir)?),
                name => d.get(name),
            };
            let Some(mut ino) = next else {
                if last {
                    return Ok(Lookup::Missing { parent: dir, name: comp.to_vec() });
                }
                return Err(ENOENT);
            };
            if let NodeKind::Symlink(target) = &self.node(ino)?.kind {
                if !last || follow_last {
                    *links += 1;
                    if *links > MAX_SYMLINKS {
                        return Err(ELOOP);
                    }
                    let target = path::parse(target)?;
                    let from = if target.absolute { ROOT } else { dir };
                    match self.walk(from, &target, true, links)? {
                        found @ Lookup::Found { .. } if last => return Ok(found),
                        missing @ Lookup::Missing { .. } if last => return Ok(missing),
                        Lookup::Found { ino: to, .. } => ino = to,
                        Lookup::Missing { .. } => return Err(ENOENT),
                    }
                }
            }
            if last {
                return Ok(Lookup::Found { ino, parent: dir, name: comp.to_vec() });
            }
            dir = ino;
        }
        Err(ENOENT)
    }
}
