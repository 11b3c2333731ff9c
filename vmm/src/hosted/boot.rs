//! Installs the guest's kernel side: GDT, IDT, per-vCPU TSS and stacks,
//! and the stub code, written into the VMM-reserved kernel region and
//! mapped supervisor-only in the upper half through guest-mm.

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};

use crate::hosted::arch::gdt::{self, tss_selector, Segment, KERNEL_CS};
use crate::hosted::arch::idt::{self, EXCEPTION_VECTORS};
use crate::hosted::arch::tss::{Tss, UserPorts, TSS_SIZE};
use crate::hosted::mapper::{Access, Mapper};
use crate::hosted::stub::abi::{HCALL_PORT, HCALL_VECTOR, KERNEL_PORTS};
use crate::hosted::stub::KernelStub;
use crate::layout::{self, kernel_va, percpu, percpu_pa, GDT_PA, IDT_PA, PAGE_SIZE, PERCPU_SIZE, STUB_PA, STUB_SIZE};
use crate::memory::GuestMem;

/// Errors installing the kernel.
#[derive(Debug, Error)]
pub enum BootError {
    /// Too many vCPUs for the layout.
    #[error("{0} vCPUs requested; the layout has room for 1..={max}", max = layout::MAX_VCPUS)]
    TooManyVcpus(u8),
    /// The stub is larger than its slot.
    #[error("the kernel stub is {0} bytes, more than its slot")]
    StubTooLarge(usize),
    /// Writing a structure into guest memory failed.
    #[error("cannot write the {what} at {pa:#x}")]
    Write {
        /// Which structure.
        what: &'static str,
        /// Guest-physical address.
        pa: u64,
    },
    /// guest-mm refused a kernel mapping.
    #[error("cannot map the {what}: {source}")]
    Map {
        /// Which structure.
        what: &'static str,
        /// The error.
        #[source]
        source: guest_mm::MmError,
    },
}

/// Which I/O ports a hosted guest's user mode may use (a kind's choice,
/// [`crate::guest::kind::GuestKind::user_ports`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PortAccess {
    /// Every port except the kernel stub's: the serial port, the exit
    /// port, anything on the port bus.
    #[default]
    AllButKernel,
    /// Only the hypercall port, for a user-mode `syscall` trampoline
    /// (`vstate::backend::SyscallEntry::User`): an `out` there is the
    /// same as a `syscall`; any other port access is a #GP.
    HypercallOnly,
    /// None: an `in` or `out` is a #GP, which the kind sees as a fault.
    None,
}

/// What vCPUs need to know about the installed kernel.
#[derive(Clone, Debug)]
pub struct KernelImage {
    /// The stub and its addresses.
    pub stub: KernelStub,
    /// GDT virtual base and limit.
    pub gdt: (u64, u16),
    /// IDT virtual base and limit.
    pub idt: (u64, u16),
    /// Per-vCPU TSS segments.
    pub tss: Vec<Segment>,
    /// Per-vCPU kernel scratch (IA32_KERNEL_GS_BASE).
    pub kernel_gs: Vec<u64>,
}

fn write(mem: &GuestMem, what: &'static str, pa: u64, bytes: &[u8]) -> Result<(), BootError> {
    mem.write_slice(bytes, GuestAddress(pa)).map_err(|_| BootError::Write { what, pa })
}

