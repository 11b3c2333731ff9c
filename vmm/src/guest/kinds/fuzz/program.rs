//! The in-guest fuzzer: a generated guest (`iced-x86`) whose vCPUs issue
//! random hypercalls, seeded and reproducible, and probe mappings through
//! the CPU under `expect_fault`.
//!
//! Each vCPU runs its own xorshift64 generator, seeded from [`Params::seed`]
//! and its index, and issues hypercalls until it has made its share of
//! [`Params::calls`] (vCPU 0 takes the remainder). An operation is one of:
//! - a fixed `mmap` (`MAP_FIXED` or `MAP_FIXED_NOREPLACE`) in the vCPU's
//!   own 8 MiB **arena**, with a random provider, flags, offset, length and
//!   protection (many combinations are refused: that is the point);
//! - `munmap` or `mprotect` of a random range of the arena;
//! - a placed anonymous `mmap` in the mmap window, probed, then unmapped;
//! - `translate`, `vcpu_id`, `exit_count`, `write` with a bad fd, an
//!   unknown number;
//! - `mmap`, `munmap`, `mprotect` with random registers (addresses forced
//!   above 4 GiB so they cannot hit the program, its stacks or an arena);
//! - a **probe**: `translate(P)`, then a read or write of `P` with
//!   `expect_fault` armed.
//!
//! What the guest checks (reported per vCPU, see [`id`]):
//! - every result is a value or `-errno` (`-4095..=-1`); a successful
//!   fixed `mmap` returns exactly its address; `vcpu_id` is right;
//! - every probe agrees with the VMM's page tables: an access that did
//!   not fault went through a page `translate` calls mapped; a fault is a
//!   `#PF` at exactly `P`, with the present bit set if and only if
//!   `translate` found a mapping, never a reserved-bit fault, never a read
//!   fault on a present page.
//!
//! Arenas are per vCPU, so with several vCPUs the oracle stays exact
//! while the vCPUs' `munmap`s and `mprotect`s shoot each other's TLBs down.
//! The VMM's end-of-run invariant check (`--check-invariants`, always on
//! for `vmm fuzz-guest`) then audits the address space the run left.
//!
//! This module only generates code; the runner runs it like the built-in
//! guest.

use iced_x86::code_asm::*;

use crate::guest::asm::AsmResult;
use crate::hosted::program::{Program, Segment};
use crate::hosted::stub::abi::{fd, map, nr, HCALL_PORT};
use crate::layout::{BUILTIN_CODE_VA, BUILTIN_DATA_VA, FREE_PA, PAGE_SIZE, POOL_PA};

/// What the generated fuzzer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Seed of the generators (vCPU `i` mixes in `i`).
    pub seed: u64,
    /// Hypercalls in total, over all vCPUs (each vCPU stops at the first
    /// operation boundary after its share).
    pub calls: u64,
    /// vCPUs.
    pub vcpus: u8,
    /// Guest RAM in bytes (offsets near its end are tried).
    pub mem_size: u64,
}

/// Check ids the fuzzer reports (once per vCPU).
pub mod id {
    /// Hypercalls issued (value: the count; passes when it reached the
    /// vCPU's share).
    pub const CALLS: u64 = 0x100;
    /// Results well formed (value: bad results; step: the call number of
    /// the first).
    pub const RESULTS: u64 = 0x101;
    /// Probes agree with the VMM's tables (value: bad probes; step: the
    /// call number of the first).
    pub const PROBES: u64 = 0x102;
    /// Probes made (informational).
    pub const PROBES_MADE: u64 = 0x103;
    /// Probes that faulted (informational).
    pub const PROBES_FAULTED: u64 = 0x104;
}

/// Most vCPUs the fuzzer supports (arenas and statistics slots).
pub const MAX_VCPUS: u8 = 16;
/// First vCPU's arena; vCPU `i`'s is `ARENA_BASE + i * ARENA_STRIDE`.
pub const ARENA_BASE: u64 = 0x1000_0000;
/// Distance between two arenas.
pub const ARENA_STRIDE: u64 = 0x100_0000;
/// Pages of an arena a range may start in (8 MiB); ranges reach at most
/// 2 MiB further, well short of the next arena.
pub const ARENA_PAGES: u64 = 2048;

