//! Scenario: the Solo5 `spt` personality, checked with unikernels
//! generated here (so it needs nothing from `../shared`): segments get
//! exactly their rights (writing text or executing data faults as
//! SIGSEGV, 139), so is any I/O port access, a system call outside the `spt` policy is SIGSYS (159),
//! and the calls the bindings make behave as on Linux: `arch_prctl` sets
//! the TLS base, `clock_gettime` moves forward, and a yield armed with
//! `timerfd_settime` sleeps in `epoll_pwait` until the timer fires.

use iced_x86::code_asm::*;
use vmm_suite::kvm::spt::{exit_group, run_spt, spt_elf, syscall, DATA_VA, TEXT_VA};
use vmm_suite::kvm::{run_vmm, temp_path};
use vmm_suite::need_kvm;

#[test]
fn writing_text_is_a_segfault() {
    need_kvm!();
    let r = run_spt("write-text", &[0], |a| {
        a.mov(rax, TEXT_VA)?;
        a.mov(byte_ptr(rax), 1)?;
        exit_group(a, 0)
    });
    assert_eq!(r.code, 139, "{}\n{}", r.stdout, r.stderr);
    // Present, write, user: a protection fault, not a missing page.
    assert!(r.stderr.contains(&format!("address {TEXT_VA:#x}, error code 0x7")), "{}", r.stderr);
}

#[test]
fn executing_data_is_a_segfault() {
    need_kvm!();
    // The data page starts with `ret`: runnable if it were executable.
    let r = run_spt("exec-data", &[0xc3], |a| {
        a.mov(rax, DATA_VA)?;
        a.call(rax)?;
        exit_group(a, 0)
    });
    assert_eq!(r.code, 139, "{}\n{}", r.stdout, r.stderr);
    // Present, user, instruction fetch.
    assert!(r.stderr.contains(&format!("address {DATA_VA:#x}, error code 0x15")), "{}", r.stderr);
}

/// Issue 20 item 13: `solo5-spt` gives a unikernel no I/O ports, so the
/// exit port (which would end the run with status 67 here) and the serial
/// port are a #GP, a fault: 139.
#[test]
fn io_ports_are_a_segfault() {
    need_kvm!();
    let r = run_spt("out-exit-port", &[0], |a| {
        a.mov(al, 0x21u32)?;
        a.out(0xf4, al)?;
        exit_group(a, 0)
    });
    assert_eq!(r.code, 139, "{}\n{}", r.stdout, r.stderr);
    let r = run_spt("in-serial", &[0], |a| {
        a.mov(edx, 0x3fdu32)?;
        a.in_(al, dx)?;
        exit_group(a, 0)
    });
    assert_eq!(r.code, 139, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn a_call_outside_the_policy_is_sigsys() {
    need_kvm!();
    // getpid (39): not in the spt policy.
    let r = run_spt("getpid", &[0], |a| {
        syscall(a, 39)?;
        exit_group(a, 0)
    });
    assert_eq!(r.code, 159, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("killed by SIGSYS"), "{}", r.stderr);
    // write is allowed on fd 1 only.
    let r = run_spt("write-fd2", b"x", |a| {
        a.mov(edi, 2u32)?;
        a.mov(rsi, DATA_VA)?;
        a.mov(edx, 1u32)?;
        syscall(a, 1)?;
        exit_group(a, 0)
    });
    assert_eq!(r.code, 159, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn tls_clock_and_yield_behave_as_on_linux() {
    need_kvm!();
    // Data page: [0x000] "tls ok\n", [0x100] timespec t0, [0x110] t1,
    // [0x200] itimerspec, [0x300] epoll_event, [0x800] TLS word.
    let mut data = vec![0u8; 0x1000];
    data[..7].copy_from_slice(b"tls ok\n");
    // itimerspec: interval 0, value 0 s + 50 ms (relative).
    data[0x218..0x220].copy_from_slice(&50_000_000u64.to_le_bytes());
    data[0x800..0x808].copy_from_slice(&0x5eed_cafe_u64.to_le_bytes());
    let r = run_spt("tls-clock-yield", &data, |a| {
        let mut fail = a.create_label();
        // arch_prctl(ARCH_SET_FS, DATA_VA + 0x800); fs:[0] is the TLS word.
        a.mov(edi, 0x1002u32)?;
        a.mov(rsi, DATA_VA + 0x800)?;
        syscall(a, 158)?;
        a.test(rax, rax)?;
        a.jnz(fail)?;
        a.mov(rax, qword_ptr(0).fs())?;
        a.mov(rcx, 0x5eed_cafe_u64)?;
        a.cmp(rax, rcx)?;
        a.jne(fail)?;
        // clock_gettime(CLOCK_MONOTONIC, t0)
        a.mov(edi, 1u32)?;
        a.mov(rsi, DATA_VA + 0x100)?;
        syscall(a, 228)?;
        // timerfd_settime(timerfd 4, relative, spec, NULL)
        a.mov(edi, 4u32)?;
        a.xor(esi, esi)?;
        a.mov(rdx, DATA_VA + 0x200)?;
        a.xor(r10d, r10d)?;
        syscall(a, 286)?;
        a.test(rax, rax)?;
        a.jnz(fail)?;
        // epoll_pwait(epollfd 3, events, 1, -1, NULL, 0) == 1, the timer.
        a.mov(edi, 3u32)?;
        a.mov(rsi, DATA_VA + 0x300)?;
        a.mov(edx, 1u32)?;
        a.mov(r10, -1i64)?;
        a.xor(r8d, r8d)?;
        a.xor(r9d, r9d)?;
        syscall(a, 281)?;
        a.cmp(rax, 1)?;
        a.jne(fail)?;
        a.mov(rax, qword_ptr(DATA_VA + 0x304))?;
        a.mov(ecx, 0xffff_fffeu32)?;
        a.cmp(rax, rcx)?;
        a.jne(fail)?;
        // clock_gettime(CLOCK_MONOTONIC, t1); elapsed >= 50 ms.
        a.mov(edi, 1u32)?;
        a.mov(rsi, DATA_VA + 0x110)?;
        syscall(a, 228)?;
        a.mov(rax, qword_ptr(DATA_VA + 0x110))?;
        a.sub(rax, qword_ptr(DATA_VA + 0x100))?;
        a.imul_3(rax, rax, 1_000_000_000)?;
        a.add(rax, qword_ptr(DATA_VA + 0x118))?;
        a.sub(rax, qword_ptr(DATA_VA + 0x108))?;
        a.cmp(rax, 50_000_000)?;
        a.jl(fail)?;
        // write(1, "tls ok\n", 7); exit_group(0)
        a.mov(edi, 1u32)?;
        a.mov(rsi, DATA_VA)?;
        a.mov(edx, 7u32)?;
        syscall(a, 1)?;
        exit_group(a, 0)?;
        a.set_label(&mut fail)?;
        exit_group(a, 3)
    });
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("tls ok"), "{}", r.stdout);
}

#[test]
fn a_device_in_the_manifest_or_a_bad_abi_is_refused() {
    // No KVM needed: refused while loading.
    let mut img = spt_elf(&[0xf4], &[0], &[]);
    // ABI version 2 -> 9.
    let at = img.windows(8).position(|w| w == b"Solo5\0\0\0").expect("note") + 8 + 4;
    img[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
    let path = temp_path("bad-abi.spt");
    std::fs::write(&path, img).expect("write");
    let r = run_vmm(&["run", "--guest", path.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("ABI version 9 is not supported"), "{}", r.stderr);
}
