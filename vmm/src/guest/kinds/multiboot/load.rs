//! Places a parsed multiboot kernel, its modules and its information
//! block in guest RAM, after checking that every byte lands inside RAM
//! below 4 GiB ([`plan`]: sizes only, no module byte read). On a
//! placement error nothing has been written; a module file that cannot be
//! read in full while it is copied ends the load with an error (the run
//! does not start).

use std::path::{Path, PathBuf};

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};

use super::header::{self, Kernel, MultibootError};
use super::info::{self, InfoParams, PlacedModule, LOW_RESERVED};
use super::module::{Module, ModuleError, MAX_FILE};
use crate::input_file::{read_input, InputError};
use crate::memory::GuestMem;

/// Longest command line accepted.
pub const MAX_CMDLINE: usize = 64 << 10;
/// Most modules accepted.
pub const MAX_MODULES: usize = 64;
const PAGE: u64 = 4096;
const FOUR_GIB: u64 = 1 << 32;

/// Errors loading a raw kernel.
#[derive(Debug, Error)]
pub enum RawLoadError {
    /// The kernel file is not a regular file of at most [`MAX_FILE`]
    /// bytes, or cannot be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A module cannot be opened or copied.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The kernel is not a usable multiboot kernel.
    #[error("{path}: {source}")]
    Multiboot {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: MultibootError,
    },
    /// Something does not fit in guest RAM below 4 GiB.
    #[error("{what} at [{start:#x}, {end:#x}) does not fit in guest RAM [0, {ram:#x}) below 4 GiB")]
    DoesNotFit {
        /// What.
        what: String,
        /// Start.
        start: u64,
        /// Exclusive end.
        end: u64,
        /// RAM size.
        ram: u64,
    },
    /// Too many modules or too long a command line.
    #[error("{0}")]
    Limit(String),
    /// Writing guest memory failed (a bug: everything was checked).
    #[error("cannot write guest memory at {0:#x}")]
    Write(u64),
}

/// Reads a kernel file: a regular file of at most [`MAX_FILE`] bytes,
/// opened without blocking (a FIFO or a device is an error at once).
pub fn read_file(path: &Path) -> Result<Vec<u8>, RawLoadError> {
    read_file_for(path, u64::MAX)
}

/// [`read_file`] for a machine of `ram` bytes: a file larger than the
/// RAM below 4 GiB cannot be loaded whatever it holds, so it is refused
/// from its size, before a byte is read.
pub fn read_file_for(path: &Path, ram: u64) -> Result<Vec<u8>, RawLoadError> {
    Ok(read_input(path, MAX_FILE.min(ram.min(FOUR_GIB)))?)
}

/// Where the kernel starts and where its information block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Entry point (EIP).
    pub entry: u32,
    /// Information block (EBX).
    pub info: u32,
    /// First byte after everything placed.
    pub end: u64,
}

/// Where everything goes, checked against guest RAM; nothing written yet.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The parsed kernel.
    pub kernel: Kernel,
    /// Each module's place, in order.
    pub modules: Vec<PlacedModule>,
    /// The information block's address.
    pub info_at: u64,
    /// The information block.
    pub info: Vec<u8>,
    /// First byte after everything placed.
    pub end: u64,
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Checks `[start, start + len)` lies in RAM below 4 GiB.
fn check_fits(what: impl Into<String>, start: u64, len: u64, ram: u64) -> Result<u64, RawLoadError> {
    let limit = ram.min(FOUR_GIB);
    match start.checked_add(len) {
        Some(end) if end <= limit => Ok(end),
        end => Err(RawLoadError::DoesNotFit { what: what.into(), start, end: end.unwrap_or(u64::MAX), ram }),
    }
}

/// `start`, or the end of the legacy hole ([`LOW_RESERVED`]) when
/// `[start, start + len)` would touch it.
fn past_the_hole(start: u64, len: u64) -> u64 {
    let (hole, mb) = LOW_RESERVED;
    if start < mb && start.saturating_add(len) > hole {
        mb
    } else {
        start
    }
}