/// Offsets in a vCPU's statistics slot (`BUILTIN_DATA_VA + i * SLOT`).
mod slot {
    pub const SIZE: u64 = 0x100;
    pub const CALLS: i32 = 0x00;
    pub const BAD_RESULTS: i32 = 0x08;
    pub const FIRST_BAD_RESULT: i32 = 0x10;
    pub const BAD_PROBES: i32 = 0x18;
    pub const FIRST_BAD_PROBE: i32 = 0x20;
    pub const PROBES: i32 = 0x28;
    pub const FAULTS: i32 = 0x30;
}

const PF_VECTOR: u64 = 14;

/// The checks the report expects.
pub fn checks() -> Vec<(u64, String)> {
    vec![
        (id::CALLS, "fuzz: hypercalls issued (value: total over the vCPUs)".into()),
        (id::RESULTS, "fuzz: every result a value or -errno, fixed mmap at its address, vcpu_id right".into()),
        (id::PROBES, "fuzz: every probe through the CPU agrees with the VMM's tables".into()),
        (id::PROBES_MADE, "fuzz: probes made (value: total)".into()),
        (id::PROBES_FAULTED, "fuzz: probes that faulted (value: total)".into()),
    ]
}

/// Register use: `r15` vCPU index, `r14` generator state, `rbx` the
/// statistics slot, `r13` this vCPU's share of calls, `r12` its arena,
/// `r11` the probe address, `rbp` the probe's `translate` result.
struct Gen<'a> {
    a: &'a mut CodeAssembler,
    rnd: CodeLabel,
    probe: CodeLabel,
    bad_result: CodeLabel,
}

impl Gen<'_> {
    /// `out` to the hypercall port, counted, with the result checked to be
    /// a value or `-errno`.
    fn call(&mut self, number: u64) -> AsmResult {
        let a = &mut *self.a;
        a.mov(rax, number)?;
        a.out(u32::from(HCALL_PORT), al)?;
        a.inc(qword_ptr(rbx + slot::CALLS))?;
        let mut ok = a.create_label();
        a.cmp(rax, -4095)?;
        a.jge(ok)?;
        a.call(self.bad_result)?;
        a.set_label(&mut ok)?;
        a.nop()
    }

    /// `reg = rnd() % n` for a power of two `n` (from the high bits).
    fn rnd_below(&mut self, reg: AsmRegister64, n: u64) -> AsmResult {
        debug_assert!(n.is_power_of_two());
        self.a.call(self.rnd)?;
        self.a.shr(rax, 32)?;
        self.a.and(rax, (n - 1) as i32)?;
        if reg != rax {
            self.a.mov(reg, rax)?;
        }
        Ok(())
    }

    /// `reg = table[rnd() % table.len()]` (the table lives in the code).
    fn pick(&mut self, reg: AsmRegister64, table: CodeLabel, len: u64) -> AsmResult {
        self.rnd_below(rax, len)?;
        self.a.lea(reg, ptr(table))?;
        self.a.mov(reg, qword_ptr(reg + rax * 8))
    }

    /// `rdi` = a random page of the arena, 2 MiB aligned one time in four;
    /// `rsi` = 1..=16 pages, or 2 MiB one time in four.
    fn arena_range(&mut self) -> AsmResult {
        let mut len_small = self.a.create_label();
        let mut len_done = self.a.create_label();
        let mut addr_done = self.a.create_label();
        self.rnd_below(rdi, ARENA_PAGES)?;
        self.rnd_below(rax, 4)?;
        self.a.test(eax, eax)?;
        self.a.jnz(addr_done)?;
        self.a.and(rdi, !0x1ff)?;
        self.a.set_label(&mut addr_done)?;
        self.a.shl(rdi, 12)?;
        self.a.add(rdi, r12)?;
        self.rnd_below(rax, 4)?;
        self.a.test(eax, eax)?;
        self.a.jnz(len_small)?;
        self.a.mov(esi, 0x20_0000)?;
        self.a.jmp(len_done)?;
        self.a.set_label(&mut len_small)?;
        self.rnd_below(rsi, 16)?;
        self.a.inc(rsi)?;
        self.a.shl(rsi, 12)?;
        self.a.set_label(&mut len_done)?;
        self.a.nop()
    }
}

