//! Unmodified static x86-64 Linux programs (`--abi linux`, or any ELF
//! without a Solo5 or VMM ABI note): the program is loaded as Linux's
//! `load_elf_binary` would load it, gets the initial stack Linux gives,
//! and its system calls are served from a table in code
//! ([`syscalls::TABLE`], documented in `docs/linux-syscalls.md`). Every
//! memory call goes through guest-mm.

pub mod file_pages;
pub mod fs;
pub mod futex;
pub mod image;
pub mod ipc;
mod kind;
pub mod memfd;
mod proc_files;
mod proc_mem;
mod proc_pid;
pub mod process;
pub mod procfs;
pub mod robust;
pub mod signal;
pub mod spec;
pub mod stack;
pub mod syscalls;
pub mod sysv_shm;
pub mod tasks;
mod thp_sysfs;
pub mod userfaultfd;

pub use self::process::{random_bytes, Linux, Proc, STACK_SIZE, STACK_TOP};
pub use self::spec::{Spec, ENV, SPEC};
