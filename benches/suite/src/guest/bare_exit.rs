//! The bare `KVM_RUN` exit loop: the floor that item 7a's trapped BAR
//! write is compared with.
//!
//! The machine is built from the VMM's own pieces (guest memory, the
//! kernel stub, the program loader, guest-mm mappings through the same
//! providers a guest `mmap` reaches, the same vCPU set-up), so the guest
//! runs the same code on the same kind of page tables. What is left out is
//! everything the VMM does per exit: no vCPU thread, no run control, no
//! shootdown bookkeeping, no exit counters, no bus, no device. The calling
//! thread runs `KVM_RUN` and re-enters on every MMIO exit without looking
//! at it; the difference between the two round trips is the VMM's dispatch
//! overhead.
//!
//! The guest's mappings (results area, BAR window) are made by the host
//! before the vCPU starts, because there is nobody to answer a hypercall.
//! The loop ends on the exit port; any other exit (an exception reaching
//! the stub's port, a triple fault) is an error, and so are more exits
//! than the caller allows, so a misbehaving guest cannot hang the bench.

use guest_mm::{GuestVirtAddr, MmapRequest, Placement, VmFlags};
use kvm_ioctls::VcpuExit;
use vm_memory::GuestAddress;

use super::programs::{FixedMap, EXIT_OK};
use super::session::{collect, guest_err, GuestResults};
use super::tsc;
use crate::error::BenchError;
use vmm::hosted::boot::install_kernel;
use vmm::hosted::mapper::Mapper;
use vmm::hosted::providers::Providers;
use vmm::hosted::stub::abi::{map, prot};
use vmm::layout::{user_stack_top, LOAD_PA, LOAD_SIZE, PAGE_SIZE};
use vmm::memory::{create_guest_memory, BootFrames};
use vmm::run::vm_exit::ExitCounts;
use vmm::vstate::port_exit::{Exit, PortData};
use vmm::vstate::vcpu::{Vcpu, VcpuSetup};
use vmm::vstate::vm::Vm;

/// The bare machine: memory size, BAR windows (none is backed: every
/// access exits), and the mappings the host makes for the guest.
#[derive(Clone, Debug)]
pub struct BareMachine {
    /// Guest RAM.
    pub mem_size: u64,
    /// Windows the guest may name by index (like `fd::BAR0 + i`).
    pub bars: Vec<devices::BarWindow>,
    /// Mappings made before the vCPU starts.
    pub maps: Vec<FixedMap>,
    /// Most exits the run may take.
    pub max_exits: u64,
}

fn vm_flags(p: u64) -> VmFlags {
    let mut f = VmFlags::empty();
    for (bit, flag) in [(prot::READ, VmFlags::READ), (prot::WRITE, VmFlags::WRITE), (prot::EXEC, VmFlags::EXEC)] {
        if p & bit != 0 {
            f |= flag;
        }
    }
    f
}

fn fail<'a, E: std::fmt::Display>(item: &'a str, what: &'static str) -> impl FnOnce(E) -> BenchError + 'a {
    move |e| guest_err(item, format!("bare exit loop: {what}: {e}"))
}

/// Runs `elf` on the bare machine and returns its results area.
pub fn run(item: &str, m: &BareMachine, elf: &[u8]) -> Result<GuestResults, BenchError> {
    let prog = vmm::guest::elf_program::parse(elf).map_err(fail(item, "the program"))?;
    let mem = create_guest_memory(m.mem_size).map_err(fail(item, "guest memory"))?;
    let mut mapper = Mapper::new(mem.clone()).map_err(fail(item, "page tables"))?;
    let kernel = install_kernel(&mem, &mut mapper, 1).map_err(fail(item, "kernel stub"))?;
    let mut frames = BootFrames::new(GuestAddress(LOAD_PA), GuestAddress(LOAD_PA + LOAD_SIZE));
    vmm::hosted::program::load(&prog, &mem, &mut frames, &mut mapper).map_err(fail(item, "loading"))?;
    vmm::hosted::program::map_stack(user_stack_top(0), &mem, &mut frames, &mut mapper).map_err(fail(item, "stack"))?;
    let providers = Providers::new(&mapper, &mem, &m.bars).map_err(fail(item, "providers"))?;
    for fm in &m.maps {
        let provider = providers.get(fm.handle).map_err(fail(item, "provider handle (errno)"))?;
        let addr = GuestVirtAddr::try_new(fm.addr).map_err(fail(item, "address"))?;
        let req = MmapRequest {
            addr: Some(addr),
            len: fm.len,
            prot: vm_flags(fm.prot),
            shared: fm.flags & map::SHARED != 0,
            placement: Placement::Fixed,
            pgoff: fm.off / PAGE_SIZE,
            pgoff_from_addr: false,
            extra: guest_mm::VmFlags::empty(),
        };
        let mapped = mapper.space_mut().mmap(provider.provider(), &req).map_err(fail(item, "mmap"))?;
        // Nothing was mapped there before and no vCPU runs yet.
        mapped.flush.ignore();
    }

    let (Some(&tss), Some(&kernel_gs_base)) = (kernel.tss.first(), kernel.kernel_gs.first()) else {
        return Err(guest_err(item, "bare exit loop: the kernel has no per-vCPU state for vCPU 0"));
    };
    let mut vm = Vm::new().map_err(fail(item, "VM"))?;
    vm.register_memory(&mem).map_err(fail(item, "memory slots"))?;
    let mut vcpu = Vcpu::new(&vm, 0).map_err(fail(item, "vCPU"))?;
    vcpu.configure(
        &vm,
        &VcpuSetup {
            cr3: mapper.cr3().0,
            entry: prog.entry,
            stack_top: user_stack_top(0),
            arg: 0,
            gdt: kernel.gdt,
            idt: kernel.idt,
            tss,
            lstar: kernel.stub.syscall_entry,
            kernel_gs_base,
            pat: guest_mm::PAT_MSR_VALUE,
        },
    )
    .map_err(fail(item, "vCPU set-up"))?;

    let exit_port = devices::legacy::EXIT_PORT;
    let t0 = tsc::now();
    let mut counts = ExitCounts::default();
    let status = loop {
        if counts.total >= m.max_exits {
            return Err(guest_err(item, format!("bare exit loop: more than {} exits", m.max_exits)));
        }
        let exit = match vcpu.run() {
            Ok(e) => e,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => return Err(fail(item, "KVM_RUN")(e)),
        };
        counts.total += 1;
        match exit {
            Exit::Other(VcpuExit::MmioWrite(..) | VcpuExit::MmioRead(..)) => counts.mmio += 1,
            Exit::Port(p) if p.port() == exit_port => match p.into_data() {
                PortData::Out(data) => {
                    counts.pio += 1;
                    break data.first().copied().unwrap_or(0xff);
                }
                PortData::In(_) => return Err(guest_err(item, "bare exit loop: the guest read the exit port")),
            },
            other => return Err(guest_err(item, format!("bare exit loop: unexpected exit {other:?}"))),
        }
    };
    let t1 = tsc::now();
    if u32::from(status) != EXIT_OK {
        return Err(guest_err(item, format!("bare exit loop: the guest's set-up step {status:#x} failed")));
    }
    collect(item, mem, vec![counts], (t0, t1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protections_become_vm_flags() {
        assert_eq!(vm_flags(prot::READ | prot::WRITE), VmFlags::READ | VmFlags::WRITE);
        assert_eq!(vm_flags(prot::EXEC), VmFlags::EXEC);
        assert_eq!(vm_flags(0), VmFlags::empty());
    }
}
