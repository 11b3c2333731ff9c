//! What `/proc/self/maps` shows for each VMA: its name, the file id and
//! offset printed, and what kind of memory backs it ([`Backing`]), by the
//! naming rule of Linux 6.12's `get_vma_name`, applied to guest-mm's
//! provider names.
//!
//! One VMA is one line, except the program image's: a segment's file
//! bytes are a file mapping (the executable's path and offset), its
//! zero-filled tail (`.bss` past the last file page) is anonymous, as
//! Linux's `load_elf_binary` maps them as two VMAs. VMAs at or above the
//! task size (the VMM's syscall trampoline) are never shown.

use std::borrow::Cow;

use guest_mm::{AddressSpace, GuestVirtAddr, VmFlags, Vma, PAGE_SHIFT};

use crate::memory::GuestMem;

/// The device and inode printed for a file mapping (`%02x:%02x %lu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileId {
    /// Major device number.
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    /// Linux's internal shmem mount (`00:01`): memfds, shared anonymous
    /// memory.
    pub const fn shmem(ino: u64) -> Self {
        FileId { major: 0, minor: 1, ino }
    }
}

/// The page-aligned part of a `PT_LOAD` segment that maps file bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSegment {
    /// First address (the segment's address rounded down to a page).
    pub start: GuestVirtAddr,
    /// End of the file bytes, rounded up to a page.
    pub end: GuestVirtAddr,
    /// File offset of `start` (`p_offset` rounded down to a page).
    pub offset: u64,
}

/// The executable as the kind loaded it.
#[derive(Debug, Clone, Copy)]
pub struct ImageFile<'a> {
    /// Its absolute path (`/proc/self/exe`).
    pub path: &'a str,
    /// Device and inode shown for it.
    pub id: FileId,
    /// Its segments' file parts, in any order.
    pub segments: &'a [ImageSegment],
}

/// Gives the inode shown for a shmem-backed VMA (a memfd, shared
/// anonymous memory, huge pages).
pub type InodeOf<'a> = &'a dyn Fn(&Vma) -> u64;

/// Everything the `/proc` files are made from.
#[derive(Clone, Copy)]
pub struct ProcView<'a> {
    /// The process's address space.
    pub space: &'a AddressSpace<GuestMem>,
    /// The executable.
    pub image: ImageFile<'a>,
    /// An address in the initial stack (`mm->start_stack`): the VMA
    /// holding it is `[stack]`.
    pub start_stack: GuestVirtAddr,
    /// `TASK_SIZE`: VMAs at or above it are not shown, and pagemap ends
    /// there.
    pub task_size: GuestVirtAddr,
    /// Inodes of shmem-backed VMAs (0 when `None`).
    pub shmem_ino: Option<InodeOf<'a>>,
}

/// What backs a line's pages, for the `Rss*` and `Pss_*` counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Private anonymous memory (`RssAnon`).
    Anon,
    /// A file (`RssFile`).
    File,
    /// Shared memory: memfds, shared anonymous mappings (`RssShmem`).
    Shmem,
}

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone)]
pub struct Region<'a> {
    /// The VMA it shows (all of it, or part of an image VMA).
    pub vma: &'a Vma,
    /// First address.
    pub start: GuestVirtAddr,
    /// End (exclusive).
    pub end: GuestVirtAddr,
    /// File offset in bytes (0 for anonymous memory).
    pub offset: u64,
    /// Device and inode (zero for anonymous memory).
    pub file: FileId,
    /// The name after the padding, if any.
    pub name: Option<Cow<'a, str>>,
    /// What backs it.
    pub backing: Backing,
    /// The initial stack (`VmStk`).
    pub is_stack: bool,
}

impl Region<'_> {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.end.raw() - self.start.raw()
    }

    /// Its VMA's flags.
    pub fn flags(&self) -> VmFlags {
        self.vma.flags()
    }
}

