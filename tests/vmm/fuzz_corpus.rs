//! Replays every file of `fuzz/corpus/<target>/` (seeds, inputs the fuzzer
//! found interesting, and minimized crashes it found) through the fuzz
//! targets of `vmm_suite::fuzz_targets`, on the stable toolchain without
//! instrumentation: a crash that was fixed stays fixed.

use std::path::PathBuf;

use vmm_suite::fuzz_targets::{linux_program, TARGETS};

fn replay(name: &str) {
    let f = TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).expect("target exists");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(name);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("corpus folder").map(|e| e.expect("corpus entry").path()).collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no input", dir.display());
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("corpus file");
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{name}: {} of {} inputs failed: {failed:#?}", failed.len(), files.len());
}

#[test]
fn mapper_ops_corpus() {
    replay("mapper_ops");
}

#[test]
fn hypercalls_corpus() {
    replay("hypercalls");
}

#[test]
fn elf_corpus() {
    replay("elf");
}

#[test]
fn config_corpus() {
    replay("config");
}

#[test]
fn elf_reader_corpus() {
    replay("elf_reader");
}

#[test]
fn kut_cfg_corpus() {
    replay("kut_cfg");
}

#[test]
fn multiboot_corpus() {
    replay("multiboot");
}

#[test]
fn solo5_notes_corpus() {
    replay("solo5_notes");
}

#[test]
fn linux_elf_corpus() {
    replay("linux_elf");
}

#[test]
fn linux_syscalls_corpus() {
    replay("linux_syscalls");
}

/// The seeds of the Linux targets are committed as
/// `vmm_suite::fuzz_targets::linux_program` builds them (`VMM_BLESS=1`
/// writes them).
#[test]
fn linux_seeds_are_committed() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let sets = [("linux_elf", linux_program::elf_seeds()), ("linux_syscalls", linux_program::syscall_seeds())];
    for (target, seeds) in sets {
        for (name, bytes) in seeds {
            let path = root.join(target).join(name);
            if std::env::var_os("VMM_BLESS").is_some() {
                std::fs::create_dir_all(root.join(target)).expect("corpus folder");
                std::fs::write(&path, &bytes).expect("write a seed");
            }
            let on_disk = std::fs::read(&path).unwrap_or_default();
            assert!(on_disk == bytes, "{} differs from its generator: rerun with VMM_BLESS=1", path.display());
        }
    }
}

/// Every target has a test above and a corpus folder.
#[test]
fn every_target_is_replayed() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "mapper_ops",
            "hypercalls",
            "elf",
            "config",
            "elf_reader",
            "kut_cfg",
            "multiboot",
            "solo5_notes",
            "linux_elf",
            "linux_syscalls"
        ]
    );
}