/// Builds the fuzzer program for `p`.
pub fn build(p: &Params) -> AsmResult<Program> {
    let mut a = CodeAssembler::new(64)?;
    let rnd = a.create_label();
    let probe = a.create_label();
    let bad_result = a.create_label();
    let mut fds = a.create_label();
    let mut flags = a.create_label();
    let mut offs = a.create_label();
    let mut g = Gen { a: &mut a, rnd, probe, bad_result };
    let vcpus = u64::from(p.vcpus.clamp(1, MAX_VCPUS));
    let share = p.calls / vcpus;
    let rest = p.calls % vcpus;

    // Entry: rdi = vCPU index.
    let a = &mut *g.a;
    a.mov(r15, rdi)?;
    a.mov(rbx, r15)?;
    a.shl(rbx, slot::SIZE.trailing_zeros())?;
    a.mov(rax, BUILTIN_DATA_VA)?;
    a.add(rbx, rax)?;
    a.mov(r12, r15)?;
    a.shl(r12, ARENA_STRIDE.trailing_zeros())?;
    a.mov(rax, ARENA_BASE)?;
    a.add(r12, rax)?;
    a.mov(r13, share)?;
    let mut not_first = a.create_label();
    a.test(r15, r15)?;
    a.jnz(not_first)?;
    a.mov(rax, rest)?;
    a.add(r13, rax)?;
    a.set_label(&mut not_first)?;
    // r14 = seed ^ (index + 1) * golden, never 0.
    a.lea(r14, qword_ptr(r15 + 1))?;
    a.mov(rax, 0x9e37_79b9_7f4a_7c15u64)?;
    a.imul_2(r14, rax)?;
    a.mov(rax, p.seed)?;
    a.xor(r14, rax)?;
    let mut seeded = a.create_label();
    a.jnz(seeded)?;
    a.mov(r14d, 1)?;
    a.set_label(&mut seeded)?;
    a.nop()?;

    let mut top = a.create_label();
    let mut done = a.create_label();
    a.set_label(&mut top)?;
    a.cmp(qword_ptr(rbx + slot::CALLS), r13)?;
    a.jae(done)?;
    // op = rnd % 16
    g.rnd_below(rcx, 16)?;
    let mut ops: Vec<CodeLabel> = (0..8).map(|_| g.a.create_label()).collect();
    // 0-3 fixed mmap, 4-5 munmap, 6-7 mprotect, 8 placed mmap, 9
    // translate, 10 garbage munmap/mprotect, 11 garbage mmap, 12 misc,
    // 13 write, 14-15 probe.
    let bounds: [(u32, usize); 7] = [(4, 0), (6, 1), (8, 2), (9, 3), (10, 4), (12, 5), (14, 6)];
    for &(below, op) in &bounds {
        g.a.cmp(ecx, below)?;
        g.a.jb(ops[op])?;
    }
    g.a.jmp(ops[7])?;

    // Fixed mmap in the arena.
    g.a.set_label(&mut ops[0])?;
    g.arena_range()?;
    g.rnd_below(rdx, 8)?;
    g.pick(r10, flags, 8)?;
    g.pick(r8, fds, 8)?;
    g.pick(r9, offs, 8)?;
    g.call(nr::MMAP)?;
    let mut failed = g.a.create_label();
    g.a.test(rax, rax)?;
    g.a.js(failed)?;
    let mut at_addr = g.a.create_label();
    g.a.cmp(rax, rdi)?;
    g.a.je(at_addr)?;
    g.a.call(bad_result)?;
    g.a.set_label(&mut at_addr)?;
    g.a.mov(r11, rdi)?;
    g.a.call(probe)?;
    g.a.set_label(&mut failed)?;
    g.a.jmp(top)?;

    // munmap in the arena.
    g.a.set_label(&mut ops[1])?;
    g.arena_range()?;
    g.call(nr::MUNMAP)?;
    g.a.jmp(top)?;

    // mprotect in the arena.
    g.a.set_label(&mut ops[2])?;
    g.arena_range()?;
    g.rnd_below(rdx, 8)?;
    g.call(nr::MPROTECT)?;
    g.a.jmp(top)?;

    // A placed anonymous mapping: probe its first page, unmap it.
    g.a.set_label(&mut ops[3])?;
    g.a.xor(edi, edi)?;
    g.rnd_below(rsi, 16)?;
    g.a.inc(rsi)?;
    g.a.shl(rsi, 12)?;
    g.rnd_below(rdx, 8)?;
    g.a.mov(r10d, (map::PRIVATE | map::ANONYMOUS) as u32)?;
    g.a.mov(r8, u64::MAX)?;
    g.a.xor(r9d, r9d)?;
    g.call(nr::MMAP)?;
    let mut failed = g.a.create_label();
    g.a.test(rax, rax)?;
    g.a.js(failed)?;
    g.a.mov(r11, rax)?;
    g.a.push(rsi)?;
    g.a.call(probe)?;
    g.a.pop(rsi)?;
    g.a.mov(rdi, r11)?;
    g.call(nr::MUNMAP)?;
    g.a.set_label(&mut failed)?;
    g.a.jmp(top)?;

    // translate(arena page, what = 0..3).
    g.a.set_label(&mut ops[4])?;
    g.arena_range()?;
    g.rnd_below(rsi, 4)?;
    g.call(nr::TRANSLATE)?;
    g.a.jmp(top)?;

    // Garbage: munmap or mprotect (rnd bit) or mmap with random registers,
    // addresses forced to 4 GiB and up.
    g.a.set_label(&mut ops[5])?;
    for r in [rdi, rsi, rdx, r10, r8, r9] {
        g.a.call(rnd)?;
        g.a.mov(r, rax)?;
    }
    g.a.bts(rdi, 32)?;
    // Half the time a plausible provider handle.
    let mut raw_fd = g.a.create_label();
    g.rnd_below(rax, 2)?;
    g.a.test(eax, eax)?;
    g.a.jz(raw_fd)?;
    g.a.and(r8, 0x3ff)?;
    g.a.set_label(&mut raw_fd)?;
    let mut not_mmap = g.a.create_label();
    let mut not_munmap = g.a.create_label();
    g.a.cmp(ecx, 11)?;
    g.a.jb(not_mmap)?;
    g.call(nr::MMAP)?;
    g.a.jmp(top)?;
    g.a.set_label(&mut not_mmap)?;
    g.a.bt(rsi, 63)?;
    g.a.jc(not_munmap)?;
    g.call(nr::MUNMAP)?;
    g.a.jmp(top)?;
    g.a.set_label(&mut not_munmap)?;
    g.call(nr::MPROTECT)?;
    g.a.jmp(top)?;

    // Misc: vcpu_id (must be ours), exit_count(0..3), an unknown number,
    // write(bad fd).
    g.a.set_label(&mut ops[6])?;
    let (mut m1, mut m2, mut m3) = (g.a.create_label(), g.a.create_label(), g.a.create_label());
    g.rnd_below(rax, 4)?;
    g.a.cmp(eax, 1)?;
    g.a.je(m1)?;
    g.a.cmp(eax, 2)?;
    g.a.je(m2)?;
    g.a.cmp(eax, 3)?;
    g.a.je(m3)?;
    g.call(nr::VCPU_ID)?;
    let mut right = g.a.create_label();
    g.a.cmp(rax, r15)?;
    g.a.je(right)?;
    g.a.call(bad_result)?;
    g.a.set_label(&mut right)?;
    g.a.jmp(top)?;
    g.a.set_label(&mut m1)?;
    g.rnd_below(rdi, 4)?;
    g.call(nr::EXIT_COUNT)?;
    g.a.jmp(top)?;
    g.a.set_label(&mut m2)?;
    g.a.call(rnd)?;
    g.a.bts(rax, 40)?;
    g.a.out(u32::from(HCALL_PORT), al)?;
    g.a.inc(qword_ptr(rbx + slot::CALLS))?;
    let mut enosys = g.a.create_label();
    g.a.cmp(rax, -38)?;
    g.a.je(enosys)?;
    g.a.call(bad_result)?;
    g.a.set_label(&mut enosys)?;
    g.a.jmp(top)?;
    g.a.set_label(&mut m3)?;
    g.arena_range()?;
    g.a.mov(rdx, rsi)?;
    g.a.mov(rsi, rdi)?;
    g.a.mov(edi, 5)?;
    g.call(nr::WRITE)?;
    g.a.jmp(top)?;

    // Probe a random arena page.
    g.a.set_label(&mut ops[7])?;
    g.arena_range()?;
    g.a.mov(r11, rdi)?;
    g.a.call(probe)?;
    g.a.jmp(top)?;

    // The end: report, then exit this vCPU.
    g.a.set_label(&mut done)?;
    report(g.a, id::CALLS, Some((slot::CALLS, Cmp::AtLeastR13)), slot::CALLS, None)?;
    report(g.a, id::RESULTS, Some((slot::BAD_RESULTS, Cmp::Zero)), slot::BAD_RESULTS, Some(slot::FIRST_BAD_RESULT))?;
    report(g.a, id::PROBES, Some((slot::BAD_PROBES, Cmp::Zero)), slot::BAD_PROBES, Some(slot::FIRST_BAD_PROBE))?;
    report(g.a, id::PROBES_MADE, None, slot::PROBES, None)?;
    report(g.a, id::PROBES_FAULTED, None, slot::FAULTS, None)?;
    g.a.xor(edi, edi)?;
    g.a.mov(eax, nr::EXIT as u32)?;
    g.a.out(u32::from(HCALL_PORT), al)?;
    g.a.ud2()?;

    emit_rnd(&mut g)?;
    emit_bad_result(&mut g)?;
    emit_probe(&mut g)?;

    // Tables.
    let a = &mut *g.a;
    a.set_label(&mut fds)?;
    for v in [fd::GUEST_RAM, fd::ZERO, fd::PAGE_BUFFER, fd::HUGE, fd::BAR0, fd::BAR0 + 1, fd::BAR_REGION0, 7] {
        a.dq(&[v])?;
    }
    a.set_label(&mut flags)?;
    let (pv, sh, fx, nrp, anon) = (map::PRIVATE, map::SHARED, map::FIXED, map::FIXED_NOREPLACE, map::ANONYMOUS);
    for v in [pv | fx, sh | fx, pv | nrp, sh | nrp, pv | fx | anon, sh | fx | anon, pv | sh | fx, sh | fx | 0x40] {
        a.dq(&[v])?;
    }
    a.set_label(&mut offs)?;
    let end = p.mem_size.saturating_sub(4 * PAGE_SIZE);
    for v in [0, 0x1000, 0x3000, 0x20_0000, FREE_PA, FREE_PA + 0x5000, POOL_PA, end] {
        a.dq(&[v])?;
    }

    let code = a.assemble(BUILTIN_CODE_VA)?;
    let len = code.len() as u64;
    Ok(Program {
        segments: vec![
            Segment { va: BUILTIN_CODE_VA, bytes: code, mem_len: len, write: false, exec: true },
            Segment {
                va: BUILTIN_DATA_VA,
                bytes: Vec::new(),
                mem_len: u64::from(MAX_VCPUS) * slot::SIZE,
                write: true,
                exec: false,
            },
        ],
        entry: BUILTIN_CODE_VA,
    })
}

