//! The VMM's integration tests: scenarios that run the `vmm` command (or
//! `vmm::run_with` in this process) on KVM with the built-in guest or
//! guests assembled here, the TLB-shootdown protocol on a simulated
//! machine, and the replay of the fuzz corpus. One module per scenario,
//! named after the file it lives in, so that
//! `cargo test --test vmm vmm_seccomp` runs one of them.
//!
//! KVM tests skip with a message without `/dev/kvm`, unless
//! `VMM_REQUIRE_KVM=1` (`vmm_suite::kvm`). The tests share this process:
//! none may leave process-wide state behind. Runs under seccomp go
//! through the `vmm` binary (a filter is permanent for its thread); runs
//! in this process (`vmm::run_with`, `vmm::run_kind`) keep
//! `RunOptions::seccomp` off and `stdin` off, and temporary files are
//! unique per call (`vmm_suite::kvm::temp_path`).
//!
//! Third-party guests (Solo5, kvm-unit-tests, multiboot kernels) are in
//! the `guests` binary.

mod fuzz_corpus;
mod vmm_bench_json;
mod vmm_builtin_guest;
mod vmm_concurrent_hypercalls;
mod vmm_console_backpressure;
mod vmm_elf_amplification;
mod vmm_elf_guest;
mod vmm_faults;
mod vmm_fuzz_guest;
mod vmm_guest_kind_seam;
mod vmm_hostile_sweep;
mod vmm_input_bounds;
mod vmm_lazy_faults;
mod vmm_link_order;
mod vmm_log_rate_limit;
mod vmm_max_map_count;
mod vmm_passthrough;
mod vmm_pool_all_ram;
mod vmm_seccomp;
mod vmm_seccomp_heap_trim;
mod vmm_serial_input;
mod vmm_stale_tlb;
mod vmm_stdout_errors;
mod vmm_tlb_accessed;
mod vmm_tlb_layers;
mod vmm_tlb_shootdown_stress;
mod vmm_watchdog;
