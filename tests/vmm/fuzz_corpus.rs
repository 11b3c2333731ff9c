//! Replays every file of `fuzz/corpus/<target>/` (seeds, inputs the fuzzer
//! found interesting, and minimized crashes it found) through the fuzz
//! targets of `vmm_suite::fuzz_targets`, on the stable toolchain without
//! instrumentation: a crash that was fixed stays fixed.

use std::path::PathBuf;

use vmm_suite::fuzz_targets::TARGETS;

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

/// Every target has a test above and a corpus folder.
#[test]
fn every_target_is_replayed() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["mapper_ops", "hypercalls", "elf", "config", "elf_reader", "kut_cfg", "multiboot", "solo5_notes"]
    );
}
