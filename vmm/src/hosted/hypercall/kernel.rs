//! The hosted guest's kernel state ([`HostedKernel`]): its address space,
//! providers, console, report log and TLB flusher, and the dispatch of one
//! hypercall to the file that serves it.

use std::sync::{Arc, Mutex};

use guest_mm::{errno, GuestVirtAddr};

use super::call::{Args, Effects, Outcome};
use super::checks::{CheckRecord, ReportLog};
use super::console::{self, ConsoleOut};
use crate::hosted::mapper::Mapper;
use crate::hosted::providers::Providers;
use crate::hosted::stub::abi::nr;
use crate::hosted::tlb::Flusher;
use crate::memory::GuestMem;
use crate::run::vm_exit::ExitCounters;

/// The VMM acting as the guest's kernel.
pub struct HostedKernel {
    pub(super) mem: GuestMem,
    pub(super) mapper: Mutex<Mapper>,
    pub(super) providers: Providers,
    pub(super) flusher: Arc<dyn Flusher>,
    pub(super) console: ConsoleOut,
    pub(super) report: ReportLog,
    pub(super) counters: Vec<Arc<ExitCounters>>,
    /// Page faults resolved (lazy pages filled, copies made).
    pub(super) faults_resolved: std::sync::atomic::AtomicU64,
    /// Process switches asked of each vCPU (see `spaces`).
    pub(super) switches: Mutex<std::collections::BTreeMap<u8, super::spaces::Switch>>,
    /// Whether `switches` may hold one.
    pub(super) switch_pending: std::sync::atomic::AtomicBool,
    /// Copy-on-write pages whose flush waits for the retry (see
    /// `cow_flush`).
    pub(super) unflushed: Mutex<Vec<super::cow_flush::Unflushed>>,
    /// Whether `unflushed` may hold one.
    pub(super) has_unflushed: std::sync::atomic::AtomicBool,
    /// Deferred flushes the retry did not settle.
    pub(super) cow_flushes_left: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for HostedKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedKernel").finish_non_exhaustive()
    }
}

/// Most bytes one `write` hypercall copies.
const MAX_WRITE: u64 = 1 << 16;

impl HostedKernel {
    /// A hypervisor over the guest's memory and address space; `flusher`
    /// shoots translations down after the tables change.
    pub fn new(
        mem: GuestMem,
        mapper: Mapper,
        providers: Providers,
        flusher: Arc<dyn Flusher>,
        console: ConsoleOut,
        report: ReportLog,
        counters: Vec<Arc<ExitCounters>>,
    ) -> Self {
        HostedKernel {
            mem,
            mapper: Mutex::new(mapper),
            providers,
            flusher,
            console,
            report,
            counters,
            faults_resolved: Default::default(),
            switches: Default::default(),
            switch_pending: Default::default(),
            unflushed: Default::default(),
            has_unflushed: Default::default(),
            cow_flushes_left: Default::default(),
        }
    }

