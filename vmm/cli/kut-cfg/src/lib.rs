//! The `unittests.cfg` format of kvm-unit-tests, as `vmm kut` reads it:
//! `[name]` sections of `key = value` lines (`file`, `smp`,
//! `extra_params` / `qemu_params`, `test_args`, `groups`, `timeout`,
//! `arch`, `accel`, `machine`, `check`, `disabled_if`); `#` starts a comment.
//! Values may be quoted with `'` or `"`, and a value opened with `"""`
//! runs to the closing `"""`, its lines joined with spaces (as upstream's
//! `scripts/common.bash` reads `extra_params = """...`).
//!
//! A crate of its own, beside the `vmm` command (`vmm/cli/`) that uses
//! it, so that the root package's fuzz target (`kut_cfg`) reaches the
//! parser without the command line, `clap` or the bench suite.
//!
//! The file comes from a tree written elsewhere, so parsing is linear in
//! its size ([`parse`] reports the work it did, [`Work`]), refuses binary
//! data with the line it starts on, and echoes at most a few hundred
//! bytes of any line in an error ([`excerpt`]).
//!
//! What it does not do: read the file (the caller bounds that), decide
//! what a test needs or whether it can run (`vmm kut`'s plan), or touch
//! any path a value names.

// Tests may unwrap: a failed unwrap is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod excerpt;
mod parse;
mod spec;
mod values;

pub use error::CfgError;
pub use excerpt::{cut, excerpt, EXCERPT_MAX};
pub use parse::{parse, parse_bytes, parse_counted, Work};
pub use spec::TestSpec;
pub use values::{parse_checks, parse_duration, split_append};
