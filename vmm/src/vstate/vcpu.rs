//! One vCPU: creation, long-mode register setup straight into CPL 3, and
//! the thin KVM calls the run loop uses.
//!
//! The vCPU starts in 64-bit user mode at the program entry: CS/SS are the
//! user selectors, TR is this vCPU's TSS, CR3 is the root guest-mm built.
//! Nothing runs at CPL 0 until the first exception, `syscall` or NMI.
//!
//! Registers cross at each exit through `kvm_run`'s synced-register area
//! (`KVM_CAP_SYNC_REGS`) where KVM has it: KVM stores the general and
//! system registers there as the vCPU exits and loads the general ones
//! marked dirty as it enters, so a hypercall or a page fault costs one
//! `KVM_RUN` instead of `KVM_RUN` + `KVM_GET_REGS` (+ `KVM_GET_SREGS` for
//! CR2) + `KVM_SET_REGS`. Without the capability, and before the first
//! run, the same methods use the ioctls.
//!
//! A raw multiboot kernel instead starts in 32-bit protected mode at CPL 0
//! ([`Vcpu::configure_protected32`]); its application processors are left
//! in KVM's reset state, waiting for INIT/SIPI from the in-kernel APIC.

use kvm_bindings::{kvm_dtable, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_run, kvm_segment, Msrs};
use kvm_ioctls::{Cap, SyncReg, VcpuExit, VcpuFd};
use thiserror::Error;

use super::port_exit::{Exit, PortExit};
use super::vm::Vm;
use crate::hosted::arch::gdt::{Segment, FIXED_SEGMENTS, STAR, USER_CS, USER_DS};
use crate::hosted::arch::regs::{self, msr};

