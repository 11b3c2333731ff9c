//! Exceptions as the VMM sees them: what the kernel stub reported, decoded
//! into a message a person can act on.

use std::fmt;

use kvm_bindings::kvm_regs;
use serde::Serialize;

use crate::hosted::arch::idt::{vector_name, PF_VECTOR};

/// An exception one vCPU took, as reported by the kernel stub (see
/// `kernel::stub`: the frame on its stack, CR2 from the vCPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExceptionReport {
    /// vCPU index.
    pub vcpu: u8,
    /// Exception vector.
    pub vector: u64,
    /// Error code (0 for vectors without one).
    pub error_code: u64,
    /// CR2 at the time of the report (the faulting address for `#PF`).
    pub cr2: u64,
    /// RIP of the faulting instruction.
    pub rip: u64,
    /// CS at the fault (its low two bits are the CPL).
    pub cs: u64,
    /// RSP at the fault.
    pub rsp: u64,
}

impl ExceptionReport {
    /// Decodes the stub's frame: `[vector, error code, RIP, CS, RFLAGS,
    /// RSP]` as it lies on the exception stack, and CR2.
    pub fn from_frame(vcpu: u8, frame: &[u64; 6], cr2: u64) -> Self {
        ExceptionReport {
            vcpu,
            vector: frame[0] & 0xff,
            error_code: frame[1],
            cr2,
            rip: frame[2],
            cs: frame[3],
            rsp: frame[5],
        }
    }

    /// Loads the registers an expected fault resumes with (`expect_fault`
    /// in `docs/guest-abi.md`): `rax` = vector, `rdi` = error code, `rsi` =
    /// CR2, `rdx` = RIP, `r10` = CS, `r8` = RSP.
    pub fn load_into(&self, r: &mut kvm_regs) {
        r.rax = self.vector;
        r.rdi = self.error_code;
        r.rsi = self.cr2;
        r.rdx = self.rip;
        r.r10 = self.cs;
        r.r8 = self.rsp;
    }

    /// Is this a page fault?
    pub fn is_page_fault(&self) -> bool {
        self.vector == u64::from(PF_VECTOR)
    }

    /// CPL of the faulting code.
    pub fn cpl(&self) -> u64 {
        self.cs & 3
    }
}

/// Describes a page-fault error code (`"write, user, not-present"`).
pub fn describe_pf_error(code: u64) -> String {
    let mut parts = vec![
        if code & 1 != 0 { "protection violation" } else { "not-present" },
        if code & 2 != 0 { "write" } else { "read" },
        if code & 4 != 0 { "user" } else { "supervisor" },
    ];
    if code & 8 != 0 {
        parts.push("reserved bit set");
    }
    if code & 16 != 0 {
        parts.push("instruction fetch");
    }
    if code & 32 != 0 {
        parts.push("protection key");
    }
    parts.join(", ")
}

impl fmt::Display for ExceptionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vCPU {}: {} (vector {}) at rip {:#x} (CPL {})",
            self.vcpu,
            vector_name(self.vector),
            self.vector,
            self.rip,
            self.cpl()
        )?;
        if self.is_page_fault() {
            write!(
                f,
                ", address {:#x}, error code {:#x} ({})",
                self.cr2,
                self.error_code,
                describe_pf_error(self.error_code)
            )
        } else {
            write!(f, ", error code {:#x}", self.error_code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_fault_message() {
        let e = ExceptionReport::from_frame(1, &[14, 6, 0x40_0123, 0x23, 0x202, 0x7fff_0000], 0x7000_1000);
        let mut r = kvm_regs::default();
        e.load_into(&mut r);
        assert_eq!((r.rax, r.rdi, r.rsi, r.rdx, r.r10, r.r8), (14, 6, 0x7000_1000, 0x40_0123, 0x23, 0x7fff_0000));
        assert!(e.is_page_fault());
        assert_eq!(e.cpl(), 3);
        assert_eq!(
            e.to_string(),
            "vCPU 1: #PF (vector 14) at rip 0x400123 (CPL 3), address 0x70001000, error code 0x6 (not-present, write, user)"
        );
    }

    #[test]
    fn general_protection_message() {
        assert_eq!(
            ExceptionReport::from_frame(0, &[13, 0, 0x40_0000, 0x23, 0x202, 0], 0).to_string(),
            "vCPU 0: #GP (vector 13) at rip 0x400000 (CPL 3), error code 0x0"
        );
        assert_eq!(describe_pf_error(0x15), "protection violation, read, user, instruction fetch");
    }
}
