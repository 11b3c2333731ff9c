//! The hypercall target: sequences of hypercalls with arbitrary registers
//! from two vCPUs, and guest stores into whatever the guest may write,
//! dispatched on a guest built as `vmm run` builds one (kernel, program
//! image, stacks, providers, two BAR windows) but without KVM: a recording
//! flusher stands in for the shootdown.
//!
//! After every call `hypercall_check` walks the page tables on its own and
//! checks what `docs/guest-abi.md` promises (see there); at the end
//! everything the guest mapped is unmapped and the table, pool and
//! map-count figures must be back where they started.

use std::sync::Arc;

use devices::BarWindow;
use vm_memory::GuestAddress;
use vmm::hosted::boot::install_kernel;
use vmm::hosted::hypercall::{Args, ConsoleOut, HostedKernel, ReportLog};
use vmm::hosted::mapper::Mapper;
use vmm::hosted::program::{load, map_stack, Program, Segment};
use vmm::hosted::providers::Providers;
use vmm::hosted::stub::abi::{fd, map, nr};
use vmm::hosted::tlb::RecordingFlusher;
use vmm::layout::{
    user_stack_top, DEFAULT_BAR_BASE, FREE_PA, HUGE_PA, KERNEL_VA, LOAD_PA, LOAD_SIZE, MIN_MEM_SIZE, PAGE_SIZE,
    POOL_PA, TABLES_PA,
};
use vmm::memory::{create_guest_memory, BootFrames};
use vmm::run::vm_exit::ExitCounters;

use super::hypercall_check::{Baseline, Snapshot};
use crate::input::Input;

/// Most hypercalls (and stores) one input makes.
const MAX_STEPS: usize = 48;
/// The program's code and data.
const CODE_VA: u64 = 0x40_0000;
const DATA_VA: u64 = 0x60_0000;
/// BAR windows, as the defaults: trapped, then another.
const BAR_SIZE: u64 = 0x1_0000;

/// The guest and what the checks need to see it independently.
pub(super) struct Machine {
    pub hv: HostedKernel,
    pub flusher: Arc<RecordingFlusher>,
    pub base: Baseline,
}

impl Machine {
    /// Guest memory, the kernel, the providers and two BAR windows; the
    /// user half is empty until [`Machine::populate`].
    fn new() -> Machine {
        let mem = create_guest_memory(MIN_MEM_SIZE).expect("guest memory");
        let mut mapper = Mapper::new(mem.clone()).expect("address space");
        install_kernel(&mem, &mut mapper, 2).expect("kernel");
        let kernel_tables = mapper.space().stats().tables_in_use;
        let bars = [
            BarWindow::uncached(GuestAddress(DEFAULT_BAR_BASE), BAR_SIZE),
            BarWindow::uncached(GuestAddress(DEFAULT_BAR_BASE + BAR_SIZE), BAR_SIZE),
        ];
        let providers = Providers::new(&mapper, &mem, &bars).expect("providers");
        let cr3 = mapper.cr3();
        let flusher = Arc::new(RecordingFlusher::default());
        let hv = HostedKernel::new(
            mem.clone(),
            mapper,
            providers,
            flusher.clone(),
            ConsoleOut::new(Box::new(std::io::sink())),
            ReportLog::default(),
            (0..2).map(|_| Arc::new(ExitCounters::default())).collect(),
        );
        let base = Baseline::new(&hv, (mem, MIN_MEM_SIZE), cr3, kernel_tables, &bars);
        Machine { hv, flusher, base }
    }

    /// Loads the program image and the two stacks, as `vmm run` does.
    fn populate(&self) {
        let prog = Program {
            segments: vec![
                Segment { va: CODE_VA, bytes: vec![0xf4; 64], mem_len: 2 * PAGE_SIZE, write: false, exec: true },
                Segment { va: DATA_VA, bytes: b"hello".to_vec(), mem_len: 4 * PAGE_SIZE, write: true, exec: false },
            ],
            entry: CODE_VA,
        };
        let mut frames = BootFrames::new(GuestAddress(LOAD_PA), GuestAddress(LOAD_PA + LOAD_SIZE));
        let mut mapper = self.hv.mapper();
        load(&prog, &self.base.mem, &mut frames, &mut mapper).expect("program");
        for i in 0..2 {
            map_stack(user_stack_top(i), &self.base.mem, &mut frames, &mut mapper).expect("stack");
        }
    }
}

thread_local! {
    /// The machine between inputs: building one costs ~50 ms (the providers
    /// fill 16 MiB of patterns), so each input starts from the previous
    /// one's, whose teardown checked that every table, pool page, map count
    /// and VMA the guest took was given back. A panicking input drops it.
    static MACHINE: std::cell::RefCell<Option<Machine>> = const { std::cell::RefCell::new(None) };
}

