//! Scenario: where `syscall` stays in user mode (`kvm_pvm`), a Solo5
//! unikernel's `clock_gettime` and its yield's absolute
//! `timerfd_settime` are answered by its trampoline from the clock page,
//! without a VM exit; what they answer is what the host's path answers:
//! the clock never goes back, agrees with the host's, a timer armed there
//! fires in `epoll_pwait` on time, and every argument Linux refuses still
//! gets Linux's errno. Elsewhere the same unikernel runs on the exit path
//! and must pass the same checks.

use iced_x86::code_asm::*;
use vmm_suite::kvm::spt::{exit_group, run_spt, syscall, DATA_VA, TEXT_VA};
use vmm_suite::need_kvm;

const CLOCK_GETTIME: u64 = 228;
const TIMERFD_SETTIME: u64 = 286;
const EPOLL_PWAIT: u64 = 281;
const NSEC: i32 = 1_000_000_000;

/// `clock_gettime(clock, buf)`, then `rax` = the time in ns (or the
/// failure code `code` if the call failed).
fn now(
    a: &mut CodeAssembler,
    clock: u32,
    buf: AsmRegister64,
    fail: &mut Vec<(CodeLabel, u32)>,
    code: u32,
) -> Result<(), IcedError> {
    a.mov(edi, clock)?;
    a.mov(rsi, buf)?;
    syscall(a, CLOCK_GETTIME)?;
    a.test(rax, rax)?;
    let l = a.create_label();
    a.jnz(l)?;
    fail.push((l, code));
    a.mov(rax, qword_ptr(buf))?;
    a.imul_3(rax, rax, NSEC)?;
    a.add(rax, qword_ptr(buf + 8))
}

/// Jumps to `exit_group(code)` on condition `jcc`.
fn fail_if(
    a: &mut CodeAssembler,
    fail: &mut Vec<(CodeLabel, u32)>,
    code: u32,
    jcc: fn(&mut CodeAssembler, CodeLabel) -> Result<(), IcedError>,
) -> Result<(), IcedError> {
    let l = a.create_label();
    jcc(a, l)?;
    fail.push((l, code));
    Ok(())
}

fn exits(stderr_and_stdout: &str) -> u64 {
    stderr_and_stdout
        .lines()
        .find_map(|l| l.strip_prefix("vCPU 0: ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exit count in the report: {stderr_and_stdout}"))
}

