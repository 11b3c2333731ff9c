//! Reading QEMU's `-cpu` value (`MODEL[,+feat|-feat|feat=on|key=value]...`)
//! into a [`CpuSpec`]. What it does not do: touch CPUID (that is
//! [`super::apply`]), or accept anything it would not follow: a property
//! it does not implement is an error naming it, never ignored.

use super::features::{feature, Feature};
use super::models::{model, ModelDef};
use super::CpuModelError;

/// The model a spec starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// `host`: what KVM supports on this host.
    Host,
    /// `max`: on KVM the same as `host`.
    Max,
    /// A named model ([`super::models::MODELS`]).
    Named(&'static ModelDef),
}

/// A parsed `-cpu` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuSpec {
    /// The model.
    pub base: Base,
    /// Features switched on (`true`) or off, in the order given (a later
    /// one wins, as in QEMU).
    pub flags: Vec<(&'static Feature, bool)>,
    /// `vendor=`: the 12-byte vendor string.
    pub vendor: Option<[u8; 12]>,
    /// `migratable` (default on): `host`/`max` hide `invtsc`, as QEMU's.
    pub migratable: bool,
    /// `enforce`: a model feature KVM cannot give is an error, not
    /// dropped.
    pub enforce: bool,
}

/// Longest `-cpu` value read.
const MAX_SPEC: usize = 4096;

impl CpuSpec {
    /// Reads a `-cpu` value.
    pub fn parse(text: &str) -> Result<CpuSpec, CpuModelError> {
        if text.len() > MAX_SPEC {
            return Err(CpuModelError::TooLong(text.len()));
        }
        let mut items = text.split(',');
        let name = items.next().unwrap_or("").trim();
        let base = match name {
            "" => return Err(CpuModelError::NoModel),
            "host" => Base::Host,
            "max" => Base::Max,
            n => Base::Named(model(n).ok_or_else(|| CpuModelError::UnknownModel(n.into()))?),
        };
        let mut spec = CpuSpec { base, flags: Vec::new(), vendor: None, migratable: true, enforce: false };
        for item in items.map(str::trim).filter(|i| !i.is_empty()) {
            spec.item(item)?;
        }
        Ok(spec)
    }

    fn item(&mut self, item: &str) -> Result<(), CpuModelError> {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k.replace('_', "-"), Some(v)),
            None => match item.strip_prefix('+').map(|n| (n, true)).or(item.strip_prefix('-').map(|n| (n, false))) {
                Some((name, on)) => return self.flag(item, name, on),
                None => (item.replace('_', "-"), None),
            },
        };
        let not = |why: &'static str| Err(CpuModelError::NotFollowed { item: item.into(), why });
        let on = || match value {
            None | Some("on" | "yes" | "true") => Ok(true),
            Some("off" | "no" | "false") => Ok(false),
            Some(_) => Err(CpuModelError::BadValue(item.into())),
        };
        match key.as_str() {
            "vendor" => {
                let v = value.unwrap_or("").as_bytes();
                let bytes: [u8; 12] = v.try_into().map_err(|_| CpuModelError::BadValue(item.into()))?;
                if !bytes.iter().all(|b| b.is_ascii_graphic()) {
                    return Err(CpuModelError::BadValue(item.into()));
                }
                self.vendor = Some(bytes);
            }
            "migratable" => self.migratable = on()?,
            "enforce" => self.enforce = on()?,
            "check" => {
                on()?;
            }
            // The host's width is what the guest gets.
            "host-phys-bits" if on()? => {}
            "host-phys-bits" | "phys-bits" => return not("physical-address widths other than the host's"),
            k if k.starts_with("hv-") => return not("Hyper-V enlightenments"),
            k if feature(k).is_none() => return Err(CpuModelError::UnknownProperty(item.into())),
            k => return self.flag(item, k, on()?),
        }
        Ok(())
    }

    fn flag(&mut self, item: &str, name: &str, on: bool) -> Result<(), CpuModelError> {
        let n = name.replace('_', "-");
        if n.starts_with("hv-") {
            return Err(CpuModelError::NotFollowed { item: item.into(), why: "Hyper-V enlightenments" });
        }
        let f = feature(&n).ok_or_else(|| CpuModelError::UnknownFeature(item.into()))?;
        if on && matches!(f.name, "vmx" | "svm") {
            return Err(CpuModelError::NotFollowed { item: item.into(), why: "nested virtualization" });
        }
        self.flags.push((f, on));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(s: &CpuSpec) -> Vec<(&'static str, bool)> {
        s.flags.iter().map(|(f, on)| (f.name, *on)).collect()
    }

    #[test]
    fn upstreams_values_parse() {
        let s = CpuSpec::parse("qemu64,+x2apic,+tsc-deadline").unwrap();
        assert!(matches!(s.base, Base::Named(m) if m.name == "qemu64"));
        assert_eq!(flags(&s), [("x2apic", true), ("tsc-deadline", true)]);
        let s = CpuSpec::parse("qemu64,-pcid,+invpcid").unwrap();
        assert_eq!(flags(&s), [("pcid", false), ("invpcid", true)]);
        let s = CpuSpec::parse("max,vendor=GenuineIntel").unwrap();
        assert_eq!((s.base, s.vendor), (Base::Max, Some(*b"GenuineIntel")));
        let s = CpuSpec::parse("host,migratable=no").unwrap();
        assert_eq!((s.base, s.migratable), (Base::Host, false));
        let s = CpuSpec::parse("max,host-phys-bits").unwrap();
        assert!(s.flags.is_empty());
        let s = CpuSpec::parse("max,-pku,x2apic=off,sse4_1=on,pcid").unwrap();
        assert_eq!(flags(&s), [("pku", false), ("x2apic", false), ("sse4.1", true), ("pcid", true)]);
        assert!(CpuSpec::parse("Opteron_G1,vendor=AuthenticAMD").is_ok());
        assert!(CpuSpec::parse("max,enforce").unwrap().enforce);
    }

    #[test]
    fn what_is_not_followed_is_an_error_naming_it() {
        let e = |s| CpuSpec::parse(s).unwrap_err().to_string();
        assert_eq!(e("host,hv_passthrough"), "hv_passthrough: needs Hyper-V enlightenments, which vmm does not offer");
        assert_eq!(e("max,+vmx"), "+vmx: needs nested virtualization, which vmm does not offer");
        assert_eq!(e("max,+svm,-npt"), "+svm: needs nested virtualization, which vmm does not offer");
        assert!(e("IvyBridge,phys-bits=36,host-phys-bits=off").starts_with("phys-bits=36: needs physical-address"));
        assert_eq!(e("Skylake-Server,+vmx-mbec"), "unknown CPU feature +vmx-mbec");
        assert_eq!(e("Pentium9"), "unknown CPU model Pentium9");
        assert_eq!(e(""), "no CPU model");
        assert_eq!(e("max,vendor=Intel"), "bad value in vendor=Intel");
        assert_eq!(e("max,x2apic=maybe"), "bad value in x2apic=maybe");
        assert_eq!(e("max,level=7"), "property not followed: level=7");
        assert!(e(&"a".repeat(5000)).contains("5000 bytes"));
        // Switching nested virtualization off is followed.
        assert_eq!(flags(&CpuSpec::parse("max,-vmx").unwrap()), [("vmx", false)]);
    }
}
