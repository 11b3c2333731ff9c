//! Messages on stderr and blocking writes to stdout for the subcommands
//! that run no guest (`vmm bench`, `vmm kut`, `vmm example-elf`); a run's
//! output goes through `vmm::run::output` instead.

use std::process::ExitCode;

/// A line on stderr; a full or closed stderr loses it (no panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Exit status when stdout's reader went away (`128 + SIGPIPE`).
pub const EXIT_BROKEN_PIPE: u8 = vmm::run::report::EXIT_OUTPUT_CLOSED as u8;

/// Writes `text` to stdout (blocking: for `vmm bench`, which has no
/// guest to stop). A closed pipe is a quiet exit, another error a message.
pub fn print_stdout(text: &str) -> Result<(), ExitCode> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ExitCode::from(EXIT_BROKEN_PIPE)),
        Err(e) => {
            say!("vmm: cannot write to stdout: {e}");
            Err(ExitCode::from(1))
        }
    }
}
