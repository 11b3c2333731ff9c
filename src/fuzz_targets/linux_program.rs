//! The static program the Linux system-call target runs, and the seed
//! files of the Linux targets.
//!
//! The program is never executed: it gives the process an image (code,
//! read-only strings the calls can take as paths, a writable data area
//! the target stores arguments into) laid out as a static executable's.
//! The seeds are ELF files built with `guest::elf_program::build_elf` and
//! a few call sequences; `tests/vmm/fuzz_corpus.rs` checks the committed
//! files are these (and writes them with `VMM_BLESS=1`).

use vmm::guest::elf_program::build_elf;
use vmm::layout::PAGE_SIZE;

/// The program's code (one page, `hlt`s).
pub const CODE_VA: u64 = 0x40_1000;
/// Its read-only strings: [`PATHS`], one every [`PATH_SLOT`] bytes.
pub const PATHS_VA: u64 = 0x40_2000;
/// Its data: a few bytes from the file, then zeros (where the target
/// stores structures the calls read).
pub const DATA_VA: u64 = 0x60_0000;
/// Size of the data segment in memory.
pub const DATA_LEN: u64 = 4 * PAGE_SIZE;
/// Bytes between two paths.
pub const PATH_SLOT: u64 = 32;
/// Paths a call may be given (NUL-terminated in the image).
pub const PATHS: &[&str] = &[
    "/tmp/a",
    "/tmp",
    "/proc/self/maps",
    "/proc/self/smaps",
    "/proc/self/pagemap",
    "/proc/self/status",
    "/proc/meminfo",
    "/proc/self/exe",
    "/dev/zero",
    "/dev/null",
    "/dev/urandom",
    "/dev/shm/s",
    "/tmp/a/b",
    ".",
    "/",
    "",
    "/sys",
    "/tmp/d",
];

/// The ELF file of the program.
pub fn program() -> Vec<u8> {
    let mut paths = vec![0u8; PATHS.len() * PATH_SLOT as usize];
    for (i, p) in PATHS.iter().enumerate() {
        let at = i * PATH_SLOT as usize;
        paths[at..at + p.len()].copy_from_slice(p.as_bytes());
    }
    build_elf(
        CODE_VA,
        &[
            (CODE_VA, &[0xf4; 64], PAGE_SIZE, 1 | 4),
            (PATHS_VA, &paths, PAGE_SIZE, 4),
            (DATA_VA, b"hello, world\n", DATA_LEN, 2 | 4),
        ],
    )
}

/// Program header `index` of an ELF built by `build_elf` gets type `kind`.
fn set_ph_type(elf: &mut [u8], index: usize, kind: u32) {
    let h = 64 + 56 * index;
    elf[h..h + 4].copy_from_slice(&kind.to_le_bytes());
}

/// Seeds of the `linux_elf` target: a static executable, a static PIE,
/// one with `PT_PHDR`, a dynamic one (`PT_INTERP`), and refusals (other
/// type, other machine, 32-bit, a segment past `TASK_SIZE`).
pub fn elf_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let exec = program();
    let mut pie = build_elf(0x1000, &[(0, &[0x90; 64], 0x1000, 1 | 4), (0x2000, b"data", 0x3000, 2 | 4)]);
    pie[16..18].copy_from_slice(&3u16.to_le_bytes());
    // The note header (after the segments) becomes PT_PHDR.
    let mut phdr = pie.clone();
    set_ph_type(&mut phdr, 2, 6);
    phdr[64 + 56 * 2 + 16..64 + 56 * 2 + 24].copy_from_slice(&0x40u64.to_le_bytes());
    // The note header becomes PT_INTERP over the first segment's bytes.
    let interp = b"/lib64/ld-linux-x86-64.so.2\0";
    let mut dynamic = build_elf(0x40_1000, &[(0x40_1000, interp, interp.len() as u64, 1 | 4)]);
    set_ph_type(&mut dynamic, 1, 3);
    let off = dynamic[64 + 8..64 + 16].to_vec();
    dynamic[64 + 56 + 8..64 + 56 + 16].copy_from_slice(&off);
    dynamic[64 + 56 + 32..64 + 56 + 40].copy_from_slice(&(interp.len() as u64).to_le_bytes());
    let mut object = exec.clone();
    object[16..18].copy_from_slice(&1u16.to_le_bytes());
    let mut arm = exec.clone();
    arm[18..20].copy_from_slice(&183u16.to_le_bytes());
    let mut elf32 = exec.clone();
    elf32[4] = 1;
    let high = build_elf(0x40_1000, &[((1 << 47) - 0x2000, &[0x90], 0x2000, 1)]);
    vec![
        ("seed-exec", exec),
        ("seed-pie", pie),
        ("seed-pie-phdr", phdr),
        ("seed-interp", dynamic),
        ("seed-object", object),
        ("seed-aarch64", arm),
        ("seed-elf32", elf32),
        ("seed-past-task-size", high),
    ]
}

