//! x86-64 system structures the VMM builds for the guest: segment
//! descriptors (GDT), interrupt gates (IDT), the task-state segment, and
//! the control-register / MSR values that put a vCPU in long mode.
//!
//! Everything here encodes bytes and register values; writing them into
//! guest memory and loading them into a vCPU is done by `boot` and
//! `vstate::vcpu`.

pub mod gdt;
pub mod idt;
pub mod regs;
pub mod tss;
