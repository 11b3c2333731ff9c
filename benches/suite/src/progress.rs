//! Progress output on stderr: a bar on a terminal, one line per stage
//! otherwise (so CI logs show where a long run is).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// Where the suite is.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    done: u64,
    total: u64,
    stage: String,
}

impl Progress {
    /// Progress over `total` steps; `enabled = false` prints nothing.
    pub fn new(total: u64, enabled: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (enabled && tty).then(|| {
            let b = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}") {
                b.set_style(style.progress_chars("=> "));
            }
            b
        });
        Progress { bar, plain: enabled && !tty, done: 0, total, stage: String::new() }
    }

    /// Names the stage the next steps belong to.
    pub fn stage(&mut self, name: &str) {
        if self.stage == name {
            return;
        }
        self.stage = name.to_string();
        if let Some(b) = &self.bar {
            b.set_message(name.to_string());
        } else if self.plain {
            // A full or closed stderr loses the line, never the run.
            let _ = writeln!(std::io::stderr(), "[{}/{}] {name}", self.done, self.total);
        }
    }

    /// One step done.
    pub fn inc(&mut self) {
        self.done += 1;
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
