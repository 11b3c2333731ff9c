//! The process's identity, limits, signal dispositions and exit.
//!
//! Signals: dispositions, the mask and the alternate stack are kept
//! here (`rt_sigaction`, `rt_sigprocmask`, `sigaltstack`); a signal the
//! process sends itself is made pending, and delivered (to its handler,
//! or its default action: the run ends with 128 + the signal, as a shell
//! reports it) when the call returns and it is not blocked
//! (`crate::guest::kinds::linux::signal`).

use super::super::futex::ROBUST_HEAD_SIZE;
use super::super::process::rlimit;
use super::super::random_bytes;
use super::ctx::{ret, Ctx};
use crate::guest::kinds::linux::signal::info::{bit, code, default_ignored, Fields, SigInfo};
use crate::hosted::hypercall::{Effects, Outcome};

pub use super::super::process::PID;
/// `ARCH_SET_GS`, `ARCH_SET_FS`, `ARCH_GET_FS`, `ARCH_GET_GS`.
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
/// `SIGKILL` and `SIGSTOP`: no handler, no mask.
const UNCATCHABLE: [u32; 2] = [9, 19];
/// Most bytes one `getrandom` returns (Linux: `INT_MAX >> 6`).
const GETRANDOM_MAX: u64 = 32 << 20;

/// `exit_group(status)` (and `exit` where the caller's registers are not
/// at hand: `GuestKind::syscall`; the kind serves a thread's `exit`
/// itself).
pub fn exit_group(_c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    Outcome { ret: 0, effects: Effects { exit_group: Some((a[0] & 0xff) as i32), ..Default::default() } }
}

/// `arch_prctl(code, addr)`.
pub fn arch_prctl(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [code, addr, ..] = a;
    match code {
        ARCH_SET_FS => {
            if addr >= 1 << 47 {
                return Outcome::err(libc::EPERM);
            }
            c.linux.proc().fs_base = addr;
            Outcome { ret: 0, effects: Effects { fs_base: Some(addr), ..Default::default() } }
        }
        ARCH_GET_FS => {
            let base = c.linux.proc().fs_base;
            ret(c.hv.write_user(c.vcpu, addr, &base.to_le_bytes()).map(|()| 0))
        }
        _ => Outcome::err(libc::EINVAL),
    }
}

/// `set_tid_address(tidptr)`.
pub fn set_tid_address(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    c.linux.proc().clear_child_tid = a[0];
    Outcome::ret(i64::from(c.linux.tid()))
}

/// `set_robust_list(head, len)`: the head is recorded for the calling
/// thread and walked when it ends (`super::super::robust`); `len` must
/// be the head's size. The head itself is read only then.
pub fn set_robust_list(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    if a[1] != ROBUST_HEAD_SIZE {
        return Outcome::err(libc::EINVAL);
    }
    c.linux.proc().robust_list = a[0];
    Outcome::ret(0)
}

/// `get_robust_list(tid, head_ptr, len_ptr)`: the head of the calling
/// thread (`tid` 0) or of thread `tid` (`ESRCH`: none; an ended one has
/// none left); the size goes to `len_ptr` first, as Linux writes it.
pub fn get_robust_list(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let tid = a[0] as i32;
    let me = c.linux.tid();
    let head = if tid == 0 || tid as u32 == me {
        c.linux.proc().robust_list
    } else if tid < 0 {
        return Outcome::err(libc::ESRCH);
    } else {
        if c.linux.tasks().tgid(tid as u32).is_none() {
            return Outcome::err(libc::ESRCH);
        }
        c.linux.with_thread_proc(tid as u32, |p| p.robust_list).unwrap_or(0)
    };
    if let Err(e) = c.hv.write_user(c.vcpu, a[2], &ROBUST_HEAD_SIZE.to_le_bytes()) {
        return Outcome::err(e);
    }
    ret(c.hv.write_user(c.vcpu, a[1], &head.to_le_bytes()).map(|()| 0))
}

