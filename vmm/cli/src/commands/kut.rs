//! `vmm kut DIR`: the options of the kvm-unit-tests runner ([`crate::kut`])
//! and the printing of its results.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use crate::kut::{self, output};
use crate::stdio::print_stdout;

/// `vmm kut`'s options: `run_tests.sh`'s (`-a`, `-v`, `-l`, `-g`, `-j`,
/// `-t`, test names) with their meaning, and its own (`--json`,
/// `--junit`, `--tap`, `--logs`, `--timeout`, `--max-timeout`).
#[derive(clap::Args, Debug)]
pub struct KutArgs {
    /// The directory holding unittests.cfg (or x86/unittests.cfg) and the
    /// .flat files.
    dir: PathBuf,
    /// Run only these tests (also after `--`). A test in group nodefault
    /// still needs -a (or -g naming one of its groups), as upstream.
    #[arg(value_name = "TEST")]
    names: Vec<String>,
    /// Run all tests, including those in group nodefault, and the
    /// errata-guarded checks (ERRATA_FORCE=y in the guests' environment).
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Print each test's command line before running it.
    #[arg(short = 'v', long = "verbose", conflicts_with = "json")]
    verbose: bool,
    /// List the tests, one per line, and run none.
    #[arg(short = 'l', long = "list")]
    list: bool,
    /// Print TAP13 on stdout: one point per PASS:/FAIL:/SKIP: line a
    /// guest printed.
    #[arg(short = 't', long = "tap13", conflicts_with = "json")]
    tap13: bool,
    /// Run only tests in these groups (may repeat), nodefault ones too.
    #[arg(long = "group", short = 'g', value_name = "GROUP")]
    groups: Vec<String>,
    /// Tests run in parallel (at least 1).
    #[arg(short = 'j', long = "parallel", visible_alias = "jobs", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// Timeout of a test whose section gives none, in seconds (0: none;
    /// at most a year). The TIMEOUT environment variable overrides every
    /// test's timeout.
    #[arg(long, value_name = "SECS", default_value_t = 90, value_parser = secs())]
    timeout: u64,
    /// Cap every test's timeout at SECS (at most a year).
    #[arg(long, value_name = "SECS", value_parser = secs())]
    max_timeout: Option<u64>,
    /// Print the results as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Write JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write TAP13 (as -t prints it) to FILE.
    #[arg(long, value_name = "FILE")]
    tap: Option<PathBuf>,
    /// Write each test's console output to DIR/NAME.log and the results
    /// to DIR/SUMMARY, instead of to ./logs (which, as upstream's, is made
    /// afresh each run, the previous one kept as ./logs.old). A test whose
    /// name is not a file name in DIR is skipped.
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,
}

/// The `TIMEOUT` environment variable, as `run_tests.sh` reads it
/// (`timeout(1)`'s durations: `90`, `90s`, `2m`...; 0: none), or why it
/// is not one. Unset or empty: `None`.
fn timeout_env() -> Result<Option<u64>, String> {
    match std::env::var("TIMEOUT") {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => kut::cfg::parse_duration(&v).map(Some).ok_or_else(|| {
            format!("TIMEOUT={} is not a duration (seconds, or with s, m, h, d)", kut::cfg::excerpt(&v))
        }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("TIMEOUT: {e}")),
    }
}

/// The environment variable `name`, if set and not empty.
fn env_var(name: &str) -> Option<String> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(|v| v.to_string_lossy().into_owned())
}

/// The `CHECK` environment variable split into conditions (it replaces
/// every test's `check =`, as upstream's `${CHECK:-$check}`), or why it
/// is not `PATH=VALUE` words. Unset or empty: `None`.
fn check_env() -> Result<Option<Vec<(String, String)>>, String> {
    env_var("CHECK").map(|v| kut::cfg::parse_checks(&v).map_err(|e| format!("CHECK: {e}"))).transpose()
}

