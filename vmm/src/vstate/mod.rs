//! KVM state: the VM (memory slots, ioeventfds, CPUID) and its vCPUs
//! (register setup, `KVM_RUN`, kicks).

pub mod backend;
pub mod cpu_model;
pub mod internal_error;
pub mod kick;
pub mod page_walk;
pub mod port_exit;
pub mod slice_timer;
pub mod vcpu;
pub mod vm;
