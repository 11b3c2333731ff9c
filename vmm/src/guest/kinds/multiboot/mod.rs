//! Raw multiboot v1 kernels (kvm-unit-tests and the like): parsed from
//! the file, placed at their physical addresses with a multiboot
//! information block, started in 32-bit protected mode at CPL 0 with no
//! firmware code; what firmware leaves (ACPI tables, [`acpi`]) is there,
//! and S3 sleep and resume ([`sleep`]) act as firmware would.

pub mod acpi;
pub mod header;
pub mod info;
mod kind;
pub mod load;
pub mod module;
pub mod sleep;

pub use header::{MultibootError, BOOT_MAGIC};
pub use kind::{Multiboot, RawKernel, Spec, APPEND, CPU, CPU_NOT_FOLLOWED, INITRD, KERNEL, MODULE, SPEC};
pub use load::{load, plan, read_file, read_file_for, Loaded, Plan, RawLoadError};
pub use module::{Module, ModuleError, MAX_FILE};
