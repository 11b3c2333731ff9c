//! `vmm bench`: the throughput suite of the `vmm-bench` package, its table
//! on stdout, the JSON report and the chart where asked.

use std::path::PathBuf;
use std::process::ExitCode;

use vmm_bench::{BenchOptions, Parts};

use crate::stdio::print_stdout;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The reduced suite (3 repetitions, smaller guest workloads); well
    /// under a minute.
    #[arg(long)]
    quick: bool,
    /// Repetitions per figure (default 3 with --quick, 11 without).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    reps: Option<u16>,
    /// Run only the host-side items (1–4, 10), the guest-side items (5–9,
    /// 11, 12), the Linux programs (12) or the launches (9).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw ns/page against pages per call as an SVG chart to FILE.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Exit with status 2 if any target is missed.
    #[arg(long)]
    fail_on_miss: bool,
    /// No progress output on stderr.
    #[arg(long)]
    no_progress: bool,
    /// A Solo5 spt unikernel (e.g. Solo5's test_hello.spt) whose launch is
    /// measured beside the minimal guest's.
    #[arg(long, value_name = "FILE")]
    spt: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Only {
    /// Items 1–4 and 10: the mapper on plain guest memory.
    Host,
    /// Items 5–9, 11 and 12: guests on KVM.
    Guest,
    /// Item 12: unmodified Linux programs on KVM.
    Linux,
    /// Item 9: launches of `vmm run` (and of `--spt`'s unikernel) and
    /// their resident memory.
    Launch,
}

/// `vmm bench`.
pub fn bench(args: BenchArgs) -> ExitCode {
    if args.plot.is_some() && matches!(args.only, Some(Only::Guest | Only::Linux | Only::Launch)) {
        say!("vmm bench: --plot draws the host-side sweep (items 1 and 4); it cannot go with --only guest, linux or launch");
        return ExitCode::from(2);
    }
    // Refuse unwritable outputs before spending minutes measuring, without
    // leaving an empty file behind.
    for p in [&args.json, &args.plot].into_iter().flatten() {
        let existed = p.exists();
        match std::fs::OpenOptions::new().create(true).append(true).open(p) {
            Ok(_) if !existed => {
                let _ = std::fs::remove_file(p);
            }
            Ok(_) => {}
            Err(e) => {
                say!("vmm bench: cannot write {}: {e}", p.display());
                return ExitCode::from(1);
            }
        }
    }
    let opts = BenchOptions {
        quick: args.quick,
        reps: args.reps.map(usize::from),
        parts: match args.only {
            None => Parts::All,
            Some(Only::Host) => Parts::Host,
            Some(Only::Guest) => Parts::Guest,
            Some(Only::Linux) => Parts::Linux,
            Some(Only::Launch) => Parts::Launch,
        },
        vmm_binary: std::env::current_exe().ok(),
        progress: !args.no_progress,
        spt: args.spt,
    };
    let report = match vmm_bench::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            say!("vmm bench: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(code) = print_stdout(&report.table()) {
        return code;
    }
    if let Some(p) = &args.json {
        let text = match serde_json::to_string_pretty(&report) {
            Ok(t) => t,
            Err(e) => {
                say!("vmm bench: cannot encode the report: {e}");
                return ExitCode::from(1);
            }
        };
        if let Err(e) = std::fs::write(p, text + "\n") {
            say!("vmm bench: cannot write {}: {e}", p.display());
            return ExitCode::from(1);
        }
        say!("JSON report written to {}", p.display());
    }
    if let Some(p) = &args.plot {
        if let Err(e) = vmm_bench::plot::draw(&report, p) {
            say!("vmm bench: {e}");
            return ExitCode::from(1);
        }
        say!("chart written to {}", p.display());
    }
    if !report.errors.is_empty() {
        for e in &report.errors {
            say!("vmm bench: {e}");
        }
        return ExitCode::from(1);
    }
    if args.fail_on_miss && !report.targets.missed.is_empty() {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

/// `vmm launch-floor` (hidden): the bare KVM launch item 9 times beside
/// `vmm run`; exits 0 when the vCPU reached its port write.
pub fn launch_floor() -> ExitCode {
    match vmm_bench::guest::launch_floor::launch() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("vmm launch-floor: {e}");
            ExitCode::from(1)
        }
    }
}
