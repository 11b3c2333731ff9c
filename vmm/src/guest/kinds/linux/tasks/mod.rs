//! Processes of the Linux kind: the process table ([`table`]), how a
//! process ended ([`status`]), and the switch between processes on a vCPU
//! (`switch`: saving one process's registers, FPU, address space, signal
//! state and files, and loading another's).
//!
//! Every process runs on vCPU 0 (the kind runs on one vCPU); a process
//! that blocks gives it to another, and one that makes system calls is
//! preempted at one after its time slice, or by the slice timer when it
//! makes none (see `switch`). Not done here: threads
//! (`CLONE_VM|CLONE_THREAD`), `execve`.

pub mod status;
pub mod switch;
pub mod table;

#[cfg(test)]
mod table_tests;
