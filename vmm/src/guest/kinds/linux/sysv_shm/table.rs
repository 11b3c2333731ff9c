//! The segment table (Linux's `shm_ids` of one IPC namespace): ids, keys,
//! permissions, limits, attach counts and the destroy-on-last-detach
//! rule, as `ipc/shm.c` and `ipc/util.c` of Linux 6.12 keep them.
//!
//! The table knows nothing of memory: a segment's pages are its backing
//! (`B`), made by the caller when the table asks ([`ShmTable::get`]) and
//! handed back when the segment is destroyed (the caller drops it outside
//! its locks). Attach counts move when the caller says a VMA of the
//! segment came or went ([`ShmTable::vma_opened`],
//! [`ShmTable::vma_closed`]), as `shm_open` and `shm_close` do.

use std::collections::BTreeMap;

/// `IPC_PRIVATE`.
pub const IPC_PRIVATE: i32 = 0;
/// `IPC_CREAT`.
pub const IPC_CREAT: u64 = 0o1000;
/// `IPC_EXCL`.
pub const IPC_EXCL: u64 = 0o2000;
/// `SHM_HUGETLB`.
pub const SHM_HUGETLB: u64 = 0o4000;
/// `SHM_NORESERVE`.
pub const SHM_NORESERVE: u64 = 0o10000;
/// `SHM_DEST` in the mode: removed, destroyed at the last detach.
pub const SHM_DEST: u32 = 0o1000;
/// `SHM_LOCKED` in the mode.
pub const SHM_LOCKED: u32 = 0o2000;
/// `SHMMIN`: the smallest segment.
pub const SHMMIN: u64 = 1;
/// `SHMMAX` and `SHMALL`'s default (`ULONG_MAX - 2^24`).
pub const SHM_DEFAULT_MAX: u64 = u64::MAX - (1 << 24);
/// `SHMMNI`'s default: most segments.
pub const SHMMNI: u64 = 4096;
/// `IPCMNI`: most ids (the index part of an id).
pub const IPCMNI: u32 = 1 << 15;
/// `CAP_IPC_OWNER`: bypasses the permission bits.
pub const CAP_IPC_OWNER: u32 = 15;
/// `CAP_SYS_ADMIN`: may change or remove anyone's segment.
pub const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_IPC_LOCK`: may lock any segment.
pub const CAP_IPC_LOCK: u32 = 14;

/// Who makes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cred {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Effective capabilities (bit `n` is capability `n`).
    pub caps: u64,
    /// The process id (`shm_cprid`, `shm_lprid`).
    pub pid: i32,
}

impl Cred {
    fn has(&self, cap: u32) -> bool {
        self.caps & (1 << cap) != 0
    }
}

/// The sysctls (`kernel.shmmax`, `kernel.shmall`, `kernel.shmmni`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest segment in bytes.
    pub shmmax: u64,
    /// All segments' pages together.
    pub shmall: u64,
    /// Most segments.
    pub shmmni: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { shmmax: SHM_DEFAULT_MAX, shmall: SHM_DEFAULT_MAX, shmmni: SHMMNI }
    }
}

/// A segment id as `shmget` returns it: `seq << 15 | index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShmId(pub i32);

impl ShmId {
    fn new(seq: u16, idx: u32) -> Self {
        ShmId(((u32::from(seq) << 15) | idx) as i32)
    }

    /// The table index.
    pub fn index(self) -> u32 {
        (self.0 as u32) & (IPCMNI - 1)
    }

    fn seq(self) -> u16 {
        ((self.0 as u32) >> 15) as u16
    }
}

/// `struct ipc64_perm` and `struct shmid64_ds` as the table holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// The key (`IPC_PRIVATE` once removed).
    pub key: i32,
    /// Owner.
    pub uid: u32,
    /// Owner's group.
    pub gid: u32,
    /// Creator.
    pub cuid: u32,
    /// Creator's group.
    pub cgid: u32,
    /// Permission bits, `SHM_DEST`, `SHM_LOCKED`.
    pub mode: u32,
    /// The id's sequence number.
    pub seq: u16,
    /// Size asked for, in bytes.
    pub segsz: u64,
    /// Last attach (seconds).
    pub atime: i64,
    /// Last detach.
    pub dtime: i64,
    /// Last change.
    pub ctime: i64,
    /// Creator's pid.
    pub cpid: i32,
    /// Last attach or detach's pid.
    pub lpid: i32,
    /// VMAs mapping it.
    pub nattch: u64,
}

