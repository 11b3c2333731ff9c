//! Helpers for the Linux-program scenarios (`tests/guests/linux_*`): a C
//! program from `tests/guests/linux/` built once with `gcc -static` (or
//! `musl-gcc -static`), and
//! running a program on the host to compare with what it does under the
//! VMM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::temp_path;

/// `tests/guests/linux/NAME.c` built with `gcc -static -O1`, once per
/// test binary run; `None` (with a message) where there is no static C
/// toolchain.
pub fn static_c_program(name: &str) -> Option<PathBuf> {
    built_with("gcc", name)
}

/// The same program built with `musl-gcc -static -O1` (Debian's
/// `musl-tools`): musl's start-up, `pthread_create` and `fork` make other
/// calls than glibc's. `None` (with a message) without `musl-gcc`.
pub fn static_musl_program(name: &str) -> Option<PathBuf> {
    built_with("musl-gcc", name)
}

fn built_with(cc: &str, name: &str) -> Option<PathBuf> {
    static BUILT: Mutex<BTreeMap<(String, String), Option<PathBuf>>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    built
        .entry((cc.to_owned(), name.to_owned()))
        .or_insert_with(|| {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/guests/linux/{name}.c"));
            let out = temp_path(&format!("{name}-{cc}"));
            let ok =
                Command::new(cc).args(["-static", "-O1", "-o"]).arg(&out).arg(&src).status().is_ok_and(|s| s.success());
            if !ok {
                eprintln!("SKIP: {cc} -static could not build {} (no {cc} or no static libc)", src.display());
            }
            ok.then_some(out)
        })
        .clone()
}

/// Runs `prog` with `args` on the host with an empty environment:
/// (stdout, status as a shell reports it: 128 + the signal that killed
/// it).
pub fn run_on_host(prog: &Path, args: &[&str]) -> (String, i32) {
    use std::os::unix::process::ExitStatusExt;
    let out = Command::new(prog).args(args).env_clear().output().expect("run on the host");
    let code = out.status.code().unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    (String::from_utf8_lossy(&out.stdout).into_owned(), code)
}

/// Asserts that `prog` (if it was built) prints `want` and exits 0 under
/// `vmm run` (the production filters, with `vmm_args` before `--guest`)
/// and, where `on_host` allows, on the host too: a scenario whose
/// expected output is what Linux printed. `None` (no toolchain) passes.
pub fn prints_what_linux_prints(prog: Option<PathBuf>, vmm_args: &[&str], want: &str, on_host: bool) {
    let Some(p) = prog else { return };
    let path = p.to_str().expect("utf-8 path");
    let mut argv = vec!["run", "--timeout", "60"];
    argv.extend_from_slice(vmm_args);
    argv.extend_from_slice(&["--guest", path]);
    let r = super::run_vmm(&argv);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, want, "stderr:\n{}", r.stderr);
    if on_host {
        assert_eq!(run_on_host(&p, &[]), (want.to_owned(), 0), "the host's own run");
    }
}

/// The host's free 2 MiB pages (`HugePages_Free`; 0 when unknown): a
/// scenario compares a huge-page program with the host only where the
/// host has enough.
pub fn host_free_hugepages() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("HugePages_Free:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}
