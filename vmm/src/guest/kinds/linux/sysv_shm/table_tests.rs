//! Tests of the segment table: Linux's rules one by one (errno order of
//! `shmget`, ids, permissions, `IPC_RMID` while attached), then a
//! property test of random gets, attaches, detaches and removals against
//! a small model of which segments exist, their keys, attach counts and
//! when each backing is handed back (exactly once, at the right moment).

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::table::*;

const ROOT: Cred = Cred { uid: 0, gid: 0, caps: u64::MAX, pid: 100 };
const USER: Cred = Cred { uid: 1000, gid: 1000, caps: 0, pid: 100 };

fn req(key: i32, size: u64, flags: u64) -> GetRequest {
    GetRequest { key, size, flags }
}

/// A table whose backings are serial numbers.
struct T {
    t: ShmTable<u32>,
    next: u32,
}

impl T {
    fn new() -> Self {
        T { t: ShmTable::default(), next: 0 }
    }

    fn get(&mut self, r: GetRequest, cred: &Cred) -> Result<ShmId, i32> {
        let next = &mut self.next;
        self.t.get(r, cred, 7, |name, _| {
            assert!(name.starts_with("SYSV") && name.len() == 12, "{name}");
            *next += 1;
            Ok(*next)
        })
    }
}

#[test]
fn shmget_checks_in_linuxs_order() {
    let mut t = T::new();
    assert_eq!(t.get(req(5, 4096, 0o600), &ROOT), Err(libc::ENOENT), "no key, no IPC_CREAT");
    assert_eq!(t.get(req(0, 0, IPC_CREAT), &ROOT), Err(libc::EINVAL), "below SHMMIN");
    t.t.set_limits(Limits { shmmax: 8192, shmall: 3, shmmni: 2 });
    assert_eq!(t.get(req(0, 8193, 0), &ROOT), Err(libc::EINVAL), "above shmmax");
    assert_eq!(t.get(req(0, 8192, 0), &ROOT).map(|i| i.0), Ok(0), "IPC_PRIVATE needs no IPC_CREAT; first id 0");
    assert_eq!(t.get(req(0, 8192, 0), &ROOT), Err(libc::ENOSPC), "over shmall (pages)");
    assert_eq!(t.get(req(5, 100, IPC_CREAT | 0o640), &ROOT).map(|i| i.0), Ok(1));
    assert_eq!(t.get(req(6, 1, IPC_CREAT), &ROOT), Err(libc::ENOSPC), "over shmmni");
    assert_eq!(t.get(req(5, 0, 0), &ROOT).map(|i| i.0), Ok(1), "an existing key, any smaller size");
    assert_eq!(t.get(req(5, 101, 0), &ROOT), Err(libc::EINVAL), "bigger than the segment");
    assert_eq!(t.get(req(5, 100, IPC_CREAT | IPC_EXCL), &ROOT), Err(libc::EEXIST));
    assert_eq!(t.get(req(5, 100, 0o600), &USER), Err(libc::EACCES), "not the owner, asks more than 0o004");
    assert_eq!(t.get(req(5, 100, 0), &USER).map(|i| i.0), Ok(1), "asking nothing is allowed");
    let st = t.t.stat(ShmId(1), &ROOT).unwrap();
    assert_eq!((st.key, st.mode, st.segsz, st.nattch, st.ctime, st.cpid), (5, 0o640, 100, 0, 7, 100));
    assert_eq!(t.t.usage(), Usage { used_ids: 2, total_pages: 3 });
}

#[test]
fn ids_carry_a_sequence_that_moves_when_indexes_wrap() {
    let mut t = T::new();
    let a = t.get(req(0, 1, 0), &ROOT).unwrap();
    let b = t.get(req(0, 1, 0), &ROOT).unwrap();
    assert_eq!((a.0, b.0), (0, 1));
    assert_eq!(t.t.remove(a, &ROOT), Ok(Some(1)));
    assert_eq!(t.t.segment(a).err(), Some(libc::EINVAL));
    // idr_alloc_cyclic goes on from the last index.
    assert_eq!(t.get(req(0, 1, 0), &ROOT).map(|i| i.0), Ok(2));
    assert_eq!(t.t.max_index(), 2);
    // A stale sequence number does not name the segment at the index.
    assert_eq!(t.t.segment(ShmId(2 | (1 << 15))).err(), Some(libc::EINVAL));
    assert_eq!(t.t.segment(ShmId(-1)).err(), Some(libc::EINVAL));
}

