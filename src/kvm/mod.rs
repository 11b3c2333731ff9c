//! Running the VMM from the integration tests (`tests/vmm/`,
//! `tests/guests/`): skipping without `/dev/kvm`, finding (or building)
//! the `vmm` binary, running it, temporary files, and small guest ELFs
//! built with `iced-x86`; [`spt`] builds Solo5 `spt` unikernels.
//!
//! Without `/dev/kvm` a test prints why it skips and passes, unless
//! `VMM_REQUIRE_KVM=1`, in which case it fails.
//!
//! The tests of one area share one process, so nothing here leaves
//! process-wide state behind but the path of the `vmm` binary; runs
//! under seccomp go through that binary, never through this process.

pub mod kut;
pub mod linux;
pub mod multiboot;
pub mod spt;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// True when `/dev/kvm` can be opened for reading and writing.
pub fn kvm_available() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// Whether a KVM test should run: `false` (after saying why) when KVM is
/// missing and not required; panics when it is missing and required.
pub fn require_kvm(test: &str) -> bool {
    if kvm_available() {
        return true;
    }
    if std::env::var("VMM_REQUIRE_KVM").is_ok_and(|v| v == "1") {
        panic!("{test}: /dev/kvm is not available and VMM_REQUIRE_KVM=1");
    }
    eprintln!("{test}: SKIPPED: /dev/kvm is not available (set VMM_REQUIRE_KVM=1 to make this a failure)");
    false
}

/// Returns early from a test when KVM is not there (see
/// [`kvm::require_kvm`](crate::kvm::require_kvm)).
#[macro_export]
macro_rules! need_kvm {
    () => {
        if !$crate::kvm::require_kvm(module_path!()) {
            return;
        }
    };
}

/// The `vmm` binary of this build (built on first use if cargo has not
/// built it yet: it belongs to another package of the workspace,
/// `vmm-cli`).
pub fn vmm_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target dir>/[<triple>/]<profile>/deps/<test>-<hash>
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
        let bin = profile_dir.join("vmm");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        // The target directory is the outermost one cargo tagged (with a
        // build target set, .cargo/config.toml, `<triple>/` is tagged too).
        let target_dir = profile_dir
            .ancestors()
            .filter(|d| d.join("CACHEDIR.TAG").exists())
            .last()
            .or_else(|| profile_dir.parent())
            .expect("target dir")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "vmm-cli", "--bin", "vmm"]).env("CARGO_TARGET_DIR", &target_dir);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p vmm-cli");
        assert!(status.success(), "cargo build -p vmm-cli failed");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
}

/// Set in a test process started by [`in_fresh_process`].
const FRESH_PROCESS_ENV: &str = "VMM_SUITE_FRESH_PROCESS";

/// Runs the calling test again in a fresh process of this test binary
/// (`module` is the caller's `module_path!()`, `test` its function name),
/// unless this already is that process. Returns `true` when the test ran
/// elsewhere and passed (the caller returns at once), `false` when the
/// caller is the fresh process and runs the test body; panics, with the
/// other process's output, when it failed there.
///
/// For tests that measure the process they spawn: a child's peak RSS
/// (`ru_maxrss`) starts at its parent's high-water mark, since `execve`
/// folds the address space it replaces into it, and the tests of one
/// binary share a process that has run other tests' guests.
pub fn in_fresh_process(module: &str, test: &str) -> bool {
    if std::env::var_os(FRESH_PROCESS_ENV).is_some() {
        return false;
    }
    // Test names leave out the crate: `vmm::vmm_x` is `vmm_x::test`.
    let path = module.split_once("::").map_or("", |(_, rest)| rest);
    let name = if path.is_empty() { test.to_string() } else { format!("{path}::{test}") };
    let exe = std::env::current_exe().expect("test executable path");
    let out = Command::new(exe)
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(FRESH_PROCESS_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name} in a fresh process: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed in a fresh process:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{name} did not run in the fresh process:\n{stdout}\n{stderr}");
    eprint!("{stderr}");
    true
}

/// The result of one `vmm` run.
#[derive(Debug)]
pub struct VmmRun {
    /// Process exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl VmmRun {
    /// The `--json` report on stdout.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// Runs `vmm` with `args`, stdin closed.
pub fn run_vmm(args: &[&str]) -> VmmRun {
    let out = Command::new(vmm_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run vmm: {e}"));
    VmmRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A path in the temporary directory unique to this call: the process
/// id and a counter (the tests of one binary share the process and may
/// run at the same time), then `name`.
pub fn temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("vmm-test-{}-{n}-{name}", std::process::id()))
}

/// Writes a guest ELF whose code `body` emits (see
/// `vmm::guest::kinds::abi_elf::example::assemble_elf`) and returns its path.
pub fn write_guest(
    name: &str,
    body: impl FnOnce(&mut iced_x86::code_asm::CodeAssembler) -> Result<(), iced_x86::IcedError>,
) -> PathBuf {
    let img = vmm::guest::kinds::abi_elf::example::assemble_elf(body).expect("assemble guest");
    let path = temp_path(&format!("{name}.elf"));
    std::fs::write(&path, img).expect("write guest ELF");
    path
}