fn words(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes and maps the kernel for `nr_vcpus` vCPUs whose user mode may
/// use every port but the kernel stub's (the VMM's own ABI).
pub fn install_kernel(mem: &GuestMem, mapper: &mut Mapper, nr_vcpus: u8) -> Result<KernelImage, BootError> {
    install_kernel_with(mem, mapper, nr_vcpus, PortAccess::AllButKernel)
}

/// Writes and maps the kernel for `nr_vcpus` vCPUs whose user mode gets
/// the ports `ports` says (the kernel stub's ports are never among them).
pub fn install_kernel_with(
    mem: &GuestMem,
    mapper: &mut Mapper,
    nr_vcpus: u8,
    ports: PortAccess,
) -> Result<KernelImage, BootError> {
    if nr_vcpus == 0 || nr_vcpus > layout::MAX_VCPUS {
        return Err(BootError::TooManyVcpus(nr_vcpus));
    }
    // The bytes assembled for this address (`kernel_va(STUB_PA)`, checked
    // by the stub's unit test) when its source last changed, not
    // assembled again per launch.
    let stub = KernelStub::prebuilt();
    if stub.code.len() as u64 > STUB_SIZE {
        return Err(BootError::StubTooLarge(stub.code.len()));
    }
    write(mem, "kernel stub", STUB_PA, &stub.code)?;

    let mut tss = Vec::new();
    let mut kernel_gs = Vec::new();
    for i in 0..nr_vcpus {
        let base = percpu_pa(i);
        let t = Tss {
            rsp0: kernel_va(base + percpu::RSP0_TOP),
            ist: [
                kernel_va(base + percpu::IST_EXC_TOP),
                kernel_va(base + percpu::IST_NMI_TOP),
                kernel_va(base + percpu::IST_DF_TOP),
                0,
                0,
                0,
                0,
            ],
            ports: match ports {
                PortAccess::AllButKernel => UserPorts::AllBut(vec![KERNEL_PORTS]),
                PortAccess::HypercallOnly => UserPorts::Only(HCALL_PORT),
                PortAccess::None => UserPorts::None,
            },
        };
        write(mem, "TSS", base + percpu::TSS, &t.to_bytes())?;
        tss.push(Segment::tss(tss_selector(i), kernel_va(base + percpu::TSS), TSS_SIZE as u32));
        kernel_gs.push(kernel_va(base + percpu::SCRATCH));
    }

    let gdt_words = gdt::build(&tss);
    write(mem, "GDT", GDT_PA, &words(&gdt_words))?;
    let gdt_limit = (gdt_words.len() * 8 - 1) as u16;

    let mut idt_words = Vec::with_capacity(EXCEPTION_VECTORS * 2);
    for v in 0..EXCEPTION_VECTORS as u8 {
        let handler = if v == idt::NMI_VECTOR { stub.nmi_entry } else { stub.exception_entries[v as usize] };
        idt_words.extend(idt::gate(handler, KERNEL_CS, idt::ist_for(v), idt::dpl_for(v)));
    }
    // Vectors 32..0x80 are not present (an `int n` there is a #NP);
    // 0x80 is the hypercall gate, open to user mode, on the RSP0 stack.
    idt_words.resize(usize::from(HCALL_VECTOR) * 2, 0);
    idt_words.extend(idt::gate(stub.int80_entry, KERNEL_CS, 0, 3));
    write(mem, "IDT", IDT_PA, &words(&idt_words))?;
    let idt_limit = (idt_words.len() * 8 - 1) as u16;

    let map = |m: &mut Mapper, what, pa: u64, len: u64, access| {
        let va = guest_mm::GuestVirtAddr::try_new(kernel_va(pa)).map_err(|source| BootError::Map { what, source })?;
        m.map_kernel(va, vm_memory::GuestAddress(pa), len, access).map_err(|source| BootError::Map { what, source })
    };
    map(mapper, "GDT and IDT", GDT_PA, 2 * PAGE_SIZE, Access::RW)?;
    map(mapper, "kernel stub", STUB_PA, STUB_SIZE, Access::RX)?;
    map(mapper, "per-vCPU areas", percpu_pa(0), u64::from(nr_vcpus) * PERCPU_SIZE, Access::RW)?;

    Ok(KernelImage { stub, gdt: (kernel_va(GDT_PA), gdt_limit), idt: (kernel_va(IDT_PA), idt_limit), tss, kernel_gs })
}