/// Picks an argument value from a family that matters somewhere in the
/// ABI, or a raw one.
fn arg(i: &mut Input<'_>, recent: &[u64]) -> u64 {
    let pick = |i: &mut Input<'_>, list: &[u64]| list[i.range(0, list.len() as u64) as usize];
    match i.u8() % 12 {
        0 => i.u64(),
        1 => u64::from(i.u8()),
        2 => i.range(1, 64) * PAGE_SIZE,
        3 => i.range(1, 5) * (2 << 20),
        4 => {
            let base = if recent.is_empty() { DATA_VA } else { pick(i, recent) };
            base.wrapping_add(i.range(0, 16) * PAGE_SIZE)
        }
        5 => pick(
            i,
            &[
                0,
                CODE_VA,
                DATA_VA,
                user_stack_top(0) - PAGE_SIZE,
                user_stack_top(1) - 0x1_0000,
                0x1000_0000,
                0x4000_0000,
                (1 << 47) - PAGE_SIZE,
                1 << 47,
                KERNEL_VA,
                0xffff_8000_0000_0000,
                !(PAGE_SIZE - 1),
            ],
        ),
        6 => i.range(0, 9),
        7 => pick(
            i,
            &[
                map::PRIVATE | map::ANONYMOUS,
                map::SHARED,
                map::PRIVATE,
                map::SHARED | map::FIXED,
                map::PRIVATE | map::FIXED | map::ANONYMOUS,
                map::PRIVATE | map::FIXED_NOREPLACE | map::ANONYMOUS,
                map::SHARED | map::FIXED_NOREPLACE,
                map::SHARED | map::PRIVATE,
                map::PRIVATE | map::FIXED,
                0x40,
            ],
        ),
        8 => pick(
            i,
            &[
                fd::GUEST_RAM,
                fd::ZERO,
                fd::PAGE_BUFFER,
                fd::HUGE,
                fd::BAR0,
                fd::BAR0 + 1,
                fd::BAR0 + 5,
                fd::BAR_REGION0,
                fd::BAR_REGION0 + 1,
                fd::END - 1,
                fd::END,
                0,
            ],
        ),
        9 => pick(
            i,
            &[0, PAGE_SIZE, TABLES_PA, POOL_PA, LOAD_PA, HUGE_PA, FREE_PA, MIN_MEM_SIZE - PAGE_SIZE, MIN_MEM_SIZE],
        )
        .wrapping_add(i.range(0, 16) * PAGE_SIZE),
        10 => i.range(0, 32) * PAGE_SIZE,
        _ => {
            let base = if recent.is_empty() { DATA_VA } else { pick(i, recent) };
            base.wrapping_add(i.range(1, 4096))
        }
    }
}

fn number(i: &mut Input<'_>) -> u64 {
    const NRS: [u64; 14] = [
        nr::MMAP,
        nr::MMAP,
        nr::MMAP,
        nr::MUNMAP,
        nr::MUNMAP,
        nr::MPROTECT,
        nr::MPROTECT,
        nr::WRITE,
        nr::TRANSLATE,
        nr::EXPECT_FAULT,
        nr::EXIT_COUNT,
        nr::REPORT,
        nr::VCPU_ID,
        nr::EXIT,
    ];
    match i.u8() {
        0xff => i.u64(),
        0xfe => nr::EXIT_GROUP,
        b => NRS[b as usize % NRS.len()],
    }
}

/// Guest stores: bytes written through user-writable translations only,
/// as the guest's own `mov`s would (nothing is written if any byte is not).
/// The CPU's walks set the Accessed bits of the pages written.
fn store(m: &Machine, va: u64, bytes: &[u8]) {
    if m.hv.copy_to_user(va, bytes).is_ok() {
        m.base.touch(va);
        m.base.touch(va.saturating_add(bytes.len().saturating_sub(1) as u64));
    }
}

/// Runs one input.
pub fn hypercalls(data: &[u8]) {
    let m = MACHINE.with(|c| c.borrow_mut().take()).unwrap_or_else(Machine::new);
    m.populate();
    let mut i = Input::new(data);
    let mut recent: Vec<u64> = Vec::new();
    let mut steps = 0;
    while !i.is_empty() && steps < MAX_STEPS {
        steps += 1;
        if i.u8() % 8 == 7 {
            let va = arg(&mut i, &recent);
            let bytes = i.bytes(64);
            store(&m, va, bytes);
            continue;
        }
        let vcpu = i.u8() & 1;
        let nr = number(&mut i);
        let mut a = [0u64; 6];
        for x in &mut a {
            *x = arg(&mut i, &recent);
        }
        let before = Snapshot::take(&m.base, &m.hv);
        let out = m.hv.dispatch(vcpu, &Args { nr, a });
        let flushed = std::mem::take(&mut *m.flusher.0.lock().unwrap_or_else(|e| e.into_inner()));
        let after = Snapshot::take(&m.base, &m.hv);
        m.base.check_call(&m.hv, nr, &out, &before, &after, &flushed);
        if nr == nr::MMAP && out.ret > 0 && recent.len() < 16 {
            recent.push(out.ret as u64);
        }
    }
    m.base.check_teardown(&m.hv, &m.flusher);
    MACHINE.with(|c| *c.borrow_mut() = Some(m));
}
