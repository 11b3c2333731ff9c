//! Editing the CPUID KVM supports into what a [`CpuSpec`] asks for, the
//! way QEMU builds a KVM guest's CPUID: a named model's feature words are
//! its own features (with QEMU's KVM defaults) that KVM can give, `host`
//! and `max` keep KVM's; `+feat` that KVM cannot give is an error (the
//! guest never runs with less than it was told to have), `-feat` clears
//! the bit, `vendor=` and a named model's vendor, family, model and
//! stepping replace the host's. What it does not do: add leaves KVM did
//! not report, or touch a bit [`FEATURES`] does not name (among them
//! those KVM computes itself, OSXSAVE and OSPKE): those stay KVM's.

use kvm_bindings::kvm_cpuid_entry2;

use super::features::{feature, Feature, FeatureBit, Reg, FEATURES};
use super::models::{signature, KVM_DEFAULTS};
use super::spec::{Base, CpuSpec};
use super::CpuModelError;

/// The leaf 1 EDX bits an AMD CPU repeats in leaf 0x8000_0001 EDX
/// (QEMU's `CPUID_EXT2_AMD_ALIASES`).
const AMD_ALIASES: u32 = 0x0183_f3ff;

fn reg_mut(e: &mut kvm_cpuid_entry2, reg: Reg) -> &mut u32 {
    match reg {
        Reg::Eax => &mut e.eax,
        Reg::Ebx => &mut e.ebx,
        Reg::Ecx => &mut e.ecx,
        Reg::Edx => &mut e.edx,
    }
}

fn entry(entries: &mut [kvm_cpuid_entry2], leaf: u32, subleaf: u32) -> Option<&mut kvm_cpuid_entry2> {
    entries.iter_mut().find(|e| e.function == leaf && e.index == subleaf)
}

/// Whether `entries` (KVM's supported CPUID) has bit `b`.
pub fn has(entries: &[kvm_cpuid_entry2], b: &FeatureBit) -> bool {
    let mut e = entries.iter().find(|e| e.function == b.leaf && e.index == b.subleaf).copied();
    e.as_mut().is_some_and(|e| *reg_mut(e, b.reg) & b.mask() != 0)
}

fn set(entries: &mut [kvm_cpuid_entry2], b: &FeatureBit, on: bool) {
    if let Some(e) = entry(entries, b.leaf, b.subleaf) {
        let r = reg_mut(e, b.reg);
        *r = if on { *r | b.mask() } else { *r & !b.mask() };
    }
}

impl CpuSpec {
    /// Edits `entries`, which hold the CPUID KVM supports, into the guest's.
    /// On an error `entries` may be partly edited.
    pub fn apply(&self, entries: &mut [kvm_cpuid_entry2]) -> Result<(), CpuModelError> {
        let supported = entries.to_vec();
        let give = |entries: &mut [kvm_cpuid_entry2], f: &Feature, on: bool, must: bool| {
            if on && !has(&supported, &f.bit) {
                if must {
                    return Err(CpuModelError::Unsupported(f.name));
                }
                log::warn!("-cpu: KVM cannot give {}, the guest runs without it (as QEMU's)", f.name);
                return Ok(());
            }
            set(entries, &f.bit, on);
            Ok(())
        };
        match self.base {
            Base::Named(m) => {
                for f in FEATURES {
                    set(entries, &f.bit, false);
                }
                let (on, off) = KVM_DEFAULTS;
                let wanted = m.features.iter().chain(on).filter(|n| !off.contains(n));
                for f in wanted.filter_map(|n| feature(n)) {
                    give(entries, f, true, self.enforce)?;
                }
                if let Some(e) = entry(entries, 1, 0) {
                    e.eax = signature(m.family, m.model, m.stepping);
                }
            }
            Base::Host | Base::Max => {
                if self.migratable {
                    if let Some(f) = feature("invtsc") {
                        set(entries, &f.bit, false);
                    }
                }
            }
        }
        for (f, on) in &self.flags {
            give(entries, f, *on, true)?;
        }
        let vendor = self.vendor.or(match self.base {
            Base::Named(m) => m.vendor.as_bytes().try_into().ok(),
            _ => None,
        });
        if let Some(v) = vendor {
            let word = |i: usize| u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
            for leaf in [0, 0x8000_0000] {
                if let Some(e) = entry(entries, leaf, 0) {
                    (e.ebx, e.edx, e.ecx) = (word(0), word(4), word(8));
                }
            }
        }
        if matches!(self.base, Base::Named(_)) && vendor == Some(*b"AuthenticAMD") {
            let edx1 = entries.iter().find(|e| e.function == 1).map_or(0, |e| e.edx);
            if let Some(e) = entry(entries, 0x8000_0001, 0) {
                e.edx = (e.edx & !AMD_ALIASES) | (edx1 & AMD_ALIASES);
            }
        }
        Ok(())
    }
}
