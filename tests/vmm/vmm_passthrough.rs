//! Scenario: a BAR window backed by a host file and registered as a KVM
//! memory slot: host writes are visible to the guest, guest writes are
//! visible in the file, and guest accesses cause no exits.

use iced_x86::code_asm::*;
use vmm::guest::asm::{hcall, mmap, Arg};
use vmm::hosted::stub::abi::{fd, map, nr, prot, window_pattern};
use vmm_suite::kvm::{run_vmm, temp_path, write_guest};
use vmm_suite::need_kvm;

const HOST_VALUE: u64 = 0x1122_3344_5566_7788;
const GUEST_VALUE: u64 = 0xfeed_face_1234_5678;
const SIZE: u64 = 0x2000;

fn config(path: &std::path::Path, backing: &std::path::Path) {
    std::fs::write(
        path,
        format!(
            "timeout_secs = 20\n[[bar]]\nbase = 0xe0000000\nsize = 0x10000\n\
             [[bar]]\nbase = 0xe0010000\nsize = {SIZE:#x}\nbacking = \"{}\"\n",
            backing.display()
        ),
    )
    .expect("write config");
}

#[test]
fn host_and_guest_see_each_others_writes() {
    need_kvm!();
    let backing = temp_path("bar1.bin");
    let mut img = vec![0u8; SIZE as usize];
    img[..8].copy_from_slice(&HOST_VALUE.to_le_bytes());
    std::fs::write(&backing, &img).expect("write backing");
    let cfg = temp_path("pt.toml");
    config(&cfg, &backing);

    // Map BAR 1, report what the host put at offset 0 and how many MMIO
    // exits 1000 accesses cost, write a value at offset 8, exit.
    let elf = write_guest("pt", |a| {
        mmap(a, Arg::Imm(0), SIZE, prot::READ | prot::WRITE, map::SHARED, fd::BAR0 + 1, 0)?;
        a.mov(rbx, rax)?;
        a.mov(rdx, qword_ptr(rbx))?;
        a.mov(rax, HOST_VALUE)?;
        a.cmp(rdx, rax)?;
        a.sete(sil)?;
        a.movzx(esi, sil)?;
        hcall(a, nr::REPORT, &[Arg::Imm(101), Arg::Keep, Arg::Keep, Arg::Reg(rax), Arg::Imm(0)])?;
        hcall(a, nr::EXIT_COUNT, &[Arg::Imm(1)])?;
        a.mov(rbp, rax)?;
        a.mov(rax, GUEST_VALUE)?;
        a.mov(ecx, 1000)?;
        let mut lp = a.create_label();
        a.set_label(&mut lp)?;
        a.mov(qword_ptr(rbx + 8), rax)?;
        a.add(rdx, qword_ptr(rbx + 16))?;
        a.dec(ecx)?;
        a.jnz(lp)?;
        hcall(a, nr::EXIT_COUNT, &[Arg::Imm(1)])?;
        a.sub(rax, rbp)?;
        a.mov(rdx, rax)?;
        a.xor(esi, esi)?;
        a.test(rdx, rdx)?;
        a.sete(sil)?;
        hcall(a, nr::REPORT, &[Arg::Imm(102), Arg::Keep, Arg::Keep, Arg::Imm(0), Arg::Imm(0)])?;
        a.mov(edx, 0xf4u32)?;
        a.xor(eax, eax)?;
        a.out(dx, eax)
    });
    let r =
        run_vmm(&["run", "--json", "--config", cfg.to_str().expect("utf-8"), "--guest", elf.to_str().expect("utf-8")]);
    let after = std::fs::read(&backing).expect("read backing");
    for p in [&elf, &cfg, &backing] {
        let _ = std::fs::remove_file(p);
    }
    assert_eq!(r.code, 1, "exit port value 0: status 1\n{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let checks = j["checks"].as_array().expect("checks");
    let by_id = |id: u64| checks.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("check {id}: {checks:?}"));
    assert_eq!(by_id(101)["passed"], true, "host write not seen by the guest: {}", by_id(101));
    assert_eq!(by_id(102)["passed"], true, "MMIO exits on the passed-through window: {}", by_id(102));
    assert_eq!(&after[8..16], &GUEST_VALUE.to_le_bytes(), "guest write not in the file");
    assert_eq!(&after[..8], &HOST_VALUE.to_le_bytes());
}

