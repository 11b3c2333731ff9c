//! What a `fork`, `vfork`, `clone` or `clone3` asks for: a process, a
//! vfork child or a thread ([`Spawn`]), with the stack, TLS and tid
//! pointers ([`CloneArgs`]), after Linux's checks of the flags
//! (`copy_process`, `clone3`'s `copy_clone_args_from_user`): `EINVAL`
//! for `CLONE_THREAD` without `CLONE_SIGHAND`, `CLONE_SIGHAND` without
//! `CLONE_VM`, `CLONE_FS` with `CLONE_NEWNS` or `CLONE_NEWUSER`, a
//! `clone3` struct too small, signal bits in `clone3`'s flags, a stack
//! without a size; `E2BIG` for a struct too large or with unknown
//! non-zero fields.
//!
//! Not served (`ENOSYS`): `CLONE_VM` without `CLONE_THREAD` or
//! `CLONE_VFORK` (a process sharing memory), a thread without
//! `CLONE_FILES` (its own descriptor table), `CLONE_PIDFD`; `clone3`'s
//! `set_tid` and `CLONE_INTO_CGROUP` are `EINVAL`.

use super::switch::CloneArgs;
use crate::hosted::hypercall::{Args, HostedKernel};

const CSIGNAL: u64 = 0xff;
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_NEWNS: u64 = 0x2_0000;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_CHILD_SETTID: u64 = 0x100_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// `CLONE_ARGS_SIZE_VER0` and the size of the struct this kind knows
/// (`VER2`, with `cgroup`).
const CLONE3_MIN: u64 = 64;
const CLONE3_KNOWN: usize = 88;
/// `_NSIG`.
const NSIG: u64 = 64;

/// What the call makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spawn {
    /// A process with a copy of the caller's memory.
    Fork,
    /// The same, the caller suspended until it ends.
    Vfork,
    /// A thread of the caller's process.
    Thread,
}

/// The request in `args` if it is a `fork`, `vfork`, `clone` or
/// `clone3`: what it makes and its clone arguments, or the errno it is
/// refused with.
pub fn spawn_request(hv: &HostedKernel, vcpu: u8, args: &Args) -> Option<Result<(Spawn, Option<CloneArgs>), i32>> {
    Some(match args.nr as i64 {
        libc::SYS_fork => Ok((Spawn::Fork, None)),
        libc::SYS_vfork => Ok((Spawn::Vfork, None)),
        libc::SYS_clone => clone(args.a),
        libc::SYS_clone3 => {
            let [uargs, size, ..] = args.a;
            if size < CLONE3_MIN {
                return Some(Err(libc::EINVAL));
            }
            if size > 4096 {
                return Some(Err(libc::E2BIG));
            }
            hv.read_user(vcpu, uargs, size).and_then(|b| clone3(&b))
        }
        _ => return None,
    })
}

/// `clone(flags, stack, parent_tid, child_tid, tls)`.
pub fn clone(a: [u64; 6]) -> Result<(Spawn, Option<CloneArgs>), i32> {
    let [flags, stack, ptid, ctid, tls, _] = a;
    if flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0 {
        return Err(libc::EINVAL);
    }
    let what = check(flags & !CSIGNAL)?;
    Ok((what, Some(args_of(flags, stack, ptid, ctid, tls))))
}

/// `clone3(args, size)` from the struct's bytes.
pub fn clone3(b: &[u8]) -> Result<(Spawn, Option<CloneArgs>), i32> {
    let word = |i: usize| b.get(i * 8..i * 8 + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes);
    if b.len() > CLONE3_KNOWN && b[CLONE3_KNOWN..].iter().any(|&x| x != 0) {
        return Err(libc::E2BIG);
    }
    let (flags, ctid, ptid, exit_signal) = (word(0), word(2), word(3), word(4));
    let (stack, stack_size, tls, set_tid_size) = (word(5), word(6), word(7), word(9));
    if flags & CSIGNAL != 0 || exit_signal > NSIG || (stack == 0) != (stack_size == 0) {
        return Err(libc::EINVAL);
    }
    if set_tid_size != 0 || flags & CLONE_INTO_CGROUP != 0 {
        return Err(libc::EINVAL);
    }
    let what = check(flags)?;
    let top = stack.checked_add(stack_size).ok_or(libc::EINVAL)?;
    Ok((what, Some(args_of(flags, top, ptid, ctid, tls))))
}

/// Linux's rules for the flags (less the exit signal), and what they
/// make.
fn check(flags: u64) -> Result<Spawn, i32> {
    if flags & (CLONE_NEWNS | CLONE_FS) == CLONE_NEWNS | CLONE_FS
        || flags & (CLONE_NEWUSER | CLONE_FS) == CLONE_NEWUSER | CLONE_FS
        || (flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0)
        || (flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0)
    {
        return Err(libc::EINVAL);
    }
    if flags & CLONE_PIDFD != 0 {
        return Err(libc::ENOSYS);
    }
    if flags & CLONE_THREAD != 0 {
        if flags & CLONE_FILES == 0 || flags & CLONE_VFORK != 0 {
            return Err(libc::ENOSYS);
        }
        return Ok(Spawn::Thread);
    }
    match (flags & CLONE_VM != 0, flags & CLONE_VFORK != 0) {
        (false, false) => Ok(Spawn::Fork),
        (_, true) => Ok(Spawn::Vfork),
        (true, false) => Err(libc::ENOSYS),
    }
}

