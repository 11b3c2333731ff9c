//! The byte layouts of Linux x86-64 `struct stat` (144 bytes, what
//! `fstat`/`newfstatat` write) and `struct statfs` (120 bytes), built
//! from plain field values. The layouts are the kernel's
//! (`arch/x86/include/uapi/asm/stat.h`, `asm-generic/statfs.h`); the
//! tests check them against the host libc's.

use super::node::Timespec;

/// Size of `struct stat`.
pub const STAT_SIZE: usize = 144;
/// Size of `struct statfs`.
pub const STATFS_SIZE: usize = 120;

/// `TMPFS_MAGIC`.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;
/// `PROC_SUPER_MAGIC`.
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// `SYSFS_MAGIC`.
pub const SYSFS_MAGIC: i64 = 0x6265_6572;

/// The fields of `struct stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_nlink`.
    pub nlink: u64,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// `st_uid`.
    pub uid: u32,
    /// `st_gid`.
    pub gid: u32,
    /// `st_rdev`.
    pub rdev: u64,
    /// `st_size`.
    pub size: i64,
    /// `st_blksize`.
    pub blksize: i64,
    /// `st_blocks` (512-byte units).
    pub blocks: i64,
    /// `st_atim`.
    pub atime: Timespec,
    /// `st_mtim`.
    pub mtime: Timespec,
    /// `st_ctim`.
    pub ctime: Timespec,
}

/// Byte offsets of the `struct stat` fields.
pub mod stat_offsets {
    /// `st_dev`.
    pub const DEV: usize = 0;
    /// `st_ino`.
    pub const INO: usize = 8;
    /// `st_nlink`.
    pub const NLINK: usize = 16;
    /// `st_mode`.
    pub const MODE: usize = 24;
    /// `st_uid`.
    pub const UID: usize = 28;
    /// `st_gid`.
    pub const GID: usize = 32;
    /// `st_rdev`.
    pub const RDEV: usize = 40;
    /// `st_size`.
    pub const SIZE: usize = 48;
    /// `st_blksize`.
    pub const BLKSIZE: usize = 56;
    /// `st_blocks`.
    pub const BLOCKS: usize = 64;
    /// `st_atime`, then its nanoseconds.
    pub const ATIME: usize = 72;
    /// `st_mtime`, then its nanoseconds.
    pub const MTIME: usize = 88;
    /// `st_ctime`, then its nanoseconds.
    pub const CTIME: usize = 104;
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

impl Stat {
    /// The 144 bytes the guest reads.
    pub fn to_bytes(&self) -> [u8; STAT_SIZE] {
        use stat_offsets::*;
        let mut b = [0u8; STAT_SIZE];
        put(&mut b, DEV, &self.dev.to_le_bytes());
        put(&mut b, INO, &self.ino.to_le_bytes());
        put(&mut b, NLINK, &self.nlink.to_le_bytes());
        put(&mut b, MODE, &self.mode.to_le_bytes());
        put(&mut b, UID, &self.uid.to_le_bytes());
        put(&mut b, GID, &self.gid.to_le_bytes());
        put(&mut b, RDEV, &self.rdev.to_le_bytes());
        put(&mut b, SIZE, &self.size.to_le_bytes());
        put(&mut b, BLKSIZE, &self.blksize.to_le_bytes());
        put(&mut b, BLOCKS, &self.blocks.to_le_bytes());
        for (at, t) in [(ATIME, self.atime), (MTIME, self.mtime), (CTIME, self.ctime)] {
            put(&mut b, at, &t.sec.to_le_bytes());
            put(&mut b, at + 8, &t.nsec.to_le_bytes());
        }
        b
    }
}

/// The fields of `struct statfs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatFs {
    /// `f_type` (the magic number).
    pub fs_type: i64,
    /// `f_bsize`.
    pub bsize: i64,
    /// `f_blocks`.
    pub blocks: u64,
    /// `f_bfree`.
    pub bfree: u64,
    /// `f_bavail`.
    pub bavail: u64,
    /// `f_files`.
    pub files: u64,
    /// `f_ffree`.
    pub ffree: u64,
    /// `f_namelen`.
    pub namelen: i64,
    /// `f_frsize`.
    pub frsize: i64,
    /// `f_flags` (`ST_*` mount flags).
    pub flags: i64,
}

/// Byte offsets of the `struct statfs` fields.
pub mod statfs_offsets {
    /// `f_type`.
    pub const TYPE: usize = 0;
    /// `f_bsize`.
    pub const BSIZE: usize = 8;
    /// `f_blocks`.
    pub const BLOCKS: usize = 16;
    /// `f_bfree`.
    pub const BFREE: usize = 24;
    /// `f_bavail`.
    pub const BAVAIL: usize = 32;
    /// `f_files`.
    pub const FILES: usize = 40;
    /// `f_ffree`.
    pub const FFREE: usize = 48;
    /// `f_fsid` (two `int`s, left zero).
    pub const FSID: usize = 56;
    /// `f_namelen`.
    pub const NAMELEN: usize = 64;
    /// `f_frsize`.
    pub const FRSIZE: usize = 72;
    /// `f_flags`.
    pub const FLAGS: usize = 80;
}

