//! What one `vmm kut` run printed, for the tests that run the
//! kvm-unit-tests runner on trees they build.

/// The exit status and output of one `vmm kut` run.
#[derive(Debug)]
pub struct KutOut {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl KutOut {
    /// The `--json` results: (name, verdict, reason), in order.
    pub fn verdicts(&self) -> Vec<(String, String, String)> {
        let v: serde_json::Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}), exit {:?}:\n{}\n{}", self.code, self.stdout, self.stderr));
        v["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .map(|t| {
                let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
                (s("name"), s("verdict"), s("reason"))
            })
            .collect()
    }

    /// The verdict and reason of test `name`.
    pub fn verdict(&self, name: &str) -> (String, String) {
        let all = self.verdicts();
        let (_, v, r) = all.iter().find(|(n, _, _)| n == name).unwrap_or_else(|| panic!("{name} missing: {all:?}"));
        (v.clone(), r.clone())
    }

    /// The names of the tests in the `--json` results.
    pub fn names(&self) -> Vec<String> {
        self.verdicts().into_iter().map(|(n, _, _)| n).collect()
    }
}
