//! The KVM virtual machine: guest RAM and host windows as memory slots,
//! ioeventfds for doorbells, and the CPUID the vCPUs get.
//!
//! By default the VM has no in-kernel interrupt controller: nothing in the
//! VMM's own guests raises interrupts, and the TLB-shootdown NMI is
//! injected with `KVM_NMI`, which needs none. A guest kind that wants a PC
//! (raw kernels) asks for [`VmOptions::pc`]: the in-kernel PIC, IOAPIC and
//! local APICs, the PIT, and the identity-map page real mode needs on some
//! hosts.

use kvm_bindings::{kvm_userspace_memory_region, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, IoEventAddress, Kvm, VmFd};
use thiserror::Error;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::memory::{GuestMem, HostWindow};

use crate::layout::{IDENTITY_MAP_PA, KVM_TSS_PA, ZAP_SLOT_PA as ZAP_SLOT_GPA};

/// What the machine has beyond memory and vCPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmOptions {
    /// The in-kernel PIC, IOAPIC, local APICs and PIT, and the identity-map
    /// page (`KVM_CREATE_IRQCHIP`, `KVM_CREATE_PIT2`,
    /// `KVM_SET_IDENTITY_MAP_ADDR`). Application processors then wait for
    /// INIT/SIPI in KVM.
    pub pc: bool,
}

impl VmOptions {
    /// A PC: interrupt controllers and PIT in KVM.
    pub fn pc() -> Self {
        VmOptions { pc: true }
    }
}

