//! Scenario (issue 20): the hostile-guest sweep. Guests of every kind (the
//! VMM's own ABI, Linux programs, raw multiboot kernels, Solo5 `spt`
//! unikernels) try to exhaust the VMM: memory mapped and touched until
//! none is left, mappings grown a page at a time thousands of times,
//! report, serial and stdout floods, fork bombs, the most mappings Linux
//! allows then `/proc/self/maps`, full pipes, sleeping, spinning and
//! deadlocked processes. Each run goes through the `vmm` binary under
//! the production seccomp filters and must end by `--timeout` + 2 s with
//! its expected status and message (no signal, no panic), the VMM's peak
//! resident memory within twice the guest's memory plus a fixed
//! allowance ([`measure::ALLOWANCE_MIB`]).

/// Declares a test that runs `$body` in a fresh process (a run's peak
/// resident memory is read from its own `wait4`).
macro_rules! fresh_test {
    ($test:ident, $body:block) => {
        #[test]
        fn $test() {
            vmm_suite::need_kvm!();
            if vmm_suite::kvm::in_fresh_process(module_path!(), stringify!($test)) {
                return;
            }
            $body
        }
    };
}

mod linux;
mod measure;
mod own_abi;
mod raw;
mod solo5;
