//! Processes and threads of the Linux kind: the table of threads and
//! their processes ([`table`]), how a process ended ([`status`]), the
//! switch between threads on a vCPU (`switch`: saving one thread's
//! registers, FPU and signal state, and for another process its address
//! space and files too, and loading another's), and threads themselves
//! ([`threads`]: `clone` with `CLONE_THREAD`, a thread's `exit`, where a
//! signal goes).
//!
//! Threads run on the program's vCPUs (`--vcpus`, one unless asked:
//! [`cpus`] keeps which thread each runs and the idle loop); a thread
//! that blocks gives its vCPU to another, and one that makes system calls
//! is preempted at one after its time slice, or by the slice timer when
//! it makes none (see `switch`). Not done here: `execve`.

pub mod cpus;
pub mod spawn;
pub mod status;
pub mod switch;
pub mod table;
pub mod threads;

#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod threads_tests;
