//! QEMU's CPU feature names and the CPUID bit each one is: the names
//! `-cpu +feat`/`-feat` take. It covers the feature words QEMU lets a
//! user switch on x86 (leaf 1, leaf 7 subleaves 0 and 1, leaf 0xd
//! subleaf 1, and the AMD leaves 0x8000_0001, 0x8000_0007, 0x8000_0008,
//! 0x8000_000a), not every bit of them. It does not cover the bits KVM
//! computes from the guest's control registers (OSXSAVE, OSPKE): those
//! are never edited.

/// A 32-bit CPUID output register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reg {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

/// Where a feature lives: leaf, subleaf, register, bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeatureBit {
    /// `EAX` input.
    pub leaf: u32,
    /// `ECX` input (0 for leaves without subleaves).
    pub subleaf: u32,
    /// Output register.
    pub reg: Reg,
    /// Bit number (0..32).
    pub bit: u8,
}

impl FeatureBit {
    /// The bit as a mask of its register.
    pub fn mask(&self) -> u32 {
        1u32 << (self.bit & 31)
    }
}

/// A named feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Feature {
    /// QEMU's name (hyphens, as QEMU normalizes `_` to `-`).
    pub name: &'static str,
    /// The bit.
    pub bit: FeatureBit,
}

const fn f(name: &'static str, leaf: u32, subleaf: u32, reg: Reg, bit: u8) -> Feature {
    Feature { name, bit: FeatureBit { leaf, subleaf, reg, bit } }
}

use Reg::{Eax, Ebx, Ecx, Edx};

