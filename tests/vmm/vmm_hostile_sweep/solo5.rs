//! Hostile Solo5 `spt` unikernels, generated with
//! `vmm_suite::kvm::spt` (the system calls are `solo5-spt`'s Linux ones).

use iced_x86::code_asm::*;
use vmm_suite::kvm::spt::{spt_elf, syscall, DATA_VA, TEXT_VA};
use vmm_suite::kvm::temp_path;

use super::measure::{sweep, Case, Ended, Expect, Stdout, SELF_ENDING, TIMED_OUT, TIMED_OUT_UNREAD};

/// Runs the unikernel whose text `body` emits, with a data page.
fn solo5(
    name: &'static str,
    mem_mib: u64,
    timeout_s: u64,
    stdout: Stdout,
    expect: Expect,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Ended {
    let mut a = CodeAssembler::new(64).expect("assembler");
    body(&mut a).expect("emit");
    let code = a.assemble(TEXT_VA).expect("assemble");
    let path = temp_path(&format!("{name}.spt"));
    std::fs::write(&path, spt_elf(&code, &[b'x'; 4096], &[])).expect("write unikernel");
    let args = vec!["--guest".to_owned(), path.to_str().expect("utf-8 path").to_owned()];
    let e = sweep(Case { name, mem_mib, timeout_s, args, stdout, expect });
    let _ = std::fs::remove_file(&path);
    e
}

// A busy loop.
fresh_test!(solo5_spin, {
    solo5("solo5-spin", 64, 2, Stdout::Drained, TIMED_OUT, |a| {
        let mut again = a.create_label();
        a.set_label(&mut again)?;
        a.jmp(again)
    });
});

/// `write(1, data, 4096)` forever: the console flooded.
fn console_flood(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut again = a.create_label();
    a.set_label(&mut again)?;
    a.mov(edi, 1u32)?;
    a.mov(rsi, DATA_VA)?;
    a.mov(edx, 4096u32)?;
    syscall(a, 1)?;
    a.jmp(again)
}

fresh_test!(solo5_console_flood, {
    solo5("solo5-console", 64, 2, Stdout::Drained, TIMED_OUT, console_flood);
});

// The same into a standard output nobody reads.
fresh_test!(solo5_console_flood_unread, {
    solo5("solo5-console-unread", 64, 2, Stdout::Unread, TIMED_OUT_UNREAD, console_flood);
});

// epoll_pwait with no timer armed and no device: it never returns.
fresh_test!(solo5_sleep_forever, {
    solo5("solo5-sleep", 64, 2, Stdout::Drained, TIMED_OUT, |a| {
        let mut again = a.create_label();
        a.set_label(&mut again)?;
        a.mov(edi, 3u32)?;
        a.mov(rsi, DATA_VA + 0x300)?;
        a.mov(edx, 1u32)?;
        a.mov(r10, -1i64)?;
        a.xor(r8d, r8d)?;
        a.xor(r9d, r9d)?;
        syscall(a, 281)?;
        a.jmp(again)
    });
});

// Every page from the data page up written until the end of the
// unikernel's memory, where the write faults: 139, as `solo5-spt`.
fresh_test!(solo5_touch_everything, {
    solo5("solo5-touch", 64, SELF_ENDING, Stdout::Drained, Expect { code: 139, text: "#PF (vector 14)" }, |a| {
        a.mov(rdi, DATA_VA)?;
        let mut again = a.create_label();
        a.set_label(&mut again)?;
        a.mov(byte_ptr(rdi), 1u32)?;
        a.add(rdi, 4096)?;
        a.jmp(again)
    });
});
