//! The `linux` guest kind: Linux x86-64 system calls served to an
//! unmodified static program.

pub mod fs;