/// Every feature name `-cpu` takes here, with QEMU's spelling.
pub const FEATURES: &[Feature] = &[
    // Leaf 1 EDX.
    f("fpu", 1, 0, Edx, 0),
    f("vme", 1, 0, Edx, 1),
    f("de", 1, 0, Edx, 2),
    f("pse", 1, 0, Edx, 3),
    f("tsc", 1, 0, Edx, 4),
    f("msr", 1, 0, Edx, 5),
    f("pae", 1, 0, Edx, 6),
    f("mce", 1, 0, Edx, 7),
    f("cx8", 1, 0, Edx, 8),
    f("apic", 1, 0, Edx, 9),
    f("sep", 1, 0, Edx, 11),
    f("mtrr", 1, 0, Edx, 12),
    f("pge", 1, 0, Edx, 13),
    f("mca", 1, 0, Edx, 14),
    f("cmov", 1, 0, Edx, 15),
    f("pat", 1, 0, Edx, 16),
    f("pse36", 1, 0, Edx, 17),
    f("pn", 1, 0, Edx, 18),
    f("clflush", 1, 0, Edx, 19),
    f("ds", 1, 0, Edx, 21),
    f("acpi", 1, 0, Edx, 22),
    f("mmx", 1, 0, Edx, 23),
    f("fxsr", 1, 0, Edx, 24),
    f("sse", 1, 0, Edx, 25),
    f("sse2", 1, 0, Edx, 26),
    f("ss", 1, 0, Edx, 27),
    f("ht", 1, 0, Edx, 28),
    f("tm", 1, 0, Edx, 29),
    f("ia64", 1, 0, Edx, 30),
    f("pbe", 1, 0, Edx, 31),
    // Leaf 1 ECX.
    f("pni", 1, 0, Ecx, 0),
    f("pclmulqdq", 1, 0, Ecx, 1),
    f("dtes64", 1, 0, Ecx, 2),
    f("monitor", 1, 0, Ecx, 3),
    f("ds-cpl", 1, 0, Ecx, 4),
    f("vmx", 1, 0, Ecx, 5),
    f("smx", 1, 0, Ecx, 6),
    f("est", 1, 0, Ecx, 7),
    f("tm2", 1, 0, Ecx, 8),
    f("ssse3", 1, 0, Ecx, 9),
    f("cid", 1, 0, Ecx, 10),
    f("fma", 1, 0, Ecx, 12),
    f("cx16", 1, 0, Ecx, 13),
    f("xtpr", 1, 0, Ecx, 14),
    f("pdcm", 1, 0, Ecx, 15),
    f("pcid", 1, 0, Ecx, 17),
    f("dca", 1, 0, Ecx, 18),
    f("sse4.1", 1, 0, Ecx, 19),
    f("sse4.2", 1, 0, Ecx, 20),
    f("x2apic", 1, 0, Ecx, 21),
    f("movbe", 1, 0, Ecx, 22),
    f("popcnt", 1, 0, Ecx, 23),
    f("tsc-deadline", 1, 0, Ecx, 24),
    f("aes", 1, 0, Ecx, 25),
    f("xsave", 1, 0, Ecx, 26),
    f("avx", 1, 0, Ecx, 28),
    f("f16c", 1, 0, Ecx, 29),
    f("rdrand", 1, 0, Ecx, 30),
    f("hypervisor", 1, 0, Ecx, 31),
    // Leaf 7 subleaf 0 EBX.
    f("fsgsbase", 7, 0, Ebx, 0),
    f("tsc-adjust", 7, 0, Ebx, 1),
    f("sgx", 7, 0, Ebx, 2),
    f("bmi1", 7, 0, Ebx, 3),
    f("hle", 7, 0, Ebx, 4),
    f("avx2", 7, 0, Ebx, 5),
    f("smep", 7, 0, Ebx, 7),
    f("bmi2", 7, 0, Ebx, 8),
    f("erms", 7, 0, Ebx, 9),
    f("invpcid", 7, 0, Ebx, 10),
    f("rtm", 7, 0, Ebx, 11),
    f("mpx", 7, 0, Ebx, 14),
    f("avx512f", 7, 0, Ebx, 16),
    f("avx512dq", 7, 0, Ebx, 17),
    f("rdseed", 7, 0, Ebx, 18),
    f("adx", 7, 0, Ebx, 19),
    f("smap", 7, 0, Ebx, 20),
    f("avx512ifma", 7, 0, Ebx, 21),
    f("pcommit", 7, 0, Ebx, 22),
    f("clflushopt", 7, 0, Ebx, 23),
    f("clwb", 7, 0, Ebx, 24),
    f("intel-pt", 7, 0, Ebx, 25),
    f("avx512pf", 7, 0, Ebx, 26),
    f("avx512er", 7, 0, Ebx, 27),
    f("avx512cd", 7, 0, Ebx, 28),
    f("sha-ni", 7, 0, Ebx, 29),
    f("avx512bw", 7, 0, Ebx, 30),
    f("avx512vl", 7, 0, Ebx, 31),
    // Leaf 7 subleaf 0 ECX.
    f("avx512vbmi", 7, 0, Ecx, 1),
    f("umip", 7, 0, Ecx, 2),
    f("pku", 7, 0, Ecx, 3),
    f("waitpkg", 7, 0, Ecx, 5),
    f("avx512vbmi2", 7, 0, Ecx, 6),
    f("cet-ss", 7, 0, Ecx, 7),
    f("gfni", 7, 0, Ecx, 8),
    f("vaes", 7, 0, Ecx, 9),
    f("vpclmulqdq", 7, 0, Ecx, 10),
    f("avx512vnni", 7, 0, Ecx, 11),
    f("avx512bitalg", 7, 0, Ecx, 12),
    f("avx512-vpopcntdq", 7, 0, Ecx, 14),
    f("la57", 7, 0, Ecx, 16),
    f("rdpid", 7, 0, Ecx, 22),
    f("bus-lock-detect", 7, 0, Ecx, 24),
    f("cldemote", 7, 0, Ecx, 25),
    f("movdiri", 7, 0, Ecx, 27),
    f("movdir64b", 7, 0, Ecx, 28),
    f("sgxlc", 7, 0, Ecx, 30),
    f("pks", 7, 0, Ecx, 31),
    // Leaf 7 subleaf 0 EDX.
    f("avx512-4vnniw", 7, 0, Edx, 2),
    f("avx512-4fmaps", 7, 0, Edx, 3),
    f("fsrm", 7, 0, Edx, 4),
    f("avx512-vp2intersect", 7, 0, Edx, 8),
    f("md-clear", 7, 0, Edx, 10),
    f("serialize", 7, 0, Edx, 14),
    f("tsx-ldtrk", 7, 0, Edx, 16),
    f("arch-lbr", 7, 0, Edx, 19),
    f("cet-ibt", 7, 0, Edx, 20),
    f("amx-bf16", 7, 0, Edx, 22),
    f("avx512-fp16", 7, 0, Edx, 23),
    f("amx-tile", 7, 0, Edx, 24),
    f("amx-int8", 7, 0, Edx, 25),
    f("spec-ctrl", 7, 0, Edx, 26),
    f("stibp", 7, 0, Edx, 27),
    f("flush-l1d", 7, 0, Edx, 28),
    f("arch-capabilities", 7, 0, Edx, 29),
    f("core-capability", 7, 0, Edx, 30),
    f("ssbd", 7, 0, Edx, 31),
    // Leaf 7 subleaf 1 EAX.
    f("avx-vnni", 7, 1, Eax, 4),
    f("avx512-bf16", 7, 1, Eax, 5),
    f("fzrm", 7, 1, Eax, 10),
    f("fsrs", 7, 1, Eax, 11),
    f("fsrc", 7, 1, Eax, 12),
    f("amx-fp16", 7, 1, Eax, 21),
    f("avx-ifma", 7, 1, Eax, 23),
    f("lam", 7, 1, Eax, 26),
    // Leaf 0xd subleaf 1 EAX.
    f("xsaveopt", 0xd, 1, Eax, 0),
    f("xsavec", 0xd, 1, Eax, 1),
    f("xgetbv1", 0xd, 1, Eax, 2),
    f("xsaves", 0xd, 1, Eax, 3),
    f("xfd", 0xd, 1, Eax, 4),
    // Leaf 0x8000_0001 EDX.
    f("syscall", 0x8000_0001, 0, Edx, 11),
    f("nx", 0x8000_0001, 0, Edx, 20),
    f("mmxext", 0x8000_0001, 0, Edx, 22),
    f("fxsr-opt", 0x8000_0001, 0, Edx, 25),
    f("pdpe1gb", 0x8000_0001, 0, Edx, 26),
    f("rdtscp", 0x8000_0001, 0, Edx, 27),
    f("lm", 0x8000_0001, 0, Edx, 29),
    f("3dnowext", 0x8000_0001, 0, Edx, 30),
    f("3dnow", 0x8000_0001, 0, Edx, 31),
    // Leaf 0x8000_0001 ECX.
    f("lahf-lm", 0x8000_0001, 0, Ecx, 0),
    f("cmp-legacy", 0x8000_0001, 0, Ecx, 1),
    f("svm", 0x8000_0001, 0, Ecx, 2),
    f("extapic", 0x8000_0001, 0, Ecx, 3),
    f("cr8legacy", 0x8000_0001, 0, Ecx, 4),
    f("abm", 0x8000_0001, 0, Ecx, 5),
    f("sse4a", 0x8000_0001, 0, Ecx, 6),
    f("misalignsse", 0x8000_0001, 0, Ecx, 7),
    f("3dnowprefetch", 0x8000_0001, 0, Ecx, 8),
    f("osvw", 0x8000_0001, 0, Ecx, 9),
    f("ibs", 0x8000_0001, 0, Ecx, 10),
    f("xop", 0x8000_0001, 0, Ecx, 11),
    f("skinit", 0x8000_0001, 0, Ecx, 12),
    f("wdt", 0x8000_0001, 0, Ecx, 13),
    f("lwp", 0x8000_0001, 0, Ecx, 15),
    f("fma4", 0x8000_0001, 0, Ecx, 16),
    f("tce", 0x8000_0001, 0, Ecx, 17),
    f("nodeid-msr", 0x8000_0001, 0, Ecx, 19),
    f("tbm", 0x8000_0001, 0, Ecx, 21),
    f("topoext", 0x8000_0001, 0, Ecx, 22),
    f("perfctr-core", 0x8000_0001, 0, Ecx, 23),
    f("perfctr-nb", 0x8000_0001, 0, Ecx, 24),
    // Leaf 0x8000_0007 EDX.
    f("invtsc", 0x8000_0007, 0, Edx, 8),
    // Leaf 0x8000_0008 EBX.
    f("clzero", 0x8000_0008, 0, Ebx, 0),
    f("xsaveerptr", 0x8000_0008, 0, Ebx, 2),
    f("rdpru", 0x8000_0008, 0, Ebx, 4),
    f("wbnoinvd", 0x8000_0008, 0, Ebx, 9),
    f("ibpb", 0x8000_0008, 0, Ebx, 12),
    f("ibrs", 0x8000_0008, 0, Ebx, 14),
    f("amd-stibp", 0x8000_0008, 0, Ebx, 15),
    f("amd-ssbd", 0x8000_0008, 0, Ebx, 24),
    f("virt-ssbd", 0x8000_0008, 0, Ebx, 25),
    f("amd-no-ssb", 0x8000_0008, 0, Ebx, 26),
    // Leaf 0x8000_000a EDX (SVM features).
    f("npt", 0x8000_000a, 0, Edx, 0),
    f("lbrv", 0x8000_000a, 0, Edx, 1),
    f("svm-lock", 0x8000_000a, 0, Edx, 2),
    f("nrip-save", 0x8000_000a, 0, Edx, 3),
    f("tsc-scale", 0x8000_000a, 0, Edx, 4),
    f("vmcb-clean", 0x8000_000a, 0, Edx, 5),
    f("flushbyasid", 0x8000_000a, 0, Edx, 6),
    f("decodeassists", 0x8000_000a, 0, Edx, 7),
    f("pause-filter", 0x8000_000a, 0, Edx, 10),
    f("pfthreshold", 0x8000_000a, 0, Edx, 12),
    f("avic", 0x8000_000a, 0, Edx, 13),
    f("v-vmsave-vmload", 0x8000_000a, 0, Edx, 15),
    f("vgif", 0x8000_000a, 0, Edx, 16),
];