#[test]
fn rmid_while_attached_destroys_at_the_last_detach() {
    let mut t = T::new();
    let id = t.get(req(9, 4096, IPC_CREAT | 0o600), &ROOT).unwrap();
    t.t.vma_opened(id, 100, 11);
    t.t.vma_opened(id, 100, 12);
    assert_eq!(t.t.remove(id, &USER), Err(libc::EPERM), "not the owner");
    assert_eq!(t.t.remove(id, &ROOT), Ok(None), "attached: only marked");
    let st = t.t.stat(id, &ROOT).unwrap();
    assert_eq!((st.key, st.mode & SHM_DEST, st.nattch, st.atime), (IPC_PRIVATE, SHM_DEST, 2, 12));
    assert_eq!(t.get(req(9, 1, 0), &ROOT), Err(libc::ENOENT), "the key is gone");
    assert!(t.t.check_attach(id, &ROOT, 0o600).is_ok(), "a removed segment can still be attached");
    assert_eq!(t.t.vma_closed(id, 100, 13), None);
    assert_eq!(t.t.stat(id, &ROOT).map(|s| (s.nattch, s.dtime)), Ok((1, 13)));
    assert_eq!(t.t.vma_closed(id, 100, 14), Some(1), "the last detach hands the backing back");
    assert_eq!(t.t.segment(id).err(), Some(libc::EINVAL));
    assert_eq!(t.t.usage(), Usage::default());
    assert_eq!(t.t.vma_closed(id, 100, 15), None, "a hook after the end changes nothing");
}

#[test]
fn set_lock_and_permissions() {
    let mut t = T::new();
    let id = t.get(req(0, 10, 0o600), &USER).unwrap();
    assert_eq!(t.t.check_attach(id, &Cred { uid: 5, ..USER }, 0o444).err(), Some(libc::EACCES));
    assert_eq!(t.t.stat(id, &Cred { uid: 5, gid: 5, ..USER }).err(), Some(libc::EACCES));
    assert!(t.t.stat(id, &Cred { uid: 5, gid: 5, caps: 1 << CAP_IPC_OWNER, pid: 1 }).is_ok());
    assert_eq!(t.t.set(id, &Cred { uid: 5, ..USER }, 1, 1, 0o644, 20), Err(libc::EPERM));
    assert_eq!(t.t.set(id, &USER, u32::MAX, 1, 0o644, 20), Err(libc::EINVAL));
    t.t.set(id, &USER, 42, 43, 0o7644, 20).unwrap();
    let st = t.t.stat(id, &ROOT).unwrap();
    assert_eq!((st.uid, st.gid, st.cuid, st.mode, st.ctime), (42, 43, 1000, 0o644, 20), "only the permission bits");
    assert!(t.t.stat(id, &Cred { uid: 5, gid: 5, ..USER }).is_ok(), "0o644 lets others read");
    assert_eq!(t.t.lock(id, &Cred { uid: 5, ..USER }, true, 1 << 20), Err(libc::EPERM));
    assert_eq!(t.t.lock(id, &USER, true, 0), Err(libc::EPERM), "RLIMIT_MEMLOCK 0");
    t.t.lock(id, &USER, true, 1 << 20).unwrap();
    assert_eq!(t.t.stat(id, &ROOT).unwrap().mode, 0o644 | SHM_LOCKED);
    t.t.lock(id, &USER, false, 0).unwrap();
    assert_eq!(t.t.stat(id, &ROOT).unwrap().mode, 0o644);
    let huge = t.get(req(0, 10, SHM_HUGETLB | 0o600), &ROOT).unwrap();
    t.t.lock(huge, &ROOT, true, 0).unwrap();
    assert_eq!(t.t.stat(huge, &ROOT).unwrap().mode & SHM_LOCKED, 0, "hugetlb segments are not marked");
}

