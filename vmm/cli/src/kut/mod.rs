//! `vmm kut DIR`: runs a kvm-unit-tests suite from `DIR/unittests.cfg`
//! (or `DIR/x86/unittests.cfg`) the way upstream's `run_tests.sh` does,
//! with `vmm` instead of QEMU: [`cfg`] reads the file, [`plan`] decides
//! what each test needs and whether it can run (with [`cond`] for
//! `disabled_if`), [`run`] runs each in its
//! own `vmm run --kernel` process, [`output`] prints the results.
//!
//! The tree is written elsewhere and trusted with nothing: the file is
//! read bounded and parsed in linear time (the `kut-cfg` crate, [`cfg`]),
//! kernels must be regular files inside DIR ([`tree`]), `check =` files
//! are read bounded and without blocking ([`check`]), log names stay in
//! the log directory ([`logs`]); what fails these is a SKIP naming why.

mod check;
pub mod cond;
pub use kut_cfg as cfg;
pub mod env_file;
pub mod environ;
pub mod logs;
pub mod output;
pub mod plan;
pub mod run;
pub mod subst;
pub mod tree;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors before any test runs.
#[derive(Debug, Error)]
pub enum KutError {
    /// No configuration file in the directory.
    #[error("no unittests.cfg in {0} or its x86/ directory")]
    NoConfig(PathBuf),
    /// The file could not be read, is not a regular file, or is over
    /// [`MAX_CFG`].
    #[error(transparent)]
    Read(#[from] vmm::input_file::InputError),
    /// The directory could not be resolved.
    #[error("cannot resolve {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: cfg::CfgError,
    },
    /// A filter matched no test.
    #[error("no test matches {0}")]
    NoMatch(String),
}

/// Which tests, and how.
#[derive(Clone, Debug, Default)]
pub struct SuiteOptions {
    /// Test names to run (all when empty). Naming a test does not run it
    /// if it is in group `nodefault` (as upstream's `run_tests.sh`).
    pub names: Vec<String>,
    /// Groups to run (all when empty). A test in one of them runs even if
    /// it is in group `nodefault`.
    pub groups: Vec<String>,
    /// `-a`: run `nodefault` tests too.
    pub all: bool,
    /// Timeout of a test whose section has none (seconds; 0: none).
    pub default_timeout: u64,
    /// The `TIMEOUT` environment variable: every test's timeout (0: none).
    pub timeout_env: Option<u64>,
    /// The `ACCEL` environment variable.
    pub accel_env: Option<String>,
    /// The guest environment file every test gets, if any.
    pub initrd: Option<PathBuf>,
    /// Cap on every test's timeout.
    pub max_timeout: Option<u64>,
    /// Each test's log will be written to a directory (`--logs`).
    pub logs: bool,
    /// The `CHECK` environment variable, split into conditions.
    pub check_env: Option<Vec<(String, String)>>,
    /// The `MACHINE` environment variable.
    pub machine_env: Option<String>,
}

/// Largest `unittests.cfg` read (upstream's is about 20 KiB).
pub const MAX_CFG: u64 = 16 << 20;

/// Finds the configuration file for `dir`.
pub fn find_cfg(dir: &Path) -> Result<PathBuf, KutError> {
    [dir.join("unittests.cfg"), dir.join("x86/unittests.cfg")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| KutError::NoConfig(dir.to_owned()))
}

/// The tests of the suite in `dir`, in file order, and the file.
fn read_suite(dir: &Path) -> Result<(PathBuf, Vec<cfg::TestSpec>), KutError> {
    let path = find_cfg(dir)?;
    let bytes = vmm::input_file::read_input(&path, MAX_CFG)?;
    let tests = cfg::parse_bytes(&bytes).map_err(|source| KutError::Parse { path: path.clone(), source })?;
    Ok((path, tests))
}

/// The names of every test of the suite in `dir`, in file order (`-l`).
pub fn list_suite(dir: &Path) -> Result<Vec<String>, KutError> {
    Ok(read_suite(dir)?.1.into_iter().map(|t| t.name).collect())
}