/// `getpid()`: the thread group's id.
pub fn getpid(c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    Outcome::ret(i64::from(c.linux.pid()))
}

/// `gettid()`: the calling thread's id.
pub fn gettid(c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    Outcome::ret(i64::from(c.linux.tid()))
}

/// `getuid`, `geteuid`, `getgid`, `getegid`: `--uid` (root by default:
/// the host results were taken as root).
pub fn getuid(c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    Outcome::ret(i64::from(c.linux.proc().uid))
}

/// `uname(buf)`.
pub fn uname(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let mut b = vec![0u8; 6 * 65];
    for (i, s) in ["Linux", "vmm", "6.12.0-guest-mm", "#1 SMP", "x86_64", "(none)"].iter().enumerate() {
        b[i * 65..i * 65 + s.len()].copy_from_slice(s.as_bytes());
    }
    ret(c.hv.write_user(c.vcpu, a[0], &b).map(|()| 0))
}

/// `prlimit64(pid, resource, new, old)`.
pub fn prlimit64(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [pid, res, new, old, ..] = a;
    if pid != 0 && pid != u64::from(c.linux.pid()) {
        return Outcome::err(libc::ESRCH);
    }
    ret(rlimit_common(c, res, new, old))
}

/// `getrlimit(resource, rlim)`.
pub fn getrlimit(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    ret(rlimit_common(c, a[0], 0, a[1]))
}

/// `setrlimit(resource, rlim)`.
pub fn setrlimit(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    ret(rlimit_common(c, a[0], a[1], 0))
}

fn rlimit_common(c: &Ctx<'_>, res: u64, new: u64, old: u64) -> Result<u64, i32> {
    let i = usize::try_from(res).ok().filter(|&i| i < rlimit::COUNT).ok_or(libc::EINVAL)?;
    let want = if new != 0 {
        let b = c.hv.read_user(c.vcpu, new, 16)?;
        let soft = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let hard = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
        if soft > hard {
            return Err(libc::EINVAL);
        }
        if i == rlimit::NOFILE && hard > 1 << 20 {
            return Err(libc::EPERM);
        }
        Some((soft, hard))
    } else {
        None
    };
    let cur = c.linux.proc().rlimits[i];
    if old != 0 {
        let mut b = cur.0.to_le_bytes().to_vec();
        b.extend_from_slice(&cur.1.to_le_bytes());
        c.hv.write_user(c.vcpu, old, &b)?;
    }
    if let Some(w) = want {
        // The descriptor table enforces RLIMIT_NOFILE's soft limit
        // (`EMFILE`); the limit is stored only once the table took it.
        if i == rlimit::NOFILE {
            c.linux.vfs().set_nofile(w.0).map_err(|e| e.raw())?;
        }
        // RLIMIT_STACK bounds how far a MAP_GROWSDOWN stack grows.
        if i == rlimit::STACK {
            c.hv.mapper().space_mut().set_stack_limit(w.0);
        }
        c.linux.proc().rlimits[i] = w;
    }
    Ok(0)
}

/// `getrandom(buf, len, flags)`.
pub fn getrandom(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [buf, len, flags, ..] = a;
    if flags & !7 != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let len = len.min(GETRANDOM_MAX);
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(4096);
        let bytes = random_bytes::<4096>();
        if let Err(e) = c.hv.write_user(c.vcpu, buf + done, &bytes[..n as usize]) {
            return if done == 0 { Outcome::err(e) } else { Outcome::ret(done as i64) };
        }
        done += n;
    }
    Outcome::ret(len as i64)
}

fn check_sig(sig: u64) -> Result<u32, i32> {
    u32::try_from(sig).ok().filter(|s| (1..=64).contains(s)).ok_or(libc::EINVAL)
}

