//! Property test: random sequences of create / write / append /
//! truncate / punch-hole / read / unlink on `/tmp` files against a
//! `HashMap<String, Vec<u8>>` model. After every step every file is read
//! back whole and `fstat`ed, and `/tmp` is listed with `getdents64`;
//! at the end, removing every file must give the whole budget back.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;

use super::errno::*;
use super::*;

const NAMES: [&str; 3] = ["a", "b", "c"];
const BUDGET: u64 = 1 << 20;
const INODES: u64 = 64;

#[derive(Debug, Clone)]
enum Op {
    Create { name: usize, excl: bool, trunc: bool },
    Write { name: usize, offset: u64, data: Vec<u8> },
    Append { name: usize, data: Vec<u8> },
    Truncate { name: usize, len: u64 },
    Punch { name: usize, offset: u64, len: u64 },
    Read { name: usize, offset: u64, len: usize },
    Unlink { name: usize },
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![0..64u64, 4090..4110u64, 0..4 * 4096u64]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..40), proptest::collection::vec(any::<u8>(), 4000..4200)]
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    prop_oneof![
        (name.clone(), any::<bool>(), any::<bool>()).prop_map(|(name, excl, trunc)| Op::Create { name, excl, trunc }),
        (name.clone(), offset(), data()).prop_map(|(name, offset, data)| Op::Write { name, offset, data }),
        (name.clone(), data()).prop_map(|(name, data)| Op::Append { name, data }),
        (name.clone(), offset()).prop_map(|(name, len)| Op::Truncate { name, len }),
        (name.clone(), offset(), 1..9000u64).prop_map(|(name, offset, len)| Op::Punch { name, offset, len }),
        (name.clone(), offset(), 0..9000usize).prop_map(|(name, offset, len)| Op::Read { name, offset, len }),
        name.prop_map(|name| Op::Unlink { name }),
    ]
}

fn path(name: usize) -> Vec<u8> {
    format!("/tmp/{}", NAMES[name]).into_bytes()
}

fn open(v: &mut Vfs, name: usize, flags: i32) -> Result<Fd, Errno> {
    v.openat(Fd::CWD, &path(name), flags, 0o644)
}

/// Runs `op` on the file system and the model; the results must agree.
fn step(v: &mut Vfs, model: &mut HashMap<String, Vec<u8>>, op: &Op) {
    match op {
        Op::Create { name, excl, trunc } => {
            let mut flags = libc::O_RDWR | libc::O_CREAT;
            if *excl {
                flags |= libc::O_EXCL;
            }
            if *trunc {
                flags |= libc::O_TRUNC;
            }
            let key = NAMES[*name].to_string();
            let got = open(v, *name, flags);
            if *excl && model.contains_key(&key) {
                assert_eq!(got, Err(EEXIST));
                return;
            }
            v.close(got.unwrap()).unwrap();
            let file = model.entry(key).or_default();
            if *trunc {
                file.clear();
            }
        }
        Op::Write { name, offset, data } => {
            let Some(file) = model.get_mut(NAMES[*name]) else {
                assert_eq!(open(v, *name, libc::O_RDWR), Err(ENOENT));
                return;
            };
            let fd = open(v, *name, libc::O_RDWR).unwrap();
            assert_eq!(v.pwrite64(fd, data, *offset as i64), Ok(data.len()));
            if !data.is_empty() {
                let end = *offset as usize + data.len();
                if file.len() < end {
                    file.resize(end, 0);
                }
                file[*offset as usize..end].copy_from_slice(data);
            }
            v.close(fd).unwrap();
        }
        Op::Append { name, data } => {
            let Some(file) = model.get_mut(NAMES[*name]) else {
                assert_eq!(open(v, *name, libc::O_WRONLY | libc::O_APPEND), Err(ENOENT));
                return;
            };
            let fd = open(v, *name, libc::O_WRONLY | libc::O_APPEND).unwrap();
            assert_eq!(v.write(fd, data), Ok(data.len()));
            file.extend_from_slice(data);
            assert_eq!(v.lseek(fd, 0, libc::SEEK_CUR), Ok(file.len() as u64));
            v.close(fd).unwrap();
        }
        Op::Truncate { name, len } => {
            let Some(file) = model.get_mut(NAMES[*name]) else { return };
            let fd = open(v, *name, libc::O_WRONLY).unwrap();
            v.ftruncate(fd, *len as i64).unwrap();
            file.resize(*len as usize, 0);
            v.close(fd).unwrap();
        }
        Op::Punch { name, offset, len } => {
            let Some(file) = model.get_mut(NAMES[*name]) else { return };
            let fd = open(v, *name, libc::O_RDWR).unwrap();
            v.fallocate(fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, *offset as i64, *len as i64)
                .unwrap();
            let start = (*offset as usize).min(file.len());
            let end = (*offset + *len).min(file.len() as u64) as usize;
            file[start..end].fill(0);
            v.close(fd).unwrap();
        }
        Op::Read { name, offset, len } => {
            let Some(file) = model.get(NAMES[*name]) else {
                assert_eq!(open(v, *name, libc::O_RDONLY), Err(ENOENT));
                return;
            };
            let fd = open(v, *name, libc::O_RDONLY).unwrap();
            v.lseek(fd, *offset as i64, libc::SEEK_SET).unwrap();
            let start = (*offset as usize).min(file.len());
            let end = (start + len).min(file.len());
            assert_eq!(v.read(fd, *len).unwrap(), &file[start..end]);
            v.close(fd).unwrap();
        }
        Op::Unlink { name } => {
            let got = v.unlinkat(Fd::CWD, &path(*name), 0);
            match model.remove(NAMES[*name]) {
                Some(_) => assert_eq!(got, Ok(())),
                None => assert_eq!(got, Err(ENOENT)),
            }
        }
    }
}

