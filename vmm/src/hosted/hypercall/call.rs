//! One hypercall as the vCPU loop sees it: its arguments ([`Args`]) and
//! its result with what else must happen ([`Outcome`], [`Effects`]).

use kvm_bindings::kvm_regs;

/// The arguments of one hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args {
    /// `rax`.
    pub nr: u64,
    /// `rdi, rsi, rdx, r10, r8, r9`.
    pub a: [u64; 6],
}

impl Args {
    /// Reads the convention's registers.
    pub fn from_regs(r: &kvm_regs) -> Self {
        Args { nr: r.rax, a: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9] }
    }
}

/// What a hypercall did besides producing `rax`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// The run cannot go on (a shootdown failed after the tables changed).
    pub fatal: Option<String>,
    /// The next exception on this vCPU resumes here (0: disarm).
    pub arm_fault: Option<u64>,
    /// This vCPU stops (`exit`).
    pub exit_vcpu: Option<i32>,
    /// The whole guest stops (`exit_group`).
    pub exit_group: Option<i32>,
    /// Set this vCPU's FS base (`arch_prctl(ARCH_SET_FS)`).
    pub fs_base: Option<u64>,
    /// Keep this vCPU out of the guest before it resumes (a sleeping
    /// system call); a run that stops ends the wait.
    pub block: Option<Block>,
}

/// How long a vCPU waits before it resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Until this time.
    Until(std::time::Instant),
    /// Until the run stops (nothing can wake it).
    UntilStopped,
}

/// The result of one hypercall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Value for `rax`: a result, or `-errno`.
    pub ret: i64,
    /// Side effects for the vCPU loop.
    pub effects: Effects,
}

impl Outcome {
    /// `ret` and nothing else.
    pub fn ret(ret: i64) -> Self {
        Outcome { ret, effects: Effects::default() }
    }

    /// `-e` and nothing else.
    pub fn err(e: i32) -> Self {
        Self::ret(-i64::from(e))
    }
}