/// The guest environment every test gets, as upstream's `initrd_create`
/// builds it ([`kut::environ`]): the errata come from `ERRATATXT` if set
/// (it must exist), else `DIR/errata.txt` if there is one; the file
/// `KVM_UNIT_TESTS_ENV` names adds its variables if it is a regular file
/// (upstream's `[ -f ]`: anything else is not read). Also says where the
/// errata and the user's variables came from, for `-v`.
fn guest_environment(dir: &std::path::Path, all: bool) -> Result<(String, String), String> {
    use kut::environ;
    const MAX_ERRATA: u64 = 1 << 20;
    let kernel = environ::KernelVersion::host().map_err(|e| format!("cannot read the host kernel version: {e}"))?;
    let mut set = environ::errata_variables(std::env::vars_os())?;
    if all {
        // `run_tests.sh -a` exports ERRATA_FORCE=y.
        set.retain(|(k, _)| k != "ERRATA_FORCE");
        set.push(("ERRATA_FORCE".into(), "y".into()));
        set.sort();
    }
    let (file, file_note) = user_environment()?;
    let set_or_file = environ::with_file(&set, &file);
    let (path, note) = match env_var("ERRATATXT") {
        Some(p) => (Some(PathBuf::from(&p)), format!("errata from ERRATATXT={p}")),
        None => {
            let p = dir.join("errata.txt");
            match p.exists() {
                true => (Some(p.clone()), format!("errata from {}", p.display())),
                false => (None, format!("no {}: no ERRATA_ entries from errata.txt", p.display())),
            }
        }
    };
    let errata = match path {
        Some(p) => {
            let bytes = vmm::input_file::read_input(&p, MAX_ERRATA).map_err(|e| format!("errata: {e}"))?;
            let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", p.display()))?;
            environ::errata_entries(&text, &kernel, &set_or_file).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => Vec::new(),
    };
    Ok((environ::environment(&kernel, &file, &errata, &set), format!("{note}; {file_note}")))
}

/// The variables of the file `KVM_UNIT_TESTS_ENV` names
/// ([`kut::env_file`]), and what `-v` says about it.
fn user_environment() -> Result<(Vec<(String, String)>, String), String> {
    const MAX_ENV: u64 = 1 << 20;
    let Some(p) = env_var("KVM_UNIT_TESTS_ENV") else {
        return Ok((Vec::new(), "no KVM_UNIT_TESTS_ENV".into()));
    };
    if !std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
        return Ok((Vec::new(), format!("KVM_UNIT_TESTS_ENV={p} is not a regular file: not read, as upstream")));
    }
    let bytes = vmm::input_file::read_input(std::path::Path::new(&p), MAX_ENV)
        .map_err(|e| format!("KVM_UNIT_TESTS_ENV: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("KVM_UNIT_TESTS_ENV={p} is not UTF-8 text"))?;
    let vars = kut::env_file::assignments(&text, kut::environ::GENERATED).map_err(|e| format!("{p}: {e}"))?;
    let note = format!("{} variables from KVM_UNIT_TESTS_ENV={p}", vars.len());
    Ok((vars, note))
}

/// `BUILD_HEAD=` and the first line of `DIR/build-head` (empty if there
/// is none), as the first line of upstream's `logs/SUMMARY`.
fn build_head(dir: &std::path::Path) -> String {
    let head = vmm::input_file::read_input(&dir.join("build-head"), 4096).unwrap_or_default();
    let head = String::from_utf8_lossy(&head);
    let line: String = head.lines().next().unwrap_or("").chars().filter(|c| !c.is_control()).collect();
    format!("BUILD_HEAD={line}\n")
}

/// A number of seconds no larger than [`kut::plan::MAX_TIMEOUT_SECS`], so
/// that no deadline computed from it can overflow.
fn secs() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(..=kut::plan::MAX_TIMEOUT_SECS)
}

/// A guest environment file in the temporary directory, new (never an
/// existing file or a link planted there), removed when dropped.
struct EnvFile(PathBuf);

impl EnvFile {
    fn create(text: &str) -> std::io::Result<EnvFile> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("vmm-kut-env-{}-{nanos}", std::process::id()));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        let file = EnvFile(path);
        f.write_all(text.as_bytes())?;
        Ok(file)
    }
}

