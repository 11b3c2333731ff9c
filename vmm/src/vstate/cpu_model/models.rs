//! The named CPU models `-cpu` takes here (QEMU's definitions of the ones
//! kvm-unit-tests use, and their common relatives): vendor, family, model,
//! stepping and feature names. A model says only that much: cache and
//! topology leaves, the highest leaf numbers and the brand string stay
//! what KVM reports.

/// One named model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelDef {
    /// QEMU's name.
    pub name: &'static str,
    /// The 12-byte vendor string.
    pub vendor: &'static str,
    /// Family (before encoding).
    pub family: u32,
    /// Model (before encoding).
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
    /// Feature names ([`super::features::FEATURES`]).
    pub features: &'static [&'static str],
}

/// QEMU's `PPRO_FEATURES`.
macro_rules! ppro {
    ($($more:literal),* $(,)?) => {
        &["fpu", "de", "pse", "tsc", "msr", "mce", "cx8", "pge", "cmov", "pat", "fxsr", "mmx", "sse", "sse2", "pae",
          "sep", "apic", $($more),*]
    };
}

/// The named models.
pub const MODELS: &[ModelDef] = &[
    ModelDef {
        name: "qemu64",
        vendor: "AuthenticAMD",
        family: 15,
        model: 107,
        stepping: 1,
        features: ppro!["mtrr", "clflush", "mca", "pse36", "pni", "cx16", "lm", "syscall", "nx", "lahf-lm", "svm"],
    },
    ModelDef { name: "qemu32", vendor: "GenuineIntel", family: 6, model: 6, stepping: 3, features: ppro!["pni"] },
    ModelDef {
        name: "kvm64",
        vendor: "GenuineIntel",
        family: 15,
        model: 6,
        stepping: 1,
        features: ppro!["vme", "mtrr", "clflush", "mca", "pse36", "pni", "cx16", "lm", "syscall", "nx"],
    },
    ModelDef {
        name: "kvm32",
        vendor: "GenuineIntel",
        family: 15,
        model: 6,
        stepping: 1,
        features: ppro!["vme", "mtrr", "clflush", "mca", "pse36", "pni"],
    },
    ModelDef {
        name: "Opteron_G1",
        vendor: "AuthenticAMD",
        family: 15,
        model: 6,
        stepping: 1,
        features: ppro!["vme", "mtrr", "clflush", "mca", "pse36", "pni", "lm", "nx", "syscall"],
    },
    ModelDef {
        name: "IvyBridge",
        vendor: "GenuineIntel",
        family: 6,
        model: 58,
        stepping: 9,
        features: ppro![
            "vme",
            "mtrr",
            "clflush",
            "mca",
            "pse36",
            "pni",
            "pclmulqdq",
            "ssse3",
            "cx16",
            "sse4.1",
            "sse4.2",
            "x2apic",
            "popcnt",
            "tsc-deadline",
            "aes",
            "xsave",
            "avx",
            "f16c",
            "rdrand",
            "fsgsbase",
            "smep",
            "erms",
            "rdtscp",
            "nx",
            "syscall",
            "lm",
            "lahf-lm",
            "xsaveopt",
        ],
    },
    ModelDef {
        name: "Skylake-Server",
        vendor: "GenuineIntel",
        family: 6,
        model: 85,
        stepping: 4,
        features: ppro![
            "vme",
            "mtrr",
            "clflush",
            "mca",
            "pse36",
            "pni",
            "pclmulqdq",
            "ssse3",
            "fma",
            "cx16",
            "pcid",
            "sse4.1",
            "sse4.2",
            "x2apic",
            "movbe",
            "popcnt",
            "tsc-deadline",
            "aes",
            "xsave",
            "avx",
            "f16c",
            "rdrand",
            "fsgsbase",
            "bmi1",
            "hle",
            "avx2",
            "smep",
            "bmi2",
            "erms",
            "invpcid",
            "rtm",
            "mpx",
            "avx512f",
            "avx512dq",
            "rdseed",
            "adx",
            "smap",
            "clflushopt",
            "clwb",
            "avx512cd",
            "avx512bw",
            "avx512vl",
            "pku",
            "pdpe1gb",
            "rdtscp",
            "nx",
            "syscall",
            "lm",
            "abm",
            "lahf-lm",
            "3dnowprefetch",
            "xsaveopt",
            "xsavec",
            "xgetbv1",
        ],
    },
];

/// What QEMU changes in every named model when it runs on KVM (its
/// `kvm_default_props`): features on, then features off.
pub const KVM_DEFAULTS: (&[&str], &[&str]) = (&["x2apic", "hypervisor"], &["acpi", "monitor", "svm"]);

/// The model QEMU calls `name`.
pub fn model(name: &str) -> Option<&'static ModelDef> {
    MODELS.iter().find(|m| m.name == name)
}

/// CPUID leaf 1 EAX for a family, model and stepping, encoded as Intel
/// and AMD define it (families above 15 and models above 15 spill into
/// the extended fields). Values beyond the fields are cut to them.
pub fn signature(family: u32, model: u32, stepping: u32) -> u32 {
    let (fam, ext_fam) = if family > 0xf { (0xf, (family - 0xf).min(0xff)) } else { (family, 0) };
    let model = model.min(0xff);
    (stepping & 0xf) | ((model & 0xf) << 4) | ((fam & 0xf) << 8) | ((model >> 4) << 16) | (ext_fam << 20)
}

#[cfg(test)]
mod tests {
    use super::super::features::feature;
    use super::*;

    #[test]
    fn every_models_features_exist_and_vendors_are_12_bytes() {
        for m in MODELS {
            assert_eq!(m.vendor.len(), 12, "{}", m.name);
            for f in m.features {
                assert!(feature(f).is_some(), "{}: {f}", m.name);
            }
        }
        for f in KVM_DEFAULTS.0.iter().chain(KVM_DEFAULTS.1) {
            assert!(feature(f).is_some(), "{f}");
        }
    }

    /// Signatures as real CPUs report them.
    #[test]
    fn signatures() {
        // Skylake-SP: 0x50654.
        assert_eq!(signature(6, 85, 4), 0x0005_0654);
        // QEMU's qemu64 (family 15, model 107, stepping 1): 0x60fb1.
        assert_eq!(signature(15, 107, 1), 0x0006_0fb1);
        // Zen 2 (family 0x17, model 0x31, stepping 0): 0x830f10.
        assert_eq!(signature(0x17, 0x31, 0), 0x0083_0f10);
        assert_eq!(signature(u32::MAX, u32::MAX, u32::MAX), 0x0fff_0fff);
    }
}
