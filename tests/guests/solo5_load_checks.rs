//! Scenario: a Solo5 unikernel is loaded as `solo5-spt` loads it: a
//! `PT_LOAD` segment that is both writable and executable, or one whose
//! file size exceeds its memory size, is refused at load (exit 1, a
//! message naming the segment), never run. No KVM is needed: the refusal
//! comes before the VM is created. The runs use the production seccomp
//! filters.

use vmm_suite::kvm::spt::spt_elf;
use vmm_suite::kvm::{run_vmm, temp_path};

/// Offset of program header `i`'s field at `field` in an [`spt_elf`]
/// image (ELF64, table at 64, 56-byte entries: 0 text, 1 data, 2 notes).
fn ph(i: usize, field: usize) -> usize {
    64 + 56 * i + field
}

/// Runs `img`; returns (exit code, stderr).
fn run(name: &str, img: &[u8]) -> (i32, String) {
    let path = temp_path(name);
    std::fs::write(&path, img).expect("write");
    let r = run_vmm(&["run", "--timeout", "20", "--mem", "64M", "--guest", path.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&path);
    (r.code, r.stderr)
}

/// Against the old loader both unikernels ran (exit 0 from
/// `exit_group(0)`) instead of being refused.
#[test]
fn writable_executable_and_short_memory_segments_are_refused() {
    // exit_group(0): mov edi, 0; mov eax, 231; syscall
    let code = [0xbf, 0, 0, 0, 0, 0xb8, 231, 0, 0, 0, 0x0f, 0x05];
    // The data segment asks for PF_R | PF_W | PF_X.
    let mut wx = spt_elf(&code, &[0], &[]);
    wx[ph(1, 4)..ph(1, 8)].copy_from_slice(&7u32.to_le_bytes());
    // The text segment's memory size is one byte short of its file size.
    let mut short = spt_elf(&code, &[0], &[]);
    short[ph(0, 40)..ph(0, 48)].copy_from_slice(&(code.len() as u64 - 1).to_le_bytes());
    let outcomes = [
        ("wx.spt", run("wx.spt", &wx), "segment 1 is both writable and executable"),
        ("short-memsz.spt", run("short-memsz.spt", &short), "segment 0: file size 0xc exceeds memory size 0xb"),
    ];
    for (name, (code, stderr), _) in &outcomes {
        eprintln!("{name}: exit {code}: {}", stderr.trim());
    }
    for (name, (code, stderr), want) in outcomes {
        assert_eq!(code, 1, "{name}: not refused: {stderr}");
        assert!(stderr.contains(want), "{name}: expected {want:?} in: {stderr}");
    }
}
