//! The multiboot v1 information block: memory sizes, the memory map, the
//! command line, modules and the boot loader's name, encoded as the bytes
//! the kernel finds at EBX.
//!
//! This module only builds bytes for a given base address; where they go
//! and whether they fit is [`super::load`]'s business.

/// `flags` bit: `mem_lower` / `mem_upper` valid.
pub const INFO_MEM: u32 = 1 << 0;
/// `flags` bit: `cmdline` valid.
pub const INFO_CMDLINE: u32 = 1 << 2;
/// `flags` bit: `mods_count` / `mods_addr` valid.
pub const INFO_MODS: u32 = 1 << 3;
/// `flags` bit: `mmap_length` / `mmap_addr` valid.
pub const INFO_MMAP: u32 = 1 << 6;
/// `flags` bit: `boot_loader_name` valid.
pub const INFO_LOADER_NAME: u32 = 1 << 9;

/// Size of the fixed part (the v1 structure up to the framebuffer fields).
pub const FIXED_LEN: usize = 120;
/// Size of one memory-map entry (`size` field included).
const MMAP_ENTRY_LEN: usize = 24;
/// Size of one module-list entry.
const MODULE_ENTRY_LEN: usize = 16;
/// The boot loader's name as the kernel sees it.
pub const LOADER_NAME: &str = "vmm";

/// Start of the legacy hole the memory map reports as reserved
/// (the EBDA, VGA and BIOS areas of a PC).
pub const LOW_RESERVED: (u64, u64) = (0x9_fc00, 0x10_0000);

/// A module as placed in guest memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedModule {
    /// Guest-physical start.
    pub start: u32,
    /// Exclusive end.
    pub end: u32,
    /// Its command line (usually its file name).
    pub cmdline: String,
}

/// What the block says.
#[derive(Clone, Debug)]
pub struct InfoParams<'a> {
    /// Bytes of RAM from guest-physical 0 (one contiguous range).
    pub ram_size: u64,
    /// The kernel's command line.
    pub cmdline: &'a str,
    /// The modules, already placed.
    pub modules: &'a [PlacedModule],
}

/// Memory-map entries: usable low memory, the legacy hole, usable memory
/// above 1 MiB.
pub fn memory_map(ram_size: u64) -> Vec<(u64, u64, u32)> {
    let (hole, mb) = LOW_RESERVED;
    vec![(0, hole, 1), (hole, mb - hole, 2), (mb, ram_size.saturating_sub(mb), 1)]
}

/// Bytes the block occupies for `p` (fixed part, map, strings, module list).
pub fn encoded_len(p: &InfoParams<'_>) -> usize {
    FIXED_LEN
        + 3 * MMAP_ENTRY_LEN
        + LOADER_NAME.len()
        + 1
        + p.modules.len() * MODULE_ENTRY_LEN
        + p.cmdline.len()
        + 1
        + p.modules.iter().map(|m| m.cmdline.len() + 1).sum::<usize>()
}

/// Encodes the block to live at guest-physical `base` (below 4 GiB, and
/// `base + encoded_len` too: the caller checks).
pub fn encode(p: &InfoParams<'_>, base: u32) -> Vec<u8> {
    let mut b = vec![0u8; FIXED_LEN];
    let put = |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    let addr = |b: &Vec<u8>| base.wrapping_add(b.len() as u32);
    let mut flags = INFO_MEM | INFO_CMDLINE | INFO_MMAP | INFO_LOADER_NAME;

    // mem_lower: KiB from 0; mem_upper: KiB from 1 MiB to the first hole
    // (the 32-bit field saturates, as the specification's "maximally").
    let (hole, mb) = LOW_RESERVED;
    put(&mut b, 4, (hole.min(p.ram_size) / 1024) as u32);
    put(&mut b, 8, u32::try_from(p.ram_size.saturating_sub(mb) / 1024).unwrap_or(u32::MAX));

    let map_addr = addr(&b);
    for (start, len, kind) in memory_map(p.ram_size) {
        b.extend_from_slice(&20u32.to_le_bytes());
        b.extend_from_slice(&start.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
    }
    put(&mut b, 44, (3 * MMAP_ENTRY_LEN) as u32);
    put(&mut b, 48, map_addr);

    let name_addr = addr(&b);
    b.extend_from_slice(LOADER_NAME.as_bytes());
    b.push(0);
    put(&mut b, 64, name_addr);

    let cmd_addr = addr(&b);
    b.extend_from_slice(p.cmdline.as_bytes());
    b.push(0);
    put(&mut b, 16, cmd_addr);

    if !p.modules.is_empty() {
        flags |= INFO_MODS;
        let mut strings = Vec::new();
        for m in p.modules {
            strings.push(addr(&b));
            b.extend_from_slice(m.cmdline.as_bytes());
            b.push(0);
        }
        let list_addr = addr(&b);
        for (m, s) in p.modules.iter().zip(strings) {
            for v in [m.start, m.end, s, 0] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        put(&mut b, 20, p.modules.len() as u32);
        put(&mut b, 24, list_addr);
    }
    put(&mut b, 0, flags);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn cstr(b: &[u8], base: u32, addr: u32) -> &str {
        let s = &b[(addr - base) as usize..];
        std::str::from_utf8(&s[..s.iter().position(|&c| c == 0).unwrap()]).unwrap()
    }

    #[test]
    fn block_fields_point_inside_it() {
        let mods = [PlacedModule { start: 0x20_0000, end: 0x20_0010, cmdline: "env".into() }];
        let p = InfoParams { ram_size: 256 << 20, cmdline: "dummy.flat arg", modules: &mods };
        let base = 0x10_0000;
        let b = encode(&p, base);
        assert_eq!(b.len(), encoded_len(&p));
        assert_eq!(u32_at(&b, 0), INFO_MEM | INFO_CMDLINE | INFO_MMAP | INFO_LOADER_NAME | INFO_MODS);
        assert_eq!(u32_at(&b, 4), 639);
        assert_eq!(u32_at(&b, 8), 255 * 1024);
        assert_eq!(cstr(&b, base, u32_at(&b, 16)), "dummy.flat arg");
        assert_eq!(cstr(&b, base, u32_at(&b, 64)), "vmm");
        assert_eq!(u32_at(&b, 20), 1);
        let list = (u32_at(&b, 24) - base) as usize;
        assert_eq!((u32_at(&b, list), u32_at(&b, list + 4)), (0x20_0000, 0x20_0010));
        assert_eq!(cstr(&b, base, u32_at(&b, list + 8)), "env");
        // The memory map: three entries, the last ends at the top of RAM.
        assert_eq!(u32_at(&b, 44), 72);
        let map = (u32_at(&b, 48) - base) as usize;
        let last = map + 48;
        assert_eq!(u32_at(&b, last), 20);
        let start = u64::from_le_bytes(b[last + 4..last + 12].try_into().unwrap());
        let len = u64::from_le_bytes(b[last + 12..last + 20].try_into().unwrap());
        assert_eq!((start, start + len, u32_at(&b, last + 20)), (0x10_0000, 256 << 20, 1));
    }

    #[test]
    fn no_modules_no_flag() {
        let p = InfoParams { ram_size: 64 << 20, cmdline: "", modules: &[] };
        let b = encode(&p, 0x1000);
        assert_eq!(u32_at(&b, 0) & INFO_MODS, 0);
        assert_eq!(u32_at(&b, 20), 0);
        assert_eq!(cstr(&b, 0x1000, u32_at(&b, 16)), "");
    }
}
