//! What the benchmarks ran on: the CPU, the kernel and the KVM backend.
//!
//! Exit costs differ by orders of magnitude between KVM backends (hardware
//! VMX/SVM with EPT/NPT, nested virtualization, or a software-assisted
//! backend such as PVM with shadow paging), so every report names the one
//! it ran on and exit figures are only comparable within one backend.

use std::path::Path;

use serde::Serialize;

/// The machine a report was measured on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs this process may run on (affinity and cgroup limits).
    pub cpus: usize,
    /// Total memory in GiB (`MemTotal`).
    pub memory_gib: f64,
    /// The host kernel release.
    pub kernel: String,
    /// Whether this host itself runs under a hypervisor (`hypervisor` flag):
    /// KVM here is then nested.
    pub nested: bool,
    /// The KVM backend.
    pub kvm: KvmBackend,
}

/// The KVM implementation behind `/dev/kvm`.
#[derive(Clone, Debug, Serialize)]
pub struct KvmBackend {
    /// Whether `/dev/kvm` can be opened for reading and writing.
    pub available: bool,
    /// The vendor module loaded: `kvm_intel`, `kvm_amd`, `kvm_pvm` or none.
    pub module: Option<String>,
    /// Whether guest page tables are walked by hardware (EPT/NPT) rather
    /// than shadowed in software; `None` where the module does not say.
    pub two_dimensional_paging: Option<bool>,
    /// One line for people.
    pub description: String,
}

impl Machine {
    /// Reads the running machine.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into());
        let flags: Vec<String> =
            field(&cpuinfo, "flags").map(|f| f.split_whitespace().map(String::from).collect()).unwrap_or_default();
        let nested = flags.iter().any(|f| f == "hypervisor");
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse::<f64>().ok()))
            .map_or(0.0, |kib| kib / (1u64 << 20) as f64);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Machine { cpu_model, cpus, memory_gib, kernel, nested, kvm: KvmBackend::detect(nested) }
    }

    /// One line naming the machine and backend, for the report header.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} CPUs, {:.0} GiB, Linux {}{}); KVM: {}",
            self.cpu_model,
            self.cpus,
            self.memory_gib,
            self.kernel,
            if self.nested { ", itself a VM" } else { "" },
            self.kvm.description
        )
    }
}

impl KvmBackend {
    fn detect(nested: bool) -> KvmBackend {
        // Usable, not merely present: without read-write access (not in
        // the kvm group) no guest can run.
        let available = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
        let module = ["kvm_pvm", "kvm_intel", "kvm_amd"]
            .into_iter()
            .find(|m| Path::new("/sys/module").join(m).exists())
            .map(String::from);
        let param = |m: &str, p: &str| {
            std::fs::read_to_string(Path::new("/sys/module").join(m).join("parameters").join(p))
                .ok()
                .map(|v| matches!(v.trim(), "Y" | "1"))
        };
        let two_dimensional_paging = match module.as_deref() {
            Some("kvm_intel") => param("kvm_intel", "ept"),
            Some("kvm_amd") => param("kvm_amd", "npt"),
            // PVM runs guests without VMX/SVM and always shadows their page tables.
            Some("kvm_pvm") => Some(false),
            _ => None,
        };
        let description = match (available, module.as_deref()) {
            (false, _) if Path::new("/dev/kvm").exists() => "not usable (/dev/kvm cannot be opened read-write)".to_string(),
            (false, _) => "not available (/dev/kvm missing)".to_string(),
            (true, Some("kvm_pvm")) => format!(
                "kvm_pvm: PVM, a software-assisted backend with shadow paging{}; exits are far slower than on hardware virtualization",
                if nested { ", nested in a VM" } else { "" }
            ),
            (true, Some(m)) => format!(
                "{m}{}{}",
                match two_dimensional_paging {
                    Some(true) => " with two-dimensional paging (EPT/NPT)",
                    Some(false) => " with shadow paging",
                    None => "",
                },
                if nested { ", nested in a VM" } else { "" }
            ),
            (true, None) => "unknown vendor module".to_string(),
        };
        KvmBackend { available, module, two_dimensional_paging, description }
    }
}

/// The value of the first `name : value` line in a /proc file.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read_by_name() {
        let text = "processor\t: 0\nmodel name\t: Some CPU @ 2GHz\nflags\t\t: fpu hypervisor\n";
        assert_eq!(field(text, "model name").as_deref(), Some("Some CPU @ 2GHz"));
        assert_eq!(field(text, "flags").as_deref(), Some("fpu hypervisor"));
        assert_eq!(field(text, "model"), None);
    }
}