/// Places the kernel `bytes` (named `name`), `modules` (by their sizes:
/// no module byte is read) and the information block for the command
/// line `cmdline` in `ram` bytes of guest RAM, or says what does not fit.
pub fn plan(name: &Path, bytes: &[u8], cmdline: &str, modules: &[Module], ram: u64) -> Result<Plan, RawLoadError> {
    let kernel: Kernel =
        header::parse(bytes).map_err(|source| RawLoadError::Multiboot { path: name.into(), source })?;
    if cmdline.len() > MAX_CMDLINE {
        return Err(RawLoadError::Limit(format!("the command line is longer than {MAX_CMDLINE} bytes")));
    }
    if modules.len() > MAX_MODULES {
        return Err(RawLoadError::Limit(format!("more than {MAX_MODULES} modules")));
    }
    let mut end = 0;
    for s in &kernel.segments {
        end = end.max(check_fits(format!("kernel segment at {:#x}", s.paddr), s.paddr, s.mem_size, ram)?);
    }
    // Modules after the image (page aligned: the header may ask for it,
    // and it costs nothing), then the information block; none of them in
    // the legacy hole the memory map reports as reserved.
    let mut next = align_up(end, PAGE);
    // Modules are always page aligned, which satisfies FLAG_PAGE_ALIGN.
    // Every end is below 4 GiB (check_fits), so the casts keep the value.
    let mut placed = Vec::with_capacity(modules.len());
    for (i, m) in modules.iter().enumerate() {
        let start = past_the_hole(next, m.len());
        let mend = check_fits(format!("module {i}"), start, m.len(), ram)?;
        placed.push(PlacedModule { start: start as u32, end: mend as u32, cmdline: m.cmdline().to_owned() });
        next = align_up(mend, PAGE);
    }
    let full_cmdline =
        if cmdline.is_empty() { name.display().to_string() } else { format!("{} {cmdline}", name.display()) };
    let params = InfoParams { ram_size: ram, cmdline: &full_cmdline, modules: &placed };
    // Rounded up to a page for the hole check, as before.
    let info_at = past_the_hole(next, (info::encoded_len(&params) as u64).max(PAGE));
    let end = check_fits("the multiboot information block", info_at, info::encoded_len(&params) as u64, ram)?;
    let info = info::encode(&params, info_at as u32);
    Ok(Plan { kernel, modules: placed, info_at, info, end })
}

/// Loads `bytes` (a multiboot kernel named `name`) with `cmdline` and
/// `modules` into `mem` of `ram` bytes. The kernel sees the command line
/// `"<name> <cmdline>"`, as QEMU and GRUB pass it. Everything is placed
/// ([`plan`]) before anything is written or a module byte read.
pub fn load(
    name: &Path,
    bytes: &[u8],
    cmdline: &str,
    modules: &[Module],
    mem: &GuestMem,
    ram: u64,
) -> Result<Loaded, RawLoadError> {
    let p = plan(name, bytes, cmdline, modules, ram)?;
    let write = |at: u64, data: &[u8]| mem.write_slice(data, GuestAddress(at)).map_err(|_| RawLoadError::Write(at));
    for s in &p.kernel.segments {
        write(s.paddr, &bytes[s.file.clone()])?;
        let zero_from = s.paddr + s.file.len() as u64;
        zero(mem, zero_from, s.end() - zero_from)?;
    }
    for (m, placed) in modules.iter().zip(&p.modules) {
        m.write_to(mem, u64::from(placed.start))?;
    }
    write(p.info_at, &p.info)?;
    Ok(Loaded { entry: p.kernel.entry, info: p.info_at as u32, end: p.end })
}

