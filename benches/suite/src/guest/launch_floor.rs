//! The bare KVM launch: the floor a `vmm run` launch is compared with.
//!
//! What any KVM launch must do and nothing more: open `/dev/kvm`, create
//! a VM, give it one memory slot of one page holding `out 0xf4, al; hlt`,
//! create one vCPU, point it at the page in real mode, and run it to that
//! one port write. No CPUID set-up, no page tables, no thread, no seccomp
//! filter, no device. `vmm bench` times it as a whole process (`vmm`'s
//! hidden `launch-floor` subcommand), so it pays the same `exec` of the
//! same binary as the `vmm run` it is beside: the difference between the
//! two is the VMM's own work.
//!
//! The `unsafe` here is the one slot registration: KVM is handed a host
//! mapping that this function owns and keeps alive until the VM is gone.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};

/// The exit port of the minimal guests.
pub const FLOOR_PORT: u16 = 0xf4;

/// `out 0xf4, al; hlt`.
const CODE: [u8; 3] = [0xe6, 0xf4, 0xf4];

/// One page.
const PAGE: usize = 4096;

/// What stopped a floor launch.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// A KVM call failed.
    #[error("{what}: {source}")]
    Kvm {
        /// Which call.
        what: &'static str,
        /// Its error.
        source: kvm_ioctls::Error,
    },
    /// The host page could not be mapped.
    #[error("mapping the guest page: {0}")]
    Map(std::io::Error),
    /// The vCPU stopped on something other than the port write.
    #[error("the vCPU exited with {0} instead of the write to port 0xf4")]
    Exit(String),
}

/// One anonymous host page, unmapped on drop.
struct HostPage(*mut libc::c_void);

impl HostPage {
    fn new() -> Result<HostPage, FloorError> {
        // SAFETY: an anonymous private mapping at an address the kernel
        // picks; nothing else is touched. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(FloorError::Map(std::io::Error::last_os_error()));
        }
        let page = HostPage(p);
        // SAFETY: the page was just mapped readable and writable, PAGE
        // bytes long, and CODE is shorter.
        unsafe { std::ptr::copy_nonoverlapping(CODE.as_ptr(), page.0.cast::<u8>(), CODE.len()) };
        Ok(page)
    }
}

impl Drop for HostPage {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.0, PAGE) };
    }
}

/// Runs the bare launch once, in this process.
pub fn launch() -> Result<(), FloorError> {
    let kvm_err = |what| move |source| FloorError::Kvm { what, source };
    let kvm = Kvm::new().map_err(kvm_err("opening /dev/kvm"))?;
    let page = HostPage::new()?;
    let vm = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: PAGE as u64,
        userspace_addr: page.0 as u64,
    };
    // SAFETY: `page` is a live mapping of `memory_size` bytes; it is
    // dropped after `vm` (declared before it, dropped after it), so KVM
    // never sees the slot's memory go away while the VM exists.
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
    let mut vcpu = vm.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
    let mut sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;
    let regs = kvm_bindings::kvm_regs { rip: 0, rflags: 2, ..Default::default() };
    vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
    match vcpu.run().map_err(kvm_err("KVM_RUN"))? {
        VcpuExit::IoOut(FLOOR_PORT, _) => Ok(()),
        other => Err(FloorError::Exit(format!("{other:?}"))),
    }
}