    /// Page faults resolved so far (spurious ones not counted).
    pub fn faults_resolved(&self) -> u64 {
        self.faults_resolved.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the run is stopping: a call that waits on the host (a
    /// Solo5 yield polling its taps) gives up.
    pub fn is_stopping(&self) -> bool {
        self.flusher.is_stopping()
    }

    /// Where console output goes (the vCPU loop throttles on it).
    pub fn console(&self) -> &ConsoleOut {
        &self.console
    }

    /// The checks the guest reported.
    pub fn report(&self) -> &ReportLog {
        &self.report
    }

    /// Audits the address space (see `AddressSpace::check_invariants`);
    /// meant for when no vCPU runs any more.
    pub fn check_invariants(&self) -> (guest_mm::Audit, Vec<guest_mm::Violation>) {
        self.mapper().space().check_invariants()
    }

    /// Runs hypercall `args` for vCPU `vcpu`.
    pub fn dispatch(&self, vcpu: u8, args: &Args) -> Outcome {
        let [a0, a1, a2, a3, a4, _] = args.a;
        match args.nr {
            nr::WRITE => self.write(a0, a1, a2),
            nr::EXIT => Outcome { ret: 0, effects: Effects { exit_vcpu: Some(a0 as i32), ..Default::default() } },
            nr::EXIT_GROUP => {
                Outcome { ret: 0, effects: Effects { exit_group: Some(a0 as i32), ..Default::default() } }
            }
            nr::REPORT => {
                self.report.record(CheckRecord { vcpu, id: a0, passed: a1 != 0, got: a2, expected: a3, step: a4 });
                Outcome::ret(0)
            }
            nr::EXPECT_FAULT => match GuestVirtAddr::try_new(a0) {
                Ok(_) if a0 < (1 << 47) => {
                    Outcome { ret: 0, effects: Effects { arm_fault: Some(a0), ..Default::default() } }
                }
                _ => Outcome::err(errno::EINVAL),
            },
            nr::EXIT_COUNT => {
                let Some(c) = self.counters.get(vcpu as usize) else { return Outcome::err(errno::EINVAL) };
                let s = c.snapshot();
                match a0 {
                    0 => Outcome::ret(s.total as i64),
                    1 => Outcome::ret(s.mmio as i64),
                    2 => Outcome::ret(s.pio as i64),
                    _ => Outcome::err(errno::EINVAL),
                }
            }
            nr::VCPU_ID => Outcome::ret(i64::from(vcpu)),
            nr::TRANSLATE => self.translate(a0, a1),
            nr::MMAP => self.mmap(vcpu, args.a),
            nr::MUNMAP => self.munmap(vcpu, a0, a1),
            nr::MPROTECT => self.mprotect(vcpu, a0, a1, a2),
            nr::MREMAP => self.mremap(vcpu, args.a),
            nr::MADVISE => self.madvise(vcpu, a0, a1, a2),
            _ => Outcome::err(errno::ENOSYS),
        }
    }

    /// The instruction at `va` (for fault messages), if it is mapped.
    pub fn disassemble_at(&self, va: GuestVirtAddr) -> Option<String> {
        use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
        let m = self.mapper();
        // Read up to the end of the page, at most 15 bytes, without
        // requiring user access (a fault can be in the kernel stub).
        let t = m.page_tables().translate(va)?;
        let va = va.raw();
        let n = (15u64).min(crate::layout::PAGE_SIZE - (va & (crate::layout::PAGE_SIZE - 1))) as usize;
        let mut buf = vec![0u8; n];
        vm_memory::Bytes::read_slice(&self.mem, &mut buf, vm_memory::GuestAddress(t.phys.0)).ok()?;
        let insn = Decoder::with_ip(64, &buf, va, DecoderOptions::NONE).decode();
        if insn.is_invalid() {
            return Some(format!("(undecodable: {buf:02x?})"));
        }
        let mut out = String::new();
        IntelFormatter::new().format(&insn, &mut out);
        Some(out)
    }

    /// Copies `len` bytes from user address `va` (present, user pages;
    /// `EFAULT` otherwise).
    pub fn copy_from_user(&self, va: u64, len: u64) -> Result<Vec<u8>, i32> {
        console::copy_from_user(&self.mem, self.mapper().page_tables(), va, len)
    }

    /// Copies `bytes` to user address `va` (present, user, writable pages;
    /// `EFAULT` otherwise, and then nothing is written).
    pub fn copy_to_user(&self, va: u64, bytes: &[u8]) -> Result<(), i32> {
        console::copy_to_user(&self.mem, self.mapper().page_tables(), va, bytes)
    }

    /// The address space, locked (hypercalls from other vCPUs wait).
    pub fn mapper(&self) -> std::sync::MutexGuard<'_, Mapper> {
        self.mapper.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `translate(va, what)`: `what` 0 gives the physical address, 1 the
    /// leaf size in bytes.
    fn translate(&self, va: u64, what: u64) -> Outcome {
        let Ok(v) = GuestVirtAddr::try_new(va) else { return Outcome::err(errno::EINVAL) };
        let m = self.mapper();
        match (m.page_tables().translate(v), what) {
            (Some(t), 0) => Outcome::ret(t.phys.0 as i64),
            (Some(t), 1) => Outcome::ret(t.size.bytes() as i64),
            (Some(_), _) => Outcome::err(errno::EINVAL),
            (None, _) => Outcome::err(errno::EFAULT),
        }
    }

    fn write(&self, fd: u64, buf: u64, len: u64) -> Outcome {
        if fd != 1 && fd != 2 {
            return Outcome::err(errno::EINVAL);
        }
        let len = len.min(MAX_WRITE);
        let m = self.mapper();
        match console::copy_from_user(&self.mem, m.page_tables(), buf, len) {
            Ok(bytes) => {
                drop(m);
                // Never waits; the vCPU throttles after the exit.
                self.console.write(&bytes);
                Outcome::ret(bytes.len() as i64)
            }
            Err(e) => Outcome::err(e),
        }
    }
}