/// Zeroes `len` bytes at `at` (bss) in bounded chunks.
fn zero(mem: &GuestMem, at: u64, len: u64) -> Result<(), RawLoadError> {
    const CHUNK: u64 = 64 << 10;
    let buf = [0u8; CHUNK as usize];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(CHUNK);
        mem.write_slice(&buf[..n as usize], GuestAddress(at + off)).map_err(|_| RawLoadError::Write(at + off))?;
        off += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use vm_memory::Bytes;

    use super::super::header::tests::elf32;
    use super::*;
    use crate::memory::create_guest_memory;

    const RAM: u64 = 32 << 20;

    #[test]
    fn loads_segments_bss_modules_and_info() {
        let mem = create_guest_memory(RAM).unwrap();
        // Dirty the bss area first: the loader must zero it.
        mem.write_slice(&[0xaa; 64], GuestAddress(0x10_0000 + 32)).unwrap();
        let img = elf32(0x10_0000, &[0xf4; 20], 0x100);
        let m = Module::from_bytes(b"NR_CPUS=1\n".to_vec(), "env");
        let l = load(Path::new("k.flat"), &img, "a b", &[m], &mem, RAM).unwrap();
        assert_eq!(l.entry, 0x10_000c);
        let mut code = [0u8; 20];
        mem.read_slice(&mut code, GuestAddress(0x10_000c)).unwrap();
        assert_eq!(code, [0xf4; 20]);
        let mut bss = [1u8; 64];
        mem.read_slice(&mut bss, GuestAddress(0x10_0000 + 32)).unwrap();
        assert_eq!(bss, [0; 64]);
        // The module sits on the page after the image, the block after it.
        let info = u64::from(l.info);
        assert_eq!(info, 0x10_2000);
        let mods_addr: u32 = mem.read_obj(GuestAddress(info + 24)).unwrap();
        let mod_start: u32 = mem.read_obj(GuestAddress(u64::from(mods_addr))).unwrap();
        assert_eq!(mod_start, 0x10_1000);
        let mut env = [0u8; 10];
        mem.read_slice(&mut env, GuestAddress(u64::from(mod_start))).unwrap();
        assert_eq!(&env, b"NR_CPUS=1\n");
        let cmd: u32 = mem.read_obj(GuestAddress(info + 16)).unwrap();
        let mut s = [0u8; 11];
        mem.read_slice(&mut s, GuestAddress(u64::from(cmd))).unwrap();
        assert_eq!(&s, b"k.flat a b\0");
    }

    #[test]
    fn refuses_what_does_not_fit_and_writes_nothing() {
        let mem = create_guest_memory(RAM).unwrap();
        let img = elf32((RAM - 0x10) as u32, &[0x90; 4], 0);
        assert!(matches!(load(Path::new("k"), &img, "", &[], &mem, RAM), Err(RawLoadError::DoesNotFit { .. })));
        // A module too big for RAM: the kernel image is not written either.
        let img = elf32(0x10_0000, &[0xcc; 4], 0);
        let big = Module::from_bytes(vec![0; RAM as usize], "big");
        assert!(matches!(
            load(Path::new("k"), &img, "", &[big], &mem, RAM),
            Err(RawLoadError::DoesNotFit { what, .. }) if what == "module 0"
        ));
        let b: u8 = mem.read_obj(GuestAddress(0x10_000c)).unwrap();
        assert_eq!(b, 0);
    }

    #[test]
    fn info_skips_the_legacy_hole() {
        let mem = create_guest_memory(RAM).unwrap();
        let img = elf32(0x9_e000, &[0x90; 4], 0);
        let l = load(Path::new("k"), &img, "", &[], &mem, RAM).unwrap();
        assert_eq!(l.info, 0x10_0000);
        let img = elf32(0x8000, &[0x90; 4], 0);
        let l = load(Path::new("k"), &img, "", &[], &mem, RAM).unwrap();
        assert_eq!(l.info, 0x9000);
        // A module that would reach into the hole goes above it, and so
        // does everything after it; a small one stays below.
        let small = Module::from_bytes(vec![1; 0x1000], "small");
        let long = Module::from_bytes(vec![2; 0x9_7000], "long");
        let p = plan(Path::new("k"), &img, "", &[small, long], RAM).unwrap();
        let at: Vec<_> = p.modules.iter().map(|m| (m.start, m.end)).collect();
        assert_eq!(at, [(0x9000, 0xa000), (0x10_0000, 0x19_7000)]);
        assert_eq!(p.info_at, 0x19_7000);
    }

    #[test]
    fn module_files_are_placed_by_their_size_unread() {
        // A sparse file far larger than RAM: refused by plan, which never
        // reads it (a read would take 200 MiB).
        let p = std::env::temp_dir().join(format!("vmm-raw-sparse-{}", std::process::id()));
        std::fs::File::create(&p).unwrap().set_len(200 << 20).unwrap();
        let m = Module::open(&p).unwrap();
        let img = elf32(0x10_0000, &[0xcc; 4], 0);
        let e = plan(Path::new("k"), &img, "", &[m], RAM).unwrap_err();
        assert!(matches!(&e, RawLoadError::DoesNotFit { what, start: 0x10_1000, .. } if what == "module 0"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn file_cap() {
        let dir = std::env::temp_dir().join(format!("vmm-raw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(read_file(&p).unwrap(), b"abc");
        assert!(matches!(read_file(&dir.join("missing")), Err(RawLoadError::Input(InputError::Io { .. }))));
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_file(&fifo).unwrap_err();
        assert!(matches!(e, RawLoadError::Input(InputError::NotRegular { kind: "a FIFO", .. })), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 20: a kernel file was read whole (up to 256 MiB) before its
    /// size was compared with the machine's RAM.
    #[test]
    fn kernel_larger_than_ram_is_refused_from_its_size() {
        let dir = std::env::temp_dir().join(format!("vmm-mb-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k");
        // Sparse: 100 MiB of holes cost no disk.
        std::fs::File::create(&p).unwrap().set_len(100 << 20).unwrap();
        let e = read_file_for(&p, 64 << 20).unwrap_err();
        assert!(
            matches!(e, RawLoadError::Input(InputError::TooLarge { size, max, .. }) if size == 100 << 20 && max == 64 << 20),
            "{e}"
        );
        assert_eq!(read_file_for(&p, 128 << 20).unwrap().len(), 100 << 20);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
