//! The configuration target: a TOML document through `VmConfig::from_toml`
//! and `validate`, and each line through `parse_size` (the `--memory`
//! option). A configuration that validates is checked again here, rule by
//! rule, so `validate` cannot let through what the docs forbid.

use vmm::config::{parse_size, BarBacking, VmConfig};
use vmm::layout::{KVM_RESERVED, MAX_VCPUS, MIN_MEM_SIZE};

/// Most bytes of TOML one input may hold (bigger inputs are skipped).
const MAX_TEXT: usize = 16 << 10;

/// Runs one input.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.len() > MAX_TEXT {
        return;
    }
    for line in text.lines().take(4) {
        sizes(line);
    }
    match VmConfig::from_toml(text, &vmm::guest::registry::Registry::standard()) {
        Ok(c) => {
            if c.validate().is_ok() {
                valid(&c);
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an error says what is wrong"),
    }
}

/// `parse_size`: a number of MiB, or a number with K/M/G.
fn sizes(s: &str) {
    let Ok(n) = parse_size(s) else { return };
    let t = s.trim();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'K' | b'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&t[..t.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1 << 20),
    };
    let v: u64 = digits.parse().expect("a size that parses has a number");
    assert_eq!(Some(n), v.checked_mul(mult), "{s:?}");
}

/// What a configuration that validated must satisfy (docs/reliability.md).
fn valid(c: &VmConfig) {
    let bar_base = vmm::layout::DEFAULT_BAR_BASE;
    assert!(c.mem_size >= MIN_MEM_SIZE && c.mem_size <= bar_base, "memory {:#x}", c.mem_size);
    assert_eq!(c.mem_size % (2 << 20), 0, "memory {:#x} is not 2 MiB-aligned", c.mem_size);
    assert!(c.vcpus >= 1 && c.vcpus <= MAX_VCPUS, "vcpus {}", c.vcpus);
    assert_ne!(c.timeout_secs, Some(0), "a zero timeout");
    for (i, b) in c.bars.iter().enumerate() {
        let end = b.base.checked_add(b.size).expect("a BAR that validated does not wrap");
        assert!(end <= 1 << 46, "bar {i} ends at {end:#x}");
        assert!(b.size > 0 && b.base % 4096 == 0 && b.size % 4096 == 0, "bar {i} alignment");
        assert!(b.base >= c.mem_size, "bar {i} overlaps RAM");
        assert!(end <= KVM_RESERVED.0 || b.base >= KVM_RESERVED.1, "bar {i} overlaps KVM's range");
        if b.backing == BarBacking::Trapped {
            assert!(b.size >= 4096, "bar {i}: a trapped window below 4 KiB");
        }
        for (j, o) in c.bars.iter().enumerate().skip(i + 1) {
            assert!(end <= o.base || o.base + o.size <= b.base, "bars {i} and {j} overlap");
        }
    }
}
