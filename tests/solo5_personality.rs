//! Scenario: the Solo5 `spt` personality, checked with unikernels
//! generated here (so it needs nothing from `../shared`): segments get
//! exactly their rights (writing text or executing data faults as
//! SIGSEGV, 139), a system call outside the `spt` policy is SIGSYS (159),
//! and the calls the bindings make behave as on Linux: `arch_prctl` sets
//! the TLS base, `clock_gettime` moves forward, and a yield armed with
//! `timerfd_settime` sleeps in `epoll_pwait` until the timer fires.

mod kvm_support;

use iced_x86::code_asm::*;
use kvm_support::{run_vmm, temp_path, VmmRun};

const TEXT_VA: u64 = 0x10_0000;
const DATA_VA: u64 = 0x10_1000;

/// A minimal `spt` unikernel: text (RX) and a data page (RW) with
/// `data` at its start, the Solo5 ABI note (spt, version 2) and an empty
/// manifest.
fn spt_elf(code: &[u8], data: &[u8]) -> Vec<u8> {
    let note = |ty: u32, desc: &[u8]| {
        let mut n = Vec::new();
        n.extend_from_slice(&6u32.to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&ty.to_le_bytes());
        n.extend_from_slice(b"Solo5\0\0\0");
        n.extend_from_slice(desc);
        while n.len() % 4 != 0 {
            n.push(0);
        }
        n
    };
    let mut abi = Vec::new();
    for v in [2u32, 2, 0, 0] {
        abi.extend_from_slice(&v.to_le_bytes());
    }
    let mut mft = vec![0u8; 4];
    mft.extend_from_slice(&1u32.to_le_bytes());
    mft.extend_from_slice(&1u32.to_le_bytes());
    let mut entry = vec![0u8; 104];
    entry[68..72].copy_from_slice(&(1u32 << 30).to_le_bytes());
    mft.extend_from_slice(&entry);
    let mut notes = note(0x3149_4241, &abi);
    notes.extend(note(0x3154_464d, &mft));

    let (notes_off, text_off, data_off) = (0x100u64, 0x1000u64, 0x2000u64);
    let mut out = vec![0u8; 0x2000];
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&2u16.to_le_bytes());
    out[18..20].copy_from_slice(&62u16.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&TEXT_VA.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&3u16.to_le_bytes());
    let phdrs = [
        (1u32, 5u32, text_off, TEXT_VA, code.len() as u64),
        (1, 6, data_off, DATA_VA, data.len() as u64),
        (4, 4, notes_off, 0, notes.len() as u64),
    ];
    for (i, &(ty, flags, off, va, len)) in phdrs.iter().enumerate() {
        let h = 64 + 56 * i;
        out[h..h + 4].copy_from_slice(&ty.to_le_bytes());
        out[h + 4..h + 8].copy_from_slice(&flags.to_le_bytes());
        out[h + 8..h + 16].copy_from_slice(&off.to_le_bytes());
        out[h + 16..h + 24].copy_from_slice(&va.to_le_bytes());
        out[h + 24..h + 32].copy_from_slice(&va.to_le_bytes());
        out[h + 32..h + 40].copy_from_slice(&len.to_le_bytes());
        out[h + 40..h + 48].copy_from_slice(&len.max(1).to_le_bytes());
        out[h + 48..h + 56].copy_from_slice(&0x1000u64.to_le_bytes());
    }
    out[notes_off as usize..notes_off as usize + notes.len()].copy_from_slice(&notes);
    out[text_off as usize..text_off as usize + code.len()].copy_from_slice(code);
    out.extend_from_slice(data);
    out
}

/// Runs a unikernel whose text `body` emits (at [`TEXT_VA`]), with `data`
/// at [`DATA_VA`].
fn run_spt(name: &str, data: &[u8], body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> VmmRun {
    let mut a = CodeAssembler::new(64).expect("assembler");
    body(&mut a).expect("emit");
    let code = a.assemble(TEXT_VA).expect("assemble");
    let path = temp_path(&format!("{name}.spt"));
    std::fs::write(&path, spt_elf(&code, data)).expect("write");
    let r = run_vmm(&["run", "--timeout", "20", "--mem", "64M", "--guest", path.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&path);
    r
}

fn syscall(a: &mut CodeAssembler, nr: u64) -> Result<(), IcedError> {
    a.mov(rax, nr)?;
    a.syscall()
}

fn exit_group(a: &mut CodeAssembler, status: u32) -> Result<(), IcedError> {
    a.mov(edi, status)?;
    syscall(a, 231)
}

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

#[test]
fn a_call_outside_the_policy_is_sigsys() {
    need_kvm!();
    // getpid (39): not in the spt policy.
    let r = run_spt("getpid", &[0], |a| {
        syscall(a, 39)?;
        exit_group(a, 0)
    });
    assert_eq!(r.code, 159, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("killed by SIGSYS"), "{}", r.stdout);
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
    let mut img = spt_elf(&[0xf4], &[0]);
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
