//! Exceptions as the VMM sees them: what the kernel stub reported, decoded
//! into a message a person can act on.

use std::fmt;

use kvm_bindings::kvm_regs;
use serde::Serialize;

use crate::arch::idt::{vector_name, PF_VECTOR};

/// An exception one vCPU took, as reported by the kernel stub (see
/// `kernel::stub` for the register convention).
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
    /// Decodes the stub's registers.
    pub fn from_regs(vcpu: u8, r: &kvm_regs) -> Self {
        ExceptionReport { vcpu, vector: r.rax & 0xff, error_code: r.rdi, cr2: r.rsi, rip: r.rdx, cs: r.r10, rsp: r.r8 }
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
        let r = kvm_regs {
            rax: 14,
            rdi: 6,
            rsi: 0x7000_1000,
            rdx: 0x40_0123,
            r10: 0x23,
            r8: 0x7fff_0000,
            ..Default::default()
        };
        let e = ExceptionReport::from_regs(1, &r);
        assert!(e.is_page_fault());
        assert_eq!(e.cpl(), 3);
        assert_eq!(
            e.to_string(),
            "vCPU 1: #PF (vector 14) at rip 0x400123 (CPL 3), address 0x70001000, error code 0x6 (not-present, write, user)"
        );
    }

    #[test]
    fn general_protection_message() {
        let r = kvm_regs { rax: 13, rdi: 0, rdx: 0x40_0000, r10: 0x23, ..Default::default() };
        assert_eq!(
            ExceptionReport::from_regs(0, &r).to_string(),
            "vCPU 0: #GP (vector 13) at rip 0x400000 (CPL 3), error code 0x0"
        );
        assert_eq!(describe_pf_error(0x15), "protection violation, read, user, instruction fetch");
    }
}