/// The provider name of the program image (`hosted::mapper`).
pub const IMAGE_PROVIDER: &str = "image";
/// The provider name of the heap.
pub const HEAP_PROVIDER: &str = "[heap]";
/// The provider name of the stack.
pub const STACK_PROVIDER: &str = "[stack]";
/// The prefix of memfd providers' names (`memfd:NAME`).
pub const MEMFD_PREFIX: &str = "memfd:";
/// The prefix of a regular file's mapping (`file:DEV:INO:PATH`, `DEV`
/// in hex): the line shows the path, with the device and inode.
pub const FILE_PREFIX: &str = "file:";
/// The prefix of SysV shared-memory attaches' names (`SYSV%08x`).
pub const SYSV_PREFIX: &str = "SYSV";
/// The zero provider (`/dev/zero`, `MAP_ANONYMOUS`).
pub const ZERO_PROVIDER: &str = "zero";
/// The huge-page provider (`MAP_HUGETLB`).
pub const HUGE_PROVIDER: &str = "huge";

impl<'a> ProcView<'a> {
    /// Calls `f` with every line, in address order.
    pub fn for_each_region(&self, mut f: impl FnMut(Region<'a>)) {
        let task_size = self.task_size.raw();
        for vma in self.space.vmas() {
            if vma.start().raw() >= task_size {
                break;
            }
            if vma.provider_name() == IMAGE_PROVIDER {
                self.image_regions(vma, &mut f);
            } else {
                f(self.region(vma));
            }
        }
    }

    /// Every line, collected.
    pub fn regions(&self) -> Vec<Region<'a>> {
        let mut out = Vec::new();
        self.for_each_region(|r| out.push(r));
        out
    }

    /// What backs the page at `va` of `vma` (its line's [`Backing`]).
    pub fn backing_at(&self, vma: &Vma, va: u64) -> Backing {
        if vma.provider_name() == IMAGE_PROVIDER {
            let in_file = self.image.segments.iter().any(|s| s.start.raw() <= va && va < s.end.raw());
            return if in_file { Backing::File } else { Backing::Anon };
        }
        self.plain_backing(vma)
    }

    /// The backing of a VMA that is not the image's.
    fn plain_backing(&self, vma: &Vma) -> Backing {
        let name = vma.provider_name();
        let flags = vma.flags();
        let shared = flags.contains(VmFlags::MAYSHARE);
        if name.starts_with(MEMFD_PREFIX)
            || name.starts_with(FILE_PREFIX)
            || name.starts_with(SYSV_PREFIX)
            || (shared && (name == ZERO_PROVIDER || name == HUGE_PROVIDER))
        {
            Backing::Shmem
        } else if vma.is_anonymous()
            || name == ZERO_PROVIDER
            || name == HUGE_PROVIDER
            || flags.contains(VmFlags::HUGETLB)
        {
            Backing::Anon
        } else {
            Backing::File
        }
    }

    fn shmem_id(&self, vma: &Vma) -> FileId {
        FileId::shmem(self.shmem_ino.map_or(0, |f| f(vma)))
    }

