//! `prctl`: the command name (`PR_SET_NAME`, `PR_GET_NAME`: what
//! `/proc/self/status` and `/proc/self/comm` show), the dumpable flag
//! (`PR_SET_DUMPABLE`, `PR_GET_DUMPABLE`) and memory-deny-write-execute
//! (`PR_SET_MDWE`, `PR_GET_MDWE`, which `mmap` and `mprotect` obey
//! through [`mdwe_denies`]). Every other option is `EINVAL`.

use super::ctx::{ret, Ctx};
use crate::hosted::hypercall::Outcome;

const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_MDWE: u64 = 65;
const PR_GET_MDWE: u64 = 66;
/// `PR_MDWE_REFUSE_EXEC_GAIN`.
pub const MDWE_REFUSE_EXEC_GAIN: u64 = 1;
/// `PR_MDWE_NO_INHERIT`.
const MDWE_NO_INHERIT: u64 = 2;
/// `TASK_COMM_LEN`.
const COMM_LEN: usize = 16;

/// `prctl(option, arg2, arg3, arg4, arg5)`.
pub fn prctl(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [option, arg2, arg3, arg4, arg5, _] = a;
    let r = match option {
        PR_SET_NAME => set_name(c, arg2),
        PR_GET_NAME => {
            let mut n = c.linux.proc().comm.clone();
            n.resize(COMM_LEN, 0);
            c.hv.write_user(c.vcpu, arg2, &n).map(|()| 0)
        }
        PR_GET_DUMPABLE => Ok(c.linux.proc().dumpable),
        // SUID_DUMP_DISABLE or SUID_DUMP_USER; 2 is for the kernel only.
        PR_SET_DUMPABLE if arg2 <= 1 => {
            c.linux.proc().dumpable = arg2;
            Ok(0)
        }
        PR_SET_MDWE => set_mdwe(c, arg2, [arg3, arg4, arg5]),
        PR_GET_MDWE if arg2 | arg3 | arg4 | arg5 == 0 => Ok(c.linux.proc().mdwe),
        _ => Err(libc::EINVAL),
    };
    ret(r)
}

/// `PR_SET_NAME`: at most 15 bytes of the string at `at` (`EFAULT` if
/// none can be read), NUL-terminated.
fn set_name(c: &Ctx<'_>, at: u64) -> Result<u64, i32> {
    let mut name = Vec::with_capacity(COMM_LEN);
    // Byte by byte, as strncpy_from_user stops at the NUL or the limit
    // (a name at the end of a mapping is fine).
    for i in 0..COMM_LEN as u64 - 1 {
        let b = c.hv.read_user(c.vcpu, at.wrapping_add(i), 1)?;
        match b.first() {
            Some(0) | None => break,
            Some(&x) => name.push(x),
        }
    }
    c.linux.proc().comm = name;
    Ok(0)
}

/// `PR_SET_MDWE(bits)`: bits only added, never taken away (`EPERM`).
fn set_mdwe(c: &Ctx<'_>, bits: u64, rest: [u64; 3]) -> Result<u64, i32> {
    if rest != [0; 3] || bits & !(MDWE_REFUSE_EXEC_GAIN | MDWE_NO_INHERIT) != 0 {
        return Err(libc::EINVAL);
    }
    if bits & MDWE_NO_INHERIT != 0 && bits & MDWE_REFUSE_EXEC_GAIN == 0 {
        return Err(libc::EINVAL);
    }
    let mut p = c.linux.proc();
    if p.mdwe != 0 && p.mdwe != bits {
        return Err(libc::EPERM);
    }
    p.mdwe = bits;
    Ok(0)
}

/// Linux's `map_deny_write_exec(old, new)` under `PR_SET_MDWE`: a
/// mapping may not become writable and executable, nor executable if it
/// was not (a new mapping's `old_exec` is its own).
pub fn mdwe_denies(c: &Ctx<'_>, old_exec: bool, new_write: bool, new_exec: bool) -> bool {
    c.linux.proc().mdwe & MDWE_REFUSE_EXEC_GAIN != 0 && new_exec && (new_write || !old_exec)
}