#[test]
fn a_failed_backing_adds_nothing() {
    let mut t: ShmTable<u32> = ShmTable::default();
    assert_eq!(t.get(req(0, 10, SHM_HUGETLB), &ROOT, 0, |_, _| Err(libc::ENOMEM)), Err(libc::ENOMEM));
    assert_eq!(t.usage(), Usage::default());
    assert_eq!(t.get(req(0, 10, 0), &ROOT, 0, |_, _| Ok(1)).map(|i| i.0), Ok(0), "no index was used up");
}

#[derive(Debug, Clone)]
enum Op {
    Get { key: i32, size: u64, creat: bool, excl: bool },
    Open(usize),
    Close(usize),
    Rmid(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0i32..3, 0u64..3 * 4096, any::<bool>(), any::<bool>()).prop_map(|(key, size, creat, excl)| Op::Get {
            key,
            size,
            creat,
            excl
        }),
        (0usize..6).prop_map(Op::Open),
        (0usize..6).prop_map(Op::Close),
        (0usize..6).prop_map(Op::Rmid),
    ]
}

/// The model's segment.
#[derive(Debug, Clone)]
struct M {
    id: ShmId,
    key: i32,
    size: u64,
    nattch: u64,
    dest: bool,
    backing: u32,
}

proptest! {
    #[test]
    fn the_table_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut t = T::new();
        let mut model: Vec<M> = Vec::new();
        for o in ops {
            match o {
                Op::Get { key, size, creat, excl } => {
                    let flags = if creat { IPC_CREAT } else { 0 } | if excl { IPC_EXCL } else { 0 } | 0o600;
                    let found = (key != 0).then(|| model.iter().find(|m| m.key == key && !m.dest)).flatten();
                    let want = match found {
                        None if key != 0 && !creat => Err(libc::ENOENT),
                        Some(_) if creat && excl => Err(libc::EEXIST),
                        Some(m) if m.size < size => Err(libc::EINVAL),
                        Some(m) => Ok(m.id),
                        None if size == 0 => Err(libc::EINVAL),
                        None => Err(0),
                    };
                    let got = t.get(req(key, size, flags), &ROOT);
                    match want {
                        Err(0) => {
                            let id = got.unwrap();
                            prop_assert!(model.iter().all(|m| m.id != id), "a fresh id");
                            model.push(M { id, key, size, nattch: 0, dest: false, backing: t.next });
                        }
                        w => prop_assert_eq!(got, w),
                    }
                }
                Op::Open(i) => {
                    if let Some(m) = model.get_mut(i) {
                        t.t.vma_opened(m.id, 1, 0);
                        m.nattch += 1;
                    }
                }
                Op::Close(i) => {
                    if let Some(m) = model.get_mut(i).filter(|m| m.nattch > 0) {
                        m.nattch -= 1;
                        let gone = t.t.vma_closed(m.id, 1, 0);
                        if m.nattch == 0 && m.dest {
                            prop_assert_eq!(gone, Some(m.backing));
                            model.remove(i);
                        } else {
                            prop_assert_eq!(gone, None);
                        }
                    }
                }
                Op::Rmid(i) => {
                    if let Some(m) = model.get_mut(i) {
                        let gone = t.t.remove(m.id, &ROOT).unwrap();
                        if m.nattch == 0 {
                            prop_assert_eq!(gone, Some(m.backing));
                            model.remove(i);
                        } else {
                            prop_assert_eq!(gone, None);
                            m.dest = true;
                            m.key = IPC_PRIVATE;
                        }
                    }
                }
            }
            // Every model segment is in the table as the model says, and
            // nothing else is.
            prop_assert_eq!(t.t.segments().count(), model.len());
            for m in &model {
                let st = t.t.stat(m.id, &ROOT).unwrap();
                prop_assert_eq!((st.key, st.segsz, st.nattch, st.mode & SHM_DEST != 0), (m.key, m.size, m.nattch, m.dest));
                prop_assert_eq!(t.t.segment(m.id).map(|s| s.backing), Ok(m.backing));
            }
            let pages: u64 = model.iter().map(|m| m.size.div_ceil(4096)).sum();
            prop_assert_eq!(t.t.usage(), Usage { used_ids: model.len() as u32, total_pages: pages });
        }
    }
}