/// How a reported value passes.
#[derive(Clone, Copy)]
enum Cmp {
    /// The slot is zero.
    Zero,
    /// The slot is at least `r13`.
    AtLeastR13,
}

/// `report(check, passed, got = [slot], expected, step = [step])`.
fn report(a: &mut CodeAssembler, check: u64, pass: Option<(i32, Cmp)>, got: i32, step: Option<i32>) -> AsmResult {
    a.mov(edi, check as u32)?;
    a.mov(esi, 1)?;
    a.xor(r10d, r10d)?;
    match pass {
        None => {}
        Some((s, Cmp::Zero)) => {
            a.xor(esi, esi)?;
            a.cmp(qword_ptr(rbx + s), 0)?;
            a.sete(sil)?;
        }
        Some((s, Cmp::AtLeastR13)) => {
            a.xor(esi, esi)?;
            a.cmp(qword_ptr(rbx + s), r13)?;
            a.setae(sil)?;
            a.mov(r10, r13)?;
        }
    }
    a.mov(rdx, qword_ptr(rbx + got))?;
    match step {
        Some(s) => a.mov(r8, qword_ptr(rbx + s))?,
        None => a.xor(r8d, r8d)?,
    }
    a.mov(eax, nr::REPORT as u32)?;
    a.out(u32::from(HCALL_PORT), al)
}

