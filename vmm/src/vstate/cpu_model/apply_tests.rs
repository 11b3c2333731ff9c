//! Model tests of [`CpuSpec::apply`]: each feature bit of the result is
//! read back from the entries and compared with a reference computed
//! from the spec by name (what the model lists, QEMU's KVM defaults, the
//! flags in order), over random supported CPUIDs and random flags.

use std::collections::HashSet;

use kvm_bindings::kvm_cpuid_entry2;
use proptest::prelude::*;

use super::features::{feature, FeatureBit, Reg, FEATURES};
use super::models::{KVM_DEFAULTS, MODELS};
use super::{Base, CpuModelError, CpuSpec};

/// The leaves a supported CPUID has here: every feature leaf, and two a
/// model never touches (4 and 0xb).
const LEAVES: &[(u32, u32)] = &[
    (0, 0),
    (1, 0),
    (4, 0),
    (7, 0),
    (7, 1),
    (0xb, 0),
    (0xd, 1),
    (0x8000_0000, 0),
    (0x8000_0001, 0),
    (0x8000_0007, 0),
    (0x8000_0008, 0),
    (0x8000_000a, 0),
];

fn cpuid(words: &[[u32; 4]]) -> Vec<kvm_cpuid_entry2> {
    LEAVES
        .iter()
        .zip(words)
        .map(|(&(function, index), w)| kvm_cpuid_entry2 {
            function,
            index,
            eax: w[0],
            ebx: w[1],
            ecx: w[2],
            edx: w[3],
            ..Default::default()
        })
        .collect()
}

/// Reads a register of a leaf, independently of the code under test.
fn read(entries: &[kvm_cpuid_entry2], leaf: u32, subleaf: u32, reg: Reg) -> u32 {
    let e = entries.iter().find(|e| e.function == leaf && e.index == subleaf).unwrap();
    match reg {
        Reg::Eax => e.eax,
        Reg::Ebx => e.ebx,
        Reg::Ecx => e.ecx,
        Reg::Edx => e.edx,
    }
}

fn bit(entries: &[kvm_cpuid_entry2], b: &FeatureBit) -> bool {
    read(entries, b.leaf, b.subleaf, b.reg) >> b.bit & 1 == 1
}

fn vendor(entries: &[kvm_cpuid_entry2], leaf: u32) -> Vec<u8> {
    [Reg::Ebx, Reg::Edx, Reg::Ecx].iter().flat_map(|r| read(entries, leaf, 0, *r).to_le_bytes()).collect()
}

/// The names of the features the guest must have, or the feature whose
/// `+` cannot be given.
fn reference(spec: &CpuSpec, supported: &[kvm_cpuid_entry2]) -> Result<HashSet<&'static str>, &'static str> {
    let sup = |n: &str| bit(supported, &feature(n).unwrap().bit);
    let mut want: HashSet<&'static str> = match spec.base {
        Base::Named(m) => {
            m.features.iter().chain(KVM_DEFAULTS.0).copied().filter(|n| !KVM_DEFAULTS.1.contains(n)).collect()
        }
        Base::Host | Base::Max => FEATURES.iter().map(|f| f.name).collect(),
    };
    if !matches!(spec.base, Base::Named(_)) && spec.migratable {
        want.remove("invtsc");
    }
    for (f, on) in &spec.flags {
        if *on {
            if !sup(f.name) {
                return Err(f.name);
            }
            want.insert(f.name);
        } else {
            want.remove(f.name);
        }
    }
    Ok(want.into_iter().filter(|n| sup(n)).collect())
}

/// Bits of feature registers no feature names: among them OSXSAVE and
/// OSPKE, which KVM computes. They stay KVM's.
const UNNAMED: &[FeatureBit] = &[
    FeatureBit { leaf: 1, subleaf: 0, reg: Reg::Ecx, bit: 27 },
    FeatureBit { leaf: 7, subleaf: 0, reg: Reg::Ecx, bit: 4 },
    FeatureBit { leaf: 1, subleaf: 0, reg: Reg::Ecx, bit: 11 },
    FeatureBit { leaf: 7, subleaf: 0, reg: Reg::Ebx, bit: 6 },
];

fn check(spec: &CpuSpec, supported: &[kvm_cpuid_entry2]) {
    let mut got = supported.to_vec();
    let r = spec.apply(&mut got);
    match reference(spec, supported) {
        Err(name) => assert_eq!(r, Err(CpuModelError::Unsupported(name))),
        Ok(want) => {
            r.unwrap();
            for f in FEATURES {
                assert_eq!(bit(&got, &f.bit), want.contains(f.name), "{}", f.name);
            }
            // Registers no feature lives in are KVM's, but for the
            // signature and vendor of a named model or vendor=.
            let named = matches!(spec.base, Base::Named(_));
            for &(leaf, sub) in LEAVES {
                for reg in [Reg::Eax, Reg::Ebx, Reg::Ecx, Reg::Edx] {
                    let feat = FEATURES.iter().any(|f| (f.bit.leaf, f.bit.subleaf, f.bit.reg) == (leaf, sub, reg));
                    let vendor_reg = (leaf == 0 || leaf == 0x8000_0000) && reg != Reg::Eax;
                    let sig = (leaf, reg) == (1, Reg::Eax) && named;
                    let amd = (leaf, reg) == (0x8000_0001, Reg::Edx);
                    if !feat && !sig && !(vendor_reg && (named || spec.vendor.is_some())) && !amd {
                        assert_eq!(
                            read(&got, leaf, sub, reg),
                            read(supported, leaf, sub, reg),
                            "{leaf:#x}.{sub} {reg:?}"
                        );
                    }
                }
            }
            for b in UNNAMED {
                assert!(!FEATURES.iter().any(|f| f.bit == *b));
                assert_eq!(bit(&got, b), bit(supported, b));
            }
            let v = spec.vendor.map(|v| v.to_vec()).or(match spec.base {
                Base::Named(m) => Some(m.vendor.as_bytes().to_vec()),
                _ => None,
            });
            for leaf in [0, 0x8000_0000] {
                assert_eq!(vendor(&got, leaf), v.clone().unwrap_or_else(|| vendor(supported, leaf)));
            }
        }
    }
}

