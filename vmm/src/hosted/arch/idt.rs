//! The IDT: 64-bit interrupt gates into the kernel stub.
//!
//! Exceptions 0..32 use IST1, the NMI (TLB shootdown) IST2 and the double
//! fault IST3, so a fault never runs on a stack the guest controls.
//! `#BP` and `#OF` are reachable from user mode (`int3`, `into`); every
//! other vector raised by `int n` from user mode becomes a `#GP`.

/// Number of architectural exception vectors.
pub const EXCEPTION_VECTORS: usize = 32;
/// The NMI vector.
pub const NMI_VECTOR: u8 = 2;
/// The double-fault vector.
pub const DF_VECTOR: u8 = 8;
/// The page-fault vector.
pub const PF_VECTOR: u8 = 14;

/// Vectors for which the CPU pushes an error code.
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// The IST slot a vector's gate uses.
pub const fn ist_for(vector: u8) -> u8 {
    match vector {
        NMI_VECTOR => 2,
        DF_VECTOR => 3,
        _ => 1,
    }
}

/// The mnemonic of an exception vector (`#PF`, ...).
pub fn vector_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF",
        "(15)", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "(22)", "(23)", "(24)", "(25)", "(26)", "(27)", "#HV", "#VC",
        "#SX", "(31)",
    ];
    usize::try_from(vector).ok().and_then(|v| NAMES.get(v)).copied().unwrap_or("(not an exception)")
}

/// An interrupt gate to `handler` (a virtual address) through `selector`.
pub fn gate(handler: u64, selector: u16, ist: u8, dpl: u8) -> [u64; 2] {
    // Present, DPL, type 0xe (64-bit interrupt gate: IF cleared on entry).
    let attr = 0x80 | ((dpl as u64 & 3) << 5) | 0xe;
    let low = (handler & 0xffff)
        | ((selector as u64) << 16)
        | ((ist as u64 & 7) << 32)
        | (attr << 40)
        | (((handler >> 16) & 0xffff) << 48);
    [low, handler >> 32]
}

/// DPL of a vector's gate: user mode may raise `#BP` and `#OF` itself.
pub const fn dpl_for(vector: u8) -> u8 {
    match vector {
        3 | 4 => 3,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_encoding() {
        let g = gate(0xffff_ff80_0000_4010, 0x08, 1, 0);
        assert_eq!(g[0], 0x0000_8e01_0008_4010);
        assert_eq!(g[1], 0xffff_ff80);
        let g = gate(0x1234_5678, 0x08, 0, 3);
        assert_eq!(g[0] >> 40 & 0xff, 0xee);
        assert_eq!(g[0] >> 48, 0x1234);
    }

    #[test]
    fn error_code_vectors_and_names() {
        let with: Vec<u8> = (0..32).filter(|&v| has_error_code(v)).collect();
        assert_eq!(with, vec![8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
        assert_eq!(vector_name(14), "#PF");
        assert_eq!(vector_name(13), "#GP");
        assert_eq!(vector_name(99), "(not an exception)");
        assert_eq!(ist_for(2), 2);
        assert_eq!(ist_for(14), 1);
    }
}