#[test]
fn the_trampolines_clock_and_timer_answer_as_the_host_does() {
    need_kvm!();
    let r = run_spt("fastcall", &[0u8; 0x1000], |a| {
        let mut fail = Vec::new();
        // r15: a stack buffer (in the heap/stack range the fast path
        // serves): +0 timespec, +0x20 itimerspec, +0x40 epoll_event.
        a.sub(rsp, 0x400)?;
        a.mov(r15, rsp)?;
        // 1. 3000 monotonic reads, each at or after the one before (the
        // first ones exit, until the host has calibrated the page).
        a.xor(r12d, r12d)?;
        a.mov(r13d, 3000u32)?;
        let mut again = a.create_label();
        a.set_label(&mut again)?;
        now(a, 1, r15, &mut fail, 10)?;
        a.cmp(rax, r12)?;
        fail_if(a, &mut fail, 11, CodeAssembler::jb)?;
        a.mov(r12, rax)?;
        a.dec(r13d)?;
        a.jnz(again)?;
        // 2. 30 ms of busy reads.
        a.mov(r14, r12)?;
        let mut busy = a.create_label();
        a.set_label(&mut busy)?;
        now(a, 1, r15, &mut fail, 12)?;
        a.cmp(rax, r12)?;
        fail_if(a, &mut fail, 13, CodeAssembler::jb)?;
        a.mov(r12, rax)?;
        a.sub(rax, r14)?;
        a.cmp(rax, 30_000_000)?;
        a.jb(busy)?;
        // 3. CLOCK_REALTIME read on the stack, then into the data
        // segment (outside the fast range: the host's clock): within 2 ms.
        now(a, 0, r15, &mut fail, 14)?;
        a.mov(rbx, rax)?;
        a.mov(r13, DATA_VA + 0x100)?;
        now(a, 0, r13, &mut fail, 15)?;
        a.sub(rax, rbx)?;
        a.add(rax, 2_000_000)?;
        a.cmp(rax, 4_000_000)?;
        fail_if(a, &mut fail, 16, CodeAssembler::jae)?;
        // 4. An absolute timer 30 ms ahead fires in epoll_pwait, on time.
        now(a, 1, r15, &mut fail, 17)?;
        a.lea(rbx, qword_ptr(rax + 30_000_000))?;
        a.mov(rax, rbx)?;
        a.xor(edx, edx)?;
        a.mov(ecx, NSEC as u32)?;
        a.div(rcx)?;
        a.mov(qword_ptr(r15 + 0x20), 0)?;
        a.mov(qword_ptr(r15 + 0x28), 0)?;
        a.mov(qword_ptr(r15 + 0x30), rax)?;
        a.mov(qword_ptr(r15 + 0x38), rdx)?;
        a.mov(edi, 4u32)?;
        a.mov(esi, 1u32)?;
        a.lea(rdx, qword_ptr(r15 + 0x20))?;
        a.xor(r10d, r10d)?;
        syscall(a, TIMERFD_SETTIME)?;
        a.test(rax, rax)?;
        fail_if(a, &mut fail, 18, CodeAssembler::jnz)?;
        a.mov(edi, 3u32)?;
        a.lea(rsi, qword_ptr(r15 + 0x40))?;
        a.mov(edx, 1u32)?;
        a.mov(r10, -1i64)?;
        a.xor(r8d, r8d)?;
        a.xor(r9d, r9d)?;
        syscall(a, EPOLL_PWAIT)?;
        a.cmp(rax, 1)?;
        fail_if(a, &mut fail, 19, CodeAssembler::jne)?;
        a.mov(rax, qword_ptr(r15 + 0x44))?;
        a.mov(ecx, 0xffff_fffeu32)?;
        a.cmp(rax, rcx)?;
        fail_if(a, &mut fail, 20, CodeAssembler::jne)?;
        now(a, 1, r15, &mut fail, 21)?;
        a.sub(rax, rbx)?;
        // Not before the deadline (a negative difference is huge
        // unsigned), and not a second after it.
        a.cmp(rax, 1_000_000_000)?;
        fail_if(a, &mut fail, 22, CodeAssembler::jae)?;
        // 5. tv_nsec of 10^9: EINVAL, as Linux.
        a.mov(qword_ptr(r15 + 0x38), NSEC)?;
        a.mov(edi, 4u32)?;
        a.mov(esi, 1u32)?;
        a.lea(rdx, qword_ptr(r15 + 0x20))?;
        a.xor(r10d, r10d)?;
        syscall(a, TIMERFD_SETTIME)?;
        a.cmp(rax, -22)?;
        fail_if(a, &mut fail, 23, CodeAssembler::jne)?;
        // 6. A timespec in the text or unmapped: EFAULT.
        for (at, code) in [(TEXT_VA, 24u32), (1u64 << 40, 25)] {
            a.mov(edi, 1u32)?;
            a.mov(rsi, at)?;
            syscall(a, CLOCK_GETTIME)?;
            a.cmp(rax, -14)?;
            fail_if(a, &mut fail, code, CodeAssembler::jne)?;
        }
        // 7. Arm 5 ms ahead, then disarm with a zero value: a 20 ms
        // epoll_pwait sees no timer.
        now(a, 1, r15, &mut fail, 26)?;
        a.add(rax, 5_000_000)?;
        a.xor(edx, edx)?;
        a.mov(ecx, NSEC as u32)?;
        a.div(rcx)?;
        a.mov(qword_ptr(r15 + 0x30), rax)?;
        a.mov(qword_ptr(r15 + 0x38), rdx)?;
        for (zero, code) in [(false, 27u32), (true, 28)] {
            if zero {
                a.mov(qword_ptr(r15 + 0x30), 0)?;
                a.mov(qword_ptr(r15 + 0x38), 0)?;
            }
            a.mov(edi, 4u32)?;
            a.mov(esi, 1u32)?;
            a.lea(rdx, qword_ptr(r15 + 0x20))?;
            a.xor(r10d, r10d)?;
            syscall(a, TIMERFD_SETTIME)?;
            a.test(rax, rax)?;
            fail_if(a, &mut fail, code, CodeAssembler::jnz)?;
        }
        a.mov(edi, 3u32)?;
        a.lea(rsi, qword_ptr(r15 + 0x40))?;
        a.mov(edx, 1u32)?;
        a.mov(r10d, 20u32)?;
        a.xor(r8d, r8d)?;
        a.xor(r9d, r9d)?;
        syscall(a, EPOLL_PWAIT)?;
        a.test(rax, rax)?;
        fail_if(a, &mut fail, 29, CodeAssembler::jnz)?;
        exit_group(a, 0)?;
        for (mut l, code) in fail {
            a.set_label(&mut l)?;
            exit_group(a, code)?;
        }
        Ok(())
    });
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // Thousands of clock reads: on the user-mode trampoline only the
    // few before calibration, the slow-path checks and the waits exit.
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        let n = exits(&format!("{}\n{}", r.stderr, r.stdout));
        assert!(n < 400, "{n} exits: the clock was not served in user mode");
    }
}