    /// The line of a VMA that is not part of the image.
    fn region(&self, vma: &'a Vma) -> Region<'a> {
        let name = vma.provider_name();
        let flags = vma.flags();
        let shared = flags.contains(VmFlags::MAYSHARE);
        let file_offset = vma.pgoff().checked_shl(PAGE_SHIFT).unwrap_or(0);
        let mut r = Region {
            vma,
            start: vma.start(),
            end: GuestVirtAddr::try_new(vma.end()).unwrap_or(vma.start()),
            offset: 0,
            file: FileId::default(),
            name: None,
            backing: self.plain_backing(vma),
            is_stack: false,
        };
        // File-backed names first, as `get_vma_name` checks `vm_file`
        // before the heap and the stack.
        if let Some((dev, ino, path)) = file_name(name) {
            r.name = Some(Cow::Borrowed(path));
            r.offset = file_offset;
            r.file = FileId { major: (dev >> 8) as u32 & 0xfff, minor: (dev & 0xff) as u32, ino };
        } else if let Some(memfd) = name.strip_prefix(MEMFD_PREFIX) {
            r.name = Some(Cow::Owned(format!("/memfd:{memfd} (deleted)")));
            (r.offset, r.file) = (file_offset, self.shmem_id(vma));
        } else if name.starts_with(SYSV_PREFIX) {
            // A SysV segment's file: `SYSV%08x` on the shmem (or, for
            // SHM_HUGETLB, the hugetlbfs) internal mount, unlinked.
            r.name = Some(Cow::Owned(format!("/{name} (deleted)")));
            r.offset = file_offset;
            // Its inode number is the shmid (`newseg` sets `i_ino` so).
            let ino = crate::guest::kinds::linux::sysv_shm::attach::tag_of(vma).map_or(0, |t| t.id.0 as u64);
            let minor = if flags.contains(VmFlags::HUGETLB) { 0 } else { 1 };
            r.file = FileId { major: 0, minor, ino };
        } else if name == ZERO_PROVIDER && shared {
            r.name = Some(Cow::Borrowed("/dev/zero (deleted)"));
            (r.offset, r.file) = (file_offset, self.shmem_id(vma));
        } else if name == HUGE_PROVIDER || flags.contains(VmFlags::HUGETLB) {
            r.name = Some(Cow::Borrowed("/anon_hugepage (deleted)"));
            r.offset = file_offset;
            r.file = FileId { major: 0, minor: 0, ino: self.shmem_ino.map_or(0, |f| f(vma)) };
        } else if name == HEAP_PROVIDER || self.space.is_heap(vma) {
            r.name = Some(Cow::Borrowed("[heap]"));
        } else if name == STACK_PROVIDER || (vma.start() <= self.start_stack && self.start_stack.raw() <= vma.end()) {
            r.name = Some(Cow::Borrowed("[stack]"));
            r.is_stack = true;
        }
        r
    }

    /// The lines of an image VMA: the parts inside a segment's file
    /// pages are the executable, the rest anonymous.
    fn image_regions(&self, vma: &'a Vma, f: &mut impl FnMut(Region<'a>)) {
        let (start, end) = (vma.start().raw(), vma.end());
        let mut cur = start;
        while cur < end {
            // The segment file range holding `cur`, or the next one.
            let holding = self.image.segments.iter().find(|s| s.start.raw() <= cur && cur < s.end.raw());
            let (next, named) = match holding {
                Some(s) => (s.end.raw().min(end), Some(s)),
                None => {
                    let next_seg = self
                        .image
                        .segments
                        .iter()
                        .map(|s| s.start.raw())
                        .filter(|&s| s > cur && s < end)
                        .min()
                        .unwrap_or(end);
                    (next_seg, None)
                }
            };
            let (Ok(s), Ok(e)) = (GuestVirtAddr::try_new(cur), GuestVirtAddr::try_new(next)) else { return };
            f(match named {
                Some(seg) => Region {
                    vma,
                    start: s,
                    end: e,
                    offset: seg.offset.saturating_add(cur - seg.start.raw()),
                    file: self.image.id,
                    name: Some(Cow::Borrowed(self.image.path)),
                    backing: Backing::File,
                    is_stack: false,
                },
                None => Region {
                    vma,
                    start: s,
                    end: e,
                    offset: 0,
                    file: FileId::default(),
                    name: None,
                    backing: Backing::Anon,
                    is_stack: false,
                },
            });
            cur = next;
        }
    }
}

/// The device, inode and path in a file mapping's provider name.
fn file_name(name: &str) -> Option<(u64, u64, &str)> {
    let rest = name.strip_prefix(FILE_PREFIX)?;
    let (dev, rest) = rest.split_once(':')?;
    let (ino, path) = rest.split_once(':')?;
    Some((u64::from_str_radix(dev, 16).ok()?, ino.parse().ok()?, path))
}
