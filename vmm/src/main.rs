//! The `vmm` binary (filled in by the VMM issue).

fn main() {}