/// Every file reads back as the model holds it; `/tmp` lists the model's names.
fn check(v: &mut Vfs, model: &HashMap<String, Vec<u8>>) {
    for (name, key) in NAMES.iter().enumerate() {
        match model.get(*key) {
            None => assert_eq!(v.faccessat(Fd::CWD, &path(name), 0, 0), Err(ENOENT)),
            Some(file) => {
                let fd = open(v, name, libc::O_RDONLY).unwrap();
                let st = v.fstat(fd).unwrap();
                let size = u64::from_le_bytes(st[stat_offsets::SIZE..][..8].try_into().unwrap());
                assert_eq!(size, file.len() as u64);
                assert_eq!(&v.pread64(fd, file.len() + 10, 0).unwrap(), file);
                v.close(fd).unwrap();
            }
        }
    }
    let dir = v.openat(Fd::CWD, b"/tmp", libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
    let mut listed = BTreeSet::new();
    loop {
        let buf = v.getdents64(dir, 64).unwrap();
        if buf.is_empty() {
            break;
        }
        for r in parse_records(&buf).unwrap() {
            if r.name != b"." && r.name != b".." {
                assert_eq!(r.d_type, libc::DT_REG);
                assert!(listed.insert(String::from_utf8(r.name).unwrap()), "listed twice");
            }
        }
    }
    v.close(dir).unwrap();
    assert_eq!(listed, model.keys().cloned().collect::<BTreeSet<_>>());
}

fn free(v: &Vfs) -> (u64, u64) {
    let st = v.statfs(b"/tmp").unwrap();
    let at = |o: usize| u64::from_le_bytes(st[o..o + 8].try_into().unwrap());
    (at(statfs_offsets::BFREE), at(statfs_offsets::FFREE))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tmp_files_match_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut v = Vfs::new(&VfsConfig { tmpfs_bytes: BUDGET, tmpfs_inodes: INODES, ..VfsConfig::default() });
        let mut model = HashMap::new();
        for op in &ops {
            step(&mut v, &mut model, op);
            check(&mut v, &model);
        }
        for name in 0..NAMES.len() {
            let _ = v.unlinkat(Fd::CWD, &path(name), 0);
        }
        prop_assert_eq!(free(&v), (BUDGET / 4096, INODES), "every page and inode given back");
        let open: Vec<_> = v.open_fds().into_iter().map(|(fd, _)| fd).collect();
        prop_assert_eq!(open, vec![Fd(0), Fd(1), Fd(2)]);
    }
}