impl Drop for EnvFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `vmm kut`.
pub fn kut(args: KutArgs) -> ExitCode {
    if args.list {
        return match kut::list_suite(&args.dir) {
            Ok(names) => print_stdout(&names.iter().map(|n| format!("{n}\n")).collect::<String>())
                .map_or_else(|code| code, |()| ExitCode::SUCCESS),
            Err(e) => {
                say!("vmm kut: {e}");
                ExitCode::from(2)
            }
        };
    }
    let timeout_env = match timeout_env() {
        Ok(t) => t,
        Err(e) => {
            say!("vmm kut: {e}");
            return ExitCode::from(2);
        }
    };
    let check_env = match check_env() {
        Ok(c) => c,
        Err(e) => {
            say!("vmm kut: {e}");
            return ExitCode::from(2);
        }
    };
    // Upstream passes every test this environment (its first multiboot
    // module); removed when dropped.
    let (env, errata_note) = match guest_environment(&args.dir, args.all) {
        Ok((text, note)) => match EnvFile::create(&text) {
            Ok(f) => (f, note),
            Err(e) => {
                say!("vmm kut: cannot write the guests' environment file: {e}");
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            say!("vmm kut: {e}");
            return ExitCode::from(2);
        }
    };
    let machine_env = env_var("MACHINE");
    let opts = kut::SuiteOptions {
        names: args.names,
        groups: args.groups,
        all: args.all,
        default_timeout: args.timeout,
        timeout_env,
        accel_env: env_var("ACCEL"),
        initrd: Some(env.0.clone()),
        max_timeout: args.max_timeout,
        logs: true,
        check_env,
        machine_env: machine_env.clone(),
    };
    let plans = match kut::plan_suite(&args.dir, &opts) {
        Ok(p) => p,
        Err(e) => {
            say!("vmm kut: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(exe) = kut::run::current_vmm() else {
        say!("vmm kut: cannot find the vmm binary");
        return ExitCode::from(2);
    };
    // `--logs DIR` is used as it is; `logs` is made afresh, as upstream's.
    let logs = args.logs.clone().unwrap_or_else(|| PathBuf::from(kut::logs::DEFAULT_DIR));
    let made = match &args.logs {
        Some(d) => std::fs::create_dir_all(d),
        None => kut::logs::rotate(&logs),
    };
    if let Err(e) = made {
        say!("vmm kut: cannot make the log directory {}: {e}", logs.display());
        return ExitCode::from(2);
    }
    let start = std::time::Instant::now();
    let (quiet, tap13, verbose) = (args.json, args.tap13, args.verbose);
    // TAP points printed so far; the lock also keeps a test's points
    // together when tests run in parallel.
    let points = Mutex::new(0usize);
    if tap13 {
        let _ = print_stdout("TAP version 13\n");
    }
    if verbose {
        // What upstream reads but vmm has no use for, said once.
        let mut notes = vec![format!("guest environment: {errata_note}")];
        if let Some(q) = env_var("QEMU") {
            notes.push(format!("QEMU={q} is not used: vmm runs each test itself (vmm run --kernel)"));
        }
        if let Some(m) = &machine_env {
            notes.push(format!("MACHINE={m}: tests for another machine are skipped; x86's run script gives QEMU no -machine from it, and vmm has one machine"));
        }
        let prefix = if tap13 { "# " } else { "" };
        let _ = print_stdout(&notes.iter().map(|n| format!("{prefix}{n}\n")).collect::<String>());
    }
    let starting = |_: &str, l: &kut::plan::Launch| {
        if verbose {
            let line = kut::run::command_line(&exe, l);
            let _ = print_stdout(&if tap13 { format!("# {line}\n") } else { format!("{line}\n") });
        }
    };
    let results = kut::run::run_all(&exe, &plans, usize::from(args.jobs), &starting, &|r| {
        // A closed stdout must not stop the suite; the summary reports it.
        if tap13 {
            let mut n = points.lock().unwrap_or_else(|e| e.into_inner());
            let p = output::tap_points(r);
            let _ = print_stdout(&output::tap_lines(&p, *n + 1));
            *n += p.len();
        } else if !quiet {
            let _ = print_stdout(&format!("{}\n", output::line(r)));
        }
        if !r.log.is_empty() {
            if let Err(e) = kut::logs::write_log(&logs, &r.name, &r.log) {
                say!("vmm kut: cannot write the log of {}: {e}", r.name);
            }
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let totals = output::totals(&results);
    let text = if args.json {
        output::json(&results, secs)
    } else if tap13 {
        let n = *points.lock().unwrap_or_else(|e| e.into_inner());
        format!("# {}\n1..{n}", output::summary(&totals, secs))
    } else {
        output::summary(&totals, secs)
    };
    let summary: String = std::iter::once(build_head(&args.dir))
        .chain(results.iter().map(|r| format!("{}\n", output::line(r))))
        .chain([format!("{}\n", output::summary(&totals, secs))])
        .collect();
    if let Err(e) = kut::logs::write_summary(&logs, &summary) {
        say!("vmm kut: cannot write {}: {e}", logs.join("SUMMARY").display());
    }
    if let Err(code) = print_stdout(&(text + "\n")) {
        return code;
    }
    for (path, text) in [(&args.junit, output::junit(&results, secs)), (&args.tap, output::tap(&results))] {
        if let Some(p) = path {
            if let Err(e) = std::fs::write(p, text) {
                say!("vmm kut: cannot write {}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::from(u8::from(totals.failed > 0))
}
