//! `/proc/self/status` in Linux 6.12's format (`proc_pid_status`:
//! `task_state`, `task_mem`, `task_sig`, `task_cap`, `task_seccomp`,
//! the CPU and memory-node lists, context switches and x86's thread
//! features).
//!
//! Memory lines come from the address space ([`ProcView`]): `VmSize` the
//! shown lines, `VmLck` the `VM_LOCKED` ones (guest-mm's
//! `locked_bytes`, less hidden VMAs), `VmRSS` and `Rss*` the counters of
//! [`MemStats`], `VmData` the private writable lines but the stack,
//! `VmStk` the stack, `VmExe` the executable's executable lines, `VmLib`
//! the other executable, non-writable ones, `VmPTE` the space's table
//! pages less the root (the VMM's few supervisor tables included),
//! `HugetlbPages` the resident huge pages. `VmPeak` and `VmHWM` are the
//! larger of the current value and the peaks the kind tracked
//! ([`StatusExtra`]). The rest is what the kind says in [`StatusExtra`].

use guest_mm::VmFlags;

use super::maps::put;
use super::region::{Backing, ProcView};
use super::stats::MemStats;

/// What a process is doing, as `State:` and `stat`'s third field show
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskState {
    /// `R (running)`: on the vCPU or ready for it.
    #[default]
    Running,
    /// `S (sleeping)`: in a call that waits.
    Sleeping,
    /// `Z (zombie)`: ended, not yet reaped (it has no memory).
    Zombie,
}

impl TaskState {
    /// The letter.
    pub fn letter(self) -> char {
        match self {
            TaskState::Running => 'R',
            TaskState::Sleeping => 'S',
            TaskState::Zombie => 'Z',
        }
    }

    fn word(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Sleeping => "sleeping",
            TaskState::Zombie => "zombie",
        }
    }
}

/// What `status` shows that the address space does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusExtra {
    /// The command name (`comm`: at most 15 bytes are shown).
    pub name: String,
    /// What it is doing.
    pub state: TaskState,
    /// Process group and session.
    pub pgid: u32,
    /// Its session.
    pub sid: u32,
    /// The file-mode creation mask.
    pub umask: u32,
    /// Process id (also the thread-group id).
    pub pid: u32,
    /// Parent's process id.
    pub ppid: u32,
    /// Real, effective, saved and file-system user ids.
    pub uid: [u32; 4],
    /// Real, effective, saved and file-system group ids.
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Slots of the descriptor table.
    pub fd_size: u32,
    /// Threads.
    pub threads: u32,
    /// Queued signals and `RLIMIT_SIGPENDING`.
    pub sigq: (u64, u64),
    /// Pending, shared-pending, blocked, ignored and caught signals.
    pub signals: [u64; 5],
    /// Capability sets: inheritable, permitted, effective, bounding,
    /// ambient.
    pub caps: [u64; 5],
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// Seccomp mode and filter count.
    pub seccomp: (u32, u32),
    /// vCPUs the process may run on.
    pub cpus: u32,
    /// Voluntary and involuntary context switches.
    pub ctxt_switches: (u64, u64),
    /// The largest `VmSize` seen, in bytes (0 if not tracked).
    pub hiwater_vm: u64,
    /// The largest `VmRSS` seen, in bytes (0 if not tracked).
    pub hiwater_rss: u64,
}

/// All 41 capabilities of Linux 6.12 (`CAP_LAST_CAP` is 40).
pub const CAP_FULL: u64 = (1 << 41) - 1;

impl Default for StatusExtra {
    /// A root process, as the kind's auxiliary vector says (`AT_UID` 0),
    /// with one thread on one vCPU.
    fn default() -> Self {
        StatusExtra {
            name: String::new(),
            state: TaskState::Running,
            pgid: 1,
            sid: 1,
            umask: 0o022,
            pid: 1,
            ppid: 0,
            uid: [0; 4],
            gid: [0; 4],
            groups: vec![0],
            fd_size: 64,
            threads: 1,
            sigq: (0, 0),
            signals: [0; 5],
            caps: [0, CAP_FULL, CAP_FULL, CAP_FULL, 0],
            no_new_privs: false,
            seccomp: (0, 0),
            cpus: 1,
            ctxt_switches: (0, 0),
            hiwater_vm: 0,
            hiwater_rss: 0,
        }
    }
}