/// A host that supports everything but `la57` and `invtsc`.
fn rich_host() -> Vec<kvm_cpuid_entry2> {
    let mut w = vec![[u32::MAX; 4]; LEAVES.len()];
    w[0] = [0x1f, u32::from_le_bytes(*b"Genu"), u32::from_le_bytes(*b"ntel"), u32::from_le_bytes(*b"ineI")];
    let mut e = cpuid(&w);
    e.iter_mut().find(|e| e.function == 7 && e.index == 0).unwrap().ecx &= !(1 << 16);
    e.iter_mut().find(|e| e.function == 0x8000_0007).unwrap().edx &= !(1 << 8);
    e
}

#[test]
fn upstreams_specs() {
    let host = rich_host();
    let got = |s: &str| {
        let mut e = host.clone();
        CpuSpec::parse(s).unwrap().apply(&mut e).map(|_| e)
    };
    let has = |e: &[kvm_cpuid_entry2], n: &str| bit(e, &feature(n).unwrap().bit);
    // xapic: the x2APIC hidden, the TSC deadline timer there.
    let e = got("qemu64,-x2apic,+tsc-deadline").unwrap();
    assert!(!has(&e, "x2apic") && has(&e, "tsc-deadline") && has(&e, "lm") && !has(&e, "svm"));
    assert!(!has(&e, "avx") && !has(&e, "pcid") && has(&e, "hypervisor"));
    assert_eq!(vendor(&e, 0), b"AuthenticAMD");
    assert_eq!(read(&e, 1, 0, Reg::Eax), 0x60fb1);
    // The AMD copies of leaf 1's EDX bits.
    assert_eq!(read(&e, 0x8000_0001, 0, Reg::Edx) & 0x0183_f3ff, read(&e, 1, 0, Reg::Edx) & 0x0183_f3ff);
    // pcid-asymmetric.
    let e = got("qemu64,-pcid,+invpcid").unwrap();
    assert!(!has(&e, "pcid") && has(&e, "invpcid"));
    // host keeps what KVM gives (OSXSAVE too), vendor= replaces the vendor.
    let e = got("max,vendor=AuthenticAMD").unwrap();
    assert!(has(&e, "avx512f") && bit(&e, &FeatureBit { leaf: 1, subleaf: 0, reg: Reg::Ecx, bit: 27 }));
    assert_eq!(vendor(&e, 0x8000_0000), b"AuthenticAMD");
    assert_eq!(read(&e, 1, 0, Reg::Eax), u32::MAX);
    // What KVM cannot give is an error, never dropped.
    assert_eq!(got("max,+la57").unwrap_err(), CpuModelError::Unsupported("la57"));
    assert_eq!(got("host,migratable=no,+invtsc").unwrap_err(), CpuModelError::Unsupported("invtsc"));
    // ... but a model's own feature is dropped, as QEMU drops it, unless enforce.
    let mut no_avx = host.clone();
    no_avx.iter_mut().find(|e| e.function == 1).unwrap().ecx &= !(1 << 28);
    let spec = CpuSpec::parse("IvyBridge").unwrap();
    let mut e = no_avx.clone();
    spec.apply(&mut e).unwrap();
    assert!(!has(&e, "avx") && has(&e, "aes"));
    let spec = CpuSpec::parse("IvyBridge,enforce").unwrap();
    assert_eq!(spec.apply(&mut no_avx.clone()), Err(CpuModelError::Unsupported("avx")));
}

fn spec_strategy() -> impl Strategy<Value = CpuSpec> {
    let base = prop_oneof![Just(Base::Host), Just(Base::Max), (0..MODELS.len()).prop_map(|i| Base::Named(&MODELS[i])),];
    let flag = (0..FEATURES.len(), any::<bool>()).prop_map(|(i, on)| (&FEATURES[i], on));
    let vendor = prop::option::of(prop::array::uniform12(0x21u8..0x7f));
    (base, prop::collection::vec(flag, 0..8), vendor, any::<bool>())
        .prop_map(|(base, flags, vendor, migratable)| CpuSpec { base, flags, vendor, migratable, enforce: false })
}

proptest! {
    #[test]
    fn apply_matches_the_reference(
        words in prop::collection::vec(prop::array::uniform4(any::<u32>()), LEAVES.len()),
        spec in spec_strategy(),
    ) {
        check(&spec, &cpuid(&words));
    }
}