#[test]
fn builtin_guest_with_a_file_backed_window() {
    need_kvm!();
    let backing = temp_path("bar1-builtin.bin");
    std::fs::write(&backing, vec![0u8; SIZE as usize]).expect("write backing");
    let cfg = temp_path("pt-builtin.toml");
    config(&cfg, &backing);
    let r = run_vmm(&["run", "--json", "--config", cfg.to_str().expect("utf-8")]);
    let after = std::fs::read(&backing).expect("read backing");
    let _ = std::fs::remove_file(&cfg);
    let _ = std::fs::remove_file(&backing);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // The VMM wrote its pattern (host -> guest), the guest wrote the
    // complement at +0x800 of every page (guest -> host).
    for page in [0u64, 0x1000] {
        let word = |off: u64| u64::from_le_bytes(after[off as usize..off as usize + 8].try_into().expect("8 bytes"));
        assert_eq!(word(page), window_pattern(page));
        assert_eq!(word(page + 0x800), !window_pattern(page + 0x800));
    }
}

/// Issue 20 item 15: a window configured `cache = "wc"`, seen by a real
/// guest: an executable mapping is `EPERM`, a mapping that is not the
/// window is `ENXIO` (as iommufd answers), and a write and read-back
/// through the write-combining entries reach the file. (The entries'
/// PAT bits themselves are checked with the independent walker in
/// `tests/mapper/mapper_bar_cache.rs`.)
#[test]
fn a_write_combining_window_answers_as_iommufd() {
    need_kvm!();
    let backing = temp_path("bar1-wc.bin");
    std::fs::write(&backing, vec![0u8; SIZE as usize]).expect("write backing");
    let cfg = temp_path("pt-wc.toml");
    std::fs::write(
        &cfg,
        format!(
            "timeout_secs = 20\n[[bar]]\nbase = 0xe0000000\nsize = 0x10000\n\
             [[bar]]\nbase = 0xe0010000\nsize = {SIZE:#x}\nbacking = \"{}\"\ncache = \"wc\"\n",
            backing.display()
        ),
    )
    .expect("write config");
    let bar1 = fd::BAR0 + 1;
    let elf = write_guest("pt-wc", |a| {
        // Check `id`: rax == want (a -errno), observed value in rdx.
        let expect_ret = |a: &mut CodeAssembler, id: u64, want: i64| -> Result<(), IcedError> {
            a.mov(rdx, rax)?;
            a.mov(rcx, want as u64)?;
            a.xor(esi, esi)?;
            a.cmp(rdx, rcx)?;
            a.sete(sil)?;
            hcall(a, nr::REPORT, &[Arg::Imm(id), Arg::Keep, Arg::Keep, Arg::Imm(0), Arg::Imm(0)])
        };
        mmap(a, Arg::Imm(0), SIZE, prot::READ | prot::EXEC, map::SHARED, bar1, 0)?;
        expect_ret(a, 201, -1)?; // EPERM
        mmap(a, Arg::Imm(0), 0x1000, prot::READ, map::SHARED, bar1, 0)?;
        expect_ret(a, 202, -6)?; // ENXIO
        mmap(a, Arg::Imm(0), SIZE, prot::READ | prot::WRITE, map::SHARED, bar1, 0x1000)?;
        expect_ret(a, 203, -6)?; // ENXIO: not the window's offset
        mmap(a, Arg::Imm(0), SIZE, prot::READ | prot::WRITE, map::SHARED, bar1, 0)?;
        a.mov(rbx, rax)?;
        a.mov(rax, GUEST_VALUE)?;
        a.mov(qword_ptr(rbx + 8), rax)?;
        a.sfence()?;
        a.mov(rax, qword_ptr(rbx + 8))?;
        expect_ret(a, 204, GUEST_VALUE as i64)?;
        a.mov(edx, 0xf4u32)?;
        a.xor(eax, eax)?;
        a.out(dx, eax)
    });
    let r =
        run_vmm(&["run", "--json", "--config", cfg.to_str().expect("utf-8"), "--guest", elf.to_str().expect("utf-8")]);
    let after = std::fs::read(&backing).expect("read backing");
    for p in [&elf, &cfg, &backing] {
        let _ = std::fs::remove_file(p);
    }
    assert_eq!(r.code, 1, "exit port value 0: status 1\n{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let checks = j["checks"].as_array().expect("checks");
    for id in 201..=204u64 {
        let c = checks.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("check {id}: {checks:?}"));
        assert_eq!(c["passed"], true, "check {id}: {c}");
    }
    assert_eq!(&after[8..16], &GUEST_VALUE.to_le_bytes(), "guest write through WC entries not in the file");
}
