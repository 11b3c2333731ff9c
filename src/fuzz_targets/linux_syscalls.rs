//! The Linux system-call target: sequences of system calls with
//! arguments biased to the values that matter (0, -1, page-aligned
//! addresses in and around the mappings, huge lengths, descriptors,
//! paths in the image, flag combinations), and guest stores of arbitrary
//! bytes (the structures calls read), served by the Linux kind
//! (`GuestKind::syscall`) for a live process over guest memory, without
//! KVM: the process is loaded as `vmm run` loads it (`GuestKind::load`
//! into a hosted address space, then the providers and the
//! `HostedKernel`), with a recording flusher for the shootdowns.
//!
//! After every call `linux_syscalls_check` checks, on its own: the
//! result is a value or `-errno`; the address space passes its audit and
//! an independent walk of the tables; calls that do not manage memory
//! leave the VMAs alone, and calls that touch no memory leave the tables
//! alone; the VMM's resident memory grew by less than 64 MiB. At the end
//! the whole user half is unmapped and the process dropped: every frame,
//! pin and table must be back.
//!
//! Each input builds its own machine (a few milliseconds: the providers
//! fill their pages lazily), so no state leaks from one input to the
//! next and a crash reproduces from its input alone.

use std::sync::Arc;

use vm_memory::GuestAddress;
use vmm::config::VmConfig;
use vmm::guest::kind::{GuestKind, HostedLoad, LoadCtx};
use vmm::guest::kinds::linux::image::TASK_SIZE;
use vmm::guest::kinds::linux::process::MMAP_MIN_ADDR;
use vmm::guest::kinds::linux::syscalls::TABLE;
use vmm::guest::kinds::linux::{Linux, STACK_SIZE, STACK_TOP};
use vmm::hosted::boot::install_kernel_with;
use vmm::hosted::hypercall::{Args, ConsoleOut, HostedKernel, ReportLog};
use vmm::hosted::mapper::Mapper;
use vmm::hosted::providers::Providers;
use vmm::hosted::tlb::RecordingFlusher;
use vmm::layout::{KERNEL_VA, LOAD_PA, LOAD_SIZE, MIN_MEM_SIZE, PAGE_SIZE};
use vmm::memory::{create_guest_memory, BootFrames};
use vmm::run::vm_exit::ExitCounters;

use super::linux_program::{program, DATA_LEN, DATA_VA, MM_CALLS, PATHS, PATHS_VA, PATH_SLOT};
use super::linux_syscalls_check::{resident, Baseline, Snapshot};
use crate::input::Input;

#[cfg(test)]
#[path = "linux_sysv_tests.rs"]
mod sysv_tests;

/// Most calls (and stores) one input makes.
const MAX_STEPS: usize = 48;
/// Guest RAM: the VMM's regions and 16 MiB the pool hands out.
const MEM_SIZE: u64 = MIN_MEM_SIZE + (16 << 20);
/// Leaves after which an input ends: each check walks every leaf, so an
/// input that populates millions (a locked read-only mapping of
/// terabytes fills the pool with tables of zero-page entries) would make
/// every later step cost seconds. Its one heavy call is still checked,
/// and so is the teardown.
const LEAF_BOUND: usize = 1 << 16;
/// Stands for every random choice of the layout.
const SEED: u64 = 0x5eed;
/// Where the heap starts (the page after the image's data).
const HEAP_VA: u64 = DATA_VA + DATA_LEN;

/// A process and the machine it runs on.
pub(super) struct Machine {
    pub hv: HostedKernel,
    pub linux: Linux,
    pub flusher: Arc<RecordingFlusher>,
    pub base: Baseline,
}

impl Machine {
    /// The fuzz program loaded, its first call not yet made.
    pub(super) fn new() -> Machine {
        let linux = Linux::detached("/fuzz/prog", &program(), SEED).expect("the fuzz program parses");
        let cfg = VmConfig { mem_size: MEM_SIZE, ..VmConfig::default() };
        let mem = create_guest_memory(MEM_SIZE).expect("guest memory");
        let mut mapper = Mapper::with_options(mem.clone(), cfg.max_map_count, linux.pool_ram()).expect("address space");
        let kernel = install_kernel_with(&mem, &mut mapper, 1, linux.user_ports()).expect("kernel");
        let kernel_tables = mapper.space().stats().tables_in_use;
        let before_load = mapper.space().stats();
        let mut frames = BootFrames::new(GuestAddress(LOAD_PA), GuestAddress(LOAD_PA + LOAD_SIZE));
        let hosted = HostedLoad { mapper: &mut mapper, frames: &mut frames, kernel: &kernel };
        linux.load(&mut LoadCtx { mem: &mem, cfg: &cfg, hosted: Some(hosted) }).expect("the fuzz program loads");
        let loaded = mapper.space().stats();
        let providers = Providers::new(&mapper, &mem, &[]).expect("providers");
        let with_providers = mapper.space().stats();
        // What the process is given back once gone: the figures before it
        // was loaded, less what the providers (which stay) took.
        let gone = guest_mm::SpaceStats {
            pool_free: before_load.pool_free - (loaded.pool_free - with_providers.pool_free),
            pins: before_load.pins + (with_providers.pins - loaded.pins),
            tables_in_use: kernel_tables,
            vmas: 0,
        };
        let cr3 = mapper.cr3();
        let flusher = Arc::new(RecordingFlusher::default());
        let hv = HostedKernel::new(
            mem.clone(),
            mapper,
            providers,
            flusher.clone(),
            ConsoleOut::new(Box::new(std::io::sink())),
            ReportLog::default(),
            vec![Arc::new(ExitCounters::default())],
        );
        let base = Baseline::new(mem, MEM_SIZE, cr3, gone);
        Machine { hv, linux, flusher, base }
    }
}