/// A segment: what `IPC_STAT` shows and its backing.
#[derive(Debug)]
pub struct Segment<B> {
    /// The id.
    pub id: ShmId,
    /// The key it was made with (its file's name, `SYSV%08x`).
    pub file_key: i32,
    /// Its state.
    pub stat: Stat,
    /// Made with `SHM_HUGETLB`.
    pub huge: bool,
    /// Its pages.
    pub backing: B,
}

/// `shmget`'s arguments.
#[derive(Debug, Clone, Copy)]
pub struct GetRequest {
    /// The key.
    pub key: i32,
    /// Bytes asked for.
    pub size: u64,
    /// `shmflg`.
    pub flags: u64,
}

/// What the table's `SHM_INFO` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Segments.
    pub used_ids: u32,
    /// Pages asked for by all segments (`shm_tot`).
    pub total_pages: u64,
}

/// The table.
#[derive(Debug)]
pub struct ShmTable<B> {
    segments: BTreeMap<u32, Segment<B>>,
    seq: u16,
    last_idx: Option<u32>,
    limits: Limits,
    total_pages: u64,
}

impl<B> Default for ShmTable<B> {
    fn default() -> Self {
        ShmTable { segments: BTreeMap::new(), seq: 0, last_idx: None, limits: Limits::default(), total_pages: 0 }
    }
}

/// `ipcperms`: may `cred` have `flag`'s permission bits (`S_IRUGO`,
/// `S_IWUGO`, `S_IXUGO` style) on `st`?
fn permitted(st: &Stat, cred: &Cred, flag: u32) -> bool {
    let requested = (flag >> 6) | (flag >> 3) | flag;
    let mut granted = st.mode;
    if cred.uid == st.cuid || cred.uid == st.uid {
        granted >>= 6;
    } else if cred.gid == st.cgid || cred.gid == st.gid {
        granted >>= 3;
    }
    requested & !granted & 0o7 == 0 || cred.has(CAP_IPC_OWNER)
}