/// `rnd`: one xorshift64 step of `r14`; returns it in `rax`.
fn emit_rnd(g: &mut Gen<'_>) -> AsmResult {
    let a = &mut *g.a;
    a.set_label(&mut g.rnd)?;
    a.mov(rax, r14)?;
    a.shl(rax, 13)?;
    a.xor(r14, rax)?;
    a.mov(rax, r14)?;
    a.shr(rax, 7)?;
    a.xor(r14, rax)?;
    a.mov(rax, r14)?;
    a.shl(rax, 17)?;
    a.xor(r14, rax)?;
    a.mov(rax, r14)?;
    a.ret()
}

/// Counts a bad result and remembers the call number of the first.
/// Preserves every register.
fn emit_bad_result(g: &mut Gen<'_>) -> AsmResult {
    let a = &mut *g.a;
    a.set_label(&mut g.bad_result)?;
    first_of(a, slot::BAD_RESULTS, slot::FIRST_BAD_RESULT)
}

/// `[count] += 1`; the first time, `[first] = [CALLS]`. Then `ret`.
fn first_of(a: &mut CodeAssembler, count: i32, first: i32) -> AsmResult {
    let mut seen = a.create_label();
    a.push(rax)?;
    a.inc(qword_ptr(rbx + count))?;
    a.cmp(qword_ptr(rbx + first), 0)?;
    a.jne(seen)?;
    a.mov(rax, qword_ptr(rbx + slot::CALLS))?;
    a.mov(qword_ptr(rbx + first), rax)?;
    a.set_label(&mut seen)?;
    a.pop(rax)?;
    a.ret()
}