/// How the `linux_syscalls` target reads its arguments (one selector
/// byte and its payload; see `linux_syscalls::arg`), for writing seeds.
#[derive(Clone, Copy, Debug)]
pub enum SeedArg {
    /// This value.
    Raw(u64),
    /// Zero.
    Zero,
    /// -1.
    MinusOne,
    /// This many pages (1 to 63).
    Pages(u8),
    /// `n` pages into mapped base `base` (the image, heap, stack, then
    /// what calls returned, in order).
    Mapped(u8, u8),
    /// Descriptor number `n` of the target's list (0 to 6 are themselves).
    Fd(u8),
    /// Path `n` of [`PATHS`].
    Path(u8),
    /// Flag combination `n` of the target's list.
    Flags(u8),
    /// This many bytes into the data segment.
    Scratch(u16),
}

impl SeedArg {
    fn bytes(self) -> Vec<u8> {
        match self {
            SeedArg::Raw(v) => [&[0u8][..], &v.to_le_bytes()].concat(),
            SeedArg::Zero => vec![2],
            SeedArg::MinusOne => vec![3, 0],
            SeedArg::Pages(n) => vec![4, n.saturating_sub(1)],
            SeedArg::Mapped(base, n) => vec![6, base, n],
            SeedArg::Fd(n) => vec![9, n],
            SeedArg::Path(n) => vec![10, n],
            SeedArg::Flags(n) => vec![11, n],
            SeedArg::Scratch(off) => [&[12u8][..], &off.to_le_bytes()].concat(),
        }
    }
}

/// One call of system call `nr` (a number of the table).
pub fn seed_call(nr: u64, args: &[SeedArg]) -> Vec<u8> {
    let index = vmm::guest::kinds::linux::syscalls::TABLE.iter().position(|e| e.nr == nr).unwrap_or(0);
    let mut out = vec![0, 255, index as u8];
    for i in 0..6 {
        out.extend(args.get(i).copied().unwrap_or(SeedArg::Zero).bytes());
    }
    out
}

/// One store of `bytes` (at most 64) at `at`.
pub fn seed_store(at: SeedArg, bytes: &[u8]) -> Vec<u8> {
    [&[7u8][..], &at.bytes(), &[bytes.len() as u8], bytes].concat()
}