/// Reads the suite and decides each selected test's plan, in file order.
pub fn plan_suite(dir: &Path, o: &SuiteOptions) -> Result<Vec<(String, plan::Plan)>, KutError> {
    let (path, tests) = read_suite(dir)?;
    let base = path.parent().unwrap_or(dir);
    let tree = tree::Tree::new(dir, base).map_err(|source| KutError::Dir { path: dir.to_owned(), source })?;
    let names: HashSet<&str> = o.names.iter().map(String::as_str).collect();
    let groups: HashSet<&str> = o.groups.iter().map(String::as_str).collect();
    let known: HashSet<&str> = tests.iter().map(|t| t.name.as_str()).collect();
    if let Some(n) = o.names.iter().find(|n| !known.contains(n.as_str())) {
        return Err(KutError::NoMatch(format!("the name {n:?}")));
    }
    let selected: Vec<_> = tests
        .iter()
        .filter(|t| names.is_empty() || names.contains(t.name.as_str()))
        .filter(|t| groups.is_empty() || t.groups.iter().any(|g| groups.contains(g.as_str())))
        .collect();
    if selected.is_empty() {
        return Err(KutError::NoMatch(format!("the groups {:?}", o.groups)));
    }
    let popts = plan::PlanOptions {
        default_timeout: o.default_timeout,
        timeout_env: o.timeout_env,
        max_timeout: o.max_timeout,
        nodefault: o.all || !o.groups.is_empty(),
        accel_env: o.accel_env.clone(),
        initrd: o.initrd.clone(),
        logs: o.logs,
        check_env: o.check_env.clone(),
        machine_env: o.machine_env.clone(),
    };
    Ok(selected.into_iter().map(|t| (t.name.clone(), plan::plan(t, &tree, &popts))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_missing_config() {
        let dir = std::env::temp_dir().join(format!("vmm-kut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(plan_suite(&dir, &SuiteOptions::default()), Err(KutError::NoConfig(_))));
        std::fs::write(
            dir.join("unittests.cfg"),
            "[a]\nfile = a.flat\ngroups = g1\n[b]\nfile = b.flat\n[c]\nfile = c.flat\narch = i386\ngroups = g1\n",
        )
        .unwrap();
        let all = plan_suite(&dir, &SuiteOptions::default()).unwrap();
        assert_eq!(all.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(matches!(&all[0].1, plan::Plan::Skip(why) if why.contains("not found")));
        std::fs::write(dir.join("a.flat"), b"k").unwrap();
        let all = plan_suite(&dir, &SuiteOptions::default()).unwrap();
        assert!(matches!(&all[0].1, plan::Plan::Run(l) if l.kernel == dir.canonicalize().unwrap().join("a.flat")));
        assert_eq!(all[2].1, plan::Plan::Skip("i386 only".into()));
        let g = plan_suite(&dir, &SuiteOptions { groups: vec!["g1".into()], ..Default::default() }).unwrap();
        assert_eq!(g.len(), 2);
        let n = plan_suite(&dir, &SuiteOptions { names: vec!["b".into()], ..Default::default() }).unwrap();
        assert_eq!(n.len(), 1);
        assert!(matches!(
            plan_suite(&dir, &SuiteOptions { names: vec!["zz".into()], ..Default::default() }),
            Err(KutError::NoMatch(_))
        ));
        // Issue 21: naming a `nodefault` test does not run it; -a and -g do.
        std::fs::write(dir.join("unittests.cfg"), "[a]\nfile = a.flat\ngroups = g1 nodefault\n[b]\nfile = a.flat\n")
            .unwrap();
        assert_eq!(list_suite(&dir).unwrap(), ["a", "b"]);
        let named = |all, groups: &[&str]| {
            let o = SuiteOptions {
                names: vec!["a".into()],
                groups: groups.iter().map(|g| g.to_string()).collect(),
                all,
                ..Default::default()
            };
            plan_suite(&dir, &o).unwrap().remove(0).1
        };
        assert_eq!(named(false, &[]), plan::Plan::Skip("test marked as manual run only".into()));
        assert!(matches!(named(true, &[]), plan::Plan::Run(_)));
        assert!(matches!(named(false, &["g1"]), plan::Plan::Run(_)));
        std::fs::write(dir.join("unittests.cfg"), "[a]\nsmp = x\n").unwrap();
        assert!(matches!(plan_suite(&dir, &SuiteOptions::default()), Err(KutError::Parse { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 21's bad input: binary garbage is a clear error, and a file
    /// over the cap is refused before it is read.
    #[test]
    fn garbage_and_huge_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("vmm-kut-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("unittests.cfg"), b"\x7fELF\x02\x01\x01\0\0\0\xff\xfe").unwrap();
        let e = plan_suite(&dir, &SuiteOptions::default()).unwrap_err();
        assert!(matches!(e, KutError::Parse { source: cfg::CfgError::Binary { line: 1, .. }, .. }), "{e}");
        assert!(e.to_string().contains("not a text file"), "{e}");
        std::fs::File::create(dir.join("unittests.cfg")).unwrap().set_len(MAX_CFG + 1).unwrap();
        let e = plan_suite(&dir, &SuiteOptions::default()).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