/// Errors setting up the VM.
#[derive(Debug, Error)]
pub enum VmError {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm: {0}")]
    OpenKvm(#[source] kvm_ioctls::Error),
    /// A required KVM capability is missing.
    #[error("KVM lacks the {0} capability")]
    MissingCap(&'static str),
    /// `KVM_CREATE_VM` failed.
    #[error("cannot create the VM: {0}")]
    CreateVm(#[source] kvm_ioctls::Error),
    /// `KVM_SET_TSS_ADDR` failed.
    #[error("cannot set the TSS address: {0}")]
    TssAddr(#[source] kvm_ioctls::Error),
    /// `KVM_SET_USER_MEMORY_REGION` failed.
    #[error("cannot register memory slot {slot} at {gpa:#x} ({size:#x} bytes): {source}")]
    MemorySlot {
        /// Slot number.
        slot: u32,
        /// Guest-physical base.
        gpa: u64,
        /// Size.
        size: u64,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The zap slot's page could not be allocated.
    #[error("cannot allocate the zap slot: {0}")]
    ZapSlot(String),
    /// `KVM_IOEVENTFD` failed.
    #[error("cannot register an ioeventfd at {addr:#x}: {source}")]
    IoEvent {
        /// Guest-physical address.
        addr: u64,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Creating the in-kernel interrupt controller or PIT, or setting the
    /// identity-map address, failed.
    #[error("cannot create the {what}: {source}")]
    Pc {
        /// What.
        what: &'static str,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// `KVM_GET_SUPPORTED_CPUID` failed.
    #[error("cannot read the supported CPUID: {0}")]
    Cpuid(#[source] kvm_ioctls::Error),
}

/// One KVM VM.
#[derive(Debug)]
pub struct Vm {
    fd: VmFd,
    cpuid: CpuId,
    options: VmOptions,
    next_slot: u32,
    zap: Option<(u32, vm_memory::MmapRegion)>,
    /// Serializes zaps: the slot is created and deleted as one step.
    zap_lock: std::sync::Mutex<()>,
}

impl Vm {
    /// Opens KVM and creates a VM with no memory yet.
    pub fn new() -> Result<Self, VmError> {
        Self::with_options(VmOptions::default())
    }

    /// [`Vm::new`] with `options`.
    pub fn with_options(options: VmOptions) -> Result<Self, VmError> {
        let kvm = Kvm::new().map_err(VmError::OpenKvm)?;
        for (cap, name) in [
            (Cap::UserMemory, "user memory"),
            (Cap::Ioeventfd, "ioeventfd"),
            (Cap::SetTssAddr, "set TSS address"),
            (Cap::ExtCpuid, "extended CPUID"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(VmError::MissingCap(name));
            }
        }
        let fd = kvm.create_vm().map_err(VmError::CreateVm)?;
        fd.set_tss_address(KVM_TSS_PA as usize).map_err(VmError::TssAddr)?;
        let mut cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(VmError::Cpuid)?;
        if options.pc {
            for (cap, name) in
                [(Cap::Irqchip, "irqchip"), (Cap::Pit2, "PIT"), (Cap::SetIdentityMapAddr, "identity map")]
            {
                if !kvm.check_extension(cap) {
                    return Err(VmError::MissingCap(name));
                }
            }
            let pc = |what| move |source| VmError::Pc { what, source };
            fd.set_identity_map_address(IDENTITY_MAP_PA).map_err(pc("identity map"))?;
            fd.create_irq_chip().map_err(pc("in-kernel interrupt controller"))?;
            let pit = kvm_bindings::kvm_pit_config { flags: kvm_bindings::KVM_PIT_SPEAKER_DUMMY, ..Default::default() };
            fd.create_pit2(pit).map_err(pc("PIT"))?;
            // KVM emulates the TSC-deadline timer in its local APIC but
            // does not list it in the supported CPUID.
            if kvm.check_extension(Cap::TscDeadlineTimer) {
                for e in cpuid.as_mut_slice().iter_mut().filter(|e| e.function == 1) {
                    e.ecx |= 1 << 24;
                }
            }
        }
        Ok(Vm { fd, cpuid, options, next_slot: 0, zap: None, zap_lock: std::sync::Mutex::new(()) })
    }

    /// Prepares the one-page slot [`Vm::zap_shadow_mappings`] toggles: its
    /// backing page and its slot number. The slot is not registered: it
    /// exists only inside a zap, so the guest never has a page of the
    /// VMM's at [`ZAP_SLOT_GPA`] (an access there is an access to nothing,
    /// as anywhere else outside RAM and the windows).
    pub fn add_zap_slot(&mut self) -> Result<(), VmError> {
        let region = vm_memory::MmapRegion::new(4096).map_err(|e| VmError::ZapSlot(e.to_string()))?;
        let slot = self.next_slot;
        self.next_slot += 1;
        self.zap = Some((slot, region));
        Ok(())
    }

    /// Makes KVM drop every translation it derived from the guest's page
    /// tables, on every vCPU, before returning: creates and deletes a
    /// one-page memory slot (deleting a slot zaps all shadow pages and
    /// makes every vCPU reload its roots). Between the two calls the slot
    /// exists at [`ZAP_SLOT_GPA`], above RAM; only hosted guests zap, and
    /// their page tables (the VMM's) never map that address. A raw kernel
    /// never zaps, so it never sees the slot.
    ///
    /// KVM learns about page-table writes the *guest* makes; the VMM writes
    /// the tables from outside, which a shadow-paging KVM backend never
    /// sees, so an `invlpg` in the guest does not help there. This does.
    pub fn zap_shadow_mappings(&self) -> Result<(), VmError> {
        let Some((slot, region)) = &self.zap else { return Ok(()) };
        let _one_at_a_time = self.zap_lock.lock().unwrap_or_else(|e| e.into_inner());
        for size in [4096, 0] {
            let r = kvm_userspace_memory_region {
                slot: *slot,
                flags: 0,
                guest_phys_addr: ZAP_SLOT_GPA,
                memory_size: size,
                userspace_addr: region.as_ptr() as u64,
            };
            // SAFETY: the region is owned by `self` and outlives the slot
            // (which is deleted again before this returns); the slot
            // number was reserved for the zap slot, no other slot uses it.
            unsafe { self.fd.set_user_memory_region(r) }.map_err(|source| VmError::MemorySlot {
                slot: *slot,
                gpa: ZAP_SLOT_GPA,
                size,
                source,
            })?;
        }
        Ok(())
    }

    /// The VM fd (to create vCPUs).
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// What the machine was created with.
    pub fn options(&self) -> VmOptions {
        self.options
    }

    /// The CPUID every vCPU gets: at first the one KVM supports.
    pub fn cpuid(&self) -> &CpuId {
        &self.cpuid
    }

    /// The CPUID every vCPU gets, to edit before the vCPUs are configured
    /// (a kind's CPU model, [`super::cpu_model`]).
    pub fn cpuid_mut(&mut self) -> &mut CpuId {
        &mut self.cpuid
    }

    /// Registers every region of guest RAM as a memory slot.
    pub fn register_memory(&mut self, mem: &GuestMem) -> Result<(), VmError> {
        for region in mem.iter() {
            let host = region.as_ptr() as u64;
            self.add_slot(region.start_addr().0, region.len(), host)?;
        }
        Ok(())
    }

    /// Registers a passed-through BAR window: guest accesses hit the host
    /// mapping directly and never exit.
    pub fn register_window(&mut self, w: &HostWindow) -> Result<(), VmError> {
        self.add_slot(w.gpa().0, w.size(), w.host_addr())
    }

    fn add_slot(&mut self, gpa: u64, size: u64, host: u64) -> Result<(), VmError> {
        let slot = self.next_slot;
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: host,
        };
        // SAFETY: `host..host + size` is a live mapping owned by guest
        // memory or a `HostWindow`, both of which the VMM keeps alive for
        // as long as the VM (and so the slot) exists. The slot number is
        // fresh, so no existing slot is replaced.
        unsafe { self.fd.set_user_memory_region(region) }.map_err(|source| VmError::MemorySlot {
            slot,
            gpa,
            size,
            source,
        })?;
        self.next_slot += 1;
        Ok(())
    }

    /// Makes a signal on `evt` raise (pulse) interrupt line `gsi`
    /// (in-kernel irqchip only).
    pub fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> Result<(), VmError> {
        self.fd.register_irqfd(evt, gsi).map_err(|source| VmError::Pc { what: "irqfd", source })
    }

    /// Leaves the PICs as a PC BIOS hands them over: initialized, master
    /// vectors 0x08.., slave 0x70.., `unmasked` lines open (and the
    /// cascade). Needs [`VmOptions::pc`].
    pub fn pic_bios_handoff(&self, unmasked: u16) -> Result<(), VmError> {
        for (chip, base, mask) in [
            (kvm_bindings::KVM_IRQCHIP_PIC_MASTER, 0x08u8, !((unmasked as u8) | 1 << 2)),
            (kvm_bindings::KVM_IRQCHIP_PIC_SLAVE, 0x70u8, !((unmasked >> 8) as u8)),
        ] {
            let mut c = kvm_bindings::kvm_irqchip { chip_id: chip, ..Default::default() };
            self.fd.get_irqchip(&mut c).map_err(|source| VmError::Pc { what: "PIC state (read)", source })?;
            // SAFETY: the chip id is a PIC, so `pic` is the member KVM filled.
            let mut pic = unsafe { c.chip.pic };
            pic.irq_base = base;
            pic.imr = mask;
            pic.init_state = 0;
            pic.init4 = 1;
            pic.auto_eoi = 0;
            c.chip.pic = pic;
            self.fd.set_irqchip(&c).map_err(|source| VmError::Pc { what: "PIC state", source })?;
        }
        Ok(())
    }

    /// Makes a guest write of any size to MMIO address `addr` signal `evt`
    /// inside KVM, without an exit to the VMM.
    pub fn register_ioevent(&self, evt: &EventFd, addr: GuestAddress) -> Result<(), VmError> {
        self.fd
            .register_ioevent(evt, &IoEventAddress::Mmio(addr.0), kvm_ioctls::NoDatamatch)
            .map_err(|source| VmError::IoEvent { addr: addr.0, source })
    }
}