/// `rt_sigaction(sig, act, oact, sigsetsize)`: keeps the disposition.
pub fn rt_sigaction(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [sig, act, oact, size, ..] = a;
    let r = (|| {
        if size != 8 {
            return Err(libc::EINVAL);
        }
        let s = check_sig(sig)?;
        if act != 0 && UNCATCHABLE.contains(&s) {
            return Err(libc::EINVAL);
        }
        let new = if act != 0 {
            let b = c.hv.read_user(c.vcpu, act, 32)?;
            let mut w = [0u64; 4];
            for (i, x) in w.iter_mut().enumerate() {
                *x = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
            }
            Some(w)
        } else {
            None
        };
        let old = c.linux.proc().sigactions.get(&s).copied().unwrap_or_default();
        if oact != 0 {
            let b: Vec<u8> = old.iter().flat_map(|w| w.to_le_bytes()).collect();
            c.hv.write_user(c.vcpu, oact, &b)?;
        }
        if let Some(w) = new {
            let mut p = c.linux.proc();
            p.sigactions.insert(s, w);
            // A signal now ignored is discarded, pending or not.
            if w[0] == 1 || (w[0] == 0 && default_ignored(s)) {
                p.pending.remove(&s);
            }
        }
        Ok(0)
    })();
    ret(r)
}

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`.
pub fn rt_sigprocmask(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [how, set, oldset, size, ..] = a;
    let r = (|| {
        if size != 8 {
            return Err(libc::EINVAL);
        }
        let new = if set != 0 {
            let b = c.hv.read_user(c.vcpu, set, 8)?;
            Some(u64::from_le_bytes(b[..8].try_into().unwrap_or_default()))
        } else {
            None
        };
        let old = c.linux.proc().sigmask;
        if let Some(n) = new {
            let uncatchable = (1u64 << 8) | (1u64 << 18);
            let m = match how {
                0 => old | n,
                1 => old & !n,
                2 => n,
                _ => return Err(libc::EINVAL),
            };
            c.linux.proc().sigmask = m & !uncatchable;
        }
        if oldset != 0 {
            c.hv.write_user(c.vcpu, oldset, &old.to_le_bytes())?;
        }
        Ok(0)
    })();
    ret(r)
}

/// `sigaltstack(ss, old)`.
pub fn sigaltstack(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [ss, old, ..] = a;
    let r = (|| {
        let cur = c.linux.proc().altstack;
        if ss != 0 {
            let b = c.hv.read_user(c.vcpu, ss, 24)?;
            let sp = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
            let flags = u32::from_le_bytes(b[8..12].try_into().unwrap_or_default());
            let size = u64::from_le_bytes(b[16..24].try_into().unwrap_or_default());
            if flags & !(2 | (1 << 31)) != 0 {
                return Err(libc::EINVAL);
            }
            if flags & 2 == 0 && size < 2048 {
                return Err(libc::ENOMEM);
            }
            c.linux.proc().altstack = (sp, flags, size);
        }
        if old != 0 {
            let mut b = cur.0.to_le_bytes().to_vec();
            b.extend_from_slice(&cur.1.to_le_bytes());
            b.extend_from_slice(&[0u8; 4]);
            b.extend_from_slice(&cur.2.to_le_bytes());
            c.hv.write_user(c.vcpu, old, &b)?;
        }
        Ok(0)
    })();
    ret(r)
}

/// `rt_sigpending(set, sigsetsize)`: the pending signals (all blocked:
/// an unblocked one was delivered when its call returned).
pub fn rt_sigpending(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [set, size, ..] = a;
    if size > 8 {
        return Outcome::err(libc::EINVAL);
    }
    let pending = c.linux.proc().pending.keys().fold(0u64, |m, &s| m | bit(s));
    let bytes = pending.to_le_bytes();
    ret(c.hv.write_user(c.vcpu, set, &bytes[..size as usize]).map(|()| 0))
}

/// `rt_sigreturn()` without the caller's registers: the kind serves it
/// in `GuestKind::syscall_in`, which has them. Reached only through
/// `GuestKind::syscall`, where no frame can be restored: as a bad frame,
/// `SIGSEGV`.
pub fn rt_sigreturn(c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    c.linux.kill(crate::guest::kinds::linux::signal::info::sig::SIGSEGV as i32)
}

/// `kill(pid, sig)`: to one process, the caller's group (0), every
/// process but the first and the caller (-1), or a group (< -1).
/// `SIGKILL`, or a signal whose default action is fatal that the process
/// neither handles nor blocks in every thread, ends another process at
/// once; other signals wait in one thread's pending set until it runs (a
/// sleeping or parked thread is woken to see it: `EINTR`).
pub fn kill(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let pid = i64::from(a[0] as i32);
    let targets = match c.linux.tasks().kill_targets(pid) {
        Ok(v) => v,
        Err(e) => return Outcome::err(e.errno()),
    };
    let s = match a[1] {
        0 => return Outcome::ret(0),
        sig => match check_sig(sig) {
            Ok(s) => s,
            Err(e) => return Outcome::err(e),
        },
    };
    let me = c.linux.pid();
    for t in targets {
        let sigkill = s == crate::guest::kinds::linux::tasks::switch::SIGKILL;
        let ends = t != me && (sigkill || c.linux.fatal_at_once(t, s));
        if ends && t == c.linux.tasks().init() {
            // The first process killed by another: the run ends now with
            // its status (128 + the signal), every other process with it,
            // as when it ends itself (it became a zombie and the run went
            // on).
            return c.linux.kill_first(s as i32);
        } else if sigkill && t != me {
            if let Some(m) = c.linux.kill_other(c.hv, c.vcpu, t, s) {
                c.linux.note_fatal(m);
            }
        } else {
            let info = SigInfo { signo: s, code: code::SI_USER, fields: Fields::Sender { pid: me, uid: 0 } };
            if t != me && c.linux.fatal_at_once(t, s) {
                // Linux's complete_signal: a fatal signal a thread of the
                // process does not block ends it wherever it is (parked,
                // asleep, or spinning without system calls).
                if let Some(m) = c.linux.kill_other(c.hv, c.vcpu, t, s) {
                    c.linux.note_fatal(m);
                }
                continue;
            }
            // One thread takes it; asleep or parked, it is woken to see it.
            c.linux.post_to_process(t, info);
        }
    }
    Outcome::ret(0)
}

/// A signal to thread `tid` (of process `tgid`, when given): `ESRCH`
/// when there is none; `SIGKILL` ends its whole process.
fn signal_thread(c: &Ctx<'_>, tgid: Option<u32>, tid: u32, sig: u64) -> Outcome {
    let pid = {
        let t = c.linux.tasks();
        match t.tgid(tid) {
            Some(p) if t.threads(p).contains(&tid) && tgid.is_none_or(|g| g == p) => p,
            _ => return Outcome::err(libc::ESRCH),
        }
    };
    if sig == 0 {
        return Outcome::ret(0);
    }
    let s = match check_sig(sig) {
        Ok(s) => s,
        Err(e) => return Outcome::err(e),
    };
    let me = c.linux.pid();
    if s == crate::guest::kinds::linux::tasks::switch::SIGKILL && pid != me {
        if let Some(m) = c.linux.kill_other(c.hv, c.vcpu, pid, s) {
            c.linux.note_fatal(m);
        }
        return Outcome::ret(0);
    }
    let info = SigInfo { signo: s, code: code::SI_TKILL, fields: Fields::Sender { pid: me, uid: 0 } };
    ret(c.linux.post_to_thread(tid, info).map(|()| 0))
}

/// `tgkill(tgid, tid, sig)`.
pub fn tgkill(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let (tgid, tid) = (a[0] as i32, a[1] as i32);
    if tgid <= 0 || tid <= 0 {
        return Outcome::err(libc::EINVAL);
    }
    signal_thread(c, Some(tgid as u32), tid as u32, a[2])
}

/// `tkill(tid, sig)`.
pub fn tkill(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let tid = a[0] as i32;
    if tid <= 0 {
        return Outcome::err(libc::EINVAL);
    }
    signal_thread(c, None, tid as u32, a[1])
}

/// `sched_yield()`.
pub fn sched_yield(c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    c.linux.yield_now();
    Outcome::ret(0)
}

/// `sched_getaffinity(pid, size, mask)`: one CPU.
pub fn sched_getaffinity(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [pid, size, mask, ..] = a;
    if pid != 0 && pid != u64::from(c.linux.pid()) {
        return Outcome::err(libc::ESRCH);
    }
    if size < 8 || size % 8 != 0 {
        return Outcome::err(libc::EINVAL);
    }
    // One bit per vCPU (at most 8: one word).
    let bits = (1u64 << c.linux.vcpu_count()) - 1;
    ret(c.hv.write_user(c.vcpu, mask, &bits.to_le_bytes()).map(|()| 8))
}

/// `getcpu(cpu, node, tcache)`: the calling thread's vCPU, node 0
/// (either pointer may be null).
pub fn getcpu(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        if a[0] != 0 {
            c.hv.write_user(c.vcpu, a[0], &u32::from(c.vcpu).to_le_bytes())?;
        }
        if a[1] != 0 {
            c.hv.write_user(c.vcpu, a[1], &0u32.to_le_bytes())?;
        }
        Ok(0)
    })();
    ret(r)
}

/// `umask(mask)`.
pub fn umask(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let mut p = c.linux.proc();
    let old = p.umask;
    p.umask = (a[0] & 0o777) as u32;
    Outcome::ret(i64::from(old))
}

/// `capget(hdr, data)`: version 3 headers (two 32-bit halves).
pub fn capget(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        cap_header(c, a[0])?;
        if a[1] == 0 {
            return Ok(0);
        }
        let (e, p, i) = c.linux.proc().caps;
        let mut b = Vec::with_capacity(24);
        for half in [0, 32] {
            for v in [e, p, i] {
                b.extend_from_slice(&((v >> half) as u32).to_le_bytes());
            }
        }
        c.hv.write_user(c.vcpu, a[1], &b).map(|()| 0)
    })();
    ret(r)
}

/// `capset(hdr, data)`: a process may drop capabilities, never gain
/// one it is not permitted.
pub fn capset(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        cap_header(c, a[0])?;
        let b = c.hv.read_user(c.vcpu, a[1], 24)?;
        let w = |i: usize| u64::from(u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap_or_default()));
        let (e, p, i) = (w(0) | (w(3) << 32), w(1) | (w(4) << 32), w(2) | (w(5) << 32));
        let mut proc = c.linux.proc();
        if p & !proc.caps.1 != 0 || e & !p != 0 {
            return Err(libc::EPERM);
        }
        proc.caps = (e, p, i);
        Ok(0)
    })();
    ret(r)
}

/// Checks a `cap_user_header_t`: version 3 (or 2), this process.
fn cap_header(c: &Ctx<'_>, hdr: u64) -> Result<(), i32> {
    const V3: u32 = 0x2008_0522;
    const V2: u32 = 0x2007_1026;
    let b = c.hv.read_user(c.vcpu, hdr, 8)?;
    let version = u32::from_le_bytes(b[..4].try_into().unwrap_or_default());
    let pid = i32::from_le_bytes(b[4..].try_into().unwrap_or_default());
    if version != V3 && version != V2 {
        c.hv.write_user(c.vcpu, hdr, &V3.to_le_bytes())?;
        return Err(libc::EINVAL);
    }
    if pid != 0 && pid as u64 != u64::from(c.linux.pid()) {
        return Err(libc::ESRCH);
    }
    Ok(())
}
