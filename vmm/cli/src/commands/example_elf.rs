//! `vmm example-elf FILE`: writes the example user guest.

use std::path::Path;
use std::process::ExitCode;

/// Writes the example user guest (a freestanding x86-64 ELF) to `file`.
pub fn example_elf(file: &Path) -> ExitCode {
    let written = vmm::guest::kinds::abi_elf::example::hello_elf()
        .map_err(|e| e.to_string())
        .and_then(|img| std::fs::write(file, img).map_err(|e| e.to_string()));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("vmm: cannot write {}: {e}", file.display());
            ExitCode::from(1)
        }
    }
}