/// Seeds of the `linux_syscalls` target: memory calls, files, `/proc`,
/// locking and sealing, and calls that touch no memory.
pub fn syscall_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use SeedArg::*;
    let rw = Raw(3);
    let anon = Flags(0);
    let mem = [
        seed_call(9, &[Zero, Pages(4), rw, anon, MinusOne, Zero]),
        seed_store(Mapped(6, 1), b"written by the program"),
        seed_call(10, &[Mapped(6, 1), Pages(1), Raw(1)]),
        seed_call(25, &[Mapped(6, 0), Pages(4), Pages(8), Raw(1)]),
        seed_call(11, &[Mapped(6, 2), Pages(2)]),
        seed_call(12, &[Zero]),
        seed_call(12, &[Raw(DATA_VA + DATA_LEN + 0x3000)]),
        seed_call(28, &[Mapped(3, 0), Pages(2), Raw(4)]),
        seed_call(27, &[Mapped(3, 0), Pages(3), Scratch(0)]),
    ]
    .concat();
    let files = [
        seed_call(2, &[Path(2), Zero]),
        seed_call(0, &[Fd(3), Scratch(0), Pages(2)]),
        seed_call(3, &[Fd(3)]),
        seed_call(257, &[Fd(7), Path(0), Flags(13), Raw(0o644)]),
        seed_call(1, &[Fd(3), Scratch(0), Raw(100)]),
        seed_call(8, &[Fd(3), Zero, Zero]),
        seed_call(17, &[Fd(3), Scratch(512), Raw(64), Zero]),
        seed_call(319, &[Path(0), Zero]),
        seed_call(77, &[Fd(4), Pages(3)]),
        seed_call(217, &[Fd(3), Scratch(1024), Raw(1024)]),
        seed_call(2, &[Path(4), Zero]),
        seed_call(0, &[Fd(5), Scratch(0), Raw(64)]),
    ]
    .concat();
    let lock = [
        seed_call(9, &[Zero, Pages(8), rw, Flags(1), MinusOne, Zero]),
        seed_call(149, &[Mapped(6, 0), Pages(2)]),
        seed_call(325, &[Mapped(6, 2), Pages(2), Raw(1)]),
        seed_call(151, &[Raw(3)]),
        seed_call(152, &[]),
        seed_call(462, &[Mapped(6, 4), Pages(2), Zero]),
        seed_call(11, &[Mapped(6, 4), Pages(1)]),
        seed_call(9, &[Mapped(6, 0), Pages(2), rw, Flags(2), MinusOne, Zero]),
    ]
    .concat();
    let pure = [
        seed_call(39, &[]),
        seed_call(228, &[Zero, Scratch(0)]),
        seed_call(63, &[Scratch(0)]),
        seed_call(318, &[Scratch(64), Raw(16), Zero]),
        seed_call(95, &[Raw(0o77)]),
        seed_call(13, &[Raw(10), Scratch(0), Scratch(64), Raw(8)]),
        seed_call(62, &[Raw(100), Raw(10)]),
        seed_call(231, &[Raw(3)]),
    ]
    .concat();
    // SysV shared memory: a private segment attached twice, written,
    // split, removed while attached, detached.
    let shm = [
        seed_call(29, &[Zero, Pages(4), Raw(0o1600)]),
        seed_call(30, &[Zero, Zero, Zero]),
        seed_call(30, &[Zero, Zero, Raw(0o10000)]),
        seed_store(Mapped(6, 1), b"shared"),
        seed_call(10, &[Mapped(6, 1), Pages(1), Raw(1)]),
        seed_call(31, &[Zero, Raw(2), Scratch(0)]),
        seed_call(31, &[Zero, Zero, Zero]),
        seed_call(67, &[Mapped(6, 0)]),
        seed_call(11, &[Mapped(7, 0), Pages(4)]),
        seed_call(31, &[Zero, Raw(14), Scratch(128)]),
    ]
    .concat();
    vec![
        ("seed-memory", mem),
        ("seed-files", files),
        ("seed-lock-seal", lock),
        ("seed-no-memory", pure),
        ("seed-sysv-shm", shm),
    ]
}

/// The memory-management calls: they alone may change the VMAs.
pub(super) const MM_CALLS: &[u64] = &[
    9,   // mmap
    10,  // mprotect
    11,  // munmap
    12,  // brk
    25,  // mremap
    28,  // madvise
    149, // mlock
    150, // munlock
    151, // mlockall
    152, // munlockall
    325, // mlock2
    462, // mseal
    30,  // shmat
    67,  // shmdt
];
