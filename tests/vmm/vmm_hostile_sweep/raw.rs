//! Hostile raw multiboot kernels (`vmm run --kernel`): 32-bit code with
//! paging off, built with `vmm_suite::kvm::multiboot`.

use iced_x86::code_asm::*;
use vmm_suite::kvm::{multiboot, temp_path};

use super::measure::{sweep, Case, Ended, Expect, Stdout, TIMED_OUT, TIMED_OUT_UNREAD};

/// Boots the kernel whose code `body` emits.
fn raw(
    name: &'static str,
    mem_mib: u64,
    timeout_s: u64,
    extra: &[&str],
    stdout: Stdout,
    expect: Expect,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Ended {
    let k = temp_path(&format!("{name}.elf32"));
    std::fs::write(&k, multiboot::elf32(&multiboot::code32(multiboot::ELF32_ENTRY, body))).expect("write kernel");
    let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    args.extend(["--kernel".to_owned(), k.to_str().expect("utf-8 path").to_owned()]);
    let e = sweep(Case { name, mem_mib, timeout_s, args, stdout, expect });
    let _ = std::fs::remove_file(&k);
    e
}

/// Emits `out 0x3f8, al` forever.
fn serial_flood(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.mov(dx, 0x3f8u32)?;
    a.mov(al, b'x' as u32)?;
    let mut again = a.create_label();
    a.set_label(&mut again)?;
    a.out(dx, al)?;
    a.jmp(again)
}

// A busy loop with interrupts off.
fresh_test!(raw_spin, {
    raw("raw-spin", 64, 2, &[], Stdout::Drained, TIMED_OUT, |a| {
        a.cli()?;
        let mut again = a.create_label();
        a.set_label(&mut again)?;
        a.jmp(again)
    });
});

// `hlt` with interrupts off: nothing can ever wake the CPU.
fresh_test!(raw_halt_forever, {
    raw("raw-halt", 64, 2, &[], Stdout::Drained, TIMED_OUT, |a| {
        a.cli()?;
        let mut again = a.create_label();
        a.set_label(&mut again)?;
        a.hlt()?;
        a.jmp(again)
    });
});

// The serial port written a byte at a time, as fast as it goes.
fresh_test!(raw_serial_flood, {
    raw("raw-serial", 64, 2, &[], Stdout::Drained, TIMED_OUT, serial_flood);
});

// The same into a standard output nobody reads.
fresh_test!(raw_serial_flood_unread, {
    raw("raw-serial-unread", 64, 2, &[], Stdout::Unread, TIMED_OUT_UNREAD, serial_flood);
});

// Every dword of the I/O APIC's and the local APIC's pages written with
// its own address, then the first dword of every page of the 4 GiB
// physical space from 0xfe00_0000 up, wrapping to 2 MiB, over and over:
// device windows, the VMM's own pages above RAM, holes and RAM.
fresh_test!(raw_physical_sweep, {
    raw("raw-sweep", 64, 3, &[], Stdout::Drained, TIMED_OUT, |a| {
        a.cli()?;
        for base in [0xfec0_0000u32, 0xfee0_0000] {
            let mut dwords = a.create_label();
            a.mov(edi, base)?;
            a.set_label(&mut dwords)?;
            a.mov(dword_ptr(edi), edi)?;
            a.add(edi, 4)?;
            a.cmp(edi, base + 0x1000)?;
            a.jb(dwords)?;
        }
        let mut wrap = a.create_label();
        let mut again = a.create_label();
        a.mov(edi, 0xfe00_0000u32)?;
        a.set_label(&mut again)?;
        a.mov(dword_ptr(edi), edi)?;
        a.add(edi, 4096)?;
        a.jnc(again)?;
        a.set_label(&mut wrap)?;
        a.mov(edi, 0x20_0000u32)?;
        a.jmp(again)
    });
});

// A jump to an address nothing backs (no instruction bytes for KVM to
// emulate): an error with its message, status 2.
fresh_test!(raw_jump_to_nothing, {
    let expect = Expect { code: 2, text: "could not emulate the instruction at rip 0xe0000000" };
    raw("raw-jump", 64, 2, &[], Stdout::Drained, expect, |a| {
        a.mov(eax, 0xe000_0000u32)?;
        a.jmp(eax)
    });
});