fn args_of(flags: u64, stack: u64, ptid: u64, ctid: u64, tls: u64) -> CloneArgs {
    let when = |bit: u64, v: u64| (flags & bit != 0).then_some(v);
    CloneArgs {
        stack,
        tls: when(CLONE_SETTLS, tls),
        parent_settid: when(CLONE_PARENT_SETTID, ptid),
        child_settid: when(CLONE_CHILD_SETTID, ctid),
        child_cleartid: when(CLONE_CHILD_CLEARTID, ctid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc's and musl's `pthread_create` flags.
    const GLIBC_THREAD: u64 = CLONE_VM
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SIGHAND
        | CLONE_THREAD
        | 0x4_0000 // CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID;
    const MUSL_THREAD: u64 = GLIBC_THREAD | 0x40_0000; // CLONE_DETACHED

    fn clone3_bytes(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn pthread_create_flags_make_a_thread_with_its_pointers() {
        for f in [GLIBC_THREAD, MUSL_THREAD] {
            let (what, c) = clone([f, 0x7000, 0x8000, 0x9000, 0xa000, 0]).expect("a thread");
            assert_eq!(what, Spawn::Thread);
            let c = c.expect("args");
            assert_eq!((c.stack, c.tls, c.parent_settid), (0x7000, Some(0xa000), Some(0x8000)));
            assert_eq!((c.child_settid, c.child_cleartid), (None, Some(0x9000)));
        }
        // glibc's fork: SIGCHLD with the child's tid pointers.
        let (what, c) = clone([CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | 17, 0, 0, 0x9000, 0, 0]).expect("fork");
        assert_eq!(what, Spawn::Fork);
        assert_eq!(c.map(|c| (c.child_settid, c.child_cleartid, c.tls)), Some((Some(0x9000), Some(0x9000), None)));
    }

    #[test]
    fn linux_flag_rules_are_einval() {
        assert_eq!(clone([CLONE_THREAD | CLONE_VM | CLONE_FILES, 0, 0, 0, 0, 0]), Err(libc::EINVAL));
        assert_eq!(clone([CLONE_SIGHAND, 0, 0, 0, 0, 0]), Err(libc::EINVAL));
        assert_eq!(clone([CLONE_NEWNS | CLONE_FS, 0, 0, 0, 0, 0]), Err(libc::EINVAL));
        assert_eq!(clone([CLONE_NEWUSER | CLONE_FS, 0, 0, 0, 0, 0]), Err(libc::EINVAL));
        assert_eq!(clone([CLONE_PIDFD | CLONE_PARENT_SETTID, 0, 0, 0, 0, 0]), Err(libc::EINVAL));
        // What is valid but not served.
        assert_eq!(clone([CLONE_VM | 17, 0, 0, 0, 0, 0]), Err(libc::ENOSYS));
        assert_eq!(clone([CLONE_VM | CLONE_SIGHAND | CLONE_THREAD, 0, 0, 0, 0, 0]), Err(libc::ENOSYS));
        assert_eq!(clone([CLONE_VM | CLONE_VFORK | 17, 0, 0, 0, 0, 0]).map(|r| r.0), Ok(Spawn::Vfork));
    }

    #[test]
    fn clone3_reads_its_struct_as_linux() {
        // glibc's pthread_create: stack and size give the top.
        let b = clone3_bytes(&[GLIBC_THREAD, 0, 0x9000, 0x8000, 0, 0x10_0000, 0x80_0000, 0xa000, 0, 0, 0]);
        let (what, c) = clone3(&b).expect("a thread");
        assert_eq!(what, Spawn::Thread);
        let c = c.expect("args");
        assert_eq!(
            (c.stack, c.tls, c.parent_settid, c.child_cleartid),
            (0x90_0000, Some(0xa000), Some(0x8000), Some(0x9000))
        );
        // The version 0 size is enough.
        assert!(clone3(&b[..64]).is_ok());
        // Signal bits in flags, a stack without size, a bad exit signal.
        assert_eq!(clone3(&clone3_bytes(&[17, 0, 0, 0, 0, 0, 0, 0])), Err(libc::EINVAL));
        assert_eq!(clone3(&clone3_bytes(&[0, 0, 0, 0, 0, 0x1000, 0, 0])), Err(libc::EINVAL));
        assert_eq!(clone3(&clone3_bytes(&[0, 0, 0, 0, 0, 0, 0x1000, 0])), Err(libc::EINVAL));
        assert_eq!(clone3(&clone3_bytes(&[0, 0, 0, 0, 65, 0, 0, 0])), Err(libc::EINVAL));
        // A fork with exit signal SIGCHLD.
        assert_eq!(clone3(&clone3_bytes(&[0, 0, 0, 0, 17, 0, 0, 0])).map(|r| r.0), Ok(Spawn::Fork));
        // A larger struct: zero tail accepted, non-zero E2BIG.
        let mut big = b.clone();
        big.extend_from_slice(&[0; 16]);
        assert!(clone3(&big).is_ok());
        big[90] = 1;
        assert_eq!(clone3(&big), Err(libc::E2BIG));
    }
}
