//! SysV shared memory (`shmget`, `shmat`, `shmdt`, `shmctl`) for the
//! Linux kind, with Linux 6.12's rules: the segment table
//! ([`table::ShmTable`]: ids, keys, permissions, limits, attach counts,
//! destroy on the last detach), the segments' pages ([`attach::Backing`]:
//! a guest-mm shmem object, or hugetlb pages for `SHM_HUGETLB`), what an
//! attach maps ([`attach::Attach`]), the structures the program reads
//! ([`abi`]) and the `/proc` files ([`procfs`]). The system calls
//! themselves are in `super::syscalls`.
//!
//! Not here: IPC namespaces (one table per process), `shm_rmid_forced`,
//! the audit and LSM hooks, 1 GiB huge pages.

pub mod abi;
pub mod attach;
pub mod procfs;
pub mod table;
#[cfg(test)]
mod table_tests;

pub use self::attach::{huge_backing, Attach, AttachTag, Backing, SharedTable};
pub use self::table::{Cred, GetRequest, Limits, ShmId, ShmTable, Stat};
