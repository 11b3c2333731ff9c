//! The bytes the program sees: `struct shmid64_ds` (`IPC_STAT`,
//! `SHM_STAT`, read back by `IPC_SET`), `struct shminfo64` (`IPC_INFO`),
//! `struct shm_info` (`SHM_INFO`) in their x86-64 layouts, and the text
//! of `/proc/sysvipc/shm` (`sysvipc_shm_proc_show`).

use std::fmt::Write as _;

use super::table::{Limits, Segment, Stat, Usage, SHMMIN};

/// `sizeof(struct shmid64_ds)` on x86-64.
pub const SHMID_DS_SIZE: usize = 112;
/// `sizeof(struct shminfo64)`.
pub const SHMINFO_SIZE: usize = 72;
/// `sizeof(struct shm_info)`.
pub const SHM_INFO_SIZE: usize = 48;

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(dst) = b.get_mut(at..at + v.len()) {
        dst.copy_from_slice(v);
    }
}

/// `struct shmid64_ds` for `st`.
pub fn shmid_ds(st: &Stat) -> [u8; SHMID_DS_SIZE] {
    let mut b = [0u8; SHMID_DS_SIZE];
    put(&mut b, 0, &st.key.to_le_bytes());
    put(&mut b, 4, &st.uid.to_le_bytes());
    put(&mut b, 8, &st.gid.to_le_bytes());
    put(&mut b, 12, &st.cuid.to_le_bytes());
    put(&mut b, 16, &st.cgid.to_le_bytes());
    put(&mut b, 20, &st.mode.to_le_bytes());
    put(&mut b, 24, &st.seq.to_le_bytes());
    put(&mut b, 48, &st.segsz.to_le_bytes());
    put(&mut b, 56, &st.atime.to_le_bytes());
    put(&mut b, 64, &st.dtime.to_le_bytes());
    put(&mut b, 72, &st.ctime.to_le_bytes());
    put(&mut b, 80, &st.cpid.to_le_bytes());
    put(&mut b, 84, &st.lpid.to_le_bytes());
    put(&mut b, 88, &st.nattch.to_le_bytes());
    b
}

/// What `IPC_SET` takes from a `struct shmid64_ds`: `(uid, gid, mode)`.
pub fn set_fields(b: &[u8; SHMID_DS_SIZE]) -> (u32, u32, u32) {
    let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    (word(4), word(8), word(20))
}

/// `struct shminfo64` for `IPC_INFO`.
pub fn shminfo(l: &Limits) -> [u8; SHMINFO_SIZE] {
    let mut b = [0u8; SHMINFO_SIZE];
    for (i, v) in [l.shmmax, SHMMIN, l.shmmni, l.shmmni, l.shmall].into_iter().enumerate() {
        put(&mut b, i * 8, &v.to_le_bytes());
    }
    b
}

/// `struct shm_info` for `SHM_INFO`: `rss` resident pages (4 KiB), no
/// swap.
pub fn shm_info(u: &Usage, rss: u64) -> [u8; SHM_INFO_SIZE] {
    let mut b = [0u8; SHM_INFO_SIZE];
    put(&mut b, 0, &(u.used_ids as i32).to_le_bytes());
    put(&mut b, 8, &u.total_pages.to_le_bytes());
    put(&mut b, 16, &rss.to_le_bytes());
    b
}

/// `/proc/sysvipc/shm`: the header, then one line per segment, with
/// `rss(segment)` its resident bytes.
pub fn proc_sysvipc_shm<'a, B: 'a>(segments: impl Iterator<Item = &'a Segment<B>>, rss: impl Fn(&B) -> u64) -> Vec<u8> {
    let mut s = String::from(
        "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n",
    );
    for seg in segments {
        let st = &seg.stat;
        let _ = writeln!(
            s,
            "{:>10} {:>10}  {:>4o} {:>21} {:>5} {:>5}  {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10} {:>21} {:>21}",
            st.key,
            seg.id.0,
            st.mode,
            st.segsz,
            st.cpid,
            st.lpid,
            st.nattch,
            st.uid,
            st.gid,
            st.cuid,
            st.cgid,
            st.atime,
            st.dtime,
            st.ctime,
            rss(&seg.backing),
            0
        );
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shmid_ds_puts_each_field_where_the_x86_64_struct_has_it() {
        let st = Stat {
            key: 0x1234,
            uid: 1,
            gid: 2,
            cuid: 3,
            cgid: 4,
            mode: 0o1600,
            seq: 7,
            segsz: 0x10_0000,
            atime: 11,
            dtime: 12,
            ctime: 13,
            cpid: 100,
            lpid: 101,
            nattch: 2,
        };
        let b = shmid_ds(&st);
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default());
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
        assert_eq!([u32_at(0), u32_at(4), u32_at(8), u32_at(12), u32_at(16), u32_at(20)], [0x1234, 1, 2, 3, 4, 0o1600]);
        assert_eq!(u16::from_le_bytes([b[24], b[25]]), 7);
        assert_eq!([u64_at(48), u64_at(56), u64_at(64), u64_at(72)], [0x10_0000, 11, 12, 13]);
        assert_eq!([u32_at(80), u32_at(84)], [100, 101]);
        assert_eq!(u64_at(88), 2);
        assert_eq!(set_fields(&b), (1, 2, 0o1600));
        // The layout is libc's.
        assert_eq!(std::mem::size_of::<libc::shmid_ds>(), SHMID_DS_SIZE);
        assert_eq!(std::mem::offset_of!(libc::shmid_ds, shm_nattch), 88);
        assert_eq!(std::mem::offset_of!(libc::shmid_ds, shm_segsz), 48);
    }

    #[test]
    fn info_structs_have_libcs_sizes() {
        let l = Limits { shmmax: 5, shmall: 6, shmmni: 7 };
        let b = shminfo(&l);
        let at = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        assert_eq!([at(0), at(1), at(2), at(3), at(4)], [5, 1, 7, 7, 6]);
        let i = shm_info(&Usage { used_ids: 3, total_pages: 9 }, 4);
        assert_eq!(i[0], 3);
        assert_eq!(u64::from_le_bytes(i[8..16].try_into().unwrap_or_default()), 9);
        assert_eq!(u64::from_le_bytes(i[16..24].try_into().unwrap_or_default()), 4);
    }
}