impl StatFs {
    /// The 120 bytes the guest reads.
    pub fn to_bytes(&self) -> [u8; STATFS_SIZE] {
        use statfs_offsets::*;
        let mut b = [0u8; STATFS_SIZE];
        put(&mut b, TYPE, &self.fs_type.to_le_bytes());
        put(&mut b, BSIZE, &self.bsize.to_le_bytes());
        put(&mut b, BLOCKS, &self.blocks.to_le_bytes());
        put(&mut b, BFREE, &self.bfree.to_le_bytes());
        put(&mut b, BAVAIL, &self.bavail.to_le_bytes());
        put(&mut b, FILES, &self.files.to_le_bytes());
        put(&mut b, FFREE, &self.ffree.to_le_bytes());
        put(&mut b, NAMELEN, &self.namelen.to_le_bytes());
        put(&mut b, FRSIZE, &self.frsize.to_le_bytes());
        put(&mut b, FLAGS, &self.flags.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn stat_layout_matches_libc() {
        use stat_offsets::*;
        assert_eq!(size_of::<libc::stat>(), STAT_SIZE);
        assert_eq!(offset_of!(libc::stat, st_dev), DEV);
        assert_eq!(offset_of!(libc::stat, st_ino), INO);
        assert_eq!(offset_of!(libc::stat, st_nlink), NLINK);
        assert_eq!(offset_of!(libc::stat, st_mode), MODE);
        assert_eq!(offset_of!(libc::stat, st_uid), UID);
        assert_eq!(offset_of!(libc::stat, st_gid), GID);
        assert_eq!(offset_of!(libc::stat, st_rdev), RDEV);
        assert_eq!(offset_of!(libc::stat, st_size), SIZE);
        assert_eq!(offset_of!(libc::stat, st_blksize), BLKSIZE);
        assert_eq!(offset_of!(libc::stat, st_blocks), BLOCKS);
        assert_eq!(offset_of!(libc::stat, st_atime), ATIME);
        assert_eq!(offset_of!(libc::stat, st_atime_nsec), ATIME + 8);
        assert_eq!(offset_of!(libc::stat, st_mtime), MTIME);
        assert_eq!(offset_of!(libc::stat, st_mtime_nsec), MTIME + 8);
        assert_eq!(offset_of!(libc::stat, st_ctime), CTIME);
        assert_eq!(offset_of!(libc::stat, st_ctime_nsec), CTIME + 8);
    }

    #[test]
    fn statfs_layout_matches_libc() {
        use statfs_offsets::*;
        assert_eq!(size_of::<libc::statfs>(), STATFS_SIZE);
        assert_eq!(offset_of!(libc::statfs, f_type), TYPE);
        assert_eq!(offset_of!(libc::statfs, f_bsize), BSIZE);
        assert_eq!(offset_of!(libc::statfs, f_blocks), BLOCKS);
        assert_eq!(offset_of!(libc::statfs, f_bfree), BFREE);
        assert_eq!(offset_of!(libc::statfs, f_bavail), BAVAIL);
        assert_eq!(offset_of!(libc::statfs, f_files), FILES);
        assert_eq!(offset_of!(libc::statfs, f_ffree), FFREE);
        assert_eq!(offset_of!(libc::statfs, f_fsid), FSID);
        assert_eq!(offset_of!(libc::statfs, f_namelen), NAMELEN);
        assert_eq!(offset_of!(libc::statfs, f_frsize), FRSIZE);
        // libc keeps `f_flags` in its private spare words: the first after `f_frsize`.
        assert_eq!(offset_of!(libc::statfs, f_frsize) + 8, FLAGS);
    }

    #[test]
    fn stat_bytes_decode_as_libc_stat() {
        let s = Stat {
            dev: 1,
            ino: 2,
            nlink: 3,
            mode: 0o100644,
            uid: 5,
            gid: 6,
            rdev: 7,
            size: 8,
            blksize: 4096,
            blocks: 10,
            atime: Timespec { sec: 11, nsec: 12 },
            mtime: Timespec { sec: 13, nsec: 14 },
            ctime: Timespec { sec: 15, nsec: 16 },
        };
        let bytes = s.to_bytes();
        // SAFETY: `libc::stat` is plain old data of exactly STAT_SIZE bytes
        // (checked above), so any 144 bytes are a valid value of it.
        let st: libc::stat = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        assert_eq!((st.st_dev, st.st_ino, st.st_nlink, st.st_mode), (1, 2, 3, 0o100644));
        assert_eq!((st.st_uid, st.st_gid, st.st_rdev, st.st_size), (5, 6, 7, 8));
        assert_eq!((st.st_blksize, st.st_blocks), (4096, 10));
        assert_eq!((st.st_atime, st.st_atime_nsec, st.st_mtime, st.st_mtime_nsec), (11, 12, 13, 14));
        assert_eq!((st.st_ctime, st.st_ctime_nsec), (15, 16));
    }
}