/// `probe`: translate `r11`, then read or write it with `expect_fault`
/// armed, and check the outcome against the translation. Clobbers the
/// hypercall registers, `rcx`, `rbp`.
fn emit_probe(g: &mut Gen<'_>) -> AsmResult {
    let mut resume = g.a.create_label();
    let mut read = g.a.create_label();
    let mut no_fault = g.a.create_label();
    let mut bad = g.a.create_label();
    g.a.set_label(&mut g.probe)?;
    g.a.inc(qword_ptr(rbx + slot::PROBES))?;
    g.a.mov(rdi, r11)?;
    g.a.xor(esi, esi)?;
    g.call(nr::TRANSLATE)?;
    g.a.mov(rbp, rax)?;
    g.a.lea(rdi, ptr(resume))?;
    g.call(nr::EXPECT_FAULT)?;
    g.rnd_below(rax, 2)?;
    g.a.test(eax, eax)?;
    g.a.jz(read)?;
    g.a.mov(qword_ptr(r11), r11)?;
    g.a.jmp(no_fault)?;
    g.a.set_label(&mut read)?;
    g.a.mov(rax, qword_ptr(r11))?;
    g.a.set_label(&mut no_fault)?;
    g.a.xor(edi, edi)?;
    g.call(nr::EXPECT_FAULT)?;
    // No fault: the VMM had a translation, or the page was absent in a
    // lazy mapping and the fault path filled it (then it has one now).
    let mut mapped = g.a.create_label();
    g.a.test(rbp, rbp)?;
    g.a.jns(mapped)?;
    g.a.mov(rdi, r11)?;
    g.a.xor(esi, esi)?;
    g.call(nr::TRANSLATE)?;
    g.a.test(rax, rax)?;
    g.a.js(bad)?;
    g.a.set_label(&mut mapped)?;
    g.a.ret()?;

    // rax = vector, rdi = error code, rsi = CR2.
    g.a.set_label(&mut resume)?;
    g.a.inc(qword_ptr(rbx + slot::FAULTS))?;
    g.a.cmp(rax, PF_VECTOR as i32)?;
    g.a.jne(bad)?;
    g.a.cmp(rsi, r11)?;
    g.a.jne(bad)?;
    g.a.test(edi, 8)?; // reserved bit
    g.a.jnz(bad)?;
    // present bit == (translate found a mapping)
    g.a.mov(eax, edi)?;
    g.a.and(eax, 1)?;
    g.a.xor(ecx, ecx)?;
    g.a.test(rbp, rbp)?;
    g.a.setns(cl)?;
    g.a.cmp(eax, ecx)?;
    g.a.jne(bad)?;
    // A present page never faults a read.
    let mut fine = g.a.create_label();
    g.a.test(edi, 1)?;
    g.a.jz(fine)?;
    g.a.test(edi, 2)?;
    g.a.jz(bad)?;
    g.a.set_label(&mut fine)?;
    g.a.ret()?;
    g.a.set_label(&mut bad)?;
    first_of(g.a, slot::BAD_PROBES, slot::FIRST_BAD_PROBE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_depends_on_the_seed() {
        let p = Params { seed: 1, calls: 1000, vcpus: 2, mem_size: 128 << 20 };
        let a = build(&p).unwrap();
        let b = build(&Params { seed: 2, ..p }).unwrap();
        assert_eq!(a.entry, BUILTIN_CODE_VA);
        assert_ne!(a.segments[0].bytes, b.segments[0].bytes);
        assert_eq!(build(&p).unwrap().segments[0].bytes, a.segments[0].bytes);
        assert_eq!(checks().len(), 5);
    }
}
