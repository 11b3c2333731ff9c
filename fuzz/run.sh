#!/usr/bin/env bash
# Builds the libFuzzer targets on the STABLE toolchain and runs each for a
# bounded time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 60 s each, every target
#
# No cargo-fuzz and no nightly: libfuzzer-sys (from crates.io) builds
# libFuzzer with the system C++ compiler, and the coverage instrumentation
# is LLVM's SanitizerCoverage pass, reached through rustc's stable `-C passes`
# and `-C llvm-args` options (the flags `cargo fuzz build --sanitizer none`
# passes). No sanitizer: the targets are safe Rust; overflow checks and
# debug assertions are on (fuzz/Cargo.toml). RUSTFLAGS replaces the
# workspace's crt-static flag, and with the explicit --target it reaches
# neither build scripts nor proc-macros.
#
# Inputs that add coverage go to fuzz/work/<target>/ (not committed); the
# committed seeds are read from fuzz/corpus/<target>/. A crash stops the
# target, leaves its input in fuzz/artifacts/<target>/ and makes this script
# exit non-zero. To keep a crash (after minimizing it with
#   fuzz/target/x86_64-unknown-linux-gnu/release/<target> -minimize_crash=1 \
#       -max_total_time=60 -exact_artifact_path=fuzz/corpus/<target>/crash-<name> <crash>
# ) commit it under fuzz/corpus/<target>/: `cargo test --test vmm fuzz_corpus`
# replays it from then on.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(mapper_ops hypercalls elf config elf_reader kut_cfg multiboot solo5_notes linux_elf linux_syscalls)
fi

triple=x86_64-unknown-linux-gnu
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cllvm-args=-sanitizer-coverage-stack-depth \
 --cfg fuzzing"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

echo "== building fuzz targets (stable, SanitizerCoverage)"
# Not --locked: fuzz/Cargo.lock pins what it knows and takes in what a
# change to the workspace's dependencies adds (commit the update).
cargo build --release --target "$triple" --bins

status=0
for t in "${targets[@]}"; do
    bin=target/$triple/release/$t
    mkdir -p "work/$t" "artifacts/$t"
    echo "== fuzzing $t for ${secs}s"
    log=work/$t.log
    # -rss_limit_mb: each input builds one small guest; far more is a leak.
    # -timeout: a hang, not a slow input. The slowest legitimate input is
    # one call that fills all 32 MiB of a guest's table RAM with zero-page
    # entries (4 million leaves) and the walks that check it: ~4 s alone,
    # several times that on a loaded CI machine with coverage counters.
    if ! "$bin" "work/$t" "corpus/$t" \
        -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 -max_len=4096 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
        status=1
        echo "!! $t: crash, timeout or OOM; input in fuzz/artifacts/$t/" >&2
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -20 >&2 || true
    fi
    # The closing figures: executions, coverage, corpus.
    grep -E "^#[0-9]+.*(DONE|cov:)" "$log" | tail -1 || true
    grep -E "stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "$log" || true
done
exit $status
