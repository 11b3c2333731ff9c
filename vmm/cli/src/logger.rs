//! The `log` backend of a run: lines on stderr through a lossy
//! [`Output`], at a level set by `-v`.

use vmm::run::output::Output;

/// A `log` backend writing to stderr through a lossy [`Output`]: a full
/// or unread stderr drops lines, it never blocks the thread that logs (a
/// vCPU, the event loop, the watchdog).
struct StderrLogger {
    level: log::LevelFilter,
    out: Output,
}

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            self.out.write_lossy(format!("[{} {}] {}\n", r.level(), r.target(), r.args()).as_bytes());
        }
    }
    fn flush(&self) {}
}

/// Installs the logger for the rest of the process: warnings by default,
/// `-v` info, `-vv` and more debug, written to `err`.
pub fn install(verbose: u8, err: &Output) {
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger { level, out: err.clone() }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
