//! The multiboot loader target: a kernel image (ELF32, ELF64 or a.out
//! kludge: the header parser), modules and a command line through
//! `multiboot::plan` and `multiboot::load` into a small guest, as
//! `vmm run --kernel` does. What loads is read back from guest memory and
//! checked here, with a decoding of the information block of its own:
//! every segment, module and the block inside RAM below 4 GiB and
//! disjoint, the segments' bytes then zeros, each module's bytes at the
//! address the block gives, the command lines as the kernel reads them.
//! What does not load leaves guest memory untouched.
//!
//! Input: byte 0 picks the RAM size (1 to 4 MiB), byte 1 the number of
//! modules (0 to 4), then two bytes of length per module (its bytes are
//! generated: module `i` is `i + 1` repeated), one byte of command-line
//! length and the command line, then the kernel image.

use vm_memory::{Bytes, GuestAddress};
use vmm::guest::kinds::multiboot::{header, info, load, plan, Module};
use vmm::memory::{create_guest_memory, GuestMem};

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;

/// The pieces of one input.
struct Input<'a> {
    ram: u64,
    modules: Vec<u16>,
    cmdline: String,
    kernel: &'a [u8],
}

fn decode(data: &[u8]) -> Option<Input<'_>> {
    let (&ram, rest) = data.split_first()?;
    let (&n, mut rest) = rest.split_first()?;
    let mut modules = Vec::new();
    for _ in 0..n % 5 {
        let (len, r) = rest.split_at_checked(2)?;
        modules.push(u16::from_le_bytes([len[0], len[1]]));
        rest = r;
    }
    let (&c, rest) = rest.split_first()?;
    let (cmdline, kernel) = rest.split_at_checked(usize::from(c % 64))?;
    Some(Input {
        ram: (1 + u64::from(ram % 4)) * MIB,
        modules,
        cmdline: String::from_utf8_lossy(cmdline).into(),
        kernel,
    })
}

/// Runs one input.
pub fn multiboot(data: &[u8]) {
    let Some(input) = decode(data) else { return };
    let modules: Vec<Module> = input
        .modules
        .iter()
        .enumerate()
        .map(|(i, &len)| Module::from_bytes(vec![i as u8 + 1; usize::from(len)], format!("mod{i}")))
        .collect();
    let name = std::path::Path::new("k");
    let mem = create_guest_memory(input.ram).expect("guest memory");
    let planned = plan(name, input.kernel, &input.cmdline, &modules, input.ram);
    let loaded = load(name, input.kernel, &input.cmdline, &modules, &mem, input.ram);
    let (p, l) = match (planned, loaded) {
        (Ok(p), Ok(l)) => (p, l),
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string(), "load refuses what plan refuses");
            assert!(untouched(&mem, input.ram), "a refused load writes nothing");
            return;
        }
        (a, b) => panic!("plan and load disagree: {:?} / {:?}", a.err(), b.err()),
    };
    assert_eq!((l.info, u64::from(l.info)), (p.info_at as u32, p.info_at));
    assert_eq!(l.entry, p.kernel.entry);

    // Everything placed, as [start, end) ranges, must lie in RAM and be
    // disjoint.
    let mut ranges: Vec<(u64, u64)> = p.kernel.segments.iter().map(|s| (s.paddr, s.end())).collect();
    for s in &p.kernel.segments {
        let mut got = vec![0u8; s.file.len()];
        mem.read_slice(&mut got, GuestAddress(s.paddr)).expect("segment in RAM");
        assert_eq!(got, input.kernel[s.file.clone()], "segment {:#x} holds its file bytes", s.paddr);
        let zeros = s.mem_size - s.file.len() as u64;
        assert!(all_zero(&mem, s.paddr + s.file.len() as u64, zeros), "bss of {:#x} zeroed", s.paddr);
    }

    // The information block, decoded here.
    let at = p.info_at;
    let word = |off: u64| -> u32 { mem.read_obj(GuestAddress(at + off)).expect("info block in RAM") };
    let flags = word(0);
    let want = info::INFO_MEM | info::INFO_CMDLINE | info::INFO_MMAP | info::INFO_LOADER_NAME;
    assert_eq!(flags & want, want, "flags {flags:#x}");
    assert_eq!(flags & info::INFO_MODS != 0, !modules.is_empty(), "modules flag");
    let full = if input.cmdline.is_empty() { "k".to_string() } else { format!("k {}", input.cmdline) };
    assert_eq!(c_string(&mem, word(16)), full.split('\0').next().unwrap_or_default().as_bytes(), "cmdline");
    assert_eq!(c_string(&mem, word(64)), info::LOADER_NAME.as_bytes(), "loader name");
    ranges.push((at, p.end));
    // What the loader places (modules, the block) avoids the legacy hole
    // the memory map reports as reserved.
    let (hole, mb) = info::LOW_RESERVED;
    assert!(!(at < mb && p.end > hole), "the block [{at:#x}, {:#x}) avoids the legacy hole", p.end);
    if !modules.is_empty() {
        assert_eq!(word(20) as usize, modules.len(), "mods_count");
        let list = u64::from(word(24));
        for (i, m) in modules.iter().enumerate() {
            let e = |k: u64| -> u32 { mem.read_obj(GuestAddress(list + 16 * i as u64 + 4 * k)).expect("module list") };
            let (start, end) = (u64::from(e(0)), u64::from(e(1)));
            assert_eq!(start % PAGE, 0, "module {i} page aligned");
            assert_eq!(end - start, m.len(), "module {i} length");
            assert_eq!(c_string(&mem, e(2)), format!("mod{i}").as_bytes(), "module {i} string");
            let mut got = vec![0u8; m.len() as usize];
            mem.read_slice(&mut got, GuestAddress(start)).expect("module in RAM");
            assert!(got.iter().all(|&b| b == i as u8 + 1), "module {i} bytes");
            if start < end {
                assert!(!(start < mb && end > hole), "module {i} [{start:#x}, {end:#x}) avoids the legacy hole");
                ranges.push((start, end));
            }
        }
    }
    ranges.retain(|r| r.0 < r.1);
    ranges.sort_unstable();
    let limit = input.ram.min(1 << 32);
    assert!(ranges.iter().all(|&(_, e)| e <= limit), "everything in RAM: {ranges:x?}");
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "nothing overlaps: {ranges:x?}");
    // The header parser alone agrees with what was loaded.
    assert_eq!(header::parse(input.kernel).as_ref().ok(), Some(&p.kernel));
}

/// The NUL-terminated string at `addr` (at most 4 KiB: the fuzzer's
/// inputs are smaller).
fn c_string(mem: &GuestMem, addr: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for a in u64::from(addr)..u64::from(addr) + 4096 {
        let b: u8 = mem.read_obj(GuestAddress(a)).expect("string in RAM");
        if b == 0 {
            return out;
        }
        out.push(b);
    }
    panic!("no NUL within 4 KiB of {addr:#x}");
}

fn all_zero(mem: &GuestMem, at: u64, len: u64) -> bool {
    let mut buf = vec![0u8; 64 << 10];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        mem.read_slice(&mut buf[..n], GuestAddress(at + off)).expect("in RAM");
        if buf[..n].iter().any(|&b| b != 0) {
            return false;
        }
        off += n as u64;
    }
    true
}

fn untouched(mem: &GuestMem, ram: u64) -> bool {
    all_zero(mem, 0, ram)
}
