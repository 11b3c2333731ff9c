//! The kinds of guest the VMM runs, one folder each. Each kind implements
//! `crate::guest::kind::GuestKind` (the seam) and registers a
//! `crate::guest::registry::KindSpec` (its name, options, configuration
//! entries and how it is opened); `Registry::standard` lists them.

pub mod abi_elf;
pub mod builtin;
pub mod fuzz;
pub mod linux;
pub mod multiboot;
pub mod solo5;

pub use self::abi_elf::AbiElf;
pub use self::builtin::Builtin;
pub use self::fuzz::Fuzz;
pub use self::multiboot::Multiboot;
pub use self::solo5::Solo5;
