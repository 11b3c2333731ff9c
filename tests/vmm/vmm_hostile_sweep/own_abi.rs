//! Hostile guests of the VMM's own ABI (hypercalls through port 0xe8),
//! assembled here with `iced-x86`.

use iced_x86::code_asm::*;
use vmm::guest::asm::{hcall, Arg};
use vmm::hosted::stub::abi::{madv, map, mremap, nr, prot};
use vmm_suite::kvm::write_guest;

use super::measure::{sweep, Case, Ended, Expect, Stdout, SELF_ENDING, TIMED_OUT, TIMED_OUT_UNREAD};

const GIB: u64 = 1 << 30;

/// Runs the guest `body` emits with `extra` options before `--guest`.
fn own_abi(
    name: &'static str,
    mem_mib: u64,
    timeout_s: u64,
    extra: &[&str],
    stdout: Stdout,
    expect: Expect,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Ended {
    let elf = write_guest(name, body);
    let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    args.extend(["--guest".to_owned(), elf.to_str().expect("utf-8 path").to_owned()]);
    let e = sweep(Case { name, mem_mib, timeout_s, args, stdout, expect });
    let _ = std::fs::remove_file(&elf);
    e
}

/// `mmap(0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, 0, 0)`, the address
/// to `r12`.
fn mmap_anon(a: &mut CodeAssembler, len: u64, p: u64) -> Result<(), IcedError> {
    hcall(
        a,
        nr::MMAP,
        &[Arg::Imm(0), Arg::Imm(len), Arg::Imm(p), Arg::Imm(map::PRIVATE | map::ANONYMOUS), Arg::Imm(0), Arg::Imm(0)],
    )?;
    a.mov(r12, rax)
}

/// Reports `reg` as check `id`.
fn report(a: &mut CodeAssembler, id: u64, reg: AsmRegister64) -> Result<(), IcedError> {
    hcall(a, nr::REPORT, &[Arg::Imm(id), Arg::Imm(1), Arg::Reg(reg), Arg::Imm(0), Arg::Imm(0)])
}

// 1 GiB of private anonymous memory with 128 MiB of guest RAM, written a
// page at a time: the fault that cannot be filled ends the run.
fresh_test!(abi_touch_everything, {
    own_abi(
        "abi-touch",
        128,
        SELF_ENDING,
        &[],
        Stdout::Drained,
        Expect { code: 2, text: "guest RAM exhausted" },
        |a| {
            mmap_anon(a, GIB, prot::READ | prot::WRITE)?;
            a.xor(r13d, r13d)?;
            let mut again = a.create_label();
            a.set_label(&mut again)?;
            a.mov(byte_ptr(r12 + r13), 1u32)?;
            a.add(r13, 4096)?;
            a.mov(rax, GIB)?;
            a.cmp(r13, rax)?;
            a.jb(again)?;
            hcall(a, nr::EXIT_GROUP, &[Arg::Imm(0)])?;
            a.ud2()
        },
    );
});

// One page grown by mremap(MAYMOVE) a page at a time, 6,000 times, the
// new last page written each time.
fresh_test!(abi_mremap_growth, {
    const STEPS: i32 = 6_000;
    let e = own_abi(
        "abi-mremap",
        128,
        SELF_ENDING,
        &["--json"],
        Stdout::Drained,
        Expect { code: 0, text: "\"passed\"" },
        |a| {
            mmap_anon(a, 4096, prot::READ | prot::WRITE)?;
            a.mov(r13d, 4096u32)?;
            a.xor(r14d, r14d)?;
            let mut again = a.create_label();
            let mut done = a.create_label();
            a.set_label(&mut again)?;
            a.lea(r15, qword_ptr(r13 + 4096))?;
            hcall(
                a,
                nr::MREMAP,
                &[Arg::Reg(r12), Arg::Reg(r13), Arg::Reg(r15), Arg::Imm(mremap::MAYMOVE), Arg::Imm(0)],
            )?;
            a.cmp(rax, -4095)?;
            a.jae(done)?;
            a.mov(r12, rax)?;
            a.mov(r13, r15)?;
            a.mov(byte_ptr(r12 + r13 - 1), 1u32)?;
            a.inc(r14)?;
            a.cmp(r14, STEPS)?;
            a.jb(again)?;
            a.set_label(&mut done)?;
            report(a, 1, r14)?;
            hcall(a, nr::EXIT_GROUP, &[Arg::Imm(0)])?;
            a.ud2()
        },
    );
    assert!(e.stdout.0.contains(&format!("value {STEPS:#x}")), "{}", e.stdout.0);
});

// Two vCPUs reporting as fast as they can until the watchdog.
fresh_test!(abi_report_flood, {
    own_abi("abi-report-flood", 64, 2, &["--vcpus", "2"], Stdout::Drained, TIMED_OUT, |a| {
        a.xor(r12d, r12d)?;
        let mut again = a.create_label();
        a.set_label(&mut again)?;
        a.inc(r12)?;
        report(a, 7, r12)?;
        a.jmp(again)
    });
});

// 64 KiB console writes forever into a standard output nobody reads.
fresh_test!(abi_console_flood_unread, {
    own_abi("abi-write-flood", 64, 2, &[], Stdout::Unread, TIMED_OUT_UNREAD, |a| {
        mmap_anon(a, 64 << 10, prot::READ | prot::WRITE)?;
        let mut again = a.create_label();
        a.set_label(&mut again)?;
        hcall(a, nr::WRITE, &[Arg::Imm(1), Arg::Reg(r12), Arg::Imm(64 << 10)])?;
        a.jmp(again)
    });
});

// Every other page of a 65,000-pair mapping made writable, until the
// mapping limit refuses (ENOMEM), then all of it unmapped.
fresh_test!(abi_max_mappings, {
    let e = own_abi(
        "abi-maps",
        64,
        SELF_ENDING,
        &["--json"],
        Stdout::Drained,
        Expect { code: 0, text: "\"passed\"" },
        |a| {
            mmap_anon(a, 65_000 * 2 * 4096, prot::READ)?;
            a.xor(r13d, r13d)?; // offset
            a.xor(r14d, r14d)?; // mprotects that succeeded
            let mut again = a.create_label();
            let mut done = a.create_label();
            a.set_label(&mut again)?;
            a.lea(rbx, qword_ptr(r12 + r13))?;
            hcall(a, nr::MPROTECT, &[Arg::Reg(rbx), Arg::Imm(4096), Arg::Imm(prot::READ | prot::WRITE)])?;
            a.test(rax, rax)?;
            a.jnz(done)?;
            a.add(r13, 2 * 4096)?;
            a.inc(r14)?;
            a.cmp(r14, 65_000)?;
            a.jb(again)?;
            a.set_label(&mut done)?;
            a.mov(r15, rax)?;
            hcall(a, nr::MUNMAP, &[Arg::Reg(r12), Arg::Imm(65_000 * 2 * 4096)])?;
            a.mov(rbx, rax)?;
            report(a, 1, r14)?;
            report(a, 2, r15)?;
            report(a, 3, rbx)?;
            hcall(a, nr::EXIT_GROUP, &[Arg::Imm(0)])?;
            a.ud2()
        },
    );
    // Each mprotect adds two mappings: about 65,530 / 2 succeed (the
    // program's own few mappings count too), then ENOMEM; munmap succeeds.
    let j: serde_json::Value = serde_json::from_str(&e.stdout.0).expect("JSON report");
    let value = |id: u64| {
        let c = j["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == id)).cloned().expect("check");
        let hex = c["detail"].as_str().and_then(|d| d.strip_prefix("value 0x")).map(str::to_owned).expect("value");
        u64::from_str_radix(&hex, 16).expect("hex")
    };
    assert!((32_700..32_765).contains(&value(1)), "mprotects {}", value(1));
    assert_eq!(value(2), -12i64 as u64, "ENOMEM");
    assert_eq!(value(3), 0, "munmap");
});

// 64 GiB of private read-only memory, madvise(WILLNEED), munmap.
fresh_test!(abi_64_gib_willneed, {
    own_abi("abi-willneed", 64, SELF_ENDING, &[], Stdout::Drained, Expect { code: 0, text: "PASS" }, |a| {
        mmap_anon(a, 64 * GIB, prot::READ)?;
        hcall(a, nr::MADVISE, &[Arg::Reg(r12), Arg::Imm(64 * GIB), Arg::Imm(madv::WILLNEED)])?;
        hcall(a, nr::MUNMAP, &[Arg::Reg(r12), Arg::Imm(64 * GIB)])?;
        a.mov(r13, rax)?;
        report(a, 1, r13)?;
        hcall(a, nr::EXIT_GROUP, &[Arg::Imm(0)])?;
        a.ud2()
    });
});

// An exception the guest asked to survive, taken again and again.
fresh_test!(abi_fault_flood, {
    own_abi("abi-fault-flood", 64, 2, &[], Stdout::Drained, TIMED_OUT, |a| {
        let mut again = a.create_label();
        let mut resume = a.create_label();
        a.set_label(&mut again)?;
        a.lea(rdi, qword_ptr(resume))?;
        a.mov(rax, nr::EXPECT_FAULT)?;
        a.out(0xe8, al)?;
        a.ud2()?;
        a.set_label(&mut resume)?;
        a.jmp(again)
    });
});
