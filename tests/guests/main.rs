//! Guests written elsewhere, through the `vmm` command on KVM: Solo5
//! `spt` unikernels (upstream's own from `../shared/testguests/solo5-spt`,
//! and small ones generated here for the personality and the block
//! device), kvm-unit-tests from `../shared/testguests/kvm-unit-tests`
//! (`vmm kut`), and the multiboot kernel loader they boot through
//! (`vmm run --kernel`, with kernels generated here), and the runner of
//! suites of Linux programs (`vmm ltest`, over fake programs). One module per
//! scenario, named after the file it lives in, so that
//! `cargo test --test guests solo5_block` runs one of them.
//!
//! Without `/dev/kvm` the tests skip (or fail with `VMM_REQUIRE_KVM=1`);
//! without the test data in `../shared/testguests` the tests that need it
//! say so and pass. See docs/test-guests.md.

mod kut_conventions;
mod kut_hostile;
mod kut_suite;
mod linux_filemap;
mod linux_futexes;
mod linux_growsdown;
mod linux_hugepages;
mod linux_hugetlb_memfd;
mod linux_ipc;
mod linux_mdwe_order;
mod linux_mempolicy;
mod linux_mincore_cache;
mod linux_mm_suite;
mod linux_mmfuzz;
mod linux_mremap_dup;
mod linux_proc_mem;
mod linux_processes;
mod linux_programs;
mod linux_punch;
mod linux_signals;
mod linux_smp;
mod linux_sysv_shm;
mod linux_thp;
mod linux_threads;
mod linux_waitid;
mod ltest_runner;
mod solo5_block;
mod solo5_command_line;
mod solo5_fastcall;
mod solo5_load_checks;
mod solo5_net;
mod solo5_net_fd;
mod solo5_personality;
mod solo5_spt;
mod vmm_raw_cpu_model;
mod vmm_raw_inputs;
mod vmm_raw_kernel;
mod vmm_raw_s3;
mod vmm_raw_unbacked;
