//! `vmm kut DIR`: runs a kvm-unit-tests suite from `DIR/unittests.cfg`
//! (or `DIR/x86/unittests.cfg`) the way upstream's `run_tests.sh` does,
//! with `vmm` instead of QEMU: [`cfg`] reads the file, [`plan`] decides
//! what each test needs and whether it can run, [`run`] runs each in its
//! own `vmm run --kernel` process, [`output`] prints the results.

pub mod cfg;
pub mod output;
pub mod plan;
pub mod run;

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors before any test runs.
#[derive(Debug, Error)]
pub enum KutError {
    /// No configuration file in the directory.
    #[error("no unittests.cfg in {0} or its x86/ directory")]
    NoConfig(PathBuf),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
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
    /// Test names to run (all when empty).
    pub names: Vec<String>,
    /// Groups to run (all when empty).
    pub groups: Vec<String>,
    /// Timeout of a test whose section has none (seconds).
    pub default_timeout: u64,
    /// Cap on every test's timeout.
    pub max_timeout: Option<u64>,
}

/// Finds the configuration file for `dir`.
pub fn find_cfg(dir: &Path) -> Result<PathBuf, KutError> {
    [dir.join("unittests.cfg"), dir.join("x86/unittests.cfg")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| KutError::NoConfig(dir.to_owned()))
}

/// Reads the suite and decides each selected test's plan, in file order.
pub fn plan_suite(dir: &Path, o: &SuiteOptions) -> Result<Vec<(String, plan::Plan)>, KutError> {
    let path = find_cfg(dir)?;
    let text = std::fs::read_to_string(&path).map_err(|source| KutError::Read { path: path.clone(), source })?;
    let tests = cfg::parse(&text).map_err(|source| KutError::Parse { path: path.clone(), source })?;
    let base = path.parent().unwrap_or(dir);
    for n in &o.names {
        if !tests.iter().any(|t| &t.name == n) {
            return Err(KutError::NoMatch(format!("the name {n:?}")));
        }
    }
    let selected: Vec<_> = tests
        .iter()
        .filter(|t| o.names.is_empty() || o.names.contains(&t.name))
        .filter(|t| o.groups.is_empty() || t.groups.iter().any(|g| o.groups.contains(g)))
        .collect();
    if selected.is_empty() {
        return Err(KutError::NoMatch(format!("the groups {:?}", o.groups)));
    }
    let popts =
        |named| plan::PlanOptions { default_timeout: o.default_timeout.max(1), max_timeout: o.max_timeout, named };
    Ok(selected.into_iter().map(|t| (t.name.clone(), plan::plan(t, base, &popts(o.names.contains(&t.name))))).collect())
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
        assert!(matches!(&all[0].1, plan::Plan::Run(l) if l.kernel == dir.join("a.flat")));
        assert_eq!(all[2].1, plan::Plan::Skip("i386 only".into()));
        let g = plan_suite(&dir, &SuiteOptions { groups: vec!["g1".into()], ..Default::default() }).unwrap();
        assert_eq!(g.len(), 2);
        let n = plan_suite(&dir, &SuiteOptions { names: vec!["b".into()], ..Default::default() }).unwrap();
        assert_eq!(n.len(), 1);
        assert!(matches!(
            plan_suite(&dir, &SuiteOptions { names: vec!["zz".into()], ..Default::default() }),
            Err(KutError::NoMatch(_))
        ));
        std::fs::write(dir.join("unittests.cfg"), "[a]\nsmp = x\n").unwrap();
        assert!(matches!(plan_suite(&dir, &SuiteOptions::default()), Err(KutError::Parse { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
