//! `vmm fuzz-guest`: the in-guest fuzzer, seeded, with the invariant
//! check at the end.

use vmm::config::{parse_size, VmConfig};
use vmm::run::output::Output;

use super::run::{run_cfg, Mode};

#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    /// Seed of the guest's generators (decimal or 0x hex); a run is
    /// reproduced by its seed, call count and vCPU count. Default: from
    /// the clock, printed in the report.
    #[arg(long, value_name = "S", value_parser = parse_u64)]
    seed: Option<u64>,
    /// Hypercalls in total, over all vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    calls: u64,
    /// Number of vCPUs (at most 16).
    #[arg(long, value_name = "V", default_value_t = 1)]
    vcpus: u8,
    /// Guest memory (MiB, or with a K/M/G suffix). Default 128M.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    mem: Option<u64>,
    /// Stop a guest that has not finished after SECS seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Run without the seccomp filters (for debugging).
    #[arg(long)]
    no_seccomp: bool,
}

use vmm::guest::kinds::fuzz::{self, parse_u64};

/// `vmm fuzz-guest`: returns the exit status.
pub fn fuzz_guest(args: FuzzArgs, out: &Output, err: &Output) -> u8 {
    let seed = args.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (t.as_nanos() as u64) ^ u64::from(std::process::id())
    });
    let mut cfg = VmConfig { vcpus: args.vcpus, ..VmConfig::default() };
    fuzz::configure(&mut cfg, seed, args.calls);
    if let Some(m) = args.mem {
        cfg.mem_size = m;
        cfg.mem_explicit = true;
    }
    cfg.timeout_secs = args.timeout;
    err.write(format!("vmm fuzz-guest: seed {seed:#x}, {} calls, {} vCPUs\n", args.calls, args.vcpus).as_bytes());
    let mode = Mode {
        json: args.json,
        check_invariants: true,
        seccomp: !args.no_seccomp,
        seccomp_selftest: None,
        report: None,
    };
    run_cfg(&cfg, &mode, out, err)
}
