//! The Linux kind's hostile programs: `tests/guests/linux/hostile.c`,
//! one mode per test (built once with `gcc -static`; skipped without a
//! static C toolchain).

use vmm_suite::kvm::linux::static_c_program;

use super::measure::{sweep, Case, Expect, Stdout, SELF_ENDING, TIMED_OUT, TIMED_OUT_UNREAD};

/// Runs `hostile MODE` with `mem_mib` of memory and `--timeout timeout_s`.
/// Returns the program's standard output (its first bytes), or `None`
/// when it could not be built.
fn hostile(mode: &'static str, mem_mib: u64, timeout_s: u64, expect: Expect) -> Option<String> {
    hostile_to(mode, mem_mib, timeout_s, Stdout::Drained, expect)
}

/// [`hostile`] with standard output treated as `stdout` says.
fn hostile_to(mode: &'static str, mem_mib: u64, timeout_s: u64, stdout: Stdout, expect: Expect) -> Option<String> {
    let p = static_c_program("hostile")?;
    let prog = p.to_str().expect("utf-8 path").to_owned();
    let args = vec!["--guest".into(), prog, "--".into(), mode.into()];
    let e = sweep(Case { name: mode, mem_mib, timeout_s, args, stdout, expect });
    if stdout == Stdout::Unread {
        return Some(e.stdout.0);
    }
    assert!(e.stdout.0.starts_with(&format!("hostile {mode}\n")), "{mode}: the program did not start:\n{}", e.stdout.0);
    Some(e.stdout.0)
}

/// Declares a test that runs one mode in a fresh process.
macro_rules! hostile_test {
    ($test:ident, $mode:literal, $mem:expr, $timeout:expr, $expect:expr) => {
        fresh_test!($test, {
            hostile($mode, $mem, $timeout, $expect);
        });
    };
}

// Maps and touches 2 MiB at a time until guest RAM runs out: the fault
// that cannot be filled is a SIGBUS for the program.
hostile_test!(linux_touch_everything, "touch", 128, SELF_ENDING, Expect { code: 135, text: "killed by signal 7" });
// 8,000 mremaps, each a page larger, each writing the new last page.
hostile_test!(linux_mremap_growth, "mremap", 128, SELF_ENDING, Expect { code: 0, text: "mremaps 8000" });
// RLIMIT_NPROC 64, every process forks until refused and then spins.
hostile_test!(linux_fork_bomb, "fork", 64, 2, TIMED_OUT);
// 1 MiB writes to standard output, forever.
hostile_test!(linux_stdout_flood, "stdout", 64, 2, TIMED_OUT);

// The same into a standard output nobody reads.
fresh_test!(linux_stdout_flood_unread, {
    hostile_to("stdout", 64, 2, Stdout::Unread, TIMED_OUT_UNREAD);
});

// vm.max_map_count mappings (32,761 mprotects of every other page: about
// 7 s at this machine's exit cost), then /proc/self/maps read whole ten
// times.
fresh_test!(linux_max_mappings_and_proc_maps, {
    let Some(out) = hostile("maps", 64, SELF_ENDING, Expect { code: 0, text: "maps read 10 times\n" }) else { return };
    assert!(out.contains("mprotects 32761 (Cannot allocate memory)\nmaps read 65530 lines\n"), "{out}");
});
// 100 pipes filled and never read, then a blocking write on one: no
// other process can ever drain it.
hostile_test!(linux_full_pipes, "pipes", 64, 2, Expect { code: 137, text: "blocked forever: write on a pipe" });
// 2,000 pipes of 1 MiB (RLIMIT_NOFILE raised to 4096), written until
// full: what they hold is the VMM's own memory, a quarter of the guest's
// RAM at most (it was 256 MiB whatever the guest).
hostile_test!(linux_pipe_buffers, "pipebuf", 64, SELF_ENDING, Expect { code: 0, text: "pipes 2000 hold 16 MiB\n" });
// 16,000 mappings, then forks that each copy them until refused: a 64
// MiB guest's spaces share 65,536 VMAs, so the fourth child is ENOMEM
// (255 children held 1.3 GB of VMM memory).
hostile_test!(
    linux_fork_many_mappings,
    "forkmaps",
    64,
    SELF_ENDING,
    Expect { code: 0, text: "mprotects 8000\nforks 3 (Cannot allocate memory)\n" }
);
// pause() forever.
hostile_test!(linux_sleep_forever, "sleep", 64, 2, TIMED_OUT);
// Two processes each reading the pipe the other would write.
hostile_test!(linux_deadlock, "deadlock", 64, 2, Expect { code: 2, text: "deadlock: no process can run" });
// A child kills the first process (both pause): the run ends at once
// with the first process's status, 137 with SIGKILL (the first process
// became a zombie and the run ended as a deadlock, status 2), 143 with
// SIGTERM.
hostile_test!(linux_child_kills_first, "killfirst", 64, 2, Expect { code: 137, text: "killed by signal 9" });
hostile_test!(linux_child_terminates_first, "termfirst", 64, 2, Expect { code: 143, text: "killed by signal 15" });
// A busy loop.
hostile_test!(linux_spin, "spin", 64, 2, TIMED_OUT);