/// The name as `proc_task_name(.., escape = true)` prints it: `comm`
/// (15 bytes), with `\n` and `\` escaped.
fn escaped_name(name: &str) -> String {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].replace('\\', "\\\\").replace('\n', "\\n")
}

/// `%*pb` of the first `n` bits set: hex chunks of 32 bits, the first
/// as wide as its bits need, comma separated.
pub(super) fn bitmap_hex(n: u32) -> String {
    if n == 0 {
        return "0".into();
    }
    let mut chunks = Vec::new();
    let mut top = n.div_ceil(32) * 32;
    let mut first_bits = n % 32;
    if first_bits == 0 {
        first_bits = 32;
    }
    while top > 0 {
        let lo = top - 32;
        let bits = n.saturating_sub(lo).min(32);
        let val: u64 = if bits == 32 { u64::from(u32::MAX) } else { (1u64 << bits) - 1 };
        let width = if chunks.is_empty() { first_bits.div_ceil(4) as usize } else { 8 };
        chunks.push(format!("{val:0width$x}"));
        top = lo;
    }
    chunks.join(",")
}

/// `%*pbl` of the first `n` bits set.
pub(super) fn bitmap_list(n: u32) -> String {
    match n {
        0 => String::new(),
        1 => "0".into(),
        n => format!("0-{}", n - 1),
    }
}

/// The memory lines' values, in bytes.
struct Vm {
    size: u64,
    locked: u64,
    data: u64,
    stack: u64,
    exe: u64,
    exec: u64,
    stats: MemStats,
}

fn gather(view: &ProcView<'_>) -> Vm {
    let mut vm = Vm { size: 0, locked: 0, data: 0, stack: 0, exe: 0, exec: 0, stats: MemStats::default() };
    view.for_each_region(|r| {
        let (f, n) = (r.flags(), r.size());
        vm.size += n;
        if f.contains(VmFlags::LOCKED) {
            vm.locked += n;
        }
        if r.is_stack {
            vm.stack += n;
        } else if f & (VmFlags::WRITE | VmFlags::SHARED) == VmFlags::WRITE {
            vm.data += n;
        }
        if !r.is_stack && f & (VmFlags::EXEC | VmFlags::WRITE) == VmFlags::EXEC {
            vm.exec += n;
            if r.backing == Backing::File && r.name.as_deref() == Some(view.image.path) {
                vm.exe += n;
            }
        }
        vm.stats.add(&MemStats::of_region(view, &r));
    });
    vm
}