/// Addresses the process has mapped: the image, the heap, the stack, and
/// what calls returned.
fn mapped_base(i: &mut Input<'_>, recent: &[u64]) -> u64 {
    const FIXED: [u64; 6] = [0x40_1000, PATHS_VA, DATA_VA, HEAP_VA, STACK_TOP - PAGE_SIZE, STACK_TOP - STACK_SIZE];
    let k = usize::from(i.u8()) % (FIXED.len() + recent.len());
    FIXED.get(k).copied().or_else(|| recent.get(k - FIXED.len()).copied()).unwrap_or(DATA_VA)
}

/// One argument, from a family that matters to some call, or raw.
fn arg(i: &mut Input<'_>, recent: &[u64]) -> u64 {
    let pick = |i: &mut Input<'_>, list: &[u64]| list[usize::from(i.u8()) % list.len()];
    match i.u8() % 14 {
        0 => i.u64(),
        1 => u64::from(i.u8()),
        2 => 0,
        3 => (-1 - i64::from(i.u8())) as u64,
        4 => i.range(1, 64) * PAGE_SIZE,
        5 => pick(i, &[1 << 47, TASK_SIZE, !(PAGE_SIZE - 1), 1 << 63, 1 << 32, 1 << 40, i64::MAX as u64, 1 << 30]),
        6 => mapped_base(i, recent).wrapping_add(i.range(0, 16) * PAGE_SIZE),
        7 => mapped_base(i, recent).wrapping_add(i.range(0, 4096)),
        8 => pick(
            i,
            &[
                PAGE_SIZE,
                MMAP_MIN_ADDR - PAGE_SIZE,
                MMAP_MIN_ADDR,
                TASK_SIZE,
                TASK_SIZE - PAGE_SIZE,
                1 << 47,
                KERNEL_VA,
                0xffff_8000_0000_0000,
                STACK_TOP - STACK_SIZE - PAGE_SIZE,
                0x7000_0000_0000,
                0x1000_0000,
            ],
        ),
        9 => pick(i, &[0, 1, 2, 3, 4, 5, 6, (-100i64) as u64, 1023, 1024, u64::from(u32::MAX), 7]),
        10 => PATHS_VA + (u64::from(i.u8()) % PATHS.len() as u64) * PATH_SLOT,
        11 => pick(
            i,
            &[
                0x22,       // MAP_PRIVATE | MAP_ANONYMOUS
                0x21,       // MAP_SHARED | MAP_ANONYMOUS
                0x32,       // ... | MAP_FIXED
                0x10_0022,  // ... | MAP_FIXED_NOREPLACE
                0x8022,     // ... | MAP_POPULATE
                0x2022,     // ... | MAP_LOCKED
                0x122,      // ... | MAP_GROWSDOWN
                0x4_0022,   // ... | MAP_HUGETLB
                0x3,        // MAP_SHARED_VALIDATE, PROT_READ | PROT_WRITE
                0x2,        // MAP_PRIVATE (a file), PROT_WRITE
                0x7,        // PROT_READ | PROT_WRITE | PROT_EXEC
                0x1,        // PROT_READ, MREMAP_MAYMOVE
                0x4,        // PROT_EXEC, MREMAP_DONTUNMAP
                0x42,       // O_RDWR | O_CREAT
                0x10000,    // O_DIRECTORY
                0x80242,    // O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC
                0x100_0000, // PROT_GROWSDOWN
            ],
        ),
        12 => DATA_VA + i.range(0, DATA_LEN - 64),
        _ => i.range(0, 64),
    }
}

/// A system-call number: mostly the table's, often a memory call, some
/// beyond it.
fn number(i: &mut Input<'_>) -> u64 {
    match i.u8() {
        b @ 0..=191 => TABLE[usize::from(b) % TABLE.len()].nr,
        b @ 192..=239 => MM_CALLS[usize::from(b) % MM_CALLS.len()],
        240..=253 => u64::from(i.u16()) % 1024,
        254 => i.u64(),
        255 => TABLE[usize::from(i.u8()) % TABLE.len()].nr,
    }
}

/// Runs one input.
pub fn linux_syscalls(data: &[u8]) {
    let m = Machine::new();
    let mut i = Input::new(data);
    let mut recent: Vec<u64> = Vec::new();
    let mut steps = 0;
    while !i.is_empty() && steps < MAX_STEPS {
        steps += 1;
        if i.u8() % 8 == 7 {
            // A store of the program's: it faults pages in as a `mov`
            // would (nothing else changes).
            let va = arg(&mut i, &recent);
            let bytes = i.bytes(64);
            let _ = m.hv.write_user(0, va, bytes);
            m.base.check_state("a store", &m.hv, &Snapshot::take(&m.base, &m.hv));
            continue;
        }
        let nr = number(&mut i);
        let mut a = [0u64; 6];
        for x in &mut a {
            *x = arg(&mut i, &recent);
        }
        let before = Snapshot::take(&m.base, &m.hv);
        let r0 = resident();
        let out = m.linux.syscall(&m.hv, 0, &Args { nr, a });
        let r1 = resident();
        m.flusher.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let after = Snapshot::take(&m.base, &m.hv);
        m.base.check_call(&m.hv, (nr, &a), &out, (&before, &after), (r0, r1));
        if out.effects.exit_group.is_some() || out.effects.exit_vcpu.is_some() || after.leaves() > LEAF_BOUND {
            break;
        }
        if matches!(nr, 9 | 12 | 25 | 30) && out.ret > 0 && recent.len() < 16 {
            recent.push(out.ret as u64);
        }
    }
    let Machine { hv, linux, base, .. } = m;
    base.check_teardown(&hv, linux);
}