/// Other spellings QEMU accepts for a feature, and the name above.
const ALIASES: &[(&str, &str)] =
    &[("sse3", "pni"), ("sse4-1", "sse4.1"), ("sse4-2", "sse4.2"), ("xd", "nx"), ("ffxsr", "fxsr-opt"), ("i64", "lm")];

/// The feature QEMU calls `name` (`_` read as `-`, as QEMU does, and
/// QEMU's aliases), if this table has it.
pub fn feature(name: &str) -> Option<&'static Feature> {
    let name = name.replace('_', "-");
    let name = ALIASES.iter().find(|(a, _)| *a == name).map_or(name.as_str(), |(_, n)| n);
    FEATURES.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_and_bits_are_unique() {
        let names: HashSet<_> = FEATURES.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), FEATURES.len());
        let bits: HashSet<_> = FEATURES.iter().map(|f| f.bit).collect();
        assert_eq!(bits.len(), FEATURES.len());
        assert!(FEATURES.iter().all(|f| f.bit.bit < 32));
        for (alias, name) in ALIASES {
            assert!(FEATURES.iter().any(|f| f.name == *name), "{alias} -> {name}");
        }
    }

    /// The bits the upstream kvm-unit-tests' `unittests.cfg` switches.
    #[test]
    fn upstreams_names() {
        let bit = |n| feature(n).map(|f| (f.bit.leaf, f.bit.subleaf, f.bit.reg, f.bit.bit));
        assert_eq!(bit("x2apic"), Some((1, 0, Reg::Ecx, 21)));
        assert_eq!(bit("tsc-deadline"), Some((1, 0, Reg::Ecx, 24)));
        assert_eq!(bit("tsc_deadline"), Some((1, 0, Reg::Ecx, 24)));
        assert_eq!(bit("pcid"), Some((1, 0, Reg::Ecx, 17)));
        assert_eq!(bit("invpcid"), Some((7, 0, Reg::Ebx, 10)));
        assert_eq!(bit("umip"), Some((7, 0, Reg::Ecx, 2)));
        assert_eq!(bit("pku"), Some((7, 0, Reg::Ecx, 3)));
        assert_eq!(bit("la57"), Some((7, 0, Reg::Ecx, 16)));
        assert_eq!(bit("rdtscp"), Some((0x8000_0001, 0, Reg::Edx, 27)));
        assert_eq!(bit("xsave"), Some((1, 0, Reg::Ecx, 26)));
        assert_eq!(bit("svm"), Some((0x8000_0001, 0, Reg::Ecx, 2)));
        assert_eq!(bit("vmx"), Some((1, 0, Reg::Ecx, 5)));
        assert_eq!(bit("npt"), Some((0x8000_000a, 0, Reg::Edx, 0)));
        assert_eq!(bit("skinit"), Some((0x8000_0001, 0, Reg::Ecx, 12)));
        assert_eq!(bit("sse4_1"), Some((1, 0, Reg::Ecx, 19)));
        assert_eq!(bit("sse3"), Some((1, 0, Reg::Ecx, 0)));
        assert_eq!(bit("arch-capabilities"), Some((7, 0, Reg::Edx, 29)));
        assert_eq!(bit("lam"), Some((7, 1, Reg::Eax, 26)));
        assert_eq!(bit("nosuch"), None);
    }
}