/// The contents of `/proc/self/status` (`/proc/PID/status`); `view` is
/// `None` for a zombie, which has no memory (no memory lines, as Linux
/// leaves them out without an mm).
pub fn status(view: Option<&ProcView<'_>>, extra: &StatusExtra) -> Vec<u8> {
    let mut out = Vec::new();
    let o = &mut out;
    put(o, format_args!("Name:\t{}\n", escaped_name(&extra.name)));
    put(o, format_args!("Umask:\t{:04o}\n", extra.umask & 0o777));
    put(o, format_args!("State:\t{} ({})\n", extra.state.letter(), extra.state.word()));
    put(o, format_args!("Tgid:\t{}\nNgid:\t0\nPid:\t{}\nPPid:\t{}\nTracerPid:\t0\n", extra.pid, extra.pid, extra.ppid));
    let [u0, u1, u2, u3] = extra.uid;
    let [g0, g1, g2, g3] = extra.gid;
    put(o, format_args!("Uid:\t{u0}\t{u1}\t{u2}\t{u3}\nGid:\t{g0}\t{g1}\t{g2}\t{g3}\n"));
    put(o, format_args!("FDSize:\t{}\nGroups:\t", extra.fd_size));
    let groups: Vec<String> = extra.groups.iter().map(u32::to_string).collect();
    put(o, format_args!("{} \n", groups.join(" ")));
    let (pid, pgid, sid) = (extra.pid, extra.pgid, extra.sid);
    put(o, format_args!("NStgid:\t{pid}\nNSpid:\t{pid}\nNSpgid:\t{pgid}\nNSsid:\t{sid}\nKthread:\t0\n"));
    if let Some(view) = view {
        // With an mm only: task_mem, task_core_dumping, task_thp_status,
        // task_untag_mask.
        memory_lines(o, view, extra);
        put(o, format_args!("CoreDumping:\t0\nTHP_enabled:\t1\nuntag_mask:\t{:#x}\n", u64::MAX));
    }
    put(o, format_args!("Threads:\t{}\nSigQ:\t{}/{}\n", extra.threads, extra.sigq.0, extra.sigq.1));
    for (label, set) in ["SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"].iter().zip(extra.signals) {
        put(o, format_args!("{label}:\t{set:016x}\n"));
    }
    for (label, set) in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].iter().zip(extra.caps) {
        put(o, format_args!("{label}:\t{set:016x}\n"));
    }
    put(o, format_args!("NoNewPrivs:\t{}\n", u8::from(extra.no_new_privs)));
    put(o, format_args!("Seccomp:\t{}\nSeccomp_filters:\t{}\n", extra.seccomp.0, extra.seccomp.1));
    put(o, format_args!("Speculation_Store_Bypass:\tthread vulnerable\n"));
    put(o, format_args!("SpeculationIndirectBranch:\tconditional enabled\n"));
    put(o, format_args!("Cpus_allowed:\t{}\n", bitmap_hex(extra.cpus)));
    put(o, format_args!("Cpus_allowed_list:\t{}\n", bitmap_list(extra.cpus)));
    put(o, format_args!("Mems_allowed:\t1\nMems_allowed_list:\t0\n"));
    put(o, format_args!("voluntary_ctxt_switches:\t{}\n", extra.ctxt_switches.0));
    put(o, format_args!("nonvoluntary_ctxt_switches:\t{}\n", extra.ctxt_switches.1));
    put(o, format_args!("x86_Thread_features:\t\nx86_Thread_features_locked:\t\n"));
    out
}

/// `task_mem`'s lines.
fn memory_lines(o: &mut Vec<u8>, view: &ProcView<'_>, extra: &StatusExtra) {
    let vm = gather(view);
    let st = &vm.stats;
    let rss = st.resident;
    let anon = st.anonymous;
    let shmem = st.pss_shmem;
    let file = rss - anon - shmem;
    let tables = view.space.stats().tables_in_use.saturating_sub(1) as u64 * 4096;
    let kb = |o: &mut Vec<u8>, label: &str, bytes: u64| put(o, format_args!("{label}:\t{:>8} kB\n", bytes >> 10));
    kb(o, "VmPeak", vm.size.max(extra.hiwater_vm));
    kb(o, "VmSize", vm.size);
    kb(o, "VmLck", vm.locked);
    kb(o, "VmPin", 0);
    kb(o, "VmHWM", rss.max(extra.hiwater_rss));
    kb(o, "VmRSS", rss);
    kb(o, "RssAnon", anon);
    kb(o, "RssFile", file);
    kb(o, "RssShmem", shmem);
    kb(o, "VmData", vm.data);
    kb(o, "VmStk", vm.stack);
    kb(o, "VmExe", vm.exe);
    kb(o, "VmLib", vm.exec - vm.exe);
    kb(o, "VmPTE", tables);
    kb(o, "VmSwap", 0);
    kb(o, "HugetlbPages", st.private_hugetlb);
}

/// `VmSize` and `VmRSS` in bytes (`stat`'s `vsize`, and its `rss` in
/// pages).
pub fn size_and_rss(view: &ProcView<'_>) -> (u64, u64) {
    let vm = gather(view);
    (vm.size, vm.stats.resident)
}
