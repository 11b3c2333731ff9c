//! The initial stack Linux gives a new program (`create_elf_tables`):
//! from the top, the strings (the executable's name, `AT_PLATFORM`'s
//! "x86_64", the environment and arguments), 16 random bytes for
//! `AT_RANDOM`; then, 16-byte aligned, `argc`, the `argv` pointers and a
//! NULL, the `envp` pointers and a NULL, and the auxiliary vector ending
//! in `AT_NULL`. `rsp` points at `argc`.
//!
//! [`build`] is pure: it returns the bytes and where they go; the kind
//! writes them into the stack mapping.

/// Auxiliary vector keys (`<elf.h>`).
pub mod at {
    /// End of the vector.
    pub const NULL: u64 = 0;
    /// Program headers.
    pub const PHDR: u64 = 3;
    /// Size of one program header.
    pub const PHENT: u64 = 4;
    /// Number of program headers.
    pub const PHNUM: u64 = 5;
    /// Page size.
    pub const PAGESZ: u64 = 6;
    /// Interpreter base (0: none).
    pub const BASE: u64 = 7;
    /// Flags (0).
    pub const FLAGS: u64 = 8;
    /// Entry point.
    pub const ENTRY: u64 = 9;
    /// User id.
    pub const UID: u64 = 11;
    /// Effective user id.
    pub const EUID: u64 = 12;
    /// Group id.
    pub const GID: u64 = 13;
    /// Effective group id.
    pub const EGID: u64 = 14;
    /// Platform string.
    pub const PLATFORM: u64 = 15;
    /// CPU capabilities (CPUID.1:EDX).
    pub const HWCAP: u64 = 16;
    /// Clock ticks per second.
    pub const CLKTCK: u64 = 17;
    /// Secure mode (setuid).
    pub const SECURE: u64 = 23;
    /// 16 random bytes.
    pub const RANDOM: u64 = 25;
    /// More CPU capabilities.
    pub const HWCAP2: u64 = 26;
    /// The executable's name.
    pub const EXECFN: u64 = 31;
    /// Smallest signal stack size.
    pub const MINSIGSTKSZ: u64 = 51;
}

/// What the stack describes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackSpec {
    /// `argv`, `argv[0]` first.
    pub argv: Vec<Vec<u8>>,
    /// `envp` as `K=V`.
    pub envp: Vec<Vec<u8>>,
    /// The executable's name (`AT_EXECFN`).
    pub execfn: Vec<u8>,
    /// The auxiliary vector without the entries that point into the stack
    /// (`AT_RANDOM`, `AT_PLATFORM`, `AT_EXECFN`: added here) and without
    /// `AT_NULL`.
    pub aux: Vec<(u64, u64)>,
    /// `AT_RANDOM`'s bytes.
    pub random: [u8; 16],
}

/// Most bytes of arguments and environment (Linux allows a quarter of
/// the stack limit; 2 MiB of the default 8).
pub const ARG_MAX: usize = 2 << 20;