/// Errors creating or configuring a vCPU.
#[derive(Debug, Error)]
pub enum VcpuError {
    /// `KVM_CREATE_VCPU` failed.
    #[error("cannot create vCPU {index}: {source}")]
    Create {
        /// vCPU index.
        index: u8,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// A register-setting ioctl failed.
    #[error("cannot set {what} of vCPU {index}: {source}")]
    Set {
        /// What was being set.
        what: &'static str,
        /// vCPU index.
        index: u8,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// KVM accepted fewer MSRs than given.
    #[error("vCPU {index}: KVM accepted {set} of {wanted} MSRs")]
    Msrs {
        /// vCPU index.
        index: u8,
        /// MSRs set.
        set: usize,
        /// MSRs given.
        wanted: usize,
    },
    /// A real-mode start address that is 0 or not below 1 MiB.
    #[error("{0:#x} is not a real-mode address (0 < vector < 1 MiB)")]
    RealModeVector(u32),
}

/// Where a vCPU starts and what its system registers point at.
#[derive(Clone, Debug)]
pub struct VcpuSetup {
    /// Page-table root (from guest-mm).
    pub cr3: u64,
    /// First user instruction.
    pub entry: u64,
    /// Initial user stack pointer.
    pub stack_top: u64,
    /// Initial `rdi` (the vCPU index, so a guest knows who it is).
    pub arg: u64,
    /// GDT virtual base and limit.
    pub gdt: (u64, u16),
    /// IDT virtual base and limit.
    pub idt: (u64, u16),
    /// This vCPU's TSS segment.
    pub tss: Segment,
    /// `syscall` entry (IA32_LSTAR).
    pub lstar: u64,
    /// This vCPU's kernel scratch (IA32_KERNEL_GS_BASE).
    pub kernel_gs_base: u64,
    /// IA32_PAT.
    pub pat: u64,
}

/// The `size` field of `kvm_run`'s `io` member after a `KVM_EXIT_IO`.
fn io_size(run: *const kvm_run) -> usize {
    // SAFETY: `run` points at this vCPU's `kvm_run` mapping, which lives as
    // long as the vCPU (the caller holds `&mut Vcpu`). The exit reason is
    // KVM_EXIT_IO (the caller only asks then), so `io` is the active union
    // member; `size` is a plain byte in the header, disjoint from the data
    // area `kvm-ioctls` lent out (it starts `data_offset` bytes in, past
    // the header). A volatile read: the kernel wrote it behind our back.
    let size = unsafe { std::ptr::read_volatile(&raw const (*run).__bindgen_anon_1.io.size) };
    usize::from(size)
}

/// Size of the legacy (`fxsave`) region of the FPU state.
pub const FX_SIZE: usize = 512;

/// A KVM vCPU.
#[derive(Debug)]
pub struct Vcpu {
    index: u8,
    fd: VcpuFd,
    /// KVM stores the registers in `kvm_run` at every exit.
    synced: bool,
    /// The synced area holds this vCPU's registers: a `KVM_RUN` has
    /// returned since the last register write by ioctl.
    fresh: std::cell::Cell<bool>,
}

impl Vcpu {
    /// Creates vCPU `index` of `vm`, with the synced-register area on
    /// where KVM has it (`VMM_NO_SYNC_REGS=1` turns it off, to measure
    /// the difference).
    pub fn new(vm: &Vm, index: u8) -> Result<Self, VcpuError> {
        let mut fd = vm.fd().create_vcpu(u64::from(index)).map_err(|source| VcpuError::Create { index, source })?;
        let off = std::env::var_os("VMM_NO_SYNC_REGS").is_some_and(|v| v == "1");
        let synced = !off && vm.fd().check_extension(Cap::SyncRegs);
        if synced {
            fd.set_sync_valid_reg(SyncReg::Register);
            fd.set_sync_valid_reg(SyncReg::SystemRegister);
        }
        Ok(Vcpu { index, fd, synced, fresh: std::cell::Cell::new(false) })
    }

    /// Whether registers cross through `kvm_run` (`KVM_CAP_SYNC_REGS`).
    pub fn synced_regs(&self) -> bool {
        self.synced
    }

    /// The vCPU index.
    pub fn index(&self) -> u8 {
        self.index
    }

    fn set_err(&self, what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VcpuError + '_ {
        move |source| VcpuError::Set { what, index: self.index, source }
    }

    /// Gives the vCPU the VM's CPUID with its own APIC IDs.
    pub fn set_cpuid(&self, vm: &Vm) -> Result<(), VcpuError> {
        let mut cpuid = vm.cpuid().clone();
        for e in cpuid.as_mut_slice() {
            match e.function {
                // Initial APIC ID.
                1 => e.ebx = (e.ebx & 0x00ff_ffff) | (u32::from(self.index) << 24),
                // x2APIC ID.
                0xb | 0x1f => e.edx = u32::from(self.index),
                _ => {}
            }
        }
        self.fd.set_cpuid2(&cpuid).map_err(self.set_err("CPUID"))
    }

    /// The multiboot v1 entry state: 32-bit protected mode at CPL 0, flat
    /// 4 GiB code and data segments, paging and interrupts off, EAX the
    /// boot magic, EBX the information block, EIP `entry`. GDTR and IDTR
    /// are left as KVM reset them: the kernel must load its own.
    pub fn configure_protected32(&self, vm: &Vm, entry: u32, eax: u32, ebx: u32) -> Result<(), VcpuError> {
        self.set_cpuid(vm)?;
        let mut sregs = self.fd.get_sregs().map_err(self.set_err("system registers (read)"))?;
        let flat = |selector: u16, type_: u8| kvm_segment {
            base: 0,
            limit: 0xffff_ffff,
            selector,
            type_,
            present: 1,
            dpl: 0,
            db: 1,
            s: 1,
            l: 0,
            g: 1,
            avl: 0,
            unusable: 0,
            padding: 0,
        };
        // Execute/read accessed; read/write accessed.
        sregs.cs = flat(0x08, 0xb);
        let data = flat(0x10, 0x3);
        sregs.ds = data;
        sregs.es = data;
        sregs.fs = data;
        sregs.gs = data;
        sregs.ss = data;
        sregs.cr0 = regs::CR0_PE | regs::CR0_ET;
        sregs.cr3 = 0;
        sregs.cr4 = 0;
        sregs.efer = 0;
        self.fd.set_sregs(&sregs).map_err(self.set_err("system registers"))?;
        let r = kvm_regs {
            rip: u64::from(entry),
            rax: u64::from(eax),
            rbx: u64::from(ebx),
            rflags: 2,
            ..Default::default()
        };
        self.fresh.set(false);
        self.fd.set_regs(&r).map_err(self.set_err("registers"))
    }

    /// Loads CPUID, MSRs, system and general registers for `setup`.
    pub fn configure(&self, vm: &Vm, setup: &VcpuSetup) -> Result<(), VcpuError> {
        self.set_cpuid(vm)?;

        let entries = [
            (msr::STAR, STAR),
            (msr::LSTAR, setup.lstar),
            (msr::CSTAR, 0),
            (msr::SFMASK, regs::SFMASK),
            (msr::FS_BASE, 0),
            (msr::GS_BASE, 0),
            (msr::KERNEL_GS_BASE, setup.kernel_gs_base),
            (msr::PAT, setup.pat),
        ];
        let list: Vec<kvm_msr_entry> =
            entries.iter().map(|&(index, data)| kvm_msr_entry { index, data, ..Default::default() }).collect();
        let msrs =
            Msrs::from_entries(&list).map_err(|_| VcpuError::Msrs { index: self.index, set: 0, wanted: list.len() })?;
        let set = self.fd.set_msrs(&msrs).map_err(self.set_err("MSRs"))?;
        if set != list.len() {
            return Err(VcpuError::Msrs { index: self.index, set, wanted: list.len() });
        }

        let mut sregs = self.fd.get_sregs().map_err(self.set_err("system registers (read)"))?;
        let user_code = FIXED_SEGMENTS[3].to_kvm();
        let user_data = FIXED_SEGMENTS[2].to_kvm();
        debug_assert_eq!((user_code.selector, user_data.selector), (USER_CS, USER_DS));
        sregs.cs = user_code;
        sregs.ss = user_data;
        sregs.ds = user_data;
        sregs.es = user_data;
        sregs.fs = user_data;
        sregs.gs = user_data;
        sregs.tr = setup.tss.to_kvm();
        sregs.ldt = kvm_segment { unusable: 1, ..Default::default() };
        sregs.gdt = kvm_dtable { base: setup.gdt.0, limit: setup.gdt.1, ..Default::default() };
        sregs.idt = kvm_dtable { base: setup.idt.0, limit: setup.idt.1, ..Default::default() };
        sregs.cr0 = regs::CR0;
        sregs.cr3 = setup.cr3;
        sregs.cr4 = regs::CR4;
        sregs.efer = regs::EFER;
        self.fd.set_sregs(&sregs).map_err(self.set_err("system registers"))?;

        let fpu = kvm_fpu { fcw: regs::FPU_FCW, mxcsr: regs::MXCSR, ..Default::default() };
        self.fd.set_fpu(&fpu).map_err(self.set_err("FPU"))?;

        let r = kvm_regs {
            rip: setup.entry,
            rsp: setup.stack_top,
            rdi: setup.arg,
            rflags: regs::USER_RFLAGS,
            ..Default::default()
        };
        self.fresh.set(false);
        self.fd.set_regs(&r).map_err(self.set_err("registers"))?;
        Ok(())
    }

    /// `KVM_RUN`. A port exit keeps the width of one access, so that a
    /// string instruction can be served access by access (see
    /// [`super::port_exit`]).
    pub fn run(&mut self) -> Result<Exit<'_>, kvm_ioctls::Error> {
        let run: *const kvm_run = self.fd.get_kvm_run();
        // KVM stores the registers on every way out of KVM_RUN past its
        // argument checks, an interrupted run included.
        self.fresh.set(self.synced);
        Ok(match self.fd.run()? {
            VcpuExit::IoIn(port, data) => Exit::Port(PortExit::input(port, io_size(run), data)),
            VcpuExit::IoOut(port, data) => Exit::Port(PortExit::output(port, io_size(run), data)),
            other => Exit::Other(other),
        })
    }

    /// General registers: from the synced area after a run, else by
    /// `KVM_GET_REGS`.
    pub fn regs(&self) -> Result<kvm_regs, kvm_ioctls::Error> {
        if self.fresh.get() {
            return Ok(self.fd.sync_regs().regs);
        }
        self.fd.get_regs()
    }

    /// Sets general registers: into the synced area, marked dirty, which
    /// KVM loads as the next run enters; else by `KVM_SET_REGS`.
    pub fn set_regs(&mut self, r: &kvm_regs) -> Result<(), kvm_ioctls::Error> {
        if self.fresh.get() {
            self.fd.sync_regs_mut().regs = *r;
            self.fd.set_sync_dirty_reg(SyncReg::Register);
            return Ok(());
        }
        self.fd.set_regs(r)
    }

    /// The legacy region of the FPU/SSE state (the 512 bytes `fxsave`
    /// writes: x87, MXCSR, XMM0-15), from `KVM_GET_XSAVE`.
    pub fn fx_state(&self) -> Result<[u8; FX_SIZE], kvm_ioctls::Error> {
        let x = self.fd.get_xsave()?;
        let mut img = [0u8; FX_SIZE];
        for (b, w) in img.chunks_exact_mut(4).zip(x.region.iter()) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        Ok(img)
    }

    /// Replaces the legacy region (MXCSR's reserved bits cleared), keeping
    /// the other XSAVE components as they are (`KVM_GET_XSAVE`, then
    /// `KVM_SET_XSAVE` with x87 and SSE marked present in `XSTATE_BV`).
    pub fn set_fx_state(&self, img: &[u8; FX_SIZE]) -> Result<(), kvm_ioctls::Error> {
        let mut x = self.fd.get_xsave()?;
        for (w, b) in x.region.iter_mut().zip(img.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        // MXCSR (bytes 24..28) may not have reserved bits; MXCSR_MASK
        // (28..32) is the CPU's, never the caller's.
        x.region[6] &= 0xffff;
        // XSTATE_BV (byte 512): x87 and SSE present, or XRSTOR would
        // initialize them instead of loading them.
        x.region[FX_SIZE / 4] |= 3;
        // SAFETY: `x` is the `kvm_xsave` KVM_GET_XSAVE just filled for
        // this vCPU, of the 4096 bytes KVM_SET_XSAVE reads: the VMM never
        // asks for dynamically enabled XSAVE features for its guests
        // (ARCH_REQ_XCOMP_GUEST_PERM), so the vCPU's XSAVE size is not
        // larger than `kvm_xsave`.
        unsafe { self.fd.set_xsave(&x) }
    }

    /// Whether an exception is on its way into the guest: KVM holds one
    /// queued or half delivered (a run interrupted by a kick while the
    /// guest's fault was being delivered). The registers then belong to
    /// the instruction that raised it, and the next entry delivers it
    /// whatever the registers are by then (`KVM_GET_VCPU_EVENTS`).
    pub fn exception_in_flight(&self) -> Result<bool, kvm_ioctls::Error> {
        let e = self.fd.get_vcpu_events()?;
        // A software interrupt (`int n`) cut off mid-delivery is kept as
        // an injected soft interrupt, not as an exception.
        let soft = e.interrupt.injected != 0 && e.interrupt.soft != 0;
        Ok(e.exception.injected != 0 || e.exception.pending != 0 || soft)
    }

    /// System registers: from the synced area after a run (nothing
    /// writes them by ioctl once the vCPU runs), else by `KVM_GET_SREGS`.
    pub fn sregs(&self) -> Result<kvm_bindings::kvm_sregs, kvm_ioctls::Error> {
        if self.fresh.get() {
            return Ok(self.fd.sync_regs().sregs);
        }
        self.fd.get_sregs()
    }

    /// Switches the vCPU to the page tables rooted at `cr3` (a process
    /// switch): into the synced system registers, marked dirty, which KVM
    /// loads as the next run enters; else `KVM_GET_SREGS` +
    /// `KVM_SET_SREGS`. KVM resets its MMU context when CR3 changes, and
    /// a CR3 load without PCID drops every non-global translation, so
    /// nothing of the previous space survives the switch.
    pub fn set_cr3(&mut self, cr3: u64) -> Result<(), kvm_ioctls::Error> {
        if self.fresh.get() {
            self.fd.sync_regs_mut().sregs.cr3 = cr3;
            self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
            return Ok(());
        }
        let mut s = self.fd.get_sregs()?;
        s.cr3 = cr3;
        self.fd.set_sregs(&s)
    }

    /// Leaves whatever the vCPU does in the kernel stub for user mode
    /// with `regs`: the user code and stack segments (CPL 3), then the
    /// registers (synced where they are fresh, else `KVM_SET_SREGS`). For
    /// a vCPU whose program was taken from it while in the stub: what the
    /// stub was doing was that program's. Not for the shootdown handler
    /// (its `swapgs` and NMI masking must be undone by its own `iretq`).
    pub fn enter_user_mode(&mut self, regs: &kvm_regs) -> Result<(), kvm_ioctls::Error> {
        let (code, data) = (FIXED_SEGMENTS[3].to_kvm(), FIXED_SEGMENTS[2].to_kvm());
        if self.fresh.get() {
            let s = &mut self.fd.sync_regs_mut().sregs;
            s.cs = code;
            s.ss = data;
            self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
        } else {
            let mut s = self.fd.get_sregs()?;
            s.cs = code;
            s.ss = data;
            self.fd.set_sregs(&s)?;
        }
        self.set_regs(regs)
    }

    /// Sets the FS base (a thread's TLS: `arch_prctl`, a thread or
    /// process switch): into the synced system registers, marked dirty,
    /// where they are fresh; else `MSR_FS_BASE`. An MSR write alone would
    /// leave the synced copy stale, and a later dirty write of it (a CR3
    /// switch) would load the old base back.
    pub fn set_fs_base(&mut self, base: u64) -> Result<(), VcpuError> {
        if self.fresh.get() {
            self.fd.sync_regs_mut().sregs.fs.base = base;
            self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
            return Ok(());
        }
        self.set_msr(msr::FS_BASE, base)
    }

    /// Reads the given MSRs (for diagnostics); missing ones are left out.
    pub fn msrs(&self, indices: &[u32]) -> Vec<(u32, u64)> {
        let list: Vec<kvm_msr_entry> =
            indices.iter().map(|&index| kvm_msr_entry { index, ..Default::default() }).collect();
        let Ok(mut msrs) = Msrs::from_entries(&list) else { return Vec::new() };
        let n = self.fd.get_msrs(&mut msrs).unwrap_or(0);
        msrs.as_slice()[..n].iter().map(|e| (e.index, e.data)).collect()
    }

    /// Writes one MSR.
    pub fn set_msr(&self, index: u32, data: u64) -> Result<(), VcpuError> {
        let set = |source| VcpuError::Set { what: "an MSR", index: self.index, source };
        let msrs = Msrs::from_entries(&[kvm_msr_entry { index, data, ..Default::default() }])
            .map_err(|_| set(kvm_ioctls::Error::new(libc::EINVAL)))?;
        match self.fd.set_msrs(&msrs).map_err(set)? {
            1 => Ok(()),
            n => Err(VcpuError::Msrs { index: self.index, set: n, wanted: 1 }),
        }
    }

    /// Queues an NMI (delivered on the next entry).
    pub fn inject_nmi(&self) -> Result<(), kvm_ioctls::Error> {
        self.fd.nmi()
    }

    /// Sets the local APIC's LINT0 to ExtINT (the PIC) and LINT1 to NMI,
    /// as a PC BIOS leaves the boot processor (in-kernel APIC only).
    pub fn lapic_bios_handoff(&self) -> Result<(), VcpuError> {
        const LVT0: usize = 0x350;
        const LVT1: usize = 0x360;
        let mut l = self.fd.get_lapic().map_err(self.set_err("local APIC (read)"))?;
        for (reg, value) in [(LVT0, 0x700u32), (LVT1, 0x400u32)] {
            for (i, b) in value.to_le_bytes().iter().enumerate() {
                l.regs[reg + i] = *b as _;
            }
        }
        self.fd.set_lapic(&l).map_err(self.set_err("local APIC"))
    }

    /// The `internal` part of `kvm_run` after a `KVM_EXIT_INTERNAL_ERROR`:
    /// the sub-error and its data words.
    pub fn internal_error(&mut self) -> (u32, Vec<u64>) {
        let run = self.fd.get_kvm_run();
        // SAFETY: the exit reason was KVM_EXIT_INTERNAL_ERROR (the caller
        // only asks then), so `internal` is the active union member; the
        // fields are plain integers.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let n = (internal.ndata as usize).min(internal.data.len());
        (internal.suberror, internal.data[..n].to_vec())
    }

    /// This vCPU's `kvm_run` (for the kick handler).
    pub fn kvm_run_ptr(&mut self) -> *mut kvm_bindings::kvm_run {
        self.fd.get_kvm_run()
    }

    /// Completes the instruction of the last exit (KVM finishes a port
    /// access only when the vCPU is entered again): one `KVM_RUN` with
    /// `immediate_exit` set, which returns before running guest code.
    /// Needed before registers are replaced after an exit.
    pub fn complete_pending_io(&mut self) -> Result<(), kvm_ioctls::Error> {
        self.fd.set_kvm_immediate_exit(1);
        self.fresh.set(self.synced);
        let r = self.fd.run().map(|_| ());
        self.fd.set_kvm_immediate_exit(0);
        match r {
            Err(e) if e.errno() == libc::EINTR => Ok(()),
            other => other,
        }
    }

    /// Restarts the vCPU in real mode at `vector` (`CS` = `vector >> 4`,
    /// `IP` = `vector & 0xf`, every other segment 0, paging, long mode and
    /// interrupts off), as firmware jumps to an ACPI waking vector. The
    /// vector must be below 1 MiB and not 0.
    pub fn reset_real_mode(&mut self, vector: u32) -> Result<(), VcpuError> {
        if vector == 0 || vector >= 0x10_0000 {
            return Err(VcpuError::RealModeVector(vector));
        }
        let mut s = self.fd.get_sregs().map_err(self.set_err("system registers (read)"))?;
        let seg = |selector: u16, type_: u8| kvm_segment {
            base: u64::from(selector) << 4,
            limit: 0xffff,
            selector,
            type_,
            present: 1,
            s: 1,
            ..Default::default()
        };
        s.cs = seg((vector >> 4) as u16, 0xb);
        let data = seg(0, 0x3);
        (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
        s.tr = kvm_segment { limit: 0xffff, type_: 0xb, present: 1, ..Default::default() };
        s.ldt = kvm_segment { limit: 0xffff, type_: 0x2, present: 1, ..Default::default() };
        s.gdt = kvm_dtable { base: 0, limit: 0xffff, ..Default::default() };
        s.idt = kvm_dtable { base: 0, limit: 0x3ff, ..Default::default() };
        (s.cr0, s.cr2, s.cr3, s.cr4, s.efer) = (regs::CR0_ET, 0, 0, 0, 0);
        self.fd.set_sregs(&s).map_err(self.set_err("system registers"))?;
        let r = kvm_regs { rip: u64::from(vector & 0xf), rflags: 2, ..Default::default() };
        self.set_regs(&r).map_err(self.set_err("registers"))
    }

    /// Clears `immediate_exit` after a kicked run.
    pub fn clear_immediate_exit(&mut self) {
        self.fd.set_kvm_immediate_exit(0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A VM and one vCPU, or `None` (skipped, with a message) where
    /// `/dev/kvm` is absent and `VMM_REQUIRE_KVM` is not `1`.
    fn vcpu() -> Option<(Vm, Vcpu)> {
        if !std::path::Path::new("/dev/kvm").exists() {
            assert!(std::env::var_os("VMM_REQUIRE_KVM").is_none_or(|v| v != "1"), "VMM_REQUIRE_KVM=1 and no /dev/kvm");
            eprintln!("SKIP: no /dev/kvm");
            return None;
        }
        let vm = Vm::new().unwrap();
        let v = Vcpu::new(&vm, 0).unwrap();
        Some((vm, v))
    }

    #[test]
    fn an_exception_kvm_holds_is_in_flight() {
        let Some((_vm, v)) = vcpu() else { return };
        assert!(!v.exception_in_flight().unwrap(), "a new vCPU holds none");
        // What KVM keeps when a run is interrupted while it delivers a
        // page fault: the exception, injected, with its error code.
        let mut e = v.fd.get_vcpu_events().unwrap();
        e.exception.injected = 1;
        e.exception.nr = 14;
        e.exception.has_error_code = 1;
        e.exception.error_code = 4;
        v.fd.set_vcpu_events(&e).unwrap();
        assert!(v.exception_in_flight().unwrap(), "a page fault being delivered");
        e.exception.injected = 0;
        v.fd.set_vcpu_events(&e).unwrap();
        assert!(!v.exception_in_flight().unwrap(), "delivered");
    }
}
