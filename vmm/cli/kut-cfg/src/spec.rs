//! One test of the file, as written (nothing resolved or checked against
//! the machine).

/// One `[section]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestSpec {
    /// The section name.
    pub name: String,
    /// The kernel file, relative to the directory of the configuration.
    pub file: String,
    /// vCPUs (`smp`), default 1. Any number that fits is kept: whether
    /// the machine has that many is the runner's question.
    pub smp: u64,
    /// QEMU parameters (`extra_params` and `qemu_params`, joined).
    pub qemu_params: String,
    /// The test's own arguments (`test_args`, or `-append` in the params).
    pub test_args: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Timeout in seconds, if given.
    pub timeout_secs: Option<u64>,
    /// `arch`, if given.
    pub arch: Option<String>,
    /// `accel`, if given.
    pub accel: Option<String>,
    /// `machine`, if given: the QEMU machine the test is for (upstream
    /// skips it when `MACHINE` names another).
    pub machine: Option<String>,
    /// `check` conditions: `path=value` pairs.
    pub check: Vec<(String, String)>,
    /// `disabled_if`: a bash condition, as written; the runner decides
    /// whether it can evaluate it.
    pub disabled_if: Option<String>,
}