/// The initial stack's bytes, for `[sp, top)`, and `sp`; `None` when the
/// strings are over [`ARG_MAX`].
pub fn build(spec: &StackSpec, top: u64) -> Option<(Vec<u8>, u64)> {
    let strings: usize =
        spec.argv.iter().chain(&spec.envp).map(|s| s.len() + 1).sum::<usize>() + spec.execfn.len() + 1 + 7;
    if strings > ARG_MAX {
        return None;
    }
    // Strings grow down from the top (a NULL word at the very top, as
    // Linux leaves one).
    let mut hi: Vec<u8> = Vec::new();
    let mut cursor = top - 8;
    let mut push_str = |hi: &mut Vec<u8>, s: &[u8]| -> u64 {
        cursor -= s.len() as u64 + 1;
        let mut b = s.to_vec();
        b.push(0);
        b.extend_from_slice(hi);
        *hi = b;
        cursor
    };
    let execfn = push_str(&mut hi, &spec.execfn);
    let mut envp: Vec<u64> = spec.envp.iter().rev().map(|s| push_str(&mut hi, s)).collect();
    envp.reverse();
    let mut argv: Vec<u64> = spec.argv.iter().rev().map(|s| push_str(&mut hi, s)).collect();
    argv.reverse();
    let platform = push_str(&mut hi, b"x86_64");
    // AT_RANDOM's bytes, 16-byte aligned below the strings.
    let pad = cursor % 16;
    cursor -= pad;
    cursor -= 16;
    let random = cursor;
    let mut aux = spec.aux.clone();
    aux.push((at::RANDOM, random));
    aux.push((at::PLATFORM, platform));
    aux.push((at::EXECFN, execfn));
    aux.push((at::NULL, 0));
    let words = 1 + argv.len() + 1 + envp.len() + 1 + 2 * aux.len();
    let mut sp = cursor - 8 * words as u64;
    sp &= !15;
    let mut out = Vec::with_capacity((top - sp) as usize);
    out.extend_from_slice(&(argv.len() as u64).to_le_bytes());
    for p in argv.iter().chain([&0u64]).chain(&envp).chain([&0u64]) {
        out.extend_from_slice(&p.to_le_bytes());
    }
    for (k, v) in &aux {
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.resize((random - sp) as usize, 0);
    out.extend_from_slice(&spec.random);
    out.resize((top - 8 - sp) as usize - hi.len(), 0);
    out.extend_from_slice(&hi);
    out.extend_from_slice(&[0u8; 8]);
    debug_assert_eq!(out.len() as u64, top - sp);
    Some((out, sp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(b: &[u8], off: u64) -> u64 {
        u64::from_le_bytes(b[off as usize..off as usize + 8].try_into().unwrap())
    }

    fn cstr(b: &[u8], sp: u64, at: u64) -> Vec<u8> {
        let s = &b[(at - sp) as usize..];
        s[..s.iter().position(|&c| c == 0).unwrap()].to_vec()
    }

    #[test]
    fn the_layout_reads_back_as_a_libc_start_would() {
        let spec = StackSpec {
            argv: vec![b"prog".to_vec(), b"-x".to_vec(), b"".to_vec()],
            envp: vec![b"A=1".to_vec(), b"PATH=/bin".to_vec()],
            execfn: b"/bin/prog".to_vec(),
            aux: vec![(at::PAGESZ, 4096), (at::ENTRY, 0x401000)],
            random: *b"0123456789abcdef",
        };
        let top = 0x7fff_ffff_f000;
        let (b, sp) = build(&spec, top).unwrap();
        assert_eq!(sp % 16, 0, "the ABI wants rsp 16-byte aligned at argc");
        assert_eq!(b.len() as u64, top - sp);
        assert_eq!(word(&b, 0), 3);
        let argv: Vec<Vec<u8>> = (0..3).map(|i| cstr(&b, sp, word(&b, 8 + 8 * i))).collect();
        assert_eq!(argv, spec.argv);
        assert_eq!(word(&b, 32), 0);
        let envp: Vec<Vec<u8>> = (0..2).map(|i| cstr(&b, sp, word(&b, 40 + 8 * i))).collect();
        assert_eq!(envp, spec.envp);
        assert_eq!(word(&b, 56), 0);
        let mut aux = std::collections::BTreeMap::new();
        let mut off = 64;
        loop {
            let (k, v) = (word(&b, off), word(&b, off + 8));
            off += 16;
            if k == at::NULL {
                break;
            }
            aux.insert(k, v);
        }
        assert_eq!(aux[&at::PAGESZ], 4096);
        assert_eq!(aux[&at::ENTRY], 0x401000);
        let r = aux[&at::RANDOM];
        assert_eq!(r % 16, 0);
        assert_eq!(&b[(r - sp) as usize..(r - sp) as usize + 16], b"0123456789abcdef");
        assert_eq!(cstr(&b, sp, aux[&at::PLATFORM]), b"x86_64");
        assert_eq!(cstr(&b, sp, aux[&at::EXECFN]), b"/bin/prog");
        // Every pointer points inside the block.
        assert!(aux.values().filter(|&&v| v > sp).all(|&v| v < top));
    }

    #[test]
    fn too_many_arguments_are_refused() {
        let spec = StackSpec { argv: vec![vec![b'a'; ARG_MAX]], ..Default::default() };
        assert!(build(&spec, 0x7fff_0000_0000).is_none());
    }
}