impl<B> ShmTable<B> {
    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Sets the limits (the sysctls' writes).
    pub fn set_limits(&mut self, l: Limits) {
        self.limits = l;
    }

    /// `shmget`: the id of the segment with `req.key`, or a new one whose
    /// backing `make(name, size)` gives (`SYSV%08x` and the size asked).
    /// Errors as Linux's `ipcget`/`newseg`, in its order.
    pub fn get(
        &mut self,
        req: GetRequest,
        cred: &Cred,
        now: i64,
        make: impl FnOnce(&str, u64) -> Result<B, i32>,
    ) -> Result<ShmId, i32> {
        if req.key != IPC_PRIVATE {
            let found = self.segments.values().find(|s| s.stat.key == req.key && s.stat.mode & SHM_DEST == 0);
            match found {
                None if req.flags & IPC_CREAT == 0 => return Err(libc::ENOENT),
                None => {}
                Some(_) if req.flags & IPC_CREAT != 0 && req.flags & IPC_EXCL != 0 => return Err(libc::EEXIST),
                Some(s) => {
                    if s.stat.segsz < req.size {
                        return Err(libc::EINVAL);
                    }
                    if !permitted(&s.stat, cred, req.flags as u32 & 0o777) {
                        return Err(libc::EACCES);
                    }
                    return Ok(s.id);
                }
            }
        }
        self.new_segment(req, cred, now, make)
    }

    /// `newseg`.
    fn new_segment(
        &mut self,
        req: GetRequest,
        cred: &Cred,
        now: i64,
        make: impl FnOnce(&str, u64) -> Result<B, i32>,
    ) -> Result<ShmId, i32> {
        let size = req.size;
        if size < SHMMIN || size > self.limits.shmmax {
            return Err(libc::EINVAL);
        }
        let pages = size.div_ceil(4096);
        let total = self.total_pages.checked_add(pages).ok_or(libc::ENOSPC)?;
        if total > self.limits.shmall {
            return Err(libc::ENOSPC);
        }
        let name = format!("SYSV{:08x}", req.key as u32);
        let backing = make(&name, size)?;
        if self.segments.len() as u64 >= self.limits.shmmni.min(u64::from(IPCMNI)) {
            return Err(libc::ENOSPC);
        }
        let idx = self.next_index().ok_or(libc::ENOSPC)?;
        if self.last_idx.is_some_and(|l| idx <= l) {
            // `ipc_idr_alloc`: the index wrapped, the sequence moves on.
            self.seq = if u32::from(self.seq) + 1 >= (i32::MAX as u32) >> 15 { 0 } else { self.seq + 1 };
        }
        self.last_idx = Some(idx);
        let id = ShmId::new(self.seq, idx);
        let stat = Stat {
            key: req.key,
            uid: cred.uid,
            gid: cred.gid,
            cuid: cred.uid,
            cgid: cred.gid,
            mode: req.flags as u32 & 0o777,
            seq: self.seq,
            segsz: size,
            ctime: now,
            cpid: cred.pid,
            ..Stat::default()
        };
        let huge = req.flags & SHM_HUGETLB != 0;
        self.segments.insert(idx, Segment { id, file_key: req.key, stat, huge, backing });
        self.total_pages = total;
        Ok(id)
    }

    /// `idr_alloc_cyclic`: the first free index after the last one given,
    /// wrapping.
    fn next_index(&self) -> Option<u32> {
        let start = self.last_idx.map_or(0, |l| (l + 1) % IPCMNI);
        (start..IPCMNI).chain(0..start).find(|i| !self.segments.contains_key(i))
    }

    /// The segment `id` names (`EINVAL` for none, or a stale sequence).
    pub fn segment(&self, id: ShmId) -> Result<&Segment<B>, i32> {
        if id.0 < 0 {
            return Err(libc::EINVAL);
        }
        self.segments.get(&id.index()).filter(|s| s.id.seq() == id.seq()).ok_or(libc::EINVAL)
    }

    fn segment_mut(&mut self, id: ShmId) -> Result<&mut Segment<B>, i32> {
        self.segment(id)?;
        self.segments.get_mut(&id.index()).ok_or(libc::EINVAL)
    }

    /// The segment at table index `idx` (`SHM_STAT`).
    pub fn at_index(&self, idx: u32) -> Result<&Segment<B>, i32> {
        self.segments.get(&idx).ok_or(libc::EINVAL)
    }

    /// Every segment, by index.
    pub fn segments(&self) -> impl Iterator<Item = &Segment<B>> {
        self.segments.values()
    }

    /// The highest index in use (`ipc_get_maxidx`, 0 when empty).
    pub fn max_index(&self) -> u32 {
        self.segments.keys().next_back().copied().unwrap_or(0)
    }

    /// `SHM_INFO`'s counts.
    pub fn usage(&self) -> Usage {
        Usage { used_ids: self.segments.len() as u32, total_pages: self.total_pages }
    }

    /// `shmat`'s checks: the segment and the access `flag` asks
    /// (`EINVAL`, `EACCES`). Attaching a removed segment that is still
    /// attached is allowed, as on Linux.
    pub fn check_attach(&self, id: ShmId, cred: &Cred, flag: u32) -> Result<&Segment<B>, i32> {
        let s = self.segment(id)?;
        if !permitted(&s.stat, cred, flag) {
            return Err(libc::EACCES);
        }
        Ok(s)
    }

    /// `IPC_STAT` (and `SHM_STAT` once found): `EACCES` without read
    /// permission.
    pub fn stat(&self, id: ShmId, cred: &Cred) -> Result<Stat, i32> {
        let s = self.segment(id)?;
        if !permitted(&s.stat, cred, 0o444) {
            return Err(libc::EACCES);
        }
        Ok(s.stat)
    }

    /// `ipcctl_obtain_check`: the owner, the creator or `CAP_SYS_ADMIN`.
    fn owner_check(&mut self, id: ShmId, cred: &Cred) -> Result<&mut Segment<B>, i32> {
        let s = self.segment_mut(id)?;
        if cred.uid != s.stat.uid && cred.uid != s.stat.cuid && !cred.has(CAP_SYS_ADMIN) {
            return Err(libc::EPERM);
        }
        Ok(s)
    }

    /// `IPC_SET`: owner, group and permission bits.
    pub fn set(&mut self, id: ShmId, cred: &Cred, uid: u32, gid: u32, mode: u32, now: i64) -> Result<(), i32> {
        let s = self.owner_check(id, cred)?;
        if uid == u32::MAX || gid == u32::MAX {
            return Err(libc::EINVAL);
        }
        s.stat.uid = uid;
        s.stat.gid = gid;
        s.stat.mode = (s.stat.mode & !0o777) | (mode & 0o777);
        s.stat.ctime = now;
        Ok(())
    }

    /// `IPC_RMID`: destroys the segment now if nothing maps it (its
    /// backing is returned for the caller to drop), else marks it
    /// `SHM_DEST` with a private key: the last detach destroys it.
    pub fn remove(&mut self, id: ShmId, cred: &Cred) -> Result<Option<B>, i32> {
        let s = self.owner_check(id, cred)?;
        if s.stat.nattch > 0 {
            s.stat.mode |= SHM_DEST;
            s.stat.key = IPC_PRIVATE;
            return Ok(None);
        }
        Ok(self.destroy(id))
    }

    fn destroy(&mut self, id: ShmId) -> Option<B> {
        let s = self.segments.remove(&id.index())?;
        self.total_pages = self.total_pages.saturating_sub(s.stat.segsz.div_ceil(4096));
        Some(s.backing)
    }

    /// `SHM_LOCK` (`lock`) or `SHM_UNLOCK`: without `CAP_IPC_LOCK` only
    /// the owner or creator (`EPERM`), and locking needs a non-zero
    /// `RLIMIT_MEMLOCK` (`EPERM`). Hugetlb segments stay as they are
    /// (their pages never swap). Nothing swaps here, so the flag is all
    /// a lock changes.
    pub fn lock(&mut self, id: ShmId, cred: &Cred, lock: bool, memlock: u64) -> Result<(), i32> {
        let s = self.segment_mut(id)?;
        if !cred.has(CAP_IPC_LOCK) {
            if cred.uid != s.stat.uid && cred.uid != s.stat.cuid {
                return Err(libc::EPERM);
            }
            if lock && memlock == 0 {
                return Err(libc::EPERM);
            }
        }
        if s.huge {
            return Ok(());
        }
        if lock {
            s.stat.mode |= SHM_LOCKED;
        } else {
            s.stat.mode &= !SHM_LOCKED;
        }
        Ok(())
    }

    /// A VMA of segment `id` came into being (`shm_open`: an attach, a
    /// split or a move): one more attach, at `now` by `pid`. A segment
    /// already destroyed is left alone.
    pub fn vma_opened(&mut self, id: ShmId, pid: i32, now: i64) {
        if let Ok(s) = self.segment_mut(id) {
            s.stat.nattch += 1;
            s.stat.atime = now;
            s.stat.lpid = pid;
        }
    }

    /// A VMA of segment `id` went away (`shm_close`): one attach less; a
    /// removed segment with none left is destroyed and its backing
    /// returned for the caller to drop.
    pub fn vma_closed(&mut self, id: ShmId, pid: i32, now: i64) -> Option<B> {
        let s = self.segment_mut(id).ok()?;
        s.stat.nattch = s.stat.nattch.saturating_sub(1);
        s.stat.dtime = now;
        s.stat.lpid = pid;
        if s.stat.nattch == 0 && s.stat.mode & SHM_DEST != 0 {
            return self.destroy(id);
        }
        None
    }
}
