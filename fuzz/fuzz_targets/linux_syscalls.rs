//! libFuzzer entry for `vmm_suite::fuzz_targets::linux_syscalls` (see that function for what
//! it checks); `fuzz/run.sh` builds and runs it.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vmm_suite::fuzz_targets::linux_syscalls(data));
